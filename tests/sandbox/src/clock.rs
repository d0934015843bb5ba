//! The time source behind the HubSpot sandbox's rate-limit windows, daily quota and search index
//! lag. Tests use [`Clock::manual`] and move time forward explicitly, so a ten-second window is
//! crossed in a microsecond and no test sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// Wall-clock time.
    #[default]
    System,
    /// Time that moves only when [`Clock::advance`] is called; shared by every clone.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `start_ms` (milliseconds since the Unix epoch).
    pub fn manual(start_ms: i64) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => chrono::Utc::now().timestamp_millis(),
            Clock::Manual(now) => now.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward; returns false (and does nothing) on the system clock.
    pub fn advance(&self, by: Duration) -> bool {
        match self {
            Clock::System => false,
            Clock::Manual(now) => {
                let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
                now.fetch_add(by, Ordering::SeqCst);
                true
            }
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }
}

/// RFC 3339 with milliseconds and a `Z`, the form HubSpot uses for `createdAt`/`updatedAt`.
pub fn rfc3339_ms(epoch_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = Clock::manual(1_000);
        let other = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        assert!(other.advance(Duration::from_secs(10)));
        assert_eq!(clock.now_ms(), 11_000);
        assert!(!Clock::System.advance(Duration::from_secs(1)));
    }

    #[test]
    fn formats_hubspot_timestamps() {
        assert_eq!(rfc3339_ms(1_572_480_000_000), "2019-10-31T00:00:00.000Z");
    }
}
