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
