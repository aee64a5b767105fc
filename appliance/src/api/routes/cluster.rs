//! `GET /cluster`: every member as the last DCS snapshot shows it, in the
//! shape `patronictl list` and Patroni exporters read.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::api::snapshot;
use crate::dcs::model::{ClusterView, Member};
use crate::status::{NodeStatus, SharedStatus};

/// PostgreSQL's port when a connection URL names none.
const DEFAULT_PG_PORT: u16 = 5432;

pub fn routes() -> Router<crate::api::ApiState> {
    Router::new().route("/cluster", get(handler).options(handler))
}

async fn handler(State(status): State<SharedStatus>) -> Json<Value> {
    Json(body(&snapshot(&status)))
}

/// The `/cluster` document for the cluster `node` last saw.
pub fn body(node: &NodeStatus) -> Value {
    let view = &node.cluster;
    let leader_lsn = leader_position(view);
    let mut members: Vec<&(String, Member)> = view.members.iter().collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    // The sync key counts only when the current leader wrote it.
    let sync_standby = view
        .sync
        .as_ref()
        .filter(|k| k.leader.is_some() && k.leader == view.leader)
        .and_then(|k| k.sync_standby.as_deref());
    let members: Vec<Value> = members
        .into_iter()
        .map(|(name, member)| {
            let mut doc = member_json(
                name,
                member,
                view.leader.as_deref() == Some(name),
                leader_lsn,
            );
            if sync_standby == Some(name.as_str()) && doc["role"] == "replica" {
                doc["role"] = json!("sync_standby");
            }
            doc
        })
        .collect();
    let mut doc = json!({ "scope": node.scope, "members": members });
    // Patroni's field, present only while maintenance mode is on.
    if view.config.pause {
        doc["pause"] = json!(true);
    }
    doc
}

fn member_json(name: &str, member: &Member, is_leader: bool, leader_lsn: Option<u64>) -> Value {
    let mut doc = Map::new();
    doc.insert("name".into(), json!(name));
    doc.insert("role".into(), json!(role(member, is_leader)));
    doc.insert("state".into(), json!(state(member, is_leader)));
    doc.insert("api_url".into(), json!(member.api_url));
    if let Some((host, port)) = parse_conn_url(&member.conn_url) {
        doc.insert("host".into(), json!(host));
        doc.insert("port".into(), json!(port));
    }
    if let Some(timeline) = member.timeline {
        doc.insert("timeline".into(), json!(timeline));
    }
    // The leader is the reference point, so it has no lag (Patroni omits it too).
    if !is_leader {
        let lag = match (leader_lsn, member.xlog_location) {
            (Some(leader), Some(mine)) => json!(leader.saturating_sub(mine)),
            _ => json!("unknown"),
        };
        doc.insert("lag".into(), lag);
    }
    doc.insert("tags".into(), json!(member.tags));
    Value::Object(doc)
}

/// "leader" for the holder of the leader key. Anyone else reports its own
/// role, so a member still running as primary without the key shows up as
/// "primary" instead of hiding among the replicas.
fn role(member: &Member, is_leader: bool) -> &str {
    if is_leader {
        "leader"
    } else if member.role.is_empty() {
        "unknown"
    } else {
        &member.role
    }
}

fn state(member: &Member, is_leader: bool) -> &str {
    let streaming = member.replication_state.as_deref() == Some("streaming");
    if !is_leader && streaming && member.state == "running" {
        "streaming"
    } else if member.state.is_empty() {
        "unknown"
    } else {
        &member.state
    }
}

/// The leader's last known WAL position. Its own member key is preferred:
/// it is written by the current leader, whereas the cluster-wide `status`
/// key may still carry a previous leader's figure just after a failover.
pub fn leader_position(view: &ClusterView) -> Option<u64> {
    view.leader
        .as_deref()
        .and_then(|leader| view.member(leader))
        .and_then(|member| member.xlog_location)
        .or(view.last_leader_lsn)
}

/// Host and port of `postgres://[user@]host[:port][/db][?...]`; IPv6 hosts
/// in brackets come back without them.
pub fn parse_conn_url(url: &str) -> Option<(String, u16)> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        match after.strip_prefix(':') {
            Some(port) => (host, port.parse().ok()?),
            None if after.is_empty() => (host, DEFAULT_PG_PORT),
            None => return None,
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (host_port, DEFAULT_PG_PORT),
        }
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_urls() {
        let parsed = |url| parse_conn_url(url);
        assert_eq!(
            parsed("postgres://127.0.0.2:5432/postgres"),
            Some(("127.0.0.2".into(), 5432))
        );
        assert_eq!(parsed("postgresql://db1:5433"), Some(("db1".into(), 5433)));
        assert_eq!(
            parsed("postgres://rep@10.0.0.1/postgres?sslmode=require"),
            Some(("10.0.0.1".into(), 5432))
        );
        assert_eq!(
            parsed("postgres://[fd00::2]:6432/postgres"),
            Some(("fd00::2".into(), 6432))
        );
        assert_eq!(
            parsed("postgres://[fd00::2]/postgres"),
            Some(("fd00::2".into(), 5432))
        );
        assert_eq!(parsed("postgres://db1:notaport/postgres"), None);
        assert_eq!(parsed("postgres:///postgres"), None);
        assert_eq!(parsed("http://db1:5432/"), None);
        assert_eq!(parsed(""), None);
    }

    #[test]
    fn leader_position_prefers_the_leaders_own_key() {
        let member = |lsn| Member {
            xlog_location: lsn,
            ..Member::default()
        };
        let mut view = ClusterView {
            leader: Some("db1".into()),
            members: vec![("db1".into(), member(Some(500)))],
            last_leader_lsn: Some(400),
            ..ClusterView::default()
        };
        assert_eq!(leader_position(&view), Some(500));
        view.members[0].1.xlog_location = None;
        assert_eq!(leader_position(&view), Some(400));
        view.leader = None;
        view.last_leader_lsn = None;
        assert_eq!(leader_position(&view), None);
    }
}
