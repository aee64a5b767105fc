//! `GET /metrics`: Prometheus text exposition of this node's state.

use std::fmt::Write as _;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::api::{snapshot, ApiState};
use crate::status::{NodeStatus, PgRole, SharedStatus};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/metrics", get(handler))
}

async fn handler(State(status): State<SharedStatus>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&snapshot(&status)),
    )
}

/// One gauge or counter: HELP, TYPE, then its samples.
fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(node: &NodeStatus) -> String {
    let mut out = String::new();
    let pg = &node.pg;
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    let scope = format!(
        "scope=\"{}\",name=\"{}\"",
        escape(&node.scope),
        escape(&node.name)
    );
    let l = |extra: &str| {
        if extra.is_empty() {
            format!("{{{scope}}}")
        } else {
            format!("{{{scope},{extra}}}")
        }
    };

    let roles = [
        ("primary", PgRole::Primary),
        ("replica", PgRole::Replica),
        ("unknown", PgRole::Unknown),
    ];
    let role_samples: Vec<(String, f64)> = roles
        .iter()
        .map(|(word, r)| {
            (
                l(&format!("role=\"{word}\"")),
                b(pg.role == *r && pg.running),
            )
        })
        .collect();
    metric(
        &mut out,
        "pgbox_role",
        "gauge",
        "1 for the role PostgreSQL runs in on this node.",
        &role_samples,
    );
    metric(
        &mut out,
        "pgbox_leader",
        "gauge",
        "1 if this node holds the leader key.",
        &[(l(""), b(node.is_leader))],
    );
    metric(
        &mut out,
        "pgbox_postgres_running",
        "gauge",
        "1 if PostgreSQL answers queries.",
        &[(l(""), b(pg.running))],
    );
    metric(
        &mut out,
        "pgbox_dcs_reachable",
        "gauge",
        "1 if the last DCS read succeeded.",
        &[(l(""), b(node.dcs_reachable))],
    );
    if let Some(tl) = pg.timeline {
        metric(
            &mut out,
            "pgbox_timeline",
            "gauge",
            "PostgreSQL timeline.",
            &[(l(""), tl as f64)],
        );
    }
    if let Some(lsn) = pg.lsn {
        metric(
            &mut out,
            "pgbox_wal_position_bytes",
            "gauge",
            "Write position (primary) or received/replayed position (replica).",
            &[(l(""), lsn as f64)],
        );
        if pg.role == PgRole::Replica {
            if let Some(leader_lsn) = crate::api::routes::cluster::leader_position(&node.cluster) {
                let lag = leader_lsn.saturating_sub(lsn);
                metric(
                    &mut out,
                    "pgbox_replication_lag_bytes",
                    "gauge",
                    "Bytes behind the leader's last known position.",
                    &[(l(""), lag as f64)],
                );
            }
        }
    }
    if let Some(rem) = node.lease_remaining {
        metric(
            &mut out,
            "pgbox_lease_remaining_seconds",
            "gauge",
            "How long the leader lease is still proven valid.",
            &[(l(""), rem.as_secs_f64())],
        );
    }
    let decisions: Vec<(String, f64)> = node
        .decisions
        .iter()
        .map(|(k, v)| (l(&format!("action=\"{}\"", escape(k))), *v as f64))
        .collect();
    metric(
        &mut out,
        "pgbox_decisions_total",
        "counter",
        "HA decisions taken, by their first action.",
        &decisions,
    );
    metric(
        &mut out,
        "pgbox_promotions_total",
        "counter",
        "Promotions carried out by this node.",
        &[(l(""), node.promotions as f64)],
    );
    metric(
        &mut out,
        "pgbox_watchdog_armed",
        "gauge",
        "1 while the hardware watchdog is armed.",
        &[(l(""), b(node.watchdog.starts_with("armed")))],
    );
    metric(
        &mut out,
        "pgbox_loop_duration_seconds",
        "gauge",
        "Duration of the last HA loop.",
        &[(l(""), node.loop_duration.as_secs_f64())],
    );
    let age = SystemTime::now()
        .duration_since(node.last_loop)
        .unwrap_or_default();
    metric(
        &mut out,
        "pgbox_loop_age_seconds",
        "gauge",
        "Time since the last HA loop completed.",
        &[(l(""), age.as_secs_f64())],
    );
    let _ = writeln!(
        out,
        "# last decision: {}",
        node.last_decision.replace('\n', " ")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tags;
    use crate::status::PgStatus;

    #[test]
    fn renders_prometheus_text_for_a_leader() {
        let mut node = NodeStatus::new(
            "db1",
            "main",
            Tags::default(),
            std::time::Duration::from_secs(30),
        );
        node.is_leader = true;
        node.pg = PgStatus {
            running: true,
            role: PgRole::Primary,
            timeline: Some(3),
            lsn: Some(4096),
            ..PgStatus::default()
        };
        node.decisions.insert("Promote".into(), 1);
        node.promotions = 1;
        let text = render(&node);
        for line in [
            "pgbox_leader{scope=\"main\",name=\"db1\"} 1",
            "pgbox_role{scope=\"main\",name=\"db1\",role=\"primary\"} 1",
            "pgbox_role{scope=\"main\",name=\"db1\",role=\"replica\"} 0",
            "pgbox_timeline{scope=\"main\",name=\"db1\"} 3",
            "pgbox_wal_position_bytes{scope=\"main\",name=\"db1\"} 4096",
            "pgbox_decisions_total{scope=\"main\",name=\"db1\",action=\"Promote\"} 1",
            "# TYPE pgbox_promotions_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        // Every sample line is `name{labels} value` with a numeric value.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let value = l.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "not a number in {l:?}");
        }
    }
}
