//! Backups and point-in-time recovery with pgBackRest, end to end: two
//! PostgreSQL nodes archiving to a backup node (`pgboxd repository`), all
//! through pgBackRest's TLS server, with real etcd, PostgreSQL, pgBackRest
//! and pgboxd on loopback addresses. A restore is started as a separate
//! PostgreSQL server from what the repository holds, the way a person
//! recovering from `DROP TABLE` would.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use support::node::{ClusterOptions, TestCluster, BOOTSTRAP_TIMEOUT, FAILOVER_TIMEOUT, PGBOXCTL};
use support::postgres::PlainPostgres;
use support::workload::{PgTarget, Workload, WorkloadOptions};
use support::{postgres_user, run_captured, wait_until};

/// A short archive_timeout, so that an idle cluster's last writes reach the
/// repository within seconds.
const BACKUP: &str = "  archive_timeout: 2s\n";

/// pgBackRest runs as `postgres` (it refuses root for some commands, and
/// its files must belong to the user PostgreSQL runs as).
fn pgbackrest_as_postgres(conf: &Path, stanza: &str, args: &[&str]) -> Command {
    use std::os::unix::process::CommandExt;
    let user = postgres_user();
    let mut cmd = Command::new("/usr/bin/pgbackrest");
    cmd.arg(format!("--config={}", conf.display()))
        .arg(format!("--stanza={stanza}"))
        .args(args)
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw());
    cmd
}

/// Waits until the repository holds a good full backup; returns /backups.
async fn wait_for_full_backup(c: &TestCluster) -> Value {
    let repo = c.repository.as_ref().expect("a backup node");
    wait_until(
        Duration::from_secs(240),
        "the first scheduled full backup",
        async || {
            let r = repo.backups().await?;
            let backups = r["repository"]["backups"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if backups
                .iter()
                .any(|b| b["type"] == "full" && b["error"] == false)
            {
                Ok(r)
            } else {
                Err(format!("not yet: {r}"))
            }
        },
    )
    .await
}

/// The WAL segment the primary writes now: once it is archived, so is
/// everything written so far (archive_timeout switches segments within
/// seconds; the app user needs no privilege for this).
async fn current_segment(primary: &PgTarget) -> String {
    let client = primary.connect().await.expect("connect to the primary");
    let row = client
        .query_one("SELECT pg_walfile_name(pg_current_wal_lsn())", &[])
        .await
        .expect("pg_current_wal_lsn");
    row.get(0)
}

/// Waits until the repository's archive reaches `segment` (WAL file names
/// sort in order: timeline, then position).
async fn wait_archived(c: &TestCluster, segment: &str) {
    let repo = c.repository.as_ref().unwrap();
    wait_until(
        Duration::from_secs(120),
        &format!("WAL segment {segment} to reach the repository"),
        async || {
            let r = repo.backups().await?;
            // /backups is refreshed every few seconds; pgBackRest itself is
            // the authority.
            let out = pgbackrest_as_postgres(
                &repo.pgbackrest_conf(),
                &c.cluster_name,
                &["--output=json", "info"],
            )
            .output()
            .map_err(|e| e.to_string())?;
            let info: Value =
                serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {r}"))?;
            let max = info[0]["archive"]
                .as_array()
                .and_then(|a| a.last())
                .and_then(|a| a["max"].as_str())
                .unwrap_or("")
                .to_string();
            if max.as_str() >= segment {
                Ok(())
            } else {
                Err(format!("archive ends at {max:?}"))
            }
        },
    )
    .await
}

/// Restores the repository into a new data directory (as `postgres`),
/// with pgBackRest's `restore` and `extra` (a target), through db node
/// `via`'s configuration; starts it as a plain server at 127.0.N.41.
async fn restore_copy(c: &TestCluster, via: &str, name: &str, extra: &[&str]) -> PlainPostgres {
    let node = c.node(via);
    let conf = node.data_dir().join("pgbackrest.conf");
    let data: PathBuf = c.dir.join(name);
    support::mkdir_mode(&data, 0o700);
    let user = postgres_user();
    nix::unistd::chown(&data, Some(user.uid), Some(user.gid)).unwrap();
    let pg1 = format!("--pg1-path={}", data.display());
    let mut args = vec![pg1.as_str()];
    args.extend_from_slice(extra);
    args.push("restore");
    let started = Instant::now();
    let run = run_captured(
        name,
        &mut pgbackrest_as_postgres(&conf, &c.cluster_name, &args),
        c.dir.path(),
        Duration::from_secs(600),
    );
    assert!(run.status.success(), "pgbackrest restore: {}", run.output());
    println!(
        "{name}: restored in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let mut pg = PlainPostgres::adopt(
        &c.dir,
        name,
        data,
        c.subnet.ip(41),
        5432,
        &c.secrets.superuser,
    );
    // A copy: it must never push its own WAL into the cluster's archive, nor
    // follow or wait for the cluster's servers.
    pg.settings = vec![
        "archive_mode=off".into(),
        "primary_conninfo=".into(),
        "synchronous_standby_names=".into(),
        "cluster_name=restored".into(),
    ];
    pg.start().await;
    let su = pg.superuser("postgres");
    wait_until(
        Duration::from_secs(240),
        "the restored copy to finish recovery",
        async || {
            let client = su.connect().await?;
            let row = client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map_err(|e| support::error_chain(&e))?;
            if row.get::<_, bool>(0) {
                Err("still in recovery".into())
            } else {
                Ok(())
            }
        },
    )
    .await;
    pg
}

async fn ids(target: &PgTarget, table: &str) -> Result<Vec<i64>, String> {
    let client = target.connect().await?;
    let rows = client
        .query(&format!("SELECT id FROM {table} ORDER BY id"), &[])
        .await
        .map_err(|e| support::error_chain(&e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A scheduled full backup is taken as soon as the cluster is up; a row
/// table is dropped by mistake; a point-in-time restore to just before the
/// drop brings back every row acknowledged before that time and none
/// written after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_restore_undoes_a_drop_table() {
    let mut c = TestCluster::start(
        "pitr_drop_table",
        ClusterOptions {
            backup: Some(BACKUP),
            ..ClusterOptions::default()
        },
    )
    .await;
    let roles = c
        .wait_for_roles(&["db1", "db2"], BOOTSTRAP_TIMEOUT, "bootstrap")
        .await;
    let t0 = Instant::now();
    let first = wait_for_full_backup(&c).await;
    let full = &first["repository"]["backups"][0];
    println!(
        "first full backup {} {}s after the roles settled: database {} bytes, {} bytes in the repository",
        full["label"],
        t0.elapsed().as_secs(),
        full["database_size"],
        full["repository_size"]
    );

    let app = c.app_target();
    let client = app.connect().await.expect("connect as app");
    client
        .batch_execute("CREATE TABLE precious (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        .await
        .unwrap();
    for id in 1..=100i64 {
        client
            .execute("INSERT INTO precious (id) VALUES ($1)", &[&id])
            .await
            .unwrap();
    }
    // POST /backup is a write endpoint: no backup without the password.
    let repo = c.repository.as_ref().unwrap();
    let (status, body) = repo
        .take_backup("full", "not-the-api-password")
        .await
        .expect("the backup node answers");
    assert_eq!(status, 401, "a wrong password is refused: {body}");
    // An incremental backup on request, as an operator takes one: the
    // restore below starts from it.
    let config = c.config_path.display().to_string();
    let run = run_captured(
        "pgboxctl-backup",
        Command::new(PGBOXCTL).args(["backup", "--config", &config]),
        c.dir.path(),
        Duration::from_secs(300),
    );
    assert!(run.status.success(), "pgboxctl backup: {}", run.output());
    assert!(run.output().contains("(incr) done"), "{}", run.output());
    for id in 101..=200i64 {
        client
            .execute("INSERT INTO precious (id) VALUES ($1)", &[&id])
            .await
            .unwrap();
    }
    // The recovery target: after every acknowledged write above, a clear
    // second before anything below.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let target: String = client
        .query_one(
            "SELECT to_char(clock_timestamp(), 'YYYY-MM-DD HH24:MI:SS.MSTZH')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for id in 201..=250i64 {
        client
            .execute("INSERT INTO precious (id) VALUES ($1)", &[&id])
            .await
            .unwrap();
    }
    client.batch_execute("DROP TABLE precious").await.unwrap();
    let last = current_segment(&c.app_target_on(&roles.primary)).await;
    wait_archived(&c, &last).await;

    let run = run_captured(
        "pgboxctl-backups",
        Command::new(PGBOXCTL).args(["backups", "--config", &config]),
        c.dir.path(),
        Duration::from_secs(60),
    );
    assert!(run.status.success(), "pgboxctl backups: {}", run.output());
    println!("pgboxctl backups:\n{}", run.output());
    let listed = run.output();
    assert!(
        listed
            .lines()
            .filter(|l| l.contains(" full ") || l.contains(" incr "))
            .count()
            >= 2,
        "a full and an incremental backup listed: {listed}"
    );
    assert!(listed.contains("restorable: from "), "{listed}");

    // The state is visible where an operator looks: `pgboxctl list`, and
    // the metrics of the primary and of the backup node.
    let run = run_captured(
        "pgboxctl-list",
        Command::new(PGBOXCTL).args(["list", "--config", &config]),
        c.dir.path(),
        Duration::from_secs(60),
    );
    let listed = run.output();
    println!("pgboxctl list:\n{listed}");
    assert!(run.status.success(), "pgboxctl list: {listed}");
    assert!(listed.contains("Backups: last good "), "{listed}");
    assert!(
        listed.contains(&format!("segment(s) waiting on {}", roles.primary)),
        "{listed}"
    );
    assert!(!listed.contains("FAILING"), "{listed}");
    let (_, metrics) = c
        .node(&roles.primary)
        .api_get("/metrics")
        .await
        .expect("the primary's metrics");
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    let sample = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .map(String::from)
    };
    assert_eq!(
        sample("pgbox_archive_failing").as_deref(),
        Some("0"),
        "{metrics}"
    );
    assert!(
        sample("pgbox_archive_pending_segments").is_some(),
        "{metrics}"
    );

    let time = format!("--target={target}");
    let pg = restore_copy(
        &c,
        &roles.replicas[0],
        "restored-before-drop",
        &["--type=time", &time, "--target-action=promote"],
    )
    .await;
    let back = ids(&pg.superuser("app"), "precious")
        .await
        .expect("the table is back");
    assert_eq!(
        back,
        (1..=200).collect::<Vec<i64>>(),
        "a copy restored by pgBackRest has every row acknowledged before {target} and none after"
    );
    drop(pg);

    // The same through pgbox: the cluster itself, brought back to that
    // time from the repository (`backup.restore: {time: ...}`).
    let (after, took) = restore_cluster(&mut c, &format!("{{time: \"{target}\"}}")).await;
    println!(
        "cluster restored to {target} in {:.1}s: {} primary on timeline {}",
        took.as_secs_f64(),
        after.primary,
        after.timeline
    );
    let back = ids(&c.app_target_on(&after.primary), "precious")
        .await
        .expect("the table is back in the cluster");
    assert_eq!(
        back,
        (1..=200).collect::<Vec<i64>>(),
        "the restored cluster has every row acknowledged before {target} and none after"
    );
}

/// WAL archiving goes on across a failover: the promoted replica archives
/// its new timeline, and a restore of the latest state replays through the
/// switch, with every write acknowledged before and after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_survives_a_failover() {
    let mut c = TestCluster::start(
        "archive_failover",
        ClusterOptions {
            backup: Some(BACKUP),
            ..ClusterOptions::default()
        },
    )
    .await;
    let before = c
        .wait_for_roles(&["db1", "db2"], BOOTSTRAP_TIMEOUT, "bootstrap")
        .await;
    wait_for_full_backup(&c).await;
    let old = before.primary.clone();
    let new = before.replicas[0].clone();

    let workload = Workload::start(c.app_target(), WorkloadOptions::default());
    workload
        .wait_acks_after(
            Instant::now(),
            200,
            Duration::from_secs(60),
            "writes before the fault",
        )
        .await;
    let killed_at = c.node_mut(&old).kill();
    c.wait_for_primary(&new, FAILOVER_TIMEOUT, "the replica to take over")
        .await;
    workload
        .wait_acks_after(
            killed_at,
            200,
            FAILOVER_TIMEOUT,
            "writes on the new timeline",
        )
        .await;
    let report = workload.stop().await;
    let acked: Vec<i64> = report.acks.iter().map(|a| a.id).collect();

    let last = current_segment(&c.app_target_on(&new)).await;
    assert!(
        !last.starts_with(&format!("{:08X}", before.timeline)),
        "the new primary writes a new timeline ({last})"
    );
    wait_archived(&c, &last).await;

    let pg = restore_copy(&c, &new, "restored-latest", &[]).await;
    let restored = ids(&pg.superuser("app"), "pgbox_writes")
        .await
        .expect("the workload's table");
    let missing: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|id| restored.binary_search(id).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes missing from the restore of the archive (first: {:?})",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    println!(
        "restore of the latest state: {} rows, all {} acknowledged writes present, across the failover",
        restored.len(),
        acked.len()
    );
}

/// A primary that dies with completed WAL segments it never archived (its
/// archiving broken here: its pgBackRest configuration unreadable) leaves
/// no hole in the repository: the promoted replica holds those segments,
/// streamed, and pushes them itself; a restore of the latest state has
/// every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_primary_archives_what_the_dead_one_had_not() {
    use std::os::unix::fs::PermissionsExt;
    let mut c = TestCluster::start(
        "archive_gap",
        ClusterOptions {
            backup: Some(BACKUP),
            ..ClusterOptions::default()
        },
    )
    .await;
    let before = c
        .wait_for_roles(&["db1", "db2"], BOOTSTRAP_TIMEOUT, "bootstrap")
        .await;
    wait_for_full_backup(&c).await;
    let old = before.primary.clone();
    let new = before.replicas[0].clone();

    // From here on archive-push fails on the primary.
    let conf = c.node(&old).data_dir().join("pgbackrest.conf");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o000)).unwrap();
    let workload = Workload::start(c.app_target(), WorkloadOptions::default());
    wait_until(
        Duration::from_secs(120),
        "completed segments to wait on the primary, unarchived",
        async || {
            let p = c.node(&old).patroni().await?;
            let pending = p["archive"]["pending_segments"].as_u64().unwrap_or(0);
            if pending >= 3 && p["archive"]["failing"] == true {
                Ok(())
            } else {
                Err(format!("archive: {}", p["archive"]))
            }
        },
    )
    .await;
    let killed_at = c.node_mut(&old).kill();
    c.wait_for_primary(&new, FAILOVER_TIMEOUT, "the replica to take over")
        .await;
    workload
        .wait_acks_after(
            killed_at,
            100,
            FAILOVER_TIMEOUT,
            "writes on the new timeline",
        )
        .await;
    let report = workload.stop().await;
    let acked: Vec<i64> = report.acks.iter().map(|a| a.id).collect();

    let last = current_segment(&c.app_target_on(&new)).await;
    wait_archived(&c, &last).await;
    let pg = restore_copy(&c, &new, "restored-after-gap", &[]).await;
    let restored = ids(&pg.superuser("app"), "pgbox_writes")
        .await
        .expect("the workload's table");
    let missing: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|id| restored.binary_search(id).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes missing from the restore (first: {:?}): the dead primary's unarchived segments were lost",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
}

/// Both PostgreSQL boxes lose power and come back blank, etcd forgets the
/// cluster, and the boxes start again with `restore` (a line of the
/// `backup:` section, which ends the file) added to the same file: the
/// cluster as it comes back from the repository, and how long it took.
async fn restore_cluster(c: &mut TestCluster, restore: &str) -> (support::node::Roles, Duration) {
    for name in ["db1", "db2"] {
        let node = c.node_mut(name);
        node.kill();
        let data = node.data_dir().to_path_buf();
        std::fs::remove_dir_all(&data).unwrap();
        support::mkdir_mode(&data, 0o700);
    }
    // A new etcd: nothing of the cluster is left in it.
    c.etcd
        .client()
        .await
        .delete(
            format!("/service/{}/", c.cluster_name),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .expect("forget the cluster in etcd");
    let mut yaml = std::fs::read_to_string(&c.config_path).unwrap();
    assert!(
        yaml.trim_end().ends_with("archive_timeout: 2s"),
        "the backup section ends the file"
    );
    yaml.push_str(&format!("  restore: {restore}\n"));
    std::fs::write(&c.config_path, yaml).unwrap();
    let started = Instant::now();
    for name in ["db1", "db2"] {
        c.node_mut(name).start();
    }
    let roles = c
        .wait_for_roles(
            &["db1", "db2"],
            Duration::from_secs(300),
            "the cluster restored from the repository",
        )
        .await;
    (roles, started.elapsed())
}

/// Disaster recovery: every PostgreSQL box is lost (blank disks) and etcd
/// forgot the cluster; only the backup node survives. The boxes flashed
/// with the same file plus `backup.restore: latest` come up as the same
/// cluster from the repository, with every write acknowledged before the
/// loss, a streaming replica, and archiving going on on a new timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blank_boxes_come_back_from_the_repository() {
    let mut c = TestCluster::start(
        "disaster_recovery",
        ClusterOptions {
            backup: Some(BACKUP),
            ..ClusterOptions::default()
        },
    )
    .await;
    let before = c
        .wait_for_roles(&["db1", "db2"], BOOTSTRAP_TIMEOUT, "bootstrap")
        .await;
    wait_for_full_backup(&c).await;
    let workload = Workload::start(c.app_target(), WorkloadOptions::default());
    workload
        .wait_acks_after(
            Instant::now(),
            300,
            Duration::from_secs(60),
            "writes before the loss",
        )
        .await;
    let report = workload.stop().await;
    let acked: Vec<i64> = report.acks.iter().map(|a| a.id).collect();
    let last = current_segment(&c.app_target_on(&before.primary)).await;
    wait_archived(&c, &last).await;

    let (after, took) = restore_cluster(&mut c, "latest").await;
    println!(
        "restored cluster: {} primary on timeline {} (was {}), {} streaming, {:.1}s after the boxes started",
        after.primary,
        after.timeline,
        before.timeline,
        after.replicas[0],
        took.as_secs_f64()
    );
    assert!(
        after.timeline > before.timeline,
        "a restore opens a new timeline"
    );
    let restored = ids(&c.app_target_on(&after.primary), "pgbox_writes")
        .await
        .expect("the workload's table, back");
    let missing: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|id| restored.binary_search(id).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes missing after the disaster recovery (first: {:?})",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
    // Archiving goes on into the same repository, on the new timeline.
    let client = c
        .app_target()
        .connect()
        .await
        .expect("connect to the restored primary");
    client
        .batch_execute(
            "CREATE TABLE after_recovery (id int); INSERT INTO after_recovery VALUES (1)",
        )
        .await
        .expect("the restored primary takes writes");
    let last = current_segment(&c.app_target_on(&after.primary)).await;
    assert!(
        last.starts_with(&format!("{:08X}", after.timeline)),
        "{last} on timeline {}",
        after.timeline
    );
    wait_archived(&c, &last).await;
}
