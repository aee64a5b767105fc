//! pgboxd's main loop: observe, decide (pure), execute, publish.
//!
//! The loop runs every `loop_wait`, and at once when the leader key changes
//! (a watch) or the lease expires. Renewal and the watch run as their own
//! tasks so a slow action (a base backup) never delays a lease renewal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use tokio::sync::Notify;

use crate::config::WatchdogMode;
use crate::config::{Config, Node, Role as NodeRole};
use crate::dcs::access::Access;
use crate::dcs::etcd::Etcd;
use crate::dcs::model::{ClusterView, Member};
use crate::executor::{Executor, RaceLost};
use crate::failsafe::Promises;
use crate::ha::{
    self, DataDir, Failsafe, Lease, LocalPg, Memory, Observation, Outcome, Peer, Role, Settings,
};
use crate::logging::role_word;
use crate::postgres::{conf, Layout, Postgres};
use crate::status::{NodeStatus, PgStatus, SharedStatus, WatchdogState};
use crate::watchdog::{SharedWatchdog, Watchdog};

pub struct Daemon {
    cfg: Arc<Config>,
    me: Node,
    exec: Executor,
    status: SharedStatus,
    wake: Arc<Notify>,
    memory: Memory,
    origin: Instant,
    settings: Settings,
    http: reqwest::Client,
    last_reason: String,
    state: String,
    /// Armed and disarmed by the loop, petted by the lease keep-alive task
    /// after each renewal: a long action (crash recovery, a promotion) must
    /// not reset the box while the lease is being renewed, and a pgboxd
    /// whose renewals stop is reset before the lease can expire. The
    /// executor holds the same handle: it disarms it once PostgreSQL has
    /// accepted a stop, so a demotion is never cut short by a reset.
    watchdog: SharedWatchdog,
    watchdog_mode: WatchdogMode,
    /// Failsafe mode: the promise this member gave (the API gives it)...
    promises: Promises,
    /// ...and, while primary without the DCS, when the last round that
    /// every other member accepted was sent.
    failsafe_confirmed: Option<Instant>,
}

impl Daemon {
    pub fn new(cfg: Config, me: &str, data_dir: PathBuf) -> Result<Self> {
        let cfg = Arc::new(cfg);
        let me = cfg
            .node_named(me)
            .context("this node is not in the first-boot file")?
            .clone();
        let pg = Postgres::new((*cfg).clone(), me.clone(), Layout::new(&data_dir))?;
        let dcs = Arc::new(Etcd::new(
            cfg.etcd_endpoints(),
            Access::from_config(&cfg),
            cfg.key_prefix(),
            me.name.clone(),
            cfg.ha.ttl,
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
        Ok(Daemon {
            exec: Executor::new(
                cfg.clone(),
                me.name.clone(),
                dcs,
                pg,
                watchdog.clone(),
                Duration::from_millis(settings.fence_after_ms()),
            ),
            cfg,
            me,
            status,
            wake: Arc::new(Notify::new()),
            memory: Memory::default(),
            origin: Instant::now(),
            settings,
            http,
            last_reason: String::new(),
            state: "starting".into(),
            watchdog,
            watchdog_mode,
            promises: Promises::new(),
            failsafe_confirmed: None,
        })
    }

    fn now_ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_millis() as u64
    }

    pub async fn run(mut self) -> Result<()> {
        let pg = &self.exec.pg;
        pg.prepare_dirs()?;
        pg.stop_stray().await?;
        // Whatever PostgreSQL a previous pgboxd ran is gone now (it dies
        // with its parent; a stray one was just stopped), so a countdown
        // that pgboxd left running (it crashed while primary) guards
        // nothing and would reset the box in a few seconds.
        self.watchdog.stop_left_running();

        let dcs = self.exec.dcs.clone();
        let renew_every = self.cfg.ha.loop_wait.min(self.cfg.ha.ttl / 3);
        let wd = self.watchdog.clone();
        let pet: Arc<dyn Fn() + Send + Sync> = Arc::new(move || wd.pet());
        tokio::spawn(
            dcs.clone()
                .keep_alive_forever(renew_every, self.wake.clone(), pet),
        );
        tokio::spawn(dcs.clone().watch_leader_forever(self.wake.clone()));

        let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
        let api_addr = SocketAddr::new(self.me.address, self.cfg.ports.api);
        let api_state = crate::api::ApiState {
            status: self.status.clone(),
            dcs: Some(dcs.clone()),
            api_password: self.cfg.secrets.api_password.clone(),
            write_allow: crate::api::write_allow_list(&self.cfg),
            static_config: crate::api::static_config(&self.cfg),
            failsafe: self.cfg.ha.failsafe_mode.then(|| {
                crate::failsafe::Desk::new(&self.cfg, &self.me.name, self.promises.clone())
            }),
            leader_check: Some(Arc::new(crate::leader_check::LeaderCheck::new(
                crate::leader_check::Sources {
                    me: self.me.name.clone(),
                    dcs: dcs.clone(),
                    pg: crate::postgres::local_connection(&self.cfg, &self.exec.pg.layout),
                    cfg: self.cfg.clone(),
                    http: self.http.clone(),
                },
                crate::leader_check::LeaderCheck::budget_for(self.cfg.ha.ttl),
            ))),
        };
        let tls = match &self.cfg.api.tls {
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
            self.iterate().await;
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
                self.shutdown().await;
                return Err(err);
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.next_wait()) => {}
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        self.shutdown().await;
        let _ = stop_api.send(());
        Ok(())
    }

    /// A clean stop: PostgreSQL first (a fast shutdown sends all WAL to the
    /// standbys), then the leader key, so a replica promotes at once with
    /// every committed transaction.
    async fn shutdown(&mut self) {
        let was_leader = self.status.read().unwrap().is_leader;
        tracing::info!(leader = was_leader, "shutting down");
        let wd = self.watchdog.clone();
        // Disarmed once the stop is accepted, or at once with no postmaster.
        if let Err(e) = self.exec.pg.stop_with(move || wd.disarm()).await {
            tracing::error!(error = %format!("{e:#}"), "stopping postgres");
        }
        if was_leader {
            match self.exec.dcs.release_leader().await {
                Ok(()) => tracing::info!("released the leader key"),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "releasing the leader key; it expires with the lease")
                }
            }
        }
        if let Err(e) = self.exec.dcs.revoke_lease().await {
            tracing::warn!(error = %format!("{e:#}"), "revoking the lease");
        }
    }

    async fn iterate(&mut self) {
        let started = Instant::now();
        let alive = self.exec.pg.is_running();
        if !alive {
            // No postmaster: nothing left that could acknowledge a commit,
            // so nothing for the watchdog to guard while this loop waits
            // (a DCS read may take seconds). Only the process's absence
            // counts: a primary that merely does not answer may still have
            // backends committing.
            self.tend_watchdog(false);
        }
        let health = self.exec.pg.health().await;
        // A primary must decide to fence before its lease can expire, so
        // the DCS read may not outlast the proven part of the lease: a slow
        // or dead DCS then counts as unreachable in time to demote.
        let budget = self.dcs_read_budget(health.role == Role::Primary);
        let read = tokio::time::timeout(budget, self.exec.dcs.read_view()).await;
        let (view, leader_key) = match read {
            Ok(Ok((v, k))) => (Some(v), k),
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the DCS");
                (None, None)
            }
            Err(_) => {
                tracing::warn!(
                    "the DCS did not answer within my lease's proven validity ({budget:?})"
                );
                (None, None)
            }
        };
        let data = match self.data_dir_state(&health).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot inspect the data directory; skipping this loop");
                return;
            }
        };
        let lease = Lease {
            held: leader_key.as_ref().is_some_and(|k| {
                k.name == self.me.name && Some(k.lease) == self.exec.dcs.lease_id()
            }),
            renewed_at_ms: self.exec.dcs.renewed_at().map(|t| self.now_ms(t)),
        };
        // Also while I hold the key but have yet to promote: an old primary
        // whose pgboxd hung must be seen (and fenced) first.
        let electing = |v: &ClusterView| {
            v.leader.is_none() || v.leader.as_deref() == Some(self.me.name.as_str())
        };
        let peers = match &view {
            Some(v) if electing(v) && health.running && health.role == Role::Replica => {
                self.ask_peers().await
            }
            _ => Vec::new(),
        };
        let failsafe = self.failsafe_step(view.is_none(), &health).await;
        let obs = Observation {
            now_ms: self.now_ms(Instant::now()),
            now_unix_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            me: self.me.name.clone(),
            tags: self.me.tags.clone(),
            settings: self.settings.clone(),
            dcs: view.clone(),
            lease,
            pg: LocalPg {
                data,
                running: health.running,
                starting: alive && !health.running,
                role: health.role,
                timeline: health.timeline,
                lsn: health.lsn,
                streaming: health.streaming,
                configured_upstream: self.exec.pg.upstream().map(String::from),
                standbys: health.standbys.clone(),
                sync_names: health.sync_names.clone().unwrap_or_default(),
            },
            peers,
            failsafe,
        };

        self.memory = self.memory.observe(&obs);
        let decision = ha::decide(&obs, &self.memory);
        let acted = !decision.actions.is_empty();
        // A loop that repeats the last idle decision adds nothing to the log.
        if acted || decision.reason != self.last_reason {
            crate::logging::decision(&self.me.name, obs.pg.role, &decision);
            self.last_reason = decision.reason.clone();
        }
        for action in &decision.actions {
            self.state = Executor::state_during(action).into();
            if view.is_some() {
                self.publish_member(&health).await;
            }
            // Long actions (initdb, a base backup, pg_rewind) keep telling
            // systemd the supervisor is alive; each is bounded by its own
            // timeout, so a hung one still ends.
            let run = self.exec.run(action);
            tokio::pin!(run);
            let mut ping = tokio::time::interval(Duration::from_secs(5));
            let result = loop {
                tokio::select! {
                    r = &mut run => break r,
                    _ = ping.tick() => { let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]); }
                }
            };
            let outcome = match result {
                Ok(()) => Outcome::Done,
                Err(e) => {
                    let race_lost = e.is::<RaceLost>();
                    crate::logging::action_failed(
                        &self.me.name,
                        obs.pg.role,
                        action,
                        decision.cause,
                        &e,
                        race_lost,
                    );
                    Outcome::Failed
                }
            };
            self.memory = self.memory.absorb(action, &outcome);
            if outcome == Outcome::Failed {
                break;
            }
        }

        // Publish what is true now, after the actions.
        let health = if acted {
            self.exec.pg.health().await
        } else {
            health
        };
        let alive = self.exec.pg.is_running();
        self.state = if health.running {
            "running".into()
        } else if alive {
            "starting".into()
        } else if self.exec.pg.layout.is_initialized() {
            "stopped".into()
        } else {
            "uninitialized".into()
        };
        let view = if acted {
            // As bounded as the observation's read.
            let budget = self.dcs_read_budget(health.role == Role::Primary);
            tokio::time::timeout(budget, self.exec.dcs.read_view())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|(v, _)| v)
                .or(view)
        } else {
            view
        };
        // Without the DCS, a primary every member vouches for (failsafe
        // mode) still leads: its watchdog stays armed.
        let is_leader = match &view {
            Some(v) => v.leader.as_deref() == Some(self.me.name.as_str()),
            None => self.failsafe_confirmed.is_some(),
        };
        self.status.write().unwrap().failsafe_active =
            view.is_none() && is_leader && health.role == Role::Primary;
        self.publish_member(&health).await;
        if is_leader && health.role == Role::Primary {
            if let Some(lsn) = health.lsn {
                match tokio::time::timeout(
                    self.lease_bounded(Duration::from_millis(500)),
                    self.exec.dcs.put_status(lsn),
                )
                .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %format!("{e:#}"), "writing the primary position")
                    }
                    Err(_) => {
                        tracing::warn!("writing the primary position: no answer within 500 ms")
                    }
                }
            }
        }
        self.tend_watchdog(is_leader && health.role == Role::Primary);
        let kind = crate::logging::action_kind(&decision.actions);
        let promoted =
            decision.actions.contains(&ha::Action::Promote) && health.role == Role::Primary;
        self.publish_status(health, view, is_leader, decision.reason, started);
        let mut s = self.status.write().unwrap();
        *s.decisions
            .entry((kind.clone(), decision.cause))
            .or_default() += 1;
        s.last_action = Some((kind, decision.cause));
        if promoted {
            s.promotions += 1;
            if decision.cause.is_failover() {
                s.failovers += 1;
            }
        }
    }

    /// The core's rule (`ha::watchdog_step`); petting happens after each
    /// renewal, in the keep-alive task.
    fn tend_watchdog(&mut self, leading: bool) {
        let proven = self.proven_at().map(|t| self.now_ms(t));
        let lease = Lease {
            held: leading,
            renewed_at_ms: proven,
        };
        let valid = lease.valid(self.now_ms(Instant::now()), self.settings.fence_after_ms());
        match ha::watchdog_step(leading, valid, self.watchdog.is_armed()) {
            ha::WatchdogStep::Arm => self.watchdog.arm(),
            ha::WatchdogStep::Disarm => self.watchdog.disarm(),
            ha::WatchdogStep::Keep => {}
        }
    }

    /// The last proof that this primary may write: a lease renewal, or in
    /// failsafe mode a round every other member accepted.
    fn proven_at(&self) -> Option<Instant> {
        self.exec.dcs.renewed_at().max(self.failsafe_confirmed)
    }

    /// A DCS call's own bound, cut to what is left of the proven part of
    /// my lease: however many calls a loop makes, together they cannot hold
    /// a primary past its fencing point (where it must demote, and just
    /// after which its watchdog resets the box).
    fn lease_bounded(&self, bound: Duration) -> Duration {
        self.fence_deadline().map_or(bound, |d| {
            bound.min(d.saturating_duration_since(Instant::now()))
        })
    }

    /// How long a DCS read may take now (`Settings::dcs_read_budget_ms`).
    fn dcs_read_budget(&self, primary: bool) -> Duration {
        let proven_left = self
            .fence_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()).as_millis() as u64);
        Duration::from_millis(self.settings.dcs_read_budget_ms(primary, proven_left))
    }

    /// When a primary's lease stops being proven valid (fencing point).
    fn fence_deadline(&self) -> Option<Instant> {
        self.proven_at()
            .map(|t| t + Duration::from_millis(self.settings.fence_after_ms()))
    }

    /// Failsafe mode's part of the observation. A primary that cannot read
    /// the DCS asks every other PostgreSQL member to promise not to take
    /// over; when all accept, the round counts as proof (and pets the
    /// watchdog, as a lease renewal would). Any other member reports the
    /// promise it keeps.
    async fn failsafe_step(&mut self, dcs_lost: bool, health: &PgStatus) -> Failsafe {
        if !self.settings.failsafe_mode {
            return Failsafe::default();
        }
        let primary = health.running && health.role == Role::Primary;
        if !(dcs_lost && primary) {
            self.failsafe_confirmed = None;
        } else {
            let sent = Instant::now();
            // Bounded by what is left of the current proof: a member that
            // does not answer must not hold the loop past the fencing
            // point, where it demotes (and past which the watchdog, petted
            // at the last proof, soon resets the box).
            let left = self
                .fence_deadline()
                .map_or(Duration::MAX, |d| d.saturating_duration_since(sent));
            let confirmed = !left.is_zero()
                && tokio::time::timeout(left, self.failsafe_round())
                    .await
                    .unwrap_or(false);
            if confirmed {
                self.failsafe_confirmed = Some(sent);
                self.watchdog.pet();
            }
        }
        let promise = self.promises.last();
        Failsafe {
            confirmed_at_ms: self.failsafe_confirmed.map(|t| self.now_ms(t)),
            promised_at_ms: Some(self.now_ms(promise.at)),
            promised_to: promise.to,
        }
    }

    /// `POST /failsafe` to every other PostgreSQL member at once: true when
    /// all of them accepted.
    async fn failsafe_round(&self) -> bool {
        crate::failsafe::round(&self.http, &self.cfg, &self.me.name).await
    }

    /// The pause before the next loop: `loop_wait`, but a primary wakes at
    /// its fencing point too, so demotion never waits for a loop.
    fn next_wait(&self) -> Duration {
        let status = self.status.read().unwrap();
        let primary = status.pg.role == Role::Primary;
        drop(status);
        match (primary, self.fence_deadline()) {
            (true, Some(deadline)) => {
                let until =
                    deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(10);
                self.cfg.ha.loop_wait.min(until)
            }
            _ => self.cfg.ha.loop_wait,
        }
    }

    async fn data_dir_state(&self, health: &PgStatus) -> Result<DataDir> {
        if health.running {
            return Ok(DataDir::Initialized {
                system_id: health.system_identifier.clone().unwrap_or_default(),
                was_primary: health.role == Role::Primary,
                clean_stop: None,
            });
        }
        Ok(match self.exec.pg.control_data().await? {
            None => DataDir::Empty,
            Some(cd) => DataDir::Initialized {
                was_primary: cd.was_primary(),
                clean_stop: cd.clean_stop(),
                system_id: cd.system_id,
            },
        })
    }

    /// During an election, each other PostgreSQL member's own view of
    /// itself, asked concurrently with a short timeout: the DCS copy may be
    /// a loop old, and a member that still answers as primary must be seen.
    async fn ask_peers(&self) -> Vec<Peer> {
        let peers = self
            .cfg
            .nodes_with(NodeRole::Postgres)
            .filter(|n| n.name != self.me.name);
        let asks = peers.map(|n| {
            let url = self.cfg.api_url(n);
            let http = self.http.clone();
            let node = n.clone();
            let cfg = self.cfg.clone();
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
                let mut peer = Peer {
                    name: node.name.clone(),
                    reachable: false,
                    role: Role::Unknown,
                    lsn: None,
                    timeline: None,
                    nofailover: node.tags.nofailover,
                    failover_priority: node.tags.failover_priority,
                    postgres: None,
                };
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
                    peer.reachable = true;
                    peer.role = match v["role"].as_str() {
                        Some("primary" | "master") if v["state"] == "running" => Role::Primary,
                        Some("replica" | "standby") => Role::Replica,
                        _ => Role::Unknown,
                    };
                    peer.timeline = v["timeline"].as_u64().map(|t| t as u32);
                    let x = &v["xlog"];
                    peer.lsn = [
                        &x["location"],
                        &x["received_location"],
                        &x["replayed_location"],
                    ]
                    .iter()
                    .filter_map(|f| f.as_u64())
                    .max();
                }
                peer
            }
        });
        futures::future::join_all(asks).await
    }

    async fn publish_member(&self, pg: &PgStatus) {
        let member = Member {
            conn_url: conf::conn_url(&self.cfg, &self.me),
            api_url: self.cfg.api_url(&self.me),
            state: self.state.clone(),
            role: role_word(pg.role).into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            xlog_location: pg.lsn,
            receive_lsn: pg.receive_lsn,
            replay_lsn: None,
            timeline: pg.timeline,
            replication_state: pg.streaming.then(|| "streaming".into()),
            tags: self.me.tags.clone(),
        };
        // Best effort and bounded: a slow DCS must not delay an action.
        match tokio::time::timeout(
            self.lease_bounded(Duration::from_millis(500)),
            self.exec.dcs.put_member(&member),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "publishing my member key"),
            Err(_) => tracing::warn!("publishing my member key: no answer within 500 ms"),
        }
    }

    fn publish_status(
        &self,
        pg: PgStatus,
        view: Option<ClusterView>,
        is_leader: bool,
        reason: String,
        started: Instant,
    ) {
        let mut s = self.status.write().unwrap();
        s.state = self.state.clone();
        s.is_leader = is_leader;
        s.dcs_reachable = view.is_some();
        if view.is_some() {
            s.dcs_last_seen = Some(SystemTime::now());
        }
        if let Some(v) = view {
            s.history = v.history.clone();
            s.cluster = v;
        }
        s.pg = pg;
        s.last_loop = SystemTime::now();
        s.last_decision = reason;
        (s.watchdog, s.watchdog_state) = match (self.watchdog.describe(), self.watchdog_mode) {
            (_, WatchdogMode::Off) => ("off".into(), WatchdogState::Off),
            (None, _) => ("unavailable".into(), WatchdogState::Absent),
            (Some((true, d)), _) => (format!("armed: {d}"), WatchdogState::Armed),
            (Some((false, d)), _) => (format!("disarmed: {d}"), WatchdogState::Disarmed),
        };
        s.watchdog_required = self.watchdog_mode == WatchdogMode::Required;
        let took = started.elapsed();
        s.loop_duration = took;
        s.lease_remaining = self
            .fence_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        if took > self.cfg.ha.loop_wait * 2 {
            tracing::debug!("HA loop took {took:?}");
        }
    }
}
