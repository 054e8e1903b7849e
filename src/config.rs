//! The validated configuration. Everything after start-up sees only a `Config`; parsing and
//! validation live here (loading: `load`), the `.env` grammar in `envfile`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cidr::Cidr;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
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
    pub message_success: String,
    pub message_failure: String,
    /// Protocols that are on, each with its normalised port string (`80,443,3389`, `8000-8100`).
    pub ports: Vec<(Protocol, String)>,
    pub rule_prefix: String,
    pub instances: Vec<Instance>,
    pub region: String,
    pub endpoint: Endpoint,
    pub ca_file: Option<PathBuf>,
    pub secret_id: String,
    pub secret_key: Secret,
    pub token: Option<Secret>,
    pub knock_referer: Secret,
    pub knock_path: String,
    pub client_ip_method: ClientIpMethod,
    /// RULE_TTL, else DAYS_RULE_EXPIRES days, in seconds.
    pub rule_ttl_secs: i64,
    pub bind: SocketAddr,
    pub trusted_proxies: Vec<Cidr>,
    /// QUOTA_RESERVE: rule slots of the 100 that knockd leaves for the operator.
    pub quota_reserve: usize,
    /// MAX_CONNECTIONS: open knock-port connections at most; more are closed at once.
    pub max_connections: usize,
    /// CONNECTION_TIMEOUT: the whole life of one knock-port connection.
    pub connection_timeout_secs: u64,
    /// KNOCK_TIMEOUT: how long a knock waits for the firewall before answering failure.
    pub knock_timeout_secs: u64,
    /// PRUNE_INTERVAL: how often a serving knockd removes expired rules.
    pub prune_interval_secs: u64,
    /// LOCKOUT_FAILURES failed knocks within LOCKOUT_WINDOW lock an address out for
    /// LOCKOUT_DURATION. 0 failures disables the lockout.
    pub lockout_failures: u32,
    pub lockout_window_secs: u64,
    pub lockout_secs: u64,
    /// Things that work but an operator should know (METHOD 3, plain-HTTP endpoint, …).
    pub warnings: Vec<String>,
}
