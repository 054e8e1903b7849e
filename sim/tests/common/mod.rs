//! Fixtures of the simulator's tests. The simulator fixture itself (`sim`) is knockd's, shared
//! so that both packages drive the simulator the same way; this file gives it what knockd's
//! `tests/common/mod.rs` gives it there.
#![allow(dead_code)]

#[path = "../../../tests/common/capture.rs"]
pub mod capture;
#[path = "../../../tests/common/names.rs"]
pub mod names;
#[path = "../../../tests/common/sim.rs"]
pub mod sim;

pub use capture::capture;
pub use names::*;

/// Panics if `log` holds the API SecretKey or any part of a TC3 Authorization value: the
/// simulator must never log what it was sent to check.
pub fn assert_no_secrets(who: &str, log: &str) {
    for (what, needle) in [
        ("TENCENT_CLOUD_SECRET_KEY", SECRET_KEY),
        ("an Authorization value", "Signature="),
        ("an Authorization value", "TC3-HMAC-SHA256 Credential="),
    ] {
        if let Some(at) = log.find(needle) {
            let line = log[..at].lines().count();
            panic!("{who} logged {what} (log line {line})");
        }
    }
}
