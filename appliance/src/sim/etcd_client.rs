//! The network between a simulated pgboxd and the simulated store, as
//! etcd-client and dcs/etcd.rs see it: each request goes to one endpoint
//! after another until one answers, an unreachable store costs the request
//! timeout, an answer lost on the way back leaves the operation applied.
//! The lease over it is pgboxd's own (dcs/lease.rs).

use std::rc::Rc;

use crate::dcs::lease::{self, LeaseApi, LeaseState};

use super::loop_io::{anyhow_of, SimClock};
use super::node::R;
use super::runtime::{sleep, Sim};
use super::world::World;

/// One DCS request to one endpoint: it reaches the store after a little
/// while and its answer comes back after a little more. An unreachable store
/// costs the request timeout; an answer lost on the way back leaves the
/// operation applied and the caller believing it failed.
pub(super) async fn attempt<T>(
    sim: &Rc<Sim>,
    n: usize,
    op: &mut impl FnMut(&mut World) -> R<T>,
) -> R<T> {
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
pub(super) async fn call<T>(
    sim: &Rc<Sim>,
    n: usize,
    mut op: impl FnMut(&mut World) -> R<T>,
) -> R<T> {
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
pub(super) async fn request<T>(
    sim: &Rc<Sim>,
    n: usize,
    mut op: impl FnMut(&mut World) -> R<T>,
) -> R<T> {
    attempt(sim, n, &mut op).await
}

pub(super) fn lease_id(sim: &Rc<Sim>, n: usize) -> Option<i64> {
    sim.with(|w| w.nodes[n].pgboxd.as_ref().and_then(|d| d.lease_id))
}

/// `Etcd::granting`, held across a grant; released however the holder
/// ends (a caller's timeout drops it mid-grant).
pub(super) struct GrantLock {
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

pub(super) async fn grant_lock(sim: &Rc<Sim>, n: usize) -> GrantLock {
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

/// The lease of dcs/lease.rs over the simulated store: its state is kept
/// in the node's `Pgboxd` (the checks read it), a grant goes through `call`
/// like any request, and each renewal is one request on the stream's
/// endpoint.
pub(super) struct SimLease {
    sim: Rc<Sim>,
    n: usize,
}

impl LeaseApi for SimLease {
    type GrantGuard<'a> = GrantLock;
    type Renewals = ();

    fn state(&self) -> LeaseState {
        self.sim.with(|w| {
            w.nodes[self.n]
                .pgboxd
                .as_ref()
                .map_or_else(LeaseState::default, |d| LeaseState {
                    id: d.lease_id,
                    renewed_at: d.renewed_at,
                })
        })
    }

    fn set_state(&self, state: LeaseState) {
        self.sim.with(|w| {
            if let Some(d) = w.nodes[self.n].pgboxd.as_mut() {
                d.lease_id = state.id;
                d.renewed_at = state.renewed_at;
            }
        })
    }

    async fn grant_lock(&self) -> GrantLock {
        grant_lock(&self.sim, self.n).await
    }

    async fn grant(&self, ttl_s: i64) -> anyhow::Result<i64> {
        let ttl_ms = ttl_s as u64 * 1000;
        call(&self.sim, self.n, move |w| {
            let now = w.clock.now;
            Ok(w.dcs.grant(now, ttl_ms))
        })
        .await
        .map_err(anyhow_of)
    }

    /// Opening the keep-alive stream is one round trip.
    async fn open_renewals(&self, _id: i64) -> anyhow::Result<()> {
        request(&self.sim, self.n, |_| Ok(()))
            .await
            .map_err(anyhow_of)
    }

    async fn renew(&self, _: &mut (), id: i64) -> anyhow::Result<bool> {
        request(&self.sim, self.n, move |w| {
            let now = w.clock.now;
            Ok(w.dcs.keep_alive(id, now))
        })
        .await
        .map_err(anyhow_of)
    }

    /// Each request picks its endpoint afresh (`call`).
    async fn session_failed(&self) {}

    fn proven(&self) {
        self.sim.with(|w| w.pet_watchdog(self.n));
    }
}

fn ttl_ms(sim: &Rc<Sim>) -> u64 {
    sim.with(|w| w.settings.ttl_ms)
}

/// `Etcd::ensure_lease`.
pub(super) async fn ensure_lease(sim: &Rc<Sim>, n: usize) -> anyhow::Result<i64> {
    let api = SimLease {
        sim: sim.clone(),
        n,
    };
    lease::ensure(&api, &SimClock::new(sim, n), ttl_ms(sim)).await
}

/// `Etcd::keep_alive_forever`: wakes the loop when the lease is gone
/// (`SimLease::proven` pets the watchdog).
pub(super) async fn keep_alive(sim: Rc<Sim>, n: usize) {
    let api = SimLease {
        sim: sim.clone(),
        n,
    };
    let every = sim.with(|w| lease::renew_every_ms(w.settings.loop_wait_ms, w.settings.ttl_ms));
    lease::keep_alive_forever(&api, &SimClock::new(&sim, n), ttl_ms(&sim), every, || {
        sim.with(|w| w.wake(n, 0))
    })
    .await
}
