//! `POST /switchover` and `POST /failover`: a person's request, recorded in
//! the DCS `failover` key for the HA loops to carry out. The request is
//! checked here against the cluster as this node last saw it, so an
//! impossible request is refused with a reason instead of being queued.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::api::{auth, json_error, snapshot, ApiState};
use crate::dcs::model::FailoverKey;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/switchover", post(switchover))
        .route("/failover", post(failover))
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
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("request body: {e}"))?;
    // serde would also fill a struct from an array, positionally: `[]` or
    // `["db1", "db2"]` would pass for a request nobody meant to send.
    if !value.is_object() {
        return Err(format!(
            "request body: expected a JSON object such as {{\"leader\": \"db1\", \"candidate\": \"db2\"}}, found {}",
            json_kind(&value)
        ));
    }
    serde_json::from_value(value).map_err(|e| format!("request body: {e}"))
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

async fn switchover(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    handle(api, headers, body, true).await
}

async fn failover(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    handle(api, headers, body, false).await
}

async fn handle(
    api: ApiState,
    headers: HeaderMap,
    body: axum::body::Bytes,
    switchover: bool,
) -> Response {
    if let Err(resp) = auth::check(&headers, api.api_password.as_deref()) {
        return resp;
    }
    let req = match parse_request(&body) {
        Ok(r) => r,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
    let node = snapshot(&api.status);
    let view = &node.cluster;
    let leader = view.leader.clone();
    if let Some(c) = &req.candidate {
        if view.member(c).is_none() {
            return json_error(
                StatusCode::PRECONDITION_FAILED,
                format!("candidate {c} is not a running member"),
            );
        }
        if leader.as_deref() == Some(c.as_str()) {
            return json_error(
                StatusCode::PRECONDITION_FAILED,
                format!("{c} is already the leader"),
            );
        }
        let sync_mode = api.static_config["synchronous_mode"]
            .as_str()
            .is_some_and(|m| m != "off");
        let sync_standby = view
            .sync
            .as_ref()
            .filter(|k| k.leader == leader)
            .and_then(|k| k.sync_standby.as_deref());
        if switchover && sync_mode && sync_standby != Some(c.as_str()) {
            return json_error(
                StatusCode::PRECONDITION_FAILED,
                format!(
                    "{c} is not the synchronous standby ({}); only it has every acknowledged write",
                    sync_standby.unwrap_or("none recorded yet")
                ),
            );
        }
    }
    let key = if switchover {
        let Some(current) = leader.clone() else {
            return json_error(
                StatusCode::PRECONDITION_FAILED,
                "no leader: a switchover needs one; use failover",
            );
        };
        match &req.leader {
            Some(l) if *l != current => {
                return json_error(
                    StatusCode::PRECONDITION_FAILED,
                    format!("leader name does not match: the leader is {current}"),
                )
            }
            None => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "switchover needs \"leader\" (the current leader's name)",
                )
            }
            _ => {}
        }
        if let Some(at) = &req.scheduled_at {
            if humantime::parse_rfc3339_weak(at).is_err() {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!("scheduled_at {at:?} is not an RFC 3339 time"),
                );
            }
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
        if req.scheduled_at.is_some() {
            return json_error(
                StatusCode::BAD_REQUEST,
                "a failover cannot be scheduled; schedule a switchover",
            );
        }
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
    match dcs.request_failover(&key).await {
        Ok(true) => {}
        Ok(false) => {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "a switchover or failover is already pending",
            )
        }
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
    if key.scheduled_at.is_some() {
        return (StatusCode::ACCEPTED, Json(json!({"message": format!("switchover scheduled at {}", key.scheduled_at.unwrap())})))
            .into_response();
    }
    if key.leader.is_none() {
        tracing::warn!(candidate = ?key.member, "manual failover requested: writes the candidate lacks are lost");
    }
    wait_for_new_leader(&api, leader.as_deref(), key.member.as_deref()).await
}

/// Wait for the outcome, as Patroni does, so a script learns the result.
async fn wait_for_new_leader(api: &ApiState, old: Option<&str>, wanted: Option<&str>) -> Response {
    let dcs = api.dcs.clone().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok((view, _)) = dcs.read_view().await else {
            continue;
        };
        if view.failover.is_some() {
            continue;
        }
        return match view.leader {
            Some(new) if Some(new.as_str()) != old && wanted.is_none_or(|w| w == new) => (
                StatusCode::OK,
                Json(json!({"message": format!("Successfully switched over to \"{new}\"")})),
            )
                .into_response(),
            _ => json_error(
                StatusCode::PRECONDITION_FAILED,
                "the request was refused by the leader; see its log for why",
            ),
        };
    }
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "switchover status unknown after 60 s",
    )
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
