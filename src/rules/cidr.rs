//! IP prefixes (`203.0.113.0/24`, `2001:db8::/32`, or a bare address) for TRUSTED_PROXIES and
//! for the address checks of the knock path.

use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix` or a bare address (a host prefix). Host bits must be zero, since a
    /// typo such as `10.0.0.1/8` more likely means something other than `10.0.0.0/8`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("'{s}' has a prefix length outside 0..={max}")),
            },
        };
        let cidr = Cidr { addr, prefix };
        if cidr.network() != addr {
            return Err(format!(
                "'{s}' has host bits set; did you mean {}/{prefix}?",
                cidr.network()
            ));
        }
        Ok(cidr)
    }

    pub fn host(addr: IpAddr) -> Cidr {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Cidr { addr, prefix }
    }

    /// The /`prefix` network `addr` lies in (a prefix past the address's length is a host).
    pub fn of(addr: IpAddr, prefix: u8) -> Cidr {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.min(max);
        Cidr {
            addr: network(addr, prefix),
            prefix,
        }
    }

    /// Whether this is a single address (/32, /128).
    pub fn is_host(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    /// As a firewall rule holds it: a host as the bare address (what knockd always wrote), a
    /// wider block as `network/prefix`.
    pub fn rule_text(&self) -> String {
        match self.is_host() {
            true => self.addr.to_string(),
            false => self.to_string(),
        }
    }

    /// Whether every address of `other` lies inside this block.
    pub fn covers(&self, other: &Cidr) -> bool {
        self.prefix <= other.prefix && self.contains(other.addr)
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn network(&self) -> IpAddr {
        network(self.addr, self.prefix)
    }

    /// Whether `ip` lies inside; IPv4-mapped IPv6 addresses count as their IPv4 form.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let probe = Cidr {
            addr: ip,
            prefix: self.prefix,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && probe.network() == self.addr
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `ip` with all but its first `prefix` bits cleared (a prefix past the address's length keeps
/// it whole): the /24, /48 or /64 an address belongs to.
pub fn network(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32u32.saturating_sub(prefix.into()))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128u32.saturating_sub(prefix.into()))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`: dual-stack sockets report IPv4 peers that way, and the
/// firewall must see them as the IPv4 clients they are.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn blocks_of_an_address() {
        for (addr, prefix, want, text) in [
            ("203.0.113.77", 24, "203.0.113.0/24", "203.0.113.0/24"),
            ("203.0.113.77", 16, "203.0.0.0/16", "203.0.0.0/16"),
            ("203.0.113.77", 32, "203.0.113.77/32", "203.0.113.77"),
            ("203.0.113.77", 40, "203.0.113.77/32", "203.0.113.77"),
            (
                "2001:db8:1:2:3:4:5:6",
                64,
                "2001:db8:1:2::/64",
                "2001:db8:1:2::/64",
            ),
            (
                "2001:db8:1:2:3:4:5:6",
                48,
                "2001:db8:1::/48",
                "2001:db8:1::/48",
            ),
            ("2001:db8::6", 128, "2001:db8::6/128", "2001:db8::6"),
        ] {
            let b = Cidr::of(ip(addr), prefix);
            assert_eq!(b.to_string(), want, "{addr}/{prefix}");
            assert_eq!(b.rule_text(), text, "{addr}/{prefix}");
            assert!(b.contains(ip(addr)));
        }
        let wide = Cidr::of(ip("203.0.113.77"), 24);
        assert!(wide.covers(&Cidr::host(ip("203.0.113.5"))));
        assert!(wide.covers(&wide));
        assert!(!wide.covers(&Cidr::of(ip("203.0.113.77"), 16)));
        assert!(!Cidr::host(ip("203.0.113.77")).covers(&wide));
    }

    #[test]
    fn networks_of_an_address() {
        for (addr, prefix, want) in [
            ("203.0.113.77", 24, "203.0.113.0"),
            ("203.0.113.77", 0, "0.0.0.0"),
            ("203.0.113.77", 32, "203.0.113.77"),
            ("203.0.113.77", 40, "203.0.113.77"),
            ("2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::"),
            ("2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::"),
            ("2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6"),
            ("2001:db8:1:2:3:4:5:6", 200, "2001:db8:1:2:3:4:5:6"),
        ] {
            assert_eq!(network(ip(addr), prefix), ip(want), "{addr}/{prefix}");
        }
    }

    #[test]
    fn parses_blocks_and_bare_addresses() {
        assert_eq!(
            Cidr::parse("10.0.0.0/8").map(|c| c.to_string()),
            Ok("10.0.0.0/8".into())
        );
        assert_eq!(
            Cidr::parse(" 127.0.0.1 ").map(|c| c.to_string()),
            Ok("127.0.0.1/32".into())
        );
        assert_eq!(
            Cidr::parse("::1").map(|c| c.to_string()),
            Ok("::1/128".into())
        );
        assert_eq!(Cidr::parse("0.0.0.0/0").map(|c| c.prefix()), Ok(0));
        assert!(Cidr::parse("10.0.0.1/8").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.0/+8").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
        assert!(Cidr::parse("fe80::/129").is_err());
        assert!(Cidr::parse("").is_err());
    }

    #[test]
    fn contains_respects_family_and_mapping() {
        let lo = Cidr::parse("127.0.0.0/8").expect("cidr");
        assert!(lo.contains(ip("127.1.2.3")));
        assert!(lo.contains(ip("::ffff:127.0.0.1")));
        assert!(!lo.contains(ip("128.0.0.1")));
        assert!(!lo.contains(ip("::1")));
        let all = Cidr::parse("0.0.0.0/0").expect("cidr");
        assert!(all.contains(ip("8.8.8.8")));
        assert!(!all.contains(ip("2001:db8::1")));
        let v6 = Cidr::parse("2001:db8::/32").expect("cidr");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
    }

    #[test]
    fn canonical_unmaps_ipv4() {
        assert_eq!(canonical(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(canonical(ip("2001:db8::1")), ip("2001:db8::1"));
    }
}

/// Written against survivors of `make mutants` (cargo-mutants): each pins a behaviour a user
/// would notice. Kept apart from `tests` so edits of either merge cleanly.
#[cfg(test)]
mod mutant_kills {
    use super::*;

    #[test]
    fn the_prefix_length_is_the_one_written() {
        for (text, len) in [
            ("10.0.0.0/8", 8),
            ("203.0.113.7", 32),
            ("203.0.113.0/24", 24),
            ("2001:db8::/32", 32),
            ("::1", 128),
            ("0.0.0.0/0", 0),
        ] {
            assert_eq!(Cidr::parse(text).map(|c| c.prefix()), Ok(len), "{text}");
        }
    }
}
