//! Client-side pacing under the API's documented rate limits.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// Keeps each action under its documented rate (docs/lighthouse-api.md#quotas-and-rate-limits) across all threads: a rolling
/// window of recent send times per action. The window is 10% longer than a second because
/// network jitter can bunch requests that left a second apart.
#[derive(Default)]
pub(crate) struct Pacer {
    sent: Mutex<HashMap<&'static str, VecDeque<Instant>>>,
}

fn rate_limit(action: &str) -> usize {
    match action {
        "ModifyFirewallRuleDescription" | "ModifyFirewallRules" => 20,
        "DescribeInstances" => 100,
        _ => 10,
    }
}

impl Pacer {
    pub(crate) fn wait(&self, action: &'static str) {
        let window = Duration::from_millis(1100);
        loop {
            let sleep = {
                let mut sent = match self.sent.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                let q = sent.entry(action).or_default();
                let now = Instant::now();
                while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
                    q.pop_front();
                }
                if q.len() < rate_limit(action) {
                    q.push_back(now);
                    return;
                }
                match q.front() {
                    Some(t) => window.saturating_sub(now.duration_since(*t)),
                    None => Duration::ZERO,
                }
            };
            thread::sleep(sleep.max(Duration::from_millis(1)));
        }
    }
}
