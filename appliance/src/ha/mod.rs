//! The HA core: every decision pgboxd takes, in one pure function.
//!
//! `decide(observation, memory)` looks at a snapshot of the DCS, the local
//! PostgreSQL and the clock, and returns the actions to take and the reason,
//! as values. It does no I/O, so every situation can be written down as a
//! table row and checked, and a simulator can drive it with a fake clock.
//! The executor carries the actions out in order and stops at the first one
//! that fails; what it learned flows back through `Memory::absorb`.
//!
//! Read `decide` top to bottom: it is the whole protocol.

mod answer;
mod operations;
mod types;

pub use answer::{answers_primary, holds_leader_key, LeaderProof};
pub use operations::{operation_step, Operation, OperationStep, RestartIf};
pub use types::*;

/// The one decision function. See the module comment.
pub fn decide(obs: &Observation, mem: &Memory) -> Decision {
    if obs.pg.starting {
        // Neither stopped nor answering: any action now would act on a guess.
        return Decision::idle(
            Cause::PgStarting,
            "waiting for PostgreSQL to accept connections".into(),
        );
    }
    let Some(view) = &obs.dcs else {
        return without_dcs(obs);
    };
    let leader = view.leader.as_deref();
    let i_am_named_leader = leader == Some(obs.me.as_str());
    if view.config.pause {
        // No switchover or failover is carried out while paused (the API
        // refuses them: `request_refusal`). A request that is there anyway
        // (written just before the pause, or by an older pgbox) would
        // otherwise fire at the resume, long after its caller was told it
        // failed: the leader, or with none every member, removes it.
        if let Some(request) = view
            .failover
            .as_ref()
            .filter(|_| leader.is_none() || i_am_named_leader)
        {
            return Decision::act(
                Cause::Paused,
                vec![Action::ClearFailover],
                format!(
                    "paused: removing the request to {}, which is not carried out in maintenance mode",
                    request_summary(request)
                ),
            );
        }
        return Decision::idle(
            Cause::Paused,
            "paused: no automatic action (pgboxctl resume ends maintenance mode)".into(),
        );
    }

    // A data directory from another cluster must never be joined or promoted:
    // replication would fail in confusing ways, and promotion would fork history.
    if let (DataDir::Initialized { system_id, .. }, Some(init)) =
        (&obs.pg.data, view.initialize.as_deref())
    {
        if !init.is_empty() && init != system_id {
            if obs.pg.running && obs.pg.role == Role::Primary {
                return Decision::act(
                    Cause::ForeignData,
                    vec![Action::Stop],
                    format!(
                        "stopping: my data belongs to system {system_id}, the cluster is {init}"
                    ),
                );
            }
            let why = format!(
                "refusing to start: my data belongs to system {system_id}, the cluster is {init}; reinitialize this node"
            );
            return Decision::idle(Cause::ForeignData, why);
        }
    }

    match &obs.pg.data {
        DataDir::Empty => return without_data(obs, view),
        DataDir::Initialized { .. } if !obs.pg.running => return postgres_down(obs, mem, view),
        DataDir::Initialized { .. } => {}
    }

    // PostgreSQL is running from here on.
    if i_am_named_leader {
        return holding_leader_key(obs, mem, view);
    }
    match leader {
        Some(other) => follow_leader(obs, mem, view, other),
        None => leaderless(obs, mem, view),
    }
}

/// The DCS cannot be reached. Nobody may be promoted, and a primary stays
/// writable only while its lease can still be valid: after that another node
/// may already hold the key.
fn without_dcs(obs: &Observation) -> Decision {
    if !obs.pg.running {
        return match obs.pg.data {
            // Read-only is always safe: it serves reads and can be promoted later.
            DataDir::Initialized { .. } => Decision::act(
                Cause::DcsUnreachable,
                vec![Action::Start(StartAs::Replica { leader: None })],
                "starting read-only: the DCS is unreachable, so no leader is known".into(),
            ),
            DataDir::Empty => Decision::idle(
                Cause::DcsUnreachable,
                "waiting for the DCS before creating a database".into(),
            ),
        };
    }
    if obs.pg.role == Role::Primary {
        if obs.lease.valid(obs.now_ms, obs.settings.fence_after_ms()) {
            return Decision::idle(
                Cause::DcsUnreachable,
                format!(
                    "DCS unreachable; my lease may still be valid for {} ms, staying primary",
                    obs.lease
                        .remaining(obs.now_ms, obs.settings.fence_after_ms())
                ),
            );
        }
        if obs.settings.failsafe_mode {
            let fence = obs.settings.fence_after_ms();
            if let Some(at) = obs
                .failsafe
                .confirmed_at_ms
                .filter(|at| obs.now_ms < at + fence)
            {
                return Decision::idle(
                    Cause::Failsafe,
                    format!(
                        "DCS unreachable; every other member confirmed {} ms ago that it will not take over: staying primary (failsafe mode)",
                        obs.now_ms.saturating_sub(at)
                    ),
                );
            }
        }
        let why = if obs.settings.failsafe_mode {
            "demoting: the DCS is unreachable, my lease can no longer be proven valid, and not every member confirmed it will not take over (failsafe mode)"
        } else {
            "demoting: the DCS is unreachable and my lease can no longer be proven valid"
        };
        return Decision::act(
            Cause::DcsUnreachable,
            vec![
                Action::Stop,
                Action::Start(StartAs::Replica { leader: None }),
            ],
            why.into(),
        );
    }
    Decision::idle(
        Cause::DcsUnreachable,
        "DCS unreachable: no automatic action".into(),
    )
}

/// No data directory yet: bootstrap the cluster or clone from the leader.
fn without_data(obs: &Observation, view: &ClusterView) -> Decision {
    match (&view.initialize, view.leader.as_deref()) {
        (None, None) if !obs.settings.can_lead => Decision::idle(
            Cause::NoWatchdog,
            "not bootstrapping: ha.watchdog is required and this box has no watchdog device".into(),
        ),
        // Patroni's rule too: the member that creates the cluster leads it,
        // and a member that may never lead must not become its first primary
        // (if it were stopped with the only copy of acknowledged writes, no
        // other member could take over).
        (None, None) if obs.tags.nofailover || obs.tags.failover_priority == 0 => Decision::idle(
            Cause::NoFailover,
            "not bootstrapping: this node is tagged nofailover; a member that may lead creates the cluster".into(),
        ),
        (None, None) => Decision::act(
            Cause::Bootstrap,
            vec![
                Action::ClaimInitialize,
                Action::AcquireLeader,
                Action::Bootstrap,
            ],
            "bootstrapping: the cluster is not initialized and nobody leads it".into(),
        ),
        (_, Some(leader)) if leader == obs.me => Decision::idle(
            Cause::NoData,
            "the leader key names me but I have no data: waiting for it to expire".into(),
        ),
        (_, Some(leader)) if member_running(view, leader) => Decision::act(
            Cause::CreateReplica,
            vec![
                Action::BaseBackup {
                    from: leader.to_string(),
                },
                Action::Start(StartAs::Replica {
                    leader: Some(leader.to_string()),
                }),
            ],
            format!("creating replica: cloning from leader {leader}"),
        ),
        (_, Some(leader)) => Decision::idle(
            Cause::WaitingForLeader,
            format!("waiting for leader {leader} to be running before cloning"),
        ),
        (Some(_), None) => Decision::idle(
            Cause::WaitingForLeader,
            "waiting for a leader to clone from".into(),
        ),
    }
}

/// Data exists and PostgreSQL is not running.
fn postgres_down(obs: &Observation, mem: &Memory, view: &ClusterView) -> Decision {
    let was_primary = matches!(
        obs.pg.data,
        DataDir::Initialized {
            was_primary: true,
            ..
        }
    );
    match view.leader.as_deref() {
        Some(leader) if leader == obs.me => {
            let down_for = mem
                .down_since_ms
                .map_or(0, |t| obs.now_ms.saturating_sub(t));
            if down_for > obs.settings.primary_start_timeout_ms && obs.lease.held {
                // Holding the key while unable to serve keeps the cluster
                // down: hand it over. With synchronous mode the standby has
                // every acknowledged commit.
                return Decision::act(
                    Cause::PrimaryStartTimeout,
                    vec![Action::ReleaseLeader],
                    format!(
                        "giving up the leader key: PostgreSQL has been down for {} s (primary_start_timeout {} s)",
                        down_for / 1000,
                        obs.settings.primary_start_timeout_ms / 1000
                    ),
                );
            }
            if was_primary && obs.lease.held && !lease_fresh(obs) {
                return Decision::idle(
                    Cause::LeaseUnproven,
                    "not restarting as primary: my lease renewals are not working".into(),
                );
            }
            if was_primary {
                // A crash while holding the lease: restart in place. No new
                // timeline, no failover; the lease still fences everyone else.
                let mut actions = Vec::new();
                if !obs.lease.held {
                    actions.push(Action::AcquireLeader);
                }
                actions.push(Action::Start(StartAs::Primary));
                Decision::act(
                    Cause::PostgresDown,
                    actions,
                    "starting as primary: I hold the leader key and my data was primary".into(),
                )
            } else {
                Decision::act(
                    Cause::PostgresDown,
                    vec![Action::Start(StartAs::Replica { leader: None })],
                    "starting read-only: the leader key names me but my data is a replica's; promotion follows".into(),
                )
            }
        }
        Some(leader) => {
            if !was_primary {
                return Decision::act(
                    Cause::PostgresDown,
                    vec![Action::Start(StartAs::Replica {
                        leader: Some(leader.into()),
                    })],
                    format!("starting as replica of {leader}"),
                );
            }
            // I was primary and someone else leads now: my timeline may have
            // diverged. Rewind (a no-op when it has not) before following.
            if !member_running(view, leader) {
                return Decision::idle(
                    Cause::WaitingForLeader,
                    format!("waiting for leader {leader} to be running before rejoining it"),
                );
            }
            // A clean stop whose last record the new leader had before it
            // forked (a switchover): nothing diverged, follow as is.
            if let DataDir::Initialized {
                clean_stop: Some(cs),
                ..
            } = &obs.pg.data
            {
                let down_for = mem
                    .down_since_ms
                    .map_or(0, |t| obs.now_ms.saturating_sub(t));
                if !view.history.iter().any(|h| h.0 == cs.timeline)
                    && down_for < obs.settings.ttl_ms
                {
                    // The new leader records its fork point just after it
                    // promotes: worth a moment's wait to spare a rewind.
                    return Decision::idle(
                        Cause::WaitingForLeader,
                        format!(
                            "waiting for {leader} to record where it forked from timeline {}",
                            cs.timeline
                        ),
                    );
                }
                if let Some(h) = view
                    .history
                    .iter()
                    .find(|h| h.0 == cs.timeline && h.1 > cs.checkpoint)
                {
                    return Decision::act(
                        Cause::NewLeader,
                        vec![Action::Start(StartAs::Replica {
                            leader: Some(leader.into()),
                        })],
                        format!(
                            "rejoining {leader} without pg_rewind: I stopped cleanly at {} on timeline {}, before it forked at {}",
                            format_lsn(cs.checkpoint),
                            cs.timeline,
                            format_lsn(h.1)
                        ),
                    );
                }
            }
            if obs.settings.use_pg_rewind && !mem.rewind_failed {
                return Decision::act(
                    Cause::Diverged,
                    vec![
                        Action::Rewind {
                            from: leader.into(),
                        },
                        Action::Start(StartAs::Replica {
                            leader: Some(leader.into()),
                        }),
                    ],
                    format!("rejoining: I was primary and {leader} leads now; pg_rewind first"),
                );
            }
            match obs.settings.on_rewind_failure {
                RewindFailure::Basebackup => Decision::act(
                    Cause::Diverged,
                    vec![
                        Action::RemoveData,
                        Action::BaseBackup {
                            from: leader.into(),
                        },
                        Action::Start(StartAs::Replica {
                            leader: Some(leader.into()),
                        }),
                    ],
                    if mem.rewind_failed {
                        format!("reinitializing from {leader}: pg_rewind failed")
                    } else {
                        format!("reinitializing from {leader}: pg_rewind is disabled and my data was primary")
                    },
                ),
                RewindFailure::Stop => {
                    let why = format!(
                        "staying down: my data diverged from leader {leader}, pg_rewind {} and on_rewind_failure is stop",
                        if mem.rewind_failed { "failed" } else { "is disabled" }
                    );
                    Decision::idle(Cause::Diverged, why)
                }
            }
        }
        None if was_primary => match handing_over(obs, mem, view) {
            Some(d) => d,
            None => start_read_only(),
        },
        None => start_read_only(),
    }
}

/// Never start writable without the key: start read-only, then race.
fn start_read_only() -> Decision {
    Decision::act(
        Cause::PostgresDown,
        vec![Action::Start(StartAs::Replica { leader: None })],
        "starting read-only: nobody holds the leader key; the election follows".into(),
    )
}

/// A leader that stepped down for a switchover (synchronous mode) stays
/// stopped while the candidate takes over. If no candidate has done so
/// within one TTL (it froze, lost power, or cannot promote), the hand-over
/// failed, and this node is the one that holds every acknowledged commit:
/// as long as the `sync` key is still the one it wrote, no candidate has
/// acknowledged anything (a candidate holds every commit until it has
/// taken that key over, see `Action::Promote`). So it takes the leader key
/// back in a transaction conditioned on that key, removes the request, and
/// restarts in place on its own timeline, as after a crash. Without this,
/// a candidate that died after the hand-over left the cluster without a
/// primary for good: the `sync` key names it, so nobody else may lead.
fn handing_over(obs: &Observation, mem: &Memory, view: &ClusterView) -> Option<Decision> {
    let request = view.failover.as_ref()?;
    if request.leader.as_deref() != Some(obs.me.as_str())
        || obs.settings.synchronous_mode == SyncMode::Off
    {
        // Asynchronous mode: the election that follows a read-only start
        // lets me lead again once the candidate's member key is gone.
        return None;
    }
    let sync = view
        .sync
        .as_ref()
        .filter(|k| k.leader.as_deref() == Some(obs.me.as_str()))?;
    let candidate = request.member.as_deref().unwrap_or("a replica");
    let down_for = mem
        .down_since_ms
        .map_or(0, |t| obs.now_ms.saturating_sub(t));
    let bound = handover_bound_ms(&obs.settings);
    if down_for < bound {
        return Some(Decision::idle(
            Cause::Switchover,
            format!(
                "stepped down for a switchover: waiting for {candidate} to take over ({:.1} s of at most {:.1} s)",
                down_for as f64 / 1000.0,
                bound as f64 / 1000.0
            ),
        ));
    }
    if !obs.settings.can_lead || !lease_fresh(obs) {
        return Some(Decision::idle(
            Cause::LeaseUnproven,
            "the hand-over failed, but my lease renewals are not working: not taking the leader key back yet".into(),
        ));
    }
    Some(Decision::act(
        Cause::SwitchoverFailed,
        vec![
            Action::RetakeLeader { sync: sync.clone() },
            Action::ClearFailover,
            Action::Start(StartAs::Primary),
        ],
        format!(
            "the switchover failed: {candidate} did not take over within {:.1} s; taking the leader key back (nobody took over the sync key) and restarting as primary",
            bound as f64 / 1000.0
        ),
    ))
}

/// How long a leader that stepped down waits for the candidate before it
/// leads again: one TTL (a candidate that promotes takes a second or two;
/// one whose lease runs out while it is frozen has lost its claim anyway).
pub fn handover_bound_ms(settings: &Settings) -> u64 {
    settings.ttl_ms
}

/// PostgreSQL runs and the leader key names me.
fn holding_leader_key(obs: &Observation, mem: &Memory, view: &ClusterView) -> Decision {
    let mut actions = Vec::new();
    if !obs.lease.held {
        // The key names me but is bound to a lease of an earlier run of
        // pgboxd: nobody else can have been promoted, so take it over.
        actions.push(Action::AcquireLeader);
    }
    if obs.pg.role == Role::Primary
        && obs.lease.held
        && !obs.lease.valid(obs.now_ms, obs.settings.fence_after_ms())
    {
        // Reads work but renewals do not: the key will expire under me.
        return Decision::act(
            Cause::LeaseUnproven,
            vec![
                Action::Stop,
                Action::Start(StartAs::Replica { leader: None }),
            ],
            "demoting: my lease renewals are failing and the lease may expire".into(),
        );
    }
    match obs.pg.role {
        Role::Primary if actions.is_empty() => {
            if let Some(request) = &view.failover {
                return switchover_step(obs, view, request);
            }
            let sync = sync_replication_steps(obs, mem, view);
            if sync.actions.is_empty() {
                Decision::idle(Cause::Leading, "no action: I am the leader".into())
            } else {
                sync
            }
        }
        Role::Primary => Decision::act(
            Cause::LeaderKeyHeld,
            actions,
            "renewing the leader key left by my previous run".into(),
        ),
        _ if let Some(other) = shaky_lease_hand_off(obs, mem, view) => Decision::act(
            Cause::LeaseUnproven,
            vec![Action::ReleaseLeader],
            format!(
                "giving up the leader key: I demoted {} s ago because my lease could not be proven, and {other} can take over",
                obs.now_ms.saturating_sub(mem.lease_lost_as_primary_ms.unwrap_or(0)) / 1000
            ),
        ),
        _ if obs.lease.held && !lease_fresh(obs) => {
            // The key may outlive a lease nobody can prove alive: becoming
            // writable on it could overlap another member's promotion.
            Decision::idle(
                Cause::LeaseUnproven,
                "not promoting: my lease renewals are not working".into(),
            )
        }
        _ if let Some(why) = timeline_behind(obs, view) => Decision::act(
            Cause::TimelineBehind,
            vec![Action::ReleaseLeader],
            format!("giving up the leader key instead of promoting: {why}"),
        ),
        _ => match before_promoting(obs, mem) {
            Prepared::Ready(note) => {
                actions.push(Action::Promote);
                Decision::act(
                    Cause::LeaderKeyHeld,
                    actions,
                    format!("promoting: I hold the leader key{note}"),
                )
            }
            Prepared::Fence(fence, note) => {
                actions.extend([fence, Action::Promote]);
                Decision::act(
                    Cause::LeaderKeyHeld,
                    actions,
                    format!("promoting: I hold the leader key{note}"),
                )
            }
            Prepared::Wait(why) if actions.is_empty() => Decision::idle(Cause::Fencing, why),
            Prepared::Wait(why) => Decision::act(Cause::Fencing, actions, why),
            // Its holder may take the key back when its pgboxd resumes.
            Prepared::Refuse(why) => Decision::act(
                Cause::TimelineBehind,
                vec![Action::ReleaseLeader],
                format!("giving up the leader key: {why}"),
            ),
        },
    }
}

/// A primary that demoted because it could not prove its lease (a DCS it
/// reaches only now and then: a flapping link) may still hold the key, its
/// lease kept alive by the renewals that do get through, and would promote
/// again on it, only to demote again. Meanwhile nobody else may lead. So for
/// two TTLs after such a demotion it hands the key to a member that can
/// lead instead: in synchronous mode the recorded synchronous standby, else
/// any running replica. The name of that member, if there is one.
fn shaky_lease_hand_off(obs: &Observation, mem: &Memory, view: &ClusterView) -> Option<String> {
    let lost = mem.lease_lost_as_primary_ms?;
    if obs.now_ms.saturating_sub(lost) > 2 * obs.settings.ttl_ms {
        return None;
    }
    if obs.settings.synchronous_mode != SyncMode::Off {
        let standby = view.sync.as_ref().and_then(|k| k.sync_standby.as_deref())?;
        return (standby != obs.me && member_running(view, standby)).then(|| standby.to_string());
    }
    view.members
        .iter()
        .find(|(n, m)| {
            *n != obs.me && m.state == "running" && m.role != "primary" && !m.tags.nofailover
        })
        .map(|(n, _)| n.clone())
}

/// What has to happen before this candidate promotes.
enum Prepared {
    /// Nothing (more); the note says why, for the reason line.
    Ready(String),
    /// Fence these members first.
    Fence(Action, String),
    /// An old primary is fenced; its WAL is still on the way.
    Wait(String),
    /// Never: the old primary is on a newer timeline than mine.
    Refuse(String),
}

/// A member whose PostgreSQL runs as primary while its pgboxd does not
/// answer (hung: its lease expired, but nothing stopped its server) would
/// go on acknowledging commits after I promote: two writable primaries,
/// and in asynchronous mode every commit it acknowledged that I lack is
/// lost. So I fence it first over a connection to its PostgreSQL, and
/// promote once I hold the WAL it had written. A member that cannot be
/// reached is dead or cut off (the watchdog and its lease rules apply to
/// it); one that cannot be fenced, or whose WAL does not come, holds the
/// cluster up for at most `fence_give_up_ms`.
fn before_promoting(obs: &Observation, mem: &Memory) -> Prepared {
    let hung: Vec<(&Peer, &PeerPostgres)> = obs
        .peers
        .iter()
        .filter_map(|p| hung_primary(p).map(|pg| (p, pg)))
        .collect();
    if hung.is_empty() {
        return Prepared::Ready(String::new());
    }
    // It was promoted after my data forked off (its pgboxd hung before it
    // recorded the switch in history): my promotion would open a second
    // timeline with its number, which pg_rewind cannot tell from its own.
    if let Some((p, pg)) = hung.iter().find(|(_, pg)| {
        matches!((pg.timeline, obs.pg.timeline), (Some(theirs), Some(mine)) if theirs > mine)
    }) {
        return Prepared::Refuse(format!(
            "{} runs as primary on timeline {}, newer than my {}",
            p.name,
            pg.timeline.unwrap_or(0),
            obs.pg.timeline.unwrap_or(0)
        ));
    }
    let names = |list: &[(&Peer, &PeerPostgres)]| {
        list.iter()
            .map(|(p, _)| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let waited = mem
        .hung_primary_since_ms
        .map_or(0, |t| obs.now_ms.saturating_sub(t));
    if waited >= obs.settings.fence_give_up_ms() {
        return Prepared::Ready(format!(
            "; {} still runs as primary without its pgboxd and could not be fenced (or its WAL did not arrive) within {} s: promoting without",
            names(&hung),
            waited / 1000
        ));
    }
    let unfenced: Vec<(&Peer, &PeerPostgres)> =
        hung.iter().copied().filter(|(_, pg)| !pg.fenced).collect();
    if !unfenced.is_empty() {
        return Prepared::Fence(
            Action::Fence {
                members: unfenced.iter().map(|(p, _)| p.name.clone()).collect(),
                within_ms: obs.settings.fence_budget_ms(),
            },
            format!(
                ", after fencing {}: its PostgreSQL runs as primary but its pgboxd does not answer",
                names(&unfenced)
            ),
        );
    }
    let my_lsn = obs.pg.lsn.unwrap_or(0);
    let ahead: Vec<(&Peer, &PeerPostgres)> = hung
        .iter()
        .copied()
        .filter(|(_, pg)| pg.timeline == obs.pg.timeline && pg.lsn.is_some_and(|l| l > my_lsn))
        .collect();
    if let Some((p, pg)) = ahead.first() {
        return Prepared::Wait(format!(
            "not promoting yet: {} is fenced; waiting for its WAL up to {} (I have {})",
            p.name,
            format_lsn(pg.lsn.unwrap_or(0)),
            format_lsn(my_lsn)
        ));
    }
    Prepared::Ready(format!(
        "; {} is fenced and I hold all the WAL it wrote",
        names(&hung)
    ))
}

/// PostgreSQL runs and another member holds the leader key.
fn follow_leader(obs: &Observation, mem: &Memory, view: &ClusterView, leader: &str) -> Decision {
    if obs.pg.role == Role::Primary {
        // Two writable primaries is the one outcome that must never last:
        // stop at once; the next loop rewinds and rejoins.
        return Decision::act(
            Cause::OtherLeader,
            vec![Action::Stop],
            format!("demoting: {leader} holds the leader key"),
        );
    }
    if obs.pg.configured_upstream.as_deref() != Some(leader) {
        return Decision::act(
            Cause::NewLeader,
            vec![Action::Follow {
                leader: leader.into(),
            }],
            format!("following new leader {leader}"),
        );
    }
    // A standby that replayed past the point where the leader's timeline
    // forked can never stream from it: PostgreSQL retries for ever. Seen as
    // "not streaming for long, and on another timeline than the leader":
    // an older one it cannot switch to, or a newer one the leader never had
    // (a promotion of mine that never acknowledged a commit: a failed
    // hand-over whose old leader took its key back).
    let leader_tl = view.member(leader).and_then(|m| m.timeline);
    let behind =
        matches!((obs.pg.timeline, leader_tl), (Some(mine), Some(theirs)) if mine != theirs);
    let stuck_for = mem
        .not_streaming_since_ms
        .map_or(0, |t| obs.now_ms.saturating_sub(t));
    if behind && member_running(view, leader) && stuck_for > obs.settings.diverged_after_ms() {
        let rejoin = Action::Start(StartAs::Replica {
            leader: Some(leader.into()),
        });
        let reason = format!(
            "rejoining: not streaming from {leader} for {} s and my timeline {} is not its {}",
            stuck_for / 1000,
            obs.pg.timeline.unwrap_or(0),
            leader_tl.unwrap_or(0)
        );
        if obs.settings.use_pg_rewind && !mem.rewind_failed {
            return Decision::act(
                Cause::Diverged,
                vec![
                    Action::Stop,
                    Action::Rewind {
                        from: leader.into(),
                    },
                    rejoin,
                ],
                format!("{reason}; pg_rewind"),
            );
        }
        if obs.settings.on_rewind_failure == RewindFailure::Basebackup {
            return Decision::act(
                Cause::Diverged,
                vec![
                    Action::Stop,
                    Action::RemoveData,
                    Action::BaseBackup {
                        from: leader.into(),
                    },
                    rejoin,
                ],
                format!("{reason}; cloning it afresh"),
            );
        }
        return Decision::idle(
            Cause::Diverged,
            format!("{reason}; on_rewind_failure is stop, so waiting for a person"),
        );
    }
    if obs.pg.streaming {
        Decision::idle(
            Cause::Following,
            format!("no action: streaming from leader {leader}"),
        )
    } else {
        Decision::idle(
            Cause::NotStreaming,
            format!("no action: following leader {leader}, not streaming yet"),
        )
    }
}

/// A primary whose key lapsed (its VM paused, its pgboxd starved) may find
/// that another member was promoted meanwhile, acknowledged writes, and is
/// gone again. Retaking the free key then would throw those writes away (the
/// newer primary rewinds onto my older timeline) and, with a standby
/// streaming from me, make two primaries that acknowledged writes. Two
/// records tell: the history lists a timeline newer than mine, or (in
/// synchronous mode) the sync key names another leader, which a promoted
/// member takes over before it acknowledges its first commit. A deposed
/// primary stops; it rejoins whoever leads next.
fn deposed(obs: &Observation, view: &ClusterView) -> Option<String> {
    if let (Some(mine), Some(newest)) = (obs.pg.timeline, view.max_history_timeline()) {
        if mine < newest {
            return Some(format!(
                "my leader key lapsed and the cluster has moved on to timeline {newest} (mine is {mine})"
            ));
        }
    }
    // A member reserves its timeline before pg_promote, so the reservation
    // tells of a promotion whose switch never reached the history (fresh
    // 2-async seed 1062756: db2 promoted and acknowledged writes, then lost
    // the DCS before recording it; db1, resumed from a VM pause, would
    // have retaken the free key and acknowledged on timeline 1).
    if let (Some(mine), Some(reserved)) = (obs.pg.timeline, view.reserved_timeline) {
        if mine < reserved {
            return Some(format!(
                "my leader key lapsed and a member has promoted (or was about to) onto timeline {reserved} since (mine is {mine})"
            ));
        }
    }
    if obs.settings.synchronous_mode == SyncMode::Off {
        return None;
    }
    match view.sync.as_ref().and_then(|k| k.leader.as_deref()) {
        Some(other) if other != obs.me => Some(format!(
            "my leader key lapsed and {other} has taken over the sync key since"
        )),
        _ => None,
    }
}

/// PostgreSQL runs and nobody holds the leader key: an election.
fn leaderless(obs: &Observation, mem: &Memory, view: &ClusterView) -> Decision {
    if obs.pg.role == Role::Primary {
        if let Some(why) = deposed(obs, view) {
            return Decision::act(
                Cause::Deposed,
                vec![Action::Stop],
                format!("demoting: {why}"),
            );
        }
        // My key is gone (it expired, or was deleted) but I am still primary.
        // Take it back if nobody else did; the transaction makes this atomic.
        return Decision::act(
            Cause::LeaderKeyLost,
            vec![Action::AcquireLeader],
            "re-acquiring the leader key: I am primary and nobody holds it".into(),
        );
    }
    if let Some(reason) = failsafe_promise(obs) {
        return Decision::idle(Cause::Failsafe, format!("not promoting: {reason}"));
    }
    match failover_candidacy(obs, view) {
        Ok((cause, reason)) => {
            let mut actions = vec![Action::AcquireLeader];
            let note = match before_promoting(obs, mem) {
                Prepared::Ready(note) => note,
                Prepared::Fence(fence, note) => {
                    actions.push(fence);
                    note
                }
                // Someone fenced an old primary and lost the key: take it
                // and wait for that WAL as its holder.
                Prepared::Wait(why) => {
                    return Decision::act(Cause::Fencing, actions, why);
                }
                Prepared::Refuse(why) => {
                    return Decision::idle(Cause::TimelineBehind, format!("not promoting: {why}"));
                }
            };
            actions.push(Action::Promote);
            if view.failover.is_some() {
                actions.push(Action::ClearFailover);
            }
            Decision::act(cause, actions, format!("promoting: {reason}{note}"))
        }
        Err((cause, reason)) => Decision::idle(cause, format!("not promoting: {reason}")),
    }
}

/// Whether this member may promise a primary without the DCS not to take
/// over (`POST /failsafe`): not while it runs as primary or holds the
/// leader key itself, for then two members would each lead on the other's
/// word. None: it may.
pub fn vouch_refusal(
    holds_leader_key: bool,
    pg_running: bool,
    pg_role: Role,
) -> Option<&'static str> {
    (holds_leader_key || (pg_running && pg_role == Role::Primary))
        .then_some("runs as primary or holds the leader key")
}

/// In failsafe mode, the promise this member gave not to take over, while
/// it holds (one TTL): the leader it gave it to may be primary without the
/// DCS on the strength of it.
fn failsafe_promise(obs: &Observation) -> Option<String> {
    if !obs.settings.failsafe_mode {
        return None;
    }
    let at = obs.failsafe.promised_at_ms?;
    let age = obs.now_ms.saturating_sub(at);
    if age >= obs.settings.ttl_ms {
        return None;
    }
    Some(match &obs.failsafe.promised_to {
        Some(leader) => format!(
            "{age} ms ago I confirmed to {leader}, primary without the DCS, that I will not take over (failsafe mode; the promise holds for ha.ttl)"
        ),
        None => format!(
            "pgboxd started {age} ms ago and may have promised a primary without the DCS not to take over (failsafe mode; waiting ha.ttl)"
        ),
    })
}

/// Whether this replica may race for the leader key, and why.
/// My timeline is older than the newest the history records: another
/// member was promoted since my data forked off.
fn timeline_behind(obs: &Observation, view: &ClusterView) -> Option<String> {
    timeline_refusal(
        obs.settings.synchronous_mode,
        &obs.me,
        obs.pg.timeline,
        &view.history,
        view.sync.as_ref(),
    )
}

/// Why a member on timeline `mine` may not promote, by the history and the
/// sync key: the history lists a newer timeline, whose acknowledged writes
/// it lacks. In synchronous mode the sync key tells better: the standby it
/// names and the leader that wrote it hold every acknowledged commit,
/// whatever their timeline (fresh 3-strict-failsafe seed 6886089: a leader
/// that took the key back after a failed hand-over continued timeline 1
/// below the candidate's abandoned timeline 2, and nobody could lead). The
/// timeline number itself is never used twice (`Executor::reserve_timeline`).
/// The core's elections and the executor's last check before pg_promote
/// both ask this.
pub fn timeline_refusal(
    mode: SyncMode,
    me: &str,
    mine: Option<u32>,
    history: &[crate::dcs::model::HistoryEntry],
    sync: Option<&crate::dcs::model::SyncKey>,
) -> Option<String> {
    let newest = crate::dcs::model::newest_timeline(history)?;
    let mine = mine.filter(|tl| *tl < newest)?;
    let vouched = mode != SyncMode::Off
        && sync.is_some_and(|k| {
            k.sync_standby.as_deref() == Some(me) || k.leader.as_deref() == Some(me)
        });
    (!vouched).then(|| format!("my timeline {mine} is older than the cluster's timeline {newest}"))
}

fn failover_candidacy(
    obs: &Observation,
    view: &ClusterView,
) -> Result<(Cause, String), (Cause, String)> {
    if !obs.settings.can_lead {
        return Err((
            Cause::NoWatchdog,
            "ha.watchdog is required and this box has no watchdog device".into(),
        ));
    }
    if !lease_fresh(obs) {
        // Leading on a lease whose renewals are not working would end in a
        // demotion within seconds (self-fencing): wait until they work.
        return Err((
            Cause::LeaseUnproven,
            "my lease renewals are not working yet".into(),
        ));
    }
    if obs.tags.nofailover || obs.tags.failover_priority == 0 {
        return Err((Cause::NoFailover, "this node is tagged nofailover".into()));
    }
    let Some(my_lsn) = obs.pg.lsn else {
        return Err((Cause::PositionUnknown, "my WAL position is unknown".into()));
    };
    // Before any request too, a manual failover included (what the check
    // allows in synchronous mode: `timeline_refusal`).
    if let Some(why) = timeline_behind(obs, view) {
        return Err((Cause::TimelineBehind, why));
    }
    if let Some(request) = &view.failover {
        let candidate_running = request
            .member
            .as_deref()
            .is_some_and(|c| able_to_take_over(obs, view, c));
        // The stepped-down leader stays down only while someone can take
        // over: the named candidate runs, or (no candidate named) a peer
        // holds at least my WAL. A peer behind me would defer to me as
        // further ahead, and nobody would ever lead.
        // In synchronous mode a peer can only if the sync key does not name
        // me: then I am the only one allowed to promote (a leader that died
        // with a switchover request pending leaves exactly this behind).
        let only_me = obs.settings.synchronous_mode != SyncMode::Off
            && view.sync.as_ref().and_then(|k| k.sync_standby.as_deref()) == Some(obs.me.as_str());
        let anyone_can = request.member.is_none() && !only_me && peer_at_least_as_far(obs, my_lsn);
        if request.leader.as_deref() == Some(obs.me.as_str()) && (candidate_running || anyone_can) {
            return Err((Cause::Switchover, "I stepped down for a switchover".into()));
        }
        match request.member.as_deref() {
            Some(c) if c == obs.me => {
                if request.leader.is_none() {
                    // A person asked for this node by name with no leader
                    // to hand over: they accepted whatever it lacks.
                    return Ok((
                        Cause::ManualFailover,
                        format!(
                            "manual failover to me requested; my LSN {} (writes beyond it, if any, are lost)",
                            format_lsn(my_lsn)
                        ),
                    ));
                }
                return Ok((
                    Cause::Switchover,
                    format!("switchover to me; my LSN {}", format_lsn(my_lsn)),
                ));
            }
            Some(c) if able_to_take_over(obs, view, c) => {
                return Err((
                    Cause::Switchover,
                    format!("a switchover or failover to {c} is in progress"),
                ));
            }
            _ => {}
        }
    }
    let sync_standby = obs.settings.synchronous_mode != SyncMode::Off;
    if sync_standby {
        let key_leader = view.sync.as_ref().and_then(|k| k.leader.as_deref());
        match view.sync.as_ref().and_then(|k| k.sync_standby.as_deref()) {
            Some(s) if s == obs.me => {}
            // The leader that wrote the key acknowledged every write itself,
            // whichever standby it names: nobody else acknowledged any since
            // (a promoted member takes the key over first). Fresh
            // 2-on-failsafe seed 2550771: the leader's pgboxd crashed,
            // restarted, promoted on its own key (timeline 2, commits held)
            // and stopped cleanly; the standby the key names, still on
            // timeline 1, may not promote, so nobody could ever lead.
            _ if key_leader == Some(obs.me.as_str()) => {}
            // Acknowledged writes may exist only on the leader that recorded
            // no standby; a node holding all of that leader's WAL loses none.
            None if key_leader.is_some_and(|l| holds_all_of(obs, l)) => {}
            Some(s) => {
                let why =
                    format!("synchronous mode: only the synchronous standby {s} may be promoted");
                return Err((Cause::NotSyncStandby, why));
            }
            None => {
                let why = "synchronous mode: no synchronous standby is recorded, so any promotion could lose acknowledged writes";
                return Err((Cause::NotSyncStandby, why.into()));
            }
        }
    }
    if let (false, Some(leader_lsn)) = (sync_standby, view.last_leader_lsn) {
        let lag = leader_lsn.saturating_sub(my_lsn);
        if lag > obs.settings.maximum_lag_on_failover {
            let why = format!(
                "I am {lag} bytes behind the last known primary position {}, more than maximum_lag_on_failover {}",
                format_lsn(leader_lsn),
                obs.settings.maximum_lag_on_failover
            );
            return Err((Cause::LagTooHigh, why));
        }
    }
    for peer in &obs.peers {
        if !peer.reachable {
            continue;
        }
        if peer.role == Role::Primary {
            // The old primary still answers and may still accept writes:
            // promoting now could make two. It fences itself, or re-takes the key.
            return Err((
                Cause::OldPrimaryAlive,
                format!("{} still runs as primary", peer.name),
            ));
        }
        if peer.nofailover || sync_standby {
            // The synchronous standby holds every acknowledged commit; a
            // peer further ahead holds only unacknowledged ones.
            continue;
        }
        // An LSN means something only on the same timeline: a peer on an
        // older one is behind in history, whatever its number says.
        if let (Some(mine), Some(theirs)) = (obs.pg.timeline, peer.timeline) {
            if theirs < mine {
                continue;
            }
        }
        let Some(peer_lsn) = peer.lsn else { continue };
        if peer_lsn > my_lsn {
            return Err((
                Cause::PeerAhead,
                format!(
                    "{} is further ahead ({} > my {})",
                    peer.name,
                    format_lsn(peer_lsn),
                    format_lsn(my_lsn)
                ),
            ));
        }
        if peer_lsn == my_lsn && peer.failover_priority > obs.tags.failover_priority {
            return Err((
                Cause::PeerAhead,
                format!(
                    "{} is as far ahead and has a higher failover priority",
                    peer.name
                ),
            ));
        }
    }
    if sync_standby {
        let recorded = view.sync.as_ref().and_then(|k| k.sync_standby.as_deref());
        let basis = match (
            recorded,
            view.sync.as_ref().and_then(|k| k.leader.as_deref()),
        ) {
            (_, Some(l)) if l == obs.me => "I wrote the sync key as leader".to_string(),
            (Some(_), _) => "I am the synchronous standby".to_string(),
            (None, Some(l)) => {
                format!("I hold all the WAL of {l}, which recorded no synchronous standby")
            }
            (None, None) => "no sync key".to_string(),
        };
        return Ok((
            Cause::Election,
            format!(
                "the leader key is free and {basis} (LSN {})",
                format_lsn(my_lsn)
            ),
        ));
    }
    Ok((
        Cause::Election,
        format!(
            "the leader key is free and my LSN {} is the highest",
            format_lsn(my_lsn)
        ),
    ))
}

/// `name` answers, no longer runs as primary, and has no WAL I lack: its
/// position is in my history. A position on an older timeline counts only
/// up to where my history left that timeline. Fresh 2-on seed 2461583: a
/// leader re-took the key on timeline 1 after a hand-over to a member that
/// had already opened timeline 2, and acknowledged writes on timeline 1
/// past the fork; the member on timeline 2 was "further" by number only.
fn holds_all_of(obs: &Observation, name: &str) -> bool {
    obs.peers.iter().any(|p| {
        p.name == name
            && p.reachable
            && p.role != Role::Primary
            && match (p.timeline, p.lsn) {
                (Some(tl), Some(lsn)) => obs.pg.holds_wal(tl, lsn),
                _ => false,
            }
    })
}

/// A reachable peer that may be promoted and holds at least `lsn` on my
/// timeline or a newer one.
fn peer_at_least_as_far(obs: &Observation, lsn: u64) -> bool {
    obs.peers.iter().any(|p| {
        p.reachable
            && !p.nofailover
            && p.failover_priority > 0
            && p.lsn.is_some_and(|l| l >= lsn)
            && match (obs.pg.timeline, p.timeline) {
                (Some(mine), Some(theirs)) => theirs >= mine,
                _ => true,
            }
    })
}

/// The leader's part of a switchover: check the candidate, then step down
/// cleanly (checkpoint, fast stop that sends every WAL record to the
/// standbys, release the key) so the candidate promotes with everything.
fn switchover_step(obs: &Observation, view: &ClusterView, request: &FailoverKey) -> Decision {
    if request.leader.as_deref().is_some_and(|l| l != obs.me) {
        return Decision::act(
            Cause::Switchover,
            vec![Action::ClearFailover],
            format!(
                "clearing a switchover request for leader {}, which I replaced",
                request.leader.as_deref().unwrap_or("")
            ),
        );
    }
    if let Some(at) = request.scheduled_at.as_deref() {
        match humantime::parse_rfc3339_weak(at) {
            Ok(t) => {
                let at_ms = t
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                if obs.now_unix_ms < at_ms {
                    return Decision::idle(
                        Cause::Switchover,
                        format!("switchover scheduled at {at}"),
                    );
                }
                // A time long gone (the leader was down or the cluster
                // paused then) is not a request for now: its caller planned
                // for a moment that passed.
                if obs.now_unix_ms - at_ms > stale_schedule_ms(&obs.settings) {
                    return Decision::act(
                        Cause::SwitchoverRefused,
                        vec![Action::ClearFailover],
                        format!(
                            "refusing a switchover scheduled at {at}: that time passed {} s ago",
                            (obs.now_unix_ms - at_ms) / 1000
                        ),
                    );
                }
            }
            Err(_) => {
                return Decision::act(
                    Cause::SwitchoverRefused,
                    vec![Action::ClearFailover],
                    format!("refusing a switchover: unreadable time {at:?}"),
                )
            }
        }
    }
    match switchover_candidate(obs, view, request.member.as_deref()) {
        Ok(candidate) => Decision::act(
            Cause::Switchover,
            vec![Action::Checkpoint, Action::Stop, Action::ReleaseLeader],
            format!("switchover: stepping down so that {candidate} takes over"),
        ),
        Err(why) => Decision::act(
            Cause::SwitchoverRefused,
            vec![Action::ClearFailover],
            format!("refusing a switchover: {why}"),
        ),
    }
}

/// How late a scheduled switchover may still start: a few loops (a busy
/// loop or a short DCS hiccup), and never less than one TTL.
pub fn stale_schedule_ms(settings: &Settings) -> u64 {
    (settings.loop_wait_ms * 3).max(settings.ttl_ms)
}

/// `switchover from db1 to db2`, `failover to db2`, for messages.
fn request_summary(request: &FailoverKey) -> String {
    match (&request.leader, &request.member) {
        (Some(l), Some(m)) => format!("switch over from {l} to {m}"),
        (Some(l), None) => format!("switch over from {l}"),
        (None, Some(m)) => format!("fail over to {m}"),
        (None, None) => "switch over".to_string(),
    }
}

/// Why a request for the `failover` key cannot be taken now, whatever the
/// members' health: the API answers at once with it and writes nothing, so
/// a request is either carried out now or refused now, never kept for
/// later. `None`: the request may be recorded (the API and the leader then
/// check the candidates).
pub fn request_refusal(
    config: &crate::dcs::model::DynamicConfig,
    request: &FailoverKey,
) -> Option<RequestRefusal> {
    if !config.pause {
        return None;
    }
    // Patroni's answers where it refuses too; where Patroni would carry out
    // a switchover to a named candidate in pause mode, pgbox refuses: in
    // maintenance mode pgboxd does nothing at all, so the request would
    // wait for the resume and fire then.
    Some(if request.scheduled_at.is_some() {
        RequestRefusal::Malformed("Can't schedule switchover in the paused state".into())
    } else if request.member.is_none() {
        RequestRefusal::Malformed(
            "Switchover is possible only to a specific candidate in a paused state".into(),
        )
    } else {
        RequestRefusal::Precondition(
            "the cluster is paused (maintenance mode): pgbox carries out no switchover or failover \
             while paused; resume it first (pgboxctl resume) and ask again"
                .into(),
        )
    })
}

/// Why `request_refusal` refused, and of which kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestRefusal {
    /// The request itself cannot be taken in this state (HTTP 400).
    Malformed(String),
    /// The cluster's state does not allow it now (HTTP 412).
    Precondition(String),
}

impl RequestRefusal {
    pub fn message(&self) -> &str {
        match self {
            RequestRefusal::Malformed(m) | RequestRefusal::Precondition(m) => m,
        }
    }
}

/// A member fit to take over, as its member key shows it: running,
/// streaming, not tagged nofailover.
fn fit_by_member_key(name: &str, m: &crate::dcs::model::Member) -> Result<(), String> {
    if m.tags.nofailover || m.tags.failover_priority == 0 {
        return Err(format!("{name} is tagged nofailover"));
    }
    if m.state != "running" {
        return Err(format!("{name} is not healthy: its state is {:?}", m.state));
    }
    if m.role != "replica" || m.replication_state.as_deref() != Some("streaming") {
        return Err(format!(
            "{name} is not a streaming replica (role {}, {})",
            m.role,
            m.replication_state.as_deref().unwrap_or("not streaming")
        ));
    }
    Ok(())
}

/// Whether a switchover or failover to `candidate` may be recorded, from
/// the cluster as the DCS shows it: what the API answers at once (412) and
/// the simulator's operator is refused, so that a request is refused when
/// it is made rather than by the leader a loop later. The leader checks
/// again, first-hand, before it steps down (`switchover_candidate`).
pub fn candidate_refusal(
    view: &ClusterView,
    mode: SyncMode,
    maximum_lag: u64,
    candidate: &str,
    switchover: bool,
) -> Option<String> {
    let leader = view.leader.as_deref();
    let Some(m) = view.member(candidate) else {
        return Some(format!("candidate {candidate} is not a running member"));
    };
    if leader == Some(candidate) {
        return Some(format!("{candidate} is already the leader"));
    }
    // With a leader there is no hurry: hand over only to a member that is
    // fit to lead and has (nearly) every write.
    if let Some(current) = leader {
        if let Err(why) = fit_by_member_key(candidate, m) {
            return Some(why);
        }
        let leader_lsn = view
            .member(current)
            .and_then(|l| l.xlog_location)
            .or(view.last_leader_lsn);
        match (leader_lsn, m.xlog_location) {
            (Some(lead), Some(at)) if lead.saturating_sub(at) > maximum_lag => {
                return Some(format!(
                    "{candidate} is {} bytes behind the leader, more than maximum_lag_on_failover ({maximum_lag})",
                    lead - at
                ))
            }
            (Some(_), None) => return Some(format!("{candidate}'s replay position is unknown")),
            _ => {}
        }
    }
    let sync_standby = view
        .sync
        .as_ref()
        .filter(|k| k.leader.is_some() && k.leader.as_deref() == leader)
        .and_then(|k| k.sync_standby.as_deref());
    if switchover && mode != SyncMode::Off && sync_standby != Some(candidate) {
        return Some(format!(
            "{candidate} is not the synchronous standby ({}); only it has every acknowledged write",
            sync_standby.unwrap_or("none recorded yet")
        ));
    }
    None
}

fn switchover_candidate(
    obs: &Observation,
    view: &ClusterView,
    wanted: Option<&str>,
) -> Result<String, String> {
    let sync_standby = view
        .sync
        .as_ref()
        .filter(|k| k.leader.as_deref() == Some(obs.me.as_str()))
        .and_then(|k| k.sync_standby.clone());
    let eligible = |name: &str, m: &crate::dcs::model::Member| -> Result<(), String> {
        if name == obs.me {
            return Err(format!("{name} is the leader already"));
        }
        fit_by_member_key(name, m)?;
        // First-hand, not from the DCS: the member keys and the sync key
        // can be a term old (a leader that lost the key and took it back
        // finds its old sync key; a member that just crashed still shows
        // as streaming until its key expires).
        let live = obs
            .pg
            .standbys
            .iter()
            .find(|s| s.name == crate::postgres::conf::slot_name(name) && s.streaming);
        let Some(live) = live else {
            return Err(format!(
                "{name} is not streaming from me (PostgreSQL does not list it in pg_stat_replication)"
            ));
        };
        if obs.settings.synchronous_mode != SyncMode::Off && live.sync_state != "sync" {
            return Err(format!(
                "{name} is not a synchronous standby of mine right now (PostgreSQL reports it {}); promoting it could lose acknowledged writes",
                live.sync_state
            ));
        }
        if obs.settings.synchronous_mode != SyncMode::Off && sync_standby.as_deref() != Some(name) {
            return Err(format!(
                "{name} is not the synchronous standby ({}); promoting it could lose acknowledged writes",
                sync_standby.as_deref().unwrap_or("none yet")
            ));
        }
        Ok(())
    };
    match wanted {
        Some(name) => match view.member(name) {
            Some(m) => eligible(name, m).map(|_| name.to_string()),
            None => Err(format!("{name} is not a member of the cluster")),
        },
        None => view
            .members
            .iter()
            .filter(|(n, m)| eligible(n, m).is_ok())
            .max_by_key(|(_, m)| m.xlog_location.unwrap_or(0))
            .map(|(n, _)| n.clone())
            .ok_or_else(|| "no healthy streaming replica to hand over to".to_string()),
    }
}

/// synchronous_standby_names that make PostgreSQL wait for `standby`, or
/// with none: for any standby in strict mode, for nobody otherwise.
fn sync_names_for(standby: Option<&str>, mode: SyncMode) -> String {
    match (standby, mode) {
        (_, SyncMode::Off) => String::new(),
        (Some(s), _) => format!("\"{}\"", crate::postgres::conf::slot_name(s)),
        (None, SyncMode::Strict) => "*".to_string(),
        (None, SyncMode::On) => String::new(),
    }
}

/// What a leader restarting its PostgreSQL in place waits for before it
/// acknowledges anything: the standby its `sync` key names, or the key
/// would claim more than PostgreSQL enforces. `sync`: the key as read, None
/// when it could not be read (then any standby: never claim less).
pub fn sync_names_for_restart(
    mode: SyncMode,
    me: &str,
    sync: Option<Option<&crate::dcs::model::SyncKey>>,
) -> String {
    if mode == SyncMode::Off {
        return String::new();
    }
    let Some(key) = sync else {
        return "*".into();
    };
    let recorded = key
        .filter(|k| k.leader.as_deref() == Some(me))
        .and_then(|k| k.sync_standby.as_deref());
    sync_names_for(recorded, mode)
}

/// The leader's synchronous replication, one safe step per loop. The
/// `sync` key may never claim more than PostgreSQL enforces: to add a
/// standby, PostgreSQL first, then (once it reports the standby as sync)
/// the key; to remove one, the key first, then PostgreSQL.
fn sync_replication_steps(obs: &Observation, mem: &Memory, view: &ClusterView) -> Decision {
    let mode = obs.settings.synchronous_mode;
    let key = view.sync.as_ref();
    let key_is_mine = key.is_some_and(|k| k.leader.as_deref() == Some(obs.me.as_str()));
    let recorded = key
        .filter(|_| key_is_mine)
        .and_then(|k| k.sync_standby.clone());
    let standby = |member: &str| {
        obs.pg
            .standbys
            .iter()
            .find(|s| s.name == crate::postgres::conf::slot_name(member))
    };
    let streaming = |member: &str| standby(member).is_some_and(|s| s.streaming);

    let desired: Option<String> = if mode == SyncMode::Off {
        None
    } else if recorded.as_deref().is_some_and(streaming) {
        recorded.clone()
    } else {
        let fit = |n: &str, m: &crate::dcs::model::Member| {
            n != obs.me && !m.tags.nofailover && streaming(n)
        };
        // The standby PostgreSQL already waits for, while it streams: its
        // turn to be recorded is the next loop. Choosing again by position
        // each loop flipped between two standbys whose reported positions
        // overtook each other, so the key was never written and a clean
        // stop of the leader left nobody allowed to promote.
        let waited_for = view.members.iter().find(|(n, m)| {
            fit(n, m) && obs.pg.sync_names == format!("\"{}\"", crate::postgres::conf::slot_name(n))
        });
        waited_for
            .or_else(|| {
                view.members
                    .iter()
                    .filter(|(n, m)| fit(n, m))
                    .max_by_key(|(n, _)| standby(n).and_then(|s| s.flush_lsn).unwrap_or(0))
            })
            .map(|(n, _)| n.clone())
    };
    let wanted_names = sync_names_for(desired.as_deref(), mode);

    let mut actions = Vec::new();
    let mut why = Vec::new();
    // Remove first: a key naming a standby that will no longer be waited
    // for (or a key another leader wrote) is cleared before PostgreSQL changes.
    if (key.is_some() && !key_is_mine) || (recorded.is_some() && recorded != desired) {
        actions.push(Action::WriteSync(None));
        why.push(match &recorded {
            Some(r) => format!("{r} is no longer the synchronous standby"),
            None => "taking over the sync key".to_string(),
        });
    }
    if obs.pg.sync_names != wanted_names {
        actions.push(Action::SetSyncNames(wanted_names.clone()));
        why.push(match &desired {
            Some(d) => format!("asking PostgreSQL to wait for {d}"),
            None if mode == SyncMode::Strict => {
                "no healthy standby: commits wait for any standby (strict)".into()
            }
            None if mode == SyncMode::On => "no healthy standby: commits no longer wait".into(),
            None => "synchronous mode is off".into(),
        });
    } else if let Some(d) = &desired {
        // PostgreSQL waits for it from now on; but commits acknowledged
        // before it did are on it only once it has flushed past the
        // position the primary had when it first saw the standby as sync.
        let enforced = standby(d).is_some_and(|s| s.sync_state == "sync");
        let caught_up = match &mem.sync_catchup {
            Some((name, target)) if *name == crate::postgres::conf::slot_name(d) => standby(d)
                .and_then(|s| s.flush_lsn)
                .is_some_and(|f| f >= *target),
            _ => false,
        };
        if enforced && caught_up && recorded.as_deref() != Some(d.as_str()) {
            actions.push(Action::WriteSync(Some(d.clone())));
            why.push(format!(
                "PostgreSQL waits for {d}: recording it as the synchronous standby"
            ));
        }
    }
    if actions.is_empty() {
        return Decision::idle(Cause::Leading, String::new());
    }
    Decision::act(
        Cause::SyncReplication,
        actions,
        format!("synchronous replication: {}", why.join("; ")),
    )
}

/// What the loop does with the hardware watchdog once a loop is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogStep {
    Arm,
    Disarm,
    Keep,
}

/// The watchdog is armed exactly while this node is the writable primary
/// holding the key (`leading`), armed only on a lease proven valid (arming
/// on a stale one would reset a box about to demote), and disarmed as soon
/// as it leads no more. Between loops the executor disarms it too, once
/// PostgreSQL has accepted a stop (`Action::Stop`): from then on it
/// acknowledges no new commit, and a reset could only cut a demotion (or
/// a hand-over's shutdown checkpoint) short.
pub fn watchdog_step(leading: bool, lease_valid: bool, armed: bool) -> WatchdogStep {
    match (leading, armed) {
        (false, true) => WatchdogStep::Disarm,
        (true, false) if lease_valid => WatchdogStep::Arm,
        _ => WatchdogStep::Keep,
    }
}

/// The lease was renewed recently enough to lead on it.
fn lease_fresh(obs: &Observation) -> bool {
    obs.lease.valid(obs.now_ms, obs.settings.fence_after_ms())
}

/// Whether `name` can still carry out a pending switchover or failover:
/// its member key says it runs, and neither its own answer nor its key puts
/// it on a timeline older than mine or the history's. Such a candidate
/// refuses to promote (`timeline_behind`: a leader stepped down and was
/// promoted again while it was away), and waiting for it would leave the
/// cluster without a leader for good.
fn able_to_take_over(obs: &Observation, view: &ClusterView, name: &str) -> bool {
    if !member_running(view, name) {
        return false;
    }
    let newest = obs.pg.timeline.max(view.max_history_timeline());
    let theirs = obs
        .peers
        .iter()
        .find(|p| p.name == name && p.reachable)
        .and_then(|p| p.timeline)
        .or_else(|| view.member(name).and_then(|m| m.timeline));
    !matches!((theirs, newest), (Some(t), Some(n)) if t < n)
}

fn member_running(view: &ClusterView, name: &str) -> bool {
    view.member(name).is_some_and(|m| m.state == "running")
}

#[cfg(test)]
mod tests;
