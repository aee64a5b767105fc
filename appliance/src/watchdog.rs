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
