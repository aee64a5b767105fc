//! PostgreSQL as a process on a simulated node: start-up, fast shutdown,
//! promotion, reloads, checkpoints, base backups, pg_rewind and the WAL
//! receiver. Each completes after a while on its own once asked (a hung
//! pgboxd does not stop a promotion it asked for).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::ha::{self, Role};

use super::etcd_client::call;
use super::loop_io::failsafe_round;
use super::node::{me, R};
use super::pg::{DataDir, Proc, Pump};
use super::runtime::{sleep, timeout, Owner, Sim};
use super::world::{Endpoint, World};

pub(super) fn require_running(w: &World, n: usize) -> R<()> {
    if w.nodes[n].pg.proc == Proc::Running {
        Ok(())
    } else {
        Err("connecting to the local postgres: connection refused".into())
    }
}

/// Something PostgreSQL carries out on its own once asked (start-up, fast
/// shutdown, promotion, a reload, a checkpoint): it completes after `ms`
/// whatever pgboxd does meanwhile (a hung pgboxd does not stop a promotion
/// it asked for); pgboxd waits for the outcome.
pub(super) async fn in_postgres<T: 'static>(
    sim: &Rc<Sim>,
    n: usize,
    ms: u64,
    f: impl FnOnce(&Rc<Sim>) -> T + 'static,
) -> T {
    let slot: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
    let waiter = sim.with(|w| w.clock.current);
    let (s, done) = (sim.clone(), slot.clone());
    sim.spawn(Owner::Postgres(n), async move {
        sleep(&s, ms).await;
        let r = f(&s);
        *done.borrow_mut() = Some(r);
        s.with(|w| {
            let now = w.clock.now;
            w.clock.wake_at(now, waiter);
        });
    });
    Awaited { slot }.await
}

pub(super) struct Awaited<T> {
    slot: Rc<RefCell<Option<T>>>,
}

impl<T> Future for Awaited<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        match self.slot.borrow_mut().take() {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }
}

/// `Postgres::start`: `None` = primary, `Some(None)` = read-only standby,
/// `Some(Some(u))` = standby streaming from u. Waits until it accepts
/// connections.
pub(super) async fn pg_start(sim: &Rc<Sim>, n: usize, standby: Option<Option<usize>>) -> R<()> {
    let epoch = sim.with(|w| {
        let node = &mut w.nodes[n];
        if node.pg.alive() {
            return Err("PostgreSQL is already running".to_string());
        }
        let d = node.pgboxd.as_mut().expect("pgboxd runs");
        if standby.is_some() {
            d.sync_names = String::new();
        }
        let names = d.sync_names.clone();
        if node.pg.data.is_none() {
            return Err("writing postgresql.conf: no data directory".into());
        }
        let pg = &mut node.pg;
        pg.proc = Proc::Starting;
        pg.role = if standby.is_some() {
            Role::Replica
        } else {
            Role::Primary
        };
        pg.conninfo = standby.flatten();
        pg.sync_names = names;
        // postgresql.auto.conf is emptied before every start.
        pg.fenced = false;
        pg.epoch += 1;
        let epoch = pg.epoch;
        let how = match standby {
            None => "primary".to_string(),
            Some(None) => "read-only standby".to_string(),
            Some(Some(u)) => format!("standby of {}", w.nodes[u].name),
        };
        w.trace(n, format!("postgres starting as {how}"));
        Ok(epoch)
    })?;
    let (ms, pauses) = sim.with(|w| (w.rng.range(200, 1_500), pauses_at_decision(w, n)));
    in_postgres(sim, n, ms, move |s| {
        let up = s.with(|w| {
            w.nodes[n].paused_while_asked = w.nodes[n].vm_pauses != pauses;
            let pg = &mut w.nodes[n].pg;
            if pg.epoch != epoch || pg.proc != Proc::Starting {
                return Err("postgres exited during start-up".to_string());
            }
            pg.proc = Proc::Running;
            let primary = standby.is_none();
            let data = pg.data.as_mut().unwrap();
            let from_replica_data = primary && !data.was_primary;
            data.was_primary = primary;
            // Running: the control file says "in production" (or "in
            // archive recovery") until the next clean stop.
            data.clean_stop = false;
            let up = pg.conninfo;
            w.trace(n, "postgres accepts connections".into());
            if primary {
                // Without standby.signal, a standby's data directory comes
                // up writable on its own timeline.
                let how = if from_replica_data {
                    "started as primary on a replica's data"
                } else {
                    "started as primary"
                };
                w.became_writable(n, how);
            }
            Ok(up)
        })?;
        if let Some(up) = up {
            spawn_receiver(s, n, up, epoch);
        }
        Ok(())
    })
    .await
}

pub(super) fn spawn_receiver(sim: &Rc<Sim>, n: usize, up: usize, epoch: u64) {
    sim.kill(Owner::WalReceiver(n));
    let s = sim.clone();
    sim.spawn(Owner::WalReceiver(n), walreceiver(s, n, up, epoch));
}

/// `Postgres::stop`: fast shutdown.
pub(super) async fn pg_stop(sim: &Rc<Sim>, n: usize) -> R<()> {
    // As `Postgres::stop_with`: once the postmaster has accepted the stop
    // (or when there is none: it crashed) nothing acknowledges a commit any
    // more, so the watchdog is disarmed now.
    let stopping = sim.with(|w| {
        let stopping = w.pg_begin_stop(n);
        w.disarm_watchdog(n);
        stopping
    });
    if !stopping {
        return Ok(());
    }
    // Usually well under a second; on a loaded box (a VM under TCG) a fast
    // shutdown's checkpoint has taken about 4 s.
    let ms = sim.with(|w| {
        if w.rng.range(0, 4) == 0 {
            w.rng.range(1_000, 5_000)
        } else {
            w.rng.range(100, 800)
        }
    });
    in_postgres(sim, n, ms, move |s| s.with(|w| w.pg_finish_stop(n))).await;
    Ok(())
}

/// `pg_promote(true)`: PostgreSQL ends recovery on a new timeline and
/// becomes writable (the executor has set the takeover hold first).
pub(super) async fn pg_promote(sim: &Rc<Sim>, n: usize) -> R<()> {
    let epoch = sim.with(|w| {
        if !w.nodes[n].pg.running_as(Role::Replica) {
            return Err("pg_promote: recovery is not in progress".to_string());
        }
        Ok(w.nodes[n].pg.epoch)
    })?;
    let (ms, pauses) = sim.with(|w| (w.rng.range(50, 400), pauses_at_decision(w, n)));
    in_postgres(sim, n, ms, move |s| {
        s.with(|w| {
            w.nodes[n].paused_while_asked = w.nodes[n].vm_pauses != pauses;
            let pg = &w.nodes[n].pg;
            if pg.epoch != epoch || !pg.running_as(Role::Replica) {
                return Err("pg_promote: the server did not finish promoting".to_string());
            }
            w.promote_now(n);
            Ok(())
        })?;
        s.kill(Owner::WalReceiver(n));
        Ok::<_, String>(())
    })
    .await
}

/// `Postgres::follow`: new primary_conninfo, reload; the WAL receiver
/// reconnects to the new upstream.
pub(super) async fn follow(sim: &Rc<Sim>, n: usize, up: usize) -> R<()> {
    let epoch = sim.with(|w| {
        require_running(w, n)?;
        Ok::<_, String>(w.nodes[n].pg.epoch)
    })?;
    let ms = sim.with(|w| w.rng.range(5, 30));
    in_postgres(sim, n, ms, move |s| {
        s.with(|w| {
            require_running(w, n)?;
            let pg = &mut w.nodes[n].pg;
            if pg.epoch != epoch {
                return Err("postgres restarted meanwhile".to_string());
            }
            pg.conninfo = Some(up);
            if pg.receiver.as_ref().is_some_and(|r| r.up != up) {
                pg.receiver = None;
            }
            Ok(())
        })?;
        spawn_receiver(s, n, up, epoch);
        Ok(())
    })
    .await
}

pub(super) async fn checkpoint(sim: &Rc<Sim>, n: usize) -> R<()> {
    sim.with(|w| require_running(w, n))?;
    let ms = sim.with(|w| w.rng.range(50, 500));
    in_postgres(sim, n, ms, move |s| {
        s.with(|w| {
            require_running(w, n)?;
            if w.nodes[n].pg.role == Role::Primary {
                w.append_wal(n, 120, None);
            }
            Ok(())
        })
    })
    .await
}

/// `Postgres::set_sync_names`: remembered for the next start even when the
/// reload fails.
pub(super) async fn set_sync_names(sim: &Rc<Sim>, n: usize, names: &str) -> R<()> {
    sim.with(|w| {
        w.nodes[n].pgboxd.as_mut().expect("pgboxd runs").sync_names = names.to_string();
        require_running(w, n)
    })?;
    let (ms, pauses) = sim.with(|w| (w.rng.range(5, 40), pauses_at_decision(w, n)));
    let names = names.to_string();
    in_postgres(sim, n, ms, move |s| {
        s.with(|w| {
            require_running(w, n)?;
            let held = w.nodes[n].pg.sync_names == crate::postgres::conf::TAKEOVER_HOLD_NAMES;
            let holds = [
                crate::postgres::conf::TAKEOVER_HOLD_NAMES,
                crate::postgres::fence::FENCE_NAMES,
            ];
            let releases = held && !holds.contains(&names.as_str());
            w.nodes[n].pg.sync_names = names.clone();
            // The configuration is written afresh, postgresql.auto.conf
            // emptied (a fence an old primary carried ends here).
            w.nodes[n].pg.fenced = false;
            // A server told to wait for nobody releases every waiting commit.
            w.release_waiters(n);
            if releases && w.nodes[n].pg.role == Role::Primary {
                w.nodes[n].paused_while_asked = w.nodes[n].vm_pauses != pauses;
                w.became_writable(n, "takeover hold released");
            }
            Ok(())
        })
    })
    .await
}

/// `Postgres::base_backup` from a running member.
pub(super) async fn base_backup(sim: &Rc<Sim>, n: usize, src: usize) -> R<()> {
    let reachable = |w: &World| w.link_ok(n, src) && w.nodes[src].pg.proc == Proc::Running;
    if !sim.with(|w| reachable(w)) {
        let ms = sim.with(|w| w.rng.range(100, 2_000));
        sleep(sim, ms).await;
        return Err(format!(
            "pg_basebackup: could not connect to {}",
            sim.with(|w| me(w, src))
        ));
    }
    let ms = sim.with(|w| w.rng.range(1_000, 5_000));
    sleep(sim, ms).await;
    sim.with(|w| {
        if !reachable(w) {
            return Err(format!(
                "pg_basebackup: lost the connection to {}",
                me(w, src)
            ));
        }
        if w.nodes[n].pg.data.is_some() {
            return Err("the data directory appeared while cloning; not replacing it".into());
        }
        if w.nodes[src].pg.role == Role::Primary {
            // -c fast: the backup starts with a checkpoint on the source.
            w.append_wal(src, 120, None);
        }
        let s = w.nodes[src].pg.data.as_ref().unwrap();
        let copy = DataDir {
            system_id: s.system_id.clone(),
            wal: s.wal.clone(),
            was_primary: false,
            clean_stop: false,
            slots: Vec::new(),
            history_files: s.history_files.clone(),
        };
        w.nodes[n].pg.data = Some(copy);
        w.stats.base_backups += 1;
        w.trace(n, format!("cloned {}", me(w, src)));
        Ok(())
    })
}

/// `Postgres::rewind`: CHECKPOINT on the source, then pg_rewind.
pub(super) async fn rewind(sim: &Rc<Sim>, n: usize, src: usize) -> R<()> {
    sim.with(|w| {
        if w.nodes[n].pg.alive() {
            return Err("pg_rewind: target server must be shut down cleanly".to_string());
        }
        if w.nodes[n].pg.data.is_none() {
            return Err("writing postgresql.conf: no data directory".into());
        }
        Ok(())
    })?;
    let reachable = |w: &World| w.link_ok(n, src) && w.nodes[src].pg.proc == Proc::Running;
    if !sim.with(|w| reachable(w)) {
        // connect_timeout=5 when the host does not answer; refused at once when it does.
        let ms = sim.with(|w| if w.link_ok(n, src) { 10 } else { 5_000 });
        sleep(sim, ms).await;
        return Err("CHECKPOINT on the rewind source: could not connect".into());
    }
    let ms = sim.with(|w| w.rng.range(50, 500));
    sleep(sim, ms).await;
    sim.with(|w| {
        if !reachable(w) {
            return Err("CHECKPOINT on the rewind source: connection lost".to_string());
        }
        if w.nodes[src].pg.role == Role::Primary {
            w.append_wal(src, 120, None);
        }
        Ok(())
    })?;
    let ms = sim.with(|w| w.rng.range(300, 2_000));
    sleep(sim, ms).await;
    sim.with(|w| {
        if !reachable(w) {
            return Err(format!("pg_rewind: lost the connection to {}", me(w, src)));
        }
        if w.nodes[n].pg.alive() || w.nodes[n].pg.data.is_none() {
            return Err("pg_rewind: the target changed under it".into());
        }
        // The WAL of the target back to the last common checkpoint may have been recycled.
        if w.rng.chance(0.05) {
            return Err("pg_rewind: could not find previous WAL record".into());
        }
        let s = w.nodes[src].pg.data.clone().unwrap();
        let t = w.nodes[n].pg.data.as_mut().unwrap();
        if t.system_id != s.system_id {
            return Err("pg_rewind: source and target clusters are from different systems".into());
        }
        if t.is_prefix_of(&s) {
            w.trace(n, "pg_rewind: no rewind required".into());
            return Ok(());
        }
        if t.tl() == s.tl() {
            // pg_rewind compares the control files' timelines, not the WAL.
            w.trace(
                n,
                "pg_rewind: source and target cluster are on the same timeline; no rewind required"
                    .into(),
            );
            return Ok(());
        }
        t.wal = s.wal.clone();
        // pg_rewind copies pg_wal's files from the source and removes
        // those the source lacks.
        t.history_files = s.history_files.clone();
        t.was_primary = false;
        t.clean_stop = false;
        w.stats.rewinds += 1;
        w.trace(
            n,
            format!("pg_rewind: rewound to {}'s timeline {}", me(w, src), s.tl()),
        );
        Ok(())
    })
}

/// PostgreSQL's WAL receiver: connect (retrying every
/// wal_retrieve_retry_interval), then stream until the connection breaks.
pub(super) async fn walreceiver(sim: Rc<Sim>, n: usize, up: usize, epoch: u64) {
    let mut last_err = String::new();
    loop {
        let attempt = sim.with(|w| {
            let pg = &w.nodes[n].pg;
            if pg.epoch != epoch || pg.proc != Proc::Running || pg.conninfo != Some(up) {
                return None;
            }
            Some(w.repl_connect(n, up))
        });
        let conn = match attempt {
            None => return,
            Some(Err(e)) => {
                if e != last_err {
                    sim.with(|w| w.trace(n, format!("WAL receiver: {e}")));
                    last_err = e;
                }
                let ms = sim.with(|w| w.timing.wal_retry_ms);
                sleep(&sim, ms).await;
                continue;
            }
            Some(Ok(c)) => {
                last_err.clear();
                sim.with(|w| w.trace(n, format!("WAL receiver: streaming from {}", me(w, up))));
                c
            }
        };
        loop {
            let ms = sim.with(|w| w.rng.range(20, 150));
            sleep(&sim, ms).await;
            match sim.with(|w| w.repl_pump(n, up, conn, epoch)) {
                Pump::Continue => {}
                Pump::Broken => break,
                Pump::Gone => return,
            }
        }
        sleep(&sim, 100).await;
    }
}

/// What `GET /primary` on `n` is judged against: whether another node
/// holds the leader key on a live lease, and whether `n`'s PostgreSQL runs
/// as primary.
pub(super) fn primary_facts(w: &World, n: usize) -> (bool, bool) {
    let me = &w.nodes[n].name;
    let other_holds = w
        .dcs
        .leader
        .as_ref()
        .is_some_and(|(k, l)| k != me && w.dcs.lease_alive(*l));
    (other_holds, w.nodes[n].pg.running_as(Role::Primary))
}

/// A router's health check of `n`'s `GET /primary`, answered by the
/// product's rule (`ha::answers_primary`) on evidence gathered as
/// `leader_check` gathers it: the local PostgreSQL, then a read of the
/// leader key, then (failsafe mode, no DCS answer) a failsafe round, all
/// within the check's budget as `n`'s own clock measures it. It runs inside
/// pgboxd (a frozen or paused pgboxd answers late, a dead one never); the
/// router drops an answer slower than its check timeout.
///
/// I6: a 200 is a violation when another node held the key on a live lease
/// both when the request was sent and when the answer came, or when `n`'s
/// PostgreSQL was not a running primary at either instant (a change while
/// the request was in flight is the answer's unavoidable age).
pub(super) async fn primary_check(sim: Rc<Sim>, n: usize, asked_at: u64) {
    if !sim.with(|w| w.net.ok(Endpoint::Client, Endpoint::Node(n))) {
        return;
    }
    let before = sim.with(|w| primary_facts(w, n));
    let (budget, began) = sim.with(|w| {
        let ttl = std::time::Duration::from_millis(w.settings.ttl_ms);
        let budget = crate::leader_check::LeaderCheck::budget_for(ttl).as_millis() as u64;
        (budget, w.local_now(n))
    });
    let left = |w: &World| budget.saturating_sub(w.local_now(n).saturating_sub(began));
    let l = sim.with(|w| w.rng.range(1, 4));
    sleep(&sim, l).await;
    let (pg_primary, my_lease, me) = sim.with(|w| {
        (
            w.nodes[n].pg.running_as(Role::Primary),
            w.nodes[n].pgboxd.as_ref().and_then(|d| d.lease_id),
            me(w, n),
        )
    });
    let ms = sim.with(|w| left(w));
    let key = timeout(&sim, ms, call(&sim, n, |w| Ok(w.dcs.leader.clone())))
        .await
        .and_then(|r| r.ok());
    let failsafe_mode = sim.with(|w| w.settings.failsafe_mode);
    let mut members_vouch = false;
    if key.is_none() && failsafe_mode && pg_primary {
        let ms = sim.with(|w| left(w));
        members_vouch = timeout(&sim, ms, failsafe_round(&sim, n))
            .await
            .unwrap_or(false);
    }
    let in_time = sim.with(|w| w.local_now(n).saturating_sub(began) <= budget);
    let proof = ha::LeaderProof {
        me,
        my_lease,
        pg_primary,
        leader_key: key,
        failsafe_mode,
        members_vouch,
    };
    let ok = in_time && ha::answers_primary(&proof);
    let l = sim.with(|w| w.rng.range(1, 4));
    sleep(&sim, l).await;
    sim.with(|w| w.primary_answered(n, asked_at, ok, before, primary_facts(w, n)));
}

/// Where a pause counts from for `paused_while_asked`: the loop's last
/// decision, whose actions pgboxd carries out one after another however
/// long its VM stood still in between (its clock does not show it).
fn pauses_at_decision(w: &World, n: usize) -> u32 {
    let node = &w.nodes[n];
    node.pgboxd
        .as_ref()
        .map_or(node.vm_pauses, |d| d.pauses_at_decision.min(node.vm_pauses))
}
