//! One writer thread per instance owns every firewall write for it inside this process. Knocks
//! that arrive while a writer is busy are batched into its next plan; between knocks it prunes
//! expired rules every PRUNE_INTERVAL. Each writer remembers its instance's firewall
//! (`executor::Memory`) so that a new address costs one API call; each job carries its knock's
//! deadline, and a job whose knock was already answered failure is dropped, never planned.

use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::client::{self, Client};
use super::error::ApiError;
use super::executor::{self, Applied, Batch, Dropped, Memory};
use crate::config::{Config, Instance};
use crate::log;
use crate::notify::{Event, EventKind, Notifier};
use crate::rules::cidr::Cidr;
use crate::rules::planner::Plan;
use crate::rules::planner::{Grant, QUOTA};
use crate::rules::FirewallRule;
use crate::sync::lock;

/// Writers run ureq and rustls handshakes.
const WRITER_STACK: usize = 1024 * 1024;

/// The outcome of one knock on one instance.
pub(crate) struct Outcome {
    pub(crate) instance: String,
    pub(crate) ok: bool,
    pub(crate) detail: String,
    /// The plan created rules for this knock's address (a grant, not a refresh).
    pub(crate) created: bool,
}

struct Job {
    grant: Grant,
    /// When the knock stops waiting and answers failure.
    deadline: Instant,
    reply: mpsc::Sender<Outcome>,
}

/// How long a writer plans new grants from its memory of the firewall: the prune interval
/// (each prune describes and renews the memory), at most an hour, an hour when pruning is off.
/// Safety does not depend on it (a stale memory only costs one refused write); it bounds how
/// often that cost is paid after another writer changed the firewall.
pub(crate) fn memory_max_age(prune_interval: Duration) -> Duration {
    const HOUR: Duration = Duration::from_secs(3600);
    if prune_interval.is_zero() {
        HOUR
    } else {
        prune_interval.min(HOUR)
    }
}

/// The single writer of one instance's firewall inside this process.
struct Writer {
    inst: Instance,
    queue: Mutex<Vec<Job>>,
    ready: Condvar,
}

/// The writers of all configured instances.
pub(crate) struct Writers {
    all: Vec<Arc<Writer>>,
    /// For removals outside the writers' queues (`remove`).
    client: Arc<Client>,
    prefix: String,
}

impl Writers {
    /// Starts one writer thread per configured instance.
    pub(crate) fn start(
        config: &Arc<Config>,
        client: &Arc<Client>,
        notifier: &Arc<Notifier>,
    ) -> Result<Writers, String> {
        let mut writers = Vec::new();
        for inst in &config.cloud.instances {
            let w = Arc::new(Writer {
                inst: inst.clone(),
                queue: Mutex::new(Vec::new()),
                ready: Condvar::new(),
            });
            let (w2, client, config) = (Arc::clone(&w), Arc::clone(client), Arc::clone(config));
            let notifier = Arc::clone(notifier);
            thread::Builder::new()
                .name(format!("writer-{}", inst.id))
                .stack_size(WRITER_STACK)
                .spawn(move || run_writer(&w2, &client, &config, &notifier))
                .map_err(|e| format!("cannot start a writer thread: {e}"))?;
            writers.push(w);
        }
        Ok(Writers {
            all: writers,
            client: Arc::clone(client),
            prefix: config.rules.prefix.clone(),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    pub(crate) fn instance_ids(&self) -> impl Iterator<Item = &str> {
        self.all.iter().map(|w| w.inst.id.as_str())
    }

    /// Queues `grant` on every instance; each writer answers once on the returned channel.
    /// `deadline` is when the knock answers failure: a writer never plans the grant after it.
    pub(crate) fn submit(&self, grant: &Grant, deadline: Instant) -> mpsc::Receiver<Outcome> {
        let (tx, rx) = mpsc::channel();
        for w in &self.all {
            lock(&w.queue).push(Job {
                grant: grant.clone(),
                deadline,
                reply: tx.clone(),
            });
            w.ready.notify_one();
        }
        rx
    }
}

impl Writers {
    /// Removes, on every instance one after the other, knockd's rules labelled `label` for
    /// exactly `block` (a host name's address it no longer has): one (instance, rules removed
    /// or why not) each. On this thread, beside the writers: the delete names rules from a
    /// fresh Describe and is refused if the firewall changed, and a writer's memory never
    /// answers a knock "present" without a Describe, so nothing relies on the writers
    /// knowing of it.
    pub(crate) fn remove(&self, block: Cidr, label: &str) -> Vec<(String, Result<usize, String>)> {
        let select = |rules: &[FirewallRule]| {
            crate::rules::revoke::labelled_block(rules, &self.prefix, block, label)
        };
        self.all
            .iter()
            .map(|w| {
                let r = executor::delete_matching(&self.client, &w.inst, &select, false);
                (
                    w.inst.id.clone(),
                    r.map(|gone| gone.len()).map_err(|e| e.to_string()),
                )
            })
            .collect()
    }
}

fn run_writer(w: &Writer, client: &Client, config: &Config, notifier: &Notifier) {
    let interval = config.limits.prune_interval;
    let mut memory = Memory::new(memory_max_age(interval));
    // The first prune runs at start: it also shows at once whether the credentials work.
    let mut next_prune = (!interval.is_zero()).then(Instant::now);
    loop {
        let jobs = next_jobs(w, next_prune);
        if jobs.is_empty() {
            prune_once(w, client, config, &mut memory, notifier);
            next_prune = Some(Instant::now() + interval);
            continue;
        }
        let jobs = drop_expired(w, jobs, Instant::now());
        if !jobs.is_empty() {
            apply_jobs(w, client, config, &mut memory, jobs);
        }
    }
}

/// Waits for queued knocks (all of them, at once) or, with none, for the next prune (empty).
fn next_jobs(w: &Writer, next_prune: Option<Instant>) -> Vec<Job> {
    let mut q = lock(&w.queue);
    loop {
        if !q.is_empty() {
            return std::mem::take(&mut *q);
        }
        let now = Instant::now();
        match next_prune {
            Some(t) if now >= t => return Vec::new(),
            Some(t) => {
                q = w
                    .ready
                    .wait_timeout(q, t - now)
                    .map_or_else(|p| p.into_inner().0, |r| r.0)
            }
            None => q = w.ready.wait(q).unwrap_or_else(|p| p.into_inner()),
        }
    }
}

/// Knocks that already answered failure are answered "expired" here, before any planning;
/// the others are returned.
fn drop_expired(w: &Writer, jobs: Vec<Job>, now: Instant) -> Vec<Job> {
    let (jobs, expired): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.deadline > now);
    if !expired.is_empty() {
        log::event(&format!(
            "expired instance={} dropped={}: knocks already answered failure (KNOCK_TIMEOUT) are not granted",
            w.inst.id,
            expired.len()
        ));
        for job in expired {
            let _ = job.reply.send(Outcome {
                instance: w.inst.id.clone(),
                ok: false,
                detail: "expired".to_string(),
                created: false,
            });
        }
    }
    jobs
}

/// One batch: the knocks' grants planned and written together, each knock answered.
fn apply_jobs(w: &Writer, client: &Client, config: &Config, memory: &mut Memory, jobs: Vec<Job>) {
    let now = Instant::now();
    let grants: Vec<Grant> = jobs.iter().map(|j| j.grant.clone()).collect();
    let deadlines: Vec<Instant> = jobs.iter().map(|j| j.deadline).collect();
    let batch = Batch {
        grants: &grants,
        deadlines: Some(&deadlines),
        until: deadlines.iter().copied().max().unwrap_or(now),
    };
    let calls_before = client::calls_on_this_thread();
    let result = executor::apply_batch(client, &w.inst, &config.policy(), &batch, memory, false);
    let done = Instant::now();
    // A grant whose rules were written only after its knock had answered failure (the
    // write was in flight at the deadline) is taken back: failure must mean no access.
    let withdrawn = match &result {
        Ok(applied) => withdraw_late(w, client, applied, &jobs, done, memory),
        Err(_) => Vec::new(),
    };
    let calls = client::calls_on_this_thread() - calls_before;
    if let Ok(applied) = &result {
        let late = applied
            .dropped
            .iter()
            .filter(|d| **d == Some(Dropped::Expired))
            .count();
        if late > 0 {
            log::event(&format!(
                "expired instance={} dropped={late}: knocks that answered failure while the firewall was being read are not granted",
                w.inst.id
            ));
        }
    }
    for (i, job) in jobs.into_iter().enumerate() {
        let (ok, detail) = if withdrawn.contains(&i) {
            (false, format!("late-withdrawn(calls={calls})"))
        } else {
            outcome_of(w, config, &result, i, calls, grants.len())
        };
        let created = matches!(&result, Ok(a) if creates_for(&a.plan, &job.grant));
        let _ = job.reply.send(Outcome {
            instance: w.inst.id.clone(),
            ok,
            detail,
            created,
        });
    }
    if let Ok(applied) = &result {
        report_plan(w, applied, false);
    }
}

/// Whether grant `i` of a batch of `batch` was applied, and its log detail.
fn outcome_of(
    w: &Writer,
    config: &Config,
    result: &Result<Applied, ApiError>,
    i: usize,
    calls: u64,
    batch: usize,
) -> (bool, String) {
    match result {
        Ok(applied) if applied.granted(i) => (
            true,
            format!(
                "ok(calls={calls},batch={batch},rounds={},{}req={})",
                applied.rounds,
                if applied.from_memory { "memory," } else { "" },
                applied.request_ids.last().map_or("-", String::as_str)
            ),
        ),
        Ok(applied) => match applied.dropped.get(i).cloned().flatten() {
            Some(Dropped::Expired) => (false, format!("expired(calls={calls})")),
            Some(Dropped::Ipv6Refused(code)) => (
                false,
                format!(
                    "ipv6-unsupported(calls={calls},code={}): IPv6 rules are not supported in region {}",
                    super::error::log_safe(&code),
                    w.inst.region
                ),
            ),
            None => (
                false,
                format!(
                    "no-room(rules={}/{},calls={calls}): quota full of rules knockd may not evict",
                    applied.rules_before,
                    QUOTA.saturating_sub(config.rules.quota_reserve)
                ),
            ),
        },
        Err(e) => (false, format!("error(calls={calls}): {e}")),
    }
}

/// The jobs (indexes) whose rules `applied` created although their knock's deadline passed
/// before `done`, and whose address no job still in time shares: their new rules are deleted
/// again. Refreshed rules stay (that address had access before this knock).
fn withdraw_late(
    w: &Writer,
    client: &Client,
    applied: &Applied,
    jobs: &[Job],
    done: Instant,
    memory: &mut Memory,
) -> Vec<usize> {
    // By the block the grant opens (the address itself, or a client's /N network).
    let ip_of = |j: &Job| j.grant.block().rule_text();
    let created_for = |addr: &str| -> Vec<FirewallRule> {
        applied
            .plan
            .create
            .iter()
            .filter(|r| r.address() == addr)
            .cloned()
            .collect()
    };
    let late: Vec<usize> = (0..jobs.len())
        .filter(|&i| applied.granted(i) && jobs[i].deadline <= done)
        .filter(|&i| !created_for(&ip_of(&jobs[i])).is_empty())
        .filter(|&i| {
            !(0..jobs.len()).any(|k| {
                jobs[k].deadline > done && applied.granted(k) && ip_of(&jobs[k]) == ip_of(&jobs[i])
            })
        })
        .collect();
    if late.is_empty() {
        return late;
    }
    let mut doomed: Vec<FirewallRule> = Vec::new();
    for &i in &late {
        for r in created_for(&ip_of(&jobs[i])) {
            if !doomed.iter().any(|d| d.same_identity(&r)) {
                doomed.push(r);
            }
        }
    }
    memory.forget();
    // Only the rules this plan created, still carrying the description it wrote.
    let select = |rules: &[FirewallRule]| -> Vec<FirewallRule> {
        rules
            .iter()
            .filter(|r| {
                doomed
                    .iter()
                    .any(|d| d.same_identity(r) && d.description == r.description)
            })
            .cloned()
            .collect()
    };
    let addrs: Vec<String> = late.iter().map(|&i| ip_of(&jobs[i])).collect();
    match executor::delete_matching(client, &w.inst, &select, false) {
        Ok(removed) => log::event(&format!(
            "withdrawn instance={} addr={} rules={}: written after the knock had answered failure",
            w.inst.id,
            addrs.join(","),
            removed.len()
        )),
        Err(e) => log::event(&format!(
            "withdraw instance={} addr={} error=\"{e}\": rules written after the knock answered failure stay until they expire",
            w.inst.id,
            addrs.join(",")
        )),
    }
    late
}

fn report_plan(w: &Writer, applied: &Applied, with_unparseable: bool) {
    let plan = &applied.plan;
    if !plan.delete.is_empty() {
        log::event(&format!(
            "removed instance={} expired={} evicted={}",
            w.inst.id,
            plan.delete.len() - plan.evicted,
            plan.evicted
        ));
    }
    // Rules are evaluated top to bottom (docs/lighthouse-api.md#rule-order): a foreign DROP
    // covering the address and ports may win over the ACCEPT rules knockd writes.
    for r in &plan.shadowed_by_drop {
        log::event(&format!(
            "warning instance={} drop-rule protocol={} port={} address={} description={:?}: a DROP rule covers this knock's address and ports and may block it despite knockd's ACCEPT rules",
            w.inst.id,
            super::error::log_safe(&r.protocol),
            super::error::log_safe(&r.port),
            super::error::log_safe(r.address()),
            r.description
        ));
    }
    for r in plan.unparseable.iter().filter(|_| with_unparseable) {
        log::event(&format!(
            "unparseable-rule instance={} address={} description={:?}: left alone",
            w.inst.id,
            r.address(),
            r.description
        ));
    }
}

fn prune_once(
    w: &Writer,
    client: &Client,
    config: &Config,
    memory: &mut Memory,
    notifier: &Notifier,
) {
    // A busy firewall is waited for at most as long as a knock would wait: knocks queue
    // behind a prune.
    let batch = Batch {
        grants: &[],
        deadlines: None,
        until: Instant::now() + config.limits.knock_timeout,
    };
    match executor::apply_batch(client, &w.inst, &config.policy(), &batch, memory, false) {
        Ok(applied) => {
            report_plan(w, &applied, true);
            swept(notifier, &w.inst.id, &applied.plan);
        }
        Err(e) => log::event(&format!("prune instance={} error=\"{e}\"", w.inst.id)),
    }
}

/// The answers of `n` writers, as many as arrive before `deadline`.
pub(crate) fn collect(rx: &mpsc::Receiver<Outcome>, n: usize, deadline: Instant) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    while outcomes.len() < n {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(o) => outcomes.push(o),
            Err(_) => break,
        }
    }
    outcomes
}

/// Whether `plan` creates rules for `grant`'s block (a grant) rather than only refreshing or
/// keeping them (a refresh).
pub(crate) fn creates_for(plan: &Plan, grant: &Grant) -> bool {
    let addr = grant.block().rule_text();
    plan.create.iter().any(|r| r.address() == addr)
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
