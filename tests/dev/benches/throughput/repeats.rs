//! Figure 3: HubSpot calls per 1,000 contact events when 30% of the events repeat an earlier
//! contact's key, through both stages.
//!
//! The events are published at the pace upstream would send them, not pre-filled, so whether a
//! repeat meets its earlier event inside the sink's linger window depends on real timing. The
//! first contacts are spread evenly over the publishing span; each repeat changes the job title
//! of a contact created earlier, half of them within 10-250 ms of that contact's creation (a
//! burst of edits) and half 1-6 s later. With the default 10 s linger both kinds fall inside
//! the window; a run with a 250 ms linger shows what the shorter wait costs.
//!
//! One warm-up event goes first and is waited for, so the consumer groups have joined and the
//! process stage has read the portal's properties before counting starts.

use std::time::Duration;

use hubsync::admin::Health;
use hubsync::pipeline::{Pipeline, Stages};
use hubsync_schemas::{SchemaKind, default_subject};

use crate::events::{Contact, Rng, Shape};
use crate::world::{Call, Outcomes, Setup, World};

#[derive(Debug, Clone)]
pub struct Params {
    pub events: usize,
    pub repeat_share: f64,
    /// Span over which the first events of the contacts are published.
    pub span: Duration,
    pub shape: Shape,
    pub contact_defaults: bool,
    /// Extra `[kafka.properties]` for the pipeline.
    pub kafka: Vec<(String, String)>,
    /// The sink's linger instead of the default.
    pub linger: Option<Duration>,
}

#[derive(Debug)]
pub struct Figures {
    pub params: Params,
    pub contacts: usize,
    pub near_repeats: usize,
    pub far_repeats: usize,
    /// Each repeat's distance from its contact's first event.
    pub gaps: Vec<Duration>,
    /// The sink's linger in the run.
    pub linger: Duration,
    /// From the first event published to the last outcome read.
    pub took: Duration,
    pub outcomes: Outcomes,
    pub calls: Vec<Call>,
}

impl Figures {
    pub fn calls_per_1000(&self) -> f64 {
        self.calls.len() as f64 * 1_000.0 / self.params.events as f64
    }

    /// Records sent to HubSpot by batch upserts and creates.
    pub fn records_written(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| c.creates_or_upserts())
            .map(|c| c.inputs)
            .sum()
    }

    /// Repeats written together with the creation of their contact (each such member gets the
    /// `CREATED` outcome of the one write).
    pub fn repeats_in_creation(&self) -> usize {
        self.outcomes
            .status(hubsync_schemas::OutcomeStatus::Created)
            .saturating_sub(self.contacts)
    }

    /// The fewest HubSpot calls this schedule and configuration allow if every repeat inside
    /// the linger window coalesced, every repeat outside it took a write of its own, and every
    /// call carried 100 records, per 1,000 events. A batch of new contacts with defaults costs
    /// a read and a create (the read tells they are new); a batch of known contacts costs one
    /// upsert, and a read before it when some carry fill-if-empty values (a phone, an owner).
    pub fn floor_per_1000(&self) -> f64 {
        let outside = self.gaps.iter().filter(|gap| **gap >= self.linger).count();
        let per_create = if self.params.contact_defaults { 2 } else { 1 };
        let shape = self.params.shape;
        let per_update = if shape.phone_share > 0.0 || shape.mapped_owner_share > 0.0 {
            2
        } else {
            1
        };
        let calls = if per_create == per_update {
            (self.contacts + outside).div_ceil(100) * per_create
        } else {
            self.contacts.div_ceil(100) * per_create + outside.div_ceil(100) * per_update
        };
        calls as f64 * 1_000.0 / self.params.events as f64
    }
}

impl Figures {
    /// From an event's time to its outcome's, in milliseconds, at the given quantiles.
    pub fn latency_ms(&self, quantiles: &[f64]) -> Vec<i64> {
        let mut latencies: Vec<i64> = self
            .outcomes
            .each
            .iter()
            .map(|o| o.processed_ms - o.event_ms)
            .collect();
        latencies.sort_unstable();
        quantiles
            .iter()
            .map(|q| {
                let at = ((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
                latencies.get(at).copied().unwrap_or_default()
            })
            .collect()
    }

    /// For each repeat written apart from its contact's creation: how long after the creation's
    /// event it came, and how long after that the creation was written, in milliseconds.
    pub fn separate_repeats(&self) -> Vec<(i64, i64)> {
        // A creation that merged repeats answers each of them CREATED: the earliest is the
        // contact's first event.
        let mut created: std::collections::HashMap<&str, (i64, i64)> =
            std::collections::HashMap::new();
        for o in &self.outcomes.each {
            if o.status == hubsync_schemas::OutcomeStatus::Created {
                let entry = created
                    .entry(o.record.as_str())
                    .or_insert((o.event_ms, o.processed_ms));
                if o.event_ms < entry.0 {
                    *entry = (o.event_ms, o.processed_ms);
                }
            }
        }
        self.outcomes
            .each
            .iter()
            .filter(|o| o.status != hubsync_schemas::OutcomeStatus::Created)
            .filter_map(|o| {
                let (event, written) = created.get(o.record.as_str())?;
                Some((o.event_ms - event, written - event))
            })
            .collect()
    }
}

/// One scheduled event: when, which contact, and whether it is the contact's first.
struct Planned {
    at_ms: u64,
    contact: usize,
    first: bool,
}

pub async fn measure(params: Params) -> Figures {
    let world = World::start(Setup {
        brokers: 1,
        teams: 1,
        partitions: 3,
        contact_defaults: params.contact_defaults,
        kafka: params.kafka.clone(),
        unlimited: false,
        linger: params.linger,
    })
    .await;
    let topic = world.config.topics.contact_changes.clone();
    let writer = world
        .codec
        .writer(SchemaKind::ContactChanged, &default_subject(&topic))
        .await
        .expect("the contact schema registers");
    let pipeline = Pipeline::start(
        &world.config,
        &world.secrets,
        Stages::All,
        Health::default(),
    )
    .await
    .expect("the pipeline starts");

    let mut rng = Rng::new(0x5eed_0003);
    let warm_up_ms = hubsync::outcomes::now_ms();
    let warm_up = Contact::generate(u64::MAX >> 1, params.shape, &mut rng);
    let event = warm_up.created(warm_up_ms, &mut rng);
    let warming = world.collect_outcomes(1, Duration::from_secs(60));
    world
        .publish_all(
            &topic,
            &[(
                event.contact_id.clone(),
                writer.encode(&event).expect("encodes"),
            )],
        )
        .await;
    assert_eq!(
        warming.finish().await.count,
        1,
        "the warm-up event has its outcome"
    );
    let first_call = world.calls.len();

    let linger = world.config.stages.sink.linger;
    let (plan, gaps) = schedule(&params, &mut rng);
    let near_repeats = gaps.iter().filter(|g| **g < NEAR).count();
    let far_repeats = gaps.len() - near_repeats;
    let contacts = plan.iter().filter(|p| p.first).count();
    let mut people: Vec<Contact> = (0..contacts)
        .map(|index| Contact::generate(index as u64, params.shape, &mut rng))
        .collect();
    let collector = world.collect_outcomes(params.events + 1, Duration::from_secs(180));
    let began = std::time::Instant::now();
    let origin = tokio::time::Instant::now();
    // Event times follow the schedule from here, so event-to-outcome times are latencies.
    let start_ms = hubsync::outcomes::now_ms();
    let mut deliveries = Vec::with_capacity(plan.len());
    for planned in &plan {
        tokio::time::sleep_until(origin + Duration::from_millis(planned.at_ms)).await;
        let time = start_ms + planned.at_ms as i64;
        let person = &mut people[planned.contact];
        let event = if planned.first {
            person.created(time, &mut rng)
        } else {
            person.retitled(time, &mut rng)
        };
        let payload = writer.encode(&event).expect("encodes");
        deliveries.push(world.send_now(&topic, &event.contact_id, &payload));
    }
    World::delivered(deliveries).await;
    let outcomes = collector.finish().await;
    let took = began.elapsed();
    pipeline.stop().await.expect("the pipeline stops cleanly");
    let calls = world.calls.since(first_call);
    world.stop().await;
    Figures {
        params,
        contacts,
        near_repeats,
        far_repeats,
        gaps,
        linger,
        took,
        outcomes,
        calls,
    }
}

/// Repeats closer than this to their contact's first event are a burst of edits.
const NEAR: Duration = Duration::from_millis(251);

/// The events in publishing order, and each repeat's gap after its contact's first event.
fn schedule(params: &Params, rng: &mut Rng) -> (Vec<Planned>, Vec<Duration>) {
    let repeats = (params.events as f64 * params.repeat_share).round() as usize;
    let contacts = params.events - repeats;
    let span_ms = params.span.as_millis() as u64;
    let mut plan: Vec<Planned> = (0..contacts)
        .map(|contact| Planned {
            at_ms: contact as u64 * span_ms / contacts as u64,
            contact,
            first: true,
        })
        .collect();
    let mut gaps = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let contact = rng.below(contacts as u64) as usize;
        let gap = if rng.chance(0.5) {
            10 + rng.below(241)
        } else {
            1_000 + rng.below(5_001)
        };
        gaps.push(Duration::from_millis(gap));
        plan.push(Planned {
            at_ms: plan[contact].at_ms + gap,
            contact,
            first: false,
        });
    }
    // Stable: a contact's first event stays ahead of a repeat planned for the same moment.
    plan.sort_by_key(|p| (p.at_ms, !p.first));
    (plan, gaps)
}
