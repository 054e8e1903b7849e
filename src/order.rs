//! One stable sort for the whole binary.
//!
//! Each `sort_by_key` over its own element type and closure compiles its own copy of std's stable
//! sort (about 3 KB of the static binary each). The few sorts knockd needs order by an integer
//! key, so they all go through [`sort_by_i64`] and share one sort of `(key, index)` pairs.

/// Reorders `v` by ascending `key`, equal keys in their original order: the result of
/// `v.sort_by_key(key)`.
pub(crate) fn sort_by_i64<T>(v: &mut Vec<T>, key: impl Fn(&T) -> i64) {
    let order = order_of(v.iter().map(key).collect());
    let mut slots: Vec<Option<T>> = std::mem::take(v).into_iter().map(Some).collect();
    v.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

/// The indices of `keys` in ascending order, ties by index (so a stable order).
#[inline(never)]
fn order_of(keys: Vec<i64>) -> Vec<usize> {
    let mut pairs: Vec<(i64, usize)> = keys.into_iter().zip(0..).collect();
    // (key, index) pairs are all distinct, so the unstable sort gives the stable order.
    pairs.sort_unstable();
    pairs.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_std_stable_sort() {
        let words = ["bb", "a", "ccc", "dd", "e", "fff", "gg", "", "h"];
        let mut mine: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let mut std = mine.clone();
        sort_by_i64(&mut mine, |s| -(s.len() as i64));
        std.sort_by_key(|s| std::cmp::Reverse(s.len()));
        assert_eq!(mine, std);

        let mut mine: Vec<(u8, i64)> = vec![
            (0, 5),
            (1, -3),
            (2, 5),
            (3, i64::MIN),
            (4, i64::MAX),
            (5, -3),
        ];
        let mut std = mine.clone();
        sort_by_i64(&mut mine, |p| p.1);
        std.sort_by_key(|p| p.1);
        assert_eq!(mine, std);
    }
}
