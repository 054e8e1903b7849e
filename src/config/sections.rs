//! The configuration's sections, each built by one short function from the variables (with
//! their defaults from `vars::VARS`) into a checker that collects every problem at once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::vars::{Checker, Vars};
use super::{
    values, AccessPoint, ClientIpMethod, CloudConfig, Endpoint, KeysConfig, KnockConfig,
    LimitsConfig, RulesConfig, Scheme, Secret,
};
use crate::rules::cidr::Cidr;
use crate::rules::desc::MIN_TTL_SECS;
use crate::rules::Protocol;

/// Which ports to open and how knockd's rules are named and timed.
pub(crate) fn rules(vars: &Vars, c: &mut Checker) -> RulesConfig {
    let mut ports = Vec::new();
    for (proto, var) in [
        (Protocol::Tcp, "FW_PERMIT_PORTS_TCP"),
        (Protocol::Udp, "FW_PERMIT_PORTS_UDP"),
    ] {
        match values::parse_ports(vars.value(var)) {
            Ok(s) if s.is_empty() => {}
            Ok(s) => ports.extend(values::port_rules(&s).into_iter().map(|p| (proto, p))),
            Err(e) => c.err(var, e),
        }
    }
    if ports.is_empty() && !c.has_error_for("FW_PERMIT_PORTS_") {
        c.err(
            "FW_PERMIT_PORTS_TCP",
            "no ports to open: set FW_PERMIT_PORTS_TCP and/or FW_PERMIT_PORTS_UDP (e.g. '22,443')",
        );
    }

    let prefix = vars.value("FW_RULE_NAME_PREFIX").to_string();
    if let Err(e) = values::check_rule_prefix(&prefix) {
        c.err("FW_RULE_NAME_PREFIX", e);
    }

    let days = c.number(
        "DAYS_RULE_EXPIRES",
        vars.value("DAYS_RULE_EXPIRES"),
        1,
        36_500,
    );
    let mut ttl = days * 86_400;
    if let Some(text) = vars.get("RULE_TTL") {
        match crate::grammar::parse_duration(text, false) {
            Ok(0) => c.err("RULE_TTL", "must be positive"),
            Ok(s) if s < MIN_TTL_SECS => c.err(
                "RULE_TTL",
                format!(
                    "'{text}' is shorter than {}, the shortest rule lifetime: a rule's expiry is \
                     written to the minute, so a shorter one could be written already expired \
                     and removed by the next prune",
                    crate::grammar::format_duration(MIN_TTL_SECS)
                ),
            ),
            Ok(s) => ttl = s,
            Err(e) => c.err("RULE_TTL", e),
        }
    }
    let quota_reserve = c.number("QUOTA_RESERVE", vars.value("QUOTA_RESERVE"), 0, 99) as usize;
    let per_v6_64 = c.number(
        "MAX_ADDRESSES_PER_V6_64",
        vars.value("MAX_ADDRESSES_PER_V6_64"),
        0,
        100,
    ) as usize;
    RulesConfig {
        ports,
        prefix,
        ttl: Duration::from_secs(ttl),
        quota_reserve,
        per_v6_64,
    }
}

/// Where the instances are and how to reach and sign for the API.
pub(crate) fn cloud(vars: &Vars, c: &mut Checker) -> CloudConfig {
    let region = vars.value("TENCENT_CLOUD_REGION").to_string();
    if !values::is_region(&region) {
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
        Some(v) => values::parse_instances(v, &region).unwrap_or_else(|e| {
            c.err("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS", e);
            Vec::new()
        }),
    };

    let access_point = match vars.get("TENCENT_CLOUD_ACCESS_POINT") {
        None => AccessPoint::regional(),
        Some(text) => match values::parse_access_point(text) {
            Ok(ap) => {
                if let AccessPoint::One(Endpoint {
                    scheme: Scheme::Http,
                    host,
                })
                | AccessPoint::PerRegion {
                    scheme: Scheme::Http,
                    host,
                } = &ap
                {
                    c.warn(format!(
                        "TENCENT_CLOUD_ACCESS_POINT uses plain http://{host}: only for local testing"
                    ));
                }
                ap
            }
            Err(e) => {
                c.err("TENCENT_CLOUD_ACCESS_POINT", e);
                AccessPoint::regional()
            }
        },
    };

    let ca_file = vars.get("TENCENT_CLOUD_CA_FILE").map(PathBuf::from);
    if let Some(path) = &ca_file {
        if let Err(e) = values::check_readable_file(path) {
            c.err("TENCENT_CLOUD_CA_FILE", format!("'{}' {e}", path.display()));
        }
    }

    // knockd's variables, else the SDKs' environment names, else their profile file.
    let credentials = super::credentials::find(vars, c);
    CloudConfig {
        instances,
        region,
        access_point,
        ca_file,
        secret_id: credentials.secret_id,
        secret_key: Secret::new(credentials.secret_key),
        token: credentials.token.map(Secret::new),
        credentials_from: credentials.from,
    }
}

/// Knock secrets that were published as examples (this repository's .env.sample and the
/// Python original's README): a door that opens for them opens for anyone who read either.
const PUBLISHED_REFERERS: &[&str] = &[
    "https://www.example.com/change-me-to-something-long-and-random",
    "https://www.baidu..com/",
];

/// The knock port: where it listens, what it answers, what a knock must carry and whose
/// address it opens.
pub(crate) fn knock(vars: &Vars, c: &mut Checker) -> KnockConfig {
    // Response bodies are used byte for byte, so they are not trimmed.
    let message_success = vars.raw_value("MESSAGE_SUCCESS").to_string();
    let message_failure = vars.raw_value("MESSAGE_FAILURE").to_string();
    if message_success == message_failure {
        c.warn("MESSAGE_SUCCESS and MESSAGE_FAILURE are identical: a client cannot tell whether its knock worked".into());
    }

    // Whether an empty KNOCK_REFERER is an error depends on the clients file: see `keys`.
    let referer = vars.value("KNOCK_REFERER").to_string();
    if referer.chars().any(char::is_control) {
        c.err(
            "KNOCK_REFERER",
            "must not contain control characters: it is sent as an HTTP header (value not shown)",
        );
    } else if PUBLISHED_REFERERS.contains(&referer.as_str()) {
        c.err(
            "KNOCK_REFERER",
            "is the example value of .env.sample (or of the original's README), public on \
             GitHub: anyone could knock with it. Set a long random secret of your own, e.g. the \
             output of: head -c 24 /dev/urandom | base64",
        );
    } else if !referer.is_empty() && referer.chars().count() < 16 {
        c.warn(format!(
            "KNOCK_REFERER is only {} characters long: anyone who guesses it can open the firewall; 16 or more random characters are better",
            referer.chars().count()
        ));
    }

    let path = vars.value("KNOCK_REQUEST_PATH").to_string();
    if let Err(e) = values::check_knock_path(&path) {
        c.err("KNOCK_REQUEST_PATH", e);
    }

    let client_ip_method = match vars.value("METHOD_TO_GET_CLIENT_IP") {
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

    let bind_ip_text = vars.value("BIND_IP");
    let bind_ip = values::parse_ip(bind_ip_text).unwrap_or_else(|| {
        c.err(
            "BIND_IP",
            format!("'{bind_ip_text}' is not an IP address (0.0.0.0 for all IPv4, :: for IPv4 and IPv6)"),
        );
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    let bind_port = c.number("BIND_PORT", vars.value("BIND_PORT"), 1, 65_535) as u16;

    let trusted_proxies = trusted_proxies(vars, c, client_ip_method);
    KnockConfig {
        message_success,
        message_failure,
        referer: Secret::new(referer),
        path,
        client_ip_method,
        bind: SocketAddr::new(bind_ip, bind_port),
        trusted_proxies,
    }
}

fn trusted_proxies(vars: &Vars, c: &mut Checker, method: ClientIpMethod) -> Vec<Cidr> {
    let mut trusted = Vec::new();
    let mut bad = Vec::new();
    // Unlike a scalar, an empty list means something here: trust no proxy at all.
    for item in crate::grammar::split_list(vars.raw_value("TRUSTED_PROXIES")) {
        match Cidr::parse(item) {
            Ok(cidr) if trusted.contains(&cidr) => {}
            Ok(cidr) => trusted.push(cidr),
            Err(e) => bad.push(e),
        }
    }
    if !bad.is_empty() {
        c.err("TRUSTED_PROXIES", bad.join("; "));
    }
    if method == ClientIpMethod::Forwarded {
        if trusted.is_empty() && bad.is_empty() {
            c.warn("METHOD_TO_GET_CLIENT_IP=2 but TRUSTED_PROXIES is empty: forwarded headers are never trusted".into());
        }
        if trusted.iter().any(|p| p.prefix() == 0) {
            c.warn("TRUSTED_PROXIES contains a /0 block: any client can claim any address with forwarded headers".into());
        }
    }
    trusted
}

/// Bounds on connections, time and failed knocks.
pub(crate) fn limits(vars: &Vars, c: &mut Checker) -> LimitsConfig {
    LimitsConfig {
        max_connections: c.number("MAX_CONNECTIONS", vars.value("MAX_CONNECTIONS"), 1, 65_536)
            as usize,
        connection_timeout: c.duration(
            "CONNECTION_TIMEOUT",
            vars.value("CONNECTION_TIMEOUT"),
            false,
        ),
        knock_timeout: c.duration("KNOCK_TIMEOUT", vars.value("KNOCK_TIMEOUT"), false),
        prune_interval: c.duration("PRUNE_INTERVAL", vars.value("PRUNE_INTERVAL"), true),
        host_refresh: c.duration("HOST_REFRESH", vars.value("HOST_REFRESH"), false),
        lockout_failures: c.number(
            "LOCKOUT_FAILURES",
            vars.value("LOCKOUT_FAILURES"),
            0,
            u32::MAX as u64,
        ) as u32,
        lockout_window: c.duration("LOCKOUT_WINDOW", vars.value("LOCKOUT_WINDOW"), false),
        lockout_duration: c.duration("LOCKOUT_DURATION", vars.value("LOCKOUT_DURATION"), false),
    }
}

/// NOTIFY_*: parsed by the notifier's settings; each error names its variable, and errors
/// and warnings join the rest.
pub(crate) fn notify(vars: &Vars, c: &mut Checker) -> Option<crate::notify::NotifyConfig> {
    match crate::notify::NotifyConfig::parse(|k| vars.raw(k).map(str::to_string)) {
        Ok(n) => {
            for w in n.iter().flat_map(|n| &n.warnings) {
                c.warn(w.clone());
            }
            n
        }
        Err(errors) => {
            for (var, message) in errors {
                c.err(var, message);
            }
            None
        }
    }
}

/// Per-client keys and the challenge–response knock. `default_dir` is where the
/// clients file is by default (beside the config file, else beside the binary; `None`: the
/// working directory). With `read_clients` the clients file is read: an invalid one is an
/// error, and KNOCK_REFERER is required only when it has no client. The commands that manage
/// the file pass false (they must work on a missing or broken file).
pub(crate) fn keys(
    vars: &Vars,
    c: &mut Checker,
    referer: &str,
    default_dir: Option<&std::path::Path>,
    read_clients: bool,
) -> KeysConfig {
    let clients_file = match vars.get("KNOCK_CLIENTS_FILE") {
        Some(p) => PathBuf::from(p),
        None => default_dir.map_or_else(
            || PathBuf::from(crate::keys::DEFAULT_CLIENTS_FILE),
            |d| d.join(crate::keys::DEFAULT_CLIENTS_FILE),
        ),
    };
    let challenge_secret = challenge_secret(vars, c);
    let challenge_ttl = c.duration(
        "KNOCK_CHALLENGE_TTL",
        vars.value("KNOCK_CHALLENGE_TTL"),
        false,
    );
    if challenge_ttl.as_secs() > 3600 {
        c.err(
            "KNOCK_CHALLENGE_TTL",
            "is longer than 1h: a challenge only has to live for the two requests of one knock",
        );
    }
    let replay_cache = c.number(
        "KNOCK_REPLAY_CACHE",
        vars.value("KNOCK_REPLAY_CACHE"),
        1,
        1_000_000,
    ) as usize;
    let public_url = vars.get("KNOCK_PUBLIC_URL").and_then(|u| {
        crate::keys::url::KnockUrl::parse(u)
            .map_err(|e| c.err("KNOCK_PUBLIC_URL", e.to_string()))
            .ok()
    });

    let invalid_lines = if read_clients {
        read_clients_file(&clients_file, referer, c)
    } else {
        Vec::new()
    };
    KeysConfig {
        clients_file,
        challenge_secret: challenge_secret.map(Secret::new),
        challenge_ttl,
        replay_cache,
        public_url,
        invalid_lines,
    }
}

/// KNOCK_CHALLENGE_SECRET, checked (printable, at least 16 characters).
fn challenge_secret(vars: &Vars, c: &mut Checker) -> Option<String> {
    let secret = vars.get("KNOCK_CHALLENGE_SECRET").map(str::to_string);
    if let Some(s) = &secret {
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            c.err(
                "KNOCK_CHALLENGE_SECRET",
                "must be printable ASCII without spaces (value not shown)",
            );
        } else if s.len() < 16 {
            c.err(
                "KNOCK_CHALLENGE_SECRET",
                format!(
                    "is only {} characters long: use 32 or more random characters, the same on \
                     every knockd behind one name (value not shown)",
                    s.len()
                ),
            );
        }
    }
    secret
}

/// Reads the clients file: its warnings, its invalid lines (returned, and warned about), and
/// KNOCK_REFERER required while it has no client.
fn read_clients_file(
    clients_file: &std::path::Path,
    referer: &str,
    c: &mut Checker,
) -> Vec<String> {
    let mut invalid_lines = Vec::new();
    let shown = clients_file.display();
    match crate::keys::clients_file::ClientsFile::open(clients_file) {
        Err(e) => c.err("KNOCK_CLIENTS_FILE", format!("{shown}: {e}")),
        Ok((file, reload)) => {
            if let crate::keys::clients_file::Reload::Loaded {
                warnings, problems, ..
            } = reload
            {
                warnings.into_iter().for_each(|w| c.warn(w));
                // Not an error here: a serving knockd leaves such a line out and serves
                // every other client; `--check-config` fails on it (see `invalid_lines`).
                for p in &problems {
                    c.warn(format!(
                        "KNOCK_CLIENTS_FILE {shown} {p}; this line is IGNORED (its client \
                         cannot knock) until it is fixed"
                    ));
                }
                invalid_lines = problems.iter().map(|p| format!("{shown}: {p}")).collect();
            }
            if referer.is_empty() && file.clients().is_empty() && file.clients().hosts().is_empty()
            {
                c.err(
                    "KNOCK_REFERER",
                    format!(
                        "required while the clients file {shown} has no client: add a \
                         client (knockd --add-client LABEL) or set the shared secret that \
                         clients send as their Referer header"
                    ),
                );
                for line in &invalid_lines {
                    c.err("KNOCK_CLIENTS_FILE", line.clone());
                }
            }
        }
    }
    invalid_lines
}
