//! pgBackRest's configuration file on each box, rendered from pgbox.yaml.
//!
//! The topology is pgBackRest's "dedicated repository host", spoken over
//! its own TLS protocol (no SSH on an appliance):
//!
//! - every PostgreSQL node runs `pgbackrest server`, so that the backup
//!   node can read its data directory, and pushes its WAL to the backup
//!   node (`repo1-host`);
//! - the backup node holds the repository, runs `pgbackrest server` for
//!   the PostgreSQL nodes' archive-push and archive-get, and takes the
//!   backups, reaching each PostgreSQL node as `pgN-host`.
//!
//! One certificate (`backup.tls`) serves both directions: each side checks
//! the address it dials against it, and the server authorizes the client by
//! its common name for this cluster's stanza only.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{BackupSettings, Config, Node, Role};

/// Where pgBackRest's files live under a box's pgbox data directory.
#[derive(Debug, Clone)]
pub struct Files {
    pub conf: PathBuf,
    /// certificate.pem, private-key.pem and ca.pem of `backup.tls`.
    pub tls_dir: PathBuf,
    pub lock: PathBuf,
    pub log: PathBuf,
}

impl Files {
    pub fn under(root: &Path) -> Files {
        Files {
            conf: root.join("pgbackrest.conf"),
            tls_dir: root.join("backup-tls"),
            lock: root.join("pgbackrest/lock"),
            log: root.join("pgbackrest/log"),
        }
    }

    pub fn certificate(&self) -> PathBuf {
        self.tls_dir.join("certificate.pem")
    }

    pub fn private_key(&self) -> PathBuf {
        self.tls_dir.join("private-key.pem")
    }

    pub fn ca(&self) -> PathBuf {
        self.tls_dir.join("ca.pem")
    }

    /// The TLS files' contents, by path: the key is secret (mode 0600).
    pub fn tls_contents<'a>(&self, b: &'a BackupSettings) -> [(PathBuf, &'a str, u32); 3] {
        [
            (self.certificate(), tls(b).certificate.as_str(), 0o644),
            (self.private_key(), tls(b).private_key.as_str(), 0o600),
            (self.ca(), tls(b).ca.as_str(), 0o644),
        ]
    }
}

/// The stanza: pgBackRest's name for one cluster's backups.
pub fn stanza(cfg: &Config) -> &str {
    &cfg.cluster.name
}

/// The node that holds the repository (validation makes it exactly one).
pub fn repository_node(cfg: &Config) -> Option<&Node> {
    cfg.nodes_with(Role::Backup).next()
}

/// `backup.tls`, which validation requires.
pub fn tls(b: &BackupSettings) -> &crate::config::TlsPem {
    b.tls.as_ref().expect("validated: backup.tls is set")
}

/// The client name the servers authorize: the certificate's common name.
fn client_name(b: &BackupSettings) -> String {
    crate::tls::common_name(&tls(b).certificate)
        .expect("the backup certificate's common name was validated")
}

/// Where the PostgreSQL of a node keeps its data and socket, given that
/// node's pgbox data directory (the same on every box; tests give each
/// node its own).
pub fn pgdata_under(root: &Path) -> (PathBuf, PathBuf) {
    let layout = crate::postgres::Layout::new(root);
    (layout.pgdata, layout.socket_dir)
}

/// The `[global]` lines both kinds of node share: logging, locks, the TLS
/// server and who may use it.
fn global(s: &mut String, cfg: &Config, b: &BackupSettings, me: &Node, files: &Files) {
    let lines = [
        ("lock-path", files.lock.display().to_string()),
        ("log-path", files.log.display().to_string()),
        // pgboxd and PostgreSQL log what a command prints; no file logs
        // to fill the data partition.
        ("log-level-file", "off".into()),
        ("log-level-console", "warn".into()),
        ("log-level-stderr", "warn".into()),
        // zstd: a fraction of the CPU of gzip for a better ratio.
        ("compress-type", "zst".into()),
        ("tls-server-address", me.address.to_string()),
        ("tls-server-port", cfg.ports.backup.to_string()),
        (
            "tls-server-cert-file",
            files.certificate().display().to_string(),
        ),
        (
            "tls-server-key-file",
            files.private_key().display().to_string(),
        ),
        ("tls-server-ca-file", files.ca().display().to_string()),
        (
            "tls-server-auth",
            format!("{}={}", client_name(b), stanza(cfg)),
        ),
    ];
    for (k, v) in lines {
        let _ = writeln!(s, "{k}={v}");
    }
}

fn header() -> String {
    "# Written by pgbox from pgbox.yaml's `backup:` section; edits here are lost.\n".into()
}

/// pgbackrest.conf of a PostgreSQL node whose pgbox data directory is
/// `root`.
pub fn postgres_node(
    cfg: &Config,
    b: &BackupSettings,
    me: &Node,
    root: &Path,
    files: &Files,
) -> String {
    let repo = repository_node(cfg).expect("validated: a node has the role backup");
    let (pgdata, socket) = pgdata_under(root);
    let mut s = header();
    s.push_str("[global]\n");
    let lines = [
        // The repository's path is the client's to say: the server runs
        // each command with the options it is sent.
        ("repo1-path", b.path.display().to_string()),
        ("repo1-host", repo.address.to_string()),
        ("repo1-host-type", "tls".into()),
        ("repo1-host-port", cfg.ports.backup.to_string()),
        (
            "repo1-host-cert-file",
            files.certificate().display().to_string(),
        ),
        (
            "repo1-host-key-file",
            files.private_key().display().to_string(),
        ),
        ("repo1-host-ca-file", files.ca().display().to_string()),
    ];
    for (k, v) in lines {
        let _ = writeln!(s, "{k}={v}");
    }
    global(&mut s, cfg, b, me, files);
    let _ = writeln!(s, "\n[{}]", stanza(cfg));
    let _ = writeln!(s, "pg1-path={}", pgdata.display());
    let _ = writeln!(s, "pg1-port={}", cfg.ports.postgres);
    let _ = writeln!(s, "pg1-socket-path={}", socket.display());
    let _ = writeln!(s, "pg1-user={}", cfg.postgres.superuser);
    s
}

/// pgbackrest.conf of the backup node: the repository, and every
/// PostgreSQL node as `pgN-host`, whose pgbox data directory is
/// `member_root(name)`.
pub fn backup_node(
    cfg: &Config,
    b: &BackupSettings,
    me: &Node,
    files: &Files,
    member_root: impl Fn(&str) -> PathBuf,
) -> String {
    let mut s = header();
    s.push_str("[global]\n");
    let lines = [
        ("repo1-path", b.path.display().to_string()),
        ("repo1-retention-full", b.retention_full.to_string()),
        // Backups start at once instead of waiting for the next checkpoint,
        // and read from a replica so that the primary is not loaded.
        ("start-fast", "y".into()),
        ("backup-standby", "y".into()),
        ("process-max", "1".into()),
    ];
    for (k, v) in lines {
        let _ = writeln!(s, "{k}={v}");
    }
    global(&mut s, cfg, b, me, files);
    let _ = writeln!(s, "\n[{}]", stanza(cfg));
    for (i, node) in cfg.nodes_with(Role::Postgres).enumerate() {
        let n = i + 1;
        let (pgdata, socket) = pgdata_under(&member_root(&node.name));
        let lines = [
            ("host", node.address.to_string()),
            ("host-type", "tls".into()),
            ("host-port", cfg.ports.backup.to_string()),
            ("host-cert-file", files.certificate().display().to_string()),
            ("host-key-file", files.private_key().display().to_string()),
            ("host-ca-file", files.ca().display().to_string()),
            ("path", pgdata.display().to_string()),
            ("port", cfg.ports.postgres.to_string()),
            ("socket-path", socket.display().to_string()),
            ("user", cfg.postgres.superuser.clone()),
        ];
        for (k, v) in lines {
            let _ = writeln!(s, "pg{n}-{k}={v}");
        }
    }
    s
}

/// The PostgreSQL settings for continuous archiving through pgBackRest.
/// `on`, not `always`: pgBackRest refuses to back up a cluster whose
/// standbys archive too. A failover loses no segment the old primary had
/// archived; the new primary archives its own timeline from the switch on
/// (the segment of the switch included, which holds the old timeline's WAL
/// up to it).
pub fn archive_parameters(
    cfg: &Config,
    b: &BackupSettings,
    files: &Files,
) -> Vec<(String, String)> {
    let command = format!(
        "{} --config={} --stanza={} archive-push %p",
        super::pgbackrest::binary().display(),
        files.conf.display(),
        stanza(cfg)
    );
    vec![
        ("archive_mode".into(), "on".into()),
        ("archive_command".into(), quote(&command)),
        (
            "archive_timeout".into(),
            format!("'{}s'", b.archive_timeout.as_secs()),
        ),
    ]
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config tests' three-node file with coord (10.0.0.13) as the
    /// backup node, its certificate, and `extra` in its `backup:` section.
    pub(crate) fn with_backup(extra: &str) -> Config {
        let good = crate::config::tests::GOOD
            .replace("roles: [etcd, router]", "roles: [etcd, router, backup]");
        let addresses: Vec<std::net::IpAddr> = ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let made =
            crate::ctl::tls_init::generate_with_backup("main", &[], &[], &addresses).unwrap();
        let text = format!("{good}{}{extra}", made.backup_yaml().unwrap());
        crate::config::parse(&text, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn cfg() -> Config {
        with_backup("  archive_timeout: 30s\n  retention_full: 3\n")
    }

    #[test]
    fn a_postgres_node_pushes_to_the_backup_node_and_serves_its_data() {
        let cfg = cfg();
        let b = cfg.backup.as_ref().unwrap();
        let me = cfg.node_named("db1").unwrap();
        let root = Path::new("/var/lib/pgbox");
        let text = postgres_node(&cfg, b, me, root, &Files::under(root));
        for line in [
            "repo1-host=10.0.0.13",
            "repo1-host-type=tls",
            "repo1-host-port=8432",
            "tls-server-address=10.0.0.11",
            "tls-server-auth=pgbox-main-backup=main",
            "[main]",
            "pg1-path=/var/lib/pgbox/postgres",
            "pg1-socket-path=/var/lib/pgbox/run",
            "pg1-user=postgres",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        assert!(
            text.lines()
                .any(|l| l == "repo1-path=/var/lib/pgbox/backup"),
            "{text}"
        );
    }

    #[test]
    fn the_backup_node_holds_the_repository_and_reaches_every_postgres_node() {
        let cfg = cfg();
        let b = cfg.backup.as_ref().unwrap();
        let me = cfg.node_named("coord").unwrap();
        let files = Files::under(Path::new("/var/lib/pgbox"));
        let text = backup_node(&cfg, b, me, &files, |n| PathBuf::from(format!("/m/{n}")));
        for line in [
            "repo1-path=/var/lib/pgbox/backup",
            "repo1-retention-full=3",
            "backup-standby=y",
            "tls-server-address=10.0.0.13",
            "pg1-host=10.0.0.11",
            "pg1-path=/m/db1/postgres",
            "pg2-host=10.0.0.12",
            "pg2-host-type=tls",
            "pg2-socket-path=/m/db2/run",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        assert!(!text.contains("pg3-"), "{text}");
    }

    #[test]
    fn archiving_is_on_with_the_timeout_of_the_file() {
        let cfg = cfg();
        let b = cfg.backup.as_ref().unwrap();
        let files = Files::under(Path::new("/var/lib/pgbox"));
        let p = archive_parameters(&cfg, b, &files);
        assert_eq!(p[0], ("archive_mode".into(), "on".into()));
        assert!(p[1]
            .1
            .contains("--config=/var/lib/pgbox/pgbackrest.conf --stanza=main archive-push %p"));
        assert_eq!(p[2], ("archive_timeout".into(), "'30s'".into()));
    }
}
