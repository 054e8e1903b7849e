//! What `--revoke TARGET` removes: the target parsed once (an address, a CIDR block or a
//! label), then matched against the owned rules.

use std::net::IpAddr;

use super::cidr::{self, Cidr};
use super::desc::{self, Desc};
use super::planner::rule_block;
use super::FirewallRule;

/// A `--revoke` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeTarget {
    /// An address (as its host block) or a CIDR block: every owned rule whose block lies inside
    /// it (an office /24, or the /64 of a phone's changing IPv6 privacy addresses).
    Block(Cidr),
    /// A client's label, as knockd wrote it in the description.
    Label(String),
}

impl RevokeTarget {
    /// The target, or why it can never match a rule. A label edited in the console can hold
    /// any text, so only what is blank, or is plainly meant as an address or a block and is not
    /// one, is refused: it would only end in "no rule matches", hiding the typo.
    pub fn parse(t: &str) -> Result<RevokeTarget, String> {
        if t.trim().is_empty() {
            return Err("the target is blank: give an IP address, a CIDR block or a label".into());
        }
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(RevokeTarget::Block(Cidr::host(cidr::canonical(ip))));
        }
        let looks_ipv4 = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if let Some((addr, _)) = t.split_once('/') {
            if addr.parse::<IpAddr>().is_ok() || looks_ipv4(addr) {
                return Cidr::parse(t).map(RevokeTarget::Block);
            }
        } else if looks_ipv4(t) {
            return Err(format!(
                "'{t}' is not an IPv4 address (four numbers 0 to 255, like 203.0.113.7)"
            ));
        }
        Ok(RevokeTarget::Label(t.to_string()))
    }

    /// The label, when the target is one.
    pub fn label(&self) -> Option<&str> {
        match self {
            RevokeTarget::Label(l) => Some(l),
            RevokeTarget::Block(_) => None,
        }
    }
}

/// Owned rules for `target` (legacy rules of the original program included): what `--revoke`
/// deletes.
pub fn revoke(rules: &[FirewallRule], prefix: &str, target: &RevokeTarget) -> Vec<FirewallRule> {
    // A label too long for the description beside a long FW_RULE_NAME_PREFIX is written cut
    // short: it is looked for as written (an original program's rule, never cut by knockd, as
    // given).
    let stored = match target {
        RevokeTarget::Label(l) => desc::stored_label(prefix, l),
        RevokeTarget::Block(_) => String::new(),
    };
    rules
        .iter()
        .filter(|r| {
            let label = match desc::parse(prefix, &r.description) {
                Desc::Owned { label, .. } | Desc::Legacy { label, .. } => label,
                Desc::Foreign | Desc::Unparseable => return false,
            };
            match target {
                RevokeTarget::Block(b) => rule_block(r)
                    .is_some_and(|rb| rb.prefix() >= b.prefix() && b.contains(rb.addr())),
                RevokeTarget::Label(l) => label == *l || label == stored,
            }
        })
        .cloned()
        .collect()
}

/// Owned rules labelled `label` for exactly `block`: what a host name's address it no longer
/// has leaves behind (`knock/hosts.rs`). A rule a knock has since relabelled is not among them.
pub fn labelled_block(
    rules: &[FirewallRule],
    prefix: &str,
    block: Cidr,
    label: &str,
) -> Vec<FirewallRule> {
    let mut doomed = revoke(rules, prefix, &RevokeTarget::Label(label.to_string()));
    doomed.retain(|r| rule_block(r) == Some(block));
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ip: &str, description: String) -> FirewallRule {
        FirewallRule::accept("TCP", "22", ip, &description)
    }

    /// A 20-byte prefix leaves room for 23 bytes of label: a 24-character label is written
    /// cut, and `--revoke LABEL`, `--remove-client` and a host name's removal still find it.
    #[test]
    fn a_label_cut_to_fit_the_description_is_found() {
        let prefix = "Knockd-LongPrefix20-";
        assert_eq!(prefix.len(), 20);
        let label = "abcdefghijklmnopqrstuvwx";
        let long = rule("203.0.113.7", desc::encode(prefix, label, 1_800_000_000));
        let other = rule("203.0.113.8", desc::encode(prefix, "office", 1_800_000_000));
        let rules = [long.clone(), other];
        assert!(!long.description.contains(label), "{}", long.description);
        let target = RevokeTarget::Label(label.to_string());
        assert_eq!(revoke(&rules, prefix, &target), std::slice::from_ref(&long));
        let block = rule_block(&long).expect("block");
        assert_eq!(labelled_block(&rules, prefix, block, label), [long]);
    }
}
