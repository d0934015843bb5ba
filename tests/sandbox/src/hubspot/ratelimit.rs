//! HubSpot's request budget: a rolling ten-second window per app, a daily quota per account that
//! resets at midnight in the account's time zone, and a separate, lower per-second limit for search.
//! Pure: time comes in as an argument, so tests cross windows without sleeping.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub const WINDOW_MS: i64 = 10_000;
const SEARCH_WINDOW_MS: i64 = 1_000;
const DAY_MS: i64 = 86_400_000;

/// The tier table is the HubSpot client's: the sandbox enforces what hubsync budgets by.
pub use hubsync_hubspot::Tier;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Requests per rolling ten seconds.
    pub per_window: u32,
    /// Requests per day.
    pub daily: u64,
    /// Search requests per second.
    pub search_per_second: u32,
    /// The account's time zone, as an offset from UTC, for the daily reset.
    #[serde(default)]
    pub utc_offset_minutes: i32,
}

/// The daily limit of calls that have none: a public app's OAuth calls.
pub const NO_DAILY_LIMIT: u64 = u64::MAX;

impl Limits {
    /// A public OAuth app's limits in an installing account: its own ten-second window, no
    /// daily limit, the account's search limit and time zone.
    pub fn of_oauth_app(account: Limits) -> Self {
        Limits {
            per_window: hubsync_hubspot::tier::OAUTH_REQUESTS_PER_10S,
            daily: NO_DAILY_LIMIT,
            ..account
        }
    }

    /// The tier's published limits, in UTC.
    pub fn of_tier(tier: Tier) -> Self {
        let published = tier.limits();
        Limits {
            per_window: published.requests_per_10s,
            daily: published.daily,
            search_per_second: hubsync_hubspot::tier::SEARCH_PER_SECOND_PUBLISHED,
            utc_offset_minutes: 0,
        }
    }
}

/// The `X-HubSpot-RateLimit-*` values after a request was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max: u32,
    pub remaining: u32,
    pub interval_ms: i64,
    pub daily: u64,
    pub daily_remaining: u64,
}

impl Budget {
    /// The headers; the daily ones only where a daily limit applies (OAuth calls have none).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("x-hubspot-ratelimit-max", self.max.to_string()),
            ("x-hubspot-ratelimit-remaining", self.remaining.to_string()),
            (
                "x-hubspot-ratelimit-interval-milliseconds",
                self.interval_ms.to_string(),
            ),
        ];
        if self.daily != NO_DAILY_LIMIT {
            headers.push(("x-hubspot-ratelimit-daily", self.daily.to_string()));
            headers.push((
                "x-hubspot-ratelimit-daily-remaining",
                self.daily_remaining.to_string(),
            ));
        }
        headers
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    TenSecondlyRolling,
    Daily,
    Secondly,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::TenSecondlyRolling => "TEN_SECONDLY_ROLLING",
            Policy::Daily => "DAILY",
            Policy::Secondly => "SECONDLY",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Admitted; search requests carry no budget headers.
    Allowed(Option<Budget>),
    /// Refused; `retry_after_ms` is when the refusing window frees a slot.
    Limited {
        policy: Policy,
        retry_after_ms: i64,
        budget: Option<Budget>,
    },
}

#[derive(Debug, Clone)]
pub struct RateLimiter {
    limits: Limits,
    window: VecDeque<i64>,
    search_window: VecDeque<i64>,
    day: i64,
    day_count: u64,
}

impl RateLimiter {
    pub fn new(limits: Limits) -> Self {
        RateLimiter {
            limits,
            window: VecDeque::new(),
            search_window: VecDeque::new(),
            day: i64::MIN,
            day_count: 0,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Admits or refuses a request at `now_ms`. Refused requests consume nothing.
    pub fn admit(&mut self, now_ms: i64, search: bool) -> Admission {
        self.roll(now_ms);
        let day_exhausted = self.day_count >= self.limits.daily;
        if search {
            if day_exhausted {
                return Admission::Limited {
                    policy: Policy::Daily,
                    retry_after_ms: self.ms_to_next_day(now_ms),
                    budget: None,
                };
            }
            if self.search_window.len() as u64 >= u64::from(self.limits.search_per_second) {
                let oldest = self.search_window.front().copied().unwrap_or(now_ms);
                return Admission::Limited {
                    policy: Policy::Secondly,
                    retry_after_ms: (oldest + SEARCH_WINDOW_MS - now_ms).max(1),
                    budget: None,
                };
            }
            self.search_window.push_back(now_ms);
            self.day_count += 1;
            return Admission::Allowed(None);
        }
        if day_exhausted {
            return Admission::Limited {
                policy: Policy::Daily,
                retry_after_ms: self.ms_to_next_day(now_ms),
                budget: Some(self.budget()),
            };
        }
        if self.window.len() as u64 >= u64::from(self.limits.per_window) {
            let oldest = self.window.front().copied().unwrap_or(now_ms);
            return Admission::Limited {
                policy: Policy::TenSecondlyRolling,
                retry_after_ms: (oldest + WINDOW_MS - now_ms).max(1),
                budget: Some(self.budget()),
            };
        }
        self.window.push_back(now_ms);
        self.day_count += 1;
        Admission::Allowed(Some(self.budget()))
    }

    /// Requests counted against today's quota so far.
    pub fn daily_used(&mut self, now_ms: i64) -> u64 {
        self.roll(now_ms);
        self.day_count
    }

    pub fn reset(&mut self) {
        self.window.clear();
        self.search_window.clear();
        self.day_count = 0;
    }

    /// Epoch ms of the next daily reset.
    pub fn next_reset_ms(&self, now_ms: i64) -> i64 {
        now_ms + self.ms_to_next_day(now_ms)
    }

    fn budget(&self) -> Budget {
        Budget {
            max: self.limits.per_window,
            remaining: self
                .limits
                .per_window
                .saturating_sub(self.window.len() as u32),
            interval_ms: WINDOW_MS,
            daily: self.limits.daily,
            daily_remaining: self.limits.daily.saturating_sub(self.day_count),
        }
    }

    fn local_day(&self, now_ms: i64) -> i64 {
        (now_ms + i64::from(self.limits.utc_offset_minutes) * 60_000).div_euclid(DAY_MS)
    }

    fn ms_to_next_day(&self, now_ms: i64) -> i64 {
        let local = now_ms + i64::from(self.limits.utc_offset_minutes) * 60_000;
        DAY_MS - local.rem_euclid(DAY_MS)
    }

    fn roll(&mut self, now_ms: i64) {
        while self
            .window
            .front()
            .is_some_and(|t| *t <= now_ms - WINDOW_MS)
        {
            self.window.pop_front();
        }
        while self
            .search_window
            .front()
            .is_some_and(|t| *t <= now_ms - SEARCH_WINDOW_MS)
        {
            self.search_window.pop_front();
        }
        let day = self.local_day(now_ms);
        if day != self.day {
            self.day = day;
            self.day_count = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn limiter(per_window: u32, daily: u64) -> RateLimiter {
        RateLimiter::new(Limits {
            per_window,
            daily,
            search_per_second: 2,
            utc_offset_minutes: 0,
        })
    }

    #[test]
    fn tiers_carry_hubspot_limits() {
        assert_eq!(Limits::of_tier(Tier::Professional).per_window, 190);
        assert_eq!(Limits::of_tier(Tier::Professional).daily, 625_000);
        assert_eq!(Limits::of_tier(Tier::Free).per_window, 100);
        assert_eq!(Limits::of_tier(Tier::Enterprise).daily, 1_000_000);
        assert_eq!(Limits::of_tier(Tier::Unlimited).per_window, 250);
    }

    #[test]
    fn rolling_window_refuses_the_request_over_the_limit_and_frees_as_time_rolls() {
        let mut rl = limiter(3, 1_000);
        for i in 0..3 {
            let Admission::Allowed(Some(budget)) = rl.admit(T0 + i * 1_000, false) else {
                panic!("request {i} refused");
            };
            assert_eq!(budget.remaining, 2 - i as u32);
        }
        match rl.admit(T0 + 5_000, false) {
            Admission::Limited {
                policy,
                retry_after_ms,
                ..
            } => {
                assert_eq!(policy, Policy::TenSecondlyRolling);
                assert_eq!(retry_after_ms, 5_000);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // The first request leaves the window exactly ten seconds after it was made.
        assert!(matches!(
            rl.admit(T0 + 9_999, false),
            Admission::Limited { .. }
        ));
        assert!(matches!(
            rl.admit(T0 + 10_000, false),
            Admission::Allowed(_)
        ));
    }

    #[test]
    fn daily_quota_refuses_until_midnight_in_the_account_time_zone() {
        let mut rl = RateLimiter::new(Limits {
            per_window: 100,
            daily: 2,
            search_per_second: 5,
            utc_offset_minutes: 60,
        });
        // 22:30 UTC is 23:30 at UTC+1; midnight local is 30 minutes away.
        let evening = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS + 22 * 3_600_000 + 30 * 60_000;
        assert!(matches!(rl.admit(evening, false), Admission::Allowed(_)));
        assert!(matches!(
            rl.admit(evening + 20_000, false),
            Admission::Allowed(_)
        ));
        match rl.admit(evening + 40_000, false) {
            Admission::Limited {
                policy,
                retry_after_ms,
                budget,
            } => {
                assert_eq!(policy, Policy::Daily);
                assert_eq!(retry_after_ms, 30 * 60_000 - 40_000);
                assert_eq!(budget.map(|b| b.daily_remaining), Some(0));
            }
            other => panic!("expected the daily limit, got {other:?}"),
        }
        assert!(matches!(
            rl.admit(evening + 30 * 60_000, false),
            Admission::Allowed(_)
        ));
    }

    #[test]
    fn search_has_its_own_per_second_limit_and_no_headers() {
        let mut rl = limiter(100, 1_000);
        assert_eq!(rl.admit(T0, true), Admission::Allowed(None));
        assert_eq!(rl.admit(T0 + 10, true), Admission::Allowed(None));
        assert!(matches!(
            rl.admit(T0 + 20, true),
            Admission::Limited {
                policy: Policy::Secondly,
                ..
            }
        ));
        // Searches do not use the ten-second window, but count against the day.
        let Admission::Allowed(Some(budget)) = rl.admit(T0 + 30, false) else {
            panic!("standard request refused");
        };
        assert_eq!(budget.remaining, 99);
        assert_eq!(budget.daily_remaining, 997);
        assert_eq!(rl.admit(T0 + 1_000, true), Admission::Allowed(None));
    }

    #[test]
    fn refused_requests_consume_nothing() {
        let mut rl = limiter(1, 1_000);
        assert!(matches!(rl.admit(T0, false), Admission::Allowed(_)));
        for _ in 0..10 {
            assert!(matches!(rl.admit(T0 + 1, false), Admission::Limited { .. }));
        }
        assert_eq!(rl.daily_used(T0 + 2), 1);
    }
}
