//! pgbox-vmtest: boots the five-node pgbox cluster from the
//! built image under QEMU, runs fault scenarios against it under a write
//! workload, and reports what each cost and whether any acknowledged write
//! was lost.
//!
//!   pgbox-vmtest [--keep] [--image-dir DIR] [--out DIR] [SCENARIO...|all]

mod cluster;
mod scenarios;
mod support;
mod switch;
mod topology;
mod vm;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use cluster::Cluster;
use topology::{Ports, NODES};

struct Args {
    keep: bool,
    image_dir: PathBuf,
    out: PathBuf,
    scenarios: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut a = Args {
        keep: false,
        image_dir: repo.join("image/out"),
        out: repo.join("qemu-tests/out"),
        scenarios: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--keep" => a.keep = true,
            "--image-dir" => a.image_dir = it.next().ok_or("--image-dir needs a value")?.into(),
            "--out" => a.out = it.next().ok_or("--out needs a value")?.into(),
            "-h" | "--help" => {
                println!(
                    "usage: pgbox-vmtest [--keep] [--image-dir DIR] [--out DIR] [SCENARIO...|all]\nscenarios: {}\ndefault: {}",
                    scenarios::ALL.join(" "),
                    scenarios::DEFAULT.join(" ")
                );
                std::process::exit(0);
            }
            "all" => a
                .scenarios
                .extend(scenarios::ALL.iter().map(|s| s.to_string())),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if scenarios::ALL.contains(&s) => a.scenarios.push(s.to_string()),
            s => {
                return Err(format!(
                    "unknown scenario {s}; known: {}",
                    scenarios::ALL.join(", ")
                ))
            }
        }
    }
    if a.scenarios.is_empty() {
        a.scenarios = scenarios::DEFAULT.iter().map(|s| s.to_string()).collect();
    }
    // Every scenario needs the cluster up: bring-up always runs first.
    a.scenarios.retain(|s| s != "bring-up");
    a.scenarios.insert(0, "bring-up".into());
    Ok(a)
}

/// A base whose forwards are all free on 127.0.0.1.
fn pick_ports() -> Result<Ports, String> {
    let first: u16 = std::env::var("PGBOX_VMTEST_PORT_BASE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(27100);
    for base in (first..first + 1000).step_by(100) {
        let p = Ports { base };
        let free = NODES
            .iter()
            .flat_map(|n| p.forwards(n))
            .all(|(h, _)| TcpListener::bind(("127.0.0.1", h)).is_ok());
        if free {
            return Ok(p);
        }
    }
    Err(format!("no free block of host ports from {first}"))
}

struct Row {
    name: String,
    passed: bool,
    wall_s: f64,
    m: scenarios::Metrics,
    error: Option<String>,
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<18} {:<6} {:>8} {:>12} {:>14} {:>8} {:>6}",
        "scenario", "result", "wall s", "failover s", "unavailable s", "acked", "lost"
    );
    for r in rows {
        println!(
            "{:<18} {:<6} {:>8.0} {:>12} {:>14} {:>8} {:>6}",
            r.name,
            if r.passed { "PASS" } else { "FAIL" },
            r.wall_s,
            fmt_opt(r.m.failover_s),
            fmt_opt(r.m.unavailable_s),
            r.m.acknowledged
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            r.m.lost
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
        );
    }
    println!("(bring-up: failover s = QEMU start to cluster ready; rejoin: restart to streaming; switchover: request to new leader)");
}

async fn run(
    args: &Args,
    rows: &mut Vec<Row>,
    cluster_slot: &mut Option<Cluster>,
) -> Result<(), String> {
    vm::check_host_tools()?;
    let image = vm::Image::from_dir(&args.image_dir)?;
    let accel = vm::probe_accel(&image);
    let ports = pick_ports()?;
    let run_dir = args.out.join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    println!(
        "pgbox-vmtest: {accel:?}, run directory {}, host ports from {}",
        run_dir.display(),
        ports.base
    );
    let image = image.snapshot(&run_dir)?;
    let cluster = cluster_slot.insert(Cluster::create(&run_dir, &image, accel, ports)?);
    let started = Instant::now();
    for name in &args.scenarios {
        println!("== {name}");
        let offsets = cluster.log_offsets();
        let t = Instant::now();
        let result = scenarios::run(name, cluster, started).await;
        let wall_s = t.elapsed().as_secs_f64();
        cluster.collect_logs(&offsets, &args.out.join("logs").join(name));
        let (passed, m, error) = match result {
            Ok(m) => (true, m, None),
            Err(e) => (false, scenarios::Metrics::default(), Some(e)),
        };
        // bring-up prints its progress as it goes.
        if name != "bring-up" {
            for n in &m.notes {
                println!("   {n}");
            }
        } else if let Some(last) = m.notes.last() {
            println!("   {last}");
        }
        if let Some(r) = &m.report {
            println!("   {r}");
        }
        match &error {
            None => println!("   PASS in {wall_s:.0}s"),
            Some(e) => println!("   FAIL after {wall_s:.0}s: {e}"),
        }
        let stop = !passed && name == "bring-up";
        rows.push(Row {
            name: name.clone(),
            passed,
            wall_s,
            m,
            error,
        });
        if stop {
            break;
        }
    }
    Ok(())
}

/// When the image the run booted was written (seconds since the epoch):
/// scripts/test.sh compares it with image/out/ to know whether these
/// results are about the image that is there now.
fn image_mtime(args: &Args) -> Option<u64> {
    let m = std::fs::metadata(args.image_dir.join("pgbox.qcow2")).ok()?;
    m.modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// The last lines a person reads: what passed, what failed and why, where
/// the logs are, and how to keep the cluster.
fn print_summary(
    args: &Args,
    rows: &[Row],
    outcome: &Result<(), String>,
    results: Option<&PathBuf>,
) {
    let passed = rows.iter().filter(|r| r.passed).count();
    let asked = args.scenarios.len();
    println!();
    if outcome.is_ok() && passed == asked {
        println!("summary: all {asked} scenarios passed");
    } else {
        println!("summary: {passed} of {asked} scenarios passed");
        for r in rows.iter().filter(|r| !r.passed) {
            println!(
                "  FAILED {}: {}",
                r.name,
                r.error.as_deref().unwrap_or("failed")
            );
            println!(
                "    logs: {}",
                args.out.join("logs").join(&r.name).display()
            );
        }
        let ran: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        let skipped: Vec<&str> = args
            .scenarios
            .iter()
            .map(String::as_str)
            .filter(|s| !ran.contains(s))
            .collect();
        if !skipped.is_empty() {
            println!("  not run: {}", skipped.join(" "));
        }
        if let Err(e) = outcome {
            println!("  stopped: {e}");
        }
    }
    println!(
        "  VM serial consoles and journals per scenario: {}/<scenario>/",
        args.out.join("logs").display()
    );
    if let Some(p) = results {
        println!("  results (JSON): {}", p.display());
    }
    if !args.keep {
        println!("  to keep the cluster running afterwards and reach it: qemu-tests/run.sh --keep");
    }
}

fn write_json(args: &Args, rows: &[Row], accel: &str) -> Result<PathBuf, String> {
    let doc = json!({
        "accel": accel,
        "image_mtime_unix": image_mtime(args),
        "requested": args.scenarios,
        "finished_unix": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "scenarios": rows.iter().map(|r| json!({
            "name": r.name,
            "passed": r.passed,
            "wall_s": (r.wall_s * 10.0).round() / 10.0,
            "failover_s": r.m.failover_s,
            "unavailable_s": r.m.unavailable_s,
            "acknowledged": r.m.acknowledged,
            "lost": r.m.lost,
            "notes": r.m.notes,
            "checker": r.m.report,
            "error": r.error,
        })).collect::<Vec<_>>(),
    });
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let path = args.out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap())
        .map_err(|e| e.to_string())?;
    Ok(path)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pgbox-vmtest: {e}");
            return ExitCode::from(2);
        }
    };
    // One thread: QEMU's parent-death signal follows the thread that
    // started it, so every QEMU is started from this one.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut rows = Vec::new();
        let mut cluster: Option<Cluster> = None;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal");
        let outcome = tokio::select! {
            r = run(&args, &mut rows, &mut cluster) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
            _ = term.recv() => Err("terminated".into()),
        };
        let accel = cluster
            .as_ref()
            .map(|c| format!("{:?}", c.accel))
            .unwrap_or_default();
        print_table(&rows);
        let results = match write_json(&args, &rows, &accel) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("writing results: {e}");
                None
            }
        };
        if let Err(e) = &outcome {
            eprintln!("pgbox-vmtest: {e}");
        }
        print_summary(&args, &rows, &outcome, results.as_ref());
        if args.keep && outcome.is_ok() {
            if let Some(c) = &cluster {
                println!(
                    "\nthe cluster stays up (Ctrl-C ends it):\n{}",
                    c.access_help()
                );
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        // Dropping the cluster kills every QEMU it started.
        drop(cluster);
        let ok = outcome.is_ok() && !rows.is_empty() && rows.iter().all(|r| r.passed);
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}
