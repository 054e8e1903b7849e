//! The clients file: one client per line, `LABEL KEY [ttl=DURATION] [expires=YYYY-MM-DD]`.
//!
//! - LABEL: `[A-Za-z0-9_-]{1,24}`, unique (ignoring case, so that `Office` and `office` cannot
//!   both exist and confuse `--revoke LABEL` or a reader of the console).
//! - KEY: base64url without padding, 22–128 characters; used as ASCII text, never decoded.
//!   Generated keys are 32 random bytes = 43 characters.
//! - `ttl=`: the rule lifetime for this client, RULE_TTL's grammar (`30d`, `12h`, `90m`, `45s`;
//!   a unit is required; positive; at most 36500d).
//! - `expires=`: the last UTC day the key works.
//! - `#` starts a comment, at the start of a line or as a field of its own after the fields
//!   (`office KEY ttl=12h # Alice's laptop`); blank lines are ignored; CRLF and a BOM are fine.
//!
//! No message of this module ever contains a key: problems name the line and the field.
//!
//! Reloading ([`ClientsFile`]): the file is stat-ed at most once a second and re-read when its
//! inode, size, mtime or ctime changed, or on [`ClientsFile::force_reload`] (SIGHUP). A missing
//! file means no clients (deleting the file revokes every key). A file that cannot be read or
//! has any invalid line keeps the previous good set, and says so once per change of the file:
//! a half-saved edit or a typo must not lock every client out of the server, and revocation by
//! `--remove-client` never goes through an invalid state because it rewrites atomically.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::digest::{digest, SHA256};

use super::RandomUnavailable;

pub(crate) const MAX_LABEL: usize = 24;
pub(crate) const MIN_KEY: usize = 22;
pub(crate) const MAX_KEY: usize = 128;
/// A clients file larger than this is refused: about 5,000 clients with comments.
pub(crate) const MAX_FILE: u64 = 1 << 20;
/// Same bound as every duration of the configuration.
const MAX_TTL_SECS: u64 = 36_500 * 86_400;
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
    /// A field after the key that is neither `ttl=` nor `expires=` (1-based field number).
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

const LINE_FORMAT: &str = "lines are LABEL KEY [ttl=DURATION] [expires=YYYY-MM-DD]";

impl fmt::Display for ClientsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
            Field { line, field } => write!(
                f,
                "line {line}: field {field} is neither ttl=DURATION nor expires=YYYY-MM-DD \
                 ({LINE_FORMAT}; # starts a comment)"
            ),
            DuplicateOption { line, name } => {
                write!(f, "line {line}: {name}= is given twice; keep one")
            }
            DuplicateLabel { line, first, label } => write!(
                f,
                "line {line}: the label {label} is already used on line {first} (labels are \
                 unique, ignoring case); rename or remove one"
            ),
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

impl std::error::Error for ClientsError {}

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

/// A calendar day, as days since 1970-01-01 (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Day(pub(crate) i64);

impl Day {
    /// `YYYY-MM-DD`, years 1970–9999, a real day of that month.
    pub(crate) fn parse(text: &str) -> Option<Day> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let s = &text[r];
            s.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| s.parse().ok())?
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let days_in_month = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        if y < 1970 || !(1..=days_in_month).contains(&d) {
            return None;
        }
        Some(Day(days_from_civil(y, m, d)))
    }

    /// The day holding this Unix time.
    pub(crate) fn of_unix(secs: i64) -> Day {
        Day(secs.div_euclid(86_400))
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// Howard Hinnant's `days_from_civil` (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// RULE_TTL's grammar (src/config.rs `parse_duration` without bare numbers): digits then `s`,
/// `m`, `h` or `d` (either case); positive; at most 36500d. The error says what is wrong.
pub(crate) fn parse_ttl(text: &str) -> Result<u64, &'static str> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = (&t[..split], t[split..].trim());
    if digits.is_empty() {
        return Err("is not a duration");
    }
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" => return Err("needs a unit (s, m, h or d)"),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err("has a unit other than s, m, h or d"),
    };
    match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)) {
        Some(0) => Err("must be positive"),
        Some(s) if s <= MAX_TTL_SECS => Ok(s),
        _ => Err("is longer than 36500d"),
    }
}

/// Seconds in the largest unit that divides them, as RULE_TTL is printed: `30d`, `90m`, `45s`.
pub(crate) fn format_ttl(secs: u64) -> String {
    match secs {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

pub(crate) fn is_label(s: &str) -> bool {
    (1..=MAX_LABEL).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
    /// Not errors, but worth a log line (e.g. two labels sharing one key).
    warnings: Vec<String>,
}

impl Clients {
    /// Parses the whole text; every problem is reported, each with its line number.
    pub(crate) fn parse(text: &str) -> Result<Clients, Vec<ClientsError>> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut problems = Vec::new();
        let mut list: Vec<Client> = Vec::new();
        let mut warnings = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            match parse_line(line, raw) {
                Ok(None) => {}
                Ok(Some(c)) => {
                    if let Some(first) =
                        list.iter().find(|o| o.label.eq_ignore_ascii_case(&c.label))
                    {
                        problems.push(ClientsError::DuplicateLabel {
                            line,
                            first: first.line,
                            label: c.label.clone(),
                        });
                    } else {
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
                }
                Err(mut e) => problems.append(&mut e),
            }
        }
        if problems.is_empty() {
            Ok(Clients { list, warnings })
        } else {
            Err(problems)
        }
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

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

fn parse_line(line: usize, raw: &str) -> Result<Option<Client>, Vec<ClientsError>> {
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
    let key = match fields.next() {
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
    let (mut ttl_secs, mut expires) = (None, None);
    let (mut seen_ttl, mut seen_expires) = (false, false);
    for (i, field) in fields.enumerate() {
        if let Some(v) = field.strip_prefix("ttl=") {
            if std::mem::replace(&mut seen_ttl, true) {
                problems.push(ClientsError::DuplicateOption { line, name: "ttl" });
            }
            match parse_ttl(v) {
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
    match key {
        Some(key) if problems.is_empty() => Ok(Some(Client {
            label: label.to_string(),
            key,
            ttl_secs,
            expires,
            line,
        })),
        _ => Err(problems),
    }
}

/// The warning for a clients file (or key file) with this mode, if group or others may read it.
pub(crate) fn mode_warning(path: &Path, mode: u32) -> Option<String> {
    (mode & 0o044 != 0).then(|| {
        format!(
            "{} is readable by group or others (mode {:03o}); it holds keys: chmod 600 it",
            path.display(),
            mode & 0o777
        )
    })
}

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// What a refresh did, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reload {
    /// Not looked at (checked less than a second ago) or not changed.
    Unchanged,
    /// Read and now in use; `warnings` are worth a log line each.
    Loaded {
        clients: usize,
        warnings: Vec<String>,
    },
    /// The file is gone: no clients any more.
    Missing,
    /// The file changed but cannot be used; the previous set stays in use.
    Kept { problems: Vec<ClientsError> },
}

/// The clients file as the serving knockd sees it. Not synchronised: the server keeps it in a
/// `Mutex`, calls [`ClientsFile::refresh`] then [`ClientsFile::clients`] per knock (cheap: at
/// most one `stat` a second), and clones the `Arc` out before verifying.
#[derive(Debug)]
pub(crate) struct ClientsFile {
    path: PathBuf,
    clients: Arc<Clients>,
    /// The version last looked at (loaded or rejected); `None` = missing.
    stamp: Option<Stamp>,
    checked: Option<Instant>,
}

impl ClientsFile {
    /// At start-up: a missing file is no clients; an unreadable or invalid one is an error
    /// (exit 2), listing every problem. The `Reload` carries the warnings to print.
    pub(crate) fn open(path: &Path) -> Result<(ClientsFile, Reload), ClientsError> {
        let mut file = ClientsFile {
            path: path.to_path_buf(),
            clients: Arc::default(),
            stamp: None,
            checked: None,
        };
        match file.force_reload() {
            Reload::Kept { mut problems } => Err(if problems.len() == 1 {
                problems.remove(0)
            } else {
                ClientsError::Invalid {
                    path: path.to_path_buf(),
                    problems,
                }
            }),
            r => Ok((file, r)),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The set in use.
    pub(crate) fn clients(&self) -> Arc<Clients> {
        Arc::clone(&self.clients)
    }

    /// Looks at the file if the last look was at least [`CHECK_INTERVAL`] before `now`, and
    /// re-reads it if it changed.
    pub(crate) fn refresh(&mut self, now: Instant) -> Reload {
        if self
            .checked
            .is_some_and(|t| now.saturating_duration_since(t) < CHECK_INTERVAL)
        {
            return Reload::Unchanged;
        }
        self.checked = Some(now);
        let stamp = match fs::metadata(&self.path) {
            Ok(m) => Some(Stamp::of(&m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            // Cannot even stat it: treat as a change, so that the read reports why.
            Err(_) => return self.reload(None),
        };
        if stamp == self.stamp {
            return Reload::Unchanged;
        }
        self.reload(stamp)
    }

    /// Re-reads now, whatever the metadata says (SIGHUP).
    pub(crate) fn force_reload(&mut self) -> Reload {
        self.checked = Some(Instant::now());
        let stamp = fs::metadata(&self.path).ok().map(|m| Stamp::of(&m));
        self.reload(stamp)
    }

    fn reload(&mut self, stamp: Option<Stamp>) -> Reload {
        self.stamp = stamp;
        match read_clients(&self.path) {
            Ok(None) => {
                self.clients = Arc::default();
                Reload::Missing
            }
            Ok(Some((clients, mode))) => {
                let mut warnings = clients.warnings.clone();
                warnings.extend(mode_warning(&self.path, mode));
                let n = clients.len();
                self.clients = Arc::new(clients);
                Reload::Loaded {
                    clients: n,
                    warnings,
                }
            }
            Err(problems) => Reload::Kept { problems },
        }
    }
}

fn io_error(path: &Path, action: &'static str, e: &io::Error) -> ClientsError {
    ClientsError::Io {
        path: path.to_path_buf(),
        action,
        what: e.to_string(),
    }
}

/// The file's text and mode; `None` when it does not exist.
fn read_text(path: &Path) -> Result<Option<(String, fs::Metadata)>, ClientsError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, "read", &e)),
    };
    let meta = file.metadata().map_err(|e| io_error(path, "read", &e))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, "read", &e))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(ClientsError::TooLarge);
    }
    let text = String::from_utf8(bytes).map_err(|_| ClientsError::NotUtf8)?;
    Ok(Some((text, meta)))
}

fn read_clients(path: &Path) -> Result<Option<(Clients, u32)>, Vec<ClientsError>> {
    let Some((text, meta)) = read_text(path).map_err(|e| vec![e])? else {
        return Ok(None);
    };
    Ok(Some((Clients::parse(&text)?, meta.mode())))
}

/// Adds a client with a fresh key and returns the key (to print once, in the recipes).
/// Creates the file with mode 0600 when missing. Refuses a label that exists (ignoring case)
/// and a file with invalid lines. The file is rewritten atomically, keeping its mode.
pub(crate) fn add_client(
    path: &Path,
    label: &str,
    ttl_secs: Option<u64>,
    expires: Option<Day>,
) -> Result<Key, ClientsError> {
    if !is_label(label) {
        return Err(ClientsError::Label { line: 0 });
    }
    let existing = read_text(path)?;
    let (mut text, mode) = match existing {
        Some((text, meta)) => {
            let clients = Clients::parse(&text).map_err(|problems| ClientsError::Invalid {
                path: path.to_path_buf(),
                problems,
            })?;
            if clients.iter().any(|c| c.label.eq_ignore_ascii_case(label)) {
                return Err(ClientsError::LabelExists {
                    label: label.to_string(),
                });
            }
            (text, Some(meta))
        }
        None => (
            "# knockd clients: LABEL KEY [ttl=DURATION] [expires=YYYY-MM-DD]\n\
             # Keys are secrets: keep this file mode 0600. Manage it with knockd --add-client,\n\
             # --remove-client and --list-clients.\n"
                .to_string(),
            None,
        ),
    };
    let key = Key::generate().map_err(ClientsError::Random)?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&client_line(label, &key, ttl_secs, expires));
    text.push('\n');
    write_atomically(path, &text, mode.as_ref())?;
    Ok(key)
}

/// `LABEL KEY[ ttl=…][ expires=…]`, as `add_client` writes it.
pub(crate) fn client_line(
    label: &str,
    key: &Key,
    ttl_secs: Option<u64>,
    expires: Option<Day>,
) -> String {
    let mut line = format!("{label} {}", key.expose());
    if let Some(t) = ttl_secs {
        line.push_str(&format!(" ttl={}", format_ttl(t)));
    }
    if let Some(d) = expires {
        line.push_str(&format!(" expires={d}"));
    }
    line
}

/// Removes the line(s) whose label is exactly `label`, keeping every other byte, atomically.
/// Works on a file with invalid lines too, so that revoking is always possible.
pub(crate) fn remove_client(path: &Path, label: &str) -> Result<(), ClientsError> {
    let no_such = || ClientsError::NoSuchClient {
        label: label.to_string(),
    };
    let Some((text, meta)) = read_text(path)? else {
        return Err(no_such());
    };
    let mut removed = false;
    let kept: String = text
        .split_inclusive('\n')
        .filter(|raw| {
            let first = raw.split_ascii_whitespace().next().map(|f| {
                // A BOM belongs to the first line's label field.
                f.strip_prefix('\u{feff}').unwrap_or(f)
            });
            let hit = first == Some(label);
            removed |= hit;
            !hit
        })
        .collect();
    if !removed {
        return Err(no_such());
    }
    write_atomically(path, &kept, Some(&meta))
}

/// Writes `text` to a temporary file beside `path` (created exclusively, so two concurrent
/// writers cannot both proceed), fsyncs it, renames it over `path` and fsyncs the directory.
/// The mode (and, when permitted, the owner) of the old file is kept; a new file gets 0600.
fn write_atomically(
    path: &Path,
    text: &str,
    old: Option<&fs::Metadata>,
) -> Result<(), ClientsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{}.tmp", name.unwrap_or_else(|| "clients".into())));
    let mode = old.map_or(NEW_FILE_MODE, |m| m.mode() & 0o7777);
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(NEW_FILE_MODE)
        .open(&tmp)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(ClientsError::TempExists { path: tmp })
        }
        Err(e) => return Err(io_error(&tmp, "create", &e)),
    };
    let result = (|| {
        if let Some(m) = old {
            // Only root may give a file away; anyone else keeps owning what they write.
            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
        }
        // set_permissions is not subject to the umask, unlike the mode given to open.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable once the directory is; failing to sync it is not an error.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: io::Error| {
        let _ = fs::remove_file(&tmp);
        io_error(path, "write", &e)
    })
}

/// `--list-clients`: one line per client, never the key.
pub(crate) fn list_text(clients: &Clients, now_unix: i64) -> String {
    let mut out = format!(
        "{:<24}  {:<8}  {:<18}  {}\n",
        "LABEL", "TTL", "EXPIRES", "KEY SHA-256"
    );
    for c in clients.iter() {
        let ttl = c.ttl_secs.map_or_else(|| "default".into(), format_ttl);
        let expires = match c.expires {
            None => "never".to_string(),
            Some(d) if c.is_expired(now_unix) => format!("{d} (expired)"),
            Some(d) => d.to_string(),
        };
        out.push_str(&format!(
            "{:<24}  {:<8}  {:<18}  {}\n",
            c.label,
            ttl,
            expires,
            c.key.fingerprint()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    // An independent SHA-256 (RustCrypto) to check the fingerprint computed with ring.
    use sha2::{Digest, Sha256};

    const K1: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const K2: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "knockd-keys-{name}-{}-{:x}",
            std::process::id(),
            u64::from_le_bytes(crate::keys::random().unwrap())
        ));
        fs::create_dir_all(&d).unwrap();
        d
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
                problem: "needs a unit (s, m, h or d)",
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
                problem: "has a unit other than s, m, h or d",
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
            ("36500d", Ok(MAX_TTL_SECS)),
            ("36501d", Err("is longer than 36500d")),
            ("99999999999999999999d", Err("is longer than 36500d")),
            ("15", Err("needs a unit (s, m, h or d)")),
            ("0s", Err("must be positive")),
            ("-5d", Err("is not a duration")),
            ("d", Err("is not a duration")),
            ("5w", Err("has a unit other than s, m, h or d")),
        ] {
            assert_eq!(parse_ttl(text), want, "{text}");
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

    #[test]
    fn mode_warnings() {
        let p = Path::new("/etc/knockd.clients");
        assert_eq!(mode_warning(p, 0o100600), None);
        assert_eq!(mode_warning(p, 0o700), None);
        assert!(mode_warning(p, 0o640).unwrap().contains("mode 640"));
        assert!(mode_warning(p, 0o604).is_some());
    }

    #[test]
    fn add_list_remove() {
        let dir = tmpdir("add");
        let path = dir.join("knockd.clients");
        let k1 = add_client(&path, "office", Some(12 * 3600), Day::parse("2027-06-30")).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let k2 = add_client(&path, "phone", None, None).unwrap();
        assert_eq!(
            add_client(&path, "OFFICE", None, None),
            Err(ClientsError::LabelExists {
                label: "OFFICE".into()
            })
        );
        assert_eq!(
            add_client(&path, "no good", None, None),
            Err(ClientsError::Label { line: 0 })
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!(
            "office {} ttl=12h expires=2027-06-30\n",
            k1.expose()
        )));
        assert!(text.ends_with(&format!("phone {}\n", k2.expose())));
        let c = Clients::parse(&text).unwrap();
        let listed = list_text(&c, Day::parse("2028-01-01").unwrap().0 * 86_400);
        assert!(listed.contains("2027-06-30 (expired)"), "{listed}");
        assert!(listed.contains(&k2.fingerprint()));
        assert!(!listed.contains(k1.expose()) && !listed.contains(k2.expose()));

        // Removing keeps the rest byte for byte and the mode the operator chose.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        remove_client(&path, "office").unwrap();
        let after = fs::read_to_string(&path).unwrap();
        assert_eq!(
            after,
            text.replace(
                &format!("office {} ttl=12h expires=2027-06-30\n", k1.expose()),
                ""
            )
        );
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        assert_eq!(
            remove_client(&path, "office"),
            Err(ClientsError::NoSuchClient {
                label: "office".into()
            })
        );
        // A stale temp file blocks writers instead of being overwritten.
        fs::write(dir.join(".knockd.clients.tmp"), "").unwrap();
        assert!(matches!(
            remove_client(&path, "phone"),
            Err(ClientsError::TempExists { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn remove_works_on_an_invalid_file_add_refuses() {
        let dir = tmpdir("rm");
        let path = dir.join("c");
        fs::write(&path, format!("gone {K1}\nbroken line here\n")).unwrap();
        assert!(matches!(
            add_client(&path, "x", None, None),
            Err(ClientsError::Invalid { .. })
        ));
        remove_client(&path, "gone").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "broken line here\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reload_cache() {
        let dir = tmpdir("reload");
        let path = dir.join("clients");
        let t0 = Instant::now();
        let (mut f, r) = ClientsFile::open(&path).unwrap();
        assert_eq!(r, Reload::Missing);
        assert!(f.clients().is_empty());

        fs::write(&path, format!("a {K1}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        // Checked at most once a second: a first look happened in open().
        assert_eq!(f.refresh(t0), Reload::Unchanged);
        let t1 = t0 + CHECK_INTERVAL * 2;
        assert_eq!(
            f.refresh(t1),
            Reload::Loaded {
                clients: 1,
                warnings: vec![]
            }
        );
        assert_eq!(f.refresh(t1 + CHECK_INTERVAL * 2), Reload::Unchanged);

        // Invalid: the previous set stays, the problem is reported once.
        fs::write(&path, format!("a {K1}\nb\n")).unwrap();
        let t2 = t1 + CHECK_INTERVAL * 4;
        assert_eq!(
            f.refresh(t2),
            Reload::Kept {
                problems: vec![ClientsError::MissingKey { line: 2 }]
            }
        );
        assert_eq!(f.clients().len(), 1);
        assert_eq!(f.refresh(t2 + CHECK_INTERVAL * 2), Reload::Unchanged);

        // Fixed, group-readable: loaded with a warning; SIGHUP re-reads regardless.
        fs::write(&path, format!("a {K1}\nb {K2}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        match f.force_reload() {
            Reload::Loaded {
                clients: 2,
                warnings,
            } => {
                assert_eq!(warnings.len(), 1);
                assert!(warnings[0].contains("chmod 600"));
            }
            other => panic!("{other:?}"),
        }
        assert!(f.clients().get("b").is_some());

        // Deleting the file revokes everyone.
        fs::remove_file(&path).unwrap();
        assert_eq!(
            f.refresh(Instant::now() + CHECK_INTERVAL * 10),
            Reload::Missing
        );
        assert!(f.clients().is_empty());

        // At start-up an invalid file is an error.
        fs::write(&path, "x\ny\n").unwrap();
        assert!(matches!(
            ClientsFile::open(&path),
            Err(ClientsError::Invalid { .. })
        ));
        fs::write(&path, "x\n").unwrap();
        assert_eq!(
            ClientsFile::open(&path).unwrap_err(),
            ClientsError::MissingKey { line: 1 }
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
