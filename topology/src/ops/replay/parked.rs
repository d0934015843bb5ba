//! The events `replay --parked` tries again: those whose latest outcome on the outcomes topic is
//! still `PARKED`, by the source position their outcomes name.
//!
//! Outcomes of one event share its source key and so a partition of the outcomes topic: the one
//! read last is the latest. A replayed event's outcomes name its origin's position, so an event
//! parked again by a replay is found again, and one written by a replay is not.
//!
//! ```text
//! e-1 PARKED  crm.contact.changes/0/7    e-1 is parked: copy crm.contact.changes/0/7
//! e-2 PARKED  crm.contact.changes/0/9    e-2 was parked,
//! e-2 CREATED crm.contact.changes/0/9      then written: left alone
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};

use hubsync_schemas::{OutcomeStatus, SyncOutcome};
use rdkafka::consumer::StreamConsumer;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::ReplayError;
use super::checkpoint;
use super::copy::{self, CopyOptions, Tally};
use super::plan::{self, Selection, Span};
use crate::config::{Config, Secrets};
use crate::lineage::RunName;
use crate::ops::range::Window;
use crate::ops::scan::{Flow, ScanError, TopicReader};
use crate::ops::{Ops, OpsError};
use crate::outcomes::now_ms;
use crate::position::Position;

/// The latest outcome of every event read.
#[derive(Debug, Default)]
pub struct LatestOutcomes {
    /// Per event: its latest status, its source position and its team.
    latest: HashMap<String, (OutcomeStatus, Position, String)>,
    /// Outcome records read.
    pub read: u64,
    /// Records of the outcomes topic that did not decode.
    pub undecodable: u64,
}

impl LatestOutcomes {
    /// Takes an outcome read after every earlier one of its event.
    pub fn add(&mut self, outcome: &SyncOutcome) {
        self.read += 1;
        let position = Position::new(
            outcome.source_topic.clone(),
            outcome.source_partition,
            outcome.source_offset,
        );
        self.latest.insert(
            outcome.event_id.clone(),
            (outcome.status, position, outcome.team_id.clone()),
        );
    }

    /// Events seen.
    #[cfg(test)]
    pub fn events(&self) -> usize {
        self.latest.len()
    }

    /// The source positions of events whose latest outcome is `PARKED`, on the given topics,
    /// of `team` only when one is given.
    pub fn parked(&self, topics: &[&str], team: Option<&str>) -> BTreeSet<Position> {
        self.latest
            .values()
            .filter(|(status, position, of)| {
                *status == OutcomeStatus::Parked
                    && topics.contains(&position.topic.as_str())
                    && team.is_none_or(|team| team == of)
            })
            .map(|(_, position, _)| position.clone())
            .collect()
    }
}

/// Reads the outcomes recorded in `window` and keeps each event's latest.
pub async fn scan(
    reader: &TopicReader,
    outcomes_topic: &str,
    window: Window,
) -> Result<LatestOutcomes, ScanError> {
    let mut latest = LatestOutcomes::default();
    reader
        .scan::<SyncOutcome>(outcomes_topic, window, |scanned| {
            match scanned.record {
                Ok(outcome) => latest.add(&outcome),
                Err(error) => {
                    debug!(%error, offset = scanned.message.offset, "undecodable outcome record");
                    latest.undecodable += 1;
                }
            }
            Flow::Continue
        })
        .await?;
    Ok(latest)
}

/// The topics the process stage reads events from.
pub fn source_topics(config: &Config) -> Vec<&str> {
    vec![
        config.topics.contact_changes.as_str(),
        config.topics.company_changes.as_str(),
        config.topics.activity_events.as_str(),
    ]
}

/// The spans a parked selection covers now, and how many of its events are no longer on their
/// topic (retention).
pub async fn spans(
    config: &Config,
    consumer: &StreamConsumer,
    reader: &TopicReader,
    topic: Option<&str>,
    window: Window,
    team: Option<&str>,
) -> Result<(Vec<Span>, u64), ReplayError> {
    let latest = scan(reader, &config.topics.outcomes, window).await?;
    let topics: Vec<&str> = match topic {
        Some(topic) => vec![topic],
        None => source_topics(config),
    };
    plan::by_positions(consumer, &latest.parked(&topics, team))
}

/// What re-evaluating a team's parked events did.
#[derive(Debug)]
pub struct Rerun {
    pub name: RunName,
    pub tally: Tally,
    /// Parked events no longer on their topic.
    pub missing: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RerunError {
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

/// Replays every event of `team` whose latest outcome is `PARKED`, as a new run named
/// `parked-{team}-{time}` (its checkpoint in the state directory like any run's, so an
/// interrupted one is resumed with `hubsync replay --name`).
pub async fn rerun(
    ops: &Ops,
    team: &str,
    stop: watch::Receiver<bool>,
) -> Result<Rerun, RerunError> {
    let safe: String = team
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    let name = RunName::generated(&format!("parked-{safe}"), now_ms());
    let consumer = copy::consumer(&ops.config, &ops.secrets)?;
    let reader = ops.reader(false)?;
    let selection = Selection::Parked {
        topic: None,
        since: None,
        until: None,
        team: Some(team.to_string()),
    };
    let mut checkpoint = super::plan_run(&ops.config, &consumer, &reader, &name, selection).await?;
    let missing = checkpoint.missing;
    let path = checkpoint::path(&ops.config.state.dir, name.as_str());
    checkpoint::save(&checkpoint, &path).map_err(ReplayError::from)?;
    let producer = ops.producer()?;
    let options = CopyOptions {
        dry_run: false,
        max_records: None,
        progress: false,
    };
    let tally = copy::copy(
        &consumer,
        &producer,
        &mut checkpoint,
        Some(&path),
        &HashSet::new(),
        &options,
        stop,
    )
    .await?;
    Ok(Rerun {
        name,
        tally,
        missing,
    })
}

/// Re-evaluates the parked events of each team named on `changes` (a team whose mandatory fields
/// changed), one run at a time, until `stop`. `config` and `secrets` are the deployment's.
pub async fn rerun_on_change(
    config: Config,
    secrets: Secrets,
    mut changes: mpsc::UnboundedReceiver<String>,
    stop: watch::Receiver<bool>,
) {
    let ops = match Ops::new(config, secrets) {
        Ok(ops) => ops,
        Err(error) => {
            warn!(%error, "parked records will not be re-evaluated when rules change; run `hubsync replay --parked --team` by hand");
            return;
        }
    };
    let mut stopping = stop.clone();
    loop {
        let team = tokio::select! {
            team = changes.recv() => match team {
                Some(team) => team,
                None => return,
            },
            _ = stopping.changed() => return,
        };
        match rerun(&ops, &team, stop.clone()).await {
            Ok(run) => info!(
                team,
                run = %run.name,
                copied = run.tally.copied,
                missing = run.missing,
                interrupted = run.tally.interrupted,
                "parked events re-evaluated with the team's new rules"
            ),
            Err(error) => warn!(
                team,
                %error,
                "cannot re-evaluate the team's parked events; run `hubsync replay --parked --team` by hand"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_schemas::examples;

    fn outcome(event: &str, status: OutcomeStatus, topic: &str, offset: i64) -> SyncOutcome {
        let mut outcome = examples::sync_outcome();
        outcome.event_id = event.to_string();
        outcome.status = status;
        outcome.source_topic = topic.to_string();
        outcome.source_partition = 0;
        outcome.source_offset = offset;
        outcome
    }

    #[test]
    fn only_events_still_parked_are_tried_again() {
        let contacts = "crm.contact.changes";
        let mut latest = LatestOutcomes::default();
        latest.add(&outcome("e-1", OutcomeStatus::Parked, contacts, 7));
        latest.add(&outcome("e-2", OutcomeStatus::Parked, contacts, 9));
        latest.add(&outcome("e-2", OutcomeStatus::Created, contacts, 9));
        latest.add(&outcome("e-3", OutcomeStatus::Created, contacts, 11));
        latest.add(&outcome("e-3", OutcomeStatus::Parked, contacts, 11));
        latest.add(&outcome(
            "e-4",
            OutcomeStatus::Parked,
            "crm.company.changes",
            2,
        ));
        assert_eq!((latest.read, latest.events()), (6, 4));
        let offsets: Vec<i64> = latest
            .parked(&[contacts], None)
            .into_iter()
            .map(|p| p.offset)
            .collect();
        assert_eq!(offsets, [7, 11]);
        assert_eq!(
            latest
                .parked(&[contacts, "crm.company.changes"], None)
                .len(),
            3
        );
    }

    #[test]
    fn a_team_gets_its_own_parked_events_only() {
        let contacts = "crm.contact.changes";
        let mut latest = LatestOutcomes::default();
        let mut ours = outcome("e-1", OutcomeStatus::Parked, contacts, 7);
        ours.team_id = "acme".into();
        let mut theirs = outcome("e-2", OutcomeStatus::Parked, contacts, 8);
        theirs.team_id = "globex".into();
        latest.add(&ours);
        latest.add(&theirs);
        let offsets = |team| -> Vec<i64> {
            latest
                .parked(&[contacts], team)
                .into_iter()
                .map(|p| p.offset)
                .collect()
        };
        assert_eq!(offsets(Some("acme")), [7]);
        assert_eq!(offsets(Some("globex")), [8]);
        assert!(offsets(Some("initech")).is_empty());
        assert_eq!(offsets(None), [7, 8]);
    }
}
