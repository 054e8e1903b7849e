//! Rate limits, so that a brute force cannot turn knockd into a spammer: the same (event,
//! address) at most once per `NOTIFY_MIN_INTERVAL`, and at most `NOTIFY_MAX_PER_MINUTE`
//! notifications of each kind in any 60 seconds. Pure: the caller passes a monotonic time in
//! seconds.
//!
//! Each kind has its own per-minute budget because one shared budget lets the cheapest event
//! silence the most important one: wrong knocks from many addresses cost an attacker nothing
//! and would use the whole minute up, so the grant that follows (a stolen secret or key) would
//! never be told. Only failures and lockouts can be caused without the secret, so a flood from
//! outside still costs at most twice the cap a minute.

use std::collections::{HashMap, VecDeque};

use super::event::EventKind;

/// Entries in the table of last-sent times; when full, entries older than the interval go
/// first, then the oldest one.
pub(crate) const MAX_KEYS: usize = 4096;
const WINDOW_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Send,
    /// The same (event, address) was sent less than the interval ago.
    Repeat,
    /// The per-minute cap of this kind is reached.
    OverCap,
}

/// How many kinds of events there are (`EventKind::Test` is the last).
const KINDS: usize = EventKind::Test as usize + 1;

pub(crate) struct Limiter {
    min_interval: u64,
    per_minute: usize,
    /// By [`key`]: a `String` key, whose table code the binary already has (the replay
    /// cache's per-label table has the same shape) instead of a copy for a tuple key.
    last: HashMap<String, u64>,
    /// Per kind (indexed by `EventKind as usize`), the times of the sends of the last minute.
    sent: [VecDeque<u64>; KINDS],
}

impl Limiter {
    /// `min_interval` 0 turns the repeat check off; `per_minute` is at least 1.
    pub(crate) fn new(min_interval: u64, per_minute: u32) -> Limiter {
        Limiter {
            min_interval,
            per_minute: per_minute.max(1) as usize,
            last: HashMap::new(),
            sent: Default::default(),
        }
    }

    /// Whether to send (kind, ip) at `now`; a Send is recorded against both limits.
    pub(crate) fn check(&mut self, kind: EventKind, ip: &str, now: u64) -> Admission {
        if self.min_interval > 0 {
            if let Some(&t) = self.last.get(&key(kind, ip)) {
                if now.saturating_sub(t) < self.min_interval {
                    return Admission::Repeat;
                }
            }
        }
        let Some(sent) = self.sent.get_mut(kind as usize) else {
            return Admission::Send;
        };
        while sent
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= WINDOW_SECS)
        {
            sent.pop_front();
        }
        if sent.len() >= self.per_minute {
            return Admission::OverCap;
        }
        sent.push_back(now);
        if self.min_interval > 0 {
            self.remember(kind, ip, now);
        }
        Admission::Send
    }

    fn remember(&mut self, kind: EventKind, ip: &str, now: u64) {
        if self.last.len() >= MAX_KEYS && !self.last.contains_key(&key(kind, ip)) {
            let interval = self.min_interval;
            self.last.retain(|_, t| now.saturating_sub(*t) < interval);
            if self.last.len() >= MAX_KEYS {
                if let Some(oldest) = self
                    .last
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(k, _)| k.clone())
                {
                    self.last.remove(&oldest);
                }
            }
        }
        self.last.insert(key(kind, ip), now);
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.last.len()
    }
}

/// The key of (kind, address) in the table of last-sent times: the kind as one character, then
/// the address.
fn key(kind: EventKind, ip: &str) -> String {
    let mut k = String::from(char::from(kind as u8));
    k.push_str(ip);
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use Admission::*;
    use EventKind::*;

    #[test]
    fn same_event_and_address_once_per_interval() {
        let mut l = Limiter::new(600, 20);
        let steps = [
            (Grant, "203.0.113.5", 0, Send),
            (Grant, "203.0.113.5", 1, Repeat),
            (Fail, "203.0.113.5", 2, Send),
            (Grant, "203.0.113.6", 3, Send),
            (Grant, "203.0.113.5", 599, Repeat),
            (Grant, "203.0.113.5", 600, Send),
            (Grant, "203.0.113.5", 601, Repeat),
        ];
        for (i, (kind, ip, now, want)) in steps.into_iter().enumerate() {
            assert_eq!(l.check(kind, ip, now), want, "step {i}");
        }
    }

    #[test]
    fn global_cap_per_sliding_minute() {
        let mut l = Limiter::new(600, 3);
        let ip = |n: u32| format!("198.51.100.{n}");
        assert_eq!(l.check(Lockout, &ip(1), 0), Send);
        assert_eq!(l.check(Lockout, &ip(2), 10), Send);
        assert_eq!(l.check(Lockout, &ip(3), 20), Send);
        assert_eq!(l.check(Lockout, &ip(4), 30), OverCap);
        // A capped event was not sent, so it is not a repeat later.
        assert_eq!(l.check(Lockout, &ip(4), 60), Send);
        assert_eq!(l.check(Lockout, &ip(5), 61), OverCap);
        assert_eq!(l.check(Lockout, &ip(5), 70), Send);
    }

    #[test]
    fn each_kind_has_its_own_budget() {
        let mut l = Limiter::new(600, 3);
        let ip = |n: u32| format!("198.51.100.{n}");
        // Failures from many addresses spend the failures' budget only.
        for n in 0..3 {
            assert_eq!(l.check(Fail, &ip(n), 1), Send, "fail {n}");
        }
        assert_eq!(l.check(Fail, &ip(3), 2), OverCap);
        let steps = [
            (Grant, "203.0.113.5", 3, Send),
            (Lockout, "198.51.100.1", 4, Send),
            (Revoke, "203.0.113.5", 5, Send),
            (Refresh, "203.0.113.6", 5, Send),
            (Prune, "", 5, Send),
            (Fail, "198.51.100.9", 6, OverCap),
            // Grants, too, are capped among themselves.
            (Grant, "203.0.113.6", 7, Send),
            (Grant, "203.0.113.7", 8, Send),
            (Grant, "203.0.113.8", 9, OverCap),
            (Lockout, "198.51.100.2", 10, Send),
            // A minute after the first failures their budget is back.
            (Fail, "198.51.100.9", 61, Send),
        ];
        for (i, (kind, ip, now, want)) in steps.into_iter().enumerate() {
            assert_eq!(l.check(kind, ip, now), want, "step {i}");
        }
    }

    #[test]
    fn interval_zero_only_caps() {
        let mut l = Limiter::new(0, 2);
        assert_eq!(l.check(Grant, "a", 0), Send);
        assert_eq!(l.check(Grant, "a", 0), Send);
        assert_eq!(l.check(Grant, "a", 0), OverCap);
        assert_eq!(l.keys(), 0);
    }

    #[test]
    fn a_lockout_flood_sends_at_most_the_cap() {
        let mut l = Limiter::new(600, 20);
        let mut sent = 0;
        // 100,000 failures from 50,000 addresses over 10 minutes.
        for i in 0..100_000u64 {
            let ip = format!(
                "10.{}.{}.{}",
                i % 50_000 / 65_536,
                i % 50_000 / 256 % 256,
                i % 256
            );
            if l.check(Fail, &ip, i * 600 / 100_000) == Send {
                sent += 1;
            }
        }
        assert!(sent <= 20 * 10, "{sent}");
        assert!(l.keys() <= MAX_KEYS);
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut l = Limiter::new(1_000_000, u32::MAX);
        for i in 0..(MAX_KEYS as u64 + 100) {
            assert_eq!(l.check(Grant, &i.to_string(), i), Send);
        }
        assert_eq!(l.keys(), MAX_KEYS);
        // The oldest went first; recent ones are still remembered.
        assert_eq!(l.check(Grant, "0", 999_999), Send);
        assert_eq!(
            l.check(Grant, &(MAX_KEYS as u64 + 99).to_string(), 0),
            Repeat
        );
    }
}
