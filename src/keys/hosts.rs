//! Host lines of the clients file: `LABEL host=NAME [ttl=DURATION]`. Such a line names a host
//! instead of holding a key: the serving knockd resolves NAME every HOST_REFRESH and keeps
//! rules, labelled LABEL, for the addresses it has (`knock/hosts.rs`; the pure bookkeeping is
//! `rules/follow.rs`). Nothing knocks for it, so it has no key, no `expires=` and no wider
//! grant: one host rule per address, as a knock from that address would get.

use super::clients_error::{format_ttl, parse_rule_ttl, ClientsError};

/// The longest name DNS carries (RFC 1035: 253 characters in text form).
pub(crate) const MAX_NAME: usize = 253;

/// One host line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostLine {
    pub(crate) label: String,
    /// As written (DNS compares names ignoring case).
    pub(crate) name: String,
    /// `ttl=`: the lifetime of this name's rules; `None` = RULE_TTL.
    pub(crate) ttl_secs: Option<u64>,
    /// 1-based line in the file.
    pub(crate) line: usize,
}

/// A host name: dot-separated labels of `[A-Za-z0-9-]`, 1–63 characters each, not starting or
/// ending with `-`, at most 253 characters, and a last label that is not all digits (so an IP
/// address is not a name: RFC 3696 §2). No trailing dot, no `_`, no wildcard.
pub(crate) fn is_host_name(s: &str) -> bool {
    let labels_ok = s.split('.').all(|l| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let last_not_numeric = s
        .rsplit('.')
        .next()
        .is_some_and(|l| !l.bytes().all(|b| b.is_ascii_digit()));
    s.len() <= MAX_NAME && labels_ok && last_not_numeric
}

/// The fields after `LABEL host=NAME` (NAME is `name`); `label` is already checked by the
/// caller, whose problems come in `problems`.
pub(crate) fn parse_host_line<'a>(
    line: usize,
    label: &str,
    name: &str,
    fields: impl Iterator<Item = &'a str>,
    mut problems: Vec<ClientsError>,
) -> Result<HostLine, Vec<ClientsError>> {
    if !is_host_name(name) {
        problems.push(ClientsError::HostName { line });
    }
    let mut ttl_secs = None;
    for (i, field) in fields.enumerate() {
        match field.strip_prefix("ttl=") {
            Some(_) if ttl_secs.is_some() => {
                problems.push(ClientsError::DuplicateOption { line, name: "ttl" })
            }
            Some(v) => match parse_rule_ttl(v) {
                Ok(s) => ttl_secs = Some(s),
                Err(problem) => problems.push(ClientsError::Ttl { line, problem }),
            },
            None => problems.push(ClientsError::HostField { line, field: i + 3 }),
        }
    }
    if problems.is_empty() {
        Ok(HostLine {
            label: label.to_string(),
            name: name.to_string(),
            ttl_secs,
            line,
        })
    } else {
        Err(problems)
    }
}

/// `LABEL host=NAME[ ttl=…]`, as `--add-host` writes it.
pub(crate) fn host_line(label: &str, name: &str, ttl_secs: Option<u64>) -> String {
    match ttl_secs {
        Some(t) => format!("{label} host={name} ttl={}", format_ttl(t)),
        None => format!("{label} host={name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::clients::Clients;

    #[test]
    fn host_names() {
        for ok in [
            "home.example.net",
            "a",
            "x-1.dyn.example",
            "HOME.Example.NET",
            "a1.b2.c3",
            &format!("{}.example", "a".repeat(63)),
        ] {
            assert!(is_host_name(ok), "{ok}");
        }
        for bad in [
            "",
            "203.0.113.7",
            "1.2.3.4.5",
            "::1",
            "home..example",
            ".example",
            "example.",
            "-a.example",
            "a-.example",
            "a_b.example",
            "*.example",
            "home example",
            &format!("{}.example", "a".repeat(64)),
            &format!("{}xy", "a.".repeat(126)),
        ] {
            assert!(!is_host_name(bad), "{bad}");
        }
    }

    #[test]
    fn host_lines_parse_beside_key_lines() {
        let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let text = format!(
            "home host=home.example.net\nalice {key}\noffice host=office.example ttl=2h # dyn\n"
        );
        let c = Clients::parse(&text).expect("valid");
        assert_eq!(c.len(), 1, "key clients only");
        let hosts: Vec<&HostLine> = c.hosts().iter().collect();
        assert_eq!(
            hosts,
            [
                &HostLine {
                    label: "home".into(),
                    name: "home.example.net".into(),
                    ttl_secs: None,
                    line: 1
                },
                &HostLine {
                    label: "office".into(),
                    name: "office.example".into(),
                    ttl_secs: Some(7200),
                    line: 3
                },
            ]
        );
        assert_eq!(
            host_line("home", "home.example.net", None),
            "home host=home.example.net"
        );
        assert_eq!(
            host_line("o", "o.example", Some(7200)),
            "o host=o.example ttl=2h"
        );
    }

    #[test]
    fn bad_host_lines_disable_themselves_only() {
        let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let text = [
            "a host=203.0.113.7".to_string(),       // 1: an address, not a name
            "b host=".to_string(),                  // 2
            "c host=c.example v4_prefix=24".into(), // 3: no wider grant on a host line
            "d host=d.example expires=2030-01-01".into(), // 4
            "e host=e.example ttl=1m".into(),       // 5: below the floor
            "f host=f.example ttl=1h ttl=2h".into(), // 6
            "bad.label host=g.example".into(),      // 7
            "Home host=h.example".into(),           // 8
            format!("home {key}"),                  // 9: same label, ignoring case
            "ok host=ok.example".into(),            // 10
        ]
        .join("\n");
        let (c, problems) = Clients::parse_lines(&text);
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let want = [
            "line 1: host= must be a host name",
            "line 2: host= must be a host name",
            "line 3: field 3 is not ttl=DURATION",
            "line 4: field 3 is not ttl=DURATION",
            "line 5: ttl= is shorter than 2m",
            "line 6: ttl= is given twice",
            "line 7: the label must be",
            "line 9: the label home is already used on line 8",
        ];
        assert_eq!(lines.len(), want.len(), "{lines:#?}");
        for (got, want) in lines.iter().zip(want) {
            assert!(got.starts_with(want), "{got} / {want}");
        }
        let labels: Vec<&str> = c.hosts().iter().map(|h| h.label.as_str()).collect();
        assert_eq!(labels, ["Home", "ok"]);
        assert!(c.is_empty());
    }
}
