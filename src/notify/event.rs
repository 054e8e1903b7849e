//! What happened, as a notification carries it: the kind, the values placeholders and hook
//! variables expose, and one ready sentence per kind (`#{message}`, `KNOCKD_MESSAGE`).

use std::fmt;

use crate::clock;

/// One kind of event. `Test` is what `knockd --notify-test` sends; it cannot be selected in
/// `NOTIFY_EVENTS` and bypasses the rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A knock opened the ports (new rules).
    Grant,
    /// A knock failed (bad secret, refused address, API error or timeout).
    Fail,
    /// An address was locked out after too many failed knocks.
    Lockout,
    /// A knock from an address already open pushed its expiry forward.
    Refresh,
    /// `knockd --revoke` removed an address's rules.
    Revoke,
    /// Expired rules were removed (serving knockd's sweep or `knockd --prune`).
    Prune,
    /// A host line's name gained an address (rules written) or lost one (rules removed).
    Host,
    Test,
}

/// The kinds an operator can select, in documentation order.
pub(crate) const SELECTABLE: [EventKind; 7] = [
    EventKind::Grant,
    EventKind::Fail,
    EventKind::Lockout,
    EventKind::Refresh,
    EventKind::Revoke,
    EventKind::Prune,
    EventKind::Host,
];

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Grant => "grant",
            EventKind::Fail => "fail",
            EventKind::Lockout => "lockout",
            EventKind::Refresh => "refresh",
            EventKind::Revoke => "revoke",
            EventKind::Prune => "prune",
            EventKind::Host => "host",
            EventKind::Test => "test",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of selectable kinds (`NOTIFY_EVENTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSet(u8);

pub(crate) const DEFAULT_EVENTS: &str = "grant,fail,lockout";

impl EventSet {
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// A comma list (`,` or `，`), case-insensitive, empty items skipped; `all` selects every
    /// kind. Unknown names are one error naming all of them; an empty list is an error too
    /// (it would send nothing: unset the variable for the default).
    pub fn parse(text: &str) -> Result<EventSet, String> {
        let mut set = 0u8;
        let mut unknown = Vec::new();
        for item in crate::grammar::split_list(text) {
            let lower = item.to_ascii_lowercase();
            if lower == "all" {
                set |= SELECTABLE.iter().fold(0, |a, k| a | k.bit());
                continue;
            }
            match SELECTABLE.iter().find(|k| k.name() == lower) {
                Some(k) => set |= k.bit(),
                None => unknown.push(format!("'{}'", item.escape_debug())),
            }
        }
        if !unknown.is_empty() {
            return Err(format!(
                "unknown event{} {}; known: {}, all",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", "),
                SELECTABLE.map(EventKind::name).join(", ")
            ));
        }
        if set == 0 {
            return Err(format!(
                "no event selected; unset it for the default {DEFAULT_EVENTS}"
            ));
        }
        Ok(EventSet(set))
    }

    pub fn names(self) -> Vec<&'static str> {
        SELECTABLE
            .iter()
            .filter(|k| self.contains(**k))
            .map(|k| k.name())
            .collect()
    }
}

impl Default for EventSet {
    fn default() -> EventSet {
        EventSet::parse(DEFAULT_EVENTS).unwrap_or(EventSet(0b111))
    }
}

/// One notification. Build it with [`Event::new`] and the `with_*` setters; fields that do not
/// apply stay empty (and render as empty strings). `host` is filled by the notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The client address (or the locked-out /64 for IPv6 lockouts).
    pub ip: String,
    /// The client's label as knockd stored it (already sanitised by the knock path).
    pub label: String,
    /// `TCP 22,443; UDP 53`.
    pub ports: String,
    /// Unix time the rules (or the lockout) end.
    pub expires: Option<i64>,
    /// Instance ids, comma-separated.
    pub instances: String,
    /// `ok`, `partial`, `failed`, …: the outcome as the caller words it.
    pub result: String,
    /// Why it failed (fail), or what was done (revoke, prune).
    pub reason: String,
    /// Failed knocks (lockout) or rules removed (prune, revoke).
    pub count: Option<u64>,
    pub host: String,
    /// Unix time of the event.
    pub time: i64,
}

impl Event {
    pub fn new(kind: EventKind, ip: impl Into<String>) -> Event {
        Event {
            kind,
            ip: ip.into(),
            label: String::new(),
            ports: String::new(),
            expires: None,
            instances: String::new(),
            result: String::new(),
            reason: String::new(),
            count: None,
            host: String::new(),
            time: clock::now(),
        }
    }

    pub fn with_label(mut self, v: impl Into<String>) -> Event {
        self.label = v.into();
        self
    }
    pub fn with_ports(mut self, v: impl Into<String>) -> Event {
        self.ports = v.into();
        self
    }
    pub fn with_expires(mut self, ts: i64) -> Event {
        self.expires = Some(ts);
        self
    }
    pub fn with_instances(mut self, v: impl Into<String>) -> Event {
        self.instances = v.into();
        self
    }
    pub fn with_result(mut self, v: impl Into<String>) -> Event {
        self.result = v.into();
        self
    }
    pub fn with_reason(mut self, v: impl Into<String>) -> Event {
        self.reason = v.into();
        self
    }
    pub fn with_count(mut self, n: u64) -> Event {
        self.count = Some(n);
        self
    }
    pub fn with_time(mut self, ts: i64) -> Event {
        self.time = ts;
        self
    }

    /// `2026-12-25 13:38Z`: the expiry as rule descriptions write it.
    pub fn expires_text(&self) -> String {
        self.expires.map(expiry_text).unwrap_or_default()
    }

    /// One sentence, ready to send as is.
    pub fn message(&self) -> String {
        let who = self.who();
        let ports = or(&self.ports, "the ports");
        let until = match self.expires {
            Some(t) => format!(" until {}", expiry_text(t)),
            None => String::new(),
        };
        let because = match self.reason.as_str() {
            "" => String::new(),
            r => format!(": {r}"),
        };
        match self.kind {
            EventKind::Grant => format!("knockd: opened {ports} for {who}{until}"),
            EventKind::Refresh => format!("knockd: extended {ports} for {who}{until}"),
            EventKind::Fail => {
                format!("knockd: knock from {who} failed{}", or(&because, ""))
            }
            EventKind::Lockout => {
                let after = match self.count {
                    Some(n) => format!(" after {n} failed knock{}", plural(n)),
                    None => String::new(),
                };
                let until = until.replacen(" until", ", until", 1);
                format!("knockd: locked out {who}{after}{until}")
            }
            EventKind::Revoke => format!("knockd: revoked {ports} for {who}{because}"),
            EventKind::Prune if self.ip.is_empty() => {
                let n = self.count.unwrap_or(0);
                format!("knockd: removed {n} expired rule{}{because}", plural(n))
            }
            EventKind::Prune => format!("knockd: closed {ports} for {who}: expired"),
            EventKind::Host if self.result == "removed" => format!(
                "knockd: closed {ports} for {who}: {} no longer resolves to it",
                or(&self.reason, "its host name")
            ),
            EventKind::Host => format!(
                "knockd: opened {ports} for {who}{until}: {} resolves to it",
                or(&self.reason, "its host name")
            ),
            EventKind::Test => format!(
                "knockd: test notification from {}",
                or(&self.host, "knockd")
            ),
        }
    }

    /// `203.0.113.5 (phone)`, or the address alone without a label.
    fn who(&self) -> String {
        let ip = or(&self.ip, "an unknown address");
        match self.label.as_str() {
            "" => ip.to_string(),
            l => format!("{ip} ({l})"),
        }
    }

    /// The value of a field by placeholder name; None for a name that is not a field.
    pub(crate) fn value(&self, name: &str) -> Option<String> {
        Some(match name {
            "event" => self.kind.name().to_string(),
            "ip" => self.ip.clone(),
            "label" => self.label.clone(),
            "ports" => self.ports.clone(),
            "expires" => self.expires_text(),
            "instances" => self.instances.clone(),
            "result" => self.result.clone(),
            "reason" => self.reason.clone(),
            "count" => self.count.map(|n| n.to_string()).unwrap_or_default(),
            "host" => self.host.clone(),
            "time" => clock::utc_rfc3339(self.time),
            "message" => self.message(),
            _ => return None,
        })
    }
}

/// Placeholder names, in documentation order; each is also `KNOCKD_<NAME>` for the hook.
pub(crate) const FIELDS: [&str; 12] = [
    "event",
    "ip",
    "label",
    "ports",
    "expires",
    "instances",
    "result",
    "reason",
    "count",
    "host",
    "time",
    "message",
];

/// The expiry format of rule descriptions (`rule_desc::encode`): `YYYY-MM-DD HH:MMZ`.
pub(crate) fn expiry_text(ts: i64) -> String {
    format!("{}Z", clock::utc_minute(ts))
}

fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The machine's name for `#{host}`: the kernel's hostname, else `$HOSTNAME`, else `knockd`.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "knockd".to_string())
}

/// A sample of each kind, for `--check-config`, load-time validation of templates and tests.
pub(crate) fn sample(kind: EventKind) -> Event {
    // 2026-12-25 13:08:00Z
    let now = 1_798_204_080;
    let e = Event::new(kind, "203.0.113.5")
        .with_time(now)
        .with_instances("lhins-a0ogy7ty");
    let e = Event {
        host: "lighthouse-1".into(),
        ..e
    };
    match kind {
        EventKind::Grant | EventKind::Refresh => e
            .with_label("phone")
            .with_ports("TCP 22,443; UDP 53")
            .with_expires(now + 1800)
            .with_result("ok"),
        EventKind::Fail => e
            .with_label("phone")
            .with_result("failed")
            .with_reason("wrong secret"),
        EventKind::Lockout => Event {
            ip: "198.51.100.7".into(),
            ..e.with_count(10)
                .with_expires(now + 1800)
                .with_result("locked")
        },
        EventKind::Revoke => e
            .with_label("phone")
            .with_ports("TCP 22,443; UDP 53")
            .with_count(2)
            .with_result("ok")
            .with_reason("by knockd --revoke"),
        EventKind::Host => e
            .with_label("home")
            .with_ports("TCP 22,443; UDP 53")
            .with_expires(now + 1800)
            .with_result("added")
            .with_reason("home.example.net"),
        EventKind::Prune => e
            .with_label("phone")
            .with_ports("TCP 22,443; UDP 53")
            .with_expires(now - 60)
            .with_count(2)
            .with_result("ok"),
        EventKind::Test => Event {
            ip: String::new(),
            ..e.with_result("test")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sentence_per_kind() {
        let cases = [
            (
                EventKind::Grant,
                "knockd: opened TCP 22,443; UDP 53 for 203.0.113.5 (phone) until 2026-12-25 13:38Z",
            ),
            (
                EventKind::Refresh,
                "knockd: extended TCP 22,443; UDP 53 for 203.0.113.5 (phone) until 2026-12-25 13:38Z",
            ),
            (
                EventKind::Fail,
                "knockd: knock from 203.0.113.5 (phone) failed: wrong secret",
            ),
            (
                EventKind::Lockout,
                "knockd: locked out 198.51.100.7 after 10 failed knocks, until 2026-12-25 13:38Z",
            ),
            (
                EventKind::Revoke,
                "knockd: revoked TCP 22,443; UDP 53 for 203.0.113.5 (phone): by knockd --revoke",
            ),
            (
                EventKind::Prune,
                "knockd: closed TCP 22,443; UDP 53 for 203.0.113.5 (phone): expired",
            ),
            (EventKind::Test, "knockd: test notification from lighthouse-1"),
        ];
        for (kind, want) in cases {
            assert_eq!(sample(kind).message(), want, "{kind}");
        }
    }

    #[test]
    fn sentences_without_optional_fields() {
        let at = |k| Event::new(k, "203.0.113.5");
        assert_eq!(
            at(EventKind::Grant)
                .with_ports("TCP 22,443")
                .with_expires(1_798_205_880)
                .message(),
            "knockd: opened TCP 22,443 for 203.0.113.5 until 2026-12-25 13:38Z"
        );
        assert_eq!(
            at(EventKind::Fail).message(),
            "knockd: knock from 203.0.113.5 failed"
        );
        assert_eq!(
            Event::new(EventKind::Lockout, "198.51.100.7")
                .with_count(10)
                .message(),
            "knockd: locked out 198.51.100.7 after 10 failed knocks"
        );
        assert_eq!(
            Event::new(EventKind::Prune, "").with_count(1).message(),
            "knockd: removed 1 expired rule"
        );
    }

    #[test]
    fn events_parse() {
        let names = |t: &str| EventSet::parse(t).map(|s| s.names());
        assert_eq!(names(DEFAULT_EVENTS), Ok(vec!["grant", "fail", "lockout"]));
        assert_eq!(
            EventSet::default().names(),
            vec!["grant", "fail", "lockout"]
        );
        assert_eq!(names(" Grant，prune,, "), Ok(vec!["grant", "prune"]));
        assert_eq!(names("all").map(|v| v.len()), Ok(7));
        let err = names("grant,opne,test").unwrap_err();
        assert!(
            err.starts_with("unknown events 'opne', 'test'; known: grant"),
            "{err}"
        );
        assert!(names(" , ").unwrap_err().contains("no event selected"));
        assert!(!EventSet::parse("all").unwrap().contains(EventKind::Test));
    }

    #[test]
    fn values_by_name() {
        let e = sample(EventKind::Grant);
        for name in FIELDS {
            assert!(e.value(name).is_some(), "{name}");
        }
        assert_eq!(e.value("expires").unwrap(), "2026-12-25 13:38Z");
        assert_eq!(e.value("time").unwrap(), "2026-12-25T13:08:00Z");
        assert_eq!(e.value("event").unwrap(), "grant");
        assert_eq!(e.value("nope"), None);
    }
}
