//! The workload and checker of the process-level tests, compiled here
//! unchanged, plus the two helpers they expect from their parent module.

#![allow(dead_code)]

#[path = "../../../appliance/tests/support/checker.rs"]
pub mod checker;
#[path = "../../../appliance/tests/support/primary_watch.rs"]
pub mod primary_watch;
#[path = "../../../appliance/tests/support/workload.rs"]
pub mod workload;

use std::time::{Duration, Instant};

/// An error and its causes on one line, each cause once (tokio-postgres
/// keeps the server's message in the source chain).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in std::iter::successors(Some(e), |c| c.source()) {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// The workload's bounded wait. It panics on timeout, as the process tests
/// expect; scenarios here use `poll` instead, which returns the failure.
pub async fn wait_until<T>(
    timeout: Duration,
    what: &str,
    probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    match poll(timeout, what, probe).await {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Polls `probe` every half second until it returns Ok, for at most
/// `timeout`; each probe is bounded too. The error names what was awaited
/// and the last state seen.
pub async fn poll<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        let last = match tokio::time::timeout(Duration::from_secs(20), probe()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(state)) => state,
            Err(_) => "the probe did not answer within 20 s".to_string(),
        };
        if start.elapsed() >= timeout {
            return Err(format!(
                "timed out after {:.0?} waiting for {what}; last seen: {last}",
                timeout
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::checker::compare;
    use super::primary_watch::{overlaps, Sample};
    use super::workload::{Ack, WorkloadRecord};
    use std::time::{Duration, Instant};

    fn record(acked: &[i64], last_attempted: i64) -> WorkloadRecord {
        let t = Instant::now();
        WorkloadRecord {
            started: t,
            stopped: None,
            acks: acked
                .iter()
                .map(|&id| Ack {
                    id,
                    sent: t + Duration::from_millis(id as u64 * 10),
                    at: t + Duration::from_millis(id as u64 * 10 + 5),
                })
                .collect(),
            last_attempted,
            errors: Vec::new(),
            sessions: Vec::new(),
        }
    }

    #[test]
    fn the_checker_finds_lost_duplicated_and_phantom_writes() {
        let r = record(&[1, 2, 3, 5], 6);
        let report = compare(&r, &[1, 2, 2, 4, 5, 9], &[]);
        assert_eq!(report.missing, vec![3]);
        assert_eq!(report.duplicates, vec![(2, 2)]);
        assert_eq!(report.phantoms, vec![9]);
        assert_eq!(report.unacknowledged_committed, 1);
        assert!(!report.is_consistent());
        let clean = compare(&r, &[1, 2, 3, 4, 5], &[]);
        assert!(clean.is_consistent(), "{clean}");
    }

    #[test]
    fn the_checker_measures_the_window_after_a_fault() {
        let r = record(&[1, 2, 10, 11], 11);
        let fault = r.started + Duration::from_millis(30);
        let report = compare(&r, &[1, 2, 10, 11], &[("fault", fault)]);
        let w = &report.faults[0];
        // Id 10 was sent at 100 ms and acknowledged at 105 ms.
        assert_eq!(w.first_ack_after, Some(Duration::from_millis(75)));
        assert_eq!(report.longest_gap.as_ref().unwrap().after_id, 2);
    }

    fn sample(node: &str, t0: Instant, from_ms: u64, to_ms: u64, status: u16) -> Sample {
        Sample {
            node: node.into(),
            sent: t0 + Duration::from_millis(from_ms),
            answered: t0 + Duration::from_millis(to_ms),
            status: Some(status),
        }
    }

    #[test]
    fn only_intersecting_200s_of_different_nodes_overlap() {
        let t0 = Instant::now();
        let samples = vec![
            sample("db1", t0, 0, 10, 200),
            sample("db2", t0, 5, 8, 503),
            sample("db1", t0, 20, 30, 200),
            sample("db2", t0, 31, 40, 200),
            sample("db1", t0, 35, 50, 200),
        ];
        let o = overlaps(&samples);
        assert_eq!(o.len(), 1, "{o:?}");
        assert_eq!((o[0].0.node.as_str(), o[0].1.node.as_str()), ("db2", "db1"));
    }
}
