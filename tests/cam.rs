//! `knockd --print-cam-policy [--uin ACCOUNT]`: the least-privilege CAM policy for exactly the
//! configured instances (docs/lighthouse-api.md#cam-permissions). Offline: no API call.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::knockd::{run, temp_dir, write_config};
use common::{show, SECRET_ID, SECRET_KEY};
use serde_json::Value;

const INSTANCES: &str = "lhins-kn0ck001,ap-hongkong:lhins-kn0ck002,ap-guangzhou:lhins-kn0ck003";

fn config() -> PathBuf {
    let dir = temp_dir("cam");
    let cfg: Vec<(String, String)> = [
        ("TENCENT_CLOUD_SECRET_ID", SECRET_ID),
        ("TENCENT_CLOUD_SECRET_KEY", SECRET_KEY),
        // Nothing listens there: printing the policy must not call the API.
        ("TENCENT_CLOUD_ACCESS_POINT", "http://127.0.0.1:9"),
        ("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS", INSTANCES),
        ("TENCENT_CLOUD_REGION", "ap-guangzhou"),
        ("KNOCK_REFERER", "a-long-enough-knock-secret"),
        ("FW_PERMIT_PORTS_TCP", "22"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    write_config(&dir, &cfg)
}

fn policy(args: &[&str]) -> (Value, String) {
    let mut all = vec!["--print-cam-policy"];
    all.extend_from_slice(args);
    let out = run(&config(), &all);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: not JSON:\n{text}"));
    (json, text)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

#[test]
fn the_policy_names_exactly_the_configured_instances_and_regions() {
    let (p, text) = policy(&[]);
    assert_eq!(p["version"], "2.0");
    let statements = p["statement"].as_array().expect("statement array");
    assert_eq!(statements.len(), 2, "{text}");
    let needed = &statements[0];
    assert_eq!(needed["effect"], "allow");
    assert_eq!(
        strings(&needed["action"]),
        vec![
            "lighthouse:DescribeFirewallRules",
            "lighthouse:CreateFirewallRules",
            "lighthouse:DeleteFirewallRules",
            "lighthouse:ModifyFirewallRuleDescription",
        ]
    );
    let resources = strings(&needed["resource"]);
    assert_eq!(
        resources,
        vec![
            "qcs::lighthouse:ap-guangzhou:uin/<ACCOUNT>:instance/lhins-kn0ck001",
            "qcs::lighthouse:ap-hongkong:uin/<ACCOUNT>:instance/lhins-kn0ck002",
            "qcs::lighthouse:ap-guangzhou:uin/<ACCOUNT>:instance/lhins-kn0ck003",
        ]
    );
    let regions: BTreeSet<&str> = resources
        .iter()
        .map(|r| r.split(':').nth(3).expect("region field"))
        .collect();
    assert_eq!(
        regions,
        BTreeSet::from(["ap-guangzhou", "ap-hongkong"]),
        "{text}"
    );
    // The optional statement: only what --check may use, on "*", nothing else.
    let optional = &statements[1];
    assert_eq!(optional["effect"], "allow");
    assert_eq!(
        strings(&optional["action"]),
        vec!["lighthouse:DescribeRegions", "lighthouse:DescribeInstances"]
    );
    assert_eq!(strings(&optional["resource"]), vec!["*"]);
    // Never the action that replaces a whole firewall, never a wildcard action.
    assert!(!text.contains("ModifyFirewallRules\""), "{text}");
    assert!(!text.contains("lighthouse:*"), "{text}");
}

#[test]
fn an_account_id_replaces_the_placeholder() {
    let (p, text) = policy(&["--uin", "100000000001"]);
    assert!(!text.contains("<ACCOUNT>"), "{text}");
    for r in strings(&p["statement"][0]["resource"]) {
        assert!(
            r.contains(":uin/100000000001:instance/lhins-kn0ck00"),
            "{r}"
        );
    }
}

#[test]
fn the_explanation_goes_to_stderr_and_marks_the_optional_statement() {
    let out = run(&config(), &["--print-cam-policy"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OPTIONAL"), "{err}");
    assert!(err.contains("--uin"), "{err}");
}

#[test]
fn a_bad_account_id_is_a_usage_error() {
    for bad in [
        &["--print-cam-policy", "--uin", "12ab"][..],
        &["--print-cam-policy", "--uin", "uin/1000"][..],
        &["--print-cam-policy", "--uin"][..],
        &["--uin", "100000000001"][..],
    ] {
        let out = run(&config(), bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", show(&out));
        assert!(out.stdout.is_empty(), "{bad:?}: {}", show(&out));
    }
}

#[test]
fn every_policy_in_the_readme_is_exactly_what_print_cam_policy_prints() {
    let dir = temp_dir("cam-readme");
    let cfg: Vec<(String, String)> = [
        ("TENCENT_CLOUD_SECRET_ID", SECRET_ID),
        ("TENCENT_CLOUD_SECRET_KEY", SECRET_KEY),
        (
            "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS",
            "ap-guangzhou:lhins-a0ogy7ty",
        ),
        ("KNOCK_REFERER", "a-long-enough-knock-secret"),
        ("FW_PERMIT_PORTS_TCP", "22"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let out = run(&write_config(&dir, &cfg), &["--print-cam-policy"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    // Whole policies only: a ```json block that starts with `{` (not a statement fragment).
    let blocks: Vec<&str> = readme
        .split("```json\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(code, _)| code))
        .filter(|code| code.starts_with('{'))
        .collect();
    assert!(blocks.len() >= 2, "the English and the Chinese policy");
    for b in blocks {
        assert_eq!(
            b, printed,
            "a README policy differs from --print-cam-policy"
        );
    }
}
