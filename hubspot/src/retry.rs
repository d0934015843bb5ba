//! Whether and when to send a failed request again. The decision is pure: the attempt count,
//! the failure, the time to the daily reset and a jitter draw come in as arguments. Sleeping is
//! behind [`Sleeper`] so that tests run retries instantly.
//!
//! ```text
//! attempt 2 failed with Retryable { retry_after: None }, base 250ms, max 30s, jitter 0.5
//! -> Retry(250ms)        (full jitter: 0.5 x min(30s, 250ms x 2^(2-1)))
//! attempt 2 failed with RateLimited { policy: TenSecondlyRolling, retry_after: Some(3s) }
//! -> Retry(3s)           (the server's hint wins)
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::budget::ManualClock;
use super::{ErrorClass, Failure, RateLimitPolicy};

/// Backoff for retries: the `n`th retry waits a uniform draw from zero to
/// `min(max, base * 2^(n-1))` ("full jitter"), unless the server said how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryParams {
    pub base: Duration,
    pub max: Duration,
    /// Requests per call, the first one included; 1 means no retries.
    pub max_attempts: u32,
}

impl Default for RetryParams {
    fn default() -> Self {
        RetryParams {
            base: Duration::from_millis(250),
            max: Duration::from_secs(30),
            max_attempts: 6,
        }
    }
}

impl RetryParams {
    /// The ceiling of the wait after `attempts` failed attempts (1 for the first failure).
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// The computed wait: `jitter` (a draw from `0.0..=1.0`) of the ceiling.
    pub fn backoff(&self, attempts: u32, jitter: f64) -> Duration {
        self.ceiling(attempts).mul_f64(jitter.clamp(0.0, 1.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then send the request again.
    Retry(Duration),
    /// Hand the failure to the caller.
    GiveUp,
}

/// What to do after attempt number `attempts` (1-based) failed with `failure`.
///
/// Retryable and rate-limited failures are retried until `max_attempts`; auth, data, conflict
/// and not-found failures never are. A request that is not idempotent (a create) is sent
/// again only when HubSpot surely did not apply it (a 429, a refused connection): otherwise
/// the caller must find out what happened first. A server hint wins over the computed delay:
/// `Retry-After`, or for the daily limit without one, the time to the daily reset.
pub fn decide(
    params: &RetryParams,
    attempts: u32,
    failure: &Failure,
    idempotent: bool,
    daily_reset_in: Duration,
    jitter: f64,
) -> Decision {
    if attempts >= params.max_attempts {
        return Decision::GiveUp;
    }
    if !idempotent && failure.may_have_applied {
        return Decision::GiveUp;
    }
    let hint = match &failure.class {
        ErrorClass::Retryable { retry_after } => *retry_after,
        ErrorClass::RateLimited {
            policy,
            retry_after,
        } => retry_after.or((*policy == RateLimitPolicy::Daily).then_some(daily_reset_in)),
        ErrorClass::Auth { .. }
        | ErrorClass::Data { .. }
        | ErrorClass::Conflict { .. }
        | ErrorClass::NotFound => return Decision::GiveUp,
    };
    Decision::Retry(hint.unwrap_or_else(|| params.backoff(attempts, jitter)))
}

/// A boxed sleep, so that [`Sleeper`] stays object-safe.
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How the client waits between attempts and for rate-limit slots.
pub trait Sleeper: Send + Sync + fmt::Debug {
    fn sleep(&self, duration: Duration) -> SleepFuture;
}

/// Real time, through tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Returns at once and records every wait; with a [`ManualClock`], moves it forward by the
/// wait, so that time-based code runs instantly and deterministically in tests.
#[derive(Debug, Clone, Default)]
pub struct InstantSleeper {
    slept: Arc<Mutex<Vec<Duration>>>,
    clock: Option<ManualClock>,
}

impl InstantSleeper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves `clock` forward by every wait.
    pub fn advancing(clock: ManualClock) -> Self {
        InstantSleeper {
            slept: Arc::default(),
            clock: Some(clock),
        }
    }

    /// Every wait so far, in order.
    pub fn slept(&self) -> Vec<Duration> {
        self.slept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl Sleeper for InstantSleeper {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        self.slept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(duration);
        if let Some(clock) = &self.clock {
            clock.advance(duration);
        }
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_RESET: Duration = Duration::from_secs(3_600);

    fn params() -> RetryParams {
        RetryParams {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            max_attempts: 5,
        }
    }

    fn failure(class: ErrorClass) -> Failure {
        Failure::new(class, Some(500), "TEST", "x")
    }

    fn retryable() -> Failure {
        failure(ErrorClass::Retryable { retry_after: None })
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_scales_it() {
        let p = params();
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(800));
        assert_eq!(p.ceiling(6), Duration::from_secs(2));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(2));
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(200));
        assert_eq!(p.backoff(3, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(3, 7.0), Duration::from_millis(400));
    }

    #[test]
    fn retryable_failures_are_retried_with_jittered_backoff() {
        assert_eq!(
            decide(&params(), 1, &retryable(), true, DAY_RESET, 1.0),
            Decision::Retry(Duration::from_millis(100))
        );
        assert_eq!(
            decide(&params(), 3, &retryable(), true, DAY_RESET, 0.25),
            Decision::Retry(Duration::from_millis(100))
        );
    }

    #[test]
    fn retry_after_wins_over_the_computed_delay() {
        let hinted = failure(ErrorClass::RateLimited {
            policy: RateLimitPolicy::TenSecondlyRolling,
            retry_after: Some(Duration::from_secs(10)),
        });
        assert_eq!(
            decide(&params(), 1, &hinted, true, DAY_RESET, 0.3),
            Decision::Retry(Duration::from_secs(10))
        );
        let unavailable = failure(ErrorClass::Retryable {
            retry_after: Some(Duration::from_secs(4)),
        });
        assert_eq!(
            decide(&params(), 2, &unavailable, true, DAY_RESET, 0.3),
            Decision::Retry(Duration::from_secs(4))
        );
        let unhinted = failure(ErrorClass::RateLimited {
            policy: RateLimitPolicy::TenSecondlyRolling,
            retry_after: None,
        });
        assert_eq!(
            decide(&params(), 2, &unhinted, true, DAY_RESET, 1.0),
            Decision::Retry(Duration::from_millis(200))
        );
    }

    #[test]
    fn the_daily_limit_waits_for_the_reset() {
        let daily = failure(ErrorClass::RateLimited {
            policy: RateLimitPolicy::Daily,
            retry_after: None,
        });
        assert_eq!(
            decide(&params(), 1, &daily, true, DAY_RESET, 0.5),
            Decision::Retry(DAY_RESET)
        );
    }

    #[test]
    fn attempts_stop_at_max_attempts() {
        assert!(matches!(
            decide(&params(), 4, &retryable(), true, DAY_RESET, 0.5),
            Decision::Retry(_)
        ));
        assert_eq!(
            decide(&params(), 5, &retryable(), true, DAY_RESET, 0.5),
            Decision::GiveUp
        );
        let once = RetryParams {
            max_attempts: 1,
            ..params()
        };
        assert_eq!(
            decide(&once, 1, &retryable(), true, DAY_RESET, 0.5),
            Decision::GiveUp
        );
    }

    #[test]
    fn auth_data_conflict_and_not_found_are_never_retried() {
        for class in [
            ErrorClass::Auth {
                missing_scopes: vec![],
            },
            ErrorClass::Data {
                property_errors: vec![],
            },
            ErrorClass::Conflict {
                existing_id: "1".into(),
            },
            ErrorClass::NotFound,
        ] {
            assert_eq!(
                decide(&params(), 1, &failure(class.clone()), true, DAY_RESET, 0.5),
                Decision::GiveUp,
                "{class:?}"
            );
        }
    }

    #[test]
    fn a_create_is_resent_only_when_it_surely_was_not_applied() {
        let timed_out = Failure {
            may_have_applied: true,
            ..retryable()
        };
        assert_eq!(
            decide(&params(), 1, &timed_out, false, DAY_RESET, 0.5),
            Decision::GiveUp
        );
        assert!(matches!(
            decide(&params(), 1, &timed_out, true, DAY_RESET, 0.5),
            Decision::Retry(_)
        ));
        let refused = failure(ErrorClass::RateLimited {
            policy: RateLimitPolicy::TenSecondlyRolling,
            retry_after: None,
        });
        assert!(matches!(
            decide(&params(), 1, &refused, false, DAY_RESET, 0.5),
            Decision::Retry(_)
        ));
    }

    #[tokio::test]
    async fn the_instant_sleeper_records_and_advances_its_clock() {
        let clock = ManualClock::new(1_000);
        let sleeper = InstantSleeper::advancing(clock.clone());
        sleeper.sleep(Duration::from_millis(250)).await;
        sleeper.sleep(Duration::from_secs(1)).await;
        assert_eq!(
            sleeper.slept(),
            vec![Duration::from_millis(250), Duration::from_secs(1)]
        );
        use super::super::budget::Clock;
        assert_eq!(clock.now_ms(), 2_250);
    }
}
