//! Patroni's own command line, `patronictl` 4.1.5 from PyPI, pointed at a
//! pgbox cluster's etcd and REST API: the commands an operator of a Patroni
//! cluster types, against real etcd, PostgreSQL and pgboxd on loopback
//! addresses. `scripts/install-test-deps.sh` installs it.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use support::node::{ClusterOptions, TestCluster, FAILOVER_TIMEOUT, REJOIN_TIMEOUT};
use support::{run_captured, wait_until};

/// Where scripts/install-test-deps.sh puts it (PGBOX_PATRONICTL overrides).
const DEFAULT_PATRONICTL: &str = "/var/cache/pgbox/patronictl-4.1.5/bin/patronictl";

fn patronictl_binary() -> PathBuf {
    let path = std::env::var_os("PGBOX_PATRONICTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATRONICTL));
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/install-test-deps.sh` (it installs patroni 4.1.5 from PyPI into a venv there)",
        path.display()
    );
    path
}

struct Ctl {
    bin: PathBuf,
    config: PathBuf,
}

impl Ctl {
    /// Runs `patronictl -c FILE ARGS`; its exit status and output.
    fn run(&self, c: &TestCluster, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c").arg(&self.config).args(args);
        let label = format!(
            "patronictl-{}",
            args.join("-").replace(['/', ' ', '='], "_")
        );
        let run = run_captured(&label, &mut cmd, c.dir.path(), Duration::from_secs(120));
        (run.status.success(), run.output())
    }

    /// As `run`, and it must succeed and print `expect`.
    fn ok(&self, c: &TestCluster, args: &[&str], expect: &str) -> String {
        let (ok, out) = self.run(c, args);
        assert!(
            ok && out.contains(expect),
            "patronictl {}: expected success and {expect:?}, got:\n{out}",
            args.join(" ")
        );
        out
    }

    /// `list -f json`: each member's name, role and state.
    fn members(&self, c: &TestCluster) -> Result<Vec<(String, String, String)>, String> {
        let (ok, out) = self.run(c, &["list", "-f", "json"]);
        if !ok {
            return Err(out);
        }
        let start = out.find('[').ok_or_else(|| out.clone())?;
        let end = out.rfind(']').ok_or_else(|| out.clone())?;
        let rows: Vec<Value> =
            serde_json::from_str(&out[start..=end]).map_err(|e| format!("{e}: {out}"))?;
        Ok(rows
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
                (s("Member"), s("Role"), s("State"))
            })
            .collect())
    }

    /// Waits until `list` shows `leader` as Leader and every other member
    /// as a streaming Sync Standby or Replica.
    async fn settled(&self, c: &TestCluster, leader: &str, timeout: Duration, what: &str) {
        wait_until(timeout, what, async || {
            let rows = self.members(c)?;
            let fine = rows.len() == 2
                && rows.iter().all(|(name, role, state)| {
                    if name == leader {
                        role == "Leader" && state == "running"
                    } else {
                        (role == "Sync Standby" || role == "Replica") && state == "streaming"
                    }
                });
            if fine {
                Ok(())
            } else {
                Err(format!("{rows:?}"))
            }
        })
        .await;
    }
}

async fn show(c: &TestCluster, node: &str, setting: &str) -> Result<String, String> {
    let client = c.app_target_on(node).connect().await?;
    let row = client
        .query_one(&format!("SHOW {setting}"), &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patronictl_operates_a_pgbox_cluster() {
    let bin = patronictl_binary();
    let c = TestCluster::start("patronictl", ClusterOptions::default()).await;
    let (before, workload) = c.bootstrap_under_load().await;
    let began = Instant::now();
    let (leader, replica) = (before.primary.clone(), before.replicas[0].clone());

    let hosts: Vec<String> = c
        .etcd
        .endpoints()
        .iter()
        .map(|u| u.trim_start_matches("http://").to_string())
        .collect();
    let config = c.dir.join("patronictl.yaml");
    std::fs::write(
        &config,
        format!(
            "scope: {}\nnamespace: /service/\netcd3:\n  hosts: [{}]\n  username: pgbox\n  password: \"{}\"\nrestapi:\n  authentication:\n    username: pgbox\n    password: \"{}\"\n",
            c.cluster_name,
            hosts.join(", "),
            c.secrets.etcd,
            c.secrets.api
        ),
    )
    .unwrap();
    let ctl = Ctl { bin, config };
    ctl.ok(&c, &["version"], "patronictl version 4.1.5");

    // list: the synchronous standby shows as such (the config key says
    // synchronous_mode), every column filled.
    ctl.settled(&c, &leader, FAILOVER_TIMEOUT, "list after bootstrap")
        .await;
    let rows = ctl.members(&c).unwrap();
    assert!(
        rows.iter()
            .any(|(n, r, _)| *n == replica && r == "Sync Standby"),
        "{rows:?}"
    );
    ctl.ok(&c, &["topology"], &replica);
    ctl.ok(&c, &["dsn", "-m", &leader], "host=");

    // show-config and edit-config: the cluster-wide settings, changed in
    // etcd by patronictl itself, reach every member.
    ctl.ok(&c, &["show-config"], "maximum_lag_on_failover");
    ctl.ok(
        &c,
        &[
            "edit-config",
            "--force",
            "-p",
            "work_mem=12MB",
            "-s",
            "maximum_lag_on_failover=4194304",
        ],
        "work_mem",
    );
    for node in [&leader, &replica] {
        wait_until(
            Duration::from_secs(30),
            "work_mem from edit-config",
            async || match show(&c, node, "work_mem").await? {
                v if v == "12MB" => Ok(()),
                other => Err(format!("{node}: work_mem {other}")),
            },
        )
        .await;
    }
    ctl.ok(&c, &["show-config"], "work_mem: 12MB");

    // reload and restart through each member's REST API.
    ctl.ok(
        &c,
        &["reload", &c.cluster_name, "--force"],
        "Reload request received",
    );
    ctl.ok(
        &c,
        &["restart", &c.cluster_name, &replica, "--force"],
        "Success: restart on member",
    );
    ctl.settled(&c, &leader, REJOIN_TIMEOUT, "after the restart")
        .await;

    // pause and resume (PATCH /config; resume sends {"pause": null}).
    ctl.ok(&c, &["pause", "--wait"], "paused");
    let (_, list) = ctl.run(&c, &["list"]);
    assert!(list.contains("Maintenance mode: on"), "{list}");
    ctl.ok(&c, &["resume", "--wait"], "resumed");

    // switchover, then failover back, each a planned change of leader.
    ctl.ok(
        &c,
        &[
            "switchover",
            "--leader",
            &leader,
            "--candidate",
            &replica,
            "--force",
        ],
        "Successfully switched over",
    );
    ctl.settled(&c, &replica, REJOIN_TIMEOUT, "after the switchover")
        .await;
    ctl.ok(
        &c,
        &["failover", "--candidate", &leader, "--force"],
        &leader,
    );
    ctl.settled(&c, &leader, REJOIN_TIMEOUT, "after the failover")
        .await;
    let history = ctl.ok(&c, &["history"], "promoted");
    assert!(
        history.contains(&format!("promoted {replica}"))
            && history.contains(&format!("promoted {leader}")),
        "{history}"
    );

    // reinit: the replica re-cloned from the leader.
    ctl.ok(
        &c,
        &["reinit", &c.cluster_name, &replica, "--force", "--wait"],
        "Success: reinitialize for member",
    );
    ctl.settled(&c, &leader, REJOIN_TIMEOUT, "after the reinit")
        .await;

    c.stop_and_check_no_loss(workload, &leader, &[("patronictl commands", began)])
        .await;
}
