//! Which address a knock comes from (METHOD_TO_GET_CLIENT_IP), and whether the firewall may ever
//! be opened for it.
//!
//! Header values here are attacker-controlled. They are parsed strictly (one plain address per
//! item, nothing skipped) and never echoed into logs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::ClientIpMethod;
use crate::knock::http::RequestHead;
use crate::rules::cidr::{canonical, Cidr};

/// Why no grantable client address could be determined. All of them answer failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The header the method requires is absent.
    Missing,
    /// A header that must name exactly one IP address does not.
    Malformed,
    /// An address the firewall must never be opened for.
    NotAllowed(IpAddr),
}

impl fmt::Display for Refusal {
    // Header values are deliberately not shown: they are hostile, unbounded and may carry
    // control characters that forge log lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Missing => f.write_str("client address header missing"),
            Refusal::Malformed => {
                f.write_str("client address header is not exactly one IP address")
            }
            Refusal::NotAllowed(ip) => write!(f, "address {ip} may never be opened"),
        }
    }
}

/// Whether a firewall rule may ever be written for `ip`. Unspecified addresses are the dangerous
/// ones (a `CidrBlock` of `0.0.0.0` or `::` risks reading as "everyone"); loopback, multicast,
/// link-local and broadcast can never be a remote client, so a knock naming them is forged.
/// The same goes for the odd single addresses that can never be a packet's source on the
/// internet: "this network" 0.0.0.0/8, reserved 240.0.0.0/4, IPv4-compatible `::a.b.c.d`,
/// NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses that carry a loopback, private or
/// otherwise never-source IPv4, deprecated site-local fec0::/10, and the subnet-router anycast
/// address of a /64 (interface identifier zero).
/// Private and documentation ranges stay grantable: VPN users and tests rely on them.
pub fn is_grantable(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_grantable_v4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let seg = v6.segments();
            let embedded = |shift: u32| Ipv4Addr::from((bits >> shift) as u32);
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || is_v6_link_local(v6)
                // fec0::/10, site-local (deprecated by RFC 3879)
                || seg[0] & 0xffc0 == 0xfec0
                // ::a.b.c.d, IPv4-compatible (deprecated by RFC 4291)
                || bits >> 32 == 0
                // 64:ff9b::/96 NAT64 carrying an address no internet host has
                || (bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 && !is_public_v4(embedded(0)))
                // 2002::/16 6to4 carrying one
                || (seg[0] == 0x2002 && !is_public_v4(embedded(80)))
                // subnet-router anycast of the /64
                || bits & 0xffff_ffff_ffff_ffff == 0)
        }
    }
}

/// An address a host line's name may open: grantable, and not private (10/8, 172.16/12,
/// 192.168/16), shared (100.64/10, carrier NAT) or unique-local (fc00::/7). A knock from such
/// an address opens it (the key proves a client is there, over a VPN); a DNS answer proves
/// nothing about who holds the address, and a private range on the server's side of the
/// firewall is the cloud's internal network, which a forged answer must not open.
pub(crate) fn is_followable(ip: IpAddr) -> bool {
    is_grantable(ip)
        && match canonical(ip) {
            IpAddr::V4(v4) => is_public_v4(v4),
            IpAddr::V6(v6) => v6.segments()[0] & 0xfe00 != 0xfc00,
        }
}

fn is_v6_link_local(v6: Ipv6Addr) -> bool {
    v6.segments()[0] & 0xffc0 == 0xfe80
}

fn is_grantable_v4(v4: Ipv4Addr) -> bool {
    let first = v4.octets()[0];
    !(first == 0 // 0.0.0.0/8, "this network" (covers unspecified)
        || first >= 240 // 240.0.0.0/4 reserved (covers broadcast)
        || v4.is_loopback()
        || v4.is_multicast()
        || v4.is_link_local())
}

/// An IPv4 address a NAT64 or 6to4 address may embed: grantable, and not private or shared.
fn is_public_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    is_grantable_v4(v4) && !v4.is_private() && !(o[0] == 100 && o[1] & 0xc0 == 64)
}

/// The address a knock is from, canonical (IPv4-mapped IPv6 as IPv4) and grantable.
///
/// - `Peer`: the TCP peer; headers are ignored, so forged X-Forwarded-For changes nothing.
/// - `Forwarded`: headers count only when the peer itself is in `trusted`. Then X-Real-IP when
///   present (a proxy sets it whole, so a client cannot add to it; the proxy must overwrite it,
///   see README); else the right-most X-Forwarded-For address not in `trusted` (the one our own
///   proxies saw connect; everything left of it may be client-forged); if every listed address
///   is trusted, the left-most one (as nginx's `real_ip_recursive` does); without either header,
///   the peer. Any X-Forwarded-For item that is not one plain address makes the whole header
///   Malformed rather than being skipped, since skipping lets a forged item decide the result.
/// - `Declared`: the `ip` header, exactly one address.
pub fn resolve(
    method: ClientIpMethod,
    peer: IpAddr,
    head: &RequestHead,
    trusted: &[Cidr],
) -> Result<IpAddr, Refusal> {
    let peer = canonical(peer);
    let chosen = match method {
        ClientIpMethod::Peer => peer,
        ClientIpMethod::Forwarded if is_trusted(peer, trusted) => forwarded(peer, head, trusted)?,
        ClientIpMethod::Forwarded => peer,
        ClientIpMethod::Declared => single(head, "ip", false)?.ok_or(Refusal::Missing)?,
    };
    let chosen = canonical(chosen);
    if is_grantable(chosen) {
        Ok(chosen)
    } else {
        Err(Refusal::NotAllowed(chosen))
    }
}

fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

fn forwarded(peer: IpAddr, head: &RequestHead, trusted: &[Cidr]) -> Result<IpAddr, Refusal> {
    // X-Real-IP first: when both are present and disagree, the client-extensible
    // X-Forwarded-For must not win.
    if let Some(ip) = single(head, "x-real-ip", true)? {
        return Ok(ip);
    }
    let mut lines = head.headers_all("x-forwarded-for").peekable();
    if lines.peek().is_none() {
        return Ok(peer);
    }
    // Header lines of one name form one list, in order (RFC 9110 §5.3). One pass, no buffer:
    // the last untrusted item seen is the right-most one.
    let mut first = None;
    let mut rightmost_untrusted = None;
    for line in lines {
        for item in line.split(|&b| b == b',') {
            let ip = parse_ip(item, true).ok_or(Refusal::Malformed)?;
            first.get_or_insert(ip);
            if !is_trusted(ip, trusted) {
                rightmost_untrusted = Some(ip);
            }
        }
    }
    rightmost_untrusted.or(first).ok_or(Refusal::Malformed)
}

/// Whom a knock through a trusted proxy claims to be for, read leniently, for the lockout
/// only: the last X-Real-IP that parses, else the X-Forwarded-For address `resolve` would pick
/// among the items that parse (junk items skipped). None when nothing parses: the caller then
/// counts the failure against one shared bucket, so junk cannot switch the lockout off.
pub fn forwarded_claim(head: &RequestHead, trusted: &[Cidr]) -> Option<IpAddr> {
    if let Some(ip) = head
        .headers_all("x-real-ip")
        .filter_map(|v| parse_ip(v, true))
        .last()
    {
        return Some(ip);
    }
    let mut first = None;
    let mut rightmost_untrusted = None;
    for line in head.headers_all("x-forwarded-for") {
        for ip in line.split(|&b| b == b',').filter_map(|i| parse_ip(i, true)) {
            first.get_or_insert(ip);
            if !is_trusted(ip, trusted) {
                rightmost_untrusted = Some(ip);
            }
        }
    }
    rightmost_untrusted.or(first)
}

/// The one header `name` as one address: `Ok(None)` when absent, Malformed when repeated or
/// not exactly one address.
fn single(head: &RequestHead, name: &str, brackets: bool) -> Result<Option<IpAddr>, Refusal> {
    let mut values = head.headers_all(name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::Malformed);
    }
    parse_ip(value, brackets)
        .map(Some)
        .ok_or(Refusal::Malformed)
}

/// One plain address, surrounding spaces and tabs allowed; no port, prefix, zone or list.
/// `[v6]` is accepted where proxies are known to write it that way.
fn parse_ip(item: &[u8], brackets: bool) -> Option<IpAddr> {
    let text = std::str::from_utf8(item).ok()?.trim_matches([' ', '\t']);
    // Longest textual address is 45 bytes (`ffff:…:255.255.255.255`); refuse early anything
    // longer so a huge item costs nothing to reject.
    if text.len() > 47 {
        return None;
    }
    let ip = match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(inner) if brackets => IpAddr::V6(inner.parse::<Ipv6Addr>().ok()?),
        Some(_) => return None,
        None => text.parse::<IpAddr>().ok()?,
    };
    Some(canonical(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knock::http::{parse_head, Parsed};
    use ClientIpMethod::{Declared, Forwarded, Peer};
    use Refusal::{Malformed, Missing, NotAllowed};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn head(headers: &[(&str, &str)]) -> RequestHead {
        let mut raw = b"GET /favico.ico HTTP/1.1\r\n".to_vec();
        for (name, value) in headers {
            raw.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        match parse_head(&raw) {
            Parsed::Complete(h, _) => h,
            other => panic!("test head did not parse: {other:?}"),
        }
    }

    fn trusted() -> Vec<Cidr> {
        ["10.0.0.0/8", "2001:db8:ffff::/48", "198.51.100.7"]
            .iter()
            .map(|s| Cidr::parse(s).expect("cidr"))
            .collect()
    }

    /// (method, peer, headers, expected)
    type Case<'a> = (
        ClientIpMethod,
        &'a str,
        &'a [(&'a str, &'a str)],
        Result<&'a str, Refusal>,
    );

    fn run(cases: &[Case]) {
        let trusted = trusted();
        for (i, (method, peer, headers, expected)) in cases.iter().enumerate() {
            let got = resolve(*method, ip(peer), &head(headers), &trusted);
            let expected = expected.map(ip);
            assert_eq!(
                got, expected,
                "case {i}: {method:?} peer {peer} headers {headers:?}"
            );
        }
    }

    const PROXY: &str = "10.0.0.2";
    const CLIENT: &str = "203.0.113.9";

    #[test]
    fn peer_method_ignores_every_header() {
        let forged: &[(&str, &str)] = &[
            ("X-Forwarded-For", "8.8.8.8"),
            ("X-Real-IP", "8.8.4.4"),
            ("ip", "1.1.1.1"),
        ];
        run(&[
            (Peer, CLIENT, &[], Ok(CLIENT)),
            (Peer, CLIENT, forged, Ok(CLIENT)),
            // Even from a trusted proxy: method 1 means the TCP peer, full stop.
            (Peer, PROXY, forged, Ok(PROXY)),
            (Peer, "::ffff:203.0.113.9", forged, Ok(CLIENT)),
            (Peer, "2001:db8::5", forged, Ok("2001:db8::5")),
            (Peer, "127.0.0.1", &[], Err(NotAllowed(ip("127.0.0.1")))),
            (
                Peer,
                "::ffff:127.0.0.1",
                &[],
                Err(NotAllowed(ip("127.0.0.1"))),
            ),
            // Garbage headers are not even looked at.
            (Peer, CLIENT, &[("X-Forwarded-For", "junk, ,")], Ok(CLIENT)),
        ]);
    }

    #[test]
    fn forwarded_from_an_untrusted_peer_is_the_peer() {
        run(&[
            (
                Forwarded,
                CLIENT,
                &[("X-Forwarded-For", "8.8.8.8")],
                Ok(CLIENT),
            ),
            (Forwarded, CLIENT, &[("X-Real-IP", "8.8.8.8")], Ok(CLIENT)),
            (
                Forwarded,
                CLIENT,
                &[("X-Forwarded-For", "not an ip")],
                Ok(CLIENT),
            ),
            (
                Forwarded,
                CLIENT,
                &[("X-Forwarded-For", "127.0.0.1")],
                Ok(CLIENT),
            ),
            // Close to trusted, but not in it.
            (
                Forwarded,
                "11.0.0.1",
                &[("X-Forwarded-For", "8.8.8.8")],
                Ok("11.0.0.1"),
            ),
            (
                Forwarded,
                "198.51.100.8",
                &[("X-Forwarded-For", "8.8.8.8")],
                Ok("198.51.100.8"),
            ),
        ]);
    }

    #[test]
    fn forwarded_chains() {
        run(&[
            (Forwarded, PROXY, &[("X-Forwarded-For", CLIENT)], Ok(CLIENT)),
            (
                Forwarded,
                "198.51.100.7",
                &[("X-Forwarded-For", CLIENT)],
                Ok(CLIENT),
            ),
            // IPv4-mapped trusted peer, as a dual-stack socket reports it.
            (
                Forwarded,
                "::ffff:10.0.0.2",
                &[("X-Forwarded-For", CLIENT)],
                Ok(CLIENT),
            ),
            // The client prepended a forged entry; our proxy appended what it saw.
            (
                Forwarded,
                PROXY,
                &[("X-Forwarded-For", "8.8.8.8, 203.0.113.9")],
                Ok(CLIENT),
            ),
            // Several of our own proxies: skip trusted hops from the right.
            (
                Forwarded,
                PROXY,
                &[(
                    "X-Forwarded-For",
                    "8.8.8.8,203.0.113.9, 10.1.1.1,198.51.100.7",
                )],
                Ok(CLIENT),
            ),
            // Split across header lines, concatenated in order.
            (
                Forwarded,
                PROXY,
                &[
                    ("X-Forwarded-For", "8.8.8.8"),
                    ("X-Forwarded-For", "203.0.113.9, 10.1.1.1"),
                ],
                Ok(CLIENT),
            ),
            // Every hop trusted (a VPN client inside the trusted range): the left-most.
            (
                Forwarded,
                PROXY,
                &[("X-Forwarded-For", "10.8.0.2, 10.0.0.3")],
                Ok("10.8.0.2"),
            ),
            // X-Real-IP wins over X-Forwarded-For (a proxy sets it whole; a client can only
            // prepend to X-Forwarded-For), whatever the order of the lines.
            (
                Forwarded,
                PROXY,
                &[("X-Real-IP", CLIENT), ("X-Forwarded-For", "8.8.8.8")],
                Ok(CLIENT),
            ),
            (
                Forwarded,
                PROXY,
                &[
                    ("X-Forwarded-For", "8.8.8.8, 8.8.4.4"),
                    ("X-Real-IP", CLIENT),
                ],
                Ok(CLIENT),
            ),
            // A malformed X-Real-IP is not passed over for X-Forwarded-For.
            (
                Forwarded,
                PROXY,
                &[("X-Real-IP", "junk"), ("X-Forwarded-For", CLIENT)],
                Err(Malformed),
            ),
            (Forwarded, PROXY, &[("X-Real-IP", CLIENT)], Ok(CLIENT)),
            (
                Forwarded,
                PROXY,
                &[("x-real-ip", " 203.0.113.9 ")],
                Ok(CLIENT),
            ),
            // No forwarding header at all: the proxy itself.
            (Forwarded, PROXY, &[], Ok(PROXY)),
        ]);
    }

    #[test]
    fn forwarded_ipv6() {
        run(&[
            (
                Forwarded,
                PROXY,
                &[("X-Forwarded-For", "2001:db8::1")],
                Ok("2001:db8::1"),
            ),
            (
                Forwarded,
                PROXY,
                &[("X-Forwarded-For", "[2001:db8::1]")],
                Ok("2001:db8::1"),
            ),
            (
                Forwarded,
                "2001:db8:ffff::1",
                &[("X-Forwarded-For", "2001:db8::1, 2001:db8:ffff::2")],
                Ok("2001:db8::1"),
            ),
            (
                Forwarded,
                PROXY,
                &[("X-Forwarded-For", "::ffff:203.0.113.9")],
                Ok(CLIENT),
            ),
            (
                Forwarded,
                PROXY,
                &[("X-Real-IP", "[2001:db8::1]")],
                Ok("2001:db8::1"),
            ),
            (
                Forwarded,
                PROXY,
                &[("X-Forwarded-For", "fe80::1%eth0")],
                Err(Malformed),
            ),
            (
                Forwarded,
                PROXY,
                &[("X-Forwarded-For", "[2001:db8::1]:443")],
                Err(Malformed),
            ),
            (
                Forwarded,
                PROXY,
                &[("X-Forwarded-For", "[203.0.113.9]")],
                Err(Malformed),
            ),
            (
                Forwarded,
                PROXY,
                &[("X-Forwarded-For", "[2001:db8::1")],
                Err(Malformed),
            ),
        ]);
    }

    #[test]
    fn forwarded_refuses_anything_but_plain_addresses() {
        let xff =
            |v: &'static str| -> Vec<(&'static str, &'static str)> { vec![("X-Forwarded-For", v)] };
        for value in [
            "203.0.113.0/24",
            "203.0.113.9:443",
            "203.0.113.9 8.8.8.8",
            "unknown",
            "unknown, 203.0.113.9",
            "203.0.113.9,",
            ",203.0.113.9",
            "203.0.113.9,,8.8.8.8",
            "",
            "2001:db8::/32",
            "for=203.0.113.9",
            "203.0.113",
            "203.0.113.09",
            "0x7f.0.0.1",
            "203.0.113.9.",
        ] {
            let headers = xff(value);
            run(&[(Forwarded, PROXY, &headers, Err(Malformed))]);
        }
        for value in [
            "203.0.113.0/24",
            "203.0.113.9, 8.8.8.8",
            "203.0.113.9:80",
            "",
            "x",
        ] {
            run(&[(Forwarded, PROXY, &[("X-Real-IP", value)], Err(Malformed))]);
        }
        run(&[(
            Forwarded,
            PROXY,
            &[("X-Real-IP", CLIENT), ("X-Real-IP", CLIENT)],
            Err(Malformed),
        )]);
    }

    #[test]
    fn declared_method() {
        run(&[
            (Declared, PROXY, &[("ip", CLIENT)], Ok(CLIENT)),
            (Declared, PROXY, &[("IP", "2001:db8::1")], Ok("2001:db8::1")),
            (Declared, PROXY, &[("ip", "::ffff:203.0.113.9")], Ok(CLIENT)),
            (Declared, PROXY, &[("ip", "10.0.0.9")], Ok("10.0.0.9")),
            (Declared, PROXY, &[], Err(Missing)),
            (
                Declared,
                PROXY,
                &[("X-Forwarded-For", CLIENT)],
                Err(Missing),
            ),
            (Declared, PROXY, &[("ip", "")], Err(Malformed)),
            (Declared, PROXY, &[("ip", "203.0.113.0/24")], Err(Malformed)),
            (
                Declared,
                PROXY,
                &[("ip", "203.0.113.9, 8.8.8.8")],
                Err(Malformed),
            ),
            (Declared, PROXY, &[("ip", "203.0.113.9:80")], Err(Malformed)),
            (Declared, PROXY, &[("ip", "203.0. 113.9")], Err(Malformed)),
            (Declared, PROXY, &[("ip", "[2001:db8::1]")], Err(Malformed)),
            (Declared, PROXY, &[("ip", "fe80::1%eth0")], Err(Malformed)),
            (
                Declared,
                PROXY,
                &[("ip", CLIENT), ("ip", CLIENT)],
                Err(Malformed),
            ),
        ]);
    }

    #[test]
    fn never_grantable_via_forwarded_or_declared() {
        for value in [
            "0.0.0.0",
            "::",
            "127.0.0.1",
            "127.255.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:0.0.0.0",
            "169.254.1.1",
            "fe80::1",
            "febf::1",
            "224.0.0.1",
            "239.255.255.250",
            "ff02::1",
            "255.255.255.255",
        ] {
            let refused = Err(NotAllowed(canonical(ip(value))));
            run(&[
                (Forwarded, PROXY, &[("X-Forwarded-For", value)], refused),
                (Forwarded, PROXY, &[("X-Real-IP", value)], refused),
                (Declared, CLIENT, &[("ip", value)], refused),
            ]);
        }
        // A loopback address does not hide behind a forged left-most entry either.
        run(&[(
            Forwarded,
            PROXY,
            &[("X-Forwarded-For", "8.8.8.8, 127.0.0.1")],
            Err(NotAllowed(ip("127.0.0.1"))),
        )]);
    }

    #[test]
    fn grantable_ranges() {
        for s in [
            "8.8.8.8",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "203.0.113.9",
            "198.51.100.1",
            "2001:db8::1",
            "fd00::1",
            "::ffff:8.8.8.8",
            "223.255.255.254",
            "1.0.0.1",
            "223.255.255.255",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:db8:1:2::1",
            "2001:db8::1:0:0:0",
        ] {
            assert!(is_grantable(ip(s)), "{s}");
        }
        for s in [
            "0.0.0.0",
            "::",
            "127.0.0.1",
            "::1",
            "224.0.0.1",
            "ff00::1",
            "169.254.0.1",
            "fe80::1",
            "febf:ffff::1",
            "255.255.255.255",
            "::ffff:127.0.0.1",
            "::ffff:169.254.1.1",
            "::ffff:224.0.0.1",
            "::ffff:255.255.255.255",
            // Never a packet's source on the internet.
            "0.1.2.3",
            "0.255.255.255",
            "240.0.0.1",
            "255.255.255.254",
            "::ffff:240.0.0.1",
            "::203.0.113.9",
            "::0.0.0.2",
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.1.2.3",
            "64:ff9b::192.168.0.1",
            "64:ff9b::100.64.0.1",
            "64:ff9b::0.0.0.0",
            "2002:7f00:1::1",
            "2002:a01:203::1",
            "2002:c0a8:1::1",
            "2002::1",
            "fec0::1",
            "feff::1",
            "2001:db8:1:2::",
            "2001:db8::",
        ] {
            assert!(!is_grantable(ip(s)), "{s}");
        }
    }

    #[test]
    fn names_open_public_and_documentation_addresses_only() {
        for s in [
            "203.0.113.7",
            "8.8.8.8",
            "2001:db8::7",
            "2400:cb00::1",
            "::ffff:1.2.3.4",
        ] {
            assert!(is_followable(ip(s)), "{s}");
        }
        for s in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.10",
            "100.64.0.1",
            "100.127.255.254",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:10.0.0.1",
            "127.0.0.1",
            "169.254.0.1",
            "fe80::1",
            "0.0.0.0",
        ] {
            assert!(!is_followable(ip(s)), "{s}");
        }
    }

    #[test]
    fn hostile_values_do_not_panic_and_are_not_echoed() {
        let long = "9".repeat(4000);
        let weird = [
            long.as_str(),
            "1.2.3.4\t5",
            "ｆｅ８０::1",
            "１.２.３.４",
            "[]",
            "[",
            "]",
            "%",
            "::ffff:",
        ];
        for value in weird {
            for (method, name) in [
                (Forwarded, "X-Forwarded-For"),
                (Forwarded, "X-Real-IP"),
                (Declared, "ip"),
            ] {
                let h = head(&[(name, value)]);
                let r = resolve(method, ip(PROXY), &h, &trusted());
                assert_eq!(r, Err(Malformed), "{name}: {value:?}");
                let shown = r.map_err(|e| e.to_string()).err().unwrap_or_default();
                assert!(shown.len() <= 64 && !shown.contains(value), "{shown}");
            }
        }
        // Raw non-UTF-8 and control bytes straight from the parser.
        let raw = b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\xff\r\nip: \xc3\x28\r\n\r\n";
        let Parsed::Complete(h, _) = parse_head(raw) else {
            panic!("head with obs-text must parse");
        };
        assert_eq!(
            resolve(Forwarded, ip(PROXY), &h, &trusted()),
            Err(Malformed)
        );
        assert_eq!(resolve(Declared, ip(PROXY), &h, &trusted()), Err(Malformed));
    }

    #[test]
    fn random_header_values() {
        const ALPHABET: &[u8] = b"0123456789abcdef:.,[]% /\tf:01.2.3.4,::ffff:127.0.0.1,10.0.0.1";
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let trusted = trusted();
        for _ in 0..5000 {
            let len = (next() % 48) as usize;
            let value: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
                .collect();
            let h = head(&[
                ("X-Forwarded-For", value.as_str()),
                ("X-Real-IP", value.as_str()),
                ("ip", value.as_str()),
            ]);
            for method in [Peer, Forwarded, Declared] {
                for peer in [PROXY, CLIENT] {
                    let Ok(got) = resolve(method, ip(peer), &h, &trusted) else {
                        continue;
                    };
                    assert!(is_grantable(got) && got == canonical(got), "{value:?}");
                    // Whatever is granted was either the peer or literally named by the client.
                    let named = value
                        .split(',')
                        .filter_map(|v| v.trim().trim_matches(['[', ']']).parse::<IpAddr>().ok())
                        .any(|v| canonical(v) == got);
                    assert!(
                        got == ip(peer) || named,
                        "{method:?} {peer} {value:?} -> {got}"
                    );
                    if method == Peer || peer == CLIENT && method == Forwarded {
                        assert_eq!(got, ip(peer));
                    }
                }
            }
        }
    }

    #[test]
    fn refusal_display() {
        assert_eq!(Missing.to_string(), "client address header missing");
        assert_eq!(
            NotAllowed(ip("127.0.0.1")).to_string(),
            "address 127.0.0.1 may never be opened"
        );
        assert!(Malformed.to_string().len() <= 64);
    }

    /// Written against survivors of `make mutants` (cargo-mutants): each pins a behaviour a user
    /// would notice (a header believed or not, an address grantable or not). They share the
    /// helpers of `tests`.
    mod mutant_kills {
        use super::*;

        fn trusted() -> Vec<Cidr> {
            vec![Cidr::parse("10.0.0.0/8").expect("cidr")]
        }

        /// The longest textual address (45 bytes) in brackets is 47 bytes: the longest item read.
        #[test]
        fn the_longest_bracketed_address_is_believed() {
            let long = "2001:0db8:0000:0000:0000:0000:203.113.100.200";
            assert_eq!(long.len(), 45);
            let bracketed = format!("[{long}]");
            assert_eq!(bracketed.len(), 47);
            for name in ["X-Forwarded-For", "X-Real-IP"] {
                let h = head(&[(name, &bracketed)]);
                assert_eq!(
                    resolve(ClientIpMethod::Forwarded, ip("10.0.0.2"), &h, &trusted()),
                    Ok(ip(long)),
                    "{name}"
                );
                assert_eq!(forwarded_claim(&h, &trusted()), Some(ip(long)), "{name}");
            }
            let h = head(&[("ip", long)]);
            assert_eq!(
                resolve(ClientIpMethod::Declared, ip("203.0.113.1"), &h, &trusted()),
                Ok(ip(long))
            );
        }

        /// Addresses one bit pattern away from a refused range stay grantable.
        #[test]
        fn near_misses_of_refused_ranges_are_grantable() {
            for s in [
                // Not shared address space 100.64.0.0/10, inside NAT64 and 6to4.
                "64:ff9b::100.128.0.1",
                "2002:6480:1::1",
                // Not link-local fe80::/10 nor site-local fec0::/10.
                "140:1::1",
                "100:1::1",
                // An all-ones interface identifier is a host, not the subnet-router anycast.
                "::ffff:ffff:ffff:ffff",
            ] {
                assert!(is_grantable(ip(s)), "{s}");
            }
            for s in ["64:ff9b::100.127.255.254", "2002:647f:fffe::1"] {
                assert!(!is_grantable(ip(s)), "{s}");
            }
        }

        type Headers<'a> = &'a [(&'a str, &'a str)];

        /// The lockout reads the client a proxy chain vouches for: the right-most address that is
        /// not one of our proxies, else the left-most; the last X-Real-IP that parses wins.
        #[test]
        fn the_claimed_client_behind_a_chain_of_proxies() {
            let cases: &[(Headers, Option<&str>)] = &[
                (
                    &[("X-Forwarded-For", "198.51.100.5, 10.0.0.3")],
                    Some("198.51.100.5"),
                ),
                (
                    &[("X-Forwarded-For", "203.0.113.1, 198.51.100.5, 10.0.0.3")],
                    Some("198.51.100.5"),
                ),
                (
                    &[("X-Forwarded-For", "10.0.0.4, 10.0.0.3")],
                    Some("10.0.0.4"),
                ),
                (
                    &[
                        ("X-Forwarded-For", "10.0.0.4"),
                        ("X-Forwarded-For", "198.51.100.5"),
                    ],
                    Some("198.51.100.5"),
                ),
                (
                    &[("X-Real-IP", "junk"), ("X-Real-IP", "198.51.100.9")],
                    Some("198.51.100.9"),
                ),
                (
                    &[("X-Real-IP", "198.51.100.9"), ("X-Real-IP", "junk")],
                    Some("198.51.100.9"),
                ),
                (&[("X-Forwarded-For", "junk")], None),
                (&[], None),
            ];
            for (headers, want) in cases {
                assert_eq!(
                    forwarded_claim(&head(headers), &trusted()),
                    want.map(ip),
                    "{headers:?}"
                );
            }
            // resolve agrees on a clean chain.
            assert_eq!(
                resolve(
                    ClientIpMethod::Forwarded,
                    ip("10.0.0.2"),
                    &head(&[("X-Forwarded-For", "203.0.113.1, 198.51.100.5, 10.0.0.3")]),
                    &trusted()
                ),
                Ok(ip("198.51.100.5"))
            );
        }
    }
}
