//! The etcd adapter: every read and write pgboxd makes to the DCS.
//!
//! etcd-client does not move to another endpoint by itself when the one it
//! talks to dies (a share of requests keeps failing), so this adapter holds
//! one client at a time, and on any error or timeout moves to the next
//! endpoint and retries, until every endpoint was tried once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp};

use super::access::Access;
use super::leader_records::{self, CasOutcome, LeaderCas};
use super::lease::{self, LeaseApi, LeaseState};
use crate::clock::TokioClock;
use tokio::sync::{Mutex, Notify};

use super::model::{
    ClusterStatus, ClusterView, DynamicConfig, FailoverKey, HistoryEntry, Member, SyncKey,
    TimelineKey,
};

pub struct Etcd {
    endpoints: Vec<String>,
    access: Access,
    prefix: String,
    me: String,
    ttl: Duration,
    request_timeout: Duration,
    /// For a connection, which includes logging in (a bcrypt check on the
    /// member, slow on a slow CPU) and, once per cluster, turning on
    /// authentication.
    connect_timeout: Duration,
    conn: Mutex<Conn>,
    lease: std::sync::Mutex<LeaseState>,
    /// One grant at a time (`LeaseApi::grant_lock`).
    granting: Mutex<()>,
    /// The clock the lease's renewals are timed on: the HA loop's.
    clock: TokioClock,
    /// What a fresh proof of the lease does (pets the watchdog); set when
    /// the keep-alive starts.
    on_proof: std::sync::OnceLock<Arc<dyn Fn() + Send + Sync>>,
}

struct Conn {
    /// Index of the endpoint `client` talks to, or of the next to try.
    index: usize,
    client: Option<Client>,
}

/// The leader key as read: whom it names and which lease holds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeaderKey {
    pub name: String,
    pub lease: i64,
}

impl Etcd {
    pub fn new(
        endpoints: Vec<String>,
        access: Access,
        prefix: String,
        me: String,
        ttl: Duration,
        clock: TokioClock,
    ) -> Self {
        // A request must give up well inside the lease's lifetime, so that a
        // dead endpoint leaves time to try another before fencing is needed.
        let request_timeout = (ttl / 5).clamp(Duration::from_millis(300), Duration::from_secs(2));
        let connect_timeout = (ttl / 2).max(request_timeout);
        Etcd {
            endpoints,
            access,
            connect_timeout,
            prefix,
            me,
            ttl,
            request_timeout,
            conn: Mutex::new(Conn {
                index: 0,
                client: None,
            }),
            lease: std::sync::Mutex::new(LeaseState::default()),
            granting: Mutex::new(()),
            clock,
            on_proof: std::sync::OnceLock::new(),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// The current lease id, if one is granted.
    pub fn lease_id(&self) -> Option<i64> {
        self.lease.lock().unwrap().id
    }

    /// When the last successful renewal was sent (`Clock::now_ms`).
    pub fn renewed_at_ms(&self) -> Option<u64> {
        self.lease.lock().unwrap().renewed_at
    }

    async fn client(&self) -> Result<Client> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = &conn.client {
            return Ok(c.clone());
        }
        let endpoint = self.endpoints[conn.index % self.endpoints.len()].clone();
        // The TCP connection gets the short timeout (a dead member must be
        // left quickly); each request through this client is bounded by
        // `call`, so the client's own timeout only has to let a login by.
        let opts = ConnectOptions::new()
            .with_connect_timeout(self.request_timeout)
            .with_timeout(self.connect_timeout)
            .with_keep_alive(Duration::from_secs(1), self.request_timeout);
        match tokio::time::timeout(self.connect_timeout, self.access.connect(&endpoint, opts)).await
        {
            Ok(Ok(c)) => {
                conn.client = Some(c.clone());
                Ok(c)
            }
            Ok(Err(e)) => {
                conn.index += 1;
                Err(e.context(format!("connecting to etcd at {endpoint}")))
            }
            Err(_) => {
                conn.index += 1;
                bail!(
                    "connecting to etcd at {endpoint}: timed out after {:?}",
                    self.connect_timeout
                )
            }
        }
    }

    /// Forget the current client and move to the next endpoint.
    async fn rotate(&self) {
        let mut conn = self.conn.lock().await;
        if conn.client.take().is_some() {
            conn.index += 1;
        }
    }

    /// Run `op` against the current endpoint, moving on to the others on
    /// failure. The last error says which endpoint failed and how.
    async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last = None;
        for _ in 0..self.endpoints.len() {
            let client = match self.client().await {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match tokio::time::timeout(self.request_timeout, op(client)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => last = Some(anyhow!(e)),
                Err(_) => last = Some(anyhow!("timed out after {:?}", self.request_timeout)),
            }
            self.rotate().await;
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no etcd endpoint configured"))
            .context(format!("etcd: {what}")))
    }

    /// Everything under the cluster prefix in one read: one revision, so the
    /// leader, members and status are consistent with each other.
    pub async fn read_view(&self) -> Result<(ClusterView, Option<LeaderKey>)> {
        let prefix = self.prefix.clone();
        let resp = self
            .call("reading the cluster state", |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let mut view = ClusterView::default();
        let mut leader = None;
        for kv in resp.kvs() {
            let key = kv.key_str().unwrap_or_default();
            let Some(name) = key.strip_prefix(&self.prefix) else {
                continue;
            };
            let value = kv.value_str().unwrap_or_default();
            match name {
                "leader" => {
                    view.leader = Some(value.to_string());
                    leader = Some(LeaderKey {
                        name: value.to_string(),
                        lease: kv.lease(),
                    });
                }
                "initialize" => view.initialize = Some(value.to_string()),
                "status" => {
                    view.last_leader_lsn = serde_json::from_str::<ClusterStatus>(value)
                        .ok()
                        .map(|s| s.optime)
                }
                "history" => view.history = serde_json::from_str(value).unwrap_or_default(),
                "sync" => view.sync = serde_json::from_str(value).ok(),
                "failover" => view.failover = serde_json::from_str(value).ok(),
                "config" => view.config = serde_json::from_str(value).unwrap_or_default(),
                "timeline" => {
                    view.reserved_timeline = serde_json::from_str::<TimelineKey>(value)
                        .ok()
                        .map(|k| k.reserved)
                }
                _ => {
                    if let Some(member) = name.strip_prefix("members/") {
                        match serde_json::from_str::<Member>(value) {
                            Ok(m) => view.members.push((member.to_string(), m)),
                            Err(e) => {
                                tracing::warn!(member, error = %e, "ignoring unreadable member key")
                            }
                        }
                    }
                }
            }
        }
        view.members.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((view, leader))
    }

    /// The leader key alone, read linearizably (etcd's default: the answer
    /// reflects every write committed before the request), for the check
    /// behind `GET /primary`. `None`: no leader key.
    pub async fn read_leader_key(&self) -> Result<Option<LeaderKey>> {
        let kv = self.get_one("leader", "reading the leader key").await?;
        Ok(kv.map(|kv| LeaderKey {
            name: kv.value_str().unwrap_or_default().to_string(),
            lease: kv.lease(),
        }))
    }

    /// Grant a lease if this process has none (or its lease expired).
    pub async fn ensure_lease(&self) -> Result<i64> {
        lease::ensure(self, &self.clock, self.ttl.as_millis() as u64).await
    }

    /// Take the leader key if it is free, or re-bind it to my lease if it
    /// already names me (left by an earlier run of pgboxd). True on success.
    pub async fn acquire_leader(&self) -> Result<bool> {
        let lease = self.ensure_lease().await?;
        let key = self.key("leader");
        let me = self.me.clone();
        let put = TxnOp::put(
            key.clone(),
            me.clone(),
            Some(PutOptions::new().with_lease(lease)),
        );
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([put.clone()])
            .or_else([TxnOp::txn(
                Txn::new()
                    .when([Compare::value(key.clone(), CompareOp::Equal, me)])
                    .and_then([put]),
            )]);
        let resp = match self
            .call("acquiring the leader key", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // etcd's answer beats the local renewal timer, which a
                // paused machine's stopped clock keeps "fresh": a lease etcd
                // no longer knows is gone, and the next attempt grants one.
                if format!("{e:#}").contains("lease not found") {
                    tracing::warn!(
                        lease,
                        "etcd no longer knows my lease; a new one will be granted"
                    );
                    lease::forget(self, lease);
                }
                return Err(e);
            }
        };
        if resp.succeeded() {
            return Ok(true);
        }
        // The outer compare failed: the inner transaction's result says
        // whether the key named me.
        Ok(resp
            .op_responses()
            .into_iter()
            .any(|op| matches!(op, etcd_client::TxnOpResponse::Txn(t) if t.succeeded())))
    }

    /// Take the leader key back after a failed hand-over: only if nobody
    /// holds it and the `sync` key is still exactly `sync` (compared as
    /// pgbox writes it), in one transaction. A candidate that took over the
    /// `sync` key first (its first loop as leader) makes this fail, and
    /// this makes the candidate's later acquisition fail.
    pub async fn retake_leader(&self, sync: &SyncKey) -> Result<bool> {
        let lease = self.ensure_lease().await?;
        let key = self.key("leader");
        let sync_key = self.key("sync");
        let sync_value = serde_json::to_string(sync)?;
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                Compare::value(sync_key, CompareOp::Equal, sync_value),
            ])
            .and_then([TxnOp::put(
                key,
                self.me.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let resp = self
            .call("taking the leader key back", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        Ok(resp.succeeded())
    }

    /// Delete the leader key if it names me; replicas watching it start an
    /// election at once instead of waiting for the lease to expire.
    pub async fn release_leader(&self) -> Result<()> {
        let key = self.key("leader");
        let me = self.me.clone();
        self.call("releasing the leader key", |mut c| {
            let txn = Txn::new()
                .when([Compare::value(key.clone(), CompareOp::Equal, me.clone())])
                .and_then([TxnOp::delete(key.clone(), None)]);
            async move { c.txn(txn).await }
        })
        .await?;
        Ok(())
    }

    /// The bootstrap race: create `initialize` only if absent. True if I won.
    /// Claim the right to bootstrap: create-if-absent, bound to my lease
    /// while the bootstrap runs, so a member that dies half-way does not
    /// leave the cluster uninitializable (the claim vanishes with its lease).
    pub async fn claim_initialize(&self) -> Result<bool> {
        let lease = self.ensure_lease().await?;
        let key = self.key("initialize");
        let resp = self
            .call("claiming the initialize key", |mut c| {
                let txn = Txn::new()
                    .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        key.clone(),
                        "",
                        Some(PutOptions::new().with_lease(lease)),
                    )])
                    .or_else([TxnOp::get(key.clone(), None)]);
                async move { c.txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            return Ok(true);
        }
        // A request retried after a lost answer finds its own claim: an
        // unfinished one on my lease is mine.
        Ok(resp.op_responses().iter().any(|op| {
            matches!(op, etcd_client::TxnOpResponse::Get(g)
                if g.kvs().iter().any(|kv| kv.lease() == lease && kv.value().is_empty()))
        }))
    }

    /// Record the new cluster's system identifier for good: a put without
    /// a lease detaches the key from the bootstrapper's lease.
    pub async fn set_initialize(&self, system_id: &str) -> Result<()> {
        self.put("initialize", system_id.to_string(), None).await
    }

    /// Delete `initialize` only while it is still my unfinished claim
    /// (empty, on my lease): a claim of mine that expired with my lease may
    /// have been taken by another member since, whose bootstrap must not
    /// lose its key.
    pub async fn release_initialize_claim(&self) -> Result<()> {
        let Some(lease) = self.lease_id() else {
            return Ok(());
        };
        let key = self.key("initialize");
        self.call("releasing my claim of the initialize key", |mut c| {
            let txn = Txn::new()
                .when([
                    Compare::lease(key.clone(), CompareOp::Equal, lease),
                    Compare::value(key.clone(), CompareOp::Equal, ""),
                ])
                .and_then([TxnOp::delete(key.clone(), None)]);
            async move { c.txn(txn).await }
        })
        .await?;
        Ok(())
    }

    /// Publish my member key, bound to my lease so it vanishes with me.
    pub async fn put_member(&self, member: &Member) -> Result<()> {
        let lease = self.ensure_lease().await?;
        let name = format!("members/{}", self.me);
        self.put(&name, serde_json::to_string(member)?, Some(lease))
            .await
    }

    pub async fn put_status(&self, optime: u64) -> Result<()> {
        self.put(
            "status",
            serde_json::to_string(&ClusterStatus { optime })?,
            None,
        )
        .await
    }

    /// Append one timeline switch to `history` (dcs/leader_records.rs).
    pub async fn append_history(&self, entry: HistoryEntry) -> Result<()> {
        leader_records::append_history(self, entry).await
    }

    /// Reserve the timeline my promotion opens (dcs/leader_records.rs).
    pub async fn reserve_timeline(&self, next: u32) -> Result<u32> {
        leader_records::reserve_timeline(self, next).await
    }

    async fn put(&self, name: &str, value: String, lease: Option<i64>) -> Result<()> {
        let key = self.key(name);
        self.call(&format!("writing {name}"), |mut c| {
            let (key, value) = (key.clone(), value.clone());
            let opts = lease.map(|l| PutOptions::new().with_lease(l));
            async move { c.put(key, value, opts).await }
        })
        .await?;
        Ok(())
    }

    /// Write the `sync` key, only while the leader key names me: a member
    /// that lost the key (its lease ran out while it was frozen) must not
    /// overwrite what the leader, or a leader taking the key back, relies on.
    pub async fn put_sync(&self, key: &SyncKey) -> Result<()> {
        let value = serde_json::to_string(key)?;
        let sync = self.key("sync");
        let leader = self.key("leader");
        let me = self.me.clone();
        let resp = self
            .call("writing sync", |mut c| {
                let txn = Txn::new()
                    .when([Compare::value(leader.clone(), CompareOp::Equal, me.clone())])
                    .and_then([TxnOp::put(sync.clone(), value.clone(), None)]);
                async move { c.txn(txn).await }
            })
            .await?;
        if !resp.succeeded() {
            bail!("not writing the sync key: the leader key does not name me");
        }
        Ok(())
    }

    /// Record a switchover or failover request, unless one is pending.
    /// The revision that wrote it (the key's mod revision, for
    /// `withdraw_failover`), or None if another request is already there.
    pub async fn request_failover(&self, req: &FailoverKey) -> Result<Option<i64>> {
        let key = self.key("failover");
        let value = serde_json::to_string(req)?;
        let resp = self
            .call("writing the failover request", |mut c| {
                let txn = Txn::new()
                    .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key.clone(), value.clone(), None)]);
                async move { c.txn(txn).await }
            })
            .await?;
        if !resp.succeeded() {
            return Ok(None);
        }
        let revision = resp
            .header()
            .map(|h| h.revision())
            .context("etcd: the failover request's answer has no revision")?;
        Ok(Some(revision))
    }

    /// Delete the failover request written at `revision`, only if it is
    /// still that one: a request carried out and replaced by a newer one
    /// in the meantime is left alone. True if it was deleted.
    pub async fn withdraw_failover(&self, revision: i64) -> Result<bool> {
        let key = self.key("failover");
        let resp = self
            .call("withdrawing the failover request", |mut c| {
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        revision,
                    )])
                    .and_then([TxnOp::delete(key.clone(), None)]);
                async move { c.txn(txn).await }
            })
            .await?;
        Ok(resp.succeeded())
    }

    /// One key under the cluster prefix, if it exists.
    async fn get_one(&self, name: &str, what: &str) -> Result<Option<etcd_client::KeyValue>> {
        let key = self.key(name);
        let resp = self
            .call(what, |mut c| {
                let key = key.clone();
                async move { c.get(key, None).await }
            })
            .await?;
        Ok(resp.kvs().first().cloned())
    }

    /// The `failover` key and its revision, if there is one.
    pub async fn read_failover(&self) -> Result<Option<(FailoverKey, i64)>> {
        let Some(kv) = self
            .get_one("failover", "reading the failover request")
            .await?
        else {
            return Ok(None);
        };
        let req = serde_json::from_slice(kv.value()).with_context(|| {
            format!("the failover key holds {:?}", kv.value_str().unwrap_or(""))
        })?;
        Ok(Some((req, kv.mod_revision())))
    }

    pub async fn clear_failover(&self) -> Result<()> {
        let key = self.key("failover");
        self.call("deleting the failover request", |mut c| {
            let key = key.clone();
            async move { c.delete(key, None).await }
        })
        .await?;
        Ok(())
    }

    pub async fn put_config(&self, cfg: &DynamicConfig) -> Result<()> {
        self.put("config", serde_json::to_string(cfg)?, None).await
    }

    /// The `config` key and its revision (0: there is none).
    pub async fn read_config(&self) -> Result<(DynamicConfig, i64)> {
        let Some(kv) = self.get_one("config", "reading the config key").await? else {
            return Ok((DynamicConfig::default(), 0));
        };
        let cfg = serde_json::from_slice(kv.value()).with_context(|| {
            format!(
                "the config key holds {:?}, not a JSON object",
                kv.value_str().unwrap_or("")
            )
        })?;
        Ok((cfg, kv.mod_revision()))
    }

    /// Write the `config` key only if it is still at `revision` (0: only
    /// if there is none): a change made from an older read loses.
    pub async fn put_config_if(&self, cfg: &DynamicConfig, revision: i64) -> Result<bool> {
        let key = self.key("config");
        let value = serde_json::to_string(cfg)?;
        let resp = self
            .call("writing the config key", |mut c| {
                let compare = if revision == 0 {
                    Compare::create_revision(key.clone(), CompareOp::Equal, 0)
                } else {
                    Compare::mod_revision(key.clone(), CompareOp::Equal, revision)
                };
                let txn = Txn::new().when([compare]).and_then([TxnOp::put(
                    key.clone(),
                    value.clone(),
                    None,
                )]);
                async move { c.txn(txn).await }
            })
            .await?;
        Ok(resp.succeeded())
    }

    /// Give up my lease: my member key (and the leader key, if mine) vanish.
    pub async fn revoke_lease(&self) -> Result<()> {
        let Some(id) = self.lease_id() else {
            return Ok(());
        };
        self.call("revoking my lease", |mut c| async move {
            c.lease_revoke(id).await
        })
        .await?;
        lease::forget(self, id);
        Ok(())
    }

    /// Renew my lease every `every` for ever (dcs/lease.rs); `on_renewed`
    /// runs after every successful grant or renewal (it pets the hardware
    /// watchdog while this node leads), `wake` when the lease was lost.
    pub async fn keep_alive_forever(
        self: Arc<Self>,
        every: Duration,
        wake: Arc<Notify>,
        on_renewed: Arc<dyn Fn() + Send + Sync>,
    ) {
        let clock = self.clock;
        let _ = self.on_proof.set(on_renewed);
        lease::keep_alive_forever(
            self.as_ref(),
            &clock,
            self.ttl.as_millis() as u64,
            every.as_millis() as u64,
            || wake.notify_one(),
        )
        .await
    }

    /// Watch the leader key for ever and wake the HA loop on every change:
    /// a deleted key (clean release or lease expiry) starts an election at
    /// once instead of at the next poll.
    pub async fn watch_leader_forever(self: Arc<Self>, wake: Arc<Notify>) {
        let key = self.key("leader");
        loop {
            match self.client().await {
                Ok(mut c) => match c.watch(key.clone(), None).await {
                    Ok(mut stream) => {
                        // State may have changed while no watch was open.
                        wake.notify_one();
                        loop {
                            match stream.message().await {
                                Ok(Some(resp)) => {
                                    if !resp.events().is_empty() {
                                        wake.notify_one();
                                    }
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::warn!(error = %e, "leader watch broke; re-opening");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot open the leader watch"),
                },
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "leader watch: no etcd endpoint reachable")
                }
            }
            self.rotate().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The lease over etcd-client: grants through `call` (any endpoint), the
/// keep-alive stream on the current one.
impl LeaseApi for Etcd {
    type GrantGuard<'a> = tokio::sync::MutexGuard<'a, ()>;
    type Renewals = (etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream);

    fn state(&self) -> LeaseState {
        *self.lease.lock().unwrap()
    }

    fn set_state(&self, state: LeaseState) {
        *self.lease.lock().unwrap() = state;
    }

    async fn grant_lock(&self) -> Self::GrantGuard<'_> {
        self.granting.lock().await
    }

    async fn grant(&self, ttl_s: i64) -> Result<i64> {
        let resp = self
            .call("granting a lease", |mut c| async move {
                c.lease_grant(ttl_s, None).await
            })
            .await?;
        Ok(resp.id())
    }

    async fn open_renewals(&self, id: i64) -> Result<Self::Renewals> {
        let mut client = self.client().await?;
        tokio::time::timeout(self.request_timeout, client.lease_keep_alive(id))
            .await
            .context("opening the lease keep-alive stream timed out")?
            .context("opening the lease keep-alive stream")
    }

    async fn renew(&self, (keeper, stream): &mut Self::Renewals, _id: i64) -> Result<bool> {
        keeper.keep_alive().await?;
        let resp = tokio::time::timeout(self.request_timeout, stream.message())
            .await
            .context("lease keep-alive timed out")??
            .ok_or_else(|| anyhow!("lease keep-alive stream closed"))?;
        Ok(resp.ttl() > 0)
    }

    async fn session_failed(&self) {
        self.rotate().await;
    }

    fn proven(&self) {
        if let Some(pet) = self.on_proof.get() {
            pet();
        }
    }
}

impl LeaderCas for Etcd {
    async fn read_doc(&self, name: &str) -> Result<(Option<String>, i64)> {
        Ok(
            match self.get_one(name, &format!("reading {name}")).await? {
                Some(kv) => (
                    Some(kv.value_str().unwrap_or_default().to_string()),
                    kv.mod_revision(),
                ),
                None => (None, 0),
            },
        )
    }

    async fn write_doc_if(&self, name: &str, rev: i64, json: String) -> Result<CasOutcome> {
        let key = self.key(name);
        let unchanged = if rev == 0 {
            Compare::create_revision(key.clone(), CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(key.clone(), CompareOp::Equal, rev)
        };
        let leader_is_me = Compare::value(self.key("leader"), CompareOp::Equal, self.me.clone());
        // On failure, the nested transaction tells which condition failed.
        let txn = Txn::new()
            .when([unchanged, leader_is_me.clone()])
            .and_then([TxnOp::put(key, json, None)])
            .or_else([TxnOp::txn(Txn::new().when([leader_is_me]).and_then([]))]);
        let r = self
            .call(&format!("writing {name}"), |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        if r.succeeded() {
            return Ok(CasOutcome::Written);
        }
        let still_leader = r
            .op_responses()
            .into_iter()
            .any(|op| matches!(op, etcd_client::TxnOpResponse::Txn(t) if t.succeeded()));
        Ok(if still_leader {
            CasOutcome::Changed
        } else {
            CasOutcome::NotLeader
        })
    }
}
