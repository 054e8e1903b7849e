//! One line per event on stderr, each with a UTC timestamp. Callers never pass secrets: the
//! config types print them as `****`, and request signatures are never formatted into events.

use std::io::Write;

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
