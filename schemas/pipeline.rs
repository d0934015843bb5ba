//! Records hubsync writes itself: `HubSpotCommand` (process stage to sink), `SyncOutcome` (one
//! final outcome per input event) and `DeadLetter` (what could not be processed).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::common::HubSpotObjectType;

/// `io.hubsync.SourcePosition`: where an input record was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record key as UTF-8, if any.
    pub key: Option<String>,
}

avro_enum! {
    /// `io.hubsync.CommandAction`: how the sink writes a command. The sink dead-letters
    /// `Unknown` rather than guess.
    pub enum CommandAction {
        /// Update the record found by identity, or create it when `may_create`.
        Upsert = "UPSERT",
        /// Update the record if it exists; never create.
        UpdateOnly = "UPDATE_ONLY",
        /// Create an engagement (note, email, call, task, meeting) once per identity.
        CreateActivity = "CREATE_ACTIVITY",
    }
}

avro_enum! {
    /// `io.hubsync.IdentityKind`: what an identity value is.
    pub enum IdentityKind {
        Email = "EMAIL",
        Domain = "DOMAIN",
        HubspotId = "HUBSPOT_ID",
        SourceId = "SOURCE_ID",
        UniqueProperty = "UNIQUE_PROPERTY",
    }
}

/// `io.hubsync.Identity`: how to find one HubSpot record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    pub kind: IdentityKind,
    /// The HubSpot property matched on, e.g. `email`, `domain`, `hs_object_id`.
    pub property: String,
    pub value: String,
}

/// `io.hubsync.Association`: a link from the written record to another HubSpot record, by id or
/// by identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    pub to_object_type: HubSpotObjectType,
    pub to_hubspot_id: Option<String>,
    pub to_identity: Option<Identity>,
    /// `HUBSPOT_DEFINED` (the schema default), `USER_DEFINED` or `INTEGRATOR_DEFINED`.
    pub association_category: String,
    pub association_type_id: i32,
}

/// The association category of HubSpot's built-in association types.
pub const HUBSPOT_DEFINED: &str = "HUBSPOT_DEFINED";

/// `io.hubsync.HubSpotCommand`, the value of `hubsync.commands` (keyed by target identity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubSpotCommand {
    /// A UUID in its lowercase hyphenated form, derived from the input event.
    pub command_id: String,
    pub event_id: String,
    pub correlation_id: String,
    pub team_id: String,
    pub source: SourcePosition,
    pub event_time: i64,
    pub processed_time: i64,
    pub object_type: HubSpotObjectType,
    pub action: CommandAction,
    pub identity: Identity,
    /// Values to write; `None` or an empty string clears the property.
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
    /// Defaults applied only when the command creates the record.
    #[serde(default)]
    pub create_only_properties: BTreeMap<String, String>,
    /// Keys of `properties` written only when HubSpot's value is empty.
    #[serde(default)]
    pub fill_if_empty: Vec<String>,
    /// The mandatory-property gate passed: the sink may create the record.
    #[serde(default)]
    pub may_create: bool,
    /// Under `Upsert` with `may_create` false: the empty mandatory fields, by upstream name.
    #[serde(default)]
    pub missing_for_create: Vec<String>,
    #[serde(default)]
    pub associations: Vec<Association>,
}

avro_enum! {
    /// `io.hubsync.OutcomeStatus`: what happened to one input event.
    pub enum OutcomeStatus {
        Created = "CREATED",
        Updated = "UPDATED",
        /// Nothing to write: HubSpot already held these values.
        Unchanged = "UNCHANGED",
        /// A rule said not to sync it (e.g. no identifier, activity type disabled).
        Skipped = "SKIPPED",
        /// Held back until its mandatory fields arrive; re-evaluated on its next change.
        Parked = "PARKED",
        /// Failed for now; will be retried.
        Failed = "FAILED",
        DeadLettered = "DEAD_LETTERED",
    }
}

/// `io.hubsync.SyncOutcome`, the value of `hubsync.outcomes` (keyed by source key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutcome {
    pub event_id: String,
    pub status: OutcomeStatus,
    /// Stable machine-readable reason, upper-case, e.g. `PARKED_MISSING_FIELDS`.
    pub reason_code: String,
    /// What happened and what to fix, for people.
    pub reason: String,
    pub hubspot_object_type: Option<HubSpotObjectType>,
    pub hubspot_id: Option<String>,
    pub correlation_id: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub source_key: Option<String>,
    pub team_id: String,
    /// The identity the outcome is about (an email, a domain...), for searching the log.
    pub record: Option<String>,
    pub event_time: i64,
    pub processed_time: i64,
    pub attempts: i32,
    /// The stage that decided, e.g. `process` or `sink`.
    pub stage: String,
    #[serde(default)]
    pub missing_fields: Vec<String>,
    /// The event id or dead-letter reference a redrive re-drove.
    pub redrive_of: Option<String>,
}

/// `io.hubsync.KafkaHeader`: one header of the original record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaHeader {
    pub key: String,
    #[serde(with = "apache_avro::serde::bytes_opt")]
    pub value: Option<Vec<u8>>,
}

avro_enum! {
    /// `io.hubsync.ErrorClass`: whose fault a failure is, which decides what to do next.
    pub enum ErrorClass {
        /// The record is bad: fix it upstream, then re-drive.
        Data = "DATA",
        /// The rules name something HubSpot lacks: fix the config, then re-drive.
        Config = "CONFIG",
        /// HubSpot refused the token.
        Auth = "AUTH",
        /// HubSpot kept failing past the retry budget; re-drive when it recovers.
        RetriesExhausted = "RETRIES_EXHAUSTED",
        /// A hubsync bug.
        Internal = "INTERNAL",
    }
}

/// `io.hubsync.ErrorEnvelope`: why a record was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub class: ErrorClass,
    /// Stable machine-readable code, e.g. `undecodable`.
    pub code: String,
    pub message: String,
    pub hubspot_category: Option<String>,
    pub hubspot_correlation_id: Option<String>,
    pub stage: String,
    pub attempts: i32,
}

/// `io.hubsync.DeadLetter`, the value of `hubsync.dlq`: the original record, unchanged, and the
/// error envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event_id: Option<String>,
    pub original_topic: String,
    pub original_partition: i32,
    pub original_offset: i64,
    pub original_timestamp: Option<i64>,
    #[serde(with = "apache_avro::serde::bytes_opt")]
    pub original_key: Option<Vec<u8>>,
    #[serde(with = "apache_avro::serde::bytes_opt")]
    pub original_value: Option<Vec<u8>>,
    #[serde(default)]
    pub original_headers: Vec<KafkaHeader>,
    pub error: ErrorEnvelope,
    pub failed_at: i64,
    pub team_id: Option<String>,
}
