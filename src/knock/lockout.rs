//! Brute-force lockout: an address that fails too many knocks within a window is refused for
//! a while, without a secret check or an API call. Pure: the caller passes the time in.
//! The table is bounded whatever the number of attacking addresses.

use std::collections::HashMap;
use std::net::IpAddr;

/// Addresses tracked at most (about 100 bytes each: ~1.6 MB at the bound).
pub const MAX_TRACKED: usize = 16_384;

/// The address a failure is counted against: IPv6 clients by their /64, since one subscriber
/// usually holds a whole /64 and could otherwise rotate through it for unlimited guesses.
pub fn key(ip: IpAddr) -> IpAddr {
    match crate::rules::cidr::canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures counted in the current window.
    failures: u32,
    window_start: u64,
    locked_until: u64,
}

#[derive(Debug)]
pub struct Lockout {
    max_failures: u32,
    window: u64,
    duration: u64,
    capacity: usize,
    table: HashMap<IpAddr, Entry>,
}

impl Lockout {
    /// `max_failures` 0 disables the lockout.
    pub fn new(max_failures: u32, window_secs: u64, duration_secs: u64) -> Lockout {
        Lockout::with_capacity(max_failures, window_secs, duration_secs, MAX_TRACKED)
    }

    pub fn with_capacity(
        max_failures: u32,
        window: u64,
        duration: u64,
        capacity: usize,
    ) -> Lockout {
        Lockout {
            max_failures,
            window,
            duration,
            capacity: capacity.max(1),
            table: HashMap::new(),
        }
    }

    pub fn is_locked(&self, ip: IpAddr, now: u64) -> bool {
        self.table.get(&ip).is_some_and(|e| e.locked_until > now)
    }

    /// Records a failed knock; true when this failure locks the address out.
    pub fn fail(&mut self, ip: IpAddr, now: u64) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        if !self.table.contains_key(&ip) && self.table.len() >= self.capacity {
            self.make_room(now);
        }
        let e = self.table.entry(ip).or_insert(Entry {
            failures: 0,
            window_start: now,
            locked_until: 0,
        });
        if now.saturating_sub(e.window_start) >= self.window {
            e.failures = 0;
            e.window_start = now;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures >= self.max_failures && e.locked_until <= now {
            e.locked_until = now + self.duration;
            e.failures = 0;
            e.window_start = now;
            return true;
        }
        false
    }

    /// A good knock clears the address's record.
    pub fn succeed(&mut self, ip: IpAddr) {
        self.table.remove(&ip);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Drops stale entries; if all are live, the half least worth keeping (unlocked first,
    /// then the oldest windows). Amortised: runs once per `capacity / 2` new addresses.
    fn make_room(&mut self, now: u64) {
        let (window, before) = (self.window, self.table.len());
        self.table
            .retain(|_, e| e.locked_until > now || now.saturating_sub(e.window_start) < window);
        if self.table.len() < before.max(1) * 3 / 4 && self.table.len() < self.capacity {
            return;
        }
        let mut keys: Vec<(bool, u64, IpAddr)> = self
            .table
            .iter()
            .map(|(ip, e)| (e.locked_until > now, e.window_start, *ip))
            .collect();
        keys.sort_unstable();
        for (_, _, ip) in keys.iter().take(self.table.len() / 2 + 1) {
            self.table.remove(ip);
        }
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
    fn success_clears_and_zero_disables() {
        let mut l = Lockout::new(2, 600, 1800);
        l.fail(ip(1), 0);
        l.succeed(ip(1));
        assert!(!l.fail(ip(1), 1));
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
            assert!(l.len() <= 1000);
        }
        assert!(l.is_locked(ip(7), 2), "a locked address survives eviction");
    }
}
