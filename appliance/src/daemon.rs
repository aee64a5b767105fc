//! pgboxd's main loop: observe, decide (pure), execute, publish.
//!
//! The loop runs every `loop_wait`, and at once when the leader key changes
//! (a watch) or the lease expires. Renewal and the watch run as their own
//! tasks so a slow action (a base backup) never delays a lease renewal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use tokio::sync::Notify;

use crate::clock::{Clock, TokioClock};
use crate::config::WatchdogMode;
use crate::config::{Config, Node, Role as NodeRole};
use crate::dcs::access::Access;
use crate::dcs::etcd::Etcd;
use crate::dcs::etcd::LeaderKey;
use crate::dcs::model::{ClusterView, Member};
use crate::executor::real::{EtcdActions, LocalPostgres, PgboxdExecutor};
use crate::executor::{ActionDcs, Executor, PgControl, RaceLost};
use crate::failsafe::Promises;
use crate::ha::{Action, DataDir, Decision, Observation, Peer, Settings};
use crate::ha_loop::{HaLoop, Identity, Level, LoopIo, Report};
use crate::postgres::{conf, Layout, Postgres};
use crate::status::{NodeStatus, PgStatus, SharedStatus, WatchdogState};
use crate::watchdog::{SharedWatchdog, Watchdog};

pub struct Daemon {
    /// The HA loop (ha_loop.rs), shared with the simulator...
    ha: HaLoop,
    /// ...over the real I/O.
    io: PgboxdIo,
    wake: Arc<Notify>,
}

/// The loop's I/O in pgboxd: etcd-client, the PostgreSQL child, HTTP to
/// the peers, tokio's clock, the watchdog device, the journal.
struct PgboxdIo {
    cfg: Arc<Config>,
    me: Node,
    exec: PgboxdExecutor,
    status: SharedStatus,
    clock: TokioClock,
    http: reqwest::Client,
    /// Armed and disarmed by the loop, petted by the lease keep-alive task
    /// after each renewal: a long action (crash recovery, a promotion) must
    /// not reset the box while the lease is being renewed, and a pgboxd
    /// whose renewals stop is reset before the lease can expire. The
    /// executor holds the same handle: it disarms it once PostgreSQL has
    /// accepted a stop, so a demotion is never cut short by a reset.
    watchdog: SharedWatchdog,
    watchdog_mode: WatchdogMode,
    /// Failsafe mode: the promise this member gave (the API gives it).
    promises: Promises,
    /// Restart, reload and reinitialize asked through the API.
    ops: crate::ops_mailbox::Mailbox,
    /// The `config` key as last checked, what of it is in force, and why
    /// the rest is not (shown in `/patroni`).
    config_seen: Option<serde_json::Map<String, serde_json::Value>>,
    live: crate::config::dynamic::Live,
    config_problems: Vec<String>,
}

impl Daemon {
    pub fn new(cfg: Config, me: &str, data_dir: PathBuf) -> Result<Self> {
        let cfg = Arc::new(cfg);
        let me = cfg
            .node_named(me)
            .context("this node is not in the first-boot file")?
            .clone();
        let pg = Postgres::new((*cfg).clone(), me.clone(), Layout::new(&data_dir))?;
        // One clock for the loop and the lease's renewals.
        let clock = TokioClock::new();
        let dcs = Arc::new(Etcd::new(
            cfg.etcd_endpoints(),
            Access::from_config(&cfg),
            cfg.key_prefix(),
            me.name.clone(),
            cfg.ha.ttl,
            clock,
        ));
        let ha = &cfg.ha;
        let watchdog_mode = ha.watchdog;
        let settings = Settings {
            ttl_ms: ha.ttl.as_millis() as u64,
            loop_wait_ms: ha.loop_wait.as_millis() as u64,
            maximum_lag_on_failover: ha.maximum_lag_on_failover,
            use_pg_rewind: ha.use_pg_rewind,
            on_rewind_failure: ha.on_rewind_failure,
            synchronous_mode: ha.synchronous_mode,
            primary_start_timeout_ms: ha.primary_start_timeout.as_millis() as u64,
            can_lead: true,
            failsafe_mode: ha.failsafe_mode,
        };
        let mut settings = settings;
        let wd_timeout = settings.watchdog_timeout_s() as i32;
        let watchdog = match ha.watchdog {
            WatchdogMode::Off => None,
            _ => Watchdog::detect(wd_timeout),
        };
        if watchdog.is_none() && ha.watchdog != WatchdogMode::Off {
            tracing::warn!(
                "NO WATCHDOG DEVICE (/dev/watchdog): if pgboxd hangs while primary, nothing resets this box before its lease expires{}",
                if ha.watchdog == WatchdogMode::Required { "; ha.watchdog is required, so this node will never lead" } else { "" }
            );
            settings.can_lead = ha.watchdog != WatchdogMode::Required;
        }
        // The loop may legitimately block for a long action (a base backup),
        // but not for longer than the longest one allows.
        let liveness = Duration::from_secs(3600).max(ha.ttl * 3);
        let status = Arc::new(RwLock::new(NodeStatus::new(
            &me.name,
            &cfg.cluster.name,
            me.tags.clone(),
            liveness,
        )));
        // Peers' APIs speak HTTPS when the cluster has a certificate; then
        // only its CA is trusted, never the system's roots.
        let ca = cfg.api.tls.as_ref().map(|t| t.ca.as_str());
        let http = crate::tls::http_client(ca)
            .map_err(|e| anyhow::anyhow!("api.tls.ca: {e}"))?
            .timeout(Duration::from_millis(1000).min(ha.ttl / 2))
            .build()
            .context("building the HTTP client")?;
        let watchdog = SharedWatchdog::new(watchdog);
        let me_id = Identity {
            name: me.name.clone(),
            tags: me.tags.clone(),
            conn_url: conf::conn_url(&cfg, &me),
            api_url: cfg.api_url(&me),
        };
        let others = cfg
            .nodes_with(NodeRole::Postgres)
            .filter(|n| n.name != me.name)
            .map(|n| n.name.clone())
            .collect();
        let wake = Arc::new(Notify::new());
        let live = crate::config::dynamic::Live {
            parameters: cfg.postgres.parameters.clone(),
            maximum_lag_on_failover: cfg.ha.maximum_lag_on_failover,
        };
        Ok(Daemon {
            io: PgboxdIo {
                exec: Executor::new(
                    me.name.clone(),
                    others,
                    cfg.ha.synchronous_mode,
                    settings.fence_after_ms(),
                    EtcdActions {
                        etcd: dcs,
                        clock,
                        initial_config: crate::dcs::model::DynamicConfig::from_doc(
                            crate::config::dynamic::initial_doc(&cfg),
                        ),
                    },
                    LocalPostgres {
                        pg,
                        cfg: cfg.clone(),
                        watchdog: watchdog.clone(),
                    },
                    clock,
                ),
                cfg,
                me,
                status,
                clock,
                http,
                watchdog,
                watchdog_mode,
                promises: Promises::new(),
                ops: crate::ops_mailbox::Mailbox::waking(wake.clone()),
                config_seen: None,
                live,
                config_problems: Vec::new(),
            },
            ha: HaLoop::new(me_id, settings),
            wake,
        })
    }

    pub async fn run(mut self) -> Result<()> {
        let io = &self.io;
        let pg = &io.exec.pg.pg;
        pg.prepare_dirs()?;
        if let Some(pgbr) = pg.prepare_backup()? {
            tokio::spawn(async move { crate::backup::repository::supervise_server(&pgbr).await });
        }
        pg.stop_stray().await?;
        // Whatever PostgreSQL a previous pgboxd ran is gone now (it dies
        // with its parent; a stray one was just stopped), so a countdown
        // that pgboxd left running (it crashed while primary) guards
        // nothing and would reset the box in a few seconds.
        io.watchdog.stop_left_running();

        let (cfg, me) = (io.cfg.clone(), io.me.clone());
        let dcs = io.exec.dcs.etcd.clone();
        let renew_every = Duration::from_millis(crate::dcs::lease::renew_every_ms(
            cfg.ha.loop_wait.as_millis() as u64,
            cfg.ha.ttl.as_millis() as u64,
        ));
        let wd = io.watchdog.clone();
        let pet: Arc<dyn Fn() + Send + Sync> = Arc::new(move || wd.pet());
        tokio::spawn(
            dcs.clone()
                .keep_alive_forever(renew_every, self.wake.clone(), pet),
        );
        tokio::spawn(dcs.clone().watch_leader_forever(self.wake.clone()));

        let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
        let api_addr = SocketAddr::new(me.address, cfg.ports.api);
        let api_state = crate::api::ApiState {
            status: io.status.clone(),
            dcs: Some(dcs.clone()),
            api_password: cfg.secrets.api_password.clone(),
            write_allow: crate::api::write_allow_list(&cfg),
            static_config: crate::api::static_config(&cfg),
            cluster_cfg: Some(cfg.clone()),
            failsafe: cfg
                .ha
                .failsafe_mode
                .then(|| crate::failsafe::Desk::new(&cfg, &me.name, io.promises.clone())),
            leader_check: Some(Arc::new(crate::leader_check::LeaderCheck::new(
                crate::leader_check::Sources {
                    me: me.name.clone(),
                    dcs: dcs.clone(),
                    pg: crate::postgres::local_connection(&cfg, &io.exec.pg.pg.layout),
                    cfg: cfg.clone(),
                    http: io.http.clone(),
                },
                crate::leader_check::LeaderCheck::budget_for(cfg.ha.ttl),
            ))),
            ops: Some(io.ops.clone()),
        };
        let tls = match &cfg.api.tls {
            Some(t) => Some(Arc::new(
                crate::tls::server_config(t).map_err(|e| anyhow::anyhow!("api.tls.{e}"))?,
            )),
            None => None,
        };
        let api = tokio::spawn(crate::api::serve_tls(api_addr, api_state, tls, async {
            let _ = api_stopped.await;
        }));

        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut ready_sent = false;
        loop {
            self.ha.iterate(&mut self.io).await;
            if !ready_sent {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                ready_sent = true;
            }
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            if api.is_finished() {
                // The API is how routers find the primary: without it this
                // node is invisible, so fail loudly and let systemd restart us.
                let err = match api.await {
                    Ok(Err(e)) => e,
                    _ => anyhow::anyhow!("the REST API stopped"),
                };
                self.ha.shutdown(&mut self.io).await;
                return Err(err);
            }
            let wait = Duration::from_millis(self.ha.next_wait_ms(&self.io));
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        self.ha.shutdown(&mut self.io).await;
        let _ = stop_api.send(());
        Ok(())
    }
}

impl Clock for PgboxdIo {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
    fn now_unix_ms(&self) -> u64 {
        self.clock.now_unix_ms()
    }
    async fn timeout<F: std::future::Future>(&self, ms: u64, f: F) -> Option<F::Output> {
        self.clock.timeout(ms, f).await
    }
    async fn sleep(&self, ms: u64) {
        self.clock.sleep(ms).await
    }
    fn log(&self, level: Level, message: &str) {
        self.clock.log(level, message)
    }
}

impl LoopIo for PgboxdIo {
    async fn read_view(&self) -> Result<(ClusterView, Option<LeaderKey>)> {
        self.exec.dcs.etcd.read_view().await
    }

    fn lease_id(&self) -> Option<i64> {
        self.exec.dcs.etcd.lease_id()
    }

    fn renewed_at_ms(&self) -> Option<u64> {
        self.exec.dcs.renewed_at_ms()
    }

    async fn put_member(&self, member: &Member) -> Result<()> {
        self.exec.dcs.etcd.put_member(member).await
    }

    async fn put_status(&self, lsn: u64) -> Result<()> {
        self.exec.dcs.etcd.put_status(lsn).await
    }

    async fn release_leader(&self) -> Result<()> {
        self.exec.dcs.etcd.release_leader().await
    }

    async fn revoke_lease(&self) -> Result<()> {
        self.exec.dcs.etcd.revoke_lease().await
    }

    fn pg_alive(&mut self) -> bool {
        self.exec.pg.pg.is_running()
    }

    async fn pg_health(&mut self) -> PgStatus {
        self.exec.pg.pg.health().await
    }

    async fn control_file(&self) -> Result<Option<DataDir>> {
        Ok(self
            .exec
            .pg
            .pg
            .control_data()
            .await?
            .map(|cd| DataDir::Initialized {
                was_primary: cd.was_primary(),
                clean_stop: cd.clean_stop(),
                system_id: cd.system_id,
            }))
    }

    fn pg_initialized(&self) -> bool {
        self.exec.pg.pg.layout.is_initialized()
    }

    fn configured_upstream(&self) -> Option<String> {
        self.exec.pg.pg.upstream().map(String::from)
    }

    async fn stop_for_shutdown(&mut self) -> Result<()> {
        self.exec.pg.stop().await
    }

    async fn ask_peers(&self) -> Vec<Peer> {
        ask_peers(&self.cfg, &self.http, &self.me.name).await
    }

    async fn failsafe_round(&self) -> bool {
        crate::failsafe::round(&self.http, &self.cfg, &self.me.name).await
    }

    fn promise(&self) -> (Option<String>, u64) {
        let promise = self.promises.last();
        (promise.to, self.clock.ms(promise.at))
    }

    fn watchdog_armed(&self) -> bool {
        self.watchdog.is_armed()
    }

    fn arm_watchdog(&self) {
        self.watchdog.arm()
    }

    fn disarm_watchdog(&self) {
        self.watchdog.disarm()
    }

    fn pet_watchdog(&self) {
        self.watchdog.pet()
    }

    /// Long actions (initdb, a base backup, pg_rewind) keep telling systemd
    /// the supervisor is alive; each is bounded by its own timeout, so a
    /// hung one still ends.
    async fn run(&mut self, action: &Action, within_ms: Option<u64>) -> Option<Result<()>> {
        let run = self.exec.run(action);
        tokio::pin!(run);
        let mut ping = tokio::time::interval(Duration::from_secs(5));
        let limit = tokio::time::sleep(
            within_ms.map_or(Duration::from_secs(86_400), Duration::from_millis),
        );
        tokio::pin!(limit);
        loop {
            tokio::select! {
                r = &mut run => break Some(r),
                _ = &mut limit, if within_ms.is_some() => break None,
                _ = ping.tick() => { let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]); }
            }
        }
    }

    fn log_decision(&self, obs: &Observation, decision: &Decision) {
        crate::logging::decision(&self.me.name, obs.pg.role, decision);
    }

    fn log_action_failed(
        &self,
        obs: &Observation,
        decision: &Decision,
        action: &Action,
        e: &anyhow::Error,
    ) {
        let race_lost = e.is::<RaceLost>();
        crate::logging::action_failed(
            &self.me.name,
            obs.pg.role,
            action,
            decision.cause,
            e,
            race_lost,
        );
    }

    fn live_config(
        &mut self,
        config: &crate::dcs::model::DynamicConfig,
    ) -> crate::ha_loop::LiveConfig {
        if self.config_seen.as_ref() != Some(&config.doc) {
            self.config_seen = Some(config.doc.clone());
            let checked = crate::config::dynamic::check(&self.cfg, &config.doc);
            let mut problems = checked.ignored.clone();
            match checked.live {
                Ok(live) => {
                    if live != self.live {
                        tracing::info!(
                            maximum_lag_on_failover = live.maximum_lag_on_failover,
                            "cluster-wide settings changed (the config key)"
                        );
                    }
                    self.live = live;
                }
                Err(refused) => {
                    tracing::error!(
                        "the config key cannot be applied; the settings in force stay: {}",
                        refused.join("; ")
                    );
                    problems.extend(refused);
                }
            }
            for p in &checked.ignored {
                tracing::warn!("config key: {p}");
            }
            self.config_problems = problems;
            let pg = &mut self.exec.pg.pg;
            pg.set_parameters(self.live.parameters.clone());
        }
        crate::ha_loop::LiveConfig {
            maximum_lag_on_failover: Some(self.live.maximum_lag_on_failover),
            reload_needed: self.exec.pg.pg.parameters_pending(),
        }
    }

    fn due_operation(&self, now_unix_ms: u64) -> Option<(u64, crate::ha::Operation)> {
        self.ops.due(now_unix_ms)
    }

    fn settle_operation(&self, ticket: u64, settled: crate::ops_mailbox::Settled) {
        self.ops.settle(ticket, settled)
    }

    fn publish(&mut self, r: Report) {
        let mut s = self.status.write().unwrap();
        s.state = r.state;
        s.is_leader = r.is_leader;
        s.failsafe_active = r.failsafe_active;
        s.synchronous_mode = r.settings.synchronous_mode;
        s.maximum_lag_on_failover = r.settings.maximum_lag_on_failover;
        s.failsafe_mode = r.settings.failsafe_mode;
        s.scheduled_restart = self.ops.scheduled_restart();
        s.config_problems = self.config_problems.clone();
        s.dcs_reachable = r.view.is_some();
        if let Some(v) = r.view {
            s.dcs_last_seen = Some(SystemTime::now());
            s.history = v.history.clone();
            s.cluster = v;
        }
        s.pg = r.pg;
        s.last_loop = SystemTime::now();
        (s.watchdog, s.watchdog_state) = match (self.watchdog.describe(), self.watchdog_mode) {
            (_, WatchdogMode::Off) => ("off".into(), WatchdogState::Off),
            (None, _) => ("unavailable".into(), WatchdogState::Absent),
            (Some((true, d)), _) => (format!("armed: {d}"), WatchdogState::Armed),
            (Some((false, d)), _) => (format!("disarmed: {d}"), WatchdogState::Disarmed),
        };
        s.watchdog_required = self.watchdog_mode == WatchdogMode::Required;
        let took = Duration::from_millis(self.now_ms().saturating_sub(r.started_ms));
        s.loop_duration = took;
        s.lease_remaining = r.lease_remaining_ms.map(Duration::from_millis);
        if took > self.cfg.ha.loop_wait * 2 {
            tracing::debug!("HA loop took {took:?}");
        }
        let kind = crate::logging::action_kind(&r.decision.actions);
        *s.decisions
            .entry((kind.clone(), r.decision.cause))
            .or_default() += 1;
        s.last_action = Some((kind, r.decision.cause));
        if r.promoted {
            s.promotions += 1;
            if r.decision.cause.is_failover() {
                s.failovers += 1;
            }
        }
        s.last_decision = r.decision.reason;
    }
}

/// During an election, each other PostgreSQL member's own view of
/// itself, asked concurrently with a short timeout: the DCS copy may be
/// a loop old, and a member that still answers as primary must be seen.
async fn ask_peers(cfg: &Arc<Config>, http: &reqwest::Client, me: &str) -> Vec<Peer> {
    let peers = cfg.nodes_with(NodeRole::Postgres).filter(|n| n.name != me);
    let asks = peers.map(|n| {
        let url = cfg.api_url(n);
        let http = http.clone();
        let node = n.clone();
        let cfg = cfg.clone();
        async move {
            let api = async {
                http.get(&url)
                    .send()
                    .await?
                    .json::<serde_json::Value>()
                    .await
            };
            // Its PostgreSQL too, at the same time: when the API does
            // not answer, that server may still run as primary.
            let pg = async {
                let up = conf::upstream_of(&cfg, &node.name).ok_or("not a node")?;
                let limit = crate::postgres::fence::probe_limit(cfg.ha.ttl);
                crate::postgres::fence::probe(&cfg, &up, limit).await
            };
            let (answer, postgres) = futures::future::join(api, pg).await;
            let mut peer = Peer::unheard(&node.name, &node.tags);
            match (&answer, postgres) {
                (Err(_), Ok(pg)) => peer.postgres = Some(pg),
                (Err(api), Err(pg)) => tracing::info!(
                    member = %node.name,
                    "neither {}'s API nor its PostgreSQL answers (API: {api}; PostgreSQL: {pg})",
                    node.name
                ),
                (Ok(_), _) => {}
            }
            if let Ok(v) = answer {
                peer = Peer::from_patroni(&node.name, &node.tags, &v);
            }
            peer
        }
    });
    futures::future::join_all(asks).await
}
