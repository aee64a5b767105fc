//! A real etcd cluster, one process per member. pgboxd never starts etcd in
//! these tests; the harness does, with the addresses and ports the pgbox.yaml
//! of the test names.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

use super::{spawn_logged, wait_until, Proc, TestDir};

pub const ETCD_BIN: &str = "/usr/bin/etcd";
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

pub struct EtcdMember {
    pub name: String,
    pub ip: IpAddr,
    data_dir: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

impl EtcdMember {
    pub fn client_url(&self) -> String {
        format!("http://{}:{CLIENT_PORT}", self.ip)
    }

    fn peer_url(&self) -> String {
        format!("http://{}:{PEER_PORT}", self.ip)
    }
}

pub struct EtcdCluster {
    members: Vec<EtcdMember>,
    initial_cluster: String,
    token: String,
}

impl EtcdCluster {
    /// Starts one etcd per `(name, ip)` and waits until every member serves a
    /// quorum read.
    pub async fn start(dir: &TestDir, members: &[(&str, IpAddr)]) -> EtcdCluster {
        let members: Vec<EtcdMember> = members
            .iter()
            .map(|(name, ip)| EtcdMember {
                name: name.to_string(),
                ip: *ip,
                data_dir: dir.join(format!("etcd-{name}")),
                log: dir.log_file(&format!("etcd-{name}")),
                proc: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        // Unique per run, so a member can never join a cluster left over
        // from another test on the same addresses.
        let token = format!(
            "pgbox-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let mut cluster = EtcdCluster {
            members,
            initial_cluster,
            token,
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(i);
        }
        cluster.wait_healthy(Duration::from_secs(60)).await;
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let mut cmd = Command::new(ETCD_BIN);
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .arg("--listen-client-urls")
            .arg(m.client_url())
            .arg("--advertise-client-urls")
            .arg(m.client_url())
            .arg("--listen-peer-urls")
            .arg(m.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(m.peer_url())
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--logger")
            .arg("zap")
            // The v2 API is off: pgbox speaks v3 only, and so must its etcd.
            .arg("--enable-v2=false")
            // Environment settings from the host must not leak into the member.
            .env_remove("ETCD_NAME")
            .env_remove("ETCD_DATA_DIR")
            .env_remove("ETCDCTL_API");
        let label = format!("etcd {}", m.name);
        let proc = spawn_logged(&label, &mut cmd, &m.log);
        self.members[i].proc = Some(proc);
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url()).collect()
    }

    pub fn members(&self) -> &[EtcdMember] {
        &self.members
    }

    /// A client for all members (it does not fail over by itself; see DESIGN §10).
    pub async fn client(&self) -> Client {
        Client::connect(self.endpoints(), Some(connect_options()))
            .await
            .expect("etcd client")
    }

    /// Power loss of one member.
    pub fn kill_member(&mut self, name: &str) -> Instant {
        let m = self.member_mut(name);
        let proc = m
            .proc
            .take()
            .unwrap_or_else(|| panic!("etcd {name} is not running"));
        proc.kill_tree()
    }

    /// Restarts a member on its existing data directory.
    pub fn start_member(&mut self, name: &str) {
        let i = self
            .members
            .iter()
            .position(|m| m.name == name)
            .expect("no such etcd member");
        assert!(
            self.members[i].proc.is_none(),
            "etcd {name} is already running"
        );
        self.spawn(i);
    }

    fn member_mut(&mut self, name: &str) -> &mut EtcdMember {
        self.members
            .iter_mut()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no etcd member {name}"))
    }

    /// Every running member answers a linearizable read and knows a leader.
    pub async fn wait_healthy(&self, timeout: Duration) {
        wait_until(
            timeout,
            "every etcd member to serve a quorum read",
            async || {
                let mut problems = Vec::new();
                for m in self.members.iter() {
                    let Some(proc) = m.proc.as_ref() else {
                        continue;
                    };
                    if let Some(status) = proc.exit_status() {
                        // Waiting longer cannot help.
                        panic!("etcd {} exited during start-up: {status}", m.name);
                    }
                    if let Err(e) = probe_member(&m.client_url()).await {
                        problems.push(format!("{}: {e}", m.name));
                    }
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(problems.join("; "))
                }
            },
        )
        .await
    }
}

fn connect_options() -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(3))
        .with_require_leader(true)
}

async fn probe_member(url: &str) -> Result<(), String> {
    let mut client = Client::connect([url], Some(connect_options()))
        .await
        .map_err(|e| format!("connect: {}", super::error_chain(&e)))?;
    client
        .get("pgbox-test-health", None)
        .await
        .map_err(|e| format!("get: {}", super::error_chain(&e)))?;
    let status = client
        .status()
        .await
        .map_err(|e| format!("status: {}", super::error_chain(&e)))?;
    if status.leader() == 0 {
        return Err("no leader".into());
    }
    Ok(())
}
