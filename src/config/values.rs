//! Value parsers: one function per kind of value, each saying exactly what was wrong.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::{AccessPoint, Endpoint, Instance, Scheme, REGION_PLACEHOLDER};
use crate::grammar::split_list;

/// The API's limit on a rule's `Port` string (docs/lighthouse-api.md#firewall-rules).
pub(super) const MAX_PORT_STRING: usize = 64;
/// Longest accepted FW_RULE_NAME_PREFIX: the description (64 bytes) must keep room for the label
/// and the expiry.
pub(super) const MAX_RULE_PREFIX: usize = 20;

pub(crate) fn parse_port(s: &str) -> Result<u16, String> {
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
pub(super) fn parse_ports(s: &str) -> Result<String, String> {
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
    // Each rule's Port string is limited, not the setting: the single ports share one rule.
    for rule in port_rules(&items.join(",")) {
        if rule.len() > MAX_PORT_STRING {
            return Err(format!(
                "the single ports make a Port string of {} characters; the API accepts at most {MAX_PORT_STRING} per rule (use ranges)",
                rule.len()
            ));
        }
    }
    Ok(items.join(","))
}

/// A normalised port setting (from `parse_ports`) as the `Port` strings of the rules knockd
/// writes for it: the API never mixes single ports and a range in one rule, so
/// `22,443,8000-8100` becomes `22,443` and `8000-8100` (docs/lighthouse-api.md#port-grammar).
pub(super) fn port_rules(normalised: &str) -> Vec<String> {
    crate::rules::ports::split_rules(split_list(normalised))
}

pub(crate) fn check_rule_prefix(p: &str) -> Result<(), String> {
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
pub(super) fn is_region(s: &str) -> bool {
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

pub(crate) fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("lhins-").is_some_and(|rest| {
        rest.len() == 8
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// The instance id `.env.sample` ships: well-formed, so it would pass every other check and
/// only fail at the first API call.
pub(crate) const PLACEHOLDER_INSTANCE: &str = "lhins-xxxxxxxx";

/// `lhins-xxxxxxxx` or `region:lhins-xxxxxxxx` items; duplicates removed, order kept.
pub(super) fn parse_instances(s: &str, default_region: &str) -> Result<Vec<Instance>, String> {
    let mut list: Vec<Instance> = Vec::new();
    let mut bad = Vec::new();
    for item in split_list(s) {
        let (region, id) = match item.split_once(':') {
            Some((r, id)) => (r.trim(), id.trim()),
            None => (default_region, item),
        };
        if id == PLACEHOLDER_INSTANCE {
            bad.push(format!(
                "'{id}' is the placeholder of .env.sample, not an instance: put your own instance \
                 ids here (the Lighthouse console's instance list shows them)"
            ));
            continue;
        }
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
pub(super) fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
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
    let implicit_scheme = !lower.contains("://");
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
    // Without a scheme https is meant, but a loopback endpoint is lighthouse-sim, which speaks
    // plain HTTP: https would fail every call after seconds of retries with a TLS error that
    // does not say why. Written out (https://127.0.0.1:…), https on loopback stays allowed.
    if implicit_scheme && is_loopback_host(host) {
        return Err(format!(
            "'{s}' has no scheme and is this machine (loopback): a local test endpoint such as \
             lighthouse-sim speaks plain HTTP, so write http://{rest}; if it really serves TLS, \
             write https://{rest}"
        ));
    }
    if scheme == Scheme::Http && !is_loopback_host(host) {
        return Err(format!(
            "'{s}': http:// is allowed only for a loopback endpoint (127.0.0.0/8, [::1], localhost, a name under .localhost); use https://"
        ));
    }
    // The scheme's default port is neither sent nor signed, as the SDKs do
    // (docs/lighthouse-api.md#default-port).
    let default_port = match scheme {
        Scheme::Https => 443,
        Scheme::Http => 80,
    };
    let host = match port.map(parse_port) {
        Some(Ok(p)) if p != default_port => format!("{host}:{p}"),
        _ => host.to_string(),
    };
    Ok(Endpoint { scheme, host })
}

pub(crate) fn is_hostname(h: &str) -> bool {
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

/// Loopback addresses, `localhost` and names under `.localhost`, which RFC 6761 (section 6.3)
/// reserves for loopback. A resolver may still answer such a name with another address, so the
/// API client also refuses to connect a plain-http endpoint anywhere but loopback
/// (`cloud::agents::loopback_only`).
pub(crate) fn is_loopback_host(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback());
    }
    host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// TENCENT_CLOUD_ACCESS_POINT: one endpoint as [`parse_endpoint`] reads it, or one whose host
/// holds `{region}`, a host per region (`lighthouse.{region}.tencentcloudapi.com`, or
/// `http://lighthouse.{region}.sim.localhost:9000` for a simulator).
pub(super) fn parse_access_point(s: &str) -> Result<AccessPoint, String> {
    if !s.contains(REGION_PLACEHOLDER) {
        return parse_endpoint(s).map(AccessPoint::One);
    }
    // A stand-in region that cannot occur in the text otherwise checks the pattern as every
    // region would be: region names are host-name labels (`is_region`).
    const SAMPLE: &str = "zz-regionplaceholder0";
    let endpoint = parse_endpoint(&s.replace(REGION_PLACEHOLDER, SAMPLE))
        .map_err(|e| e.replace(SAMPLE, REGION_PLACEHOLDER))?;
    let name = match endpoint.host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || port.parse::<u16>().is_ok() => name,
        _ => endpoint.host.as_str(),
    };
    if !name.contains(SAMPLE) {
        return Err(format!(
            "'{s}': {REGION_PLACEHOLDER} may stand only in the host name, like lighthouse.{REGION_PLACEHOLDER}.tencentcloudapi.com"
        ));
    }
    Ok(AccessPoint::PerRegion {
        scheme: endpoint.scheme,
        host: endpoint.host.replace(SAMPLE, REGION_PLACEHOLDER),
    })
}

pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

pub(crate) fn check_readable_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a file".into());
    }
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| format!("cannot be read: {e}"))
}

pub(crate) fn check_knock_path(p: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_port_is_neither_sent_nor_signed() {
        let host = |s: &str| parse_endpoint(s).map(|e| e.host);
        for s in [
            "https://lighthouse.tencentcloudapi.com:443/",
            "https://lighthouse.tencentcloudapi.com:0443",
            "lighthouse.tencentcloudapi.com:443",
            "https://lighthouse.tencentcloudapi.com",
        ] {
            assert_eq!(
                host(s).as_deref(),
                Ok("lighthouse.tencentcloudapi.com"),
                "{s}"
            );
        }
        assert_eq!(host("http://127.0.0.1:80/").as_deref(), Ok("127.0.0.1"));
        assert_eq!(host("http://[::1]:80").as_deref(), Ok("[::1]"));
        assert_eq!(
            host("https://[2001:db8::1]:443").as_deref(),
            Ok("[2001:db8::1]")
        );
        // Any other port stays, written without leading zeros.
        assert_eq!(
            host("https://example.com:8443").as_deref(),
            Ok("example.com:8443")
        );
        assert_eq!(
            host("https://example.com:080").as_deref(),
            Ok("example.com:80")
        );
        assert_eq!(host("http://127.0.0.1:443").as_deref(), Ok("127.0.0.1:443"));
        assert_eq!(
            parse_endpoint("https://lighthouse.tencentcloudapi.com:443/").map(|e| e.url()),
            Ok("https://lighthouse.tencentcloudapi.com/".to_string())
        );
    }

    #[test]
    fn access_points_are_one_host_or_a_host_per_region() {
        let ap = |s: &str| parse_access_point(s);
        let per_region = |scheme, host: &str| {
            Ok(AccessPoint::PerRegion {
                scheme,
                host: host.to_string(),
            })
        };
        for (text, want) in [
            (
                "lighthouse.{region}.tencentcloudapi.com",
                per_region(Scheme::Https, "lighthouse.{region}.tencentcloudapi.com"),
            ),
            (
                "https://Lighthouse.{region}.TencentCloudAPI.com:443/",
                per_region(Scheme::Https, "lighthouse.{region}.tencentcloudapi.com"),
            ),
            (
                "http://lighthouse.{region}.sim.localhost:9000",
                per_region(Scheme::Http, "lighthouse.{region}.sim.localhost:9000"),
            ),
            (
                "lighthouse.intl.tencentcloudapi.com",
                Ok(AccessPoint::One(Endpoint {
                    scheme: Scheme::Https,
                    host: "lighthouse.intl.tencentcloudapi.com".into(),
                })),
            ),
            (
                "http://api.sim.localhost:9000",
                Ok(AccessPoint::One(Endpoint {
                    scheme: Scheme::Http,
                    host: "api.sim.localhost:9000".into(),
                })),
            ),
        ] {
            assert_eq!(ap(text), want, "{text}");
        }
        for bad in [
            // Plain http only where the name is loopback's, whatever the region.
            "http://lighthouse.{region}.example.com:9000",
            "http://{region}:9000",
            "http://api.localhost.example.com",
            "lighthouse.example.com:{region}",
            "{region}://lighthouse.example.com",
            "https://lighthouse.example.com/{region}",
            "lighthouse.{Region}.com",
        ] {
            let e = ap(bad).expect_err(bad);
            assert!(!e.contains("zz-"), "{bad}: {e}");
        }
        assert_eq!(
            AccessPoint::regional().endpoint("ap-hongkong").url(),
            "https://lighthouse.ap-hongkong.tencentcloudapi.com/"
        );
        assert_eq!(
            ap("http://lighthouse.{region}.sim.localhost:9000")
                .map(|a| a.endpoint("na-ashburn").url()),
            Ok("http://lighthouse.na-ashburn.sim.localhost:9000/".to_string())
        );
    }

    #[test]
    fn localhost_names_are_loopback() {
        for host in [
            "localhost",
            "a.localhost",
            "lighthouse.ap-guangzhou.sim.localhost",
            "127.0.0.2",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "localhost.example.com",
            "notlocalhost",
            "a.localhost.com",
            "10.0.0.1",
            "[2001:db8::1]",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn mixed_port_settings_become_one_rule_per_range_plus_one_for_single_ports() {
        let rules = |s: &str| parse_ports(s).map(|n| port_rules(&n));
        assert_eq!(
            rules("22,8000-8100"),
            Ok(vec!["22".into(), "8000-8100".into()])
        );
        assert_eq!(
            rules("8000-8100, 22 ,443,9000-9001"),
            Ok(vec![
                "22,443".into(),
                "8000-8100".into(),
                "9000-9001".into()
            ])
        );
        assert_eq!(rules("22,443"), Ok(vec!["22,443".into()]));
        assert_eq!(rules(""), Ok(vec![]));
        // The 64-character limit holds per rule: ten 5-digit ports (59) and a range fit …
        let ten: Vec<String> = (10000..10010).map(|p| p.to_string()).collect();
        let ok = format!("{},20000-30000", ten.join(","));
        assert!(ok.len() > MAX_PORT_STRING);
        assert_eq!(rules(&ok).map(|r| r.len()), Ok(2));
        // … eleven (65) do not.
        let eleven: Vec<String> = (10000..10011).map(|p| p.to_string()).collect();
        assert!(parse_ports(&format!("{},20000-30000", eleven.join(","))).is_err());
    }
}
