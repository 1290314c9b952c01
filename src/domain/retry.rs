//! When to try a failed delivery again.
//!
//! Exponential backoff with full jitter (a uniformly random delay between zero and the
//! exponential bound): when Puhuri comes back after an outage, the queued work of every replica
//! does not arrive in one wave. The bound is capped; a job is given up (`dead`) after a maximum
//! number of attempts or a maximum age, whichever comes first. A `Retry-After` from Puhuri is a
//! floor under the chosen delay.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAt(DateTime<Utc>),
    GiveUp,
}

impl RetryPolicy {
    /// The exponential bound for the delay after `attempts` attempts (1 = the first failed).
    pub fn bound(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        let bound = self.base.saturating_mul(1u32 << exponent);
        bound.min(self.cap)
    }

    /// The delay before the next attempt: uniform in [0, bound], at least `retry_after`.
    pub fn delay(
        &self,
        attempts: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let bound = self.bound(attempts);
        let jittered = Duration::from_millis(rng.random_range(0..=bound.as_millis() as u64));
        match retry_after {
            Some(floor) => jittered.max(floor),
            None => jittered,
        }
    }

    pub fn decide(
        &self,
        attempts: u32,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
    ) -> RetryDecision {
        if attempts >= self.max_attempts {
            return RetryDecision::GiveUp;
        }
        let delay = self.delay(attempts, retry_after, &mut rand::rng());
        let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        let deadline =
            created_at + chrono::Duration::from_std(self.max_age).unwrap_or(chrono::Duration::MAX);
        if at > deadline {
            RetryDecision::GiveUp
        } else {
            RetryDecision::RetryAt(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            max_attempts: 5,
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_bound_grows_exponentially_up_to_the_cap() {
        let p = policy();
        assert_eq!(p.bound(1), Duration::from_secs(1));
        assert_eq!(p.bound(2), Duration::from_secs(2));
        assert_eq!(p.bound(4), Duration::from_secs(8));
        assert_eq!(p.bound(7), Duration::from_secs(60));
        assert_eq!(p.bound(1000), Duration::from_secs(60));
    }

    #[test]
    fn delays_are_jittered_within_the_bound_and_respect_retry_after() {
        let p = policy();
        let mut rng = rand::rng();
        let delays: Vec<Duration> = (0..200).map(|_| p.delay(4, None, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(8)));
        assert!(
            delays.iter().any(|d| *d < Duration::from_secs(4)),
            "jitter spreads delays"
        );
        for _ in 0..50 {
            assert!(p.delay(1, Some(Duration::from_secs(30)), &mut rng) >= Duration::from_secs(30));
        }
    }

    #[test]
    fn gives_up_after_max_attempts_or_max_age() {
        let p = policy();
        let now = Utc::now();
        assert!(matches!(
            p.decide(1, now, now, None),
            RetryDecision::RetryAt(_)
        ));
        assert_eq!(p.decide(5, now, now, None), RetryDecision::GiveUp);
        let old = now - chrono::Duration::seconds(3599);
        assert_eq!(
            p.decide(1, old, now, Some(Duration::from_secs(10))),
            RetryDecision::GiveUp
        );
    }
}
