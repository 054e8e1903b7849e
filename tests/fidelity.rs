//! Fidelity to the real Lighthouse API (issue 13), end to end: the real knockd against the
//! strict lighthouse-sim on loopback. Mixed port settings, rules identified by meaning, DROP
//! rules above knockd's, legacy rules under a custom prefix, least-privilege `--check`, and
//! temporary credentials. The contract: docs/lighthouse-api.md.

mod common;

use std::process::Output;
use std::time::Duration;

use common::knockd::*;
use common::show;
use common::sim::{rules_for, Sim};
use common::Setup;
use knockd::clock;
use serde_json::{json, Value};

const A: &str = "lhins-kn0ck001";
const DAY: i64 = 86_400;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn owned(label: &str, expires: i64) -> String {
    format!("Knockd-{label} until {}Z", clock::utc_minute(expires))
}

fn rule(proto: &str, port: &str, cidr: &str, action: &str, desc: &str) -> Value {
    json!({"Protocol": proto, "Port": port, "CidrBlock": cidr, "Action": action,
           "FirewallRuleDescription": desc})
}

fn writes(sim: &Sim) -> u64 {
    [
        "CreateFirewallRules",
        "DeleteFirewallRules",
        "ModifyFirewallRuleDescription",
        "ModifyFirewallRules",
    ]
    .iter()
    .map(|a| sim.calls(a))
    .sum()
}

// Item 1: docs/lighthouse-api.md#port-grammar.
#[test]
fn a_mixed_port_setting_is_written_as_one_rule_per_range_plus_one_for_single_ports() {
    let sim = Sim::with_rules(&json!([]), &[]);
    let ports = [("FW_PERMIT_PORTS_TCP", "22,8000-8100,443,9000-9010")];

    let cfg = Setup::new("mixed-check-config").with(&ports);
    let out = run(&cfg.write_config(&sim), &["--check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let line = stdout(&out)
        .lines()
        .find(|l| l.starts_with("FW_PERMIT_PORTS_TCP = "))
        .map(str::to_string)
        .expect("FW_PERMIT_PORTS_TCP line");
    assert!(
        line.contains("written as 3 rules per address")
            && line.contains("'22,443' + '8000-8100' + '9000-9010'"),
        "{line}"
    );

    // The strict simulator refuses a list mixed with a range: the knock succeeds only if
    // knockd splits it.
    let k = Setup::new("mixed-knock").with(&ports).knockd(&sim);
    assert_eq!(knock_curl(&k, "203.0.113.7", "mixed"), SUCCESS);
    let rules = sim.rules(A);
    let mine = rules_for(&rules, "203.0.113.7");
    let mut got: Vec<(String, String)> = mine
        .iter()
        .map(|r| {
            (
                r["Protocol"].as_str().unwrap_or("").to_string(),
                r["Port"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("TCP".to_string(), "22,443".to_string()),
            ("TCP".to_string(), "8000-8100".to_string()),
            ("TCP".to_string(), "9000-9010".to_string()),
            ("UDP".to_string(), "51820".to_string()),
        ]
    );
    assert_eq!(
        sim.calls("CreateFirewallRules"),
        1,
        "one Create for all four"
    );
    // Knocking again at once writes nothing: every rule is found again.
    assert_eq!(knock_curl(&k, "203.0.113.7", "mixed"), SUCCESS);
    assert_eq!(sim.rules(A).len(), rules.len());
    assert_eq!(writes(&sim), 1);
}

// Item 2: docs/lighthouse-api.md#rule-identity.
#[test]
fn a_reordered_port_list_refreshes_the_rule_the_api_holds_instead_of_creating_it_again() {
    let soon = clock::now() + 3600;
    let sim = Sim::with_rules(
        &json!([
            rule(
                "TCP",
                "443,22",
                "203.0.113.8",
                "ACCEPT",
                &owned("home", soon)
            ),
            rule(
                "UDP",
                "51820",
                "203.0.113.8",
                "ACCEPT",
                &owned("home", soon)
            ),
        ]),
        &[],
    );
    let k = Setup::new("reorder")
        .set("FW_PERMIT_PORTS_TCP", "22,443")
        .knockd(&sim);
    let before = sim.rules(A).len();
    assert_eq!(knock_curl(&k, "203.0.113.8", "home"), SUCCESS);
    assert_eq!(sim.rules(A).len(), before, "nothing added");
    assert_eq!(sim.calls("CreateFirewallRules"), 0);
    assert_eq!(sim.errors("InvalidParameter.FirewallRulesExist"), 0);
    assert_eq!(sim.calls("ModifyFirewallRuleDescription"), 2);
    let rules = sim.rules(A);
    let tcp = rules_for(&rules, "203.0.113.8")
        .into_iter()
        .find(|r| r["Protocol"] == "TCP")
        .cloned()
        .expect("tcp rule");
    assert_eq!(tcp["Port"], "443,22", "named as the API holds it");
    let desc = tcp["FirewallRuleDescription"].as_str().expect("desc");
    assert!(
        !desc.contains(&clock::utc_minute(soon)),
        "refreshed: {desc}"
    );
}

// Item 2: a console preset "全部TCP" (1-65535) or ALL already lets everyone in.
#[test]
fn a_foreign_accept_rule_for_all_ports_counts_as_access_and_costs_no_quota() {
    for port in ["1-65535", "ALL"] {
        let sim = Sim::with_rules(
            &json!([rule("TCP", port, "0.0.0.0/0", "ACCEPT", "全部TCP")]),
            &[],
        );
        let k = Setup::new("all-tcp")
            .with(&[
                ("FW_PERMIT_PORTS_TCP", "22,443"),
                ("FW_PERMIT_PORTS_UDP", ""),
            ])
            .knockd(&sim);
        let before = sim.rules(A).len();
        assert_eq!(knock_curl(&k, "203.0.113.9", "x"), SUCCESS, "{port}");
        assert_eq!(sim.rules(A).len(), before, "{port}: no redundant rule");
        assert_eq!(writes(&sim), 0, "{port}");
    }
}

// Item 4: docs/lighthouse-api.md#rule-order.
#[test]
fn check_reports_a_drop_rule_that_covers_knockd_ports() {
    let sim = Sim::with_rules(
        &json!([
            rule("ALL", "ALL", "0.0.0.0/0", "DROP", "deny everything else"),
            rule("TCP", "3306", "198.51.100.0/24", "DROP", "no mysql"),
        ]),
        &[],
    );
    let out = run(&Setup::new("drop-check").write_config(&sim), &["--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    let warns: Vec<&str> = text.lines().filter(|l| l.contains("DROP rule")).collect();
    assert_eq!(warns.len(), 1, "{text}");
    assert!(warns[0].starts_with("warn  "), "{text}");
    assert!(warns[0].contains("deny everything else"), "{text}");
    assert!(text.lines().any(|l| l == "check passed"), "{text}");
}

// Item 6: docs/lighthouse-api.md#legacy-format.
#[test]
fn legacy_rules_under_knockd_are_owned_with_a_custom_prefix() {
    let now = clock::now();
    let day = |t: i64| clock::utc_date(t).replace('-', "");
    let sim = Sim::with_rules(
        &json!([
            rule(
                "TCP",
                "22,443",
                "198.51.100.1",
                "ACCEPT",
                &format!("Knockd-old@@{}", day(now - 40 * DAY))
            ),
            rule(
                "TCP",
                "22,443",
                "198.51.100.2",
                "ACCEPT",
                &format!("Knockd-new@@{}", day(now - 2 * DAY))
            ),
            rule(
                "TCP",
                "22,443",
                "198.51.100.3",
                "ACCEPT",
                &owned("current-format", now - DAY)
            ),
            rule("TCP", "22,443", "198.51.100.4", "ACCEPT", "Knockd-garbage"),
        ]),
        &[],
    );
    let cfg = Setup::new("legacy")
        .set("FW_RULE_NAME_PREFIX", "Acme-")
        .write_config(&sim);
    let out = run(&cfg, &["--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("note  ") && l.contains("2 legacy rule(s)")),
        "{text}"
    );
    assert!(text.contains("(2 by knockd)"), "{text}");

    // --prune removes the expired legacy rule; the others are not knockd's under Acme-.
    let out = run(&cfg, &["--prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let left: Vec<String> = sim
        .rules(A)
        .iter()
        .filter_map(|r| r["CidrBlock"].as_str().map(str::to_string))
        .collect();
    assert!(!left.contains(&"198.51.100.1".to_string()), "{left:?}");
    for kept in ["198.51.100.2", "198.51.100.3", "198.51.100.4"] {
        assert!(left.contains(&kept.to_string()), "{kept}: {left:?}");
    }

    // A knock from a legacy rule's address rewrites it under the configured prefix.
    let k = Setup::new("legacy-knock")
        .with(&[
            ("FW_RULE_NAME_PREFIX", "Acme-"),
            ("FW_PERMIT_PORTS_UDP", ""),
        ])
        .knockd(&sim);
    assert_eq!(knock_curl(&k, "198.51.100.2", "new"), SUCCESS);
    let rules = sim.rules(A);
    let mine = rules_for(&rules, "198.51.100.2");
    assert_eq!(mine.len(), 1);
    let d = mine[0]["FirewallRuleDescription"].as_str().expect("desc");
    assert!(d.starts_with("Acme-new until "), "{d}");
    assert_eq!(sim.calls("CreateFirewallRules"), 0);
}

// Item 7: docs/lighthouse-api.md#cam-permissions.
#[test]
fn check_names_the_denied_action_and_the_instance_resource() {
    let sim = Sim::with_rules(
        &json!([]),
        &[
            "--fail-rate",
            "1",
            "--fail-code",
            "UnauthorizedOperation.NoPermission",
        ],
    );
    let out = run(&Setup::new("denied").write_config(&sim), &["--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = stdout(&out);
    let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 1, "{text}");
    assert!(
        fails[0].contains("lighthouse:DescribeFirewallRules")
            && fails[0]
                .contains("qcs::lighthouse:ap-guangzhou:uin/<ACCOUNT>:instance/lhins-kn0ck001"),
        "{text}"
    );
    // The key itself was accepted; the optional actions are notes, not failures.
    assert!(text.contains("ok    credentials accepted"), "{text}");
    for action in ["DescribeRegions", "DescribeInstances"] {
        assert!(
            text.lines().any(|l| l.starts_with("note  ")
                && l.contains(&format!("lighthouse:{action} is not granted"))),
            "{action}: {text}"
        );
    }
    assert_eq!(writes(&sim), 0);
}

// Item 7: only the firewall actions granted, on the instance: --check still passes.
#[test]
fn check_passes_with_only_the_firewall_actions_granted() {
    let sim = Sim::with_rules(
        &json!([]),
        &["--deny-actions", "DescribeRegions,DescribeInstances"],
    );
    let out = run(
        &Setup::new("least-privilege").write_config(&sim),
        &["--check"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.lines().any(|l| l == "check passed"), "{text}");
    assert!(text.contains("ok    credentials accepted"), "{text}");
    assert!(text.contains("ok    clock within"), "{text}");
    assert!(text.contains(&format!("ok    instance {A}")), "{text}");
    let notes = text.lines().filter(|l| l.starts_with("note  ")).count();
    assert_eq!(notes, 2, "{text}");
    assert_eq!(sim.calls("DescribeFirewallRules"), 1);
}

// Item 8: docs/lighthouse-api.md#temporary-credentials.
#[test]
fn check_notes_that_a_token_expires() {
    let sim = Sim::with_rules(&json!([]), &["--token", "tok3n-for-check"]);
    let out = run(
        &Setup::new("token")
            .set("TENCENT_CLOUD_TOKEN", "tok3n-for-check")
            .write_config(&sim),
        &["--check"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.starts_with("note  ")
            && l.contains("TENCENT_CLOUD_TOKEN")
            && l.contains("permanent key pair")),
        "{text}"
    );
    assert!(
        !text.contains("tok3n-for-check"),
        "the token is never printed"
    );
}

// Item 7: only an answer given after authentication proves the key.
#[test]
fn check_does_not_claim_the_key_works_when_no_answer_proves_it() {
    let sim = Sim::with_rules(
        &json!([]),
        &["--fail-rate", "1", "--fail-code", "FailedOperation"],
    );
    let out = run(&Setup::new("unproved").write_config(&sim), &["--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = stdout(&out);
    assert!(!text.contains("credentials accepted"), "{text}");
    let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 1, "{text}");
    assert!(
        fails[0].contains(A) && fails[0].contains("FailedOperation"),
        "{text}"
    );
}

// Item 2, the other reading of open question 2: a server that identifies rules by port set.
#[test]
fn a_reordered_port_list_is_the_same_rule_on_a_server_that_compares_sets() {
    let soon = clock::now() + 3600;
    let sim = Sim::with_rules(
        &json!([rule(
            "TCP",
            "443,22",
            "203.0.113.8",
            "ACCEPT",
            &owned("home", soon)
        )]),
        &["--port-identity-by-set"],
    );
    let k = Setup::new("reorder-set")
        .with(&[
            ("FW_PERMIT_PORTS_TCP", "22,443"),
            ("FW_PERMIT_PORTS_UDP", ""),
        ])
        .knockd(&sim);
    let before = sim.rules(A).len();
    assert_eq!(knock_curl(&k, "203.0.113.8", "home"), SUCCESS);
    assert_eq!(sim.rules(A).len(), before);
    assert_eq!(sim.calls("CreateFirewallRules"), 0);
    assert_eq!(sim.calls("ModifyFirewallRuleDescription"), 1);
}

// Item 4: a knock that finds a foreign DROP rule covering its address and ports logs a warning
// naming it (the knock itself still writes its ACCEPT rules).
#[test]
fn a_knock_under_a_covering_drop_rule_logs_a_warning_naming_it() {
    let sim = Sim::with_rules(
        &json!([rule(
            "TCP",
            "22",
            "203.0.113.0/24",
            "DROP",
            "block-office-ssh"
        )]),
        &[],
    );
    let k = Setup::new("drop-knock")
        .with(&[
            ("FW_PERMIT_PORTS_TCP", "22,443"),
            ("FW_PERMIT_PORTS_UDP", ""),
        ])
        .knockd(&sim);
    assert_eq!(knock_curl(&k, "203.0.113.9", "x"), SUCCESS);
    assert!(
        k.wait_log(
            "drop-rule protocol=TCP port=22 address=203.0.113.0/24",
            Duration::from_secs(5)
        ),
        "{}",
        k.log()
    );
    assert!(k.log().contains("block-office-ssh"), "{}", k.log());
    // A DROP that covers another address is not reported.
    assert_eq!(knock_curl(&k, "198.51.100.9", "y"), SUCCESS);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(k.log().matches("drop-rule ").count(), 1, "{}", k.log());
}

/// The API calls of each write action and of DescribeFirewallRules.
fn call_counts(sim: &Sim) -> String {
    [
        "DescribeFirewallRules",
        "CreateFirewallRules",
        "DeleteFirewallRules",
    ]
    .iter()
    .map(|a| format!("{a}={}", sim.calls(a)))
    .collect::<Vec<_>>()
    .join(" ")
}

// A CAM denial while serving cannot succeed on a retry or a re-plan: the denied call is made
// once, and the log names the action and the resource to grant
// (docs/lighthouse-api.md#cam-permissions).
#[test]
fn a_denied_write_is_called_once_and_names_what_to_grant() {
    let resource = format!("qcs::lighthouse:ap-guangzhou:uin/<ACCOUNT>:instance/{A}");
    let deny = |action: &'static str| {
        [
            "--deny-actions",
            action,
            "--deny-code",
            "AuthFailure.UnauthorizedOperation",
        ]
    };

    // The sweep at start meets a denied Delete.
    let expired = owned("old", clock::now() - DAY);
    let sim = Sim::with_rules(
        &json!([rule("TCP", "22", "198.51.100.9", "ACCEPT", &expired)]),
        &deny("DeleteFirewallRules"),
    );
    let k = Setup::new("denied-sweep")
        .set("PRUNE_INTERVAL", "1h")
        .knockd(&sim);
    assert!(k.wait_log("prune instance=", Duration::from_secs(10)));
    let sweep_log = k.log();
    println!("sweep: {}\n{sweep_log}", call_counts(&sim));
    let sweep_deletes = sim.calls("DeleteFirewallRules");
    drop(k);

    // A knock meets a denied Create; the sweep at start left the writer a memory of the
    // firewall, so the knock's plan starts from it.
    let sim = Sim::with_rules(&json!([]), &deny("CreateFirewallRules"));
    let k = Setup::new("denied-knock")
        .set("PRUNE_INTERVAL", "1h")
        .knockd(&sim);
    let t = std::time::Instant::now();
    while sim.calls("DescribeFirewallRules") == 0 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = sim.total_calls();
    assert_eq!(knock_curl(&k, "203.0.113.30", "phone"), FAILURE);
    let knock_calls = sim.total_calls() - before;
    // The knock's log lines are written after its answer.
    k.wait_log(
        "CAM denies lighthouse:CreateFirewallRules",
        Duration::from_secs(10),
    );
    let knock_log = k.log();
    println!(
        "knock: {knock_calls} calls, {}\n{knock_log}",
        call_counts(&sim)
    );

    assert_eq!(sweep_deletes, 1, "{sweep_log}");
    assert!(
        sweep_log.contains(&format!(
            "CAM denies lighthouse:DeleteFirewallRules on {resource}"
        )),
        "{sweep_log}"
    );
    assert_eq!(knock_calls, 1, "{knock_log}");
    assert!(
        knock_log.contains(&format!(
            "CAM denies lighthouse:CreateFirewallRules on {resource}"
        )),
        "{knock_log}"
    );
    for log in [&sweep_log, &knock_log] {
        assert!(!log.contains("api-retry"), "{log}");
        assert!(log.contains("<ACCOUNT>"), "{log}");
    }
}
