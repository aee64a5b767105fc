//! What must hold for any first-boot file, accepted or refused. A broken
//! rule panics, which libFuzzer reports as a crash with the input saved.

use pgbox::config::{self, Config, ConfigErrors, Role};
use pgbox::firstboot::render;
use pgbox::postgres::conf;

/// The file name the targets pass to the parser.
pub const SOURCE: &str = "fuzz.yaml";

/// Parses `text` and checks the outcome either way; returns it for
/// targets that check more.
pub fn parse_and_check(text: &str) -> Result<Config, ConfigErrors> {
    let outcome = config::parse(text, SOURCE);
    match &outcome {
        Ok(cfg) => check_accepted(cfg),
        Err(errors) => check_refused(text, errors),
    }
    outcome
}

/// A refusal must say what is wrong, and a position must lie in the file.
pub fn check_refused(text: &str, errors: &ConfigErrors) {
    assert!(errors.iter().next().is_some(), "refused with no error");
    // YAML breaks lines at CR LF, LF and a lone CR alike (a file saved on
    // an old Mac has CRs only), and the parser counts lines that way.
    let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
    for e in errors.iter() {
        assert!(
            !e.message.trim().is_empty(),
            "an error without a message: {e:?}"
        );
        if let Some(line) = e.line {
            assert!(
                line >= 1 && line <= lines,
                "error at line {line} of a {lines}-line file: {e:?}"
            );
            assert!(
                e.column.is_some_and(|c| c >= 1),
                "line without column: {e:?}"
            );
        }
    }
    // Display must not panic, whatever the messages hold.
    let _ = errors.to_string();
}

/// Everything pgboxd and the first boot derive from an accepted file must
/// come out without a panic, for every node.
pub fn check_accepted(cfg: &Config) {
    let names: Vec<String> = cfg.nodes.iter().map(|n| n.name.clone()).collect();
    assert!(!names.is_empty(), "accepted a file without nodes");
    let _ = config::validate_identity(cfg, None);
    let stranger = "not a node name";
    assert!(
        config::validate_identity(cfg, Some(stranger)).is_err(),
        "{stranger:?} was taken for a node"
    );
    for name in &names {
        let got = config::validate_identity(cfg, Some(name))
            .unwrap_or_else(|e| panic!("node {name} of an accepted file refused: {e}"));
        assert_eq!(&got, name);
        rendered(cfg, name);
    }
    let _ = cfg.etcd_endpoints();
    let _ = cfg.key_prefix();
    for node in &cfg.nodes {
        let _ = cfg.api_url(node);
        let _ = config::canonical_mac(node.mac.as_deref().unwrap_or(""));
    }
}

/// Every file the first boot writes for node `me`, and the PostgreSQL
/// files pgboxd writes when `me` runs PostgreSQL.
pub fn rendered(cfg: &Config, me: &str) -> Vec<String> {
    let mut texts: Vec<String> = render::all(cfg, me).into_iter().map(|f| f.text).collect();
    let node = cfg.node_named(me).expect("validated above");
    if node.roles.contains(&Role::Postgres) {
        let upstream = cfg
            .nodes_with(Role::Postgres)
            .find(|n| n.name != me)
            .and_then(|other| conf::upstream_of(cfg, &other.name));
        texts.push(conf::postgresql_conf(
            cfg,
            node,
            "/run/postgresql",
            "/var/lib/pgbox/pgpass",
            upstream.as_ref(),
            "",
        ));
        texts.push(conf::pg_hba_conf(cfg));
        texts.push(conf::conn_url(cfg, node));
    }
    texts
}

/// Secrets from the file must not show up in an error message or in a
/// file written outside the secret stores. `secrets` are the values under
/// `secrets:`; `elsewhere` is all other text of the file (a secret that
/// also appears there may be quoted legitimately, and is skipped).
pub fn check_secrets_kept(
    outcome: &Result<Config, ConfigErrors>,
    secrets: &[String],
    elsewhere: &[String],
) {
    let secrets: Vec<&String> = secrets
        .iter()
        .filter(|s| distinctive(s) && !elsewhere.iter().any(|t| t.contains(s.as_str())))
        .collect();
    if secrets.is_empty() {
        return;
    }
    match outcome {
        Err(errors) => {
            let shown = errors.to_string();
            for s in &secrets {
                assert!(
                    !shown.contains(s.as_str()),
                    "a secret appears in the errors:\n{shown}"
                );
            }
        }
        Ok(cfg) => {
            for node in &cfg.nodes {
                for file in render::all(cfg, &node.name) {
                    for s in &secrets {
                        assert!(
                            !file.text.contains(s.as_str()),
                            "a secret appears in {}:\n{}",
                            file.path,
                            file.text
                        );
                    }
                }
            }
        }
    }
}

/// Long and mixed enough that it cannot be a word of a fixed message.
fn distinctive(s: &str) -> bool {
    s.chars().count() >= 10
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars().any(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_lowercase())
}
