//! The records only the leader writes, each a JSON document that every
//! write extends: `history` (the timeline switches, Patroni's list) and
//! `timeline` (the newest timeline number a promotion reserved).
//!
//! A write reads the document, derives the new one, and stores it only if
//! nobody wrote it meanwhile (compare-and-set on its revision: concurrent
//! writers cannot drop each other's change) and only while the leader key
//! names me: a member that lost the key (frozen after it took it) must not
//! record a switch or a reservation the cluster never followed.
//!
//! Written once over [`LeaderCas`], which etcd-client (dcs/etcd.rs) and the
//! simulated store implement.

use anyhow::{bail, Context, Result};

use super::model::{HistoryEntry, TimelineKey};

/// What a conditional write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    Written,
    /// Someone wrote the document since it was read.
    Changed,
    /// The leader key does not name me.
    NotLeader,
}

#[allow(async_fn_in_trait)]
pub trait LeaderCas {
    /// The document's JSON and revision (0: it does not exist).
    async fn read_doc(&self, name: &str) -> Result<(Option<String>, i64)>;
    /// Store `json` if the document's revision is still `rev` and the
    /// leader key names me, in one transaction.
    async fn write_doc_if(&self, name: &str, rev: i64, json: String) -> Result<CasOutcome>;
}

/// Append one timeline switch to `history`.
pub async fn append_history<S: LeaderCas>(store: &S, entry: HistoryEntry) -> Result<()> {
    update(store, "history", |json| {
        let mut list: Vec<HistoryEntry> = json
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        list.push(entry.clone());
        Ok((serde_json::to_string(&list)?, ()))
    })
    .await
    .with_context(|| format!("recording {entry:?} in history"))
}

/// Reserve the timeline my promotion opens: `next`, or one past an earlier
/// reservation if one went that far.
pub async fn reserve_timeline<S: LeaderCas>(store: &S, next: u32) -> Result<u32> {
    update(store, "timeline", |json| {
        let held = json
            .and_then(|j| serde_json::from_str::<TimelineKey>(j).ok())
            .map_or(0, |k| k.reserved);
        let reserved = next.max(held + 1);
        Ok((serde_json::to_string(&TimelineKey { reserved })?, reserved))
    })
    .await
    .with_context(|| format!("reserving timeline {next}"))
}

async fn update<S: LeaderCas, T>(
    store: &S,
    name: &str,
    mut derive: impl FnMut(Option<&str>) -> Result<(String, T)>,
) -> Result<T> {
    for _ in 0..5 {
        let (json, rev) = store.read_doc(name).await?;
        let (new, out) = derive(json.as_deref())?;
        match store.write_doc_if(name, rev, new).await? {
            CasOutcome::Written => return Ok(out),
            CasOutcome::Changed => continue,
            CasOutcome::NotLeader => bail!("the leader key does not name me"),
        }
    }
    bail!("etcd: {name} kept changing under me")
}
