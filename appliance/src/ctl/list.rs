//! `pgboxctl list`: the cluster's members as a table, like `patronictl list`.
//!
//! Any node's `/cluster` describes the whole cluster, so the URLs are tried
//! in turn and the first answer wins; the command fails only when none
//! answers, and then says what each one did.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::colour::{state_style, Palette, Style};
use crate::config::Role;

/// Short enough that a dead node does not stall the command, long enough
/// for a busy one on a slow emulated machine.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Asked when neither `--api` nor `--config` is given: the box it runs on.
const LOCAL_API_ADDR: &str = "127.0.0.1:8008";
#[cfg(test)]
const LOCAL_API: &str = "http://127.0.0.1:8008";

const MB: f64 = 1024.0 * 1024.0;
const DEFAULT_PG_PORT: u16 = 5432;

#[derive(clap::Args, Debug, Clone)]
pub struct ListArgs {
    /// A node's REST API, e.g. http://127.0.0.2:8008. Repeat it to give
    /// fallbacks; they are asked in order until one answers.
    #[arg(long = "api", value_name = "URL")]
    pub api: Vec<String>,
    /// A pgbox.yaml: ask the API of every postgres node it lists.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the members as JSON (the rows of the table) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Trust the API's HTTPS certificate when this CA (PEM file) signed it
    /// (default: api.tls.ca from --config; URLs without a scheme then
    /// default to https).
    #[arg(long, value_name = "FILE", env = "PGBOX_CACERT")]
    pub cacert: Option<PathBuf>,
}

impl ListArgs {
    /// The CA to trust: `--cacert`, else the file's `api.tls.ca`, else none.
    pub fn ca(&self) -> Result<Option<String>, String> {
        if let Some(path) = &self.cacert {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("--cacert {}: {e}", path.display()))?;
            crate::tls::roots(&pem).map_err(|e| format!("--cacert {}: {e}", path.display()))?;
            return Ok(Some(pem));
        }
        if let Some(path) = &self.config {
            let config = crate::config::load(path)
                .map_err(|errors| format!("cannot use {}:\n{errors}", path.display()))?;
            return Ok(config.api.tls.map(|t| t.ca));
        }
        Ok(None)
    }

    /// What `list` and `status` need before they ask anything: the API
    /// addresses, a runtime and a client. None once the reason is printed,
    /// under the subcommand's name.
    pub fn connect(
        &self,
        command: &str,
    ) -> Option<(Vec<String>, tokio::runtime::Runtime, reqwest::Client)> {
        let ready = (|| {
            let urls = api_urls(self)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the async runtime: {e}"))?;
            let client = self.client(REQUEST_TIMEOUT)?;
            Ok::<_, String>((urls, runtime, client))
        })();
        ready
            .map_err(|message| eprintln!("pgboxctl {command}: {message}"))
            .ok()
    }

    /// An HTTP client for the APIs: HTTPS trusting only `ca()`, when there
    /// is one; plain HTTP otherwise.
    pub fn client(&self, timeout: Duration) -> Result<reqwest::Client, String> {
        let ca = self.ca()?;
        crate::tls::http_client(ca.as_deref())?
            .timeout(timeout)
            .build()
            .map_err(|e| format!("the HTTP client: {}", error_chain(&e)))
    }
}

/// `/cluster` as pgbox and Patroni serve it. Lenient on purpose: fields a
/// server leaves out become empty cells, not a failed command.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ClusterDoc {
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub members: Vec<MemberDoc>,
    /// Maintenance mode (Patroni's field, present only while on).
    #[serde(default)]
    pub pause: bool,
    /// Rows in the members' order as given (a topology), not by name.
    #[serde(skip)]
    pub keep_order: bool,
}

/// The members as a replication tree, as `patronictl topology` shows it:
/// the leader first, then each member that streams from it, its name
/// marked "+ " one level down. pgbox replicas all stream from the leader
/// (no cascading), so the tree has one level; without a leader every
/// member hangs from nobody and is marked.
pub fn topology(doc: &ClusterDoc) -> ClusterDoc {
    let is_leader = |m: &MemberDoc| m.role.ends_with("leader");
    let mut members: Vec<MemberDoc> = doc
        .members
        .iter()
        .filter(|m| is_leader(m))
        .take(1)
        .cloned()
        .collect();
    let mut below: Vec<MemberDoc> = doc
        .members
        .iter()
        .filter(|m| members.first().is_none_or(|l| l.name != m.name))
        .cloned()
        .collect();
    below.sort_by(|a, b| a.name.cmp(&b.name));
    members.extend(below.into_iter().map(|m| MemberDoc {
        name: format!("+ {}", m.name),
        ..m
    }));
    ClusterDoc {
        members,
        keep_order: true,
        ..doc.clone()
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct MemberDoc {
    pub name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub timeline: Option<u64>,
    /// Bytes behind the leader, or "unknown".
    #[serde(default)]
    pub lag: Option<Value>,
    /// Its REST API (`…/patroni`).
    #[serde(default)]
    pub api_url: Option<String>,
}

/// `pgboxctl list`.
pub fn run(args: ListArgs) -> ExitCode {
    show(args, "list", |doc| doc)
}

/// `pgboxctl topology`: the list as a replication tree.
pub fn run_topology(args: ListArgs) -> ExitCode {
    show(args, "topology", |doc| topology(&doc))
}

fn show(args: ListArgs, command: &str, arrange: impl Fn(ClusterDoc) -> ClusterDoc) -> ExitCode {
    let Some((urls, runtime, client)) = args.connect(command) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(fetch_cluster(&client, &urls)) {
        Ok(doc) => {
            let doc = arrange(doc);
            let text = if args.json {
                let mut text =
                    serde_json::to_string_pretty(&json_rows(&doc)).expect("JSON values serialize");
                text.push('\n');
                text
            } else {
                let mut text = render_table_with(&doc, Palette::for_stdout());
                if command == "list" {
                    text.push_str(&runtime.block_on(super::backup::footer(&args, &client, &doc)));
                }
                text
            };
            // A closed pipe (`| head`) is not worth a panic.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(failures) => {
            eprintln!("pgboxctl {command}: no pgbox API answered:");
            for (url, error) in failures {
                eprintln!("  {url}: {error}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The base URLs to ask, in order: `--api` ones first, then the file's.
pub fn api_urls(args: &ListArgs) -> Result<Vec<String>, String> {
    api_urls_of(args, Role::Postgres)
}

/// As `api_urls`, with the file's nodes of `role`.
pub fn api_urls_of(args: &ListArgs, role: Role) -> Result<Vec<String>, String> {
    let https = args.ca()?.is_some();
    let with_scheme = |url: &str| {
        let url = url.trim();
        if https && !url.contains("://") {
            normalize_api_url(&format!("https://{url}"))
        } else {
            normalize_api_url(url)
        }
    };
    let mut urls: Vec<String> = args.api.iter().map(|url| with_scheme(url)).collect();
    if let Some(path) = &args.config {
        let config = crate::config::load(path)
            .map_err(|errors| format!("cannot use {}:\n{errors}", path.display()))?;
        let before = urls.len();
        for node in config.nodes_with(role) {
            urls.push(normalize_api_url(&config.api_url(node)));
        }
        if urls.len() == before {
            return Err(format!(
                "{}: no node has the {} role",
                path.display(),
                role.name()
            ));
        }
    }
    if urls.is_empty() {
        urls.push(with_scheme(LOCAL_API_ADDR));
    }
    urls.dedup();
    Ok(urls)
}

/// `http://host:port`, whether given bare, with a trailing slash, without a
/// scheme, or as a member's `api_url` ending in `/patroni`.
pub fn normalize_api_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix("/patroni").unwrap_or(url);
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// The first `/cluster` any of `urls` serves, or every URL with its error.
/// `client` comes from `ListArgs::client` (no proxy: the API lives on the
/// cluster's own network, where a workstation's web proxy would only get in
/// the way).
pub async fn fetch_cluster(
    client: &reqwest::Client,
    urls: &[String],
) -> Result<ClusterDoc, Vec<(String, String)>> {
    let mut failures = Vec::new();
    for base in urls {
        let url = format!("{base}/cluster");
        match fetch_one(client, &url).await {
            Ok(doc) => return Ok(doc),
            Err(error) => failures.push((url, error)),
        }
    }
    Err(failures)
}

async fn fetch_one(client: &reqwest::Client, url: &str) -> Result<ClusterDoc, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| error_chain(&e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("answered HTTP {status}"));
    }
    response
        .json::<ClusterDoc>()
        .await
        .map_err(|e| format!("not a /cluster document: {}", error_chain(&e.without_url())))
}

/// reqwest's own message is generic ("error sending request"); the cause
/// (connection refused, timed out, ...) is in its sources.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

const HEADERS: [&str; 6] = ["Member", "Host", "Role", "State", "TL", "Lag in MB"];
/// TL and lag are numbers: right-aligned, as patronictl prints them.
const RIGHT_ALIGNED: [bool; 6] = [false, false, false, false, true, true];

/// The rows of the table, one string per cell, members sorted by name.
fn rows(doc: &ClusterDoc) -> Vec<[String; 6]> {
    let mut members: Vec<&MemberDoc> = doc.members.iter().collect();
    if !doc.keep_order {
        members.sort_by(|a, b| a.name.cmp(&b.name));
    }
    members
        .into_iter()
        .map(|m| {
            [
                m.name.clone(),
                host_cell(m),
                title_case(&m.role),
                m.state.clone(),
                m.timeline.map(|tl| tl.to_string()).unwrap_or_default(),
                lag_cell(m),
            ]
        })
        .collect()
}

/// The port only when it is not PostgreSQL's usual one, as patronictl does.
fn host_cell(member: &MemberDoc) -> String {
    let Some(host) = &member.host else {
        return String::new();
    };
    match member.port {
        Some(port) if port != DEFAULT_PG_PORT => {
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        }
        _ => host.clone(),
    }
}

fn lag_cell(member: &MemberDoc) -> String {
    match &member.lag {
        Some(Value::Number(bytes)) => match bytes.as_f64() {
            Some(bytes) => format!("{}", (bytes / MB).round() as u64),
            None => bytes.to_string(),
        },
        Some(Value::String(text)) => text.clone(),
        _ => String::new(),
    }
}

/// "sync_standby" -> "Sync Standby".
fn title_case(word: &str) -> String {
    word.split(['_', ' '])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `patronictl list` table for `doc`, ending in a newline.
pub fn render_table(doc: &ClusterDoc) -> String {
    render_table_with(doc, Palette::plain())
}

/// The table with the role and state cells coloured by `palette`.
pub fn render_table_with(doc: &ClusterDoc, palette: Palette) -> String {
    let rows = rows(doc);
    let width = |text: &str| text.chars().count();
    let mut widths: Vec<usize> = HEADERS.iter().map(|h| width(h)).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }

    let title = format!("+ Cluster: {} ", doc.scope);
    // The title sits inside the top border; make room if the name is long.
    let border_len = |widths: &[usize]| 1 + widths.iter().map(|w| w + 3).sum::<usize>();
    let needed = width(&title) + 2;
    if border_len(&widths) < needed {
        let last = widths.len() - 1;
        widths[last] += needed - border_len(&widths);
    }

    let border: String = std::iter::once("+".to_string())
        .chain(widths.iter().map(|w| format!("{}+", "-".repeat(w + 2))))
        .collect();
    let line = |cells: &[&str], styles: &[Option<Style>]| -> String {
        let mut text = String::from("|");
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            // Padding counts the visible characters, not the colour codes.
            let pad = " ".repeat(w - width(cell));
            let cell = match styles.get(i).copied().flatten() {
                Some(style) => palette.paint(style, cell),
                None => cell.to_string(),
            };
            if RIGHT_ALIGNED[i] {
                text.push_str(&format!(" {pad}{cell} |"));
            } else {
                text.push_str(&format!(" {cell}{pad} |"));
            }
        }
        text
    };

    let mut out = String::new();
    out.push_str(&title);
    out.extend(border.chars().skip(width(&title)));
    out.push('\n');
    out.push_str(&line(&HEADERS, &[]));
    out.push('\n');
    out.push_str(&border);
    out.push('\n');
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let role = (row[2] == "Leader").then_some(Style::Bold);
        let styles = [None, None, role, Some(state_style(&row[3]))];
        out.push_str(&line(&cells, &styles));
        out.push('\n');
    }
    out.push_str(&border);
    out.push('\n');
    if doc.pause {
        // What patronictl prints under the table.
        out.push_str(" Maintenance mode: on\n");
    }
    out
}

/// The table's rows as JSON objects keyed by column name (as
/// `patronictl list -f json` prints them); empty cells are left out and
/// numbers stay numbers.
pub fn json_rows(doc: &ClusterDoc) -> Value {
    let rows = rows(doc);
    Value::Array(
        rows.into_iter()
            .map(|row| {
                let mut object = Map::new();
                object.insert("Cluster".into(), json!(doc.scope));
                for ((header, numeric), cell) in HEADERS.iter().zip(RIGHT_ALIGNED).zip(row) {
                    if cell.is_empty() {
                        continue;
                    }
                    let value = match cell.parse::<u64>() {
                        Ok(n) if numeric => json!(n),
                        _ => json!(cell),
                    };
                    object.insert((*header).into(), value);
                }
                Value::Object(object)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> ClusterDoc {
        serde_json::from_value(json!({
            "scope": "main",
            "members": [
                { "name": "db2", "role": "replica", "state": "streaming", "host": "127.0.0.3",
                  "port": 5432, "timeline": 2, "lag": 0, "api_url": "http://127.0.0.3:8008/patroni" },
                { "name": "db1", "role": "leader", "state": "running", "host": "127.0.0.2",
                  "port": 5432, "timeline": 2, "tags": {} },
                { "name": "db3", "role": "sync_standby", "state": "creating replica", "host": "fd00::4",
                  "port": 5433, "lag": "unknown" },
                { "name": "db4", "role": "replica", "state": "streaming", "host": "10.0.0.5",
                  "timeline": 2, "lag": 15_204_352 },
            ]
        }))
        .unwrap()
    }

    #[test]
    fn table() {
        let expected = "\
+ Cluster: main ----------+--------------+------------------+----+-----------+
| Member | Host           | Role         | State            | TL | Lag in MB |
+--------+----------------+--------------+------------------+----+-----------+
| db1    | 127.0.0.2      | Leader       | running          |  2 |           |
| db2    | 127.0.0.3      | Replica      | streaming        |  2 |         0 |
| db3    | [fd00::4]:5433 | Sync Standby | creating replica |    |   unknown |
| db4    | 10.0.0.5       | Replica      | streaming        |  2 |        15 |
+--------+----------------+--------------+------------------+----+-----------+
";
        assert_eq!(render_table(&doc()), expected);
        let paused = ClusterDoc {
            pause: true,
            ..doc()
        };
        assert_eq!(
            render_table(&paused),
            format!("{expected} Maintenance mode: on\n")
        );
    }

    #[test]
    fn topology_puts_the_leader_first_and_its_replicas_below() {
        let expected = "\
+ Cluster: main ----------+--------------+------------------+----+-----------+
| Member | Host           | Role         | State            | TL | Lag in MB |
+--------+----------------+--------------+------------------+----+-----------+
| db1    | 127.0.0.2      | Leader       | running          |  2 |           |
| + db2  | 127.0.0.3      | Replica      | streaming        |  2 |         0 |
| + db3  | [fd00::4]:5433 | Sync Standby | creating replica |    |   unknown |
| + db4  | 10.0.0.5       | Replica      | streaming        |  2 |        15 |
+--------+----------------+--------------+------------------+----+-----------+
";
        assert_eq!(render_table(&topology(&doc())), expected);
        // No leader: every member hangs from nobody.
        let mut leaderless = doc();
        leaderless.members.retain(|m| m.role != "leader");
        let names: Vec<String> = topology(&leaderless)
            .members
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["+ db2", "+ db3", "+ db4"]);
    }

    #[test]
    fn colours_leave_the_layout_alone() {
        let palette = Palette::decide(true, None);
        let coloured = render_table_with(&doc(), palette);
        let strip = |t: &str| {
            let mut out = String::new();
            let mut rest = t;
            while let Some(i) = rest.find('\x1b') {
                out.push_str(&rest[..i]);
                rest = &rest[i + rest[i..].find('m').unwrap() + 1..];
            }
            out.push_str(rest);
            out
        };
        assert_ne!(coloured, render_table(&doc()));
        assert_eq!(strip(&coloured), render_table(&doc()));
        assert!(coloured.contains("\x1b[1mLeader\x1b[0m"), "{coloured}");
        assert!(coloured.contains("\x1b[32mstreaming\x1b[0m"), "{coloured}");
        assert!(
            coloured.contains("\x1b[33mcreating replica\x1b[0m"),
            "{coloured}"
        );
    }

    #[test]
    fn long_cluster_name_widens_the_table() {
        let doc = ClusterDoc {
            scope: "a-rather-long-cluster-name-for-a-small-table-x".into(),
            ..ClusterDoc::default()
        };
        let table = render_table(&doc);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[0].starts_with("+ Cluster: a-rather-long-cluster-name-for-a-small-table-x -"),
            "{table}"
        );
        assert!(lines[0].ends_with('+'));
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count()),
            "{table}"
        );
    }

    #[test]
    fn json_rows_keep_numbers() {
        let rows = json_rows(&doc());
        assert_eq!(
            rows[0],
            json!({ "Cluster": "main", "Member": "db1", "Host": "127.0.0.2", "Role": "Leader", "State": "running", "TL": 2 })
        );
        assert_eq!(rows[1]["Lag in MB"], 0);
        assert_eq!(rows[2]["Lag in MB"], "unknown");
        assert!(rows[2].get("TL").is_none());
    }

    fn plain_client() -> reqwest::Client {
        crate::tls::http_client(None)
            .unwrap()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap()
    }

    /// pgboxctl against an HTTPS API: the cluster's CA is trusted, nothing
    /// else is (not the system's roots, not another CA).
    #[tokio::test]
    async fn https_api_is_trusted_only_through_its_ca() {
        use std::sync::{Arc, RwLock};

        let pki = crate::tls::testing::pki(&["127.0.0.1"]);
        let tls = crate::config::TlsPem {
            certificate: pki.cert_pem.clone(),
            private_key: pki.key_pem.clone(),
            ca: pki.ca_pem.clone(),
        };
        let node = crate::status::NodeStatus::new(
            "db1",
            "main",
            Default::default(),
            Duration::from_secs(30),
        );
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::api::serve_tls(
            addr,
            Arc::new(RwLock::new(node)),
            Some(Arc::new(crate::tls::server_config(&tls).unwrap())),
            async {
                let _ = stopped.await;
            },
        ));
        let urls = vec![format!("https://{addr}")];
        let trusting = crate::tls::http_client(Some(&pki.ca_pem))
            .unwrap()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap();
        let mut doc = None;
        for _ in 0..50 {
            if let Ok(found) = fetch_cluster(&trusting, &urls).await {
                doc = Some(found);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(doc.expect("the HTTPS API answers").scope, "main");

        let other_ca = crate::tls::testing::pki(&["127.0.0.1"]).ca_pem;
        let stranger = crate::tls::http_client(Some(&other_ca))
            .unwrap()
            .build()
            .unwrap();
        let failures = fetch_cluster(&stranger, &urls).await.unwrap_err();
        assert!(
            failures[0].1.to_lowercase().contains("certificate"),
            "{failures:?}"
        );
        let failures = fetch_cluster(&plain_client(), &urls).await.unwrap_err();
        assert!(
            failures[0].1.to_lowercase().contains("certificate"),
            "{failures:?}"
        );
        let plain = vec![format!("http://{addr}")];
        assert!(
            fetch_cluster(&plain_client(), &plain).await.is_err(),
            "no plain HTTP on an HTTPS port"
        );

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn api_urls_are_normalized() {
        assert_eq!(
            normalize_api_url("http://127.0.0.2:8008"),
            "http://127.0.0.2:8008"
        );
        assert_eq!(
            normalize_api_url("http://127.0.0.2:8008/"),
            "http://127.0.0.2:8008"
        );
        assert_eq!(
            normalize_api_url("http://127.0.0.2:8008/patroni"),
            "http://127.0.0.2:8008"
        );
        assert_eq!(
            normalize_api_url(" 127.0.0.2:8008 "),
            "http://127.0.0.2:8008"
        );
        assert_eq!(
            normalize_api_url("https://[fd00::2]:8008"),
            "https://[fd00::2]:8008"
        );

        let args = ListArgs {
            api: vec![],
            config: None,
            json: false,
            cacert: None,
        };
        assert_eq!(api_urls(&args).unwrap(), vec![LOCAL_API.to_string()]);

        // With a CA to trust, URLs without a scheme mean HTTPS.
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, crate::tls::testing::pki(&["127.0.0.1"]).ca_pem).unwrap();
        let args = ListArgs {
            api: vec!["127.0.0.2:8008".into(), "http://127.0.0.3:8008".into()],
            cacert: Some(ca),
            ..args
        };
        assert_eq!(
            api_urls(&args).unwrap(),
            ["https://127.0.0.2:8008", "http://127.0.0.3:8008"]
        );
        let args = ListArgs {
            api: vec![],
            ..args
        };
        assert_eq!(api_urls(&args).unwrap(), ["https://127.0.0.1:8008"]);
        let missing = ListArgs {
            cacert: Some(dir.path().join("nope.pem")),
            ..args
        };
        let e = api_urls(&missing).unwrap_err();
        assert!(e.starts_with("--cacert ") && e.contains("nope.pem"), "{e}");
    }

    #[tokio::test]
    async fn every_failed_url_is_reported() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let urls = vec![format!("http://{closed}"), format!("http://{closed}/again")];
        let failures = fetch_cluster(&plain_client(), &urls).await.unwrap_err();
        assert_eq!(failures.len(), 2);
        assert_eq!(failures[0].0, format!("http://{closed}/cluster"));
        assert_eq!(failures[1].0, format!("http://{closed}/again/cluster"));
        assert!(failures.iter().all(|(_, error)| !error.is_empty()));
    }

    #[tokio::test]
    async fn first_answering_api_wins() {
        use std::sync::{Arc, RwLock};

        use crate::dcs::model::{ClusterView, Member};
        use crate::status::NodeStatus;

        let mut node = NodeStatus::new("db1", "main", Default::default(), Duration::from_secs(30));
        node.cluster = ClusterView {
            leader: Some("db1".into()),
            members: vec![(
                "db1".into(),
                Member {
                    conn_url: "postgres://127.0.0.2:5432/postgres".into(),
                    api_url: "http://127.0.0.2:8008/patroni".into(),
                    state: "running".into(),
                    role: "primary".into(),
                    timeline: Some(3),
                    ..Member::default()
                },
            )],
            ..ClusterView::default()
        };
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

        // A dead node first, then a live one (given as its member api_url).
        let urls = vec![
            format!("http://{closed}"),
            normalize_api_url(&format!("http://{addr}/patroni")),
        ];
        let mut doc = None;
        for _ in 0..50 {
            if let Ok(found) = fetch_cluster(&plain_client(), &urls).await {
                doc = Some(found);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let doc = doc.expect("the live API answers");
        assert_eq!(doc.scope, "main");
        assert_eq!(
            render_table(&doc).lines().nth(3).unwrap(),
            "| db1    | 127.0.0.2 | Leader | running |  3 |           |"
        );

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
