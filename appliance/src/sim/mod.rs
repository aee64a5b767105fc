//! A deterministic simulator for the HA protocol.
//!
//! Several simulated nodes run the real `ha::decide` inside a model of
//! pgboxd (the loop of daemon.rs, the actions of executor.rs, the lease
//! keep-alive and the DCS timeouts of dcs/etcd.rs), against a simulated
//! etcd with lease semantics and simulated PostgreSQL servers with WAL
//! histories, timelines and synchronous replication. A schedule of faults
//! drawn from the seed (power loss, crashes, hangs, partitions, quorum
//! loss, switchovers, maintenance mode, slow replication) hits the cluster,
//! and the invariants are checked after every event:
//!
//! - I1 split brain: at no instant do two nodes accept writes, i.e. run as
//!   primary with nothing that would hold a commit back for good (no
//!   synchronous standby asked for, or the one asked for connected); and
//!   the client never gets an acknowledgement from a writer after another
//!   writer's acknowledgements began. A paused VM accepts nothing, and
//!   after the pause only once its router has it back (I6).
//! - I2 no acknowledged write lost (synchronous mode on/strict): every
//!   write the client saw acknowledged is in the final primary's WAL.
//! - I3 convergence: once every fault has healed, within a bound, one node
//!   runs as primary holding the leader key and every other node is a
//!   replica streaming from it on its timeline.
//! - I4 a node tagged nofailover never takes the leader key over from
//!   another member (it may bootstrap the cluster, and resume its own lead).
//! - I5 a node never becomes writable without holding the leader key (named
//!   in it, bound to its current lease).
//! - I6 `GET /primary`, as a router's health check sees it (answered by the
//!   product's rule, `ha::answers_primary`), never says 200 while another
//!   node holds the leader key on a live lease or while the node's
//!   PostgreSQL does not run as primary (allowing a change while the request
//!   was in flight). The client writes to a node its router marked down (a
//!   VM pause) only once that node answers 200 again.
//!
//! Nothing here reads a clock, does I/O or starts a thread: a seed is a
//! run, and `PGBOX_SIM_SEED=<seed>` replays it with its full trace.

mod dcs;
mod etcd_client;
mod faults;
mod loop_io;
mod node;
mod pg;
mod postgres;
mod rng;
mod runtime;
mod world;

#[cfg(test)]
mod tests;

use std::fmt;
use std::rc::Rc;

pub use dcs::SimDcs;
pub use rng::Rng;

use crate::config::SyncMode;

use runtime::{sleep, Owner, Sim};
use world::World;

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How failure reports name this configuration (`PGBOX_SIM_CONFIG`).
    pub name: String,
    /// PostgreSQL nodes (2 or 3).
    pub nodes: usize,
    pub synchronous_mode: SyncMode,
    pub ttl_ms: u64,
    pub loop_wait_ms: u64,
    /// At most this many faults per run (each run draws 1..=faults), some
    /// with a second fault close behind.
    pub faults: usize,
    /// Faults start after the cluster had this long to form.
    pub warmup_ms: u64,
    /// Faults start within this window after the warm-up.
    pub fault_window_ms: u64,
    /// I3's bound: the cluster must have converged this long after the last
    /// fault healed.
    pub converge_within_ms: u64,
    /// etcd endpoints pgboxd knows; a failing DCS call tries each once.
    pub dcs_endpoints: u64,
    /// The box has a watchdog device (pgboxd arms it while primary).
    pub watchdog: bool,
    /// Faults may hang pgboxd (without a watchdog device, a hang of the
    /// primary's pgboxd is a split brain the design accepts and warns of).
    pub hangs: bool,
    /// The control file tells a primary's clean stop from a crash, so an
    /// old primary may rejoin without pg_rewind (on by default; a
    /// `-crashstops` sweep turns it off).
    pub clean_stops: bool,
    /// Every fault hangs pgboxd, none follows up: how a hung primary is
    /// fenced, with nothing else going on.
    pub only_hangs: bool,
    /// Half the faults are operations asked through the API (restart,
    /// reload, reinitialize): `-ops`.
    pub ops_heavy: bool,
    /// A hung pgboxd's box is also cut off from the other members for as
    /// long (its PostgreSQL out of every candidate's reach).
    pub hung_cut_off: bool,
    /// Chance that the last node of a three-node cluster is tagged nofailover.
    pub nofailover_chance: f64,
    /// `ha.failsafe_mode`.
    pub failsafe: bool,
    /// Trace lines kept for a failure report.
    pub trace_tail: usize,
}

impl SimConfig {
    /// The product's defaults (ttl 10 s, loop_wait 1 s, three etcd endpoints).
    pub fn new(nodes: usize, synchronous_mode: SyncMode) -> Self {
        let mode = match synchronous_mode {
            SyncMode::Off => "async",
            SyncMode::On => "on",
            SyncMode::Strict => "strict",
        };
        SimConfig {
            name: format!("{nodes}-{mode}"),
            nodes,
            synchronous_mode,
            ttl_ms: 10_000,
            loop_wait_ms: 1_000,
            faults: 4,
            warmup_ms: 15_000,
            fault_window_ms: 40_000,
            converge_within_ms: 120_000,
            dcs_endpoints: 3,
            watchdog: true,
            hangs: true,
            clean_stops: true,
            only_hangs: false,
            ops_heavy: false,
            hung_cut_off: false,
            nofailover_chance: 0.3,
            failsafe: false,
            trace_tail: 400,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invariant {
    /// I1
    SplitBrain,
    /// I2
    LostWrite,
    /// I3
    NoConvergence,
    /// I4
    NofailoverPromoted,
    /// I5
    WritableWithoutKey,
    /// I6
    StalePrimaryAnswer,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub seed: u64,
    /// Simulated time the run took.
    pub sim_ms: u64,
    /// From the last fault healing to convergence.
    pub converged_after_ms: u64,
    pub acknowledged: usize,
    /// Acknowledged writes missing from the final primary (asynchronous
    /// mode allows these).
    pub lost: usize,
    pub promotions: u32,
    pub switchovers_requested: u32,
    pub rewinds: u32,
    /// Old primaries that rejoined without pg_rewind (a clean stop the new
    /// leader had all of).
    pub clean_rejoins: u32,
    /// Restarts, reloads, reinitializes asked through the API, and done.
    pub operations: (u32, u32),
    pub base_backups: u32,
    pub watchdog_resets: u32,
    /// Resets of a box whose pgboxd was running (not hung) at the time.
    pub watchdog_resets_unhung: u32,
    pub faults: Vec<String>,
    pub trace_lines: u64,
    /// A hash of the whole trace: equal runs have equal hashes.
    pub trace_hash: u64,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub config: String,
    pub invariant: Invariant,
    pub detail: String,
    pub at_ms: u64,
    pub faults: Vec<String>,
    /// The last trace lines before the violation.
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} violates {:?} at {} ms: {}",
            self.seed, self.invariant, self.at_ms, self.detail
        )?;
        writeln!(f, "faults:")?;
        for x in &self.faults {
            writeln!(f, "  {x}")?;
        }
        writeln!(f, "last {} trace lines:", self.trace.len())?;
        for l in &self.trace {
            writeln!(f, "  {l}")?;
        }
        write!(f, "replay: PGBOX_SIM_SEED={} PGBOX_SIM_CONFIG={} cargo test -p pgbox --lib sim::tests::replay_one_seed -- --nocapture", self.seed, self.config)
    }
}

/// Run one seed to its end: a violation, or convergence after every fault
/// healed (and the final check of acknowledged writes).
pub fn run_seed(seed: u64, cfg: &SimConfig) -> Result<Summary, Failure> {
    run(seed, cfg, false).0
}

/// As `run_seed`, with every trace line of the run.
pub fn replay(seed: u64, cfg: &SimConfig) -> (Result<Summary, Failure>, Vec<String>) {
    run(seed, cfg, true)
}

fn run(seed: u64, cfg: &SimConfig, full_trace: bool) -> (Result<Summary, Failure>, Vec<String>) {
    let mut world = World::new(seed, cfg, full_trace);
    let (schedule, healed_at) = faults::schedule(&mut world.rng, cfg, world.timing.restart_ms);
    world.healed_at = healed_at;
    let boots: Vec<u64> = (0..cfg.nodes).map(|_| world.rng.range(0, 500)).collect();
    let sim = Sim::new(world);

    for (n, at) in boots.into_iter().enumerate() {
        let s = sim.clone();
        sim.spawn(Owner::World, async move {
            sleep(&s, at).await;
            node::start_pgboxd(&s, n);
        });
    }
    let s = sim.clone();
    sim.spawn(Owner::World, async move {
        loop {
            let ms = s.with(|w| w.rng.range(50, 150));
            sleep(&s, ms).await;
            s.with(|w| w.client_tick());
        }
    });
    // Each node's router checks its /primary, as HAProxy does every second.
    for n in 0..cfg.nodes {
        let s = sim.clone();
        sim.spawn(Owner::World, async move {
            loop {
                let ms = s.with(|w| w.rng.range(300, 1_000));
                sleep(&s, ms).await;
                let (alive, now) =
                    s.with(|w| (w.pgboxd_alive(n) && w.nodes[n].host_up, w.clock.now));
                if alive {
                    s.spawn(Owner::Pgboxd(n), postgres::primary_check(s.clone(), n, now));
                }
            }
        });
    }
    for (at, f) in schedule {
        sim.spawn(Owner::World, faults::run_fault(sim.clone(), at, f));
    }

    let deadline = healed_at + cfg.converge_within_ms;
    let settle = (2 * cfg.loop_wait_ms).max(3_000);
    let mut converged_since: Option<u64> = None;
    let outcome = loop {
        // Lease expiries and watchdog resets happen at their instant, between
        // the timers of the tasks.
        let (next, expiry, watchdog) =
            sim.with(|w| (w.clock.next_time(), w.dcs.next_expiry(), w.next_watchdog()));
        let due = |t: u64| next.is_none_or(|n| t <= n);
        match (expiry, watchdog) {
            (Some(e), _) if due(e) && watchdog.is_none_or(|(wt, _)| e <= wt) => sim.with(|w| {
                w.clock.now = w.clock.now.max(e);
                w.expire_leases();
            }),
            (_, Some((wt, node))) if due(wt) => {
                sim.with(|w| w.clock.now = w.clock.now.max(wt));
                faults::watchdog_reset(&sim, node);
            }
            _ => {
                if next.is_none() {
                    break Err((Invariant::NoConvergence, "nothing left to run".to_string()));
                }
                sim.step();
            }
        }
        if let Some(v) = sim.with(|w| {
            w.check_split_brain();
            w.violation.clone()
        }) {
            break Err(v);
        }
        let now = sim.now();
        if now < healed_at {
            continue;
        }
        match sim.with(|w| w.converged()) {
            Ok(leader) => {
                let since = *converged_since.get_or_insert(now);
                if now - since >= settle {
                    break Ok((leader, since));
                }
            }
            Err(why) => {
                converged_since = None;
                if now > deadline {
                    let state = sim.with(|w| {
                        (0..cfg.nodes)
                            .map(|n| w.describe(n))
                            .collect::<Vec<_>>()
                            .join("; ")
                    });
                    break Err((
                        Invariant::NoConvergence,
                        format!(
                            "{} s after the last fault healed: {why}. Nodes: {state}",
                            cfg.converge_within_ms / 1000
                        ),
                    ));
                }
            }
        }
    };

    let result = sim.with(|w| match outcome {
        Ok((leader, since)) => {
            let missing = w.missing_acked(leader);
            if w.settings.synchronous_mode != SyncMode::Off && !missing.is_empty() {
                let shown: Vec<String> = missing
                    .iter()
                    .take(10)
                    .map(|a| {
                        format!(
                            "w{} (acknowledged by {} on timeline {} at {} ms, LSN {})",
                            a.id,
                            w.nodes[a.node].name,
                            a.tl,
                            a.at,
                            crate::dcs::model::format_lsn(a.lsn)
                        )
                    })
                    .collect();
                let detail = format!(
                    "{} of {} acknowledged writes are not in the final primary {}'s history: {}",
                    missing.len(),
                    w.acks.len(),
                    w.nodes[leader].name,
                    shown.join(", ")
                );
                w.violate(Invariant::LostWrite, detail.clone());
                return Err(failure(w, seed, Invariant::LostWrite, detail));
            }
            Ok(Summary {
                seed,
                sim_ms: w.clock.now,
                converged_after_ms: since.saturating_sub(w.healed_at),
                acknowledged: w.acks.len(),
                lost: missing.len(),
                promotions: w.stats.promotions,
                switchovers_requested: w.stats.switchovers_requested,
                rewinds: w.stats.rewinds,
                clean_rejoins: w.stats.clean_rejoins,
                operations: (w.stats.operations_asked, w.stats.operations_done),
                base_backups: w.stats.base_backups,
                watchdog_resets: w.stats.watchdog_resets,
                watchdog_resets_unhung: w.stats.watchdog_resets_unhung,
                faults: w.stats.faults.clone(),
                trace_lines: w.trace.lines,
                trace_hash: w.trace.hash,
            })
        }
        Err((inv, detail)) => {
            w.violate(inv, detail.clone());
            Err(failure(w, seed, inv, detail))
        }
    });
    let full = sim.with(|w| w.trace.full.take().unwrap_or_default());
    teardown(&sim);
    (result, full)
}

fn failure(w: &World, seed: u64, invariant: Invariant, detail: String) -> Failure {
    Failure {
        seed,
        config: w.cfg.name.clone(),
        invariant,
        detail,
        at_ms: w.clock.now,
        faults: w.stats.faults.clone(),
        trace: w.trace.tail(),
    }
}

/// Tasks hold the simulation alive (each holds an `Rc<Sim>`): drop them so
/// that a run leaves nothing behind.
fn teardown(sim: &Rc<Sim>) {
    sim.kill(Owner::World);
    for n in 0..sim.with(|w| w.nodes.len()) {
        sim.kill(Owner::Pgboxd(n));
        sim.kill(Owner::Postgres(n));
        sim.kill(Owner::WalReceiver(n));
    }
}
