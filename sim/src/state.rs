//! The simulated cloud's state: instances and their firewalls, call and error counters, the
//! rate-limit windows and the fault-injection PRNG. One `State` lives behind the server's mutex.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::action::Action;
use crate::args::Config;
use crate::rules::Rule;

pub(crate) struct Instance {
    pub(crate) id: String,
    pub(crate) region: String,
    pub(crate) version: u64,
    pub(crate) rules: Vec<Rule>,
    pub(crate) index: usize,
    /// `--busy-for-ms`: writes answer `FirewallBusy` until then.
    pub(crate) busy_until: Option<Instant>,
}

/// splitmix64: enough randomness for fault injection and request ids, reproducible by seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`; never for 0, always for 1.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A fresh uuid-v4-looking RequestId, as every cloud response carries.
    pub(crate) fn request_id(&mut self) -> String {
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

/// What one rate limit counts: (action, host, SecretId).
type RateKey = (Action, String, String);

pub(crate) struct State {
    pub(crate) instances: Vec<Instance>,
    pub(crate) calls: BTreeMap<String, u64>,
    pub(crate) calls_by_instance: BTreeMap<String, BTreeMap<String, u64>>,
    /// Region (`X-TC-Region` as sent, `-` when absent) → action → calls.
    pub(crate) calls_by_region: BTreeMap<String, BTreeMap<String, u64>>,
    /// `Host` as sent (lowercase; `-` when absent, `?` when implausible) → action → calls.
    pub(crate) calls_by_host: BTreeMap<String, BTreeMap<String, u64>>,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) rng: Rng,
    rate: HashMap<RateKey, VecDeque<Instant>>,
    pub(crate) conflicts_left: u64,
}

impl State {
    pub(crate) fn new(cfg: &Config, instances: Vec<Instance>, seed: u64) -> State {
        State {
            instances,
            calls: BTreeMap::new(),
            calls_by_instance: BTreeMap::new(),
            calls_by_region: BTreeMap::new(),
            calls_by_host: BTreeMap::new(),
            errors: BTreeMap::new(),
            rng: Rng::new(seed),
            rate: HashMap::new(),
            conflicts_left: cfg.conflict_after_describe,
        }
    }

    /// `calls`, `calls_by_instance`, `calls_by_region` and `calls_by_host` count a request as
    /// soon as it is routed, whatever happens next (a refusal, an injected fault, a dropped
    /// connection).
    pub(crate) fn count_call(
        &mut self,
        action: Action,
        instance: Option<&str>,
        region: &str,
        host: &str,
    ) {
        *self.calls.entry(action.name().to_string()).or_insert(0) += 1;
        *self
            .calls_by_host
            .entry(host.to_string())
            .or_default()
            .entry(action.name().to_string())
            .or_insert(0) += 1;
        *self
            .calls_by_region
            .entry(region.to_string())
            .or_default()
            .entry(action.name().to_string())
            .or_insert(0) += 1;
        if let Some(id) = instance {
            *self
                .calls_by_instance
                .entry(id.to_string())
                .or_default()
                .entry(action.name().to_string())
                .or_insert(0) += 1;
        }
    }

    pub(crate) fn dump(&self, now: i64) -> Value {
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
            "calls_by_region": self.calls_by_region,
            "calls_by_host": self.calls_by_host,
            "errors": self.errors,
        })
    }

    /// A rolling one-second window per (action, host, SecretId): Tencent documents the
    /// rate-limit dimension as "API + access region + sub-account", the access region being
    /// decided by the host the request went to, not by `X-TC-Region`
    /// (docs/lighthouse-api.md#rate-limits), each action with its own limit. The account-wide
    /// and per-IP limits that also exist are not simulated.
    pub(crate) fn admit(&mut self, action: Action, host: &str, secret_id: &str) -> bool {
        let now = Instant::now();
        let window = self
            .rate
            .entry((action, host.to_string(), secret_id.to_string()))
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
