//! The scenarios: each starts from a healthy cluster (waiting for one,
//! bounded), injects one fault through QMP while the workload writes
//! through app1's router, and checks what the final primary holds.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::{describe, Cluster};
use crate::support::checker::{self, CheckReport};
use crate::support::poll;
use crate::support::primary_watch::{self, PrimaryWatch};
use crate::support::workload::{Workload, WorkloadOptions, WorkloadRecord};
use crate::topology::{node, Role, NODES};

pub const ALL: [&str; 13] = [
    "bring-up",
    "quiet-minute",
    "primary-poweroff",
    "rejoin",
    "switchover",
    "candidate-lost",
    "freeze",
    "pause",
    "link-cut",
    "link-flap",
    "replica-off",
    "coord-off",
    "etcd-member-lost",
];

/// What CI-sized runs and the README's main command run.
pub const DEFAULT: [&str; 6] = [
    "bring-up",
    "primary-poweroff",
    "rejoin",
    "switchover",
    "freeze",
    "pause",
];

#[derive(Debug, Default)]
pub struct Metrics {
    /// Fault to the first acknowledged write sent after it, or the planned
    /// operation's write gap.
    pub unavailable_s: Option<f64>,
    /// Fault to the new leader holding the key, or bring-up to ready.
    pub failover_s: Option<f64>,
    pub acknowledged: Option<usize>,
    pub lost: Option<usize>,
    pub notes: Vec<String>,
    pub report: Option<String>,
}

const HEALTHY: Duration = Duration::from_secs(300);

pub async fn run(name: &str, c: &mut Cluster, started: Instant) -> Result<Metrics, String> {
    match name {
        "bring-up" => bring_up(c, started).await,
        "quiet-minute" => quiet_minute(c).await,
        "primary-poweroff" => primary_poweroff(c).await,
        "rejoin" => rejoin(c).await,
        "switchover" => switchover(c).await,
        "candidate-lost" => candidate_lost(c).await,
        "freeze" => freeze(c).await,
        "pause" => pause(c).await,
        "link-cut" => link_cut(c).await,
        "link-flap" => link_flap(c).await,
        "replica-off" => replica_off(c).await,
        "coord-off" => coord_off(c).await,
        "etcd-member-lost" => etcd_member_lost(c).await,
        other => Err(format!(
            "unknown scenario {other}; known: {}",
            ALL.join(", ")
        )),
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

async fn bring_up(c: &mut Cluster, started: Instant) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    c.start_all()?;
    // Readiness is the cluster's health; the boot marks only say when each
    // VM reached multi-user, for the report.
    let bound = Duration::from_secs(1200);
    let mut seen = [false; 5];
    let leader = loop {
        for (i, n) in NODES.iter().enumerate() {
            if !seen[i] && c.vm(n.name).up_marks() >= 1 {
                seen[i] = true;
                let fired = c.vm(n.name).watchdog_fires();
                m.notes.push(format!(
                    "{} multi-user at {:.0}s{}",
                    n.name,
                    started.elapsed().as_secs_f64(),
                    if fired > 0 {
                        format!(" (after {fired} hardware watchdog resets)")
                    } else {
                        String::new()
                    }
                ));
                println!("   {}", m.notes.last().unwrap());
            }
        }
        for v in c.vms.iter_mut() {
            if !v.is_running() {
                return Err(format!(
                    "QEMU of {} exited (see {}/qemu.log)",
                    v.spec.name,
                    v.dir.display()
                ));
            }
        }
        if seen.iter().all(|s| *s) {
            match tokio::time::timeout(Duration::from_secs(30), c.healthy_once()).await {
                Ok(Ok(l)) => break l,
                Ok(Err(e)) if started.elapsed() > bound => {
                    return Err(format!("not ready after {bound:.0?}: {e}"))
                }
                _ => {}
            }
        } else if started.elapsed() > bound {
            return Err(format!(
                "not every VM reached multi-user within {bound:.0?}"
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    // Synchronous mode records the standby a loop or two after it starts
    // streaming (PostgreSQL first, then the key): ready includes that.
    let members = poll(
        Duration::from_secs(120),
        "a streaming synchronous standby",
        async || {
            let ms = c.members().await?;
            if ms
                .iter()
                .any(|x| x.role == "sync_standby" && x.state == "streaming")
            {
                Ok(ms)
            } else {
                Err(describe(&ms))
            }
        },
    )
    .await?;
    let ready = started.elapsed();
    m.failover_s = Some(secs(ready));
    m.notes.push(format!(
        "ready {:.0}s: {}",
        ready.as_secs_f64(),
        describe(&members)
    ));
    println!("   {}", m.notes.last().unwrap());
    // Each router leads to the leader. Polled, within a bound: under TCG a
    // router's health check of the leader's /primary has failed once (a
    // 503 from a slow DCS read) while the first synchronous standby was
    // being set up, and HAProxy closed connections for that second.
    let leader_addr = node(&leader).address();
    for r in NODES.iter().filter(|n| n.has(Role::Router)) {
        poll(
            Duration::from_secs(30),
            &format!("the router on {} leading to the leader {leader}", r.name),
            async || {
                let to = c.router_leads_to(r).await?;
                if to == leader_addr {
                    Ok(())
                } else {
                    Err(format!(
                        "router on {} leads to {to}, not the leader {leader}",
                        r.name
                    ))
                }
            },
        )
        .await?;
    }
    Ok(m)
}

struct Run {
    workload: Workload,
}

impl Run {
    /// The start of a fault on the primary: a healthy cluster, its leader
    /// and synchronous standby (the one that must take over), and the
    /// workload writing.
    async fn start_on_healthy(c: &mut Cluster) -> Result<(String, String, Run), String> {
        c.wait_healthy(HEALTHY).await?;
        let (leader, sync) = c.leader_and_sync().await?;
        let sync = sync.ok_or("no synchronous standby before the fault")?;
        let run = Run::start(c).await?;
        Ok((leader, sync, run))
    }

    /// Starts the workload on app1's router once the cluster is healthy and
    /// the table is empty, and waits for it to be writing.
    async fn start(c: &mut Cluster) -> Result<Run, String> {
        c.reset_table().await?;
        Run::begin(c).await
    }

    /// The workload through app1's router, once it is writing.
    async fn begin(c: &Cluster) -> Result<Run, String> {
        let mut target = c.target(c.ports.rw(node("app1")));
        target.read_write = true;
        let opts = WorkloadOptions {
            interval: Duration::from_millis(20),
            ..WorkloadOptions::default()
        };
        let workload = Workload::start(target, opts);
        poll(
            Duration::from_secs(120),
            "the workload's first writes",
            async || {
                if workload.ack_count() >= 10 {
                    Ok(())
                } else {
                    Err(workload.last_error().unwrap_or_else(|| "no error".into()))
                }
            },
        )
        .await?;
        Ok(Run { workload })
    }

    async fn first_ack_after(&self, t: Instant, timeout: Duration) -> Result<Duration, String> {
        poll(
            timeout,
            "a write acknowledged after the fault",
            async || {
                let r = self.workload.snapshot();
                match r.first_ack_sent_after(t) {
                    Some(a) => Ok(a.at.saturating_duration_since(t)),
                    None => Err(self
                        .workload
                        .last_error()
                        .unwrap_or_else(|| "no error".into())),
                }
            },
        )
        .await
    }

    async fn more_acks(&self, n: usize) -> Result<(), String> {
        let t = Instant::now();
        poll(
            Duration::from_secs(120),
            "more acknowledged writes",
            async || {
                if self.workload.acks_after(t) >= n {
                    Ok(())
                } else {
                    Err(self
                        .workload
                        .last_error()
                        .unwrap_or_else(|| "no error".into()))
                }
            },
        )
        .await
    }

    /// Stops the workload and checks the final leader's table.
    async fn finish(
        self,
        c: &mut Cluster,
        faults: &[(&str, Instant)],
        m: &mut Metrics,
    ) -> Result<CheckReport, String> {
        let record: WorkloadRecord = self.workload.stop().await;
        let leader = c.wait_healthy(HEALTHY).await?;
        let client = c.direct(node(&leader)).await?;
        let report = checker::check(&record, &client, faults).await?;
        m.acknowledged = Some(report.acknowledged);
        m.lost = Some(report.missing.len());
        m.report = Some(report.to_string());
        if !report.is_consistent() {
            return Err(report.to_string());
        }
        Ok(report)
    }
}

async fn quiet_minute(c: &mut Cluster) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    let before = c.members().await?;
    let run = Run::start(c).await?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = c.members().await?;
    let report = run.finish(c, &[], &mut m).await?;
    let tl = |ms: &[crate::cluster::Member]| {
        ms.iter()
            .find(|x| x.role == "leader")
            .map(|x| (x.name.clone(), x.timeline))
    };
    if tl(&before) != tl(&after) {
        return Err(format!(
            "the leader changed in a quiet minute: {} → {}",
            describe(&before),
            describe(&after)
        ));
    }
    m.unavailable_s = report.longest_gap.as_ref().map(|g| secs(g.length));
    Ok(m)
}

async fn wait_leader(
    c: &Cluster,
    who: &str,
    t0: Instant,
    timeout: Duration,
) -> Result<f64, String> {
    poll(timeout, &format!("{who} to lead"), async || {
        let ms = c.members().await?;
        if ms
            .iter()
            .any(|x| x.name == who && x.role == "leader" && x.state == "running")
        {
            Ok(secs(t0.elapsed()))
        } else {
            Err(describe(&ms))
        }
    })
    .await
}

async fn primary_poweroff(c: &mut Cluster) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    let (leader, sync, run) = Run::start_on_healthy(c).await?;
    let t0 = Instant::now();
    c.vm(&leader).power_off().await?;
    m.notes
        .push(format!("powered off {leader}; {sync} should take over"));
    m.failover_s = Some(wait_leader(c, &sync, t0, Duration::from_secs(180)).await?);
    m.unavailable_s = Some(secs(
        run.first_ack_after(t0, Duration::from_secs(180)).await?,
    ));
    run.more_acks(20).await?;
    run.finish(c, &[("power-off", t0)], &mut m).await?;
    Ok(m)
}

async fn rejoin(c: &mut Cluster) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    let down = c
        .vms
        .iter_mut()
        .filter(|v| v.spec.has(Role::Postgres))
        .find_map(|v| (!v.is_running()).then_some(v.spec.name));
    let down = match down {
        Some(d) => d,
        None => {
            // Run on its own: make a node to rejoin first.
            c.wait_healthy(HEALTHY).await?;
            let (leader, _) = c.leader_and_sync().await?;
            c.vm(&leader).power_off().await?;
            m.notes.push(format!("powered off {leader} first"));
            node(&leader).name
        }
    };
    let run = Run::start_degraded(c).await?;
    let boots = c.vm(down).boots as usize;
    let t0 = Instant::now();
    c.vm(down).start()?;
    c.wait_up_marks(down, boots + 1, Duration::from_secs(600))
        .await?;
    m.notes.push(format!(
        "{down} multi-user after {:.0}s",
        t0.elapsed().as_secs_f64()
    ));
    poll(
        Duration::from_secs(600),
        &format!("{down} to stream"),
        async || {
            let ms = c.members().await?;
            if ms.iter().any(|x| x.name == down && x.state == "streaming") {
                Ok(())
            } else {
                Err(describe(&ms))
            }
        },
    )
    .await?;
    m.failover_s = Some(secs(t0.elapsed()));
    m.notes.push(format!(
        "{down} streaming {:.0}s after its restart",
        t0.elapsed().as_secs_f64()
    ));
    run.more_acks(20).await?;
    let report = run.finish(c, &[("restart", t0)], &mut m).await?;
    m.unavailable_s = report.longest_gap.as_ref().map(|g| secs(g.length));
    Ok(m)
}

impl Run {
    /// As `start`, for a cluster that is writable but not whole (a node
    /// down): waits only for a leader.
    async fn start_degraded(c: &mut Cluster) -> Result<Run, String> {
        let leader = poll(HEALTHY, "a leader", async || {
            let (l, _) = c.leader_and_sync().await?;
            Ok(l)
        })
        .await?;
        let client = c.direct(node(&leader)).await?;
        client
            .batch_execute("DROP TABLE IF EXISTS pgbox_writes")
            .await
            .map_err(|e| crate::support::error_chain(&e))?;
        Run::begin(c).await
    }
}

async fn switch_to(
    c: &mut Cluster,
    leader: &str,
    candidate: &str,
) -> Result<(Instant, f64), String> {
    let t0 = Instant::now();
    let (code, body) = c
        .api_post(
            node(leader),
            "/switchover",
            json!({"leader": leader, "candidate": candidate}),
            Duration::from_secs(180),
        )
        .await?;
    if !(200..300).contains(&code) {
        return Err(format!("POST /switchover to {candidate}: {code} {body}"));
    }
    let t = wait_leader(c, candidate, t0, Duration::from_secs(180)).await?;
    Ok((t0, t))
}

async fn switchover(c: &mut Cluster) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    c.wait_healthy(HEALTHY).await?;
    let (a, b) = c.leader_and_sync().await?;
    let b = b.ok_or("no synchronous standby")?;
    let run = Run::start(c).await?;
    let (t1, s1) = switch_to(c, &a, &b).await?;
    let gap1 = run.first_ack_after(t1, Duration::from_secs(120)).await?;
    c.wait_healthy(HEALTHY).await?;
    run.more_acks(20).await?;
    let (t2, s2) = switch_to(c, &b, &a).await?;
    let gap2 = run.first_ack_after(t2, Duration::from_secs(120)).await?;
    c.wait_healthy(HEALTHY).await?;
    run.more_acks(20).await?;
    m.failover_s = Some(s1.max(s2));
    m.notes.push(format!(
        "{a}→{b}: leader after {s1}s; {b}→{a}: leader after {s2}s"
    ));
    let report = run
        .finish(c, &[("switchover", t1), ("switchback", t2)], &mut m)
        .await?;
    let gap = report
        .longest_gap
        .as_ref()
        .map(|g| g.length)
        .unwrap_or_default();
    m.unavailable_s = Some(secs(gap.max(gap1).max(gap2)));
    Ok(m)
}

/// A switchover whose candidate is lost during the hand-over: its QEMU is
/// paused (QMP `stop`) 1 s after the request, for 20 s. The leader has
/// stepped down by then; within one TTL of that it must lead again (the
/// candidate never took over), and the candidate rejoins once resumed.
async fn candidate_lost(c: &mut Cluster) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    let (leader, sync, run) = Run::start_on_healthy(c).await?;
    let t0 = Instant::now();
    let post = c.api_post(
        node(&leader),
        "/switchover",
        json!({"leader": leader, "candidate": sync}),
        Duration::from_secs(180),
    );
    let lose = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        c.vm_ref(&sync).qmp("stop", json!({})).await
    };
    let (answer, stopped) = tokio::join!(post, lose);
    stopped?;
    let (code, body) = answer?;
    m.notes.push(format!(
        "switchover {leader}→{sync}, {sync} paused 1 s after the request; the API answered {code} {}",
        body.trim()
    ));
    let back = wait_leader(c, &leader, t0, Duration::from_secs(120)).await?;
    m.failover_s = Some(back);
    m.unavailable_s = Some(secs(
        run.first_ack_after(t0, Duration::from_secs(120)).await?,
    ));
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(t0.elapsed())).await;
    c.vm(&sync).qmp("cont", json!({})).await?;
    let woke = Instant::now();
    run.more_acks(20).await?;
    let now_leader = c.wait_healthy(HEALTHY).await?;
    m.notes.push(format!(
        "{leader} led again {back:.1} s after the request; {sync} resumed at {:.0} s and the cluster was whole {:.0} s later (leader {now_leader})",
        woke.duration_since(t0).as_secs_f64(),
        woke.elapsed().as_secs_f64()
    ));
    run.finish(c, &[("switchover, candidate lost", t0)], &mut m)
        .await?;
    Ok(m)
}

async fn freeze(c: &mut Cluster) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    let (leader, sync, run) = Run::start_on_healthy(c).await?;
    let boots = c.vm(&leader).up_marks();
    let fires = c.vm(&leader).watchdog_fires();
    let t0 = Instant::now();
    c.vm(&leader).signal(nix::sys::signal::Signal::SIGSTOP)?;
    m.notes
        .push(format!("froze {leader} (SIGSTOP to its QEMU)"));
    m.failover_s = Some(wait_leader(c, &sync, t0, Duration::from_secs(180)).await?);
    m.unavailable_s = Some(secs(
        run.first_ack_after(t0, Duration::from_secs(180)).await?,
    ));
    // Well past its lease: whatever it believes on waking, it must not
    // take writes.
    let hold = Duration::from_secs(2 * c.settings.ttl_s as u64);
    tokio::time::sleep(hold.saturating_sub(t0.elapsed())).await;
    c.vm(&leader).signal(nix::sys::signal::Signal::SIGCONT)?;
    let woke = Instant::now();
    run.more_acks(20).await?;
    c.wait_healthy(HEALTHY).await?;
    let rebooted = c.vm(&leader).up_marks() > boots;
    let fired = c.vm(&leader).watchdog_fires() - fires;
    m.notes.push(format!(
        "{leader} resumed after {:.0}s frozen; back as a replica {:.0}s later ({})",
        woke.duration_since(t0).as_secs_f64(),
        woke.elapsed().as_secs_f64(),
        match (rebooted, fired) {
            (true, 0) => "it rebooted (a guest watchdog reset it)".to_string(),
            (true, n) => format!("the emulated hardware watchdog reset it ({n} WATCHDOG event(s))"),
            (false, _) => "it demoted itself without a reset".to_string(),
        }
    ));
    run.finish(c, &[("freeze", t0)], &mut m).await?;
    Ok(m)
}

/// The primary's VM paused by the hypervisor (QMP `stop`, then `cont`), as
/// a stalled live migration or an overloaded host does. Unlike `freeze`
/// (SIGSTOP of QEMU, after which the guest's clock catches up), the guest's
/// clocks stop too: it wakes believing no time has passed. Both PostgreSQL
/// nodes' `/primary` is polled every 100 ms throughout, as a router would;
/// two nodes answering 200 at the same time fails the scenario.
async fn pause(c: &mut Cluster) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    let (leader, sync, run) = Run::start_on_healthy(c).await?;
    let targets = NODES
        .iter()
        .filter(|n| n.has(Role::Postgres))
        .map(|n| {
            (
                n.name.to_string(),
                format!("http://127.0.0.1:{}/primary", c.ports.api(n)),
            )
        })
        .collect();
    // A router's check gives up after a second or two; an answer later
    // than that is no answer.
    let watch = PrimaryWatch::start(targets, Duration::from_millis(100), Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t0 = Instant::now();
    c.vm(&leader).qmp("stop", json!({})).await?;
    m.notes
        .push(format!("paused {leader} (QMP stop: its clocks stop too)"));
    m.failover_s = Some(wait_leader(c, &sync, t0, Duration::from_secs(180)).await?);
    m.unavailable_s = Some(secs(
        run.first_ack_after(t0, Duration::from_secs(180)).await?,
    ));
    let hold = Duration::from_secs(3 * c.settings.ttl_s as u64);
    tokio::time::sleep(hold.saturating_sub(t0.elapsed())).await;
    c.vm(&leader).qmp("cont", json!({})).await?;
    let woke = Instant::now();
    run.more_acks(20).await?;
    c.wait_healthy(HEALTHY).await?;
    m.notes.push(format!(
        "{leader} resumed after {:.0}s paused; healthy again {:.0}s later",
        woke.duration_since(t0).as_secs_f64(),
        woke.elapsed().as_secs_f64()
    ));
    // The moments right after the resume are the dangerous ones; keep
    // polling a little past the cluster being whole.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let samples = watch.stop().await;
    let found = primary_watch::overlaps(&samples);
    m.notes.push(format!(
        "/primary polled every 100 ms: {}; {} overlapping 200 answers",
        primary_watch::summary(&samples),
        found.len()
    ));
    run.finish(c, &[("pause", t0)], &mut m).await?;
    if let Some(first) = found.first() {
        return Err(format!(
            "two nodes answered /primary 200 at once, {} times; first: {} ({})",
            found.len(),
            primary_watch::describe_overlap(first, t0),
            m.notes.join("; ")
        ));
    }
    Ok(m)
}

async fn link_cut(c: &mut Cluster) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    let (leader, sync, run) = Run::start_on_healthy(c).await?;
    let t0 = Instant::now();
    c.switch.set_cut(&leader, true);
    // Cut off, it must stop answering as a primary (fencing) even though
    // the host can still reach it.
    let fenced = poll(
        Duration::from_secs(60),
        &format!("{leader} to stop being writable"),
        async || match c.api(node(&leader), "/primary").await {
            Ok((200, _)) => Err("still answers /primary 200".into()),
            _ => Ok(secs(t0.elapsed())),
        },
    )
    .await?;
    m.notes
        .push(format!("{leader} cut off; not writable after {fenced}s"));
    m.failover_s = Some(wait_leader(c, &sync, t0, Duration::from_secs(180)).await?);
    m.unavailable_s = Some(secs(
        run.first_ack_after(t0, Duration::from_secs(180)).await?,
    ));
    c.switch.set_cut(&leader, false);
    let t1 = Instant::now();
    run.more_acks(20).await?;
    c.wait_healthy(HEALTHY).await?;
    m.notes.push(format!(
        "link restored; {leader} streaming again after {:.0}s",
        t1.elapsed().as_secs_f64()
    ));
    run.finish(c, &[("link-cut", t0)], &mut m).await?;
    Ok(m)
}

/// The primary's link flaps: down 2 s, up 2 s, for 32 s (a bad cable, a
/// switch port resetting). Reports the longest stretch without an
/// acknowledged write during the flapping, whether anyone failed over, and
/// checks that nothing acknowledged is lost.
async fn link_flap(c: &mut Cluster) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    let (leader, _sync, run) = Run::start_on_healthy(c).await?;
    let t0 = Instant::now();
    for _ in 0..8 {
        c.switch.set_cut(&leader, true);
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.switch.set_cut(&leader, false);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let t1 = Instant::now();
    let record = run.workload.snapshot();
    let mut marks: Vec<Instant> = vec![t0];
    marks.extend(record.acks_between(t0, t1).iter().map(|a| a.at));
    marks.push(t1);
    let longest = marks
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default();
    m.unavailable_s = Some(secs(longest));
    run.more_acks(20).await?;
    let now_leader = c.wait_healthy(HEALTHY).await?;
    m.notes.push(format!(
        "{leader}'s link flapped 2 s down / 2 s up for {:.0} s: longest stretch without an acknowledged write {:.1} s, {} acknowledged meanwhile; leader afterwards: {now_leader}",
        t1.duration_since(t0).as_secs_f64(),
        longest.as_secs_f64(),
        record.acks_between(t0, t1).len()
    ));
    run.finish(c, &[("link-flap", t0)], &mut m).await?;
    Ok(m)
}

/// Powers `victim` off under the workload, checks writes go on, starts it
/// again on the same disk and waits for the cluster to be whole.
async fn writes_survive_poweroff(
    c: &mut Cluster,
    victim: &str,
    m: &mut Metrics,
) -> Result<(), String> {
    let run = Run::start(c).await?;
    let boots = c.vm(victim).boots as usize;
    let t0 = Instant::now();
    c.vm(victim).power_off().await?;
    run.more_acks(50).await?;
    let after = run.first_ack_after(t0, Duration::from_secs(120)).await?;
    let steady = Instant::now();
    run.more_acks(50).await?;
    let snap = run.workload.snapshot();
    let gap = snap
        .acks
        .windows(2)
        .filter(|w| w[1].at > t0)
        .map(|w| w[1].at.saturating_duration_since(w[0].at))
        .max()
        .unwrap_or_default();
    m.unavailable_s = Some(secs(gap.max(after)));
    m.notes.push(format!(
        "{victim} off: longest write gap {:.1}s; steady {:.0}s later",
        gap.as_secs_f64(),
        steady.elapsed().as_secs_f64()
    ));
    c.vm(victim).start()?;
    c.wait_up_marks(victim, boots + 1, Duration::from_secs(600))
        .await?;
    run.finish(c, &[("power-off", t0)], m).await?;
    Ok(())
}

async fn replica_off(c: &mut Cluster) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    c.wait_healthy(HEALTHY).await?;
    let (_, sync) = c.leader_and_sync().await?;
    let sync = sync.ok_or("no synchronous standby")?;
    writes_survive_poweroff(c, &sync, &mut m).await?;
    Ok(m)
}

async fn coord_off(c: &mut Cluster) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    c.wait_healthy(HEALTHY).await?;
    writes_survive_poweroff(c, "coord", &mut m).await?;
    Ok(m)
}

async fn etcd_member_lost(c: &mut Cluster) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    c.wait_healthy(HEALTHY).await?;
    // The etcd member that is neither PostgreSQL node: losing it must not
    // touch writes (two of three members keep the quorum).
    let run = Run::start(c).await?;
    let t0 = Instant::now();
    c.switch.set_cut("coord", true);
    run.more_acks(50).await?;
    tokio::time::sleep(Duration::from_secs(2 * c.settings.ttl_s as u64)).await;
    run.more_acks(20).await?;
    let snap = run.workload.snapshot();
    let gap = snap
        .acks
        .windows(2)
        .filter(|w| w[1].at > t0)
        .map(|w| w[1].at.saturating_duration_since(w[0].at))
        .max()
        .unwrap_or_default();
    m.unavailable_s = Some(secs(gap));
    c.switch.set_cut("coord", false);
    run.finish(c, &[("etcd member cut", t0)], &mut m).await?;
    if gap > Duration::from_secs(3) {
        return Err(format!(
            "writes stalled {:.1}s with one etcd member lost",
            gap.as_secs_f64()
        ));
    }
    Ok(m)
}
