//! The first-boot file: its schema, parsing and validation.
//!
//! A file is accepted only whole: `load`/`parse` return a `Config` only when
//! nothing at all is wrong with it, so that a bad file never half-applies.
mod cidr;
pub mod dynamic;
mod error;
mod parse;
mod positions;
mod schema;
mod validate;
pub use validate::SECRET_PLACEHOLDER;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors, ConfigWarning};
pub use schema::*;

/// Reads, parses and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let source = path.display().to_string();
    let text = read_text(path).map_err(ConfigErrors::single)?;
    parse(&text, &source)
}

/// Parses and validates `text`; `source` names the file in messages.
///
/// Syntax and type problems stop the parse at the first one (nothing after
/// it can be trusted); once the file has the right shape, every other
/// problem is reported together.
pub fn parse(text: &str, source: &str) -> Result<Config, ConfigErrors> {
    check(text, source).map(|(cfg, _)| cfg)
}

/// For `pgboxctl tls init`, which makes the certificates a file lacks: the
/// file as `load` reads it, except that problems of its certificate
/// sections (`api.tls`, `etcd.tls`, `backup.tls`, or `backup:` having none
/// yet) do not count.
pub fn load_for_certificates(path: &Path) -> Result<Config, ConfigErrors> {
    let source = path.display().to_string();
    let text = read_text(path).map_err(ConfigErrors::single)?;
    let positions = positions::Positions::build(&text);
    let cfg = parse::typed(&text, &source, &positions).map_err(ConfigErrors::single)?;
    let errors: Vec<ConfigError> = validate::semantic(&cfg, &source, &positions)
        .into_iter()
        .filter(|e| {
            let certificate = ["api.tls", "etcd.tls", "backup.tls"]
                .iter()
                .any(|s| e.path == *s || e.path.starts_with(&format!("{s}.")));
            !(certificate || (e.path == "backup" && e.message.contains("has no `tls:`")))
        })
        .collect();
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Like `load`, with the warnings of a valid file (see `check`).
pub fn load_checked(path: &Path) -> Result<(Config, Vec<ConfigWarning>), ConfigErrors> {
    let source = path.display().to_string();
    let text = read_text(path).map_err(ConfigErrors::single)?;
    check(&text, &source)
}

/// Like `parse`, and for a valid file also the settings it accepts that put
/// data at risk (each with its position, as errors have), for a person to
/// read: `pgboxctl config check` and pgboxd's start print them.
pub fn check(text: &str, source: &str) -> Result<(Config, Vec<ConfigWarning>), ConfigErrors> {
    let positions = positions::Positions::build(text);
    let cfg = parse::typed(text, source, &positions).map_err(ConfigErrors::single)?;
    let errors = validate::semantic(&cfg, source, &positions);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let warnings = validate::risky(&cfg, source, &positions)
        .into_iter()
        .map(ConfigWarning)
        .collect();
    Ok((cfg, warnings))
}

/// Which node of `cfg` this box is: `node` (from `--node`) wins over the
/// file's `node:` key. Returns the node's name.
pub fn validate_identity(cfg: &Config, node: Option<&str>) -> Result<String, ConfigErrors> {
    validate_identity_from(cfg, node.map(|n| (n, "--node")))
}

/// Like `validate_identity`, for an identity given some other way than
/// `--node`: `node` is the name and where it came from (such as the kernel
/// command line's `pgbox.node`), which messages name.
pub fn validate_identity_from(
    cfg: &Config,
    node: Option<(&str, &str)>,
) -> Result<String, ConfigErrors> {
    let (name, from) = match (node, cfg.node.as_deref()) {
        (Some((n, from)), _) => (n, from),
        (None, Some(n)) => (n, "node"),
        (None, None) => {
            return Err(ConfigError::new(
                "",
                "node",
                "no node identity: set `node:` in the file or pass --node",
            )
            .into());
        }
    };
    if cfg.node_named(name).is_none() {
        let known: Vec<&str> = cfg.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(ConfigError::new(
            "",
            from,
            format!(
                "{name:?} is not one of the nodes in the file ({})",
                known.join(", ")
            ),
        )
        .into());
    }
    Ok(name.to_string())
}

/// A node's `mac:` in the form systemd-networkd uses (lower case, colons),
/// or None when it is not a valid MAC address.
pub fn canonical_mac(text: &str) -> Option<String> {
    validate::parse_mac(text)
        .ok()
        .map(|bytes| validate::format_mac(&bytes))
}

/// The file's text; an unreadable file is one error naming the OS error.
pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    let source = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| unreadable(&source, &e))?;
    text_from_bytes(bytes, &source)
}

pub(crate) fn unreadable(source: &str, e: &std::io::Error) -> ConfigError {
    ConfigError::new(source, "", format!("cannot read the file: {e}"))
}

/// The bytes as text, or an error pointing at the first byte that is not
/// UTF-8 (a file saved in a legacy encoding on some editor).
pub(crate) fn text_from_bytes(bytes: Vec<u8>, source: &str) -> Result<String, ConfigError> {
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let before = &bytes[..e.utf8_error().valid_up_to()];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        ConfigError::new(source, "", "the file is not UTF-8 text; save it as UTF-8")
            .at(Some((line, column)))
    })
}

#[cfg(test)]
pub(crate) mod tests;
