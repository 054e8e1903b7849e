//! The knock port's front door: the accept loop and admission. One small thread per open
//! connection up to MAX_CONNECTIONS (past it, or when the process runs out of descriptors, the
//! oldest connection still reading a request is closed, so slow clients cannot starve new
//! ones, and the new one waits until that thread has ended). Each connection is one descriptor,
//! shared by its thread and the table (for eviction). The loop polls the listener so that
//! SIGTERM/SIGINT stop it: then in-flight knocks finish (bounded by KNOCK_TIMEOUT), are answered
//! and logged, and `serve` returns 0. What a connection does is in `conn`, what a request means
//! in `decide`; the firewall writes happen on the cloud layer's per-instance writers.
//!
//! Why not tiny_http: measured on a static musl build, one `Content-Length: 100000000000000`
//! request aborts it, it has no read timeout, no head-size limit and no connection cap, and an
//! accept error ends its loop for good. See README, "Design notes".

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::client_ip::Refusal;
use super::conn::{self, Answers};
use super::decide::{self, Decision, Reject};
use super::http::RequestHead;
use super::key_knock::{self, KeyDecision, Keys};
use super::lockout::{self, Lockout};
use super::{hygiene, signals};
use crate::cloud::client::Client;
use crate::cloud::writer::{self, Writers};
use crate::config::Config;
use crate::log::{self, RateLimited};
use crate::notify::{hooks, Notifier};
use crate::rules::planner::Grant;
use crate::sync::lock;

/// Connection threads only parse heads and wait on a channel; API calls run on writers.
const CONNECTION_STACK: usize = 128 * 1024;
/// Reject lines logged per second at most, so a flood cannot turn into a disk-filling log.
const REJECT_LOGS_PER_SEC: u32 = 20;
/// Lockout lines logged per second at most.
const LOCKOUT_LOGS_PER_SEC: u32 = 5;

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

pub(crate) struct Shared {
    pub(crate) config: Arc<Config>,
    /// MAX_CONNECTIONS, or less when the descriptor limit cannot be raised to fit it.
    max_connections: usize,
    /// The lockout's clock: seconds since start-up, monotonic.
    started: Instant,
    writers: Writers,
    lockout: Mutex<Lockout>,
    conns: Mutex<Conns>,
    /// Signalled when a connection thread ends.
    conn_ended: Condvar,
    pub(crate) rejects: RateLimited,
    /// `lockout` lines: rate-limited like rejects, on their own budget so that a reject flood
    /// cannot hide them (and a spray of lockouts cannot flood the log either).
    lockouts: RateLimited,
    pub(crate) answers: Answers,
    pub(crate) notifier: Arc<Notifier>,
    /// Client keys, the challenge secret and the replay cache (issue 12).
    keys: Keys,
}

/// What a request is answered with.
pub(crate) enum Answer {
    /// MESSAGE_SUCCESS or MESSAGE_FAILURE, as the verdict says.
    Fixed(Verdict),
    /// A challenge `T.N.G`: the one other body, with the same status and headers.
    Body(String),
}

pub fn serve(config: &Config) -> i32 {
    let config = Arc::new(config.clone());
    let keys = match Keys::open(&config) {
        Ok(k) => k,
        Err(e) => {
            log::fatal(&e);
            return 2;
        }
    };
    let client = match Client::new(&config) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            log::fatal(&e.to_string());
            return 2;
        }
    };
    log::start();
    if let Err(e) = signals::install() {
        log::fatal(&format!("cannot install signal handlers: {e}"));
        return 1;
    }
    let instances = config.cloud.instances.len();
    let want = config.limits.max_connections as u64 + hygiene::reserved_fds(instances);
    let nofile = hygiene::raise_nofile(want);
    let max_connections =
        hygiene::connections_within(nofile, config.limits.max_connections, instances);
    if max_connections < config.limits.max_connections {
        log::event(&format!(
            "warning: MAX_CONNECTIONS={} lowered to {max_connections}: the descriptor limit \
             (RLIMIT_NOFILE) is {} and cannot be raised to {want}",
            config.limits.max_connections,
            nofile.unwrap_or(0)
        ));
    }
    let bind = config.knock.bind;
    let listener = match TcpListener::bind(bind).and_then(|l| {
        l.set_nonblocking(true)?;
        Ok(l)
    }) {
        Ok(l) => l,
        Err(e) => {
            log::fatal(&format!("cannot listen on {bind}: {e}"));
            return 1;
        }
    };
    let notifier = hooks::start(&config);
    let writers = match Writers::start(&config, &client, &notifier) {
        Ok(w) => w,
        Err(e) => {
            log::fatal(&e);
            return 1;
        }
    };
    let limits = &config.limits;
    let shared = Arc::new(Shared {
        max_connections,
        started: Instant::now(),
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
        lockouts: RateLimited::new(LOCKOUT_LOGS_PER_SEC),
        config: Arc::clone(&config),
        notifier,
        keys,
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
        "knockd {} listening on {} path={} instances={} ports={} endpoint={} clients={} \
         referer-knock={}",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr().unwrap_or(bind),
        config.knock.path,
        instances.join(","),
        ports.join(","),
        config.cloud.endpoint.url(),
        shared.keys.client_count(),
        if config.knock.referer.expose().is_empty() {
            "off"
        } else {
            "on"
        },
    ));
    accept_loop(listener, &shared)
}

/// How often the accept loop looks at the stop flag while no connection arrives.
const STOP_POLL: Duration = Duration::from_millis(200);

fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) -> i32 {
    while !signals::stop_requested() {
        if signals::take_hup() {
            // SIGHUP re-reads the clients file at once (it is also re-read when it changes).
            shared.keys.reload_clients();
        }
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(&listener, STOP_POLL);
                continue;
            }
            Err(e) => {
                // Out of descriptors: make room as at the cap, else the queued connections
                // (a knock among them) would wait for idle ones to time out.
                if matches!(e.raw_os_error(), Some(23 | 24)) {
                    evict_oldest_reading(&mut lock(&shared.conns));
                }
                // EMFILE, ECONNABORTED and friends are transient: never stop accepting.
                shared
                    .rejects
                    .event(|| format!("accept-error error=\"{e}\""));
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        // Accepted sockets do not inherit O_NONBLOCK on Linux; say so explicitly anyway.
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        let stream = Arc::new(stream);
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
    drop(listener);
    stop(shared)
}

/// Blocks until `listener` has a connection to accept or `limit` has passed.
fn wait_readable(listener: &TcpListener, limit: Duration) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let timeout = Timespec {
        tv_sec: limit.as_secs() as _,
        tv_nsec: limit.subsec_nanos() as _,
    };
    let mut fds = [PollFd::new(listener, PollFlags::IN)];
    if poll(&mut fds, Some(&timeout)).is_err() {
        thread::sleep(Duration::from_millis(20));
    }
}

/// The graceful stop, after SIGTERM or SIGINT: the listener is closed already; connections
/// waiting for a request are closed, knocks in flight finish (bounded by KNOCK_TIMEOUT plus the
/// answer's write budget), are answered and logged; then the log is flushed.
fn stop(shared: &Shared) -> i32 {
    let limit = shared.config.limits.knock_timeout + conn::ANSWER_GRACE + Duration::from_secs(1);
    let give_up = Instant::now() + limit;
    let mut conns = lock(&shared.conns);
    let knocking = conns
        .open
        .values()
        .filter(|c| c.state == ConnState::Knocking)
        .count();
    log::event(&format!(
        "stopping: no new connections; {knocking} knocks in flight"
    ));
    loop {
        for c in conns.open.values_mut() {
            if c.state == ConnState::Reading {
                c.state = ConnState::Evicted;
                let _ = c.stream.shutdown(Shutdown::Both);
            }
        }
        let left = give_up.saturating_duration_since(Instant::now());
        if conns.open.is_empty() || left.is_zero() {
            break;
        }
        conns = shared
            .conn_ended
            .wait_timeout(conns, left.min(Duration::from_millis(100)))
            .map_or_else(|p| p.into_inner().0, |r| r.0);
    }
    let left = conns.open.len();
    drop(conns);
    log::event(&format!("stopped ({left} connections cut off)"));
    log::flush(Duration::from_secs(2));
    0
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

/// Shuts down the oldest connection still waiting for or reading a request, if any: its thread
/// ends soon and frees the slot and the descriptor.
fn evict_oldest_reading(conns: &mut Conns) {
    let oldest = conns
        .open
        .values_mut()
        .filter(|c| c.state == ConnState::Reading)
        .min_by_key(|c| c.since);
    if let Some(c) = oldest {
        c.state = ConnState::Evicted;
        let _ = c.stream.shutdown(Shutdown::Both);
    }
}

/// Registers a connection. At the cap the oldest connection still reading a request is shut
/// down, and the new one waits until that thread has ended, so that connection threads never
/// outnumber the cap however fast clients connect. Knocks waiting on the firewall or writing
/// their answer are not evicted; if they fill every slot for ADMIT_WAIT, the new connection is
/// dropped.
fn admit(shared: &Shared, stream: &Arc<TcpStream>) -> Option<u64> {
    let give_up = Instant::now() + ADMIT_WAIT;
    let cap = shared.max_connections;
    let mut conns = lock(&shared.conns);
    while conns.open.len() >= cap {
        let evicting = conns
            .open
            .values()
            .filter(|c| c.state == ConnState::Evicted)
            .count();
        // One eviction in flight per connection over the cap is enough.
        if evicting < conns.open.len() + 1 - cap {
            evict_oldest_reading(&mut conns);
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
            stream: Arc::clone(stream),
            state: ConnState::Reading,
        },
    );
    Some(id)
}

/// What a request came to: the answer, and what to log once the answer is written.
pub(crate) struct Verdict {
    pub(crate) ok: bool,
    note: Note,
}

enum Note {
    Reject {
        who: IpAddr,
        reason: Reject,
        /// This failure locked `who` out.
        locked: bool,
    },
    Refused {
        peer: IpAddr,
        refusal: Refusal,
    },
    Knock {
        ip: IpAddr,
        label: String,
        ms: u128,
        per_instance: Vec<String>,
    },
}

fn lockout_now(shared: &Shared) -> u64 {
    shared.started.elapsed().as_secs()
}

/// One request, decided and (for a grant) carried out: `ok` only when every instance confirmed
/// the grant. A grant leaves the connection in the Knocking state, which `answered` ends once
/// the answer is written.
/// One request: a challenge body, or a verdict (success only when every instance confirmed
/// the grant).
pub(crate) fn answer(shared: &Shared, head: &RequestHead, peer: IpAddr, conn: u64) -> Answer {
    let config = &shared.config;
    let now = lockout_now(shared);
    let is_locked = |k| lock(&shared.lockout).is_locked(k, now);
    match key_knock::judge(
        head,
        peer,
        &config.knock,
        &shared.keys,
        crate::clock::now(),
        is_locked,
        crate::keys::challenge::new_nonce,
    ) {
        KeyDecision::NotKey => Answer::Fixed(knock(shared, head, peer, conn, None)),
        KeyDecision::Challenge(body) => Answer::Body(body),
        KeyDecision::Decided(d, ttl) => {
            Answer::Fixed(knock(shared, head, peer, conn, Some((d, ttl))))
        }
    }
}

/// One knock. `decided` is a key knock's decision and rule lifetime; `None` decides the
/// Referer knock here.
fn knock(
    shared: &Shared,
    head: &RequestHead,
    peer: IpAddr,
    conn: u64,
    decided: Option<(Decision, Option<u64>)>,
) -> Verdict {
    let config = &shared.config;
    let started = Instant::now();
    let now = lockout_now(shared);
    let (decision, ttl_secs) = decided.unwrap_or_else(|| {
        let d = decide::decide(head, peer, &config.knock, |k| {
            lock(&shared.lockout).is_locked(k, now)
        });
        (d, None)
    });
    let (ip, label, key) = match decision {
        Decision::Reject {
            reason: Reject::LockedOut,
            key,
        } => {
            let note = Note::Reject {
                who: key,
                reason: Reject::LockedOut,
                locked: false,
            };
            return Verdict { ok: false, note };
        }
        Decision::Reject { reason, key } => {
            let locked = lock(&shared.lockout).fail(key, now);
            let note = Note::Reject {
                who: key,
                reason,
                locked,
            };
            return Verdict { ok: false, note };
        }
        Decision::Refuse { peer, refusal } => {
            return Verdict {
                ok: false,
                note: Note::Refused { peer, refusal },
            }
        }
        Decision::Grant { ip, label, key } => (ip, label, key),
    };
    // A knock that waits on the firewall is shielded from eviction at the connection cap until
    // its answer is written; everything else answers at once and costs no shared lock here.
    set_state(shared, conn, ConnState::Knocking);
    let deadline = started + config.limits.knock_timeout;
    let grant = Grant {
        ip,
        label,
        ttl_secs: ttl_secs.map(|s| s.min(i64::MAX as u64) as i64),
    };
    let rx = shared.writers.submit(&grant, deadline);
    let outcomes = writer::collect(&rx, shared.writers.len(), deadline);
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
    if ok {
        lock(&shared.lockout).succeed(key);
    }
    // Non-blocking (a bounded queue), so it costs the answer nothing.
    hooks::knocked(
        &shared.notifier,
        config,
        &grant,
        &outcomes,
        ok,
        &per_instance,
    );
    Verdict {
        ok,
        note: Note::Knock {
            ip,
            label: grant.label,
            ms: started.elapsed().as_millis(),
            per_instance,
        },
    }
}

/// After the answer to `verdict` is written (or could not be): the connection may be evicted
/// again, and the request is logged. `head` is read here, not before, for the label of a
/// refused knock.
pub(crate) fn answered(shared: &Shared, conn: u64, verdict: Verdict, head: &RequestHead) {
    let config = &shared.config;
    match verdict.note {
        Note::Reject {
            who,
            reason,
            locked,
        } => {
            if reason == Reject::Secret && who != lockout::UNREADABLE {
                hooks::wrong_secret(&shared.notifier, who);
            }
            if locked && who != lockout::UNREADABLE {
                hooks::locked_out(&shared.notifier, who, &config.limits);
            }
            let who = shown(who);
            shared
                .rejects
                .event(|| format!("reject addr={who} reason={}", reason.as_str()));
            if locked {
                shared.lockouts.event(|| {
                    format!(
                        "lockout addr={who} for={}s after {} failed knocks",
                        config.limits.lockout_duration.as_secs(),
                        config.limits.lockout_failures
                    )
                });
            }
        }
        // Through the reject rate limit too: logging every refusal would make a right secret
        // refused for its address cost more than a wrong one under a flood, which times it.
        Note::Refused { peer, refusal } => {
            let label = crate::rules::desc::sanitize_label(head.header("location").unwrap_or(b""));
            hooks::refused(&shared.notifier, peer, &label, &refusal.to_string());
            shared.rejects.event(|| {
                format!("knock peer={peer} label={label} result=refused reason=\"{refusal}\"")
            })
        }
        Note::Knock {
            ip,
            label,
            ms,
            per_instance,
        } => {
            set_state(shared, conn, ConnState::Reading);
            log::event(&format!(
                "knock addr={ip} label={label} result={} ms={ms} {}",
                if verdict.ok { "ok" } else { "failed" },
                per_instance.join(" ")
            ));
        }
    }
}

/// A lockout bucket as the log shows it.
fn shown(key: IpAddr) -> String {
    if key == lockout::UNREADABLE {
        "unreadable-forwarded-header".to_string()
    } else {
        key.to_string()
    }
}
