//! What the first boot writes for the image's units, as text. Every
//! function here is pure: the configuration in force and this node's name
//! in, file contents out.

pub mod etcd;
pub mod haproxy;
pub mod identity;
pub mod network;
pub mod roles;

use super::paths;
use crate::config::{Config, Role};

/// One file to write: its path on the running box and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub text: String,
    /// Permission bits: 0o644, or 0o600 for a file that holds a key.
    pub mode: u32,
}

impl File {
    fn new(path: &str, text: String) -> Self {
        File {
            path: path.to_string(),
            text,
            mode: 0o644,
        }
    }

    /// A file only root may read (a private key).
    fn secret(path: &str, text: String) -> Self {
        File {
            mode: 0o600,
            ..File::new(path, text)
        }
    }
}

/// Every file for node `me` of `cfg`, role markers last: the units they
/// gate must find their own files complete.
pub fn all(cfg: &Config, me: &str) -> Vec<File> {
    let node = cfg
        .node_named(me)
        .expect("the node identity was validated against the file");
    let mut files = vec![
        File::new(paths::NODE, identity::node(me)),
        File::new(paths::PGBOXD_ENV, identity::pgboxd_env(me)),
        File::new(paths::HOSTNAME, identity::hostname(me)),
        File::new(paths::NETWORK, network::render(cfg, node)),
    ];
    if node.roles.contains(&Role::Etcd) {
        files.push(File::new(paths::ETCD_ENV, etcd::render(cfg, node)));
        // etcd's certificate, key and CA go to the credential store, and
        // systemd hands them to pgbox-etcd.service alone (ImportCredential=).
        for (path, text) in etcd::credentials(cfg) {
            files.push(File::secret(path, text));
        }
    }
    if node.roles.contains(&Role::Router) {
        files.push(File::new(
            paths::HAPROXY_CFG,
            haproxy::config(cfg, paths::HAPROXY_STATE, paths::HAPROXY_API_CA),
        ));
        files.push(File::new(paths::HAPROXY_STATE, haproxy::server_state(cfg)));
        if let Some(ca) = haproxy::api_ca(cfg) {
            files.push(File::new(paths::HAPROXY_API_CA, ca));
        }
    }
    files.extend(
        roles::markers(node)
            .into_iter()
            .map(|path| File::new(&path, String::new())),
    );
    files
}

/// Files some boots render and others not (a role's files); one left from
/// an earlier run for a role the node no longer has must go.
pub const OPTIONAL: &[&str] = &[
    paths::ETCD_ENV,
    paths::ETCD_CRED_CERT,
    paths::ETCD_CRED_KEY,
    paths::ETCD_CRED_CA,
    paths::HAPROXY_CFG,
    paths::HAPROXY_STATE,
    paths::HAPROXY_API_CA,
];

/// The comment that opens every rendered file: where it comes from, and
/// that editing it is pointless.
fn header(comment: &str, what: &str) -> String {
    format!(
        "{comment} {what}\n{comment} Written at every boot by `pgboxd firstboot` from {}; edits here are lost.\n",
        paths::PERSISTED_CONFIG
    )
}
