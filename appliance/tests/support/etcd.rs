//! A real etcd cluster, one process per member. pgboxd never starts etcd in
//! these tests; the harness does, with the addresses and ports the pgbox.yaml
//! of the test names: either from flags of its own, or (`start_rendered`)
//! exactly as the image runs it, from the etcd.env and credentials that
//! `pgboxd firstboot` renders for each member.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use super::{run_captured, spawn_logged, wait_until, Proc, TestDir};

pub const ETCD_BIN: &str = "/usr/bin/etcd";
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

pub struct EtcdMember {
    pub name: String,
    pub ip: IpAddr,
    /// `https` when the members run TLS.
    scheme: &'static str,
    data_dir: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
    /// The environment `pgboxd firstboot` rendered for this member, when it
    /// runs as in the image.
    rendered_env: Option<Vec<(String, String)>>,
}

impl EtcdMember {
    pub fn client_url(&self) -> String {
        format!("{}://{}:{CLIENT_PORT}", self.scheme, self.ip)
    }

    fn peer_url(&self) -> String {
        format!("{}://{}:{PEER_PORT}", self.scheme, self.ip)
    }
}

/// How the harness itself gets into the members once pgboxd has turned
/// authentication on, and over TLS.
#[derive(Clone, Default)]
pub struct EtcdAccess {
    /// etcd's `root` password (secrets.etcd_password).
    pub root_password: Option<String>,
    /// (certificate, key, CA) PEM when the members run mutual TLS.
    pub tls: Option<(String, String, String)>,
}

impl EtcdAccess {
    /// Connection options with the client certificate, and without a user.
    pub fn anonymous(&self) -> ConnectOptions {
        let opts = connect_options();
        match &self.tls {
            Some((cert, key, ca)) => opts.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .identity(Identity::from_pem(cert, key)),
            ),
            None => opts,
        }
    }

    /// Connects as `root` once authentication is on, anonymously before.
    pub async fn connect(&self, urls: &[String]) -> Result<Client, String> {
        if let Some(pw) = &self.root_password {
            match Client::connect(urls, Some(self.anonymous().with_user("root", pw.clone()))).await
            {
                Ok(c) => return Ok(c),
                Err(e) if e.to_string().contains("authentication is not enabled") => {}
                Err(e) => return Err(format!("connect as root: {}", super::error_chain(&e))),
            }
        }
        Client::connect(urls, Some(self.anonymous()))
            .await
            .map_err(|e| format!("connect: {}", super::error_chain(&e)))
    }
}

pub struct EtcdCluster {
    members: Vec<EtcdMember>,
    initial_cluster: String,
    /// The next spawn joins a running cluster.
    joining: bool,
    token: String,
    access: EtcdAccess,
}

impl EtcdCluster {
    /// Starts one etcd per `(name, ip)` and waits until every member serves a
    /// quorum read.
    pub async fn start(dir: &TestDir, members: &[(&str, IpAddr)]) -> EtcdCluster {
        Self::launch(dir, members, None, EtcdAccess::default()).await
    }

    /// Starts the members as the image does: `pgboxd firstboot` runs for
    /// each on the pgbox.yaml at `config` (in a directory standing in for
    /// `/`), and etcd gets exactly the rendered etcd.env, with the data
    /// directory and systemd's credentials directory moved into the test's
    /// directory.
    pub async fn start_rendered(
        dir: &TestDir,
        members: &[(&str, IpAddr)],
        config: &std::path::Path,
        access: EtcdAccess,
    ) -> EtcdCluster {
        Self::launch(dir, members, Some(config), access).await
    }

    async fn launch(
        dir: &TestDir,
        members: &[(&str, IpAddr)],
        config: Option<&std::path::Path>,
        access: EtcdAccess,
    ) -> EtcdCluster {
        let scheme = if access.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let members: Vec<EtcdMember> = members
            .iter()
            .map(|(name, ip)| EtcdMember {
                name: name.to_string(),
                ip: *ip,
                scheme,
                data_dir: dir.join(format!("etcd-{name}")),
                log: dir.log_file(&format!("etcd-{name}")),
                proc: None,
                rendered_env: config.map(|c| {
                    let data_dir = dir.join(format!("etcd-{name}"));
                    firstboot_env(dir, name, c, &data_dir)
                }),
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
            joining: false,
            token,
            access,
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(i);
        }
        cluster.wait_healthy(Duration::from_secs(60)).await;
        cluster
    }

    /// Lets the harness in once pgboxd turned authentication on.
    pub fn set_root_password(&mut self, password: &str) {
        self.access.root_password = Some(password.to_string());
    }

    pub fn access(&self) -> &EtcdAccess {
        &self.access
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let mut cmd = Command::new(ETCD_BIN);
        if let Some(env) = &m.rendered_env {
            // Only what first boot wrote, as systemd's EnvironmentFile= gives it.
            for (k, _) in std::env::vars() {
                if k.starts_with("ETCD") {
                    cmd.env_remove(k);
                }
            }
            cmd.envs(env.iter().map(|(k, v)| (k, v)))
                .env("ETCD_LOGGER", "zap");
            let label = format!("etcd {}", m.name);
            let proc = spawn_logged(&label, &mut cmd, &m.log);
            self.members[i].proc = Some(proc);
            return;
        }
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
            .arg(if self.joining { "existing" } else { "new" })
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

    /// A client for all members (etcd-client does not move to another
    /// member by itself when one dies), as root once authentication is on.
    pub async fn client(&self) -> Client {
        self.access
            .connect(&self.endpoints())
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

    /// Starts a member that joins the running cluster (`--initial-cluster-state
    /// existing`) with `initial_cluster`, what `pgboxd etcd-join` decided.
    pub fn start_member_joining(&mut self, name: &str, initial_cluster: &str) {
        let i = self
            .members
            .iter()
            .position(|m| m.name == name)
            .expect("no such etcd member");
        let saved = std::mem::replace(&mut self.initial_cluster, initial_cluster.to_string());
        self.joining = true;
        self.spawn(i);
        self.joining = false;
        self.initial_cluster = saved;
    }

    /// A member's data directory.
    pub fn data_dir(&self, name: &str) -> std::path::PathBuf {
        self.members
            .iter()
            .find(|m| m.name == name)
            .expect("no such etcd member")
            .data_dir
            .clone()
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
                    if let Err(e) = probe_member(&self.access, &m.client_url()).await {
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

async fn probe_member(access: &EtcdAccess, url: &str) -> Result<(), String> {
    let mut client = access.connect(&[url.to_string()]).await?;
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

/// Runs `pgboxd firstboot` for etcd member `name` of the file at `config`
/// in a directory standing in for `/` (the node named on its kernel command
/// line), and returns the etcd.env it rendered, with the data directory and
/// systemd's credentials directory (which ImportCredential= fills from the
/// credential store) moved into that directory.
fn firstboot_env(
    dir: &TestDir,
    name: &str,
    config: &std::path::Path,
    data_dir: &std::path::Path,
) -> Vec<(String, String)> {
    let root = dir.join(format!("root-{name}"));
    let put = |rel: &str, text: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    put(
        "run/pgbox/cfgpart/pgbox.yaml",
        &std::fs::read(config).expect("read pgbox.yaml"),
    );
    put("proc/cmdline", format!("pgbox.node={name}\n").as_bytes());
    let run = run_captured(
        &format!("firstboot-{name}"),
        Command::new(super::node::PGBOXD)
            .arg("firstboot")
            .arg("--root")
            .arg(&root),
        dir.path(),
        Duration::from_secs(60),
    );
    assert!(
        run.status.success(),
        "pgboxd firstboot for {name}: {}",
        run.output()
    );
    let env = std::fs::read_to_string(root.join("run/pgbox/etcd.env")).expect("etcd.env rendered");
    let credentials = root.join("run/credstore");
    env.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            let v = match k {
                "ETCD_DATA_DIR" => data_dir.display().to_string(),
                _ => v.replace(
                    "/run/credentials/pgbox-etcd.service",
                    &credentials.display().to_string(),
                ),
            };
            (k.to_string(), v)
        })
        .collect()
}
