//! Brute-force lockout: an address that fails too many knocks within a window is refused for
//! a while, without a secret check or an API call. Pure: the caller passes the time in (seconds
//! of a monotonic clock, so a wall-clock step neither unlocks nor extends anything).
//!
//! The table is bounded whatever the number of attacking addresses, and a locked entry is never
//! dropped before its lockout ends. When the table is full of live entries, a new address is
//! counted in its aggregate (IPv4 /24, IPv6 /48) in a second bounded table; when that is full
//! too, an address that has no entry is refused outright (`is_locked` says so) until entries
//! expire. Spraying addresses can therefore cost strangers their knocks for a while, but can
//! never unlock anyone or buy unlimited guesses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

/// Addresses tracked at most (about 100 bytes each: ~1.6 MB at the bound).
pub(super) const MAX_TRACKED: usize = 16_384;

/// The one bucket of knocks that came through a trusted proxy without a forwarded address
/// that could be read: they all count against it, so junk forwarded headers cannot buy
/// unlimited guesses. `::` is never a client's address.
pub(super) const UNREADABLE: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// The address a failure is counted against: IPv6 clients by their /64, since one subscriber
/// usually holds a whole /64 and could otherwise rotate through it for unlimited guesses.
pub(super) fn key(ip: IpAddr) -> IpAddr {
    match crate::rules::cidr::canonical(ip) {
        v6 @ IpAddr::V6(_) => crate::rules::cidr::network(v6, 64),
        v4 => v4,
    }
}

/// The aggregate a key falls into when the table is full: its IPv4 /24 or IPv6 /48.
pub(super) fn aggregate(ip: IpAddr) -> IpAddr {
    crate::rules::cidr::network(ip, if ip.is_ipv4() { 24 } else { 48 })
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures counted in the current window.
    failures: u32,
    window_start: u64,
    locked_until: u64,
}

impl Entry {
    fn live(&self, now: u64, window: u64) -> bool {
        self.locked_until > now || now.saturating_sub(self.window_start) < window
    }
}

#[derive(Debug)]
struct Buckets {
    capacity: usize,
    map: HashMap<IpAddr, Entry>,
    /// The `now` of the last sweep of stale entries (at most one sweep a second).
    swept: Option<u64>,
}

impl Buckets {
    fn new(capacity: usize) -> Buckets {
        Buckets {
            capacity: capacity.max(1),
            map: HashMap::new(),
            swept: None,
        }
    }

    fn locked(&self, ip: IpAddr, now: u64) -> bool {
        self.map.get(&ip).is_some_and(|e| e.locked_until > now)
    }

    /// Whether `ip` has an entry or one can be made, after dropping stale entries if full.
    fn has_room_for(&mut self, ip: IpAddr, now: u64, window: u64) -> bool {
        if self.map.len() < self.capacity || self.map.contains_key(&ip) {
            return true;
        }
        if self.swept != Some(now) {
            self.swept = Some(now);
            self.map.retain(|_, e| e.live(now, window));
        }
        self.map.len() < self.capacity
    }
}

#[derive(Debug)]
pub(super) struct Lockout {
    max_failures: u32,
    window: u64,
    duration: u64,
    table: Buckets,
    /// Aggregates of addresses that found `table` full of live entries.
    aggregates: Buckets,
}

impl Lockout {
    /// `max_failures` 0 disables the lockout.
    pub(super) fn new(max_failures: u32, window_secs: u64, duration_secs: u64) -> Lockout {
        Lockout::with_capacity(max_failures, window_secs, duration_secs, MAX_TRACKED)
    }

    pub(super) fn with_capacity(
        max_failures: u32,
        window: u64,
        duration: u64,
        capacity: usize,
    ) -> Lockout {
        Lockout {
            max_failures,
            window,
            duration,
            table: Buckets::new(capacity),
            aggregates: Buckets::new(capacity / 4),
        }
    }

    /// Whether a knock for `ip` is refused without a look at its secret: its entry or its
    /// aggregate is locked, or both tables are full of live entries and it has neither.
    pub(super) fn is_locked(&mut self, ip: IpAddr, now: u64) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        let agg = aggregate(ip);
        if self.table.locked(ip, now) || self.aggregates.locked(agg, now) {
            return true;
        }
        !self.table.has_room_for(ip, now, self.window)
            && !self.aggregates.has_room_for(agg, now, self.window)
    }

    /// Records a failed knock; true when this failure locks the address (or, with the table
    /// full, its aggregate) out.
    pub(super) fn fail(&mut self, ip: IpAddr, now: u64) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        let (window, duration, max) = (self.window, self.duration, self.max_failures);
        let (table, ip) = if self.table.has_room_for(ip, now, window) {
            (&mut self.table, ip)
        } else if self.aggregates.has_room_for(aggregate(ip), now, window) {
            (&mut self.aggregates, aggregate(ip))
        } else {
            return false;
        };
        let e = table.map.entry(ip).or_insert(Entry {
            failures: 0,
            window_start: now,
            locked_until: 0,
        });
        if now.saturating_sub(e.window_start) >= window {
            e.failures = 0;
            e.window_start = now;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures >= max && e.locked_until <= now {
            e.locked_until = now + duration;
            e.failures = 0;
            e.window_start = now;
            return true;
        }
        false
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.table.map.len() + self.aggregates.map.len()
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    #[test]
    fn locks_after_n_failures_within_the_window_and_unlocks_later() {
        let mut l = Lockout::new(3, 600, 1800);
        assert!(!l.fail(ip(1), 100));
        assert!(!l.fail(ip(1), 101));
        assert!(!l.is_locked(ip(1), 102));
        assert!(l.fail(ip(1), 102));
        assert!(l.is_locked(ip(1), 103));
        assert!(l.is_locked(ip(1), 1901));
        assert!(!l.is_locked(ip(1), 1902));
        assert!(!l.is_locked(ip(2), 103));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut l = Lockout::new(3, 600, 1800);
        l.fail(ip(1), 0);
        l.fail(ip(1), 10);
        assert!(!l.fail(ip(1), 700));
        assert!(!l.fail(ip(1), 701));
        assert!(l.fail(ip(1), 702));
    }

    #[test]
    fn zero_disables() {
        let mut off = Lockout::new(0, 600, 1800);
        for t in 0..100 {
            assert!(!off.fail(ip(1), t));
        }
        assert!(off.is_empty());
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(key(a), key(b));
        assert_ne!(key(a), key(c));
        assert_eq!(
            key("::ffff:203.0.113.9".parse().expect("ip")),
            ip(0xCB00_7109)
        );
        let mut l = Lockout::new(2, 600, 1800);
        l.fail(key(a), 0);
        assert!(l.fail(key(b), 1));
        assert!(l.is_locked(key(a), 2) && !l.is_locked(key(c), 2));
    }

    #[test]
    fn table_stays_bounded_under_a_spray_of_addresses_and_keeps_lockouts() {
        let mut l = Lockout::with_capacity(2, 600, 1800, 1000);
        l.fail(ip(7), 0);
        l.fail(ip(7), 0);
        for n in 100..200_000u32 {
            l.fail(ip(n), 1);
            assert!(l.len() <= 1000 + 250);
        }
        assert!(l.is_locked(ip(7), 2), "a locked address survives eviction");
    }

    #[test]
    fn a_spray_of_locked_addresses_never_unlocks_anyone() {
        // Every sprayed address locks at once: the old half-eviction dropped the oldest
        // locked entries, the target first.
        let mut l = Lockout::with_capacity(1, 600, 1800, 1000);
        let target = key("2001:db8:1:1::1".parse().expect("ip"));
        assert!(l.fail(target, 0));
        for n in 0..20_000u128 {
            let v6 = (0x2001_0db8_0001_0000u128 + 2 + n) << 64 | 1;
            let k = key(IpAddr::V6(v6.into()));
            if !l.is_locked(k, 1) {
                l.fail(k, 1);
            }
            assert!(l.len() <= 1000 + 250);
        }
        for t in [2, 100, 1799] {
            assert!(l.is_locked(target, t), "unlocked at {t}");
        }
        // The sprayed /48 ended up counted, and locked, as one aggregate.
        let other: IpAddr = key("2001:db8:1:ffff::9".parse().expect("ip"));
        assert!(l.is_locked(other, 2));
        // Another /48 still has room in the aggregate table: not refused.
        let elsewhere: IpAddr = key("2001:db8:2:1::9".parse().expect("ip"));
        assert!(!l.is_locked(elsewhere, 2));
        // Both lockouts end on time (the target's own at 1800, its /48's at 1801).
        assert!(!l.is_locked(target, 1802));
    }

    #[test]
    fn both_tables_full_refuses_new_addresses_until_entries_expire() {
        let mut l = Lockout::with_capacity(1, 600, 60, 8);
        for n in 0..8u32 {
            l.fail(ip(n << 8 | 1), 0); // 8 different /24s fill the table
        }
        for n in 8..10u32 {
            l.fail(ip(n << 8 | 1), 0); // two aggregates fill the aggregate table (8/4)
        }
        let stranger = ip(200 << 8 | 1);
        assert!(l.is_locked(stranger, 1), "no room anywhere: refused");
        assert!(!l.fail(stranger, 1));
        // Lockouts end at 60, windows at 600: only then is there room again.
        assert!(l.is_locked(stranger, 599));
        assert!(!l.is_locked(stranger, 600));
    }

    #[test]
    fn aggregates() {
        assert_eq!(aggregate(ip(0xCB00_7109)), ip(0xCB00_7100));
        assert_eq!(
            aggregate("2001:db8:1:2::".parse().expect("ip")),
            "2001:db8:1::".parse::<IpAddr>().expect("ip")
        );
    }
}

/// Written against survivors of `make mutants` (cargo-mutants): each pins a behaviour a user
/// would notice (an address locked or not, which bucket a failure counts against). Kept apart
/// from `tests` so edits of either merge cleanly.
#[cfg(test)]
mod mutant_kills {
    use super::*;

    /// One address in each /24: 10.n.0.1.
    fn v4(n: u32) -> IpAddr {
        IpAddr::V4((0x0a00_0001 | n << 16).into())
    }

    /// Another address of `ip`'s /24.
    fn neighbour(ip: IpAddr) -> IpAddr {
        let IpAddr::V4(a) = ip else { panic!("v4") };
        IpAddr::V4((u32::from(a) ^ 0x80).into())
    }

    #[test]
    fn a_failure_exactly_one_window_later_starts_a_new_count() {
        let mut l = Lockout::new(2, 600, 1800);
        assert!(!l.fail(v4(1), 0));
        assert!(!l.fail(v4(1), 600), "the first failure no longer counts");
        assert!(!l.is_locked(v4(1), 601));
        assert!(l.fail(v4(1), 601));
    }

    #[test]
    fn a_lockout_ends_exactly_duration_seconds_after_it_began() {
        let mut l = Lockout::new(1, 600, 1800);
        assert!(l.fail(v4(1), 1000));
        assert!(l.is_locked(v4(1), 1000));
        assert!(l.is_locked(v4(1), 2799));
        assert!(!l.is_locked(v4(1), 2800));
    }

    #[test]
    fn a_failure_at_the_second_a_lockout_ends_can_lock_again() {
        let mut l = Lockout::new(1, 600, 1800);
        assert!(l.fail(v4(1), 0));
        assert!(!l.is_locked(v4(1), 1800));
        assert!(l.fail(v4(1), 1800), "locks again, for another 1800 s");
        assert!(l.is_locked(v4(1), 3599));
        assert!(!l.is_locked(v4(1), 3600));
    }

    #[test]
    fn failing_while_locked_neither_extends_nor_reports_a_new_lockout() {
        let mut l = Lockout::new(1, 600, 1800);
        assert!(l.fail(v4(1), 0));
        assert!(!l.fail(v4(1), 100), "already locked");
        assert!(!l.fail(v4(1), 1799));
        assert!(!l.is_locked(v4(1), 1800), "the lockout still ends at 1800");
    }

    #[test]
    fn the_failure_count_restarts_after_a_lockout() {
        // max 3: after a lockout the count is zero, so the next lockout needs three new failures.
        let mut l = Lockout::new(3, 10_000, 100);
        for t in 0..2 {
            assert!(!l.fail(v4(1), t));
        }
        assert!(l.fail(v4(1), 2));
        assert!(!l.fail(v4(1), 200));
        assert!(!l.fail(v4(1), 201));
        assert!(!l.is_locked(v4(1), 202));
        assert!(l.fail(v4(1), 202));
    }

    #[test]
    fn zero_max_failures_never_locks_even_with_full_tables() {
        let mut l = Lockout::with_capacity(0, 600, 1800, 4);
        for n in 0..100 {
            assert!(!l.fail(v4(n), 0));
            assert!(!l.is_locked(v4(n), 0));
        }
    }

    #[test]
    fn a_full_table_sends_the_next_address_to_its_24_and_locks_the_whole_24() {
        // Capacity 4: four addresses get their own entries; the fifth, with the table full of
        // live entries, counts against its /24.
        let mut l = Lockout::with_capacity(1, 600, 1800, 4);
        for n in 0..4 {
            assert!(l.fail(v4(n), 0));
        }
        assert!(!l.is_locked(v4(9), 1), "room in the aggregate table");
        assert!(!l.is_locked(neighbour(v4(9)), 1));
        assert!(l.fail(v4(9), 1), "its /24 is locked");
        assert!(l.is_locked(v4(9), 2));
        assert!(l.is_locked(neighbour(v4(9)), 2), "the whole /24");
        // The four own entries are untouched.
        for n in 0..4 {
            assert!(l.is_locked(v4(n), 2));
        }
        // Another /24 has neither its own entry nor room in the aggregate table (capacity 1).
        assert!(l.is_locked(v4(20), 2), "both tables full: refused");
    }

    #[test]
    fn a_tracked_address_keeps_its_own_entry_when_the_table_is_full() {
        let mut l = Lockout::with_capacity(2, 600, 1800, 4);
        for n in 0..4 {
            assert!(!l.fail(v4(n), 0));
        }
        // Full, but v4(0) is in it: its second failure locks it, not its /24.
        assert!(l.fail(v4(0), 1));
        assert!(l.is_locked(v4(0), 2));
        assert!(!l.is_locked(neighbour(v4(0)), 2));
        assert!(!l.is_locked(v4(0), 1801));
    }

    #[test]
    fn stale_entries_make_room_for_new_addresses_once_their_window_ends() {
        // Entries that failed once and were never locked stop mattering when their window ends.
        let mut l = Lockout::with_capacity(2, 600, 1800, 4);
        for n in 0..4 {
            assert!(!l.fail(v4(n), 0));
        }
        // Still live at 599: a new address counts against its /24.
        assert!(!l.fail(v4(9), 599));
        assert!(l.fail(neighbour(v4(9)), 599), "the /24's second failure");
        assert!(l.is_locked(v4(9), 600));
        // At 600 the four entries are stale: a new address gets its own entry again.
        assert!(!l.fail(v4(10), 600));
        assert!(l.fail(v4(10), 601));
        assert!(l.is_locked(v4(10), 602));
        assert!(
            !l.is_locked(neighbour(v4(10)), 602),
            "only the address, not its /24"
        );
    }

    #[test]
    fn a_lockout_longer_than_the_window_keeps_its_entry_until_it_ends() {
        // Window 60, lockout 600: the entries stay live (and the tables full) until 600.
        let mut l = Lockout::with_capacity(1, 60, 600, 4);
        for n in 0..4 {
            assert!(l.fail(v4(n), 0));
        }
        assert!(l.fail(v4(9), 0), "the aggregate table's one entry");
        let stranger = v4(20);
        assert!(l.is_locked(stranger, 59));
        assert!(
            l.is_locked(stranger, 60),
            "locked entries are live past their window"
        );
        assert!(l.is_locked(stranger, 599));
        assert!(!l.is_locked(stranger, 600));
        assert!(l.fail(stranger, 600), "its own entry again, locked");
        assert!(!l.is_locked(neighbour(stranger), 601));
    }

    #[test]
    fn the_aggregate_table_holds_a_quarter_of_the_capacity() {
        // Capacity 16: 4 aggregates fit; the fifth /24 is refused outright.
        let mut l = Lockout::with_capacity(3, 600, 1800, 16);
        for n in 0..16 {
            assert!(!l.fail(v4(n), 0));
        }
        for n in 100..104 {
            assert!(!l.is_locked(v4(n), 1), "aggregate {n} has room");
            assert!(!l.fail(v4(n), 1));
        }
        assert!(l.is_locked(v4(104), 1), "no room for a fifth aggregate");
        assert!(!l.fail(v4(104), 1), "not counted anywhere");
        // An address already tracked is judged by its own entry, not refused.
        assert!(!l.is_locked(v4(0), 1));
        assert!(!l.is_locked(v4(100), 1));
    }

    #[test]
    fn tables_of_capacity_one_still_lock_an_address_then_a_24_then_refuse() {
        // Buckets capacity 1, aggregate capacity 1 (a quarter of 1, at least one).
        let mut l = Lockout::with_capacity(1, 600, 1800, 1);
        assert!(l.fail(v4(1), 0));
        assert!(
            l.fail(v4(2), 0),
            "the second address counts against its /24"
        );
        assert!(l.is_locked(neighbour(v4(2)), 1));
        assert!(l.is_locked(v4(1), 1));
        assert!(l.is_locked(v4(3), 1), "no room anywhere");
    }

    #[test]
    fn ipv6_keys_are_the_64_and_aggregates_the_48() {
        let a: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().expect("ip");
        assert_eq!(key(a), "2001:db8:1:2::".parse::<IpAddr>().expect("ip"));
        assert_eq!(aggregate(a), "2001:db8:1::".parse::<IpAddr>().expect("ip"));
        let v4a: IpAddr = "203.0.113.250".parse().expect("ip");
        assert_eq!(key(v4a), v4a, "IPv4 addresses are their own key");
        assert_eq!(aggregate(v4a), "203.0.113.0".parse::<IpAddr>().expect("ip"));
    }
}
