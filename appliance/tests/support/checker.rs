//! Compares what the workload was told (acknowledged ids) with what the final
//! primary holds.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::workload::WorkloadRecord;

#[derive(Clone, Debug)]
pub struct Gap {
    /// Last acknowledged id before the gap.
    pub after_id: i64,
    /// Start of the gap, from the workload's start.
    pub from: Duration,
    pub length: Duration,
}

#[derive(Clone, Debug)]
pub struct FaultWindow {
    pub label: String,
    pub at: Duration,
    /// Fault to the acknowledgement of the first write sent after it; None
    /// if there was none.
    pub first_ack_after: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct CheckReport {
    pub acknowledged: usize,
    pub attempted: i64,
    /// Rows in the table, duplicates included.
    pub rows: usize,
    /// Acknowledged but absent: lost writes. Sorted.
    pub missing: Vec<i64>,
    /// Ids present more than once, with their count.
    pub duplicates: Vec<(i64, usize)>,
    /// Present but never attempted.
    pub phantoms: Vec<i64>,
    /// Attempted, not acknowledged (error or timeout), yet committed.
    pub unacknowledged_committed: usize,
    pub longest_gap: Option<Gap>,
    pub faults: Vec<FaultWindow>,
    pub errors: usize,
}

impl CheckReport {
    pub fn is_consistent(&self) -> bool {
        self.missing.is_empty() && self.duplicates.is_empty() && self.phantoms.is_empty()
    }
}

/// Reads every row of `pgbox_writes` through `client` and compares.
/// `faults` are labelled instants whose write-unavailability window is wanted.
pub async fn check(
    record: &WorkloadRecord,
    client: &Client,
    faults: &[(&str, Instant)],
) -> Result<CheckReport, String> {
    // A sequential scan of the heap: the primary-key index is the thing that
    // would hide a duplicate, so it must not answer this query.
    let rows = client
        .simple_query(
            "BEGIN; SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off; \
             SET LOCAL enable_bitmapscan = off; SELECT id FROM pgbox_writes ORDER BY id; COMMIT",
        )
        .await
        .map_err(|e| format!("read pgbox_writes: {}", super::error_chain(&e)))?;
    let mut present: Vec<i64> = Vec::new();
    for msg in rows {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = msg {
            let id = row
                .get(0)
                .ok_or("NULL id")?
                .parse::<i64>()
                .map_err(|e| format!("bad id: {e}"))?;
            present.push(id);
        }
    }
    Ok(compare(record, &present, faults))
}

/// The pure part of `check`: `present` is every id in the table, sorted.
pub fn compare(
    record: &WorkloadRecord,
    present: &[i64],
    faults: &[(&str, Instant)],
) -> CheckReport {
    let mut duplicates = Vec::new();
    let mut distinct: HashSet<i64> = HashSet::with_capacity(present.len());
    let mut i = 0;
    while i < present.len() {
        let id = present[i];
        let n = present[i..].iter().take_while(|&&x| x == id).count();
        if n > 1 {
            duplicates.push((id, n));
        }
        distinct.insert(id);
        i += n;
    }
    let acked: HashSet<i64> = record.acks.iter().map(|a| a.id).collect();
    let mut missing: Vec<i64> = record
        .acks
        .iter()
        .map(|a| a.id)
        .filter(|id| !distinct.contains(id))
        .collect();
    missing.sort_unstable();
    let mut phantoms: Vec<i64> = distinct
        .iter()
        .copied()
        .filter(|&id| id < 1 || id > record.last_attempted)
        .collect();
    phantoms.sort_unstable();
    let unacknowledged_committed = distinct
        .iter()
        .filter(|&&id| id >= 1 && id <= record.last_attempted && !acked.contains(&id))
        .count();

    // Between acknowledgements only: the time to the first one is start-up
    // (connect, create the table), not unavailability.
    let longest_gap = record
        .acks
        .windows(2)
        .map(|w| Gap {
            after_id: w[0].id,
            from: record.rel(w[0].at),
            length: w[1].at.saturating_duration_since(w[0].at),
        })
        .max_by_key(|g| g.length);

    let faults = faults
        .iter()
        .map(|(label, at)| FaultWindow {
            label: label.to_string(),
            at: record.rel(*at),
            first_ack_after: record
                .first_ack_sent_after(*at)
                .map(|a| a.at.saturating_duration_since(*at)),
        })
        .collect();

    CheckReport {
        acknowledged: record.acks.len(),
        attempted: record.last_attempted,
        rows: present.len(),
        missing,
        duplicates,
        phantoms,
        unacknowledged_committed,
        longest_gap,
        faults,
        errors: record.errors.len(),
    }
}

fn first_few(ids: &[i64]) -> String {
    const SHOWN: usize = 10;
    let mut s = ids
        .iter()
        .take(SHOWN)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    if ids.len() > SHOWN {
        s.push_str(",...");
    }
    s
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checker: {} acknowledged of {} attempted, {} rows; missing {} [{}]; duplicates {} [{}]; phantoms {} [{}]; \
             {} unacknowledged but committed; {} errors",
            self.acknowledged,
            self.attempted,
            self.rows,
            self.missing.len(),
            first_few(&self.missing),
            self.duplicates.len(),
            self.duplicates.iter().take(10).map(|(id, n)| format!("{id}×{n}")).collect::<Vec<_>>().join(","),
            self.phantoms.len(),
            first_few(&self.phantoms),
            self.unacknowledged_committed,
            self.errors,
        )?;
        match &self.longest_gap {
            Some(g) => write!(
                f,
                "; longest write gap {:.3}s at +{:.3}s (after id {})",
                g.length.as_secs_f64(),
                g.from.as_secs_f64(),
                g.after_id
            )?,
            None => write!(f, "; no acknowledged write")?,
        }
        for w in &self.faults {
            match w.first_ack_after {
                Some(d) => write!(
                    f,
                    "; {} at +{:.3}s → first ack after {:.3}s",
                    w.label,
                    w.at.as_secs_f64(),
                    d.as_secs_f64()
                )?,
                None => write!(
                    f,
                    "; {} at +{:.3}s → no ack after it",
                    w.label,
                    w.at.as_secs_f64()
                )?,
            }
        }
        Ok(())
    }
}
