//! What the harness's process handling does not cover: PostgreSQL servers
//! that are not in their supervisor's process tree (Patroni starts the
//! postmaster through a helper that exits, so it is re-parented to us, the
//! subreaper), and the footprint of the supervisors.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use serde_json::{json, Value};

struct Stat {
    pid: i32,
    ppid: i32,
    state: char,
    comm: String,
    /// utime + stime, in clock ticks.
    ticks: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = text.rfind(')')?;
    let comm = text[..close].split_once('(')?.1.to_string();
    let f: Vec<&str> = text[close + 1..].split_whitespace().collect();
    Some(Stat {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        state: f.first()?.chars().next()?,
        comm,
        ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    })
}

fn all() -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// `root` and all its live descendants.
pub fn tree(root: i32) -> BTreeSet<i32> {
    let procs = all();
    let mut set: BTreeSet<i32> = procs
        .iter()
        .filter(|p| p.pid == root && p.state != 'Z')
        .map(|p| p.pid)
        .collect();
    loop {
        let before = set.len();
        for p in &procs {
            if set.contains(&p.ppid) && p.state != 'Z' {
                set.insert(p.pid);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

/// Freezes, then kills, `pids`; reaps those that are ours.
/// Returns the instant every process was frozen: none of them ran after it,
/// so a write sent later cannot have been acknowledged by this node.
pub fn stop_and_kill(pids: &BTreeSet<i32>) -> std::time::Instant {
    for p in pids {
        let _ = kill(Pid::from_raw(*p), Signal::SIGSTOP);
    }
    let frozen = std::time::Instant::now();
    for p in pids {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
    frozen
}

/// Dead PostgreSQL processes re-parented to us must be reaped: a zombie's
/// pid still looks alive, and a supervisor reading postmaster.pid would
/// take the server for running. Only `postgres` processes: the harness's
/// own children are reaped through their `Child`.
pub fn start_reaper() {
    std::thread::spawn(|| {
        let me = std::process::id() as i32;
        loop {
            for p in all() {
                if p.ppid == me && p.state == 'Z' && p.comm == "postgres" {
                    let _ = waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG));
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}

/// Waits (bounded) until none of `pids` is alive.
pub fn wait_dead(pids: &BTreeSet<i32>, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        let alive = pids
            .iter()
            .any(|p| stat(*p).is_some_and(|s| s.state != 'Z'));
        if !alive {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU use (percent of one core) and resident memory (mean of one-second
/// samples, MiB) of each group of supervisor processes over `window`; per
/// group the mean over its processes.
pub async fn measure_idle(groups: &[Vec<i32>], window: Duration) -> Vec<Value> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks = |pid: i32| stat(pid).map(|s| s.ticks).unwrap_or(0);
    let start: Vec<Vec<u64>> = groups
        .iter()
        .map(|g| g.iter().map(|p| ticks(*p)).collect())
        .collect();
    let t0 = Instant::now();
    let mut rss: Vec<Vec<u64>> = groups.iter().map(|g| vec![0; g.len()]).collect();
    let mut samples = 0u64;
    while t0.elapsed() < window {
        for (gi, g) in groups.iter().enumerate() {
            for (pi, p) in g.iter().enumerate() {
                rss[gi][pi] += rss_kib(*p).unwrap_or(0);
            }
        }
        samples += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    groups
        .iter()
        .enumerate()
        .map(|(gi, g)| {
            let n = g.len().max(1) as f64;
            let cpu: f64 = g
                .iter()
                .enumerate()
                .map(|(pi, p)| {
                    (ticks(*p).saturating_sub(start[gi][pi])) as f64 / hz / elapsed * 100.0
                })
                .sum::<f64>()
                / n;
            let mem: f64 = rss[gi]
                .iter()
                .map(|k| *k as f64 / samples.max(1) as f64 / 1024.0)
                .sum::<f64>()
                / n;
            json!({
                "cpu_percent": (cpu * 100.0).round() / 100.0,
                "rss_mib": (mem * 10.0).round() / 10.0,
                "window_s": (elapsed * 10.0).round() / 10.0,
                "processes": g.len(),
            })
        })
        .collect()
}
