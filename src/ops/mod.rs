//! The operator commands: `--prune`, `--list`, `--revoke` (in `rules`), `--check` (in
//! `check`), the clients file and the `--knock` client (in `clients`), and the dispatch of every command that needs a validated configuration. Thin
//! shells around the planner and the executor, one instance per thread, printing to stdout.
//! Exit codes: 0 success, 1 an instance or check failed.

use std::thread;

mod cam;
mod check;
mod clients;
mod events;
mod rules;

use crate::cli::Command;
use crate::cloud::client::Client;
use crate::config::{Config, Instance};
use crate::exit::Exit;
use crate::rules::FirewallRule;

/// Runs `command` and returns the process exit status (0 ok, 1 operational failure).
pub fn run(command: &Command, config: &Config) -> Exit {
    match command {
        Command::Serve => crate::knock::serve(config),
        Command::CheckConfig => check::check_config(config),
        Command::Check => check::check(config),
        Command::Prune { dry_run } => rules::prune(config, *dry_run),
        Command::List => rules::list(config),
        Command::Revoke { target, dry_run } => rules::revoke(config, target, *dry_run),
        Command::PrintCamPolicy { uin } => cam::print_policy(config, uin.as_deref()),
        Command::NotifyTest => events::notify_test(config),
        Command::AddClient {
            label,
            ttl_secs,
            expires,
        } => clients::add_client(config, label, *ttl_secs, *expires),
        Command::AddHost {
            label,
            name,
            ttl_secs,
        } => clients::add_host(config, label, name, *ttl_secs),
        Command::RemoveClient { label, keep_rules } => {
            clients::remove_client(config, label, *keep_rules)
        }
        Command::ListClients => clients::list_clients(config),
        // Handled in main before a configuration is loaded or printed there (`--knock` needs
        // none: it runs where there is no configuration, a router or a laptop).
        Command::Knock { .. } | Command::Version | Command::Help => Exit::Success,
    }
}

pub(crate) fn client(config: &Config) -> Option<Client> {
    match Client::new(config) {
        Ok(c) => Some(c),
        Err(e) => {
            crate::log::error(&e.to_string());
            None
        }
    }
}

/// Runs `f` for every instance in parallel; results in configuration order.
pub(crate) fn per_instance<T: Send>(config: &Config, f: impl Fn(&Instance) -> T + Sync) -> Vec<T> {
    in_parallel(&config.cloud.instances, f)
}

/// Runs `f` for each of `instances` in parallel; results in their order.
pub(crate) fn in_parallel<T: Send>(
    instances: &[Instance],
    f: impl Fn(&Instance) -> T + Sync,
) -> Vec<T> {
    thread::scope(|s| {
        let handles: Vec<_> = instances.iter().map(|inst| s.spawn(|| f(inst))).collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(t) => t,
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    })
}

pub(crate) fn rule_line(r: &FirewallRule) -> String {
    format!(
        "{} {} {} {:?}",
        r.protocol,
        r.port,
        r.address(),
        r.description
    )
}
