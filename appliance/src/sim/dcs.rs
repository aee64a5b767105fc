//! The DCS with etcd's semantics where the HA protocol leans on them: keys
//! bound to leases that expire `ttl` after the last keep-alive that reached
//! the store; create-if-absent and compare-and-set transactions as
//! `dcs::etcd::Etcd` writes them; no expiry while quorum is lost, and every
//! lease renewed in full when a new etcd leader takes over (etcd's lessor
//! "promote"), which is what a member sees after an outage.

use std::collections::BTreeMap;

use crate::dcs::etcd::LeaderKey;
use crate::dcs::leader_records::CasOutcome;
use crate::dcs::model::{
    ClusterView, DynamicConfig, FailoverKey, HistoryEntry, Member, SyncKey, TimelineKey,
};

/// etcd extends every lease by about one election timeout when it elects a leader.
const PROMOTE_EXTEND_MS: u64 = 1_000;

#[derive(Debug, Clone, Default)]
pub struct SimDcs {
    /// Quorum: without it every request fails and no lease expires.
    pub up: bool,
    /// lease id -> (ttl, expires at).
    leases: BTreeMap<i64, (u64, u64)>,
    next_lease: i64,
    pub leader: Option<(String, i64)>,
    /// Whom the leader key named last, even after it vanished.
    pub last_holder: Option<String>,
    pub initialize: Option<String>,
    /// The lease an unfinished claim of `initialize` is bound to.
    pub initialize_lease: Option<i64>,
    pub members: BTreeMap<String, (Member, i64)>,
    pub status: Option<u64>,
    pub history: Vec<HistoryEntry>,
    /// Bumped on every write of `history`, for the compare-and-set append.
    pub history_rev: u64,
    /// The `timeline` key: the newest timeline a promotion reserved.
    pub reserved_timeline: u32,
    pub timeline_rev: u64,
    pub sync: Option<SyncKey>,
    pub failover: Option<FailoverKey>,
    pub config: DynamicConfig,
}

/// What a write did to the leader key, for the watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderChange {
    None,
    Put,
    Deleted,
}

impl SimDcs {
    pub fn new() -> Self {
        SimDcs {
            up: true,
            next_lease: 0x7f00,
            ..SimDcs::default()
        }
    }

    pub fn grant(&mut self, now: u64, ttl_ms: u64) -> i64 {
        self.next_lease += 1;
        self.leases.insert(self.next_lease, (ttl_ms, now + ttl_ms));
        self.next_lease
    }

    pub fn lease_alive(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// A keep-alive that reached the store: true while the lease lives (etcd
    /// answers TTL 0 for a lease it no longer has).
    pub fn keep_alive(&mut self, id: i64, now: u64) -> bool {
        match self.leases.get_mut(&id) {
            Some((ttl, expires)) => {
                *expires = now + *ttl;
                true
            }
            None => false,
        }
    }

    pub fn revoke(&mut self, id: i64) -> LeaderChange {
        self.leases.remove(&id);
        self.drop_bound(id)
    }

    fn drop_bound(&mut self, id: i64) -> LeaderChange {
        self.members.retain(|_, (_, l)| *l != id);
        if self.initialize_lease == Some(id) {
            self.initialize = None;
            self.initialize_lease = None;
        }
        if self.leader.as_ref().is_some_and(|(_, l)| *l == id) {
            self.leader = None;
            return LeaderChange::Deleted;
        }
        LeaderChange::None
    }

    pub fn next_expiry(&self) -> Option<u64> {
        if !self.up {
            return None;
        }
        self.leases.values().map(|(_, e)| *e).min()
    }

    /// Expire the leases due at `now`: the leases whose keys vanished, and
    /// whether the leader key was among them.
    pub fn expire(&mut self, now: u64) -> (Vec<i64>, LeaderChange) {
        let due: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, (_, e))| *e <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut change = LeaderChange::None;
        for id in &due {
            self.leases.remove(id);
            if self.drop_bound(*id) == LeaderChange::Deleted {
                change = LeaderChange::Deleted;
            }
        }
        (due, change)
    }

    pub fn lose_quorum(&mut self) {
        self.up = false;
    }

    pub fn regain_quorum(&mut self, now: u64) {
        self.up = true;
        for (ttl, expires) in self.leases.values_mut() {
            *expires = (*expires).max(now + PROMOTE_EXTEND_MS + *ttl);
        }
    }

    fn check_lease(&self, lease: i64) -> Result<(), String> {
        if self.leases.contains_key(&lease) {
            Ok(())
        } else {
            Err(format!("etcdserver: requested lease not found ({lease:x})"))
        }
    }

    /// `Etcd::acquire_leader`: create bound to my lease if absent, or re-bind
    /// if the key already names me.
    pub fn acquire_leader(&mut self, me: &str, lease: i64) -> Result<(bool, LeaderChange), String> {
        self.check_lease(lease)?;
        match &self.leader {
            None => {}
            Some((name, _)) if name == me => {}
            Some(_) => return Ok((false, LeaderChange::None)),
        }
        self.leader = Some((me.to_string(), lease));
        self.last_holder = Some(me.to_string());
        Ok((true, LeaderChange::Put))
    }

    /// `Etcd::retake_leader`: only if nobody holds the key and the sync
    /// key is still `sync`.
    pub fn retake_leader(
        &mut self,
        me: &str,
        lease: i64,
        sync: &SyncKey,
    ) -> Result<(bool, LeaderChange), String> {
        self.check_lease(lease)?;
        if self.leader.is_some() || self.sync.as_ref() != Some(sync) {
            return Ok((false, LeaderChange::None));
        }
        self.leader = Some((me.to_string(), lease));
        self.last_holder = Some(me.to_string());
        Ok((true, LeaderChange::Put))
    }

    /// The leader key names `me` (the condition of the leader-only writes).
    pub fn leader_is(&self, me: &str) -> bool {
        self.leader.as_ref().is_some_and(|(n, _)| n == me)
    }

    /// `Etcd::release_leader`: delete if it names me.
    pub fn release_leader(&mut self, me: &str) -> LeaderChange {
        if self.leader.as_ref().is_some_and(|(n, _)| n == me) {
            self.leader = None;
            return LeaderChange::Deleted;
        }
        LeaderChange::None
    }

    /// Claimed on the claimer's lease: an abandoned bootstrap frees it.
    pub fn claim_initialize(&mut self, lease: i64) -> Result<bool, String> {
        self.check_lease(lease)?;
        if self.initialize.is_some() {
            return Ok(false);
        }
        self.initialize = Some(String::new());
        self.initialize_lease = Some(lease);
        Ok(true)
    }

    /// The system identifier, for good: no longer bound to any lease.
    pub fn set_initialize(&mut self, sysid: String) {
        self.initialize = Some(sysid);
        self.initialize_lease = None;
    }

    pub fn put_member(&mut self, name: &str, member: Member, lease: i64) -> Result<(), String> {
        self.check_lease(lease)?;
        self.members.insert(name.to_string(), (member, lease));
        Ok(())
    }

    /// Create the `failover` key unless a request is pending.
    pub fn request_failover(&mut self, req: FailoverKey) -> bool {
        if self.failover.is_some() {
            return false;
        }
        self.failover = Some(req);
        true
    }

    /// A leader-written document (dcs/leader_records.rs) as JSON, with
    /// its revision (0: never written).
    pub fn doc(&self, name: &str) -> Result<(Option<String>, i64), String> {
        let (json, rev) = match name {
            "history" => (serde_json::to_string(&self.history), self.history_rev),
            "timeline" => (
                serde_json::to_string(&TimelineKey {
                    reserved: self.reserved_timeline,
                }),
                self.timeline_rev,
            ),
            _ => return Err(format!("no document {name} in the simulated store")),
        };
        let json = json.map_err(|e| e.to_string())?;
        Ok(((rev > 0).then_some(json), rev as i64))
    }

    /// The transaction of `LeaderCas::write_doc_if`.
    pub fn write_doc_if(
        &mut self,
        me: &str,
        name: &str,
        rev: i64,
        json: &str,
    ) -> Result<CasOutcome, String> {
        if !self.leader_is(me) {
            return Ok(CasOutcome::NotLeader);
        }
        if self.doc(name)?.1 != rev {
            return Ok(CasOutcome::Changed);
        }
        let bad = |e: serde_json::Error| format!("{name}: {e}");
        match name {
            "history" => {
                self.history = serde_json::from_str(json).map_err(bad)?;
                self.history_rev += 1;
            }
            _ => {
                let k: TimelineKey = serde_json::from_str(json).map_err(bad)?;
                self.reserved_timeline = k.reserved;
                self.timeline_rev += 1;
            }
        }
        Ok(CasOutcome::Written)
    }

    /// One consistent read of everything, as `Etcd::read_view` returns it.
    pub fn read_view(&self) -> (ClusterView, Option<LeaderKey>) {
        let view = ClusterView {
            leader: self.leader.as_ref().map(|(n, _)| n.clone()),
            initialize: self.initialize.clone(),
            members: self
                .members
                .iter()
                .map(|(n, (m, _))| (n.clone(), m.clone()))
                .collect(),
            last_leader_lsn: self.status,
            history: self.history.clone(),
            sync: self.sync.clone(),
            failover: self.failover.clone(),
            config: self.config.clone(),
            reserved_timeline: (self.timeline_rev > 0).then_some(self.reserved_timeline),
        };
        let key = self.leader.as_ref().map(|(n, l)| LeaderKey {
            name: n.clone(),
            lease: *l,
        });
        (view, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfinished_initialize_claim_vanishes_with_its_lease() {
        let mut d = SimDcs::new();
        let a = d.grant(0, 10_000);
        let b = d.grant(0, 10_000);
        assert_eq!(d.claim_initialize(a), Ok(true));
        assert_eq!(d.claim_initialize(b), Ok(false));
        // The bootstrapper dies: its claim goes with its lease.
        assert!(d.keep_alive(b, 5_000));
        d.expire(10_000);
        assert_eq!(d.initialize, None);
        assert_eq!(d.claim_initialize(b), Ok(true));
        // A finished bootstrap outlives the lease.
        d.set_initialize("7000".into());
        d.expire(15_000);
        assert_eq!(d.initialize.as_deref(), Some("7000"));
    }

    #[test]
    fn leader_key_follows_its_lease() {
        let mut d = SimDcs::new();
        let a = d.grant(0, 10_000);
        let b = d.grant(0, 10_000);
        assert_eq!(d.acquire_leader("db1", a), Ok((true, LeaderChange::Put)));
        assert_eq!(d.acquire_leader("db2", b), Ok((false, LeaderChange::None)));
        // Re-binding to a new lease of the same member is allowed.
        let a2 = d.grant(0, 10_000);
        assert_eq!(d.acquire_leader("db1", a2), Ok((true, LeaderChange::Put)));
        assert!(d.keep_alive(a2, 5_000));
        let (expired, change) = d.expire(10_000);
        assert_eq!(expired, vec![a, b]);
        assert_eq!(change, LeaderChange::None);
        assert_eq!(d.leader.as_ref().map(|(n, _)| n.as_str()), Some("db1"));
        let (_, change) = d.expire(15_000);
        assert_eq!(change, LeaderChange::Deleted);
        assert!(d.leader.is_none());
        assert!(!d.keep_alive(a2, 15_001));
        assert!(d.acquire_leader("db2", a2).is_err());
    }

    #[test]
    fn no_expiry_without_quorum_and_full_ttl_after() {
        let mut d = SimDcs::new();
        let a = d.grant(0, 10_000);
        d.acquire_leader("db1", a).unwrap();
        d.lose_quorum();
        assert_eq!(d.next_expiry(), None);
        d.regain_quorum(30_000);
        assert_eq!(d.next_expiry(), Some(30_000 + PROMOTE_EXTEND_MS + 10_000));
    }
}
