//! One line per event on stderr, each with a UTC timestamp. Callers never pass secrets: the
//! config types print them as `****`, and request signatures are never formatted into events.

use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::clock;

/// Never panics: `eprintln!` does when stderr is a closed pipe or a full disk, and with
/// panic=abort that would let any stranger's request kill the daemon. A lost log line is the
/// lesser harm.
pub fn event(line: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "{} {line}",
        clock::utc_rfc3339(clock::now())
    );
}

/// A start-up error, printed as `knockd: …`, with the same never-panic rule.
pub fn fatal(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "knockd: {line}");
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
