//! The glue between knockd's layers and the notifier: each call site in the knock path, the
//! writers and the operator commands is one call here, which builds the [`Event`] from
//! knockd's own values. Nothing here blocks a knock: events are only queued, and a kind that
//! `NOTIFY_EVENTS` does not select costs one check.

use std::net::IpAddr;
use std::sync::Arc;

use super::{Event, EventKind, Notifier, NotifyConfig};
use crate::cloud::client;
use crate::cloud::writer::Outcome;
use crate::config::{Config, LimitsConfig};
use crate::log;
use crate::rules::planner::{Grant, Plan};
use crate::rules::FirewallRule;

/// The variable an error of [`NotifyConfig::parse`] is about (its leading `NOTIFY_*` word)
/// and the rest, for the config layer's `VARIABLE: message` errors.
pub(crate) fn split_error(e: &str) -> (&str, &str) {
    let end = e
        .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
        .unwrap_or(e.len());
    let (var, rest) = e.split_at(end);
    let rest = rest.strip_prefix(':').unwrap_or(rest).trim_start();
    if var.starts_with("NOTIFY_") {
        (var, rest)
    } else {
        ("NOTIFY_URL", e)
    }
}

/// The notifier for `config`: knockd's own HTTPS agent (the API's roots and CA file, the proxy
/// chosen for the webhook's host), or `Err` with a line for the operator.
fn start_notifier(config: &Config, notify: &NotifyConfig) -> Result<Notifier, String> {
    let host = notify.webhook_host().unwrap_or("");
    let agent = client::notify_agent(config, host).map_err(|e| format!("notify: {e}"))?;
    Notifier::start(notify.clone(), agent).map_err(|e| format!("notify: {e}"))
}

/// The serving knockd's notifier: disabled when notifications are off or cannot start (the
/// reason is logged: a knock must never depend on notifications).
pub(crate) fn start(config: &Config) -> Arc<Notifier> {
    let Some(notify) = &config.notify else {
        return Arc::new(Notifier::disabled());
    };
    match start_notifier(config, notify) {
        Ok(n) => {
            let shown: Vec<String> = notify
                .describe()
                .into_iter()
                .map(|(k, v)| format!("{}={v:?}", k.trim_start_matches("NOTIFY_").to_lowercase()))
                .collect();
            log::event(&format!("notify on {}", shown.join(" ")));
            Arc::new(n)
        }
        Err(e) => {
            log::event(&format!("{e}; notifications are off"));
            Arc::new(Notifier::disabled())
        }
    }
}

/// `TCP 22,443; UDP 53`.
fn ports(config: &Config) -> String {
    config
        .rules
        .ports
        .iter()
        .map(|(p, list)| format!("{} {list}", p.as_str()))
        .collect::<Vec<_>>()
        .join("; ")
}

fn instances(config: &Config) -> String {
    config
        .cloud
        .instances
        .iter()
        .map(|i| i.id.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `plan` creates rules for `ip` (a grant) rather than only refreshing or keeping
/// them (a refresh).
pub(crate) fn creates_for(plan: &Plan, ip: IpAddr) -> bool {
    let addr = crate::rules::cidr::canonical(ip).to_string();
    plan.create.iter().any(|r| r.address() == addr)
}

/// A knock with the right secret went to the writers: grant (new rules on some instance),
/// refresh (the address was open already) or fail (not every instance confirmed in time).
/// `per_instance` is the log's `instance=detail` list, timeouts included.
pub(crate) fn knocked(
    n: &Notifier,
    config: &Config,
    grant: &Grant,
    outcomes: &[Outcome],
    ok: bool,
    per_instance: &[String],
) {
    let kind = if !ok {
        EventKind::Fail
    } else if outcomes.iter().any(|o| o.created) {
        EventKind::Grant
    } else {
        EventKind::Refresh
    };
    if !n.wants(kind) {
        return;
    }
    let mut e = Event::new(kind, grant.ip.to_string())
        .with_label(&grant.label)
        .with_ports(ports(config))
        .with_instances(instances(config));
    if ok {
        // The rules' lifetime: a key client's own `ttl=` where it has one.
        let ttl = grant.ttl_secs.unwrap_or(config.rules.ttl.as_secs() as i64);
        e = e
            .with_expires(crate::clock::now().saturating_add(ttl))
            .with_result("ok");
    } else {
        let failed: Vec<&str> = per_instance
            .iter()
            .filter(|d| {
                let id = d.split_once('=').map_or(d.as_str(), |(id, _)| id);
                !outcomes.iter().any(|o| o.ok && o.instance == id)
            })
            .map(String::as_str)
            .collect();
        let partial = outcomes.iter().any(|o| o.ok);
        e = e
            .with_result(if partial { "partial" } else { "failed" })
            .with_reason(format!("firewall not confirmed: {}", failed.join(" ")));
    }
    n.notify(e);
}

/// A request on the knock path with a wrong or missing secret, from `who` (the lockout key).
pub(crate) fn wrong_secret(n: &Notifier, who: IpAddr) {
    if n.wants(EventKind::Fail) {
        n.notify(
            Event::new(EventKind::Fail, who.to_string())
                .with_result("rejected")
                .with_reason("wrong secret"),
        );
    }
}

/// The right secret, but no address the firewall may be opened for.
pub(crate) fn refused(n: &Notifier, peer: IpAddr, label: &str, refusal: &str) {
    if n.wants(EventKind::Fail) {
        n.notify(
            Event::new(EventKind::Fail, peer.to_string())
                .with_label(label)
                .with_result("refused")
                .with_reason(refusal),
        );
    }
}

/// `who` was just locked out after `LOCKOUT_FAILURES` failed knocks.
pub(crate) fn locked_out(n: &Notifier, who: IpAddr, limits: &LimitsConfig) {
    if n.wants(EventKind::Lockout) {
        n.notify(
            Event::new(EventKind::Lockout, who.to_string())
                .with_count(u64::from(limits.lockout_failures))
                .with_expires(crate::clock::now() + limits.lockout_duration.as_secs() as i64)
                .with_result("locked"),
        );
    }
}

/// A serving writer's sweep removed expired rules from one instance.
pub(crate) fn swept(n: &Notifier, instance: &str, plan: &Plan) {
    let expired = plan.delete.len() - plan.evicted;
    if expired > 0 && n.wants(EventKind::Prune) {
        n.notify(
            Event::new(EventKind::Prune, "")
                .with_count(expired as u64)
                .with_instances(instance)
                .with_result("ok"),
        );
    }
}

/// Sends one event from a one-shot command (`--prune`, `--revoke`): now, on this thread,
/// since the process ends right after.
fn one_shot(config: &Config, event: Event) {
    let Some(notify) = &config.notify else {
        return;
    };
    if !notify.events.contains(event.kind) {
        return;
    }
    match start_notifier(config, notify) {
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
pub(crate) fn revoked(config: &Config, target: &str, removed: &[(&str, Vec<FirewallRule>)]) {
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
    if target.parse::<IpAddr>().is_err() && !target.contains('/') {
        e = e.with_label(target);
    }
    one_shot(config, e);
}

/// `knockd --notify-test`: 0 when every channel answered well, 1 otherwise, 2 when
/// notifications are off.
pub fn notify_test(config: &Config) -> i32 {
    let Some(notify) = &config.notify else {
        crate::log::fatal(&super::NotifyError::NotConfigured.to_string());
        return 2;
    };
    let n = match start_notifier(config, notify) {
        Ok(n) => n,
        Err(e) => {
            crate::log::fatal(&e.to_string());
            return 1;
        }
    };
    match n.send_test() {
        Ok(report) => {
            crate::ops::print(&report);
            0
        }
        Err(e) => {
            crate::ops::print(&e.to_string());
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_split_by_variable() {
        assert_eq!(
            split_error("NOTIFY_BODY is set but NOTIFY_URL is not"),
            ("NOTIFY_BODY", "is set but NOTIFY_URL is not")
        );
        assert_eq!(
            split_error("NOTIFY_EVENTS: unknown event 'x'"),
            ("NOTIFY_EVENTS", "unknown event 'x'")
        );
        assert_eq!(
            split_error("NOTIFY_URL (https://h/****): bad"),
            ("NOTIFY_URL", "(https://h/****): bad")
        );
        assert_eq!(split_error("odd"), ("NOTIFY_URL", "odd"));
    }
}
