//! The five-node reference cluster as the harness builds it:
//! addresses on the harness's own switch, host ports, and the first-boot
//! file every VM gets.

use std::fmt::Write;

/// A private subnet that exists only on the harness's switch.
pub const SUBNET: &str = "10.88.0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Postgres,
    Etcd,
    Router,
}

impl Role {
    fn yaml(self) -> &'static str {
        match self {
            Role::Postgres => "postgres",
            Role::Etcd => "etcd",
            Role::Router => "router",
        }
    }
}

#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: &'static str,
    pub index: usize,
    pub roles: &'static [Role],
}

pub const NODES: [NodeSpec; 5] = [
    NodeSpec {
        name: "db1",
        index: 0,
        roles: &[Role::Postgres, Role::Etcd],
    },
    NodeSpec {
        name: "db2",
        index: 1,
        roles: &[Role::Postgres, Role::Etcd],
    },
    NodeSpec {
        name: "coord",
        index: 2,
        roles: &[Role::Etcd, Role::Router],
    },
    NodeSpec {
        name: "app1",
        index: 3,
        roles: &[Role::Router],
    },
    NodeSpec {
        name: "app2",
        index: 4,
        roles: &[Role::Router],
    },
];

pub fn node(name: &str) -> &'static NodeSpec {
    NODES
        .iter()
        .find(|n| n.name == name)
        .expect("a node of the topology")
}

impl NodeSpec {
    pub fn has(&self, r: Role) -> bool {
        self.roles.contains(&r)
    }
    pub fn address(&self) -> String {
        format!("{SUBNET}.{}", 11 + self.index)
    }
    pub fn mac(&self) -> String {
        format!("52:54:00:88:00:{:02x}", 0x11 + self.index)
    }
    /// The address this VM's own user-mode stack (the host forward) takes on
    /// the segment: one per VM, so that the five never answer for each other.
    pub fn forward_source(&self) -> String {
        format!("{SUBNET}.{}", 201 + self.index)
    }
    pub fn forward_dns(&self) -> String {
        format!("{SUBNET}.{}", 221 + self.index)
    }
}

/// Host ports on 127.0.0.1, ten per VM from `base`.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub base: u16,
}

impl Ports {
    fn port(&self, n: &NodeSpec, slot: u16) -> u16 {
        self.base + 10 * n.index as u16 + slot
    }
    pub fn api(&self, n: &NodeSpec) -> u16 {
        self.port(n, 0)
    }
    pub fn postgres(&self, n: &NodeSpec) -> u16 {
        self.port(n, 1)
    }
    pub fn rw(&self, n: &NodeSpec) -> u16 {
        self.port(n, 2)
    }
    pub fn ro(&self, n: &NodeSpec) -> u16 {
        self.port(n, 3)
    }
    pub fn etcd(&self, n: &NodeSpec) -> u16 {
        self.port(n, 4)
    }
    /// (host port, guest port) of every service this node runs.
    pub fn forwards(&self, n: &NodeSpec) -> Vec<(u16, u16)> {
        let mut v = Vec::new();
        if n.has(Role::Postgres) {
            v.push((self.api(n), 8008));
            v.push((self.postgres(n), 5432));
        }
        if n.has(Role::Router) {
            v.push((self.rw(n), 5000));
            v.push((self.ro(n), 5001));
        }
        if n.has(Role::Etcd) {
            v.push((self.etcd(n), 2379));
        }
        v
    }
}

#[derive(Clone, Debug)]
pub struct Secrets {
    pub superuser: String,
    pub replication: String,
    pub app: String,
    pub etcd: String,
    pub api: String,
    /// etcd's certificate, from a cluster CA made for this run.
    pub etcd_tls: EtcdTls,
}

/// `etcd.tls` of the run: mutual TLS on both etcd ports.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    pub certificate: String,
    pub private_key: String,
    pub ca: String,
    /// The `tls:` block, indented to go under `etcd:`.
    pub yaml: String,
}

impl EtcdTls {
    fn generate() -> EtcdTls {
        let ip = |n: &NodeSpec| n.address().parse::<std::net::IpAddr>().expect("an address");
        let pg: Vec<_> = NODES
            .iter()
            .filter(|n| n.has(Role::Postgres))
            .map(ip)
            .collect();
        let etcd: Vec<_> = NODES.iter().filter(|n| n.has(Role::Etcd)).map(ip).collect();
        let made = pgbox::ctl::tls_init::generate("vmtest", &pg, &etcd).expect("a cluster CA");
        let yaml = made.etcd_yaml();
        EtcdTls {
            certificate: made.etcd_cert_pem,
            private_key: made.etcd_key_pem,
            ca: made.ca_pem,
            yaml: yaml
                .strip_prefix("etcd:\n")
                .expect("an etcd: block")
                .to_string(),
        }
    }
}

impl Secrets {
    /// Fresh each run, so that no file ever holds a reusable password.
    pub fn generate() -> Secrets {
        Secrets {
            superuser: secret(),
            replication: secret(),
            app: secret(),
            etcd: secret(),
            api: secret(),
            etcd_tls: EtcdTls::generate(),
        }
    }
}

fn secret() -> String {
    use std::io::Read;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut raw = [0u8; 64];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .expect("reading /dev/urandom");
    // 256 is not a multiple of the alphabet's size: drop the biased tail.
    let limit = 256 - 256 % ALPHABET.len();
    raw.iter()
        .filter(|&&b| (b as usize) < limit)
        .take(28)
        .map(|&b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Cluster settings that held up under TCG on two shared cores:
/// etcd at 500 ms / 5 s (its shortest lease is then 8 s), a 10 s lease.
#[derive(Clone, Debug)]
pub struct Settings {
    pub ttl_s: u32,
    pub loop_wait_s: u32,
    pub heartbeat_ms: u32,
    pub election_ms: u32,
    pub synchronous_mode: &'static str,
    pub watchdog: &'static str,
    /// Mutual TLS on etcd's ports (`etcd.tls`), as a careful operator runs it.
    pub etcd_tls: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ttl_s: 10,
            loop_wait_s: 1,
            heartbeat_ms: 500,
            election_ms: 5000,
            synchronous_mode: "on",
            watchdog: "automatic",
            etcd_tls: true,
        }
    }
}

/// The first-boot file of `node`: the same cluster description for every
/// VM, only `node:` differs.
pub fn first_boot_file(node: &str, secrets: &Secrets, s: &Settings) -> String {
    let mut y = String::new();
    y.push_str("# Written by pgbox-vmtest for one VM of the five-node test cluster.\n");
    y.push_str("cluster:\n  name: vmtest\n");
    let _ = writeln!(y, "node: {node}");
    y.push_str("nodes:\n");
    for n in &NODES {
        let roles: Vec<&str> = n.roles.iter().map(|r| r.yaml()).collect();
        let _ = writeln!(y, "  - name: {}", n.name);
        let _ = writeln!(y, "    address: {}", n.address());
        let _ = writeln!(y, "    roles: [{}]", roles.join(", "));
        // Each VM has one NIC, but naming it keeps the rendered network file
        // from matching anything else a future harness adds.
        let _ = writeln!(y, "    mac: \"{}\"", n.mac());
    }
    y.push_str("secrets:\n");
    let _ = writeln!(y, "  superuser_password: \"{}\"", secrets.superuser);
    let _ = writeln!(y, "  replication_password: \"{}\"", secrets.replication);
    let _ = writeln!(y, "  app_password: \"{}\"", secrets.app);
    let _ = writeln!(y, "  etcd_password: \"{}\"", secrets.etcd);
    let _ = writeln!(y, "  api_password: \"{}\"", secrets.api);
    y.push_str("ha:\n");
    let _ = writeln!(y, "  ttl: {}s", s.ttl_s);
    let _ = writeln!(y, "  loop_wait: {}s", s.loop_wait_s);
    let _ = writeln!(y, "  synchronous_mode: \"{}\"", s.synchronous_mode);
    let _ = writeln!(y, "  watchdog: {}", s.watchdog);
    // The host reaches each VM through that VM's user-mode stack, whose
    // address on the segment (forward_source) PostgreSQL and the API see:
    // declared, as a person declares where their clients and operators are.
    let _ = writeln!(y, "network:\n  client_networks: [{SUBNET}.200/29]");
    let _ = writeln!(y, "api:\n  allow_writes_from: [{SUBNET}.200/29]");
    y.push_str("etcd:\n");
    let _ = writeln!(y, "  heartbeat_interval: {}ms", s.heartbeat_ms);
    let _ = writeln!(y, "  election_timeout: {}ms", s.election_ms);
    if s.etcd_tls {
        y.push_str(&secrets.etcd_tls.yaml);
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_first_boot_file_validates_and_names_its_node() {
        let secrets = Secrets::generate();
        for n in &NODES {
            let text = first_boot_file(n.name, &secrets, &Settings::default());
            let cfg = pgbox::config::parse(&text, n.name)
                .unwrap_or_else(|e| panic!("{}: {e}\n{text}", n.name));
            let me = pgbox::config::validate_identity(&cfg, None).unwrap();
            assert_eq!(me, n.name);
            assert_eq!(cfg.nodes.len(), 5);
            let mine = cfg.nodes.iter().find(|x| x.name == n.name).unwrap();
            assert_eq!(mine.address.to_string(), n.address());
            assert_eq!(mine.mac.as_deref(), Some(n.mac().as_str()));
            let source: std::net::IpAddr = n.forward_source().parse().unwrap();
            assert!(cfg
                .network
                .client_networks
                .iter()
                .any(|c| c.contains(source)));
            assert!(cfg.api.allow_writes_from.iter().any(|c| c.contains(source)));
        }
    }

    #[test]
    fn ports_do_not_overlap() {
        let p = Ports { base: 27100 };
        let mut all: Vec<u16> = NODES
            .iter()
            .flat_map(|n| p.forwards(n))
            .map(|(h, _)| h)
            .collect();
        let before = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), before);
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let s = Secrets::generate();
        assert!(s.app.len() >= 24);
        assert_ne!(s.app, s.api);
    }
}
