//! Everything the simulated cluster is made of, in one place the runtime
//! lends to one task at a time: clock, nodes, network, DCS, client, trace.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use crate::config::Tags;
use crate::dcs::model::format_lsn;
use crate::ha::{Role, Settings};
use crate::status::PgStatus;

use super::dcs::{LeaderChange, SimDcs};
use super::pg::{Pg, Proc};
use super::rng::Rng;
use super::runtime::{Clock, TaskId};
use super::{Invariant, SimConfig};

/// HAProxy's `timeout check` as pgboxd renders it: a later answer is none.
pub(super) const ROUTER_CHECK_TIMEOUT_MS: u64 = 2_000;

/// Wall-clock origin of a run (for `now_unix_ms`), an arbitrary fixed instant.
pub(super) const EPOCH_UNIX_MS: u64 = 1_800_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Endpoint {
    Node(usize),
    Dcs,
    Client,
}

/// Network cuts, counted so that overlapping faults heal independently.
#[derive(Debug, Default)]
pub(super) struct Net {
    cuts: BTreeMap<(Endpoint, Endpoint), u32>,
}

impl Net {
    fn key(a: Endpoint, b: Endpoint) -> (Endpoint, Endpoint) {
        if a <= b {
            (a, b)
        } else {
            (b, a)
        }
    }

    pub fn cut(&mut self, a: Endpoint, b: Endpoint) {
        *self.cuts.entry(Self::key(a, b)).or_default() += 1;
    }

    pub fn heal(&mut self, a: Endpoint, b: Endpoint) {
        let k = Self::key(a, b);
        if let Some(c) = self.cuts.get_mut(&k) {
            *c -= 1;
            if *c == 0 {
                self.cuts.remove(&k);
            }
        }
    }

    pub fn ok(&self, a: Endpoint, b: Endpoint) -> bool {
        !self.cuts.contains_key(&Self::key(a, b))
    }
}

/// Timings of the real system that the protocol's safety depends on.
#[derive(Debug, Clone)]
pub(super) struct Timing {
    /// `Etcd::request_timeout`: ttl/5 within 0.3..2 s.
    pub request_timeout_ms: u64,
    /// libpq keepalives in primary_conninfo: 2 s idle, 3 probes 1 s apart.
    pub receiver_timeout_ms: u64,
    /// wal_sender_timeout as pgboxd renders it (`Settings::standby_silence_ms`).
    pub sender_timeout_ms: u64,
    /// wal_retrieve_retry_interval (PostgreSQL default).
    pub wal_retry_ms: u64,
    /// pgboxd.service RestartSec.
    pub restart_ms: u64,
    /// The API client's timeout in `ask_peers`: min(1 s, ttl/2).
    pub peer_timeout_ms: u64,
    /// How long `ask_peers` waits for a peer's PostgreSQL
    /// (`fence::probe_limit`).
    pub pg_probe_ms: u64,
    /// The hardware watchdog's timeout as `Daemon::new` sets it
    /// (`Settings::watchdog_timeout_s`).
    pub watchdog_ms: u64,
    /// pgboxd.service WatchdogSec: systemd kills a pgboxd that stops
    /// notifying for this long.
    pub systemd_watchdog_ms: u64,
}

impl Timing {
    pub fn new(cfg: &SimConfig, settings: &Settings) -> Self {
        let request = (cfg.ttl_ms / 5).clamp(300, 2_000);
        let watchdog_s = settings.watchdog_timeout_s();
        Timing {
            request_timeout_ms: request,
            receiver_timeout_ms: 5_000,
            sender_timeout_ms: settings.standby_silence_ms(),
            wal_retry_ms: 5_000,
            restart_ms: 2_000,
            peer_timeout_ms: 1_000.min(cfg.ttl_ms / 2),
            pg_probe_ms: crate::postgres::fence::probe_limit(std::time::Duration::from_millis(
                cfg.ttl_ms,
            ))
            .as_millis() as u64,
            watchdog_ms: watchdog_s * 1000,
            systemd_watchdog_ms: 30_000,
        }
    }
}

/// pgboxd's in-process state that outlives one loop: its lease as the
/// keep-alive task sees it, and what its `Postgres` handle remembers.
#[derive(Debug, Clone)]
pub(super) struct Pgboxd {
    pub loop_task: TaskId,
    pub lease_id: Option<i64>,
    pub renewed_at: Option<u64>,
    /// `Postgres::sync_names`: written into postgresql.conf at every start.
    pub sync_names: String,
    pub sigterm: bool,
    /// A pending wake-up of the loop (the watch's `Notify` permit).
    pub wake_at: Option<u64>,
    /// `Etcd::granting`: a lease grant is under way.
    pub granting: bool,
    /// This process holds the watchdog device open (`Watchdog::armed`).
    pub watchdog_open: bool,
    /// `Promises`: the last failsafe promise (to whom, when); at start,
    /// to nobody, then.
    pub promise: (Option<String>, u64),
    /// `vm_pauses` when the loop made its last decision with actions: a
    /// pause after it hides from pgboxd's clock the time its actions then
    /// take (`paused_while_asked`).
    pub pauses_at_decision: u32,
    /// Restart, reload, reinitialize asked through its API: pgboxd's own
    /// mailbox (`ops_mailbox.rs`), gone with the process.
    pub ops: crate::ops_mailbox::Mailbox,
}

/// What the node's REST API answers (`/patroni`), as of its last loop.
#[derive(Debug, Clone)]
pub(super) struct ApiSnapshot {
    pub state: String,
    pub pg: PgStatus,
    pub is_leader: bool,
}

#[derive(Debug)]
pub(super) struct Node {
    pub name: String,
    /// Its replication slot and application_name (`conf::slot_name`).
    pub slot: String,
    pub tags: Tags,
    pub host_up: bool,
    pub pgboxd: Option<Pgboxd>,
    pub frozen_until: u64,
    /// The whole VM is paused (QMP `stop`) until then: pgboxd, PostgreSQL
    /// and the node's clocks stand still.
    pub vm_paused_until: u64,
    /// How far the node's clocks trail the world's: the sum of its VM
    /// pauses. pgboxd's timers and stamps are in its own time.
    pub clock_lag: u64,
    /// The router marked it down (its /primary went unanswered); only a
    /// 200 on /primary brings it back, and until then the client sends it
    /// nothing.
    pub router_down: bool,
    /// VM pauses so far, and whether one came between pgboxd asking
    /// PostgreSQL to start or promote and PostgreSQL doing it.
    pub vm_pauses: u32,
    pub paused_while_asked: bool,
    pub pg: Pg,
    pub api: Option<ApiSnapshot>,
    /// Faults keeping the box powered off (power loss, a reset's reboot).
    pub power_off: u32,
    /// Faults keeping pgboxd stopped (a person's `systemctl stop`).
    pub stopped: u32,
    /// Faults stalling its WAL stream.
    pub stalled: u32,
    /// The hardware watchdog: when it resets the box, while armed. It
    /// outlives a crashed pgboxd (no magic close), not a reboot.
    pub watchdog: Option<u64>,
}

#[derive(Debug, Clone)]
pub(super) struct Ack {
    pub id: u64,
    pub node: usize,
    pub tl: u32,
    pub lsn: u64,
    pub at: u64,
}

#[derive(Debug)]
pub(super) struct Trace {
    tail: VecDeque<String>,
    cap: usize,
    pub full: Option<Vec<String>>,
    pub hash: u64,
    pub lines: u64,
}

impl Trace {
    fn push(&mut self, line: String) {
        // FNV-1a over every line: two runs with the same hash made the same trace.
        for b in line.as_bytes().iter().chain(b"\n") {
            self.hash ^= *b as u64;
            self.hash = self.hash.wrapping_mul(0x100_0000_01b3);
        }
        self.lines += 1;
        if let Some(full) = self.full.as_mut() {
            full.push(line.clone());
        }
        if self.tail.len() == self.cap {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }
}

#[derive(Debug, Default)]
pub(super) struct Stats {
    pub promotions: u32,
    pub switchovers_requested: u32,
    pub rewinds: u32,
    pub clean_rejoins: u32,
    pub base_backups: u32,
    pub watchdog_resets: u32,
    /// Resets of a box whose pgboxd was not hung: its loop was only slow.
    pub watchdog_resets_unhung: u32,
    /// Operations asked through the API, and those carried out.
    pub operations_asked: u32,
    pub operations_done: u32,
    pub faults: Vec<String>,
}

pub(super) struct World {
    pub clock: Clock,
    pub rng: Rng,
    pub cfg: SimConfig,
    pub settings: Settings,
    pub timing: Timing,
    pub nodes: Vec<Node>,
    pub dcs: SimDcs,
    pub dcs_outages: u32,
    pub pauses: u32,
    pub net: Net,
    pub next_rid: u64,
    pub next_conn: u64,
    pub next_write: u64,
    pub acks: Vec<Ack>,
    /// Writers (node, timeline) in the order their first acknowledgement came.
    pub writers: Vec<(usize, u32)>,
    pub trace: Trace,
    pub violation: Option<(Invariant, String)>,
    pub stats: Stats,
    /// When the last fault heals.
    pub healed_at: u64,
}

impl World {
    pub fn new(seed: u64, cfg: &SimConfig, full_trace: bool) -> Self {
        let mut rng = Rng::new(seed);
        let nodes = (0..cfg.nodes)
            .map(|i| {
                let mut tags = Tags::default();
                // The last node of a three-node cluster is sometimes a
                // reporting replica that must never lead.
                if cfg.nodes >= 3 && i == cfg.nodes - 1 && rng.chance(cfg.nofailover_chance) {
                    tags.nofailover = true;
                }
                let name = format!("db{}", i + 1);
                Node {
                    slot: crate::postgres::conf::slot_name(&name),
                    name,
                    tags,
                    host_up: true,
                    pgboxd: None,
                    frozen_until: 0,
                    vm_paused_until: 0,
                    clock_lag: 0,
                    router_down: false,
                    vm_pauses: 0,
                    paused_while_asked: false,
                    pg: Pg::new(),
                    api: None,
                    power_off: 0,
                    stopped: 0,
                    stalled: 0,
                    watchdog: None,
                }
            })
            .collect();
        let settings = Settings {
            ttl_ms: cfg.ttl_ms,
            loop_wait_ms: cfg.loop_wait_ms,
            maximum_lag_on_failover: 1024 * 1024,
            use_pg_rewind: true,
            on_rewind_failure: crate::config::RewindFailure::Basebackup,
            synchronous_mode: cfg.synchronous_mode,
            primary_start_timeout_ms: 30_000,
            can_lead: true,
            failsafe_mode: cfg.failsafe,
        };
        World {
            clock: Clock::default(),
            rng,
            cfg: cfg.clone(),
            timing: Timing::new(cfg, &settings),
            settings,
            nodes,
            dcs: SimDcs::new(),
            dcs_outages: 0,
            pauses: 0,
            net: Net::default(),
            next_rid: 0,
            next_conn: 0,
            next_write: 0,
            acks: Vec::new(),
            writers: Vec::new(),
            trace: Trace {
                tail: VecDeque::new(),
                cap: cfg.trace_tail.max(1),
                full: full_trace.then(Vec::new),
                hash: 0xcbf2_9ce4_8422_2325,
                lines: 0,
            },
            violation: None,
            stats: Stats::default(),
            healed_at: 0,
        }
    }

    pub fn trace_as(&mut self, who: &str, msg: String) {
        let t = self.clock.now;
        let line = format!("{:>4}.{:03}s {who:<6} {msg}", t / 1000, t % 1000);
        self.trace.push(line);
    }

    pub fn trace(&mut self, n: usize, msg: String) {
        let who = self.nodes[n].name.clone();
        self.trace_as(&who, msg);
    }

    pub fn violate(&mut self, inv: Invariant, detail: String) {
        if self.violation.is_none() {
            self.trace_as("CHECK", format!("VIOLATION {inv:?}: {detail}"));
            self.violation = Some((inv, detail));
        }
    }

    pub fn node_named(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    pub fn pgboxd_alive(&self, n: usize) -> bool {
        self.nodes[n].pgboxd.is_some()
    }

    pub fn frozen(&self, n: usize) -> bool {
        self.nodes[n].frozen_until > self.clock.now
    }

    /// `n`'s own monotonic clock (`Instant::now()` in its pgboxd): behind
    /// the world's by every VM pause it went through.
    pub fn local_now(&self, n: usize) -> u64 {
        self.clock.now.saturating_sub(self.nodes[n].clock_lag)
    }

    pub fn dcs_reachable(&self, n: usize) -> bool {
        self.dcs.up && self.nodes[n].host_up && self.net.ok(Endpoint::Node(n), Endpoint::Dcs)
    }

    /// Wake `n`'s HA loop after `delay` (a watch event, an expired lease).
    pub fn wake(&mut self, n: usize, delay: u64) {
        let at = self.clock.now + delay;
        if let Some(d) = self.nodes[n].pgboxd.as_mut() {
            d.wake_at = Some(d.wake_at.map_or(at, |t| t.min(at)));
            let task = d.loop_task;
            self.clock.wake_at(at, task);
        }
    }

    /// The leader key changed: every watcher that reaches the DCS hears of it.
    pub fn leader_changed(&mut self, change: LeaderChange, why: &str) {
        if change == LeaderChange::None {
            return;
        }
        let holder = self.dcs.leader.as_ref().map(|(n, _)| n.clone());
        match change {
            LeaderChange::Deleted => self.trace_as("DCS", format!("leader key deleted ({why})")),
            _ => self.trace_as(
                "DCS",
                format!("leader key now names {}", holder.as_deref().unwrap_or("?")),
            ),
        }
        for n in 0..self.nodes.len() {
            if self.pgboxd_alive(n) && self.dcs_reachable(n) {
                let delay = self.rng.range(2, 25);
                self.wake(n, delay);
            }
        }
    }

    pub fn expire_leases(&mut self) {
        let now = self.clock.now;
        let (expired, change) = self.dcs.expire(now);
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            let owner = self
                .nodes
                .iter()
                .position(|n| n.pgboxd.as_ref().is_some_and(|d| d.lease_id == Some(*id)));
            let who = owner.map_or("an earlier process".to_string(), |o| {
                self.nodes[o].name.clone()
            });
            self.trace_as("DCS", format!("lease {id:x} of {who} expired"));
        }
        self.leader_changed(change, "lease expired");
    }

    /// The client sees a writable primary: it commits there.
    pub fn client_tick(&mut self) {
        for p in 0..self.nodes.len() {
            let pg = &self.nodes[p].pg;
            if !pg.running_as(Role::Primary)
                || pg.fenced
                || !self.nodes[p].host_up
                || self.nodes[p].router_down
                || !self.net.ok(Endpoint::Client, Endpoint::Node(p))
            {
                continue;
            }
            // A client has a few connections; each waits for its commit.
            if pg.pending.len() >= 4 {
                continue;
            }
            self.next_write += 1;
            let id = self.next_write;
            let size = self.rng.range(90, 4_000);
            let lsn = self.append_wal(p, size, Some(id));
            self.nodes[p].pg.pending.push((id, lsn));
            self.release_waiters(p);
        }
    }

    pub fn acknowledge(&mut self, id: u64, node: usize, tl: u32, lsn: u64) {
        let now = self.clock.now;
        self.acks.push(Ack {
            id,
            node,
            tl,
            lsn,
            at: now,
        });
        let writer = (node, tl);
        if self.writers.last() == Some(&writer) {
            return;
        }
        if let Some(pos) = self.writers.iter().position(|w| *w == writer) {
            // This writer was superseded by another one that acknowledged
            // writes since: two histories both told the client "committed".
            let later: Vec<String> = self.writers[pos + 1..]
                .iter()
                .map(|(n, t)| format!("{} (timeline {t})", self.nodes[*n].name))
                .collect();
            self.violate(
                Invariant::SplitBrain,
                format!(
                    "{} acknowledged write {id} on timeline {tl} after {} had acknowledged writes",
                    self.nodes[node].name,
                    later.join(", ")
                ),
            );
            return;
        }
        self.writers.push(writer);
        self.trace(
            node,
            format!(
                "client: first write acknowledged on timeline {tl}: w{id} at {}",
                format_lsn(lsn)
            ),
        );
    }

    /// I1, at every instant: at most one node would acknowledge a commit
    /// (of those a client can reach: not a paused VM, nor one its router
    /// marked down during the pause and has not seen answer 200 since).
    pub fn check_split_brain(&mut self) {
        let primaries = self
            .nodes
            .iter()
            .filter(|n| n.pg.proc == Proc::Running && n.pg.role == Role::Primary)
            .count();
        if primaries < 2 {
            return;
        }
        let mut writable = Vec::new();
        for p in 0..self.nodes.len() {
            // A paused VM acknowledges nothing; once resumed, no client
            // reaches it until its router sees /primary answer 200 again.
            let node = &self.nodes[p];
            if node.vm_paused_until > self.clock.now || node.router_down {
                continue;
            }
            if self.nodes[p].pg.proc == Proc::Running && self.nodes[p].pg.role == Role::Primary {
                self.reap_senders(p);
                if self.can_acknowledge(p) {
                    writable.push(p);
                }
            }
        }
        if writable.len() > 1 {
            let who: Vec<String> = writable.iter().map(|p| self.describe(*p)).collect();
            self.violate(
                Invariant::SplitBrain,
                format!("two nodes accept writes at once: {}", who.join("; ")),
            );
        }
    }

    pub fn describe(&self, n: usize) -> String {
        let node = &self.nodes[n];
        let pg = &node.pg;
        let mut s = format!("{}: ", node.name);
        if !node.host_up {
            s.push_str("host down");
            return s;
        }
        match &node.pgboxd {
            None => s.push_str("pgboxd down"),
            Some(_) if self.frozen(n) => s.push_str("pgboxd frozen"),
            Some(d) => {
                let _ = write!(
                    s,
                    "pgboxd up (lease {:?}, renewed {:?} ms ago)",
                    d.lease_id,
                    d.renewed_at.map(|t| self.local_now(n).saturating_sub(t))
                );
            }
        }
        let _ = write!(s, ", postgres {:?}", pg.proc);
        if pg.alive() {
            let _ = write!(s, " {:?}", pg.role);
        }
        if let Some(d) = &pg.data {
            let _ = write!(s, " tl {} at {}", d.tl(), format_lsn(d.lsn()));
        } else {
            s.push_str(" no data");
        }
        if pg.role == Role::Primary && pg.alive() {
            let _ = write!(s, ", synchronous_standby_names '{}'", pg.sync_names);
        }
        if let Some(r) = &pg.receiver {
            let _ = write!(s, ", streaming from {}", self.nodes[r.up].name);
        } else if let Some(c) = pg.conninfo {
            let _ = write!(s, ", following {} (not connected)", self.nodes[c].name);
        }
        s
    }

    /// `n`'s pgboxd opens the watchdog device and starts its countdown
    /// (a box without one has nothing to arm).
    pub fn arm_watchdog(&mut self, n: usize) {
        if !self.cfg.watchdog {
            return;
        }
        let at = self.clock.now + self.timing.watchdog_ms;
        let node = &mut self.nodes[n];
        if let Some(d) = node.pgboxd.as_mut() {
            d.watchdog_open = true;
            node.watchdog = Some(at);
        }
    }

    /// The magic close: it stops only a device this process opened; one
    /// left running by a crashed predecessor goes on counting.
    pub fn disarm_watchdog(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        if let Some(d) = node.pgboxd.as_mut().filter(|d| d.watchdog_open) {
            d.watchdog_open = false;
            node.watchdog = None;
        }
    }

    /// The keep-alive task pets the watchdog after each renewal.
    pub fn pet_watchdog(&mut self, n: usize) {
        let now = self.clock.now;
        let timeout = self.timing.watchdog_ms;
        let node = &mut self.nodes[n];
        if node.pgboxd.as_ref().is_some_and(|d| d.watchdog_open) {
            node.watchdog = Some(now + timeout);
        }
    }

    /// The next watchdog that will reset its box.
    pub fn next_watchdog(&self) -> Option<(u64, usize)> {
        (0..self.nodes.len())
            .filter_map(|n| self.nodes[n].watchdog.map(|t| (t, n)))
            .min()
    }

    /// The acknowledged writes that `n`'s WAL lacks.
    pub fn missing_acked(&self, n: usize) -> Vec<Ack> {
        let mut present = vec![false; self.next_write as usize + 1];
        if let Some(d) = &self.nodes[n].pg.data {
            for r in &d.wal {
                if let Some(id) = r.write {
                    present[id as usize] = true;
                }
            }
        }
        self.acks
            .iter()
            .filter(|a| !present[a.id as usize])
            .cloned()
            .collect()
    }

    /// `n`'s PostgreSQL has just become writable. I5: it holds the leader
    /// key (named in it, bound to its current lease).
    pub fn became_writable(&mut self, n: usize, how: &str) {
        let name = self.nodes[n].name.clone();
        let lease = self.nodes[n].pgboxd.as_ref().and_then(|d| d.lease_id);
        let key = self.dcs.leader.clone();
        let holds = key
            .as_ref()
            .is_some_and(|(k, l)| *k == name && Some(*l) == lease && self.dcs.lease_alive(*l));
        if !holds && self.nodes[n].paused_while_asked {
            // pgboxd asked while it held the key; the VM stood still
            // before PostgreSQL could do it, and nothing on the box could
            // act meanwhile. Routers keep it out (I6) until its loop fences.
            self.trace(
                n,
                format!("became writable ({how}) after a VM pause that outlived the key"),
            );
            return;
        }
        if !holds {
            let key = match key {
                Some((k, l)) => format!("names {k} (lease {l:x}, mine {lease:x?})"),
                None => "is absent".into(),
            };
            self.violate(
                Invariant::WritableWithoutKey,
                format!("{name} became writable ({how}) while the leader key {key}"),
            );
        }
    }

    /// A router got `n`'s answer to a `GET /primary` sent at `asked_at`
    /// (`postgres::primary_check`); `before` and `after` are (another node holds
    /// a live key, `n` runs as primary) when it was sent and now.
    pub fn primary_answered(
        &mut self,
        n: usize,
        asked_at: u64,
        ok: bool,
        before: (bool, bool),
        after: (bool, bool),
    ) {
        if self.clock.now.saturating_sub(asked_at) > ROUTER_CHECK_TIMEOUT_MS
            || !self.net.ok(Endpoint::Client, Endpoint::Node(n))
        {
            return;
        }
        if !ok {
            return;
        }
        self.nodes[n].router_down = false;
        let name = self.nodes[n].name.clone();
        if before.0 && after.0 {
            let holder = self
                .dcs
                .leader
                .as_ref()
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            self.violate(
                Invariant::StalePrimaryAnswer,
                format!("{name} answered 200 on /primary while {holder} held the leader key on a live lease"),
            );
        } else if !before.1 && !after.1 {
            self.violate(
                Invariant::StalePrimaryAnswer,
                format!(
                    "{name} answered 200 on /primary while its PostgreSQL did not run as primary"
                ),
            );
        }
    }

    /// I3: one primary holding the leader key, every other node a replica
    /// streaming from it on its timeline.
    pub fn converged(&self) -> Result<usize, String> {
        let Some((leader, _)) = &self.dcs.leader else {
            return Err("nobody holds the leader key".into());
        };
        let l = self
            .node_named(leader)
            .ok_or("the leader key names no node")?;
        if !self.nodes[l].pg.running_as(Role::Primary) {
            return Err(format!("leader {leader} does not run as primary"));
        }
        let ltl = self.nodes[l].pg.data.as_ref().map(|d| d.tl());
        for (i, node) in self.nodes.iter().enumerate() {
            if i == l {
                continue;
            }
            if node.pgboxd.is_none() {
                return Err(format!("{}: pgboxd is not running", node.name));
            }
            let pg = &node.pg;
            if !pg.running_as(Role::Replica) {
                return Err(format!(
                    "{} is not a running replica ({:?} {:?})",
                    node.name, pg.proc, pg.role
                ));
            }
            match &pg.receiver {
                Some(r) if r.up == l => {}
                _ => return Err(format!("{} does not stream from {leader}", node.name)),
            }
            if pg.data.as_ref().map(|d| d.tl()) != ltl {
                return Err(format!("{} is not on {leader}'s timeline", node.name));
            }
        }
        Ok(l)
    }
}
