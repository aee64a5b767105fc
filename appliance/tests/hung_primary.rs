//! A primary whose pgboxd hangs (SIGSTOP) while its PostgreSQL goes on
//! serving, with no watchdog to reset the box: once its lease expires the
//! other node takes over, and must first fence the old PostgreSQL so that
//! it acknowledges nothing more, then receive the WAL it had written, so
//! that in asynchronous mode too no acknowledged write is lost. Real etcd,
//! PostgreSQL and pgboxd on loopback addresses.

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use support::node::{
    ClusterOptions, TestCluster, BOOTSTRAP_TIMEOUT, FAILOVER_TIMEOUT, REJOIN_TIMEOUT,
};
use support::wait_until;
use support::workload::{Workload, WorkloadOptions};

/// One commit on `name`'s PostgreSQL, as a client that may also turn
/// read-only off would try it: Ok when it was acknowledged within `bound`.
async fn try_commit(
    c: &TestCluster,
    name: &str,
    read_write: bool,
    bound: Duration,
) -> Result<(), String> {
    let client = c.app_target_on(name).connect().await?;
    if read_write {
        // On its own: a transaction's read-only state is set when it begins.
        client
            .batch_execute("SET default_transaction_read_only = off")
            .await
            .map_err(|e| support::workload::pg_error(&e))?;
    }
    let insert = client.batch_execute("INSERT INTO fence_probe VALUES (now())");
    match tokio::time::timeout(bound, insert).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(support::workload::pg_error(&e)),
        Err(_) => Err(format!("no answer within {bound:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_primary_is_fenced_before_the_other_node_promotes() {
    let c = TestCluster::start(
        "hung_primary",
        ClusterOptions {
            synchronous_mode: Some("off"),
            ..ClusterOptions::default()
        },
    )
    .await;
    let roles = c
        .wait_for_roles(&["db1", "db2"], BOOTSTRAP_TIMEOUT, "bootstrap")
        .await;
    let old = roles.primary.clone();
    let new = roles.replicas[0].clone();
    c.app_target_on(&old)
        .connect()
        .await
        .expect("app user on the primary")
        .batch_execute("CREATE TABLE fence_probe (at timestamptz)")
        .await
        .expect("create the probe table");
    // Straight to the primary's PostgreSQL, as a client without a router
    // would write: it goes on writing there whatever pgboxd does.
    let workload = Workload::start(c.app_target_on(&old), WorkloadOptions::default());
    workload
        .wait_acks_after(
            Instant::now(),
            200,
            Duration::from_secs(60),
            "200 acknowledged writes",
        )
        .await;

    let hung_at = Instant::now();
    c.node(&old).signal_pgboxd(Signal::SIGSTOP);
    c.wait_for_primary(&new, FAILOVER_TIMEOUT, "the other node to promote")
        .await;
    let promoted_at = Instant::now();
    // Keep the old supervisor hung a while longer: whatever its PostgreSQL
    // still acknowledges now would be lost.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let record = workload.snapshot();
    let last_ack = record
        .acks
        .last()
        .map(|a| a.at)
        .expect("acknowledged writes");
    let after_promotion = record.acks_after(promoted_at);
    let plain = try_commit(&c, &old, false, Duration::from_secs(3)).await;
    let read_write = try_commit(&c, &old, true, Duration::from_secs(3)).await;
    let in_recovery = c
        .app_target_on(&old)
        .connect()
        .await
        .expect("the old primary's PostgreSQL still answers")
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map(|r| r.get::<_, bool>(0));
    println!(
        "pgboxd of {old} hung: {new} primary {:.1} s later; {old}'s PostgreSQL acknowledged its last write {:.1} s after the hang \
         ({:+.1} s from the promotion seen), {after_promotion} after the promotion; pg_is_in_recovery() {in_recovery:?}; \
         a new commit there: {plain:?}; with read-only turned off: {read_write:?}",
        promoted_at.duration_since(hung_at).as_secs_f64(),
        last_ack.saturating_duration_since(hung_at).as_secs_f64(),
        last_ack.saturating_duration_since(hung_at).as_secs_f64()
            - promoted_at.duration_since(hung_at).as_secs_f64(),
    );

    c.node(&old).signal_pgboxd(Signal::SIGCONT);
    let thawed_at = Instant::now();
    let after = c
        .wait_for_roles(&["db1", "db2"], REJOIN_TIMEOUT, "the old primary to rejoin")
        .await;
    assert_eq!(after.primary, new, "{}", c.describe().await);
    println!(
        "{old} streaming from {new} {:.1} s after its pgboxd resumed",
        thawed_at.elapsed().as_secs_f64()
    );
    // The fence lived in postgresql.auto.conf: the rejoined server has none of it.
    let settings = c
        .app_target_on(&old)
        .connect()
        .await
        .expect("the rejoined replica")
        .query_one(
            "SELECT current_setting('synchronous_standby_names'), current_setting('default_transaction_read_only')",
            &[],
        )
        .await
        .expect("read settings");
    assert_eq!(
        (settings.get::<_, String>(0), settings.get::<_, String>(1)),
        (String::new(), "off".to_string()),
        "the fence outlived the rejoin"
    );
    wait_until(
        FAILOVER_TIMEOUT,
        "a commit on the new primary",
        async || try_commit(&c, &new, false, Duration::from_secs(5)).await,
    )
    .await;

    c.stop_and_check_no_loss(
        workload,
        &new,
        &[("pgboxd hung", hung_at), ("promotion seen", promoted_at)],
    )
    .await;
    assert_eq!(
        after_promotion, 0,
        "{old}'s PostgreSQL acknowledged writes after {new} was promoted"
    );
    assert!(
        last_ack < hung_at + Duration::from_secs(20),
        "{old}'s PostgreSQL acknowledged writes until {:.1} s after the hang",
        last_ack.duration_since(hung_at).as_secs_f64()
    );
    assert!(plain.is_err(), "{old} still takes a plain commit");
    assert!(
        read_write.is_err(),
        "{old} acknowledges a commit from a client that turns read-only off"
    );
    assert!(
        matches!(in_recovery, Ok(false)),
        "the fenced server stays up (as primary, unable to acknowledge): {in_recovery:?}"
    );
    let log = c.node(&new).log_since_start();
    assert!(log.contains("fenced"), "{new} never said it fenced {old}");
}
