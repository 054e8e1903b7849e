//! Notifications: a webhook (`NOTIFY_URL`, `NOTIFY_BODY`, `NOTIFY_HEADERS`) and a command hook
//! (`NOTIFY_COMMAND`) on grants, failures, lockouts and, if selected, refreshes, revocations
//! and prunes.
//!
//! A notification never delays or fails a knock: [`Notifier::notify`] only tries to put the
//! event on a bounded queue (64); one notifier thread drains it, applies the rate limits
//! (the same event and address at most once per `NOTIFY_MIN_INTERVAL`, at most
//! `NOTIFY_MAX_PER_MINUTE` of each kind in any minute), sends the webhook (10 s for the whole
//! exchange) and starts the hook (at most 4 running, each killed after 10 s). What was dropped or
//! suppressed is logged in one line at most once a minute.
//!
//! The URL usually carries a bot token: it is shown only as [`redact_url`] gives it, and
//! every error text is scrubbed of it.

mod command;
mod event;
mod limit;
mod settings;
mod template;
mod webhook;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

// 64-bit atomics through portable-atomic: the same instructions as std's where the target has
// them, a lock where it does not (32-bit MIPS).
use portable_atomic::AtomicU64;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use event::{Event, EventKind, EventSet};
pub use settings::{NotifyConfig, SettingError, VARIABLES};
pub use webhook::redact_url;

use crate::log;
use crate::sync::lock;
use command::{Runner, HOOK_TIMEOUT};
use limit::{Admission, Limiter};
use webhook::Webhook;

/// Events waiting for the notifier thread; more are dropped (and counted).
pub const QUEUE: usize = 64;
const REPORT_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyError {
    /// Neither NOTIFY_URL nor NOTIFY_COMMAND is set.
    NotConfigured,
    /// Connect, TLS, timeout: already scrubbed of the URL.
    Transport(String),
    /// The receiver answered with a non-2xx status; `answer` is its escaped, scrubbed start.
    Status { code: u16, answer: String },
    /// The hook could not run.
    Command(String),
    /// The hook was skipped: this many are running already.
    Busy(usize),
    /// The notifier thread could not start.
    Thread(String),
    /// `--notify-test`: what each channel answered, at least one of them failing.
    TestFailed(String),
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyError::NotConfigured => {
                f.write_str("notifications are off: set NOTIFY_URL or NOTIFY_COMMAND")
            }
            NotifyError::Transport(e) => write!(f, "webhook not reached: {e}"),
            // The answer of a redirect is a page nobody reads; what to do about it is the news.
            NotifyError::Status { code, .. } if (300..400).contains(code) => write!(
                f,
                "webhook answered HTTP {code} (redirects are not followed: set NOTIFY_URL to the final address)"
            ),
            NotifyError::Status { code, answer } if answer.is_empty() => {
                write!(f, "webhook answered HTTP {code}")
            }
            NotifyError::Status { code, answer } => {
                write!(f, "webhook answered HTTP {code}: {answer}")
            }
            NotifyError::Command(e) => write!(f, "notify command: {e}"),
            NotifyError::Busy(n) => write!(f, "notify command skipped: {n} already running"),
            NotifyError::Thread(e) => write!(f, "cannot start the notifier thread: {e}"),
            NotifyError::TestFailed(report) => write!(f, "notification test failed: {report}"),
        }
    }
}

impl std::error::Error for NotifyError {}

/// Counters the notifier reports once a minute (and tests read).
#[derive(Default)]
struct Stats {
    queue_full: AtomicU64,
    repeats: AtomicU64,
    over_cap: AtomicU64,
    hooks_busy: AtomicU64,
    failures: AtomicU64,
    sent: AtomicU64,
    /// A drop was logged at once since the last minute's report.
    drop_logged: AtomicBool,
}

struct Inner {
    webhook: Option<Webhook>,
    runner: Option<Runner>,
    agent: ureq::Agent,
    host: String,
    stats: Stats,
    last_failure_log: Mutex<Option<Instant>>,
}

/// The notifier: cheap to call from any thread (`Notifier` is `Sync`; share it in an `Arc`).
pub struct Notifier {
    tx: Option<SyncSender<Event>>,
    events: EventSet,
    inner: Option<Arc<Inner>>,
}

impl Notifier {
    /// Notifications off: `notify` does nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            tx: None,
            events: EventSet::default(),
            inner: None,
        }
    }

    /// Starts the notifier thread. `agent` is knockd's own HTTPS agent (roots, CA file and
    /// the proxy chosen for [`NotifyConfig::webhook_host`]); each request sets its own
    /// 10-second timeout.
    pub fn start(config: NotifyConfig, agent: ureq::Agent) -> Result<Notifier, NotifyError> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let limiter = Limiter::new(config.min_interval, config.max_per_minute);
        let inner = Arc::new(Inner {
            webhook: config.webhook,
            runner: config.command.map(|argv| Runner::new(argv, HOOK_TIMEOUT)),
            agent,
            host: event::hostname(),
            stats: Stats::default(),
            last_failure_log: Mutex::new(None),
        });
        let worker = Arc::clone(&inner);
        thread::Builder::new()
            .name("notify".into())
            .spawn(move || run(&worker, rx, limiter))
            .map_err(|e| NotifyError::Thread(e.to_string()))?;
        Ok(Notifier {
            tx: Some(tx),
            events: config.events,
            inner: Some(inner),
        })
    }

    /// Whether `notify` would queue this kind: lets a caller skip building an event.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.tx.is_some() && self.events.contains(kind)
    }

    /// Queues the event if its kind is selected. Never blocks: a full queue drops it (counted).
    pub fn notify(&self, event: Event) {
        let (Some(tx), Some(inner)) = (&self.tx, &self.inner) else {
            return;
        };
        if !self.events.contains(event.kind) {
            return;
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(event) {
            inner.stats.queue_full.fetch_add(1, Ordering::Relaxed);
            // The first drop is logged at once (the notifier thread may be stuck on a slow
            // receiver for a while); the rest go into the minute's report.
            if !inner.stats.drop_logged.swap(true, Ordering::Relaxed) {
                log::event(&format!(
                    "notify dropped: queue full ({QUEUE} waiting); drops are counted in the next notify last_minute line"
                ));
            }
        }
    }

    /// `knockd --notify-test`: sends one `test` event now, on this thread, past the rate
    /// limits and the event selection, and reports what the receiver answered (status and
    /// the first 200 bytes, escaped) and how the hook ended. Err when any channel failed.
    pub fn send_test(&self) -> Result<String, NotifyError> {
        let Some(inner) = &self.inner else {
            return Err(NotifyError::NotConfigured);
        };
        let mut event = Event::new(EventKind::Test, "203.0.113.5")
            .with_label("notify-test")
            .with_result("test");
        event.host = inner.host.clone();
        let mut lines = Vec::new();
        let mut failed = false;
        if let Some(w) = &inner.webhook {
            let line = match w.send(&inner.agent, &event) {
                Ok(a) => format!("HTTP {}, answer: {}", a.status, a.snippet),
                Err(e) => {
                    failed = true;
                    e.to_string()
                }
            };
            lines.push(format!("webhook {}: {line}", w.redacted_url()));
        }
        if let Some(r) = &inner.runner {
            let line = match r.run(&event) {
                Ok(o) => {
                    failed |= !o.ok();
                    o.describe(HOOK_TIMEOUT)
                }
                Err(e) => {
                    failed = true;
                    e.to_string()
                }
            };
            lines.push(format!("command {}: {line}", r.program()));
        }
        let report = lines.join("\n");
        if failed {
            Err(NotifyError::TestFailed(report))
        } else {
            Ok(report)
        }
    }

    /// For one-shot commands (`--prune`, `--revoke`): sends the event now, on this thread, if
    /// its kind is selected (no queue and no rate limit: the process ends right after), and
    /// logs what failed.
    pub fn send_now(&self, mut event: Event) {
        let Some(inner) = &self.inner else {
            return;
        };
        if !self.events.contains(event.kind) {
            return;
        }
        if event.host.is_empty() {
            event.host = inner.host.clone();
        }
        let (kind, addr) = (event.kind, event.ip.clone());
        if let Some(w) = &inner.webhook {
            if let Err(e) = w.send(&inner.agent, &event) {
                let what = format!("url={} error=\"{e}\"", w.redacted_url());
                log::event(&format!("notify event={kind} addr={addr} {what}"));
            }
        }
        if let Some(r) = &inner.runner {
            let what = match r.run(&event) {
                Ok(o) if o.ok() => return,
                Ok(o) => o.describe(HOOK_TIMEOUT),
                Err(e) => e.to_string(),
            };
            let what = format!("command={} error=\"{what}\"", r.program());
            log::event(&format!("notify event={kind} addr={addr} {what}"));
        }
    }

    #[cfg(test)]
    fn stats(&self) -> &Stats {
        &self.inner.as_ref().expect("enabled").stats
    }
}

/// The notifier thread: until every `Notifier` (sender) is gone.
fn run(inner: &Arc<Inner>, rx: Receiver<Event>, mut limiter: Limiter) {
    let started = Instant::now();
    let mut next_report = started + REPORT_EVERY;
    let mut reported = [0u64; 5];
    loop {
        let wait = next_report.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(mut event) => {
                if event.host.is_empty() {
                    event.host = inner.host.clone();
                }
                let now = started.elapsed().as_secs();
                match limiter.check(event.kind, &event.ip, now) {
                    Admission::Send => deliver(inner, &event),
                    Admission::Repeat => {
                        inner.stats.repeats.fetch_add(1, Ordering::Relaxed);
                    }
                    Admission::OverCap => {
                        inner.stats.over_cap.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() >= next_report {
            next_report = Instant::now() + REPORT_EVERY;
            let s = &inner.stats;
            let now = [
                s.queue_full.load(Ordering::Relaxed),
                s.repeats.load(Ordering::Relaxed),
                s.over_cap.load(Ordering::Relaxed),
                s.hooks_busy.load(Ordering::Relaxed),
                s.failures.load(Ordering::Relaxed),
            ];
            if let Some(line) = report_line(&reported, &now) {
                log::event(&line);
            }
            reported = now;
            s.drop_logged.store(false, Ordering::Relaxed);
        }
    }
}

/// Sends the webhook and starts the hook.
fn deliver(inner: &Arc<Inner>, event: &Event) {
    inner.stats.sent.fetch_add(1, Ordering::Relaxed);
    let (kind, addr) = (event.kind, event.ip.clone());
    if let Some(w) = &inner.webhook {
        if let Err(e) = w.send(&inner.agent, event) {
            let what = format!("url={} error=\"{e}\"", w.redacted_url());
            log_failure(inner, kind, &addr, &what);
        }
    }
    if let Some(r) = &inner.runner {
        let worker = Arc::clone(inner);
        let program = r.program().to_string();
        let hook_addr = addr.clone();
        let started = r.start(event, move |result| {
            let what = match result {
                Ok(o) if o.ok() => return,
                Ok(o) => o.describe(HOOK_TIMEOUT),
                Err(e) => e.to_string(),
            };
            let what = format!("command={program} error=\"{what}\"");
            log_failure(&worker, kind, &hook_addr, &what);
        });
        match started {
            Ok(()) => {}
            Err(NotifyError::Busy(_)) => {
                inner.stats.hooks_busy.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let what = format!("command={} error=\"{e}\"", r.program());
                log_failure(inner, kind, &addr, &what);
            }
        }
    }
}

/// Counts a failure; logs it unless another was logged less than a minute ago (the minute's
/// report then counts it), so a dead receiver costs one line a minute.
fn log_failure(inner: &Inner, kind: EventKind, addr: &str, what: &str) {
    inner.stats.failures.fetch_add(1, Ordering::Relaxed);
    let mut last = lock(&inner.last_failure_log);
    if last.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
        *last = Some(Instant::now());
        drop(last);
        log::event(&format!("notify event={kind} addr={addr} {what}"));
    }
}

/// The minute's line, when anything was dropped, suppressed or failed since the last one.
fn report_line(before: &[u64; 5], now: &[u64; 5]) -> Option<String> {
    let d: Vec<u64> = now
        .iter()
        .zip(before)
        .map(|(n, b)| n.saturating_sub(*b))
        .collect();
    if d.iter().all(|n| *n == 0) {
        return None;
    }
    Some(format!(
        "notify last_minute dropped_queue_full={} suppressed_repeats={} suppressed_over_cap={} hooks_skipped_busy={} failures={}",
        d[0], d[1], d[2], d[3], d[4]
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::event::sample;
    use super::settings::parse_duration;
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Option<NotifyConfig>, Vec<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NotifyConfig::parse(|k| map.get(k).cloned())
            .map_err(|e| e.into_iter().map(|(v, m)| format!("{v} {m}")).collect())
    }

    fn ok(vars: &[(&str, &str)]) -> NotifyConfig {
        match config(vars) {
            Ok(Some(c)) => c,
            Ok(None) => panic!("notifications off"),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn the_notifier_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Notifier>();
        shared::<NotifyConfig>();
    }

    /// `cargo test --lib notify::tests::print_samples -- --ignored --nocapture`: one rendered
    /// notification per kind, for the documentation.
    #[test]
    #[ignore]
    fn print_samples() {
        let c = ok(&[
            ("NOTIFY_URL", "https://api.telegram.org/bot<TOKEN>/sendMessage?chat_id=<CHAT>&text=#{message}&label=#{label}"),
            ("NOTIFY_BODY", r##"{"msgtype":"text","text":{"content":"#{message}"},"event":"#{event}","ip":"#{ip}","expires":"#{expires}"}"##),
        ]);
        let w = c.webhook.as_ref().unwrap();
        for kind in event::SELECTABLE.iter().chain([EventKind::Test].iter()) {
            let e = sample(*kind);
            let p = w.prepare(&e);
            println!(
                "## {kind}\nmessage: {}\n{} {}\nbody: {}\n",
                e.message(),
                p.method,
                p.url,
                p.body.unwrap_or_default()
            );
        }
    }

    #[test]
    fn off_unless_a_url_or_a_command_is_set() {
        assert!(config(&[]).unwrap().is_none());
        assert!(config(&[("NOTIFY_URL", "  "), ("NOTIFY_EVENTS", "")])
            .unwrap()
            .is_none());
        let e = config(&[("NOTIFY_BODY", "{}"), ("NOTIFY_MIN_INTERVAL", "1m")])
            .err()
            .unwrap();
        assert_eq!(
            e,
            vec![
                "NOTIFY_BODY is set but neither NOTIFY_URL nor NOTIFY_COMMAND is",
                "NOTIFY_MIN_INTERVAL is set but neither NOTIFY_URL nor NOTIFY_COMMAND is"
            ]
        );
    }

    #[test]
    fn defaults_and_description_hide_secrets() {
        let c = ok(&[
            (
                "NOTIFY_URL",
                "https://api.day.app/DEVICEKEY1234567890/#{message}",
            ),
            ("NOTIFY_HEADERS", "Authorization: Bearer hunter2hunter2"),
        ]);
        assert_eq!(c.events, EventSet::default());
        assert_eq!((c.min_interval, c.max_per_minute), (600, 20));
        assert_eq!(c.webhook_host(), Some("api.day.app"));
        let shown = format!("{:?}", c.describe());
        assert!(shown.contains("https://api.day.app/****"), "{shown}");
        assert!(
            !shown.contains("DEVICEKEY") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("Authorization (values hidden)"), "{shown}");
        assert!(shown.contains("grant,fail,lockout"), "{shown}");
    }

    #[test]
    fn every_problem_at_once_naming_its_variable() {
        let e = config(&[
            (
                "NOTIFY_URL",
                "https://hooks.example/SECRETSECRETSECRET/#{nope}",
            ),
            ("NOTIFY_BODY", "{\"a\":\"#{ip}\"}"),
            ("NOTIFY_HEADERS", "X-Bad\r: 1"),
            ("NOTIFY_COMMAND", "relative.sh"),
            ("NOTIFY_EVENTS", "grant,opened"),
            ("NOTIFY_MIN_INTERVAL", "10 minutes"),
            ("NOTIFY_MAX_PER_MINUTE", "0"),
        ])
        .err()
        .unwrap();
        let all = e.join("\n");
        for var in VARIABLES.iter().filter(|v| **v != "NOTIFY_BODY") {
            assert!(all.contains(var), "{var} missing from {all}");
        }
        assert!(!all.contains("SECRETSECRET"), "{all}");
        assert_eq!(e.len(), 6, "{all}");
        let e = config(&[("NOTIFY_COMMAND", "/bin/sh"), ("NOTIFY_BODY", "x")])
            .err()
            .unwrap();
        assert_eq!(e, vec!["NOTIFY_BODY is set but NOTIFY_URL is not"]);
    }

    #[test]
    fn durations() {
        for (text, want) in [
            ("0", Ok(0)),
            ("90", Ok(90)),
            ("10m", Ok(600)),
            ("2H", Ok(7200)),
            ("7d", Ok(604_800)),
        ] {
            assert_eq!(parse_duration(text), want, "{text}");
        }
        for text in ["", "m", "-1", "8d", "1w", "1.5h"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn report_lines_only_when_something_happened() {
        assert_eq!(report_line(&[1, 2, 3, 4, 5], &[1, 2, 3, 4, 5]), None);
        assert_eq!(
            report_line(&[1, 0, 0, 0, 0], &[13, 30, 5, 2, 1]).unwrap(),
            "notify last_minute dropped_queue_full=12 suppressed_repeats=30 suppressed_over_cap=5 hooks_skipped_busy=2 failures=1"
        );
    }

    #[test]
    fn errors_display_without_the_url() {
        let cases = [
            (
                NotifyError::NotConfigured,
                "notifications are off: set NOTIFY_URL or NOTIFY_COMMAND",
            ),
            (
                NotifyError::Status {
                    code: 404,
                    answer: String::new(),
                },
                "webhook answered HTTP 404",
            ),
            (
                NotifyError::Status {
                    code: 400,
                    answer: "bad".into(),
                },
                "webhook answered HTTP 400: bad",
            ),
            (
                NotifyError::Status {
                    code: 302,
                    answer: "<html>moved</html>".into(),
                },
                "webhook answered HTTP 302 (redirects are not followed: set NOTIFY_URL to the final address)",
            ),
            (
                NotifyError::Busy(4),
                "notify command skipped: 4 already running",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }

    /// One HTTP/1.1 request as received: head and body bytes.
    struct Request {
        head: String,
        body: Vec<u8>,
    }

    /// A receiver on 127.0.0.1 that answers `status` to every request (keep-alive) and
    /// hands each request to the test; `silent` accepts and never answers.
    fn receiver(status: u16, silent: bool) -> (u16, mpsc::Receiver<Request>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let tx = tx.clone();
                thread::spawn(move || serve(conn, status, silent, tx));
            }
        });
        (port, rx)
    }

    fn serve(conn: TcpStream, status: u16, silent: bool, tx: mpsc::Sender<Request>) {
        let mut out = conn.try_clone().unwrap();
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
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let _ = tx.send(Request { head, body });
            if silent {
                thread::sleep(Duration::from_secs(60));
                return;
            }
            let answer = "{\"errcode\":0,\"errmsg\":\"ok\"}\n";
            let _ = write!(
                out,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            );
        }
    }

    fn agent() -> ureq::Agent {
        ureq::AgentBuilder::new().redirects(0).build()
    }

    fn start(vars: &[(&str, &str)]) -> Notifier {
        Notifier::start(ok(vars), agent()).unwrap()
    }

    const HOSTILE: &str = "ph\"one\\ $(x) é";

    #[test]
    fn a_grant_arrives_as_a_byte_exact_json_post() {
        let (port, rx) = receiver(200, false);
        let url = format!("http://127.0.0.1:{port}/cgi-bin/webhook/send?key=0123456789abcdef0123");
        let body = r##"{"msgtype":"text","text":{"content":"#{message}"},"ip":"#{ip}","label":"#{label}","event":"#{event}"}"##;
        let n = start(&[
            ("NOTIFY_URL", &url),
            ("NOTIFY_BODY", body),
            ("NOTIFY_HEADERS", "X-Token: abc"),
        ]);
        let event = sample(EventKind::Grant).with_label(HOSTILE);
        n.notify(event.clone());
        let req = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            req.head
                .starts_with("POST /cgi-bin/webhook/send?key=0123456789abcdef0123 HTTP/1.1\r\n"),
            "{}",
            req.head
        );
        let head = req.head.to_ascii_lowercase();
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nx-token: abc\r\n"), "{head}");
        let expected = r##"{"msgtype":"text","text":{"content":"knockd: opened TCP 22,443; UDP 53 for 203.0.113.5 (ph\"one\\ $(x) é) until 2026-12-25 13:38Z"},"ip":"203.0.113.5","label":"ph\"one\\ $(x) é","event":"grant"}"##;
        assert_eq!(String::from_utf8(req.body.clone()).unwrap(), expected);
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(v["label"], HOSTILE);
        assert_eq!(v["text"]["content"], event.message().as_str());
    }

    #[test]
    fn a_get_carries_url_encoded_values() {
        let (port, rx) = receiver(200, false);
        let url = format!("http://127.0.0.1:{port}/bot42:TOKENTOKENTOKENTOKEN/sendMessage?chat_id=-100&text=#{{message}}&l=#{{label}}&e=#{{expires}}");
        let n = start(&[("NOTIFY_URL", &url), ("NOTIFY_EVENTS", "fail")]);
        n.notify(sample(EventKind::Grant)); // not selected
        n.notify(sample(EventKind::Fail).with_label(HOSTILE));
        let req = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let line = req.head.lines().next().unwrap();
        assert_eq!(
            line,
            "GET /bot42:TOKENTOKENTOKENTOKEN/sendMessage?chat_id=-100&text=knockd%3A%20knock%20from%20203.0.113.5%20%28ph%22one%5C%20%24%28x%29%20%C3%A9%29%20failed%3A%20wrong%20secret&l=ph%22one%5C%20%24%28x%29%20%C3%A9&e= HTTP/1.1"
        );
        assert!(req.body.is_empty());
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "the unselected grant was sent"
        );
    }

    #[test]
    fn send_test_reports_status_and_answer() {
        let (port, rx) = receiver(200, false);
        let url = format!("http://127.0.0.1:{port}/hook/TOKENTOKENTOKENTOKEN?e=#{{event}}");
        let n = start(&[("NOTIFY_URL", &url), ("NOTIFY_BODY", "#{message}")]);
        let report = n.send_test().unwrap();
        assert_eq!(
            report,
            format!("webhook http://127.0.0.1:{port}/****: HTTP 200, answer: {{\"errcode\":0,\"errmsg\":\"ok\"}}")
        );
        let req = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            req.head
                .starts_with("POST /hook/TOKENTOKENTOKENTOKEN?e=test "),
            "{}",
            req.head
        );
        assert!(String::from_utf8(req.body)
            .unwrap()
            .starts_with("knockd: test notification from "));
        assert!(req
            .head
            .to_ascii_lowercase()
            .contains("content-type: text/plain; charset=utf-8"));

        let (port, _rx) = receiver(403, false);
        let url = format!("http://127.0.0.1:{port}/hook/TOKENTOKENTOKENTOKEN");
        let e = start(&[("NOTIFY_URL", &url)])
            .send_test()
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhook answered HTTP 403: {\"errcode\""), "{e}");
        // A redirect is a failure: nothing reached the receiver.
        for status in [301, 302, 307, 308] {
            let (port, _rx) = receiver(status, false);
            let url = format!("http://127.0.0.1:{port}/hook/TOKENTOKENTOKENTOKEN");
            let e = start(&[("NOTIFY_URL", &url)])
                .send_test()
                .unwrap_err()
                .to_string();
            assert!(
                e.ends_with(&format!("webhook answered HTTP {status} (redirects are not followed: set NOTIFY_URL to the final address)")),
                "{e}"
            );
        }
        assert!(Notifier::disabled().send_test() == Err(NotifyError::NotConfigured));
    }

    #[test]
    fn an_unreachable_receiver_error_never_shows_the_token() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url =
            format!("http://127.0.0.1:{port}/bot123456:SECRETSECRETSECRETSECRET/send?t=#{{ip}}");
        let e = start(&[("NOTIFY_URL", &url)])
            .send_test()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "webhook http://127.0.0.1:{port}/****: webhook not reached: Connection Failed"
            )),
            "{e}"
        );
        assert!(!e.contains("SECRET") && !e.contains("bot123456"), "{e}");
    }

    #[test]
    fn a_receiver_that_never_answers_does_not_slow_the_caller() {
        let (port, rx) = receiver(200, true);
        let url = format!("http://127.0.0.1:{port}/x");
        let n = start(&[("NOTIFY_URL", &url), ("NOTIFY_MIN_INTERVAL", "0")]);
        n.notify(sample(EventKind::Fail));
        rx.recv_timeout(Duration::from_secs(5)).unwrap(); // the thread is now stuck on it
        let t = Instant::now();
        for i in 0..1000 {
            n.notify(Event::new(EventKind::Fail, format!("192.0.2.{}", i % 250)));
        }
        let took = t.elapsed();
        assert!(took < Duration::from_millis(200), "{took:?}");
        let dropped = n.stats().queue_full.load(Ordering::Relaxed);
        assert_eq!(dropped, 1000 - QUEUE as u64);
    }

    #[test]
    fn the_rate_limit_holds_during_a_lockout_flood() {
        let (port, rx) = receiver(200, false);
        let url = format!("http://127.0.0.1:{port}/x?ip=#{{ip}}");
        let n = start(&[("NOTIFY_URL", &url), ("NOTIFY_MAX_PER_MINUTE", "5")]);
        // Queue-sized bursts, so that every event reaches the limiter.
        for round in 0..3 {
            for i in 0..QUEUE / 2 {
                n.notify(Event::new(
                    EventKind::Lockout,
                    format!("198.51.100.{}", i % 8),
                ));
            }
            let t = Instant::now();
            while n.stats().repeats.load(Ordering::Relaxed)
                + n.stats().over_cap.load(Ordering::Relaxed)
                + n.stats().sent.load(Ordering::Relaxed)
                < ((round + 1) * QUEUE / 2) as u64
            {
                assert!(t.elapsed() < Duration::from_secs(10), "stuck");
                thread::sleep(Duration::from_millis(5));
            }
        }
        let mut got = Vec::new();
        while let Ok(r) = rx.recv_timeout(Duration::from_millis(300)) {
            got.push(r.head.lines().next().unwrap().to_string());
        }
        assert_eq!(got.len(), 5, "{got:?}");
        let s = n.stats();
        assert_eq!(s.sent.load(Ordering::Relaxed), 5);
        // 8 distinct addresses: 3 of them were capped; everything else was a repeat.
        assert_eq!(
            s.over_cap.load(Ordering::Relaxed) + s.repeats.load(Ordering::Relaxed),
            3 * 32 - 5
        );
        assert!(s.over_cap.load(Ordering::Relaxed) >= 3);
    }

    #[test]
    fn the_command_hook_runs_from_the_notifier() {
        let dir = command::tests::temp_dir("notifier");
        let out = dir.join("env.out");
        let hook = command::tests::script(&dir, "env > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"");
        let n = start(&[
            ("NOTIFY_COMMAND", &format!("{hook} {}", out.display())),
            ("NOTIFY_EVENTS", "lockout"),
        ]);
        n.notify(sample(EventKind::Lockout));
        let t = Instant::now();
        while !out.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the hook did not run"
            );
            thread::sleep(Duration::from_millis(10));
        }
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(env.lines().any(|l| l == "KNOCKD_EVENT=lockout"), "{env}");
        assert!(env.lines().any(|l| l == "KNOCKD_IP=198.51.100.7"), "{env}");
        assert!(env.lines().any(|l| l == "KNOCKD_COUNT=10"), "{env}");
        let report = n.send_test().unwrap();
        assert_eq!(report, format!("command {hook}: exit status 0"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
