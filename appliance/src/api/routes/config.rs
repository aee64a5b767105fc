//! `GET /config`, `PATCH /config`, `PUT /config`: the cluster-wide
//! settings in the DCS `config` key, in Patroni's layout. What can change
//! at run time and how a change is checked is `config::dynamic`: a change
//! is checked whole, with the first-boot file's messages, before anything
//! is written, and is written only if nobody changed the key meanwhile.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::api::{auth, json_error, snapshot, ApiState};
use crate::config::dynamic;
use crate::config::Config;
use crate::dcs::model::DynamicConfig;

/// Reading is open; changing goes through `guard` (the allow-list and the
/// password) before the body is read.
pub fn routes(api: &ApiState) -> Router<ApiState> {
    let guard = axum::middleware::from_fn_with_state(api.clone(), auth::require_write_access);
    let change = patch(change).merge(put(replace)).route_layer(guard);
    Router::new().route("/config", get(show).merge(change))
}

async fn show(State(api): State<ApiState>) -> Json<Value> {
    let node = snapshot(&api.status);
    match &api.cluster_cfg {
        Some(cfg) => {
            let mut doc = dynamic::effective_doc(cfg, &node.cluster.config.doc);
            // Always there, true or false: a script reading it needs no
            // default (the stored key has none while not paused).
            doc.insert("pause".into(), json!(node.cluster.config.pause));
            Json(Value::Object(doc))
        }
        None => {
            let mut doc = api.static_config.clone();
            doc["pause"] = json!(node.cluster.config.pause);
            Json(doc)
        }
    }
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body).map_err(|e| format!("request body: {e}"))? {
        Value::Object(map) => Ok(map),
        other => Err(format!(
            "request body: expected a JSON object such as {{\"maximum_lag_on_failover\": 1048576}}, found {other}"
        )),
    }
}

/// `current` with the PATCH body applied (RFC 7386: objects merge, null
/// removes), or why the change is refused. Without pgbox.yaml (an API over
/// a bare snapshot) only `pause` can change. Public so that the fuzz
/// targets exercise exactly what the endpoint runs.
pub fn apply_patch(
    current: &DynamicConfig,
    body: &[u8],
    cfg: Option<&Config>,
) -> Result<DynamicConfig, String> {
    let patch = body_object(body)?;
    let Some(cfg) = cfg else {
        let mut next = current.clone();
        for (k, v) in &patch {
            next = match (k.as_str(), v) {
                ("pause", Value::Bool(b)) => next.with_pause(*b),
                // Patroni's PATCH semantics: null removes the setting,
                // which for pause means off (`patronictl resume` sends this).
                ("pause", Value::Null) => next.with_pause(false),
                ("pause", _) => return Err("pause must be true, false or null".into()),
                (other, _) => return Err(format!("{other} cannot be changed through this API")),
            };
        }
        return Ok(next);
    };
    // An older cluster's key may hold only `pause`: complete it from
    // pgbox.yaml, which is what it meant.
    let base = dynamic::merge_patch(&dynamic::initial_doc(cfg), &current.doc);
    let next = dynamic::merge_patch(&base, &patch);
    judge(cfg, &base, next)
}

/// `next` unless it adds a problem `before` did not have: a leftover a
/// direct etcd edit put there must not block an unrelated change (a
/// `patronictl pause`), and a change must not add one.
fn judge(
    cfg: &Config,
    before: &Map<String, Value>,
    next: Map<String, Value>,
) -> Result<DynamicConfig, String> {
    if let Some(p) = next.get("pause").filter(|p| !p.is_boolean()) {
        return Err(format!("pause must be true, false or null, not {p}"));
    }
    let old = dynamic::check(cfg, before).refusals();
    let new: Vec<String> = dynamic::check(cfg, &next)
        .refusals()
        .into_iter()
        .filter(|r| !old.contains(r))
        .collect();
    if !new.is_empty() {
        return Err(format!("refused, nothing changed: {}", new.join("; ")));
    }
    Ok(DynamicConfig::from_doc(next))
}

/// `PUT /config`: the whole document, replaced (checked as a PATCH is).
pub fn apply_replace(
    current: &DynamicConfig,
    body: &[u8],
    cfg: &Config,
) -> Result<DynamicConfig, String> {
    let doc = body_object(body)?;
    let base = dynamic::merge_patch(&dynamic::initial_doc(cfg), &current.doc);
    judge(cfg, &base, doc)
}

// Who may call these (allow-list, credentials) is checked before the body
// is read, by the write endpoints' layer (api/auth.rs).
async fn change(State(api): State<ApiState>, body: axum::body::Bytes) -> Response {
    write(api, body, false).await
}

async fn replace(State(api): State<ApiState>, body: axum::body::Bytes) -> Response {
    write(api, body, true).await
}

/// The body applied to `current`: the PATCH or PUT rules, one place.
fn judge_body(
    api: &ApiState,
    current: &DynamicConfig,
    body: &[u8],
    whole: bool,
) -> Result<DynamicConfig, String> {
    match (&api.cluster_cfg, whole) {
        (Some(cfg), true) => apply_replace(current, body, cfg),
        (None, true) => Err("PUT /config needs pgbox.yaml, which this API lacks".into()),
        (cfg, false) => apply_patch(current, body, cfg.as_deref()),
    }
}

async fn write(api: ApiState, body: axum::body::Bytes, whole: bool) -> Response {
    let Some(dcs) = api.dcs.clone() else {
        // Without a DCS only a snapshot is known: judge the body anyway, so
        // a bad one is a 400 whatever the connection.
        let current = snapshot(&api.status).cluster.config.clone();
        return match judge_body(&api, &current, &body, whole) {
            Err(message) => json_error(StatusCode::BAD_REQUEST, message),
            Ok(_) => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "this node has no DCS connection",
            ),
        };
    };
    let (current, revision) = match dcs.read_config().await {
        Ok(c) => c,
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    };
    let next = match judge_body(&api, &current, &body, whole) {
        Ok(n) => n,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
    match dcs.put_config_if(&next, revision).await {
        Ok(true) => {}
        Ok(false) => return json_error(
            StatusCode::CONFLICT,
            "the configuration changed while this change was being made; read it again and retry",
        ),
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
    let shown = Value::Object(next.doc.clone()).to_string();
    tracing::info!(
        pause = next.pause,
        config = %shown,
        "cluster-wide configuration changed through the API"
    );
    (StatusCode::OK, Json(Value::Object(next.doc))).into_response()
}
