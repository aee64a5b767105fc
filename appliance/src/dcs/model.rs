//! What pgbox keeps in etcd, with Patroni's key names and JSON field names so
//! that tools written for Patroni can read a pgbox cluster.
//!
//! Keys, under `<namespace>/<cluster>/`:
//! - `leader`        the leader's member name, bound to its lease
//! - `members/<name>` a `Member` JSON, bound to that member's lease
//! - `initialize`    the system identifier, created once by the bootstrapping node
//! - `status`        `{"optime": <last known primary LSN>}`
//! - `history`       JSON list of timeline switches
//! - `config`, `sync`, `failover`: dynamic settings, sync standby, switchover requests
//! - `timeline`      pgbox's own: `{"reserved": N}`, the newest timeline a
//!   promotion reserved before pg_promote, so that no number is used twice

use serde::{Deserialize, Serialize};

use crate::config::Tags;

/// A member's published state (`members/<name>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Member {
    /// `postgres://host:port/postgres`
    pub conn_url: String,
    /// `http://host:8008/patroni`
    pub api_url: String,
    /// "running", "stopped", "starting", "creating replica", "rewinding", ...
    pub state: String,
    /// "primary" or "replica" (Patroni writes the same words).
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Write position on a primary, replay position on a replica (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xlog_location: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_lsn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_lsn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// "streaming" while a replica receives WAL from the leader (Patroni's value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_state: Option<String>,
    #[serde(default)]
    pub tags: Tags,
    /// Present (true) while the member runs in maintenance mode: what
    /// `patronictl pause --wait` waits to see on every member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<bool>,
}

/// One timeline switch: Patroni's `[timeline, lsn, reason, timestamp, new_leader]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryEntry(pub u32, pub u64, pub String, pub String, pub String);

/// The `timeline` key (pgbox's, not Patroni's): the newest timeline number
/// a promotion has reserved.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct TimelineKey {
    pub reserved: u32,
}

/// The `status` key: the last LSN the leader reported.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterStatus {
    pub optime: u64,
}

/// The `sync` key: which standby PostgreSQL is known to wait for. Written
/// only in an order that never claims more than PostgreSQL enforces.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncKey {
    pub leader: Option<String>,
    pub sync_standby: Option<String>,
}

/// The `failover` key: a requested switchover (with `leader`) or manual
/// failover (without), Patroni's fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FailoverKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// RFC 3339; not before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
}

/// The `config` key: the cluster-wide settings, in Patroni's layout (`ttl`,
/// `maximum_lag_on_failover`, `synchronous_mode`, `postgresql.parameters`,
/// `pause`, ...). The bootstrap writes it from pgbox.yaml; `PATCH`/`PUT
/// /config` and `patronictl edit-config` change it. What pgbox applies of
/// it, and how it checks it, is `config::dynamic`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamicConfig {
    /// Maintenance mode: no automatic action while set.
    pub pause: bool,
    /// The whole document as stored (`pause` included).
    pub doc: serde_json::Map<String, serde_json::Value>,
}

impl DynamicConfig {
    /// A document as stored; `pause` counts only as `true`.
    pub fn from_doc(doc: serde_json::Map<String, serde_json::Value>) -> Self {
        DynamicConfig {
            pause: doc.get("pause").and_then(|p| p.as_bool()) == Some(true),
            doc,
        }
    }

    /// The same document with maintenance mode on or off (off: no `pause`
    /// key, as Patroni leaves it after `resume`).
    pub fn with_pause(&self, on: bool) -> Self {
        let mut doc = self.doc.clone();
        if on {
            doc.insert("pause".into(), serde_json::Value::Bool(true));
        } else {
            doc.remove("pause");
        }
        DynamicConfig::from_doc(doc)
    }
}

impl Serialize for DynamicConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.doc.serialize(s)
    }
}

impl<'de> Deserialize<'de> for DynamicConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(DynamicConfig::from_doc(serde_json::Map::deserialize(d)?))
    }
}

/// Everything read from the DCS in one consistent snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    pub leader: Option<String>,
    /// System identifier recorded at bootstrap; `Some("")` while it runs.
    pub initialize: Option<String>,
    pub members: Vec<(String, Member)>,
    pub last_leader_lsn: Option<u64>,
    pub history: Vec<HistoryEntry>,
    pub sync: Option<SyncKey>,
    pub failover: Option<FailoverKey>,
    pub config: DynamicConfig,
    /// The `timeline` key: the newest timeline a promotion reserved.
    pub reserved_timeline: Option<u32>,
}

impl ClusterView {
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }
}

/// `0/3000148` style, as PostgreSQL prints an LSN.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

impl ClusterView {
    /// The newest timeline the history knows of: each entry records the
    /// timeline that ended, so the current one is one past the last.
    pub fn max_history_timeline(&self) -> Option<u32> {
        newest_timeline(&self.history)
    }
}

/// The newest timeline a history knows of: each entry records the timeline
/// that ended, so the current one is one past the last.
pub fn newest_timeline(history: &[HistoryEntry]) -> Option<u32> {
    history.iter().map(|h| h.0 + 1).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trip() {
        assert_eq!(parse_lsn("0/3000148"), Some(0x3000148));
        assert_eq!(format_lsn(0x1_0000_00A0), "1/A0");
        assert_eq!(parse_lsn(&format_lsn(123456789012)), Some(123456789012));
        assert_eq!(parse_lsn("nonsense"), None);
    }
}
