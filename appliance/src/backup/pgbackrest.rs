//! Running pgBackRest and reading what it says.
//!
//! Every command runs with a clean environment, this box's configuration
//! file and the cluster's stanza, as PostgreSQL's user when pgbox runs as
//! root (pgBackRest's files must belong to the user PostgreSQL runs as).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::postgres::RunAs;

/// pgBackRest's program: `PGBOX_PGBACKREST` if set, else Debian's path
/// (the image's too).
pub fn binary() -> PathBuf {
    std::env::var_os("PGBOX_PGBACKREST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/pgbackrest"))
}

/// The program, or an error at once that names the package.
pub fn require() -> Result<PathBuf> {
    let bin = binary();
    if !bin.is_file() {
        bail!(
            "pgBackRest is not installed: {} is missing (Debian package `pgbackrest`; \
             PGBOX_PGBACKREST names another path)",
            bin.display()
        );
    }
    Ok(bin)
}

/// How to run pgBackRest on this box.
#[derive(Debug, Clone)]
pub struct PgBackRest {
    pub bin: PathBuf,
    pub conf: PathBuf,
    pub stanza: String,
    pub run_as: Option<RunAs>,
    /// PGPASSFILE for commands that connect to PostgreSQL (the superuser's
    /// password, for the local socket).
    pub passfile: Option<PathBuf>,
}

impl PgBackRest {
    /// `pgbackrest --config=.. --stanza=.. <args>`, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.base();
        cmd.arg(format!("--stanza={}", self.stanza)).args(args);
        cmd
    }

    /// The program with a clean environment, this box's configuration and
    /// user, killed if dropped.
    fn base(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .arg(format!("--config={}", self.conf.display()))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(p) = &self.passfile {
            cmd.env("PGPASSFILE", p);
        }
        if let Some(r) = self.run_as {
            cmd.uid(r.uid).gid(r.gid);
        }
        cmd
    }

    /// Runs a command to its end (at most `limit`); its stdout on success,
    /// an error with what it printed otherwise.
    pub async fn run(&self, args: &[&str], limit: Duration) -> Result<String> {
        let what = format!("pgbackrest {}", args.join(" "));
        let out = tokio::time::timeout(limit, self.command(args).output())
            .await
            .with_context(|| format!("{what}: no answer within {}s", limit.as_secs()))?
            .with_context(|| format!("{what}: cannot run {}", self.bin.display()))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let text = if text.is_empty() {
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            } else {
                text
            };
            bail!("{what} failed ({}): {text}", out.status);
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `pgbackrest server`: pgBackRest's TLS server, not yet started.
    pub fn server(&self) -> Command {
        let mut cmd = self.base();
        cmd.arg("server");
        // Like PostgreSQL, it must not outlive pgboxd: a left-over server
        // would hold the port with an old configuration.
        // SAFETY: the closure makes one async-signal-safe system call.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        cmd
    }

    /// What the repository holds for this stanza.
    pub async fn info(&self) -> Result<Repository> {
        let out = self
            .run(&["--output=json", "info"], Duration::from_secs(60))
            .await?;
        parse_info(&out, &self.stanza)
    }
}

/// A kind of backup, with pgBackRest's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Full,
    Diff,
    Incr,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Diff => "diff",
            Kind::Incr => "incr",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "full" => Some(Kind::Full),
            "diff" => Some(Kind::Diff),
            "incr" => Some(Kind::Incr),
            _ => None,
        }
    }
}

/// One backup in the repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub label: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Unix seconds.
    pub start: i64,
    pub stop: i64,
    /// The database's size, and what this backup added to the repository.
    pub database_size: u64,
    pub repository_size: u64,
    /// The first and last WAL segment a restore of it needs.
    pub wal_start: Option<String>,
    pub wal_stop: Option<String>,
    /// pgBackRest found a page checksum error while copying.
    pub error: bool,
}

/// What `pgbackrest info` says of the stanza.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Repository {
    /// pgBackRest's status: 0 ok; 1 missing stanza; 2 no backups; ...
    pub status_code: i64,
    pub status: String,
    /// Oldest first.
    pub backups: Vec<Backup>,
    /// The oldest and newest WAL segment archived.
    pub archive_min: Option<String>,
    pub archive_max: Option<String>,
}

impl Repository {
    pub fn stanza_exists(&self) -> bool {
        // 1: "missing stanza path", 3: "missing stanza data".
        !matches!(self.status_code, 1 | 3)
    }

    pub fn last(&self) -> Option<&Backup> {
        self.backups.iter().rev().find(|b| !b.error)
    }

    pub fn last_full(&self) -> Option<&Backup> {
        self.backups
            .iter()
            .rev()
            .find(|b| !b.error && b.kind == Kind::Full)
    }
}

#[derive(Deserialize)]
struct InfoStanza {
    name: String,
    #[serde(default)]
    archive: Vec<InfoArchive>,
    #[serde(default)]
    backup: Vec<InfoBackup>,
    status: InfoStatus,
}

#[derive(Deserialize)]
struct InfoArchive {
    min: Option<String>,
    max: Option<String>,
}

#[derive(Deserialize)]
struct InfoStatus {
    code: i64,
    message: String,
}

#[derive(Deserialize)]
struct InfoBackup {
    label: String,
    #[serde(rename = "type")]
    kind: String,
    timestamp: InfoTimes,
    info: InfoSizes,
    archive: Option<InfoWal>,
    #[serde(default)]
    error: bool,
}

#[derive(Deserialize)]
struct InfoTimes {
    start: i64,
    stop: i64,
}

#[derive(Deserialize)]
struct InfoSizes {
    size: u64,
    repository: InfoRepoSize,
}

#[derive(Deserialize)]
struct InfoRepoSize {
    delta: u64,
}

#[derive(Deserialize)]
struct InfoWal {
    start: Option<String>,
    stop: Option<String>,
}

/// `pgbackrest --output=json info`'s answer for `stanza`.
pub fn parse_info(json: &str, stanza: &str) -> Result<Repository> {
    let stanzas: Vec<InfoStanza> =
        serde_json::from_str(json).context("pgbackrest info: unexpected JSON")?;
    let Some(s) = stanzas.into_iter().find(|s| s.name == stanza) else {
        return Ok(Repository {
            status_code: 1,
            status: "missing stanza".into(),
            ..Repository::default()
        });
    };
    let mut backups = Vec::new();
    for b in s.backup {
        let Some(kind) = Kind::parse(&b.kind) else {
            bail!(
                "pgbackrest info: backup {} has unknown type {:?}",
                b.label,
                b.kind
            );
        };
        backups.push(Backup {
            label: b.label,
            kind,
            start: b.timestamp.start,
            stop: b.timestamp.stop,
            database_size: b.info.size,
            repository_size: b.info.repository.delta,
            wal_start: b.archive.as_ref().and_then(|a| a.start.clone()),
            wal_stop: b.archive.and_then(|a| a.stop),
            error: b.error,
        });
    }
    backups.sort_by_key(|b| b.stop);
    // One entry per database version; the current one is the last.
    let archive = s.archive.last();
    Ok(Repository {
        status_code: s.status.code,
        status: s.status.message,
        backups,
        archive_min: archive.and_then(|a| a.min.clone()),
        archive_max: archive.and_then(|a| a.max.clone()),
    })
}

/// Makes `dir` (and its parents) and gives it to `run_as`.
pub fn owned_dir(dir: &Path, run_as: Option<RunAs>, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", dir.display()))?;
    if let Some(r) = run_as {
        std::os::unix::fs::chown(dir, Some(r.uid), Some(r.gid))
            .with_context(|| format!("chown {}", dir.display()))?;
    }
    Ok(())
}

/// Writes `text` to `path` with `mode`, owned by `run_as`.
pub fn owned_file(path: &Path, text: &str, run_as: Option<RunAs>, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", tmp.display()))?;
    if let Some(r) = run_as {
        std::os::unix::fs::chown(&tmp, Some(r.uid), Some(r.gid))
            .with_context(|| format!("chown {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from what pgBackRest 2.45 printed for a stanza with one
    /// full and one incremental backup.
    const INFO: &str = r#"[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1",
        "max":"000000020000000000000009","min":"000000010000000000000003"}],
        "backup":[
        {"archive":{"start":"000000010000000000000005","stop":"000000010000000000000005"},
         "error":false,"info":{"delta":1000,"repository":{"delta":200,"size":200},"size":30000000},
         "label":"20261203-170000F","timestamp":{"start":1796317200,"stop":1796317210},"type":"full"},
        {"archive":{"start":"000000020000000000000008","stop":"000000020000000000000008"},
         "error":false,"info":{"delta":10,"repository":{"delta":3,"size":3},"size":30000000},
         "label":"20261203-170000F_20261203-171000I","timestamp":{"start":1796317800,"stop":1796317805},"type":"incr"}],
        "cipher":"none","name":"main","status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]"#;

    #[test]
    fn info_lists_the_backups_oldest_first_and_the_archive_range() {
        let repo = parse_info(INFO, "main").unwrap();
        assert!(repo.stanza_exists());
        assert_eq!(repo.backups.len(), 2);
        assert_eq!(repo.last_full().unwrap().label, "20261203-170000F");
        assert_eq!(repo.last().unwrap().kind, Kind::Incr);
        assert_eq!(repo.backups[0].database_size, 30000000);
        assert_eq!(repo.backups[0].repository_size, 200);
        assert_eq!(
            repo.archive_max.as_deref(),
            Some("000000020000000000000009")
        );
    }

    #[test]
    fn a_stanza_not_yet_made_is_told_apart() {
        let missing = r#"[{"archive":[],"backup":[],"cipher":"none","name":"main",
            "status":{"code":1,"message":"missing stanza path"}}]"#;
        assert!(!parse_info(missing, "main").unwrap().stanza_exists());
        assert!(!parse_info("[]", "main").unwrap().stanza_exists());
        assert!(parse_info("{", "main").is_err());
    }
}
