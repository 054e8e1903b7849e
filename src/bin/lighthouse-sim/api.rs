//! The simulated cloud: shared state, the request checks of sections 2 and 10a in their order,
//! and the seven actions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use knockd::cloud::sign;
use serde_json::{json, Map, Value};

use crate::args::Config;
use crate::http::Request;
use crate::rules::{self, Rule, MAX_RULES};

pub const API_VERSION: &str = "2020-03-24";
const SERVICE: &str = "lighthouse";
/// Section 2: a timestamp more than five minutes from server time is refused.
const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &str, message: String) -> ApiError {
        ApiError {
            code: code.to_string(),
            message,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    DescribeFirewallRules,
    CreateFirewallRules,
    DeleteFirewallRules,
    ModifyFirewallRuleDescription,
    ModifyFirewallRules,
    DescribeRegions,
    DescribeInstances,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "DescribeFirewallRules" => Action::DescribeFirewallRules,
            "CreateFirewallRules" => Action::CreateFirewallRules,
            "DeleteFirewallRules" => Action::DeleteFirewallRules,
            "ModifyFirewallRuleDescription" => Action::ModifyFirewallRuleDescription,
            "ModifyFirewallRules" => Action::ModifyFirewallRules,
            "DescribeRegions" => Action::DescribeRegions,
            "DescribeInstances" => Action::DescribeInstances,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::DescribeFirewallRules => "DescribeFirewallRules",
            Action::CreateFirewallRules => "CreateFirewallRules",
            Action::DeleteFirewallRules => "DeleteFirewallRules",
            Action::ModifyFirewallRuleDescription => "ModifyFirewallRuleDescription",
            Action::ModifyFirewallRules => "ModifyFirewallRules",
            Action::DescribeRegions => "DescribeRegions",
            Action::DescribeInstances => "DescribeInstances",
        }
    }

    /// Section 9, default per-action limits.
    fn rate_limit(self) -> usize {
        match self {
            Action::ModifyFirewallRules | Action::ModifyFirewallRuleDescription => 20,
            Action::DescribeInstances => 100,
            _ => 10,
        }
    }

    fn fields(self) -> &'static [&'static str] {
        match self {
            Action::DescribeFirewallRules => &["InstanceId", "Offset", "Limit"],
            Action::CreateFirewallRules
            | Action::DeleteFirewallRules
            | Action::ModifyFirewallRules => &["InstanceId", "FirewallRules", "FirewallVersion"],
            Action::ModifyFirewallRuleDescription => {
                &["InstanceId", "FirewallRule", "FirewallVersion"]
            }
            Action::DescribeRegions => &[],
            Action::DescribeInstances => &[
                "InstanceIds",
                "Filters",
                "Offset",
                "Limit",
                "OrderField",
                "Order",
            ],
        }
    }
}

/// Section 10: (Region, zh-CN name, en-US name, IsChinaMainland).
pub const REGIONS: [(&str, &str, &str, bool); 15] = [
    (
        "ap-bangkok",
        "亚太东南(曼谷)",
        "Southeast Asia(Bangkok)",
        false,
    ),
    ("ap-beijing", "华北地区(北京)", "North China(Beijing)", true),
    (
        "ap-chengdu",
        "西南地区(成都)",
        "Southwest China(Chengdu)",
        true,
    ),
    (
        "ap-guangzhou",
        "华南地区(广州)",
        "South China(Guangzhou)",
        true,
    ),
    (
        "ap-hongkong",
        "港澳台地区(中国香港)",
        "Hong Kong, Macau and Taiwan (China)(Hong Kong, China)",
        false,
    ),
    (
        "ap-jakarta",
        "亚太东南(雅加达)",
        "Southeast Asia(Jakarta)",
        false,
    ),
    ("ap-nanjing", "华东地区(南京)", "East China(Nanjing)", true),
    ("ap-seoul", "亚太东北(首尔)", "Northeast Asia(Seoul)", false),
    (
        "ap-shanghai",
        "华东地区(上海)",
        "East China(Shanghai)",
        true,
    ),
    (
        "ap-singapore",
        "亚太东南(新加坡)",
        "Southeast Asia(Singapore)",
        false,
    ),
    ("ap-tokyo", "亚太东北(东京)", "Northeast Asia(Tokyo)", false),
    (
        "eu-frankfurt",
        "欧洲地区(法兰克福)",
        "Europe(Frankfurt)",
        false,
    ),
    (
        "na-ashburn",
        "美国东部(弗吉尼亚)",
        "US East(Virginia)",
        false,
    ),
    (
        "na-siliconvalley",
        "美国西部(硅谷)",
        "US West(Silicon Valley)",
        false,
    ),
    (
        "sa-saopaulo",
        "南美地区(圣保罗)",
        "South America(São Paulo)",
        false,
    ),
];

pub fn known_region(r: &str) -> bool {
    REGIONS.iter().any(|(id, ..)| *id == r)
}

/// Section 10a inference: `lhins-` plus 8 lowercase alphanumerics.
pub fn instance_id_ok(id: &str) -> bool {
    id.strip_prefix("lhins-").is_some_and(|s| {
        s.len() == 8
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

pub struct Instance {
    pub id: String,
    pub region: String,
    pub version: u64,
    pub rules: Vec<Rule>,
    pub index: usize,
}

/// splitmix64: enough randomness for fault injection and request ids, reproducible by seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`; never for 0, always for 1.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A fresh uuid-v4-looking RequestId, as every cloud response carries.
    pub fn request_id(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        let h = format!("{a:016x}{b:016x}");
        format!(
            "{}-{}-4{}-{:x}{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            8 + (b >> 62),
            &h[17..20],
            &h[20..32]
        )
    }
}

pub struct State {
    pub instances: Vec<Instance>,
    pub calls: BTreeMap<String, u64>,
    pub calls_by_instance: BTreeMap<String, BTreeMap<String, u64>>,
    pub errors: BTreeMap<String, u64>,
    pub rng: Rng,
    rate: HashMap<(String, Action), VecDeque<Instant>>,
    conflicts_left: u64,
}

impl State {
    pub fn new(cfg: &Config, instances: Vec<Instance>, seed: u64) -> State {
        State {
            instances,
            calls: BTreeMap::new(),
            calls_by_instance: BTreeMap::new(),
            errors: BTreeMap::new(),
            rng: Rng::new(seed),
            rate: HashMap::new(),
            conflicts_left: cfg.conflict_after_describe,
        }
    }

    /// `calls`/`calls_by_instance` count a request as soon as it is routed, whatever happens next.
    pub fn count_call(&mut self, action: Action, instance: Option<&str>) {
        *self.calls.entry(action.name().to_string()).or_insert(0) += 1;
        if let Some(id) = instance {
            *self
                .calls_by_instance
                .entry(id.to_string())
                .or_default()
                .entry(action.name().to_string())
                .or_insert(0) += 1;
        }
    }

    pub fn dump(&self, now: i64) -> Value {
        let instances: Vec<Value> = self
            .instances
            .iter()
            .map(|i| {
                json!({
                    "InstanceId": i.id,
                    "Region": i.region,
                    "FirewallVersion": i.version,
                    "Rules": i.rules.iter().map(Rule::to_info).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "now": now,
            "instances": instances,
            "calls": self.calls,
            "calls_by_instance": self.calls_by_instance,
            "errors": self.errors,
        })
    }

    /// A rolling one-second window per (SecretId, action): section 9 gives the limits per
    /// action; the scope is unstated (section 11.11), per key is the strictest plausible one.
    fn admit(&mut self, secret_id: &str, action: Action) -> bool {
        let now = Instant::now();
        let window = self
            .rate
            .entry((secret_id.to_string(), action))
            .or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= action.rate_limit() {
            return false;
        }
        window.push_back(now);
        true
    }
}

/// What the connection handler does after the checks.
pub struct Processed {
    pub result: Result<Map<String, Value>, ApiError>,
    /// `--drop-after-apply-rate` fired: the call was applied, the answer must not be sent.
    pub drop_after_apply: bool,
}

fn err(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message.into())
}

/// All of section 2 and 10a, in order, ending in the action itself. `now` is the simulated clock.
pub fn process(
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
    let action = match (action, req.header("x-tc-action")) {
        (Some(a), _) => a,
        (None, None) => {
            return Err(err(
                "MissingParameter",
                "The request is missing a required parameter `X-TC-Action`.",
            ))
        }
        (None, Some(a)) => {
            return Err(err(
                "InvalidAction",
                format!("The action `{a}` is not supported."),
            ))
        }
    };
    match req.header("x-tc-version") {
        None => {
            return Err(err(
                "MissingParameter",
                "The request is missing a required parameter `X-TC-Version`.",
            ))
        }
        Some(API_VERSION) => {}
        Some(v) => {
            return Err(err(
                "NoSuchVersion",
                format!("The API version `{v}` does not exist."),
            ))
        }
    }
    let secret_id = authenticate(cfg, req, now)?;
    if let Some(token) = &cfg.token {
        if req.header("x-tc-token") != Some(token.as_str()) {
            return Err(err(
                "AuthFailure.TokenFailure",
                "The token is invalid or missing.",
            ));
        }
    }
    if cfg.rate_limit && !st.admit(&secret_id, action) {
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
    *drop_after_apply = st.rng.chance(cfg.drop_after_apply_rate);

    let region = match (action, req.header("x-tc-region")) {
        (Action::DescribeRegions, _) => None,
        (_, None) | (_, Some("")) => {
            return Err(err(
                "MissingParameter",
                "The request is missing a required parameter `Region`.",
            ))
        }
        (_, Some(r)) if !known_region(r) => {
            return Err(err(
                "UnsupportedRegion",
                format!("The region `{r}` is not supported."),
            ))
        }
        (_, Some(r)) => Some(r),
    };
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
    let region = region.unwrap_or("");
    match action {
        Action::DescribeRegions => Ok(describe_regions(req)),
        Action::DescribeInstances => describe_instances(st, region, &body),
        _ => {
            let idx = find_instance(st, region, &body)?;
            let out = match action {
                Action::DescribeFirewallRules => describe_rules(&st.instances[idx], &body),
                Action::CreateFirewallRules => create_rules(&mut st.instances[idx], &body),
                Action::DeleteFirewallRules => delete_rules(&mut st.instances[idx], &body),
                Action::ModifyFirewallRules => modify_rules(&mut st.instances[idx], &body),
                _ => modify_description(
                    &mut st.instances[idx],
                    &body,
                    !cfg.modify_description_keeps_version,
                ),
            }?;
            // `--conflict-after-describe`: another writer changes the firewall right after this
            // client read it, so its next write carries a stale FirewallVersion (section 7).
            if action == Action::DescribeFirewallRules && st.conflicts_left > 0 {
                st.conflicts_left -= 1;
                st.instances[idx].version += 1;
            }
            Ok(out)
        }
    }
}

/// Section 2 server-side check; returns the SecretId.
fn authenticate(cfg: &Config, req: &Request, now: i64) -> Result<String, ApiError> {
    let auth = req
        .header("authorization")
        .and_then(sign::parse_authorization)
        .ok_or_else(|| {
            err(
                "AuthFailure.InvalidAuthorization",
                "The Authorization header is missing or malformed.",
            )
        })?;
    let key = cfg
        .credentials
        .iter()
        .find(|(id, _)| id == auth.secret_id)
        .map(|(_, k)| k.as_str())
        .ok_or_else(|| err("AuthFailure.SecretIdNotFound", "The SecretId is not found."))?;
    let ts_text = req.header("x-tc-timestamp").ok_or_else(|| {
        err(
            "MissingParameter",
            "The request is missing a required parameter `X-TC-Timestamp`.",
        )
    })?;
    let ts: i64 = ts_text.parse().map_err(|_| {
        err(
            "InvalidParameterValue",
            format!("`X-TC-Timestamp` `{ts_text}` is not a Unix time."),
        )
    })?;
    if (now - ts).abs() > MAX_SKEW_SECS {
        return Err(err(
            "AuthFailure.SignatureExpire",
            format!(
                "Request timestamp {ts} is more than {MAX_SKEW_SECS} s from server time {now}."
            ),
        ));
    }
    let failure = |why: &str| {
        err(
            "AuthFailure.SignatureFailure",
            format!("The provided credentials could not be validated: {why}."),
        )
    };
    if auth.service != SERVICE {
        return Err(failure("the credential scope service is not lighthouse"));
    }
    if auth.date != knockd::clock::utc_date(ts) {
        return Err(failure(
            "the credential scope date is not the UTC date of X-TC-Timestamp",
        ));
    }
    // Canonical headers are rebuilt from the client's own SignedHeaders list (section 2: extra
    // signed headers are allowed, in ascending order, lowercase).
    let names: Vec<&str> = auth.signed_headers.split(';').collect();
    let sorted = names.windows(2).all(|w| w[0] < w[1]);
    let lower = names
        .iter()
        .all(|n| !n.is_empty() && !n.bytes().any(|b| b.is_ascii_uppercase()));
    if !sorted || !lower || !names.contains(&"content-type") || !names.contains(&"host") {
        return Err(failure(
            "SignedHeaders must be lowercase, ascending and include content-type and host",
        ));
    }
    let mut canonical = String::new();
    for name in &names {
        let value = req
            .header(name)
            .ok_or_else(|| failure("a signed header is absent from the request"))?;
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value.trim());
        canonical.push('\n');
    }
    let cr = sign::canonical_request(
        &canonical,
        auth.signed_headers,
        &sign::sha256_hex(&req.body),
    );
    let sts = sign::string_to_sign(ts, auth.date, SERVICE, &cr);
    let expected = sign::signature(key, auth.date, SERVICE, &sts);
    if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(failure("signature mismatch"));
    }
    Ok(auth.secret_id.to_string())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

fn offset_limit(body: &Map<String, Value>) -> Result<(usize, usize), ApiError> {
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

/// Section 7: an optional FirewallVersion that, when given, must equal the current one.
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

fn create_rules(
    inst: &mut Instance,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let new = rules::parse_rule_list(required(body, "FirewallRules")?)?;
    check_version(inst, body)?;
    if let Some((i, _)) = new
        .iter()
        .enumerate()
        .find(|(_, r)| inst.rules.iter().any(|o| o.key() == r.key()))
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
    inst.rules.extend(new);
    inst.version += 1;
    Ok(Map::new())
}

fn delete_rules(
    inst: &mut Instance,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let gone = rules::parse_rule_list(required(body, "FirewallRules")?)?;
    check_version(inst, body)?;
    if let Some((i, _)) = gone
        .iter()
        .enumerate()
        .find(|(_, r)| !inst.rules.iter().any(|o| o.key() == r.key()))
    {
        return Err(err(
            "ResourceNotFound.FirewallRulesNotFound",
            format!("`FirewallRules.{i}` does not exist on the instance."),
        ));
    }
    inst.rules
        .retain(|o| !gone.iter().any(|r| r.key() == o.key()));
    inst.version += 1;
    Ok(Map::new())
}

fn modify_rules(
    inst: &mut Instance,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let list = required(body, "FirewallRules")?;
    if list.as_array().is_some_and(|a| a.len() > MAX_RULES) {
        return Err(err(
            "InvalidParameterValue.LimitExceeded",
            format!("`FirewallRules` holds more than {MAX_RULES} rules."),
        ));
    }
    let new = rules::parse_rule_list(list)?;
    check_version(inst, body)?;
    inst.rules = new;
    inst.version += 1;
    Ok(Map::new())
}

fn modify_description(
    inst: &mut Instance,
    body: &Map<String, Value>,
    bump: bool,
) -> Result<Map<String, Value>, ApiError> {
    let wanted = rules::parse_rule(required(body, "FirewallRule")?, "FirewallRule")?;
    check_version(inst, body)?;
    let rule = inst
        .rules
        .iter_mut()
        .find(|o| o.key() == wanted.key())
        .ok_or_else(|| {
            err(
                "ResourceNotFound.FirewallRulesNotFound",
                "`FirewallRule` does not exist on the instance.",
            )
        })?;
    rule.description = wanted.description;
    if bump {
        inst.version += 1;
    }
    Ok(Map::new())
}

fn describe_regions(req: &Request) -> Map<String, Value> {
    let english = req.header("x-tc-language") == Some("en-US");
    let set: Vec<Value> = REGIONS
        .iter()
        .map(|(id, zh, en, mainland)| {
            json!({
                "Region": id,
                "RegionName": if english { en } else { zh },
                "RegionState": "AVAILABLE",
                "IsChinaMainland": mainland,
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("TotalCount".into(), set.len().into());
    m.insert("RegionSet".into(), set.into());
    m
}

fn instance_info(i: &Instance) -> Value {
    json!({
        "InstanceId": i.id,
        "InstanceName": format!("sim-{}", &i.id[6..]),
        "Zone": format!("{}-1", i.region),
        "InstanceState": "RUNNING",
        "PublicAddresses": [format!("203.0.113.{}", 10 + i.index % 240)],
        "PrivateAddresses": [format!("10.0.0.{}", 10 + i.index % 240)],
    })
}

fn describe_instances(
    st: &State,
    region: &str,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let (offset, limit) = offset_limit(body)?;
    let has_filters = body
        .get("Filters")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let ids: Option<Vec<&str>> = match body.get("InstanceIds") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            if has_filters {
                return Err(err(
                    "InvalidParameter.ParameterConflict",
                    "`InstanceIds` and `Filters` cannot be combined.",
                ));
            }
            if a.len() > 100 {
                return Err(err(
                    "InvalidParameterValue.LimitExceeded",
                    "At most 100 `InstanceIds` per call.",
                ));
            }
            let mut ids = Vec::with_capacity(a.len());
            for v in a {
                let id = v
                    .as_str()
                    .ok_or_else(|| err("InvalidParameter", "`InstanceIds` must hold strings."))?;
                if !instance_id_ok(id) {
                    return Err(err(
                        "InvalidParameterValue.InstanceIdMalformed",
                        format!("The instance ID `{id}` is malformed."),
                    ));
                }
                ids.push(id);
            }
            Some(ids)
        }
        Some(_) => return Err(err("InvalidParameter", "`InstanceIds` must be an array.")),
    };
    let filters = parse_filters(body)?;
    let matching: Vec<Value> = st
        .instances
        .iter()
        .filter(|i| i.region == region)
        .filter(|i| ids.as_ref().is_none_or(|ids| ids.contains(&i.id.as_str())))
        .map(instance_info)
        .filter(|info| {
            filters
                .iter()
                .all(|(name, values)| filter_matches(info, name, values))
        })
        .collect();
    let mut m = Map::new();
    m.insert("TotalCount".into(), matching.len().into());
    let page: Vec<Value> = matching.into_iter().skip(offset).take(limit).collect();
    m.insert("InstanceSet".into(), page.into());
    Ok(m)
}

type Filter = (String, Vec<String>);

/// The filters a firewall tool might use to find its own instance (section 6.6).
fn parse_filters(body: &Map<String, Value>) -> Result<Vec<Filter>, ApiError> {
    let Some(list) = body.get("Filters") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| err("InvalidParameter", "`Filters` must be an array."))?;
    if list.len() > 10 {
        return Err(err(
            "InvalidParameter.FilterValueLimitExceeded",
            "At most 10 `Filters`.",
        ));
    }
    let mut out = Vec::new();
    for f in list {
        let name = f.get("Name").and_then(Value::as_str);
        let values = f.get("Values").and_then(Value::as_array);
        let (Some(name), Some(values)) = (name, values) else {
            return Err(err(
                "InvalidParameter.InvalidFilter",
                "Each filter needs `Name` and `Values`.",
            ));
        };
        if !matches!(
            name,
            "instance-name"
                | "public-ip-address"
                | "private-ip-address"
                | "zone"
                | "instance-state"
        ) {
            return Err(err(
                "InvalidParameter.InvalidFilterNotSupportedName",
                format!("Filter name `{name}` is not supported."),
            ));
        }
        if values.len() > 100 {
            return Err(err(
                "InvalidParameter.FilterValueLimitExceeded",
                "At most 100 values per filter.",
            ));
        }
        let values = values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        out.push((name.to_string(), values));
    }
    Ok(out)
}

fn filter_matches(info: &Value, name: &str, values: &[String]) -> bool {
    let field = match name {
        "instance-name" => "InstanceName",
        "public-ip-address" => "PublicAddresses",
        "private-ip-address" => "PrivateAddresses",
        "zone" => "Zone",
        _ => "InstanceState",
    };
    match info.get(field) {
        Some(Value::String(s)) => values.contains(s),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .any(|s| values.iter().any(|v| v == s)),
        _ => false,
    }
}
