//! The configuration parser: `.env` text → envfile::parse → config::from_pairs. Properties: no
//! panic; and no error, warning or report text depends on the content of a secret: running
//! again with every ASCII letter and digit of the secrets replaced by another of the same class
//! gives exactly the same output (so a secret's value can never be echoed).
#![no_main]

use std::collections::HashMap;

use knockd::config;
use knockd::config::envfile;
use libfuzzer_sys::fuzz_target;

const SECRETS: &[&str] = &[
    "TENCENT_CLOUD_SECRET_KEY",
    "TENCENT_CLOUD_TOKEN",
    "KNOCK_REFERER",
];

fn twist(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' => (b'a' + (c as u8 - b'a' + 13) % 26) as char,
            'A'..='Z' => (b'A' + (c as u8 - b'A' + 13) % 26) as char,
            '0'..='9' => (b'0' + (c as u8 - b'0' + 5) % 10) as char,
            _ => c,
        })
        .collect()
}

fn outcome(pairs: &[(String, String)]) -> String {
    match config::from_pairs(pairs, &HashMap::new()) {
        Ok(c) => format!("ok\n{}\n{:?}", c.report(), c.warnings),
        Err(e) => format!("err\n{e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pairs, errors) = envfile::parse(text);
    for e in &errors {
        let _ = e.to_string();
    }
    let plain = outcome(&pairs);
    let twisted: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| {
            if SECRETS.contains(&k.as_str()) {
                (k.clone(), twist(v))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    // A secret value that also appears in another variable may be echoed through that one.
    let shared = pairs.iter().any(|(k, v)| {
        SECRETS.contains(&k.as_str())
            && !v.is_empty()
            && pairs.iter().any(|(k2, v2)| {
                !SECRETS.contains(&k2.as_str())
                    && (v2.contains(v.as_str()) || twist(v2).contains(v.as_str()))
            })
    });
    if !shared {
        assert_eq!(
            plain,
            outcome(&twisted),
            "output depends on a secret's content"
        );
    }
});
