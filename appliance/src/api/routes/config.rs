//! `GET /config` and `PATCH /config`: the settings that change at run time.
//! Only maintenance mode (`pause`) does; everything else comes from
//! pgbox.yaml and is shown here read-only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::api::{auth, json_error, snapshot, ApiState};

/// Reading is open; changing goes through `guard` (the allow-list and the
/// password) before the body is read.
pub fn routes(api: &ApiState) -> Router<ApiState> {
    let guard = axum::middleware::from_fn_with_state(api.clone(), auth::require_write_access);
    Router::new().route("/config", get(show).merge(patch(change).route_layer(guard)))
}

async fn show(State(api): State<ApiState>) -> Json<Value> {
    let node = snapshot(&api.status);
    let mut doc = api.static_config.clone();
    doc["pause"] = json!(node.cluster.config.pause);
    Json(doc)
}

async fn change(State(api): State<ApiState>, body: axum::body::Bytes) -> Response {
    let patch: serde_json::Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    let mut cfg = snapshot(&api.status).cluster.config.clone();
    for (k, v) in &patch {
        match (k.as_str(), v) {
            ("pause", Value::Bool(b)) => cfg.pause = *b,
            ("pause", _) => return json_error(StatusCode::BAD_REQUEST, "pause must be true or false"),
            (other, _) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!("{other} cannot be changed at run time: it comes from pgbox.yaml (only pause can)"),
                )
            }
        }
    }
    let Some(dcs) = api.dcs.clone() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node has no DCS connection",
        );
    };
    if let Err(e) = dcs.put_config(&cfg).await {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}"));
    }
    tracing::info!(
        pause = cfg.pause,
        "dynamic configuration changed through the API"
    );
    (
        StatusCode::OK,
        Json(serde_json::to_value(&cfg).unwrap_or_default()),
    )
        .into_response()
}
