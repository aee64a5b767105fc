//! The executor's I/O in pgboxd: etcd through dcs/etcd.rs, the PostgreSQL
//! child through postgres/, tokio's clock. Thin on purpose: every decision
//! about what to do, and in which order, is in the executor itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{ActionDcs, Executor, PgControl};
use crate::clock::TokioClock;
use crate::config::Config;
use crate::dcs::etcd::Etcd;
use crate::dcs::model::{HistoryEntry, SyncKey};
use crate::postgres::fence::Fenced;
use crate::postgres::{conf, Postgres, Upstream};
use crate::status::PgStatus;
use crate::watchdog::SharedWatchdog;

pub type PgboxdExecutor = Executor<EtcdActions, LocalPostgres, TokioClock>;

/// The DCS as the executor writes it.
pub struct EtcdActions {
    pub etcd: Arc<Etcd>,
    pub clock: TokioClock,
    /// The `config` key a new cluster starts with (`config::dynamic::initial_doc`).
    pub initial_config: crate::dcs::model::DynamicConfig,
}

impl ActionDcs for EtcdActions {
    async fn seed_config(&self) -> Result<()> {
        self.etcd
            .put_config_if(&self.initial_config, 0)
            .await
            .map(|_| ())
    }
    fn renewed_at_ms(&self) -> Option<u64> {
        self.etcd.renewed_at_ms()
    }
    async fn claim_initialize(&self) -> Result<bool> {
        self.etcd.claim_initialize().await
    }
    async fn release_initialize_claim(&self) -> Result<()> {
        self.etcd.release_initialize_claim().await
    }
    async fn set_initialize(&self, system_id: &str) -> Result<()> {
        self.etcd.set_initialize(system_id).await
    }
    async fn acquire_leader(&self) -> Result<bool> {
        self.etcd.acquire_leader().await
    }
    async fn retake_leader(&self, sync: &SyncKey) -> Result<bool> {
        self.etcd.retake_leader(sync).await
    }
    async fn release_leader(&self) -> Result<()> {
        self.etcd.release_leader().await
    }
    async fn put_sync(&self, key: &SyncKey) -> Result<()> {
        self.etcd.put_sync(key).await
    }
    async fn read_sync(&self) -> Result<Option<SyncKey>> {
        Ok(self.etcd.read_view().await?.0.sync)
    }
    async fn read_history_and_sync(&self) -> Result<(Vec<HistoryEntry>, Option<SyncKey>)> {
        let view = self.etcd.read_view().await?.0;
        Ok((view.history, view.sync))
    }
    async fn clear_failover(&self) -> Result<()> {
        self.etcd.clear_failover().await
    }
    async fn reserve_timeline(&self, next: u32) -> Result<u32> {
        self.etcd.reserve_timeline(next).await
    }
    async fn append_history(&self, entry: HistoryEntry) -> Result<()> {
        self.etcd.append_history(entry).await
    }
    async fn put_status(&self, lsn: u64) -> Result<()> {
        self.etcd.put_status(lsn).await
    }
}

/// pgboxd's own PostgreSQL server, and connections to the other members'.
pub struct LocalPostgres {
    pub pg: Postgres,
    pub cfg: Arc<Config>,
    /// Disarmed the moment PostgreSQL accepts a stop.
    pub watchdog: SharedWatchdog,
}

impl LocalPostgres {
    fn upstream(&self, name: &str) -> Result<Upstream> {
        conf::upstream_of(&self.cfg, name)
            .with_context(|| format!("{name} is not a node of this cluster"))
    }
}

impl PgControl for LocalPostgres {
    async fn initdb(&mut self) -> Result<()> {
        // A new cluster of blank boxes whose file names a restore comes up
        // from the backup repository instead.
        match self.cfg.backup.as_ref().and_then(|b| b.restore.clone()) {
            Some(target) => self.pg.restore_from_repository(&target).await,
            None => self.pg.initdb().await.context("initdb"),
        }
    }
    async fn create_roles(&mut self) -> Result<()> {
        self.pg.create_roles().await
    }
    async fn start(&mut self, standby: Option<Option<&str>>) -> Result<()> {
        let standby = match standby {
            None => None,
            Some(None) => Some(None),
            Some(Some(m)) => Some(Some(self.upstream(m)?)),
        };
        self.pg.start(standby).await
    }
    fn set_sync_names_for_start(&mut self, names: &str) {
        self.pg.set_sync_names_for_start(names)
    }
    async fn stop(&mut self) -> Result<()> {
        let wd = self.watchdog.clone();
        self.pg.stop_with(move || wd.disarm()).await
    }
    fn remove_data(&mut self) -> Result<()> {
        self.pg.remove_data()
    }
    async fn base_backup(&mut self, from: &str) -> Result<()> {
        let up = self.upstream(from)?;
        self.pg.base_backup(&up).await
    }
    async fn rewind(&mut self, from: &str) -> Result<()> {
        let up = self.upstream(from)?;
        self.pg.rewind(&up).await.context("pg_rewind")
    }
    async fn follow(&mut self, leader: &str) -> Result<()> {
        let up = self.upstream(leader)?;
        self.pg.follow(&up).await
    }
    async fn checkpoint(&mut self) -> Result<()> {
        self.pg.checkpoint().await
    }
    async fn reload(&mut self) -> Result<()> {
        self.pg.reload().await
    }
    fn set_aside_data(&mut self) -> Result<()> {
        self.pg.set_aside_data()
    }
    fn restore_set_aside(&mut self) -> Result<()> {
        self.pg.restore_set_aside()
    }
    fn drop_set_aside(&mut self) -> Result<()> {
        self.pg.drop_set_aside()
    }
    async fn set_sync_names(&mut self, names: &str) -> Result<()> {
        self.pg.set_sync_names(names).await
    }
    async fn next_timeline(&mut self) -> Result<u32> {
        let mine = self.pg.health().await.timeline;
        let mine = mine.context("reading my timeline: the server did not say")?;
        Ok(self.pg.next_timeline(mine))
    }
    async fn skip_timelines(&mut self, target: u32) -> Result<()> {
        let mine = self.pg.health().await.timeline;
        let mine = mine.context("reading my timeline: the server did not say")?;
        self.pg.skip_timelines(mine, target)
    }
    async fn promote(&mut self) -> Result<()> {
        self.pg.promote().await
    }
    async fn ensure_slots(&mut self, members: &[String]) -> Result<()> {
        self.pg.ensure_slots(members).await
    }
    async fn health(&mut self) -> PgStatus {
        self.pg.health().await
    }
    async fn fence(&self, member: &str, within_ms: u64) -> Result<Option<Fenced>> {
        let up = self.upstream(member)?;
        let deadline = Instant::now() + Duration::from_millis(within_ms);
        crate::postgres::fence::fence(&self.cfg, &up, deadline).await
    }
}
