//! Failed-login throttling: a sliding one-minute window of failures per key (an account or a
//! client address). Pure: the caller passes the clock.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead; answer after this delay if the attempt fails again (slowing guessers down).
    Allowed { failures: u32 },
    /// Refused until the window frees a place.
    Refused { retry_after_secs: u64 },
}

#[derive(Debug)]
pub struct LoginThrottle {
    max_failures: u32,
    failures: HashMap<String, VecDeque<Instant>>,
}

impl LoginThrottle {
    pub fn new(max_failures: u32) -> Self {
        LoginThrottle { max_failures: max_failures.max(1), failures: HashMap::new() }
    }

    fn prune(&mut self, key: &str, now: Instant) -> usize {
        let Some(q) = self.failures.get_mut(key) else { return 0 };
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        let n = q.len();
        if n == 0 {
            self.failures.remove(key);
        }
        n
    }

    /// May an attempt for all of `keys` go ahead now?
    pub fn check(&mut self, keys: &[&str], now: Instant) -> Verdict {
        let mut worst = 0u32;
        let mut retry = 0u64;
        for key in keys {
            let n = self.prune(key, now) as u32;
            worst = worst.max(n);
            if n >= self.max_failures {
                let oldest = self.failures.get(*key).and_then(|q| q.front().copied()).unwrap_or(now);
                let wait = WINDOW.saturating_sub(now.duration_since(oldest)).as_secs_f64().ceil() as u64;
                retry = retry.max(wait.max(1));
            }
        }
        if retry > 0 {
            Verdict::Refused { retry_after_secs: retry }
        } else {
            Verdict::Allowed { failures: worst }
        }
    }

    pub fn record_failure(&mut self, keys: &[&str], now: Instant) {
        for key in keys {
            self.failures.entry(key.to_string()).or_default().push_back(now);
        }
        // Keep memory bounded under a spray of distinct keys.
        if self.failures.len() > 100_000 {
            self.failures.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
    }

    pub fn clear(&mut self, key: &str) {
        self.failures.remove(key);
    }

    /// How long to hold back the answer to a failed attempt after `failures` earlier ones.
    pub fn penalty(failures: u32) -> Duration {
        Duration::from_millis(250 * u64::from(failures.saturating_sub(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixth_attempt_within_a_minute_is_refused() {
        let mut t = LoginThrottle::new(5);
        let start = Instant::now();
        for i in 0..5 {
            assert_eq!(t.check(&["user:a"], start), Verdict::Allowed { failures: i });
            t.record_failure(&["user:a"], start + Duration::from_secs(i as u64));
        }
        match t.check(&["user:a"], start + Duration::from_secs(10)) {
            Verdict::Refused { retry_after_secs } => assert_eq!(retry_after_secs, 50),
            v => panic!("expected refusal, got {v:?}"),
        }
        // Another account is unaffected; the window slides.
        assert_eq!(t.check(&["user:b"], start), Verdict::Allowed { failures: 0 });
        assert!(matches!(t.check(&["user:a"], start + Duration::from_secs(61)), Verdict::Allowed { .. }));
    }

    #[test]
    fn any_refused_key_refuses_the_attempt() {
        let mut t = LoginThrottle::new(2);
        let now = Instant::now();
        t.record_failure(&["addr:1", "user:a"], now);
        t.record_failure(&["addr:1", "user:b"], now);
        assert!(matches!(t.check(&["addr:1", "user:c"], now), Verdict::Refused { .. }));
        t.clear("user:a");
        assert!(matches!(t.check(&["addr:2", "user:a"], now), Verdict::Allowed { failures: 0 }));
    }
}
