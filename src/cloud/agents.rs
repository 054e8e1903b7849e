//! One HTTPS agent per API host: each host gets the proxy NO_PROXY chooses for it, and a
//! plain-http host connects to loopback addresses only (docs/lighthouse-api.md#endpoints-and-transport).

use std::net::{SocketAddr, ToSocketAddrs};

use super::error::ApiError;
use crate::config::{Config, Scheme};

/// An agent for every host the configuration's calls go to (each instance's region, and
/// TENCENT_CLOUD_REGION's for calls without an instance), keyed by `Endpoint::host`; `builder`
/// gives the settings every agent shares.
pub(crate) fn per_host(
    config: &Config,
    builder: impl Fn(&str) -> Result<ureq::AgentBuilder, ApiError>,
) -> Result<Vec<(String, ureq::Agent)>, ApiError> {
    let cloud = &config.cloud;
    // A host per region: a Vec (a hash table would cost its own code for this key type).
    let mut agents: Vec<(String, ureq::Agent)> = Vec::new();
    let hosts = cloud
        .endpoints()
        .into_iter()
        .map(|(e, _)| e)
        .chain(std::iter::once(cloud.endpoint(None)));
    for endpoint in hosts {
        if agents.iter().any(|(h, _)| *h == endpoint.host) {
            continue;
        }
        let mut b = builder(&endpoint.host)?;
        if endpoint.scheme == Scheme::Http {
            b = b.resolver(|netloc: &str| {
                let addrs = netloc.to_socket_addrs()?.collect();
                loopback_only(netloc, addrs).map_err(std::io::Error::other)
            });
        }
        agents.push((endpoint.host, b.build()));
    }
    Ok(agents)
}

/// The addresses a plain-http endpoint may be reached at: loopback only, whatever the name
/// resolved to. `.localhost` names are loopback by RFC 6761, but a DNS server may answer them
/// otherwise, and a plain-http call must never leave the machine (it carries the token).
pub(crate) fn loopback_only(
    netloc: &str,
    addrs: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, String> {
    let (loopback, other): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.into_iter().partition(|a| a.ip().is_loopback());
    match other.first() {
        Some(a) if loopback.is_empty() => Err(format!(
            "{netloc} resolves to {}, not a loopback address: plain http:// is only for loopback endpoints",
            a.ip()
        )),
        _ => Ok(loopback),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_connects_to_loopback_addresses_only() {
        let a = |s: &str| s.parse::<SocketAddr>().expect(s);
        for (addrs, want) in [
            (vec!["127.0.0.1:9000"], Ok(vec!["127.0.0.1:9000"])),
            (
                vec!["[::1]:9000", "127.0.0.1:9000"],
                Ok(vec!["[::1]:9000", "127.0.0.1:9000"]),
            ),
            // A name with loopback and other answers: only the loopback ones are tried.
            (
                vec!["203.0.113.5:9000", "127.0.0.1:9000"],
                Ok(vec!["127.0.0.1:9000"]),
            ),
            (vec!["203.0.113.5:9000"], Err("203.0.113.5")),
            (vec!["[2001:db8::1]:9000"], Err("2001:db8::1")),
            (vec![], Ok(vec![])),
        ] {
            let got = loopback_only("x.localhost:9000", addrs.iter().map(|s| a(s)).collect());
            match want {
                Ok(w) => assert_eq!(got, Ok(w.iter().map(|s| a(s)).collect()), "{addrs:?}"),
                Err(ip) => {
                    let e = got.expect_err("refused");
                    assert!(e.contains(ip) && e.contains("x.localhost:9000"), "{e}");
                }
            }
        }
    }
}
