//! The knock decision: one request head and the peer it came from, judged against the knock
//! settings, the client keys, the time and the lockout state, into one [`Decision`]. A request
//! that is a key knock (`?c=` or `?k=` on the knock path) is judged by `key_knock`, any other
//! as a Referer knock here. Pure apart from the key state it is handed (the clients file's
//! reload cache and the replay cache): the caller applies the outcome (lockout bookkeeping,
//! logging, queueing the grant), so every branch is table-tested.

use std::net::IpAddr;

use ring::digest::{digest, SHA256};

use super::client_ip::{self, Refusal};
use super::http::RequestHead;
use super::key_knock::Keys;
use super::lockout;
use crate::config::{ClientIpMethod, KnockConfig};
use crate::keys::challenge::{self, Check, Target};
use crate::keys::RandomUnavailable;
use crate::log;
use crate::rules::{cidr, desc};
use crate::sync::lock;

/// Why a request is not a knock with the right secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    LockedOut,
    Method,
    Path,
    Secret,
    /// A `?c=` or `?k=` request that breaks the key knocks' grammar.
    Malformed,
    /// A key knock that failed verification.
    Key(crate::keys::challenge::Reason),
}

impl Reject {
    /// Whether this failure counts toward the lockout. A locked-out request was counted
    /// already; a knock with the right key refused for room in the replay cache or for its
    /// rate is no guess, and counting it would let one client's flood lock others out.
    pub(crate) fn counts(self) -> bool {
        use crate::keys::challenge::Reason;
        !matches!(
            self,
            Reject::LockedOut
                | Reject::Key(Reason::ReplayFull | Reason::ReplayShare | Reason::Rate)
        )
    }

    /// The `reason=` of the log line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reject::LockedOut => "locked-out",
            Reject::Method => "method",
            Reject::Path => "path",
            Reject::Secret => "secret",
            Reject::Malformed => "malformed",
            Reject::Key(reason) => reason.as_str(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Step 1 of a key knock: answer this body (`T.N.G`).
    Challenge(String),
    /// Failure answer. `key` is the lockout bucket the failure counts against (a locked-out
    /// request does not count again).
    Reject { reason: Reject, key: IpAddr },
    /// The right secret, but no address the firewall may be opened for. The label is not
    /// read here: the caller reads it for the log line once the answer is written.
    Refuse { peer: IpAddr, refusal: Refusal },
    /// Open the firewall for `ip` (or its /`prefix` network: a client's `v4_prefix=` or
    /// `v6_prefix=`), for the client's own `ttl=` or the lifetime it asked for (None: RULE_TTL).
    Grant {
        ip: IpAddr,
        label: String,
        key: IpAddr,
        ttl_secs: Option<u64>,
        prefix: Option<u8>,
    },
}

/// Judges one request: the one decision of the knock port. `now` is Unix seconds;
/// `is_locked` answers for a lockout bucket; `nonce` is called only for a challenge that is
/// issued.
pub(crate) fn decide(
    head: &RequestHead,
    peer: IpAddr,
    knock: &KnockConfig,
    keys: &Keys,
    now: i64,
    is_locked: impl Fn(IpAddr) -> bool,
    nonce: impl FnOnce() -> Result<[u8; 8], RandomUnavailable>,
) -> Decision {
    match judge_key(head, peer, knock, keys, now, &is_locked, nonce) {
        Some(d) => d,
        None => referer_knock(head, peer, knock, is_locked),
    }
}

/// Judges one request as a key knock: `None` when it is not one (another path, no `c=`/`k=`,
/// or not GET/HEAD), and the Referer decision applies, as before keys existed.
pub(super) fn judge_key(
    head: &RequestHead,
    peer: IpAddr,
    knock: &KnockConfig,
    keys: &Keys,
    now: i64,
    is_locked: &impl Fn(IpAddr) -> bool,
    nonce: impl FnOnce() -> Result<[u8; 8], RandomUnavailable>,
) -> Option<Decision> {
    if head.method() != "GET" && head.method() != "HEAD" {
        return None;
    }
    let target = challenge::parse_target(head.target(), &knock.path);
    if matches!(target, Target::OtherPath | Target::Plain) {
        return None;
    }
    let (peer, resolved, key) = whose(head, peer, knock);
    let reject = |reason| Some(Decision::Reject { reason, key });
    if is_locked(key) {
        return reject(Reject::LockedOut);
    }
    // The label is not kept: a refusal's log line reads it after the answer is written.
    let refuse = |refusal| Some(Decision::Refuse { peer, refusal });
    match target {
        // Answered above; the match must still name them.
        Target::OtherPath | Target::Plain => None,
        Target::Malformed => reject(Reject::Malformed),
        Target::Challenge { label } => match resolved {
            Err(refusal) => refuse(refusal),
            Ok(ip) => match nonce() {
                Ok(n) => Some(Decision::Challenge(challenge::issue(
                    &keys.secret,
                    &label,
                    &challenge::grant_address_text(ip),
                    now,
                    challenge::marked(n, keys.mark),
                ))),
                Err(e) => {
                    // getrandom failing is next to impossible on Linux; answer failure without
                    // counting it against the client (a locked-out answer counts nothing).
                    log::event(&format!("challenge result=failed error=\"{e}\""));
                    Some(Decision::Reject {
                        reason: Reject::LockedOut,
                        key,
                    })
                }
            },
        },
        Target::Knock(k) => {
            let ip = match resolved {
                Ok(ip) => ip,
                Err(refusal) => return refuse(refusal),
            };
            let clients = keys.clients();
            let addr_text = challenge::grant_address_text(ip);
            let check = Check {
                secret: &keys.secret,
                ttl_secs: keys.ttl_secs,
                rule_ttl_secs: keys.rule_ttl_secs,
                addr_text: &addr_text,
                now,
                clients: &clients,
                issued_after: keys.started,
                mark: keys.mark,
            };
            match challenge::verify(&k, &check, &mut lock(&keys.replay)) {
                Ok(grant) => Some(Decision::Grant {
                    ip,
                    label: grant.label,
                    key,
                    ttl_secs: grant.rule_ttl_secs,
                    prefix: match cidr::canonical(ip) {
                        IpAddr::V4(_) => grant.v4_prefix,
                        IpAddr::V6(_) => grant.v6_prefix,
                    },
                }),
                Err(reason) => reject(Reject::Key(reason)),
            }
        }
    }
}

/// A request that is not a key knock, judged as the original program's Referer knock.
///
/// Every request costs the same up to the decision, whatever the outcome: the client address
/// is resolved and the secret hashed before the lockout is consulted, and nothing else (the
/// label, a log line) is read or written until the decision is final. A wrong secret, a right
/// one that is refused, and a locked-out client are thus not told apart by timing.
fn referer_knock(
    head: &RequestHead,
    peer: IpAddr,
    knock: &KnockConfig,
    is_locked: impl Fn(IpAddr) -> bool,
) -> Decision {
    let (peer, resolved, key) = whose(head, peer, knock);
    // Without KNOCK_REFERER (clients file only) the Referer knock is off. The hash is computed
    // either way, so the cost does not depend on the outcome.
    let secret_ok = secret_matches(
        head.header("referer").unwrap_or(b""),
        knock.referer.expose(),
    ) && !knock.referer.expose().is_empty();
    if is_locked(key) {
        return Decision::Reject {
            reason: Reject::LockedOut,
            key,
        };
    }
    let is_get = head.method() == "GET" || head.method() == "HEAD";
    if !is_get || head.path() != knock.path.as_bytes() || !secret_ok {
        let reason = if !is_get {
            Reject::Method
        } else if head.path() != knock.path.as_bytes() {
            Reject::Path
        } else {
            Reject::Secret
        };
        return Decision::Reject { reason, key };
    }
    match resolved {
        Ok(ip) => Decision::Grant {
            ip,
            label: desc::sanitize_label(head.header("location").unwrap_or(b"")),
            key,
            ttl_secs: None,
            prefix: None,
        },
        Err(refusal) => Decision::Refuse { peer, refusal },
    }
}

/// The canonical peer, the address a knock would open, and the lockout bucket it counts
/// against. Shared with the key knocks (`key_knock`).
pub(crate) fn whose(
    head: &RequestHead,
    peer: IpAddr,
    knock: &KnockConfig,
) -> (IpAddr, Result<IpAddr, Refusal>, IpAddr) {
    let peer = cidr::canonical(peer);
    let resolved = client_ip::resolve(knock.client_ip_method, peer, head, &knock.trusted_proxies);
    (peer, resolved, lockout_key(head, peer, knock))
}

/// The lockout bucket of a request. Behind a trusted proxy the peer is the proxy: the failure
/// counts against the client it vouches for, read leniently (a junk item in X-Forwarded-For
/// must not switch the lockout off), else against one shared bucket for unreadable forwarded
/// headers; never against the proxy itself, which would lock everyone out. A self-declared
/// address (METHOD 3) is the attacker's choice, so there the peer counts.
fn lockout_key(head: &RequestHead, peer: IpAddr, knock: &KnockConfig) -> IpAddr {
    let trusted = &knock.trusted_proxies;
    if knock.client_ip_method != ClientIpMethod::Forwarded
        || !trusted.iter().any(|c| c.contains(peer))
    {
        return lockout::key(peer);
    }
    match client_ip::forwarded_claim(head, trusted) {
        Some(ip) if ip != peer => lockout::key(ip),
        _ => lockout::UNREADABLE,
    }
}

/// Compares through SHA-256 so that neither the content nor the length of the secret leaks
/// through timing.
pub(crate) fn secret_matches(given: &[u8], secret: &str) -> bool {
    let (a, b) = (digest(&SHA256, given), digest(&SHA256, secret.as_bytes()));
    crate::keys::ct_eq(a.as_ref(), b.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::knock::http::{parse_head, Parsed};
    use crate::rules::cidr::Cidr;

    const SECRET: &str = "https://www.baidu..com/";

    fn knock(method: ClientIpMethod) -> KnockConfig {
        KnockConfig {
            message_success: "ok".into(),
            message_failure: "no".into(),
            referer: Secret::new(SECRET),
            path: "/favico.ico".into(),
            client_ip_method: method,
            bind: "0.0.0.0:8080".parse().unwrap(),
            trusted_proxies: vec![Cidr::parse("127.0.0.0/8").unwrap()],
        }
    }

    fn head(text: &str) -> RequestHead {
        match parse_head(text.as_bytes()) {
            Parsed::Complete(h, _) => h,
            _ => panic!("test head does not parse: {text:?}"),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn secret_comparison() {
        assert!(secret_matches(SECRET.as_bytes(), SECRET));
        assert!(!secret_matches(b"https://www.baidu..com", SECRET));
        assert!(!secret_matches(b"", "x"));
    }

    #[test]
    fn decisions() {
        let ok =
            format!("GET /favico.ico HTTP/1.1\r\nReferer: {SECRET}\r\nLocation: Office_01\r\n\r\n");
        let never = |_: IpAddr| false;
        let peer = ip("203.0.113.5");
        let key = peer;
        let cases: Vec<(&str, String, ClientIpMethod, &str, Decision)> = vec![
            (
                "right secret",
                ok.clone(),
                ClientIpMethod::Peer,
                "203.0.113.5",
                Decision::Grant { ip: peer, label: "Office_01".into(), key, ttl_secs: None, prefix: None },
            ),
            (
                "wrong secret",
                "GET /favico.ico HTTP/1.1\r\nReferer: nope\r\n\r\n".into(),
                ClientIpMethod::Peer,
                "203.0.113.5",
                Decision::Reject { reason: Reject::Secret, key },
            ),
            (
                "no referer",
                "GET /favico.ico HTTP/1.1\r\n\r\n".into(),
                ClientIpMethod::Peer,
                "203.0.113.5",
                Decision::Reject { reason: Reject::Secret, key },
            ),
            (
                "other path",
                format!("GET /index.html HTTP/1.1\r\nReferer: {SECRET}\r\n\r\n"),
                ClientIpMethod::Peer,
                "203.0.113.5",
                Decision::Reject { reason: Reject::Path, key },
            ),
            (
                "POST",
                format!("POST /favico.ico HTTP/1.1\r\nReferer: {SECRET}\r\nContent-Length: 0\r\n\r\n"),
                ClientIpMethod::Peer,
                "203.0.113.5",
                Decision::Reject { reason: Reject::Method, key },
            ),
            (
                "HEAD counts as GET",
                format!("HEAD /favico.ico HTTP/1.1\r\nReferer: {SECRET}\r\n\r\n"),
                ClientIpMethod::Peer,
                "203.0.113.5",
                Decision::Grant { ip: peer, label: desc::sanitize_label(b""), key, ttl_secs: None, prefix: None },
            ),
            (
                "loopback peer is refused after the secret",
                ok.clone(),
                ClientIpMethod::Peer,
                "127.0.0.1",
                Decision::Refuse {
                    peer: ip("127.0.0.1"),
                    refusal: Refusal::NotAllowed(ip("127.0.0.1")),
                },
            ),
            (
                "trusted proxy: the forwarded client is granted and keyed",
                format!("GET /favico.ico HTTP/1.1\r\nReferer: {SECRET}\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n"),
                ClientIpMethod::Forwarded,
                "127.0.0.1",
                Decision::Grant { ip: ip("198.51.100.7"), label: desc::sanitize_label(b""), key: ip("198.51.100.7"), ttl_secs: None, prefix: None },
            ),
            (
                "untrusted peer: forwarded headers are ignored",
                format!("GET /favico.ico HTTP/1.1\r\nReferer: {SECRET}\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n"),
                ClientIpMethod::Forwarded,
                "203.0.113.5",
                Decision::Grant { ip: peer, label: desc::sanitize_label(b""), key, ttl_secs: None, prefix: None },
            ),
            (
                "declared address: the peer is the lockout key",
                format!("GET /favico.ico HTTP/1.1\r\nReferer: {SECRET}\r\nip: 198.51.100.9\r\n\r\n"),
                ClientIpMethod::Declared,
                "203.0.113.5",
                Decision::Grant { ip: ip("198.51.100.9"), label: desc::sanitize_label(b""), key, ttl_secs: None, prefix: None },
            ),
            (
                "IPv6 clients are keyed by their /64",
                ok.clone(),
                ClientIpMethod::Peer,
                "2001:db8:1:2:3:4:5:6",
                Decision::Grant {
                    ip: ip("2001:db8:1:2:3:4:5:6"),
                    label: "Office_01".into(),
                    key: ip("2001:db8:1:2::"),
                    ttl_secs: None,
                    prefix: None,
                },
            ),
        ];
        for (name, text, method, from, want) in cases {
            assert_eq!(
                referer_knock(&head(&text), ip(from), &knock(method), never),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn a_locked_out_bucket_is_rejected_before_the_secret() {
        let ok = format!("GET /favico.ico HTTP/1.1\r\nReferer: {SECRET}\r\n\r\n");
        let locked = |k: IpAddr| k == ip("203.0.113.5");
        assert_eq!(
            referer_knock(
                &head(&ok),
                ip("203.0.113.5"),
                &knock(ClientIpMethod::Peer),
                locked
            ),
            Decision::Reject {
                reason: Reject::LockedOut,
                key: ip("203.0.113.5")
            }
        );
        assert!(matches!(
            referer_knock(
                &head(&ok),
                ip("203.0.113.6"),
                &knock(ClientIpMethod::Peer),
                locked
            ),
            Decision::Grant { .. }
        ));
    }

    #[test]
    fn without_knock_referer_the_referer_knock_is_off() {
        let mut k = knock(ClientIpMethod::Peer);
        k.referer = Secret::new("");
        for text in [
            "GET /favico.ico HTTP/1.1\r\nReferer: \r\n\r\n",
            "GET /favico.ico HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                referer_knock(&head(text), ip("203.0.113.5"), &k, |_| false),
                Decision::Reject {
                    reason: Reject::Secret,
                    key: ip("203.0.113.5")
                },
                "{text:?}"
            );
        }
    }

    /// With a trusted peer, junk in the forwarded headers still counts
    /// against the right-most address that parses, else against one shared bucket; the proxy
    /// itself is never the key.
    #[test]
    fn lockout_keys_behind_a_trusted_proxy() {
        let never = |_: IpAddr| false;
        let wrong =
            |extra: &str| format!("GET /favico.ico HTTP/1.1\r\nReferer: nope\r\n{extra}\r\n");
        let key_of = |text: String, from: &str, method: ClientIpMethod| match referer_knock(
            &head(&text),
            ip(from),
            &knock(method),
            never,
        ) {
            Decision::Reject { key, .. } => key,
            other => panic!("{other:?}"),
        };
        let f = ClientIpMethod::Forwarded;
        let cases: Vec<(&str, String, &str, IpAddr)> = vec![
            (
                "nginx junk item",
                wrong("X-Forwarded-For: junk, 198.51.100.5\r\n"),
                "127.0.0.1",
                ip("198.51.100.5"),
            ),
            (
                "empty first item",
                wrong("X-Forwarded-For: , 198.51.100.5\r\n"),
                "127.0.0.1",
                ip("198.51.100.5"),
            ),
            (
                "HAProxy second line",
                wrong("X-Forwarded-For: junk\r\nX-Forwarded-For: 198.51.100.5\r\n"),
                "127.0.0.1",
                ip("198.51.100.5"),
            ),
            (
                "junk after the address",
                wrong("X-Forwarded-For: 198.51.100.5, junk\r\n"),
                "127.0.0.1",
                ip("198.51.100.5"),
            ),
            (
                "nothing readable",
                wrong("X-Forwarded-For: junk, also junk\r\n"),
                "127.0.0.1",
                lockout::UNREADABLE,
            ),
            (
                "no header at all",
                wrong(""),
                "127.0.0.1",
                lockout::UNREADABLE,
            ),
            (
                "the proxy names itself",
                wrong("X-Forwarded-For: 127.0.0.1\r\n"),
                "127.0.0.1",
                lockout::UNREADABLE,
            ),
            (
                "X-Real-IP preferred",
                wrong("X-Real-IP: 198.51.100.9\r\nX-Forwarded-For: 198.51.100.5\r\n"),
                "127.0.0.1",
                ip("198.51.100.9"),
            ),
            (
                "junk X-Real-IP",
                wrong("X-Real-IP: junk\r\nX-Forwarded-For: 198.51.100.5\r\n"),
                "127.0.0.1",
                ip("198.51.100.5"),
            ),
            (
                "IPv6 by /64",
                wrong("X-Forwarded-For: x, 2001:db8:5:6::7\r\n"),
                "127.0.0.1",
                ip("2001:db8:5:6::"),
            ),
            (
                "untrusted peer: the peer",
                wrong("X-Forwarded-For: junk\r\n"),
                "203.0.113.5",
                ip("203.0.113.5"),
            ),
        ];
        for (name, text, from, want) in cases {
            assert_eq!(key_of(text, from, f), want, "{name}");
        }
    }

    /// The secret is hashed even when the client is locked out, and the label
    /// is not read for a refusal.
    #[test]
    fn locked_out_and_refused_decisions_carry_nothing_extra() {
        let ok = format!("GET /favico.ico HTTP/1.1\r\nReferer: {SECRET}\r\nLocation: x\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n");
        assert_eq!(
            referer_knock(
                &head(&ok),
                ip("127.0.0.1"),
                &knock(ClientIpMethod::Forwarded),
                |_| false
            ),
            Decision::Refuse {
                peer: ip("127.0.0.1"),
                refusal: Refusal::NotAllowed(ip("127.0.0.1"))
            }
        );
    }

    /// Written against survivors of `make mutants` (cargo-mutants): each pins a behaviour a user
    /// would notice (a secret accepted or refused, the bucket a failure counts against, the reason
    /// in the log line). They share the helpers of `tests`.
    mod mutant_kills {
        use super::*;
        use crate::keys::challenge::Reason;

        const SECRET: &str = "https://www.baidu..com/";

        /// The SHA-256 digest of this wrong secret has the same XOR of all its bytes as the right
        /// one's, while all 32 bytes differ: a fold with `^` instead of `|` would accept it.
        const XOR_TWIN: &str = "https://www.00054..com/";

        #[test]
        fn a_wrong_secret_whose_digest_bytes_xor_alike_is_refused() {
            assert!(!secret_matches(XOR_TWIN.as_bytes(), SECRET));
            let text = format!("GET /favico.ico HTTP/1.1\r\nReferer: {XOR_TWIN}\r\n\r\n");
            assert_eq!(
                referer_knock(
                    &head(&text),
                    ip("203.0.113.5"),
                    &knock(ClientIpMethod::Peer),
                    |_| false
                ),
                Decision::Reject {
                    reason: Reject::Secret,
                    key: ip("203.0.113.5")
                }
            );
        }

        #[test]
        fn wrong_secrets_differing_in_several_bytes_are_all_refused() {
            // 2000 secrets of the right length that differ from it in several bytes; with a
            // one-byte fold that can cancel out, about 8 of them would pass.
            for i in 0..2000 {
                let wrong = format!("https://www.{i:05}..com/");
                assert_eq!(wrong.len(), SECRET.len());
                assert!(!secret_matches(wrong.as_bytes(), SECRET), "{wrong}");
            }
            assert!(secret_matches(SECRET.as_bytes(), SECRET));
            assert!(secret_matches(b"", ""), "equal empty inputs compare equal");
        }

        /// A right key refused for room or rate is no guess: it must not lock anyone out.
        #[test]
        fn which_rejections_count_toward_the_lockout() {
            let cases = [
                (Reject::LockedOut, false),
                (Reject::Key(Reason::ReplayFull), false),
                (Reject::Key(Reason::ReplayShare), false),
                (Reject::Key(Reason::Rate), false),
                (Reject::Key(Reason::Replay), true),
                (Reject::Key(Reason::Signature), true),
                (Reject::Secret, true),
                (Reject::Malformed, true),
                (Reject::Path, true),
            ];
            for (reject, want) in cases {
                assert_eq!(reject.counts(), want, "{reject:?}");
            }
        }

        #[test]
        fn the_log_reason_names_each_rejection() {
            let cases = [
                (Reject::LockedOut, "locked-out"),
                (Reject::Method, "method"),
                (Reject::Path, "path"),
                (Reject::Secret, "secret"),
                (Reject::Malformed, "malformed"),
                (Reject::Key(Reason::Signature), "signature"),
                (Reject::Key(Reason::Replay), "replay"),
            ];
            for (reject, want) in cases {
                assert_eq!(reject.as_str(), want, "{reject:?}");
            }
        }

        /// With METHOD 1 or 3 a trusted peer is still only a peer: its forwarded headers do not
        /// pick the lockout bucket.
        #[test]
        fn only_the_forwarded_method_reads_the_bucket_from_forwarded_headers() {
            let text = "GET /favico.ico HTTP/1.1\r\nReferer: nope\r\nX-Forwarded-For: 198.51.100.5\r\nip: 198.51.100.9\r\n\r\n";
            let cases = [
                (ClientIpMethod::Peer, ip("127.0.0.1")),
                (ClientIpMethod::Declared, ip("127.0.0.1")),
                (ClientIpMethod::Forwarded, ip("198.51.100.5")),
            ];
            for (method, want) in cases {
                assert_eq!(
                    referer_knock(&head(text), ip("127.0.0.1"), &knock(method), |_| false),
                    Decision::Reject {
                        reason: Reject::Secret,
                        key: want
                    },
                    "{method:?}"
                );
            }
        }

        #[test]
        fn whose_gives_the_canonical_peer_the_address_and_the_bucket() {
            let text = "GET /favico.ico HTTP/1.1\r\nX-Forwarded-For: 2001:db8:5:6::7\r\n\r\n";
            let (peer, resolved, key) = whose(
                &head(text),
                ip("::ffff:127.0.0.1"),
                &knock(ClientIpMethod::Forwarded),
            );
            assert_eq!(peer, ip("127.0.0.1"));
            assert_eq!(resolved, Ok(ip("2001:db8:5:6::7")));
            assert_eq!(key, ip("2001:db8:5:6::"));
        }

        #[test]
        fn a_locked_bucket_is_refused_whatever_the_request() {
            let locked = |_: IpAddr| true;
            for text in [
                format!("GET /favico.ico HTTP/1.1\r\nReferer: {SECRET}\r\n\r\n"),
                "POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_string(),
            ] {
                assert_eq!(
                    referer_knock(
                        &head(&text),
                        ip("203.0.113.5"),
                        &knock(ClientIpMethod::Peer),
                        locked
                    ),
                    Decision::Reject {
                        reason: Reject::LockedOut,
                        key: ip("203.0.113.5")
                    }
                );
            }
        }

        #[test]
        fn the_reason_is_the_first_thing_wrong_method_then_path_then_secret() {
            let cases = [
                (
                    "POST /index.html HTTP/1.1\r\nReferer: nope\r\nContent-Length: 0\r\n\r\n",
                    Reject::Method,
                ),
                (
                    "GET /index.html HTTP/1.1\r\nReferer: nope\r\n\r\n",
                    Reject::Path,
                ),
                (
                    "HEAD /index.html HTTP/1.1\r\nReferer: nope\r\n\r\n",
                    Reject::Path,
                ),
                (
                    "HEAD /favico.ico HTTP/1.1\r\nReferer: nope\r\n\r\n",
                    Reject::Secret,
                ),
            ];
            for (text, want) in cases {
                assert_eq!(
                    referer_knock(
                        &head(text),
                        ip("203.0.113.5"),
                        &knock(ClientIpMethod::Peer),
                        |_| false
                    ),
                    Decision::Reject {
                        reason: want,
                        key: ip("203.0.113.5")
                    },
                    "{text:?}"
                );
            }
        }
    }
}
