//! One line per event on stderr, each with a UTC timestamp. Callers never pass secrets: the
//! config types print them as `****`, and request signatures are never formatted into events.

use crate::clock;

pub fn event(line: &str) {
    eprintln!("{} {line}", clock::utc_rfc3339(clock::now()));
}
