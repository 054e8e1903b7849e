//! The executor: applies planner output to one instance. Every write carries the
//! FirewallVersion it was planned from; when the firewall changed underneath (another knockd,
//! `--prune` from cron, the operator in the console) it reads again and re-plans.

use std::sync::atomic::{AtomicBool, Ordering};

use super::client::Client;
use super::error::{replan, ApiError};
use crate::config::Instance;
use crate::rules::planner::{self, Grant, GrantStatus, Plan, Policy};
use crate::rules::FirewallRule;

/// Describe→write rounds before giving up on a firewall that keeps changing.
const MAX_ROUNDS: u32 = 6;

#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The last plan, fully applied (or only computed, in a dry run).
    pub plan: Plan,
    /// Rules on the instance before the last plan's writes.
    pub rules_before: usize,
    /// Describe→write rounds it took.
    pub rounds: u32,
    pub request_ids: Vec<String>,
}

impl Applied {
    pub fn granted(&self, i: usize) -> bool {
        matches!(
            self.plan.grants.get(i),
            Some(GrantStatus::Present | GrantStatus::Writes)
        )
    }
}

/// Plans and applies `grants` (none: just remove expired rules) on one instance.
pub fn apply(
    client: &Client,
    inst: &Instance,
    policy: &Policy,
    grants: &[Grant],
    dry_run: bool,
) -> Result<Applied, ApiError> {
    let mut out = Applied::default();
    let mut last_err = None;
    // Deletes of rounds that failed: (expired, evicted).
    let mut tried: (Vec<FirewallRule>, Vec<FirewallRule>) = (Vec::new(), Vec::new());
    while out.rounds < MAX_ROUNDS {
        out.rounds += 1;
        let (rules, version) = client.describe_rules(inst)?;
        let plan = planner::plan(&rules, policy, grants, client.now());
        out.rules_before = rules.len();
        if dry_run || plan.writes() == 0 {
            out.plan = with_gone(plan, &tried, &rules);
            return Ok(out);
        }
        match write_plan(client, inst, &plan, version, &mut out.request_ids) {
            Ok(()) => {
                out.plan = with_gone(plan, &tried, &rules);
                return Ok(out);
            }
            Err(e) if replan(&e) => {
                let expired = plan.delete.len() - plan.evicted;
                remember(&mut tried.0, &plan.delete[..expired]);
                remember(&mut tried.1, &plan.delete[expired..]);
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| ApiError::BadResponse("the firewall kept changing".into())))
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

/// Deletes first (they make room), then one Create for every new rule, then refreshes.
/// Each successful write moves the version on by one (docs/lighthouse-api.md#firewallversion: "each update +1").
fn write_plan(
    client: &Client,
    inst: &Instance,
    plan: &Plan,
    mut version: u64,
    ids: &mut Vec<String>,
) -> Result<(), ApiError> {
    if !plan.delete.is_empty() {
        ids.push(
            client
                .delete_rules(inst, &plan.delete, Some(version))?
                .request_id,
        );
        version += 1;
    }
    if !plan.create.is_empty() {
        ids.push(
            client
                .create_rules(inst, &plan.create, Some(version))?
                .request_id,
        );
        version += 1;
    }
    let mut after_modify = false;
    for rule in &plan.refresh {
        match client.modify_description(inst, rule, Some(version)) {
            Ok(reply) => {
                ids.push(reply.request_id);
                if MODIFY_BUMPS.load(Ordering::Relaxed) {
                    version += 1;
                }
                after_modify = true;
            }
            Err(e) => {
                if after_modify && e.is("UnsupportedOperation.FirewallVersionMismatch") {
                    // Our guess about ModifyFirewallRuleDescription and the version was wrong
                    // (docs/lighthouse-api.md#open-questions leaves it open): learn it, so batches don't re-plan per rule.
                    MODIFY_BUMPS.fetch_xor(true, Ordering::Relaxed);
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Whether ModifyFirewallRuleDescription moves FirewallVersion on (unconfirmed; learned).
static MODIFY_BUMPS: AtomicBool = AtomicBool::new(true);

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
    for _ in 0..MAX_ROUNDS {
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
            Err(e) if replan(&e) => {
                remember(&mut tried, &doomed);
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| ApiError::BadResponse("the firewall kept changing".into())))
}
