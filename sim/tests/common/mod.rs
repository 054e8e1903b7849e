//! Fixtures of the simulator's tests. The simulator fixture itself (`sim`) is knockd's, shared
//! so that both packages drive the simulator the same way; this file gives it what knockd's
//! `tests/common/mod.rs` gives it there.
#![allow(dead_code)]

#[path = "../../../tests/common/sim.rs"]
pub mod sim;

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

/// Collects a child's stderr as it comes, so a chatty process never blocks on a full pipe and
/// every line can be checked afterwards.
pub fn capture(
    mut stderr: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<String>> {
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("log lock")
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    log
}
