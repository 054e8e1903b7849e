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
use super::key_knock::Keys;
use super::lockout::{self, Lockout};
use super::table::{ConnState, ConnTable};
use crate::cloud::writer::{self, Outcome, Writers};
use crate::config::Config;
use crate::log::{self, RateLimited};
use crate::notify::Notifier;
use crate::rules::cidr::Cidr;
use crate::rules::planner::Grant;
use crate::sync::lock;

/// Reject lines logged per second at most, so a flood cannot turn into a disk-filling log.
const REJECT_LOGS_PER_SEC: u32 = 20;
/// Lockout lines logged per second at most.
const LOCKOUT_LOGS_PER_SEC: u32 = 5;

/// What the request semantics need of the firewall: the cloud layer's writers, or a fake in
/// the tests below.
pub(crate) trait Firewall: Send + Sync {
    /// Carries out `grant` on every instance, waiting until `deadline` at most: one outcome
    /// per instance that answered in time.
    fn grant(&self, grant: &Grant, deadline: Instant) -> Vec<Outcome>;
    /// Every instance's id, in configuration order.
    fn instances(&self) -> Vec<String>;
    /// Removes knockd's rules labelled `label` for exactly `block` on every instance: one
    /// (instance, rules removed or why not) each.
    fn remove(&self, block: Cidr, label: &str) -> Vec<(String, Result<usize, String>)>;
}

impl Firewall for Writers {
    fn grant(&self, grant: &Grant, deadline: Instant) -> Vec<Outcome> {
        let rx = self.submit(grant, deadline);
        writer::collect(&rx, self.len(), deadline)
    }

    fn instances(&self) -> Vec<String> {
        self.instance_ids().map(str::to_string).collect()
    }

    fn remove(&self, block: Cidr, label: &str) -> Vec<(String, Result<usize, String>)> {
        Writers::remove(self, block, label)
    }
}

/// Everything a request is judged and carried out with, shared by every connection.
pub(crate) struct Door {
    pub(crate) config: Arc<Config>,
    /// The lockout's clock: seconds since start-up, monotonic.
    started: Instant,
    /// The per-instance writers (a fake in tests).
    pub(super) firewall: Box<dyn Firewall>,
    lockout: Mutex<Lockout>,
    /// The open connections, whose state a knock changes while it waits on the firewall.
    pub(crate) table: ConnTable,
    rejects: RateLimited,
    /// `lockout` lines: rate-limited like rejects, on their own budget so that a reject flood
    /// cannot hide them (and a spray of lockouts cannot flood the log either).
    lockouts: RateLimited,
    pub(crate) answers: Answers,
    pub(super) notifier: Arc<Notifier>,
    /// Client keys, the challenge secret and the replay cache.
    pub(crate) keys: Keys,
}

impl Door {
    pub(crate) fn new(
        config: Arc<Config>,
        firewall: Box<dyn Firewall>,
        table: ConnTable,
        notifier: Arc<Notifier>,
        keys: Keys,
    ) -> Door {
        let limits = &config.limits;
        Door {
            started: Instant::now(),
            firewall,
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

/// What a request comes to before anything waits: an answer to write now, or a grant to carry
/// out on the writers (which the caller does off its own thread, see `carry_out`).
pub(crate) enum Step {
    Now(Answer),
    Grant(Pending),
}

/// A grant decided but not yet carried out.
#[derive(Clone)]
pub(crate) struct Pending {
    ip: IpAddr,
    label: String,
    ttl_secs: Option<u64>,
    /// A client's wider grant (`v4_prefix=`/`v6_prefix=`); None: the address alone.
    prefix: Option<u8>,
}

/// One request, judged without waiting: a challenge body, a refusal or rejection, or a grant
/// still to be carried out. Cheap, so the poll loop calls it for every complete head.
pub(crate) fn judge(door: &Door, head: &RequestHead, peer: IpAddr) -> Step {
    let now = lockout_now(door);
    let decision = decide::decide(
        head,
        peer,
        &door.config.knock,
        &door.keys,
        crate::clock::now(),
        |k| lock(&door.lockout).is_locked(k, now),
        crate::keys::challenge::new_nonce,
    );
    match decision {
        Decision::Challenge(body) => Step::Now(Answer::Body(body)),
        Decision::Reject { reason, key } => {
            Step::Now(Answer::Fixed(reject(door, reason, key, now)))
        }
        Decision::Refuse { peer, refusal } => Step::Now(Answer::Fixed(Verdict {
            ok: false,
            note: Note::Refused { peer, refusal },
        })),
        Decision::Grant {
            ip,
            label,
            // A success clears no failure of its bucket: failures only age out of
            // LOCKOUT_WINDOW. Clearing them let a key holder interleave guesses at the shared
            // KNOCK_REFERER with her own valid key knocks and never be locked out; and any
            // success from one address (a NAT) cleared the guesses of everyone behind it.
            key: _,
            ttl_secs,
            prefix,
        } => Step::Grant(Pending {
            ip,
            label,
            ttl_secs,
            prefix,
        }),
    }
}

/// A grant carried out: blocks until every instance answered or KNOCK_TIMEOUT passed, so it
/// runs on a thread of its own, never on the poll loop. Success only when every instance
/// confirmed. The connection stays in the Knocking state until `answered`.
pub(crate) fn carry_out(door: &Door, conn: u64, pending: Pending) -> Verdict {
    grant(
        door,
        conn,
        pending.ip,
        pending.label,
        pending.ttl_secs,
        pending.prefix,
    )
}

/// A grant that could not even be started (no thread to wait on the writers): answered as a
/// failure and logged like a knock whose instances all timed out.
pub(crate) fn not_carried_out(door: &Door, pending: Pending, why: &str) -> Verdict {
    Verdict {
        ok: false,
        note: Note::Knock {
            ip: pending.ip,
            label: pending.label,
            ms: 0,
            per_instance: door
                .firewall
                .instances()
                .iter()
                .map(|id| format!("{id}={why}"))
                .collect(),
        },
    }
}

/// One request judged and carried out on the caller's thread (the tests below).
#[cfg(test)]
pub(crate) fn answer(door: &Door, head: &RequestHead, peer: IpAddr, conn: u64) -> Answer {
    match judge(door, head, peer) {
        Step::Now(a) => a,
        Step::Grant(p) => Answer::Fixed(carry_out(door, conn, p)),
    }
}

/// A failure: counted toward the lockout of `key`, unless it does not count (`Reject::counts`).
fn reject(door: &Door, reason: Reject, key: IpAddr, now: u64) -> Verdict {
    let locked = reason.counts() && lock(&door.lockout).fail(key, now);
    Verdict {
        ok: false,
        note: Note::Reject {
            who: key,
            reason,
            locked,
        },
    }
}

/// A grant, carried out on every instance's writer.
fn grant(
    door: &Door,
    conn: u64,
    ip: IpAddr,
    label: String,
    ttl_secs: Option<u64>,
    prefix: Option<u8>,
) -> Verdict {
    let config = &door.config;
    let started = Instant::now();
    // A knock that waits on the firewall is shielded from eviction at the connection cap until
    // its answer is written; everything else answers at once and costs no shared lock here.
    door.table.set_state(conn, ConnState::Knocking);
    let deadline = started + config.limits.knock_timeout;
    let grant = Grant {
        ip,
        label,
        ttl_secs: ttl_secs.map(|s| s.min(i64::MAX as u64) as i64),
        prefix,
    };
    let outcomes = door.firewall.grant(&grant, deadline);
    let (ok, per_instance) = confirmed(&outcomes, &door.firewall.instances());
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

/// Whether every instance confirmed, and the log's `instance=detail` list (an instance that
/// did not answer in time: `=timeout`).
pub(super) fn confirmed(outcomes: &[Outcome], instances: &[String]) -> (bool, Vec<String>) {
    let ok = outcomes.len() == instances.len() && outcomes.iter().all(|o| o.ok);
    let mut per_instance: Vec<String> = outcomes
        .iter()
        .map(|o| format!("{}={}", o.instance, o.detail))
        .collect();
    for id in instances {
        if !outcomes.iter().any(|o| &o.instance == id) {
            per_instance.push(format!("{id}=timeout"));
        }
    }
    (ok, per_instance)
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::knock::http::{parse_head, Parsed};

    /// Records every grant and answers as told.
    struct FakeFirewall {
        instances: Vec<String>,
        /// Per instance: whether it confirms.
        confirm: Vec<bool>,
        grants: Arc<Mutex<Vec<Grant>>>,
    }

    impl Firewall for FakeFirewall {
        fn grant(&self, grant: &Grant, _deadline: Instant) -> Vec<Outcome> {
            lock(&self.grants).push(grant.clone());
            self.instances
                .iter()
                .zip(&self.confirm)
                .map(|(id, ok)| Outcome {
                    instance: id.clone(),
                    ok: *ok,
                    detail: if *ok { "created" } else { "failed" }.into(),
                    created: *ok,
                })
                .collect()
        }

        fn instances(&self) -> Vec<String> {
            self.instances.clone()
        }

        fn remove(&self, _: Cidr, _: &str) -> Vec<(String, Result<usize, String>)> {
            Vec::new()
        }
    }

    const SECRET: &str = "https://example.com/some-long-secret";

    fn door(confirm: Vec<bool>) -> (Door, Arc<Mutex<Vec<Grant>>>) {
        let dir = std::env::temp_dir().join(format!(
            "knockd-door-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let env: HashMap<String, String> = [
            ("FW_PERMIT_PORTS_TCP", "22"),
            (
                "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS",
                "lhins-a0ogy7ty,lhins-b0ogy7ty",
            ),
            ("TENCENT_CLOUD_SECRET_ID", "AKIDexampleexampleexample"),
            ("TENCENT_CLOUD_SECRET_KEY", "keykeykeykeykeykey"),
            ("KNOCK_REFERER", SECRET),
            ("LOCKOUT_FAILURES", "3"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([(
            "KNOCK_CLIENTS_FILE".to_string(),
            dir.join("none.clients").display().to_string(),
        )])
        .collect();
        let config = Arc::new(crate::config::from_pairs(&[], &env).expect("valid configuration"));
        let keys = Keys::open(&config).expect("keys");
        let grants = Arc::new(Mutex::new(Vec::new()));
        let fake = FakeFirewall {
            instances: vec!["lhins-a0ogy7ty".into(), "lhins-b0ogy7ty".into()],
            confirm,
            grants: Arc::clone(&grants),
        };
        let door = Door::new(
            config,
            Box::new(fake),
            ConnTable::new(8),
            Arc::new(Notifier::disabled()),
            keys,
        );
        (door, grants)
    }

    fn head(referer: &str, location: &str) -> RequestHead {
        let text = format!(
            "GET /favico.ico HTTP/1.1\r\nReferer: {referer}\r\nLocation: {location}\r\n\r\n"
        );
        match parse_head(text.as_bytes()) {
            Parsed::Complete(h, _) => h,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn ok_of(a: Answer) -> (bool, Note) {
        match a {
            Answer::Fixed(v) => (v.ok, v.note),
            Answer::Body(b) => panic!("a challenge {b:?}"),
        }
    }

    const PEER: &str = "203.0.113.7";

    #[test]
    fn the_right_secret_grants_on_every_instance_with_its_label() {
        let (door, grants) = door(vec![true, true]);
        let (ok, note) = ok_of(answer(
            &door,
            &head(SECRET, "Office_01"),
            PEER.parse().unwrap(),
            1,
        ));
        assert!(ok);
        let g = lock(&grants).clone();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].ip.to_string(), PEER);
        assert_eq!(g[0].label, "Office_01");
        assert_eq!(g[0].ttl_secs, None);
        match note {
            Note::Knock { per_instance, .. } => assert_eq!(
                per_instance,
                ["lhins-a0ogy7ty=created", "lhins-b0ogy7ty=created"]
            ),
            _ => panic!("not a knock note"),
        }
    }

    #[test]
    fn one_instance_failing_fails_the_knock() {
        let (door, grants) = door(vec![true, false]);
        let (ok, _) = ok_of(answer(&door, &head(SECRET, "x"), PEER.parse().unwrap(), 1));
        assert!(!ok);
        assert_eq!(lock(&grants).len(), 1);
    }

    #[test]
    fn wrong_secrets_count_toward_the_lockout_and_never_reach_the_firewall() {
        let (door, grants) = door(vec![true, true]);
        let peer: IpAddr = PEER.parse().unwrap();
        let mut locked_at = None;
        for i in 1..=4 {
            let (ok, note) = ok_of(answer(&door, &head("wrong", "x"), peer, 1));
            assert!(!ok);
            match note {
                Note::Reject { reason, locked, .. } => {
                    if locked {
                        locked_at = Some(i);
                    }
                    if i == 4 {
                        assert_eq!(reason, Reject::LockedOut);
                    }
                }
                _ => panic!("not a reject"),
            }
        }
        assert_eq!(locked_at, Some(3), "LOCKOUT_FAILURES=3");
        // Locked out: even the right secret is refused, and nothing reaches the firewall.
        let (ok, _) = ok_of(answer(&door, &head(SECRET, "x"), peer, 1));
        assert!(!ok);
        assert!(lock(&grants).is_empty());
    }

    /// A success used to clear its address's failures, so guesses interleaved with valid
    /// knocks never locked anyone out. Now failures only age out of the window.
    #[test]
    fn a_success_clears_no_failure() {
        let (door, grants) = door(vec![true, true]);
        let peer: IpAddr = PEER.parse().unwrap();
        let mut verdicts = Vec::new();
        for secret in ["wrong", "wrong", SECRET, "wrong", SECRET] {
            let (ok, note) = ok_of(answer(&door, &head(secret, "x"), peer, 1));
            verdicts.push(match note {
                Note::Reject { locked: true, .. } => "locked",
                Note::Reject {
                    reason: Reject::LockedOut,
                    ..
                } => "refused",
                _ if ok => "ok",
                _ => "failed",
            });
        }
        // LOCKOUT_FAILURES=3: the third failure locks, the success between does not reset.
        assert_eq!(verdicts, ["failed", "failed", "ok", "locked", "refused"]);
        assert_eq!(lock(&grants).len(), 1);
    }

    #[test]
    fn a_grant_protects_its_connection_until_answered() {
        let (door, _) = door(vec![true, true]);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let stream = Arc::new(
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect"),
        );
        let id = door.table.admit(&stream).expect("admitted");
        let h = head(SECRET, "x");
        let Answer::Fixed(v) = answer(&door, &h, PEER.parse().unwrap(), id) else {
            panic!("challenge")
        };
        assert_eq!(door.table.knocking(), 1);
        answered(&door, id, v, &h);
        assert_eq!(door.table.knocking(), 0);
    }
}
