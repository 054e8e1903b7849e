//! The Lighthouse API client: TC3-signed JSON calls over one shared HTTPS agent, with retries,
//! client-side pacing under the documented rate limits, and clock-skew correction.
//! Reference: ../shared/lighthouse-api.md (sections cited inline).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Read;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::config::{Config, Endpoint, Instance, Secret};
use crate::{clock, log, sign};

pub const VERSION: &str = "2020-03-24";
const SERVICE: &str = "lighthouse";
/// Signed exactly as sent: a library that appends `; charset=utf-8` would break the signature.
const CONTENT_TYPE: &str = "application/json";
/// A Describe of 100 rules is about 20 KiB; anything near this bound is not the real API.
const MAX_RESPONSE: u64 = 1024 * 1024;
/// Attempts per call for retryable failures (section 8); 6 keeps a 30% fault rate at 0.07%.
const MAX_ATTEMPTS: u32 = 6;
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// Overall time for one HTTP exchange (connect, TLS, request, response).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A firewall rule as the API shapes it (section 5). Identity is (Protocol, Port, CidrBlock,
/// Ipv6CidrBlock, Action); the description is not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRule {
    pub protocol: String,
    pub port: String,
    pub cidr_block: Option<String>,
    pub ipv6_cidr_block: Option<String>,
    pub action: String,
    pub description: String,
}

impl FirewallRule {
    pub fn same_identity(&self, other: &FirewallRule) -> bool {
        self.protocol == other.protocol
            && self.port == other.port
            && self.cidr_block == other.cidr_block
            && self.ipv6_cidr_block == other.ipv6_cidr_block
            && self.action == other.action
    }

    /// The address the rule applies to, for logs and tables.
    pub fn address(&self) -> &str {
        self.ipv6_cidr_block
            .as_deref()
            .or(self.cidr_block.as_deref())
            .unwrap_or("0.0.0.0/0")
    }

    /// Describe output; missing fields default as the API does (section 5, 10a).
    pub fn from_json(v: &Value) -> FirewallRule {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let opt = |k: &str| Some(s(k)).filter(|x| !x.is_empty());
        let ipv6 = opt("Ipv6CidrBlock");
        let action = s("Action");
        FirewallRule {
            protocol: s("Protocol").to_ascii_uppercase(),
            port: s("Port"),
            cidr_block: if ipv6.is_some() {
                opt("CidrBlock")
            } else {
                Some(opt("CidrBlock").unwrap_or_else(|| "0.0.0.0/0".to_string()))
            },
            ipv6_cidr_block: ipv6,
            action: if action.is_empty() {
                "ACCEPT".to_string()
            } else {
                action.to_ascii_uppercase()
            },
            description: s("FirewallRuleDescription"),
        }
    }

    /// Request shape; `with_description` is false for Delete, which matches on identity only.
    pub fn to_json(&self, with_description: bool) -> Value {
        let mut m = Map::new();
        m.insert("Protocol".into(), json!(self.protocol));
        m.insert("Port".into(), json!(self.port));
        if let Some(c) = &self.cidr_block {
            m.insert("CidrBlock".into(), json!(c));
        }
        if let Some(c) = &self.ipv6_cidr_block {
            m.insert("Ipv6CidrBlock".into(), json!(c));
        }
        m.insert("Action".into(), json!(self.action));
        if with_description {
            m.insert("FirewallRuleDescription".into(), json!(self.description));
        }
        Value::Object(m)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The API answered with `Response.Error`.
    Api {
        code: String,
        message: String,
        request_id: String,
    },
    /// Connect, TLS, timeout, or a connection closed without an answer.
    Transport(String),
    /// Not the API's JSON envelope (a proxy page, a truncated body, a non-200 status).
    BadResponse(String),
    /// The API rejected our timestamp and gave no usable `Date` to correct it with.
    Clock(String),
    /// TENCENT_CLOUD_CA_FILE could not be used.
    Tls(String),
}

impl ApiError {
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code() == Some(code)
    }

    /// Section 8: rate limits, busy firewall, server faults and transport failures are
    /// retried; auth, parameter, quota and not-found errors are final.
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::Api { code, .. } => {
                code.starts_with("RequestLimitExceeded")
                    || code.starts_with("InternalError")
                    || code == "ServiceUnavailable"
                    || code == "UnsupportedOperation.FirewallBusy"
            }
            ApiError::Transport(_) | ApiError::BadResponse(_) => true,
            ApiError::Clock(_) | ApiError::Tls(_) => false,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Api {
                code,
                message,
                request_id,
            } => write!(f, "{code}: {message} (RequestId {request_id})"),
            ApiError::Transport(e) => write!(f, "cannot reach the Lighthouse API: {e}"),
            ApiError::BadResponse(e) => write!(f, "unexpected answer from the API endpoint: {e}"),
            ApiError::Clock(e) => write!(f, "clock: {e}"),
            ApiError::Tls(e) => write!(f, "TENCENT_CLOUD_CA_FILE: {e}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// A successful call: the `Response` object and its RequestId.
#[derive(Debug, Clone)]
pub struct Reply {
    pub body: Value,
    pub request_id: String,
    /// The server's `Date`, when it sent one: `--check` compares clocks with it.
    pub date: Option<i64>,
}

/// Keeps each action under its documented rate (section 9) across all threads: a rolling
/// window of recent send times per action. The window is 10% longer than a second because
/// network jitter can bunch requests that left a second apart.
struct Pacer {
    sent: Mutex<HashMap<&'static str, VecDeque<Instant>>>,
}

fn rate_limit(action: &str) -> usize {
    match action {
        "ModifyFirewallRuleDescription" | "ModifyFirewallRules" => 20,
        "DescribeInstances" => 100,
        _ => 10,
    }
}

impl Pacer {
    fn wait(&self, action: &'static str) {
        let window = Duration::from_millis(1100);
        loop {
            let sleep = {
                let mut sent = match self.sent.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                let q = sent.entry(action).or_default();
                let now = Instant::now();
                while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
                    q.pop_front();
                }
                if q.len() < rate_limit(action) {
                    q.push_back(now);
                    return;
                }
                match q.front() {
                    Some(t) => window.saturating_sub(now.duration_since(*t)),
                    None => Duration::ZERO,
                }
            };
            thread::sleep(sleep.max(Duration::from_millis(1)));
        }
    }
}

thread_local! {
    /// API requests sent by this thread (each retry counts): a writer thread serves one
    /// instance, so the difference around a plan is that instance's cost.
    static THREAD_CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

pub fn calls_on_this_thread() -> u64 {
    THREAD_CALLS.with(|c| c.get())
}

/// A counter of calls made, for the per-knock log line and tests.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct Client {
    agent: ureq::Agent,
    endpoint: Endpoint,
    secret_id: String,
    secret_key: Secret,
    token: Option<Secret>,
    /// Server time minus local time, learned from a SignatureExpire answer's `Date`.
    skew: AtomicI64,
    pacer: Pacer,
    pub calls: Counter,
}

/// HTTPS_PROXY (or https_proxy, ALL_PROXY) unless NO_PROXY names the host: ureq 2 reads the
/// proxy variables but ignores NO_PROXY, so the choice is made here.
pub fn proxy_for(host: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let name = host
        .rsplit_once(':')
        .filter(|(h, p)| !h.ends_with(']') || p.parse::<u16>().is_ok())
        .map_or(host, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let pick = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| env(k).filter(|v| !v.trim().is_empty()))
    };
    if let Some(no) = pick(&["NO_PROXY", "no_proxy"]) {
        for item in no.split(',').map(|s| s.trim().to_ascii_lowercase()) {
            let item = item.trim_start_matches('.');
            if item == "*"
                || (!item.is_empty() && (name == item || name.ends_with(&format!(".{item}"))))
            {
                return None;
            }
        }
    }
    pick(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
}

fn tls_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, ApiError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| ApiError::Tls(format!("cannot read {}: {e}", ca_file.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| ApiError::Tls(format!("{}: {e}", ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| ApiError::Tls(format!("{}: {e}", ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(ApiError::Tls(format!(
            "{} holds no PEM certificates",
            ca_file.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Jitter without a random crate: a splitmix64 step over a shared counter seeded by the clock.
fn jitter_factor() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15 ^ seed, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    0.5 + (z % 1000) as f64 / 1000.0
}

pub fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE
        .saturating_mul(1 << attempt.min(10))
        .min(BACKOFF_CAP);
    base.mul_f64(jitter_factor())
}

impl Client {
    pub fn new(config: &Config) -> Result<Client, ApiError> {
        let mut builder = ureq::AgentBuilder::new()
            .timeout(CALL_TIMEOUT)
            .user_agent(concat!("knockd/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections_per_host(8)
            .redirects(0);
        if let Some(ca) = &config.ca_file {
            builder = builder.tls_config(tls_config(ca)?);
        }
        if let Some(p) = proxy_for(&config.endpoint.host, &|k| std::env::var(k).ok()) {
            let proxy = ureq::Proxy::new(&p)
                .map_err(|e| ApiError::Transport(format!("HTTPS_PROXY is not usable: {e}")))?;
            builder = builder.proxy(proxy);
        }
        Ok(Client {
            agent: builder.build(),
            endpoint: config.endpoint.clone(),
            secret_id: config.secret_id.clone(),
            secret_key: config.secret_key.clone(),
            token: config.token.clone(),
            skew: AtomicI64::new(0),
            pacer: Pacer {
                sent: Mutex::new(HashMap::new()),
            },
            calls: Counter::default(),
        })
    }

    /// The API's idea of now, as far as we know it.
    pub fn now(&self) -> i64 {
        clock::now() + self.skew.load(Ordering::Relaxed)
    }

    pub fn skew(&self) -> i64 {
        self.skew.load(Ordering::Relaxed)
    }

    /// One action with retries. Every attempt is re-signed with a fresh timestamp.
    pub fn call(
        &self,
        action: &'static str,
        region: Option<&str>,
        body: &Value,
    ) -> Result<Reply, ApiError> {
        let bytes = body.to_string().into_bytes();
        let mut skew_fixed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.pacer.wait(action);
            let started = Instant::now();
            let (result, date) = self.send_once(action, region, &bytes);
            match result {
                Err(e) if e.is("AuthFailure.SignatureExpire") && !skew_fixed => {
                    skew_fixed = true;
                    let Some(server) = date else {
                        return Err(ApiError::Clock(format!(
                            "the API rejected our timestamp ({e}) and sent no Date header to correct it; check this machine's clock"
                        )));
                    };
                    let local = clock::now();
                    let skew = server - local;
                    self.skew.store(skew, Ordering::Relaxed);
                    log::event(&format!(
                        "clock-skew measured={skew:+}s action={action}: signing with the API's time from now on; fix this machine's clock (NTP)"
                    ));
                }
                Err(e) if e.retryable() && attempt < MAX_ATTEMPTS => {
                    let wait = backoff(attempt - 1);
                    log::event(&format!(
                        "api-retry action={action} attempt={attempt} error=\"{e}\" after={}ms wait={}ms",
                        started.elapsed().as_millis(),
                        wait.as_millis()
                    ));
                    thread::sleep(wait);
                }
                other => return other,
            }
        }
    }

    fn send_once(
        &self,
        action: &'static str,
        region: Option<&str>,
        body: &[u8],
    ) -> (Result<Reply, ApiError>, Option<i64>) {
        self.calls.0.fetch_add(1, Ordering::Relaxed);
        THREAD_CALLS.with(|c| c.set(c.get() + 1));
        let timestamp = self.now();
        let signed = sign::sign(
            &sign::Credentials {
                secret_id: &self.secret_id,
                secret_key: self.secret_key.expose(),
            },
            SERVICE,
            &self.endpoint.host,
            CONTENT_TYPE,
            timestamp,
            body,
        );
        let mut req = self
            .agent
            .post(&self.endpoint.url())
            .set("Host", &self.endpoint.host)
            .set("Content-Type", CONTENT_TYPE)
            .set("Authorization", &signed.authorization)
            .set("X-TC-Action", action)
            .set("X-TC-Version", VERSION)
            .set("X-TC-Timestamp", &timestamp.to_string())
            .set("X-TC-Language", "en-US");
        if let Some(r) = region {
            req = req.set("X-TC-Region", r);
        }
        if let Some(t) = &self.token {
            req = req.set("X-TC-Token", t.expose());
        }
        let resp = match req.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let date = date_of(&r);
                let text = read_limited(r).unwrap_or_default();
                let snippet: String = text.chars().take(200).collect();
                return (
                    Err(ApiError::BadResponse(format!("HTTP {code}: {snippet}"))),
                    date,
                );
            }
            Err(ureq::Error::Transport(t)) => {
                return (Err(ApiError::Transport(t.to_string())), None)
            }
        };
        let date = date_of(&resp);
        let text = match read_limited(resp) {
            Ok(t) => t,
            Err(e) => return (Err(e), date),
        };
        let reply = parse_envelope(&text).map(|r| Reply { date, ..r });
        (reply, date)
    }

    /// All rules of an instance and the FirewallVersion they were read at (section 6.1).
    pub fn describe_rules(&self, inst: &Instance) -> Result<(Vec<FirewallRule>, u64), ApiError> {
        let mut rules = Vec::new();
        let mut version = None;
        loop {
            let reply = self.call(
                "DescribeFirewallRules",
                Some(&inst.region),
                &json!({"InstanceId": inst.id, "Offset": rules.len(), "Limit": 100}),
            )?;
            let b = &reply.body;
            let page_version = b
                .get("FirewallVersion")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if version.is_some_and(|v| v != page_version) {
                // Changed between pages: start over so rules and version agree.
                rules.clear();
                version = None;
                continue;
            }
            version = Some(page_version);
            let total = b.get("TotalCount").and_then(Value::as_u64).unwrap_or(0) as usize;
            let page = b
                .get("FirewallRuleSet")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let empty = page.is_empty();
            rules.extend(page.iter().map(FirewallRule::from_json));
            if rules.len() >= total || empty {
                return Ok((rules, page_version));
            }
        }
    }

    pub fn create_rules(
        &self,
        inst: &Instance,
        rules: &[FirewallRule],
        version: Option<u64>,
    ) -> Result<Reply, ApiError> {
        let list: Vec<Value> = rules.iter().map(|r| r.to_json(true)).collect();
        self.call(
            "CreateFirewallRules",
            Some(&inst.region),
            &write_body(inst, "FirewallRules", json!(list), version),
        )
    }

    pub fn delete_rules(
        &self,
        inst: &Instance,
        rules: &[FirewallRule],
        version: Option<u64>,
    ) -> Result<Reply, ApiError> {
        let list: Vec<Value> = rules.iter().map(|r| r.to_json(false)).collect();
        self.call(
            "DeleteFirewallRules",
            Some(&inst.region),
            &write_body(inst, "FirewallRules", json!(list), version),
        )
    }

    pub fn modify_description(
        &self,
        inst: &Instance,
        rule: &FirewallRule,
        version: Option<u64>,
    ) -> Result<Reply, ApiError> {
        self.call(
            "ModifyFirewallRuleDescription",
            Some(&inst.region),
            &write_body(inst, "FirewallRule", rule.to_json(true), version),
        )
    }

    /// Regions open to Lighthouse (section 6.7); no X-TC-Region.
    pub fn describe_regions(&self) -> Result<Vec<String>, ApiError> {
        let reply = self.call("DescribeRegions", None, &json!({}))?;
        Ok(reply
            .body
            .get("RegionSet")
            .and_then(Value::as_array)
            .map(|set| {
                set.iter()
                    .filter_map(|r| r.get("Region").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Which of `ids` exist in `region` (section 6.6).
    pub fn describe_instances(&self, region: &str, ids: &[&str]) -> Result<Vec<String>, ApiError> {
        let reply = self.call(
            "DescribeInstances",
            Some(region),
            &json!({"InstanceIds": ids, "Limit": 100}),
        )?;
        Ok(reply
            .body
            .get("InstanceSet")
            .and_then(Value::as_array)
            .map(|set| {
                set.iter()
                    .filter_map(|r| {
                        r.get("InstanceId")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn write_body(inst: &Instance, key: &str, rules: Value, version: Option<u64>) -> Value {
    let mut m = Map::new();
    m.insert("InstanceId".into(), json!(inst.id));
    m.insert(key.into(), rules);
    if let Some(v) = version {
        m.insert("FirewallVersion".into(), json!(v));
    }
    Value::Object(m)
}

fn date_of(resp: &ureq::Response) -> Option<i64> {
    let d = httpdate::parse_http_date(resp.header("Date")?).ok()?;
    d.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

fn read_limited(resp: ureq::Response) -> Result<String, ApiError> {
    let mut buf = Vec::new();
    resp.into_reader()
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ApiError::Transport(format!("reading the answer: {e}")))?;
    if buf.len() as u64 > MAX_RESPONSE {
        return Err(ApiError::BadResponse("answer larger than 1 MiB".into()));
    }
    String::from_utf8(buf).map_err(|_| ApiError::BadResponse("answer is not UTF-8".into()))
}

/// Section 4: only `Response.Error` marks a failure; match on Code, keep RequestId.
pub fn parse_envelope(text: &str) -> Result<Reply, ApiError> {
    let v: Value = serde_json::from_str(text).map_err(|_| {
        let snippet: String = text.chars().take(120).collect();
        ApiError::BadResponse(format!("not JSON: {snippet}"))
    })?;
    let Some(resp) = v.get("Response").filter(|r| r.is_object()) else {
        return Err(ApiError::BadResponse("no Response object".into()));
    };
    let request_id = resp
        .get("RequestId")
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_string();
    if let Some(err) = resp.get("Error") {
        let s = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return Err(ApiError::Api {
            code: s("Code"),
            message: s("Message"),
            request_id,
        });
    }
    Ok(Reply {
        body: resp.clone(),
        request_id,
        date: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_success_and_error() {
        let ok =
            parse_envelope(r#"{"Response": {"TotalCount": 0, "RequestId": "r1"}}"#).expect("ok");
        assert_eq!(ok.request_id, "r1");
        let err = parse_envelope(
            r#"{"Response": {"Error": {"Code": "RequestLimitExceeded", "Message": "slow down"}, "RequestId": "r2"}}"#,
        )
        .expect_err("error");
        assert!(err.is("RequestLimitExceeded") && err.retryable());
        assert_eq!(
            err.to_string(),
            "RequestLimitExceeded: slow down (RequestId r2)"
        );
        assert!(matches!(
            parse_envelope("<html>"),
            Err(ApiError::BadResponse(_))
        ));
        assert!(matches!(
            parse_envelope("{}"),
            Err(ApiError::BadResponse(_))
        ));
    }

    #[test]
    fn retry_policy_follows_section_8() {
        let api = |c: &str| ApiError::Api {
            code: c.into(),
            message: String::new(),
            request_id: String::new(),
        };
        for c in [
            "RequestLimitExceeded",
            "RequestLimitExceeded.UinLimitExceeded",
            "InternalError",
            "InternalError.RequestError",
            "UnsupportedOperation.FirewallBusy",
        ] {
            assert!(api(c).retryable(), "{c}");
        }
        for c in [
            "AuthFailure.SignatureFailure",
            "AuthFailure.SecretIdNotFound",
            "InvalidParameter.FirewallRulesExist",
            "LimitExceeded.FirewallRulesLimitExceeded",
            "ResourceNotFound.InstanceIdNotFound",
            "UnsupportedOperation.FirewallVersionMismatch",
        ] {
            assert!(!api(c).retryable(), "{c}");
        }
        assert!(ApiError::Transport("reset".into()).retryable());
    }

    #[test]
    fn rules_round_trip_with_api_defaults() {
        let r = FirewallRule::from_json(
            &json!({"AppType": "x", "Protocol": "tcp", "Port": "22", "CidrBlock": "1.2.3.4", "FirewallRuleDescription": "d"}),
        );
        assert_eq!(r.action, "ACCEPT");
        assert_eq!(r.protocol, "TCP");
        assert_eq!(
            r.to_json(false),
            json!({"Protocol": "TCP", "Port": "22", "CidrBlock": "1.2.3.4", "Action": "ACCEPT"})
        );
        let v6 = FirewallRule::from_json(
            &json!({"Protocol": "UDP", "Port": "53", "Ipv6CidrBlock": "2001:db8::1", "Action": "ACCEPT"}),
        );
        assert_eq!(v6.cidr_block, None);
        assert_eq!(v6.address(), "2001:db8::1");
        let any = FirewallRule::from_json(&json!({"Protocol": "ALL", "Port": "ALL"}));
        assert_eq!(any.cidr_block.as_deref(), Some("0.0.0.0/0"));
    }

    #[test]
    fn no_proxy_is_honoured() {
        let env = |no: &'static str| {
            move |k: &str| match k {
                "HTTPS_PROXY" => Some("http://proxy:3128".to_string()),
                "NO_PROXY" => Some(no.to_string()),
                _ => None,
            }
        };
        assert_eq!(
            proxy_for("lighthouse.tencentcloudapi.com", &env("")),
            Some("http://proxy:3128".into())
        );
        assert_eq!(
            proxy_for(
                "lighthouse.tencentcloudapi.com",
                &env("tencentcloudapi.com")
            ),
            None
        );
        assert_eq!(
            proxy_for(
                "lighthouse.tencentcloudapi.com",
                &env(".tencentcloudapi.com,x")
            ),
            None
        );
        assert_eq!(proxy_for("127.0.0.1:9000", &env("127.0.0.1")), None);
        assert_eq!(proxy_for("[::1]:9000", &env("::1")), None);
        assert_eq!(
            proxy_for("notlighthouse.com", &env("lighthouse.com")),
            Some("http://proxy:3128".into())
        );
        assert_eq!(proxy_for("a.b", &|_: &str| None), None);
    }

    #[test]
    fn endpoint_urls_parse_without_unicode_host_support() {
        // idna_adapter is pinned to 1.0 (ASCII-only host names) to keep ICU out of the binary.
        let agent = ureq::AgentBuilder::new().build();
        for url in [
            "https://lighthouse.tencentcloudapi.com/",
            "https://lighthouse.ap-guangzhou.tencentcloudapi.com:443/",
            "https://lighthouse.intl.tencentcloudapi.com/",
            "http://127.0.0.1:9000/",
            "http://[::1]:9000/",
        ] {
            assert!(agent.post(url).request_url().is_ok(), "{url}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..50 {
            let b0 = backoff(0);
            assert!(b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(150));
            assert!(backoff(20) <= Duration::from_secs(3));
        }
    }
}
