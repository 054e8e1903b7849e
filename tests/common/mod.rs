//! Shared test fixtures. Each integration test file says `mod common;` and uses what it needs.
// Each test crate uses some fixtures; `pub` is how its files reach them.
#![allow(dead_code, unreachable_pub)]

pub mod capture;
pub mod knockd;
pub mod names;
pub mod netns;
pub mod setup;
pub mod sim;

pub use names::*;
#[allow(unused_imports)] // not every test file starts knockd
pub use setup::Setup;

/// The bot token in every test's NOTIFY_URL: like a real one, it must never be logged.
pub const NOTIFY_TOKEN: &str = "bot424242:NotifyT0kenNeverLogged";

/// A NOTIFY_COMMAND whose hook writes its arguments (`ARGS=`) and environment to a file:
/// (the configured command, the file it writes).
pub fn env_hook(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let out = dir.join("env.out");
    let hook = dir.join("hook.sh");
    std::fs::write(
        &hook,
        "#!/bin/sh\n{ echo \"ARGS=$*\"; env; } > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"\n",
    )
    .expect("hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (format!("{} {}", hook.display(), out.display()), out)
}

/// What an `env_hook` wrote, once it ran (at most 15 s; `log` for the failure message).
pub fn hook_env(out: &std::path::Path, log: impl Fn() -> String) -> String {
    let t = std::time::Instant::now();
    while !out.exists() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(15),
            "the hook did not run:\n{}",
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::read_to_string(out).expect("env")
}

/// The value of `name` in a hook's environment dump.
pub fn env_var(env: &str, name: &str) -> String {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} missing:\n{env}"))
        .to_string()
}

/// A finished command's exit status and output, for assertion messages.
pub fn show(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics if `log` (everything a process of the suite wrote) contains a secret: the API
/// SecretKey, the knock secret, the notification URL's token, or any part of a per-request TC3 Authorization value.
/// The fixtures call it on drop, so every log line of the whole suite is checked.
pub fn assert_no_secrets(who: &str, log: &str) {
    for (what, needle) in [
        ("TENCENT_CLOUD_SECRET_KEY", SECRET_KEY),
        ("KNOCK_REFERER", self::knockd::REFERER),
        ("the NOTIFY_URL token", NOTIFY_TOKEN),
        ("an Authorization value", "Signature="),
        ("an Authorization value", "TC3-HMAC-SHA256 Credential="),
    ] {
        if let Some(at) = log.find(needle) {
            let line = log[..at].lines().count();
            panic!("{who} logged {what} (log line {line})");
        }
    }
    let extra = lock_secrets().clone();
    for (what, needle) in &extra {
        if let Some(at) = log.find(needle.as_str()) {
            let line = log[..at].lines().count();
            panic!("{who} logged {what} (log line {line})");
        }
    }
}

/// Secrets a test made up or learned while running (client keys, the H of a knock), checked in
/// every log like the fixed ones above.
fn lock_secrets() -> std::sync::MutexGuard<'static, Vec<(String, String)>> {
    static SECRETS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    SECRETS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Adds a secret (`what` names it in the panic message) to what no log may contain.
pub fn forbid_in_logs(what: &str, secret: &str) {
    let mut s = lock_secrets();
    if !s.iter().any(|(_, v)| v == secret) {
        s.push((what.to_string(), secret.to_string()));
    }
}

pub use capture::capture;
