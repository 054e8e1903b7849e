//! Firewall rule validation and normalisation (docs/lighthouse-api.md, FirewallRule).
//! Every rule is normalised before it is compared, so that `Port` absent and `ALL`, or `Action`
//! absent and `ACCEPT`, name the same rule, as the cloud treats them.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::error::ApiError;

/// "`FirewallRuleDescription` at most 64"; the reference leaves characters vs bytes open, so
/// the simulator takes the stricter reading: bytes.
pub(crate) const MAX_DESCRIPTION_BYTES: usize = 64;
/// At most 64 characters in `Port`.
const MAX_PORT_CHARS: usize = 64;
/// The per-instance firewall quota.
pub(crate) const MAX_RULES: usize = 100;

const RULE_FIELDS: [&str; 6] = [
    "Protocol",
    "Port",
    "CidrBlock",
    "Ipv6CidrBlock",
    "Action",
    "FirewallRuleDescription",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) protocol: String,
    pub(crate) port: String,
    pub(crate) cidr: Option<String>,
    pub(crate) ipv6: Option<String>,
    pub(crate) action: String,
    pub(crate) description: String,
}

/// How `Port` takes part in a rule's identity. Whether the real API normalises it is unknown
/// (docs/lighthouse-api.md, open questions); comparing the text as written is the default
/// because it is the stricter test of a client: a client that reorders a port list must not
/// count on the cloud recognising the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortIdentity {
    /// `22,443` and `443,22` are two rules.
    Text,
    /// `--port-identity-by-set`: ports compare as the sets they denote, so `22,443` = `443,22`,
    /// `22,23` = `22-23` and (for TCP and UDP) `ALL` = `1-65535`.
    Set,
}

/// Identity of a rule: (Protocol, Port, CidrBlock, Ipv6CidrBlock, Action), normalised. The
/// description is not part of it; an IPv6 rule is named by its `Ipv6CidrBlock`.
pub(crate) type RuleKey<'a> = (
    &'a str,
    Cow<'a, str>,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
);

impl Rule {
    pub(crate) fn key(&self, ports: PortIdentity) -> RuleKey<'_> {
        let port = match ports {
            PortIdentity::Text => Cow::Borrowed(self.port.as_str()),
            PortIdentity::Set => Cow::Owned(port_set(&self.port)),
        };
        (
            &self.protocol,
            port,
            self.cidr.as_deref(),
            self.ipv6.as_deref(),
            &self.action,
        )
    }

    /// Whether `self` and `other` are the same rule.
    pub(crate) fn same(&self, other: &Rule, ports: PortIdentity) -> bool {
        self.key(ports) == other.key(ports)
    }

    /// The display label the console derives from protocol and port (FirewallRuleInfo;
    /// the doc example shows a created `TCP 80` rule coming back as `HTTP(80)`).
    pub(crate) fn app_type(&self) -> &'static str {
        match (self.protocol.as_str(), self.port.as_str()) {
            ("TCP", "22") => "Linux登录(22)",
            ("TCP", "80") => "HTTP(80)",
            ("TCP", "443") => "HTTPS(443)",
            ("TCP", "3389") => "Windows登录(3389)",
            ("TCP", "3306") => "MySQL(3306)",
            ("TCP", "1433") => "SQL Server(1433)",
            ("TCP", "21") => "FTP (21)",
            ("TCP", "ALL") => "全部TCP",
            ("UDP", "ALL") => "全部UDP",
            ("ICMP", _) => "Ping-ICMP",
            ("ICMPv6", _) => "Ping (IPv6)",
            ("ALL", _) => "ALL",
            _ => "自定义",
        }
    }

    /// A FirewallRuleInfo as DescribeFirewallRules returns it. The real API returns
    /// `"Ipv6CidrBlock": ""` on IPv4 rules (docs/lighthouse-api.md, IPv6 rules); what IPv6 rules
    /// carry as `CidrBlock` is unknown, so they have none.
    pub(crate) fn to_info(&self) -> Value {
        let mut m = Map::new();
        m.insert("AppType".into(), self.app_type().into());
        m.insert("Protocol".into(), self.protocol.clone().into());
        m.insert("Port".into(), self.port.clone().into());
        match (&self.cidr, &self.ipv6) {
            (_, Some(v6)) => m.insert("Ipv6CidrBlock".into(), v6.clone().into()),
            (Some(v4), None) => {
                m.insert("CidrBlock".into(), v4.clone().into());
                m.insert("Ipv6CidrBlock".into(), "".into())
            }
            (None, None) => None,
        };
        m.insert("Action".into(), self.action.clone().into());
        m.insert(
            "FirewallRuleDescription".into(),
            self.description.clone().into(),
        );
        Value::Object(m)
    }
}

fn bad_value(msg: String) -> ApiError {
    ApiError::new("InvalidParameterValue", msg)
}

/// A string field that may be absent; an empty string counts as absent, as the SDK leaves
/// unset fields out and the console sends empty ones.
fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a str>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::new(
            "InvalidParameter",
            format!("The parameter `{at}.{key}` must be a string."),
        )),
    }
}

/// Parses and normalises one request-side FirewallRule; `at` names it in messages
/// (`FirewallRules.3`).
pub(crate) fn parse_rule(v: &Value, at: &str) -> Result<Rule, ApiError> {
    let obj = rule_object(v, at)?;
    let protocol = parse_protocol(obj, at)?;
    let port = parse_port(obj, protocol, at)?;
    let (cidr, ipv6) = parse_blocks(obj, protocol, at)?;
    let action = match opt_str(obj, "Action", at)? {
        None => "ACCEPT",
        Some(a @ ("ACCEPT" | "DROP")) => a,
        Some(a) => {
            return Err(bad_value(format!(
                "`{at}.Action` must be ACCEPT or DROP; got `{a}`."
            )))
        }
    };
    let description = opt_str(obj, "FirewallRuleDescription", at)?.unwrap_or("");
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(ApiError::new(
            "InvalidParameterValue.FirewallRuleDescriptionTooLong",
            format!(
                "`{at}.FirewallRuleDescription` is {} bytes; at most {MAX_DESCRIPTION_BYTES} are allowed.",
                description.len()
            ),
        ));
    }
    Ok(Rule {
        protocol: protocol.to_string(),
        port,
        cidr,
        ipv6,
        action: action.to_string(),
        description: description.to_string(),
    })
}

/// The rule as a JSON object of known fields only.
fn rule_object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, ApiError> {
    let obj = v.as_object().ok_or_else(|| {
        ApiError::new(
            "InvalidParameter",
            format!("The parameter `{at}` must be an object."),
        )
    })?;
    // The API gateway rejects fields it does not know, nested ones included; echoing a
    // FirewallRuleInfo (with `AppType`) back into a write is a client bug worth catching.
    if let Some(k) = obj.keys().find(|k| !RULE_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::new(
            "UnknownParameter",
            format!("The parameter `{at}.{k}` is not recognized."),
        ));
    }
    Ok(obj)
}

/// `Protocol`: required, one of the five.
fn parse_protocol<'a>(obj: &'a Map<String, Value>, at: &str) -> Result<&'a str, ApiError> {
    let protocol = opt_str(obj, "Protocol", at)?.ok_or_else(|| {
        ApiError::new(
            "MissingParameter",
            format!("The request is missing a required parameter `{at}.Protocol`."),
        )
    })?;
    if !matches!(protocol, "TCP" | "UDP" | "ICMP" | "ICMPv6" | "ALL") {
        return Err(bad_value(format!(
            "`{at}.Protocol` must be one of TCP, UDP, ICMP, ICMPv6, ALL; got `{protocol}`."
        )));
    }
    Ok(protocol)
}

/// `Port`: ALL when absent; ports only for TCP and UDP.
fn parse_port(obj: &Map<String, Value>, protocol: &str, at: &str) -> Result<String, ApiError> {
    match (protocol, opt_str(obj, "Port", at)?) {
        (_, None) => Ok("ALL".to_string()),
        (_, Some("ALL")) => Ok("ALL".to_string()),
        ("TCP" | "UDP", Some(p)) => {
            check_port(p).map_err(|e| bad_value(format!("`{at}.Port` {e}.")))?;
            Ok(p.to_string())
        }
        (_, Some(p)) => Err(bad_value(format!(
            "`{at}.Port` must be empty or ALL for protocol {protocol}; got `{p}`."
        ))),
    }
}

/// `CidrBlock` or `Ipv6CidrBlock` (at most one, fitting the protocol); neither: every address
/// of the protocol's family.
fn parse_blocks(
    obj: &Map<String, Value>,
    protocol: &str,
    at: &str,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let cidr = opt_str(obj, "CidrBlock", at)?;
    let ipv6 = opt_str(obj, "Ipv6CidrBlock", at)?;
    match (cidr, ipv6) {
        (Some(_), Some(_)) => Err(bad_value(format!(
            "`{at}.CidrBlock` and `{at}.Ipv6CidrBlock` cannot both be set."
        ))),
        (Some(c), None) => {
            if protocol == "ICMPv6" {
                return Err(bad_value(format!(
                    "`{at}.CidrBlock` cannot be used with protocol ICMPv6."
                )));
            }
            check_v4(c).map_err(|e| bad_value(format!("`{at}.CidrBlock` {e}.")))?;
            Ok((Some(c.to_string()), None))
        }
        (None, Some(c)) => {
            if protocol == "ICMP" {
                return Err(bad_value(format!(
                    "`{at}.Ipv6CidrBlock` cannot be used with protocol ICMP."
                )));
            }
            check_v6(c).map_err(|e| bad_value(format!("`{at}.Ipv6CidrBlock` {e}.")))?;
            Ok((None, Some(c.to_string())))
        }
        (None, None) if protocol == "ICMPv6" => Ok((None, Some("::/0".to_string()))),
        (None, None) => Ok((Some("0.0.0.0/0".to_string()), None)),
    }
}

/// The Port grammar: ALL, one port, a comma list of single ports, or one range `low-high`. A list
/// and a range are never mixed ("单独的端口与离散端口不能同时存在"; `22,8000-8100` takes two rules).
fn check_port(p: &str) -> Result<(), String> {
    if p.len() > MAX_PORT_CHARS {
        return Err(format!("is longer than {MAX_PORT_CHARS} characters"));
    }
    if let Some((lo, hi)) = p.split_once('-') {
        let (lo, hi) = (port_number(lo)?, port_number(hi)?);
        if lo >= hi {
            return Err(format!("range `{p}` must have low < high"));
        }
        return Ok(());
    }
    let mut seen = Vec::new();
    for part in p.split(',') {
        let n = port_number(part)?;
        if seen.contains(&n) {
            return Err(format!("repeats port {n}"));
        }
        seen.push(n);
    }
    Ok(())
}

/// The set of ports a valid `Port` denotes, as sorted, merged `low-high` ranges: `443,22,23`
/// gives `22-23,443-443`; `ALL` gives `1-65535`.
fn port_set(port: &str) -> String {
    let mut ranges: Vec<(u32, u32)> = if port == "ALL" {
        vec![(1, 65535)]
    } else if let Some((lo, hi)) = port.split_once('-') {
        vec![(lo.parse().unwrap_or(0), hi.parse().unwrap_or(0))]
    } else {
        port.split(',')
            .map(|p| p.parse().unwrap_or(0))
            .map(|n| (n, n))
            .collect()
    };
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1 + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
        .iter()
        .map(|(lo, hi)| format!("{lo}-{hi}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn port_number(s: &str) -> Result<u32, String> {
    let ok = !s.is_empty()
        && s.len() <= 5
        && s.bytes().all(|b| b.is_ascii_digit())
        && !s.starts_with('0');
    match s.parse::<u32>() {
        Ok(n) if ok && (1..=65535).contains(&n) => Ok(n),
        _ => Err(format!(
            "has `{s}`, which is not a port number in 1..=65535"
        )),
    }
}

fn split_prefix(s: &str, max: u32) -> Result<&str, String> {
    match s.split_once('/') {
        None => Ok(s),
        Some((addr, p)) => {
            let ok = !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
            match p.parse::<u32>() {
                Ok(n) if ok && n <= max => Ok(addr),
                _ => Err(format!("`{s}` has a prefix length outside 0..={max}")),
            }
        }
    }
}

fn check_v4(s: &str) -> Result<(), String> {
    let addr = split_prefix(s, 32)?;
    addr.parse::<Ipv4Addr>()
        .map(|_| ())
        .map_err(|_| format!("`{s}` is not an IPv4 address or CIDR block"))
}

fn check_v6(s: &str) -> Result<(), String> {
    let addr = split_prefix(s, 128)?;
    addr.parse::<Ipv6Addr>()
        .map(|_| ())
        .map_err(|_| format!("`{s}` is not an IPv6 address or CIDR block"))
}

/// `FirewallRules` as a list of normalised rules; `InvalidParameter.FirewallRulesDuplicated`
/// when one rule appears twice (by identity).
pub(crate) fn parse_rule_list(v: &Value, ports: PortIdentity) -> Result<Vec<Rule>, ApiError> {
    let items = v.as_array().ok_or_else(|| {
        ApiError::new(
            "InvalidParameter",
            "The parameter `FirewallRules` must be an array.".to_string(),
        )
    })?;
    if items.is_empty() {
        return Err(bad_value("`FirewallRules` must not be empty.".to_string()));
    }
    let mut rules: Vec<Rule> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        rules.push(parse_rule(item, &format!("FirewallRules.{i}"))?);
    }
    for (i, r) in rules.iter().enumerate() {
        if rules[..i].iter().any(|o| o.same(r, ports)) {
            return Err(ApiError::new(
                "InvalidParameter.FirewallRulesDuplicated",
                format!("`FirewallRules.{i}` repeats an earlier rule of the same request."),
            ));
        }
    }
    Ok(rules)
}

fn default_rule(port: &str, protocol: &str) -> Rule {
    Rule {
        protocol: protocol.to_string(),
        port: port.to_string(),
        cidr: Some("0.0.0.0/0".to_string()),
        ipv6: None,
        action: "ACCEPT".to_string(),
        description: String::new(),
    }
}

/// What a freshly created Lighthouse instance shows in the console (the API reference leaves
/// this open; these are the rules the console template creates).
pub(crate) fn default_rules() -> Vec<Rule> {
    vec![
        default_rule("22", "TCP"),
        default_rule("80", "TCP"),
        default_rule("443", "TCP"),
        default_rule("3389", "TCP"),
        default_rule("ALL", "ICMP"),
    ]
}

/// Rules someone else put there (an office SSH allowance): knockd must never touch them.
pub(crate) fn foreign_rules(n: usize) -> Vec<Rule> {
    (1..=n)
        .map(|i| Rule {
            protocol: "TCP".to_string(),
            port: "22".to_string(),
            cidr: Some(format!("198.51.{}.{}/32", 100 + i / 250, i % 250 + 1)),
            ipv6: None,
            action: "ACCEPT".to_string(),
            description: format!("office-{i}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalises_defaults() {
        let r = parse_rule(&json!({"Protocol": "TCP"}), "r").expect("valid");
        assert_eq!(r.port, "ALL");
        assert_eq!(r.cidr.as_deref(), Some("0.0.0.0/0"));
        assert_eq!(r.action, "ACCEPT");
        let r = parse_rule(&json!({"Protocol": "ICMPv6"}), "r").expect("valid");
        assert_eq!(r.ipv6.as_deref(), Some("::/0"));
    }

    #[test]
    fn port_grammar() {
        for ok in ["22", "22,80,443", "8000-8010", "65535", "ALL"] {
            assert!(
                parse_rule(&json!({"Protocol": "UDP", "Port": ok}), "r").is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "0", "65536", "22-22", "30-20", "22,22", "22, 80", "1-2,5", "022", "x",
        ] {
            assert!(
                parse_rule(&json!({"Protocol": "TCP", "Port": bad}), "r").is_err(),
                "{bad}"
            );
        }
        assert!(parse_rule(&json!({"Protocol": "ICMP", "Port": "22"}), "r").is_err());
    }

    #[test]
    fn port_sets() {
        assert_eq!(port_set("443,22,23"), "22-23,443-443");
        assert_eq!(port_set("22-23"), "22-23");
        assert_eq!(port_set("ALL"), port_set("1-65535"));
        assert_eq!(port_set("80"), "80-80");
        let rule = |port: &str| {
            parse_rule(
                &json!({"Protocol": "TCP", "Port": port, "CidrBlock": "192.0.2.1"}),
                "r",
            )
            .expect("valid")
        };
        assert!(!rule("22,443").same(&rule("443,22"), PortIdentity::Text));
        assert!(rule("22,443").same(&rule("443,22"), PortIdentity::Set));
        assert!(rule("ALL").same(&rule("1-65535"), PortIdentity::Set));
        assert!(!rule("22,443").same(&rule("22"), PortIdentity::Set));
    }

    #[test]
    fn cidr_checks() {
        assert!(parse_rule(&json!({"Protocol": "TCP", "CidrBlock": "1.2.3.4"}), "r").is_ok());
        assert!(parse_rule(&json!({"Protocol": "TCP", "CidrBlock": "1.2.3.0/33"}), "r").is_err());
        assert!(parse_rule(&json!({"Protocol": "TCP", "CidrBlock": "::1"}), "r").is_err());
        assert!(parse_rule(
            &json!({"Protocol": "TCP", "CidrBlock": "1.2.3.4", "Ipv6CidrBlock": "::1"}),
            "r"
        )
        .is_err());
        assert!(parse_rule(&json!({"Protocol": "ICMP", "Ipv6CidrBlock": "::/0"}), "r").is_err());
    }
}
