//! What can be wrong with the clients file (`clients`, `hosts`) or an operation on it, the
//! limits of its fields, and the small grammars both kinds of line share (labels, rule
//! lifetimes). No message here ever contains a key: problems name the line and the field.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::RandomUnavailable;
use crate::grammar;

pub(crate) const MAX_LABEL: usize = 24;
pub(crate) const MIN_KEY: usize = 22;
pub(crate) const MAX_KEY: usize = 128;
/// A clients file larger than this is refused: about 5,000 clients with comments.
pub(crate) const MAX_FILE: u64 = 1 << 20;
/// The widest block a client line may open: an IPv4 /16 (65,536 addresses) and an IPv6 /48 (a
/// whole site). Anything wider is no longer "this client's network" but a provider's.
pub(crate) const MIN_V4_PREFIX: u8 = 16;
pub(crate) const MIN_V6_PREFIX: u8 = 48;
/// Same bound as every duration of the configuration.
/// How often [`ClientsFile::refresh`] looks at the file's metadata at most.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Mode of a clients file that `add_client` creates.
pub(crate) const NEW_FILE_MODE: u32 = 0o600;

/// Everything that can be wrong with the clients file or an operation on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientsError {
    /// The label field (or a `--add-client` argument when `line` is 0) is not a label.
    Label {
        line: usize,
    },
    MissingKey {
        line: usize,
    },
    /// `len` is the length of the key field in characters, never the field itself.
    Key {
        line: usize,
        len: usize,
    },
    Ttl {
        line: usize,
        problem: &'static str,
    },
    Expires {
        line: usize,
    },
    /// `v4_prefix=` or `v6_prefix=` (`name`) is not a whole number from `min` to `max`.
    Prefix {
        line: usize,
        name: &'static str,
        min: u8,
        max: u8,
    },
    /// A field after the key that is none of the options (1-based field number).
    Field {
        line: usize,
        field: usize,
    },
    DuplicateOption {
        line: usize,
        name: &'static str,
    },
    DuplicateLabel {
        line: usize,
        first: usize,
        label: String,
    },
    NotUtf8,
    TooLarge,
    /// Reading, writing or renaming failed; `what` is the OS's message.
    Io {
        path: PathBuf,
        action: &'static str,
        what: String,
    },
    /// The file has invalid lines; an operation that rewrites it refuses to go on.
    Invalid {
        path: PathBuf,
        problems: Vec<ClientsError>,
    },
    /// `host=` does not name a host (`keys::hosts::is_host_name`); line 0: `--add-host`.
    HostName {
        line: usize,
    },
    /// A field after `host=NAME` other than `ttl=` (1-based field number).
    HostField {
        line: usize,
        field: usize,
    },
    LabelExists {
        label: String,
    },
    NoSuchClient {
        label: String,
    },
    /// The temporary file of an atomic rewrite already exists.
    TempExists {
        path: PathBuf,
    },
    Random(RandomUnavailable),
}

const LINE_FORMAT: &str = "lines are LABEL KEY [ttl=DURATION] [expires=YYYY-MM-DD] \
     [v4_prefix=N] [v6_prefix=N], or LABEL host=NAME [ttl=DURATION]";

impl fmt::Display for ClientsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ClientsError::*;
        match self {
            Label { .. }
            | MissingKey { .. }
            | Key { .. }
            | Ttl { .. }
            | Expires { .. }
            | Prefix { .. }
            | Field { .. }
            | HostName { .. }
            | HostField { .. }
            | DuplicateOption { .. }
            | DuplicateLabel { .. } => self.fmt_line(f),
            NotUtf8 => f.write_str("the clients file is not UTF-8 text; save it as UTF-8"),
            TooLarge => write!(
                f,
                "the clients file is larger than {} KiB; remove unused clients",
                MAX_FILE / 1024
            ),
            Io { path, action, what } => {
                write!(f, "cannot {action} {}: {what}", path.display())
            }
            Invalid { path, problems } => {
                write!(f, "{} has problems; fix them first:", path.display())?;
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
            LabelExists { label } => write!(
                f,
                "a client labelled {label} already exists (labels are unique, ignoring case); \
                 choose another label, or remove it first with --remove-client"
            ),
            NoSuchClient { label } => write!(
                f,
                "no client is labelled {label}; --list-clients shows the labels (exact case)"
            ),
            TempExists { path } => write!(
                f,
                "{} exists: another --add-client or --remove-client is running, or one was \
                 interrupted; if none is running, delete that file and try again",
                path.display()
            ),
            Random(e) => e.fmt(f),
        }
    }
}

impl ClientsError {
    /// The problems of one line of the file (line 0: of a command's argument).
    fn fmt_line(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ClientsError::*;
        match self {
            Label { line: 0 } => write!(
                f,
                "a label is 1 to {MAX_LABEL} characters of A-Z a-z 0-9 _ -; choose another"
            ),
            Label { line } => write!(
                f,
                "line {line}: the label must be 1 to {MAX_LABEL} characters of A-Z a-z 0-9 _ - \
                 ({LINE_FORMAT})"
            ),
            MissingKey { line } => write!(
                f,
                "line {line}: the key is missing ({LINE_FORMAT}); add one with knockd --add-client"
            ),
            Key { line, len } => write!(
                f,
                "line {line}: the key must be base64url without padding (A-Z a-z 0-9 - _), \
                 {MIN_KEY} to {MAX_KEY} characters (this one has {len}); make a new one with \
                 knockd --add-client"
            ),
            Ttl { line, problem } => write!(
                f,
                "line {line}: ttl= {problem}; write a duration like 30d, 12h, 90m or 45s"
            ),
            Expires { line } => write!(
                f,
                "line {line}: expires= must be a date YYYY-MM-DD, the last UTC day the key works"
            ),
            Prefix {
                line,
                name,
                min,
                max,
            } => write!(
                f,
                "line {line}: {name}= must be a prefix length from {min} to {max} (no wider \
                 than /{min}; {max} = the address alone); this client is disabled until it is \
                 fixed"
            ),
            Field { line, field } => write!(
                f,
                "line {line}: field {field} is none of ttl=DURATION, expires=YYYY-MM-DD, \
                 v4_prefix=N, v6_prefix=N ({LINE_FORMAT}; # starts a comment)"
            ),
            HostName { line: 0 } => f.write_str(
                "dot-separated labels of A-Z a-z 0-9 - (not an IP address), at most 253 \
                 characters, like home.example.net",
            ),
            HostName { line } => write!(
                f,
                "line {line}: host= must be a host name like home.example.net (labels of \
                 A-Z a-z 0-9 -, not an IP address)"
            ),
            HostField { line, field } => write!(
                f,
                "line {line}: field {field} is not ttl=DURATION, a host line's one option"
            ),
            DuplicateOption { line, name } => {
                write!(f, "line {line}: {name}= is given twice; keep one")
            }
            DuplicateLabel { line, first, label } => write!(
                f,
                "line {line}: the label {label} is already used on line {first} (labels are \
                 unique, ignoring case); rename or remove one"
            ),
            // The file's own problems are written by `fmt`.
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ClientsError {}

/// RULE_TTL's grammar (`grammar::parse_duration` without bare numbers): digits then `s`, `m`,
/// `h` or `d`; positive; at most 36500d. The error never repeats the text: a key written in the
/// wrong field must not reach a message.
pub(crate) fn parse_ttl(text: &str) -> Result<u64, &'static str> {
    match grammar::parse_duration(text, false) {
        Ok(0) => Err("must be positive"),
        Ok(s) => Ok(s),
        Err(_) => Err("is not a duration like 12h, 90m or 30d (at most 36500d)"),
    }
}

/// A rule lifetime (`--ttl`, a line's `ttl=`): a duration of at least
/// [`MIN_TTL_SECS`](crate::rules::desc::MIN_TTL_SECS), the same floor as RULE_TTL's.
pub(crate) fn parse_rule_ttl(text: &str) -> Result<u64, &'static str> {
    match parse_ttl(text)? {
        s if s < crate::rules::desc::MIN_TTL_SECS => Err(
            "is shorter than 2m, the shortest rule lifetime: a rule's expiry is written to the \
             minute, so a shorter one could be written already expired",
        ),
        s => Ok(s),
    }
}

/// As RULE_TTL is printed: `30d`, `90m`, `45s`.
pub(crate) fn format_ttl(secs: u64) -> String {
    grammar::format_duration(secs)
}

/// `[A-Za-z0-9_-]{1,24}`.
pub(crate) fn is_label(s: &str) -> bool {
    (1..=MAX_LABEL).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
