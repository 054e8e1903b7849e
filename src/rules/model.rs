//! The rule model: what a Lighthouse firewall rule is, independent of how the API spells it on
//! the wire (that lives in `cloud::wire`). See docs/lighthouse-api.md#firewall-rules.

/// A protocol knockd opens ports for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// A firewall rule as the API holds it. Identity is (Protocol, Port, CidrBlock, Ipv6CidrBlock,
/// Action); the description is not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRule {
    pub protocol: String,
    pub port: String,
    pub cidr_block: Option<String>,
    pub ipv6_cidr_block: Option<String>,
    pub action: String,
    pub description: String,
}

impl FirewallRule {
    pub fn same_identity(&self, other: &FirewallRule) -> bool {
        self.protocol == other.protocol
            && self.port == other.port
            && self.cidr_block == other.cidr_block
            && self.ipv6_cidr_block == other.ipv6_cidr_block
            && self.action == other.action
    }

    /// The address the rule applies to, for logs and tables.
    pub fn address(&self) -> &str {
        self.ipv6_cidr_block
            .as_deref()
            .or(self.cidr_block.as_deref())
            .unwrap_or("0.0.0.0/0")
    }
}

/// Rules for unit tests here and in the layers above.
#[cfg(test)]
impl FirewallRule {
    /// An ACCEPT rule; `cidr` goes to the IPv4 or the IPv6 field by its form.
    pub(crate) fn accept(proto: &str, port: &str, cidr: &str, desc: &str) -> FirewallRule {
        let v6 = cidr.contains(':');
        FirewallRule {
            protocol: proto.into(),
            port: port.into(),
            cidr_block: (!v6).then(|| cidr.to_string()),
            ipv6_cidr_block: v6.then(|| cidr.to_string()),
            action: "ACCEPT".into(),
            description: desc.into(),
        }
    }
}

/// Written against survivors of `make mutants` (cargo-mutants): each pins a behaviour a user
/// would notice. Kept apart from any `tests` module so edits of either merge cleanly.
#[cfg(test)]
mod mutant_kills {
    use super::*;

    fn rule() -> FirewallRule {
        FirewallRule {
            protocol: "TCP".into(),
            port: "22".into(),
            cidr_block: Some("203.0.113.7".into()),
            ipv6_cidr_block: None,
            action: "ACCEPT".into(),
            description: "Knockd-home until 2025-12-25 13:38Z".into(),
        }
    }

    #[test]
    fn a_rule_is_the_same_whatever_its_description_and_another_if_any_field_differs() {
        let r = rule();
        let relabelled = FirewallRule {
            description: "office".into(),
            ..rule()
        };
        assert!(r.same_identity(&relabelled));
        let others = [
            FirewallRule {
                protocol: "UDP".into(),
                ..rule()
            },
            FirewallRule {
                port: "443".into(),
                ..rule()
            },
            FirewallRule {
                cidr_block: Some("203.0.113.8".into()),
                ..rule()
            },
            FirewallRule {
                ipv6_cidr_block: Some("2001:db8::7".into()),
                ..rule()
            },
            FirewallRule {
                action: "DROP".into(),
                ..rule()
            },
        ];
        for other in &others {
            assert!(!r.same_identity(other), "{other:?}");
            assert!(!other.same_identity(&r), "{other:?}");
        }
    }

    #[test]
    fn a_rule_shows_its_address_or_everyone() {
        assert_eq!(rule().address(), "203.0.113.7");
        let v6 = FirewallRule {
            cidr_block: None,
            ipv6_cidr_block: Some("2001:db8::7".into()),
            ..rule()
        };
        assert_eq!(v6.address(), "2001:db8::7");
        let anyone = FirewallRule {
            cidr_block: None,
            ..rule()
        };
        assert_eq!(anyone.address(), "0.0.0.0/0");
        assert_eq!(Protocol::Tcp.as_str(), "TCP");
        assert_eq!(Protocol::Udp.as_str(), "UDP");
    }
}
