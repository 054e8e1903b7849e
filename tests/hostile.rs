//! Hostile clients against the real knockd on loopback. Each case attacks a fresh knockd with raw
//! TcpStreams, then checks what the product promises: a valid knock still succeeds promptly, the
//! process is alive, and its memory and threads stay bounded. The measured figures are printed
//! (`cargo test --test hostile -- --nocapture`) so they can be quoted.
//!
//! Cases run one at a time (a process-wide lock under `cargo test`; under cargo-nextest, where
//! each case is a process of its own, the `hostile` test group of `.config/nextest.toml`): they
//! measure time and memory, and a neighbour's flood would blur the figures.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::knockd::*;
use common::sim::Sim;
use common::{Setup, INSTANCE};

/// MAX_CONNECTIONS of the test config: low, so the cases go past it.
const MAX_CONNECTIONS: usize = 64;
/// Bounds checked after every case.
const MAX_HWM_KB: u64 = 32 * 1024;
const MAX_THREADS: u64 = MAX_CONNECTIONS as u64 + 16;
/// A valid knock after (or during) an attack must be answered within this.
const PROMPT: Duration = Duration::from_secs(2);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

struct Case {
    name: String,
    sim: Sim,
    k: Knockd,
    next_client: u32,
    /// How soon a valid knock must be answered (PROMPT, plus any simulated API latency).
    prompt: Duration,
    _serial: MutexGuard<'static, ()>,
}

/// The setup of every case: MAX_CONNECTIONS low and short timeouts, so the attacks reach them.
fn setup(name: &str) -> Setup {
    Setup::new(name)
        .set("MAX_CONNECTIONS", &MAX_CONNECTIONS.to_string())
        .set("CONNECTION_TIMEOUT", "2s")
        .set("KNOCK_TIMEOUT", "5s")
}

impl Case {
    /// Starts a case (one at a time in this process).
    fn new(setup: Setup) -> Case {
        let serial = serial();
        let (sim, k) = setup.start();
        Case {
            name: setup.name().to_string(),
            sim,
            k,
            next_client: 1,
            prompt: PROMPT,
            _serial: serial,
        }
    }
}

impl Case {
    /// A valid knock with curl from a fresh client address; asserts success within PROMPT and
    /// returns how long it took.
    fn valid_knock(&mut self) -> Duration {
        let client = format!(
            "198.18.{}.{}",
            self.next_client / 250,
            self.next_client % 250 + 1
        );
        self.next_client += 1;
        let started = Instant::now();
        let body = knock_curl(&self.k, &client, "after");
        let took = started.elapsed();
        assert_eq!(
            body,
            SUCCESS,
            "{}: valid knock failed\n{}",
            self.name,
            self.k.log()
        );
        assert!(
            took < self.prompt,
            "{}: valid knock took {took:?}",
            self.name
        );
        took
    }

    /// The checks after an attack: prompt valid knock, alive, bounded memory and threads.
    fn finish(mut self, figures: &str) {
        let took = self.valid_knock();
        assert!(self.k.alive(), "{}: knockd died", self.name);
        let (hwm, rss, threads) = proc_status(self.k.pid());
        eprintln!(
            "FIGURES {}: {figures}; then valid knock {} ms, VmHWM {} kB, VmRSS {} kB, Threads {}",
            self.name,
            took.as_millis(),
            hwm,
            rss,
            threads
        );
        assert!(hwm > 0 && hwm < MAX_HWM_KB, "{}: VmHWM {hwm} kB", self.name);
        assert!(threads <= MAX_THREADS, "{}: {threads} threads", self.name);
        // Let connection threads of the attack run out, then check the figure again.
        thread::sleep(Duration::from_millis(300));
        assert!(self.k.alive());
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Writes (ignoring errors: the server may rightly hang up mid-way), half-closes (so a
/// keep-alive answer is not followed by a wait for the next request) and reads to EOF.
fn exchange(port: u16, request: &[u8]) -> String {
    let mut s = connect(port);
    let _ = s.write_all(request);
    let _ = s.shutdown(Shutdown::Write);
    read_all(&mut s)
}

fn knock_head(client: &str, eol: &str) -> String {
    format!(
        "GET /favico.ico HTTP/1.1{eol}Host: x{eol}Referer: {REFERER}{eol}Location: raw{eol}X-Forwarded-For: {client}{eol}{eol}"
    )
}

/// Samples Threads and VmRSS of `pid` until `stop`; returns the maxima.
fn sampler(pid: u32, stop: &AtomicBool) -> (u64, u64) {
    let (mut threads, mut rss) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let (_, r, t) = proc_status(pid);
        threads = threads.max(t);
        rss = rss.max(r);
        thread::sleep(Duration::from_millis(20));
    }
    (threads, rss)
}

#[test]
fn slowloris_hundreds_of_connections_trickling_bytes() {
    let mut case = Case::new(setup("slowloris"));
    let port = case.k.port;
    let pid = case.k.pid();
    let stop = AtomicBool::new(false);
    let reconnects = AtomicU64::new(0);
    let (during, (max_threads, max_rss)) = thread::scope(|s| {
        let attacker = s.spawn(|| {
            let prefix = b"GET /favico.ico HTTP/1.1\r\nX-Slow: ";
            let mut conns: Vec<(TcpStream, usize)> = (0..300)
                .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
                .map(|c| (c, 0))
                .collect();
            while !stop.load(Ordering::Relaxed) {
                for (c, sent) in conns.iter_mut() {
                    let byte = prefix.get(*sent).copied().unwrap_or(b'a');
                    if c.write_all(&[byte]).is_ok() {
                        *sent += 1;
                    } else if let Ok(fresh) = TcpStream::connect(("127.0.0.1", port)) {
                        // A closed slow connection comes straight back, as an attacker's would.
                        reconnects.fetch_add(1, Ordering::Relaxed);
                        *c = fresh;
                        *sent = 0;
                    }
                }
                thread::sleep(Duration::from_millis(200));
            }
            conns.len()
        });
        let watch = s.spawn(|| sampler(pid, &stop));
        thread::sleep(Duration::from_millis(1500));
        let mut times = Vec::new();
        for _ in 0..3 {
            times.push(case.valid_knock());
            thread::sleep(Duration::from_millis(300));
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(attacker.join().expect("attacker"), 300);
        (times, watch.join().expect("sampler"))
    });
    let during_ms: Vec<u128> = during.iter().map(Duration::as_millis).collect();
    assert!(
        max_threads <= MAX_THREADS,
        "{max_threads} threads during slowloris"
    );
    case.finish(&format!(
        "300 connections, 1 byte/200 ms each, {} reconnects; valid knocks during the attack {during_ms:?} ms; max Threads {max_threads}, max VmRSS {max_rss} kB during",
        reconnects.load(Ordering::Relaxed)
    ));
}

#[test]
fn one_mebibyte_header_line() {
    let case = Case::new(setup("1MiB-header"));
    let mut req = b"GET /favico.ico HTTP/1.1\r\nX-Big: ".to_vec();
    req.resize(req.len() + (1 << 20), b'a');
    req.extend_from_slice(b"\r\n\r\n");
    let started = Instant::now();
    let answer = exchange(case.k.port, &req);
    let took = started.elapsed();
    // The answer may be lost to a reset (the server closes with unread input); if it arrives,
    // it is the failure response.
    assert!(
        answer.is_empty() || bodies(&answer) == [FAILURE],
        "{answer}"
    );
    case.finish(&format!(
        "refused in {} ms ({} answer)",
        took.as_millis(),
        if answer.is_empty() {
            "reset, no"
        } else {
            "failure"
        }
    ));
}

#[test]
fn ten_thousand_headers() {
    let case = Case::new(setup("10k-headers"));
    let mut req = format!("GET /favico.ico HTTP/1.1\r\nReferer: {REFERER}\r\n").into_bytes();
    for i in 0..10_000 {
        req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let started = Instant::now();
    let answer = exchange(case.k.port, &req);
    assert!(
        answer.is_empty() || bodies(&answer) == [FAILURE],
        "{answer}"
    );
    // 64 headers is the limit: 65 small ones fit in the head budget and are still refused.
    let mut req = b"GET /favico.ico HTTP/1.1\r\n".to_vec();
    for i in 0..65 {
        req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    assert_eq!(bodies(&exchange(case.k.port, &req)), [FAILURE]);
    case.finish(&format!("refused in {} ms", started.elapsed().as_millis()));
}

#[test]
fn huge_content_length_without_a_body() {
    let case = Case::new(setup("huge-content-length"));
    let calls = case.sim.total_calls();
    let started = Instant::now();
    // Even with the right secret: a body we will not read is a bad request.
    let mut s = connect(case.k.port);
    let head = knock_head("203.0.113.60", "\r\n");
    let head = head.replace("\r\n\r\n", "\r\nContent-Length: 100000000000000\r\n\r\n");
    s.write_all(head.as_bytes()).expect("write");
    let answer = read_all(&mut s);
    let took = started.elapsed();
    assert_eq!(bodies(&answer), [FAILURE], "{answer}");
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    assert_eq!(case.sim.total_calls(), calls, "no API call");
    case.finish(&format!("failure answered in {} ms", took.as_millis()));
}

#[test]
fn chunked_bodies_are_refused() {
    let case = Case::new(setup("chunked"));
    let calls = case.sim.total_calls();
    let started = Instant::now();
    for body in [
        "0\r\n\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
        "ffffffffffffffff\r\nxx",
    ] {
        let head = knock_head("203.0.113.61", "\r\n")
            .replace("\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n");
        let answer = exchange(case.k.port, format!("{head}{body}").as_bytes());
        assert_eq!(bodies(&answer), [FAILURE], "{answer}");
    }
    // Both Content-Length and chunked: the smuggling classic.
    let head = knock_head("203.0.113.61", "\r\n").replace(
        "\r\n\r\n",
        "\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(bodies(&exchange(case.k.port, head.as_bytes())), [FAILURE]);
    assert_eq!(case.sim.total_calls(), calls, "no API call");
    case.finish(&format!(
        "4 refused in {} ms",
        started.elapsed().as_millis()
    ));
}

#[test]
fn pipelined_requests() {
    let case = Case::new(setup("pipelined"));
    let started = Instant::now();
    // bad, valid, bad (with a small body), valid: four answers, in order, on one connection.
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    req.extend_from_slice(knock_head("203.0.113.70", "\r\n").as_bytes());
    req.extend_from_slice(b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    req.extend_from_slice(
        knock_head("203.0.113.71", "\r\n")
            .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    let answer = exchange(case.k.port, &req);
    assert_eq!(
        bodies(&answer),
        [FAILURE, SUCCESS, FAILURE, SUCCESS],
        "{answer}"
    );
    // 1,100 pipelined bad requests in one write: at most 1,000 (the keep-alive bound) are
    // answered, then the connection is closed; the process shrugs.
    let many = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1100);
    let answered = bodies(&exchange(case.k.port, &many)).len();
    assert!((1..=1000).contains(&answered), "{answered} answers");
    case.finish(&format!(
        "4 answers in order, then {answered} of 1,100 pipelined answered, in {} ms",
        started.elapsed().as_millis()
    ));
}

#[test]
fn bare_lf_line_endings() {
    let case = Case::new(setup("bare-LF"));
    let started = Instant::now();
    let answer = exchange(
        case.k.port,
        knock_head("203.0.113.80", "\n")
            .replace("\n\n", "\nConnection: close\n\n")
            .as_bytes(),
    );
    assert_eq!(bodies(&answer), [SUCCESS], "{answer}");
    // Mixed endings, and a bare CR (not a line end) refused.
    let mixed = format!(
        "GET /favico.ico HTTP/1.1\r\nReferer: {REFERER}\nX-Forwarded-For: 203.0.113.81\r\nConnection: close\n\r\n"
    );
    assert_eq!(bodies(&exchange(case.k.port, mixed.as_bytes())), [SUCCESS]);
    let cr = format!("GET /favico.ico HTTP/1.1\rReferer: {REFERER}\r\r");
    let mut s = connect(case.k.port);
    s.write_all(cr.as_bytes()).expect("write");
    s.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(bodies(&read_all(&mut s)), [FAILURE]);
    case.finish(&format!(
        "bare-LF and mixed knocks succeed, bare CR refused, in {} ms",
        started.elapsed().as_millis()
    ));
}

#[test]
fn invalid_utf8_and_nul_bytes_in_paths_and_headers() {
    let case = Case::new(setup("invalid-utf8-nul"));
    let calls = case.sim.total_calls();
    let started = Instant::now();
    let nasty: Vec<Vec<u8>> = vec![
        b"GET /favico.ico\xff\xfe HTTP/1.1\r\nReferer: x\r\n\r\n".to_vec(),
        b"GET /fav\x00ico.ico HTTP/1.1\r\nReferer: x\r\n\r\n".to_vec(),
        b"GET /favico.ico HTTP/1.1\r\nReferer: \xff\xfe\xfd\r\n\r\n".to_vec(),
        b"GET /favico.ico HTTP/1.1\r\nReferer: a\x00b\r\n\r\n".to_vec(),
        b"GET /favico.ico HTTP/1.1\r\nX\xffY: v\r\n\r\n".to_vec(),
        b"G\x00T /favico.ico HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /favico.ico HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9\xff\r\nReferer: x\r\n\r\n"
            .to_vec(),
        b"\xc3\x28\xa0\xa1 / HTTP/1.1\r\n\r\n".to_vec(),
    ];
    for req in &nasty {
        let answer = exchange(case.k.port, req);
        assert_eq!(
            bodies(&answer),
            [FAILURE],
            "{:?}: {answer}",
            String::from_utf8_lossy(req)
        );
    }
    // Invalid UTF-8 in X-Forwarded-For with the right secret: refused, no API call.
    let req =
        format!("GET /favico.ico HTTP/1.1\r\nReferer: {REFERER}\r\nX-Forwarded-For: 203.0.113.9")
            .into_bytes()
            .into_iter()
            .chain(b"\xff\r\n\r\n".iter().copied())
            .collect::<Vec<u8>>();
    assert_eq!(bodies(&exchange(case.k.port, &req)), [FAILURE]);
    assert_eq!(case.sim.total_calls(), calls, "no API call");
    // Control bytes in a header value are not HTTP: refused even with the right secret.
    let mut req = format!("GET /favico.ico HTTP/1.1\r\nReferer: {REFERER}\r\nX-Forwarded-For: 203.0.113.91\r\nLocation: ")
        .into_bytes();
    req.extend_from_slice(b"a\x01b\x7f\r\n\r\n");
    assert_eq!(bodies(&exchange(case.k.port, &req)), [FAILURE]);
    assert_eq!(case.sim.total_calls(), calls, "no API call");
    // A label of invalid UTF-8 with the right secret: sanitised, granted.
    let mut req = format!("GET /favico.ico HTTP/1.1\r\nReferer: {REFERER}\r\nX-Forwarded-For: 203.0.113.90\r\nConnection: close\r\nLocation: ")
        .into_bytes();
    req.extend_from_slice(b"\xff\xfeok\xc3\r\n\r\n");
    assert_eq!(bodies(&exchange(case.k.port, &req)), [SUCCESS]);
    let rules = case.sim.rules(INSTANCE);
    let desc = rules
        .iter()
        .find(|r| r["CidrBlock"] == "203.0.113.90")
        .and_then(|r| r["FirewallRuleDescription"].as_str())
        .expect("rule for 203.0.113.90")
        .to_string();
    assert!(desc.starts_with("Knockd-ok until "), "{desc}");
    case.finish(&format!(
        "{} nasty requests refused, sanitised label {desc:?}, in {} ms",
        nasty.len() + 2,
        started.elapsed().as_millis()
    ));
}

#[test]
fn connection_flood_past_the_cap() {
    let case = Case::new(setup("connection-flood"));
    let pid = case.k.pid();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (held, slowest, (max_threads, max_rss)) = thread::scope(|s| {
        let watch = s.spawn(|| sampler(pid, &stop));
        // 1000 idle connections, held open: 15 times the cap.
        let mut slowest = Duration::ZERO;
        let held: Vec<TcpStream> = (0..1000)
            .filter_map(|_| {
                let t = Instant::now();
                let c = TcpStream::connect(("127.0.0.1", case.k.port)).ok();
                slowest = slowest.max(t.elapsed());
                c
            })
            .collect();
        thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        (held, slowest, watch.join().expect("sampler"))
    });
    let flood_ms = started.elapsed().as_millis();
    assert_eq!(held.len(), 1000, "every connect was accepted");
    assert!(
        max_threads <= MAX_THREADS,
        "{max_threads} threads during the flood"
    );
    // With the flood still held open, a knock evicts the oldest and gets through.
    case.finish(&format!(
        "1000 idle connections held ({flood_ms} ms, slowest connect {} ms: the kernel's accept-queue backpressure), max Threads {max_threads}, max VmRSS {max_rss} kB during",
        slowest.as_millis()
    ));
    drop(held);
}

#[test]
fn clients_that_never_read_the_response() {
    let case = Case::new(setup("never-read"));
    let started = Instant::now();
    // 100 connections each pipelining 100 requests and never reading a byte back.
    let big = format!(
        "GET /nope HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(400)
    );
    let held: Vec<TcpStream> = (0..100)
        .filter_map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", case.k.port)).ok()?;
            s.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
            for _ in 0..100 {
                if s.write_all(big.as_bytes()).is_err() {
                    break;
                }
            }
            Some(s)
        })
        .collect();
    let elapsed = started.elapsed().as_millis();
    case.finish(&format!(
        "{} connections x 100 requests never read ({elapsed} ms)",
        held.len()
    ));
    drop(held);
}

#[test]
fn half_closed_sockets() {
    let case = Case::new(setup("half-closed"));
    let started = Instant::now();
    // A complete knock, then the client shuts its sending side: the answer still arrives.
    let mut s = connect(case.k.port);
    s.write_all(knock_head("203.0.113.100", "\r\n").as_bytes())
        .expect("write");
    s.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(bodies(&read_all(&mut s)), [SUCCESS]);
    // Half a head, then half-close: failure, at once rather than after the timeout.
    let mut s = connect(case.k.port);
    s.write_all(b"GET /favico.ico HTTP/1.1\r\nRefe")
        .expect("write");
    s.shutdown(Shutdown::Write).expect("half-close");
    let t = Instant::now();
    assert_eq!(bodies(&read_all(&mut s)), [FAILURE]);
    let partial_ms = t.elapsed().as_millis();
    assert!(partial_ms < 1000);
    // Nothing at all, then half-close; and 100 connections closed for reading by the client.
    let mut s = connect(case.k.port);
    s.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(read_all(&mut s), "");
    let held: Vec<TcpStream> = (0..100)
        .filter_map(|_| {
            let s = TcpStream::connect(("127.0.0.1", case.k.port)).ok()?;
            let _ = s.shutdown(Shutdown::Read);
            let _ = (&s).write_all(b"GET / HTTP/1.1\r\n\r\n");
            Some(s)
        })
        .collect();
    case.finish(&format!(
        "answer after half-close ok, partial head refused in {partial_ms} ms, 100 read-closed clients; {} ms",
        started.elapsed().as_millis()
    ));
    drop(held);
}

#[test]
fn request_split_one_byte_per_write() {
    let case = Case::new(setup("one-byte-writes"));
    let mut s = connect(case.k.port);
    s.set_nodelay(true).expect("nodelay");
    let head =
        knock_head("203.0.113.110", "\r\n").replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    let started = Instant::now();
    for b in head.as_bytes() {
        s.write_all(&[*b]).expect("write");
        thread::sleep(Duration::from_millis(2));
    }
    let answer = read_all(&mut s);
    let took = started.elapsed();
    assert_eq!(bodies(&answer), [SUCCESS], "{answer}");
    // A trickle that outlasts CONNECTION_TIMEOUT (2 s) is cut off.
    let mut s = connect(case.k.port);
    let t = Instant::now();
    let mut cut = false;
    for b in head.as_bytes() {
        if s.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 1];
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        match s.read(&mut probe) {
            Ok(_) => {
                cut = true;
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                cut = true;
                break;
            }
        }
        if t.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let cut_after = t.elapsed();
    assert!(cut, "a 50 ms/byte trickle was not cut off");
    assert!(
        cut_after < Duration::from_millis(3500),
        "cut after {cut_after:?}"
    );
    case.finish(&format!(
        "{} bytes one per write answered in {} ms; a 50 ms/byte trickle cut after {} ms",
        head.len(),
        took.as_millis(),
        cut_after.as_millis()
    ));
}

#[test]
fn lockout_after_ten_failures_costs_no_api_call_and_spares_others() {
    let mut case = Case::new(setup("lockout").with(&[
        ("LOCKOUT_FAILURES", "10"),
        ("LOCKOUT_WINDOW", "10m"),
        ("LOCKOUT_DURATION", "30m"),
    ]));
    let bad =
        "GET /favico.ico HTTP/1.1\r\nReferer: wrong\r\nX-Forwarded-For: 203.0.113.200\r\n\r\n";
    let answer = exchange(case.k.port, bad.repeat(9).as_bytes());
    assert_eq!(bodies(&answer).len(), 9);
    // Nine failures: not locked yet, the right secret still works (and clears the record).
    assert_eq!(knock_curl(&case.k, "203.0.113.201", "x"), SUCCESS);
    let bad2 = bad.replace("203.0.113.200", "203.0.113.202");
    assert_eq!(
        bodies(&exchange(case.k.port, bad2.repeat(10).as_bytes())),
        vec![FAILURE; 10]
    );
    let calls = case.sim.total_calls();
    let started = Instant::now();
    assert_eq!(
        knock_curl(&case.k, "203.0.113.202", "x"),
        FAILURE,
        "11th knock, right secret"
    );
    let locked_ms = started.elapsed().as_millis();
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        case.sim.total_calls(),
        calls,
        "a locked-out knock makes no API call"
    );
    // Log lines follow the answer (on the logging thread): wait for them.
    assert!(
        case.k
            .wait_log("lockout addr=203.0.113.202", Duration::from_secs(2)),
        "{}",
        case.k.log()
    );
    assert!(case.k.wait_log(
        "reject addr=203.0.113.202 reason=locked-out",
        Duration::from_secs(2)
    ));
    // Another address is unaffected.
    assert_eq!(knock_curl(&case.k, "203.0.113.203", "x"), SUCCESS);
    // A spray of 20,000 addresses each failing once: the table stays bounded.
    let started = Instant::now();
    let spray: Vec<String> = (0..200u32)
        .map(|c| {
            (0..100u32)
                .map(|i| {
                    let n = c * 100 + i;
                    format!(
                        "GET / HTTP/1.1\r\nX-Forwarded-For: 10.{}.{}.{}\r\n\r\n",
                        n >> 16,
                        (n >> 8) & 255,
                        n & 255
                    )
                })
                .collect()
        })
        .collect();
    thread::scope(|s| {
        for chunk in spray.chunks(50) {
            let port = case.k.port;
            s.spawn(move || {
                for reqs in chunk {
                    let _ = exchange(port, reqs.as_bytes());
                }
            });
        }
    });
    let spray_ms = started.elapsed().as_millis();
    // Still locked, still costs nothing.
    let calls = case.sim.total_calls();
    assert_eq!(knock_curl(&case.k, "203.0.113.202", "x"), FAILURE);
    assert_eq!(case.sim.total_calls(), calls);
    case.valid_knock();
    case.finish(&format!(
        "11th knock refused in {locked_ms} ms with 0 API calls; 20,000-address spray in {spray_ms} ms"
    ));
}

#[test]
fn knocks_waiting_on_a_slow_firewall_survive_a_flood_and_the_connection_timeout() {
    // Every API answer takes 1.5 s: a knock (read, then write) takes about 3 s, longer than
    // CONNECTION_TIMEOUT (2 s). The knock's answer must still be written, and a flood of
    // connections past the cap must not evict the knocks that wait on the firewall.
    let case = Case::new(
        setup("slow-firewall")
            .sim_args(&["--latency-ms", "1500"])
            .with(&[("MAX_CONNECTIONS", "8"), ("KNOCK_TIMEOUT", "10s")]),
    );
    let mut case = case;
    // Two API calls of 1.5 s each, on top of the usual bound.
    case.prompt = PROMPT + Duration::from_secs(3);
    let port = case.k.port;
    let started = Instant::now();
    let answers: Vec<(String, Duration)> = thread::scope(|s| {
        let knocks: Vec<_> = (0..4)
            .map(|i| {
                s.spawn(move || {
                    let t = Instant::now();
                    let head = knock_head(&format!("203.0.113.{}", 150 + i), "\r\n")
                        .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
                    let body = bodies(&exchange(port, head.as_bytes())).join("|");
                    (body, t.elapsed())
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(300));
        // 200 idle connections past a cap of 8, while the four knocks wait.
        let held: Vec<TcpStream> = (0..200)
            .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
            .collect();
        let answers = knocks
            .into_iter()
            .map(|h| h.join().expect("knock"))
            .collect();
        drop(held);
        answers
    });
    for (body, took) in &answers {
        assert_eq!(
            body,
            SUCCESS,
            "a knock that waited {took:?} on the firewall\n{}",
            case.k.log()
        );
    }
    let ms: Vec<u128> = answers.iter().map(|(_, t)| t.as_millis()).collect();
    case.finish(&format!(
        "4 knocks of {ms:?} ms (CONNECTION_TIMEOUT 2 s) answered success through a 200-connection flood, in {} ms",
        started.elapsed().as_millis()
    ));
}
