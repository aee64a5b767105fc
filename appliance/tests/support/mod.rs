//! Process-level test harness: real etcd members, real PostgreSQL servers and
//! real pgboxd binaries on 127.0.N.x loopback addresses.
//!
//! Every test gets its own base directory (kept when the test fails, removed
//! when it passes), its own 127.0.N.0/24 subnet and its own log files; the tail
//! of every log is printed when a test fails, so CI output shows why.

// Each integration-test binary compiles this module separately and uses only
// part of it.
#![allow(dead_code)]

pub mod checker;
pub mod etcd;
pub mod node;
pub mod postgres;
pub mod primary_watch;
pub mod workload;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{killpg, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

/// Where every test's directory lives. Not a 0700 tempdir: pgboxd runs
/// PostgreSQL as `postgres`, which must be able to traverse every parent of
/// its data directory.
pub const TESTS_ROOT: &str = "/tmp/pgbox-tests";

/// Lines of each log printed when a test fails.
const LOG_TAIL_LINES: usize = 80;

// ---------------------------------------------------------------------------
// Test directory and log registry

pub struct TestDir {
    path: PathBuf,
    logs: Mutex<Vec<(String, PathBuf)>>,
}

impl TestDir {
    pub fn new(test_name: &str) -> TestDir {
        let root = Path::new(TESTS_ROOT);
        mkdir_mode(root, 0o755);
        let path = root.join(format!("{test_name}-{}", std::process::id()));
        // A directory with our pid can only be left over from an earlier run
        // whose process is gone.
        if path.exists() {
            let _ = fs::remove_dir_all(&path);
        }
        mkdir_mode(&path, 0o755);
        TestDir {
            path,
            logs: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// A log file whose tail is printed if the test fails.
    pub fn log_file(&self, label: &str) -> PathBuf {
        let path = self.path.join(format!("{label}.log"));
        let mut logs = self.logs.lock().unwrap();
        if !logs.iter().any(|(l, _)| l == label) {
            logs.push((label.to_string(), path.clone()));
        }
        path
    }

    pub fn print_log_tails(&self) {
        let logs = self.logs.lock().unwrap();
        for (label, path) in logs.iter() {
            eprintln!(
                "\n======== last {LOG_TAIL_LINES} lines of {label} ({}) ========",
                path.display()
            );
            match fs::read(path) {
                Ok(bytes) => {
                    let text = strip_ansi(&String::from_utf8_lossy(&bytes));
                    let lines: Vec<&str> = text.lines().collect();
                    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
                    for line in &lines[from..] {
                        eprintln!("{line}");
                    }
                }
                Err(e) => eprintln!("(cannot read: {e})"),
            }
        }
        eprintln!("======== end of logs ========");
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_tails();
            eprintln!(
                "test directory kept for inspection: {}",
                self.path.display()
            );
        } else if std::env::var_os("PGBOX_KEEP_TEST_DIRS").is_some() {
            eprintln!(
                "test directory kept (PGBOX_KEEP_TEST_DIRS): {}",
                self.path.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

pub fn mkdir_mode(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    // Explicit, because the umask decides what create_dir_all gives.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------
// Per-test loopback subnet

/// Hosts of a subnet the harness uses, with the ports it binds there.
const SUBNET_HOSTS: &[(u8, &[u16])] = &[
    (11, &[2379, 2380]),
    (12, &[2379, 2380]),
    (13, &[2379, 2380]),
    (21, &[5432, 8008, 8432]),
    (22, &[5432, 8008, 8432]),
    (23, &[5432, 8008, 8432]),
    // The backup node: its API and pgBackRest's TLS server.
    (31, &[8008, 8432]),
    // A restored copy of the cluster, started by a backup test.
    (41, &[5432]),
];

/// 127.0.N.0/24, held exclusively by this test while the value lives.
pub struct Subnet {
    n: u8,
    _lock: File,
}

impl Subnet {
    /// Takes the first subnet that no other test process holds and whose ports
    /// are all free (a process left over from a killed run may still hold one).
    pub fn allocate() -> Subnet {
        mkdir_mode(Path::new(TESTS_ROOT), 0o755);
        for n in 10u8..=250 {
            let lock_path = Path::new(TESTS_ROOT).join(format!(".subnet-{n}.lock"));
            let Ok(file) = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
            else {
                continue;
            };
            // flock: released by the kernel when this process dies, however it dies.
            if file.try_lock().is_err() {
                continue;
            }
            let all_free = SUBNET_HOSTS.iter().all(|(host, ports)| {
                ports
                    .iter()
                    .all(|port| TcpListener::bind((Ipv4Addr::new(127, 0, n, *host), *port)).is_ok())
            });
            if all_free {
                return Subnet { n, _lock: file };
            }
        }
        panic!("no free 127.0.N.0/24 test subnet (all of 10..=250 locked or busy)");
    }

    pub fn n(&self) -> u8 {
        self.n
    }

    pub fn ip(&self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, self.n, host))
    }
}

// ---------------------------------------------------------------------------
// Processes

static PROCESS_SETUP: Once = Once::new();

/// Process groups started by this test process and not yet reaped, for the
/// termination handler (a fixed array: the handler may not allocate or lock).
static LIVE_GROUPS: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];

fn register_group(pgid: i32) {
    for slot in LIVE_GROUPS.iter() {
        if slot
            .compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
    panic!(
        "more than {} live process groups in one test",
        LIVE_GROUPS.len()
    );
}

fn unregister_group(pgid: i32) {
    for slot in LIVE_GROUPS.iter() {
        let _ = slot.compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// SIGTERM (a test runner's timeout) or SIGINT (Ctrl-C, which never reaches
/// our children: they have their own process groups) skips every Drop, so
/// the servers would outlive the test and hold its addresses. Kill them, then
/// die of the same signal.
extern "C" fn on_termination(sig: nix::libc::c_int) {
    for slot in LIVE_GROUPS.iter() {
        let pgid = slot.load(Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: kill(2) is async-signal-safe.
            unsafe { nix::libc::kill(-pgid, nix::libc::SIGKILL) };
        }
    }
    // SAFETY: signal(2) and raise(3) are async-signal-safe.
    unsafe {
        nix::libc::signal(sig, nix::libc::SIG_DFL);
        nix::libc::raise(sig);
    }
}

fn process_setup() {
    PROCESS_SETUP.call_once(|| {
        // Descendants orphaned by a killed supervisor (postgres under pgboxd)
        // are re-parented to this process rather than to an init that may
        // never reap them, so "no process of the group remains" can actually
        // be observed.
        nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
        let action = SigAction::new(
            SigHandler::Handler(on_termination),
            SaFlags::empty(),
            SigSet::empty(),
        );
        for sig in [Signal::SIGTERM, Signal::SIGINT] {
            // SAFETY: the handler only makes async-signal-safe calls.
            unsafe { sigaction(sig, &action) }.expect("install termination handler");
        }
    });
}

/// A process started by the harness in its own process group, with stdout and
/// stderr appended to a log file.
pub struct Proc {
    label: String,
    pgid: Pid,
    // Behind a lock so that status can be polled through a shared reference
    // (the cluster's wait loops only borrow the nodes).
    child: Mutex<ChildState>,
}

struct ChildState {
    child: Child,
    exit: Option<std::process::ExitStatus>,
}

impl ChildState {
    fn poll(&mut self) -> Option<std::process::ExitStatus> {
        if self.exit.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
            }
        }
        self.exit
    }

    /// Blocking: only after SIGKILL, when the exit is imminent.
    fn reap(&mut self) {
        if self.exit.is_none() {
            self.exit = self.child.wait().ok();
        }
    }
}

/// Starts `cmd` in a new process group, output appended to `log`.
///
/// The child gets SIGKILL if the thread that started it exits (PR_SET_PDEATHSIG
/// is bound to the thread): start processes from the test's own thread (the
/// body of a `#[tokio::test]` runs there), never from `spawn_blocking`. This is
/// what keeps a test killed by a timeout from leaving servers behind.
pub fn spawn_logged(label: &str, cmd: &mut Command, log: &Path) -> Proc {
    process_setup();
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open log {}: {e}", log.display()));
    let _ = writeln!(
        out,
        "==== harness {}: starting {label}: {cmd:?}",
        timestamp()
    );
    let err = out.try_clone().expect("dup log fd");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("start {label} ({:?}): {e}", cmd.get_program()));
    let pgid = Pid::from_raw(child.id() as i32);
    register_group(pgid.as_raw());
    Proc {
        label: label.to_string(),
        pgid,
        child: Mutex::new(ChildState { child, exit: None }),
    }
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// Whether the process we started is still running.
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    pub fn exit_status(&self) -> Option<std::process::ExitStatus> {
        self.child.lock().unwrap().poll()
    }

    pub fn signal_leader(&self, sig: Signal) {
        if self.is_running() {
            let _ = nix::sys::signal::kill(self.pgid, sig);
        }
    }

    /// Pids of everything this process stands for now: itself, its process
    /// group, and every descendant of those. The group alone is not enough:
    /// PostgreSQL's postmaster puts each child in a session of its own.
    pub fn tree_pids(&self) -> BTreeSet<i32> {
        tree_pids(self.pgid.as_raw())
    }

    /// Power loss: freezes the whole tree (SIGSTOP, repeated until no new
    /// process appears, so nothing can fork its way out), then SIGKILLs it
    /// and waits until none of it remains. Returns the instant the tree was
    /// frozen: no process of it ran after that instant.
    pub fn kill_tree(&self) -> Instant {
        let mut frozen: BTreeSet<i32> = BTreeSet::new();
        for _ in 0..100 {
            let new: Vec<i32> = self.tree_pids().difference(&frozen).copied().collect();
            if new.is_empty() {
                break;
            }
            for pid in new {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGSTOP);
                frozen.insert(pid);
            }
        }
        let at = Instant::now();
        for pid in &frozen {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        self.child.lock().unwrap().reap();
        if let Err(left) = self.wait_gone(&frozen, Duration::from_secs(30)) {
            panic!("{}: still alive 30 s after SIGKILL: {left}", self.label);
        }
        at
    }

    /// Waits (bounded) for the leader to exit on its own. Err(()) on timeout.
    pub async fn wait_exit(&self, bound: Duration) -> Result<std::process::ExitStatus, ()> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.exit_status() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until none of `pids` and nothing of the tree exists
    /// any more, reaping those that were re-parented to us. Err lists the
    /// survivors. Call after the leader has exited.
    pub fn wait_gone(&self, pids: &BTreeSet<i32>, bound: Duration) -> Result<(), String> {
        let deadline = Instant::now() + bound;
        let leader = self.pgid.as_raw();
        loop {
            let mut left: BTreeSet<i32> = pids.union(&self.tree_pids()).copied().collect();
            // The leader is reaped through `Child` only (reaping it here
            // would hide its exit status from `Child`).
            if self.exit_status().is_some() {
                left.remove(&leader);
            }
            for pid in &left {
                // Ours (re-parented orphans) are reaped here; others are
                // their parent's business.
                let _ = waitpid(Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG));
            }
            // A zombie still counts while its parent is one of the dying
            // processes or us: it will be (re-parented and) reaped here, and
            // until then its pid looks alive to anyone probing it, such as a
            // restarted pgboxd checking postmaster.pid. Only a zombie whose
            // parent is outside (an init that may never reap) is let go.
            let me = std::process::id() as i32;
            let procs = scan_proc();
            let entries: std::collections::BTreeMap<i32, &ProcEntry> =
                procs.iter().map(|p| (p.pid, p)).collect();
            left = left
                .iter()
                .copied()
                .filter(|pid| match entries.get(pid) {
                    None => false,
                    Some(p) if p.state == 'Z' => p.ppid == me || left.contains(&p.ppid),
                    Some(_) => true,
                })
                .collect();
            if left.is_empty() {
                unregister_group(leader);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(describe_pids(&left));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exit_status().is_none() || !self.tree_pids().is_empty() {
            // Not panicking here: this runs while a failed test unwinds.
            let mut frozen = self.tree_pids();
            frozen.insert(self.pgid.as_raw());
            for pid in &frozen {
                let _ = nix::sys::signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
            self.child.lock().unwrap().reap();
            let _ = self.wait_gone(&frozen, Duration::from_secs(10));
        }
    }
}

#[derive(Debug, Clone)]
struct ProcEntry {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    state: char,
    comm: String,
}

fn scan_proc() -> Vec<ProcEntry> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // comm may hold spaces and parentheses: the fields follow the last ')'.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = stat[..close]
            .split_once('(')
            .map(|(_, c)| c)
            .unwrap_or("?")
            .to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // state ppid pgrp ...
        let (Some(state), Some(ppid), Some(pgrp)) = (
            fields.first().and_then(|s| s.chars().next()),
            fields.get(1).and_then(|p| p.parse().ok()),
            fields.get(2).and_then(|p| p.parse().ok()),
        ) else {
            continue;
        };
        out.push(ProcEntry {
            pid,
            ppid,
            pgrp,
            state,
            comm,
        });
    }
    out
}

/// `root`, the members of process group `root`, and all their descendants.
fn tree_pids(root: i32) -> BTreeSet<i32> {
    let all = scan_proc();
    let mut set: BTreeSet<i32> = all
        .iter()
        .filter(|p| p.pid == root || p.pgrp == root)
        .map(|p| p.pid)
        .collect();
    loop {
        let before = set.len();
        for p in &all {
            if set.contains(&p.ppid) {
                set.insert(p.pid);
            }
        }
        if set.len() == before {
            break;
        }
    }
    // Zombies are already dead (and one left over from an earlier run may
    // carry a reused group id).
    let zombies: BTreeSet<i32> = all
        .iter()
        .filter(|p| p.state == 'Z')
        .map(|p| p.pid)
        .collect();
    set.retain(|pid| *pid == root || !zombies.contains(pid));
    set
}

/// "pid (comm) state" of each pid, from /proc.
fn describe_pids(pids: &BTreeSet<i32>) -> String {
    let found: Vec<String> = scan_proc()
        .into_iter()
        .filter(|p| pids.contains(&p.pid))
        .map(|p| {
            format!(
                "{} ({}) {} ppid {} pgrp {}",
                p.pid, p.comm, p.state, p.ppid, p.pgrp
            )
        })
        .collect();
    if found.is_empty() {
        "none visible in /proc".into()
    } else {
        found.join(", ")
    }
}

// ---------------------------------------------------------------------------
// Logs

/// Current length of a file (0 if it does not exist).
pub fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The file's content from byte `offset` on, without terminal colour codes.
pub fn read_from(path: &Path, offset: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let _ = f.seek(SeekFrom::Start(offset));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    strip_ansi(&String::from_utf8_lossy(&buf))
}

/// Removes CSI escape sequences (ESC '[' ... final byte), which some loggers
/// write even into files and which would split words a test greps for.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn timestamp() -> String {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// An error and all its sources, "a: b: c" (several client libraries keep
/// the useful part of a message in the sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}

// ---------------------------------------------------------------------------
// Waiting

/// Polls `probe` until it returns Ok, for at most `timeout`. On timeout,
/// panics naming the condition and the last observed state (the probe's last
/// Err). Each probe call is itself bounded.
pub async fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        let last = match tokio::time::timeout(Duration::from_secs(15), probe()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(state)) => state,
            Err(_) => "the probe itself did not answer within 15 s".to_string(),
        };
        if start.elapsed() >= timeout {
            panic!(
                "timed out after {:.0?} waiting for {what}; last observed: {last}",
                timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL binaries and the postgres user

/// The bin directory of the highest PostgreSQL major version installed.
pub fn pg_bin_dir() -> PathBuf {
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let Ok(version) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let bin = entry.path().join("bin");
            if bin.join("postgres").exists() && best.as_ref().is_none_or(|(v, _)| version > *v) {
                best = Some((version, bin));
            }
        }
    }
    best.map(|(_, bin)| bin)
        .expect("no PostgreSQL under /usr/lib/postgresql/*/bin (run scripts/install-test-deps.sh)")
}

pub fn postgres_user() -> nix::unistd::User {
    nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("the `postgres` OS user must exist (run scripts/install-test-deps.sh)")
}

/// A password that passes pgbox's secret checks and differs per call.
pub fn strong_secret(tag: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(tag.as_bytes());
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("Pgb0x-{tag}-{:016x}-Zq", h.finish())
}

// ---------------------------------------------------------------------------
// Short-lived commands

pub struct Captured {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    /// stdout and stderr together, for "the message is somewhere" checks.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` to completion with its output captured, killing its process
/// group and panicking if it runs longer than `bound`.
pub fn run_captured(label: &str, cmd: &mut Command, scratch: &Path, bound: Duration) -> Captured {
    let out_path = scratch.join(format!("{label}.stdout"));
    let err_path = scratch.join(format!("{label}.stderr"));
    let out = File::create(&out_path).expect("create stdout file");
    let err = File::create(&err_path).expect("create stderr file");
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("run {label} ({:?}): {e}", cmd.get_program()));
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            panic!(
                "{label} still running after {bound:?} (killed); stderr: {}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let captured = Captured {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    };
    let _ = fs::remove_file(out_path);
    let _ = fs::remove_file(err_path);
    captured
}

/// Everything about a directory tree that "touch nothing" covers: names,
/// types, modes, owners and file contents (not access or change times).
pub fn snapshot_tree(root: &Path) -> Vec<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .map(|r| r.flatten().collect())
            .unwrap_or_default();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let owner = format!(
                "mode {:o} uid {} gid {}",
                meta.mode(),
                meta.uid(),
                meta.gid()
            );
            if meta.is_dir() {
                out.push((rel, format!("dir, {owner}")));
                walk(root, &path, out);
            } else if meta.file_type().is_symlink() {
                out.push((
                    rel,
                    format!("symlink to {:?}, {owner}", fs::read_link(&path).ok()),
                ));
            } else {
                let content = fs::read(&path).unwrap_or_default();
                out.push((
                    rel,
                    format!(
                        "file, {owner}, content {:?}",
                        String::from_utf8_lossy(&content)
                    ),
                ));
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(meta) = fs::metadata(root) {
        use std::os::unix::fs::MetadataExt;
        out.push((
            ".".into(),
            format!(
                "dir, mode {:o} uid {} gid {}",
                meta.mode(),
                meta.uid(),
                meta.gid()
            ),
        ));
    }
    walk(root, root, &mut out);
    out
}
