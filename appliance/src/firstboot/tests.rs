//! The first boot against a temporary `--root`: discovery order, the kept
//! copy's rules, a bad file, and the files rendered.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

/// Three nodes; db1 is this box unless something says otherwise (the
/// configuration tests' valid file, shared).
pub(crate) use crate::config::tests::GOOD;

pub(crate) fn sample() -> Config {
    config::parse(GOOD, "pgbox.yaml").unwrap()
}

/// A temporary directory standing in for `/`.
struct Box {
    dir: tempfile::TempDir,
}

impl Box {
    fn new() -> Self {
        Box {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, abs: &str) -> PathBuf {
        Root::new(self.root()).at(abs)
    }

    fn put(&self, abs: &str, text: &str) {
        let p = self.path(abs);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn read(&self, abs: &str) -> String {
        fs::read_to_string(self.path(abs)).unwrap_or_else(|e| panic!("{abs}: {e}"))
    }

    fn exists(&self, abs: &str) -> bool {
        self.path(abs).exists()
    }

    fn mode(&self, abs: &str) -> u32 {
        fs::metadata(self.path(abs)).unwrap().permissions().mode() & 0o777
    }

    fn run(&self) -> u8 {
        run(self.root())
    }

    fn roles(&self) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(self.path(paths::ROLES_DIR)) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Every file under the box's root, for "nothing else was touched".
    fn listing(&self, abs: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            for e in entries {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(base).unwrap().display().to_string());
                if p.is_dir() {
                    walk(&p, base, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path(abs), self.root(), &mut out);
        out.sort();
        out
    }

    /// A box that booted once with `text` from the config partition.
    fn booted_with(text: &str) -> Self {
        let b = Box::new();
        b.put(paths::CFGPART_CONFIG, text);
        assert_eq!(b.run(), 0, "{}", b.read_or_empty(paths::CONFIG_ERROR));
        b
    }

    fn read_or_empty(&self, abs: &str) -> String {
        fs::read_to_string(self.path(abs)).unwrap_or_default()
    }
}

fn found_place(b: &Box) -> Option<String> {
    discover::discover(&Root::new(b.root()))
        .found
        .map(|f| f.place)
}

#[test]
fn discovery_order_fw_cfg_then_partition_then_kernel_command_line() {
    let b = Box::new();
    let d = discover::discover(&Root::new(b.root()));
    assert!(d.found.is_none());
    assert_eq!(d.looked.len(), 3, "{:?}", d.looked);
    assert!(d.looked[0].starts_with("QEMU fw_cfg opt/pgbox/config"));
    assert!(d.looked[1].starts_with("the config partition PGBOXCFG"));
    assert!(d.looked[2].contains("no pgbox.config=PATH"));

    b.put(
        paths::CMDLINE,
        "root=/dev/vda2 ro pgbox.config=/boot/pgbox.yaml quiet\n",
    );
    assert!(
        found_place(&b).is_none(),
        "the named file does not exist yet"
    );
    b.put("/boot/pgbox.yaml", GOOD);
    assert_eq!(
        found_place(&b).unwrap(),
        "the kernel command line's pgbox.config=/boot/pgbox.yaml"
    );

    b.put(paths::CFGPART_CONFIG, GOOD);
    assert!(found_place(&b)
        .unwrap()
        .starts_with("the config partition PGBOXCFG"));

    b.put(paths::FW_CFG_CONFIG, GOOD);
    assert!(found_place(&b)
        .unwrap()
        .starts_with("QEMU fw_cfg opt/pgbox/config"));
}

#[test]
fn a_file_that_is_there_but_unreadable_is_not_skipped() {
    let b = Box::new();
    b.put(paths::CFGPART_CONFIG, GOOD);
    // A directory where fw_cfg's file should be: found, and bad.
    fs::create_dir_all(b.path(paths::FW_CFG_CONFIG)).unwrap();
    let d = discover::discover(&Root::new(b.root()));
    let found = d.found.unwrap();
    assert!(found.place.starts_with("QEMU fw_cfg"));
    let e = found.text.unwrap_err();
    assert!(e.message.starts_with("cannot read the file: "), "{e}");
    assert_eq!(b.run(), EXIT_BAD_CONFIG);
}

#[test]
fn node_identity_from_fw_cfg_then_kernel_command_line_then_file() {
    let b = Box::new();
    b.put(paths::CFGPART_CONFIG, GOOD);
    let identity_now = |b: &Box| {
        let d = discover::discover(&Root::new(b.root()));
        plan(&d, None)
            .unwrap_or_else(|f| panic!("{}", f.message))
            .me
    };
    assert_eq!(identity_now(&b), "db1");
    b.put(paths::CMDLINE, "quiet pgbox.node=db2\n");
    assert_eq!(identity_now(&b), "db2");
    b.put(paths::FW_CFG_NODE, "coord\n\0");
    assert_eq!(identity_now(&b), "coord");

    b.put(paths::FW_CFG_NODE, "db9");
    let d = discover::discover(&Root::new(b.root()));
    let failure = plan(&d, None).unwrap_err();
    assert!(
        failure.message.contains(
            "fw_cfg opt/pgbox/node: \"db9\" is not one of the nodes in the file (db1, db2, coord)"
        ),
        "{}",
        failure.message
    );
}

#[test]
fn a_file_without_identity_says_how_to_give_one() {
    let b = Box::new();
    b.put(paths::CFGPART_CONFIG, &GOOD.replace("node: db1\n", ""));
    assert_eq!(b.run(), EXIT_BAD_CONFIG);
    let error = b.read(paths::CONFIG_ERROR);
    assert!(
        error.contains("/run/pgbox/cfgpart/pgbox.yaml: node: no node identity"),
        "{error}"
    );
    assert!(error.contains("pgbox.node=NAME"), "{error}");
    // No address of its own: DHCP, so that port 8008 can say why.
    let fallback = b.read(paths::NETWORK_FALLBACK);
    assert!(fallback.contains("DHCP=yes"), "{fallback}");
    assert!(!b.exists(paths::NETWORK));
}

#[test]
fn first_boot_keeps_the_file_and_renders_everything() {
    let b = Box::new();
    b.put(paths::CFGPART_CONFIG, GOOD);
    assert_eq!(b.run(), 0);

    assert_eq!(b.read(paths::PERSISTED_CONFIG), GOOD);
    assert_eq!(b.mode(paths::PERSISTED_CONFIG), 0o600);
    assert_eq!(b.mode(paths::STATE_DIR), 0o700);
    assert_eq!(b.read(paths::PERSISTED_NODE), "db1\n");
    assert_eq!(
        b.listing(paths::STATE_DIR),
        ["var/lib/pgbox/node", "var/lib/pgbox/pgbox.yaml"]
    );

    assert_eq!(b.read(paths::NODE), "db1\n");
    assert_eq!(b.read(paths::HOSTNAME), "db1\n");
    assert_eq!(
        b.read(paths::PGBOXD_ENV),
        "PGBOX_NODE=db1\nPGBOX_CONFIG=/var/lib/pgbox/pgbox.yaml\nPGBOX_DATA_DIR=/var/lib/pgbox\n"
    );
    assert_eq!(b.roles(), ["etcd", "postgres"]);
    assert_eq!(b.read("/run/pgbox/roles/etcd"), "");
    assert!(b.read(paths::ETCD_ENV).contains("ETCD_NAME=db1\n"));
    assert!(b.read(paths::NETWORK).contains("Address=10.0.0.11/24\n"));
    assert!(!b.exists(paths::HAPROXY_CFG), "db1 is no router");
    assert!(!b.exists(paths::CONFIG_ERROR));
    assert!(!b.exists(paths::CONFIG_WARNING));
    assert!(!b.exists(paths::NETWORK_FALLBACK));
}

#[test]
fn a_router_node_gets_the_router_files_and_no_etcd_file_when_not_a_member() {
    let b = Box::new();
    b.put(
        paths::CFGPART_CONFIG,
        &GOOD
            .replace("node: db1", "node: coord")
            .replace("[etcd, router]", "[router]"),
    );
    b.put(
        paths::CFGPART_CONFIG,
        &format!(
            "{}etcd:\n  allow_unsafe_member_count: true\n",
            b.read(paths::CFGPART_CONFIG)
        ),
    );
    assert_eq!(b.run(), 0, "{}", b.read_or_empty(paths::CONFIG_ERROR));
    assert_eq!(b.roles(), ["router"]);
    assert!(!b.exists(paths::ETCD_ENV));
    assert!(b
        .read(paths::HAPROXY_CFG)
        .contains("server-state-file /run/pgbox/haproxy-servers.state\n"));
    assert!(b.read(paths::HAPROXY_STATE).starts_with("1\n"));
}

#[test]
fn etcd_tls_material_goes_to_a_root_only_credential_store_and_goes_away_with_tls() {
    let b = Box::new();
    let p = crate::tls::testing::pki(&["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    };
    let with_tls = format!(
        "{GOOD}etcd:\n  tls:\n    certificate: |\n{}    private_key: |\n{}    ca: |\n{}",
        indent(&p.cert_pem),
        indent(&p.key_pem),
        indent(&p.ca_pem)
    );
    b.put(paths::CFGPART_CONFIG, &with_tls);
    assert_eq!(b.run(), 0, "{}", b.read_or_empty(paths::CONFIG_ERROR));
    assert_eq!(b.mode(paths::CREDSTORE), 0o700);
    for path in [
        paths::ETCD_CRED_CERT,
        paths::ETCD_CRED_KEY,
        paths::ETCD_CRED_CA,
    ] {
        assert_eq!(b.mode(path), 0o600, "{path}");
    }
    assert_eq!(b.read(paths::ETCD_CRED_KEY), p.key_pem);
    assert_eq!(b.mode(paths::ETCD_ENV), 0o644);
    assert!(!b.read(paths::ETCD_ENV).contains("PRIVATE KEY"));
    assert!(b
        .read(paths::ETCD_ENV)
        .contains("ETCD_CLIENT_CERT_AUTH=true\n"));

    // A renewed certificate is a safe change; turning TLS on or off is not
    // (the members' peer URLs change), and no key appears in the message.
    let tls_cfg = config::parse(&with_tls, "x").unwrap();
    let q = crate::tls::testing::pki(&["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
    let renewed_text = with_tls
        .replace(&indent(&p.cert_pem), &indent(&q.cert_pem))
        .replace(&indent(&p.key_pem), &indent(&q.key_pem))
        .replace(&indent(&p.ca_pem), &indent(&q.ca_pem));
    let renewed = config::parse(&renewed_text, "x").unwrap();
    assert!(compare(&tls_cfg, "db1", &renewed, "db1")
        .unsafe_changes
        .is_empty());
    let off = compare(&tls_cfg, "db1", &sample(), "db1");
    assert_eq!(off.unsafe_changes.len(), 1, "{off:?}");
    assert!(off.unsafe_changes[0].starts_with("etcd.tls"), "{off:?}");
    assert!(!format!("{off:?}").contains("PRIVATE KEY"), "{off:?}");
    let on = compare(&sample(), "db1", &tls_cfg, "db1");
    assert_eq!(on.unsafe_changes.len(), 1, "{on:?}");
}

#[test]
fn a_bad_file_touches_nothing_and_says_why() {
    let b = Box::new();
    // Left by an earlier run of this boot: must not survive a bad file.
    b.put("/run/pgbox/roles/postgres", "");
    let bad = GOOD
        .replace("10.0.0.12", "10.0.0.11")
        .replace("Rj5tH9cWq2XvN6sD", "password1234");
    b.put(paths::CFGPART_CONFIG, &bad);
    assert_eq!(b.run(), EXIT_BAD_CONFIG);

    assert!(!b.exists(paths::STATE_DIR), "nothing under /var/lib/pgbox");
    assert!(b.roles().is_empty(), "no role marker: {:?}", b.roles());
    let error = b.read(paths::CONFIG_ERROR);
    let lines: Vec<&str> = error.lines().collect();
    assert_eq!(lines.len(), 3, "{error}");
    assert!(lines[0].starts_with(
        "the first-boot file from the config partition PGBOXCFG (/run/pgbox/cfgpart/pgbox.yaml) is invalid"
    ));
    assert_eq!(
        lines[1],
        "/run/pgbox/cfgpart/pgbox.yaml:9:14: nodes[1].address: address 10.0.0.11 is already used by node \"db1\" (line 6); each node needs its own"
    );
    assert!(lines[2]
        .starts_with("/run/pgbox/cfgpart/pgbox.yaml:16:25: secrets.replication_password: is a well-known password"));
    assert!(!error.contains("password1234"));
    assert!(!b.exists(paths::NODE) && !b.exists(paths::NETWORK));

    // Fixed on the partition: the next boot goes ahead, and the error goes.
    b.put(paths::CFGPART_CONFIG, GOOD);
    assert_eq!(b.run(), 0);
    assert!(!b.exists(paths::CONFIG_ERROR));
    assert_eq!(b.roles(), ["etcd", "postgres"]);
}

#[test]
fn no_file_anywhere_lists_every_place() {
    let b = Box::new();
    b.put(paths::CMDLINE, "ro quiet\n");
    assert_eq!(b.run(), EXIT_BAD_CONFIG);
    let error = b.read(paths::CONFIG_ERROR);
    assert!(
        error.starts_with("no first-boot file found; looked in:\n"),
        "{error}"
    );
    for place in [
        "/sys/firmware/qemu_fw_cfg/by_name/opt/pgbox/config/raw): not there",
        "/run/pgbox/cfgpart/pgbox.yaml): not there",
        "the kernel command line: no pgbox.config=PATH on it",
        "(/var/lib/pgbox/pgbox.yaml): not there",
    ] {
        assert!(error.contains(place), "{place} missing from:\n{error}");
    }
    assert!(!b.exists(paths::STATE_DIR));
}

#[test]
fn later_boots_run_from_the_kept_copy() {
    let b = Box::booted_with(GOOD);
    // The config partition is gone (or not mounted): the kept copy serves.
    fs::remove_file(b.path(paths::CFGPART_CONFIG)).unwrap();
    fs::remove_dir_all(b.path(paths::RUN_DIR)).unwrap();
    assert_eq!(b.run(), 0);
    assert_eq!(b.read(paths::NODE), "db1\n");
    assert_eq!(b.roles(), ["etcd", "postgres"]);
    assert_eq!(b.read(paths::PERSISTED_CONFIG), GOOD);
}

#[test]
fn a_safe_change_is_applied() {
    let b = Box::booted_with(GOOD);
    let changed = GOOD.replace("Fz3Lp8Ym1QkB7wGe", "Nq7Wd2Kx9RbT4mLs")
        + "ha:\n  ttl: 20s\nnetwork:\n  prefix_length: 16\n  gateway: 10.0.0.1\n"
        + "postgres:\n  parameters:\n    work_mem: 8MB\n"
        + "etcd:\n  heartbeat_interval: 500ms\n  election_timeout: 5s\n";
    let changed = changed.replace(
        "    address: 10.0.0.12\n",
        "    address: 10.0.0.12\n    mac: 52:54:00:00:00:12\n",
    );
    let changed = changed.replace(
        "    roles: [postgres, etcd]\n  - name: db2",
        "    roles: [postgres, etcd]\n    tags: {nofailover: true}\n  - name: db2",
    );
    b.put(paths::CFGPART_CONFIG, &changed);

    let d = discover::discover(&Root::new(b.root()));
    let kept = persist::read(&Root::new(b.root())).unwrap();
    let p = plan(&d, kept.as_ref()).unwrap_or_else(|f| panic!("{}", f.message));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(
        p.notes,
        ["applied the changed file from the config partition PGBOXCFG (/run/pgbox/cfgpart/pgbox.yaml) \
          (tags of db1, ha, postgres.parameters, secrets, mac of db2, network, etcd timing)"]
    );

    assert_eq!(b.run(), 0);
    assert_eq!(b.read(paths::PERSISTED_CONFIG), changed);
    assert_eq!(b.mode(paths::PERSISTED_CONFIG), 0o600);
    assert!(!b.exists(paths::CONFIG_WARNING));
    // In force from this boot on.
    assert!(b
        .read(paths::NETWORK)
        .contains("Address=10.0.0.11/16\nGateway=10.0.0.1\n"));
    assert!(b
        .read(paths::ETCD_ENV)
        .contains("ETCD_HEARTBEAT_INTERVAL=500\nETCD_ELECTION_TIMEOUT=5000\n"));
}

#[test]
fn reordering_or_comments_are_no_change_worth_refusing() {
    let old = sample();
    let reordered = GOOD
        .replace(
            "[postgres, etcd]\n  - name: db2",
            "[etcd, postgres]\n  - name: db2",
        )
        .replace("cluster:\n", "# edited on a laptop\ncluster:\n");
    let new = config::parse(&reordered, "x").unwrap();
    assert_eq!(compare(&old, "db1", &new, "db1"), Changes::default());
}

#[test]
fn an_unsafe_change_is_ignored_with_what_changed() {
    let b = Box::booted_with(GOOD);
    let kept_before = fs::metadata(b.path(paths::PERSISTED_CONFIG))
        .unwrap()
        .modified()
        .unwrap();
    let moved = GOOD
        .replace("10.0.0.12", "10.0.0.22")
        .replace("name: main", "name: prod")
        .replace("Fz3Lp8Ym1QkB7wGe", "Nq7Wd2Kx9RbT4mLs")
        .replace(
            "secrets:",
            "  - name: db3\n    address: 10.0.0.14\n    roles: [postgres]\nsecrets:",
        );
    b.put(paths::CFGPART_CONFIG, &moved);
    assert_eq!(b.run(), 0, "the box keeps running");

    let warning = b.read(paths::CONFIG_WARNING);
    assert!(
        warning.starts_with(
            "change ignored: cluster.name (main → prod), nodes.db2.address (10.0.0.12 → 10.0.0.22), node db3 added \
             cannot be applied to a running cluster; this box keeps running with /var/lib/pgbox/pgbox.yaml."
        ),
        "{warning}"
    );
    assert!(
        !warning.contains("Nq7Wd2Kx9RbT4mLs"),
        "no secret in messages"
    );
    assert_eq!(
        b.read(paths::PERSISTED_CONFIG),
        GOOD,
        "the kept copy stays, safe parts included"
    );
    assert_eq!(
        fs::metadata(b.path(paths::PERSISTED_CONFIG))
            .unwrap()
            .modified()
            .unwrap(),
        kept_before
    );
    assert_eq!(b.roles(), ["etcd", "postgres"]);
    assert!(b
        .read(paths::ETCD_ENV)
        .contains("ETCD_INITIAL_CLUSTER_TOKEN=pgbox-main\n"));
    assert!(!b.exists(paths::CONFIG_ERROR));

    // Put back: the warning goes with the next boot.
    b.put(paths::CFGPART_CONFIG, GOOD);
    assert_eq!(b.run(), 0);
    assert!(!b.exists(paths::CONFIG_WARNING));
}

#[test]
fn roles_ports_and_etcd_namespace_are_fixed_too() {
    let old = sample();
    let text = GOOD.replace("[etcd, router]", "[etcd]").replace(
        "[postgres, etcd]\n  - name: db2",
        "[postgres, etcd, router]\n  - name: db2",
    ) + "ports:\n  api: 8009\netcd:\n  namespace: /other\n";
    let new = config::parse(&text, "x").unwrap();
    let changes = compare(&old, "db1", &new, "db1");
    assert_eq!(
        changes.unsafe_changes,
        [
            "etcd.namespace (/service → /other)",
            "nodes.coord.roles ([etcd, router] → [etcd])",
            "nodes.db1.roles ([postgres, etcd] → [postgres, etcd, router])",
            "ports.api (8008 → 8009)",
        ]
    );
}

#[test]
fn api_settings_and_certificates_change_safely_and_are_never_shown() {
    let old = sample();
    let p = crate::tls::testing::pki(&["10.0.0.11", "10.0.0.12"]);
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    };
    let text = format!(
        "{GOOD}network:\n  client_networks: [10.0.9.0/24]\napi:\n  allow_writes_from: [10.0.8.0/24]\n  tls:\n    certificate: |\n{}    private_key: |\n{}    ca: |\n{}",
        indent(&p.cert_pem),
        indent(&p.key_pem),
        indent(&p.ca_pem)
    );
    let new = config::parse(&text, "x").unwrap_or_else(|e| panic!("{e}"));
    let changes = compare(&old, "db1", &new, "db1");
    assert!(
        changes.unsafe_changes.is_empty(),
        "{:?}",
        changes.unsafe_changes
    );
    assert_eq!(changes.safe_changes, ["network", "api"]);
}

#[test]
fn an_identity_change_is_ignored() {
    let b = Box::booted_with(GOOD);
    b.put(paths::CMDLINE, "pgbox.node=db2\n");
    assert_eq!(b.run(), 0);
    assert_eq!(b.read(paths::NODE), "db1\n");
    let warning = b.read(paths::CONFIG_WARNING);
    assert!(
        warning.starts_with(
            "change ignored: node identity (db1 → db2) cannot be applied to a running cluster"
        ),
        "{warning}"
    );

    // The same with the partition gone: the override alone is refused too.
    fs::remove_file(b.path(paths::CFGPART_CONFIG)).unwrap();
    assert_eq!(b.run(), 0);
    assert_eq!(b.read(paths::NODE), "db1\n");
    assert!(b
        .read(paths::CONFIG_WARNING)
        .contains("node identity (db1 → db2, from kernel command line pgbox.node)"));
}

#[test]
fn an_identity_given_once_is_kept_for_a_file_without_one() {
    let anonymous = GOOD.replace("node: db1\n", "");
    let b = Box::new();
    b.put(paths::CFGPART_CONFIG, &anonymous);
    b.put(paths::CMDLINE, "pgbox.node=db2\n");
    assert_eq!(b.run(), 0);
    assert_eq!(b.read(paths::PERSISTED_NODE), "db2\n");
    // The boot entry lost pgbox.node: the box is still db2, with no warning.
    b.put(paths::CMDLINE, "quiet\n");
    assert_eq!(b.run(), 0);
    assert_eq!(b.read(paths::NODE), "db2\n");
    assert!(
        !b.exists(paths::CONFIG_WARNING),
        "{}",
        b.read_or_empty(paths::CONFIG_WARNING)
    );
}

#[test]
fn a_bad_new_file_never_replaces_a_good_kept_one() {
    let b = Box::booted_with(GOOD);
    b.put(
        paths::CFGPART_CONFIG,
        &GOOD.replace("    address: 10.0.0.13", "    adress: 10.0.0.13"),
    );
    assert_eq!(b.run(), 0, "the box keeps running with what it has");
    assert_eq!(b.read(paths::PERSISTED_CONFIG), GOOD);
    let warning = b.read(paths::CONFIG_WARNING);
    assert!(
        warning.starts_with("the first-boot file from the config partition PGBOXCFG"),
        "{warning}"
    );
    assert!(
        warning
            .contains("/run/pgbox/cfgpart/pgbox.yaml:12:5: nodes[2].adress: unknown key `adress`"),
        "{warning}"
    );
    assert_eq!(b.roles(), ["etcd", "postgres"]);
    assert!(!b.exists(paths::CONFIG_ERROR));
}

#[test]
fn an_invalid_kept_copy_is_replaced_by_a_valid_file_or_stops_the_box() {
    let b = Box::booted_with(GOOD);
    fs::write(
        b.path(paths::PERSISTED_CONFIG),
        GOOD.replace("name: main", "name: Main"),
    )
    .unwrap();
    fs::remove_file(b.path(paths::CFGPART_CONFIG)).unwrap();
    assert_eq!(b.run(), EXIT_BAD_CONFIG);
    assert!(b.roles().is_empty());
    assert!(b
        .read(paths::CONFIG_ERROR)
        .contains("/var/lib/pgbox/pgbox.yaml:2:9: cluster.name"));

    b.put(paths::CFGPART_CONFIG, GOOD);
    assert_eq!(b.run(), 0);
    assert_eq!(b.read(paths::PERSISTED_CONFIG), GOOD);
    assert!(b
        .read(paths::CONFIG_WARNING)
        .contains("is invalid; it was replaced by the file from the config partition"));
}

#[test]
fn a_role_lost_between_runs_takes_its_files_along() {
    let b = Box::new();
    b.put(
        paths::CFGPART_CONFIG,
        &GOOD.replace("node: db1", "node: coord"),
    );
    assert_eq!(b.run(), 0);
    assert_eq!(b.roles(), ["etcd", "router"]);
    // Same boot, the kept copy removed by hand and another identity given:
    // nothing of coord's may stay behind for db1.
    fs::remove_dir_all(b.path(paths::STATE_DIR)).unwrap();
    b.put(paths::CFGPART_CONFIG, GOOD);
    assert_eq!(b.run(), 0);
    assert_eq!(b.roles(), ["etcd", "postgres"]);
    assert!(!b.exists(paths::HAPROXY_CFG) && !b.exists(paths::HAPROXY_STATE));
}

#[test]
fn a_router_of_an_https_cluster_gets_the_api_ca_and_loses_it_with_tls() {
    let p = crate::tls::testing::pki(&["10.0.0.11", "10.0.0.12"]);
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    };
    let coord = GOOD.replace("node: db1", "node: coord");
    let with_tls = format!(
        "{coord}api:\n  tls:\n    certificate: |\n{}    private_key: |\n{}    ca: |\n{}",
        indent(&p.cert_pem),
        indent(&p.key_pem),
        indent(&p.ca_pem)
    );
    let b = Box::new();
    b.put(paths::CFGPART_CONFIG, &with_tls);
    assert_eq!(b.run(), 0, "{}", b.read_or_empty(paths::CONFIG_ERROR));
    assert_eq!(b.read(paths::HAPROXY_API_CA), p.ca_pem);
    assert!(b
        .read(paths::HAPROXY_CFG)
        .contains("check-ssl verify required ca-file /run/pgbox/api-ca.pem\n"));
    // The private key goes nowhere under /run.
    for file in [paths::HAPROXY_CFG, paths::HAPROXY_API_CA, paths::PGBOXD_ENV] {
        assert!(!b.read(file).contains("PRIVATE KEY"), "{file}");
    }

    b.put(paths::CFGPART_CONFIG, &coord);
    assert_eq!(b.run(), 0, "{}", b.read_or_empty(paths::CONFIG_ERROR));
    assert!(!b.exists(paths::HAPROXY_API_CA));
    assert!(!b.read(paths::HAPROXY_CFG).contains("ssl"));
}
