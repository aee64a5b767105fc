//! The five VMs together: start, observe (through the host forwards), and
//! the health conditions scenarios wait for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::workload::PgTarget;
use crate::switch::Switch;
use crate::topology::{self, NodeSpec, Ports, Role, Secrets, Settings, NODES};
use crate::vm::{Accel, Image, Vm};
use serde_json::Value;

pub struct Cluster {
    pub vms: Vec<Vm>,
    pub ports: Ports,
    pub secrets: Secrets,
    pub settings: Settings,
    pub run: PathBuf,
    pub accel: Accel,
    http: reqwest::Client,
    pub switch: Switch,
}

#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub role: String,
    pub state: String,
    pub timeline: Option<u64>,
}

impl Cluster {
    pub fn create(
        run: &Path,
        image: &Image,
        accel: Accel,
        ports: Ports,
    ) -> Result<Cluster, String> {
        std::fs::create_dir_all(run).map_err(|e| e.to_string())?;
        let names: Vec<&str> = NODES.iter().map(|n| n.name).collect();
        let switch = Switch::start(run, &names).map_err(|e| format!("switch: {e}"))?;
        let secrets = Secrets::generate();
        let settings = Settings::default();
        let mut vms = Vec::new();
        for n in &NODES {
            let text = topology::first_boot_file(n.name, &secrets, &settings);
            vms.push(Vm::create(n, run, image, accel, ports, &text)?);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Cluster {
            vms,
            ports,
            secrets,
            settings,
            run: run.to_path_buf(),
            accel,
            http,
            switch,
        })
    }

    pub fn vm(&mut self, name: &str) -> &mut Vm {
        self.vms
            .iter_mut()
            .find(|v| v.spec.name == name)
            .expect("a VM of the topology")
    }

    /// `vm`, shared: for a fault injected while another request runs.
    pub fn vm_ref(&self, name: &str) -> &Vm {
        self.vms
            .iter()
            .find(|v| v.spec.name == name)
            .expect("a VM of the topology")
    }

    pub fn start_all(&mut self) -> Result<(), String> {
        for vm in &mut self.vms {
            vm.start()?;
        }
        Ok(())
    }

    pub async fn api(&self, node: &NodeSpec, path: &str) -> Result<(u16, Value), String> {
        let url = format!("http://127.0.0.1:{}{path}", self.ports.api(node));
        let r = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {}", crate::support::error_chain(&e)))?;
        let code = r.status().as_u16();
        let body = r.json::<Value>().await.unwrap_or(Value::Null);
        Ok((code, body))
    }

    pub async fn api_post(
        &self,
        node: &NodeSpec,
        path: &str,
        body: Value,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        let url = format!("http://127.0.0.1:{}{path}", self.ports.api(node));
        let r = self
            .http
            .post(&url)
            .basic_auth("pgbox", Some(&self.secrets.api))
            .timeout(timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("{url}: {}", crate::support::error_chain(&e)))?;
        let code = r.status().as_u16();
        Ok((code, r.text().await.unwrap_or_default()))
    }

    /// The members as a running PostgreSQL node's API reports them: the
    /// first node that answers.
    pub async fn members(&self) -> Result<Vec<Member>, String> {
        let mut last = String::from("no postgres node answered");
        for n in NODES.iter().filter(|n| n.has(Role::Postgres)) {
            match self.api(n, "/cluster").await {
                Ok((200, doc)) => {
                    let ms = doc["members"].as_array().cloned().unwrap_or_default();
                    return Ok(ms
                        .iter()
                        .map(|m| Member {
                            name: m["name"].as_str().unwrap_or("").to_string(),
                            role: m["role"].as_str().unwrap_or("").to_string(),
                            state: m["state"].as_str().unwrap_or("").to_string(),
                            timeline: m["timeline"].as_u64(),
                        })
                        .collect());
                }
                Ok((code, _)) => last = format!("{}: /cluster answered {code}", n.name),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn target(&self, port: u16) -> PgTarget {
        PgTarget {
            hosts: vec!["127.0.0.1".parse().unwrap()],
            port,
            user: "app".into(),
            password: self.secrets.app.clone(),
            dbname: "app".into(),
            read_write: false,
        }
    }

    /// Where a router's read-write port leads: the address of the server,
    /// which must be a primary.
    pub async fn router_leads_to(&self, router: &NodeSpec) -> Result<String, String> {
        let client = self.target(self.ports.rw(router)).connect().await?;
        let row = client
            .query_one("SELECT pg_is_in_recovery(), host(inet_server_addr())", &[])
            .await
            .map_err(|e| crate::support::error_chain(&e))?;
        let (recovery, addr): (bool, String) = (row.get(0), row.get(1));
        if recovery {
            return Err(format!(
                "{}'s router led to a replica ({addr})",
                router.name
            ));
        }
        Ok(addr)
    }

    /// The member on `node` has a leader and serves a linearizable read,
    /// asked as etcd's root through the host forward: over mutual TLS with
    /// the run's certificate (checked against the node's own address, not
    /// the forward's) when etcd runs TLS.
    pub async fn etcd_healthy(&self, node: &NodeSpec) -> Result<(), String> {
        use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
        let port = self.ports.etcd(node);
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(10))
            .with_require_leader(true);
        let url = if self.settings.etcd_tls {
            let t = &self.secrets.etcd_tls;
            opts = opts.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(&t.ca))
                    .identity(Identity::from_pem(&t.certificate, &t.private_key))
                    .domain_name(node.address()),
            );
            format!("https://127.0.0.1:{port}")
        } else {
            format!("http://127.0.0.1:{port}")
        };
        let with_root = opts.clone().with_user("root", self.secrets.etcd.clone());
        let check = async {
            // Before the first pgboxd turned authentication on, anonymously.
            let mut client = match Client::connect([url.as_str()], Some(with_root)).await {
                Ok(c) => c,
                Err(e) if e.to_string().contains("authentication is not enabled") => {
                    Client::connect([url.as_str()], Some(opts))
                        .await
                        .map_err(|e| e.to_string())?
                }
                Err(e) => return Err(e.to_string()),
            };
            client
                .get("health", None)
                .await
                .map_err(|e| e.to_string())?;
            let status = client.status().await.map_err(|e| e.to_string())?;
            if status.leader() == 0 {
                Err("no leader".to_string())
            } else {
                Ok(())
            }
        };
        match tokio::time::timeout(Duration::from_secs(15), check).await {
            Ok(r) => r.map_err(|e| format!("etcd on {}: {e}", node.name)),
            Err(_) => Err(format!("etcd on {}: no answer within 15s", node.name)),
        }
    }

    /// One leader running; every other running PostgreSQL VM streaming from
    /// it; every running router sending writes to it; every running etcd
    /// member healthy. Returns the leader's name.
    pub async fn healthy_once(&mut self) -> Result<String, String> {
        let running: Vec<&'static NodeSpec> = self
            .vms
            .iter_mut()
            .filter_map(|v| if v.is_running() { Some(v.spec) } else { None })
            .collect();
        let members = self.members().await?;
        let leaders: Vec<&Member> = members.iter().filter(|m| m.role == "leader").collect();
        if leaders.len() != 1 || leaders[0].state != "running" {
            return Err(format!(
                "leader not (only one) running: {}",
                describe(&members)
            ));
        }
        let leader = leaders[0].name.clone();
        for n in running
            .iter()
            .filter(|n| n.has(Role::Postgres) && n.name != leader)
        {
            let ok = members
                .iter()
                .any(|m| m.name == n.name && m.state == "streaming");
            if !ok {
                return Err(format!("{} not streaming: {}", n.name, describe(&members)));
            }
        }
        let leader_addr = topology::node(&leader).address();
        for n in running.iter().filter(|n| n.has(Role::Router)) {
            let to = self
                .router_leads_to(n)
                .await
                .map_err(|e| format!("router on {}: {e}", n.name))?;
            if to != leader_addr {
                return Err(format!(
                    "router on {} leads to {to}, the leader is {leader}",
                    n.name
                ));
            }
        }
        for n in running.iter().filter(|n| n.has(Role::Etcd)) {
            self.etcd_healthy(n).await?;
        }
        Ok(leader)
    }

    pub async fn wait_healthy(&mut self, timeout: Duration) -> Result<String, String> {
        let start = Instant::now();
        loop {
            let last =
                match tokio::time::timeout(Duration::from_secs(30), self.healthy_once()).await {
                    Ok(Ok(l)) => return Ok(l),
                    Ok(Err(e)) => e,
                    Err(_) => "health probe took over 30 s".to_string(),
                };
            if start.elapsed() > timeout {
                return Err(format!("cluster not healthy after {:.0?}: {last}", timeout));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn leader_and_sync(&self) -> Result<(String, Option<String>), String> {
        let members = self.members().await?;
        let leader = members
            .iter()
            .find(|m| m.role == "leader")
            .map(|m| m.name.clone())
            .ok_or("no leader")?;
        let sync = members
            .iter()
            .find(|m| m.role == "sync_standby")
            .map(|m| m.name.clone());
        Ok((leader, sync))
    }

    /// A client on `node`'s PostgreSQL directly (through its forward).
    pub async fn direct(&self, node: &NodeSpec) -> Result<tokio_postgres::Client, String> {
        self.target(self.ports.postgres(node)).connect().await
    }

    /// Empties the workload table, so that the next workload's ids (from 1
    /// again) are checked against its own writes only.
    pub async fn reset_table(&mut self) -> Result<(), String> {
        let leader = self.wait_healthy(Duration::from_secs(300)).await?;
        let c = self.direct(topology::node(&leader)).await?;
        c.batch_execute("DROP TABLE IF EXISTS pgbox_writes")
            .await
            .map_err(|e| crate::support::error_chain(&e))
    }

    pub async fn wait_up_marks(
        &mut self,
        name: &str,
        boots: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        let start = Instant::now();
        let vm = self.vm(name);
        loop {
            if !vm.is_running() {
                return Err(format!(
                    "{name}: QEMU is not running (see {}/qemu.log)",
                    vm.dir.display()
                ));
            }
            if vm.up_marks() >= boots {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "{name} did not reach multi-user within {timeout:.0?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub fn log_offsets(&self) -> Vec<(u64, u64)> {
        self.vms.iter().map(|v| v.log_len()).collect()
    }

    pub fn collect_logs(&self, from: &[(u64, u64)], dest: &Path) {
        for (vm, off) in self.vms.iter().zip(from) {
            vm.collect_logs(*off, dest);
        }
    }

    /// How a person reaches the cluster that `--keep` leaves running.
    pub fn access_help(&self) -> String {
        let mut s = String::new();
        for n in &NODES {
            let f: Vec<String> = self
                .ports
                .forwards(n)
                .iter()
                .map(|(h, g)| format!("{g}→127.0.0.1:{h}"))
                .collect();
            s.push_str(&format!(
                "  {:<6} {:<11} {}\n",
                n.name,
                n.address(),
                f.join("  ")
            ));
        }
        s.push_str(&format!(
            "  app password: {}\n  API password (user pgbox): {}\n  e.g. pgboxctl list --api http://127.0.0.1:{}\n      psql 'host=127.0.0.1 port={} user=app dbname=app'\n  QMP: {}/<node>/qmp.sock; serial logs: {}/<node>/console.log\n",
            self.secrets.app,
            self.secrets.api,
            self.ports.api(&NODES[0]),
            self.ports.rw(&NODES[3]),
            self.run.display(),
            self.run.display()
        ));
        s
    }
}

pub fn describe(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}/{}", m.name, m.role, m.state))
        .collect::<Vec<_>>()
        .join(" ")
}
