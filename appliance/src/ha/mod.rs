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

mod types;

pub use types::*;

/// The one decision function. See the module comment.
pub fn decide(obs: &Observation, mem: &Memory) -> Decision {
    if obs.pg.starting {
        // Neither stopped nor answering: any action now would act on a guess.
        return Decision::idle("waiting for PostgreSQL to accept connections".into());
    }
    let Some(view) = &obs.dcs else {
        return without_dcs(obs);
    };
    let leader = view.leader.as_deref();
    let i_am_named_leader = leader == Some(obs.me.as_str());

    // A data directory from another cluster must never be joined or promoted:
    // replication would fail in confusing ways, and promotion would fork history.
    if let (DataDir::Initialized { system_id, .. }, Some(init)) = (&obs.pg.data, view.initialize.as_deref()) {
        if !init.is_empty() && init != system_id {
            if obs.pg.running && obs.pg.role == Role::Primary {
                return Decision::act(
                    vec![Action::Stop],
                    format!("stopping: my data belongs to system {system_id}, the cluster is {init}"),
                );
            }
            return Decision::idle(format!(
                "refusing to start: my data belongs to system {system_id}, the cluster is {init}; reinitialize this node"
            ));
        }
    }

    match &obs.pg.data {
        DataDir::Empty => return without_data(obs, view),
        DataDir::Initialized { .. } if !obs.pg.running => return postgres_down(obs, mem, view),
        DataDir::Initialized { .. } => {}
    }

    // PostgreSQL is running from here on.
    if i_am_named_leader {
        return holding_leader_key(obs);
    }
    match leader {
        Some(other) => follow_leader(obs, other),
        None => leaderless(obs, view),
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
                vec![Action::Start(StartAs::Replica { leader: None })],
                "starting read-only: the DCS is unreachable, so no leader is known".into(),
            ),
            DataDir::Empty => Decision::idle("waiting for the DCS before creating a database".into()),
        };
    }
    if obs.pg.role == Role::Primary {
        if obs.lease.valid(obs.now_ms, obs.settings.fence_after_ms()) {
            return Decision::idle(format!(
                "DCS unreachable; my lease may still be valid for {} ms, staying primary",
                obs.lease.remaining(obs.now_ms, obs.settings.fence_after_ms())
            ));
        }
        return Decision::act(
            vec![Action::Stop, Action::Start(StartAs::Replica { leader: None })],
            "demoting: the DCS is unreachable and my lease can no longer be proven valid".into(),
        );
    }
    Decision::idle("DCS unreachable: no automatic action".into())
}

/// No data directory yet: bootstrap the cluster or clone from the leader.
fn without_data(obs: &Observation, view: &ClusterView) -> Decision {
    match (&view.initialize, view.leader.as_deref()) {
        (None, None) => Decision::act(
            vec![Action::ClaimInitialize, Action::AcquireLeader, Action::Bootstrap],
            "bootstrapping: the cluster is not initialized and nobody leads it".into(),
        ),
        (_, Some(leader)) if leader == obs.me => Decision::idle(
            "the leader key names me but I have no data: waiting for it to expire".into(),
        ),
        (_, Some(leader)) if member_running(view, leader) => Decision::act(
            vec![Action::BaseBackup { from: leader.to_string() }, Action::Start(StartAs::Replica { leader: Some(leader.to_string()) })],
            format!("creating replica: cloning from leader {leader}"),
        ),
        (_, Some(leader)) => Decision::idle(format!("waiting for leader {leader} to be running before cloning")),
        (Some(_), None) => Decision::idle("waiting for a leader to clone from".into()),
    }
}

/// Data exists and PostgreSQL is not running.
fn postgres_down(obs: &Observation, mem: &Memory, view: &ClusterView) -> Decision {
    let was_primary = matches!(obs.pg.data, DataDir::Initialized { was_primary: true, .. });
    match view.leader.as_deref() {
        Some(leader) if leader == obs.me => {
            if was_primary {
                // A crash while holding the lease: restart in place. No new
                // timeline, no failover; the lease still fences everyone else.
                let mut actions = Vec::new();
                if !obs.lease.held {
                    actions.push(Action::AcquireLeader);
                }
                actions.push(Action::Start(StartAs::Primary));
                Decision::act(actions, "starting as primary: I hold the leader key and my data was primary".into())
            } else {
                Decision::act(
                    vec![Action::Start(StartAs::Replica { leader: None })],
                    "starting read-only: the leader key names me but my data is a replica's; promotion follows".into(),
                )
            }
        }
        Some(leader) => {
            if !was_primary {
                return Decision::act(
                    vec![Action::Start(StartAs::Replica { leader: Some(leader.into()) })],
                    format!("starting as replica of {leader}"),
                );
            }
            // I was primary and someone else leads now: my timeline may have
            // diverged. Rewind (a no-op when it has not) before following.
            if !member_running(view, leader) {
                return Decision::idle(format!("waiting for leader {leader} to be running before rejoining it"));
            }
            if obs.settings.use_pg_rewind && !mem.rewind_failed {
                return Decision::act(
                    vec![Action::Rewind { from: leader.into() }, Action::Start(StartAs::Replica { leader: Some(leader.into()) })],
                    format!("rejoining: I was primary and {leader} leads now; pg_rewind first"),
                );
            }
            match obs.settings.on_rewind_failure {
                RewindFailure::Basebackup => Decision::act(
                    vec![
                        Action::RemoveData,
                        Action::BaseBackup { from: leader.into() },
                        Action::Start(StartAs::Replica { leader: Some(leader.into()) }),
                    ],
                    if mem.rewind_failed {
                        format!("reinitializing from {leader}: pg_rewind failed")
                    } else {
                        format!("reinitializing from {leader}: pg_rewind is disabled and my data was primary")
                    },
                ),
                RewindFailure::Stop => Decision::idle(format!(
                    "staying down: my data diverged from leader {leader}, pg_rewind {} and on_rewind_failure is stop",
                    if mem.rewind_failed { "failed" } else { "is disabled" }
                )),
            }
        }
        // Never start writable without the key: start read-only, then race.
        None => Decision::act(
            vec![Action::Start(StartAs::Replica { leader: None })],
            "starting read-only: nobody holds the leader key; the election follows".into(),
        ),
    }
}

/// PostgreSQL runs and the leader key names me.
fn holding_leader_key(obs: &Observation) -> Decision {
    let mut actions = Vec::new();
    if !obs.lease.held {
        // The key names me but is bound to a lease of an earlier run of
        // pgboxd: nobody else can have been promoted, so take it over.
        actions.push(Action::AcquireLeader);
    }
    if obs.pg.role == Role::Primary && obs.lease.held && !obs.lease.valid(obs.now_ms, obs.settings.fence_after_ms()) {
        // Reads work but renewals do not: the key will expire under me.
        return Decision::act(
            vec![Action::Stop, Action::Start(StartAs::Replica { leader: None })],
            "demoting: my lease renewals are failing and the lease may expire".into(),
        );
    }
    match obs.pg.role {
        Role::Primary if actions.is_empty() => Decision::idle("no action: I am the leader".into()),
        Role::Primary => Decision::act(actions, "renewing the leader key left by my previous run".into()),
        _ => {
            actions.push(Action::Promote);
            Decision::act(actions, "promoting: I hold the leader key".into())
        }
    }
}

/// PostgreSQL runs and another member holds the leader key.
fn follow_leader(obs: &Observation, leader: &str) -> Decision {
    if obs.pg.role == Role::Primary {
        // Two writable primaries is the one outcome that must never last:
        // stop at once; the next loop rewinds and rejoins.
        return Decision::act(vec![Action::Stop], format!("demoting: {leader} holds the leader key"));
    }
    if obs.pg.configured_upstream.as_deref() != Some(leader) {
        return Decision::act(
            vec![Action::Follow { leader: leader.into() }],
            format!("following new leader {leader}"),
        );
    }
    Decision::idle(format!("no action: streaming from leader {leader}"))
}

/// PostgreSQL runs and nobody holds the leader key: an election.
fn leaderless(obs: &Observation, view: &ClusterView) -> Decision {
    if obs.pg.role == Role::Primary {
        // My key is gone (it expired, or was deleted) but I am still primary.
        // Take it back if nobody else did; the transaction makes this atomic.
        return Decision::act(
            vec![Action::AcquireLeader],
            "re-acquiring the leader key: I am primary and nobody holds it".into(),
        );
    }
    match failover_candidacy(obs, view) {
        Ok(reason) => Decision::act(vec![Action::AcquireLeader, Action::Promote], format!("promoting: {reason}")),
        Err(reason) => Decision::idle(format!("not promoting: {reason}")),
    }
}

/// Whether this replica may race for the leader key, and why.
fn failover_candidacy(obs: &Observation, view: &ClusterView) -> Result<String, String> {
    if obs.tags.nofailover || obs.tags.failover_priority == 0 {
        return Err("this node is tagged nofailover".into());
    }
    let Some(my_lsn) = obs.pg.lsn else {
        return Err("my WAL position is unknown".into());
    };
    if let Some(max_tl) = view.max_history_timeline() {
        if obs.pg.timeline.is_some_and(|tl| tl < max_tl) {
            return Err(format!(
                "my timeline {} is older than the cluster's timeline {max_tl}",
                obs.pg.timeline.unwrap_or(0)
            ));
        }
    }
    if let Some(leader_lsn) = view.last_leader_lsn {
        let lag = leader_lsn.saturating_sub(my_lsn);
        if lag > obs.settings.maximum_lag_on_failover {
            return Err(format!(
                "I am {lag} bytes behind the last known primary position {}, more than maximum_lag_on_failover {}",
                format_lsn(leader_lsn),
                obs.settings.maximum_lag_on_failover
            ));
        }
    }
    for peer in &obs.peers {
        if !peer.reachable {
            continue;
        }
        if peer.role == Role::Primary {
            // The old primary still answers and may still accept writes:
            // promoting now could make two. It fences itself, or re-takes the key.
            return Err(format!("{} still runs as primary", peer.name));
        }
        if peer.nofailover {
            continue;
        }
        let Some(peer_lsn) = peer.lsn else { continue };
        if peer_lsn > my_lsn {
            return Err(format!(
                "{} is further ahead ({} > my {})",
                peer.name,
                format_lsn(peer_lsn),
                format_lsn(my_lsn)
            ));
        }
        if peer_lsn == my_lsn && peer.failover_priority > obs.tags.failover_priority {
            return Err(format!("{} is as far ahead and has a higher failover priority", peer.name));
        }
    }
    Ok(format!("the leader key is free and my LSN {} is the highest", format_lsn(my_lsn)))
}

fn member_running(view: &ClusterView, name: &str) -> bool {
    view.member(name).is_some_and(|m| m.state == "running")
}

#[cfg(test)]
mod tests;
