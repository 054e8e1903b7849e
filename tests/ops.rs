//! The operator commands of the real `knockd` binary against lighthouse-sim: `--prune
//! [--dry-run]`, `--revoke`, `--list`, `--check`, and their exit codes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::knockd::{base_config, run, set, temp_dir, write_config};
use common::sim::Sim;
use common::{show, SECRET_ID, SECRET_KEY};
use knockd::clock;
use serde_json::{json, Value};

const A: &str = "lhins-kn0ck001";
const B: &str = "lhins-kn0ck002";
const DAY: i64 = 86_400;
const WRITES: [&str; 4] = [
    "CreateFirewallRules",
    "DeleteFirewallRules",
    "ModifyFirewallRuleDescription",
    "ModifyFirewallRules",
];

/// `Knockd-<label> until YYYY-MM-DD HH:MMZ`
fn owned(label: &str, expires: i64) -> String {
    format!("Knockd-{label} until {}Z", clock::utc_minute(expires))
}

/// `Knockd-<label>@@YYYYMMDD`, the Python original's format (the creation day).
fn legacy(label: &str, created: i64) -> String {
    format!(
        "Knockd-{label}@@{}",
        clock::utc_date(created).replace('-', "")
    )
}

fn rule(proto: &str, port: &str, cidr: &str, desc: &str) -> Value {
    json!({"Protocol": proto, "Port": port, "CidrBlock": cidr, "Action": "ACCEPT",
           "FirewallRuleDescription": desc})
}

fn rules_file(dir: &Path, rules: &Value) -> PathBuf {
    let path = dir.join("rules.json");
    std::fs::write(&path, rules.to_string()).expect("write rules file");
    path
}

/// A simulator with A in ap-guangzhou and B in ap-hongkong, seeded from `rules`, plus `extra`.
fn sim_with(dir: &Path, rules: &Value, extra: &[&str]) -> Sim {
    let file = rules_file(dir, rules);
    let file = file.to_str().expect("utf-8 path");
    let mut args = vec![
        "--instance",
        "ap-guangzhou:lhins-kn0ck001",
        "--instance",
        "ap-hongkong:lhins-kn0ck002",
        "--rules",
        file,
    ];
    args.extend_from_slice(extra);
    Sim::start(&args)
}

/// The config file for both instances (A in the default region, B with its own).
fn config(dir: &Path, sim: &Sim, instances: &str, extra: &[(&str, &str)]) -> PathBuf {
    let mut cfg = base_config(sim, instances, 8080);
    for (k, v) in extra {
        set(&mut cfg, k, v);
    }
    write_config(dir, &cfg)
}

const BOTH: &str = "lhins-kn0ck001,ap-hongkong:lhins-kn0ck002";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs knockd and checks that no secret leaks into anything it prints.
fn knockd(config: &Path, args: &[&str]) -> Output {
    let out = run(config, args);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in [SECRET_KEY, WRONG_KEY] {
        assert!(!all.contains(secret), "a secret key was printed:\n{all}");
    }
    out
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn descriptions(sim: &Sim, inst: &str) -> Vec<String> {
    sim.rules(inst)
        .iter()
        .map(|r| {
            r["FirewallRuleDescription"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn writes(sim: &Sim) -> u64 {
    WRITES.iter().map(|a| sim.calls(a)).sum()
}

const WRONG_KEY: &str = "wrongSecretKeyForCheck99";

/// The prune scenario: what goes and what stays, by description.
struct Seeded {
    rules: Value,
    expired: Vec<String>,
    kept: Vec<String>,
}

fn prune_scenario() -> Seeded {
    let now = clock::now();
    let gone_tcp = owned("gone", now - 3600);
    let gone_udp = owned("gone-udp", now - 60);
    let stays = owned("stays", now + DAY);
    let old_py = legacy("oldpy", now - 40 * DAY); // DAYS_RULE_EXPIRES=30 after that day
    let new_py = legacy("newpy", now - 5 * DAY);
    let foreign = "office ssh".to_string();
    let foreign_dated = "office until 2000-01-01 00:00Z".to_string();
    let garbage = "Knockd-garbage".to_string();
    let rules = json!({ A: [
        rule("TCP", "22,443", "198.51.100.1", &gone_tcp),
        rule("UDP", "51820", "198.51.100.1", &gone_udp),
        rule("TCP", "22,443", "198.51.100.2", &stays),
        rule("TCP", "22,443", "198.51.100.3", &old_py),
        rule("TCP", "22,443", "198.51.100.4", &new_py),
        rule("TCP", "22", "198.51.100.1", &foreign),
        rule("TCP", "8080", "198.51.100.5", &foreign_dated),
        rule("TCP", "22,443", "198.51.100.6", &garbage),
    ]});
    Seeded {
        rules,
        expired: vec![gone_tcp, gone_udp, old_py],
        kept: vec![stays, new_py, foreign, foreign_dated, garbage],
    }
}

#[test]
fn prune_removes_exactly_the_expired_owned_and_legacy_rules() {
    let dir = temp_dir("prune");
    let s = prune_scenario();
    let sim = sim_with(&dir, &s.rules, &[]);
    let cfg = config(&dir, &sim, A, &[]);
    let before = descriptions(&sim, A);
    let out = knockd(&cfg, &["--prune"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let after = descriptions(&sim, A);
    for d in &s.expired {
        assert!(!after.contains(d), "{d} is still there: {after:?}");
    }
    let expected: Vec<&String> = before.iter().filter(|d| !s.expired.contains(d)).collect();
    assert_eq!(after.iter().collect::<Vec<_>>(), expected);
    for d in &s.kept {
        assert!(after.contains(d), "{d} was removed");
    }
    // One Delete took all of them; stdout names each removed rule, and only those.
    assert_eq!(sim.calls("DeleteFirewallRules"), 1);
    assert_eq!(writes(&sim), 1);
    let text = stdout(&out);
    let listed: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("- "))
        .collect();
    assert_eq!(listed.len(), s.expired.len(), "{text}");
    for d in &s.expired {
        assert!(
            listed.iter().any(|l| l.contains(d.as_str())),
            "{d} not listed:\n{text}"
        );
    }
    assert!(
        text.contains(&format!("removed {}", s.expired.len())),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("Knockd-garbage") && !l.trim_start().starts_with("- ")),
        "the unparseable rule is reported as left alone:\n{text}"
    );
    // A second prune finds nothing to do and writes nothing.
    let again = knockd(&cfg, &["--prune"]);
    assert_eq!(code(&again), 0, "{}", show(&again));
    assert_eq!(writes(&sim), 1);
    assert!(stdout(&again).contains("removed 0"), "{}", show(&again));
}

#[test]
fn prune_dry_run_changes_nothing() {
    let dir = temp_dir("prune-dry");
    let s = prune_scenario();
    let sim = sim_with(&dir, &s.rules, &[]);
    let cfg = config(&dir, &sim, A, &[]);
    let before = sim.state()["instances"].clone();
    let out = knockd(&cfg, &["--prune", "--dry-run"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    for a in WRITES {
        assert_eq!(sim.calls(a), 0, "{a}");
    }
    assert_eq!(sim.state()["instances"], before);
    let text = stdout(&out);
    assert!(text.contains("would remove"), "{text}");
    for d in &s.expired {
        assert!(text.contains(d.as_str()), "{d} not listed:\n{text}");
    }
    for d in s.kept.iter().filter(|d| !d.starts_with("Knockd-garbage")) {
        assert!(!text.contains(d.as_str()), "{d} listed:\n{text}");
    }
}

#[test]
fn prune_retries_a_version_conflict_between_describe_and_write() {
    let dir = temp_dir("prune-conflict");
    let s = prune_scenario();
    let sim = sim_with(&dir, &s.rules, &["--conflict-after-describe", "1"]);
    let cfg = config(&dir, &sim, A, &[]);
    let out = knockd(&cfg, &["--prune"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let after = descriptions(&sim, A);
    for d in &s.expired {
        assert!(!after.contains(d), "{d} is still there");
    }
    for d in &s.kept {
        assert!(after.contains(d), "{d} was removed");
    }
    assert_eq!(sim.calls("DescribeFirewallRules"), 2);
    assert_eq!(
        sim.errors("UnsupportedOperation.FirewallVersionMismatch"),
        1
    );
    assert_eq!(sim.calls("DeleteFirewallRules"), 2);
}

/// Two instances, each with owned rules for 203.0.113.7 (label "home") and for "phone", a
/// foreign rule for the same 203.0.113.7, and an unrelated owned rule.
fn revoke_scenario() -> Value {
    let now = clock::now();
    let mut per = serde_json::Map::new();
    for (inst, phone_ip) in [(A, "198.51.100.21"), (B, "198.51.100.22")] {
        per.insert(
            inst.to_string(),
            json!([
                rule("TCP", "22,443", "203.0.113.7", &owned("home", now + DAY)),
                rule("UDP", "51820", "203.0.113.7/32", &owned("home", now + DAY)),
                rule("TCP", "3389", "203.0.113.7", "office rdp"),
                rule("TCP", "22,443", phone_ip, &owned("phone", now + 2 * DAY)),
                rule("UDP", "51820", phone_ip, &legacy("phone", now - DAY)),
                rule(
                    "TCP",
                    "22,443",
                    "198.51.100.30",
                    &owned("laptop", now + DAY)
                ),
            ]),
        );
    }
    Value::Object(per)
}

fn has_rule(sim: &Sim, inst: &str, cidr: &str, desc_part: &str) -> bool {
    sim.rules(inst).iter().any(|r| {
        r["CidrBlock"].as_str().is_some_and(|c| c.starts_with(cidr))
            && r["FirewallRuleDescription"]
                .as_str()
                .is_some_and(|d| d.contains(desc_part))
    })
}

#[test]
fn revoke_by_address_and_by_label_on_every_instance() {
    let dir = temp_dir("revoke");
    let sim = sim_with(&dir, &revoke_scenario(), &[]);
    let cfg = config(&dir, &sim, BOTH, &[]);
    let start = sim.state()["instances"].clone();

    let dry = knockd(&cfg, &["--revoke", "203.0.113.7", "--dry-run"]);
    assert_eq!(code(&dry), 0, "{}", show(&dry));
    assert_eq!(writes(&sim), 0);
    assert_eq!(sim.state()["instances"], start);
    assert!(stdout(&dry).contains("would remove 2"), "{}", show(&dry));

    let out = knockd(&cfg, &["--revoke", "203.0.113.7"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    for inst in [A, B] {
        assert!(
            !has_rule(&sim, inst, "203.0.113.7", "Knockd-home"),
            "{inst}"
        );
        assert!(
            has_rule(&sim, inst, "203.0.113.7", "office rdp"),
            "{inst}: foreign rule gone"
        );
        assert!(
            has_rule(&sim, inst, "198.51.100.2", "Knockd-phone"),
            "{inst}"
        );
        assert!(
            has_rule(&sim, inst, "198.51.100.30", "Knockd-laptop"),
            "{inst}"
        );
        assert_eq!(sim.rules(inst).len(), 5 + 6 - 2, "{inst}");
    }
    let text = stdout(&out);
    assert_eq!(text.matches("removed 2 rule(s)").count(), 2, "{text}");
    assert!(text.contains(A) && text.contains(B), "{text}");

    let dry = knockd(&cfg, &["--revoke", "phone", "--dry-run"]);
    assert_eq!(code(&dry), 0, "{}", show(&dry));
    assert_eq!(sim.calls("DeleteFirewallRules"), 2);

    let out = knockd(&cfg, &["--revoke", "phone"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    for inst in [A, B] {
        assert!(
            !has_rule(&sim, inst, "198.51.100.2", "Knockd-phone"),
            "{inst}"
        );
        assert!(has_rule(&sim, inst, "203.0.113.7", "office rdp"), "{inst}");
        assert!(
            has_rule(&sim, inst, "198.51.100.30", "Knockd-laptop"),
            "{inst}"
        );
        assert_eq!(sim.rules(inst).len(), 5 + 6 - 4, "{inst}");
    }
    assert_eq!(sim.calls("DeleteFirewallRules"), 4);
    assert_eq!(writes(&sim), 4);

    // Nothing left to revoke: success, no write, and it says so.
    let none = knockd(&cfg, &["--revoke", "phone"]);
    assert_eq!(code(&none), 0, "{}", show(&none));
    assert_eq!(writes(&sim), 4);
    assert!(
        stdout(&none).contains("no rule owned by knockd"),
        "{}",
        show(&none)
    );
}

#[test]
fn list_prints_a_table_per_instance_with_quota_use() {
    let dir = temp_dir("list");
    let now = clock::now();
    // Minute precision in descriptions: 2d12h30m from now reads as 2d12h for the next 29 min.
    let rules = json!({
        A: [
            rule("TCP", "22,443", "203.0.113.7", &owned("Office_01", now + 2 * DAY + 12 * 3600 + 1800)),
            rule("UDP", "51820", "203.0.113.7", &owned("Office_01", now + 2 * DAY + 12 * 3600 + 1800)),
            rule("TCP", "22,443", "198.51.100.40", &owned("old", now - 3600)),
            rule("TCP", "3389", "198.51.100.41", "office rdp"),
        ],
        B: [
            rule("TCP", "22,443", "198.51.100.50", &legacy("py", now - 10 * DAY)),
        ],
    });
    let sim = sim_with(&dir, &rules, &["--foreign-rules", "3"]);
    let cfg = config(&dir, &sim, BOTH, &[]);
    let out = knockd(&cfg, &["--list"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(writes(&sim), 0);
    let text = stdout(&out);
    for inst in [A, B] {
        let n = sim.rules(inst).len();
        assert!(
            text.lines()
                .any(|l| l.contains(inst) && l.contains(&format!("{n} of 100"))),
            "{inst}: no '{n} of 100':\n{text}"
        );
    }
    let headers: Vec<&str> = text
        .lines()
        .filter(|l| l.to_lowercase().contains("expires in"))
        .collect();
    assert_eq!(headers.len(), 2, "one table per instance:\n{text}");
    for h in &headers {
        let h = h.to_lowercase();
        for col in ["label", "address", "proto", "port"] {
            assert!(h.contains(col), "header lacks {col}: {h}");
        }
    }
    let row = |needles: &[&str]| text.lines().any(|l| needles.iter().all(|n| l.contains(n)));
    assert!(
        row(&["Office_01", "203.0.113.7", "TCP", "22,443", "2d12h"]),
        "{text}"
    );
    assert!(
        row(&["Office_01", "203.0.113.7", "UDP", "51820", "2d12h"]),
        "{text}"
    );
    assert!(row(&["old", "198.51.100.40", "expired"]), "{text}");
    // Legacy: 30 days after a day 10 days ago (00:00 UTC), so 19d-something left.
    assert!(
        row(&["py", "198.51.100.50", "TCP", "19d"]) || row(&["py", "198.51.100.50", "20d00h"]),
        "{text}"
    );
    // Foreign rules count towards the quota but are not knockd's to list.
    assert!(!text.contains("198.51.100.41"), "{text}");
}

#[test]
fn check_passes_against_a_healthy_api() {
    let dir = temp_dir("check-ok");
    let sim = sim_with(&dir, &json!({}), &[]);
    let cfg = config(&dir, &sim, BOTH, &[]);
    let out = knockd(&cfg, &["--check"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let text = stdout(&out);
    assert!(text.lines().any(|l| l == "check passed"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains(A) && text.contains(B), "{text}");
    assert_eq!(writes(&sim), 0, "--check is read-only");
}

fn failing_check(sim_args: &[&str], instances: &str, extra: &[(&str, &str)]) -> (Sim, String) {
    let dir = temp_dir("check-fail");
    let sim = sim_with(&dir, &json!({}), sim_args);
    let cfg = config(&dir, &sim, instances, extra);
    let out = knockd(&cfg, &["--check"]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    let text = stdout(&out);
    assert!(text.lines().any(|l| l == "check failed"), "{text}");
    assert_eq!(writes(&sim), 0, "--check is read-only");
    (sim, text)
}

fn fail_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("FAIL")).collect()
}

#[test]
fn check_reports_a_wrong_secret_key() {
    let (_sim, text) = failing_check(&[], BOTH, &[("TENCENT_CLOUD_SECRET_KEY", WRONG_KEY)]);
    let fails = fail_lines(&text);
    assert_eq!(fails.len(), 1, "{text}");
    assert!(fails[0].contains("SignatureFailure"), "{text}");
    assert!(fails[0].contains("TENCENT_CLOUD_SECRET_KEY"), "{text}");
    assert!(
        !text.contains(SECRET_ID),
        "the SecretId is shown masked only:\n{text}"
    );
}

#[test]
fn check_reports_an_unknown_instance() {
    let (_sim, text) = failing_check(&[], "lhins-kn0ck001,ap-hongkong:lhins-n0tthere", &[]);
    let fails = fail_lines(&text);
    assert_eq!(fails.len(), 1, "{text}");
    assert!(fails[0].contains("lhins-n0tthere"), "{text}");
    assert!(fails[0].contains("not found"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("ok") && l.contains(A)),
        "the known instance is fine:\n{text}"
    );
}

#[test]
fn check_reports_a_ten_minute_clock_skew() {
    let (sim, text) = failing_check(&["--clock-offset", "600"], BOTH, &[]);
    let fails = fail_lines(&text);
    assert_eq!(fails.len(), 1, "{text}");
    let line = fails[0];
    assert!(line.contains("clock"), "{line}");
    // The skew is reported in seconds: about 600.
    let secs: Vec<i64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        secs.iter().any(|s| (595..=605).contains(s)),
        "no skew of about 600 s in: {line}"
    );
    assert_eq!(sim.errors("AuthFailure.SignatureExpire"), 1);
}

#[test]
fn prune_exits_1_when_an_instance_fails_and_still_prunes_the_others() {
    let dir = temp_dir("prune-fail");
    let s = prune_scenario();
    let sim = sim_with(&dir, &s.rules, &[]);
    let cfg = config(&dir, &sim, "lhins-kn0ck001,ap-hongkong:lhins-n0tthere", &[]);
    let out = knockd(&cfg, &["--prune"]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.contains("lhins-n0tthere") && l.contains("FAILED")),
        "{text}"
    );
    let after = descriptions(&sim, A);
    for d in &s.expired {
        assert!(!after.contains(d), "{d} is still there");
    }
}

#[test]
fn dry_run_alone_is_bad_usage() {
    let dir = temp_dir("usage");
    let sim = sim_with(&dir, &json!({}), &[]);
    let cfg = config(&dir, &sim, A, &[]);
    let out = knockd(&cfg, &["--dry-run"]);
    assert_eq!(code(&out), 2, "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--dry-run"),
        "{}",
        show(&out)
    );
    let calls = sim.state()["calls"].as_object().map_or(0, |m| m.len());
    assert_eq!(calls, 0, "bad usage costs no API call");
}

#[test]
fn revoke_retries_a_version_conflict_between_describe_and_write() {
    let dir = temp_dir("revoke-conflict");
    let sim = sim_with(
        &dir,
        &revoke_scenario(),
        &["--conflict-after-describe", "1"],
    );
    let cfg = config(&dir, &sim, A, &[]);
    let out = knockd(&cfg, &["--revoke", "203.0.113.7"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(!has_rule(&sim, A, "203.0.113.7", "Knockd-home"));
    assert!(has_rule(&sim, A, "203.0.113.7", "office rdp"));
    assert_eq!(sim.calls("DescribeFirewallRules"), 2);
    assert_eq!(
        sim.errors("UnsupportedOperation.FirewallVersionMismatch"),
        1
    );
    assert!(stdout(&out).contains("removed 2 rule(s)"), "{}", show(&out));
}

/// Whether the simulator applied a Delete and then dropped the connection unanswered.
fn delete_lost_after_apply(sim: &Sim) -> bool {
    sim.wait_log_line(std::time::Duration::from_secs(10), |l| {
        l.contains("DeleteFirewallRules")
            && l.contains(" OK ")
            && l.contains("DROPPED (after apply)")
    })
}

#[test]
fn prune_reports_a_delete_whose_answer_was_lost() {
    let dir = temp_dir("prune-lost");
    let s = prune_scenario();
    let sim = sim_with(
        &dir,
        &s.rules,
        &["--drop-after-apply-rate", "0.5", "--seed", "1"],
    );
    let cfg = config(&dir, &sim, A, &[]);
    let out = knockd(&cfg, &["--prune"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        delete_lost_after_apply(&sim),
        "the fault did not happen:\n{}",
        sim.log()
    );
    let after = descriptions(&sim, A);
    for d in &s.kept {
        assert!(after.contains(d), "{d} was removed");
    }
    let text = stdout(&out);
    assert!(
        text.contains(&format!("removed {}", s.expired.len())),
        "{text}"
    );
    for d in &s.expired {
        assert!(!after.contains(d), "{d} is still there");
        assert!(text.contains(d.as_str()), "{d} not reported:\n{text}");
    }
}

#[test]
fn revoke_reports_a_delete_whose_answer_was_lost() {
    let dir = temp_dir("revoke-lost");
    let sim = sim_with(
        &dir,
        &revoke_scenario(),
        &["--drop-after-apply-rate", "0.5", "--seed", "1"],
    );
    let cfg = config(&dir, &sim, A, &[]);
    let out = knockd(&cfg, &["--revoke", "203.0.113.7"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        delete_lost_after_apply(&sim),
        "the fault did not happen:\n{}",
        sim.log()
    );
    assert!(!has_rule(&sim, A, "203.0.113.7", "Knockd-home"));
    assert!(has_rule(&sim, A, "203.0.113.7", "office rdp"));
    assert!(stdout(&out).contains("removed 2 rule(s)"), "{}", show(&out));
}

#[test]
fn revoke_refuses_targets_that_can_never_match_before_any_api_call() {
    let dir = temp_dir("revoke-refused");
    let sim = sim_with(&dir, &revoke_scenario(), &[]);
    let cfg = config(&dir, &sim, BOTH, &[]);
    for (target, says) in [
        ("999.1.1.1", "--revoke: '999.1.1.1' is not an IPv4 address"),
        (" ", "--revoke: the target is blank"),
        (
            "10.231.9.1/24",
            "has host bits set; did you mean 10.231.9.0/24?",
        ),
        (
            "999.1.1.0/24",
            "'999.1.1.0/24' is not an IP address or CIDR block",
        ),
    ] {
        let out = knockd(&cfg, &["--revoke", target]);
        assert_eq!(code(&out), 2, "{target:?}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("knockd: "), "{stderr}");
        assert!(stderr.contains(says), "{target:?}: {stderr}");
    }
    assert_eq!(sim.total_calls(), 0);
}

#[test]
fn revoke_of_a_cidr_block_removes_every_owned_address_inside_it() {
    let dir = temp_dir("revoke-cidr");
    let sim = sim_with(&dir, &revoke_scenario(), &[]);
    let cfg = config(&dir, &sim, BOTH, &[]);
    // 198.51.100.0/24 holds the phones (.21, .22) and the laptop (.30), not home (203.0.113.7).
    let out = knockd(&cfg, &["--revoke", "198.51.100.0/24"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    for inst in [A, B] {
        assert!(!has_rule(&sim, inst, "198.51.100.", "Knockd-"), "{inst}");
        assert!(has_rule(&sim, inst, "203.0.113.7", "Knockd-home"), "{inst}");
        assert!(has_rule(&sim, inst, "203.0.113.7", "office rdp"), "{inst}");
    }
    // A block nobody in it was granted: nothing to do, and it says so.
    let none = knockd(&cfg, &["--revoke", "10.231.9.0/24"]);
    assert_eq!(code(&none), 0, "{}", show(&none));
    assert!(
        stdout(&none).contains("no rule owned by knockd matches \"10.231.9.0/24\""),
        "{}",
        show(&none)
    );
}
