//! The whole REST API: any method, path, query, headers and body, sent to
//! the router of a node with no DCS connection. Every request must be
//! answered quickly, never with an internal error, and no write may
//! succeed: without a DCS there is nowhere to write to, and a request
//! without the password must not get past authentication anyway.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use libfuzzer_sys::fuzz_target;
use pgbox::api::{router_with, ApiState};
use pgbox::config::{Cidr, Tags};
use pgbox::dcs::model::{ClusterView, Member, SyncKey};
use pgbox::status::{NodeStatus, PgRole, PgStatus};
use tower::ServiceExt;

const PASSWORD: &str = "Api-Pass-4f9Xq2";

const PATHS: &[&str] = &[
    "/",
    "/primary",
    "/read-write",
    "/master",
    "/leader",
    "/replica",
    "/read-only",
    "/health",
    "/liveness",
    "/readiness",
    "/cluster",
    "/history",
    "/config",
    "/switchover",
    "/failover",
    "/restart",
    "/reinitialize",
    "/metrics",
    "/patroni",
    "/sync",
    "/async",
    "/standby-leader",
];

#[derive(Debug, Arbitrary)]
enum Verb {
    Get,
    Head,
    Options,
    Post,
    Patch,
    Put,
    Delete,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Auth {
    Nothing,
    Right,
    Wrong(String),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    replica: bool,
    /// The request comes from outside the write allow-list.
    stranger: bool,
    verb: Verb,
    path: u8,
    suffix: Option<String>,
    query: Option<String>,
    auth: Auth,
    json: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn member(host: &str, role: &str, lsn: u64, streaming: bool) -> Member {
    Member {
        conn_url: format!("postgres://{host}:5432/postgres"),
        api_url: format!("http://{host}:8008/patroni"),
        state: "running".into(),
        role: role.into(),
        xlog_location: Some(lsn),
        timeline: Some(2),
        replication_state: streaming.then(|| "streaming".into()),
        ..Member::default()
    }
}

/// db1 leads; db2 streams from it and is the synchronous standby.
fn node(name: &str, role: PgRole) -> NodeStatus {
    let mut node = NodeStatus::new(name, "main", Tags::default(), Duration::from_secs(30));
    node.state = "running".into();
    node.dcs_reachable = true;
    node.is_leader = role == PgRole::Primary;
    node.cluster = ClusterView {
        leader: Some("db1".into()),
        members: vec![
            (
                "db1".into(),
                member("127.0.0.2", "primary", 100 << 20, false),
            ),
            ("db2".into(), member("127.0.0.3", "replica", 98 << 20, true)),
        ],
        last_leader_lsn: Some(100 << 20),
        sync: Some(SyncKey {
            leader: Some("db1".into()),
            sync_standby: Some("db2".into()),
        }),
        ..ClusterView::default()
    };
    node.pg = PgStatus {
        running: true,
        role,
        timeline: Some(2),
        lsn: Some(if role == PgRole::Primary {
            100 << 20
        } else {
            98 << 20
        }),
        streaming: role == PgRole::Replica,
        ..PgStatus::default()
    };
    node
}

fn routers() -> &'static [Router; 2] {
    static ROUTERS: OnceLock<[Router; 2]> = OnceLock::new();
    ROUTERS.get_or_init(|| {
        let api = |status: NodeStatus| {
            // Failsafe mode on, with members away from loopback: a request
            // from here may never get a promise.
            let failsafe = pgbox::failsafe::Desk {
                promises: pgbox::failsafe::Promises::new(),
                me: status.name.clone(),
                members: vec![
                    ("db1".into(), IpAddr::from([10, 0, 0, 11])),
                    ("db2".into(), IpAddr::from([10, 0, 0, 12])),
                ],
                topology: Default::default(),
            };
            router_with(ApiState {
                status: Arc::new(RwLock::new(status)),
                dcs: None,
                api_password: Some(PASSWORD.into()),
                write_allow: vec![Cidr::host(IpAddr::from([127, 0, 0, 1]))],
                static_config: serde_json::json!({ "ttl": 30, "synchronous_mode": "on" }),
                cluster_cfg: None,
                failsafe: Some(failsafe),
                leader_check: None,
                ops: None,
            })
        };
        [
            api(node("db1", PgRole::Primary)),
            api(node("db2", PgRole::Replica)),
        ]
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
    })
}

fn basic(credentials: &str) -> String {
    // HTTP basic is base64 of "user:password"; a small encoder keeps the
    // target's dependencies to what pgbox uses.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::from("Basic ");
    for chunk in credentials.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn request(input: &Input) -> Option<Request<Body>> {
    let method = match &input.verb {
        Verb::Get => Method::GET,
        Verb::Head => Method::HEAD,
        Verb::Options => Method::OPTIONS,
        Verb::Post => Method::POST,
        Verb::Patch => Method::PATCH,
        Verb::Put => Method::PUT,
        Verb::Delete => Method::DELETE,
        Verb::Other(name) => Method::from_bytes(name.as_bytes()).ok()?,
    };
    let mut uri = PATHS[input.path as usize % PATHS.len()].to_string();
    if let Some(suffix) = &input.suffix {
        uri.push_str(suffix);
    }
    if let Some(query) = &input.query {
        uri.push('?');
        uri.push_str(query);
    }
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in &input.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        builder = builder.header(name, value);
    }
    let auth = match &input.auth {
        Auth::Nothing => None,
        Auth::Right => Some(basic(&format!("pgbox:{PASSWORD}"))),
        Auth::Wrong(password) => Some(basic(&format!("pgbox:{password}"))),
        Auth::Raw(text) => Some(text.clone()),
    };
    if let Some(auth) = auth.and_then(|a| HeaderValue::from_str(&a).ok()) {
        builder = builder.header(header::AUTHORIZATION, auth);
    }
    if input.json {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    let mut req = builder.body(Body::from(input.body.clone())).ok()?;
    // The source address, as the server's socket would give it.
    let from = if input.stranger { [192, 0, 2, 7] } else { [127, 0, 0, 1] };
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((from, 40000))));
    Some(req)
}

fuzz_target!(|input: Input| {
    let Some(req) = request(&input) else {
        return;
    };
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let described = format!("{} {}", req.method(), req.uri());
    let router = routers()[usize::from(input.replica)].clone();
    let (status, content_type, body) = runtime().block_on(async move {
        let response = tokio::time::timeout(Duration::from_secs(5), router.oneshot(req))
            .await
            .unwrap_or_else(|_| panic!("{described}: no answer within 5 s"))
            .expect("the router is infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a response body under 1 MiB");
        (status, content_type, body)
    });
    assert!(
        !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
        "{status} for {input:?}"
    );
    assert!(
        !(write && status.is_success()),
        "a write succeeded: {status} for {input:?}"
    );
    if content_type.starts_with("application/json") && !body.is_empty() {
        assert!(
            serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
            "a JSON response that does not parse: {input:?}"
        );
    }
});
