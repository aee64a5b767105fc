//! pgboxd on a simulated node: the HA loop of daemon.rs, the actions of
//! executor.rs, and the lease keep-alive of dcs/etcd.rs, step for step and
//! with the same await points, against the simulated DCS and PostgreSQL.
//! Where the real code waits on the network, this waits as long as the real
//! timeouts would: a partitioned node's DCS call fails only after every
//! endpoint timed out.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::clock::Clock;
use crate::dcs::etcd::LeaderKey;
use crate::dcs::model::{format_lsn, ClusterView, HistoryEntry, Member, SyncKey};
use crate::executor::{ActionDcs, Executor, PgControl};
use crate::ha::{self, Action, DataDir as HaData, Decision, Observation, Peer, Role};
use crate::ha_loop::{HaLoop, Identity, Level, LoopIo, Report};
use crate::postgres::fence::Fenced;
use crate::status::PgStatus;

use super::pg::{DataDir, Proc, Pump};
use super::runtime::{sleep, timeout, Owner, Sim, WaitWake};
use super::world::{ApiSnapshot, Endpoint, Pgboxd, World, EPOCH_UNIX_MS};
use super::Invariant;

type R<T> = Result<T, String>;

/// pgboxd starts (boot, systemd restart, a person's start).
pub(super) fn start_pgboxd(sim: &Rc<Sim>, n: usize) {
    let fresh = sim.with(|w| {
        if w.nodes[n].pgboxd.is_some() || !w.nodes[n].host_up {
            return false;
        }
        w.nodes[n].pgboxd = Some(Pgboxd {
            loop_task: 0,
            lease_id: None,
            renewed_at: None,
            sync_names: String::new(),
            sigterm: false,
            wake_at: None,
            granting: false,
            watchdog_open: false,
            promise: (None, w.local_now(n)),
        });
        w.nodes[n].api = Some(ApiSnapshot {
            state: "starting".into(),
            pg: PgStatus::default(),
            is_leader: false,
        });
        w.nodes[n].frozen_until = 0;
        w.trace(n, "pgboxd starts".into());
        // `Daemon::run`: its PostgreSQL died with the predecessor, so a
        // countdown that one left running guards nothing; stop it.
        if w.cfg.watchdog && w.nodes[n].watchdog.take().is_some() {
            w.trace(
                n,
                "stopped the watchdog countdown a previous pgboxd left running".into(),
            );
        }
        true
    });
    if !fresh {
        return;
    }
    sim.spawn(Owner::Pgboxd(n), keep_alive(sim.clone(), n));
    let id = sim.spawn(Owner::Pgboxd(n), daemon(sim.clone(), n));
    sim.with(|w| w.nodes[n].pgboxd.as_mut().unwrap().loop_task = id);
}

/// pgboxd dies; its PostgreSQL dies with it (PR_SET_PDEATHSIG).
pub(super) fn kill_pgboxd(sim: &Rc<Sim>, n: usize, why: &str) {
    sim.kill(Owner::Pgboxd(n));
    sim.kill(Owner::Postgres(n));
    sim.kill(Owner::WalReceiver(n));
    sim.with(|w| {
        let had = w.nodes[n].pgboxd.take().is_some();
        w.nodes[n].api = None;
        w.nodes[n].frozen_until = 0;
        if had {
            w.trace(n, format!("pgboxd dies ({why})"));
        }
        w.pg_crash(n, "dies with pgboxd");
    });
}

/// pgboxd exits after a clean shutdown. If the person who stopped it has
/// started it again meanwhile, the start job systemd queued runs now.
fn pgboxd_exited(sim: &Rc<Sim>, n: usize) {
    sim.with(|w| {
        w.nodes[n].pgboxd = None;
        w.nodes[n].api = None;
        w.trace(n, "pgboxd exited".into());
    });
    let s = sim.clone();
    sim.spawn(Owner::World, async move { super::faults::reconcile(&s, n) });
    sim.kill(Owner::Pgboxd(n));
}

fn me(w: &World, n: usize) -> String {
    w.nodes[n].name.clone()
}

/// One DCS request to one endpoint: it reaches the store after a little
/// while and its answer comes back after a little more. An unreachable store
/// costs the request timeout; an answer lost on the way back leaves the
/// operation applied and the caller believing it failed.
async fn attempt<T>(sim: &Rc<Sim>, n: usize, op: &mut impl FnMut(&mut World) -> R<T>) -> R<T> {
    let (l1, l2, limit) = sim.with(|w| {
        (
            w.rng.range(1, 4),
            w.rng.range(1, 4),
            w.timing.request_timeout_ms,
        )
    });
    sleep(sim, l1).await;
    if !sim.with(|w| w.dcs_reachable(n)) {
        sleep(sim, limit.saturating_sub(l1)).await;
        return Err("etcd: request timed out".into());
    }
    let r = sim.with(|w| op(w));
    sleep(sim, l2).await;
    if !sim.with(|w| w.dcs_reachable(n)) {
        sleep(sim, limit.saturating_sub(l1 + l2)).await;
        return Err("etcd: no answer (the request may have been applied)".into());
    }
    r
}

/// `Etcd::call`: the operation against each endpoint in turn until one
/// answers (an operation that reached the store is sent again).
async fn call<T>(sim: &Rc<Sim>, n: usize, mut op: impl FnMut(&mut World) -> R<T>) -> R<T> {
    let endpoints = sim.with(|w| w.cfg.dcs_endpoints.max(1));
    let mut last = Err("etcd: no endpoint".to_string());
    for _ in 0..endpoints {
        last = attempt(sim, n, &mut op).await;
        match &last {
            Err(e) if e.starts_with("etcd:") => continue,
            _ => return last,
        }
    }
    last
}

/// One request on the lease keep-alive stream (one endpoint, no retry).
async fn request<T>(sim: &Rc<Sim>, n: usize, mut op: impl FnMut(&mut World) -> R<T>) -> R<T> {
    attempt(sim, n, &mut op).await
}

fn lease_id(sim: &Rc<Sim>, n: usize) -> Option<i64> {
    sim.with(|w| w.nodes[n].pgboxd.as_ref().and_then(|d| d.lease_id))
}

/// `Etcd::granting`, held across a grant; released however the holder
/// ends (a caller's timeout drops it mid-grant).
struct GrantLock {
    sim: Rc<Sim>,
    n: usize,
}

impl Drop for GrantLock {
    fn drop(&mut self) {
        if let Ok(mut w) = self.sim.w.try_borrow_mut() {
            if let Some(d) = w.nodes[self.n].pgboxd.as_mut() {
                d.granting = false;
            }
        }
    }
}

async fn grant_lock(sim: &Rc<Sim>, n: usize) -> GrantLock {
    loop {
        let got = sim.with(|w| match w.nodes[n].pgboxd.as_mut() {
            Some(d) if !d.granting => {
                d.granting = true;
                true
            }
            _ => false,
        });
        if got {
            return GrantLock {
                sim: sim.clone(),
                n,
            };
        }
        sleep(sim, 5).await;
    }
}

/// `Etcd::ensure_lease`: one grant at a time; a lease not renewed for a
/// whole TTL is replaced.
async fn ensure_lease(sim: &Rc<Sim>, n: usize) -> R<i64> {
    let _one_at_a_time = grant_lock(sim, n).await;
    let stale = sim.with(|w| {
        let now = w.local_now(n);
        let ttl = w.settings.ttl_ms;
        let d = w.nodes[n].pgboxd.as_mut()?;
        let id = d.lease_id?;
        if d.renewed_at.is_some_and(|t| now - t < ttl) {
            return Some(Ok(id));
        }
        d.lease_id = None;
        d.renewed_at = None;
        Some(Err(id))
    });
    match stale {
        Some(Ok(id)) => return Ok(id),
        Some(Err(id)) => sim.with(|w| {
            w.trace(
                n,
                format!("my DCS lease {id:x} was not renewed for a whole TTL; granting a new one"),
            )
        }),
        None => {}
    }
    let sent = sim.with(|w| w.local_now(n));
    let ttl = sim.with(|w| (w.settings.ttl_ms / 1000).max(2) * 1000);
    let id = call(sim, n, move |w| {
        let now = w.clock.now;
        Ok(w.dcs.grant(now, ttl))
    })
    .await?;
    sim.with(|w| {
        if let Some(d) = w.nodes[n].pgboxd.as_mut() {
            d.lease_id = Some(id);
            d.renewed_at = Some(sent);
        }
        w.trace(n, format!("granted lease {id:x}"));
    });
    Ok(id)
}

/// `Etcd::keep_alive_forever`.
async fn keep_alive(sim: Rc<Sim>, n: usize) {
    let every = sim.with(|w| w.settings.loop_wait_ms.min(w.settings.ttl_ms / 3));
    let mut failing = false;
    loop {
        match keep_alive_session(&sim, n, every).await {
            Err(e) if !failing => {
                failing = true;
                sim.with(|w| w.trace(n, format!("lease renewal failed; retrying: {e}")));
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
        sleep(&sim, every.min(500)).await;
    }
}

async fn keep_alive_session(sim: &Rc<Sim>, n: usize, every: u64) -> R<()> {
    let id = ensure_lease(sim, n).await?;
    // Opening the keep-alive stream is one more round trip.
    request(sim, n, |_| Ok(())).await?;
    loop {
        let sent = sim.with(|w| w.local_now(n));
        let alive = request(sim, n, move |w| {
            let now = w.clock.now;
            Ok(w.dcs.keep_alive(id, now))
        })
        .await?;
        if !alive {
            sim.with(|w| {
                if let Some(d) = w.nodes[n].pgboxd.as_mut() {
                    if d.lease_id == Some(id) {
                        d.lease_id = None;
                        d.renewed_at = None;
                    }
                }
                w.trace(
                    n,
                    format!("my DCS lease {id:x} expired; a new one will be granted"),
                );
                w.wake(n, 0);
            });
            return Ok(());
        }
        sim.with(|w| {
            if let Some(d) = w.nodes[n].pgboxd.as_mut() {
                d.renewed_at = Some(sent);
            }
            w.pet_watchdog(n);
        });
        sleep(sim, every).await;
        if lease_id(sim, n) != Some(id) {
            return Ok(());
        }
    }
}

/// `Daemon::run`'s driver: the shared loop, a wait for loop_wait or a
/// wake-up, and on SIGTERM (seen only between two loops) a clean shutdown.
async fn daemon(sim: Rc<Sim>, n: usize) {
    let (me, settings) = sim.with(|w| (identity(w, n), w.settings.clone()));
    let mut ha = HaLoop::new(me, settings);
    let mut io = SimIo::new(&sim, n);
    loop {
        ha.iterate(&mut io).await;
        let ms = ha.next_wait_ms(&io);
        if !(WaitWake {
            sim: sim.clone(),
            node: n,
            ms,
            until: None,
        })
        .await
        {
            break;
        }
    }
    ha.shutdown(&mut io).await;
    pgboxd_exited(&sim, n);
}

fn identity(w: &World, n: usize) -> Identity {
    let node = &w.nodes[n];
    Identity {
        name: node.name.clone(),
        tags: node.tags.clone(),
        conn_url: format!("postgres://{}:5432/postgres", node.name),
        api_url: format!("http://{}:8008/patroni", node.name),
    }
}

/// The loop's I/O on a simulated node: the simulated DCS (through the
/// client model above: endpoints, timeouts, lost answers), PostgreSQL,
/// peers, watchdog and clock.
struct SimIo {
    sim: Rc<Sim>,
    n: usize,
    clock: SimClock,
    exec: Executor<SimDcs, SimPg, SimClock>,
}

impl SimIo {
    fn new(sim: &Rc<Sim>, n: usize) -> Self {
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

fn anyhow_of(e: String) -> anyhow::Error {
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
        let lease = ensure_lease(sim, n).await.map_err(anyhow_of)?;
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
        let r = self.exec.pg.stop().await;
        self.sim.with(|w| w.disarm_watchdog(self.n));
        r
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

    fn log_decision(&self, obs: &Observation, decision: &Decision) {
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

fn member_name(sim: &Rc<Sim>, n: usize) -> String {
    sim.with(|w| me(w, n))
}

/// Whether `from`'s API client gets an answer from `to`'s API.
fn api_reachable(w: &World, from: usize, to: usize) -> bool {
    w.link_ok(from, to) && w.nodes[to].pgboxd.is_some() && !w.frozen(to)
}

/// How long a round of concurrent API calls from `n` to every other member
/// takes: a few ms, or the client's timeout when any of them cannot answer.
fn api_round_ms(w: &mut World, n: usize) -> u64 {
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
async fn failsafe_round(sim: &Rc<Sim>, n: usize) -> bool {
    let reachable = |w: &World, m: usize| api_reachable(w, n, m);
    let wait = sim.with(|w| api_round_ms(w, n));
    let accepted = sim.with(|w| {
        let leader = w.nodes[n].name.clone();
        let mut all = true;
        for m in (0..w.nodes.len()).filter(|m| *m != n) {
            let refuses = w.nodes[m].api.as_ref().is_none_or(|api| {
                api.is_leader || (api.pg.running && api.pg.role == Role::Primary)
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
async fn ask_peers(sim: &Rc<Sim>, n: usize) -> Vec<Peer> {
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
                    peer.postgres = None;
                    peer.reachable = true;
                    peer.role = match api.pg.role {
                        Role::Primary if api.state == "running" => Role::Primary,
                        Role::Replica => Role::Replica,
                        _ => Role::Unknown,
                    };
                    if api.pg.running {
                        peer.timeline = api.pg.timeline;
                        peer.lsn = [api.pg.lsn, api.pg.receive_lsn].into_iter().flatten().max();
                    }
                }
                peer
            })
            .collect()
    })
}

fn node_index(sim: &Rc<Sim>, name: &str) -> R<usize> {
    sim.with(|w| w.node_named(name))
        .ok_or_else(|| format!("{name} is not a node of this cluster"))
}

fn require_running(w: &World, n: usize) -> R<()> {
    if w.nodes[n].pg.proc == Proc::Running {
        Ok(())
    } else {
        Err("connecting to the local postgres: connection refused".into())
    }
}

/// A simulated node's clock (its own: it stops while its VM is paused) and
/// journal (the trace).
#[derive(Clone)]
struct SimClock {
    sim: Rc<Sim>,
    n: usize,
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
struct SimDcs {
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
        ensure_lease(&self.sim, self.n).await.map_err(anyhow_of)
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

    async fn clear_failover(&self) -> anyhow::Result<()> {
        self.call(|w| {
            w.dcs.failover = None;
            Ok(())
        })
        .await
    }

    async fn append_history(&self, entry: HistoryEntry) -> anyhow::Result<()> {
        append_history(&self.sim, self.n, entry)
            .await
            .map_err(anyhow_of)
    }

    async fn put_status(&self, lsn: u64) -> anyhow::Result<()> {
        self.call(move |w| {
            w.dcs.status = Some(lsn);
            Ok(())
        })
        .await
    }
}

/// The executor's PostgreSQL on a simulated node: the process model below
/// (start-up, fast shutdown, promotion, reloads, WAL streaming) and the
/// fence set over a connection to another member's server.
struct SimPg {
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

    async fn set_sync_names(&mut self, names: &str) -> anyhow::Result<()> {
        set_sync_names(&self.sim, self.n, names)
            .await
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
                format!("fenced by {}: its WAL ends at {}", w.nodes[n].name, format_lsn(lsn)),
            );
            Ok(Some(Fenced {
                lsn,
                timeline: Some(tl),
            }))
        })
    }
}

/// Something PostgreSQL carries out on its own once asked (start-up, fast
/// shutdown, promotion, a reload, a checkpoint): it completes after `ms`
/// whatever pgboxd does meanwhile (a hung pgboxd does not stop a promotion
/// it asked for); pgboxd waits for the outcome.
async fn in_postgres<T: 'static>(
    sim: &Rc<Sim>,
    n: usize,
    ms: u64,
    f: impl FnOnce(&Rc<Sim>) -> T + 'static,
) -> T {
    let slot: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
    let waiter = sim.with(|w| w.clock.current);
    let (s, done) = (sim.clone(), slot.clone());
    sim.spawn(Owner::Postgres(n), async move {
        sleep(&s, ms).await;
        let r = f(&s);
        *done.borrow_mut() = Some(r);
        s.with(|w| {
            let now = w.clock.now;
            w.clock.wake_at(now, waiter);
        });
    });
    Awaited { slot }.await
}

struct Awaited<T> {
    slot: Rc<RefCell<Option<T>>>,
}

impl<T> Future for Awaited<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        match self.slot.borrow_mut().take() {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }
}

/// `Postgres::start`: `None` = primary, `Some(None)` = read-only standby,
/// `Some(Some(u))` = standby streaming from u. Waits until it accepts
/// connections.
async fn pg_start(sim: &Rc<Sim>, n: usize, standby: Option<Option<usize>>) -> R<()> {
    let epoch = sim.with(|w| {
        let node = &mut w.nodes[n];
        if node.pg.alive() {
            return Err("PostgreSQL is already running".to_string());
        }
        let d = node.pgboxd.as_mut().expect("pgboxd runs");
        if standby.is_some() {
            d.sync_names = String::new();
        }
        let names = d.sync_names.clone();
        if node.pg.data.is_none() {
            return Err("writing postgresql.conf: no data directory".into());
        }
        let pg = &mut node.pg;
        pg.proc = Proc::Starting;
        pg.role = if standby.is_some() {
            Role::Replica
        } else {
            Role::Primary
        };
        pg.conninfo = standby.flatten();
        pg.sync_names = names;
        // postgresql.auto.conf is emptied before every start.
        pg.fenced = false;
        pg.epoch += 1;
        let epoch = pg.epoch;
        let how = match standby {
            None => "primary".to_string(),
            Some(None) => "read-only standby".to_string(),
            Some(Some(u)) => format!("standby of {}", w.nodes[u].name),
        };
        w.trace(n, format!("postgres starting as {how}"));
        Ok(epoch)
    })?;
    let (ms, pauses) = sim.with(|w| (w.rng.range(200, 1_500), w.nodes[n].vm_pauses));
    in_postgres(sim, n, ms, move |s| {
        let up = s.with(|w| {
            w.nodes[n].paused_while_asked = w.nodes[n].vm_pauses != pauses;
            let pg = &mut w.nodes[n].pg;
            if pg.epoch != epoch || pg.proc != Proc::Starting {
                return Err("postgres exited during start-up".to_string());
            }
            pg.proc = Proc::Running;
            let primary = standby.is_none();
            let data = pg.data.as_mut().unwrap();
            let from_replica_data = primary && !data.was_primary;
            data.was_primary = primary;
            // Running: the control file says "in production" (or "in
            // archive recovery") until the next clean stop.
            data.clean_stop = false;
            let up = pg.conninfo;
            w.trace(n, "postgres accepts connections".into());
            if primary {
                // Without standby.signal, a standby's data directory comes
                // up writable on its own timeline.
                let how = if from_replica_data {
                    "started as primary on a replica's data"
                } else {
                    "started as primary"
                };
                w.became_writable(n, how);
            }
            Ok(up)
        })?;
        if let Some(up) = up {
            spawn_receiver(s, n, up, epoch);
        }
        Ok(())
    })
    .await
}

fn spawn_receiver(sim: &Rc<Sim>, n: usize, up: usize, epoch: u64) {
    sim.kill(Owner::WalReceiver(n));
    let s = sim.clone();
    sim.spawn(Owner::WalReceiver(n), walreceiver(s, n, up, epoch));
}

/// `Postgres::stop`: fast shutdown.
async fn pg_stop(sim: &Rc<Sim>, n: usize) -> R<()> {
    // As `Postgres::stop_with`: once the postmaster has accepted the stop
    // (or when there is none: it crashed) nothing acknowledges a commit any
    // more, so the watchdog is disarmed now.
    let stopping = sim.with(|w| {
        let stopping = w.pg_begin_stop(n);
        w.disarm_watchdog(n);
        stopping
    });
    if !stopping {
        return Ok(());
    }
    // Usually well under a second; on a loaded box (a VM under TCG) a fast
    // shutdown's checkpoint has taken about 4 s.
    let ms = sim.with(|w| {
        if w.rng.range(0, 4) == 0 {
            w.rng.range(1_000, 5_000)
        } else {
            w.rng.range(100, 800)
        }
    });
    in_postgres(sim, n, ms, move |s| s.with(|w| w.pg_finish_stop(n))).await;
    Ok(())
}

/// `pg_promote(true)`: PostgreSQL ends recovery on a new timeline and
/// becomes writable (the executor has set the takeover hold first).
async fn pg_promote(sim: &Rc<Sim>, n: usize) -> R<()> {
    let epoch = sim.with(|w| {
        if !w.nodes[n].pg.running_as(Role::Replica) {
            return Err("pg_promote: recovery is not in progress".to_string());
        }
        Ok(w.nodes[n].pg.epoch)
    })?;
    let (ms, pauses) = sim.with(|w| (w.rng.range(50, 400), w.nodes[n].vm_pauses));
    in_postgres(sim, n, ms, move |s| {
        s.with(|w| {
            w.nodes[n].paused_while_asked = w.nodes[n].vm_pauses != pauses;
            let pg = &w.nodes[n].pg;
            if pg.epoch != epoch || !pg.running_as(Role::Replica) {
                return Err("pg_promote: the server did not finish promoting".to_string());
            }
            w.promote_now(n);
            Ok(())
        })?;
        s.kill(Owner::WalReceiver(n));
        Ok::<_, String>(())
    })
    .await
}

/// `Etcd::append_history`: read, then compare-and-set on the revision.
async fn append_history(sim: &Rc<Sim>, n: usize, entry: HistoryEntry) -> R<()> {
    for _ in 0..5 {
        let (mut list, rev) =
            call(sim, n, |w| Ok((w.dcs.history.clone(), w.dcs.history_rev))).await?;
        list.push(entry.clone());
        let me = entry.4.clone();
        let done = call(sim, n, move |w| {
            // `Etcd::append_history`: only the leader records a switch.
            if !w.dcs.leader_is(&me) {
                return Err("not recording history: the leader key does not name me".into());
            }
            if w.dcs.history_rev != rev {
                return Ok(false);
            }
            w.dcs.history = list.clone();
            w.dcs.history_rev += 1;
            Ok(true)
        })
        .await?;
        if done {
            return Ok(());
        }
    }
    Err("history kept changing".into())
}

/// `Postgres::follow`: new primary_conninfo, reload; the WAL receiver
/// reconnects to the new upstream.
async fn follow(sim: &Rc<Sim>, n: usize, up: usize) -> R<()> {
    let epoch = sim.with(|w| {
        require_running(w, n)?;
        Ok::<_, String>(w.nodes[n].pg.epoch)
    })?;
    let ms = sim.with(|w| w.rng.range(5, 30));
    in_postgres(sim, n, ms, move |s| {
        s.with(|w| {
            require_running(w, n)?;
            let pg = &mut w.nodes[n].pg;
            if pg.epoch != epoch {
                return Err("postgres restarted meanwhile".to_string());
            }
            pg.conninfo = Some(up);
            if pg.receiver.as_ref().is_some_and(|r| r.up != up) {
                pg.receiver = None;
            }
            Ok(())
        })?;
        spawn_receiver(s, n, up, epoch);
        Ok(())
    })
    .await
}

async fn checkpoint(sim: &Rc<Sim>, n: usize) -> R<()> {
    sim.with(|w| require_running(w, n))?;
    let ms = sim.with(|w| w.rng.range(50, 500));
    in_postgres(sim, n, ms, move |s| {
        s.with(|w| {
            require_running(w, n)?;
            if w.nodes[n].pg.role == Role::Primary {
                w.append_wal(n, 120, None);
            }
            Ok(())
        })
    })
    .await
}

/// `Postgres::set_sync_names`: remembered for the next start even when the
/// reload fails.
async fn set_sync_names(sim: &Rc<Sim>, n: usize, names: &str) -> R<()> {
    sim.with(|w| {
        w.nodes[n].pgboxd.as_mut().expect("pgboxd runs").sync_names = names.to_string();
        require_running(w, n)
    })?;
    let (ms, pauses) = sim.with(|w| (w.rng.range(5, 40), w.nodes[n].vm_pauses));
    let names = names.to_string();
    in_postgres(sim, n, ms, move |s| {
        s.with(|w| {
            require_running(w, n)?;
            let held = w.nodes[n].pg.sync_names == crate::postgres::conf::TAKEOVER_HOLD_NAMES;
            let holds = [
                crate::postgres::conf::TAKEOVER_HOLD_NAMES,
                crate::postgres::fence::FENCE_NAMES,
            ];
            let releases = held && !holds.contains(&names.as_str());
            w.nodes[n].pg.sync_names = names.clone();
            // The configuration is written afresh, postgresql.auto.conf
            // emptied (a fence an old primary carried ends here).
            w.nodes[n].pg.fenced = false;
            // A server told to wait for nobody releases every waiting commit.
            w.release_waiters(n);
            if releases && w.nodes[n].pg.role == Role::Primary {
                w.nodes[n].paused_while_asked = w.nodes[n].vm_pauses != pauses;
                w.became_writable(n, "takeover hold released");
            }
            Ok(())
        })
    })
    .await
}

/// `Postgres::base_backup` from a running member.
async fn base_backup(sim: &Rc<Sim>, n: usize, src: usize) -> R<()> {
    let reachable = |w: &World| w.link_ok(n, src) && w.nodes[src].pg.proc == Proc::Running;
    if !sim.with(|w| reachable(w)) {
        let ms = sim.with(|w| w.rng.range(100, 2_000));
        sleep(sim, ms).await;
        return Err(format!(
            "pg_basebackup: could not connect to {}",
            sim.with(|w| me(w, src))
        ));
    }
    let ms = sim.with(|w| w.rng.range(1_000, 5_000));
    sleep(sim, ms).await;
    sim.with(|w| {
        if !reachable(w) {
            return Err(format!(
                "pg_basebackup: lost the connection to {}",
                me(w, src)
            ));
        }
        if w.nodes[n].pg.data.is_some() {
            return Err("the data directory appeared while cloning; not replacing it".into());
        }
        if w.nodes[src].pg.role == Role::Primary {
            // -c fast: the backup starts with a checkpoint on the source.
            w.append_wal(src, 120, None);
        }
        let s = w.nodes[src].pg.data.as_ref().unwrap();
        let copy = DataDir {
            system_id: s.system_id.clone(),
            wal: s.wal.clone(),
            was_primary: false,
            clean_stop: false,
            slots: Vec::new(),
        };
        w.nodes[n].pg.data = Some(copy);
        w.stats.base_backups += 1;
        w.trace(n, format!("cloned {}", me(w, src)));
        Ok(())
    })
}

/// `Postgres::rewind`: CHECKPOINT on the source, then pg_rewind.
async fn rewind(sim: &Rc<Sim>, n: usize, src: usize) -> R<()> {
    sim.with(|w| {
        if w.nodes[n].pg.alive() {
            return Err("pg_rewind: target server must be shut down cleanly".to_string());
        }
        if w.nodes[n].pg.data.is_none() {
            return Err("writing postgresql.conf: no data directory".into());
        }
        Ok(())
    })?;
    let reachable = |w: &World| w.link_ok(n, src) && w.nodes[src].pg.proc == Proc::Running;
    if !sim.with(|w| reachable(w)) {
        // connect_timeout=5 when the host does not answer; refused at once when it does.
        let ms = sim.with(|w| if w.link_ok(n, src) { 10 } else { 5_000 });
        sleep(sim, ms).await;
        return Err("CHECKPOINT on the rewind source: could not connect".into());
    }
    let ms = sim.with(|w| w.rng.range(50, 500));
    sleep(sim, ms).await;
    sim.with(|w| {
        if !reachable(w) {
            return Err("CHECKPOINT on the rewind source: connection lost".to_string());
        }
        if w.nodes[src].pg.role == Role::Primary {
            w.append_wal(src, 120, None);
        }
        Ok(())
    })?;
    let ms = sim.with(|w| w.rng.range(300, 2_000));
    sleep(sim, ms).await;
    sim.with(|w| {
        if !reachable(w) {
            return Err(format!("pg_rewind: lost the connection to {}", me(w, src)));
        }
        if w.nodes[n].pg.alive() || w.nodes[n].pg.data.is_none() {
            return Err("pg_rewind: the target changed under it".into());
        }
        // The WAL of the target back to the last common checkpoint may have been recycled.
        if w.rng.chance(0.05) {
            return Err("pg_rewind: could not find previous WAL record".into());
        }
        let s = w.nodes[src].pg.data.clone().unwrap();
        let t = w.nodes[n].pg.data.as_mut().unwrap();
        if t.system_id != s.system_id {
            return Err("pg_rewind: source and target clusters are from different systems".into());
        }
        if t.is_prefix_of(&s) {
            w.trace(n, "pg_rewind: no rewind required".into());
            return Ok(());
        }
        if t.tl() == s.tl() {
            // pg_rewind compares the control files' timelines, not the WAL.
            w.trace(
                n,
                "pg_rewind: source and target cluster are on the same timeline; no rewind required"
                    .into(),
            );
            return Ok(());
        }
        t.wal = s.wal.clone();
        t.was_primary = false;
        t.clean_stop = false;
        w.stats.rewinds += 1;
        w.trace(
            n,
            format!("pg_rewind: rewound to {}'s timeline {}", me(w, src), s.tl()),
        );
        Ok(())
    })
}

/// PostgreSQL's WAL receiver: connect (retrying every
/// wal_retrieve_retry_interval), then stream until the connection breaks.
async fn walreceiver(sim: Rc<Sim>, n: usize, up: usize, epoch: u64) {
    let mut last_err = String::new();
    loop {
        let attempt = sim.with(|w| {
            let pg = &w.nodes[n].pg;
            if pg.epoch != epoch || pg.proc != Proc::Running || pg.conninfo != Some(up) {
                return None;
            }
            Some(w.repl_connect(n, up))
        });
        let conn = match attempt {
            None => return,
            Some(Err(e)) => {
                if e != last_err {
                    sim.with(|w| w.trace(n, format!("WAL receiver: {e}")));
                    last_err = e;
                }
                let ms = sim.with(|w| w.timing.wal_retry_ms);
                sleep(&sim, ms).await;
                continue;
            }
            Some(Ok(c)) => {
                last_err.clear();
                sim.with(|w| w.trace(n, format!("WAL receiver: streaming from {}", me(w, up))));
                c
            }
        };
        loop {
            let ms = sim.with(|w| w.rng.range(20, 150));
            sleep(&sim, ms).await;
            match sim.with(|w| w.repl_pump(n, up, conn, epoch)) {
                Pump::Continue => {}
                Pump::Broken => break,
                Pump::Gone => return,
            }
        }
        sleep(&sim, 100).await;
    }
}

/// What `GET /primary` on `n` is judged against: whether another node
/// holds the leader key on a live lease, and whether `n`'s PostgreSQL runs
/// as primary.
fn primary_facts(w: &World, n: usize) -> (bool, bool) {
    let me = &w.nodes[n].name;
    let other_holds = w
        .dcs
        .leader
        .as_ref()
        .is_some_and(|(k, l)| k != me && w.dcs.lease_alive(*l));
    (other_holds, w.nodes[n].pg.running_as(Role::Primary))
}

/// A router's health check of `n`'s `GET /primary`, answered by the
/// product's rule (`ha::answers_primary`) on evidence gathered as
/// `leader_check` gathers it: the local PostgreSQL, then a read of the
/// leader key, then (failsafe mode, no DCS answer) a failsafe round, all
/// within the check's budget as `n`'s own clock measures it. It runs inside
/// pgboxd (a frozen or paused pgboxd answers late, a dead one never); the
/// router drops an answer slower than its check timeout.
///
/// I6: a 200 is a violation when another node held the key on a live lease
/// both when the request was sent and when the answer came, or when `n`'s
/// PostgreSQL was not a running primary at either instant (a change while
/// the request was in flight is the answer's unavoidable age).
pub(super) async fn primary_check(sim: Rc<Sim>, n: usize, asked_at: u64) {
    if !sim.with(|w| w.net.ok(Endpoint::Client, Endpoint::Node(n))) {
        return;
    }
    let before = sim.with(|w| primary_facts(w, n));
    let (budget, began) = sim.with(|w| {
        let ttl = std::time::Duration::from_millis(w.settings.ttl_ms);
        let budget = crate::leader_check::LeaderCheck::budget_for(ttl).as_millis() as u64;
        (budget, w.local_now(n))
    });
    let left = |w: &World| budget.saturating_sub(w.local_now(n).saturating_sub(began));
    let l = sim.with(|w| w.rng.range(1, 4));
    sleep(&sim, l).await;
    let (pg_primary, my_lease, me) = sim.with(|w| {
        (
            w.nodes[n].pg.running_as(Role::Primary),
            w.nodes[n].pgboxd.as_ref().and_then(|d| d.lease_id),
            me(w, n),
        )
    });
    let ms = sim.with(|w| left(w));
    let key = timeout(&sim, ms, call(&sim, n, |w| Ok(w.dcs.leader.clone())))
        .await
        .and_then(|r| r.ok());
    let failsafe_mode = sim.with(|w| w.settings.failsafe_mode);
    let mut members_vouch = false;
    if key.is_none() && failsafe_mode && pg_primary {
        let ms = sim.with(|w| left(w));
        members_vouch = timeout(&sim, ms, failsafe_round(&sim, n))
            .await
            .unwrap_or(false);
    }
    let in_time = sim.with(|w| w.local_now(n).saturating_sub(began) <= budget);
    let proof = ha::LeaderProof {
        me,
        my_lease,
        pg_primary,
        leader_key: key,
        failsafe_mode,
        members_vouch,
    };
    let ok = in_time && ha::answers_primary(&proof);
    let l = sim.with(|w| w.rng.range(1, 4));
    sleep(&sim, l).await;
    sim.with(|w| w.primary_answered(n, asked_at, ok, before, primary_facts(w, n)));
}
