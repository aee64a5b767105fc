//! Bringing a new cluster up from the backup repository instead of
//! `initdb` (`backup.restore`): the disaster-recovery path, and a
//! point-in-time recovery onto fresh boxes.
//!
//! The restore replaces only how the first data directory is made; the rest
//! of the bootstrap is the usual one. pgBackRest restores the backup into a
//! staging directory, which is moved into place whole. The first start then
//! runs archive recovery (`recovery.signal`, a `restore_command` that asks
//! the repository, and the target), and pgboxd waits for the server to
//! finish it and promote itself onto a new timeline before it goes on
//! (roles, the initialize key). Afterwards nothing of the recovery settings
//! is written again: a running cluster's replicas never read the archive
//! (a timeline some deposed primary archived would lure them off the
//! leader's).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::Postgres;
use crate::backup::{conf as br, pgbackrest};
use crate::config::RestoreTarget;

/// The longest the first start may spend replaying the archive.
const RECOVERY_LIMIT: Duration = Duration::from_secs(6 * 3600);

impl Postgres {
    /// The new cluster's data directory, restored from the repository.
    pub async fn restore_from_repository(&mut self, target: &RestoreTarget) -> Result<()> {
        let bin = pgbackrest::require()?;
        let pgbr = self.pgbackrest(bin);
        let staging = self.layout.staging();
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("removing {}", staging.display()))?;
        }
        self.make_private_dir(&staging)?;
        let pg1 = format!("--pg1-path={}", staging.display());
        let mut args = vec![pg1.as_str()];
        let time_arg;
        if let RestoreTarget::Time(t) = target {
            // Chooses the newest backup that ended before the target.
            time_arg = format!("--target={t}");
            args.extend(["--type=time", time_arg.as_str()]);
        }
        args.push("restore");
        tracing::info!(
            ?target,
            "restoring the new cluster from the backup repository"
        );
        let started = Instant::now();
        if let Err(e) = pgbr.run(&args, RECOVERY_LIMIT).await {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e.context("restoring from the backup repository"));
        }
        if self.layout.pgdata.exists() {
            bail!(
                "{} appeared during the restore; not replacing it",
                self.layout.pgdata.display()
            );
        }
        std::fs::rename(&staging, &self.layout.pgdata)
            .context("moving the restored data directory into place")?;
        self.write_owned(&self.layout.pgdata.join("recovery.signal"), "")?;
        tracing::info!(
            seconds = started.elapsed().as_secs(),
            "backup restored; the first start replays the archive"
        );
        self.restore_target = Some(target.clone());
        Ok(())
    }

    /// What postgresql.conf says while the restored server replays the
    /// archive (nothing once it has finished).
    pub(super) fn recovery_settings(&self) -> String {
        let (Some(target), Some(_)) = (&self.restore_target, &self.cfg.backup) else {
            return String::new();
        };
        let files = br::Files::under(&self.layout.root);
        let get = format!(
            "{} --config={} --stanza={} archive-get %f \"%p\"",
            pgbackrest::binary().display(),
            files.conf.display(),
            br::stanza(&self.cfg)
        );
        let mut s = String::from("# restoring from the backup repository (backup.restore)\n");
        let _ = writeln!(s, "restore_command = {}", super::conf::quote(&get));
        if let RestoreTarget::Time(t) = target {
            let _ = writeln!(s, "recovery_target_time = {}", super::conf::quote(t));
            let _ = writeln!(s, "recovery_target_action = 'promote'");
        }
        s
    }

    /// After the first start of a restored directory: wait until archive
    /// recovery has ended and the server promoted itself, then write the
    /// configuration without the recovery settings.
    pub(super) async fn finish_recovery(&mut self) -> Result<()> {
        if self.restore_target.is_none() {
            return Ok(());
        }
        let deadline = Instant::now() + RECOVERY_LIMIT;
        loop {
            if !self.is_running() {
                bail!("postgres exited while replaying the archive (see its log lines above)");
            }
            match self.health.client().await {
                Ok(client) => {
                    if let Ok(row) = client.query_one("SELECT pg_is_in_recovery()", &[]).await {
                        if !row.get::<_, bool>(0) {
                            break;
                        }
                    }
                }
                Err(e) if format!("{e:#}").contains("password authentication failed") => bail!(
                    "the restored cluster does not take secrets.superuser_password: a file that restores a \
                     cluster must keep that cluster's superuser password"
                ),
                Err(_) => {}
            }
            if Instant::now() > deadline {
                bail!("the restored server did not finish replaying the archive within {RECOVERY_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.restore_target = None;
        self.write_config(None)?;
        tracing::info!("the restored server has replayed the archive and promoted itself");
        Ok(())
    }
}
