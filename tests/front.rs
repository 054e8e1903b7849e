//! The knock port's front as one poll loop (issue 28): idle connections cost no thread and
//! little memory, and a knock that waits on the firewall is parked without holding up the
//! requests pipelined behind it on its connection or anyone else's.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::knockd::*;
use common::Setup;

/// This process's soft descriptor limit, so the test opens no more than it may.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

#[test]
fn idle_connections_cost_no_thread_and_under_two_kib_each() {
    let (_sim, k) = Setup::new("front-idle")
        .set("MAX_CONNECTIONS", "4096")
        .set("CONNECTION_TIMEOUT", "30s")
        .start();
    thread::sleep(Duration::from_millis(300));
    let (_, rss_before, threads_before) = proc_status(k.pid());
    let n = 2000.min(open_files_limit().saturating_sub(100));
    let held: Vec<TcpStream> = (0..n)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", k.port)).ok())
        .collect();
    assert_eq!(held.len(), n, "every connect was accepted");
    thread::sleep(Duration::from_millis(500));
    let (_, rss, threads) = proc_status(k.pid());
    assert!(
        threads <= threads_before + 1,
        "{threads} threads with {n} idle connections ({threads_before} before)"
    );
    let per_connection = rss.saturating_sub(rss_before) * 1024 / n as u64;
    assert!(
        per_connection <= 2048,
        "{per_connection} bytes per idle connection ({rss_before} -> {rss} kB for {n})"
    );
    // With all of them still held, a knock goes through at once.
    let started = Instant::now();
    assert_eq!(knock_curl(&k, "203.0.113.150", "idle"), SUCCESS);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "knock took {took:?}");
    eprintln!(
        "FIGURES front: {n} idle connections, {threads} threads, {per_connection} B each; knock in {} ms",
        took.as_millis()
    );
    drop(held);
}

#[test]
fn a_request_pipelined_behind_a_parked_knock_is_answered_after_it() {
    let (_sim, k) = Setup::new("front-pipelined")
        .sim_args(&["--latency-ms", "300"])
        .start();
    let knock = format!(
        "GET /favico.ico HTTP/1.1\r\nHost: x\r\nReferer: {REFERER}\r\nLocation: piped\r\n\
         X-Forwarded-For: 203.0.113.151\r\n\r\n"
    );
    let after = "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut s = TcpStream::connect(("127.0.0.1", k.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // Meanwhile other connections are answered at once, though the knock waits on the API.
    s.write_all(format!("{knock}{after}").as_bytes())
        .expect("write");
    thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let mut other = TcpStream::connect(("127.0.0.1", k.port)).expect("connect");
    other
        .write_all(after.as_bytes())
        .expect("write another request");
    assert_eq!(bodies(&read_all(&mut other)), [FAILURE]);
    let other_ms = started.elapsed().as_millis();
    assert!(other_ms < 250, "another connection waited {other_ms} ms");
    assert_eq!(bodies(&read_all(&mut s)), [SUCCESS, FAILURE], "{}", k.log());
}
