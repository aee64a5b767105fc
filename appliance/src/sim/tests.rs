//! Many seeds per configuration; a failing seed prints its trace and the
//! command that replays it.
//!
//! `cargo test -p pgbox --lib sim` runs the sweeps (2 nodes asynchronous,
//! 2 nodes synchronous, 3 nodes synchronous, 3 nodes strict, and failsafe
//! mode with 2 nodes synchronous and 3 nodes strict, and hung primaries
//! without a watchdog). `PGBOX_SIM_SEEDS=N` runs N seeds per
//! configuration (default 1,250: 10,000 per run). Each sweep starts at a
//! fresh seed of its configuration's range, drawn per run and printed, so
//! every run explores new schedules; `PGBOX_SIM_FIRST_SEED=S` runs a
//! printed range again, `PGBOX_SIM_FIXED=1` the start of every range.
//! `PGBOX_SIM_VERBOSE=1` lists every failing seed with the
//! last decision of each node. `PGBOX_SIM_SEED=S` with the
//! `replay_one_seed` test runs one seed and prints every trace line (the
//! seed's range names its configuration; `PGBOX_SIM_CONFIG=3-strict`
//! overrides). `PGBOX_SIM_CONFIGS=2-on-nowatchdog,...` sweeps any
//! configurations.

use std::time::Instant;

use super::*;

const DEFAULT_SEEDS: u64 = 1250;

/// The configurations, by the name `PGBOX_SIM_CONFIG` takes (with
/// `-nowatchdog` appended: boxes without a watchdog device; `-failsafe`:
/// `ha.failsafe_mode` on, seeds from the upper half of the range; `-nohangs`: no
/// fault hangs pgboxd), and the first
/// seed of each one's sweep: two configurations never share a seed, so a
/// seed number names one run.
const CONFIGS: [(&str, usize, SyncMode, u64); 6] = [
    ("2-async", 2, SyncMode::Off, 1_000_000),
    ("2-on", 2, SyncMode::On, 2_000_000),
    ("2-strict", 2, SyncMode::Strict, 3_000_000),
    ("3-async", 3, SyncMode::Off, 4_000_000),
    ("3-on", 3, SyncMode::On, 5_000_000),
    ("3-strict", 3, SyncMode::Strict, 6_000_000),
];

fn config(name: &str) -> SimConfig {
    if let Some(base) = name.strip_suffix("-failsafe") {
        let mut cfg = config(base);
        cfg.failsafe = true;
        cfg.name = name.to_string();
        return cfg;
    }
    if let Some(base) = name.strip_suffix("-ops") {
        let mut cfg = config(base);
        cfg.ops_heavy = true;
        cfg.name = name.to_string();
        return cfg;
    }
    if let Some(base) = name.strip_suffix("-crashstops") {
        let mut cfg = config(base);
        cfg.clean_stops = false;
        cfg.name = name.to_string();
        return cfg;
    }
    if let Some(base) = name.strip_suffix("-nohangs") {
        let mut cfg = config(base);
        cfg.hangs = false;
        cfg.name = name.to_string();
        return cfg;
    }
    if let Some(base) = name.strip_suffix("-hangsonly") {
        let mut cfg = config(base);
        cfg.only_hangs = true;
        cfg.name = name.to_string();
        return cfg;
    }
    if let Some(base) = name.strip_suffix("-nowatchdog") {
        let mut cfg = config(base);
        cfg.watchdog = false;
        cfg.name = name.to_string();
        return cfg;
    }
    let Some((_, nodes, mode, _)) = CONFIGS.iter().find(|c| c.0 == name) else {
        let names: Vec<&str> = CONFIGS.iter().map(|c| c.0).collect();
        panic!(
            "unknown PGBOX_SIM_CONFIG {name:?}: one of {}, with -nowatchdog, -nohangs, -hangsonly, -crashstops, -ops and/or -failsafe appended",
            names.join(", ")
        );
    };
    SimConfig::new(*nodes, *mode)
}

/// A `-failsafe` sweep takes the upper half of its base's seed range.
const FAILSAFE_SEED_OFFSET: u64 = 500_000;

/// Where in its half range a sweep of `count` seeds starts this run: drawn
/// afresh by each process (std's randomly keyed hasher), so that no two
/// runs prove the same schedules.
fn fresh_offset(count: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let draw = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    draw % FAILSAFE_SEED_OFFSET.saturating_sub(count).max(1)
}

fn first_seed(name: &str) -> u64 {
    if let Some(base) = name.strip_suffix("-failsafe") {
        return first_seed(base) + FAILSAFE_SEED_OFFSET;
    }
    CONFIGS
        .iter()
        .find(|c| c.0 == name)
        .map_or(7_000_000, |c| c.3)
}

/// The configuration whose sweep a seed belongs to.
fn config_of_seed(seed: u64) -> Option<String> {
    let c = CONFIGS
        .iter()
        .find(|c| (c.3..c.3 + 1_000_000).contains(&seed))?;
    Some(if seed >= c.3 + FAILSAFE_SEED_OFFSET {
        format!("{}-failsafe", c.0)
    } else {
        c.0.to_string()
    })
}

fn seeds() -> u64 {
    std::env::var("PGBOX_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEEDS)
}

/// Runs the sweep; the acknowledged writes lost over all its seeds.
fn sweep(name: &str) -> usize {
    let cfg = config(name);
    let count = seeds();
    let start = std::env::var("PGBOX_SIM_FIRST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            // Fresh seeds by default: every run proves schedules no run
            // proved before (a failure prints the command that replays it).
            // PGBOX_SIM_FIXED=1 keeps to the start of each range.
            let fixed = std::env::var_os("PGBOX_SIM_FIXED").is_some();
            first_seed(name) + if fixed { 0 } else { fresh_offset(count) }
        });
    eprintln!(
        "sim {name}: seeds {start}..{} (PGBOX_SIM_CONFIG={name} PGBOX_SIM_FIRST_SEED={start} runs them again)",
        start + count
    );
    let began = Instant::now();
    let mut failures: Vec<Failure> = Vec::new();
    let (mut acked, mut lost, mut lossy, mut promotions, mut sim_ms, mut worst_converge) =
        (0usize, 0usize, 0u64, 0u32, 0u64, 0u64);
    let (mut rewinds, mut clean_rejoins) = (0u32, 0u32);
    let (mut ops_asked, mut ops_done) = (0u32, 0u32);
    let (mut resets, mut resets_unhung, mut unhung_seeds) = (0u32, 0u32, Vec::new());
    for seed in start..start + count {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_seed(seed, &cfg)));
        let Ok(outcome) = run else {
            panic!(
                "seed {seed} of {name} panicked (message above); replay: PGBOX_SIM_SEED={seed} \
                 PGBOX_SIM_CONFIG={name} cargo nextest run -p pgbox --lib sim::tests::replay_one_seed --no-capture"
            );
        };
        match outcome {
            Ok(s) => {
                acked += s.acknowledged;
                lost += s.lost;
                lossy += (s.lost > 0) as u64;
                promotions += s.promotions;
                rewinds += s.rewinds;
                clean_rejoins += s.clean_rejoins;
                ops_asked += s.operations.0;
                ops_done += s.operations.1;
                sim_ms += s.sim_ms;
                worst_converge = worst_converge.max(s.converged_after_ms);
                resets += s.watchdog_resets;
                resets_unhung += s.watchdog_resets_unhung;
                if s.watchdog_resets_unhung > 0 && unhung_seeds.len() < 5 {
                    unhung_seeds.push(seed);
                }
            }
            Err(f) => failures.push(f),
        }
    }
    let took = began.elapsed().as_secs_f64();
    eprintln!(
        "sim {name}: {count} seeds in {took:.1} s ({:.0} seeds/s, {:.0} simulated s per real s); {} failed; \
         {acked} writes acknowledged, {lost} lost in {lossy} seeds; {promotions} promotions; \
         {rewinds} rewinds, {clean_rejoins} rejoins without one; \
         {ops_asked} restarts/reloads/reinitializes asked, {ops_done} done; slowest convergence {:.1} s after healing; \
         {resets} watchdog resets, {resets_unhung} of a box whose pgboxd was not hung (e.g. seeds {unhung_seeds:?})",
        count as f64 / took,
        sim_ms as f64 / 1000.0 / took,
        failures.len(),
        worst_converge as f64 / 1000.0,
    );
    if std::env::var_os("PGBOX_SIM_VERBOSE").is_some() {
        for f in &failures {
            eprintln!(
                "  seed {} {:?}: {}",
                f.seed,
                f.invariant,
                f.detail.chars().take(200).collect::<String>()
            );
            for node in ["db1", "db2", "db3"] {
                let mark = format!(" {node} ");
                if let Some(l) = f
                    .trace
                    .iter()
                    .rev()
                    .find(|l| l.contains(&mark) && l.contains("] "))
                {
                    eprintln!("      {}", l.trim().chars().take(220).collect::<String>());
                }
            }
        }
    }
    if let Some(first) = failures.first() {
        let list: Vec<String> = failures
            .iter()
            .map(|f| format!("{} {:?}", f.seed, f.invariant))
            .collect();
        panic!(
            "{} of {count} seeds of {name} violate an invariant: {}\n\nfirst failure (PGBOX_SIM_CONFIG={name}):\n{first}",
            failures.len(),
            list.join(", ")
        );
    }
    // Availability, not safety: the watchdog exists to reset a box whose
    // pgboxd hung while primary. A reset of a box whose pgboxd runs turns
    // a demotion of seconds into a reboot (a slow fast shutdown outlasting
    // the watchdog's margin did, on the VMs under a flapping link).
    assert!(
        resets_unhung == 0,
        "{resets_unhung} watchdog resets in {name} of a box whose pgboxd was not hung (e.g. seeds {unhung_seeds:?}; PGBOX_SIM_SEED=… with replay_one_seed shows one)"
    );
    lost
}

// Every configuration's sweep runs in the default test run: a violation
// fails it with the seed that replays it.

#[test]
fn two_nodes_async() {
    sweep("2-async");
}

#[test]
fn two_nodes_sync_on() {
    sweep("2-on");
}

#[test]
fn three_nodes_sync_on() {
    sweep("3-on");
}

#[test]
fn three_nodes_strict() {
    sweep("3-strict");
}

/// Failsafe mode: a primary cut off from the DCS (alone, or with the whole
/// DCS down) stays primary while every member vouches for it.
#[test]
fn two_nodes_sync_on_failsafe() {
    sweep("2-on-failsafe");
}

#[test]
fn three_nodes_strict_failsafe() {
    sweep("3-strict-failsafe");
}

/// A primary whose pgboxd hangs, with no watchdog to reset its box, is
/// fenced by the candidate over a connection to its PostgreSQL: not one
/// acknowledged write is lost, even with asynchronous replication.
#[test]
fn hung_primaries_without_a_watchdog_lose_nothing() {
    for name in [
        "2-async-nowatchdog-hangsonly",
        "3-async-nowatchdog-hangsonly",
    ] {
        assert_eq!(sweep(name), 0, "{name}: acknowledged writes lost");
    }
}

/// `PGBOX_SIM_CONFIGS=2-async-nowatchdog-nohangs,3-on`: sweep any
/// configurations (an exploration, not part of the default run).
#[test]
fn sweep_configs_from_env() {
    let Ok(list) = std::env::var("PGBOX_SIM_CONFIGS") else {
        return;
    };
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        sweep(name);
    }
}

#[test]
fn a_seed_replays_exactly() {
    let cfg = config("3-on");
    let (a, trace_a) = replay(12345, &cfg);
    let (b, trace_b) = replay(12345, &cfg);
    assert!(
        trace_a.len() > 30,
        "a run should say something: {} lines",
        trace_a.len()
    );
    assert_eq!(trace_a, trace_b);
    let hash = |r: &Result<Summary, Failure>| {
        r.as_ref()
            .map(|s| s.trace_hash)
            .map_err(|f| f.trace.clone())
    };
    assert_eq!(hash(&a), hash(&b));
    // The quick path (no full trace) runs the same simulation.
    let c = run_seed(12345, &cfg);
    assert_eq!(hash(&a), hash(&c));
}

#[test]
fn a_quiet_cluster_forms_and_stays_up() {
    for sync in [SyncMode::Off, SyncMode::On, SyncMode::Strict] {
        let mut cfg = SimConfig::new(3, sync);
        cfg.faults = 0;
        let s = run_seed(7, &cfg).unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(s.promotions, 0, "{sync:?}");
        assert_eq!(s.lost, 0, "{sync:?}");
        assert!(
            s.acknowledged > 50,
            "{sync:?}: only {} writes acknowledged",
            s.acknowledged
        );
    }
}

/// The checker has teeth: without a watchdog device, a primary whose
/// pgboxd hangs while its box is cut off from the other members (so no
/// candidate can fence it) keeps its PostgreSQL writable for the client
/// after its lease expired and a replica was promoted. That must be
/// reported as split brain.
#[test]
fn without_a_watchdog_a_hung_primary_is_caught_as_split_brain() {
    let mut cfg = config("2-async-nowatchdog-hangsonly");
    cfg.hung_cut_off = true;
    let start = first_seed(&cfg.name);
    let found = (start..start + 400).find_map(|seed| match run_seed(seed, &cfg) {
        Err(f) if f.invariant == Invariant::SplitBrain => Some(f),
        _ => None,
    });
    let f = found.expect("no seed of 400 without a watchdog produced a split brain");
    assert!(f.trace.iter().any(|l| l.contains("frozen")), "{f}");
}

/// `PGBOX_SIM_SEED=S [PGBOX_SIM_CONFIG=name]`: one seed, every trace line
/// (the configuration defaults to the one whose sweep the seed is from).
#[test]
fn replay_one_seed() {
    let Some(seed) = std::env::var("PGBOX_SIM_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let name = std::env::var("PGBOX_SIM_CONFIG")
        .ok()
        .or_else(|| config_of_seed(seed))
        .unwrap_or_else(|| "3-on".into());
    let (result, trace) = replay(seed, &config(&name));
    for line in &trace {
        println!("{line}");
    }
    match result {
        Ok(s) => println!("seed {seed} ({name}) passes: {s:?}"),
        Err(f) => panic!("{f}"),
    }
}
