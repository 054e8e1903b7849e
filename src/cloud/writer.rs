//! One writer thread per instance owns every firewall write for it inside this process. Knocks
//! that arrive while a writer is busy are batched into its next plan; between knocks it prunes
//! expired rules every PRUNE_INTERVAL.

use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use super::client::{self, Client};
use super::executor::{self, Applied};
use crate::config::{Config, Instance};
use crate::log;
use crate::notify::{hooks, Notifier};
use crate::rules::planner::{Grant, QUOTA};
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
    reply: mpsc::Sender<Outcome>,
}

/// The single writer of one instance's firewall inside this process.
struct Writer {
    inst: Instance,
    queue: Mutex<Vec<Job>>,
    ready: Condvar,
}

/// The writers of all configured instances.
pub(crate) struct Writers(Vec<Arc<Writer>>);

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
        Ok(Writers(writers))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn instance_ids(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|w| w.inst.id.as_str())
    }

    /// Queues `grant` on every instance; each writer answers once on the returned channel.
    pub(crate) fn submit(&self, grant: &Grant) -> mpsc::Receiver<Outcome> {
        let (tx, rx) = mpsc::channel();
        for w in &self.0 {
            lock(&w.queue).push(Job {
                grant: grant.clone(),
                reply: tx.clone(),
            });
            w.ready.notify_one();
        }
        rx
    }
}

fn run_writer(w: &Writer, client: &Client, config: &Config, notifier: &Notifier) {
    let interval = config.limits.prune_interval;
    // The first prune runs at start: it also shows at once whether the credentials work.
    let mut next_prune = (!interval.is_zero()).then(Instant::now);
    loop {
        let jobs = {
            let mut q = lock(&w.queue);
            loop {
                if !q.is_empty() {
                    break std::mem::take(&mut *q);
                }
                let now = Instant::now();
                match next_prune {
                    Some(t) if now >= t => break Vec::new(),
                    Some(t) => {
                        q = w
                            .ready
                            .wait_timeout(q, t - now)
                            .map_or_else(|p| p.into_inner().0, |r| r.0)
                    }
                    None => q = w.ready.wait(q).unwrap_or_else(|p| p.into_inner()),
                }
            }
        };
        if jobs.is_empty() {
            prune_once(w, client, config, notifier);
            next_prune = Some(Instant::now() + interval);
            continue;
        }
        let grants: Vec<Grant> = jobs.iter().map(|j| j.grant.clone()).collect();
        let calls_before = client::calls_on_this_thread();
        let result = executor::apply(client, &w.inst, &config.policy(), &grants, false);
        let calls = client::calls_on_this_thread() - calls_before;
        for (i, job) in jobs.into_iter().enumerate() {
            let (ok, detail) = match &result {
                Ok(applied) if applied.granted(i) => (
                    true,
                    format!(
                        "ok(calls={calls},batch={},rounds={},req={})",
                        grants.len(),
                        applied.rounds,
                        applied.request_ids.last().map_or("-", String::as_str)
                    ),
                ),
                Ok(applied) => (
                    false,
                    format!(
                        "no-room(rules={}/{},calls={calls}): quota full of rules knockd may not evict",
                        applied.rules_before,
                        QUOTA.saturating_sub(config.rules.quota_reserve)
                    ),
                ),
                Err(e) => (false, format!("error(calls={calls}): {e}")),
            };
            let created = matches!(&result, Ok(a) if hooks::creates_for(&a.plan, job.grant.ip));
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
    for r in plan.unparseable.iter().filter(|_| with_unparseable) {
        log::event(&format!(
            "unparseable-rule instance={} address={} description={:?}: left alone",
            w.inst.id,
            r.address(),
            r.description
        ));
    }
}

fn prune_once(w: &Writer, client: &Client, config: &Config, notifier: &Notifier) {
    match executor::apply(client, &w.inst, &config.policy(), &[], false) {
        Ok(applied) => {
            report_plan(w, &applied, true);
            hooks::swept(notifier, &w.inst.id, &applied.plan);
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
