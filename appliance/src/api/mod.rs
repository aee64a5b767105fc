//! The REST API on port 8008, with Patroni's paths, status codes and JSON
//! field names, so HAProxy checks, exporters and `patronictl` written for a
//! Patroni cluster work against pgbox unchanged.
//!
//! Every handler answers from the status snapshot the HA loop publishes: it
//! takes the read lock only long enough to clone the snapshot, so no HTTP
//! client, however slow, can delay a decision. The exception is the answer
//! routers act on, "this node is the writable leader" (`/primary` and its
//! aliases, `/leader`): it rests on a fresh check per request
//! (`crate::leader_check`), never on the snapshot.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use anyhow::Context;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;

use crate::config::{Cidr, Config};
use crate::dcs::etcd::Etcd;
use crate::status::{NodeStatus, SharedStatus};

pub(crate) mod auth;
pub mod routes;

/// What the handlers share: the status snapshot (read-only endpoints), and
/// for the write endpoints the DCS and the password that guards them.
#[derive(Clone)]
pub struct ApiState {
    pub status: SharedStatus,
    pub dcs: Option<std::sync::Arc<Etcd>>,
    pub api_password: Option<String>,
    /// Sources the write endpoints accept requests from; empty: none.
    pub write_allow: Vec<Cidr>,
    /// The settings from pgbox.yaml that `GET /config` shows.
    pub static_config: serde_json::Value,
    /// pgbox.yaml, which a change of the cluster-wide settings is checked
    /// against (pgboxd always has it; without it only `pause` changes).
    pub cluster_cfg: Option<Arc<Config>>,
    /// `POST /failsafe`, when `ha.failsafe_mode` is on.
    pub failsafe: Option<crate::failsafe::Desk>,
    /// The fresh check behind `/primary`, `/leader` and their aliases
    /// (pgboxd always has one). Without it (an API over a bare snapshot,
    /// as in unit tests) they answer from the snapshot.
    pub leader_check: Option<Arc<crate::leader_check::LeaderCheck>>,
    /// Where restart, reload and reinitialize requests go for the HA loop
    /// (pgboxd always has one; without it those endpoints refuse).
    pub ops: Option<crate::ops_mailbox::Mailbox>,
}

impl axum::extract::FromRef<ApiState> for SharedStatus {
    fn from_ref(state: &ApiState) -> SharedStatus {
        state.status.clone()
    }
}

#[cfg(test)]
mod tests;

/// A read-only API: without a DCS and a password the write endpoints refuse.
impl From<SharedStatus> for ApiState {
    fn from(status: SharedStatus) -> Self {
        ApiState {
            status,
            dcs: None,
            api_password: None,
            write_allow: Vec::new(),
            static_config: serde_json::json!({}),
            cluster_cfg: None,
            failsafe: None,
            leader_check: None,
            ops: None,
        }
    }
}

/// The read-only API answering from `status` (write endpoints refuse).
pub fn router(status: SharedStatus) -> Router {
    router_with(status.into())
}

/// Every route of the API.
pub fn router_with(state: ApiState) -> Router {
    Router::new()
        .merge(routes::health::routes())
        .merge(routes::patroni::routes())
        .merge(routes::cluster::routes())
        .merge(routes::history::routes())
        .merge(routes::operations::routes(&state))
        .merge(routes::config::routes(&state))
        .merge(routes::member_ops::routes(&state))
        .merge(routes::metrics::routes())
        .merge(routes::failsafe::routes())
        // Must come after the routes: it is attached to each one present.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

/// Serve the API over plain HTTP on `addr` until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    state: impl Into<ApiState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_tls(addr, state, None, shutdown).await
}

/// Serve the API on `addr` until `shutdown` completes: over HTTPS when
/// `tls` is given, plain HTTP otherwise. Handlers see each request's source
/// address (`ConnectInfo`), which the write endpoints' allow-list needs.
pub async fn serve_tls(
    addr: SocketAddr,
    state: impl Into<ApiState>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_router(addr, router_with(state.into()), tls, shutdown).await
}

/// Serve `router` on `addr` until `shutdown` completes, as `serve_tls` does.
pub async fn serve_router(
    addr: SocketAddr,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("REST API: cannot listen on {addr}"))?;
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let Some(tls) = tls else {
        tracing::info!("REST API listening on http://{addr}");
        return axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .with_context(|| format!("REST API on {addr} failed"));
    };
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    tracing::info!("REST API listening on https://{addr}");
    let listener = listener
        .into_std()
        .with_context(|| format!("REST API: the listener on {addr}"))?;
    axum_server::tls_rustls::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )
    .with_context(|| format!("REST API: the listener on {addr}"))?
    .handle(handle)
    .serve(app)
    .await
    .with_context(|| format!("REST API on {addr} failed"))
}

/// The settings from pgbox.yaml that `GET /config` shows: an explicit
/// list, so that nothing secret can reach the API by being added to the
/// configuration later.
pub fn static_config(cfg: &Config) -> serde_json::Value {
    json!({
        "ttl": cfg.ha.ttl.as_secs(),
        "loop_wait": cfg.ha.loop_wait.as_secs_f64(),
        "maximum_lag_on_failover": cfg.ha.maximum_lag_on_failover,
        "synchronous_mode": cfg.ha.synchronous_mode,
        "use_pg_rewind": cfg.ha.use_pg_rewind,
        "failsafe_mode": cfg.ha.failsafe_mode,
    })
}

/// Where the write endpoints accept requests from: every node of the
/// cluster (pgboxctl on any box, which reaches the API from its own node
/// address), the loopback source addresses (127.0.0.1 and ::1: what a
/// connection between loopback addresses comes from, as in a one-box
/// cluster), and the networks in `api.allow_writes_from`.
pub fn write_allow_list(cfg: &Config) -> Vec<Cidr> {
    let mut list: Vec<Cidr> = cfg.nodes.iter().map(|n| Cidr::host(n.address)).collect();
    list.push(Cidr::host(std::net::Ipv4Addr::LOCALHOST.into()));
    list.push(Cidr::host(std::net::Ipv6Addr::LOCALHOST.into()));
    list.extend(cfg.api.allow_writes_from.iter().copied());
    list
}

/// A copy of the current snapshot. A poisoned lock still holds the last
/// published state; /liveness exposes a dead loop, so serving it is better
/// than failing every health check at once.
pub(crate) fn snapshot(status: &SharedStatus) -> NodeStatus {
    status
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// A request body that must be a JSON object of type `T`; `example` shows
/// one in the error. serde would also fill a struct from an array,
/// positionally: `[]` or `["db1", "db2"]` would pass for a request nobody
/// meant to send.
pub fn parse_object<T: serde::de::DeserializeOwned>(
    body: &[u8],
    example: &str,
) -> Result<T, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("request body: {e}"))?;
    if !value.is_object() {
        let found = match value {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::Object(_) => "an object",
        };
        return Err(format!(
            "request body: expected a JSON object such as {example}, found {found}"
        ));
    }
    serde_json::from_value(value).map_err(|e| format!("request body: {e}"))
}

pub(crate) fn json_error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

async fn not_found(uri: Uri) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
    )
}

async fn method_not_allowed(uri: Uri) -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed on {}", uri.path()),
    )
}
