//! Time and the journal, as the HA loop and the executor see them: pgboxd's
//! are tokio's clock and tracing; the simulator's are its virtual clock
//! (each node's own, which stops while its VM is paused) and its trace.

// Awaited where they are created (pgboxd's main task, the simulator's
// single-threaded executor); nothing needs these futures Send.
#![allow(async_fn_in_trait)]

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

pub use tracing::Level;

pub trait Clock {
    /// Milliseconds on this node's monotonic clock, whatever its origin.
    fn now_ms(&self) -> u64;
    /// Wall-clock time, for records people read (history entries).
    fn now_unix_ms(&self) -> u64;
    /// `f`, or None when it has not finished within `ms`.
    fn timeout<F: Future>(&self, ms: u64, f: F) -> impl Future<Output = Option<F::Output>>;
    fn sleep(&self, ms: u64) -> impl Future<Output = ()>;
    /// A line for the journal (the simulator's trace).
    fn log(&self, level: Level, message: &str);
}

/// pgboxd's clock: tokio's, counted from when pgboxd started.
#[derive(Clone, Copy)]
pub struct TokioClock {
    origin: Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        TokioClock {
            origin: Instant::now(),
        }
    }

    /// An instant on this clock.
    pub fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_millis() as u64
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.ms(Instant::now())
    }

    fn now_unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    async fn timeout<F: Future>(&self, ms: u64, f: F) -> Option<F::Output> {
        tokio::time::timeout(Duration::from_millis(ms), f)
            .await
            .ok()
    }

    async fn sleep(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await
    }

    fn log(&self, level: Level, message: &str) {
        match level {
            Level::ERROR => tracing::error!("{message}"),
            Level::WARN => tracing::warn!("{message}"),
            _ => tracing::info!("{message}"),
        }
    }
}
