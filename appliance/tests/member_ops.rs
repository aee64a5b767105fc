//! Restart, reload, reinitialize and scheduled restarts of members, through
//! the API and `pgboxctl`, on real etcd, PostgreSQL and pgboxd (loopback
//! addresses): a restarted primary keeps the leader key and its timeline,
//! a reinitialized replica streams again from a fresh clone, and writes
//! acknowledged throughout are all there at the end.

mod support;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use support::node::{ClusterOptions, TestCluster, FAILOVER_TIMEOUT, PGBOXCTL, REJOIN_TIMEOUT};
use support::{run_captured, wait_until};

fn url(c: &TestCluster, node: &str, path: &str) -> String {
    format!("http://{}:8008{path}", c.node(node).address)
}

/// A write-endpoint call with the cluster's API password: status and body.
async fn call(
    c: &TestCluster,
    method: reqwest::Method,
    node: &str,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let resp = client
        .request(method.clone(), url(c, node, path))
        .basic_auth("pgbox", Some(&c.secrets.api))
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on {node}: {e}"));
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

async fn started_at(c: &TestCluster, node: &str) -> Result<String, String> {
    let doc = c.node(node).patroni().await?;
    doc["postmaster_start_time"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| format!("{node} reports no postmaster_start_time: {doc}"))
}

/// `node`'s PostgreSQL runs again under a new postmaster (a start time
/// other than `before`), in `role`.
async fn restarted(c: &TestCluster, node: &str, before: &str, role: &str, what: &str) {
    wait_until(REJOIN_TIMEOUT, what, async || {
        let doc = c.node(node).patroni().await?;
        let now = doc["postmaster_start_time"].as_str().unwrap_or("");
        if now.is_empty() || now == before || doc["role"] != role || doc["state"] != "running" {
            return Err(format!("{node}: {doc}"));
        }
        Ok(())
    })
    .await;
}

fn pgboxctl(c: &TestCluster, label: &str, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(PGBOXCTL);
    cmd.args(args).arg("--config").arg(&c.config_path);
    let run = run_captured(label, &mut cmd, c.dir.path(), Duration::from_secs(120));
    (run.status.success(), run.output())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reload_reinitialize_and_scheduled_restarts() {
    let c = TestCluster::start("member_ops", ClusterOptions::default()).await;
    let (before, workload) = c.bootstrap_under_load().await;
    let primary = before.primary.clone();
    let replica = before.replicas[0].clone();
    let history = c.node(&primary).api_get("/history").await.unwrap().1;
    let ops_began = Instant::now();

    // Nothing waits for a restart: the conditional restart is refused.
    let (code, doc) = call(
        &c,
        reqwest::Method::POST,
        &primary,
        "/restart",
        r#"{"restart_pending": true}"#,
    )
    .await;
    assert_eq!(code, 503, "{doc}");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("conditions are not satisfied"),
        "{doc}"
    );

    // A change of the cluster-wide settings is checked whole, with the
    // first-boot file's messages, and a bad one changes nothing.
    let (code, doc) = call(
        &c,
        reqwest::Method::PATCH,
        &replica,
        "/config",
        r#"{"postgresql": {"parameters": {"work_mem": "8MB", "port": 6543}}}"#,
    )
    .await;
    assert_eq!(code, 400, "{doc}");
    let why = doc["error"].as_str().unwrap();
    assert!(
        why.contains("postgresql.parameters.port: `port` is managed by pgbox"),
        "{why}"
    );
    let (code, doc) = call(
        &c,
        reqwest::Method::PATCH,
        &replica,
        "/config",
        r#"{"ttl": 99}"#,
    )
    .await;
    assert_eq!(code, 400, "{doc}");
    assert!(
        doc["error"].as_str().unwrap().contains("ttl: 99 differs"),
        "{doc}"
    );

    // A good one reaches every member: a reloadable parameter is in force
    // at once, one that needs a restart shows as pending_restart.
    let (code, doc) = call(
        &c,
        reqwest::Method::PATCH,
        &replica,
        "/config",
        r#"{"maximum_lag_on_failover": 2097152, "postgresql": {"parameters": {"work_mem": "8MB", "max_connections": 123}}}"#,
    )
    .await;
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["postgresql"]["parameters"]["max_connections"], 123);
    for node in [&primary, &replica] {
        wait_until(
            Duration::from_secs(30),
            "the new parameters in force",
            async || {
                let client = c.app_target_on(node).connect().await?;
                let row = client
                    .query_one("SHOW work_mem", &[])
                    .await
                    .map_err(|e| e.to_string())?;
                let work_mem: String = row.get(0);
                let doc = c.node(node).patroni().await?;
                let reason = &doc["pending_restart_reason"]["max_connections"];
                if work_mem != "8MB"
                    || doc["pending_restart"] != true
                    || reason["new_value"] != "123"
                {
                    return Err(format!("{node}: work_mem {work_mem}; {doc}"));
                }
                Ok(())
            },
        )
        .await;
    }
    let (ok, out) = pgboxctl(&c, "pgboxctl-show-config", &["show-config"]);
    assert!(
        ok && out.contains("work_mem: 8MB"),
        "pgboxctl show-config: {out}"
    );
    let (ok, out) = pgboxctl(
        &c,
        "pgboxctl-edit-config-bad",
        &["edit-config", "--pg", "listen_addresses=*"],
    );
    assert!(
        !ok && out.contains("`listen_addresses` is managed by pgbox"),
        "pgboxctl edit-config: {out}"
    );
    let (_, shown) = c.node(&primary).api_get("/config").await.unwrap();
    assert_eq!(shown["maximum_lag_on_failover"], 2097152, "{shown}");
    assert_eq!(
        shown["postgresql"]["parameters"]["work_mem"], "8MB",
        "{shown}"
    );

    // The conditional restart now runs: the primary stops and starts again
    // as primary, keeping the leader key, on the same timeline.
    let start = started_at(&c, &primary).await.unwrap();
    let (code, doc) = call(
        &c,
        reqwest::Method::POST,
        &primary,
        "/restart",
        r#"{"restart_pending": true}"#,
    )
    .await;
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["message"], "restarted successfully");
    restarted(&c, &primary, &start, "primary", "the primary to run again").await;
    let after = c
        .wait_for_roles(
            &["db1", "db2"],
            FAILOVER_TIMEOUT,
            "the cluster after the restart",
        )
        .await;
    assert_eq!(after.primary, primary, "a restart is not a failover");
    assert_eq!(
        after.timeline, before.timeline,
        "a restart opens no timeline"
    );
    assert_eq!(
        c.node(&primary).api_get("/history").await.unwrap().1,
        history
    );
    // The restart put the new max_connections in force there.
    let client = c.app_target_on(&primary).connect().await.unwrap();
    let row = client.query_one("SHOW max_connections", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "123");
    let doc = c.node(&primary).patroni().await.unwrap();
    assert!(doc.get("pending_restart").is_none(), "{doc}");

    // A replica restart through pgboxctl, and a reload of every member.
    let start = started_at(&c, &replica).await.unwrap();
    let (ok, out) = pgboxctl(&c, "pgboxctl-restart", &["restart", "--pending", &replica]);
    assert!(ok, "pgboxctl restart: {out}");
    assert!(out.contains("restarted successfully"), "{out}");
    restarted(&c, &replica, &start, "replica", "the replica to run again").await;
    let (ok, out) = pgboxctl(&c, "pgboxctl-reload", &["reload"]);
    assert!(
        ok && out.matches("reload scheduled").count() == 2,
        "pgboxctl reload: {out}"
    );
    let (ok, out) = pgboxctl(&c, "pgboxctl-restart-unknown", &["restart", "db9"]);
    assert!(!ok && out.contains("db9 is not a member"), "{out}");

    // A scheduled restart shows in /patroni, can be deleted, and fires when due.
    let soon = |s: u64| {
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(s)).to_string()
    };
    let (code, doc) = call(
        &c,
        reqwest::Method::POST,
        &replica,
        "/restart",
        &format!(r#"{{"schedule": "{}"}}"#, soon(600)),
    )
    .await;
    assert_eq!(code, 202, "{doc}");
    let (code, _) = call(
        &c,
        reqwest::Method::POST,
        &replica,
        "/restart",
        &format!(r#"{{"schedule": "{}"}}"#, soon(700)),
    )
    .await;
    assert_eq!(code, 409, "one restart at a time");
    wait_until(
        Duration::from_secs(10),
        "scheduled_restart in /patroni",
        async || {
            let doc = c.node(&replica).patroni().await?;
            doc["scheduled_restart"]["schedule"]
                .as_str()
                .map(|_| ())
                .ok_or(format!("{doc}"))
        },
    )
    .await;
    let (ok, out) = pgboxctl(
        &c,
        "pgboxctl-flush-restart",
        &["flush", "restart", &replica],
    );
    assert!(ok && out.contains("scheduled restart deleted"), "{out}");
    let (code, _) = call(&c, reqwest::Method::DELETE, &replica, "/restart", "").await;
    assert_eq!(code, 404, "nothing is scheduled any more");
    let start = started_at(&c, &replica).await.unwrap();
    let (code, doc) = call(
        &c,
        reqwest::Method::POST,
        &replica,
        "/restart",
        &format!(r#"{{"schedule": "{}"}}"#, soon(3)),
    )
    .await;
    assert_eq!(code, 202, "{doc}");
    restarted(
        &c,
        &replica,
        &start,
        "replica",
        "the scheduled restart to fire",
    )
    .await;

    // The leader is never reinitialized; a replica is, from a fresh clone.
    let (code, doc) = call(&c, reqwest::Method::POST, &primary, "/reinitialize", "").await;
    assert_eq!(code, 503, "{doc}");
    assert!(doc["error"].as_str().unwrap().contains("leader"), "{doc}");
    let marker = c
        .node(&replica)
        .data_dir()
        .join("postgres/left-by-the-test");
    std::fs::write(&marker, "old data").unwrap();
    let start = started_at(&c, &replica).await.unwrap();
    let (ok, out) = pgboxctl(&c, "pgboxctl-reinit", &["reinit", &replica]);
    assert!(
        ok && out.contains("reinitialize started"),
        "pgboxctl reinit: {out}"
    );
    restarted(
        &c,
        &replica,
        &start,
        "replica",
        "the reinitialized replica to run",
    )
    .await;
    let after = c
        .wait_for_roles(
            &["db1", "db2"],
            REJOIN_TIMEOUT,
            "the replica to stream again",
        )
        .await;
    assert_eq!(after.primary, primary);
    assert!(!marker.exists(), "the data directory is a fresh clone");
    assert!(
        !c.node(&replica).data_dir().join("postgres.old").exists(),
        "the old data directory is removed once the clone succeeded"
    );

    c.stop_and_check_no_loss(
        workload,
        &primary,
        &[("restarts and reinitialize", ops_began)],
    )
    .await;
}
