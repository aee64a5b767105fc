//! The rule behind `GET /primary` (and `/master`, `/read-write`, `/leader`):
//! whether this node may tell a router "send writes here". Pure, so that
//! the API and the simulator apply the same rule.
//!
//! A router trusts the answer at the moment it gets it, so it may rest only
//! on evidence gathered after the request arrived: never on the HA loop's
//! last snapshot, and never on a local timer (a paused VM's clocks stop, so
//! a timer cannot tell that the lease ran out during the pause).

/// Evidence gathered for one answer, every part of it after the request
/// arrived and within the check's time bound.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeaderProof {
    /// This member's name.
    pub me: String,
    /// The lease this pgboxd holds (the leader key must be bound to it).
    pub my_lease: Option<i64>,
    /// The local PostgreSQL answered a query and is not in recovery.
    pub pg_primary: bool,
    /// A linearizable read of the leader key: `Some(None)` the key is
    /// absent, `Some(Some((name, lease)))` it names `name` bound to `lease`,
    /// `None` the DCS gave no answer in time.
    pub leader_key: Option<Option<(String, i64)>>,
    /// `ha.failsafe_mode`.
    pub failsafe_mode: bool,
    /// Failsafe mode, DCS unanswered: every other PostgreSQL member
    /// accepted a `POST /failsafe` round sent for this answer.
    pub members_vouch: bool,
}

/// True when the node may answer 200: its PostgreSQL runs as primary and
/// either the DCS shows it holding the leader key on its current lease, or
/// (failsafe mode, no DCS answer) every other member has just promised not
/// to take over.
///
/// A key bound to an expired lease is deleted by etcd before anyone else
/// can create it, so a linearizable read that finds the key naming this
/// node on its lease proves that no other node held it at that instant.
/// A DCS that answers with another holder, or with no key, is believed over
/// anything the members say.
pub fn answers_primary(p: &LeaderProof) -> bool {
    if !p.pg_primary {
        return false;
    }
    match &p.leader_key {
        Some(key) => key
            .as_ref()
            .is_some_and(|(name, lease)| *name == p.me && Some(*lease) == p.my_lease),
        None => p.failsafe_mode && p.members_vouch,
    }
}

/// `/leader`: the DCS shows this node holding the leader key on its
/// current lease, whatever its PostgreSQL does (Patroni: "has the leader
/// lock"); without a DCS answer, as `/primary` in failsafe mode.
pub fn holds_leader_key(p: &LeaderProof) -> bool {
    match &p.leader_key {
        Some(key) => key
            .as_ref()
            .is_some_and(|(name, lease)| *name == p.me && Some(*lease) == p.my_lease),
        None => p.pg_primary && p.failsafe_mode && p.members_vouch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof() -> LeaderProof {
        LeaderProof {
            me: "db1".into(),
            my_lease: Some(7),
            pg_primary: true,
            leader_key: Some(Some(("db1".into(), 7))),
            failsafe_mode: false,
            members_vouch: false,
        }
    }

    #[test]
    fn the_key_on_my_lease_and_a_primary_answer_200() {
        assert!(answers_primary(&proof()));
    }

    #[test]
    fn anything_less_answers_503() {
        let cases: Vec<(&str, LeaderProof)> = vec![
            (
                "postgres not primary",
                LeaderProof {
                    pg_primary: false,
                    ..proof()
                },
            ),
            (
                "key names another",
                LeaderProof {
                    leader_key: Some(Some(("db2".into(), 9))),
                    ..proof()
                },
            ),
            (
                "key on an old lease",
                LeaderProof {
                    leader_key: Some(Some(("db1".into(), 3))),
                    ..proof()
                },
            ),
            (
                "no lease of mine",
                LeaderProof {
                    my_lease: None,
                    ..proof()
                },
            ),
            (
                "key absent",
                LeaderProof {
                    leader_key: Some(None),
                    ..proof()
                },
            ),
            (
                "no DCS answer",
                LeaderProof {
                    leader_key: None,
                    ..proof()
                },
            ),
            (
                "no DCS answer, failsafe, not every member vouched",
                LeaderProof {
                    leader_key: None,
                    failsafe_mode: true,
                    ..proof()
                },
            ),
            (
                "failsafe: members vouch but the DCS shows another holder",
                LeaderProof {
                    leader_key: Some(Some(("db2".into(), 9))),
                    failsafe_mode: true,
                    members_vouch: true,
                    ..proof()
                },
            ),
            (
                "failsafe: members vouch but postgres is not primary",
                LeaderProof {
                    leader_key: None,
                    failsafe_mode: true,
                    members_vouch: true,
                    pg_primary: false,
                    ..proof()
                },
            ),
        ];
        for (what, p) in cases {
            assert!(!answers_primary(&p), "{what}: {p:?}");
        }
    }

    #[test]
    fn failsafe_without_the_dcs_rests_on_the_members() {
        let p = LeaderProof {
            leader_key: None,
            failsafe_mode: true,
            members_vouch: true,
            ..proof()
        };
        assert!(answers_primary(&p));
    }
}
