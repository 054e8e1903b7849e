//! `--print-cam-policy [--uin ACCOUNT]`: the least-privilege CAM policy for the configured
//! instances (docs/lighthouse-api.md#cam-permissions). The first statement is all knockd needs
//! (serving, `--prune`, `--list`, `--revoke`, `--check`); the second, on `*`, is optional and
//! only makes `--check` more precise. `ModifyFirewallRules` (which replaces a whole firewall)
//! is never granted.

pub(super) use crate::cloud::error::{instance_resource, ACCOUNT_PLACEHOLDER};
use crate::config::Config;
use crate::exit::Exit;

/// The firewall actions knockd calls, grantable on each instance.
pub(super) const INSTANCE_ACTIONS: [&str; 4] = [
    "DescribeFirewallRules",
    "CreateFirewallRules",
    "DeleteFirewallRules",
    "ModifyFirewallRuleDescription",
];
/// What `--check` also calls when allowed; CAM grants them only on `*`.
pub(super) const CHECK_ACTIONS: [&str; 2] = ["DescribeRegions", "DescribeInstances"];
fn quoted_list(items: &[String], indent: &str) -> String {
    let lines: Vec<String> = items
        .iter()
        .map(|s| format!("{indent}{}", serde_json::Value::from(s.as_str())))
        .collect();
    lines.join(",\n")
}

fn statement(actions: &[&str], resources: &[String]) -> String {
    let actions: Vec<String> = actions.iter().map(|a| format!("lighthouse:{a}")).collect();
    format!(
        "    {{\n      \"effect\": \"allow\",\n      \"action\": [\n{}\n      ],\n      \"resource\": [\n{}\n      ]\n    }}",
        quoted_list(&actions, "        "),
        quoted_list(resources, "        ")
    )
}

/// The policy document, as printed.
pub(super) fn policy(config: &Config, uin: Option<&str>) -> String {
    let resources: Vec<String> = config
        .cloud
        .instances
        .iter()
        .map(|i| instance_resource(&i.region, &i.id, uin))
        .collect();
    format!(
        "{{\n  \"version\": \"2.0\",\n  \"statement\": [\n{},\n{}\n  ]\n}}\n",
        statement(&INSTANCE_ACTIONS, &resources),
        statement(&CHECK_ACTIONS, &["*".to_string()])
    )
}

pub(super) fn print_policy(config: &Config, uin: Option<&str>) -> Exit {
    outln!("{}", policy(config, uin).trim_end());
    // CAM policies take no comments: the explanation goes to stderr, the JSON alone to stdout.
    crate::log::error(&format!(
        "statement 1 is what knockd needs, on its {} instance(s) only. Statement 2 (resource \"*\") is OPTIONAL: only --check uses {} and CAM cannot grant them on an instance; delete it for the strictest policy.",
        config.cloud.instances.len(),
        CHECK_ACTIONS.join(" and ")
    ));
    if uin.is_none() {
        crate::log::error(&format!(
            "replace {ACCOUNT_PLACEHOLDER} with your root account ID (UIN), or pass --uin ACCOUNT"
        ));
    }
    Exit::Success
}
