//! The executor: applies planner output to one instance. Every write carries the
//! FirewallVersion it was planned from; when the firewall changed underneath (another knockd,
//! `--prune` from cron, the operator in the console) it reads again and re-plans.
//!
//! A writer also keeps a [`Memory`] of its instance's firewall: the rules and version of its
//! last Describe, with its own successful writes applied since. A batch that only needs new
//! rules is planned from that memory and sent at once with the remembered version (one API
//! round trip); the API refuses the write if the firewall changed since, and the executor then
//! describes and re-plans as without memory. See README, "One-round-trip knocks".

use std::net::IpAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::client::{backoff, Client};
use super::error::{self, replan, ApiError};
use crate::config::Instance;
use crate::log;
use crate::rules::planner::{self, Grant, GrantStatus, Plan, Policy};
use crate::rules::FirewallRule;

/// Describe→write rounds before giving up on a firewall that keeps changing.
const MAX_ROUNDS: u32 = 6;
/// How long `--prune` (and other one-shot commands) keeps retrying a busy firewall.
pub const PRUNE_BUSY_BUDGET: Duration = Duration::from_secs(60);
/// A busy wait shorter than this is not worth sleeping for: the knock is answered failure.
const MIN_BUSY_WAIT: Duration = Duration::from_millis(20);
/// Memory plans refused in a row after which the memory is not used for a while: a
/// FirewallVersion rule knockd does not know (a Create adding N, say) would otherwise cost every
/// knock a refused write.
const MAX_MEMORY_MISSES: u32 = 3;

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

/// What a writer knows of its instance's firewall. Exact by construction: it is set from a
/// Describe, and then changed only by the writer's own successful writes with the version bump
/// each is known to make. Anything uncertain (a failed or unanswered write, a Modify whose
/// bump is not known) forgets it.
#[derive(Debug)]
pub struct Memory {
    known: Option<Known>,
    /// How long a remembered firewall may be planned from.
    max_age: Duration,
    /// Learned exactly: ModifyFirewallRuleDescription leaves FirewallVersion as it was
    /// (docs/lighthouse-api.md#firewallversion leaves it open).
    modify_keeps_version: bool,
    /// Our last write was a Modify accepted at this version, nothing of ours since: a Describe
    /// that still shows this version proves a Modify does not bump it.
    modify_probe: Option<u64>,
    /// Memory plans refused in a row, and until when memory is not used after too many.
    misses: u32,
    resting_until: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Known {
    /// Shared with the round that plans from it: a round takes the memory without copying
    /// 100 rules (each copy some 500 allocations on the allocator every writer shares).
    rules: Arc<Vec<FirewallRule>>,
    version: u64,
    at: Instant,
}

impl Memory {
    pub fn new(max_age: Duration) -> Memory {
        Memory {
            known: None,
            max_age,
            modify_keeps_version: false,
            modify_probe: None,
            misses: 0,
            resting_until: None,
        }
    }

    /// A memory that is never planned from (one-shot commands).
    pub fn none() -> Memory {
        Memory::new(Duration::ZERO)
    }

    pub fn modify_keeps_version(&self) -> bool {
        self.modify_keeps_version
    }

    fn usable(&self, now: Instant) -> Option<&Known> {
        if self.resting_until.is_some_and(|t| now < t) {
            return None;
        }
        self.known
            .as_ref()
            .filter(|k| now.saturating_duration_since(k.at) < self.max_age)
    }

    /// A Describe's answer.
    fn saw(&mut self, rules: &Arc<Vec<FirewallRule>>, version: u64, inst: &Instance) {
        if let Some(v) = self.modify_probe.take() {
            if version == v && !self.modify_keeps_version {
                self.modify_keeps_version = true;
                log::event(&format!(
                    "learned instance={}: ModifyFirewallRuleDescription leaves FirewallVersion unchanged",
                    inst.id
                ));
            }
        }
        self.known = Some(Known {
            rules: Arc::clone(rules),
            version,
            at: Instant::now(),
        });
    }

    pub(crate) fn forget(&mut self) {
        self.known = None;
    }

    fn memory_missed(&mut self) {
        self.misses += 1;
        if self.misses >= MAX_MEMORY_MISSES {
            self.misses = 0;
            self.resting_until = Some(Instant::now() + self.max_age);
        }
    }
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
    // Deletes of rounds that failed: (expired, evicted).
    let mut tried: (Vec<FirewallRule>, Vec<FirewallRule>) = (Vec::new(), Vec::new());
    // Rules the API says exist although a fresh Describe did not show them under the same text
    // (InvalidParameter.FirewallRulesExist after a fresh Describe): present.
    let mut exists: Vec<FirewallRule> = Vec::new();
    // After a multi-rule Create met FirewallRulesExist: create one rule per call to learn which.
    let mut one_by_one = false;
    let mut fallback = false;
    let mut replans = 0;
    let mut busy_attempt = 0;
    loop {
        let now = Instant::now();
        let remembered = if dry_run || fallback {
            None
        } else {
            memory.usable(now).cloned()
        };
        let fresh = remembered.is_none();
        let (rules, version) = match remembered {
            Some(k) => (k.rules, k.version),
            None => match client.describe_rules(inst) {
                Ok((rules, version)) => {
                    let rules = Arc::new(rules);
                    memory.saw(&rules, version, inst);
                    (rules, version)
                }
                // Not a documented answer of DescribeFirewallRules, but one a busy firewall
                // may give: the read waits on the same budget as a write.
                Err(e) if e.is(error::BUSY) => {
                    busy_wait(e, inst, batch.until, &mut busy_attempt)?;
                    out.busy_waits += 1;
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        out.rounds += 1;
        // Grants whose knock gave up are dropped before planning: never granted later.
        let planned_at = Instant::now();
        let mut live = Vec::with_capacity(n);
        for i in 0..n {
            if out.dropped[i].is_some() {
                continue;
            }
            if batch.deadlines.is_some_and(|d| d[i] <= planned_at) {
                out.dropped[i] = Some(Dropped::Expired);
            } else {
                live.push(i);
            }
        }
        if n > 0 && live.is_empty() {
            out.plan.grants = vec![GrantStatus::NoRoom; n];
            return Ok(out);
        }
        let grants: Vec<Grant> = live.iter().map(|&i| batch.grants[i].clone()).collect();
        let mut plan = planner::plan(&rules, policy, &grants, client.now());
        plan.create
            .retain(|r| !exists.iter().any(|e| e.same_identity(r)));
        plan.grants = spread(&plan.grants, &live, n);
        out.rules_before = rules.len();
        out.from_memory = !fresh;
        if !fresh && (plan.create.is_empty() || !plan.delete.is_empty() || !plan.refresh.is_empty())
        {
            // From memory only pure Creates are sent: a knock that finds its rules present
            // confirms them with a Describe, and deletes and refreshes touch existing rules,
            // which are always named from a fresh read.
            fallback = true;
            out.rounds -= 1;
            continue;
        }
        if dry_run || plan.writes() == 0 {
            out.plan = with_gone(plan, &tried, &rules);
            return Ok(out);
        }
        let mut w = Written::new(version);
        let result = write_plan(
            client,
            inst,
            &plan,
            &mut w,
            memory.modify_keeps_version,
            one_by_one,
            &mut exists,
            &mut out.request_ids,
        );
        memory.modify_probe = w.modify_probe;
        match result {
            Ok(()) => {
                out.plan = with_gone(plan, &tried, &rules);
                remember_writes(memory, rules, &out.plan, &w);
                if !fresh {
                    memory.misses = 0;
                }
                return Ok(out);
            }
            Err(e) => {
                memory.forget();
                if !fresh {
                    // A stale memory costs this one refused write; whatever the error, the
                    // next round describes and decides from what is really there.
                    memory.memory_missed();
                    fallback = true;
                    continue;
                }
                if e.is(error::BUSY) {
                    busy_wait(e, inst, batch.until, &mut busy_attempt)?;
                    out.busy_waits += 1;
                    continue;
                }
                if e.is(error::EXISTS) && !plan.create.is_empty() && !w.created {
                    // After a fresh Describe the API still holds a rule we would create: it
                    // compares rules its own way (a reordered port list, say). Present.
                    if plan.create.len() == 1 {
                        exists.push(plan.create[0].clone());
                    } else {
                        one_by_one = true;
                    }
                }
                let v6: Vec<usize> = live
                    .iter()
                    .copied()
                    .filter(|&i| batch.grants[i].ip.is_ipv6() && !is_mapped(batch.grants[i].ip))
                    .collect();
                let v6_in_create = plan.create.iter().any(|r| r.ipv6_cidr_block.is_some());
                if error::ipv6_refusal(&e) && v6_in_create && !w.created {
                    let code = e.code().unwrap_or("").to_string();
                    log::event(&format!(
                        "ipv6-unsupported instance={} region={} code={}: IPv6 rules are not supported for this instance or region; IPv6 knocks fail there",
                        inst.id,
                        inst.region,
                        error::log_safe(&code)
                    ));
                    for i in v6 {
                        out.dropped[i] = Some(Dropped::Ipv6Refused(code.clone()));
                    }
                    if live.iter().all(|&i| out.dropped[i].is_some()) {
                        out.plan.grants = vec![GrantStatus::NoRoom; n];
                        return Ok(out);
                    }
                    continue;
                }
                if !replan(&e) {
                    return Err(e);
                }
                let expired = plan.delete.len() - plan.evicted;
                remember(&mut tried.0, &plan.delete[..expired]);
                remember(&mut tried.1, &plan.delete[expired..]);
                replans += 1;
                if replans >= MAX_ROUNDS {
                    return Err(e);
                }
            }
        }
    }
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

/// The writes of a plan that went through, and the version the API holds after them.
struct Written {
    version: u64,
    deleted: bool,
    created: bool,
    modified: usize,
    /// The version after the writes is exactly known (no Modify of unknown bump among them).
    exact: bool,
    modify_probe: Option<u64>,
}

impl Written {
    fn new(version: u64) -> Written {
        Written {
            version,
            deleted: false,
            created: false,
            modified: 0,
            exact: true,
            modify_probe: None,
        }
    }
}

/// The memory after a plan went through: the rules read (or remembered), minus the deletes,
/// plus the creates, with the refreshed descriptions; the version as the writes left it.
fn remember_writes(
    memory: &mut Memory,
    mut rules: Arc<Vec<FirewallRule>>,
    plan: &Plan,
    w: &Written,
) {
    let at = memory.known.take().map_or_else(Instant::now, |k| k.at);
    if !w.exact {
        return;
    }
    // The memory's own reference is gone, so the round's rules are changed in place rather than
    // copied (100 rules are some 500 allocations on the allocator every writer shares).
    let now = Arc::make_mut(&mut rules);
    now.retain(|r| !plan.delete.iter().any(|d| d.same_identity(r)));
    for r in now.iter_mut() {
        if let Some(f) = plan.refresh.iter().find(|f| f.same_identity(r)) {
            r.description = f.description.clone();
        }
    }
    now.extend(plan.create.iter().cloned());
    memory.known = Some(Known {
        rules,
        version: w.version,
        at,
    });
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

/// Deletes first (they make room), then one Create for every new rule (one per rule after a
/// FirewallRulesExist, to learn which one the API holds), then refreshes.
/// Each successful Delete or Create moves the version on by one
/// (docs/lighthouse-api.md#firewallversion: "each update +1"). Whether a Modify does is not
/// documented: the writer assumes it does until a Describe proves otherwise for its instance,
/// and a memory is never kept across a Modify whose bump is only assumed.
#[allow(clippy::too_many_arguments)]
fn write_plan(
    client: &Client,
    inst: &Instance,
    plan: &Plan,
    w: &mut Written,
    modify_keeps_version: bool,
    one_by_one: bool,
    exists: &mut Vec<FirewallRule>,
    ids: &mut Vec<String>,
) -> Result<(), ApiError> {
    if !plan.delete.is_empty() {
        ids.push(
            client
                .delete_rules(inst, &plan.delete, Some(w.version))?
                .request_id,
        );
        w.version += 1;
        w.deleted = true;
    }
    if !plan.create.is_empty() && !one_by_one {
        ids.push(
            client
                .create_rules(inst, &plan.create, Some(w.version))?
                .request_id,
        );
        w.version += 1;
        w.created = true;
    } else if !plan.create.is_empty() {
        // Which rules went in is not worth remembering for this rare case: forget.
        w.exact = false;
        for rule in &plan.create {
            match client.create_rules(inst, std::slice::from_ref(rule), Some(w.version)) {
                Ok(reply) => {
                    ids.push(reply.request_id);
                    w.version += 1;
                    w.created = true;
                }
                // This one the API already holds; nothing changed, the version stands.
                Err(e) if e.is(error::EXISTS) => exists.push(rule.clone()),
                Err(e) => return Err(e),
            }
        }
    }
    for rule in &plan.refresh {
        let reply = client.modify_description(inst, rule, Some(w.version))?;
        ids.push(reply.request_id);
        w.modify_probe = Some(w.version);
        w.modified += 1;
        if !modify_keeps_version {
            w.version += 1;
            w.exact = false;
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ip: &str, desc: &str) -> FirewallRule {
        FirewallRule {
            protocol: "TCP".into(),
            port: "22".into(),
            cidr_block: Some(ip.into()),
            ipv6_cidr_block: None,
            action: "ACCEPT".into(),
            description: desc.into(),
        }
    }

    #[test]
    fn memory_after_writes_is_exact_or_forgotten() {
        let mut m = Memory::new(Duration::from_secs(60));
        let before = vec![
            rule("198.51.100.1", "Knockd-a until 2000-01-01 00:00Z"),
            rule("198.51.100.2", "office"),
        ];
        let plan = Plan {
            delete: vec![before[0].clone()],
            create: vec![rule("203.0.113.7", "Knockd-b until 2030-01-01 00:00Z")],
            ..Plan::default()
        };
        let w = Written {
            version: 9,
            ..Written::new(7)
        };
        remember_writes(&mut m, Arc::new(before.clone()), &plan, &w);
        let k = m.usable(Instant::now()).expect("fresh");
        assert_eq!(k.version, 9);
        let ips: Vec<&str> = k.rules.iter().map(FirewallRule::address).collect();
        assert_eq!(ips, vec!["198.51.100.2", "203.0.113.7"]);
        // A Modify of unknown bump: forgotten.
        let w = Written {
            exact: false,
            ..Written::new(9)
        };
        remember_writes(&mut m, Arc::new(before), &Plan::default(), &w);
        assert!(m.usable(Instant::now()).is_none());
    }

    #[test]
    fn memory_ages_out_and_rests_after_repeated_misses() {
        let inst = Instance {
            id: "lhins-aaaaaaaa".into(),
            region: "ap-guangzhou".into(),
        };
        let mut m = Memory::new(Duration::from_millis(50));
        m.saw(&Arc::new(Vec::new()), 3, &inst);
        assert!(m.usable(Instant::now()).is_some());
        assert!(m
            .usable(Instant::now() + Duration::from_millis(60))
            .is_none());
        m.saw(&Arc::new(Vec::new()), 3, &inst);
        for _ in 0..MAX_MEMORY_MISSES {
            m.memory_missed();
        }
        assert!(m.usable(Instant::now()).is_none(), "resting");
        assert!(Memory::none().usable(Instant::now()).is_none());
    }

    #[test]
    fn a_describe_at_the_version_of_our_last_modify_proves_modify_keeps_it() {
        let inst = Instance {
            id: "lhins-aaaaaaaa".into(),
            region: "ap-guangzhou".into(),
        };
        let mut m = Memory::new(Duration::from_secs(60));
        // Modify accepted at 5, the next Describe shows 6: nothing learned (bump, or a
        // foreign write).
        m.modify_probe = Some(5);
        m.saw(&Arc::new(Vec::new()), 6, &inst);
        assert!(!m.modify_keeps_version());
        // Accepted at 6, still 6: it keeps the version, for sure (versions never go down).
        m.modify_probe = Some(6);
        m.saw(&Arc::new(Vec::new()), 6, &inst);
        assert!(m.modify_keeps_version());
        assert_eq!(m.modify_probe, None);
    }
}
