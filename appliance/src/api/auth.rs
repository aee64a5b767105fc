//! Who may use the write endpoints (switchover, failover, PATCH /config).
//!
//! Two gates, in this order: the request's source address must be in the
//! allow-list (403 otherwise, before any credential is looked at, so an
//! outsider cannot even guess passwords), then HTTP basic authentication
//! with `secrets.api_password`, any user name (401 without or wrong).
//! Without a configured password the write endpoints refuse everything: an
//! appliance must not ship open write endpoints.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;

use crate::api::{json_error, ApiState};
use crate::config::Cidr;

/// Middleware on the write routes: runs before the body is read.
pub async fn require_write_access(
    State(api): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if !source_allowed(peer, &api.write_allow) {
        return refuse_source(peer);
    }
    if let Err(resp) = check(request.headers(), api.api_password.as_deref()) {
        return resp;
    }
    next.run(request).await
}

/// Whether the source address is in `allow`. A request whose source is not
/// known (not from a socket) is not.
pub fn source_allowed(peer: Option<IpAddr>, allow: &[Cidr]) -> bool {
    peer.is_some_and(|ip| allow.iter().any(|net| net.contains(ip)))
}

fn refuse_source(peer: Option<IpAddr>) -> Response {
    match peer {
        Some(ip) => {
            tracing::warn!(source = %ip, "write request refused: source not in the API allow-list");
            json_error(
                StatusCode::FORBIDDEN,
                format!("{} may not use write endpoints: only the cluster's nodes, this box and api.allow_writes_from may", ip.to_canonical()),
            )
        }
        None => json_error(
            StatusCode::FORBIDDEN,
            "the request's source address is unknown",
        ),
    }
}

// The error is the finished HTTP answer, axum's own type: boxing it would
// only add an allocation to a path that ends the request anyway.
#[allow(clippy::result_large_err)]
pub fn check(headers: &HeaderMap, password: Option<&str>) -> Result<(), Response> {
    let Some(expected) = password else {
        return Err(json_error(
            StatusCode::FORBIDDEN,
            "write endpoints are disabled: set secrets.api_password in pgbox.yaml to enable them",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.split_once(':').map(|(_, p)| p.to_string()));
    match given {
        Some(p) if constant_time_eq(p.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(json_error(StatusCode::UNAUTHORIZED, "wrong password")),
        None => {
            let mut resp = json_error(
                StatusCode::UNAUTHORIZED,
                "authentication required (HTTP basic)",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"pgbox\"".parse().unwrap(),
            );
            Err(resp)
        }
    }
}

/// Compare without an early exit, so response time says nothing about how
/// much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= (a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        );
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn authentication_rules() {
        assert_eq!(
            check(&HeaderMap::new(), None).unwrap_err().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            check(&HeaderMap::new(), Some("s3cret-api-pass"))
                .unwrap_err()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            check(&basic("x:wrong"), Some("s3cret-api-pass"))
                .unwrap_err()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert!(check(&basic("pgbox:s3cret-api-pass"), Some("s3cret-api-pass")).is_ok());
        assert!(!constant_time_eq(b"abc", b"abcd"));
        let allow: Vec<Cidr> = vec!["10.0.0.0/24".parse().unwrap()];
        assert!(source_allowed(Some("10.0.0.9".parse().unwrap()), &allow));
        assert!(source_allowed(
            Some("::ffff:10.0.0.9".parse().unwrap()),
            &allow
        ));
        assert!(!source_allowed(Some("10.0.1.9".parse().unwrap()), &allow));
        assert!(!source_allowed(None, &allow));
        assert_eq!(refuse_source(None).status(), StatusCode::FORBIDDEN);
    }
}
