//! Issue 14 (a knock in one API round trip) and the writer's deadline, busy and exists rules
//! (issues 11 item 8, 13 items 2, 3, 9), end to end: the real `knockd` against lighthouse-sim,
//! counting the simulator's calls per instance and action.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::knockd::*;
use common::sim::{self, assert_no_duplicate_rules, Sim};
use common::Setup;
use serde_json::{json, Value};

const A: &str = "lhins-kn0ck001";
const B: &str = "lhins-kn0ck002";
const C: &str = "lhins-kn0ck003";

/// `calls_by_instance[instance][action]`.
fn calls(state: &Value, instance: &str, action: &str) -> u64 {
    state["calls_by_instance"][instance][action]
        .as_u64()
        .unwrap_or(0)
}

/// Calls per instance and action between two state dumps.
fn delta(before: &Value, after: &Value, instance: &str, action: &str) -> u64 {
    calls(after, instance, action) - calls(before, instance, action)
}

const ACTIONS: [&str; 4] = [
    "DescribeFirewallRules",
    "CreateFirewallRules",
    "DeleteFirewallRules",
    "ModifyFirewallRuleDescription",
];

fn total_delta(before: &Value, after: &Value, instance: &str) -> u64 {
    ACTIONS
        .iter()
        .map(|a| delta(before, after, instance, a))
        .sum()
}

/// Every rule identity appears once; returns how many rules name `addr`.
fn assert_no_duplicates(sim: &Sim, instance: &str, addr: &str) -> usize {
    let rules = sim.rules(instance);
    assert_no_duplicate_rules(instance, &rules);
    rules
        .iter()
        .filter(|r| r["CidrBlock"].as_str() == Some(addr))
        .count()
}

/// knockd for three instances in two regions, against a simulator without rate limits.
fn three_instances() -> Setup {
    Setup::new("one-rt")
        .instances(
            &[
                "ap-guangzhou:lhins-kn0ck001",
                "ap-hongkong:lhins-kn0ck002",
                "ap-guangzhou:lhins-kn0ck003",
            ],
            "lhins-kn0ck001,ap-hongkong:lhins-kn0ck002,lhins-kn0ck003",
        )
        // Rate limits are tested in tests/fleet.rs: here they would only add retries to the counts.
        .sim_args(&["--no-rate-limit"])
}

#[test]
fn a_new_address_costs_one_api_call_per_instance_when_the_writer_remembers_the_firewall() {
    let (sim, k) = three_instances().start();
    // The first knock after start: no memory yet, so Describe + Create.
    let s0 = sim.state();
    assert_eq!(knock_curl(&k, "203.0.113.1", "first"), SUCCESS);
    let s1 = sim.state();
    for inst in [A, B, C] {
        assert_eq!(delta(&s0, &s1, inst, "DescribeFirewallRules"), 1, "{inst}");
        assert_eq!(delta(&s0, &s1, inst, "CreateFirewallRules"), 1, "{inst}");
    }
    // Every later new address: the Create alone, with the remembered FirewallVersion.
    let mut before = s1;
    for (n, addr) in ["203.0.113.2", "203.0.113.3", "203.0.113.4"]
        .iter()
        .enumerate()
    {
        assert_eq!(knock_curl(&k, addr, &format!("new{n}")), SUCCESS);
        let after = sim.state();
        for inst in [A, B, C] {
            assert_eq!(
                total_delta(&before, &after, inst),
                1,
                "{inst}, knock {addr}: {}",
                after["calls_by_instance"]
            );
            assert_eq!(delta(&before, &after, inst, "CreateFirewallRules"), 1);
            assert_eq!(
                assert_no_duplicates(&sim, inst, addr),
                2,
                "{inst}: TCP + UDP"
            );
        }
        before = after;
    }
    // A repeat knock still proves presence with one Describe and writes nothing.
    assert_eq!(knock_curl(&k, "203.0.113.3", "new1"), SUCCESS);
    let after = sim.state();
    for inst in [A, B, C] {
        assert_eq!(total_delta(&before, &after, inst), 1, "{inst}");
        assert_eq!(delta(&before, &after, inst, "DescribeFirewallRules"), 1);
    }
    assert!(
        k.wait_log("memory,", Duration::from_secs(10)),
        "{}",
        k.log()
    );
}

/// A foreign write (no FirewallVersion, as a console edit or a script does) between knocks.
fn foreign_create(sim: &Sim, region: &str, instance: &str, rule: Value) {
    let body = json!({"InstanceId": instance, "FirewallRules": [rule]}).to_string();
    let (_, v) = sim::call_now(sim.port, "CreateFirewallRules", Some(region), &body);
    assert_eq!(sim::code(&v), None, "{v}");
}

#[test]
fn a_foreign_write_in_between_costs_a_describe_and_never_a_duplicate() {
    let (sim, k) = three_instances().start();
    assert_eq!(knock_curl(&k, "203.0.113.1", "first"), SUCCESS);
    // Another writer adds an unrelated rule on A, and on B the very rule the next knock
    // would create, under its own description.
    foreign_create(
        &sim,
        "ap-guangzhou",
        A,
        json!({"Protocol": "TCP", "Port": "8080", "CidrBlock": "192.0.2.1", "Action": "ACCEPT",
            "FirewallRuleDescription": "ops temporary"}),
    );
    foreign_create(
        &sim,
        "ap-hongkong",
        B,
        json!({"Protocol": "TCP", "Port": "22,443", "CidrBlock": "203.0.113.9", "Action": "ACCEPT",
            "FirewallRuleDescription": "office"}),
    );
    let before = sim.state();
    assert_eq!(knock_curl(&k, "203.0.113.9", "second"), SUCCESS);
    let after = sim.state();
    // A: the remembered version is stale: Create refused, Describe, Create again.
    assert_eq!(delta(&before, &after, A, "CreateFirewallRules"), 2);
    assert_eq!(delta(&before, &after, A, "DescribeFirewallRules"), 1);
    assert_eq!(assert_no_duplicates(&sim, A, "203.0.113.9"), 2);
    // B: same fall-back; the foreign TCP rule already lets the address in, so only UDP is
    // added, and the foreign rule keeps its description.
    assert_eq!(delta(&before, &after, B, "DescribeFirewallRules"), 1);
    assert_eq!(assert_no_duplicates(&sim, B, "203.0.113.9"), 2);
    let office: Vec<Value> = sim
        .rules(B)
        .into_iter()
        .filter(|r| r["CidrBlock"] == "203.0.113.9" && r["Protocol"] == "TCP")
        .collect();
    assert_eq!(office.len(), 1);
    assert_eq!(office[0]["FirewallRuleDescription"], "office");
    // C: nothing else wrote there: one call.
    assert_eq!(total_delta(&before, &after, C), 1);
    // The next knock plans from the memory the fall-back's Describe renewed: one call again.
    let before = sim.state();
    assert_eq!(knock_curl(&k, "203.0.113.10", "third"), SUCCESS);
    let after = sim.state();
    for inst in [A, B, C] {
        assert_eq!(total_delta(&before, &after, inst), 1, "{inst}");
    }
    let rules = sim.rules(A);
    assert!(rules
        .iter()
        .any(|r| r["FirewallRuleDescription"] == "ops temporary"));
}

/// A simulator whose instance A starts with two owned rules of 198.51.100.9 about to expire,
/// so a knock from it refreshes both (two ModifyFirewallRuleDescription calls).
fn sim_with_expiring_rules(extra: &[&str]) -> Sim {
    Sim::with_rules(
        &json!([
            {"Protocol": "TCP", "Port": "22,443", "CidrBlock": "198.51.100.9", "Action": "ACCEPT",
             "FirewallRuleDescription": "Knockd-phone until 2000-01-01 00:00Z"},
            {"Protocol": "UDP", "Port": "51820", "CidrBlock": "198.51.100.9", "Action": "ACCEPT",
             "FirewallRuleDescription": "Knockd-phone until 2000-01-01 00:00Z"}
        ]),
        extra,
    )
}

fn refresh_then_new_address(sim: &Sim) -> (Knockd, u64) {
    let k = Setup::new("modify").knockd(sim);
    assert_eq!(knock_curl(&k, "198.51.100.9", "phone"), SUCCESS);
    for r in sim.rules(A) {
        if r["CidrBlock"] == "198.51.100.9" {
            let d = r["FirewallRuleDescription"].as_str().expect("desc");
            assert!(!d.contains("2000-01-01"), "refreshed: {d}");
        }
    }
    assert_eq!(assert_no_duplicates(sim, A, "198.51.100.9"), 2);
    let before = sim.state();
    assert_eq!(knock_curl(&k, "203.0.113.5", "laptop"), SUCCESS);
    let after = sim.state();
    assert_eq!(assert_no_duplicates(sim, A, "203.0.113.5"), 2);
    (k, total_delta(&before, &after, A))
}

#[test]
fn modify_that_keeps_the_version_is_learned_by_the_writer_and_knocks_still_succeed() {
    let sim = sim_with_expiring_rules(&["--modify-description-keeps-version"]);
    let (k, new_calls) = refresh_then_new_address(&sim);
    // The second Modify was sent assuming a bump, was refused, and the Describe after it
    // showed the version unchanged: learned, exactly, for this writer.
    assert!(
        k.wait_log(
            "learned instance=lhins-kn0ck001: ModifyFirewallRuleDescription leaves FirewallVersion unchanged",
            Duration::from_secs(10)
        ),
        "{}",
        k.log()
    );
    // With the bump known, the memory survived the refresh: the new address is one Create.
    assert_eq!(new_calls, 1, "{}", sim.state()["calls_by_instance"]);
    // One refusal in all: the one that taught it.
    assert_eq!(
        sim.errors("UnsupportedOperation.FirewallVersionMismatch"),
        1
    );
}

#[test]
fn modify_that_bumps_the_version_makes_the_writer_describe_before_its_next_plan() {
    let sim = sim_with_expiring_rules(&[]);
    let (k, new_calls) = refresh_then_new_address(&sim);
    assert!(!k.log().contains("learned instance="), "{}", k.log());
    // The bump of a Modify is only assumed, so the memory was dropped: Describe + Create.
    assert_eq!(new_calls, 2, "{}", sim.state()["calls_by_instance"]);
    assert_eq!(
        sim.errors("UnsupportedOperation.FirewallVersionMismatch"),
        0
    );
}

#[test]
fn a_knock_answered_failure_at_its_deadline_is_never_granted_later() {
    // Every API answer takes 1.5 s; knocks give up after 1 s.
    let (sim, k) = Setup::new("deadline")
        .sim_args(&["--latency-ms", "1500"])
        .set("KNOCK_TIMEOUT", "1s")
        .start();
    let first = thread::spawn({
        let port = k.port;
        move || knock_port(port, "203.0.113.21")
    });
    thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    assert_eq!(knock_port(k.port, "203.0.113.22"), FAILURE);
    assert!(t.elapsed() < Duration::from_millis(1500));
    assert_eq!(first.join().expect("first knock"), FAILURE);
    // Long enough for the Describe in flight and a Create after it to have landed.
    thread::sleep(Duration::from_millis(4000));
    for addr in ["203.0.113.21", "203.0.113.22"] {
        assert_eq!(
            assert_no_duplicates(&sim, A, addr),
            0,
            "{addr} was answered failure and must not be let in"
        );
    }
    assert_eq!(sim.calls("CreateFirewallRules"), 0);
    assert!(
        k.wait_log("expired instance=lhins-kn0ck001", Duration::from_secs(10)),
        "{}",
        k.log()
    );
}

/// A knock through the fixture's proxy convention, answered body.
fn knock_port(port: u16, client: &str) -> String {
    let (status, body) = curl(&[
        "-H",
        &format!("Referer: {REFERER}"),
        "-H",
        "Location: deadline",
        "-H",
        &format!("X-Forwarded-For: {client}"),
        &format!("http://127.0.0.1:{port}/favico.ico"),
    ]);
    assert_eq!(status, 500);
    body
}

#[test]
fn a_busy_firewall_is_waited_for_and_re_planned_within_the_knock_deadline() {
    // Half of all calls answer FirewallBusy; the writer waits and re-plans up to the deadline.
    let (sim, k) = three_instances()
        .sim_args(&[
            "--fail-rate",
            "0.5",
            "--fail-code",
            "UnsupportedOperation.FirewallBusy",
            "--seed",
            "1413",
        ])
        .start();
    for (n, addr) in ["203.0.113.31", "203.0.113.32", "203.0.113.33"]
        .iter()
        .enumerate()
    {
        let body = knock_curl(&k, addr, &format!("busy{n}"));
        let log = k.log();
        let line = log.lines().rfind(|l| l.contains("knock addr="));
        assert_eq!(body, SUCCESS, "{line:?}\n{log}");
        for inst in [A, B, C] {
            assert_eq!(assert_no_duplicates(&sim, inst, addr), 2);
        }
    }
    assert!(sim.errors("UnsupportedOperation.FirewallBusy") > 0);
    assert!(
        k.wait_log("firewall-busy instance=", Duration::from_secs(10)),
        "{}",
        k.log()
    );
}

#[test]
fn a_firewall_busy_for_eight_seconds_delays_the_knock_but_does_not_fail_it() {
    // Today's general budget (six attempts, about 3-5 s) would give up; the busy budget lasts
    // until the knock's deadline (20 s).
    let (sim, k) = three_instances()
        .sim_args(&["--busy-for-ms", "8000"])
        .start();
    let t = Instant::now();
    assert_eq!(
        knock_curl(&k, "203.0.113.41", "patient"),
        SUCCESS,
        "{}",
        k.log()
    );
    eprintln!("FIGURES busy 8 s: knock answered after {:?}", t.elapsed());
    for inst in [A, B, C] {
        assert_eq!(assert_no_duplicates(&sim, inst, "203.0.113.41"), 2);
    }
    // `--prune` waits longer still.
    let out = run(&k.config, &["--prune"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn firewall_rules_exist_after_a_fresh_describe_counts_as_present() {
    // The API holds TCP "22,443" for the address; knockd is configured "443,22" and compares
    // text, so it creates, and the API (comparing port sets) answers FirewallRulesExist.
    let sim = Sim::with_rules(
        &json!([
            {"Protocol": "TCP", "Port": "22,443", "CidrBlock": "203.0.113.51", "Action": "ACCEPT",
             "FirewallRuleDescription": "office"}]),
        &["--port-identity-by-set"],
    );
    let k = Setup::new("exists")
        .set("FW_PERMIT_PORTS_TCP", "443,22")
        .knockd(&sim);
    assert_eq!(
        knock_curl(&k, "203.0.113.51", "office"),
        SUCCESS,
        "{}",
        k.log()
    );
    // TCP present (the office rule), UDP created: no sixfold re-plan, no failure.
    assert_eq!(assert_no_duplicates(&sim, A, "203.0.113.51"), 2);
    assert!(sim.errors("InvalidParameter.FirewallRulesExist") <= 2);
}

#[test]
fn an_ipv6_knock_where_ipv6_rules_are_unsupported_fails_with_a_clear_log_line() {
    let (_sim, k) = Setup::new("v6")
        .sim_args(&["--ipv6-unsupported-regions", "ap-guangzhou"])
        .start();
    assert_eq!(knock_curl(&k, "2001:db8::7", "v6"), FAILURE);
    // The log is read as it comes: wait for the line rather than take it at once.
    assert!(
        k.wait_log(
            "IPv6 rules are not supported for this instance or region",
            Duration::from_secs(10)
        ),
        "{}",
        k.log()
    );
    let log = k.log();
    assert!(log.contains("ipv6-unsupported"), "{log}");
    // IPv4 knocks are unaffected.
    assert_eq!(knock_curl(&k, "203.0.113.61", "v4"), SUCCESS);
}

#[test]
fn rules_written_after_the_knock_answered_failure_are_withdrawn() {
    // Describe (0.7 s) ends inside the 1 s deadline, so the Create is sent; its answer comes
    // at 1.4 s, after the knock was answered failure.
    let (sim, k) = Setup::new("late")
        .sim_args(&["--latency-ms", "700"])
        .set("KNOCK_TIMEOUT", "1s")
        .start();
    assert_eq!(knock_port(k.port, "203.0.113.71"), FAILURE);
    assert!(
        k.wait_log("withdrawn instance=lhins-kn0ck001", Duration::from_secs(10)),
        "{}",
        k.log()
    );
    assert_eq!(sim.calls("CreateFirewallRules"), 1);
    assert_eq!(assert_no_duplicates(&sim, A, "203.0.113.71"), 0);
    assert!(
        k.wait_log("rules=2", Duration::from_secs(10)),
        "{}",
        k.log()
    );
}

#[test]
fn ipv6_rules_are_refreshed_and_pruned_by_their_ipv6_cidr_block() {
    // An owned IPv6 rule about to expire (refreshed by a knock) and an expired one (pruned).
    let sim = Sim::with_rules(
        &json!([
            {"Protocol": "TCP", "Port": "22,443", "Ipv6CidrBlock": "2001:db8::7", "Action": "ACCEPT",
             "FirewallRuleDescription": "Knockd-v6 until 2000-01-01 00:00Z"},
            {"Protocol": "UDP", "Port": "51820", "Ipv6CidrBlock": "2001:db8::7", "Action": "ACCEPT",
             "FirewallRuleDescription": "Knockd-v6 until 2000-01-01 00:00Z"},
            {"Protocol": "TCP", "Port": "22,443", "Ipv6CidrBlock": "2001:db8::8", "Action": "ACCEPT",
             "FirewallRuleDescription": "Knockd-old until 2000-01-01 00:00Z"}
        ]),
        &[],
    );
    let k = Setup::new("v6-refresh").knockd(&sim);
    let before = sim.rules(A).len();
    assert_eq!(knock_curl(&k, "2001:db8::7", "v6"), SUCCESS, "{}", k.log());
    let rules = sim.rules(A);
    let mine: Vec<&Value> = rules
        .iter()
        .filter(|r| r["Ipv6CidrBlock"] == "2001:db8::7")
        .collect();
    assert_eq!(mine.len(), 2, "{rules:#?}");
    for r in &mine {
        let d = r["FirewallRuleDescription"].as_str().expect("desc");
        assert!(
            d.starts_with("Knockd-v6 until ") && !d.contains("2000"),
            "{d}"
        );
    }
    // The expired one went with the same plan (named by Ipv6CidrBlock), nothing was added.
    assert!(!rules.iter().any(|r| r["Ipv6CidrBlock"] == "2001:db8::8"));
    assert_eq!(rules.len(), before - 1);
    assert_eq!(sim.calls("CreateFirewallRules"), 0);
    assert_eq!(sim.errors("ResourceNotFound.FirewallRulesNotFound"), 0);
}
