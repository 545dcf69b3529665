//! Failed-login throttling: a sliding one-minute window of failures per key (an account from
//! one client address, or a client address across accounts), each key with its own limit.
//! An attempt is counted when it starts, in the same step that checks the limit, so that
//! concurrent attempts cannot all pass the check before any of them has failed; a successful
//! attempt takes its count back. Pure: the caller passes the clock.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead (the attempt is counted); `failures` were counted before it, for the penalty.
    Allowed { failures: u32 },
    /// Refused until the window frees a place.
    Refused { retry_after_secs: u64 },
}

/// A throttled key and the failures it may have within the window.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub name: &'a str,
    pub limit: u32,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: HashMap<String, VecDeque<Instant>>,
}

impl LoginThrottle {
    pub fn new() -> Self {
        LoginThrottle::default()
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

    /// May an attempt for all of `keys` go ahead now? If so, it is counted as a failure on
    /// every key until [`LoginThrottle::succeeded`] takes it back.
    pub fn begin(&mut self, keys: &[Key<'_>], now: Instant) -> Verdict {
        let mut worst = 0u32;
        let mut retry = 0u64;
        for key in keys {
            let n = self.prune(key.name, now) as u32;
            worst = worst.max(n);
            if n >= key.limit.max(1) {
                let oldest = self.failures.get(key.name).and_then(|q| q.front().copied()).unwrap_or(now);
                let wait = WINDOW.saturating_sub(now.duration_since(oldest)).as_secs_f64().ceil() as u64;
                retry = retry.max(wait.max(1));
            }
        }
        if retry > 0 {
            return Verdict::Refused { retry_after_secs: retry };
        }
        for key in keys {
            self.failures.entry(key.name.to_string()).or_default().push_back(now);
        }
        // Keep memory bounded under a spray of distinct keys.
        if self.failures.len() > 100_000 {
            self.failures.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        Verdict::Allowed { failures: worst }
    }

    /// The attempt begun at `at` succeeded: it no longer counts, and the account's own
    /// failures from this address are forgiven (`clear`).
    pub fn succeeded(&mut self, keys: &[Key<'_>], at: Instant, clear: &str) {
        for key in keys {
            if let Some(q) = self.failures.get_mut(key.name) {
                if let Some(i) = q.iter().rposition(|t| *t == at) {
                    q.remove(i);
                }
            }
        }
        self.failures.remove(clear);
    }

    /// How long to hold back the answer to a failed attempt after `failures` earlier ones.
    pub fn penalty(failures: u32) -> Duration {
        Duration::from_millis(250 * u64::from(failures.saturating_sub(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(name: &str, limit: u32) -> Key<'_> {
        Key { name, limit }
    }

    #[test]
    fn sixth_attempt_within_a_minute_is_refused() {
        let mut t = LoginThrottle::new();
        let start = Instant::now();
        for i in 0..5 {
            let at = start + Duration::from_secs(i as u64);
            assert_eq!(t.begin(&[k("user:a", 5)], at), Verdict::Allowed { failures: i });
        }
        match t.begin(&[k("user:a", 5)], start + Duration::from_secs(10)) {
            Verdict::Refused { retry_after_secs } => assert_eq!(retry_after_secs, 50),
            v => panic!("expected refusal, got {v:?}"),
        }
        // Another account is unaffected; the window slides.
        assert_eq!(t.begin(&[k("user:b", 5)], start), Verdict::Allowed { failures: 0 });
        assert!(matches!(t.begin(&[k("user:a", 5)], start + Duration::from_secs(61)), Verdict::Allowed { .. }));
    }

    #[test]
    fn attempts_in_flight_count_before_they_fail() {
        // 40 attempts that all start before any ends: only the limit's worth go ahead.
        let mut t = LoginThrottle::new();
        let now = Instant::now();
        let allowed = (0..40).filter(|_| matches!(t.begin(&[k("user:a", 5)], now), Verdict::Allowed { .. })).count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn a_success_takes_its_attempt_back_and_forgives_the_account() {
        let mut t = LoginThrottle::new();
        let now = Instant::now();
        let keys = [k("acct:a|1.2.3.4", 2), k("addr:1.2.3.4", 8)];
        assert!(matches!(t.begin(&keys, now), Verdict::Allowed { .. }));
        let later = now + Duration::from_secs(1);
        assert!(matches!(t.begin(&keys, later), Verdict::Allowed { .. }));
        t.succeeded(&keys, later, "acct:a|1.2.3.4");
        assert_eq!(t.begin(&keys, later), Verdict::Allowed { failures: 1 });
    }

    #[test]
    fn any_refused_key_refuses_the_attempt() {
        let mut t = LoginThrottle::new();
        let now = Instant::now();
        t.begin(&[k("addr:1", 2), k("user:a", 5)], now);
        t.begin(&[k("addr:1", 2), k("user:b", 5)], now);
        assert!(matches!(t.begin(&[k("addr:1", 2), k("user:c", 5)], now), Verdict::Refused { .. }));
        assert!(matches!(t.begin(&[k("addr:2", 2), k("user:a", 5)], now), Verdict::Allowed { failures: 1 }));
    }
}
