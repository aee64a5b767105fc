//! The node's state as the HA loop last saw it. The loop publishes a fresh
//! snapshot every iteration; the REST API and metrics only read it, so a
//! slow HTTP client can never stall a decision.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Serialize;

use crate::config::Tags;
use crate::dcs::model::{ClusterView, HistoryEntry};

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
    /// How long the lease is still proven valid (fencing point), if known.
    pub lease_remaining: Option<std::time::Duration>,
    /// Decisions taken, counted by their first action ("none" when idle).
    pub decisions: std::collections::BTreeMap<String, u64>,
    /// Promotions this pgboxd carried out.
    pub promotions: u64,
    /// How long the last HA loop took.
    pub loop_duration: std::time::Duration,
    /// When the DCS last answered; /patroni reports it as `dcs_last_seen`.
    pub dcs_last_seen: Option<SystemTime>,
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
            lease_remaining: None,
            decisions: Default::default(),
            promotions: 0,
            loop_duration: std::time::Duration::ZERO,
            dcs_last_seen: None,
        }
    }
}

pub type SharedStatus = Arc<RwLock<NodeStatus>>;
