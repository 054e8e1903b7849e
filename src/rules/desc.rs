//! The `FirewallRuleDescription` of rules knockd owns. The firewall is knockd's only database,
//! so the description carries who a rule is for and when it expires, readable in the console:
//!
//! ```text
//! Knockd-Office_01 until 2026-12-25 13:38Z
//! ```
//!
//! The Python original wrote `<prefix><label>@@YYYYMMDD` (the creation day); those are read too,
//! and since it always wrote the literal `Knockd-` whatever the prefix said, `Knockd-…@@YYYYMMDD`
//! is read as knockd's under any prefix (docs/lighthouse-api.md#legacy-format).

use crate::clock;

/// The API's limit on `FirewallRuleDescription` (characters or bytes is unstated: bytes is safe).
pub const MAX_DESC_BYTES: usize = 64;
const UNTIL: &str = " until ";
/// ` until YYYY-MM-DD HH:MMZ`
const SUFFIX_LEN: usize = UNTIL.len() + 17;
pub const DEFAULT_LABEL: &str = "DEFAULT";
/// The shortest rule lifetime (RULE_TTL, `--ttl`, a client's `ttl=`). The expiry is written to
/// the minute, cut down, so a rule loses up to 59 s of its lifetime when it is written; two
/// minutes leave it at least one whole minute, while anything under a minute could be written
/// already expired and be removed by the next prune.
pub const MIN_TTL_SECS: u64 = 2 * 60;
/// What the Python original wrote before every label, whatever FW_RULE_NAME_PREFIX said.
pub const LEGACY_PREFIX: &str = "Knockd-";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Desc {
    /// Not ours: no prefix. Never modified or deleted.
    Foreign,
    /// Ours, in the current format.
    Owned { label: String, expires: i64 },
    /// Ours, written by the Python original: expires a TTL after its creation day.
    Legacy { label: String, created: i64 },
    /// Carries the prefix but cannot be read: reported and left alone.
    Unparseable,
}

/// A client label as it may appear in a description: no control characters, nothing that
/// could confuse the parser or a person reading the console, bounded length.
pub fn sanitize_label(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    for c in text.trim().chars() {
        if out.len() >= MAX_DESC_BYTES {
            break;
        }
        if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '+') {
            out.push(c);
        } else if !c.is_control() && c != char::REPLACEMENT_CHARACTER {
            out.push('_');
        }
    }
    if out.is_empty() {
        DEFAULT_LABEL.to_string()
    } else {
        out
    }
}

/// The description for a rule of `label` expiring at `expires`; the label is cut (at a char
/// boundary) so that the whole stays within 64 bytes. The prefix and the expiry are never cut.
pub fn encode(prefix: &str, label: &str, expires: i64) -> String {
    let room = MAX_DESC_BYTES.saturating_sub(prefix.len() + SUFFIX_LEN);
    let mut cut = label.len().min(room);
    while !label.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{prefix}{}{UNTIL}{}Z",
        &label[..cut],
        clock::utc_minute(expires)
    )
}

/// `label` as a description written by [`encode`] under `prefix` holds it: cut to fit, so a
/// long prefix and a long label still compare with what the firewall has.
pub fn stored_label(prefix: &str, label: &str) -> String {
    match parse(prefix, &encode(prefix, label, 0)) {
        Desc::Owned { label, .. } => label,
        _ => label.to_string(),
    }
}

pub fn parse(prefix: &str, desc: &str) -> Desc {
    let Some(rest) = desc.strip_prefix(prefix) else {
        // Only the exact legacy form: anything else under `Knockd-` stays foreign.
        return match desc.strip_prefix(LEGACY_PREFIX).and_then(legacy) {
            Some(d) => d,
            None => Desc::Foreign,
        };
    };
    if let Some((label, when)) = rest.rsplit_once(UNTIL) {
        if let Some(expires) = parse_minute(when) {
            return Desc::Owned {
                label: label.to_string(),
                expires,
            };
        }
    }
    legacy(rest).unwrap_or(Desc::Unparseable)
}

/// `<label>@@YYYYMMDD`, the rest of a legacy description after its prefix.
fn legacy(rest: &str) -> Option<Desc> {
    let (label, day) = rest.rsplit_once("@@")?;
    Some(Desc::Legacy {
        label: label.to_string(),
        created: parse_day(day)?,
    })
}

/// When a rule with this description expires; None for foreign and unparseable ones.
pub fn expiry(desc: &Desc, ttl_secs: i64) -> Option<i64> {
    match desc {
        Desc::Owned { expires, .. } => Some(*expires),
        Desc::Legacy { created, .. } => Some(created + ttl_secs),
        Desc::Foreign | Desc::Unparseable => None,
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `YYYYMMDD` → Unix time of that day's 00:00 UTC.
fn parse_day(s: &str) -> Option<i64> {
    if s.len() != 8 || !s.is_ascii() {
        return None;
    }
    let y = digits(&s[..4])?;
    let days = clock::days_from_civil(y as i64, digits(&s[4..6])?, digits(&s[6..])?)?;
    Some(days * 86_400)
}

/// `YYYY-MM-DD HH:MMZ` → Unix time.
fn parse_minute(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 17 || !s.is_ascii() || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' {
        return None;
    }
    if b[13] != b':' || b[16] != b'Z' {
        return None;
    }
    let days = clock::days_from_civil(
        digits(&s[..4])? as i64,
        digits(&s[5..7])?,
        digits(&s[8..10])?,
    )?;
    let (h, m) = (digits(&s[11..13])?, digits(&s[14..16])?);
    if h > 23 || m > 59 {
        return None;
    }
    Some(days * 86_400 + h as i64 * 3600 + m as i64 * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_764_077_892; // 2025-11-25 13:38:12Z

    #[test]
    fn encodes_readably_and_parses_back() {
        let d = encode("Knockd-", "Office_01", T);
        assert_eq!(d, "Knockd-Office_01 until 2025-11-25 13:38Z");
        assert_eq!(
            parse("Knockd-", &d),
            Desc::Owned {
                label: "Office_01".into(),
                expires: T - 12
            }
        );
    }

    #[test]
    fn long_multibyte_labels_are_cut_at_a_char_boundary_within_64_bytes() {
        let label = "办公室".repeat(20);
        for prefix in ["K-", "Knockd-", "VeryLongPrefix-2024-"] {
            let d = encode(prefix, &label, T);
            assert!(d.len() <= MAX_DESC_BYTES, "{} bytes: {d}", d.len());
            assert!(d.starts_with(prefix) && d.ends_with("13:38Z"));
            match parse(prefix, &d) {
                Desc::Owned { label: l, expires } => {
                    assert!(label.starts_with(&l) && !l.is_empty());
                    assert_eq!(expires, T - 12);
                }
                other => panic!("{other:?}"),
            }
        }
        // 64 - 7 - 24 = 33 bytes of room: eleven 3-byte characters fit exactly.
        let d = encode("Knockd-", &label, T);
        assert_eq!(d.len(), 64);
    }

    #[test]
    fn legacy_python_descriptions_are_understood() {
        assert_eq!(
            parse("Knockd-", "Knockd-Offfice_01@@20231114"),
            Desc::Legacy {
                label: "Offfice_01".into(),
                created: 1_699_920_000
            }
        );
        let d = parse("Knockd-", "Knockd-x@@20231114");
        assert_eq!(expiry(&d, 30 * 86_400), Some(1_699_920_000 + 30 * 86_400));
    }

    #[test]
    fn legacy_rules_under_knockd_are_owned_whatever_the_prefix() {
        // The Python original always wrote `Knockd-`, even with a custom prefix.
        assert_eq!(
            parse("Acme-", "Knockd-Office_01@@20231114"),
            Desc::Legacy {
                label: "Office_01".into(),
                created: 1_699_920_000
            }
        );
        assert_eq!(
            parse("Acme-", "Acme-x@@20231114"),
            Desc::Legacy {
                label: "x".into(),
                created: 1_699_920_000
            }
        );
        // Only the exact `@@YYYYMMDD` form: the rest under `Knockd-` is someone else's.
        for foreign in [
            "Knockd-x until 2025-11-25 13:38Z",
            "Knockd-garbage",
            "Knockd-x@@2023111",
            "Knockd-x@@20231314",
            "Knockd-x@@2023-11-14",
            "knockd-x@@20231114",
            "xKnockd-x@@20231114",
        ] {
            assert_eq!(parse("Acme-", foreign), Desc::Foreign, "{foreign}");
        }
        // The current format under the configured prefix is unchanged.
        assert!(matches!(
            parse("Acme-", "Acme-x until 2025-11-25 13:38Z"),
            Desc::Owned { .. }
        ));
    }

    #[test]
    fn foreign_and_unparseable() {
        assert_eq!(parse("Knockd-", "office ssh"), Desc::Foreign);
        assert_eq!(parse("Knockd-", ""), Desc::Foreign);
        assert_eq!(
            parse("Knockd-", "knockd-lowercase@@20231114"),
            Desc::Foreign
        );
        for bad in [
            "Knockd-",
            "Knockd-x@@2023111",
            "Knockd-x@@20231314",
            "Knockd-x@@2023-11-14",
            "Knockd-x until 2025-11-25 24:00Z",
            "Knockd-x until 2025-02-30 10:00Z",
            "Knockd-x until 2025-11-25 13:38",
            "Knockd-x until ２０２５-11-25 13:38Z",
        ] {
            assert_eq!(parse("Knockd-", bad), Desc::Unparseable, "{bad}");
            assert_eq!(expiry(&parse("Knockd-", bad), 1), None);
        }
    }

    #[test]
    fn labels_are_sanitised() {
        assert_eq!(sanitize_label(b"Office_01"), "Office_01");
        assert_eq!(sanitize_label(b"  "), "DEFAULT");
        assert_eq!(sanitize_label(b""), "DEFAULT");
        assert_eq!(sanitize_label(b"a\r\nb\x00c"), "abc");
        assert_eq!(
            sanitize_label(b"my home until 2099-01-01"),
            "my_home_until_2099-01-01"
        );
        assert_eq!(sanitize_label(b"x@@20231114"), "x__20231114");
        assert_eq!(sanitize_label("办公室 web".as_bytes()), "办公室_web");
        assert_eq!(sanitize_label(b"\xff\xfe"), "DEFAULT");
        assert!(sanitize_label(&[b'a'; 10_000]).len() <= 64);
    }
}

/// Written against survivors of `make mutants` (cargo-mutants): each pins a behaviour a user
/// would notice. Kept apart from `tests` so edits of either merge cleanly.
#[cfg(test)]
mod mutant_kills {
    use super::*;

    const T: i64 = 1_764_077_880; // 2025-11-25 13:38Z

    #[test]
    fn the_last_minute_of_a_day_and_midnight_are_read() {
        assert_eq!(
            parse("Knockd-", "Knockd-x until 2025-11-25 23:59Z"),
            Desc::Owned {
                label: "x".into(),
                expires: T - (13 * 60 + 38) * 60 + (23 * 60 + 59) * 60
            }
        );
        assert_eq!(
            parse("Knockd-", "Knockd-x until 2025-11-26 00:00Z"),
            Desc::Owned {
                label: "x".into(),
                expires: T - (13 * 60 + 38) * 60 + 86_400
            }
        );
    }

    #[test]
    fn malformed_expiries_are_refused_not_misread() {
        for bad in [
            // Hour or minute out of range.
            "Knockd-x until 2025-11-25 13:60Z",
            "Knockd-x until 2025-11-25 24:59Z",
            // A separator in the wrong place or missing.
            "Knockd-x until 2025/11-25 13:38Z",
            "Knockd-x until 2025-11/25 13:38Z",
            "Knockd-x until 2025-11-25T13:38Z",
            "Knockd-x until 2025-11-25 13.38Z",
            "Knockd-x until 2025-11-25 13:38z",
            // Too long, too short, signed numbers.
            "Knockd-x until 2025-11-25 13:38Z ",
            "Knockd-x until 2025-11-25 13:38Zx",
            "Knockd-x until 02025-11-25 13:38Z",
            "Knockd-x until 2025-11-25 3:38Z",
            "Knockd-x until +025-11-25 13:38Z",
            "Knockd-x until 2025-+1-25 13:38Z",
            "Knockd-x until 2025-11-25 +3:38Z",
            // Not ASCII, but 17 bytes with the separators in place.
            "Knockd-x until ２0-11-25 13:38Z",
        ] {
            assert_eq!(parse("Knockd-", bad), Desc::Unparseable, "{bad}");
            assert_eq!(expiry(&parse("Knockd-", bad), 3600), None, "{bad}");
        }
    }

    #[test]
    fn malformed_legacy_days_are_refused_not_misread() {
        for bad in [
            "Knockd-x@@+0231114",
            "Knockd-x@@2023+114",
            "Knockd-x@@202311+4",
            "Knockd-x@@202311141",
            // Eight bytes, not eight digits: must be refused, not sliced mid-character.
            "Knockd-x@@２０23",
            "Knockd-x@@2023１4",
        ] {
            assert_eq!(parse("Knockd-", bad), Desc::Unparseable, "{bad}");
            assert_eq!(parse("Acme-", bad), Desc::Foreign, "{bad}");
        }
    }

    #[test]
    fn a_legacy_rule_expires_a_ttl_after_its_creation_day() {
        let d = parse("Knockd-", "Knockd-x@@20231114");
        assert_eq!(expiry(&d, 3600), Some(1_699_920_000 + 3600));
        assert_eq!(expiry(&d, 0), Some(1_699_920_000));
    }
}
