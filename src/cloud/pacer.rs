//! Client-side pacing under the API's documented rate limits.
//!
//! Tencent counts a rate limit per action, access region and sub-account
//! (docs/lighthouse-api.md#rate-limits), so knockd paces each (action, region) on its own: a
//! fleet over three regions gets three budgets. Account-wide and per-IP limits also exist and
//! cannot be seen from here; they surface as `RequestLimitExceeded*`: the client backs off, and
//! the action is then paced on one budget for all regions for `SHARED_FOR`, the process-wide
//! pace that never trips a per-account limit of the documented size.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// The window the documented per-second limits are held to. 10% longer than a second, because
/// network jitter can bunch requests that left a second apart.
pub(crate) const WINDOW: Duration = Duration::from_millis(1100);
/// How long an action stays on one budget for all regions after a `RequestLimitExceeded*`.
pub(crate) const SHARED_FOR: Duration = Duration::from_secs(60);
/// The region key of that shared budget.
const ALL_REGIONS: &str = "*";

/// Calls per second an action may make in one region (docs/lighthouse-api.md#rate-limits).
pub(crate) fn rate_limit(action: &str) -> usize {
    match action {
        "ModifyFirewallRuleDescription" | "ModifyFirewallRules" => 20,
        "DescribeInstances" => 100,
        _ => 10,
    }
}

/// The pure scheduling state: per (action, region), the send times given out that still
/// matter (in the past window or reserved in the future), oldest first.
#[derive(Default)]
pub(crate) struct Schedule {
    sent: HashMap<(String, String), VecDeque<Instant>>,
    /// Actions paced on one budget for all regions, until when.
    shared_until: HashMap<String, Instant>,
}

impl Schedule {
    /// Reserves the earliest send time at or after `now` that keeps every `WINDOW` of this
    /// (action, region) at most at the action's limit, and returns it. Reservations of one key
    /// never go backwards, so the k-th and the (k + limit)-th are always a window apart.
    pub(crate) fn reserve(&mut self, action: &str, region: &str, now: Instant) -> Instant {
        let limit = rate_limit(action).max(1);
        let region = if self.shared_until.get(action).is_some_and(|t| now < *t) {
            ALL_REGIONS
        } else {
            region
        };
        let q = self
            .sent
            .entry((action.to_string(), region.to_string()))
            .or_default();
        while q.front().is_some_and(|t| *t + WINDOW <= now) {
            q.pop_front();
        }
        let mut at = now;
        if q.len() >= limit {
            at = at.max(q[q.len() - limit] + WINDOW);
        }
        if let Some(last) = q.back() {
            at = at.max(*last);
        }
        q.push_back(at);
        at
    }

    /// The API refused a call of `action` for its rate: pace it on one budget for all regions
    /// until `now + SHARED_FOR`. Returns whether it was on per-region budgets until now.
    pub(crate) fn limited(&mut self, action: &str, now: Instant) -> bool {
        let was = self.shared_until.get(action).is_some_and(|t| now < *t);
        self.shared_until
            .insert(action.to_string(), now + SHARED_FOR);
        !was
    }
}

/// Keeps each (action, region) under its documented rate across all threads.
#[derive(Default)]
pub(crate) struct Pacer {
    schedule: Mutex<Schedule>,
}

impl Pacer {
    /// See [`Schedule::limited`].
    pub(crate) fn limited(&self, action: &str) -> bool {
        let mut s = lock(&self.schedule);
        s.limited(action, Instant::now())
    }

    /// Waits until a call of `action` in `region` (None: a call without region) may be sent.
    pub(crate) fn wait(&self, action: &str, region: Option<&str>) {
        let now = Instant::now();
        let at = {
            let mut s = lock(&self.schedule);
            s.reserve(action, region.unwrap_or(""), now)
        };
        let wait = at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Every window of `WINDOW` holds at most `limit` of `times` (sorted).
    fn within_limit(times: &[Instant], limit: usize) -> bool {
        times.windows(limit + 1).all(|w| w[limit] >= w[0] + WINDOW)
    }

    #[test]
    fn ten_go_at_once_and_the_eleventh_waits_a_window() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        for _ in 0..10 {
            assert_eq!(s.reserve("CreateFirewallRules", "ap-guangzhou", t0), t0);
        }
        assert_eq!(
            s.reserve("CreateFirewallRules", "ap-guangzhou", t0),
            t0 + WINDOW
        );
        // The twenty-first a window after that.
        let mut last = t0;
        for _ in 0..10 {
            last = s.reserve("CreateFirewallRules", "ap-guangzhou", t0 + ms(10));
        }
        assert_eq!(last, t0 + WINDOW * 2);
    }

    #[test]
    fn regions_and_actions_have_their_own_budgets() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        for region in ["ap-guangzhou", "ap-shanghai", "ap-hongkong"] {
            for _ in 0..10 {
                assert_eq!(s.reserve("CreateFirewallRules", region, t0), t0, "{region}");
            }
        }
        for _ in 0..10 {
            assert_eq!(s.reserve("DescribeFirewallRules", "ap-guangzhou", t0), t0);
        }
        assert!(s.reserve("CreateFirewallRules", "ap-shanghai", t0) > t0);
    }

    #[test]
    fn after_a_rate_limit_answer_the_action_shares_one_budget_for_a_while() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        assert!(s.limited("CreateFirewallRules", t0));
        assert!(!s.limited("CreateFirewallRules", t0), "already shared");
        let regions = ["ap-guangzhou", "ap-shanghai", "ap-hongkong"];
        let times: Vec<Instant> = (0..30)
            .map(|i| s.reserve("CreateFirewallRules", regions[i % 3], t0))
            .collect();
        assert_eq!(times[29], t0 + WINDOW * 2);
        assert!(within_limit(&times, 10));
        // Other actions keep their per-region budgets.
        for region in regions {
            assert_eq!(s.reserve("DescribeFirewallRules", region, t0), t0);
        }
        // After SHARED_FOR, per region again.
        let later = t0 + SHARED_FOR + WINDOW;
        for region in regions {
            for _ in 0..10 {
                assert_eq!(s.reserve("CreateFirewallRules", region, later), later);
            }
        }
    }

    #[test]
    fn modify_description_gets_twenty_a_second() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        for _ in 0..20 {
            assert_eq!(
                s.reserve("ModifyFirewallRuleDescription", "ap-guangzhou", t0),
                t0
            );
        }
        assert_eq!(
            s.reserve("ModifyFirewallRuleDescription", "ap-guangzhou", t0),
            t0 + WINDOW
        );
    }

    #[test]
    fn after_a_quiet_window_calls_go_at_once_again() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        for _ in 0..12 {
            s.reserve("DeleteFirewallRules", "ap-tokyo", t0);
        }
        let later = t0 + WINDOW * 3;
        assert_eq!(s.reserve("DeleteFirewallRules", "ap-tokyo", later), later);
    }

    #[test]
    fn a_fleet_of_fifty_in_one_region_takes_four_windows() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let times: Vec<Instant> = (0..50)
            .map(|_| s.reserve("CreateFirewallRules", "ap-guangzhou", t0))
            .collect();
        assert_eq!(times[49], t0 + WINDOW * 4);
        assert!(within_limit(&times, 10));
        // Thirty over three regions: all at once.
        let mut s = Schedule::default();
        let regions = ["ap-guangzhou", "ap-shanghai", "ap-hongkong"];
        let last = (0..30)
            .map(|i| s.reserve("CreateFirewallRules", regions[i % 3], t0))
            .max();
        assert_eq!(last, Some(t0));
    }

    #[test]
    fn uneven_arrivals_never_exceed_the_limit_in_any_window() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let mut times = Vec::new();
        let mut now = t0;
        // A deterministic, bursty arrival pattern: gaps of 0-97 ms.
        for i in 0u64..300 {
            now += ms((i * 37) % 98);
            times.push(s.reserve("DescribeFirewallRules", "ap-seoul", now));
        }
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "never backwards");
        assert!(within_limit(&times, 10));
        // Every call goes as early as the limit allows: no reservation is later than needed.
        let first = times[0];
        assert_eq!(first, t0);
    }
}
