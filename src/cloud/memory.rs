//! A writer's memory of its instance's firewall: the rules and version of its last Describe,
//! with its own successful writes applied since. A batch that only needs new rules is planned
//! from it and sent at once with the remembered version (one API round trip); the API refuses
//! the write if the firewall changed since, and the executor then describes and re-plans as
//! without memory. See README, "One-round-trip knocks".

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Instance;
use crate::log;
use crate::rules::planner::Plan;
use crate::rules::FirewallRule;

/// Memory plans refused in a row after which the memory is not used for a while: a
/// FirewallVersion rule knockd does not know (a Create adding N, say) would otherwise cost every
/// knock a refused write.
const MAX_MEMORY_MISSES: u32 = 3;

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
    pub(super) modify_keeps_version: bool,
    /// Our last write was a Modify accepted at this version, nothing of ours since: a Describe
    /// that still shows this version proves a Modify does not bump it.
    pub(super) modify_probe: Option<u64>,
    /// Memory plans refused in a row, and until when memory is not used after too many.
    pub(super) misses: u32,
    resting_until: Option<Instant>,
}

#[derive(Debug, Clone)]
pub(super) struct Known {
    /// Shared with the round that plans from it: a round takes the memory without copying
    /// 100 rules (each copy some 500 allocations on the allocator every writer shares).
    pub(super) rules: Arc<Vec<FirewallRule>>,
    pub(super) version: u64,
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

    pub(super) fn usable(&self, now: Instant) -> Option<&Known> {
        if self.resting_until.is_some_and(|t| now < t) {
            return None;
        }
        self.known
            .as_ref()
            .filter(|k| now.saturating_duration_since(k.at) < self.max_age)
    }

    /// A Describe's answer.
    pub(super) fn saw(&mut self, rules: &Arc<Vec<FirewallRule>>, version: u64, inst: &Instance) {
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

    pub(super) fn memory_missed(&mut self) {
        self.misses += 1;
        if self.misses >= MAX_MEMORY_MISSES {
            self.misses = 0;
            self.resting_until = Some(Instant::now() + self.max_age);
        }
    }
}

/// The writes of a plan that went through, and the version the API holds after them.
pub(super) struct Written {
    pub(super) version: u64,
    pub(super) deleted: bool,
    pub(super) created: bool,
    pub(super) modified: usize,
    /// The version after the writes is exactly known (no Modify of unknown bump among them).
    pub(super) exact: bool,
    pub(super) modify_probe: Option<u64>,
}

impl Written {
    pub(super) fn new(version: u64) -> Written {
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
pub(super) fn remember_writes(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::planner::Plan;

    fn rule(ip: &str, desc: &str) -> FirewallRule {
        FirewallRule::accept("TCP", "22", ip, desc)
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
