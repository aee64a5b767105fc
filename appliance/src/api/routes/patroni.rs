//! `GET /patroni`: this node's state in the shape of Patroni's document.
//!
//! A field whose value is not known is left out rather than filled with a
//! guess: monitoring that sees a number must be able to trust it.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::api::snapshot;
use crate::status::{NodeStatus, PgRole, SharedStatus};

pub fn routes() -> Router<crate::api::ApiState> {
    Router::new().route("/patroni", get(handler).options(handler))
}

async fn handler(State(status): State<SharedStatus>) -> Json<Value> {
    Json(body(&snapshot(&status)))
}

/// The `/patroni` document for `node`.
pub fn body(node: &NodeStatus) -> Value {
    let pg = &node.pg;
    let mut doc = Map::new();
    doc.insert("state".into(), json!(node.state));
    doc.insert("role".into(), json!(pg.role));
    doc.insert("watchdog".into(), json!(node.watchdog));
    // Patroni's fields, present only while true.
    if node.cluster.config.pause {
        doc.insert("pause".into(), json!(true));
    }
    if node.failsafe_active {
        doc.insert("failsafe_mode_is_active".into(), json!(true));
    }
    if let Some(version) = pg.server_version {
        doc.insert("server_version".into(), json!(version));
    }
    if let Some(id) = &pg.system_identifier {
        doc.insert("database_system_identifier".into(), json!(id));
    }
    // Positions, timeline and start time describe a live server; once it
    // stops, the last values read would pass for current ones.
    if pg.running {
        if let Some(started) = &pg.postmaster_start_time {
            doc.insert("postmaster_start_time".into(), json!(started));
        }
        if let Some(xlog) = xlog(node) {
            doc.insert("xlog".into(), xlog);
        }
        if let Some(timeline) = pg.timeline {
            doc.insert("timeline".into(), json!(timeline));
        }
        if pg.role == PgRole::Replica && pg.streaming {
            doc.insert("replication_state".into(), json!("streaming"));
        }
        if node.is_sync_standby() {
            doc.insert("sync_standby".into(), json!(true));
        }
        if !pg.replication.is_empty() {
            doc.insert("replication".into(), json!(pg.replication));
        }
    }
    if let Some(a) = &pg.archive {
        // Not Patroni's: how this primary's WAL archiving goes.
        doc.insert("archive".into(), json!(a));
    }
    if !pg.pending_restart.is_empty() {
        doc.insert("pending_restart".into(), json!(true));
        let reasons: Map<String, Value> = pg
            .pending_restart
            .iter()
            .map(|p| {
                let change = json!({ "old_value": p.old_value, "new_value": p.new_value });
                (p.name.clone(), change)
            })
            .collect();
        doc.insert("pending_restart_reason".into(), Value::Object(reasons));
    }
    doc.insert(
        "cluster_unlocked".into(),
        json!(node.cluster.leader.is_none()),
    );
    if let Some(at) = &node.scheduled_restart {
        doc.insert("scheduled_restart".into(), json!({ "schedule": at }));
    }
    if let Some(seen) = node.dcs_last_seen.and_then(unix_seconds) {
        doc.insert("dcs_last_seen".into(), json!(seen));
    }
    doc.insert("tags".into(), json!(node.tags));
    doc.insert(
        "patroni".into(),
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "scope": node.scope,
            "name": node.name,
        }),
    );
    if !node.last_decision.is_empty() {
        doc.insert("last_decision".into(), json!(node.last_decision));
    }
    doc.insert("pgbox".into(), pgbox_view(node));
    Value::Object(doc)
}

/// What pgbox knows beyond Patroni's fields, for `pgboxctl status`:
/// Patroni clients ignore the extra key.
fn pgbox_view(node: &NodeStatus) -> Value {
    let pg = &node.pg;
    let mut view = Map::new();
    view.insert("leader".into(), json!(node.is_leader));
    view.insert("dcs_reachable".into(), json!(node.dcs_reachable));
    view.insert("watchdog_state".into(), json!(node.watchdog_state.as_str()));
    view.insert("watchdog_required".into(), json!(node.watchdog_required));
    if let Some(rem) = node.lease_remaining {
        view.insert("lease_remaining_seconds".into(), json!(rem.as_secs_f64()));
    }
    if pg.running && pg.role == PgRole::Replica {
        let leader = crate::api::routes::cluster::leader_position(&node.cluster);
        if let (Some(leader), Some(mine)) = (leader, pg.lsn) {
            view.insert("lag_bytes".into(), json!(leader.saturating_sub(mine)));
        }
        if let Some(lag) = pg.replay_lag {
            view.insert("replay_lag_seconds".into(), json!(lag.as_secs_f64()));
        }
    }
    if !node.config_problems.is_empty() {
        view.insert("config_problems".into(), json!(node.config_problems));
    }
    if let Some((action, cause)) = &node.last_action {
        view.insert("last_action".into(), json!(action));
        view.insert("last_reason".into(), json!(cause.as_str()));
    }
    Value::Object(view)
}

fn xlog(node: &NodeStatus) -> Option<Value> {
    let pg = &node.pg;
    match pg.role {
        PgRole::Primary => pg.lsn.map(|lsn| json!({ "location": lsn })),
        PgRole::Replica => {
            let mut xlog = Map::new();
            if let Some(received) = pg.receive_lsn {
                xlog.insert("received_location".into(), json!(received));
            }
            if let Some(replayed) = pg.replay_lsn.or(pg.lsn) {
                xlog.insert("replayed_location".into(), json!(replayed));
            }
            if xlog.is_empty() {
                return None;
            }
            // Patroni always sends these two on a replica, null when unknown.
            xlog.insert("replayed_timestamp".into(), json!(pg.replayed_timestamp));
            xlog.insert("paused".into(), json!(pg.replay_paused));
            Some(Value::Object(xlog))
        }
        PgRole::Unknown => None,
    }
}

/// Patroni reports its own timestamps as whole seconds since the epoch.
fn unix_seconds(time: SystemTime) -> Option<u64> {
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Tags;
    use crate::dcs::model::{ClusterView, Member};
    use crate::ha::Cause;
    use crate::status::{PgStatus, WatchdogState};

    #[test]
    fn the_pgbox_view_of_a_replica() {
        let mut node = NodeStatus::new("db2", "main", Tags::default(), Duration::from_secs(30));
        node.dcs_reachable = true;
        node.watchdog_state = WatchdogState::Disarmed;
        node.last_action = Some(("none".into(), Cause::Following));
        node.cluster = ClusterView {
            leader: Some("db1".into()),
            members: vec![(
                "db1".into(),
                Member {
                    xlog_location: Some(5_000),
                    ..Member::default()
                },
            )],
            ..ClusterView::default()
        };
        node.pg = PgStatus {
            running: true,
            role: PgRole::Replica,
            lsn: Some(4_000),
            replay_lag: Some(Duration::from_millis(1_500)),
            ..PgStatus::default()
        };
        assert_eq!(
            body(&node)["pgbox"],
            json!({
                "leader": false,
                "dcs_reachable": true,
                "watchdog_state": "disarmed",
                "watchdog_required": false,
                "lag_bytes": 1_000,
                "replay_lag_seconds": 1.5,
                "last_action": "none",
                "last_reason": "following",
            })
        );
    }

    #[test]
    fn a_stopped_node_reports_no_lag() {
        let mut node = NodeStatus::new("db2", "main", Tags::default(), Duration::from_secs(30));
        node.pg.role = PgRole::Replica;
        node.pg.lsn = Some(1);
        node.cluster.last_leader_lsn = Some(10);
        let view = &body(&node)["pgbox"];
        assert!(view.get("lag_bytes").is_none(), "{view}");
        assert!(view.get("last_action").is_none(), "{view}");
    }
}
