//! Building the records every event ends in: a [`SyncOutcome`] on the outcomes topic, and for what
//! cannot be written a [`DeadLetter`] carrying the original message and the reason. Pure.

use hubsync_schemas::{
    DeadLetter, ErrorClass, ErrorEnvelope, HubSpotCommand, HubSpotObjectType, KafkaHeader,
    OutcomeStatus, ReasonCode, SyncOutcome,
};

use crate::state::RememberedOutcome;

/// Milliseconds since the Unix epoch, the unit of every time in hubsync's records.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What happened to one event, before it is dressed as a [`SyncOutcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: OutcomeStatus,
    /// Stable, upper-case, for filtering (`CREATED`, `PARKED_MISSING_FIELDS`...).
    pub reason_code: String,
    /// For people: what happened and, when something is wrong, what to do.
    pub reason: String,
    pub hubspot_id: Option<String>,
    pub missing_fields: Vec<String>,
    pub attempts: i32,
}

impl Verdict {
    fn new(status: OutcomeStatus, code: ReasonCode, reason: impl Into<String>) -> Self {
        Self::with_code(status, code.as_str(), reason)
    }

    fn with_code(status: OutcomeStatus, code: &str, reason: impl Into<String>) -> Self {
        Verdict {
            status,
            reason_code: code.to_string(),
            reason: reason.into(),
            hubspot_id: None,
            missing_fields: Vec::new(),
            attempts: 1,
        }
    }

    pub fn created(hubspot_id: &str) -> Self {
        Self::new(
            OutcomeStatus::Created,
            ReasonCode::Created,
            "created in HubSpot",
        )
        .with_id(hubspot_id)
    }

    pub fn updated(hubspot_id: &str) -> Self {
        Self::new(
            OutcomeStatus::Updated,
            ReasonCode::Updated,
            "updated in HubSpot",
        )
        .with_id(hubspot_id)
    }

    pub fn unchanged(hubspot_id: &str) -> Self {
        Self::new(
            OutcomeStatus::Unchanged,
            ReasonCode::Unchanged,
            "HubSpot already holds these values; nothing was written",
        )
        .with_id(hubspot_id)
    }

    /// A record to create that HubSpot already holds, found by hubsync's own id property: made
    /// by an earlier sink whose state is gone.
    pub fn found_existing(hubspot_id: &str) -> Self {
        Self::new(
            OutcomeStatus::Unchanged,
            ReasonCode::Unchanged,
            "already in HubSpot, found by hubsync's id on it (created before this sink's state began); not created again",
        )
        .with_id(hubspot_id)
    }

    pub fn parked(missing: Vec<String>) -> Self {
        let mut verdict = Self::new(
            OutcomeStatus::Parked,
            ReasonCode::ParkedMissingFields,
            format!(
                "not in HubSpot yet and may not be created before these fields are filled: {}",
                missing.join(", ")
            ),
        );
        verdict.missing_fields = missing;
        verdict
    }

    /// An activity or deal whose contact never reached HubSpot within the wait.
    pub fn contact_missing(contact: &str, waited: std::time::Duration) -> Self {
        let mut verdict = Self::new(
            OutcomeStatus::Parked,
            ReasonCode::ParkedContactMissing,
            format!(
                "its contact {contact} is not in HubSpot after waiting {}; it is written when \
                 replayed once the contact exists",
                humantime::format_duration(std::time::Duration::from_secs(waited.as_secs()))
            ),
        );
        verdict.missing_fields = vec![contact.to_string()];
        verdict
    }

    pub fn skipped(code: ReasonCode, reason: impl Into<String>) -> Self {
        Self::new(OutcomeStatus::Skipped, code, reason)
    }

    /// The outcome of a dead-lettered event: its failure's code and message.
    pub fn dead_lettered(failure: &Failure) -> Self {
        Self::with_code(
            OutcomeStatus::DeadLettered,
            &failure.code,
            format!(
                "dead-lettered ({}): {}",
                failure.class.as_str(),
                failure.message
            ),
        )
        .with_attempts(failure.attempts)
    }

    pub fn with_id(mut self, hubspot_id: &str) -> Self {
        self.hubspot_id = Some(hubspot_id.to_string());
        self
    }

    pub fn with_attempts(mut self, attempts: i32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    pub fn remember(&self, at_ms: i64) -> RememberedOutcome {
        RememberedOutcome {
            status: self.status.as_str().to_string(),
            reason_code: self.reason_code.clone(),
            reason: self.reason.clone(),
            hubspot_id: self.hubspot_id.clone(),
            attempts: self.attempts,
            missing_fields: self.missing_fields.clone(),
            at_ms,
            answered: None,
        }
    }

    pub fn from_remembered(remembered: &RememberedOutcome) -> Self {
        Verdict {
            status: OutcomeStatus::from_symbol(&remembered.status),
            reason_code: remembered.reason_code.clone(),
            reason: remembered.reason.clone(),
            hubspot_id: remembered.hubspot_id.clone(),
            missing_fields: remembered.missing_fields.clone(),
            attempts: remembered.attempts,
        }
    }
}

/// The outcome of the event behind a command.
pub fn for_command(
    command: &HubSpotCommand,
    verdict: &Verdict,
    stage: &str,
    now_ms: i64,
) -> SyncOutcome {
    SyncOutcome {
        event_id: command.event_id.clone(),
        status: verdict.status,
        reason_code: verdict.reason_code.clone(),
        reason: verdict.reason.clone(),
        hubspot_object_type: Some(command.object_type),
        hubspot_id: verdict.hubspot_id.clone(),
        correlation_id: command.correlation_id.clone(),
        source_topic: command.source.topic.clone(),
        source_partition: command.source.partition,
        source_offset: command.source.offset,
        source_key: command.source.key.clone(),
        team_id: command.team_id.clone(),
        record: Some(command.identity.value.clone()),
        event_time: command.event_time,
        processed_time: now_ms,
        attempts: verdict.attempts,
        stage: stage.to_string(),
        missing_fields: verdict.missing_fields.clone(),
        redrive_of: None,
    }
}

/// Where an upstream event was read, for outcomes of events that never became commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRef {
    pub event_id: String,
    pub correlation_id: String,
    pub team_id: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub event_time: i64,
    pub object_type: Option<HubSpotObjectType>,
    pub record: Option<String>,
}

/// The outcome of an event decided by the process stage (skipped, or dead-lettered there).
pub fn for_event(event: &EventRef, verdict: &Verdict, stage: &str, now_ms: i64) -> SyncOutcome {
    SyncOutcome {
        event_id: event.event_id.clone(),
        status: verdict.status,
        reason_code: verdict.reason_code.clone(),
        reason: verdict.reason.clone(),
        hubspot_object_type: event.object_type,
        hubspot_id: verdict.hubspot_id.clone(),
        correlation_id: event.correlation_id.clone(),
        source_topic: event.topic.clone(),
        source_partition: event.partition,
        source_offset: event.offset,
        source_key: event.key.clone(),
        team_id: event.team_id.clone(),
        record: event.record.clone(),
        event_time: event.event_time,
        processed_time: now_ms,
        attempts: verdict.attempts,
        stage: stage.to_string(),
        missing_fields: verdict.missing_fields.clone(),
        redrive_of: None,
    }
}

/// The message a dead letter preserves, as it was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Original {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Original {
    /// Where the message was read.
    pub fn position(&self) -> crate::position::Position {
        crate::position::Position::new(self.topic.clone(), self.partition, self.offset)
    }
}

/// Why something is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: ErrorClass,
    /// A [`ReasonCode`], or HubSpot's own code for a value it refused.
    pub code: String,
    pub message: String,
    pub hubspot_category: Option<String>,
    pub hubspot_correlation_id: Option<String>,
    pub attempts: i32,
}

impl Failure {
    pub fn new(class: ErrorClass, code: ReasonCode, message: impl Into<String>) -> Self {
        Self::with_code(class, code.as_str(), message)
    }

    /// A failure under HubSpot's own code (a property error's `code`, or its `category`).
    pub fn hubspot(class: ErrorClass, code: &str, message: impl Into<String>) -> Self {
        Self::with_code(class, code, message)
    }

    fn with_code(class: ErrorClass, code: &str, message: impl Into<String>) -> Self {
        Failure {
            class,
            code: code.to_string(),
            message: message.into(),
            hubspot_category: None,
            hubspot_correlation_id: None,
            attempts: 1,
        }
    }
}

pub fn dead_letter(
    original: &Original,
    event_id: Option<String>,
    team_id: Option<String>,
    failure: &Failure,
    stage: &str,
    now_ms: i64,
) -> DeadLetter {
    DeadLetter {
        event_id,
        original_topic: original.topic.clone(),
        original_partition: original.partition,
        original_offset: original.offset,
        original_timestamp: original.timestamp,
        original_key: original.key.clone(),
        original_value: original.value.clone(),
        original_headers: original
            .headers
            .iter()
            .map(|(key, value)| KafkaHeader {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        error: ErrorEnvelope {
            class: failure.class,
            code: failure.code.clone(),
            message: failure.message.clone(),
            hubspot_category: failure.hubspot_category.clone(),
            hubspot_correlation_id: failure.hubspot_correlation_id.clone(),
            stage: stage.to_string(),
            attempts: failure.attempts,
        },
        failed_at: now_ms,
        team_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_schemas::examples;

    #[test]
    fn a_command_outcome_points_at_the_upstream_event() {
        let command = examples::hubspot_command();
        let outcome = for_command(&command, &Verdict::created("901"), "sink", 42);
        assert_eq!(outcome.event_id, command.event_id);
        assert_eq!(outcome.source_topic, command.source.topic);
        assert_eq!(outcome.source_offset, command.source.offset);
        assert_eq!(outcome.hubspot_id.as_deref(), Some("901"));
        assert_eq!(outcome.status, OutcomeStatus::Created);
        assert_eq!(
            outcome.record.as_deref(),
            Some(command.identity.value.as_str())
        );
        assert_eq!(outcome.processed_time, 42);
    }

    #[test]
    fn remembered_verdicts_come_back_identical() {
        let verdict = Verdict::parked(vec!["last_name".into()]).with_attempts(3);
        assert_eq!(Verdict::from_remembered(&verdict.remember(7)), verdict);
        assert!(verdict.reason.contains("last_name"));
    }

    #[test]
    fn dead_letters_keep_the_original_bytes_and_reason() {
        let original = Original {
            topic: "crm.contact.changes".into(),
            partition: 1,
            offset: 9,
            key: Some(b"c-1".to_vec()),
            value: Some(vec![0, 0, 0, 0, 1, 2]),
            headers: vec![("trace".into(), Some(b"x".to_vec()))],
            ..Original::default()
        };
        let failure = Failure::new(
            ErrorClass::Data,
            ReasonCode::MalformedAvro,
            "bytes do not decode",
        );
        let letter = dead_letter(&original, None, Some("acme".into()), &failure, "process", 5);
        assert_eq!(letter.original_value, original.value);
        assert_eq!(letter.original_headers[0].key, "trace");
        assert_eq!(letter.error.code, "MALFORMED_AVRO");
        assert_eq!(letter.error.stage, "process");
    }
}
