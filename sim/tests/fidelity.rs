//! The simulator's fidelity to the real API where knockd's correctness depends on it: rate limits
//! per (action, Host, SecretId), the Port grammar and how ports take part in a rule's
//! identity, where created rules go, busy firewalls, regions without IPv6, and the per-region
//! call counts knockd's tests assert on (docs/lighthouse-api.md).

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::sim::{call_now, call_via_host, code, now, Sim};
use common::{INSTANCE, INSTANCE_ARG, REGION};
use serde_json::{json, Value};

/// A second instance, in another region.
const OTHER: &str = "lhins-kn0ck002";
const OTHER_REGION: &str = "ap-shanghai";
const OTHER_ARG: &str = "ap-shanghai:lhins-kn0ck002";

fn call_in(sim: &Sim, region: &str, action: &str, body: Value) -> Value {
    let (status, v) = call_now(sim.port, action, Some(region), &body.to_string());
    assert_eq!(status, 200, "{v}");
    v
}

fn api(sim: &Sim, action: &str, body: Value) -> Value {
    call_in(sim, REGION, action, body)
}

fn ok(v: &Value) {
    assert!(code(v).is_none(), "expected success, got {v}");
}

fn assert_code(v: &Value, want: &str) {
    assert_eq!(code(v), Some(want), "{v}");
}

fn tcp(port: &str, cidr: &str) -> Value {
    json!({"Protocol": "TCP", "Port": port, "CidrBlock": cidr, "Action": "ACCEPT"})
}

fn create(sim: &Sim, rules: Vec<Value>) -> Value {
    api(
        sim,
        "CreateFirewallRules",
        json!({"InstanceId": INSTANCE, "FirewallRules": rules}),
    )
}

fn delete(sim: &Sim, rules: Vec<Value>) -> Value {
    api(
        sim,
        "DeleteFirewallRules",
        json!({"InstanceId": INSTANCE, "FirewallRules": rules}),
    )
}

/// (Port, CidrBlock or Ipv6CidrBlock) of every rule, in order.
fn ports_and_blocks(sim: &Sim) -> Vec<(String, String)> {
    sim.rules(INSTANCE)
        .iter()
        .map(|r| {
            let block = match r["CidrBlock"].as_str() {
                Some(c) => c,
                None => r["Ipv6CidrBlock"].as_str().unwrap_or("?"),
            };
            (
                r["Port"].as_str().unwrap_or("?").to_string(),
                block.to_string(),
            )
        })
        .collect()
}

/// Regional hosts the tests send `Host` for (docs/lighthouse-api.md#endpoints-and-transport).
const HOST: &str = "lighthouse.ap-guangzhou.tencentcloudapi.com";
const OTHER_HOST: &str = "lighthouse.ap-shanghai.tencentcloudapi.com";

/// One call of a burst: (Host, region, SecretId, SecretKey, action, body).
type Call = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Value,
);

/// Sends all `calls` at once from threads, so they land within one second even on a loaded
/// machine; returns the answers in order and whether they all came back within 900 ms (only
/// then are exact counts asserted).
fn burst(sim: &Sim, calls: Vec<Call>) -> (Vec<Value>, bool) {
    let barrier = Arc::new(Barrier::new(calls.len()));
    let started = Instant::now();
    let handles: Vec<_> = calls
        .into_iter()
        .map(|(host, region, id, key, action, body)| {
            let barrier = Arc::clone(&barrier);
            let port = sim.port;
            thread::spawn(move || {
                barrier.wait();
                call_via_host(
                    port,
                    host,
                    action,
                    Some(region),
                    &body.to_string(),
                    now(),
                    id,
                    key,
                )
                .1
            })
        })
        .collect();
    let answers = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    (answers, started.elapsed() < Duration::from_millis(900))
}

fn count(answers: &[Value], want: Option<&str>) -> usize {
    answers.iter().filter(|v| code(v) == want).count()
}

const OTHER_ID: &str = "AKIDknockdTESTtestTESTtestTEST0002";
const OTHER_KEY: &str = "knockdTestSecretKey0002XYZ";

#[test]
fn rate_limits_are_per_action_host_and_secret_id() {
    let other_credential = format!("{OTHER_ID}:{OTHER_KEY}");
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--instance",
        OTHER_ARG,
        "--credential",
        &other_credential,
    ]);
    let (id, key) = (common::SECRET_ID, common::SECRET_KEY);
    let describe = |inst: &str| json!({"InstanceId": inst});
    // 11 calls to one host and 10 to another, in the same second: each host (access region)
    // has its own budget of 10, so only the 11th to the first is refused.
    let mut calls = Vec::new();
    for _ in 0..11 {
        calls.push((
            HOST,
            REGION,
            id,
            key,
            "DescribeFirewallRules",
            describe(INSTANCE),
        ));
    }
    for _ in 0..10 {
        calls.push((
            OTHER_HOST,
            OTHER_REGION,
            id,
            key,
            "DescribeFirewallRules",
            describe(OTHER),
        ));
    }
    let (answers, within_a_second) = burst(&sim, calls);
    let (first, second) = answers.split_at(11);
    assert_eq!(count(second, Some("RequestLimitExceeded")), 0, "{second:?}");
    if within_a_second {
        assert_eq!(count(first, None), 10, "{first:?}");
        assert_eq!(count(first, Some("RequestLimitExceeded")), 1, "{first:?}");
        assert_eq!(count(second, None), 10, "{second:?}");
    }
    // Calls are counted per host, per region and action, refused ones included.
    assert_eq!(sim.calls_to(HOST, "DescribeFirewallRules"), 11);
    assert_eq!(sim.calls_to(OTHER_HOST, "DescribeFirewallRules"), 10);
    assert_eq!(sim.calls_in(REGION, "DescribeFirewallRules"), 11);
    assert_eq!(sim.calls_in(OTHER_REGION, "DescribeFirewallRules"), 10);
    assert_eq!(sim.calls_in(OTHER_REGION, "CreateFirewallRules"), 0);
    assert_eq!(
        sim.errors("RequestLimitExceeded") as usize,
        count(first, Some("RequestLimitExceeded"))
    );
    thread::sleep(Duration::from_millis(1100));

    // Two regions through one host are one access region: one budget, whatever X-TC-Region.
    let errors_before = sim.errors("RequestLimitExceeded");
    let mut calls = Vec::new();
    for i in 0..11 {
        let (region, inst) = if i % 2 == 0 {
            (REGION, INSTANCE)
        } else {
            (OTHER_REGION, OTHER)
        };
        calls.push((
            HOST,
            region,
            id,
            key,
            "DescribeFirewallRules",
            describe(inst),
        ));
    }
    let (answers, within_a_second) = burst(&sim, calls);
    if within_a_second {
        assert_eq!(count(&answers, None), 10, "{answers:?}");
        assert_eq!(count(&answers, Some("RequestLimitExceeded")), 1);
    }
    assert_eq!(
        sim.errors("RequestLimitExceeded") - errors_before,
        count(&answers, Some("RequestLimitExceeded")) as u64
    );

    // Another SecretId (sub-account) has its own budget at the same host and second.
    let (answers, _) = burst(
        &sim,
        (0..10)
            .map(|_| {
                (
                    HOST,
                    REGION,
                    OTHER_ID,
                    OTHER_KEY,
                    "DescribeFirewallRules",
                    describe(INSTANCE),
                )
            })
            .collect(),
    );
    assert_eq!(
        count(&answers, Some("RequestLimitExceeded")),
        0,
        "{answers:?}"
    );
    thread::sleep(Duration::from_millis(1100));

    // ModifyFirewallRuleDescription allows 20 per second.
    let modify = json!({"InstanceId": INSTANCE, "FirewallRule": {"Protocol": "TCP", "Port": "80", "FirewallRuleDescription": "web"}});
    let (answers, within_a_second) = burst(
        &sim,
        (0..21)
            .map(|_| {
                (
                    HOST,
                    REGION,
                    id,
                    key,
                    "ModifyFirewallRuleDescription",
                    modify.clone(),
                )
            })
            .collect(),
    );
    if within_a_second {
        assert_eq!(count(&answers, None), 20, "{answers:?}");
        assert_eq!(count(&answers, Some("RequestLimitExceeded")), 1);
    }
    // DescribeRegions names no region: counted under `-` there, and under the host it went to.
    let (_, v) = call_now(sim.port, "DescribeRegions", None, "{}");
    ok(&v);
    assert_eq!(sim.calls_in("-", "DescribeRegions"), 1);
    assert_eq!(
        sim.calls_to(&format!("127.0.0.1:{}", sim.port), "DescribeRegions"),
        1
    );
}

#[test]
fn port_grammar_is_strict_through_the_api() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--no-default-rules",
        "--no-rate-limit",
    ]);
    for (i, port) in ["ALL", "22", "22,80,443", "8000-8100"].iter().enumerate() {
        ok(&create(
            &sim,
            vec![tcp(port, &format!("192.0.2.{}", i + 1))],
        ));
    }
    // A list and a range are never mixed in one rule ("单独的端口与离散端口不能同时存在").
    for port in [
        "22,8000-8100",
        "8000-8100,22",
        "22-23-24",
        "22,",
        " 22",
        "0",
        "65536",
    ] {
        assert_code(
            &create(&sim, vec![tcp(port, "192.0.2.9")]),
            "InvalidParameterValue",
        );
    }
    assert_eq!(sim.rules(INSTANCE).len(), 4);
    assert_eq!(sim.version(INSTANCE), 5);
}

#[test]
fn port_identity_is_the_text_as_written_by_default() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--no-default-rules"]);
    let me = "203.0.113.7/32";
    ok(&create(&sim, vec![tcp("22,443", me)]));
    // Another order is another rule, and so are ALL and 1-65535.
    ok(&create(&sim, vec![tcp("443,22", me)]));
    ok(&create(&sim, vec![tcp("ALL", me), tcp("1-65535", me)]));
    assert_eq!(sim.rules(INSTANCE).len(), 4);
    assert_code(
        &create(&sim, vec![tcp("22,443", me)]),
        "InvalidParameter.FirewallRulesExist",
    );
    ok(&delete(&sim, vec![tcp("443,22", me)]));
    let left: Vec<String> = ports_and_blocks(&sim).into_iter().map(|(p, _)| p).collect();
    assert_eq!(left, ["22,443", "ALL", "1-65535"]);
}

#[test]
fn port_identity_by_set_with_the_flag() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--no-default-rules",
        "--port-identity-by-set",
    ]);
    let me = "203.0.113.7/32";
    ok(&create(
        &sim,
        vec![tcp("22,443", me), tcp("ALL", me), tcp("80,81", me)],
    ));
    // The same sets as `22,443`, `ALL` and `80,81`.
    for port in ["443,22", "1-65535", "80-81"] {
        let v = create(&sim, vec![tcp(port, me)]);
        assert_code(&v, "InvalidParameter.FirewallRulesExist");
    }
    // Within one request too.
    assert_code(
        &create(&sim, vec![tcp("8080,8443", me), tcp("8443,8080", me)]),
        "InvalidParameter.FirewallRulesDuplicated",
    );
    // Another address or another set is another rule.
    ok(&create(
        &sim,
        vec![tcp("22,443", "203.0.113.8/32"), tcp("22", me)],
    ));
    // Delete and ModifyFirewallRuleDescription find the rule by its set; it keeps its text.
    ok(&api(
        &sim,
        "ModifyFirewallRuleDescription",
        json!({"InstanceId": INSTANCE, "FirewallRule": {"Protocol": "TCP", "Port": "443,22", "CidrBlock": me, "FirewallRuleDescription": "found"}}),
    ));
    let rules = sim.rules(INSTANCE);
    assert_eq!(rules[0]["Port"], "22,443");
    assert_eq!(rules[0]["FirewallRuleDescription"], "found");
    ok(&delete(&sim, vec![tcp("443,22", me), tcp("1-65535", me)]));
    let left: Vec<(String, String)> = ports_and_blocks(&sim);
    assert_eq!(
        left,
        [
            ("80,81".to_string(), me.to_string()),
            ("22,443".to_string(), "203.0.113.8/32".to_string()),
            ("22".to_string(), me.to_string()),
        ]
    );
}

#[test]
fn create_appends_by_default() {
    let sim = Sim::single();
    ok(&create(
        &sim,
        vec![tcp("22", "203.0.113.1"), tcp("22", "203.0.113.2")],
    ));
    let rules = ports_and_blocks(&sim);
    assert_eq!(rules.len(), 7);
    assert_eq!(rules[0], ("22".to_string(), "0.0.0.0/0".to_string()));
    assert_eq!(rules[5], ("22".to_string(), "203.0.113.1".to_string()));
    assert_eq!(rules[6], ("22".to_string(), "203.0.113.2".to_string()));
}

#[test]
fn create_inserts_first_with_the_flag() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--create-inserts-first"]);
    ok(&create(
        &sim,
        vec![tcp("22", "203.0.113.1"), tcp("22", "203.0.113.2")],
    ));
    ok(&create(&sim, vec![tcp("22", "203.0.113.3")]));
    let rules = ports_and_blocks(&sim);
    assert_eq!(rules.len(), 8);
    assert_eq!(rules[0], ("22".to_string(), "203.0.113.3".to_string()));
    assert_eq!(rules[1], ("22".to_string(), "203.0.113.1".to_string()));
    assert_eq!(rules[2], ("22".to_string(), "203.0.113.2".to_string()));
    assert_eq!(rules[3], ("22".to_string(), "0.0.0.0/0".to_string()));
}

#[test]
fn busy_for_ms_after_each_successful_write() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--instance",
        OTHER_ARG,
        "--busy-for-ms",
        "3000",
    ]);
    ok(&create(&sim, vec![tcp("22", "203.0.113.1")]));
    let written = Instant::now();
    // Every write on that instance is refused during the busy period, and changes nothing...
    let busy = [
        create(&sim, vec![tcp("22", "203.0.113.2")]),
        delete(&sim, vec![tcp("22", "203.0.113.1")]),
        api(
            &sim,
            "ModifyFirewallRuleDescription",
            json!({"InstanceId": INSTANCE, "FirewallRule": tcp("22", "203.0.113.1")}),
        ),
        api(
            &sim,
            "ModifyFirewallRules",
            json!({"InstanceId": INSTANCE, "FirewallRules": [tcp("22", "203.0.113.1")]}),
        ),
    ];
    if written.elapsed() > Duration::from_millis(2500) {
        return; // too loaded a machine to tell the busy period from its end
    }
    for v in &busy {
        assert_code(v, "UnsupportedOperation.FirewallBusy");
    }
    assert_eq!(sim.errors("UnsupportedOperation.FirewallBusy"), 4);
    assert_eq!(sim.version(INSTANCE), 2);
    assert_eq!(sim.rules(INSTANCE).len(), 6);
    // ...while reads, and writes on another instance, go through.
    ok(&api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE}),
    ));
    ok(&call_in(
        &sim,
        OTHER_REGION,
        "CreateFirewallRules",
        json!({"InstanceId": OTHER, "FirewallRules": [tcp("22", "203.0.113.1")]}),
    ));
    // Refused writes do not extend the period: it ends 3000 ms after the successful write.
    thread::sleep(Duration::from_millis(3100).saturating_sub(written.elapsed()));
    ok(&create(&sim, vec![tcp("22", "203.0.113.2")]));
    assert_eq!(sim.version(INSTANCE), 3);
}

#[test]
fn ipv6_rules_fail_in_unsupported_regions() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--instance",
        OTHER_ARG,
        "--ipv6-unsupported-regions",
        "ap-shanghai,ap-tokyo",
    ]);
    let v6 = json!({"Protocol": "TCP", "Port": "22", "Ipv6CidrBlock": "2001:db8::7/128"});
    let create_in = |region: &str, inst: &str, rules: Value| {
        call_in(
            &sim,
            region,
            "CreateFirewallRules",
            json!({"InstanceId": inst, "FirewallRules": rules}),
        )
    };
    ok(&create_in(REGION, INSTANCE, json!([v6])));
    let code = "UnsupportedOperation.Ipv6NotSupport";
    assert_code(&create_in(OTHER_REGION, OTHER, json!([v6])), code);
    // One IPv6 rule fails the whole call; ICMPv6 is IPv6 too.
    assert_code(
        &create_in(
            OTHER_REGION,
            OTHER,
            json!([tcp("22", "203.0.113.1"), {"Protocol": "ICMPv6"}]),
        ),
        code,
    );
    assert_code(
        &call_in(
            &sim,
            OTHER_REGION,
            "ModifyFirewallRules",
            json!({"InstanceId": OTHER, "FirewallRules": [v6]}),
        ),
        code,
    );
    assert_eq!(sim.rules(OTHER).len(), 5);
    assert_eq!(sim.version(OTHER), 1);
    ok(&create_in(
        OTHER_REGION,
        OTHER,
        json!([tcp("22", "203.0.113.1")]),
    ));

    // The code is configurable, for a client tested against another guess.
    let sim = Sim::start(&[
        "--instance",
        OTHER_ARG,
        "--ipv6-unsupported-regions",
        OTHER_REGION,
        "--ipv6-unsupported-code",
        "InvalidParameterValue.RegionNotSupported",
    ]);
    let v = call_in(
        &sim,
        OTHER_REGION,
        "CreateFirewallRules",
        json!({"InstanceId": OTHER, "FirewallRules": [v6]}),
    );
    assert_code(&v, "InvalidParameterValue.RegionNotSupported");
}

#[test]
fn ipv6_rules_are_named_by_their_ipv6_cidr_block() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--no-default-rules"]);
    let block = "2001:db8::7/128";
    let v6 = json!({"Protocol": "TCP", "Port": "22", "Ipv6CidrBlock": block, "Action": "ACCEPT"});
    ok(&create(&sim, vec![v6.clone(), tcp("22", "203.0.113.7/32")]));
    let rules = sim.rules(INSTANCE);
    assert_eq!(rules[0]["Ipv6CidrBlock"], block);
    assert!(rules[0].get("CidrBlock").is_none(), "{rules:?}");
    assert_eq!(rules[1]["Ipv6CidrBlock"], "");
    // The same text as a CidrBlock is not an IPv4 block; without a block the rule is the
    // default 0.0.0.0/0 one, which does not exist.
    assert_code(
        &delete(&sim, vec![tcp("22", block)]),
        "InvalidParameterValue",
    );
    assert_code(
        &delete(&sim, vec![json!({"Protocol": "TCP", "Port": "22"})]),
        "ResourceNotFound.FirewallRulesNotFound",
    );
    let mut described = v6.clone();
    described["FirewallRuleDescription"] = json!("v6 home");
    ok(&api(
        &sim,
        "ModifyFirewallRuleDescription",
        json!({"InstanceId": INSTANCE, "FirewallRule": described}),
    ));
    assert_eq!(sim.rules(INSTANCE)[0]["FirewallRuleDescription"], "v6 home");
    ok(&delete(&sim, vec![v6]));
    let left = ports_and_blocks(&sim);
    assert_eq!(left, [("22".to_string(), "203.0.113.7/32".to_string())]);
}

#[test]
fn host_header_with_a_port_is_signed_as_sent() {
    // The fixture signs `Host: 127.0.0.1:PORT`, exactly what ureq sends: accepted. The
    // simulator rebuilds the canonical headers from the request as received, so any form of
    // the host works if it is signed as sent, and a mismatch is a SignatureFailure (tested in
    // sim.rs, host_or_scope_tampering_is_signature_failure).
    let sim = Sim::single();
    ok(&api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE}),
    ));
}

#[test]
fn denied_actions_answer_the_chosen_cam_code_and_change_nothing() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--deny-actions",
        "CreateFirewallRules",
    ]);
    assert_code(
        &create(&sim, vec![tcp("22", "203.0.113.1")]),
        "UnauthorizedOperation.NoPermission",
    );
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--deny-actions",
        "CreateFirewallRules,DeleteFirewallRules",
        "--deny-code",
        "AuthFailure.UnauthorizedOperation",
    ]);
    let rules = sim.rules(INSTANCE).len();
    assert_code(
        &create(&sim, vec![tcp("22", "203.0.113.1")]),
        "AuthFailure.UnauthorizedOperation",
    );
    assert_code(
        &delete(&sim, vec![tcp("22", "0.0.0.0/0")]),
        "AuthFailure.UnauthorizedOperation",
    );
    // Reads are not denied; nothing was written.
    ok(&api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE}),
    ));
    assert_eq!(sim.rules(INSTANCE).len(), rules);
    assert_eq!(sim.version(INSTANCE), 1);
}
