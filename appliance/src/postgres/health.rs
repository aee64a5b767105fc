//! The health query: one round trip per loop over the unix socket tells
//! role, positions, timeline and whether WAL is streaming.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::{Client, Config as PgConfig, NoTls};

use crate::config::Config;
use crate::dcs::model::parse_lsn;
use crate::ha::Standby;
use crate::status::{PendingRestart, PgRole, PgStatus, ReplicationRow};

use super::Layout;

pub type Health = PgStatus;

pub struct Checker {
    conn: PgConfig,
    /// WAL archiving is on (the file has `backup:`).
    archiving: bool,
    client: Option<Client>,
    /// The newest timeline this standby has received WAL on since it
    /// started: the WAL receiver's row vanishes when its upstream dies,
    /// exactly when an election needs the timeline.
    received_tli: Option<i32>,
}

const QUERY: &str = "
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       r.status,
       r.sender_host,
       r.received_tli,
       (SELECT timeline_id FROM pg_control_checkpoint()),
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
       current_setting('server_version_num')::int,
       pg_postmaster_start_time()::text,
       (SELECT system_identifier::text FROM pg_control_system()),
       (SELECT min_recovery_end_timeline FROM pg_control_recovery()),
       current_setting('synchronous_standby_names'),
       CASE WHEN pg_is_in_recovery()
            THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
       pg_last_xact_replay_timestamp()::text,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END,
       (SELECT bool_or(pending_restart) FROM pg_settings)
FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver r ON true";

/// A primary's WAL archiving (asked only when archiving is on): segments
/// waiting for the archiver, seconds since the last success, and whether
/// the last attempt failed.
const ARCHIVE: &str = "SELECT
       (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'),
       extract(epoch FROM now() - last_archived_time)::float8,
       coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false),
       last_failed_wal
FROM pg_stat_archiver";

const STANDBYS: &str = "SELECT application_name, state, sync_state, flush_lsn::text,
       usename::text, host(client_addr), sync_priority
FROM pg_stat_replication ORDER BY application_name";

/// Asked only when `pg_settings` says a restart is pending: reading
/// `pg_file_settings` parses the configuration files again. The last
/// line naming a parameter wins; it carries an error ("could not be
/// applied") exactly because it waits for the restart.
const PENDING_RESTART: &str = "SELECT s.name, s.setting, f.setting
FROM pg_settings s
LEFT JOIN (SELECT DISTINCT ON (name) name, setting FROM pg_file_settings
           ORDER BY name, seqno DESC) f ON f.name = s.name
WHERE s.pending_restart ORDER BY s.name";

/// How pgboxd reaches its own PostgreSQL: the superuser over the unix socket.
pub fn connection(cfg: &Config, layout: &Layout) -> PgConfig {
    let mut conn = PgConfig::new();
    conn.host_path(&layout.socket_dir)
        .port(cfg.ports.postgres)
        .user(&cfg.postgres.superuser)
        .password(cfg.secrets.superuser_password.as_bytes())
        .dbname("postgres")
        .application_name("pgboxd")
        .connect_timeout(Duration::from_secs(2));
    conn
}

/// Whether the local PostgreSQL answers now and is not in recovery, on a
/// connection of its own: a backend of a killed postmaster may still answer
/// on a connection opened before, and the server it belonged to is gone.
pub async fn runs_as_primary(conn: &PgConfig) -> Result<bool> {
    let (client, connection) = conn
        .connect(NoTls)
        .await
        .context("connecting to the local postgres")?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    let row = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .context("SELECT pg_is_in_recovery()");
    drop(client);
    task.abort();
    Ok(!row?.get::<_, bool>(0))
}

impl Checker {
    pub fn new(cfg: &Config, layout: &Layout) -> Self {
        Checker {
            conn: connection(cfg, layout),
            archiving: cfg.backup.is_some(),
            client: None,
            received_tli: None,
        }
    }

    /// Forget the connection and what the previous server run showed.
    pub fn reset(&mut self) {
        self.client = None;
        self.received_tli = None;
    }

    /// A connection as the superuser over the unix socket, made on demand
    /// and kept while it works.
    pub async fn client(&mut self) -> Result<&Client> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            let (client, connection) =
                tokio::time::timeout(Duration::from_secs(3), self.conn.connect(NoTls))
                    .await
                    .context("connecting to the local postgres timed out")?
                    .context("connecting to the local postgres")?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.client = Some(client);
        }
        Ok(self.client.as_ref().unwrap())
    }

    pub async fn check(&mut self) -> PgStatus {
        match self.query().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "health query failed");
                self.client = None;
                // The process lives but does not answer (yet).
                PgStatus {
                    running: false,
                    ..PgStatus::default()
                }
            }
        }
    }

    async fn query(&mut self) -> Result<PgStatus> {
        let archiving = self.archiving;
        let client = self.client().await?;
        let row = tokio::time::timeout(Duration::from_secs(3), client.query_one(QUERY, &[]))
            .await
            .context("health query timed out")??;
        let in_recovery: bool = row.get(0);
        let lsn = |i: usize| row.get::<_, Option<String>>(i).and_then(|t| parse_lsn(&t));
        let (write, receive, replay) = (lsn(1), lsn(2), lsn(3));
        let wal_status: Option<String> = row.get(4);
        let received_tli: Option<i32> = row.get(6);
        let checkpoint_tli: Option<i32> = row.get(7);
        let current_tli: Option<i32> = row.get(8);
        let rows = if in_recovery {
            Vec::new()
        } else {
            client
                .query(STANDBYS, &[])
                .await
                .context("reading pg_stat_replication")?
        };
        let standbys = rows
            .iter()
            .map(|r| Standby {
                name: r.get::<_, Option<String>>(0).unwrap_or_default(),
                streaming: r.get::<_, Option<String>>(1).as_deref() == Some("streaming"),
                sync_state: r.get::<_, Option<String>>(2).unwrap_or_default(),
                flush_lsn: r.get::<_, Option<String>>(3).and_then(|t| parse_lsn(&t)),
            })
            .collect();
        let replication = rows
            .iter()
            .map(|r| ReplicationRow {
                application_name: r.get(0),
                state: r.get(1),
                sync_state: r.get(2),
                usename: r.get(4),
                client_addr: r.get(5),
                sync_priority: r.get(6),
            })
            .collect();
        let pending_restart = if row.get::<_, Option<bool>>(17) == Some(true) {
            client
                .query(PENDING_RESTART, &[])
                .await
                .context("reading the parameters that wait for a restart")?
                .iter()
                .map(|r| PendingRestart {
                    name: r.get(0),
                    old_value: r.get(1),
                    new_value: r.get(2),
                })
                .collect()
        } else {
            Vec::new()
        };
        // Monitoring only: bounded, and a failure (a slow pg_wal disk)
        // leaves the archive unknown instead of making the server look down,
        // which would cost a primary its leader key.
        let archive = if archiving && !in_recovery {
            match tokio::time::timeout(Duration::from_secs(1), client.query_one(ARCHIVE, &[])).await
            {
                Ok(Ok(a)) => Some(crate::status::ArchiveState {
                    pending_segments: a.get::<_, i64>(0).max(0) as u64,
                    since_last_archived: a.get::<_, Option<f64>>(1).map(|s| s.max(0.0)),
                    failing: a.get(2),
                    last_failed_wal: a.get(3),
                }),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "reading pg_stat_archiver failed");
                    None
                }
                Err(_) => {
                    tracing::debug!("reading pg_stat_archiver took over 1 s");
                    None
                }
            }
        } else {
            None
        };
        let min_recovery_tli: Option<i32> = row.get(12);
        let streaming = in_recovery && wal_status.as_deref() == Some("streaming");
        let replay_lag = if in_recovery {
            replay_lag(streaming, receive, replay, row.get(14))
        } else {
            None
        };
        let timeline = if in_recovery {
            // A standby's replay timeline has no direct function: take the
            // newest of what was streamed, the last restartpoint, and the
            // timeline recovery must reach (set by pg_rewind). Each of these
            // the server has really reached; none over-claims.
            let tl = [
                received_tli,
                self.received_tli,
                checkpoint_tli,
                min_recovery_tli,
            ]
            .into_iter()
            .flatten()
            .max();
            self.received_tli = self.received_tli.max(received_tli);
            tl
        } else {
            current_tli
        };
        Ok(PgStatus {
            running: true,
            role: if in_recovery {
                PgRole::Replica
            } else {
                PgRole::Primary
            },
            timeline: timeline.map(|t| t as u32),
            lsn: if in_recovery {
                receive.into_iter().chain(replay).max()
            } else {
                write
            },
            receive_lsn: receive,
            replay_lsn: if in_recovery { replay } else { None },
            streaming,
            upstream_host: row.get(5),
            server_version: row.get::<_, Option<i32>>(9).map(|v| v as u32),
            postmaster_start_time: row.get(10),
            system_identifier: row.get(11),
            standbys,
            sync_names: row.get(13),
            replay_lag,
            replayed_timestamp: row.get(15),
            replay_paused: row.get(16),
            replication,
            pending_restart,
            // Read from the history file by `Postgres::health`.
            forks: Vec::new(),
            archive,
        })
    }
}

/// How stale a replica's data may be, from what it knows by itself.
///
/// While it streams and has replayed everything it received, nothing is
/// missing: zero, even if the primary has been idle for an hour. Otherwise
/// the age of the last transaction it replayed (`age_s`, from the primary's
/// commit timestamp, so clock skew between the two counts in): an upper
/// bound while it catches up, and growing for as long as it is cut off,
/// which is what a reader of stale data needs to know. None before it has
/// replayed any transaction since it started.
pub fn replay_lag(
    streaming: bool,
    received: Option<u64>,
    replayed: Option<u64>,
    age_s: Option<f64>,
) -> Option<Duration> {
    let caught_up = matches!((received, replayed), (Some(r), Some(p)) if p >= r);
    if streaming && caught_up {
        return Some(Duration::ZERO);
    }
    // A replica's clock behind the primary's gives a negative age.
    age_s.map(|s| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_lag_is_zero_only_when_nothing_received_is_left() {
        let s = Duration::from_secs;
        // Streaming and caught up: an idle primary is not lag.
        assert_eq!(
            replay_lag(true, Some(100), Some(100), Some(3600.0)),
            Some(s(0))
        );
        // Replaying a backlog: the last replayed commit's age.
        assert_eq!(
            replay_lag(true, Some(200), Some(100), Some(12.0)),
            Some(s(12))
        );
        // Cut off from the primary: it cannot know what it misses.
        assert_eq!(
            replay_lag(false, Some(100), Some(100), Some(90.0)),
            Some(s(90))
        );
        // Nothing replayed yet.
        assert_eq!(replay_lag(false, None, None, None), None);
        // Clock skew never yields a negative lag.
        assert_eq!(
            replay_lag(true, Some(200), Some(100), Some(-2.5)),
            Some(s(0))
        );
        assert_eq!(
            replay_lag(true, Some(200), Some(100), Some(f64::INFINITY)),
            Some(Duration::MAX)
        );
    }
}
