//! Notifications end to end: the real knockd and lighthouse-sim on loopback, real curl knocks,
//! and a receiver thread in the test standing in for a WeCom / DingTalk / Telegram endpoint.
//! Every NOTIFY_URL carries `NOTIFY_TOKEN`; the fixtures fail the test if any log shows it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::knockd::*;
use common::sim::Sim;
use common::Setup;
use common::{assert_no_secrets, show, NOTIFY_TOKEN};
use serde_json::{json, Value};

const A: &str = "lhins-kn0ck001";

/// One request as the receiver got it.
#[derive(Debug)]
struct Request {
    line: String,
    head: String,
    body: String,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A receiver on 127.0.0.1: answers 200 with a WeCom-like JSON to every request, or (`silent`)
/// reads the request and never answers.
struct Receiver {
    port: u16,
    rx: mpsc::Receiver<Request>,
}

impl Receiver {
    fn start(silent: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let tx = tx.clone();
                thread::spawn(move || serve(conn, silent, &tx));
            }
        });
        Receiver { port, rx }
    }

    /// `http://127.0.0.1:PORT/<token>/<rest>`.
    fn url(&self, rest: &str) -> String {
        format!("http://127.0.0.1:{}/{NOTIFY_TOKEN}/{rest}", self.port)
    }

    fn next(&self, wait: Duration) -> Option<Request> {
        self.rx.recv_timeout(wait).ok()
    }

    fn expect(&self, what: &str) -> Request {
        self.next(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("no notification for {what}"))
    }

    /// Everything that arrives until `quiet` passes without a request.
    fn drain(&self, quiet: Duration) -> Vec<Request> {
        let mut out = Vec::new();
        while let Some(r) = self.next(quiet) {
            out.push(r);
        }
        out
    }
}

fn serve(conn: TcpStream, silent: bool, tx: &mpsc::Sender<Request>) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(conn);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let len = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            })
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let line = head.lines().next().unwrap_or("").to_string();
        let _ = tx.send(Request {
            line,
            head,
            body: String::from_utf8_lossy(&body).to_string(),
        });
        if silent {
            thread::sleep(Duration::from_secs(120));
            return;
        }
        let answer = "{\"errcode\":0,\"errmsg\":\"ok\"}";
        let _ = write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
    }
}

/// A WeCom-style JSON body with every placeholder.
const BODY: &str = r##"{"msgtype":"text","text":{"content":"#{message}"},"event":"#{event}","ip":"#{ip}","label":"#{label}","ports":"#{ports}","expires":"#{expires}","instances":"#{instances}","result":"#{result}","reason":"#{reason}","count":"#{count}","host":"#{host}","time":"#{time}"}"##;

/// A knock with a wrong secret, sent raw (no curl process: floods are cheap).
fn wrong_knock(k: &Knockd, client: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", k.port)).expect("connect knockd");
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        s,
        "GET /favico.ico HTTP/1.1\r\nHost: x\r\nReferer: wrong\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
}

/// A CLI command whose output must not show the token either.
fn cli(config: &Path, args: &[&str]) -> Output {
    let out = run(config, args);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secrets(&format!("knockd {args:?}"), &all);
    out
}

/// Prints what arrived, for the record (`--nocapture`).
fn print(what: &str, r: &Request) {
    println!("== {what}\n{}\n{}\n", r.line, r.body);
}

#[test]
fn every_event_arrives_as_valid_json_with_the_label_sanitised() {
    let dir = temp_dir("notify-all");
    // An expired rule of knockd's, for the serving sweep's prune event.
    let expired = format!(
        "Knockd-old until {}Z",
        knockd::clock::utc_minute(knockd::clock::now() - 3600)
    );
    let rules = json!([{"Protocol": "TCP", "Port": "22", "CidrBlock": "198.51.100.9",
        "Action": "ACCEPT", "FirewallRuleDescription": expired}]);
    let sim = Sim::with_rules(&rules, &[]);
    let rx = Receiver::start(false);
    let cfg = Setup::new("notify")
        .with(&[
            ("NOTIFY_URL", &rx.url("cgi-bin/webhook/send")),
            ("NOTIFY_BODY", BODY),
            ("NOTIFY_EVENTS", "all"),
            ("PRUNE_INTERVAL", "1h"),
            ("LOCKOUT_FAILURES", "2"),
        ])
        .config(&sim);
    let k = Knockd::start(&dir, &cfg);

    let prune = rx.expect("the sweep at start");
    print("prune (serving sweep)", &prune);
    let v = prune.json();
    assert_eq!(v["event"], "prune");
    assert_eq!(v["count"], "1");
    assert_eq!(v["instances"], A);
    assert_eq!(v["text"]["content"], "knockd: removed 1 expired rule");

    // The label arrives as knockd stores it (sanitised), inside valid JSON.
    let hostile = r#"ph"one\ $(x)"#;
    assert_eq!(knock_curl(&k, "203.0.113.7", hostile), SUCCESS);
    let grant = rx.expect("the grant");
    print("grant", &grant);
    assert!(
        grant.line.starts_with(&format!(
            "POST /{NOTIFY_TOKEN}/cgi-bin/webhook/send HTTP/1.1"
        )),
        "{}",
        grant.line
    );
    assert!(grant
        .head
        .to_ascii_lowercase()
        .contains("\r\ncontent-type: application/json\r\n"));
    let v = grant.json();
    assert_eq!(v["event"], "grant");
    assert_eq!(v["ip"], "203.0.113.7");
    assert_eq!(v["label"], "ph_one____x_");
    assert_eq!(v["ports"], "TCP 22,443; UDP 51820");
    assert_eq!(v["instances"], A);
    assert_eq!(v["result"], "ok");
    let content = v["text"]["content"].as_str().expect("content");
    assert!(
        content.starts_with(
            "knockd: opened TCP 22,443; UDP 51820 for 203.0.113.7 (ph_one____x_) until "
        ),
        "{content}"
    );
    assert!(content.ends_with('Z'), "{content}");

    // The same address again: its rules exist, so this is a refresh.
    assert_eq!(knock_curl(&k, "203.0.113.7", "phone"), SUCCESS);
    let refresh = rx.expect("the refresh");
    print("refresh", &refresh);
    assert_eq!(refresh.json()["event"], "refresh");

    // Wrong secrets: two failures (the second one suppressed as a repeat), then the lockout.
    wrong_knock(&k, "198.51.100.20");
    let fail = rx.expect("the failure");
    print("fail", &fail);
    let v = fail.json();
    assert_eq!(
        (v["event"].as_str(), v["ip"].as_str()),
        (Some("fail"), Some("198.51.100.20"))
    );
    assert_eq!(v["reason"], "wrong secret");
    wrong_knock(&k, "198.51.100.20");
    let lockout = rx.expect("the lockout");
    print("lockout", &lockout);
    let v = lockout.json();
    assert_eq!(v["event"], "lockout");
    assert_eq!(v["count"], "2");
    assert!(v["text"]["content"]
        .as_str()
        .expect("content")
        .starts_with("knockd: locked out 198.51.100.20 after 2 failed knocks, until "));

    // A one-shot command on the same configuration.
    let out = cli(&k.config, &["--revoke", "203.0.113.7"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let revoke = rx.expect("the revoke");
    print("revoke", &revoke);
    let v = revoke.json();
    assert_eq!(v["event"], "revoke");
    assert_eq!(v["ip"], "203.0.113.7");
    assert_eq!(v["count"], "2");

    // Nothing else was sent: the repeated failure was suppressed.
    let rest = rx.drain(Duration::from_millis(500));
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        k.log().contains("notify on url=\"http://127.0.0.1:"),
        "{}",
        k.log()
    );
}

#[test]
fn prune_from_the_command_line_notifies_once() {
    let dir = temp_dir("notify-prune");
    let now = knockd::clock::now();
    let desc = |l: &str| format!("Knockd-{l} until {}Z", knockd::clock::utc_minute(now - 600));
    let rules = json!([
        {"Protocol": "TCP", "Port": "22", "CidrBlock": "198.51.100.1", "Action": "ACCEPT",
         "FirewallRuleDescription": desc("a")},
        {"Protocol": "TCP", "Port": "22", "CidrBlock": "198.51.100.2", "Action": "ACCEPT",
         "FirewallRuleDescription": desc("b")},
    ]);
    let sim = Sim::with_rules(&rules, &[]);
    let rx = Receiver::start(false);
    let cfg = Setup::new("notify")
        .with(&[
            ("NOTIFY_URL", &rx.url("send?text=#{message}")),
            ("NOTIFY_EVENTS", "prune"),
        ])
        .config(&sim);
    let path = write_config(&dir, &cfg);
    let out = cli(&path, &["--prune", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        rx.next(Duration::from_millis(300)).is_none(),
        "a dry run notified"
    );
    let out = cli(&path, &["--prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = rx.expect("the prune");
    print("prune (--prune)", &r);
    assert_eq!(
        r.line,
        format!("GET /{NOTIFY_TOKEN}/send?text=knockd%3A%20removed%202%20expired%20rules%3A%20knockd%20--prune HTTP/1.1")
    );
}

#[test]
fn a_get_carries_url_encoded_values() {
    let sim = Sim::single();
    let rx = Receiver::start(false);
    let cfg = Setup::new("notify")
        .with(&[(
            "NOTIFY_URL",
            &rx.url("sendMessage?chat_id=-100&text=#{message}&ip=#{ip}&ports=#{ports}"),
        )])
        .config(&sim);
    let k = Knockd::start(&temp_dir("notify-get"), &cfg);
    assert_eq!(knock_curl(&k, "2001:db8::7", "my phone"), SUCCESS);
    let r = rx.expect("the grant");
    print("grant (GET)", &r);
    assert!(r.body.is_empty());
    let prefix = format!(
        "GET /{NOTIFY_TOKEN}/sendMessage?chat_id=-100&text=knockd%3A%20opened%20TCP%2022%2C443%3B%20UDP%2051820%20for%202001%3Adb8%3A%3A7%20%28my_phone%29%20until%20"
    );
    assert!(r.line.starts_with(&prefix), "{}", r.line);
    assert!(
        r.line
            .ends_with("Z&ip=2001%3Adb8%3A%3A7&ports=TCP%2022%2C443%3B%20UDP%2051820 HTTP/1.1"),
        "{}",
        r.line
    );
    // Nothing in the request line is left unencoded.
    let target = r.line.split(' ').nth(1).expect("target");
    assert!(!target.contains(['(', ')', ' ', ';']), "{target}");
}

#[test]
fn the_command_hook_sees_the_variables_and_no_shell() {
    let sim = Sim::single();
    let dir = temp_dir("notify-hook");
    let marker = dir.join("pwned");
    let (command, out) = common::env_hook(&dir);
    let cfg = Setup::new("notify")
        .with(&[("NOTIFY_COMMAND", &command)])
        .config(&sim);
    let k = Knockd::start(&dir, &cfg);
    let hostile = format!("$(touch {}) `id` ; rm -rf x", marker.display());
    assert_eq!(knock_curl(&k, "203.0.113.9", &hostile), SUCCESS);
    let env = common::hook_env(&out, || k.log());
    println!("== command hook environment (KNOCKD_*)");
    for l in env
        .lines()
        .filter(|l| l.starts_with("KNOCKD_") || l.starts_with("ARGS="))
    {
        println!("{l}");
    }
    let var = |name: &str| common::env_var(&env, name);
    assert_eq!(var("KNOCKD_EVENT"), "grant");
    assert_eq!(var("KNOCKD_IP"), "203.0.113.9");
    assert_eq!(var("KNOCKD_PORTS"), "TCP 22,443; UDP 51820");
    assert_eq!(var("KNOCKD_INSTANCES"), A);
    assert_eq!(var("KNOCKD_RESULT"), "ok");
    assert_eq!(var("KNOCKD_REASON"), "");
    assert!(var("KNOCKD_EXPIRES").ends_with('Z'));
    let label = var("KNOCKD_LABEL");
    assert!(label.contains("touch"), "{label}");
    assert!(!label.contains(['$', '`', ';', ' ']), "{label}");
    // Values only in the environment: the arguments are the configured ones.
    assert_eq!(var("ARGS"), out.display().to_string());
    thread::sleep(Duration::from_millis(200));
    assert!(!marker.exists(), "the label was run by a shell");
}

/// Median knock latency over `n` knocks from fresh addresses.
fn knock_latency(k: &Knockd, n: usize, net: u8) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            assert_eq!(
                knock_curl(k, &format!("192.0.{net}.{}", i + 1), "lat"),
                SUCCESS
            );
            t.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

#[test]
fn a_receiver_that_never_answers_does_not_slow_knocks() {
    // Baseline: notifications off.
    let sim = Sim::single();
    let k = Knockd::start(&temp_dir("notify-base"), &Setup::new("notify").config(&sim));
    let base = knock_latency(&k, 7, 2);
    drop(k);

    let sim = Sim::single();
    let rx = Receiver::start(true);
    let cfg = Setup::new("notify")
        .with(&[
            ("NOTIFY_URL", &rx.url("hook")),
            ("NOTIFY_BODY", "#{message}"),
            ("NOTIFY_MIN_INTERVAL", "0"),
        ])
        .config(&sim);
    let k = Knockd::start(&temp_dir("notify-silent"), &cfg);
    // The first event sticks the notifier thread on the silent receiver...
    wrong_knock(&k, "198.51.100.1");
    rx.expect("the first failure");
    // ...so these fill the queue (64) and the rest are dropped.
    let t = Instant::now();
    for i in 0..80 {
        wrong_knock(&k, &format!("198.51.{}.{}", 101 + i / 200, 2 + i % 200));
    }
    let flood = t.elapsed();
    assert!(
        k.wait_log("notify dropped: queue full", Duration::from_secs(5)),
        "{}",
        k.log()
    );
    let slow = knock_latency(&k, 7, 3);
    println!("median knock: {base:?} without notifications, {slow:?} with a silent receiver and a full queue; 80 failed knocks in {flood:?}");
    // Generous (the machine is shared): a knock that waited on the stuck notification would
    // take the webhook's 10 s timeout.
    assert!(
        slow < base * 3 + Duration::from_secs(2),
        "knocks slowed from {base:?} to {slow:?}"
    );
    assert!(flood < Duration::from_secs(8), "{flood:?}");
}

#[test]
fn the_rate_limit_holds_during_a_lockout_flood() {
    let sim = Sim::single();
    let rx = Receiver::start(false);
    let cfg = Setup::new("notify")
        .with(&[
            ("NOTIFY_URL", &rx.url("hook?ip=#{ip}")),
            ("NOTIFY_EVENTS", "lockout"),
            ("NOTIFY_MAX_PER_MINUTE", "3"),
            ("LOCKOUT_FAILURES", "2"),
        ])
        .config(&sim);
    let k = Knockd::start(&temp_dir("notify-flood"), &cfg);
    // 25 addresses locked out (50 failed knocks), then knocking on while locked out.
    for _ in 0..3 {
        for i in 0..25 {
            wrong_knock(&k, &format!("198.51.100.{}", 10 + i));
        }
    }
    assert!(k.wait_log(" lockout addr=", Duration::from_secs(5)));
    let got = rx.drain(Duration::from_secs(2));
    let lines: Vec<&str> = got.iter().map(|r| r.line.as_str()).collect();
    assert_eq!(got.len(), 3, "{lines:?}");
    // The lockout log lines have their own rate limit (5 a second), so not all 25 show.
    let logged = k.log().matches(" lockout addr=").count();
    assert!((1..=25).contains(&logged), "{}", k.log());
}

/// Failures cannot drown an alarm: 25 wrong knocks from 25 addresses spend the failures'
/// budget of a minute (NOTIFY_MAX_PER_MINUTE, default 20), and the grant that follows (someone
/// holding the secret) still arrives, as does the lockout after it.
#[test]
fn a_grant_after_a_flood_of_failures_is_still_notified() {
    let sim = Sim::single();
    let rx = Receiver::start(false);
    let cfg = Setup::new("notify-drown")
        .with(&[
            ("NOTIFY_URL", &rx.url("send")),
            ("NOTIFY_BODY", BODY),
            ("LOCKOUT_FAILURES", "2"),
        ])
        .config(&sim);
    let k = Knockd::start(&temp_dir("notify-drown"), &cfg);
    for i in 0..25 {
        wrong_knock(&k, &format!("198.51.100.{}", 10 + i));
    }
    let mut got = Vec::new();
    // The 20 failures that fit the budget arrive first.
    while got.len() < 20 {
        let Some(r) = rx.next(Duration::from_secs(15)) else {
            break;
        };
        got.push(r);
    }
    assert_eq!(got.len(), 20, "{got:?}");
    assert_eq!(knock_curl(&k, "203.0.113.21", "stolen"), SUCCESS);
    wrong_knock(&k, "198.51.100.10"); // its second failure: a lockout
    got.extend(rx.drain(Duration::from_secs(3)));
    let events: Vec<String> = got
        .iter()
        .map(|r| format!("{} {}", r.json()["event"], r.json()["ip"]))
        .collect();
    let count = |e: &str| events.iter().filter(|l| l.starts_with(e)).count();
    println!(
        "delivered: {} fail, {} grant, {} lockout",
        count("\"fail\""),
        count("\"grant\""),
        count("\"lockout\"")
    );
    assert_eq!(count("\"fail\""), 20, "{events:?}");
    assert!(
        events.contains(&"\"grant\" \"203.0.113.21\"".to_string()),
        "the grant was not notified: {events:?}"
    );
    assert!(
        events.contains(&"\"lockout\" \"198.51.100.10\"".to_string()),
        "the lockout was not notified: {events:?}"
    );
}

#[test]
fn failures_are_logged_without_the_token_and_check_config_masks_it() {
    let sim = Sim::single();
    let closed = free_port();
    let url = format!("http://127.0.0.1:{closed}/{NOTIFY_TOKEN}/send?text=#{{message}}");
    let cfg = Setup::new("notify")
        .with(&[
            ("NOTIFY_URL", &url),
            ("NOTIFY_HEADERS", "X-Api-Key: HeaderSecretHeaderSecret"),
        ])
        .config(&sim);
    let dir = temp_dir("notify-closed");
    let k = Knockd::start(&dir, &cfg);
    assert_eq!(knock_curl(&k, "203.0.113.11", "phone"), SUCCESS);
    assert!(
        k.wait_log(
            "notify event=grant addr=203.0.113.11",
            Duration::from_secs(15)
        ),
        "{}",
        k.log()
    );
    let log = k.log();
    let line = log
        .lines()
        .find(|l| l.contains("notify event=grant"))
        .expect("failure line");
    println!("== logged failure\n{line}");
    assert!(
        line.contains(&format!("url=http://127.0.0.1:{closed}/****")),
        "{line}"
    );
    assert!(!log.contains("HeaderSecret"), "{log}");

    let out = cli(&k.config, &["--check-config"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text.contains(&format!("NOTIFY_URL = http://127.0.0.1:{closed}/****\n")),
        "{text}"
    );
    assert!(
        text.contains("NOTIFY_HEADERS = X-Api-Key (values hidden)\n"),
        "{text}"
    );
    assert!(
        text.contains("NOTIFY_EVENTS = grant,fail,lockout\n"),
        "{text}"
    );
    assert!(!text.contains("HeaderSecret"), "{text}");
}

#[test]
fn notify_test_exits_0_on_an_answer_and_1_on_a_closed_port() {
    let sim = Sim::single();
    let dir = temp_dir("notify-test");
    let rx = Receiver::start(false);
    let cfg = Setup::new("notify")
        .with(&[("NOTIFY_URL", &rx.url("send")), ("NOTIFY_BODY", BODY)])
        .config(&sim);
    let path = write_config(&dir, &cfg);
    let out = cli(&path, &["--notify-test"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(&format!(
            "webhook http://127.0.0.1:{}/****: HTTP 200",
            rx.port
        )),
        "{text}"
    );
    // The receiver's answer as it came: quotes are not escaped.
    assert!(
        text.contains(": HTTP 200, answer: {\"errcode\":0,\"errmsg\":\"ok\"}"),
        "{text}"
    );
    let r = rx.expect("the test event");
    print("test (--notify-test)", &r);
    assert_eq!(r.json()["event"], "test");

    let closed = free_port();
    let mut cfg = cfg;
    set(
        &mut cfg,
        "NOTIFY_URL",
        &format!("http://127.0.0.1:{closed}/{NOTIFY_TOKEN}/send"),
    );
    let path = write_config(&dir, &cfg);
    let out = cli(&path, &["--notify-test"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("webhook not reached"), "{}", show(&out));

    // Off: a configuration problem.
    cfg.retain(|(k, _)| !k.starts_with("NOTIFY_"));
    let path = write_config(&dir, &cfg);
    let out = cli(&path, &["--notify-test"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

/// A receiver that answers every request with a redirect, as a webhook moved elsewhere does.
fn redirector() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind redirector");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let Ok(mut out) = conn.try_clone() else {
                return;
            };
            let mut r = BufReader::new(conn);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                out,
                "HTTP/1.1 302 Found\r\nLocation: https://moved.example/{NOTIFY_TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    port
}

/// A 3xx is not a delivery: redirects are not followed, so nothing reached the receiver.
#[test]
fn notify_test_fails_on_a_redirect() {
    let sim = Sim::single();
    let dir = temp_dir("notify-302");
    let port = redirector();
    let url = format!("http://127.0.0.1:{port}/{NOTIFY_TOKEN}/send");
    let path = write_config(
        &dir,
        &Setup::new("notify-redirect")
            .set("NOTIFY_URL", &url)
            .config(&sim),
    );
    let out = cli(&path, &["--notify-test"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{}", show(&out));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text.contains("webhook answered HTTP 302 (redirects are not followed: set NOTIFY_URL to the final address)"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_knock_the_firewall_refuses_notifies_a_failure() {
    let sim = Sim::start(&[
        "--instance",
        "ap-guangzhou:lhins-kn0ck001",
        "--fail-rate",
        "1",
        "--fail-code",
        "ResourceNotFound.InstanceIdNotFound",
    ]);
    let rx = Receiver::start(false);
    let cfg = Setup::new("notify")
        .with(&[("NOTIFY_URL", &rx.url("send")), ("NOTIFY_BODY", BODY)])
        .config(&sim);
    let k = Knockd::start(&temp_dir("notify-apifail"), &cfg);
    assert_eq!(knock_curl(&k, "203.0.113.12", "laptop"), FAILURE);
    let r = rx.expect("the failure");
    print("fail (API error)", &r);
    let v = r.json();
    assert_eq!(v["event"], "fail");
    assert_eq!(v["result"], "failed");
    assert_eq!(v["label"], "laptop");
    let reason = v["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("firewall not confirmed: lhins-kn0ck001=error(")
            && reason.contains("ResourceNotFound.InstanceIdNotFound"),
        "{reason}"
    );
}

/// Every ready line of the README (both sections) is a valid configuration: NOTIFY_URL with
/// the NOTIFY_BODY that follows it, checked by `knockd --check-config`.
#[test]
fn the_readme_ready_lines_pass_check_config() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let value = |l: &str| {
        l.split_once('=')
            .map(|(_, v)| v.trim().trim_matches('\'').to_string())
            .expect("KEY='value'")
    };
    let mut channels: Vec<(String, Option<String>)> = Vec::new();
    for line in readme.lines() {
        if line.starts_with("NOTIFY_URL='") {
            channels.push((value(line), None));
        } else if line.starts_with("NOTIFY_BODY='") {
            channels.last_mut().expect("a body after a URL").1 = Some(value(line));
        }
    }
    assert_eq!(channels.len(), 14, "7 channels in English and Chinese");
    let sim = Sim::single();
    let dir = temp_dir("notify-readme");
    for (url, body) in &channels {
        let mut cfg = Setup::new("notify")
            .with(&[("NOTIFY_URL", url)])
            .config(&sim);
        if let Some(b) = body {
            set(&mut cfg, "NOTIFY_BODY", b);
        }
        let path = write_config(&dir, &cfg);
        let out = run(&path, &["--check-config"]);
        assert_eq!(out.status.code(), Some(0), "{url}\n{}", show(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("/****\n"), "{text}");
        let rest = &url[url[8..].find('/').expect("a path") + 8..];
        assert!(!text.contains(rest), "{text}");
    }
}

/// A knock's label is sanitised before it reaches a notification, but a rule edited in the
/// console can carry any label: `--revoke` by that label sends it, JSON-escaped.
#[test]
fn a_label_with_a_quote_and_a_backslash_stays_valid_json() {
    let dir = temp_dir("notify-quote");
    let label = r#"ph"one\ é"#;
    let until = knockd::clock::utc_minute(knockd::clock::now() + 86_400);
    let rules = json!([
        {"Protocol": "TCP", "Port": "22,443", "CidrBlock": "198.51.100.77", "Action": "ACCEPT",
         "FirewallRuleDescription": format!("Knockd-{label} until {until}Z")},
    ]);
    let sim = Sim::with_rules(&rules, &[]);
    let rx = Receiver::start(false);
    let cfg = Setup::new("notify")
        .with(&[
            ("NOTIFY_URL", &rx.url("send")),
            ("NOTIFY_BODY", BODY),
            ("NOTIFY_EVENTS", "revoke"),
        ])
        .config(&sim);
    let path = write_config(&dir, &cfg);
    let out = cli(&path, &["--revoke", label]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = rx.expect("the revoke");
    print("revoke (console-edited label)", &r);
    assert!(r.body.contains(r#""label":"ph\"one\\ é""#), "{}", r.body);
    let v = r.json();
    assert_eq!(v["label"], label);
    assert_eq!(
        v["text"]["content"],
        format!("knockd: revoked TCP 22,443 for 198.51.100.77 ({label}): knockd --revoke")
    );
}
