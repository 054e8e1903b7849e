//! The knock port's notifications: what a knock came to, told to the notifier. Nothing here
//! blocks a knock: events are only queued, and a kind that `NOTIFY_EVENTS` does not select
//! costs one check.

use std::net::IpAddr;
use std::sync::Arc;

use crate::cloud::writer::Outcome;
use crate::config::{Config, LimitsConfig};
use crate::keys::hosts::HostLine;
use crate::log;
use crate::notify::{Event, EventKind, Notifier};
use crate::rules::planner::Grant;

/// The serving knockd's notifier: disabled when notifications are off or cannot start (the
/// reason is logged: a knock must never depend on notifications).
pub(crate) fn start(config: &Config) -> Arc<Notifier> {
    let Some(notify) = &config.notify else {
        return Arc::new(Notifier::disabled());
    };
    match crate::cloud::client::notifier(config, notify) {
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

/// An event about `label`'s rules for `ip`: the ports and instances filled in.
fn about(kind: EventKind, ip: IpAddr, label: &str, config: &Config) -> Event {
    Event::new(kind, ip.to_string())
        .with_label(label)
        .with_ports(ports(config))
        .with_instances(instances(config))
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
    let mut e = about(kind, grant.ip, &grant.label, config);
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

/// A host line's name gained (`added`) or lost an address, whose rules were written or removed.
pub(crate) fn host_changed(
    n: &Notifier,
    config: &Config,
    line: &HostLine,
    ip: IpAddr,
    added: bool,
    ttl_secs: u64,
) {
    if !n.wants(EventKind::Host) {
        return;
    }
    let mut e = about(EventKind::Host, ip, &line.label, config)
        .with_result(if added { "added" } else { "removed" })
        .with_reason(line.name.clone());
    if added {
        e = e.with_expires(crate::clock::now().saturating_add(ttl_secs as i64));
    }
    n.notify(e);
}
