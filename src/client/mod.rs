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

use crate::exit::Exit;
use crate::keys::clients::{self, Clients, Key};
use crate::keys::url::KnockUrl;

/// How long each request of `--knock` may take.
const KNOCK_TIMEOUT: Duration = Duration::from_secs(20);
/// Bodies longer than this are not read: a challenge is 66 bytes, messages are short.
const MAX_BODY: u64 = 4096;

/// Everything that can go wrong with a client knock. Never contains the key or H.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientError {
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
    /// Step 2's body is knockd's default failure text. `lifetime`: the knock asked for one
    /// (`--ttl`), which a knockd from before lifetimes refuses as malformed.
    Refused {
        body: String,
        lifetime: bool,
    },
    /// Step 2's body is neither the expected success text nor knockd's default failure text:
    /// a server with its own MESSAGE_SUCCESS that granted, or its own MESSAGE_FAILURE.
    Unexpected {
        body: String,
        expect: String,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
            ClientError::Refused { body, lifetime } => {
                write!(
                    f,
                    "knock refused (answer {body:?}): wrong label or key, an expired or removed \
                     client, a different address for the two steps, or a lockout; knockd's log \
                     says which (reason=...)"
                )?;
                if *lifetime {
                    f.write_str(
                        "; a knockd older than client-chosen lifetimes refuses --ttl \
                         (reason=malformed): knock without --ttl there",
                    )?;
                }
                Ok(())
            }
            ClientError::Unexpected { body, expect } => write!(
                f,
                "the answer {body:?} is not the expected text {expect:?}: if {body:?} is the \
                 server's MESSAGE_SUCCESS, the knock worked and --expect should say so; if it is \
                 its MESSAGE_FAILURE, the knock was refused (wrong label or key, an expired or \
                 removed client, or a lockout; knockd's log says which)"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// `--knock`: both steps; 0 on the success body, 1 otherwise, 2 for a bad URL or key file.
/// With `every_secs`, knocks again at that interval until stopped, and never returns. With
/// `lifetime_secs` (`--ttl`), asks for that rule lifetime (knockd caps it by the client's
/// `ttl=` or RULE_TTL).
pub fn run(
    url: &KnockUrl,
    label: &str,
    key_file: &Path,
    every_secs: Option<u64>,
    expect: Option<&str>,
    lifetime_secs: Option<u64>,
) -> Exit {
    let expect = expect.unwrap_or(crate::config::DEFAULT_MESSAGE_SUCCESS);
    let once = || -> Exit {
        // Read each time, so that a replaced key file is used without a restart.
        let key = match read_key_file(key_file, label) {
            Ok((key, warning)) => {
                if let Some(w) = warning {
                    crate::log::warning(&w);
                }
                key
            }
            Err(e) => {
                crate::log::error(&format!("{e}"));
                return Exit::Usage;
            }
        };
        let stamp = |s: &str| match every_secs {
            Some(_) => format!("{}{s}", crate::log::stamp()),
            None => s.to_string(),
        };
        match knock(url, label, &key, expect, lifetime_secs, KNOCK_TIMEOUT) {
            Ok(()) => {
                outln!("{}", stamp("knock: ok"));
                Exit::Success
            }
            Err(e) => {
                crate::log::stderr_line(&stamp(&format!("knockd: knock failed: {e}")));
                Exit::Failure
            }
        }
    };
    let Some(every) = every_secs else {
        return once();
    };
    loop {
        if once() == Exit::Usage {
            return Exit::Usage;
        }
        std::thread::sleep(Duration::from_secs(every));
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
    let warning = crate::keys::clients_file::mode_warning(path, meta.mode());
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
/// `lifetime`: the rule lifetime to ask for, in seconds; `None` knocks exactly as before.
pub(crate) fn knock(
    url: &KnockUrl,
    label: &str,
    key: &Key,
    expect: &str,
    lifetime: Option<u64>,
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
    let step2 = url.knock_url(label, &challenge, key, lifetime);
    let answer = get(&agent, &step2, "knock")?;
    if answer == expect {
        Ok(())
    } else if answer == crate::config::DEFAULT_MESSAGE_FAILURE {
        Err(ClientError::Refused {
            body: shown(&answer),
            lifetime: lifetime.is_some(),
        })
    } else {
        // The client cannot know the server's texts: a different answer may be a grant with
        // another MESSAGE_SUCCESS, so it is shown beside what was expected, not called a refusal.
        Err(ClientError::Unexpected {
            body: shown(&answer),
            expect: shown(expect),
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

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const H_VECTOR: &str = "265adca404e988c77998cd1647f363e61e0916dfe7bf503cea01624ad9f9e8b8";

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
            knock(&url, "office", &key, ok, None, Duration::from_secs(5)),
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
            None,
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
            None,
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
            None,
            Duration::from_secs(5),
        );
        match r {
            Err(e @ ClientError::Transport { .. }) => {
                assert!(!e.to_string().contains("favico"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            knock(&url, "bad label", &key, ok, None, Duration::from_secs(1)),
            Err(ClientError::Label)
        );
    }

    /// `--ttl`: step 2 carries L inside the signed part, and a refusal says that an older
    /// knockd refuses it.
    #[test]
    fn knock_with_a_lifetime() {
        let c = "1760000000.0102030405060708.d7cdcd4b037f0d64a50783fceedfa74f";
        let key = Key::parse(KEY).unwrap();
        let ok = "500 Internal Server Error.";
        let (u, h) = serve(vec![c.into(), "500 Internal Server Error".into()]);
        let url = KnockUrl::parse(&u).unwrap();
        let r = knock(&url, "office", &key, ok, Some(600), Duration::from_secs(5));
        let e = r.expect_err("refused");
        assert!(
            e.to_string().contains("older than client-chosen lifetimes"),
            "{e}"
        );
        let targets = h.join().unwrap();
        let signed = format!("{c}.600");
        let want_h = crate::keys::challenge::response_hash(KEY, "office", &signed);
        assert_eq!(
            targets[1],
            format!("/favico.ico?k=office.{signed}.{want_h}")
        );
    }
}
