//! `GET /primary` is what routers (HAProxy health checks) trust: it must not
//! answer 200 unless, when it answers, this node's PostgreSQL runs as
//! primary and the DCS shows this node holding the leader key. Two nodes'
//! /primary are polled every 50 ms (each request's start and end recorded)
//! through a pgboxd frozen for longer than the TTL and a postmaster killed
//! with SIGKILL; any two 200 answers from different nodes in intersecting
//! intervals, or a 200 from a node whose postmaster is dead, fail the test.

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use support::node::{
    ClusterOptions, TestCluster, BOOTSTRAP_TIMEOUT, FAILOVER_TIMEOUT, REJOIN_TIMEOUT,
};
use support::primary_watch::{self, PrimaryWatch, Sample};

fn targets(c: &TestCluster) -> Vec<(String, String)> {
    c.nodes()
        .iter()
        .map(|n| (n.name.clone(), format!("http://{}:8008/primary", n.address)))
        .collect()
}

/// 200 answers from `node` to requests sent in [from, until): the node's
/// postmaster was dead for the whole of each such request.
fn answers_while_dead(
    samples: &[Sample],
    node: &str,
    from: Instant,
    until: Instant,
) -> Vec<Sample> {
    samples
        .iter()
        .filter(|s| s.node == node && s.status == Some(200) && s.sent >= from && s.sent < until)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_answers_200_only_with_a_live_primary_and_the_key_proven_by_the_dcs() {
    let c = TestCluster::start("primary_answer", ClusterOptions::default()).await;
    let ttl = Duration::from_secs(5);
    let before = c
        .wait_for_roles(&["db1", "db2"], BOOTSTRAP_TIMEOUT, "bootstrap")
        .await;
    let old = before.primary.clone();
    let other = before.replicas[0].clone();

    // (a) The primary's pgboxd frozen for longer than the TTL (its
    // PostgreSQL keeps running), then thawed.
    let watch = PrimaryWatch::start(
        targets(&c),
        Duration::from_millis(50),
        Duration::from_secs(1),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = c.node(&old).pgboxd_pid().expect("pgboxd's pid");
    let frozen_at = Instant::now();
    kill(Pid::from_raw(pid), Signal::SIGSTOP).expect("SIGSTOP pgboxd");
    tokio::time::sleep(ttl + Duration::from_secs(4)).await;
    kill(Pid::from_raw(pid), Signal::SIGCONT).expect("SIGCONT pgboxd");
    let thawed_at = Instant::now();
    let after = c
        .wait_for_roles(
            &["db1", "db2"],
            REJOIN_TIMEOUT,
            "the cluster to settle after the freeze",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let samples = watch.stop().await;
    let overlaps_freeze = primary_watch::overlaps(&samples);
    println!(
        "freeze of {old}'s pgboxd: {}; {} overlapping 200 pairs; primary now {}",
        primary_watch::summary(&samples),
        overlaps_freeze.len(),
        after.primary
    );
    for o in overlaps_freeze.iter().take(5) {
        println!("  {}", primary_watch::describe_overlap(o, frozen_at));
    }
    assert_eq!(
        after.primary, other,
        "a pgboxd frozen longer than the TTL lost its lease: {other} should lead"
    );
    let promoted = samples
        .iter()
        .any(|s| s.node == other && s.status == Some(200) && s.sent > frozen_at);
    assert!(
        promoted,
        "{other} never answered 200 after the freeze: the test proves nothing"
    );
    let _ = thawed_at;

    // (b) The postmaster alone killed on the primary: until a new
    // postmaster runs, /primary must not answer 200 (a request already
    // under way when the kill came may still have seen it alive).
    let primary = after.primary.clone();
    let watch = PrimaryWatch::start(
        targets(&c),
        Duration::from_millis(50),
        Duration::from_secs(1),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let postmaster = c
        .node(&primary)
        .postmaster_pid()
        .expect("the postmaster's pid");
    let killed_at = Instant::now();
    kill(Pid::from_raw(postmaster), Signal::SIGKILL).expect("kill -9 the postmaster");
    // When a new postmaster appears (its pid file names a live process).
    let restarted_at = loop {
        if let Some(p) = c.node(&primary).postmaster_pid() {
            if p != postmaster && kill(Pid::from_raw(p), None).is_ok() {
                break Instant::now();
            }
        }
        assert!(
            killed_at.elapsed() < FAILOVER_TIMEOUT,
            "no new postmaster on {primary} within {FAILOVER_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    c.wait_for_primary(
        &primary,
        FAILOVER_TIMEOUT,
        "the primary back after the crash",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = watch.stop().await;
    let dead = answers_while_dead(&samples, &primary, killed_at, restarted_at);
    let overlaps_crash = primary_watch::overlaps(&samples);
    println!(
        "kill -9 of {primary}'s postmaster: new postmaster after {:.3}s; {}; {} answers of 200 while it was dead; {} overlapping 200 pairs",
        restarted_at.duration_since(killed_at).as_secs_f64(),
        primary_watch::summary(&samples),
        dead.len(),
        overlaps_crash.len()
    );
    for s in dead.iter().take(5) {
        println!(
            "  200 for a request at +{:.3}..+{:.3}s after the kill",
            s.sent.duration_since(killed_at).as_secs_f64(),
            s.answered.duration_since(killed_at).as_secs_f64()
        );
    }
    assert!(
        overlaps_freeze.is_empty(),
        "two nodes answered /primary 200 at once after the freeze: {}",
        primary_watch::describe_overlap(&overlaps_freeze[0], frozen_at)
    );
    assert!(
        dead.is_empty(),
        "{primary} answered /primary 200 {} times with its postmaster dead",
        dead.len()
    );
    assert!(
        overlaps_crash.is_empty(),
        "two nodes answered 200 at once around the crash"
    );
}
