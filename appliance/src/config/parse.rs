//! YAML text to a typed `Config`: syntax, types and unknown keys.

use serde::Deserialize;
use serde_path_to_error::Segment;
use serde_saphyr::Error as YamlError;

use super::error::ConfigError;
use super::positions::{join_index, join_key, Positions};
use super::Config;

pub(super) fn typed(
    text: &str,
    source: &str,
    positions: &Positions,
) -> Result<Config, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::new(
            source,
            "",
            "the file is empty; see docs/pgbox.example.yaml for a starting point",
        ));
    }
    let mut options = serde_saphyr::Options::default();
    // Snippets would copy lines of the file into the message, and those lines
    // may hold secrets.
    options.with_snippet = false;
    let mut failed_at: Option<serde_path_to_error::Path> = None;
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        let mut track = serde_path_to_error::Track::new();
        let value = Config::deserialize(serde_path_to_error::Deserializer::new(de, &mut track));
        if value.is_err() {
            failed_at = Some(track.path());
        }
        value
    });
    result.map_err(|e| {
        let path = failed_at.map(|p| render_path(&p)).unwrap_or_default();
        let mut error = to_config_error(e.without_snippet(), path, source, positions);
        // A missing key has no place of its own; the parser points somewhere
        // inside the mapping, the mapping's own key reads better.
        if let YamlError::SerdeMissingField { .. } = e.without_snippet() {
            let parent = error.path.rsplit_once('.').map_or("", |(p, _)| p);
            if positions.contains(parent) && !parent.is_empty() {
                let (line, column) = positions.key(parent).unwrap_or_default();
                error.line = Some(line);
                error.column = Some(column);
            }
        }
        error
    })
}

fn render_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out = join_index(&out, *index),
            Segment::Map { key } => out = join_key(&out, key),
            // Variants of our enums are unit values, not containers; they add
            // nothing a person could look for in the file.
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

fn to_config_error(
    e: &YamlError,
    mut path: String,
    source: &str,
    positions: &Positions,
) -> ConfigError {
    let secret = path == "secrets" || path.starts_with("secrets.") || path == "api.tls.private_key";
    let message = match e {
        YamlError::SerdeUnknownField { field, expected, .. } => {
            // The tracker may or may not have entered the key already.
            if !path.ends_with(field.as_str()) {
                path = join_key(&path, field);
            }
            let mut m = format!("unknown key `{field}`");
            if let Some(near) = closest(field, expected) {
                m.push_str(&format!("; did you mean `{near}`?"));
            }
            m.push_str(&format!(" (allowed here: {})", expected.join(", ")));
            m
        }
        YamlError::SerdeMissingField { field, .. } => {
            path = join_key(&path, field);
            if path.starts_with("secrets.") {
                "missing; every secret must be set (pgbox ships no default passwords)".to_string()
            } else {
                "missing; this key is required".to_string()
            }
        }
        YamlError::SerdeUnknownVariant { variant, expected, .. } => {
            let mut m = format!("unknown value `{variant}`");
            if let Some(near) = closest(variant, expected) {
                m.push_str(&format!("; did you mean `{near}`?"));
            }
            m.push_str(&format!(" (one of: {})", expected.join(", ")));
            m
        }
        YamlError::SerdeInvalidType { unexpected, expected, .. }
        | YamlError::SerdeInvalidValue { unexpected, expected, .. } => {
            if secret {
                format!("expected {expected}; put the secret in quotes")
            } else {
                format!("expected {expected}, found {unexpected}{}", hint(&path))
            }
        }
        YamlError::DuplicateMappingKey { key, .. } => match key {
            Some(k) if !secret => {
                if !path.ends_with(k.as_str()) {
                    path = join_key(&path, k);
                }
                format!("key `{k}` is written twice in the same mapping")
            }
            _ => "the same key is written twice in this mapping".to_string(),
        },
        YamlError::InvalidScalar { ty, .. } => {
            if secret {
                "expected a string; put the secret in quotes".to_string()
            } else if path.starts_with("ports.") {
                let written = positions.scalar(&path).map(|v| format!("`{v}` ")).unwrap_or_default();
                format!("{written}is not a port number (1 to 65535)")
            } else {
                format!("not a valid {}{}", friendly_type(ty), hint(&path))
            }
        }
        YamlError::Message { msg, .. } => custom_message(msg, &path, secret, positions),
        // Broken YAML: the path only says where reading had got to, which
        // may be far from the cause (an unclosed quote), so keep it as a hint.
        YamlError::ExternalMessage { source: origin, msg, .. }
            if matches!(**origin, serde_saphyr::ExternalMessageSource::Parser(_)) =>
        {
            let within = if path.is_empty() { String::new() } else { format!(" (while reading `{path}`)") };
            path.clear();
            format!("YAML syntax error: {}{within}", strip_location(msg))
        }
        YamlError::Unexpected { expected, .. } if path.is_empty() && expected.contains("mapping") => {
            "the file must be a YAML mapping with keys such as `cluster:`, `nodes:` and `secrets:`".to_string()
        }
        YamlError::MultipleDocuments { .. } => {
            "the file holds more than one YAML document (a second `---` line); pgbox reads exactly one".to_string()
        }
        other => {
            if secret {
                "expected a string; put the secret in quotes".to_string()
            } else {
                strip_location(&other.to_string())
            }
        }
    };
    let loc = e
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| (l.line() as usize, l.column() as usize));
    ConfigError::new(source, path, message).at(loc)
}

/// Rewords messages that serde and our field types produce as free text.
fn custom_message(msg: &str, path: &str, secret: bool, positions: &Positions) -> String {
    if secret {
        return "not a valid value; put the secret in quotes".to_string();
    }
    let written = positions.scalar(path);
    if path.ends_with(".address") || msg.contains("IP address") {
        return match written {
            Some(v) => format!("`{v}` is not an IP address; write it like 10.0.0.11 or fd00::11"),
            None => "not an IP address; write it like 10.0.0.11 or fd00::11".to_string(),
        };
    }
    if is_duration(path) {
        let what = written
            .map(|v| format!("`{v}` is not"))
            .unwrap_or_else(|| "not".into());
        return format!("{what} a duration{}", hint(path));
    }
    if path.starts_with("postgres.parameters") && msg.contains("untagged enum") {
        return "a setting's value must be a number, true/false or a string, not a list or mapping"
            .to_string();
    }
    strip_location(msg)
}

fn is_duration(path: &str) -> bool {
    matches!(
        path,
        "ha.ttl" | "ha.loop_wait" | "etcd.heartbeat_interval" | "etcd.election_timeout"
    )
}

/// How to write a value right, for fields where the type name alone does
/// not tell.
fn hint(path: &str) -> &'static str {
    if is_duration(path) {
        "; write a duration with its unit, like 10s, 500ms or 1m 30s"
    } else {
        ""
    }
}

/// serde-saphyr's Display appends "at line X column Y"; we show the position
/// in our own prefix already.
fn strip_location(msg: &str) -> String {
    let msg = msg.trim();
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains("column") => msg[..i].trim_end().to_string(),
        _ => msg.to_string(),
    }
}

fn friendly_type(ty: &str) -> &str {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "usize" => "non-negative whole number",
        "i8" | "i16" | "i32" | "i64" | "isize" => "whole number",
        "f32" | "f64" => "number",
        "bool" | "boolean" => "boolean (true or false)",
        other => other,
    }
}

/// The allowed name nearest to a misspelt one, if it is near enough to be
/// a likely typo.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
