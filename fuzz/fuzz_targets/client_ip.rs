//! Client-address resolution with arbitrary forwarded headers. Properties: no panic; an Ok
//! address is canonical and grantable (never unspecified, loopback, multicast, link-local);
//! METHOD 1 ignores headers; METHOD 2 ignores them unless the peer is a trusted proxy.
#![no_main]

use std::net::IpAddr;

use knockd::rules::cidr::{canonical, Cidr};
use knockd::knock::client_ip::{is_grantable, resolve};
use knockd::config::ClientIpMethod;
use knockd::knock::http::{parse_head, Parsed};
use libfuzzer_sys::fuzz_target;

const PEERS: &[&str] = &[
    "127.0.0.1",
    "::1",
    "::ffff:127.0.0.1",
    "203.0.113.5",
    "10.0.0.1",
    "2001:db8::5",
    "0.0.0.0",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let peer: IpAddr = PEERS[usize::from(sel) % PEERS.len()].parse().unwrap();
    let trusted = vec![
        Cidr::parse("127.0.0.0/8").unwrap(),
        Cidr::parse("::1").unwrap(),
        Cidr::parse("10.0.0.0/8").unwrap(),
    ];
    // Each input line becomes one header; its first byte picks the name.
    let mut head = b"GET /favico.ico HTTP/1.1\r\nHost: x\r\n".to_vec();
    for line in rest.split(|&b| b == b'\n').take(60) {
        let (name, value): (&[u8], &[u8]) = match line.split_first() {
            Some((b, v)) => match b % 4 {
                0 => (b"X-Forwarded-For", v),
                1 => (b"X-Real-IP", v),
                2 => (b"ip", v),
                _ => (b"x-forwarded-for", v),
            },
            None => continue,
        };
        head.extend_from_slice(name);
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let Parsed::Complete(req, _) = parse_head(&head) else {
        return;
    };
    let bare = match parse_head(b"GET /favico.ico HTTP/1.1\r\nHost: x\r\n\r\n") {
        Parsed::Complete(h, _) => h,
        _ => unreachable!(),
    };
    for method in [
        ClientIpMethod::Peer,
        ClientIpMethod::Forwarded,
        ClientIpMethod::Declared,
    ] {
        let r = resolve(method, peer, &req, &trusted);
        if let Ok(ip) = r {
            assert!(is_grantable(ip), "{method:?} {ip}");
            assert_eq!(ip, canonical(ip));
        }
        let peer_trusted = trusted.iter().any(|c| c.contains(canonical(peer)));
        if method == ClientIpMethod::Peer || (method == ClientIpMethod::Forwarded && !peer_trusted)
        {
            assert_eq!(
                r,
                resolve(method, peer, &bare, &trusted),
                "{method:?}: headers changed the result"
            );
        }
    }
});
