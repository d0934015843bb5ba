//! HubSpot's subscription tiers and their published API limits: the one table of them. The
//! client budgets by it, the configuration names a tier, and the development sandbox enforces it.

use serde::{Deserialize, Serialize};

/// Search requests per second the client allows itself: HubSpot documents "about 4 to 5", so the
/// budget keeps to the lower figure.
pub const SEARCH_PER_SECOND: u32 = 4;

/// Requests per rolling ten seconds a public (OAuth) app may make per installing account; its
/// calls have no daily limit.
pub const OAUTH_REQUESTS_PER_10S: u32 = 110;

/// Search requests per second HubSpot itself admits.
pub const SEARCH_PER_SECOND_PUBLISHED: u32 = 5;

/// A HubSpot subscription tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Starter,
    Professional,
    Enterprise,
    /// Enterprise with one API limit increase pack (a second pack adds another million a day).
    Unlimited,
}

/// A tier's published limits for a private app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierLimits {
    /// Requests per rolling ten seconds.
    pub requests_per_10s: u32,
    /// Requests per day, reset at midnight in the account's time zone.
    pub daily: u64,
}

impl Tier {
    pub const ALL: [Tier; 5] = [
        Tier::Free,
        Tier::Starter,
        Tier::Professional,
        Tier::Enterprise,
        Tier::Unlimited,
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Tier::ALL
            .into_iter()
            .find(|tier| tier.as_str().eq_ignore_ascii_case(raw))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Starter => "starter",
            Tier::Professional => "professional",
            Tier::Enterprise => "enterprise",
            Tier::Unlimited => "unlimited",
        }
    }

    pub fn limits(self) -> TierLimits {
        let (requests_per_10s, daily) = match self {
            Tier::Free | Tier::Starter => (100, 250_000),
            Tier::Professional => (190, 625_000),
            Tier::Enterprise => (190, 1_000_000),
            Tier::Unlimited => (250, 2_000_000),
        };
        TierLimits {
            requests_per_10s,
            daily,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_table() {
        assert_eq!(Tier::Professional.limits().requests_per_10s, 190);
        assert_eq!(Tier::Professional.limits().daily, 625_000);
        assert_eq!(Tier::Free.limits().requests_per_10s, 100);
        assert_eq!(Tier::Enterprise.limits().daily, 1_000_000);
        assert_eq!(Tier::Unlimited.limits().requests_per_10s, 250);
    }

    #[test]
    fn names_parse_in_any_case() {
        for tier in Tier::ALL {
            assert_eq!(Tier::parse(&tier.as_str().to_uppercase()), Some(tier));
        }
        assert_eq!(Tier::parse("gold"), None);
    }
}
