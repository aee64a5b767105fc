//! Checks a typed `Config` for everything its types cannot say. Every check
//! runs, so that one pass over the file shows every problem in it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::error::ConfigError;
use super::positions::{join_index, join_key, Positions};
use super::{Cidr, Config, Role, SyncMode, WatchdogMode};

/// Longest name PostgreSQL and etcd keys take without truncation
/// (PostgreSQL's NAMEDATALEN - 1; also a host name label's limit).
const MAX_NAME: usize = 63;

const MIN_SECRET_CHARS: usize = 12;

/// What the documented example file holds where each secret goes: a value
/// that can never pass, so a copied example with one secret forgotten is
/// refused by name instead of running with a password anyone can read.
pub const SECRET_PLACEHOLDER: &str = "REPLACE-ME";

/// Secrets that were published as examples (earlier versions of
/// docs/pgbox.example.yaml): anyone can read them, so no cluster may run
/// on them, however random they look.
const PUBLISHED_SECRETS: &[&str] = &[
    "Gwurb7UjkSYxqN3kjLcWjLfFnJyRIxpq",
    "Pgsm7vr8NJF2bDJxQkC485RNeUvHL7rn",
    "YUqTcVLTqyWpT7v0GJs2Z1sP6uSo9Oc5",
    "Q2vT8nLr5XkWj3Hd7YpB4mZs9CfA6gUe",
];

/// Passwords that appear at the top of every guessing list. A secret equal
/// to one of these, alone or followed by digits ("password1234"), is refused.
const WEAK_WORDS: &[&str] = &[
    "password",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "postgres",
    "postgresql",
    "pgbox",
    "changeme",
    "change_me",
    "changeit",
    "admin",
    "administrator",
    "secret",
    "letmein",
    "qwerty",
    "qwertyuiop",
    "welcome",
    "default",
    "root",
    "toor",
    "replicator",
    "replication",
    "superuser",
    "master",
    "guest",
    "test",
    "iloveyou",
    "abc",
    "abcdef",
    "monkey",
    "dragon",
    "trustno1",
    "example",
];

/// Server settings pgboxd writes itself, with the reason a person sees.
fn owned_parameter(name: &str) -> Option<&'static str> {
    const ADDRESSING: &str = "pgbox sets it from the node's address and `ports.postgres`";
    const REPLICATION: &str = "pgbox sets it for streaming replication, failover and rejoin";
    const SYNC: &str = "pgbox sets it for synchronous replication and the `sync` key";
    const FILES: &str = "pgbox places the data directory and its configuration files";
    let reason = match name {
        "listen_addresses" | "port" | "unix_socket_directories" => ADDRESSING,
        "hot_standby"
        | "primary_conninfo"
        | "primary_slot_name"
        | "restore_command"
        | "recovery_target_timeline"
        | "wal_level"
        | "max_wal_senders"
        | "max_replication_slots"
        | "wal_log_hints"
        | "archive_mode"
        | "archive_cleanup_command"
        | "promote_trigger_file" => REPLICATION,
        n if n.starts_with("recovery_target") => REPLICATION,
        "synchronous_standby_names" | "synchronous_commit" => SYNC,
        "archive_command" | "archive_library" | "archive_timeout" => {
            "pgbox archives WAL with pgBackRest to the backup node; set `backup:` (its archive_timeout) instead"
        }
        "data_directory" | "hba_file" | "ident_file" | "config_file" | "external_pid_file" => FILES,
        "cluster_name" => {
            "pgbox sets it to <cluster>-<node>, which tells members apart in process lists and logs"
        }
        _ => return None,
    };
    Some(reason)
}

pub(super) fn semantic(cfg: &Config, source: &str, positions: &Positions) -> Vec<ConfigError> {
    let mut c = Checker {
        source,
        positions,
        errors: Vec::new(),
    };
    c.cluster(cfg);
    c.nodes(cfg);
    c.identity(cfg);
    c.secrets(cfg);
    c.postgres(cfg);
    c.ha(cfg);
    c.ports(cfg);
    c.etcd(cfg);
    c.network(cfg);
    c.api(cfg);
    c.backup(cfg);
    c.backup_beside_data(cfg);
    // File order reads best; problems with no position go last.
    c.errors
        .sort_by_key(|e| (e.line.is_none(), e.line, e.column));
    c.errors
}

/// Settings that are valid but put data at risk: the box runs as written,
/// and `pgboxctl config check` and pgboxd's start say why a person may
/// want otherwise.
pub(super) fn risky(cfg: &Config, source: &str, positions: &Positions) -> Vec<ConfigError> {
    let mut c = Checker {
        source,
        positions,
        errors: Vec::new(),
    };
    c.unfenced_async(cfg);
    c.errors
        .sort_by_key(|e| (e.line.is_none(), e.line, e.column));
    c.errors
}

struct Checker<'a> {
    source: &'a str,
    positions: &'a Positions,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    /// A problem with the value at `path`.
    fn value(&mut self, path: &str, message: impl Into<String>) {
        let e = ConfigError::new(self.source, path, message).at(self.positions.value(path));
        self.errors.push(e);
    }

    /// A problem with the key itself (it should not be there at all).
    fn key(&mut self, path: &str, message: impl Into<String>) {
        let e = ConfigError::new(self.source, path, message).at(self.positions.key(path));
        self.errors.push(e);
    }

    /// Of two fields that clash, the one to report (the one written in the
    /// file, the later one when both are) and how to name the other.
    fn pick(&self, later: &str, earlier: &str) -> (String, String) {
        if !self.positions.contains(later) && self.positions.contains(earlier) {
            (earlier.to_string(), format!("{later} (its default)"))
        } else if !self.positions.contains(earlier) {
            (later.to_string(), format!("{earlier} (its default)"))
        } else {
            (later.to_string(), earlier.to_string())
        }
    }

    /// " (line N)" for a reference to another place of the file.
    fn line_note(&self, path: &str, prefix: &str) -> String {
        match self.positions.value(path) {
            Some((line, _)) if self.positions.contains(path) => format!(" ({prefix}line {line})"),
            _ => String::new(),
        }
    }

    fn cluster(&mut self, cfg: &Config) {
        let name = &cfg.cluster.name;
        if name.is_empty() {
            self.value("cluster.name", "must not be empty");
        } else if let Some(problem) = name_problem(name, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
        }) {
            self.value(
                "cluster.name",
                format!("{name:?} {problem}; use lower-case letters, digits, '_' and '-'"),
            );
        } else if name.chars().count() > MAX_NAME {
            self.value(
                "cluster.name",
                format!(
                    "is {} characters long; at most {MAX_NAME}",
                    name.chars().count()
                ),
            );
        }
    }

    fn nodes(&mut self, cfg: &Config) {
        if cfg.nodes.is_empty() {
            self.value(
                "nodes",
                "no nodes; list at least one, each with a name, an address and roles",
            );
            return;
        }
        let mut names: HashMap<&str, String> = HashMap::new();
        let mut addresses: HashMap<IpAddr, (String, String)> = HashMap::new();
        for (i, node) in cfg.nodes.iter().enumerate() {
            let at = join_index("nodes", i);
            let name_path = join_key(&at, "name");
            if let Some(problem) = hostname_problem(&node.name) {
                self.value(&name_path, problem);
            }
            match names.get(node.name.as_str()) {
                Some(first) => {
                    let note = self.line_note(first, "first used at ");
                    self.value(
                        &name_path,
                        format!("duplicate node name {:?}{note}", node.name),
                    );
                }
                None => {
                    names.insert(&node.name, name_path.clone());
                }
            }

            let addr_path = join_key(&at, "address");
            if let Some(problem) = address_problem(node.address) {
                self.value(&addr_path, problem);
            }
            match addresses.get(&node.address) {
                Some((first_path, first_name)) => {
                    let note = self.line_note(first_path, "");
                    self.value(
                        &addr_path,
                        format!(
                            "address {} is already used by node {first_name:?}{note}; each node needs its own",
                            node.address
                        ),
                    );
                }
                None => {
                    addresses.insert(node.address, (addr_path, node.name.clone()));
                }
            }

            let roles_path = join_key(&at, "roles");
            if node.roles.is_empty() {
                self.value(
                    &roles_path,
                    "no roles; give the node at least one of: postgres, etcd, router, backup",
                );
            }
            for (j, role) in node.roles.iter().enumerate() {
                if node.roles[..j].contains(role) {
                    self.value(
                        &join_index(&roles_path, j),
                        format!("role `{}` is listed twice", role.name()),
                    );
                }
            }
        }

        if cfg.nodes_with(Role::Postgres).next().is_none() {
            self.key(
                "nodes",
                "no node has the role `postgres`; at least one node must run PostgreSQL",
            );
        }
        let may_lead = |t: &crate::config::Tags| !t.nofailover && t.failover_priority > 0;
        if cfg.nodes_with(Role::Postgres).next().is_some()
            && !cfg.nodes_with(Role::Postgres).any(|n| may_lead(&n.tags))
        {
            self.key(
                "nodes",
                "every `postgres` node is tagged `nofailover` (or `failover_priority: 0`), so none may create the cluster or lead it; remove the tag from at least one",
            );
        }
        let etcd: Vec<&str> = cfg
            .nodes_with(Role::Etcd)
            .map(|n| n.name.as_str())
            .collect();
        let n = etcd.len();
        if n == 0 {
            self.key(
                "nodes",
                "no node has the role `etcd`; pgbox keeps the leader lease in etcd, so some nodes (normally 3) must run it",
            );
        } else if (n < 3 || n.is_multiple_of(2)) && !cfg.etcd.allow_unsafe_member_count {
            let survives = (n - 1) / 2;
            let why = if n.is_multiple_of(2) {
                format!(
                    "etcd works only while a majority of its members is up: a quorum of N members survives the loss of (N-1)/2, \
                     so {n} members survive the loss of {survives}, no better than {} and with one more machine that can fail",
                    n - 1
                )
            } else {
                format!(
                    "etcd works only while a majority of its members is up: a quorum of N members survives the loss of (N-1)/2, \
                     so {n} member{} survive{} the loss of {survives}",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "s" } else { "" },
                )
            };
            self.key(
                "nodes",
                format!(
                    "{n} etcd member{} ({}): {why}. Give the role `etcd` to 3 or 5 nodes, \
                     or set `etcd.allow_unsafe_member_count: true` to accept this (for trying pgbox out only)",
                    if n == 1 { "" } else { "s" },
                    etcd.join(", ")
                ),
            );
        }
    }

    fn identity(&mut self, cfg: &Config) {
        if let Some(name) = &cfg.node {
            if cfg.node_named(name).is_none() {
                self.value(
                    "node",
                    format!("{name:?} is not one of the nodes ({})", node_list(cfg)),
                );
            }
        }
    }

    fn secrets(&mut self, cfg: &Config) {
        let s = &cfg.secrets;
        let mut all = vec![
            ("superuser_password", s.superuser_password.as_str()),
            ("replication_password", s.replication_password.as_str()),
            ("app_password", s.app_password.as_str()),
            ("etcd_password", s.etcd_password.as_str()),
        ];
        if let Some(api) = &s.api_password {
            all.push(("api_password", api.as_str()));
        }
        for (i, (field, secret)) in all.iter().enumerate() {
            let path = join_key("secrets", field);
            if let Some(problem) = secret_problem(secret) {
                self.value(&path, problem);
                continue;
            }
            if let Some((other, _)) = all[..i].iter().find(|(_, earlier)| earlier == secret) {
                self.value(
                    &path,
                    format!("is the same as secrets.{other}; use a different secret for each, so that one leaked password does not open the others"),
                );
            }
        }
    }

    fn postgres(&mut self, cfg: &Config) {
        let pg = &cfg.postgres;
        let users = [
            ("superuser", pg.superuser.as_str()),
            ("replication_user", pg.replication_user.as_str()),
            ("app_user", pg.app_user.as_str()),
        ];
        for (i, (field, user)) in users.iter().enumerate() {
            let path = join_key("postgres", field);
            if let Some(problem) = identifier_problem(user) {
                self.value(&path, problem);
            } else if user.starts_with("pg_") {
                self.value(
                    &path,
                    format!("{user:?}: role names starting with pg_ are reserved by PostgreSQL"),
                );
            } else if [
                "public",
                "none",
                "current_user",
                "current_role",
                "session_user",
                "all",
            ]
            .contains(user)
            {
                self.value(
                    &path,
                    format!("{user:?} is a reserved word in PostgreSQL and cannot name a role"),
                );
            } else if let Some((other, _)) = users[..i].iter().find(|(_, earlier)| earlier == user)
            {
                let (here, there) = self.pick(&path, &join_key("postgres", other));
                self.value(
                    &here,
                    format!("{user:?} is also {there}; the superuser, replication and application users must be three different roles"),
                );
            }
        }

        if let Some(problem) = identifier_problem(&pg.database) {
            self.value("postgres.database", problem);
        } else if ["template0", "template1"].contains(&pg.database.as_str()) {
            self.value(
                "postgres.database",
                format!(
                    "{:?} is a PostgreSQL template database; choose another name",
                    pg.database
                ),
            );
        } else if ["all", "sameuser", "samerole", "samegroup", "replication"]
            .contains(&pg.database.as_str())
        {
            self.value(
                "postgres.database",
                format!(
                    "{:?} has a special meaning in pg_hba.conf; choose another name",
                    pg.database
                ),
            );
        }

        for (name, value) in &pg.parameters {
            let path = join_key("postgres.parameters", name);
            if !is_guc_name(name) {
                let mut m = format!("{name:?} is not a PostgreSQL setting name");
                if is_guc_name(&name.to_ascii_lowercase()) {
                    m.push_str(&format!(
                        "; write it in lower case: {}",
                        name.to_ascii_lowercase()
                    ));
                } else {
                    m.push_str("; names use lower-case letters, digits, '_' and '.'");
                }
                self.key(&path, m);
                continue;
            }
            if let Some(reason) = owned_parameter(name) {
                self.key(&path, format!("`{name}` is managed by pgbox ({reason}); remove it from postgres.parameters"));
                continue;
            }
            if let super::ParamValue::Text(text) = value {
                if text.chars().any(char::is_control) {
                    self.value(&path, "contains a line break or control character, which postgresql.conf cannot hold");
                }
            }
        }
    }

    fn ha(&mut self, cfg: &Config) {
        let ha = &cfg.ha;
        let ttl_ok = if ha.ttl < Duration::from_secs(2) {
            self.value(
                "ha.ttl",
                format!(
                    "is {}; at least 2s: a shorter lease runs out on ordinary pauses (a busy disk, a slow network) and causes needless failovers",
                    fmt_duration(ha.ttl)
                ),
            );
            false
        } else if ha.ttl > Duration::from_secs(600) {
            self.value(
                "ha.ttl",
                format!("is {}; at most 10m: a failed primary is replaced only after ttl, so a longer one means a long outage", fmt_duration(ha.ttl)),
            );
            false
        } else {
            true
        };
        if ha.loop_wait < Duration::from_millis(100) {
            self.value(
                "ha.loop_wait",
                format!(
                    "is {}; at least 100ms, or the HA loop spins and loads etcd for nothing",
                    fmt_duration(ha.loop_wait)
                ),
            );
        } else if ttl_ok && ha.loop_wait > ha.ttl / 2 {
            self.value(
                "ha.loop_wait",
                format!(
                    "is {}, more than half of ha.ttl ({}): the primary renews its lease once per loop and must manage it several times \
                     per ttl, so that one slow loop does not cost it the lease; lower loop_wait or raise ttl",
                    fmt_duration(ha.loop_wait),
                    fmt_duration(ha.ttl)
                ),
            );
        }
        if ha.maximum_lag_on_failover == 0 {
            self.value(
                "ha.maximum_lag_on_failover",
                "must be more than 0 (bytes): with 0, a replica one byte behind may never promote and failover would almost never happen",
            );
        }
    }

    fn ports(&mut self, cfg: &Config) {
        let p = &cfg.ports;
        let all = [
            ("postgres", p.postgres),
            ("api", p.api),
            ("etcd_client", p.etcd_client),
            ("etcd_peer", p.etcd_peer),
            ("router_rw", p.router_rw),
            ("router_ro", p.router_ro),
            ("router_stats", p.router_stats),
            ("backup", p.backup),
        ];
        for (i, (field, port)) in all.iter().enumerate() {
            let path = join_key("ports", field);
            if *port == 0 {
                self.value(&path, "must not be 0");
            } else if let Some((other, _)) = all[..i].iter().find(|(_, earlier)| earlier == port) {
                // Every service may share one box (roles combine), so ports
                // must differ even when roles do not overlap.
                let (here, there) = self.pick(&path, &join_key("ports", other));
                self.value(
                    &here,
                    format!("{port} is also {there}; each service needs its own port"),
                );
            }
        }
    }

    fn etcd(&mut self, cfg: &Config) {
        if let Some(tls) = &cfg.etcd.tls {
            // Mutual TLS: members present it to each other, and pgboxd to
            // the members, as a client certificate. It names every member:
            // clients check the address they dial, and a member accepts a
            // peer's certificate only from an address the certificate names.
            self.certificate(
                cfg,
                tls,
                "etcd.tls",
                Role::Etcd,
                "etcd member (clients check the address they dial, and members check the address a peer comes from)",
                true,
            );
        }
        if let Some(problem) = namespace_problem(&cfg.etcd.namespace) {
            self.value("etcd.namespace", problem);
        }

        // etcd takes both settings in whole milliseconds and refuses to
        // start on the bounds below; catching them here keeps a box from
        // booting into an etcd that never comes up.
        let e = &cfg.etcd;
        let mut timing_ok = true;
        for (field, d) in [
            ("heartbeat_interval", e.heartbeat_interval),
            ("election_timeout", e.election_timeout),
        ] {
            if d.subsec_nanos() % 1_000_000 != 0 {
                self.value(
                    &join_key("etcd", field),
                    format!(
                        "is {}; etcd counts it in whole milliseconds",
                        fmt_duration(d)
                    ),
                );
                timing_ok = false;
            }
        }
        if e.heartbeat_interval < Duration::from_millis(10) {
            self.value(
                "etcd.heartbeat_interval",
                format!(
                    "is {}; at least 10ms: shorter heartbeats only load the network and the disks",
                    fmt_duration(e.heartbeat_interval)
                ),
            );
            timing_ok = false;
        } else if e.election_timeout < e.heartbeat_interval * 5 {
            let (here, there) = self.pick("etcd.election_timeout", "etcd.heartbeat_interval");
            let (election, heartbeat) = (
                fmt_duration(e.election_timeout),
                fmt_duration(e.heartbeat_interval),
            );
            self.value(
                &here,
                format!(
                    "etcd.election_timeout ({election}) must be at least 5 times {there} ({heartbeat}): etcd refuses to start \
                     otherwise, as a member would call an election after a few late heartbeats"
                ),
            );
            timing_ok = false;
        }
        if e.election_timeout > Duration::from_secs(50) {
            self.value(
                "etcd.election_timeout",
                format!(
                    "is {}; etcd accepts at most 50s",
                    fmt_duration(e.election_timeout)
                ),
            );
            timing_ok = false;
        }

        // etcd silently lengthens a lease shorter than its minimum, so a
        // dead primary would hold the leader key longer than ha.ttl says.
        let ttl = cfg.ha.ttl;
        let ttl_in_range = ttl >= Duration::from_secs(2) && ttl <= Duration::from_secs(600);
        let min = e.min_lease_ttl();
        if timing_ok && ttl_in_range && ttl < min {
            let written = |path: &str| self.positions.contains(path);
            let here = if !written("ha.ttl") && written("etcd.election_timeout") {
                "etcd.election_timeout"
            } else {
                "ha.ttl"
            };
            let default_note = |path: &str| if written(path) { "" } else { ", its default" };
            let message = format!(
                "ha.ttl ({}{}) is shorter than etcd's minimum lease time to live, {}: 1.5 × etcd.election_timeout \
                 ({}{}) rounded up to whole seconds. etcd would silently keep a dead primary's lease that long; \
                 raise ha.ttl to at least {} or lower etcd.election_timeout",
                fmt_duration(ttl),
                default_note("ha.ttl"),
                fmt_duration(min),
                fmt_duration(e.election_timeout),
                default_note("etcd.election_timeout"),
                fmt_duration(min),
            );
            self.value(here, message);
        }
    }

    fn network(&mut self, cfg: &Config) {
        let net = &cfg.network;
        let v4 = cfg.nodes.iter().find(|n| n.address.is_ipv4());
        let v6 = cfg.nodes.iter().find(|n| n.address.is_ipv6());
        let prefix = net.prefix_length;
        if prefix == 0 {
            self.value("network.prefix_length", "must be at least 1");
        } else {
            if let Some(node) = v4.filter(|_| prefix > 32) {
                self.value(
                    "network.prefix_length",
                    format!(
                        "is {prefix}, but node {:?} has the IPv4 address {}; an IPv4 prefix is 1 to 32",
                        node.name, node.address
                    ),
                );
            }
            if let Some(node) = v6 {
                if prefix > 128 {
                    self.value(
                        "network.prefix_length",
                        format!(
                            "is {prefix}, but node {:?} has the IPv6 address {}; an IPv6 prefix is 1 to 128",
                            node.name, node.address
                        ),
                    );
                } else if !self.positions.contains("network.prefix_length") {
                    // The default suits IPv4 subnets only; a /24 IPv6 subnet
                    // is almost certainly not what the network has.
                    self.value(
                        "network.prefix_length",
                        format!(
                            "node {:?} has the IPv6 address {}: set network.prefix_length (usually 64); the default, 24, is for IPv4",
                            node.name, node.address
                        ),
                    );
                }
            }
        }

        if let Some(gw) = net.gateway {
            if let Some(problem) = address_problem(gw) {
                self.value(
                    "network.gateway",
                    problem.replace("give the node's own address", "give the router's address"),
                );
            } else if let Some(node) = cfg.nodes.iter().find(|n| n.address == gw) {
                self.value(
                    "network.gateway",
                    format!(
                        "{gw} is the address of node {:?}; the gateway is the subnet's router, not a pgbox node",
                        node.name
                    ),
                );
            } else if let Some(node) = cfg
                .nodes
                .iter()
                .find(|n| n.address.is_ipv4() != gw.is_ipv4())
            {
                self.value(
                    "network.gateway",
                    format!(
                        "{gw} is {}, but node {:?} has the {} address {}; the gateway must be of the nodes' address family",
                        family(gw),
                        node.name,
                        family(node.address),
                        node.address
                    ),
                );
            }
        }
        for (i, dns) in net.dns.iter().enumerate() {
            if let Some(problem) = address_problem(*dns) {
                self.value(
                    &join_index("network.dns", i),
                    problem.replace(
                        "give the node's own address",
                        "give a name server's address",
                    ),
                );
            }
        }

        self.networks(
            "network.client_networks",
            &net.client_networks,
            "your applications connect from",
        );

        let mut macs: HashMap<String, &str> = HashMap::new();
        for (i, node) in cfg.nodes.iter().enumerate() {
            let Some(mac) = &node.mac else { continue };
            let path = join_key(&join_index("nodes", i), "mac");
            match parse_mac(mac) {
                Err(problem) => self.value(&path, format!("{mac:?} {problem}")),
                Ok(bytes) => {
                    let canonical = format_mac(&bytes);
                    match macs.get(&canonical) {
                        Some(first) => self.value(
                            &path,
                            format!(
                                "{mac} is also the MAC of node {first:?}; each NIC has its own"
                            ),
                        ),
                        None => {
                            macs.insert(canonical, &node.name);
                        }
                    }
                }
            }
        }
    }
}

impl Checker<'_> {
    /// Without a watchdog, nothing on the box stops a primary whose pgboxd
    /// hangs (a stuck disk, a stopped process). The candidate fences such a
    /// PostgreSQL before it promotes when it can reach it; when it cannot
    /// (the hung box is also cut off from the other members), only
    /// synchronous replication keeps the old primary's later commits from
    /// being acknowledged, since the standby that would confirm them is the
    /// new primary. With both off, writes acknowledged in that window are
    /// lost.
    fn unfenced_async(&mut self, cfg: &Config) {
        if cfg.ha.watchdog != WatchdogMode::Off || cfg.ha.synchronous_mode != SyncMode::Off {
            return;
        }
        // Neither is off by default, so both are written in the file.
        let note = self.line_note("ha.synchronous_mode", "");
        self.value(
            "ha.watchdog",
            format!(
                "is off and replication is asynchronous (ha.synchronous_mode: off{note}): if pgboxd hangs while \
                 its node is primary, nothing resets the box; the node promoted instead fences its PostgreSQL when \
                 it can reach it, but if it cannot (the hung box also cut off from the others), writes the old \
                 primary acknowledges after the promotion are lost. Set ha.watchdog to automatic or required, or \
                 ha.synchronous_mode to on"
            ),
        );
    }

    fn api(&mut self, cfg: &Config) {
        self.networks(
            "api.allow_writes_from",
            &cfg.api.allow_writes_from,
            "operators call the write endpoints from",
        );
        if let Some(tls) = &cfg.api.tls {
            self.certificate(
                cfg,
                tls,
                "api.tls",
                Role::Postgres,
                "PostgreSQL node (clients check the address they dial)",
                false,
            );
        }
    }

    fn backup(&mut self, cfg: &Config) {
        let holders: Vec<(usize, &crate::config::Node)> = cfg
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.roles.contains(&Role::Backup))
            .collect();
        let Some(b) = &cfg.backup else {
            for (i, node) in &holders {
                let j = node
                    .roles
                    .iter()
                    .position(|r| *r == Role::Backup)
                    .unwrap_or(0);
                self.value(
                    &join_index(&join_key(&join_index("nodes", *i), "roles"), j),
                    format!(
                        "node {:?} has the role `backup` but the file has no `backup:` section; add one (schedule, retention \
                         and the certificate from `pgboxctl tls init`) or remove the role",
                        node.name
                    ),
                );
            }
            return;
        };
        match holders.len() {
            0 => self.key(
                "backup",
                "no node has the role `backup`: the repository lives on the node that has it; give the role to one node \
                 that does not run PostgreSQL (a box that dies with the data must not hold its backups)",
            ),
            1 => {}
            _ => {
                let names: Vec<&str> = holders.iter().map(|(_, n)| n.name.as_str()).collect();
                self.key(
                    "backup",
                    format!(
                        "{} nodes have the role `backup` ({}); the repository lives on one node, give the role to one only",
                        names.len(),
                        names.join(", ")
                    ),
                );
            }
        }
        if b.retention_full == 0 {
            self.value(
                "backup.retention_full",
                "must be at least 1: with 0 no full backup would be kept, and nothing could be restored",
            );
        }
        let full_ok = b.full_every >= Duration::from_secs(3600);
        if !full_ok {
            self.value(
                "backup.full_every",
                format!(
                    "is {}; at least 1h: each full backup copies the whole database",
                    fmt_duration(b.full_every)
                ),
            );
        }
        if b.incremental_every < Duration::from_secs(60) {
            self.value(
                "backup.incremental_every",
                format!("is {}; at least 1m", fmt_duration(b.incremental_every)),
            );
        } else if full_ok && b.incremental_every > b.full_every {
            let (here, there) = self.pick("backup.incremental_every", "backup.full_every");
            let (inc, full) = (
                fmt_duration(b.incremental_every),
                fmt_duration(b.full_every),
            );
            let relation = if here == "backup.incremental_every" {
                format!("is longer than {there} ({inc} > {full})")
            } else {
                format!("is shorter than {there} ({full} < {inc})")
            };
            self.value(
                &here,
                format!("{relation}: an incremental backup would never be due; make incremental_every the shorter"),
            );
        }
        let t = b.archive_timeout;
        if t < Duration::from_secs(1) || t.subsec_nanos() != 0 {
            self.value(
                "backup.archive_timeout",
                format!(
                    "is {}; a whole number of seconds, at least 1s (PostgreSQL's archive_timeout)",
                    fmt_duration(t)
                ),
            );
        } else if t > Duration::from_secs(3600) {
            self.value(
                "backup.archive_timeout",
                format!(
                    "is {}; at most 1h: it bounds how much recent history an idle cluster can lose with all its boxes",
                    fmt_duration(t)
                ),
            );
        }
        if let Some(crate::config::RestoreTarget::Time(t)) = &b.restore {
            if let Some(problem) = restore_time_problem(t) {
                self.value("backup.restore.time", format!("{t:?} {problem}"));
            }
        }
        if let Some(problem) = repository_path_problem(&b.path.to_string_lossy()) {
            self.value("backup.path", problem);
        }
        if cfg.cluster.name == "global" {
            self.value(
                "cluster.name",
                "`global` cannot name the cluster's backups: pgBackRest reserves it for its shared settings; choose another name",
            );
        }
        let servers: Vec<(String, IpAddr)> = cfg
            .nodes
            .iter()
            .filter(|n| n.roles.contains(&Role::Postgres) || n.roles.contains(&Role::Backup))
            .map(|n| (n.name.clone(), n.address))
            .collect();
        let purpose = crate::tls::Purpose {
            section: "backup.tls",
            servers: &servers,
            who: "PostgreSQL or backup node (pgBackRest checks the address it dials)",
            client_auth: true,
        };
        let Some(tls) = &b.tls else {
            self.key(
                "backup",
                "has no `tls:`: pgBackRest speaks only TLS between the boxes; make the certificate with \
                 `pgboxctl tls init --config FILE --out DIR` and paste the block of DIR/backup-tls.yaml here",
            );
            return;
        };
        let problems = crate::tls::problems(tls, &purpose);
        let certificate_ok = !problems.iter().any(|(field, _)| *field == "certificate");
        for (field, message) in problems {
            self.value(&join_key("backup.tls", field), message);
        }
        if certificate_ok {
            // pgBackRest authorizes a client by its certificate's CN, written
            // `tls-server-auth=CN=stanza`: a CN with '=' or ',' cannot be said.
            match crate::tls::common_name(&tls.certificate) {
                Err(e) => self.value("backup.tls.certificate", format!("{e}; pgBackRest authorizes clients by it")),
                Ok(cn)
                    if cn.is_empty()
                        || cn.contains(['=', ','])
                        || cn.trim() != cn
                        || !cn.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
                {
                    self.value(
                        "backup.tls.certificate",
                        format!("its common name {cn:?} cannot name a pgBackRest client; use printable ASCII without '=', ',' or outer spaces"),
                    )
                }
                Ok(_) => {}
            }
        }
    }

    /// A repository on a box that also holds the data is lost with it, and
    /// the two services would share the box's API port, pgBackRest's port
    /// and its configuration file.
    fn backup_beside_data(&mut self, cfg: &Config) {
        if cfg.backup.is_none() {
            return;
        }
        for (i, node) in cfg.nodes.iter().enumerate() {
            if node.roles.contains(&Role::Backup) && node.roles.contains(&Role::Postgres) {
                self.value(
                    &join_key(&join_index("nodes", i), "roles"),
                    format!(
                        "node {:?} has both `postgres` and `backup`: losing that box would lose the backups with the data, \
                         and the two services would need the same ports; give the role `backup` to a box without `postgres`",
                        node.name
                    ),
                );
            }
        }
    }

    /// A certificate section (`api.tls`, `etcd.tls`) served by every node
    /// with `role`: see `tls::problems`.
    fn certificate(
        &mut self,
        cfg: &Config,
        tls: &crate::config::TlsPem,
        section: &str,
        role: Role,
        who: &str,
        client_auth: bool,
    ) {
        let servers: Vec<(String, IpAddr)> = cfg
            .nodes_with(role)
            .map(|n| (n.name.clone(), n.address))
            .collect();
        let purpose = crate::tls::Purpose {
            section,
            servers: &servers,
            who,
            client_auth,
        };
        for (field, message) in crate::tls::problems(tls, &purpose) {
            self.value(&join_key(section, field), message);
        }
    }

    /// Networks a person lists to open something up: each must be a network
    /// (no host bits) and narrower than "everything".
    fn networks(&mut self, path: &str, list: &[Cidr], what: &str) {
        for (i, net) in list.iter().enumerate() {
            let at = join_index(path, i);
            if net.prefix() == 0 {
                self.value(
                    &at,
                    format!("`{net}` is every address; list only the networks {what}"),
                );
            } else if net.network() != *net {
                self.value(
                    &at,
                    format!(
                        "`{net}` has host bits set; the network is written {}, or write one address without a prefix",
                        net.network()
                    ),
                );
            } else if let Some(j) = list[..i].iter().position(|earlier| earlier == net) {
                let note = self.line_note(&join_index(path, j), "");
                self.value(&at, format!("`{net}` is listed twice{note}"));
            }
        }
    }
}

/// A recovery target time as both pgBackRest and PostgreSQL read it, with
/// an explicit UTC offset (without one each would assume its own local
/// time): `YYYY-MM-DD HH:MM:SS`, optional `.fraction` (up to 6 digits),
/// then `+HH`, `+HHMM` or `+HH:MM` (or `-`).
fn restore_time_problem(t: &str) -> Option<String> {
    const SHAPE: &str = "is not a time like 2026-12-03 17:04:15+00 (date, time, optional .fraction, and a UTC offset)";
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let fixed = b.len() >= 19
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b' '
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !fixed {
        return Some(SHAPE.into());
    }
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 6 {
            return Some(SHAPE.into());
        }
        rest = &frac[n..];
    }
    let Some(offset) = rest.strip_prefix('+').or_else(|| rest.strip_prefix('-')) else {
        return Some("has no UTC offset (such as +00): without one the restore would read it in some box's local time".into());
    };
    let ob = offset.as_bytes();
    let ok = match ob.len() {
        2 => digits_all(ob),
        4 => digits_all(ob),
        5 => ob[2] == b':' && digits_all(&ob[..2]) && digits_all(&ob[3..]),
        _ => false,
    };
    if !ok {
        return Some(SHAPE.into());
    }
    let num = |r: std::ops::Range<usize>| t[r].parse::<u32>().unwrap_or(99);
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => 0,
    };
    if year < 1970
        || !(1..=days).contains(&day)
        || num(11..13) > 23
        || num(14..16) > 59
        || num(17..19) > 59
    {
        return Some("is not a valid date and time (from 1970 on)".into());
    }
    // pgBackRest's bounds: UTC-12 to UTC+14.
    let hours: i32 = offset[..2].parse().unwrap_or(99);
    let minutes: i32 = if offset.len() > 2 {
        offset[offset.len() - 2..].parse().unwrap_or(99)
    } else {
        0
    };
    let west = rest.starts_with('-');
    let total = hours * 60 + minutes;
    if minutes > 59 || (west && total > 12 * 60) || (!west && total > 14 * 60) {
        return Some("has a UTC offset outside -12:00 to +14:00".into());
    }
    None
}

/// What is wrong with `backup.path`: the repository must be a directory of
/// its own, which the backup service gives to the postgres user.
fn repository_path_problem(path: &str) -> Option<String> {
    const SYSTEM: &[&str] = &[
        "/",
        "/var",
        "/var/lib",
        "/var/lib/pgbox",
        "/etc",
        "/usr",
        "/srv",
        "/tmp",
        "/home",
        "/root",
        "/run",
        "/boot",
        "/opt",
        "/mnt",
        "/media",
    ];
    if !path.starts_with('/') {
        return Some(format!("{path:?} is not an absolute path"));
    }
    if path.len() > 200 || path.contains(['=', ' ']) || path.chars().any(char::is_control) {
        return Some(format!("{path:?} is not usable: at most 200 characters, without spaces, '=' or control characters"));
    }
    if path.contains("//")
        || path.split('/').any(|c| c == "." || c == "..")
        || (path.len() > 1 && path.ends_with('/'))
    {
        return Some(format!(
            "{path:?} is not a plain path: no '//', '.' or '..' parts and no trailing '/'"
        ));
    }
    if SYSTEM.contains(&path) {
        return Some(format!("{path:?} is a system directory; the repository needs one of its own (the default is /var/lib/pgbox/backup)"));
    }
    None
}

fn digits_all(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// A NIC's MAC address, written `52:54:00:12:34:56`.
pub(super) fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let fix = "is not a MAC address; write six pairs of hex digits separated by ':', like 52:54:00:12:34:56";
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
        return Err(fix.to_string());
    }
    let mut bytes = [0u8; 6];
    for (byte, part) in bytes.iter_mut().zip(&parts) {
        *byte = u8::from_str_radix(part, 16).map_err(|_| fix.to_string())?;
    }
    if bytes == [0; 6] {
        return Err("is all zeros, which no NIC has".to_string());
    }
    if bytes[0] & 1 == 1 {
        return Err(
            "is a multicast MAC address (lowest bit of the first byte set), which no NIC has"
                .to_string(),
        );
    }
    Ok(bytes)
}

/// Lower-case, colon-separated: the form systemd-networkd prints.
pub(super) fn format_mac(bytes: &[u8; 6]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn node_list(cfg: &Config) -> String {
    cfg.nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Names the first character `allowed` refuses.
fn name_problem(name: &str, allowed: impl Fn(char) -> bool) -> Option<String> {
    name.chars()
        .find(|c| !allowed(*c))
        .map(|c| format!("contains {}", describe_char(c)))
}

/// A character as a person can read it in a terminal: printable ASCII
/// quoted, anything else (line breaks, spaces, direction overrides that
/// would reorder the message itself) by its code point.
fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_string(),
        c if c.is_ascii_graphic() => format!("{c:?}"),
        c => format!("U+{:04X}", c as u32),
    }
}

/// Longest `etcd.namespace`: ample for any layout, short enough that the
/// keys stay readable in `etcdctl get --prefix`.
const MAX_NAMESPACE: usize = 128;

/// The namespace is the key prefix above the cluster name, as Patroni's
/// (`/service` gives `/service/<cluster>/leader`). pgbox joins it to the
/// cluster name with one '/', grants the `pgbox` etcd role that prefix, and
/// operators type it into `etcdctl`: so it is a plain path, '/' then
/// segments of letters, digits, '.', '_' and '-', with no empty, `.` or
/// `..` segment (which tools that treat keys as paths would fold into
/// another cluster's prefix). One trailing '/' is allowed and dropped; `/`
/// alone puts the cluster at the top of the key space.
fn namespace_problem(ns: &str) -> Option<String> {
    let fix = "write '/' followed by names of letters, digits, '.', '_' and '-' separated by '/', like /service";
    if ns.is_empty() {
        return Some(format!("must not be empty; {fix}"));
    }
    // The value is quoted only once it is known to be plain text, so that a
    // line break or a direction override cannot garble the message.
    if let Some(c) = ns
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')))
    {
        return Some(format!("contains {}; {fix}", describe_char(c)));
    }
    if !ns.starts_with('/') {
        return Some(format!("{ns:?} must start with '/'; {fix}"));
    }
    if ns.len() > MAX_NAMESPACE {
        return Some(format!(
            "is {} characters long; at most {MAX_NAMESPACE}",
            ns.len()
        ));
    }
    let inner = ns.strip_prefix('/').unwrap_or(ns);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if inner.is_empty() {
        return None;
    }
    for segment in inner.split('/') {
        let bad = match segment {
            "" => "an empty part ('//')",
            "." => "a `.` part",
            ".." => "a `..` part",
            _ => continue,
        };
        return Some(format!("{ns:?} has {bad}; {fix}"));
    }
    None
}

fn hostname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    let fix = "a node name is a host name: lower-case letters, digits and '-', 1 to 63 characters, not starting or ending with '-'";
    if let Some(p) = name_problem(name, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    }) {
        return Some(format!("{name:?} {p}; {fix}"));
    }
    if name.len() > MAX_NAME {
        return Some(format!("is {} characters long; {fix}", name.len()));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!("{name:?} starts or ends with '-'; {fix}"));
    }
    None
}

fn address_problem(addr: IpAddr) -> Option<String> {
    let bad = if addr.is_unspecified() {
        "means \"any address\" and cannot reach a node"
    } else if addr.is_multicast() {
        "is a multicast address"
    } else if matches!(addr, IpAddr::V4(v4) if v4.is_broadcast()) {
        "is the broadcast address"
    } else {
        return None;
    };
    Some(format!("{addr} {bad}; give the node's own address"))
}

/// PostgreSQL identifiers pgbox writes without quoting.
fn identifier_problem(name: &str) -> Option<String> {
    let fix =
        "use lower-case letters, digits and '_', not starting with a digit, at most 63 characters";
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    let mut chars = name.chars();
    let first = chars.next().unwrap_or('_');
    let ok = (first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Some(format!("{name:?} is not a plain PostgreSQL name; {fix}"));
    }
    if name.len() > MAX_NAME {
        return Some(format!("is {} characters long; {fix}", name.len()));
    }
    None
}

fn is_guc_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

/// What is wrong with a secret, in words that never repeat it.
pub(super) fn secret_problem(secret: &str) -> Option<String> {
    let advice = "use a long random value, e.g. from `openssl rand -base64 24`";
    if secret.starts_with(SECRET_PLACEHOLDER) {
        return Some(format!(
            "is still the example's placeholder; put a secret of your own here ({advice})"
        ));
    }
    if PUBLISHED_SECRETS.contains(&secret) {
        return Some(format!(
            "is a value published in pgbox's documentation, which anyone can read; {advice}"
        ));
    }
    if secret.is_empty() {
        return Some(format!("is empty; {advice}"));
    }
    if secret.chars().any(char::is_control) {
        return Some(format!(
            "contains a line break or control character; {advice}"
        ));
    }
    if secret.chars().count() < MIN_SECRET_CHARS {
        return Some(format!(
            "is shorter than {MIN_SECRET_CHARS} characters; {advice}"
        ));
    }
    let mut chars = secret.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Some(format!("is one character repeated; {advice}"));
    }
    if secret.chars().all(|c| c.is_ascii_digit()) {
        return Some(format!("is only digits; {advice}"));
    }
    let lower: Vec<char> = secret.to_lowercase().chars().collect();
    if made_of_weak_words(&lower) {
        return Some(format!(
            "is a well-known password (alone, repeated, combined, or with a few digits or symbols added), \
             the first thing an attacker tries; {advice}"
        ));
    }
    if let Some(unit) = short_period(&lower) {
        return Some(format!(
            "is a sequence of {unit} characters repeated, which is no harder to guess than the sequence once; {advice}"
        ));
    }
    None
}

/// How a character of a secret may stand for a letter of a well-known word
/// ("p@ssw0rd"): guessing tools try these substitutions first.
fn stands_for(c: char, letter: char) -> bool {
    c == letter
        || matches!(
            (letter, c),
            ('a', '@' | '4')
                | ('e', '3')
                | ('i', '1' | '!')
                | ('l', '1')
                | ('o', '0')
                | ('s', '$' | '5')
                | ('t', '7')
        )
}

/// Whether the (lower-cased) secret is well-known words, each possibly
/// repeated or combined with others ("passwordpassword", "admin_admin"),
/// with fewer than `MIN_SECRET_CHARS` other characters around them, all of
/// them digits or symbols ("Password2024!"). Any letter outside a word
/// means the secret is not built from the list, so a generated secret
/// passes unless it is nearly all digits and symbols anyway.
fn made_of_weak_words(secret: &[char]) -> bool {
    let n = secret.len();
    // fewest[i]: the fewest filler characters that cover secret[..i] with
    // words and fillers; words[i]: whether that cover uses a word at all.
    let mut fewest: Vec<Option<usize>> = vec![None; n + 1];
    let mut words = vec![false; n + 1];
    fewest[0] = Some(0);
    for i in 0..n {
        let Some(here) = fewest[i] else { continue };
        let mut reach = |to: usize, cost: usize, word: bool| {
            let better = match fewest[to] {
                None => true,
                Some(best) => cost < best || (cost == best && word && !words[to]),
            };
            if better {
                fewest[to] = Some(cost);
                words[to] = word || words[i];
            }
        };
        if !secret[i].is_alphabetic() {
            reach(i + 1, here + 1, false);
        }
        for word in WEAK_WORDS {
            let len = word.chars().count();
            if i + len <= n
                && word
                    .chars()
                    .zip(&secret[i..])
                    .all(|(w, c)| stands_for(*c, w))
            {
                reach(i + len, here, true);
            }
        }
    }
    matches!(fewest[n], Some(filler) if filler < MIN_SECRET_CHARS) && words[n]
}

/// The length of the unit the secret repeats ("abcabcabcabc": 3), when it
/// repeats one shorter than `MIN_SECRET_CHARS` at least twice (a partial
/// last repeat counts too).
fn short_period(secret: &[char]) -> Option<usize> {
    let n = secret.len();
    // Knuth-Morris-Pratt failure function: the longest proper border of
    // the whole string gives its smallest period.
    let mut border = vec![0usize; n];
    for i in 1..n {
        let mut k = border[i - 1];
        while k > 0 && secret[i] != secret[k] {
            k = border[k - 1];
        }
        if secret[i] == secret[k] {
            k += 1;
        }
        border[i] = k;
    }
    let period = n - border.last().copied().unwrap_or(0);
    (period * 2 <= n && period < MIN_SECRET_CHARS).then_some(period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_rules() {
        assert!(secret_problem("").is_some());
        assert!(secret_problem("short").is_some());
        assert!(secret_problem("aaaaaaaaaaaaaaaa").is_some());
        assert!(secret_problem("PassWord1234").is_some());
        assert!(
            secret_problem("changeme2024!x").is_none(),
            "not only digits appended"
        );
        assert!(secret_problem("postgres12345").is_some());
        assert!(secret_problem("123456789012").is_some());
        assert!(secret_problem("tab\there-is-long").is_some());
        assert!(secret_problem("x7Qm2vLr9KpT4wZs").is_none());
    }

    #[test]
    fn names() {
        assert!(hostname_problem("db1").is_none());
        assert!(hostname_problem("a-b").is_none());
        assert!(hostname_problem("-db").is_some());
        assert!(hostname_problem("db-").is_some());
        assert!(hostname_problem("DB1").is_some());
        assert!(hostname_problem("db_1").is_some());
        assert!(hostname_problem(&"a".repeat(64)).is_some());
        assert!(hostname_problem(&"a".repeat(63)).is_none());
        assert!(identifier_problem("_app1").is_none());
        assert!(identifier_problem("1app").is_some());
        assert!(identifier_problem("App").is_some());
        assert!(is_guc_name("auto_explain.log_min_duration"));
        assert!(!is_guc_name("Work_Mem"));
        assert!(!is_guc_name("9x"));
    }
}
