//! The replay cache: G values of verified knocks, each kept until its T + KNOCK_CHALLENGE_TTL.
//!
//! Only knocks whose H was verified are inserted, so unauthenticated traffic cannot fill it.
//! It is bounded; when every slot holds a live entry, [`ReplayCache::insert`] answers
//! [`Replay::Full`] and the knock fails closed: forgetting a live entry would let that knock be
//! replayed. A live entry is one whose knock would still pass the freshness check
//! (`now <= T + TTL`), so an entry dropped after that can never be replayed successfully.

use std::collections::HashMap;

/// Default KNOCK_REPLAY_CACHE.
pub(crate) const DEFAULT_CAPACITY: usize = 4096;

/// The answer of [`ReplayCache::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Not seen before; now recorded.
    Fresh,
    /// Already used, and still live.
    Seen,
    /// Not seen, but every slot holds a live entry: refuse the knock.
    Full,
}

/// G → the last Unix second at which its knock is fresh (T + TTL). Not synchronised: the
/// server keeps it in a `Mutex` next to nothing else.
#[derive(Debug, Clone)]
pub(crate) struct ReplayCache {
    live_until: HashMap<[u8; 16], i64>,
    capacity: usize,
}

impl ReplayCache {
    /// `capacity` ≥ 1 (configuration enforces it; 0 is treated as 1).
    pub(crate) fn new(capacity: usize) -> ReplayCache {
        let capacity = capacity.max(1);
        ReplayCache {
            live_until: HashMap::with_capacity(capacity.min(DEFAULT_CAPACITY)),
            capacity,
        }
    }

    /// Records `g`, live until `until` (T + TTL), unless it is already recorded and live, or
    /// there is no room. Expired entries are swept only when the cache is full, so the cost is
    /// one hash lookup per knock and an O(capacity) sweep at most once per `capacity` inserts.
    pub(crate) fn insert(&mut self, g: [u8; 16], until: i64, now: i64) -> Replay {
        if let Some(&old) = self.live_until.get(&g) {
            if now <= old {
                return Replay::Seen;
            }
            self.live_until.remove(&g);
        }
        if self.live_until.len() >= self.capacity {
            self.live_until.retain(|_, &mut u| now <= u);
            if self.live_until.len() >= self.capacity {
                return Replay::Full;
            }
        }
        self.live_until.insert(g, until);
        Replay::Fresh
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
            assert_eq!(c.insert(g(id), until, now), want, "step {i}");
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
            assert_eq!(c.insert(id, 1060, 1000), Replay::Fresh);
        }
        assert_eq!(c.insert([0xff; 16], 1060, 1000), Replay::Full);
        assert_eq!(c.insert([0xff; 16], 1121, 1061), Replay::Fresh);
        assert_eq!(c.len(), 1);
        assert_eq!(ReplayCache::new(0).capacity(), 1);
    }
}
