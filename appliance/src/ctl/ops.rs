//! pgboxctl's operations: switchover, failover, pause/resume, history.
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
            let mut req = client
                .request(method.clone(), format!("{url}{path}"))
                .json(&body);
            if let Some(p) = &password {
                req = req.basic_auth("pgbox", Some(p));
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let doc: Value = resp.json().await.unwrap_or(Value::Null);
                    let text = doc
                        .get("message")
                        .or(doc.get("error"))
                        .and_then(|m| m.as_str())
                        .map(String::from);
                    let text = text.unwrap_or_else(|| doc.to_string());
                    if status.is_success() {
                        println!("{text}");
                        return ExitCode::SUCCESS;
                    }
                    eprintln!("pgboxctl: {url}{path}: {status}: {text}");
                    return ExitCode::FAILURE;
                }
                Err(e) => errors.push(format!("{url}: {e}")),
            }
        }
        eprintln!("pgboxctl: no node API answered:\n  {}", errors.join("\n  "));
        ExitCode::FAILURE
    })
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

pub fn history(t: Target) -> ExitCode {
    let urls = match api_urls(&t.where_) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("pgboxctl: {e}");
            return ExitCode::from(2);
        }
    };
    runtime().block_on(async move {
        let client = match t.where_.client(Duration::from_secs(3)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("pgboxctl: {e}");
                return ExitCode::from(2);
            }
        };
        for url in &urls {
            if let Ok(resp) = client.get(format!("{url}/history")).send().await {
                if let Ok(entries) = resp.json::<Vec<Value>>().await {
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
                    return ExitCode::SUCCESS;
                }
            }
        }
        eprintln!("pgboxctl: no node API answered");
        ExitCode::FAILURE
    })
}
