//! The `--check-config` report and the one way secrets are masked for people to read.

use super::vars::VARS;
use super::{AccessPoint, ClientIpMethod, CloudConfig, Config, Protocol, Secret};
use crate::grammar::format_duration;

/// `AKID****oSs`: enough to tell keys apart, not enough to use one. Short ids are fully
/// masked.
pub fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() < 12 {
        return "****".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}****{tail}")
}

/// `--check-config`'s warning while the Referer knock is on.
pub(crate) const REFERER_REPLAYABLE: &str = "KNOCK_REFERER is set, so the Referer knock is on: \
    it is replayable (anyone who sees one knock, e.g. on public Wi-Fi or in a proxy's log, can \
    open the firewall for their own address, forever). Prefer per-client keys (knockd \
    --add-client LABEL) and unset KNOCK_REFERER once every client uses them";

/// A secret is only ever shown as set: not even its length.
fn mask_secret(_: &Secret) -> String {
    "**** (set)".to_string()
}

/// The access point and the hosts it gives the configured instances: which hosts, and so how
/// many rate budgets (docs/lighthouse-api.md#rate-limits).
fn access_point_line(cloud: &CloudConfig) -> String {
    let hosts: Vec<String> = cloud
        .endpoints()
        .iter()
        .map(|(e, regions)| format!("{} for {}", e.host, regions.join(",")))
        .collect();
    match &cloud.access_point {
        AccessPoint::One(e) => format!(
            "{} (one host for every region: one access region, one rate budget per action)",
            e.url()
        ),
        AccessPoint::PerRegion { .. } => format!(
            "{} (a host per region: {})",
            cloud.access_point.url(),
            hosts.join("; ")
        ),
    }
}

/// One `KEY = value` line of the report, before it is put in the table's order.
type Line = (&'static str, String);

impl Config {
    /// The effective configuration, one `KEY = value` line each, secrets masked, then warnings.
    pub fn report(&self) -> String {
        let mut lines = self.knock_lines();
        lines.extend(self.rule_lines());
        lines.extend(self.cloud_lines());
        lines.extend(self.limit_lines());
        match &self.notify {
            Some(n) => lines.extend(n.describe()),
            None => lines.push(("NOTIFY_URL", "(not set: notifications off)".to_string())),
        }
        lines.extend(self.key_lines());

        let mut out = self.report_head();
        // The table's order; variables shown through another (DAYS_RULE_EXPIRES as RULE_TTL)
        // have no line of their own.
        for var in VARS {
            if let Some((k, v)) = lines.iter().find(|(k, _)| *k == var.name) {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        if !self.knock.referer.expose().is_empty() {
            out.push_str(&format!("warning: {REFERER_REPLAYABLE}\n"));
        }
        out
    }

    /// The report's first lines: the config file, and where the credentials came from
    /// (knockd's variables, the SDKs' environment names or their profile file), never what
    /// they are.
    fn report_head(&self) -> String {
        let mut out = match &self.file {
            Some(p) => format!("# config file: {}\n", p.display()),
            None => "# config file: none (environment only)\n".to_string(),
        };
        let [id, key, token] = &self.cloud.credentials_from;
        if !id.is_empty() {
            out.push_str(&format!(
                "# credentials: SecretId from {id}; SecretKey from {key}; token {}\n",
                if token.is_empty() {
                    "not set".to_string()
                } else {
                    format!("from {token}")
                }
            ));
        }
        out
    }

    /// The knock port: its answers, Referer, path, how it finds the client's address, where
    /// it listens.
    fn knock_lines(&self) -> Vec<Line> {
        let method = match self.knock.client_ip_method {
            ClientIpMethod::Peer => "1 (TCP peer)",
            ClientIpMethod::Forwarded => "2 (forwarded headers from TRUSTED_PROXIES)",
            ClientIpMethod::Declared => "3 (client-declared, unsafe)",
        };
        let proxies: Vec<String> = self
            .knock
            .trusted_proxies
            .iter()
            .map(|c| c.to_string())
            .collect();
        vec![
            (
                "MESSAGE_SUCCESS",
                format!("{:?}", self.knock.message_success),
            ),
            (
                "MESSAGE_FAILURE",
                format!("{:?}", self.knock.message_failure),
            ),
            ("KNOCK_REFERER", mask_secret(&self.knock.referer)),
            ("KNOCK_REQUEST_PATH", self.knock.path.clone()),
            ("METHOD_TO_GET_CLIENT_IP", method.to_string()),
            ("BIND_IP", self.knock.bind.ip().to_string()),
            ("BIND_PORT", self.knock.bind.port().to_string()),
            ("TRUSTED_PROXIES", proxies.join(",")),
        ]
    }

    /// The rules a knock opens: ports, name prefix, lifetime, room.
    fn rule_lines(&self) -> Vec<Line> {
        vec![
            ("FW_PERMIT_PORTS_TCP", self.ports_shown(Protocol::Tcp)),
            ("FW_PERMIT_PORTS_UDP", self.ports_shown(Protocol::Udp)),
            ("FW_RULE_NAME_PREFIX", self.rules.prefix.clone()),
            ("RULE_TTL", format_duration(self.rules.ttl.as_secs())),
            ("QUOTA_RESERVE", self.rules.quota_reserve.to_string()),
            ("MAX_ADDRESSES_PER_V6_64", self.rules.per_v6_64.to_string()),
        ]
    }

    /// The ports of protocol `p`. A mixed setting is written as several rules
    /// (docs/lighthouse-api.md#port-grammar): the report says so, rule by rule.
    fn ports_shown(&self, p: Protocol) -> String {
        let rules: Vec<&str> = self
            .rules
            .ports
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, s)| s.as_str())
            .collect();
        match rules.as_slice() {
            [] => "(off)".to_string(),
            [one] => one.to_string(),
            many => format!(
                "{} (written as {} rules per address: {}; the API never mixes single ports and a range in one rule)",
                many.join(","),
                many.len(),
                many.iter()
                    .map(|r| format!("'{r}'"))
                    .collect::<Vec<_>>()
                    .join(" + ")
            ),
        }
    }

    /// The cloud: instances, region, access point, CA and the credentials, masked.
    fn cloud_lines(&self) -> Vec<Line> {
        let instances: Vec<String> = self
            .cloud
            .instances
            .iter()
            .map(|i| format!("{}:{}", i.region, i.id))
            .collect();
        vec![
            ("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS", instances.join(",")),
            ("TENCENT_CLOUD_REGION", self.cloud.region.clone()),
            ("TENCENT_CLOUD_ACCESS_POINT", access_point_line(&self.cloud)),
            (
                "TENCENT_CLOUD_CA_FILE",
                self.cloud.ca_file.as_ref().map_or_else(
                    || "(built-in roots)".to_string(),
                    |p| p.display().to_string(),
                ),
            ),
            ("TENCENT_CLOUD_SECRET_ID", mask_id(&self.cloud.secret_id)),
            (
                "TENCENT_CLOUD_SECRET_KEY",
                mask_secret(&self.cloud.secret_key),
            ),
            (
                "TENCENT_CLOUD_TOKEN",
                self.cloud
                    .token
                    .as_ref()
                    .map_or_else(|| "(not set)".to_string(), mask_secret),
            ),
        ]
    }

    /// The limits: connections, timeouts, pruning, lockout.
    fn limit_lines(&self) -> Vec<Line> {
        vec![
            ("MAX_CONNECTIONS", self.limits.max_connections.to_string()),
            (
                "CONNECTION_TIMEOUT",
                format_duration(self.limits.connection_timeout.as_secs()),
            ),
            (
                "KNOCK_TIMEOUT",
                format_duration(self.limits.knock_timeout.as_secs()),
            ),
            (
                "PRUNE_INTERVAL",
                match self.limits.prune_interval.as_secs() {
                    0 => "0 (off)".to_string(),
                    s => format_duration(s),
                },
            ),
            (
                "HOST_REFRESH",
                format_duration(self.limits.host_refresh.as_secs()),
            ),
            (
                "LOCKOUT_FAILURES",
                match self.limits.lockout_failures {
                    0 => "0 (off)".to_string(),
                    n => n.to_string(),
                },
            ),
            (
                "LOCKOUT_WINDOW",
                format_duration(self.limits.lockout_window.as_secs()),
            ),
            (
                "LOCKOUT_DURATION",
                format_duration(self.limits.lockout_duration.as_secs()),
            ),
        ]
    }

    /// The per-client keys: clients file, challenge, replay cache, public URL.
    fn key_lines(&self) -> Vec<Line> {
        vec![
            (
                "KNOCK_CLIENTS_FILE",
                self.keys.clients_file.display().to_string(),
            ),
            (
                "KNOCK_CHALLENGE_SECRET",
                self.keys
                    .challenge_secret
                    .as_ref()
                    .map_or_else(|| "(random per process)".to_string(), mask_secret),
            ),
            (
                "KNOCK_CHALLENGE_TTL",
                format_duration(self.keys.challenge_ttl.as_secs()),
            ),
            ("KNOCK_REPLAY_CACHE", self.keys.replay_cache.to_string()),
            (
                "KNOCK_PUBLIC_URL",
                self.keys.public_url.as_ref().map_or_else(
                    || "(not set: --add-client prints a placeholder)".to_string(),
                    |u| u.as_str().to_string(),
                ),
            ),
        ]
    }
}
