//! Client-chosen rule lifetimes (issue 27, part 1) end to end: the real knockd and
//! lighthouse-sim. A step-2 knock `k=LABEL.T.N.G.L.H` asks for L seconds, H covering
//! `T.N.G.L`; knockd caps L at the client's `ttl=` (RULE_TTL without one) and refuses an L
//! under 2m. Today's `k=LABEL.T.N.G.H` behaves exactly as before.
//!
//! Knocks come from loopback with METHOD_TO_GET_CLIENT_IP=2, naming the client in
//! X-Forwarded-For (as tests/secure_knock.rs does); `knockd --knock --ttl` knocks from this
//! machine's own address with METHOD 1.

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::forbid_in_logs;
use common::knockd::*;
use common::sim::Sim;
use common::{Setup, INSTANCE};

const KEY_A: &str = "aliceKEYaliceKEYaliceKEYaliceKEYaliceKEY_-0";
const KEY_B: &str = "bobKEYbobKEYbobKEYbobKEYbobKEYbobKEYbob-_01";

/// alice has ttl=12h; bob has none, so RULE_TTL (1h in these tests) is his cap.
fn clients() -> String {
    format!("alice {KEY_A} ttl=12h\nbob {KEY_B}\n")
}

struct Door {
    sim: Sim,
    k: Knockd,
    dir: PathBuf,
    host: String,
}

fn door_on(host: &str, method: &str) -> Door {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("lifetimes");
    let setup = Setup::new("lifetimes")
        .dir(&dir)
        .set("KNOCK_REFERER", "")
        .set("BIND_IP", host)
        .set("METHOD_TO_GET_CLIENT_IP", method)
        .set("RULE_TTL", "1h");
    forbid_in_logs("a client key", KEY_A);
    forbid_in_logs("a client key", KEY_B);
    let path = dir.join("knockd.clients");
    std::fs::write(&path, clients()).expect("clients");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (sim, k) = setup.start();
    Door {
        sim,
        k,
        dir,
        host: host.to_string(),
    }
}

fn door() -> Door {
    door_on("127.0.0.1", "2")
}

impl Door {
    fn url(&self) -> String {
        format!("http://{}:{}/favico.ico", self.host, self.k.port)
    }

    fn get(&self, query: &str, xff: &str) -> String {
        get_as(&format!("{}?{query}", self.url()), xff)
    }

    /// Step 1 for `label` from `xff`: `T.N.G`.
    fn challenge(&self, label: &str, xff: &str) -> String {
        let c = self.get(&format!("c={label}"), xff);
        assert_eq!(
            c.split('.').count(),
            3,
            "not a challenge: {c:?}\n{}",
            self.k.log()
        );
        c
    }

    /// Both steps, asking for `lifetime` seconds (None: today's knock); the step-2 body.
    fn knock(&self, label: &str, key: &str, xff: &str, lifetime: Option<u64>) -> String {
        let c = self.challenge(label, xff);
        self.get(&step2(label, key, &c, lifetime), xff)
    }

    /// The `until …` of the rules for `ip` (both protocols must agree).
    fn until(&self, ip: &str) -> String {
        let rules = self.sim.rules_for(INSTANCE, ip);
        assert_eq!(rules.len(), 2, "{rules:?}\n{}", self.k.log());
        let untils: Vec<String> = rules
            .iter()
            .map(|r| {
                let d = r["FirewallRuleDescription"].as_str().expect("desc");
                d.split(" until ").nth(1).expect("until").to_string()
            })
            .collect();
        assert_eq!(untils[0], untils[1]);
        untils[0].clone()
    }
}

/// The `until` texts a rule written between `before` and `after` with this lifetime may carry
/// (the expiry is written to the minute, cut down).
fn expected_until(before: i64, after: i64, secs: i64) -> Vec<String> {
    (before..=after)
        .map(|t| format!("{}Z", knockd::clock::utc_minute(t + secs)))
        .collect()
}

/// Knocks `label` asking for `lifetime` from `ip` and checks the rules expire `want` seconds on.
fn assert_granted_for(
    d: &Door,
    label: &str,
    key: &str,
    ip: &str,
    lifetime: Option<u64>,
    want: i64,
) {
    let before = knockd::clock::now();
    assert_eq!(d.knock(label, key, ip, lifetime), SUCCESS, "{}", d.k.log());
    let after = knockd::clock::now();
    let until = d.until(ip);
    let expected = expected_until(before, after, want);
    assert!(
        expected.contains(&until),
        "{label} asking {lifetime:?}: until {until}, expected {want}s on ({expected:?})"
    );
}

#[test]
fn a_requested_ten_minutes_gives_a_rule_expiring_in_ten_minutes() {
    let d = door();
    assert_granted_for(&d, "alice", KEY_A, "203.0.113.21", Some(600), 600);
    // bob (RULE_TTL 1h) too: the cap is not the lifetime.
    assert_granted_for(&d, "bob", KEY_B, "203.0.113.22", Some(600), 600);
    assert!(d
        .k
        .log()
        .contains("knock addr=203.0.113.21 label=alice result=ok"));
}

#[test]
fn a_request_above_the_cap_is_capped() {
    let d = door();
    // alice asks a day: her ttl=12h.
    assert_granted_for(&d, "alice", KEY_A, "203.0.113.31", Some(86_400), 12 * 3600);
    // bob asks 2h: RULE_TTL, 1h.
    assert_granted_for(&d, "bob", KEY_B, "203.0.113.32", Some(7200), 3600);
    // Ten digits of seconds is still a request, capped.
    assert_granted_for(&d, "bob", KEY_B, "203.0.113.33", Some(3_000_000_000), 3600);
}

#[test]
fn a_request_below_the_two_minute_floor_is_refused() {
    let d = door();
    for l in [60, 119] {
        assert_eq!(d.knock("alice", KEY_A, "203.0.113.41", Some(l)), FAILURE);
    }
    assert!(d.k.wait_log(
        "reject addr=203.0.113.41 reason=malformed",
        Duration::from_secs(10)
    ));
    assert!(d.sim.rules_for(INSTANCE, "203.0.113.41").is_empty());
    // Exactly 2m is granted.
    assert_granted_for(&d, "alice", KEY_A, "203.0.113.42", Some(120), 120);
}

#[test]
fn an_old_format_knock_is_unchanged() {
    let d = door();
    assert_granted_for(&d, "alice", KEY_A, "203.0.113.51", None, 12 * 3600);
    assert_granted_for(&d, "bob", KEY_B, "203.0.113.52", None, 3600);
}

#[test]
fn a_relay_cannot_lengthen_or_strip_the_lifetime() {
    let d = door();
    let ip = "203.0.113.61";
    let c = d.challenge("alice", ip);
    let genuine = step2("alice", KEY_A, &c, Some(600));
    let lengthened = genuine.replacen(".600.", ".43200.", 1);
    let stripped = genuine.replacen(".600.", ".", 1);
    assert_eq!(d.get(&lengthened, ip), FAILURE);
    assert_eq!(d.get(&stripped, ip), FAILURE);
    assert!(d.k.wait_log_count(
        "reject addr=203.0.113.61 reason=signature",
        2,
        Duration::from_secs(10)
    ));
    assert_eq!(d.k.log().matches("reason=signature").count(), 2);
    assert!(d.sim.rules_for(INSTANCE, ip).is_empty());
    // The genuine one still works: failures before H never use the challenge up.
    let before = knockd::clock::now();
    assert_eq!(d.get(&genuine, ip), SUCCESS);
    let after = knockd::clock::now();
    assert!(expected_until(before, after, 600).contains(&d.until(ip)));
}

/// This machine's own non-loopback IPv4 address (knockd never opens for loopback).
fn own_address() -> String {
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("198.51.100.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .expect("a non-loopback IPv4 address to knock from")
        .to_string()
}

#[test]
fn knock_command_asks_for_a_lifetime_with_ttl() {
    let me = own_address();
    let d = door_on(&me, "1");
    let key_file = d.dir.join("alice.key");
    std::fs::write(&key_file, format!("{KEY_A}\n")).expect("key file");
    let before = knockd::clock::now();
    let out = Command::new(env!("CARGO_BIN_EXE_knockd"))
        .args(["--knock", &d.url(), "--label", "alice", "--ttl", "10m"])
        .arg("--key-file")
        .arg(&key_file)
        .output()
        .expect("knockd --knock");
    let after = knockd::clock::now();
    assert!(
        out.status.success(),
        "{}\n{}",
        common::show(&out),
        d.k.log()
    );
    assert!(expected_until(before, after, 600).contains(&d.until(&me)));

    // Under the floor: a usage error before any request.
    let out = Command::new(env!("CARGO_BIN_EXE_knockd"))
        .args(["--knock", &d.url(), "--label", "alice", "--ttl", "1m"])
        .arg("--key-file")
        .arg(&key_file)
        .output()
        .expect("knockd --knock");
    assert_eq!(out.status.code(), Some(2), "{}", common::show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ttl: '1m' is shorter than 2m"), "{err}");
}
