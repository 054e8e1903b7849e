//! The clients file: one client per line, `LABEL KEY [ttl=DURATION] [expires=YYYY-MM-DD]`, or
//! a host line `LABEL host=NAME [ttl=DURATION]` (`hosts`).
//!
//! - LABEL: `[A-Za-z0-9_-]{1,24}`, unique (ignoring case, so that `Office` and `office` cannot
//!   both exist and confuse `--revoke LABEL` or a reader of the console).
//! - KEY: base64url without padding, 22–128 characters; used as ASCII text, never decoded.
//!   Generated keys are 32 random bytes = 43 characters.
//! - `ttl=`: the rule lifetime for this client, RULE_TTL's grammar (`30d`, `12h`, `90m`, `45s`;
//!   a unit is required; positive; at most 36500d).
//! - `expires=`: the last UTC day the key works.
//! - `v4_prefix=` / `v6_prefix=`: open the knocking address's /N network instead of the address
//!   alone; IPv4 16–32, IPv6 48–128 (wider is refused: the line is disabled like any bad line).
//! - `#` starts a comment, at the start of a line or as a field of its own after the fields
//!   (`office KEY ttl=12h # Alice's laptop`); blank lines are ignored; CRLF and a BOM are fine.
//!
//! No message of this module ever contains a key: problems name the line and the field.
//!
//! Reloading ([`ClientsFile`]): the file is stat-ed at most once a second and re-read when its
//! inode, size, mtime or ctime changed, or on [`ClientsFile::force_reload`] (SIGHUP). A missing
//! file means no clients (deleting the file revokes every key). An invalid line disables that
//! line only: every valid line applies, and each invalid one is logged once per change of the
//! file with its line number (never its key). Keeping the whole previous set instead would keep
//! a client removed after a typo working. A file that cannot be read at all (too large, not a
//! regular file, unreadable) keeps the previous set and says so.

use std::fmt;

use ring::digest::{digest, SHA256};

pub(crate) use super::clients_error::*;
pub(crate) use super::day::parse_expires;
pub use super::day::Day;
use super::hosts::{parse_host_line, HostLine};
use super::RandomUnavailable;

/// A client's key. Debug and Display never show it; [`Key::expose`] is the only way out.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Key(String);

impl Key {
    /// A key from text, if it has the key grammar.
    pub(crate) fn parse(text: &str) -> Option<Key> {
        let ok = (MIN_KEY..=MAX_KEY).contains(&text.len()) && super::is_base64url(text);
        ok.then(|| Key(text.to_string()))
    }

    /// 32 fresh random bytes as base64url: 43 characters.
    pub(crate) fn generate() -> Result<Key, RandomUnavailable> {
        Ok(Key(super::base64url(&super::random::<32>()?)))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The first 8 hex characters of SHA-256 of the key's text: enough to tell keys apart in
    /// `--list-clients`, and 32 bits of a hash reveal nothing usable about a 256-bit key.
    pub(crate) fn fingerprint(&self) -> String {
        hex::encode(&digest(&SHA256, self.0.as_bytes()).as_ref()[..4])
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(sha256:{}…)", self.fingerprint())
    }
}

/// One line of the clients file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Client {
    pub(crate) label: String,
    pub(crate) key: Key,
    /// `ttl=`: the rule lifetime for this client's knocks; `None` = the configured one.
    pub(crate) ttl_secs: Option<u64>,
    /// `expires=`: the last UTC day the key works.
    pub(crate) expires: Option<Day>,
    /// `v4_prefix=`: open the knocking IPv4 address's /N (16–32); `None` = the address alone.
    pub(crate) v4_prefix: Option<u8>,
    /// `v6_prefix=`: the same for IPv6 (48–128).
    pub(crate) v6_prefix: Option<u8>,
    /// 1-based line in the file.
    pub(crate) line: usize,
}

impl Client {
    /// Whether the key no longer works at this Unix time: after the end (UTC) of its last day.
    pub(crate) fn is_expired(&self, now_unix: i64) -> bool {
        self.expires
            .is_some_and(|last| Day::of_unix(now_unix) > last)
    }
}

/// A parsed clients file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Clients {
    list: Vec<Client>,
    /// `LABEL host=NAME` lines (`keys::hosts`), which hold no key.
    hosts: Vec<HostLine>,
    /// Not errors, but worth a log line (e.g. two labels sharing one key).
    warnings: Vec<String>,
}

impl Clients {
    /// Parses the whole text; every problem is reported, each with its line number. For what
    /// must be right as a whole (`--check-config`, `--add-client`); serving uses
    /// [`Clients::parse_lines`].
    pub(crate) fn parse(text: &str) -> Result<Clients, Vec<ClientsError>> {
        match Clients::parse_lines(text) {
            (clients, problems) if problems.is_empty() => Ok(clients),
            (_, problems) => Err(problems),
        }
    }

    /// Every valid line, and a problem for each invalid one (with its line number, never its
    /// key). An invalid line only disables itself: a typo appended to the file must not keep a
    /// removed client's key working, nor stop every other client. A line whose label repeats
    /// an earlier one (ignoring case) is the invalid one; the earlier line stays.
    pub(crate) fn parse_lines(text: &str) -> (Clients, Vec<ClientsError>) {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut problems = Vec::new();
        let mut list: Vec<Client> = Vec::new();
        let mut hosts: Vec<HostLine> = Vec::new();
        let mut warnings = Vec::new();
        // Every valid line's label (its first field) and line, keys and hosts alike.
        let mut labels: Vec<(&str, usize)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let parsed = parse_line(line, raw);
            if let Ok(Some(_)) = parsed {
                let label = raw.split_ascii_whitespace().next().unwrap_or("");
                if let Some(&(_, first)) =
                    labels.iter().find(|(l, _)| l.eq_ignore_ascii_case(label))
                {
                    problems.push(ClientsError::DuplicateLabel {
                        line,
                        first,
                        label: label.to_string(),
                    });
                    continue;
                }
                labels.push((label, line));
            }
            match parsed {
                Ok(None) => {}
                Ok(Some(Line::Host(h))) => hosts.push(h),
                Ok(Some(Line::Key(c))) => {
                    if let Some(same) = list.iter().find(|o| o.key == c.key) {
                        warnings.push(format!(
                            "clients file lines {} and {line} ({} and {}) share one key: \
                                 removing one will not lock the other out; give each its own \
                                 key",
                            same.line, same.label, c.label
                        ));
                    }
                    list.push(c);
                }
                Err(mut e) => problems.append(&mut e),
            }
        }
        (
            Clients {
                list,
                hosts,
                warnings,
            },
            problems,
        )
    }

    /// The client with exactly this label.
    pub(crate) fn get(&self, label: &str) -> Option<&Client> {
        self.list.iter().find(|c| c.label == label)
    }

    /// `None` when there is no such client.
    #[cfg(test)]
    pub(crate) fn is_expired(&self, label: &str, now_unix: i64) -> Option<bool> {
        self.get(label).map(|c| c.is_expired(now_unix))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Client> {
        self.list.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// The host lines (`LABEL host=NAME`), in file order.
    pub(crate) fn hosts(&self) -> &[HostLine] {
        &self.hosts
    }

    /// Whether a key client or a host line has this label, ignoring case.
    pub(crate) fn has_label(&self, label: &str) -> bool {
        let same = |l: &str| l.eq_ignore_ascii_case(label);
        self.list.iter().any(|c| same(&c.label)) || self.hosts.iter().any(|h| same(&h.label))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// What works but should be fixed (two clients sharing one key).
    pub(crate) fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// One meaningful line: a key client or a host.
enum Line {
    Key(Client),
    Host(HostLine),
}

fn parse_line(line: usize, raw: &str) -> Result<Option<Line>, Vec<ClientsError>> {
    let mut fields = raw
        .split_ascii_whitespace()
        .take_while(|f| !f.starts_with('#'));
    let Some(label) = fields.next() else {
        return Ok(None);
    };
    let mut problems = Vec::new();
    if !is_label(label) {
        problems.push(ClientsError::Label { line });
    }
    let second = fields.next();
    // A key never holds `=` (base64url without padding), so `host=` is unambiguous.
    if let Some(name) = second.and_then(|f| f.strip_prefix("host=")) {
        return parse_host_line(line, label, name, fields, problems).map(|h| Some(Line::Host(h)));
    }
    let key = match second {
        None => {
            problems.push(ClientsError::MissingKey { line });
            None
        }
        Some(k) => {
            let key = Key::parse(k);
            if key.is_none() {
                let len = k.chars().count();
                problems.push(ClientsError::Key { line, len });
            }
            key
        }
    };
    let o = parse_options(line, fields, &mut problems);
    match key {
        Some(key) if problems.is_empty() => Ok(Some(Line::Key(Client {
            label: label.to_string(),
            key,
            ttl_secs: o.ttl_secs,
            expires: o.expires,
            v4_prefix: o.v4_prefix,
            v6_prefix: o.v6_prefix,
            line,
        }))),
        _ => Err(problems),
    }
}

/// The options after a key client's key (fields 3 and on): `ttl=`, `expires=`, `v4_prefix=`,
/// `v6_prefix=`, each at most once; every problem is added to `problems`.
fn parse_options<'a>(
    line: usize,
    fields: impl Iterator<Item = &'a str>,
    problems: &mut Vec<ClientsError>,
) -> KeyOptions {
    let (mut ttl_secs, mut expires) = (None, None);
    let (mut seen_ttl, mut seen_expires) = (false, false);
    let (mut v4_prefix, mut v6_prefix) = (None, None);
    for (i, field) in fields.enumerate() {
        let prefix_option = [
            ("v4_prefix", MIN_V4_PREFIX, 32, &mut v4_prefix),
            ("v6_prefix", MIN_V6_PREFIX, 128, &mut v6_prefix),
        ]
        .into_iter()
        .find_map(|(name, min, max, slot)| {
            let v = field.strip_prefix(name)?.strip_prefix('=')?;
            Some((name, min, max, slot, v))
        });
        if let Some((name, min, max, slot, v)) = prefix_option {
            match parse_prefix(v, min, max) {
                Some(_) if slot.is_some() => {
                    problems.push(ClientsError::DuplicateOption { line, name })
                }
                Some(n) => *slot = Some(n),
                None => problems.push(ClientsError::Prefix {
                    line,
                    name,
                    min,
                    max,
                }),
            }
            continue;
        }
        if let Some(v) = field.strip_prefix("ttl=") {
            if std::mem::replace(&mut seen_ttl, true) {
                problems.push(ClientsError::DuplicateOption { line, name: "ttl" });
            }
            match parse_rule_ttl(v) {
                Ok(s) => ttl_secs = Some(s),
                Err(problem) => problems.push(ClientsError::Ttl { line, problem }),
            }
        } else if let Some(v) = field.strip_prefix("expires=") {
            if std::mem::replace(&mut seen_expires, true) {
                let name = "expires";
                problems.push(ClientsError::DuplicateOption { line, name });
            }
            match Day::parse(v) {
                Some(d) => expires = Some(d),
                None => problems.push(ClientsError::Expires { line }),
            }
        } else {
            problems.push(ClientsError::Field { line, field: i + 3 });
        }
    }
    KeyOptions {
        ttl_secs,
        expires,
        v4_prefix,
        v6_prefix,
    }
}

/// A key client's options, as `parse_options` read them.
struct KeyOptions {
    ttl_secs: Option<u64>,
    expires: Option<Day>,
    v4_prefix: Option<u8>,
    v6_prefix: Option<u8>,
}

/// A prefix length in `min..=max`, plain decimal digits (no sign, no `/`).
fn parse_prefix(v: &str, min: u8, max: u8) -> Option<u8> {
    if v.is_empty() || v.len() > 3 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|n| (min..=max).contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    // An independent SHA-256 (RustCrypto) to check the fingerprint computed with ring.
    use sha2::{Digest, Sha256};

    const K1: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const K2: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    #[test]
    fn prefix_options_and_their_limits() {
        for (fields, want) in [
            ("", Ok((None, None))),
            ("v4_prefix=24", Ok((Some(24), None))),
            ("v6_prefix=64", Ok((None, Some(64)))),
            ("v4_prefix=16 v6_prefix=48", Ok((Some(16), Some(48)))),
            ("v4_prefix=32 v6_prefix=128", Ok((Some(32), Some(128)))),
            ("v6_prefix=56 ttl=1h v4_prefix=24", Ok((Some(24), Some(56)))),
            (
                "v4_prefix=15",
                Err("line 1: v4_prefix= must be a prefix length from 16 to 32"),
            ),
            (
                "v4_prefix=33",
                Err("line 1: v4_prefix= must be a prefix length from 16 to 32"),
            ),
            (
                "v4_prefix=0",
                Err("line 1: v4_prefix= must be a prefix length from 16 to 32"),
            ),
            (
                "v4_prefix=/24",
                Err("line 1: v4_prefix= must be a prefix length from 16 to 32"),
            ),
            (
                "v4_prefix=+24",
                Err("line 1: v4_prefix= must be a prefix length from 16 to 32"),
            ),
            (
                "v4_prefix=",
                Err("line 1: v4_prefix= must be a prefix length from 16 to 32"),
            ),
            (
                "v6_prefix=47",
                Err("line 1: v6_prefix= must be a prefix length from 48 to 128"),
            ),
            (
                "v6_prefix=129",
                Err("line 1: v6_prefix= must be a prefix length from 48 to 128"),
            ),
            (
                "v4_prefix=24 v4_prefix=24",
                Err("line 1: v4_prefix= is given twice"),
            ),
            (
                "v4_prefix24",
                Err("line 1: field 3 is none of ttl=DURATION"),
            ),
        ] {
            let got = Clients::parse_lines(&format!("office {K1} {fields}\n"));
            match want {
                Ok(w) => {
                    assert!(got.1.is_empty(), "{fields}: {:?}", got.1);
                    let c = got.0.get("office").expect("office");
                    assert_eq!((c.v4_prefix, c.v6_prefix), w, "{fields}");
                }
                Err(msg) => {
                    // The line is disabled, and the problem names it.
                    assert!(got.0.is_empty(), "{fields}");
                    let text = got.1[0].to_string();
                    assert!(text.starts_with(msg), "{fields}: {text}");
                    assert!(!text.contains(K1));
                }
            }
        }
    }

    #[test]
    fn parses_lines_options_comments() {
        let text = format!(
            "\u{feff}# header\n\n  office {K1} ttl=12h expires=2027-06-30 # laptop\r\n\
             phone_2 {K2}\n"
        );
        let c = Clients::parse(&text).expect("valid");
        assert_eq!(c.len(), 2);
        let o = c.get("office").unwrap();
        assert_eq!(o.key.expose(), K1);
        assert_eq!(o.ttl_secs, Some(12 * 3600));
        assert_eq!(o.expires.unwrap().to_string(), "2027-06-30");
        assert_eq!(o.line, 3);
        let p = c.get("phone_2").unwrap();
        assert_eq!((p.ttl_secs, p.expires), (None, None));
        assert!(c.get("Office").is_none(), "lookup is exact");
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn every_problem_with_its_line_and_never_the_key() {
        let secretish = "SeCrEtSeCrEtSeCrEtSeCrEt+";
        let text = [
            format!("bad.label {K1}"),             // 1
            "lonely".to_string(),                  // 2
            format!("short {secretish}"),          // 3
            format!("t1 {K1} ttl=12"),             // 4
            format!("t2 {K2} ttl=0h"),             // 5
            format!("t3 {K2} expires=2027-02-30"), // 6
            format!("t4 {K2} {secretish}"),        // 7
            format!("t5 {K2} ttl=1h ttl=2h"),      // 8
            format!("ok {K1}"),                    // 9
            format!("OK {K2}"),                    // 10
            format!("{} {K1}", "x".repeat(25)),    // 11
            format!("t6 {K1} ttl=1w"),             // 12
            format!("t7 {} ", "A".repeat(129)),    // 13
        ]
        .join("\n");
        let errs = Clients::parse(&text).expect_err("invalid");
        let want = vec![
            ClientsError::Label { line: 1 },
            ClientsError::MissingKey { line: 2 },
            ClientsError::Key { line: 3, len: 25 },
            ClientsError::Ttl {
                line: 4,
                problem: "is not a duration like 12h, 90m or 30d (at most 36500d)",
            },
            ClientsError::Ttl {
                line: 5,
                problem: "must be positive",
            },
            ClientsError::Expires { line: 6 },
            ClientsError::Field { line: 7, field: 3 },
            ClientsError::DuplicateOption {
                line: 8,
                name: "ttl",
            },
            ClientsError::DuplicateLabel {
                line: 10,
                first: 9,
                label: "OK".into(),
            },
            ClientsError::Label { line: 11 },
            ClientsError::Ttl {
                line: 12,
                problem: "is not a duration like 12h, 90m or 30d (at most 36500d)",
            },
            ClientsError::Key { line: 13, len: 129 },
        ];
        assert_eq!(errs, want);
        for e in &errs {
            let s = e.to_string();
            assert!(
                !s.contains(secretish) && !s.contains(K1) && !s.contains(K2),
                "{s}"
            );
            assert!(s.starts_with("line "), "{s}");
        }
    }

    #[test]
    fn shared_key_is_a_warning() {
        let c = Clients::parse(&format!("a {K1}\nb {K1}\n")).expect("valid");
        assert_eq!(c.warnings().len(), 1);
        assert!(c.warnings()[0].contains("lines 1 and 2"));
        assert!(!c.warnings()[0].contains(K1));
    }

    #[test]
    fn ttl_grammar_matches_rule_ttl() {
        for (text, want) in [
            ("30d", Ok(30 * 86_400)),
            ("12H", Ok(12 * 3600)),
            ("90m", Ok(5400)),
            ("45s", Ok(45)),
            ("36500d", Ok(36_500 * 86_400)),
            (
                "36501d",
                Err("is not a duration like 12h, 90m or 30d (at most 36500d)"),
            ),
            (
                "99999999999999999999d",
                Err("is not a duration like 12h, 90m or 30d (at most 36500d)"),
            ),
            (
                "15",
                Err("is not a duration like 12h, 90m or 30d (at most 36500d)"),
            ),
            ("0s", Err("must be positive")),
            (
                "-5d",
                Err("is not a duration like 12h, 90m or 30d (at most 36500d)"),
            ),
            (
                "d",
                Err("is not a duration like 12h, 90m or 30d (at most 36500d)"),
            ),
            (
                "5w",
                Err("is not a duration like 12h, 90m or 30d (at most 36500d)"),
            ),
        ] {
            assert_eq!(parse_ttl(text), want, "{text}");
        }
        assert_eq!(parse_rule_ttl("2m"), Ok(120));
        assert_eq!(crate::rules::desc::MIN_TTL_SECS, 120, "the message says 2m");
        for short in ["119s", "1m", "45s"] {
            assert!(parse_rule_ttl(short)
                .expect_err(short)
                .contains("shorter than 2m"));
        }
        assert_eq!(format_ttl(5400), "90m");
        assert_eq!(format_ttl(86_400 * 30), "30d");
        assert_eq!(format_ttl(61), "61s");
    }

    #[test]
    fn days_and_expiry() {
        for (text, days) in [
            ("1970-01-01", Some(0)),
            ("2000-02-29", Some(11_016)),
            ("2024-12-31", Some(20_088)),
            ("2100-02-29", None),
            ("2027-13-01", None),
            ("2027-00-10", None),
            ("1969-12-31", None),
            ("2027-6-30", None),
            ("2027-06-3x", None),
            ("+027-06-30", None),
        ] {
            assert_eq!(Day::parse(text).map(|d| d.0), days, "{text}");
            if let Some(d) = Day::parse(text) {
                assert_eq!(d.to_string(), text);
            }
        }
        let c = Clients::parse(&format!("a {K1} expires=2027-06-30\nb {K2}")).unwrap();
        let end = Day::parse("2027-07-01").unwrap().0 * 86_400; // 2027-07-01T00:00:00Z
        assert_eq!(
            c.is_expired("a", end - 1),
            Some(false),
            "works all of its last day"
        );
        assert_eq!(c.is_expired("a", end), Some(true));
        assert_eq!(c.is_expired("b", i64::MAX / 2), Some(false));
        assert_eq!(c.is_expired("nobody", 0), None);
    }

    #[test]
    fn keys_generate_and_fingerprint() {
        let k = Key::generate().unwrap();
        assert_eq!(k.expose().len(), 43);
        assert!(Key::parse(k.expose()).is_some());
        assert_ne!(k, Key::generate().unwrap());
        // printf '%s' AAAA…A (43) | sha256sum | cut -c1-8
        let fixed = Key::parse(K1).unwrap();
        assert_eq!(fixed.fingerprint(), hex::encode(&Sha256::digest(K1)[..4]));
        assert_eq!(fixed.fingerprint().len(), 8);
        assert!(!format!("{fixed:?}").contains(K1));
        assert!(Key::parse(&"A".repeat(21)).is_none());
        assert!(Key::parse(&"A".repeat(22)).is_some());
        assert!(Key::parse(&"A".repeat(128)).is_some());
        assert!(Key::parse(&"A".repeat(129)).is_none());
    }
}
