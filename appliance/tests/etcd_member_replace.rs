//! A box flashed again comes back with an empty etcd data directory on a
//! cluster that still lists it: `pgboxd etcd-join`'s plan swaps the stale
//! member for a new one, the member rejoins with its data, and the swap is
//! refused while the others lack a quorum without it. Real etcd members on
//! loopback addresses, with authentication on as pgboxd sets it up.

mod support;

use std::time::Duration;

use etcd_client::ConnectOptions;
use pgbox::dcs::membership::{plan, JoinPlan};

use support::etcd::EtcdCluster;
use support::node::{cluster_yaml, ClusterOptions, Secrets};
use support::{Subnet, TestDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflashed_etcd_member_rejoins_and_never_without_a_quorum() {
    let dir = TestDir::new("etcd_member_replace");
    let subnet = Subnet::allocate();
    let etcd_nodes: Vec<(String, std::net::IpAddr)> = (1..=3)
        .map(|i| (format!("e{i}"), subnet.ip(10 + i)))
        .collect();
    let pg_nodes = vec![("db1".to_string(), subnet.ip(21))];
    let secrets = Secrets::fresh();
    let name = format!("t{}r{}", subnet.n(), std::process::id());
    let yaml = cluster_yaml(
        &name,
        &etcd_nodes,
        &pg_nodes,
        None,
        &secrets,
        &ClusterOptions::default(),
    );
    let cfg = pgbox::config::parse(&yaml, "pgbox.yaml").expect("a valid pgbox.yaml");
    let members: Vec<(&str, std::net::IpAddr)> =
        etcd_nodes.iter().map(|(n, ip)| (n.as_str(), *ip)).collect();
    let mut etcd = EtcdCluster::start(&dir, &members).await;

    // Authentication on, as the first pgboxd turns it on.
    let access = pgbox::dcs::access::Access::from_config(&cfg);
    let mut client = access
        .connect(&etcd.endpoints()[0], ConnectOptions::new())
        .await
        .expect("pgboxd's connection sets up authentication");
    etcd.set_root_password(&secrets.etcd);
    let key = format!("{}probe", cfg.key_prefix());
    client
        .put(key.as_str(), "written before the disk was lost", None)
        .await
        .unwrap();

    let e3 = cfg.node_named("e3").unwrap().clone();
    let data = etcd.data_dir("e3");
    assert_eq!(plan(&cfg, &e3, &data).await.unwrap(), JoinPlan::FromData);

    // e3's disk is replaced: same name and address, no data.
    etcd.kill_member("e3");
    std::fs::remove_dir_all(&data).unwrap();
    let joined = plan(&cfg, &e3, &data)
        .await
        .expect("a plan for the replaced member");
    let JoinPlan::Join {
        initial_cluster,
        replaced,
    } = &joined
    else {
        panic!("expected a join, got {joined:?}");
    };
    let old_id = replaced.expect("the stale entry was removed");
    for n in ["e1", "e2", "e3"] {
        assert!(
            initial_cluster.contains(&format!("{n}=")),
            "{initial_cluster}"
        );
    }
    assert!(joined
        .env_file()
        .unwrap()
        .contains("ETCD_INITIAL_CLUSTER_STATE=existing"));

    etcd.start_member_joining("e3", initial_cluster);
    etcd.wait_healthy(Duration::from_secs(60)).await;
    // The new member holds the cluster's data, and the old identity is gone.
    let e3_url = etcd
        .members()
        .iter()
        .find(|m| m.name == "e3")
        .unwrap()
        .client_url();
    let mut only_e3 = etcd.access().connect(&[e3_url]).await.unwrap();
    let got = only_e3.get(key.as_str(), None).await.unwrap();
    assert_eq!(
        got.kvs()[0].value_str().unwrap(),
        "written before the disk was lost"
    );
    let list = only_e3.member_list().await.unwrap();
    assert_eq!(list.members().len(), 3);
    assert!(list
        .members()
        .iter()
        .all(|m| !m.name().is_empty() && m.id() != old_id));
    assert_eq!(plan(&cfg, &e3, &data).await.unwrap(), JoinPlan::FromData);

    // Lost again, with e1 down too: e2 alone is no quorum of the other two,
    // so the swap is refused and nothing changes.
    etcd.kill_member("e1");
    etcd.kill_member("e3");
    std::fs::remove_dir_all(&data).unwrap();
    let refused = plan(&cfg, &e3, &data)
        .await
        .expect_err("no quorum without e3");
    let why = format!("{refused:#}");
    assert!(
        why.contains("short of the quorum of 2") || why.contains("is a quorum of them up"),
        "{why}"
    );
    etcd.start_member("e1");
    etcd.wait_healthy(Duration::from_secs(60)).await;
    let e2_url = etcd
        .members()
        .iter()
        .find(|m| m.name == "e2")
        .unwrap()
        .client_url();
    let mut c = etcd.access().connect(&[e2_url]).await.unwrap();
    let list = c.member_list().await.unwrap();
    assert_eq!(list.members().len(), 3, "the refusal removed nothing");
}
