//! Simulated PostgreSQL servers: data directories, WAL histories,
//! streaming and synchronous replication, promotion, pg_rewind and base
//! backups, with the behaviour the HA protocol depends on.
//!
//! WAL is a list of records, each with an id unique in the whole run. Every
//! copy of WAL (streaming, base backup, rewind) copies a whole prefix, so two
//! histories agree up to position i exactly when their records at i are the
//! same: "is a prefix of" is one comparison, and a diverged timeline is a
//! history that is not a prefix of the leader's.

use crate::ha::Role;

use super::world::World;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rec {
    pub rid: u64,
    /// The LSN just past this record.
    pub end: u64,
    pub tl: u32,
    /// The client write this commit record carries.
    pub write: Option<u64>,
}

#[derive(Debug, Clone)]
pub(super) struct DataDir {
    pub system_id: String,
    pub wal: Vec<Rec>,
    /// The control file's state: last ran (or stopped) as a primary.
    pub was_primary: bool,
    /// ...and stopped cleanly ("shut down"): its last record is the
    /// shutdown checkpoint. False after a crash and while running.
    pub clean_stop: bool,
    /// Physical replication slots (kept in the data directory).
    pub slots: Vec<String>,
    /// Timelines with a history file in pg_wal beyond the one the WAL is
    /// on: placeholders pgboxd left so that a promotion skips numbers
    /// another member may have used. Copied with the directory.
    pub history_files: Vec<u32>,
}

impl DataDir {
    pub fn lsn(&self) -> u64 {
        self.wal.last().map_or(0, |r| r.end)
    }

    pub fn tl(&self) -> u32 {
        self.wal.last().map_or(1, |r| r.tl)
    }

    /// The timeline a promotion opens: PostgreSQL probes for history files
    /// upwards from its own timeline and takes the first number without one.
    pub fn next_timeline(&self) -> u32 {
        let mut t = self.tl() + 1;
        while self.history_files.contains(&t) {
            t += 1;
        }
        t
    }

    /// What pg_controldata tells of a primary's clean stop: the timeline
    /// and location (start) of its shutdown checkpoint, the last record.
    pub fn control_clean_stop(&self) -> Option<crate::ha::CleanStop> {
        if !(self.clean_stop && self.was_primary) {
            return None;
        }
        let last = self.wal.last()?;
        let start = self.wal.len().checked_sub(2).map_or(0, |i| self.wal[i].end);
        Some(crate::ha::CleanStop {
            timeline: last.tl,
            checkpoint: start,
        })
    }

    /// What the history file of the WAL's timeline says: each older
    /// timeline and the position where the next one began.
    pub fn forks(&self) -> Vec<crate::ha::Fork> {
        self.wal
            .windows(2)
            .filter(|w| w[0].tl != w[1].tl)
            .map(|w| crate::ha::Fork {
                timeline: w[0].tl,
                switch_lsn: w[0].end,
            })
            .collect()
    }

    pub fn is_prefix_of(&self, other: &DataDir) -> bool {
        self.system_id == other.system_id
            && self.wal.len() <= other.wal.len()
            && self
                .wal
                .last()
                .is_none_or(|r| other.wal[self.wal.len() - 1].rid == r.rid)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Proc {
    Down,
    /// Started, not accepting connections yet (recovery).
    Starting,
    Running,
    /// Fast shutdown in progress: clients are gone, WAL goes to the standbys.
    Stopping,
}

/// This server's WAL receiver connection (standby side).
#[derive(Debug, Clone)]
pub(super) struct Receiver {
    pub up: usize,
    pub conn: u64,
    pub last_contact: u64,
}

/// A WAL sender on this server (pg_stat_replication row).
#[derive(Debug, Clone)]
pub(super) struct Sender {
    pub replica: usize,
    pub conn: u64,
    /// "streaming" rather than "catchup": it reached the end of WAL once.
    pub caught_up: bool,
    pub flush: u64,
    pub last_contact: u64,
}

#[derive(Debug, Clone)]
pub(super) struct Pg {
    pub data: Option<DataDir>,
    /// A reinitialize's old data directory, kept until the clone succeeds.
    pub aside: Option<DataDir>,
    pub proc: Proc,
    pub role: Role,
    /// primary_conninfo of the running server (a member name).
    pub conninfo: Option<usize>,
    /// The running server's synchronous_standby_names.
    pub sync_names: String,
    pub receiver: Option<Receiver>,
    pub senders: Vec<Sender>,
    /// Commits waiting for a synchronous standby: (write id, commit LSN).
    pub pending: Vec<(u64, u64)>,
    /// A candidate's fence is in postgresql.auto.conf (`Action::Fence`):
    /// new transactions are read-only, commits wait for a standby that
    /// does not exist. pgboxd empties that file at every start and reload.
    pub fenced: bool,
    /// Bumped at every start and stop, so that tasks of an earlier run of
    /// the server (its WAL receiver) know they are stale.
    pub epoch: u64,
}

impl Pg {
    pub fn new() -> Self {
        Pg {
            data: None,
            aside: None,
            proc: Proc::Down,
            role: Role::Unknown,
            conninfo: None,
            sync_names: String::new(),
            receiver: None,
            senders: Vec::new(),
            pending: Vec::new(),
            fenced: false,
            epoch: 0,
        }
    }

    pub fn alive(&self) -> bool {
        self.proc != Proc::Down
    }

    pub fn running_as(&self, role: Role) -> bool {
        self.proc == Proc::Running && self.role == role
    }
}

/// What `synchronous_standby_names` (as pgbox writes it) asks for.
#[derive(Debug, PartialEq)]
enum SyncWanted<'a> {
    Nobody,
    Any,
    Named(&'a str),
}

fn parse_sync_names(names: &str) -> SyncWanted<'_> {
    match names.as_bytes() {
        [] => SyncWanted::Nobody,
        [b'*'] => SyncWanted::Any,
        [b'"', .., b'"'] if names.len() >= 2 => SyncWanted::Named(&names[1..names.len() - 1]),
        _ => SyncWanted::Named(names),
    }
}

impl World {
    pub(super) fn new_rec(&mut self, after: u64, tl: u32, size: u64, write: Option<u64>) -> Rec {
        self.next_rid += 1;
        Rec {
            rid: self.next_rid,
            end: after + size,
            tl,
            write,
        }
    }

    /// Append a record to a server's own WAL (a primary's).
    pub(super) fn append_wal(&mut self, n: usize, size: u64, write: Option<u64>) -> u64 {
        let (lsn, tl) = {
            let d = self.nodes[n]
                .pg
                .data
                .as_ref()
                .expect("appending WAL without data");
            (d.lsn(), d.tl())
        };
        let rec = self.new_rec(lsn, tl, size, write);
        let end = rec.end;
        self.nodes[n].pg.data.as_mut().unwrap().wal.push(rec);
        end
    }

    /// Network path between two nodes (both hosts up, no cut).
    pub(super) fn link_ok(&self, a: usize, b: usize) -> bool {
        self.nodes[a].host_up
            && self.nodes[b].host_up
            && self.net.ok(
                super::world::Endpoint::Node(a),
                super::world::Endpoint::Node(b),
            )
    }

    /// A sender row still exists on the primary: its standby still holds the
    /// connection, or the standby vanished without a word (power loss,
    /// partition) and wal_sender_timeout has not run out. Once the path is
    /// back, the first packet to a closed connection gets a reset.
    fn sender_alive(&self, up: usize, s: &Sender) -> bool {
        let r = &self.nodes[s.replica].pg;
        if r.receiver
            .as_ref()
            .is_some_and(|rc| rc.conn == s.conn && rc.up == up)
        {
            return true;
        }
        !self.link_ok(up, s.replica)
            && self.clock.now.saturating_sub(s.last_contact) < self.timing.sender_timeout_ms
    }

    pub(super) fn reap_senders(&mut self, up: usize) {
        if self.nodes[up]
            .pg
            .senders
            .iter()
            .all(|s| self.sender_alive(up, s))
        {
            return;
        }
        let keep: Vec<bool> = self.nodes[up]
            .pg
            .senders
            .iter()
            .map(|s| self.sender_alive(up, s))
            .collect();
        let mut it = keep.into_iter();
        self.nodes[up].pg.senders.retain(|_| it.next().unwrap());
    }

    /// Index of the sender PostgreSQL treats as the synchronous standby.
    fn sync_sender(&self, up: usize) -> Option<usize> {
        let pg = &self.nodes[up].pg;
        match parse_sync_names(&pg.sync_names) {
            SyncWanted::Nobody => None,
            SyncWanted::Any => pg.senders.iter().position(|s| s.caught_up),
            SyncWanted::Named(name) => pg
                .senders
                .iter()
                .position(|s| s.caught_up && self.nodes[s.replica].slot == name),
        }
    }

    fn sync_state(&self, up: usize, i: usize) -> &'static str {
        let pg = &self.nodes[up].pg;
        let s = &pg.senders[i];
        match parse_sync_names(&pg.sync_names) {
            SyncWanted::Nobody => "async",
            want => {
                if self.sync_sender(up) == Some(i) {
                    "sync"
                } else if want == SyncWanted::Any
                    || want == SyncWanted::Named(&self.nodes[s.replica].slot)
                {
                    "potential"
                } else {
                    "async"
                }
            }
        }
    }

    /// The primary would acknowledge a commit issued now: it runs, it takes
    /// connections, and nothing holds a commit back for good (no standby
    /// asked for, or the one PostgreSQL waits for is really connected).
    pub(super) fn can_acknowledge(&self, p: usize) -> bool {
        let pg = &self.nodes[p].pg;
        if !pg.running_as(Role::Primary) {
            return false;
        }
        if parse_sync_names(&pg.sync_names) == SyncWanted::Nobody {
            return true;
        }
        self.sync_sender(p).is_some_and(|i| {
            let s = &pg.senders[i];
            self.link_ok(p, s.replica)
                && self.nodes[s.replica]
                    .pg
                    .receiver
                    .as_ref()
                    .is_some_and(|r| r.conn == s.conn)
        })
    }

    /// Release the commits the synchronous standby has flushed (all of them
    /// when no standby is asked for).
    pub(super) fn release_waiters(&mut self, p: usize) {
        if self.nodes[p].pg.pending.is_empty() {
            return;
        }
        let flushed = match parse_sync_names(&self.nodes[p].pg.sync_names) {
            SyncWanted::Nobody => u64::MAX,
            _ => match self.sync_sender(p) {
                Some(i) => self.nodes[p].pg.senders[i].flush,
                None => return,
            },
        };
        let (done, waiting): (Vec<_>, Vec<_>) = self.nodes[p]
            .pg
            .pending
            .iter()
            .partition(|(_, lsn)| *lsn <= flushed);
        self.nodes[p].pg.pending = waiting;
        let tl = self.nodes[p].pg.data.as_ref().map_or(0, |d| d.tl());
        for (id, lsn) in done {
            self.acknowledge(id, p, tl, lsn);
        }
    }

    /// What the health query reads (`postgres::health`): nothing unless the
    /// server answers.
    pub(super) fn health(&mut self, n: usize) -> crate::status::PgStatus {
        use crate::status::PgStatus;
        if self.nodes[n].pg.proc != Proc::Running {
            return PgStatus::default();
        }
        self.reap_senders(n);
        let pg = &self.nodes[n].pg;
        let d = pg.data.as_ref().expect("a running server has data");
        let primary = pg.role == Role::Primary;
        let standbys = if primary {
            (0..pg.senders.len())
                .map(|i| {
                    let s = &pg.senders[i];
                    crate::ha::Standby {
                        name: self.nodes[s.replica].slot.clone(),
                        streaming: s.caught_up,
                        sync_state: self.sync_state(n, i).into(),
                        flush_lsn: Some(s.flush),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        PgStatus {
            running: true,
            role: pg.role,
            timeline: Some(d.tl()),
            lsn: Some(d.lsn()),
            receive_lsn: (!primary && pg.receiver.is_some()).then(|| d.lsn()),
            streaming: !primary && pg.receiver.is_some(),
            upstream_host: pg.receiver.as_ref().map(|r| self.nodes[r.up].name.clone()),
            server_version: Some(170000),
            postmaster_start_time: None,
            system_identifier: Some(d.system_id.clone()),
            standbys,
            sync_names: Some(pg.sync_names.clone()),
            replay_lag: None,
            forks: d.forks(),
            ..PgStatus::default()
        }
    }

    /// The postmaster dies (crash, or with its pgboxd): no shutdown
    /// checkpoint, no WAL sent, waiting commits never acknowledged.
    pub(super) fn pg_crash(&mut self, n: usize, why: &str) {
        let pg = &mut self.nodes[n].pg;
        if pg.proc == Proc::Down {
            return;
        }
        if let Some(d) = pg.data.as_mut() {
            d.was_primary = pg.role == Role::Primary;
        }
        pg.proc = Proc::Down;
        pg.role = Role::Unknown;
        pg.receiver = None;
        pg.senders.clear();
        pg.pending.clear();
        pg.conninfo = None;
        pg.epoch += 1;
        self.trace(n, format!("postgres {why}"));
    }

    /// Fast shutdown, first half: clients are disconnected (waiting commits
    /// are never acknowledged).
    pub(super) fn pg_begin_stop(&mut self, n: usize) -> bool {
        let pg = &mut self.nodes[n].pg;
        if pg.proc == Proc::Down {
            return false;
        }
        pg.proc = Proc::Stopping;
        pg.pending.clear();
        true
    }

    /// Fast shutdown, second half: a primary writes its shutdown checkpoint
    /// and its WAL senders send everything to the standbys they still reach.
    pub(super) fn pg_finish_stop(&mut self, n: usize) {
        if self.nodes[n].pg.proc != Proc::Stopping {
            return;
        }
        if self.nodes[n].pg.role == Role::Primary {
            self.append_wal(n, 120, None);
            self.reap_senders(n);
            let senders = self.nodes[n].pg.senders.clone();
            for s in senders {
                let r = s.replica;
                let holds = self.nodes[r]
                    .pg
                    .receiver
                    .as_ref()
                    .is_some_and(|rc| rc.conn == s.conn);
                if holds && self.link_ok(n, r) && self.nodes[r].pg.proc == Proc::Running {
                    self.copy_wal(n, r, usize::MAX);
                }
            }
        }
        let pg = &mut self.nodes[n].pg;
        if let Some(d) = pg.data.as_mut() {
            d.was_primary = pg.role == Role::Primary;
            d.clean_stop = true;
        }
        pg.proc = Proc::Down;
        pg.role = Role::Unknown;
        pg.receiver = None;
        pg.senders.clear();
        pg.conninfo = None;
        pg.epoch += 1;
        self.trace(n, "postgres stopped".into());
    }

    /// Append up to `max` records of `from`'s WAL that `to` lacks. `to`'s WAL
    /// is a prefix of `from`'s (checked when the connection was made).
    pub(super) fn copy_wal(&mut self, from: usize, to: usize, max: usize) -> usize {
        let have = self.nodes[to].pg.data.as_ref().map_or(0, |d| d.wal.len());
        let src = &self.nodes[from]
            .pg
            .data
            .as_ref()
            .expect("source has data")
            .wal;
        if have >= src.len() {
            return 0;
        }
        let end = src.len().min(have.saturating_add(max));
        let chunk: Vec<Rec> = src[have..end].to_vec();
        let got = chunk.len();
        self.nodes[to]
            .pg
            .data
            .as_mut()
            .expect("standby has data")
            .wal
            .extend(chunk);
        got
    }

    /// pg_promote finished: the end-of-recovery record opens a new timeline
    /// (one past the newest this server knows of).
    pub(super) fn promote_now(&mut self, n: usize) {
        let (lsn, tl) = {
            let d = self.nodes[n]
                .pg
                .data
                .as_ref()
                .expect("a running server has data");
            (d.lsn(), d.next_timeline())
        };
        let rec = self.new_rec(lsn, tl, 0x60, None);
        let pg = &mut self.nodes[n].pg;
        let d = pg.data.as_mut().unwrap();
        d.wal.push(rec);
        d.was_primary = true;
        pg.role = Role::Primary;
        pg.receiver = None;
        pg.conninfo = None;
        self.stats.promotions += 1;
        self.trace(n, format!("pg_promote: ended recovery on timeline {tl}"));
        if self.nodes[n].pg.sync_names == crate::postgres::conf::TAKEOVER_HOLD_NAMES {
            // Every commit waits for a standby that does not exist: nothing
            // can be acknowledged until pgboxd releases the hold, and I5 is
            // checked there (a box paused after taking the key may finish
            // its promotion long after the key went to another).
            self.trace(n, "commits held until the sync key is taken over".into());
        } else {
            self.became_writable(n, "promoted");
        }
        if self.settings.synchronous_mode != crate::config::SyncMode::Off {
            let missing = self.missing_acked(n);
            if !missing.is_empty() {
                let shown: Vec<String> = missing
                    .iter()
                    .take(8)
                    .map(|a| format!("w{}", a.id))
                    .collect();
                self.trace(
                    n,
                    format!(
                        "NOTE: promoted without {} acknowledged writes: {}",
                        missing.len(),
                        shown.join(" ")
                    ),
                );
            }
        }
    }

    /// A WAL receiver connection attempt from `n` to `up`.
    pub(super) fn repl_connect(&mut self, n: usize, up: usize) -> Result<u64, String> {
        if !self.link_ok(n, up) {
            return Err(format!("could not connect to {}", self.nodes[up].name));
        }
        if self.nodes[up].pg.proc != Proc::Running {
            return Err(format!(
                "{} does not accept connections",
                self.nodes[up].name
            ));
        }
        let slot = self.nodes[n].slot.clone();
        let (mine, theirs) = (
            self.nodes[n].pg.data.as_ref().unwrap(),
            self.nodes[up].pg.data.as_ref().unwrap(),
        );
        if !theirs.slots.contains(&slot) {
            return Err(format!(
                "replication slot \"{slot}\" does not exist on {}",
                self.nodes[up].name
            ));
        }
        if !mine.is_prefix_of(theirs) {
            return Err(format!(
                "my WAL (timeline {}, {}) is not in {}'s history (timeline {}, {})",
                mine.tl(),
                crate::dcs::model::format_lsn(mine.lsn()),
                self.nodes[up].name,
                theirs.tl(),
                crate::dcs::model::format_lsn(theirs.lsn()),
            ));
        }
        let flush = mine.lsn();
        self.next_conn += 1;
        let conn = self.next_conn;
        let now = self.clock.now;
        // A row left by an earlier connection of this standby is reset now.
        self.nodes[up].pg.senders.retain(|s| s.replica != n);
        self.nodes[up].pg.senders.push(Sender {
            replica: n,
            conn,
            caught_up: false,
            flush,
            last_contact: now,
        });
        self.nodes[n].pg.receiver = Some(Receiver {
            up,
            conn,
            last_contact: now,
        });
        Ok(conn)
    }

    /// One round of a connected WAL receiver: data, flush, feedback.
    pub(super) fn repl_pump(&mut self, n: usize, up: usize, conn: u64, epoch: u64) -> Pump {
        let me = &self.nodes[n].pg;
        if me.epoch != epoch || me.proc == Proc::Down || me.conninfo != Some(up) {
            return Pump::Gone;
        }
        if me.receiver.as_ref().is_none_or(|r| r.conn != conn) {
            return Pump::Gone;
        }
        let now = self.clock.now;
        let last = me.receiver.as_ref().unwrap().last_contact;
        if !self.link_ok(n, up) {
            // TCP keepalives (keepalives_idle=2, interval=1, count=3) notice a
            // silent peer after about five seconds.
            if now.saturating_sub(last) > self.timing.receiver_timeout_ms {
                self.nodes[n].pg.receiver = None;
                self.trace(
                    n,
                    format!(
                        "WAL receiver: connection to {} timed out",
                        self.nodes[up].name
                    ),
                );
                return Pump::Broken;
            }
            return Pump::Continue;
        }
        let sender = self.nodes[up]
            .pg
            .senders
            .iter()
            .position(|s| s.conn == conn);
        // WAL senders outlive the start of a fast shutdown: they stay until
        // the shutdown checkpoint has been sent.
        let serving = matches!(self.nodes[up].pg.proc, Proc::Running | Proc::Stopping);
        let (Some(si), true) = (sender, serving) else {
            self.nodes[n].pg.receiver = None;
            self.trace(
                n,
                format!(
                    "WAL receiver: {} closed the connection",
                    self.nodes[up].name
                ),
            );
            return Pump::Broken;
        };
        self.nodes[n].pg.receiver.as_mut().unwrap().last_contact = now;
        self.nodes[up].pg.senders[si].last_contact = now;
        if self.nodes[n].stalled > 0 {
            return Pump::Continue;
        }
        let chunk = self.rng.range(1, 200) as usize;
        self.copy_wal(up, n, chunk);
        let flush = self.nodes[n].pg.data.as_ref().unwrap().lsn();
        let end = self.nodes[up].pg.data.as_ref().unwrap().lsn();
        let s = &mut self.nodes[up].pg.senders[si];
        s.flush = flush;
        if flush >= end && !s.caught_up {
            s.caught_up = true;
        }
        if self.nodes[up].pg.role == Role::Primary {
            self.release_waiters(up);
        }
        Pump::Continue
    }
}

pub(super) enum Pump {
    Continue,
    /// The connection is gone; try again later.
    Broken,
    /// The server or its configuration changed: this receiver is over.
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(rid: u64) -> Rec {
        Rec {
            rid,
            end: rid * 100,
            tl: 1,
            write: None,
        }
    }

    fn dir(rids: &[u64]) -> DataDir {
        DataDir {
            system_id: "1".into(),
            wal: rids.iter().map(|r| rec(*r)).collect(),
            was_primary: false,
            clean_stop: false,
            slots: vec![],
            history_files: vec![],
        }
    }

    #[test]
    fn prefix_is_one_comparison() {
        assert!(dir(&[1, 2]).is_prefix_of(&dir(&[1, 2, 3])));
        assert!(dir(&[]).is_prefix_of(&dir(&[1])));
        assert!(!dir(&[1, 2, 4]).is_prefix_of(&dir(&[1, 2, 3])));
        assert!(!dir(&[1, 2, 3]).is_prefix_of(&dir(&[1, 2])));
    }

    #[test]
    fn sync_names_as_pgbox_writes_them() {
        assert_eq!(parse_sync_names(""), SyncWanted::Nobody);
        assert_eq!(parse_sync_names("*"), SyncWanted::Any);
        assert_eq!(parse_sync_names("\"db2\""), SyncWanted::Named("db2"));
    }

    /// db1 primary, db2 its standby (connected), both with db1's WAL.
    fn pair(sync_names: &str) -> (World, u64) {
        let cfg = crate::sim::SimConfig::new(2, crate::config::SyncMode::On);
        let mut w = World::new(1, &cfg, false);
        let rec = w.new_rec(0x0100_0000, 1, 0x28, None);
        let data = DataDir {
            system_id: "7".into(),
            wal: vec![rec],
            was_primary: true,
            clean_stop: false,
            slots: vec!["db2".into()],
            history_files: vec![],
        };
        for (n, role) in [(0, Role::Primary), (1, Role::Replica)] {
            let pg = &mut w.nodes[n].pg;
            pg.data = Some(data.clone());
            pg.proc = Proc::Running;
            pg.role = role;
            pg.epoch = 1;
        }
        w.nodes[1].pg.conninfo = Some(0);
        w.nodes[0].pg.sync_names = sync_names.into();
        let conn = w.repl_connect(1, 0).expect("db2 connects to db1");
        (w, conn)
    }

    fn pump_until_caught_up(w: &mut World, conn: u64) {
        for _ in 0..100 {
            assert!(matches!(w.repl_pump(1, 0, conn, 1), Pump::Continue));
            if w.nodes[1].pg.data.as_ref().unwrap().lsn()
                == w.nodes[0].pg.data.as_ref().unwrap().lsn()
            {
                return;
            }
        }
        panic!("the standby never caught up");
    }

    #[test]
    fn a_synchronous_commit_is_acknowledged_only_once_the_standby_has_it() {
        let (mut w, conn) = pair("\"db2\"");
        pump_until_caught_up(&mut w, conn);
        assert!(w.can_acknowledge(0));
        w.client_tick();
        assert!(
            w.acks.is_empty(),
            "acknowledged before the standby flushed it"
        );
        assert_eq!(w.nodes[0].pg.pending.len(), 1);
        pump_until_caught_up(&mut w, conn);
        assert_eq!(w.acks.len(), 1);
        assert!(
            w.missing_acked(1).is_empty(),
            "the standby has every acknowledged write"
        );

        // The standby goes away: commits wait, and nothing waits for good
        // once PostgreSQL is told to stop waiting.
        w.nodes[1].pg.receiver = None;
        assert!(!w.can_acknowledge(0));
        w.client_tick();
        assert_eq!(w.acks.len(), 1);
        w.nodes[0].pg.sync_names = String::new();
        w.release_waiters(0);
        assert_eq!(w.acks.len(), 2);
        assert_eq!(w.missing_acked(1).len(), 1);
    }

    #[test]
    fn an_asynchronous_commit_is_acknowledged_at_once() {
        let (mut w, _) = pair("");
        w.client_tick();
        assert_eq!(w.acks.len(), 1);
        assert_eq!(
            w.missing_acked(1).len(),
            1,
            "the standby has not received it yet"
        );
    }

    #[test]
    fn a_fast_shutdown_sends_everything_to_a_connected_standby() {
        let (mut w, conn) = pair("");
        pump_until_caught_up(&mut w, conn);
        w.client_tick();
        w.client_tick();
        assert!(w.pg_begin_stop(0));
        // Senders stay during the shutdown; new writes are refused.
        assert!(matches!(w.repl_pump(1, 0, conn, 1), Pump::Continue));
        w.client_tick();
        assert_eq!(w.acks.len(), 2);
        w.pg_finish_stop(0);
        let (old, standby) = (
            w.nodes[0].pg.data.clone().unwrap(),
            w.nodes[1].pg.data.clone().unwrap(),
        );
        assert!(old.was_primary);
        assert_eq!(
            old.wal, standby.wal,
            "the shutdown checkpoint reached the standby too"
        );
        assert!(matches!(w.repl_pump(1, 0, conn, 1), Pump::Broken));
    }

    #[test]
    fn a_promoted_standby_forks_a_timeline_the_old_primary_cannot_follow() {
        let (mut w, conn) = pair("");
        pump_until_caught_up(&mut w, conn);
        w.client_tick();
        w.pg_crash(0, "crashed");
        w.nodes[1].pg.receiver = None;
        w.promote_now(1);
        let (old, new) = (
            w.nodes[0].pg.data.clone().unwrap(),
            w.nodes[1].pg.data.clone().unwrap(),
        );
        assert_eq!(new.tl(), 2);
        assert!(
            !old.is_prefix_of(&new),
            "the old primary has a write the new timeline lacks"
        );
    }
}
