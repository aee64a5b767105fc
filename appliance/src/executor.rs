//! Carries out the HA core's actions: the only place where a decision turns
//! into DCS writes and PostgreSQL process control.
//!
//! Written once, over what the actions touch: the DCS transactions they need
//! ([`ActionDcs`]), the local PostgreSQL and the fence set on another
//! member's server ([`PgControl`]), and a clock with a journal ([`Clock`]).
//! pgboxd runs it over etcd-client, its PostgreSQL child and tokio
//! (executor/real.rs); the simulator runs this very code over its simulated
//! DCS, PostgreSQL and clock (sim/node.rs), so every seed of a sweep
//! exercises the actions pgboxd ships.

// Awaited where they are created (pgboxd's main task, the simulator's
// single-threaded executor); nothing needs these futures Send.
#![allow(async_fn_in_trait)]

pub mod real;

use anyhow::{bail, Result};

use crate::clock::{Clock, Level};
use crate::config::SyncMode;
use crate::dcs::model::{format_lsn, HistoryEntry, SyncKey};
use crate::ha::{self, Action, StartAs};
use crate::postgres::conf;
use crate::postgres::fence::Fenced;
use crate::status::PgStatus;

/// A race this member lost (the bootstrap or leader key went to another):
/// the protocol working as designed, not a fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RaceLost(pub &'static str);

/// The DCS transactions the actions need; each is one etcd request (or
/// one read-then-compare-and-set) on this member's own lease.
pub trait ActionDcs {
    /// When my lease's last successful renewal was sent (`Clock::now_ms`).
    fn renewed_at_ms(&self) -> Option<u64>;
    /// Create `initialize` (empty, on my lease) if absent: I won the race.
    async fn claim_initialize(&self) -> Result<bool>;
    /// Delete `initialize` if it is still my unfinished claim.
    async fn release_initialize_claim(&self) -> Result<()>;
    /// Record the new cluster's system identifier for good.
    async fn set_initialize(&self, system_id: &str) -> Result<()>;
    /// Take the leader key if free, or re-bind it if it names me.
    async fn acquire_leader(&self) -> Result<bool>;
    /// Take the free leader key only while the `sync` key is still `sync`.
    async fn retake_leader(&self, sync: &SyncKey) -> Result<bool>;
    /// Delete the leader key if it names me.
    async fn release_leader(&self) -> Result<()>;
    /// Write the `sync` key while the leader key names me.
    async fn put_sync(&self, key: &SyncKey) -> Result<()>;
    async fn read_sync(&self) -> Result<Option<SyncKey>>;
    /// `history` and `sync`, in one read.
    async fn read_history_and_sync(&self) -> Result<(Vec<HistoryEntry>, Option<SyncKey>)>;
    async fn clear_failover(&self) -> Result<()>;
    /// Reserve, while the leader key names me, the timeline my promotion
    /// will open: `next` or, if a member reserved that far already, one
    /// past its reservation. Returns the reserved number.
    async fn reserve_timeline(&self, next: u32) -> Result<u32>;
    /// Append a timeline switch while the leader key names me.
    async fn append_history(&self, entry: HistoryEntry) -> Result<()>;
    async fn put_status(&self, lsn: u64) -> Result<()>;
    /// Write the cluster-wide settings from pgbox.yaml into the `config`
    /// key if it does not exist (a new cluster's first leader does).
    async fn seed_config(&self) -> Result<()>;
}

/// The local PostgreSQL under pgboxd's control, and the fence on another
/// member's. Members are named as in the first-boot file.
pub trait PgControl {
    async fn initdb(&mut self) -> Result<()>;
    /// The roles and database the first-boot file asks for.
    async fn create_roles(&mut self) -> Result<()>;
    /// `None`: as primary; `Some(None)`: a read-only standby; `Some(Some(m))`:
    /// a standby streaming from m. Returns once it accepts connections.
    async fn start(&mut self, standby: Option<Option<&str>>) -> Result<()>;
    /// synchronous_standby_names for the next start as primary.
    fn set_sync_names_for_start(&mut self, names: &str);
    /// A fast shutdown. The watchdog is disarmed as soon as the postmaster
    /// has accepted it: from then on it acknowledges nothing new, and on a
    /// loaded box the shutdown can take seconds that a demoting primary
    /// whose renewals failed does not have before the reset.
    async fn stop(&mut self) -> Result<()>;
    fn remove_data(&mut self) -> Result<()>;
    async fn base_backup(&mut self, from: &str) -> Result<()>;
    async fn rewind(&mut self, from: &str) -> Result<()>;
    async fn follow(&mut self, leader: &str) -> Result<()>;
    async fn checkpoint(&mut self) -> Result<()>;
    /// The running server reads its configuration files again.
    async fn reload(&mut self) -> Result<()>;
    /// Move the data directory aside (replacing an earlier set-aside one),
    /// leaving none in its place.
    fn set_aside_data(&mut self) -> Result<()>;
    /// Put the set-aside data directory back (there must be none in place).
    fn restore_set_aside(&mut self) -> Result<()>;
    /// Remove the set-aside data directory.
    fn drop_set_aside(&mut self) -> Result<()>;
    /// Reload with new synchronous_standby_names (remembered for the next
    /// start even when the reload fails).
    async fn set_sync_names(&mut self, names: &str) -> Result<()>;
    /// The timeline a promotion would open now (one past the newest whose
    /// history file the server has).
    async fn next_timeline(&mut self) -> Result<u32>;
    /// Leave a placeholder history file for every timeline below `target`
    /// that has none, so that the next promotion opens `target`.
    async fn skip_timelines(&mut self, target: u32) -> Result<()>;
    /// pg_promote, waiting until it has finished.
    async fn promote(&mut self) -> Result<()>;
    /// A replication slot for each of `members`.
    async fn ensure_slots(&mut self, members: &[String]) -> Result<()>;
    async fn health(&mut self) -> PgStatus;
    /// Fence `member`'s PostgreSQL if it runs as primary (postgres/fence.rs)
    /// and say where its WAL stood then; None when it is not a primary.
    /// Gives up after `within_ms`.
    async fn fence(&self, member: &str, within_ms: u64) -> Result<Option<Fenced>>;
}

/// The state word other members and the API see while `action` runs.
pub fn state_during(action: &Action) -> &'static str {
    match action {
        Action::ClaimInitialize | Action::AcquireLeader | Action::RetakeLeader { .. } => "running",
        Action::Bootstrap => "initializing new cluster",
        Action::BaseBackup { .. } => "creating replica",
        Action::Rewind { .. } => "rewinding",
        Action::RemoveData | Action::Reinitialize { .. } => "reinitializing",
        Action::Start(_) => "starting",
        Action::Stop => "stopping",
        Action::Promote => "promoting",
        Action::Follow { .. }
        | Action::SetSyncNames(_)
        | Action::WriteSync(_)
        | Action::ClearFailover
        | Action::Fence { .. }
        | Action::Reload => "running",
        Action::Checkpoint | Action::ReleaseLeader => "stopping",
    }
}

pub struct Executor<D, P, C> {
    me: String,
    /// The other PostgreSQL members: each gets a replication slot.
    others: Vec<String>,
    mode: SyncMode,
    /// How long after a lease renewal a primary stops counting on it
    /// (`Settings::fence_after_ms`).
    fence_after_ms: u64,
    /// This member holds an unfinished claim of the `initialize` key.
    claimed_initialize: bool,
    pub dcs: D,
    pub pg: P,
    pub clock: C,
}

/// How long a write that follows a promotion may take (then cut to the
/// lease): a DCS lost right then must not hold the loop, and its fencing,
/// hostage.
const AFTER_PROMOTION_MS: u64 = 1_000;

impl<D: ActionDcs, P: PgControl, C: Clock> Executor<D, P, C> {
    pub fn new(
        me: String,
        others: Vec<String>,
        mode: SyncMode,
        fence_after_ms: u64,
        dcs: D,
        pg: P,
        clock: C,
    ) -> Self {
        Executor {
            me,
            others,
            mode,
            fence_after_ms,
            claimed_initialize: false,
            dcs,
            pg,
            clock,
        }
    }

    /// What is left of the proven part of my lease: a primary's DCS write
    /// may not hold the loop past its fencing point, where it must demote
    /// (and past which its watchdog soon resets the box).
    fn proven_left(&self) -> u64 {
        self.dcs.renewed_at_ms().map_or(0, |t| {
            (t + self.fence_after_ms).saturating_sub(self.clock.now_ms())
        })
    }

    fn info(&self, message: &str) {
        self.clock.log(Level::INFO, message);
    }

    fn warn(&self, message: &str) {
        self.clock.log(Level::WARN, message);
    }

    async fn release_initialize_claim(&mut self) {
        self.claimed_initialize = false;
        match self.dcs.release_initialize_claim().await {
            Ok(()) => self.info("released my claim of the initialize key"),
            Err(e) => self.warn(&format!(
                "releasing my claim of the initialize key: {e:#}; it goes with my lease"
            )),
        }
    }

    /// Carry out one action: each arm names the step, the steps follow.
    pub async fn run(&mut self, action: &Action) -> Result<()> {
        match action {
            Action::ClaimInitialize => self.claim_initialize().await,
            Action::AcquireLeader => self.acquire_leader().await,
            Action::RetakeLeader { sync } => self.retake_leader(sync).await,
            Action::Bootstrap => self.bootstrap_or_undo().await,
            Action::BaseBackup { from } => {
                self.info(&format!("taking a base backup from {from}"));
                self.pg.base_backup(from).await
            }
            Action::Rewind { from } => self.pg.rewind(from).await,
            Action::RemoveData => self.pg.remove_data(),
            Action::Start(StartAs::Primary) => self.start_primary().await,
            Action::Start(StartAs::Replica { leader }) => {
                self.pg.start(Some(leader.as_deref())).await
            }
            Action::Stop => self.pg.stop().await,
            Action::Promote => self.promote().await,
            Action::Follow { leader } => self.pg.follow(leader).await,
            Action::ReleaseLeader => {
                self.dcs.release_leader().await?;
                self.info("released the leader key");
                Ok(())
            }
            Action::Checkpoint => self.pg.checkpoint().await,
            Action::SetSyncNames(names) => self.set_sync_names(names).await,
            Action::WriteSync(standby) => self.write_sync(standby.clone()).await,
            Action::ClearFailover => self.clear_failover().await,
            Action::Fence { members, within_ms } => self.fence(members, *within_ms).await,
            Action::Reload => {
                self.pg.reload().await?;
                self.info("PostgreSQL reloaded its configuration");
                Ok(())
            }
            Action::Reinitialize { from } => self.reinitialize(from).await,
        }
    }

    async fn claim_initialize(&mut self) -> Result<()> {
        if !self.dcs.claim_initialize().await? {
            return Err(RaceLost("another member claimed the initialize key first").into());
        }
        self.claimed_initialize = true;
        Ok(())
    }

    async fn acquire_leader(&mut self) -> Result<()> {
        let result = match self.dcs.acquire_leader().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(RaceLost("another member holds the leader key").into()),
            Err(e) => Err(e),
        };
        if result.is_err() && self.claimed_initialize {
            // The bootstrap this claim was for cannot go on: free the
            // claim now, or every member (this one too) would wait
            // for a leader that never comes until my lease expired.
            self.release_initialize_claim().await;
        }
        result?;
        self.info("acquired the leader key");
        Ok(())
    }

    async fn retake_leader(&mut self, sync: &SyncKey) -> Result<()> {
        if !self.dcs.retake_leader(sync).await? {
            return Err(RaceLost(
                "the leader key is held, or the sync key changed: a candidate took over",
            )
            .into());
        }
        self.info("took the leader key back after a failed hand-over");
        Ok(())
    }

    async fn bootstrap_or_undo(&mut self) -> Result<()> {
        let result = self.bootstrap().await;
        if result.is_err() {
            // Leave the cluster as it was, so any member (this one
            // included) can try again from scratch.
            let _ = self.pg.stop().await;
            let _ = self.pg.remove_data();
            self.release_initialize_claim().await;
            let _ = self.dcs.release_leader().await;
        }
        self.claimed_initialize = false;
        result
    }

    async fn start_primary(&mut self) -> Result<()> {
        let sync = self
            .clock
            .timeout(2_000, self.dcs.read_sync())
            .await
            .and_then(Result::ok);
        let names =
            ha::sync_names_for_restart(self.mode, &self.me, sync.as_ref().map(Option::as_ref));
        self.pg.set_sync_names_for_start(&names);
        // As before pg_promote: a pgboxd that stood still after it
        // took the key (fresh 3-on seed 5355488: frozen for 18 s
        // after taking it back from a failed hand-over) must not
        // start writable on a lease that may be gone.
        if self.proven_left() == 0 {
            bail!("not starting as primary: my lease is no longer proven valid");
        }
        self.pg.start(None).await?;
        self.pg.ensure_slots(&self.others).await
    }

    async fn set_sync_names(&mut self, names: &str) -> Result<()> {
        // Only a leader on a proven lease changes what its commits
        // wait for: releasing the takeover hold (or waiting for
        // fewer standbys) makes commits acknowledgeable, and a box
        // whose VM stood still between two actions may find its
        // lease gone when it resumes (the simulator did).
        if self.proven_left() == 0 {
            bail!("not setting synchronous_standby_names to {names:?}: my lease is no longer proven valid");
        }
        self.pg.set_sync_names(names).await?;
        self.info(&format!("synchronous_standby_names = {names:?}"));
        Ok(())
    }

    async fn write_sync(&mut self, standby: Option<String>) -> Result<()> {
        let key = SyncKey {
            leader: Some(self.me.clone()),
            sync_standby: standby,
        };
        let left = self.proven_left();
        self.clock
            .timeout(left, self.dcs.put_sync(&key))
            .await
            .unwrap_or_else(|| {
                bail!("writing the sync key: no answer within the proven part of my lease ({left} ms)")
            })
    }

    /// Bounded: it often follows a promotion; the next loop clears it again.
    async fn clear_failover(&mut self) -> Result<()> {
        let bound = self.proven_left().min(AFTER_PROMOTION_MS);
        self.clock
            .timeout(bound, self.dcs.clear_failover())
            .await
            .unwrap_or_else(|| bail!("clearing the failover key: no answer within {bound} ms"))
    }

    /// A fresh clone from `from`, with the old data directory kept aside
    /// until the clone has succeeded: a clone that fails (the leader gone
    /// mid-copy, a full disk) puts the old one back, so a reinitialize
    /// never leaves a member with less than it had.
    async fn reinitialize(&mut self, from: &str) -> Result<()> {
        self.pg.set_aside_data()?;
        self.info(&format!(
            "reinitializing: the old data directory is set aside; taking a base backup from {from}"
        ));
        match self.pg.base_backup(from).await {
            Ok(()) => {
                if let Err(e) = self.pg.drop_set_aside() {
                    self.warn(&format!("removing the old data directory: {e:#}"));
                }
                self.info(&format!("reinitialized from {from}"));
                Ok(())
            }
            Err(e) => {
                let _ = self.pg.remove_data();
                self.pg.restore_set_aside()?;
                Err(e.context(format!(
                    "reinitializing from {from} failed; the old data directory is back in place"
                )))
            }
        }
    }

    /// Fence each member's PostgreSQL, then wait until mine has received
    /// the WAL each had written: in asynchronous mode, the commits it
    /// acknowledged that had not reached me yet.
    async fn fence(&mut self, members: &[String], within_ms: u64) -> Result<()> {
        let deadline = self.clock.now_ms() + within_ms;
        let pg = &self.pg;
        let results =
            futures::future::join_all(members.iter().map(|m| pg.fence(m, within_ms))).await;
        let mut target: Option<(&String, Fenced)> = None;
        let mut errors = Vec::new();
        for (m, r) in members.iter().zip(results) {
            match r {
                Ok(Some(f)) if target.as_ref().is_none_or(|(_, t)| f.lsn > t.lsn) => {
                    target = Some((m, f))
                }
                Ok(_) => {}
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !errors.is_empty() {
            bail!("{}", errors.join("; "));
        }
        let Some((name, fenced)) = target else {
            return Ok(());
        };
        loop {
            let h = self.pg.health().await;
            let same_timeline = fenced.timeline.is_none() || h.timeline == fenced.timeline;
            if !same_timeline || h.lsn.is_some_and(|l| l >= fenced.lsn) {
                return Ok(());
            }
            if self.clock.now_ms() >= deadline {
                bail!(
                    "{name} is fenced, but my PostgreSQL has its WAL only up to {} of {}",
                    h.lsn.map_or("?".into(), format_lsn),
                    format_lsn(fenced.lsn)
                );
            }
            self.clock.sleep(20).await;
        }
    }

    async fn bootstrap(&mut self) -> Result<()> {
        self.info("initializing a new cluster (initdb)");
        self.pg.initdb().await?;
        self.pg.start(None).await?;
        self.pg.create_roles().await?;
        self.pg.ensure_slots(&self.others).await?;
        let h = self.pg.health().await;
        let Some(sysid) = h.system_identifier else {
            bail!("reading the new system identifier: the server did not say");
        };
        self.dcs.set_initialize(&sysid).await?;
        if let Some(lsn) = h.lsn {
            self.dcs.put_status(lsn).await?;
        }
        // Best effort: without the key the members apply pgbox.yaml, which
        // is what it would say.
        if let Err(e) = self.dcs.seed_config().await {
            self.warn(&format!(
                "writing the cluster-wide settings into the config key: {e:#}"
            ));
        }
        self.info(&format!("cluster initialized (system identifier {sysid})"));
        Ok(())
    }

    /// A promotion must open a timeline number no server ever used. A
    /// member that promoted and lost the DCS before it could record the
    /// switch in history left a timeline the cluster does not know of; the
    /// next promotion elsewhere would open the same number from the same
    /// parent, and then neither pg_rewind (it compares only the numbers)
    /// nor streaming can bring the first one back. So the number is
    /// reserved in the DCS before pg_promote, and placeholder history
    /// files make PostgreSQL skip the numbers reserved before it.
    async fn reserve_timeline(&mut self) -> Result<u32> {
        let next = self.pg.next_timeline().await?;
        let bound = self
            .proven_left()
            .clamp(AFTER_PROMOTION_MS / 2, AFTER_PROMOTION_MS);
        let target = match self
            .clock
            .timeout(bound, self.dcs.reserve_timeline(next))
            .await
        {
            Some(Ok(t)) => t,
            Some(Err(e)) => bail!("not promoting: reserving timeline {next}: {e:#}"),
            None => bail!("not promoting: reserving timeline {next}: no answer within {bound} ms"),
        };
        if target > next {
            self.info(&format!(
                "timeline numbers up to {} were reserved by earlier promotions; opening {target}",
                target - 1
            ));
            self.pg.skip_timelines(target).await?;
        }
        Ok(target)
    }

    /// `pg_promote` onto a reserved timeline, then the records of the
    /// switch: the check before, the history entry and status after.
    async fn promote(&mut self) -> Result<()> {
        let before = self.pg.health().await;
        self.check_my_timeline(before.timeline).await?;
        let target = self.reserve_timeline().await?;
        if self.mode != SyncMode::Off {
            // Hold every commit until my first loop as leader has taken
            // over the sync key (`Action::Promote`).
            self.pg.set_sync_names(conf::TAKEOVER_HOLD_NAMES).await?;
        }
        // The last moment to back out: a pgboxd that stood still after it
        // took the key (frozen, starved) may resume with its lease gone and
        // the key another member's.
        if self.proven_left() == 0 {
            bail!("not promoting: my lease is no longer proven valid");
        }
        self.pg.promote().await?;
        // Slots first: the old primary rejoining finds its slot waiting.
        if let Err(e) = self.pg.ensure_slots(&self.others).await {
            self.warn(&format!(
                "creating replication slots after promotion: {e:#}"
            ));
        }
        let after = self.pg.health().await;
        if after.timeline.is_some_and(|t| t != target) {
            self.warn(&format!(
                "promoted onto timeline {}, not the reserved {target}",
                after.timeline.unwrap_or(0)
            ));
        }
        self.record_promotion(&before, &after).await;
        self.info(&format!(
            "promoted: now primary on timeline {}",
            after.timeline.unwrap_or(0)
        ));
        Ok(())
    }

    /// The decision was made on a view read before this loop asked its
    /// peers; a member promoted meanwhile has recorded its timeline before
    /// it could let go of the leader key I now hold. Promoting from an
    /// older timeline would open a second timeline with the newest one's
    /// number, a fork no standby and no pg_rewind can tell.
    async fn check_my_timeline(&self, mine: Option<u32>) -> Result<()> {
        let bound = self
            .proven_left()
            .clamp(AFTER_PROMOTION_MS / 2, AFTER_PROMOTION_MS);
        let records = self
            .clock
            .timeout(bound, self.dcs.read_history_and_sync())
            .await;
        let Some(Ok((history, sync))) = records else {
            bail!("not promoting: the history could not be read to check my timeline");
        };
        match ha::timeline_refusal(self.mode, &self.me, mine, &history, sync.as_ref()) {
            Some(why) => bail!("not promoting: {why}"),
            None => Ok(()),
        }
    }

    /// The switch in the cluster's history and my new position in the
    /// status key, each bounded by the lease: the promotion stands
    /// whether or not the DCS takes them. An entry that never arrives is
    /// why an election reads what a member's WAL holds from its own
    /// history file, not from this record.
    async fn record_promotion(&mut self, before: &PgStatus, after: &PgStatus) {
        let old_tl = before
            .timeline
            .unwrap_or(after.timeline.unwrap_or(1).saturating_sub(1));
        let switch_lsn = before.lsn.unwrap_or_default();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.clock.now_unix_ms());
        let entry = HistoryEntry(
            old_tl,
            switch_lsn,
            format!("promoted {} at {}", self.me, format_lsn(switch_lsn)),
            humantime::format_rfc3339_millis(at).to_string(),
            self.me.clone(),
        );
        let bound = self.proven_left().min(AFTER_PROMOTION_MS);
        match self
            .clock
            .timeout(bound, self.dcs.append_history(entry))
            .await
        {
            Some(Ok(())) => {}
            Some(Err(e)) => self.warn(&format!("recording the timeline switch in history: {e:#}")),
            None => self.warn(&format!(
                "recording the timeline switch in history: no answer within {bound} ms"
            )),
        }
        if let Some(lsn) = after.lsn {
            let bound = self.proven_left().min(AFTER_PROMOTION_MS / 2);
            let _ = self.clock.timeout(bound, self.dcs.put_status(lsn)).await;
        }
    }
}
