//! The validated configuration. Everything after start-up sees only a `Config`, made of
//! sections (`cloud`, `knock`, `rules`, `limits`). Finding and reading the file is in
//! `load`; the `.env` grammar is in `envfile`, the variables and their defaults in `vars`,
//! each section's checks in `sections`, value parsers in `values`, the printed report in
//! `report`, where API calls go in `access_point`, where the key pair comes from in
//! `credentials`.

mod access_point;
mod credentials;
pub mod envfile;
mod load;
mod report;
mod sections;
mod values;
mod vars;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use access_point::{AccessPoint, REGIONAL_HOSTS, REGION_PLACEHOLDER};
pub use load::{from_pairs, load, load_with, variables, MAX_FILE};
pub use report::mask_id;

pub(crate) use vars::{DEFAULT_MESSAGE_FAILURE, DEFAULT_MESSAGE_SUCCESS};

use crate::notify::NotifyConfig;
use crate::rules::cidr::Cidr;
use crate::rules::planner::{Policy, QUOTA};
pub use crate::rules::Protocol;

/// A value that must never reach a log or an error message: it prints as `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Instance {
    /// `lhins-` plus 8 lowercase alphanumerics.
    pub id: String,
    pub region: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    /// Only ever for loopback endpoints (tests, the simulator).
    Http,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// Exactly what is sent (and signed) as `Host`: `host` or `host:port`, lowercase.
    pub host: String,
}

impl Endpoint {
    pub fn url(&self) -> String {
        match self.scheme {
            Scheme::Https => format!("https://{}/", self.host),
            Scheme::Http => format!("http://{}/", self.host),
        }
    }
}

/// METHOD_TO_GET_CLIENT_IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpMethod {
    /// 1: the TCP peer.
    Peer,
    /// 2: X-Forwarded-For / X-Real-IP, trusted only from TRUSTED_PROXIES.
    Forwarded,
    /// 3: the client's own `ip` header (unsafe: anyone can claim any address).
    Declared,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    pub cloud: CloudConfig,
    pub knock: KnockConfig,
    pub rules: RulesConfig,
    pub limits: LimitsConfig,
    /// NOTIFY_*: None when neither NOTIFY_URL nor NOTIFY_COMMAND is set.
    pub notify: Option<NotifyConfig>,
    pub keys: KeysConfig,
    /// Things that work but an operator should know (METHOD 3, plain-HTTP endpoint, …).
    pub warnings: Vec<String>,
}

/// The instances and how to reach and sign for the API.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    pub instances: Vec<Instance>,
    /// TENCENT_CLOUD_REGION: the region of instances listed without one.
    pub region: String,
    pub access_point: AccessPoint,
    pub ca_file: Option<PathBuf>,
    pub secret_id: String,
    pub secret_key: Secret,
    pub token: Option<Secret>,
    /// Where the SecretId, SecretKey and token came from (`TENCENTCLOUD_SECRET_ID
    /// (environment)`), never their values; empty for one not found.
    pub credentials_from: [String; 3],
}

/// The knock port.
#[derive(Debug, Clone)]
pub struct KnockConfig {
    pub message_success: String,
    pub message_failure: String,
    pub referer: Secret,
    pub path: String,
    pub client_ip_method: ClientIpMethod,
    pub bind: SocketAddr,
    pub trusted_proxies: Vec<Cidr>,
}

/// The rules knockd writes.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// Per protocol on, the Port string of each rule a grant gets (`22,443`; `22,8000-8100` gives `22` and `8000-8100`).
    pub ports: Vec<(Protocol, String)>,
    /// FW_RULE_NAME_PREFIX.
    pub prefix: String,
    /// RULE_TTL, else DAYS_RULE_EXPIRES days.
    pub ttl: Duration,
    /// QUOTA_RESERVE: rule slots of the 100 that knockd leaves for the operator.
    pub quota_reserve: usize,
    /// MAX_ADDRESSES_PER_V6_64: addresses of one IPv6 /64 with knockd rules at once (0: no cap).
    pub per_v6_64: usize,
}

/// Per-client keys and the challenge–response knock.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// KNOCK_CLIENTS_FILE, else `knockd.clients` beside the config file (beside the binary
    /// when there is none).
    pub clients_file: PathBuf,
    /// KNOCK_CHALLENGE_SECRET; `None`: a random secret per process.
    pub challenge_secret: Option<Secret>,
    /// KNOCK_CHALLENGE_TTL: how long a challenge can be answered.
    pub challenge_ttl: Duration,
    /// KNOCK_REPLAY_CACHE: used challenges remembered at most.
    pub replay_cache: usize,
    /// KNOCK_PUBLIC_URL: the knock URL as clients reach it, for the recipes `--add-client`
    /// prints.
    pub public_url: Option<crate::keys::url::KnockUrl>,
    /// The clients file's invalid lines (`PATH: line N: …`, never a key), when it was read.
    /// Serving leaves them out and goes on (each is a warning); `--check-config` fails on them.
    pub invalid_lines: Vec<String>,
}

/// Bounds on connections, time and failed knocks.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// MAX_CONNECTIONS: open knock-port connections at most.
    pub max_connections: usize,
    /// CONNECTION_TIMEOUT: the whole life of one knock-port connection.
    pub connection_timeout: Duration,
    /// KNOCK_TIMEOUT: how long a knock waits for the firewall before answering failure.
    pub knock_timeout: Duration,
    /// PRUNE_INTERVAL: how often a serving knockd removes expired rules (zero: never).
    pub prune_interval: Duration,
    /// HOST_REFRESH: how often the clients file's host names are resolved again (and the
    /// grace before an address a name lost is closed).
    pub host_refresh: Duration,
    /// LOCKOUT_FAILURES failed knocks within LOCKOUT_WINDOW lock an address out for
    /// LOCKOUT_DURATION. 0 failures disables the lockout.
    pub lockout_failures: u32,
    pub lockout_window: Duration,
    pub lockout_duration: Duration,
}

impl Config {
    /// What the planner needs to know.
    pub fn policy(&self) -> Policy<'_> {
        Policy {
            prefix: &self.rules.prefix,
            ports: &self.rules.ports,
            ttl_secs: self.rules.ttl.as_secs() as i64,
            limit: QUOTA.saturating_sub(self.rules.quota_reserve),
            per_v6_64: self.rules.per_v6_64,
        }
    }
}

/// One problem: the variable it is about (or the config file's path) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub message: String,
}

/// Every problem found, so that the operator can fix them all in one go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An error about no variable in particular (no file found) is its message alone.
        if self.variable.is_empty() {
            return f.write_str(&self.message);
        }
        write!(f, "{}: {}", self.variable, self.message)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::values::*;
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The smallest valid configuration.
    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("FW_PERMIT_PORTS_TCP", "22"),
            ("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS", "lhins-a0ogy7ty"),
            ("TENCENT_CLOUD_SECRET_ID", "AKIDexampleexampleexample"),
            ("TENCENT_CLOUD_SECRET_KEY", "keykeykeykeykeykey"),
            ("KNOCK_REFERER", "https://example.com/some-long-secret"),
        ]
    }

    fn with(over: &[(&'static str, &'static str)]) -> Result<Config, ConfigErrors> {
        let mut e = base();
        e.extend_from_slice(over);
        let mut map = HashMap::new();
        for (k, v) in e {
            map.insert(k.to_string(), v.to_string());
        }
        from_pairs(&[], &map)
    }

    fn error_vars(over: &[(&'static str, &'static str)]) -> Vec<String> {
        with(over)
            .expect_err("must be invalid")
            .0
            .into_iter()
            .map(|e| e.variable)
            .collect()
    }

    #[test]
    fn defaults() {
        let c = with(&[]).expect("valid");
        assert_eq!(c.knock.message_success, "500 Internal Server Error.");
        assert_eq!(c.knock.message_failure, "500 Internal Server Error");
        assert_eq!(c.rules.ports, vec![(Protocol::Tcp, "22".to_string())]);
        assert_eq!(c.rules.prefix, "Knockd-");
        assert_eq!(c.cloud.region, "ap-shanghai");
        assert_eq!(
            c.cloud.instances,
            vec![Instance {
                id: "lhins-a0ogy7ty".into(),
                region: "ap-shanghai".into()
            }]
        );
        assert_eq!(c.cloud.access_point, AccessPoint::regional());
        assert_eq!(
            c.cloud.endpoint(None).url(),
            "https://lighthouse.ap-shanghai.tencentcloudapi.com/"
        );
        assert_eq!(c.knock.path, "/favico.ico");
        assert_eq!(c.knock.client_ip_method, ClientIpMethod::Peer);
        assert_eq!(c.rules.ttl.as_secs(), 30 * 86_400);
        assert_eq!(c.knock.bind, "0.0.0.0:8080".parse().expect("addr"));
        assert_eq!(c.knock.trusted_proxies.len(), 2);
        assert_eq!(c.rules.quota_reserve, 0);
        assert_eq!(c.rules.per_v6_64, 4);
        assert_eq!(c.limits.max_connections, 4096);
        assert_eq!(c.limits.connection_timeout.as_secs(), 10);
        assert_eq!(c.limits.knock_timeout.as_secs(), 20);
        assert_eq!(c.limits.prune_interval.as_secs(), 3600);
        assert_eq!(c.limits.lockout_failures, 10);
        assert_eq!(c.limits.lockout_window.as_secs(), 600);
        assert_eq!(c.limits.lockout_duration.as_secs(), 1800);
        assert!(c.cloud.token.is_none() && c.cloud.ca_file.is_none());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn ports_are_lenient_and_normalised() {
        assert_eq!(parse_ports("80，443,3389").as_deref(), Ok("80,443,3389"));
        assert_eq!(parse_ports(" 22 ,, 80,22, ").as_deref(), Ok("22,80"));
        assert_eq!(
            parse_ports("8000 - 8100,080").as_deref(),
            Ok("8000-8100,80")
        );
        assert_eq!(parse_ports("").as_deref(), Ok(""));
        assert!(parse_ports("70000").is_err());
        assert!(parse_ports("0").is_err());
        assert!(parse_ports("ssh").is_err());
        assert!(parse_ports("9000-8000").is_err());
        assert!(parse_ports("8000-8000").is_err());
        assert!(parse_ports("1-2-3").is_err());
        let long: Vec<String> = (10000..10011).map(|p| p.to_string()).collect();
        assert!(parse_ports(&long.join(",")).is_err(), "65 chars");
        assert!(parse_ports(&long[..10].join(",")).is_ok(), "59 chars");
    }

    #[test]
    fn both_protocols_and_none() {
        let c = with(&[("FW_PERMIT_PORTS_UDP", "514,")]).expect("valid");
        assert_eq!(
            c.rules.ports,
            vec![(Protocol::Tcp, "22".into()), (Protocol::Udp, "514".into())]
        );
        assert_eq!(
            error_vars(&[("FW_PERMIT_PORTS_TCP", " , ")]),
            vec!["FW_PERMIT_PORTS_TCP"]
        );
    }

    #[test]
    fn instances_and_regions() {
        let list = parse_instances(
            "lhins-a0ogy7ty, ap-guangzhou:lhins-bbbbbbbb,lhins-a0ogy7ty，",
            "ap-shanghai",
        )
        .expect("valid");
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].region, "ap-guangzhou");
        assert!(parse_instances("lhins-A0OGY7TY", "ap-shanghai").is_err());
        assert!(parse_instances("lhins-short", "ap-shanghai").is_err());
        assert!(parse_instances("Shanghai:lhins-a0ogy7ty", "ap-shanghai").is_err());
        assert!(parse_instances(",", "ap-shanghai").is_err());
        assert!(parse_instances(
            "ap-guangzhou:lhins-a0ogy7ty,ap-beijing:lhins-a0ogy7ty",
            "ap-shanghai"
        )
        .is_err());
        for ok in [
            "ap-guangzhou",
            "na-siliconvalley",
            "eu-frankfurt",
            "ap-shanghai-fsi",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "Shanghai", "shanghai", "ap-", "-ap", "ap--x", "1p-x", "ap_x", "",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        let ok = |s: &str| parse_endpoint(s).expect(s);
        assert_eq!(
            ok("Lighthouse.TencentCloudAPI.com").host,
            "lighthouse.tencentcloudapi.com"
        );
        assert_eq!(ok("example.com:8443").url(), "https://example.com:8443/");
        assert_eq!(ok("https://example.com/").host, "example.com");
        assert_eq!(ok("http://127.0.0.1:9000").url(), "http://127.0.0.1:9000/");
        assert_eq!(ok("http://[::1]:9000/").host, "[::1]:9000");
        assert_eq!(ok("http://localhost:9000").scheme, Scheme::Http);
        assert_eq!(ok("https://[2001:db8::1]").host, "[2001:db8::1]");
        assert_eq!(ok("https://127.0.0.1:9077").scheme, Scheme::Https);
        assert!(parse_endpoint("127.0.0.1:9077")
            .expect_err("no scheme")
            .contains("write http://127.0.0.1:9077"));
        for bad in [
            "http://example.com",
            "http://10.0.0.1:80",
            "ftp://example.com",
            "https://example.com/path",
            "https://example.com?x",
            "https://user@example.com",
            "example.com:0",
            "example.com:99999",
            "2001:db8::1",
            "127.0.0.1:9077",
            "localhost:9077",
            "[::1]:9077",
            "exa mple.com",
            "-bad.com",
            "999.1.1.1",
            "",
            "https://",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
        let c = with(&[("TENCENT_CLOUD_ACCESS_POINT", "http://127.0.0.1:9000")]).expect("ok");
        assert!(c.warnings.iter().any(|w| w.contains("http://")));
    }

    #[test]
    fn rule_ttl_overrides_days() {
        let c = with(&[("DAYS_RULE_EXPIRES", "7")]).expect("ok");
        assert_eq!(c.rules.ttl.as_secs(), 7 * 86_400);
        let c = with(&[("DAYS_RULE_EXPIRES", "7"), ("RULE_TTL", "12h")]).expect("ok");
        assert_eq!(c.rules.ttl.as_secs(), 12 * 3600);
        assert_eq!(error_vars(&[("RULE_TTL", "12")]), vec!["RULE_TTL"]);
        assert_eq!(error_vars(&[("RULE_TTL", "0s")]), vec!["RULE_TTL"]);
        assert_eq!(
            error_vars(&[("DAYS_RULE_EXPIRES", "0")]),
            vec!["DAYS_RULE_EXPIRES"]
        );
    }

    #[test]
    fn numbers_and_switches() {
        let c = with(&[
            ("PRUNE_INTERVAL", "0"),
            ("LOCKOUT_FAILURES", "0"),
            ("CONNECTION_TIMEOUT", "15"),
            ("QUOTA_RESERVE", "99"),
            ("MAX_CONNECTIONS", "65536"),
            ("BIND_IP", "::"),
            ("BIND_PORT", "80"),
            ("METHOD_TO_GET_CLIENT_IP", "2"),
            ("TRUSTED_PROXIES", "10.0.0.0/8， 192.168.1.1,"),
        ])
        .expect("ok");
        assert_eq!(c.limits.prune_interval.as_secs(), 0);
        assert_eq!(c.limits.lockout_failures, 0);
        assert_eq!(c.limits.connection_timeout.as_secs(), 15);
        assert_eq!(c.knock.bind, "[::]:80".parse().expect("addr"));
        assert_eq!(c.knock.client_ip_method, ClientIpMethod::Forwarded);
        assert_eq!(c.knock.trusted_proxies.len(), 2);
        for (var, value) in [
            ("QUOTA_RESERVE", "100"),
            ("MAX_CONNECTIONS", "0"),
            ("BIND_PORT", "0"),
            ("BIND_PORT", "65536"),
            ("BIND_IP", "localhost"),
            ("METHOD_TO_GET_CLIENT_IP", "4"),
            ("TRUSTED_PROXIES", "10.0.0.1/8"),
            ("LOCKOUT_WINDOW", "0"),
            ("KNOCK_TIMEOUT", "soon"),
            ("KNOCK_REQUEST_PATH", "favico.ico"),
            ("KNOCK_REQUEST_PATH", "/a b"),
            ("KNOCK_REQUEST_PATH", "/a?b"),
            ("FW_RULE_NAME_PREFIX", "Knockd-ThisIsFarTooLong-"),
            ("FW_RULE_NAME_PREFIX", "敲门-"),
        ] {
            assert_eq!(error_vars(&[(var, value)]), vec![var], "{var}={value}");
        }
    }

    #[test]
    fn empty_means_default_except_lists() {
        let c = with(&[("TENCENT_CLOUD_REGION", " "), ("TRUSTED_PROXIES", "")]).expect("ok");
        assert_eq!(c.cloud.region, "ap-shanghai");
        assert!(c.knock.trusted_proxies.is_empty());
    }

    #[test]
    fn env_overrides_file_pairs() {
        let pairs = vec![
            ("FW_PERMIT_PORTS_TCP".to_string(), "22".to_string()),
            ("BIND_PORT".to_string(), "9000".to_string()),
        ];
        let mut e = env(&base());
        e.insert("BIND_PORT".into(), "9001".into());
        e.remove("FW_PERMIT_PORTS_TCP");
        let c = from_pairs(&pairs, &e).expect("ok");
        assert_eq!(c.knock.bind.port(), 9001);
        assert_eq!(c.rules.ports, vec![(Protocol::Tcp, "22".into())]);
    }

    #[test]
    fn all_problems_at_once_without_secrets() {
        let secret = "TopSecretValue-never-print";
        let mut e = env(&[
            ("FW_PERMIT_PORTS_TCP", "70000"),
            ("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS", "i-123"),
            ("TENCENT_CLOUD_REGION", "Shanghai"),
            ("BIND_PORT", "0"),
        ]);
        e.insert(
            "TENCENT_CLOUD_SECRET_KEY".into(),
            format!("{secret} with space"),
        );
        e.insert("KNOCK_REFERER".into(), format!("{secret}\u{7}"));
        let errors = from_pairs(&[], &e).expect_err("invalid");
        let text = errors.to_string();
        for var in [
            "FW_PERMIT_PORTS_TCP",
            "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS",
            "TENCENT_CLOUD_REGION",
            "BIND_PORT",
            "TENCENT_CLOUD_SECRET_ID",
            "TENCENT_CLOUD_SECRET_KEY",
            "KNOCK_REFERER",
        ] {
            assert!(
                text.contains(&format!("{var}: ")),
                "{var} missing in:\n{text}"
            );
        }
        assert!(!text.contains(secret), "{text}");
    }

    #[test]
    fn key_defaults_agree_with_the_keys_module() {
        let c = with(&[]).expect("valid");
        assert_eq!(
            c.keys.challenge_ttl.as_secs(),
            crate::keys::challenge::DEFAULT_TTL_SECS
        );
        assert_eq!(c.keys.replay_cache, crate::keys::replay::DEFAULT_CAPACITY);
        assert_eq!(
            c.keys.clients_file,
            PathBuf::from(crate::keys::DEFAULT_CLIENTS_FILE)
        );
        assert!(c.keys.challenge_secret.is_none() && c.keys.public_url.is_none());
    }

    #[test]
    fn warnings() {
        let c = with(&[("METHOD_TO_GET_CLIENT_IP", "3")]).expect("ok");
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("METHOD_TO_GET_CLIENT_IP")));
        let pairs = vec![("FW_PERMIT_PORTS".to_string(), "22".to_string())];
        let c = from_pairs(&pairs, &env(&base())).expect("ok");
        assert!(c.warnings.iter().any(|w| w.contains("FW_PERMIT_PORTS ")));
    }

    #[test]
    fn report_masks_secrets() {
        let mut e = env(&base());
        e.insert("TENCENT_CLOUD_TOKEN".into(), "tokentokentoken".into());
        let c = from_pairs(&[], &e).expect("ok");
        let r = c.report();
        assert!(r.contains("TENCENT_CLOUD_SECRET_ID = AKID****ple\n"), "{r}");
        assert!(r.contains("TENCENT_CLOUD_SECRET_KEY = **** (set)\n"), "{r}");
        assert!(r.contains("TENCENT_CLOUD_TOKEN = **** (set)\n"), "{r}");
        assert!(r.contains("FW_PERMIT_PORTS_UDP = (off)\n"), "{r}");
        for s in [
            "keykeykey",
            "tokentoken",
            "some-long-secret",
            "exampleexample",
        ] {
            assert!(!r.contains(s), "{s} leaked:\n{r}");
        }
        for line in r.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                line.contains(" = ") || line.starts_with("warning: "),
                "{line}"
            );
        }
    }
}
