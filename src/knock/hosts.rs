//! Host lines (`LABEL host=NAME [ttl=DURATION]` in the clients file): one thread resolves each
//! name through the system resolver (getaddrinfo: /etc/hosts, then DNS) at start and every
//! HOST_REFRESH, and keeps rules labelled LABEL for exactly the addresses it has, on the same
//! writers as knocks. What to add and remove is `rules::follow` (grace, caps, refused
//! addresses); this file does the resolving, the writes, the log lines and the notifications.
//! Nothing here passes through the knock path: no lockout, no challenge.
//!
//! - A failed resolve keeps the name's addresses but stops refreshing them: their rules run
//!   out with their lifetime unless the name resolves again first. It is retried sooner
//!   (HOST_REFRESH/10, 1 s to 30 s).
//! - The grace before an address the name no longer has is removed is one HOST_REFRESH.
//! - A name is resolved again at least every half of its rule lifetime, so that its rules are
//!   refreshed before they expire.
//! - A line removed from the file is no longer followed; its rules stay until they expire,
//!   `--revoke LABEL` or `--remove-client LABEL`.

use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::client_ip::is_followable;
use super::door::{confirmed, Door};
use super::events;
use crate::keys::hosts::HostLine;
use crate::log;
use crate::rules::cidr::Cidr;
use crate::rules::desc::sanitize_label;
use crate::rules::follow::{self, NameState};
use crate::rules::planner::Grant;

/// getaddrinfo and the log lines need little.
const STACK: usize = 256 * 1024;
/// The longest sleep between looks at the clients file.
const TICK: Duration = Duration::from_secs(1);

/// Why an address of an answer is not opened (logged once while the name keeps it).
const REFUSED: &str = "a name never opens a private, loopback or other non-public address";
const CAP: &str = "at most 4 IPv4 and 4 IPv6 addresses per name are opened";

/// One followed line.
struct Followed {
    name: String,
    state: NameState,
    next: Instant,
}

/// Starts the thread that follows the clients file's host lines for as long as knockd serves.
pub(crate) fn start(door: &Arc<Door>) -> Result<(), String> {
    let door = Arc::clone(door);
    thread::Builder::new()
        .name("hosts".into())
        .stack_size(STACK)
        .spawn(move || run(&door))
        .map(|_| ())
        .map_err(|e| format!("cannot start the host-name thread: {e}"))
}

/// The retry interval after a failed resolve.
fn retry_after(refresh: Duration) -> Duration {
    (refresh / 10)
        .clamp(Duration::from_secs(1), Duration::from_secs(30))
        .min(refresh)
}

fn run(door: &Door) {
    let refresh = door.config.limits.host_refresh;
    let started = Instant::now();
    // By label; a few lines, so a Vec (a HashMap would add its own copy of the hash table).
    let mut names: Vec<(String, Followed)> = Vec::new();
    loop {
        let clients = door.keys.clients_now();
        let lines = clients.hosts();
        names.retain(|(label, f)| {
            let kept = lines.iter().any(|h| h.label == *label);
            if !kept {
                log::event(&format!(
                    "host label={label} name={} result=unfollowed: line removed, rules kept until \
                     they expire",
                    f.name
                ));
            }
            kept
        });
        let now = Instant::now();
        for line in lines {
            let i = match names.iter().position(|(l, _)| *l == line.label) {
                Some(i) => i,
                None => {
                    let f = Followed {
                        name: String::new(),
                        state: NameState::default(),
                        next: now,
                    };
                    names.push((line.label.clone(), f));
                    names.len() - 1
                }
            };
            let f = &mut names[i].1;
            if f.name != line.name {
                // A new line, or a new name for a label: its answer decides at once (what the
                // old name had goes after the grace, like any address the name lost).
                log::event(&format!(
                    "host label={} name={} result=following refresh={}s",
                    line.label,
                    line.name,
                    refresh.as_secs()
                ));
                f.name = line.name.clone();
                f.next = now;
            }
            if f.next <= now {
                let secs = started.elapsed().as_secs();
                f.next = Instant::now() + pass(door, line, &mut f.state, refresh, secs);
            }
        }
        let wake = names.iter().map(|(_, f)| f.next).min();
        let nap = wake.map_or(TICK, |w| w.saturating_duration_since(Instant::now()));
        thread::sleep(nap.min(TICK));
    }
}

/// Resolves `line`'s name once, brings its rules in step, and returns when to look again.
fn pass(
    door: &Door,
    line: &HostLine,
    state: &mut NameState,
    refresh: Duration,
    now: u64,
) -> Duration {
    let config = &door.config;
    let who = format!("host label={} name={}", line.label, line.name);
    let resolved = (line.name.as_str(), 0u16)
        .to_socket_addrs()
        .map(|it| it.map(|a| a.ip()).collect::<Vec<IpAddr>>());
    let grace = refresh.as_secs();
    let ttl = line.ttl_secs.unwrap_or(config.rules.ttl.as_secs());
    let label = sanitize_label(line.label.as_bytes());
    let addrs = match resolved {
        Ok(a) if !a.is_empty() => a,
        other => {
            let why = other
                .err()
                .map_or("no address".to_string(), |e| e.to_string());
            let retry = retry_after(refresh);
            // Silence does not hold an address past its grace (a forged answer, then no
            // answer at all, must not keep it open for the rules' whole lifetime).
            follow::expire(state, grace, now);
            let kept: Vec<String> = state.addrs().map(|a| a.to_string()).collect();
            log::event(&format!(
                "{who} error={why:?} kept={} retry={}s",
                if kept.is_empty() {
                    "-".to_string()
                } else {
                    kept.join(",")
                },
                retry.as_secs()
            ));
            remove_pending(door, line, &who, state, &label, ttl);
            return retry;
        }
    };
    let changes = follow::follow(state, &addrs, &is_followable, grace, now);
    let refused = changes.refused.iter().map(|ip| (ip, "refused", REFUSED));
    for (ip, what, why) in refused.chain(changes.over_cap.iter().map(|ip| (ip, "over-cap", CAP))) {
        log::event(&format!("{who} {what}={ip}: {why}"));
    }
    // Every address kept (new, still there, or in its grace): created or refreshed.
    let grants: Vec<Grant> = state
        .addrs()
        .map(|ip| Grant {
            ip,
            label: label.clone(),
            ttl_secs: line.ttl_secs.map(|s| s.min(i64::MAX as u64) as i64),
            prefix: None,
        })
        .collect();
    grant_kept(door, line, &who, &grants, &changes.added, ttl);
    remove_pending(door, line, &who, state, &label, ttl);
    // Resolved again before half the rules' lifetime is gone, so they never lapse; sooner
    // while a removal is still to be done.
    let next = refresh.min(Duration::from_secs((ttl / 2).max(1)));
    if state.removing.is_empty() {
        next
    } else {
        next.min(retry_after(refresh))
    }
}

/// Creates or refreshes the rules of every address kept; logs (and notifies) the new ones,
/// those whose rules had gone, and any that failed.
fn grant_kept(
    door: &Door,
    line: &HostLine,
    who: &str,
    grants: &[Grant],
    added: &[IpAddr],
    ttl: u64,
) {
    let config = &door.config;
    let instances = door.firewall.instances();
    for grant in grants {
        // The line may have gone while this pass resolved or granted (`--remove-client`
        // removes it, waits for this thread to notice, then revokes): nothing more is granted
        // for it. A grant already under way when the line goes can still land after the
        // revoke; its rules then run out with their lifetime.
        let hosts = door.keys.clients_now();
        let listed = (hosts.hosts().iter()).any(|h| h.label == line.label && h.name == line.name);
        if !listed {
            return;
        }
        let deadline = Instant::now() + config.limits.knock_timeout;
        let outcomes = door.firewall.grant(grant, deadline);
        let (ok, detail) = confirmed(&outcomes, &instances);
        let result = if ok { "ok" } else { "failed" };
        let created = outcomes.iter().any(|o| o.created);
        let what = if added.contains(&grant.ip) {
            "added"
        } else if created {
            // Rules it should have had were gone (revoked, or expired while it did not resolve).
            "restored"
        } else if !ok {
            "refresh"
        } else {
            continue;
        };
        log::event(&format!(
            "{who} {what}={} result={result} {}",
            grant.ip,
            detail.join(" ")
        ));
        if what != "refresh" && ok {
            events::host_changed(&door.notifier, config, line, grant.ip, true, ttl);
        }
    }
}

/// Closes the addresses the name no longer has (their grace is over), and those whose
/// removal failed before: an address leaves `removing` only once every instance confirmed,
/// and only then is it notified as removed.
fn remove_pending(
    door: &Door,
    line: &HostLine,
    who: &str,
    state: &mut NameState,
    label: &str,
    ttl: u64,
) {
    let config = &door.config;
    for ip in state.removing.clone() {
        let results = door.firewall.remove(Cidr::host(ip), label);
        let detail: Vec<String> = results
            .iter()
            .map(|(id, r)| match r {
                Ok(n) => format!("{id}=removed({n})"),
                Err(e) => format!("{id}=error({e})"),
            })
            .collect();
        let ok = results.iter().all(|(_, r)| r.is_ok());
        log::event(&format!(
            "{who} removed={ip} result={} {}",
            if ok {
                "ok"
            } else {
                "failed, tried again at the next pass"
            },
            detail.join(" ")
        ));
        if ok {
            state.removed(ip);
            events::host_changed(&door.notifier, config, line, ip, false, ttl);
        }
    }
}

#[cfg(test)]
#[test]
fn retry_is_a_tenth_of_the_refresh_within_one_to_thirty_seconds() {
    for (refresh, retry) in [(1, 1), (5, 1), (60, 6), (300, 30), (3600, 30)] {
        assert_eq!(
            retry_after(Duration::from_secs(refresh)),
            Duration::from_secs(retry),
            "{refresh}"
        );
    }
}
