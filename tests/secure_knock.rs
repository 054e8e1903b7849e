//! Secure knocks (issue 12) end to end: the real knockd and lighthouse-sim, the clients
//! `--add-client` prints run as printed with real sh, curl, GNU wget and busybox, and every
//! refusal case on the wire.
//!
//! Two set-ups. Most tests knock from loopback with METHOD_TO_GET_CLIENT_IP=2 and name the
//! client in X-Forwarded-For, as tests/knock.rs does. The printed lines and `knockd --knock`
//! cannot add that header, and knockd never opens the firewall for a loopback address, so
//! those tests bind knockd to this machine's own non-loopback address with METHOD 1: the
//! traffic still never leaves the machine.

mod common;

use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::forbid_in_logs;
use common::knockd::*;
use common::sim::Sim;
use common::Setup;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const INST: &str = "lhins-kn0ck001";
const KEY_A: &str = "aliceKEYaliceKEYaliceKEYaliceKEYaliceKEY_-0";
const KEY_B: &str = "bobKEYbobKEYbobKEYbobKEYbobKEYbobKEYbob-_01";
const KEY_OLD: &str = "oldKEYoldKEYoldKEYoldKEYoldKEYoldKEYold-_01";
const CHALLENGE_SECRET: &str = "test-challenge-secret-0123456789abcdef";

/// A started simulator and knockd, with the clients file and config directory.
struct Door {
    sim: Sim,
    k: Knockd,
    dir: PathBuf,
    /// The host knockd listens on (127.0.0.1, or this machine's own address for METHOD 1).
    host: String,
}

impl Door {
    fn url(&self) -> String {
        format!("http://{}:{}/favico.ico", self.host, self.k.port)
    }

    fn clients_file(&self) -> PathBuf {
        self.dir.join("knockd.clients")
    }

    /// Runs a knockd command with this door's configuration.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = run(&self.k.config, args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// One GET on the knock path with this query, as a client at `xff` behind the loopback
    /// proxy; returns the body.
    fn get(&self, query: &str, xff: &str) -> String {
        get_as(&format!("{}?{query}", self.url()), xff)
    }

    /// Step 1 for `label` from `xff`: the challenge `T.N.G`.
    fn challenge(&self, label: &str, xff: &str) -> String {
        let c = self.get(&format!("c={label}"), xff);
        assert!(is_challenge(&c), "not a challenge: {c:?}\n{}", self.k.log());
        c
    }

    /// Both steps; returns the step-2 body and the step-2 query (to replay it).
    fn knock(&self, label: &str, key: &str, xff: &str) -> (String, String) {
        let c = self.challenge(label, xff);
        let q = step2(label, key, &c, None);
        (self.get(&q, xff), q)
    }

    fn wait_log(&self, needle: &str) -> bool {
        self.k.wait_log(needle, Duration::from_secs(10))
    }

    fn count(&self, needle: &str) -> usize {
        self.k.log().matches(needle).count()
    }
}

fn is_challenge(body: &str) -> bool {
    let p: Vec<&str> = body.split('.').collect();
    p.len() == 3
        && !p[0].is_empty()
        && p[0].bytes().all(|b| b.is_ascii_digit())
        && p[1].len() == 16
        && p[2].len() == 32
        && (p[1].to_string() + p[2])
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// H = hex SHA-256 of `KEY:LABEL:T.N.G:KEY`, registered as a secret no log may contain.
/// G as knockd computes it with KNOCK_CHALLENGE_SECRET, for crafted challenges.
fn g(label: &str, t: i64, n: &str, addr: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(CHALLENGE_SECRET.as_bytes())
        .expect("any key length");
    mac.update(format!("knockd-c1|{label}|{t}|{n}|{addr}").as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// Writes a clients file (mode 0600) and registers its keys as secrets.
fn write_clients(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    for line in text.lines() {
        if let Some(key) = line.split_whitespace().nth(1) {
            forbid_in_logs("a client key", key);
        }
    }
    std::fs::write(path, text).expect("write clients");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// The default clients of most tests: alice (ttl 12h), bob, and old (expired).
fn default_clients() -> String {
    format!("alice {KEY_A} ttl=12h\nbob {KEY_B}\nold {KEY_OLD} expires=2020-01-01\n")
}

/// A door behind the loopback "proxy" (METHOD 2), without KNOCK_REFERER, with these clients.
fn door(clients: &str, extra: &[(&str, &str)]) -> Door {
    door_on("127.0.0.1", "2", clients, extra)
}

fn door_on(host: &str, method: &str, clients: &str, extra: &[(&str, &str)]) -> Door {
    let dir = temp_dir("secure");
    let port = free_port();
    let setup = Setup::new("secure")
        .dir(&dir)
        .set("BIND_PORT", &port.to_string())
        .set("KNOCK_REFERER", "")
        .set("BIND_IP", host)
        .set("METHOD_TO_GET_CLIENT_IP", method)
        .set(
            "KNOCK_PUBLIC_URL",
            &format!("http://{host}:{port}/favico.ico"),
        )
        .set("KNOCK_CHALLENGE_SECRET", CHALLENGE_SECRET)
        .with(extra);
    write_clients(&dir.join("knockd.clients"), clients);
    let (sim, k) = setup.start();
    Door {
        sim,
        k,
        dir,
        host: host.to_string(),
    }
}

/// This machine's own non-loopback IPv4 address: knocks sent to it come from it, and knockd
/// may open the firewall for it (it never does for loopback).
fn own_address() -> String {
    let routed = UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("198.51.100.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip());
    let listed = || -> Option<IpAddr> {
        let out = Command::new("hostname").arg("-I").output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|w| w.parse::<IpAddr>().ok())
            .find(|ip| ip.is_ipv4() && !ip.is_loopback())
    };
    match routed
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
    {
        Some(ip) => ip.to_string(),
        None => listed()
            .expect(
                "this machine needs a non-loopback IPv4 address for the printed clients to knock \
                 from (knockd never opens the firewall for loopback)",
            )
            .to_string(),
    }
}

/// Whether `tool` is there; without it the test fails under `make test`
/// (KNOCKD_TEST_REQUIRE_TOOLS=1) and is skipped otherwise.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("KNOCKD_TEST_REQUIRE_TOOLS").is_none(),
            "{tool} is required (KNOCKD_TEST_REQUIRE_TOOLS is set; scripts/setup.sh installs it)"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

/// The line after the heading that starts with `heading` in `--add-client`'s output.
fn printed_line(text: &str, heading: &str) -> String {
    let mut lines = text.lines();
    lines
        .find(|l| l.starts_with(heading))
        .unwrap_or_else(|| panic!("no {heading:?} in:\n{text}"));
    lines
        .next()
        .expect("a line after the heading")
        .trim()
        .to_string()
}

/// Runs `line` with `shell` (e.g. `["sh", "-c"]`) in `cwd`, `knockd` first in PATH.
fn run_line(shell: &[&str], line: &str, cwd: &Path) -> (bool, String, String) {
    let bin = Path::new(env!("CARGO_BIN_EXE_knockd"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .arg("60")
        .args(shell)
        .arg(line)
        .current_dir(cwd)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .expect("run the printed line");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--add-client` on `d`; returns its stdout, registering the printed key as a secret.
fn add_client(d: &Door, args: &[&str]) -> String {
    let mut all = vec!["--add-client"];
    all.extend_from_slice(args);
    let (code, out, err) = d.run(&all);
    assert_eq!(code, 0, "{out}{err}");
    let key = out
        .split("K='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("K='…' in the printed lines");
    forbid_in_logs("a key printed by --add-client", key);
    out
}

#[test]
fn printed_curl_wget_busybox_and_knockd_lines_open_the_firewall() {
    ensure_clients();
    let me = own_address();
    let d = door_on(&me, "1", &default_clients(), &[]);
    let mut ran = 0;
    for (label, heading, shell, tools) in [
        (
            "sh-curl",
            "Shell with curl",
            &["sh", "-c"][..],
            &["curl", "sha256sum"][..],
        ),
        (
            "sh-wget",
            "Shell with GNU wget",
            &["sh", "-c"][..],
            &["wget", "sha256sum"][..],
        ),
        (
            "router",
            "busybox only",
            &["busybox", "sh", "-c"][..],
            &["busybox"][..],
        ),
    ] {
        if !tools.iter().all(|t| have(t)) {
            continue;
        }
        let printed = add_client(&d, &[label, "--ttl", "2h"]);
        // A client added while knockd runs is read within a second.
        thread::sleep(Duration::from_millis(1100));
        let line = printed_line(&printed, heading);
        let (ok, out, err) = run_line(shell, &line, &d.dir);
        assert!(
            ok && out == "knock: ok\n",
            "{label}: {line}\nstdout {out:?} stderr {err:?}\n{}",
            d.k.log()
        );
        assert!(d.wait_log(&format!("knock addr={me} label={label} result=ok")));
        let rules = d.sim.rules_for(INST, &me);
        assert_eq!(rules.len(), 2, "{label}: {rules:?}");
        for r in &rules {
            let desc = r["FirewallRuleDescription"].as_str().expect("desc");
            assert!(
                desc.starts_with(&format!("Knockd-{label} until ")),
                "{desc}"
            );
        }
        // Gone again, so that the next line has to open the firewall itself.
        let (code, out, err) = d.run(&["--revoke", &me]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(d.sim.rules_for(INST, &me).is_empty());
        ran += 1;
    }

    // The `knockd --knock` lines, as printed: they write a key file, then knock.
    let printed = add_client(&d, &["laptop"]);
    thread::sleep(Duration::from_millis(1100));
    let mut lines = printed.lines();
    lines
        .find(|l| l.starts_with("knockd as the client"))
        .expect("knockd client heading");
    let two: Vec<String> = lines.take(2).map(|l| l.trim().to_string()).collect();
    assert!(two[1].starts_with("knockd --knock "), "{two:?}");
    let (ok, out, err) = run_line(&["sh", "-c"], &two.join("\n"), &d.dir);
    assert!(ok && out == "knock: ok\n", "{out:?} {err:?}\n{}", d.k.log());
    assert!(d.wait_log(&format!("knock addr={me} label=laptop result=ok")));
    assert_eq!(d.sim.rules_for(INST, &me).len(), 2);
    assert!(ran == 3 || std::env::var_os("KNOCKD_TEST_REQUIRE_TOOLS").is_none());
}

#[test]
fn knock_command_succeeds_and_every_knocks_repeatedly() {
    let me = own_address();
    let d = door_on(&me, "1", &default_clients(), &[]);
    let key_file = d.dir.join("alice.key");
    std::fs::write(&key_file, format!("{KEY_A}\n")).expect("key file");
    let bin = env!("CARGO_BIN_EXE_knockd");
    let out = Command::new(bin)
        .args(["--knock", &d.url(), "--label", "alice", "--key-file"])
        .arg(&key_file)
        .output()
        .expect("knockd --knock");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout == "knock: ok\n",
        "{stdout} {stderr}"
    );
    assert!(d.wait_log(&format!("knock addr={me} label=alice result=ok")));
    assert_eq!(d.sim.rules_for(INST, &me).len(), 2);

    // A wrong key: exit 1 with the reason.
    let wrong = d.dir.join("wrong.key");
    std::fs::write(&wrong, format!("{KEY_B}\n")).expect("key file");
    let out = Command::new(bin)
        .args(["--knock", &d.url(), "--label", "alice", "--key-file"])
        .arg(&wrong)
        .output()
        .expect("knockd --knock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("knock refused"), "{stderr}");

    // --every 1s: knocks until stopped.
    let before = d.count("label=alice result=ok");
    let mut child = Command::new(bin)
        .args([
            "--knock",
            &d.url(),
            "--label",
            "alice",
            "--every",
            "1s",
            "--key-file",
        ])
        .arg(&key_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("knockd --knock --every");
    thread::sleep(Duration::from_millis(3300));
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    let oks = String::from_utf8_lossy(&out.stdout)
        .matches("knock: ok")
        .count();
    thread::sleep(Duration::from_millis(200));
    let grants = d.count("label=alice result=ok") - before;
    assert!(
        oks >= 3 && grants >= 3,
        "{oks} ok lines, {grants} grants\n{}",
        d.k.log()
    );
}

#[test]
fn a_captured_step2_url_sent_again_is_refused_with_no_api_call() {
    let d = door(&default_clients(), &[]);
    let (body, q) = d.knock("alice", KEY_A, "198.51.100.7");
    assert_eq!(body, SUCCESS, "{}", d.k.log());
    assert_eq!(d.sim.rules_for(INST, "198.51.100.7").len(), 2);
    let calls = d.sim.total_calls();
    assert_eq!(d.get(&q, "198.51.100.7"), FAILURE);
    assert!(d.wait_log("reason=replay"));
    assert_eq!(d.sim.total_calls(), calls, "a replay costs no API call");
}

#[test]
fn a_captured_step2_url_from_another_address_is_refused() {
    let d = door(&default_clients(), &[]);
    let c = d.challenge("alice", "198.51.100.7");
    let q = step2("alice", KEY_A, &c, None);
    let calls = d.sim.total_calls();
    // The sniffer sends it first, within the window, from its own address.
    assert_eq!(d.get(&q, "198.51.100.66"), FAILURE);
    assert!(d.wait_log("reject addr=198.51.100.66 reason=challenge"));
    assert!(d.sim.rules_for(INST, "198.51.100.66").is_empty());
    assert_eq!(d.sim.total_calls(), calls);
    // The client's own knock still works: a refusal does not use the challenge up.
    assert_eq!(d.get(&q, "198.51.100.7"), SUCCESS);
}

#[test]
fn a_challenge_older_than_the_ttl_is_refused() {
    let d = door(&default_clients(), &[("KNOCK_CHALLENGE_TTL", "2s")]);
    // Waited out.
    let c = d.challenge("alice", "198.51.100.7");
    thread::sleep(Duration::from_millis(3200));
    assert_eq!(
        d.get(&step2("alice", KEY_A, &c, None), "198.51.100.7"),
        FAILURE
    );
    assert!(d.wait_log("reject addr=198.51.100.7 reason=stale"));
    // Crafted in the past with a valid G (knockd's secret is known here).
    let t = common::sim::now() - 120;
    let n = "0123456789abcdef";
    let crafted = format!("{t}.{n}.{}", g("alice", t, n, "198.51.100.8"));
    assert_eq!(
        d.get(&step2("alice", KEY_A, &crafted, None), "198.51.100.8"),
        FAILURE
    );
    assert!(d.wait_log("reject addr=198.51.100.8 reason=stale"));
    // The same crafted form with a fresh T is accepted: only the age was wrong.
    let t = common::sim::now();
    let fresh = format!("{t}.{n}.{}", g("alice", t, n, "198.51.100.8"));
    assert_eq!(
        d.get(&step2("alice", KEY_A, &fresh, None), "198.51.100.8"),
        SUCCESS
    );
    assert!(d.sim.rules_for(INST, "198.51.100.7").is_empty());
}

/// One refusal case with LOCKOUT_FAILURES=1: refused with `reason`, no API call, and it counts
/// toward the lockout (the right knock from that address is refused afterwards, while another
/// address still gets in).
fn refused_and_counted(query: impl Fn(&Door) -> String, reason: &str) {
    let d = door(&default_clients(), &[("LOCKOUT_FAILURES", "1")]);
    let calls = d.sim.total_calls();
    let q = query(&d);
    assert_eq!(d.get(&q, "198.51.100.7"), FAILURE, "{q}");
    assert!(
        d.wait_log(&format!("reject addr=198.51.100.7 reason={reason}")),
        "{}",
        d.k.log()
    );
    assert!(d.wait_log("lockout addr=198.51.100.7"), "{}", d.k.log());
    assert_eq!(d.sim.total_calls(), calls);
    // Locked out: even the challenge is refused, so the right knock cannot happen.
    assert_eq!(d.get("c=alice", "198.51.100.7"), FAILURE);
    assert!(d.sim.rules_for(INST, "198.51.100.7").is_empty());
    let (body, _) = d.knock("alice", KEY_A, "198.51.100.9");
    assert_eq!(body, SUCCESS);
}

#[test]
fn refused_unknown_label_counts_toward_the_lockout() {
    refused_and_counted(
        |d| {
            let c = d.challenge("mallory", "198.51.100.7");
            step2("mallory", KEY_A, &c, None)
        },
        "unknown",
    );
}

#[test]
fn refused_expired_client_counts_toward_the_lockout() {
    refused_and_counted(
        |d| {
            let c = d.challenge("old", "198.51.100.7");
            step2("old", KEY_OLD, &c, None)
        },
        "expired",
    );
}

#[test]
fn refused_wrong_key_counts_toward_the_lockout() {
    refused_and_counted(
        |d| {
            let c = d.challenge("alice", "198.51.100.7");
            step2("alice", KEY_B, &c, None)
        },
        "signature",
    );
}

/// The right knock's challenge with part `i` (0 = T, 1 = N, 2 = G) changed.
fn tampered(d: &Door, i: usize) -> String {
    let c = d.challenge("alice", "198.51.100.7");
    let mut parts: Vec<String> = c.split('.').map(str::to_string).collect();
    parts[i] = match i {
        // One second later, not earlier: a knockd started a second ago refuses T at or before
        // its start as stale, before it looks at G.
        0 => (parts[0].parse::<i64>().expect("T") + 1).to_string(),
        // The last hex digit: N begins with the serving process's mark, and a challenge of the
        // start's second without it is stale before G is looked at.
        _ => {
            let p = &parts[i];
            let last = if p.ends_with('0') { "1" } else { "0" };
            format!("{}{last}", &p[..p.len() - 1])
        }
    };
    // H over the tampered text, as a forger with the key but not knockd's secret would send.
    step2("alice", KEY_A, &parts.join("."), None)
}

#[test]
fn refused_tampered_t_counts_toward_the_lockout() {
    refused_and_counted(|d| tampered(d, 0), "challenge");
}

#[test]
fn refused_tampered_n_counts_toward_the_lockout() {
    refused_and_counted(|d| tampered(d, 1), "challenge");
}

#[test]
fn refused_tampered_g_counts_toward_the_lockout() {
    refused_and_counted(|d| tampered(d, 2), "challenge");
}

#[test]
fn refused_malformed_request_counts_toward_the_lockout() {
    refused_and_counted(|_| "c=not.a.label".to_string(), "malformed");
}

#[test]
fn after_lockout_failures_refusals_the_right_knock_is_refused() {
    let d = door(&default_clients(), &[("LOCKOUT_FAILURES", "6")]);
    let from = "198.51.100.7";
    let unknown = step2("mallory", KEY_A, &d.challenge("mallory", from), None);
    let expired = step2("old", KEY_OLD, &d.challenge("old", from), None);
    let wrong = step2("alice", KEY_B, &d.challenge("alice", from), None);
    let t = tampered(&d, 0);
    let n = tampered(&d, 1);
    for q in [unknown, expired, wrong, t, n] {
        assert_eq!(d.get(&q, from), FAILURE);
    }
    // Five failures: not locked out yet...
    assert!(!d.k.log().contains("lockout addr="));
    assert!(is_challenge(&d.get("c=alice", from)));
    let g = tampered(&d, 2);
    assert_eq!(d.get(&g, from), FAILURE);
    // ...the sixth locks the address out.
    assert!(d.wait_log("lockout addr=198.51.100.7"));
    assert_eq!(d.get("c=alice", from), FAILURE);
    for reason in ["unknown", "expired", "signature", "challenge"] {
        assert!(d.wait_log(&format!("reason={reason}")), "{reason}");
    }
    assert!(d.sim.rules_for(INST, from).is_empty());
}

#[test]
fn remove_client_on_a_running_knockd_revokes_only_that_client() {
    let d = door(&default_clients(), &[]);
    assert_eq!(d.knock("alice", KEY_A, "198.51.100.7").0, SUCCESS);
    assert_eq!(d.knock("bob", KEY_B, "198.51.100.8").0, SUCCESS);
    assert_eq!(d.sim.rules_for(INST, "198.51.100.7").len(), 2);
    // alice's rules carry her ttl=12h, bob's RULE_TTL (30 days).
    let desc = |ip: &str| {
        d.sim.rules_for(INST, ip)[0]["FirewallRuleDescription"]
            .as_str()
            .expect("desc")
            .to_string()
    };
    let until = |ip: &str| desc(ip).split(" until ").nth(1).expect("until").to_string();
    assert!(desc("198.51.100.7").starts_with("Knockd-alice until "));
    assert!(desc("198.51.100.8").starts_with("Knockd-bob until "));
    assert!(
        until("198.51.100.7") < until("198.51.100.8"),
        "12h < RULE_TTL"
    );

    let (code, out, err) = d.run(&["--remove-client", "alice"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Removed client alice"), "{out}");
    assert!(d.sim.rules_for(INST, "198.51.100.7").is_empty(), "{out}");
    assert_eq!(d.sim.rules_for(INST, "198.51.100.8").len(), 2);
    let text = std::fs::read_to_string(d.clients_file()).expect("clients");
    assert!(!text.contains("alice") && text.contains("bob"), "{text}");

    // alice's next knock fails; bob is unaffected.
    assert_eq!(d.knock("alice", KEY_A, "198.51.100.7").0, FAILURE);
    assert!(d.wait_log("reject addr=198.51.100.7 reason=unknown"));
    assert!(d.sim.rules_for(INST, "198.51.100.7").is_empty());
    assert_eq!(d.knock("bob", KEY_B, "198.51.100.8").0, SUCCESS);

    let (code, out, _) = d.run(&["--list-clients"]);
    assert_eq!(code, 0);
    assert!(out.contains("bob") && !out.contains("alice"), "{out}");
    assert!(!out.contains(KEY_B), "--list-clients never shows a key");
}

#[test]
fn a_client_added_while_running_knocks_without_restart() {
    let mut d = door(&default_clients(), &[]);
    assert_eq!(d.knock("alice", KEY_A, "198.51.100.7").0, SUCCESS);
    let printed = add_client(&d, &["carol", "--expires", "2099-12-31"]);
    let key = printed
        .split("K='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("key")
        .to_string();
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        d.knock("carol", &key, "198.51.100.10").0,
        SUCCESS,
        "{}",
        d.k.log()
    );
    assert!(d.wait_log("label=carol result=ok"));
    assert_eq!(d.sim.rules_for(INST, "198.51.100.10").len(), 2);
    assert!(d.k.alive());
}

#[test]
fn the_referer_knock_works_only_when_knock_referer_is_set() {
    // A clients file and no KNOCK_REFERER: only key knocks.
    let d = door(&default_clients(), &[]);
    assert_eq!(knock_curl(&d.k, "198.51.100.7", "Office_01"), FAILURE);
    assert!(d.wait_log("reject addr=198.51.100.7 reason=secret"));
    assert!(d.sim.rules_for(INST, "198.51.100.7").is_empty());
    drop(d);
    // With KNOCK_REFERER set as well: both knocks work.
    let d = door(&default_clients(), &[("KNOCK_REFERER", REFERER)]);
    assert_eq!(knock_curl(&d.k, "198.51.100.7", "Office_01"), SUCCESS);
    assert_eq!(d.knock("alice", KEY_A, "198.51.100.8").0, SUCCESS);
    let (code, out, _) = d.run(&["--check-config"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("the Referer knock is on: it is replayable"),
        "{out}"
    );
}

#[test]
fn without_clients_and_without_knock_referer_knockd_refuses_to_start() {
    let sim = Sim::single();
    let dir = temp_dir("secure-none");
    let path = Setup::new("secure-none")
        .dir(&dir)
        .set("KNOCK_REFERER", "")
        .write_config(&sim);
    let out = run(&path, &["--check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("KNOCK_REFERER: required while the clients file"),
        "{err}"
    );
    // The commands that do not serve are not stopped by it.
    for args in [&["--list"][..], &["--list-clients"][..]] {
        let out = run(&path, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
    // --add-client works there (it creates the file, 0600), and then the configuration is
    // valid without KNOCK_REFERER.
    let out = run(&path, &["--add-client", "first"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let key = text
        .split("K='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("key");
    forbid_in_logs("a key printed by --add-client", key);
    assert!(text.contains("iPhone Shortcut"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("knockd.clients"))
        .expect("clients file beside the config")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = run(&path, &["--check-config"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key client's own `ttl=` is the lifetime its grant notification announces, not RULE_TTL
/// (the command hook's KNOCKD_EXPIRES; alice has ttl=12h, RULE_TTL is 30 days by default).
#[test]
fn a_key_knock_notification_announces_the_clients_own_rule_lifetime() {
    let dir = temp_dir("secure-notify");
    let (command, out) = common::env_hook(&dir);
    let d = door(&default_clients(), &[("NOTIFY_COMMAND", &command)]);
    let before = knockd::clock::now();
    let (body, _) = d.knock("alice", KEY_A, "203.0.113.61");
    assert_eq!(body, SUCCESS, "{}", d.k.log());
    let after = knockd::clock::now();
    let env = common::hook_env(&out, || d.k.log());
    let var = |name: &str| common::env_var(&env, name);
    assert_eq!(var("KNOCKD_EVENT"), "grant");
    assert_eq!(var("KNOCKD_LABEL"), "alice");
    let twelve_hours = 12 * 3600;
    let expected: Vec<String> = (before..=after + 60)
        .step_by(30)
        .map(|t| format!("{}Z", knockd::clock::utc_minute(t + twelve_hours)))
        .collect();
    let expires = var("KNOCKD_EXPIRES");
    assert!(
        expected.contains(&expires),
        "KNOCKD_EXPIRES={expires}, expected 12h from now ({expected:?})"
    );
}

#[test]
fn a_granted_knock_whose_answer_is_not_the_expected_text_says_so_showing_both() {
    let me = own_address();
    let d = door_on(
        &me,
        "1",
        &default_clients(),
        &[("MESSAGE_SUCCESS", "door open")],
    );
    let key_file = d.dir.join("alice.key");
    std::fs::write(&key_file, format!("{KEY_A}\n")).expect("key file");
    let out = Command::new(env!("CARGO_BIN_EXE_knockd"))
        .args([
            "--knock",
            &d.url(),
            "--label",
            "alice",
            "--expect",
            "door opened",
        ])
        .arg("--key-file")
        .arg(&key_file)
        .output()
        .expect("knockd --knock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // knockd granted it: the client must not call that a refusal.
    assert!(d.wait_log(&format!("knock addr={me} label=alice result=ok")));
    assert!(
        stderr.contains(
            "the answer \"door open\" is not the expected text \"door opened\": if \"door \
             open\" is the server's MESSAGE_SUCCESS, the knock worked"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("knock refused"), "{stderr}");
    assert!(!stderr.contains(KEY_A), "{stderr}");
}

#[test]
fn add_client_refuses_a_past_expiry_day_and_a_lifetime_under_two_minutes() {
    let d = door(&default_clients(), &[]);
    let before = std::fs::read_to_string(d.clients_file()).expect("clients file");
    for (args, says) in [
        (
            &["--add-client", "carol", "--expires", "2020-01-01"][..],
            "--expires: 2020-01-01 is already past (today is ",
        ),
        (
            &["--add-client", "carol", "--ttl", "30s"][..],
            "--ttl: '30s' is shorter than 2m, the shortest rule lifetime",
        ),
    ] {
        let (code, out, err) = d.run(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.starts_with(&format!("knockd: {says}")), "{err}");
        assert_eq!(
            std::fs::read_to_string(d.clients_file()).expect("clients file"),
            before,
            "{args:?} changed the clients file"
        );
    }
    // Today still works (the key works through its expires= day).
    let today = knockd::clock::utc_date(knockd::clock::now());
    add_client(&d, &["carol", "--expires", &today, "--ttl", "2m"]);
}
