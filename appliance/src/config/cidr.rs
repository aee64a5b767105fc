//! Networks written as `address/prefix` (CIDR) in the first-boot file, such
//! as `network.client_networks` and `api.allow_writes_from`.
//!
//! A small type of our own: pg_hba.conf and the API's allow-list need only
//! parsing, membership and printing, and the parse error must tell a person
//! exactly what is wrong with what they wrote.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of exactly one address (/32 or /128).
    pub fn host(addr: IpAddr) -> Cidr {
        Cidr {
            addr,
            prefix: max_prefix(addr),
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network. An IPv4 client seen through an IPv6
    /// socket (`::ffff:a.b.c.d`) counts as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// The network with the host bits cleared: what a written `10.0.0.5/24`
    /// most likely meant (`10.0.0.0/24`).
    pub fn network(&self) -> Cidr {
        let addr = match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask32(self.prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask128(self.prefix)).into()),
        };
        Cidr {
            addr,
            prefix: self.prefix,
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.1.0/24`, `fd00::/64`, or a single address (`10.0.1.7`, taken
    /// as `/32` or `/128`).
    fn from_str(text: &str) -> Result<Cidr, String> {
        let fix = "write a network like 10.0.1.0/24 or fd00:1::/64, or one address like 10.0.1.7";
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.trim().parse().map_err(|_| {
            format!("`{text}` is not a network: `{addr_text}` is not an address; {fix}")
        })?;
        let max = max_prefix(addr);
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(format!(
                        "`{text}` is not a network: the prefix length after '/' must be 0 to {max} for {}",
                        if addr.is_ipv4() { "IPv4" } else { "IPv6" }
                    ))
                }
            },
        };
        Ok(Cidr { addr, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(text: String) -> Result<Cidr, String> {
        text.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_print_and_contain() {
        let net: Cidr = "10.0.1.0/24".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.1.0/24");
        assert!(net.contains(ip("10.0.1.255")));
        assert!(!net.contains(ip("10.0.2.1")));
        assert!(
            net.contains(ip("::ffff:10.0.1.9")),
            "IPv4 seen through IPv6"
        );
        assert!(!net.contains(ip("fd00::1")));

        let one: Cidr = "10.0.1.7".parse().unwrap();
        assert_eq!(one, Cidr::host(ip("10.0.1.7")));
        assert_eq!(one.to_string(), "10.0.1.7/32");
        assert!(one.contains(ip("10.0.1.7")) && !one.contains(ip("10.0.1.8")));

        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("192.0.2.1")));

        let v6: Cidr = "fd00:1::/64".parse().unwrap();
        assert!(v6.contains(ip("fd00:1::abcd")));
        assert!(!v6.contains(ip("fd00:2::1")));
        assert_eq!(Cidr::host(ip("fd00::1")).to_string(), "fd00::1/128");
    }

    #[test]
    fn host_bits_are_visible() {
        let net: Cidr = "10.0.1.5/24".parse().unwrap();
        assert_eq!(net.network().to_string(), "10.0.1.0/24");
        let net: Cidr = "10.0.1.0/24".parse().unwrap();
        assert_eq!(net.network(), net);
    }

    #[test]
    fn bad_networks_say_what_is_wrong() {
        let e = "10.0.1.0/33".parse::<Cidr>().unwrap_err();
        assert!(e.contains("0 to 32 for IPv4"), "{e}");
        let e = "fd00::/129".parse::<Cidr>().unwrap_err();
        assert!(e.contains("0 to 128 for IPv6"), "{e}");
        let e = "10.0.1/24".parse::<Cidr>().unwrap_err();
        assert!(e.contains("`10.0.1` is not an address"), "{e}");
        let e = "10.0.1.0/x".parse::<Cidr>().unwrap_err();
        assert!(e.contains("prefix length"), "{e}");
        assert!("example.org/24".parse::<Cidr>().is_err());
    }
}
