//! The simulated I/O the shared HA loop (ha_loop.rs) and executor
//! (executor.rs) run over: SimIo (LoopIo: the loop's own DCS calls, the
//! local PostgreSQL as observed, the peers' APIs, the watchdog, reporting),
//! SimDcs (the executor's DCS transactions), SimPg (its PostgreSQL) and
//! SimClock (each node's own clock, which stops while its VM is paused).
//! They are adapters: what to do, and in which order, is decided by the
//! code pgboxd ships.

use std::future::Future;
use std::rc::Rc;

use crate::clock::Clock;
use crate::dcs::etcd::LeaderKey;
use crate::dcs::leader_records::{self, CasOutcome, LeaderCas};
use crate::dcs::model::{format_lsn, ClusterView, HistoryEntry, Member, SyncKey};
use crate::executor::{ActionDcs, Executor, PgControl};
use crate::ha::{self, Action, DataDir as HaData, Decision, Observation, Peer, Role};
use crate::ha_loop::{Level, LoopIo, Report};
use crate::postgres::fence::Fenced;
use crate::status::{NodeStatus, PgStatus};

use super::etcd_client::{call, ensure_lease, lease_id};
use super::node::{me, member_name, R};
use super::pg::{DataDir, Proc};
use super::postgres::{
    base_backup, checkpoint, follow, pg_promote, pg_start, pg_stop, require_running, rewind,
    set_sync_names,
};
use super::runtime::{sleep, timeout, Sim};
use super::world::{ApiSnapshot, World, EPOCH_UNIX_MS};
use super::Invariant;

/// A simulated node's clock (its own: it stops while its VM is paused) and
/// journal (the trace).
#[derive(Clone)]
pub(super) struct SimClock {
    sim: Rc<Sim>,
    n: usize,
}

/// The loop's I/O on a simulated node: the simulated DCS (through the
/// client model above: endpoints, timeouts, lost answers), PostgreSQL,
/// peers, watchdog and clock.
pub(super) struct SimIo {
    sim: Rc<Sim>,
    n: usize,
    clock: SimClock,
    exec: Executor<SimDcs, SimPg, SimClock>,
}

impl SimIo {
    pub(super) fn new(sim: &Rc<Sim>, n: usize) -> Self {
        let (me, others, mode, fence_after_ms) = sim.with(|w| {
            let others = (0..w.nodes.len())
                .filter(|m| *m != n)
                .map(|m| w.nodes[m].name.clone())
                .collect();
            (
                me(w, n),
                others,
                w.settings.synchronous_mode,
                w.settings.fence_after_ms(),
            )
        });
        let clock = SimClock {
            sim: sim.clone(),
            n,
        };
        let exec = Executor::new(
            me,
            others,
            mode,
            fence_after_ms,
            SimDcs {
                sim: sim.clone(),
                n,
            },
            SimPg {
                sim: sim.clone(),
                n,
            },
            clock.clone(),
        );
        SimIo {
            sim: sim.clone(),
            n,
            clock,
            exec,
        }
    }
}

pub(super) fn anyhow_of(e: String) -> anyhow::Error {
    anyhow::anyhow!(e)
}

impl Clock for SimIo {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn now_unix_ms(&self) -> u64 {
        self.clock.now_unix_ms()
    }

    async fn timeout<F: Future>(&self, ms: u64, f: F) -> Option<F::Output> {
        self.clock.timeout(ms, f).await
    }

    async fn sleep(&self, ms: u64) {
        self.clock.sleep(ms).await
    }

    fn log(&self, level: Level, message: &str) {
        self.clock.log(level, message)
    }
}

impl LoopIo for SimIo {
    async fn read_view(&self) -> anyhow::Result<(ClusterView, Option<LeaderKey>)> {
        call(&self.sim, self.n, |w| Ok(w.dcs.read_view()))
            .await
            .map_err(anyhow_of)
    }

    fn lease_id(&self) -> Option<i64> {
        lease_id(&self.sim, self.n)
    }

    fn renewed_at_ms(&self) -> Option<u64> {
        self.exec.dcs.renewed_at_ms()
    }

    async fn put_member(&self, member: &Member) -> anyhow::Result<()> {
        let (sim, n) = (&self.sim, self.n);
        let lease = ensure_lease(sim, n).await?;
        let (name, member) = (member_name(sim, n), member.clone());
        call(sim, n, move |w| {
            w.dcs.put_member(&name, member.clone(), lease)
        })
        .await
        .map_err(anyhow_of)
    }

    async fn put_status(&self, lsn: u64) -> anyhow::Result<()> {
        self.exec.dcs.put_status(lsn).await
    }

    async fn release_leader(&self) -> anyhow::Result<()> {
        self.exec.dcs.release_leader().await
    }

    async fn revoke_lease(&self) -> anyhow::Result<()> {
        let Some(id) = lease_id(&self.sim, self.n) else {
            return Ok(());
        };
        call(&self.sim, self.n, move |w| {
            let change = w.dcs.revoke(id);
            w.leader_changed(change, "lease revoked");
            Ok(())
        })
        .await
        .map_err(anyhow_of)
    }

    fn pg_alive(&mut self) -> bool {
        self.sim.with(|w| w.nodes[self.n].pg.alive())
    }

    async fn pg_health(&mut self) -> PgStatus {
        self.exec.pg.health().await
    }

    async fn control_file(&self) -> anyhow::Result<Option<HaData>> {
        Ok(self.sim.with(|w| {
            w.nodes[self.n]
                .pg
                .data
                .as_ref()
                .map(|dd| HaData::Initialized {
                    system_id: dd.system_id.clone(),
                    was_primary: dd.was_primary,
                    clean_stop: dd.control_clean_stop().filter(|_| w.cfg.clean_stops),
                })
        }))
    }

    fn pg_initialized(&self) -> bool {
        self.sim.with(|w| w.nodes[self.n].pg.data.is_some())
    }

    fn configured_upstream(&self) -> Option<String> {
        self.sim.with(|w| {
            let pg = &w.nodes[self.n].pg;
            pg.conninfo
                .filter(|_| pg.alive())
                .map(|u| w.nodes[u].name.clone())
        })
    }

    async fn stop_for_shutdown(&mut self) -> anyhow::Result<()> {
        self.exec.pg.stop().await
    }

    async fn ask_peers(&self) -> Vec<Peer> {
        ask_peers(&self.sim, self.n).await
    }

    async fn failsafe_round(&self) -> bool {
        failsafe_round(&self.sim, self.n).await
    }

    fn promise(&self) -> (Option<String>, u64) {
        self.sim.with(|w| {
            w.nodes[self.n]
                .pgboxd
                .as_ref()
                .expect("the loop runs inside pgboxd")
                .promise
                .clone()
        })
    }

    fn watchdog_armed(&self) -> bool {
        self.sim.with(|w| {
            w.nodes[self.n]
                .pgboxd
                .as_ref()
                .is_some_and(|d| d.watchdog_open)
        })
    }

    fn arm_watchdog(&self) {
        self.sim.with(|w| w.arm_watchdog(self.n))
    }

    fn disarm_watchdog(&self) {
        self.sim.with(|w| w.disarm_watchdog(self.n))
    }

    fn pet_watchdog(&self) {
        self.sim.with(|w| w.pet_watchdog(self.n))
    }

    async fn run(&mut self, action: &Action, within_ms: Option<u64>) -> Option<anyhow::Result<()>> {
        match within_ms {
            Some(ms) => self.clock.timeout(ms, self.exec.run(action)).await,
            None => Some(self.exec.run(action).await),
        }
    }

    /// The simulated cluster has no cluster-wide settings beyond `pause`.
    fn live_config(
        &mut self,
        _config: &crate::dcs::model::DynamicConfig,
    ) -> crate::ha_loop::LiveConfig {
        crate::ha_loop::LiveConfig::default()
    }

    // Operations the simulated operator asks (`Fault::Operation`), through
    // the mailbox pgboxd's API uses.
    fn due_operation(&self, now_unix_ms: u64) -> Option<(u64, crate::ha::Operation)> {
        let n = self.n;
        self.sim
            .with(|w| w.nodes[n].pgboxd.as_ref().map(|d| d.ops.clone()))
            .and_then(|ops| ops.due(now_unix_ms))
    }

    fn settle_operation(&self, ticket: u64, settled: crate::ops_mailbox::Settled) {
        let n = self.n;
        self.sim.with(|w| {
            if let Some(d) = &w.nodes[n].pgboxd {
                d.ops.settle(ticket, settled.clone());
            }
            if settled == crate::ops_mailbox::Settled::Done {
                w.stats.operations_done += 1;
            }
            if settled != crate::ops_mailbox::Settled::Started {
                w.trace(n, format!("operation {ticket}: {settled:?}"));
            }
        });
    }

    fn log_decision(&self, obs: &Observation, decision: &Decision) {
        if !decision.actions.is_empty() {
            let n = self.n;
            self.sim.with(|w| {
                let pauses = w.nodes[n].vm_pauses;
                if let Some(d) = w.nodes[n].pgboxd.as_mut() {
                    d.pauses_at_decision = pauses;
                }
            });
        }
        if decision.reason.contains("without pg_rewind") {
            self.sim.with(|w| w.stats.clean_rejoins += 1);
        }
        let dcs = if obs.dcs.is_some() { "" } else { " [no DCS]" };
        let line = if decision.actions.is_empty() {
            format!("[{:?}{dcs}] {}", obs.pg.role, decision.reason)
        } else {
            format!(
                "[{:?}{dcs}] {} -> {:?}",
                obs.pg.role, decision.reason, decision.actions
            )
        };
        self.sim.with(|w| w.trace(self.n, line));
    }

    fn log_action_failed(&self, _: &Observation, _: &Decision, action: &Action, e: &anyhow::Error) {
        self.sim
            .with(|w| w.trace(self.n, format!("{action:?} failed: {e:#}")));
    }

    fn publish(&mut self, r: Report) {
        self.sim.with(|w| {
            w.nodes[self.n].api = Some(ApiSnapshot {
                state: r.state,
                pg: r.pg,
                is_leader: r.is_leader,
            })
        });
    }
}

/// Whether `from`'s API client gets an answer from `to`'s API.
pub(super) fn api_reachable(w: &World, from: usize, to: usize) -> bool {
    w.link_ok(from, to) && w.nodes[to].pgboxd.is_some() && !w.frozen(to)
}

/// How long a round of concurrent API calls from `n` to every other member
/// takes: a few ms, or the client's timeout when any of them cannot answer.
pub(super) fn api_round_ms(w: &mut World, n: usize) -> u64 {
    let all = (0..w.nodes.len())
        .filter(|m| *m != n)
        .all(|m| api_reachable(w, n, m));
    if all {
        w.rng.range(1, 6)
    } else {
        w.timing.peer_timeout_ms
    }
}

/// `Daemon::failsafe_round`: `POST /failsafe` to every other member at
/// once, each judged as the route does (a member that runs as primary or
/// holds the key refuses); true when all accepted. A member accepts when
/// the request reaches it, before the answer travels back.
pub(super) async fn failsafe_round(sim: &Rc<Sim>, n: usize) -> bool {
    let reachable = |w: &World, m: usize| api_reachable(w, n, m);
    let wait = sim.with(|w| api_round_ms(w, n));
    let accepted = sim.with(|w| {
        let leader = w.nodes[n].name.clone();
        let mut all = true;
        for m in (0..w.nodes.len()).filter(|m| *m != n) {
            let refuses = w.nodes[m].api.as_ref().is_none_or(|api| {
                ha::vouch_refusal(api.is_leader, api.pg.running, api.pg.role).is_some()
            });
            if !reachable(w, m) || refuses {
                all = false;
                continue;
            }
            let now = w.local_now(m);
            w.nodes[m].pgboxd.as_mut().expect("reachable").promise = (Some(leader.clone()), now);
        }
        all
    });
    sleep(sim, wait).await;
    // The answers travel back over the same links.
    accepted
        && sim.with(|w| {
            (0..w.nodes.len())
                .filter(|m| *m != n)
                .all(|m| w.link_ok(n, m))
        })
}

/// `Daemon::ask_peers`: each other member's `/patroni`, concurrently, with
/// the API client's timeout.
pub(super) async fn ask_peers(sim: &Rc<Sim>, n: usize) -> Vec<Peer> {
    let reachable = |w: &World, m: usize| api_reachable(w, n, m);
    // The peers' PostgreSQL at the same time: a host that does not answer
    // costs the probe's whole limit (a refused connection, a moment).
    let wait = sim.with(|w| {
        let api = api_round_ms(w, n);
        let cut = (0..w.nodes.len()).any(|m| m != n && !w.link_ok(n, m));
        if cut {
            api.max(w.timing.pg_probe_ms)
        } else {
            api
        }
    });
    sleep(sim, wait).await;
    sim.with(|w| {
        (0..w.nodes.len())
            .filter(|m| *m != n)
            .map(|m| {
                let node = &w.nodes[m];
                let mut peer = Peer::unheard(&node.name, &node.tags);
                // Its PostgreSQL is asked at the same time, over its own
                // connection (within the same timeout).
                let pg = &node.pg;
                if w.link_ok(n, m) && pg.proc == Proc::Running {
                    let d = pg.data.as_ref().expect("a running server has data");
                    peer.postgres = Some(crate::ha::PeerPostgres {
                        primary: pg.role == Role::Primary,
                        fenced: pg.fenced,
                        lsn: (pg.role == Role::Primary).then(|| d.lsn()),
                        timeline: (pg.role == Role::Primary).then(|| d.tl()),
                    });
                }
                if let (true, Some(api)) = (reachable(w, m), &node.api) {
                    // Through the document the API serves and the parser
                    // pgboxd reads it with.
                    let mut status = NodeStatus::new(
                        &node.name,
                        "sim",
                        node.tags.clone(),
                        std::time::Duration::ZERO,
                    );
                    status.state = api.state.clone();
                    status.pg = api.pg.clone();
                    status.is_leader = api.is_leader;
                    let doc = crate::api::routes::patroni::body(&status);
                    peer = Peer::from_patroni(&node.name, &node.tags, &doc);
                }
                peer
            })
            .collect()
    })
}

pub(super) fn node_index(sim: &Rc<Sim>, name: &str) -> R<usize> {
    sim.with(|w| w.node_named(name))
        .ok_or_else(|| format!("{name} is not a node of this cluster"))
}

impl SimClock {
    pub(super) fn new(sim: &Rc<Sim>, n: usize) -> Self {
        SimClock {
            sim: sim.clone(),
            n,
        }
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.sim.with(|w| w.local_now(self.n))
    }

    fn now_unix_ms(&self) -> u64 {
        EPOCH_UNIX_MS + self.now_ms()
    }

    async fn timeout<F: Future>(&self, ms: u64, f: F) -> Option<F::Output> {
        timeout(&self.sim, ms, f).await
    }

    async fn sleep(&self, ms: u64) {
        sleep(&self.sim, ms).await
    }

    fn log(&self, _: Level, message: &str) {
        self.sim.with(|w| w.trace(self.n, message.to_string()));
    }
}

/// The executor's DCS on a simulated node: each transaction of
/// dcs/etcd.rs applied to the simulated store through the client model
/// above (endpoints, timeouts, lost answers). The checks of the leader
/// key's changes (who took it from whom) live here, where it changes.
pub(super) struct SimDcs {
    sim: Rc<Sim>,
    n: usize,
}

impl SimDcs {
    fn me(&self) -> String {
        member_name(&self.sim, self.n)
    }

    async fn call<T>(&self, op: impl FnMut(&mut World) -> R<T>) -> anyhow::Result<T> {
        call(&self.sim, self.n, op).await.map_err(anyhow_of)
    }

    async fn lease(&self) -> anyhow::Result<i64> {
        ensure_lease(&self.sim, self.n).await
    }
}

impl ActionDcs for SimDcs {
    fn renewed_at_ms(&self) -> Option<u64> {
        let n = self.n;
        self.sim
            .with(|w| w.nodes[n].pgboxd.as_ref().and_then(|d| d.renewed_at))
    }

    async fn claim_initialize(&self) -> anyhow::Result<bool> {
        let lease = self.lease().await?;
        self.call(move |w| w.dcs.claim_initialize(lease)).await
    }

    async fn release_initialize_claim(&self) -> anyhow::Result<()> {
        let Some(lease) = lease_id(&self.sim, self.n) else {
            return Ok(());
        };
        self.call(move |w| {
            if w.dcs.initialize_lease == Some(lease) {
                w.dcs.initialize = None;
                w.dcs.initialize_lease = None;
            }
            Ok(())
        })
        .await
    }

    async fn set_initialize(&self, system_id: &str) -> anyhow::Result<()> {
        let sysid = system_id.to_string();
        self.call(move |w| {
            w.dcs.set_initialize(sysid.clone());
            Ok(())
        })
        .await
    }

    async fn acquire_leader(&self) -> anyhow::Result<bool> {
        let (me, n) = (self.me(), self.n);
        let lease = self.lease().await?;
        self.call(move |w| {
            let before = w.dcs.last_holder.clone();
            let (ok, change) = w.dcs.acquire_leader(&me, lease)?;
            if ok && w.nodes[n].tags.nofailover && before.as_ref().is_some_and(|b| *b != me) {
                let b = before.unwrap_or_default();
                w.violate(
                    Invariant::NofailoverPromoted,
                    format!("{me} is tagged nofailover and took the leader key over from {b}"),
                );
            }
            w.leader_changed(change, "acquired");
            Ok(ok)
        })
        .await
    }

    async fn retake_leader(&self, sync: &SyncKey) -> anyhow::Result<bool> {
        let (me, sync) = (self.me(), sync.clone());
        let lease = self.lease().await?;
        self.call(move |w| {
            let (ok, change) = w.dcs.retake_leader(&me, lease, &sync)?;
            w.leader_changed(change, "taken back");
            Ok(ok)
        })
        .await
    }

    async fn release_leader(&self) -> anyhow::Result<()> {
        let me = self.me();
        self.call(move |w| {
            let change = w.dcs.release_leader(&me);
            w.leader_changed(change, "released");
            Ok(())
        })
        .await
    }

    async fn put_sync(&self, key: &SyncKey) -> anyhow::Result<()> {
        let (me, key) = (self.me(), key.clone());
        self.call(move |w| {
            if !w.dcs.leader_is(&me) {
                return Err("not writing the sync key: the leader key does not name me".into());
            }
            w.dcs.sync = Some(key.clone());
            Ok(())
        })
        .await
    }

    async fn read_sync(&self) -> anyhow::Result<Option<SyncKey>> {
        self.call(|w| Ok(w.dcs.sync.clone())).await
    }

    async fn read_history_and_sync(&self) -> anyhow::Result<(Vec<HistoryEntry>, Option<SyncKey>)> {
        self.call(|w| Ok((w.dcs.history.clone(), w.dcs.sync.clone())))
            .await
    }

    async fn clear_failover(&self) -> anyhow::Result<()> {
        self.call(|w| {
            w.dcs.failover = None;
            Ok(())
        })
        .await
    }

    async fn reserve_timeline(&self, next: u32) -> anyhow::Result<u32> {
        leader_records::reserve_timeline(self, next).await
    }

    async fn append_history(&self, entry: HistoryEntry) -> anyhow::Result<()> {
        leader_records::append_history(self, entry).await
    }

    async fn put_status(&self, lsn: u64) -> anyhow::Result<()> {
        self.call(move |w| {
            w.dcs.status = Some(lsn);
            Ok(())
        })
        .await
    }

    /// One more request that may fail or time out; the simulated cluster
    /// has no cluster-wide settings beyond `pause`.
    async fn seed_config(&self) -> anyhow::Result<()> {
        self.call(|_| Ok(())).await
    }
}

/// The leader-written documents, each read and conditional write one
/// request through the client model.
impl LeaderCas for SimDcs {
    async fn read_doc(&self, name: &str) -> anyhow::Result<(Option<String>, i64)> {
        let name = name.to_string();
        self.call(move |w| w.dcs.doc(&name)).await
    }

    async fn write_doc_if(&self, name: &str, rev: i64, json: String) -> anyhow::Result<CasOutcome> {
        let (me, name) = (self.me(), name.to_string());
        self.call(move |w| w.dcs.write_doc_if(&me, &name, rev, &json))
            .await
    }
}

/// The executor's PostgreSQL on a simulated node: the process model below
/// (start-up, fast shutdown, promotion, reloads, WAL streaming) and the
/// fence set over a connection to another member's server.
pub(super) struct SimPg {
    sim: Rc<Sim>,
    n: usize,
}

impl PgControl for SimPg {
    /// initdb leaves the control file saying "shut down".
    async fn initdb(&mut self) -> anyhow::Result<()> {
        let (sim, n) = (&self.sim, self.n);
        if sim.with(|w| w.nodes[n].pg.data.is_some()) {
            anyhow::bail!("initdb: the data directory exists and is not empty");
        }
        let ms = sim.with(|w| w.rng.range(800, 2_500));
        sleep(sim, ms).await;
        sim.with(|w| {
            let system_id = format!("7{:018}", w.rng.below(1_000_000_000_000_000_000));
            let rec = w.new_rec(0x0100_0000, 1, 0x28, None);
            w.nodes[n].pg.data = Some(DataDir {
                system_id,
                wal: vec![rec],
                was_primary: true,
                clean_stop: true,
                slots: Vec::new(),
                history_files: Vec::new(),
            });
        });
        Ok(())
    }

    async fn create_roles(&mut self) -> anyhow::Result<()> {
        let n = self.n;
        self.sim
            .with(|w| {
                require_running(w, n)?;
                w.append_wal(n, 0x3000, None);
                Ok::<_, String>(())
            })
            .map_err(anyhow_of)
    }

    async fn start(&mut self, standby: Option<Option<&str>>) -> anyhow::Result<()> {
        let standby = match standby {
            None => None,
            Some(None) => Some(None),
            Some(Some(m)) => Some(Some(node_index(&self.sim, m).map_err(anyhow_of)?)),
        };
        pg_start(&self.sim, self.n, standby)
            .await
            .map_err(anyhow_of)
    }

    fn set_sync_names_for_start(&mut self, names: &str) {
        let n = self.n;
        self.sim.with(|w| {
            w.nodes[n].pgboxd.as_mut().expect("pgboxd runs").sync_names = names.to_string()
        });
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        pg_stop(&self.sim, self.n).await.map_err(anyhow_of)
    }

    fn remove_data(&mut self) -> anyhow::Result<()> {
        let n = self.n;
        self.sim.with(|w| w.nodes[n].pg.data = None);
        Ok(())
    }

    async fn base_backup(&mut self, from: &str) -> anyhow::Result<()> {
        let src = node_index(&self.sim, from).map_err(anyhow_of)?;
        base_backup(&self.sim, self.n, src).await.map_err(anyhow_of)
    }

    async fn rewind(&mut self, from: &str) -> anyhow::Result<()> {
        let src = node_index(&self.sim, from).map_err(anyhow_of)?;
        rewind(&self.sim, self.n, src).await.map_err(anyhow_of)
    }

    async fn follow(&mut self, leader: &str) -> anyhow::Result<()> {
        let up = node_index(&self.sim, leader).map_err(anyhow_of)?;
        follow(&self.sim, self.n, up).await.map_err(anyhow_of)
    }

    async fn checkpoint(&mut self) -> anyhow::Result<()> {
        checkpoint(&self.sim, self.n).await.map_err(anyhow_of)
    }

    async fn reload(&mut self) -> anyhow::Result<()> {
        let n = self.n;
        self.sim.with(|w| require_running(w, n)).map_err(anyhow_of)
    }

    fn set_aside_data(&mut self) -> anyhow::Result<()> {
        let n = self.n;
        self.sim.with(|w| {
            let pg = &mut w.nodes[n].pg;
            pg.aside = pg.data.take();
        });
        Ok(())
    }

    fn restore_set_aside(&mut self) -> anyhow::Result<()> {
        let n = self.n;
        self.sim.with(|w| {
            let pg = &mut w.nodes[n].pg;
            if pg.data.is_some() {
                anyhow::bail!("a data directory exists; not putting the old one back over it");
            }
            pg.data = pg.aside.take();
            Ok(())
        })
    }

    fn drop_set_aside(&mut self) -> anyhow::Result<()> {
        let n = self.n;
        self.sim.with(|w| w.nodes[n].pg.aside = None);
        Ok(())
    }

    async fn set_sync_names(&mut self, names: &str) -> anyhow::Result<()> {
        set_sync_names(&self.sim, self.n, names)
            .await
            .map_err(anyhow_of)
    }

    async fn next_timeline(&mut self) -> anyhow::Result<u32> {
        let n = self.n;
        self.sim
            .with(|w| {
                require_running(w, n)?;
                Ok::<_, String>(w.nodes[n].pg.data.as_ref().unwrap().next_timeline())
            })
            .map_err(anyhow_of)
    }

    async fn skip_timelines(&mut self, target: u32) -> anyhow::Result<()> {
        let n = self.n;
        self.sim
            .with(|w| {
                require_running(w, n)?;
                let d = w.nodes[n].pg.data.as_mut().unwrap();
                while d.next_timeline() < target {
                    let t = d.next_timeline();
                    d.history_files.push(t);
                }
                Ok::<_, String>(())
            })
            .map_err(anyhow_of)
    }

    async fn promote(&mut self) -> anyhow::Result<()> {
        pg_promote(&self.sim, self.n).await.map_err(anyhow_of)
    }

    async fn ensure_slots(&mut self, members: &[String]) -> anyhow::Result<()> {
        let n = self.n;
        self.sim
            .with(|w| {
                require_running(w, n)?;
                let names: Vec<String> = members
                    .iter()
                    .map(|m| crate::postgres::conf::slot_name(m))
                    .collect();
                let d = w.nodes[n].pg.data.as_mut().unwrap();
                for s in names {
                    if !d.slots.contains(&s) {
                        d.slots.push(s);
                    }
                }
                Ok::<_, String>(())
            })
            .map_err(anyhow_of)
    }

    async fn health(&mut self) -> PgStatus {
        let n = self.n;
        self.sim.with(|w| w.health(n))
    }

    /// Over a connection to `member`'s PostgreSQL: the fence in
    /// postgresql.auto.conf and a reload (commits wait for a standby that
    /// does not exist, new transactions are read-only), its client sessions
    /// ended (waiting commits never acknowledged). A host that does not
    /// answer costs the whole budget (the connect timeout), a refused
    /// connection a moment.
    async fn fence(&self, member: &str, within_ms: u64) -> anyhow::Result<Option<Fenced>> {
        let (sim, n) = (&self.sim, self.n);
        let m = node_index(sim, member).map_err(anyhow_of)?;
        let ms = sim.with(|w| {
            if w.link_ok(n, m) {
                w.rng.range(5, 60).min(within_ms)
            } else {
                within_ms
            }
        });
        sleep(sim, ms).await;
        sim.with(|w| {
            let pg = &w.nodes[m].pg;
            if !w.link_ok(n, m) || pg.proc != Proc::Running {
                anyhow::bail!("connecting to {member}'s PostgreSQL failed");
            }
            if pg.role != Role::Primary {
                return Ok(None);
            }
            let pg = &mut w.nodes[m].pg;
            pg.sync_names = crate::postgres::fence::FENCE_NAMES.to_string();
            pg.fenced = true;
            pg.pending.clear();
            let d = pg.data.as_ref().expect("a running server has data");
            let (lsn, tl) = (d.lsn(), d.tl());
            w.trace(
                m,
                format!(
                    "fenced by {}: its WAL ends at {}",
                    w.nodes[n].name,
                    format_lsn(lsn)
                ),
            );
            Ok(Some(Fenced {
                lsn,
                timeline: Some(tl),
            }))
        })
    }
}
