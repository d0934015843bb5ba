//! One realistic value of every record type, filled in as far as the schema allows, so a round
//! trip exercises every field kind (unions, nested records, maps, arrays, bytes, timestamps).

use std::collections::BTreeMap;

use crate::common::{Actor, ActorKind, ChangeKind, HubSpotObjectType};
use crate::inbound::{FieldChange, HubSpotChange, HubSpotChangeKind};
use crate::pipeline::{
    Association, CommandAction, DeadLetter, ErrorClass, ErrorEnvelope, HUBSPOT_DEFINED,
    HubSpotCommand, Identity, IdentityKind, KafkaHeader, OutcomeStatus, SourcePosition,
    SyncOutcome,
};
use crate::upstream::{
    ActivityRecorded, ActivityType, CampaignRef, CompanyChanged, ContactChanged, Sender,
};

/// 2025-03-04T09:30:00Z in milliseconds.
pub const EXAMPLE_TIME: i64 = 1_741_080_600_000;

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn sales_rep() -> Actor {
    Actor {
        user_id: "usr_4821".to_owned(),
        email: some("maya.okafor@acme-sales.io"),
        kind: ActorKind::User,
    }
}

/// A contact update: a new job title, a custom field set and one cleared.
pub fn contact_changed() -> ContactChanged {
    ContactChanged {
        event_id: "0b9e6f0e-7d3c-4c55-9a51-4f1c2d8e7a10".to_owned(),
        event_time: EXAMPLE_TIME,
        team_id: "team_17".to_owned(),
        contact_id: "ct_90311".to_owned(),
        change: ChangeKind::Updated,
        actor: Some(sales_rep()),
        email: some("jordan.lee@northwind.example"),
        linkedin_url: some("https://www.linkedin.com/in/jordan-lee-nw"),
        first_name: some("Jordan"),
        last_name: some("Lee"),
        company_name: some("Northwind Traders"),
        company_domain: some("northwind.example"),
        job_title: some("VP Operations"),
        phone: some("+1 415 555 0134"),
        owner_user_id: some("usr_4821"),
        campaign_id: some("cmp_q2_outbound"),
        fields: BTreeMap::from([
            ("lead_score".to_owned(), some("82")),
            ("timezone".to_owned(), some("America/Los_Angeles")),
            ("previous_company".to_owned(), None),
        ]),
        changed_fields: strings(&["job_title", "lead_score", "previous_company"]),
    }
}

/// A company created by an import.
pub fn company_changed() -> CompanyChanged {
    CompanyChanged {
        event_id: "5c1d2a44-0f7e-4b9a-8c3d-2e6f1a9b7c55".to_owned(),
        event_time: EXAMPLE_TIME,
        team_id: "team_17".to_owned(),
        company_id: "co_2207".to_owned(),
        change: ChangeKind::Created,
        actor: Some(Actor {
            user_id: "csv-import".to_owned(),
            email: None,
            kind: ActorKind::System,
        }),
        name: some("Northwind Traders"),
        domain: some("northwind.example"),
        website: some("https://www.northwind.example"),
        industry: some("Wholesale"),
        owner_user_id: some("usr_4821"),
        fields: BTreeMap::from([("employees".to_owned(), some("250-500"))]),
        changed_fields: Vec::new(),
    }
}

/// A link clicked in the second email of a sequence.
pub fn activity_recorded() -> ActivityRecorded {
    ActivityRecorded {
        event_id: "9a7c3e12-6b4d-4f8e-b1a2-3c5d7e9f0a21".to_owned(),
        event_time: EXAMPLE_TIME + 90_000,
        team_id: "team_17".to_owned(),
        activity_id: "act_778812".to_owned(),
        contact_id: "ct_90311".to_owned(),
        company_id: some("co_2207"),
        contact_email: some("jordan.lee@northwind.example"),
        activity_type: ActivityType::EmailClicked,
        activity_type_name: "email_link_clicked".to_owned(),
        actor: Some(Actor {
            user_id: "tracker".to_owned(),
            email: None,
            kind: ActorKind::System,
        }),
        sender: Some(Sender {
            user_id: "usr_4821".to_owned(),
            email: some("maya.okafor@acme-sales.io"),
        }),
        campaign: Some(CampaignRef {
            campaign_id: "cmp_q2_outbound".to_owned(),
            name: some("Q2 outbound - operations leaders"),
            sequence_step: Some(2),
        }),
        unsubscribe_self_initiated: None,
        subject: some("Cutting pick-and-pack errors at Northwind"),
        body: None,
        url: some("https://acme-sales.io/case-studies/warehouse"),
        duration_ms: None,
        outcome: None,
        details: BTreeMap::from([
            ("user_agent".to_owned(), "Mozilla/5.0".to_owned()),
            (
                "message_id".to_owned(),
                "<c0ffee@mail.acme-sales.io>".to_owned(),
            ),
        ]),
    }
}

/// The contact upsert the process stage makes from [`contact_changed`].
pub fn hubspot_command() -> HubSpotCommand {
    HubSpotCommand {
        command_id: "3f2b8c6d-1e4a-5b7c-8d9e-0f1a2b3c4d5e".to_owned(),
        event_id: "0b9e6f0e-7d3c-4c55-9a51-4f1c2d8e7a10".to_owned(),
        correlation_id: "crm.contact.changes/3/18844".to_owned(),
        team_id: "team_17".to_owned(),
        source: SourcePosition {
            topic: "crm.contact.changes".to_owned(),
            partition: 3,
            offset: 18_844,
            key: some("ct_90311"),
        },
        event_time: EXAMPLE_TIME,
        processed_time: EXAMPLE_TIME + 12,
        object_type: HubSpotObjectType::Contact,
        action: CommandAction::Upsert,
        identity: Identity {
            kind: IdentityKind::Email,
            property: "email".to_owned(),
            value: "jordan.lee@northwind.example".to_owned(),
        },
        properties: BTreeMap::from([
            ("jobtitle".to_owned(), some("VP Operations")),
            ("firstname".to_owned(), some("Jordan")),
            ("lead_score".to_owned(), some("82")),
            ("previous_company".to_owned(), None),
            ("hubspot_owner_id".to_owned(), some("77120345")),
        ]),
        create_only_properties: BTreeMap::from([
            ("lifecyclestage".to_owned(), "lead".to_owned()),
            ("hs_lead_status".to_owned(), "NEW".to_owned()),
        ]),
        fill_if_empty: strings(&["firstname"]),
        may_create: true,
        missing_for_create: Vec::new(),
        associations: vec![Association {
            to_object_type: HubSpotObjectType::Company,
            to_hubspot_id: None,
            to_identity: Some(Identity {
                kind: IdentityKind::Domain,
                property: "domain".to_owned(),
                value: "northwind.example".to_owned(),
            }),
            association_category: HUBSPOT_DEFINED.to_owned(),
            association_type_id: 279,
        }],
    }
}

/// A contact parked because a mandatory property is missing.
pub fn sync_outcome() -> SyncOutcome {
    SyncOutcome {
        event_id: "0b9e6f0e-7d3c-4c55-9a51-4f1c2d8e7a10".to_owned(),
        status: OutcomeStatus::Parked,
        reason_code: "PARKED_MISSING_FIELDS".to_owned(),
        reason: "contact not created: mandatory property phone is empty; it is re-evaluated on the contact's next change".to_owned(),
        hubspot_object_type: Some(HubSpotObjectType::Contact),
        hubspot_id: None,
        correlation_id: "crm.contact.changes/3/18844".to_owned(),
        source_topic: "crm.contact.changes".to_owned(),
        source_partition: 3,
        source_offset: 18_844,
        source_key: some("ct_90311"),
        team_id: "team_17".to_owned(),
        record: some("jordan.lee@northwind.example"),
        event_time: EXAMPLE_TIME,
        processed_time: EXAMPLE_TIME + 15,
        attempts: 1,
        stage: "process".to_owned(),
        missing_fields: strings(&["phone"]),
        redrive_of: None,
    }
}

/// A command HubSpot refused because an enumeration value has no matching option.
pub fn dead_letter() -> DeadLetter {
    DeadLetter {
        event_id: some("0b9e6f0e-7d3c-4c55-9a51-4f1c2d8e7a10"),
        original_topic: "hubsync.commands".to_owned(),
        original_partition: 1,
        original_offset: 5_512,
        original_timestamp: Some(EXAMPLE_TIME + 12),
        original_key: Some(b"email:jordan.lee@northwind.example".to_vec()),
        original_value: Some(vec![0, 0, 0, 0, 4, 0x48, 0x33, 0x66, 0x32]),
        original_headers: vec![
            KafkaHeader {
                key: "hubsync.correlation_id".to_owned(),
                value: Some(b"crm.contact.changes/3/18844".to_vec()),
            },
            KafkaHeader {
                key: "traceparent".to_owned(),
                value: None,
            },
        ],
        error: ErrorEnvelope {
            class: ErrorClass::Config,
            code: "invalid_enum_option".to_owned(),
            message: "property hs_lead_status has no option \"NEW\"; add the option in HubSpot or change the contact defaults, then re-drive".to_owned(),
            hubspot_category: some("VALIDATION_ERROR"),
            hubspot_correlation_id: some("6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"),
            stage: "sink".to_owned(),
            attempts: 1,
        },
        failed_at: EXAMPLE_TIME + 450,
        team_id: some("team_17"),
    }
}

/// A lifecycle stage changed by a HubSpot user.
pub fn hubspot_change() -> HubSpotChange {
    HubSpotChange {
        event_id: "c4d5e6f7-a8b9-4c0d-9e1f-2a3b4c5d6e7f".to_owned(),
        portal_id: 24_681_357,
        team_id: some("team_17"),
        object_type: HubSpotObjectType::Contact,
        object_id: "51234".to_owned(),
        change: HubSpotChangeKind::PropertyChanged,
        property_name: some("lifecyclestage"),
        property_value: some("opportunity"),
        occurred_at: EXAMPLE_TIME + 3_600_000,
        change_source: some("CRM_UI"),
        source_id: some("userId:8812"),
        properties: BTreeMap::from([
            ("lifecyclestage".to_owned(), some("opportunity")),
            ("jobtitle".to_owned(), some("VP Operations")),
            ("phone".to_owned(), None),
        ]),
        record_id: some("c_000451"),
        fields: vec![FieldChange {
            field: "stage".to_owned(),
            property: "lifecyclestage".to_owned(),
            value: some("opportunity"),
            hubspot_value: None,
            changed_at: EXAMPLE_TIME + 3_600_000,
        }],
        merged_object_ids: Vec::new(),
        merged_record_ids: Vec::new(),
        association: None,
        list_id: None,
        via: some("webhook"),
    }
}
