//! The typed shape of `pgbox.yaml`, the first-boot file.
//!
//! These types only describe the file; everything a type cannot say (unique
//! names, odd etcd membership, strong secrets, ...) is checked in `validate`.
//! Every struct denies unknown keys: a misspelt key must be an error, never a
//! silently ignored setting.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::cidr::Cidr;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub cluster: Cluster,
    /// Which node of `nodes` this box is. The same file can serve every box
    /// when this is left out and the identity is given another way
    /// (`pgboxd --node NAME`).
    #[serde(default)]
    pub node: Option<String>,
    pub nodes: Vec<Node>,
    pub secrets: Secrets,
    #[serde(default)]
    pub postgres: PostgresSettings,
    #[serde(default)]
    pub ha: HaSettings,
    #[serde(default)]
    pub etcd: EtcdSettings,
    #[serde(default)]
    pub ports: Ports,
    #[serde(default)]
    pub network: NetworkSettings,
    #[serde(default)]
    pub api: ApiSettings,
    /// WAL archiving and backups with pgBackRest, into a repository on the
    /// node with the role `backup`. Without it nothing is archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSettings>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The cluster's name: the etcd key prefix is `<namespace>/<name>/`
    /// (Patroni's "scope").
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub address: IpAddr,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub tags: Tags,
    /// The MAC address of the NIC that carries `address`. Without it the
    /// box's Ethernet NIC is found by name (en*, eth*), which is right only
    /// when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Postgres,
    Etcd,
    Router,
    /// Holds the pgBackRest repository and takes the scheduled backups.
    Backup,
}

impl Role {
    /// The role as the file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Postgres => "postgres",
            Role::Etcd => "etcd",
            Role::Router => "router",
            Role::Backup => "backup",
        }
    }
}

/// Per-node tags, with Patroni's names and meaning.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Tags {
    /// Never promoted automatically.
    #[serde(default)]
    pub nofailover: bool,
    /// Never served by the read-only router port.
    #[serde(default)]
    pub noloadbalance: bool,
    /// Higher wins among candidates that are equally far ahead; 0 = never.
    #[serde(default = "default_failover_priority")]
    pub failover_priority: u32,
}

impl Default for Tags {
    fn default() -> Self {
        Tags {
            nofailover: false,
            noloadbalance: false,
            failover_priority: default_failover_priority(),
        }
    }
}

fn default_failover_priority() -> u32 {
    1
}

/// Secrets have no defaults on purpose: an appliance must never ship a
/// password that is the same on every box.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    pub superuser_password: String,
    pub replication_password: String,
    pub app_password: String,
    /// Password of pgboxd's etcd user (and of etcd's `root`): pgboxd turns on
    /// etcd authentication with it when it first finds etcd open, so that
    /// nobody who merely reaches port 2379 can write the leader key.
    pub etcd_password: String,
    /// Password for the REST API's write endpoints (switchover, failover,
    /// configuration). Without it those endpoints refuse every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_password: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSettings {
    pub superuser: String,
    pub replication_user: String,
    pub app_user: String,
    pub database: String,
    /// Extra server settings. Settings pgboxd owns (listen_addresses, port,
    /// hot_standby, primary_conninfo, wal_level, ...) are rejected here.
    pub parameters: BTreeMap<String, ParamValue>,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        PostgresSettings {
            superuser: "postgres".into(),
            replication_user: "replicator".into(),
            app_user: "app".into(),
            database: "app".into(),
            parameters: BTreeMap::new(),
        }
    }
}

/// A PostgreSQL setting's value as written in YAML.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl ParamValue {
    /// The value as it goes into postgresql.conf.
    pub fn to_conf(&self) -> String {
        match self {
            ParamValue::Bool(b) => {
                if *b {
                    "on".into()
                } else {
                    "off".into()
                }
            }
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Float(f) => f.to_string(),
            ParamValue::Text(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RewindFailure {
    /// Take a fresh base backup from the leader (the old data is removed).
    Basebackup,
    /// Stay down and say so; a person decides.
    Stop,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HaSettings {
    /// Leader lease time to live. A dead primary is replaced after at most this.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Longest pause between two HA loops when nothing happens (events wake
    /// the loop at once).
    #[serde(with = "humantime_serde")]
    pub loop_wait: Duration,
    /// A replica further behind the last known primary position than this
    /// (bytes) never promotes itself.
    pub maximum_lag_on_failover: u64,
    /// Use pg_rewind to turn a diverged old primary into a replica.
    pub use_pg_rewind: bool,
    /// What to do when pg_rewind fails.
    pub on_rewind_failure: RewindFailure,
    /// off, on (default: no acknowledged write lost on failover), strict.
    pub synchronous_mode: SyncMode,
    /// A leader whose PostgreSQL is not back up within this long gives up
    /// the leader key, so a replica takes over.
    #[serde(with = "humantime_serde")]
    pub primary_start_timeout: Duration,
    /// The hardware watchdog: `off`, `automatic` (use /dev/watchdog when
    /// there is one) or `required` (refuse to lead without one).
    pub watchdog: WatchdogMode,
    /// A primary that loses the DCS stays primary while every other
    /// PostgreSQL node confirms through its API that it will not take over
    /// (and each such node then waits one TTL before it may). Off: a primary
    /// without the DCS stops accepting writes once its lease could expire.
    pub failsafe_mode: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum WatchdogMode {
    Off,
    #[default]
    Automatic,
    Required,
}

impl Default for HaSettings {
    fn default() -> Self {
        HaSettings {
            ttl: Duration::from_secs(10),
            loop_wait: Duration::from_secs(1),
            maximum_lag_on_failover: 1024 * 1024,
            use_pg_rewind: true,
            on_rewind_failure: RewindFailure::Basebackup,
            synchronous_mode: SyncMode::On,
            primary_start_timeout: Duration::from_secs(30),
            watchdog: WatchdogMode::Automatic,
            failsafe_mode: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdSettings {
    /// Key prefix above the cluster name (Patroni's "namespace").
    pub namespace: String,
    /// Allow an etcd membership that cannot survive the loss of a member
    /// (one member, or an even count). Only for trying pgbox out.
    pub allow_unsafe_member_count: bool,
    /// How often the etcd leader tells the members it is alive.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// How long a member waits without a heartbeat before it calls an
    /// election. etcd also never grants a lease shorter than 1.5 times this.
    #[serde(with = "humantime_serde")]
    pub election_timeout: Duration,
    /// Client and peer TLS for etcd: HTTPS on both ports, and a client or
    /// peer must present a certificate the CA signed. The certificate names
    /// every etcd member's address and serves as pgboxd's client certificate
    /// too. Without it, etcd speaks plain HTTP (still password-protected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPem>,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        EtcdSettings {
            namespace: "/service".into(),
            allow_unsafe_member_count: false,
            // etcd's own defaults (100ms/1s) are tuned for dedicated
            // servers; appliance boxes share CPU and disk with PostgreSQL,
            // and a needless etcd election stalls every lease renewal.
            heartbeat_interval: Duration::from_millis(250),
            election_timeout: Duration::from_millis(2500),
            tls: None,
        }
    }
}

impl EtcdSettings {
    /// The shortest lease etcd grants: it raises shorter TTLs to this.
    /// etcd's `minTTL`: 1.5 election timeouts counted in whole heartbeats,
    /// rounded up to whole seconds (lease TTLs are whole seconds).
    pub fn min_lease_ttl(&self) -> Duration {
        let heartbeat = self.heartbeat_interval.as_millis().max(1);
        let ticks = self.election_timeout.as_millis() / heartbeat;
        let millis = 3 * ticks / 2 * heartbeat;
        Duration::from_secs(u64::try_from(millis.div_ceil(1000)).unwrap_or(u64::MAX))
    }
}

/// How each box configures its network interface: the node's `address`
/// with this prefix, on the NIC given by the node's `mac` (or the Ethernet
/// NIC when there is none).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSettings {
    /// The subnet's prefix length (24 for a 255.255.255.0 netmask).
    pub prefix_length: u8,
    /// The default route; none keeps the cluster on its own subnet.
    pub gateway: Option<IpAddr>,
    /// Name servers; none is fine, pgbox itself uses addresses only.
    pub dns: Vec<IpAddr>,
    /// Where applications connect to PostgreSQL from directly, besides the
    /// router nodes (which always may). Empty: through the routers only.
    pub client_networks: Vec<Cidr>,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            prefix_length: 24,
            gateway: None,
            dns: Vec::new(),
            client_networks: Vec::new(),
        }
    }
}

/// The REST API (port 8008): who may use its write endpoints, and HTTPS.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Networks whose requests the write endpoints (switchover, failover,
    /// PATCH /config) accept, in addition to the cluster's own nodes and
    /// this box's loopback, which always may.
    pub allow_writes_from: Vec<Cidr>,
    /// Serve the API over HTTPS with this certificate; without it, plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPem>,
}

/// A certificate, written inline as PEM text (a YAML block scalar, `|`), so
/// the first-boot file stays the one thing a box needs. One certificate
/// serves the whole cluster: it names every server node's address
/// (`api.tls`: the PostgreSQL nodes; `etcd.tls`: the etcd members).
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsPem {
    /// The certificate, then any intermediate certificates.
    pub certificate: String,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1 PEM).
    pub private_key: String,
    /// The CA certificate(s) that signed it: what clients trust (pgboxd,
    /// HAProxy and pgboxctl calling an API; pgboxd and etcd members calling
    /// etcd).
    pub ca: String,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsPem { .. }")
    }
}

/// `backup:`: continuous WAL archiving and scheduled backups with
/// pgBackRest. The repository lives on the node with the role `backup`;
/// every PostgreSQL node pushes its WAL there and the backup node takes the
/// backups (from a replica when one is healthy), all through pgBackRest's
/// own TLS server.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// A full backup when the last full one is older than this.
    #[serde(default = "default_full_every", with = "humantime_serde")]
    pub full_every: Duration,
    /// An incremental backup when the last backup of any kind is older
    /// than this.
    #[serde(default = "default_incremental_every", with = "humantime_serde")]
    pub incremental_every: Duration,
    /// Full backups kept (with the incremental ones and the WAL that
    /// depend on them); older ones are expired after each backup.
    #[serde(default = "default_retention_full")]
    pub retention_full: u32,
    /// The longest a written transaction waits before its WAL segment is
    /// switched and archived even when little is written: the bound on how
    /// much of an idle cluster's recent history a lost cluster can lose
    /// (PostgreSQL's archive_timeout).
    #[serde(default = "default_archive_timeout", with = "humantime_serde")]
    pub archive_timeout: Duration,
    /// Where the repository lives on the backup node (an absolute path;
    /// a bigger disk may be mounted there).
    #[serde(default = "default_repository_path")]
    pub path: std::path::PathBuf,
    /// A new cluster (no data on any box, nothing in etcd) comes up from
    /// the repository instead of `initdb`: the latest state it holds, or
    /// the state at a time. Ignored once the cluster exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreTarget>,
    /// pgBackRest's TLS: one certificate naming every PostgreSQL node's and
    /// the backup node's address, for server and client use (each side
    /// checks the other's certificate). `pgboxctl tls init` makes it
    /// (required; optional in the type so that `tls init` can read a file
    /// that does not have it yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPem>,
}

/// What a new cluster is restored to (`backup.restore`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum RestoreTarget {
    /// Everything the repository holds: the last backup and all WAL after it.
    Latest,
    /// The state at this time (`YYYY-MM-DD HH:MM:SS[.fraction]+HH[:MM]`,
    /// with its UTC offset): transactions committed after it are left out.
    Time(String),
}

fn default_full_every() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_incremental_every() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_retention_full() -> u32 {
    2
}

fn default_repository_path() -> std::path::PathBuf {
    "/var/lib/pgbox/backup".into()
}

fn default_archive_timeout() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Ports {
    pub postgres: u16,
    pub api: u16,
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub router_rw: u16,
    pub router_ro: u16,
    pub router_stats: u16,
    /// pgBackRest's TLS server on the PostgreSQL nodes and the backup node.
    pub backup: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            postgres: 5432,
            api: 8008,
            etcd_client: 2379,
            etcd_peer: 2380,
            router_rw: 5000,
            router_ro: 5001,
            router_stats: 7000,
            backup: 8432,
        }
    }
}

impl Config {
    pub fn node_named(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn nodes_with(&self, role: Role) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.roles.contains(&role))
    }

    /// etcd client URLs of every etcd member, in file order.
    pub fn etcd_endpoints(&self) -> Vec<String> {
        self.nodes_with(Role::Etcd)
            .map(|n| self.etcd_url(n.address, self.ports.etcd_client))
            .collect()
    }

    /// An etcd URL (client or peer port): `https` when etcd has a certificate.
    pub fn etcd_url(&self, addr: IpAddr, port: u16) -> String {
        let scheme = if self.etcd.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", sock(addr, port))
    }

    /// The DCS key prefix of this cluster, with a trailing slash.
    pub fn key_prefix(&self) -> String {
        format!(
            "{}/{}/",
            self.etcd.namespace.trim_end_matches('/'),
            self.cluster.name
        )
    }

    pub fn api_url(&self, node: &Node) -> String {
        format!("{}/patroni", self.api_base(node))
    }

    /// `scheme://address:port` of `node`'s API.
    pub fn api_base(&self, node: &Node) -> String {
        format!(
            "{}://{}",
            self.api_scheme(),
            sock(node.address, self.ports.api)
        )
    }

    /// `https` when the API has a certificate, `http` otherwise.
    pub fn api_scheme(&self) -> &'static str {
        if self.api.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// `addr:port`, with brackets for IPv6.
pub fn sock(addr: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

/// How commits wait for a standby (`ha.synchronous_mode`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Asynchronous replication: a failover may lose the last commits.
    Off,
    /// Commits wait for one named standby while one is healthy; only that
    /// standby may be promoted automatically. With no healthy standby,
    /// commits go on without waiting.
    #[default]
    On,
    /// As `on`, but with no healthy standby commits block rather than risk loss.
    Strict,
}
