//! One line per event on stderr, each with a UTC timestamp (under journald, journald's own).
//! Callers never pass secrets: the
//! config types print them as `****`, and request signatures are never formatted into events.
//!
//! While knockd serves, lines go through a bounded queue to one logging thread, so a stderr
//! that blocks (a pipe nobody reads, a stalled journal) never holds up an answer: when the
//! queue is full, lines are dropped and counted, and the count is logged once stderr moves
//! again. Before `start` (and for the CLI commands) lines are written directly.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

// 64-bit atomics through portable-atomic: the same instructions as std's where the target has
// them, a lock where it does not (32-bit MIPS).
use portable_atomic::AtomicU64;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::clock;

/// Lines queued for the logging thread at most (about 200 bytes each).
const QUEUE: usize = 4096;

enum Msg {
    Line(String),
    Flush(mpsc::Sender<()>),
}

static QUEUE_TX: OnceLock<SyncSender<Msg>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Starts the logging thread; later `event` calls queue instead of writing. Idempotent.
pub(crate) fn start() {
    if QUEUE_TX.get().is_some() {
        return;
    }
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("log".into())
        .stack_size(64 * 1024)
        .spawn(move || run(&rx));
    if spawned.is_ok() {
        let _ = QUEUE_TX.set(tx);
    }
}

fn run(rx: &Receiver<Msg>) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Line(line) => {
                let dropped = DROPPED.swap(0, Ordering::Relaxed);
                let mut err = std::io::stderr().lock();
                if dropped > 0 {
                    let _ = writeln!(
                        err,
                        "{}log-dropped lines={dropped} (stderr was not being read)",
                        stamp()
                    );
                }
                let _ = err.write_all(line.as_bytes());
            }
            Msg::Flush(ack) => {
                let _ = std::io::stderr().flush();
                let _ = ack.send(());
            }
        }
    }
}

/// Waits (at most `limit`) until every line queued so far is written: before the process exits.
pub(crate) fn flush(limit: Duration) {
    let Some(tx) = QUEUE_TX.get() else {
        return;
    };
    let until = Instant::now() + limit;
    let (ack_tx, ack_rx) = mpsc::channel();
    let mut msg = Msg::Flush(ack_tx);
    loop {
        match tx.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) if Instant::now() < until => {
                msg = m;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
    let _ = ack_rx.recv_timeout(until.saturating_duration_since(Instant::now()));
}

/// Never panics: `eprintln!` does when stderr is a closed pipe or a full disk, and with
/// panic=abort that would let any stranger's request kill the daemon. A lost log line is the
/// lesser harm. Never blocks once `start` has run.
pub(crate) fn event(line: &str) {
    let text = format!("{}{line}\n", stamp());
    let Some(tx) = QUEUE_TX.get() else {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
        return;
    };
    match tx.try_send(Msg::Line(text)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Err(TrySendError::Disconnected(Msg::Line(text))) => {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
        Err(TrySendError::Disconnected(_)) => {}
    }
}

/// The timestamp that starts a log line (`2026-11-25T13:38:12Z `), or nothing when stderr goes
/// to journald: systemd sets JOURNAL_STREAM for a service whose output it journals, and the
/// journal stamps every line itself, so a second timestamp would only crowd `journalctl`.
pub(crate) fn stamp() -> String {
    static JOURNALD: OnceLock<bool> = OnceLock::new();
    let journald =
        *JOURNALD.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some_and(|v| !v.is_empty()));
    if journald {
        String::new()
    } else {
        format!("{} ", clock::utc_rfc3339(clock::now()))
    }
}

/// One line to stderr as given, with the same never-panic rule.
pub(crate) fn stderr_line(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// An error that ends the command, printed as `knockd: …`, with the same never-panic rule.
pub(crate) fn error(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "knockd: {line}");
}

/// Something that works but the operator should know, printed as `knockd: warning: …`.
pub(crate) fn warning(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "knockd: warning: {line}");
}

/// At most `per_sec` lines a second, then a count of what was held back. Lock-free: every
/// rejected request of a flood passes through here, and the limit is approximate under races,
/// which is all a log needs.
pub(crate) struct RateLimited {
    per_sec: u32,
    second: AtomicU64,
    count: AtomicU32,
    suppressed: AtomicU64,
}

impl RateLimited {
    pub(crate) const fn new(per_sec: u32) -> RateLimited {
        RateLimited {
            per_sec,
            second: AtomicU64::new(0),
            count: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `line` is only formatted when it is going to be written.
    pub(crate) fn event(&self, line: impl FnOnce() -> String) {
        let now = clock::now() as u64;
        if self.second.swap(now, Ordering::Relaxed) != now {
            self.count.store(0, Ordering::Relaxed);
        }
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.per_sec {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        if suppressed > 0 {
            event(&format!(
                "{} (and {suppressed} similar lines suppressed)",
                line()
            ));
        } else {
            event(&line());
        }
    }
}
