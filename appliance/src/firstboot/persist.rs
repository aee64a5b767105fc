//! The copy of the first-boot file kept on the data partition, and which
//! later edits of the file may replace it.
//!
//! The first valid file a box boots with is copied to /var/lib/pgbox; from
//! then on that copy is what the box runs with. A later file (the config
//! partition edited, another fw_cfg blob) replaces it only when the change
//! is one a running cluster can take: tags, HA settings, PostgreSQL
//! parameters, secrets, and what only concerns the box itself (its NIC's
//! MAC, the network's prefix, gateway and name servers, etcd's timing).
//! Anything that names or places a member (cluster name, identity, nodes,
//! addresses, roles, ports, ...) is fixed once the cluster exists: changing
//! it on one box would split that box off.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use serde_json::Value;

use super::discover::read_optional;
use super::paths::{self, Root};
use crate::config::{
    ApiSettings, Config, EtcdSettings, HaSettings, NetworkSettings, Secrets, Tags, TlsPem,
};

/// What an earlier boot kept.
#[derive(Debug, Clone)]
pub struct Persisted {
    pub text: String,
    /// The identity in force; None when only the file was kept.
    pub node: Option<String>,
}

/// The kept copy, if there is one. Bytes that are not UTF-8 are kept as
/// they are found, so validation reports them.
pub fn read(root: &Root) -> std::io::Result<Option<Persisted>> {
    let Some(bytes) = read_optional(&root.at(paths::PERSISTED_CONFIG))? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    let node = read_optional(&root.at(paths::PERSISTED_NODE))?
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|n| !n.is_empty());
    Ok(Some(Persisted { text, node }))
}

/// Keeps `text` and `node` as the box's configuration from now on.
pub fn write(root: &Root, text: &str, node: &str) -> std::io::Result<()> {
    let dir = root.at(paths::STATE_DIR);
    if !dir.exists() {
        // Secrets live in the file: nobody but root (and, once pgboxd hands
        // the directory to it, PostgreSQL's user) may look inside.
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        DirBuilder::new().mode(0o700).create(&dir)?;
    }
    write_atomic(&root.at(paths::PERSISTED_CONFIG), text.as_bytes(), 0o600)?;
    write_atomic(
        &root.at(paths::PERSISTED_NODE),
        format!("{node}\n").as_bytes(),
        0o600,
    )
}

/// Replaces `path` with `bytes` so that a reader (or a power cut) sees the
/// old file or the new one, never a part: a temporary file beside it, synced,
/// then renamed over it, and the directory synced so the rename lasts.
pub(super) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` applies only to a file that did not exist; a leftover
        // temporary file keeps its old mode otherwise.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// How a new configuration differs from the one in force.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Changes a running cluster cannot take, each as `field (old → new)`.
    pub unsafe_changes: Vec<String>,
    /// The kinds of safe change made ("secrets", "tags of db2", ...); values
    /// are never shown, as some are secrets.
    pub safe_changes: Vec<String>,
}

pub fn compare(old: &Config, old_node: &str, new: &Config, new_node: &str) -> Changes {
    let mut changes = Changes::default();
    if old_node != new_node {
        changes
            .unsafe_changes
            .push(format!("node identity ({old_node} → {new_node})"));
    }
    let (old_v, new_v) = (fixed_part(old), fixed_part(new));
    diff("", &old_v, &new_v, &mut changes.unsafe_changes);

    let safe = &mut changes.safe_changes;
    for node in &new.nodes {
        if let Some(before) = old.node_named(&node.name) {
            if before.tags != node.tags {
                safe.push(format!("tags of {}", node.name));
            }
        }
    }
    if old.ha != new.ha {
        safe.push("ha".to_string());
    }
    if old.postgres.parameters != new.postgres.parameters {
        safe.push("postgres.parameters".to_string());
    }
    if old.secrets != new.secrets {
        safe.push("secrets".to_string());
    }
    for node in &new.nodes {
        if old
            .node_named(&node.name)
            .is_some_and(|before| before.mac != node.mac)
        {
            safe.push(format!("mac of {}", node.name));
        }
    }
    if old.network != new.network {
        safe.push("network".to_string());
    }
    if old.api != new.api {
        safe.push("api".to_string());
    }
    if (old.etcd.heartbeat_interval, old.etcd.election_timeout)
        != (new.etcd.heartbeat_interval, new.etcd.election_timeout)
    {
        safe.push("etcd timing".to_string());
    }
    changes
}

/// The configuration with everything that may change blanked out, as a
/// tree to compare. Whatever is not blanked here is fixed, including any
/// setting added to the schema later: the safe side by default.
fn fixed_part(cfg: &Config) -> Value {
    let mut c = cfg.clone();
    // The identity in force is compared on its own: it may come from
    // outside the file.
    c.node = None;
    c.ha = HaSettings::default();
    c.postgres.parameters.clear();
    c.secrets = Secrets {
        superuser_password: String::new(),
        replication_password: String::new(),
        app_password: String::new(),
        etcd_password: String::new(),
        api_password: None,
    };
    // A replaced NIC, a new router or name server: the box's own business.
    c.network = NetworkSettings::default();
    // Who may call the API, and its certificate: renewing a certificate or
    // widening a list must not need a new cluster. Blanked also because the
    // certificate's private key must never appear in a change message.
    c.api = ApiSettings::default();
    // etcd members tolerate differing timing while boxes are rebooted one
    // by one into new values.
    let defaults = EtcdSettings::default();
    c.etcd.heartbeat_interval = defaults.heartbeat_interval;
    c.etcd.election_timeout = defaults.election_timeout;
    // A renewed etcd certificate is applied like the API's. Turning etcd TLS
    // on or off is not: the members' peer URLs (http or https) are kept in
    // etcd's own member list, so the switch needs every member at once.
    // The PEM text is blanked in any case: keys never go into a message.
    c.etcd.tls = c.etcd.tls.as_ref().map(|_| TlsPem {
        certificate: String::new(),
        private_key: String::new(),
        ca: String::new(),
    });
    for node in &mut c.nodes {
        node.tags = Tags::default();
        node.mac = None;
        // Roles are a set: `[etcd, postgres]` is `[postgres, etcd]`.
        node.roles.sort();
    }
    let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
    // Nodes are compared by name: reordering the list changes nothing.
    if let Some(nodes) = v.get_mut("nodes") {
        let by_name: serde_json::Map<String, Value> = nodes
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| Some((n.get("name")?.as_str()?.to_string(), n.clone())))
            .collect();
        *nodes = Value::Object(by_name);
    }
    v
}

fn diff(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeMap<&String, ()> = a.keys().chain(b.keys()).map(|k| (k, ())).collect();
            for key in keys.keys() {
                let here = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                match (a.get(*key), b.get(*key)) {
                    (Some(x), Some(y)) => diff(&here, x, y, out),
                    // Only the node map has keys that come and go.
                    (Some(_), None) if path == "nodes" => out.push(format!("node {key} removed")),
                    (None, Some(_)) if path == "nodes" => out.push(format!("node {key} added")),
                    (x, y) => diff(
                        &here,
                        x.unwrap_or(&Value::Null),
                        y.unwrap_or(&Value::Null),
                        out,
                    ),
                }
            }
        }
        _ => out.push(format!("{path} ({} → {})", show(old), show(new))),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "none".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}
