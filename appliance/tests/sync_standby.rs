//! A synchronous standby that stops confirming must not stall the primary's
//! commits for longer than the documented bound (about `wal_sender_timeout`,
//! half a TTL, plus a loop), and must be taken back once it streams again.
//! Real etcd, PostgreSQL and pgboxd on loopback addresses.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use support::node::{ClusterOptions, TestCluster, FAILOVER_TIMEOUT, REJOIN_TIMEOUT};
use support::wait_until;
use support::workload::WorkloadOptions;

/// The postmaster and every process it forked (walreceiver, startup,
/// checkpointer, ...): SIGSTOP of all of them is a frozen PostgreSQL.
fn postgres_pids(postmaster: i32) -> BTreeSet<i32> {
    let mut pids = BTreeSet::from([postmaster]);
    let children =
        std::fs::read_to_string(format!("/proc/{postmaster}/task/{postmaster}/children"))
            .unwrap_or_default();
    pids.extend(
        children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok()),
    );
    pids
}

fn signal_all(pids: &BTreeSet<i32>, sig: Signal) {
    for &p in pids {
        let _ = kill(Pid::from_raw(p), sig);
    }
}

/// The member the primary's /cluster names as its synchronous standby.
async fn sync_standby(c: &TestCluster, primary: &str) -> Result<String, String> {
    let (_, cluster) = c.node(primary).api_get("/cluster").await?;
    cluster["members"]
        .as_array()
        .and_then(|ms| {
            ms.iter()
                .find(|m| m["role"] == "sync_standby" && m["state"] == "streaming")
        })
        .and_then(|m| m["name"].as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("no streaming synchronous standby yet: {cluster}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_synchronous_standby_stalls_commits_only_briefly() {
    // ttl 10 s as shipped: wal_sender_timeout is then 5 s.
    let c = TestCluster::start(
        "frozen_sync_standby",
        ClusterOptions {
            ttl: "10s",
            loop_wait: "1s",
            ..ClusterOptions::default()
        },
    )
    .await;
    // A commit waiting for the frozen standby is released when the primary
    // stops waiting for it: a statement timeout longer than that bound
    // measures the stall itself, not the client giving up and reconnecting.
    let (roles, workload) = c
        .bootstrap_under_load_with(WorkloadOptions {
            statement_timeout: Duration::from_secs(15),
            ..WorkloadOptions::default()
        })
        .await;
    let primary = roles.primary.clone();
    let standby = wait_until(
        Duration::from_secs(60),
        "a synchronous standby",
        async || sync_standby(&c, &primary).await,
    )
    .await;
    let postmaster = c
        .node(&standby)
        .postmaster_pid()
        .expect("the standby's postmaster pid");
    let pids = postgres_pids(postmaster);
    assert!(pids.len() > 2, "the standby's processes: {pids:?}");

    let frozen_at = Instant::now();
    signal_all(&pids, Signal::SIGSTOP);
    let freeze = Duration::from_secs(20);
    tokio::time::sleep(freeze).await;
    // Anything forked meanwhile (there should be nothing) is frozen too
    // only if it is a child; SIGCONT reaches the same set.
    signal_all(&pids, Signal::SIGCONT);
    let thawed_at = Instant::now();

    let record = workload.snapshot();
    let during = record.acks_between(frozen_at, thawed_at);
    // The first write sent after the freeze: one acknowledged just after
    // it was already on the standby before it froze.
    let first = record.first_ack_sent_after(frozen_at);
    let stall = first
        .map(|a| a.at.duration_since(frozen_at))
        .unwrap_or(freeze);
    println!(
        "frozen synchronous standby {standby}: first acknowledged write {:.2} s after the freeze; {} acknowledged during the {:.0} s freeze",
        stall.as_secs_f64(),
        during.len(),
        freeze.as_secs_f64()
    );
    // wal_sender_timeout (5 s) + a loop + a reload, with room for a loaded
    // machine; the whole freeze (20 s) is what it was before.
    assert!(
        stall < Duration::from_secs(12),
        "commits stalled {:.1} s while the synchronous standby was frozen ({} acknowledged during the freeze)\n{}",
        stall.as_secs_f64(),
        during.len(),
        c.describe().await
    );
    assert!(
        during.len() >= 10,
        "only {} writes acknowledged during the freeze",
        during.len()
    );

    // Thawed, it reconnects and becomes the synchronous standby again.
    wait_until(
        REJOIN_TIMEOUT,
        "the standby to be synchronous again",
        async || match sync_standby(&c, &primary).await {
            Ok(s) if s == standby => Ok(()),
            Ok(other) => Err(format!("the synchronous standby is {other}")),
            Err(e) => Err(e),
        },
    )
    .await;
    let taken_back = thawed_at.elapsed();
    println!(
        "{standby} synchronous again {:.1} s after the thaw",
        taken_back.as_secs_f64()
    );
    workload
        .wait_acks_after(
            Instant::now(),
            20,
            FAILOVER_TIMEOUT,
            "writes after the thaw",
        )
        .await;
    c.stop_and_check_no_loss(workload, &primary, &[("standby freeze", frozen_at)])
        .await;
}
