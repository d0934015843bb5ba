//! A decided [`CommandDraft`] plus where its event came from, as the `HubSpotCommand` record the
//! process stage writes to `hubsync.commands`; the topology layer only does the I/O.
//!
//! ```text
//! CommandDraft { CONTACT, UPSERT, email:jordan.lee@northwind.example, properties { .. } }
//!   + Envelope { event_id: "0b9e6f0e-..", source: crm.contact.changes/3/18844, .. }
//!   -> HubSpotCommand { command_id: "<UUID v5 of the event id and object type>",
//!        correlation_id: "crm.contact.changes/3/18844", identity, properties, .. }
//! ```
//!
//! The command id is derived from the event id and the object type, so a replay of the same
//! event yields the same id and the sink can drop the duplicate.
//!
//! A company's `match_name` travels as its `name` property written only if empty, so the sink
//! has the name to search by and a company it creates gets one. `missing_for_create` travels
//! with the command, so the sink can name the empty fields when it parks a record.
//!
//! An activity event that triggers a deal makes two commands. The activity's carries the event's
//! id and answers for the event (its outcome is the event's outcome); the deal's carries the
//! derived id `{event_id}:deal` ([`Envelope::for_deal`]), so its outcome is recorded under that
//! id and never counts as a second outcome of the event.
//!
//! The process stage keys every command by its team's HubSpot portal, so one sink owns a portal
//! (its budget and state) at a time and one record's commands stay in one partition, in order.

use hubsync_schemas::{
    ActivityRecorded, CompanyChanged, ContactChanged, HubSpotCommand, HubSpotObjectType,
    SourcePosition,
};
use uuid::Uuid;

use crate::decision::CommandDraft;

/// Appended to an activity event's id to make the event id of the deal command it triggers.
pub const DEAL_EVENT_SUFFIX: &str = ":deal";

/// The namespace of command ids. Changing it would give replayed events new command ids.
const COMMAND_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_3c2e_8d4a_4f0b_9e57_2c81_d3a4_f690);

/// Where and when an event was read, and how its effects are tied together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub event_id: String,
    /// Ties every command, outcome and log line of one event together; by default the source
    /// position, `topic/partition/offset`.
    pub correlation_id: String,
    pub team_id: String,
    pub source: SourcePosition,
    /// When the change happened upstream (UTC milliseconds).
    pub event_time: i64,
    /// When the process stage decided (UTC milliseconds).
    pub processed_time: i64,
}

impl Envelope {
    pub fn of_contact(event: &ContactChanged, source: SourcePosition, processed_time: i64) -> Self {
        Self::new(
            &event.event_id,
            &event.team_id,
            event.event_time,
            source,
            processed_time,
        )
    }

    pub fn of_company(event: &CompanyChanged, source: SourcePosition, processed_time: i64) -> Self {
        Self::new(
            &event.event_id,
            &event.team_id,
            event.event_time,
            source,
            processed_time,
        )
    }

    pub fn of_activity(
        event: &ActivityRecorded,
        source: SourcePosition,
        processed_time: i64,
    ) -> Self {
        Self::new(
            &event.event_id,
            &event.team_id,
            event.event_time,
            source,
            processed_time,
        )
    }

    /// The envelope of the deal command an activity triggers: the same source, times and
    /// correlation id, and the event id `{event_id}:deal`.
    pub fn for_deal(&self) -> Self {
        Self {
            event_id: format!("{}{DEAL_EVENT_SUFFIX}", self.event_id),
            ..self.clone()
        }
    }

    fn new(
        event_id: &str,
        team_id: &str,
        event_time: i64,
        source: SourcePosition,
        processed_time: i64,
    ) -> Self {
        Self {
            event_id: event_id.to_owned(),
            correlation_id: correlation_id(&source),
            team_id: team_id.to_owned(),
            source,
            event_time,
            processed_time,
        }
    }
}

/// The default correlation id of an input record: `topic/partition/offset`.
pub fn correlation_id(source: &SourcePosition) -> String {
    format!("{}/{}/{}", source.topic, source.partition, source.offset)
}

/// The command id for the command an event makes for one object type.
pub fn command_id(event_id: &str, object_type: HubSpotObjectType) -> String {
    let mut name = String::with_capacity(event_id.len() + 16);
    name.push_str(event_id);
    name.push('/');
    name.push_str(object_type.as_str());
    let id = Uuid::new_v5(&COMMAND_NAMESPACE, name.as_bytes());
    let mut text = Uuid::encode_buffer();
    id.hyphenated().encode_lower(&mut text).to_owned()
}

/// The `HubSpotCommand` record for a draft.
pub fn to_command(draft: CommandDraft, envelope: Envelope) -> HubSpotCommand {
    let CommandDraft {
        object_type,
        action,
        identity,
        mut properties,
        create_only_properties,
        mut fill_if_empty,
        may_create,
        missing_for_create,
        associations,
        match_name,
    } = draft;
    if let Some(name) = match_name
        && !properties.contains_key("name")
    {
        properties.insert("name".to_owned(), Some(name));
        fill_if_empty.push("name".to_owned());
    }
    HubSpotCommand {
        command_id: command_id(&envelope.event_id, object_type),
        event_id: envelope.event_id,
        correlation_id: envelope.correlation_id,
        team_id: envelope.team_id,
        source: envelope.source,
        event_time: envelope.event_time,
        processed_time: envelope.processed_time,
        object_type,
        action,
        identity,
        properties,
        create_only_properties,
        fill_if_empty,
        may_create,
        missing_for_create,
        associations,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hubsync_schemas::{AvroRecord, CommandAction, Identity, IdentityKind, examples};

    use super::*;

    fn source() -> SourcePosition {
        SourcePosition {
            topic: "crm.contact.changes".to_owned(),
            partition: 3,
            offset: 18_844,
            key: Some("ct_90311".to_owned()),
        }
    }

    fn draft() -> CommandDraft {
        let mut draft = CommandDraft::new(
            HubSpotObjectType::Contact,
            CommandAction::Upsert,
            Identity {
                kind: IdentityKind::Email,
                property: "email".to_owned(),
                value: "jordan.lee@northwind.example".to_owned(),
            },
        );
        draft.properties = BTreeMap::from([("jobtitle".to_owned(), Some("VP".to_owned()))]);
        draft.create_only_properties =
            BTreeMap::from([("lifecyclestage".to_owned(), "lead".to_owned())]);
        draft.may_create = true;
        draft.missing_for_create = vec![];
        draft
    }

    #[test]
    fn a_draft_becomes_a_command_with_its_envelope() {
        let event = examples::contact_changed();
        let envelope = Envelope::of_contact(&event, source(), examples::EXAMPLE_TIME + 12);
        let command = to_command(draft(), envelope);
        assert_eq!(command.event_id, event.event_id);
        assert_eq!(command.correlation_id, "crm.contact.changes/3/18844");
        assert_eq!(command.team_id, "team_17");
        assert_eq!(command.source, source());
        assert_eq!(command.event_time, examples::EXAMPLE_TIME);
        assert_eq!(command.processed_time, examples::EXAMPLE_TIME + 12);
        assert_eq!(command.object_type, HubSpotObjectType::Contact);
        assert_eq!(command.action, CommandAction::Upsert);
        assert_eq!(command.identity.value, "jordan.lee@northwind.example");
        assert_eq!(command.properties.len(), 1);
        assert_eq!(command.create_only_properties.len(), 1);
        assert!(command.may_create);
        let bytes = command.to_avro().expect("the command encodes");
        let back = HubSpotCommand::from_avro(&bytes).expect("and decodes");
        assert_eq!(back, command);
    }

    #[test]
    fn command_ids_are_stable_per_event_and_object() {
        let id = command_id(
            "0b9e6f0e-7d3c-4c55-9a51-4f1c2d8e7a10",
            HubSpotObjectType::Contact,
        );
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "5", "a name-based (v5) UUID");
        assert_eq!(
            id,
            command_id(
                "0b9e6f0e-7d3c-4c55-9a51-4f1c2d8e7a10",
                HubSpotObjectType::Contact
            )
        );
        assert_ne!(
            id,
            command_id(
                "0b9e6f0e-7d3c-4c55-9a51-4f1c2d8e7a10",
                HubSpotObjectType::Company
            )
        );
        assert_ne!(
            id,
            command_id(
                "5c1d2a44-0f7e-4b9a-8c3d-2e6f1a9b7c55",
                HubSpotObjectType::Contact
            )
        );
    }

    #[test]
    fn a_deal_answers_for_its_own_derived_event() {
        let event = examples::activity_recorded();
        let envelope = Envelope::of_activity(&event, source(), 7);
        assert_eq!(envelope.event_id, event.event_id);
        assert_eq!(envelope.event_time, event.event_time);
        let deal = envelope.for_deal();
        assert_eq!(deal.event_id, format!("{}:deal", event.event_id));
        assert_eq!(deal.correlation_id, envelope.correlation_id);
        assert_eq!(deal.source, envelope.source);
        assert_ne!(
            command_id(&deal.event_id, HubSpotObjectType::Deal),
            command_id(&envelope.event_id, HubSpotObjectType::Deal)
        );
    }

    #[test]
    fn a_company_name_to_match_on_is_written_only_if_empty() {
        let event = examples::company_changed();
        let mut company = draft();
        company.object_type = HubSpotObjectType::Company;
        company.match_name = Some("Initech".to_owned());
        let command = to_command(company.clone(), Envelope::of_company(&event, source(), 0));
        assert_eq!(
            command.properties.get("name"),
            Some(&Some("Initech".to_owned()))
        );
        assert_eq!(command.fill_if_empty, ["name"]);

        company
            .properties
            .insert("name".to_owned(), Some("Initech Inc".to_owned()));
        let command = to_command(company, Envelope::of_company(&event, source(), 0));
        assert_eq!(
            command.properties.get("name"),
            Some(&Some("Initech Inc".to_owned()))
        );
        assert!(command.fill_if_empty.is_empty());
    }
}
