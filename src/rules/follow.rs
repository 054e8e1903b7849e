//! Following a host name's addresses (host lines of the clients file): given what a name had
//! and what it resolves to now, which addresses gain rules and which lose them. Pure: the
//! resolve, the clock and the rule that refuses addresses are passed in (`knock/hosts.rs` does
//! the I/O).
//!
//! - An address in the answer is followed (added when new).
//! - An address missing from a successful answer is kept for `grace` seconds from the first
//!   answer that lacked it, so a resolver that flaps between two answers does not churn rules;
//!   back in an answer before then, it simply stays.
//! - A failed resolve adds nothing and refreshes nothing (the caller stops refreshing, so the
//!   rules of a name that stops resolving run out with their lifetime), but an address whose
//!   grace is over still goes ([`expire`]): a forged answer followed by silence must not keep
//!   its address open for a whole rule lifetime.
//! - An address that goes stays in `removing` until the caller's removal succeeded, so a
//!   failed Delete is tried again at the next pass instead of leaving the rule for its
//!   lifetime.
//! - At most [`PER_FAMILY`] addresses per family are followed at once, grace included:
//!   addresses already followed first, then the answer's order; an address in its grace gives
//!   its place up early to one in the answer.
//! - An address `grantable` refuses is never followed.

use std::net::IpAddr;

use super::cidr::canonical;

/// Addresses followed at once per name and family (IPv4, IPv6).
pub const PER_FAMILY: usize = 4;

/// One followed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub addr: IpAddr,
    /// When a successful answer first lacked it (the caller's clock, seconds); `None` while
    /// the name still has it.
    pub missing_since: Option<u64>,
}

/// What knockd knows of one name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameState {
    pub followed: Vec<Followed>,
    /// Addresses of the last answer that were refused or over the cap: reported once each,
    /// not at every refresh.
    pub refused: Vec<IpAddr>,
    pub over_cap: Vec<IpAddr>,
    /// No longer followed, rules still to remove: the caller drops an address from here once
    /// its removal succeeded on every instance ([`NameState::removed`]).
    pub removing: Vec<IpAddr>,
}

/// What one answer changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Newly followed: rules to create.
    pub added: Vec<IpAddr>,
    /// No longer followed: rules to remove.
    pub removed: Vec<IpAddr>,
    /// Newly refused by `grantable`.
    pub refused: Vec<IpAddr>,
    /// Newly left out for the cap.
    pub over_cap: Vec<IpAddr>,
}

impl NameState {
    /// Every address whose rules are kept now (in the answer or in its grace).
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.followed.iter().map(|f| f.addr)
    }

    /// `ip`'s rules are removed: it is no longer waiting for that.
    pub fn removed(&mut self, ip: IpAddr) {
        self.removing.retain(|r| *r != ip);
    }

    /// Adds `gone` to `removing`, once each, and drops from it what is followed again.
    fn add_removals(&mut self, gone: &[IpAddr]) {
        for &ip in gone {
            if !self.removing.contains(&ip) {
                self.removing.push(ip);
            }
        }
        let followed = &self.followed;
        self.removing
            .retain(|ip| !followed.iter().any(|f| f.addr == *ip));
    }
}

/// After a failed resolve at `now`: the addresses whose grace is over stop being followed
/// (returned, and added to `removing`); nothing is added and the others stay as they are.
pub fn expire(state: &mut NameState, grace: u64, now: u64) -> Vec<IpAddr> {
    let over = |f: &Followed| {
        f.missing_since
            .is_some_and(|s| now.saturating_sub(s) >= grace)
    };
    let gone: Vec<IpAddr> = state
        .followed
        .iter()
        .filter(|f| over(f))
        .map(|f| f.addr)
        .collect();
    state.followed.retain(|f| !over(f));
    state.add_removals(&gone);
    gone
}

/// Applies one successful answer `resolved` (in the resolver's order) at `now`.
pub fn follow(
    state: &mut NameState,
    resolved: &[IpAddr],
    grantable: &dyn Fn(IpAddr) -> bool,
    grace: u64,
    now: u64,
) -> Changes {
    let mut out = Changes::default();
    let mut answer: Vec<IpAddr> = Vec::new();
    let mut refused = Vec::new();
    for ip in resolved.iter().map(|&ip| canonical(ip)) {
        if answer.contains(&ip) || refused.contains(&ip) {
            continue;
        }
        if grantable(ip) {
            answer.push(ip);
        } else {
            refused.push(ip);
        }
    }
    // Already followed first, then the answer's order; at most PER_FAMILY of each family.
    let known = |ip: &IpAddr| state.followed.iter().any(|f| f.addr == *ip);
    let mut followed: Vec<Followed> = Vec::new();
    let mut over_cap = Vec::new();
    for pass_known in [true, false] {
        for &ip in answer.iter().filter(|ip| known(ip) == pass_known) {
            if room(&followed, ip) {
                if !pass_known {
                    out.added.push(ip);
                }
                followed.push(Followed {
                    addr: ip,
                    missing_since: None,
                });
            } else {
                over_cap.push(ip);
            }
        }
    }
    // Missing from the answer: kept through the grace while its family has room.
    for f in &state.followed {
        if answer.contains(&f.addr) {
            continue;
        }
        let since = f.missing_since.unwrap_or(now);
        if now.saturating_sub(since) < grace && room(&followed, f.addr) {
            followed.push(Followed {
                addr: f.addr,
                missing_since: Some(since),
            });
        } else {
            out.removed.push(f.addr);
        }
    }
    out.refused = refused
        .iter()
        .filter(|ip| !state.refused.contains(ip))
        .copied()
        .collect();
    out.over_cap = over_cap
        .iter()
        .filter(|ip| !state.over_cap.contains(ip))
        .copied()
        .collect();
    *state = NameState {
        followed,
        refused,
        over_cap,
        removing: std::mem::take(&mut state.removing),
    };
    state.add_removals(&out.removed);
    out
}

/// Whether `ip`'s family has fewer than [`PER_FAMILY`] addresses in `list`.
fn room(list: &[Followed], ip: IpAddr) -> bool {
    let same = list.iter().filter(|f| f.addr.is_ipv4() == ip.is_ipv4());
    same.count() < PER_FAMILY
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &str) -> Vec<IpAddr> {
        list.split_whitespace()
            .map(|s| s.parse().expect("ip"))
            .collect()
    }

    /// Refuses loopback, as the knock path's rule does (among others).
    fn grantable(ip: IpAddr) -> bool {
        !ip.is_loopback()
    }

    /// Steps of one name with a grace of 300 s: (now, answer or None for a failed resolve,
    /// added, removed, followed after, newly refused, newly over the cap).
    #[test]
    fn a_name_followed_through_moves_flaps_failures_and_caps() {
        type Row = (
            u64,
            Option<&'static str>,
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            &'static str,
        );
        let table: &[Row] = &[
            // first answer: followed at once
            (
                0,
                Some("203.0.113.7"),
                "203.0.113.7",
                "",
                "203.0.113.7",
                "",
                "",
            ),
            // the same again: nothing to do
            (300, Some("203.0.113.7"), "", "", "203.0.113.7", "", ""),
            // moved: the new one at once, the old one in its grace
            (
                600,
                Some("203.0.113.8"),
                "203.0.113.8",
                "",
                "203.0.113.8 203.0.113.7",
                "",
                "",
            ),
            // a failed resolve changes nothing, and does not count as an answer
            (700, None, "", "", "203.0.113.8 203.0.113.7", "", ""),
            // flapped back within the grace: stays, nothing churns
            (
                800,
                Some("203.0.113.7 203.0.113.8"),
                "",
                "",
                "203.0.113.7 203.0.113.8",
                "",
                "",
            ),
            // gone again from 900 ...
            (
                900,
                Some("203.0.113.8"),
                "",
                "",
                "203.0.113.8 203.0.113.7",
                "",
                "",
            ),
            (
                1199,
                Some("203.0.113.8"),
                "",
                "",
                "203.0.113.8 203.0.113.7",
                "",
                "",
            ),
            // ... removed once the grace has passed since 900
            (
                1200,
                Some("203.0.113.8"),
                "",
                "203.0.113.7",
                "203.0.113.8",
                "",
                "",
            ),
            // loopback refused, reported once; IPv6 is its own family; the IPv4-mapped form
            // is the IPv4 address
            (
                1300,
                Some("203.0.113.8 127.0.0.5 2001:db8::5 ::ffff:203.0.113.8"),
                "2001:db8::5",
                "",
                "203.0.113.8 2001:db8::5",
                "127.0.0.5",
                "",
            ),
            (
                1400,
                Some("203.0.113.8 127.0.0.5 2001:db8::5"),
                "",
                "",
                "203.0.113.8 2001:db8::5",
                "",
                "",
            ),
            // six IPv4 addresses: the followed one first, then the answer's order, four in all
            (
                1500,
                Some(
                    "198.51.100.1 198.51.100.2 198.51.100.3 198.51.100.4 198.51.100.5 203.0.113.8",
                ),
                "198.51.100.1 198.51.100.2 198.51.100.3",
                "",
                "203.0.113.8 198.51.100.1 198.51.100.2 198.51.100.3 2001:db8::5",
                "",
                "198.51.100.4 198.51.100.5",
            ),
            // a new answer of four: addresses in their grace give their places up at once
            (
                1600,
                Some("192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 2001:db8::5"),
                "192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4",
                "203.0.113.8 198.51.100.1 198.51.100.2 198.51.100.3",
                "2001:db8::5 192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4",
                "",
                "",
            ),
            // only refused addresses: an answer without the others, so they go after the grace
            (
                1700,
                Some("127.0.0.1"),
                "",
                "",
                "2001:db8::5 192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4",
                "127.0.0.1",
                "",
            ),
            (
                2000,
                Some("127.0.0.1"),
                "",
                "2001:db8::5 192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4",
                "",
                "",
                "",
            ),
        ];
        let mut state = NameState::default();
        for &(now, answer, added, removed, after, refused, over) in table {
            let before = state.clone();
            let got = match answer {
                Some(a) => follow(&mut state, &ips(a), &grantable, 300, now),
                None => Changes {
                    removed: expire(&mut state, 300, now),
                    ..Changes::default()
                },
            };
            let want = Changes {
                added: ips(added),
                removed: ips(removed),
                refused: ips(refused),
                over_cap: ips(over),
            };
            assert_eq!(got, want, "at {now} from {before:?}");
            assert_eq!(state.addrs().collect::<Vec<_>>(), ips(after), "at {now}");
        }
    }

    /// A name that goes silent still loses an address whose grace is over, and an address
    /// to remove stays to remove until the caller's removal succeeded.
    #[test]
    fn removals_survive_silence_and_failures() {
        let mut s = NameState::default();
        follow(&mut s, &ips("203.0.113.7"), &grantable, 300, 0);
        follow(&mut s, &ips("203.0.113.8"), &grantable, 300, 100);
        // Silent within the grace: nothing goes.
        assert_eq!(expire(&mut s, 300, 399), ips(""));
        let addrs = |s: &NameState| s.addrs().collect::<Vec<_>>();
        assert_eq!(addrs(&s), ips("203.0.113.8 203.0.113.7"));
        // Silent past it: the graced address goes, though no answer came.
        assert_eq!(expire(&mut s, 300, 400), ips("203.0.113.7"));
        assert_eq!(addrs(&s), ips("203.0.113.8"));
        assert_eq!(s.removing, ips("203.0.113.7"));
        // Its removal failed: still to remove after the next answer, once.
        follow(&mut s, &ips("203.0.113.8"), &grantable, 300, 500);
        assert_eq!(s.removing, ips("203.0.113.7"));
        // Back in an answer: followed again, nothing to remove.
        let c = follow(
            &mut s,
            &ips("203.0.113.8 203.0.113.7"),
            &grantable,
            300,
            600,
        );
        assert_eq!(c.added, ips("203.0.113.7"));
        assert_eq!(s.removing, ips(""));
        // Gone again, and this time removed: the caller says so.
        follow(&mut s, &ips("203.0.113.8"), &grantable, 0, 700);
        assert_eq!(s.removing, ips("203.0.113.7"));
        s.removed(ips("203.0.113.7")[0]);
        assert_eq!(s.removing, ips(""));
    }

    #[test]
    fn a_zero_grace_removes_at_the_first_answer_without_it() {
        let mut s = NameState::default();
        follow(&mut s, &ips("203.0.113.7"), &grantable, 0, 10);
        let c = follow(&mut s, &ips("203.0.113.9"), &grantable, 0, 20);
        assert_eq!(
            (c.added, c.removed),
            (ips("203.0.113.9"), ips("203.0.113.7"))
        );
    }
}
