//! The commands' output on stdout, which a closed pipe (`knockd --list | head -1`) must not
//! turn into a panic.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout failed (a closed pipe: `knockd --list | head -1`): later output
/// is skipped, and the command finishes with its own exit status, as ripgrep does.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Prints one line to stdout. Never panics (`println!` does on a closed pipe, and the release
/// build aborts on panic).
pub fn print(line: &str) {
    say(format_args!("{line}"));
}

#[doc(hidden)]
pub fn say(args: std::fmt::Arguments) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{args}").and_then(|()| out.flush()).is_err() {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
}

/// `println!` for the commands, through `say`.
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::stdout::say(format_args!($($t)*))
    };
}
