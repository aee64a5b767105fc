use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::*;
use crate::config::Tags;
use crate::dcs::model::{ClusterView, Member};
use crate::ha::Cause;
use crate::status::PgStatus;

/// One sample as a scraper reads it.
#[derive(Debug, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Reads the text format line by line the way Prometheus does, and fails
/// on anything it would reject or misread: a sample before its family's
/// HELP and TYPE, a family split in two, a bad name, an unescaped label
/// value, a value that is not a number.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut help: HashSet<String> = HashSet::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = |m: &str| format!("line {}: {m}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest
                .split_once(' ')
                .ok_or_else(|| at("HELP without text"))?;
            check_name(name).map_err(|e| at(&e))?;
            if finished.contains(name) || !help.insert(name.to_string()) {
                return Err(at("a second HELP for a family"));
            }
            if let Some(prev) = current.replace(name.to_string()) {
                finished.insert(prev);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without kind"))?;
            if current.as_deref() != Some(name) {
                return Err(at("TYPE not right after its HELP"));
            }
            if !matches!(
                kind,
                "counter" | "gauge" | "histogram" | "summary" | "untyped"
            ) {
                return Err(at("unknown type"));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(at("a counter's name must end in _total"));
            }
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let sample = parse_sample(line).map_err(|e| at(&e))?;
        if current.as_deref() != Some(sample.name.as_str()) || !types.contains_key(&sample.name) {
            return Err(at("a sample outside its family (HELP and TYPE first)"));
        }
        samples.push(sample);
    }
    Ok(samples)
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            // label name up to '='
            let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
            if body[start..].starts_with('}') {
                chars.next();
                break;
            }
            let eq = body[start..].find('=').ok_or("label without =")? + start;
            let key = &body[start..eq];
            if key.is_empty()
                || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || key.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!("bad label name {key:?}"));
            }
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")?.1 {
                    '"' => break,
                    '\\' => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        other => return Err(format!("unknown escape \\{other}")),
                    },
                    '\n' => return Err("raw line feed in a label value".into()),
                    c => value.push(c),
                }
            }
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            match chars.next().ok_or("unterminated labels")?.1 {
                ',' => continue,
                '}' => break,
                c => return Err(format!("unexpected {c:?} after a label")),
            }
        }
        let consumed = chars.peek().map_or(body.len(), |(i, _)| *i);
        rest = &body[consumed..];
    }
    let value_text = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse::<f64>()
            .map_err(|_| format!("value {v:?} is not a number"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn node(name: &str, scope: &str) -> NodeStatus {
    NodeStatus::new(name, scope, Tags::default(), Duration::from_secs(30))
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[test]
fn a_leader_after_a_failover() {
    let mut n = node("db1", "main");
    n.is_leader = true;
    n.pg = PgStatus {
        running: true,
        role: PgRole::Primary,
        timeline: Some(3),
        lsn: Some(4096),
        ..PgStatus::default()
    };
    n.decisions.insert(("Promote".into(), Cause::Election), 1);
    n.decisions
        .insert(("AcquireLeader".into(), Cause::Election), 2);
    n.decisions.insert(("none".into(), Cause::Leading), 40);
    n.last_action = Some(("none".into(), Cause::Leading));
    n.promotions = 2;
    n.failovers = 1;
    n.watchdog_state = WatchdogState::Armed;
    n.lease_remaining = Some(Duration::from_millis(7_500));
    let text = render(&n);
    let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let get = |name, labels: &[(&str, &str)]| {
        value(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(
        get("pgbox_leader", &[("scope", "main"), ("name", "db1")]),
        1.0
    );
    assert_eq!(get("pgbox_role", &[("role", "primary")]), 1.0);
    assert_eq!(get("pgbox_role", &[("role", "replica")]), 0.0);
    assert_eq!(get("pgbox_timeline", &[]), 3.0);
    assert_eq!(get("pgbox_wal_position_bytes", &[]), 4096.0);
    assert_eq!(
        get(
            "pgbox_decisions_total",
            &[("action", "AcquireLeader"), ("reason", "election")]
        ),
        2.0
    );
    assert_eq!(
        get(
            "pgbox_decisions_total",
            &[("action", "none"), ("reason", "leading")]
        ),
        40.0
    );
    assert_eq!(
        get(
            "pgbox_last_decision",
            &[("action", "none"), ("reason", "leading")]
        ),
        1.0
    );
    assert_eq!(get("pgbox_promotions_total", &[]), 2.0);
    assert_eq!(get("pgbox_failovers_total", &[]), 1.0);
    assert_eq!(get("pgbox_lease_remaining_seconds", &[]), 7.5);
    assert_eq!(get("pgbox_watchdog_armed", &[]), 1.0);
    assert_eq!(get("pgbox_watchdog_state", &[("state", "armed")]), 1.0);
    assert_eq!(get("pgbox_watchdog_state", &[("state", "absent")]), 0.0);
    assert_eq!(get("pgbox_watchdog_required", &[]), 0.0);
    assert_eq!(get("pgbox_failsafe_active", &[]), 0.0);
    // A primary has no replication lag of its own.
    assert!(value(&samples, "pgbox_replication_lag_bytes", &[]).is_none());
    assert!(value(&samples, "pgbox_replication_lag_seconds", &[]).is_none());
}

#[test]
fn a_replica_reports_its_lag_in_bytes_and_seconds() {
    let mut n = node("db2", "main");
    n.cluster = ClusterView {
        leader: Some("db1".into()),
        members: vec![(
            "db1".into(),
            Member {
                xlog_location: Some(10_000),
                ..Member::default()
            },
        )],
        ..ClusterView::default()
    };
    n.pg = PgStatus {
        running: true,
        role: PgRole::Replica,
        lsn: Some(9_000),
        replay_lag: Some(Duration::from_millis(2_250)),
        ..PgStatus::default()
    };
    n.watchdog_state = WatchdogState::Absent;
    n.watchdog_required = true;
    let text = render(&n);
    let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        value(&samples, "pgbox_replication_lag_bytes", &[]),
        Some(1_000.0)
    );
    assert_eq!(
        value(&samples, "pgbox_replication_lag_seconds", &[]),
        Some(2.25)
    );
    assert_eq!(
        value(&samples, "pgbox_watchdog_state", &[("state", "absent")]),
        Some(1.0)
    );
    assert_eq!(value(&samples, "pgbox_watchdog_required", &[]), Some(1.0));
    // No decision yet: the family is announced with no sample.
    assert!(text.contains("# TYPE pgbox_decisions_total counter\n"));
    assert!(value(&samples, "pgbox_last_decision", &[]).is_none());
}

#[test]
fn label_values_are_escaped_and_read_back_unchanged() {
    // Scope and member names are validated in the file, but the format must
    // hold whatever they are.
    let hostile = "a\"b\\c\nd}e,f=g";
    let mut n = node(hostile, "x\\\"y");
    n.last_decision = "two\nlines\r# TYPE fake gauge".into();
    let text = render(&n);
    let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let leader = samples.iter().find(|s| s.name == "pgbox_leader").unwrap();
    assert_eq!(leader.labels["name"], hostile);
    assert_eq!(leader.labels["scope"], "x\\\"y");
    // The free-text comment stays one comment line.
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("# last decision:"))
            .count(),
        1
    );
    assert!(!text.lines().any(|l| l == "# TYPE fake gauge"));
}

#[test]
fn special_values_are_spelled_as_prometheus_expects() {
    assert_eq!(number(f64::INFINITY), "+Inf");
    assert_eq!(number(f64::NEG_INFINITY), "-Inf");
    assert_eq!(number(f64::NAN), "NaN");
    assert_eq!(number(2.5), "2.5");
    assert_eq!(number(3.0), "3");
    let mut n = node("db2", "main");
    n.pg = PgStatus {
        running: true,
        role: PgRole::Replica,
        replay_lag: Some(Duration::MAX),
        ..PgStatus::default()
    };
    let text = render(&n);
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
}

#[test]
fn the_checker_rejects_what_a_scraper_would() {
    // The checks above are worth only what this parser catches.
    for bad in [
        "pgbox_x 1",                                                    // no HELP/TYPE
        "# HELP pgbox_x h\n# TYPE pgbox_x gauge\npgbox_x{a=\"b} 1",     // unterminated
        "# HELP pgbox_x h\n# TYPE pgbox_x gauge\npgbox_x{a=\"\\q\"} 1", // bad escape
        "# HELP pgbox_x h\n# TYPE pgbox_x gauge\npgbox_x one",          // not a number
        "# HELP pgbox_x h\n# TYPE pgbox_x counter\npgbox_x 1",          // counter name
        "# HELP pgbox_x h\n# TYPE pgbox_x gauge\n# HELP pgbox_y h\n# TYPE pgbox_y gauge\npgbox_x 1",
    ] {
        assert!(parse(bad).is_err(), "accepted:\n{bad}");
    }
    assert!(parse("# HELP pgbox_x h\n# TYPE pgbox_x gauge\npgbox_x{a=\"\\\"\"} +Inf").is_ok());
}
