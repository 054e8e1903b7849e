//! Per-client keys and the challenge–response knock.
//!
//! The wire format (clients outside this repository speak it; it never changes silently):
//!
//! - step 1: `GET <KNOCK_REQUEST_PATH>?c=<LABEL>` answers `T.N.G`: T = knockd's Unix time in
//!   decimal seconds, N = 16 lowercase hex (8 random bytes), G = lowercase hex of the first 16
//!   bytes of HMAC-SHA256(S, `knockd-c1|LABEL|T|N|A`), A = the address knockd would open
//!   (IPv4 dotted, IPv6 as its /64: `2001:db8:1:2::/64`), S = the server's challenge secret.
//! - step 2: `GET <KNOCK_REQUEST_PATH>?k=<LABEL>.<T>.<N>.<G>.<H>`, H = lowercase hex SHA-256 of
//!   the ASCII text `KEY:LABEL:T.N.G:KEY`.
//!
//! Modules, all depending on std and crates only:
//! - [`clients`]: the clients file (parse, reload cache, add/remove, key generation).
//! - [`challenge`]: issuing and verifying challenges; parsing `?c=` / `?k=` request targets.
//! - [`replay`]: the bounded replay cache of used G values.
//! - [`client`]: the `knockd --knock` client (both steps over ureq) and its key file.
//! - [`recipes`]: the ready-to-run client lines printed by `--add-client`.

pub(crate) mod challenge;

pub mod clients;
pub(crate) mod clients_error;
pub(crate) mod clients_file;
pub(crate) mod day;
pub(crate) mod hosts;
pub(crate) mod recipes;
pub(crate) mod replay;
pub mod url;

use std::fmt;

/// The clients file's name beside the config file (or the binary) when KNOCK_CLIENTS_FILE is
/// not set.
pub(crate) const DEFAULT_CLIENTS_FILE: &str = "knockd.clients";

/// The OS random generator failed (getrandom(2) and /dev/urandom both unavailable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RandomUnavailable;

impl fmt::Display for RandomUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the operating system's random generator is unavailable (getrandom/dev/urandom); \
             knockd cannot make keys, nonces or secrets without it",
        )
    }
}

/// `N` bytes from the OS CSPRNG.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], RandomUnavailable> {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).map_err(|_| RandomUnavailable)?;
    Ok(buf)
}

/// Equality whose running time depends on the lengths only, not on where the bytes differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// RFC 4648 §5 base64url without padding. Written here rather than pulling in the base64 crate:
/// knockd only ever encodes fresh random keys; keys are used as text, never decoded.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(B64URL[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Whether `s` is base64url without padding: only `A-Z a-z 0-9 - _`, and a length that some
/// byte string encodes to (never 1 mod 4).
pub(crate) fn is_base64url(s: &str) -> bool {
    s.len() % 4 != 1
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        // RFC 4648 §10 vectors, padding removed; plus bytes that map to '-' and '_'.
        for (input, want) in [
            (&b""[..], ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff, 0xbf], "-_-_"),
        ] {
            assert_eq!(base64url(input), want, "{input:?}");
            assert!(is_base64url(want));
        }
        assert_eq!(base64url(&[0u8; 32]).len(), 43);
    }

    #[test]
    fn base64url_validation() {
        assert!(!is_base64url("abcde")); // 5 = 1 mod 4: no byte string encodes to it
        assert!(!is_base64url("ab+/"));
        assert!(!is_base64url("abc="));
        assert!(!is_base64url("ab cd"));
        assert!(is_base64url("ab-_"));
    }

    #[test]
    fn ct_eq_table() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn random_bytes_differ() {
        let a = random::<16>().expect("rng");
        let b = random::<16>().expect("rng");
        assert_ne!(a, b);
    }
}
