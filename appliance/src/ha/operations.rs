//! The operations a person asks of one member through its API (Patroni's
//! `POST /restart`, `/reload`, `/reinitialize`), decided like everything
//! else: a pure function of the observation and of what the HA loop would
//! do on its own this round.
//!
//! The rule that keeps them safe is that an operation never competes with
//! the protocol: it runs only in a round whose own decision is idle
//! (following, leading, paused, refusing foreign data, stopped after a
//! failed rewind). A round with work of its own (an election, a rejoin, a
//! switchover) makes it wait, and the caller's time limit withdraws it.
//! A restarting primary keeps its leader key (the keep-alive renews the
//! lease while it restarts), so a restart is never a failover.

use super::{lease_fresh, member_running, Action, Cause, Decision, Observation, Role, StartAs};

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Stop and start PostgreSQL in its current role, if `RestartIf` holds
    /// when the restart is due.
    Restart(RestartIf),
    /// Make PostgreSQL read its configuration files again.
    Reload,
    /// A replica only: clone the data directory afresh from the leader.
    /// The old one is kept aside until the clone has succeeded.
    Reinitialize,
}

impl Operation {
    pub fn word(&self) -> &'static str {
        match self {
            Operation::Restart(_) => "restart",
            Operation::Reload => "reload",
            Operation::Reinitialize => "reinitialize",
        }
    }
}

/// Patroni's restart filters: each one that is set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartIf {
    /// `restart_pending`: only while a changed parameter waits for a restart.
    pub pending_restart: bool,
    /// `role`: only in this role.
    pub role: Option<Role>,
    /// `postgres_version`: only while the server's version number
    /// (`server_version_num`, e.g. 150018) is below this.
    pub below_version: Option<u32>,
}

/// What becomes of an operation this round.
#[derive(Debug, Clone, PartialEq)]
pub enum OperationStep {
    /// Not now: the HA loop has work of its own (the reason says which).
    Wait(String),
    /// Never: the reason is the caller's answer.
    Refuse(String),
    /// Carry it out: this decision replaces the round's idle one.
    Run(Decision),
}

/// What to do with `op` in a round whose own decision is `normal`.
pub fn operation_step(obs: &Observation, op: &Operation, normal: &Decision) -> OperationStep {
    if obs.pg.starting {
        return OperationStep::Wait("PostgreSQL is starting".into());
    }
    if !normal.actions.is_empty() {
        return OperationStep::Wait(format!("the HA loop is busy: {}", normal.reason));
    }
    match op {
        Operation::Restart(cond) => restart(obs, cond),
        Operation::Reload if obs.pg.running => OperationStep::Run(Decision::act(
            Cause::Operation,
            vec![Action::Reload],
            "reload: PostgreSQL reads its configuration again, as asked through the API".into(),
        )),
        Operation::Reload => OperationStep::Refuse("PostgreSQL is not running".into()),
        Operation::Reinitialize => reinitialize(obs),
    }
}

fn restart(obs: &Observation, cond: &RestartIf) -> OperationStep {
    use OperationStep::{Refuse, Run};
    if !obs.pg.running {
        return Refuse(
            "PostgreSQL is not running: there is nothing to restart (a member stopped by the HA loop comes back with reinitialize)"
                .into(),
        );
    }
    let unmet = |why: String| Refuse(format!("restart conditions are not satisfied: {why}"));
    if let Some(role) = cond.role.filter(|r| *r != obs.pg.role) {
        return unmet(format!(
            "asked for a {}, this member is a {}",
            role_name(role),
            role_name(obs.pg.role)
        ));
    }
    if cond.pending_restart && !obs.pg.pending_restart {
        return unmet("no parameter change waits for a restart".into());
    }
    if let Some(below) = cond.below_version {
        match obs.pg.server_version {
            Some(v) if v < below => {}
            Some(v) => return unmet(format!("PostgreSQL {v} is not older than {below}")),
            None => return unmet("the server's version is not known".into()),
        }
    }
    let Some(view) = &obs.dcs else {
        return Refuse(
            "the DCS is unreachable: a restart now could not be told apart from a failure".into(),
        );
    };
    let leader = view.leader.as_deref();
    match obs.pg.role {
        Role::Primary if leader == Some(obs.me.as_str()) && obs.lease.held && lease_fresh(obs) => {
            Run(Decision::act(
                Cause::Operation,
                vec![Action::Checkpoint, Action::Stop, Action::Start(StartAs::Primary)],
                "restart as asked through the API: the primary stops and starts again, keeping the leader key".into(),
            ))
        }
        Role::Primary => Refuse(
            "this primary does not hold the leader key on a lease proven valid: not restarting it"
                .into(),
        ),
        _ => Run(Decision::act(
            Cause::Operation,
            vec![
                Action::Stop,
                Action::Start(StartAs::Replica {
                    leader: leader.filter(|l| *l != obs.me).map(str::to_string),
                }),
            ],
            "restart as asked through the API: the replica stops and starts again".into(),
        )),
    }
}

fn reinitialize(obs: &Observation) -> OperationStep {
    use OperationStep::{Refuse, Run};
    let Some(view) = &obs.dcs else {
        return Refuse("the DCS is unreachable: cannot tell whom to clone from".into());
    };
    let Some(leader) = view.leader.as_deref() else {
        return Refuse("the cluster has no leader to clone from".into());
    };
    if leader == obs.me {
        return Refuse("I am the leader: the leader cannot be reinitialized".into());
    }
    if obs.pg.running && obs.pg.role == Role::Primary {
        return Refuse("this member runs as primary: it cannot be reinitialized".into());
    }
    if !member_running(view, leader) {
        return Refuse(format!(
            "the leader {leader} is not running: nothing to clone"
        ));
    }
    let mut actions = Vec::new();
    if obs.pg.running {
        actions.push(Action::Stop);
    }
    // Started at once, as a replica is after any clone.
    actions.push(Action::Reinitialize {
        from: leader.to_string(),
    });
    actions.push(Action::Start(StartAs::Replica {
        leader: Some(leader.to_string()),
    }));
    Run(Decision::act(
        Cause::Operation,
        actions,
        format!(
            "reinitialize as asked through the API: a fresh clone from {leader}, the old data kept until it succeeds"
        ),
    ))
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Primary => "primary",
        Role::Replica => "replica",
        Role::Unknown => "member of unknown role",
    }
}
