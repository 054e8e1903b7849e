//! The executor: applies planner output to one instance. Every write carries the
//! FirewallVersion it was planned from; when the firewall changed underneath (another knockd,
//! `--prune` from cron, the operator in the console) it reads again and re-plans.
//! A batch that only needs new rules is planned from the writer's `Memory` when it can.

use std::net::IpAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::client::{backoff, Client};
use super::error::{self, replan, ApiError};
pub use super::memory::Memory;
use super::memory::{remember_writes, Written};
use super::refusal::{after_refusal, Next, WriteRefusal, MAX_ROUNDS};
use super::write_plan::write_plan;
use crate::config::Instance;
use crate::log;
use crate::rules::planner::{self, Grant, GrantStatus, Plan, Policy};
use crate::rules::FirewallRule;

/// How long `--prune` (and other one-shot commands) keeps retrying a busy firewall.
pub const PRUNE_BUSY_BUDGET: Duration = Duration::from_secs(60);
/// A busy wait shorter than this is not worth sleeping for: the knock is answered failure.
const MIN_BUSY_WAIT: Duration = Duration::from_millis(20);
/// Why a grant of a batch was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// Its knock's deadline passed before it was planned: the knock was answered failure.
    Expired,
    /// An IPv6 grant the API refused with this code (IPv6 rules unsupported there).
    Ipv6Refused(String),
}

#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The last plan, fully applied (or only computed, in a dry run); one grant status per
    /// grant asked for (a dropped grant reads `NoRoom` here; see `dropped`).
    pub plan: Plan,
    /// Rules on the instance before the last plan's writes.
    pub rules_before: usize,
    /// Describe→write rounds it took (a round planned from memory counts too).
    pub rounds: u32,
    pub request_ids: Vec<String>,
    /// Per grant: why it was left out, if it was.
    pub dropped: Vec<Option<Dropped>>,
    /// Whether the last plan came from the writer's memory (no Describe before the write).
    pub from_memory: bool,
    /// How often a busy firewall was waited for.
    pub busy_waits: u32,
}

impl Applied {
    pub fn granted(&self, i: usize) -> bool {
        self.dropped.get(i).is_none_or(Option::is_none)
            && matches!(
                self.plan.grants.get(i),
                Some(GrantStatus::Present | GrantStatus::Writes)
            )
    }
}

/// What one call of [`apply_batch`] works on.
pub struct Batch<'a> {
    pub grants: &'a [Grant],
    /// Per grant (same length), when its knock stops waiting: a grant is never planned after
    /// it. None: no deadlines (one-shot commands).
    pub deadlines: Option<&'a [Instant]>,
    /// Busy waits and re-plans stop here.
    pub until: Instant,
}

/// Plans and applies `grants` (none: just remove expired rules) on one instance, with a fresh
/// Describe and `PRUNE_BUSY_BUDGET` for a busy firewall: what the one-shot commands use.
pub fn apply(
    client: &Client,
    inst: &Instance,
    policy: &Policy,
    grants: &[Grant],
    dry_run: bool,
) -> Result<Applied, ApiError> {
    let batch = Batch {
        grants,
        deadlines: None,
        until: Instant::now() + PRUNE_BUSY_BUDGET,
    };
    apply_batch(client, inst, policy, &batch, &mut Memory::none(), dry_run)
}

/// What one batch has learnt, round after round.
#[derive(Default)]
struct Learned {
    /// Deletes of rounds that failed: (expired, evicted).
    tried: (Vec<FirewallRule>, Vec<FirewallRule>),
    /// Rules the API says exist although a fresh Describe did not show them under the same
    /// text (InvalidParameter.FirewallRulesExist after a fresh Describe): present.
    exists: Vec<FirewallRule>,
    /// After a multi-rule Create met FirewallRulesExist: create one rule per call to learn which.
    one_by_one: bool,
    /// The memory proved stale (or could not be sent from): describe from now on.
    fallback: bool,
    replans: u32,
    busy_attempt: u32,
}

/// Plans and applies a batch on one instance, from `memory` when it can, else from a Describe.
pub fn apply_batch(
    client: &Client,
    inst: &Instance,
    policy: &Policy,
    batch: &Batch,
    memory: &mut Memory,
    dry_run: bool,
) -> Result<Applied, ApiError> {
    let n = batch.grants.len();
    let mut out = Applied {
        dropped: vec![None; n],
        ..Applied::default()
    };
    let mut l = Learned::default();
    loop {
        let from_memory = !(dry_run || l.fallback);
        let Some(Read {
            rules,
            version,
            fresh,
        }) = read_rules(client, inst, batch, memory, from_memory, &mut l, &mut out)?
        else {
            continue;
        };
        out.rounds += 1;
        // Grants whose knock gave up are dropped before planning: never granted later.
        let live = live_grants(batch, &mut out.dropped, Instant::now());
        if n > 0 && live.is_empty() {
            out.plan.grants = vec![GrantStatus::NoRoom; n];
            return Ok(out);
        }
        let plan = plan_live(client, policy, batch, &rules, &live, &l.exists);
        out.rules_before = rules.len();
        out.from_memory = !fresh;
        if !fresh && (plan.create.is_empty() || !plan.delete.is_empty() || !plan.refresh.is_empty())
        {
            // From memory only pure Creates are sent: a knock that finds its rules present
            // confirms them with a Describe, and deletes and refreshes touch existing rules,
            // which are always named from a fresh read.
            l.fallback = true;
            out.rounds -= 1;
            continue;
        }
        if dry_run || plan.writes() == 0 {
            out.plan = with_gone(plan, &l.tried, &rules);
            return Ok(out);
        }
        let mut w = Written::new(version);
        let result = write_plan(
            client,
            inst,
            &plan,
            &mut w,
            memory.modify_keeps_version,
            l.one_by_one,
            &mut l.exists,
            &mut out.request_ids,
        );
        memory.modify_probe = w.modify_probe;
        match result {
            Ok(()) => {
                out.plan = with_gone(plan, &l.tried, &rules);
                remember_writes(memory, rules, &out.plan, &w);
                if !fresh {
                    memory.misses = 0;
                }
                return Ok(out);
            }
            Err(e) => {
                memory.forget();
                let round = Round {
                    inst,
                    batch,
                    plan: &plan,
                    written: &w,
                    fresh,
                    live: &live,
                };
                if after_failed_write(e, &round, memory, &mut l, &mut out)? {
                    return Ok(out);
                }
            }
        }
    }
}

/// The rules a round plans from and the FirewallVersion they are at.
struct Read {
    rules: Arc<Vec<FirewallRule>>,
    version: u64,
    /// From a fresh Describe, not from memory.
    fresh: bool,
}

/// The rules to plan from: the memory's when `from_memory` and it is usable, else a Describe
/// (remembered). `Ok(None)`: the firewall was busy and has been waited for; read again.
fn read_rules(
    client: &Client,
    inst: &Instance,
    batch: &Batch,
    memory: &mut Memory,
    from_memory: bool,
    l: &mut Learned,
    out: &mut Applied,
) -> Result<Option<Read>, ApiError> {
    let remembered = if from_memory {
        memory.usable(Instant::now()).cloned()
    } else {
        None
    };
    if let Some(k) = remembered {
        return Ok(Some(Read {
            rules: k.rules,
            version: k.version,
            fresh: false,
        }));
    }
    match client.describe_rules(inst) {
        Ok((rules, version)) => {
            let rules = Arc::new(rules);
            memory.saw(&rules, version, inst);
            Ok(Some(Read {
                rules,
                version,
                fresh: true,
            }))
        }
        // Not a documented answer of DescribeFirewallRules, but one a busy firewall
        // may give: the read waits on the same budget as a write.
        Err(e) if e.is(error::BUSY) => {
            busy_wait(e, inst, batch.until, &mut l.busy_attempt)?;
            out.busy_waits += 1;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The plan for the live grants (indices into the batch) on `rules`, without the Creates the
/// API said exist; its grant statuses spread back to one per grant of the batch.
fn plan_live(
    client: &Client,
    policy: &Policy,
    batch: &Batch,
    rules: &[FirewallRule],
    live: &[usize],
    exists: &[FirewallRule],
) -> Plan {
    let grants: Vec<Grant> = live.iter().map(|&i| batch.grants[i].clone()).collect();
    let mut plan = planner::plan(rules, policy, &grants, client.now());
    plan.create
        .retain(|r| !exists.iter().any(|e| e.same_identity(r)));
    plan.grants = spread(&plan.grants, live, batch.grants.len());
    plan
}

/// The indices of the grants still wanted at `at`: a grant whose knock's deadline has passed
/// is marked dropped and never planned again.
fn live_grants(batch: &Batch, dropped: &mut [Option<Dropped>], at: Instant) -> Vec<usize> {
    let mut live = Vec::with_capacity(dropped.len());
    for (i, d) in dropped.iter_mut().enumerate() {
        if d.is_some() {
            continue;
        }
        if batch.deadlines.is_some_and(|dl| dl[i] <= at) {
            *d = Some(Dropped::Expired);
        } else {
            live.push(i);
        }
    }
    live
}

/// One write round that failed, as the next step needs it.
struct Round<'a> {
    inst: &'a Instance,
    batch: &'a Batch<'a>,
    plan: &'a Plan,
    written: &'a Written,
    /// Planned from a fresh Describe, not from memory.
    fresh: bool,
    live: &'a [usize],
}

/// Learns from a refused write and takes the next step `after_refusal` chooses. `Ok(true)`:
/// the batch is finished (`out` is the answer); `Ok(false)`: another round; `Err`: the error
/// is the answer.
fn after_failed_write(
    e: ApiError,
    r: &Round,
    memory: &mut Memory,
    l: &mut Learned,
    out: &mut Applied,
) -> Result<bool, ApiError> {
    let (plan, w) = (r.plan, r.written);
    if r.fresh && e.is(error::EXISTS) && !plan.create.is_empty() && !w.created {
        // After a fresh Describe the API still holds a rule we would create: it compares rules
        // its own way (a reordered port list, say). Present.
        if plan.create.len() == 1 {
            l.exists.push(plan.create[0].clone());
        } else {
            l.one_by_one = true;
        }
    }
    let v6_in_create = plan.create.iter().any(|r| r.ipv6_cidr_block.is_some());
    let next = after_refusal(WriteRefusal {
        denied: error::is_denied(&e),
        from_memory: !r.fresh,
        busy: e.is(error::BUSY),
        ipv6: error::ipv6_refusal(&e) && v6_in_create && !w.created,
        replannable: replan(&e),
        replans: l.replans,
    });
    match next {
        Next::Describe => {
            // A stale memory costs this one refused write; whatever the error, the next round
            // describes and decides from what is really there.
            memory.memory_missed();
            l.fallback = true;
        }
        Next::WaitBusy => {
            busy_wait(e, r.inst, r.batch.until, &mut l.busy_attempt)?;
            out.busy_waits += 1;
        }
        Next::DropIpv6 => {
            let code = e.code().unwrap_or("").to_string();
            log::event(&format!(
                "ipv6-unsupported instance={} region={} code={}: IPv6 rules are not supported for this instance or region; IPv6 knocks fail there",
                r.inst.id,
                r.inst.region,
                error::log_safe(&code)
            ));
            for &i in r.live {
                let ip = r.batch.grants[i].ip;
                if ip.is_ipv6() && !is_mapped(ip) {
                    out.dropped[i] = Some(Dropped::Ipv6Refused(code.clone()));
                }
            }
            if r.live.iter().all(|&i| out.dropped[i].is_some()) {
                out.plan.grants = vec![GrantStatus::NoRoom; r.batch.grants.len()];
                return Ok(true);
            }
        }
        Next::Replan => {
            let expired = plan.delete.len() - plan.evicted;
            remember(&mut l.tried.0, &plan.delete[..expired]);
            remember(&mut l.tried.1, &plan.delete[expired..]);
            l.replans += 1;
        }
        Next::GiveUp => return Err(e),
    }
    Ok(false)
}

/// Waits after `UnsupportedOperation.FirewallBusy` (growing waits, as the client's backoff),
/// unless `until` leaves no time for it: then the busy error is the answer.
fn busy_wait(
    e: ApiError,
    inst: &Instance,
    until: Instant,
    attempt: &mut u32,
) -> Result<(), ApiError> {
    let wait = backoff(*attempt + 1).min(until.saturating_duration_since(Instant::now()));
    if wait < MIN_BUSY_WAIT {
        return Err(e);
    }
    *attempt += 1;
    log::event(&format!(
        "firewall-busy instance={} wait={}ms: describing and re-planning after it",
        inst.id,
        wait.as_millis()
    ));
    thread::sleep(wait);
    Ok(())
}

fn is_mapped(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

/// Statuses of the live grants spread back over all `n` grants (the others read `NoRoom`).
fn spread(statuses: &[GrantStatus], live: &[usize], n: usize) -> Vec<GrantStatus> {
    let mut all = vec![GrantStatus::NoRoom; n];
    for (s, &i) in statuses.iter().zip(live) {
        all[i] = *s;
    }
    all
}

fn remember(tried: &mut Vec<FirewallRule>, rules: &[FirewallRule]) {
    for r in rules {
        if !tried.iter().any(|t| t.same_identity(r)) {
            tried.push(r.clone());
        }
    }
}

/// The rules of `tried` that `rules` (a fresh Describe) no longer holds. A delete whose answer
/// was lost went through although the call failed (its retry then meets a version conflict):
/// such rules are reported as removed instead of vanishing from the report.
fn gone(tried: &[FirewallRule], rules: &[FirewallRule]) -> Vec<FirewallRule> {
    tried
        .iter()
        .filter(|t| !rules.iter().any(|r| r.same_identity(t)))
        .cloned()
        .collect()
}

/// `plan` with the deletes of failed rounds that took effect, keeping `delete` ordered as
/// expired rules first, then the `evicted` ones.
fn with_gone(
    mut plan: Plan,
    tried: &(Vec<FirewallRule>, Vec<FirewallRule>),
    rules: &[FirewallRule],
) -> Plan {
    let mut delete = gone(&tried.0, rules);
    let evicted = gone(&tried.1, rules);
    delete.append(&mut plan.delete);
    plan.evicted += evicted.len();
    delete.extend(evicted);
    plan.delete = delete;
    plan
}

/// Deletes the given owned rules (already chosen by the caller from a fresh Describe), with
/// the version they were read at; on a conflict the caller's `select` runs again.
pub fn delete_matching(
    client: &Client,
    inst: &Instance,
    select: &dyn Fn(&[FirewallRule]) -> Vec<FirewallRule>,
    dry_run: bool,
) -> Result<Vec<FirewallRule>, ApiError> {
    let mut last_err = None;
    let mut tried = Vec::new();
    let until = Instant::now() + PRUNE_BUSY_BUDGET;
    let mut rounds = 0;
    let mut busy_attempt = 0;
    while rounds < MAX_ROUNDS {
        let (rules, version) = client.describe_rules(inst)?;
        let doomed = select(&rules);
        let mut removed = gone(&tried, &rules);
        if dry_run || doomed.is_empty() {
            removed.extend(doomed);
            return Ok(removed);
        }
        match client.delete_rules(inst, &doomed, Some(version)) {
            Ok(_) => {
                removed.extend(doomed);
                return Ok(removed);
            }
            Err(e) if e.is(error::BUSY) => busy_wait(e, inst, until, &mut busy_attempt)?,
            Err(e) if replan(&e) => {
                remember(&mut tried, &doomed);
                last_err = Some(e);
                rounds += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| ApiError::BadResponse("the firewall kept changing".into())))
}
