//! The first hour of an operator with the real binary: a knock port it may not bind, and its
//! log lines under journald. (The configuration's cases are in tests/config.rs, `--revoke` in
//! tests/ops.rs, `--add-client` and `--knock --expect` in tests/secure_knock.rs.)

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::knockd::{base_config, free_port, temp_dir, REFERER};
use common::sim::Sim;
use common::{capture, show, INSTANCE};

/// `knockd` (serve) with `config` in its environment only (no file: nothing for another user
/// to be unable to read), plus `extra` variables.
fn serve_cmd(config: &[(String, String)], extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_knockd"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(temp_dir("first-hour"))
        .stdin(Stdio::null());
    for (k, v) in config {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `cmd` without CAP_NET_BIND_SERVICE: as it is for an ordinary user; as root, through
/// setpriv as nobody. None when that is not possible here.
fn unprivileged(cmd: &Command) -> Option<Command> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u32>()
        .ok()?;
    if uid != 0 {
        let mut c = Command::new(cmd.get_program());
        c.args(cmd.get_args());
        copy_env(cmd, &mut c);
        return Some(c);
    }
    let has_setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_setpriv {
        return None;
    }
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    copy_env(cmd, &mut c);
    Some(c)
}

fn copy_env(from: &Command, to: &mut Command) {
    to.env_clear().stdin(Stdio::null());
    for (k, v) in from.get_envs() {
        if let Some(v) = v {
            to.env(k, v);
        }
    }
}

#[test]
fn a_knock_port_below_1024_without_the_capability_exits_2_naming_it() {
    // Port 1 needs the capability unless the system lowered the unprivileged range to it.
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(1024);
    if start <= 1 {
        eprintln!("skipped: ip_unprivileged_port_start is {start}: anyone may bind port 1");
        return;
    }
    let sim = Sim::start(&["--instance", common::INSTANCE_ARG]);
    let mut config = base_config(&sim, INSTANCE, 1);
    config.retain(|(k, _)| k != "BIND_IP");
    config.push(("BIND_IP".into(), "127.0.0.1".into()));
    for (extra, says) in [
        (
            &[][..],
            "setcap cap_net_bind_service=+ep on the knockd binary",
        ),
        (
            &[("INVOCATION_ID", "0123456789abcdef")][..],
            "in knockd.service replace CapabilityBoundingSet=, AmbientCapabilities= and \
             PrivateUsers=yes by the three commented lines under them (README, \"A knock port \
             below 1024\")",
        ),
    ] {
        let Some(mut cmd) = unprivileged(&serve_cmd(&config, extra)) else {
            eprintln!("skipped: running as root without setpriv");
            return;
        };
        let out = cmd.output().expect("run knockd");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        assert!(
            stderr.contains(
                "knockd: cannot listen on 127.0.0.1:1: Permission denied (os error 13): port 1 \
                 is below 1024 and needs the capability CAP_NET_BIND_SERVICE"
            ),
            "{stderr}"
        );
        assert!(stderr.contains(says), "{stderr}");
        assert!(
            stderr.contains("Exit status 2: this cannot fix itself, so it is not retried"),
            "{stderr}"
        );
        assert!(!stderr.contains(REFERER), "{stderr}");
    }
}

/// The log lines of a serving knockd until it listens, then stopped.
fn serve_log(extra: &[(&str, &str)]) -> String {
    let sim = Sim::start(&["--instance", common::INSTANCE_ARG]);
    let config = base_config(&sim, INSTANCE, free_port());
    let mut child = serve_cmd(&config, extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn knockd");
    let log = capture(child.stderr.take().expect("stderr"));
    let t = Instant::now();
    let text = loop {
        let text = log.lock().expect("log").clone();
        if text.contains("listening on") || t.elapsed() > Duration::from_secs(10) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("listening on"),
        "knockd did not start:\n{text}"
    );
    text
}

#[test]
fn under_journald_log_lines_carry_no_timestamp_of_their_own() {
    let line = |log: &str| -> String {
        log.lines()
            .find(|l| l.contains("listening on"))
            .expect("the listening line")
            .to_string()
    };
    // JOURNAL_STREAM is what systemd sets when a service's stderr is the journal.
    let journald = line(&serve_log(&[("JOURNAL_STREAM", "8:123456")]));
    assert!(
        journald.starts_with(&format!(
            "knockd {} listening on ",
            env!("CARGO_PKG_VERSION")
        )),
        "{journald}"
    );
    // Elsewhere each line starts with its UTC time: 2026-11-25T13:38:12Z.
    let plain = line(&serve_log(&[]));
    let (stamp, rest) = plain.split_once(' ').expect("a stamped line");
    assert!(
        stamp.len() == 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{plain}"
    );
    assert!(rest.starts_with("knockd "), "{plain}");
}
