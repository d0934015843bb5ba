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

use std::collections::{BTreeSet, HashMap};

use hubsync_schemas::{OutcomeStatus, SyncOutcome};
use tracing::debug;

use crate::ops::range::Window;
use crate::ops::scan::{Flow, ScanError, TopicReader};
use crate::position::Position;

/// The latest outcome of every event read.
#[derive(Debug, Default)]
pub struct LatestOutcomes {
    latest: HashMap<String, (OutcomeStatus, Position)>,
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
        self.latest
            .insert(outcome.event_id.clone(), (outcome.status, position));
    }

    /// Events seen.
    #[cfg(test)]
    pub fn events(&self) -> usize {
        self.latest.len()
    }

    /// The source positions of events whose latest outcome is `PARKED`, on the given topics.
    pub fn parked(&self, topics: &[&str]) -> BTreeSet<Position> {
        self.latest
            .values()
            .filter(|(status, position)| {
                *status == OutcomeStatus::Parked && topics.contains(&position.topic.as_str())
            })
            .map(|(_, position)| position.clone())
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
            .parked(&[contacts])
            .into_iter()
            .map(|p| p.offset)
            .collect();
        assert_eq!(offsets, [7, 11]);
        assert_eq!(latest.parked(&[contacts, "crm.company.changes"]).len(), 3);
    }
}
