//! The HA core against a table of situations. Each row is one situation a
//! real cluster gets into, and the actions the protocol demands there.

use super::*;
use crate::dcs::model::{HistoryEntry, Member};

const NOW: u64 = 100_000;

fn settings() -> Settings {
    Settings {
        ttl_ms: 10_000,
        loop_wait_ms: 1_000,
        maximum_lag_on_failover: 1_000,
        use_pg_rewind: true,
        on_rewind_failure: RewindFailure::Basebackup,
        synchronous_mode: SyncMode::Off,
        primary_start_timeout_ms: 30_000,
        can_lead: true,
        failsafe_mode: false,
    }
}

fn member(state: &str, role: &str) -> Member {
    Member {
        state: state.into(),
        role: role.into(),
        ..Member::default()
    }
}

/// db1 observing a two-node cluster; tweak fields per row.
fn obs() -> Observation {
    Observation {
        now_ms: NOW,
        now_unix_ms: 1_800_000_000_000,
        me: "db1".into(),
        tags: Tags::default(),
        settings: settings(),
        dcs: Some(ClusterView {
            leader: None,
            initialize: Some("7000".into()),
            members: vec![("db2".into(), member("running", "primary"))],
            last_leader_lsn: Some(5_000),
            history: vec![],
            ..ClusterView::default()
        }),
        lease: Lease {
            held: false,
            renewed_at_ms: Some(NOW - 500),
        },
        pg: LocalPg {
            data: DataDir::Initialized {
                system_id: "7000".into(),
                was_primary: false,
                clean_stop: None,
            },
            running: true,
            starting: false,
            role: Role::Replica,
            timeline: Some(1),
            lsn: Some(5_000),
            streaming: true,
            configured_upstream: None,
            standbys: vec![],
            sync_names: String::new(),
            pending_restart: false,
            server_version: Some(150018),
            forks: vec![],
        },
        peers: vec![],
        failsafe: Failsafe::default(),
    }
}

fn with_leader(mut o: Observation, leader: Option<&str>) -> Observation {
    o.dcs.as_mut().unwrap().leader = leader.map(String::from);
    o
}

fn primary(mut o: Observation) -> Observation {
    o.pg.role = Role::Primary;
    o.pg.streaming = false;
    o.pg.data = DataDir::Initialized {
        system_id: "7000".into(),
        was_primary: true,
        clean_stop: None,
    };
    o
}

/// Stopped cleanly at `checkpoint` on timeline 1; the history says timeline
/// 1 ended at `fork`.
fn clean_stop_at(mut o: Observation, checkpoint: u64, fork: u64) -> Observation {
    o.pg.data = DataDir::Initialized {
        system_id: "7000".into(),
        was_primary: true,
        clean_stop: Some(CleanStop {
            timeline: 1,
            checkpoint,
        }),
    };
    o.dcs.as_mut().unwrap().history = vec![HistoryEntry(
        1,
        fork,
        "switchover".into(),
        "2026-11-25T00:00:00Z".into(),
        "db2".into(),
    )];
    o
}

fn stopped(mut o: Observation) -> Observation {
    o.pg.running = false;
    o.pg.role = Role::Unknown;
    o.pg.lsn = None;
    o.pg.streaming = false;
    o
}

fn peer(name: &str, role: Role, lsn: u64) -> Peer {
    Peer {
        name: name.into(),
        reachable: true,
        role,
        lsn: Some(lsn),
        timeline: Some(1),
        nofailover: false,
        failover_priority: 1,
        postgres: None,
    }
}

fn replica_of(leader: &str) -> Action {
    Action::Start(StartAs::Replica {
        leader: Some(leader.into()),
    })
}

#[test]
fn situations() {
    use Action::*;
    let fresh = {
        let mut o = stopped(obs());
        o.pg.data = DataDir::Empty;
        o.dcs.as_mut().unwrap().initialize = None;
        o.dcs.as_mut().unwrap().members.clear();
        o
    };
    let rows: Vec<(&str, Observation, Memory, Vec<Action>)> = vec![
        (
            "fresh cluster: race to bootstrap",
            fresh.clone(),
            Memory::default(),
            vec![ClaimInitialize, AcquireLeader, Bootstrap],
        ),
        (
            "fresh cluster, tagged nofailover: never bootstrap (the first primary must be one that may lead)",
            {
                let mut o = fresh.clone();
                o.tags.nofailover = true;
                o
            },
            Memory::default(),
            vec![],
        ),
        (
            "bootstrap lost: clone from the running leader",
            with_leader(
                {
                    let mut o = fresh.clone();
                    o.dcs.as_mut().unwrap().initialize = Some("7000".into());
                    o.dcs.as_mut().unwrap().members =
                        vec![("db2".into(), member("running", "primary"))];
                    o
                },
                Some("db2"),
            ),
            Memory::default(),
            vec![BaseBackup { from: "db2".into() }, replica_of("db2")],
        ),
        (
            "bootstrap in progress elsewhere: wait",
            with_leader(
                {
                    let mut o = fresh.clone();
                    o.dcs.as_mut().unwrap().initialize = Some(String::new());
                    o.dcs.as_mut().unwrap().members =
                        vec![("db2".into(), member("bootstrapping", "primary"))];
                    o
                },
                Some("db2"),
            ),
            Memory::default(),
            vec![],
        ),
        (
            "healthy leader: nothing to do",
            with_leader(primary(obs()), Some("db1")).with_lease_held(),
            Memory::default(),
            vec![],
        ),
        (
            "healthy replica already following: nothing",
            with_leader(obs(), Some("db2")).upstream("db2"),
            Memory::default(),
            vec![],
        ),
        (
            "replica pointed elsewhere: follow the leader",
            with_leader(obs(), Some("db2")),
            Memory::default(),
            vec![Follow {
                leader: "db2".into(),
            }],
        ),
        (
            "primary while another holds the key: demote now",
            with_leader(primary(obs()), Some("db2")),
            Memory::default(),
            vec![Stop],
        ),
        (
            "old primary down, another leads: rewind then follow",
            with_leader(stopped(primary(obs())), Some("db2")),
            Memory::default(),
            vec![Rewind { from: "db2".into() }, replica_of("db2")],
        ),
        (
            "old primary stopped cleanly before the new leader forked: follow without rewind",
            clean_stop_at(
                with_leader(stopped(primary(obs())), Some("db2")),
                4_000,
                4_100,
            ),
            Memory::default(),
            vec![replica_of("db2")],
        ),
        (
            "old primary stopped cleanly past the fork point: rewind",
            clean_stop_at(
                with_leader(stopped(primary(obs())), Some("db2")),
                4_000,
                4_000,
            ),
            Memory::default(),
            vec![Rewind { from: "db2".into() }, replica_of("db2")],
        ),
        (
            "old primary stopped cleanly, the new leader's fork point not recorded yet: wait",
            {
                let mut o = clean_stop_at(
                    with_leader(stopped(primary(obs())), Some("db2")),
                    4_000,
                    4_100,
                );
                o.dcs.as_mut().unwrap().history.clear();
                o
            },
            Memory {
                down_since_ms: Some(NOW - 1_000),
                ..Memory::default()
            },
            vec![],
        ),
        (
            "old primary stopped cleanly, still no fork point recorded after a TTL: rewind",
            {
                let mut o = clean_stop_at(
                    with_leader(stopped(primary(obs())), Some("db2")),
                    4_000,
                    4_100,
                );
                o.dcs.as_mut().unwrap().history.clear();
                o
            },
            Memory {
                down_since_ms: Some(NOW - 60_000),
                ..Memory::default()
            },
            vec![Rewind { from: "db2".into() }, replica_of("db2")],
        ),
        (
            "rewind failed: fresh base backup",
            with_leader(stopped(primary(obs())), Some("db2")),
            Memory {
                rewind_failed: true,
                ..Memory::default()
            },
            vec![
                RemoveData,
                BaseBackup { from: "db2".into() },
                replica_of("db2"),
            ],
        ),
        (
            "rewind failed and the policy is stop: stay down",
            {
                let mut o = with_leader(stopped(primary(obs())), Some("db2"));
                o.settings.on_rewind_failure = RewindFailure::Stop;
                o
            },
            Memory {
                rewind_failed: true,
                ..Memory::default()
            },
            vec![],
        ),
        (
            "replica down, another leads: start following",
            with_leader(stopped(obs()), Some("db2")),
            Memory::default(),
            vec![replica_of("db2")],
        ),
        (
            "crash while holding the lease: restart in place as primary",
            with_leader(stopped(primary(obs())), Some("db1")).with_lease_held(),
            Memory::default(),
            vec![Start(StartAs::Primary)],
        ),
        (
            "leader's PostgreSQL will not come back: give up the key",
            with_leader(stopped(primary(obs())), Some("db1")).with_lease_held(),
            Memory {
                down_since_ms: Some(NOW - 31_000),
                ..Memory::default()
            },
            vec![ReleaseLeader],
        ),
        (
            "restarted pgboxd finds its own key: re-bind it, start primary",
            with_leader(stopped(primary(obs())), Some("db1")),
            Memory::default(),
            vec![AcquireLeader, Start(StartAs::Primary)],
        ),
        (
            "nobody leads and I am down: start read-only, never writable",
            stopped(primary(obs())),
            Memory::default(),
            vec![Start(StartAs::Replica { leader: None })],
        ),
        (
            "leader gone, I am the most advanced healthy replica: race and promote",
            {
                let mut o = obs();
                o.peers = vec![peer("db3", Role::Replica, 4_000)];
                o
            },
            Memory::default(),
            vec![AcquireLeader, Promote],
        ),
        (
            "leader gone, a peer is further ahead: defer",
            {
                let mut o = obs();
                o.peers = vec![peer("db3", Role::Replica, 6_000)];
                o
            },
            Memory::default(),
            vec![],
        ),
        (
            "leader gone, an unreachable peer does not block",
            {
                let mut o = obs();
                o.peers = vec![Peer {
                    reachable: false,
                    ..peer("db3", Role::Replica, 9_000)
                }];
                o
            },
            Memory::default(),
            vec![AcquireLeader, Promote],
        ),
        (
            "leader gone, equal peer with higher priority: defer",
            {
                let mut o = obs();
                o.peers = vec![Peer {
                    failover_priority: 5,
                    ..peer("db3", Role::Replica, 5_000)
                }];
                o
            },
            Memory::default(),
            vec![],
        ),
        (
            "leader gone, a nofailover peer further ahead does not block",
            {
                let mut o = obs();
                o.peers = vec![Peer {
                    nofailover: true,
                    ..peer("db3", Role::Replica, 9_000)
                }];
                o
            },
            Memory::default(),
            vec![AcquireLeader, Promote],
        ),
        (
            "leader gone but the old primary still answers as primary: wait for it to fence",
            {
                let mut o = obs();
                o.peers = vec![peer("db2", Role::Primary, 5_000)];
                o
            },
            Memory::default(),
            vec![],
        ),
        (
            "leader gone, I lag more than maximum_lag_on_failover: no race",
            {
                let mut o = obs();
                o.pg.lsn = Some(3_000);
                o
            },
            Memory::default(),
            vec![],
        ),
        (
            "leader gone, the watchdog is required but missing: no race",
            {
                let mut o = obs();
                o.settings.can_lead = false;
                o
            },
            Memory::default(),
            vec![],
        ),
        (
            "leader gone, but my lease renewals are not working: no race",
            {
                let mut o = obs();
                o.lease.renewed_at_ms = Some(NOW - 9_000);
                o
            },
            Memory::default(),
            vec![],
        ),
        (
            "leader gone, I am tagged nofailover: no race",
            {
                let mut o = obs();
                o.tags.nofailover = true;
                o
            },
            Memory::default(),
            vec![],
        ),
        (
            "leader gone, I am on an older timeline than the history: no race",
            {
                let mut o = obs();
                o.dcs.as_mut().unwrap().history = vec![HistoryEntry(
                    1,
                    4_000,
                    "promoted".into(),
                    "t".into(),
                    "db2".into(),
                )];
                o
            },
            Memory::default(),
            vec![],
        ),
        (
            "primary lost its key, nobody took it: re-acquire",
            primary(obs()),
            Memory::default(),
            vec![AcquireLeader],
        ),
        (
            "primary lost its key while another was promoted after it (timeline 2 in history): demote, never retake",
            {
                let mut o = primary(obs());
                o.dcs.as_mut().unwrap().history = vec![HistoryEntry(
                    1,
                    4_000,
                    "promoted db2".into(),
                    "t".into(),
                    "db2".into(),
                )];
                o
            },
            Memory::default(),
            vec![Stop],
        ),
        (
            "primary lost its key and db2 reserved timeline 2 (its history entry not written): demote, never retake",
            {
                let mut o = primary(obs());
                o.dcs.as_mut().unwrap().reserved_timeline = Some(2);
                o
            },
            Memory::default(),
            vec![Stop],
        ),
        (
            "primary on the timeline it reserved itself: retake the free key",
            {
                let mut o = primary(obs());
                o.pg.timeline = Some(2);
                o.dcs.as_mut().unwrap().reserved_timeline = Some(2);
                o
            },
            Memory::default(),
            vec![AcquireLeader],
        ),
        (
            "sync mode: primary lost its key and db2 has taken over the sync key (its history entry not written): demote",
            {
                let mut o = primary(obs());
                o.settings.synchronous_mode = SyncMode::Strict;
                o.dcs.as_mut().unwrap().sync = sync_key("db2", None);
                o
            },
            Memory::default(),
            vec![Stop],
        ),
        (
            "sync mode: primary lost its key, the sync key is still mine: re-acquire",
            {
                let mut o = primary(obs());
                o.settings.synchronous_mode = SyncMode::Strict;
                o.dcs.as_mut().unwrap().sync = sync_key("db1", Some("db2"));
                o
            },
            Memory::default(),
            vec![AcquireLeader],
        ),
        (
            "key names me, replica, but a member was promoted after my view (timeline 2 in history): give the key up",
            {
                let mut o = with_leader(obs(), Some("db1")).with_lease_held();
                o.dcs.as_mut().unwrap().history = vec![HistoryEntry(
                    1,
                    4_000,
                    "promoted db2".into(),
                    "t".into(),
                    "db2".into(),
                )];
                o
            },
            Memory::default(),
            vec![ReleaseLeader],
        ),
        (
            "key names me, replica: promote",
            with_leader(obs(), Some("db1")).with_lease_held(),
            Memory::default(),
            vec![Promote],
        ),
        (
            "leader with failing renewals: demote before the lease can expire",
            {
                let mut o = with_leader(primary(obs()), Some("db1")).with_lease_held();
                o.lease.renewed_at_ms = Some(NOW - 9_000);
                o
            },
            Memory::default(),
            vec![Stop, Start(StartAs::Replica { leader: None })],
        ),
        (
            "DCS unreachable, primary with a valid lease: stay",
            {
                let mut o = primary(obs()).with_lease_held();
                o.dcs = None;
                o
            },
            Memory::default(),
            vec![],
        ),
        (
            "DCS unreachable, primary whose lease may have expired: demote",
            {
                let mut o = primary(obs()).with_lease_held();
                o.dcs = None;
                o.lease.renewed_at_ms = Some(NOW - 8_000);
                o
            },
            Memory::default(),
            vec![Stop, Start(StartAs::Replica { leader: None })],
        ),
        (
            "DCS unreachable, replica: no promotion",
            {
                let mut o = obs();
                o.dcs = None;
                o
            },
            Memory::default(),
            vec![],
        ),
        (
            "replica stuck behind the leader's timeline: rewind",
            {
                let mut o = with_leader(obs(), Some("db2")).upstream("db2");
                o.pg.streaming = false;
                o.dcs.as_mut().unwrap().members = vec![(
                    "db2".into(),
                    Member {
                        timeline: Some(2),
                        ..member("running", "primary")
                    },
                )];
                o
            },
            Memory {
                not_streaming_since_ms: Some(NOW - 60_000),
                ..Memory::default()
            },
            vec![Stop, Rewind { from: "db2".into() }, replica_of("db2")],
        ),
        (
            "replica on a newer timeline than the leader's (its promotion never acknowledged, the old leader took its key back): rewind",
            {
                let mut o = with_leader(obs(), Some("db2")).upstream("db2");
                o.pg.streaming = false;
                o.pg.timeline = Some(2);
                o.dcs.as_mut().unwrap().members = vec![(
                    "db2".into(),
                    Member {
                        timeline: Some(1),
                        ..member("running", "primary")
                    },
                )];
                o
            },
            Memory {
                not_streaming_since_ms: Some(NOW - 60_000),
                ..Memory::default()
            },
            vec![Stop, Rewind { from: "db2".into() }, replica_of("db2")],
        ),
        (
            "replica briefly not streaming after a timeline switch: wait",
            {
                let mut o = with_leader(obs(), Some("db2")).upstream("db2");
                o.pg.streaming = false;
                o.dcs.as_mut().unwrap().members = vec![(
                    "db2".into(),
                    Member {
                        timeline: Some(2),
                        ..member("running", "primary")
                    },
                )];
                o
            },
            Memory {
                not_streaming_since_ms: Some(NOW - 3_000),
                ..Memory::default()
            },
            vec![],
        ),
        (
            "data from another cluster: refuse",
            {
                let mut o = with_leader(stopped(obs()), Some("db2"));
                o.pg.data = DataDir::Initialized {
                    system_id: "9999".into(),
                    was_primary: false,
                    clean_stop: None,
                };
                o
            },
            Memory::default(),
            vec![],
        ),
    ];
    let mut failures = Vec::new();
    for (name, o, mem, expected) in rows {
        let d = decide(&o, &mem);
        assert!(
            !d.reason.is_empty(),
            "{name}: a decision always has a reason"
        );
        if d.actions != expected {
            failures.push(format!(
                "{name}:\n  expected {expected:?}\n  got      {:?} ({})",
                d.actions, d.reason
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn never_promotes_without_the_dcs() {
    // Whatever the local state, an unreachable DCS never yields a promotion
    // or a key acquisition.
    for role in [Role::Primary, Role::Replica, Role::Unknown] {
        for running in [true, false] {
            for renewed in [None, Some(NOW - 100), Some(NOW - 50_000)] {
                let mut o = obs();
                o.dcs = None;
                o.pg.role = role;
                o.pg.running = running;
                o.lease.renewed_at_ms = renewed;
                let d = decide(&o, &Memory::default());
                assert!(
                    !d.actions.iter().any(|a| matches!(
                        a,
                        Action::Promote | Action::AcquireLeader | Action::Start(StartAs::Primary)
                    )),
                    "{role:?} running={running} renewed={renewed:?}: {d:?}"
                );
            }
        }
    }
}

#[test]
fn promotion_always_follows_a_key_acquisition_or_a_held_key() {
    // Promote only ever comes after AcquireLeader in the same decision, or
    // when the key is already held: the executor stops at a failed acquire.
    let variants = [
        obs(),
        with_leader(obs(), Some("db1")),
        with_leader(obs(), Some("db1")).with_lease_held(),
    ];
    for o in variants {
        let d = decide(&o, &Memory::default());
        if let Some(p) = d.actions.iter().position(|a| *a == Action::Promote) {
            let acquired_before = d.actions[..p].contains(&Action::AcquireLeader);
            assert!(acquired_before || o.lease.held, "{d:?}");
        }
    }
}

#[test]
fn memory_tracks_rewind_failure() {
    let m = Memory::default().absorb(&Action::Rewind { from: "db2".into() }, &Outcome::Failed);
    assert!(m.rewind_failed);
    let m = m.absorb(&Action::BaseBackup { from: "db2".into() }, &Outcome::Done);
    assert!(!m.rewind_failed);
}

#[test]
fn fencing_happens_before_the_lease_can_expire() {
    let s = settings();
    assert!(s.fence_after_ms() < s.ttl_ms);
    let tight = Settings {
        ttl_ms: 2_000,
        loop_wait_ms: 500,
        ..settings()
    };
    assert_eq!(tight.fence_after_ms(), 1_000);
}

trait ObsExt {
    fn with_lease_held(self) -> Self;
    fn upstream(self, name: &str) -> Self;
}

impl ObsExt for Observation {
    fn with_lease_held(mut self) -> Self {
        self.lease.held = true;
        self
    }
    fn upstream(mut self, name: &str) -> Self {
        self.pg.configured_upstream = Some(name.into());
        self
    }
}

fn standby(name: &str, streaming: bool, sync_state: &str, lsn: u64) -> Standby {
    Standby {
        name: name.into(),
        streaming,
        sync_state: sync_state.into(),
        flush_lsn: Some(lsn),
    }
}

fn sync_key(leader: &str, standby: Option<&str>) -> Option<SyncKey> {
    Some(SyncKey {
        leader: Some(leader.into()),
        sync_standby: standby.map(String::from),
    })
}

/// db1 leads in synchronous mode; db2 replicates.
fn sync_leader() -> Observation {
    let mut o = with_leader(primary(obs()), Some("db1")).with_lease_held();
    o.settings.synchronous_mode = SyncMode::On;
    let v = o.dcs.as_mut().unwrap();
    v.members = vec![
        ("db1".into(), member("running", "primary")),
        (
            "db2".into(),
            Member {
                replication_state: Some("streaming".into()),
                ..member("running", "replica")
            },
        ),
    ];
    o.pg.standbys = vec![standby("db2", true, "async", 5_000)];
    o
}

/// db1 is a replica in synchronous mode and the leader key is gone.
fn sync_replica_election(recorded: Option<&str>) -> Observation {
    let mut o = obs();
    o.settings.synchronous_mode = SyncMode::On;
    o.dcs.as_mut().unwrap().sync = sync_key("db2", recorded);
    o
}

#[test]
fn synchronous_replication_and_switchover_situations() {
    use Action::*;
    let rows: Vec<(&str, Observation, Vec<Action>)> = vec![
        ("sync on, standby streams: PostgreSQL first", sync_leader(), vec![SetSyncNames("\"db2\"".into())]),
        (
            "PostgreSQL waits for db2 and db2 flushed past the position of then: the key",
            {
                let mut o = sync_leader();
                o.pg.sync_names = "\"db2\"".into();
                o.pg.standbys = vec![standby("db2", true, "sync", 5_000)];
                o
            },
            vec![WriteSync(Some("db2".into()))],
        ),
        (
            "PostgreSQL waits for db2 but db2 lacks earlier commits: the key waits",
            {
                let mut o = sync_leader();
                o.pg.sync_names = "\"db2\"".into();
                o.pg.standbys = vec![standby("db2", true, "sync", 4_000)];
                o
            },
            vec![],
        ),
        (
            "leader gone, a peer on an older timeline with a higher LSN does not block",
            {
                let mut o = obs();
                o.pg.timeline = Some(2);
                o.peers = vec![Peer { timeline: Some(1), ..peer("db3", Role::Replica, 9_000) }];
                o
            },
            vec![AcquireLeader, Promote],
        ),
        (
            "names set but not yet enforced: the key waits",
            {
                let mut o = sync_leader();
                o.pg.sync_names = "\"db2\"".into();
                o
            },
            vec![],
        ),
        (
            "steady synchronous state: nothing",
            {
                let mut o = sync_leader();
                o.pg.sync_names = "\"db2\"".into();
                o.pg.standbys = vec![standby("db2", true, "sync", 5_000)];
                o.dcs.as_mut().unwrap().sync = sync_key("db1", Some("db2"));
                o
            },
            vec![],
        ),
        (
            "sync standby gone: the key first, then PostgreSQL stops waiting",
            {
                let mut o = sync_leader();
                o.pg.sync_names = "\"db2\"".into();
                o.pg.standbys = vec![];
                o.dcs.as_mut().unwrap().sync = sync_key("db1", Some("db2"));
                o
            },
            vec![WriteSync(None), SetSyncNames(String::new())],
        ),
        (
            "strict mode, sync standby gone: the key first, then commits wait for any standby",
            {
                let mut o = sync_leader();
                o.settings.synchronous_mode = SyncMode::Strict;
                o.pg.sync_names = "\"db2\"".into();
                o.pg.standbys = vec![];
                o.dcs.as_mut().unwrap().sync = sync_key("db1", Some("db2"));
                o
            },
            vec![WriteSync(None), SetSyncNames("*".into())],
        ),
        (
            "new leader takes over the key another leader wrote",
            {
                let mut o = sync_leader();
                o.pg.standbys = vec![];
                o.dcs.as_mut().unwrap().sync = sync_key("db2", Some("db1"));
                o
            },
            vec![WriteSync(None)],
        ),
        (
            "sync mode off: PostgreSQL never waits",
            {
                let mut o = sync_leader();
                o.settings.synchronous_mode = SyncMode::Off;
                o.pg.sync_names = "\"db2\"".into();
                o
            },
            vec![SetSyncNames(String::new())],
        ),
        ("election in sync mode: the recorded sync standby promotes", sync_replica_election(Some("db1")), vec![AcquireLeader, Promote]),
        (
            "election in sync mode: the sync standby promotes even if the last position is further ahead",
            {
                let mut o = sync_replica_election(Some("db1"));
                o.pg.lsn = Some(1_000);
                o.peers = vec![peer("db3", Role::Replica, 9_000)];
                o
            },
            vec![AcquireLeader, Promote],
        ),
        ("election in sync mode: another member is the sync standby", sync_replica_election(Some("db3")), vec![]),
        ("election in sync mode: no sync standby recorded, nobody promotes", sync_replica_election(None), vec![]),
        (
            "no sync standby recorded, but the old leader answers as a replica with no WAL I lack: promote",
            {
                let mut o = sync_replica_election(None);
                o.peers = vec![peer("db2", Role::Replica, 5_000)];
                o
            },
            vec![AcquireLeader, Promote],
        ),
        (
            "no sync standby recorded and the old leader holds WAL I lack: nobody promotes",
            {
                let mut o = sync_replica_election(None);
                o.peers = vec![peer("db2", Role::Replica, 5_001)];
                o
            },
            vec![],
        ),
        (
            "no sync standby recorded and the old leader is on a newer timeline: nobody promotes",
            {
                let mut o = sync_replica_election(None);
                o.peers = vec![Peer { timeline: Some(2), ..peer("db2", Role::Replica, 5_000) }];
                o
            },
            vec![],
        ),
        (
            "no sync standby recorded, the old leader on an older timeline within my history: promote",
            {
                let mut o = sync_replica_election(None);
                o.pg.timeline = Some(2);
                o.pg.forks = vec![Fork { timeline: 1, switch_lsn: 3_000 }];
                o.peers = vec![peer("db2", Role::Replica, 3_000)];
                o
            },
            vec![AcquireLeader, Promote],
        ),
        (
            // Fresh 2-on seed 2461583: the old leader re-took the key on
            // timeline 1 after my promotion had opened timeline 2, and
            // acknowledged writes there past my fork; a higher LSN of mine
            // on timeline 2 does not hold them.
            "no sync standby recorded, the old leader went on past where my history left its timeline: nobody promotes",
            {
                let mut o = sync_replica_election(None);
                o.pg.timeline = Some(2);
                o.pg.forks = vec![Fork { timeline: 1, switch_lsn: 3_000 }];
                o.peers = vec![peer("db2", Role::Replica, 4_000)];
                o
            },
            vec![],
        ),
        (
            "no sync standby recorded, the old leader on an older timeline and my history unknown: nobody promotes",
            {
                let mut o = sync_replica_election(None);
                o.pg.timeline = Some(2);
                o.peers = vec![peer("db2", Role::Replica, 1_000)];
                o
            },
            vec![],
        ),
        (
            "no sync standby recorded and the old leader does not answer: nobody promotes",
            {
                let mut o = sync_replica_election(None);
                o.peers = vec![Peer { reachable: false, ..peer("db2", Role::Replica, 1_000) }];
                o
            },
            vec![],
        ),
        (
            "switchover requested: the leader steps down cleanly",
            {
                let mut o = sync_leader();
                o.settings.synchronous_mode = SyncMode::Off;
                o.dcs.as_mut().unwrap().failover =
                    Some(FailoverKey { leader: Some("db1".into()), member: Some("db2".into()), scheduled_at: None });
                o
            },
            vec![Checkpoint, Stop, ReleaseLeader],
        ),
        (
            "switchover to a member the DCS shows streaming but PostgreSQL does not list (it just crashed): refused",
            {
                let mut o = sync_leader();
                o.settings.synchronous_mode = SyncMode::Off;
                o.pg.standbys = vec![];
                o.dcs.as_mut().unwrap().failover =
                    Some(FailoverKey { leader: Some("db1".into()), member: Some("db2".into()), scheduled_at: None });
                o
            },
            vec![ClearFailover],
        ),
        (
            "sync mode: switchover to the standby a sync key of my earlier term names, which PostgreSQL does not wait for: refused",
            {
                let mut o = sync_leader();
                o.dcs.as_mut().unwrap().sync = sync_key("db1", Some("db2"));
                o.pg.standbys = vec![standby("db2", true, "async", 5_000)];
                o.dcs.as_mut().unwrap().failover =
                    Some(FailoverKey { leader: Some("db1".into()), member: Some("db2".into()), scheduled_at: None });
                o
            },
            vec![ClearFailover],
        ),
        (
            "sync mode: switchover to the synchronous standby PostgreSQL reports: the leader steps down",
            {
                let mut o = sync_leader();
                o.dcs.as_mut().unwrap().sync = sync_key("db1", Some("db2"));
                o.pg.standbys = vec![standby("db2", true, "sync", 5_000)];
                o.pg.sync_names = "\"db2\"".into();
                o.dcs.as_mut().unwrap().failover =
                    Some(FailoverKey { leader: Some("db1".into()), member: Some("db2".into()), scheduled_at: None });
                o
            },
            vec![Checkpoint, Stop, ReleaseLeader],
        ),
        (
            "switchover to a member that is not the sync standby: refused",
            {
                let mut o = sync_leader();
                o.dcs.as_mut().unwrap().sync = sync_key("db1", Some("db3"));
                o.dcs.as_mut().unwrap().failover =
                    Some(FailoverKey { leader: Some("db1".into()), member: Some("db2".into()), scheduled_at: None });
                o
            },
            vec![ClearFailover],
        ),
        (
            "switchover to an unknown member: refused",
            {
                let mut o = sync_leader();
                o.dcs.as_mut().unwrap().failover =
                    Some(FailoverKey { leader: Some("db1".into()), member: Some("nope".into()), scheduled_at: None });
                o
            },
            vec![ClearFailover],
        ),
        (
            "switchover scheduled later: wait",
            {
                let mut o = sync_leader();
                o.settings.synchronous_mode = SyncMode::Off;
                o.dcs.as_mut().unwrap().failover = Some(FailoverKey {
                    leader: Some("db1".into()),
                    member: Some("db2".into()),
                    scheduled_at: Some("2099-01-01T00:00:00Z".into()),
                });
                o
            },
            vec![],
        ),
        (
            "manual failover to me, but my timeline is older than the cluster's: never promote (a second timeline 2)",
            {
                let mut o = obs();
                let v = o.dcs.as_mut().unwrap();
                v.failover = Some(FailoverKey { leader: None, member: Some("db1".into()), scheduled_at: None });
                v.history = vec![HistoryEntry(1, 4_000, "promoted db2".into(), "t".into(), "db2".into())];
                o
            },
            vec![],
        ),
        (
            "switchover: the candidate promotes and clears the request",
            {
                let mut o = obs();
                o.dcs.as_mut().unwrap().failover =
                    Some(FailoverKey { leader: Some("db2".into()), member: Some("db1".into()), scheduled_at: None });
                o.peers = vec![peer("db3", Role::Replica, 9_000)];
                o
            },
            vec![AcquireLeader, Promote, ClearFailover],
        ),
        (
            "switchover: the old leader never races while a peer holds its WAL",
            {
                let mut o = obs();
                o.dcs.as_mut().unwrap().failover =
                    Some(FailoverKey { leader: Some("db1".into()), member: None, scheduled_at: None });
                o.peers = vec![peer("db2", Role::Replica, 5_000)];
                o
            },
            vec![],
        ),
        (
            "switchover without a candidate: no peer holds the old leader's WAL, so it leads again",
            {
                let mut o = obs();
                o.dcs.as_mut().unwrap().failover =
                    Some(FailoverKey { leader: Some("db1".into()), member: None, scheduled_at: None });
                o.peers = vec![peer("db2", Role::Replica, 4_000)];
                o
            },
            vec![AcquireLeader, Promote, ClearFailover],
        ),
        (
            "switchover to another running member: others wait",
            {
                let mut o = obs();
                o.dcs.as_mut().unwrap().members.push(("db3".into(), member("running", "replica")));
                o.dcs.as_mut().unwrap().failover =
                    Some(FailoverKey { leader: Some("db2".into()), member: Some("db3".into()), scheduled_at: None });
                o
            },
            vec![],
        ),
        (
            "paused: no automatic action, even a free leader key",
            {
                let mut o = obs();
                o.dcs.as_mut().unwrap().config.pause = true;
                o
            },
            vec![],
        ),
        (
            "PostgreSQL starting: wait for it",
            {
                let mut o = stopped(obs());
                o.pg.starting = true;
                o
            },
            vec![],
        ),
    ];
    assert_decisions(rows);
}

/// `ms` before (negative: after) the observation's wall clock, RFC 3339.
fn unix_time_before(o: &Observation, ms: i64) -> String {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis((o.now_unix_ms as i64 - ms) as u64);
    humantime::format_rfc3339(at).to_string()
}

#[test]
fn requests_are_never_kept_for_after_a_pause() {
    use Action::*;
    let request = |leader: Option<&str>, member: Option<&str>| FailoverKey {
        leader: leader.map(String::from),
        member: member.map(String::from),
        scheduled_at: None,
    };
    let paused = |mut o: Observation, failover: Option<FailoverKey>| {
        let v = o.dcs.as_mut().unwrap();
        v.config.pause = true;
        v.failover = failover;
        o
    };
    let stale = stale_schedule_ms(&settings()) as i64;
    let scheduled = |ms_ago: i64| {
        let mut o = sync_leader();
        o.settings.synchronous_mode = SyncMode::Off;
        let at = unix_time_before(&o, ms_ago);
        o.dcs.as_mut().unwrap().failover = Some(FailoverKey {
            scheduled_at: Some(at),
            ..request(Some("db1"), Some("db2"))
        });
        o
    };
    let rows: Vec<(&str, Observation, Vec<Action>)> = vec![
        (
            "paused leader with a switchover request: removes it, does not step down",
            paused(sync_leader(), Some(request(Some("db1"), Some("db2")))),
            vec![ClearFailover],
        ),
        (
            "paused leader with a failover request: removes it",
            paused(sync_leader(), Some(request(None, Some("db2")))),
            vec![ClearFailover],
        ),
        (
            "paused replica of a leader: the leader removes the request, not it",
            paused(
                with_leader(obs(), Some("db2")),
                Some(request(Some("db2"), Some("db1"))),
            ),
            vec![],
        ),
        (
            "paused, no leader: any member removes the request and nobody promotes",
            paused(obs(), Some(request(None, Some("db1")))),
            vec![ClearFailover],
        ),
        (
            "paused, no request: nothing",
            paused(sync_leader(), None),
            vec![],
        ),
        (
            "scheduled switchover due a moment ago: carried out",
            scheduled(1_000),
            vec![Checkpoint, Stop, ReleaseLeader],
        ),
        (
            "scheduled switchover whose time passed long ago: removed, not carried out",
            scheduled(stale + 1_000),
            vec![ClearFailover],
        ),
        (
            "scheduled switchover still ahead: waits",
            scheduled(-60_000),
            vec![],
        ),
    ];
    assert_decisions(rows);
}

#[test]
fn the_api_refuses_requests_while_paused() {
    let key = |leader: Option<&str>, member: Option<&str>, at: Option<&str>| FailoverKey {
        leader: leader.map(String::from),
        member: member.map(String::from),
        scheduled_at: at.map(String::from),
    };
    let mut view = sync_leader().dcs.unwrap();
    let all = [
        key(Some("db1"), Some("db2"), None),
        key(Some("db1"), None, None),
        key(None, Some("db2"), None),
        key(Some("db1"), Some("db2"), Some("2099-01-01T00:00:00Z")),
    ];
    for k in &all {
        assert_eq!(request_refusal(&view.config, k), None, "not paused: {k:?}");
    }
    view.config.pause = true;
    let refusal = |k: &FailoverKey| request_refusal(&view.config, k).expect("paused: refused");
    assert!(matches!(refusal(&all[0]), RequestRefusal::Precondition(m) if m.contains("paused")));
    assert_eq!(
        refusal(&all[1]),
        RequestRefusal::Malformed(
            "Switchover is possible only to a specific candidate in a paused state".into()
        )
    );
    assert!(matches!(refusal(&all[2]), RequestRefusal::Precondition(_)));
    assert_eq!(
        refusal(&all[3]),
        RequestRefusal::Malformed("Can't schedule switchover in the paused state".into())
    );
}

#[test]
fn memory_tracks_how_long_a_replica_has_not_streamed() {
    let mut o = obs();
    o.pg.streaming = false;
    let m = Memory::default().observe(&o);
    assert_eq!(m.not_streaming_since_ms, Some(NOW));
    o.now_ms = NOW + 5_000;
    let m = m.observe(&o);
    assert_eq!(
        m.not_streaming_since_ms,
        Some(NOW),
        "the first instant is kept"
    );
    o.pg.streaming = true;
    assert_eq!(m.observe(&o).not_streaming_since_ms, None);
    let restarted = m.absorb(
        &Action::Start(StartAs::Replica { leader: None }),
        &Outcome::Done,
    );
    assert_eq!(
        restarted.not_streaming_since_ms, None,
        "a restart starts the clock again"
    );
}

#[test]
fn causes_are_a_closed_set_of_stable_words() {
    let words: Vec<&str> = Cause::ALL.iter().map(|c| c.as_str()).collect();
    let mut unique = words.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), words.len(), "a word is used twice: {words:?}");
    for w in words {
        // Prometheus label values and journal fields: short snake_case.
        assert!(
            w.len() <= 24 && w.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{w:?}"
        );
    }
}

#[test]
fn decisions_name_their_cause() {
    // The free-text reason and the cause word must tell the same story.
    let mut promote = obs();
    promote.dcs.as_mut().unwrap().members = vec![];
    let mut other_primary = primary(with_leader(obs(), Some("db2")));
    other_primary.pg.role = Role::Primary;
    let mut no_dcs_primary = primary(obs());
    no_dcs_primary.dcs = None;
    no_dcs_primary.lease.renewed_at_ms = Some(NOW - 50_000);
    let mut lagging = obs();
    lagging.pg.lsn = Some(1_000);
    let mut ahead = obs();
    ahead.peers = vec![peer("db3", Role::Replica, 9_000)];
    let rows = [
        (
            promote,
            Cause::Election,
            vec![Action::AcquireLeader, Action::Promote],
        ),
        (other_primary, Cause::OtherLeader, vec![Action::Stop]),
        (
            no_dcs_primary,
            Cause::DcsUnreachable,
            vec![
                Action::Stop,
                Action::Start(StartAs::Replica { leader: None }),
            ],
        ),
        (lagging, Cause::LagTooHigh, vec![]),
        (ahead, Cause::PeerAhead, vec![]),
        (
            with_leader(obs(), Some("db2")).upstream("db2"),
            Cause::Following,
            vec![],
        ),
        (
            with_leader(obs(), Some("db2")),
            Cause::NewLeader,
            vec![Action::Follow {
                leader: "db2".into(),
            }],
        ),
    ];
    for (o, cause, actions) in rows {
        let d = decide(&o, &Memory::default());
        assert_eq!((d.cause, &d.actions), (cause, &actions), "{}", d.reason);
    }
}

#[test]
fn only_unplanned_promotions_count_as_failovers() {
    assert!(Cause::Election.is_failover());
    assert!(Cause::ManualFailover.is_failover());
    assert!(!Cause::Switchover.is_failover());
    assert!(!Cause::LeaderKeyHeld.is_failover());
}

#[test]
fn every_cause_is_documented() {
    // Operators alert on these words; each must be explained where they look.
    let doc = include_str!("../../../docs/observability.md");
    for cause in Cause::ALL {
        assert!(
            doc.contains(&format!("| `{}` |", cause.as_str())),
            "docs/observability.md does not explain `{cause}`"
        );
    }
}

/// db1, primary, cannot read the DCS and its lease is past the fencing point.
fn primary_without_dcs(failsafe: bool) -> Observation {
    let mut o = primary(obs());
    o.dcs = None;
    o.settings.failsafe_mode = failsafe;
    o.lease.renewed_at_ms = Some(NOW - o.settings.fence_after_ms() - 1);
    o
}

#[test]
fn failsafe_mode_situations() {
    let stop_and_read_only = vec![
        Action::Stop,
        Action::Start(StartAs::Replica { leader: None }),
    ];
    let rows: Vec<(&str, Observation, Vec<Action>, Cause)> = vec![
        (
            "off: a primary without the DCS past its fencing point demotes",
            {
                let mut o = primary_without_dcs(false);
                o.failsafe.confirmed_at_ms = Some(NOW - 100);
                o
            },
            stop_and_read_only.clone(),
            Cause::DcsUnreachable,
        ),
        (
            "on: every member confirmed just now: stays primary",
            {
                let mut o = primary_without_dcs(true);
                o.failsafe.confirmed_at_ms = Some(NOW - 100);
                o
            },
            vec![],
            Cause::Failsafe,
        ),
        (
            "on: no round was accepted by every member: demotes",
            primary_without_dcs(true),
            stop_and_read_only.clone(),
            Cause::DcsUnreachable,
        ),
        (
            "on: the last accepted round is older than the fencing window: demotes",
            {
                let mut o = primary_without_dcs(true);
                o.failsafe.confirmed_at_ms = Some(NOW - o.settings.fence_after_ms());
                o
            },
            stop_and_read_only.clone(),
            Cause::DcsUnreachable,
        ),
        (
            "on: a replica that promised the old leader within ha.ttl does not promote",
            {
                let mut o = obs();
                o.settings.failsafe_mode = true;
                o.failsafe.promised_at_ms = Some(NOW - 2_000);
                o.failsafe.promised_to = Some("db2".into());
                o
            },
            vec![],
            Cause::Failsafe,
        ),
        (
            "on: a replica whose pgboxd just started may have promised: waits",
            {
                let mut o = obs();
                o.settings.failsafe_mode = true;
                o.failsafe.promised_at_ms = Some(NOW - 500);
                o
            },
            vec![],
            Cause::Failsafe,
        ),
        (
            "on: the promise is older than ha.ttl: the election goes on",
            {
                let mut o = obs();
                o.settings.failsafe_mode = true;
                o.failsafe.promised_at_ms = Some(NOW - o.settings.ttl_ms);
                o.failsafe.promised_to = Some("db2".into());
                o
            },
            vec![Action::AcquireLeader, Action::Promote],
            Cause::Election,
        ),
        (
            "off: a promise means nothing",
            {
                let mut o = obs();
                o.failsafe.promised_at_ms = Some(NOW - 100);
                o.failsafe.promised_to = Some("db2".into());
                o
            },
            vec![Action::AcquireLeader, Action::Promote],
            Cause::Election,
        ),
    ];
    for (what, o, actions, cause) in rows {
        let d = decide(&o, &Memory::default());
        assert_eq!(d.actions, actions, "{what}: {d:?}");
        assert_eq!(d.cause, cause, "{what}: {d:?}");
    }
}

#[test]
fn the_watchdog_fires_after_the_fencing_point_and_before_the_lease_expires() {
    for (ttl, loop_wait) in [
        (10_000, 1_000),
        (5_000, 500),
        (30_000, 10_000),
        (2_000, 500),
    ] {
        let s = Settings {
            ttl_ms: ttl,
            loop_wait_ms: loop_wait,
            ..settings()
        };
        let wd = s.watchdog_timeout_s() * 1000;
        assert!(
            wd > s.fence_after_ms() || wd == 1000,
            "ttl {ttl}: {wd} vs {}",
            s.fence_after_ms()
        );
        assert!(wd < ttl, "ttl {ttl}: {wd}");
    }
    let mut s = settings();
    assert_eq!(s.dcs_read_budget_ms(true, Some(7_000)), 7_000);
    assert_eq!(s.dcs_read_budget_ms(false, Some(7_000)), 10_000);
    s.failsafe_mode = true;
    assert_eq!(s.dcs_read_budget_ms(true, Some(7_000)), 2_500);
    assert_eq!(s.dcs_read_budget_ms(true, Some(1_000)), 1_000);
}

#[test]
fn a_silent_standby_is_dropped_within_half_a_ttl() {
    let s = settings();
    assert_eq!(s.standby_silence_ms(), s.ttl_ms / 2);
    // Never so short that a loaded box's late keep-alive answer drops a
    // healthy standby.
    assert_eq!(standby_silence_ms(2_000), 3_000);
    assert!(s.standby_silence_ms() < s.fence_after_ms());
}

/// db2's pgboxd gives no answer; its PostgreSQL answers over a direct
/// connection as `primary` (or not), `fenced` (or not), at `lsn`.
fn hung(primary: bool, fenced: bool, lsn: u64) -> Peer {
    Peer {
        reachable: false,
        role: Role::Unknown,
        lsn: None,
        timeline: None,
        postgres: Some(PeerPostgres {
            primary,
            fenced,
            lsn: primary.then_some(lsn),
            timeline: primary.then_some(1),
        }),
        ..peer("db2", Role::Unknown, 0)
    }
}

#[test]
fn a_primary_whose_pgboxd_hung_is_fenced_before_a_promotion() {
    use Action::*;
    let fence = || Fence {
        members: vec!["db2".into()],
        within_ms: settings().fence_budget_ms(),
    };
    let with_peers = |mut o: Observation, peers: Vec<Peer>| {
        o.peers = peers;
        o
    };
    let holding = || with_leader(obs(), Some("db1")).with_lease_held();
    let since = |ms: u64| Memory {
        hung_primary_since_ms: Some(NOW - ms),
        ..Memory::default()
    };
    let ttl = settings().ttl_ms;
    let rows: Vec<(&str, Observation, Memory, Vec<Action>, Cause)> = vec![
        (
            "key free, old primary's PostgreSQL still primary: take the key, fence it, then promote",
            with_peers(obs(), vec![hung(true, false, 5_000)]),
            Memory::default(),
            vec![AcquireLeader, fence(), Promote],
            Cause::Election,
        ),
        (
            "key free, old primary's PostgreSQL unreachable too: dead or cut off, promote as before",
            with_peers(
                obs(),
                vec![Peer {
                    postgres: None,
                    ..hung(true, false, 5_000)
                }],
            ),
            Memory::default(),
            vec![AcquireLeader, Promote],
            Cause::Election,
        ),
        (
            "key free, the silent member's PostgreSQL is a replica: nothing to fence",
            with_peers(obs(), vec![hung(false, false, 0)]),
            Memory::default(),
            vec![AcquireLeader, Promote],
            Cause::Election,
        ),
        (
            "its API answers as primary: it still fences itself, nobody promotes (unchanged)",
            with_peers(obs(), vec![peer("db2", Role::Primary, 5_000)]),
            Memory::default(),
            vec![],
            Cause::OldPrimaryAlive,
        ),
        (
            "key held, not promoted yet, the fence failed last loop: fence again",
            with_peers(holding(), vec![hung(true, false, 5_000)]),
            since(2_000),
            vec![fence(), Promote],
            Cause::LeaderKeyHeld,
        ),
        (
            "key held, old primary fenced with WAL I lack: wait for it",
            with_peers(holding(), vec![hung(true, true, 6_000)]),
            since(2_000),
            vec![],
            Cause::Fencing,
        ),
        (
            "key held, old primary fenced and I hold all its WAL: promote",
            with_peers(holding(), vec![hung(true, true, 5_000)]),
            since(2_000),
            vec![Promote],
            Cause::LeaderKeyHeld,
        ),
        (
            "key held, the fenced primary is on an older timeline: its positions do not compare",
            with_peers(
                {
                    let mut o = holding();
                    o.pg.timeline = Some(2);
                    o
                },
                vec![hung(true, true, 9_000)],
            ),
            since(2_000),
            vec![Promote],
            Cause::LeaderKeyHeld,
        ),
        (
            "key free, the silent primary is on a newer timeline than mine: never promote",
            with_peers(
                obs(),
                vec![{
                    let mut p = hung(true, false, 9_000);
                    p.postgres.as_mut().unwrap().timeline = Some(2);
                    p
                }],
            ),
            since(2 * ttl),
            vec![],
            Cause::TimelineBehind,
        ),
        (
            "key held, the silent primary is on a newer timeline: hand the key back",
            with_peers(
                holding(),
                vec![{
                    let mut p = hung(true, true, 9_000);
                    p.postgres.as_mut().unwrap().timeline = Some(2);
                    p
                }],
            ),
            since(2_000),
            vec![ReleaseLeader],
            Cause::TimelineBehind,
        ),
        (
            "key held, the old primary could not be fenced for a whole TTL: promote without",
            with_peers(holding(), vec![hung(true, false, 5_000)]),
            since(ttl),
            vec![Promote],
            Cause::LeaderKeyHeld,
        ),
        (
            "key held, its WAL did not arrive within a TTL: promote without",
            with_peers(holding(), vec![hung(true, true, 6_000)]),
            since(ttl),
            vec![Promote],
            Cause::LeaderKeyHeld,
        ),
        (
            "key held on a lease whose renewals fail: neither fence nor promote",
            {
                let mut o = with_peers(holding(), vec![hung(true, false, 5_000)]);
                o.lease.renewed_at_ms = Some(NOW - 9_000);
                o
            },
            since(2_000),
            vec![],
            Cause::LeaseUnproven,
        ),
        (
            "key free, a fenced primary ahead of me (its fencer lost the key): take the key, wait",
            with_peers(obs(), vec![hung(true, true, 6_000)]),
            since(2_000),
            vec![AcquireLeader],
            Cause::Fencing,
        ),
        (
            "another member leads: follow it; fencing is the candidate's part",
            with_peers(with_leader(obs(), Some("db3")), vec![hung(true, false, 5_000)]),
            Memory::default(),
            vec![Follow {
                leader: "db3".into(),
            }],
            Cause::NewLeader,
        ),
        (
            "synchronous mode, not the synchronous standby: no candidate, so no fence",
            {
                let mut o = with_peers(obs(), vec![hung(true, false, 5_000)]);
                o.settings.synchronous_mode = SyncMode::On;
                o.dcs.as_mut().unwrap().sync = Some(SyncKey {
                    leader: Some("db2".into()),
                    sync_standby: Some("db3".into()),
                });
                o
            },
            Memory::default(),
            vec![],
            Cause::NotSyncStandby,
        ),
        (
            "synchronous mode, the synchronous standby: fence the old primary, then promote",
            {
                let mut o = with_peers(obs(), vec![hung(true, false, 5_000)]);
                o.settings.synchronous_mode = SyncMode::On;
                o.dcs.as_mut().unwrap().sync = Some(SyncKey {
                    leader: Some("db2".into()),
                    sync_standby: Some("db1".into()),
                });
                o
            },
            Memory::default(),
            vec![AcquireLeader, fence(), Promote],
            Cause::Election,
        ),
    ];
    let mut failures = Vec::new();
    for (name, o, mem, expected, cause) in rows {
        let mem = mem.observe(&o);
        let d = decide(&o, &mem);
        if d.actions != expected || d.cause != cause {
            failures.push(format!(
                "{name}:\n  expected {expected:?} ({cause})\n  got      {:?} ({}: {})",
                d.actions, d.cause, d.reason
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn memory_counts_how_long_a_hung_primary_has_been_seen() {
    let mut o = obs();
    o.peers = vec![hung(true, false, 5_000)];
    let m = Memory::default().observe(&o);
    assert_eq!(m.hung_primary_since_ms, Some(NOW));
    o.now_ms = NOW + 3_000;
    let m = m.observe(&o);
    assert_eq!(
        m.hung_primary_since_ms,
        Some(NOW),
        "kept from the first sight"
    );
    // Its pgboxd answers again (or its server stopped): the count ends.
    o.peers = vec![hung(false, false, 0)];
    assert_eq!(m.observe(&o).hung_primary_since_ms, None);
    o.peers = vec![];
    assert_eq!(m.observe(&o).hung_primary_since_ms, None);
}

#[test]
fn a_fence_and_the_promotion_after_it_fit_in_the_proven_lease() {
    // (ttl, loop_wait): the defaults, the process tests', short and long.
    for (ttl, loop_wait) in [
        (10_000, 1_000),
        (5_000, 500),
        (3_000, 1_000),
        (30_000, 1_000),
    ] {
        let s = Settings {
            ttl_ms: ttl,
            loop_wait_ms: loop_wait,
            ..settings()
        };
        let budget = s.fence_budget_ms();
        assert!(budget > 0, "ttl {ttl}");
        // The key is taken on a lease proven at that moment; the fence and
        // the promotion after it end within half its proven part.
        assert!(2 * budget <= s.fence_after_ms(), "ttl {ttl}: {budget} ms");
    }
    // A renewal every loop leaves the lease proven for the whole fence
    // with the defaults and the process tests' settings.
    for (ttl, loop_wait) in [(10_000, 1_000), (5_000, 500)] {
        let s = Settings {
            ttl_ms: ttl,
            loop_wait_ms: loop_wait,
            ..settings()
        };
        assert!(loop_wait + s.fence_budget_ms() < s.fence_after_ms());
    }
}

/// Each row's situation, decided with a fresh memory that has seen it: the
/// actions must be the row's; every mismatch is reported at once.
fn assert_decisions(rows: Vec<(&str, Observation, Vec<Action>)>) {
    let mut failures = Vec::new();
    for (name, o, expected) in rows {
        let d = decide(&o, &Memory::default().observe(&o));
        if d.actions != expected {
            failures.push(format!(
                "{name}:\n  expected {expected:?}\n  got      {:?} ({})",
                d.actions, d.reason
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_watchdog_is_armed_only_by_a_leader_on_a_proven_lease() {
    use WatchdogStep::*;
    // (leading, lease proven valid, armed) -> step
    let rows = [
        ((true, true, false), Arm),
        // A stale lease: arming would reset a box that is about to demote.
        ((true, false, false), Keep),
        ((true, true, true), Keep),
        ((true, false, true), Keep),
        ((false, true, true), Disarm),
        ((false, false, true), Disarm),
        ((false, true, false), Keep),
        ((false, false, false), Keep),
    ];
    for ((leading, valid, armed), want) in rows {
        assert_eq!(
            watchdog_step(leading, valid, armed),
            want,
            "leading {leading}, lease valid {valid}, armed {armed}"
        );
    }
    // The margin the watchdog leaves after the fencing point is small (it
    // must also fire before the lease can expire): why a stop disarms it
    // at once instead of at the end of the loop.
    let s = settings();
    let fire = s.watchdog_timeout_s() * 1000;
    assert!(fire > s.fence_after_ms() && fire < s.ttl_ms, "{fire} ms");
}

/// db1 stepped down for a switchover to db2 and is stopped; nobody holds
/// the key yet.
fn stepped_down(mode: SyncMode, sync_leader: &str) -> Observation {
    let mut o = with_leader(stopped(primary(obs())), None);
    o.settings.synchronous_mode = mode;
    let v = o.dcs.as_mut().unwrap();
    v.failover = Some(FailoverKey {
        leader: Some("db1".into()),
        member: Some("db2".into()),
        ..FailoverKey::default()
    });
    v.sync = sync_key(sync_leader, Some("db2"));
    v.members = vec![("db2".into(), member("running", "replica"))];
    o
}

/// Fresh 3-strict-failsafe seed 6886089: db2 took the key back after a
/// failed hand-over to db1 (whose timeline 2, recorded, acknowledged
/// nothing) and led on timeline 1; in synchronous mode the sync key, not
/// the history's newest timeline, says who holds every acknowledged commit.
#[test]
fn in_synchronous_mode_the_sync_key_outranks_an_abandoned_newer_timeline() {
    let history = vec![HistoryEntry(
        1,
        4_000,
        "promoted db1".into(),
        "t".into(),
        "db1".into(),
    )];
    let key = |leader: &str, standby: Option<&str>| sync_key(leader, standby).unwrap();
    let refusal = |mode, sync: Option<SyncKey>| {
        timeline_refusal(mode, "db2", Some(1), &history, sync.as_ref())
    };
    assert_eq!(refusal(SyncMode::Strict, Some(key("db2", None))), None);
    assert_eq!(refusal(SyncMode::On, Some(key("db3", Some("db2")))), None);
    assert!(refusal(SyncMode::On, Some(key("db1", Some("db3")))).is_some());
    assert!(refusal(SyncMode::On, None).is_some());
    // Asynchronous mode has only the history to go by.
    assert!(refusal(SyncMode::Off, Some(key("db2", None))).is_some());
    assert_eq!(
        timeline_refusal(SyncMode::Off, "db2", Some(2), &history, None),
        None
    );
}

/// Fresh 2-on-failsafe seed 2550771: the leader that wrote the sync key
/// promoted again on its own key (timeline 2, commits held) and stopped;
/// the standby the key names is on timeline 1 and may not promote. The
/// key's writer acknowledged every write itself: it may lead again.
#[test]
fn the_leader_that_wrote_the_sync_key_may_lead_again_whomever_it_names() {
    for mode in [SyncMode::On, SyncMode::Strict] {
        let mut o = with_leader(obs(), None);
        o.settings.synchronous_mode = mode;
        o.pg.timeline = Some(2);
        let v = o.dcs.as_mut().unwrap();
        v.sync = sync_key("db1", Some("db2"));
        v.history = vec![HistoryEntry(
            1,
            4_900,
            "promoted db1".into(),
            "t".into(),
            "db1".into(),
        )];
        v.members = vec![("db2".into(), member("running", "replica"))];
        let d = decide(&o, &Memory::default().observe(&o));
        assert!(
            d.actions.contains(&Action::AcquireLeader) && d.actions.contains(&Action::Promote),
            "{mode:?}: {:?} {}",
            d.actions,
            d.reason
        );
        assert!(d.reason.contains("I wrote the sync key"), "{}", d.reason);
        // Another leader's key naming db2: only db2 may be promoted.
        o.dcs.as_mut().unwrap().sync = sync_key("db3", Some("db2"));
        let d = decide(&o, &Memory::default().observe(&o));
        assert_eq!(d.cause, Cause::NotSyncStandby, "{mode:?}: {}", d.reason);
    }
}

/// Fresh 2-async seed 1105627: db1 promoted (timeline 2) and at once
/// stepped down for a switchover to db2, which had lost power; db2 came
/// back on timeline 1 and may not promote from there, so waiting for it
/// would leave the cluster without a leader for good.
#[test]
fn a_stepped_down_leader_stops_waiting_for_a_candidate_on_an_older_timeline() {
    let mut o = stepped_down(SyncMode::Off, "db1");
    o.pg.running = true;
    o.pg.role = Role::Replica;
    o.pg.timeline = Some(2);
    o.pg.lsn = Some(6_000);
    let v = o.dcs.as_mut().unwrap();
    v.history = vec![HistoryEntry(
        1,
        5_000,
        "promoted db1".into(),
        "t".into(),
        "db1".into(),
    )];
    v.members[0].1.timeline = Some(2);
    let m = Memory::default().observe(&o);
    // While db2 is on my timeline it can take over: wait for it.
    let mut on_mine = o.clone();
    on_mine.peers = vec![Peer {
        timeline: Some(2),
        ..peer("db2", Role::Replica, 6_000)
    }];
    let d = decide(&on_mine, &m);
    assert!(d.actions.is_empty(), "{:?} {}", d.actions, d.reason);
    assert!(d.reason.contains("stepped down"), "{}", d.reason);
    // Back on timeline 1 (first-hand, or by its key when it does not
    // answer): lead again, and drop the request it cannot carry out.
    for answers in [true, false] {
        let mut behind = o.clone();
        behind.dcs.as_mut().unwrap().members[0].1.timeline = Some(1);
        behind.peers = vec![Peer {
            timeline: Some(1),
            reachable: answers,
            ..peer("db2", Role::Replica, 5_000)
        }];
        let d = decide(&behind, &m);
        assert!(
            d.actions.contains(&Action::AcquireLeader)
                && d.actions.contains(&Action::ClearFailover),
            "db2 answers: {answers}: {:?} {}",
            d.actions,
            d.reason
        );
    }
}

#[test]
fn a_hand_over_that_does_not_happen_within_a_ttl_is_taken_back() {
    let down_for = |o: &Observation, ms: u64| {
        let mut m = Memory::default().observe(o);
        m.down_since_ms = Some(o.now_ms - ms);
        decide(o, &m)
    };
    // Waiting for the candidate: stay stopped, do not start read-only.
    let o = stepped_down(SyncMode::On, "db1");
    let d = down_for(&o, 3_000);
    assert_eq!(
        (d.cause, d.actions.clone()),
        (Cause::Switchover, vec![]),
        "{}",
        d.reason
    );
    // One TTL later: take the key back (conditioned on the sync key as I
    // wrote it), drop the request, restart in place.
    let d = down_for(&o, 10_500);
    assert_eq!(
        (d.cause, d.actions.clone()),
        (
            Cause::SwitchoverFailed,
            vec![
                Action::RetakeLeader {
                    sync: sync_key("db1", Some("db2")).unwrap()
                },
                Action::ClearFailover,
                Action::Start(StartAs::Primary),
            ]
        ),
        "{}",
        d.reason
    );
    // Strict mode alike.
    let d = down_for(&stepped_down(SyncMode::Strict, "db1"), 10_500);
    assert_eq!(d.cause, Cause::SwitchoverFailed, "{}", d.reason);
    // The candidate took the sync key over: it may have acknowledged
    // commits I lack, so never lead again on my own data.
    let d = down_for(&stepped_down(SyncMode::On, "db2"), 30_000);
    assert!(
        !d.actions.iter().any(|a| matches!(
            a,
            Action::RetakeLeader { .. } | Action::Start(StartAs::Primary)
        )),
        "{:?} {}",
        d.actions,
        d.reason
    );
    // Asynchronous mode: the election after a read-only start as before.
    let d = down_for(&stepped_down(SyncMode::Off, "db1"), 30_000);
    assert_eq!(
        d.actions,
        vec![Action::Start(StartAs::Replica { leader: None })],
        "{}",
        d.reason
    );
    // Renewals failing: not yet.
    let mut o = stepped_down(SyncMode::On, "db1");
    o.lease.renewed_at_ms = Some(NOW - 9_000);
    let d = down_for(&o, 10_500);
    assert_eq!(
        (d.cause, d.actions.len()),
        (Cause::LeaseUnproven, 0),
        "{}",
        d.reason
    );
}

#[test]
fn a_primary_that_lost_its_lease_proof_hands_the_key_over() {
    // db1 leads in synchronous mode with db2 recorded; its renewals fail.
    let mut lost = sync_leader();
    lost.dcs.as_mut().unwrap().sync = sync_key("db1", Some("db2"));
    lost.lease.renewed_at_ms = Some(NOW - 8_000);
    let mem = Memory::default().observe(&lost);
    assert_eq!(mem.lease_lost_as_primary_ms, Some(NOW));
    let d = decide(&lost, &mem);
    assert_eq!(d.cause, Cause::LeaseUnproven, "{}", d.reason);
    assert!(d.actions.contains(&Action::Stop), "{:?}", d.actions);

    // Demoted, read-only, the key still mine and a renewal got through:
    // hand the key to the synchronous standby rather than promote again.
    let mut after = lost.clone();
    after.now_ms = NOW + 5_000;
    after.lease.renewed_at_ms = Some(NOW + 4_800);
    after.pg.role = Role::Replica;
    after.pg.data = DataDir::Initialized {
        system_id: "7000".into(),
        was_primary: false,
        clean_stop: None,
    };
    let d = decide(&after, &mem.observe(&after));
    assert_eq!(
        (d.cause, d.actions.clone()),
        (Cause::LeaseUnproven, vec![Action::ReleaseLeader]),
        "{}",
        d.reason
    );
    // Nobody to hand it to (the standby is not running): promote again.
    let mut alone = after.clone();
    alone.dcs.as_mut().unwrap().members[1].1.state = "stopped".into();
    let d = decide(&alone, &mem.observe(&alone));
    assert!(
        d.actions.contains(&Action::Promote),
        "{:?} {}",
        d.actions,
        d.reason
    );
    // Two TTLs later the demotion is history: promote on the held key.
    let mut later = after.clone();
    later.now_ms = NOW + 25_000;
    later.lease.renewed_at_ms = Some(NOW + 24_800);
    let d = decide(&later, &mem.observe(&later));
    assert!(
        d.actions.contains(&Action::Promote),
        "{:?} {}",
        d.actions,
        d.reason
    );
}

mod operations;
