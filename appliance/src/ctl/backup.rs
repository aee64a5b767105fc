//! `pgboxctl backup` and `pgboxctl backups`: the backup node's API
//! (`pgboxd repository`), found from the first-boot file's node with the
//! role `backup`, or given with `--api`.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::list::api_urls_of;
use super::ops::Target;
use crate::config::Role;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn urls(t: &Target) -> Result<Vec<String>, ExitCode> {
    api_urls_of(&t.where_, Role::Backup).map_err(|e| {
        eprintln!("pgboxctl: {e}");
        ExitCode::from(2)
    })
}

/// `pgboxctl backups`: what the repository holds.
pub fn backups(t: Target) -> ExitCode {
    let urls = match urls(&t) {
        Ok(u) => u,
        Err(code) => return code,
    };
    let client = match t.where_.client(Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pgboxctl: {e}");
            return ExitCode::from(2);
        }
    };
    let answer = runtime().block_on(async {
        let mut errors = Vec::new();
        for url in &urls {
            match client.get(format!("{url}/backups")).send().await {
                Ok(resp) => match resp.json::<Value>().await {
                    Ok(doc) => return Ok(doc),
                    Err(e) => errors.push(format!("{url}: {e}")),
                },
                Err(e) => errors.push(format!("{url}: {}", super::list::error_chain(&e))),
            }
        }
        Err(errors)
    });
    let doc = match answer {
        Ok(d) => d,
        Err(errors) => {
            eprintln!(
                "pgboxctl: no backup node API answered:\n  {}",
                errors.join("\n  ")
            );
            return ExitCode::FAILURE;
        }
    };
    if t.where_.json {
        println!("{doc}");
    } else {
        print!("{}", table(&doc));
    }
    ExitCode::SUCCESS
}

/// The repository as a person reads it: one line per backup, then the
/// range a restore can reach and anything wrong.
pub fn table(doc: &Value) -> String {
    let mut out = String::new();
    let repo = &doc["repository"];
    let empty = Vec::new();
    let backups = repo["backups"].as_array().unwrap_or(&empty);
    out.push_str(&format!(
        "{:<36} {:<4} {:<20} {:>6} {:>10} {:>10}\n",
        "LABEL", "TYPE", "FINISHED (UTC)", "SECS", "DATABASE", "STORED"
    ));
    for b in backups {
        let start = b["start"].as_i64().unwrap_or(0);
        let stop = b["stop"].as_i64().unwrap_or(0);
        let mut label = b["label"].as_str().unwrap_or("").to_string();
        if b["error"] == true {
            label.push_str(" (page errors)");
        }
        out.push_str(&format!(
            "{:<36} {:<4} {:<20} {:>6} {:>10} {:>10}\n",
            label,
            b["type"].as_str().unwrap_or(""),
            utc(stop),
            stop - start,
            bytes(b["database_size"].as_u64().unwrap_or(0)),
            bytes(b["repository_size"].as_u64().unwrap_or(0)),
        ));
    }
    if backups.is_empty() {
        out.push_str("(no backup yet)\n");
    }
    if let (Some(first), Some(max)) = (
        backups.iter().find(|b| b["error"] != true),
        repo["archive_max"].as_str(),
    ) {
        out.push_str(&format!(
            "restorable: from {} to the newest archived WAL ({max})\n",
            utc(first["stop"].as_i64().unwrap_or(0))
        ));
    }
    if let Some(running) = doc["running"].as_str() {
        out.push_str(&format!("running now: a {running} backup\n"));
    }
    if doc["stanza_ready"] != true {
        out.push_str(
            "the repository is not ready yet (no stanza: the cluster has not been reached)\n",
        );
    }
    if let Some(e) = doc["last_backup_error"].as_str() {
        out.push_str(&format!("last backup failed: {e}\n"));
    }
    if let Some(e) = doc["last_error"].as_str() {
        out.push_str(&format!("last error: {e}\n"));
    }
    out
}

fn utc(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The lines `pgboxctl list` adds under the members when the file has a
/// backup node: the last good backup and its age, and the leader's WAL
/// archiving (what is waiting, and whether it fails). Empty without one.
pub async fn footer(
    args: &super::list::ListArgs,
    client: &reqwest::Client,
    doc: &super::list::ClusterDoc,
) -> String {
    if args.config.is_none() {
        return String::new();
    }
    // The file's backup node only: `--api` URLs name PostgreSQL nodes here.
    let from_file = super::list::ListArgs {
        api: Vec::new(),
        ..args.clone()
    };
    let Ok(urls) = api_urls_of(&from_file, Role::Backup) else {
        return String::new();
    };
    let mut out = String::new();
    let get = |url: String| async move {
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| super::list::error_chain(&e))?;
        resp.json::<Value>().await.map_err(|e| e.to_string())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match get(format!("{}/backups", urls[0])).await {
        Ok(b) => out.push_str(&backup_line(&b, now)),
        Err(e) => out.push_str(&format!("Backups: the backup node does not answer ({e})\n")),
    }
    let leader = doc.members.iter().find(|m| m.role == "leader");
    if let Some(url) = leader.and_then(|m| m.api_url.clone()) {
        if let Ok(p) = get(url).await {
            out.push_str(&archive_line(&leader.unwrap().name, &p["archive"]));
        }
    }
    out
}

fn age(secs: i64) -> String {
    humantime::format_duration(Duration::from_secs(secs.max(0) as u64)).to_string()
}

fn backup_line(doc: &Value, now: i64) -> String {
    let empty = Vec::new();
    let backups = doc["repository"]["backups"].as_array().unwrap_or(&empty);
    let mut line = match backups.iter().rev().find(|b| b["error"] != true) {
        Some(b) => format!(
            "Backups: last good {} ({}) {} ago, {} kept",
            b["label"].as_str().unwrap_or("?"),
            b["type"].as_str().unwrap_or("?"),
            age(now - b["stop"].as_i64().unwrap_or(now)),
            backups.len()
        ),
        None => "Backups: none yet".to_string(),
    };
    if let Some(e) = doc["last_backup_error"]
        .as_str()
        .or(doc["last_error"].as_str())
    {
        line.push_str(&format!("; FAILING: {e}"));
    }
    line.push('\n');
    line
}

fn archive_line(leader: &str, a: &Value) -> String {
    if a.is_null() {
        return String::new();
    }
    let mut line = format!(
        "Archive: {} segment(s) waiting on {leader}",
        a["pending_segments"].as_u64().unwrap_or(0)
    );
    if let Some(s) = a["since_last_archived"].as_f64() {
        line.push_str(&format!(", last archived {} ago", age(s as i64)));
    }
    if a["failing"] == true {
        line.push_str(&format!(
            "; FAILING (last failed segment {})",
            a["last_failed_wal"].as_str().unwrap_or("?")
        ));
    }
    line.push('\n');
    line
}

/// `pgboxctl backup [--full]`: a backup now; waits for it to finish.
pub fn backup(t: Target, full: bool) -> ExitCode {
    let urls = match urls(&t) {
        Ok(u) => u,
        Err(code) => return code,
    };
    let password = t.password.clone().or_else(|| {
        let path = t.where_.config.as_ref()?;
        crate::config::load(path).ok()?.secrets.api_password
    });
    // A full backup of a big database takes hours.
    let client = match t.where_.client(Duration::from_secs(12 * 3600)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pgboxctl: {e}");
            return ExitCode::from(2);
        }
    };
    let kind = if full { "full" } else { "incr" };
    let url = &urls[0];
    eprintln!("pgboxctl: taking a {kind} backup through {url} (waits until it is done)");
    let answer = runtime().block_on(async {
        let mut req = client
            .post(format!("{url}/backup"))
            .json(&serde_json::json!({ "type": kind }));
        if let Some(p) = &password {
            req = req.basic_auth("pgbox", Some(p));
        }
        let resp = req.send().await.map_err(|e| super::list::error_chain(&e))?;
        let status = resp.status();
        let doc: Value = resp.json().await.unwrap_or(Value::Null);
        Ok::<_, String>((status, doc))
    });
    match answer {
        Ok((status, doc)) if status.is_success() => {
            let b = &doc["backup"];
            println!(
                "backup {} ({}) done: {} of database, {} stored",
                b["label"].as_str().unwrap_or("?"),
                b["type"].as_str().unwrap_or(kind),
                bytes(b["database_size"].as_u64().unwrap_or(0)),
                bytes(b["repository_size"].as_u64().unwrap_or(0)),
            );
            ExitCode::SUCCESS
        }
        Ok((status, doc)) => {
            let msg = doc["error"]
                .as_str()
                .or(doc["message"].as_str())
                .map(String::from)
                .unwrap_or_else(|| doc.to_string());
            eprintln!("pgboxctl: {url}/backup: {status}: {msg}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("pgboxctl: {url}/backup: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_backup_and_the_restorable_range() {
        let doc = serde_json::json!({
            "stanza": "main", "stanza_ready": true, "running": null, "last_error": null,
            "repository": {
                "archive_max": "000000020000000000000009",
                "backups": [
                    {"label": "20261203-170000F", "type": "full", "start": 1796317200, "stop": 1796317210,
                     "database_size": 30750660, "repository_size": 3768644, "error": false},
                    {"label": "20261203-170000F_20261203-171000I", "type": "incr", "start": 1796317800,
                     "stop": 1796317805, "database_size": 30750660, "repository_size": 1200, "error": false}
                ]
            }
        });
        let text = table(&doc);
        assert!(text.contains("20261203-170000F                     full 2026-12-03 17:00:10      10    30.8 MB     3.8 MB"), "{text}");
        assert!(text.contains("incr"), "{text}");
        assert!(text.contains("restorable: from 2026-12-03 17:00:10 to the newest archived WAL (000000020000000000000009)"), "{text}");
        assert!(!text.contains("not ready"), "{text}");
    }

    #[test]
    fn the_list_footer_tells_the_last_backup_and_the_archive() {
        let doc = serde_json::json!({
            "last_error": null,
            "repository": {"backups": [
                {"label": "F1", "type": "full", "stop": 1000, "error": false},
                {"label": "F1_I2", "type": "incr", "stop": 4000, "error": false}
            ]}
        });
        assert_eq!(
            backup_line(&doc, 7600),
            "Backups: last good F1_I2 (incr) 1h ago, 2 kept\n"
        );
        let failing = serde_json::json!({"last_error": "no standby", "repository": null});
        assert_eq!(
            backup_line(&failing, 0),
            "Backups: none yet; FAILING: no standby\n"
        );
        let a = serde_json::json!({"pending_segments": 3, "since_last_archived": 75.0,
            "failing": true, "last_failed_wal": "000000010000000000000007"});
        assert_eq!(
            archive_line("db1", &a),
            "Archive: 3 segment(s) waiting on db1, last archived 1m 15s ago; FAILING (last failed segment 000000010000000000000007)\n"
        );
        assert_eq!(archive_line("db1", &Value::Null), "");
    }

    #[test]
    fn an_empty_repository_says_why() {
        let doc = serde_json::json!({
            "stanza_ready": false, "last_error": "stanza-create failed: no primary",
            "repository": null
        });
        let text = table(&doc);
        assert!(text.contains("(no backup yet)"), "{text}");
        assert!(text.contains("not ready yet"), "{text}");
        assert!(
            text.contains("last error: stanza-create failed: no primary"),
            "{text}"
        );
    }
}
