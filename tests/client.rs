//! The library's Lighthouse client (`lighthouse::Client`) and executor (`executor::apply`)
//! against lighthouse-sim on loopback: the actions, FirewallVersion conflicts, the quota, clock
//! skew, injected faults, dropped connections, and authentication.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::knockd::{base_config, set};
use common::sim::{assert_no_duplicate_rules, rules_for, Sim};
use common::{INSTANCE, INSTANCE_ARG, SECRET_KEY};
use knockd::cloud::client::Client;
use knockd::cloud::error::ApiError;
use knockd::cloud::executor;
use knockd::config::{self, Config};
use knockd::rules::planner::{Grant, Policy, QUOTA};
use knockd::rules::FirewallRule;

/// A validated Config whose endpoint is the simulator (no process environment involved).
fn config_for(sim: &Sim, extra: &[(&str, &str)]) -> Config {
    let mut pairs = base_config(sim, INSTANCE_ARG, 8080);
    for (k, v) in extra {
        set(&mut pairs, k, v);
    }
    config::from_pairs(&pairs, &HashMap::new()).unwrap_or_else(|e| panic!("config: {e}"))
}

fn client_for(config: &Config) -> Client {
    Client::new(config).unwrap_or_else(|e| panic!("client: {e}"))
}

fn policy(config: &Config) -> Policy<'_> {
    Policy {
        limit: QUOTA,
        ..config.policy()
    }
}

fn grant(ip: &str, label: &str) -> Grant {
    Grant {
        ip: ip.parse().expect("ip"),
        label: label.to_string(),
        ttl_secs: None,
        prefix: None,
    }
}

fn tcp_rule(cidr: &str, port: &str, desc: &str) -> FirewallRule {
    FirewallRule {
        protocol: "TCP".into(),
        port: port.into(),
        cidr_block: Some(cidr.into()),
        ipv6_cidr_block: None,
        action: "ACCEPT".into(),
        description: desc.into(),
    }
}

/// After a grant of `addr`: exactly one rule per configured protocol, with the right ports.
fn assert_granted_once(sim: &Sim, config: &Config, addr: &str) {
    let rules = sim.rules(INSTANCE);
    assert_no_duplicate_rules(INSTANCE, &rules);
    let mine = rules_for(&rules, addr);
    assert_eq!(mine.len(), config.rules.ports.len(), "{addr}: {mine:?}");
    for (proto, ports) in &config.rules.ports {
        let n = mine
            .iter()
            .filter(|r| r["Protocol"] == proto.as_str() && r["Port"] == ports.as_str())
            .count();
        assert_eq!(n, 1, "{addr} {}: {mine:?}", proto.as_str());
    }
}

fn api_code(r: Result<impl std::fmt::Debug, ApiError>) -> String {
    match r {
        Ok(v) => panic!("expected an API error, got {v:?}"),
        Err(e) => e
            .code()
            .unwrap_or_else(|| panic!("expected an API error, got {e:?}"))
            .to_string(),
    }
}

#[test]
fn describe_returns_all_100_rules_complete_and_in_order() {
    // 5 console defaults + 95 foreign rules: the whole quota.
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--foreign-rules", "95"]);
    let config = config_for(&sim, &[]);
    let client = client_for(&config);
    let inst = &config.cloud.instances[0];
    let (rules, version) = client.describe_rules(inst).expect("describe");
    let expected = sim.rules(INSTANCE);
    assert_eq!(expected.len(), QUOTA);
    assert_eq!(rules.len(), expected.len());
    for (got, want) in rules.iter().zip(&expected) {
        assert_eq!(got.protocol, want["Protocol"].as_str().expect("Protocol"));
        assert_eq!(got.port, want["Port"].as_str().expect("Port"));
        assert_eq!(got.cidr_block.as_deref(), want["CidrBlock"].as_str());
        assert_eq!(got.action, want["Action"].as_str().expect("Action"));
        assert_eq!(
            got.description,
            want["FirewallRuleDescription"].as_str().expect("desc")
        );
    }
    assert_eq!(version, sim.version(INSTANCE));
    // At most 100 rules, so one page with Limit 100 holds them all.
    assert_eq!(sim.calls("DescribeFirewallRules"), 1);
}

#[test]
fn create_modify_and_delete_change_the_simulated_firewall() {
    let sim = Sim::single();
    let config = config_for(&sim, &[]);
    let client = client_for(&config);
    let inst = &config.cloud.instances[0];
    let defaults = sim.rules(INSTANCE);
    let (_, v0) = client.describe_rules(inst).expect("describe");

    let a = tcp_rule("203.0.113.7", "22,443", "Knockd-a until 2030-01-01 00:00Z");
    let b = FirewallRule {
        protocol: "UDP".into(),
        port: "51820".into(),
        ..tcp_rule("203.0.113.7", "", "Knockd-a until 2030-01-01 00:00Z")
    };
    let reply = client
        .create_rules(inst, &[a.clone(), b.clone()], Some(v0))
        .expect("create");
    assert!(!reply.request_id.is_empty());
    let rules = sim.rules(INSTANCE);
    assert_eq!(rules.len(), defaults.len() + 2);
    let mine = rules_for(&rules, "203.0.113.7");
    assert_eq!(mine.len(), 2);
    assert!(mine
        .iter()
        .all(|r| r["FirewallRuleDescription"] == a.description.as_str()));
    let v1 = sim.version(INSTANCE);
    assert!(v1 > v0);

    let renamed = FirewallRule {
        description: "Knockd-a until 2031-06-01 12:00Z".into(),
        ..a.clone()
    };
    client
        .modify_description(inst, &renamed, Some(v1))
        .expect("modify description");
    let rules = sim.rules(INSTANCE);
    let tcp: Vec<_> = rules_for(&rules, "203.0.113.7")
        .into_iter()
        .filter(|r| r["Protocol"] == "TCP")
        .collect();
    assert_eq!(tcp.len(), 1);
    assert_eq!(
        tcp[0]["FirewallRuleDescription"],
        renamed.description.as_str()
    );
    assert_eq!(rules.len(), defaults.len() + 2);

    let (now_rules, v2) = client.describe_rules(inst).expect("describe");
    assert_eq!(v2, sim.version(INSTANCE));
    assert!(now_rules
        .iter()
        .any(|r| r.same_identity(&a) && r.description == renamed.description));
    client
        .delete_rules(inst, &[a, b], Some(v2))
        .expect("delete");
    assert_eq!(sim.rules(INSTANCE), defaults, "only the two rules went");
}

#[test]
fn a_stale_firewall_version_is_refused_and_changes_nothing() {
    let sim = Sim::single();
    let config = config_for(&sim, &[]);
    let client = client_for(&config);
    let inst = &config.cloud.instances[0];
    let (_, stale) = client.describe_rules(inst).expect("describe");
    let first = tcp_rule("203.0.113.8", "22", "Knockd-x until 2030-01-01 00:00Z");
    client
        .create_rules(inst, std::slice::from_ref(&first), Some(stale))
        .expect("create moves the version on");
    let before = sim.state()["instances"].clone();
    let version = sim.version(INSTANCE);
    assert_ne!(version, stale);

    let other = tcp_rule("203.0.113.9", "22", "Knockd-y until 2030-01-01 00:00Z");
    let mismatch = "UnsupportedOperation.FirewallVersionMismatch";
    assert_eq!(
        api_code(client.create_rules(inst, &[other], Some(stale))),
        mismatch
    );
    assert_eq!(
        api_code(client.delete_rules(inst, std::slice::from_ref(&first), Some(stale))),
        mismatch
    );
    let renamed = FirewallRule {
        description: "Knockd-x until 2031-01-01 00:00Z".into(),
        ..first
    };
    assert_eq!(
        api_code(client.modify_description(inst, &renamed, Some(stale))),
        mismatch
    );
    assert_eq!(sim.state()["instances"], before, "nothing changed");
    assert_eq!(sim.version(INSTANCE), version);
    // A conflict is final for the client (the executor re-plans): one request per write.
    assert_eq!(sim.calls("CreateFirewallRules"), 2);
    assert_eq!(sim.calls("DeleteFirewallRules"), 1);
    assert_eq!(sim.calls("ModifyFirewallRuleDescription"), 1);
}

#[test]
fn apply_rereads_and_replans_after_a_version_conflict() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--conflict-after-describe", "1"]);
    let config = config_for(&sim, &[]);
    let client = client_for(&config);
    let inst = &config.cloud.instances[0];
    let applied = executor::apply(
        &client,
        inst,
        &policy(&config),
        &[grant("203.0.113.7", "office")],
        false,
    )
    .expect("apply converges");
    assert!(applied.granted(0));
    assert_eq!(applied.rounds, 2);
    assert_granted_once(&sim, &config, "203.0.113.7");
    assert_eq!(sim.calls("DescribeFirewallRules"), 2);
    assert_eq!(
        sim.errors("UnsupportedOperation.FirewallVersionMismatch"),
        1
    );
    // The write that lost was not blindly resent with the same version.
    assert_eq!(sim.calls("CreateFirewallRules"), 2);
}

#[test]
fn creating_past_the_quota_is_final() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--foreign-rules", "95"]);
    let config = config_for(&sim, &[]);
    let client = client_for(&config);
    let inst = &config.cloud.instances[0];
    let (rules, version) = client.describe_rules(inst).expect("describe");
    assert_eq!(rules.len(), QUOTA);
    let extra = tcp_rule("203.0.113.7", "22,443", "Knockd-x until 2030-01-01 00:00Z");
    assert_eq!(
        api_code(client.create_rules(inst, &[extra], Some(version))),
        "LimitExceeded.FirewallRulesLimitExceeded"
    );
    assert_eq!(sim.calls("CreateFirewallRules"), 1, "no retry");
    assert_eq!(sim.rules(INSTANCE).len(), QUOTA);
    assert_eq!(sim.version(INSTANCE), version);
}

fn skew_is_corrected(offset: i64) {
    let off = offset.to_string();
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--clock-offset", &off]);
    let config = config_for(&sim, &[]);
    let client = client_for(&config);
    let inst = &config.cloud.instances[0];
    let (_, version) = client
        .describe_rules(inst)
        .expect("describe after skew correction");
    assert_eq!(sim.errors("AuthFailure.SignatureExpire"), 1);
    assert!(
        (client.skew() - offset).abs() <= 2,
        "skew {} for offset {offset}",
        client.skew()
    );
    // Later calls, writes included, are signed with the corrected clock from the start.
    let rule = tcp_rule("203.0.113.7", "22", "Knockd-x until 2030-01-01 00:00Z");
    client
        .create_rules(inst, &[rule], Some(version))
        .expect("create");
    client.describe_rules(inst).expect("describe again");
    assert_eq!(sim.errors("AuthFailure.SignatureExpire"), 1);
    assert_eq!(sim.calls("DescribeFirewallRules"), 3);
    assert_eq!(sim.calls("CreateFirewallRules"), 1);
}

#[test]
fn clock_ten_minutes_behind_the_api_is_corrected() {
    skew_is_corrected(600);
}

#[test]
fn clock_ten_minutes_ahead_of_the_api_is_corrected() {
    skew_is_corrected(-600);
}

#[test]
fn clock_skew_without_a_date_header_fails_cleanly() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--clock-offset",
        "600",
        "--no-date-header",
    ]);
    let config = config_for(&sim, &[]);
    let client = client_for(&config);
    let started = Instant::now();
    match client.describe_rules(&config.cloud.instances[0]) {
        Err(ApiError::Clock(msg)) => {
            assert!(msg.contains("SignatureExpire"), "{msg}");
            assert!(msg.contains("check this machine's clock"), "{msg}");
        }
        other => panic!("expected ApiError::Clock, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(sim.calls("DescribeFirewallRules"), 1);
    assert_eq!(client.skew(), 0);
}

fn faults_are_retried(code: &str, seed: &str) {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--fail-rate",
        "0.3",
        "--fail-code",
        code,
        // The simulator's own rate limit would make the fault sequence depend on timing.
        "--no-rate-limit",
        "--seed",
        seed,
    ]);
    let config = config_for(&sim, &[]);
    let client = client_for(&config);
    let inst = &config.cloud.instances[0];
    for i in 0..20 {
        if let Err(e) = client.describe_rules(inst) {
            panic!("call {i} failed despite retries: {e}");
        }
    }
    let injected = sim.errors(code);
    assert!(injected > 0, "no {code} was injected");
    // Every injected failure cost exactly one more request, nothing else did.
    assert_eq!(sim.calls("DescribeFirewallRules"), 20 + injected);
    assert_eq!(knockd::cloud::client::calls_on_this_thread(), 20 + injected);
}

#[test]
fn rate_limit_faults_are_retried_within_the_budget() {
    faults_are_retried("RequestLimitExceeded", "7");
}

#[test]
fn internal_errors_are_retried_within_the_budget() {
    faults_are_retried("InternalError", "11");
}

#[test]
fn dropped_connections_are_retried_and_apply_never_duplicates() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--drop-rate",
        "0.3",
        // The simulator's own rate limit would make the fault sequence depend on timing.
        "--no-rate-limit",
        "--seed",
        "3",
    ]);
    let config = config_for(&sim, &[]);
    let client = client_for(&config);
    let inst = &config.cloud.instances[0];
    for i in 0..20 {
        if let Err(e) = client.describe_rules(inst) {
            panic!("call {i} failed despite retries: {e}");
        }
    }
    let addrs = ["203.0.113.21", "203.0.113.22", "203.0.113.23"];
    for (i, addr) in addrs.iter().enumerate() {
        let applied = executor::apply(
            &client,
            inst,
            &policy(&config),
            &[grant(addr, &format!("c{i}"))],
            false,
        )
        .unwrap_or_else(|e| panic!("apply {addr}: {e}"));
        assert!(applied.granted(0));
    }
    for addr in addrs {
        assert_granted_once(&sim, &config, addr);
    }
    assert!(
        sim.wait_log("DROPPED (before processing)", Duration::from_secs(10)),
        "no drop happened"
    );
}

#[test]
fn a_create_applied_but_unanswered_is_not_duplicated() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--drop-after-apply-rate",
        "0.5",
        // The simulator's own rate limit would make the fault sequence depend on timing.
        "--no-rate-limit",
        "--seed",
        "5",
    ]);
    let config = config_for(&sim, &[]);
    let client = client_for(&config);
    let inst = &config.cloud.instances[0];
    let addrs = [
        "203.0.113.31",
        "203.0.113.32",
        "203.0.113.33",
        "203.0.113.34",
        "203.0.113.35",
    ];
    for (i, addr) in addrs.iter().enumerate() {
        executor::apply(
            &client,
            inst,
            &policy(&config),
            &[grant(addr, &format!("c{i}"))],
            false,
        )
        .unwrap_or_else(|e| panic!("apply {addr}: {e}"));
    }
    for addr in addrs {
        assert_granted_once(&sim, &config, addr);
    }
    assert_eq!(sim.rules(INSTANCE).len(), 5 + 2 * addrs.len());
    assert!(
        sim.wait_log_line(Duration::from_secs(10), |l| l
            .contains("CreateFirewallRules")
            && l.contains("DROPPED (after apply)")),
        "no Create was dropped after apply:\n{}",
        sim.log()
    );
}

#[test]
fn a_wrong_secret_key_is_final() {
    let sim = Sim::single();
    let config = config_for(&sim, &[("TENCENT_CLOUD_SECRET_KEY", "notTheRightKey0001")]);
    let client = client_for(&config);
    let err = client
        .describe_rules(&config.cloud.instances[0])
        .expect_err("wrong key");
    assert!(err.is("AuthFailure.SignatureFailure"), "{err:?}");
    assert_eq!(sim.calls("DescribeFirewallRules"), 1, "no retry");
    assert_eq!(knockd::cloud::client::calls_on_this_thread(), 1);
    let shown = err.to_string();
    assert!(!shown.contains("notTheRightKey0001") && !shown.contains(SECRET_KEY));
}

#[test]
fn session_token_is_sent_and_checked() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--token", "sess-T0ken-42"]);
    let good = config_for(&sim, &[("TENCENT_CLOUD_TOKEN", "sess-T0ken-42")]);
    client_for(&good)
        .describe_rules(&good.cloud.instances[0])
        .expect("the right token is accepted");
    assert_eq!(sim.errors("AuthFailure.TokenFailure"), 0);

    let wrong = config_for(&sim, &[("TENCENT_CLOUD_TOKEN", "sess-wrong")]);
    let client = client_for(&wrong);
    let before = knockd::cloud::client::calls_on_this_thread();
    let err = client
        .describe_rules(&wrong.cloud.instances[0])
        .expect_err("wrong token");
    assert!(err.is("AuthFailure.TokenFailure"), "{err:?}");
    assert_eq!(
        knockd::cloud::client::calls_on_this_thread() - before,
        1,
        "no retry"
    );

    let none = config_for(&sim, &[]);
    let err = client_for(&none)
        .describe_rules(&none.cloud.instances[0])
        .expect_err("no token");
    assert!(err.is("AuthFailure.TokenFailure"), "{err:?}");
    assert_eq!(sim.calls("DescribeFirewallRules"), 3);
}

/// A stand-in API that answers every request with `answer(n)` (n = 0, 1, ...), HTTP 200,
/// `Connection: close`. For shapes lighthouse-sim never produces.
fn fake_api(
    answer: impl Fn(u32) -> String + Send + 'static,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicU32, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let count = std::sync::Arc::new(AtomicU32::new(0));
    let seen = std::sync::Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let text = answer(n);
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, count)
}

fn config_at(url: &str) -> Config {
    let pairs: Vec<(String, String)> = [
        ("TENCENT_CLOUD_SECRET_ID", common::SECRET_ID),
        ("TENCENT_CLOUD_SECRET_KEY", SECRET_KEY),
        ("TENCENT_CLOUD_ACCESS_POINT", url),
        ("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS", INSTANCE_ARG),
        ("KNOCK_REFERER", "s3cret-Kn0ck$Ref"),
        ("FW_PERMIT_PORTS_TCP", "22"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    config::from_pairs(&pairs, &HashMap::new()).unwrap_or_else(|e| panic!("config: {e}"))
}

fn page(total: u64, version: u64, n: u32) -> String {
    format!(
        r#"{{"Response": {{"TotalCount": {total}, "FirewallVersion": {version}, "FirewallRuleSet": [
            {{"Protocol": "TCP", "Port": "22", "CidrBlock": "198.51.100.{}", "Action": "ACCEPT"}}],
            "RequestId": "r{n}"}}}}"#,
        n % 250 + 1
    )
}

#[test]
fn a_describe_that_never_ends_is_refused_after_a_few_pages() {
    // One rule per page and a TotalCount that is never reached.
    let (url, count) = fake_api(|n| page(5000, 7, n));
    let config = config_at(&url);
    let err = client_for(&config)
        .describe_rules(&config.cloud.instances[0])
        .expect_err("endless paging");
    assert!(matches!(err, ApiError::BadResponse(_)), "{err:?}");
    assert!(count.load(std::sync::atomic::Ordering::SeqCst) <= 5);
}

#[test]
fn a_firewall_that_changes_between_every_page_is_refused_after_a_few_restarts() {
    // Two rules in all, one per page, and a new version on every answer.
    let (url, count) = fake_api(|n| page(2, u64::from(n) + 1, n));
    let config = config_at(&url);
    let err = client_for(&config)
        .describe_rules(&config.cloud.instances[0])
        .expect_err("restarts");
    assert!(matches!(err, ApiError::BadResponse(_)), "{err:?}");
    assert!(err.to_string().contains("kept changing"), "{err}");
    assert!(count.load(std::sync::atomic::Ordering::SeqCst) <= 10);
}

#[test]
fn a_total_count_past_32_bits_is_refused_not_truncated() {
    // 2^32 + 1 is 1 after `as usize` on a 32-bit target: one page would then look complete.
    let (url, _) = fake_api(|n| page(4_294_967_297, 7, n));
    let config = config_at(&url);
    let err = client_for(&config)
        .describe_rules(&config.cloud.instances[0])
        .expect_err("absurd TotalCount");
    assert!(matches!(err, ApiError::BadResponse(_)), "{err:?}");
}

#[test]
fn an_error_message_with_a_newline_cannot_forge_a_log_line() {
    let (url, _) = fake_api(|_| {
        r#"{"Response": {"Error": {"Code": "AuthFailure.SecretIdNotFound",
            "Message": "no such key\n2026-11-30T00:00:00Z knock addr=6.6.6.6 result=ok\u001b[2K"},
            "RequestId": "r\r1"}}"#
            .to_string()
    });
    let config = config_at(&url);
    let err = client_for(&config)
        .describe_rules(&config.cloud.instances[0])
        .expect_err("error answer");
    let shown = err.to_string();
    assert!(
        !shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'),
        "{shown:?}"
    );
    assert!(shown.contains("no such key\\u{a}2026-11-30"), "{shown}");
}
