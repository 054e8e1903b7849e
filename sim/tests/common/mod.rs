//! Fixtures of the simulator's tests. The simulator fixture itself (`sim`) is knockd's, shared
//! so that both packages drive the simulator the same way; this file gives it what knockd's
//! `tests/common/mod.rs` gives it there.
#![allow(dead_code)]

#[path = "../../../tests/common/capture.rs"]
pub mod capture;
#[path = "../../../tests/common/sim.rs"]
pub mod sim;

pub use capture::capture;

/// Fake credentials the simulator is started with; they exist nowhere else.
pub const SECRET_ID: &str = "AKIDknockdTESTtestTESTtestTEST0001";
pub const SECRET_KEY: &str = "knockdTestSecretKey0001XYZ";

/// The instance most tests simulate, and its region.
pub const REGION: &str = "ap-guangzhou";
pub const INSTANCE: &str = "lhins-kn0ck001";
/// `--instance` value for `INSTANCE` in `REGION`.
pub const INSTANCE_ARG: &str = "ap-guangzhou:lhins-kn0ck001";

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
