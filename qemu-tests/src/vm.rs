//! One QEMU VM: its overlay disk, first-boot file, serial logs, and control
//! through QMP.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::switch;
use crate::topology::{NodeSpec, Ports, Role};

#[derive(Clone, Debug)]
pub struct Image {
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
}

impl Image {
    /// A private copy of the image in `run`: image/build.sh replaces its
    /// outputs in place, and a VM restarted on its overlay must find the
    /// same base it was created on. The copy is made under a shared lock on
    /// image/out/.build.lock, which image/build.sh holds exclusively while
    /// it runs, so a copy never mixes two builds.
    pub fn snapshot(&self, run: &Path) -> Result<Image, String> {
        let dir = run.join("image");
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = self.disk.parent().unwrap();
        let lock_path = out.join(".build.lock");
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
        let _lock = match Flock::lock(lock_file, FlockArg::LockSharedNonblock) {
            Ok(l) => l,
            Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                println!(
                    "pgbox-vmtest: image/build.sh is writing {} (it holds {}); waiting for it to finish",
                    out.display(),
                    lock_path.display()
                );
                Flock::lock(f, FlockArg::LockShared)
                    .map_err(|(_, e)| format!("locking {}: {e}", lock_path.display()))?
            }
            Err((_, e)) => return Err(format!("locking {}: {e}", lock_path.display())),
        };
        for src in [&self.disk, &self.kernel, &self.initrd] {
            fs::copy(src, dir.join(src.file_name().unwrap()))
                .map_err(|e| format!("copying {}: {e}", src.display()))?;
        }
        let disk = dir.join("pgbox.qcow2");
        let check = Command::new("qemu-img")
            .args(["check", "-q"])
            .arg(&disk)
            .output()
            .map_err(|e| {
                format!("cannot run qemu-img ({e}): install the Debian package qemu-utils")
            })?;
        if !check.status.success() {
            return Err(format!(
                "{} is damaged (qemu-img check: {}): rebuild it with image/build.sh",
                self.disk.display(),
                String::from_utf8_lossy(&check.stderr).trim()
            ));
        }
        let cmdline = fs::read_to_string(out.join("cmdline.txt")).map_err(|e| e.to_string())?;
        Ok(Image {
            disk,
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            cmdline: cmdline.trim().to_string(),
        })
    }

    pub fn from_dir(out: &Path) -> Result<Image, String> {
        let need = |f: &str| {
            let p = out.join(f);
            if p.is_file() {
                Ok(p)
            } else {
                Err(format!("{} is missing: run image/build.sh", p.display()))
            }
        };
        let cmdline = fs::read_to_string(need("cmdline.txt")?).map_err(|e| e.to_string())?;
        Ok(Image {
            disk: need("pgbox.qcow2")?,
            kernel: need("vmlinuz")?,
            initrd: need("initrd.img")?,
            cmdline: cmdline.trim().to_string(),
        })
    }
}

/// Every VM's journal (pgboxd's decisions, etcd, PostgreSQL) goes to its
/// serial console too, so the per-scenario console logs explain a failure;
/// the image keeps its journal in memory only. `PGBOX_VMTEST_JOURNAL=0`
/// turns it off.
fn journal_to_console() -> &'static str {
    if std::env::var("PGBOX_VMTEST_JOURNAL").as_deref() == Ok("0") {
        ""
    } else {
        " systemd.journald.forward_to_console=1"
    }
}

/// QEMU's two programs, checked before anything waits on them: a missing
/// one is an error at once that names its Debian package (scripts/
/// host-packages.list installs both from one release).
pub fn check_host_tools() -> Result<(), String> {
    for (cmd, pkg) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-img", "qemu-utils"),
    ] {
        let out = Command::new(cmd)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run {cmd} ({e}): install the Debian package {pkg}"))?;
        if !out.status.success() {
            return Err(format!(
                "{cmd} --version failed ({}): reinstall the Debian package {pkg}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// `/dev/kvm` exists on some build machines but its guests hang: a kernel
/// with no root must panic within the timeout for KVM to count as working.
pub fn probe_accel(image: &Image) -> Accel {
    match std::env::var("PGBOX_VMTEST_ACCEL").as_deref() {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => return Accel::Tcg,
        _ => {}
    }
    if fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Accel::Tcg;
    }
    let out = Command::new("timeout")
        .args([
            "15",
            "qemu-system-x86_64",
            "-accel",
            "kvm",
            "-machine",
            "pc",
            "-m",
            "128",
            "-nodefaults",
        ])
        .args([
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            "stdio",
            "-kernel",
        ])
        .arg(&image.kernel)
        .args(["-append", "console=ttyS0 panic=-1"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("Kernel panic") => Accel::Kvm,
        _ => Accel::Tcg,
    }
}

pub struct Vm {
    pub spec: &'static NodeSpec,
    pub dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    /// How many times QEMU was started on this disk.
    pub boots: u32,
    pub started_at: Option<Instant>,
}

impl Vm {
    pub fn qmp_path(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    pub fn console_path(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    pub fn marks_path(&self) -> PathBuf {
        self.dir.join("marks.log")
    }

    pub fn create(
        spec: &'static NodeSpec,
        run: &Path,
        image: &Image,
        accel: Accel,
        ports: Ports,
        config: &str,
    ) -> Result<Vm, String> {
        let dir = run.join(spec.name);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let disk = dir.join("disk.qcow2");
        let status = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&image.disk)
            .arg(&disk)
            .arg("8G")
            .status()
            .map_err(|e| {
                format!("cannot run qemu-img ({e}): install the Debian package qemu-utils")
            })?;
        if !status.success() {
            return Err(format!("qemu-img create {} failed", disk.display()));
        }
        let cfg = dir.join("pgbox.yaml");
        fs::write(&cfg, config).map_err(|e| e.to_string())?;
        let sw = switch::port_paths(run, spec.name, false);
        let swh = switch::port_paths(run, spec.name, true);

        let mem = if spec.has(Role::Postgres) {
            "512"
        } else {
            "384"
        };
        let mut a: Vec<String> = vec!["-machine".into(), "pc".into()];
        match accel {
            Accel::Kvm => a.extend(["-accel", "kvm", "-cpu", "host"].map(String::from)),
            // Without tb-size each emulated guest grows to about 1 GiB.
            Accel::Tcg => a.extend(["-accel", "tcg,tb-size=128"].map(String::from)),
        }
        let mut forwards = String::new();
        for (host, guest) in ports.forwards(spec) {
            forwards.push_str(&format!(
                ",hostfwd=tcp:127.0.0.1:{host}-{}:{guest}",
                spec.address()
            ));
        }
        let p = |s: &Path| s.display().to_string();
        a.extend([
            "-m".into(), mem.into(), "-smp".into(), "1".into(), "-name".into(), spec.name.into(),
            "-nodefaults".into(), "-no-user-config".into(), "-display".into(), "none".into(),
            // A guest reboot (watchdog, panic) stays a reboot; only QMP quits.
            "-action".into(), "watchdog=reset".into(),
            "-chardev".into(), format!("file,id=console,path={},append=on", p(&dir.join("console.log"))),
            "-serial".into(), "chardev:console".into(),
            "-chardev".into(), format!("file,id=marks,path={},append=on", p(&dir.join("marks.log"))),
            "-serial".into(), "chardev:marks".into(),
            "-chardev".into(), format!("socket,id=qmp,path={},server=on,wait=off", p(&dir.join("qmp.sock"))),
            "-mon".into(), "chardev=qmp,mode=control".into(),
            // A second monitor only to record events (RESET with its reason,
            // WATCHDOG, STOP): how a guest rebooted is otherwise invisible.
            "-chardev".into(), format!("socket,id=qmpev,path={},server=on,wait=off", p(&dir.join("events.sock"))),
            "-mon".into(), "chardev=qmpev,mode=control".into(),
            "-drive".into(), format!("file={},if=virtio,format=qcow2,cache=writeback,discard=unmap", p(&disk)),
            // The NIC is a port of the harness's switch. The host's
            // forwards come from a user-mode stack (restrict=on: the guest
            // reaches nothing through it) joined to a second port of the
            // switch, which passes it only frames of its own VM: the image
            // gives an address to the `mac:` NIC only, so host access must
            // reach the node's cluster address.
            "-netdev".into(), format!(
                "dgram,id=cluster,local.type=unix,local.path={},remote.type=unix,remote.path={}",
                p(&sw.vm), p(&sw.switch)),
            "-device".into(), format!("virtio-net-pci,netdev=cluster,mac={}", spec.mac()),
            "-netdev".into(), format!(
                "user,id=hostfwd,restrict=on,ipv6=off,net={}.0/24,host={},dns={},dhcpstart={}.240{forwards}",
                crate::topology::SUBNET, spec.forward_source(), spec.forward_dns(), crate::topology::SUBNET),
            "-netdev".into(), format!(
                "dgram,id=hostlink,local.type=unix,local.path={},remote.type=unix,remote.path={}",
                p(&swh.vm), p(&swh.switch)),
            "-netdev".into(), "hubport,id=hub-user,hubid=1,netdev=hostfwd".into(),
            "-netdev".into(), "hubport,id=hub-link,hubid=1,netdev=hostlink".into(),
            "-device".into(), "i6300esb".into(),
            "-fw_cfg".into(), format!("name=opt/pgbox/config,file={}", p(&cfg)),
            "-fw_cfg".into(), "name=opt/pgbox/marks,string=/dev/ttyS1".into(),
            "-kernel".into(), p(&image.kernel),
            "-initrd".into(), p(&image.initrd),
            // The emulated TSC drifts under load (one guest clock ran 19 s
            // ahead): the HPET keeps the five clocks honest.
            "-append".into(), format!("{} clocksource=hpet tsc=unstable{}", image.cmdline, journal_to_console()),
        ]);
        Ok(Vm {
            spec,
            dir,
            args: a,
            child: None,
            boots: 0,
            started_at: None,
        })
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn start(&mut self) -> Result<(), String> {
        if self.is_running() {
            return Ok(());
        }
        let _ = fs::remove_file(self.qmp_path());
        for host in [false, true] {
            let _ = fs::remove_file(
                switch::port_paths(self.dir.parent().unwrap(), self.spec.name, host).vm,
            );
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("qemu.log"))
            .map_err(|e| e.to_string())?;
        let mut cmd = Command::new("nice");
        cmd.args(["-n", "10", "qemu-system-x86_64"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        // QEMU must not outlive the harness, whatever ends it.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting QEMU for {}: {e}", self.spec.name))?;
        self.child = Some(child);
        tokio::spawn(record_events(
            self.dir.join("events.sock"),
            self.dir.join("events.log"),
        ));
        self.boots += 1;
        self.started_at = Some(Instant::now());
        Ok(())
    }

    /// Sends one QMP command and returns its `return` value. A connection
    /// per command: QEMU's monitor takes one client at a time, and the
    /// events it queued in between are of no interest.
    pub async fn qmp(&self, command: &str, arguments: Value) -> Result<Value, String> {
        let fut = async {
            let stream = UnixStream::connect(self.qmp_path())
                .await
                .map_err(|e| format!("QMP connect: {e}"))?;
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            let reply = async |lines: &mut tokio::io::Lines<
                BufReader<tokio::net::unix::OwnedReadHalf>,
            >| {
                loop {
                    let line = lines
                        .next_line()
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or("QMP closed")?;
                    let v: Value =
                        serde_json::from_str(&line).map_err(|e| format!("QMP: {e}: {line}"))?;
                    if v.get("QMP").is_some() || v.get("event").is_some() {
                        continue;
                    }
                    if let Some(e) = v.get("error") {
                        return Err(format!("QMP error: {e}"));
                    }
                    return Ok(v.get("return").cloned().unwrap_or(Value::Null));
                }
            };
            w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
                .await
                .map_err(|e| e.to_string())?;
            reply(&mut lines).await?;
            let msg = json!({"execute": command, "arguments": arguments}).to_string() + "\n";
            w.write_all(msg.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            reply(&mut lines).await
        };
        tokio::time::timeout(Duration::from_secs(15), fut)
            .await
            .map_err(|_| format!("QMP {command} on {}: no answer within 15 s", self.spec.name))?
            .map_err(|e| format!("QMP {command} on {}: {e}", self.spec.name))
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) the QEMU process itself, as a
    /// stalled hypervisor would. The host's clock runs on, so on resume the
    /// guest's timers, its watchdogs' included, find the time gone. (QMP
    /// `stop` pauses the guest's virtual clock too: on `cont` the guest
    /// carries on as if nothing happened, and no watchdog can fire.)
    pub fn signal(&self, sig: nix::sys::signal::Signal) -> Result<(), String> {
        let pid = self
            .child
            .as_ref()
            .map(|c| c.id() as i32)
            .ok_or_else(|| format!("{} is not running", self.spec.name))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
            .map_err(|e| format!("{sig} to QEMU of {}: {e}", self.spec.name))
    }

    /// Power loss: QEMU quits at once, the guest gets no warning.
    pub async fn power_off(&mut self) -> Result<(), String> {
        if !self.is_running() {
            return Ok(());
        }
        // The reply may not arrive when QEMU exits first.
        let _ = self.qmp("quit", json!({})).await;
        self.reap(Duration::from_secs(20)).await
    }

    async fn reap(&mut self, bound: Duration) -> Result<(), String> {
        let start = Instant::now();
        while self.is_running() {
            if start.elapsed() > bound {
                self.kill();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// How many times the guest reported reaching multi-user.
    pub fn up_marks(&self) -> usize {
        fs::read(self.marks_path())
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .lines()
                    .filter(|l| l.starts_with("PGBOX-MARK up"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// How often the emulated hardware watchdog fired (QMP WATCHDOG
    /// events; every boot also logs a few firmware RESETs, so those do not
    /// tell).
    pub fn watchdog_fires(&self) -> usize {
        fs::read_to_string(self.dir.join("events.log"))
            .map(|t| t.lines().filter(|l| l.contains("\"WATCHDOG\"")).count())
            .unwrap_or(0)
    }

    pub fn log_len(&self) -> (u64, u64) {
        let len = |p: PathBuf| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        (len(self.console_path()), len(self.marks_path()))
    }

    /// Copies what the serial ports received since `from` into `dest`.
    pub fn collect_logs(&self, from: (u64, u64), dest: &Path) {
        let _ = fs::create_dir_all(dest);
        for (src, off, name) in [
            (
                self.console_path(),
                from.0,
                format!("{}.console.log", self.spec.name),
            ),
            (
                self.marks_path(),
                from.1,
                format!("{}.marks.log", self.spec.name),
            ),
        ] {
            if let Ok(b) = fs::read(&src) {
                let off = (off as usize).min(b.len());
                let _ = fs::write(dest.join(name), &b[off..]);
            }
        }
    }
}

/// Appends every QMP event of one QEMU run to `log`, each line prefixed
/// with the host's wall clock; ends when QEMU closes the socket.
async fn record_events(sock: PathBuf, log: PathBuf) {
    let mut stream = None;
    for _ in 0..100 {
        if let Ok(s) = UnixStream::connect(&sock).await {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(stream) = stream else { return };
    let (r, mut w) = stream.into_split();
    if w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
        .await
        .is_err()
    {
        return;
    }
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if !line.contains("\"event\"") {
            continue;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&log) {
            use std::io::Write;
            let _ = writeln!(f, "{now:.3} {line}");
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}
