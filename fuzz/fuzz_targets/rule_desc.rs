//! Rule descriptions: the parser must not panic on any description found on the firewall, and
//! encode/parse must round-trip: what knockd writes (any accepted prefix, any sanitised label,
//! any expiry in years 1970..9999) parses back as Owned with the same expiry to the minute and
//! the label cut to fit, within 64 bytes; and whatever parses as Owned re-encodes to itself.
#![no_main]

use knockd::clock;
use knockd::rules::desc::{self, Desc, MAX_DESC_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let (head, rest) = data.split_at(9);
    let t = i64::from_le_bytes(head[1..9].try_into().unwrap()).rem_euclid(253_402_300_800);
    // Prefix: printable ASCII, at most 20 bytes (what config accepts).
    let plen = usize::from(head[0] % 21).min(rest.len());
    let (p, label_raw) = rest.split_at(plen);
    let prefix: String = p
        .iter()
        .map(|&b| if (0x20..0x7f).contains(&b) { b } else { 0x20 + b % 0x5f } as char)
        .collect();

    // 1. Parsing anything found on the firewall.
    if let Ok(desc) = std::str::from_utf8(label_raw) {
        match desc::parse(&prefix, desc) {
            Desc::Owned { label, expires } => {
                assert_eq!(
                    format!("{prefix}{label} until {}Z", clock::utc_minute(expires)),
                    desc
                );
                let _ = desc::expiry(&Desc::Owned { label, expires }, 86_400);
            }
            Desc::Legacy { created, .. } => assert_eq!(created % 86_400, 0),
            Desc::Foreign => assert!(!desc.starts_with(&prefix)),
            Desc::Unparseable => {}
        }
    }

    // 2. What knockd writes reads back.
    let label = desc::sanitize_label(label_raw);
    assert!(!label.is_empty() && !label.chars().any(char::is_control));
    let d = desc::encode(&prefix, &label, t);
    assert!(d.len() <= MAX_DESC_BYTES, "{} bytes: {d:?}", d.len());
    match desc::parse(&prefix, &d) {
        Desc::Owned { label: l, expires } => {
            assert!(label.starts_with(&l), "{label:?} vs {l:?}");
            assert_eq!(expires, t - t.rem_euclid(60));
        }
        other => panic!("{d:?} parsed as {other:?}"),
    }
});
