//! The reason codes hubsync writes in `SyncOutcome.reason_code` and `ErrorEnvelope.code`: one
//! enum, so a code is spelt once, and upstream services, dashboards and `hubsync logs --reason`
//! can rely on the list. HubSpot's own codes for a value it refused (a property error's `code`,
//! or its error `category`) travel as HubSpot wrote them instead; [`ReasonCode::parse`] tells
//! the two apart.
//!
//! ```text
//! ReasonCode::ParkedMissingFields.as_str() == "PARKED_MISSING_FIELDS"
//! ReasonCode::parse("NOT_CREATED") == Some(ReasonCode::NotCreated)
//! ```

use std::fmt;

macro_rules! reason_codes {
    ($( $(#[$meta:meta])* $variant:ident = $symbol:literal, )+) => {
        /// Why an event ended as it did.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ReasonCode {
            $( $(#[$meta])* $variant, )+
        }

        impl ReasonCode {
            /// Every code, in this file's order.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$variant,)+];

            /// The upper-case code as it travels on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( ReasonCode::$variant => $symbol, )+
                }
            }

            /// The code for its wire string; `None` for a code hubsync does not write itself
            /// (one of HubSpot's).
            pub fn parse(code: &str) -> Option<Self> {
                match code {
                    $( $symbol => Some(ReasonCode::$variant), )+
                    _ => None,
                }
            }
        }
    };
}

reason_codes! {
    // Written: the status is the code.
    /// Created in HubSpot.
    Created = "CREATED",
    /// Written over an existing HubSpot record.
    Updated = "UPDATED",
    /// HubSpot holds these values already; nothing sent.
    Unchanged = "UNCHANGED",

    // Skipped by a rule (process stage).
    /// A deletion upstream; hubsync does not delete in HubSpot.
    DeleteNotSynced = "DELETE_NOT_SYNCED",
    /// The campaign's push-to-CRM switch is off.
    CampaignPushDisabled = "CAMPAIGN_PUSH_DISABLED",
    /// A contact with none of email, LinkedIn URL, company domain.
    NoIdentifier = "NO_IDENTIFIER",
    /// Nothing the mapping writes changed.
    NoMappedChange = "NO_MAPPED_CHANGE",
    /// The activity type is switched off in the team's rules.
    ActivityTypeDisabled = "ACTIVITY_TYPE_DISABLED",
    /// An unsubscribe an operator made (a block list), not the lead.
    UnsubscribeNotSelfInitiated = "UNSUBSCRIBE_NOT_SELF_INITIATED",
    /// An activity whose contact has no identity HubSpot could find it by.
    NoContactIdentity = "NO_CONTACT_IDENTITY",
    /// The team's integration is paused or HubSpot is disconnected (`[team] status`).
    TeamNotConnected = "TEAM_NOT_CONNECTED",
    // Skipped by the sink.
    /// Not in HubSpot, and the create trigger does not create it from this change.
    NotCreated = "NOT_CREATED",
    /// Deleted in HubSpot (learned from its webhooks or polling): not written again until it is
    /// restored there; a privacy (GDPR) deletion never.
    DeletedInHubspot = "DELETED_IN_HUBSPOT",

    // Parked: waits for a change or a rules change.
    /// Not in HubSpot and mandatory fields are empty.
    ParkedMissingFields = "PARKED_MISSING_FIELDS",
    /// An activity or deal whose contact is not in HubSpot after `stages.sink.contact_wait`.
    ParkedContactMissing = "PARKED_CONTACT_MISSING",

    // A record the rules refuse (process stage).
    /// The rules map to a property the portal lacks.
    PropertyMissing = "PROPERTY_MISSING",
    /// The rules map to a property HubSpot computes.
    ReadOnlyProperty = "READ_ONLY_PROPERTY",
    /// A value that is none of the enumeration's options.
    InvalidOption = "INVALID_OPTION",
    InvalidNumber = "INVALID_NUMBER",
    InvalidBool = "INVALID_BOOL",
    InvalidDate = "INVALID_DATE",
    InvalidDatetime = "INVALID_DATETIME",
    InvalidEmail = "INVALID_EMAIL",
    InvalidDomain = "INVALID_DOMAIN",
    /// A value a rule needs is absent.
    MissingValue = "MISSING_VALUE",
    /// A refused record whose problems name no code.
    InvalidRecord = "INVALID_RECORD",

    // Bytes that are no event (process and sink stages).
    /// Not in the Confluent wire format (magic byte and schema id).
    NotConfluentFramed = "NOT_CONFLUENT_FRAMED",
    /// The registry has no schema under the message's id.
    UnknownSchemaId = "UNKNOWN_SCHEMA_ID",
    /// The writer's schema cannot be read as hubsync's.
    IncompatibleSchema = "INCOMPATIBLE_SCHEMA",
    /// The bytes do not follow their schema.
    MalformedAvro = "MALFORMED_AVRO",
    /// The registry did not answer while the writer schema was needed.
    RegistryUnavailable = "REGISTRY_UNAVAILABLE",
    /// The registry refused hubsync's own schema.
    RegistryRejected = "REGISTRY_REJECTED",
    /// A schema needed without the registry, and not known yet.
    SchemaNotCached = "SCHEMA_NOT_CACHED",
    /// A topic no rules read.
    UnexpectedTopic = "UNEXPECTED_TOPIC",
    /// An event on the HubSpot events topic that is not one of HubSpot's v3 events (inbound stage).
    MalformedHubSpotEvent = "MALFORMED_HUBSPOT_EVENT",
    /// A record on the replay topic without its run's marks.
    ReplayUnmarked = "REPLAY_UNMARKED",
    /// hubsync could not encode what it meant to write.
    EncodeFailed = "ENCODE_FAILED",

    // What HubSpot made of a write (sink).
    /// HubSpot kept failing past the attempts allowed.
    RetriesExhausted = "RETRIES_EXHAUSTED",
    /// A unique value belongs to another HubSpot record.
    Conflict = "CONFLICT",
    /// The HubSpot record named by id does not exist (or not any more).
    ObjectNotFound = "OBJECT_NOT_FOUND",
    /// HubSpot does not know the path: the base URL or the object type is wrong.
    HubSpotRouteNotFound = "HUBSPOT_ROUTE_NOT_FOUND",
    /// A create was interrupted and the record cannot be looked up to know whether it happened.
    UncertainCreate = "UNCERTAIN_CREATE",
    /// An object type the sink does not write.
    UnsupportedObjectType = "UNSUPPORTED_OBJECT_TYPE",
    /// HubSpot answered a batch without a result for one of its inputs.
    NoAnswerForInput = "NO_ANSWER_FOR_INPUT",
    /// hubsync built a request HubSpot would refuse (a hubsync bug).
    InvalidRequest = "INVALID_REQUEST",
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_is_upper_snake_case_unique_and_parses_back() {
        let mut seen = HashSet::new();
        for code in ReasonCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{text}"
            );
            assert_eq!(ReasonCode::parse(text), Some(*code));
        }
        assert_eq!(ReasonCode::parse("VALIDATION_ERROR"), None, "HubSpot's own");
    }
}
