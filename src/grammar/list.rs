//! Lists as the configuration writes them.

/// List items separated by `,` or the full-width `，`, trimmed, empty items dropped.
pub(crate) fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', '，'])
        .map(str::trim)
        .filter(|i| !i.is_empty())
}
