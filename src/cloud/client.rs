//! The Lighthouse API client: TC3-signed JSON calls over one shared HTTPS agent, with retries,
//! client-side pacing under the documented rate limits, and clock-skew correction.
//! The contract it relies on: docs/lighthouse-api.md.

use std::io::Read;
use std::sync::atomic::Ordering;

// 64-bit atomics through portable-atomic: the same instructions as std's where the target has
// them, a lock where it does not (32-bit MIPS).
use portable_atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::error::{self, ApiError};
use super::pacer::Pacer;
use super::sign;
use super::wire::{self, Reply};
use crate::config::{AccessPoint, Config, Endpoint, Instance, Secret};
use crate::notify::{Notifier, NotifyConfig};
use crate::rules::FirewallRule;
use crate::{clock, log};

pub const VERSION: &str = "2020-03-24";
const SERVICE: &str = "lighthouse";
/// Signed exactly as sent: a library that appends `; charset=utf-8` would break the signature.
const CONTENT_TYPE: &str = "application/json";
/// A Describe of 100 rules is about 20 KiB; anything near this bound is not the real API.
const MAX_RESPONSE: u64 = 1024 * 1024;
/// Attempts per call for retryable failures (docs/lighthouse-api.md#retries-and-re-plans); 6 keeps a 30% fault rate at 0.07%.
const MAX_ATTEMPTS: u32 = 6;
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// Overall time for one HTTP exchange (connect, TLS, request, response).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

thread_local! {
    /// API requests sent by this thread (each retry counts): a writer thread serves one
    /// instance, so the difference around a plan is that instance's cost.
    static THREAD_CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

pub fn calls_on_this_thread() -> u64 {
    THREAD_CALLS.with(|c| c.get())
}

pub struct Client {
    /// One agent per API host, keyed by `Endpoint::host`: each host gets the proxy NO_PROXY
    /// chooses for it, and a plain-http host connects to loopback only.
    agents: Vec<(String, ureq::Agent)>,
    access_point: AccessPoint,
    /// TENCENT_CLOUD_REGION: whose host serves the calls without an instance (DescribeRegions).
    home_region: String,
    secret_id: String,
    secret_key: Secret,
    token: Option<Secret>,
    /// Server time minus local time, learned from a SignatureExpire answer's `Date`.
    skew: AtomicI64,
    pacer: Pacer,
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

/// What knockd's HTTPS agents share: the roots (TENCENT_CLOUD_CA_FILE replaces the built-in
/// ones), the proxy chosen for `host`, the user agent, no redirects.
fn agent_builder(config: &Config, host: &str) -> Result<ureq::AgentBuilder, ApiError> {
    let mut builder = ureq::AgentBuilder::new()
        .user_agent(concat!("knockd/", env!("CARGO_PKG_VERSION")))
        .redirects(0);
    if let Some(ca) = &config.cloud.ca_file {
        builder = builder.tls_config(tls_config(ca)?);
    }
    if let Some(p) = proxy_for(host, &|k| std::env::var(k).ok()) {
        let proxy = ureq::Proxy::new(&p)
            .map_err(|e| ApiError::Transport(format!("HTTPS_PROXY is not usable: {e}")))?;
        builder = builder.proxy(proxy);
    }
    Ok(builder)
}

/// The notification webhook's agent: the same roots, CA file and proxy rules as the API's
/// (the proxy chosen for the webhook's `host`), 5 s to connect; each request sets its own
/// overall timeout.
pub(crate) fn notify_agent(config: &Config, host: &str) -> Result<ureq::Agent, ApiError> {
    Ok(agent_builder(config, host)?
        .timeout_connect(Duration::from_secs(5))
        .max_idle_connections_per_host(1)
        .build())
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
        let cloud = &config.cloud;
        let agents = super::agents::per_host(config, |host| {
            Ok(agent_builder(config, host)?
                .timeout(CALL_TIMEOUT)
                .max_idle_connections_per_host(8))
        })?;
        Ok(Client {
            agents,
            access_point: cloud.access_point.clone(),
            home_region: cloud.region.clone(),
            secret_id: config.cloud.secret_id.clone(),
            secret_key: config.cloud.secret_key.clone(),
            token: config.cloud.token.clone(),
            skew: AtomicI64::new(0),
            pacer: Pacer::default(),
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
        // The host decides the access region, which Tencent's rate limits count per
        // (docs/lighthouse-api.md#rate-limits): the host is the pacer's key.
        let endpoint = self
            .access_point
            .endpoint(region.unwrap_or(&self.home_region));
        let mut skew_fixed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.pacer.wait(action, &endpoint.host);
            let started = Instant::now();
            let (result, date) = self.send_once(&endpoint, action, region, &bytes);
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
                Err(e) if error::retry_in_place(&e, action) && attempt < MAX_ATTEMPTS => {
                    if e.code()
                        .is_some_and(|c| c.starts_with("RequestLimitExceeded"))
                        && self.pacer.limited(action)
                    {
                        log::event(&format!(
                            "api-pacing action={action}: the API refused a call for its rate; one budget for all regions for {}s",
                            super::pacer::SHARED_FOR.as_secs()
                        ));
                    }
                    let wait = backoff(attempt - 1);
                    log::event(&format!(
                        "api-retry action={action} attempt={attempt} error=\"{e}\" after={}ms wait={}ms",
                        started.elapsed().as_millis(),
                        wait.as_millis()
                    ));
                    thread::sleep(wait);
                }
                // A denial is named after this call (action and resource to grant), so that
                // whoever logs it can say what to grant.
                other => {
                    let instance = body.get("InstanceId").and_then(Value::as_str);
                    return other.map_err(|e| e.on_call(action, region, instance));
                }
            }
        }
    }

    fn send_once(
        &self,
        endpoint: &Endpoint,
        action: &'static str,
        region: Option<&str>,
        body: &[u8],
    ) -> (Result<Reply, ApiError>, Option<i64>) {
        THREAD_CALLS.with(|c| c.set(c.get() + 1));
        let timestamp = self.now();
        let signed = sign::sign(
            &sign::Credentials {
                secret_id: &self.secret_id,
                secret_key: self.secret_key.expose(),
            },
            SERVICE,
            &endpoint.host,
            CONTENT_TYPE,
            timestamp,
            body,
        );
        // Every host the configuration names got its agent in `new`; a region outside it (no
        // caller asks for one) would borrow another host's, which differs only in its proxy.
        let Some(agent) = self
            .agents
            .iter()
            .find(|(h, _)| *h == endpoint.host)
            .or_else(|| self.agents.first())
            .map(|(_, a)| a)
        else {
            return (
                Err(ApiError::Transport(format!(
                    "no agent for {}",
                    endpoint.host
                ))),
                None,
            );
        };
        let mut req = agent
            .post(&endpoint.url())
            .set("Host", &endpoint.host)
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
        let reply = wire::parse_envelope(text).map(|mut r| {
            r.date = date;
            r
        });
        (reply, date)
    }

    /// All rules of an instance and the FirewallVersion they were read at (docs/lighthouse-api.md#describefirewallrules).
    /// Pages and restarts are bounded: a firewall holds at most 100 rules (one page), so an
    /// answer that keeps paging or keeps changing is not a firewall to plan from.
    pub fn describe_rules(&self, inst: &Instance) -> Result<(Vec<FirewallRule>, u64), ApiError> {
        let mut rules = Vec::new();
        let mut version = None;
        let (mut pages, mut restarts) = (0, 0);
        loop {
            pages += 1;
            if pages > MAX_DESCRIBE_PAGES {
                return Err(ApiError::BadResponse(format!(
                    "DescribeFirewallRules of {} did not end after {MAX_DESCRIBE_PAGES} pages",
                    inst.id
                )));
            }
            let reply = self.call(
                "DescribeFirewallRules",
                Some(&inst.region),
                &json!({"InstanceId": inst.id, "Offset": rules.len(), "Limit": DESCRIBE_PAGE}),
            )?;
            let page = wire::describe_page(reply)?;
            if version.is_some_and(|v| v != page.version) {
                // Changed between pages: start over so rules and version agree.
                restarts += 1;
                if restarts > MAX_DESCRIBE_RESTARTS {
                    return Err(ApiError::BadResponse(format!(
                        "the firewall of {} kept changing while being read ({restarts} restarts)",
                        inst.id
                    )));
                }
                rules.clear();
                version = None;
                pages = 0;
                continue;
            }
            version = Some(page.version);
            let empty = page.rules.is_empty();
            rules.extend(page.rules);
            if rules.len() >= page.total || empty {
                return Ok((rules, page.version));
            }
        }
    }

    pub fn create_rules(
        &self,
        inst: &Instance,
        rules: &[FirewallRule],
        version: Option<u64>,
    ) -> Result<Reply, ApiError> {
        let list: Vec<Value> = rules.iter().map(|r| wire::rule_to_json(r, true)).collect();
        self.call(
            "CreateFirewallRules",
            Some(&inst.region),
            &wire::write_body(inst, "FirewallRules", json!(list), version),
        )
    }

    pub fn delete_rules(
        &self,
        inst: &Instance,
        rules: &[FirewallRule],
        version: Option<u64>,
    ) -> Result<Reply, ApiError> {
        let list: Vec<Value> = rules.iter().map(|r| wire::rule_to_json(r, false)).collect();
        self.call(
            "DeleteFirewallRules",
            Some(&inst.region),
            &wire::write_body(inst, "FirewallRules", json!(list), version),
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
            &wire::write_body(
                inst,
                "FirewallRule",
                wire::rule_to_json(rule, true),
                version,
            ),
        )
    }

    /// Which of `ids` exist in `region` (docs/lighthouse-api.md#describeinstances).
    pub fn describe_instances(&self, region: &str, ids: &[&str]) -> Result<Vec<String>, ApiError> {
        let reply = self.call(
            "DescribeInstances",
            Some(region),
            &json!({"InstanceIds": ids, "Limit": 100}),
        )?;
        Ok(reply
            .body()?
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

/// Rules asked for per DescribeFirewallRules page: the API's maximum, and the whole quota.
const DESCRIBE_PAGE: usize = 100;
/// Pages of one read before the answer is refused (the quota fits in one).
const MAX_DESCRIBE_PAGES: u32 = 5;
/// Restarts of one read whose version moved between pages.
const MAX_DESCRIBE_RESTARTS: u32 = 3;
fn date_of(resp: &ureq::Response) -> Option<i64> {
    clock::parse_http_date(resp.header("Date")?)
}

fn read_limited(resp: ureq::Response) -> Result<String, ApiError> {
    // One allocation of the announced size instead of a doubling series (10 for a Describe of
    // 100 rules), which musl's allocator serves by mapping and unmapping pages.
    let announced = resp
        .header("Content-Length")
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map_or(0, |n| n.min(MAX_RESPONSE + 1));
    let mut buf = Vec::with_capacity(announced as usize);
    resp.into_reader()
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ApiError::Transport(format!("reading the answer: {e}")))?;
    if buf.len() as u64 > MAX_RESPONSE {
        return Err(ApiError::BadResponse("answer larger than 1 MiB".into()));
    }
    String::from_utf8(buf).map_err(|_| ApiError::BadResponse("answer is not UTF-8".into()))
}

/// The notifier for `config`: knockd's own HTTPS agent (the API's roots and CA file, the proxy
/// chosen for the webhook's host), or `Err` with a line for the operator.
pub(crate) fn notifier(config: &Config, notify: &NotifyConfig) -> Result<Notifier, String> {
    let host = notify.webhook_host().unwrap_or("");
    let agent = notify_agent(config, host).map_err(|e| format!("notify: {e}"))?;
    Notifier::start(notify.clone(), agent).map_err(|e| format!("notify: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
