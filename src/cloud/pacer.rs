//! Client-side pacing under the API's documented rate limits.
//!
//! Tencent counts a rate limit per action, access region and sub-account, and the access region
//! is decided by the host a call is sent to, not by `X-TC-Region`
//! (docs/lighthouse-api.md#rate-limits). So knockd paces each (action, host) on its own: a fleet
//! over three regions, each called through its own regional host, gets three budgets; the same
//! fleet through one host gets one. Account-wide and per-IP limits also exist and cannot be seen
//! from here; they surface as `RequestLimitExceeded*`: the client backs off, and the action is
//! then paced on one budget for all hosts for `SHARED_FOR`, the process-wide pace that never
//! trips a per-account limit of the documented size.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// The window the documented per-second limits are held to. 10% longer than a second, because
/// network jitter can bunch requests that left a second apart.
pub(crate) const WINDOW: Duration = Duration::from_millis(1100);
/// How long an action stays on one budget for all hosts after a `RequestLimitExceeded*`.
pub(crate) const SHARED_FOR: Duration = Duration::from_secs(60);
/// The host key of that shared budget.
const ALL_HOSTS: &str = "*";

/// Calls per second an action may make in one access region (docs/lighthouse-api.md#rate-limits).
pub(crate) fn rate_limit(action: &str) -> usize {
    match action {
        "ModifyFirewallRuleDescription" | "ModifyFirewallRules" => 20,
        "DescribeInstances" => 100,
        _ => 10,
    }
}

/// The pure scheduling state: per (action, host), the send times given out that still
/// matter (in the past window or reserved in the future), oldest first.
#[derive(Default)]
pub(crate) struct Schedule {
    /// A few keys (five actions, a host per region): Vecs, searched in place, are smaller
    /// in the binary than a hash table's own copy of its code per key type.
    sent: Vec<((String, String), VecDeque<Instant>)>,
    /// Actions paced on one budget for all hosts, until when.
    shared_until: Vec<(String, Instant)>,
}

impl Schedule {
    fn shared(&self, action: &str, now: Instant) -> bool {
        self.shared_until
            .iter()
            .any(|(a, t)| a == action && now < *t)
    }
}

impl Schedule {
    /// Reserves the earliest send time at or after `now` that keeps every `WINDOW` of this
    /// (action, host) at most at the action's limit, and returns it. Reservations of one key
    /// never go backwards, so the k-th and the (k + limit)-th are always a window apart.
    pub(crate) fn reserve(&mut self, action: &str, host: &str, now: Instant) -> Instant {
        let limit = rate_limit(action).max(1);
        let host = if self.shared(action, now) {
            ALL_HOSTS
        } else {
            host
        };
        let i = match self
            .sent
            .iter()
            .position(|((a, h), _)| a == action && h == host)
        {
            Some(i) => i,
            None => {
                let key = (action.to_string(), host.to_string());
                self.sent.push((key, VecDeque::new()));
                self.sent.len() - 1
            }
        };
        let q = &mut self.sent[i].1;
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

    /// The API refused a call of `action` for its rate: pace it on one budget for all hosts
    /// until `now + SHARED_FOR`. Returns whether it was on per-host budgets until now.
    pub(crate) fn limited(&mut self, action: &str, now: Instant) -> bool {
        let was = self.shared(action, now);
        self.shared_until.retain(|(a, _)| a != action);
        self.shared_until
            .push((action.to_string(), now + SHARED_FOR));
        !was
    }
}

/// Keeps each (action, host) under its documented rate across all threads.
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

    /// Waits until a call of `action` to `host` (as sent in `Host`) may be sent.
    pub(crate) fn wait(&self, action: &str, host: &str) {
        let now = Instant::now();
        let at = {
            let mut s = lock(&self.schedule);
            s.reserve(action, host, now)
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

    // Regional hosts (docs/lighthouse-api.md#endpoints-and-transport): the pacer's keys.
    const GZ: &str = "lighthouse.ap-guangzhou.tencentcloudapi.com";
    const SH: &str = "lighthouse.ap-shanghai.tencentcloudapi.com";
    const HK: &str = "lighthouse.ap-hongkong.tencentcloudapi.com";
    const TOKYO: &str = "lighthouse.ap-tokyo.tencentcloudapi.com";
    const SEOUL: &str = "lighthouse.ap-seoul.tencentcloudapi.com";

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
            assert_eq!(s.reserve("CreateFirewallRules", GZ, t0), t0);
        }
        assert_eq!(s.reserve("CreateFirewallRules", GZ, t0), t0 + WINDOW);
        // The twenty-first a window after that.
        let mut last = t0;
        for _ in 0..10 {
            last = s.reserve("CreateFirewallRules", GZ, t0 + ms(10));
        }
        assert_eq!(last, t0 + WINDOW * 2);
    }

    #[test]
    fn hosts_and_actions_have_their_own_budgets() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        for host in [GZ, SH, HK] {
            for _ in 0..10 {
                assert_eq!(s.reserve("CreateFirewallRules", host, t0), t0, "{host}");
            }
        }
        for _ in 0..10 {
            assert_eq!(s.reserve("DescribeFirewallRules", GZ, t0), t0);
        }
        assert!(s.reserve("CreateFirewallRules", SH, t0) > t0);
    }

    #[test]
    fn after_a_rate_limit_answer_the_action_shares_one_budget_for_a_while() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        assert!(s.limited("CreateFirewallRules", t0));
        assert!(!s.limited("CreateFirewallRules", t0), "already shared");
        let hosts = [GZ, SH, HK];
        let times: Vec<Instant> = (0..30)
            .map(|i| s.reserve("CreateFirewallRules", hosts[i % 3], t0))
            .collect();
        assert_eq!(times[29], t0 + WINDOW * 2);
        assert!(within_limit(&times, 10));
        // Other actions keep their per-host budgets.
        for host in hosts {
            assert_eq!(s.reserve("DescribeFirewallRules", host, t0), t0);
        }
        // After SHARED_FOR, per host again.
        let later = t0 + SHARED_FOR + WINDOW;
        for host in hosts {
            for _ in 0..10 {
                assert_eq!(s.reserve("CreateFirewallRules", host, later), later);
            }
        }
    }

    #[test]
    fn modify_description_gets_twenty_a_second() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        for _ in 0..20 {
            assert_eq!(s.reserve("ModifyFirewallRuleDescription", GZ, t0), t0);
        }
        assert_eq!(
            s.reserve("ModifyFirewallRuleDescription", GZ, t0),
            t0 + WINDOW
        );
    }

    #[test]
    fn after_a_quiet_window_calls_go_at_once_again() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        for _ in 0..12 {
            s.reserve("DeleteFirewallRules", TOKYO, t0);
        }
        let later = t0 + WINDOW * 3;
        assert_eq!(s.reserve("DeleteFirewallRules", TOKYO, later), later);
    }

    #[test]
    fn a_fleet_of_fifty_through_one_host_takes_four_windows() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let times: Vec<Instant> = (0..50)
            .map(|_| s.reserve("CreateFirewallRules", GZ, t0))
            .collect();
        assert_eq!(times[49], t0 + WINDOW * 4);
        assert!(within_limit(&times, 10));
        // Thirty over three regional hosts: all at once.
        let mut s = Schedule::default();
        let hosts = [GZ, SH, HK];
        let last = (0..30)
            .map(|i| s.reserve("CreateFirewallRules", hosts[i % 3], t0))
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
            times.push(s.reserve("DescribeFirewallRules", SEOUL, now));
        }
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "never backwards");
        assert!(within_limit(&times, 10));
        // Every call goes as early as the limit allows: no reservation is later than needed.
        let first = times[0];
        assert_eq!(first, t0);
    }
}
