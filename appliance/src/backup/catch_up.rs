//! After a promotion: archive the older timelines' segments this server
//! holds and the repository may lack.
//!
//! With `archive_mode = on` a standby archives nothing: the segments it
//! streams are marked done. When a primary dies before it has pushed a
//! completed segment (its archiving was failing, or simply slower than the
//! stream), that segment exists only in the standby's `pg_wal`, and a
//! restore across that point would stop there and promote without the
//! writes after it. So the new primary pushes every segment of an older
//! timeline that lies wholly before its history left that timeline:
//! pgBackRest accepts a segment it already holds with the same checksum,
//! so pushing what was archived already is harmless. The segment holding
//! the switch is not pushed: past the switch the standby's copy is not the
//! old timeline's, and PostgreSQL archives it as `.partial` itself.

use std::path::Path;
use std::time::Duration;

use super::pgbackrest::PgBackRest;
use crate::ha::Fork;

/// pgbox's data directories use PostgreSQL's default segment size
/// (initdb is never given --wal-segsize).
pub const WAL_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// (timeline, segment number) of a WAL segment file name, e.g.
/// `000000010000000000000003`; None for any other file.
pub fn parse_segment(name: &str) -> Option<(u32, u64)> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let timeline = u32::from_str_radix(&name[0..8], 16).ok()?;
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    let per_log = 0x1_0000_0000 / WAL_SEGMENT_SIZE;
    Some((timeline, log * per_log + seg))
}

/// Of the files in `pg_wal`, the segments of older timelines that end at
/// or before the point where `forks` (this server's history) left their
/// timeline, in order.
pub fn segments_to_push(names: &[String], forks: &[Fork]) -> Vec<String> {
    let mut out: Vec<(u32, u64, String)> = names
        .iter()
        .filter_map(|n| {
            let (tl, segno) = parse_segment(n)?;
            let fork = forks.iter().find(|f| f.timeline == tl)?;
            let end = (segno + 1).checked_mul(WAL_SEGMENT_SIZE)?;
            (end <= fork.switch_lsn).then(|| (tl, segno, n.clone()))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, _, n)| n).collect()
}

/// Pushes `segments` of `pg_wal` one by one; returns how many were pushed
/// (or found already there) and the failures.
pub async fn push(pgbr: &PgBackRest, pg_wal: &Path, segments: &[String]) -> (usize, Vec<String>) {
    let mut done = 0;
    let mut failed = Vec::new();
    for name in segments {
        let path = pg_wal.join(name);
        let arg = path.display().to_string();
        match pgbr
            .run(&["archive-push", &arg], Duration::from_secs(300))
            .await
        {
            Ok(_) => done += 1,
            Err(e) => failed.push(format!("{name}: {e:#}")),
        }
    }
    (done, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names() {
        assert_eq!(parse_segment("000000010000000000000003"), Some((1, 3)));
        assert_eq!(
            parse_segment("0000000200000001000000FF"),
            Some((2, 256 + 255))
        );
        for other in [
            "00000002.history",
            "000000010000000000000003.partial",
            "archive_status",
            "xyz",
        ] {
            assert_eq!(parse_segment(other), None, "{other}");
        }
    }

    #[test]
    fn only_older_timelines_wholly_before_their_switch() {
        let names: Vec<String> = [
            "000000010000000000000003",
            "000000010000000000000004",
            // Holds the switch at 0/5000A28: not the old timeline's past it.
            "000000010000000000000005",
            "000000010000000000000005.partial",
            // The new timeline: PostgreSQL archives it itself.
            "000000020000000000000005",
            "000000020000000000000006",
            "00000002.history",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let forks = [Fork {
            timeline: 1,
            switch_lsn: 0x5000A28,
        }];
        assert_eq!(
            segments_to_push(&names, &forks),
            ["000000010000000000000003", "000000010000000000000004"]
        );
        // A switch exactly at a segment boundary: the segment before it is whole.
        let boundary = [Fork {
            timeline: 1,
            switch_lsn: 0x5000000,
        }];
        assert_eq!(
            segments_to_push(&names, &boundary),
            ["000000010000000000000003", "000000010000000000000004"]
        );
        assert!(
            segments_to_push(&names, &[]).is_empty(),
            "no history, nothing to push"
        );
    }
}
