//! The local PostgreSQL: pgboxd runs it as its own child process and is the
//! only thing that starts, stops, promotes, rewinds or clones it.

pub mod conf;
pub mod fence;
mod health;
pub mod layout;
mod restore;
pub mod template;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

pub use conf::Upstream;
pub use health::{connection as local_connection, runs_as_primary, Health};
pub use layout::{Bins, Layout, RunAs};

use crate::config::{Config, Node};

pub struct Postgres {
    cfg: Config,
    me: Node,
    pub layout: Layout,
    bins: Bins,
    run_as: Option<RunAs>,
    child: Option<Child>,
    /// The member the running server's primary_conninfo names.
    upstream: Option<String>,
    /// synchronous_standby_names as last written (a primary's only).
    sync_names: String,
    health: health::Checker,
    /// The `postgres.parameters` postgresql.conf was last written with
    /// (None: not since pgboxd started), so that a change of the
    /// cluster-wide parameters (`set_parameters`) is known to need a reload.
    rendered:
        std::sync::Mutex<Option<std::collections::BTreeMap<String, crate::config::ParamValue>>>,
    /// Set by a restore from the backup repository until the first start
    /// has replayed the archive (restore.rs).
    restore_target: Option<crate::config::RestoreTarget>,
}

/// What `pg_controldata` says about a stopped data directory.
#[derive(Debug, Clone)]
pub struct ControlData {
    pub system_id: String,
    /// "in production", "shut down", "shut down in recovery", ...
    pub state: String,
    pub timeline: Option<u32>,
    /// "Latest checkpoint location".
    pub checkpoint: Option<u64>,
    /// A `backup_label` is there: a base backup that has never been
    /// started. Its control file is the primary's copy ("in production"),
    /// which says nothing about this directory's own past.
    pub unstarted_clone: bool,
}

impl ControlData {
    /// A primary's clean shutdown: its last record is the shutdown
    /// checkpoint.
    pub fn clean_stop(&self) -> Option<crate::ha::CleanStop> {
        (self.state == "shut down" && !self.unstarted_clone).then_some(())?;
        Some(crate::ha::CleanStop {
            timeline: self.timeline?,
            checkpoint: self.checkpoint?,
        })
    }

    /// The server last ran as a primary: it was not in recovery when it
    /// stopped or crashed. A clone that never started never ran at all:
    /// taking it for a crashed primary would send it through pg_rewind,
    /// whose crash recovery writes WAL the leader never had, and the clone
    /// could then never stream (seen on real PostgreSQL 15).
    pub fn was_primary(&self) -> bool {
        !self.unstarted_clone && matches!(self.state.as_str(), "in production" | "shut down")
    }
}

/// A PostgreSQL program with a clean environment, run as PostgreSQL's user
/// when pgboxd is root.
pub(crate) fn tool_command(bins: &Bins, run_as: Option<RunAs>, program: &str) -> Command {
    let mut cmd = Command::new(bins.get(program));
    cmd.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bins.dir.display()))
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null());
    if let Some(r) = run_as {
        cmd.uid(r.uid).gid(r.gid);
    }
    cmd
}

/// The options every data directory is made with, on the box or as the
/// image's template: checksums (pg_rewind needs them or wal_log_hints),
/// SCRAM only, UTF-8 with the C.UTF-8 locale every box has.
pub(crate) fn initdb_args(pgdata: &str, superuser: &str, pw_arg: &str) -> Vec<String> {
    [
        "-D",
        pgdata,
        "-U",
        superuser,
        pw_arg,
        "--auth=scram-sha-256",
        "--data-checksums",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

impl Postgres {
    pub fn new(cfg: Config, me: Node, layout: Layout) -> Result<Self> {
        let bins = Bins::locate()?;
        let run_as = RunAs::detect()?;
        let health = health::Checker::new(&cfg, &layout);
        Ok(Postgres {
            cfg,
            me,
            layout,
            bins,
            run_as,
            child: None,
            upstream: None,
            sync_names: String::new(),
            health,
            rendered: std::sync::Mutex::new(None),
            restore_target: None,
        })
    }

    /// The extra parameters from now on (the cluster-wide ones in the DCS
    /// `config` key); written at the next start or `reload`.
    pub fn set_parameters(
        &mut self,
        parameters: std::collections::BTreeMap<String, crate::config::ParamValue>,
    ) {
        self.cfg.postgres.parameters = parameters;
    }

    /// The running configuration files say other parameters than
    /// `set_parameters` last gave.
    pub fn parameters_pending(&self) -> bool {
        let rendered = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        rendered
            .as_ref()
            .is_some_and(|r| *r != self.cfg.postgres.parameters)
    }

    pub fn upstream(&self) -> Option<&str> {
        self.upstream.as_deref()
    }

    /// Create the directories pgboxd needs, owned by the user PostgreSQL
    /// runs as. Called only after the first-boot file validated.
    pub fn prepare_dirs(&self) -> Result<()> {
        // The root stays root's and only traversable by others: etcd keeps
        // its data beside PostgreSQL's on the same partition, as its own user.
        std::fs::create_dir_all(&self.layout.root)
            .with_context(|| format!("creating {}", self.layout.root.display()))?;
        let root_mode = if self.run_as.is_some() { 0o711 } else { 0o700 };
        std::fs::set_permissions(
            &self.layout.root,
            std::fs::Permissions::from_mode(root_mode),
        )?;
        self.make_private_dir(&self.layout.socket_dir)?;
        self.write_owned(&self.layout.passfile, &conf::pgpass(&self.cfg))?;
        Ok(())
    }

    /// With `backup:` in the file: pgBackRest's configuration and
    /// certificate for this node, and how to run its TLS server (which the
    /// backup node reads this node's data through).
    pub fn prepare_backup(&self) -> Result<Option<crate::backup::pgbackrest::PgBackRest>> {
        use crate::backup::{conf as br, pgbackrest};
        let Some(b) = &self.cfg.backup else {
            return Ok(None);
        };
        let bin = pgbackrest::require()?;
        let files = br::Files::under(&self.layout.root);
        pgbackrest::owned_dir(&files.lock, self.run_as, 0o750)?;
        pgbackrest::owned_dir(&files.log, self.run_as, 0o750)?;
        pgbackrest::owned_dir(&files.tls_dir, self.run_as, 0o700)?;
        for (path, text, mode) in files.tls_contents(b) {
            pgbackrest::owned_file(&path, text, self.run_as, mode)?;
        }
        let text = br::postgres_node(&self.cfg, b, &self.me, &self.layout.root, &files);
        pgbackrest::owned_file(&files.conf, &text, self.run_as, 0o640)?;
        Ok(Some(self.pgbackrest(bin)))
    }

    fn pgbackrest(&self, bin: std::path::PathBuf) -> crate::backup::pgbackrest::PgBackRest {
        crate::backup::pgbackrest::PgBackRest {
            bin,
            conf: crate::backup::conf::Files::under(&self.layout.root).conf,
            stanza: crate::backup::conf::stanza(&self.cfg).to_string(),
            run_as: self.run_as,
            passfile: Some(self.layout.passfile.clone()),
        }
    }

    /// Right after a promotion, with archiving on: push the older
    /// timelines' segments this server streamed, which the old primary may
    /// have died without archiving (`backup::catch_up`). In the background:
    /// the new primary serves at once.
    async fn archive_what_the_old_primary_may_not_have(&mut self) -> Result<()> {
        use crate::backup::{catch_up, pgbackrest};
        if self.cfg.backup.is_none() {
            return Ok(());
        }
        let client = self.health.client().await?;
        let row = client
            .query_one(
                "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int",
                &[],
            )
            .await
            .context("the new timeline")?;
        let timeline = row.get::<_, i32>(0) as u32;
        let history = std::fs::read_to_string(self.history_file(timeline))
            .with_context(|| format!("reading the history file of timeline {timeline}"))?;
        let forks = parse_history(&history);
        let pg_wal = self.layout.pgdata.join("pg_wal");
        let names: Vec<String> = std::fs::read_dir(&pg_wal)
            .with_context(|| format!("listing {}", pg_wal.display()))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        let segments = catch_up::segments_to_push(&names, &forks);
        if segments.is_empty() {
            return Ok(());
        }
        let pgbr = self.pgbackrest(pgbackrest::require()?);
        tokio::spawn(async move {
            let (done, failed) = catch_up::push(&pgbr, &pg_wal, &segments).await;
            if failed.is_empty() {
                tracing::info!(
                    segments = done,
                    timeline,
                    "older timelines' segments archived after the promotion"
                );
            } else {
                tracing::warn!(
                    archived = done,
                    failed = failed.len(),
                    first = %failed[0],
                    "some older timelines' segments could not be archived after the promotion"
                );
            }
        });
        Ok(())
    }

    /// An empty-or-existing directory owned by PostgreSQL's user, mode 0700:
    /// initdb and pg_basebackup fill it (the parent is not theirs to write).
    fn make_private_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        if let Some(r) = self.run_as {
            r.chown(dir)?;
        }
        Ok(())
    }

    /// Write a file readable only by PostgreSQL's user.
    fn write_owned(&self, path: &Path, text: &str) -> Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        if let Some(r) = self.run_as {
            r.chown(&tmp)?;
        }
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = tool_command(&self.bins, self.run_as, program);
        cmd.env("PGPASSFILE", &self.layout.passfile);
        cmd
    }

    /// Run a PostgreSQL tool to completion; its output goes to the log.
    async fn run_tool(&self, program: &str, args: &[&str], limit: Duration) -> Result<()> {
        let mut cmd = self.command(program);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let out = tokio::time::timeout(limit, cmd.output())
            .await
            .map_err(|_| anyhow!("{program} did not finish within {limit:?}"))?
            .with_context(|| format!("running {program}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            tracing::info!(target: "pgbox::postgres", "{program}: {line}");
        }
        if !out.status.success() {
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            bail!(
                "{program} failed ({}): {}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            );
        }
        tracing::info!(
            "{program} finished in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    pub async fn control_data(&self) -> Result<Option<ControlData>> {
        if !self.layout.is_initialized() {
            return Ok(None);
        }
        let out = self
            .command("pg_controldata")
            .arg("-D")
            .arg(&self.layout.pgdata)
            .output()
            .await
            .context("running pg_controldata")?;
        if !out.status.success() {
            bail!(
                "pg_controldata failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(name)
                    .map(|v| v.trim_start_matches(':').trim().to_string())
            })
        };
        Ok(Some(ControlData {
            system_id: field("Database system identifier").unwrap_or_default(),
            state: field("Database cluster state").unwrap_or_default(),
            timeline: field("Latest checkpoint's TimeLineID").and_then(|v| v.parse().ok()),
            checkpoint: field("Latest checkpoint location")
                .and_then(|v| crate::dcs::model::parse_lsn(&v)),
            // PostgreSQL 15 has no exclusive backups: only a base backup
            // leaves this file in PGDATA, and the first start removes it.
            unstarted_clone: self.layout.pgdata.join("backup_label").exists(),
        }))
    }

    /// initdb with data checksums (pg_rewind needs them or wal_log_hints)
    /// and the superuser password from the first-boot file.
    pub async fn initdb(&self) -> Result<()> {
        // Into a staging directory, moved into place only when complete: a
        // pgboxd killed in the middle must never find a half-made data
        // directory and start it.
        let staging = self.layout.staging();
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("removing {}", staging.display()))?;
        }
        self.make_private_dir(&staging)?;
        let result = match self.usable_template().await {
            Some(t) => self.init_from_template(&t, &staging).await,
            None => self.run_initdb(&staging).await,
        };
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        if self.layout.pgdata.exists() {
            bail!(
                "{} appeared during initdb; not replacing it",
                self.layout.pgdata.display()
            );
        }
        std::fs::rename(&staging, &self.layout.pgdata)
            .context("moving the new data directory into place")?;
        Ok(())
    }

    /// The image's data directory template, when it can stand in for
    /// `initdb` on this box (see template.rs); says why when it cannot.
    async fn usable_template(&self) -> Option<template::Template> {
        let dir = template::configured_dir()?;
        let t = match template::read(&dir) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "ignoring the data directory template; running initdb");
                return None;
            }
        };
        let major = match self.server_major().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot tell the server's version; running initdb");
                return None;
            }
        };
        if let Some(why) = template::mismatch(&t, &self.cfg.postgres.superuser, &major) {
            tracing::info!(
                "not using the data directory template in {}: {why}; running initdb",
                dir.display()
            );
            return None;
        }
        Some(t)
    }

    /// The server's major version, as PG_VERSION spells it ("17").
    async fn server_major(&self) -> Result<String> {
        let out = self
            .command("postgres")
            .arg("-V")
            .output()
            .await
            .context("running postgres -V")?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "postgres (PostgreSQL) 17.12 (Debian 17.12-1)"
        let version = text
            .split_whitespace()
            .nth(2)
            .with_context(|| format!("unexpected `postgres -V` output {text:?}"))?;
        Ok(version.split('.').next().unwrap_or(version).to_string())
    }

    /// Copy the template, then give the superuser the first-boot file's
    /// password through a single-user backend: no server listens meanwhile,
    /// and nothing about the password reaches a log.
    async fn init_from_template(&self, t: &template::Template, staging: &Path) -> Result<()> {
        let started = Instant::now();
        let sql = template::set_password_sql(&t.superuser, &self.cfg.secrets.superuser_password)
            .context("the superuser password cannot be set through a single-user backend")?;
        template::copy_into(t, staging, self.run_as)?;
        let mut cmd = self.command("postgres");
        cmd.arg("--single")
            .arg("-j")
            .arg("-D")
            .arg(staging)
            // An error must not echo the statement (it holds the password).
            .args([
                "-c",
                "log_min_error_statement=panic",
                "-c",
                "exit_on_error=on",
            ])
            .arg(&t.superuser)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting a single-user backend")?;
        let mut stdin = child.stdin.take().context("single-user backend stdin")?;
        use tokio::io::AsyncWriteExt;
        stdin
            .write_all(sql.as_bytes())
            .await
            .context("writing to the single-user backend")?;
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
            .await
            .map_err(|_| anyhow!("the single-user backend did not finish within 300 s"))?
            .context("waiting for the single-user backend")?;
        let errors: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("FATAL") || l.contains("PANIC"))
            .map(str::to_string)
            .collect();
        if !out.status.success() || !errors.is_empty() {
            bail!(
                "setting the superuser password in the template copy failed ({}): {}",
                out.status,
                errors.join(" / ")
            );
        }
        tracing::info!(
            "data directory copied from the image's template {} and the superuser password set in {:.1} s (no initdb)",
            t.dir.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    async fn run_initdb(&self, staging: &Path) -> Result<()> {
        let pwfile = self.layout.root.join("initdb.pw");
        self.write_owned(&pwfile, &self.cfg.secrets.superuser_password)?;
        let pgdata = staging.to_string_lossy().to_string();
        let pw_arg = format!("--pwfile={}", pwfile.display());
        let args = initdb_args(&pgdata, &self.cfg.postgres.superuser, &pw_arg);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = self
            .run_tool("initdb", &args, Duration::from_secs(600))
            .await;
        let _ = std::fs::remove_file(&pwfile);
        result
    }

    /// Clone the data directory from `from` into a staging directory, then
    /// move it into place.
    pub async fn base_backup(&self, from: &Upstream) -> Result<()> {
        let staging = self.layout.staging();
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("removing {}", staging.display()))?;
        }
        self.make_private_dir(&staging)?;
        let host = from.address.to_string();
        let port = from.port.to_string();
        let dir = staging.to_string_lossy().to_string();
        let res = self
            .run_tool(
                "pg_basebackup",
                &[
                    "-D",
                    &dir,
                    "-h",
                    &host,
                    "-p",
                    &port,
                    "-U",
                    &self.cfg.postgres.replication_user,
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "-w",
                ],
                Duration::from_secs(3600),
            )
            .await;
        if let Err(e) = res {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e.context(format!("cloning from {}", from.name)));
        }
        if self.layout.pgdata.exists() {
            bail!(
                "{} appeared while cloning; not replacing it",
                self.layout.pgdata.display()
            );
        }
        std::fs::rename(&staging, &self.layout.pgdata).context("moving the clone into place")?;
        Ok(())
    }

    pub async fn rewind(&self, from: &Upstream) -> Result<()> {
        let pgdata = self.layout.pgdata.to_string_lossy().to_string();
        let source = format!(
            "--source-server={}",
            conf::superuser_conninfo(&self.cfg, from, &self.layout.passfile.to_string_lossy())
        );
        // pg_rewind needs a postgresql.conf that lets single-user crash
        // recovery run (pg_rewind performs it itself when the old primary
        // died uncleanly).
        self.write_config(None)?;
        // A just-promoted primary records its new timeline in its control
        // file only at its first checkpoint, which PostgreSQL runs lazily;
        // until then pg_rewind would read "same timeline, no rewind
        // required" and leave this node unable to follow. Force it.
        self.checkpoint_remote(from)
            .await
            .context("CHECKPOINT on the rewind source")?;
        tracing::info!(source = %from.name, "running pg_rewind against {}", from.name);
        self.run_tool(
            "pg_rewind",
            &["-D", &pgdata, &source, "--progress"],
            Duration::from_secs(3600),
        )
        .await
    }

    fn history_file(&self, timeline: u32) -> std::path::PathBuf {
        self.layout
            .pgdata
            .join("pg_wal")
            .join(format!("{timeline:08X}.history"))
    }

    /// The timeline a promotion opens: PostgreSQL probes for history files
    /// upwards from the timeline it follows and takes the first number that
    /// has none (the archive is not consulted: pgbox sets no restore_command).
    pub fn next_timeline(&self, mine: u32) -> u32 {
        let mut t = mine + 1;
        while self.history_file(t).exists() {
            t += 1;
        }
        t
    }

    /// A placeholder history file for each timeline from the next one up to
    /// `target` (exclusive), so that a promotion opens `target`. The file
    /// holds only a comment: a standby that scans for a newer timeline
    /// finds that it is not a child of its own and ignores it, and one that
    /// fetches every history file between its timeline and the primary's
    /// finds it on the primary.
    pub fn skip_timelines(&self, mine: u32, target: u32) -> Result<()> {
        let mut t = self.next_timeline(mine);
        while t < target {
            self.write_owned(
                &self.history_file(t),
                "# timeline reserved by a pgbox promotion that did not record it; no server runs on it\n",
            )?;
            t += 1;
        }
        Ok(())
    }

    /// Move PGDATA aside for a reinitialize (an earlier set-aside copy,
    /// left by a reinitialize that pgboxd did not see through, goes first).
    pub fn set_aside_data(&self) -> Result<()> {
        let aside = self.layout.set_aside();
        if aside.exists() {
            std::fs::remove_dir_all(&aside)
                .with_context(|| format!("removing {}", aside.display()))?;
        }
        if self.layout.pgdata.exists() {
            std::fs::rename(&self.layout.pgdata, &aside).with_context(|| {
                format!(
                    "moving {} aside to {}",
                    self.layout.pgdata.display(),
                    aside.display()
                )
            })?;
        }
        Ok(())
    }

    pub fn restore_set_aside(&self) -> Result<()> {
        let aside = self.layout.set_aside();
        if !aside.exists() {
            return Ok(());
        }
        if self.layout.pgdata.exists() {
            bail!(
                "{} exists; not putting {} back over it",
                self.layout.pgdata.display(),
                aside.display()
            );
        }
        std::fs::rename(&aside, &self.layout.pgdata)
            .with_context(|| format!("putting {} back", aside.display()))
    }

    pub fn drop_set_aside(&self) -> Result<()> {
        let aside = self.layout.set_aside();
        if aside.exists() {
            std::fs::remove_dir_all(&aside)
                .with_context(|| format!("removing {}", aside.display()))?;
        }
        Ok(())
    }

    /// Write the configuration files again (the parameters as last set,
    /// the same upstream and synchronous standby names) and have the
    /// server read them: `pg_reload_conf()`.
    pub async fn reload(&mut self) -> Result<()> {
        let upstream = self
            .upstream
            .as_deref()
            .and_then(|name| conf::upstream_of(&self.cfg, name));
        self.write_config(upstream.as_ref())?;
        let client = self.health.client().await?;
        client
            .execute("SELECT pg_reload_conf()", &[])
            .await
            .context("pg_reload_conf")?;
        Ok(())
    }

    pub fn remove_data(&self) -> Result<()> {
        if self.layout.pgdata.exists() {
            std::fs::remove_dir_all(&self.layout.pgdata)
                .with_context(|| format!("removing {}", self.layout.pgdata.display()))?;
        }
        Ok(())
    }

    fn write_config(&self, upstream: Option<&Upstream>) -> Result<()> {
        let text = conf::postgresql_conf(
            &self.cfg,
            &self.me,
            &self.layout.socket_dir.to_string_lossy(),
            &self.layout.passfile.to_string_lossy(),
            upstream,
            &self.sync_names,
        );
        let mut text = text;
        if let Some(b) = &self.cfg.backup {
            use std::fmt::Write as _;
            text.push_str("# WAL archiving to the backup node (pgbox.yaml backup:)\n");
            let files = crate::backup::conf::Files::under(&self.layout.root);
            for (k, v) in crate::backup::conf::archive_parameters(&self.cfg, b, &files) {
                let _ = writeln!(text, "{k} = {v}");
            }
        }
        text.push_str(&self.recovery_settings());
        self.write_owned(&self.layout.pgdata.join("postgresql.conf"), &text)?;
        self.write_owned(
            &self.layout.pgdata.join("pg_hba.conf"),
            &conf::pg_hba_conf(&self.cfg),
        )?;
        // pgbox never uses ALTER SYSTEM; a copy from another member
        // (base backup, rewind) must not override the settings above.
        self.write_owned(&self.layout.pgdata.join("postgresql.auto.conf"), "")?;
        *self.rendered.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(self.cfg.postgres.parameters.clone());
        Ok(())
    }

    /// Start the server. `standby`: `None` = primary, `Some(None)` = a
    /// read-only standby with no upstream, `Some(Some(u))` = streaming from u.
    pub async fn start(&mut self, standby: Option<Option<Upstream>>) -> Result<()> {
        if self.is_running() {
            bail!("PostgreSQL is already running");
        }
        let upstream = standby.clone().flatten();
        if standby.is_some() {
            // A standby that is later promoted must not wait for a standby
            // chosen by an earlier primary: start from "nobody"; the HA
            // loop names the synchronous standby once one streams.
            self.sync_names = String::new();
        }
        self.write_config(upstream.as_ref())?;
        let signal = self.layout.pgdata.join("standby.signal");
        if standby.is_some() {
            self.write_owned(&signal, "")?;
        } else if signal.exists() {
            std::fs::remove_file(&signal)?;
        }
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(&self.layout.pgdata)
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        // A postmaster that outlives pgboxd would go on accepting writes
        // with nobody renewing its lease: once the lease expires, another
        // member is promoted. If pgboxd dies, the server shuts down at once.
        // SAFETY: the closure only makes one async-signal-safe system call.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGQUIT).map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().context("starting postgres")?;
        tracing::info!(
            pid = child.id(),
            "postgres started as {}",
            match &standby {
                None => "primary".to_string(),
                Some(None) => "read-only standby".to_string(),
                Some(Some(u)) => format!("standby of {}", u.name),
            }
        );
        self.child = Some(child);
        self.upstream = upstream.map(|u| u.name);
        self.health.reset();
        self.wait_ready(Duration::from_secs(120)).await?;
        self.finish_recovery().await
    }

    /// Wait until postmaster.pid says ready (primary) or standby (accepting
    /// read-only connections), or the server exits.
    async fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let pidfile = self.layout.pgdata.join("postmaster.pid");
        loop {
            if !self.is_running() {
                bail!("postgres exited during start-up (see its log lines above)");
            }
            if let Ok(text) = std::fs::read_to_string(&pidfile) {
                if let Some(status) = text.lines().nth(7) {
                    if matches!(status.trim(), "ready" | "standby") {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("postgres did not accept connections within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// True while the postmaster child lives. Reaps it when it has exited.
    pub fn is_running(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                tracing::warn!(%status, "postgres exited");
                self.child = None;
                self.upstream = None;
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot query the postgres process");
                true
            }
        }
    }

    /// Fast shutdown (clients disconnected, all WAL sent to connected
    /// standbys), escalating to immediate if it hangs.
    pub async fn stop(&mut self) -> Result<()> {
        self.stop_with(|| {}).await
    }

    /// `stop`, calling `accepted` as soon as the postmaster has accepted
    /// the shutdown request (postmaster.pid says "stopping", or it is
    /// gone): from then on it accepts no connection and its backends,
    /// terminated, acknowledge no new commit. A postmaster that does not
    /// react (frozen) never gets `accepted` called.
    pub async fn stop_with(&mut self, accepted: impl FnOnce()) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            accepted();
            return Ok(());
        };
        self.upstream = None;
        self.health.reset();
        let pid = Pid::from_raw(child.id().unwrap_or(0) as i32);
        let _ = kill(pid, Signal::SIGINT);
        let pidfile = self.layout.pgdata.join("postmaster.pid");
        let mut accepted = Some(accepted);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let exited = loop {
            if accepted.is_some() && postmaster_status(&pidfile).as_deref() == Some("stopping") {
                tracing::info!("postgres accepted the shutdown request");
                (accepted.take().unwrap())();
            }
            let poll = if accepted.is_some() { 10 } else { 500 };
            let until = deadline.min(tokio::time::Instant::now() + Duration::from_millis(poll));
            match tokio::time::timeout_at(until, child.wait()).await {
                Ok(_) => break true,
                Err(_) if tokio::time::Instant::now() >= deadline => break false,
                Err(_) => {}
            }
        };
        if !exited {
            tracing::warn!("postgres did not stop within 60 s; immediate shutdown");
            let _ = kill(pid, Signal::SIGQUIT);
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        // Gone now, whether or not it said so first.
        if let Some(f) = accepted.take() {
            f();
        }
        tracing::info!("postgres stopped");
        Ok(())
    }

    /// A postmaster left running by an earlier pgboxd (not our child) would
    /// hold the port and the data directory: stop it before taking over.
    pub async fn stop_stray(&self) -> Result<()> {
        let pidfile = self.layout.pgdata.join("postmaster.pid");
        let Ok(text) = std::fs::read_to_string(&pidfile) else {
            return Ok(());
        };
        let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
        else {
            return Ok(());
        };
        let pid = Pid::from_raw(pid);
        if kill(pid, None).is_err() {
            return Ok(());
        }
        tracing::warn!(
            pid = pid.as_raw(),
            "stopping a postmaster left by an earlier run"
        );
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(60);
        while kill(pid, None).is_ok() {
            if Instant::now() > deadline {
                let _ = kill(pid, Signal::SIGQUIT);
                bail!("postmaster {pid} left by an earlier run does not stop");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    pub async fn health(&mut self) -> Health {
        if !self.is_running() {
            return Health::default();
        }
        let mut h = self.health.check().await;
        if let Some(tl) = h.timeline.filter(|t| *t > 1) {
            // A standby keeps the history file of every timeline it
            // received (the WAL receiver fetches it), a primary the one
            // of the timeline it opened. Unreadable: no forks known, so
            // no position on an older timeline counts as held.
            h.forks = std::fs::read_to_string(self.history_file(tl))
                .map(|text| parse_history(&text))
                .unwrap_or_default();
        }
        h
    }

    pub async fn promote(&mut self) -> Result<()> {
        let client = self.health.client().await?;
        let row = client
            .query_one("SELECT pg_promote(true, 60)", &[])
            .await
            .context("pg_promote")?;
        if !row.get::<_, bool>(0) {
            bail!("pg_promote did not finish within 60 s");
        }
        self.upstream = None;
        // The standby.signal is gone now; keep the file consistent with that
        // for the next start.
        self.write_config(None)?;
        if let Err(e) = self.archive_what_the_old_primary_may_not_have().await {
            tracing::warn!(error = %format!("{e:#}"), "cannot archive the older timelines' segments after the promotion");
        }
        Ok(())
    }

    /// Point a running standby at a new upstream: primary_conninfo is
    /// reloadable, so no restart.
    pub async fn follow(&mut self, up: &Upstream) -> Result<()> {
        self.write_config(Some(up))?;
        let client = self.health.client().await?;
        client
            .execute("SELECT pg_reload_conf()", &[])
            .await
            .context("pg_reload_conf")?;
        self.upstream = Some(up.name.clone());
        Ok(())
    }

    /// synchronous_standby_names for the next start as primary.
    pub fn set_sync_names_for_start(&mut self, names: &str) {
        self.sync_names = names.to_string();
    }

    /// Change synchronous_standby_names on the running primary (reload).
    pub async fn set_sync_names(&mut self, names: &str) -> Result<()> {
        self.sync_names = names.to_string();
        self.write_config(None)?;
        let client = self.health.client().await?;
        client
            .execute("SELECT pg_reload_conf()", &[])
            .await
            .context("pg_reload_conf")?;
        // The reload is asynchronous: wait until the server applies it, so
        // the next step (the sync key) never runs ahead of PostgreSQL.
        for _ in 0..100 {
            let row = client
                .query_one("SELECT current_setting('synchronous_standby_names')", &[])
                .await?;
            if row.get::<_, String>(0) == names {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("PostgreSQL did not apply synchronous_standby_names = {names:?} within 2 s")
    }

    async fn checkpoint_remote(&self, on: &Upstream) -> Result<()> {
        let mut c = tokio_postgres::Config::new();
        c.host(on.address.to_string())
            .port(on.port)
            .user(&self.cfg.postgres.superuser)
            .password(self.cfg.secrets.superuser_password.as_bytes())
            .dbname("postgres")
            .application_name("pgboxd-rewind")
            .connect_timeout(Duration::from_secs(5));
        let (client, conn) = c.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        tokio::time::timeout(Duration::from_secs(120), client.batch_execute("CHECKPOINT"))
            .await
            .map_err(|_| anyhow!("CHECKPOINT did not finish within 120 s"))??;
        Ok(())
    }

    pub async fn checkpoint(&mut self) -> Result<()> {
        let client = self.health.client().await?;
        client
            .batch_execute("CHECKPOINT")
            .await
            .context("CHECKPOINT")
    }

    /// Create roles and the application database after initdb.
    pub async fn create_roles(&mut self) -> Result<()> {
        let p = self.cfg.postgres.clone();
        let s = self.cfg.secrets.clone();
        let client = self.health.client().await?;
        // A cluster restored from a backup has them already: then the
        // passwords of the file are set on them.
        for (role, attributes, password) in [
            (
                &p.replication_user,
                "REPLICATION LOGIN",
                &s.replication_password,
            ),
            (&p.app_user, "LOGIN", &s.app_password),
        ] {
            let exists = client
                .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[role])
                .await
                .context("looking up roles")?
                .is_some();
            let verb = if exists { "ALTER" } else { "CREATE" };
            client
                .batch_execute(&format!(
                    "{verb} ROLE {} WITH {attributes} PASSWORD {}",
                    ident(role),
                    literal(password)
                ))
                .await
                .with_context(|| format!("{verb} ROLE {role}"))?;
        }
        let has_database = client
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&p.database],
            )
            .await
            .context("looking up databases")?
            .is_some();
        if !has_database {
            client
                .batch_execute(&format!(
                    "CREATE DATABASE {} OWNER {}",
                    ident(&p.database),
                    ident(&p.app_user)
                ))
                .await
                .context("creating the application database")?;
        }
        Ok(())
    }

    /// On the primary: one physical slot per other PostgreSQL member, so a
    /// replica that falls behind still finds its WAL.
    pub async fn ensure_slots(&mut self, members: &[String]) -> Result<()> {
        let client = self.health.client().await?;
        for m in members {
            let slot = conf::slot_name(m);
            client
                .execute(
                    "SELECT pg_create_physical_replication_slot($1::text) WHERE NOT EXISTS \
                     (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1::text)",
                    &[&slot],
                )
                .await
                .with_context(|| format!("creating replication slot {slot}"))?;
        }
        Ok(())
    }
}

/// The postmaster's own status word, line 8 of postmaster.pid ("starting",
/// "stopping", "ready", "standby"), which it updates as its state changes.
fn postmaster_status(pidfile: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(pidfile).ok()?;
    text.lines().nth(7).map(|l| l.trim().to_string())
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The lines of a timeline history file (`pg_wal/<TLI>.history`):
/// "parent-timeline switch-LSN reason", tab-separated; comments and blank
/// lines (pgbox's placeholder files hold only a comment) are skipped, as
/// PostgreSQL skips them.
pub fn parse_history(text: &str) -> Vec<crate::ha::Fork> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let timeline = f.next()?.parse().ok()?;
            let switch_lsn = crate::dcs::model::parse_lsn(f.next()?)?;
            Some(crate::ha::Fork {
                timeline,
                switch_lsn,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_history;
    use crate::ha::Fork;

    #[test]
    fn history_lines_name_each_older_timeline_and_where_it_ended() {
        let text = "1\t0/3000158\tno recovery target specified\n\n\
                    # a comment\n2\t0/5000A28\tno recovery target specified\n";
        assert_eq!(
            parse_history(text),
            vec![
                Fork {
                    timeline: 1,
                    switch_lsn: 0x3000158
                },
                Fork {
                    timeline: 2,
                    switch_lsn: 0x5000A28
                },
            ]
        );
        let placeholder = "# timeline reserved by a pgbox promotion that did not record it\n";
        assert!(parse_history(placeholder).is_empty());
    }
}
