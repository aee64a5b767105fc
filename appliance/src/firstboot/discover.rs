//! Where the first-boot file and the node's identity come from:
//! QEMU fw_cfg, then the config partition, then the kernel command line.
//! The first place that has a file wins; the others are not read at all, so
//! a stale copy somewhere later cannot interfere.

use std::io::ErrorKind;

use super::paths::{self, Root};
use crate::config::{self, ConfigError};

/// A first-boot file found at boot.
#[derive(Debug, Clone)]
pub struct Found {
    /// Where it was found, as a person would say it ("the config partition
    /// (/run/pgbox/cfgpart/pgbox.yaml)").
    pub place: String,
    /// The name messages about lines of the file start with.
    pub source: String,
    /// The file's text, or why it could not be read (then it is a bad file:
    /// the place had a file, so later places are not tried).
    pub text: Result<String, ConfigError>,
}

/// The node's identity when it is given outside the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOverride {
    pub name: String,
    /// Where it came from, for messages ("kernel command line pgbox.node").
    pub from: String,
}

#[derive(Debug, Clone)]
pub struct Discovery {
    pub found: Option<Found>,
    /// Every place looked at, with what was there; shown when nothing was.
    pub looked: Vec<String>,
    pub node: Option<NodeOverride>,
    /// Things worth telling that do not stop the boot.
    pub warnings: Vec<String>,
}

pub fn discover(root: &Root) -> Discovery {
    let cmdline = read_optional(&root.at(paths::CMDLINE))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let params = cmdline.as_deref().map(kernel_params).unwrap_or_default();
    let mut d = Discovery {
        found: None,
        looked: Vec::new(),
        node: None,
        warnings: Vec::new(),
    };

    let fw_cfg = format!("QEMU fw_cfg opt/pgbox/config ({})", paths::FW_CFG_CONFIG);
    d.found = try_place(
        root,
        paths::FW_CFG_CONFIG,
        &fw_cfg,
        "fw_cfg:opt/pgbox/config",
        &mut d.looked,
    );

    if d.found.is_none() {
        let partition = format!("the config partition PGBOXCFG ({})", paths::CFGPART_CONFIG);
        d.found = try_place(
            root,
            paths::CFGPART_CONFIG,
            &partition,
            paths::CFGPART_CONFIG,
            &mut d.looked,
        );
    }

    if d.found.is_none() {
        match last(&params, "pgbox.config") {
            None => d
                .looked
                .push("the kernel command line: no pgbox.config=PATH on it".to_string()),
            Some(path) if !path.starts_with('/') => {
                let m =
                    format!("the kernel command line: pgbox.config={path} is not an absolute path, so it was not used");
                d.warnings.push(m.clone());
                d.looked.push(m);
            }
            Some(path) => {
                let place = format!("the kernel command line's pgbox.config={path}");
                d.found = try_place(root, path, &place, path, &mut d.looked);
                if d.found.is_none() {
                    d.warnings
                        .push(format!("the kernel command line names pgbox.config={path}, but there is no such file"));
                }
            }
        }
    }

    d.node = node_override(root, &params, &mut d.warnings);
    d
}

/// fw_cfg's `opt/pgbox/node`, else the kernel command line's `pgbox.node`:
/// the same order as for the file, so that a harness that hands a box its
/// file through fw_cfg can hand it its name the same way.
fn node_override(
    root: &Root,
    params: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Option<NodeOverride> {
    match read_optional(&root.at(paths::FW_CFG_NODE)) {
        Ok(Some(bytes)) => {
            let name = String::from_utf8_lossy(&bytes)
                .trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_string();
            if !name.is_empty() {
                return Some(NodeOverride {
                    name,
                    from: "fw_cfg opt/pgbox/node".to_string(),
                });
            }
            warnings.push("fw_cfg opt/pgbox/node is empty; it was not used".to_string());
        }
        Ok(None) => {}
        Err(e) => warnings.push(format!(
            "cannot read fw_cfg opt/pgbox/node ({}): {e}",
            paths::FW_CFG_NODE
        )),
    }
    match last(params, "pgbox.node") {
        Some(name) if !name.is_empty() => Some(NodeOverride {
            name: name.to_string(),
            from: "kernel command line pgbox.node".to_string(),
        }),
        _ => None,
    }
}

/// The file at `path` (under `root`), if there is one. A file that is there
/// but unreadable is still "found": skipping it for a later place would boot
/// the box from a file the person did not mean.
fn try_place(
    root: &Root,
    path: &str,
    place: &str,
    source: &str,
    looked: &mut Vec<String>,
) -> Option<Found> {
    match read_optional(&root.at(path)) {
        Ok(None) => {
            looked.push(format!("{place}: not there"));
            None
        }
        Ok(Some(bytes)) => Some(Found {
            place: place.to_string(),
            source: source.to_string(),
            text: config::text_from_bytes(bytes, source),
        }),
        Err(e) => Some(Found {
            place: place.to_string(),
            source: source.to_string(),
            text: Err(config::unreadable(source, &e)),
        }),
    }
}

/// Ok(None) when there is no file; a directory where the file should be
/// counts as an error, not as absence.
pub(super) fn read_optional(path: &std::path::Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `key=value` words of a kernel command line. The kernel lets a value hold
/// spaces inside double quotes (`pgbox.config="/boot/my file.yaml"`).
pub fn kernel_params(cmdline: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in cmdline.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (w, String::new()),
        })
        .collect()
}

/// The last value given for `key`: as for most kernel parameters, a later
/// one (say, appended at the boot menu) overrides an earlier one.
fn last<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_command_line_words() {
        let p = kernel_params(
            "BOOT_IMAGE=/vmlinuz ro quiet pgbox.config=\"/boot/my file.yaml\" pgbox.node=db2\n",
        );
        assert_eq!(last(&p, "pgbox.config"), Some("/boot/my file.yaml"));
        assert_eq!(last(&p, "pgbox.node"), Some("db2"));
        assert_eq!(last(&p, "ro"), Some(""));
        assert_eq!(last(&p, "pgbox"), None);
        let p = kernel_params("pgbox.node=db1 pgbox.node=db3");
        assert_eq!(last(&p, "pgbox.node"), Some("db3"));
        assert!(kernel_params("   ").is_empty());
    }
}
