//! The rule planner: from an instance's current rules and the grants wanted now, the writes
//! that make the firewall right. Pure: no I/O, no clock; the executor (`firewall`) applies it.

use std::net::IpAddr;

use super::FirewallRule;
use super::Protocol;
use crate::rules::cidr::{self, Cidr};
use crate::rules::desc::{self, Desc};
use crate::rules::ports::PortSet;

/// The per-instance rule quota of Lighthouse.
pub const QUOTA: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub ip: IpAddr,
    /// Already sanitised (`desc::sanitize_label`).
    pub label: String,
    /// This grant's rule lifetime (a client's `ttl=`), instead of the policy's; `None` = the
    /// policy's.
    pub ttl_secs: Option<i64>,
    /// Open the /prefix network of `ip` (a client's checked `v4_prefix=` / `v6_prefix=`);
    /// `None` = `ip` alone. One grant either way: one rule per port setting.
    pub prefix: Option<u8>,
}

impl Grant {
    /// The block this grant opens.
    pub fn block(&self) -> Cidr {
        let ip = cidr::canonical(self.ip);
        match self.prefix {
            Some(p) => Cidr::of(ip, p),
            None => Cidr::host(ip),
        }
    }
}

/// What the planner needs to know besides the rules.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    pub prefix: &'a str,
    pub ports: &'a [(Protocol, String)],
    pub ttl_secs: i64,
    /// Rules knockd may fill up to (QUOTA minus QUOTA_RESERVE).
    pub limit: usize,
    /// Addresses of one IPv6 /64 (one subscriber) that may hold knockd's rules at once
    /// (MAX_ADDRESSES_PER_V6_64; 0: no cap). See `v6_crowding`.
    pub per_v6_64: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStatus {
    /// Every rule exists and its expiry is current (or a foreign rule already allows it).
    Present,
    /// Rules will be created or refreshed by this plan.
    Writes,
    /// No room under the quota even after evicting every evictable owned rule.
    NoRoom,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Owned rules to delete: expired ones, then evictions (see `evicted`).
    pub delete: Vec<FirewallRule>,
    /// How many of `delete` are unexpired rules evicted to make room.
    pub evicted: usize,
    /// New rules (all protocols of all grants in one call).
    pub create: Vec<FirewallRule>,
    /// Existing rules whose description is rewritten with a new expiry.
    pub refresh: Vec<FirewallRule>,
    /// One entry per grant, in order.
    pub grants: Vec<GrantStatus>,
    /// Rules that carry the prefix but whose description cannot be read: left alone.
    pub unparseable: Vec<FirewallRule>,
    /// `DROP` rules that cover a granted address and some of its ports: wherever they sit,
    /// they may win over knockd's ACCEPT (docs/lighthouse-api.md#rule-order). Logged, never
    /// touched.
    pub shadowed_by_drop: Vec<FirewallRule>,
}

impl Plan {
    pub fn writes(&self) -> usize {
        self.delete.len() + self.create.len() + self.refresh.len()
    }
}

/// A refresh is written only when it moves the expiry by at least this much, so a client that
/// knocks every few minutes costs one Describe, not a write per knock (1% of the TTL, 1 min–1 h).
pub fn refresh_step(ttl_secs: i64) -> i64 {
    (ttl_secs / 100).clamp(60, 3600)
}

/// The rule a grant of `block` needs for one protocol; the description is filled in by the
/// plan. A host is written as the bare address, as knockd always wrote it.
pub fn wanted_rule(block: Cidr, protocol: Protocol, port: &str) -> FirewallRule {
    let v4 = block.addr().is_ipv4();
    FirewallRule {
        protocol: protocol.as_str().to_string(),
        port: port.to_string(),
        cidr_block: v4.then(|| block.rule_text()),
        ipv6_cidr_block: (!v4).then(|| block.rule_text()),
        action: "ACCEPT".to_string(),
        description: String::new(),
    }
}

/// The address block a rule applies to, if it names one we can read.
pub(super) fn rule_block(rule: &FirewallRule) -> Option<Cidr> {
    let s = rule
        .ipv6_cidr_block
        .as_deref()
        .or(rule.cidr_block.as_deref())?;
    Cidr::parse(s).ok()
}

/// The ports a rule applies to: a rule for protocol `ALL` covers every port whatever its
/// `Port` says; unreadable text is no set.
fn rule_ports(rule: &FirewallRule) -> Option<PortSet> {
    if rule.protocol.eq_ignore_ascii_case("ALL") {
        return Some(PortSet::all());
    }
    PortSet::parse(&rule.port)
}

/// Same port set (`22,443` is `443,22`, `ALL` is `1-65535`); text equality when either side
/// cannot be read (docs/lighthouse-api.md#rule-identity).
fn same_ports(a: &str, b: &str) -> bool {
    if a == b {
        // The usual case, and the text is the set: no need to build two sets.
        return true;
    }
    match (PortSet::parse(a), PortSet::parse(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Whether an existing rule is the one we would write: the same identity by meaning, so a
/// reordered port list is never created again beside the rule the API already holds.
fn same_target(rule: &FirewallRule, want: &FirewallRule, block: Cidr) -> bool {
    // Cheapest and most selective first: a firewall of 100 rules is scanned for every port
    // setting of every grant, and parsing port sets (which allocates) is the costly part.
    rule.protocol.eq_ignore_ascii_case(&want.protocol)
        && rule.action.eq_ignore_ascii_case("ACCEPT")
        && rule_block(rule) == Some(block)
        && same_ports(&rule.port, &want.port)
}

fn proto_applies(rule: &FirewallRule, protocol: &str) -> bool {
    rule.protocol.eq_ignore_ascii_case(protocol) || rule.protocol.eq_ignore_ascii_case("ALL")
}

/// Whether a rule we do not own already lets every address of `block` reach every port wanted
/// (a superset: `ALL`, `1-65535`, a longer list): then we add nothing.
fn foreign_allows(rule: &FirewallRule, want: &FirewallRule, block: Cidr) -> bool {
    proto_applies(rule, &want.protocol)
        && rule.action.eq_ignore_ascii_case("ACCEPT")
        && rule_block(rule).is_some_and(|b| b.covers(&block))
        && match (rule_ports(rule), PortSet::parse(&want.port)) {
            (Some(have), Some(want)) => have.covers(&want),
            _ => false,
        }
}

/// `DROP` rules that cover `ip` and at least one of the ports knockd opens for it. The API
/// evaluates rules top down and where Create puts a rule is not documented, so every such
/// rule, wherever it is, may make a grant a lie (docs/lighthouse-api.md#rule-order). A `DROP`
/// with unreadable port text counts, to err on the side of a warning.
pub fn shadowing_drops(
    rules: &[FirewallRule],
    ip: IpAddr,
    ports: &[(Protocol, String)],
) -> Vec<FirewallRule> {
    let ip = cidr::canonical(ip);
    rules
        .iter()
        .filter(|r| drop_over_ports(r, ports) && rule_block(r).is_some_and(|b| b.contains(ip)))
        .cloned()
        .collect()
}

/// `DROP` rules over at least one of the ports knockd opens, for any address: what `--check`
/// reports, not knowing which addresses will knock.
pub fn drops_over_ports(rules: &[FirewallRule], ports: &[(Protocol, String)]) -> Vec<FirewallRule> {
    rules
        .iter()
        .filter(|r| drop_over_ports(r, ports))
        .cloned()
        .collect()
}

fn drop_over_ports(r: &FirewallRule, ports: &[(Protocol, String)]) -> bool {
    r.action.eq_ignore_ascii_case("DROP")
        && ports.iter().any(|(proto, port)| {
            proto_applies(r, proto.as_str())
                && match (rule_ports(r), PortSet::parse(port)) {
                    (Some(have), Some(want)) => have.overlaps(&want),
                    _ => true,
                }
        })
}

pub fn plan(rules: &[FirewallRule], policy: &Policy, grants: &[Grant], now: i64) -> Plan {
    // The same address twice in one batch (two devices behind one NAT, a knock retried after
    // a timeout) is planned once, and each of its grants gets that one outcome: otherwise the
    // second could read as present on the strength of rules the first never got.
    let mut unique: Vec<Grant> = Vec::new();
    let mut index = Vec::with_capacity(grants.len());
    for g in grants {
        let ip = cidr::canonical(g.ip);
        // Keyed by the block opened: two knocks from one /24 of a v4_prefix=24 client are one.
        match unique.iter().position(|u| u.block() == g.block()) {
            Some(j) => index.push(j),
            None => {
                index.push(unique.len());
                // The first grant for a block decides its label and lifetime.
                unique.push(Grant {
                    ip,
                    label: g.label.clone(),
                    ttl_secs: g.ttl_secs,
                    prefix: g.prefix,
                });
            }
        }
    }
    let mut out = plan_unique(rules, policy, &unique, now);
    out.grants = index.iter().map(|&j| out.grants[j]).collect();
    out
}

/// `plan` for grants with distinct addresses.
fn plan_unique(rules: &[FirewallRule], policy: &Policy, grants: &[Grant], now: i64) -> Plan {
    let descs: Vec<Desc> = rules
        .iter()
        .map(|r| desc::parse(policy.prefix, &r.description))
        .collect();
    let out = Plan {
        unparseable: (0..rules.len())
            .filter(|&i| descs[i] == Desc::Unparseable)
            .map(|i| rules[i].clone())
            .collect(),
        ..Plan::default()
    };
    let mut d = Draft {
        rules,
        descs,
        policy,
        now,
        keep: vec![false; rules.len()],
        deleted: vec![false; rules.len()],
        out,
    };
    // Per grant, the rules it must create.
    let mut missing: Vec<Vec<FirewallRule>> = grants.iter().map(|g| d.claim(g)).collect();
    d.delete_expired();
    d.cap_per_v6_64(grants, &mut missing);
    d.make_room(missing);
    d.out
}

/// A plan in the making: the rules read, what their descriptions say, and what is decided.
struct Draft<'a> {
    rules: &'a [FirewallRule],
    descs: Vec<Desc>,
    policy: &'a Policy<'a>,
    now: i64,
    /// Rules claimed by a grant now: never deleted or evicted by this plan.
    keep: Vec<bool>,
    /// Rules this plan deletes (expired or evicted).
    deleted: Vec<bool>,
    out: Plan,
}

impl Draft<'_> {
    fn expiry(&self, i: usize) -> Option<i64> {
        desc::expiry(&self.descs[i], self.policy.ttl_secs)
    }

    /// One grant: the rules it already has are claimed (and refreshed when stale), the DROP
    /// rules over them noted, its status pushed. Returns the rules it must create.
    fn claim(&mut self, grant: &Grant) -> Vec<FirewallRule> {
        let (rules, policy) = (self.rules, self.policy);
        // The configuration refuses shorter lifetimes; this keeps any other caller from
        // writing a rule whose minute-rounded expiry is already past.
        let ttl_secs = grant
            .ttl_secs
            .unwrap_or(policy.ttl_secs)
            .max(desc::MIN_TTL_SECS as i64);
        let new_expiry = self.now + ttl_secs;
        let block = grant.block();
        let mut need = Vec::new();
        let mut writes = false;
        for (protocol, port) in policy.ports {
            let mut want = wanted_rule(block, *protocol, port);
            want.description = desc::encode(policy.prefix, &grant.label, new_expiry);
            // The label as the description holds it (cut to fit), to compare with a rule's.
            let label = match desc::parse(policy.prefix, &want.description) {
                Desc::Owned { label, .. } => label,
                _ => grant.label.clone(),
            };
            let exact = (0..rules.len()).find(|&i| same_target(&rules[i], &want, block));
            match exact {
                Some(i) => {
                    self.keep[i] = true;
                    if self.stale(i, &label, new_expiry, ttl_secs) {
                        // The rule as the API holds it (`a.b.c.d/32` stays so): the API finds
                        // the rule to modify by these fields as written.
                        self.out.refresh.push(FirewallRule {
                            description: want.description,
                            ..rules[i].clone()
                        });
                        writes = true;
                    }
                }
                None if rules
                    .iter()
                    .zip(&self.descs)
                    .any(|(r, d)| *d == Desc::Foreign && foreign_allows(r, &want, block)) => {}
                None => need.push(want),
            }
        }
        for drop in shadowing_drops(rules, grant.ip, policy.ports) {
            if !self.out.shadowed_by_drop.contains(&drop) {
                self.out.shadowed_by_drop.push(drop);
            }
        }
        self.out.grants.push(if writes || !need.is_empty() {
            GrantStatus::Writes
        } else {
            GrantStatus::Present
        });
        need
    }

    /// Whether rule `i`, the one a grant of `label` wants, must have its description rewritten.
    fn stale(&self, i: usize, label: &str, new_expiry: i64, ttl_secs: i64) -> bool {
        match &self.descs[i] {
            Desc::Legacy { .. } => true,
            // Another client's rule for this address becomes this grant's: its label
            // and its lifetime, rewritten in place (one description Modify per
            // rule, never a delete and create, so never a gap or a duplicate). The
            // last knock names the rules, so --revoke and --remove-client of its
            // label find them and the notification names who holds them.
            Desc::Owned { label: held, .. } if *held != label => true,
            Desc::Owned { .. } => self
                .expiry(i)
                .is_some_and(|e| new_expiry - e >= refresh_step(ttl_secs)),
            Desc::Foreign | Desc::Unparseable => false,
        }
    }

    /// Owned rules past their expiry and not claimed now are deleted.
    fn delete_expired(&mut self) {
        for i in 0..self.rules.len() {
            if !self.keep[i] && self.expiry(i).is_some_and(|e| e <= self.now) {
                self.deleted[i] = true;
                self.out.delete.push(self.rules[i].clone());
            }
        }
    }

    /// One /64 cannot take over the quota: a new address from a /64 at its cap replaces that
    /// /64's own oldest address.
    fn cap_per_v6_64(&mut self, grants: &[Grant], missing: &mut [Vec<FirewallRule>]) {
        let rules = self.rules;
        let mut batch: Vec<IpAddr> = Vec::new();
        for (k, g) in grants.iter().enumerate() {
            // A wider IPv6 grant is its own block, not an address crowding a /64.
            if missing[k].is_empty()
                || !g.ip.is_ipv6()
                || !g.block().is_host()
                || self.policy.per_v6_64 == 0
            {
                continue;
            }
            let owned: Vec<(usize, IpAddr, i64, bool)> = (0..rules.len())
                .filter(|&i| !self.deleted[i])
                .filter_map(|i| {
                    let block = rule_block(&rules[i]).filter(|b| b.prefix() == 128)?;
                    Some((i, block.addr(), self.expiry(i)?, self.keep[i]))
                })
                .collect();
            let table: Vec<(IpAddr, i64, bool)> = owned.iter().map(|o| (o.1, o.2, o.3)).collect();
            match v6_crowding(&table, &batch, g.ip, self.policy.per_v6_64) {
                Some(evict) => {
                    for j in evict {
                        let i = owned[j].0;
                        self.deleted[i] = true;
                        self.out.delete.push(rules[i].clone());
                        self.out.evicted += 1;
                    }
                    batch.push(g.ip);
                }
                None => {
                    self.out.grants[k] = GrantStatus::NoRoom;
                    missing[k].clear();
                }
            }
        }
    }

    /// Room under the quota, grant by grant: evictions of unexpired owned rules not claimed
    /// now, closest to expiry first; a grant that would not fit whole gets none of its rules.
    fn make_room(&mut self, missing: Vec<Vec<FirewallRule>>) {
        let rules = self.rules;
        let mut candidates: Vec<usize> = (0..rules.len())
            .filter(|&i| !self.keep[i] && !self.deleted[i] && self.expiry(i).is_some())
            .collect();
        // Every candidate has an expiry; stable, as sort_by_key, through the binary's one sort.
        crate::order::sort_by_i64(&mut candidates, |&i| self.expiry(i).unwrap_or(i64::MIN));
        let mut candidates = candidates.into_iter();
        let limit = self.policy.limit;
        let out = &mut self.out;
        let mut count = rules.len() - out.delete.len();
        for (status, need) in out.grants.iter_mut().zip(missing) {
            if need.is_empty() {
                continue;
            }
            let mut evict = Vec::new();
            while count - evict.len() + need.len() > limit {
                match candidates.next() {
                    Some(i) => evict.push(i),
                    None => break,
                }
            }
            if count - evict.len() + need.len() > limit {
                // Never half a grant: the evictions taken for it go back unused only in that
                // later grants cannot use them either, which keeps the plan simple and safe.
                *status = GrantStatus::NoRoom;
                continue;
            }
            count = count - evict.len() + need.len();
            out.evicted += evict.len();
            out.delete
                .extend(evict.into_iter().map(|i| rules[i].clone()));
            out.create.extend(need);
        }
    }
}

/// The per-/64 cap of IPv6 grants: which of `owned` (host address, expiry, claimed by this
/// plan) to delete so that a new grant of `ip` leaves its /64 with at most `cap` addresses,
/// counting `batch` (addresses of the same plan already granted). Only that /64's own rules
/// go, all rules of its addresses closest to expiry first; never another client's. None when
/// rules claimed by this plan fill the /64, so the grant cannot be made.
pub fn v6_crowding(
    owned: &[(IpAddr, i64, bool)],
    batch: &[IpAddr],
    ip: IpAddr,
    cap: usize,
) -> Option<Vec<usize>> {
    let net = |a: IpAddr| match cidr::canonical(a) {
        IpAddr::V6(v6) => Some(u128::from(v6) >> 64),
        IpAddr::V4(_) => None,
    };
    let ip = cidr::canonical(ip);
    let Some(mine) = net(ip) else {
        return Some(Vec::new());
    };
    // Other addresses of the /64: (address, latest expiry, claimed).
    let mut others: Vec<(IpAddr, i64, bool)> = Vec::new();
    for &(a, e, claimed) in owned {
        let a = cidr::canonical(a);
        if a == ip || net(a) != Some(mine) {
            continue;
        }
        match others.iter_mut().find(|o| o.0 == a) {
            Some(o) => {
                o.1 = o.1.max(e);
                o.2 |= claimed;
            }
            None => others.push((a, e, claimed)),
        }
    }
    for &b in batch {
        let b = cidr::canonical(b);
        if b != ip && net(b) == Some(mine) && !others.iter().any(|o| o.0 == b) {
            others.push((b, i64::MAX, true));
        }
    }
    let mut gone: Vec<IpAddr> = Vec::new();
    crate::order::sort_by_i64(&mut others, |o| o.1);
    let mut free = others.iter().filter(|o| !o.2);
    while others.len() - gone.len() >= cap.max(1) {
        gone.push(free.next()?.0);
    }
    Some(
        (0..owned.len())
            .filter(|&j| gone.contains(&cidr::canonical(owned[j].0)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    /// `--revoke TARGET` as the command runs it: the target parsed once, then matched.
    fn revoke(rules: &[FirewallRule], prefix: &str, target: &str) -> Vec<FirewallRule> {
        let target = super::super::revoke::RevokeTarget::parse(target).expect("a target");
        super::super::revoke::revoke(rules, prefix, &target)
    }

    fn revoke_target_problem(t: &str) -> Option<String> {
        super::super::revoke::RevokeTarget::parse(t).err()
    }
    use super::*;

    const NOW: i64 = 1_764_077_880; // 2025-11-25 13:38Z
    const DAY: i64 = 86_400;
    const TTL: i64 = 30 * DAY;

    fn ports() -> Vec<(Protocol, String)> {
        vec![
            (Protocol::Tcp, "22,443".to_string()),
            (Protocol::Udp, "51820".to_string()),
        ]
    }

    fn policy(ports: &[(Protocol, String)]) -> Policy<'_> {
        Policy {
            prefix: "Knockd-",
            ports,
            ttl_secs: TTL,
            limit: QUOTA,
            per_v6_64: 0,
        }
    }

    fn grant(ip: &str, label: &str) -> Grant {
        Grant {
            ip: ip.parse().expect("ip"),
            label: label.to_string(),
            ttl_secs: None,
            prefix: None,
        }
    }

    /// A v4_prefix=24 / v6_prefix=64 client: one rule per port for the whole block, the same
    /// block from another address of it is the same grant, and a host rule inside the block
    /// is another one.
    #[test]
    fn a_wider_grant_opens_its_block_as_one_grant() {
        let ports = [(Protocol::Tcp, "22".to_string())];
        let p = Policy {
            per_v6_64: 1,
            ..policy(&ports)
        };
        let wide = |ip: &str, prefix: u8| Grant {
            prefix: Some(prefix),
            ..grant(ip, "office")
        };
        let plan1 = plan(&[], &p, &[wide("203.0.113.7", 24)], NOW);
        assert_eq!(plan1.create.len(), 1);
        assert_eq!(
            plan1.create[0].cidr_block.as_deref(),
            Some("203.0.113.0/24")
        );
        let rules = plan1.create.clone();
        // Another address of the same /24: present, nothing written.
        let again = plan(&rules, &p, &[wide("203.0.113.200", 24)], NOW);
        assert_eq!(again.grants, [GrantStatus::Present]);
        assert_eq!(again.writes(), 0);
        // Two knocks of one block in a batch: planned once.
        let both = plan(
            &[],
            &p,
            &[wide("203.0.113.1", 24), wide("203.0.113.2", 24)],
            NOW,
        );
        assert_eq!(both.create.len(), 1);
        // A host grant inside the block is its own rule.
        let host = plan(&rules, &p, &[grant("203.0.113.7", "office")], NOW);
        assert_eq!(host.create.len(), 1);
        assert_eq!(host.create[0].cidr_block.as_deref(), Some("203.0.113.7"));
        // IPv6 /64: one rule, and it is no address crowding its /64 (per_v6_64 = 1 here).
        let v6 = plan(
            &[],
            &p,
            &[wide("2001:db8:1:2::7", 64), grant("2001:db8:1:2::8", "x")],
            NOW,
        );
        let blocks: Vec<_> = v6.create.iter().map(|r| r.address().to_string()).collect();
        assert_eq!(blocks, ["2001:db8:1:2::/64", "2001:db8:1:2::8"]);
        assert_eq!(v6.evicted, 0);
        // A foreign rule covering the whole block already allows it; one covering only the
        // knocking address does not.
        let foreign = |block: &str| FirewallRule {
            description: "team".into(),
            ..wanted_rule(Cidr::parse(block).unwrap(), Protocol::Tcp, "22")
        };
        let covered = plan(
            &[foreign("203.0.0.0/16")],
            &p,
            &[wide("203.0.113.7", 24)],
            NOW,
        );
        assert_eq!(covered.grants, [GrantStatus::Present]);
        let partial = plan(
            &[foreign("203.0.113.7")],
            &p,
            &[wide("203.0.113.7", 24)],
            NOW,
        );
        assert_eq!(partial.create.len(), 1);
    }

    #[test]
    fn a_grant_with_its_own_ttl_uses_it_for_its_rules() {
        let ports = [(Protocol::Tcp, "22".to_string())];
        let p = policy(&ports);
        let now = 1_760_000_040; // a whole minute: descriptions carry minutes
        let mut g = grant("203.0.113.9", "office");
        g.ttl_secs = Some(3600);
        let plan = plan(&[], &p, &[g.clone(), grant("203.0.113.10", "other")], now);
        assert_eq!(plan.create.len(), 2);
        let expiries: Vec<Option<i64>> = plan
            .create
            .iter()
            .map(|r| desc::expiry(&desc::parse("Knockd-", &r.description), TTL))
            .collect();
        assert_eq!(expiries, [Some(now + 3600), Some(now + TTL)]);
    }

    fn rule(proto: &str, port: &str, cidr: &str, desc: &str) -> FirewallRule {
        FirewallRule::accept(proto, port, cidr, desc)
    }

    fn owned(proto: &str, port: &str, ip: &str, label: &str, expires: i64) -> FirewallRule {
        rule(proto, port, ip, &desc::encode("Knockd-", label, expires))
    }

    fn defaults() -> Vec<FirewallRule> {
        vec![
            rule("TCP", "22", "0.0.0.0/0", ""),
            rule("TCP", "80", "0.0.0.0/0", ""),
            rule("ICMP", "ALL", "0.0.0.0/0", ""),
        ]
    }

    #[test]
    fn new_grant_creates_every_protocol_in_one_plan() {
        let p = ports();
        let plan = plan(
            &defaults(),
            &policy(&p),
            &[grant("203.0.113.7", "home")],
            NOW,
        );
        assert_eq!(plan.grants, vec![GrantStatus::Writes]);
        assert_eq!(plan.create.len(), 2);
        assert_eq!(plan.create[0].protocol, "TCP");
        assert_eq!(plan.create[0].port, "22,443");
        assert_eq!(plan.create[0].cidr_block.as_deref(), Some("203.0.113.7"));
        assert_eq!(plan.create[1].protocol, "UDP");
        assert_eq!(
            plan.create[0].description,
            "Knockd-home until 2025-12-25 13:38Z"
        );
        assert!(plan.delete.is_empty() && plan.refresh.is_empty());
    }

    #[test]
    fn refresh_in_place_never_creates_a_duplicate() {
        let p = ports();
        let mut rules = defaults();
        rules.push(owned(
            "TCP",
            "22,443",
            "203.0.113.7/32",
            "home",
            NOW + 2 * DAY,
        ));
        rules.push(owned("UDP", "51820", "203.0.113.7", "home", NOW + 2 * DAY));
        let plan = plan(&rules, &policy(&p), &[grant("203.0.113.7", "home")], NOW);
        assert!(plan.create.is_empty());
        assert_eq!(plan.refresh.len(), 2);
        assert_eq!(
            plan.refresh[0].cidr_block.as_deref(),
            Some("203.0.113.7/32")
        );
        assert_eq!(plan.refresh[1].cidr_block.as_deref(), Some("203.0.113.7"));
        assert!(plan.refresh[0].description.ends_with("2025-12-25 13:38Z"));
        assert!(plan.delete.is_empty());
    }

    /// A knock from an address holding another label's rules used to refresh them under the
    /// old label (or, recent, not at all): `--revoke` of the new label found nothing. They are
    /// relabelled in place, with the new grant's lifetime, even when recent.
    #[test]
    fn a_grant_relabels_another_labels_rules_in_place() {
        let p = ports();
        let mut rules = defaults();
        for (proto, port) in [("TCP", "22,443"), ("UDP", "51820")] {
            rules.push(owned(proto, port, "203.0.113.7", "alice", NOW + TTL - 600));
        }
        let plan = plan(&rules, &policy(&p), &[grant("203.0.113.7", "bob")], NOW);
        assert_eq!(plan.grants, vec![GrantStatus::Writes]);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.refresh.len(), 2);
        for r in &plan.refresh {
            // NOW is a whole minute: the description holds NOW + TTL exactly.
            assert_eq!(
                desc::parse("Knockd-", &r.description),
                Desc::Owned {
                    label: "bob".into(),
                    expires: NOW + TTL
                }
            );
        }
        let relabelled: Vec<FirewallRule> = rules
            .iter()
            .map(|r| {
                plan.refresh
                    .iter()
                    .find(|n| same_target(r, n, Cidr::host("203.0.113.7".parse().unwrap())))
                    .cloned()
                    .unwrap_or_else(|| r.clone())
            })
            .collect();
        assert_eq!(revoke(&relabelled, "Knockd-", "bob").len(), 2);
        assert!(revoke(&relabelled, "Knockd-", "alice").is_empty());
        // Knocking again as bob: nothing to write.
        let again = super::plan(
            &relabelled,
            &policy(&p),
            &[grant("203.0.113.7", "bob")],
            NOW,
        );
        assert_eq!(again.writes(), 0);
    }

    #[test]
    fn a_recent_refresh_costs_no_write() {
        let p = ports();
        let mut rules = defaults();
        rules.push(owned(
            "TCP",
            "22,443",
            "203.0.113.7",
            "home",
            NOW + TTL - 600,
        ));
        rules.push(owned(
            "UDP",
            "51820",
            "203.0.113.7",
            "home",
            NOW + TTL - 600,
        ));
        let plan = plan(&rules, &policy(&p), &[grant("203.0.113.7", "home")], NOW);
        assert_eq!(plan.grants, vec![GrantStatus::Present]);
        assert_eq!(plan.writes(), 0);
    }

    #[test]
    fn legacy_rule_is_rewritten_in_the_new_format() {
        let p = vec![(Protocol::Tcp, "80,443,3389".to_string())];
        let mut rules = defaults();
        rules.push(rule(
            "TCP",
            "80,443,3389",
            "203.0.113.7",
            "Knockd-Office_01@@20251120",
        ));
        let plan = plan(
            &rules,
            &policy(&p),
            &[grant("203.0.113.7", "Office_01")],
            NOW,
        );
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.refresh.len(), 1);
        assert_eq!(
            plan.refresh[0].description,
            "Knockd-Office_01 until 2025-12-25 13:38Z"
        );
    }

    #[test]
    fn expired_owned_rules_go_and_unexpired_stay() {
        let p = ports();
        let mut rules = defaults();
        rules.push(owned("TCP", "22,443", "198.51.100.1", "a", NOW - 60));
        rules.push(owned("TCP", "22,443", "198.51.100.2", "b", NOW + 60));
        rules.push(rule("TCP", "22,443", "198.51.100.3", "Knockd-c@@20251001")); // +30d = 10-31
        rules.push(rule("TCP", "22,443", "198.51.100.4", "Knockd-d@@20251120"));
        rules.push(rule("TCP", "22,443", "198.51.100.5", "Knockd-garbage"));
        rules.push(rule(
            "TCP",
            "22",
            "198.51.100.6",
            "office until 2000-01-01 00:00Z",
        ));
        let plan = plan(&rules, &policy(&p), &[], NOW);
        let gone: Vec<_> = plan.delete.iter().map(|r| r.cidr_block.clone()).collect();
        assert_eq!(
            gone,
            vec![Some("198.51.100.1".into()), Some("198.51.100.3".into())]
        );
        assert_eq!(plan.unparseable.len(), 1);
        assert_eq!(plan.evicted, 0);
        assert!(plan.create.is_empty() && plan.refresh.is_empty());
    }

    #[test]
    fn a_knock_also_removes_expired_rules_but_never_its_own() {
        let p = vec![(Protocol::Tcp, "22".to_string())];
        let rules = vec![
            owned("TCP", "22", "203.0.113.7", "me", NOW - DAY),
            owned("TCP", "22", "198.51.100.1", "old", NOW - DAY),
        ];
        let plan = plan(&rules, &policy(&p), &[grant("203.0.113.7", "me")], NOW);
        assert_eq!(plan.refresh.len(), 1);
        assert_eq!(plan.delete.len(), 1);
        assert_eq!(plan.delete[0].cidr_block.as_deref(), Some("198.51.100.1"));
    }

    #[test]
    fn foreign_rule_for_the_same_address_counts_as_present_and_is_untouched() {
        let p = vec![
            (Protocol::Tcp, "22".to_string()),
            (Protocol::Udp, "53".to_string()),
        ];
        let rules = vec![
            rule("TCP", "22", "203.0.113.7", "my office"),
            rule("ALL", "ALL", "203.0.113.0/24", "office net"),
        ];
        let first = plan(&rules, &policy(&p), &[grant("203.0.113.7", "x")], NOW);
        assert_eq!(first.grants, vec![GrantStatus::Present]);
        assert_eq!(first.writes(), 0);
        // A DROP rule or another address does not count.
        let rules = vec![
            FirewallRule {
                action: "DROP".into(),
                ..rule("TCP", "22", "203.0.113.7", "")
            },
            rule("UDP", "53", "198.51.100.0/24", ""),
        ];
        let again = plan(&rules, &policy(&p), &[grant("203.0.113.7", "x")], NOW);
        assert_eq!(again.create.len(), 2);
    }

    #[test]
    fn rules_are_identified_by_port_set_not_text() {
        // (config port, port the API holds for the address, owned?) → creates, refreshes
        let table: &[(&str, &str, bool, usize, usize)] = &[
            ("22,443", "443,22", true, 0, 1),
            ("443,22", "22,443", true, 0, 1),
            ("22,443", "22, 443", true, 0, 1),
            ("1-65535", "ALL", true, 0, 1),
            ("22,443", "22", true, 1, 0),
            ("22,443", "22,443,80", true, 1, 0),
            // A foreign rule for the same address and set: present, untouched.
            ("22,443", "443,22", false, 0, 0),
        ];
        for &(want, have, owned_rule, creates, refreshes) in table {
            let p = vec![(Protocol::Tcp, want.to_string())];
            let desc = if owned_rule {
                desc::encode("Knockd-", "home", NOW + DAY)
            } else {
                "office".to_string()
            };
            let rules = vec![rule("TCP", have, "203.0.113.7", &desc)];
            let plan = plan(&rules, &policy(&p), &[grant("203.0.113.7", "home")], NOW);
            assert_eq!(
                (plan.create.len(), plan.refresh.len()),
                (creates, refreshes),
                "want {want}, have {have}"
            );
            // A refresh names the rule by the port text the API holds.
            for r in &plan.refresh {
                assert_eq!(r.port, have);
            }
            assert!(plan.delete.is_empty());
        }
    }

    #[test]
    fn foreign_accept_rules_that_cover_the_address_and_ports_count_as_present() {
        // (protocol, port, block, action) of one foreign rule → already let in?
        let table: &[(&str, &str, &str, &str, bool)] = &[
            ("TCP", "ALL", "203.0.113.7", "ACCEPT", true),
            ("TCP", "1-65535", "0.0.0.0/0", "ACCEPT", true),
            ("TCP", "", "203.0.113.0/24", "ACCEPT", true),
            ("ALL", "ALL", "203.0.113.0/24", "ACCEPT", true),
            ("ALL", "", "0.0.0.0/0", "ACCEPT", true),
            ("TCP", "443,80,22", "203.0.113.7/32", "ACCEPT", true),
            ("TCP", "1-1024", "203.0.113.7", "ACCEPT", true),
            ("TCP", "22", "203.0.113.7", "ACCEPT", false),
            ("TCP", "1-65535", "203.0.113.7", "DROP", false),
            ("UDP", "ALL", "203.0.113.7", "ACCEPT", false),
            ("ICMP", "ALL", "0.0.0.0/0", "ACCEPT", false),
            ("TCP", "ALL", "198.51.100.0/24", "ACCEPT", false),
            ("TCP", "ALL", "2001:db8::/32", "ACCEPT", false),
            ("TCP", "ssh", "203.0.113.7", "ACCEPT", false),
        ];
        let p = vec![(Protocol::Tcp, "22,443".to_string())];
        for &(proto, port, block, action, present) in table {
            let rules = vec![FirewallRule {
                action: action.into(),
                ..rule(proto, port, block, "console preset")
            }];
            let plan = plan(&rules, &policy(&p), &[grant("203.0.113.7", "x")], NOW);
            let want = if present {
                GrantStatus::Present
            } else {
                GrantStatus::Writes
            };
            assert_eq!(plan.grants, vec![want], "{proto} {port} {block} {action}");
            assert_eq!(plan.create.len(), usize::from(!present));
        }
    }

    #[test]
    fn a_mixed_port_setting_is_one_rule_per_range_plus_one_for_single_ports() {
        // What the configuration makes of FW_PERMIT_PORTS_TCP='22,8000-8100,443'.
        let p = vec![
            (Protocol::Tcp, "22,443".to_string()),
            (Protocol::Tcp, "8000-8100".to_string()),
        ];
        let first = plan(&defaults(), &policy(&p), &[grant("203.0.113.7", "m")], NOW);
        let ports: Vec<&str> = first.create.iter().map(|r| r.port.as_str()).collect();
        assert_eq!(ports, vec!["22,443", "8000-8100"]);
        // Once both exist (one under a reordered text), nothing more is written.
        let mut rules = defaults();
        rules.push(owned("TCP", "443,22", "203.0.113.7", "m", NOW + TTL));
        rules.push(owned("TCP", "8000-8100", "203.0.113.7", "m", NOW + TTL));
        let again = plan(&rules, &policy(&p), &[grant("203.0.113.7", "m")], NOW);
        assert_eq!(again.grants, vec![GrantStatus::Present]);
        assert_eq!(again.writes(), 0);
    }

    #[test]
    fn drop_rules_covering_a_granted_address_and_port_are_reported() {
        let p = vec![
            (Protocol::Tcp, "22,443".to_string()),
            (Protocol::Udp, "51820".to_string()),
        ];
        let drop = |proto: &str, port: &str, block: &str| FirewallRule {
            action: "DROP".into(),
            ..rule(proto, port, block, "block")
        };
        // (DROP rule) → shadows a grant of 203.0.113.7?
        let table: &[(FirewallRule, bool)] = &[
            (drop("TCP", "22", "203.0.113.7"), true),
            (drop("TCP", "443,8443", "203.0.113.0/24"), true),
            (drop("ALL", "ALL", "0.0.0.0/0"), true),
            (drop("TCP", "1-1024", "0.0.0.0/0"), true),
            (drop("UDP", "51000-52000", "203.0.113.7/32"), true),
            (drop("TCP", "80", "203.0.113.7"), false),
            (drop("UDP", "22", "203.0.113.7"), false),
            (drop("TCP", "22", "198.51.100.7"), false),
            (drop("ICMP", "ALL", "0.0.0.0/0"), false),
            (rule("TCP", "22", "203.0.113.7", "an ACCEPT"), false),
        ];
        for (r, shadows) in table {
            let found =
                shadowing_drops(std::slice::from_ref(r), "203.0.113.7".parse().unwrap(), &p);
            assert_eq!(!found.is_empty(), *shadows, "{r:?}");
            let mut rules = defaults();
            rules.push(r.clone());
            let plan = plan(&rules, &policy(&p), &[grant("203.0.113.7", "x")], NOW);
            assert_eq!(plan.shadowed_by_drop.len(), usize::from(*shadows), "{r:?}");
            // The grant is still planned: the warning is the operator's to act on.
            assert_eq!(plan.create.len(), 2);
        }
        // `--check` knows no address: every DROP over the ports, whatever its block.
        let all: Vec<FirewallRule> = table.iter().map(|(r, _)| r.clone()).collect();
        assert_eq!(drops_over_ports(&all, &p).len(), 6);
        // IPv4-mapped addresses are checked as IPv4; two grants behind one DROP report it once.
        let rules = vec![drop("ALL", "ALL", "0.0.0.0/0")];
        let grants = [grant("::ffff:203.0.113.9", "a"), grant("203.0.113.10", "b")];
        let plan = plan(&rules, &policy(&p), &grants, NOW);
        assert_eq!(plan.shadowed_by_drop, rules);
    }

    #[test]
    fn full_quota_of_owned_rules_evicts_the_closest_to_expiry() {
        let p = ports();
        let mut rules = Vec::new();
        for i in 0..100 {
            let ip = format!("198.51.{}.{}", i / 50, i % 50 + 1);
            let proto = if i % 2 == 0 { "TCP" } else { "UDP" };
            rules.push(owned(proto, "9", &ip, "x", NOW + DAY + (i as i64) * 60));
        }
        let plan = plan(&rules, &policy(&p), &[grant("203.0.113.7", "new")], NOW);
        assert_eq!(plan.grants, vec![GrantStatus::Writes]);
        assert_eq!(plan.evicted, 2);
        assert_eq!(plan.delete.len(), 2);
        assert_eq!(plan.delete[0].description, rules[0].description);
        assert_eq!(plan.delete[1].description, rules[1].description);
        assert_eq!(plan.create.len(), 2);
    }

    #[test]
    fn expired_rules_are_evicted_before_live_ones() {
        let p = vec![(Protocol::Tcp, "22".to_string())];
        let mut rules: Vec<_> = (0..99)
            .map(|i| {
                owned(
                    "TCP",
                    "22",
                    &format!("198.51.100.{}", i + 1),
                    "x",
                    NOW + DAY,
                )
            })
            .collect();
        rules.push(owned("TCP", "22", "198.51.101.1", "x", NOW - 1));
        let plan = plan(&rules, &policy(&p), &[grant("203.0.113.7", "new")], NOW);
        assert_eq!(plan.evicted, 0);
        assert_eq!(plan.delete.len(), 1);
        assert_eq!(plan.delete[0].cidr_block.as_deref(), Some("198.51.101.1"));
    }

    #[test]
    fn full_quota_of_foreign_rules_refuses() {
        let p = ports();
        let rules: Vec<_> = (0..100)
            .map(|i| rule("TCP", "22", &format!("198.51.100.{}", i + 1), "office"))
            .collect();
        let plan = plan(&rules, &policy(&p), &[grant("203.0.113.7", "new")], NOW);
        assert_eq!(plan.grants, vec![GrantStatus::NoRoom]);
        assert_eq!(plan.writes(), 0);
    }

    #[test]
    fn quota_reserve_and_partial_batches() {
        let p = vec![(Protocol::Tcp, "22".to_string())];
        let rules: Vec<_> = (0..97)
            .map(|i| rule("TCP", "22", &format!("198.51.100.{}", i + 1), "office"))
            .collect();
        let pol = Policy {
            limit: 99,
            ..policy(&p)
        };
        let grants = [
            grant("203.0.113.1", "a"),
            grant("203.0.113.2", "b"),
            grant("203.0.113.3", "c"),
        ];
        let plan = plan(&rules, &pol, &grants, NOW);
        assert_eq!(
            plan.grants,
            vec![
                GrantStatus::Writes,
                GrantStatus::Writes,
                GrantStatus::NoRoom
            ]
        );
        assert_eq!(plan.create.len(), 2);
    }

    #[test]
    fn a_rule_being_granted_is_never_evicted() {
        let p = vec![(Protocol::Tcp, "22".to_string())];
        let mut rules: Vec<_> = (0..99)
            .map(|i| rule("TCP", "22", &format!("198.51.100.{}", i + 1), "office"))
            .collect();
        rules.push(owned("TCP", "22", "203.0.113.1", "a", NOW + 60));
        let grants = [grant("203.0.113.1", "a"), grant("203.0.113.2", "b")];
        let plan = plan(&rules, &policy(&p), &grants, NOW);
        assert_eq!(plan.grants, vec![GrantStatus::Writes, GrantStatus::NoRoom]);
        assert!(plan.delete.is_empty());
        assert_eq!(plan.refresh.len(), 1);
    }

    #[test]
    fn ipv6_grants_use_ipv6_cidr_block() {
        let p = vec![(Protocol::Tcp, "22".to_string())];
        let plan1 = plan(&defaults(), &policy(&p), &[grant("2001:db8::7", "v6")], NOW);
        assert_eq!(
            plan1.create[0].ipv6_cidr_block.as_deref(),
            Some("2001:db8::7")
        );
        assert_eq!(plan1.create[0].cidr_block, None);
        let rules = vec![owned("TCP", "22", "2001:db8::7/128", "v6", NOW + TTL)];
        let plan2 = plan(&rules, &policy(&p), &[grant("2001:db8::7", "v6")], NOW);
        assert_eq!(plan2.grants, vec![GrantStatus::Present]);
        // IPv4-mapped addresses are granted as IPv4.
        let plan3 = plan(&[], &policy(&p), &[grant("::ffff:203.0.113.9", "m")], NOW);
        assert_eq!(plan3.create[0].cidr_block.as_deref(), Some("203.0.113.9"));
    }

    #[test]
    fn the_same_address_twice_in_a_batch_is_planned_once() {
        let p = ports();
        let grants = [grant("203.0.113.7", "a"), grant("203.0.113.7", "b")];
        let plan = plan(&[], &policy(&p), &grants, NOW);
        assert_eq!(plan.create.len(), 2);
    }

    #[test]
    fn the_same_address_twice_without_room_fails_both_times() {
        let p = vec![(Protocol::Tcp, "22".to_string())];
        let rules: Vec<_> = (0..100)
            .map(|i| rule("TCP", "22", &format!("198.51.100.{}", i + 1), "office"))
            .collect();
        let grants = [grant("203.0.113.7", "a"), grant("203.0.113.7", "b")];
        let plan = plan(&rules, &policy(&p), &grants, NOW);
        assert_eq!(plan.grants, vec![GrantStatus::NoRoom, GrantStatus::NoRoom]);
        assert_eq!(plan.writes(), 0);
    }

    #[test]
    fn refresh_names_the_rule_exactly_as_the_api_holds_it() {
        let p = vec![(Protocol::Tcp, "22".to_string())];
        let rules = vec![
            rule("TCP", "22", "203.0.113.7/32", "Knockd-home@@20251120"),
            rule("TCP", "22", "203.0.113.7", "my office"),
        ];
        let plan = plan(&rules, &policy(&p), &[grant("203.0.113.7", "home")], NOW);
        assert_eq!(plan.refresh.len(), 1);
        assert_eq!(
            plan.refresh[0].cidr_block.as_deref(),
            Some("203.0.113.7/32")
        );
        assert!(plan.refresh[0]
            .description
            .starts_with("Knockd-home until "));
        assert!(plan.create.is_empty() && plan.delete.is_empty());
    }

    #[test]
    fn label_truncation_at_64_bytes_with_multibyte_characters() {
        let p = vec![(Protocol::Tcp, "22".to_string())];
        let label = desc::sanitize_label("公司办公室的网络出口地址一号线路备用".as_bytes());
        let plan = plan(&[], &policy(&p), &[grant("203.0.113.7", &label)], NOW);
        let d = &plan.create[0].description;
        assert!(d.len() <= 64 && d.starts_with("Knockd-公司") && d.ends_with("Z"));
    }

    #[test]
    fn revoke_by_address_or_label_touches_only_owned_rules() {
        let rules = vec![
            owned("TCP", "22", "203.0.113.7", "home", NOW + DAY),
            owned("UDP", "53", "203.0.113.7/32", "home", NOW + DAY),
            rule("TCP", "22", "203.0.113.7", "office"),
            owned("TCP", "22", "198.51.100.1", "phone", NOW + DAY),
            rule("TCP", "22", "198.51.100.2", "Knockd-legacy@@20251120"),
        ];
        assert_eq!(revoke(&rules, "Knockd-", "203.0.113.7").len(), 2);
        assert_eq!(revoke(&rules, "Knockd-", "phone").len(), 1);
        assert_eq!(revoke(&rules, "Knockd-", "legacy").len(), 1);
        assert_eq!(revoke(&rules, "Knockd-", "office").len(), 0);
    }

    #[test]
    fn v6_crowding_table() {
        let a = |s: &str| -> IpAddr { s.parse().expect("ip") };
        let (x1, x2, x3) = (
            a("2001:db8:1:1::1"),
            a("2001:db8:1:1::2"),
            a("2001:db8:1:1::3"),
        );
        let other = a("2001:db8:1:2::1");
        let v4 = a("203.0.113.9");
        type Case<'a> = (
            &'a str,
            Vec<(IpAddr, i64, bool)>,
            Vec<IpAddr>,
            IpAddr,
            usize,
            Option<Vec<usize>>,
        );
        let cases: Vec<Case> = vec![
            (
                "room left",
                vec![(x1, 10, false)],
                vec![],
                x3,
                2,
                Some(vec![]),
            ),
            (
                "at the cap: the oldest address goes, every rule of it",
                vec![
                    (x1, 10, false),
                    (x2, 5, false),
                    (x2, 5, false),
                    (other, 1, false),
                ],
                vec![],
                x3,
                2,
                Some(vec![1, 2]),
            ),
            (
                "another /64 is never touched",
                vec![(other, 1, false), (other, 2, false)],
                vec![],
                x3,
                1,
                Some(vec![]),
            ),
            (
                "the address itself does not count",
                vec![(x3, 1, false), (x1, 2, false)],
                vec![],
                x3,
                2,
                Some(vec![]),
            ),
            (
                "claimed rules are kept; the next oldest goes",
                vec![(x1, 1, true), (x2, 5, false)],
                vec![],
                x3,
                2,
                Some(vec![1]),
            ),
            (
                "all claimed: no room",
                vec![(x1, 1, true)],
                vec![],
                x3,
                1,
                None,
            ),
            (
                "earlier grants of the batch count",
                vec![(x1, 10, false)],
                vec![x2],
                x3,
                2,
                Some(vec![0]),
            ),
            (
                "the batch alone fills it",
                vec![],
                vec![x1, x2],
                x3,
                2,
                None,
            ),
            (
                "IPv4 is not capped",
                vec![(v4, 1, false)],
                vec![],
                v4,
                1,
                Some(vec![]),
            ),
        ];
        for (name, owned, batch, ip, cap, want) in cases {
            assert_eq!(v6_crowding(&owned, &batch, ip, cap), want, "{name}");
        }
    }

    #[test]
    fn one_64_cannot_take_over_the_quota() {
        let p = ports();
        let mut pol = policy(&p);
        pol.per_v6_64 = 2;
        let mut rules = defaults();
        rules.push(owned("TCP", "22,443", "203.0.113.7", "alice", NOW + DAY));
        rules.push(owned(
            "TCP",
            "22,443",
            "2001:db8:1:1::1",
            "m1",
            NOW + 2 * DAY,
        ));
        rules.push(owned(
            "UDP",
            "51820",
            "2001:db8:1:1::1",
            "m1",
            NOW + 2 * DAY,
        ));
        rules.push(owned(
            "TCP",
            "22,443",
            "2001:db8:1:1::2",
            "m2",
            NOW + 3 * DAY,
        ));
        let plan = plan(&rules, &pol, &[grant("2001:db8:1:1::3", "m3")], NOW);
        assert_eq!(plan.grants, vec![GrantStatus::Writes]);
        let gone: Vec<&str> = plan.delete.iter().map(|r| r.address()).collect();
        assert_eq!(gone, vec!["2001:db8:1:1::1", "2001:db8:1:1::1"]);
        assert_eq!(plan.create.len(), 2);
    }

    /// Written against survivors of `make mutants` (cargo-mutants): each pins a behaviour a user
    /// would notice. They share the helpers of `tests`.
    mod mutant_kills {
        use super::*;

        const NOW: i64 = 1_764_077_880; // 2025-11-25 13:38Z
        const DAY: i64 = 86_400;

        fn tcp(port: &str) -> Vec<(Protocol, String)> {
            vec![(Protocol::Tcp, port.to_string())]
        }

        fn policy(ports: &[(Protocol, String)], ttl_secs: i64) -> Policy<'_> {
            Policy {
                prefix: "Knockd-",
                ports,
                ttl_secs,
                limit: QUOTA,
                per_v6_64: 0,
            }
        }

        fn grant(ip: &str) -> Grant {
            Grant {
                ip: ip.parse().expect("ip"),
                label: "home".to_string(),
                ttl_secs: None,
                prefix: None,
            }
        }

        #[test]
        fn writes_counts_every_delete_create_and_refresh() {
            let p = vec![
                (Protocol::Tcp, "22".to_string()),
                (Protocol::Udp, "53".to_string()),
            ];
            let rules = vec![
                // Expired, someone else's address: deleted.
                owned("TCP", "22", "198.51.100.1", "old", NOW - 60),
                // The granted address's TCP rule, expiring tomorrow: refreshed.
                owned("TCP", "22", "203.0.113.7", "home", NOW + DAY),
            ];
            let plan = plan(&rules, &policy(&p, 30 * DAY), &[grant("203.0.113.7")], NOW);
            assert_eq!(
                (plan.delete.len(), plan.create.len(), plan.refresh.len()),
                (1, 1, 1)
            );
            assert_eq!(plan.writes(), 3);
        }

        #[test]
        fn a_short_ttl_is_refreshed_minutes_after_the_last_knock() {
            // TTL of one hour: the refresh step is its floor, one minute; a knock two minutes after
            // the last one moves the expiry, a knock in the same minute does not (descriptions
            // hold whole minutes).
            let p = tcp("22");
            let hour = 3600;
            let two_min_ago = vec![owned("TCP", "22", "203.0.113.7", "home", NOW + hour - 120)];
            let plan1 = plan(
                &two_min_ago,
                &policy(&p, hour),
                &[grant("203.0.113.7")],
                NOW,
            );
            assert_eq!(plan1.grants, vec![GrantStatus::Writes]);
            assert_eq!(plan1.refresh.len(), 1);
            let just_now = vec![owned("TCP", "22", "203.0.113.7", "home", NOW + hour)];
            let plan2 = plan(&just_now, &policy(&p, hour), &[grant("203.0.113.7")], NOW);
            assert_eq!(plan2.grants, vec![GrantStatus::Present]);
            assert_eq!(plan2.writes(), 0);
            // TTL of one day: the step is 1% of it, 864 s.
            for (ago, writes) in [(600, 0), (900, 1)] {
                let rules = vec![owned("TCP", "22", "203.0.113.7", "home", NOW + DAY - ago)];
                let plan = plan(&rules, &policy(&p, DAY), &[grant("203.0.113.7")], NOW);
                assert_eq!(plan.writes(), writes, "last knock {ago}s ago");
            }
        }

        #[test]
        fn a_batch_on_a_full_quota_evicts_one_rule_per_new_rule_and_no_more() {
            let p = tcp("22");
            let rules: Vec<_> = (0..QUOTA)
                .map(|i| {
                    let ip = format!("198.51.100.{}", i + 1);
                    owned("TCP", "22", &ip, "x", NOW + DAY + i as i64 * 60)
                })
                .collect();
            let grants = [grant("203.0.113.1"), grant("203.0.113.2")];
            let plan = plan(&rules, &policy(&p, 30 * DAY), &grants, NOW);
            assert_eq!(plan.grants, vec![GrantStatus::Writes, GrantStatus::Writes]);
            assert_eq!(plan.create.len(), 2);
            assert_eq!(plan.evicted, 2);
            let gone: Vec<_> = plan.delete.iter().map(|r| r.address()).collect();
            assert_eq!(gone, vec!["198.51.100.1", "198.51.100.2"]);
        }

        #[test]
        fn revoking_an_address_deletes_its_rules_and_keeps_everyone_elses() {
            let rules = vec![
                owned("TCP", "22", "203.0.113.7", "home", NOW + DAY),
                owned("UDP", "53", "203.0.113.7/32", "home", NOW + DAY),
                owned("TCP", "22", "198.51.100.1", "phone", NOW + DAY),
                rule("TCP", "22", "198.51.100.2", "Knockd-legacy@@20251120"),
                rule("TCP", "22", "203.0.113.7", "office"),
                owned("TCP", "22", "2001:db8::7", "v6", NOW + DAY),
            ];
            let revoked = revoke(&rules, "Knockd-", "203.0.113.7");
            assert_eq!(revoked, rules[..2].to_vec());
            // An IPv4-mapped address revokes the IPv4 rules; an IPv6 address only its own.
            assert_eq!(revoke(&rules, "Knockd-", "::ffff:203.0.113.7"), rules[..2]);
            assert_eq!(revoke(&rules, "Knockd-", "2001:db8::7"), rules[5..]);
            // An address nobody was granted revokes nothing.
            assert!(revoke(&rules, "Knockd-", "192.0.2.1").is_empty());
            // By label: exactly the rules carrying it.
            assert_eq!(revoke(&rules, "Knockd-", "phone"), rules[2..3]);
            assert!(revoke(&rules, "Knockd-", "nobody").is_empty());
        }

        #[test]
        fn revoke_targets_that_can_never_match_are_named() {
            for ok in [
                "203.0.113.7",
                "2001:db8::7",
                "203.0.113.0/24",
                "phone",
                // A label edited in the console may hold anything, a space or a slash too.
                "my laptop",
                "a/b",
            ] {
                assert_eq!(revoke_target_problem(ok), None, "{ok}");
            }
            for (bad, says) in [
                (" ", "blank"),
                ("999.1.1.1", "not an IPv4 address"),
                ("10.1.1", "not an IPv4 address"),
                ("10.231.9.1/24", "did you mean 10.231.9.0/24?"),
                ("999.1.1.0/24", "is not an IP address or CIDR block"),
                ("10.0.0.0/33", "prefix length outside"),
            ] {
                let p = revoke_target_problem(bad).expect(bad);
                assert!(p.contains(says), "{bad}: {p}");
            }
        }

        #[test]
        fn revoking_a_cidr_block_deletes_the_rules_of_every_owned_address_inside_it() {
            let rules = vec![
                owned("TCP", "22", "203.0.113.7", "home", NOW + DAY),
                owned("TCP", "22", "203.0.113.200/32", "laptop", NOW + DAY),
                owned("TCP", "22", "203.0.114.1", "elsewhere", NOW + DAY),
                rule("TCP", "22", "203.0.113.8", "office"),
                owned("TCP", "22", "2001:db8:1:2::7", "phone", NOW + DAY),
                owned("TCP", "22", "2001:db8:1:3::7", "tablet", NOW + DAY),
            ];
            assert_eq!(revoke(&rules, "Knockd-", "203.0.113.0/24"), rules[..2]);
            assert_eq!(revoke(&rules, "Knockd-", "2001:db8:1:2::/64"), rules[4..5]);
            assert!(revoke(&rules, "Knockd-", "10.231.9.0/24").is_empty());
            // A block narrower than a rule's does not take the wider rule.
            let wide = vec![owned("TCP", "22", "203.0.113.0/24", "net", NOW + DAY)];
            assert!(revoke(&wide, "Knockd-", "203.0.113.0/25").is_empty());
            assert_eq!(revoke(&wide, "Knockd-", "203.0.0.0/16"), wide);
        }
    }
}
