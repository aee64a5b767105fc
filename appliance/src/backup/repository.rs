//! `pgboxd repository`: the service of the node with the role `backup`.
//!
//! It holds the pgBackRest repository and
//! - runs pgBackRest's TLS server, through which the PostgreSQL nodes push
//!   their WAL (restarted whenever it exits);
//! - creates the stanza once the cluster has a primary, and then takes the
//!   backups the schedule says are due (from a replica when one is
//!   healthy), one at a time;
//! - answers on the API port: `GET /backups` (what the repository holds),
//!   `POST /backup` (a backup now, for `pgboxctl backup`; guarded like the
//!   PostgreSQL nodes' write endpoints) and `GET /metrics`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::conf::{self, Files};
use super::pgbackrest::{self, Kind, PgBackRest, Repository};
use super::schedule;
use crate::config::{BackupSettings, Cidr, Config, Node, Role};
use crate::postgres::RunAs;

/// How often the schedule is looked at (and the stanza retried).
const CHECK_EVERY: Duration = Duration::from_secs(15);
/// The longest a backup may take before it is given up.
const BACKUP_LIMIT: Duration = Duration::from_secs(12 * 3600);

/// What the API shows, refreshed after every look at the repository.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub stanza: String,
    /// The stanza exists (the cluster has been seen and archiving can work).
    pub stanza_ready: bool,
    pub repository: Option<Repository>,
    /// The backup running now, if any.
    pub running: Option<Kind>,
    /// Why the last look at the repository (stanza, info) failed; cleared
    /// by the next look that succeeds.
    pub last_error: Option<String>,
    /// Why the last backup failed; cleared only by a backup that succeeds.
    pub last_backup_error: Option<String>,
    /// Unix seconds of the last look at the repository.
    pub checked_at: Option<i64>,
}

#[derive(Clone)]
struct Service {
    pgbr: Arc<PgBackRest>,
    settings: BackupSettings,
    report: Arc<Mutex<Report>>,
    /// One backup at a time, whoever asks.
    running: Arc<tokio::sync::Mutex<()>>,
    api_password: Option<String>,
    write_allow: Vec<Cidr>,
}

/// Where the PostgreSQL nodes keep pgboxd's data directory: `pattern`
/// with `{node}` replaced by the node's name (the same path on every box
/// of an appliance; a test gives each node its own).
pub fn member_root(pattern: &str, node: &str) -> PathBuf {
    PathBuf::from(pattern.replace("{node}", node))
}

/// Writes pgBackRest's configuration, certificate files and repository
/// directory under `data_dir`; returns how to run pgBackRest here.
pub fn prepare(
    cfg: &Config,
    me: &Node,
    data_dir: &Path,
    member_pattern: &str,
) -> Result<PgBackRest> {
    let Some(b) = &cfg.backup else {
        bail!("the first-boot file has no `backup:` section, so there is no repository to hold");
    };
    if !me.roles.contains(&Role::Backup) {
        bail!("node {} does not have the role `backup`", me.name);
    }
    let bin = pgbackrest::require()?;
    let run_as = RunAs::detect()?;
    let files = Files::under(data_dir);
    pgbackrest::owned_dir(&b.path, run_as, 0o750)?;
    pgbackrest::owned_dir(&files.lock, run_as, 0o750)?;
    pgbackrest::owned_dir(&files.log, run_as, 0o750)?;
    pgbackrest::owned_dir(&files.tls_dir, run_as, 0o700)?;
    for (path, text, mode) in files.tls_contents(b) {
        pgbackrest::owned_file(&path, text, run_as, mode)?;
    }
    let text = conf::backup_node(cfg, b, me, &files, |n| member_root(member_pattern, n));
    pgbackrest::owned_file(&files.conf, &text, run_as, 0o640)?;
    Ok(PgBackRest {
        bin,
        conf: files.conf,
        stanza: conf::stanza(cfg).to_string(),
        run_as,
        passfile: None,
    })
}

/// Runs the service until the process is stopped.
pub async fn run(cfg: Config, me: Node, data_dir: PathBuf, member_pattern: String) -> Result<()> {
    let pgbr = Arc::new(prepare(&cfg, &me, &data_dir, &member_pattern)?);
    let b = cfg.backup.clone().expect("prepare checked it");
    let service = Service {
        pgbr: pgbr.clone(),
        settings: b.clone(),
        report: Arc::new(Mutex::new(Report {
            stanza: pgbr.stanza.clone(),
            ..Report::default()
        })),
        running: Arc::new(tokio::sync::Mutex::new(())),
        api_password: cfg.secrets.api_password.clone(),
        write_allow: crate::api::write_allow_list(&cfg),
    };
    let server = pgbr.clone();
    tokio::spawn(async move { supervise_server(&server).await });
    tokio::spawn(schedule_loop(service.clone()));
    let addr = SocketAddr::new(me.address, cfg.ports.api);
    let tls = match &cfg.api.tls {
        Some(_) => Some(Arc::new(
            crate::tls::server_config(conf::tls(&b)).map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
    crate::api::serve_router(addr, routes(service), tls, std::future::pending()).await
}

/// Keeps `pgbackrest server` running: the PostgreSQL nodes' archive-push
/// (on the backup node) or the backup node's reads (on a PostgreSQL node)
/// go through it.
pub async fn supervise_server(pgbr: &PgBackRest) {
    loop {
        match pgbr.server().spawn() {
            Ok(mut child) => {
                tracing::info!(pid = child.id(), "pgBackRest TLS server started");
                match child.wait().await {
                    Ok(status) => {
                        tracing::warn!(%status, "pgBackRest TLS server exited; starting it again")
                    }
                    Err(e) => tracing::warn!(error = %e, "pgBackRest TLS server: wait failed"),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, bin = %pgbr.bin.display(), "cannot start pgBackRest's TLS server")
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Service {
    fn update(&self, f: impl FnOnce(&mut Report)) {
        let mut r = self.report.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut r);
    }

    fn report(&self) -> Report {
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Looks at the repository, creating the stanza first if it is missing.
    async fn refresh(&self) -> Result<Repository> {
        let mut repo = self.pgbr.info().await?;
        if !repo.stanza_exists() {
            // Needs the cluster's primary: until it is up this fails, and
            // the next look tries again.
            self.pgbr
                .run(&["stanza-create"], Duration::from_secs(300))
                .await?;
            tracing::info!(stanza = %self.pgbr.stanza, "pgBackRest stanza created");
            repo = self.pgbr.info().await?;
        }
        self.update(|r| {
            r.stanza_ready = repo.stanza_exists();
            r.repository = Some(repo.clone());
            r.checked_at = Some(now());
            r.last_error = None;
        });
        Ok(repo)
    }

    /// Takes a backup of `kind` now (after one already running), in a task
    /// of its own: a client that gives up waiting must not kill it.
    async fn backup(&self, kind: Kind) -> Result<Repository> {
        let me = self.clone();
        tokio::spawn(async move {
            let _one = me.running.lock().await;
            me.run_backup(kind).await
        })
        .await
        .context("the backup task")?
    }

    /// The schedule's turn: the backup due, if any and if none is running,
    /// decided on a fresh look taken while holding the turn.
    async fn scheduled(&self) {
        let Ok(_one) = self.running.try_lock() else {
            return;
        };
        let repo = match self.refresh().await {
            Ok(repo) => repo,
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::warn!(error = %msg, "the repository is not ready");
                self.update(|r| r.last_error = Some(msg));
                return;
            }
        };
        let b = &self.settings;
        if let Some(kind) = schedule::due(&repo, now(), b.full_every, b.incremental_every) {
            if let Err(e) = self.run_backup(kind).await {
                tracing::warn!(error = %format!("{e:#}"), kind = kind.as_str(), "scheduled backup failed");
            }
        }
    }

    /// Runs a backup; the caller holds `running`.
    async fn run_backup(&self, kind: Kind) -> Result<Repository> {
        self.update(|r| r.running = Some(kind));
        let result = self.backup_locked(kind).await;
        self.update(|r| {
            r.running = None;
            r.last_backup_error = result.as_ref().err().map(|e| format!("{e:#}"));
        });
        result
    }

    async fn backup_locked(&self, kind: Kind) -> Result<Repository> {
        let started = now();
        let type_arg = format!("--type={}", kind.as_str());
        tracing::info!(kind = kind.as_str(), "backup starting");
        let from_standby = self.pgbr.run(&[&type_arg, "backup"], BACKUP_LIMIT).await;
        if let Err(e) = from_standby {
            // No healthy replica: the primary is the only source left, and
            // a backup from it beats none.
            // pgBackRest's words up to 2.53 (2.54 added `prefer`).
            if !format!("{e:#}").contains("unable to find standby cluster") {
                return Err(e);
            }
            tracing::warn!("no standby to back up from: backing up the primary");
            self.pgbr
                .run(&[&type_arg, "--no-backup-standby", "backup"], BACKUP_LIMIT)
                .await?;
        }
        let repo = self.refresh().await?;
        let label = repo.last().map(|b| b.label.clone()).unwrap_or_default();
        tracing::info!(kind = kind.as_str(), %label, seconds = now() - started, "backup done");
        Ok(repo)
    }
}

async fn schedule_loop(service: Service) {
    loop {
        service.scheduled().await;
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

fn routes(service: Service) -> Router {
    Router::new()
        .route("/backups", get(list))
        .route("/backup", post(take))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { StatusCode::OK }))
        // The only body is `{"type": "full"}`: nothing big is read before
        // the source and the password are checked.
        .layer(axum::extract::DefaultBodyLimit::max(1024))
        .with_state(service)
}

async fn list(State(s): State<Service>) -> Json<Report> {
    Json(s.report())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TakeRequest {
    #[serde(rename = "type", default)]
    kind: Option<Kind>,
}

async fn take(
    State(s): State<Service>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !crate::api::auth::source_allowed(Some(peer.ip()), &s.write_allow) {
        return crate::api::json_error(
            StatusCode::FORBIDDEN,
            format!("{} may not ask for a backup: only the cluster's nodes, this box and api.allow_writes_from may", peer.ip().to_canonical()),
        );
    }
    if let Err(resp) = crate::api::auth::check(&headers, s.api_password.as_deref()) {
        return resp;
    }
    let req: TakeRequest = if body.is_empty() {
        TakeRequest::default()
    } else {
        match crate::api::parse_object(&body, r#"{"type": "full"}"#) {
            Ok(r) => r,
            Err(e) => return crate::api::json_error(StatusCode::BAD_REQUEST, e),
        }
    };
    let kind = req.kind.unwrap_or(Kind::Incr);
    match s.backup(kind).await {
        Ok(repo) => (
            StatusCode::OK,
            Json(serde_json::json!({
                "backup": repo.last(),
                "repository": repo,
            })),
        )
            .into_response(),
        Err(e) => crate::api::json_error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

/// Prometheus text: the age of the last good backup and of the last full
/// one, the repository's size and whether the last step failed.
async fn metrics(State(s): State<Service>) -> Response {
    let r = s.report();
    let mut out = String::new();
    let now = now();
    let mut gauge = |name: &str, help: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    };
    let repo = r.repository.clone().unwrap_or_default();
    let age = |b: Option<&pgbackrest::Backup>| {
        b.map(|b| (now - b.stop).max(0).to_string())
            .unwrap_or_else(|| "NaN".into())
    };
    gauge(
        "pgbox_backup_last_age_seconds",
        "Seconds since the last good backup of any kind ended (NaN: none).",
        age(repo.last()),
    );
    gauge(
        "pgbox_backup_last_full_age_seconds",
        "Seconds since the last good full backup ended (NaN: none).",
        age(repo.last_full()),
    );
    gauge(
        "pgbox_backup_count",
        "Backups the repository holds.",
        repo.backups.len().to_string(),
    );
    gauge(
        "pgbox_backup_repository_bytes",
        "What the backups the repository holds take in it (WAL not counted).",
        repo.backups
            .iter()
            .map(|b| b.repository_size)
            .sum::<u64>()
            .to_string(),
    );
    gauge(
        "pgbox_backup_failing",
        "1 while the last backup, or the last look at the repository, failed.",
        ((r.last_error.is_some() || r.last_backup_error.is_some()) as u8).to_string(),
    );
    gauge(
        "pgbox_backup_running",
        "1 while a backup runs.",
        (r.running.is_some() as u8).to_string(),
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response()
}
