//! Faults drawn from the seed, and how each one happens to the cluster.

use std::rc::Rc;

use crate::config::SyncMode;
use crate::dcs::model::FailoverKey;

use super::node::{kill_pgboxd, start_pgboxd};
use super::rng::Rng;
use super::runtime::{sleep, Owner, Sim};
use super::world::{Endpoint, World};
use super::SimConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Dcs,
    Peers,
    Client,
    All,
}

#[derive(Debug, Clone)]
pub(super) enum Fault {
    /// The box loses power: everything dies, connections vanish silently;
    /// it boots again after `ms`.
    PowerLoss {
        node: usize,
        ms: u64,
    },
    /// pgboxd crashes (its PostgreSQL dies with it); systemd restarts it.
    ProcessCrash {
        node: usize,
    },
    /// pgboxd hangs (its PostgreSQL keeps serving). While it leads, the
    /// hardware watchdog it armed resets the box if the hang outlasts it;
    /// systemd kills a pgboxd that hangs for WatchdogSec.
    Freeze {
        node: usize,
        ms: u64,
    },
    /// The whole VM is paused (QMP `stop`, then `cont`): pgboxd and
    /// PostgreSQL stand still, the network sees silence, and the guest's
    /// clocks and its (virtual) watchdog stop too, so the guest wakes
    /// believing no time has passed. The router marks it down meanwhile.
    VmPause {
        node: usize,
        ms: u64,
    },
    /// The postmaster dies; pgboxd lives.
    PostgresCrash {
        node: usize,
    },
    /// `systemctl stop pgboxd`, and a start again after `ms`.
    CleanStop {
        node: usize,
        ms: u64,
    },
    Partition {
        node: usize,
        side: Side,
        ms: u64,
    },
    /// etcd loses quorum.
    DcsOutage {
        ms: u64,
    },
    /// `POST /switchover`, as the API checks and writes it.
    Switchover {
        candidate: Option<usize>,
    },
    /// Maintenance mode (`pgboxctl pause`), then resume.
    Pause {
        ms: u64,
    },
    /// A slow link: the node's WAL stream stalls.
    ReplicationStall {
        node: usize,
        ms: u64,
    },
    /// `POST /restart`, `/reload` or `/reinitialize` on the node's API;
    /// its caller gives up (withdraws it) after `wait_ms`.
    Operation {
        node: usize,
        op: crate::ha::Operation,
        wait_ms: u64,
    },
}

impl Fault {
    /// How long after it starts the fault is over (the box back up).
    fn lasts(&self, timing_restart: u64) -> u64 {
        match self {
            Fault::PowerLoss { ms, .. } | Fault::CleanStop { ms, .. } => *ms,
            Fault::Freeze { ms, .. } | Fault::VmPause { ms, .. } => *ms,
            Fault::ProcessCrash { .. } => timing_restart,
            Fault::Partition { ms, .. }
            | Fault::DcsOutage { ms }
            | Fault::Pause { ms }
            | Fault::ReplicationStall { ms, .. } => *ms,
            Fault::PostgresCrash { .. } | Fault::Switchover { .. } | Fault::Operation { .. } => 0,
        }
    }
}

const MAX_BOOT_MS: u64 = 8_000;

/// The faults of one run, at their start times, and when the last heals.
pub(super) fn schedule(
    rng: &mut Rng,
    cfg: &SimConfig,
    restart_ms: u64,
) -> (Vec<(u64, Fault)>, u64) {
    let ttl = cfg.ttl_ms;
    let n = cfg.nodes;
    let mut out: Vec<(u64, Fault)> = Vec::new();
    let count = if cfg.faults == 0 {
        0
    } else {
        rng.range(1, cfg.faults as u64) as usize
    };
    for _ in 0..count {
        let at = cfg.warmup_ms + rng.below(cfg.fault_window_ms.max(1));
        let node = rng.index(n);
        let span = |rng: &mut Rng, lo: u64, hi: u64| rng.range(lo, hi);
        let draw = if cfg.only_hangs {
            25
        } else if cfg.ops_heavy && rng.chance(0.5) {
            97
        } else {
            rng.below(100)
        };
        let fault = match draw {
            0..=11 => Fault::PowerLoss {
                node,
                ms: span(rng, 1_000, 3 * ttl),
            },
            12..=19 => Fault::ProcessCrash { node },
            20..=31 if !cfg.hangs => Fault::ProcessCrash { node },
            20..=31 => {
                let ms = if rng.chance(0.5) {
                    span(rng, 200, ttl / 2)
                } else {
                    span(rng, ttl / 2, 2 * ttl)
                };
                Fault::Freeze { node, ms }
            }
            32..=39 => Fault::PostgresCrash { node },
            40..=47 => Fault::CleanStop {
                node,
                ms: span(rng, 500, 3 * ttl),
            },
            64..=69 => {
                let ms = if rng.chance(0.5) {
                    span(rng, 200, ttl)
                } else {
                    span(rng, ttl, 3 * ttl)
                };
                Fault::VmPause { node, ms }
            }
            48..=63 => {
                let side = match rng.below(4) {
                    0 => Side::Dcs,
                    1 => Side::Peers,
                    2 => Side::Client,
                    _ => Side::All,
                };
                Fault::Partition {
                    node,
                    side,
                    ms: span(rng, 1_000, 3 * ttl),
                }
            }
            70..=77 => Fault::DcsOutage {
                ms: span(rng, 1_000, 2 * ttl),
            },
            78..=87 => Fault::Switchover {
                candidate: if rng.chance(0.5) { None } else { Some(node) },
            },
            88..=93 => Fault::Pause {
                ms: span(rng, 1_000, 3 * ttl),
            },
            97..=99 => Fault::Operation {
                node,
                op: match rng.below(3) {
                    0 => crate::ha::Operation::Restart(crate::ha::RestartIf::default()),
                    1 => crate::ha::Operation::Reload,
                    _ => crate::ha::Operation::Reinitialize,
                },
                // The API's own bounds: 60 s for a restart, 30 s to begin
                // a reinitialize.
                wait_ms: span(rng, 5_000, 60_000),
            },
            _ => Fault::ReplicationStall {
                node,
                ms: span(rng, 1_000, 3 * ttl),
            },
        };
        // Faults come in bursts: a node that just came back is hit again
        // while it is still finding its feet (restart windows are short).
        // A switchover whose candidate is lost during the hand-over (frozen,
        // paused, powered off): the leader that stepped down must lead
        // again within a bound, never wait for it. Synchronous modes only
        // for now: in asynchronous mode a candidate paused in the middle of
        // its promotion can end on the same timeline number as the member
        // promoted after it, a fork that pg_rewind (comparing timeline
        // numbers) does not see (seed 1000240 with this fault on 2-async).
        let candidate_lost = matches!(fault, Fault::Switchover { .. })
            && cfg.synchronous_mode != SyncMode::Off
            && !cfg.only_hangs
            && rng.chance(0.5);
        let follow_up = if candidate_lost {
            let after = at + rng.range(0, 1_500);
            let hit = match rng.below(3) {
                0 => Fault::VmPause {
                    node,
                    ms: span(rng, ttl, 3 * ttl),
                },
                1 => Fault::PowerLoss {
                    node,
                    ms: span(rng, ttl, 3 * ttl),
                },
                _ if cfg.hangs => Fault::Freeze {
                    node,
                    ms: span(rng, ttl, 2 * ttl),
                },
                _ => Fault::PowerLoss {
                    node,
                    ms: span(rng, ttl, 3 * ttl),
                },
            };
            Some((after, hit))
        } else {
            None
        };
        let follow_up = follow_up.or_else(|| {
            (!cfg.only_hangs && rng.chance(0.25)).then(|| {
                let after = at + fault.lasts(restart_ms) + rng.range(0, 3_000);
                let again = match rng.below(3) {
                    0 => Fault::ProcessCrash { node },
                    1 => Fault::PostgresCrash { node },
                    _ => Fault::PowerLoss {
                        node,
                        ms: span(rng, 1_000, ttl),
                    },
                };
                (after, again)
            })
        });
        out.push((at, fault));
        out.extend(follow_up);
    }
    out.sort_by_key(|(at, _)| *at);
    let healed = out
        .iter()
        .map(|(at, f)| at + f.lasts(restart_ms))
        .max()
        .unwrap_or(cfg.warmup_ms)
        .max(cfg.warmup_ms);
    (out, healed)
}

fn side_endpoints(w: &World, node: usize, side: Side) -> Vec<Endpoint> {
    let peers = (0..w.nodes.len())
        .filter(|m| *m != node)
        .map(Endpoint::Node);
    match side {
        Side::Dcs => vec![Endpoint::Dcs],
        Side::Client => vec![Endpoint::Client],
        Side::Peers => peers.collect(),
        Side::All => peers.chain([Endpoint::Dcs, Endpoint::Client]).collect(),
    }
}

/// The hardware watchdog ran out: the box resets and boots again.
pub(super) fn watchdog_reset(sim: &Rc<Sim>, node: usize) {
    sim.with(|w| {
        // A freeze that ends at this very instant hung pgboxd for the whole
        // countdown: its loop had no chance to disarm or pet.
        let hung = w.nodes[node].frozen_until >= w.clock.now || w.nodes[node].pgboxd.is_none();
        let local = w.local_now(node);
        let renewed = w.nodes[node].pgboxd.as_ref().and_then(|d| d.renewed_at).map(|t| local.saturating_sub(t));
        w.trace(
            node,
            format!(
                "watchdog expired: the box resets (pgboxd {}, lease last renewed {renewed:?} ms ago)",
                if hung { "hung or gone" } else { "running" }
            ),
        );
        w.stats.watchdog_resets += 1;
        w.stats.watchdog_resets_unhung += (!hung) as u32;
    });
    sim.with(|w| w.nodes[node].power_off += 1);
    power_off(sim, node);
    let s = sim.clone();
    sim.spawn(Owner::World, async move {
        let boot = s.with(|w| w.rng.range(3_000, MAX_BOOT_MS));
        sleep(&s, boot).await;
        s.with(|w| w.nodes[node].power_off -= 1);
        reconcile(&s, node);
    });
}

fn power_off(sim: &Rc<Sim>, node: usize) {
    kill_pgboxd(sim, node, "power lost");
    sim.with(|w| {
        w.nodes[node].vm_paused_until = 0;
        w.nodes[node].host_up = false;
        w.nodes[node].watchdog = None;
        w.trace(node, "host down".into());
    });
}

/// Bring the node to the state its faults allow: the box powered unless a
/// fault holds it off, pgboxd running unless a person stopped it.
pub(super) fn reconcile(sim: &Rc<Sim>, node: usize) {
    let start = sim.with(|w| {
        let n = &mut w.nodes[node];
        if n.power_off == 0 && !n.host_up {
            n.host_up = true;
            w.trace(node, "host up".into());
        }
        let n = &w.nodes[node];
        n.host_up && n.stopped == 0 && n.pgboxd.is_none()
    });
    if start {
        start_pgboxd(sim, node);
    }
}

/// systemd's Restart=on-failure after RestartSec.
fn restart_later(sim: &Rc<Sim>, node: usize, ms: u64) {
    let s = sim.clone();
    sim.spawn(Owner::World, async move {
        sleep(&s, ms).await;
        reconcile(&s, node);
    });
}

pub(super) async fn run_fault(sim: Rc<Sim>, at: u64, fault: Fault) {
    let now = sim.now();
    sleep(&sim, at.saturating_sub(now)).await;
    let label = format!("{fault:?}");
    sim.with(|w| {
        w.trace_as("FAULT", label.clone());
        let t = w.clock.now;
        w.stats
            .faults
            .push(format!("{}.{:03}s {label}", t / 1000, t % 1000));
    });
    match fault {
        Fault::PowerLoss { node, ms } => {
            sim.with(|w| w.nodes[node].power_off += 1);
            power_off(&sim, node);
            sleep(&sim, ms).await;
            sim.with(|w| w.nodes[node].power_off -= 1);
            reconcile(&sim, node);
        }
        Fault::ProcessCrash { node } => {
            if sim.with(|w| w.pgboxd_alive(node)) {
                kill_pgboxd(&sim, node, "crashed");
                let ms = sim.with(|w| w.timing.restart_ms);
                restart_later(&sim, node, ms);
            }
        }
        Fault::Freeze { node, ms } => {
            let until = sim.with(|w| {
                if !w.pgboxd_alive(node) {
                    return None;
                }
                let until = w.nodes[node].frozen_until.max(w.clock.now + ms);
                w.nodes[node].frozen_until = until;
                w.trace(node, format!("pgboxd frozen for {ms} ms"));
                Some(until)
            });
            let Some(until) = until else { return };
            if sim.with(|w| w.cfg.hung_cut_off) {
                // Hung and cut off from the other members (not from the
                // client): no candidate can reach it to fence it.
                let s = sim.clone();
                sim.spawn(Owner::World, async move {
                    let ends = s.with(|w| side_endpoints(w, node, Side::Peers));
                    s.with(|w| {
                        ends.iter()
                            .for_each(|e| w.net.cut(Endpoint::Node(node), *e))
                    });
                    sleep(&s, ms).await;
                    s.with(|w| {
                        ends.iter()
                            .for_each(|e| w.net.heal(Endpoint::Node(node), *e))
                    });
                });
            }
            let limit = sim.with(|w| w.timing.systemd_watchdog_ms);
            if ms > limit {
                sleep(&sim, limit).await;
                if sim.with(|w| w.pgboxd_alive(node) && w.nodes[node].frozen_until == until) {
                    kill_pgboxd(&sim, node, "systemd: watchdog timeout");
                    let ms = sim.with(|w| w.timing.restart_ms);
                    restart_later(&sim, node, ms);
                }
            }
        }
        Fault::PostgresCrash { node } => {
            sim.with(|w| w.pg_crash(node, "crashed"));
        }
        Fault::VmPause { node, ms } => {
            let paused = sim.with(|w| {
                if !w.nodes[node].host_up || w.nodes[node].vm_paused_until > w.clock.now {
                    return None;
                }
                let until = w.clock.now + ms;
                let n = &mut w.nodes[node];
                n.vm_paused_until = until;
                n.vm_pauses += 1;
                n.router_down = true;
                // The virtual watchdog counts guest time only.
                n.watchdog = n.watchdog.map(|t| t + ms);
                let ends = side_endpoints(w, node, Side::All);
                for e in &ends {
                    w.net.cut(Endpoint::Node(node), *e);
                }
                w.trace(node, format!("VM paused for {ms} ms (its clocks stop too)"));
                Some((until, ends))
            });
            let Some((until, ends)) = paused else { return };
            sleep(&sim, ms).await;
            sim.with(|w| {
                for e in &ends {
                    w.net.heal(Endpoint::Node(node), *e);
                }
                // A box that lost power meanwhile booted with a new clock.
                if w.nodes[node].vm_paused_until == until {
                    w.nodes[node].clock_lag += ms;
                    w.trace(node, "VM resumed; it believes no time has passed".into());
                }
            });
        }
        Fault::CleanStop { node, ms } => {
            sim.with(|w| {
                w.nodes[node].stopped += 1;
                if let Some(d) = w.nodes[node].pgboxd.as_mut() {
                    d.sigterm = true;
                    let task = d.loop_task;
                    w.clock.wake_at(w.clock.now, task);
                }
            });
            sleep(&sim, ms).await;
            sim.with(|w| w.nodes[node].stopped -= 1);
            reconcile(&sim, node);
        }
        Fault::Partition { node, side, ms } => {
            let ends = sim.with(|w| {
                let ends = side_endpoints(w, node, side);
                for e in &ends {
                    w.net.cut(Endpoint::Node(node), *e);
                }
                ends
            });
            sleep(&sim, ms).await;
            sim.with(|w| {
                for e in &ends {
                    w.net.heal(Endpoint::Node(node), *e);
                }
                w.trace(node, format!("partition from {side:?} healed"));
            });
        }
        Fault::DcsOutage { ms } => {
            sim.with(|w| {
                w.dcs_outages += 1;
                w.dcs.lose_quorum();
            });
            sleep(&sim, ms).await;
            sim.with(|w| {
                w.dcs_outages -= 1;
                if w.dcs_outages == 0 {
                    let now = w.clock.now;
                    w.dcs.regain_quorum(now);
                    w.trace_as("DCS", "quorum regained; every lease renewed in full".into());
                }
            });
        }
        Fault::Switchover { candidate } => sim.with(|w| request_switchover(w, candidate)),
        Fault::Pause { ms } => {
            sim.with(|w| {
                w.pauses += 1;
                w.dcs.config = w.dcs.config.with_pause(true);
            });
            sleep(&sim, ms).await;
            sim.with(|w| {
                w.pauses -= 1;
                if w.pauses == 0 {
                    w.dcs.config = w.dcs.config.with_pause(false);
                    w.trace_as("FAULT", "resumed from maintenance mode".into());
                }
            });
        }
        Fault::ReplicationStall { node, ms } => {
            sim.with(|w| w.nodes[node].stalled += 1);
            sleep(&sim, ms).await;
            sim.with(|w| w.nodes[node].stalled -= 1);
        }
        Fault::Operation { node, op, wait_ms } => {
            let asked = sim.with(|w| {
                let ops = w.nodes[node].pgboxd.as_ref()?.ops.clone();
                let ticket = ops.submit(op.clone(), None, None).ok()?.0;
                w.stats.operations_asked += 1;
                w.trace_as(
                    "API",
                    format!(
                        "{} asked of {} (ticket {ticket})",
                        op.word(),
                        w.nodes[node].name
                    ),
                );
                Some((ops, ticket))
            });
            if let Some((ops, ticket)) = asked {
                sleep(&sim, wait_ms).await;
                if ops.withdraw(ticket) {
                    sim.with(|w| w.trace_as("API", format!("ticket {ticket} withdrawn or done")));
                }
            }
        }
    }
}

/// `POST /switchover` (api/routes/operations.rs): the same checks against
/// the cluster as the DCS shows it, then a create-only write.
fn request_switchover(w: &mut World, candidate: Option<usize>) {
    let refuse =
        |w: &mut World, why: String| w.trace_as("API", format!("switchover refused: {why}"));
    if !w.dcs.up {
        return refuse(w, "the DCS is unavailable".into());
    }
    let Some(leader) = w.dcs.leader.as_ref().map(|(n, _)| n.clone()) else {
        return refuse(w, "no leader: a switchover needs one".into());
    };
    let c = candidate.map(|c| w.nodes[c].name.clone());
    if let Some(c) = &c {
        let view = w.dcs.read_view().0;
        let (mode, max_lag) = (
            w.settings.synchronous_mode,
            w.settings.maximum_lag_on_failover,
        );
        if let Some(why) = crate::ha::candidate_refusal(&view, mode, max_lag, c, true) {
            return refuse(w, why);
        }
    }
    let req = FailoverKey {
        leader: Some(leader.clone()),
        member: c.clone(),
        scheduled_at: None,
    };
    // The same rule as the API's: refused now, never recorded for later.
    if let Some(refusal) = crate::ha::request_refusal(&w.dcs.config, &req) {
        return refuse(w, refusal.message().to_string());
    }
    if w.dcs.request_failover(req) {
        w.stats.switchovers_requested += 1;
        w.trace_as(
            "API",
            format!(
                "switchover requested: {leader} -> {}",
                c.as_deref().unwrap_or("any")
            ),
        );
    } else {
        refuse(w, "a switchover or failover is already pending".into());
    }
}
