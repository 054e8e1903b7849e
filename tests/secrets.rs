//! Secrets never reach a log. Every fixture already checks its captured log on drop (see
//! `common::assert_no_secrets`); this test provokes as much logging as it can (injected API
//! errors and retries, clock-skew correction, dropped connections, bad and good knocks, every
//! operator command, configuration errors) and greps all of it explicitly.

mod common;

use common::knockd::*;
use common::{assert_no_secrets, Setup, SECRET_KEY};

#[test]
fn no_log_line_of_knockd_or_the_simulator_holds_a_secret() {
    let setup = Setup::new("secrets")
        .sim_args(&[
            "--fail-rate",
            "0.4",
            "--fail-code",
            "InternalError",
            "--fail-code",
            "RequestLimitExceeded",
            "--fail-code",
            "AuthFailure.SignatureFailure",
            "--drop-rate",
            "0.1",
            "--clock-offset",
            "900",
            "--seed",
            "7",
        ])
        .set("KNOCK_TIMEOUT", "10s")
        .set("PRUNE_INTERVAL", "1s");
    let sim = setup.sim();
    let cfg = setup.config(&sim);
    let k = Knockd::start(&temp_dir("secrets"), &cfg);
    let mut outcomes = Vec::new();
    for i in 0..12 {
        outcomes.push(knock_curl(&k, &format!("203.0.113.{}", i + 1), "secrets"));
    }
    // Wrong secrets (one a prefix of the real one), then the real one from a locked-out client.
    for _ in 0..11 {
        let _ = curl(&[
            "-H",
            "Referer: s3cret-Kn0ck",
            "-H",
            "X-Forwarded-For: 203.0.113.99",
            &k.url("/favico.ico"),
        ]);
    }
    let _ = knock_curl(&k, "203.0.113.99", "locked");
    let mut logs = vec![("knockd (serve)".to_string(), k.log())];
    for args in [
        &["--prune"][..],
        &["--prune", "--dry-run"],
        &["--list"],
        &["--check"],
        &["--revoke", "203.0.113.1"],
    ] {
        let out = run(&k.config, args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        logs.push((format!("knockd {}", args.join(" ")), text));
    }
    // Configuration errors next to the secrets: the messages name variables, never values.
    let dir = temp_dir("secrets-bad-config");
    let mut bad = cfg.clone();
    set(
        &mut bad,
        "TENCENT_CLOUD_SECRET_KEY",
        &format!("{SECRET_KEY} x"),
    );
    set(&mut bad, "KNOCK_REFERER", &format!("{REFERER}\u{7}"));
    set(&mut bad, "BIND_PORT", "not-a-port");
    let out = run(&write_config(&dir, &bad), &["--check"]);
    assert_eq!(out.status.code(), Some(2));
    logs.push((
        "knockd with a bad config".to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ));
    logs.push(("lighthouse-sim".to_string(), sim.log()));

    let errors = sim.state()["errors"].clone();
    let lines: usize = logs.iter().map(|(_, l)| l.lines().count()).sum();
    for (who, log) in &logs {
        assert!(
            !log.is_empty() || who.contains("revoke"),
            "{who} logged nothing"
        );
        assert_no_secrets(who, log);
        assert!(
            !log.contains(&REFERER[..12]),
            "{who} logged part of the knock secret"
        );
        assert!(
            !log.contains(&SECRET_KEY[..12]),
            "{who} logged part of the SecretKey"
        );
    }
    let ok = outcomes.iter().filter(|b| *b == SUCCESS).count();
    eprintln!(
        "FIGURES secrets: {lines} log lines from {} sources grepped, none holds a secret; {ok}/12 knocks ok through sim errors {errors}",
        logs.len()
    );
    assert!(k.wait_log("reason=locked-out", std::time::Duration::from_secs(2)));
}
