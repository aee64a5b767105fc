//! `POST /restart`, `DELETE /restart`, `POST /reload`, `POST
//! /reinitialize`: operations on this member's PostgreSQL, with Patroni's
//! bodies, codes and messages (`patronictl restart|reload|reinit`).
//!
//! The API does not touch PostgreSQL: it leaves the request in the
//! mailbox (`crate::ops_mailbox`) for the HA loop, which carries it out in
//! a round it has nothing else to do, and waits for the outcome. All four
//! are writes: the allow-list and the password come first.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{auth, json_error, snapshot, ApiState};
use crate::ha::{Operation, RestartIf, Role};
use crate::ops_mailbox::{Busy, Mailbox, Settled};

pub fn routes(api: &ApiState) -> Router<ApiState> {
    Router::new()
        .route("/restart", post(restart).delete(cancel_restart))
        .route("/reload", post(reload))
        .route("/reinitialize", post(reinitialize))
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            auth::require_write_access,
        ))
}

/// How long a restart's caller waits when it gives no `timeout`: a stop,
/// a start and a loop or two to get to it.
const RESTART_WAIT: Duration = Duration::from_secs(60);
/// How long a reinitialize's caller waits for the loop to begin it.
const BEGIN_WAIT: Duration = Duration::from_secs(30);

/// Patroni's restart body: every key is a condition, or when.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartBody {
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub postgres_version: Option<Value>,
    #[serde(default)]
    pub timeout: Option<Value>,
    #[serde(default)]
    pub restart_pending: Option<bool>,
}

/// A restart request, checked: what to wait for, and until when.
#[derive(Debug, PartialEq)]
pub struct RestartRequest {
    pub conditions: RestartIf,
    /// Unix ms, and the schedule as written.
    pub schedule: Option<(u64, String)>,
    pub wait: Duration,
}

/// A restart body as a request, or the code and message that refuse it.
/// Public so that the fuzz targets exercise exactly what the endpoint runs.
pub fn parse_restart(
    body: &[u8],
    now_unix_ms: u64,
) -> Result<RestartRequest, (StatusCode, String)> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let body: RestartBody = if body.iter().all(u8::is_ascii_whitespace) {
        RestartBody::default()
    } else {
        crate::api::parse_object(body, r#"{"restart_pending": true}"#).map_err(bad)?
    };
    let role = match body.role.as_deref() {
        None => None,
        Some("primary" | "master") => Some(Role::Primary),
        Some("replica") => Some(Role::Replica),
        Some("standby_leader") => {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "restart conditions are not satisfied: pgbox runs no standby clusters, so no member is a standby_leader".into(),
            ))
        }
        Some(other) => {
            return Err(bad(format!(
                "role {other:?}: PostgreSQL role should be either primary, standby_leader, or replica"
            )))
        }
    };
    let below_version = match &body.postgres_version {
        None => None,
        Some(v) => Some(parse_version(v).ok_or_else(|| {
            bad(format!(
                "postgres_version {v}: expected a version such as 15, 15.8 or 9.6.24"
            ))
        })?),
    };
    let wait = match &body.timeout {
        None => RESTART_WAIT,
        Some(v) => parse_timeout(v).ok_or_else(|| {
            bad(format!(
                "timeout {v}: Timeout should be a positive number of seconds"
            ))
        })?,
    };
    let schedule = match body.schedule {
        None => None,
        Some(text) => Some((parse_schedule(&text, now_unix_ms)?, text)),
    };
    Ok(RestartRequest {
        conditions: RestartIf {
            pending_restart: body.restart_pending.unwrap_or(false),
            role,
            below_version,
        },
        schedule,
        wait,
    })
}

/// `15` → 150000, `15.8` → 150008, `9.6.24` → 90624 (`server_version_num`).
fn parse_version(v: &Value) -> Option<u32> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let parts: Vec<u32> = text
        .trim()
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts[..] {
        [major] if major >= 10 => Some(major * 10_000),
        [major, minor] if major >= 10 && minor < 100 => Some(major * 10_000 + minor),
        [major, minor, patch] if major < 10 && minor < 100 && patch < 100 => {
            Some(major * 10_000 + minor * 100 + patch)
        }
        _ => None,
    }
}

/// Seconds as a number, or a duration such as `90s` or `2m`.
fn parse_timeout(v: &Value) -> Option<Duration> {
    let d = match v {
        Value::Number(n) => Duration::try_from_secs_f64(n.as_f64()?).ok()?,
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(secs) => Duration::try_from_secs_f64(secs).ok()?,
            Err(_) => humantime::parse_duration(s.trim()).ok()?,
        },
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

/// An ISO 8601 / RFC 3339 time with its zone (`Z` or `+01:00`), as
/// `patronictl --scheduled` sends it, in ms since the epoch; Patroni's
/// codes for one without a zone (400), unreadable or past (422).
pub fn parse_schedule(text: &str, now_unix_ms: u64) -> Result<u64, (StatusCode, String)> {
    let unreadable = || {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("schedule {text:?}: unable to parse it; write an ISO 8601 time such as 2026-12-03T22:00:00+00:00"),
        )
    };
    let t = text.trim();
    // The offset: `Z`, or `+HH:MM` / `-HH:MM` after the time of day.
    let (local, offset_s): (&str, i64) = if let Some(rest) = t.strip_suffix(['Z', 'z']) {
        (rest, 0)
    } else {
        let split = t.len().checked_sub(6).filter(|&i| t.is_char_boundary(i));
        match split.map(|i| t.split_at(i)) {
            Some((local, zone))
                if (zone.starts_with('+') || zone.starts_with('-'))
                    && zone.as_bytes()[3] == b':' =>
            {
                let hours: i64 = zone[1..3].parse().map_err(|_| unreadable())?;
                let minutes: i64 = zone[4..6].parse().map_err(|_| unreadable())?;
                let sign = if zone.starts_with('-') { -1 } else { 1 };
                (local, sign * (hours * 3600 + minutes * 60))
            }
            _ => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!("schedule {text:?}: Timezone information is mandatory for the scheduled restart"),
                ))
            }
        }
    };
    let as_utc = humantime::parse_rfc3339_weak(local).map_err(|_| unreadable())?;
    let utc_ms = as_utc
        .duration_since(UNIX_EPOCH)
        .map_err(|_| unreadable())?
        .as_millis() as i64;
    let at_ms = u64::try_from(utc_ms - offset_s * 1000).map_err(|_| unreadable())?;
    if at_ms < now_unix_ms {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("schedule {text:?}: Cannot schedule restart in the past"),
        ));
    }
    Ok(at_ms)
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn no_loop() -> Response {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "this API has no HA loop to carry out operations",
    )
}

fn message(code: StatusCode, text: impl Into<String>) -> Response {
    (code, Json(json!({ "message": text.into() }))).into_response()
}

async fn restart(State(api): State<ApiState>, body: axum::body::Bytes) -> Response {
    let Some(ops) = api.ops.as_ref() else {
        return no_loop();
    };
    let req = match parse_restart(&body, now_unix_ms()) {
        Ok(r) => r,
        Err((code, text)) => return json_error(code, text),
    };
    if req.schedule.is_some() && snapshot(&api.status).cluster.config.pause {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Can't schedule restart in the paused state",
        );
    }
    let op = Operation::Restart(req.conditions);
    let (due, schedule) = match req.schedule {
        Some((at, text)) => (Some(at), Some(text)),
        None => (None, None),
    };
    let scheduled = schedule.is_some();
    let (ticket, outcome) = match ops.submit(op, due, schedule.clone()) {
        Ok(t) => t,
        Err(_) => {
            return json_error(
                StatusCode::CONFLICT,
                "Another restart is already scheduled or under way",
            )
        }
    };
    if scheduled {
        tracing::info!(
            schedule = schedule.as_deref().unwrap_or(""),
            "restart scheduled through the API"
        );
        return message(StatusCode::ACCEPTED, "Restart scheduled");
    }
    match wait_for(ops, ticket, outcome, req.wait).await {
        Settled::Done => message(StatusCode::OK, "restarted successfully"),
        Settled::Started => message(StatusCode::OK, "restart begun"),
        Settled::Refused(why) => json_error(StatusCode::SERVICE_UNAVAILABLE, why),
        Settled::Failed(why) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("restart failed: {why}"),
        ),
    }
}

/// The loop's answer on `ticket`, or after `limit` a withdrawal: a request
/// the loop has not begun is removed, so it never runs after its caller
/// heard it did not.
async fn wait_for(
    ops: &Mailbox,
    ticket: u64,
    mut outcome: tokio::sync::oneshot::Receiver<Settled>,
    limit: Duration,
) -> Settled {
    match tokio::time::timeout(limit, &mut outcome).await {
        Ok(Ok(settled)) => return settled,
        Ok(Err(_)) => return Settled::Failed("the HA loop dropped the request".into()),
        Err(_) => {}
    }
    if ops.withdraw(ticket) {
        return Settled::Refused(format!(
            "the HA loop did not get to it within {} s (it had work of its own); the request was withdrawn and will not run",
            limit.as_secs()
        ));
    }
    // Begun: it runs to its end, which is worth waiting for.
    outcome
        .await
        .unwrap_or_else(|_| Settled::Failed("the HA loop dropped the request".into()))
}

async fn cancel_restart(State(api): State<ApiState>) -> Response {
    let Some(ops) = api.ops.as_ref() else {
        return no_loop();
    };
    match ops.cancel_scheduled_restart() {
        Some(at) => {
            tracing::info!(schedule = %at, "scheduled restart deleted through the API");
            message(StatusCode::OK, "scheduled restart deleted")
        }
        None => json_error(StatusCode::NOT_FOUND, "no restarts are scheduled"),
    }
}

async fn reload(State(api): State<ApiState>) -> Response {
    let Some(ops) = api.ops.as_ref() else {
        return no_loop();
    };
    // Patroni answers at once; the loop reloads in its next round.
    let _ = ops.submit(Operation::Reload, None, None);
    message(StatusCode::ACCEPTED, "reload scheduled")
}

/// Patroni's body (`force`, `from_leader`) is accepted: pgbox always
/// clones from the leader, and never interrupts a running action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReinitBody {
    #[serde(default)]
    #[allow(dead_code)]
    force: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    from_leader: Option<bool>,
}

async fn reinitialize(State(api): State<ApiState>, body: axum::body::Bytes) -> Response {
    let Some(ops) = api.ops.as_ref() else {
        return no_loop();
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        if let Err(e) = crate::api::parse_object::<ReinitBody>(&body, r#"{"force": false}"#) {
            return json_error(StatusCode::BAD_REQUEST, e);
        }
    }
    let (ticket, outcome) = match ops.submit(Operation::Reinitialize, None, None) {
        Ok(t) => t,
        Err(Busy::ReinitializePending | Busy::RestartPending) => {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "reinitialize already in progress",
            )
        }
    };
    match wait_for(ops, ticket, outcome, BEGIN_WAIT).await {
        Settled::Started | Settled::Done => message(StatusCode::OK, "reinitialize started"),
        Settled::Refused(why) => json_error(StatusCode::SERVICE_UNAVAILABLE, why),
        Settled::Failed(why) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("reinitialize failed: {why}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_275_200_000; // 2026-12-03T05:20:00Z

    #[test]
    fn restart_bodies() {
        let r = parse_restart(b"", NOW).unwrap();
        assert_eq!(r.conditions, RestartIf::default());
        assert_eq!(r.wait, RESTART_WAIT);
        let r = parse_restart(
            br#"{"role": "replica", "restart_pending": true, "postgres_version": "16.1", "timeout": 30}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(
            r.conditions,
            RestartIf {
                pending_restart: true,
                role: Some(Role::Replica),
                below_version: Some(160001)
            }
        );
        assert_eq!(r.wait, Duration::from_secs(30));
        let code = |body: &[u8]| parse_restart(body, NOW).unwrap_err().0;
        assert_eq!(code(br#"{"role": "boss"}"#), StatusCode::BAD_REQUEST);
        assert_eq!(code(br#"{"timeout": 0}"#), StatusCode::BAD_REQUEST);
        assert_eq!(code(br#"{"timeout": "soon"}"#), StatusCode::BAD_REQUEST);
        assert_eq!(
            code(br#"{"postgres_version": "x"}"#),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(code(br#"{"when": "now"}"#), StatusCode::BAD_REQUEST);
        assert_eq!(code(b"[]"), StatusCode::BAD_REQUEST);
        assert_eq!(
            code(br#"{"role": "standby_leader"}"#),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn versions() {
        let v = |t: &str| parse_version(&json!(t));
        assert_eq!(v("15"), Some(150000));
        assert_eq!(v("15.8"), Some(150008));
        assert_eq!(v("9.6.24"), Some(90624));
        assert_eq!(v("9.6"), None);
        assert_eq!(v("15.x"), None);
        assert_eq!(parse_version(&json!(16)), Some(160000));
    }

    #[test]
    fn schedules_need_a_zone_and_a_future() {
        assert_eq!(
            parse_schedule("2026-12-03T06:00:00Z", NOW),
            Ok(NOW + 40 * 60_000)
        );
        assert_eq!(
            parse_schedule("2026-12-03T07:00:00+01:00", NOW),
            Ok(NOW + 40 * 60_000)
        );
        assert_eq!(
            parse_schedule("2026-12-03T01:00:00-05:00", NOW),
            Ok(NOW + 40 * 60_000)
        );
        assert_eq!(
            parse_schedule("2026-12-03 06:00:00+00:00", NOW),
            Ok(NOW + 40 * 60_000)
        );
        let code = |t: &str| parse_schedule(t, NOW).unwrap_err().0;
        assert_eq!(code("2026-12-03T06:00:00"), StatusCode::BAD_REQUEST);
        assert_eq!(
            code("2026-12-03T05:00:00Z"),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(code("tomorrow+01:00"), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(code("é"), StatusCode::BAD_REQUEST);
    }
}
