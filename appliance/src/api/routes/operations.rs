//! `POST /switchover` and `POST /failover`: a person's request, recorded in
//! the DCS `failover` key for the HA loops to carry out. The request is
//! checked here against the cluster as this node last saw it, so an
//! impossible request is refused with a reason instead of being queued.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::api::{auth, json_error, snapshot, ApiState};
use crate::dcs::model::FailoverKey;

/// Both routes are writes: `guard` (the allow-list and the password) runs
/// before anything else, the body included.
pub fn routes(api: &ApiState) -> Router<ApiState> {
    Router::new()
        .route("/switchover", post(switchover).delete(cancel_switchover))
        .route("/failover", post(failover))
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            auth::require_write_access,
        ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(default)]
    pub candidate: Option<String>,
    #[serde(default)]
    pub scheduled_at: Option<String>,
}

/// A switchover or failover body as JSON, or why it is not one. Public so
/// that the fuzz targets exercise exactly what the endpoints run.
pub fn parse_request(body: &[u8]) -> Result<Request, String> {
    crate::api::parse_object(body, r#"{"leader": "db1", "candidate": "db2"}"#)
}

async fn switchover(State(api): State<ApiState>, body: axum::body::Bytes) -> Response {
    handle(api, body, true).await
}

async fn failover(State(api): State<ApiState>, body: axum::body::Bytes) -> Response {
    handle(api, body, false).await
}

// Who may call this (allow-list, credentials) is checked before the body is
// read, by the write endpoints' layer (api/auth.rs).
async fn handle(api: ApiState, body: axum::body::Bytes, switchover: bool) -> Response {
    let req = match parse_request(&body) {
        Ok(r) => r,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
    // What the request itself lacks is a 400, whatever the cluster's state.
    if let Err(why) = well_formed(&req, switchover) {
        return json_error(StatusCode::BAD_REQUEST, why);
    }
    let node = snapshot(&api.status);
    let view = &node.cluster;
    let leader = view.leader.clone();
    // What the cluster's mode forbids outright (maintenance mode) is
    // answered before anything else and leaves nothing behind: the HA core
    // decides it, so the API and the loops agree. Read from the DCS itself
    // when it answers, as a pause set after this node's last loop counts.
    let config = match &api.dcs {
        Some(dcs) => match dcs.read_view().await {
            Ok((fresh, _)) => fresh.config,
            Err(_) => view.config.clone(),
        },
        None => view.config.clone(),
    };
    let asked = FailoverKey {
        leader: req.leader.clone(),
        member: req.candidate.clone(),
        scheduled_at: req.scheduled_at.clone(),
    };
    if let Some(refusal) = crate::ha::request_refusal(&config, &asked) {
        let code = match refusal {
            crate::ha::RequestRefusal::Malformed(_) => StatusCode::BAD_REQUEST,
            crate::ha::RequestRefusal::Precondition(_) => StatusCode::PRECONDITION_FAILED,
        };
        return json_error(code, refusal.message());
    }
    if let Some(c) = &req.candidate {
        let mode = serde_json::from_value(api.static_config["synchronous_mode"].clone())
            .unwrap_or_default();
        // The bound in force: the cluster-wide setting as this node's loop
        // applies it (`PATCH /config` may have changed pgbox.yaml's).
        let max_lag = match api.cluster_cfg {
            Some(_) => node.maximum_lag_on_failover,
            None => api.static_config["maximum_lag_on_failover"]
                .as_u64()
                .unwrap_or(u64::MAX),
        };
        if let Some(why) = crate::ha::candidate_refusal(view, mode, max_lag, c, switchover) {
            return json_error(StatusCode::PRECONDITION_FAILED, why);
        }
    }
    let key = if switchover {
        let Some(current) = leader.clone() else {
            return json_error(
                StatusCode::PRECONDITION_FAILED,
                "no leader: a switchover needs one; use failover",
            );
        };
        if let Some(l) = req.leader.as_ref().filter(|l| **l != current) {
            return json_error(
                StatusCode::PRECONDITION_FAILED,
                format!("leader name {l} does not match: the leader is {current}"),
            );
        }
        FailoverKey {
            leader: Some(current),
            member: req.candidate.clone(),
            scheduled_at: req.scheduled_at.clone(),
        }
    } else {
        let Some(c) = req.candidate.clone() else {
            return json_error(StatusCode::BAD_REQUEST, "failover needs \"candidate\"");
        };
        // With a leader this is a switchover to the named candidate.
        FailoverKey {
            leader: leader.clone(),
            member: Some(c),
            scheduled_at: None,
        }
    };
    let Some(dcs) = api.dcs.clone() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node has no DCS connection",
        );
    };
    let revision = match dcs.request_failover(&key).await {
        Ok(Some(revision)) => revision,
        Ok(None) => {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "a switchover or failover is already pending",
            )
        }
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    };
    if let Some(at) = &key.scheduled_at {
        let message = format!("switchover scheduled at {at}");
        return (StatusCode::ACCEPTED, Json(json!({ "message": message }))).into_response();
    }
    if key.leader.is_none() {
        tracing::warn!(candidate = ?key.member, "manual failover requested: writes the candidate lacks are lost");
    }
    wait_for_new_leader(&api, leader.as_deref(), key.member.as_deref(), revision).await
}

/// The request's own shape: the fields each kind needs and their formats.
fn well_formed(req: &Request, switchover: bool) -> Result<(), String> {
    if switchover {
        if req.leader.is_none() {
            return Err("switchover needs \"leader\" (the current leader's name)".into());
        }
        if let Some(at) = &req.scheduled_at {
            if humantime::parse_rfc3339_weak(at).is_err() {
                return Err(format!("scheduled_at {at:?} is not an RFC 3339 time"));
            }
        }
    } else {
        if req.candidate.is_none() {
            return Err("failover needs \"candidate\"".into());
        }
        if req.scheduled_at.is_some() {
            return Err("a failover cannot be scheduled; schedule a switchover".into());
        }
    }
    Ok(())
}

/// How long a caller waits for a switchover or failover to be carried out.
const OUTCOME_WAIT: Duration = Duration::from_secs(60);

/// Wait for the outcome, as Patroni does, so a script learns the result.
/// A request not carried out in time is withdrawn (only if it is still the
/// one written at `revision`): a caller told it failed must never see it
/// take effect later.
async fn wait_for_new_leader(
    api: &ApiState,
    old: Option<&str>,
    wanted: Option<&str>,
    revision: i64,
) -> Response {
    let dcs = api.dcs.clone().unwrap();
    let deadline = tokio::time::Instant::now() + OUTCOME_WAIT;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok((view, _)) = dcs.read_view().await else {
            continue;
        };
        if view.failover.is_some() {
            continue;
        }
        return outcome(view.leader.as_deref(), old, wanted);
    }
    match dcs.withdraw_failover(revision).await {
        Ok(true) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "switchover failed: not carried out within {} s; the request was withdrawn and will not take effect",
                OUTCOME_WAIT.as_secs()
            ),
        ),
        // Gone or replaced meanwhile: it was handled; say how.
        Ok(false) => match dcs.read_view().await {
            Ok((view, _)) => outcome(view.leader.as_deref(), old, wanted),
            Err(e) => unknown(&e),
        },
        Err(e) => unknown(&e),
    }
}

fn outcome(leader: Option<&str>, old: Option<&str>, wanted: Option<&str>) -> Response {
    match leader {
        Some(new) if Some(new) != old && wanted.is_none_or(|w| w == new) => (
            StatusCode::OK,
            Json(json!({"message": format!("Successfully switched over to \"{new}\"")})),
        )
            .into_response(),
        Some(same) => json_error(
            StatusCode::PRECONDITION_FAILED,
            format!(
                "switchover not carried out: {same} still leads (it refused the request, or the candidate did not take over in time and {same} took the key back); see its log"
            ),
        ),
        None => json_error(
            StatusCode::PRECONDITION_FAILED,
            "switchover not carried out: the request is gone and nobody leads yet; see the members' logs",
        ),
    }
}

/// The request may still be in the DCS (it could not be withdrawn).
fn unknown(e: &anyhow::Error) -> Response {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "switchover status unknown after {} s, and the request could not be withdrawn ({e:#}); \
             the leader may still carry it out",
            OUTCOME_WAIT.as_secs()
        ),
    )
}

/// `DELETE /switchover` (`pgboxctl flush switchover`, `patronictl flush
/// switchover`): remove a scheduled switchover before it fires, with
/// Patroni's codes: 200 removed, 404 none is scheduled, 409 the request
/// changed meanwhile (it fired, or another replaced it). A request due now
/// is the leader's to carry out and is not touched.
async fn cancel_switchover(State(api): State<ApiState>) -> Response {
    let Some(dcs) = api.dcs.clone() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node has no DCS connection",
        );
    };
    let (request, revision) = match dcs.read_failover().await {
        Ok(Some((r, rev))) if r.scheduled_at.is_some() => (r, rev),
        Ok(_) => return json_error(StatusCode::NOT_FOUND, "no switchover is scheduled"),
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    };
    match dcs.withdraw_failover(revision).await {
        Ok(true) => {
            tracing::info!(
                at = request.scheduled_at.as_deref().unwrap_or(""),
                candidate = request.member.as_deref().unwrap_or("any"),
                "scheduled switchover deleted through the API"
            );
            (
                StatusCode::OK,
                Json(json!({ "message": "scheduled switchover deleted" })),
            )
                .into_response()
        }
        Ok(false) => json_error(
            StatusCode::CONFLICT,
            "the switchover request changed while it was being deleted",
        ),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies() {
        let req = parse_request(br#"{"leader": "db1", "candidate": "db2"}"#).unwrap();
        assert_eq!(req.leader.as_deref(), Some("db1"));
        assert_eq!(req.candidate.as_deref(), Some("db2"));
        assert!(parse_request(b"{}").is_ok());
        let unknown = parse_request(br#"{"leader": "db1", "member": "db2"}"#).unwrap_err();
        assert!(unknown.contains("unknown field `member`"), "{unknown}");
        let wrong = parse_request(br#"{"candidate": 2}"#).unwrap_err();
        assert!(wrong.contains("invalid type"), "{wrong}");
    }

    #[test]
    fn an_array_is_not_a_request() {
        // Found by the api_requests fuzz target: serde fills a struct from
        // an array positionally, so these were accepted.
        for body in [&b"[\r\r\r\r]\r\r\r\r"[..], b"[]", br#"["db1", "db2"]"#] {
            let error = parse_request(body).unwrap_err();
            assert!(error.contains("expected a JSON object"), "{error}");
            assert!(error.ends_with("found an array"), "{error}");
        }
        assert!(parse_request(b"null").unwrap_err().ends_with("found null"));
    }
}
