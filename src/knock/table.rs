//! The table of open connections, for the cap: each connection is one descriptor, shared by
//! its thread and the table (for eviction). Past MAX_CONNECTIONS, or when the process runs out
//! of descriptors, the oldest connection still reading a request is closed, so slow clients
//! cannot starve new ones, and the new one waits until that thread has ended. A knock waiting
//! on the firewall is never evicted.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sync::lock;

/// What an open connection's thread is doing, for the choice of whom to evict at the cap.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// Waiting for or reading a request: cheap to drop.
    Reading,
    /// A knock with the right secret is waiting on the firewall: not evicted.
    Knocking,
    /// Shut down to make room; its thread is on its way out but still counts.
    Evicted,
}

struct Conn {
    since: Instant,
    /// The connection's one descriptor, shared with its thread.
    stream: Arc<TcpStream>,
    state: ConnState,
}

/// Open connections, each with its thread. An entry leaves only when its thread ends, so
/// `open.len()` is the number of connection threads and never exceeds MAX_CONNECTIONS.
struct Conns {
    next_id: u64,
    open: HashMap<u64, Conn>,
}

/// The table: entries, the cap, and a signal for each connection that ends.
pub(crate) struct ConnTable {
    /// MAX_CONNECTIONS, or less when the descriptor limit cannot be raised to fit it.
    cap: usize,
    conns: Mutex<Conns>,
    /// Signalled when a connection thread ends.
    ended: Condvar,
}

/// How long the accept loop waits for an evicted connection's thread to end before it drops
/// the new connection instead (only when every slot holds a knock waiting on the firewall).
const ADMIT_WAIT: Duration = Duration::from_millis(500);

impl ConnTable {
    pub(crate) fn new(cap: usize) -> ConnTable {
        ConnTable {
            cap,
            conns: Mutex::new(Conns {
                next_id: 0,
                open: HashMap::new(),
            }),
            ended: Condvar::new(),
        }
    }

    fn wait<'a>(&self, conns: MutexGuard<'a, Conns>, limit: Duration) -> MutexGuard<'a, Conns> {
        self.ended
            .wait_timeout(conns, limit)
            .map_or_else(|p| p.into_inner().0, |r| r.0)
    }

    /// Registers a connection. At the cap the oldest connection still reading a request is
    /// shut down, and the new one waits until that thread has ended, so that connection
    /// threads never outnumber the cap however fast clients connect. Knocks waiting on the
    /// firewall or writing their answer are not evicted; if they fill every slot for
    /// ADMIT_WAIT, the new connection is dropped.
    pub(crate) fn admit(&self, stream: &Arc<TcpStream>) -> Option<u64> {
        let give_up = Instant::now() + ADMIT_WAIT;
        let cap = self.cap;
        let mut conns = lock(&self.conns);
        while conns.open.len() >= cap {
            let evicting = conns
                .open
                .values()
                .filter(|c| c.state == ConnState::Evicted)
                .count();
            // One eviction in flight per connection over the cap is enough.
            if evicting < conns.open.len() + 1 - cap {
                conns.evict_oldest_reading();
            }
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            conns = self.wait(conns, left);
        }
        conns.next_id += 1;
        let id = conns.next_id;
        conns.open.insert(
            id,
            Conn {
                since: Instant::now(),
                stream: Arc::clone(stream),
                state: ConnState::Reading,
            },
        );
        Some(id)
    }

    /// A connection's thread has ended: its slot is free.
    pub(crate) fn end(&self, id: u64) {
        lock(&self.conns).open.remove(&id);
        self.ended.notify_all();
    }

    pub(crate) fn set_state(&self, id: u64, state: ConnState) {
        if let Some(c) = lock(&self.conns).open.get_mut(&id) {
            if c.state != ConnState::Evicted {
                c.state = state;
            }
        }
    }

    /// Out of descriptors: make room as at the cap.
    pub(crate) fn evict_oldest_reading(&self) {
        lock(&self.conns).evict_oldest_reading();
    }

    /// Knocks waiting on the firewall now.
    pub(crate) fn knocking(&self) -> usize {
        lock(&self.conns)
            .open
            .values()
            .filter(|c| c.state == ConnState::Knocking)
            .count()
    }

    /// The stop: connections waiting for a request are closed, knocks in flight may finish
    /// until `give_up`. Returns how many connections were still open then.
    pub(crate) fn drain(&self, give_up: Instant) -> usize {
        let mut conns = lock(&self.conns);
        loop {
            for c in conns.open.values_mut() {
                if c.state == ConnState::Reading {
                    c.state = ConnState::Evicted;
                    let _ = c.stream.shutdown(Shutdown::Both);
                }
            }
            let left = give_up.saturating_duration_since(Instant::now());
            if conns.open.is_empty() || left.is_zero() {
                return conns.open.len();
            }
            conns = self.wait(conns, left.min(Duration::from_millis(100)));
        }
    }
}

impl Conns {
    /// Shuts down the oldest connection still waiting for or reading a request, if any: its
    /// thread ends soon and frees the slot and the descriptor.
    fn evict_oldest_reading(&mut self) {
        let oldest = self
            .open
            .values_mut()
            .filter(|c| c.state == ConnState::Reading)
            .min_by_key(|c| c.since);
        if let Some(c) = oldest {
            c.state = ConnState::Evicted;
            let _ = c.stream.shutdown(Shutdown::Both);
        }
    }
}
