//! `/run/systemd/network/10-pgbox.network`: the node's static address for
//! systemd-networkd. Files in /run/systemd/network are read like those in
//! /etc, and "10-" sorts ahead of anything the image ships, so this one
//! claims the NIC.

use std::fmt::Write;

/// The network of a box with no usable first-boot file (written instead of
/// the node's own): an address by DHCP on each Ethernet NIC, so that the
/// reason can be read from port 8008. "90-" sorts after anything rendered.
pub const FALLBACK: &str = "# Written by pgboxd firstboot: this box has no usable first-boot file.
# An address by DHCP, so that its API port (8008) can say why.

[Match]
Name=en* eth*
Type=ether

[Network]
DHCP=yes
";

use super::header;
use crate::config::{self, Config, Node};

pub fn render(cfg: &Config, node: &Node) -> String {
    let net = &cfg.network;
    let mut s = header(
        "#",
        &format!(
            "Network of node {} of pgbox cluster {:?}.",
            node.name, cfg.cluster.name
        ),
    );
    s.push_str("\n[Match]\n");
    match node.mac.as_deref().and_then(config::canonical_mac) {
        Some(mac) => {
            let _ = writeln!(s, "MACAddress={mac}");
        }
        None => {
            // Without a MAC the box's Ethernet NIC is taken by its name;
            // a box with several NICs needs `mac:` in the file, or every
            // one of them would get the address.
            s.push_str("Name=en* eth*\n");
        }
    }
    // Never a bridge, VLAN or bond that happens to share the name or MAC.
    s.push_str("Type=ether\n");

    s.push_str("\n[Network]\n");
    let _ = writeln!(s, "Address={}/{}", node.address, net.prefix_length);
    if let Some(gw) = net.gateway {
        let _ = writeln!(s, "Gateway={gw}");
    }
    for dns in &net.dns {
        let _ = writeln!(s, "DNS={dns}");
    }
    // The cluster's addresses are all static and known; a link-local or
    // router-advertised address would only give services a second address
    // to bind or be reached on.
    s.push_str("LinkLocalAddressing=no\nIPv6AcceptRA=no\n");
    // etcd, PostgreSQL and pgboxd listen on this address: it must stay while
    // the cable is out (a service restarting then could not bind it) and
    // while networkd itself restarts.
    s.push_str("ConfigureWithoutCarrier=yes\nIgnoreCarrierLoss=yes\nKeepConfiguration=static\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firstboot::tests::sample;

    #[test]
    fn static_address_on_the_ethernet_nic() {
        let cfg = sample();
        let text = render(&cfg, cfg.node_named("db1").unwrap());
        assert_eq!(
            text,
            "# Network of node db1 of pgbox cluster \"main\".\n\
             # Written at every boot by `pgboxd firstboot` from /var/lib/pgbox/pgbox.yaml; edits here are lost.\n\
             \n\
             [Match]\n\
             Name=en* eth*\n\
             Type=ether\n\
             \n\
             [Network]\n\
             Address=10.0.0.11/24\n\
             LinkLocalAddressing=no\n\
             IPv6AcceptRA=no\n\
             ConfigureWithoutCarrier=yes\n\
             IgnoreCarrierLoss=yes\n\
             KeepConfiguration=static\n"
        );
    }

    #[test]
    fn mac_gateway_and_name_servers() {
        let mut cfg = sample();
        cfg.network.prefix_length = 16;
        cfg.network.gateway = Some("10.0.0.1".parse().unwrap());
        cfg.network.dns = vec!["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()];
        cfg.nodes[1].mac = Some("52:54:00:AB:00:12".into());
        let text = render(&cfg, &cfg.nodes[1]);
        assert!(
            text.contains("[Match]\nMACAddress=52:54:00:ab:00:12\nType=ether\n"),
            "{text}"
        );
        assert!(!text.contains("Name="), "{text}");
        assert!(
            text.contains("Address=10.0.0.12/16\nGateway=10.0.0.1\nDNS=10.0.0.2\nDNS=10.0.0.3\n"),
            "{text}"
        );
    }

    #[test]
    fn ipv6_address() {
        let mut cfg = sample();
        cfg.nodes[0].address = "fd00::11".parse().unwrap();
        cfg.network.prefix_length = 64;
        let text = render(&cfg, &cfg.nodes[0]);
        assert!(text.contains("Address=fd00::11/64\n"), "{text}");
    }
}
