//! One benchmark cluster: 3 etcd members, 2 PostgreSQL nodes managed by
//! pgboxd or by Patroni, and HAProxy in front, on 127.0.N.x.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::procs;
use crate::support::checker::{self, CheckReport};
use crate::support::etcd::EtcdCluster;
use crate::support::node::{cluster_yaml, ClusterOptions, Secrets, PGBOXCTL, PGBOXD};
use crate::support::workload::{pg_error, PgTarget, WorkloadRecord};
use crate::support::{
    mkdir_mode, pg_bin_dir, postgres_user, run_captured, spawn_logged, strong_secret, Proc, TestDir,
};

/// Patroni's lowest accepted `ttl` (its validator and its run-time
/// adjustment both raise anything lower to this).
pub const PATRONI_MIN_TTL: u64 = 20;

const PG_PORT: u16 = 5432;
const API_PORT: u16 = 8008;
const ROUTER_RW: u16 = 5000;
const ROUTER_RO: u16 = 5001;
const HAPROXY: &str = "/usr/sbin/haproxy";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Pgbox,
    Patroni,
}

#[derive(Clone, Debug)]
pub struct Setup {
    pub label: String,
    pub system: System,
    pub ttl: u64,
    pub loop_wait_ms: u64,
    /// Patroni only.
    pub retry_timeout: u64,
    pub sync: bool,
}

impl Setup {
    pub fn json(&self) -> Value {
        json!({
            "label": self.label,
            "system": match self.system { System::Pgbox => "pgbox", System::Patroni => "patroni" },
            "ttl_s": self.ttl,
            "loop_wait_s": self.loop_wait_ms as f64 / 1000.0,
            "retry_timeout_s": if self.system == System::Patroni { Some(self.retry_timeout) } else { None },
            "synchronous_mode": self.sync,
        })
    }
}

struct Node {
    name: String,
    ip: IpAddr,
    system: System,
    config: PathBuf,
    /// pgboxd's --data-dir, or Patroni's node directory.
    home: PathBuf,
    /// Where postmaster.pid is.
    pgdata: PathBuf,
    log: PathBuf,
    venv: PathBuf,
    proc: Option<Proc>,
}

impl Node {
    fn start(&mut self) {
        let mut cmd = match self.system {
            System::Pgbox => {
                let mut c = Command::new(PGBOXD);
                c.arg("--config")
                    .arg(&self.config)
                    .arg("--node")
                    .arg(&self.name)
                    .arg("--data-dir")
                    .arg(&self.home)
                    .env("NO_COLOR", "1");
                c
            }
            System::Patroni => {
                // As `postgres` directly rather than through runuser: then
                // Patroni itself, not a wrapper, gets the harness's
                // parent-death signal and leads the process group.
                use std::os::unix::process::CommandExt;
                let user = postgres_user();
                let mut c = Command::new(self.venv.join("bin/patroni"));
                c.arg(&self.config)
                    .uid(user.uid.as_raw())
                    .gid(user.gid.as_raw())
                    .env("HOME", &self.home)
                    .env("USER", "postgres")
                    .current_dir(&self.home);
                c
            }
        };
        self.proc = Some(spawn_logged(&self.name, &mut cmd, &self.log));
    }

    fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// SIGKILL to the supervisor and every PostgreSQL process of the node at
    /// once (all frozen first, so none acts on another's death). Returns the
    /// instant they were all frozen: the fault's time zero. (Taken before the
    /// freeze, a write sent in those few milliseconds and acknowledged by the
    /// dying primary was once counted as the first write after failover.)
    fn power_off(&mut self) -> Instant {
        let mut pids: BTreeSet<i32> = self.postmaster_pid().map(procs::tree).unwrap_or_default();
        let at = Instant::now();
        if let Some(p) = self.proc.as_ref() {
            pids.extend(p.tree_pids());
            pids.insert(p.pid());
        }
        let frozen = procs::stop_and_kill(&pids);
        let killed = at.elapsed();
        // Dropping the Proc reaps the supervisor.
        self.proc = None;
        let reaped = at.elapsed();
        if !procs::wait_dead(&pids, Duration::from_secs(10)) {
            eprintln!("{}: processes survived SIGKILL: {pids:?}", self.name);
        }
        eprintln!(
            "{}: {} processes killed in {killed:?}, supervisor reaped at {reaped:?}, all gone at {:?}",
            self.name,
            pids.len(),
            at.elapsed()
        );
        frozen
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.power_off();
    }
}

pub struct Cluster {
    // Field order is drop order: supervisors and PostgreSQL first, then the
    // router and etcd, then the directory.
    nodes: Vec<Node>,
    haproxy: Option<Proc>,
    _etcd: EtcdCluster,
    pub setup: Setup,
    secrets: Secrets,
    router: IpAddr,
    http: reqwest::Client,
    venv: PathBuf,
    dir: TestDir,
}

impl Cluster {
    pub async fn start(setup: Setup, subnet: u8, venv: &Path) -> Result<Cluster, String> {
        let ip = |h: u8| IpAddr::V4(Ipv4Addr::new(127, 0, subnet, h));
        let dir = TestDir::new(&format!("bench-{}", setup.label));
        let name = format!("bench{subnet}");
        let secrets = Secrets {
            superuser: strong_secret("su"),
            replication: strong_secret("repl"),
            app: strong_secret("app"),
            etcd: strong_secret("etcd"),
            api: strong_secret("api"),
        };
        let etcd_nodes: Vec<(String, IpAddr)> =
            (1..=3).map(|i| (format!("e{i}"), ip(10 + i))).collect();
        let pg_nodes: Vec<(String, IpAddr)> =
            (1..=2).map(|i| (format!("db{i}"), ip(20 + i))).collect();
        let router = ip(1);
        println!(
            "[{}] cluster in {} on 127.0.{subnet}.0/24",
            setup.label,
            dir.path().display()
        );

        let members: Vec<(&str, IpAddr)> =
            etcd_nodes.iter().map(|(n, a)| (n.as_str(), *a)).collect();
        let etcd = EtcdCluster::start(&dir, &members).await;

        let mut nodes = Vec::new();
        for (node_name, addr) in &pg_nodes {
            let home = dir.join(node_name);
            let (config, pgdata) = match setup.system {
                System::Pgbox => {
                    mkdir_mode(&home, 0o700);
                    (dir.join("pgbox.yaml"), home.join("postgres"))
                }
                System::Patroni => {
                    mkdir_mode(&home, 0o700);
                    let user = postgres_user();
                    nix::unistd::chown(&home, Some(user.uid), Some(user.gid))
                        .map_err(|e| format!("chown {}: {e}", home.display()))?;
                    let config = dir.join(format!("patroni-{node_name}.yml"));
                    let yaml = patroni_yaml(
                        &setup,
                        &name,
                        node_name,
                        *addr,
                        &etcd_nodes,
                        &home,
                        &secrets,
                    );
                    std::fs::write(&config, yaml)
                        .map_err(|e| format!("write {}: {e}", config.display()))?;
                    (config, home.join("data"))
                }
            };
            nodes.push(Node {
                name: node_name.clone(),
                ip: *addr,
                system: setup.system,
                config,
                home,
                pgdata,
                log: dir.log_file(node_name),
                venv: venv.to_path_buf(),
                proc: None,
            });
        }
        if setup.system == System::Pgbox {
            let opts = ClusterOptions {
                pg_nodes: 2,
                ttl: Box::leak(format!("{}s", setup.ttl).into_boxed_str()),
                loop_wait: Box::leak(format!("{}ms", setup.loop_wait_ms).into_boxed_str()),
                synchronous_mode: Some(if setup.sync { "on" } else { "\"off\"" }),
                extra_yaml: String::new(),
                pgdata_template: false,
                etcd_tls: false,
                backup: None,
            };
            let yaml = cluster_yaml(&name, &etcd_nodes, &pg_nodes, None, &secrets, &opts);
            std::fs::write(dir.join("pgbox.yaml"), yaml)
                .map_err(|e| format!("write pgbox.yaml: {e}"))?;
        }

        let haproxy = start_haproxy(&dir, router, &pg_nodes)?;
        let mut c = Cluster {
            nodes,
            haproxy: Some(haproxy),
            _etcd: etcd,
            setup,
            secrets,
            router,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .connect_timeout(Duration::from_secs(1))
                .no_proxy()
                .build()
                .map_err(|e| e.to_string())?,
            venv: venv.to_path_buf(),
            dir,
        };
        for n in c.nodes.iter_mut() {
            n.start();
        }
        let t = Instant::now();
        c.wait_healthy(Duration::from_secs(300)).await?;
        if c.setup.system == System::Patroni {
            c.create_app().await?;
        }
        println!(
            "[{}] up in {:.1} s",
            c.setup.label,
            t.elapsed().as_secs_f64()
        );
        Ok(c)
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .expect("known node")
    }

    pub fn other(&self, name: &str) -> String {
        self.nodes
            .iter()
            .find(|n| n.name != name)
            .expect("two nodes")
            .name
            .clone()
    }

    pub fn power_off(&mut self, name: &str) -> Instant {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("known node")
            .power_off()
    }

    pub fn start_node(&mut self, name: &str) {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("known node")
            .start();
    }

    pub fn assert_running(&self, name: &str) -> Result<(), String> {
        match self.node(name).proc.as_ref().and_then(|p| p.exit_status()) {
            Some(status) => Err(format!("{name}'s supervisor exited: {status}")),
            None => Ok(()),
        }
    }

    pub fn supervisor_pids(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter_map(|n| n.proc.as_ref().map(|p| p.pid()))
            .collect()
    }

    async fn api(&self, name: &str, path: &str) -> Option<(u16, Value)> {
        let url = format!("http://{}:{API_PORT}{path}", self.node(name).ip);
        let resp = self.http.get(&url).send().await.ok()?;
        let status = resp.status().as_u16();
        let body = resp.text().await.ok()?;
        Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    pub async fn is_primary(&self, name: &str) -> bool {
        matches!(self.api(name, "/primary").await, Some((200, _)))
    }

    pub async fn is_streaming(&self, name: &str) -> bool {
        matches!(self.api(name, "/patroni").await, Some((_, v)) if v["replication_state"] == "streaming")
    }

    /// One primary, the other node a streaming replica, and in synchronous
    /// mode the standby recorded as synchronous: the state every fault
    /// starts from. Returns the primary's name.
    pub async fn wait_healthy(&self, bound: Duration) -> Result<String, String> {
        let deadline = Instant::now() + bound;
        loop {
            let mut state = String::new();
            let mut primaries = Vec::new();
            let mut streaming = Vec::new();
            for n in &self.nodes {
                self.assert_running(&n.name)?;
                if self.is_primary(&n.name).await {
                    primaries.push(n.name.clone());
                } else if self.is_streaming(&n.name).await {
                    streaming.push(n.name.clone());
                }
            }
            let _ = write!(state, "primaries {primaries:?}, streaming {streaming:?}");
            if primaries.len() == 1 && streaming.len() == 1 {
                let synced = !self.setup.sync
                    || matches!(self.api(&primaries[0], "/cluster").await, Some((_, v))
                        if v["members"].as_array().is_some_and(|ms| ms.iter().any(|m| m["role"] == "sync_standby")));
                if synced {
                    return Ok(primaries.remove(0));
                }
                state.push_str(", no synchronous standby yet");
            }
            if Instant::now() > deadline {
                return Err(format!("not healthy within {bound:?}: {state}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The app user through the router's read-write port.
    pub fn rw_target(&self) -> PgTarget {
        PgTarget {
            hosts: vec![self.router],
            port: ROUTER_RW,
            user: "app".into(),
            password: self.secrets.app.clone(),
            dbname: "app".into(),
            read_write: true,
        }
    }

    async fn connect_retrying(&self, target: &PgTarget) -> Result<tokio_postgres::Client, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match target.connect().await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Every repetition starts its workload at id 1 on an empty table.
    pub async fn reset_table(&self) -> Result<(), String> {
        let client = self.connect_retrying(&self.rw_target()).await?;
        client
            .batch_execute("DROP TABLE IF EXISTS pgbox_writes")
            .await
            .map_err(|e| pg_error(&e))
    }

    pub async fn check(&self, record: &WorkloadRecord) -> Result<CheckReport, String> {
        let client = self.connect_retrying(&self.rw_target()).await?;
        checker::check(record, &client, &[]).await
    }

    /// pgbox creates the application role and database from pgbox.yaml;
    /// for Patroni they are made here, as its users would.
    async fn create_app(&self) -> Result<(), String> {
        let su = PgTarget {
            user: "postgres".into(),
            password: self.secrets.superuser.clone(),
            dbname: "postgres".into(),
            ..self.rw_target()
        };
        let client = self.connect_retrying(&su).await?;
        client
            .batch_execute(&format!(
                "CREATE ROLE app LOGIN PASSWORD '{}'",
                self.secrets.app
            ))
            .await
            .map_err(|e| pg_error(&e))?;
        client
            .batch_execute("CREATE DATABASE app OWNER app")
            .await
            .map_err(|e| pg_error(&e))
    }

    pub fn switchover(&self, leader: &str, candidate: &str) -> Result<(), String> {
        let mut cmd = match self.setup.system {
            System::Pgbox => {
                let mut c = Command::new(PGBOXCTL);
                c.arg("switchover")
                    .arg("--config")
                    .arg(&self.node(leader).config)
                    .args(["--candidate", candidate]);
                c
            }
            System::Patroni => {
                let mut c = Command::new(self.venv.join("bin/patronictl"));
                c.arg("-c").arg(&self.node(leader).config).args([
                    "switchover",
                    "--leader",
                    leader,
                    "--candidate",
                    candidate,
                    "--force",
                ]);
                c
            }
        };
        let out = run_captured(
            "switchover",
            &mut cmd,
            self.dir.path(),
            Duration::from_secs(120),
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "switchover command failed ({}): {}",
                out.status,
                out.output().trim()
            ))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Supervisors before the router and etcd, so none of them spends its
        // last seconds failing over.
        self.nodes.clear();
        self.haproxy = None;
    }
}

/// The router with the same checks pgbox's own renders
/// (appliance/src/firstboot/render/haproxy.rs), bound to this cluster's
/// address only; every server starts down from the state file.
fn start_haproxy(dir: &TestDir, router: IpAddr, pg: &[(String, IpAddr)]) -> Result<Proc, String> {
    let state = dir.join("haproxy.state");
    let cfg_path = dir.join("haproxy.cfg");
    let mut cfg = format!(
        "global
    server-state-file {state}

defaults
    mode tcp
    load-server-state-from-file global
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 2s
    default-server inter 1s fastinter 500ms downinter 1s rise 1 fall 2 on-marked-down shutdown-sessions
",
        state = state.display()
    );
    let mut st = String::from(
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
         srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state \
         srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n",
    );
    for (be_id, (backend, port, uri)) in [
        ("primary", ROUTER_RW, "/primary"),
        ("replicas", ROUTER_RO, "/replica"),
    ]
    .into_iter()
    .enumerate()
    {
        let _ = write!(
            cfg,
            "
listen {backend}
    bind {router}:{port}
    option httpchk
    http-check send meth GET uri {uri}
    http-check expect status 200
"
        );
        for (srv_id, (name, addr)) in pg.iter().enumerate() {
            let _ = writeln!(
                cfg,
                "    server {name} {addr}:{PG_PORT} check port {API_PORT}"
            );
            let _ = writeln!(
                st,
                "{} {backend} {} {name} {addr} 0 0 1 1 0 1 0 0 0 0 0 0 - {PG_PORT} -",
                be_id + 1,
                srv_id + 1
            );
        }
    }
    std::fs::write(&state, st).map_err(|e| format!("write {}: {e}", state.display()))?;
    std::fs::write(&cfg_path, &cfg).map_err(|e| format!("write {}: {e}", cfg_path.display()))?;
    let mut cmd = Command::new(HAPROXY);
    cmd.arg("-db").arg("-f").arg(&cfg_path);
    Ok(spawn_logged("haproxy", &mut cmd, &dir.log_file("haproxy")))
}

fn patroni_yaml(
    setup: &Setup,
    scope: &str,
    name: &str,
    addr: IpAddr,
    etcd: &[(String, IpAddr)],
    home: &Path,
    secrets: &Secrets,
) -> String {
    let hosts = etcd
        .iter()
        .map(|(_, a)| format!("{a}:2379"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "scope: {scope}
namespace: /service/
name: {name}
restapi:
  listen: {addr}:{API_PORT}
  connect_address: {addr}:{API_PORT}
etcd3:
  hosts: [{hosts}]
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry}
    maximum_lag_on_failover: 1048576
    synchronous_mode: {sync}
    postgresql:
      use_pg_rewind: true
      use_slots: true
  initdb:
    - encoding: UTF8
    - data-checksums
    - no-locale
postgresql:
  listen: {addr}:{PG_PORT}
  connect_address: {addr}:{PG_PORT}
  data_dir: {home}/data
  bin_dir: {bin}
  pgpass: {home}/pgpass
  authentication:
    superuser:
      username: postgres
      password: \"{su}\"
    replication:
      username: replicator
      password: \"{repl}\"
  parameters:
    unix_socket_directories: {home}
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.0/8 scram-sha-256
    - host all all 127.0.0.0/8 scram-sha-256
",
        ttl = setup.ttl,
        loop_wait = (setup.loop_wait_ms / 1000).max(1),
        retry = setup.retry_timeout,
        sync = setup.sync,
        home = home.display(),
        bin = pg_bin_dir().display(),
        su = secrets.superuser,
        repl = secrets.replication,
    )
}
