//! `knockd --knock URL --label LABEL --key-file FILE`: the client, for routers and Linux boxes.
//!
//! Both steps are plain GETs; knockd answers every request with status 500 by design, so the
//! body is read from ureq's `Error::Status` as well as from an `Ok` response.
//!
//! Decisions:
//! - URL: `http://` or `https://`, a host, an optional port, and the knock path (required:
//!   `http://host:8080` alone would knock on `/`). A URL with a query or fragment is refused:
//!   knockd treats a `c=`/`k=` next to other parameters as malformed (a lockout strike), so
//!   there is no way to combine them that works.
//! - Redirects are not followed: knockd never redirects, and a redirect means the URL is wrong.
//! - Key file: the first line that is neither blank nor a `#` comment holds either the key
//!   alone, or is a clients-file line `LABEL KEY [...]`; with clients-file lines, the one for
//!   `--label` is used (so the server's clients file works too, e.g. for a test on the server).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::challenge::response_hash;
use super::clients::{self, Clients, Key};

/// Bodies longer than this are not read: a challenge is 66 bytes, messages are short.
const MAX_BODY: u64 = 4096;

/// Everything that can go wrong with a client knock. Never contains the key or H.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientError {
    Url {
        problem: &'static str,
    },
    Label,
    KeyFile {
        path: PathBuf,
        problem: String,
    },
    /// The key file holds clients-file lines, none for this label.
    KeyFileLabel {
        path: PathBuf,
        label: String,
    },
    /// No answer at all (DNS, connect, TLS, timeout); `what` is ureq's kind and message.
    Transport {
        step: &'static str,
        what: String,
    },
    /// Step 1's body is not `T.N.G`.
    NoChallenge {
        body: String,
    },
    /// Step 2's body is not the expected success text.
    Refused {
        body: String,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url { problem } => write!(
                f,
                "the URL {problem}; give the knock URL like http://server:8080/favico.ico"
            ),
            ClientError::Label => write!(
                f,
                "the label must be 1 to {} characters of A-Z a-z 0-9 _ -, as in the clients file",
                clients::MAX_LABEL
            ),
            ClientError::KeyFile { path, problem } => {
                write!(f, "key file {}: {problem}", path.display())
            }
            ClientError::KeyFileLabel { path, label } => write!(
                f,
                "key file {} has clients-file lines but none for {label}; check --label",
                path.display()
            ),
            ClientError::Transport { step, what } => write!(
                f,
                "{step}: no answer from the server ({what}); check the URL, the network and \
                 that knockd is running"
            ),
            ClientError::NoChallenge { body } => write!(
                f,
                "challenge: the server answered {body:?} instead of a challenge T.N.G: wrong \
                 URL or path, a knockd without client keys, or this address is locked out for \
                 now"
            ),
            ClientError::Refused { body } => write!(
                f,
                "knock refused (answer {body:?}): wrong label or key, an expired or removed \
                 client, a different address for the two steps, or a lockout; knockd's log \
                 says which (reason=...)"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

/// A knock URL: scheme, host, port and path, no query. Also KNOCK_PUBLIC_URL's grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnockUrl {
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
            text: super::recipes::PLACEHOLDER_URL.to_string(),
        }
    }

    pub(crate) fn parse(text: &str) -> Result<KnockUrl, ClientError> {
        let err = |problem| Err(ClientError::Url { problem });
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

    /// Step 2's URL for the challenge text `T.N.G`.
    pub(crate) fn knock_url(&self, label: &str, challenge: &str, key: &Key) -> String {
        let h = response_hash(key.expose(), label, challenge);
        format!("{}?k={label}.{challenge}.{h}", self.text)
    }
}

/// Whether `body` is a challenge `T.N.G` (T decimal, N 16 hex, G 32 hex, lowercase).
pub(crate) fn is_challenge(body: &str) -> bool {
    let mut parts = body.split('.');
    let ok = |p: Option<&str>, len: Option<usize>, digits_only: bool| {
        p.is_some_and(|p| {
            !p.is_empty()
                && len.is_none_or(|n| p.len() == n)
                && p.len() <= 20
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (!digits_only && (b'a'..=b'f').contains(&b)))
        })
    };
    ok(parts.next(), None, true)
        && ok(parts.next(), Some(16), false)
        && parts.next().is_some_and(|g| {
            g.len() == 32
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        && parts.next().is_none()
}

/// The key for `label` from a key file (see the module's decisions), and a warning when the
/// file is readable by group or others.
pub(crate) fn read_key_file(
    path: &Path,
    label: &str,
) -> Result<(Key, Option<String>), ClientError> {
    use std::os::unix::fs::MetadataExt;
    let bad = |problem: String| ClientError::KeyFile {
        path: path.to_path_buf(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > clients::MAX_FILE {
        return Err(bad("is larger than 1 MiB; it should hold one key".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let warning = super::clients_file::mode_warning(path, meta.mode());
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    let Some(first) = first else {
        return Err(bad("holds no key".into()));
    };
    if first.split_ascii_whitespace().count() == 1 {
        return match Key::parse(first) {
            Some(k) => Ok((k, warning)),
            None => Err(bad(format!(
                "the key must be base64url (A-Z a-z 0-9 - _), {} to {} characters, as \
                 knockd --add-client printed it",
                clients::MIN_KEY,
                clients::MAX_KEY
            ))),
        };
    }
    let all = Clients::parse(text).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        bad(format!(
            "is neither one key nor a valid clients file: {}",
            list.join("; ")
        ))
    })?;
    match all.get(label) {
        Some(c) => Ok((c.key.clone(), warning)),
        None => Err(ClientError::KeyFileLabel {
            path: path.to_path_buf(),
            label: label.to_string(),
        }),
    }
}

/// Both steps. `Ok` when the knock's answer is exactly `expect` (the server's MESSAGE_SUCCESS).
pub(crate) fn knock(
    url: &KnockUrl,
    label: &str,
    key: &Key,
    expect: &str,
    timeout: Duration,
) -> Result<(), ClientError> {
    if !clients::is_label(label) {
        return Err(ClientError::Label);
    }
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .build();
    let challenge = get(&agent, &url.challenge_url(label), "challenge")?;
    if !is_challenge(&challenge) {
        return Err(ClientError::NoChallenge {
            body: shown(&challenge),
        });
    }
    let answer = get(&agent, &url.knock_url(label, &challenge, key), "knock")?;
    if answer == expect {
        Ok(())
    } else {
        Err(ClientError::Refused {
            body: shown(&answer),
        })
    }
}

/// The body of any HTTP answer, whatever its status.
fn get(agent: &ureq::Agent, url: &str, step: &'static str) -> Result<String, ClientError> {
    let response = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => {
            // Not t.to_string(): that holds the URL, and step 2's URL holds H.
            let what = match t.message() {
                Some(m) => format!("{}: {m}", t.kind()),
                None => t.kind().to_string(),
            };
            return Err(ClientError::Transport { step, what });
        }
    };
    let mut body = Vec::new();
    let read = response.into_reader().take(MAX_BODY).read_to_end(&mut body);
    read.map_err(|e| ClientError::Transport {
        step,
        what: format!("reading the answer: {}", e.kind()),
    })?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// A server's answer as shown in an error: at most 80 characters, no control characters.
fn shown(body: &str) -> String {
    body.chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn the_placeholder_is_what_its_text_parses_to() {
        let parsed = KnockUrl::parse(crate::keys::recipes::PLACEHOLDER_URL).expect("parses");
        assert_eq!(KnockUrl::placeholder(), parsed);
    }

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn h_matches_sha256sum() {
        // printf '%s' 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:office:1760000000.0102030405060708.d7cdcd4b037f0d64a50783fceedfa74f:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' | sha256sum
        let url = KnockUrl::parse("http://h:8080/favico.ico").unwrap();
        let c = "1760000000.0102030405060708.d7cdcd4b037f0d64a50783fceedfa74f";
        assert_eq!(
            url.knock_url("office", c, &Key::parse(KEY).unwrap()),
            format!("http://h:8080/favico.ico?k=office.{c}.{H_VECTOR}")
        );
        assert_eq!(
            url.challenge_url("office"),
            "http://h:8080/favico.ico?c=office"
        );
    }
    const H_VECTOR: &str = "265adca404e988c77998cd1647f363e61e0916dfe7bf503cea01624ad9f9e8b8";

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
    fn challenges() {
        let g = "d7cdcd4b037f0d64a50783fceedfa74f";
        assert!(is_challenge(&format!("1760000000.0102030405060708.{g}")));
        assert!(!is_challenge(&format!("1760000000.0102030405060708.{g}\n")));
        assert!(!is_challenge(&format!(
            "1760000000.0102030405060708.{}",
            g.to_uppercase()
        )));
        assert!(!is_challenge(&format!("1760000000.010203040506070.{g}")));
        assert!(!is_challenge(&format!(".0102030405060708.{g}")));
        assert!(!is_challenge(&format!("1760000000.0102030405060708.{g}.x")));
        assert!(!is_challenge("500 Internal Server Error"));
        assert!(!is_challenge("500 Internal Server Error."));
    }

    fn temp_file(name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = std::env::temp_dir().join(format!("knockd-keyfile-{name}-{}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn key_files() {
        let bare = temp_file("bare", &format!("# router key\n\n{KEY}\n"), 0o600);
        let (k, w) = read_key_file(&bare, "office").unwrap();
        assert_eq!((k.expose(), w), (KEY, None));
        let other = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
        let lines = temp_file(
            "lines",
            &format!("phone {other}\noffice {KEY} ttl=1h\n"),
            0o644,
        );
        let (k, w) = read_key_file(&lines, "office").unwrap();
        assert_eq!(k.expose(), KEY);
        assert!(w.unwrap().contains("chmod 600"));
        assert_eq!(read_key_file(&lines, "phone").unwrap().0.expose(), other);
        assert!(matches!(
            read_key_file(&lines, "nobody"),
            Err(ClientError::KeyFileLabel { .. })
        ));
        let bad = temp_file("bad", "not+a+key+not+a+key+not+a+key\n", 0o600);
        let e = read_key_file(&bad, "office").unwrap_err().to_string();
        assert!(e.contains("base64url") && !e.contains("not+a+key"), "{e}");
        let empty = temp_file("empty", "# nothing\n", 0o600);
        assert!(read_key_file(&empty, "office")
            .unwrap_err()
            .to_string()
            .contains("holds no key"));
        let missing = std::env::temp_dir().join("knockd-keyfile-does-not-exist");
        assert!(matches!(
            read_key_file(&missing, "x"),
            Err(ClientError::KeyFile { .. })
        ));
        for p in [bare, lines, bad, empty] {
            std::fs::remove_file(p).unwrap();
        }
    }

    /// A one-connection-per-answer server that replays fixed bodies with status 500.
    fn serve(bodies: Vec<String>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let mut targets = Vec::new();
            for body in bodies {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 2048];
                let n = s.read(&mut buf).unwrap();
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                targets.push(head.split(' ').nth(1).unwrap_or("").to_string());
                let answer = format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; \
                     charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(answer.as_bytes()).unwrap();
            }
            targets
        });
        (format!("http://127.0.0.1:{port}/favico.ico"), handle)
    }

    #[test]
    fn knock_reads_500_bodies() {
        let c = "1760000000.0102030405060708.d7cdcd4b037f0d64a50783fceedfa74f";
        let key = Key::parse(KEY).unwrap();
        let ok = "500 Internal Server Error.";
        let (url, h) = serve(vec![c.into(), ok.into()]);
        let url = KnockUrl::parse(&url).unwrap();
        assert_eq!(
            knock(&url, "office", &key, ok, Duration::from_secs(5)),
            Ok(())
        );
        let targets = h.join().unwrap();
        assert_eq!(
            targets,
            [
                "/favico.ico?c=office".to_string(),
                format!("/favico.ico?k=office.{c}.{H_VECTOR}")
            ]
        );

        let (u, h) = serve(vec![c.into(), "500 Internal Server Error".into()]);
        let r = knock(
            &KnockUrl::parse(&u).unwrap(),
            "office",
            &key,
            ok,
            Duration::from_secs(5),
        );
        assert!(matches!(r, Err(ClientError::Refused { .. })), "{r:?}");
        h.join().unwrap();

        let (u, h) = serve(vec!["500 Internal Server Error".into()]);
        let r = knock(
            &KnockUrl::parse(&u).unwrap(),
            "office",
            &key,
            ok,
            Duration::from_secs(5),
        );
        assert!(matches!(r, Err(ClientError::NoChallenge { .. })), "{r:?}");
        h.join().unwrap();

        // Nothing listening: a transport error that does not show the URL.
        let dead = TcpListener::bind("127.0.0.1:0").unwrap();
        let u = format!("http://{}/favico.ico", dead.local_addr().unwrap());
        drop(dead);
        let r = knock(
            &KnockUrl::parse(&u).unwrap(),
            "office",
            &key,
            ok,
            Duration::from_secs(5),
        );
        match r {
            Err(e @ ClientError::Transport { .. }) => {
                assert!(!e.to_string().contains("favico"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            knock(&url, "bad label", &key, ok, Duration::from_secs(1)),
            Err(ClientError::Label)
        );
    }
}
