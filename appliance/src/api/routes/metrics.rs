//! `GET /metrics`: Prometheus text exposition (format 0.0.4) of this
//! node's state. Every label value comes from a closed set (roles, action
//! names, `ha::Cause` words, watchdog states) or from the file (scope and
//! member name), so the number of series stays bounded.

use std::fmt::Write as _;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::api::{snapshot, ApiState};
use crate::status::{NodeStatus, PgRole, SharedStatus, WatchdogState};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/metrics", get(handler))
}

async fn handler(State(status): State<SharedStatus>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&snapshot(&status)),
    )
}

/// Label pairs of one sample, besides the scope and name every sample has.
type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Writes metric families: HELP, TYPE, then the samples, each sample with
/// the node's scope and name labels first.
struct Exposition {
    out: String,
    node_labels: String,
}

impl Exposition {
    fn new(node: &NodeStatus) -> Self {
        Exposition {
            out: String::new(),
            node_labels: format!(
                "scope=\"{}\",name=\"{}\"",
                escape_label(&node.scope),
                escape_label(&node.name)
            ),
        }
    }

    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(Labels, f64)]) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let mut text = self.node_labels.clone();
            for (k, v) in labels {
                let _ = write!(text, ",{k}=\"{}\"", escape_label(v));
            }
            let _ = writeln!(self.out, "{name}{{{text}}} {}", number(*value));
        }
    }

    /// A family with one sample and no labels of its own.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help, &[(Vec::new(), value)]);
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text escapes backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Prometheus spells the special values its own way.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn flag(v: bool) -> f64 {
    if v {
        1.0
    } else {
        0.0
    }
}

pub fn render(node: &NodeStatus) -> String {
    let mut x = Exposition::new(node);
    let pg = &node.pg;

    let roles = [
        ("primary", PgRole::Primary),
        ("replica", PgRole::Replica),
        ("unknown", PgRole::Unknown),
    ];
    let role_samples: Vec<(Labels, f64)> = roles
        .iter()
        .map(|(word, r)| (vec![("role", *word)], flag(pg.role == *r && pg.running)))
        .collect();
    x.family(
        "pgbox_role",
        "gauge",
        "1 for the role PostgreSQL runs in on this node.",
        &role_samples,
    );
    x.single(
        "pgbox_leader",
        "gauge",
        "1 if this node holds the leader key.",
        flag(node.is_leader),
    );
    x.single(
        "pgbox_postgres_running",
        "gauge",
        "1 if PostgreSQL answers queries.",
        flag(pg.running),
    );
    x.single(
        "pgbox_dcs_reachable",
        "gauge",
        "1 if the last DCS read succeeded.",
        flag(node.dcs_reachable),
    );
    if let Some(tl) = pg.timeline {
        x.single("pgbox_timeline", "gauge", "PostgreSQL timeline.", tl as f64);
    }
    if let Some(lsn) = pg.lsn {
        x.single(
            "pgbox_wal_position_bytes",
            "gauge",
            "Write position (primary) or received/replayed position (replica).",
            lsn as f64,
        );
        if pg.role == PgRole::Replica {
            if let Some(leader_lsn) = crate::api::routes::cluster::leader_position(&node.cluster) {
                x.single(
                    "pgbox_replication_lag_bytes",
                    "gauge",
                    "Bytes behind the leader's last known position.",
                    leader_lsn.saturating_sub(lsn) as f64,
                );
            }
        }
    }
    if let (PgRole::Replica, Some(lag)) = (pg.role, pg.replay_lag) {
        x.single(
            "pgbox_replication_lag_seconds",
            "gauge",
            "Replica: 0 while streaming with everything received replayed, else the age of the last replayed transaction.",
            lag.as_secs_f64(),
        );
    }
    if let Some(a) = &pg.archive {
        x.single(
            "pgbox_archive_pending_segments",
            "gauge",
            "Primary: completed WAL segments waiting to be archived to the backup node.",
            a.pending_segments as f64,
        );
        x.single(
            "pgbox_archive_failing",
            "gauge",
            "Primary: 1 when the last archive attempt failed and none succeeded since (WAL piles up on the data partition).",
            flag(a.failing),
        );
        if let Some(age) = a.since_last_archived {
            x.single(
                "pgbox_archive_last_success_age_seconds",
                "gauge",
                "Primary: seconds since a WAL segment was last archived.",
                age,
            );
        }
    }
    if let Some(rem) = node.lease_remaining {
        x.single(
            "pgbox_lease_remaining_seconds",
            "gauge",
            "How long the leader lease is still proven valid.",
            rem.as_secs_f64(),
        );
    }

    let decisions: Vec<(Labels, f64)> = node
        .decisions
        .iter()
        .map(|((action, cause), n)| {
            (
                vec![("action", action.as_str()), ("reason", cause.as_str())],
                *n as f64,
            )
        })
        .collect();
    x.family(
        "pgbox_decisions_total",
        "counter",
        "HA decisions taken, by their first action and their cause.",
        &decisions,
    );
    let last: Vec<(Labels, f64)> = node
        .last_action
        .iter()
        .map(|(action, cause)| {
            (
                vec![("action", action.as_str()), ("reason", cause.as_str())],
                1.0,
            )
        })
        .collect();
    x.family(
        "pgbox_last_decision",
        "gauge",
        "1 for the first action and cause of the latest HA decision.",
        &last,
    );
    x.single(
        "pgbox_promotions_total",
        "counter",
        "Promotions carried out by this node.",
        node.promotions as f64,
    );
    x.single(
        "pgbox_failovers_total",
        "counter",
        "Promotions of this node after the leader was lost or by a manual failover (not switchovers).",
        node.failovers as f64,
    );

    x.single(
        "pgbox_watchdog_armed",
        "gauge",
        "1 while the hardware watchdog is armed.",
        flag(node.watchdog_state == WatchdogState::Armed),
    );
    let states: Vec<(Labels, f64)> = WatchdogState::ALL
        .iter()
        .map(|s| (vec![("state", s.as_str())], flag(node.watchdog_state == *s)))
        .collect();
    x.family(
        "pgbox_watchdog_state",
        "gauge",
        "1 for the hardware watchdog's state: off (ha.watchdog off), absent (no device), disarmed, armed.",
        &states,
    );
    x.single(
        "pgbox_failsafe_active",
        "gauge",
        "1 while failsafe mode keeps this primary leading without the DCS.",
        flag(node.failsafe_active),
    );
    x.single(
        "pgbox_watchdog_required",
        "gauge",
        "1 if ha.watchdog is required: without a device this node never leads.",
        flag(node.watchdog_required),
    );

    x.single(
        "pgbox_loop_duration_seconds",
        "gauge",
        "Duration of the last HA loop.",
        node.loop_duration.as_secs_f64(),
    );
    let age = SystemTime::now()
        .duration_since(node.last_loop)
        .unwrap_or_default();
    x.single(
        "pgbox_loop_age_seconds",
        "gauge",
        "Time since the last HA loop completed.",
        age.as_secs_f64(),
    );
    let mut out = x.out;
    // For a person reading the page; parsers skip comments.
    let _ = writeln!(
        out,
        "# last decision: {}",
        node.last_decision.replace(['\n', '\r'], " ")
    );
    out
}

#[cfg(test)]
mod tests;
