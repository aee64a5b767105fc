//! Which backup is due: a pure rule over what the repository holds.
//!
//! Intervals rather than wall-clock times: a box that was down when a
//! backup was due takes it as soon as it is back, and nothing depends on
//! the boxes agreeing on a time zone.

use std::time::Duration;

use super::pgbackrest::{Kind, Repository};

/// The backup to take at `now` (Unix seconds), if any: a full one when
/// there is none or the last is older than `full_every`; an incremental
/// one when the last backup of any kind is older than `incremental_every`.
pub fn due(
    repo: &Repository,
    now: i64,
    full_every: Duration,
    incremental_every: Duration,
) -> Option<Kind> {
    // A backup with page checksum errors still counts: taking a new full
    // one at every turn would only expire the good backups before it (the
    // error is shown; a person must look at the damaged page).
    let age = |stop: i64| Duration::from_secs(now.saturating_sub(stop).max(0) as u64);
    let Some(full) = repo.backups.iter().rev().find(|b| b.kind == Kind::Full) else {
        return Some(Kind::Full);
    };
    if age(full.stop) >= full_every {
        return Some(Kind::Full);
    }
    let last = repo.backups.last().map(|b| b.stop).unwrap_or(full.stop);
    (age(last) >= incremental_every).then_some(Kind::Incr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::pgbackrest::Backup;

    fn backup(kind: Kind, stop: i64, error: bool) -> Backup {
        Backup {
            label: format!("{stop}"),
            kind,
            start: stop - 10,
            stop,
            database_size: 1,
            repository_size: 1,
            wal_start: None,
            wal_stop: None,
            error,
        }
    }

    fn repo(backups: Vec<Backup>) -> Repository {
        Repository {
            backups,
            ..Repository::default()
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);
    const WEEK: Duration = Duration::from_secs(7 * 86_400);

    #[test]
    fn the_rule() {
        let d = 86_400;
        let cases = [
            ("nothing yet", vec![], 0, Some(Kind::Full)),
            (
                "fresh full",
                vec![backup(Kind::Full, 0, false)],
                d / 2,
                None,
            ),
            (
                "a day after the full",
                vec![backup(Kind::Full, 0, false)],
                d,
                Some(Kind::Incr),
            ),
            (
                "a fresh incremental",
                vec![
                    backup(Kind::Full, 0, false),
                    backup(Kind::Incr, 3 * d, false),
                ],
                3 * d + 100,
                None,
            ),
            (
                "a week after the full, however fresh the incremental",
                vec![
                    backup(Kind::Full, 0, false),
                    backup(Kind::Incr, 7 * d - 5, false),
                ],
                7 * d,
                Some(Kind::Full),
            ),
            (
                "a full with page errors still counts (no full at every turn)",
                vec![backup(Kind::Full, 0, true)],
                10,
                None,
            ),
            (
                "a clock behind the last backup waits",
                vec![backup(Kind::Full, 1000, false)],
                0,
                None,
            ),
        ];
        for (what, backups, now, want) in cases {
            assert_eq!(due(&repo(backups), now, WEEK, DAY), want, "{what}");
        }
    }
}
