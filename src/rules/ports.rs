//! A rule's `Port` as the set of ports it denotes (docs/lighthouse-api.md#port-grammar), so
//! that rules are compared by meaning, not text: `22,443` and `443,22` are one set, and so are
//! `ALL`, `1-65535` and an absent port (docs/lighthouse-api.md#rule-identity).

/// Sorted, merged, non-empty inclusive ranges within 1..=65535.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSet(Vec<(u16, u16)>);

impl PortSet {
    pub fn all() -> PortSet {
        PortSet(vec![(1, 65_535)])
    }

    /// `ALL`, empty (the API's default, ALL), a port, a list, a range, or (leniently, as
    /// knockd's configuration allows) a mix; `None` if any item cannot be read, so an unknown
    /// form never counts as covering anything.
    pub fn parse(text: &str) -> Option<PortSet> {
        let t = text.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("ALL") {
            return Some(PortSet::all());
        }
        let mut ranges = Vec::new();
        for item in t.split(',') {
            let item = item.trim();
            let (lo, hi) = match item.split_once('-') {
                Some((lo, hi)) => (number(lo)?, number(hi)?),
                None => {
                    let n = number(item)?;
                    (n, n)
                }
            };
            if lo > hi {
                return None;
            }
            ranges.push((lo, hi));
        }
        // As `sort_unstable` (by start, then end), through the binary's one sort.
        crate::order::sort_by_i64(&mut ranges, |&(lo, hi)| {
            (i64::from(lo) << 16) | i64::from(hi)
        });
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Some(PortSet(merged))
    }

    /// Every port of `other` is in `self`.
    pub fn covers(&self, other: &PortSet) -> bool {
        other
            .0
            .iter()
            .all(|&(lo, hi)| self.0.iter().any(|&(a, b)| a <= lo && hi <= b))
    }

    /// Some port is in both.
    pub fn overlaps(&self, other: &PortSet) -> bool {
        self.0
            .iter()
            .any(|&(a, b)| other.0.iter().any(|&(lo, hi)| a <= hi && lo <= b))
    }
}

fn number(s: &str) -> Option<u16> {
    let s = s.trim();
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&n| n >= 1)
}

/// Port text as the API wants it (docs/lighthouse-api.md#port-grammar): a list of single ports
/// and a range never share one rule. `items` are normalised single ports (`22`) and ranges
/// (`8000-8100`); the result is one string for all the single ports (first, in their order)
/// and one per range.
pub fn split_rules<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut singles: Vec<&str> = Vec::new();
    let mut ranges: Vec<String> = Vec::new();
    for item in items {
        if item.contains('-') {
            ranges.push(item.to_string());
        } else {
            singles.push(item);
        }
    }
    let mut out = Vec::with_capacity(ranges.len() + 1);
    if !singles.is_empty() {
        out.push(singles.join(","));
    }
    out.extend(ranges);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> PortSet {
        PortSet::parse(s).unwrap_or_else(|| panic!("{s} parses"))
    }

    #[test]
    fn the_same_set_whatever_the_text() {
        for (a, b) in [
            ("22,443", "443,22"),
            ("22,443", " 443 , 22 "),
            ("ALL", "1-65535"),
            ("all", ""),
            ("1-100,101-200", "1-200"),
            ("80,81,82", "80-82"),
            ("22,22", "22"),
        ] {
            assert_eq!(set(a), set(b), "{a} vs {b}");
        }
        assert_ne!(set("22,443"), set("22"));
        assert_ne!(set("1-65534"), set("ALL"));
    }

    #[test]
    fn cover_and_overlap() {
        assert!(set("ALL").covers(&set("22,443")));
        assert!(set("1-65535").covers(&set("8000-8100")));
        assert!(set("443,22,80").covers(&set("22,443")));
        assert!(!set("22").covers(&set("22,443")));
        assert!(set("8000-9000").covers(&set("8080,8443")));
        assert!(!set("8000-8100").covers(&set("7999-8000")));
        assert!(set("22").overlaps(&set("22,443")));
        assert!(set("8000-8100").overlaps(&set("8100-8200")));
        assert!(!set("8000-8100").overlaps(&set("8101-8200")));
        assert!(!set("22").overlaps(&set("443")));
    }

    #[test]
    fn unreadable_text_is_no_set() {
        for bad in [
            "ssh",
            "0",
            "65536",
            "9000-8000",
            "1-2-3",
            "22,,443",
            "-5",
            "22;443",
        ] {
            assert_eq!(PortSet::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn singles_and_ranges_go_to_separate_rules() {
        assert_eq!(
            split_rules(["22", "8000-8100", "443", "9000-9100"]),
            vec!["22,443", "8000-8100", "9000-9100"]
        );
        assert_eq!(split_rules(["22", "443"]), vec!["22,443"]);
        assert_eq!(split_rules(["8000-8100"]), vec!["8000-8100"]);
        assert!(split_rules([]).is_empty());
    }

    /// Written against survivors of `make mutants` (cargo-mutants): each pins a behaviour a user
    /// would notice. They share the helpers of `tests`.
    mod mutant_kills {
        use super::*;

        #[test]
        fn a_list_of_ports_is_not_the_range_between_them() {
            let list = set("22,443");
            assert_ne!(list, set("22-443"));
            assert!(!list.covers(&set("80")));
            assert!(!list.overlaps(&set("80")));
            assert!(!set("22,8000-8100").covers(&set("443")));
        }

        #[test]
        fn signed_or_overlong_port_numbers_are_not_read() {
            for bad in ["+22", "22,+443", "+1-100", "000022", "1-000443"] {
                assert_eq!(PortSet::parse(bad), None, "{bad}");
            }
            assert_eq!(set("00022"), set("22"));
        }
    }
}
