//! Team files added, changed or removed while the service runs. The team directory is read
//! again every `teams.reload_interval`; a file whose text changed is checked first (its fields,
//! its secrets, its token's portal, its rules against that portal) and only then replaces the
//! team's settings in the stages. A file that fails any check is refused with its problems
//! logged, and its team keeps the settings it had (a new team is served as not connected, so its
//! events say why). No other team is touched. A team no file names any more is disconnected; a
//! file only renamed keeps its team served. Where two files claim one team or one portal, the
//! file the team is served from wins over a newcomer, whatever their names.
//!
//! ```text
//! teams/acme.toml changed: sync.contacts.mandatory ["email"] -> []
//!   -> INFO team settings changed team=acme file=teams/acme.toml changed="rules.sync"
//!      INFO mandatory fields changed: the team's parked records are re-evaluated
//!      (`hubsync run` replays them as `hubsync replay --parked --team acme` would)
//! teams/acme.toml: tier = "gold"
//!   -> ERROR team file refused; the team keeps its previous settings  problems="hubspot.tier: ..."
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::config::{Config, Service, TeamStatus};
use crate::inbound::Portals;
use crate::pipeline::{Stages, connect};
use crate::process::ProcessTeam;
use crate::sink::stage::SinkTeam;
use crate::state::State;
use crate::teams::{Shared, Teams};

/// Applies team file changes to the stages' teams.
pub(crate) struct Reloader {
    pub service: Service,
    /// Told the id of each team whose mandatory fields changed, once the change is in effect.
    pub mandatory_changed: mpsc::UnboundedSender<String>,
    pub stages: Stages,
    pub state: Option<State>,
    /// The webhook receiver's portal -> team routing: the active teams' portals.
    pub portals: Portals,
    pub process: Shared<ProcessTeam>,
    pub sink: Shared<SinkTeam>,
    /// Each team file as last applied: its team and its text.
    pub applied: HashMap<PathBuf, Applied>,
    /// Files refused with this text, so a refusal is logged once, not at every reading.
    pub refused: HashMap<PathBuf, String>,
}

/// A team file as last applied.
pub(crate) struct Applied {
    pub team_id: String,
    pub text: String,
    pub config: Config,
}

impl Reloader {
    /// Reads the team directory every `interval` until `stop`.
    pub async fn run(mut self, interval: std::time::Duration, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
                () = tokio::time::sleep(interval) => self.once().await,
            }
        }
    }

    /// One reading of the team directory.
    pub async fn once(&mut self) {
        // Where two files claim one team or one portal, a served team's file wins over a newcomer:
        // first the file it is served from, then one naming it with its portal (the file renamed).
        let (teams, refused) = self.service.read_teams_ranked(|path, config| {
            let serves = |applied: &Applied| {
                applied.team_id == config.team.id
                    && applied.config.team.hubspot_portal_id == config.team.hubspot_portal_id
            };
            if self.applied.get(path).is_some_and(serves) {
                0
            } else if self.applied.values().any(serves) {
                1
            } else {
                2
            }
        });
        // Every file of this reading, readable or not: the others were removed or renamed.
        let seen: BTreeSet<PathBuf> = teams
            .iter()
            .filter_map(|team| team.path.clone())
            .chain(refused.iter().map(|refused| refused.path.clone()))
            .collect();
        let served_before: BTreeSet<String> =
            self.applied.values().map(|a| a.team_id.clone()).collect();
        for team in teams {
            let Some(path) = team.path.clone() else {
                continue;
            };
            if self
                .applied
                .get(&path)
                .is_some_and(|applied| applied.text == team.text)
            {
                continue;
            }
            let file = path.display().to_string();
            let id = team.config.team.id.clone();
            let previous = self.applied.get(&path).map(|a| &a.config);
            let changed = previous.map_or_else(|| vec!["added"], |old| changes(old, &team.config));
            // A served team whose file is refused now (unreadable, say) still holds its team and
            // its portal.
            let checked = match self.clash(&path, &team.config, &seen) {
                Some(why) => Err(why),
                None => self.apply(&team.config).await,
            };
            match checked {
                Ok(()) => {
                    info!(team = %id, file, changed = changed.join(", "), "team settings changed");
                    if previous.is_some_and(|old| mandatory(old) != mandatory(&team.config))
                        && self.stages.process()
                    {
                        info!(team = %id, "mandatory fields changed: the team's parked records are re-evaluated");
                        // Nobody listens when the caller re-evaluates nothing (a test, say).
                        let _ = self.mandatory_changed.send(id.clone());
                    }
                    self.refused.remove(&path);
                    self.applied.insert(
                        path,
                        Applied {
                            team_id: id,
                            text: team.text,
                            config: team.config,
                        },
                    );
                }
                Err(why) => {
                    let elsewhere = self.named_elsewhere(&id, &path);
                    if self.refused.get(&path) != Some(&team.text) {
                        error!(team = %id, file, %why, "team file refused; the team keeps its previous settings");
                        metrics::counter!("hubsync_teams_refused_total").increment(1);
                        self.refused.insert(path, team.text);
                    }
                    if previous.is_none() && !elsewhere {
                        self.disconnect(
                            &id,
                            &format!("hubsync refused the team's file {file}: {why}"),
                        );
                    }
                }
            }
        }
        for refused in refused {
            let text = std::fs::read_to_string(&refused.path).unwrap_or_default();
            if self.refused.get(&refused.path) == Some(&text) {
                continue;
            }
            let file = refused.path.display().to_string();
            error!(file, error = %refused.error, "team file refused; the team keeps its previous settings");
            metrics::counter!("hubsync_teams_refused_total").increment(1);
            let new_team = !self.applied.contains_key(&refused.path);
            if let (true, Some(id)) = (new_team, refused.team_id)
                && !self.named_elsewhere(&id, &refused.path)
            {
                self.disconnect(
                    &id,
                    &format!("hubsync refused the team's file {file}: {}", refused.error),
                );
            }
            self.refused.insert(refused.path, text);
        }
        self.applied.retain(|path, applied| {
            let kept = seen.contains(path);
            if !kept {
                info!(team = %applied.team_id, file = %path.display(), "team file removed");
            }
            kept
        });
        // A team no file names any more (its file removed, or renamed to another id) is
        // disconnected; one whose file was only renamed is still served from its new file.
        let served_now: BTreeSet<&String> = self.applied.values().map(|a| &a.team_id).collect();
        for id in served_before.iter().filter(|id| !served_now.contains(id)) {
            warn!(team = %id, "no team file names the team any more: it is disconnected");
            self.disconnect(
                id,
                "the team's HubSpot integration is disconnected (no team file names it)",
            );
        }
        self.refused.retain(|path, _| seen.contains(path));
    }

    /// Why a file may not take its team: another file still in the directory is served with
    /// its team or its portal.
    fn clash(&self, path: &Path, config: &Config, seen: &BTreeSet<PathBuf>) -> Option<String> {
        let id = &config.team.id;
        let portal = config.team.hubspot_portal_id;
        self.applied
            .iter()
            .filter(|(other, _)| other.as_path() != path && seen.contains(*other))
            .find_map(|(other, applied)| {
                if &applied.team_id == id {
                    Some(format!(
                        "team.id: team {id} is served from {} already",
                        other.display()
                    ))
                } else if applied.config.team.hubspot_portal_id == portal {
                    Some(format!(
                        "team.hubspot_portal_id: portal {portal} is team {}'s already (from {})",
                        applied.team_id,
                        other.display()
                    ))
                } else {
                    None
                }
            })
    }

    /// Whether another applied file serves team `id`.
    fn named_elsewhere(&self, id: &str, path: &Path) -> bool {
        self.applied
            .iter()
            .any(|(other, applied)| other.as_path() != path && applied.team_id == id)
    }

    /// Connects a team with its new settings and, once every check passed, puts them in place.
    async fn apply(&self, config: &Config) -> Result<(), String> {
        let id = config.team.id.clone();
        if config.team.status != TeamStatus::Active {
            let why = format!(
                "the team's HubSpot integration is {}",
                config.team.status.as_str()
            );
            self.disconnect(&id, &why);
            return Ok(());
        }
        let secrets = config.resolve_secrets().map_err(|e| e.to_string())?;
        let connected = connect(config, &secrets, self.stages, self.state.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        // As at start: a portal's webhooks are taken once its team's token is found to be its.
        self.portals.set(
            crate::inbound::translate::TeamView::from_config(config),
            &connected.client,
        );
        let (process_team, sink_team) = connected.into_parts();
        self.update(|process, sink| {
            if let Some(kept) = process_team {
                process.add(&id, kept);
            }
            if let Some(kept) = sink_team {
                sink.add(&id, kept);
            }
        });
        Ok(())
    }

    /// Serves team `id` as not connected in both stages, saying why.
    fn disconnect(&self, id: &str, why: &str) {
        self.portals.remove_team(id);
        self.update(|process, sink| {
            process.add_not_connected(id, why);
            sink.add_not_connected(id, why);
        });
    }

    fn update(&self, change: impl FnOnce(&mut Teams<ProcessTeam>, &mut Teams<SinkTeam>)) {
        let mut process = (*self.process.current()).clone();
        let mut sink = (*self.sink.current()).clone();
        change(&mut process, &mut sink);
        self.process.replace(process);
        self.sink.replace(sink);
    }
}

/// The sections of a team's settings that differ.
fn changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.team != new.team {
        changed.push("team");
    }
    if old.hubspot != new.hubspot {
        changed.push("hubspot");
    }
    if old.rules.sync != new.rules.sync {
        changed.push("sync");
    }
    if old.rules.users != new.rules.users {
        changed.push("users");
    }
    if old.rules.activities != new.rules.activities {
        changed.push("activities");
    }
    if old.rules.campaigns != new.rules.campaigns {
        changed.push("campaigns");
    }
    if changed.is_empty() {
        changed.push("nothing that matters (comments or layout)");
    }
    changed
}

/// Every object's mandatory fields.
fn mandatory(config: &Config) -> [&[String]; 2] {
    [
        &config.rules.sync.contacts.mandatory,
        &config.rules.sync.companies.mandatory,
    ]
}
