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
    }
    doc.insert(
        "cluster_unlocked".into(),
        json!(node.cluster.leader.is_none()),
    );
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
    Value::Object(doc)
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
            if let Some(replayed) = pg.lsn {
                xlog.insert("replayed_location".into(), json!(replayed));
            }
            (!xlog.is_empty()).then_some(Value::Object(xlog))
        }
        PgRole::Unknown => None,
    }
}

/// Patroni reports its own timestamps as whole seconds since the epoch.
fn unix_seconds(time: SystemTime) -> Option<u64> {
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}
