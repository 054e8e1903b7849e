//! A calendar day of `expires=` and `--expires` (split out of `clients.rs`, which holds the
//! line grammar).

use std::fmt;

use crate::clock;

/// A calendar day, as days since 1970-01-01 (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub(crate) i64);

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
        if y < 1970 {
            return None;
        }
        clock::days_from_civil(y, u32::try_from(m).ok()?, u32::try_from(d).ok()?).map(Day)
    }

    /// The day holding this Unix time.
    pub(crate) fn of_unix(secs: i64) -> Day {
        Day(secs.div_euclid(86_400))
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = clock::civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// An `expires=` day given to `--add-client`: `YYYY-MM-DD`, today or later. The key works
/// through that day (UTC), so an earlier one would make a client that can never knock.
pub(crate) fn parse_expires(text: &str) -> Result<Day, String> {
    let Some(day) = Day::parse(text) else {
        return Err(format!("'{text}' is not a day like 2027-06-30"));
    };
    let today = Day::of_unix(clock::now());
    if day < today {
        return Err(format!(
            "{text} is already past (today is {today} UTC), so the key would never work: give \
             today or a later day"
        ));
    }
    Ok(day)
}
