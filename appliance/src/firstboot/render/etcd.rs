//! `/run/pgbox/etcd.env`: the etcd member's settings, as the environment
//! variables etcd reads for its flags (the unit's `EnvironmentFile=`).

use std::fmt::Write;
use std::time::Duration;

use super::super::paths;
use super::header;
use crate::config::{Config, Node, Role};

pub fn render(cfg: &Config, node: &Node) -> String {
    let ports = &cfg.ports;
    let client = cfg.etcd_url(node.address, ports.etcd_client);
    let peer = cfg.etcd_url(node.address, ports.etcd_peer);
    let initial_cluster: Vec<String> = cfg
        .nodes_with(Role::Etcd)
        .map(|n| format!("{}={}", n.name, cfg.etcd_url(n.address, ports.etcd_peer)))
        .collect();

    let mut s = header(
        "#",
        &format!(
            "etcd member {} of pgbox cluster {:?}.",
            node.name, cfg.cluster.name
        ),
    );
    let mut var = |name: &str, value: &str| {
        let _ = writeln!(s, "{name}={value}");
    };
    var("ETCD_NAME", &node.name);
    var("ETCD_DATA_DIR", paths::ETCD_DATA_DIR);
    var("ETCD_LISTEN_CLIENT_URLS", &client);
    var("ETCD_ADVERTISE_CLIENT_URLS", &client);
    var("ETCD_LISTEN_PEER_URLS", &peer);
    var("ETCD_INITIAL_ADVERTISE_PEER_URLS", &peer);
    // The initial-cluster settings count only when the data directory is
    // empty (the very first start); later starts rejoin from the data.
    var("ETCD_INITIAL_CLUSTER", &initial_cluster.join(","));
    var("ETCD_INITIAL_CLUSTER_STATE", "new");
    // Distinct per cluster, so that members of two clusters set up side by
    // side can never join each other.
    var(
        "ETCD_INITIAL_CLUSTER_TOKEN",
        &format!("pgbox-{}", cfg.cluster.name),
    );
    var(
        "ETCD_HEARTBEAT_INTERVAL",
        &millis(cfg.etcd.heartbeat_interval),
    );
    var("ETCD_ELECTION_TIMEOUT", &millis(cfg.etcd.election_timeout));
    // A member cut off for a while must not force an election (and a pause
    // of every lease renewal) when it comes back.
    var("ETCD_PRE_VOTE", "true");
    // pgboxd rewrites its member key every loop; without compaction etcd
    // keeps every old revision until its space quota stops all writes.
    var("ETCD_AUTO_COMPACTION_MODE", "periodic");
    var("ETCD_AUTO_COMPACTION_RETENTION", "1h");
    // pgboxd logs in again whenever it moves to another member, which is
    // on the failover path; at etcd's default cost a login took 75 ms of
    // CPU here natively, over a second under emulation. The password is a
    // validated long secret whose plain text is on every box anyway, so
    // bcrypt's work factor buys nothing against guessing it.
    var("ETCD_BCRYPT_COST", "4");
    if cfg.etcd.tls.is_some() {
        // Mutual TLS on both ports: a client or a peer without a
        // certificate from the cluster's CA is turned away at the handshake.
        // One certificate serves as server and client certificate.
        let cred = |name: &str| format!("{}/{name}", paths::ETCD_CREDENTIALS);
        let (cert, key, ca) = (
            cred("pgbox-etcd.cert"),
            cred("pgbox-etcd.key"),
            cred("pgbox-etcd.ca"),
        );
        for prefix in ["ETCD_", "ETCD_PEER_"] {
            var(&format!("{prefix}CERT_FILE"), &cert);
            var(&format!("{prefix}KEY_FILE"), &key);
            var(&format!("{prefix}TRUSTED_CA_FILE"), &ca);
            var(&format!("{prefix}CLIENT_CERT_AUTH"), "true");
        }
    }
    s
}

/// etcd's certificate, private key and CA, as (path, text) for the
/// credential store; nothing when etcd runs without TLS.
pub fn credentials(cfg: &Config) -> Vec<(&'static str, String)> {
    match &cfg.etcd.tls {
        Some(t) => vec![
            (paths::ETCD_CRED_CERT, t.certificate.clone()),
            (paths::ETCD_CRED_KEY, t.private_key.clone()),
            (paths::ETCD_CRED_CA, t.ca.clone()),
        ],
        None => Vec::new(),
    }
}

/// etcd takes these durations as whole milliseconds (validation refuses
/// any other).
fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firstboot::tests::sample;

    #[test]
    fn member_settings() {
        let mut cfg = sample();
        cfg.etcd.heartbeat_interval = Duration::from_millis(500);
        cfg.etcd.election_timeout = Duration::from_secs(5);
        let text = render(&cfg, cfg.node_named("db2").unwrap());
        assert_eq!(
            text,
            "# etcd member db2 of pgbox cluster \"main\".\n\
             # Written at every boot by `pgboxd firstboot` from /var/lib/pgbox/pgbox.yaml; edits here are lost.\n\
             ETCD_NAME=db2\n\
             ETCD_DATA_DIR=/var/lib/pgbox/etcd\n\
             ETCD_LISTEN_CLIENT_URLS=http://10.0.0.12:2379\n\
             ETCD_ADVERTISE_CLIENT_URLS=http://10.0.0.12:2379\n\
             ETCD_LISTEN_PEER_URLS=http://10.0.0.12:2380\n\
             ETCD_INITIAL_ADVERTISE_PEER_URLS=http://10.0.0.12:2380\n\
             ETCD_INITIAL_CLUSTER=db1=http://10.0.0.11:2380,db2=http://10.0.0.12:2380,coord=http://10.0.0.13:2380\n\
             ETCD_INITIAL_CLUSTER_STATE=new\n\
             ETCD_INITIAL_CLUSTER_TOKEN=pgbox-main\n\
             ETCD_HEARTBEAT_INTERVAL=500\n\
             ETCD_ELECTION_TIMEOUT=5000\n\
             ETCD_PRE_VOTE=true\n\
             ETCD_AUTO_COMPACTION_MODE=periodic\n\
             ETCD_AUTO_COMPACTION_RETENTION=1h\n\
             ETCD_BCRYPT_COST=4\n"
        );
    }

    #[test]
    fn ports_from_the_file_and_ipv6_brackets() {
        let mut cfg = sample();
        cfg.ports.etcd_client = 12379;
        cfg.ports.etcd_peer = 12380;
        cfg.nodes[0].address = "fd00::11".parse().unwrap();
        let text = render(&cfg, &cfg.nodes[0]);
        assert!(
            text.contains("ETCD_LISTEN_CLIENT_URLS=http://[fd00::11]:12379\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "ETCD_INITIAL_CLUSTER=db1=http://[fd00::11]:12380,db2=http://10.0.0.12:12380,"
            ),
            "{text}"
        );
        assert!(
            text.contains("ETCD_HEARTBEAT_INTERVAL=250\nETCD_ELECTION_TIMEOUT=2500\n"),
            "{text}"
        );
    }

    #[test]
    fn tls_turns_every_url_to_https_and_points_etcd_at_its_credentials() {
        let mut cfg = sample();
        let p = crate::tls::testing::pki(&["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
        cfg.etcd.tls = Some(crate::config::TlsPem {
            certificate: p.cert_pem.clone(),
            private_key: p.key_pem.clone(),
            ca: p.ca_pem.clone(),
        });
        let text = render(&cfg, cfg.node_named("db2").unwrap());
        for line in [
            "ETCD_LISTEN_CLIENT_URLS=https://10.0.0.12:2379\n",
            "ETCD_INITIAL_ADVERTISE_PEER_URLS=https://10.0.0.12:2380\n",
            "ETCD_INITIAL_CLUSTER=db1=https://10.0.0.11:2380,db2=https://10.0.0.12:2380,coord=https://10.0.0.13:2380\n",
            "ETCD_CERT_FILE=/run/credentials/pgbox-etcd.service/pgbox-etcd.cert\n",
            "ETCD_KEY_FILE=/run/credentials/pgbox-etcd.service/pgbox-etcd.key\n",
            "ETCD_TRUSTED_CA_FILE=/run/credentials/pgbox-etcd.service/pgbox-etcd.ca\n",
            "ETCD_CLIENT_CERT_AUTH=true\n",
            "ETCD_PEER_CERT_FILE=/run/credentials/pgbox-etcd.service/pgbox-etcd.cert\n",
            "ETCD_PEER_KEY_FILE=/run/credentials/pgbox-etcd.service/pgbox-etcd.key\n",
            "ETCD_PEER_TRUSTED_CA_FILE=/run/credentials/pgbox-etcd.service/pgbox-etcd.ca\n",
            "ETCD_PEER_CLIENT_CERT_AUTH=true\n",
        ] {
            assert!(text.contains(line), "{line}in:\n{text}");
        }
        assert!(
            !text.contains("PRIVATE KEY"),
            "the key stays out of the env file"
        );
        let creds = credentials(&cfg);
        assert_eq!(creds.len(), 3);
        assert_eq!(creds[1], (paths::ETCD_CRED_KEY, p.key_pem.clone()));
        assert!(credentials(&sample()).is_empty());
    }
}
