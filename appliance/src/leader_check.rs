//! The check behind `GET /primary` (and `/`, `/master`, `/read-write`,
//! `/leader`): fresh evidence per request, judged by `ha::answers_primary`.
//!
//! The HA loop's snapshot cannot answer these: it is as old as the last
//! loop, and after pgboxd or its whole machine was paused it still says
//! "leader" while another node holds the key. So each answer asks, within
//! `budget`, the local PostgreSQL (`pg_is_in_recovery()` on a connection of
//! its own) and then etcd (a linearizable read of the leader key) — the DCS
//! last, so the instant that proves the key is as close to the answer as it
//! can be. In failsafe mode a DCS that does not answer is replaced by a
//! `POST /failsafe` round that every other member must accept.
//!
//! Concurrent requests share checks (single flight), but a request only
//! takes the result of a check that *started after it arrived*: a result
//! never stands in for a later instant, however recent a local clock says
//! it is.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::Config;
use crate::dcs::etcd::Etcd;
use crate::ha::{answers_primary, LeaderProof};

/// What the check needs to gather its evidence.
pub struct Sources {
    pub me: String,
    pub dcs: Arc<Etcd>,
    pub pg: tokio_postgres::Config,
    pub cfg: Arc<Config>,
    /// The API client of the failsafe rounds.
    pub http: reqwest::Client,
}

/// Which question an endpoint asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// `/`, `/primary`, `/master`, `/read-write`: the writable leader.
    Primary,
    /// `/leader`: holds the leader key (Patroni: "has the leader lock").
    Leader,
}

pub struct LeaderCheck {
    inner: Arc<Inner>,
}

struct Inner {
    sources: Sources,
    budget: Duration,
    flight: Mutex<Flight>,
    /// The newest finished check: (its number, its evidence).
    done: watch::Sender<(u64, Option<LeaderProof>)>,
}

#[derive(Default)]
struct Flight {
    /// Number of the newest check started.
    started: u64,
    running: bool,
    /// The newest check number a waiting request needs.
    wanted: u64,
}

impl LeaderCheck {
    /// `budget`: how long one check may take before it counts as failed.
    pub fn new(sources: Sources, budget: Duration) -> Self {
        let (done, _) = watch::channel((0, None));
        LeaderCheck {
            inner: Arc::new(Inner {
                sources,
                budget,
                flight: Mutex::new(Flight::default()),
                done,
            }),
        }
    }

    /// The budget `pgboxd` uses: well inside HAProxy's `timeout check 2s`
    /// even when a request waits for the check in flight to end and for
    /// one of its own (two budgets), and a quarter of a short TTL.
    pub fn budget_for(ttl: Duration) -> Duration {
        Duration::from_millis(800).min(ttl / 4)
    }

    /// Answer `question` from a check that starts after this call: false on
    /// any failure, or when no such check finished within two budgets.
    pub async fn answer(&self, question: Question) -> bool {
        let inner = &self.inner;
        let mut rx = inner.done.subscribe();
        let want = {
            let mut f = inner.flight.lock().unwrap_or_else(PoisonError::into_inner);
            // A check already under way may have read the DCS before this
            // request arrived: wait for the next one.
            let want = f.started + 1;
            f.wanted = f.wanted.max(want);
            if !f.running {
                f.running = true;
                f.started = want;
                tokio::spawn(inner.clone().run(want));
            }
            want
        };
        let wait = async {
            loop {
                {
                    let (n, proof) = &*rx.borrow_and_update();
                    if *n >= want {
                        return proof.clone();
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        let proof = tokio::time::timeout(2 * inner.budget, wait)
            .await
            .ok()
            .flatten();
        let Some(proof) = proof else { return false };
        match question {
            Question::Primary => answers_primary(&proof),
            Question::Leader => crate::ha::holds_leader_key(&proof),
        }
    }
}

impl Inner {
    /// Run check `n`, then every further one a request waits for.
    async fn run(self: Arc<Self>, mut n: u64) {
        loop {
            let proof = self.gather().await;
            let mut f = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
            self.done.send_replace((n, proof));
            if f.wanted > n {
                n = f.wanted;
                f.started = n;
            } else {
                f.running = false;
                return;
            }
        }
    }

    /// The evidence, gathered within the budget; None when it took longer
    /// (a pgboxd stopped mid-check must not answer from what it saw before).
    async fn gather(&self) -> Option<LeaderProof> {
        let s = &self.sources;
        let began = Instant::now();
        let left = || self.budget.saturating_sub(began.elapsed());
        let pg_primary = matches!(
            tokio::time::timeout(left(), crate::postgres::runs_as_primary(&s.pg)).await,
            Ok(Ok(true))
        );
        let mut proof = LeaderProof {
            me: s.me.clone(),
            my_lease: s.dcs.lease_id(),
            pg_primary,
            leader_key: None,
            failsafe_mode: s.cfg.ha.failsafe_mode,
            members_vouch: false,
        };
        // In failsafe mode a silent DCS must leave time for the round that
        // replaces it: the read gets half of what is left.
        let read_budget = if proof.failsafe_mode && pg_primary {
            left() / 2
        } else {
            left()
        };
        proof.leader_key = match tokio::time::timeout(read_budget, s.dcs.read_leader_key()).await {
            Ok(Ok(key)) => Some(key.map(|k| (k.name, k.lease))),
            Ok(Err(e)) => {
                tracing::debug!(error = %format!("{e:#}"), "leader check: cannot read the leader key");
                None
            }
            Err(_) => None,
        };
        if proof.leader_key.is_none() && proof.failsafe_mode && pg_primary {
            proof.members_vouch =
                tokio::time::timeout(left(), crate::failsafe::round(&s.http, &s.cfg, &s.me))
                    .await
                    .unwrap_or(false);
        }
        (began.elapsed() <= self.budget).then_some(proof)
    }
}
