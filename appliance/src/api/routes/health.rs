//! Health checks for routers and orchestrators: `/primary`, `/replica`,
//! `/read-only`, `/sync`, `/async`, `/health`, `/liveness`, `/readiness`,
//! ..., with Patroni's paths, query parameters and verdicts.
//!
//! Only the status code carries the verdict (HAProxy looks at nothing else);
//! the body is always the `/patroni` document so that whoever looks by hand
//! sees why. GET, HEAD and OPTIONS answer alike because HAProxy setups use
//! any of them for `httpchk`.

use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};

use crate::api::routes::{cluster, patroni};
use crate::api::{json_error, snapshot};
use crate::leader_check::Question;
use crate::status::{NodeStatus, PgRole, SharedStatus};

/// Options a check may take from the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckParams {
    /// `?lag=`: the most a replica may trail the leader's last known
    /// position, in bytes, and still pass `/replica`, `/read-only`,
    /// `/sync`, `/async` and `/readiness`.
    pub max_lag: Option<u64>,
    /// `?replication_state=`: a replica passes only in this state
    /// (`streaming` is the one pgbox reports).
    pub replication_state: Option<String>,
    /// `?tag_<name>=<value>`: the node's tag must have this value (a
    /// boolean or number as `true`, `false`, `1`, ...).
    pub tags: Vec<(String, String)>,
    /// `/readiness?mode=write`: judge lag by the WAL received rather than
    /// replayed.
    pub lag_by_received: bool,
}

type Check = fn(&NodeStatus, &CheckParams, SystemTime) -> bool;

pub fn routes() -> Router<crate::api::ApiState> {
    Router::new()
        .route("/", leader_route(Question::Primary, is_primary))
        .route("/primary", leader_route(Question::Primary, is_primary))
        .route("/read-write", leader_route(Question::Primary, is_primary))
        // Pre-3.0 Patroni name, still found in many HAProxy configs.
        .route("/master", leader_route(Question::Primary, is_primary))
        .route("/leader", leader_route(Question::Leader, holds_leader_key))
        // pgbox runs no standby clusters: no node is ever a standby leader.
        .route("/standby-leader", check_route(never))
        .route("/standby_leader", check_route(never))
        .route("/replica", check_route(is_replica))
        .route("/read-only", check_route(is_read_only))
        .route("/sync", check_route(is_sync))
        .route("/synchronous", check_route(is_sync))
        .route("/async", check_route(is_async))
        .route("/asynchronous", check_route(is_async))
        .route("/read-only-sync", check_route(is_read_only_sync))
        .route("/read-only-synchronous", check_route(is_read_only_sync))
        // Quorum commit is not a pgbox mode: no node is a quorum standby,
        // and only the primary serves quorum reads.
        .route("/quorum", check_route(never))
        .route("/read-only-quorum", check_route(is_primary))
        .route("/health", check_route(is_healthy))
        .route("/liveness", probe_route(is_live))
        .route("/readiness", probe_route(is_ready))
}

fn check_route(check: Check) -> MethodRouter<crate::api::ApiState> {
    route(check, true)
}

/// An orchestrator's probe (`/liveness`, `/readiness`): about the process
/// and its role, so tag filters do not apply (as in Patroni).
fn probe_route(check: Check) -> MethodRouter<crate::api::ApiState> {
    route(check, false)
}

fn route(check: Check, with_tags: bool) -> MethodRouter<crate::api::ApiState> {
    let handler = move |State(status): State<SharedStatus>,
                        Query(query): Query<Vec<(String, String)>>| async move {
        answer(&status, &query, check, with_tags)
    };
    get(handler).options(handler)
}

/// The endpoints whose 200 says "this node is the writable leader" (or
/// holds the key): answered from a fresh check made for the request
/// (`crate::leader_check`), never from the loop's snapshot, which may be a
/// loop old or, after a pause, describe a lease that has long expired. The
/// body is still the snapshot, for whoever looks by hand. Tags in the
/// query do not apply to them, as in Patroni: there is one leader.
fn leader_route(question: Question, snapshot_rule: Check) -> MethodRouter<crate::api::ApiState> {
    let handler = move |State(api): State<crate::api::ApiState>,
                        Query(query): Query<Vec<(String, String)>>| async move {
        let Some(checker) = api.leader_check.clone() else {
            return answer(&api.status, &query, snapshot_rule, false);
        };
        if let Err(message) = parse_params(&query) {
            return json_error(StatusCode::BAD_REQUEST, message);
        }
        let code = if checker.answer(question).await {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (code, Json(patroni::body(&snapshot(&api.status)))).into_response()
    };
    get(handler).options(handler)
}

fn answer(
    status: &SharedStatus,
    query: &[(String, String)],
    check: Check,
    with_tags: bool,
) -> Response {
    let params = match parse_params(query) {
        Ok(params) => params,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
    let node = snapshot(status);
    let now = SystemTime::now();
    let passes = check(&node, &params, now) && (!with_tags || tags_match(&node, &params.tags));
    let code = if passes {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(patroni::body(&node))).into_response()
}

/// Every `tag_<name>=<value>` of the query names a tag this node has, with
/// that value. Patroni compares the text, booleans and numbers written the
/// way JSON writes them.
fn tags_match(node: &NodeStatus, wanted: &[(String, String)]) -> bool {
    let mine = serde_json::to_value(&node.tags).unwrap_or_default();
    wanted.iter().all(|(name, value)| match mine.get(name) {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::String(text)) => text == value,
        Some(other) => other.to_string().to_ascii_lowercase() == *value,
    })
}

pub fn parse_params(query: &[(String, String)]) -> Result<CheckParams, String> {
    let mut params = CheckParams::default();
    for (key, value) in query {
        match key.as_str() {
            "lag" => {
                params.max_lag = Some(parse_bytes(value).ok_or_else(|| {
                    format!(
                        "lag={value:?}: expected a size in bytes such as 1048576, 16kB, 64MB or 1GB"
                    )
                })?)
            }
            "replication_state" => params.replication_state = Some(value.clone()),
            "mode" => {
                params.lag_by_received = match value.as_str() {
                    "write" => true,
                    "apply" => false,
                    _ => return Err(format!("mode={value:?}: expected write or apply")),
                }
            }
            _ => {
                if let Some(tag) = key.strip_prefix("tag_") {
                    params.tags.push((tag.to_string(), value.clone()));
                }
                // Anything else is ignored, as Patroni does: HAProxy
                // configurations carry cache-busting parameters.
            }
        }
    }
    Ok(params)
}

/// A byte count with an optional unit, as Patroni accepts for `?lag=`
/// (`16kB`, `64MB`, `1GB`; units are powers of 1024 like PostgreSQL's).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// The node takes writes: it holds the leader key and its PostgreSQL runs
/// as a primary. Both are required: a key without a writable server must not
/// attract writes, and a primary without the key is about to be fenced.
/// From the snapshot: `/read-only` and `/readiness` use it; `/primary`
/// itself uses it only on an API without a fresh check (unit tests).
pub fn is_primary(node: &NodeStatus, _: &CheckParams, _: SystemTime) -> bool {
    node.is_leader && node.pg.running && node.pg.role == PgRole::Primary
}

pub fn holds_leader_key(node: &NodeStatus, _: &CheckParams, _: SystemTime) -> bool {
    node.is_leader
}

fn never(_: &NodeStatus, _: &CheckParams, _: SystemTime) -> bool {
    false
}

/// A replica the read-only router may use: running, not excluded by
/// `noloadbalance`, not further behind than `?lag=` allows, and in the
/// `?replication_state=` asked for.
pub fn is_replica(node: &NodeStatus, params: &CheckParams, _: SystemTime) -> bool {
    let state_matches = match params.replication_state.as_deref() {
        None => true,
        Some("streaming") => node.pg.streaming,
        // pgbox reports no other state.
        Some(_) => false,
    };
    node.pg.running
        && node.pg.role == PgRole::Replica
        && !node.tags.noloadbalance
        && state_matches
        && !is_lagging(node, params.max_lag, false)
}

/// Further behind the leader's last known position than `max_lag`.
fn is_lagging(node: &NodeStatus, max_lag: Option<u64>, by_received: bool) -> bool {
    let Some(max_lag) = max_lag else { return false };
    // Without a known leader position lag cannot be judged; like Patroni,
    // keep the replica in service rather than empty the read pool because
    // the DCS snapshot lacks a number.
    let Some(leader) = cluster::leader_position(&node.cluster) else {
        return false;
    };
    let mine = if by_received {
        node.pg.receive_lsn.or(node.pg.lsn)
    } else {
        node.pg.replay_lsn.or(node.pg.lsn)
    };
    match mine {
        Some(mine) => leader.saturating_sub(mine) > max_lag,
        // A replica that cannot say where it is cannot claim to be close.
        None => true,
    }
}

/// Reads may go here: the writable primary, or a replica `/replica` accepts.
pub fn is_read_only(node: &NodeStatus, params: &CheckParams, now: SystemTime) -> bool {
    is_primary(node, params, now) || is_replica(node, params, now)
}

/// The synchronous standby, when `/replica` would accept it. Judged only
/// while the DCS answers (the `sync` key is the DCS's), as Patroni does.
pub fn is_sync(node: &NodeStatus, params: &CheckParams, now: SystemTime) -> bool {
    node.dcs_reachable && node.is_sync_standby() && is_replica(node, params, now)
}

/// A replica `/replica` accepts that is not the synchronous standby.
pub fn is_async(node: &NodeStatus, params: &CheckParams, now: SystemTime) -> bool {
    node.dcs_reachable && !node.is_sync_standby() && is_replica(node, params, now)
}

/// Reads that see every acknowledged commit: the primary or the
/// synchronous standby.
pub fn is_read_only_sync(node: &NodeStatus, params: &CheckParams, now: SystemTime) -> bool {
    is_primary(node, params, now) || is_sync(node, params, now)
}

pub fn is_healthy(node: &NodeStatus, _: &CheckParams, _: SystemTime) -> bool {
    node.pg.running
}

/// The HA loop completed recently. A loop stamp in the future (the clock was
/// stepped back) is not evidence of a hang, so it passes.
pub fn is_live(node: &NodeStatus, _: &CheckParams, now: SystemTime) -> bool {
    match now.duration_since(node.last_loop) {
        Ok(age) => age <= node.liveness_bound,
        Err(_) => true,
    }
}

/// Ready to serve its role: the leader with a running primary, or a
/// running replica that is streaming from its upstream and no further
/// behind than `?lag=` (by default `ha.maximum_lag_on_failover`, as in
/// Patroni), measured on WAL replayed or, with `?mode=write`, received.
pub fn is_ready(node: &NodeStatus, params: &CheckParams, now: SystemTime) -> bool {
    let max_lag = params.max_lag.unwrap_or(node.maximum_lag_on_failover);
    is_primary(node, params, now)
        || (node.pg.running
            && node.pg.role == PgRole::Replica
            && node.pg.streaming
            && !is_lagging(node, Some(max_lag), params.lag_by_received))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("1048576"), Some(1048576));
        assert_eq!(parse_bytes("16kB"), Some(16 * 1024));
        assert_eq!(parse_bytes("64MB"), Some(64 << 20));
        assert_eq!(parse_bytes("1GB"), Some(1 << 30));
        assert_eq!(parse_bytes("0"), Some(0));
        assert_eq!(parse_bytes("-1"), None);
        assert_eq!(parse_bytes("MB"), None);
        assert_eq!(parse_bytes("10 parsecs"), None);
        assert_eq!(parse_bytes("99999999999999999TB"), None);
    }
}
