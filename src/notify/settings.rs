//! The `NOTIFY_*` settings: read from the configuration's merged file and environment, every
//! problem reported at once with the variable it is about, and described for `--check-config`
//! without the URL's token, the body or the header values.

use std::fmt;

use super::command;
use super::event::EventSet;
use super::webhook::Webhook;

pub(super) const DEFAULT_MIN_INTERVAL_SECS: u64 = 600;
pub(super) const DEFAULT_MAX_PER_MINUTE: u32 = 20;
const MAX_PER_MINUTE_LIMIT: u64 = 600;
const MAX_INTERVAL_SECS: u64 = 7 * 86_400;
/// Every variable [`NotifyConfig::parse`] reads.
pub const VARIABLES: [&str; 7] = [
    "NOTIFY_URL",
    "NOTIFY_BODY",
    "NOTIFY_HEADERS",
    "NOTIFY_COMMAND",
    "NOTIFY_EVENTS",
    "NOTIFY_MIN_INTERVAL",
    "NOTIFY_MAX_PER_MINUTE",
];

/// A problem with one `NOTIFY_*` variable: the variable, and what is wrong with it.
pub type SettingError = (&'static str, String);

/// The parsed `NOTIFY_*` settings. `Debug` prints only [`NotifyConfig::describe`]: the URL,
/// body and headers hold tokens.
#[derive(Clone)]
pub struct NotifyConfig {
    pub(super) webhook: Option<Webhook>,
    pub(super) command: Option<Vec<String>>,
    pub events: EventSet,
    /// Seconds; 0 = no per-(event, address) limit.
    pub min_interval: u64,
    pub max_per_minute: u32,
    /// For `--check-config` and the start-up log.
    pub warnings: Vec<String>,
}

impl NotifyConfig {
    /// Reads the `NOTIFY_*` variables through `lookup` (the config layer's merged file and
    /// environment). Ok(None) when neither NOTIFY_URL nor NOTIFY_COMMAND is set: notifications
    /// are off. Every problem is reported at once, each naming its variable and never showing
    /// the URL, body or header values.
    ///
    /// | variable | default |
    /// |---|---|
    /// | `NOTIFY_URL` | unset (no webhook) |
    /// | `NOTIFY_BODY` | unset: GET; set: POST |
    /// | `NOTIFY_HEADERS` | none |
    /// | `NOTIFY_COMMAND` | unset (no hook) |
    /// | `NOTIFY_EVENTS` | `grant,fail,lockout` |
    /// | `NOTIFY_MIN_INTERVAL` | `10m` (`0` = off) |
    /// | `NOTIFY_MAX_PER_MINUTE` | `20` (1–600) |
    ///
    /// Values are trimmed, and an empty scalar means its default (as elsewhere in knockd);
    /// `NOTIFY_BODY` is used as given unless it is only white space.
    pub fn parse(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<NotifyConfig>, Vec<SettingError>> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let url = get("NOTIFY_URL").map(|v| v.trim().to_string());
        let command = get("NOTIFY_COMMAND");
        if url.is_none() && command.is_none() {
            let stray = stray(&lookup);
            return if stray.is_empty() {
                Ok(None)
            } else {
                Err(stray)
            };
        }
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let webhook = parse_webhook(url, &get, &mut errors, &mut warnings);
        let command = command.and_then(|c| parse_command(&c, &mut errors));
        let events = match get("NOTIFY_EVENTS") {
            None => EventSet::default(),
            Some(v) => EventSet::parse(&v).unwrap_or_else(|e| {
                errors.push(("NOTIFY_EVENTS", e.to_string()));
                EventSet::default()
            }),
        };
        let min_interval = match get("NOTIFY_MIN_INTERVAL") {
            None => DEFAULT_MIN_INTERVAL_SECS,
            Some(v) => parse_duration(v.trim()).unwrap_or_else(|e| {
                errors.push(("NOTIFY_MIN_INTERVAL", e));
                0
            }),
        };
        let max_per_minute = match get("NOTIFY_MAX_PER_MINUTE") {
            None => DEFAULT_MAX_PER_MINUTE,
            Some(v) => parse_max_per_minute(&v, &mut errors),
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Some(NotifyConfig {
            webhook,
            command,
            events,
            min_interval,
            max_per_minute,
            warnings,
        }))
    }

    /// (variable, shown value) for `--check-config`: the URL redacted, the body, headers and
    /// command described without their values.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(w) = &self.webhook {
            out.push(("NOTIFY_URL", w.redacted_url().to_string()));
            out.push(("NOTIFY_BODY", w.body_kind().to_string()));
            let names = w.header_names();
            if !names.is_empty() {
                out.push((
                    "NOTIFY_HEADERS",
                    format!("{} (values hidden)", names.join(", ")),
                ));
            }
        }
        if let Some(argv) = &self.command {
            out.push((
                "NOTIFY_COMMAND",
                format!("{} (+{} fixed arguments)", argv[0], argv.len() - 1),
            ));
        }
        out.push(("NOTIFY_EVENTS", self.events.names().join(",")));
        out.push((
            "NOTIFY_MIN_INTERVAL",
            match self.min_interval {
                0 => "0 (off)".to_string(),
                s => format!("{s}s"),
            },
        ));
        out.push(("NOTIFY_MAX_PER_MINUTE", self.max_per_minute.to_string()));
        out
    }

    /// The webhook's host (and port), so the caller can pick the proxy for it (`NO_PROXY`)
    /// when it builds the agent.
    pub fn webhook_host(&self) -> Option<&str> {
        self.webhook.as_ref().map(|w| w.host())
    }
}

/// With notifications off, every other `NOTIFY_*` variable that is set (but NOTIFY_COMMAND,
/// which would have turned them on) is an error.
fn stray(lookup: &impl Fn(&str) -> Option<String>) -> Vec<SettingError> {
    VARIABLES[1..]
        .iter()
        .filter(|k| **k != "NOTIFY_COMMAND" && lookup(k).is_some_and(|v| !v.trim().is_empty()))
        .map(|k| {
            (
                *k,
                "is set but neither NOTIFY_URL nor NOTIFY_COMMAND is".to_string(),
            )
        })
        .collect()
}

/// The webhook of NOTIFY_URL with NOTIFY_BODY and NOTIFY_HEADERS; without a URL, those two
/// are errors.
fn parse_webhook(
    url: Option<String>,
    get: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<SettingError>,
    warnings: &mut Vec<String>,
) -> Option<Webhook> {
    match url {
        Some(u) => match Webhook::new(
            &u,
            get("NOTIFY_BODY").as_deref(),
            get("NOTIFY_HEADERS").as_deref(),
        ) {
            Ok((w, warn)) => {
                warnings.extend(warn);
                Some(w)
            }
            Err(e) => {
                errors.extend(e);
                None
            }
        },
        None => {
            for k in ["NOTIFY_BODY", "NOTIFY_HEADERS"] {
                if get(k).is_some() {
                    errors.push((k, "is set but NOTIFY_URL is not".to_string()));
                }
            }
            None
        }
    }
}

/// NOTIFY_COMMAND as an argv whose program exists.
fn parse_command(c: &str, errors: &mut Vec<SettingError>) -> Option<Vec<String>> {
    match command::parse_command(c.trim()) {
        Ok(argv) => match command::check_program(&argv[0]) {
            Ok(()) => Some(argv),
            Err(e) => {
                errors.push(("NOTIFY_COMMAND", e.to_string()));
                None
            }
        },
        Err(e) => {
            errors.push(("NOTIFY_COMMAND", e.to_string()));
            None
        }
    }
}

/// NOTIFY_MAX_PER_MINUTE: a whole number in 1..=MAX_PER_MINUTE_LIMIT, else the default (and an
/// error).
fn parse_max_per_minute(v: &str, errors: &mut Vec<SettingError>) -> u32 {
    match v.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_PER_MINUTE_LIMIT).contains(&n) => n as u32,
        _ => {
            errors.push((
                "NOTIFY_MAX_PER_MINUTE",
                format!(
                    "'{}' is not a whole number in 1..={MAX_PER_MINUTE_LIMIT}",
                    v.trim().escape_debug()
                ),
            ));
            DEFAULT_MAX_PER_MINUTE
        }
    }
}

impl fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.describe()).finish()
    }
}

/// The configuration's duration grammar (`30s`, `10m`, `2h`, `1d`, or bare seconds; 0 allowed:
/// off), at most 7 days.
pub(super) fn parse_duration(t: &str) -> Result<u64, String> {
    match crate::grammar::parse_duration(t, true)? {
        s if s <= MAX_INTERVAL_SECS => Ok(s),
        _ => Err(format!("'{t}' is longer than 7d")),
    }
}
