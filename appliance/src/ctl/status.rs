//! `pgboxctl status`: one node's own view of itself (its `/patroni`
//! document): role, state, timeline, lag, lease, watchdog, the last HA
//! decision, and whether it reaches the DCS. `list` shows the cluster as
//! the DCS has it; this shows what the node itself believes, which is
//! what to look at when the two disagree.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use super::colour::{state_style, Palette, Style};
use super::list::{error_chain, ListArgs};

/// The fields shown, from a `/patroni` document. A field the server did
/// not report (an older pgbox, or Patroni itself) stays empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Status {
    pub member: String,
    pub cluster: String,
    pub role: String,
    pub leader: Option<bool>,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_lag_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_remaining_seconds: Option<f64>,
    pub watchdog: String,
    pub watchdog_required: Option<bool>,
    pub dcs_reachable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<String>,
}

impl Status {
    pub fn from_patroni(doc: &Value) -> Status {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let pgbox = &doc["pgbox"];
        Status {
            member: text(&doc["patroni"]["name"]),
            cluster: text(&doc["patroni"]["scope"]),
            role: text(&doc["role"]),
            leader: pgbox["leader"].as_bool(),
            state: text(&doc["state"]),
            timeline: doc["timeline"].as_u64(),
            lag_bytes: pgbox["lag_bytes"].as_u64(),
            replay_lag_seconds: pgbox["replay_lag_seconds"].as_f64(),
            lease_remaining_seconds: pgbox["lease_remaining_seconds"].as_f64(),
            watchdog: pgbox["watchdog_state"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| text(&doc["watchdog"])),
            watchdog_required: pgbox["watchdog_required"].as_bool(),
            dcs_reachable: pgbox["dcs_reachable"].as_bool(),
            last_action: pgbox["last_action"].as_str().map(String::from),
            last_reason: pgbox["last_reason"].as_str().map(String::from),
            last_decision: doc["last_decision"].as_str().map(String::from),
        }
    }
}

/// `pgboxctl status`.
pub fn run(args: ListArgs) -> ExitCode {
    let Some((urls, runtime, client)) = args.connect("status") else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(fetch(&client, &urls)) {
        Ok(doc) => {
            let status = Status::from_patroni(&doc);
            let text = if args.json {
                let mut text = serde_json::to_string_pretty(&status).expect("plain data");
                text.push('\n');
                text
            } else {
                render(&status, Palette::for_stdout())
            };
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(failures) => {
            eprintln!("pgboxctl status: no pgbox API answered:");
            for (url, error) in failures {
                eprintln!("  {url}: {error}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The first `/patroni` document any of `urls` serves.
async fn fetch(client: &reqwest::Client, urls: &[String]) -> Result<Value, Vec<(String, String)>> {
    let mut failures = Vec::new();
    for base in urls {
        let url = format!("{base}/patroni");
        let answer = async {
            let response = client
                .get(&url)
                .send()
                .await
                .map_err(|e| error_chain(&e.without_url()))?;
            if !response.status().is_success() {
                return Err(format!("answered HTTP {}", response.status()));
            }
            response
                .json::<Value>()
                .await
                .map_err(|e| format!("not a JSON document: {}", e.without_url()))
        };
        match answer.await {
            Ok(doc) => return Ok(doc),
            Err(e) => failures.push((url, e)),
        }
    }
    Err(failures)
}

/// The status as aligned `Label  value` lines.
pub fn render(s: &Status, palette: Palette) -> String {
    let unknown = || palette.paint(Style::Warn, "unknown");
    let mut lines: Vec<(&str, String)> = Vec::new();
    lines.push(("Member", format!("{} (cluster {})", s.member, s.cluster)));
    let mut role = s.role.clone();
    if s.leader == Some(true) {
        role.push_str(", holds the leader key");
    }
    lines.push((
        "Role",
        palette.paint(
            if s.leader == Some(true) {
                Style::Bold
            } else {
                Style::Good
            },
            &role,
        ),
    ));
    lines.push(("State", palette.paint(state_style(&s.state), &s.state)));
    lines.push((
        "Timeline",
        s.timeline.map_or_else(unknown, |t| t.to_string()),
    ));
    if s.role == "replica" {
        let bytes = s.lag_bytes.map_or_else(unknown, |b| format!("{b} bytes"));
        let seconds = s
            .replay_lag_seconds
            .map_or_else(unknown, |t| format!("{t:.1} s"));
        lines.push(("Lag", format!("{bytes}, {seconds}")));
    }
    if let Some(rem) = s.lease_remaining_seconds {
        lines.push(("Lease", format!("{rem:.1} s proven valid")));
    }
    let watchdog_style = match (s.watchdog.as_str(), s.watchdog_required) {
        ("armed", _) => Style::Good,
        ("absent", Some(true)) => Style::Bad,
        _ => Style::Warn,
    };
    let mut watchdog = s.watchdog.clone();
    if s.watchdog_required == Some(true) {
        watchdog.push_str(" (required)");
    }
    lines.push(("Watchdog", palette.paint(watchdog_style, &watchdog)));
    lines.push((
        "DCS",
        match s.dcs_reachable {
            Some(true) => palette.paint(Style::Good, "reachable"),
            Some(false) => palette.paint(Style::Bad, "unreachable"),
            None => unknown(),
        },
    ));
    let decision = match (&s.last_action, &s.last_reason, &s.last_decision) {
        (Some(action), Some(reason), text) => format!(
            "{action} ({reason}){}",
            text.as_deref()
                .map(|t| format!(": {t}"))
                .unwrap_or_default()
        ),
        (_, _, Some(text)) => text.clone(),
        _ => "none yet".to_string(),
    };
    lines.push(("Decision", decision));

    let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (label, value) in lines {
        out.push_str(&format!("{label:<width$}  {value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, RwLock};

    use serde_json::json;

    use super::*;
    use crate::ha::Cause;
    use crate::status::{NodeStatus, PgRole, PgStatus, WatchdogState};
    use std::time::Duration;

    fn replica_status() -> NodeStatus {
        let mut node = NodeStatus::new("db2", "main", Default::default(), Duration::from_secs(30));
        node.state = "running".into();
        node.dcs_reachable = false;
        node.watchdog_state = WatchdogState::Absent;
        node.watchdog_required = true;
        node.cluster.last_leader_lsn = Some(3 << 20);
        node.pg = PgStatus {
            running: true,
            role: PgRole::Replica,
            timeline: Some(4),
            lsn: Some(1 << 20),
            replay_lag: Some(Duration::from_millis(2_500)),
            ..PgStatus::default()
        };
        node.last_action = Some(("none".into(), Cause::DcsUnreachable));
        node.last_decision = "DCS unreachable: no automatic action".into();
        node
    }

    #[test]
    fn text_of_a_replica_cut_off_from_the_dcs() {
        let doc = crate::api::routes::patroni::body(&replica_status());
        let status = Status::from_patroni(&doc);
        let expected = "\
Member    db2 (cluster main)
Role      replica
State     running
Timeline  4
Lag       2097152 bytes, 2.5 s
Watchdog  absent (required)
DCS       unreachable
Decision  none (dcs_unreachable): DCS unreachable: no automatic action
";
        assert_eq!(render(&status, Palette::plain()), expected);
        let coloured = render(&status, Palette::decide(true, None));
        assert!(
            coloured.contains("\x1b[31munreachable\x1b[0m"),
            "{coloured}"
        );
        assert!(
            coloured.contains("\x1b[31mabsent (required)\x1b[0m"),
            "{coloured}"
        );
    }

    #[test]
    fn json_for_scripts() {
        let doc = crate::api::routes::patroni::body(&replica_status());
        let value = serde_json::to_value(Status::from_patroni(&doc)).unwrap();
        assert_eq!(
            value,
            json!({
                "member": "db2", "cluster": "main", "role": "replica", "leader": false,
                "state": "running", "timeline": 4, "lag_bytes": 2_097_152,
                "replay_lag_seconds": 2.5, "watchdog": "absent", "watchdog_required": true,
                "dcs_reachable": false, "last_action": "none", "last_reason": "dcs_unreachable",
                "last_decision": "DCS unreachable: no automatic action",
            })
        );
    }

    #[test]
    fn a_patroni_document_without_pgbox_fields_shows_unknowns() {
        let doc = json!({
            "state": "running", "role": "primary", "timeline": 2, "watchdog": "off",
            "patroni": { "name": "pg1", "scope": "demo", "version": "3.0.2" },
        });
        let text = render(&Status::from_patroni(&doc), Palette::plain());
        assert!(text.contains("Watchdog  off\n"), "{text}");
        assert!(text.contains("DCS       unknown\n"), "{text}");
        assert!(text.contains("Decision  none yet\n"), "{text}");
    }

    #[tokio::test]
    async fn reads_the_first_answering_node() {
        let mut node = replica_status();
        node.is_leader = false;
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::api::serve(
            addr,
            Arc::new(RwLock::new(node)),
            async {
                let _ = stopped.await;
            },
        ));
        let urls = vec![format!("http://{closed}"), format!("http://{addr}")];
        let mut found = None;
        for _ in 0..50 {
            let client = crate::tls::http_client(None).unwrap().build().unwrap();
            if let Ok(doc) = fetch(&client, &urls).await {
                found = Some(doc);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = Status::from_patroni(&found.expect("the live API answers"));
        assert_eq!(status.member, "db2");
        assert_eq!(status.dcs_reachable, Some(false));
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
