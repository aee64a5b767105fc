//! A replaced etcd box rejoins the cluster by itself.
//!
//! A box flashed again (a new disk, the same first-boot file) comes back
//! with the same member name and peer address but an empty data directory,
//! on a cluster that still lists it as a member that has run. etcd does not
//! support that member starting again as if the cluster were new: it would
//! reuse the old member's identity without its log. So before etcd starts
//! (`pgboxd etcd-join`, run by pgbox-etcd.service), a member without data
//! asks the others: if the cluster lists it as a member that has run, the
//! stale entry is removed and this box is added as a new member, and etcd
//! starts with `ETCD_INITIAL_CLUSTER_STATE=existing` and the cluster's
//! current membership. It is refused, with the numbers, when removing the
//! stale entry would leave the rest without a quorum.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use etcd_client::ConnectOptions;

use super::access::Access;
use crate::config::{Config, Node, Role};

/// How etcd on this box is to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinPlan {
    /// Its data directory holds a member: it restarts from that.
    FromData,
    /// No other member answers (a new cluster coming up, or the others are
    /// down too): start as the first-boot file says.
    AsConfigured,
    /// Join the running cluster as a member: ETCD_INITIAL_CLUSTER is this,
    /// the state `existing`. `replaced`: the stale member entry removed.
    Join {
        initial_cluster: String,
        replaced: Option<u64>,
    },
}

impl JoinPlan {
    /// The environment pgbox-etcd.service adds for etcd (empty: none).
    pub fn env_file(&self) -> Option<String> {
        match self {
            JoinPlan::Join {
                initial_cluster, ..
            } => Some(format!(
                "# Written by `pgboxd etcd-join` before etcd started: this member joins the running cluster.\n\
                 ETCD_INITIAL_CLUSTER={initial_cluster}\n\
                 ETCD_INITIAL_CLUSTER_STATE=existing\n"
            )),
            _ => None,
        }
    }
}

/// Without `require_leader`: a member answers its own view of the
/// membership even while the cluster has no quorum (a new cluster whose
/// members are still coming up), and that is what tells the cases apart.
fn options() -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5))
}

/// Add `peer` as a member. Right after a removal etcd answers "unhealthy
/// cluster" for a few seconds (it adds a voting member only once every
/// remaining member has been connected for a while): try again meanwhile.
async fn add(client: &mut etcd_client::Client, peer: &str, name: &str) -> Result<()> {
    let mut tries = 0;
    loop {
        match client.member_add([peer.to_string()], None).await {
            Ok(_) => return Ok(()),
            Err(e) if tries < 30 && e.to_string().contains("unhealthy cluster") => {
                tries += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("adding {name} as a new etcd member ({peer})"))
            }
        }
    }
}

/// Some other etcd member accepts connections on its client port.
async fn any_listening(cfg: &Config, me: &Node) -> bool {
    for n in cfg.nodes_with(Role::Etcd).filter(|n| n.name != me.name) {
        let addr = std::net::SocketAddr::new(n.address, cfg.ports.etcd_client);
        let probe = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), probe).await {
            return true;
        }
    }
    false
}

async fn has_leader(client: &mut etcd_client::Client) -> bool {
    client.status().await.is_ok_and(|s| s.leader() != 0)
}

/// Decide (and carry out the membership change of) how etcd member `me`
/// starts, its data directory being `data_dir`.
pub async fn plan(cfg: &Config, me: &Node, data_dir: &Path) -> Result<JoinPlan> {
    if data_dir.join("member").exists() {
        return Ok(JoinPlan::FromData);
    }
    let my_peer = cfg.etcd_url(me.address, cfg.ports.etcd_peer);
    let others: Vec<String> = cfg
        .nodes_with(Role::Etcd)
        .filter(|n| n.name != me.name)
        .map(|n| cfg.etcd_url(n.address, cfg.ports.etcd_client))
        .collect();
    let access = Access::from_config(cfg);
    // A few tries: right after a member is lost the others may be electing
    // a leader ("leader changed"), which takes a second or two.
    let mut connected = access.connect_as_root(&others, options()).await;
    for _ in 0..4 {
        if connected.is_ok() || !any_listening(cfg, me).await {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        connected = access.connect_as_root(&others, options()).await;
    }
    let mut client = match connected {
        Ok(c) => c,
        // Nobody there: a new cluster coming up (or every member down).
        Err(_) if !any_listening(cfg, me).await => return Ok(JoinPlan::AsConfigured),
        // Someone is there but cannot log me in: with authentication on,
        // a login needs a quorum. Starting as a new member now would reuse
        // the old identity without its data.
        Err(e) => {
            return Err(e.context(
                "the other etcd members run but cannot let me in (is a quorum of them up?); not starting with an empty data directory until they can",
            ))
        }
    };
    let members = client
        .member_list()
        .await
        .context("reading the etcd membership from the other members (is a quorum of them up?)")?
        .members()
        .to_vec();
    let mine = members.iter().find(|m| m.peer_urls().contains(&my_peer));
    let mut replaced = None;
    match mine {
        // Listed, never started, and nobody leads: a new cluster still
        // coming up, which needs this member to form. It starts as the file
        // says, as every member of a new cluster does.
        Some(m) if m.name().is_empty() && !has_leader(&mut client).await => {
            return Ok(JoinPlan::AsConfigured);
        }
        // Listed, never started, in a running cluster: a new cluster whose
        // others formed without it, or an earlier attempt of this very
        // join. It joins as listed.
        Some(m) if m.name().is_empty() => {}
        Some(stale) => {
            // Has run, and its data is gone: the entry must go first.
            let rest = members.len() - 1;
            let quorum = rest / 2 + 1;
            let mut healthy = 0;
            for m in members.iter().filter(|m| m.id() != stale.id()) {
                for url in m.client_urls() {
                    let up = match access
                        .connect_as_root(std::slice::from_ref(url), options())
                        .await
                    {
                        Ok(mut c) => c.status().await.is_ok(),
                        Err(_) => false,
                    };
                    if up {
                        healthy += 1;
                        break;
                    }
                }
            }
            if healthy < quorum {
                bail!(
                    "not replacing etcd member {} ({:x}): without it {healthy} of the other {rest} members answer, short of the quorum of {quorum}; start the other members first",
                    me.name,
                    stale.id()
                );
            }
            client.member_remove(stale.id()).await.with_context(|| {
                format!(
                    "removing the stale etcd member {} ({:x})",
                    me.name,
                    stale.id()
                )
            })?;
            tracing::info!(member = %me.name, id = %format!("{:x}", stale.id()), "removed my stale etcd member entry (this box's data directory is empty)");
            replaced = Some(stale.id());
            add(&mut client, &my_peer, &me.name).await?;
        }
        None => add(&mut client, &my_peer, &me.name).await?,
    }
    // The membership as it stands now, this box named (a member that has
    // never started has no name yet).
    let now = client
        .member_list()
        .await
        .context("reading the etcd membership after the change")?;
    let initial_cluster = now
        .members()
        .iter()
        .flat_map(|m| {
            let name = if m.peer_urls().contains(&my_peer) {
                me.name.clone()
            } else {
                m.name().to_string()
            };
            m.peer_urls()
                .iter()
                .map(move |u| format!("{name}={u}"))
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join(",");
    Ok(JoinPlan::Join {
        initial_cluster,
        replaced,
    })
}
