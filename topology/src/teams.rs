//! Which teams this service serves, and what an event's team lets happen to it. The upstream
//! topics are the platform's: they carry every customer team's events, and most teams never
//! connect HubSpot. An event is applied only with its own team's rules and written only with its
//! own team's connection; an event of a team this service does not serve is never written
//! anywhere and gets no outcome and no dead letter (or the log would drown in them), only a count.
//!
//! ```text
//! team "acme" active         -> decided with acme's rules, written to acme's portal
//! team "acme" paused         -> SKIPPED TEAM_NOT_CONNECTED (its log says why; nothing written)
//! team "initech" refused     -> SKIPPED TEAM_NOT_CONNECTED (its token is another portal's)
//! team "globex", not served  -> nothing at all; hubsync_events_unserved_total{stage} + 1
//! ```
//!
//! Each stage keeps what it needs of an active team (`T`): the process stage its rules, the
//! portal's property catalog and owners; the sink its writer (the team's HubSpot connection and
//! its portal's state).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hubsync_schemas::ReasonCode;

use crate::config::TeamStatus;
use crate::outcomes::Verdict;

/// What this service may do with an event of a given team.
#[derive(Debug)]
pub enum Served<'a, T> {
    /// Decide and write it with this team's own settings.
    Active(&'a Arc<T>),
    /// A team of this service whose integration does not run now: the event is skipped with
    /// `TEAM_NOT_CONNECTED`, saying why.
    NotConnected(&'a str),
    /// Not a team of this service: no write, no outcome, no dead letter.
    Unknown,
}

#[derive(Debug)]
enum Membership<T> {
    Active(Arc<T>),
    NotConnected(String),
}

impl<T> Clone for Membership<T> {
    fn clone(&self) -> Self {
        match self {
            Membership::Active(kept) => Membership::Active(kept.clone()),
            Membership::NotConnected(why) => Membership::NotConnected(why.clone()),
        }
    }
}

/// The teams a stage serves, by upstream team id, each with what the stage keeps of it.
#[derive(Debug)]
pub struct Teams<T> {
    by_id: HashMap<String, Membership<T>>,
}

impl<T> Clone for Teams<T> {
    fn clone(&self) -> Self {
        Teams {
            by_id: self.by_id.clone(),
        }
    }
}

impl<T> Default for Teams<T> {
    fn default() -> Self {
        Teams {
            by_id: HashMap::new(),
        }
    }
}

impl<T> Teams<T> {
    /// An active team.
    pub fn add(&mut self, team_id: &str, kept: T) {
        self.by_id
            .insert(team_id.to_string(), Membership::Active(Arc::new(kept)));
    }

    /// A team of this service that may not write now: paused or disconnected by the team, or
    /// refused by hubsync (its token is another portal's, its rules do not fit its portal).
    pub fn add_not_connected(&mut self, team_id: &str, why: impl Into<String>) {
        self.by_id
            .insert(team_id.to_string(), Membership::NotConnected(why.into()));
    }

    /// A team by its `[team] status`: active teams keep `kept`.
    pub fn add_with_status(&mut self, team_id: &str, status: TeamStatus, kept: T) {
        match status {
            TeamStatus::Active => self.add(team_id, kept),
            other => self.add_not_connected(
                team_id,
                format!("the team's HubSpot integration is {}", other.as_str()),
            ),
        }
    }

    pub fn served(&self, team_id: &str) -> Served<'_, T> {
        match self.by_id.get(team_id) {
            Some(Membership::Active(kept)) => Served::Active(kept),
            Some(Membership::NotConnected(why)) => Served::NotConnected(why),
            None => Served::Unknown,
        }
    }

    /// The active teams.
    pub fn active(&self) -> impl Iterator<Item = (&str, &Arc<T>)> {
        self.by_id.iter().filter_map(|(id, m)| match m {
            Membership::Active(kept) => Some((id.as_str(), kept)),
            Membership::NotConnected(_) => None,
        })
    }

    /// No longer a team of this service.
    pub fn remove(&mut self, team_id: &str) {
        self.by_id.remove(team_id);
    }

    /// Teams served, active or not.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// A stage's teams, replaced whole when the team files change: a stage reads the current set
/// for each message, and a change never leaves it with half of one.
#[derive(Debug)]
pub struct Shared<T>(Arc<RwLock<Arc<Teams<T>>>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> Shared<T> {
    pub fn new(teams: Teams<T>) -> Self {
        Shared(Arc::new(RwLock::new(Arc::new(teams))))
    }

    /// The teams now.
    pub fn current(&self) -> Arc<Teams<T>> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn replace(&self, teams: Teams<T>) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(teams);
    }
}

/// Counts an event (or a command) of a team this service does not serve.
pub fn count_unserved(stage: &'static str) {
    metrics::counter!("hubsync_events_unserved_total", "stage" => stage).increment(1);
}

/// The outcome of an event of a team whose integration does not run now.
pub fn not_connected(why: &str) -> Verdict {
    Verdict::skipped(
        ReasonCode::TeamNotConnected,
        format!("{why}; nothing is written for this team while it is so"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_teams_of_this_service_are_served() {
        let mut teams = Teams::default();
        teams.add_with_status("acme", TeamStatus::Active, 1);
        teams.add_with_status("initech", TeamStatus::Paused, 2);
        teams.add_not_connected("umbrella", "its token belongs to portal 9, not 8");
        assert!(matches!(teams.served("acme"), Served::Active(kept) if **kept == 1));
        assert!(
            matches!(teams.served("initech"), Served::NotConnected(why) if why.contains("paused"))
        );
        assert!(
            matches!(teams.served("umbrella"), Served::NotConnected(why) if why.contains("portal 9"))
        );
        assert!(matches!(teams.served("globex"), Served::Unknown));
        assert!(matches!(teams.served(""), Served::Unknown));
        assert_eq!(teams.active().count(), 1);
        assert_eq!(teams.len(), 3);
        let verdict = not_connected("the team's HubSpot integration is paused");
        assert_eq!(verdict.reason_code, "TEAM_NOT_CONNECTED");
        assert!(verdict.reason.contains("paused"), "{}", verdict.reason);
    }
}
