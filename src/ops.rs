//! The operator commands `--prune`, `--list`, `--revoke` and `--check`: thin shells around the
//! planner and executor, one instance per thread, printing to stdout. Exit codes: 0 success,
//! 1 an instance or check failed.

use std::thread;

use crate::clock;
use crate::config::{Config, Instance};
use crate::firewall;
use crate::lighthouse::{ApiError, Client, FirewallRule};
use crate::planner::{self, Policy, QUOTA};
use crate::rule_desc::{self, Desc};

fn client(config: &Config) -> Option<Client> {
    match Client::new(config) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("knockd: {e}");
            None
        }
    }
}

/// Runs `f` for every instance in parallel; results in configuration order.
fn per_instance<T: Send>(config: &Config, f: impl Fn(&Instance) -> T + Sync) -> Vec<T> {
    thread::scope(|s| {
        let handles: Vec<_> = config
            .instances
            .iter()
            .map(|inst| s.spawn(|| f(inst)))
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(t) => t,
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    })
}

fn rule_line(r: &FirewallRule) -> String {
    format!(
        "{} {} {} {:?}",
        r.protocol,
        r.port,
        r.address(),
        r.description
    )
}

pub fn prune(config: &Config, dry_run: bool) -> i32 {
    let Some(client) = client(config) else {
        return 1;
    };
    let verb = if dry_run { "would remove" } else { "removed" };
    let results = per_instance(config, |inst| {
        firewall::apply(&client, inst, &Policy::from_config(config), &[], dry_run)
    });
    let mut failed = false;
    for (inst, result) in config.instances.iter().zip(results) {
        match result {
            Ok(applied) => {
                println!(
                    "{} ({}): {verb} {} expired rule(s)",
                    inst.id,
                    inst.region,
                    applied.plan.delete.len()
                );
                for r in &applied.plan.delete {
                    println!("  - {}", rule_line(r));
                }
                for r in &applied.plan.unparseable {
                    println!(
                        "  ? left alone, description not understood: {}",
                        rule_line(r)
                    );
                }
            }
            Err(e) => {
                failed = true;
                println!("{} ({}): FAILED: {e}", inst.id, inst.region);
            }
        }
    }
    i32::from(failed)
}

pub fn list(config: &Config) -> i32 {
    let Some(client) = client(config) else {
        return 1;
    };
    let results = per_instance(config, |inst| client.describe_rules(inst));
    let now = client.now();
    let mut failed = false;
    for (inst, result) in config.instances.iter().zip(results) {
        let rules = match result {
            Ok((rules, _)) => rules,
            Err(e) => {
                failed = true;
                println!("{} ({}): FAILED: {e}", inst.id, inst.region);
                continue;
            }
        };
        let owned: Vec<(&FirewallRule, Desc)> = rules
            .iter()
            .map(|r| (r, rule_desc::parse(&config.rule_prefix, &r.description)))
            .filter(|(_, d)| *d != Desc::Foreign)
            .collect();
        println!(
            "{} ({}): {} of {QUOTA} rules used, {} owned by knockd",
            inst.id,
            inst.region,
            rules.len(),
            owned.len()
        );
        if owned.is_empty() {
            continue;
        }
        println!(
            "  {:<24} {:<40} {:<5} {:<20} EXPIRES IN",
            "LABEL", "ADDRESS", "PROTO", "PORTS"
        );
        for (r, d) in &owned {
            let (label, left) = match (d, rule_desc::expiry(d, config.rule_ttl_secs)) {
                (Desc::Owned { label, .. } | Desc::Legacy { label, .. }, Some(e)) => {
                    (label.as_str(), clock::human_left(e - now))
                }
                _ => ("?", "unreadable description".to_string()),
            };
            println!(
                "  {:<24} {:<40} {:<5} {:<20} {left}",
                label,
                r.address(),
                r.protocol,
                r.port
            );
        }
    }
    i32::from(failed)
}

pub fn revoke(config: &Config, target: &str, dry_run: bool) -> i32 {
    let Some(client) = client(config) else {
        return 1;
    };
    let verb = if dry_run { "would remove" } else { "removed" };
    let prefix = config.rule_prefix.as_str();
    let results = per_instance(config, |inst| {
        firewall::delete_matching(
            &client,
            inst,
            &|rules| planner::revoke(rules, prefix, target),
            dry_run,
        )
    });
    let mut failed = false;
    let mut total = 0;
    for (inst, result) in config.instances.iter().zip(results) {
        match result {
            Ok(gone) => {
                total += gone.len();
                println!(
                    "{} ({}): {verb} {} rule(s)",
                    inst.id,
                    inst.region,
                    gone.len()
                );
                for r in &gone {
                    println!("  - {}", rule_line(r));
                }
            }
            Err(e) => {
                failed = true;
                println!("{} ({}): FAILED: {e}", inst.id, inst.region);
            }
        }
    }
    if total == 0 && !failed {
        println!("no rule owned by knockd matches {target:?}");
    }
    i32::from(failed)
}

/// Skew the API tolerates is 300 s; past this much, knockd works only thanks to correction.
const SKEW_FAIL_SECS: i64 = 60;
const SKEW_WARN_SECS: i64 = 5;

pub fn check(config: &Config) -> i32 {
    println!(
        "ok    configuration {}",
        config
            .file
            .as_ref()
            .map_or("(environment only)".to_string(), |f| f
                .display()
                .to_string())
    );
    let mut failed = false;
    let mut fail = |what: &str, why: String| {
        failed = true;
        println!("FAIL  {what}: {why}");
    };
    // config.warnings already covers METHOD 3, a plain-http endpoint and a readable key file.
    let mut warnings: Vec<String> = config.warnings.clone();
    let Some(client) = client(config) else {
        return 1;
    };
    // Credentials and clock: DescribeRegions needs no region and touches nothing.
    let regions = match client.call("DescribeRegions", None, &serde_json::json!({})) {
        Ok(reply) => {
            println!(
                "ok    credentials accepted (SecretId {}, RequestId {})",
                mask(&config.secret_id),
                reply.request_id
            );
            let skew = match reply.date {
                Some(d) => d - clock::now(),
                None => client.skew(),
            };
            let skew = if client.skew() != 0 {
                client.skew()
            } else {
                skew
            };
            if skew.abs() >= SKEW_FAIL_SECS {
                fail(
                    "clock",
                    format!(
                        "this machine's clock is {}s {} the API's; knockd corrects for it, but fix the clock (NTP)",
                        skew.abs(),
                        if skew > 0 { "behind" } else { "ahead of" }
                    ),
                );
            } else if skew.abs() >= SKEW_WARN_SECS {
                warnings.push(format!("clock skew of {skew:+}s against the API"));
            } else {
                println!("ok    clock within {}s of the API", skew.abs().max(1));
            }
            reply
                .body
                .get("RegionSet")
                .and_then(|s| s.as_array())
                .map(|set| {
                    set.iter()
                        .filter_map(|r| {
                            r.get("Region").and_then(|x| x.as_str()).map(str::to_string)
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
        Err(e) => {
            fail("credentials", explain(&e));
            for w in &warnings {
                println!("warn  {w}");
            }
            println!("check failed");
            return 1;
        }
    };
    let results = per_instance(config, |inst| {
        let found = client.describe_instances(&inst.region, &[inst.id.as_str()])?;
        if !found.iter().any(|f| f == &inst.id) {
            return Ok(None);
        }
        client.describe_rules(inst).map(Some)
    });
    let limit = QUOTA.saturating_sub(config.quota_reserve);
    let needed = config.ports.len();
    for (inst, result) in config.instances.iter().zip(results) {
        let what = format!("instance {} ({})", inst.id, inst.region);
        if !regions.is_empty() && !regions.contains(&inst.region) {
            fail(
                &what,
                format!("region {} is not offered by Lighthouse", inst.region),
            );
            continue;
        }
        match result {
            Ok(Some((rules, version))) => {
                let owned = rules
                    .iter()
                    .filter(|r| rule_desc::parse(&config.rule_prefix, &r.description) != Desc::Foreign)
                    .count();
                let foreign = rules.len() - owned;
                if foreign + needed > limit {
                    fail(&what, format!("{foreign} foreign rules leave no room for a knock's {needed} rule(s) under the quota of {limit}"));
                } else {
                    println!(
                        "ok    {what}: {} of {QUOTA} rules used ({owned} by knockd), room for {} more addresses, FirewallVersion {version}",
                        rules.len(),
                        (limit - foreign) / needed.max(1),
                    );
                }
            }
            Ok(None) => fail(&what, "not found in this region; check TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS (write region:lhins-… for instances outside TENCENT_CLOUD_REGION)".into()),
            Err(e) => fail(&what, explain(&e)),
        }
    }
    for w in &warnings {
        println!("warn  {w}");
    }
    if failed {
        println!("check failed");
    } else {
        println!("check passed");
    }
    i32::from(failed)
}

fn mask(id: &str) -> String {
    let n = id.chars().count();
    if n <= 8 {
        return "****".into();
    }
    let head: String = id.chars().take(4).collect();
    let tail: String = id.chars().skip(n - 3).collect();
    format!("{head}****{tail}")
}

/// What an operator should do about an API error.
fn explain(e: &ApiError) -> String {
    let hint = match e.code() {
        Some("AuthFailure.SignatureFailure") => {
            " — TENCENT_CLOUD_SECRET_KEY does not match the SecretId"
        }
        Some("AuthFailure.SecretIdNotFound" | "AuthFailure.InvalidSecretId") => {
            " — TENCENT_CLOUD_SECRET_ID is unknown or disabled"
        }
        Some("AuthFailure.TokenFailure") => " — TENCENT_CLOUD_TOKEN is wrong or expired",
        Some("AuthFailure.UnauthorizedOperation" | "UnauthorizedOperation.NoPermission") => {
            " — the key lacks Lighthouse firewall permissions in CAM"
        }
        _ => "",
    };
    format!("{e}{hint}")
}
