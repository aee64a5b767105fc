//! A single-threaded executor on a simulated clock.
//!
//! The simulated pgboxd is written as async code shaped like daemon.rs, so
//! that every await point of the real daemon (a DCS call that may time out,
//! a start that takes a second) is a point where the rest of the world moves
//! on. Futures never see a real waker: a future that waits registers a timer
//! for the task being polled, and the executor polls tasks in (time, order of
//! registration) order, so a run depends on nothing but the seed.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::world::World;

pub(super) type TaskId = u64;

/// Whose task it is: a crash kills a process's tasks, a freeze stops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// The test harness itself: client, faults.
    World,
    /// pgboxd of this node: the HA loop and the lease keep-alive.
    Pgboxd(usize),
    /// The PostgreSQL server of this node: what it carries out on its own
    /// once asked (start-up, shutdown, promotion, reloads).
    Postgres(usize),
    /// The WAL receiver of this node's PostgreSQL.
    WalReceiver(usize),
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

#[derive(Default)]
pub(super) struct Clock {
    pub now: u64,
    seq: u64,
    timers: BinaryHeap<Reverse<(u64, u64, TaskId)>>,
    /// The task being polled; a waiting future registers its timer for it.
    pub current: TaskId,
}

impl Clock {
    pub fn wake_at(&mut self, at: u64, task: TaskId) {
        self.seq += 1;
        self.timers
            .push(Reverse((at.max(self.now), self.seq, task)));
    }

    pub fn next_time(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    fn pop(&mut self) -> Option<(u64, TaskId)> {
        self.timers.pop().map(|Reverse((t, _, id))| (t, id))
    }
}

pub(super) struct Sim {
    pub w: RefCell<World>,
    tasks: RefCell<BTreeMap<TaskId, (Owner, Option<Task>)>>,
    next_task: Cell<TaskId>,
}

impl Sim {
    pub fn new(world: World) -> Rc<Self> {
        Rc::new(Sim {
            w: RefCell::new(world),
            tasks: RefCell::new(BTreeMap::new()),
            next_task: Cell::new(1),
        })
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.w.borrow_mut())
    }

    pub fn now(&self) -> u64 {
        self.w.borrow().clock.now
    }

    pub fn spawn(&self, owner: Owner, fut: impl Future<Output = ()> + 'static) -> TaskId {
        let id = self.next_task.get();
        self.next_task.set(id + 1);
        self.tasks
            .borrow_mut()
            .insert(id, (owner, Some(Box::pin(fut))));
        let mut w = self.w.borrow_mut();
        let now = w.clock.now;
        w.clock.wake_at(now, id);
        id
    }

    /// Drop every task of `owner`, the one being polled included (it is not
    /// put back after its poll returns).
    pub fn kill(&self, owner: Owner) {
        let dropped: Vec<(Owner, Option<Task>)> = {
            let mut tasks = self.tasks.borrow_mut();
            let ids: Vec<TaskId> = tasks
                .iter()
                .filter(|(_, (o, _))| *o == owner)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter().filter_map(|id| tasks.remove(&id)).collect()
        };
        // Dropped outside the borrow: a future's destructor may touch the map.
        drop(dropped);
    }

    /// Run the earliest timer. False when nothing is left to run.
    pub fn step(&self) -> bool {
        let (at, id) = {
            let mut w = self.w.borrow_mut();
            let Some((at, id)) = w.clock.pop() else {
                return false;
            };
            w.clock.now = w.clock.now.max(at);
            (at, id)
        };
        let owner = match self.tasks.borrow().get(&id) {
            Some((o, _)) => *o,
            None => return true,
        };
        {
            let mut w = self.w.borrow_mut();
            // A frozen process runs nothing; it resumes where it stopped. A
            // paused VM freezes every process on it.
            let until = match owner {
                Owner::Pgboxd(n) => w.nodes[n].frozen_until.max(w.nodes[n].vm_paused_until),
                Owner::Postgres(n) | Owner::WalReceiver(n) => w.nodes[n].vm_paused_until,
                Owner::World => 0,
            };
            if until > at {
                w.clock.wake_at(until, id);
                return true;
            }
            w.clock.current = id;
        }
        let Some(mut fut) = self
            .tasks
            .borrow_mut()
            .get_mut(&id)
            .and_then(|(_, f)| f.take())
        else {
            return true;
        };
        let mut cx = Context::from_waker(Waker::noop());
        let done = fut.as_mut().poll(&mut cx).is_ready();
        let mut tasks = self.tasks.borrow_mut();
        if done {
            tasks.remove(&id);
        } else if let Some((_, slot)) = tasks.get_mut(&id) {
            *slot = Some(fut);
        } else {
            drop(tasks);
            drop(fut);
        }
        true
    }
}

/// Wait `ms` of simulated time.
pub(super) fn sleep(sim: &Rc<Sim>, ms: u64) -> Sleep {
    Sleep {
        sim: sim.clone(),
        ms,
        until: None,
    }
}

pub(super) struct Sleep {
    sim: Rc<Sim>,
    ms: u64,
    until: Option<u64>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        let sim = self.sim.clone();
        let mut w = sim.w.borrow_mut();
        let now = w.clock.now;
        let until = match self.until {
            Some(u) => u,
            None => {
                let u = now.saturating_add(self.ms);
                self.until = Some(u);
                if u > now {
                    let task = w.clock.current;
                    w.clock.wake_at(u, task);
                }
                u
            }
        };
        if now >= until {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// pgboxd's wait between two loops: `loop_wait`, or less when the leader
/// key changed (the watch) or the lease was found expired. Ready with false
/// when SIGTERM arrived, which the real daemon only sees here too.
pub(super) struct WaitWake {
    pub sim: Rc<Sim>,
    pub node: usize,
    pub ms: u64,
    pub until: Option<u64>,
}

impl Future for WaitWake {
    type Output = bool;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<bool> {
        let sim = self.sim.clone();
        let mut w = sim.w.borrow_mut();
        let now = w.clock.now;
        let node = self.node;
        let Some(d) = w.nodes[node].pgboxd.as_mut() else {
            return Poll::Ready(false);
        };
        if d.sigterm {
            return Poll::Ready(false);
        }
        if d.wake_at.is_some_and(|t| t <= now) {
            d.wake_at = None;
            return Poll::Ready(true);
        }
        let until = match self.until {
            Some(u) => u,
            None => {
                let u = now.saturating_add(self.ms);
                self.until = Some(u);
                let task = w.clock.current;
                w.clock.wake_at(u, task);
                u
            }
        };
        if now >= until {
            Poll::Ready(true)
        } else {
            Poll::Pending
        }
    }
}

/// `tokio::time::timeout`: the inner future is polled first, then the
/// deadline checked; on expiry the inner future is dropped (an operation it
/// had already sent stays done).
pub(super) fn timeout<F: Future>(sim: &Rc<Sim>, ms: u64, fut: F) -> Timeout<F> {
    Timeout {
        sim: sim.clone(),
        ms,
        until: None,
        fut: Box::pin(fut),
    }
}

pub(super) struct Timeout<F> {
    sim: Rc<Sim>,
    ms: u64,
    until: Option<u64>,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (now, until) = {
            let mut w = self.sim.w.borrow_mut();
            let now = w.clock.now;
            let until = match self.until {
                Some(u) => u,
                None => {
                    // tokio saturates a deadline past the end of time too.
                    let u = now.saturating_add(self.ms);
                    let task = w.clock.current;
                    w.clock.wake_at(u, task);
                    u
                }
            };
            (now, until)
        };
        self.until = Some(until);
        if let Poll::Ready(v) = self.fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if now >= until {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}
