//! The replay cache: G values of verified knocks, each kept until its T + KNOCK_CHALLENGE_TTL.
//!
//! Only knocks whose H was verified are inserted, so unauthenticated traffic cannot fill it.
//! It is bounded; when every slot holds a live entry, [`ReplayCache::insert`] answers
//! [`Replay::Full`] and the knock fails closed: forgetting a live entry would let that knock be
//! replayed. A live entry is one whose knock would still pass the freshness check
//! (`now <= T + TTL`), so an entry dropped after that can never be replayed successfully.
//!
//! Fair shares: one key holder must not fill the cache with her own valid knocks and so lock
//! every other client out. Each label may hold at most `capacity / clients` live entries (its
//! share); a label at its share is refused ([`Replay::Share`]) until its own entries expire,
//! since evicting one of its live entries would let that knock be replayed. The shares add up
//! to the capacity, so [`Replay::Full`] only happens for a moment after clients were added.
//! And each label gets at most [`GRANTS_PER_MINUTE`] verified knocks in any 60 seconds
//! ([`Replay::Rate`]), so one key cannot run at hundreds a second. Both count only knocks whose
//! H was verified: nobody without the key can use up a client's share or rate.

use std::collections::{HashMap, VecDeque};

/// Default KNOCK_REPLAY_CACHE.
pub(crate) const DEFAULT_CAPACITY: usize = 4096;

/// Verified key knocks one label may make in any 60 seconds. A person knocks a few times a
/// minute at most and `knockd --knock --every` at most once a second; 30 leaves room for a few
/// devices sharing one label while keeping one key from running at hundreds a second (each
/// grant can cost API calls on every instance).
pub(crate) const GRANTS_PER_MINUTE: usize = 30;

/// The answer of [`ReplayCache::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Not seen before; now recorded.
    Fresh,
    /// Already used, and still live.
    Seen,
    /// Not seen, but every slot holds a live entry: refuse the knock.
    Full,
    /// Not seen, but this label holds its whole share of live entries: refuse its knock.
    Share,
    /// Not seen, but this label made [`GRANTS_PER_MINUTE`] knocks in the last 60 seconds.
    Rate,
}

#[derive(Debug, Clone)]
struct Entry {
    until: i64,
    label: String,
}

/// G → the last Unix second at which its knock is fresh (T + TTL) and whose knock it was. Not
/// synchronised: the server keeps it in a `Mutex` next to nothing else.
#[derive(Debug, Clone)]
pub(crate) struct ReplayCache {
    live_until: HashMap<[u8; 16], Entry>,
    /// Entries held per label (live or not yet swept).
    held: HashMap<String, usize>,
    /// Per label, the Unix seconds of its knocks recorded in the last 60 seconds.
    recent: HashMap<String, VecDeque<i64>>,
    capacity: usize,
}

impl ReplayCache {
    /// `capacity` ≥ 1 (configuration enforces it; 0 is treated as 1).
    pub(crate) fn new(capacity: usize) -> ReplayCache {
        let capacity = capacity.max(1);
        ReplayCache {
            live_until: HashMap::with_capacity(capacity.min(DEFAULT_CAPACITY)),
            held: HashMap::new(),
            recent: HashMap::new(),
            capacity,
        }
    }

    /// A label's share of the cache while `clients` clients are in use (at least one entry).
    pub(crate) fn share(&self, clients: usize) -> usize {
        (self.capacity / clients.max(1)).max(1)
    }

    /// Records `g` of `label`'s knock, live until `until` (T + TTL), unless it is already
    /// recorded and live, the label is over its rate or at its share (of `clients` clients in
    /// use), or there is no room. Expired entries are swept only when a bound is reached, so the
    /// cost is a few hash lookups per knock and an O(capacity) sweep at most once per second.
    pub(crate) fn insert(
        &mut self,
        g: [u8; 16],
        until: i64,
        now: i64,
        label: &str,
        clients: usize,
    ) -> Replay {
        if let Some(old) = self.live_until.get(&g) {
            if now <= old.until {
                return Replay::Seen;
            }
            self.forget(g);
        }
        let recent = self.recent.entry(label.to_string()).or_default();
        while recent.front().is_some_and(|&t| t <= now - 60) {
            recent.pop_front();
        }
        if recent.len() >= GRANTS_PER_MINUTE {
            return Replay::Rate;
        }
        let share = self.share(clients);
        if self.held.get(label).copied().unwrap_or(0) >= share {
            self.sweep(now);
            if self.held.get(label).copied().unwrap_or(0) >= share {
                return Replay::Share;
            }
        }
        if self.live_until.len() >= self.capacity {
            self.sweep(now);
            if self.live_until.len() >= self.capacity {
                return Replay::Full;
            }
        }
        self.live_until.insert(
            g,
            Entry {
                until,
                label: label.to_string(),
            },
        );
        *self.held.entry(label.to_string()).or_default() += 1;
        if let Some(r) = self.recent.get_mut(label) {
            r.push_back(now);
        }
        Replay::Fresh
    }

    fn forget(&mut self, g: [u8; 16]) {
        if let Some(e) = self.live_until.remove(&g) {
            self.release(&e.label);
        }
    }

    fn release(&mut self, label: &str) {
        if let Some(n) = self.held.get_mut(label) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.held.remove(label);
            }
        }
    }

    /// Drops expired entries, and the rate records of labels that made no knock in the last
    /// 60 seconds (so labels removed from the clients file do not pile up).
    fn sweep(&mut self, now: i64) {
        let expired: Vec<[u8; 16]> = self
            .live_until
            .iter()
            .filter(|(_, e)| now > e.until)
            .map(|(g, _)| *g)
            .collect();
        for g in expired {
            self.forget(g);
        }
        self.recent
            .retain(|_, r| r.back().is_some_and(|&t| t > now - 60));
    }

    /// Entries held, live or not yet swept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live_until.len()
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(i: u8) -> [u8; 16] {
        [i; 16]
    }

    #[test]
    fn table() {
        use Replay::*;
        // (g, until, now, expected, len after)
        let steps: &[(u8, i64, i64, Replay, usize)] = &[
            (1, 160, 100, Fresh, 1),
            (1, 160, 100, Seen, 1),
            (1, 160, 160, Seen, 1), // still live at T + TTL exactly
            (2, 170, 110, Fresh, 2),
            (3, 175, 115, Fresh, 3),
            (4, 180, 120, Full, 3),  // capacity 3, all live: fail closed
            (1, 160, 120, Seen, 3),  // a full cache still knows its entries
            (4, 220, 161, Fresh, 3), // entry 1 expired at 161: swept, room made
            (5, 240, 170, Full, 3),  // 2 is live until 170 inclusive
            (5, 240, 171, Fresh, 3), // 2 expired (170 < 171), swept
            (6, 240, 171, Full, 3),  // 3 (175), 4 (220) and 5 (240) live
        ];
        let mut c = ReplayCache::new(3);
        for (i, &(id, until, now, want, len)) in steps.iter().enumerate() {
            // Each its own label, one client: shares and rates stay out of the way.
            let label = format!("c{id}");
            assert_eq!(c.insert(g(id), until, now, &label, 1), want, "step {i}");
            assert_eq!(c.len(), len, "step {i}");
        }
        assert_eq!(c.capacity(), 3);
    }

    #[test]
    fn default_capacity_holds_that_many_live_entries() {
        let mut c = ReplayCache::new(DEFAULT_CAPACITY);
        for i in 0..DEFAULT_CAPACITY as u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_le_bytes());
            assert_eq!(c.insert(id, 1060, 1000, &format!("c{i}"), 1), Replay::Fresh);
        }
        assert_eq!(c.insert([0xff; 16], 1060, 1000, "x", 1), Replay::Full);
        assert_eq!(c.insert([0xff; 16], 1121, 1061, "x", 1), Replay::Fresh);
        assert_eq!(c.len(), 1);
        assert_eq!(ReplayCache::new(0).capacity(), 1);
    }

    /// One key holder filling the cache with her own valid knocks used to refuse every other
    /// client (`reason=replay-full`). Now she stops at her share; the others keep theirs.
    #[test]
    fn one_label_cannot_take_another_labels_share() {
        // Capacity 8, 2 clients: 4 each. Knocks 10 s apart stay under the rate.
        let mut c = ReplayCache::new(8);
        assert_eq!(c.share(2), 4);
        let mut id = 0u8;
        let mut next = || {
            id += 1;
            g(id)
        };
        let mut answers = Vec::new();
        for t in 0..6 {
            answers.push(c.insert(next(), 1000 + 10 * t + 600, 1000 + 10 * t, "mallory", 2));
        }
        use Replay::*;
        assert_eq!(answers, [Fresh, Fresh, Fresh, Fresh, Share, Share]);
        for t in 0..4 {
            assert_eq!(c.insert(next(), 1100 + 600, 1100 + t, "alice", 2), Fresh);
        }
        assert_eq!(c.insert(next(), 1700, 1104, "alice", 2), Share);
        // Mallory's first entry is live until 1600 inclusive; at 1601 it is swept and she has
        // room for one more: her own live entries are never evicted.
        assert_eq!(c.insert(next(), 2200, 1600, "mallory", 2), Share);
        assert_eq!(c.insert(next(), 2201, 1601, "mallory", 2), Fresh);
        // Shares follow the clients in use, at least one entry each.
        assert_eq!(c.share(0), 8);
        assert_eq!(c.share(100), 1);
    }

    #[test]
    fn one_label_makes_at_most_grants_per_minute_knocks_in_any_60_seconds() {
        let mut c = ReplayCache::new(DEFAULT_CAPACITY);
        let mut n = 0u32;
        let mut knock = |label: &str, now: i64| {
            n += 1;
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&n.to_le_bytes());
            c.insert(id, now + 60, now, label, 2)
        };
        // A burst of 100 in one second: GRANTS_PER_MINUTE pass.
        let fresh = (0..100)
            .filter(|_| knock("mallory", 1000) == Replay::Fresh)
            .count();
        assert_eq!(fresh, GRANTS_PER_MINUTE);
        assert_eq!(knock("mallory", 1059), Replay::Rate);
        assert_eq!(
            knock("alice", 1059),
            Replay::Fresh,
            "another label is not limited"
        );
        // 60 seconds after the burst the window has moved on.
        assert_eq!(knock("mallory", 1060), Replay::Fresh);
    }
}
