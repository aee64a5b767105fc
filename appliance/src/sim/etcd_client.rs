//! The etcd client as pgboxd uses it (dcs/etcd.rs), against the simulated
//! store: each request goes to one endpoint after another until one
//! answers, an unreachable store costs the request timeout, an answer lost
//! on the way back leaves the operation applied; one lease grant at a time,
//! a lease not renewed for a whole TTL replaced, and the keep-alive stream
//! that renews it (and pets the watchdog) after each answer.

use std::rc::Rc;

use crate::dcs::model::HistoryEntry;

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

/// `Etcd::ensure_lease`: one grant at a time; a lease not renewed for a
/// whole TTL is replaced.
pub(super) async fn ensure_lease(sim: &Rc<Sim>, n: usize) -> R<i64> {
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
pub(super) async fn keep_alive(sim: Rc<Sim>, n: usize) {
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

pub(super) async fn keep_alive_session(sim: &Rc<Sim>, n: usize, every: u64) -> R<()> {
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

/// `Etcd::append_history`: read, then compare-and-set on the revision.
pub(super) async fn append_history(sim: &Rc<Sim>, n: usize, entry: HistoryEntry) -> R<()> {
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
