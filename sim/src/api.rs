//! The request checks in the cloud's order (docs/lighthouse-api.md: signing, and the fake-server
//! behaviour), then the seven actions.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::action::Action;
use crate::args::Config;
use crate::auth::authenticate;
use crate::error::{err, ApiError};
use crate::http::Request;
use crate::ids::{instance_id_ok, known_region};
use crate::instances;
use crate::rules::{self, Rule, MAX_RULES};
use crate::state::{Instance, State};

pub(crate) const API_VERSION: &str = "2020-03-24";

/// What the connection handler does after the checks.
pub(crate) struct Processed {
    pub(crate) result: Result<Map<String, Value>, ApiError>,
    /// `--drop-after-apply-rate` fired: the call was applied, the answer must not be sent.
    pub(crate) drop_after_apply: bool,
}

/// Every check, in order, ending in the action itself. `now` is the simulated clock.
pub(crate) fn process(
    st: &mut State,
    cfg: &Config,
    req: &Request,
    action: Option<Action>,
    now: i64,
) -> Processed {
    let mut drop_after_apply = false;
    let result = check_and_run(st, cfg, req, action, now, &mut drop_after_apply);
    Processed {
        result,
        drop_after_apply,
    }
}

fn check_and_run(
    st: &mut State,
    cfg: &Config,
    req: &Request,
    action: Option<Action>,
    now: i64,
    drop_after_apply: &mut bool,
) -> Result<Map<String, Value>, ApiError> {
    let action = action_of(req, action)?;
    check_api_version(req)?;
    let secret_id = authorize(cfg, req, action, now)?;
    admit(st, cfg, req, action, &secret_id)?;
    *drop_after_apply = st.rng.chance(cfg.drop_after_apply_rate);

    let region = region_of(req, action)?;
    let body = body_of(req, action)?;
    let region = region.unwrap_or("");
    match action {
        Action::DescribeRegions => Ok(instances::describe_regions(req)),
        Action::DescribeInstances => instances::describe_instances(st, region, &body),
        _ => run_on_instance(st, cfg, action, region, &body),
    }
}

/// The action the router found, else why the `X-TC-Action` header names none.
fn action_of(req: &Request, action: Option<Action>) -> Result<Action, ApiError> {
    match (action, req.header("x-tc-action")) {
        (Some(a), _) => Ok(a),
        (None, None) => Err(err(
            "MissingParameter",
            "The request is missing a required parameter `X-TC-Action`.",
        )),
        (None, Some(a)) => Err(err(
            "InvalidAction",
            format!("The action `{a}` is not supported."),
        )),
    }
}

/// `X-TC-Version` is the one API version.
fn check_api_version(req: &Request) -> Result<(), ApiError> {
    match req.header("x-tc-version") {
        None => Err(err(
            "MissingParameter",
            "The request is missing a required parameter `X-TC-Version`.",
        )),
        Some(API_VERSION) => Ok(()),
        Some(v) => Err(err(
            "NoSuchVersion",
            format!("The API version `{v}` does not exist."),
        )),
    }
}

/// The signature, the token, then CAM (which checks permissions after authentication,
/// docs/lighthouse-api.md#cam-permissions). Ok: the caller's SecretId.
fn authorize(cfg: &Config, req: &Request, action: Action, now: i64) -> Result<String, ApiError> {
    let secret_id = authenticate(cfg, req, now)?;
    if let Some(token) = &cfg.token {
        if req.header("x-tc-token") != Some(token.as_str()) {
            return Err(err(
                "AuthFailure.TokenFailure",
                "The token is invalid or missing.",
            ));
        }
    }
    if cfg.deny_actions.iter().any(|a| a == action.name()) {
        return Err(err(
            &cfg.deny_code,
            format!(
                "You are not authorized to perform operation ({}).",
                action.name()
            ),
        ));
    }
    Ok(secret_id)
}

/// The rate limit, then an injected fault (`--fail-rate`).
fn admit(
    st: &mut State,
    cfg: &Config,
    req: &Request,
    action: Action,
    secret_id: &str,
) -> Result<(), ApiError> {
    if cfg.rate_limit && !st.admit(action, &req.host(), secret_id) {
        return Err(err(
            "RequestLimitExceeded",
            format!(
                "Your requests of {} exceed the frequency limit.",
                action.name()
            ),
        ));
    }
    if st.rng.chance(cfg.fail_rate) && !cfg.fail_codes.is_empty() {
        let code = cfg.fail_codes[st.rng.below(cfg.fail_codes.len())].clone();
        return Err(ApiError::new(
            &code,
            "Injected fault (lighthouse-sim --fail-rate).".to_string(),
        ));
    }
    Ok(())
}

/// The region of `X-TC-Region`: a known one, or None for DescribeRegions, which needs none.
fn region_of(req: &Request, action: Action) -> Result<Option<&str>, ApiError> {
    match (action, req.header("x-tc-region")) {
        (Action::DescribeRegions, _) => Ok(None),
        (_, None) | (_, Some("")) => Err(err(
            "MissingParameter",
            "The request is missing a required parameter `Region`.",
        )),
        (_, Some(r)) if !known_region(r) => Err(err(
            "UnsupportedRegion",
            format!("The region `{r}` is not supported."),
        )),
        (_, Some(r)) => Ok(Some(r)),
    }
}

/// The body: a JSON object of only the action's fields.
fn body_of(req: &Request, action: Action) -> Result<Map<String, Value>, ApiError> {
    let body: Value = std::str::from_utf8(&req.body)
        .ok()
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| err("InvalidParameter", "The request body is not valid JSON."))?;
    let body = match body {
        Value::Object(m) => m,
        _ => {
            return Err(err(
                "InvalidParameter",
                "The request body must be a JSON object.",
            ))
        }
    };
    if let Some(k) = body.keys().find(|k| !action.fields().contains(&k.as_str())) {
        return Err(err(
            "UnknownParameter",
            format!("The parameter `{k}` is not recognized."),
        ));
    }
    Ok(body)
}

/// The five actions on one instance's firewall, with `--busy-for-ms` and
/// `--conflict-after-describe`.
fn run_on_instance(
    st: &mut State,
    cfg: &Config,
    action: Action,
    region: &str,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let idx = find_instance(st, region, body)?;
    let inst = &mut st.instances[idx];
    if action.is_write() && inst.busy_until.is_some_and(|t| Instant::now() < t) {
        return Err(err(
            "UnsupportedOperation.FirewallBusy",
            "Another firewall operation is in progress (lighthouse-sim --busy-for-ms).",
        ));
    }
    let out = match action {
        Action::DescribeFirewallRules => describe_rules(inst, body),
        Action::CreateFirewallRules => create_rules(inst, body, cfg),
        Action::DeleteFirewallRules => delete_rules(inst, body, cfg),
        Action::ModifyFirewallRules => modify_rules(inst, body, cfg),
        _ => modify_description(inst, body, cfg),
    }?;
    // `--busy-for-ms`: the cloud is still applying this write; the next ones must wait.
    if action.is_write() && cfg.busy_for_ms > 0 {
        inst.busy_until = Some(Instant::now() + Duration::from_millis(cfg.busy_for_ms));
    }
    // `--conflict-after-describe`: another writer changes the firewall right after this
    // client read it, so its next write carries a stale FirewallVersion.
    if action == Action::DescribeFirewallRules && st.conflicts_left > 0 {
        st.conflicts_left -= 1;
        st.instances[idx].version += 1;
    }
    Ok(out)
}

fn find_instance(st: &State, region: &str, body: &Map<String, Value>) -> Result<usize, ApiError> {
    let id = match body.get("InstanceId") {
        None => {
            return Err(err(
                "MissingParameter",
                "The request is missing a required parameter `InstanceId`.",
            ))
        }
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(err(
                "InvalidParameter",
                "The parameter `InstanceId` must be a string.",
            ))
        }
    };
    if !instance_id_ok(id) {
        return Err(err(
            "InvalidParameterValue.InstanceIdMalformed",
            format!("The instance ID `{id}` is malformed."),
        ));
    }
    // Instances live in one region: the same ID under another X-TC-Region does not exist.
    st.instances
        .iter()
        .position(|i| i.id == id && i.region == region)
        .ok_or_else(|| {
            err(
                "ResourceNotFound.InstanceIdNotFound",
                format!("The instance `{id}` does not exist in region `{region}`."),
            )
        })
}

/// An optional JSON integer field; present but not an integer is `InvalidParameter`.
fn opt_int(body: &Map<String, Value>, key: &str) -> Result<Option<i64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            err(
                "InvalidParameter",
                format!("The parameter `{key}` must be an integer."),
            )
        }),
    }
}

pub(crate) fn offset_limit(body: &Map<String, Value>) -> Result<(usize, usize), ApiError> {
    let offset = opt_int(body, "Offset")?.unwrap_or(0);
    if offset < 0 {
        return Err(err(
            "InvalidParameterValue.Negative",
            "`Offset` must not be negative.",
        ));
    }
    let limit = opt_int(body, "Limit")?.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(err(
            "InvalidParameterValue.OutOfRange",
            "`Limit` must be within 1..=100.",
        ));
    }
    Ok((offset as usize, limit as usize))
}

/// FirewallVersion (optimistic concurrency): an optional version that, when given, must equal the current one.
fn check_version(inst: &Instance, body: &Map<String, Value>) -> Result<(), ApiError> {
    match body.get("FirewallVersion") {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_u64() {
            None => Err(err(
                "InvalidParameter",
                "The parameter `FirewallVersion` must be a non-negative integer.",
            )),
            Some(n) if n == inst.version => Ok(()),
            Some(n) => Err(err(
                "UnsupportedOperation.FirewallVersionMismatch",
                format!(
                    "FirewallVersion {n} differs from the current version {}.",
                    inst.version
                ),
            )),
        },
    }
}

fn required<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a Value, ApiError> {
    body.get(key).ok_or_else(|| {
        err(
            "MissingParameter",
            format!("The request is missing a required parameter `{key}`."),
        )
    })
}

fn describe_rules(
    inst: &Instance,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let (offset, limit) = offset_limit(body)?;
    let set: Vec<Value> = inst
        .rules
        .iter()
        .skip(offset)
        .take(limit)
        .map(Rule::to_info)
        .collect();
    let mut m = Map::new();
    m.insert("TotalCount".into(), inst.rules.len().into());
    m.insert("FirewallVersion".into(), inst.version.into());
    m.insert("FirewallRuleSet".into(), set.into());
    Ok(m)
}

/// `--ipv6-unsupported-regions`: IPv6 rules (an `Ipv6CidrBlock`, ICMPv6 included) cannot be
/// created in the instance's region.
fn check_ipv6_supported(inst: &Instance, new: &[Rule], cfg: &Config) -> Result<(), ApiError> {
    if !cfg.ipv6_unsupported_regions.contains(&inst.region) {
        return Ok(());
    }
    match new.iter().position(|r| r.ipv6.is_some()) {
        None => Ok(()),
        Some(i) => Err(err(
            &cfg.ipv6_unsupported_code,
            format!(
                "`FirewallRules.{i}`: IPv6 firewall rules are not supported in region `{}`.",
                inst.region
            ),
        )),
    }
}

fn create_rules(
    inst: &mut Instance,
    body: &Map<String, Value>,
    cfg: &Config,
) -> Result<Map<String, Value>, ApiError> {
    let new = rules::parse_rule_list(required(body, "FirewallRules")?, cfg.port_identity)?;
    check_ipv6_supported(inst, &new, cfg)?;
    check_version(inst, body)?;
    if let Some((i, _)) = new
        .iter()
        .enumerate()
        .find(|(_, r)| inst.rules.iter().any(|o| o.same(r, cfg.port_identity)))
    {
        return Err(err(
            "InvalidParameter.FirewallRulesExist",
            format!("`FirewallRules.{i}` already exists on the instance."),
        ));
    }
    if inst.rules.len() + new.len() > MAX_RULES {
        return Err(err(
            "LimitExceeded.FirewallRulesLimitExceeded",
            format!(
                "{} rules exist; adding {} would pass the quota of {MAX_RULES}.",
                inst.rules.len(),
                new.len()
            ),
        ));
    }
    // Where the real API puts new rules is not documented; the console lists them last.
    if cfg.create_inserts_first {
        inst.rules.splice(0..0, new);
    } else {
        inst.rules.extend(new);
    }
    inst.version += 1;
    Ok(Map::new())
}

fn delete_rules(
    inst: &mut Instance,
    body: &Map<String, Value>,
    cfg: &Config,
) -> Result<Map<String, Value>, ApiError> {
    let ports = cfg.port_identity;
    let gone = rules::parse_rule_list(required(body, "FirewallRules")?, ports)?;
    check_version(inst, body)?;
    if let Some((i, _)) = gone
        .iter()
        .enumerate()
        .find(|(_, r)| !inst.rules.iter().any(|o| o.same(r, ports)))
    {
        return Err(err(
            "ResourceNotFound.FirewallRulesNotFound",
            format!("`FirewallRules.{i}` does not exist on the instance."),
        ));
    }
    inst.rules
        .retain(|o| !gone.iter().any(|r| r.same(o, ports)));
    inst.version += 1;
    Ok(Map::new())
}

fn modify_rules(
    inst: &mut Instance,
    body: &Map<String, Value>,
    cfg: &Config,
) -> Result<Map<String, Value>, ApiError> {
    let list = required(body, "FirewallRules")?;
    if list.as_array().is_some_and(|a| a.len() > MAX_RULES) {
        return Err(err(
            "InvalidParameterValue.LimitExceeded",
            format!("`FirewallRules` holds more than {MAX_RULES} rules."),
        ));
    }
    let new = rules::parse_rule_list(list, cfg.port_identity)?;
    check_ipv6_supported(inst, &new, cfg)?;
    check_version(inst, body)?;
    inst.rules = new;
    inst.version += 1;
    Ok(Map::new())
}

fn modify_description(
    inst: &mut Instance,
    body: &Map<String, Value>,
    cfg: &Config,
) -> Result<Map<String, Value>, ApiError> {
    let wanted = rules::parse_rule(required(body, "FirewallRule")?, "FirewallRule")?;
    check_version(inst, body)?;
    let rule = inst
        .rules
        .iter_mut()
        .find(|o| o.same(&wanted, cfg.port_identity))
        .ok_or_else(|| {
            err(
                "ResourceNotFound.FirewallRulesNotFound",
                "`FirewallRule` does not exist on the instance.",
            )
        })?;
    rule.description = wanted.description;
    if !cfg.modify_description_keeps_version {
        inst.version += 1;
    }
    Ok(Map::new())
}
