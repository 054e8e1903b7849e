//! `--add-client`, `--remove-client`, `--list-clients` (the clients file of issue 12) and
//! `--knock`, the client in the same binary.

use std::time::Duration;

use crate::clock;
use crate::config::Config;
use crate::keys::clients::{Day, CHECK_INTERVAL};
use crate::keys::clients_file::{self as clients, ClientsFile, Reload};
use crate::keys::recipes::{self, Recipe};
use crate::keys::url::KnockUrl;

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
                crate::grammar::format_duration(config.rules.ttl.as_secs())
            )
        },
        crate::keys::clients::format_ttl,
    );
    let until = expires.map_or_else(|| "no expiry".to_string(), |d| format!("expires {d}"));
    outln!(
        "Added client {label} to {} (rule lifetime {ttl}, {until}); a knockd serving this \
         file accepts it within about a second (SIGHUP: at once).",
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
    // True whatever else the file holds: a serving knockd leaves an invalid line out and
    // applies every valid one, so this removal takes effect at its next look at the file.
    outln!(
        "Removed client {label} from {}; a knockd serving this file refuses its knocks within \
         about a second (SIGHUP: at once).",
        path.display()
    );
    warn_invalid_lines(path);
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
    warn_invalid_lines(path);
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

/// The invalid lines of the clients file, one warning each (never a key): a serving knockd
/// ignores them, so their clients cannot knock.
fn warn_invalid_lines(path: &std::path::Path) {
    if let Ok((_, Reload::Loaded { problems, .. })) = ClientsFile::open(path) {
        for p in problems {
            crate::log::fatal(&format!(
                "warning: {}: {p}; knockd ignores this line until it is fixed",
                path.display()
            ));
        }
    }
}
