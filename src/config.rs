//! The validated configuration. Everything after start-up sees only a `Config`; parsing and
//! validation live here (loading: `load`), the `.env` grammar in `envfile`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::cidr::Cidr;
use crate::envfile;

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

// ---------------------------------------------------------------------------------------------
// Loading and validation.

/// Every variable knockd reads. A file key outside this list is warned about, since it is most
/// likely a typo that would otherwise silently fall back to a default.
pub const VARIABLES: &[&str] = &[
    "MESSAGE_SUCCESS",
    "MESSAGE_FAILURE",
    "FW_PERMIT_PORTS_TCP",
    "FW_PERMIT_PORTS_UDP",
    "FW_RULE_NAME_PREFIX",
    "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS",
    "TENCENT_CLOUD_REGION",
    "TENCENT_CLOUD_ACCESS_POINT",
    "TENCENT_CLOUD_CA_FILE",
    "TENCENT_CLOUD_SECRET_ID",
    "TENCENT_CLOUD_SECRET_KEY",
    "TENCENT_CLOUD_TOKEN",
    "KNOCK_REFERER",
    "KNOCK_REQUEST_PATH",
    "METHOD_TO_GET_CLIENT_IP",
    "DAYS_RULE_EXPIRES",
    "RULE_TTL",
    "BIND_IP",
    "BIND_PORT",
    "TRUSTED_PROXIES",
    "QUOTA_RESERVE",
    "MAX_CONNECTIONS",
    "CONNECTION_TIMEOUT",
    "KNOCK_TIMEOUT",
    "PRUNE_INTERVAL",
    "LOCKOUT_FAILURES",
    "LOCKOUT_WINDOW",
    "LOCKOUT_DURATION",
];

pub const DEFAULT_MESSAGE_SUCCESS: &str = "500 Internal Server Error.";
pub const DEFAULT_MESSAGE_FAILURE: &str = "500 Internal Server Error";
pub const DEFAULT_RULE_PREFIX: &str = "Knockd-";
pub const DEFAULT_REGION: &str = "ap-shanghai";
pub const DEFAULT_ACCESS_POINT: &str = "lighthouse.tencentcloudapi.com";
pub const DEFAULT_KNOCK_PATH: &str = "/favico.ico";
pub const DEFAULT_TRUSTED_PROXIES: &str = "127.0.0.0/8,::1";
/// The API's limit on a rule's `Port` string.
pub const MAX_PORT_STRING: usize = 64;
/// Longest accepted FW_RULE_NAME_PREFIX: the description (64 bytes) must keep room for the label
/// and the expiry.
pub const MAX_RULE_PREFIX: usize = 20;
/// Upper bound of every duration, so that expiry arithmetic can never overflow.
const MAX_DURATION_SECS: u64 = 36_500 * 86_400;

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

/// Finds the config file, reads it and validates everything.
///
/// The file is `explicit` (`--config`), else `KNOCKD_CONFIG` from `env`, else `./.env`, else
/// `.env` in `exe_dir`; with none of them the configuration comes from `env` alone. A file named
/// by `--config` or `KNOCKD_CONFIG` must be readable. `env` overrides the file.
pub fn load(
    explicit: Option<&Path>,
    env: &HashMap<String, String>,
    exe_dir: Option<&Path>,
) -> Result<Config, ConfigErrors> {
    let named = explicit.map(Path::to_path_buf).or_else(|| {
        env.get("KNOCKD_CONFIG")
            .filter(|p| !p.trim().is_empty())
            .map(PathBuf::from)
    });
    let path = match named {
        Some(p) => Some(p),
        None => {
            let candidates =
                std::iter::once(PathBuf::from(".env")).chain(exe_dir.map(|d| d.join(".env")));
            let mut found = None;
            for c in candidates {
                // A candidate that exists but cannot be read is an error, not a silent skip:
                // the operator put it there and would otherwise run on defaults.
                match std::fs::metadata(&c) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    _ => {
                        found = Some(c);
                        break;
                    }
                }
            }
            found
        }
    };

    let mut errors = Vec::new();
    let mut pairs = Vec::new();
    let mut warnings = Vec::new();
    if let Some(path) = &path {
        let shown = path.display().to_string();
        match read_text(path) {
            Ok(text) => {
                let (p, file_errors) = envfile::parse_with_env(&text, env);
                errors.extend(file_errors.into_iter().map(|e| ConfigError {
                    variable: shown.clone(),
                    message: e.to_string(),
                }));
                if p.iter().any(|(k, _)| k == "TENCENT_CLOUD_SECRET_KEY") {
                    if let Some(mode) = group_or_other_readable(path) {
                        warnings.push(format!(
                            "{shown} holds TENCENT_CLOUD_SECRET_KEY and is readable by group or \
                             others (mode {mode:03o}); run: chmod 600 {shown}"
                        ));
                    }
                }
                pairs = p;
            }
            Err(message) => errors.push(ConfigError {
                variable: shown,
                message,
            }),
        }
    }

    match from_pairs(&pairs, env) {
        Ok(mut config) if errors.is_empty() => {
            config.file = path.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
            warnings.append(&mut config.warnings);
            config.warnings = warnings;
            Ok(config)
        }
        Ok(_) => Err(ConfigErrors(errors)),
        Err(ConfigErrors(more)) => {
            errors.extend(more);
            Err(ConfigErrors(errors))
        }
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the config file: {e}"))?;
    if meta.is_dir() {
        return Err("cannot read the config file: it is a directory".into());
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the config file: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..bad].iter().filter(|&&b| b == b'\n').count() + 1;
        format!("line {line}: not valid UTF-8 (save the file as UTF-8)")
    })
}

#[cfg(unix)]
fn group_or_other_readable(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn group_or_other_readable(_path: &Path) -> Option<u32> {
    None
}

/// The pure core: the file's key/value pairs (later ones win) with `env` on top, validated.
/// `Config.file` is left `None`; `load` fills it in.
pub fn from_pairs(
    pairs: &[(String, String)],
    env: &HashMap<String, String>,
) -> Result<Config, ConfigErrors> {
    let mut file: HashMap<&str, &str> = HashMap::new();
    for (k, v) in pairs {
        file.insert(k.as_str(), v.as_str());
    }
    let vars = Vars { file, env };
    let mut c = Checker::default();

    let mut unknown: Vec<&str> = Vec::new();
    for (k, _) in pairs {
        if !VARIABLES.contains(&k.as_str()) && !unknown.contains(&k.as_str()) {
            unknown.push(k);
        }
    }
    for k in unknown {
        c.warn(format!(
            "{k} in the config file is not a knockd variable and is ignored"
        ));
    }

    // Response bodies are used byte for byte, so they are not trimmed.
    let message_success = vars
        .raw("MESSAGE_SUCCESS")
        .unwrap_or(DEFAULT_MESSAGE_SUCCESS)
        .to_string();
    let message_failure = vars
        .raw("MESSAGE_FAILURE")
        .unwrap_or(DEFAULT_MESSAGE_FAILURE)
        .to_string();
    if message_success == message_failure {
        c.warn("MESSAGE_SUCCESS and MESSAGE_FAILURE are identical: a client cannot tell whether its knock worked".into());
    }

    let mut ports = Vec::new();
    for (proto, var) in [
        (Protocol::Tcp, "FW_PERMIT_PORTS_TCP"),
        (Protocol::Udp, "FW_PERMIT_PORTS_UDP"),
    ] {
        match parse_ports(vars.get(var).unwrap_or("")) {
            Ok(s) if s.is_empty() => {}
            Ok(s) => ports.push((proto, s)),
            Err(e) => c.err(var, e),
        }
    }
    if ports.is_empty() && !c.has_error_for("FW_PERMIT_PORTS_") {
        c.err(
            "FW_PERMIT_PORTS_TCP",
            "no ports to open: set FW_PERMIT_PORTS_TCP and/or FW_PERMIT_PORTS_UDP (e.g. '22,443')",
        );
    }

    let rule_prefix = vars
        .get_or("FW_RULE_NAME_PREFIX", DEFAULT_RULE_PREFIX)
        .to_string();
    if let Err(e) = check_rule_prefix(&rule_prefix) {
        c.err("FW_RULE_NAME_PREFIX", e);
    }

    let region = vars
        .get_or("TENCENT_CLOUD_REGION", DEFAULT_REGION)
        .to_string();
    if !is_region(&region) {
        c.err(
            "TENCENT_CLOUD_REGION",
            format!("'{region}' is not a region name (lowercase, like ap-guangzhou or na-siliconvalley)"),
        );
    }

    let instances = match vars.get("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS") {
        None => {
            c.err(
                "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS",
                "required: the Lighthouse instance ids, e.g. 'lhins-a0ogy7ty' or 'ap-guangzhou:lhins-a0ogy7ty'",
            );
            Vec::new()
        }
        Some(v) => match parse_instances(v, &region) {
            Ok(list) => list,
            Err(e) => {
                c.err("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS", e);
                Vec::new()
            }
        },
    };

    let endpoint =
        match parse_endpoint(vars.get_or("TENCENT_CLOUD_ACCESS_POINT", DEFAULT_ACCESS_POINT)) {
            Ok(ep) => {
                if ep.scheme == Scheme::Http {
                    c.warn(format!(
                        "TENCENT_CLOUD_ACCESS_POINT uses plain http://{}: only for local testing",
                        ep.host
                    ));
                }
                ep
            }
            Err(e) => {
                c.err("TENCENT_CLOUD_ACCESS_POINT", e);
                Endpoint {
                    scheme: Scheme::Https,
                    host: DEFAULT_ACCESS_POINT.into(),
                }
            }
        };

    let ca_file = vars.get("TENCENT_CLOUD_CA_FILE").map(PathBuf::from);
    if let Some(path) = &ca_file {
        if let Err(e) = check_readable_file(path) {
            c.err("TENCENT_CLOUD_CA_FILE", format!("'{}' {e}", path.display()));
        }
    }

    let secret_id = vars
        .get("TENCENT_CLOUD_SECRET_ID")
        .unwrap_or("")
        .to_string();
    c.require_token(
        "TENCENT_CLOUD_SECRET_ID",
        &secret_id,
        "the API SecretId (AKID…)",
    );
    let secret_key = vars
        .get("TENCENT_CLOUD_SECRET_KEY")
        .unwrap_or("")
        .to_string();
    c.require_token("TENCENT_CLOUD_SECRET_KEY", &secret_key, "the API SecretKey");
    for (var, value) in [
        ("TENCENT_CLOUD_SECRET_ID", &secret_id),
        ("TENCENT_CLOUD_SECRET_KEY", &secret_key),
    ] {
        if value.contains('*') {
            c.warn(format!(
                "{var} contains '*': it looks like the masked example value, not a real key"
            ));
        }
    }
    let token = vars.get("TENCENT_CLOUD_TOKEN").map(str::to_string);
    if let Some(t) = &token {
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            c.err(
                "TENCENT_CLOUD_TOKEN",
                "must be printable ASCII without spaces (value not shown)",
            );
        }
    }

    let referer = vars.get("KNOCK_REFERER").unwrap_or("").to_string();
    if referer.is_empty() {
        c.err(
            "KNOCK_REFERER",
            "required: the shared secret that clients send as their Referer header",
        );
    } else if referer.chars().any(char::is_control) {
        c.err(
            "KNOCK_REFERER",
            "must not contain control characters: it is sent as an HTTP header (value not shown)",
        );
    } else if referer.chars().count() < 16 {
        c.warn(format!(
            "KNOCK_REFERER is only {} characters long: anyone who guesses it can open the firewall; 16 or more random characters are better",
            referer.chars().count()
        ));
    }

    let knock_path = vars
        .get_or("KNOCK_REQUEST_PATH", DEFAULT_KNOCK_PATH)
        .to_string();
    if let Err(e) = check_knock_path(&knock_path) {
        c.err("KNOCK_REQUEST_PATH", e);
    }

    let client_ip_method = match vars.get_or("METHOD_TO_GET_CLIENT_IP", "1") {
        "1" => ClientIpMethod::Peer,
        "2" => ClientIpMethod::Forwarded,
        "3" => {
            c.warn("METHOD_TO_GET_CLIENT_IP=3 trusts the client's own 'ip' header: anyone who knows the secret can open the firewall for any address".into());
            ClientIpMethod::Declared
        }
        other => {
            c.err(
                "METHOD_TO_GET_CLIENT_IP",
                format!("'{other}' is not 1 (TCP peer), 2 (forwarded headers from TRUSTED_PROXIES) or 3 (client-declared)"),
            );
            ClientIpMethod::Peer
        }
    };

    let days = c.number(
        "DAYS_RULE_EXPIRES",
        vars.get_or("DAYS_RULE_EXPIRES", "30"),
        1,
        36_500,
    );
    let mut rule_ttl_secs = days as i64 * 86_400;
    if let Some(ttl) = vars.get("RULE_TTL") {
        match parse_duration(ttl, false) {
            Ok(0) => c.err("RULE_TTL", "must be positive"),
            Ok(s) => rule_ttl_secs = s as i64,
            Err(e) => c.err("RULE_TTL", e),
        }
    }

    let bind_ip_text = vars.get_or("BIND_IP", "0.0.0.0");
    let bind_ip = match parse_ip(bind_ip_text) {
        Some(ip) => ip,
        None => {
            c.err(
                "BIND_IP",
                format!("'{bind_ip_text}' is not an IP address (0.0.0.0 for all IPv4, :: for IPv4 and IPv6)"),
            );
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        }
    };
    let bind_port = c.number("BIND_PORT", vars.get_or("BIND_PORT", "8080"), 1, 65_535) as u16;
    let bind = SocketAddr::new(bind_ip, bind_port);

    let mut trusted_proxies = Vec::new();
    let mut bad = Vec::new();
    // Unlike a scalar, an empty list means something here: trust no proxy at all.
    let proxies_text = vars
        .raw("TRUSTED_PROXIES")
        .unwrap_or(DEFAULT_TRUSTED_PROXIES);
    for item in split_list(proxies_text) {
        match Cidr::parse(item) {
            Ok(cidr) => {
                if !trusted_proxies.contains(&cidr) {
                    trusted_proxies.push(cidr)
                }
            }
            Err(e) => bad.push(e),
        }
    }
    if !bad.is_empty() {
        c.err("TRUSTED_PROXIES", bad.join("; "));
    }
    if client_ip_method == ClientIpMethod::Forwarded {
        if trusted_proxies.is_empty() && bad.is_empty() {
            c.warn("METHOD_TO_GET_CLIENT_IP=2 but TRUSTED_PROXIES is empty: forwarded headers are never trusted".into());
        }
        if trusted_proxies.iter().any(|p| p.prefix() == 0) {
            c.warn("TRUSTED_PROXIES contains a /0 block: any client can claim any address with forwarded headers".into());
        }
    }

    let quota_reserve =
        c.number("QUOTA_RESERVE", vars.get_or("QUOTA_RESERVE", "0"), 0, 99) as usize;
    let max_connections = c.number(
        "MAX_CONNECTIONS",
        vars.get_or("MAX_CONNECTIONS", "256"),
        1,
        65_536,
    ) as usize;
    let connection_timeout_secs = c.duration(
        "CONNECTION_TIMEOUT",
        vars.get_or("CONNECTION_TIMEOUT", "10s"),
        false,
    );
    let knock_timeout_secs =
        c.duration("KNOCK_TIMEOUT", vars.get_or("KNOCK_TIMEOUT", "20s"), false);
    let prune_interval_secs =
        c.duration("PRUNE_INTERVAL", vars.get_or("PRUNE_INTERVAL", "1h"), true);
    let lockout_failures = c.number(
        "LOCKOUT_FAILURES",
        vars.get_or("LOCKOUT_FAILURES", "10"),
        0,
        u32::MAX as u64,
    ) as u32;
    let lockout_window_secs = c.duration(
        "LOCKOUT_WINDOW",
        vars.get_or("LOCKOUT_WINDOW", "10m"),
        false,
    );
    let lockout_secs = c.duration(
        "LOCKOUT_DURATION",
        vars.get_or("LOCKOUT_DURATION", "30m"),
        false,
    );

    if !c.errors.is_empty() {
        return Err(ConfigErrors(c.errors));
    }
    Ok(Config {
        file: None,
        message_success,
        message_failure,
        ports,
        rule_prefix,
        instances,
        region,
        endpoint,
        ca_file,
        secret_id,
        secret_key: Secret::new(secret_key),
        token: token.map(Secret::new),
        knock_referer: Secret::new(referer),
        knock_path,
        client_ip_method,
        rule_ttl_secs,
        bind,
        trusted_proxies,
        quota_reserve,
        max_connections,
        connection_timeout_secs,
        knock_timeout_secs,
        prune_interval_secs,
        lockout_failures,
        lockout_window_secs,
        lockout_secs,
        warnings: c.warnings,
    })
}

/// The file's values with the environment on top. Values are trimmed (a stray space in a port
/// list or a region is a slip, not meaning); a value that is empty after trimming counts as
/// unset, so `KEY=''` falls back to the default.
struct Vars<'a> {
    file: HashMap<&'a str, &'a str>,
    env: &'a HashMap<String, String>,
}

impl<'a> Vars<'a> {
    fn raw(&self, key: &str) -> Option<&str> {
        self.env
            .get(key)
            .map(String::as_str)
            .or_else(|| self.file.get(key).copied())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.raw(key).map(str::trim).filter(|v| !v.is_empty())
    }

    fn get_or<'b>(&'b self, key: &str, default: &'b str) -> &'b str {
        self.get(key).unwrap_or(default)
    }
}

#[derive(Default)]
struct Checker {
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
}

impl Checker {
    fn err(&mut self, variable: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            variable: variable.to_string(),
            message: message.into(),
        });
    }

    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    fn has_error_for(&self, prefix: &str) -> bool {
        self.errors.iter().any(|e| e.variable.starts_with(prefix))
    }

    /// A required credential. Messages describe the value, never show it.
    fn require_token(&mut self, variable: &str, value: &str, what: &str) {
        if value.is_empty() {
            self.err(variable, format!("required: {what}"));
        } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
            self.err(
                variable,
                "must be printable ASCII without spaces (value not shown)",
            );
        }
    }

    fn number(&mut self, variable: &str, text: &str, min: u64, max: u64) -> u64 {
        match parse_number(text, min, max) {
            Ok(n) => n,
            Err(e) => {
                self.err(variable, e);
                min
            }
        }
    }

    fn duration(&mut self, variable: &str, text: &str, zero_ok: bool) -> u64 {
        match parse_duration(text, true) {
            Ok(0) if !zero_ok => {
                let hint = if variable.starts_with("LOCKOUT_") {
                    " (to turn the lockout off, set LOCKOUT_FAILURES=0)"
                } else {
                    ""
                };
                self.err(variable, format!("must be positive{hint}"));
                1
            }
            Ok(s) => s,
            Err(e) => {
                self.err(variable, e);
                1
            }
        }
    }
}

/// List items separated by `,` or the full-width `，`, trimmed, empty items dropped.
fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', '，'])
        .map(str::trim)
        .filter(|i| !i.is_empty())
}

fn parse_port(s: &str) -> Result<u16, String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{s}' is not a port number or a range like 8000-8100"
        ));
    }
    match s.parse::<u32>() {
        Ok(n) if (1..=65_535).contains(&n) => Ok(n as u16),
        _ => Err(format!("port '{s}' is outside 1..=65535")),
    }
}

/// A port list to the API's form: `80,443,8000-8100`, duplicates removed, order kept.
pub fn parse_ports(s: &str) -> Result<String, String> {
    let mut items: Vec<String> = Vec::new();
    let mut bad = Vec::new();
    for item in split_list(s) {
        let parsed = match item.split_once('-') {
            None => parse_port(item).map(|p| p.to_string()),
            Some((lo, hi)) => match (parse_port(lo), parse_port(hi)) {
                (Ok(lo), Ok(hi)) if lo < hi => Ok(format!("{lo}-{hi}")),
                (Ok(_), Ok(_)) => Err(format!("range '{item}' must go from low to high")),
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
        };
        match parsed {
            Ok(p) if items.contains(&p) => {}
            Ok(p) => items.push(p),
            Err(e) => bad.push(e),
        }
    }
    if !bad.is_empty() {
        return Err(bad.join("; "));
    }
    let joined = items.join(",");
    if joined.len() > MAX_PORT_STRING {
        return Err(format!(
            "the port list is {} characters once normalised; the API accepts at most {MAX_PORT_STRING} (use ranges)",
            joined.len()
        ));
    }
    Ok(joined)
}

fn check_rule_prefix(p: &str) -> Result<(), String> {
    if !p.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err("must be printable ASCII (it starts every rule description)".into());
    }
    if p.len() > MAX_RULE_PREFIX {
        return Err(format!(
            "'{p}' is {} bytes; at most {MAX_RULE_PREFIX} leave room for the label and expiry in the 64-byte description",
            p.len()
        ));
    }
    Ok(())
}

/// `ap-guangzhou`, `na-siliconvalley`, `eu-frankfurt`, `ap-shanghai-fsi`.
pub fn is_region(s: &str) -> bool {
    let mut parts = s.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()));
    let mut rest = 0;
    let rest_ok = parts.all(|p| {
        rest += 1;
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    first_ok && rest_ok && rest >= 1
}

fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("lhins-").is_some_and(|rest| {
        rest.len() == 8
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// `lhins-xxxxxxxx` or `region:lhins-xxxxxxxx` items; duplicates removed, order kept.
pub fn parse_instances(s: &str, default_region: &str) -> Result<Vec<Instance>, String> {
    let mut list: Vec<Instance> = Vec::new();
    let mut bad = Vec::new();
    for item in split_list(s) {
        let (region, id) = match item.split_once(':') {
            Some((r, id)) => (r.trim(), id.trim()),
            None => (default_region, item),
        };
        if !is_instance_id(id) {
            bad.push(format!(
                "'{id}' is not an instance id (lhins- and 8 lowercase letters or digits)"
            ));
            continue;
        }
        if !is_region(region) {
            bad.push(format!("'{region}' in '{item}' is not a region name"));
            continue;
        }
        match list.iter().find(|i| i.id == id) {
            Some(i) if i.region == region => {}
            Some(i) => bad.push(format!(
                "{id} is listed in two regions ({} and {region})",
                i.region
            )),
            None => list.push(Instance {
                id: id.to_string(),
                region: region.to_string(),
            }),
        }
    }
    if !bad.is_empty() {
        return Err(bad.join("; "));
    }
    if list.is_empty() {
        return Err("no instance id given".into());
    }
    Ok(list)
}

/// `host`, `host:port`, `https://host[:port][/]`, or `http://…` for a loopback host only.
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (scheme, rest) = if let Some(r) = lower.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = lower.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if lower.contains("://") {
        return Err(format!(
            "'{s}': only https:// (or http:// for a loopback test endpoint) is supported"
        ));
    } else {
        (Scheme::Https, lower.as_str())
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(format!(
            "'{s}': give only a host, host:port or https://host[:port]/, without a path"
        ));
    }
    if rest.contains('@') || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("'{s}' is not a valid endpoint host"));
    }
    let (host, port) = if rest.starts_with('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| format!("'{s}': unclosed '[' in an IPv6 address"))?;
        let inner = &rest[1..end];
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(format!("'{s}': '{inner}' is not an IPv6 address"));
        }
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("'{s}' is not a valid endpoint"))?,
            ),
        };
        (&rest[..=end], port)
    } else {
        let (h, p) = match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        if p.is_some_and(|p| p.contains(':')) {
            return Err(format!(
                "'{s}': write an IPv6 address in brackets, like [::1]:8443"
            ));
        }
        if !is_hostname(h) {
            return Err(format!(
                "'{s}': '{h}' is not a valid host name or IPv4 address"
            ));
        }
        (h, p)
    };
    if let Some(p) = port {
        parse_port(p).map_err(|e| format!("'{s}': {e}"))?;
    }
    if scheme == Scheme::Http && !is_loopback_host(host) {
        return Err(format!(
            "'{s}': http:// is allowed only for a loopback endpoint (127.0.0.0/8, [::1], localhost); use https://"
        ));
    }
    let host = match port {
        Some(p) => format!("{host}:{}", p.trim_start_matches('0')),
        None => host.to_string(),
    };
    Ok(Endpoint { scheme, host })
}

fn is_hostname(h: &str) -> bool {
    if h.is_empty() || h.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = h.split('.').collect();
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        // All-numeric names are IPv4 addresses or mistakes, never host names.
        return h.parse::<Ipv4Addr>().is_ok();
    }
    labels.iter().all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

fn is_loopback_host(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback());
    }
    host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

fn check_readable_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a file".into());
    }
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| format!("cannot be read: {e}"))
}

fn check_knock_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("'{p}' must start with '/'"));
    }
    if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    if p.contains(['?', '#']) {
        return Err(format!("'{p}' must be a plain path, without '?' or '#'"));
    }
    Ok(())
}

fn parse_number(text: &str, min: u64, max: u64) -> Result<u64, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("'{t}' is negative; expected {min}..={max}"));
    }
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{t}' is not a whole number; expected {min}..={max}"
        ));
    }
    match t.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("'{t}' is outside {min}..={max}")),
    }
}

/// `30d`, `12h`, `90m`, `45s` (unit case-insensitive), or bare seconds when `bare_ok`.
pub fn parse_duration(text: &str, bare_ok: bool) -> Result<u64, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("'{t}' is negative; durations must be positive"));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = (&t[..split], t[split..].trim());
    if digits.is_empty() {
        return Err(format!("'{t}' is not a duration like 30d, 12h, 90m or 45s"));
    }
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" if bare_ok => 1,
        "" => {
            return Err(format!(
                "'{t}' has no unit: write e.g. {t}d, {t}h, {t}m or {t}s"
            ))
        }
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("'{t}' is not a duration like 30d, 12h, 90m or 45s")),
    };
    match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)) {
        Some(s) if s <= MAX_DURATION_SECS => Ok(s),
        _ => Err(format!("'{t}' is too long (at most 36500d)")),
    }
}

/// Seconds in the largest unit that divides them: `30d`, `90m`, `45s`; `0` for zero.
pub fn format_duration(secs: u64) -> String {
    match secs {
        0 => "0".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `AKID****oSs`: enough to tell keys apart, not enough to use one.
fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() < 12 {
        return format!("**** (set, {} chars)", chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}****{tail}")
}

fn mask_secret(s: &Secret) -> String {
    format!("**** (set, {} chars)", s.expose().chars().count())
}

impl Config {
    /// The effective configuration, one `KEY = value` line each, secrets masked, then warnings.
    pub fn report(&self) -> String {
        let mut lines: Vec<(&str, String)> = Vec::new();
        let port = |p: Protocol| {
            self.ports
                .iter()
                .find(|(q, _)| *q == p)
                .map_or_else(|| "(off)".to_string(), |(_, s)| s.clone())
        };
        lines.push(("MESSAGE_SUCCESS", format!("{:?}", self.message_success)));
        lines.push(("MESSAGE_FAILURE", format!("{:?}", self.message_failure)));
        lines.push(("FW_PERMIT_PORTS_TCP", port(Protocol::Tcp)));
        lines.push(("FW_PERMIT_PORTS_UDP", port(Protocol::Udp)));
        lines.push(("FW_RULE_NAME_PREFIX", self.rule_prefix.clone()));
        let instances: Vec<String> = self
            .instances
            .iter()
            .map(|i| format!("{}:{}", i.region, i.id))
            .collect();
        lines.push(("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS", instances.join(",")));
        lines.push(("TENCENT_CLOUD_REGION", self.region.clone()));
        lines.push(("TENCENT_CLOUD_ACCESS_POINT", self.endpoint.url()));
        lines.push((
            "TENCENT_CLOUD_CA_FILE",
            self.ca_file.as_ref().map_or_else(
                || "(built-in roots)".to_string(),
                |p| p.display().to_string(),
            ),
        ));
        lines.push(("TENCENT_CLOUD_SECRET_ID", mask_id(&self.secret_id)));
        lines.push(("TENCENT_CLOUD_SECRET_KEY", mask_secret(&self.secret_key)));
        lines.push((
            "TENCENT_CLOUD_TOKEN",
            self.token
                .as_ref()
                .map_or_else(|| "(not set)".to_string(), mask_secret),
        ));
        lines.push(("KNOCK_REFERER", mask_secret(&self.knock_referer)));
        lines.push(("KNOCK_REQUEST_PATH", self.knock_path.clone()));
        let method = match self.client_ip_method {
            ClientIpMethod::Peer => "1 (TCP peer)",
            ClientIpMethod::Forwarded => "2 (forwarded headers from TRUSTED_PROXIES)",
            ClientIpMethod::Declared => "3 (client-declared, unsafe)",
        };
        lines.push(("METHOD_TO_GET_CLIENT_IP", method.to_string()));
        lines.push(("RULE_TTL", format_duration(self.rule_ttl_secs as u64)));
        lines.push(("BIND_IP", self.bind.ip().to_string()));
        lines.push(("BIND_PORT", self.bind.port().to_string()));
        let proxies: Vec<String> = self.trusted_proxies.iter().map(|c| c.to_string()).collect();
        lines.push(("TRUSTED_PROXIES", proxies.join(",")));
        lines.push(("QUOTA_RESERVE", self.quota_reserve.to_string()));
        lines.push(("MAX_CONNECTIONS", self.max_connections.to_string()));
        lines.push((
            "CONNECTION_TIMEOUT",
            format_duration(self.connection_timeout_secs),
        ));
        lines.push(("KNOCK_TIMEOUT", format_duration(self.knock_timeout_secs)));
        lines.push((
            "PRUNE_INTERVAL",
            match self.prune_interval_secs {
                0 => "0 (off)".to_string(),
                s => format_duration(s),
            },
        ));
        lines.push((
            "LOCKOUT_FAILURES",
            match self.lockout_failures {
                0 => "0 (off)".to_string(),
                n => n.to_string(),
            },
        ));
        lines.push(("LOCKOUT_WINDOW", format_duration(self.lockout_window_secs)));
        lines.push(("LOCKOUT_DURATION", format_duration(self.lockout_secs)));

        let mut out = match &self.file {
            Some(p) => format!("# config file: {}\n", p.display()),
            None => "# config file: none (environment only)\n".to_string(),
        };
        for (k, v) in lines {
            out.push_str(&format!("{k} = {v}\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(c.message_success, "500 Internal Server Error.");
        assert_eq!(c.message_failure, "500 Internal Server Error");
        assert_eq!(c.ports, vec![(Protocol::Tcp, "22".to_string())]);
        assert_eq!(c.rule_prefix, "Knockd-");
        assert_eq!(c.region, "ap-shanghai");
        assert_eq!(
            c.instances,
            vec![Instance {
                id: "lhins-a0ogy7ty".into(),
                region: "ap-shanghai".into()
            }]
        );
        assert_eq!(c.endpoint.url(), "https://lighthouse.tencentcloudapi.com/");
        assert_eq!(c.knock_path, "/favico.ico");
        assert_eq!(c.client_ip_method, ClientIpMethod::Peer);
        assert_eq!(c.rule_ttl_secs, 30 * 86_400);
        assert_eq!(c.bind, "0.0.0.0:8080".parse().expect("addr"));
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.quota_reserve, 0);
        assert_eq!(c.max_connections, 256);
        assert_eq!(c.connection_timeout_secs, 10);
        assert_eq!(c.knock_timeout_secs, 20);
        assert_eq!(c.prune_interval_secs, 3600);
        assert_eq!(c.lockout_failures, 10);
        assert_eq!(c.lockout_window_secs, 600);
        assert_eq!(c.lockout_secs, 1800);
        assert!(c.token.is_none() && c.ca_file.is_none());
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
            c.ports,
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
    fn durations() {
        assert_eq!(parse_duration("30d", false), Ok(30 * 86_400));
        assert_eq!(parse_duration("12H", false), Ok(12 * 3600));
        assert_eq!(parse_duration("90m", false), Ok(5400));
        assert_eq!(parse_duration(" 45 s ", false), Ok(45));
        assert_eq!(parse_duration("15", true), Ok(15));
        assert!(parse_duration("15", false)
            .expect_err("bare")
            .contains("unit"));
        assert!(parse_duration("-5d", false).is_err());
        assert!(parse_duration("5w", false).is_err());
        assert!(parse_duration("d", false).is_err());
        assert!(parse_duration("99999999999999999999d", false).is_err());
        assert_eq!(format_duration(5400), "90m");
        assert_eq!(format_duration(86_400 * 30), "30d");
        assert_eq!(format_duration(61), "61s");
    }

    #[test]
    fn rule_ttl_overrides_days() {
        let c = with(&[("DAYS_RULE_EXPIRES", "7")]).expect("ok");
        assert_eq!(c.rule_ttl_secs, 7 * 86_400);
        let c = with(&[("DAYS_RULE_EXPIRES", "7"), ("RULE_TTL", "12h")]).expect("ok");
        assert_eq!(c.rule_ttl_secs, 12 * 3600);
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
        assert_eq!(c.prune_interval_secs, 0);
        assert_eq!(c.lockout_failures, 0);
        assert_eq!(c.connection_timeout_secs, 15);
        assert_eq!(c.bind, "[::]:80".parse().expect("addr"));
        assert_eq!(c.client_ip_method, ClientIpMethod::Forwarded);
        assert_eq!(c.trusted_proxies.len(), 2);
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
        assert_eq!(c.region, "ap-shanghai");
        assert!(c.trusted_proxies.is_empty());
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
        assert_eq!(c.bind.port(), 9001);
        assert_eq!(c.ports, vec![(Protocol::Tcp, "22".into())]);
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
        assert!(
            r.contains("TENCENT_CLOUD_SECRET_KEY = **** (set, 18 chars)\n"),
            "{r}"
        );
        assert!(
            r.contains("TENCENT_CLOUD_TOKEN = **** (set, 15 chars)\n"),
            "{r}"
        );
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
