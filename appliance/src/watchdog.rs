//! The hardware watchdog: while this node is the writable primary,
//! /dev/watchdog is armed with a timeout shorter than the leader lease and
//! petted only after a loop that proved the lease renewed. A pgboxd that
//! hangs therefore gets its box reset before the lease can expire and a
//! replica be promoted: the old primary cannot go on accepting writes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use anyhow::{Context, Result};

nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, nix::libc::c_int);
nix::ioctl_read!(wdioc_keepalive, b'W', 5, nix::libc::c_int);

pub struct Watchdog {
    path: PathBuf,
    timeout_s: i32,
    armed: Option<File>,
}

impl Watchdog {
    /// The device (`PGBOX_WATCHDOG_DEVICE` or /dev/watchdog), or None.
    pub fn detect(timeout_s: i32) -> Option<Watchdog> {
        let path = std::env::var_os("PGBOX_WATCHDOG_DEVICE")
            .map_or_else(|| PathBuf::from("/dev/watchdog"), PathBuf::from);
        path.exists().then_some(Watchdog {
            path,
            timeout_s: timeout_s.max(1),
            armed: None,
        })
    }

    pub fn is_armed(&self) -> bool {
        self.armed.is_some()
    }

    pub fn describe(&self) -> String {
        format!("{} ({} s)", self.path.display(), self.timeout_s)
    }

    /// Open the device (which starts it) and set the timeout.
    pub fn arm(&mut self) -> Result<()> {
        if self.armed.is_some() {
            return Ok(());
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        let mut t: nix::libc::c_int = self.timeout_s;
        // SAFETY: WDIOC_SETTIMEOUT reads and writes one int we own.
        unsafe { wdioc_settimeout(file.as_raw_fd(), &mut t) }.with_context(|| {
            format!(
                "setting the timeout of {} to {} s",
                self.path.display(),
                self.timeout_s
            )
        })?;
        if t != self.timeout_s {
            tracing::warn!(
                requested = self.timeout_s,
                granted = t,
                "the watchdog device adjusted its timeout"
            );
            self.timeout_s = t;
        }
        self.armed = Some(file);
        tracing::info!("watchdog armed: {}", self.describe());
        Ok(())
    }

    /// The device's sysfs directory (/sys/class/watchdog/watchdogN), through
    /// a udev link such as /dev/watchdog-pgbox; the legacy /dev/watchdog is
    /// watchdog0.
    fn sysfs(&self) -> Option<PathBuf> {
        let real = std::fs::canonicalize(&self.path).ok()?;
        let name = real.file_name()?.to_str()?;
        let name = if name == "watchdog" {
            "watchdog0"
        } else {
            name
        };
        Some(PathBuf::from("/sys/class/watchdog").join(name))
    }

    /// A countdown this process did not start (a crashed pgboxd opened the
    /// device and never closed it properly): open the device and close it
    /// the magic way, which stops it. Only when sysfs says it is running
    /// and the driver honours the magic close (`nowayout` 0); otherwise
    /// opening it would start a countdown nobody pets.
    pub fn stop_left_running(&mut self) {
        if self.armed.is_some() {
            return;
        }
        let Some(dir) = self.sysfs() else { return };
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .ok()
                .map(|s| s.trim().to_string())
        };
        if read("state").as_deref() != Some("active") || read("nowayout").as_deref() != Some("0") {
            return;
        }
        match OpenOptions::new().write(true).open(&self.path) {
            Ok(mut file) => match file.write_all(b"V") {
                Ok(()) => tracing::warn!(
                    "stopped the watchdog countdown a previous pgboxd left running ({})",
                    self.path.display()
                ),
                Err(e) => tracing::error!(error = %e, "stopping a watchdog countdown left running"),
            },
            Err(e) => tracing::error!(
                error = %e,
                "opening {} to stop a countdown left running",
                self.path.display()
            ),
        }
    }

    pub fn pet(&mut self) -> Result<()> {
        let Some(file) = &self.armed else {
            return Ok(());
        };
        let mut dummy: nix::libc::c_int = 0;
        // SAFETY: WDIOC_KEEPALIVE takes a pointer to an int it ignores.
        unsafe { wdioc_keepalive(file.as_raw_fd(), &mut dummy) }.context("petting the watchdog")?;
        Ok(())
    }

    /// The magic close: write 'V' before closing so the driver stops
    /// counting instead of resetting the box (on drivers that honour it).
    pub fn disarm(&mut self) {
        if let Some(mut file) = self.armed.take() {
            if let Err(e) = file.write_all(b"V") {
                tracing::error!(error = %e, "disarming the watchdog failed: the box may be reset");
            } else {
                tracing::info!("watchdog disarmed");
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// The device as pgboxd's parts share it: the loop arms and disarms it, the
/// lease keep-alive task pets it after each renewal, and the executor
/// disarms it the moment PostgreSQL has accepted a stop. None when the box
/// has no device (or `ha.watchdog: off`). Errors are logged here, once, so
/// no caller can forget to.
#[derive(Clone, Default)]
pub struct SharedWatchdog(std::sync::Arc<std::sync::Mutex<Option<Watchdog>>>);

impl SharedWatchdog {
    pub fn new(device: Option<Watchdog>) -> Self {
        SharedWatchdog(std::sync::Arc::new(std::sync::Mutex::new(device)))
    }

    pub fn present(&self) -> bool {
        self.0.lock().unwrap().is_some()
    }

    pub fn is_armed(&self) -> bool {
        self.0
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(Watchdog::is_armed)
    }

    /// "armed: /dev/watchdog (8 s)", "disarmed: …", or None without a device.
    pub fn describe(&self) -> Option<(bool, String)> {
        self.0
            .lock()
            .unwrap()
            .as_ref()
            .map(|w| (w.is_armed(), w.describe()))
    }

    /// Arm (and pet at once); a no-op when already armed.
    pub fn arm(&self) {
        if let Some(w) = self.0.lock().unwrap().as_mut() {
            if w.is_armed() {
                return;
            }
            if let Err(e) = w.arm().and_then(|()| w.pet()) {
                tracing::error!(error = %format!("{e:#}"), "cannot arm the watchdog");
            }
        }
    }

    /// Pet it if armed.
    pub fn pet(&self) {
        if let Some(w) = self.0.lock().unwrap().as_mut() {
            if let Err(e) = w.pet() {
                tracing::error!(error = %format!("{e:#}"), "cannot pet the watchdog");
            }
        }
    }

    pub fn disarm(&self) {
        if let Some(w) = self.0.lock().unwrap().as_mut() {
            w.disarm();
        }
    }

    /// `Watchdog::stop_left_running`.
    pub fn stop_left_running(&self) {
        if let Some(w) = self.0.lock().unwrap().as_mut() {
            w.stop_left_running();
        }
    }
}
