//! Hand-parsed command line (no argument crate: the project keeps one small dependency set).

use std::net::SocketAddr;

use crate::ids::{instance_id_ok, known_region};
use crate::rules::PortIdentity;

/// No IPv6-specific code appears in the Lighthouse SDK's error list; this one is the SDK's own
/// spelling for the same refusal in other Tencent Cloud products (CLB, GAAP).
pub(crate) const IPV6_UNSUPPORTED_CODE: &str = "UnsupportedOperation.Ipv6NotSupport";

/// The codes a CAM denial arrives with (docs/lighthouse-api.md#cam-permissions); the first is
/// what the simulator answers unless `--deny-code` picks another.
pub(crate) const DENY_CODES: [&str; 3] = [
    "UnauthorizedOperation.NoPermission",
    "AuthFailure.UnauthorizedOperation",
    "UnauthorizedOperation",
];

pub(crate) const USAGE: &str =
    "usage: lighthouse-sim --credential ID:KEY --instance REGION:lhins-xxxxxxxx [options]
  --listen ADDR                 loopback address to bind (default 127.0.0.1:0)
  --credential ID:KEY           accepted SecretId and SecretKey (repeatable)
  --token TOKEN                 require X-TC-Token to equal TOKEN
  --instance REGION:ID          a simulated instance (repeatable)
  --no-default-rules            start instances with no rules instead of the console defaults
  --foreign-rules N             append N foreign rules (TCP 22 from 198.51.100.x/32) per instance
  --rules FILE                  JSON {\"lhins-...\": [FirewallRule, ...]} appended at start
  --latency-ms N                delay every API answer by N ms
  --spike-ms N --spike-rate R   with probability R add N ms
  --fail-rate R                 with probability R answer an injected error (after auth)
  --fail-code CODE              code to inject (repeatable; default InternalError)
  --drop-rate R                 with probability R close without answering, nothing applied
  --drop-after-apply-rate R     with probability R apply, then close without answering
  --clock-offset SECS           simulated clock = real time + SECS (may be negative)
  --no-date-header              omit the Date response header
  --conflict-after-describe N   the first N DescribeFirewallRules bump FirewallVersion afterwards
  --modify-description-keeps-version
                                ModifyFirewallRuleDescription leaves FirewallVersion alone
  --no-rate-limit               disable the rate limits (per action, Host and SecretId)
  --port-identity-by-set        tell rules apart by the set of ports (`22,443` = `443,22`,
                                `ALL` = `1-65535`) instead of the Port text as written
  --create-inserts-first        CreateFirewallRules puts new rules first instead of last
  --busy-for-ms N               after a successful write on an instance, its writes answer
                                UnsupportedOperation.FirewallBusy for N ms
  --ipv6-unsupported-regions R1,R2
                                IPv6 rules cannot be created in these regions
  --ipv6-unsupported-code CODE  the code they fail with (default
                                UnsupportedOperation.Ipv6NotSupport)
  --deny-actions A1,A2          answer these actions UnauthorizedOperation.NoPermission after
                                authentication, as CAM does for a sub-user lacking them
  --deny-code CODE              the code they are denied with: UnauthorizedOperation.NoPermission
                                (default), AuthFailure.UnauthorizedOperation or
                                UnauthorizedOperation
  --seed N                      seed of the fault-injection PRNG
GET /__state dumps the instances and their rules, and the counters: calls (per action),
calls_by_instance, calls_by_region and calls_by_host (per instance, X-TC-Region or Host, then
action; every call routed, whatever its outcome) and errors (per code).";

pub(crate) struct Config {
    pub(crate) listen: SocketAddr,
    /// (SecretId, SecretKey). Config has no Debug impl so the key cannot be printed by accident.
    pub(crate) credentials: Vec<(String, String)>,
    pub(crate) token: Option<String>,
    /// (Region, InstanceId)
    pub(crate) instances: Vec<(String, String)>,
    pub(crate) default_rules: bool,
    pub(crate) foreign_rules: usize,
    pub(crate) rules_file: Option<String>,
    pub(crate) latency_ms: u64,
    pub(crate) spike_ms: u64,
    pub(crate) spike_rate: f64,
    pub(crate) fail_rate: f64,
    pub(crate) fail_codes: Vec<String>,
    pub(crate) drop_rate: f64,
    pub(crate) drop_after_apply_rate: f64,
    pub(crate) clock_offset: i64,
    pub(crate) date_header: bool,
    pub(crate) conflict_after_describe: u64,
    pub(crate) modify_description_keeps_version: bool,
    pub(crate) rate_limit: bool,
    pub(crate) port_identity: PortIdentity,
    pub(crate) create_inserts_first: bool,
    /// 0: never busy.
    pub(crate) busy_for_ms: u64,
    pub(crate) ipv6_unsupported_regions: Vec<String>,
    pub(crate) ipv6_unsupported_code: String,
    /// Actions CAM does not grant this key (`--deny-actions`).
    pub(crate) deny_actions: Vec<String>,
    /// The denial code CAM answers with (`--deny-code`).
    pub(crate) deny_code: String,
    pub(crate) seed: Option<u64>,
}

pub(crate) enum Parsed {
    Run(Box<Config>),
    Help,
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: `{v}` is not a valid number"))
}

fn rate(flag: &str, v: &str) -> Result<f64, String> {
    let r: f64 = number(flag, v)?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("{flag}: `{v}` is not a probability in 0..=1"))
    }
}

/// The flags followed by a value.
const VALUE_FLAGS: [&str; 21] = [
    "--listen",
    "--credential",
    "--token",
    "--instance",
    "--foreign-rules",
    "--rules",
    "--latency-ms",
    "--spike-ms",
    "--spike-rate",
    "--fail-rate",
    "--fail-code",
    "--drop-rate",
    "--drop-after-apply-rate",
    "--clock-offset",
    "--conflict-after-describe",
    "--busy-for-ms",
    "--ipv6-unsupported-regions",
    "--ipv6-unsupported-code",
    "--deny-actions",
    "--deny-code",
    "--seed",
];

/// The configuration before any flag.
fn defaults() -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        credentials: Vec::new(),
        token: None,
        instances: Vec::new(),
        default_rules: true,
        foreign_rules: 0,
        rules_file: None,
        latency_ms: 0,
        spike_ms: 0,
        spike_rate: 0.0,
        fail_rate: 0.0,
        fail_codes: Vec::new(),
        drop_rate: 0.0,
        drop_after_apply_rate: 0.0,
        clock_offset: 0,
        date_header: true,
        conflict_after_describe: 0,
        modify_description_keeps_version: false,
        rate_limit: true,
        port_identity: PortIdentity::Text,
        create_inserts_first: false,
        busy_for_ms: 0,
        ipv6_unsupported_regions: Vec::new(),
        ipv6_unsupported_code: IPV6_UNSUPPORTED_CODE.to_string(),
        deny_actions: Vec::new(),
        deny_code: DENY_CODES[0].to_string(),
        seed: None,
    }
}

/// A flag without a value, set; false when `flag` is none of them.
fn set_switch(cfg: &mut Config, flag: &str) -> bool {
    match flag {
        "--no-default-rules" => cfg.default_rules = false,
        "--no-date-header" => cfg.date_header = false,
        "--modify-description-keeps-version" => cfg.modify_description_keeps_version = true,
        "--no-rate-limit" => cfg.rate_limit = false,
        "--port-identity-by-set" => cfg.port_identity = PortIdentity::Set,
        "--create-inserts-first" => cfg.create_inserts_first = true,
        _ => return false,
    }
    true
}

/// A flag of [`VALUE_FLAGS`] with its value `v`, set.
fn set_value(cfg: &mut Config, flag: &str, v: &str) -> Result<(), String> {
    match flag {
        "--listen" => cfg.listen = listen(v)?,
        "--credential" => cfg.credentials.push(credential(v)?),
        "--token" => cfg.token = Some(v.to_string()),
        "--instance" => {
            let instance = instance(v, &cfg.instances)?;
            cfg.instances.push(instance);
        }
        "--foreign-rules" => cfg.foreign_rules = number(flag, v)?,
        "--rules" => cfg.rules_file = Some(v.to_string()),
        "--latency-ms" => cfg.latency_ms = number(flag, v)?,
        "--spike-ms" => cfg.spike_ms = number(flag, v)?,
        "--spike-rate" => cfg.spike_rate = rate(flag, v)?,
        "--fail-rate" => cfg.fail_rate = rate(flag, v)?,
        "--fail-code" => cfg.fail_codes.push(code(flag, v)?),
        "--drop-rate" => cfg.drop_rate = rate(flag, v)?,
        "--drop-after-apply-rate" => cfg.drop_after_apply_rate = rate(flag, v)?,
        "--clock-offset" => cfg.clock_offset = number(flag, v)?,
        "--conflict-after-describe" => cfg.conflict_after_describe = number(flag, v)?,
        "--busy-for-ms" => cfg.busy_for_ms = number(flag, v)?,
        "--ipv6-unsupported-regions" => {
            for region in v.split(',') {
                if !known_region(region) {
                    return Err(format!("{flag}: unknown region `{region}`"));
                }
                cfg.ipv6_unsupported_regions.push(region.to_string());
            }
        }
        "--ipv6-unsupported-code" => cfg.ipv6_unsupported_code = code(flag, v)?,
        "--deny-actions" => {
            cfg.deny_actions
                .extend(v.split(',').filter(|a| !a.is_empty()).map(str::to_string));
        }
        "--deny-code" => {
            if !DENY_CODES.contains(&v) {
                return Err(format!(
                    "{flag}: `{v}` is not one of {}",
                    DENY_CODES.join(", ")
                ));
            }
            cfg.deny_code = v.to_string();
        }
        _ => cfg.seed = Some(number(flag, v)?),
    }
    Ok(())
}

/// `--listen`: a loopback IP:PORT.
fn listen(v: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = v
        .parse()
        .map_err(|_| format!("--listen: `{v}` is not an IP:PORT address"))?;
    // The simulator accepts any signature from its fixed test keys: it must never be
    // reachable from another machine.
    if !addr.ip().is_loopback() {
        return Err(format!("--listen: `{v}` is not a loopback address"));
    }
    Ok(addr)
}

/// `--credential ID:KEY`, neither empty.
fn credential(v: &str) -> Result<(String, String), String> {
    let (id, key) = v
        .split_once(':')
        .filter(|(id, key)| !id.is_empty() && !key.is_empty())
        .ok_or("--credential needs ID:KEY")?;
    Ok((id.to_string(), key.to_string()))
}

/// `--instance REGION:ID`: a known region, a well-formed ID not among `instances` yet.
fn instance(v: &str, instances: &[(String, String)]) -> Result<(String, String), String> {
    let (region, id) = v
        .split_once(':')
        .ok_or_else(|| format!("--instance: `{v}` is not REGION:ID"))?;
    if !known_region(region) {
        return Err(format!("--instance: unknown region `{region}`"));
    }
    if !instance_id_ok(id) {
        return Err(format!(
            "--instance: `{id}` is not lhins- plus 8 lowercase alphanumerics"
        ));
    }
    if instances.iter().any(|(_, i)| i == id) {
        return Err(format!("--instance: `{id}` given twice"));
    }
    Ok((region.to_string(), id.to_string()))
}

/// An error code to answer with: not empty.
fn code(flag: &str, v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Err(format!("{flag} needs a code"));
    }
    Ok(v.to_string())
}

pub(crate) fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut cfg = defaults();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let flag = flag.as_str();
        match flag {
            "-h" | "--help" => return Ok(Parsed::Help),
            _ if set_switch(&mut cfg, flag) => {}
            _ if VALUE_FLAGS.contains(&flag) => {
                let v = it
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value"))?
                    .as_str();
                set_value(&mut cfg, flag, v)?;
            }
            other => return Err(format!("unknown flag `{other}` (try --help)")),
        }
    }
    if cfg.credentials.is_empty() {
        return Err("at least one --credential ID:KEY is required".to_string());
    }
    if cfg.instances.is_empty() {
        return Err("at least one --instance REGION:lhins-xxxxxxxx is required".to_string());
    }
    if cfg.fail_codes.is_empty() {
        cfg.fail_codes.push("InternalError".to_string());
    }
    Ok(Parsed::Run(Box::new(cfg)))
}
