//! Another member's PostgreSQL over a connection of its own: what a
//! candidate asks of a peer whose pgboxd gives no answer, and the fence it
//! sets on an old primary before promoting (`ha::Action::Fence`).
//!
//! The fence is three settings written with ALTER SYSTEM, a reload and the
//! end of every client session:
//!
//! - `synchronous_standby_names` names a standby that does not exist
//!   (no member's application_name can contain `-`) and
//!   `synchronous_commit` is `on`: every commit from then on waits for
//!   good, so none is acknowledged;
//! - `default_transaction_read_only` is `on`: a client that reconnects gets
//!   an error at its first write instead of a commit that hangs;
//! - every client backend is terminated, so a commit already waiting is
//!   never acknowledged either.
//!
//! ALTER SYSTEM writes postgresql.auto.conf, which pgboxd empties before
//! every start and at every configuration change of its own
//! (`Postgres::write_config`): the old primary's pgboxd undoes the fence by
//! itself when it restarts its server (to rejoin) or takes the lead again.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio_postgres::{Client, NoTls};

use crate::config::Config;
use crate::dcs::model::parse_lsn;
use crate::ha::PeerPostgres;

use super::Upstream;

/// synchronous_standby_names as the fence sets it (and as the server
/// reports it back).
pub const FENCE_NAMES: &str = "\"pgbox-fenced\"";

const STATE: &str = "
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
       current_setting('synchronous_standby_names')";

/// Where an old primary's WAL stood once it was fenced.
#[derive(Debug, Clone, Copy)]
pub struct Fenced {
    pub lsn: u64,
    pub timeline: Option<u32>,
}

async fn connect(cfg: &Config, up: &Upstream, app: &str, deadline: Instant) -> Result<Client> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        bail!("no time left to connect to {}", up.name);
    }
    let mut c = tokio_postgres::Config::new();
    c.host(up.address.to_string())
        .port(up.port)
        .user(&cfg.postgres.superuser)
        .password(cfg.secrets.superuser_password.as_bytes())
        .dbname("postgres")
        .application_name(app)
        .connect_timeout(left);
    let (client, conn) = tokio::time::timeout(left, c.connect(NoTls))
        .await
        .map_err(|_| anyhow!("connecting to {}'s PostgreSQL timed out", up.name))?
        .with_context(|| format!("connecting to {}'s PostgreSQL", up.name))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn state(client: &Client) -> Result<PeerPostgres> {
    let row = client.query_one(STATE, &[]).await?;
    let in_recovery: bool = row.get(0);
    let names: String = row.get(3);
    Ok(PeerPostgres {
        primary: !in_recovery,
        fenced: names == FENCE_NAMES,
        lsn: row.get::<_, Option<String>>(1).and_then(|t| parse_lsn(&t)),
        timeline: row.get::<_, Option<i32>>(2).map(|t| t as u32),
    })
}

/// How long a candidate waits for a peer's PostgreSQL to answer: a
/// quarter of the TTL, at least a second. Longer than the API's timeout:
/// a server that answers late but answers (a loaded box) must be seen, or
/// it would not be fenced; a dead host costs this much once per election.
pub fn probe_limit(ttl: Duration) -> Duration {
    (ttl / 4).max(Duration::from_secs(1))
}

/// The peer's PostgreSQL as it answers now, within `limit`; why not when
/// it does not.
pub async fn probe(cfg: &Config, up: &Upstream, limit: Duration) -> Result<PeerPostgres, String> {
    let deadline = Instant::now() + limit;
    let ask = async {
        let client = connect(cfg, up, "pgboxd-probe", deadline).await?;
        state(&client).await
    };
    match tokio::time::timeout(limit, ask).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Fence `up`'s PostgreSQL if it runs as primary (see the module comment)
/// and say where its WAL stood then; None when it is not a primary.
/// Everything within `deadline`.
pub async fn fence(cfg: &Config, up: &Upstream, deadline: Instant) -> Result<Option<Fenced>> {
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, fence_now(cfg, up, deadline))
        .await
        .map_err(|_| anyhow!("fencing {} did not finish in time", up.name))?
}

async fn fence_now(cfg: &Config, up: &Upstream, deadline: Instant) -> Result<Option<Fenced>> {
    let admin = connect(cfg, up, "pgboxd-fence", deadline).await?;
    if !state(&admin).await?.primary {
        return Ok(None);
    }
    // One statement each: ALTER SYSTEM refuses to run inside the implicit
    // transaction of a multi-statement query.
    for sql in [
        "SET default_transaction_read_only = off".to_string(),
        format!("ALTER SYSTEM SET synchronous_standby_names = '{FENCE_NAMES}'"),
        "ALTER SYSTEM SET synchronous_commit = 'on'".into(),
        "ALTER SYSTEM SET default_transaction_read_only = 'on'".into(),
        "SELECT pg_reload_conf()".into(),
    ] {
        admin
            .batch_execute(&sql)
            .await
            .with_context(|| format!("fencing {}: {sql}", up.name))?;
    }
    commits_wait(cfg, up, &admin, deadline).await?;
    // Commits waiting now were never acknowledged: end their sessions, so
    // their clients learn it and go elsewhere. (WAL senders are not client
    // backends: the standbys go on receiving.)
    let row = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .context("terminating client sessions")?;
    let ended: i64 = row.get(0);
    // Read after the fence holds: every commit acknowledged before lies
    // at or below this position.
    let s = state(&admin).await?;
    let lsn = s.lsn.context("reading the fenced server's WAL position")?;
    tracing::info!(
        member = %up.name,
        sessions_ended = ended,
        "fenced {}'s PostgreSQL: commits wait for a standby that does not exist; its WAL ends at {}",
        up.name,
        crate::dcs::model::format_lsn(lsn)
    );
    Ok(Some(Fenced {
        lsn,
        timeline: s.timeline,
    }))
}

/// Wait until a commit on `up` really waits for the fence's standby: a
/// reload reaches the server's processes one by one, and only once it has
/// may its WAL position be taken as the end of what it acknowledged. A
/// second session commits an empty transaction; once that commit shows up
/// waiting (`SyncRep`), every later commit does too.
async fn commits_wait(
    cfg: &Config,
    up: &Upstream,
    admin: &Client,
    deadline: Instant,
) -> Result<()> {
    let probe = connect(cfg, up, "pgboxd-fence-probe", deadline).await?;
    probe.batch_execute("SET synchronous_commit = on").await?;
    probe
        .batch_execute("SET default_transaction_read_only = off")
        .await?;
    let pid: i32 = probe
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    loop {
        let commit = probe.batch_execute("SELECT txid_current()");
        tokio::pin!(commit);
        let waiting = loop {
            tokio::select! {
                r = &mut commit => {
                    r.context("the fence's probe commit")?;
                    break false;
                }
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    let row = admin
                        .query_opt(
                            "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'",
                            &[&pid],
                        )
                        .await?;
                    if row.is_some() {
                        break true;
                    }
                }
            }
        };
        if waiting {
            // The probe's session ends with the other client sessions.
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("commits on {} do not wait for the fence yet", up.name);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
