//! `--add-client`, `--remove-client`, `--list-clients` (the clients file of issue 12) and
//! `--knock`, the client in the same binary.

use std::path::Path;
use std::time::Duration;

use crate::clock;
use crate::config::{self, Config};
use crate::keys::client::{self, KnockUrl};
use crate::keys::clients::{Day, CHECK_INTERVAL};
use crate::keys::clients_file::{self as clients, ClientsFile, Reload};
use crate::keys::recipes::{self, Recipe};

/// How long each request of `--knock` may take.
const KNOCK_TIMEOUT: Duration = Duration::from_secs(20);

pub fn add_client(
    config: &Config,
    label: &str,
    ttl_secs: Option<u64>,
    expires: Option<&str>,
) -> i32 {
    let path = &config.keys.clients_file;
    let expires = match expires.map(Day::parse) {
        None => None,
        Some(Some(d)) => Some(d),
        Some(None) => {
            crate::log::fatal("--expires is not a day like 2027-06-30");
            return 2;
        }
    };
    // Checked before a key is written: a URL the recipes cannot use is a configuration error.
    let url = match config.keys.public_url.as_deref().map(KnockUrl::parse) {
        None => None,
        Some(Ok(u)) => Some(u),
        Some(Err(e)) => {
            crate::log::fatal(&format!("KNOCK_PUBLIC_URL: {e}"));
            return 2;
        }
    };
    let key = match clients::add_client(path, label, ttl_secs, expires) {
        Ok(k) => k,
        Err(e) => {
            crate::log::fatal(&format!("{}: {e}", path.display()));
            return 1;
        }
    };
    let ttl = ttl_secs.map_or_else(
        || {
            format!(
                "RULE_TTL ({})",
                config::format_duration(config.rules.ttl.as_secs())
            )
        },
        crate::keys::clients::format_ttl,
    );
    let until = expires.map_or_else(|| "no expiry".to_string(), |d| format!("expires {d}"));
    outln!(
        "Added client {label} to {} (rule lifetime {ttl}, {until}); a running knockd accepts \
         it within a second.",
        path.display()
    );
    let recipe = Recipe {
        url: url.as_ref(),
        label,
        key: &key,
        success: &config.knock.message_success,
    };
    outln!("{}", recipes::add_client_text(&recipe).trim_end());
    0
}

pub fn remove_client(config: &Config, label: &str, keep_rules: bool) -> i32 {
    let path = &config.keys.clients_file;
    if let Err(e) = clients::remove_client(path, label) {
        crate::log::fatal(&format!("{}: {e}", path.display()));
        return 1;
    }
    outln!(
        "Removed client {label} from {}; a running knockd refuses its knocks within a second.",
        path.display()
    );
    if keep_rules {
        outln!("Its firewall rules are kept (--keep-rules) until they expire.");
        return 0;
    }
    // A running knockd looks at the file at most once a second: wait until it must have
    // noticed, so that no knock it still accepts can write rules after they were revoked.
    std::thread::sleep(CHECK_INTERVAL + Duration::from_millis(500));
    super::rules::revoke(config, label, false)
}

pub fn list_clients(config: &Config) -> i32 {
    let path = &config.keys.clients_file;
    let (file, reload) = match ClientsFile::open(path) {
        Ok(x) => x,
        Err(e) => {
            crate::log::fatal(&format!("{}: {e}", path.display()));
            return 1;
        }
    };
    if let Reload::Loaded { warnings, .. } = &reload {
        for w in warnings {
            crate::log::fatal(&format!("warning: {w}"));
        }
    }
    let list = file.clients();
    let now = clock::now();
    let what = match reload {
        Reload::Missing => " (no such file yet: knockd --add-client LABEL creates it)",
        _ => "",
    };
    outln!("{}: {} client(s){what}", path.display(), list.len());
    if list.is_empty() {
        return 0;
    }
    // TTL `default` is RULE_TTL.
    for line in clients::list_text(&list, now).lines() {
        outln!("  {line}");
    }
    0
}

/// `--knock`: both steps; 0 on the success body, 1 otherwise, 2 for a bad URL or key file.
/// With `every_secs`, knocks again at that interval until stopped, and never returns.
pub fn knock(
    url: &str,
    label: &str,
    key_file: &Path,
    every_secs: Option<u64>,
    expect: Option<&str>,
) -> i32 {
    let url = match KnockUrl::parse(url) {
        Ok(u) => u,
        Err(e) => {
            crate::log::fatal(&format!("--knock: {e}"));
            return 2;
        }
    };
    let expect = expect.unwrap_or(config::DEFAULT_MESSAGE_SUCCESS);
    let once = || -> i32 {
        // Read each time, so that a replaced key file is used without a restart.
        let key = match client::read_key_file(key_file, label) {
            Ok((key, warning)) => {
                if let Some(w) = warning {
                    crate::log::fatal(&format!("warning: {w}"));
                }
                key
            }
            Err(e) => {
                crate::log::fatal(&format!("{e}"));
                return 2;
            }
        };
        let stamp = |s: &str| match every_secs {
            Some(_) => format!("{} {s}", clock::utc_rfc3339(clock::now())),
            None => s.to_string(),
        };
        match client::knock(&url, label, &key, expect, KNOCK_TIMEOUT) {
            Ok(()) => {
                outln!("{}", stamp("knock: ok"));
                0
            }
            Err(e) => {
                crate::log::stderr_line(&stamp(&format!("knockd: knock failed: {e}")));
                1
            }
        }
    };
    let Some(every) = every_secs else {
        return once();
    };
    loop {
        if once() == 2 {
            return 2;
        }
        std::thread::sleep(Duration::from_secs(every));
    }
}
