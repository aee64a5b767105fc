//! pgboxd as a process on a simulated node: it starts (boot, systemd, a
//! person), dies (a crash, a power loss: its PostgreSQL dies with it) or
//! exits after a clean shutdown; while it runs, its main task is the HA
//! loop pgboxd ships (ha_loop.rs) over the simulated I/O of loop_io.rs.

use std::rc::Rc;

use crate::ha_loop::{HaLoop, Identity};
use crate::status::PgStatus;

use super::etcd_client::keep_alive;
use super::loop_io::SimIo;
use super::runtime::{Owner, Sim, WaitWake};
use super::world::{ApiSnapshot, Pgboxd, World};

pub(super) type R<T> = Result<T, String>;

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
            pauses_at_decision: w.nodes[n].vm_pauses,
            ops: crate::ops_mailbox::Mailbox::new(),
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
pub(super) fn pgboxd_exited(sim: &Rc<Sim>, n: usize) {
    sim.with(|w| {
        w.nodes[n].pgboxd = None;
        w.nodes[n].api = None;
        w.trace(n, "pgboxd exited".into());
    });
    let s = sim.clone();
    sim.spawn(Owner::World, async move { super::faults::reconcile(&s, n) });
    sim.kill(Owner::Pgboxd(n));
}

pub(super) fn me(w: &World, n: usize) -> String {
    w.nodes[n].name.clone()
}

/// `Daemon::run`'s driver: the shared loop, a wait for loop_wait or a
/// wake-up, and on SIGTERM (seen only between two loops) a clean shutdown.
pub(super) async fn daemon(sim: Rc<Sim>, n: usize) {
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

pub(super) fn identity(w: &World, n: usize) -> Identity {
    let node = &w.nodes[n];
    Identity {
        name: node.name.clone(),
        tags: node.tags.clone(),
        conn_url: format!("postgres://{}:5432/postgres", node.name),
        api_url: format!("http://{}:8008/patroni", node.name),
    }
}

pub(super) fn member_name(sim: &Rc<Sim>, n: usize) -> String {
    sim.with(|w| me(w, n))
}
