//! The table of open connections, for the cap: each connection is one descriptor, owned by the
//! poll loop (`server`). Past MAX_CONNECTIONS, or when the process runs out of descriptors, the
//! oldest connection still reading a request is closed at once, so slow clients cannot starve
//! new ones. A knock waiting on the firewall (or writing its answer) is never evicted.
//!
//! The loop is the only one to open and end connections; the mutex is there because a knock's
//! state is also set by `door` (from the thread that waits on the writers, and in tests).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::sync::lock;

/// What an open connection is doing, for the choice of whom to evict at the cap.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// Waiting for or reading a request, or writing a non-knock answer: cheap to drop.
    Reading,
    /// A knock with the right secret is waiting on the firewall: not evicted.
    Knocking,
}

struct Conns {
    next_id: u64,
    /// Ids grow with admission, so the smallest id in the Reading state is the oldest reader.
    /// Eviction scans the map (a few µs at 4,096 entries, only at the cap or out of
    /// descriptors): an ordered set would cost its code in the static binary for little.
    open: HashMap<u64, ConnState>,
}

impl Conns {
    /// The oldest connection still reading a request leaves the table.
    fn pop_oldest_reading(&mut self) -> Option<u64> {
        let oldest = self
            .open
            .iter()
            .filter(|(_, s)| **s == ConnState::Reading)
            .map(|(id, _)| *id)
            .min()?;
        self.open.remove(&oldest);
        Some(oldest)
    }
}

/// The table: entries and the cap.
pub(crate) struct ConnTable {
    /// MAX_CONNECTIONS, or less when the descriptor limit cannot be raised to fit it.
    cap: usize,
    conns: Mutex<Conns>,
}

/// A connection admitted: its id, and the connection the caller must close first to make
/// room for it (the oldest reader, when the table was full).
pub(crate) struct Admitted {
    pub(crate) id: u64,
    pub(crate) evict: Option<u64>,
}

impl ConnTable {
    pub(crate) fn new(cap: usize) -> ConnTable {
        ConnTable {
            cap,
            conns: Mutex::new(Conns {
                next_id: 0,
                open: HashMap::new(),
            }),
        }
    }

    /// Registers a connection. At the cap the oldest connection still reading a request is
    /// removed from the table and named in `evict`: the caller closes it before anything else,
    /// so open connections never outnumber the cap. When every slot holds a knock, None: the
    /// new connection is dropped (it cannot wait, the loop must not block).
    pub(crate) fn open(&self) -> Option<Admitted> {
        let mut conns = lock(&self.conns);
        let evict = if conns.open.len() >= self.cap {
            Some(conns.pop_oldest_reading()?)
        } else {
            None
        };
        conns.next_id += 1;
        let id = conns.next_id;
        conns.open.insert(id, ConnState::Reading);
        Some(Admitted { id, evict })
    }

    /// The caller closed connection `id`: its slot is free.
    pub(crate) fn end(&self, id: u64) {
        lock(&self.conns).open.remove(&id);
    }

    pub(crate) fn set_state(&self, id: u64, state: ConnState) {
        if let Some(s) = lock(&self.conns).open.get_mut(&id) {
            *s = state;
        }
    }

    /// Out of descriptors: the oldest reader leaves the table; the caller closes it.
    pub(crate) fn evict_oldest_reading(&self) -> Option<u64> {
        lock(&self.conns).pop_oldest_reading()
    }

    /// Every connection in the Reading state leaves the table (the stop); the caller closes
    /// them.
    pub(crate) fn take_reading(&self) -> Vec<u64> {
        let mut conns = lock(&self.conns);
        let mut ids: Vec<u64> = Vec::new();
        conns.open.retain(|id, s| {
            let reading = *s == ConnState::Reading;
            if reading {
                ids.push(*id);
            }
            !reading
        });
        ids
    }

    /// Knocks waiting on the firewall (or writing their answer) now.
    pub(crate) fn knocking(&self) -> usize {
        lock(&self.conns)
            .open
            .values()
            .filter(|s| **s == ConnState::Knocking)
            .count()
    }

    /// The door's tests admit a connection as the old thread-per-connection front did.
    #[cfg(test)]
    pub(crate) fn admit(&self, _stream: &std::sync::Arc<std::net::TcpStream>) -> Option<u64> {
        self.open().map(|a| a.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_reader_is_evicted_never_a_knock() {
        let t = ConnTable::new(3);
        let ids: Vec<u64> = (0..3).filter_map(|_| t.open()).map(|a| a.id).collect();
        assert_eq!(ids.len(), 3);
        t.set_state(ids[0], ConnState::Knocking);
        let a = t.open().expect("room made");
        assert_eq!(a.evict, Some(ids[1]), "the oldest reader, not the knock");
        t.set_state(ids[2], ConnState::Knocking);
        t.set_state(a.id, ConnState::Knocking);
        assert!(t.open().is_none(), "every slot holds a knock");
        assert_eq!(t.knocking(), 3);
        t.set_state(ids[2], ConnState::Reading);
        assert_eq!(t.evict_oldest_reading(), Some(ids[2]));
        assert_eq!(t.take_reading(), Vec::<u64>::new());
        t.end(ids[0]);
        assert_eq!(t.knocking(), 1);
    }
}
