//! The server files pgboxd owns: postgresql.conf, pg_hba.conf, the password
//! file. They are rewritten before every start, so what runs always matches
//! the first-boot file; a person edits pgbox.yaml, never these.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::config::{sock, Config, Node, Role};

/// Where a standby streams from.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
}

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

pub fn pg_hba_conf(cfg: &Config) -> String {
    let su = &cfg.postgres.superuser;
    let repl = &cfg.postgres.replication_user;
    let mut s =
        String::from("# Written by pgboxd before every start. Change pgbox.yaml instead.\n");
    s.push_str("local all all scram-sha-256\n");
    for n in cfg.nodes_with(Role::Postgres) {
        let net = host_net(n.address);
        let _ = writeln!(s, "host replication {repl} {net} scram-sha-256");
        // pg_rewind connects to the new primary as the superuser.
        let _ = writeln!(s, "host all {su} {net} scram-sha-256");
    }
    let _ = writeln!(s, "host all {su} all reject");
    s.push_str("host all all all scram-sha-256\n");
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

/// The network a member's connections come from. Connections between
/// loopback addresses leave from 127.0.0.1 whatever address the member
/// listens on, so a loopback member (a one-box or test cluster) is matched
/// by the whole loopback range, which is this machine only.
fn host_net(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) if a.is_loopback() => "127.0.0.0/8".into(),
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}
