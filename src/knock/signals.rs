//! Signals as flags that threads poll: SIGTERM and SIGINT ask for a graceful stop, SIGHUP is
//! counted (it no longer kills the process) for whoever wants to reload something. No unsafe
//! code here: `signal_hook::flag` installs handlers that only store to an atomic.
//!
//! A second SIGTERM or SIGINT while a stop is already under way exits at once (status 1), so an
//! operator is never stuck behind a knock that waits on a slow firewall.

use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;

static STOP: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);

/// Installs the handlers. Safe to call more than once (handlers are then registered again,
/// which changes nothing but costs a little).
pub fn install() -> std::io::Result<()> {
    for sig in [SIGTERM, SIGINT] {
        // Order matters: the shutdown check runs before the flag is set, so only a second
        // signal finds the flag already true.
        flag::register_conditional_shutdown(sig, 1, &STOP)?;
        flag::register(sig, &STOP)?;
    }
    flag::register(SIGHUP, &HUP)?;
    Ok(())
}

/// Whether SIGTERM or SIGINT arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Asks for a stop as a signal would (tests, and callers that stop for their own reasons).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether a SIGHUP arrived since the last call that returned true. Several SIGHUPs between
/// two calls read as one: a reload reads the newest state anyway.
pub fn take_hup() -> bool {
    HUP.swap(false, Ordering::SeqCst)
}
