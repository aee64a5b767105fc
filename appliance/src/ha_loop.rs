//! The HA loop, written once: observe, decide (the pure core in `ha`),
//! execute, publish.
//!
//! pgboxd runs it over the real I/O (daemon.rs: etcd-client, the PostgreSQL
//! child, HTTP to the peers, tokio's clock, the watchdog device); the
//! simulator runs this very code over simulated I/O (sim/node.rs), so every
//! seed of a sweep exercises the loop pgboxd ships, not a copy of it.
//!
//! [`LoopIo`] is everything one loop touches, kept small: a clock (with a
//! timeout on the clock's own terms), the DCS calls the loop makes itself,
//! the local PostgreSQL as observed, the peers' APIs, the watchdog device,
//! the executor (one call per action) and where a loop's outcome is
//! reported. What the loop remembers between rounds lives in [`HaLoop`].
//! The bounds that keep a primary from outliving its proven lease (every
//! DCS call cut to it, the DCS read budget, the wake-up at the fencing
//! point, when the watchdog is armed) are computed here, once.

// The loop is awaited where it is created (pgboxd's main task, the
// simulator's single-threaded executor); nothing needs its futures Send.
#![allow(async_fn_in_trait)]

use anyhow::Result;

use crate::clock::Clock;
use crate::dcs::etcd::LeaderKey;
use crate::dcs::model::{ClusterView, Member};
use crate::ha::{
    self, Action, DataDir, Decision, Failsafe, Lease, LocalPg, Memory, Observation, Outcome, Peer,
    Role, Settings, WatchdogStep,
};
use crate::logging::role_word;
use crate::status::PgStatus;

pub use crate::clock::Level;

/// What one loop touches. Times are milliseconds on this node's own
/// monotonic clock (`now_ms`), whatever its origin.
pub trait LoopIo: Clock {
    // The DCS.
    async fn read_view(&self) -> Result<(ClusterView, Option<LeaderKey>)>;
    /// My current lease, and when its last successful renewal was sent.
    fn lease_id(&self) -> Option<i64>;
    fn renewed_at_ms(&self) -> Option<u64>;
    /// My member key, on my lease.
    async fn put_member(&self, member: &Member) -> Result<()>;
    /// The primary's last known WAL position.
    async fn put_status(&self, lsn: u64) -> Result<()>;
    async fn release_leader(&self) -> Result<()>;
    async fn revoke_lease(&self) -> Result<()>;

    // The local PostgreSQL.
    /// A postmaster exists (it may not answer yet).
    fn pg_alive(&mut self) -> bool;
    async fn pg_health(&mut self) -> PgStatus;
    /// The data directory of a server that is not running, from its
    /// control file: None when there is none.
    async fn control_file(&self) -> Result<Option<DataDir>>;
    fn pg_initialized(&self) -> bool;
    /// The upstream the running server was configured to follow.
    fn configured_upstream(&self) -> Option<String>;
    /// A clean stop at shutdown; the watchdog is disarmed as soon as the
    /// server has accepted it (or at once without a postmaster).
    async fn stop_for_shutdown(&mut self) -> Result<()>;

    // The peers.
    /// During an election, each other PostgreSQL member's view of itself.
    async fn ask_peers(&self) -> Vec<Peer>;
    /// `POST /failsafe` to every other PostgreSQL member: all accepted.
    async fn failsafe_round(&self) -> bool;
    /// The failsafe promise this member keeps: to whom, and since when.
    fn promise(&self) -> (Option<String>, u64);

    // The watchdog device (petted by the keep-alive after each renewal).
    fn watchdog_armed(&self) -> bool;
    fn arm_watchdog(&self);
    fn disarm_watchdog(&self);
    fn pet_watchdog(&self);

    // The executor.
    /// Carry out `action` (through the executor); None when `within_ms`
    /// was given and it did not finish in that time (it is dropped).
    async fn run(&mut self, action: &Action, within_ms: Option<u64>) -> Option<Result<()>>;

    /// What this member applies of the cluster-wide settings in the
    /// `config` key (`config::dynamic`).
    fn live_config(&mut self, config: &crate::dcs::model::DynamicConfig) -> LiveConfig;

    // Operations asked through the API (crate::ops_mailbox).
    /// The oldest operation due now that has not begun: its ticket and
    /// what it asks.
    fn due_operation(&self, now_unix_ms: u64) -> Option<(u64, ha::Operation)>;
    fn settle_operation(&self, ticket: u64, settled: crate::ops_mailbox::Settled);

    // Reporting.
    fn log_decision(&self, obs: &Observation, decision: &Decision);
    fn log_action_failed(
        &self,
        obs: &Observation,
        decision: &Decision,
        action: &Action,
        e: &anyhow::Error,
    );
    /// What is true after a loop: the API answers from it.
    fn publish(&mut self, report: Report);
}

/// The cluster-wide settings as this member applies them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveConfig {
    /// `maximum_lag_on_failover` for the core (None: as pgbox.yaml says).
    pub maximum_lag_on_failover: Option<u64>,
    /// The running server's files lag the cluster-wide parameters: a
    /// reload, in the next idle round.
    pub reload_needed: bool,
}

/// Who this member is, as its member key says.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub tags: crate::config::Tags,
    pub conn_url: String,
    pub api_url: String,
}

/// The outcome of one loop, for the API and the metrics.
#[derive(Debug, Clone)]
pub struct Report {
    pub state: String,
    pub pg: PgStatus,
    /// The cluster as last read (None: the DCS did not answer).
    pub view: Option<ClusterView>,
    pub is_leader: bool,
    /// Primary without the DCS, leading on the other members' promises.
    pub failsafe_active: bool,
    pub decision: Decision,
    /// The decision promoted this node and it now runs as primary.
    pub promoted: bool,
    /// When the loop started (`now_ms`).
    pub started_ms: u64,
    /// What is left of the proven part of my lease.
    pub lease_remaining_ms: Option<u64>,
    /// The settings this round ran with.
    pub settings: Settings,
}

/// What the loop keeps between rounds.
pub struct HaLoop {
    pub me: Identity,
    pub settings: Settings,
    memory: Memory,
    last_reason: String,
    /// The state word other members see (`running`, `promoting`, …).
    state: String,
    /// While primary without the DCS: when the last failsafe round that
    /// every other member accepted was sent.
    failsafe_confirmed_ms: Option<u64>,
    /// As last published: I lead, and my PostgreSQL's role.
    leading: bool,
    role: Role,
    /// The cluster-wide parameters changed: reload in an idle round.
    reload_needed: bool,
    /// Maintenance mode, as the DCS last said.
    paused: bool,
}

/// How long a member-key or status write may take (then cut to the lease).
const PUBLISH_BOUND_MS: u64 = 500;

impl HaLoop {
    pub fn new(me: Identity, settings: Settings) -> Self {
        HaLoop {
            me,
            settings,
            memory: Memory::default(),
            last_reason: String::new(),
            state: "starting".into(),
            failsafe_confirmed_ms: None,
            leading: false,
            role: Role::Unknown,
            reload_needed: false,
            paused: false,
        }
    }

    /// As last published: this node holds the leader key.
    pub fn is_leader(&self) -> bool {
        self.leading
    }

    /// The last proof that this primary may write: a lease renewal, or in
    /// failsafe mode a round every other member accepted.
    fn proven_at(&self, io: &impl LoopIo) -> Option<u64> {
        io.renewed_at_ms().max(self.failsafe_confirmed_ms)
    }

    /// When a primary's lease stops being proven valid (its fencing point).
    fn fence_deadline(&self, io: &impl LoopIo) -> Option<u64> {
        self.proven_at(io)
            .map(|t| t + self.settings.fence_after_ms())
    }

    fn proven_left(&self, io: &impl LoopIo) -> Option<u64> {
        self.fence_deadline(io)
            .map(|d| d.saturating_sub(io.now_ms()))
    }

    /// A DCS call's own bound, cut to what is left of the proven part of
    /// my lease: however many calls a loop makes, together they cannot hold
    /// a primary past its fencing point (where it must demote, and just
    /// after which its watchdog resets the box).
    fn lease_bounded(&self, io: &impl LoopIo, ms: u64) -> u64 {
        self.proven_left(io).map_or(ms, |left| ms.min(left))
    }

    /// How long a DCS read may take now (`Settings::dcs_read_budget_ms`).
    fn dcs_read_budget(&self, io: &impl LoopIo, primary: bool) -> u64 {
        self.settings
            .dcs_read_budget_ms(primary, self.proven_left(io))
    }

    /// The pause before the next loop: `loop_wait`, but a primary wakes at
    /// its fencing point too, so demotion never waits for a loop.
    pub fn next_wait_ms(&self, io: &impl LoopIo) -> u64 {
        let loop_wait = self.settings.loop_wait_ms;
        match (self.role == Role::Primary, self.proven_left(io)) {
            (true, Some(left)) => loop_wait.min(left + 10),
            _ => loop_wait,
        }
    }

    /// One round: observe, decide, execute, publish.
    pub async fn iterate(&mut self, io: &mut impl LoopIo) {
        let started_ms = io.now_ms();
        let Some((obs, health)) = self.observe(io).await else {
            return;
        };
        self.memory = self.memory.observe(&obs);
        let decision = ha::decide(&obs, &self.memory);
        let (decision, operation) = self.take_operation(io, &obs, decision);
        // A loop that repeats the last idle decision adds nothing to the log.
        if !decision.actions.is_empty() || decision.reason != self.last_reason {
            io.log_decision(&obs, &decision);
            self.last_reason = decision.reason.clone();
        }
        let ran = self.execute(io, &obs, &decision, &health).await;
        if let Some(ticket) = operation {
            use crate::ops_mailbox::Settled;
            io.settle_operation(ticket, ran.map_or_else(Settled::Failed, |()| Settled::Done));
        }
        self.publish(io, obs, health, decision, started_ms).await;
    }

    /// An operation asked through the API, or a reload the cluster-wide
    /// parameters need, replaces an idle round's decision
    /// (`ha::operation_step`); the API's ticket, when one runs now.
    fn take_operation(
        &self,
        io: &impl LoopIo,
        obs: &Observation,
        normal: Decision,
    ) -> (Decision, Option<u64>) {
        use crate::ops_mailbox::Settled;
        let (ticket, op) = match io.due_operation(obs.now_unix_ms) {
            Some((ticket, op)) => (Some(ticket), op),
            None if self.reload_needed => (None, ha::Operation::Reload),
            None => return (normal, None),
        };
        match ha::operation_step(obs, &op, &normal) {
            ha::OperationStep::Wait(_) => (normal, None),
            ha::OperationStep::Refuse(why) => {
                if let Some(ticket) = ticket {
                    io.log(Level::WARN, &format!("refusing to {}: {why}", op.word()));
                    io.settle_operation(ticket, Settled::Refused(why));
                }
                (normal, None)
            }
            ha::OperationStep::Run(mut decision) => {
                match ticket {
                    Some(ticket) => io.settle_operation(ticket, Settled::Started),
                    None => {
                        decision.reason = "reload: the cluster-wide PostgreSQL parameters changed (the config key)".into();
                    }
                }
                (decision, ticket)
            }
        }
    }

    /// The observation the core decides on, and the health it was made
    /// from. None: this loop is skipped (the data directory could not be
    /// inspected).
    async fn observe(&mut self, io: &mut impl LoopIo) -> Option<(Observation, PgStatus)> {
        let alive = io.pg_alive();
        if !alive {
            // No postmaster: nothing left that could acknowledge a commit,
            // so nothing for the watchdog to guard while this loop waits
            // (a DCS read may take seconds). Only the process's absence
            // counts: a primary that merely does not answer may still have
            // backends committing.
            self.tend_watchdog(io, false);
        }
        let health = io.pg_health().await;
        let (view, leader_key) = self.read_cluster(io, health.role == Role::Primary).await;
        if let Some(v) = &view {
            self.apply_cluster_config(io, v);
        }
        let data = self.data_dir(io, &health).await?;
        let me = self.me.name.clone();
        let lease = Lease {
            held: leader_key
                .as_ref()
                .is_some_and(|k| k.name == me && Some(k.lease) == io.lease_id()),
            renewed_at_ms: io.renewed_at_ms(),
        };
        // Also while I hold the key but have yet to promote: an old primary
        // whose pgboxd hung must be seen (and fenced) first.
        let electing =
            |v: &ClusterView| v.leader.is_none() || v.leader.as_deref() == Some(me.as_str());
        let peers = match &view {
            Some(v) if electing(v) && health.running && health.role == Role::Replica => {
                io.ask_peers().await
            }
            _ => Vec::new(),
        };
        let failsafe = self.failsafe_step(io, view.is_none(), &health).await;
        let obs = Observation {
            // The node's own clocks: a paused VM's stop with it.
            now_ms: io.now_ms(),
            now_unix_ms: io.now_unix_ms(),
            me,
            tags: self.me.tags.clone(),
            settings: self.settings.clone(),
            dcs: view,
            lease,
            pg: LocalPg {
                data,
                running: health.running,
                starting: alive && !health.running,
                role: health.role,
                timeline: health.timeline,
                lsn: health.lsn,
                streaming: health.streaming,
                configured_upstream: io.configured_upstream(),
                standbys: health.standbys.clone(),
                sync_names: health.sync_names.clone().unwrap_or_default(),
                pending_restart: !health.pending_restart.is_empty(),
                server_version: health.server_version,
                forks: health.forks.clone(),
            },
            peers,
            failsafe,
        };
        Some((obs, health))
    }

    /// The cluster-wide settings of the `config` key this member applies
    /// (`LoopIo::live_config`), and maintenance mode.
    fn apply_cluster_config(&mut self, io: &mut impl LoopIo, view: &ClusterView) {
        let live = io.live_config(&view.config);
        if let Some(lag) = live.maximum_lag_on_failover {
            self.settings.maximum_lag_on_failover = lag;
        }
        self.reload_needed = live.reload_needed;
        self.paused = view.config.pause;
    }

    /// The cluster as the DCS has it, and the leader key; None and None
    /// when it does not answer in time. A primary must decide to fence
    /// before its lease can expire, so the read may not outlast the proven
    /// part of the lease: a slow or dead DCS then counts as unreachable in
    /// time to demote.
    async fn read_cluster(
        &self,
        io: &impl LoopIo,
        primary: bool,
    ) -> (Option<ClusterView>, Option<LeaderKey>) {
        let budget = self.dcs_read_budget(io, primary);
        match io.timeout(budget, io.read_view()).await {
            Some(Ok((v, k))) => (Some(v), k),
            Some(Err(e)) => {
                io.log(Level::WARN, &format!("cannot read the DCS: {e:#}"));
                (None, None)
            }
            None => {
                io.log(
                    Level::WARN,
                    &format!(
                        "the DCS did not answer within my lease's proven validity ({budget} ms)"
                    ),
                );
                (None, None)
            }
        }
    }

    /// The data directory: a running server's from its health, a stopped
    /// one's from the control file. None: it could not be inspected, and
    /// the loop is skipped.
    async fn data_dir(&self, io: &impl LoopIo, health: &PgStatus) -> Option<DataDir> {
        if health.running {
            return Some(DataDir::Initialized {
                system_id: health.system_identifier.clone().unwrap_or_default(),
                was_primary: health.role == Role::Primary,
                clean_stop: None,
            });
        }
        match io.control_file().await {
            Ok(d) => Some(d.unwrap_or(DataDir::Empty)),
            Err(e) => {
                io.log(
                    Level::ERROR,
                    &format!("cannot inspect the data directory; skipping this loop: {e:#}"),
                );
                None
            }
        }
    }

    /// The decision's actions in order, each absorbed into the memory; the
    /// first that fails ends the list (the next loop decides again) and is
    /// the error.
    async fn execute(
        &mut self,
        io: &mut impl LoopIo,
        obs: &Observation,
        decision: &Decision,
        health: &PgStatus,
    ) -> Result<(), String> {
        for action in &decision.actions {
            self.state = crate::executor::state_during(action).into();
            if obs.dcs.is_some() {
                self.publish_member(io, health).await;
            }
            // A primary's DCS request may not hold its loop past the
            // fencing point (where it demotes, and just after which its
            // watchdog resets the box): a grant stuck behind a DCS that
            // came back and went again did, in the simulator.
            let within = (health.role == Role::Primary && action.dcs_only())
                .then(|| self.proven_left(io).unwrap_or(0));
            let ran = io.run(action, within).await.unwrap_or_else(|| {
                Err(anyhow::anyhow!(
                    "no answer before my lease's proven validity ran out ({} ms)",
                    within.unwrap_or(0)
                ))
            });
            let (outcome, error) = match ran {
                Ok(()) => (Outcome::Done, None),
                Err(e) => {
                    io.log_action_failed(obs, decision, action, &e);
                    (Outcome::Failed, Some(format!("{action:?}: {e:#}")))
                }
            };
            self.memory = self.memory.absorb(action, &outcome);
            if let Some(error) = error {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Publish what is true now, after the actions: the member key, the
    /// primary's position, the watchdog, and the loop's report.
    async fn publish(
        &mut self,
        io: &mut impl LoopIo,
        obs: Observation,
        health: PgStatus,
        decision: Decision,
        started_ms: u64,
    ) {
        let acted = !decision.actions.is_empty();
        let health = if acted { io.pg_health().await } else { health };
        if !io.pg_alive() {
            // As in `observe`: no postmaster, nothing for the watchdog to
            // guard while the read below waits (fresh 2-on-failsafe seed
            // 2873386: the primary's PostgreSQL crashed during a DCS
            // outage, and this read outlasted the watchdog).
            self.tend_watchdog(io, false);
        }
        self.state = state_word(io, &health).into();
        let view = if acted {
            // As bounded as the observation's read.
            let guarding = health.role == Role::Primary || io.watchdog_armed();
            let budget = self.dcs_read_budget(io, guarding);
            io.timeout(budget, io.read_view())
                .await
                .and_then(Result::ok)
                .map(|(v, _)| v)
                .or(obs.dcs)
        } else {
            obs.dcs
        };
        // Without the DCS, a primary every member vouches for (failsafe
        // mode) still leads: its watchdog stays armed.
        let is_leader = match &view {
            Some(v) => v.leader.as_deref() == Some(self.me.name.as_str()),
            None => self
                .failsafe_confirmed_ms
                .is_some_and(|t| t + self.settings.fence_after_ms() > io.now_ms()),
        };
        let primary = health.role == Role::Primary;
        self.publish_member(io, &health).await;
        if let Some(lsn) = health.lsn.filter(|_| is_leader && primary) {
            self.publish_position(io, lsn).await;
        }
        self.tend_watchdog(io, is_leader && primary);
        self.leading = is_leader;
        self.role = health.role;
        let promoted = decision.actions.contains(&Action::Promote) && primary;
        let report = Report {
            state: self.state.clone(),
            failsafe_active: view.is_none() && is_leader && primary,
            pg: health,
            view,
            is_leader,
            decision,
            promoted,
            started_ms,
            lease_remaining_ms: self.proven_left(io),
            settings: self.settings.clone(),
        };
        io.publish(report);
    }

    /// The primary's WAL position in the status key (what a failover
    /// compares candidates against), best effort and bounded.
    async fn publish_position(&self, io: &impl LoopIo, lsn: u64) {
        let bound = self.lease_bounded(io, PUBLISH_BOUND_MS);
        match io.timeout(bound, io.put_status(lsn)).await {
            Some(Ok(())) => {}
            Some(Err(e)) => io.log(Level::WARN, &format!("writing the primary position: {e:#}")),
            None => io.log(
                Level::WARN,
                &format!("writing the primary position: no answer within {bound} ms"),
            ),
        }
    }

    /// My member key: best effort, and bounded so that a slow DCS does not
    /// delay an action.
    async fn publish_member(&self, io: &impl LoopIo, pg: &PgStatus) {
        let member = Member {
            conn_url: self.me.conn_url.clone(),
            api_url: self.me.api_url.clone(),
            state: self.state.clone(),
            role: role_word(pg.role).into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            xlog_location: pg.lsn,
            receive_lsn: pg.receive_lsn,
            replay_lsn: pg.replay_lsn,
            timeline: pg.timeline,
            replication_state: pg.streaming.then(|| "streaming".into()),
            tags: self.me.tags.clone(),
            pause: self.paused.then_some(true),
        };
        let bound = self.lease_bounded(io, PUBLISH_BOUND_MS);
        match io.timeout(bound, io.put_member(&member)).await {
            Some(Ok(())) => {}
            Some(Err(e)) => io.log(Level::WARN, &format!("publishing my member key: {e:#}")),
            None => io.log(
                Level::WARN,
                &format!("publishing my member key: no answer within {bound} ms"),
            ),
        }
    }

    /// The core's rule (`ha::watchdog_step`); petting happens after each
    /// renewal, in the keep-alive.
    fn tend_watchdog(&self, io: &impl LoopIo, leading: bool) {
        let lease = Lease {
            held: leading,
            renewed_at_ms: self.proven_at(io),
        };
        let valid = lease.valid(io.now_ms(), self.settings.fence_after_ms());
        match ha::watchdog_step(leading, valid, io.watchdog_armed()) {
            WatchdogStep::Arm => io.arm_watchdog(),
            WatchdogStep::Disarm => io.disarm_watchdog(),
            WatchdogStep::Keep => {}
        }
    }

    /// Failsafe mode's part of the observation. A primary that cannot read
    /// the DCS asks every other PostgreSQL member to promise not to take
    /// over; when all accept, the round counts as proof (and pets the
    /// watchdog, as a lease renewal would). Any other member reports the
    /// promise it keeps.
    async fn failsafe_step(
        &mut self,
        io: &impl LoopIo,
        dcs_lost: bool,
        health: &PgStatus,
    ) -> Failsafe {
        if !self.settings.failsafe_mode {
            return Failsafe::default();
        }
        let primary = health.running && health.role == Role::Primary;
        if !primary {
            self.failsafe_confirmed_ms = None;
        } else if dcs_lost {
            let sent = io.now_ms();
            // Bounded by what is left of the current proof: a member that
            // does not answer must not hold the loop past the fencing
            // point, where it demotes (and past which the watchdog, petted
            // at the last proof, soon resets the box).
            // Without any proof yet (a pgboxd that restarted beside a
            // running primary), one TTL: the round is bounded by the API
            // client's timeout anyway.
            let left = self.proven_left(io).unwrap_or(self.settings.ttl_ms);
            let confirmed =
                left > 0 && io.timeout(left, io.failsafe_round()).await.unwrap_or(false);
            if confirmed {
                self.failsafe_confirmed_ms = Some(sent);
                io.pet_watchdog();
            }
        }
        let (promised_to, promised_at) = io.promise();
        Failsafe {
            confirmed_at_ms: self.failsafe_confirmed_ms,
            promised_at_ms: Some(promised_at),
            promised_to,
        }
    }

    /// A clean stop: PostgreSQL first (a fast shutdown sends all WAL to the
    /// standbys), then the leader key, so a replica promotes at once with
    /// every committed transaction; then my lease, so my member key goes.
    pub async fn shutdown(&mut self, io: &mut impl LoopIo) {
        let was_leader = self.leading;
        io.log(
            Level::INFO,
            &format!("shutting down (leader: {was_leader})"),
        );
        if let Err(e) = io.stop_for_shutdown().await {
            io.log(Level::ERROR, &format!("stopping postgres: {e:#}"));
        }
        if was_leader {
            match io.release_leader().await {
                Ok(()) => io.log(Level::INFO, "released the leader key"),
                Err(e) => io.log(
                    Level::ERROR,
                    &format!("releasing the leader key: {e:#}; it expires with the lease"),
                ),
            }
        }
        if let Err(e) = io.revoke_lease().await {
            io.log(Level::WARN, &format!("revoking the lease: {e:#}"));
        }
    }
}

/// The state word members see once a loop's actions are done.
fn state_word(io: &mut impl LoopIo, health: &PgStatus) -> &'static str {
    if health.running {
        "running"
    } else if io.pg_alive() {
        "starting"
    } else if io.pg_initialized() {
        "stopped"
    } else {
        "uninitialized"
    }
}
