//! The server files pgboxd owns: postgresql.conf, pg_hba.conf, the password
//! file. They are rewritten before every start, so what runs always matches
//! the first-boot file; a person edits pgbox.yaml, never these.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use crate::config::{sock, Cidr, Config, Node, Role};

/// Where a standby streams from.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
}

/// synchronous_standby_names of a standby being promoted in synchronous
/// mode: a name no standby has (slot names have no spaces), so the new
/// primary acknowledges no commit until its first loop as leader has taken
/// over the `sync` key and relaxed this.
pub const TAKEOVER_HOLD_NAMES: &str = "\"pgbox takeover pending\"";

pub fn slot_name(member: &str) -> String {
    member
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

pub fn postgresql_conf(
    cfg: &Config,
    me: &Node,
    socket_dir: &str,
    passfile: &str,
    upstream: Option<&Upstream>,
    sync_names: &str,
) -> String {
    let mut s =
        String::from("# Written by pgboxd before every start. Change pgbox.yaml instead.\n");
    let lines = [
        ("listen_addresses", format!("'{}'", me.address)),
        ("port", cfg.ports.postgres.to_string()),
        ("unix_socket_directories", quote(socket_dir)),
        (
            "cluster_name",
            quote(&format!("{}-{}", cfg.cluster.name, me.name)),
        ),
        ("wal_level", "replica".into()),
        ("hot_standby", "on".into()),
        ("hot_standby_feedback", "on".into()),
        ("max_wal_senders", "10".into()),
        ("max_replication_slots", "10".into()),
        // Enough WAL for a rejoining old primary to rewind and catch up even
        // before its slot exists on the new primary.
        ("wal_keep_size", "'256MB'".into()),
        // A dead member's slot must not fill the disk.
        ("max_slot_wal_keep_size", "'4GB'".into()),
        ("wal_log_hints", "on".into()),
        ("password_encryption", "'scram-sha-256'".into()),
        ("logging_collector", "off".into()),
        ("log_line_prefix", "'%m [%p] '".into()),
        ("recovery_target_timeline", "'latest'".into()),
        ("synchronous_standby_names", quote(sync_names)),
        // A standby that stops confirming is dropped this soon, so that
        // commits waiting for it stall for seconds, not a minute.
        (
            "wal_sender_timeout",
            format!(
                "'{}ms'",
                crate::ha::standby_silence_ms(cfg.ha.ttl.as_millis() as u64)
            ),
        ),
    ];
    for (k, v) in lines {
        let _ = writeln!(s, "{k} = {v}");
    }
    if !cfg.postgres.parameters.is_empty() {
        s.push_str("# from pgbox.yaml postgres.parameters\n");
        for (k, v) in &cfg.postgres.parameters {
            let _ = writeln!(s, "{k} = {}", v.to_conf());
        }
    }
    if let Some(up) = upstream {
        let conninfo = format!(
            "host={} port={} user={} passfile={} application_name={} connect_timeout=2 keepalives=1 keepalives_idle=2 keepalives_interval=1 keepalives_count=3",
            up.address,
            up.port,
            cfg.postgres.replication_user,
            passfile,
            slot_name(&me.name)
        );
        let _ = writeln!(s, "primary_conninfo = {}", quote(&conninfo));
        let _ = writeln!(s, "primary_slot_name = {}", quote(&slot_name(&me.name)));
    }
    s
}

/// pg_hba.conf from the cluster description. PostgreSQL takes the first
/// line that matches a connection, so each kind of access is granted to its
/// sources and then refused to everyone else:
///
/// - unix socket: anyone on the box who knows a password (pgboxd's health
///   query, a person at the console);
/// - replication (streaming, base backups): the replication user, from the
///   PostgreSQL members only;
/// - the superuser over the network: from the members only and only to the
///   `postgres` database, which is what pg_rewind and the CHECKPOINT before a
///   switchover use;
/// - everyone else (the application user and roles made later): from the
///   router nodes and `network.client_networks` only.
///
/// Only scram-sha-256 anywhere: no trust, no md5, no plain passwords.
pub fn pg_hba_conf(cfg: &Config) -> String {
    let su = &cfg.postgres.superuser;
    let repl = &cfg.postgres.replication_user;
    let members = unique(
        cfg.nodes_with(Role::Postgres)
            .flat_map(|n| host_nets(n.address)),
    );
    let clients = unique(
        cfg.nodes_with(Role::Router)
            .flat_map(|n| host_nets(n.address))
            .chain(cfg.network.client_networks.iter().map(|c| c.to_string())),
    );
    let mut s =
        String::from("# Written by pgboxd before every start. Change pgbox.yaml instead.\n");
    s.push_str("# unix socket: this box only\n");
    s.push_str("local all all scram-sha-256\n");
    s.push_str("# replication: the PostgreSQL members\n");
    for net in &members {
        let _ = writeln!(s, "host replication {repl} {net} scram-sha-256");
    }
    s.push_str("host replication all all reject\n");
    s.push_str("# superuser: the members (pg_rewind, CHECKPOINT before a switchover)\n");
    for net in &members {
        let _ = writeln!(s, "host postgres {su} {net} scram-sha-256");
    }
    let _ = writeln!(s, "host all {su} all reject");
    let _ = writeln!(s, "host all {repl} all reject");
    s.push_str("# clients: the routers and network.client_networks\n");
    for net in &clients {
        let _ = writeln!(s, "host all all {net} scram-sha-256");
    }
    s.push_str("host all all all reject\n");
    s
}

/// libpq password file lines (`host:port:db:user:password`).
pub fn pgpass(cfg: &Config) -> String {
    let esc = |p: &str| p.replace('\\', "\\\\").replace(':', "\\:");
    format!(
        "*:*:*:{}:{}\n*:*:replication:{}:{}\n",
        cfg.postgres.superuser,
        esc(&cfg.secrets.superuser_password),
        cfg.postgres.replication_user,
        esc(&cfg.secrets.replication_password)
    )
}

pub fn upstream_of(cfg: &Config, name: &str) -> Option<Upstream> {
    cfg.node_named(name).map(|n| Upstream {
        name: n.name.clone(),
        address: n.address,
        port: cfg.ports.postgres,
    })
}

/// libpq keyword/value connection string to a member, as the superuser.
pub fn superuser_conninfo(cfg: &Config, up: &Upstream, passfile: &str) -> String {
    format!(
        "host={} port={} user={} dbname=postgres passfile={} connect_timeout=5",
        up.address, up.port, cfg.postgres.superuser, passfile
    )
}

pub fn conn_url(cfg: &Config, node: &Node) -> String {
    format!(
        "postgres://{}/postgres",
        sock(node.address, cfg.ports.postgres)
    )
}

/// The networks a node's connections come from: its own address, and for a
/// loopback node (a one-box or test cluster) also 127.0.0.1, the source
/// Linux gives a connection between loopback addresses unless the client
/// binds another one (libpq cannot).
fn host_nets(addr: IpAddr) -> Vec<String> {
    let own = Cidr::host(addr).to_string();
    match addr {
        IpAddr::V4(a) if a.is_loopback() && a != Ipv4Addr::LOCALHOST => {
            vec![Cidr::host(Ipv4Addr::LOCALHOST.into()).to_string(), own]
        }
        _ => vec![own],
    }
}

/// First occurrence of each, in order.
fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

pub(crate) fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How PostgreSQL reads the rendered file for a TCP connection: the
    /// first `host` line whose database, user and address match decides.
    /// `None` when no line matches (PostgreSQL refuses those too).
    fn decide(hba: &str, database: &str, user: &str, from: &str) -> Option<String> {
        let from: IpAddr = from.parse().unwrap();
        for line in hba.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() != Some(&"host") {
                continue;
            }
            let (db, u, net, method) = (f[1], f[2], f[3], f[4]);
            let db_ok = match db {
                "all" => database != "replication",
                other => other == database,
            };
            let net_ok = net == "all" || net.parse::<Cidr>().unwrap().contains(from);
            if db_ok && (u == "all" || u == user) && net_ok {
                return Some(method.to_string());
            }
        }
        None
    }

    fn allowed(hba: &str, database: &str, user: &str, from: &str) -> bool {
        decide(hba, database, user, from).as_deref() == Some("scram-sha-256")
    }

    /// db1 10.0.0.11 and db2 10.0.0.12 run PostgreSQL; coord 10.0.0.13 routes.
    fn cluster(extra: &str) -> Config {
        let text = format!("{}{extra}", crate::config::tests::GOOD);
        crate::config::parse(&text, "pgbox.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_silent_standby_is_dropped_after_half_a_ttl() {
        let cfg = cluster("");
        let me = cfg.nodes.iter().find(|n| n.name == "db1").unwrap();
        let conf = postgresql_conf(&cfg, me, "/run/pgbox", "/pgpass", None, "");
        assert!(
            conf.lines().any(|l| l == "wal_sender_timeout = '5000ms'"),
            "{conf}"
        );
    }

    #[test]
    fn only_scram_and_explicit_rejects() {
        let hba = pg_hba_conf(&cluster(""));
        for line in hba.lines().filter(|l| !l.starts_with('#')) {
            let method = line.split_whitespace().last().unwrap();
            assert!(method == "scram-sha-256" || method == "reject", "{line}");
        }
        assert!(hba.ends_with("host all all all reject\n"), "{hba}");
        assert!(hba.contains("local all all scram-sha-256\n"));
    }

    #[test]
    fn replication_and_superuser_only_between_members() {
        let hba = pg_hba_conf(&cluster(""));
        for member in ["10.0.0.11", "10.0.0.12"] {
            assert!(
                allowed(&hba, "replication", "replicator", member),
                "{member}"
            );
            assert!(allowed(&hba, "postgres", "postgres", member), "{member}");
        }
        // The router node carries client traffic, never replication or the superuser.
        assert!(!allowed(&hba, "replication", "replicator", "10.0.0.13"));
        assert!(!allowed(&hba, "postgres", "postgres", "10.0.0.13"));
        assert!(!allowed(&hba, "replication", "app", "10.0.0.11"));
        // Members get the superuser for what pgboxd needs, not the app's data.
        assert!(!allowed(&hba, "app", "postgres", "10.0.0.11"));
        // The replication role logs into nothing but replication.
        assert!(!allowed(&hba, "app", "replicator", "10.0.0.13"));
        assert!(!allowed(&hba, "replication", "replicator", "192.0.2.1"));
    }

    #[test]
    fn clients_only_from_routers_and_declared_networks() {
        let hba = pg_hba_conf(&cluster(""));
        assert!(allowed(&hba, "app", "app", "10.0.0.13"), "router node");
        assert!(
            !allowed(&hba, "app", "app", "10.0.0.11"),
            "a member is not a client"
        );
        assert!(
            !allowed(&hba, "app", "app", "10.0.0.99"),
            "same subnet, undeclared"
        );
        assert!(!allowed(&hba, "app", "app", "192.0.2.1"));

        let hba = pg_hba_conf(&cluster(
            "network:\n  client_networks: [10.0.5.0/24, 10.0.6.7, \"fd00:5::/64\"]\n",
        ));
        assert!(allowed(&hba, "app", "app", "10.0.5.200"));
        assert!(allowed(&hba, "app", "app", "10.0.6.7"));
        assert!(!allowed(&hba, "app", "app", "10.0.6.8"));
        assert!(allowed(&hba, "app", "app", "fd00:5::1"));
        assert!(
            allowed(&hba, "app", "app", "10.0.0.13"),
            "routers still may"
        );
        // A client network is for clients only.
        assert!(!allowed(&hba, "postgres", "postgres", "10.0.5.1"));
        assert!(!allowed(&hba, "replication", "replicator", "10.0.5.1"));
    }

    #[test]
    fn loopback_members_are_matched_exactly_plus_localhost() {
        let text = "\
cluster: {name: t}
nodes:
  - {name: e1, address: 127.0.9.11, roles: [etcd]}
  - {name: db1, address: 127.0.9.21, roles: [postgres]}
  - {name: db2, address: 127.0.9.22, roles: [postgres]}
secrets:
  superuser_password: \"kq8Vx2mPz4LwT7nB\"
  replication_password: \"Rj5tH9cWq2XvN6sD\"
  app_password: \"Fz3Lp8Ym1QkB7wGe\"
  etcd_password: \"Wm4Hs7Ka2NdR9pXc\"
etcd: {allow_unsafe_member_count: true}
network: {client_networks: [127.0.0.1]}
";
        let cfg = crate::config::parse(text, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
        let hba = pg_hba_conf(&cfg);
        // Connections between loopback addresses leave from 127.0.0.1.
        assert!(allowed(&hba, "replication", "replicator", "127.0.0.1"));
        assert!(allowed(&hba, "replication", "replicator", "127.0.9.22"));
        assert!(allowed(&hba, "app", "app", "127.0.0.1"));
        // Anything else on loopback is as foreign as any other address.
        assert!(!allowed(&hba, "replication", "replicator", "127.0.9.200"));
        assert!(!allowed(&hba, "postgres", "postgres", "127.0.9.200"));
        assert!(!allowed(&hba, "app", "app", "127.0.9.200"));
        assert_eq!(
            hba.matches("127.0.0.1/32").count(),
            3,
            "deduplicated:\n{hba}"
        );
    }
}
