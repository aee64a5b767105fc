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
use crate::dcs::model::DynamicConfig;

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

/// `current` with the PATCH body applied, or why the body is refused.
/// Public so that the fuzz targets exercise exactly what the endpoint runs.
pub fn apply_patch(current: &DynamicConfig, body: &[u8]) -> Result<DynamicConfig, String> {
    let patch: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| format!("request body: {e}"))?;
    let mut cfg = current.clone();
    for (k, v) in &patch {
        match (k.as_str(), v) {
            ("pause", Value::Bool(b)) => cfg.pause = *b,
            // Patroni's PATCH semantics: null removes the setting, which for
            // pause means off (`patronictl resume` sends exactly this).
            ("pause", Value::Null) => cfg.pause = false,
            ("pause", _) => return Err("pause must be true, false or null".into()),
            (other, _) => {
                return Err(format!(
                "{other} cannot be changed at run time: it comes from pgbox.yaml (only pause can)"
            ))
            }
        }
    }
    Ok(cfg)
}

// Who may call this (allow-list, credentials) is checked before the body is
// read, by the write endpoints' layer (api/auth.rs).
async fn change(State(api): State<ApiState>, body: axum::body::Bytes) -> Response {
    let current = snapshot(&api.status).cluster.config.clone();
    let cfg = match apply_patch(&current, &body) {
        Ok(cfg) => cfg,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
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
