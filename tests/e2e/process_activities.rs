//! End-to-end, process stage only: upstream activities through the rules into `hubsync.commands`
//! (one command per activity, two for a deal trigger), skipped outcomes and dead letters, with
//! every command keyed by the team's portal and every value one the HubSpot sandbox takes.

use std::collections::HashMap;
use std::time::Duration;

use hubsync::admin::Health;
use hubsync::pipeline::{Pipeline, Stages};
use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, SandboxOptions};
use hubsync_schemas::{
    ActivityRecorded, ActivityType, ChangeKind, CommandAction, HubSpotCommand, HubSpotObjectType,
    IdentityKind, OutcomeStatus, SchemaKind, Sender, examples,
};
use rdkafka::Message;
use serde_json::{Value, json};

mod support;
use support::activity_rules as rules;
use support::events::{activity, in_campaign};
use support::world::World;

const WAIT: Duration = Duration::from_secs(90);

/// Reads `hubsync.commands` from the start, with each message's key, until `until` holds.
async fn read_commands(
    world: &World,
    until: impl Fn(&[(String, HubSpotCommand)]) -> bool,
) -> Vec<(String, HubSpotCommand)> {
    let consumer = world.broker.reader(&world.config.topics.commands);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut read = Vec::new();
    while !until(&read) {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => {
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                let bytes = message.payload().unwrap_or_default();
                let command = world
                    .codec
                    .decode::<HubSpotCommand>(bytes)
                    .await
                    .expect("decode");
                read.push((key, command));
            }
            Ok(Err(error)) => panic!("consumer error: {error}"),
            Err(_) => break,
        }
    }
    read
}

/// The commands made from one event id, in the order they were written.
fn made_from<'a>(
    read: &'a [(String, HubSpotCommand)],
    event_id: &str,
) -> Vec<&'a (String, HubSpotCommand)> {
    read.iter()
        .filter(|(_, c)| c.event_id == event_id)
        .collect()
}

fn only<'a>(read: &'a [(String, HubSpotCommand)], event_id: &str) -> &'a (String, HubSpotCommand) {
    let found = made_from(read, event_id);
    assert_eq!(found.len(), 1, "one command from {event_id}: {found:#?}");
    found[0]
}

fn property<'c>(command: &'c HubSpotCommand, name: &str) -> Option<&'c str> {
    command.properties.get(name).and_then(|v| v.as_deref())
}

/// Creates one record of `object` in the HubSpot sandbox over HTTP with these properties, as the
/// sink would, and returns the answer's status and body.
async fn create_in_sandbox(world: &World, object: &str, properties: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/crm/v3/objects/{object}/batch/create",
            world.hubspot_server.url()
        ))
        .bearer_auth(DEFAULT_TOKEN)
        .json(&json!({ "inputs": [{ "properties": properties }] }))
        .send()
        .await
        .expect("sandbox answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

fn object_path(object: HubSpotObjectType) -> &'static str {
    match object {
        HubSpotObjectType::Note => "notes",
        HubSpotObjectType::Email => "emails",
        HubSpotObjectType::Call => "calls",
        HubSpotObjectType::Task => "tasks",
        HubSpotObjectType::Meeting => "meetings",
        HubSpotObjectType::Deal => "deals",
        other => panic!("not an activity or deal: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn activities_become_commands_keyed_by_their_portal_or_skipped_outcomes() {
    let world = World::start(SandboxOptions::default(), 1, rules).await;
    let pipeline = Pipeline::start(
        &world.config,
        &world.secrets,
        Stages::Process,
        Health::default(),
    )
    .await
    .expect("the process stage starts");
    let activities = world.config.topics.activity_events.clone();
    let contacts = world.config.topics.contact_changes.clone();

    // Each store-as choice, by the types' defaults; owners mapped, auto-mapped and defaulted.
    let mut sent = activity(ActivityType::EmailSent, "ct_ada", Some(" Ada@Example.org "));
    sent.subject = Some("Pick-and-pack errors".to_owned());
    sent.sender = Some(Sender {
        user_id: "usr_ada".to_owned(),
        email: None,
    });
    let mut message = activity(
        ActivityType::LinkedinMessageSent,
        "ct_ada",
        Some("ada@example.org"),
    );
    message.body = Some("Hi <Ada>, shall we talk?".to_owned());
    message.sender = Some(Sender {
        user_id: "usr_grace".to_owned(),
        email: Some("Grace.Hopper@example.com".to_owned()),
    });
    let mut call = activity(ActivityType::Call, "ct_bob", None);
    call.outcome = Some("no answer".to_owned());
    call.duration_ms = Some(42_000);
    let mut task = activity(ActivityType::Task, "ct_bob", None);
    task.subject = Some("Send the case study".to_owned());
    let mut meeting = activity(ActivityType::MeetingBooked, "ct_bob", None);
    meeting.duration_ms = Some(1_800_000);
    // Skipped: a type switched off, an operator's block list, a campaign that does not push.
    let clicked = activity(
        ActivityType::EmailClicked,
        "ct_ada",
        Some("ada@example.org"),
    );
    let mut blocked = activity(ActivityType::Unsubscribed, "ct_bob", None);
    blocked.unsubscribe_self_initiated = Some(false);
    let quiet = in_campaign(
        activity(ActivityType::EmailSent, "ct_ada", Some("ada@example.org")),
        "cmp_quiet",
    );
    // A reply in a campaign with deal triggers: a deal, then the email.
    let mut reply = in_campaign(
        activity(
            ActivityType::EmailReplied,
            "ct_ada",
            Some("ada@example.org"),
        ),
        "cmp_q3",
    );
    reply.body = Some("Tuesday works.".to_owned());
    // Refused: no event time.
    let mut timeless = activity(ActivityType::Call, "ct_bob", None);
    timeless.event_time = 0;

    let published = [
        &sent, &message, &call, &task, &meeting, &clicked, &blocked, &quiet, &reply, &timeless,
    ];
    for event in published {
        world
            .publish(
                SchemaKind::ActivityRecorded,
                &activities,
                &event.contact_id,
                event,
            )
            .await;
    }
    // Ada's own contact change, for the key her commands share.
    let mut ada = examples::contact_changed();
    ada.team_id = support::events::TEAM_ID.to_string();
    ada.event_id = uuid::Uuid::new_v4().to_string();
    ada.contact_id = "ct_ada".to_owned();
    ada.change = ChangeKind::Updated;
    ada.email = Some("ada@example.org".to_owned());
    ada.campaign_id = None;
    world
        .publish(SchemaKind::ContactChanged, &contacts, "ct_ada", &ada)
        .await;

    let written = [&sent, &message, &call, &task, &meeting, &reply];
    let read = read_commands(&world, |read| {
        written
            .iter()
            .all(|e| read.iter().any(|(_, c)| c.event_id == e.event_id))
            && read.iter().any(|(_, c)| c.event_id == ada.event_id)
    })
    .await;

    // One command per written activity, of the object its type is stored as.
    for (event, object) in [
        (&sent, HubSpotObjectType::Email),
        (&message, HubSpotObjectType::Note),
        (&call, HubSpotObjectType::Call),
        (&task, HubSpotObjectType::Task),
        (&meeting, HubSpotObjectType::Meeting),
    ] {
        let (_, command) = only(&read, &event.event_id);
        assert_eq!(command.object_type, object, "{:?}", event.activity_type);
        assert_eq!(command.action, CommandAction::CreateActivity);
        assert_eq!(command.identity.kind, IdentityKind::SourceId);
        assert_eq!(command.identity.property, "hubsync_activity_id");
        assert_eq!(command.identity.value, event.activity_id);
        assert!(command.may_create);
        assert!(property(command, "hs_timestamp").is_some(), "{command:#?}");
        let contact = command.associations[0]
            .to_identity
            .as_ref()
            .expect("by identity");
        assert_eq!(
            command.associations[0].to_object_type,
            HubSpotObjectType::Contact
        );
        match &event.contact_email {
            Some(_) => assert_eq!(contact.value, "ada@example.org"),
            None => assert_eq!(contact.value, event.contact_id),
        }
        // The values are ones HubSpot takes for this object.
        let properties: serde_json::Map<String, Value> = command
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
            .collect();
        let (status, body) =
            create_in_sandbox(&world, object_path(object), Value::Object(properties)).await;
        assert_eq!(status, 201, "{object}: {body}");
    }
    let (_, email) = only(&read, &sent.event_id);
    assert_eq!(
        property(email, "hs_email_subject"),
        Some("Pick-and-pack errors")
    );
    assert_eq!(property(email, "hs_email_direction"), Some("EMAIL"));
    assert_eq!(
        property(email, "hubspot_owner_id"),
        Some("70000003"),
        "mapped sender"
    );
    assert!(email.fill_if_empty.is_empty());
    let (_, note) = only(&read, &message.event_id);
    assert_eq!(
        property(note, "hubspot_owner_id"),
        Some("70000002"),
        "the sender matched to Grace's HubSpot owner by email"
    );
    let body = property(note, "hs_note_body").unwrap_or_default();
    assert!(body.contains("Hi &lt;Ada&gt;, shall we talk?"), "{body}");
    let (_, call_command) = only(&read, &call.event_id);
    assert_eq!(property(call_command, "hs_call_status"), Some("NO_ANSWER"));
    assert_eq!(property(call_command, "hs_call_duration"), Some("42000"));
    assert_eq!(
        property(call_command, "hubspot_owner_id"),
        Some("70000001"),
        "no sender: the contact's owner, else the default owner"
    );
    assert_eq!(call_command.fill_if_empty, ["hubspot_owner_id"]);

    // The deal trigger: the deal's command first, under its derived event id, then the email.
    let deal_event = format!("{}:deal", reply.event_id);
    let (deal_key, deal) = only(&read, &deal_event);
    let (reply_key, reply_command) = only(&read, &reply.event_id);
    let position = |id: &str| read.iter().position(|(_, c)| c.event_id == id);
    assert!(
        position(&deal_event) < position(&reply.event_id),
        "the deal comes first"
    );
    assert_eq!(deal.object_type, HubSpotObjectType::Deal);
    assert_eq!(deal.action, CommandAction::Upsert);
    assert_eq!(
        (
            deal.identity.property.as_str(),
            deal.identity.value.as_str()
        ),
        ("hubsync_deal_key", "ct_ada:cmp_q3")
    );
    assert_eq!(
        deal.create_only_properties
            .get("pipeline")
            .map(String::as_str),
        Some("default")
    );
    assert_eq!(
        deal.create_only_properties
            .get("dealname")
            .map(String::as_str),
        Some("ada@example.org – Q3 outbound")
    );
    let deal_values: serde_json::Map<String, Value> = deal
        .create_only_properties
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let (status, body) = create_in_sandbox(&world, "deals", Value::Object(deal_values)).await;
    assert_eq!(status, 201, "deal: {body}");
    assert_eq!(reply_command.object_type, HubSpotObjectType::Email);
    assert_eq!(
        property(reply_command, "hs_email_direction"),
        Some("INCOMING_EMAIL")
    );
    let linked: Vec<_> = reply_command
        .associations
        .iter()
        .map(|a| (a.to_object_type, a.association_type_id))
        .collect();
    assert_eq!(
        linked,
        [
            (HubSpotObjectType::Contact, 198),
            (HubSpotObjectType::Company, 186),
            (HubSpotObjectType::Deal, 210),
        ]
    );

    // Every command is keyed by the team's portal: one sink owns the portal, and Ada's
    // activities, her deal and her own contact command stay in one partition, in order.
    let portal = world.config.team.hubspot_portal_id.to_string();
    let (contact_key, contact_command) = only(&read, &ada.event_id);
    assert_eq!(contact_command.object_type, HubSpotObjectType::Contact);
    assert_eq!(contact_key, &portal);
    assert_eq!(&only(&read, &sent.event_id).0, contact_key);
    assert_eq!(&only(&read, &message.event_id).0, contact_key);
    assert_eq!(reply_key, contact_key);
    assert_eq!(deal_key, contact_key);
    assert_eq!(only(&read, &call.event_id).0, portal);

    // Skipped and refused events: their outcome comes from the process stage, with no command.
    let answered = [&clicked, &blocked, &quiet, &timeless];
    let ids: Vec<String> = answered.iter().map(|e| e.event_id.clone()).collect();
    let outcomes = world.outcomes_for(&ids, WAIT).await;
    let outcome = |event: &ActivityRecorded| {
        let found = outcomes.get(&event.event_id).cloned().unwrap_or_default();
        assert_eq!(
            found.len(),
            1,
            "one outcome for {:?}: {found:#?}",
            event.activity_type
        );
        assert!(made_from(&read, &event.event_id).is_empty(), "no command");
        found[0].clone()
    };
    let off = outcome(&clicked);
    assert_eq!(
        (off.status, off.reason_code.as_str()),
        (OutcomeStatus::Skipped, "ACTIVITY_TYPE_DISABLED")
    );
    assert!(
        off.reason
            .contains("activities.email_clicked.enabled = false"),
        "{}",
        off.reason
    );
    assert_eq!(off.stage, "process");
    assert_eq!(off.source_key.as_deref(), Some("ct_ada"));
    assert_eq!(off.hubspot_object_type, Some(HubSpotObjectType::Note));
    assert_eq!(
        off.record.as_deref(),
        Some(format!("hubsync_activity_id:{}", clicked.activity_id).as_str())
    );
    let operator = outcome(&blocked);
    assert_eq!(
        (operator.status, operator.reason_code.as_str()),
        (OutcomeStatus::Skipped, "UNSUBSCRIBE_NOT_SELF_INITIATED")
    );
    let no_push = outcome(&quiet);
    assert_eq!(
        (no_push.status, no_push.reason_code.as_str()),
        (OutcomeStatus::Skipped, "CAMPAIGN_PUSH_DISABLED")
    );
    assert!(
        no_push.reason.contains("campaign cmp_quiet"),
        "{}",
        no_push.reason
    );
    let refused = outcome(&timeless);
    assert_eq!(
        (refused.status, refused.reason_code.as_str()),
        (OutcomeStatus::DeadLettered, "MISSING_VALUE")
    );
    let letters = world.dead_letters(1, WAIT).await;
    let letter = letters
        .iter()
        .find(|l| l.event_id.as_deref() == Some(timeless.event_id.as_str()))
        .expect("the activity without a time is dead-lettered");
    assert!(
        letter.error.message.contains("event_time"),
        "{}",
        letter.error.message
    );
    assert_eq!(letter.original_topic, activities);
    assert_eq!(letter.original_key.as_deref(), Some(&b"ct_bob"[..]));

    // Nothing answered twice, nothing written twice.
    let mut per_event: HashMap<&str, usize> = HashMap::new();
    for (_, command) in &read {
        *per_event.entry(command.event_id.as_str()).or_default() += 1;
    }
    assert!(per_event.values().all(|n| *n == 1), "{per_event:?}");
    pipeline
        .stop()
        .await
        .expect("the process stage stops cleanly");
}
