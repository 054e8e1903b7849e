//! The knock port's front door: a blocking accept loop and admission. One small thread per
//! open connection up to MAX_CONNECTIONS (past it the oldest connection still reading a request
//! is closed, so slow clients cannot starve new ones, and the new one waits until that thread
//! has ended). What a connection does is in `conn`, what a request means in `decide`; the
//! firewall writes happen on the cloud layer's per-instance writers.
//!
//! Why not tiny_http: measured on a static musl build, one `Content-Length: 100000000000000`
//! request aborts it, it has no read timeout, no head-size limit and no connection cap, and an
//! accept error ends its loop for good. See README, "Design notes".

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::conn::{self, Answers};
use super::decide::{self, Decision, Reject};
use super::http::RequestHead;
use super::lockout::Lockout;
use crate::cloud::client::Client;
use crate::cloud::writer::{self, Writers};
use crate::config::Config;
use crate::log::{self, RateLimited};
use crate::rules::planner::Grant;
use crate::sync::lock;

/// Connection threads only parse heads and wait on a channel; API calls run on writers.
const CONNECTION_STACK: usize = 128 * 1024;
/// Reject lines logged per second at most, so a flood cannot turn into a disk-filling log.
const REJECT_LOGS_PER_SEC: u32 = 20;

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
    stream: TcpStream,
    state: ConnState,
}

/// Open connections, each with its thread. An entry leaves only when its thread ends, so
/// `open.len()` is the number of connection threads and never exceeds MAX_CONNECTIONS.
struct Conns {
    next_id: u64,
    open: HashMap<u64, Conn>,
}

pub(crate) struct Shared {
    pub(crate) config: Arc<Config>,
    writers: Writers,
    lockout: Mutex<Lockout>,
    conns: Mutex<Conns>,
    /// Signalled when a connection thread ends.
    conn_ended: Condvar,
    pub(crate) rejects: RateLimited,
    pub(crate) answers: Answers,
}

pub fn serve(config: &Config) -> i32 {
    let config = Arc::new(config.clone());
    let client = match Client::new(&config) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            log::fatal(&e.to_string());
            return 2;
        }
    };
    let bind = config.knock.bind;
    let listener = match TcpListener::bind(bind) {
        Ok(l) => l,
        Err(e) => {
            log::fatal(&format!("cannot listen on {bind}: {e}"));
            return 1;
        }
    };
    let writers = match Writers::start(&config, &client) {
        Ok(w) => w,
        Err(e) => {
            log::fatal(&e);
            return 1;
        }
    };
    let limits = &config.limits;
    let shared = Arc::new(Shared {
        writers,
        lockout: Mutex::new(Lockout::new(
            limits.lockout_failures,
            limits.lockout_window.as_secs(),
            limits.lockout_duration.as_secs(),
        )),
        conns: Mutex::new(Conns {
            next_id: 0,
            open: HashMap::new(),
        }),
        conn_ended: Condvar::new(),
        answers: Answers::new(&config.knock),
        rejects: RateLimited::new(REJECT_LOGS_PER_SEC),
        config: Arc::clone(&config),
    });
    let ports: Vec<String> = config
        .rules
        .ports
        .iter()
        .map(|(p, list)| format!("{}:{list}", p.as_str()))
        .collect();
    let instances: Vec<String> = config
        .cloud
        .instances
        .iter()
        .map(|i| format!("{}:{}", i.region, i.id))
        .collect();
    log::event(&format!(
        "knockd {} listening on {} path={} instances={} ports={} endpoint={}",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr().unwrap_or(bind),
        config.knock.path,
        instances.join(","),
        ports.join(","),
        config.cloud.endpoint.url(),
    ));
    accept_loop(&listener, &shared)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) -> i32 {
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) => {
                // EMFILE, ECONNABORTED and friends are transient: never stop accepting.
                shared
                    .rejects
                    .event(|| format!("accept-error error=\"{e}\""));
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let Some(id) = admit(shared, &stream) else {
            shared
                .rejects
                .event(|| format!("reject addr={} reason=connection-cap", peer.ip()));
            continue;
        };
        let s = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                conn::handle(&s, stream, peer, id);
                end_connection(&s, id);
            });
        if let Err(e) = spawned {
            end_connection(shared, id);
            shared
                .rejects
                .event(|| format!("thread-error error=\"{e}\""));
        }
    }
}

/// How long the accept loop waits for an evicted connection's thread to end before it drops
/// the new connection instead (only when every slot holds a knock waiting on the firewall).
const ADMIT_WAIT: Duration = Duration::from_millis(500);

fn end_connection(shared: &Shared, id: u64) {
    lock(&shared.conns).open.remove(&id);
    shared.conn_ended.notify_all();
}

pub(crate) fn set_state(shared: &Shared, id: u64, state: ConnState) {
    if let Some(c) = lock(&shared.conns).open.get_mut(&id) {
        if c.state != ConnState::Evicted {
            c.state = state;
        }
    }
}

/// Registers a connection. At the cap the oldest connection still reading a request is shut
/// down, and the new one waits until that thread has ended, so that connection threads never
/// outnumber MAX_CONNECTIONS however fast clients connect. Knocks waiting on the firewall are
/// not evicted; if they fill every slot for ADMIT_WAIT, the new connection is dropped.
fn admit(shared: &Shared, stream: &TcpStream) -> Option<u64> {
    let clone = stream.try_clone().ok()?;
    let give_up = Instant::now() + ADMIT_WAIT;
    let mut conns = lock(&shared.conns);
    while conns.open.len() >= shared.config.limits.max_connections {
        let evicting = conns
            .open
            .values()
            .filter(|c| c.state == ConnState::Evicted)
            .count();
        // One eviction in flight per connection over the cap is enough.
        if evicting < conns.open.len() + 1 - shared.config.limits.max_connections {
            let oldest = conns
                .open
                .iter_mut()
                .filter(|(_, c)| c.state == ConnState::Reading)
                .min_by_key(|(_, c)| c.since);
            if let Some((_, c)) = oldest {
                c.state = ConnState::Evicted;
                let _ = c.stream.shutdown(Shutdown::Both);
            }
        }
        let left = give_up.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        conns = shared
            .conn_ended
            .wait_timeout(conns, left)
            .map_or_else(|p| p.into_inner().0, |r| r.0);
    }
    conns.next_id += 1;
    let id = conns.next_id;
    conns.open.insert(
        id,
        Conn {
            since: Instant::now(),
            stream: clone,
            state: ConnState::Reading,
        },
    );
    Some(id)
}

/// One request: true only when every instance confirmed the grant.
pub(crate) fn knock(shared: &Shared, head: &RequestHead, peer: IpAddr, conn: u64) -> bool {
    let config = &shared.config;
    let started = Instant::now();
    let now = crate::clock::now() as u64;
    let decision = decide::decide(head, peer, &config.knock, |k| {
        lock(&shared.lockout).is_locked(k, now)
    });
    let (ip, label, key) = match decision {
        Decision::Reject {
            reason: Reject::LockedOut,
            key,
        } => {
            let who = key.unwrap_or(peer);
            shared
                .rejects
                .event(|| format!("reject addr={who} reason=locked-out"));
            return false;
        }
        Decision::Reject { reason, key } => {
            let locked = key.is_some_and(|k| lock(&shared.lockout).fail(k, now));
            let who = key.unwrap_or(crate::rules::cidr::canonical(peer));
            shared
                .rejects
                .event(|| format!("reject addr={who} reason={}", reason.as_str()));
            if locked {
                log::event(&format!(
                    "lockout addr={who} for={}s after {} failed knocks",
                    config.limits.lockout_duration.as_secs(),
                    config.limits.lockout_failures
                ));
            }
            return false;
        }
        Decision::Refuse {
            peer,
            label,
            refusal,
        } => {
            log::event(&format!(
                "knock peer={peer} label={label} result=refused reason=\"{refusal}\""
            ));
            return false;
        }
        Decision::Grant { ip, label, key } => (ip, label, key),
    };
    // Only a knock that waits on the firewall is shielded from eviction at the connection cap;
    // everything else answers at once and costs no shared lock here.
    set_state(shared, conn, ConnState::Knocking);
    let deadline = started + config.limits.knock_timeout;
    let rx = shared.writers.submit(
        &Grant {
            ip,
            label: label.clone(),
        },
        deadline,
    );
    let outcomes = writer::collect(&rx, shared.writers.len(), deadline);
    set_state(shared, conn, ConnState::Reading);
    let ok = outcomes.len() == shared.writers.len() && outcomes.iter().all(|o| o.ok);
    let mut per_instance: Vec<String> = outcomes
        .iter()
        .map(|o| format!("{}={}", o.instance, o.detail))
        .collect();
    for id in shared.writers.instance_ids() {
        if !outcomes.iter().any(|o| o.instance == id) {
            per_instance.push(format!("{id}=timeout"));
        }
    }
    log::event(&format!(
        "knock addr={ip} label={label} result={} ms={} {}",
        if ok { "ok" } else { "failed" },
        started.elapsed().as_millis(),
        per_instance.join(" ")
    ));
    if let Some(key) = key.filter(|_| ok) {
        lock(&shared.lockout).succeed(key);
    }
    ok
}
