//! The knock port. A blocking accept loop; one small thread per open connection up to
//! MAX_CONNECTIONS (past it the oldest connection still reading a request is closed, so slow
//! clients cannot starve new ones, and the new one waits until that thread has ended); one writer thread per instance that owns all firewall writes for it. Knocks that
//! arrive while a writer is busy are batched into its next plan.
//!
//! Why not tiny_http: measured on a static musl build, one `Content-Length: 100000000000000`
//! request aborts it, it has no read timeout, no head-size limit and no connection cap, and an
//! accept error ends its loop for good. See README, "Design notes".

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::cidr;
use crate::client_ip;
use crate::config::{ClientIpMethod, Config, Instance};
use crate::firewall;
use crate::http::{self, HeadReader, ReadResult, RequestHead};
use crate::lighthouse::{self, Client};
use crate::lockout::{self, Lockout};
use crate::log;
use crate::planner::{Grant, Policy, QUOTA};
use crate::rule_desc;

/// Requests served on one keep-alive connection at most.
const MAX_REQUESTS_PER_CONNECTION: usize = 1000;
/// Connection threads only parse heads and wait on a channel; API calls run on writers.
const CONNECTION_STACK: usize = 128 * 1024;
/// Writers run ureq and rustls handshakes.
const WRITER_STACK: usize = 1024 * 1024;
/// Write budget of an answer whose knock outlasted the connection deadline.
const ANSWER_GRACE: Duration = Duration::from_secs(2);
/// Reject lines logged per second at most, so a flood cannot turn into a disk-filling log.
const REJECT_LOGS_PER_SEC: u32 = 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update; the data is still
    // usable for these tables, and refusing service would be worse.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The outcome of one knock on one instance.
struct Outcome {
    instance: String,
    ok: bool,
    detail: String,
}

struct Job {
    grant: Grant,
    reply: mpsc::Sender<Outcome>,
}

/// The single writer of one instance's firewall inside this process.
struct Writer {
    inst: Instance,
    queue: Mutex<Vec<Job>>,
    ready: Condvar,
}

/// What an open connection's thread is doing, for the choice of whom to evict at the cap.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ConnState {
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

/// Lock-free: every rejected request of a flood passes through here. The rate limit is
/// approximate under races, which is all a log needs.
#[derive(Default)]
struct RejectLog {
    second: AtomicU64,
    count: AtomicU32,
    suppressed: AtomicU64,
}

struct Shared {
    config: Config,
    writers: Vec<Arc<Writer>>,
    lockout: Mutex<Lockout>,
    conns: Mutex<Conns>,
    /// Signalled when a connection thread ends.
    conn_ended: Condvar,
    rejects: RejectLog,
    answers: Answers,
}

pub fn serve(config: &Config) -> i32 {
    let client = match Client::new(config) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            log::fatal(&e.to_string());
            return 2;
        }
    };
    let listener = match TcpListener::bind(config.bind) {
        Ok(l) => l,
        Err(e) => {
            log::fatal(&format!("cannot listen on {}: {e}", config.bind));
            return 1;
        }
    };
    let shared = Arc::new(Shared {
        config: config.clone(),
        writers: config
            .instances
            .iter()
            .map(|inst| {
                Arc::new(Writer {
                    inst: inst.clone(),
                    queue: Mutex::new(Vec::new()),
                    ready: Condvar::new(),
                })
            })
            .collect(),
        lockout: Mutex::new(Lockout::new(
            config.lockout_failures,
            config.lockout_window_secs,
            config.lockout_secs,
        )),
        conns: Mutex::new(Conns {
            next_id: 0,
            open: HashMap::new(),
        }),
        conn_ended: Condvar::new(),
        answers: Answers::new(config),
        rejects: RejectLog::default(),
    });
    for w in &shared.writers {
        let (w, client, s) = (Arc::clone(w), Arc::clone(&client), Arc::clone(&shared));
        let spawned = thread::Builder::new()
            .name(format!("writer-{}", w.inst.id))
            .stack_size(WRITER_STACK)
            .spawn(move || run_writer(&w, &client, &s.config));
        if let Err(e) = spawned {
            log::fatal(&format!("cannot start a writer thread: {e}"));
            return 1;
        }
    }
    let ports: Vec<String> = config
        .ports
        .iter()
        .map(|(p, list)| format!("{}:{list}", p.as_str()))
        .collect();
    let instances: Vec<String> = config
        .instances
        .iter()
        .map(|i| format!("{}:{}", i.region, i.id))
        .collect();
    log::event(&format!(
        "knockd {} listening on {} path={} instances={} ports={} endpoint={}",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr().unwrap_or(config.bind),
        config.knock_path,
        instances.join(","),
        ports.join(","),
        config.endpoint.url(),
    ));
    accept_loop(&listener, &shared)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) -> i32 {
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) => {
                // EMFILE, ECONNABORTED and friends are transient: never stop accepting.
                reject_log(shared, || format!("accept-error error=\"{e}\""));
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let Some(id) = admit(shared, &stream) else {
            reject_log(shared, || {
                format!("reject addr={} reason=connection-cap", peer.ip())
            });
            continue;
        };
        let s = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                handle_connection(&s, stream, peer, id);
                end_connection(&s, id);
            });
        if let Err(e) = spawned {
            end_connection(shared, id);
            reject_log(shared, || format!("thread-error error=\"{e}\""));
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

fn set_state(shared: &Shared, id: u64, state: ConnState) {
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
    while conns.open.len() >= shared.config.max_connections {
        let evicting = conns
            .open
            .values()
            .filter(|c| c.state == ConnState::Evicted)
            .count();
        // One eviction in flight per connection over the cap is enough.
        if evicting < conns.open.len() + 1 - shared.config.max_connections {
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

/// The connection's overall deadline as the socket timeout, so a client that trickles bytes
/// cannot hold a thread much past CONNECTION_TIMEOUT. The timeout is re-set at most every
/// TIMEOUT_REFRESH (a setsockopt per read halved keep-alive throughput), so a read may end up
/// to that much after the deadline.
struct Deadline<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
    read_set: Option<Instant>,
    write_set: Option<Instant>,
}

const TIMEOUT_REFRESH: Duration = Duration::from_millis(250);

fn due(set: Option<Instant>, now: Instant) -> bool {
    set.is_none_or(|t| now.duration_since(t) >= TIMEOUT_REFRESH)
}

impl Deadline<'_> {
    /// Before an answer: the time left, but at least ANSWER_GRACE, since a knock may wait on
    /// the firewall past the deadline (KNOCK_TIMEOUT may exceed CONNECTION_TIMEOUT) and its
    /// answer must still be written.
    fn arm_write(&mut self) -> io::Result<()> {
        let now = Instant::now();
        if due(self.write_set, now) {
            let left = self
                .deadline
                .saturating_duration_since(now)
                .max(ANSWER_GRACE);
            self.stream.set_write_timeout(Some(left))?;
            self.write_set = Some(now);
        }
        Ok(())
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let now = Instant::now();
        let left = self.deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if due(self.read_set, now) {
            self.stream.set_read_timeout(Some(left))?;
            self.read_set = Some(now);
        }
        (&*self.stream).read(buf)
    }
}

fn handle_connection(shared: &Shared, stream: TcpStream, peer: SocketAddr, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(shared.config.connection_timeout_secs);
    let _ = stream.set_nodelay(true);
    let mut reader = HeadReader::new();
    let mut io = Deadline {
        stream: &stream,
        deadline,
        read_set: None,
        write_set: None,
    };
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let (ok, keep_alive, head_only) = match reader.next_request(&mut io) {
            ReadResult::Request(head) => {
                let ok = knock(shared, &head, peer.ip(), id);
                (ok, head.keep_alive(), head.method == "HEAD")
            }
            ReadResult::Bad => (false, false, false),
            ReadResult::Closed | ReadResult::Io(_) => return,
        };
        // Past the deadline the answer is still written (see arm_write), then the connection
        // closes.
        let keep_alive = keep_alive && Instant::now() < deadline;
        if io.arm_write().is_err()
            || (&stream)
                .write_all(shared.answers.get(ok, keep_alive, head_only))
                .is_err()
            || !keep_alive
        {
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
    }
}

/// The eight possible answers, built once: every response is one of these byte strings.
struct Answers([Vec<u8>; 8]);

impl Answers {
    fn new(config: &Config) -> Answers {
        Answers(std::array::from_fn(|i| {
            let body = if i & 4 != 0 {
                &config.message_success
            } else {
                &config.message_failure
            };
            http::response(body, i & 2 != 0, i & 1 != 0)
        }))
    }

    fn get(&self, ok: bool, keep_alive: bool, head_only: bool) -> &[u8] {
        &self.0[usize::from(ok) << 2 | usize::from(keep_alive) << 1 | usize::from(head_only)]
    }
}

/// Compares through SHA-256 so that neither the content nor the length of the secret leaks
/// through timing.
fn secret_matches(given: &[u8], secret: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(secret.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// `line` is only formatted when it is going to be written.
fn reject_log(shared: &Shared, line: impl FnOnce() -> String) {
    let now = crate::clock::now() as u64;
    let r = &shared.rejects;
    if r.second.swap(now, Ordering::Relaxed) != now {
        r.count.store(0, Ordering::Relaxed);
    }
    if r.count.fetch_add(1, Ordering::Relaxed) >= REJECT_LOGS_PER_SEC {
        r.suppressed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let suppressed = r.suppressed.swap(0, Ordering::Relaxed);
    if suppressed > 0 {
        log::event(&format!(
            "{} (and {suppressed} similar lines suppressed)",
            line()
        ));
    } else {
        log::event(&line());
    }
}

/// One request: true only when every instance confirmed the grant.
fn knock(shared: &Shared, head: &RequestHead, peer: IpAddr, conn: u64) -> bool {
    let config = &shared.config;
    let started = Instant::now();
    let now = crate::clock::now() as u64;
    let peer = cidr::canonical(peer);
    let resolved = client_ip::resolve(config.client_ip_method, peer, head, &config.trusted_proxies);
    // Behind a trusted proxy the peer is the proxy: lock out the client it vouches for, and
    // never the proxy itself (that would lock everyone out). A self-declared address
    // (METHOD 3) is the attacker's choice, so there the peer counts.
    let key = match (config.client_ip_method, &resolved) {
        (ClientIpMethod::Forwarded, Ok(ip)) => Some(lockout::key(*ip)),
        (ClientIpMethod::Forwarded, Err(_))
            if config.trusted_proxies.iter().any(|c| c.contains(peer)) =>
        {
            None
        }
        _ => Some(lockout::key(peer)),
    };
    if let Some(key) = key.filter(|k| lock(&shared.lockout).is_locked(*k, now)) {
        reject_log(shared, || format!("reject addr={key} reason=locked-out"));
        return false;
    }
    let is_get = head.method == "GET" || head.method == "HEAD";
    let secret_ok = head
        .header("referer")
        .is_some_and(|r| secret_matches(r, config.knock_referer.expose()));
    if !is_get || head.path != config.knock_path.as_bytes() || !secret_ok {
        let reason = if !is_get {
            "method"
        } else if head.path != config.knock_path.as_bytes() {
            "path"
        } else {
            "secret"
        };
        let locked = key.is_some_and(|k| lock(&shared.lockout).fail(k, now));
        let who = key.unwrap_or(peer);
        reject_log(shared, || format!("reject addr={who} reason={reason}"));
        if locked {
            log::event(&format!(
                "lockout addr={who} for={}s after {} failed knocks",
                config.lockout_secs, config.lockout_failures
            ));
        }
        return false;
    }
    let label = rule_desc::sanitize_label(head.header("location").unwrap_or(b""));
    let ip = match resolved {
        Ok(ip) => ip,
        Err(refusal) => {
            log::event(&format!(
                "knock peer={peer} label={label} result=refused reason=\"{refusal}\""
            ));
            return false;
        }
    };
    // Only a knock that waits on the firewall is shielded from eviction at the connection cap;
    // everything else answers at once and costs no shared lock here.
    set_state(shared, conn, ConnState::Knocking);
    let (tx, rx) = mpsc::channel();
    for w in &shared.writers {
        lock(&w.queue).push(Job {
            grant: Grant {
                ip,
                label: label.clone(),
            },
            reply: tx.clone(),
        });
        w.ready.notify_one();
    }
    drop(tx);
    let deadline = started + Duration::from_secs(config.knock_timeout_secs);
    let mut outcomes = Vec::new();
    while outcomes.len() < shared.writers.len() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(o) => outcomes.push(o),
            Err(_) => break,
        }
    }
    set_state(shared, conn, ConnState::Reading);
    let ok = outcomes.len() == shared.writers.len() && outcomes.iter().all(|o| o.ok);
    let mut per_instance: Vec<String> = outcomes
        .iter()
        .map(|o| format!("{}={}", o.instance, o.detail))
        .collect();
    for w in &shared.writers {
        if !outcomes.iter().any(|o| o.instance == w.inst.id) {
            per_instance.push(format!("{}=timeout", w.inst.id));
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

fn run_writer(w: &Writer, client: &Client, config: &Config) {
    let interval = Duration::from_secs(config.prune_interval_secs);
    // The first prune runs at start: it also shows at once whether the credentials work.
    let mut next_prune = (config.prune_interval_secs > 0).then(Instant::now);
    loop {
        let jobs = {
            let mut q = lock(&w.queue);
            loop {
                if !q.is_empty() {
                    break std::mem::take(&mut *q);
                }
                let now = Instant::now();
                match next_prune {
                    Some(t) if now >= t => break Vec::new(),
                    Some(t) => {
                        q = w
                            .ready
                            .wait_timeout(q, t - now)
                            .map_or_else(|p| p.into_inner().0, |r| r.0)
                    }
                    None => q = w.ready.wait(q).unwrap_or_else(|p| p.into_inner()),
                }
            }
        };
        if jobs.is_empty() {
            prune_once(w, client, config);
            next_prune = Some(Instant::now() + interval);
            continue;
        }
        let grants: Vec<Grant> = jobs.iter().map(|j| j.grant.clone()).collect();
        let calls_before = lighthouse::calls_on_this_thread();
        let result = firewall::apply(
            client,
            &w.inst,
            &Policy::from_config(config),
            &grants,
            false,
        );
        let calls = lighthouse::calls_on_this_thread() - calls_before;
        for (i, job) in jobs.into_iter().enumerate() {
            let (ok, detail) = match &result {
                Ok(applied) if applied.granted(i) => (
                    true,
                    format!(
                        "ok(calls={calls},batch={},rounds={},req={})",
                        grants.len(),
                        applied.rounds,
                        applied.request_ids.last().map_or("-", String::as_str)
                    ),
                ),
                Ok(applied) => (
                    false,
                    format!(
                        "no-room(rules={}/{},calls={calls}): quota full of rules knockd may not evict",
                        applied.rules_before,
                        QUOTA.saturating_sub(config.quota_reserve)
                    ),
                ),
                Err(e) => (false, format!("error(calls={calls}): {e}")),
            };
            let _ = job.reply.send(Outcome {
                instance: w.inst.id.clone(),
                ok,
                detail,
            });
        }
        if let Ok(applied) = &result {
            report_plan(w, applied, false);
        }
    }
}

fn report_plan(w: &Writer, applied: &firewall::Applied, with_unparseable: bool) {
    let plan = &applied.plan;
    if !plan.delete.is_empty() {
        log::event(&format!(
            "removed instance={} expired={} evicted={}",
            w.inst.id,
            plan.delete.len() - plan.evicted,
            plan.evicted
        ));
    }
    for r in plan.unparseable.iter().filter(|_| with_unparseable) {
        log::event(&format!(
            "unparseable-rule instance={} address={} description={:?}: left alone",
            w.inst.id,
            r.address(),
            r.description
        ));
    }
}

fn prune_once(w: &Writer, client: &Client, config: &Config) {
    match firewall::apply(client, &w.inst, &Policy::from_config(config), &[], false) {
        Ok(applied) => report_plan(w, &applied, true),
        Err(e) => log::event(&format!("prune instance={} error=\"{e}\"", w.inst.id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_comparison() {
        assert!(secret_matches(
            b"https://www.baidu..com/",
            "https://www.baidu..com/"
        ));
        assert!(!secret_matches(
            b"https://www.baidu..com",
            "https://www.baidu..com/"
        ));
        assert!(!secret_matches(b"", "x"));
    }
}
