//! A member's DCS lease, kept alive: every key that says "this member is
//! here" (its member key, the leader key, an unfinished bootstrap claim) is
//! bound to it, so that a member that stops renewing loses them all at once.
//!
//! Written once over what it touches ([`LeaseApi`]: the grant, the
//! keep-alive stream, where the lease's state is kept) and a [`Clock`]:
//! pgboxd runs it over etcd-client (dcs/etcd.rs), the simulator over its
//! simulated store, so that the rules below (one grant at a time, when a
//! lease is given up, when a renewal counts) are the same in both.

use anyhow::Result;

use crate::clock::{Clock, Level};

/// The lease as this process knows it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LeaseState {
    pub id: Option<i64>,
    /// When the last renewal that succeeded was sent (`Clock::now_ms`).
    pub renewed_at: Option<u64>,
}

/// What the lease needs from the DCS and from its owner.
#[allow(async_fn_in_trait)]
pub trait LeaseApi {
    /// Held across a grant: the keep-alive task and an acquisition may both
    /// find the lease missing, and two grants would orphan one.
    type GrantGuard<'a>
    where
        Self: 'a;
    /// An open keep-alive stream.
    type Renewals;
    fn state(&self) -> LeaseState;
    fn set_state(&self, state: LeaseState);
    async fn grant_lock(&self) -> Self::GrantGuard<'_>;
    /// A new lease of `ttl_s` seconds.
    async fn grant(&self, ttl_s: i64) -> Result<i64>;
    async fn open_renewals(&self, id: i64) -> Result<Self::Renewals>;
    /// One renewal on the stream: false when the store no longer has the
    /// lease (etcd answers a TTL of 0).
    async fn renew(&self, renewals: &mut Self::Renewals, id: i64) -> Result<bool>;
    /// A keep-alive session failed: the next one tries another endpoint.
    async fn session_failed(&self);
    /// A grant or a renewal succeeded: a fresh proof of the lease, which
    /// pets the watchdog while this member leads. A grant counts as much
    /// as a renewal (fresh 3-strict-failsafe seed 6724070: a primary that
    /// re-bound its key on a new lease after a DCS outage, then lost the
    /// DCS again, counted its lease proven from the grant while its
    /// watchdog still counted from the last renewal before the outage, and
    /// was reset with its pgboxd running).
    fn proven(&self);
}

/// The TTL a lease is granted with: etcd counts in whole seconds and
/// refuses less than its minimum.
pub fn grant_ttl_s(ttl_ms: u64) -> i64 {
    (ttl_ms / 1000).max(2) as i64
}

/// How often the keep-alive renews: a few times per TTL, and at least once
/// per loop, so that a renewal that fails leaves time for another.
pub fn renew_every_ms(loop_wait_ms: u64, ttl_ms: u64) -> u64 {
    loop_wait_ms.min(ttl_ms / 3)
}

/// My lease, granted if this process has none, or has one it has not
/// renewed for a whole TTL: etcd has certainly expired that one, and a key
/// bound to it would be refused or, worse, vanish at once.
pub async fn ensure<A: LeaseApi, C: Clock>(api: &A, clock: &C, ttl_ms: u64) -> Result<i64> {
    let _one_at_a_time = api.grant_lock().await;
    let current = api.state();
    if let Some(id) = current.id {
        if current
            .renewed_at
            .is_some_and(|t| clock.now_ms().saturating_sub(t) < ttl_ms)
        {
            return Ok(id);
        }
        clock.log(
            Level::WARN,
            &format!("my DCS lease {id:x} was not renewed for a whole TTL; granting a new one"),
        );
        forget(api, id);
    }
    let ttl_s = grant_ttl_s(ttl_ms);
    let sent = clock.now_ms();
    let id = api.grant(ttl_s).await?;
    api.set_state(LeaseState {
        id: Some(id),
        renewed_at: Some(sent),
    });
    api.proven();
    clock.log(
        Level::INFO,
        &format!("granted DCS lease {id:x} (ttl {ttl_s} s)"),
    );
    Ok(id)
}

/// Drop `id` from the state, unless a newer lease replaced it meanwhile.
pub fn forget<A: LeaseApi>(api: &A, id: i64) {
    if api.state().id == Some(id) {
        api.set_state(LeaseState::default());
    }
}

/// Renew the lease every `every_ms`, for ever: a session per lease, a new
/// lease when the store has dropped the old one (`expired` then tells the
/// loop at once), `LeaseApi::proven` after every renewal that succeeded.
pub async fn keep_alive_forever<A: LeaseApi, C: Clock>(
    api: &A,
    clock: &C,
    ttl_ms: u64,
    every_ms: u64,
    expired: impl Fn(),
) {
    let mut failing = false;
    loop {
        match session(api, clock, ttl_ms, every_ms, &expired).await {
            Err(e) => {
                if !failing {
                    clock.log(
                        Level::WARN,
                        &format!("lease renewal failed; retrying: {e:#}"),
                    );
                }
                failing = true;
                api.session_failed().await;
            }
            Ok(()) => failing = false,
        }
        clock.sleep(every_ms.min(500)).await;
    }
}

async fn session<A: LeaseApi, C: Clock>(
    api: &A,
    clock: &C,
    ttl_ms: u64,
    every_ms: u64,
    expired: &impl Fn(),
) -> Result<()> {
    let id = ensure(api, clock, ttl_ms).await?;
    let mut renewals = api.open_renewals(id).await?;
    loop {
        let sent = clock.now_ms();
        if !api.renew(&mut renewals, id).await? {
            clock.log(
                Level::WARN,
                &format!("my DCS lease {id:x} expired; a new one will be granted"),
            );
            forget(api, id);
            expired();
            return Ok(());
        }
        let mut state = api.state();
        if state.id == Some(id) {
            state.renewed_at = Some(sent);
            api.set_state(state);
        }
        api.proven();
        clock.sleep(every_ms).await;
        if api.state().id != Some(id) {
            return Ok(());
        }
    }
}
