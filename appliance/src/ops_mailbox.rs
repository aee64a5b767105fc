//! Where the API leaves an operation asked of this member (restart, reload,
//! reinitialize) for the HA loop, and where the loop says what became of
//! it. The loop alone touches PostgreSQL, and it carries an operation out
//! only in a round it has nothing else to do (`ha::operation_step`).
//!
//! A caller that stops waiting withdraws its request unless the loop has
//! already begun it: an operation its caller was told failed never runs
//! later. A scheduled restart waits here until it is due (and is gone with
//! pgboxd, as in Patroni).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::ha::Operation;

/// What became of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The loop began it (the answer for a reinitialize, which takes long).
    Started,
    Done,
    /// Never begun: why.
    Refused(String),
    /// Begun, and an action failed: the error.
    Failed(String),
}

/// Why a request was not accepted at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Busy {
    /// A restart is scheduled or under way already.
    RestartPending,
    /// A reinitialize is under way already.
    ReinitializePending,
}

#[derive(Debug)]
struct Ticket {
    id: u64,
    op: Operation,
    /// Wall-clock ms since the epoch; None: at once.
    due_unix_ms: Option<u64>,
    /// The schedule as the caller wrote it, for `/patroni`.
    schedule: Option<String>,
    begun: bool,
    reply: Option<oneshot::Sender<Settled>>,
}

#[derive(Debug, Default)]
struct Tickets {
    next_id: u64,
    open: Vec<Ticket>,
}

#[derive(Debug, Clone, Default)]
pub struct Mailbox {
    inner: Arc<Mutex<Tickets>>,
    /// Wakes the HA loop when a request arrives, so it is not left for a
    /// whole `loop_wait`.
    wake: Option<Arc<tokio::sync::Notify>>,
}

impl Mailbox {
    pub fn new() -> Self {
        Mailbox::default()
    }

    pub fn waking(wake: Arc<tokio::sync::Notify>) -> Self {
        Mailbox {
            wake: Some(wake),
            ..Mailbox::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tickets> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leave `op` for the loop, due at `due_unix_ms` (None: now). Returns
    /// its ticket and where its outcome will arrive. One restart and one
    /// reinitialize at a time; a second reload joins the first.
    pub fn submit(
        &self,
        op: Operation,
        due_unix_ms: Option<u64>,
        schedule: Option<String>,
    ) -> Result<(u64, oneshot::Receiver<Settled>), Busy> {
        let mut t = self.lock();
        let same_kind = |k: &Ticket| std::mem::discriminant(&k.op) == std::mem::discriminant(&op);
        if t.open.iter().any(same_kind) {
            match op {
                Operation::Restart(_) => return Err(Busy::RestartPending),
                Operation::Reinitialize => return Err(Busy::ReinitializePending),
                Operation::Reload => {}
            }
        }
        t.next_id += 1;
        let id = t.next_id;
        let (tx, rx) = oneshot::channel();
        t.open.push(Ticket {
            id,
            op,
            due_unix_ms,
            schedule,
            begun: false,
            reply: Some(tx),
        });
        drop(t);
        if let Some(wake) = &self.wake {
            wake.notify_one();
        }
        Ok((id, rx))
    }

    /// The oldest operation due at `now_unix_ms` that the loop has not
    /// begun.
    pub fn due(&self, now_unix_ms: u64) -> Option<(u64, Operation)> {
        self.lock()
            .open
            .iter()
            .find(|k| !k.begun && k.due_unix_ms.is_none_or(|d| d <= now_unix_ms))
            .map(|k| (k.id, k.op.clone()))
    }

    /// The loop's word on ticket `id`. `Started` keeps the ticket (the
    /// operation runs); anything else closes it.
    pub fn settle(&self, id: u64, settled: Settled) {
        let mut t = self.lock();
        let Some(i) = t.open.iter().position(|k| k.id == id) else {
            return;
        };
        let reinitialize = t.open[i].op == Operation::Reinitialize;
        if settled == Settled::Started {
            t.open[i].begun = true;
            // A reinitialize can take as long as copying the database:
            // its caller hears that it began (Patroni's answer too).
            if reinitialize {
                if let Some(reply) = t.open[i].reply.take() {
                    let _ = reply.send(Settled::Started);
                }
            }
            return;
        }
        let ticket = t.open.remove(i);
        if let Some(reply) = ticket.reply {
            let _ = reply.send(settled);
        }
    }

    /// The caller gives up on ticket `id`: removed unless the loop began it
    /// (then it runs to its end, and false says so).
    pub fn withdraw(&self, id: u64) -> bool {
        let mut t = self.lock();
        match t.open.iter().position(|k| k.id == id) {
            Some(i) if !t.open[i].begun => {
                t.open.remove(i);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// `DELETE /restart`: remove the scheduled restart that has not begun;
    /// its schedule, or None when there was none.
    pub fn cancel_scheduled_restart(&self) -> Option<String> {
        let mut t = self.lock();
        let i = t.open.iter().position(|k| {
            matches!(k.op, Operation::Restart(_)) && k.schedule.is_some() && !k.begun
        })?;
        let ticket = t.open.remove(i);
        if let Some(reply) = ticket.reply {
            let _ = reply.send(Settled::Refused("the scheduled restart was deleted".into()));
        }
        ticket.schedule
    }

    /// The scheduled restart waiting here: its schedule as written.
    pub fn scheduled_restart(&self) -> Option<String> {
        self.lock()
            .open
            .iter()
            .find(|k| matches!(k.op, Operation::Restart(_)))
            .and_then(|k| k.schedule.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::RestartIf;

    fn restart() -> Operation {
        Operation::Restart(RestartIf::default())
    }

    #[test]
    fn one_restart_at_a_time_and_reloads_join() {
        let m = Mailbox::new();
        let (first, _rx) = m.submit(restart(), None, None).unwrap();
        assert_eq!(
            m.submit(restart(), None, None).unwrap_err(),
            Busy::RestartPending
        );
        assert!(m.submit(Operation::Reload, None, None).is_ok());
        assert!(m.submit(Operation::Reload, None, None).is_ok());
        assert_eq!(m.due(0), Some((first, restart())));
    }

    #[test]
    fn a_scheduled_restart_waits_and_can_be_deleted() {
        let m = Mailbox::new();
        let (_, mut rx) = m
            .submit(restart(), Some(5_000), Some("2026-12-03T06:00:00Z".into()))
            .unwrap();
        assert_eq!(m.due(4_999), None);
        assert_eq!(
            m.scheduled_restart().as_deref(),
            Some("2026-12-03T06:00:00Z")
        );
        assert_eq!(
            m.cancel_scheduled_restart().as_deref(),
            Some("2026-12-03T06:00:00Z")
        );
        assert_eq!(m.due(10_000), None);
        assert!(matches!(rx.try_recv(), Ok(Settled::Refused(_))));
        assert_eq!(m.cancel_scheduled_restart(), None);
    }

    #[test]
    fn a_withdrawn_request_never_runs_but_a_begun_one_finishes() {
        let m = Mailbox::new();
        let (id, _rx) = m.submit(restart(), None, None).unwrap();
        assert!(m.withdraw(id));
        assert_eq!(m.due(0), None);

        let (id, mut rx) = m.submit(restart(), None, None).unwrap();
        m.settle(id, Settled::Started);
        assert!(!m.withdraw(id), "begun: it runs to its end");
        assert_eq!(m.due(0), None, "a begun operation is not handed out twice");
        m.settle(id, Settled::Done);
        assert_eq!(rx.try_recv(), Ok(Settled::Done));
    }

    #[test]
    fn a_reinitialize_answers_when_it_begins() {
        let m = Mailbox::new();
        let (id, mut rx) = m.submit(Operation::Reinitialize, None, None).unwrap();
        assert_eq!(
            m.submit(Operation::Reinitialize, None, None).unwrap_err(),
            Busy::ReinitializePending
        );
        m.settle(id, Settled::Started);
        assert_eq!(rx.try_recv(), Ok(Settled::Started));
        m.settle(id, Settled::Done);
        assert!(m.submit(Operation::Reinitialize, None, None).is_ok());
    }
}
