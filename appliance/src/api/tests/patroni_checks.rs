//! The health checks and `/patroni` fields that Patroni's HAProxy
//! templates and exporters use beyond `/primary` and `/replica`: the
//! synchronous standby's endpoints, tag and state filters, `/readiness`
//! lag, `GET /failsafe`.

use super::*;
use crate::config::SyncMode;
use crate::dcs::model::SyncKey;
use crate::status::{PendingRestart, ReplicationRow};

fn sync_key(standby: &str) -> Option<SyncKey> {
    Some(SyncKey {
        leader: Some("db1".into()),
        sync_standby: Some(standby.into()),
    })
}

/// db2, the synchronous standby the `sync` key names.
fn sync_replica() -> NodeStatus {
    let mut node = replica();
    node.synchronous_mode = SyncMode::On;
    node.cluster.sync = sync_key("db2");
    node
}

#[tokio::test]
async fn the_synchronous_standby_and_the_others() {
    let sync = sync_replica();
    expect(
        &sync,
        &[
            ("/sync", OK),
            ("/synchronous", OK),
            ("/read-only-sync", OK),
            ("/read-only-synchronous", OK),
            ("/async", DOWN),
            ("/asynchronous", DOWN),
            ("/quorum", DOWN),
            ("/read-only-quorum", DOWN),
            ("/standby-leader", DOWN),
            ("/replica", OK),
        ],
    )
    .await;
    assert_eq!(
        call(&sync, Method::GET, "/patroni").await.json()["sync_standby"],
        json!(true)
    );

    // The key names someone else (a list, as Patroni may write it).
    let mut other = sync_replica();
    other.cluster.sync = sync_key("db3,db4");
    expect(
        &other,
        &[
            ("/sync", DOWN),
            ("/read-only-sync", DOWN),
            ("/async", OK),
            ("/asynchronous", OK),
        ],
    )
    .await;
    assert!(call(&other, Method::GET, "/patroni")
        .await
        .json()
        .get("sync_standby")
        .is_none());
    let mut listed = sync_replica();
    listed.cluster.sync = sync_key("db3, db2");
    expect(&listed, &[("/sync", OK)]).await;

    // A stale key in asynchronous mode makes nobody synchronous.
    let mut off = sync_replica();
    off.synchronous_mode = SyncMode::Off;
    expect(&off, &[("/sync", DOWN), ("/async", OK)]).await;

    // The sync key is the DCS's: without the DCS neither can be judged.
    let mut cut_off = sync_replica();
    cut_off.dcs_reachable = false;
    expect(
        &cut_off,
        &[("/sync", DOWN), ("/async", DOWN), ("/replica", OK)],
    )
    .await;

    // A synchronous standby that /replica refuses is refused here too.
    let mut hidden = sync_replica();
    hidden.tags.noloadbalance = true;
    expect(&hidden, &[("/sync", DOWN), ("/read-only-sync", DOWN)]).await;

    // The primary serves every read, synchronous or not, but is no standby.
    let mut leader = primary();
    leader.synchronous_mode = SyncMode::On;
    leader.cluster.sync = sync_key("db2");
    expect(
        &leader,
        &[
            ("/read-only-sync", OK),
            ("/read-only-quorum", OK),
            ("/sync", DOWN),
            ("/async", DOWN),
            ("/quorum", DOWN),
            ("/standby-leader", DOWN),
            ("/standby_leader", DOWN),
        ],
    )
    .await;
}

#[tokio::test]
async fn tag_filters_apply_to_every_check_but_the_leaders() {
    let mut node = replica();
    node.tags.failover_priority = 3;
    expect(
        &node,
        &[
            ("/replica?tag_nofailover=false", OK),
            ("/replica?tag_nofailover=true", DOWN),
            ("/replica?tag_failover_priority=3", OK),
            (
                "/replica?tag_failover_priority=3&tag_noloadbalance=false",
                OK,
            ),
            ("/replica?tag_failover_priority=1", DOWN),
            ("/replica?tag_datacenter=east", DOWN),
            ("/read-only?tag_nofailover=true", DOWN),
            ("/health?tag_nofailover=true", DOWN),
            // Orchestrator probes ignore tags, as in Patroni.
            ("/liveness?tag_nofailover=true", OK),
            ("/readiness?tag_nofailover=true", OK),
            // Parameters that are neither checks nor tags are ignored.
            ("/replica?nocache=12345", OK),
        ],
    )
    .await;
    // There is one leader: tags never hide it.
    expect(
        &primary(),
        &[
            ("/primary?tag_nofailover=true", OK),
            ("/leader?tag_x=y", OK),
        ],
    )
    .await;
}

#[tokio::test]
async fn replication_state_filter() {
    let node = replica();
    expect(
        &node,
        &[
            ("/replica?replication_state=streaming", OK),
            ("/replica?replication_state=in%20archive%20recovery", DOWN),
        ],
    )
    .await;
    let mut stalled = replica();
    stalled.pg.streaming = false;
    expect(
        &stalled,
        &[
            ("/replica", OK),
            ("/replica?replication_state=streaming", DOWN),
        ],
    )
    .await;
}

#[tokio::test]
async fn readiness_judges_lag_like_patroni() {
    // Replayed 98 MB, received 99 MB, the leader at 100 MB.
    let mut node = replica();
    node.pg.replay_lsn = Some(98 * MB);
    node.maximum_lag_on_failover = MB;
    expect(
        &node,
        &[
            // By default the limit is ha.maximum_lag_on_failover.
            ("/readiness", DOWN),
            ("/readiness?lag=2MB", OK),
            ("/readiness?lag=1MB", DOWN),
            // ?mode=write measures what was received.
            ("/readiness?lag=1MB&mode=write", OK),
            ("/readiness?lag=1MB&mode=apply", DOWN),
            ("/readiness?mode=sideways", StatusCode::BAD_REQUEST),
        ],
    )
    .await;
    let bad = call(&node, Method::GET, "/readiness?mode=sideways").await;
    assert!(
        bad.json()["error"].as_str().unwrap().contains("mode"),
        "{}",
        bad.json()
    );
    // The leader is ready whatever the query says.
    expect(&primary(), &[("/readiness?lag=0", OK)]).await;
}

#[tokio::test]
async fn failsafe_topology() {
    let (app, _) = failsafe_api(replica());
    let request = Request::builder()
        .uri("/failsafe")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let topology: Value = serde_json::from_slice(&body).unwrap();
    let map = topology.as_object().expect("a JSON object");
    assert!(!map.is_empty());
    for (name, url) in map {
        assert!(
            name.starts_with("db"),
            "only PostgreSQL members: {topology}"
        );
        assert!(url.as_str().unwrap().ends_with("/patroni"), "{topology}");
    }
    // Failsafe mode off: Patroni's 502.
    assert_eq!(code(&replica(), "/failsafe").await, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn patroni_fields_for_replication_and_restarts() {
    let mut node = replica();
    node.pg.replayed_timestamp = Some("2026-12-03 05:00:00.123456+00".into());
    node.pg.replay_paused = Some(false);
    node.pg.replay_lsn = Some(97 * MB);
    node.pg.pending_restart = vec![PendingRestart {
        name: "max_connections".into(),
        old_value: Some("100".into()),
        new_value: Some("200".into()),
    }];
    let doc = call(&node, Method::GET, "/patroni").await.json();
    assert_eq!(
        doc["xlog"]["replayed_timestamp"],
        json!("2026-12-03 05:00:00.123456+00")
    );
    assert_eq!(doc["xlog"]["paused"], json!(false));
    assert_eq!(doc["xlog"]["replayed_location"], json!(97 * MB));
    assert_eq!(doc["xlog"]["received_location"], json!(99 * MB));
    assert_eq!(doc["pending_restart"], json!(true));
    assert_eq!(
        doc["pending_restart_reason"],
        json!({"max_connections": {"old_value": "100", "new_value": "200"}})
    );

    let mut leader = primary();
    leader.pg.replication = vec![ReplicationRow {
        usename: Some("replicator".into()),
        application_name: Some("db2".into()),
        client_addr: Some("127.0.0.3".into()),
        state: Some("streaming".into()),
        sync_state: Some("sync".into()),
        sync_priority: Some(1),
    }];
    let doc = call(&leader, Method::GET, "/patroni").await.json();
    assert_eq!(
        doc["replication"],
        json!([{
            "usename": "replicator",
            "application_name": "db2",
            "client_addr": "127.0.0.3",
            "state": "streaming",
            "sync_state": "sync",
            "sync_priority": 1,
        }])
    );
    assert!(doc.get("pending_restart").is_none(), "{doc}");
}
