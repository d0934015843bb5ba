//! Which teams this service serves, and what an event's team lets happen to it. The upstream
//! topics are the platform's: they carry every customer team's events, and most teams never
//! connect HubSpot. An event is applied only with its own team's rules and written only with its
//! own team's connection; an event of a team this service does not serve is never written
//! anywhere and gets no outcome and no dead letter (or the log would drown in them), only a count.
//!
//! ```text
//! team "acme" active         -> decided with acme's rules, written to acme's portal
//! team "acme" paused         -> SKIPPED TEAM_NOT_CONNECTED (its log says why; nothing written)
//! team "globex", not served  -> nothing at all; hubsync_events_unserved_total{stage} + 1
//! ```

use std::collections::HashMap;

use hubsync_schemas::ReasonCode;

use crate::config::{Config, TeamStatus};
use crate::outcomes::Verdict;

/// What this service may do with an event of a given team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Decide and write it.
    Active,
    /// A team of this service whose integration does not run now: the event is skipped with
    /// `TEAM_NOT_CONNECTED`.
    NotConnected(TeamStatus),
    /// Not a team of this service: no write, no outcome, no dead letter.
    Unknown,
}

/// The teams this service serves, by upstream team id.
#[derive(Debug, Clone, Default)]
pub struct Teams {
    statuses: HashMap<String, TeamStatus>,
}

impl Teams {
    /// The one team a configuration file names.
    pub fn of_config(config: &Config) -> Self {
        Teams {
            statuses: HashMap::from([(config.team.id.clone(), config.team.status)]),
        }
    }

    pub fn served(&self, team_id: &str) -> Served {
        match self.statuses.get(team_id) {
            Some(TeamStatus::Active) => Served::Active,
            Some(status) => Served::NotConnected(*status),
            None => Served::Unknown,
        }
    }
}

/// Counts an event (or a command) of a team this service does not serve.
pub fn count_unserved(stage: &'static str) {
    metrics::counter!("hubsync_events_unserved_total", "stage" => stage).increment(1);
}

/// The outcome of an event of a team whose integration does not run now.
pub fn not_connected(status: TeamStatus) -> Verdict {
    Verdict::skipped(
        ReasonCode::TeamNotConnected,
        format!(
            "the team's HubSpot integration is {}; nothing is written while it is",
            status.as_str()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_team_is_served() {
        let teams = Teams {
            statuses: HashMap::from([
                ("acme".to_string(), TeamStatus::Active),
                ("initech".to_string(), TeamStatus::Paused),
            ]),
        };
        assert_eq!(teams.served("acme"), Served::Active);
        assert_eq!(
            teams.served("initech"),
            Served::NotConnected(TeamStatus::Paused)
        );
        assert_eq!(teams.served("globex"), Served::Unknown);
        assert_eq!(teams.served(""), Served::Unknown);
        let verdict = not_connected(TeamStatus::Paused);
        assert_eq!(verdict.reason_code, "TEAM_NOT_CONNECTED");
        assert!(verdict.reason.contains("paused"), "{}", verdict.reason);
    }
}
