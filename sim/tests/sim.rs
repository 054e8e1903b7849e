//! Integration tests of lighthouse-sim: every assertion is on what a client can observe (codes,
//! headers, the `/__state` dump), since knockd's own tests will trust this simulator.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::sim::{call, call_now, call_raw, code, now, post_now, signed_headers, Sim};
use common::{INSTANCE, INSTANCE_ARG, REGION, SECRET_ID, SECRET_KEY};
use knockd::cloud::sign;
use serde_json::{json, Value};

/// A signed call at the current time that must come back with HTTP 200.
fn api(sim: &Sim, action: &str, body: Value) -> Value {
    let (status, v) = call_now(sim.port, action, Some(REGION), &body.to_string());
    assert_eq!(status, 200, "{v}");
    v
}

fn ok(v: &Value) {
    assert!(code(v).is_none(), "expected success, got {v}");
    assert!(v["Response"]["RequestId"].is_string(), "{v}");
}

fn assert_code(v: &Value, want: &str) {
    assert_eq!(code(v), Some(want), "{v}");
    assert!(v["Response"]["RequestId"].is_string(), "{v}");
}

fn rule(port: &str, cidr: &str) -> Value {
    json!({"Protocol": "TCP", "Port": port, "CidrBlock": cidr, "Action": "ACCEPT"})
}

fn create(sim: &Sim, rules: Vec<Value>) -> Value {
    api(
        sim,
        "CreateFirewallRules",
        json!({"InstanceId": INSTANCE, "FirewallRules": rules}),
    )
}

fn has_rule(rules: &[Value], port: &str, cidr: &str) -> bool {
    rules
        .iter()
        .any(|r| r["Protocol"] == "TCP" && r["Port"] == port && r["CidrBlock"] == cidr)
}

#[test]
fn correct_call_succeeds_with_the_cloud_envelope() {
    let sim = Sim::single();
    let body = json!({"InstanceId": INSTANCE, "Offset": 0, "Limit": 100}).to_string();
    let r = post_now(sim.port, "DescribeFirewallRules", Some(REGION), &body).expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert!(r.date.is_some());
    ok(&r.json);
    let resp = &r.json["Response"];
    assert_eq!(resp["TotalCount"], 5);
    assert_eq!(resp["FirewallVersion"], 1);
    let set = resp["FirewallRuleSet"].as_array().expect("rule set");
    assert_eq!(set[0]["AppType"], "Linux登录(22)");
    assert_eq!(set[0]["FirewallRuleDescription"], "");
    // As the real API does: IPv4 rules carry an empty Ipv6CidrBlock.
    assert_eq!(set[0]["Ipv6CidrBlock"], "");
    assert_eq!(set[4]["Protocol"], "ICMP");
    let rid = resp["RequestId"].as_str().expect("rid");
    let parts: Vec<usize> = rid.split('-').map(str::len).collect();
    assert_eq!(parts, [8, 4, 4, 4, 12], "{rid}");
    assert_eq!(&rid[14..15], "4");
    // RequestIds are fresh on every call.
    let again = api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE}),
    );
    assert_ne!(again["Response"]["RequestId"], rid);
    // Paging.
    let page = api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE, "Offset": 3, "Limit": 1}),
    );
    assert_eq!(page["Response"]["TotalCount"], 5);
    assert_eq!(page["Response"]["FirewallRuleSet"][0]["Port"], "3389");
}

#[test]
fn wrong_key_is_signature_failure() {
    let sim = Sim::single();
    let body = json!({"InstanceId": INSTANCE}).to_string();
    let (s, v) = call(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        now(),
        SECRET_ID,
        "wrongKey",
    );
    assert_eq!(s, 200);
    assert_code(&v, "AuthFailure.SignatureFailure");
}

#[test]
fn old_timestamp_is_signature_expire() {
    let sim = Sim::single();
    let body = json!({"InstanceId": INSTANCE}).to_string();
    let (_, v) = call(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        now() - 400,
        SECRET_ID,
        SECRET_KEY,
    );
    assert_code(&v, "AuthFailure.SignatureExpire");
    let (_, v) = call(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        now() + 400,
        SECRET_ID,
        SECRET_KEY,
    );
    assert_code(&v, "AuthFailure.SignatureExpire");
    let (_, v) = call(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        now() - 200,
        SECRET_ID,
        SECRET_KEY,
    );
    ok(&v);
}

#[test]
fn body_changed_after_signing_is_signature_failure() {
    let sim = Sim::single();
    let body = json!({"InstanceId": INSTANCE, "FirewallRules": [rule("22", "203.0.113.7/32")]})
        .to_string();
    let headers = signed_headers(
        sim.port,
        "CreateFirewallRules",
        Some(REGION),
        &body,
        now(),
        SECRET_ID,
        SECRET_KEY,
    );
    let tampered = body.replace("203.0.113.7", "203.0.113.8");
    let (_, v) = call_raw(sim.port, &headers, tampered.as_bytes());
    assert_code(&v, "AuthFailure.SignatureFailure");
    assert!(!has_rule(&sim.rules(INSTANCE), "22", "203.0.113.8/32"));
}

#[test]
fn host_or_scope_tampering_is_signature_failure() {
    let sim = Sim::single();
    let body = json!({"InstanceId": INSTANCE}).to_string();
    let ts = now();
    let mut headers = signed_headers(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        ts,
        SECRET_ID,
        SECRET_KEY,
    );
    // Signed for another Host than the one received.
    headers.push(("Host".into(), "lighthouse.tencentcloudapi.com".into()));
    let (_, v) = call_raw(sim.port, &headers, body.as_bytes());
    assert_code(&v, "AuthFailure.SignatureFailure");
    // A scope date that is not the UTC date of the timestamp, signed consistently otherwise.
    let host = format!("127.0.0.1:{}", sim.port);
    let canonical = format!("content-type:application/json\nhost:{host}\n");
    let cr = sign::canonical_request(
        &canonical,
        "content-type;host",
        &sign::sha256_hex(body.as_bytes()),
    );
    let date = knockd::clock::utc_date(ts - 86_400);
    let sts = sign::string_to_sign(ts, &date, "lighthouse", &cr);
    let sig = sign::signature(SECRET_KEY, &date, "lighthouse", &sts);
    let auth = sign::authorization(SECRET_ID, &date, "lighthouse", "content-type;host", &sig);
    let mut headers = signed_headers(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        ts,
        SECRET_ID,
        SECRET_KEY,
    );
    headers.retain(|(k, _)| k != "Authorization");
    headers.push(("Authorization".into(), auth));
    let (_, v) = call_raw(sim.port, &headers, body.as_bytes());
    assert_code(&v, "AuthFailure.SignatureFailure");
}

/// Extra signed headers are allowed when listed and consistent.
#[test]
fn extra_signed_header_x_tc_action() {
    let sim = Sim::single();
    let body = json!({"InstanceId": INSTANCE}).to_string();
    let ts = now();
    let signed_auth = |signed_action: &str| {
        let canonical = format!(
            "content-type:application/json\nhost:127.0.0.1:{}\nx-tc-action:{}\n",
            sim.port,
            signed_action.to_lowercase()
        );
        let names = "content-type;host;x-tc-action";
        let cr = sign::canonical_request(&canonical, names, &sign::sha256_hex(body.as_bytes()));
        let date = knockd::clock::utc_date(ts);
        let sts = sign::string_to_sign(ts, &date, "lighthouse", &cr);
        let sig = sign::signature(SECRET_KEY, &date, "lighthouse", &sts);
        sign::authorization(SECRET_ID, &date, "lighthouse", names, &sig)
    };
    let with_auth = |auth: String| {
        let mut h = signed_headers(
            sim.port,
            "DescribeFirewallRules",
            Some(REGION),
            &body,
            ts,
            SECRET_ID,
            SECRET_KEY,
        );
        h.retain(|(k, _)| k != "Authorization");
        h.push(("Authorization".into(), auth));
        h
    };
    // The value is signed as received: `DescribeFirewallRules`, not lowercased.
    let canonical_ok = {
        let canonical = format!(
            "content-type:application/json\nhost:127.0.0.1:{}\nx-tc-action:DescribeFirewallRules\n",
            sim.port
        );
        let names = "content-type;host;x-tc-action";
        let cr = sign::canonical_request(&canonical, names, &sign::sha256_hex(body.as_bytes()));
        let date = knockd::clock::utc_date(ts);
        let sts = sign::string_to_sign(ts, &date, "lighthouse", &cr);
        let sig = sign::signature(SECRET_KEY, &date, "lighthouse", &sts);
        sign::authorization(SECRET_ID, &date, "lighthouse", names, &sig)
    };
    let (_, v) = call_raw(sim.port, &with_auth(canonical_ok), body.as_bytes());
    ok(&v);
    // Signed for another action than the one sent.
    let (_, v) = call_raw(
        sim.port,
        &with_auth(signed_auth("DescribeRegions")),
        body.as_bytes(),
    );
    assert_code(&v, "AuthFailure.SignatureFailure");
}

#[test]
fn unknown_secret_id_and_malformed_authorization() {
    let sim = Sim::single();
    let body = json!({"InstanceId": INSTANCE}).to_string();
    let (_, v) = call(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        now(),
        "AKIDnobody",
        SECRET_KEY,
    );
    assert_code(&v, "AuthFailure.SecretIdNotFound");
    let mut h = signed_headers(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        now(),
        SECRET_ID,
        SECRET_KEY,
    );
    h.retain(|(k, _)| k != "Authorization");
    h.push(("Authorization".into(), "Bearer token".into()));
    let (_, v) = call_raw(sim.port, &h, body.as_bytes());
    assert_code(&v, "AuthFailure.InvalidAuthorization");
}

#[test]
fn wrong_version_and_unknown_action() {
    let sim = Sim::single();
    let body = json!({"InstanceId": INSTANCE}).to_string();
    let mut h = signed_headers(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        now(),
        SECRET_ID,
        SECRET_KEY,
    );
    for (k, v) in h.iter_mut() {
        if k == "X-TC-Version" {
            *v = "2017-03-12".into();
        }
    }
    let (_, v) = call_raw(sim.port, &h, body.as_bytes());
    assert_code(&v, "NoSuchVersion");
    let (_, v) = call_now(sim.port, "RunInstances", Some(REGION), &body);
    assert_code(&v, "InvalidAction");
}

#[test]
fn malformed_instance_id() {
    let sim = Sim::single();
    for bad in [
        "lhins-ABCD1234",
        "lhins-abc",
        "ins-abcd1234",
        "lhins-abcd12345",
    ] {
        let v = api(&sim, "DescribeFirewallRules", json!({"InstanceId": bad}));
        assert_code(&v, "InvalidParameterValue.InstanceIdMalformed");
    }
}

#[test]
fn instance_in_another_region_is_not_found() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--instance",
        "ap-hongkong:lhins-hk000001",
    ]);
    let v = api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": "lhins-hk000001"}),
    );
    assert_code(&v, "ResourceNotFound.InstanceIdNotFound");
    let (_, v) = call_now(
        sim.port,
        "DescribeFirewallRules",
        Some("ap-hongkong"),
        &json!({"InstanceId": "lhins-hk000001"}).to_string(),
    );
    ok(&v);
    let v = api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": "lhins-zzzz9999"}),
    );
    assert_code(&v, "ResourceNotFound.InstanceIdNotFound");
}

#[test]
fn region_header_checks() {
    let sim = Sim::single();
    let body = json!({"InstanceId": INSTANCE}).to_string();
    let (_, v) = call_now(sim.port, "DescribeFirewallRules", None, &body);
    assert_code(&v, "MissingParameter");
    let (_, v) = call_now(sim.port, "DescribeFirewallRules", Some("ap-mars"), &body);
    assert_code(&v, "UnsupportedRegion");
    let (_, v) = call_now(sim.port, "DescribeRegions", None, "{}");
    ok(&v);
    assert_eq!(v["Response"]["TotalCount"], 15);
    let set = v["Response"]["RegionSet"].as_array().expect("regions");
    assert!(set.iter().any(|r| r["Region"] == "ap-hongkong"
        && r["IsChinaMainland"] == false
        && r["RegionState"] == "AVAILABLE"));
}

#[test]
fn body_and_parameter_checks() {
    let sim = Sim::single();
    let (_, v) = call_now(sim.port, "DescribeFirewallRules", Some(REGION), "[1]");
    assert_code(&v, "InvalidParameter");
    let v = api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE, "Bogus": 1}),
    );
    assert_code(&v, "UnknownParameter");
    let v = api(&sim, "DescribeFirewallRules", json!({}));
    assert_code(&v, "MissingParameter");
    let v = api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE, "Offset": -1}),
    );
    assert_code(&v, "InvalidParameterValue.Negative");
    let v = api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE, "Limit": 101}),
    );
    assert_code(&v, "InvalidParameterValue.OutOfRange");
    for bad in [
        json!({"Protocol": "SCTP"}),
        json!({"Protocol": "TCP", "Port": "22-22"}),
        json!({"Protocol": "TCP", "CidrBlock": "1.2.3.4/40"}),
        json!({"Protocol": "TCP", "Action": "REJECT"}),
        json!({"Protocol": "ICMP", "Port": "22"}),
    ] {
        let v = create(&sim, vec![bad.clone()]);
        assert_code(&v, "InvalidParameterValue");
    }
    // A FirewallRuleInfo echoed back (with AppType) is not a FirewallRule.
    let v = create(
        &sim,
        vec![json!({"AppType": "自定义", "Protocol": "TCP", "Port": "22"})],
    );
    assert_code(&v, "UnknownParameter");
    assert_eq!(sim.version(INSTANCE), 1);
}

#[test]
fn create_appends_then_exists() {
    let sim = Sim::single();
    let v = create(
        &sim,
        vec![
            json!({"Protocol": "TCP", "Port": "22", "CidrBlock": "203.0.113.7/32", "FirewallRuleDescription": "knockd"}),
        ],
    );
    ok(&v);
    let rules = sim.rules(INSTANCE);
    assert_eq!(rules.len(), 6);
    assert_eq!(rules[5]["CidrBlock"], "203.0.113.7/32");
    assert_eq!(rules[5]["Action"], "ACCEPT");
    assert_eq!(rules[5]["FirewallRuleDescription"], "knockd");
    assert_eq!(sim.version(INSTANCE), 2);
    // Same identity (Action defaulted vs explicit, other description): already there.
    let v = create(
        &sim,
        vec![
            json!({"Protocol": "TCP", "Port": "22", "CidrBlock": "203.0.113.7/32", "Action": "ACCEPT", "FirewallRuleDescription": "other"}),
        ],
    );
    assert_code(&v, "InvalidParameter.FirewallRulesExist");
    assert_eq!(sim.version(INSTANCE), 2);
    assert_eq!(sim.rules(INSTANCE).len(), 6);
}

#[test]
fn duplicated_in_one_request() {
    let sim = Sim::single();
    let v = create(
        &sim,
        vec![
            rule("22", "203.0.113.7/32"),
            rule("443", "203.0.113.7/32"),
            rule("22", "203.0.113.7/32"),
        ],
    );
    assert_code(&v, "InvalidParameter.FirewallRulesDuplicated");
    assert_eq!(sim.rules(INSTANCE).len(), 5);
    let v = api(
        &sim,
        "DeleteFirewallRules",
        json!({"InstanceId": INSTANCE, "FirewallRules": [rule("22", "0.0.0.0/0"), rule("22", "0.0.0.0/0")]}),
    );
    assert_code(&v, "InvalidParameter.FirewallRulesDuplicated");
    assert_eq!(sim.rules(INSTANCE).len(), 5);
}

#[test]
fn hundred_rule_quota() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--no-default-rules",
        "--foreign-rules",
        "98",
        "--no-rate-limit",
    ]);
    assert_eq!(sim.rules(INSTANCE).len(), 98);
    let v = create(
        &sim,
        vec![
            rule("22", "203.0.113.1/32"),
            rule("22", "203.0.113.2/32"),
            rule("22", "203.0.113.3/32"),
        ],
    );
    assert_code(&v, "LimitExceeded.FirewallRulesLimitExceeded");
    assert_eq!(sim.rules(INSTANCE).len(), 98);
    ok(&create(
        &sim,
        vec![rule("22", "203.0.113.1/32"), rule("22", "203.0.113.2/32")],
    ));
    assert_eq!(sim.rules(INSTANCE).len(), 100);
    let v = create(&sim, vec![rule("22", "203.0.113.3/32")]);
    assert_code(&v, "LimitExceeded.FirewallRulesLimitExceeded");
    let d = api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE, "Limit": 100}),
    );
    assert_eq!(d["Response"]["TotalCount"], 100);
    assert_eq!(
        d["Response"]["FirewallRuleSet"].as_array().map(Vec::len),
        Some(100)
    );
}

#[test]
fn version_mismatch_changes_nothing() {
    let sim = Sim::single();
    let before = sim.rules(INSTANCE);
    let v = api(
        &sim,
        "CreateFirewallRules",
        json!({"InstanceId": INSTANCE, "FirewallVersion": 7, "FirewallRules": [rule("22", "203.0.113.7/32")]}),
    );
    assert_code(&v, "UnsupportedOperation.FirewallVersionMismatch");
    let v = api(
        &sim,
        "DeleteFirewallRules",
        json!({"InstanceId": INSTANCE, "FirewallVersion": 0, "FirewallRules": [rule("22", "0.0.0.0/0")]}),
    );
    assert_code(&v, "UnsupportedOperation.FirewallVersionMismatch");
    assert_eq!(sim.rules(INSTANCE), before);
    assert_eq!(sim.version(INSTANCE), 1);
    let v = api(
        &sim,
        "CreateFirewallRules",
        json!({"InstanceId": INSTANCE, "FirewallVersion": 1, "FirewallRules": [rule("22", "203.0.113.7/32")]}),
    );
    ok(&v);
    assert_eq!(sim.version(INSTANCE), 2);
}

#[test]
fn delete_is_all_or_nothing() {
    let sim = Sim::single();
    ok(&create(
        &sim,
        vec![rule("22", "203.0.113.7/32"), rule("22", "203.0.113.8/32")],
    ));
    let v = api(
        &sim,
        "DeleteFirewallRules",
        json!({"InstanceId": INSTANCE, "FirewallRules": [rule("22", "203.0.113.7/32"), rule("22", "203.0.113.9/32")]}),
    );
    assert_code(&v, "ResourceNotFound.FirewallRulesNotFound");
    let rules = sim.rules(INSTANCE);
    assert!(has_rule(&rules, "22", "203.0.113.7/32"));
    assert_eq!(sim.version(INSTANCE), 2);
    let v = api(
        &sim,
        "DeleteFirewallRules",
        json!({"InstanceId": INSTANCE, "FirewallRules": [rule("22", "203.0.113.7/32"), rule("22", "203.0.113.8/32")]}),
    );
    ok(&v);
    let rules = sim.rules(INSTANCE);
    assert_eq!(rules.len(), 5);
    assert!(!has_rule(&rules, "22", "203.0.113.7/32"));
    assert_eq!(sim.version(INSTANCE), 3);
}

#[test]
fn description_limit_is_64_bytes() {
    let sim = Sim::single();
    let ok64 = format!("{}a", "办".repeat(21)); // 63 + 1 bytes
    let bad65 = format!("{}ab", "办".repeat(21)); // 22 characters, 65 bytes
    let v = create(
        &sim,
        vec![
            json!({"Protocol": "TCP", "Port": "22", "CidrBlock": "203.0.113.7/32", "FirewallRuleDescription": bad65}),
        ],
    );
    assert_code(&v, "InvalidParameterValue.FirewallRuleDescriptionTooLong");
    assert_eq!(sim.rules(INSTANCE).len(), 5);
    let v = create(
        &sim,
        vec![
            json!({"Protocol": "TCP", "Port": "22", "CidrBlock": "203.0.113.7/32", "FirewallRuleDescription": ok64}),
        ],
    );
    ok(&v);
    let v = api(
        &sim,
        "ModifyFirewallRuleDescription",
        json!({"InstanceId": INSTANCE, "FirewallRule": {"Protocol": "TCP", "Port": "22", "CidrBlock": "203.0.113.7/32", "FirewallRuleDescription": "x".repeat(65)}}),
    );
    assert_code(&v, "InvalidParameterValue.FirewallRuleDescriptionTooLong");
}

#[test]
fn modify_description_matches_identity_and_bumps_version() {
    let sim = Sim::single();
    let v = api(
        &sim,
        "ModifyFirewallRuleDescription",
        json!({"InstanceId": INSTANCE, "FirewallRule": {"Protocol": "TCP", "Port": "80", "FirewallRuleDescription": "web"}}),
    );
    ok(&v);
    assert_eq!(sim.rules(INSTANCE)[1]["FirewallRuleDescription"], "web");
    assert_eq!(sim.version(INSTANCE), 2);
    let v = api(
        &sim,
        "ModifyFirewallRuleDescription",
        json!({"InstanceId": INSTANCE, "FirewallRule": {"Protocol": "TCP", "Port": "81", "FirewallRuleDescription": "web"}}),
    );
    assert_code(&v, "ResourceNotFound.FirewallRulesNotFound");
    let v = api(
        &sim,
        "ModifyFirewallRuleDescription",
        json!({"InstanceId": INSTANCE, "FirewallVersion": 1, "FirewallRule": {"Protocol": "TCP", "Port": "80", "FirewallRuleDescription": "old"}}),
    );
    assert_code(&v, "UnsupportedOperation.FirewallVersionMismatch");

    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--modify-description-keeps-version",
    ]);
    let v = api(
        &sim,
        "ModifyFirewallRuleDescription",
        json!({"InstanceId": INSTANCE, "FirewallRule": {"Protocol": "TCP", "Port": "80", "FirewallRuleDescription": "web"}}),
    );
    ok(&v);
    assert_eq!(sim.version(INSTANCE), 1);
}

#[test]
fn modify_rules_replaces_everything() {
    let sim = Sim::single();
    let v = api(
        &sim,
        "ModifyFirewallRules",
        json!({"InstanceId": INSTANCE, "FirewallRules": [rule("22", "203.0.113.7/32"), {"Protocol": "ICMPv6"}]}),
    );
    ok(&v);
    let rules = sim.rules(INSTANCE);
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[1]["Ipv6CidrBlock"], "::/0");
    assert!(rules[1].get("CidrBlock").is_none());
    assert_eq!(sim.version(INSTANCE), 2);
}

#[test]
fn describe_instances_in_region() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--instance",
        "ap-hongkong:lhins-hk000001",
    ]);
    let v = api(&sim, "DescribeInstances", json!({}));
    assert_eq!(v["Response"]["TotalCount"], 1);
    assert_eq!(v["Response"]["InstanceSet"][0]["InstanceId"], INSTANCE);
    assert_eq!(v["Response"]["InstanceSet"][0]["InstanceState"], "RUNNING");
    let v = api(
        &sim,
        "DescribeInstances",
        json!({"InstanceIds": [INSTANCE, "lhins-hk000001"]}),
    );
    assert_eq!(v["Response"]["TotalCount"], 1);
    let v = api(&sim, "DescribeInstances", json!({"InstanceIds": ["bad"]}));
    assert_code(&v, "InvalidParameterValue.InstanceIdMalformed");
}

#[test]
fn clock_offset_shifts_expiry_and_date_header() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--clock-offset", "600"]);
    let body = json!({"InstanceId": INSTANCE}).to_string();
    let r = post_now(sim.port, "DescribeFirewallRules", Some(REGION), &body).expect("answer");
    assert_code(&r.json, "AuthFailure.SignatureExpire");
    let date =
        httpdate::parse_http_date(r.date.as_deref().expect("Date header")).expect("RFC 7231 date");
    let server = date
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs() as i64;
    let skew = server - now();
    assert!((595..=605).contains(&skew), "skew {skew}");
    // A client that corrects for the skew the Date header shows gets through.
    let (_, v) = call(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        server,
        SECRET_ID,
        SECRET_KEY,
    );
    ok(&v);
    assert!((sim.state()["now"].as_i64().expect("now") - now() - 600).abs() <= 5);
}

#[test]
fn no_date_header() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--no-date-header"]);
    let body = json!({"InstanceId": INSTANCE}).to_string();
    let r = post_now(sim.port, "DescribeFirewallRules", Some(REGION), &body).expect("answer");
    ok(&r.json);
    assert!(r.date.is_none());
}

#[test]
fn conflict_after_describe_bumps_the_version() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--conflict-after-describe", "1"]);
    let d = api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE}),
    );
    let seen = d["Response"]["FirewallVersion"].as_u64().expect("version");
    assert_eq!(sim.version(INSTANCE), seen + 1);
    let v = api(
        &sim,
        "CreateFirewallRules",
        json!({"InstanceId": INSTANCE, "FirewallVersion": seen, "FirewallRules": [rule("22", "203.0.113.7/32")]}),
    );
    assert_code(&v, "UnsupportedOperation.FirewallVersionMismatch");
    // Only the first N describes conflict: re-reading and retrying works.
    let d = api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE}),
    );
    let seen = d["Response"]["FirewallVersion"].as_u64().expect("version");
    assert_eq!(sim.version(INSTANCE), seen);
    let v = api(
        &sim,
        "CreateFirewallRules",
        json!({"InstanceId": INSTANCE, "FirewallVersion": seen, "FirewallRules": [rule("22", "203.0.113.7/32")]}),
    );
    ok(&v);
}

#[test]
fn rate_limit_per_action() {
    let sim = Sim::single();
    // 15 calls at once from threads, so that they surely land within one second even on a
    // loaded machine; the rolling window then lets at most 10 through.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(15));
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..15)
        .map(|_| {
            let barrier = std::sync::Arc::clone(&barrier);
            let port = sim.port;
            std::thread::spawn(move || {
                barrier.wait();
                let body = json!({"InstanceId": INSTANCE}).to_string();
                call_now(port, "DescribeFirewallRules", Some(REGION), &body).1
            })
        })
        .collect();
    let answers: Vec<Value> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let within_a_second = started.elapsed() < Duration::from_millis(900);
    let limited = answers
        .iter()
        .filter(|v| code(v) == Some("RequestLimitExceeded"))
        .count() as u64;
    let fine = answers.iter().filter(|v| code(v).is_none()).count() as u64;
    assert_eq!(limited + fine, 15, "{answers:?}");
    if within_a_second {
        assert_eq!(fine, 10, "a 10/s limit");
        assert_eq!(limited, 5);
    }
    assert_eq!(sim.errors("RequestLimitExceeded"), limited);
    // Another action has its own budget.
    let (_, v) = call_now(sim.port, "DescribeRegions", None, "{}");
    ok(&v);
    // The window rolls.
    std::thread::sleep(Duration::from_millis(1100));
    ok(&api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE}),
    ));

    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--no-rate-limit"]);
    for _ in 0..15 {
        ok(&api(
            &sim,
            "DescribeFirewallRules",
            json!({"InstanceId": INSTANCE}),
        ));
    }
}

#[test]
fn injected_failure_changes_nothing_and_counts() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--fail-rate",
        "1",
        "--fail-code",
        "InternalError",
    ]);
    let v = create(&sim, vec![rule("22", "203.0.113.7/32")]);
    assert_code(&v, "InternalError");
    assert_eq!(sim.rules(INSTANCE).len(), 5);
    assert_eq!(sim.version(INSTANCE), 1);
    assert_eq!(sim.errors("InternalError"), 1);
    // Injection comes after authentication: a bad signature is still a bad signature.
    let body = json!({"InstanceId": INSTANCE}).to_string();
    let (_, v) = call(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        now(),
        SECRET_ID,
        "wrong",
    );
    assert_code(&v, "AuthFailure.SignatureFailure");
}

#[test]
fn drop_rate_closes_without_answer() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--drop-rate", "1"]);
    let body = json!({"InstanceId": INSTANCE, "FirewallRules": [rule("22", "203.0.113.7/32")]})
        .to_string();
    assert!(post_now(sim.port, "CreateFirewallRules", Some(REGION), &body).is_err());
    assert_eq!(sim.calls("CreateFirewallRules"), 1);
    assert_eq!(sim.rules(INSTANCE).len(), 5);
}

#[test]
fn drop_after_apply_applies_but_does_not_answer() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--drop-after-apply-rate", "1"]);
    let body = json!({"InstanceId": INSTANCE, "FirewallRules": [rule("22", "203.0.113.7/32")]})
        .to_string();
    assert!(post_now(sim.port, "CreateFirewallRules", Some(REGION), &body).is_err());
    assert!(has_rule(&sim.rules(INSTANCE), "22", "203.0.113.7/32"));
    assert_eq!(sim.version(INSTANCE), 2);
}

#[test]
fn token_is_required_when_configured() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--token", "tok123"]);
    let body = json!({"InstanceId": INSTANCE}).to_string();
    let mut h = signed_headers(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        now(),
        SECRET_ID,
        SECRET_KEY,
    );
    let (_, v) = call_raw(sim.port, &h, body.as_bytes());
    assert_code(&v, "AuthFailure.TokenFailure");
    h.push(("X-TC-Token".into(), "tok123".into()));
    let (_, v) = call_raw(sim.port, &h, body.as_bytes());
    ok(&v);
}

#[test]
fn state_dump_counts_calls() {
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--instance",
        "ap-hongkong:lhins-hk000001",
    ]);
    api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE}),
    );
    api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": "lhins-hk000001"}),
    );
    create(&sim, vec![rule("22", "203.0.113.7/32")]);
    let body = json!({"InstanceId": INSTANCE}).to_string();
    call(
        sim.port,
        "DescribeFirewallRules",
        Some(REGION),
        &body,
        now(),
        SECRET_ID,
        "wrong",
    );
    call_now(sim.port, "DescribeRegions", None, "{}");
    let s = sim.state();
    assert_eq!(s["calls"]["DescribeFirewallRules"], 3);
    assert_eq!(s["calls"]["CreateFirewallRules"], 1);
    assert_eq!(s["calls"]["DescribeRegions"], 1);
    assert_eq!(s["calls_by_instance"][INSTANCE]["DescribeFirewallRules"], 2);
    assert_eq!(
        s["calls_by_instance"]["lhins-hk000001"]["DescribeFirewallRules"],
        1
    );
    assert_eq!(s["calls_by_instance"][INSTANCE]["CreateFirewallRules"], 1);
    assert_eq!(s["errors"]["AuthFailure.SignatureFailure"], 1);
    assert_eq!(s["errors"]["ResourceNotFound.InstanceIdNotFound"], 1);
    assert!(s["now"].is_i64());
    let inst = &s["instances"][0];
    assert_eq!(inst["InstanceId"], INSTANCE);
    assert_eq!(inst["Region"], REGION);
    assert_eq!(inst["FirewallVersion"], 2);
    assert_eq!(inst["Rules"].as_array().map(Vec::len), Some(6));
    assert_eq!(sim.calls("DescribeFirewallRules"), 3);
    // One log line per call, and never the secret key.
    assert!(
        sim.wait_log(
            "CreateFirewallRules lhins-kn0ck001 OK",
            Duration::from_secs(10)
        ),
        "{}",
        sim.log()
    );
    assert!(!sim.log().contains(SECRET_KEY));
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let sim = Sim::single();
    let mut stream = TcpStream::connect(("127.0.0.1", sim.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut wire = Vec::new();
    for _ in 0..2 {
        let body = json!({"InstanceId": INSTANCE}).to_string();
        let headers = signed_headers(
            sim.port,
            "DescribeFirewallRules",
            Some(REGION),
            &body,
            now(),
            SECRET_ID,
            SECRET_KEY,
        );
        wire.extend_from_slice(
            format!(
                "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n",
                sim.port,
                body.len()
            )
            .as_bytes(),
        );
        for (k, v) in &headers {
            wire.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(body.as_bytes());
    }
    // Both requests pipelined in one write; both must be answered on the same connection.
    stream.write_all(&wire).expect("write");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while String::from_utf8_lossy(&got)
        .matches("\"FirewallVersion\"")
        .count()
        < 2
    {
        let n = stream.read(&mut chunk).expect("read");
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&got)
            .matches("HTTP/1.1 200 OK")
            .count(),
        2
    );
}

#[test]
fn rules_file_and_startup_errors() {
    let dir = std::env::temp_dir().join(format!("lighthouse-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let good = dir.join("good.json");
    std::fs::write(&good, json!({INSTANCE: [{"Protocol": "TCP", "Port": "22", "CidrBlock": "1.2.3.4/32", "Action": "ACCEPT", "FirewallRuleDescription": "from file"}]}).to_string()).expect("write");
    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--foreign-rules",
        "2",
        "--rules",
        good.to_str().expect("utf-8 path"),
    ]);
    let rules = sim.rules(INSTANCE);
    assert_eq!(rules.len(), 8);
    assert_eq!(rules[5]["FirewallRuleDescription"], "office-1");
    assert_eq!(rules[7]["CidrBlock"], "1.2.3.4/32");
    drop(sim);

    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        json!({INSTANCE: [{"Protocol": "TCP", "Port": "99999"}]}).to_string(),
    )
    .expect("write");
    let credential = format!("{SECRET_ID}:{SECRET_KEY}");
    let run = |args: &[&str]| {
        std::process::Command::new(common::sim::binary())
            .args(["--credential", &credential])
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&[
        "--instance",
        INSTANCE_ARG,
        "--rules",
        bad.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidParameterValue"));
    assert_eq!(
        run(&["--instance", INSTANCE_ARG, "--bogus"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["--instance", INSTANCE_ARG, "--listen", "0.0.0.0:0"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(&[]).status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn latency_and_random_fault_codes() {
    let sim = Sim::start(&["--instance", INSTANCE_ARG, "--latency-ms", "300"]);
    let t = std::time::Instant::now();
    ok(&api(
        &sim,
        "DescribeFirewallRules",
        json!({"InstanceId": INSTANCE}),
    ));
    assert!(t.elapsed() >= Duration::from_millis(300));

    let sim = Sim::start(&[
        "--instance",
        INSTANCE_ARG,
        "--no-rate-limit",
        "--seed",
        "7",
        "--fail-rate",
        "0.5",
        "--fail-code",
        "UnsupportedOperation.FirewallBusy",
        "--fail-code",
        "RequestLimitExceeded",
    ]);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let v = api(
            &sim,
            "DescribeFirewallRules",
            json!({"InstanceId": INSTANCE}),
        );
        seen.insert(code(&v).unwrap_or("OK").to_string());
    }
    let want: std::collections::BTreeSet<String> = [
        "OK",
        "UnsupportedOperation.FirewallBusy",
        "RequestLimitExceeded",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(seen, want);
}
