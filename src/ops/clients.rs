//! `--add-client`, `--remove-client`, `--list-clients` (the clients file of per-client keys) and
//! `--knock`, the client in the same binary.

use std::time::Duration;

use crate::clock;
use crate::config::Config;
use crate::exit::Exit;
use crate::keys::clients::{ClientsError, Day, CHECK_INTERVAL};
use crate::keys::clients_file::{self as clients, ClientsFile, Reload};
use crate::keys::recipes::{self, Recipe};

pub(super) fn add_client(
    config: &Config,
    label: &str,
    ttl_secs: Option<u64>,
    expires: Option<Day>,
) -> Exit {
    let path = &config.keys.clients_file;
    let url = config.keys.public_url.as_ref();
    let key = match clients::add_client(path, label, ttl_secs, expires) {
        Ok(k) => k,
        Err(e) => {
            crate::log::error(&format!("{}: {e}", path.display()));
            return Exit::Failure;
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
        url,
        label,
        key: &key,
        success: &config.knock.message_success,
        lifetime: None,
    };
    outln!("{}", recipes::add_client_text(&recipe).trim_end());
    Exit::Success
}

pub(super) fn add_host(config: &Config, label: &str, name: &str, ttl_secs: Option<u64>) -> Exit {
    let path = &config.keys.clients_file;
    match clients::add_host(path, label, name, ttl_secs) {
        Ok(line) => {
            outln!(
                "Added to {}:\n{line}\nA knockd serving this file resolves the name within about \
                 a second (SIGHUP: at once), then every HOST_REFRESH, and keeps rules labelled \
                 {label} for its addresses.",
                path.display()
            );
            Exit::Success
        }
        Err(e) => {
            crate::log::error(&format!("{}: {e}", path.display()));
            match e {
                ClientsError::Io { .. } | ClientsError::TempExists { .. } => Exit::Failure,
                _ => Exit::Usage,
            }
        }
    }
}

pub(super) fn remove_client(config: &Config, label: &str, keep_rules: bool) -> Exit {
    let path = &config.keys.clients_file;
    if let Err(e) = clients::remove_client(path, label) {
        crate::log::error(&format!("{}: {e}", path.display()));
        return Exit::Failure;
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
        return Exit::Success;
    }
    // A running knockd looks at the file at most once a second: wait until it must have
    // noticed, so that no knock it still accepts can write rules after they were revoked.
    std::thread::sleep(CHECK_INTERVAL + Duration::from_millis(500));
    super::rules::revoke(config, label, false)
}

pub(super) fn list_clients(config: &Config) -> Exit {
    let path = &config.keys.clients_file;
    let (file, reload) = match ClientsFile::open(path) {
        Ok(x) => x,
        Err(e) => {
            crate::log::error(&format!("{}: {e}", path.display()));
            return Exit::Failure;
        }
    };
    if let Reload::Loaded { warnings, .. } = &reload {
        for w in warnings {
            crate::log::warning(w);
        }
    }
    warn_invalid_lines(path);
    let list = file.clients();
    let now = clock::now();
    let what = match reload {
        Reload::Missing => " (no such file yet: knockd --add-client LABEL creates it)",
        _ => "",
    };
    let hosts = match list.hosts().len() {
        0 => String::new(),
        n => format!(", {n} host(s)"),
    };
    outln!("{}: {} client(s){hosts}{what}", path.display(), list.len());
    if list.is_empty() && list.hosts().is_empty() {
        return Exit::Success;
    }
    // TTL `default` is RULE_TTL.
    for line in clients::list_text(&list, now).lines() {
        outln!("  {line}");
    }
    Exit::Success
}

/// The invalid lines of the clients file, one warning each (never a key): a serving knockd
/// ignores them, so their clients cannot knock.
fn warn_invalid_lines(path: &std::path::Path) {
    if let Ok((_, Reload::Loaded { problems, .. })) = ClientsFile::open(path) {
        for p in problems {
            crate::log::error(&format!(
                "warning: {}: {p}; knockd ignores this line until it is fixed",
                path.display()
            ));
        }
    }
}
