//! `--prune`, `--list`, `--revoke`: what knockd's rules are and removing them.

use super::{client, per_instance, rule_line};
use crate::clock;
use crate::cloud::executor;
use crate::config::Config;
use crate::exit::Exit;
use crate::rules::desc::{self, Desc};
use crate::rules::planner::QUOTA;
use crate::rules::revoke::{self, RevokeTarget};
use crate::rules::FirewallRule;

pub(super) fn prune(config: &Config, dry_run: bool) -> Exit {
    let Some(client) = client(config) else {
        return Exit::Failure;
    };
    let verb = if dry_run { "would remove" } else { "removed" };
    let results = per_instance(config, |inst| {
        executor::apply(&client, inst, &config.policy(), &[], dry_run)
    });
    let mut failed = false;
    let mut removed = Vec::new();
    for (inst, result) in config.cloud.instances.iter().zip(results) {
        match result {
            Ok(applied) => {
                if !dry_run {
                    removed.push((inst.id.as_str(), applied.plan.delete.clone()));
                }
                outln!(
                    "{} ({}): {verb} {} expired rule(s)",
                    inst.id,
                    inst.region,
                    applied.plan.delete.len()
                );
                for r in &applied.plan.delete {
                    outln!("  - {}", rule_line(r));
                }
                for r in &applied.plan.unparseable {
                    outln!(
                        "  ? left alone, description not understood: {}",
                        rule_line(r)
                    );
                }
            }
            Err(e) => {
                failed = true;
                outln!("{} ({}): FAILED: {e}", inst.id, inst.region);
            }
        }
    }
    super::events::pruned(config, &removed);
    Exit::failed_if(failed)
}

pub(super) fn list(config: &Config) -> Exit {
    let Some(client) = client(config) else {
        return Exit::Failure;
    };
    let results = per_instance(config, |inst| client.describe_rules(inst));
    let now = client.now();
    let mut failed = false;
    for (inst, result) in config.cloud.instances.iter().zip(results) {
        let rules = match result {
            Ok((rules, _)) => rules,
            Err(e) => {
                failed = true;
                outln!("{} ({}): FAILED: {e}", inst.id, inst.region);
                continue;
            }
        };
        let owned: Vec<(&FirewallRule, Desc)> = rules
            .iter()
            .map(|r| (r, desc::parse(&config.rules.prefix, &r.description)))
            .filter(|(_, d)| *d != Desc::Foreign)
            .collect();
        outln!(
            "{} ({}): {} of {QUOTA} rules used, {} owned by knockd",
            inst.id,
            inst.region,
            rules.len(),
            owned.len()
        );
        if owned.is_empty() {
            continue;
        }
        outln!(
            "  {:<24} {:<40} {:<5} {:<20} EXPIRES IN",
            "LABEL",
            "ADDRESS",
            "PROTO",
            "PORTS"
        );
        for (r, d) in &owned {
            let (label, left) = match (d, desc::expiry(d, config.rules.ttl.as_secs() as i64)) {
                (Desc::Owned { label, .. } | Desc::Legacy { label, .. }, Some(e)) => {
                    (label.as_str(), clock::human_left(e - now))
                }
                _ => ("?", "unreadable description".to_string()),
            };
            outln!(
                "  {:<24} {:<40} {:<5} {:<20} {left}",
                label,
                r.address(),
                r.protocol,
                r.port
            );
        }
    }
    Exit::failed_if(failed)
}

pub(super) fn revoke(config: &Config, target: &str, dry_run: bool) -> Exit {
    // Bad usage, before any API call: what can never match a rule is not "no rule matched".
    let parsed = match RevokeTarget::parse(target) {
        Ok(t) => t,
        Err(problem) => {
            crate::log::error(&format!("--revoke: {problem}"));
            return Exit::Usage;
        }
    };
    let Some(client) = client(config) else {
        return Exit::Failure;
    };
    let verb = if dry_run { "would remove" } else { "removed" };
    let prefix = config.rules.prefix.as_str();
    let results = per_instance(config, |inst| {
        executor::delete_matching(
            &client,
            inst,
            &|rules| revoke::revoke(rules, prefix, &parsed),
            dry_run,
        )
    });
    let mut failed = false;
    let mut total = 0;
    let mut removed = Vec::new();
    for (inst, result) in config.cloud.instances.iter().zip(results) {
        match result {
            Ok(gone) => {
                total += gone.len();
                if !dry_run {
                    removed.push((inst.id.as_str(), gone.clone()));
                }
                outln!(
                    "{} ({}): {verb} {} rule(s)",
                    inst.id,
                    inst.region,
                    gone.len()
                );
                for r in &gone {
                    outln!("  - {}", rule_line(r));
                }
            }
            Err(e) => {
                failed = true;
                outln!("{} ({}): FAILED: {e}", inst.id, inst.region);
            }
        }
    }
    if total == 0 && !failed {
        outln!("no rule owned by knockd matches {target:?}");
    }
    super::events::revoked(config, &parsed, &removed);
    Exit::failed_if(failed)
}
