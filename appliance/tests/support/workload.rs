//! A write workload that records exactly which writes the database
//! acknowledged, so the checker can prove what a fault lost.
//!
//! One insert at a time, each with a fresh id (1, 2, 3, ...): an id is
//! attempted at most once, so a row whose insert failed or timed out (an
//! ambiguous commit) may exist, but a row whose id was never attempted cannot.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::{Client, NoTls};

pub const TABLE_DDL: &str =
    "CREATE TABLE IF NOT EXISTS pgbox_writes (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())";

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub struct PgTarget {
    /// Tried in order.
    pub hosts: Vec<IpAddr>,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
    /// Only accept a server that takes writes (libpq's
    /// `target_session_attrs=read-write`).
    pub read_write: bool,
}

impl PgTarget {
    pub fn config(&self) -> tokio_postgres::Config {
        self.config_for(&self.hosts)
    }

    fn config_for(&self, hosts: &[IpAddr]) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        for host in hosts {
            cfg.host(host.to_string()).port(self.port);
        }
        cfg.user(&self.user)
            .password(&self.password)
            .dbname(&self.dbname)
            .application_name("pgbox-tests")
            .connect_timeout(Duration::from_secs(2))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(1))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(2)
            // A dead peer is noticed within seconds even mid-statement.
            .tcp_user_timeout(Duration::from_secs(3))
            .target_session_attrs(if self.read_write {
                TargetSessionAttrs::ReadWrite
            } else {
                TargetSessionAttrs::Any
            });
        cfg
    }

    /// Connects, trying each host in order as libpq does with several
    /// hosts: each attempt, handshake included, is bounded (libpq's
    /// `connect_timeout` covers the whole attempt; tokio-postgres's covers
    /// only the socket). A host whose postmaster is frozen accepts the TCP
    /// connection and never answers the startup packet: without a bound
    /// per host, every reconnect would hang on it and never reach the
    /// host after it. The connection task runs on the runtime until the
    /// client is dropped.
    pub async fn connect(&self) -> Result<Client, String> {
        const PER_HOST: Duration = Duration::from_secs(3);
        let mut errors = Vec::new();
        for host in &self.hosts {
            let one = self.config_for(std::slice::from_ref(host));
            match tokio::time::timeout(PER_HOST, one.connect(NoTls)).await {
                Ok(Ok((client, connection))) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    return Ok(client);
                }
                Ok(Err(e)) => errors.push(format!("{host}: {}", pg_error(&e))),
                Err(_) => errors.push(format!("{host}: no answer within {PER_HOST:?}")),
            }
        }
        Err(format!("connect: {}", errors.join("; ")))
    }

    /// The same target, one host only, any role.
    pub fn only(&self, host: IpAddr) -> PgTarget {
        PgTarget {
            hosts: vec![host],
            read_write: false,
            ..self.clone()
        }
    }
}

/// The error with its causes: tokio-postgres's own Display says only "db
/// error" for a server error, the server's message is in the source chain.
pub fn pg_error(e: &tokio_postgres::Error) -> String {
    super::error_chain(e)
}

#[derive(Clone, Copy, Debug)]
pub struct Ack {
    pub id: i64,
    /// When the insert was sent.
    pub sent: Instant,
    /// When its success reached the workload.
    pub at: Instant,
}

#[derive(Clone, Debug)]
pub struct WorkloadError {
    pub at: Instant,
    pub what: String,
}

/// A connection the workload wrote through, and where it landed.
#[derive(Clone, Debug)]
pub struct Session {
    pub at: Instant,
    pub server: String,
}

#[derive(Clone, Debug)]
pub struct WorkloadRecord {
    pub started: Instant,
    pub stopped: Option<Instant>,
    /// In id order, which is also time order.
    pub acks: Vec<Ack>,
    /// Ids 1..=last_attempted were sent (each at most once).
    pub last_attempted: i64,
    pub errors: Vec<WorkloadError>,
    pub sessions: Vec<Session>,
}

impl WorkloadRecord {
    pub fn first_ack_after(&self, t: Instant) -> Option<Ack> {
        let i = self.acks.partition_point(|a| a.at <= t);
        self.acks.get(i).copied()
    }

    /// The first acknowledged write that was sent after `t`: unlike
    /// `first_ack_after`, never a reply that was already on its way when a
    /// fault struck.
    pub fn first_ack_sent_after(&self, t: Instant) -> Option<Ack> {
        let i = self.acks.partition_point(|a| a.sent <= t);
        self.acks.get(i).copied()
    }

    pub fn acks_after(&self, t: Instant) -> usize {
        self.acks.len() - self.acks.partition_point(|a| a.at <= t)
    }

    pub fn acks_between(&self, from: Instant, to: Instant) -> Vec<Ack> {
        self.acks
            .iter()
            .filter(|a| a.at > from && a.at <= to)
            .copied()
            .collect()
    }

    /// Time since the workload started, for readable reports.
    pub fn rel(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.started)
    }

    /// Distinct error messages with their counts, most frequent first.
    pub fn error_summary(&self) -> String {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for e in &self.errors {
            match counts.iter_mut().find(|(w, _)| *w == e.what) {
                Some((_, n)) => *n += 1,
                None => counts.push((e.what.clone(), 1)),
            }
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts
            .iter()
            .take(6)
            .map(|(w, n)| format!("{n}× {w}"))
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

#[derive(Clone, Debug)]
pub struct WorkloadOptions {
    /// Pause after each acknowledged insert; keeps a 2-core machine usable
    /// while still resolving write gaps to about this much.
    pub interval: Duration,
    /// Pause before reconnecting after an error.
    pub reconnect_pause: Duration,
    /// Upper bound for any single statement.
    pub statement_timeout: Duration,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            interval: Duration::from_millis(5),
            reconnect_pause: Duration::from_millis(50),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

pub struct Workload {
    record: Arc<Mutex<WorkloadRecord>>,
    stop: Arc<AtomicBool>,
    task: Option<JoinHandle<()>>,
}

impl Workload {
    pub fn start(target: PgTarget, opts: WorkloadOptions) -> Workload {
        let record = Arc::new(Mutex::new(WorkloadRecord {
            started: Instant::now(),
            stopped: None,
            acks: Vec::new(),
            last_attempted: 0,
            errors: Vec::new(),
            sessions: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(target, opts, record.clone(), stop.clone()));
        Workload {
            record,
            stop,
            task: Some(task),
        }
    }

    /// A copy of the record so far.
    pub fn snapshot(&self) -> WorkloadRecord {
        self.record.lock().unwrap().clone()
    }

    pub fn ack_count(&self) -> usize {
        self.record.lock().unwrap().acks.len()
    }

    pub fn first_ack_after(&self, t: Instant) -> Option<Ack> {
        self.record.lock().unwrap().first_ack_after(t)
    }

    pub fn acks_after(&self, t: Instant) -> usize {
        self.record.lock().unwrap().acks_after(t)
    }

    pub fn last_error(&self) -> Option<String> {
        self.record
            .lock()
            .unwrap()
            .errors
            .last()
            .map(|e| e.what.clone())
    }

    /// Waits (bounded) for `n` more acknowledged writes after `t`.
    pub async fn wait_acks_after(
        &self,
        t: Instant,
        n: usize,
        timeout: Duration,
        what: &str,
    ) -> Ack {
        super::wait_until(timeout, what, async || {
            let r = self.record.lock().unwrap();
            if r.acks_after(t) >= n {
                Ok(r.first_ack_after(t).unwrap())
            } else {
                Err(format!(
                    "{} acks after the mark ({} in all); last error: {}",
                    r.acks_after(t),
                    r.acks.len(),
                    r.errors.last().map(|e| e.what.as_str()).unwrap_or("none")
                ))
            }
        })
        .await
    }

    /// Stops after the statement in flight and returns the full record.
    pub async fn stop(mut self) -> WorkloadRecord {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            // The task checks the flag between statements, and every
            // statement and connect is bounded.
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("workload task failed: {e}"),
                Err(_) => panic!("workload did not stop within 30 s"),
            }
        }
        let mut r = self.record.lock().unwrap().clone();
        r.stopped = Some(Instant::now());
        r
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(
    target: PgTarget,
    opts: WorkloadOptions,
    record: Arc<Mutex<WorkloadRecord>>,
    stop: Arc<AtomicBool>,
) {
    let fail = |what: String| {
        record.lock().unwrap().errors.push(WorkloadError {
            at: Instant::now(),
            what,
        });
    };
    let mut next_id: i64 = 1;
    while !stop.load(Ordering::SeqCst) {
        let client = match target.connect().await {
            Ok(c) => c,
            Err(e) => {
                fail(e);
                tokio::time::sleep(opts.reconnect_pause).await;
                continue;
            }
        };
        let setup = async {
            client.batch_execute(TABLE_DDL).await?;
            let server = client
                .query_one("SELECT coalesce(host(inet_server_addr()), 'local') || ' pid ' || pg_backend_pid()", &[])
                .await?
                .get::<_, String>(0);
            let insert = client
                .prepare("INSERT INTO pgbox_writes (id) VALUES ($1)")
                .await?;
            Ok::<_, tokio_postgres::Error>((server, insert))
        };
        let insert = match tokio::time::timeout(opts.statement_timeout, setup).await {
            Ok(Ok((server, insert))) => {
                record.lock().unwrap().sessions.push(Session {
                    at: Instant::now(),
                    server,
                });
                insert
            }
            Ok(Err(e)) => {
                fail(format!("setup: {}", pg_error(&e)));
                tokio::time::sleep(opts.reconnect_pause).await;
                continue;
            }
            Err(_) => {
                fail(format!(
                    "setup: no answer within {:?}",
                    opts.statement_timeout
                ));
                tokio::time::sleep(opts.reconnect_pause).await;
                continue;
            }
        };
        while !stop.load(Ordering::SeqCst) {
            let id = next_id;
            next_id += 1;
            record.lock().unwrap().last_attempted = id;
            let sent = Instant::now();
            match tokio::time::timeout(opts.statement_timeout, client.execute(&insert, &[&id]))
                .await
            {
                Ok(Ok(_)) => {
                    let at = Instant::now();
                    record.lock().unwrap().acks.push(Ack { id, sent, at });
                }
                Ok(Err(e)) => {
                    fail(format!("insert: {}", pg_error(&e)));
                    break;
                }
                Err(_) => {
                    fail(format!(
                        "insert: no answer within {:?}",
                        opts.statement_timeout
                    ));
                    break;
                }
            }
            if !opts.interval.is_zero() {
                tokio::time::sleep(opts.interval).await;
            }
        }
        drop(client);
        if !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(opts.reconnect_pause).await;
        }
    }
}
