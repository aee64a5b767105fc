//! A box whose first-boot file is unusable starts no database service. So
//! that a monitoring system or a person with curl learns why, rather than
//! meeting a refused connection, this small read-only API answers every
//! request on port 8008 with 503 and the validation error. It runs only
//! while `/run/pgbox/config-error` exists (pgbox-config-error.service), on
//! every address: with no valid file the node's own address is unknown.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The answer to every request.
pub fn body(message: &str) -> Value {
    json!({
        "state": "invalid first-boot file",
        "role": "uninitialized",
        "error": message.trim(),
        "help": "fix pgbox.yaml on the PGBOXCFG partition (check it with `pgboxctl config check`) and reboot; see docs/first-boot.md",
    })
}

pub fn router(message: &str) -> Router {
    let answer = body(message);
    Router::new().fallback(move || {
        let answer = answer.clone();
        async move { (StatusCode::SERVICE_UNAVAILABLE, Json(answer)).into_response() }
    })
}

/// Serve the error in `error_file` on `addr` until the process ends.
pub async fn serve(error_file: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let message = std::fs::read_to_string(error_file)
        .with_context(|| format!("reading {}", error_file.display()))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("pgboxd: answering on {addr} with the first-boot file's error (503)");
    axum::serve(listener, router(&message))
        .await
        .with_context(|| format!("serving on {addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn every_path_answers_503_with_the_error() {
        for path in ["/health", "/primary", "/patroni", "/anything"] {
            let resp = router("nodes[1].address: not an IP address (line 7, column 14)\n")
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v["state"], "invalid first-boot file");
            assert_eq!(
                v["error"],
                "nodes[1].address: not an IP address (line 7, column 14)"
            );
        }
    }
}
