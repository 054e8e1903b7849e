//! Issuing and verifying challenges (pure: time, nonce, address and secret are arguments).
//!
//! The knock path is expected to do, per request on KNOCK_REQUEST_PATH:
//!
//! ```text
//! match challenge::parse_target(target, knock_path) {
//!     Target::OtherPath | Target::Plain => today's handling (Referer knock or failure),
//!     Target::Malformed => failure, counts toward the lockout,          log reason=malformed
//!     Target::Challenge { label } => lockout? failure : body = issue(S, label, A, now, nonce)
//!     Target::Knock(k) => lockout? failure : verify(&k, ...) → Ok(grant) or Err(reason),
//!                         each Err counting toward the lockout,         log reason=<reason>
//! }
//! ```
//!
//! with A = [`grant_address_text`] of the address the knock would open. Grammar comes first,
//! then the caller's lockout check, then [`verify`] runs the remaining checks in the issue's
//! order.

use std::fmt;
use std::net::IpAddr;

use ring::{digest, hmac};

use super::clients::{Clients, Key, MAX_LABEL};
use super::replay::{Replay, ReplayCache};

/// Domain separation of G: a tag for another purpose can never be mistaken for a challenge.
const G_CONTEXT: &str = "knockd-c1";
/// Default KNOCK_CHALLENGE_TTL in seconds (the configuration's table says `60s`; its test
/// checks they agree).
#[cfg(test)]
pub(crate) const DEFAULT_TTL_SECS: u64 = 60;
/// A challenge from up to this many seconds in the future is accepted (`T <= now + 1`), for
/// several knockd behind one name whose clocks differ slightly.
const FUTURE_SLACK: i64 = 1;

/// The challenge (step-1 answer) `T.N.G` for this label and address.
pub(crate) fn issue(
    secret: &[u8],
    label: &str,
    addr_text: &str,
    now: i64,
    nonce: [u8; 8],
) -> String {
    let n = hex::encode(nonce);
    let g = hex::encode(tag(secret, label, &now.to_string(), &n, addr_text));
    format!("{now}.{n}.{g}")
}

/// A fresh nonce N for [`issue`].
pub(crate) fn new_nonce() -> Result<[u8; 8], super::RandomUnavailable> {
    super::random()
}

/// The nonce of a challenge issued by the process whose mark this is: its first four bytes
/// are the mark (random per process), the other four stay random. [`verify`] accepts a
/// challenge of the process's own start second only with its mark, so a restart need not wait
/// for the next second to tell its challenges from its predecessor's.
pub(crate) fn marked(nonce: [u8; 8], mark: [u8; 4]) -> [u8; 8] {
    let mut n = nonce;
    n[..4].copy_from_slice(&mark);
    n
}

/// A per-process secret S, when KNOCK_CHALLENGE_SECRET is not set. A set secret is used as its
/// UTF-8 bytes.
pub(crate) fn new_secret() -> Result<[u8; 32], super::RandomUnavailable> {
    super::random()
}

/// First 16 bytes of HMAC-SHA256(S, `knockd-c1|LABEL|T|N|A`); `t` and `n` in canonical form.
fn tag(secret: &[u8], label: &str, t: &str, n: &str, addr_text: &str) -> [u8; 16] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let full = hmac::sign(
        &key,
        format!("{G_CONTEXT}|{label}|{t}|{n}|{addr_text}").as_bytes(),
    );
    let mut out = [0u8; 16];
    out.copy_from_slice(&full.as_ref()[..16]);
    out
}

/// A: the address text bound into G. IPv4 (also IPv4-mapped IPv6) as dotted text; IPv6 as its
/// /64 in canonical form (`2001:db8:1:2::/64`, std's RFC 5952 Display of the masked address),
/// so that a client whose IPv6 privacy address changes between the two steps still succeeds.
pub(crate) fn grant_address_text(ip: IpAddr) -> String {
    match crate::rules::cidr::canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        v6 => format!("{}/64", crate::rules::cidr::network(v6, 64)),
    }
}

/// H: lowercase hex SHA-256 of `KEY:LABEL:T.N.G:KEY`. Also what a client computes. With a
/// requested rule lifetime L the signed text is `T.N.G.L` instead of `T.N.G` (see
/// [`signed_text`]).
pub(crate) fn response_hash(key: &str, label: &str, challenge: &str) -> String {
    hex::encode(response_digest(key, label, challenge))
}

fn response_digest(key: &str, label: &str, challenge: &str) -> [u8; 32] {
    let mut h = digest::Context::new(&digest::SHA256);
    for part in [key, ":", label, ":", challenge, ":", key] {
        h.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(h.finish().as_ref());
    out
}

/// The text H signs after `KEY:LABEL:` for a challenge `T.N.G`: the challenge itself, or with
/// a requested lifetime `T.N.G.L` (L in decimal seconds). The lifetime is signed so that a
/// relay cannot lengthen (or strip) it: a knock without L is signed over a different text, so
/// moving H between the two forms fails the signature check. The two texts cannot collide:
/// `T.N.G` has exactly three dotted fields, `T.N.G.L` four, and no field holds a `:`.
pub(crate) fn signed_text(challenge: &str, lifetime_secs: Option<u64>) -> String {
    match lifetime_secs {
        Some(l) => format!("{challenge}.{l}"),
        None => challenge.to_string(),
    }
}

/// The shortest lifetime a knock may ask for: the shortest rule lifetime knockd writes at all
/// (RULE_TTL's floor; a rule's expiry is written to the minute).
pub(crate) const MIN_LIFETIME_SECS: u64 = crate::rules::desc::MIN_TTL_SECS;
/// At most this many decimal digits of L (36500d, the longest duration knockd reads, has 10).
const MAX_LIFETIME_DIGITS: usize = 10;

/// The rule lifetime a verified knock gets: without a request, the client's `ttl=` (`None` =
/// RULE_TTL, exactly as before lifetimes could be asked for); with one, the request capped by
/// the client's `ttl=`, or by RULE_TTL (`rule_ttl_secs`) when the line has none. A request is at
/// least [`MIN_LIFETIME_SECS`] by grammar, and every cap is too, so the floor always holds.
pub(crate) fn lifetime(
    requested: Option<u64>,
    client_ttl: Option<u64>,
    rule_ttl_secs: u64,
) -> Option<u64> {
    match requested {
        None => client_ttl,
        Some(r) => Some(r.min(client_ttl.unwrap_or(rule_ttl_secs))),
    }
}

/// A step-2 knock after its grammar was checked. T, N, G are kept in canonical (lowercase)
/// form; H as bytes.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Knock {
    pub(crate) label: String,
    pub(crate) t: i64,
    n: String,
    g: [u8; 16],
    /// L: the rule lifetime the client asks for, in seconds (`k=LABEL.T.N.G.L.H`); `None` for
    /// today's five-field knock.
    pub(crate) lifetime: Option<u64>,
    h: [u8; 32],
}

impl Knock {
    /// The challenge text `T.N.G` as knockd issued it (lowercase hex).
    pub(crate) fn challenge(&self) -> String {
        format!("{}.{}.{}", self.t, self.n, hex::encode(self.g))
    }
}

/// Debug shows neither H nor G.
impl fmt::Debug for Knock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Knock {{ label: {:?}, t: {}, lifetime: {:?} }}",
            self.label, self.t, self.lifetime
        )
    }
}

/// What a request target on the knock port is, as far as key knocks are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// The path is not KNOCK_REQUEST_PATH.
    OtherPath,
    /// The knock path without `c=` or `k=` (no query, or a query of other parameters, e.g. a
    /// cache-buster): not a key knock; the Referer knock decides, as before keys existed.
    Plain,
    /// `?c=LABEL`.
    Challenge { label: String },
    /// `?k=LABEL.T.N.G.H`, or `?k=LABEL.T.N.G.L.H` asking for a rule lifetime of L seconds.
    Knock(Knock),
    /// A `c=` or `k=` parameter that breaks the grammar, or comes with other parameters.
    /// Counts toward the lockout; log `reason=malformed`.
    Malformed,
}

/// Splits a request target (as on the request line, not percent-decoded) at the first `?`,
/// compares the path with `knock_path` byte for byte, and parses the query.
///
/// Decisions: the query must be exactly one parameter `c=…` or `k=…` (`c=a&x=1`, `c=a&k=…`,
/// `c=a&c=a`, a `#fragment` or any percent-encoding are malformed: labels and hex never need
/// encoding, and one spelling per knock leaves nothing for a proxy to read differently).
pub(crate) fn parse_target(target: &[u8], knock_path: &str) -> Target {
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    if path != knock_path.as_bytes() {
        return Target::OtherPath;
    }
    let Some(query) = query else {
        return Target::Plain;
    };
    let is_key_param = |p: &[u8]| p.starts_with(b"c=") || p.starts_with(b"k=");
    let params: Vec<&[u8]> = query.split(|&b| b == b'&').collect();
    if !params.iter().any(|p| is_key_param(p)) {
        return Target::Plain;
    }
    let [param] = params[..] else {
        return Target::Malformed;
    };
    let Ok(param) = std::str::from_utf8(param) else {
        return Target::Malformed;
    };
    if let Some(label) = param.strip_prefix("c=") {
        return match is_label(label) {
            true => Target::Challenge {
                label: label.to_string(),
            },
            false => Target::Malformed,
        };
    }
    match param.strip_prefix("k=").and_then(parse_knock) {
        Some(k) => Target::Knock(k),
        None => Target::Malformed,
    }
}

fn is_label(s: &str) -> bool {
    super::clients::is_label(s) && s.len() <= MAX_LABEL
}

/// `LABEL.T.N.G.H` or `LABEL.T.N.G.L.H`: T canonical decimal (no sign, no leading zero) within
/// i64; N 16 hex, G 32 hex, H 64 hex, each in either case; L canonical decimal seconds, at
/// least [`MIN_LIFETIME_SECS`], at most 10 digits.
///
/// Decision: an L under the floor is malformed, not raised to it. The client signed a request
/// for less exposure than knockd can give; granting more than was asked for is the wrong
/// direction to round, and neither `--knock --ttl` nor the printed clients can send one.
fn parse_knock(text: &str) -> Option<Knock> {
    let parts: Vec<&str> = text.split('.').collect();
    let (label, t, n, g, lifetime, h) = match parts[..] {
        [label, t, n, g, h] => (label, t, n, g, None, h),
        [label, t, n, g, l, h] => (label, t, n, g, Some(l), h),
        _ => return None,
    };
    if !is_label(label) {
        return None;
    }
    let t: i64 = canonical_decimal(t, 19)?.parse().ok()?;
    let lifetime = match lifetime {
        None => None,
        Some(l) => {
            let secs: u64 = canonical_decimal(l, MAX_LIFETIME_DIGITS)?.parse().ok()?;
            (secs >= MIN_LIFETIME_SECS).then_some(secs)?;
            Some(secs)
        }
    };
    let n_bytes: [u8; 8] = hex_exact(n)?;
    Some(Knock {
        label: label.to_string(),
        t,
        n: hex::encode(n_bytes),
        g: hex_exact(g)?,
        lifetime,
        h: hex_exact(h)?,
    })
}

/// `s` if it is a decimal number of at most `max_digits` in its one spelling (no sign, no
/// leading zero): the signed text is rebuilt from the parsed value, so two spellings of one
/// value would be two knocks.
fn canonical_decimal(s: &str, max_digits: usize) -> Option<&str> {
    let ok = !s.is_empty()
        && s.len() <= max_digits
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then_some(s)
}

fn hex_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    (s.len() == 2 * N).then_some(())?;
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Why a step-2 knock was refused; `as_str` is the log's `reason=` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// T outside `now - ttl ..= now + 1`, or not after the serving knockd started.
    Stale,
    /// G is not ours for this label, T, N and address (forged, tampered, or another address).
    Challenge,
    /// No client has this label.
    Unknown,
    /// The client's `expires=` day has passed.
    Expired,
    /// H does not match the client's key.
    Signature,
    /// This G was already used.
    Replay,
    /// The replay cache is full of live entries: refused rather than forgetting one.
    ReplayFull,
    /// This client holds its whole share of the replay cache: refused rather than forgetting
    /// one of its live entries, and rather than taking another client's room.
    ReplayShare,
    /// This client made `replay::GRANTS_PER_MINUTE` knocks in the last 60 seconds.
    Rate,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Stale => "stale",
            Reason::Challenge => "challenge",
            Reason::Unknown => "unknown",
            Reason::Expired => "expired",
            Reason::Signature => "signature",
            Reason::Replay => "replay",
            Reason::ReplayFull => "replay-full",
            Reason::ReplayShare => "replay-share",
            Reason::Rate => "rate",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Reason::Stale => "the challenge is older than KNOCK_CHALLENGE_TTL (or from the future)",
            Reason::Challenge => {
                "the challenge was not issued by knockd for this label and address"
            }
            Reason::Unknown => "no client has this label",
            Reason::Expired => "the client's key has expired",
            Reason::Signature => "the response does not match the client's key",
            Reason::Replay => "this challenge was already used",
            Reason::ReplayFull => "the replay cache is full (raise KNOCK_REPLAY_CACHE)",
            Reason::ReplayShare => {
                "the client holds its share of the replay cache (KNOCK_REPLAY_CACHE / clients)"
            }
            Reason::Rate => "the client knocked too often in the last minute",
        };
        write!(f, "reason={}: {what}", self.as_str())
    }
}

/// A verified knock: open the firewall for this request's address with this label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) label: String,
    /// The rule lifetime ([`lifetime`]): the requested one capped, or the client's `ttl=`;
    /// `None` = the configured rule lifetime.
    pub(crate) rule_ttl_secs: Option<u64>,
    /// The client's `v4_prefix=` and `v6_prefix=` (`None`: the address alone).
    pub(crate) v4_prefix: Option<u8>,
    pub(crate) v6_prefix: Option<u8>,
}

/// Everything [`verify`] needs besides the knock and the replay cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Check<'a> {
    /// S.
    pub(crate) secret: &'a [u8],
    /// KNOCK_CHALLENGE_TTL in seconds.
    pub(crate) ttl_secs: u64,
    /// RULE_TTL in seconds: the cap of a requested lifetime for a client without `ttl=`.
    pub(crate) rule_ttl_secs: u64,
    /// [`grant_address_text`] of the address this request would open.
    pub(crate) addr_text: &'a str,
    pub(crate) now: i64,
    pub(crate) clients: &'a Clients,
    /// Challenges with T at or before this Unix second are stale unless N carries `mark`:
    /// the serving knockd's start (see `knock::key_knock::Keys`). Its replay cache is in
    /// memory, so a knock used before a restart would otherwise pass again after it, with
    /// KNOCK_CHALLENGE_SECRET fixed.
    pub(crate) issued_after: i64,
    /// The serving process's nonce mark (see [`marked`]): a challenge of the start's own
    /// second is this process's own, and fresh, only with it.
    pub(crate) mark: [u8; 4],
}

/// Key hashed for labels without a (live) client, so that every refusal costs the same work.
const DUMMY_KEY: &str = "knockd-dummy-key-never-valid-0000000000000";

/// The checks after grammar and lockout, in the issue's order: freshness, G, client exists,
/// not expired, H, replay; on success G is recorded in `replay`.
///
/// Timing: every call computes one HMAC (G) and one SHA-256 (H, with a fixed dummy key when
/// there is no client) whatever fails first, and compares both in constant time; the first
/// failing check is chosen only afterwards. So the answer time does not tell a prober whether
/// a label exists or which check failed (the label lookup is a scan of a small list and the
/// only remaining difference; the response body is the same in every case anyway). The
/// replay cache is touched only once H is verified, so unauthenticated traffic cannot fill it.
pub(crate) fn verify(
    knock: &Knock,
    check: &Check<'_>,
    replay: &mut ReplayCache,
) -> Result<Grant, Reason> {
    let t = i128::from(knock.t);
    let now = i128::from(check.now);
    let fresh = now - i128::from(check.ttl_secs) <= t
        && t <= now + i128::from(FUTURE_SLACK)
        && (t > i128::from(check.issued_after) || knock.n.starts_with(&hex::encode(check.mark)));

    let g = tag(
        check.secret,
        &knock.label,
        &knock.t.to_string(),
        &knock.n,
        check.addr_text,
    );
    let g_ok = super::ct_eq(&g, &knock.g);

    let client = check.clients.get(&knock.label);
    let expired = client.is_some_and(|c| c.is_expired(check.now));
    let key: &str = client.map_or(DUMMY_KEY, |c: &super::clients::Client| Key::expose(&c.key));
    let signed = signed_text(&knock.challenge(), knock.lifetime);
    let h = response_digest(key, &knock.label, &signed);
    let h_ok = super::ct_eq(&h, &knock.h);

    if !fresh {
        return Err(Reason::Stale);
    }
    if !g_ok {
        return Err(Reason::Challenge);
    }
    let Some(client) = client else {
        return Err(Reason::Unknown);
    };
    if expired {
        return Err(Reason::Expired);
    }
    if !h_ok {
        return Err(Reason::Signature);
    }
    let until = knock
        .t
        .saturating_add(check.ttl_secs.min(i64::MAX as u64) as i64);
    let clients = check.clients.len();
    match replay.insert(knock.g, until, check.now, &client.label, clients) {
        Replay::Fresh => Ok(Grant {
            label: client.label.clone(),
            rule_ttl_secs: lifetime(knock.lifetime, client.ttl_secs, check.rule_ttl_secs),
            v4_prefix: client.v4_prefix,
            v6_prefix: client.v6_prefix,
        }),
        Replay::Seen => Err(Reason::Replay),
        Replay::Full => Err(Reason::ReplayFull),
        Replay::Share => Err(Reason::ReplayShare),
        Replay::Rate => Err(Reason::Rate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &[u8] = b"test secret";
    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const NOW: i64 = 1_760_000_000;
    /// RULE_TTL of these tests: the cap for `bob`, who has no `ttl=`.
    const RULE_TTL: u64 = 30 * 86_400;

    fn clients() -> Clients {
        Clients::parse(&format!(
            "office {KEY} ttl=12h\nold {KEY}x expires=2020-01-01\nbob {KEY}y\n"
        ))
        .unwrap()
    }

    /// A correct step-2 query value for `label` issued at `t` to `addr`.
    fn knock_text(label: &str, key: &str, t: i64, addr: &str) -> String {
        let c = issue(S, label, addr, t, [1, 2, 3, 4, 5, 6, 7, 8]);
        format!("{label}.{c}.{}", response_hash(key, label, &c))
    }

    /// Nonces and per-process secrets come from the system's randomness: two draws differ.
    #[test]
    fn nonces_and_secrets_are_drawn_fresh() {
        let n = [new_nonce().expect("rng"), new_nonce().expect("rng")];
        assert_ne!(n[0], n[1]);
        let s = [new_secret().expect("rng"), new_secret().expect("rng")];
        assert_ne!(s[0], s[1]);
    }

    /// A knock's Debug names the label and T, never G or H (a log line of it must not let
    /// anyone replay it); every refusal reason says what was wrong.
    #[test]
    fn debug_hides_g_and_h_and_reasons_explain_themselves() {
        let text = knock_text("office", KEY, NOW, "203.0.113.7");
        let k = parse(&text);
        let shown = format!("{k:?}");
        assert!(
            shown.contains("\"office\"") && shown.contains(&NOW.to_string()),
            "{shown}"
        );
        let h = text.rsplit('.').next().expect("H");
        assert!(
            !shown.contains(h) && !shown.contains(&hex::encode(k.g)),
            "{shown}"
        );
        for r in [
            Reason::Stale,
            Reason::Challenge,
            Reason::Unknown,
            Reason::Signature,
        ] {
            assert!(r.to_string().len() > 20, "{r:?}: {r}");
        }
    }

    fn parse(k: &str) -> Knock {
        match parse_target(format!("/favico.ico?k={k}").as_bytes(), "/favico.ico") {
            Target::Knock(k) => k,
            other => panic!("{k}: {other:?}"),
        }
    }

    #[test]
    fn issue_matches_independent_hmac() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"test secret",
        //   b"knockd-c1|office|1760000000|0102030405060708|203.0.113.7",
        //   hashlib.sha256).hexdigest()[:32])'
        assert_eq!(
            issue(S, "office", "203.0.113.7", NOW, [1, 2, 3, 4, 5, 6, 7, 8]),
            "1760000000.0102030405060708.".to_string() + G_VECTOR
        );
    }
    const G_VECTOR: &str = "d7cdcd4b037f0d64a50783fceedfa74f";

    #[test]
    fn response_hash_matches_sha256sum() {
        // printf '%s' 'KEY:label:T.N.G:KEY' | sha256sum
        assert_eq!(
            response_hash("KEY", "label", "T.N.G"),
            "d2f6a6c303e1d18f85f463460d3dc555a2f81b2ab90218212e76fca590a9b1e9"
        );
    }

    #[test]
    fn grant_address_texts() {
        for (ip, want) in [
            ("203.0.113.7", "203.0.113.7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
            ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::/64"),
            ("2001:db8:0:0:1::1", "2001:db8::/64"),
            ("::1", "::/64"),
        ] {
            assert_eq!(grant_address_text(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn targets() {
        let p = "/favico.ico";
        let h64 = "a".repeat(64);
        let ok_k = format!(
            "office.1760000000.0102030405060708.{}.{h64}",
            "b".repeat(32)
        );
        for (target, want) in [
            ("/favico.ico", Some(Target::Plain)),
            ("/other?c=office", Some(Target::OtherPath)),
            ("/favico.icox?c=a", Some(Target::OtherPath)),
            ("/favico.ico?", Some(Target::Plain)),
            ("/favico.ico?t=123", Some(Target::Plain)),
            (
                "/favico.ico?c=office",
                Some(Target::Challenge {
                    label: "office".into(),
                }),
            ),
            (
                "/favico.ico?c=a-b_C9",
                Some(Target::Challenge {
                    label: "a-b_C9".into(),
                }),
            ),
            ("/favico.ico?c=", Some(Target::Malformed)),
            ("/favico.ico?c=a.b", Some(Target::Malformed)),
            ("/favico.ico?c=a%20b", Some(Target::Malformed)),
            ("/favico.ico?c=a&x=1", Some(Target::Malformed)),
            ("/favico.ico?x=1&c=a", Some(Target::Malformed)),
            ("/favico.ico?c=a&c=a", Some(Target::Malformed)),
            ("/favico.ico?c=a#f", Some(Target::Malformed)),
            (
                &format!("/favico.ico?c={}", "x".repeat(25)),
                Some(Target::Malformed),
            ),
            (&format!("/favico.ico?k={ok_k}"), None),
            (
                &format!(
                    "/favico.ico?k={}",
                    ok_k.to_uppercase().replacen("OFFICE", "office", 1)
                ),
                None,
            ),
            (&format!("/favico.ico?k={ok_k}.x"), Some(Target::Malformed)),
            (
                &format!("/favico.ico?k={ok_k}&c=x"),
                Some(Target::Malformed),
            ),
            (
                &format!("/favico.ico?k={}", &ok_k[..ok_k.len() - 1]),
                Some(Target::Malformed),
            ),
            (
                &format!(
                    "/favico.ico?k={}",
                    ok_k.replace(".1760000000.", ".01760000000.")
                ),
                Some(Target::Malformed),
            ),
            (
                &format!(
                    "/favico.ico?k={}",
                    ok_k.replace(".1760000000.", ".-1760000000.")
                ),
                Some(Target::Malformed),
            ),
            (
                &format!(
                    "/favico.ico?k={}",
                    ok_k.replace(".1760000000.", ".99999999999999999999.")
                ),
                Some(Target::Malformed),
            ),
            (
                &format!(
                    "/favico.ico?k={}",
                    ok_k.replace("0102030405060708", "010203040506070g")
                ),
                Some(Target::Malformed),
            ),
            (
                &format!("/favico.ico?k={}", ok_k.replace("office.", "of fice.")),
                Some(Target::Malformed),
            ),
            ("/favico.ico?k=office.1.2.3.4", Some(Target::Malformed)),
        ] {
            let got = parse_target(target.as_bytes(), p);
            match want {
                Some(w) => assert_eq!(got, w, "{target}"),
                None => assert!(matches!(got, Target::Knock(_)), "{target}: {got:?}"),
            }
        }
        assert_eq!(parse_target(b"/favico.ico?c=\xff", p), Target::Malformed);
        // Hex in either case is normalised: T.N.G as issued.
        let upper = parse(&ok_k.to_uppercase().replacen("OFFICE", "office", 1));
        assert_eq!(
            upper.challenge(),
            format!("1760000000.0102030405060708.{}", "b".repeat(32))
        );
    }

    fn run(knock: &str, now: i64, addr: &str, replay: &mut ReplayCache) -> Result<Grant, Reason> {
        let clients = clients();
        let check = Check {
            secret: S,
            ttl_secs: 60,
            rule_ttl_secs: RULE_TTL,
            addr_text: addr,
            now,
            clients: &clients,
            issued_after: 0,
            mark: [0xff; 4],
        };
        verify(&parse(knock), &check, replay)
    }

    #[test]
    fn verify_in_the_issues_order() {
        let a = "203.0.113.7";
        let good = knock_text("office", KEY, NOW, a);
        let mut r = ReplayCache::new(16);
        let granted = Grant {
            label: "office".into(),
            rule_ttl_secs: Some(12 * 3600),
            v4_prefix: None,
            v6_prefix: None,
        };
        assert_eq!(run(&good, NOW + 60, a, &mut r), Ok(granted));
        assert_eq!(run(&good, NOW + 60, a, &mut r), Err(Reason::Replay));
        // Upper-case hex is the same knock, so also a replay.
        let upper = good.to_uppercase().replacen("OFFICE", "office", 1);
        assert_eq!(run(&upper, NOW + 1, a, &mut r), Err(Reason::Replay));

        let mut r = ReplayCache::new(16);
        let fresh = |t| knock_text("office", KEY, t, a);
        assert_eq!(run(&fresh(NOW), NOW + 61, a, &mut r), Err(Reason::Stale));
        assert_eq!(run(&fresh(NOW + 2), NOW, a, &mut r), Err(Reason::Stale));
        assert!(run(&fresh(NOW + 1), NOW, a, &mut r).is_ok());
        // Another address within the window: G does not match.
        assert_eq!(
            run(&fresh(NOW), NOW, "203.0.113.8", &mut r),
            Err(Reason::Challenge)
        );
        // Tampered T, N or G (a T change keeps the text fresh).
        let parts: Vec<&str> = good.split('.').collect();
        let with = |i: usize, v: &str| {
            let mut p = parts.clone();
            p[i] = v;
            p.join(".")
        };
        assert_eq!(
            run(&with(1, &(NOW - 1).to_string()), NOW, a, &mut r),
            Err(Reason::Challenge)
        );
        assert_eq!(
            run(&with(2, "0102030405060709"), NOW, a, &mut r),
            Err(Reason::Challenge)
        );
        assert_eq!(
            run(&with(3, &"0".repeat(32)), NOW, a, &mut r),
            Err(Reason::Challenge)
        );
        // Stale is reported before a bad G.
        assert_eq!(
            run(&with(3, &"0".repeat(32)), NOW + 100, a, &mut r),
            Err(Reason::Stale)
        );
        // Unknown and expired labels get valid challenges but fail after G.
        assert_eq!(
            run(&knock_text("nobody", KEY, NOW, a), NOW, a, &mut r),
            Err(Reason::Unknown)
        );
        let old = knock_text("old", &format!("{KEY}x"), NOW, a);
        assert_eq!(run(&old, NOW, a, &mut r), Err(Reason::Expired));
        // Wrong key; the label is bound into both G and H.
        assert_eq!(
            run(
                &knock_text("office", "wrong-key-wrong-key-wrong", NOW, a),
                NOW,
                a,
                &mut r
            ),
            Err(Reason::Signature)
        );
        // Failures before H never enter the replay cache: the good knock still works once.
        assert!(run(&fresh(NOW - 5), NOW, a, &mut r).is_ok());
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn replay_full_fails_closed() {
        let a = "2001:db8:1:2::/64";
        let mut r = ReplayCache::new(1);
        assert!(run(&knock_text("office", KEY, NOW, a), NOW, a, &mut r).is_ok());
        let second = knock_text("office", KEY, NOW + 1, a);
        // One slot is office's whole share (of 2 clients, at least one entry each).
        assert_eq!(run(&second, NOW + 1, a, &mut r), Err(Reason::ReplayShare));
        // Once the first entry's T + TTL has passed, there is room again.
        assert!(run(&second, NOW + 61, a, &mut r).is_ok());
    }

    /// A correct step-2 query value asking for `lifetime` seconds: `LABEL.T.N.G.L.H`.
    fn knock_with_lifetime(label: &str, key: &str, t: i64, addr: &str, lifetime: u64) -> String {
        let c = issue(S, label, addr, t, [1, 2, 3, 4, 5, 6, 7, 8]);
        let signed = signed_text(&c, Some(lifetime));
        format!("{label}.{signed}.{}", response_hash(key, label, &signed))
    }

    #[test]
    fn lifetime_caps() {
        let h12 = Some(12 * 3600);
        for (requested, client, want) in [
            // Without a request: exactly as before (the client's ttl=, else RULE_TTL).
            (None, h12, h12),
            (None, None, None),
            // Under the cap: as asked.
            (Some(600), h12, Some(600)),
            (Some(600), None, Some(600)),
            // Above it: the client's ttl=, or RULE_TTL for a line without one.
            (Some(86_400), h12, h12),
            (Some(90 * 86_400), None, Some(RULE_TTL)),
            (Some(12 * 3600), h12, h12),
        ] {
            assert_eq!(
                lifetime(requested, client, RULE_TTL),
                want,
                "{requested:?} {client:?}"
            );
        }
    }

    #[test]
    fn signed_texts() {
        assert_eq!(signed_text("1.ab.cd", None), "1.ab.cd");
        assert_eq!(signed_text("1.ab.cd", Some(600)), "1.ab.cd.600");
        // printf '%s' 'KEY:label:T.N.G.600:KEY' | sha256sum
        assert_eq!(
            response_hash("KEY", "label", &signed_text("T.N.G", Some(600))),
            "2349f0047a67d6fb77518d6b56f55691f8af3b54c8e8317cf96485766d2f3618"
        );
    }

    #[test]
    fn lifetime_grammar() {
        let base = format!("office.1760000000.0102030405060708.{}", "b".repeat(32));
        let h = "a".repeat(64);
        let target = |l: &str| format!("/favico.ico?k={base}.{l}.{h}");
        for (l, want) in [
            ("120", Some(120)),
            ("600", Some(600)),
            ("3153600000", Some(3_153_600_000)),
            // Under the floor: refused, not raised (see parse_knock).
            ("119", None),
            ("60", None),
            ("0", None),
            // One spelling per value.
            ("0600", None),
            ("+600", None),
            ("600s", None),
            ("10m", None),
            ("", None),
            ("31536000000", None),
        ] {
            match (parse_target(target(l).as_bytes(), "/favico.ico"), want) {
                (Target::Knock(k), Some(w)) => assert_eq!(k.lifetime, Some(w), "{l}"),
                (Target::Malformed, None) => {}
                (got, _) => panic!("{l}: {got:?}"),
            }
        }
        // Today's five fields: no lifetime; seven fields: malformed.
        let today = format!("/favico.ico?k={base}.{h}");
        assert!(matches!(
            parse_target(today.as_bytes(), "/favico.ico"),
            Target::Knock(Knock { lifetime: None, .. })
        ));
        let seven = format!("/favico.ico?k={base}.600.600.{h}");
        assert_eq!(
            parse_target(seven.as_bytes(), "/favico.ico"),
            Target::Malformed
        );
    }

    #[test]
    fn a_requested_lifetime_is_signed_and_capped() {
        let a = "203.0.113.7";
        let granted = |label: &str, ttl: Option<u64>| {
            Ok(Grant {
                label: label.into(),
                rule_ttl_secs: ttl,
                v4_prefix: None,
                v6_prefix: None,
            })
        };
        let mut r = ReplayCache::new(16);
        // Asked 10m of a 12h client: 10m.
        let k = knock_with_lifetime("office", KEY, NOW, a, 600);
        assert_eq!(run(&k, NOW, a, &mut r), granted("office", Some(600)));
        // Asked a day of a 12h client: capped at 12h.
        let k = knock_with_lifetime("office", KEY, NOW + 1, a, 86_400);
        assert_eq!(
            run(&k, NOW + 1, a, &mut r),
            granted("office", Some(12 * 3600))
        );
        // A client without ttl=: capped at RULE_TTL.
        let bob = format!("{KEY}y");
        let k = knock_with_lifetime("bob", &bob, NOW, a, 90 * 86_400);
        assert_eq!(run(&k, NOW, a, &mut r), granted("bob", Some(RULE_TTL)));
        // Today's knock: the client's own ttl=, or None (RULE_TTL), as before.
        assert_eq!(
            run(&knock_text("bob", &bob, NOW + 1, a), NOW + 1, a, &mut r),
            granted("bob", None)
        );

        // A relay changing L, adding one, or stripping it breaks H.
        let mut r = ReplayCache::new(16);
        let k = knock_with_lifetime("office", KEY, NOW + 2, a, 600);
        let lengthened = k.replacen(".600.", ".3600.", 1);
        assert_eq!(run(&lengthened, NOW + 2, a, &mut r), Err(Reason::Signature));
        let stripped = k.replacen(".600.", ".", 1);
        assert_eq!(run(&stripped, NOW + 2, a, &mut r), Err(Reason::Signature));
        let plain = knock_text("office", KEY, NOW + 2, a);
        let (head, h) = plain.rsplit_once('.').unwrap();
        let added = format!("{head}.600.{h}");
        assert_eq!(run(&added, NOW + 2, a, &mut r), Err(Reason::Signature));
        // None of those used the challenge up: the genuine knock still works, once.
        assert_eq!(run(&k, NOW + 2, a, &mut r), granted("office", Some(600)));
        // One challenge, one grant: the same G with another L is a replay.
        let again = knock_with_lifetime("office", KEY, NOW + 2, a, 900);
        assert_eq!(run(&again, NOW + 2, a, &mut r), Err(Reason::Replay));
    }

    #[test]
    fn reasons_and_no_secrets_in_debug() {
        let names: Vec<&str> = [
            Reason::Stale,
            Reason::Challenge,
            Reason::Unknown,
            Reason::Expired,
            Reason::Signature,
            Reason::Replay,
            Reason::ReplayFull,
            Reason::ReplayShare,
            Reason::Rate,
        ]
        .iter()
        .map(|r| r.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "stale",
                "challenge",
                "unknown",
                "expired",
                "signature",
                "replay",
                "replay-full",
                "replay-share",
                "rate"
            ]
        );
        let text = knock_text("office", KEY, NOW, "203.0.113.7");
        let dbg = format!("{:?}", parse(&text));
        let h = text.rsplit('.').next().unwrap();
        assert!(!dbg.contains(h) && !dbg.contains(KEY), "{dbg}");
    }
}
