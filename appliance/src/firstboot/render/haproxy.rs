//! The router: `/run/pgbox/haproxy.cfg` and the server-state file it loads.
//!
//! Read-write port: every PostgreSQL node, of which only the one whose
//! pgboxd answers `GET /primary` with 200 is up. Read-only port: the nodes
//! answering `GET /replica`, with the primary as backup when none does.
//!
//! Servers start DOWN. HAProxy otherwise starts every checked server UP and
//! sends it connections until its first check fails, so right after a start
//! or reload a write could reach a replica. HAProxy 3.1 added `init-state
//! down` for this (and only a 2026 fix made it apply at startup); Debian's
//! 3.0 (the image) and 2.6 know no such keyword. What both have is the
//! server-state file, read at every start and reload: it lists each server
//! as stopped, and a passing check brings the server up. HAProxy matches
//! the file's lines by backend and server name.

use std::fmt::Write;
use std::net::IpAddr;

use super::header;
use crate::config::{sock, Config, Node, Role};

/// Backend names; the state file and `track` refer to them.
const PRIMARY: &str = "primary";
const REPLICAS: &str = "replicas";

/// In the read-only backend each node appears twice: checked as a replica,
/// and as a backup that follows its state in the primary backend. Node
/// names cannot contain '_', so these names never clash with a node's.
fn as_primary(node: &Node) -> String {
    format!("primary_{}", node.name)
}

/// `state_file`: the server-state file; `api_ca_file`: the API's CA
/// certificate, used only when the API speaks HTTPS (`api.tls`).
pub fn config(cfg: &Config, state_file: &str, api_ca_file: &str) -> String {
    let p = &cfg.ports;
    // With HTTPS on the API the health checks verify its certificate against
    // the cluster's CA: a box that merely answers on 8008 cannot steer writes.
    let check_tls = match cfg.api.tls {
        Some(_) => format!(" check-ssl verify required ca-file {api_ca_file}"),
        None => String::new(),
    };
    let pg: Vec<&Node> = cfg.nodes_with(Role::Postgres).collect();
    // Clients may reach the router on any address of the box; with IPv6
    // node addresses, one IPv6 socket takes both families.
    let any = if cfg.nodes.iter().any(|n| n.address.is_ipv6()) {
        ":::"
    } else {
        "0.0.0.0:"
    };
    let v4v6 = if any == ":::" { " v4v6" } else { "" };

    let mut s = header(
        "#",
        &format!("Router of pgbox cluster {:?}.", cfg.cluster.name),
    );
    let _ = write!(
        s,
        "
global
    # The router needs no privilege once its ports are bound (the package
    # creates this user).
    user haproxy
    group haproxy
    # Every server starts stopped (see the file); checks bring them up.
    server-state-file {state_file}
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

listen {PRIMARY}
    bind {any}{rw}{v4v6}
    option httpchk
    http-check send meth GET uri /primary
    http-check expect status 200
",
        rw = p.router_rw,
    );
    for node in &pg {
        let _ = writeln!(
            s,
            "    server {} {} check port {}{check_tls}",
            node.name,
            sock(node.address, p.postgres),
            p.api
        );
    }

    let _ = write!(
        s,
        "
listen {REPLICAS}
    bind {any}{ro}{v4v6}
    balance roundrobin
    option httpchk
    http-check send meth GET uri /replica
    http-check expect status 200
",
        ro = p.router_ro,
    );
    for node in &pg {
        let _ = writeln!(
            s,
            "    server {} {} check port {}{check_tls}",
            node.name,
            sock(node.address, p.postgres),
            p.api
        );
    }
    // The primary serves reads only when no replica can; its state comes
    // from the primary backend's /primary check.
    for node in &pg {
        let _ = writeln!(
            s,
            "    server {} {} backup track {PRIMARY}/{}",
            as_primary(node),
            sock(node.address, p.postgres),
            node.name
        );
    }

    let _ = write!(
        s,
        "
listen stats
    mode http
    bind {any}{stats}{v4v6}
    stats enable
    stats uri /
    stats refresh 5s
",
        stats = p.router_stats,
    );
    s
}

/// The CA certificate(s) HAProxy verifies the API with, when there is one.
pub fn api_ca(cfg: &Config) -> Option<String> {
    cfg.api.tls.as_ref().map(|t| {
        let mut pem = t.ca.clone();
        if !pem.ends_with('\n') {
            pem.push('\n');
        }
        pem
    })
}

/// The server-state file (format version 1, as `show servers state`
/// prints it) with every server stopped.
pub fn server_state(cfg: &Config) -> String {
    let pg: Vec<&Node> = cfg.nodes_with(Role::Postgres).collect();
    let port = cfg.ports.postgres;
    let mut s = String::from("1\n");
    s.push_str(
        "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
         srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state \
         srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n",
    );
    let mut line = |be_id: usize, backend: &str, srv_id: usize, name: &str, addr: IpAddr| {
        // op_state 0: stopped. check_status 1: "initializing", what the stats
        // page shows until the first check. check_state 0 leaves the checks
        // as configured. The port must be right: HAProxy takes it from here.
        let _ = writeln!(
            s,
            "{be_id} {backend} {srv_id} {name} {addr} 0 0 1 1 0 1 0 0 0 0 0 0 - {port} -"
        );
    };
    for (i, node) in pg.iter().enumerate() {
        line(1, PRIMARY, i + 1, &node.name, node.address);
    }
    for (i, node) in pg.iter().enumerate() {
        line(2, REPLICAS, i + 1, &node.name, node.address);
    }
    for (i, node) in pg.iter().enumerate() {
        line(
            2,
            REPLICAS,
            pg.len() + i + 1,
            &as_primary(node),
            node.address,
        );
    }
    s
}

#[cfg(test)]
mod tests;
