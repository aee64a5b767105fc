//! pgboxd nodes and a whole test cluster: 3 etcd members plus 2 or 3 pgboxd
//! nodes, each pgboxd owning one real PostgreSQL server.

use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use super::etcd::{EtcdAccess, EtcdCluster};
use super::workload::PgTarget;
use super::{
    file_len, mkdir_mode, read_from, run_captured, spawn_logged, strong_secret, wait_until, Proc,
    Subnet, TestDir,
};

pub const PGBOXD: &str = env!("CARGO_BIN_EXE_pgboxd");
pub const PGBOXCTL: &str = env!("CARGO_BIN_EXE_pgboxctl");
pub const PG_PORT: u16 = 5432;
pub const API_PORT: u16 = 8008;

/// Generous by design: a loaded 2-core machine. Timings are for benchmarks;
/// tests only assert that things happen at all within a sane bound.
pub const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(120);
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);
pub const REJOIN_TIMEOUT: Duration = Duration::from_secs(120);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct PgboxNode {
    pub name: String,
    pub address: IpAddr,
    config: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    /// Where the log stood when the current run started.
    log_start: u64,
    proc: Option<Proc>,
    http: reqwest::Client,
    /// PGBOX_PGDATA_TEMPLATE for pgboxd; None: unset.
    pub pgdata_template: Option<PathBuf>,
}

impl PgboxNode {
    /// The postmaster's pid, from its pid file.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data_dir.join("postgres/postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn new(dir: &TestDir, name: &str, address: IpAddr, config: &Path) -> PgboxNode {
        let node_dir = dir.join(name);
        mkdir_mode(&node_dir, 0o755);
        let data_dir = node_dir.join("data");
        // Created up front so restarts and first starts look the same to
        // pgboxd; it takes ownership (chown) itself.
        mkdir_mode(&data_dir, 0o700);
        PgboxNode {
            name: name.to_string(),
            address,
            config: config.to_path_buf(),
            data_dir,
            log: dir.log_file(name),
            log_start: 0,
            proc: None,
            pgdata_template: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .connect_timeout(Duration::from_secs(2))
                .no_proxy()
                .build()
                .expect("http client"),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `pgboxd --config FILE --node NAME --data-dir DIR` in its own process
    /// group, so that a kill of the group is a power loss of the box.
    pub fn start(&mut self) {
        assert!(!self.is_running(), "{} is already running", self.name);
        self.proc = None;
        self.log_start = file_len(&self.log);
        let mut cmd = Command::new(PGBOXD);
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--node")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir);
        // Plain text in the log files.
        cmd.env("NO_COLOR", "1");
        if let Some(t) = &self.pgdata_template {
            cmd.env("PGBOX_PGDATA_TEMPLATE", t);
        }
        self.proc = Some(spawn_logged(
            &format!("pgboxd {}", self.name),
            &mut cmd,
            &self.log,
        ));
    }

    /// pgboxd's own pid (not its process group: signals sent here reach
    /// pgboxd alone, not its PostgreSQL).
    pub fn pgboxd_pid(&self) -> Option<i32> {
        self.proc
            .as_ref()
            .filter(|p| p.is_running())
            .map(|p| p.pid())
    }

    pub fn is_running(&self) -> bool {
        self.proc.as_ref().is_some_and(|p| p.is_running())
    }

    /// A signal to pgboxd alone (SIGSTOP hangs the supervisor while its
    /// PostgreSQL, a child in sessions of its own, goes on serving).
    pub fn signal_pgboxd(&self, sig: Signal) {
        self.proc
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.name))
            .signal_leader(sig);
    }

    /// Panics if pgboxd was started and has exited since: a node the test
    /// waits on must not die on its own, and waiting longer cannot help.
    pub fn assert_alive(&self) {
        if let Some(status) = self.proc.as_ref().and_then(|p| p.exit_status()) {
            panic!(
                "pgboxd {} exited on its own ({status}); its log since start:\n{}",
                self.name,
                tail_lines(&self.log_since_start(), 30)
            );
        }
    }

    /// Power loss: pgboxd, PostgreSQL and everything else of the node is
    /// frozen and killed at once; returns once none of it is left, with the
    /// instant of the freeze (nothing of the node ran after it).
    pub fn kill(&mut self) -> Instant {
        let proc = self
            .proc
            .take()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        proc.kill_tree()
    }

    /// Clean stop: SIGTERM to pgboxd, which must stop PostgreSQL and exit.
    /// Panics if it takes longer than `STOP_TIMEOUT` or leaves processes behind.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        let proc = self
            .proc
            .take()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        let before = proc.tree_pids();
        proc.signal_leader(Signal::SIGTERM);
        let status = match proc.wait_exit(STOP_TIMEOUT).await {
            Ok(status) => status,
            Err(()) => {
                proc.kill_tree();
                panic!(
                    "pgboxd {} did not exit within {STOP_TIMEOUT:?} of SIGTERM",
                    self.name
                );
            }
        };
        if let Err(left) = proc.wait_gone(&before, Duration::from_secs(30)) {
            proc.kill_tree();
            panic!(
                "pgboxd {} exited ({status}) but left processes behind: {left}",
                self.name
            );
        }
        status
    }

    /// GET http://ADDRESS:8008/PATH → (status, body as JSON; a non-JSON body
    /// becomes a JSON string, an empty one null). Err when nothing answers.
    pub async fn api_get(&self, path: &str) -> Result<(u16, Value), String> {
        let url = format!("http://{}:{API_PORT}{path}", self.address);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", super::error_chain(&e)))?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("GET {url}: body: {}", super::error_chain(&e)))?;
        let json = if body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body).unwrap_or(Value::String(body))
        };
        Ok((status, json))
    }

    /// Status code only; None when the API does not answer.
    pub async fn api_status(&self, path: &str) -> Option<u16> {
        self.api_get(path).await.ok().map(|(s, _)| s)
    }

    /// GET /patroni, Err unless it answers 200 or 503 with a JSON object.
    pub async fn patroni(&self) -> Result<Value, String> {
        match self.api_get("/patroni").await? {
            (200 | 503, v @ Value::Object(_)) => Ok(v),
            (s, v) => Err(format!("/patroni answered {s}: {v}")),
        }
    }

    /// The whole log of this node (every run).
    pub fn log_text(&self) -> String {
        read_from(&self.log, 0)
    }

    /// The log of the current (or last) run only.
    pub fn log_since_start(&self) -> String {
        read_from(&self.log, self.log_start)
    }

    /// One line of what the API says, for timeout messages.
    pub async fn describe(&self) -> String {
        let primary = self.api_status("/primary").await;
        let replica = self.api_status("/replica").await;
        let show = |s: Option<u16>| s.map(|s| s.to_string()).unwrap_or_else(|| "down".into());
        let mut s = format!(
            "{}: /primary {} /replica {}",
            self.name,
            show(primary),
            show(replica)
        );
        if let Ok(p) = self.patroni().await {
            let _ = write!(
                s,
                " role={} state={} timeline={} replication_state={}",
                p["role"], p["state"], p["timeline"], p["replication_state"]
            );
        }
        s
    }
}

#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// 2 or 3 PostgreSQL nodes (db1, db2, db3).
    pub pg_nodes: usize,
    pub ttl: &'static str,
    pub loop_wait: &'static str,
    /// Appended verbatim to pgbox.yaml (top-level keys).
    pub extra_yaml: String,
    /// Make a data directory template (`pgboxd make-pgdata-template`) and
    /// let the nodes bootstrap from it instead of running initdb, as in the
    /// image.
    pub pgdata_template: bool,
    /// Run etcd as the image does (from what `pgboxd firstboot` renders),
    /// with mutual TLS from a CA made by `pgboxctl tls init`'s code.
    pub etcd_tls: bool,
    /// `ha.synchronous_mode` (`on` when None, pgbox's default).
    pub synchronous_mode: Option<&'static str>,
    /// A backup node `bk` (127.0.N.31) running `pgboxd repository`, and a
    /// `backup:` section with these lines besides its certificate (each
    /// indented two spaces, such as "  archive_timeout: 5s").
    pub backup: Option<&'static str>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            pg_nodes: 2,
            ttl: "5s",
            loop_wait: "500ms",
            extra_yaml: String::new(),
            pgdata_template: false,
            etcd_tls: false,
            synchronous_mode: None,
            backup: None,
        }
    }
}

pub struct Secrets {
    pub superuser: String,
    pub replication: String,
    pub app: String,
    /// pgboxd's etcd user and etcd's root.
    pub etcd: String,
    pub api: String,
}

impl Secrets {
    /// A long, distinct secret of each kind, new for every call.
    pub fn fresh() -> Secrets {
        Secrets {
            superuser: strong_secret("su"),
            replication: strong_secret("repl"),
            app: strong_secret("app"),
            etcd: strong_secret("etcd"),
            api: strong_secret("api"),
        }
    }
}

/// The observed roles once the cluster has settled.
#[derive(Clone, Debug)]
pub struct Roles {
    pub primary: String,
    pub replicas: Vec<String>,
    pub timeline: i64,
}

pub struct TestCluster {
    // Field order is drop order: pgboxd nodes first (so they do not spend
    // their last seconds logging etcd errors), then etcd, then the directory
    // (which prints the logs of a failed test).
    nodes: Vec<PgboxNode>,
    /// `pgboxd repository` on the backup node, with `backup` set.
    pub repository: Option<Repository>,
    pub etcd: EtcdCluster,
    pub config_path: PathBuf,
    pub cluster_name: String,
    pub secrets: Secrets,
    pub subnet: Subnet,
    /// Synchronous mode on (a settled cluster has a synchronous standby).
    pub synchronous: bool,
    pub dir: TestDir,
}

impl TestCluster {
    /// Writes pgbox.yaml, starts the etcd members and every pgboxd node. Does
    /// not wait for PostgreSQL; see `wait_for_roles`.
    pub async fn start(test_name: &str, opts: ClusterOptions) -> TestCluster {
        assert!((2..=3).contains(&opts.pg_nodes), "2 or 3 PostgreSQL nodes");
        let dir = TestDir::new(test_name);
        let subnet = Subnet::allocate();
        let cluster_name = format!("t{}p{}", subnet.n(), std::process::id());
        let secrets = Secrets::fresh();
        let etcd_nodes: Vec<(String, IpAddr)> = (1..=3)
            .map(|i| (format!("e{i}"), subnet.ip(10 + i)))
            .collect();
        let pg_nodes: Vec<(String, IpAddr)> = (1..=opts.pg_nodes as u8)
            .map(|i| (format!("db{i}"), subnet.ip(20 + i)))
            .collect();

        let mut opts = opts;
        let mut access = EtcdAccess {
            root_password: Some(secrets.etcd.clone()),
            tls: None,
        };
        if opts.etcd_tls {
            let addrs =
                |nodes: &[(String, IpAddr)]| nodes.iter().map(|(_, a)| *a).collect::<Vec<_>>();
            // A member checks a peer's certificate against the address the
            // peer's connection comes from: on loopback that is 127.0.0.1
            // for every member (on a real box, the node's own address).
            let mut etcd_names = addrs(&etcd_nodes);
            etcd_names.push(IpAddr::from([127, 0, 0, 1]));
            let made =
                pgbox::ctl::tls_init::generate(&cluster_name, &addrs(&pg_nodes), &etcd_names)
                    .expect("make a CA and certificates");
            opts.extra_yaml.push_str(&made.etcd_yaml());
            access.tls = Some((made.etcd_cert_pem, made.etcd_key_pem, made.ca_pem));
        }
        let backup_node = opts.backup.map(|_| ("bk".to_string(), subnet.ip(31)));
        if let (Some(lines), Some((_, bk))) = (opts.backup, &backup_node) {
            let mut addrs: Vec<IpAddr> = pg_nodes.iter().map(|(_, a)| *a).collect();
            addrs.push(*bk);
            let made = pgbox::ctl::tls_init::generate_with_backup(&cluster_name, &[], &[], &addrs)
                .expect("make a CA and a backup certificate");
            opts.extra_yaml
                .push_str(&made.backup_yaml().expect("a backup certificate"));
            let repo = dir.join("bk/repository");
            opts.extra_yaml
                .push_str(&format!("  path: {}\n", repo.display()));
            opts.extra_yaml.push_str(lines);
            if !lines.ends_with('\n') {
                opts.extra_yaml.push('\n');
            }
        }
        let yaml = cluster_yaml(
            &cluster_name,
            &etcd_nodes,
            &pg_nodes,
            backup_node.as_ref(),
            &secrets,
            &opts,
        );
        let config_path = dir.join("pgbox.yaml");
        fs::write(&config_path, &yaml).expect("write pgbox.yaml");
        println!(
            "test cluster {cluster_name} in {} on 127.0.{}.0/24",
            dir.path().display(),
            subnet.n()
        );

        let members: Vec<(&str, IpAddr)> =
            etcd_nodes.iter().map(|(n, ip)| (n.as_str(), *ip)).collect();
        let etcd = if opts.etcd_tls {
            EtcdCluster::start_rendered(&dir, &members, &config_path, access).await
        } else {
            let mut etcd = EtcdCluster::start(&dir, &members).await;
            // pgboxd turns etcd authentication on at its first connection.
            etcd.set_root_password(&secrets.etcd);
            etcd
        };

        let template = opts.pgdata_template.then(|| {
            let t = dir.join("pgdata-template");
            let run = run_captured(
                "make-pgdata-template",
                Command::new(PGBOXD).arg("make-pgdata-template").arg(&t),
                dir.path(),
                Duration::from_secs(300),
            );
            assert!(
                run.status.success(),
                "make-pgdata-template: {}",
                run.output()
            );
            t
        });
        let mut nodes: Vec<PgboxNode> = pg_nodes
            .iter()
            .map(|(name, ip)| PgboxNode::new(&dir, name, *ip, &config_path))
            .collect();
        for node in nodes.iter_mut() {
            node.pgdata_template = template.clone();
            node.start();
        }
        let repository = backup_node.map(|(name, address)| {
            let mut r = Repository::new(&dir, &name, address, &config_path);
            r.start();
            r
        });
        TestCluster {
            nodes,
            repository,
            etcd,
            config_path,
            cluster_name,
            secrets,
            subnet,
            synchronous: opts.synchronous_mode.is_none_or(|m| m != "off"),
            dir,
        }
    }

    pub fn node(&self, name: &str) -> &PgboxNode {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn node_mut(&mut self, name: &str) -> &mut PgboxNode {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn nodes(&self) -> &[PgboxNode] {
        &self.nodes
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// The app user on every PostgreSQL node, writable server only: what an
    /// application without a router would use.
    pub fn app_target(&self) -> PgTarget {
        PgTarget {
            hosts: self.nodes.iter().map(|n| n.address).collect(),
            port: PG_PORT,
            user: "app".into(),
            password: self.secrets.app.clone(),
            dbname: "app".into(),
            read_write: true,
        }
    }

    /// The app user on one node, whatever its role.
    pub fn app_target_on(&self, name: &str) -> PgTarget {
        self.app_target().only(self.node(name).address)
    }

    /// One look at `expected` nodes: Ok when exactly one is the writable
    /// primary (/primary 200) and every other one a streaming replica
    /// (/primary 503, /replica 200, replication_state "streaming"), all on the
    /// same timeline; Err describes what was seen instead.
    pub async fn observe_roles(&self, expected: &[&str]) -> Result<Roles, String> {
        let mut primaries = Vec::new();
        let mut replicas = Vec::new();
        let mut timelines = Vec::new();
        let mut problems = Vec::new();
        for name in expected {
            let node = self.node(name);
            node.assert_alive();
            let primary = node.api_status("/primary").await;
            let replica = node.api_status("/replica").await;
            let patroni = node.patroni().await.unwrap_or(Value::Null);
            let timeline = patroni["timeline"].as_i64();
            match (primary, replica) {
                (Some(200), _) => {
                    primaries.push(name.to_string());
                    timelines.push((name.to_string(), timeline));
                }
                (Some(503), Some(200)) if patroni["replication_state"] == "streaming" => {
                    replicas.push(name.to_string());
                    timelines.push((name.to_string(), timeline));
                }
                _ => problems.push(node.describe().await),
            }
        }
        let state = format!(
            "primaries {primaries:?}, streaming replicas {replicas:?}, timelines {timelines:?}; others: {problems:?}"
        );
        if primaries.len() != 1 || !problems.is_empty() {
            return Err(state);
        }
        // In synchronous mode (the default) a failover is possible only once
        // the leader has recorded its synchronous standby: wait for that too.
        if self.synchronous && !replicas.is_empty() {
            let cluster = self
                .node(&primaries[0])
                .api_get("/cluster")
                .await
                .map(|(_, v)| v)
                .unwrap_or(Value::Null);
            let has_sync = cluster["members"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["role"] == "sync_standby"));
            if !has_sync {
                return Err(format!("no synchronous standby recorded yet: {state}"));
            }
        }
        let tl = timelines[0].1;
        match tl {
            Some(tl) if timelines.iter().all(|(_, t)| *t == Some(tl)) => Ok(Roles {
                primary: primaries[0].clone(),
                replicas,
                timeline: tl,
            }),
            _ => Err(format!("timelines differ or unknown: {state}")),
        }
    }

    /// Stops `workload` and checks every acknowledged write against
    /// `primary`: nothing lost (synchronous mode), duplicated or invented.
    pub async fn stop_and_check_no_loss(
        &self,
        workload: super::workload::Workload,
        primary: &str,
        faults: &[(&str, std::time::Instant)],
    ) -> (super::workload::WorkloadRecord, super::checker::CheckReport) {
        let record = workload.stop().await;
        let client = self
            .app_target_on(primary)
            .connect()
            .await
            .expect("app user on the primary");
        let report = super::checker::check(&record, &client, faults)
            .await
            .expect("checker");
        println!("{report}");
        assert!(
            report.missing.is_empty(),
            "acknowledged writes lost: {report}"
        );
        assert!(
            report.phantoms.is_empty() && report.duplicates.is_empty(),
            "{report}"
        );
        (record, report)
    }

    /// Waits (bounded) for `observe_roles` to succeed.
    pub async fn wait_for_roles(&self, expected: &[&str], timeout: Duration, what: &str) -> Roles {
        wait_until(timeout, what, async || self.observe_roles(expected).await).await
    }

    /// Waits until `name` answers /primary with 200.
    /// Bootstrap of db1 and db2, then the standard write workload through
    /// the cluster until 100 writes are acknowledged: the start of most
    /// fault tests.
    pub async fn bootstrap_under_load(&self) -> (Roles, super::workload::Workload) {
        self.bootstrap_under_load_with(super::workload::WorkloadOptions::default())
            .await
    }

    pub async fn bootstrap_under_load_with(
        &self,
        opts: super::workload::WorkloadOptions,
    ) -> (Roles, super::workload::Workload) {
        let roles = self
            .wait_for_roles(&["db1", "db2"], BOOTSTRAP_TIMEOUT, "bootstrap")
            .await;
        let workload = super::workload::Workload::start(self.app_target(), opts);
        workload
            .wait_acks_after(
                Instant::now(),
                100,
                Duration::from_secs(60),
                "100 acknowledged writes",
            )
            .await;
        (roles, workload)
    }

    pub async fn wait_for_primary(&self, name: &str, timeout: Duration, what: &str) {
        let node = self.node(name);
        wait_until(timeout, what, async || {
            node.assert_alive();
            match node.api_status("/primary").await {
                Some(200) => Ok(()),
                _ => Err(node.describe().await),
            }
        })
        .await
    }

    /// Nodes answering /primary 200 right now.
    pub async fn current_primaries(&self) -> Vec<String> {
        let mut out = Vec::new();
        for node in &self.nodes {
            if node.api_status("/primary").await == Some(200) {
                out.push(node.name.clone());
            }
        }
        out
    }

    pub async fn describe(&self) -> String {
        let mut parts = Vec::new();
        for node in &self.nodes {
            parts.push(node.describe().await);
        }
        parts.join("; ")
    }
}

/// pgbox.yaml for a test cluster, in the shape a user writes it.
pub fn cluster_yaml(
    cluster_name: &str,
    etcd_nodes: &[(String, IpAddr)],
    pg_nodes: &[(String, IpAddr)],
    backup_node: Option<&(String, IpAddr)>,
    secrets: &Secrets,
    opts: &ClusterOptions,
) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "cluster: {{name: {cluster_name}}}");
    let _ = writeln!(y, "nodes:");
    for (name, ip) in etcd_nodes {
        let _ = writeln!(y, "  - {{name: {name}, address: {ip}, roles: [etcd]}}");
    }
    for (name, ip) in pg_nodes {
        let _ = writeln!(y, "  - {{name: {name}, address: {ip}, roles: [postgres]}}");
    }
    if let Some((name, ip)) = backup_node {
        let _ = writeln!(y, "  - {{name: {name}, address: {ip}, roles: [backup]}}");
    }
    let _ = writeln!(y, "secrets:");
    let _ = writeln!(y, "  superuser_password: \"{}\"", secrets.superuser);
    let _ = writeln!(y, "  replication_password: \"{}\"", secrets.replication);
    let _ = writeln!(y, "  app_password: \"{}\"", secrets.app);
    let _ = writeln!(y, "  etcd_password: \"{}\"", secrets.etcd);
    let _ = writeln!(y, "  api_password: \"{}\"", secrets.api);
    // Never the host's watchdog: these tests SIGKILL pgboxd on purpose, and
    // an armed hardware watchdog would then reset the test machine.
    let sync = opts
        .synchronous_mode
        .map(|m| format!(", synchronous_mode: {m}"))
        .unwrap_or_default();
    let _ = writeln!(
        y,
        "ha: {{ttl: {}, loop_wait: {}, watchdog: off{sync}}}",
        opts.ttl, opts.loop_wait
    );
    // The tests' clients connect from 127.0.0.1 (the source of any unbound
    // loopback connection): declared like any application network.
    let _ = writeln!(y, "network: {{client_networks: [127.0.0.1]}}");
    y.push_str(&opts.extra_yaml);
    y
}

pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `pgboxd repository` on the backup node: the pgBackRest repository, its
/// TLS server, the schedule and the backup API.
pub struct Repository {
    pub name: String,
    pub address: IpAddr,
    config: PathBuf,
    pub data_dir: PathBuf,
    /// pgboxd's data directory of each PostgreSQL node, `{node}` for its name.
    member_pattern: String,
    log: PathBuf,
    proc: Option<Proc>,
    http: reqwest::Client,
}

impl Repository {
    fn new(dir: &TestDir, name: &str, address: IpAddr, config: &Path) -> Repository {
        let node_dir = dir.join(name);
        mkdir_mode(&node_dir, 0o755);
        let data_dir = node_dir.join("data");
        mkdir_mode(&data_dir, 0o755);
        Repository {
            name: name.to_string(),
            address,
            config: config.to_path_buf(),
            data_dir,
            member_pattern: dir.join("{node}/data").display().to_string(),
            log: dir.log_file(name),
            proc: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .no_proxy()
                .build()
                .expect("http client"),
        }
    }

    pub fn start(&mut self) {
        let mut cmd = Command::new(PGBOXD);
        cmd.arg("repository")
            .arg("--config")
            .arg(&self.config)
            .arg("--node")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--member-data-dir")
            .arg(&self.member_pattern)
            .env("NO_COLOR", "1");
        self.proc = Some(spawn_logged(
            &format!("pgboxd repository {}", self.name),
            &mut cmd,
            &self.log,
        ));
    }

    pub fn log_text(&self) -> String {
        read_from(&self.log, 0)
    }

    /// GET /backups: what the repository holds.
    pub async fn backups(&self) -> Result<Value, String> {
        let url = format!("http://{}:{API_PORT}/backups", self.address);
        let resp = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", super::error_chain(&e)))?;
        resp.json()
            .await
            .map_err(|e| format!("GET {url}: {}", super::error_chain(&e)))
    }

    /// POST /backup with the API password; (status, body).
    pub async fn take_backup(&self, kind: &str, password: &str) -> Result<(u16, Value), String> {
        let url = format!("http://{}:{API_PORT}/backup", self.address);
        let resp = self
            .http
            .post(&url)
            .basic_auth("pgbox", Some(password))
            .json(&serde_json::json!({ "type": kind }))
            .send()
            .await
            .map_err(|e| format!("POST {url}: {}", super::error_chain(&e)))?;
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// The pgBackRest configuration this node's service wrote.
    pub fn pgbackrest_conf(&self) -> PathBuf {
        self.data_dir.join("pgbackrest.conf")
    }
}
