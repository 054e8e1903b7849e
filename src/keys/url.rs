//! The knock URL: what `--knock URL` and KNOCK_PUBLIC_URL are, and how the two steps of a key
//! knock extend it. Decisions: `http://` or `https://`, a host, an optional port, and the knock
//! path (required: `http://host:8080` alone would knock on `/`). A URL with a query or fragment
//! is refused: knockd treats a `c=`/`k=` next to other parameters as malformed (a lockout
//! strike), so there is no way to combine them that works.

use std::fmt;

use super::challenge::{response_hash, signed_text};
use super::clients::Key;

/// Shown instead of KNOCK_PUBLIC_URL when it is not set; must be replaced by the operator.
pub(crate) const PLACEHOLDER_URL: &str = "http://YOUR-SERVER:8080/favico.ico";
/// What is wrong with a knock URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    pub(crate) problem: &'static str,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the URL {}; give the knock URL like http://server:8080/favico.ico",
            self.problem
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A knock URL: scheme, host, port and path, no query. Also KNOCK_PUBLIC_URL's grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnockUrl {
    pub(crate) scheme: Scheme,
    /// As written in the URL: a name, an IPv4 address or a bracketed IPv6 address.
    pub(crate) host: String,
    /// Explicit or the scheme's default.
    pub(crate) port: u16,
    /// Starts with `/`.
    pub(crate) path: String,
    text: String,
}

impl KnockUrl {
    /// `recipes::PLACEHOLDER_URL` as a value, built from its parts: printing the recipes must
    /// not depend on a parse that could fail.
    pub(crate) fn placeholder() -> KnockUrl {
        KnockUrl {
            scheme: Scheme::Http,
            host: "YOUR-SERVER".to_string(),
            port: 8080,
            path: "/favico.ico".to_string(),
            text: PLACEHOLDER_URL.to_string(),
        }
    }

    pub(crate) fn parse(text: &str) -> Result<KnockUrl, UrlError> {
        let err = |problem| Err(UrlError { problem });
        let (scheme, rest) = if let Some(r) = text.strip_prefix("http://") {
            (Scheme::Http, r)
        } else if let Some(r) = text.strip_prefix("https://") {
            (Scheme::Https, r)
        } else {
            return err("must start with http:// or https://");
        };
        // Printable ASCII without what a shell, a URL or a request line would treat specially.
        if !rest
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"'\"\\`$<>{}|^".contains(&b))
        {
            return err("may only hold printable ASCII without spaces, quotes, $ or backslashes");
        }
        if rest.contains(['?', '#']) {
            return err("must not have a query or fragment (knockd adds ?c= and ?k= itself)");
        }
        let Some(slash) = rest.find('/') else {
            return err("has no path: add the knock path (KNOCK_REQUEST_PATH)");
        };
        let (authority, path) = rest.split_at(slash);
        if authority.contains('@') {
            return err("must not carry a user name or password");
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (host, port) = if authority.starts_with('[') {
            let Some(end) = authority.find(']') else {
                return err("has an IPv6 address without its closing ]");
            };
            let inner = &authority[1..end];
            if inner.parse::<std::net::Ipv6Addr>().is_err() {
                return err("has an invalid IPv6 address in [ ]");
            }
            match &authority[end + 1..] {
                "" => (&authority[..=end], None),
                p => match p.strip_prefix(':') {
                    Some(p) => (&authority[..=end], Some(p)),
                    None => return err("has text after the IPv6 address"),
                },
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
            return err("has no host, or an IPv6 address without [ ]");
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return err("has a port that is not 1-65535"),
            },
        };
        Ok(KnockUrl {
            scheme,
            host: host.to_string(),
            port,
            path: path.to_string(),
            text: text.to_string(),
        })
    }

    /// The URL as given.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Step 1's URL.
    pub(crate) fn challenge_url(&self, label: &str) -> String {
        format!("{}?c={label}", self.text)
    }

    /// Step 2's URL for the challenge text `T.N.G`, asking for a rule lifetime of `lifetime`
    /// seconds when given (`k=LABEL.T.N.G.L.H`, L covered by H); without one, today's knock.
    pub(crate) fn knock_url(
        &self,
        label: &str,
        challenge: &str,
        key: &Key,
        lifetime: Option<u64>,
    ) -> String {
        let signed = signed_text(challenge, lifetime);
        let h = response_hash(key.expose(), label, &signed);
        format!("{}?k={label}.{signed}.{h}", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_is_what_its_text_parses_to() {
        let parsed = KnockUrl::parse(PLACEHOLDER_URL).expect("parses");
        assert_eq!(KnockUrl::placeholder(), parsed);
    }

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn urls() {
        for (text, ok) in [
            (
                "http://h:8080/favico.ico",
                Some((Scheme::Http, "h", 8080, "/favico.ico")),
            ),
            (
                "https://knock.example.com/k",
                Some((Scheme::Https, "knock.example.com", 443, "/k")),
            ),
            (
                "http://203.0.113.7/",
                Some((Scheme::Http, "203.0.113.7", 80, "/")),
            ),
            (
                "http://[2001:db8::1]:81/x",
                Some((Scheme::Http, "[2001:db8::1]", 81, "/x")),
            ),
            (
                "http://[2001:db8::1]/x",
                Some((Scheme::Http, "[2001:db8::1]", 80, "/x")),
            ),
            ("ftp://h/x", None),
            ("http://h:8080", None),
            ("http://h/x?c=a", None),
            ("http://h/x#a", None),
            ("http://u:p@h/x", None),
            ("http://h:0/x", None),
            ("http://h:99999/x", None),
            ("http://h:+80/x", None),
            ("http:///x", None),
            ("http://2001:db8::1/x", None),
            ("http://[2001:db8::1/x", None),
            ("http://[zz]/x", None),
            ("http://h/a b", None),
            ("http://h/a'b", None),
            ("http://h/$x", None),
        ] {
            match (KnockUrl::parse(text), ok) {
                (Ok(u), Some((s, h, p, path))) => {
                    assert_eq!(
                        (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
                        (s, h, p, path)
                    );
                    assert_eq!(u.as_str(), text);
                }
                (Err(e), None) => assert!(e.to_string().starts_with("the URL "), "{e}"),
                (got, want) => panic!("{text}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn h_matches_sha256sum() {
        // printf '%s' 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:office:1760000000.0102030405060708.d7cdcd4b037f0d64a50783fceedfa74f:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' | sha256sum
        let url = KnockUrl::parse("http://h:8080/favico.ico").unwrap();
        let c = "1760000000.0102030405060708.d7cdcd4b037f0d64a50783fceedfa74f";
        assert_eq!(
            url.knock_url("office", c, &Key::parse(KEY).unwrap(), None),
            format!("http://h:8080/favico.ico?k=office.{c}.{H_VECTOR}")
        );
        // printf '%s' 'AAA…AAA:office:1760000000.0102030405060708.d7cd…a74f.600:AAA…AAA' | sha256sum
        assert_eq!(
            url.knock_url("office", c, &Key::parse(KEY).unwrap(), Some(600)),
            format!("http://h:8080/favico.ico?k=office.{c}.600.{H_600}")
        );
        assert_eq!(
            url.challenge_url("office"),
            "http://h:8080/favico.ico?c=office"
        );
    }
    const H_VECTOR: &str = "265adca404e988c77998cd1647f363e61e0916dfe7bf503cea01624ad9f9e8b8";
    const H_600: &str = "0aeec267c98caa47c745f89145130ed85a1752dd7e960e38d46516fda9724f71";
}
