//! Carries out the HA core's actions: the only place where a decision turns
//! into DCS writes and PostgreSQL process control.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::config::{Config, Role as NodeRole};
use crate::dcs::etcd::Etcd;
use crate::dcs::model::{format_lsn, HistoryEntry, SyncKey};
use crate::ha::{Action, StartAs};
use crate::postgres::{conf, Postgres, Upstream};
use crate::watchdog::SharedWatchdog;

/// A race this member lost (the bootstrap or leader key went to another):
/// the protocol working as designed, not a fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RaceLost(pub &'static str);

pub struct Executor {
    cfg: Arc<Config>,
    me: String,
    pub dcs: Arc<Etcd>,
    pub pg: Postgres,
    /// This member holds an unfinished claim of the `initialize` key.
    claimed_initialize: bool,
    /// Disarmed the moment PostgreSQL accepts a stop.
    watchdog: SharedWatchdog,
    /// How long after a lease renewal a primary stops counting on it
    /// (`Settings::fence_after_ms`).
    fence_after: Duration,
}

impl Executor {
    pub fn new(
        cfg: Arc<Config>,
        me: String,
        dcs: Arc<Etcd>,
        pg: Postgres,
        watchdog: SharedWatchdog,
        fence_after: Duration,
    ) -> Self {
        Executor {
            cfg,
            me,
            dcs,
            pg,
            claimed_initialize: false,
            watchdog,
            fence_after,
        }
    }

    /// What is left of the proven part of my lease: a primary's DCS write
    /// may not hold the loop past its fencing point, where it must demote
    /// (and past which its watchdog soon resets the box).
    fn proven_left(&self) -> Duration {
        self.dcs
            .renewed_at()
            .map(|t| (t + self.fence_after).saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    async fn release_initialize_claim(&mut self) {
        self.claimed_initialize = false;
        match self.dcs.delete_initialize().await {
            Ok(()) => tracing::info!("released my claim of the initialize key"),
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "releasing my claim of the initialize key; it goes with my lease"
            ),
        }
    }

    /// The state word other members and the API see while `action` runs.
    pub fn state_during(action: &Action) -> &'static str {
        match action {
            Action::ClaimInitialize | Action::AcquireLeader | Action::RetakeLeader { .. } => {
                "running"
            }
            Action::Bootstrap => "initializing new cluster",
            Action::BaseBackup { .. } => "creating replica",
            Action::Rewind { .. } => "rewinding",
            Action::RemoveData => "reinitializing",
            Action::Start(_) => "starting",
            Action::Stop => "stopping",
            Action::Promote => "promoting",
            Action::Follow { .. }
            | Action::SetSyncNames(_)
            | Action::WriteSync(_)
            | Action::ClearFailover
            | Action::Fence { .. } => "running",
            Action::Checkpoint | Action::ReleaseLeader => "stopping",
        }
    }

    fn upstream(&self, name: &str) -> Result<Upstream> {
        conf::upstream_of(&self.cfg, name)
            .with_context(|| format!("{name} is not a node of this cluster"))
    }

    /// Other PostgreSQL members: each gets a replication slot on the primary.
    fn other_postgres_members(&self) -> Vec<String> {
        self.cfg
            .nodes_with(NodeRole::Postgres)
            .filter(|n| n.name != self.me)
            .map(|n| n.name.clone())
            .collect()
    }

    pub async fn run(&mut self, action: &Action) -> Result<()> {
        match action {
            Action::ClaimInitialize => {
                if !self.dcs.claim_initialize().await? {
                    return Err(RaceLost("another member claimed the initialize key first").into());
                }
                self.claimed_initialize = true;
                Ok(())
            }
            Action::AcquireLeader => {
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
                tracing::info!("acquired the leader key");
                Ok(())
            }
            Action::RetakeLeader { sync } => {
                if !self.dcs.retake_leader(sync).await? {
                    return Err(RaceLost(
                        "the leader key is held, or the sync key changed: a candidate took over",
                    )
                    .into());
                }
                tracing::info!("took the leader key back after a failed hand-over");
                Ok(())
            }
            Action::Bootstrap => {
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
            Action::BaseBackup { from } => {
                let up = self.upstream(from)?;
                tracing::info!(from = %from, "taking a base backup");
                self.pg.base_backup(&up).await
            }
            Action::Rewind { from } => {
                let up = self.upstream(from)?;
                self.pg.rewind(&up).await.context("pg_rewind")
            }
            Action::RemoveData => self.pg.remove_data(),
            Action::Start(StartAs::Primary) => {
                // Restarting in place: PostgreSQL must wait for the standby
                // the sync key names before it acknowledges anything, or the
                // key would claim more than PostgreSQL enforces.
                let names = self.sync_names_for_restart().await;
                self.pg.set_sync_names_for_start(&names);
                self.pg.start(None).await?;
                self.pg.ensure_slots(&self.other_postgres_members()).await
            }
            Action::Start(StartAs::Replica { leader }) => {
                let up = leader.as_deref().map(|l| self.upstream(l)).transpose()?;
                self.pg.start(Some(up)).await
            }
            Action::Stop => {
                // A demoting primary whose lease renewals failed has little
                // time left before the watchdog fires, and a fast shutdown
                // can take seconds on a loaded box: once PostgreSQL has
                // accepted the stop it acknowledges nothing new, so the
                // reset would only cut the demotion short (and turn a
                // seconds-long failover into a reboot).
                let wd = self.watchdog.clone();
                self.pg.stop_with(move || wd.disarm()).await
            }
            Action::Promote => self.promote().await,
            Action::Follow { leader } => {
                let up = self.upstream(leader)?;
                self.pg.follow(&up).await
            }
            Action::ReleaseLeader => {
                self.dcs.release_leader().await?;
                tracing::info!("released the leader key");
                Ok(())
            }
            Action::Checkpoint => self.pg.checkpoint().await,
            Action::SetSyncNames(names) => {
                self.pg.set_sync_names(names).await?;
                tracing::info!("synchronous_standby_names = {names:?}");
                Ok(())
            }
            Action::WriteSync(standby) => {
                let key = SyncKey {
                    leader: Some(self.me.clone()),
                    sync_standby: standby.clone(),
                };
                let left = self.proven_left();
                tokio::time::timeout(left, self.dcs.put_sync(&key))
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "writing the sync key: no answer within the proven part of my lease ({left:?})"
                        )
                    })?
            }
            // Bounded: it often follows a promotion, and a DCS lost then
            // must not hold the loop (and its fencing) hostage; the next
            // loop clears it again.
            Action::ClearFailover => tokio::time::timeout(
                self.proven_left().min(Duration::from_secs(1)),
                self.dcs.clear_failover(),
            )
            .await
            .map_err(|_| anyhow::anyhow!("clearing the failover key: no answer within 1 s"))?,
            Action::Fence { members, within_ms } => self.fence(members, *within_ms).await,
        }
    }

    /// Fence each member's PostgreSQL (postgres/fence.rs), then wait until
    /// mine has received the WAL each had written: in asynchronous mode,
    /// the commits it acknowledged that had not reached me yet.
    async fn fence(&mut self, members: &[String], within_ms: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_millis(within_ms);
        let ups = members
            .iter()
            .map(|m| self.upstream(m))
            .collect::<Result<Vec<_>>>()?;
        let cfg = self.cfg.clone();
        let results = futures::future::join_all(
            ups.iter()
                .map(|up| crate::postgres::fence::fence(&cfg, up, deadline)),
        )
        .await;
        let mut target: Option<(String, crate::postgres::fence::Fenced)> = None;
        let mut errors = Vec::new();
        for (up, r) in ups.iter().zip(results) {
            match r {
                Ok(Some(f)) if target.as_ref().is_none_or(|(_, t)| f.lsn > t.lsn) => {
                    target = Some((up.name.clone(), f))
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
            if Instant::now() >= deadline {
                bail!(
                    "{name} is fenced, but my PostgreSQL has its WAL only up to {} of {}",
                    h.lsn.map_or("?".into(), format_lsn),
                    format_lsn(fenced.lsn)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn sync_names_for_restart(&self) -> String {
        use crate::config::SyncMode;
        let mode = self.cfg.ha.synchronous_mode;
        if mode == SyncMode::Off {
            return String::new();
        }
        let recorded =
            match tokio::time::timeout(Duration::from_secs(2), self.dcs.read_view()).await {
                Ok(Ok((view, _))) => view
                    .sync
                    .filter(|k| k.leader.as_deref() == Some(self.me.as_str()))
                    .and_then(|k| k.sync_standby),
                // Unknown: wait for any standby rather than risk claiming more.
                _ => return "*".into(),
            };
        match recorded {
            Some(s) => format!("\"{}\"", conf::slot_name(&s)),
            None if mode == SyncMode::Strict => "*".into(),
            None => String::new(),
        }
    }

    async fn bootstrap(&mut self) -> Result<()> {
        tracing::info!("initializing a new cluster (initdb)");
        self.pg.initdb().await.context("initdb")?;
        self.pg.start(None).await?;
        self.pg.create_roles().await?;
        self.pg.ensure_slots(&self.other_postgres_members()).await?;
        let h = self.pg.health().await;
        let sysid = h
            .system_identifier
            .context("reading the new system identifier")?;
        self.dcs.set_initialize(&sysid).await?;
        if let Some(lsn) = h.lsn {
            self.dcs.put_status(lsn).await?;
        }
        tracing::info!(system_id = %sysid, "cluster initialized");
        Ok(())
    }

    async fn promote(&mut self) -> Result<()> {
        let before = self.pg.health().await;
        if self.cfg.ha.synchronous_mode != crate::config::SyncMode::Off {
            // Hold every commit until my first loop as leader has taken
            // over the sync key (`Action::Promote`).
            self.pg.set_sync_names(conf::TAKEOVER_HOLD_NAMES).await?;
        }
        self.pg.promote().await?;
        // Slots first: the old primary rejoining finds its slot waiting.
        if let Err(e) = self.pg.ensure_slots(&self.other_postgres_members()).await {
            tracing::warn!(error = %format!("{e:#}"), "creating replication slots after promotion");
        }
        let after = self.pg.health().await;
        let old_tl = before
            .timeline
            .unwrap_or(after.timeline.unwrap_or(1).saturating_sub(1));
        let switch_lsn = before.lsn.unwrap_or_default();
        let entry = HistoryEntry(
            old_tl,
            switch_lsn,
            format!("promoted {} at {}", self.me, format_lsn(switch_lsn)),
            humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            self.me.clone(),
        );
        // Bounded: a DCS lost right after the promotion must not hold the
        // loop (and its fencing) hostage.
        let bound = self.proven_left().min(Duration::from_secs(1));
        match tokio::time::timeout(bound, self.dcs.append_history(entry)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "recording the timeline switch in history")
            }
            Err(_) => {
                tracing::warn!("recording the timeline switch in history: no answer within 1 s")
            }
        }
        if let Some(lsn) = after.lsn {
            let _ = tokio::time::timeout(
                self.proven_left().min(Duration::from_millis(500)),
                self.dcs.put_status(lsn),
            )
            .await;
        }
        tracing::info!(timeline = ?after.timeline, "promoted: now primary");
        Ok(())
    }
}
