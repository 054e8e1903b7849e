//! Client-side pacing under the API's documented rate limits.
//!
//! Tencent counts a rate limit per action, access region and sub-account
//! (docs/lighthouse-api.md#rate-limits), so knockd paces each (action, region) on its own: a
//! fleet over three regions gets three budgets. Account-wide and per-IP limits also exist and
//! cannot be seen from here; they surface as `RequestLimitExceeded*` and the client backs off.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// The window the documented per-second limits are held to. 10% longer than a second, because
/// network jitter can bunch requests that left a second apart.
pub(crate) const WINDOW: Duration = Duration::from_millis(1100);

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
}

impl Schedule {
    /// Reserves the earliest send time at or after `now` that keeps every `WINDOW` of this
    /// (action, region) at most at the action's limit, and returns it. Reservations of one key
    /// never go backwards, so the k-th and the (k + limit)-th are always a window apart.
    pub(crate) fn reserve(&mut self, action: &str, region: &str, now: Instant) -> Instant {
        let limit = rate_limit(action).max(1);
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
}

/// Keeps each (action, region) under its documented rate across all threads.
#[derive(Default)]
pub(crate) struct Pacer {
    schedule: Mutex<Schedule>,
}

impl Pacer {
    /// Waits until a call of `action` in `region` (None: a call without region) may be sent.
    pub(crate) fn wait(&self, action: &str, region: Option<&str>) {
        let now = Instant::now();
        let at = {
            let mut s = match self.schedule.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
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
