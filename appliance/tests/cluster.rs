//! Process-level cluster tests: real etcd, real
//! PostgreSQL, real pgboxd, on 127.0.N.x loopback addresses.
//!
//! Run one at a time (see .config/nextest.toml): each starts several servers
//! and the build machines have two cores.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use support::checker::{self, check};
use support::etcd::EtcdCluster;
use support::node::{
    cluster_yaml, ClusterOptions, Secrets, TestCluster, BOOTSTRAP_TIMEOUT, FAILOVER_TIMEOUT,
    PGBOXCTL, PGBOXD, REJOIN_TIMEOUT,
};
use support::postgres::PlainPostgres;
use support::workload::{Ack, PgTarget, Workload, WorkloadOptions, WorkloadRecord};
use support::{run_captured, snapshot_tree, strong_secret, wait_until, Subnet, TestDir};

// ---------------------------------------------------------------------------
// The harness itself, against plain etcd and plain PostgreSQL

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_starts_and_serves_put_get() {
    let dir = TestDir::new("etcd_smoke");
    let subnet = Subnet::allocate();
    let members = [
        ("e1", subnet.ip(11)),
        ("e2", subnet.ip(12)),
        ("e3", subnet.ip(13)),
    ];
    let mut etcd = EtcdCluster::start(&dir, &members).await;

    // Written through one member, read linearizably through another.
    let mut c1 = etcd_client::Client::connect([etcd.members()[0].client_url()], None)
        .await
        .unwrap();
    let mut c3 = etcd_client::Client::connect([etcd.members()[2].client_url()], None)
        .await
        .unwrap();
    c1.put("/pgbox-test/k", "v1", None).await.unwrap();
    let got = c3.get("/pgbox-test/k", None).await.unwrap();
    assert_eq!(got.kvs().first().map(|kv| kv.value()), Some(&b"v1"[..]));

    // Two of three keep the quorum (after an election if e2 led).
    etcd.kill_member("e2");
    wait_until(
        Duration::from_secs(30),
        "a put and a get with e2 down",
        async || {
            c1.put("/pgbox-test/k", "v2", None)
                .await
                .map_err(|e| format!("put: {e}"))?;
            let got = c3
                .get("/pgbox-test/k", None)
                .await
                .map_err(|e| format!("get: {e}"))?;
            match got.kvs().first().map(|kv| kv.value().to_vec()) {
                Some(v) if v == b"v2" => Ok(()),
                other => Err(format!("read back {other:?}")),
            }
        },
    )
    .await;

    // And a restarted member catches up.
    etcd.start_member("e2");
    etcd.wait_healthy(Duration::from_secs(60)).await;
    let mut c2 = etcd_client::Client::connect([etcd.members()[1].client_url()], None)
        .await
        .unwrap();
    let got = c2.get("/pgbox-test/k", None).await.unwrap();
    assert_eq!(got.kvs().first().map(|kv| kv.value()), Some(&b"v2"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_and_checker_detect_lost_writes() {
    let dir = TestDir::new("workload_checker");
    let subnet = Subnet::allocate();
    let mut pg = PlainPostgres::init(&dir, "pg", subnet.ip(21), 5432);
    pg.start().await;
    let app = pg.create_app("app", &strong_secret("app")).await;
    // A host that refuses connections comes first, as a dead node does in
    // the cluster tests' host list.
    let target = PgTarget {
        hosts: vec![subnet.ip(22), subnet.ip(21)],
        ..app
    };

    let workload = Workload::start(target.clone(), WorkloadOptions::default());
    let begin = Instant::now();
    workload
        .wait_acks_after(
            begin,
            300,
            Duration::from_secs(60),
            "300 acknowledged writes before the crash",
        )
        .await;
    let crashed_at = pg.kill();
    pg.start().await;
    let restarted_at = Instant::now();
    workload
        .wait_acks_after(
            restarted_at,
            200,
            Duration::from_secs(60),
            "200 acknowledged writes after the crash",
        )
        .await;
    let record = workload.stop().await;
    println!("workload errors: {}", record.error_summary());
    assert!(
        !record.errors.is_empty(),
        "a server crash must show as workload errors"
    );
    assert!(
        record.sessions.len() >= 2,
        "the workload must have reconnected: {:?}",
        record.sessions
    );

    // Remove acknowledged writes behind the checker's back: first, last,
    // around the crash and one in the middle.
    let before: Vec<Ack> = record
        .acks
        .iter()
        .filter(|a| a.at <= crashed_at)
        .copied()
        .collect();
    let after = record
        .first_ack_sent_after(crashed_at)
        .expect("an ack after the crash");
    let mut deleted = vec![
        record.acks[0].id,
        before[before.len() / 2].id,
        before.last().unwrap().id,
        after.id,
        record.acks.last().unwrap().id,
    ];
    deleted.sort_unstable();
    deleted.dedup();
    let client = target
        .only(subnet.ip(21))
        .connect()
        .await
        .expect("connect for the check");
    let n = client
        .execute("DELETE FROM pgbox_writes WHERE id = ANY($1)", &[&deleted])
        .await
        .unwrap();
    assert_eq!(n as usize, deleted.len());
    // And one row nobody ever attempted.
    let phantom = record.last_attempted + 1000;
    client
        .execute("INSERT INTO pgbox_writes (id) VALUES ($1)", &[&phantom])
        .await
        .unwrap();

    let report = check(&record, &client, &[("crash", crashed_at)])
        .await
        .expect("checker");
    println!("{report}");
    assert_eq!(
        report.missing, deleted,
        "the checker must report exactly the deleted acknowledged ids"
    );
    assert_eq!(report.phantoms, vec![phantom]);
    assert!(report.duplicates.is_empty());
    assert_eq!(report.acknowledged, record.acks.len());
    assert_eq!(
        report.rows,
        report.acknowledged - report.missing.len()
            + report.unacknowledged_committed
            + report.phantoms.len(),
        "every row is acknowledged, an ambiguous commit, or a phantom"
    );
    // The first write sent after the crash can only have succeeded on the
    // restarted server.
    report.faults[0]
        .first_ack_after
        .expect("a write acknowledged after the crash");
    let first_after = record.first_ack_sent_after(crashed_at).unwrap();
    assert!(
        record
            .sessions
            .iter()
            .any(|s| s.at > crashed_at && s.at <= first_after.at),
        "the first write after the crash must come through a new session"
    );
}

/// The checker's arithmetic on a record it cannot get from a real table
/// (a duplicate needs a broken primary key).
#[test]
fn checker_counts_duplicates_phantoms_and_gaps() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let record = WorkloadRecord {
        started: t0,
        stopped: Some(at(1000)),
        acks: vec![
            Ack {
                id: 1,
                sent: at(5),
                at: at(10),
            },
            Ack {
                id: 2,
                sent: at(15),
                at: at(20),
            },
            // Sent before the fault, acknowledged after it.
            Ack {
                id: 4,
                sent: at(90),
                at: at(520),
            },
            Ack {
                id: 5,
                sent: at(525),
                at: at(530),
            },
        ],
        last_attempted: 6,
        errors: vec![],
        sessions: vec![],
    };
    let present = [1, 3, 4, 4, 5, 6, 9];
    let r = checker::compare(&record, &present, &[("fault", at(100))]);
    assert_eq!(r.missing, vec![2]);
    assert_eq!(r.duplicates, vec![(4, 2)]);
    assert_eq!(r.phantoms, vec![9]);
    assert_eq!(
        r.unacknowledged_committed, 2,
        "3 and 6 were attempted, not acknowledged, yet committed"
    );
    let gap = r.longest_gap.clone().unwrap();
    assert_eq!((gap.after_id, gap.length), (2, Duration::from_millis(500)));
    assert_eq!(
        r.faults[0].first_ack_after,
        Some(Duration::from_millis(430)),
        "counted to id 5, the first write sent after the fault"
    );
    assert!(!r.is_consistent());
    println!("{r}");
}

// ---------------------------------------------------------------------------
// First-boot file validation through the real binaries

#[test]
fn bad_first_boot_files_are_rejected_and_touch_nothing() {
    let dir = TestDir::new("bad_first_boot_files");
    let subnet = Subnet::allocate();
    let etcd: Vec<(String, _)> = (1..=3)
        .map(|i| (format!("e{i}"), subnet.ip(10 + i)))
        .collect();
    let pg: Vec<(String, _)> = (1..=2)
        .map(|i| (format!("db{i}"), subnet.ip(20 + i)))
        .collect();
    let secrets = Secrets::fresh();
    let good = cluster_yaml(
        "badfiles",
        &etcd,
        &pg,
        None,
        &secrets,
        &ClusterOptions::default(),
    );
    let ha_line = "ha: {ttl: 5s, loop_wait: 500ms, watchdog: off}";
    assert!(good.contains(ha_line));

    struct Case {
        label: &'static str,
        yaml: String,
        node_arg: Option<&'static str>,
        /// pgboxctl sees the same file (not true of a bad --node argument).
        ctl_too: bool,
        /// Each inner list: at least one of its strings must appear.
        expect: Vec<Vec<&'static str>>,
    }
    let mut lines: Vec<&str> = good.lines().collect();
    // Line 2 of the file, indented under a finished mapping: a YAML syntax error.
    lines.insert(1, "  oops: 1");
    let malformed = lines.join("\n") + "\n";
    let cases = vec![
        Case {
            label: "malformed",
            yaml: malformed,
            node_arg: Some("db1"),
            ctl_too: true,
            expect: vec![vec!["line 2", ":2:"]],
        },
        Case {
            label: "wrong-type",
            yaml: good.replace(
                ha_line,
                "ha: {ttl: 5s, loop_wait: 500ms, maximum_lag_on_failover: lots}",
            ),
            node_arg: Some("db1"),
            ctl_too: true,
            expect: vec![vec!["ha.maximum_lag_on_failover"]],
        },
        Case {
            label: "bad-address",
            yaml: good.replace(
                &format!("address: {}", subnet.ip(21)),
                "address: not-an-address",
            ),
            node_arg: Some("db2"),
            ctl_too: true,
            expect: vec![vec!["nodes[3].address"]],
        },
        Case {
            label: "unknown-key",
            yaml: good.replace(ha_line, "ha: {ttl: 5s, loop_wait: 500ms, tll: 5s}"),
            node_arg: Some("db1"),
            ctl_too: true,
            expect: vec![vec!["ha.tll"], vec!["unknown field", "unknown key"]],
        },
        Case {
            label: "duplicate-name",
            yaml: good.replace("{name: e2,", "{name: e1,"),
            node_arg: Some("db1"),
            ctl_too: true,
            expect: vec![vec!["nodes[1].name"]],
        },
        Case {
            label: "node-in-file-not-in-cluster",
            yaml: good.replacen("nodes:\n", "node: db9\nnodes:\n", 1),
            node_arg: None,
            ctl_too: true,
            expect: vec![vec!["db9"]],
        },
        Case {
            label: "node-arg-not-in-cluster",
            yaml: good.clone(),
            node_arg: Some("db9"),
            ctl_too: false,
            expect: vec![vec!["db9"]],
        },
    ];

    let good_path = dir.join("good.yaml");
    fs::write(&good_path, &good).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let file = dir.join(format!("{}.yaml", case.label));
        fs::write(&file, &case.yaml).unwrap();
        // A data directory that already holds something of value.
        let data = dir.join(format!("{}-data", case.label));
        support::mkdir_mode(&data, 0o700);
        fs::write(data.join("marker"), b"precious data, must survive\n").unwrap();
        let before = snapshot_tree(&data);

        let mut cmd = Command::new(PGBOXD);
        cmd.arg("--config").arg(&file).arg("--data-dir").arg(&data);
        if let Some(node) = case.node_arg {
            cmd.arg("--node").arg(node);
        }
        let run = run_captured(
            &format!("pgboxd-{}", case.label),
            &mut cmd,
            dir.path(),
            Duration::from_secs(30),
        );
        let mut problems = Vec::new();
        if run.status.success() {
            problems.push(format!("pgboxd exited with {}", run.status));
        }
        problems.extend(
            missing_mentions(&run.stderr, &case.expect).map(|m| format!("pgboxd stderr lacks {m}")),
        );
        let after = snapshot_tree(&data);
        if after != before {
            problems.push(format!(
                "data dir changed: before {before:?}, after {after:?}"
            ));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "[{}] {}\n    pgboxd stderr: {}",
                case.label,
                problems.join("; "),
                run.stderr.trim()
            ));
        }

        if case.ctl_too {
            let mut cmd = Command::new(PGBOXCTL);
            cmd.arg("config").arg("check").arg(&file);
            let run = run_captured(
                &format!("pgboxctl-{}", case.label),
                &mut cmd,
                dir.path(),
                Duration::from_secs(30),
            );
            let mut problems = Vec::new();
            if run.status.success() {
                problems.push(format!("pgboxctl config check exited with {}", run.status));
            }
            problems.extend(
                missing_mentions(&run.output(), &case.expect)
                    .map(|m| format!("pgboxctl output lacks {m}")),
            );
            if !problems.is_empty() {
                failures.push(format!(
                    "[{} / pgboxctl] {}\n    output: {}",
                    case.label,
                    problems.join("; "),
                    run.output().trim()
                ));
            }
        }
    }

    let mut cmd = Command::new(PGBOXCTL);
    cmd.arg("config").arg("check").arg(&good_path);
    let run = run_captured(
        "pgboxctl-good",
        &mut cmd,
        dir.path(),
        Duration::from_secs(30),
    );
    if !run.status.success() {
        failures.push(format!(
            "[good file / pgboxctl] exited with {}: {}",
            run.status,
            run.output().trim()
        ));
    }
    if run.stderr.contains("warning") {
        failures.push(format!(
            "[good file / pgboxctl] warns: {}",
            run.stderr.trim()
        ));
    }

    // Valid but risky: accepted (exit 0), with a warning at its line.
    let risky = good.replace(
        ha_line,
        "ha: {ttl: 5s, loop_wait: 500ms, watchdog: off, synchronous_mode: off}",
    );
    let ha_lineno = risky
        .lines()
        .position(|l| l.starts_with("ha:"))
        .map(|i| i + 1)
        .unwrap();
    let risky_path = dir.join("risky.yaml");
    fs::write(&risky_path, &risky).unwrap();
    let mut cmd = Command::new(PGBOXCTL);
    cmd.arg("config").arg("check").arg(&risky_path);
    let run = run_captured(
        "pgboxctl-risky",
        &mut cmd,
        dir.path(),
        Duration::from_secs(30),
    );
    let warning = format!("risky.yaml:{ha_lineno}:");
    if !run.status.success()
        || !run.stderr.contains(&warning)
        || !run.stderr.contains("warning: ha.watchdog: is off")
    {
        failures.push(format!(
            "[watchdog off, asynchronous / pgboxctl] expected exit 0 and a warning at {warning}, got {}: {}",
            run.status,
            run.output().trim()
        ));
    }

    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Each group of `expect` that has none of its strings in `text` (case-insensitive).
fn missing_mentions<'a>(
    text: &'a str,
    expect: &'a [Vec<&'static str>],
) -> impl Iterator<Item = String> + 'a {
    let lower = text.to_lowercase();
    expect
        .iter()
        .filter(move |any| !any.iter().any(|s| lower.contains(&s.to_lowercase())))
        .map(|any| {
            if any.len() == 1 {
                format!("{:?}", any[0])
            } else {
                format!("any of {any:?}")
            }
        })
}

// ---------------------------------------------------------------------------
// pgboxd clusters

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_elects_one_primary_and_one_streaming_replica() {
    // From a data directory template, as the image does: the other cluster
    // tests cover the initdb path.
    let c = TestCluster::start(
        "bootstrap",
        ClusterOptions {
            pgdata_template: true,
            ..Default::default()
        },
    )
    .await;
    let started = Instant::now();
    let roles = c
        .wait_for_roles(
            &["db1", "db2"],
            BOOTSTRAP_TIMEOUT,
            "bootstrap: one primary and one streaming replica",
        )
        .await;
    println!(
        "bootstrap: {} primary, {:?} streaming, timeline {}, after {:.1?}",
        roles.primary,
        roles.replicas,
        roles.timeline,
        started.elapsed()
    );
    let primary = c.node(&roles.primary);
    let replica = c.node(&roles.replicas[0]);
    let log = std::fs::read_to_string(primary.log_path()).unwrap_or_default();
    assert!(
        log.contains("copied from the image's template") && !log.contains("initdb: "),
        "the primary did not bootstrap from the template:\n{log}"
    );

    assert_eq!(
        primary.api_status("/primary").await,
        Some(200),
        "{}",
        c.describe().await
    );
    assert_eq!(
        primary.api_status("/replica").await,
        Some(503),
        "{}",
        c.describe().await
    );
    assert_eq!(
        replica.api_status("/primary").await,
        Some(503),
        "{}",
        c.describe().await
    );
    assert_eq!(
        replica.api_status("/replica").await,
        Some(200),
        "{}",
        c.describe().await
    );
    let p = replica.patroni().await.expect("/patroni on the replica");
    assert_eq!(p["replication_state"], "streaming", "{p}");
    // What `pgboxctl status` shows, from the real health query: a
    // streaming replica has a lag in bytes, and a lag in seconds as soon as
    // it has replayed all it received (an idle cluster: zero).
    let view = &p["pgbox"];
    assert_eq!(view["dcs_reachable"], true, "{p}");
    assert!(view["lag_bytes"].is_u64(), "{p}");
    assert!(view["last_reason"].is_string(), "{p}");
    wait_until(
        Duration::from_secs(10),
        "the replica to report its replay lag in seconds",
        async || {
            let p = replica.patroni().await?;
            match p["pgbox"]["replay_lag_seconds"].as_f64() {
                Some(lag) if lag < 5.0 => Ok(()),
                _ => Err(format!("{p}")),
            }
        },
    )
    .await;

    wait_until(
        Duration::from_secs(30),
        "/cluster to list db1 and db2",
        async || {
            let (status, json) = primary.api_get("/cluster").await?;
            let mut names: Vec<&str> = json["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["name"].as_str())
                .collect();
            names.sort_unstable();
            if status == 200 && names == ["db1", "db2"] {
                Ok(())
            } else {
                Err(format!("/cluster {status}: {json}"))
            }
        },
    )
    .await;

    // The app user and database exist and replication carries their data.
    let on_primary = c
        .app_target_on(&roles.primary)
        .connect()
        .await
        .expect("app user on the primary");
    let note = format!("written on {} at {}", roles.primary, support::timestamp());
    on_primary
        .batch_execute("CREATE TABLE IF NOT EXISTS bootstrap_check (note text NOT NULL)")
        .await
        .expect("create table as the app user");
    on_primary
        .execute("INSERT INTO bootstrap_check VALUES ($1)", &[&note])
        .await
        .expect("insert on the primary");
    let on_replica = c
        .app_target_on(&roles.replicas[0])
        .connect()
        .await
        .expect("app user on the replica");
    wait_until(
        Duration::from_secs(30),
        "the row written on the primary to appear on the replica",
        async || {
            let row = on_replica
                .query_one(
                    "SELECT count(*) FROM bootstrap_check WHERE note = $1",
                    &[&note],
                )
                .await
                .map_err(|e| support::error_chain(&e))?;
            if row.get::<_, i64>(0) == 1 {
                Ok(())
            } else {
                Err("not replicated yet".into())
            }
        },
    )
    .await;
    let write_on_replica = on_replica
        .execute("INSERT INTO bootstrap_check VALUES ('nope')", &[])
        .await;
    assert!(write_on_replica.is_err(), "the replica accepted a write");
}

/// SIGTERM is a clean stop: pgboxd stops its PostgreSQL and exits, and
/// nothing of the node keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_stop_leaves_no_process_behind() {
    let mut c = TestCluster::start("clean_stop", ClusterOptions::default()).await;
    let roles = c
        .wait_for_roles(&["db1", "db2"], BOOTSTRAP_TIMEOUT, "bootstrap")
        .await;
    // `stop` itself fails the test if pgboxd outlives the bound or leaves
    // any process of its group behind.
    for name in [roles.replicas[0].clone(), roles.primary.clone()] {
        let status = c.node_mut(&name).stop().await;
        assert!(
            status.success(),
            "pgboxd {name} exited with {status} after SIGTERM"
        );
        assert!(
            c.node(&name).api_status("/patroni").await.is_none(),
            "{name}'s API still answers after stop"
        );
    }
}

/// Power loss of the primary under a write workload, then the old primary
/// comes back: failover, rejoin through pg_rewind, and a check of every
/// acknowledged write. One test, because rejoin needs a failover first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_and_rejoin() {
    let mut c = TestCluster::start("failover_and_rejoin", ClusterOptions::default()).await;
    let before = c
        .wait_for_roles(&["db1", "db2"], BOOTSTRAP_TIMEOUT, "bootstrap")
        .await;
    let old = before.primary.clone();
    let new = before.replicas[0].clone();
    println!(
        "bootstrap: {old} primary on timeline {}, {new} streaming",
        before.timeline
    );

    let workload = Workload::start(c.app_target(), WorkloadOptions::default());
    workload
        .wait_acks_after(
            Instant::now(),
            200,
            Duration::from_secs(60),
            "200 acknowledged writes before the fault",
        )
        .await;

    // A member that promoted and lost the DCS before it recorded the switch
    // leaves only its reservation of the timeline numbers behind: the next
    // promotion must open a number past it (placeholder history files in
    // pg_wal), and the old primary, rewinding from timeline 1, must fetch
    // those placeholders from the new primary and follow.
    let reserved = before.timeline + 2;
    c.etcd
        .client()
        .await
        .put(
            format!("/service/{}/timeline", c.cluster_name),
            format!("{{\"reserved\":{reserved}}}"),
            None,
        )
        .await
        .expect("write the timeline reservation");

    // -- failover after power loss of the primary
    let killed_at = c.node_mut(&old).kill();
    c.wait_for_primary(
        &new,
        FAILOVER_TIMEOUT,
        &format!("{new} to be promoted after {old} lost power"),
    )
    .await;
    let promoted_seen = killed_at.elapsed();
    workload
        .wait_acks_after(
            killed_at,
            20,
            FAILOVER_TIMEOUT,
            &format!("writes to be acknowledged again after {old} lost power"),
        )
        .await;
    let first = workload
        .snapshot()
        .first_ack_sent_after(killed_at)
        .expect("a write sent after the kill was acknowledged");
    let p = c
        .node(&new)
        .patroni()
        .await
        .expect("/patroni on the new primary");
    let timeline = p["timeline"]
        .as_i64()
        .unwrap_or_else(|| panic!("no timeline in /patroni: {p}"));
    assert_eq!(
        timeline,
        reserved + 1,
        "the promotion opens one past the reserved timeline {reserved} ({} before)",
        before.timeline
    );
    let sessions = workload.snapshot().sessions;
    let writes_after = sessions
        .iter()
        .filter(|s| s.at > killed_at)
        .map(|s| s.server.clone())
        .collect::<Vec<_>>();
    assert!(
        writes_after
            .iter()
            .all(|s| s.starts_with(&c.node(&new).address.to_string())),
        "after the kill, writes went to {writes_after:?}, not only to {new}"
    );
    println!(
        "failover: kill {old} → {new} /primary 200 seen after {:.1}s; kill → first acknowledged write {:.3}s (id {}); timeline {} → {timeline}",
        promoted_seen.as_secs_f64(),
        first.at.duration_since(killed_at).as_secs_f64(),
        first.id,
        before.timeline
    );

    // -- the old primary comes back
    let restarted_at = Instant::now();
    // Sent after the kill: only the new primary can have acknowledged them.
    let acked_while_down: Vec<i64> = workload
        .snapshot()
        .acks
        .iter()
        .filter(|a| a.sent > killed_at && a.at <= restarted_at)
        .map(|a| a.id)
        .collect();
    c.node_mut(&old).start();
    let after = wait_until(
        REJOIN_TIMEOUT,
        &format!("{old} to rejoin as a streaming replica of {new}"),
        async || {
            // The old primary must never come back writable next to the new one.
            let primaries = c.current_primaries().await;
            if primaries.len() > 1 {
                panic!(
                    "two writable primaries at once: {primaries:?}; {}",
                    c.describe().await
                );
            }
            c.observe_roles(&["db1", "db2"]).await.map_err(|state| {
                // What pgboxd said about rewinding is usually the whole story.
                let log = c.node(&old).log_since_start();
                let rewind: Vec<&str> = log
                    .lines()
                    .filter(|l| l.to_lowercase().contains("rewind"))
                    .collect();
                format!(
                    "{state}; {old}'s last rewind lines:\n  {}",
                    rewind[rewind.len().saturating_sub(6)..].join("\n  ")
                )
            })
        },
    )
    .await;
    println!(
        "rejoin: {old} streaming from {new} {:.1}s after restart",
        restarted_at.elapsed().as_secs_f64()
    );
    assert_eq!(
        after.primary, new,
        "the primary changed again during rejoin"
    );
    assert_eq!(after.replicas, vec![old.clone()]);
    assert_eq!(
        after.timeline, timeline,
        "{old} must follow {new} on timeline {timeline}"
    );
    // Where an election reads what the rewound node's history holds of an
    // older timeline (`Postgres::health`): the history file of its
    // timeline, which pg_rewind copied, names the timeline it left.
    let history_file = c
        .node(&old)
        .data_dir()
        .join(format!("postgres/pg_wal/{timeline:08X}.history"));
    let history = fs::read_to_string(&history_file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", history_file.display()));
    let forks = pgbox::postgres::parse_history(&history);
    assert!(
        forks
            .iter()
            .any(|f| f.timeline as i64 == before.timeline && f.switch_lsn > 0),
        "{} names no fork off timeline {}: {forks:?}\n{history}",
        history_file.display(),
        before.timeline
    );
    let log = c.node(&old).log_since_start();
    assert!(
        log.to_lowercase().contains("pg_rewind"),
        "{old} rejoined without a logged pg_rewind; its log since restart:\n{}",
        support::node::tail_lines(&log, 40)
    );

    // What the new primary acknowledged while the old one was down is there.
    let on_old = c
        .app_target_on(&old)
        .connect()
        .await
        .expect("app user on the rejoined node");
    wait_until(
        Duration::from_secs(30),
        &format!("writes made while {old} was down to be visible on it"),
        async || {
            let row = on_old
                .query_one(
                    "SELECT count(*) FROM pgbox_writes WHERE id = ANY($1)",
                    &[&acked_while_down],
                )
                .await
                .map_err(|e| support::error_chain(&e))?;
            let n = row.get::<_, i64>(0) as usize;
            if n == acked_while_down.len() {
                Ok(())
            } else {
                Err(format!("{n} of {} visible", acked_while_down.len()))
            }
        },
    )
    .await;

    // -- the workload ran through everything; check it
    workload
        .wait_acks_after(
            Instant::now(),
            50,
            Duration::from_secs(60),
            "writes to continue after the rejoin",
        )
        .await;
    let record = workload.stop().await;
    println!("workload errors: {}", record.error_summary());
    let final_roles = c
        .wait_for_roles(
            &["db1", "db2"],
            Duration::from_secs(30),
            "the cluster to stay settled",
        )
        .await;
    let client = c
        .app_target_on(&final_roles.primary)
        .connect()
        .await
        .expect("app user on the final primary");
    let kill_label = format!("kill {old}");
    let restart_label = format!("restart {old}");
    let report = check(
        &record,
        &client,
        &[(&kill_label, killed_at), (&restart_label, restarted_at)],
    )
    .await
    .expect("checker");
    println!("{report}");
    println!(
        "lost acknowledged writes: {} (synchronous mode, the default)",
        report.missing.len()
    );
    assert!(report.phantoms.is_empty(), "rows nobody wrote: {report}");
    assert!(report.duplicates.is_empty(), "duplicate rows: {report}");
    // Synchronous mode is the default: only the standby that confirmed every
    // commit may be promoted, so no acknowledged write may be missing.
    assert!(
        report.missing.is_empty(),
        "acknowledged writes lost in synchronous mode: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_loses_nothing_and_the_old_primary_follows_without_rewind() {
    let c = TestCluster::start("switchover", ClusterOptions::default()).await;
    let before = c
        .wait_for_roles(&["db1", "db2"], BOOTSTRAP_TIMEOUT, "bootstrap")
        .await;
    let (old, new) = (before.primary.clone(), before.replicas[0].clone());
    let workload = Workload::start(c.app_target(), WorkloadOptions::default());
    workload
        .wait_acks_after(
            Instant::now(),
            200,
            Duration::from_secs(60),
            "200 acknowledged writes",
        )
        .await;

    // Write endpoints need the API password.
    let url = format!("http://{}:8008/switchover", c.node(&old).address);
    let body = format!("{{\"leader\":\"{old}\",\"candidate\":\"{new}\"}}");
    let anonymous = reqwest::Client::new()
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .expect("POST /switchover");
    assert_eq!(
        anonymous.status().as_u16(),
        401,
        "a switchover without credentials must be refused"
    );

    // A switchover scheduled an hour ahead, then removed before it fires:
    // `pgboxctl flush switchover` (DELETE /switchover), then nothing left.
    let pgboxctl = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgboxctl"));
        cmd.args(args).arg("--config").arg(&c.config_path);
        async move {
            let out = cmd.output().await.expect("running pgboxctl");
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), said)
        }
    };
    let later =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(3600))
            .to_string();
    let (ok, said) = pgboxctl(&["switchover", "--candidate", &new, "--scheduled", &later]).await;
    assert!(ok, "scheduling a switchover: {said}");
    let failover_key = format!("/service/{}/failover", c.cluster_name);
    let mut etcd = c.etcd.client().await;
    let kept = etcd.get(failover_key.as_str(), None).await.unwrap();
    assert_eq!(kept.kvs().len(), 1, "the scheduled request is in etcd");
    let (ok, said) = pgboxctl(&["flush", "switchover"]).await;
    assert!(
        ok && said.contains("scheduled switchover deleted"),
        "{said}"
    );
    let gone = etcd.get(failover_key.as_str(), None).await.unwrap();
    assert!(gone.kvs().is_empty(), "the request is gone after the flush");
    let (ok, said) = pgboxctl(&["flush", "switchover"]).await;
    assert!(
        !ok && said.contains("404") && said.contains("no switchover is scheduled"),
        "{said}"
    );

    let started = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgboxctl"))
        .args(["switchover", "--config"])
        .arg(&c.config_path)
        .args(["--candidate", &new])
        .output()
        .await
        .expect("running pgboxctl switchover");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "pgboxctl switchover failed: {said}\n{}",
        c.describe().await
    );
    assert!(said.contains("Successfully switched over"), "{said}");

    let after = c
        .wait_for_roles(
            &["db1", "db2"],
            FAILOVER_TIMEOUT,
            "the old primary to follow the new one",
        )
        .await;
    assert_eq!(after.primary, new);
    assert_eq!(after.replicas, vec![old.clone()]);
    assert!(after.timeline > before.timeline);
    let log = c.node(&old).log_since_start();
    assert!(
        !log.contains("running pg_rewind"),
        "a clean switchover must not need pg_rewind; {old}'s log:\n{}",
        support::node::tail_lines(&log, 40)
    );

    workload
        .wait_acks_after(
            Instant::now(),
            50,
            Duration::from_secs(60),
            "writes after the switchover",
        )
        .await;

    // And straight back. Until the old primary is recorded as the
    // synchronous standby the request is refused with a reason; it is
    // accepted within a few loops.
    let back_started = Instant::now();
    let mut refusals = Vec::new();
    loop {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgboxctl"))
            .args(["switchover", "--config"])
            .arg(&c.config_path)
            .args(["--candidate", &old])
            .output()
            .await
            .expect("running pgboxctl switchover");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            break;
        }
        assert!(!said.trim().is_empty(), "a refused switchover must say why");
        refusals.push(said);
        assert!(
            back_started.elapsed() < Duration::from_secs(60),
            "the switchover back was refused for 60 s: {refusals:?}\n{}",
            c.describe().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "switchover back accepted after {} refusal(s) in {:.1}s: {:?}",
        refusals.len(),
        back_started.elapsed().as_secs_f64(),
        refusals.first()
    );
    let back = c
        .wait_for_roles(&["db1", "db2"], FAILOVER_TIMEOUT, "the switchover back")
        .await;
    assert_eq!(back.primary, old);
    assert!(back.timeline > after.timeline);
    let log = c.node(&new).log_since_start();
    assert!(
        !log.contains("running pg_rewind"),
        "a clean switchover back must not need pg_rewind; {new}'s log:\n{}",
        support::node::tail_lines(&log, 40)
    );
    workload
        .wait_acks_after(
            Instant::now(),
            50,
            Duration::from_secs(60),
            "writes after the switchover back",
        )
        .await;

    let record = workload.stop().await;
    let client = c
        .app_target_on(&back.primary)
        .connect()
        .await
        .expect("app user on the primary");
    let report = check(
        &record,
        &client,
        &[("switchover", started), ("switchover back", back_started)],
    )
    .await
    .expect("checker");
    println!("{report}");
    let first = record
        .first_ack_sent_after(started)
        .expect("a write sent after the switchover began was acknowledged");
    println!(
        "switchover: {old} → {new}; first acknowledged write {:.3}s after the request",
        first.at.duration_since(started).as_secs_f64()
    );
    assert!(
        report.missing.is_empty(),
        "acknowledged writes lost in a switchover: {report}"
    );
    assert!(
        report.phantoms.is_empty() && report.duplicates.is_empty(),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crash_on_the_primary_restarts_in_place() {
    let c = TestCluster::start("pg_crash", ClusterOptions::default()).await;
    let (before, workload) = c.bootstrap_under_load().await;
    let primary = before.primary.clone();

    let pid = c
        .node(&primary)
        .postmaster_pid()
        .expect("the primary's postmaster pid");
    let crashed_at = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 postmaster");
    workload
        .wait_acks_after(
            crashed_at,
            20,
            FAILOVER_TIMEOUT,
            "writes after the postmaster crash",
        )
        .await;
    let after = c
        .wait_for_roles(
            &["db1", "db2"],
            FAILOVER_TIMEOUT,
            "the cluster to settle after the crash",
        )
        .await;
    // The lease was still held: restart in place, no failover, no new timeline.
    assert_eq!(
        after.primary, primary,
        "a postmaster crash under a held lease must not fail over"
    );
    assert_eq!(
        after.timeline, before.timeline,
        "crash recovery in place keeps the timeline"
    );
    let (record, _) = c
        .stop_and_check_no_loss(workload, &primary, &[("postmaster crash", crashed_at)])
        .await;
    let first = record
        .first_ack_sent_after(crashed_at)
        .expect("a write acknowledged after the crash");
    println!(
        "postgres crash: first acknowledged write {:.3}s after kill -9 of the postmaster",
        first.at.duration_since(crashed_at).as_secs_f64()
    );
}

/// Starts e1 and e2 again (after a test took the quorum away) and waits
/// until the cluster settles and takes writes: when, and the roles then.
async fn restore_quorum(
    c: &mut TestCluster,
    workload: &Workload,
) -> (Instant, support::node::Roles) {
    let restored_at = Instant::now();
    c.etcd.start_member("e1");
    c.etcd.start_member("e2");
    let after = c
        .wait_for_roles(
            &["db1", "db2"],
            Duration::from_secs(120),
            "the cluster to settle with the DCS back",
        )
        .await;
    workload
        .wait_acks_after(
            restored_at,
            20,
            Duration::from_secs(60),
            "writes after the DCS came back",
        )
        .await;
    (restored_at, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_dcs_quorum_fences_the_primary_and_the_cluster_recovers() {
    let mut c = TestCluster::start("dcs_loss", ClusterOptions::default()).await;
    let (before, workload) = c.bootstrap_under_load().await;
    let primary = before.primary.clone();

    // Two of three etcd members gone: no quorum, no lease can be renewed.
    let lost_at = c.etcd.kill_member("e1");
    c.etcd.kill_member("e2");
    // The primary must stop accepting writes before its lease can expire.
    // Its last renewal can come up to one etcd election timeout (1 s here)
    // after the loss: a leader that lost its followers still renews leases
    // until it notices. The lease then lives ttl (5 s). A write sent later
    // and still acknowledged could have gone to a replaced primary.
    let ttl = Duration::from_secs(5) + Duration::from_secs(1);
    wait_until(
        Duration::from_secs(30),
        "the primary to stop accepting writes without the DCS",
        async || {
            let primaries = c.current_primaries().await;
            if primaries.is_empty() && lost_at.elapsed() > ttl + Duration::from_secs(2) {
                Ok(())
            } else {
                Err(format!(
                    "/primary 200 on {primaries:?}, {:.1}s after the loss",
                    lost_at.elapsed().as_secs_f64()
                ))
            }
        },
    )
    .await;
    // Stay without quorum a while: nobody may be promoted meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        c.current_primaries().await.is_empty(),
        "a primary appeared without a DCS quorum"
    );
    let acks = workload.snapshot().acks;
    let last_ack = acks
        .iter()
        .filter(|a| a.sent > lost_at)
        .map(|a| a.sent)
        .max();
    let fenced_after = last_ack.map_or(Duration::ZERO, |t| t.duration_since(lost_at));
    let late: Vec<i64> = acks
        .iter()
        .filter(|a| a.sent > lost_at + ttl)
        .map(|a| a.id)
        .collect();
    assert!(
        late.is_empty(),
        "writes acknowledged after the lease could have expired: {late:?}"
    );

    let (restored_at, after) = restore_quorum(&mut c, &workload).await;
    println!(
        "dcs loss: the last write {primary} acknowledged was sent {:.2}s after the loss (lease ttl 5 s + etcd election 1 s); after recovery {} leads",
        fenced_after.as_secs_f64(),
        after.primary
    );
    c.stop_and_check_no_loss(
        workload,
        &after.primary,
        &[("quorum lost", lost_at), ("quorum back", restored_at)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_fail_over_to_the_synchronous_standby_and_the_third_follows() {
    let all = ["db1", "db2", "db3"];
    let mut c = TestCluster::start(
        "three_nodes",
        ClusterOptions {
            pg_nodes: 3,
            ..ClusterOptions::default()
        },
    )
    .await;
    let before = c
        .wait_for_roles(&all, BOOTSTRAP_TIMEOUT, "bootstrap of three nodes")
        .await;
    let old = before.primary.clone();
    let cluster = c.node(&old).api_get("/cluster").await.expect("/cluster").1;
    let sync = cluster["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["role"] == "sync_standby"))
        .and_then(|m| m["name"].as_str())
        .expect("a synchronous standby")
        .to_string();
    let other = all
        .iter()
        .copied()
        .find(|n| *n != old && *n != sync)
        .unwrap();
    patroni_replica_endpoints(&c, &old, &sync, other).await;
    let workload = Workload::start(c.app_target(), WorkloadOptions::default());
    workload
        .wait_acks_after(
            Instant::now(),
            200,
            Duration::from_secs(60),
            "200 acknowledged writes",
        )
        .await;

    let killed_at = c.node_mut(&old).kill();
    let survivors: Vec<&str> = all.iter().copied().filter(|n| *n != old).collect();
    let after = c
        .wait_for_roles(
            &survivors,
            FAILOVER_TIMEOUT,
            "the survivors to settle on a new primary",
        )
        .await;
    assert_eq!(
        after.primary, sync,
        "only the synchronous standby may be promoted"
    );
    workload
        .wait_acks_after(killed_at, 20, FAILOVER_TIMEOUT, "writes after the failover")
        .await;

    c.node_mut(&old).start();
    let healed = c
        .wait_for_roles(&all, REJOIN_TIMEOUT, "the old primary to rejoin")
        .await;
    assert_eq!(healed.primary, sync);
    println!("three nodes: {old} killed, sync standby {sync} promoted, all three streaming again");
    c.stop_and_check_no_loss(workload, &healed.primary, &[("kill", killed_at)])
        .await;
}

/// What Patroni's HAProxy templates and exporters ask beyond `/primary`,
/// answered from real PostgreSQL: `/sync` and `/async` tell the synchronous
/// standby from the other one, the primary lists both replication
/// connections, and a replica reports its replay timestamp.
async fn patroni_replica_endpoints(c: &TestCluster, primary: &str, sync: &str, other: &str) {
    wait_until(Duration::from_secs(30), "/sync and /async", async || {
        let codes = [
            (sync, "/sync", 200),
            (sync, "/read-only-sync", 200),
            (sync, "/async", 503),
            (other, "/sync", 503),
            (other, "/async", 200),
            (other, "/read-only-sync", 503),
            (primary, "/read-only-sync", 200),
            (primary, "/sync", 503),
            (other, "/replica?replication_state=streaming", 200),
            (other, "/replica?tag_nofailover=true", 503),
        ];
        for (node, path, want) in codes {
            let got = c.node(node).api_status(path).await;
            if got != Some(want) {
                return Err(format!("{node} GET {path}: {got:?}, expected {want}"));
            }
        }
        Ok(())
    })
    .await;
    let (_, doc) = c.node(primary).api_get("/patroni").await.unwrap();
    let rows = doc["replication"].as_array().cloned().unwrap_or_default();
    let names: BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r["application_name"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from([sync, other]), "{doc}");
    assert!(
        rows.iter().any(|r| r["sync_state"] == "sync"),
        "one connection is synchronous: {doc}"
    );
    let (_, doc) = c.node(sync).api_get("/patroni").await.unwrap();
    assert_eq!(doc["sync_standby"], true, "{doc}");
    assert!(doc["xlog"].get("replayed_timestamp").is_some(), "{doc}");
}

// ---------------------------------------------------------------------------
// Security: who may reach PostgreSQL and the write endpoints

/// Connects to `target`'s first host from the local address `from`: PostgreSQL
/// sees `from` as the client's address, which is what pg_hba.conf matches.
async fn connect_from(from: std::net::IpAddr, target: &PgTarget) -> Result<(), String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind((from, 0).into())
        .map_err(|e| format!("bind {from}: {e}"))?;
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        socket.connect((target.hosts[0], target.port).into()),
    )
    .await
    .map_err(|_| "TCP connect timed out".to_string())?
    .map_err(|e| format!("TCP connect: {e}"))?;
    let (client, connection) = tokio::time::timeout(
        Duration::from_secs(5),
        target.config().connect_raw(stream, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| "PostgreSQL handshake timed out".to_string())?
    .map_err(|e| support::workload::pg_error(&e))?;
    tokio::spawn(connection);
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| support::workload::pg_error(&e))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_addresses_are_refused_and_concurrent_switchovers_do_one() {
    let c = TestCluster::start("security", ClusterOptions::default()).await;
    let before = c
        .wait_for_roles(&["db1", "db2"], BOOTSTRAP_TIMEOUT, "bootstrap")
        .await;
    let (old, new) = (before.primary.clone(), before.replicas[0].clone());
    let localhost: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    // In this test's subnet, but no node's address and in no list.
    let outsider = c.subnet.ip(200);

    // PostgreSQL. The app user from the declared client network (127.0.0.1,
    // see cluster_yaml) gets in: the refusals below are about the address.
    let app = c.app_target_on(&old);
    connect_from(localhost, &app)
        .await
        .expect("the app user from a declared client network");
    let refused = connect_from(outsider, &app)
        .await
        .expect_err("the app user from an undeclared address");
    assert!(
        refused.contains("no pg_hba.conf entry") || refused.contains("rejects connection"),
        "{refused}"
    );
    assert!(refused.contains(&outsider.to_string()), "{refused}");
    let superuser = |dbname: &str| PgTarget {
        user: "postgres".into(),
        password: c.secrets.superuser.clone(),
        dbname: dbname.into(),
        ..app.clone()
    };
    // The superuser over the network: only from members, only to `postgres`
    // (what pg_rewind uses; the loopback members connect from 127.0.0.1).
    connect_from(localhost, &superuser("postgres"))
        .await
        .expect("the superuser from a member's address to postgres");
    let e = connect_from(outsider, &superuser("postgres"))
        .await
        .expect_err("the superuser from an undeclared address");
    assert!(e.contains("pg_hba.conf"), "{e}");
    let e = connect_from(localhost, &superuser("app"))
        .await
        .expect_err("the superuser to the application's database over TCP");
    assert!(e.contains("pg_hba.conf"), "{e}");

    // The REST API's write endpoints.
    let url = |name: &str, path: &str| format!("http://{}:8008{path}", c.node(name).address);
    let body = format!("{{\"leader\":\"{old}\",\"candidate\":\"{new}\"}}");
    let from_outside = reqwest::Client::builder()
        .local_address(outsider)
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for (method, path, body) in [
        (reqwest::Method::POST, "/switchover", body.clone()),
        (
            reqwest::Method::POST,
            "/failover",
            format!("{{\"candidate\":\"{new}\"}}"),
        ),
        (
            reqwest::Method::PATCH,
            "/config",
            "{\"pause\":true}".to_string(),
        ),
    ] {
        let answer = from_outside
            .request(method.clone(), url(&old, path))
            .basic_auth("pgbox", Some(&c.secrets.api))
            .body(body)
            .send()
            .await
            .expect("the API answers");
        assert_eq!(
            answer.status().as_u16(),
            403,
            "{method} {path} from {outsider}"
        );
    }
    let read = from_outside
        .get(url(&old, "/cluster"))
        .send()
        .await
        .expect("GET /cluster");
    assert_eq!(read.status().as_u16(), 200, "read-only endpoints stay open");
    let local = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(75))
        .build()
        .unwrap();
    let anonymous = local
        .post(url(&old, "/switchover"))
        .body(body.clone())
        .send()
        .await
        .expect("POST /switchover");
    assert_eq!(anonymous.status().as_u16(), 401);
    // None of that changed anything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = c
        .wait_for_roles(&["db1", "db2"], FAILOVER_TIMEOUT, "roles unchanged")
        .await;
    assert_eq!(
        (still.primary.as_str(), still.timeline),
        (old.as_str(), before.timeline)
    );
    let (_, cfg) = c.node(&old).api_get("/config").await.unwrap();
    assert_eq!(cfg["pause"], false, "the refused PATCH paused the cluster");

    // Two switchover requests at once: one is carried out, the other is
    // refused, and the cluster switches over exactly once.
    let send = || {
        local
            .post(url(&old, "/switchover"))
            .basic_auth("pgbox", Some(&c.secrets.api))
            .body(body.clone())
            .send()
    };
    let (a, b) = tokio::join!(send(), send());
    let mut codes = vec![a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    codes.sort();
    assert_eq!(codes[0], 200, "one switchover succeeds: {codes:?}");
    assert!(
        codes[1] == 503 || codes[1] == 412,
        "the other is refused (pending, or the leader changed): {codes:?}"
    );
    let after = c
        .wait_for_roles(
            &["db1", "db2"],
            FAILOVER_TIMEOUT,
            "the switchover to settle",
        )
        .await;
    assert_eq!(after.primary, new);
    assert_eq!(
        after.timeline,
        before.timeline + 1,
        "exactly one switchover"
    );
}

/// Maintenance mode: a switchover or failover is refused at once with the
/// reason and leaves nothing in etcd; a request that is in etcd anyway (as
/// when it was written just before the pause) is removed by the leader; and
/// after the resume nothing that was asked during the pause takes effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_while_paused_are_refused_at_once_and_never_carried_out_later() {
    let c = TestCluster::start("paused_requests", ClusterOptions::default()).await;
    let before = c
        .wait_for_roles(&["db1", "db2"], BOOTSTRAP_TIMEOUT, "bootstrap")
        .await;
    let (old, new) = (before.primary.clone(), before.replicas[0].clone());
    let url = |name: &str, path: &str| format!("http://{}:8008{path}", c.node(name).address);
    // Longer than the API's own wait for an outcome, so a request that
    // hangs shows up as slow, not as a client error.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(75))
        .build()
        .unwrap();
    let set_pause = |on: bool| {
        client
            .patch(url(&old, "/config"))
            .basic_auth("pgbox", Some(&c.secrets.api))
            .body(format!("{{\"pause\":{on}}}"))
            .send()
    };
    let failover_key = format!("/service/{}/failover", c.cluster_name);
    let mut etcd = c.etcd.client().await;

    let answer = set_pause(true).await.expect("PATCH /config");
    assert_eq!(answer.status().as_u16(), 200, "pausing");

    // Twice each: a refused request must not leave anything that makes the
    // next one "already pending".
    let switchover = format!("{{\"leader\":\"{old}\",\"candidate\":\"{new}\"}}");
    let failover = format!("{{\"candidate\":\"{new}\"}}");
    for (node, path, body) in [
        (&old, "/switchover", &switchover),
        (&new, "/switchover", &switchover),
        (&old, "/failover", &failover),
        (&new, "/failover", &failover),
    ] {
        let started = Instant::now();
        let answer = client
            .post(url(node, path))
            .basic_auth("pgbox", Some(&c.secrets.api))
            .body(body.clone())
            .send()
            .await
            .expect("POST");
        let took = started.elapsed();
        let code = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        eprintln!("paused: POST {path} to {node} answered {code} in {took:.2?}: {text}");
        assert!(
            took < Duration::from_secs(5),
            "POST {path} to {node} while paused took {took:.1?} ({code} {text})"
        );
        assert_eq!(code, 412, "POST {path} to {node} while paused: {text}");
        assert!(text.contains("paused"), "the refusal says why: {text}");
        let left = etcd.get(failover_key.as_str(), None).await.unwrap();
        assert!(
            left.kvs().is_empty(),
            "a refused request left the failover key behind: {:?}",
            left.kvs()
                .first()
                .map(|kv| kv.value_str().unwrap_or_default().to_string())
        );
    }

    // A request already in etcd when the pause began: the leader removes
    // it rather than keep it for the resume.
    let stale = format!("{{\"leader\":\"{old}\",\"member\":\"{new}\"}}");
    etcd.put(failover_key.as_str(), stale, None).await.unwrap();
    let removed_after = Instant::now();
    wait_until(
        Duration::from_secs(10),
        "the leader removes the request",
        async || {
            let r = etcd
                .get(failover_key.as_str(), None)
                .await
                .map_err(|e| e.to_string())?;
            if r.kvs().is_empty() {
                Ok(())
            } else {
                Err("still there".into())
            }
        },
    )
    .await;
    eprintln!(
        "paused: a request written into etcd was removed after {:.2?}",
        removed_after.elapsed()
    );

    let answer = set_pause(false).await.expect("PATCH /config");
    assert_eq!(answer.status().as_u16(), 200, "resuming");
    // Several loop periods (loop_wait 500 ms) and more than the time a
    // switchover takes here: nothing asked during the pause may happen now.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = c
        .wait_for_roles(&["db1", "db2"], FAILOVER_TIMEOUT, "roles after the resume")
        .await;
    assert_eq!(
        (after.primary.as_str(), after.timeline),
        (old.as_str(), before.timeline),
        "a request made while paused took effect after the resume"
    );
    let left = etcd.get(failover_key.as_str(), None).await.unwrap();
    assert!(
        left.kvs().is_empty(),
        "a request is pending after the resume"
    );
}

/// A CA, and one API certificate naming `ips`, as PEM: what an operator
/// makes once for a cluster (docs/security.md).
fn api_pki(ips: &[std::net::IpAddr]) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "pgbox test cluster CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::default();
    leaf.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
    let cert_pem = leaf.signed_by(&key, &issuer).unwrap().pem();
    (cert_pem, key.serialize_pem(), ca_pem)
}

/// The members' roles as an HTTPS `/cluster` shows them, from any node.
async fn https_roles(
    client: &reqwest::Client,
    c: &TestCluster,
) -> Result<(String, String), String> {
    let mut last = String::from("no answer");
    for node in c.nodes() {
        let url = format!("https://{}:8008/cluster", node.address);
        match client.get(&url).send().await {
            Ok(r) => {
                let doc: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
                let members = doc["members"].as_array().cloned().unwrap_or_default();
                let named = |role: &str| {
                    members
                        .iter()
                        .find(|m| m["role"] == role)
                        .and_then(|m| m["name"].as_str().map(String::from))
                };
                match (named("leader"), named("sync_standby")) {
                    (Some(l), Some(s)) => return Ok((l, s)),
                    _ => last = format!("{url}: {doc}"),
                }
            }
            Err(e) => last = format!("{url}: {}", support::error_chain(&e)),
        }
    }
    Err(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_api_end_to_end_with_the_cluster_ca() {
    // The test's subnet (127.0.N.0/24) is chosen when the cluster starts,
    // after the file is written: name db1 and db2 in every subnet the
    // harness may choose.
    let ips: Vec<std::net::IpAddr> = (10u8..=250)
        .flat_map(|n| [21u8, 22].map(|h| std::net::IpAddr::from([127, 0, n, h])))
        .collect();
    let (cert, key, ca) = api_pki(&ips);
    let block = |pem: &str| {
        pem.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    };
    let extra_yaml = format!(
        "api:\n  tls:\n    certificate: |\n{}    private_key: |\n{}    ca: |\n{}",
        block(&cert),
        block(&key),
        block(&ca)
    );
    let c = TestCluster::start(
        "https-api",
        ClusterOptions {
            extra_yaml,
            ..ClusterOptions::default()
        },
    )
    .await;
    let trusting = pgbox::tls::http_client(Some(&ca))
        .unwrap()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let (old, new) = wait_until(
        BOOTSTRAP_TIMEOUT,
        "a leader and a sync standby over HTTPS",
        async || {
            for node in c.nodes() {
                node.assert_alive();
            }
            https_roles(&trusting, &c).await
        },
    )
    .await;

    // Plain HTTP and clients that do not trust the cluster's CA get nothing.
    let api = format!("{}:8008", c.node(&old).address);
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    assert!(
        plain
            .get(format!("http://{api}/cluster"))
            .send()
            .await
            .is_err(),
        "plain HTTP answered"
    );
    let e = plain
        .get(format!("https://{api}/cluster"))
        .send()
        .await
        .expect_err("a client without the CA trusted the certificate");
    assert!(
        support::error_chain(&e)
            .to_lowercase()
            .contains("certificate"),
        "{e:?}"
    );

    // pgboxctl trusts the CA given with --cacert (or from --config).
    let ca_file = c.dir.join("ca.pem");
    fs::write(&ca_file, &ca).unwrap();
    let list = tokio::process::Command::new(PGBOXCTL)
        .args(["list", "--json", "--api", &api, "--cacert"])
        .arg(&ca_file)
        .output()
        .await
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(String::from_utf8_lossy(&list.stdout).contains(&old));
    // The same cluster as a tree: the leader first, its replica below.
    let tree = tokio::process::Command::new(PGBOXCTL)
        .args(["topology", "--api", &api, "--cacert"])
        .arg(&ca_file)
        .output()
        .await
        .unwrap();
    let tree_text = String::from_utf8_lossy(&tree.stdout);
    let members: Vec<&str> = tree_text
        .lines()
        .skip(3)
        .filter_map(|l| l.split('|').nth(1).map(str::trim))
        .collect();
    assert!(
        tree.status.success() && members == [old.clone(), format!("+ {new}")],
        "{tree_text}{}",
        String::from_utf8_lossy(&tree.stderr)
    );
    let untrusted = tokio::process::Command::new(PGBOXCTL)
        .args(["list", "--api", &format!("https://{api}")])
        .output()
        .await
        .unwrap();
    assert!(
        !untrusted.status.success(),
        "pgboxctl trusted an unknown CA"
    );

    // A switchover through pgboxctl over HTTPS; the nodes reach each
    // other's APIs over HTTPS too.
    let out = tokio::process::Command::new(PGBOXCTL)
        .args(["switchover", "--config"])
        .arg(&c.config_path)
        .args(["--candidate", &new])
        .output()
        .await
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.contains("Successfully switched over"),
        "{said}"
    );
    let (leader, standby) = wait_until(
        FAILOVER_TIMEOUT,
        "the old primary to follow over HTTPS",
        async || match https_roles(&trusting, &c).await? {
            (l, s) if l == new && s == old => Ok((l, s)),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    assert_eq!(
        (leader.as_str(), standby.as_str()),
        (new.as_str(), old.as_str())
    );
}

// ---------------------------------------------------------------------------
// etcd as the image runs it: mutual TLS and authentication

/// A get of `key` through a fresh client with `opts`, as text or error.
async fn etcd_get(
    url: &str,
    opts: etcd_client::ConnectOptions,
    key: &str,
) -> Result<String, String> {
    let call = async {
        let mut c = etcd_client::Client::connect([url], Some(opts))
            .await
            .map_err(|e| support::error_chain(&e))?;
        let r = c
            .get(key, None)
            .await
            .map_err(|e| support::error_chain(&e))?;
        Ok(r.kvs()
            .first()
            .map(|kv| kv.value_str().unwrap_or_default().to_string())
            .unwrap_or_default())
    };
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_runs_as_rendered_with_mutual_tls_and_authentication() {
    let mut c = TestCluster::start(
        "etcd_tls_auth",
        ClusterOptions {
            etcd_tls: true,
            ..ClusterOptions::default()
        },
    )
    .await;
    let before = c
        .wait_for_roles(
            &["db1", "db2"],
            BOOTSTRAP_TIMEOUT,
            "bootstrap over etcd TLS",
        )
        .await;
    let leader_key = format!("/service/{}/leader", c.cluster_name);
    let url = c.etcd.endpoints()[0].clone();
    assert!(url.starts_with("https://"), "{url}");
    let access = c.etcd.access().clone();
    let (cert, key, ca) = access.tls.clone().expect("TLS material");
    let base = || {
        etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(3))
    };
    let as_pgbox = |password: &str| access.anonymous().with_user("pgbox", password.to_string());

    // pgboxd reads and writes its keys as user pgbox, over TLS.
    let leader = etcd_get(&url, as_pgbox(&c.secrets.etcd), &leader_key)
        .await
        .expect("user pgbox reads the leader key");
    assert_eq!(leader, before.primary);

    // Nothing without the cluster's client certificate, the password, or
    // outside the cluster's prefix.
    let plain = url.replace("https://", "http://");
    let e = etcd_get(&plain, base(), &leader_key)
        .await
        .expect_err("plain HTTP answered");
    println!("plain HTTP: {e}");
    let no_client_cert = base().with_tls(
        etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(&ca)),
    );
    let e = etcd_get(
        &url,
        no_client_cert.with_user("pgbox", c.secrets.etcd.clone()),
        &leader_key,
    )
    .await
    .expect_err("a client without a certificate got in");
    println!("no client certificate: {e}");
    let e = etcd_get(&url, access.anonymous(), &leader_key)
        .await
        .expect_err("a client without a user read the leader key");
    println!("no user: {e}");
    let e = etcd_get(&url, as_pgbox("not-the-Password-at-all"), &leader_key)
        .await
        .expect_err("a wrong password got in");
    assert!(e.contains("invalid user ID or password"), "{e}");
    let e = etcd_get(&url, as_pgbox(&c.secrets.etcd), "/elsewhere/key")
        .await
        .expect_err("user pgbox read outside its prefix");
    assert!(e.contains("permission denied"), "{e}");
    // The administrator is root, with the same password.
    etcd_get(
        &url,
        access.anonymous().with_user("root", c.secrets.etcd.clone()),
        "/elsewhere/key",
    )
    .await
    .expect("root reads anywhere");
    drop((cert, key));

    // Leases, watches and promotion work through all of it: power loss of
    // the primary, the replica takes over.
    let old = before.primary.clone();
    let new = before.replicas[0].clone();
    c.node_mut(&old).kill();
    c.wait_for_primary(
        &new,
        FAILOVER_TIMEOUT,
        &format!("{new} to be promoted over etcd TLS after {old} lost power"),
    )
    .await;
    let leader = etcd_get(&url, as_pgbox(&c.secrets.etcd), &leader_key)
        .await
        .expect("user pgbox reads the leader key");
    assert_eq!(leader, new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failsafe_mode_keeps_the_primary_writable_through_a_dcs_outage() {
    let mut c = TestCluster::start(
        "failsafe",
        ClusterOptions {
            // Rides in the harness's `ha:` line.
            ttl: "5s, failsafe_mode: true",
            ..ClusterOptions::default()
        },
    )
    .await;
    let (before, workload) = c.bootstrap_under_load().await;
    let primary = before.primary.clone();

    // Two of three etcd members gone: no lease can be renewed, and the
    // leader key expires. Every member still reaches the primary's API.
    let lost_at = c.etcd.kill_member("e1");
    c.etcd.kill_member("e2");
    let ttl = Duration::from_secs(5);
    tokio::time::sleep(3 * ttl).await;
    assert_eq!(
        c.current_primaries().await,
        std::slice::from_ref(&primary),
        "{}",
        c.describe().await
    );
    workload
        .wait_acks_after(
            lost_at + 2 * ttl,
            20,
            Duration::from_secs(30),
            "writes acknowledged long after the lease expired (failsafe mode)",
        )
        .await;
    let log = c.node(&primary).log_since_start();
    assert!(
        log.contains("staying primary (failsafe mode)"),
        "the primary never said it stayed by failsafe mode"
    );
    let p = c
        .node(&primary)
        .patroni()
        .await
        .expect("/patroni on the primary");
    assert_eq!(p["failsafe_mode_is_active"], true, "{p}");

    let (restored_at, after) = restore_quorum(&mut c, &workload).await;
    assert_eq!(after.primary, primary, "the primary changed");
    assert_eq!(after.timeline, before.timeline, "a promotion happened");
    c.stop_and_check_no_loss(
        workload,
        &after.primary,
        &[("quorum lost", lost_at), ("quorum back", restored_at)],
    )
    .await;
}
