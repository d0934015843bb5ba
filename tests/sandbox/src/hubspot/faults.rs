//! Fault injection: what the sandbox does wrong on purpose, set at start or at runtime through the
//! admin API. Deciding is pure given the random source, so tests can seed it.

use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every API request before it is answered.
    pub latency_ms: u64,
    /// Up to this much more, uniformly.
    pub latency_jitter_ms: u64,
    /// Share of requests (0..=1) answered with a 5xx.
    pub error_rate: f64,
    /// The 5xx status to answer with; by default one of 500, 502, 503, 504.
    pub error_status: Option<u16>,
    /// Share of requests (0..=1) that hang: no answer for `hang_ms`, then a 504.
    pub hang_rate: f64,
    /// How long a hung request is held; default five minutes.
    pub hang_ms: Option<u64>,
    /// The next N requests are refused with a ten-secondly 429, whatever the budget.
    pub storm_429_requests: u32,
    /// Until this epoch ms, every request is refused with a ten-secondly 429.
    pub storm_429_until_ms: Option<i64>,
    /// Only requests whose path starts with this are affected (default: all API paths).
    pub path_prefix: Option<String>,
    /// Requests whose body contains this text are answered 500, every time: an input HubSpot
    /// cannot take, failing every batch that carries it while the others succeed.
    pub poison: Option<String>,
}

/// What to do with one request, besides the latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    ServerError(u16),
    Hang(u64),
    Storm429,
}

const DEFAULT_HANG_MS: u64 = 300_000;

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("hang_rate", self.hang_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        if let Some(status) = self.error_status
            && !(500..=599).contains(&status)
        {
            return Err(format!("error_status must be a 5xx status, got {status}"));
        }
        Ok(())
    }

    /// Whether a request's body carries the poison.
    pub fn poisoned(&self, body: &[u8]) -> bool {
        self.poison.as_deref().is_some_and(|poison| {
            !poison.is_empty()
                && body
                    .windows(poison.len())
                    .any(|window| window == poison.as_bytes())
        })
    }

    pub fn applies_to(&self, path: &str) -> bool {
        self.path_prefix
            .as_deref()
            .is_none_or(|prefix| path.starts_with(prefix))
    }

    pub fn latency(&self, rng: &mut impl Rng) -> u64 {
        if self.latency_jitter_ms == 0 {
            self.latency_ms
        } else {
            self.latency_ms + rng.random_range(0..=self.latency_jitter_ms)
        }
    }

    /// Decides the fault for one request, consuming one storm request if a storm is on.
    pub fn decide(&mut self, now_ms: i64, rng: &mut impl Rng) -> Fault {
        if self.storm_429_until_ms.is_some_and(|until| now_ms < until) {
            return Fault::Storm429;
        }
        if self.storm_429_requests > 0 {
            self.storm_429_requests -= 1;
            return Fault::Storm429;
        }
        if self.hang_rate > 0.0 && rng.random_bool(self.hang_rate) {
            return Fault::Hang(self.hang_ms.unwrap_or(DEFAULT_HANG_MS));
        }
        if self.error_rate > 0.0 && rng.random_bool(self.error_rate) {
            let status = self
                .error_status
                .unwrap_or_else(|| [500, 502, 503, 504][rng.random_range(0..4)]);
            return Fault::ServerError(status);
        }
        Fault::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn no_faults_by_default() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut faults = Faults::default();
        for _ in 0..100 {
            assert_eq!(faults.decide(0, &mut rng), Fault::None);
        }
    }

    #[test]
    fn a_counted_storm_refuses_exactly_n_requests() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut faults = Faults {
            storm_429_requests: 3,
            ..Faults::default()
        };
        let storms = (0..10)
            .filter(|_| faults.decide(0, &mut rng) == Fault::Storm429)
            .count();
        assert_eq!(storms, 3);
    }

    #[test]
    fn a_timed_storm_ends_at_its_deadline() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut faults = Faults {
            storm_429_until_ms: Some(1_000),
            ..Faults::default()
        };
        assert_eq!(faults.decide(999, &mut rng), Fault::Storm429);
        assert_eq!(faults.decide(1_000, &mut rng), Fault::None);
    }

    #[test]
    fn error_rate_is_roughly_honoured_and_uses_5xx() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut faults = Faults {
            error_rate: 0.25,
            ..Faults::default()
        };
        let errors: Vec<u16> = (0..4_000)
            .filter_map(|_| match faults.decide(0, &mut rng) {
                Fault::ServerError(status) => Some(status),
                _ => None,
            })
            .collect();
        assert!(
            (800..1_200).contains(&errors.len()),
            "{} errors",
            errors.len()
        );
        assert!(errors.iter().all(|s| (500..=504).contains(s)));
    }

    #[test]
    fn validation_names_the_bad_setting() {
        let faults = Faults {
            hang_rate: 1.5,
            ..Faults::default()
        };
        assert!(faults.validate().unwrap_err().contains("hang_rate"));
        let faults = Faults {
            error_status: Some(404),
            ..Faults::default()
        };
        assert!(faults.validate().unwrap_err().contains("error_status"));
    }
}
