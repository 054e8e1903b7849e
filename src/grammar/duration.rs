//! Durations and whole numbers as the configuration, the clients file and the command line
//! write them: `30d`, `12h`, `90m`, `45s`.

/// Upper bound of every duration, so that expiry arithmetic can never overflow.
const MAX_DURATION_SECS: u64 = 36_500 * 86_400;

pub(crate) fn parse_number(text: &str, min: u64, max: u64) -> Result<u64, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("'{t}' is negative; expected {min}..={max}"));
    }
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{t}' is not a whole number; expected {min}..={max}"
        ));
    }
    match t.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("'{t}' is outside {min}..={max}")),
    }
}

/// `30d`, `12h`, `90m`, `45s` (unit case-insensitive), or bare seconds when `bare_ok`.
pub fn parse_duration(text: &str, bare_ok: bool) -> Result<u64, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("'{t}' is negative; durations must be positive"));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = (&t[..split], t[split..].trim());
    if digits.is_empty() {
        return Err(format!("'{t}' is not a duration like 30d, 12h, 90m or 45s"));
    }
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" if bare_ok => 1,
        "" => {
            return Err(format!(
                "'{t}' has no unit: write e.g. {t}d, {t}h, {t}m or {t}s"
            ))
        }
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("'{t}' is not a duration like 30d, 12h, 90m or 45s")),
    };
    match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)) {
        Some(s) if s <= MAX_DURATION_SECS => Ok(s),
        _ => Err(format!("'{t}' is too long (at most 36500d)")),
    }
}

/// Seconds in the largest unit that divides them: `30d`, `90m`, `45s`; `0` for zero.
pub fn format_duration(secs: u64) -> String {
    match secs {
        0 => "0".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d", false), Ok(30 * 86_400));
        assert_eq!(parse_duration("12H", false), Ok(12 * 3600));
        assert_eq!(parse_duration("90m", false), Ok(5400));
        assert_eq!(parse_duration(" 45 s ", false), Ok(45));
        assert_eq!(parse_duration("15", true), Ok(15));
        assert!(parse_duration("15", false)
            .expect_err("bare")
            .contains("unit"));
        assert!(parse_duration("-5d", false).is_err());
        assert!(parse_duration("5w", false).is_err());
        assert!(parse_duration("d", false).is_err());
        assert!(parse_duration("99999999999999999999d", false).is_err());
        assert_eq!(format_duration(5400), "90m");
        assert_eq!(format_duration(86_400 * 30), "30d");
        assert_eq!(format_duration(61), "61s");
    }
}
