//! The operator commands' notifications: one event per `--prune` or `--revoke` that removed
//! rules, sent at once (the process ends right after), and `--notify-test`.

use crate::cloud::client::notifier;
use crate::config::Config;
use crate::exit::Exit;
use crate::log;
use crate::notify::{Event, EventKind, NotifyError};
use crate::rules::revoke::RevokeTarget;
use crate::rules::FirewallRule;

/// Sends one event from a one-shot command (`--prune`, `--revoke`): now, on this thread,
/// since the process ends right after.
fn one_shot(config: &Config, event: Event) {
    let Some(notify) = &config.notify else {
        return;
    };
    if !notify.events.contains(event.kind) {
        return;
    }
    match notifier(config, notify) {
        Ok(n) => n.send_now(event),
        Err(e) => log::event(&e),
    }
}

/// Each distinct `f(rule)`, in order, joined with `sep`.
fn distinct(rules: &[FirewallRule], f: impl Fn(&FirewallRule) -> String, sep: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for r in rules {
        let v = f(r);
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out.join(sep)
}

/// The instances that lost rules, comma-separated.
fn touched(removed: &[(&str, Vec<FirewallRule>)]) -> String {
    let ids: Vec<&str> = removed
        .iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(id, _)| *id)
        .collect();
    ids.join(",")
}

/// `knockd --prune` removed these rules (per instance).
pub(crate) fn pruned(config: &Config, removed: &[(&str, Vec<FirewallRule>)]) {
    let count: usize = removed.iter().map(|(_, r)| r.len()).sum();
    if count == 0 {
        return;
    }
    one_shot(
        config,
        Event::new(EventKind::Prune, "")
            .with_count(count as u64)
            .with_instances(touched(removed))
            .with_result("ok")
            .with_reason("knockd --prune"),
    );
}

/// `knockd --revoke TARGET` removed these rules (per instance).
pub(crate) fn revoked(
    config: &Config,
    target: &RevokeTarget,
    removed: &[(&str, Vec<FirewallRule>)],
) {
    let all: Vec<FirewallRule> = removed.iter().flat_map(|(_, r)| r.clone()).collect();
    if all.is_empty() {
        return;
    }
    let mut e = Event::new(
        EventKind::Revoke,
        distinct(&all, |r| r.address().into(), ","),
    )
    .with_ports(distinct(
        &all,
        |r| format!("{} {}", r.protocol, r.port),
        "; ",
    ))
    .with_count(all.len() as u64)
    .with_instances(touched(removed))
    .with_result("ok")
    .with_reason("knockd --revoke");
    if let Some(label) = target.label() {
        e = e.with_label(label);
    }
    one_shot(config, e);
}

/// `knockd --notify-test`: 0 when every channel answered well, 1 otherwise, 2 when
/// notifications are off.
pub(super) fn notify_test(config: &Config) -> Exit {
    let Some(notify) = &config.notify else {
        log::error(&NotifyError::NotConfigured.to_string());
        return Exit::Usage;
    };
    let n = match notifier(config, notify) {
        Ok(n) => n,
        Err(e) => {
            log::error(&e.to_string());
            return Exit::Failure;
        }
    };
    match n.send_test() {
        Ok(report) => {
            crate::stdout::print(&report);
            Exit::Success
        }
        Err(e) => {
            crate::stdout::print(&e.to_string());
            Exit::Failure
        }
    }
}
