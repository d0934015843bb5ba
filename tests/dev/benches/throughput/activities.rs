//! Figure 4: HubSpot calls per 1,000 activity events, through both stages.
//!
//! The contacts are written first (as the live stream would have done), then the activities
//! arrive at a steady pace: a sales team's mix of sent emails, clicks, LinkedIn steps, calls
//! and meetings, sent by mapped users. Each activity is created with its contact link inline, so
//! the only calls are the batch creates, one per up to 100 activities of one HubSpot type.

use std::time::Duration;

use hubsync::admin::Health;
use hubsync::pipeline::{Pipeline, Stages};
use hubsync_processors::rules::users::UserMapping;
use hubsync_schemas::{
    ActivityRecorded, ActivityType, ChangeKind, ContactChanged, SchemaKind, Sender,
    default_subject, examples,
};

use crate::events::Rng;
use crate::world::{Call, Outcomes, Setup, World};

#[derive(Debug, Clone)]
pub struct Params {
    pub contacts: usize,
    pub activities: usize,
    /// Span over which the activities are published.
    pub span: Duration,
    pub kafka: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Figures {
    pub params: Params,
    pub outcomes: Outcomes,
    pub calls: Vec<Call>,
    pub took: Duration,
}

impl Figures {
    pub fn calls_per_1000(&self) -> f64 {
        self.calls.len() as f64 * 1_000.0 / self.params.activities as f64
    }
}

/// The mix, by share: what a sequence-driven sales team records.
const MIX: [(ActivityType, &str, u64); 6] = [
    (ActivityType::EmailSent, "email_sent", 40),
    (ActivityType::EmailClicked, "email_clicked", 15),
    (ActivityType::EmailReplied, "email_replied", 10),
    (
        ActivityType::LinkedinMessageSent,
        "linkedin_message_sent",
        20,
    ),
    (ActivityType::Call, "call", 10),
    (ActivityType::MeetingBooked, "meeting_booked", 5),
];

const SENDERS: [(&str, &str); 3] = [
    ("usr_ada", "70000001"),
    ("usr_grace", "70000002"),
    ("usr_alan", "70000003"),
];

fn email(n: usize) -> String {
    format!("lead{n}@activities.example")
}

pub async fn measure(params: Params) -> Figures {
    let mut world = World::start(Setup {
        brokers: 1,
        teams: 1,
        partitions: 3,
        contact_defaults: false,
        kafka: params.kafka.clone(),
        unlimited: false,
        linger: None,
    })
    .await;
    world.config.rules.users.mapping = SENDERS
        .iter()
        .map(|(user, owner)| UserMapping {
            user: (*user).to_string(),
            owner: (*owner).to_string(),
        })
        .collect();
    let pipeline = Pipeline::start(
        &world.config,
        &world.secrets,
        Stages::All,
        Health::default(),
    )
    .await
    .expect("the pipeline starts");
    let mut rng = Rng::new(0x5eed_0004);
    let now = hubsync::outcomes::now_ms();

    // The contacts first, and wait until HubSpot has them all.
    let contact_topic = world.config.topics.contact_changes.clone();
    let contacts = world
        .codec
        .writer(SchemaKind::ContactChanged, &default_subject(&contact_topic))
        .await
        .expect("the contact schema registers");
    let written = world.collect_outcomes(params.contacts, Duration::from_secs(120));
    let mut batch = Vec::with_capacity(params.contacts);
    for n in 0..params.contacts {
        let event = contact(n, now);
        batch.push((
            event.contact_id.clone(),
            contacts.encode(&event).expect("encodes"),
        ));
    }
    world.publish_all(&contact_topic, &batch).await;
    assert_eq!(
        written.finish().await.count,
        params.contacts,
        "every contact has its outcome"
    );

    let activity_topic = world.config.topics.activity_events.clone();
    let activities = world
        .codec
        .writer(
            SchemaKind::ActivityRecorded,
            &default_subject(&activity_topic),
        )
        .await
        .expect("the activity schema registers");
    let first_call = world.calls.len();
    let collector = world.collect_outcomes(params.activities, Duration::from_secs(180));
    let began = std::time::Instant::now();
    let origin = tokio::time::Instant::now();
    // Activities happen as they are sent, after the contacts.
    let now = hubsync::outcomes::now_ms();
    let mut deliveries = Vec::with_capacity(params.activities);
    for index in 0..params.activities {
        let at = params.span.mul_f64(index as f64 / params.activities as f64);
        tokio::time::sleep_until(origin + at).await;
        let event = activity(
            index,
            params.contacts,
            now + at.as_millis() as i64,
            &mut rng,
        );
        let payload = activities.encode(&event).expect("encodes");
        deliveries.push(world.send_now(&activity_topic, &event.contact_id, &payload));
    }
    World::delivered(deliveries).await;
    let outcomes = collector.finish().await;
    let took = began.elapsed();
    pipeline.stop().await.expect("the pipeline stops cleanly");
    let calls = world.calls.since(first_call);
    world.stop().await;
    Figures {
        params,
        outcomes,
        calls,
        took,
    }
}

fn contact(n: usize, now: i64) -> ContactChanged {
    let mut event = examples::contact_changed();
    event.team_id = hubsync_dev::sandbox_config::TEAM_ID.to_string();
    event.event_id = format!("contact-{n}");
    event.event_time = now;
    event.contact_id = format!("ct_{n}");
    event.change = ChangeKind::Created;
    event.email = Some(email(n));
    event.owner_user_id = None;
    event.campaign_id = None;
    event.fields.clear();
    event.changed_fields.clear();
    event
}

fn activity(index: usize, contacts: usize, time: i64, rng: &mut Rng) -> ActivityRecorded {
    let total: u64 = MIX.iter().map(|(_, _, share)| share).sum();
    let mut pick = rng.below(total);
    let (kind, name) = MIX
        .iter()
        .find_map(|(kind, name, share)| {
            if pick < *share {
                Some((*kind, *name))
            } else {
                pick -= share;
                None
            }
        })
        .unwrap_or((ActivityType::EmailSent, "email_sent"));
    let contact = rng.below(contacts as u64) as usize;
    let (sender, _) = SENDERS[rng.below(SENDERS.len() as u64) as usize];
    let mut event = examples::activity_recorded();
    event.team_id = hubsync_dev::sandbox_config::TEAM_ID.to_string();
    event.event_id = format!("activity-{index}");
    event.event_time = time;
    event.activity_id = format!("act_{index}");
    event.contact_id = format!("ct_{contact}");
    event.contact_email = Some(email(contact));
    event.company_id = None;
    event.activity_type = kind;
    event.activity_type_name = name.to_string();
    event.sender = Some(Sender {
        user_id: sender.to_string(),
        email: None,
    });
    event.campaign = None;
    event.duration_ms = (kind == ActivityType::Call || kind == ActivityType::MeetingBooked)
        .then_some(30 * 60 * 1_000);
    event.outcome = (kind == ActivityType::Call).then(|| "connected".to_string());
    event.body = Some(format!("Step {index} of the sequence"));
    event
}
