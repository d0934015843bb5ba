//! What the sink keeps of a command once its values are merged into its record: the receipt of
//! its event, enough for its outcome; the message itself only for live commands.
//!
//! A replay may hold a million commands at once, so a held command must cost little: ids that
//! are UUIDs are kept as their 16 bytes, the names many commands share (topics, teams, replay
//! runs) once each, and a replayed command's message not at all: a dead letter, the only thing
//! that needs it, reads it again from Kafka by its position ([`super::reread`]).
//!
//! ```text
//! command (about 2 KiB with its message) -> Receipt { event 16 B, source topic/partition/offset/key,
//!   team, event time, position on the commands topic, replay run } (about 200 B)
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use hubsync_schemas::{HubSpotCommand, HubSpotObjectType, SyncOutcome};

use crate::lineage::{self, Lineage};
use crate::outcomes::{Original, Verdict};
use crate::position::Position;

/// An id kept small: a canonical UUID as its bytes, anything else as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactId {
    Uuid(uuid::Uuid),
    Text(Box<str>),
}

impl CompactId {
    pub fn new(id: &str) -> Self {
        match uuid::Uuid::try_parse(id) {
            // Only the form that prints back to the same text.
            Ok(uuid) if uuid.hyphenated().to_string() == id => CompactId::Uuid(uuid),
            _ => CompactId::Text(id.into()),
        }
    }

    pub fn to_text(&self) -> String {
        match self {
            CompactId::Uuid(uuid) => uuid.hyphenated().to_string(),
            CompactId::Text(text) => text.to_string(),
        }
    }
}

/// Names many commands share, each kept once.
#[derive(Debug, Default)]
pub struct Names(HashSet<Arc<str>>);

impl Names {
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.get(name) {
            return known.clone();
        }
        let name: Arc<str> = Arc::from(name);
        // Bounded: names are topics, teams and replay runs, but a bad producer could send any.
        if self.0.len() < 10_000 {
            self.0.insert(name.clone());
        }
        name
    }
}

/// One held command's event: what its outcome needs.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub event_id: CompactId,
    /// `None` when it equals the event id.
    correlation_id: Option<CompactId>,
    source_topic: Arc<str>,
    source_partition: i32,
    source_offset: i64,
    source_key: Option<Box<str>>,
    pub team_id: Arc<str>,
    pub object_type: HubSpotObjectType,
    pub event_time: i64,
    /// Where the command was read (commands or replay topic).
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    /// The replay run that copied it, if any.
    pub run: Option<Arc<str>>,
    /// The dead letter it was redriven from, if any.
    redrive_of: Option<Box<str>>,
}

impl Receipt {
    pub fn new(
        command: &HubSpotCommand,
        lineage: &Lineage,
        position: &Position,
        names: &mut Names,
    ) -> Self {
        let event_id = CompactId::new(&command.event_id);
        let correlation_id = (command.correlation_id != command.event_id)
            .then(|| CompactId::new(&command.correlation_id));
        Receipt {
            event_id,
            correlation_id,
            source_topic: names.get(&command.source.topic),
            source_partition: command.source.partition,
            source_offset: command.source.offset,
            source_key: command.source.key.as_deref().map(Box::from),
            team_id: names.get(&command.team_id),
            object_type: command.object_type,
            event_time: command.event_time,
            topic: names.get(&position.topic),
            partition: position.partition,
            offset: position.offset,
            run: lineage.run().map(|run| names.get(run)),
            redrive_of: lineage.redrive_of.as_deref().map(Box::from),
        }
    }

    pub fn event_id(&self) -> String {
        self.event_id.to_text()
    }

    /// Where the command was read.
    pub fn position(&self) -> Position {
        Position::new(self.topic.to_string(), self.partition, self.offset)
    }

    /// The key its event's outcome is remembered by: `{run}:{event id}` when replayed.
    pub fn processed_key(&self) -> String {
        lineage::processed_key_of(self.run.as_deref(), &self.event_id()).into_owned()
    }

    /// The outcome's stage: `sink`, or `sink replay:{run}`.
    pub fn stage_label(&self, stage: &str) -> String {
        lineage::stage_label_of(self.run.as_deref(), stage)
    }

    /// The event's outcome, `record` naming the record as upstream knows it.
    pub fn outcome(
        &self,
        verdict: &Verdict,
        stage: &str,
        record: &str,
        now_ms: i64,
    ) -> SyncOutcome {
        let event_id = self.event_id();
        SyncOutcome {
            correlation_id: self
                .correlation_id
                .as_ref()
                .map_or_else(|| event_id.clone(), CompactId::to_text),
            event_id,
            status: verdict.status,
            reason_code: verdict.reason_code.clone(),
            reason: verdict.reason.clone(),
            hubspot_object_type: Some(self.object_type),
            hubspot_id: verdict.hubspot_id.clone(),
            source_topic: self.source_topic.to_string(),
            source_partition: self.source_partition,
            source_offset: self.source_offset,
            source_key: self.source_key.as_deref().map(str::to_string),
            team_id: self.team_id.to_string(),
            record: Some(record.to_string()),
            event_time: self.event_time,
            processed_time: now_ms,
            attempts: verdict.attempts,
            stage: self.stage_label(stage),
            missing_fields: verdict.missing_fields.clone(),
            redrive_of: self.redrive_of.as_deref().map(str::to_string),
        }
    }
}

/// One command held for its record's next write.
#[derive(Debug, Clone)]
pub struct Member {
    pub receipt: Receipt,
    /// The command's message, kept for a live command's possible dead letter; `None` for a
    /// replayed one, read again by its position when needed.
    pub message: Option<Box<Original>>,
}

impl Member {
    /// Keeps `message` only for a live command.
    pub fn new(receipt: Receipt, message: Original) -> Self {
        let message = receipt.run.is_none().then(|| Box::new(message));
        Member { receipt, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_schemas::examples;

    #[test]
    fn ids_keep_their_exact_text() {
        for id in [
            "7d2f7a4e-1c2b-4d3e-9f10-123456789abc",
            "7D2F7A4E-1C2B-4D3E-9F10-123456789ABC",
            "7d2f7a4e1c2b4d3e9f10123456789abc",
            "evt-42",
            "",
        ] {
            assert_eq!(CompactId::new(id).to_text(), id);
        }
        assert!(matches!(
            CompactId::new("7d2f7a4e-1c2b-4d3e-9f10-123456789abc"),
            CompactId::Uuid(_)
        ));
    }

    #[test]
    fn a_receipt_gives_the_outcome_the_whole_command_gives() {
        let mut command = examples::hubspot_command();
        command.correlation_id = "corr-1".into();
        let position = Position::new("hubsync.commands", 2, 77);
        for lineage in [
            Lineage::default(),
            Lineage::of_headers(
                [
                    (lineage::REPLAY_RUN, Some(&b"backfill-1"[..])),
                    (lineage::REPLAY_OF, Some(&b"hubsync.commands/0/5"[..])),
                    (lineage::REDRIVE_OF, Some(&b"hubsync.dlq/0/9"[..])),
                ]
                .into_iter(),
            ),
        ] {
            let receipt = Receipt::new(&command, &lineage, &position, &mut Names::default());
            let verdict = Verdict::created("101");
            let whole = lineage.stamp(crate::outcomes::for_command(
                &command,
                &verdict,
                &lineage.stage_label("sink"),
                5,
            ));
            let kept = receipt.outcome(&verdict, "sink", &command.identity.value, 5);
            assert_eq!(kept, whole);
            assert_eq!(receipt.position(), position);
            let member = Member::new(receipt.clone(), Original::default());
            assert_eq!(
                member.message.is_some(),
                lineage.replay.is_none(),
                "only a live command keeps its message"
            );
            assert_eq!(
                receipt.processed_key(),
                lineage.processed_key(&command.event_id)
            );
        }
    }
}
