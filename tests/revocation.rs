//! "A removed key stops working, always": the real knockd and lighthouse-sim, knocking with
//! curl from loopback (METHOD_TO_GET_CLIENT_IP=2, the client named in X-Forwarded-For), as
//! tests/secure_knock.rs does. Each test prints a `FIGURES` line: what it measured.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::forbid_in_logs;
use common::knockd::*;
use common::sim::Sim;
use serde_json::Value;

const INST: &str = common::INSTANCE;
const KEY_A: &str = "aliceKEYaliceKEYaliceKEYaliceKEYaliceKEY_-0";
const KEY_M: &str = "malloryKEYmalloryKEYmalloryKEYmalloryKEY-_0";
const KEY_R: &str = "routerKEYrouterKEYrouterKEYrouterKEYrouter_1";
const CHALLENGE_SECRET: &str = "revocation-challenge-secret-0123456789ab";

struct Door {
    sim: Sim,
    k: Knockd,
    dir: PathBuf,
}

impl Door {
    fn clients_file(&self) -> PathBuf {
        self.dir.join("knockd.clients")
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = run(&self.k.config, args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// One GET on the knock path with this query, from `xff` behind the loopback proxy.
    fn get(&self, query: &str, xff: &str) -> String {
        get_as(&format!("{}?{query}", self.k.url("/favico.ico")), xff)
    }

    /// Both steps of a key knock; the step-2 body (a failed step 1 is a failure too).
    fn knock(&self, label: &str, key: &str, xff: &str) -> String {
        let c = self.get(&format!("c={label}"), xff);
        if c == FAILURE {
            return c;
        }
        self.get(&step2(label, key, &c, None), xff)
    }

    fn rules_for(&self, addr: &str) -> Vec<Value> {
        self.sim
            .rules(INST)
            .into_iter()
            .filter(|r| r.get("CidrBlock").and_then(Value::as_str) == Some(addr))
            .collect()
    }
}

/// Writes a clients file (mode 0600) and registers every key field as a secret.
fn write_clients(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(key) = line.split_whitespace().nth(1) {
            forbid_in_logs("a client key", key);
        }
    }
    std::fs::write(path, text).expect("write clients");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

fn door(clients: &str, extra: &[(&str, &str)]) -> Door {
    let sim = Sim::start(&["--instance", common::INSTANCE_ARG]);
    let dir = temp_dir("revocation");
    let port = free_port();
    let mut cfg = base_config(&sim, INST, port);
    set(&mut cfg, "KNOCK_REFERER", "");
    set(&mut cfg, "BIND_IP", "127.0.0.1");
    set(&mut cfg, "METHOD_TO_GET_CLIENT_IP", "2");
    set(&mut cfg, "KNOCK_CHALLENGE_SECRET", CHALLENGE_SECRET);
    for (k, v) in extra {
        set(&mut cfg, k, v);
    }
    write_clients(&dir.join("knockd.clients"), clients);
    let k = Knockd::start(&dir, &cfg);
    Door { sim, k, dir }
}

/// Item 1: a typo appended to the clients file (`router.home KEY`, a label with a dot) used to
/// freeze the client set a serving knockd uses (`result=kept-previous`), so `--remove-client
/// mallory` (exit 0, her rules deleted) left her key working. Now that line alone is left out.
#[test]
fn remove_client_revokes_the_key_while_the_file_holds_an_invalid_line() {
    let d = door(
        &format!("alice {KEY_A}\nmallory {KEY_M}\n"),
        &[("LOCKOUT_FAILURES", "0")],
    );
    assert_eq!(d.knock("mallory", KEY_M, "198.51.100.66"), SUCCESS);
    let mut text = std::fs::read_to_string(d.clients_file()).expect("clients");
    text.push_str(&format!("router.home {KEY_R}\n"));
    write_clients(&d.clients_file(), &text);
    // knockd looks at the file (at most once a second) when a knock needs it.
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(d.knock("alice", KEY_A, "198.51.100.7"), SUCCESS);

    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_knockd"))
        .args(["--config"])
        .arg(&d.k.config)
        .args(["--remove-client", "mallory"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("--remove-client");
    // Mallory keeps knocking, each time from a new address so that no rule of an earlier
    // success stands in the way of seeing the answer.
    let mut refused_after = None;
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(10) {
        n += 1;
        if d.knock("mallory", KEY_M, &format!("198.51.100.{}", 100 + n % 100)) == FAILURE {
            refused_after = Some(started.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    println!(
        "FIGURES item 1: mallory's key knock refused {} after --remove-client started \
         (the file holding `router.home KEY`)",
        refused_after.map_or("never within 10 s".into(), |t| format!(
            "{} ms",
            t.as_millis()
        ))
    );
    let t = refused_after.expect("mallory's key still works after --remove-client");
    assert!(t < Duration::from_millis(1500), "refused only after {t:?}");
    assert!(d.k.log().contains("reason=unknown"), "{}", d.k.log());
    // Her rules are gone, alice keeps hers, and alice still knocks.
    assert!(d.rules_for("198.51.100.66").is_empty());
    assert_eq!(d.rules_for("198.51.100.7").len(), 2);
    assert_eq!(d.knock("alice", KEY_A, "198.51.100.8"), SUCCESS);
    // The bad line is reported with its number, once per change of the file, never its key.
    let log = d.k.log();
    // Line 3 until --remove-client took line 2 (mallory's) out, line 2 after.
    assert_eq!(
        log.matches("result=line-ignored problem=\"line 3: the label")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("result=line-ignored problem=\"line 2: the label")
            .count(),
        1,
        "{log}"
    );
    assert!(
        stderr.contains("line 2:") && stderr.contains("ignores this line"),
        "{stderr}"
    );
    assert!(!log.contains("kept-previous"), "{log}");
}

/// Item 1: one invalid line no longer stops the door at start-up (it used to exit 2, so a
/// restart after the typo took the door down), while `--check-config` still fails on it.
#[test]
fn one_invalid_line_neither_stops_the_start_nor_passes_the_check() {
    let d = door(
        &format!("alice {KEY_A}\nrouter.home {KEY_R}\n# a comment\n"),
        &[],
    );
    assert_eq!(d.knock("alice", KEY_A, "198.51.100.7"), SUCCESS);
    let log = d.k.log();
    assert!(log.contains("clients=1 ignored-lines=1"), "{log}");
    assert!(
        log.contains("result=line-ignored problem=\"line 2: the label"),
        "{log}"
    );
    assert!(
        log.contains("line 2: the label") && log.contains("IGNORED"),
        "the start-up warning on stderr:\n{log}"
    );
    let (code, out, err) = d.run(&["--check-config"]);
    println!("FIGURES item 1: start-up with one invalid line: serving; --check-config exit {code}");
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("KNOCK_CLIENTS_FILE") && err.contains("line 2:"),
        "{err}"
    );
    assert!(!err.contains(KEY_R) && !out.contains(KEY_R));
}

/// Item 6: a FIFO as the clients file used to hang `--check-config` (and every key knock, and
/// `--list-clients`) on the open until a writer came. It is refused at once.
#[test]
fn a_fifo_as_clients_file_is_refused_at_once() {
    let d = door(&format!("alice {KEY_A}\n"), &[]);
    std::fs::remove_file(d.clients_file()).expect("rm");
    let made = Command::new("mkfifo")
        .arg(d.clients_file())
        .status()
        .expect("mkfifo");
    assert!(made.success());
    for args in [&["--check-config"][..], &["--list-clients"][..]] {
        let started = Instant::now();
        let out = Command::new("timeout")
            .arg("5")
            .arg(env!("CARGO_BIN_EXE_knockd"))
            .arg("--config")
            .arg(&d.k.config)
            .args(args)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        println!(
            "FIGURES item 6: {args:?} on a FIFO clients file: exit {:?} after {} ms",
            out.status.code(),
            started.elapsed().as_millis()
        );
        assert_ne!(out.status.code(), Some(124), "{args:?} hung on the FIFO");
        assert!(err.contains("not a regular file"), "{args:?}: {err}");
    }
    // The serving knockd keeps the clients it had, and answers at once.
    thread::sleep(Duration::from_millis(1100));
    let started = Instant::now();
    assert_eq!(d.knock("alice", KEY_A, "198.51.100.7"), SUCCESS);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(d.k.log().contains("not a regular file"), "{}", d.k.log());
}

/// Item 4: a valid key knock used to clear the address's failure count, so a key holder could
/// interleave 9 guesses of the shared KNOCK_REFERER with 1 valid key knock and never be locked
/// out. Now a success clears nothing: the tenth guess within the window locks the address.
#[test]
fn valid_key_knocks_do_not_wash_out_referer_guesses() {
    let d = door(
        &format!("alice {KEY_A}\n"),
        &[("KNOCK_REFERER", REFERER), ("LOCKOUT_FAILURES", "10")],
    );
    let from = "198.51.100.7";
    let url = d.k.url("/favico.ico");
    let mut guesses = 0;
    let mut locked_after = None;
    'rounds: for round in 0..3 {
        for i in 0..9 {
            let (status, body) = curl(&[
                "-H",
                &format!("X-Forwarded-For: {from}"),
                "-H",
                &format!("Referer: https://guess-{round}-{i}.example/"),
                &url,
            ]);
            assert_eq!((status, body.as_str()), (500, FAILURE));
            guesses += 1;
            if d.k
                .wait_log(&format!("lockout addr={from}"), Duration::from_millis(50))
            {
                locked_after = Some(guesses);
                break 'rounds;
            }
        }
        assert_eq!(d.knock("alice", KEY_A, from), SUCCESS, "{}", d.k.log());
    }
    println!(
        "FIGURES item 4: 9 Referer guesses + 1 valid key knock, repeated: locked out after {}",
        locked_after.map_or(format!("never ({guesses} guesses)"), |n| format!(
            "{n} guesses"
        ))
    );
    assert_eq!(locked_after, Some(10), "{}", d.k.log());
    // Locked out: alice's own key knock from that address is refused now too.
    assert_eq!(d.knock("alice", KEY_A, from), FAILURE);
}

/// Item 3: one key holder filling the replay cache with her own valid knocks used to refuse
/// every other client (`reason=replay-full`), each refusal counting toward their lockout. Now
/// she stops at her share (capacity / clients), and only she is refused, uncounted.
#[test]
fn one_client_cannot_fill_the_replay_cache_for_the_others() {
    let d = door(
        &format!("alice {KEY_A}\nmallory {KEY_M}\n"),
        &[("KNOCK_REPLAY_CACHE", "8"), ("LOCKOUT_FAILURES", "2")],
    );
    let mallory = "198.51.100.66";
    let mut ok = 0;
    for _ in 0..10 {
        if d.knock("mallory", KEY_M, mallory) == SUCCESS {
            ok += 1;
        }
    }
    let alice = (0..3)
        .filter(|i| d.knock("alice", KEY_A, &format!("198.51.100.{}", 7 + i)) == SUCCESS)
        .count();
    let log = d.k.log();
    println!(
        "FIGURES item 3: KNOCK_REPLAY_CACHE=8, 2 clients: mallory {ok}/10 knocks ok, then \
         alice {alice}/3 ok; replay-full refusals {}, lockouts {}",
        log.matches("reason=replay-full").count(),
        log.matches("lockout addr=").count()
    );
    assert_eq!(ok, 4, "mallory's share is 8 / 2\n{log}");
    assert_eq!(alice, 3, "{log}");
    assert!(log.contains(&format!("reject addr={mallory} reason=replay-share")));
    assert!(!log.contains("lockout addr="), "{log}");
    // Six refusals with LOCKOUT_FAILURES=2, and mallory is not locked out: still challenged.
    assert_ne!(d.get("c=mallory", mallory), FAILURE);
}

/// Item 3: at most GRANTS_PER_MINUTE (30) verified key knocks per label in any 60 seconds.
#[test]
fn one_key_cannot_knock_hundreds_of_times_a_minute() {
    let d = door(
        &format!("alice {KEY_A}\nmallory {KEY_M}\n"),
        &[("LOCKOUT_FAILURES", "3")],
    );
    let started = Instant::now();
    let ok = (0..40)
        .filter(|_| d.knock("mallory", KEY_M, "198.51.100.66") == SUCCESS)
        .count();
    let log = d.k.log();
    println!(
        "FIGURES item 3: 40 valid knocks of one key in {} ms: {ok} ok, {} refused reason=rate",
        started.elapsed().as_millis(),
        log.matches("reason=rate").count()
    );
    assert_eq!(ok, 30, "{log}");
    assert!(!log.contains("lockout addr="), "{log}");
    assert_eq!(d.knock("alice", KEY_A, "198.51.100.66"), SUCCESS);
}

/// Item 6: the replay cache is in memory, so with KNOCK_CHALLENGE_SECRET fixed a used `?k=`
/// URL was accepted again right after a restart (same address, within the challenge TTL).
/// Challenges issued up to the process's start are now stale.
#[test]
fn a_used_knock_is_refused_after_a_restart() {
    let mut d = door(&format!("alice {KEY_A}\n"), &[]);
    let from = "198.51.100.7";
    let c = d.get("c=alice", from);
    let q = step2("alice", KEY_A, &c, None);
    assert_eq!(d.get(&q, from), SUCCESS);
    assert_eq!(d.get(&q, from), FAILURE, "a replay");
    // The rules go, so that a success could only come from the replayed knock.
    let (code, out, err) = d.run(&["--revoke", from]);
    assert_eq!(code, 0, "{out}{err}");
    let config: Vec<(String, String)> = std::fs::read_to_string(&d.k.config)
        .expect("config")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect();
    // The same configuration and clients file, on a new port (the old process holds its own
    // until it is stopped, right after).
    let new = Knockd::start(&d.dir, &restart_config(&config));
    drop(std::mem::replace(&mut d.k, new));
    let replayed = d.get(&q, from);
    println!(
        "FIGURES item 6: a used ?k= URL sent again right after a restart: {}",
        if replayed == SUCCESS {
            "accepted"
        } else {
            "refused"
        }
    );
    assert_eq!(replayed, FAILURE, "{}", d.k.log());
    assert!(d.k.wait_log("reason=stale", Duration::from_secs(5)));
    assert!(d.rules_for(from).is_empty());
    // A fresh knock works.
    assert_eq!(d.knock("alice", KEY_A, from), SUCCESS, "{}", d.k.log());
}

/// The same configuration on another port.
fn restart_config(config: &[(String, String)]) -> Vec<(String, String)> {
    let mut c = config.to_vec();
    set(&mut c, "BIND_PORT", &free_port().to_string());
    c
}

/// Item 6: a key knock from an address holding another label's rules only refreshed them under
/// the old label, so `--revoke` of the new label found nothing. The rules are relabelled in
/// place (a description Modify per rule: no gap, no duplicate) to the last knock's label.
#[test]
fn a_knock_relabels_the_rules_it_refreshes() {
    let d = door(&format!("alice {KEY_A}\nmallory {KEY_M}\n"), &[]);
    let from = "198.51.100.7";
    assert_eq!(d.knock("alice", KEY_A, from), SUCCESS);
    assert_eq!(d.knock("mallory", KEY_M, from), SUCCESS);
    let descs: Vec<String> = d
        .rules_for(from)
        .iter()
        .map(|r| {
            r["FirewallRuleDescription"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    println!("FIGURES item 6: after alice then mallory knock from one address: {descs:?}");
    assert_eq!(descs.len(), 2, "relabelled, not duplicated: {descs:?}");
    assert!(
        descs.iter().all(|d| d.starts_with("Knockd-mallory until ")),
        "{descs:?}"
    );
    let (code, out, err) = d.run(&["--revoke", "mallory"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(d.rules_for(from).is_empty(), "{out}");
}
