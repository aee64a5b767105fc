//! The cluster-wide settings in the DCS `config` key: what pgbox applies
//! of them on a running cluster, and how a change is checked.
//!
//! The bootstrap writes the key from pgbox.yaml (`initial_doc`), in
//! Patroni's layout, so `patronictl show-config` shows it and `patronictl
//! edit-config` can change it. From then on the key is the source of truth
//! for what can change at run time:
//!
//! - `postgresql.parameters`: every member renders them into its
//!   postgresql.conf and reloads; a parameter that needs a restart shows as
//!   `pending_restart` until `pgboxctl restart --pending`.
//! - `maximum_lag_on_failover`, `pause`.
//!
//! The other settings (`ttl`, `loop_wait`, `synchronous_mode`, ...) are
//! shown from pgbox.yaml and cannot change at run time yet: a change
//! through the API is refused, one written into etcd directly is ignored
//! with a warning. A parameter is checked by the same code, with the same
//! messages, as in the first-boot file.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{Config, ParamValue, SyncMode};

/// What a node applies of the `config` key.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub parameters: BTreeMap<String, ParamValue>,
    pub maximum_lag_on_failover: u64,
}

/// A `config` key, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// What to apply, or every reason the document cannot be applied.
    pub live: Result<Live, Vec<String>>,
    /// What the document says that pgbox does not apply (a setting fixed by
    /// pgbox.yaml set to another value, a setting pgbox does not have).
    pub ignored: Vec<String>,
}

impl Checked {
    /// Everything wrong with it, as a change through the API is judged.
    pub fn refusals(&self) -> Vec<String> {
        let mut all = self.live.clone().err().unwrap_or_default();
        all.extend(self.ignored.iter().cloned());
        all
    }
}

/// Settings the document carries that only pgbox.yaml sets, with their
/// value from it.
fn fixed(cfg: &Config) -> Vec<(&'static str, Value)> {
    let ha = &cfg.ha;
    vec![
        ("ttl", seconds(ha.ttl)),
        ("loop_wait", seconds(ha.loop_wait)),
        ("primary_start_timeout", seconds(ha.primary_start_timeout)),
        (
            "synchronous_mode",
            json!(ha.synchronous_mode != SyncMode::Off),
        ),
        (
            "synchronous_mode_strict",
            json!(ha.synchronous_mode == SyncMode::Strict),
        ),
        ("failsafe_mode", json!(ha.failsafe_mode)),
    ]
}

fn seconds(d: Duration) -> Value {
    if d.subsec_nanos() == 0 {
        json!(d.as_secs())
    } else {
        json!(d.as_secs_f64())
    }
}

fn param_json(v: &ParamValue) -> Value {
    match v {
        ParamValue::Bool(b) => json!(b),
        ParamValue::Int(i) => json!(i),
        ParamValue::Float(f) => json!(f),
        ParamValue::Text(t) => json!(t),
    }
}

fn param_value(v: &Value) -> Option<ParamValue> {
    match v {
        Value::Bool(b) => Some(ParamValue::Bool(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(ParamValue::Int)
            .or_else(|| n.as_f64().map(ParamValue::Float)),
        Value::String(s) => Some(ParamValue::Text(s.clone())),
        _ => None,
    }
}

/// The document the bootstrap writes: pgbox.yaml's cluster-wide settings.
pub fn initial_doc(cfg: &Config) -> Map<String, Value> {
    let mut doc: Map<String, Value> = fixed(cfg)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    doc.insert(
        "maximum_lag_on_failover".into(),
        json!(cfg.ha.maximum_lag_on_failover),
    );
    let parameters: Map<String, Value> = cfg
        .postgres
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), param_json(v)))
        .collect();
    doc.insert(
        "postgresql".into(),
        json!({ "use_pg_rewind": cfg.ha.use_pg_rewind, "parameters": parameters }),
    );
    doc
}

/// `doc` as a node sees it: pgbox.yaml's values for what the document
/// leaves out or cannot change, the document's for the rest (`GET /config`).
pub fn effective_doc(cfg: &Config, doc: &Map<String, Value>) -> Map<String, Value> {
    let mut out = initial_doc(cfg);
    if let Ok(live) = check(cfg, doc).live {
        out.insert(
            "maximum_lag_on_failover".into(),
            json!(live.maximum_lag_on_failover),
        );
        let parameters: Map<String, Value> = live
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), param_json(v)))
            .collect();
        out["postgresql"]["parameters"] = Value::Object(parameters);
    }
    if doc.get("pause").and_then(Value::as_bool) == Some(true) {
        out.insert("pause".into(), json!(true));
    }
    out
}

/// Check `doc` against pgbox.yaml (`cfg`).
pub fn check(cfg: &Config, doc: &Map<String, Value>) -> Checked {
    let mut problems = Vec::new();
    let mut ignored = Vec::new();
    let mut live = Live {
        parameters: cfg.postgres.parameters.clone(),
        maximum_lag_on_failover: cfg.ha.maximum_lag_on_failover,
    };
    let fixed = fixed(cfg);
    for (key, value) in doc {
        if let Some((_, from_file)) = fixed.iter().find(|(k, _)| k == key) {
            if !same_number_or_value(value, from_file) {
                ignored.push(format!(
                    "{key}: {value} differs from pgbox.yaml's {from_file}; it cannot change on a running cluster yet (change it in pgbox.yaml on every box)"
                ));
            }
            continue;
        }
        match key.as_str() {
            "pause" => {
                if !(value.is_boolean() || value.is_null()) {
                    problems.push(format!("pause: {value} is not true, false or null"));
                }
            }
            "maximum_lag_on_failover" => match value.as_u64() {
                Some(bytes) => live.maximum_lag_on_failover = bytes,
                None => problems.push(format!(
                    "maximum_lag_on_failover: {value} is not a whole number of bytes"
                )),
            },
            "postgresql" => postgresql(cfg, value, &mut live, &mut problems, &mut ignored),
            other => ignored.push(format!(
                "{other}: not a pgbox setting (pgbox has none of that name; see docs/ha.md)"
            )),
        }
    }
    Checked {
        live: if problems.is_empty() {
            Ok(live)
        } else {
            Err(problems)
        },
        ignored,
    }
}

fn postgresql(
    cfg: &Config,
    value: &Value,
    live: &mut Live,
    problems: &mut Vec<String>,
    ignored: &mut Vec<String>,
) {
    let Some(section) = value.as_object() else {
        problems.push(format!("postgresql: {value} is not an object"));
        return;
    };
    for (key, value) in section {
        match key.as_str() {
            "use_pg_rewind" => {
                if value.as_bool() != Some(cfg.ha.use_pg_rewind) {
                    ignored.push(format!(
                        "postgresql.use_pg_rewind: {value} differs from pgbox.yaml's ha.use_pg_rewind ({}); it cannot change on a running cluster yet",
                        cfg.ha.use_pg_rewind
                    ));
                }
            }
            "parameters" => match value.as_object() {
                Some(map) => live.parameters = parameters(cfg, map, problems),
                None => problems.push(format!("postgresql.parameters: {value} is not an object")),
            },
            other => ignored.push(format!(
                "postgresql.{other}: not a pgbox setting (pgbox renders the rest of postgresql.conf itself)"
            )),
        }
    }
}

/// The parameters of the document, each checked as `postgres.parameters`
/// in pgbox.yaml is (a setting name, not one pgbox manages, a value
/// postgresql.conf can hold).
fn parameters(
    cfg: &Config,
    map: &Map<String, Value>,
    problems: &mut Vec<String>,
) -> BTreeMap<String, ParamValue> {
    let mut out = BTreeMap::new();
    for (name, value) in map {
        match param_value(value) {
            Some(v) => {
                out.insert(name.clone(), v);
            }
            // A null is what a merge patch uses to remove a key.
            None if value.is_null() => {}
            None => problems.push(format!(
                "postgresql.parameters.{name}: {value} is not a boolean, number or string"
            )),
        }
    }
    let mut probe = cfg.clone();
    probe.postgres.parameters = out.clone();
    for e in super::validate::semantic(&probe, "", &super::positions::Positions::build("")) {
        if let Some(name) = e.path.strip_prefix("postgres.parameters.") {
            problems.push(format!("postgresql.parameters.{name}: {}", e.message));
        }
    }
    out
}

/// JSON's 10 and 10.0 are the same number of seconds.
fn same_number_or_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// RFC 7386 merge patch, as Patroni's `PATCH /config` applies it: objects
/// merge key by key, `null` removes a key, anything else replaces.
pub fn merge_patch(target: &Map<String, Value>, patch: &Map<String, Value>) -> Map<String, Value> {
    let mut out = target.clone();
    for (key, value) in patch {
        match value {
            Value::Null => {
                out.remove(key);
            }
            Value::Object(inner) => {
                let base = match out.get(key) {
                    Some(Value::Object(existing)) => existing.clone(),
                    _ => Map::new(),
                };
                out.insert(key.clone(), Value::Object(merge_patch(&base, inner)));
            }
            other => {
                out.insert(key.clone(), other.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let mut cfg = crate::config::parse(crate::config::tests::GOOD, "pgbox.yaml").unwrap();
        cfg.postgres
            .parameters
            .insert("work_mem".into(), ParamValue::Text("4MB".into()));
        cfg
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_initial_document_checks_clean_and_changes_nothing() {
        let cfg = cfg();
        let doc = initial_doc(&cfg);
        assert_eq!(doc["postgresql"]["parameters"]["work_mem"], "4MB");
        assert_eq!(
            doc["synchronous_mode"],
            cfg.ha.synchronous_mode != SyncMode::Off
        );
        let checked = check(&cfg, &doc);
        assert_eq!(checked.ignored, Vec::<String>::new());
        let live = checked.live.unwrap();
        assert_eq!(live.parameters, cfg.postgres.parameters);
        assert_eq!(live.maximum_lag_on_failover, cfg.ha.maximum_lag_on_failover);
        // An old cluster's key (only pause) means "as pgbox.yaml says".
        assert_eq!(
            check(&cfg, &obj(json!({"pause": false}))).live.unwrap(),
            live
        );
    }

    #[test]
    fn parameters_and_lag_change_and_are_checked_as_in_the_file() {
        let cfg = cfg();
        let patch = obj(json!({
            "maximum_lag_on_failover": 5_000_000,
            "postgresql": {"parameters": {"work_mem": "16MB", "max_connections": 200}}
        }));
        let doc = merge_patch(&initial_doc(&cfg), &patch);
        let live = check(&cfg, &doc).live.unwrap();
        assert_eq!(live.maximum_lag_on_failover, 5_000_000);
        assert_eq!(live.parameters["work_mem"], ParamValue::Text("16MB".into()));
        assert_eq!(live.parameters["max_connections"], ParamValue::Int(200));

        // null removes, as a merge patch does.
        let doc = merge_patch(
            &doc,
            &obj(json!({"postgresql": {"parameters": {"work_mem": null}}})),
        );
        assert!(!check(&cfg, &doc)
            .live
            .unwrap()
            .parameters
            .contains_key("work_mem"));

        let bad = merge_patch(
            &initial_doc(&cfg),
            &obj(json!({"postgresql": {"parameters": {
                "port": 5433, "Work_Mem": "1MB", "search_path": ["a"]}}})),
        );
        let problems = check(&cfg, &bad).live.unwrap_err();
        let all = problems.join("\n");
        assert!(
            all.contains("postgresql.parameters.port: `port` is managed by pgbox"),
            "{all}"
        );
        assert!(all.contains("write it in lower case: work_mem"), "{all}");
        assert!(
            all.contains("postgresql.parameters.search_path: [\"a\"] is not a boolean"),
            "{all}"
        );
        let lag = check(&cfg, &obj(json!({"maximum_lag_on_failover": -1})));
        assert!(lag.live.unwrap_err()[0].contains("whole number of bytes"));
    }

    #[test]
    fn settings_only_pgbox_yaml_sets_are_ignored_when_they_differ() {
        let cfg = cfg();
        let doc = merge_patch(
            &initial_doc(&cfg),
            &obj(
                json!({"ttl": 99, "retry_timeout": 10, "loop_wait": cfg.ha.loop_wait.as_secs() as f64}),
            ),
        );
        let checked = check(&cfg, &doc);
        assert!(checked.live.is_ok(), "the applicable part still applies");
        let ignored = checked.ignored.join("\n");
        assert!(
            ignored.contains("ttl: 99 differs from pgbox.yaml's"),
            "{ignored}"
        );
        assert!(
            ignored.contains("retry_timeout: not a pgbox setting"),
            "{ignored}"
        );
        assert!(
            !ignored.contains("loop_wait"),
            "the same number of seconds: {ignored}"
        );
        assert_eq!(checked.refusals().len(), 2);
    }

    #[test]
    fn effective_document_shows_pgbox_yaml_for_what_is_missing() {
        let cfg = cfg();
        let doc = effective_doc(
            &cfg,
            &obj(json!({"pause": true, "maximum_lag_on_failover": 7})),
        );
        assert_eq!(doc["pause"], true);
        assert_eq!(doc["maximum_lag_on_failover"], 7);
        assert_eq!(doc["postgresql"]["parameters"]["work_mem"], "4MB");
        assert_eq!(doc["ttl"], seconds(cfg.ha.ttl));
    }
}
