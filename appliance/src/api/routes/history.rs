//! `GET /history`: the cluster's timeline switches, as Patroni lists them:
//! `[timeline, lsn, reason, timestamp, new_leader]`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::api::snapshot;
use crate::dcs::model::HistoryEntry;
use crate::status::{NodeStatus, SharedStatus};

pub fn routes() -> Router<crate::api::ApiState> {
    Router::new().route("/history", get(handler).options(handler))
}

async fn handler(State(status): State<SharedStatus>) -> Json<Vec<HistoryEntry>> {
    Json(entries(&snapshot(&status)))
}

/// The node's own history list, or the DCS snapshot's when the loop has not
/// filled that in: both come from the same `history` key.
pub fn entries(node: &NodeStatus) -> Vec<HistoryEntry> {
    if node.history.is_empty() {
        node.cluster.history.clone()
    } else {
        node.history.clone()
    }
}
