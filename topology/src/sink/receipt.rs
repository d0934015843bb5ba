//! What the sink keeps of a command once its values are merged into its record: the receipt of
//! its event, enough for its outcome; the message itself only for live commands.
//!
//! A replay may hold a million commands at once, so a held command must cost little: ids that
//! are UUIDs are kept as their 16 bytes, the names many commands share (topics, teams, replay
//! runs) once each, a source key once per record that shares it, and a replayed command's message not at all: a dead letter, the only thing
//! that needs it, reads it again from Kafka by its position ([`super::reread`]).
//!
//! ```text
//! command (about 2 KiB with its message) -> Receipt { event 16 B, source topic/partition/offset/key,
//!   team, event time, position on the commands topic, replay run } (96 B and a shared key)
//! ```

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use hubsync_schemas::{HubSpotCommand, HubSpotObjectType, SourcePosition, SyncOutcome};

use crate::lineage::{self, Lineage};
use crate::outcomes::{Original, Verdict};
use crate::position::Position;

/// A canonical UUID id as its 16 bytes: only the form that prints back to the same text.
fn compact_uuid(id: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::try_parse(id)
        .ok()
        .filter(|uuid| uuid.hyphenated().to_string() == id)
}

/// What many commands share: where they came from and were read, their team, their run.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Shared {
    source_topic: Box<str>,
    team_id: Box<str>,
    topic: Box<str>,
    run: Option<Box<str>>,
}

/// The [`Shared`] parts of held commands, each kept once.
#[derive(Debug, Default)]
pub struct Names {
    known: HashMap<u64, Vec<Arc<Shared>>>,
    hasher: std::collections::hash_map::RandomState,
    count: usize,
    teams: std::collections::HashSet<Arc<str>>,
}

impl Names {
    fn get(
        &mut self,
        source_topic: &str,
        team_id: &str,
        topic: &str,
        run: Option<&str>,
    ) -> Arc<Shared> {
        let hash = self.hasher.hash_one((source_topic, team_id, topic, run));
        let same = |shared: &Arc<Shared>| {
            &*shared.source_topic == source_topic
                && &*shared.team_id == team_id
                && &*shared.topic == topic
                && shared.run.as_deref() == run
        };
        if let Some(known) = self
            .known
            .get(&hash)
            .and_then(|all| all.iter().find(|s| same(s)))
        {
            return known.clone();
        }
        let shared = Arc::new(Shared {
            source_topic: source_topic.into(),
            team_id: team_id.into(),
            topic: topic.into(),
            run: run.map(Box::from),
        });
        // Bounded: these are topics, teams and runs, but a bad producer could send any.
        if self.count < 100_000 {
            self.known.entry(hash).or_default().push(shared.clone());
            self.count += 1;
        }
        shared
    }

    /// A team id, kept once.
    pub fn team(&mut self, team_id: &str) -> Arc<str> {
        if let Some(known) = self.teams.get(team_id) {
            return known.clone();
        }
        let team: Arc<str> = Arc::from(team_id);
        if self.teams.len() < 100_000 {
            self.teams.insert(team.clone());
        }
        team
    }
}

/// What few commands carry: an event id that is not a UUID, a correlation id other than their
/// source position, a redrive mark.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rare {
    event_id: Option<Box<str>>,
    correlation_id: Option<Box<str>>,
    redrive_of: Option<Box<str>>,
}

/// One held command's event: what its outcome needs.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The event id when it is a UUID, else it is in `rare`.
    event_uuid: Option<uuid::Uuid>,
    shared: Arc<Shared>,
    source_offset: i64,
    /// Where the command was read (commands or replay topic).
    offset: i64,
    pub event_time: i64,
    source_partition: i32,
    partition: i32,
    /// Shared with the record's other members that have the same key ([`Receipt::share_key`]).
    source_key: Option<Arc<str>>,
    rare: Option<Box<Rare>>,
    pub object_type: HubSpotObjectType,
}

impl Receipt {
    pub fn new(
        command: &HubSpotCommand,
        lineage: &Lineage,
        position: &Position,
        names: &mut Names,
    ) -> Self {
        let derived = hubsync_processors::command::correlation_id(&command.source);
        let event_uuid = compact_uuid(&command.event_id);
        let rare = Rare {
            event_id: event_uuid
                .is_none()
                .then(|| command.event_id.as_str().into()),
            correlation_id: (command.correlation_id != derived)
                .then(|| command.correlation_id.as_str().into()),
            redrive_of: lineage.redrive_of.as_deref().map(Box::from),
        };
        Receipt {
            event_uuid,
            shared: names.get(
                &command.source.topic,
                &command.team_id,
                &position.topic,
                lineage.run(),
            ),
            source_offset: command.source.offset,
            offset: position.offset,
            event_time: command.event_time,
            source_partition: command.source.partition,
            partition: position.partition,
            source_key: command.source.key.as_deref().map(Arc::from),
            rare: (rare.event_id.is_some()
                || rare.correlation_id.is_some()
                || rare.redrive_of.is_some())
            .then(|| Box::new(rare)),
            object_type: command.object_type,
        }
    }

    /// Keeps one copy of a source key the record's commands share (one record's events mostly
    /// come from one upstream key).
    pub fn share_key(&mut self, other: &Receipt) {
        if let (Some(mine), Some(theirs)) = (&self.source_key, &other.source_key)
            && mine == theirs
        {
            self.source_key = Some(theirs.clone());
        }
    }

    pub fn event_id(&self) -> String {
        match (&self.event_uuid, self.rare.as_deref()) {
            (Some(uuid), _) => uuid.hyphenated().to_string(),
            (None, Some(rare)) => rare.event_id.as_deref().unwrap_or_default().to_string(),
            (None, None) => String::new(),
        }
    }

    pub fn team_id(&self) -> &str {
        &self.shared.team_id
    }

    /// The replay run that copied it, if any.
    pub fn run(&self) -> Option<&str> {
        self.shared.run.as_deref()
    }

    /// Where the command was read.
    pub fn position(&self) -> Position {
        Position::new(&*self.shared.topic, self.partition, self.offset)
    }

    /// The key its event's outcome is remembered by: `{run}:{event id}` when replayed.
    pub fn processed_key(&self) -> String {
        lineage::processed_key_of(self.run(), &self.event_id()).into_owned()
    }

    /// The outcome's stage: `sink`, or `sink replay:{run}`.
    pub fn stage_label(&self, stage: &str) -> String {
        lineage::stage_label_of(self.run(), stage)
    }

    /// The event's outcome, `record` naming the record as upstream knows it.
    pub fn outcome(
        &self,
        verdict: &Verdict,
        stage: &str,
        record: &str,
        now_ms: i64,
    ) -> SyncOutcome {
        let source = SourcePosition {
            topic: self.shared.source_topic.to_string(),
            partition: self.source_partition,
            offset: self.source_offset,
            key: self.source_key.as_deref().map(str::to_string),
        };
        let rare = self.rare.as_deref();
        SyncOutcome {
            event_id: self.event_id(),
            correlation_id: match rare.and_then(|r| r.correlation_id.as_deref()) {
                Some(id) => id.to_string(),
                None => hubsync_processors::command::correlation_id(&source),
            },
            status: verdict.status,
            reason_code: verdict.reason_code.clone(),
            reason: verdict.reason.clone(),
            hubspot_object_type: Some(self.object_type),
            hubspot_id: verdict.hubspot_id.clone(),
            source_topic: source.topic,
            source_partition: source.partition,
            source_offset: source.offset,
            source_key: source.key,
            team_id: self.team_id().to_string(),
            record: Some(record.to_string()),
            event_time: self.event_time,
            processed_time: now_ms,
            attempts: verdict.attempts,
            stage: self.stage_label(stage),
            missing_fields: verdict.missing_fields.clone(),
            redrive_of: rare
                .and_then(|r| r.redrive_of.as_deref())
                .map(str::to_string),
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
    /// Keeps the message only for a live command: a replayed one's is never made (not even
    /// copied out of Kafka's buffer).
    pub fn new(receipt: Receipt, message: impl FnOnce() -> Original) -> Self {
        let message = receipt.run().is_none().then(|| Box::new(message()));
        Member { receipt, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_schemas::examples;

    #[test]
    fn ids_keep_their_exact_text() {
        let mut command = examples::hubspot_command();
        let position = Position::new("hubsync.commands", 0, 1);
        for id in [
            "7d2f7a4e-1c2b-4d3e-9f10-123456789abc",
            "7D2F7A4E-1C2B-4D3E-9F10-123456789ABC",
            "7d2f7a4e1c2b4d3e9f10123456789abc",
            "evt-42",
            "",
        ] {
            command.event_id = id.to_string();
            let receipt = Receipt::new(
                &command,
                &Lineage::default(),
                &position,
                &mut Names::default(),
            );
            assert_eq!(receipt.event_id(), id);
        }
        assert!(compact_uuid("7d2f7a4e-1c2b-4d3e-9f10-123456789abc").is_some());
        assert!(compact_uuid("7D2F7A4E-1C2B-4D3E-9F10-123456789ABC").is_none());
    }

    #[test]
    fn a_receipt_gives_the_outcome_the_whole_command_gives() {
        let mut command = examples::hubspot_command();
        let position = Position::new("hubsync.commands", 2, 77);
        let derived = hubsync_processors::command::correlation_id(&command.source);
        for (lineage, correlation_id) in [
            (Lineage::default(), derived.as_str()),
            (Lineage::default(), "corr-1"),
            (
                Lineage::of_headers(
                    [
                        (lineage::REPLAY_RUN, Some(&b"backfill-1"[..])),
                        (lineage::REPLAY_OF, Some(&b"hubsync.commands/0/5"[..])),
                        (lineage::REDRIVE_OF, Some(&b"hubsync.dlq/0/9"[..])),
                    ]
                    .into_iter(),
                ),
                "corr-2",
            ),
        ] {
            command.correlation_id = correlation_id.to_string();
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
            let member = Member::new(receipt.clone(), Original::default);
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
#[cfg(test)]
mod size {
    /// A replay holds a million members: what each costs inline is watched here (the bench's
    /// memory figure counts the rest).
    #[test]
    fn a_held_command_stays_small() {
        assert!(
            std::mem::size_of::<super::Member>() <= 96,
            "Member is {} bytes",
            std::mem::size_of::<super::Member>()
        );
    }
}
