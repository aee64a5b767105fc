use std::path::PathBuf;
use std::process::Command;

use super::*;
use crate::firstboot::tests::sample;

const EXPECTED: &str = r#"# Router of pgbox cluster "main".
# Written at every boot by `pgboxd firstboot` from /var/lib/pgbox/pgbox.yaml; edits here are lost.

global
    # The router needs no privilege once its ports are bound (the package
    # creates this user).
    user haproxy
    group haproxy
    # Every server starts stopped (see the file); checks bring them up.
    server-state-file /run/pgbox/haproxy-servers.state
    # After a reload the old process serves its open sessions on: bound
    # that, so that every session soon runs under the current settings.
    hard-stop-after 10s

defaults
    mode tcp
    load-server-state-from-file global
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    # pgboxd answers from memory; an answer slower than this means the box
    # is in trouble.
    timeout check 2s
    # rise 1: pgboxd says 200 on /primary only while it holds the leader key
    # and runs as primary, so one answer is proof, and a new primary gets
    # traffic within about a second of its promotion.
    # fall 2: one lost or late check must not cut a healthy primary's
    # sessions; a real change is confirmed 500ms (fastinter) later.
    # on-marked-down shutdown-sessions: clients of a node that stopped being
    # primary (or replica) are cut, so they reconnect to the right one
    # rather than staying on a read-only server.
    default-server inter 1s fastinter 500ms downinter 1s rise 1 fall 2 on-marked-down shutdown-sessions

listen primary
    bind 0.0.0.0:5000
    option httpchk
    http-check send meth GET uri /primary
    http-check expect status 200
    server db1 10.0.0.11:5432 check port 8008
    server db2 10.0.0.12:5432 check port 8008

listen replicas
    bind 0.0.0.0:5001
    balance roundrobin
    option httpchk
    http-check send meth GET uri /replica
    http-check expect status 200
    server db1 10.0.0.11:5432 check port 8008
    server db2 10.0.0.12:5432 check port 8008
    server primary_db1 10.0.0.11:5432 backup track primary/db1
    server primary_db2 10.0.0.12:5432 backup track primary/db2

listen stats
    mode http
    bind 0.0.0.0:7000
    stats enable
    stats uri /
    stats refresh 5s
"#;

#[test]
fn router_configuration() {
    assert_eq!(
        config(
            &sample(),
            "/run/pgbox/haproxy-servers.state",
            "/run/pgbox/api-ca.pem"
        ),
        EXPECTED
    );
}

#[test]
fn every_server_starts_stopped() {
    let state = server_state(&sample());
    let lines: Vec<&str> = state.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "1",
            "1 primary 1 db1 10.0.0.11 0 0 1 1 0 1 0 0 0 0 0 0 - 5432 -",
            "1 primary 2 db2 10.0.0.12 0 0 1 1 0 1 0 0 0 0 0 0 - 5432 -",
            "2 replicas 1 db1 10.0.0.11 0 0 1 1 0 1 0 0 0 0 0 0 - 5432 -",
            "2 replicas 2 db2 10.0.0.12 0 0 1 1 0 1 0 0 0 0 0 0 - 5432 -",
            "2 replicas 3 primary_db1 10.0.0.11 0 0 1 1 0 1 0 0 0 0 0 0 - 5432 -",
            "2 replicas 4 primary_db2 10.0.0.12 0 0 1 1 0 1 0 0 0 0 0 0 - 5432 -",
        ]
    );
    // HAProxy refuses a line with fewer than 20 fields, and then the file.
    for line in &lines[1..] {
        assert_eq!(line.split(' ').count(), 20, "{line}");
    }
}

#[test]
fn ports_and_ipv6_addresses() {
    let mut cfg = sample();
    cfg.ports.router_rw = 6000;
    cfg.ports.postgres = 6432;
    cfg.ports.api = 9008;
    cfg.nodes[1].address = "fd00::12".parse().unwrap();
    let text = config(&cfg, "/x.state", "/ca.pem");
    assert!(text.contains("    bind :::6000 v4v6\n"), "{text}");
    assert!(
        text.contains("    server db2 [fd00::12]:6432 check port 9008\n"),
        "{text}"
    );
    assert!(
        server_state(&cfg).contains("1 primary 2 db2 fd00::12 0 0 1 1 0 1 0 0 0 0 0 0 - 6432 -\n")
    );
}

fn with_api_tls(mut cfg: Config) -> Config {
    let p = crate::tls::testing::pki(&["10.0.0.11", "10.0.0.12"]);
    cfg.api.tls = Some(crate::config::TlsPem {
        certificate: p.cert_pem,
        private_key: p.key_pem,
        ca: p.ca_pem,
    });
    cfg
}

#[test]
fn https_api_checks_verify_the_certificate() {
    let cfg = with_api_tls(sample());
    let text = config(&cfg, "/x.state", "/run/pgbox/api-ca.pem");
    for name in ["db1", "db2"] {
        let server = text
            .lines()
            .find(|l| l.starts_with(&format!("    server {name} ")))
            .unwrap();
        assert!(
            server.ends_with(
                " check port 8008 check-ssl verify required ca-file /run/pgbox/api-ca.pem"
            ),
            "{server}"
        );
    }
    assert_eq!(
        text.matches("check-ssl verify required").count(),
        4,
        "{text}"
    );
    assert!(api_ca(&cfg)
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(api_ca(&sample()).is_none());
    assert!(!config(&sample(), "/x.state", "/ca.pem").contains("ssl"));
}

fn haproxy_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("haproxy"));
    on_path
        .chain([PathBuf::from("/usr/sbin/haproxy")])
        .find(|p| p.is_file())
}

/// `haproxy -c` on what a box renders. The check reads the state file too,
/// and logs each server it takes down; those lines prove the servers start
/// DOWN, and any other warning fails the test.
#[test]
fn haproxy_accepts_the_rendered_files_and_starts_every_server_down() {
    let Some(haproxy) = haproxy_binary() else {
        eprintln!("SKIPPED: no haproxy binary (scripts/install-test-deps.sh installs it)");
        return;
    };
    let mut ipv6 = sample();
    ipv6.nodes[1].address = "fd00::12".parse().unwrap();
    let tls = with_api_tls(sample());
    for (what, cfg) in [("IPv4", sample()), ("IPv6", ipv6), ("HTTPS API", tls)] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("servers.state");
        let cfg_file = dir.path().join("haproxy.cfg");
        let ca = dir.path().join("api-ca.pem");
        std::fs::write(&state, server_state(&cfg)).unwrap();
        if let Some(pem) = api_ca(&cfg) {
            std::fs::write(&ca, pem).unwrap();
        }
        let text = config(&cfg, state.to_str().unwrap(), ca.to_str().unwrap());
        std::fs::write(&cfg_file, text).unwrap();
        let out = Command::new(&haproxy)
            .arg("-c")
            .arg("-f")
            .arg(&cfg_file)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{what}: haproxy -c refused the rendered configuration:\n{text}"
        );

        let mut down: Vec<String> = Vec::new();
        for line in text
            .lines()
            .filter(|l| l.contains("WARNING") || l.contains("ALERT"))
        {
            let server = line
                .split_once("Server ")
                .and_then(|(_, rest)| {
                    rest.split_once(" is DOWN, changed from server-state")
                        .or(rest.split_once(" is DOWN via primary/"))
                })
                .map(|(server, _)| server.to_string());
            match server {
                Some(s) => down.push(s),
                None => panic!("{what}: unexpected warning from haproxy -c: {line}\n{text}"),
            }
        }
        down.sort();
        assert_eq!(
            down,
            [
                "primary/db1",
                "primary/db2",
                "replicas/db1",
                "replicas/db2",
                "replicas/primary_db1",
                "replicas/primary_db2"
            ],
            "{what}: every server must start DOWN:\n{text}"
        );
    }
}
