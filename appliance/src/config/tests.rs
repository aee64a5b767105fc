use std::time::Duration;

use super::*;

/// A valid three-node file; line numbers below refer to it:
/// line 5 is nodes[0].name, 8 nodes[1].name, 11 nodes[2].name, 14 `secrets:`.
pub(crate) const GOOD: &str = "\
cluster:
  name: main
node: db1
nodes:
  - name: db1
    address: 10.0.0.11
    roles: [postgres, etcd]
  - name: db2
    address: 10.0.0.12
    roles: [postgres, etcd]
  - name: coord
    address: 10.0.0.13
    roles: [etcd, router]
secrets:
  superuser_password: \"kq8Vx2mPz4LwT7nB\"
  replication_password: \"Rj5tH9cWq2XvN6sD\"
  app_password: \"Fz3Lp8Ym1QkB7wGe\"
  etcd_password: \"Wm4Hs7Ka2NdR9pXc\"
";

const GOOD_SECRETS: [&str; 3] = ["kq8Vx2mPz4LwT7nB", "Rj5tH9cWq2XvN6sD", "Fz3Lp8Ym1QkB7wGe"];

const EXAMPLE: &str = include_str!("../../../docs/pgbox.example.yaml");

/// The example with a secret of one's own in each placeholder, as a user
/// fills it in.
fn example_filled_in() -> String {
    let mine = [
        "kq8Vx2mPz4LwT7nBa1",
        "Rj5tH9cWq2XvN6sDb2",
        "Fz3Lp8Ym1QkB7wGec3",
        "Hn4Wd7Rt2ZpK9sVmd4",
    ];
    let placeholder = format!("\"{SECRET_PLACEHOLDER}\"");
    let mut text = EXAMPLE.to_string();
    for secret in mine {
        text = text.replacen(&placeholder, &format!("\"{secret}\""), 1);
    }
    assert!(
        !text.contains(SECRET_PLACEHOLDER),
        "more placeholders than secrets"
    );
    text
}

fn errors(text: &str) -> ConfigErrors {
    match parse(text, "pgbox.yaml") {
        Ok(_) => panic!("expected errors, the file was accepted:\n{text}"),
        Err(e) => e,
    }
}

/// The only error, when exactly one is expected.
fn only(text: &str) -> ConfigError {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got:\n{errs}");
    errs.0.into_iter().next().unwrap()
}

/// The error at `path`, failing with the whole list when there is none.
fn at<'a>(errs: &'a ConfigErrors, path: &str) -> &'a ConfigError {
    errs.iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no error at {path}; got:\n{errs}"))
}

fn pos(e: &ConfigError) -> (Option<usize>, Option<usize>) {
    (e.line, e.column)
}

/// GOOD with `extra` (whole top-level sections) appended from line 19 on.
fn with(extra: &str) -> String {
    format!("{GOOD}{extra}")
}

#[test]
fn good_file_passes() {
    let cfg = parse(GOOD, "pgbox.yaml").unwrap();
    assert_eq!(cfg.cluster.name, "main");
    assert_eq!(cfg.node.as_deref(), Some("db1"));
    assert_eq!(cfg.nodes.len(), 3);
    assert_eq!(cfg.nodes[2].roles, vec![Role::Etcd, Role::Router]);
    assert_eq!(cfg.ha, HaSettings::default());
    assert_eq!(cfg.key_prefix(), "/service/main/");
}

#[test]
fn example_file_validates_and_shows_the_defaults() {
    let cfg = parse(&example_filled_in(), "pgbox.example.yaml").unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = cfg.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["db1", "db2", "coord", "app1", "app2"]);
    assert_eq!(cfg.nodes_with(Role::Etcd).count(), 3);
    assert_eq!(cfg.nodes_with(Role::Postgres).count(), 2);
    assert_eq!(cfg.nodes_with(Role::Router).count(), 3);
    // The example claims to show the defaults; keep it honest.
    assert_eq!(cfg.postgres, PostgresSettings::default());
    assert_eq!(cfg.ha, HaSettings::default());
    assert_eq!(cfg.etcd, EtcdSettings::default());
    assert_eq!(cfg.ports, Ports::default());
    assert_eq!(cfg.network, NetworkSettings::default());
    assert_eq!(cfg.nodes[0].tags, Tags::default());
    assert_eq!(validate_identity(&cfg, Some("coord")).unwrap(), "coord");
}

#[test]
fn malformed_yaml_has_line_and_column() {
    let e = only("cluster:\n  name: main\nnodes:\n\t- name: db1\n");
    assert_eq!(pos(&e), (Some(4), Some(2)), "{e}");
    assert!(e.message.starts_with("YAML syntax error: "), "{e}");
    assert!(
        e.to_string()
            .starts_with("pgbox.yaml:4:2: YAML syntax error"),
        "{e}"
    );

    let e = only("cluster:\n  name: main\nnodes: [{name: db1, address: 10.0.0.11\nsecrets: {}\n");
    assert_eq!(
        e.to_string(),
        "pgbox.yaml:3:9: YAML syntax error: unclosed bracket '{' (while reading `nodes`)"
    );

    let e = only("- just\n- a list\n");
    assert_eq!(pos(&e), (Some(1), Some(1)));
    assert!(e.message.contains("must be a YAML mapping"), "{e}");

    let e = only("");
    assert!(e.message.contains("empty"), "{e}");
}

#[test]
fn wrong_types_name_the_field_and_its_position() {
    let e = only(&with("ha:\n  ttl: yes\n"));
    assert_eq!(e.path, "ha.ttl");
    assert_eq!(e.line, Some(20));
    assert!(
        e.message.contains("duration") && e.message.contains("10s"),
        "{e}"
    );

    let e = only(&GOOD.replace("10.0.0.12", "not-an-ip"));
    assert_eq!(e.path, "nodes[1].address");
    assert_eq!(pos(&e), (Some(9), Some(14)));
    assert_eq!(
        e.message,
        "`not-an-ip` is not an IP address; write it like 10.0.0.11 or fd00::11"
    );

    let e = only(&GOOD.replace("[etcd, router]", "[database, router]"));
    assert_eq!(e.path, "nodes[2].roles[0]");
    assert_eq!(pos(&e), (Some(13), Some(13)));
    assert!(
        e.message.contains("`database`") && e.message.contains("postgres, etcd, router"),
        "{e}"
    );

    let e = only(&with("ports:\n  api: 70000\n"));
    assert_eq!(e.path, "ports.api");
    assert_eq!(e.line, Some(20));
    assert!(e.message.contains("not a port number"), "{e}");

    let e = only(&with("etcd:\n  allow_unsafe_member_count: maybe\n"));
    assert_eq!(e.path, "etcd.allow_unsafe_member_count");
    assert_eq!(e.line, Some(20));
}

#[test]
fn unknown_keys_are_errors_with_path_and_line() {
    let e = only(&with("colour: blue\n"));
    assert_eq!(e.path, "colour");
    assert_eq!(pos(&e), (Some(19), Some(1)));
    assert!(e.message.starts_with("unknown key `colour`"), "{e}");

    let e = only(&GOOD.replace("    address: 10.0.0.13", "    adress: 10.0.0.13"));
    assert_eq!(e.path, "nodes[2].adress");
    assert_eq!(pos(&e), (Some(12), Some(5)));
    assert!(e.message.contains("did you mean `address`?"), "{e}");
    assert_eq!(
        e.to_string(),
        "pgbox.yaml:12:5: nodes[2].adress: unknown key `adress`; did you mean `address`? \
         (allowed here: name, address, roles, tags, mac)"
    );

    let e = only(&with("ha:\n  ttl: 10s\n  loopwait: 1s\n"));
    assert_eq!(e.path, "ha.loopwait");
    assert_eq!(e.line, Some(21));
}

#[test]
fn duplicate_yaml_keys_are_errors() {
    let e = only(&with("ha:\n  ttl: 5s\n  ttl: 6s\n"));
    assert_eq!(e.path, "ha.ttl");
    assert_eq!(e.line, Some(21));
}

#[test]
fn duplicate_node_names_mention_both_lines() {
    let errs = errors(&GOOD.replace("name: db2", "name: db1"));
    let e = at(&errs, "nodes[1].name");
    assert_eq!(
        e.to_string(),
        "pgbox.yaml:8:11: nodes[1].name: duplicate node name \"db1\" (first used at line 5)"
    );
}

#[test]
fn duplicate_addresses() {
    let e = only(&GOOD.replace("10.0.0.13", "10.0.0.11"));
    assert_eq!(e.path, "nodes[2].address");
    assert_eq!(e.line, Some(12));
    assert!(
        e.message.contains("already used by node \"db1\" (line 6)"),
        "{e}"
    );
}

#[test]
fn node_roles() {
    let e = only(&GOOD.replace("[etcd, router]", "[etcd, router, etcd]"));
    assert_eq!(e.path, "nodes[2].roles[2]");
    assert!(e.message.contains("listed twice"), "{e}");

    let errs = errors(&GOOD.replace("[etcd, router]", "[]"));
    let e = at(&errs, "nodes[2].roles");
    assert_eq!(e.line, Some(13));
    assert!(e.message.contains("no roles"), "{e}");

    let errs = errors(&GOOD.replace("[postgres, etcd]", "[etcd]"));
    let e = at(&errs, "nodes");
    assert_eq!(e.line, Some(4));
    assert!(e.message.contains("no node has the role `postgres`"), "{e}");
}

#[test]
fn some_postgres_node_may_lead() {
    let tagged = GOOD
        .replace(
            "    roles: [postgres, etcd]\n  - name: db2",
            "    roles: [postgres, etcd]\n    tags: {nofailover: true}\n  - name: db2",
        )
        .replace(
            "    roles: [postgres, etcd]\n  - name: coord",
            "    roles: [postgres, etcd]\n    tags: {failover_priority: 0}\n  - name: coord",
        );
    let e = only(&tagged);
    assert_eq!(e.path, "nodes");
    assert!(
        e.message
            .contains("every `postgres` node is tagged `nofailover`"),
        "{e}"
    );
    // One node that may lead is enough.
    let one = GOOD.replace(
        "    roles: [postgres, etcd]\n  - name: db2",
        "    roles: [postgres, etcd]\n    tags: {nofailover: true}\n  - name: db2",
    );
    assert!(parse(&one, "pgbox.yaml").is_ok());
}

#[test]
fn node_name_rules() {
    let errs = errors(
        &GOOD
            .replace("name: db2", "name: DB_2")
            .replace("name: coord", "name: -coord"),
    );
    assert!(at(&errs, "nodes[1].name")
        .message
        .contains("\"DB_2\" contains 'D'"));
    assert!(at(&errs, "nodes[2].name")
        .message
        .contains("starts or ends with '-'"));
}

#[test]
fn node_not_in_cluster() {
    let e = only(&GOOD.replace("node: db1", "node: db9"));
    assert_eq!(e.path, "node");
    assert_eq!(pos(&e), (Some(3), Some(7)));
    assert_eq!(
        e.message,
        "\"db9\" is not one of the nodes (db1, db2, coord)"
    );
}

#[test]
fn etcd_member_count_must_be_odd_and_at_least_three() {
    let two = GOOD.replace("[etcd, router]", "[router]");
    let e = only(&two);
    assert_eq!(e.path, "nodes");
    assert_eq!(e.line, Some(4));
    assert!(e.message.starts_with("2 etcd members (db1, db2): "), "{e}");
    assert!(e.message.contains("survives the loss of (N-1)/2"), "{e}");
    assert!(e.message.contains("allow_unsafe_member_count"), "{e}");
    parse(
        &format!("{two}etcd:\n  allow_unsafe_member_count: true\n"),
        "pgbox.yaml",
    )
    .unwrap();

    let one = GOOD
        .replace("[postgres, etcd]", "[postgres]")
        .replacen("[postgres]", "[postgres, etcd]", 1)
        .replace("[etcd, router]", "[router]");
    let e = only(&one);
    assert!(e.message.starts_with("1 etcd member (db1): "), "{e}");

    let errs = errors(
        &GOOD
            .replace("[postgres, etcd]", "[postgres]")
            .replace("[etcd, router]", "[router]"),
    );
    assert!(at(&errs, "nodes")
        .message
        .contains("no node has the role `etcd`"));
}

#[test]
fn missing_secret() {
    let e = only(&GOOD.replace("  app_password: \"Fz3Lp8Ym1QkB7wGe\"\n", ""));
    assert_eq!(e.path, "secrets.app_password");
    assert_eq!(e.line, Some(14), "points at `secrets:`: {e}");
    assert!(e.message.contains("every secret must be set"), "{e}");
}

#[test]
fn weak_secrets_are_refused_without_being_shown() {
    let weak = ["password1234", "aaaaaaaaaaaaaaaa", "Sh0rt!pw", "ChangeMe"];
    let text = GOOD
        .replace(GOOD_SECRETS[0], weak[0])
        .replace(GOOD_SECRETS[1], weak[1])
        .replace(GOOD_SECRETS[2], weak[2]);
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs}");
    let e = at(&errs, "secrets.superuser_password");
    assert_eq!(e.line, Some(15));
    assert!(e.message.contains("well-known password"), "{e}");
    assert!(at(&errs, "secrets.replication_password")
        .message
        .contains("one character repeated"));
    assert!(at(&errs, "secrets.app_password")
        .message
        .contains("shorter than 12"));
    let shown = errs.to_string();
    for secret in weak {
        assert!(!shown.contains(secret), "message shows a secret: {shown}");
    }
}

#[test]
fn secrets_must_differ() {
    let e = only(&GOOD.replace(GOOD_SECRETS[2], GOOD_SECRETS[0]));
    assert_eq!(e.path, "secrets.app_password");
    assert_eq!(e.line, Some(17));
    assert!(
        e.message
            .starts_with("is the same as secrets.superuser_password"),
        "{e}"
    );
    assert!(!e.to_string().contains(GOOD_SECRETS[0]));
}

#[test]
fn secret_of_wrong_type_is_not_echoed() {
    let e = only(&GOOD.replace("\"Fz3Lp8Ym1QkB7wGe\"", "[9876543210987]"));
    assert_eq!(e.path, "secrets.app_password");
    assert!(!e.to_string().contains("9876543210987"), "{e}");
}

#[test]
fn owned_postgres_parameters_are_refused() {
    let errs = errors(&with(
        "postgres:\n  parameters:\n    shared_buffers: 256MB\n    wal_level: logical\n    port: 5433\n    \"auto_explain.log_min_duration\": 250\n",
    ));
    assert_eq!(errs.len(), 2, "{errs}");
    let e = at(&errs, "postgres.parameters.wal_level");
    assert_eq!(pos(e), (Some(22), Some(5)));
    assert!(
        e.message.starts_with("`wal_level` is managed by pgbox"),
        "{e}"
    );
    assert!(at(&errs, "postgres.parameters.port")
        .message
        .contains("ports.postgres"));
}

#[test]
fn postgres_names() {
    let errs = errors(&with(
        "postgres:\n  superuser: Admin\n  replication_user: app\n  database: template1\n  parameters:\n    Work_Mem: 4MB\n    work_mem2: \"a\\nb\"\n",
    ));
    assert!(at(&errs, "postgres.superuser")
        .message
        .contains("not a plain PostgreSQL name"));
    // app_user is not in the file: the clash is shown where it was made.
    let e = at(&errs, "postgres.replication_user");
    assert_eq!(e.line, Some(21));
    assert!(
        e.message
            .starts_with("\"app\" is also postgres.app_user (its default)"),
        "{e}"
    );
    assert!(at(&errs, "postgres.database").message.contains("template"));
    assert!(at(&errs, "postgres.parameters.Work_Mem")
        .message
        .contains("lower case: work_mem"));
    assert!(at(&errs, "postgres.parameters.work_mem2")
        .message
        .contains("line break"));
}

#[test]
fn ha_timing_rules() {
    let e = only(&with("ha:\n  ttl: 10s\n  loop_wait: 6s\n"));
    assert_eq!(e.path, "ha.loop_wait");
    assert_eq!(pos(&e), (Some(21), Some(14)));
    assert!(e.message.contains("more than half of ha.ttl (10s)"), "{e}");
    assert!(e.message.contains("several times per ttl"), "{e}");

    let errs = errors(&with(
        "ha:\n  ttl: 1s\n  loop_wait: 50ms\n  maximum_lag_on_failover: 0\n",
    ));
    assert!(at(&errs, "ha.ttl")
        .message
        .starts_with("is 1s; at least 2s"));
    assert!(at(&errs, "ha.loop_wait")
        .message
        .starts_with("is 50ms; at least 100ms"));
    assert!(at(&errs, "ha.maximum_lag_on_failover")
        .message
        .contains("more than 0"));

    assert!(at(&errors(&with("ha:\n  ttl: 11m\n")), "ha.ttl")
        .message
        .contains("at most 10m"));
    // The shortest ttl needs an etcd that grants leases that short.
    let cfg = parse(
        &with("ha:\n  ttl: 2s\n  loop_wait: 1s\netcd:\n  heartbeat_interval: 100ms\n  election_timeout: 1s\n"),
        "pgbox.yaml",
    )
    .unwrap();
    assert_eq!(cfg.ha.ttl, Duration::from_secs(2));
}

#[test]
fn etcd_timing_rules() {
    let cfg = parse(GOOD, "pgbox.yaml").unwrap();
    assert_eq!(cfg.etcd.heartbeat_interval, Duration::from_millis(250));
    assert_eq!(cfg.etcd.election_timeout, Duration::from_millis(2500));
    assert_eq!(
        cfg.etcd.min_lease_ttl(),
        Duration::from_secs(4),
        "3.75s, in whole seconds"
    );

    // The values measured for emulated machines pass with the default ttl.
    let slow = parse(
        &with("etcd:\n  heartbeat_interval: 500ms\n  election_timeout: 5s\n"),
        "pgbox.yaml",
    )
    .unwrap();
    assert_eq!(slow.etcd.min_lease_ttl(), Duration::from_secs(8));

    let e = only(&with(
        "etcd:\n  heartbeat_interval: 500ms\n  election_timeout: 2s\n",
    ));
    assert_eq!(e.path, "etcd.election_timeout");
    assert_eq!(e.line, Some(21));
    assert!(
        e.message
            .contains("at least 5 times etcd.heartbeat_interval (500ms)"),
        "{e}"
    );

    // Only the heartbeat is written: the clash is shown there.
    let e = only(&with("etcd:\n  heartbeat_interval: 1s\n"));
    assert_eq!(e.path, "etcd.heartbeat_interval");
    assert!(
        e.message
            .contains("etcd.election_timeout (2s 500ms) must be at least 5 times"),
        "{e}"
    );

    let errs = errors(&with(
        "etcd:\n  heartbeat_interval: 5ms\n  election_timeout: 1m\n",
    ));
    assert!(at(&errs, "etcd.heartbeat_interval")
        .message
        .contains("at least 10ms"));
    assert!(at(&errs, "etcd.election_timeout")
        .message
        .contains("at most 50s"));

    let e = only(&with("etcd:\n  heartbeat_interval: 100500us\n"));
    assert!(e.message.contains("whole milliseconds"), "{e}");

    let e = only(&with("etcd:\n  election_timeout: soon\n"));
    assert_eq!(e.path, "etcd.election_timeout");
    assert!(e.message.contains("a duration"), "{e}");
}

#[test]
fn ttl_must_cover_etcds_minimum_lease() {
    let e = only(&with(
        "ha:\n  ttl: 5s\netcd:\n  heartbeat_interval: 500ms\n  election_timeout: 5s\n",
    ));
    assert_eq!(e.path, "ha.ttl");
    assert_eq!(e.line, Some(20));
    assert_eq!(
        e.message,
        "ha.ttl (5s) is shorter than etcd's minimum lease time to live, 8s: 1.5 × etcd.election_timeout (5s) rounded up \
         to whole seconds. etcd would silently keep a dead primary's lease that long; raise ha.ttl to at least 8s or lower \
         etcd.election_timeout"
    );
    // Between 1.5 × election timeout and the whole second above it: still short.
    let e = only(&with(
        "ha:\n  ttl: 7500ms\netcd:\n  heartbeat_interval: 500ms\n  election_timeout: 5s\n",
    ));
    assert_eq!(e.path, "ha.ttl");
    parse(
        &with("ha:\n  ttl: 8s\netcd:\n  heartbeat_interval: 500ms\n  election_timeout: 5s\n"),
        "pgbox.yaml",
    )
    .unwrap();

    // ttl left at its default and too short for the election timeout
    // written: the error points at what was written and names both.
    let e = only(&with("etcd:\n  election_timeout: 10s\n"));
    assert_eq!(e.path, "etcd.election_timeout");
    assert!(
        e.message.starts_with(
            "ha.ttl (10s, its default) is shorter than etcd's minimum lease time to live, 15s"
        ),
        "{e}"
    );

    let e = only(&with("ha:\n  ttl: 3s\n"));
    assert_eq!(e.path, "ha.ttl");
    assert!(
        e.message
            .contains("time to live, 4s: 1.5 × etcd.election_timeout (2s 500ms, its default)"),
        "{e}"
    );
}

#[test]
fn network_section() {
    let cfg = parse(GOOD, "pgbox.yaml").unwrap();
    assert_eq!(cfg.network, NetworkSettings::default());
    assert_eq!(cfg.network.prefix_length, 24);

    let text = with(
        "network:\n  prefix_length: 16\n  gateway: 10.0.0.1\n  dns: [10.0.0.2, \"fd00::53\"]\n",
    )
    .replace(
        "    address: 10.0.0.12\n",
        "    address: 10.0.0.12\n    mac: 52:55:00:AB:cd:12\n",
    );
    let cfg = parse(&text, "pgbox.yaml").unwrap();
    assert_eq!(cfg.network.prefix_length, 16);
    assert_eq!(cfg.network.gateway, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(cfg.network.dns.len(), 2);
    assert_eq!(cfg.nodes[1].mac.as_deref(), Some("52:55:00:AB:cd:12"));
    assert_eq!(
        canonical_mac("52:55:00:AB:cd:12").as_deref(),
        Some("52:55:00:ab:cd:12")
    );

    let errs = errors(&with(
        "network:\n  prefix_length: 33\n  gateway: 10.0.0.12\n  dns: [224.0.0.1]\n",
    ));
    let e = at(&errs, "network.prefix_length");
    assert_eq!(e.line, Some(20));
    assert!(e.message.contains("an IPv4 prefix is 1 to 32"), "{e}");
    assert!(at(&errs, "network.gateway")
        .message
        .contains("address of node \"db2\""));
    assert!(at(&errs, "network.dns[0]").message.contains("multicast"));

    assert!(only(&with("network:\n  prefix_length: 0\n"))
        .message
        .contains("at least 1"));
    let e = only(&with("network:\n  gateway: \"fd00::1\"\n"));
    assert!(
        e.message.contains("IPv6") && e.message.contains("address family"),
        "{e}"
    );
    let e = only(&with("network:\n  gateway: 10.0.0.300\n"));
    assert_eq!(e.path, "network.gateway");
    assert!(e.message.contains("not an IP address"), "{e}");
}

#[test]
fn ipv6_nodes_need_an_explicit_prefix() {
    let v6 = GOOD.replace("10.0.0.1", "fd00::1");
    let e = only(&v6);
    assert_eq!(e.path, "network.prefix_length");
    assert!(e.message.contains("usually 64"), "{e}");
    let cfg = parse(
        &format!("{v6}network:\n  prefix_length: 64\n  gateway: \"fd00::1\"\n"),
        "pgbox.yaml",
    )
    .unwrap();
    assert_eq!(cfg.network.prefix_length, 64);
    assert!(only(&format!("{v6}network:\n  prefix_length: 129\n"))
        .message
        .contains("1 to 128"));
}

#[test]
fn mac_addresses() {
    let mac = |m: &str| {
        GOOD.replace(
            "    address: 10.0.0.12\n",
            &format!("    address: 10.0.0.12\n    mac: \"{m}\"\n"),
        )
    };
    for bad in [
        "52:54:00:12:34",
        "52-54-00-12-34-56",
        "52:54:00:12:34:zz",
        "5254.0012.3456",
    ] {
        let e = only(&mac(bad));
        assert_eq!(e.path, "nodes[1].mac");
        assert_eq!(e.line, Some(10));
        assert!(e.message.contains("is not a MAC address"), "{bad}: {e}");
    }
    assert!(only(&mac("01:00:5e:00:00:01"))
        .message
        .contains("multicast"));
    assert!(only(&mac("00:00:00:00:00:00"))
        .message
        .contains("all zeros"));

    let twice = mac("52:54:00:12:34:56").replace(
        "    address: 10.0.0.13\n",
        "    address: 10.0.0.13\n    mac: 52:54:00:12:34:56\n",
    );
    let e = only(&twice);
    assert_eq!(e.path, "nodes[2].mac");
    assert!(e.message.contains("also the MAC of node \"db2\""), "{e}");
}

#[test]
fn ports_are_distinct_and_non_zero() {
    let errs = errors(&with("ports:\n  api: 5432\n  router_stats: 0\n"));
    assert_eq!(errs.len(), 2, "{errs}");
    let e = at(&errs, "ports.api");
    assert_eq!(e.line, Some(20));
    assert!(e.message.contains("5432 is also ports.postgres"), "{e}");
    assert_eq!(at(&errs, "ports.router_stats").message, "must not be 0");

    let e = only(&with("ports:\n  postgres: 8008\n"));
    assert_eq!(e.path, "ports.postgres");
    assert_eq!(e.line, Some(20));
    assert!(
        e.message
            .starts_with("8008 is also ports.api (its default)"),
        "{e}"
    );
}

#[test]
fn cluster_name_and_namespace() {
    let errs = errors(
        &GOOD
            .replace("name: main", "name: Main/1")
            .replace("node: db1", "etcd:\n  namespace: service\nnode: db1"),
    );
    let e = at(&errs, "cluster.name");
    assert_eq!(pos(e), (Some(2), Some(9)));
    assert!(e.message.contains("contains 'M'"), "{e}");
    assert_eq!(at(&errs, "etcd.namespace").line, Some(4));

    let long = "x".repeat(64);
    let errs = errors(&GOOD.replace("name: main", &format!("name: {long}")));
    assert!(at(&errs, "cluster.name").message.contains("at most 63"));
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let text = GOOD
        .replace("node: db1", "node: nobody")
        .replace("name: db2", "name: db1")
        .replace(GOOD_SECRETS[1], "postgres")
        .replace("[etcd, router]", "[router]")
        + "postgres:\n  parameters:\n    hot_standby: on\nha:\n  maximum_lag_on_failover: 0\nports:\n  api: 0\n";
    let errs = errors(&text);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "node",
            "nodes",
            "nodes[1].name",
            "secrets.replication_password",
            "postgres.parameters.hot_standby",
            "ha.maximum_lag_on_failover",
            "ports.api",
        ],
        "{errs}"
    );
    let lines: Vec<Option<usize>> = errs.iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        [
            Some(3),
            Some(4),
            Some(8),
            Some(16),
            Some(21),
            Some(23),
            Some(25)
        ]
    );
    assert_eq!(errs.to_string().lines().count(), 7);
}

#[test]
fn identity_resolution() {
    let cfg = parse(GOOD, "pgbox.yaml").unwrap();
    assert_eq!(validate_identity(&cfg, None).unwrap(), "db1");
    assert_eq!(
        validate_identity(&cfg, Some("db2")).unwrap(),
        "db2",
        "--node wins over the file"
    );

    let e = validate_identity(&cfg, Some("db7")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--node: \"db7\" is not one of the nodes in the file (db1, db2, coord)"
    );

    let anonymous = parse(&GOOD.replace("node: db1\n", ""), "pgbox.yaml").unwrap();
    let e = validate_identity(&anonymous, None).unwrap_err();
    assert_eq!(
        e.0[0].message,
        "no node identity: set `node:` in the file or pass --node"
    );
}

#[test]
fn load_reports_unreadable_and_non_utf8_files() {
    let dir = std::env::temp_dir().join(format!("pgbox-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let missing = dir.join("missing.yaml");
    let e = load(&missing).unwrap_err();
    assert_eq!(e.len(), 1);
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{}: cannot read the file: ", missing.display())),
        "{shown}"
    );
    assert!(shown.contains("os error 2"), "{shown}");

    let latin1 = dir.join("latin1.yaml");
    std::fs::write(&latin1, b"cluster:\n  name: caf\xe9\n").unwrap();
    let e = load(&latin1).unwrap_err();
    assert_eq!((e.0[0].line, e.0[0].column), (Some(2), Some(12)));
    assert!(e.0[0].message.contains("UTF-8"));

    let good = dir.join("pgbox.yaml");
    std::fs::write(&good, GOOD).unwrap();
    assert_eq!(load(&good).unwrap().nodes.len(), 3);

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hostile_nesting_is_an_error_not_a_crash() {
    let text = format!("cluster: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let e = only(&text);
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn client_networks_and_api_allow_list() {
    let cfg = parse(
        &with("network:\n  client_networks: [10.0.5.0/24, 10.0.6.7, \"fd00:5::/64\"]\napi:\n  allow_writes_from: [192.168.10.0/24]\n"),
        "pgbox.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let nets: Vec<String> = cfg
        .network
        .client_networks
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(nets, ["10.0.5.0/24", "10.0.6.7/32", "fd00:5::/64"]);
    assert_eq!(cfg.api.allow_writes_from[0].to_string(), "192.168.10.0/24");
    assert!(cfg.api.tls.is_none());
    assert_eq!(cfg.api_scheme(), "http");
}

#[test]
fn a_bad_network_names_its_place() {
    // GOOD ends at line 18: `network:` is line 19, the list line 20.
    let e = only(&with(
        "network:\n  client_networks: [10.0.5.0/24, 10.0.6.0/33]\n",
    ));
    assert_eq!(e.path, "network.client_networks[1]", "{e}");
    assert_eq!(e.line, Some(20), "{e}");
    assert!(e.message.contains("0 to 32 for IPv4"), "{e}");

    let e = only(&with(
        "network:\n  client_networks: [10.0.5.0/24, db.example]\n",
    ));
    assert_eq!(e.path, "network.client_networks[1]", "{e}");
    assert!(e.message.contains("`db.example` is not an address"), "{e}");

    let errs = errors(&with(
        "network:\n  client_networks:\n    - 10.0.5.9/24\n    - 0.0.0.0/0\n    - 10.0.7.0/24\n    - 10.0.7.0/24\napi:\n  allow_writes_from: [\"::/0\"]\n",
    ));
    let e = at(&errs, "network.client_networks[0]");
    assert_eq!(pos(e), (Some(21), Some(7)), "{e}");
    assert!(
        e.message.contains("host bits") && e.message.contains("10.0.5.0/24"),
        "{e}"
    );
    let e = at(&errs, "network.client_networks[1]");
    assert!(e.message.contains("every address"), "{e}");
    let e = at(&errs, "network.client_networks[3]");
    assert!(e.message.contains("listed twice (line 23)"), "{e}");
    let e = at(&errs, "api.allow_writes_from[0]");
    assert_eq!(e.line, Some(26), "{e}");
    assert!(e.message.contains("every address"), "{e}");
    assert_eq!(errs.len(), 4, "{errs}");
}

#[test]
fn api_tls_is_checked_against_the_nodes() {
    let p = crate::tls::testing::pki(&["10.0.0.11", "10.0.0.12"]);
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    };
    let section = |cert: &str, key: &str, ca: &str| {
        format!(
            "api:\n  tls:\n    certificate: |\n{}    private_key: |\n{}    ca: |\n{}",
            indent(cert),
            indent(key),
            indent(ca)
        )
    };
    let cfg = parse(
        &with(&section(&p.cert_pem, &p.key_pem, &p.ca_pem)),
        "pgbox.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.api_scheme(), "https");
    assert!(cfg
        .api_url(&cfg.nodes[0])
        .starts_with("https://10.0.0.11:8008/"));
    assert!(
        !format!("{cfg:?}").contains("PRIVATE KEY"),
        "Debug hides the key"
    );

    // Only db1's address: db2 runs an API too.
    let narrow = crate::tls::testing::pki(&["10.0.0.11"]);
    let e = only(&with(&section(
        &narrow.cert_pem,
        &narrow.key_pem,
        &narrow.ca_pem,
    )));
    assert_eq!(e.path, "api.tls.certificate");
    // The block scalar's text starts on the line after `certificate: |`.
    assert_eq!(e.line, Some(22), "{e}");
    assert!(
        e.message.contains("\"db2\"") && e.message.contains("10.0.0.12"),
        "{e}"
    );

    let e = only(&with(&section(&p.cert_pem, &narrow.key_pem, &p.ca_pem)));
    assert_eq!(e.path, "api.tls.private_key");
    assert!(e.message.contains("does not fit"), "{e}");
    assert!(
        !e.to_string().contains("PRIVATE KEY-----\n"),
        "never quotes the key"
    );
}

#[test]
fn the_etcd_password_is_required_and_checked_like_every_secret() {
    let e = only(&GOOD.replace("  etcd_password: \"Wm4Hs7Ka2NdR9pXc\"\n", ""));
    assert_eq!(e.path, "secrets.etcd_password", "{e}");
    let e = only(&GOOD.replace("Wm4Hs7Ka2NdR9pXc", "etcd12345"));
    assert_eq!(e.path, "secrets.etcd_password", "{e}");
    assert!(!e.to_string().contains("etcd12345"), "{e}");
    let e = only(&GOOD.replace("Wm4Hs7Ka2NdR9pXc", GOOD_SECRETS[0]));
    assert_eq!(e.path, "secrets.etcd_password", "{e}");
    assert!(
        e.message.contains("same as secrets.superuser_password"),
        "{e}"
    );
}

#[test]
fn etcd_tls_is_checked_against_the_etcd_members_and_for_client_use() {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    };
    let section = |p: &crate::tls::testing::TestPki| {
        format!(
            "etcd:\n  tls:\n    certificate: |\n{}    private_key: |\n{}    ca: |\n{}",
            indent(&p.cert_pem),
            indent(&p.key_pem),
            indent(&p.ca_pem)
        )
    };
    // GOOD's etcd members: db1, db2 and coord.
    let members = ["10.0.0.11", "10.0.0.12", "10.0.0.13"];
    let good = crate::tls::testing::pki_with_usage(&members, vec![ServerAuth, ClientAuth]);
    let cfg = parse(&with(&section(&good)), "pgbox.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.etcd_endpoints(),
        [
            "https://10.0.0.11:2379",
            "https://10.0.0.12:2379",
            "https://10.0.0.13:2379"
        ]
    );
    assert!(!format!("{cfg:?}").contains("PRIVATE KEY"));
    // The API's certificate check is separate: api.tls stays unset.
    assert_eq!(cfg.api_scheme(), "http");

    let no_coord = crate::tls::testing::pki(&members[..2]);
    let e = only(&with(&section(&no_coord)));
    assert_eq!(e.path, "etcd.tls.certificate", "{e}");
    assert!(
        e.message.contains("\"coord\"") && e.message.contains("10.0.0.13"),
        "{e}"
    );

    let server_only = crate::tls::testing::pki_with_usage(&members, vec![ServerAuth]);
    let e = only(&with(&section(&server_only)));
    assert_eq!(e.path, "etcd.tls.certificate", "{e}");
    assert!(e.message.contains("clientAuth"), "{e}");
}

#[test]
fn namespace_is_a_plain_key_path() {
    // Each bad value on line 20 of the file, its value at column 14.
    let bad = [
        ("\"/service\\nother\"", "contains U+000A"),
        ("\"/my service\"", "contains a space"),
        ("/service/..", "`..` part"),
        ("/service/../other", "`..` part"),
        ("/./service", "`.` part"),
        ("/service//main", "empty part"),
        ("/service//", "empty part"),
        ("\"/service\\u202E\"", "contains U+202E"),
        ("/servi*ce", "contains '*'"),
        ("service", "must start with '/'"),
        ("\"\"", "must not be empty"),
    ];
    for (value, expect) in bad {
        let e = only(&with(&format!("etcd:\n  namespace: {value}\n")));
        assert_eq!(e.path, "etcd.namespace", "{value}: {e}");
        assert_eq!(pos(&e), (Some(20), Some(14)), "{value}: {e}");
        assert!(e.message.contains(expect), "{value}: {e}");
        assert!(
            !e.to_string().contains('\n') && !e.to_string().contains('\u{202e}'),
            "the message carries the raw character: {e:?}"
        );
    }
    let long = format!("/{}", "a".repeat(128));
    let e = only(&with(&format!("etcd:\n  namespace: {long}\n")));
    assert!(e.message.contains("at most 128"), "{e}");

    for (value, prefix) in [
        ("/", "/main/"),
        ("/service/", "/service/main/"),
        ("/pg-boxes/prod.eu_1", "/pg-boxes/prod.eu_1/main/"),
        ("/a.b/..c/c..", "/a.b/..c/c../main/"),
    ] {
        let cfg = parse(
            &with(&format!("etcd:\n  namespace: {value}\n")),
            "pgbox.yaml",
        )
        .unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(cfg.key_prefix(), prefix);
    }
}

#[test]
fn cluster_name_cannot_leave_its_key_prefix() {
    // The cluster name is the last part of every key prefix: nothing in it
    // may add a path part or a character etcdctl users cannot type.
    for (value, expect) in [
        ("a/b", "contains '/'"),
        ("..", "contains '.'"),
        ("\"a b\"", "contains a space"),
        ("\"main\\n\"", "contains U+000A"),
        ("\"ma\\u202Ein\"", "contains U+202E"),
    ] {
        let e = only(&GOOD.replace("name: main", &format!("name: {value}")));
        assert_eq!(e.path, "cluster.name", "{value}: {e}");
        assert_eq!(pos(&e), (Some(2), Some(9)), "{value}: {e}");
        assert!(e.message.contains(expect), "{value}: {e}");
    }
}

/// A copied example with a secret left as it is must not run: each
/// placeholder is refused by name, and so is any value that an earlier
/// example published.
#[test]
fn the_examples_placeholders_and_published_secrets_are_refused() {
    let errs = errors(EXAMPLE);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "secrets.superuser_password",
            "secrets.replication_password",
            "secrets.app_password",
            "secrets.etcd_password"
        ],
        "{errs}"
    );
    for e in errs.iter() {
        assert!(
            e.message.contains("placeholder") && e.message.contains("openssl rand"),
            "{e}"
        );
    }
    // One forgotten among four filled in: that one alone.
    let one_left = example_filled_in().replacen("Fz3Lp8Ym1QkB7wGec3", SECRET_PLACEHOLDER, 1);
    assert_eq!(only(&one_left).path, "secrets.app_password");
    for published in [
        "Gwurb7UjkSYxqN3kjLcWjLfFnJyRIxpq",
        "Q2vT8nLr5XkWj3Hd7YpB4mZs9CfA6gUe",
    ] {
        let e = only(&GOOD.replace(GOOD_SECRETS[0], published));
        assert_eq!(e.path, "secrets.superuser_password");
        assert!(e.message.contains("published"), "{e}");
        assert!(!e.to_string().contains(published), "shows the secret: {e}");
    }
}

#[test]
fn secrets_built_from_common_words_or_repeats_are_refused() {
    let weak = [
        ("passwordpassword", "well-known"),
        ("PasswordPASSWORD", "well-known"),
        ("admin_admin_admin", "well-known"),
        ("Password2024!", "well-known"),
        ("p@ssw0rdp@ssw0rd", "well-known"),
        ("2024-03-15-admin", "well-known"),
        ("letmein-letmein", "well-known"),
        ("trustno1trustno1", "well-known"),
        ("Xk9!Xk9!Xk9!Xk9!", "sequence of 4 characters repeated"),
        ("abcdabcdabcdab", "sequence of 4 characters repeated"),
        ("qwer1234qwer1234", "sequence of 8 characters repeated"),
        ("zq1zq1zq1zq1zq1", "sequence of 3 characters repeated"),
    ];
    for (secret, expect) in weak {
        let e = only(&GOOD.replace(GOOD_SECRETS[0], secret));
        assert_eq!(e.path, "secrets.superuser_password", "{secret}");
        assert_eq!(pos(&e), (Some(15), Some(23)), "{secret}: {e}");
        assert!(e.message.contains(expect), "{secret}: {e}");
        assert!(!e.to_string().contains(secret), "shows the secret: {e}");
    }
}

/// What `openssl rand -base64 N` and `-hex N` print, from a fixed-seed
/// generator: a real generator's output must keep passing.
#[test]
fn generated_secrets_pass() {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut refused = Vec::new();
    for _ in 0..2000 {
        let b64: String = (0..24)
            .map(|_| B64[(next() >> 58) as usize] as char)
            .collect();
        let hex: String = (0..32)
            .map(|_| char::from_digit((next() >> 60) as u32, 16).unwrap())
            .collect();
        for secret in [b64, hex] {
            if let Some(problem) = super::validate::secret_problem(&secret) {
                refused.push(format!("{secret}: {problem}"));
            }
        }
    }
    assert!(refused.is_empty(), "{}", refused.join("\n"));
    // The project's own generators (the demonstration script, the tests).
    for secret in ["demo-Su-q2Vh8sLk0PzT3nWc", "Pgb0x-su-3fa2c81d9be04477-Zq"] {
        assert!(
            super::validate::secret_problem(secret).is_none(),
            "{secret}"
        );
    }
}

#[test]
fn watchdog_off_with_asynchronous_replication_is_a_warning() {
    let risky = with("ha:\n  watchdog: off\n  synchronous_mode: off\n");
    let (_, warnings) = check(&risky, "pgbox.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert_eq!(w.0.path, "ha.watchdog");
    assert_eq!(pos(&w.0), (Some(20), Some(13)), "{w}");
    let shown = w.to_string();
    assert!(
        shown.starts_with("pgbox.yaml:20:13: warning: ha.watchdog: is off"),
        "{shown}"
    );
    assert!(shown.contains("synchronous_mode: off (line 21)"), "{shown}");
    assert!(shown.contains("lost"), "{shown}");
    // The file is valid: parse accepts it as it is.
    assert!(parse(&risky, "pgbox.yaml").is_ok());

    for safe in [
        with("ha:\n  watchdog: off\n"),
        with("ha:\n  watchdog: off\n  synchronous_mode: strict\n"),
        with("ha:\n  synchronous_mode: off\n"),
        with("ha:\n  watchdog: required\n  synchronous_mode: off\n"),
        GOOD.to_string(),
        example_filled_in(),
    ] {
        let (_, warnings) = check(&safe, "pgbox.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert!(warnings.is_empty(), "{safe}\n{warnings:?}");
    }
}

/// GOOD with coord as the backup node, its certificate (from `tls init`'s
/// code), and `settings` (lines indented two spaces) in `backup:`.
fn with_backup_section(settings: &str) -> String {
    let good = GOOD.replace("roles: [etcd, router]", "roles: [etcd, router, backup]");
    let addresses: Vec<std::net::IpAddr> = ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let made = crate::ctl::tls_init::generate_with_backup("main", &[], &[], &addresses).unwrap();
    format!("{good}{}{settings}", made.backup_yaml().unwrap())
}

#[test]
fn a_backup_section_with_its_node_passes_with_the_defaults() {
    let cfg = parse(&with_backup_section(""), "pgbox.yaml").unwrap_or_else(|e| panic!("{e}"));
    let b = cfg.backup.as_ref().unwrap();
    assert_eq!(b.full_every, std::time::Duration::from_secs(7 * 86_400));
    assert_eq!(b.incremental_every, std::time::Duration::from_secs(86_400));
    assert_eq!(b.retention_full, 2);
    assert_eq!(b.archive_timeout, std::time::Duration::from_secs(60));
    assert_eq!(b.path, std::path::PathBuf::from("/var/lib/pgbox/backup"));
    assert_eq!(cfg.ports.backup, 8432);
}

#[test]
fn the_backup_role_and_section_go_together() {
    // The role without the section: nothing to hold.
    let text = GOOD.replace("roles: [etcd, router]", "roles: [etcd, router, backup]");
    let e = only(&text);
    assert_eq!(e.path, "nodes[2].roles[2]", "{e}");
    assert!(e.message.contains("no `backup:` section"), "{e}");

    // The section without the role: no repository.
    let section =
        with_backup_section("").replace("roles: [etcd, router, backup]", "roles: [etcd, router]");
    let errs = errors(&section);
    assert!(
        errs.0
            .iter()
            .any(|e| e.path == "backup" && e.message.contains("no node has the role `backup`")),
        "{errs}"
    );

    // Two holders.
    let two = with_backup_section("").replacen(
        "roles: [postgres, etcd]",
        "roles: [postgres, etcd, backup]",
        1,
    );
    let errs = errors(&two);
    assert!(
        errs.0.iter().any(|e| e.path == "backup"
            && e.message
                .contains("2 nodes have the role `backup` (db1, coord)")),
        "{errs}"
    );
}

#[test]
fn backup_settings_are_checked() {
    let cases = [
        (
            "  retention_full: 0\n",
            "backup.retention_full",
            "at least 1",
        ),
        ("  full_every: 10m\n", "backup.full_every", "at least 1h"),
        (
            "  incremental_every: 10s\n",
            "backup.incremental_every",
            "at least 1m",
        ),
        (
            "  full_every: 1d\n  incremental_every: 2d\n",
            "backup.incremental_every",
            "longer than backup.full_every",
        ),
        (
            "  archive_timeout: 500ms\n",
            "backup.archive_timeout",
            "at least 1s",
        ),
        (
            "  archive_timeout: 2h\n",
            "backup.archive_timeout",
            "at most 1h",
        ),
        ("  path: backups\n", "backup.path", "an absolute path"),
        ("  path: /srv/my backups\n", "backup.path", "without spaces"),
    ];
    for (settings, path, says) in cases {
        let e = only(&with_backup_section(settings));
        assert_eq!(e.path, path, "{settings}: {e}");
        assert!(e.message.contains(says), "{settings}: {e}");
        assert!(e.line.is_some(), "{settings}: no position: {e}");
    }
}

#[test]
fn the_backup_certificate_must_name_every_postgres_node_and_the_backup_node() {
    let good = GOOD.replace("roles: [etcd, router]", "roles: [etcd, router, backup]");
    // Made for the PostgreSQL nodes only: coord's pgBackRest server would
    // present a certificate that does not name it.
    let addresses: Vec<std::net::IpAddr> = ["10.0.0.11", "10.0.0.12"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let made = crate::ctl::tls_init::generate_with_backup("main", &[], &[], &addresses).unwrap();
    let e = only(&format!("{good}{}", made.backup_yaml().unwrap()));
    assert_eq!(e.path, "backup.tls.certificate", "{e}");
    assert!(e.message.contains("coord"), "{e}");
}

#[test]
fn archiving_settings_belong_to_the_backup_section() {
    for name in ["archive_command", "archive_timeout", "archive_library"] {
        let e = only(&with(&format!("postgres:\n  parameters:\n    {name}: x\n")));
        assert!(e.message.contains("pgBackRest"), "{name}: {e}");
    }
}

#[test]
fn a_repository_beside_the_data_is_refused() {
    let text = with_backup_section("")
        .replace("roles: [etcd, router, backup]", "roles: [etcd, router]")
        .replacen(
            "roles: [postgres, etcd]",
            "roles: [postgres, etcd, backup]",
            1,
        );
    let e = only(&text);
    assert_eq!(e.path, "nodes[0].roles", "{e}");
    assert!(
        e.message.contains("losing that box would lose the backups"),
        "{e}"
    );
}

#[test]
fn the_repository_path_and_the_stanza_name_are_checked() {
    for (path, says) in [
        ("/srv//bk", "not a plain path"),
        ("/srv/bk/", "not a plain path"),
        ("/srv/../etc", "not a plain path"),
        ("/var/lib/pgbox", "system directory"),
        ("/", "system directory"),
    ] {
        let e = only(&with_backup_section(&format!("  path: {path}\n")));
        assert_eq!(e.path, "backup.path", "{path}: {e}");
        assert!(e.message.contains(says), "{path}: {e}");
    }
    let global = with_backup_section("").replacen("name: main", "name: global", 1);
    let errs = errors(&global);
    assert!(
        errs.0
            .iter()
            .any(|e| e.path == "cluster.name" && e.message.contains("pgBackRest reserves it")),
        "{errs}"
    );
}

#[test]
fn a_restore_target_is_latest_or_a_time_with_its_offset() {
    let cfg = parse(&with_backup_section("  restore: latest\n"), "pgbox.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.backup.unwrap().restore, Some(RestoreTarget::Latest));
    for good in [
        "2026-12-03 17:04:15+00",
        "2026-12-03 17:04:15.123+01:00",
        "2026-12-03 17:04:15.123456-0530",
    ] {
        let text = with_backup_section(&format!("  restore: {{time: \"{good}\"}}\n"));
        let cfg = parse(&text, "pgbox.yaml").unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(
            cfg.backup.unwrap().restore,
            Some(RestoreTarget::Time(good.into()))
        );
    }
    for (bad, says) in [
        ("2026-12-03 17:04:15", "no UTC offset"),
        ("2026-12-03T17:04:15+00", "is not a time like"),
        ("2026-13-03 17:04:15+00", "not a valid date"),
        ("2026-12-03 17:04:15.1234567+00", "is not a time like"),
        ("2026-02-31 17:04:15+00", "not a valid date"),
        ("1969-12-31 23:59:59+00", "not a valid date"),
        ("2026-12-03 17:04:15+15", "outside -12:00 to +14:00"),
        ("2026-12-03 17:04:15-13", "outside -12:00 to +14:00"),
        ("2026-12-03 17:04:15+05:99", "outside -12:00 to +14:00"),
        ("yesterday", "is not a time like"),
    ] {
        let e = only(&with_backup_section(&format!(
            "  restore: {{time: \"{bad}\"}}\n"
        )));
        assert_eq!(e.path, "backup.restore.time", "{bad}: {e}");
        assert!(e.message.contains(says), "{bad}: {e}");
    }
    let e = only(&with_backup_section("  restore: sometime\n"));
    assert!(e.message.contains("latest"), "{e}");
}
