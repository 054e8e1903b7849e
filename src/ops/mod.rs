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

use crate::cli::Op;
use crate::cloud::client::Client;
use crate::config::{Config, Instance};
use crate::exit::Exit;
use crate::rules::FirewallRule;

/// Runs `command` and returns the process exit status (0 ok, 1 operational failure).
pub fn run(op: &Op, config: &Config) -> Exit {
    match op {
        Op::Serve => crate::knock::serve(config),
        Op::CheckConfig => check::check_config(config),
        Op::Check => check::check(config),
        Op::Prune { dry_run } => rules::prune(config, *dry_run),
        Op::List => rules::list(config),
        Op::Revoke { target, dry_run } => rules::revoke(config, target, *dry_run),
        Op::PrintCamPolicy { uin } => cam::print_policy(config, uin.as_deref()),
        Op::NotifyTest => events::notify_test(config),
        Op::AddClient {
            label,
            ttl_secs,
            expires,
        } => clients::add_client(config, label, *ttl_secs, *expires),
        Op::AddHost {
            label,
            name,
            ttl_secs,
        } => clients::add_host(config, label, name, *ttl_secs),
        Op::RemoveClient { label, keep_rules } => {
            clients::remove_client(config, label, *keep_rules)
        }
        Op::ListClients => clients::list_clients(config),
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
