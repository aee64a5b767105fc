//! Failsafe mode's I/O (`ha.failsafe_mode`; the decisions are in `ha`).
//!
//! A primary that cannot reach the DCS asks every other PostgreSQL member,
//! through its API (`POST /failsafe`), to promise not to take over. Each
//! member that accepts keeps the promise for one TTL, which its HA loop
//! reads from the `Promises` here; the primary stays primary only while
//! the last round that every member accepted is recent.
//!
//! A member's promise lives in memory, so a restarted pgboxd counts as
//! having promised at its start: it cannot know what it promised before.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Role};

/// The body of `POST /failsafe`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The primary asking.
    pub leader: String,
}

/// The last promise this member gave: to whom (None: assumed at start) and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Promise {
    pub to: Option<String>,
    pub at: Instant,
}

/// This member's promise, shared by the API (which gives it) and the HA
/// loop (which keeps it).
#[derive(Debug, Clone)]
pub struct Promises(Arc<Mutex<Promise>>);

impl Promises {
    /// As at a start: promised to nobody in particular, now.
    pub fn new() -> Self {
        Promises(Arc::new(Mutex::new(Promise {
            to: None,
            at: Instant::now(),
        })))
    }

    pub fn give(&self, to: &str) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Promise {
            to: Some(to.to_string()),
            at: Instant::now(),
        };
    }

    pub fn last(&self) -> Promise {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Default for Promises {
    fn default() -> Self {
        Self::new()
    }
}

/// What `POST /failsafe` needs to judge a request.
#[derive(Debug, Clone)]
pub struct Desk {
    pub promises: Promises,
    /// This member's name.
    pub me: String,
    /// The PostgreSQL members (name, address): only they may ask, each
    /// from its own address.
    pub members: Vec<(String, IpAddr)>,
    /// Each PostgreSQL member's `/patroni` URL: what `GET /failsafe`
    /// shows, Patroni's failsafe topology.
    pub topology: std::collections::BTreeMap<String, String>,
}

impl Desk {
    pub fn new(cfg: &Config, me: &str, promises: Promises) -> Self {
        Desk {
            promises,
            me: me.to_string(),
            members: cfg
                .nodes_with(Role::Postgres)
                .map(|n| (n.name.clone(), n.address))
                .collect(),
            topology: cfg
                .nodes_with(Role::Postgres)
                .map(|n| (n.name.clone(), cfg.api_url(n)))
                .collect(),
        }
    }

    /// Whether `source` may speak for `leader`: it is that member's own
    /// address (or a loopback source, for a member on a loopback address,
    /// as connections between loopback addresses leave from 127.0.0.1).
    pub fn may_speak_for(&self, leader: &str, source: Option<IpAddr>) -> Result<(), String> {
        if leader == self.me {
            return Err(format!("{leader} is this member itself"));
        }
        let Some((_, addr)) = self.members.iter().find(|(n, _)| n == leader) else {
            return Err(format!(
                "{leader:?} is not a PostgreSQL member of this cluster"
            ));
        };
        match source {
            Some(s) if s == *addr || (s.is_loopback() && addr.is_loopback()) => Ok(()),
            Some(s) => Err(format!(
                "a failsafe request for {leader} must come from its address {addr}, not {s}"
            )),
            None => Err("the request's source address is unknown".into()),
        }
    }
}

/// `POST /failsafe` to every other PostgreSQL member at once, as `me`:
/// true when all of them accepted. The HA loop sends one every loop while
/// primary without the DCS; the check behind `GET /primary` sends its own.
pub async fn round(http: &reqwest::Client, cfg: &Config, me: &str) -> bool {
    let body = Request {
        leader: me.to_string(),
    };
    let asks = cfg
        .nodes_with(Role::Postgres)
        .filter(|n| n.name != me)
        .map(|n| {
            let url = format!("{}/failsafe", cfg.api_base(n));
            let request = http.post(&url).json(&body);
            let name = n.name.clone();
            async move {
                match request.send().await {
                    Ok(r) if r.status().is_success() => true,
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        tracing::warn!(member = %name, %status, answer = %text, "failsafe: refused");
                        false
                    }
                    Err(e) => {
                        tracing::warn!(member = %name, error = %e, "failsafe: no answer");
                        false
                    }
                }
            }
        });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .all(|ok| ok)
}
