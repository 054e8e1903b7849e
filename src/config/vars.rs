//! The one table of knockd's variables: which keys exist (a file key outside it is warned
//! about), their defaults, and the order of the `--check-config` report. Adding a variable is
//! one row here and one line in its section (`sections.rs`).

use std::collections::HashMap;
use std::time::Duration;

use super::ConfigError;

pub(crate) struct Var {
    pub(crate) name: &'static str,
    /// Used when the variable is unset or empty after trimming. None: no default (required,
    /// optional, or derived from another variable).
    pub(crate) default: Option<&'static str>,
}

const fn var(name: &'static str, default: Option<&'static str>) -> Var {
    Var { name, default }
}

pub(crate) const DEFAULT_MESSAGE_SUCCESS: &str = "500 Internal Server Error.";
pub(crate) const DEFAULT_MESSAGE_FAILURE: &str = "500 Internal Server Error";

/// Every variable knockd reads, in report order.
pub(crate) const VARS: &[Var] = &[
    var("MESSAGE_SUCCESS", Some(DEFAULT_MESSAGE_SUCCESS)),
    var("MESSAGE_FAILURE", Some(DEFAULT_MESSAGE_FAILURE)),
    var("FW_PERMIT_PORTS_TCP", Some("")),
    var("FW_PERMIT_PORTS_UDP", Some("")),
    var("FW_RULE_NAME_PREFIX", Some("Knockd-")),
    var("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS", None),
    var("TENCENT_CLOUD_REGION", Some("ap-shanghai")),
    // Unset: each region's own host (AccessPoint::regional).
    var("TENCENT_CLOUD_ACCESS_POINT", None),
    var("TENCENT_CLOUD_CA_FILE", None),
    var("TENCENT_CLOUD_SECRET_ID", None),
    var("TENCENT_CLOUD_SECRET_KEY", None),
    var("TENCENT_CLOUD_TOKEN", None),
    var("KNOCK_REFERER", None),
    var("KNOCK_REQUEST_PATH", Some("/favico.ico")),
    var("METHOD_TO_GET_CLIENT_IP", Some("1")),
    var("DAYS_RULE_EXPIRES", Some("30")),
    var("RULE_TTL", None),
    var("BIND_IP", Some("0.0.0.0")),
    var("BIND_PORT", Some("8080")),
    var("TRUSTED_PROXIES", Some("127.0.0.0/8,::1")),
    var("QUOTA_RESERVE", Some("0")),
    var("MAX_ADDRESSES_PER_V6_64", Some("4")),
    var("MAX_CONNECTIONS", Some("4096")),
    var("CONNECTION_TIMEOUT", Some("10s")),
    var("KNOCK_TIMEOUT", Some("20s")),
    var("PRUNE_INTERVAL", Some("1h")),
    var("HOST_REFRESH", Some("5m")),
    var("LOCKOUT_FAILURES", Some("10")),
    var("LOCKOUT_WINDOW", Some("10m")),
    var("LOCKOUT_DURATION", Some("30m")),
    var("KNOCK_CLIENTS_FILE", None),
    var("KNOCK_CHALLENGE_SECRET", None),
    var("KNOCK_CHALLENGE_TTL", Some("60s")),
    var("KNOCK_REPLAY_CACHE", Some("4096")),
    var("KNOCK_PUBLIC_URL", None),
    var("NOTIFY_URL", None),
    var("NOTIFY_BODY", None),
    var("NOTIFY_HEADERS", None),
    var("NOTIFY_COMMAND", None),
    var("NOTIFY_EVENTS", Some("grant,fail,lockout")),
    var("NOTIFY_MIN_INTERVAL", Some("10m")),
    var("NOTIFY_MAX_PER_MINUTE", Some("20")),
];

pub(crate) fn is_known(name: &str) -> bool {
    VARS.iter().any(|v| v.name == name)
}

/// The known name closest to `name` (a typo, another case, a missing `S`), when one is close
/// enough to be what was meant: at most 3 edits, and fewer than a third of the name.
pub(crate) fn nearest(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    let mut best: Option<(usize, &'static str)> = None;
    for v in VARS {
        let d = edit_distance(&upper, v.name);
        if best.is_none_or(|(b, _)| d < b) {
            best = Some((d, v.name));
        }
    }
    best.filter(|&(d, _)| d <= 3 && d * 3 < upper.chars().count())
        .map(|(_, n)| n)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn default_of(name: &str) -> &'static str {
    VARS.iter()
        .find(|v| v.name == name)
        .and_then(|v| v.default)
        .unwrap_or("")
}

/// The file's values with the environment on top. Values are trimmed (a stray space in a port
/// list or a region is a slip, not meaning); a value that is empty after trimming counts as
/// unset, so `KEY=''` falls back to the default.
pub(crate) struct Vars<'a> {
    /// The file's pairs in order, a later one winning (a Vec searched from the end: a hash
    /// table of `&str` pairs would cost its own copy of the table code for some 50 keys).
    pub(crate) file: Vec<(&'a str, &'a str)>,
    pub(crate) env: &'a HashMap<String, String>,
}

impl Vars<'_> {
    /// As written, untrimmed; None when unset.
    pub(crate) fn raw(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str).or_else(|| {
            self.file
                .iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
        })
    }

    /// Trimmed; None when unset or empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.raw(key).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Trimmed, or the table's default.
    pub(crate) fn value(&self, key: &str) -> &str {
        self.get(key).unwrap_or_else(|| default_of(key))
    }

    /// Untrimmed, or the table's default: for values used byte for byte, and lists where an
    /// empty value means an empty list.
    pub(crate) fn raw_value(&self, key: &str) -> &str {
        self.raw(key).unwrap_or_else(|| default_of(key))
    }
}

/// Collects every problem and warning of one load.
#[derive(Default)]
pub(crate) struct Checker {
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<String>,
}

impl Checker {
    pub(crate) fn err(&mut self, variable: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            variable: variable.to_string(),
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    pub(crate) fn has_error_for(&self, prefix: &str) -> bool {
        self.errors.iter().any(|e| e.variable.starts_with(prefix))
    }

    /// A required credential. Messages describe the value, never show it.
    pub(crate) fn require_token(&mut self, variable: &str, value: &str, what: &str) {
        if value.is_empty() {
            self.err(variable, format!("required: {what}"));
        } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
            self.err(
                variable,
                "must be printable ASCII without spaces (value not shown)",
            );
        }
    }

    pub(crate) fn number(&mut self, variable: &str, text: &str, min: u64, max: u64) -> u64 {
        match crate::grammar::parse_number(text, min, max) {
            Ok(n) => n,
            Err(e) => {
                self.err(variable, e);
                min
            }
        }
    }

    pub(crate) fn duration(&mut self, variable: &str, text: &str, zero_ok: bool) -> Duration {
        Duration::from_secs(self.seconds(variable, text, zero_ok))
    }

    fn seconds(&mut self, variable: &str, text: &str, zero_ok: bool) -> u64 {
        match crate::grammar::parse_duration(text, true) {
            Ok(0) if !zero_ok => {
                let hint = if variable.starts_with("LOCKOUT_") {
                    " (to turn the lockout off, set LOCKOUT_FAILURES=0)"
                } else {
                    ""
                };
                self.err(variable, format!("must be positive{hint}"));
                1
            }
            Ok(s) => s,
            Err(e) => {
                self.err(variable, e);
                1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_names_only_when_close() {
        for (typo, want) in [
            (
                "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_ID",
                Some("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS"),
            ),
            ("KNOCK_REFERRER", Some("KNOCK_REFERER")),
            ("BIND_PROT", Some("BIND_PORT")),
            ("bind_port", Some("BIND_PORT")),
            ("PORT", None),
            ("HOME", None),
            ("SOMETHING_ELSE_ENTIRELY", None),
        ] {
            assert_eq!(nearest(typo), want, "{typo}");
        }
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
