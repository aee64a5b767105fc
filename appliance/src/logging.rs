//! Logs go to journald when pgboxd runs under systemd with its output
//! connected to the journal, and to stderr otherwise.
//!
//! Every decision is one event with the fields `member`, `role`, `action`
//! and `reason`; journald keeps them as PGBOX_MEMBER, PGBOX_ROLE,
//! PGBOX_ACTION and PGBOX_REASON, so `journalctl PGBOX_REASON=election`
//! finds every promotion after a lost leader across the cluster's logs.

use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

use crate::ha::{Action, Cause, Decision, Role};

/// Prefix of pgboxd's own journal fields (tracing-journald's default, "F",
/// says nothing to someone reading `journalctl -o verbose`).
pub const JOURNAL_FIELD_PREFIX: &str = "PGBOX";

pub fn init() {
    let filter = EnvFilter::try_from_env("PGBOX_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // systemd sets JOURNAL_STREAM when stderr is the journal.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter)
                .with(
                    journald
                        .with_syslog_identifier("pgboxd".into())
                        .with_field_prefix(Some(JOURNAL_FIELD_PREFIX.into())),
                )
                .init();
            return;
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .init();
}

/// An action's name without its arguments ("none" for an idle decision):
/// the `action` field and metric label.
pub fn action_kind(actions: &[Action]) -> String {
    let Some(first) = actions.first() else {
        return "none".to_string();
    };
    let text = format!("{first:?}");
    text.split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("unknown")
        .to_string()
}

pub fn role_word(role: Role) -> &'static str {
    match role {
        Role::Primary => "primary",
        Role::Replica => "replica",
        Role::Unknown => "uninitialized",
    }
}

/// The log line of one decision: the reason for a person as the message,
/// and the fields for machines.
pub fn decision(member: &str, role: Role, d: &Decision) {
    tracing::info!(
        member,
        role = role_word(role),
        action = action_kind(&d.actions).as_str(),
        reason = d.cause.as_str(),
        actions = ?d.actions,
        "{}",
        d.reason
    );
}

/// An action that did not happen, with the decision's fields. Losing a
/// race (another member took the key first) is normal, not an error.
pub fn action_failed(
    member: &str,
    role: Role,
    action: &Action,
    cause: Cause,
    error: &anyhow::Error,
    race_lost: bool,
) {
    let kind = action_kind(std::slice::from_ref(action));
    let (role, reason) = (role_word(role), cause.as_str());
    if race_lost {
        tracing::info!(member, role, action = kind.as_str(), reason, "{error}");
    } else {
        tracing::error!(
            member,
            role,
            action = kind.as_str(),
            reason,
            error = %format!("{error:#}"),
            "action failed: {action:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::Context;

    use super::*;

    /// Records the fields of every event, as a journald layer would see them.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().into(), value.into());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().into(), format!("{value:?}"));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }

    #[test]
    fn a_decision_carries_member_role_action_and_reason_as_fields() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        let d = Decision::act(
            Cause::Election,
            vec![Action::AcquireLeader, Action::Promote],
            "promoting: the leader key is free and my LSN 0/3000148 is the highest".into(),
        );
        tracing::subscriber::with_default(subscriber, || {
            decision("db2", Role::Replica, &d);
            decision(
                "db1",
                Role::Primary,
                &Decision::idle(Cause::Leading, "no action: I am the leader".into()),
            );
        });
        let failed = anyhow::anyhow!("pg_ctl promote exited with 1");
        tracing::subscriber::with_default(
            tracing_subscriber::registry().with(capture.clone()),
            || {
                action_failed(
                    "db2",
                    Role::Replica,
                    &Action::Promote,
                    Cause::Election,
                    &failed,
                    false,
                )
            },
        );
        let events = capture.0.lock().unwrap();
        assert_eq!(events.len(), 3);
        let e = &events[2];
        assert_eq!(
            (&*e["member"], &*e["role"], &*e["action"], &*e["reason"]),
            ("db2", "replica", "Promote", "election")
        );
        assert_eq!(e["error"], "pg_ctl promote exited with 1");
        let e = &events[0];
        assert_eq!(e["member"], "db2");
        assert_eq!(e["role"], "replica");
        assert_eq!(e["action"], "AcquireLeader");
        assert_eq!(e["reason"], "election");
        assert_eq!(e["actions"], "[AcquireLeader, Promote]");
        assert_eq!(
            e["message"],
            "promoting: the leader key is free and my LSN 0/3000148 is the highest"
        );
        assert_eq!(events[1]["action"], "none");
        assert_eq!(events[1]["reason"], "leading");
    }

    #[test]
    fn action_kinds_drop_arguments() {
        assert_eq!(action_kind(&[]), "none");
        assert_eq!(
            action_kind(&[Action::Rewind { from: "db1".into() }]),
            "Rewind"
        );
        assert_eq!(
            action_kind(&[Action::SetSyncNames("x".into())]),
            "SetSyncNames"
        );
    }
}
