//! The values the HA core reads and returns. Plain data: no handles, no clocks.

pub use crate::config::{RewindFailure, SyncMode, Tags};
pub use crate::dcs::model::{format_lsn, ClusterView, FailoverKey, SyncKey};
pub use crate::status::PgRole as Role;

/// Everything `decide` may look at, captured at one instant.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Milliseconds on a monotonic clock.
    pub now_ms: u64,
    /// Wall-clock milliseconds since the Unix epoch (scheduled switchovers only).
    pub now_unix_ms: u64,
    pub me: String,
    pub tags: Tags,
    pub settings: Settings,
    /// `None` when the DCS could not be read this loop.
    pub dcs: Option<ClusterView>,
    pub lease: Lease,
    pub pg: LocalPg,
    /// The other PostgreSQL members as their own APIs describe themselves.
    /// Asked only during an election (when nobody holds the leader key).
    pub peers: Vec<Peer>,
    /// Failsafe mode's two sides (`ha.failsafe_mode`); empty when it is off.
    pub failsafe: Failsafe,
}

/// Failsafe mode: a primary cut off from the DCS stays primary while every
/// other PostgreSQL member confirms, through its API, that it will not take
/// over; a member that confirmed keeps that promise for one TTL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Failsafe {
    /// On a primary without the DCS: when it sent the last failsafe request
    /// that every other member accepted (monotonic ms). The send time, not
    /// the answer's: each promise was given after it.
    pub confirmed_at_ms: Option<u64>,
    /// On any other member: when it last accepted a leader's failsafe
    /// request, or when pgboxd started (it cannot know what it promised
    /// before a restart).
    pub promised_at_ms: Option<u64>,
    /// Whom it promised; None for the promise assumed at start.
    pub promised_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub ttl_ms: u64,
    pub loop_wait_ms: u64,
    pub maximum_lag_on_failover: u64,
    pub use_pg_rewind: bool,
    pub on_rewind_failure: RewindFailure,
    pub synchronous_mode: SyncMode,
    pub primary_start_timeout_ms: u64,
    /// False when `ha.watchdog: required` and no watchdog device exists:
    /// such a node never takes the leader key.
    pub can_lead: bool,
    /// `ha.failsafe_mode`: see `Failsafe`.
    pub failsafe_mode: bool,
}

impl Settings {
    /// How long after the last proven renewal a primary may still trust its
    /// lease. The margin covers a loop that is late and clocks that drift:
    /// the primary must stop writing before anyone else can take the key.
    /// How long a standby may fail to stream from a leader on a newer
    /// timeline before it counts as diverged. A normal timeline switch
    /// takes a few seconds (PostgreSQL retries every 5 s).
    pub fn diverged_after_ms(&self) -> u64 {
        (2 * self.ttl_ms).max(15_000)
    }

    pub fn fence_after_ms(&self) -> u64 {
        let margin = (self.ttl_ms / 4).max(2 * self.loop_wait_ms);
        self.ttl_ms.saturating_sub(margin)
    }

    /// How long one `Action::Fence` may take, connecting included: a
    /// quarter of the TTL, and at most half the proven part of a lease, so
    /// that the promotion after it still runs on a proven lease (the key
    /// was taken on one renewed at most a loop before). What does not fit
    /// is waited for in later loops, each on a lease proven again.
    pub fn fence_budget_ms(&self) -> u64 {
        (self.ttl_ms / 4).min(self.fence_after_ms() / 2)
    }

    /// How long a candidate tries to fence an old primary (or waits for
    /// its WAL) before it promotes without: one TTL, as long as the old
    /// primary's own lease would have kept it writable.
    pub fn fence_give_up_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// How long the primary keeps a standby's connection without hearing
    /// from it (PostgreSQL's `wal_sender_timeout`, rendered from this).
    /// A standby that stops confirming (its PostgreSQL frozen, its host
    /// paused, its link dead without a reset) is then dropped by
    /// PostgreSQL itself, and the next loop stops waiting for it: in
    /// `synchronous_mode: on` commits stall at most about this long plus
    /// one loop, instead of PostgreSQL's default minute. A healthy standby
    /// answers the keep-alive the primary sends at half this interval at
    /// once, so only a silent one is dropped.
    pub fn standby_silence_ms(&self) -> u64 {
        standby_silence_ms(self.ttl_ms)
    }

    /// The hardware watchdog's timeout, in whole seconds (what the device
    /// takes). It fires after the fencing point, so a primary cut off from
    /// the DCS demotes and disarms first instead of being reset, and before
    /// the lease can expire, so a hung pgboxd is reset in time.
    pub fn watchdog_timeout_s(&self) -> u64 {
        ((self.fence_after_ms() + self.ttl_ms) / 2 / 1000).max(1)
    }

    /// How long one loop's DCS read may take. A primary's may not outlast
    /// the proven part of its lease (`proven_left_ms`): a slow or dead DCS
    /// then counts as unreachable in time to demote. In failsafe mode it
    /// is shorter still, so that the other members are asked while the
    /// lease is still proven, not once it has run out.
    pub fn dcs_read_budget_ms(&self, primary: bool, proven_left_ms: Option<u64>) -> u64 {
        match (primary, proven_left_ms) {
            (true, Some(left)) if self.failsafe_mode => left.min(self.ttl_ms / 4),
            (true, Some(left)) => left,
            _ => 10_000,
        }
    }
}

/// `Settings::standby_silence_ms` from the TTL alone, for the code that
/// renders postgresql.conf from the first-boot file: half a TTL, at least
/// 3 s (a loaded box may answer a keep-alive a second late).
pub fn standby_silence_ms(ttl_ms: u64) -> u64 {
    (ttl_ms / 2).max(3_000)
}

/// This member's lease, as the keep-alive task last saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lease {
    /// The leader key names me and is bound to my current lease.
    pub held: bool,
    /// When the last successful renewal was sent (monotonic ms).
    pub renewed_at_ms: Option<u64>,
}

impl Lease {
    pub fn valid(&self, now_ms: u64, fence_after_ms: u64) -> bool {
        self.renewed_at_ms
            .is_some_and(|t| now_ms < t + fence_after_ms)
    }

    pub fn remaining(&self, now_ms: u64, fence_after_ms: u64) -> u64 {
        self.renewed_at_ms
            .map_or(0, |t| (t + fence_after_ms).saturating_sub(now_ms))
    }
}

/// The local PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalPg {
    pub data: DataDir,
    /// The server answers queries.
    pub running: bool,
    /// The process lives but does not answer yet (start-up, crash recovery).
    pub starting: bool,
    pub role: Role,
    pub timeline: Option<u32>,
    /// Write position on a primary; the furthest of received and replayed on a replica.
    pub lsn: Option<u64>,
    pub streaming: bool,
    /// The member whose address this replica's primary_conninfo names.
    pub configured_upstream: Option<String>,
    /// On a primary: the standbys connected to it (pg_stat_replication).
    pub standbys: Vec<Standby>,
    /// The synchronous_standby_names the running server was given.
    pub sync_names: String,
    /// A changed parameter waits for a restart (`pg_settings`).
    pub pending_restart: bool,
    /// `server_version_num` of the running server.
    pub server_version: Option<u32>,
    /// Where this server's history left each older timeline: the history
    /// file of its timeline. An LSN on an older timeline is in my WAL only
    /// up to the point where my history left that timeline.
    pub forks: Vec<Fork>,
}

/// One line of a timeline history file: my history left `timeline` at
/// `switch_lsn` (the first position the next timeline wrote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fork {
    pub timeline: u32,
    pub switch_lsn: u64,
}

impl LocalPg {
    /// Whether my WAL holds everything up to `lsn` on `timeline`: on my own
    /// timeline up to my position; on an older one only up to where my
    /// history left it (its later WAL diverged from mine); never on a
    /// newer one, or when my history is unknown.
    pub fn holds_wal(&self, timeline: u32, lsn: u64) -> bool {
        let (Some(mine), Some(my_lsn)) = (self.timeline, self.lsn) else {
            return false;
        };
        if timeline == mine {
            return lsn <= my_lsn;
        }
        timeline < mine
            && self
                .forks
                .iter()
                .find(|f| f.timeline == timeline)
                .is_some_and(|f| lsn <= f.switch_lsn.min(my_lsn))
    }
}

/// A standby as the primary sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Standby {
    /// Its application_name, which pgbox sets to the member's slot name.
    pub name: String,
    pub streaming: bool,
    /// "sync", "async", "potential", "quorum".
    pub sync_state: String,
    pub flush_lsn: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DataDir {
    Empty,
    Initialized {
        system_id: String,
        /// The control file says the server last ran as a primary (it was not
        /// in recovery when it stopped or crashed).
        was_primary: bool,
        /// It was a primary that shut down cleanly: the timeline and
        /// location of its shutdown checkpoint, its last WAL record. None
        /// after a crash, for a replica, or while running.
        clean_stop: Option<CleanStop>,
    },
}

/// Where a primary's clean shutdown left its WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanStop {
    pub timeline: u32,
    pub checkpoint: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub name: String,
    pub reachable: bool,
    pub role: Role,
    pub lsn: Option<u64>,
    pub timeline: Option<u32>,
    pub nofailover: bool,
    pub failover_priority: u32,
    /// Its PostgreSQL, asked over a connection of its own while its API
    /// gives no answer (a hung or dead pgboxd); None when it could not be
    /// reached, or its API answered.
    pub postgres: Option<PeerPostgres>,
}

impl Peer {
    /// A member not heard from (yet): what its first-boot tags say of it,
    /// nothing of its state.
    pub fn unheard(name: &str, tags: &crate::config::Tags) -> Self {
        Peer {
            name: name.to_string(),
            reachable: false,
            role: Role::Unknown,
            lsn: None,
            timeline: None,
            nofailover: tags.nofailover,
            failover_priority: tags.failover_priority,
            postgres: None,
        }
    }
}

impl Peer {
    /// A peer as its `/patroni` document shows it (Patroni's own words
    /// accepted too: "master", "standby").
    pub fn from_patroni(name: &str, tags: &crate::config::Tags, doc: &serde_json::Value) -> Self {
        let mut peer = Peer::unheard(name, tags);
        peer.reachable = true;
        peer.role = match doc["role"].as_str() {
            Some("primary" | "master") if doc["state"] == "running" => Role::Primary,
            Some("replica" | "standby") => Role::Replica,
            _ => Role::Unknown,
        };
        peer.timeline = doc["timeline"].as_u64().map(|t| t as u32);
        let x = &doc["xlog"];
        peer.lsn = [
            &x["location"],
            &x["received_location"],
            &x["replayed_location"],
        ]
        .iter()
        .filter_map(|f| f.as_u64())
        .max();
        peer
    }
}

/// A peer's PostgreSQL as a direct connection to it shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerPostgres {
    /// Not in recovery: it may still acknowledge commits.
    pub primary: bool,
    /// It carries the fence a candidate sets (`Action::Fence`): commits
    /// wait for a standby that does not exist, so none is acknowledged.
    pub fenced: bool,
    /// Its WAL write position (a primary's).
    pub lsn: Option<u64>,
    pub timeline: Option<u32>,
}

/// What the core decided: actions in order, and why, in one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// Why, as one word of a closed set (for metrics and log fields).
    pub cause: Cause,
    /// Why, for a person: names, positions, settings.
    pub reason: String,
}

impl Decision {
    pub fn idle(cause: Cause, reason: String) -> Self {
        Decision {
            actions: Vec::new(),
            cause,
            reason,
        }
    }

    pub fn act(cause: Cause, actions: Vec<Action>, reason: String) -> Self {
        Decision {
            actions,
            cause,
            reason,
        }
    }
}

/// The situation a decision answers, as a short stable word. It labels
/// `pgbox_decisions_total` and fills the REASON field of the journal, so
/// the set is closed (a free-text label would make a new time series per
/// LSN); the details are in `Decision::reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// PostgreSQL runs but does not answer yet.
    PgStarting,
    /// Maintenance mode.
    Paused,
    /// The data directory belongs to another cluster.
    ForeignData,
    DcsUnreachable,
    /// `ha.watchdog: required` without a watchdog device.
    NoWatchdog,
    Bootstrap,
    /// The leader key names this node, which has no data.
    NoData,
    CreateReplica,
    /// The leader is not running yet, so there is nothing to clone or follow.
    WaitingForLeader,
    /// The leader's PostgreSQL did not come back in time: hand over.
    PrimaryStartTimeout,
    /// Lease renewals are not working: neither lead nor stay writable.
    LeaseUnproven,
    /// PostgreSQL is down and is started in the right role.
    PostgresDown,
    /// This node's history forked from the leader's: rewind or re-clone.
    Diverged,
    /// The leader key names this node: take over a stale key, promote.
    LeaderKeyHeld,
    /// The healthy leader with nothing to do.
    Leading,
    SyncReplication,
    /// Another member holds the leader key while this node is primary.
    OtherLeader,
    NewLeader,
    Following,
    NotStreaming,
    /// This primary's key vanished and nobody took it.
    LeaderKeyLost,
    /// This primary's key vanished, and the cluster records a newer
    /// primary since (a later timeline, or a sync key another leader took).
    Deposed,
    /// The leader key is free and this node is the best candidate.
    Election,
    Switchover,
    SwitchoverRefused,
    /// The candidate did not take over within the hand-over's bound: the
    /// leader that stepped down takes the key back.
    SwitchoverFailed,
    ManualFailover,
    NoFailover,
    PositionUnknown,
    NotSyncStandby,
    TimelineBehind,
    LagTooHigh,
    /// The old primary still answers as primary.
    OldPrimaryAlive,
    /// Another replica is further ahead.
    PeerAhead,
    /// Failsafe mode: a primary without the DCS that every member vouches
    /// for, or a member keeping its promise not to take over.
    Failsafe,
    /// A candidate holding the leader key waits for the WAL of an old
    /// primary it fenced (its pgboxd hung, its PostgreSQL still primary).
    Fencing,
    /// A restart, reload or reinitialize asked through the API.
    Operation,
}

impl Cause {
    pub const ALL: [Cause; 37] = [
        Cause::PgStarting,
        Cause::Paused,
        Cause::ForeignData,
        Cause::DcsUnreachable,
        Cause::NoWatchdog,
        Cause::Bootstrap,
        Cause::NoData,
        Cause::CreateReplica,
        Cause::WaitingForLeader,
        Cause::PrimaryStartTimeout,
        Cause::LeaseUnproven,
        Cause::PostgresDown,
        Cause::Diverged,
        Cause::LeaderKeyHeld,
        Cause::Leading,
        Cause::SyncReplication,
        Cause::OtherLeader,
        Cause::NewLeader,
        Cause::Following,
        Cause::NotStreaming,
        Cause::LeaderKeyLost,
        Cause::Deposed,
        Cause::Election,
        Cause::Switchover,
        Cause::SwitchoverRefused,
        Cause::SwitchoverFailed,
        Cause::ManualFailover,
        Cause::NoFailover,
        Cause::PositionUnknown,
        Cause::NotSyncStandby,
        Cause::TimelineBehind,
        Cause::LagTooHigh,
        Cause::OldPrimaryAlive,
        Cause::PeerAhead,
        Cause::Failsafe,
        Cause::Fencing,
        Cause::Operation,
    ];

    /// The word used in metrics and logs; never changes once released.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::PgStarting => "pg_starting",
            Cause::Paused => "paused",
            Cause::ForeignData => "foreign_data",
            Cause::DcsUnreachable => "dcs_unreachable",
            Cause::NoWatchdog => "no_watchdog",
            Cause::Bootstrap => "bootstrap",
            Cause::NoData => "no_data",
            Cause::CreateReplica => "create_replica",
            Cause::WaitingForLeader => "waiting_for_leader",
            Cause::PrimaryStartTimeout => "primary_start_timeout",
            Cause::LeaseUnproven => "lease_unproven",
            Cause::PostgresDown => "postgres_down",
            Cause::Diverged => "diverged",
            Cause::LeaderKeyHeld => "leader_key_held",
            Cause::Leading => "leading",
            Cause::SyncReplication => "sync_replication",
            Cause::OtherLeader => "other_leader",
            Cause::NewLeader => "new_leader",
            Cause::Following => "following",
            Cause::NotStreaming => "not_streaming",
            Cause::LeaderKeyLost => "leader_key_lost",
            Cause::Deposed => "deposed",
            Cause::Election => "election",
            Cause::Switchover => "switchover",
            Cause::SwitchoverRefused => "switchover_refused",
            Cause::SwitchoverFailed => "switchover_failed",
            Cause::ManualFailover => "manual_failover",
            Cause::NoFailover => "nofailover",
            Cause::PositionUnknown => "position_unknown",
            Cause::NotSyncStandby => "not_sync_standby",
            Cause::TimelineBehind => "timeline_behind",
            Cause::LagTooHigh => "lag_too_high",
            Cause::OldPrimaryAlive => "old_primary_alive",
            Cause::PeerAhead => "peer_ahead",
            Cause::Failsafe => "failsafe",
            Cause::Fencing => "fencing",
            Cause::Operation => "operation",
        }
    }

    /// A promotion for one of these causes is an unplanned failover (the
    /// leader was lost, or a person forced one), not a switchover.
    pub fn is_failover(self) -> bool {
        matches!(self, Cause::Election | Cause::ManualFailover)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAs {
    Primary,
    /// A standby streaming from `leader`, or read-only with no upstream.
    Replica {
        leader: Option<String>,
    },
}

/// One step for the executor. The executor stops at the first that fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the `initialize` key if absent (the bootstrap race).
    ClaimInitialize,
    /// Create the leader key bound to my lease if it is absent or already names me.
    AcquireLeader,
    /// Take the leader key back after a hand-over that did not happen, in
    /// one transaction that holds only if nobody holds the key and the
    /// `sync` key is still exactly `sync` (so no candidate has taken over:
    /// see `Action::Promote`).
    RetakeLeader {
        sync: SyncKey,
    },
    /// initdb, start as primary, create roles and database, record the system id.
    Bootstrap,
    /// Clone the data directory from a running member.
    BaseBackup {
        from: String,
    },
    /// pg_rewind against a running member.
    Rewind {
        from: String,
    },
    /// Remove the data directory (before a fresh base backup).
    RemoveData,
    Start(StartAs),
    /// Fast shutdown. The watchdog is disarmed as soon as PostgreSQL has
    /// accepted it (`watchdog_step`), not when the loop ends.
    Stop,
    /// pg_promote. In synchronous mode the new primary first holds every
    /// commit (synchronous_standby_names names no real standby) until its
    /// first loop as leader has taken over the `sync` key: until then the
    /// leader that stepped down may still take the key back
    /// (`RetakeLeader`), and must find every acknowledged commit in its WAL.
    Promote,
    /// Point the running replica at a new upstream (reload, no restart).
    Follow {
        leader: String,
    },
    /// Delete the leader key if it names me (replicas race at once).
    ReleaseLeader,
    /// A checkpoint before a planned stop, so the stop itself is quick.
    Checkpoint,
    /// Set synchronous_standby_names on the running primary (reload).
    SetSyncNames(String),
    /// Write the `sync` key naming me as leader and this standby (or none).
    WriteSync(Option<String>),
    /// Delete the `failover` key (request done or refused).
    ClearFailover,
    /// Before a promotion: make each member's PostgreSQL, which runs as
    /// primary while its pgboxd does not answer, unable to acknowledge a
    /// commit (commits wait for a standby that does not exist, new
    /// transactions are read-only, its clients are disconnected), then wait
    /// until my PostgreSQL has received the WAL it had written. Fails when a
    /// member could not be fenced or its WAL did not arrive within
    /// `within_ms`.
    Fence {
        members: Vec<String>,
        within_ms: u64,
    },
    /// PostgreSQL reads its configuration files again.
    Reload,
    /// Clone the data directory afresh from `from`, keeping the old one
    /// aside until the clone has succeeded (put back if it fails).
    Reinitialize {
        from: String,
    },
}

impl Action {
    /// Only DCS requests, no PostgreSQL process control: one that cannot
    /// finish before a primary's fencing point can be given up then
    /// without leaving anything half done (as if its answer had been lost).
    pub fn dcs_only(&self) -> bool {
        matches!(
            self,
            Action::ClaimInitialize
                | Action::AcquireLeader
                | Action::RetakeLeader { .. }
                | Action::ReleaseLeader
                | Action::WriteSync(_)
                | Action::ClearFailover
        )
    }
}

/// What the executor reports back about one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed,
}

/// What the core remembers between loops; changed only by `absorb`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// The last pg_rewind failed; the next rejoin takes the fallback path.
    pub rewind_failed: bool,
    /// Since when this running replica has not been streaming.
    pub not_streaming_since_ms: Option<u64>,
    /// Since when PostgreSQL has been down (not running, not starting).
    pub down_since_ms: Option<u64>,
    /// On a primary: the standby PostgreSQL first reported as synchronous,
    /// and the primary's position then; it is recorded in the sync key only
    /// once it has flushed that far.
    pub sync_catchup: Option<(String, u64)>,
    /// Since when a peer's PostgreSQL has been seen running as primary
    /// while its pgboxd does not answer (see `Action::Fence`).
    pub hung_primary_since_ms: Option<u64>,
    /// When I last ran as primary without a lease I could prove valid (the
    /// DCS unreachable or my renewals failing past the fencing point): the
    /// loop that demotes me. See `holding_leader_key`.
    pub lease_lost_as_primary_ms: Option<u64>,
}

impl Memory {
    /// Fold in what this loop observed (before deciding).
    pub fn observe(&self, obs: &Observation) -> Memory {
        let mut next = self.clone();
        let replica = obs.pg.running && obs.pg.role == Role::Replica;
        next.not_streaming_since_ms =
            match (replica && !obs.pg.streaming, self.not_streaming_since_ms) {
                (false, _) => None,
                (true, None) => Some(obs.now_ms),
                (true, since) => since,
            };
        let sync_now = obs
            .pg
            .standbys
            .iter()
            .find(|s| s.sync_state == "sync" && obs.pg.role == Role::Primary)
            .map(|s| s.name.clone());
        next.sync_catchup = match (sync_now, &self.sync_catchup) {
            (Some(name), Some((prev, target))) if *prev == name => Some((name, *target)),
            (Some(name), _) => obs.pg.lsn.map(|lsn| (name, lsn)),
            (None, _) => None,
        };
        next.hung_primary_since_ms = if obs.peers.iter().any(|p| hung_primary(p).is_some()) {
            self.hung_primary_since_ms.or(Some(obs.now_ms))
        } else {
            None
        };
        let primary = obs.pg.running && obs.pg.role == Role::Primary;
        let fence = obs.settings.fence_after_ms();
        let proven = match &obs.dcs {
            Some(_) => obs.lease.valid(obs.now_ms, fence),
            // Without the DCS only a failsafe confirmation proves anything.
            None => obs
                .failsafe
                .confirmed_at_ms
                .is_some_and(|t| obs.now_ms.saturating_sub(t) < fence),
        };
        if primary && !proven {
            next.lease_lost_as_primary_ms = Some(obs.now_ms);
        }
        let down = !obs.pg.running && !obs.pg.starting;
        next.down_since_ms = if down {
            self.down_since_ms.or(Some(obs.now_ms))
        } else {
            None
        };
        next
    }

    pub fn absorb(&self, action: &Action, outcome: &Outcome) -> Memory {
        let mut next = self.clone();
        match (action, outcome) {
            (Action::Rewind { .. }, Outcome::Failed) => next.rewind_failed = true,
            (
                Action::Rewind { .. } | Action::BaseBackup { .. } | Action::Reinitialize { .. },
                Outcome::Done,
            ) => next.rewind_failed = false,
            (Action::Start(_) | Action::Stop, _) => next.not_streaming_since_ms = None,
            _ => {}
        }
        next
    }
}

/// A peer whose PostgreSQL runs as primary while its pgboxd gives no answer
/// (hung, or its API cut off): nothing fences it but the watchdog, if any.
pub fn hung_primary(p: &Peer) -> Option<&PeerPostgres> {
    p.postgres.as_ref().filter(|pg| !p.reachable && pg.primary)
}
