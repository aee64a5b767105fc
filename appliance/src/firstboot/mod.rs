//! `pgboxd firstboot`: runs early at every boot, before any pgbox service.
//! Finds the first-boot file, validates it whole, keeps it on the data
//! partition, and renders what the image's units read:
//!
//! 1. discover (`discover`): fw_cfg, config partition, kernel command line;
//! 2. decide (`plan`, pure): which configuration is in force, given the
//!    file found and the copy kept by an earlier boot (`persist`);
//! 3. keep it, render every file (`render`, pure) and write them, role
//!    markers last.
//!
//! A box with no usable configuration writes nothing but the error and no
//! role marker, so no database service starts and its data stays as it was.

mod discover;
pub mod error_api;
pub mod paths;
mod persist;
pub mod render;

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{self, Config, ConfigError, ConfigErrors};
pub use discover::{kernel_params, Discovery, Found, NodeOverride};
pub use paths::Root;
pub use persist::{compare, Changes, Persisted};

/// Exit status for a box that has no usable configuration.
pub const EXIT_BAD_CONFIG: u8 = 2;
/// Exit status for a box whose files could not be written.
pub const EXIT_IO: u8 = 1;

/// The configuration in force for this boot.
#[derive(Debug)]
pub struct Plan {
    pub cfg: Config,
    pub me: String,
    /// Where it comes from, for the summary line.
    pub from: String,
    /// Text and identity to keep on the data partition (a first boot or an
    /// applied change); None to keep what is there.
    pub persist: Option<(String, String)>,
    /// Files or changes not applied: the box runs, a person should look.
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
}

/// Why the box cannot run.
#[derive(Debug)]
pub struct Failure {
    /// The whole message, first line a summary, then every error.
    pub message: String,
}

pub fn run(root: &Path) -> u8 {
    let root = Root::new(root);
    let discovery = discover::discover(&root);
    for w in &discovery.warnings {
        eprintln!("pgboxd firstboot: warning: {w}");
    }
    let persisted = match persist::read(&root) {
        Ok(p) => p,
        Err(e) => {
            let message = format!(
                "cannot read the configuration kept from an earlier boot ({}): {e}; this box starts no database service",
                paths::PERSISTED_CONFIG
            );
            return fail(&root, &Failure { message }, EXIT_IO);
        }
    };
    let plan = match plan(&discovery, persisted.as_ref()) {
        Ok(p) => p,
        Err(failure) => return fail(&root, &failure, EXIT_BAD_CONFIG),
    };
    for w in &plan.warnings {
        eprintln!("pgboxd firstboot: warning: {w}");
    }
    for n in &plan.notes {
        println!("pgboxd firstboot: {n}");
    }
    if let Some((text, me)) = &plan.persist {
        if let Err(e) = persist::write(&root, text, me) {
            let message = format!(
                "cannot keep the first-boot file in {}: {e}; this box starts no database service",
                paths::PERSISTED_CONFIG
            );
            return fail(&root, &Failure { message }, EXIT_IO);
        }
    }
    if let Err(e) = apply(&root, &plan) {
        let message = format!("cannot write the files rendered from the configuration: {e}");
        return fail(&root, &Failure { message }, EXIT_IO);
    }
    let node = plan.cfg.node_named(&plan.me).expect("identity validated");
    let roles: Vec<&str> = node.roles.iter().map(|r| r.name()).collect();
    println!(
        "pgboxd firstboot: this box is node {} ({}) of cluster {:?}; configuration from {}",
        plan.me,
        roles.join(", "),
        plan.cfg.cluster.name,
        plan.from
    );
    0
}

/// Which configuration is in force, and what to tell about it.
pub fn plan(d: &Discovery, persisted: Option<&Persisted>) -> Result<Plan, Failure> {
    let Some(kept) = persisted else {
        let new = d
            .found
            .as_ref()
            .map(|f| load_found(f, d.node.as_ref(), None));
        return match (&d.found, new) {
            (None, _) | (_, None) => Err(not_found(d)),
            (Some(found), Some(Err(errors))) => Err(invalid(&found.place, &errors)),
            (Some(found), Some(Ok((cfg, me, text)))) => Ok(Plan {
                from: format!(
                    "{} (first boot; kept in {})",
                    found.place,
                    paths::PERSISTED_CONFIG
                ),
                notes: vec![format!(
                    "first boot: keeping the file from {} in {}",
                    found.place,
                    paths::PERSISTED_CONFIG
                )],
                persist: Some((text, me.clone())),
                cfg,
                me,
                warnings: Vec::new(),
            }),
        };
    };

    let kept_from = format!("{} (kept from an earlier boot)", paths::PERSISTED_CONFIG);
    let old = load_kept(kept, d.node.as_ref());
    // A file without `node:` keeps the identity this box already has when
    // nothing else names one at this boot.
    let fallback = match &old {
        Ok((_, me)) => Some(me.as_str()),
        Err(_) => kept.node.as_deref(),
    };
    let new = d
        .found
        .as_ref()
        .map(|f| load_found(f, d.node.as_ref(), fallback));
    let (old_cfg, old_me) = match old {
        Ok(old) => old,
        // The kept copy no longer passes (a stricter check in a newer
        // pgbox, or a damaged disk): a valid file found now is the way out.
        Err(old_errors) => {
            return match (new, &d.found) {
                (Some(Ok((cfg, me, text))), Some(found)) => Ok(Plan {
                    from: format!("{} (replacing an invalid copy in {})", found.place, paths::PERSISTED_CONFIG),
                    warnings: vec![format!(
                        "the configuration kept in {} is invalid; it was replaced by the file from {}. Its errors were:\n{old_errors}",
                        paths::PERSISTED_CONFIG,
                        found.place
                    )],
                    notes: Vec::new(),
                    persist: Some((text, me.clone())),
                    cfg,
                    me,
                }),
                _ => Err(Failure {
                    message: format!(
                        "the configuration kept from an earlier boot ({}) is invalid, and no valid first-boot file was found \
                         to replace it; this box starts no database service and changes nothing until one is:\n{old_errors}",
                        paths::PERSISTED_CONFIG
                    ),
                }),
            };
        }
    };

    let mut plan = Plan {
        cfg: old_cfg.clone(),
        me: old_me.clone(),
        from: kept_from,
        persist: None,
        warnings: Vec::new(),
        notes: Vec::new(),
    };
    let keeping = format!("this box keeps running with {}", paths::PERSISTED_CONFIG);
    match (&d.found, new) {
        (None, _) | (_, None) => {
            if let Some(ov) = d.node.as_ref().filter(|ov| ov.name != old_me) {
                plan.warnings.push(format!(
                    "change ignored: node identity ({old_me} → {}, from {}) cannot be applied to a running cluster; {keeping}",
                    ov.name, ov.from
                ));
            }
        }
        (Some(found), Some(Err(errors))) => {
            plan.warnings.push(format!(
                "the first-boot file from {} is invalid and was not applied; {keeping}. Its errors:\n{errors}",
                found.place
            ));
        }
        (Some(found), Some(Ok((new_cfg, new_me, text)))) => {
            let changes = persist::compare(&old_cfg, &old_me, &new_cfg, &new_me);
            if !changes.unsafe_changes.is_empty() {
                plan.warnings.push(format!(
                    "change ignored: {} cannot be applied to a running cluster; {keeping}. The file from {} was not applied \
                     (not even its other changes); to change these, set the box up afresh with an empty data partition",
                    changes.unsafe_changes.join(", "),
                    found.place
                ));
            } else if text != kept.text || kept.node.as_deref() != Some(new_me.as_str()) {
                let what = if changes.safe_changes.is_empty() {
                    "comments or layout only".to_string()
                } else {
                    changes.safe_changes.join(", ")
                };
                plan.notes.push(format!(
                    "applied the changed file from {} ({what})",
                    found.place
                ));
                plan.from = format!(
                    "{} (a change applied to {})",
                    found.place,
                    paths::PERSISTED_CONFIG
                );
                plan.cfg = new_cfg;
                plan.persist = Some((text, new_me));
            }
        }
    }
    Ok(plan)
}

/// A found file, parsed and validated, with the identity this box takes:
/// `node` if given, else the file's `node:`, else `kept` (the identity of
/// an earlier boot).
fn load_found(
    found: &Found,
    node: Option<&NodeOverride>,
    kept: Option<&str>,
) -> Result<(Config, String, String), ConfigErrors> {
    let text = found.text.clone().map_err(ConfigErrors::single)?;
    let cfg = config::parse(&text, &found.source)?;
    let kept_identity = NodeOverride {
        name: kept.unwrap_or_default().to_string(),
        from: paths::PERSISTED_NODE.to_string(),
    };
    let node = match (node, &cfg.node, kept) {
        (Some(n), _, _) => Some(n),
        (None, None, Some(_)) => Some(&kept_identity),
        _ => None,
    };
    let me = identity(&cfg, node, &found.source)?;
    Ok((cfg, me, text))
}

/// The kept copy, with the identity kept beside it (or, when none was,
/// the one it would get now).
fn load_kept(
    kept: &Persisted,
    node: Option<&NodeOverride>,
) -> Result<(Config, String), ConfigErrors> {
    let cfg = config::parse(&kept.text, paths::PERSISTED_CONFIG)?;
    let me = match &kept.node {
        Some(name) => config::validate_identity_from(&cfg, Some((name, paths::PERSISTED_NODE)))?,
        None => identity(&cfg, node, paths::PERSISTED_CONFIG)?,
    };
    Ok((cfg, me))
}

fn identity(
    cfg: &Config,
    node: Option<&NodeOverride>,
    source: &str,
) -> Result<String, ConfigErrors> {
    if node.is_none() && cfg.node.is_none() {
        return Err(ConfigError::new(
            source,
            "node",
            "no node identity: set `node:` in the file, or give the box pgbox.node=NAME on the kernel command line \
             (or opt/pgbox/node through QEMU fw_cfg)",
        )
        .into());
    }
    config::validate_identity_from(cfg, node.map(|n| (n.name.as_str(), n.from.as_str())))
}

fn invalid(place: &str, errors: &ConfigErrors) -> Failure {
    Failure {
        message: format!(
            "the first-boot file from {place} is invalid; this box starts no database service and changes nothing until \
             it is fixed:\n{errors}"
        ),
    }
}

fn not_found(d: &Discovery) -> Failure {
    let mut message = String::from("no first-boot file found; looked in:");
    for place in &d.looked {
        let _ = write!(message, "\n  - {place}");
    }
    let _ = write!(
        message,
        "\n  - a copy kept by an earlier boot ({}): not there",
        paths::PERSISTED_CONFIG
    );
    message.push_str(
        "\nthis box starts no database service until a file is given (see docs/first-boot.md)",
    );
    Failure { message }
}

/// Tells why the box cannot run, everywhere a person may look: stderr (the
/// unit sends it to the journal and the console) and `config-error` (for
/// the API). Takes away every role marker, so no service starts.
fn fail(root: &Root, failure: &Failure, code: u8) -> u8 {
    eprintln!("pgboxd firstboot: error: {}", failure.message);
    if let Err(e) = clear_roles(root) {
        eprintln!(
            "pgboxd firstboot: error: cannot remove the role markers in {}: {e}",
            paths::ROLES_DIR
        );
    }
    let written = ensure_dir(&root.at(paths::RUN_DIR)).and_then(|_| {
        persist::write_atomic(
            &root.at(paths::CONFIG_ERROR),
            format!("{}\n", failure.message).as_bytes(),
            0o644,
        )
    });
    if let Err(e) = written {
        eprintln!(
            "pgboxd firstboot: error: cannot write {}: {e}",
            paths::CONFIG_ERROR
        );
    }
    // With no usable file the box's own address is unknown: take one by
    // DHCP so that the error can be read on port 8008 (error_api.rs).
    let fallback = root.at(paths::NETWORK_FALLBACK);
    let written = fallback.parent().map_or(Ok(()), ensure_dir).and_then(|_| {
        persist::write_atomic(&fallback, render::network::FALLBACK.as_bytes(), 0o644)
    });
    if let Err(e) = written {
        eprintln!(
            "pgboxd firstboot: error: cannot write {}: {e}",
            paths::NETWORK_FALLBACK
        );
    }
    code
}

/// Writes every rendered file, removes what an earlier run left that this
/// one does not render, and sets the host name on a live system.
fn apply(root: &Root, plan: &Plan) -> std::io::Result<()> {
    let files = render::all(&plan.cfg, &plan.me);
    ensure_dir(&root.at(paths::RUN_DIR))?;
    // Made before anything is written into it, owner only, as systemd
    // expects of a credential store.
    if files.iter().any(|f| f.path.starts_with(paths::CREDSTORE)) {
        private_dir(&root.at(paths::CREDSTORE))?;
    }
    remove_if_present(&root.at(paths::CONFIG_ERROR))?;
    if plan.warnings.is_empty() {
        remove_if_present(&root.at(paths::CONFIG_WARNING))?;
    } else {
        let text = plan.warnings.join("\n") + "\n";
        persist::write_atomic(&root.at(paths::CONFIG_WARNING), text.as_bytes(), 0o644)?;
    }
    for optional in render::OPTIONAL {
        if !files.iter().any(|f| f.path == *optional) {
            remove_if_present(&root.at(optional))?;
        }
    }
    clear_roles(root)?;
    for file in &files {
        let path = root.at(&file.path);
        if let Some(dir) = path.parent() {
            ensure_dir(dir)?;
        }
        persist::write_atomic(&path, file.text.as_bytes(), file.mode)?;
    }
    if root.is_live() {
        if let Err(e) = nix::unistd::sethostname(&plan.me) {
            eprintln!(
                "pgboxd firstboot: warning: cannot set the host name to {}: {e}",
                plan.me
            );
        }
    }
    Ok(())
}

fn clear_roles(root: &Root) -> std::io::Result<()> {
    let dir = root.at(paths::ROLES_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        remove_if_present(&entry?.path())?;
    }
    Ok(())
}

fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// `dir`, existing or new, readable by its owner only.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    ensure_dir(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests;
