//! Restart, reload and reinitialize asked through the API: each runs only
//! in a round the protocol leaves idle, and never as a failover.

use super::*;

fn leading(o: Observation) -> Observation {
    let mut o = with_leader(primary(o), Some("db1"));
    o.lease.held = true;
    o
}

fn following() -> Observation {
    let mut o = with_leader(obs(), Some("db2"));
    o.pg.configured_upstream = Some("db2".into());
    o
}

/// Stopped, refusing data from another cluster: an idle round with no server.
fn foreign() -> Observation {
    let mut o = stopped(following());
    o.pg.data = DataDir::Initialized {
        system_id: "6999".into(),
        was_primary: false,
        clean_stop: None,
    };
    o
}

fn run(o: &Observation, op: Operation) -> OperationStep {
    let normal = decide(o, &Memory::default());
    operation_step(o, &op, &normal)
}

fn actions(step: OperationStep) -> Vec<Action> {
    match step {
        OperationStep::Run(d) => {
            assert_eq!(d.cause, Cause::Operation);
            d.actions
        }
        other => panic!("expected it to run, got {other:?}"),
    }
}

fn refusal(step: OperationStep) -> String {
    match step {
        OperationStep::Refuse(why) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn restart() -> Operation {
    Operation::Restart(RestartIf::default())
}

#[test]
fn a_restarting_primary_keeps_its_key_and_a_replica_follows_the_leader_again() {
    let o = leading(obs());
    assert!(
        decide(&o, &Memory::default()).actions.is_empty(),
        "an idle leader"
    );
    assert_eq!(
        actions(run(&o, restart())),
        vec![
            Action::Checkpoint,
            Action::Stop,
            Action::Start(StartAs::Primary)
        ]
    );
    assert_eq!(
        actions(run(&following(), restart())),
        vec![Action::Stop, replica_of("db2")]
    );
    // Maintenance mode leaves the loop idle: operations still run.
    let mut paused = following();
    paused.dcs.as_mut().unwrap().config.pause = true;
    assert_eq!(actions(run(&paused, restart())).len(), 2);
}

#[test]
fn a_restart_never_runs_on_a_lease_it_cannot_prove() {
    let mut o = leading(obs());
    o.lease.renewed_at_ms = Some(NOW - 9_000);
    let normal = decide(&o, &Memory::default());
    match operation_step(&o, &restart(), &normal) {
        // The protocol demotes it: the restart waits behind that.
        OperationStep::Wait(_) => assert!(!normal.actions.is_empty()),
        OperationStep::Refuse(why) => assert!(why.contains("lease"), "{why}"),
        OperationStep::Run(d) => panic!("restarted a primary on an unproven lease: {d:?}"),
    }
    // A primary the key does not name is never restarted as one.
    let mut keyless = with_leader(primary(obs()), None);
    keyless.dcs.as_mut().unwrap().config.pause = true;
    assert!(refusal(run(&keyless, restart())).contains("leader key"));
}

#[test]
fn restart_conditions() {
    let o = following();
    let when = |c: RestartIf| run(&o, Operation::Restart(c));
    let unmet = |step: OperationStep| {
        let why = refusal(step);
        assert!(
            why.starts_with("restart conditions are not satisfied"),
            "{why}"
        );
    };
    unmet(when(RestartIf {
        role: Some(Role::Primary),
        ..RestartIf::default()
    }));
    unmet(when(RestartIf {
        pending_restart: true,
        ..RestartIf::default()
    }));
    unmet(when(RestartIf {
        below_version: Some(150018),
        ..RestartIf::default()
    }));
    let mut pending = following();
    pending.pg.pending_restart = true;
    let all = RestartIf {
        pending_restart: true,
        role: Some(Role::Replica),
        below_version: Some(160000),
    };
    assert_eq!(actions(run(&pending, Operation::Restart(all))).len(), 2);
    // Nothing to restart; a server the loop is about to start waits for it.
    assert!(refusal(run(&foreign(), restart())).contains("not running"));
    assert!(matches!(
        run(&stopped(following()), restart()),
        OperationStep::Wait(_)
    ));
}

#[test]
fn operations_wait_while_the_protocol_has_work() {
    // Nobody leads and db1 is the best candidate: an election, not a restart.
    let mut o = obs();
    o.dcs.as_mut().unwrap().members.clear();
    let normal = decide(&o, &Memory::default());
    assert!(!normal.actions.is_empty(), "{normal:?}");
    for op in [restart(), Operation::Reload, Operation::Reinitialize] {
        assert!(
            matches!(operation_step(&o, &op, &normal), OperationStep::Wait(_)),
            "{op:?}"
        );
    }
    let mut starting = following();
    starting.pg.starting = true;
    starting.pg.running = false;
    assert!(matches!(run(&starting, restart()), OperationStep::Wait(_)));
}

#[test]
fn reload_runs_on_any_running_server() {
    assert_eq!(
        actions(run(&following(), Operation::Reload)),
        vec![Action::Reload]
    );
    assert_eq!(
        actions(run(&leading(obs()), Operation::Reload)),
        vec![Action::Reload]
    );
    assert!(refusal(run(&foreign(), Operation::Reload)).contains("not running"));
}

#[test]
fn only_a_replica_is_reinitialized_and_only_from_a_running_leader() {
    assert_eq!(
        actions(run(&following(), Operation::Reinitialize)),
        vec![
            Action::Stop,
            Action::Reinitialize { from: "db2".into() },
            replica_of("db2")
        ]
    );
    // A member that refuses its foreign data is idle: reinitialize is its way back.
    let foreign = foreign();
    assert_eq!(
        decide(&foreign, &Memory::default()).cause,
        Cause::ForeignData
    );
    assert_eq!(
        actions(run(&foreign, Operation::Reinitialize)),
        vec![
            Action::Reinitialize { from: "db2".into() },
            replica_of("db2")
        ]
    );
    assert!(refusal(run(&leading(obs()), Operation::Reinitialize)).contains("leader"));
    let mut down = following();
    down.dcs.as_mut().unwrap().members = vec![("db2".into(), member("stopped", "primary"))];
    assert!(refusal(run(&down, Operation::Reinitialize)).contains("not running"));
    let mut no_dcs = following();
    no_dcs.dcs = None;
    let normal = decide(&no_dcs, &Memory::default());
    if normal.actions.is_empty() {
        assert!(
            refusal(operation_step(&no_dcs, &Operation::Reinitialize, &normal)).contains("DCS")
        );
    }
}
