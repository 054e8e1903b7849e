//! The request semantics of the knock port: what one request head from one peer comes to
//! (a challenge body, a refusal, a rejection counted toward the lockout, or a grant carried out
//! on the writers), and what is logged and notified once its answer is written.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::client_ip::Refusal;
use super::decide::{self, Decision, Reject};
use super::events;
use super::http::{Answers, RequestHead};
use super::key_knock::{self, KeyDecision, Keys};
use super::lockout::{self, Lockout};
use super::table::{ConnState, Table};
use crate::cloud::writer::{self, Writers};
use crate::config::Config;
use crate::log::{self, RateLimited};
use crate::notify::Notifier;
use crate::rules::planner::Grant;
use crate::sync::lock;

/// Reject lines logged per second at most, so a flood cannot turn into a disk-filling log.
const REJECT_LOGS_PER_SEC: u32 = 20;
/// Lockout lines logged per second at most.
const LOCKOUT_LOGS_PER_SEC: u32 = 5;

/// Everything a request is judged and carried out with, shared by every connection.
pub(crate) struct Door {
    pub(crate) config: Arc<Config>,
    /// The lockout's clock: seconds since start-up, monotonic.
    started: Instant,
    writers: Writers,
    lockout: Mutex<Lockout>,
    /// The open connections, whose state a knock changes while it waits on the firewall.
    pub(crate) table: Table,
    rejects: RateLimited,
    /// `lockout` lines: rate-limited like rejects, on their own budget so that a reject flood
    /// cannot hide them (and a spray of lockouts cannot flood the log either).
    lockouts: RateLimited,
    pub(crate) answers: Answers,
    notifier: Arc<Notifier>,
    /// Client keys, the challenge secret and the replay cache.
    pub(crate) keys: Keys,
}

impl Door {
    pub(crate) fn new(
        config: Arc<Config>,
        writers: Writers,
        table: Table,
        notifier: Arc<Notifier>,
        keys: Keys,
    ) -> Door {
        let limits = &config.limits;
        Door {
            started: Instant::now(),
            writers,
            lockout: Mutex::new(Lockout::new(
                limits.lockout_failures,
                limits.lockout_window.as_secs(),
                limits.lockout_duration.as_secs(),
            )),
            table,
            answers: Answers::new(&config.knock),
            rejects: RateLimited::new(REJECT_LOGS_PER_SEC),
            lockouts: RateLimited::new(LOCKOUT_LOGS_PER_SEC),
            notifier,
            keys,
            config,
        }
    }

    /// An accept error, logged on the reject budget.
    pub(crate) fn log_rejected(&self, line: impl FnOnce() -> String) {
        self.rejects.event(line);
    }
}

/// What a request is answered with.
pub(crate) enum Answer {
    /// MESSAGE_SUCCESS or MESSAGE_FAILURE, as the verdict says.
    Fixed(Verdict),
    /// A challenge `T.N.G`: the one other body, with the same status and headers.
    Body(String),
}

/// What a request came to: the answer, and what to log once the answer is written.
pub(crate) struct Verdict {
    pub(crate) ok: bool,
    note: Note,
}

enum Note {
    Reject {
        who: IpAddr,
        reason: Reject,
        /// This failure locked `who` out.
        locked: bool,
    },
    Refused {
        peer: IpAddr,
        refusal: Refusal,
    },
    Knock {
        ip: IpAddr,
        label: String,
        ms: u128,
        per_instance: Vec<String>,
    },
}

fn lockout_now(door: &Door) -> u64 {
    door.started.elapsed().as_secs()
}

/// One request, decided and (for a grant) carried out: `ok` only when every instance confirmed
/// the grant. A grant leaves the connection in the Knocking state, which `answered` ends once
/// the answer is written.
/// One request: a challenge body, or a verdict (success only when every instance confirmed
/// the grant).
pub(crate) fn answer(door: &Door, head: &RequestHead, peer: IpAddr, conn: u64) -> Answer {
    let config = &door.config;
    let now = lockout_now(door);
    let is_locked = |k| lock(&door.lockout).is_locked(k, now);
    match key_knock::judge(
        head,
        peer,
        &config.knock,
        &door.keys,
        crate::clock::now(),
        is_locked,
        crate::keys::challenge::new_nonce,
    ) {
        KeyDecision::NotKey => Answer::Fixed(knock(door, head, peer, conn, None)),
        KeyDecision::Challenge(body) => Answer::Body(body),
        KeyDecision::Decided(d, ttl) => {
            Answer::Fixed(knock(door, head, peer, conn, Some((d, ttl))))
        }
    }
}

/// One knock. `decided` is a key knock's decision and rule lifetime; `None` decides the
/// Referer knock here.
fn knock(
    door: &Door,
    head: &RequestHead,
    peer: IpAddr,
    conn: u64,
    decided: Option<(Decision, Option<u64>)>,
) -> Verdict {
    let config = &door.config;
    let started = Instant::now();
    let now = lockout_now(door);
    let (decision, ttl_secs) = decided.unwrap_or_else(|| {
        let d = decide::decide(head, peer, &config.knock, |k| {
            lock(&door.lockout).is_locked(k, now)
        });
        (d, None)
    });
    let (ip, label, key) = match decision {
        Decision::Reject {
            reason: Reject::LockedOut,
            key,
        } => {
            let note = Note::Reject {
                who: key,
                reason: Reject::LockedOut,
                locked: false,
            };
            return Verdict { ok: false, note };
        }
        Decision::Reject { reason, key } => {
            let locked = lock(&door.lockout).fail(key, now);
            let note = Note::Reject {
                who: key,
                reason,
                locked,
            };
            return Verdict { ok: false, note };
        }
        Decision::Refuse { peer, refusal } => {
            return Verdict {
                ok: false,
                note: Note::Refused { peer, refusal },
            }
        }
        Decision::Grant { ip, label, key } => (ip, label, key),
    };
    // A knock that waits on the firewall is shielded from eviction at the connection cap until
    // its answer is written; everything else answers at once and costs no shared lock here.
    door.table.set_state(conn, ConnState::Knocking);
    let deadline = started + config.limits.knock_timeout;
    let grant = Grant {
        ip,
        label,
        ttl_secs: ttl_secs.map(|s| s.min(i64::MAX as u64) as i64),
    };
    let rx = door.writers.submit(&grant, deadline);
    let outcomes = writer::collect(&rx, door.writers.len(), deadline);
    let ok = outcomes.len() == door.writers.len() && outcomes.iter().all(|o| o.ok);
    let mut per_instance: Vec<String> = outcomes
        .iter()
        .map(|o| format!("{}={}", o.instance, o.detail))
        .collect();
    for id in door.writers.instance_ids() {
        if !outcomes.iter().any(|o| o.instance == id) {
            per_instance.push(format!("{id}=timeout"));
        }
    }
    if ok {
        lock(&door.lockout).succeed(key);
    }
    // Non-blocking (a bounded queue), so it costs the answer nothing.
    events::knocked(&door.notifier, config, &grant, &outcomes, ok, &per_instance);
    Verdict {
        ok,
        note: Note::Knock {
            ip,
            label: grant.label,
            ms: started.elapsed().as_millis(),
            per_instance,
        },
    }
}

/// After the answer to `verdict` is written (or could not be): the connection may be evicted
/// again, and the request is logged. `head` is read here, not before, for the label of a
/// refused knock.
pub(crate) fn answered(door: &Door, conn: u64, verdict: Verdict, head: &RequestHead) {
    let config = &door.config;
    match verdict.note {
        Note::Reject {
            who,
            reason,
            locked,
        } => {
            if reason == Reject::Secret && who != lockout::UNREADABLE {
                events::wrong_secret(&door.notifier, who);
            }
            if locked && who != lockout::UNREADABLE {
                events::locked_out(&door.notifier, who, &config.limits);
            }
            let who = shown(who);
            door.rejects
                .event(|| format!("reject addr={who} reason={}", reason.as_str()));
            if locked {
                door.lockouts.event(|| {
                    format!(
                        "lockout addr={who} for={}s after {} failed knocks",
                        config.limits.lockout_duration.as_secs(),
                        config.limits.lockout_failures
                    )
                });
            }
        }
        // Through the reject rate limit too: logging every refusal would make a right secret
        // refused for its address cost more than a wrong one under a flood, which times it.
        Note::Refused { peer, refusal } => {
            let label = crate::rules::desc::sanitize_label(head.header("location").unwrap_or(b""));
            events::refused(&door.notifier, peer, &label, &refusal.to_string());
            door.rejects.event(|| {
                format!("knock peer={peer} label={label} result=refused reason=\"{refusal}\"")
            })
        }
        Note::Knock {
            ip,
            label,
            ms,
            per_instance,
        } => {
            door.table.set_state(conn, ConnState::Reading);
            log::event(&format!(
                "knock addr={ip} label={label} result={} ms={ms} {}",
                if verdict.ok { "ok" } else { "failed" },
                per_instance.join(" ")
            ));
        }
    }
}

/// A lockout bucket as the log shows it.
fn shown(key: IpAddr) -> String {
    if key == lockout::UNREADABLE {
        "unreadable-forwarded-header".to_string()
    } else {
        key.to_string()
    }
}
