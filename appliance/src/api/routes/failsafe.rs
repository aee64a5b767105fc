//! `POST /failsafe`: a primary without the DCS asks this member to promise
//! not to take over (failsafe mode; see `crate::failsafe`). `GET
//! /failsafe` shows who takes part: each PostgreSQL member and the URL of
//! its `/patroni`, as Patroni does (502 when failsafe mode is off).
//!
//! Not behind the write endpoints' password: members call it on each other
//! every loop while the DCS is gone, and it can only make a member more
//! careful. It is accepted only from the named leader's own address.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::api::{json_error, snapshot, ApiState};
use crate::failsafe::Request;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/failsafe", post(handler).get(topology))
}

async fn topology(State(api): State<ApiState>) -> Response {
    match &api.failsafe {
        Some(desk) => (StatusCode::OK, Json(json!(desk.topology))).into_response(),
        None => json_error(
            StatusCode::BAD_GATEWAY,
            "failsafe mode is off in this cluster (ha.failsafe_mode)",
        ),
    }
}

async fn handler(State(api): State<ApiState>, request: axum::extract::Request) -> Response {
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let Ok(body) = axum::body::to_bytes(request.into_body(), 64 * 1024).await else {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, "request body over 64 KiB");
    };
    let Some(desk) = &api.failsafe else {
        return json_error(
            StatusCode::CONFLICT,
            "failsafe mode is off on this member (ha.failsafe_mode)",
        );
    };
    let req: Request = match crate::api::parse_object(&body, r#"{"leader": "db1"}"#) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e),
    };
    if let Err(why) = desk.may_speak_for(&req.leader, source) {
        return json_error(StatusCode::FORBIDDEN, why);
    }
    let me = snapshot(&api.status);
    if let Some(why) = crate::ha::vouch_refusal(me.is_leader, me.pg.running, me.pg.role) {
        return json_error(
            StatusCode::CONFLICT,
            format!("{} {why}: it cannot vouch for {}", desk.me, req.leader),
        );
    }
    desk.promises.give(&req.leader);
    tracing::info!(leader = %req.leader, "failsafe: promised not to take over for ha.ttl");
    (
        StatusCode::OK,
        Json(json!({ "accepted": true, "member": desk.me })),
    )
        .into_response()
}
