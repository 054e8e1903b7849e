//! The poll loop of the knock port: one thread owns the listener and every connection while
//! it waits for, reads or answers a request (epoll, level-triggered; nonblocking sockets). What
//! one connection does is in `conn`; a knock that waits on the writers is parked here while a
//! small thread of its own waits for the outcome (`door::carry_out`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::Timespec;

use super::conn::{Conn, Next, Pool, ANSWER_GRACE};
use super::door::{self, Door, Pending, Verdict};
use super::signals;
use super::table::ConnState;
use crate::exit::Exit;
use crate::log;
use crate::sync::lock;

/// How often the loop looks at the stop and reload flags while nothing happens.
const STOP_POLL: Duration = Duration::from_millis(200);
/// How long accepting pauses after an accept error that evicting could not cure (out of
/// descriptors with every slot holding a knock), so a listener that stays readable does not
/// spin the loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(20);
/// Connections accepted per wake-up at most, so a connect flood cannot starve the reads.
const ACCEPT_BATCH: usize = 64;
/// Events taken per epoll_wait: more only come on the next call, and a larger buffer would
/// be idle RSS (12 bytes an event).
const EVENTS: usize = 64;
/// A knock's waiter only waits for the writers' outcomes and formats its log note: the stack
/// the connection threads had (which also parsed and judged) is ample.
const WAITER_STACK: usize = 128 * 1024;
/// epoll tokens: the listener and the wake-up socket; connection ids start at 1.
const LISTENER: u64 = 0;
const WAKE: u64 = u64::MAX;

/// The front: one thread owns the listener and every connection while it waits for, reads or
/// answers a request. A knock that waits on the writers is parked: a small thread of its own
/// (`door::carry_out`) waits for the outcome and sends the verdict back through a channel,
/// then wakes the loop through a socket pair registered with epoll.
struct Front<'a> {
    door: &'a Arc<Door>,
    epoll: OwnedFd,
    listener: Option<TcpListener>,
    conns: HashMap<u64, Open>,
    /// Connection deadlines (read or write), soonest first. An entry whose connection has
    /// since moved to another deadline (or closed) is stale and skipped when it comes up:
    /// cheaper in code than an ordered set, and a connection changes deadline only when it
    /// parks, blocks on a write or finishes one.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    pool: Pool,
    /// Verdicts of parked knocks, pushed by their waiters (a Vec under a lock rather than a
    /// channel: the same job, less code in the static binary).
    verdicts: Arc<Verdicts>,
    wake_rx: UnixStream,
    wake_tx: Arc<UnixStream>,
    accept_paused_until: Option<Instant>,
}

type Verdicts = Mutex<Vec<(u64, Verdict)>>;

/// A connection and its registration with the loop.
struct Open {
    conn: Conn,
    /// The epoll interest now: None (not registered, parked), IN or OUT.
    interest: Option<EventFlags>,
    timer: Option<Instant>,
}

/// Serves the knock port until SIGTERM or SIGINT, then stops gracefully.
pub(crate) fn run(listener: TcpListener, door: &Arc<Door>) -> Exit {
    match Front::new(listener, door) {
        Ok(mut front) => front.run(),
        Err(e) => {
            log::error(&format!("cannot start the knock port's poll loop: {e}"));
            Exit::Failure
        }
    }
}

impl<'a> Front<'a> {
    fn new(listener: TcpListener, door: &'a Arc<Door>) -> io::Result<Front<'a>> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            &listener,
            EventData::new_u64(LISTENER),
            EventFlags::IN,
        )?;
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        epoll::add(&epoll, &wake_rx, EventData::new_u64(WAKE), EventFlags::IN)?;
        Ok(Front {
            door,
            epoll,
            listener: Some(listener),
            conns: HashMap::new(),
            timers: BinaryHeap::new(),
            pool: Pool::new(),
            verdicts: Arc::new(Mutex::new(Vec::new())),
            wake_rx,
            wake_tx: Arc::new(wake_tx),
            accept_paused_until: None,
        })
    }

    fn run(&mut self) -> Exit {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(EVENTS);
        let mut give_up: Option<Instant> = None;
        loop {
            if signals::take_hup() {
                // SIGHUP re-reads the clients file at once (it is also re-read when it changes).
                self.door.keys.reload_clients();
            }
            if give_up.is_none() && signals::stop_requested() {
                give_up = Some(self.begin_stop());
            }
            let now = Instant::now();
            if let Some(limit) = give_up {
                if self.conns.is_empty() || now >= limit {
                    break;
                }
            }
            let mut wait = STOP_POLL;
            if let Some(Reverse((at, _))) = self.timers.peek() {
                wait = wait.min(at.saturating_duration_since(now));
            }
            if let Some(at) = self.accept_paused_until {
                wait = wait.min(at.saturating_duration_since(now));
            }
            let timeout = Timespec {
                tv_sec: wait.as_secs() as _,
                // Rounded up to the millisecond, so a deadline is not polled for in a busy
                // loop of zero-length waits just before it.
                tv_nsec: (wait.subsec_millis() as i64 * 1_000_000 + 999_999) as _,
            };
            events.clear();
            if let Err(e) = epoll::wait(&self.epoll, spare_capacity(&mut events), Some(&timeout)) {
                if e != rustix::io::Errno::INTR {
                    self.door
                        .log_rejected(|| format!("poll-error error=\"{e}\""));
                    thread::sleep(ACCEPT_PAUSE);
                }
                continue;
            }
            for ev in events.drain(..) {
                match ev.data.u64() {
                    LISTENER => self.accept_some(),
                    WAKE => self.take_verdicts(),
                    id => self.on_event(id),
                }
            }
            self.expire(Instant::now());
            if self
                .accept_paused_until
                .is_some_and(|at| Instant::now() >= at)
            {
                self.accept_paused_until = None;
                if let Some(l) = &self.listener {
                    let _ =
                        epoll::modify(&self.epoll, l, EventData::new_u64(LISTENER), EventFlags::IN);
                }
            }
        }
        self.finish()
    }

    fn accept_some(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.door
                        .log_rejected(|| format!("accept-error error=\"{e}\""));
                    // Out of descriptors: make room as at the cap, else the queued connections
                    // (a knock among them) would wait for idle ones to time out.
                    if matches!(e.raw_os_error(), Some(23 | 24)) {
                        if let Some(old) = self.door.table.evict_oldest_reading() {
                            self.close(old);
                            continue;
                        }
                    }
                    // EMFILE with nothing to evict, ENOBUFS and friends are transient: pause
                    // accepting a moment, never stop.
                    if matches!(e.raw_os_error(), Some(23 | 24 | 12 | 105)) {
                        if let Some(l) = &self.listener {
                            let _ = epoll::modify(
                                &self.epoll,
                                l,
                                EventData::new_u64(LISTENER),
                                EventFlags::empty(),
                            );
                        }
                        self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                        return;
                    }
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        // Accepted sockets do not inherit O_NONBLOCK on Linux.
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let Some(admitted) = self.door.table.open() else {
            self.door
                .log_rejected(|| format!("reject addr={} reason=connection-cap", peer.ip()));
            return;
        };
        if let Some(old) = admitted.evict {
            self.close(old);
        }
        let id = admitted.id;
        let deadline = Instant::now() + self.door.config.limits.connection_timeout;
        if epoll::add(&self.epoll, &stream, EventData::new_u64(id), EventFlags::IN).is_err() {
            self.door.table.end(id);
            return;
        }
        self.compact_timers();
        self.timers.push(Reverse((deadline, id)));
        self.conns.insert(
            id,
            Open {
                conn: Conn::new(stream, peer.ip(), deadline),
                interest: Some(EventFlags::IN),
                timer: Some(deadline),
            },
        );
    }

    /// Stale timer entries (of closed connections, mostly) would pile up under a connection
    /// flood until their deadlines came: past twice the live ones, the heap is rebuilt from
    /// the connections' own deadlines, so its size stays bounded by the connections open.
    fn compact_timers(&mut self) {
        if self.timers.len() > 2 * self.conns.len() + 1024 {
            self.timers = self
                .conns
                .iter()
                .filter_map(|(id, o)| o.timer.map(|at| Reverse((at, *id))))
                .collect();
        }
    }

    fn on_event(&mut self, id: u64) {
        let door = self.door;
        // A parked knock is out of epoll; an event for it can only be stale.
        let Some(open) = self.conns.get_mut(&id).filter(|o| o.interest.is_some()) else {
            return;
        };
        let next = if open.conn.reading() {
            open.conn.readable(door, id, &mut self.pool)
        } else {
            open.conn.writable(door, id)
        };
        self.apply(id, next);
    }

    /// Verdicts of parked knocks: each is answered.
    fn take_verdicts(&mut self) {
        let mut sink = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut sink), Ok(n) if n > 0) {}
        let verdicts = std::mem::take(&mut *lock(&self.verdicts));
        for (id, verdict) in verdicts {
            let door = self.door;
            let Some(open) = self.conns.get_mut(&id) else {
                continue;
            };
            let next = open.conn.verdict(door, id, verdict);
            self.apply(id, next);
        }
    }

    /// Deadlines that passed: readers are closed, writers give up.
    fn expire(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let door = self.door;
            let Some(open) = self.conns.get_mut(&id).filter(|o| o.timer == Some(at)) else {
                continue;
            };
            open.timer = None;
            let next = open.conn.expired(door, id);
            self.apply(id, next);
        }
    }

    /// Carries out what a connection asked for: its epoll interest, its deadline, a knock's
    /// waiter, or its end.
    fn apply(&mut self, id: u64, next: Next) {
        let (interest, timer) = match next {
            Next::Read(at) => (Some(EventFlags::IN), Some(at)),
            Next::Write(at) => (Some(EventFlags::OUT), Some(at)),
            Next::Park(pending) => {
                self.park(id, pending);
                (None, None)
            }
            Next::Close => {
                self.close(id);
                return;
            }
        };
        let Some(open) = self.conns.get_mut(&id) else {
            return;
        };
        open.conn.release(&mut self.pool);
        let moved = open.timer != timer;
        if moved {
            open.timer = timer;
        }
        if open.interest != interest {
            let data = EventData::new_u64(id);
            let fd = &open.conn.stream;
            // A parked connection leaves epoll: with no interest a hang-up would still be
            // reported, level-triggered, over and over until the verdict came.
            let done = match (open.interest, interest) {
                (None, Some(flags)) => epoll::add(&self.epoll, fd, data, flags),
                (Some(_), Some(flags)) => epoll::modify(&self.epoll, fd, data, flags),
                (Some(_), None) => epoll::delete(&self.epoll, fd),
                (None, None) => Ok(()),
            };
            if done.is_err() {
                self.close(id);
                return;
            }
            open.interest = interest;
        }
        if let Some(at) = timer.filter(|_| moved) {
            self.compact_timers();
            self.timers.push(Reverse((at, id)));
        }
    }

    /// A knock waits on the writers: shielded from eviction, its waiter started.
    fn park(&mut self, id: u64, pending: Pending) {
        let door = self.door;
        door.table.set_state(id, ConnState::Knocking);
        let d = Arc::clone(door);
        let verdicts = Arc::clone(&self.verdicts);
        let wake = Arc::clone(&self.wake_tx);
        let fallback = pending.clone();
        let spawned = thread::Builder::new()
            .name("knock".into())
            .stack_size(WAITER_STACK)
            .spawn(move || {
                let verdict = door::carry_out(&d, id, pending);
                lock(&verdicts).push((id, verdict));
                // A full socket buffer means a wake-up is pending already.
                let _ = (&*wake).write(&[1]);
            });
        if let Err(e) = spawned {
            door.log_rejected(|| format!("thread-error error=\"{e}\""));
            let verdict = door::not_carried_out(door, fallback, "no-thread");
            lock(&self.verdicts).push((id, verdict));
            let _ = (&*self.wake_tx).write(&[1]);
        }
    }

    /// Closes a connection now: out of the loop, the table and epoll (closing the descriptor
    /// unregisters it).
    fn close(&mut self, id: u64) {
        // Its timer entry goes stale and is dropped when it comes up.
        if let Some(Open { mut conn, .. }) = self.conns.remove(&id) {
            conn.release(&mut self.pool);
        }
        self.door.table.end(id);
    }

    /// SIGTERM or SIGINT: no new connections, connections waiting for a request are closed,
    /// knocks in flight may finish (bounded by KNOCK_TIMEOUT plus the answer's write budget)
    /// and are answered and logged. Returns when to give up on them.
    fn begin_stop(&mut self) -> Instant {
        self.listener = None;
        log::event(&format!(
            "stopping: no new connections; {} knocks in flight",
            self.door.table.knocking()
        ));
        for id in self.door.table.take_reading() {
            self.close(id);
        }
        let limit = self.door.config.limits.knock_timeout + ANSWER_GRACE + Duration::from_secs(1);
        Instant::now() + limit
    }

    fn finish(&mut self) -> Exit {
        let left = self.conns.len();
        log::event(&format!("stopped ({left} connections cut off)"));
        log::flush(Duration::from_secs(2));
        Exit::Success
    }
}
