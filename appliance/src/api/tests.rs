use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::config::Tags;
use crate::dcs::model::{ClusterView, HistoryEntry, Member};
use crate::status::{PgRole, PgStatus};

const MB: u64 = 1 << 20;

fn member(host: &str, role: &str, state: &str, lsn: Option<u64>, streaming: bool) -> Member {
    Member {
        conn_url: format!("postgres://{host}:5432/postgres"),
        api_url: format!("http://{host}:8008/patroni"),
        state: state.into(),
        role: role.into(),
        xlog_location: lsn,
        timeline: Some(2),
        replication_state: streaming.then(|| "streaming".into()),
        ..Member::default()
    }
}

/// db1 leads at 100 MB of WAL; db2 replays at 98 MB.
fn cluster() -> ClusterView {
    ClusterView {
        leader: Some("db1".into()),
        initialize: Some("7300000000000000001".into()),
        // Out of order on purpose: /cluster must sort.
        members: vec![
            (
                "db2".into(),
                member("127.0.0.3", "replica", "running", Some(98 * MB), true),
            ),
            (
                "db1".into(),
                member("127.0.0.2", "primary", "running", Some(100 * MB), false),
            ),
        ],
        last_leader_lsn: Some(100 * MB),
        history: vec![],
        ..ClusterView::default()
    }
}

fn node(name: &str) -> NodeStatus {
    let mut node = NodeStatus::new(name, "main", Tags::default(), Duration::from_secs(30));
    node.cluster = cluster();
    node.dcs_reachable = true;
    // The replica below trails by 2 MB: ready unless a test says less.
    node.maximum_lag_on_failover = 16 * MB;
    node
}

fn primary() -> NodeStatus {
    let mut node = node("db1");
    node.state = "running".into();
    node.is_leader = true;
    node.pg = PgStatus {
        running: true,
        role: PgRole::Primary,
        timeline: Some(2),
        lsn: Some(100 * MB),
        server_version: Some(170006),
        postmaster_start_time: Some("2025-01-01 00:00:00+00".into()),
        system_identifier: Some("7300000000000000001".into()),
        ..PgStatus::default()
    };
    node.last_decision = "no action: I hold the leader lock".into();
    node
}

fn replica() -> NodeStatus {
    let mut node = node("db2");
    node.state = "running".into();
    node.pg = PgStatus {
        running: true,
        role: PgRole::Replica,
        timeline: Some(2),
        lsn: Some(98 * MB),
        receive_lsn: Some(99 * MB),
        streaming: true,
        upstream_host: Some("127.0.0.2".into()),
        server_version: Some(170006),
        ..PgStatus::default()
    };
    node
}

fn stopped() -> NodeStatus {
    let mut node = node("db2");
    node.state = "stopped".into();
    node.pg.lsn = Some(98 * MB);
    node
}

struct Reply {
    code: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

async fn call(node: &NodeStatus, method: Method, uri: &str) -> Reply {
    let app = router(Arc::new(RwLock::new(node.clone())));
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let code = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        code,
        headers,
        body,
    }
}

async fn code(node: &NodeStatus, uri: &str) -> StatusCode {
    call(node, Method::GET, uri).await.code
}

/// Asserts the code of each path, naming the path on failure.
async fn expect(node: &NodeStatus, want: &[(&str, StatusCode)]) {
    for (path, expected) in want {
        assert_eq!(code(node, path).await, *expected, "GET {path}");
    }
}

mod patroni_checks;

const OK: StatusCode = StatusCode::OK;
const DOWN: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

#[tokio::test]
async fn leader_running_as_primary() {
    expect(
        &primary(),
        &[
            ("/", OK),
            ("/primary", OK),
            ("/read-write", OK),
            ("/master", OK),
            ("/leader", OK),
            ("/replica", DOWN),
            ("/read-only", OK),
            ("/health", OK),
            ("/liveness", OK),
            ("/readiness", OK),
        ],
    )
    .await;
}

#[tokio::test]
async fn primary_without_the_leader_key_takes_no_writes() {
    let mut node = primary();
    node.is_leader = false;
    expect(
        &node,
        &[
            ("/primary", DOWN),
            ("/", DOWN),
            ("/leader", DOWN),
            ("/read-only", DOWN),
            ("/readiness", DOWN),
        ],
    )
    .await;
}

#[tokio::test]
async fn leader_key_without_a_running_primary_takes_no_writes() {
    let mut node = primary();
    node.pg.running = false;
    expect(
        &node,
        &[
            ("/primary", DOWN),
            ("/read-write", DOWN),
            ("/leader", OK),
            ("/health", DOWN),
        ],
    )
    .await;

    let mut node = primary();
    node.pg.role = PgRole::Replica;
    expect(&node, &[("/primary", DOWN), ("/master", DOWN)]).await;
}

#[tokio::test]
async fn streaming_replica() {
    expect(
        &replica(),
        &[
            ("/", DOWN),
            ("/primary", DOWN),
            ("/read-write", DOWN),
            ("/leader", DOWN),
            ("/replica", OK),
            ("/read-only", OK),
            ("/health", OK),
            ("/liveness", OK),
            ("/readiness", OK),
        ],
    )
    .await;
}

#[tokio::test]
async fn replica_not_streaming_is_not_ready() {
    let mut node = replica();
    node.pg.streaming = false;
    expect(
        &node,
        &[("/replica", OK), ("/readiness", DOWN), ("/health", OK)],
    )
    .await;
}

#[tokio::test]
async fn noloadbalance_replica_is_kept_out_of_the_read_pool() {
    let mut node = replica();
    node.tags.noloadbalance = true;
    expect(
        &node,
        &[
            ("/replica", DOWN),
            ("/read-only", DOWN),
            ("/health", OK),
            ("/readiness", OK),
        ],
    )
    .await;
}

#[tokio::test]
async fn stopped_postgres_fails_every_check_but_liveness() {
    expect(
        &stopped(),
        &[
            ("/", DOWN),
            ("/primary", DOWN),
            ("/replica", DOWN),
            ("/read-only", DOWN),
            ("/health", DOWN),
            ("/readiness", DOWN),
            ("/liveness", OK),
        ],
    )
    .await;
}

#[tokio::test]
async fn liveness_follows_the_loop_stamp() {
    let mut node = primary();
    node.last_loop = SystemTime::now() - Duration::from_secs(31);
    expect(&node, &[("/liveness", DOWN), ("/primary", OK)]).await;
    node.last_loop = SystemTime::now() - Duration::from_secs(5);
    expect(&node, &[("/liveness", OK)]).await;
    // A clock stepped backwards is not a hung loop.
    node.last_loop = SystemTime::now() + Duration::from_secs(60);
    expect(&node, &[("/liveness", OK)]).await;
}

#[tokio::test]
async fn replica_lag_query() {
    // The replica is 2 MB behind the leader.
    let node = replica();
    expect(
        &node,
        &[
            ("/replica?lag=1MB", DOWN),
            ("/replica?lag=1048576", DOWN),
            ("/replica?lag=2MB", OK),
            ("/replica?lag=16MB", OK),
            ("/replica?lag=3145728", OK),
            ("/read-only?lag=1MB", DOWN),
            ("/read-only?lag=4MB", OK),
            ("/replica?lag=lots", StatusCode::BAD_REQUEST),
        ],
    )
    .await;
    let bad = call(&node, Method::GET, "/replica?lag=lots").await;
    assert!(bad.json()["error"].as_str().unwrap().contains("lag"));

    // The lag limit never fails the primary's /read-only.
    expect(&primary(), &[("/read-only?lag=0", OK)]).await;

    // Without any known leader position lag cannot be judged.
    let mut unknown = replica();
    unknown.cluster.members.retain(|(name, _)| name != "db1");
    unknown.cluster.last_leader_lsn = None;
    expect(&unknown, &[("/replica?lag=0", OK)]).await;

    // Falls back to the status key when the leader's member key is gone.
    unknown.cluster.last_leader_lsn = Some(100 * MB);
    expect(&unknown, &[("/replica?lag=1MB", DOWN)]).await;

    // A replica that does not know its own position cannot claim to be close.
    let mut blind = replica();
    blind.pg.lsn = None;
    expect(&blind, &[("/replica?lag=16MB", DOWN), ("/replica", OK)]).await;
}

#[tokio::test]
async fn checks_answer_head_and_options() {
    let head = call(&primary(), Method::HEAD, "/primary").await;
    assert_eq!(head.code, OK);
    assert!(head.body.is_empty());
    assert_eq!(call(&primary(), Method::HEAD, "/replica").await.code, DOWN);
    assert_eq!(call(&primary(), Method::OPTIONS, "/primary").await.code, OK);
    assert_eq!(
        call(&primary(), Method::OPTIONS, "/replica").await.code,
        DOWN
    );
    assert_eq!(call(&replica(), Method::OPTIONS, "/replica").await.code, OK);
}

#[tokio::test]
async fn checks_carry_the_patroni_document() {
    for path in ["/primary", "/replica", "/health"] {
        let reply = call(&primary(), Method::GET, path).await;
        assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            reply.json(),
            call(&primary(), Method::GET, "/patroni").await.json(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn patroni_document_of_a_primary() {
    let reply = call(&primary(), Method::GET, "/patroni").await;
    assert_eq!(reply.code, OK);
    let doc = reply.json();
    assert_eq!(doc["state"], "running");
    assert_eq!(doc["role"], "primary");
    assert_eq!(doc["server_version"], 170006);
    assert_eq!(doc["xlog"], json!({ "location": 100 * MB }));
    assert_eq!(doc["timeline"], 2);
    assert_eq!(doc["cluster_unlocked"], false);
    assert_eq!(doc["database_system_identifier"], "7300000000000000001");
    assert_eq!(doc["postmaster_start_time"], "2025-01-01 00:00:00+00");
    assert_eq!(
        doc["patroni"],
        json!({ "version": env!("CARGO_PKG_VERSION"), "scope": "main", "name": "db1" })
    );
    assert_eq!(doc["last_decision"], "no action: I hold the leader lock");
    assert!(doc.get("replication_state").is_none());
    // Not known, so not reported.
    assert!(doc.get("dcs_last_seen").is_none());
}

#[tokio::test]
async fn patroni_document_of_a_replica() {
    let mut node = replica();
    node.dcs_last_seen = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    node.cluster.leader = None;
    let doc = call(&node, Method::GET, "/patroni").await.json();
    assert_eq!(doc["role"], "replica");
    assert_eq!(
        doc["xlog"],
        json!({
            "received_location": 99 * MB,
            "replayed_location": 98 * MB,
            // Patroni sends these on every replica, null when not known.
            "replayed_timestamp": null,
            "paused": null,
        })
    );
    assert_eq!(doc["replication_state"], "streaming");
    assert_eq!(doc["cluster_unlocked"], true);
    assert_eq!(doc["dcs_last_seen"], 1_700_000_000);
    assert!(doc.get("last_decision").is_none());
    assert!(doc.get("database_system_identifier").is_none());
}

#[tokio::test]
async fn patroni_document_of_a_stopped_node_reports_no_positions() {
    let doc = call(&stopped(), Method::GET, "/patroni").await.json();
    assert_eq!(doc["state"], "stopped");
    assert_eq!(doc["role"], "unknown");
    for absent in [
        "xlog",
        "timeline",
        "replication_state",
        "postmaster_start_time",
    ] {
        assert!(doc.get(absent).is_none(), "{absent} should be left out");
    }
}

#[tokio::test]
async fn cluster_document() {
    let mut node = replica();
    node.cluster.members.push((
        "db3".into(),
        Member {
            conn_url: "postgres://[fd00::4]:5433/postgres".into(),
            api_url: "http://[fd00::4]:8008/patroni".into(),
            state: "creating replica".into(),
            role: "replica".into(),
            ..Member::default()
        },
    ));
    let reply = call(&node, Method::GET, "/cluster").await;
    assert_eq!(reply.code, OK);
    let tags = json!({ "nofailover": false, "noloadbalance": false, "failover_priority": 1 });
    assert_eq!(
        reply.json(),
        json!({
            "scope": "main",
            "members": [
                {
                    "name": "db1", "role": "leader", "state": "running",
                    "api_url": "http://127.0.0.2:8008/patroni",
                    "host": "127.0.0.2", "port": 5432, "timeline": 2, "tags": tags,
                },
                {
                    "name": "db2", "role": "replica", "state": "streaming",
                    "api_url": "http://127.0.0.3:8008/patroni",
                    "host": "127.0.0.3", "port": 5432, "timeline": 2, "lag": 2 * MB, "tags": tags,
                },
                {
                    "name": "db3", "role": "replica", "state": "creating replica",
                    "api_url": "http://[fd00::4]:8008/patroni",
                    "host": "fd00::4", "port": 5433, "lag": "unknown", "tags": tags,
                },
            ],
        })
    );
}

#[tokio::test]
async fn cluster_lag_is_clamped_and_a_keyless_primary_shows_as_such() {
    // db2 took the key; db1 still runs as primary and is ahead of it.
    let mut node = primary();
    node.cluster.leader = Some("db2".into());
    assert_eq!(node.cluster.members[0].0, "db2");
    node.cluster.members[0].1.xlog_location = Some(100 * MB);
    node.cluster.members[1].1.xlog_location = Some(101 * MB);
    let doc = call(&node, Method::GET, "/cluster").await.json();
    let db1 = &doc["members"][0];
    assert_eq!(db1["name"], "db1");
    assert_eq!(db1["role"], "primary");
    assert_eq!(db1["lag"], 0);
    assert_eq!(doc["members"][1]["role"], "leader");
    assert!(doc["members"][1].get("lag").is_none());
}

#[tokio::test]
async fn history_lists_timeline_switches() {
    let mut node = replica();
    let entry = HistoryEntry(
        1,
        0x3000148,
        "no recovery target specified".into(),
        "2025-01-01T00:00:00+00:00".into(),
        "db2".into(),
    );
    node.cluster.history = vec![entry.clone()];
    let doc = call(&node, Method::GET, "/history").await.json();
    assert_eq!(
        doc,
        json!([[
            1,
            0x3000148,
            "no recovery target specified",
            "2025-01-01T00:00:00+00:00",
            "db2"
        ]])
    );

    node.history = vec![
        entry.clone(),
        HistoryEntry(
            2,
            0x5000000,
            "switchover".into(),
            "2025-01-02T00:00:00+00:00".into(),
            "db1".into(),
        ),
    ];
    assert_eq!(
        call(&node, Method::GET, "/history")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        call(&stopped(), Method::GET, "/history").await.json(),
        json!([])
    );
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods() {
    let missing = call(&primary(), Method::GET, "/nonexistent").await;
    assert_eq!(missing.code, StatusCode::NOT_FOUND);
    assert!(missing.json()["error"]
        .as_str()
        .unwrap()
        .contains("/nonexistent"));

    for (method, path) in [
        (Method::POST, "/primary"),
        (Method::DELETE, "/cluster"),
        (Method::PUT, "/patroni"),
    ] {
        let wrong = call(&primary(), method.clone(), path).await;
        assert_eq!(
            wrong.code,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(wrong.json()["error"].is_string());
        let allow = wrong.headers[header::ALLOW].to_str().unwrap();
        assert!(
            allow.contains("GET") && allow.contains("OPTIONS"),
            "Allow: {allow}"
        );
    }
}

#[tokio::test]
async fn handlers_read_the_latest_snapshot() {
    let shared: SharedStatus = Arc::new(RwLock::new(replica()));
    let app = router(shared.clone());
    let get = |uri: &str| Request::builder().uri(uri).body(Body::empty()).unwrap();
    assert_eq!(
        app.clone().oneshot(get("/primary")).await.unwrap().status(),
        DOWN
    );
    *shared.write().unwrap() = primary();
    assert_eq!(app.oneshot(get("/primary")).await.unwrap().status(), OK);
}

#[tokio::test]
async fn serve_answers_and_stops_on_shutdown() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let shared: SharedStatus = Arc::new(RwLock::new(primary()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(addr, shared, async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let mut answer = None;
    for _ in 0..50 {
        if let Ok(response) = client.get(format!("http://{addr}/primary")).send().await {
            answer = Some(response.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer, Some(200));

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let shared: SharedStatus = Arc::new(RwLock::new(primary()));
    let error = serve(addr, shared, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains(&addr.to_string()),
        "{error:#}"
    );
}

#[tokio::test]
async fn write_endpoints_refuse_without_a_configured_password() {
    use tower::ServiceExt;
    let app = router(Arc::new(RwLock::new(node("db1"))));
    for path in ["/switchover", "/failover"] {
        let req = axum::http::Request::post(path)
            .body(axum::body::Body::from("{}"))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let req = axum::http::Request::patch("/config")
        .body(axum::body::Body::from("{\"pause\":true}"))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let req = axum::http::Request::get("/config")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.oneshot(req).await.unwrap().status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------
// Write endpoints: who may call them, and what they do with bad requests.
// These run without a DCS, so a request that passed every check would end in
// 503 "no DCS connection": any other answer shows where it was refused.

const PASSWORD: &str = "Api-Pass-7Qm2vLr9KpT4";

/// A router with the write endpoints enabled, as pgboxd builds it for the
/// sample cluster: allow-list of its nodes and loopback, sync mode off (so
/// the candidate checks below are not the sync standby check), 1 MB lag limit.
fn writable(node: NodeStatus) -> (Router, SharedStatus) {
    let shared: SharedStatus = Arc::new(RwLock::new(node));
    let mut cfg = crate::config::parse(crate::config::tests::GOOD, "pgbox.yaml").unwrap();
    cfg.ha.synchronous_mode = crate::config::SyncMode::Off;
    let state = ApiState {
        status: shared.clone(),
        dcs: None,
        api_password: Some(PASSWORD.into()),
        write_allow: write_allow_list(&cfg),
        static_config: static_config(&cfg),
        cluster_cfg: None,
        failsafe: None,
        leader_check: None,
        ops: None,
    };
    (router_with(state), shared)
}

struct Call<'a> {
    method: Method,
    path: &'a str,
    body: Vec<u8>,
    from: &'a str,
    password: Option<&'a str>,
}

fn post(path: &str, body: impl Into<Vec<u8>>) -> Call<'_> {
    Call {
        method: Method::POST,
        path,
        body: body.into(),
        from: "127.0.0.1",
        password: Some(PASSWORD),
    }
}

async fn send(app: &Router, s: Call<'_>) -> Reply {
    use base64::Engine as _;
    let mut request = Request::builder()
        .method(s.method)
        .uri(s.path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(p) = s.password {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("pgbox:{p}"));
        request = request.header(header::AUTHORIZATION, format!("Basic {token}"));
    }
    let mut request = request.body(Body::from(s.body)).unwrap();
    // What `into_make_service_with_connect_info` puts there for a real socket.
    let peer: std::net::SocketAddr = (s.from.parse::<std::net::IpAddr>().unwrap(), 40000).into();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let response = app.clone().oneshot(request).await.unwrap();
    let code = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        code,
        headers,
        body,
    }
}

/// Sends `s` and asserts its code, and that the published state did not move.
async fn expect_refused(
    app: &Router,
    shared: &SharedStatus,
    s: Call<'_>,
    want: StatusCode,
) -> Reply {
    let before = format!("{:?}", shared.read().unwrap().cluster);
    let what = format!("{} {} from {}", s.method, s.path, s.from);
    let reply = send(app, s).await;
    assert_eq!(
        reply.code,
        want,
        "{what}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        format!("{:?}", shared.read().unwrap().cluster),
        before,
        "{what}"
    );
    reply
}

/// The primary, with db2 caught up to within the lag limit.
fn primary_with_a_fit_replica() -> NodeStatus {
    let mut node = primary();
    node.cluster.members[0].1.xlog_location = Some(100 * MB - 1000);
    node
}

const SWITCH_TO_DB2: &str = r#"{"leader": "db1", "candidate": "db2"}"#;

#[tokio::test]
async fn requests_while_paused_are_refused_at_once() {
    let mut node = primary_with_a_fit_replica();
    node.cluster.config.pause = true;
    let (app, shared) = writable(node);
    for (path, body, want, says) in [
        (
            "/switchover",
            SWITCH_TO_DB2,
            StatusCode::PRECONDITION_FAILED,
            "paused",
        ),
        (
            "/failover",
            r#"{"candidate": "db2"}"#,
            StatusCode::PRECONDITION_FAILED,
            "paused",
        ),
        (
            "/switchover",
            r#"{"leader": "db1"}"#,
            StatusCode::BAD_REQUEST,
            "Switchover is possible only to a specific candidate in a paused state",
        ),
        (
            "/switchover",
            r#"{"leader": "db1", "candidate": "db2", "scheduled_at": "2099-01-01T00:00:00Z"}"#,
            StatusCode::BAD_REQUEST,
            "Can't schedule switchover in the paused state",
        ),
    ] {
        let reply = expect_refused(&app, &shared, post(path, body), want).await;
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(says), "{path} {body}: {error}");
    }
}

#[tokio::test]
async fn write_endpoints_need_the_password() {
    let (app, shared) = writable(primary_with_a_fit_replica());
    for (method, path, body) in [
        (Method::POST, "/switchover", SWITCH_TO_DB2),
        (Method::POST, "/failover", r#"{"candidate": "db2"}"#),
        (Method::PATCH, "/config", r#"{"pause": true}"#),
    ] {
        let none = Call {
            method: method.clone(),
            path,
            body: body.into(),
            from: "127.0.0.1",
            password: None,
        };
        let reply = expect_refused(&app, &shared, none, StatusCode::UNAUTHORIZED).await;
        assert_eq!(
            reply.headers[header::WWW_AUTHENTICATE],
            "Basic realm=\"pgbox\""
        );
        let wrong = Call {
            method: method.clone(),
            path,
            body: body.into(),
            from: "127.0.0.1",
            password: Some("Api-Pass-7Qm2vLr9KpT5"),
        };
        let reply = expect_refused(&app, &shared, wrong, StatusCode::UNAUTHORIZED).await;
        assert!(!String::from_utf8_lossy(&reply.body).contains(PASSWORD));
    }
    // With the password the request gets as far as the (absent) DCS.
    let ok = send(&app, post("/switchover", SWITCH_TO_DB2)).await;
    assert_eq!(ok.code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        ok.json()["error"].as_str().unwrap().contains("no DCS"),
        "{:?}",
        ok.json()
    );
    // Read-only endpoints stay open to anyone.
    let open = Call {
        method: Method::GET,
        path: "/config",
        body: vec![],
        from: "192.0.2.7",
        password: None,
    };
    assert_eq!(send(&app, open).await.code, OK);
}

#[tokio::test]
async fn write_endpoints_refuse_sources_outside_the_allow_list() {
    let (app, shared) = writable(primary_with_a_fit_replica());
    // The right password does not help from outside; nodes and loopback pass.
    for from in ["192.0.2.7", "10.0.0.99", "fd00::99", "127.0.0.5"] {
        for path in ["/switchover", "/failover"] {
            let s = Call {
                from,
                ..post(path, SWITCH_TO_DB2)
            };
            let reply = expect_refused(&app, &shared, s, StatusCode::FORBIDDEN).await;
            assert!(reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("allow_writes_from"));
        }
        let s = Call {
            method: Method::PATCH,
            from,
            ..post("/config", r#"{"pause": true}"#)
        };
        expect_refused(&app, &shared, s, StatusCode::FORBIDDEN).await;
    }
    // Outsiders are refused before their credentials are looked at.
    let s = Call {
        from: "192.0.2.7",
        password: None,
        ..post("/switchover", SWITCH_TO_DB2)
    };
    expect_refused(&app, &shared, s, StatusCode::FORBIDDEN).await;
    for from in ["10.0.0.13", "127.0.0.1", "::1", "::ffff:10.0.0.12"] {
        let s = Call {
            from,
            ..post("/switchover", SWITCH_TO_DB2)
        };
        assert_eq!(send(&app, s).await.code, DOWN, "{from} is allowed");
    }
}

#[tokio::test]
async fn configured_networks_join_the_allow_list() {
    let text = format!(
        "{}api:\n  allow_writes_from: [192.0.2.0/28]\n",
        crate::config::tests::GOOD
    );
    let cfg = crate::config::parse(&text, "pgbox.yaml").unwrap();
    let allow = write_allow_list(&cfg);
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert!(allow.iter().any(|n| n.contains(ip("192.0.2.7"))));
    assert!(!allow.iter().any(|n| n.contains(ip("192.0.2.17"))));
    assert!(allow.iter().any(|n| n.contains(ip("10.0.0.11"))));
    assert!(!allow.iter().any(|n| n.contains(ip("10.0.0.14"))));
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_bad_requests() {
    let (app, shared) = writable(primary());
    for body in [
        "{",
        "not json",
        "",
        "[]",
        r#"{"leader": 5, "candidate": "db2"}"#,
        r#"{"leader": "db1", "candidate": ["db2"]}"#,
        r#"{"leader": "db1", "candidate": "db2", "extra": 1}"#,
        r#"{"leader": "db1", "candidate": "db2", "scheduled_at": "tomorrow"}"#,
        r#"{"candidate": "db2"}"#,
    ] {
        let reply = expect_refused(
            &app,
            &shared,
            post("/switchover", body),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(reply.json()["error"].is_string(), "{body}");
    }
    for body in ["{}", r#"{"candidate": null}"#, r#"{"candidate": 7}"#] {
        expect_refused(
            &app,
            &shared,
            post("/failover", body),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    for body in [r#"{"pause": "yes"}"#, r#"{"ttl": 5}"#, "[true]", "{"] {
        let s = Call {
            method: Method::PATCH,
            ..post("/config", body)
        };
        expect_refused(&app, &shared, s, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn huge_bodies_are_refused_unread() {
    let (app, shared) = writable(primary());
    let mut huge = br#"{"leader": "db1", "candidate": "db2", "scheduled_at": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 200 * 1024));
    huge.extend(br#""}"#);
    for path in ["/switchover", "/failover"] {
        expect_refused(
            &app,
            &shared,
            post(path, huge.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    }
    let s = Call {
        method: Method::PATCH,
        ..post("/config", huge.clone())
    };
    expect_refused(&app, &shared, s, StatusCode::PAYLOAD_TOO_LARGE).await;
    // Without credentials the body is not even read.
    let s = Call {
        password: None,
        ..post("/switchover", huge)
    };
    expect_refused(&app, &shared, s, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn unfit_candidates_are_refused() {
    let (app, shared) = writable(primary());
    let reply = expect_refused(
        &app,
        &shared,
        post("/switchover", r#"{"leader": "db1", "candidate": "db9"}"#),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    assert!(reply.json()["error"].as_str().unwrap().contains("db9"));
    expect_refused(
        &app,
        &shared,
        post("/failover", r#"{"candidate": "db9"}"#),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    expect_refused(
        &app,
        &shared,
        post("/switchover", r#"{"leader": "db2", "candidate": "db2"}"#),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    expect_refused(
        &app,
        &shared,
        post("/switchover", r#"{"leader": "db1", "candidate": "db1"}"#),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;

    // db2 is 2 MB behind; the limit is 1 MB.
    let reply = expect_refused(
        &app,
        &shared,
        post("/switchover", SWITCH_TO_DB2),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    assert!(
        reply.json()["error"].as_str().unwrap().contains("behind"),
        "{:?}",
        reply.json()
    );
    expect_refused(
        &app,
        &shared,
        post("/failover", r#"{"candidate": "db2"}"#),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;

    let caught_up = |edit: &dyn Fn(&mut crate::dcs::model::Member)| {
        let mut node = primary_with_a_fit_replica();
        edit(&mut node.cluster.members[0].1);
        node
    };
    // Caught up: it would go ahead (and stop at the missing DCS).
    let (app, _) = writable(caught_up(&|_| {}));
    assert_eq!(
        send(&app, post("/switchover", SWITCH_TO_DB2)).await.code,
        DOWN
    );

    for (why, edit) in [
        (
            "stopped",
            &(|m: &mut crate::dcs::model::Member| m.state = "stopped".into())
                as &dyn Fn(&mut crate::dcs::model::Member),
        ),
        ("not streaming", &|m| m.replication_state = None),
        ("nofailover", &|m| m.tags.nofailover = true),
        ("position unknown", &|m| m.xlog_location = None),
    ] {
        let (app, shared) = writable(caught_up(edit));
        let reply = expect_refused(
            &app,
            &shared,
            post("/switchover", SWITCH_TO_DB2),
            StatusCode::PRECONDITION_FAILED,
        )
        .await;
        assert!(
            reply.json()["error"].as_str().unwrap().contains("db2"),
            "{why}"
        );
    }
}

#[tokio::test]
async fn secrets_are_never_served_or_debug_printed() {
    let p = crate::tls::testing::pki(&["10.0.0.11", "10.0.0.12"]);
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    };
    let text = format!(
        "{}  api_password: \"{PASSWORD}\"\napi:\n  tls:\n    certificate: |\n{}    private_key: |\n{}    ca: |\n{}",
        crate::config::tests::GOOD,
        indent(&p.cert_pem),
        indent(&p.key_pem),
        indent(&p.ca_pem)
    );
    let cfg = crate::config::parse(&text, "pgbox.yaml").unwrap_or_else(|e| panic!("{e}"));
    let secrets = [
        cfg.secrets.superuser_password.clone(),
        cfg.secrets.replication_password.clone(),
        cfg.secrets.app_password.clone(),
        PASSWORD.to_string(),
        "PRIVATE KEY".to_string(),
    ];
    let shared: SharedStatus = Arc::new(RwLock::new(primary()));
    let app = router_with(ApiState {
        status: shared,
        dcs: None,
        api_password: cfg.secrets.api_password.clone(),
        write_allow: write_allow_list(&cfg),
        static_config: static_config(&cfg),
        cluster_cfg: None,
        failsafe: None,
        leader_check: None,
        ops: None,
    });
    let debug = format!("{cfg:?}");
    for secret in &secrets {
        assert!(
            !debug.contains(secret.as_str()),
            "Debug of the config shows a secret"
        );
    }
    for path in [
        "/config", "/patroni", "/cluster", "/metrics", "/history", "/health",
    ] {
        let s = Call {
            method: Method::GET,
            path,
            body: vec![],
            from: "10.0.0.13",
            password: None,
        };
        let reply = send(&app, s).await;
        let body = String::from_utf8_lossy(&reply.body);
        for secret in &secrets {
            assert!(!body.contains(secret.as_str()), "{path} shows a secret");
        }
    }
}

// ---------------------------------------------------------------------------
// POST /failsafe: a primary without the DCS asks for a promise.

fn failsafe_api(node: NodeStatus) -> (Router, crate::failsafe::Promises) {
    let cfg = crate::config::parse(crate::config::tests::GOOD, "pgbox.yaml").unwrap();
    let me = node.name.clone();
    let promises = crate::failsafe::Promises::new();
    let state = ApiState {
        failsafe: Some(crate::failsafe::Desk::new(&cfg, &me, promises.clone())),
        ..ApiState::from(Arc::new(RwLock::new(node)) as SharedStatus)
    };
    (router_with(state), promises)
}

fn failsafe_call<'a>(body: &'a str, from: &'a str) -> Call<'a> {
    Call {
        password: None,
        from,
        ..post("/failsafe", body)
    }
}

#[tokio::test]
async fn failsafe_promises_only_to_the_leader_itself_and_only_as_a_replica() {
    // db2 (a replica) of the sample cluster; db1 is at 10.0.0.11.
    let mut me = replica();
    me.name = "db2".into();
    let (app, promises) = failsafe_api(me);
    let before = promises.last();

    let r = send(&app, failsafe_call(r#"{"leader": "db1"}"#, "10.0.0.11")).await;
    assert_eq!(
        r.code,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let given = promises.last();
    assert_eq!(given.to.as_deref(), Some("db1"));
    assert!(given.at >= before.at);

    // Anyone else speaking for db1, a name that is no PostgreSQL member,
    // or a broken body: refused, and the promise stays as it was.
    for (body, from, want) in [
        (r#"{"leader": "db1"}"#, "10.0.0.13", StatusCode::FORBIDDEN),
        (r#"{"leader": "db1"}"#, "127.0.0.1", StatusCode::FORBIDDEN),
        (r#"{"leader": "coord"}"#, "10.0.0.13", StatusCode::FORBIDDEN),
        (r#"{"leader": "db2"}"#, "10.0.0.12", StatusCode::FORBIDDEN),
        (r#"{"leader": 7}"#, "10.0.0.11", StatusCode::BAD_REQUEST),
        (r#"["db1"]"#, "10.0.0.11", StatusCode::BAD_REQUEST),
    ] {
        let r = send(&app, failsafe_call(body, from)).await;
        assert_eq!(
            r.code,
            want,
            "{body} from {from}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert_eq!(promises.last(), given);

    // A member that runs as primary cannot vouch for another.
    let mut me = primary();
    me.name = "db2".into();
    let (app, promises) = failsafe_api(me);
    let before = promises.last();
    let r = send(&app, failsafe_call(r#"{"leader": "db1"}"#, "10.0.0.11")).await;
    assert_eq!(r.code, StatusCode::CONFLICT);
    assert_eq!(promises.last(), before);

    // With failsafe mode off, the endpoint says so.
    let (app, _) = writable(replica());
    let r = send(&app, failsafe_call(r#"{"leader": "db1"}"#, "10.0.0.11")).await;
    assert_eq!(r.code, StatusCode::CONFLICT);
    assert!(String::from_utf8_lossy(&r.body).contains("failsafe mode is off"));
}

/// `patronictl pause` and `resume`: PATCH `{"pause": true}`, then
/// `{"pause": null}` (Patroni's "remove this setting"); while paused,
/// `/patroni` and `/cluster` say so with Patroni's field.
#[test]
fn pause_and_resume_as_patronictl_sends_them_and_pause_is_visible() {
    use crate::api::routes::{cluster, config, patroni};
    let off = crate::dcs::model::DynamicConfig::default();
    let on = config::apply_patch(&off, br#"{"pause": true}"#, None).expect("pause");
    assert!(on.pause);
    let resumed = config::apply_patch(&on, br#"{"pause": null}"#, None).expect("resume");
    assert!(!resumed.pause);
    let why = config::apply_patch(&on, br#"{"pause": "yes"}"#, None).unwrap_err();
    assert!(why.contains("pause must be true, false or null"), "{why}");

    let mut node = primary();
    assert!(patroni::body(&node).get("pause").is_none());
    assert!(cluster::body(&node).get("pause").is_none());
    node.cluster.config.pause = true;
    assert_eq!(patroni::body(&node)["pause"], true);
    assert_eq!(cluster::body(&node)["pause"], true);
}
