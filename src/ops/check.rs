//! `--check`: the configuration, then (read-only) credentials, clock, every instance and region,
//! and quota headroom.

use super::{client, per_instance};
use crate::clock;
use crate::cloud::error::ApiError;
use crate::config::{mask_id, Config};
use crate::rules::desc::{self, Desc};
use crate::rules::planner::QUOTA;

/// Skew the API tolerates is 300 s; past this much, knockd works only thanks to correction.
const SKEW_FAIL_SECS: i64 = 60;
const SKEW_WARN_SECS: i64 = 5;

pub fn check(config: &Config) -> i32 {
    outln!(
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
        outln!("FAIL  {what}: {why}");
    };
    // config.warnings already covers METHOD 3, a plain-http endpoint and a readable key file.
    let mut warnings: Vec<String> = config.warnings.clone();
    let Some(client) = client(config) else {
        return 1;
    };
    // Credentials and clock: DescribeRegions needs no region and touches nothing.
    let regions = match client.call("DescribeRegions", None, &serde_json::json!({})) {
        Ok(reply) => {
            outln!(
                "ok    credentials accepted (SecretId {}, RequestId {})",
                mask_id(&config.cloud.secret_id),
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
                outln!("ok    clock within {}s of the API", skew.abs().max(1));
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
                outln!("warn  {w}");
            }
            outln!("check failed");
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
    let limit = QUOTA.saturating_sub(config.rules.quota_reserve);
    let needed = config.rules.ports.len();
    for (inst, result) in config.cloud.instances.iter().zip(results) {
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
                    .filter(|r| desc::parse(&config.rules.prefix, &r.description) != Desc::Foreign)
                    .count();
                let foreign = rules.len() - owned;
                if foreign + needed > limit {
                    fail(&what, format!("{foreign} foreign rules leave no room for a knock's {needed} rule(s) under the quota of {limit}"));
                } else {
                    outln!(
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
        outln!("warn  {w}");
    }
    if failed {
        outln!("check failed");
    } else {
        outln!("check passed");
    }
    i32::from(failed)
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
