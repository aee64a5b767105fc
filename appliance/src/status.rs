//! The node's state as the HA loop last saw it. The loop publishes a fresh
//! snapshot every iteration; the REST API and metrics only read it, so a
//! slow HTTP client can never stall a decision.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Serialize;

use crate::config::Tags;
use crate::dcs::model::{ClusterView, HistoryEntry};
use crate::ha::Cause;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PgRole {
    Primary,
    Replica,
    #[default]
    Unknown,
}

/// What the health query found out about the local PostgreSQL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PgStatus {
    pub running: bool,
    pub role: PgRole,
    pub timeline: Option<u32>,
    /// Write LSN on a primary; the furthest of received and replayed on a replica.
    pub lsn: Option<u64>,
    pub receive_lsn: Option<u64>,
    /// Replica: the last WAL position replayed.
    pub replay_lsn: Option<u64>,
    /// Replica: a WAL receiver is connected and streaming.
    pub streaming: bool,
    /// Replica: host the WAL receiver is connected to.
    pub upstream_host: Option<String>,
    /// e.g. 150018
    pub server_version: Option<u32>,
    pub postmaster_start_time: Option<String>,
    pub system_identifier: Option<String>,
    /// Primary: the standbys connected to it.
    pub standbys: Vec<crate::ha::Standby>,
    /// The running server's synchronous_standby_names.
    pub sync_names: Option<String>,
    /// Replica: how stale its data may be. Zero while it streams and has
    /// replayed all it received; otherwise the age of the last transaction
    /// it replayed. None on a primary, or before a replica replayed any.
    pub replay_lag: Option<std::time::Duration>,
    /// Replica: commit time of the last transaction replayed, as
    /// PostgreSQL prints it (`pg_last_xact_replay_timestamp()`).
    pub replayed_timestamp: Option<String>,
    /// Replica: WAL replay is paused (`pg_is_wal_replay_paused()`).
    pub replay_paused: Option<bool>,
    /// Primary: its replication connections, for `/patroni`'s `replication`.
    pub replication: Vec<ReplicationRow>,
    /// Parameters changed in the configuration files that take effect
    /// only after a restart (`pg_settings.pending_restart`).
    pub pending_restart: Vec<PendingRestart>,
    /// The history file of the server's timeline: where its history left
    /// each older timeline.
    pub forks: Vec<crate::ha::Fork>,
    /// Primary with archiving on: how its WAL archiving goes.
    pub archive: Option<ArchiveState>,
}

/// A primary's WAL archiving, from `pg_stat_archiver` and the segments
/// waiting in `pg_wal/archive_status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ArchiveState {
    /// Completed segments not yet in the repository: what a lost cluster
    /// would lose beyond the segment being written.
    pub pending_segments: u64,
    /// Seconds since a segment was last archived (None: never yet).
    pub since_last_archived: Option<f64>,
    /// The last attempt failed (and none succeeded since).
    pub failing: bool,
    pub last_failed_wal: Option<String>,
}

/// One row of `pg_stat_replication`, in Patroni's field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplicationRow {
    pub usename: Option<String>,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub sync_priority: Option<i32>,
}

/// A parameter whose new value waits for a restart: what runs and what
/// the configuration files now say.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PendingRestart {
    pub name: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

/// The hardware watchdog as metrics and `pgboxctl status` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchdogState {
    /// `ha.watchdog: off`.
    #[default]
    Off,
    /// No watchdog device on this box.
    Absent,
    /// A device, not armed (this node is not the primary).
    Disarmed,
    /// Armed: a hung pgboxd resets the box before its lease expires.
    Armed,
}

impl WatchdogState {
    pub const ALL: [WatchdogState; 4] = [
        WatchdogState::Off,
        WatchdogState::Absent,
        WatchdogState::Disarmed,
        WatchdogState::Armed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WatchdogState::Off => "off",
            WatchdogState::Absent => "absent",
            WatchdogState::Disarmed => "disarmed",
            WatchdogState::Armed => "armed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub name: String,
    pub scope: String,
    pub tags: Tags,
    /// "running", "starting", "stopped", "bootstrapping", "creating replica",
    /// "rewinding", "crashed", "waiting for leader", ...
    pub state: String,
    pub pg: PgStatus,
    /// This node holds the leader key.
    pub is_leader: bool,
    pub dcs_reachable: bool,
    /// The last DCS snapshot (members, leader, history) for /cluster.
    pub cluster: ClusterView,
    pub history: Vec<HistoryEntry>,
    /// When the HA loop last completed; /liveness fails if it is stale.
    pub last_loop: SystemTime,
    /// Longest the loop may take before pgboxd counts as hung.
    pub liveness_bound: std::time::Duration,
    /// The last decision and its reason, for /patroni and the logs.
    pub last_decision: String,
    /// "armed: ...", "disarmed: ...", "unavailable" or "off".
    pub watchdog: String,
    pub watchdog_state: WatchdogState,
    /// `ha.watchdog: required`: without a device this node never leads.
    pub watchdog_required: bool,
    /// How long the lease is still proven valid (fencing point), if known.
    pub lease_remaining: Option<std::time::Duration>,
    /// Decisions taken, counted by their first action ("none" when idle)
    /// and their cause.
    pub decisions: std::collections::BTreeMap<(String, Cause), u64>,
    /// The last decision's first action and cause.
    pub last_action: Option<(String, Cause)>,
    /// Promotions this pgboxd carried out.
    pub promotions: u64,
    /// Of those, the unplanned ones (see `Cause::is_failover`).
    pub failovers: u64,
    /// How long the last HA loop took.
    pub loop_duration: std::time::Duration,
    /// When the DCS last answered; /patroni reports it as `dcs_last_seen`.
    pub dcs_last_seen: Option<SystemTime>,
    /// Failsafe mode keeps this primary leading without the DCS.
    pub failsafe_active: bool,
    /// The HA settings the loop runs with (`/sync`, `/readiness` and the
    /// `sync_standby` field need them).
    pub synchronous_mode: crate::config::SyncMode,
    pub maximum_lag_on_failover: u64,
    /// `ha.failsafe_mode` is on.
    pub failsafe_mode: bool,
    /// A restart scheduled through the API: when, as the caller wrote it.
    pub scheduled_restart: Option<String>,
    /// What of the DCS `config` key this member does not apply, and why.
    pub config_problems: Vec<String>,
}

impl NodeStatus {
    pub fn new(name: &str, scope: &str, tags: Tags, liveness_bound: std::time::Duration) -> Self {
        NodeStatus {
            name: name.into(),
            scope: scope.into(),
            tags,
            state: "starting".into(),
            pg: PgStatus::default(),
            is_leader: false,
            dcs_reachable: false,
            cluster: ClusterView::default(),
            history: Vec::new(),
            last_loop: SystemTime::now(),
            liveness_bound,
            last_decision: String::new(),
            watchdog: "off".into(),
            watchdog_state: WatchdogState::Off,
            watchdog_required: false,
            lease_remaining: None,
            decisions: Default::default(),
            last_action: None,
            promotions: 0,
            failovers: 0,
            loop_duration: std::time::Duration::ZERO,
            dcs_last_seen: None,
            failsafe_active: false,
            synchronous_mode: crate::config::SyncMode::Off,
            maximum_lag_on_failover: 1 << 20,
            failsafe_mode: false,
            scheduled_restart: None,
            config_problems: Vec::new(),
        }
    }
}

impl NodeStatus {
    /// This node is the synchronous standby: synchronous mode is on, it
    /// runs as a replica, and the `sync` key names it (Patroni's
    /// `sync_standby`; the key may hold a comma-separated list).
    pub fn is_sync_standby(&self) -> bool {
        self.synchronous_mode != crate::config::SyncMode::Off
            && self.pg.running
            && self.pg.role == PgRole::Replica
            && self
                .cluster
                .sync
                .as_ref()
                .and_then(|k| k.sync_standby.as_deref())
                .is_some_and(|names| names.split(',').any(|n| n.trim() == self.name))
    }
}

pub type SharedStatus = Arc<RwLock<NodeStatus>>;
