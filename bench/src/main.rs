//! pgbox-bench: the same loopback cluster (3 etcd members, 2 PostgreSQL
//! servers, HAProxy) managed once by pgboxd and once by Patroni, the same
//! write workload through HAProxy, the same faults; timings of both side by
//! side. Not a test: it reports numbers and fails only when a
//! scenario does not complete at all.
//!
//! Usage: pgbox-bench [--quick] [--reps N] [--idle SECS] [--out DIR] [--venv DIR]

#[path = "../../appliance/tests/support/mod.rs"]
mod support;

mod cluster;
mod procs;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use cluster::{Cluster, Setup, System};
use support::workload::{Workload, WorkloadOptions, WorkloadRecord};

struct Args {
    quick: bool,
    reps: usize,
    idle: u64,
    out: PathBuf,
    venv: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        quick: false,
        reps: 5,
        idle: 60,
        out: root.join("out"),
        venv: root.join(".venv"),
    };
    let mut reps = None;
    let mut idle = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--reps" => {
                reps = Some(
                    value("--reps")?
                        .parse()
                        .map_err(|e| format!("--reps: {e}"))?,
                )
            }
            "--idle" => {
                idle = Some(
                    value("--idle")?
                        .parse()
                        .map_err(|e| format!("--idle: {e}"))?,
                )
            }
            "--out" => a.out = PathBuf::from(value("--out")?),
            "--venv" => {
                a.venv =
                    std::path::absolute(value("--venv")?).map_err(|e| format!("--venv: {e}"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    a.reps = reps.unwrap_or(if a.quick { 1 } else { 5 });
    a.idle = idle.unwrap_or(if a.quick { 10 } else { 60 });
    if a.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    Ok(a)
}

/// Loopback subnets: pgbox on 127.0.40.x, Patroni on 127.0.41.x, away from
/// the ones the cluster tests allocate first.
fn subnet_of(system: System) -> u8 {
    match system {
        System::Pgbox => 40,
        System::Patroni => 41,
    }
}

/// The setups compared pairwise, at equal safety: each pgbox run against the
/// Patroni run with the same lease TTL or the same role (defaults).
fn pairs(quick: bool) -> Vec<(String, Vec<Setup>, bool)> {
    let s = |label: &str, system, ttl, loop_wait_ms, retry_timeout, sync| Setup {
        label: label.into(),
        system,
        ttl,
        loop_wait_ms,
        retry_timeout,
        sync,
    };
    if quick {
        return vec![(
            "defaults".into(),
            vec![s("pgbox-defaults", System::Pgbox, 10, 1000, 0, true)],
            true,
        )];
    }
    // Patroni's floor: the validator's minimums (ttl 20, loop_wait 1,
    // retry_timeout 3) and its rule loop_wait + 2 × retry_timeout <= ttl.
    let (fast_ttl, fast_loop, fast_retry) = (cluster::PATRONI_MIN_TTL, 1000, 3);
    vec![
        (
            "defaults".into(),
            vec![
                s("pgbox-defaults", System::Pgbox, 10, 1000, 0, true),
                s("patroni-defaults", System::Patroni, 30, 10_000, 10, true),
            ],
            true,
        ),
        (
            "fastest".into(),
            vec![
                s("pgbox-ttl-floor", System::Pgbox, fast_ttl, 1000, 0, true),
                s(
                    "patroni-floor",
                    System::Patroni,
                    fast_ttl,
                    fast_loop,
                    fast_retry,
                    true,
                ),
            ],
            true,
        ),
        (
            "async".into(),
            vec![
                s("pgbox-async", System::Pgbox, fast_ttl, 1000, 0, false),
                s(
                    "patroni-async",
                    System::Patroni,
                    fast_ttl,
                    fast_loop,
                    fast_retry,
                    false,
                ),
            ],
            false,
        ),
    ]
}

#[derive(Default, Clone)]
struct Rep {
    failover: Option<f64>,
    promoted: Option<f64>,
    rejoin: Option<f64>,
    switchover_gap: Option<f64>,
    lost: Option<usize>,
    errors: Vec<String>,
    /// Acknowledged writes per 100 ms bin, from 5 s before the power loss.
    bins: Vec<u32>,
}

impl Rep {
    fn json(&self) -> Value {
        json!({
            "failover_s": self.failover,
            "promoted_s": self.promoted,
            "rejoin_s": self.rejoin,
            "switchover_gap_s": self.switchover_gap,
            "lost_writes": self.lost,
            "errors": self.errors,
        })
    }
}

const BIN: Duration = Duration::from_millis(100);
const BINS_BEFORE: u32 = 50;
const BINS_TOTAL: u32 = 500;

fn bins_around(record: &WorkloadRecord, fault: Instant) -> Vec<u32> {
    let start = fault - BIN * BINS_BEFORE;
    let mut bins = vec![0u32; BINS_TOTAL as usize];
    for a in &record.acks {
        if a.at < start {
            continue;
        }
        let i = (a.at - start).as_millis() / BIN.as_millis();
        if let Some(b) = bins.get_mut(i as usize) {
            *b += 1;
        }
    }
    bins
}

/// Longest time between consecutive acknowledged writes that spans or
/// follows `from`, up to `to`.
fn gap_around(record: &WorkloadRecord, from: Instant, to: Instant) -> Option<f64> {
    record
        .acks
        .windows(2)
        .filter(|w| w[1].at > from && w[0].at < to)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g))))
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// One repetition on one cluster: power loss of the primary, its rejoin,
/// then (optionally) a planned switchover back to it.
async fn one_rep(c: &mut Cluster, with_switchover: bool) -> Result<Rep, String> {
    let mut rep = Rep::default();
    let primary = c.wait_healthy(Duration::from_secs(180)).await?;
    let other = c.other(&primary);
    c.reset_table().await?;
    let workload = Workload::start(c.rw_target(), WorkloadOptions::default());
    let outcome = async {
        wait_writes(&workload, Instant::now(), 50, Duration::from_secs(60)).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;

        let t0 = c.power_off(&primary);
        println!("[{}] power loss of {primary}", c.setup.label);
        let deadline = t0 + Duration::from_secs(240);
        loop {
            if rep.promoted.is_none() && c.is_primary(&other).await {
                rep.promoted = Some(secs(t0.elapsed()));
            }
            if let Some(a) = workload.snapshot().first_ack_sent_after(t0) {
                rep.failover = Some(secs(a.at - t0));
                if rep.promoted.is_none() {
                    rep.promoted = rep.failover;
                }
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no acknowledged write within 240 s of the power loss; last error: {:?}",
                    workload.last_error()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let t1 = Instant::now();
        c.start_node(&primary);
        let deadline = t1 + Duration::from_secs(240);
        while !c.is_streaming(&primary).await {
            if Instant::now() > deadline {
                return Err(format!("{primary} not streaming within 240 s of its restart"));
            }
            c.assert_running(&primary)?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rep.rejoin = Some(secs(t1.elapsed()));
        rep.bins = bins_around(&workload.snapshot(), t0);
        println!(
            "[{}] writes again after {:.2} s (promoted at {:.2} s); {primary} streaming {:.2} s after restart",
            c.setup.label,
            rep.failover.unwrap_or(f64::NAN),
            rep.promoted.unwrap_or(f64::NAN),
            rep.rejoin.unwrap_or(f64::NAN)
        );

        if with_switchover {
            let leader = c.wait_healthy(Duration::from_secs(180)).await?;
            let candidate = c.other(&leader);
            tokio::time::sleep(Duration::from_secs(2)).await;
            let t2 = Instant::now();
            c.switchover(&leader, &candidate)?;
            let deadline = t2 + Duration::from_secs(120);
            while !c.is_primary(&candidate).await {
                if Instant::now() > deadline {
                    return Err(format!("{candidate} not primary within 120 s of the switchover"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            wait_writes(&workload, Instant::now(), 20, Duration::from_secs(60)).await?;
            let t3 = Instant::now();
            tokio::time::sleep(Duration::from_secs(1)).await;
            rep.switchover_gap = gap_around(&workload.snapshot(), t2, t3).map(|g| (g * 1000.0).round() / 1000.0);
            println!(
                "[{}] switchover {leader} → {candidate}: longest write gap {:.2} s",
                c.setup.label,
                rep.switchover_gap.unwrap_or(f64::NAN)
            );
        }
        Ok(())
    }
    .await;
    let record = workload.stop().await;
    outcome?;
    c.wait_healthy(Duration::from_secs(180)).await?;
    let report = c.check(&record).await?;
    rep.lost = Some(report.missing.len());
    rep.errors = record
        .errors
        .iter()
        .take(3)
        .map(|e| e.what.clone())
        .collect();
    println!("[{}] {report}", c.setup.label);
    Ok(rep)
}

async fn wait_writes(
    w: &Workload,
    after: Instant,
    n: usize,
    bound: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + bound;
    while w.acks_after(after) < n {
        if Instant::now() > deadline {
            return Err(format!(
                "fewer than {n} acknowledged writes within {bound:?}; last error: {:?}",
                w.last_error()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn machine() -> Value {
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_string()))
        })
        .unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "memory_gib": (mem_kb as f64 / 1048576.0 * 10.0).round() / 10.0,
        "loadavg": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

/// Written after every pair, so a run cut short still leaves its numbers.
fn write_results(
    args: &Args,
    started: &str,
    machine_before: &Value,
    setups: &serde_json::Map<String, Value>,
    timelines: &serde_json::Map<String, Value>,
    failures: &[String],
) -> Result<PathBuf, String> {
    let results = json!({
        "started": started,
        "finished": support::timestamp(),
        "quick": args.quick,
        "reps": args.reps,
        "idle_window_s": args.idle,
        "machine": machine_before,
        "machine_after": machine(),
        "setups": setups,
        "timelines": timelines,
        "failures": failures,
    });
    let path = args.out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap())
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(path)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pgbox-bench: {e}");
            return ExitCode::from(2);
        }
    };
    procs::start_reaper();
    let _ = std::fs::create_dir_all(&args.out);
    let started = support::timestamp();
    let machine_before = machine();
    let mut failures: Vec<String> = Vec::new();
    let mut setups_json = serde_json::Map::new();
    let mut timelines = serde_json::Map::new();

    for (pair, setups, with_switchover) in pairs(args.quick) {
        println!(
            "== {pair}: {}",
            setups
                .iter()
                .map(|s| s.label.as_str())
                .collect::<Vec<_>>()
                .join(" vs ")
        );
        let mut clusters = Vec::new();
        let mut reps: Vec<Vec<Rep>> = Vec::new();
        for setup in &setups {
            match Cluster::start(setup.clone(), subnet_of(setup.system), &args.venv).await {
                Ok(c) => clusters.push(c),
                Err(e) => {
                    failures.push(format!("{}: start: {e}", setup.label));
                    eprintln!("{}: cluster did not come up: {e}", setup.label);
                }
            }
            reps.push(Vec::new());
        }
        if clusters.len() != setups.len() {
            continue;
        }
        // Interleaved (A B A B ...), so drift in the machine's load falls on
        // both systems alike.
        for r in 0..args.reps {
            for (i, c) in clusters.iter_mut().enumerate() {
                println!("-- {} rep {}/{}", c.setup.label, r + 1, args.reps);
                match one_rep(c, with_switchover).await {
                    Ok(rep) => reps[i].push(rep),
                    Err(e) => {
                        eprintln!("[{}] rep {} failed: {e}", c.setup.label, r + 1);
                        failures.push(format!("{} rep {}: {e}", c.setup.label, r + 1));
                        let rep = Rep {
                            errors: vec![e],
                            ..Rep::default()
                        };
                        reps[i].push(rep);
                    }
                }
            }
        }
        // Footprint at idle: no workload, no fault; both clusters measured
        // over the same window.
        let mut idle = Vec::new();
        if with_switchover {
            for c in clusters.iter() {
                if let Err(e) = c.wait_healthy(Duration::from_secs(120)).await {
                    failures.push(format!(
                        "{}: not healthy before the idle window: {e}",
                        c.setup.label
                    ));
                }
            }
            let pids: Vec<Vec<i32>> = clusters.iter().map(|c| c.supervisor_pids()).collect();
            idle = procs::measure_idle(&pids, Duration::from_secs(args.idle)).await;
        }
        for (i, c) in clusters.iter().enumerate() {
            let mut entry = json!({
                "setup": c.setup.json(),
                "pair": pair,
                "reps": reps[i].iter().map(Rep::json).collect::<Vec<_>>(),
            });
            if let Some(m) = idle.get(i) {
                entry["idle"] = m.clone();
            }
            if let Some(first) = reps[i].iter().find(|r| !r.bins.is_empty()) {
                timelines.insert(
                    c.setup.label.clone(),
                    json!({"bin_s": BIN.as_secs_f64(), "before_s": (BIN * BINS_BEFORE).as_secs_f64(), "acks": first.bins}),
                );
            }
            setups_json.insert(c.setup.label.clone(), entry);
        }
        drop(clusters);
        if let Err(e) = write_results(
            &args,
            &started,
            &machine_before,
            &setups_json,
            &timelines,
            &failures,
        ) {
            eprintln!("{e}");
        }
    }
    let path = match write_results(
        &args,
        &started,
        &machine_before,
        &setups_json,
        &timelines,
        &failures,
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };

    println!("results: {}", path.display());
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        let mut s = String::new();
        for f in &failures {
            let _ = writeln!(s, "  {f}");
        }
        eprintln!("pgbox-bench: {} scenario(s) failed:\n{s}", failures.len());
        ExitCode::FAILURE
    }
}
