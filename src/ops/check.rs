//! `--check`: the configuration, then (read-only) credentials, clock, every instance and quota
//! headroom, proved with `DescribeFirewallRules` on each instance alone: the one action an
//! operator must grant anyway, on the instance itself. `DescribeRegions` and
//! `DescribeInstances`, which CAM grants only on `*`, are extras: a denial there is a note
//! (docs/lighthouse-api.md#cam-permissions).

use serde_json::{json, Value};

use super::{client, in_parallel, rule_line};
use crate::clock;
use crate::cloud::client::Client;
use crate::cloud::error::{explain, is_denied, is_global, is_lookup, ApiError};
use crate::cloud::wire;
use crate::config::{mask_id, Config, Instance};
use crate::exit::Exit;
use crate::rules::desc::{self, Desc};
use crate::rules::planner::{self, QUOTA};
use crate::rules::FirewallRule;

/// Skew the API tolerates is 300 s; past this much, knockd works only thanks to correction.
const SKEW_FAIL_SECS: i64 = 60;
const SKEW_WARN_SECS: i64 = 5;

/// One instance's firewall as `--check` read it.
struct Probe {
    rules: Vec<FirewallRule>,
    version: u64,
    request_id: String,
    /// Server minus local time, from the answer's `Date`.
    skew: Option<i64>,
}

fn probe(client: &Client, inst: &Instance) -> Result<Probe, ApiError> {
    let reply = client.call(
        "DescribeFirewallRules",
        Some(&inst.region),
        &json!({"InstanceId": inst.id, "Offset": 0, "Limit": 100}),
    )?;
    let skew = reply.date.map(|d| d - clock::now());
    let request_id = reply.request_id.clone();
    let page = wire::describe_page(reply)?;
    let (rules, version) = if page.total > page.rules.len() {
        client.describe_rules(inst)?
    } else {
        (page.rules, page.version)
    };
    Ok(Probe {
        rules,
        version,
        request_id,
        skew,
    })
}

/// `--check-config`: the report, offline. A clients-file line a serving knockd would ignore is
/// an error here: the check is where the operator learns that one of their clients cannot knock.
pub(super) fn check_config(config: &Config) -> Exit {
    if !config.keys.invalid_lines.is_empty() {
        crate::log::stderr_line("knockd: configuration error");
        for e in &config.keys.invalid_lines {
            crate::log::stderr_line(&format!("  KNOCK_CLIENTS_FILE: {e}"));
        }
        return Exit::Usage;
    }
    crate::stdout::print(config.report().trim_end_matches('\n'));
    Exit::Success
}

/// What `--check` has found so far: whether a check failed (its FAIL line is printed at
/// once), and the warnings and notes printed at the end.
struct Findings {
    failed: bool,
    warnings: Vec<String>,
    notes: Vec<String>,
}

impl Findings {
    fn fail(&mut self, what: &str, why: String) {
        self.failed = true;
        outln!("FAIL  {what}: {why}");
    }
}

pub(super) fn check(config: &Config) -> Exit {
    print_configuration(config);
    // config.warnings already covers METHOD 3, a plain-http endpoint and a readable key file.
    let mut f = Findings {
        failed: false,
        warnings: config.warnings.clone(),
        notes: Vec::new(),
    };
    if config.cloud.token.is_some() {
        f.notes.push(TOKEN_NOTE.to_string());
    }
    let Some(client) = client(config) else {
        return Exit::Failure;
    };
    let instances = &config.cloud.instances;
    let Some(results) = probe_all(&client, instances, &mut f) else {
        return Exit::Failure;
    };
    print_credentials(config, &results);
    check_clock(&client, &results, &mut f);

    // Extras, each a note when CAM denies it.
    let regions = optional_regions(&client, &mut f.notes);
    let listed = optional_instances(&client, instances, &mut f.notes);

    for (inst, result) in instances.iter().zip(results) {
        check_instance(config, inst, result, regions.as_deref(), &listed, &mut f);
    }
    finish(&f.warnings, &f.notes);
    if f.failed {
        outln!("check failed");
    } else {
        outln!("check passed");
    }
    Exit::failed_if(f.failed)
}

/// The configuration's line, then which hosts the calls go to, and so which rate budgets they
/// share (docs/lighthouse-api.md#rate-limits).
fn print_configuration(config: &Config) {
    outln!(
        "ok    configuration {}",
        config
            .file
            .as_ref()
            .map_or("(environment only)".to_string(), |f| f
                .display()
                .to_string())
    );
    for line in endpoint_lines(config) {
        outln!("ok    {line}");
    }
}

/// Every instance's probe, in the order of `instances`. None: there is no instance, or the
/// first one failed for a reason every instance shares (its FAIL line, the warnings and notes
/// and "check failed" printed).
fn probe_all(
    client: &Client,
    instances: &[Instance],
    f: &mut Findings,
) -> Option<Vec<Result<Probe, ApiError>>> {
    let (first, others) = instances.split_first()?;
    // The first instance alone proves the key and measures the clock (correcting it, so the
    // others are signed right), then the others in parallel.
    let first_result = probe(client, first);
    if let Err(e) = first_result.as_ref().map(|_| ()) {
        if is_global(e) {
            let what = match e {
                ApiError::Api { .. } => "credentials",
                ApiError::Clock(_) => "clock",
                _ => "API",
            };
            f.fail(what, explain(e));
            finish(&f.warnings, &f.notes);
            outln!("check failed");
            return None;
        }
    }
    let mut results = vec![first_result];
    results.extend(in_parallel(others, |inst| probe(client, inst)));
    Some(results)
}

/// Only an answer given after authentication proves the key: a success, a denial, or an
/// instance or region the API looked up. After anything else the instance lines say why.
fn print_credentials(config: &Config, results: &[Result<Probe, ApiError>]) {
    let proved = results.iter().find_map(|r| match r {
        Ok(p) => Some(format!(", RequestId {}", p.request_id)),
        Err(e) if is_denied(e) || is_lookup(e) => Some(String::new()),
        Err(_) => None,
    });
    if let Some(request) = proved {
        outln!(
            "ok    credentials accepted (SecretId {}{request})",
            mask_id(&config.cloud.secret_id),
        );
    }
}

/// The clock against the API's: the client's correction, else the first answer's `Date`.
fn check_clock(client: &Client, results: &[Result<Probe, ApiError>], f: &mut Findings) {
    let measured = results
        .iter()
        .filter_map(|r| r.as_ref().ok().and_then(|p| p.skew))
        .next();
    let skew = match (client.skew(), measured) {
        (0, Some(s)) => Some(s),
        (0, None) => None,
        (s, _) => Some(s),
    };
    match skew {
        Some(skew) if skew.abs() >= SKEW_FAIL_SECS => f.fail(
            "clock",
            format!(
                "this machine's clock is {}s {} the API's; knockd corrects for it, but fix the clock (NTP)",
                skew.abs(),
                if skew > 0 { "behind" } else { "ahead of" }
            ),
        ),
        Some(skew) if skew.abs() >= SKEW_WARN_SECS => {
            f.warnings.push(format!("clock skew of {skew:+}s against the API"))
        }
        Some(skew) => outln!("ok    clock within {}s of the API", skew.abs().max(1)),
        None => f.notes.push(
            "clock not compared: no answer carried a Date header (a wrong clock would show as AuthFailure.SignatureExpire)".into(),
        ),
    }
}

/// One instance: its region offered (when DescribeRegions answered), its probe answered, then
/// its rules.
fn check_instance(
    config: &Config,
    inst: &Instance,
    result: Result<Probe, ApiError>,
    regions: Option<&[String]>,
    listed: &[String],
    f: &mut Findings,
) {
    let what = format!("instance {} ({})", inst.id, inst.region);
    if regions.is_some_and(|r| !r.is_empty() && !r.contains(&inst.region)) {
        f.fail(
            &what,
            format!("region {} is not offered by Lighthouse", inst.region),
        );
        return;
    }
    let probe = match result {
        Ok(p) => p,
        // The error names the action and the resource to grant.
        Err(e) if is_denied(&e) => {
            let exists = if listed.contains(&inst.id) {
                " — the instance exists (DescribeInstances lists it)"
            } else {
                ""
            };
            f.fail(&what, format!("{e}{exists}"));
            return;
        }
        Err(e) if e.code().is_some_and(|c| c.starts_with("ResourceNotFound.")) => {
            f.fail(&what, "not found in this region; check TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS (write region:lhins-… for instances outside TENCENT_CLOUD_REGION)".into());
            return;
        }
        Err(e) => {
            f.fail(&what, explain(&e));
            return;
        }
    };
    check_rules(config, &what, &probe, f);
}

/// An instance's rules: room under the quota for a knock, legacy rules of the Python
/// original, DROP rules above knockd's ports.
fn check_rules(config: &Config, what: &str, probe: &Probe, f: &mut Findings) {
    let limit = QUOTA.saturating_sub(config.rules.quota_reserve);
    let needed = config.rules.ports.len();
    let rules = &probe.rules;
    let descs: Vec<Desc> = rules
        .iter()
        .map(|r| desc::parse(&config.rules.prefix, &r.description))
        .collect();
    let owned = descs.iter().filter(|d| **d != Desc::Foreign).count();
    let foreign = rules.len() - owned;
    if foreign + needed > limit {
        f.fail(what, format!("{foreign} foreign rules leave no room for a knock's {needed} rule(s) under the quota of {limit}"));
    } else {
        outln!(
            "ok    {what}: {} of {QUOTA} rules used ({owned} by knockd), room for {} more addresses, FirewallVersion {}",
            rules.len(),
            (limit - foreign) / needed.max(1),
            probe.version,
        );
    }
    let legacy = descs
        .iter()
        .filter(|d| matches!(d, Desc::Legacy { .. }))
        .count();
    if legacy > 0 {
        f.notes.push(format!(
            "{what}: {legacy} legacy rule(s) of the Python original ({}<label>@@YYYYMMDD) are treated as knockd's: each expires {} after its date, and is rewritten in the current format when its address knocks again",
            desc::LEGACY_PREFIX,
            crate::grammar::format_duration(config.rules.ttl.as_secs()),
        ));
    }
    for drop in planner::drops_over_ports(rules, &config.rules.ports) {
        f.warnings.push(format!(
            "{what}: DROP rule {} covers ports knockd opens: the API evaluates rules top down and a DROP above knockd's ACCEPT wins, so a knock from an address in {} may report success and still be blocked",
            rule_line(&drop),
            drop.address()
        ));
    }
}

/// One line per API host: its URL, the regions and instances it serves, and whether the calls
/// without an instance (DescribeRegions) go there too.
fn endpoint_lines(config: &Config) -> Vec<String> {
    let cloud = &config.cloud;
    let home = cloud.endpoint(None);
    let mut endpoints = cloud.endpoints();
    if !endpoints.iter().any(|(e, _)| *e == home) {
        endpoints.push((home.clone(), Vec::new()));
    }
    endpoints
        .iter()
        .map(|(e, regions)| {
            let n = cloud
                .instances
                .iter()
                .filter(|i| regions.contains(&i.region.as_str()))
                .count();
            let mut served = Vec::new();
            if n > 0 {
                let s = if n == 1 { "" } else { "s" };
                served.push(format!("{} ({n} instance{s})", regions.join(",")));
            }
            if *e == home {
                served.push("DescribeRegions".to_string());
            }
            format!("API host {} for {}", e.url(), served.join("; "))
        })
        .collect()
}

const TOKEN_NOTE: &str = "TENCENT_CLOUD_TOKEN is set: temporary credentials expire (STS defaults: GetFederationToken 1800 s, AssumeRole 7200 s) and the API does not say when; knockd reads them once at start, so a serving knockd needs a permanent key pair (docs/lighthouse-api.md#temporary-credentials)";

fn finish(warnings: &[String], notes: &[String]) {
    for w in warnings {
        outln!("warn  {w}");
    }
    for n in notes {
        outln!("note  {n}");
    }
}

/// The regions offering Lighthouse, or None when DescribeRegions is denied or fails (a note).
fn optional_regions(client: &Client, notes: &mut Vec<String>) -> Option<Vec<String>> {
    match client
        .call("DescribeRegions", None, &json!({}))
        .and_then(|reply| reply.body())
    {
        Ok(body) => Some(
            body.get("RegionSet")
                .and_then(Value::as_array)
                .map(|set| {
                    set.iter()
                        .filter_map(|r| r.get("Region").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Err(e) => {
            notes.push(optional_note(
                "DescribeRegions",
                "regions were not cross-checked",
                &e,
            ));
            None
        }
    }
}

/// The configured instances DescribeInstances lists (one call per region); a denial is a note.
fn optional_instances(
    client: &Client,
    instances: &[Instance],
    notes: &mut Vec<String>,
) -> Vec<String> {
    let mut regions: Vec<&str> = Vec::new();
    for i in instances {
        if !regions.contains(&i.region.as_str()) {
            regions.push(&i.region);
        }
    }
    let mut listed = Vec::new();
    for region in regions {
        let ids: Vec<&str> = instances
            .iter()
            .filter(|i| i.region == region)
            .map(|i| i.id.as_str())
            .collect();
        match client.describe_instances(region, &ids) {
            Ok(found) => listed.extend(found),
            Err(e) => {
                notes.push(optional_note(
                    "DescribeInstances",
                    "instances were checked through their firewalls only",
                    &e,
                ));
                break;
            }
        }
    }
    listed
}

fn optional_note(action: &str, consequence: &str, e: &ApiError) -> String {
    if is_denied(e) {
        format!(
            "lighthouse:{action} is not granted ({}; CAM grants it only on resource *): {consequence}. Optional: knockd itself never needs it",
            e.code().unwrap_or("denied")
        )
    } else {
        format!("optional {action} failed ({e}): {consequence}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str) -> ApiError {
        ApiError::api(code)
    }

    #[test]
    fn a_denied_optional_action_is_a_note() {
        let note = optional_note(
            "DescribeRegions",
            "x",
            &api("AuthFailure.UnauthorizedOperation"),
        );
        assert!(
            note.contains("lighthouse:DescribeRegions is not granted"),
            "{note}"
        );
        assert!(note.contains("only on resource *"), "{note}");
    }
}
