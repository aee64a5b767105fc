//! pgboxctl's operations: switchover, failover, pause/resume, history,
//! and restart, reload, reinit of members.
//! Each sends one request to the first node API that answers (a switchover
//! or failover to the leader's first, as patronictl does: a member whose
//! pgboxd hangs still accepts the connection and would hold the request
//! for the whole outcome wait); the write endpoints take the API password
//! from the first-boot file.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use super::list::{api_urls, fetch_cluster, ListArgs, MemberDoc};

#[derive(clap::Args, Debug)]
pub struct Target {
    #[command(flatten)]
    pub where_: ListArgs,
    /// The API password (default: secrets.api_password from --config).
    #[arg(long, env = "PGBOX_API_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

fn password(t: &Target) -> Option<String> {
    t.password.clone().or_else(|| {
        let path = t.where_.config.as_ref()?;
        crate::config::load(path).ok()?.secrets.api_password
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Send `body` to `path` on the first API that answers, trying `first`
/// before the others; print its message.
fn send(
    t: &Target,
    first: Option<String>,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> ExitCode {
    let mut urls = match api_urls(&t.where_) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("pgboxctl: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(first) = first.map(|u| super::list::normalize_api_url(&u)) {
        urls.retain(|u| *u != first);
        urls.insert(0, first);
    }
    let password = password(t);
    runtime().block_on(async move {
        // A switchover answers once it completed: allow for it.
        let client = match t.where_.client(Duration::from_secs(75)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("pgboxctl: {e}");
                return ExitCode::from(2);
            }
        };
        let mut errors = Vec::new();
        for url in &urls {
            match request(&client, url, &method, path, &body, password.as_deref()).await {
                Ok((status, text)) => return report(url, path, status, &text),
                Err(e) => errors.push(format!("{url}: {e}")),
            }
        }
        eprintln!("pgboxctl: no node API answered:\n  {}", errors.join("\n  "));
        ExitCode::FAILURE
    })
}

/// One request to the API at `url`: its status and message.
async fn request(
    client: &reqwest::Client,
    url: &str,
    method: &reqwest::Method,
    path: &str,
    body: &Value,
    password: Option<&str>,
) -> Result<(reqwest::StatusCode, String), reqwest::Error> {
    let mut req = client.request(method.clone(), format!("{url}{path}"));
    if !body.is_null() {
        req = req.json(body);
    }
    if let Some(p) = password {
        req = req.basic_auth("pgbox", Some(p));
    }
    let resp = req.send().await?;
    let status = resp.status();
    let doc: Value = resp.json().await.unwrap_or(Value::Null);
    let text = doc
        .get("message")
        .or(doc.get("error"))
        .and_then(|m| m.as_str())
        .map(String::from)
        .unwrap_or_else(|| doc.to_string());
    Ok((status, text))
}

/// Print an answer: its message on stdout when it succeeded, on stderr
/// with the status otherwise.
fn report(url: &str, path: &str, status: reqwest::StatusCode, text: &str) -> ExitCode {
    if status.is_success() {
        println!("{text}");
        ExitCode::SUCCESS
    } else {
        eprintln!("pgboxctl: {url}{path}: {status}: {text}");
        ExitCode::FAILURE
    }
}

/// The leader's entry in the first `/cluster` that answers (None: it
/// names no leader); on failure, the exit code and what to print.
fn leader_member(t: &Target) -> Result<Option<MemberDoc>, (ExitCode, Vec<String>)> {
    let usage = |e: String| (ExitCode::from(2), vec![format!("pgboxctl: {e}")]);
    let urls = api_urls(&t.where_).map_err(usage)?;
    let client = t.where_.client(Duration::from_secs(3)).map_err(usage)?;
    let doc = runtime()
        .block_on(fetch_cluster(&client, &urls))
        .map_err(|failures| {
            let lines = failures.iter().map(|(u, e)| format!("  {u}: {e}"));
            (ExitCode::FAILURE, lines.collect())
        })?;
    Ok(doc.members.into_iter().find(|m| m.role == "leader"))
}

/// The leader's name and API, or a printed reason why there is none.
fn current_leader(t: &Target) -> Result<(String, Option<String>), ExitCode> {
    match leader_member(t) {
        Ok(Some(m)) => Ok((m.name, m.api_url)),
        Ok(None) => {
            eprintln!(
                "pgboxctl: the cluster has no leader; use `pgboxctl failover --candidate NAME`"
            );
            Err(ExitCode::FAILURE)
        }
        Err((code, lines)) => {
            for line in lines {
                eprintln!("{line}");
            }
            Err(code)
        }
    }
}

pub fn switchover(t: Target, candidate: Option<String>, scheduled: Option<String>) -> ExitCode {
    let (leader, leader_api) = match current_leader(&t) {
        Ok(l) => l,
        Err(code) => return code,
    };
    send(
        &t,
        leader_api,
        reqwest::Method::POST,
        "/switchover",
        json!({"leader": leader, "candidate": candidate, "scheduled_at": scheduled}),
    )
}

pub fn failover(t: Target, candidate: String) -> ExitCode {
    eprintln!("warning: a manual failover promotes {candidate} whatever it lacks; writes it has not received are lost");
    // With a leader, the leader's loop carries it out (as a switchover);
    // a failover is for a cluster that may have none, so quietly.
    let leader_api = leader_member(&t).ok().flatten().and_then(|m| m.api_url);
    send(
        &t,
        leader_api,
        reqwest::Method::POST,
        "/failover",
        json!({"candidate": candidate}),
    )
}

pub fn pause(t: Target, on: bool) -> ExitCode {
    send(
        &t,
        None,
        reqwest::Method::PATCH,
        "/config",
        json!({"pause": on}),
    )
}

/// `pgboxctl flush switchover`: `DELETE /switchover`.
pub fn flush_switchover(t: Target) -> ExitCode {
    send(
        &t,
        None,
        reqwest::Method::DELETE,
        "/switchover",
        Value::Null,
    )
}

/// What `pgboxctl restart` asks of each member (Patroni's body).
#[derive(clap::Args, Debug, Default)]
pub struct RestartArgs {
    /// Only if a changed parameter waits for a restart.
    #[arg(long)]
    pub pending: bool,
    /// Only members in this role.
    #[arg(long, value_parser = ["primary", "replica"])]
    pub role: Option<String>,
    /// Only members whose PostgreSQL is older than this (e.g. 15.9).
    #[arg(long = "pg-version", value_name = "VERSION")]
    pub pg_version: Option<String>,
    /// Not before this time (ISO 8601 with a zone, e.g. 2026-12-01T02:00:00Z).
    #[arg(long)]
    pub scheduled: Option<String>,
    /// How long to wait for each restart, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

/// The members named (all PostgreSQL members when none is) with the API
/// each serves, from the first `/cluster` that answers; an unknown name
/// is an error that lists the known ones.
fn member_apis(t: &Target, names: &[String]) -> Result<Vec<(String, String)>, ExitCode> {
    let usage = |e: String| {
        eprintln!("pgboxctl: {e}");
        ExitCode::from(2)
    };
    let urls = api_urls(&t.where_).map_err(usage)?;
    let client = t.where_.client(Duration::from_secs(3)).map_err(usage)?;
    let doc = runtime()
        .block_on(fetch_cluster(&client, &urls))
        .map_err(|failures| {
            eprintln!("pgboxctl: no node API answered:");
            for (u, e) in failures {
                eprintln!("  {u}: {e}");
            }
            ExitCode::FAILURE
        })?;
    let known: Vec<&str> = doc.members.iter().map(|m| m.name.as_str()).collect();
    let wanted: Vec<&MemberDoc> = if names.is_empty() {
        doc.members.iter().collect()
    } else {
        let mut picked = Vec::new();
        for name in names {
            match doc.members.iter().find(|m| m.name == *name) {
                Some(m) => picked.push(m),
                None => {
                    return Err(usage(format!(
                        "{name} is not a member of the cluster (members: {})",
                        known.join(", ")
                    )))
                }
            }
        }
        picked
    };
    wanted
        .into_iter()
        .map(|m| match &m.api_url {
            Some(api) => Ok((m.name.clone(), super::list::normalize_api_url(api))),
            None => Err(usage(format!("{} publishes no API address", m.name))),
        })
        .collect()
}

/// `path` on each member's own API in turn; the exit code is the worst.
fn on_members(
    t: &Target,
    names: &[String],
    method: reqwest::Method,
    path: &str,
    body: Value,
    wait: Duration,
) -> ExitCode {
    let members = match member_apis(t, names) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let password = password(t);
    runtime().block_on(async move {
        let client = match t.where_.client(wait) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("pgboxctl: {e}");
                return ExitCode::from(2);
            }
        };
        let mut code = ExitCode::SUCCESS;
        for (name, url) in &members {
            match request(&client, url, &method, path, &body, password.as_deref()).await {
                Ok((status, text)) if status.is_success() => println!("{name}: {text}"),
                Ok((status, text)) => {
                    eprintln!("pgboxctl: {name}: {status}: {text}");
                    code = ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("pgboxctl: {name}: {url}: {e}");
                    code = ExitCode::FAILURE;
                }
            }
        }
        code
    })
}

/// `pgboxctl restart [MEMBER...]`: each member's PostgreSQL stops and
/// starts in its role (a primary keeps the leader key), one at a time.
pub fn restart(t: Target, members: Vec<String>, args: RestartArgs) -> ExitCode {
    let mut body = serde_json::Map::new();
    if args.pending {
        body.insert("restart_pending".into(), json!(true));
    }
    if let Some(role) = &args.role {
        body.insert("role".into(), json!(role));
    }
    if let Some(v) = &args.pg_version {
        body.insert("postgres_version".into(), json!(v));
    }
    if let Some(at) = &args.scheduled {
        body.insert("schedule".into(), json!(at));
    }
    if let Some(s) = args.timeout {
        body.insert("timeout".into(), json!(s));
    }
    let wait = Duration::from_secs(args.timeout.unwrap_or(60) + 15);
    on_members(
        &t,
        &members,
        reqwest::Method::POST,
        "/restart",
        Value::Object(body),
        wait,
    )
}

/// `pgboxctl reload [MEMBER...]`.
pub fn reload(t: Target, members: Vec<String>) -> ExitCode {
    on_members(
        &t,
        &members,
        reqwest::Method::POST,
        "/reload",
        Value::Null,
        Duration::from_secs(10),
    )
}

/// `pgboxctl reinit MEMBER...`: a fresh clone from the leader.
pub fn reinit(t: Target, members: Vec<String>) -> ExitCode {
    if members.is_empty() {
        eprintln!("pgboxctl: name the member(s) to reinitialize");
        return ExitCode::from(2);
    }
    on_members(
        &t,
        &members,
        reqwest::Method::POST,
        "/reinitialize",
        Value::Null,
        Duration::from_secs(45),
    )
}

/// `pgboxctl flush restart [MEMBER...]`: `DELETE /restart`.
pub fn flush_restart(t: Target, members: Vec<String>) -> ExitCode {
    on_members(
        &t,
        &members,
        reqwest::Method::DELETE,
        "/restart",
        Value::Null,
        Duration::from_secs(10),
    )
}

/// `GET path` as JSON from the first node API that answers with JSON; on
/// failure, what was printed and the exit code.
fn first_answer(t: &Target, path: &str) -> Result<Value, ExitCode> {
    let urls = api_urls(&t.where_).map_err(|e| {
        eprintln!("pgboxctl: {e}");
        ExitCode::from(2)
    })?;
    let client = t.where_.client(Duration::from_secs(3)).map_err(|e| {
        eprintln!("pgboxctl: {e}");
        ExitCode::from(2)
    })?;
    runtime().block_on(async move {
        for url in &urls {
            if let Ok(resp) = client.get(format!("{url}{path}")).send().await {
                if let Ok(doc) = resp.json::<Value>().await {
                    return Ok(doc);
                }
            }
        }
        eprintln!("pgboxctl: no node API answered");
        Err(ExitCode::FAILURE)
    })
}

/// `pgboxctl show-config`: the cluster-wide settings (`GET /config`).
pub fn show_config(t: Target) -> ExitCode {
    let doc = match first_answer(&t, "/config") {
        Ok(d) => d,
        Err(code) => return code,
    };
    match serde_saphyr::to_string(&doc) {
        Ok(yaml) if !t.where_.json => print!("{yaml}"),
        _ => println!("{doc}"),
    }
    ExitCode::SUCCESS
}

/// What `pgboxctl edit-config` changes: `KEY=VALUE` pairs, a dotted key
/// for a nested setting, the value read as JSON when it is JSON (a
/// number, true/false, null to remove) and as text otherwise.
#[derive(clap::Args, Debug, Default)]
pub struct EditArgs {
    /// A cluster-wide setting, e.g. `maximum_lag_on_failover=2097152`.
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A PostgreSQL parameter, e.g. `work_mem=16MB` (`null` removes it).
    #[arg(short = 'p', long = "pg", value_name = "NAME=VALUE")]
    pub pg: Vec<String>,
}

/// The PATCH body `edit-config` sends, or which argument is malformed.
pub fn edit_patch(args: &EditArgs) -> Result<Value, String> {
    let mut patch = serde_json::Map::new();
    let pairs = args.set.iter().map(|p| (p, String::new())).chain(
        args.pg
            .iter()
            .map(|p| (p, "postgresql.parameters.".to_string())),
    );
    for (pair, prefix) in pairs {
        let Some((key, text)) = pair.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(format!("{pair:?}: expected KEY=VALUE"));
        };
        let value = serde_json::from_str(text.trim()).unwrap_or_else(|_| json!(text.trim()));
        let path = format!("{prefix}{}", key.trim());
        let mut parts: Vec<&str> = path.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut at = &mut patch;
        for part in parts {
            at = at
                .entry(part.to_string())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| format!("{pair:?}: {part} is set as a value and as a section"))?;
        }
        at.insert(last.to_string(), value);
    }
    if patch.is_empty() {
        return Err("nothing to change: give --set KEY=VALUE or --pg NAME=VALUE".into());
    }
    Ok(Value::Object(patch))
}

/// `pgboxctl edit-config`: `PATCH /config`, checked whole by the cluster.
pub fn edit_config(t: Target, args: EditArgs) -> ExitCode {
    match edit_patch(&args) {
        Ok(patch) => send(&t, None, reqwest::Method::PATCH, "/config", patch),
        Err(e) => {
            eprintln!("pgboxctl: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn history(t: Target) -> ExitCode {
    let entries = match first_answer(&t, "/history") {
        Ok(Value::Array(entries)) => entries,
        Ok(other) => {
            eprintln!("pgboxctl: /history answered {other}, not a list");
            return ExitCode::FAILURE;
        }
        Err(code) => return code,
    };
    if t.where_.json {
        println!("{}", Value::Array(entries));
        return ExitCode::SUCCESS;
    }
    println!(
        "{:>3}  {:<12}  {:<24}  {:<8}  reason",
        "TL", "LSN", "time", "leader"
    );
    for e in entries {
        let lsn = e[1]
            .as_u64()
            .map(crate::dcs::model::format_lsn)
            .unwrap_or_default();
        println!(
            "{:>3}  {:<12}  {:<24}  {:<8}  {}",
            e[0].as_u64().unwrap_or(0),
            lsn,
            e[3].as_str().unwrap_or(""),
            e[4].as_str().unwrap_or(""),
            e[2].as_str().unwrap_or("")
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_config_arguments_become_one_merge_patch() {
        let args = EditArgs {
            set: vec![
                "maximum_lag_on_failover=2097152".into(),
                "pause=true".into(),
            ],
            pg: vec![
                "work_mem=16MB".into(),
                "max_connections=200".into(),
                "jit=null".into(),
            ],
        };
        assert_eq!(
            edit_patch(&args).unwrap(),
            json!({
                "maximum_lag_on_failover": 2097152,
                "pause": true,
                "postgresql": {"parameters": {"work_mem": "16MB", "max_connections": 200, "jit": null}}
            })
        );
        let bad = |set: &str| {
            edit_patch(&EditArgs {
                set: vec![set.into()],
                pg: vec![],
            })
            .unwrap_err()
        };
        assert!(bad("work_mem").contains("expected KEY=VALUE"));
        assert!(bad("=1").contains("expected KEY=VALUE"));
        assert!(edit_patch(&EditArgs::default())
            .unwrap_err()
            .contains("nothing to change"));
    }
}
