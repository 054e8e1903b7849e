//! Never wider than configured: a knock with the right secret that names anything but one
//! grantable address (a CIDR, a list, a port, unspecified, loopback, IPv4-mapped loopback,
//! link-local, multicast, broadcast) gets the failure body and costs no API call. With METHOD 1
//! a forged X-Forwarded-For changes nothing.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::knockd::*;
use common::sim::Sim;
use common::{Setup, INSTANCE};

/// Addresses that must never be opened, as one header value.
const BAD: &[&str] = &[
    "203.0.113.0/24",
    "0.0.0.0/0",
    "::/0",
    "203.0.113.5/32",
    "203.0.113.5:8080",
    "[2001:db8::5]:443",
    "2001:db8::5/128",
    "0.0.0.0",
    "::",
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:0.0.0.0",
    "169.254.169.254",
    "fe80::1",
    "fe80::1%eth0",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "255.255.255.255",
    "",
    "unknown",
    "203.0.113.5 203.0.113.6",
];

/// Lists: refused where one address is expected (X-Real-IP, the METHOD 3 `ip` header).
const LISTS: &[&str] = &[
    "203.0.113.5,203.0.113.6",
    "203.0.113.5, 203.0.113.6",
    "203.0.113.5,",
    ",203.0.113.5",
];

/// knockd taking the client address by `method`.
fn setup(method: &str) -> Setup {
    Setup::new("never-wider")
        .set("METHOD_TO_GET_CLIENT_IP", method)
        // Refused knocks must not lock the test's own loopback out half-way.
        .set("LOCKOUT_FAILURES", "0")
}

/// A knock with the right secret and `headers`, sent raw so any value goes through unchanged.
fn knock_with(k: &Knockd, headers: &[(&str, &str)]) -> String {
    let mut req = format!(
        "GET /favico.ico HTTP/1.1\r\nHost: x\r\nReferer: {REFERER}\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    let mut s = TcpStream::connect(("127.0.0.1", k.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(req.as_bytes()).expect("write");
    let _ = s.shutdown(Shutdown::Write);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
}

fn assert_refused(sim: &Sim, k: &Knockd, headers: &[(&str, &str)]) {
    let before = sim.total_calls();
    assert_eq!(knock_with(k, headers), FAILURE, "{headers:?}");
    assert_eq!(sim.total_calls(), before, "{headers:?} cost an API call");
}

fn assert_no_rules_but_defaults(sim: &Sim, expected: usize) {
    assert_eq!(
        sim.rules(INSTANCE).len(),
        expected,
        "{:?}",
        sim.rules(INSTANCE)
    );
}

#[test]
fn method_2_refuses_anything_but_one_grantable_address() {
    let (sim, k) = setup("2").start();
    let rules = sim.rules(INSTANCE).len();
    let mut refused = 0;
    for bad in BAD {
        assert_refused(&sim, &k, &[("X-Forwarded-For", bad)]);
        assert_refused(&sim, &k, &[("X-Real-IP", bad)]);
        refused += 2;
        // A bad item anywhere in the chain spoils the whole header, even after a good one.
        // Loopback items are the exception by design: they are TRUSTED_PROXIES (a local proxy
        // appending itself), so the client is the address left of them.
        if ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"].contains(bad) {
            continue;
        }
        let chain = format!("203.0.113.5, {bad}");
        assert_refused(&sim, &k, &[("X-Forwarded-For", &chain)]);
        refused += 1;
    }
    for list in LISTS {
        assert_refused(&sim, &k, &[("X-Real-IP", list)]);
        refused += 1;
    }
    // Empty chain items are not skipped.
    assert_refused(&sim, &k, &[("X-Forwarded-For", "203.0.113.5,,203.0.113.6")]);
    assert_refused(&sim, &k, &[("X-Forwarded-For", "203.0.113.5,")]);
    // No header at all: the peer (loopback) is the client, and it is refused.
    assert_refused(&sim, &k, &[]);
    refused += 3;
    assert_no_rules_but_defaults(&sim, rules);
    // Sanity: the same setup does grant one plain address.
    assert_eq!(
        knock_with(&k, &[("X-Forwarded-For", "203.0.113.5")]),
        SUCCESS
    );
    eprintln!("FIGURES never-wider METHOD 2: {refused} forged knocks refused, 0 API calls");
}

#[test]
fn method_3_refuses_anything_but_one_grantable_address() {
    let (sim, k) = setup("3").start();
    let rules = sim.rules(INSTANCE).len();
    let mut refused = 0;
    for bad in BAD.iter().chain(LISTS) {
        assert_refused(&sim, &k, &[("ip", bad)]);
        refused += 1;
    }
    // Repeated `ip` headers, and no `ip` header.
    assert_refused(&sim, &k, &[("ip", "203.0.113.5"), ("ip", "203.0.113.6")]);
    assert_refused(&sim, &k, &[("X-Forwarded-For", "203.0.113.5")]);
    refused += 2;
    assert_no_rules_but_defaults(&sim, rules);
    assert_eq!(knock_with(&k, &[("ip", "203.0.113.5")]), SUCCESS);
    eprintln!("FIGURES never-wider METHOD 3: {refused} forged knocks refused, 0 API calls");
}

#[test]
fn method_1_ignores_forged_forwarding_headers() {
    let (sim, k) = setup("1").start();
    let rules = sim.rules(INSTANCE).len();
    // The peer is 127.0.0.1: whatever the headers claim, the knock is from loopback and refused.
    for headers in [
        vec![("X-Forwarded-For", "203.0.113.5")],
        vec![("X-Real-IP", "203.0.113.5")],
        vec![("ip", "203.0.113.5")],
        vec![("Forwarded", "for=203.0.113.5")],
        vec![
            ("X-Forwarded-For", "203.0.113.5"),
            ("X-Real-IP", "203.0.113.5"),
            ("ip", "203.0.113.5"),
        ],
    ] {
        assert_refused(&sim, &k, &headers);
    }
    assert_eq!(knock_curl(&k, "203.0.113.5", "forged"), FAILURE);
    assert_no_rules_but_defaults(&sim, rules);
    assert!(!sim
        .rules(INSTANCE)
        .iter()
        .any(|r| r["CidrBlock"] == "203.0.113.5"));
    assert!(
        k.wait_log("may never be opened", std::time::Duration::from_secs(2)),
        "{}",
        k.log()
    );
}
