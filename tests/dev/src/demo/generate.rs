//! A generated sales team: companies and their people as an upstream platform would publish them,
//! including the untidy parts (people updated again and again, records missing what HubSpot
//! needs, values typed by hand, messages that are not Avro at all), and what the team's reps do
//! with those people: emails, LinkedIn steps, calls, tasks, meetings, unsubscribes
//! ([`super::activities`]). Everything is drawn from seeded random sources, so a seed always
//! gives the same team; only event times move with the moment the team is generated.
//!
//! The generator knows what should become of each contact ([`Profile`]) and of each activity
//! ([`Fate`]), so a run can be checked against it: how many contacts, companies, notes, emails,
//! calls, tasks, meetings and deals HubSpot must end up holding, the outcomes the process stage
//! decides on its own (skips and refused values), and the outcome of every activity event, all
//! exact.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use hubsync_processors::command::DEAL_EVENT_SUFFIX;
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_schemas::{
    ActivityRecorded, ActivityType, Actor, ActorKind, CampaignRef, ChangeKind, CompanyChanged,
    ContactChanged, Sender,
};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::activities::{self, DealFate, Fate, SentBy, Step};
use super::names::{self, slug};

/// The upstream team every generated record belongs to.
pub use crate::sandbox_config::TEAM_ID;

/// How many upstream seconds separate consecutive contacts' creation.
const TICKS_PER_CONTACT: u64 = 10;

/// Mixed into the seed of the activities' own random source.
const ACTIVITY_SEED: u64 = 0x00ac_7171_7e55;

/// One activity in this many of the history is sent again by the producer, among the live
/// changes.
const RETRY_ONE_IN: usize = 80;

#[derive(Debug, Clone, Copy)]
pub struct TeamOptions {
    pub contacts: usize,
    pub companies: usize,
    pub seed: u64,
    /// Event time of the last generated change (milliseconds since the epoch); the team's
    /// history ends there.
    pub end_ms: i64,
}

/// What a generated contact is like, and so what must become of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    /// Every field HubSpot needs: created, then updated.
    Complete,
    /// Entered without a last name (parked), completed by a later change (then created).
    CompletedLater,
    /// Without a last name for good: parked.
    NoLastName,
    /// Known only by a LinkedIn profile, no email: parked (email is mandatory).
    LinkedInOnly,
    /// No email, LinkedIn URL or company domain: skipped.
    NoIdentifier,
    /// In a campaign the team keeps out of HubSpot: skipped.
    PrivateCampaign,
    /// A lead status typed by hand on every change: dead-lettered.
    MistypedLeadStatus,
    /// An email address that is not one: dead-lettered.
    BrokenEmail,
}

impl Profile {
    pub const ALL: [Profile; 8] = [
        Profile::Complete,
        Profile::CompletedLater,
        Profile::NoLastName,
        Profile::LinkedInOnly,
        Profile::NoIdentifier,
        Profile::PrivateCampaign,
        Profile::MistypedLeadStatus,
        Profile::BrokenEmail,
    ];

    /// Share of the contacts with this profile (the rest are complete).
    fn share(self) -> f64 {
        match self {
            Profile::Complete => 0.0,
            Profile::CompletedLater => 0.02,
            Profile::NoLastName => 0.02,
            Profile::LinkedInOnly => 0.02,
            Profile::NoIdentifier => 0.025,
            Profile::PrivateCampaign => 0.015,
            Profile::MistypedLeadStatus => 0.02,
            Profile::BrokenEmail => 0.01,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Profile::Complete => "complete: created, then updated",
            Profile::CompletedLater => "no last name at first: parked, created once it arrives",
            Profile::NoLastName => "no last name: parked",
            Profile::LinkedInOnly => "LinkedIn URL but no email: parked",
            Profile::NoIdentifier => "no email, LinkedIn URL or company domain: skipped",
            Profile::PrivateCampaign => "in a campaign kept out of HubSpot: skipped",
            Profile::MistypedLeadStatus => "lead status typed by hand: dead-lettered",
            Profile::BrokenEmail => "malformed email address: dead-lettered",
        }
    }

    /// Whether the contact must end up in HubSpot.
    pub fn reaches_hubspot(self) -> bool {
        matches!(self, Profile::Complete | Profile::CompletedLater)
    }
}

/// A message that is not a decodable upstream event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Garble {
    /// JSON published by a client that skipped the Avro serializer.
    Json,
    /// A record without a value.
    Empty,
    /// Confluent framing with a schema id the registry never issued.
    UnknownSchemaId,
    /// A valid frame and schema id, with the record cut short.
    Truncated,
}

impl Garble {
    const ALL: [Garble; 4] = [
        Garble::Json,
        Garble::Empty,
        Garble::UnknownSchemaId,
        Garble::Truncated,
    ];

    /// The dead letter's error code the process stage gives it.
    pub fn code(self) -> &'static str {
        match self {
            Garble::Json | Garble::Empty => "NOT_CONFLUENT_FRAMED",
            Garble::UnknownSchemaId => "UNKNOWN_SCHEMA_ID",
            Garble::Truncated => "MALFORMED_AVRO",
        }
    }
}

/// What one upstream message carries.
#[derive(Debug, Clone)]
pub enum Payload {
    Contact(ContactChanged),
    Company(CompanyChanged),
    Activity(ActivityRecorded),
    /// Not decodable: `garble` says how; `contact` is the event it was made from.
    Garbled {
        garble: Garble,
        contact: ContactChanged,
    },
}

/// One message to publish, in order.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub key: String,
    pub payload: Payload,
    /// A second delivery of the previous message (a producer retry upstream).
    pub redelivery: bool,
    /// Part of the live changes that follow the backfill of the team's history.
    pub live: bool,
    /// What the process stage alone decides for it, when the generator knows:
    /// `(status, reason code)`, e.g. `("skipped", "NO_IDENTIFIER")`.
    pub decided: Option<(&'static str, &'static str)>,
    /// For an activity event: everything that must become of it.
    pub activity: Option<Fate>,
}

impl Upstream {
    /// The event id, for decodable events.
    pub fn event_id(&self) -> Option<&str> {
        match &self.payload {
            Payload::Contact(event) => Some(&event.event_id),
            Payload::Company(event) => Some(&event.event_id),
            Payload::Activity(event) => Some(&event.event_id),
            Payload::Garbled { .. } => None,
        }
    }

    /// The event id of the deal command this activity event makes, if it makes one.
    pub fn deal_event_id(&self) -> Option<String> {
        let id = self.event_id()?;
        self.activity?.deal.map(|_| deal_event_id(id))
    }

    /// The ids whose outcomes a run waits for: the event's, and its deal command's.
    pub fn awaited(&self) -> Vec<String> {
        self.event_id()
            .map(str::to_string)
            .into_iter()
            .chain(self.deal_event_id())
            .collect()
    }
}

/// The event id of the deal command an activity event makes: `{event id}:deal`.
pub fn deal_event_id(event_id: &str) -> String {
    format!("{event_id}{DEAL_EVENT_SUFFIX}")
}

/// What the generator knows must happen.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    pub contacts: usize,
    pub companies: usize,
    /// Contacts by profile.
    pub profiles: BTreeMap<Profile, usize>,
    /// Distinct events published, by object.
    pub contact_events: usize,
    pub company_events: usize,
    /// Events among them that update a record created earlier.
    pub contact_updates: usize,
    pub company_updates: usize,
    pub redeliveries: usize,
    pub garbled: BTreeMap<Garble, usize>,
    /// Messages among all of them that are live changes rather than history.
    pub live_messages: usize,
    /// Contacts that must be in HubSpot at the end.
    pub contacts_in_hubspot: usize,
    /// Companies that must be in HubSpot at the end.
    pub companies_in_hubspot: usize,
    /// Distinct events per outcome the process stage decides on its own: `(status, code)`.
    pub decided: BTreeMap<(&'static str, &'static str), usize>,
    /// Dead letters per error code the generator can predict (one per message, so a redelivered
    /// bad event counts twice).
    pub dead_letters: BTreeMap<&'static str, usize>,
    /// Activity events published (a producer's retry has an event id of its own).
    pub activity_events: usize,
    /// Of them, activities the producer sent again under a new event id.
    pub activity_retries: usize,
    /// Activity events per outcome: `(status, code)`.
    pub activity_outcomes: BTreeMap<(&'static str, &'static str), usize>,
    /// Activities that must be in HubSpot, per object type (notes, emails, calls...).
    pub activities_in_hubspot: BTreeMap<ObjectType, usize>,
    /// Deal commands (one per reply in the deal campaign the rules let through), by fate.
    pub deal_commands: BTreeMap<DealFate, usize>,
    /// Deals that must be in HubSpot: one per contact and campaign with a written deal command.
    pub deals_in_hubspot: usize,
}

impl Expected {
    pub fn garbled_total(&self) -> usize {
        self.garbled.values().sum()
    }
}

#[derive(Debug)]
pub struct Team {
    pub messages: Vec<Upstream>,
    pub expected: Expected,
}

#[derive(Debug, Clone)]
struct Company {
    id: String,
    name: String,
    domain: String,
    industry: String,
    owner: usize,
    /// How the company spells its people's addresses.
    email_style: u8,
    /// Whether upstream knows the domain only through the website.
    website_only: bool,
}

#[derive(Debug, Clone)]
struct Person {
    id: String,
    profile: Profile,
    first: Option<String>,
    last: Option<String>,
    email: Option<String>,
    linkedin: Option<String>,
    company: Option<usize>,
    title: Option<String>,
    phone: Option<String>,
    owner: usize,
    lead_status: Option<String>,
    campaign: Option<String>,
    source: &'static str,
    lead_score: u32,
}

/// A change at a point of the team's history.
#[derive(Debug, Clone, Copy)]
enum Happening {
    CompanyCreated(usize),
    CompanyRenamed(usize),
    CompanyIndustry(usize),
    ContactCreated(usize),
    ContactUpdated(usize, Update),
    /// One of the person's activities.
    Activity(usize, Step),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Update {
    Title,
    LeadStatus,
    MistypedLeadStatus,
    Phone,
    FirstName,
    Owner,
    /// The whole record sent again, nothing changed (a periodic upstream sync).
    Resend,
    LastNameArrives,
}

/// Generates the team for `options`.
/// The same team as another team of the platform: every event names `team_id`. Upstream ids
/// stay as generated, so two such teams share contact and company ids (and some emails), which
/// must still end apart, each in its own team's portal. Without `garbled`, its undecodable
/// messages are left out: their dead letters name no event and so no team, and one team's
/// suffice.
pub fn for_team(mut team: Team, team_id: &str, garbled: bool) -> Team {
    if !garbled {
        team.messages
            .retain(|m| !matches!(m.payload, Payload::Garbled { .. }));
        for (garble, count) in std::mem::take(&mut team.expected.garbled) {
            if let Some(letters) = team.expected.dead_letters.get_mut(garble.code()) {
                *letters = letters.saturating_sub(count);
            }
        }
        team.expected.dead_letters.retain(|_, letters| *letters > 0);
    }
    for message in &mut team.messages {
        match &mut message.payload {
            Payload::Contact(event) | Payload::Garbled { contact: event, .. } => {
                event.team_id = team_id.to_string();
            }
            Payload::Company(event) => event.team_id = team_id.to_string(),
            Payload::Activity(event) => event.team_id = team_id.to_string(),
        }
    }
    team
}

pub fn generate(options: &TeamOptions) -> Team {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let companies = make_companies(&mut rng, options.companies.max(1));
    let people = make_people(&mut rng, options.contacts, &companies);

    let span = (options.contacts.max(1) as u64) * TICKS_PER_CONTACT;
    let mut plan: Vec<(u64, Happening)> = Vec::new();
    // Companies are imported first, people throughout.
    let company_span = (span * 3 / 10).max(1);
    for index in 0..companies.len() {
        let tick = company_span * index as u64 / companies.len() as u64;
        plan.push((tick, Happening::CompanyCreated(index)));
        if rng.random_bool(0.15) {
            let later = rng.random_range(tick + 1..=span);
            let change = if rng.random_bool(0.6) {
                Happening::CompanyRenamed(index)
            } else {
                Happening::CompanyIndustry(index)
            };
            plan.push((later, change));
        }
    }
    let mut created_at = Vec::with_capacity(people.len());
    // When each person's activities may start: once the contact can be in HubSpot (when it
    // ever can), so that each activity's fate does not hang on which of the two comes first.
    let mut activities_from = Vec::with_capacity(people.len());
    for (index, person) in people.iter().enumerate() {
        let created = index as u64 * TICKS_PER_CONTACT + rng.random_range(0..TICKS_PER_CONTACT);
        created_at.push(created);
        plan.push((created, Happening::ContactCreated(index)));
        let mut complete_at = created;
        if person.profile == Profile::CompletedLater {
            let later = created + rng.random_range(span / 10..=span / 2).max(1);
            plan.push((
                later,
                Happening::ContactUpdated(index, Update::LastNameArrives),
            ));
            complete_at = later;
        }
        activities_from.push(complete_at);
    }
    // The activities draw from a random source of their own: the rest of the team is the same
    // with or without them.
    let mut activity_rng = StdRng::seed_from_u64(options.seed ^ ACTIVITY_SEED);
    let spacing = (span / 40).max(2);
    for (index, person) in people.iter().enumerate() {
        let steps = activities::stream(&mut activity_rng, person.campaign.is_some(), spacing);
        for step in steps {
            plan.push((
                activities_from[index] + step.after,
                Happening::Activity(index, step),
            ));
        }
    }
    // About three events in ten are repeats: the same people changed again, some many times.
    let updatable: Vec<usize> = (0..people.len())
        .filter(|&i| people[i].profile != Profile::MistypedLeadStatus)
        .collect();
    let hot: Vec<usize> = updatable
        .iter()
        .copied()
        .filter(|_| rng.random_bool(0.2))
        .collect();
    let updates = options.contacts * 43 / 100;
    for _ in 0..updates {
        let pool = if !hot.is_empty() && rng.random_bool(0.6) {
            &hot
        } else {
            &updatable
        };
        let Some(&index) = pool.choose(&mut rng) else {
            break;
        };
        let created = created_at[index];
        // A quarter follow within moments (and meet their record in the sink's batch window),
        // the rest come much later.
        let delay = if rng.random_bool(0.25) {
            rng.random_range(1..=40)
        } else {
            rng.random_range((span / 20).max(1)..=(span / 2).max(2))
        };
        let update = pick_update(&mut rng, &people[index]);
        plan.push((created + delay, Happening::ContactUpdated(index, update)));
    }
    // Order by time; within a tick, in the order planned.
    let mut plan: Vec<(u64, usize, Happening)> = plan
        .into_iter()
        .enumerate()
        .map(|(seq, (tick, what))| (tick, seq, what))
        .collect();
    plan.sort_by_key(|&(tick, seq, _)| (tick, seq));

    let last_tick = plan.last().map_or(0, |&(tick, _, _)| tick);
    let names_used = companies.iter().map(|c| c.name.to_lowercase()).collect();
    let mut builder = Builder {
        names_used,
        rng,
        companies,
        people,
        expected: Expected::default(),
        messages: Vec::new(),
        end_ms: options.end_ms,
        last_tick,
        contact_known: HashSet::new(),
        activity_rng,
        activities_made: 0,
    };
    for (tick, _, happening) in plan {
        builder.happen(tick, happening);
    }
    builder.finish()
}

fn pick_update(rng: &mut StdRng, person: &Person) -> Update {
    if person.profile != Profile::Complete {
        return Update::Title;
    }
    let roll = rng.random_range(0..100);
    match roll {
        0..28 => Update::Title,
        28..52 => Update::LeadStatus,
        52..62 => Update::Phone,
        62..68 => Update::FirstName,
        68..78 => Update::Owner,
        78..91 => Update::Resend,
        _ => Update::MistypedLeadStatus,
    }
}

fn make_companies(rng: &mut StdRng, count: usize) -> Vec<Company> {
    let mut domains = HashSet::new();
    let mut names = HashSet::new();
    let mut companies = Vec::with_capacity(count);
    while companies.len() < count {
        let stem = *names::COMPANY_STEMS.choose(rng).unwrap_or(&"Acme");
        let (kind, industry) = *names::COMPANY_KINDS
            .choose(rng)
            .unwrap_or(&("Labs", "Research"));
        let suffix = *names::COMPANY_SUFFIXES.choose(rng).unwrap_or(&"");
        let base = format!("{stem} {kind}");
        let mut name = if suffix.is_empty() {
            base.clone()
        } else {
            format!("{base} {suffix}")
        };
        let tld = *names::TLDS.choose(rng).unwrap_or(&"com");
        let mut domain = format!("{}.{tld}", slug(&base));
        let mut n = 2;
        while domains.contains(&domain) || names.contains(&name.to_lowercase()) {
            domain = format!("{}{n}.{tld}", slug(&base));
            name = format!("{base} {}", roman(n));
            n += 1;
        }
        domains.insert(domain.clone());
        names.insert(name.to_lowercase());
        let index = companies.len();
        companies.push(Company {
            id: format!("co_{}", 5_001 + index),
            name,
            domain,
            industry: industry.to_string(),
            owner: rng.random_range(0..names::SALES_REPS.len()),
            email_style: rng.random_range(0..5),
            website_only: rng.random_bool(0.05),
        });
    }
    companies
}

fn roman(n: usize) -> String {
    const NUMERALS: [&str; 10] = ["", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"];
    if n < NUMERALS.len() {
        NUMERALS[n].to_string()
    } else {
        n.to_string()
    }
}

/// Exactly `share` of the contacts per profile (at least one each when there is room), the rest
/// complete, in random order.
fn profiles(rng: &mut StdRng, count: usize) -> Vec<Profile> {
    let mut assigned = Vec::with_capacity(count);
    let special = Profile::ALL.len() - 1;
    for profile in Profile::ALL.into_iter().skip(1) {
        let mut n = (count as f64 * profile.share()).round() as usize;
        if n == 0 && count >= special * 4 {
            n = 1;
        }
        assigned.extend(std::iter::repeat_n(profile, n));
    }
    assigned.truncate(count);
    assigned.resize(count, Profile::Complete);
    // Fisher-Yates with the team's own random source.
    for i in (1..assigned.len()).rev() {
        let j = rng.random_range(0..=i);
        assigned.swap(i, j);
    }
    assigned
}

fn make_people(rng: &mut StdRng, count: usize, companies: &[Company]) -> Vec<Person> {
    let mut emails: HashSet<String> = HashSet::new();
    let mut people = Vec::with_capacity(count);
    for (index, profile) in profiles(rng, count).into_iter().enumerate() {
        let first = (*names::FIRST_NAMES.choose(rng).unwrap_or(&"Alex")).to_string();
        let last = (*names::LAST_NAMES.choose(rng).unwrap_or(&"Smith")).to_string();
        // Popular companies get more people.
        let company = {
            let a = rng.random_range(0..companies.len());
            let b = rng.random_range(0..companies.len());
            a.min(b)
        };
        let personal = rng.random_bool(0.06);
        let address = |emails: &mut HashSet<String>, rng: &mut StdRng| {
            let (f, l) = (slug(&first), slug(&last));
            let (local, domain) = if personal {
                let domain = *names::PERSONAL_EMAIL_DOMAINS
                    .choose(rng)
                    .unwrap_or(&"gmail.com");
                (format!("{f}.{l}"), domain.to_string())
            } else {
                let c = &companies[company];
                let local = match c.email_style {
                    0 => format!("{f}.{l}"),
                    1 => format!("{}{l}", &f[..1]),
                    2 => f.clone(),
                    3 => format!("{f}{}", &l[..1]),
                    _ => format!("{f}_{l}"),
                };
                (local, c.domain.clone())
            };
            let mut email = format!("{local}@{domain}");
            let mut n = 2;
            while emails.contains(&email) {
                email = format!("{local}{n}@{domain}");
                n += 1;
            }
            emails.insert(email.clone());
            email
        };
        let linkedin = format!(
            "https://www.linkedin.com/in/{}-{}-{:04x}",
            slug(&first),
            slug(&last),
            rng.random_range(0..0x10000)
        );
        let mut person = Person {
            id: format!("ct_{}", 200_001 + index),
            profile,
            first: Some(first.clone()),
            last: Some(last.clone()),
            email: None,
            linkedin: rng.random_bool(0.6).then(|| linkedin.clone()),
            company: Some(company),
            title: Some((*names::JOB_TITLES.choose(rng).unwrap_or(&"Founder")).to_string()),
            phone: rng.random_bool(0.7).then(|| phone(rng)),
            owner: companies[company].owner,
            lead_status: Some(names::LEAD_STATUSES[rng.random_range(0..2)].to_string()),
            campaign: rng
                .random_bool(0.5)
                .then(|| (*names::CAMPAIGNS.choose(rng).unwrap_or(&"")).to_string()),
            source: names::LEAD_SOURCES
                .choose(rng)
                .copied()
                .unwrap_or("website"),
            lead_score: rng.random_range(0..100),
        };
        match profile {
            Profile::Complete => {
                person.email = Some(address(&mut emails, rng));
                if rng.random_bool(0.03) {
                    person.first = None;
                }
            }
            Profile::CompletedLater | Profile::NoLastName => {
                person.email = Some(address(&mut emails, rng));
                person.last = None;
            }
            Profile::LinkedInOnly => {
                person.linkedin = Some(linkedin);
                person.company = None;
            }
            Profile::NoIdentifier => {
                person.linkedin = None;
                person.company = None;
            }
            Profile::PrivateCampaign => {
                person.email = Some(address(&mut emails, rng));
                person.campaign = Some(names::PRIVATE_CAMPAIGN.to_string());
            }
            Profile::MistypedLeadStatus => {
                person.email = Some(address(&mut emails, rng));
                person.lead_status = Some(
                    (*names::MISTYPED_LEAD_STATUSES.choose(rng).unwrap_or(&"new")).to_string(),
                );
            }
            Profile::BrokenEmail => {
                let (f, l) = (slug(&first), slug(&last));
                let domain = &companies[company].domain;
                let host = domain.split('.').next().unwrap_or("mail");
                person.email = Some(match rng.random_range(0..4) {
                    0 => format!("{f}.{l}@{host}"),
                    1 => format!("{f}.{l}.{domain}"),
                    2 => format!("{first} {last}@{domain}"),
                    _ => format!("{f}.{l}@@{domain}"),
                });
            }
        }
        people.push(person);
    }
    people
}

fn phone(rng: &mut StdRng) -> String {
    match rng.random_range(0..5) {
        0 | 1 => format!(
            "+1 ({}) 555-{:04}",
            [212, 312, 415, 512, 617, 646, 720, 206][rng.random_range(0..8)],
            rng.random_range(100..10_000)
        ),
        2 => format!("+44 20 7946 {:04}", rng.random_range(0..10_000)),
        3 => format!(
            "+49 30 {:04} {:04}",
            rng.random_range(1_000..10_000),
            rng.random_range(0..10_000)
        ),
        _ => format!(
            "+33 1 {:02} {:02} {:02} {:02}",
            rng.random_range(10..100),
            rng.random_range(0..100),
            rng.random_range(0..100),
            rng.random_range(0..100)
        ),
    }
}

struct Builder {
    rng: StdRng,
    companies: Vec<Company>,
    people: Vec<Person>,
    expected: Expected,
    messages: Vec<Upstream>,
    end_ms: i64,
    last_tick: u64,
    /// Contacts whose creation was published.
    contact_known: HashSet<usize>,
    /// Every company name given so far, lower-cased.
    names_used: HashSet<String>,
    /// The activities' own random source.
    activity_rng: StdRng,
    activities_made: usize,
}

impl Builder {
    fn event_id(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string()
    }

    fn time(&self, tick: u64) -> i64 {
        let back = i64::try_from(self.last_tick - tick).unwrap_or(i64::MAX / 2000);
        self.end_ms - back * 1_000
    }

    fn rep(&self, owner: usize) -> Actor {
        let (user, _) = names::SALES_REPS[owner % names::SALES_REPS.len()];
        Actor {
            user_id: user.to_string(),
            email: None,
            kind: ActorKind::User,
        }
    }

    fn happen(&mut self, tick: u64, happening: Happening) {
        match happening {
            Happening::CompanyCreated(index) => {
                let event = self.company_event(index, tick, ChangeKind::Created, Vec::new());
                self.expected.company_events += 1;
                self.push_company(event);
            }
            Happening::CompanyRenamed(index) => {
                // Names stay unique: HubSpot's companies are matched by name when their
                // domain finds nothing, so two upstream companies sharing a name (even at
                // different times) could meet in one HubSpot record.
                let current = self.companies[index].name.clone();
                let base = current.trim_end_matches(" Inc.");
                let renamed = [
                    format!("{base} Inc."),
                    format!("{base} Group"),
                    format!("{base} Holdings"),
                    format!("{base} International"),
                ]
                .into_iter()
                .chain((2..).map(|n| format!("{base} {}", roman(n))))
                .find(|name| *name != current && !self.names_used.contains(&name.to_lowercase()))
                .unwrap_or(current);
                self.names_used.insert(renamed.to_lowercase());
                self.companies[index].name = renamed;
                let event =
                    self.company_event(index, tick, ChangeKind::Updated, vec!["name".into()]);
                self.expected.company_events += 1;
                self.expected.company_updates += 1;
                self.push_company(event);
            }
            Happening::CompanyIndustry(index) => {
                let (_, industry) = *names::COMPANY_KINDS
                    .choose(&mut self.rng)
                    .unwrap_or(&("Labs", "Research"));
                self.companies[index].industry = industry.to_string();
                let event =
                    self.company_event(index, tick, ChangeKind::Updated, vec!["industry".into()]);
                self.expected.company_events += 1;
                self.expected.company_updates += 1;
                self.push_company(event);
            }
            Happening::ContactCreated(index) => {
                let event = self.contact_event(index, tick, ChangeKind::Created, Vec::new());
                self.contact_known.insert(index);
                self.expected.contact_events += 1;
                let decided = self.decided(index);
                self.push_contact(event, decided);
            }
            Happening::ContactUpdated(index, update) => {
                if !self.contact_known.contains(&index) {
                    return;
                }
                let before = self.people[index].lead_status.clone();
                let (changed, decided) = self.apply(index, update);
                let event = self.contact_event(index, tick, ChangeKind::Updated, changed);
                if update == Update::MistypedLeadStatus {
                    // Upstream puts the value back; HubSpot never saw it.
                    self.people[index].lead_status = before;
                }
                self.expected.contact_events += 1;
                self.expected.contact_updates += 1;
                self.push_contact(event, decided);
            }
            Happening::Activity(index, step) => {
                let event = self.activity_event(index, tick, step);
                let person = &self.people[index];
                let fate = activities::fate(&activities::Facts {
                    kind: step.kind,
                    campaign: event.campaign.as_ref().map(|c| c.campaign_id.as_str()),
                    self_initiated: step.self_initiated,
                    email_valid: person.profile != Profile::BrokenEmail,
                    contact_in_hubspot: person.profile.reaches_hubspot(),
                });
                let message = self.activity_message(event, fate);
                self.messages.push(message);
            }
        }
    }

    /// Changes a person as `update` says; returns the changed fields and, when the process stage
    /// alone decides the event, its outcome.
    fn apply(
        &mut self,
        index: usize,
        update: Update,
    ) -> (Vec<String>, Option<(&'static str, &'static str)>) {
        let rng = &mut self.rng;
        let person = &mut self.people[index];
        let changed: Vec<&str> = match update {
            Update::Title => {
                let current = person.title.clone().unwrap_or_default();
                let promoted = names::PROMOTIONS
                    .iter()
                    .find(|(from, _)| *from == current)
                    .map(|(_, to)| (*to).to_string());
                person.title = Some(promoted.unwrap_or_else(|| {
                    (*names::JOB_TITLES.choose(rng).unwrap_or(&"Founder")).to_string()
                }));
                vec!["job_title"]
            }
            Update::LeadStatus => {
                let at = person
                    .lead_status
                    .as_deref()
                    .and_then(|s| names::LEAD_STATUSES.iter().position(|o| *o == s))
                    .unwrap_or(0);
                let next = (at + 1).min(names::LEAD_STATUSES.len() - 1);
                person.lead_status = Some(names::LEAD_STATUSES[next].to_string());
                person.lead_score = (person.lead_score + rng.random_range(5..20)).min(100);
                vec!["lead_status", "lead_score"]
            }
            Update::MistypedLeadStatus => {
                person.lead_status = Some(
                    (*names::MISTYPED_LEAD_STATUSES.choose(rng).unwrap_or(&"new")).to_string(),
                );
                vec!["lead_status"]
            }
            Update::Phone => {
                person.phone = Some(phone(rng));
                vec!["phone"]
            }
            Update::FirstName => {
                let current = person.first.clone().unwrap_or_default();
                match names::NICKNAMES.iter().find(|(short, _)| *short == current) {
                    Some((_, full)) => person.first = Some((*full).to_string()),
                    None => {
                        person.first =
                            Some((*names::FIRST_NAMES.choose(rng).unwrap_or(&"Alex")).to_string())
                    }
                }
                vec!["first_name"]
            }
            Update::Owner => {
                person.owner =
                    (person.owner + 1 + rng.random_range(0..3)) % names::SALES_REPS.len();
                vec!["owner_user_id"]
            }
            Update::Resend => Vec::new(),
            Update::LastNameArrives => {
                person.last =
                    Some((*names::LAST_NAMES.choose(rng).unwrap_or(&"Smith")).to_string());
                vec!["last_name"]
            }
        };
        let changed = changed.into_iter().map(str::to_string).collect();
        let decided = if update == Update::MistypedLeadStatus {
            Some(("dead_lettered", "INVALID_OPTION"))
        } else {
            self.decided(index)
        };
        (changed, decided)
    }

    /// What the process stage alone decides for every event of this person.
    fn decided(&self, index: usize) -> Option<(&'static str, &'static str)> {
        match self.people[index].profile {
            Profile::NoIdentifier => Some(("skipped", "NO_IDENTIFIER")),
            Profile::PrivateCampaign => Some(("skipped", "CAMPAIGN_PUSH_DISABLED")),
            Profile::MistypedLeadStatus => Some(("dead_lettered", "INVALID_OPTION")),
            Profile::BrokenEmail => Some(("dead_lettered", "INVALID_EMAIL")),
            Profile::Complete
            | Profile::CompletedLater
            | Profile::NoLastName
            | Profile::LinkedInOnly => None,
        }
    }

    fn contact_event(
        &mut self,
        index: usize,
        tick: u64,
        change: ChangeKind,
        changed_fields: Vec<String>,
    ) -> ContactChanged {
        let event_id = self.event_id();
        let time = self.time(tick);
        let shouting = self.rng.random_bool(0.1);
        let person = &self.people[index];
        let company = person.company.map(|c| &self.companies[c]);
        let actor = if change == ChangeKind::Created && person.source == "event" {
            Actor {
                user_id: "csv-import".to_string(),
                email: None,
                kind: ActorKind::System,
            }
        } else {
            self.rep(person.owner)
        };
        let mut fields = BTreeMap::new();
        fields.insert("lead_status".to_string(), person.lead_status.clone());
        fields.insert(
            "lead_score".to_string(),
            Some(person.lead_score.to_string()),
        );
        fields.insert("source".to_string(), Some(person.source.to_string()));
        // Some upstream clients send the address as the person typed it.
        let email = person.email.as_ref().map(|e| {
            if shouting && person.profile != Profile::BrokenEmail {
                capitalise_email(e)
            } else {
                e.clone()
            }
        });
        ContactChanged {
            event_id,
            event_time: time,
            team_id: TEAM_ID.to_string(),
            contact_id: person.id.clone(),
            change,
            actor: Some(actor),
            email,
            linkedin_url: person.linkedin.clone(),
            first_name: person.first.clone(),
            last_name: person.last.clone(),
            company_name: match person.profile {
                Profile::NoIdentifier => {
                    Some(self.companies[index % self.companies.len()].name.clone())
                }
                _ => company.map(|c| c.name.clone()),
            },
            company_domain: company.map(|c| c.domain.clone()),
            job_title: person.title.clone(),
            phone: person.phone.clone(),
            owner_user_id: Some(names::SALES_REPS[person.owner].0.to_string()),
            campaign_id: person.campaign.clone(),
            fields,
            changed_fields,
        }
    }

    fn company_event(
        &mut self,
        index: usize,
        tick: u64,
        change: ChangeKind,
        changed_fields: Vec<String>,
    ) -> CompanyChanged {
        let event_id = self.event_id();
        let time = self.time(tick);
        let company = &self.companies[index];
        let mut fields = BTreeMap::new();
        fields.insert(
            "employees".to_string(),
            Some(((index * 37) % 5_000 + 10).to_string()),
        );
        CompanyChanged {
            event_id,
            event_time: time,
            team_id: TEAM_ID.to_string(),
            company_id: company.id.clone(),
            change,
            actor: Some(if change == ChangeKind::Created {
                Actor {
                    user_id: "crm-import".to_string(),
                    email: None,
                    kind: ActorKind::System,
                }
            } else {
                self.rep(company.owner)
            }),
            name: Some(company.name.clone()),
            domain: (!company.website_only).then(|| company.domain.clone()),
            website: Some(format!("https://www.{}/", company.domain)),
            industry: Some(company.industry.clone()),
            owner_user_id: Some(names::SALES_REPS[company.owner].0.to_string()),
            fields,
            changed_fields,
        }
    }

    fn push_contact(
        &mut self,
        event: ContactChanged,
        decided: Option<(&'static str, &'static str)>,
    ) {
        if let Some(key) = decided {
            *self.expected.decided.entry(key).or_default() += 1;
        }
        let redeliver = self.rng.random_bool(0.005);
        let message = Upstream {
            key: event.contact_id.clone(),
            payload: Payload::Contact(event),
            redelivery: false,
            live: false,
            decided,
            activity: None,
        };
        self.push(message, redeliver);
        // Now and then a message that is not an event at all.
        if self.rng.random_bool(0.001) {
            self.garble();
        }
    }

    /// One activity of person `index`, as the platform records it.
    fn activity_event(&mut self, index: usize, tick: u64, step: Step) -> ActivityRecorded {
        use ActivityType as Kind;
        self.activities_made += 1;
        let event_id = uuid::Builder::from_random_bytes(self.activity_rng.random())
            .into_uuid()
            .to_string();
        let activity_id = format!("act_{}", 700_000 + self.activities_made);
        let event_time = self.time(tick);
        let person = &self.people[index];
        let company = person.company.map(|c| &self.companies[c]);
        let company_name = company.map_or("your team", |c| c.name.as_str());
        let first = person.first.as_deref().unwrap_or("there");
        let variant = step.variant as usize;
        let pick = |list: &[&'static str]| list[variant % list.len()];
        let rep = names::SALES_REPS[person.owner % names::SALES_REPS.len()].0;
        let sender = match step.sent_by {
            SentBy::Owner => Some(Sender {
                user_id: rep.to_string(),
                email: None,
            }),
            SentBy::Sdr(at) => names::SDRS.get(at).map(|(user, email)| Sender {
                user_id: (*user).to_string(),
                email: Some((*email).to_string()),
            }),
            SentBy::Nobody => None,
        };
        // What the lead did is recorded by the platform's tracking; the rest by the rep.
        let tracked = match step.kind {
            Kind::EmailOpened
            | Kind::EmailClicked
            | Kind::EmailReplied
            | Kind::EmailBounced
            | Kind::LinkedinInviteAccepted
            | Kind::LinkedinReplied
            | Kind::LinkedinProfileVisited => true,
            Kind::Unsubscribed => step.self_initiated == Some(true),
            _ => false,
        };
        let actor = if tracked {
            Actor {
                user_id: "engagement-tracker".to_string(),
                email: None,
                kind: ActorKind::System,
            }
        } else {
            Actor {
                user_id: sender
                    .as_ref()
                    .map_or(rep.to_string(), |s| s.user_id.clone()),
                email: None,
                kind: ActorKind::User,
            }
        };
        let campaign = step.sequence_step.and_then(|n| {
            person.campaign.as_ref().map(|id| CampaignRef {
                campaign_id: id.clone(),
                name: names::campaign_name(id).map(str::to_string),
                sequence_step: Some(n),
            })
        });
        let email_subject = {
            let at = step
                .sequence_step
                .and_then(|n| usize::try_from(n - 1).ok())
                .unwrap_or(0)
                .min(names::EMAIL_SUBJECTS.len() - 1);
            names::EMAIL_SUBJECTS[at].replace("{company}", company_name)
        };
        let linkedin = person.linkedin.clone();
        let text = |s: &str| Some(s.to_string());
        let (subject, body, url, duration_ms, outcome, channel) = match step.kind {
            Kind::EmailSent | Kind::EmailOpened | Kind::EmailBounced => {
                (Some(email_subject), None, None, None, None, "email")
            }
            Kind::EmailClicked => (
                Some(email_subject),
                None,
                text(pick(names::CLICKED_LINKS)),
                None,
                None,
                "email",
            ),
            Kind::EmailReplied => (
                Some(format!("Re: {email_subject}")),
                text(pick(names::REPLIES)),
                None,
                None,
                None,
                "email",
            ),
            Kind::LinkedinInviteSent => (
                None,
                Some(format!(
                    "Hi {first}, I'd like to add you to my professional network."
                )),
                linkedin,
                None,
                None,
                "linkedin",
            ),
            Kind::LinkedinMessageSent => (
                None,
                Some(format!(
                    "Thanks for connecting, {first}! Worth a short call about {company_name}?"
                )),
                linkedin,
                None,
                None,
                "linkedin",
            ),
            Kind::LinkedinReplied => (
                None,
                text("Sure, send me a few times for next week."),
                linkedin,
                None,
                None,
                "linkedin",
            ),
            Kind::LinkedinInviteAccepted | Kind::LinkedinProfileVisited => {
                (None, None, linkedin, None, None, "linkedin")
            }
            Kind::Call => {
                let outcome = pick(names::CALL_OUTCOMES);
                let seconds = if outcome == "connected" {
                    120 + variant % 900
                } else {
                    5 + variant % 40
                };
                (
                    Some(format!("Call with {first}")),
                    None,
                    None,
                    i64::try_from(seconds * 1_000).ok(),
                    text(outcome),
                    "phone",
                )
            }
            Kind::Task => (
                text(pick(names::TASK_SUBJECTS)),
                Some(format!("For {first} at {company_name}")),
                None,
                None,
                None,
                "todo",
            ),
            Kind::MeetingBooked => (
                Some(format!("{} – {company_name}", pick(names::MEETING_TITLES))),
                None,
                None,
                Some(if variant.is_multiple_of(2) { 30 } else { 45 } * 60_000),
                None,
                "calendar",
            ),
            Kind::Unsubscribed => (
                None,
                text(if step.self_initiated == Some(true) {
                    "Unsubscribed through the link in the email"
                } else {
                    "Put on the block list by an operator"
                }),
                None,
                None,
                None,
                "email",
            ),
            Kind::Unknown => (None, None, None, None, None, "other"),
        };
        ActivityRecorded {
            event_id,
            event_time,
            team_id: TEAM_ID.to_string(),
            activity_id,
            contact_id: person.id.clone(),
            company_id: company.map(|c| c.id.clone()),
            contact_email: person.email.clone(),
            activity_type: step.kind,
            activity_type_name: activities::type_name(step.kind).to_string(),
            actor: Some(actor),
            sender,
            campaign,
            unsubscribe_self_initiated: step.self_initiated,
            subject,
            body,
            url,
            duration_ms,
            outcome,
            details: BTreeMap::from([("channel".to_string(), channel.to_string())]),
        }
    }

    /// The message of an activity event whose fate is `fate`, counted where the process stage
    /// decides it.
    fn activity_message(&mut self, event: ActivityRecorded, fate: Fate) -> Upstream {
        let decided = fate.decided_by_process.then_some(fate.outcome);
        if let Some(key) = decided {
            *self.expected.decided.entry(key).or_default() += 1;
        }
        let message = Upstream {
            key: event.contact_id.clone(),
            payload: Payload::Activity(event),
            redelivery: false,
            live: false,
            decided,
            activity: Some(fate),
        };
        self.count_dead_letter(&message);
        message
    }

    /// A few activities of the history sent again by the producer under new event ids, among
    /// the live changes (`live_from` on): by then their first sending has its outcome.
    fn retry_activities(&mut self, live_from: usize) {
        let history: Vec<usize> = self.messages[..live_from]
            .iter()
            .enumerate()
            .filter(|(_, m)| matches!(m.payload, Payload::Activity(_)))
            .map(|(at, _)| at)
            .collect();
        let retries = (history.len() / RETRY_ONE_IN).max(history.len().min(2));
        for _ in 0..retries {
            let Some(&original) = history.choose(&mut self.activity_rng) else {
                break;
            };
            let mut again = self.messages[original].clone();
            let Payload::Activity(event) = &mut again.payload else {
                continue;
            };
            event.event_id = uuid::Builder::from_random_bytes(self.activity_rng.random())
                .into_uuid()
                .to_string();
            let event = event.clone();
            let Some(fate) = again.activity.map(Fate::again) else {
                continue;
            };
            let mut message = self.activity_message(event, fate);
            message.live = true;
            self.expected.activity_retries += 1;
            let at = self
                .activity_rng
                .random_range(live_from..=self.messages.len());
            self.messages.insert(at, message);
        }
    }

    fn push_company(&mut self, event: CompanyChanged) {
        let redeliver = self.rng.random_bool(0.005);
        let message = Upstream {
            key: event.company_id.clone(),
            payload: Payload::Company(event),
            redelivery: false,
            live: false,
            decided: None,
            activity: None,
        };
        self.push(message, redeliver);
    }

    fn push(&mut self, message: Upstream, redeliver: bool) {
        self.count_dead_letter(&message);
        if redeliver {
            let mut again = message.clone();
            again.redelivery = true;
            self.expected.redeliveries += 1;
            self.count_dead_letter(&again);
            self.messages.push(message);
            self.messages.push(again);
        } else {
            self.messages.push(message);
        }
    }

    fn count_dead_letter(&mut self, message: &Upstream) {
        let code = match (&message.payload, message.decided) {
            (Payload::Garbled { garble, .. }, _) => Some(garble.code()),
            (_, Some(("dead_lettered", code))) => Some(code),
            _ => None,
        };
        if let Some(code) = code {
            *self.expected.dead_letters.entry(code).or_default() += 1;
        }
    }

    /// A message that cannot be decoded, made from a real contact's event.
    fn garble(&mut self) {
        let count = self.expected.garbled_total();
        let garble = Garble::ALL[count % Garble::ALL.len()];
        let index = self.rng.random_range(0..self.people.len());
        let tick = self.last_tick;
        let contact = self.contact_event(index, tick, ChangeKind::Updated, Vec::new());
        *self.expected.garbled.entry(garble).or_default() += 1;
        let message = Upstream {
            key: contact.contact_id.clone(),
            payload: Payload::Garbled { garble, contact },
            redelivery: false,
            live: false,
            decided: None,
            activity: None,
        };
        self.count_dead_letter(&message);
        self.messages.push(message);
    }

    fn finish(mut self) -> Team {
        // A few undecodable messages even in a small team.
        while self.expected.garbled_total() < Garble::ALL.len() {
            let at = self.rng.random_range(0..=self.messages.len());
            let before = self.messages.len();
            self.garble();
            if let Some(message) = self.messages.pop() {
                debug_assert_eq!(self.messages.len(), before);
                self.messages.insert(at.min(self.messages.len()), message);
            }
        }
        // The last three messages in ten are the live changes.
        let live_from = self.messages.len() - self.messages.len() * 3 / 10;
        for message in &mut self.messages[live_from..] {
            message.live = true;
        }
        self.retry_activities(live_from);
        self.count_activities();
        let mut expected = self.expected;
        expected.contacts = self.people.len();
        expected.companies = self.companies.len();
        for person in &self.people {
            *expected.profiles.entry(person.profile).or_default() += 1;
        }
        expected.contacts_in_hubspot = self
            .people
            .iter()
            .filter(|p| p.profile.reaches_hubspot())
            .count();
        expected.companies_in_hubspot = self.companies.len();
        expected.live_messages = self.messages.iter().filter(|m| m.live).count();
        Team {
            messages: self.messages,
            expected,
        }
    }
}

impl Builder {
    /// The activity events' outcomes, and the activities and deals HubSpot must hold.
    fn count_activities(&mut self) {
        let expected = &mut self.expected;
        // A deal per contact and campaign.
        let mut deals: BTreeSet<(&str, &str)> = BTreeSet::new();
        let mut written: BTreeSet<&str> = BTreeSet::new();
        for message in &self.messages {
            let (Payload::Activity(event), Some(fate)) = (&message.payload, message.activity)
            else {
                continue;
            };
            expected.activity_events += 1;
            *expected.activity_outcomes.entry(fate.outcome).or_default() += 1;
            if let Some(deal) = fate.deal {
                *expected.deal_commands.entry(deal).or_default() += 1;
                if deal == DealFate::Written
                    && let Some(campaign) = &event.campaign
                {
                    deals.insert((&event.contact_id, &campaign.campaign_id));
                }
            }
            if fate.written()
                && written.insert(&event.activity_id)
                && let Some(object) = activities::stored_as(event.activity_type)
            {
                *expected.activities_in_hubspot.entry(object).or_default() += 1;
            }
        }
        expected.deals_in_hubspot = deals.len();
    }
}

/// `maria.garcia@acme.io` as `Maria.Garcia@Acme.io`.
fn capitalise_email(email: &str) -> String {
    let mut out = String::with_capacity(email.len());
    let mut upper = true;
    for c in email.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        upper = matches!(c, '.' | '@');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn team(contacts: usize, companies: usize, seed: u64) -> Team {
        generate(&TeamOptions {
            contacts,
            companies,
            seed,
            end_ms: 1_750_000_000_000,
        })
    }

    fn ids(team: &Team) -> Vec<Option<String>> {
        team.messages
            .iter()
            .map(|m| m.event_id().map(str::to_string))
            .collect()
    }

    #[test]
    fn a_seed_always_gives_the_same_team() {
        assert_eq!(ids(&team(300, 30, 7)), ids(&team(300, 30, 7)));
        assert_ne!(ids(&team(300, 30, 7)), ids(&team(300, 30, 8)));
    }

    #[test]
    fn every_profile_and_kind_of_message_is_there_even_in_a_small_team() {
        let team = team(300, 30, 1);
        let expected = &team.expected;
        for profile in Profile::ALL {
            assert!(
                expected.profiles.get(&profile).copied().unwrap_or(0) > 0,
                "{profile:?}"
            );
        }
        assert_eq!(expected.profiles.values().sum::<usize>(), 300);
        assert!(expected.garbled_total() >= 4);
        assert!(expected.contact_updates > 0 && expected.company_updates > 0);
        let repeats = expected.contact_updates as f64 / expected.contact_events as f64;
        assert!((0.2..0.4).contains(&repeats), "{repeats}");
        assert!(expected.contacts_in_hubspot < 300 && expected.contacts_in_hubspot > 250);
        let live = expected.live_messages as f64 / team.messages.len() as f64;
        assert!((0.25..0.35).contains(&live), "{live}");
        // History first, then the live changes.
        let first_live = team
            .messages
            .iter()
            .position(|m| m.live)
            .expect("live changes");
        assert!(team.messages[first_live..].iter().all(|m| m.live));
        assert_eq!(expected.companies_in_hubspot, 30);
    }

    #[test]
    fn each_contact_changes_in_time_order_and_first_is_created() {
        let team = team(500, 40, 3);
        let mut last: std::collections::HashMap<&str, i64> = Default::default();
        for message in &team.messages {
            if let Payload::Contact(event) = &message.payload {
                match last.get(event.contact_id.as_str()) {
                    None => assert_eq!(event.change, ChangeKind::Created, "{event:?}"),
                    Some(&before) => assert!(event.event_time >= before),
                }
                last.insert(&event.contact_id, event.event_time);
            }
        }
    }

    #[test]
    fn distinct_emails_for_distinct_people() {
        let team = team(2_000, 50, 11);
        let mut by_email: std::collections::HashMap<String, &str> = Default::default();
        for message in &team.messages {
            if let Payload::Contact(event) = &message.payload
                && let Some(email) = &event.email
            {
                let owner = by_email
                    .entry(email.to_lowercase())
                    .or_insert(&event.contact_id);
                assert_eq!(*owner, event.contact_id, "{email}");
            }
        }
    }

    #[test]
    fn one_company_name_never_stands_for_two_companies() {
        for seed in [1, 42, 99] {
            let team = team(5_000, 300, seed);
            let mut owners: std::collections::HashMap<String, String> = Default::default();
            for message in &team.messages {
                if let Payload::Company(event) = &message.payload {
                    let name = event.name.clone().unwrap_or_default().to_lowercase();
                    let owner = owners
                        .entry(name.clone())
                        .or_insert(event.company_id.clone());
                    assert_eq!(*owner, event.company_id, "seed {seed}: {name}");
                }
            }
        }
    }

    /// The activity events in order, with their messages.
    fn activity_events(team: &Team) -> Vec<(&Upstream, &ActivityRecorded, Fate)> {
        team.messages
            .iter()
            .filter_map(|m| match (&m.payload, m.activity) {
                (Payload::Activity(event), Some(fate)) => Some((m, event, fate)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn activities_follow_the_change_that_lets_their_contact_into_hubspot() {
        let team = team(500, 40, 3);
        // Where each contact can first be found: its creation, or its last name's arrival.
        let mut findable: HashMap<&str, usize> = HashMap::new();
        for (at, message) in team.messages.iter().enumerate() {
            match &message.payload {
                Payload::Contact(event) if event.last_name.is_some() => {
                    findable.entry(&event.contact_id).or_insert(at);
                }
                Payload::Activity(event) => {
                    let fate = message.activity.expect("an activity's fate");
                    if fate.outcome == ("created", "CREATED") {
                        let from = findable.get(event.contact_id.as_str()).copied();
                        assert!(
                            from.is_some_and(|from| from < at),
                            "{} comes before its contact {} can be in HubSpot",
                            event.activity_id,
                            event.contact_id
                        );
                    }
                }
                _ => {}
            }
        }
    }

    #[test]
    fn a_retry_repeats_a_history_activity_among_the_live_changes() {
        let team = team(500, 40, 3);
        let mut first: HashMap<&str, (&Upstream, &ActivityRecorded, Fate)> = HashMap::new();
        let mut retries = 0;
        for (message, event, fate) in activity_events(&team) {
            match first.get(event.activity_id.as_str()) {
                None => {
                    first.insert(&event.activity_id, (message, event, fate));
                }
                Some((original, before, was)) => {
                    retries += 1;
                    assert!(!original.live && message.live, "{}", event.activity_id);
                    assert_ne!(before.event_id, event.event_id);
                    assert_eq!(
                        (before.activity_type, before.event_time),
                        (event.activity_type, event.event_time)
                    );
                    assert_eq!(fate, was.again());
                }
            }
        }
        assert!(retries > 0);
        assert_eq!(retries, team.expected.activity_retries);
    }

    #[test]
    fn the_prediction_counts_every_activity_once_and_each_deal_once() {
        let team = team(300, 30, 7);
        let expected = &team.expected;
        let events = activity_events(&team);
        assert_eq!(events.len(), expected.activity_events);
        assert_eq!(
            expected.activity_outcomes.values().sum::<usize>(),
            events.len()
        );
        for (status, code) in [
            ("created", "CREATED"),
            ("unchanged", "UNCHANGED"),
            ("skipped", "ACTIVITY_TYPE_DISABLED"),
            ("skipped", "CAMPAIGN_PUSH_DISABLED"),
            ("skipped", "UNSUBSCRIBE_NOT_SELF_INITIATED"),
            ("parked", "PARKED_CONTACT_MISSING"),
            ("dead_lettered", "INVALID_EMAIL"),
        ] {
            assert!(
                expected.activity_outcomes.contains_key(&(status, code)),
                "{status} {code}: {:?}",
                expected.activity_outcomes
            );
        }
        let written: HashSet<&str> = events
            .iter()
            .filter(|(_, _, fate)| fate.written())
            .map(|(_, event, _)| event.activity_id.as_str())
            .collect();
        assert_eq!(
            expected.activities_in_hubspot.values().sum::<usize>(),
            written.len()
        );
        assert_eq!(expected.activities_in_hubspot.len(), 5, "every object type");
        let deal_commands = events
            .iter()
            .filter(|(m, _, _)| m.deal_event_id().is_some());
        assert_eq!(
            deal_commands.count(),
            expected.deal_commands.values().sum::<usize>()
        );
        assert!(expected.deals_in_hubspot > 0);
        assert!(
            expected.deals_in_hubspot <= expected.deal_commands[&DealFate::Written],
            "one deal per contact and campaign, however many replies"
        );
        // Every reply in the deal campaign the rules let through makes a deal command.
        for (message, event, fate) in &events {
            let in_deal_campaign = event
                .campaign
                .as_ref()
                .is_some_and(|c| c.campaign_id == names::DEAL_CAMPAIGN);
            let triggers = event.activity_type == ActivityType::EmailReplied
                && in_deal_campaign
                && !fate.decided_by_process;
            assert_eq!(message.deal_event_id().is_some(), triggers, "{event:?}");
            if let Some(id) = message.deal_event_id() {
                assert_eq!(id, format!("{}:deal", event.event_id));
                assert_eq!(message.awaited(), [event.event_id.clone(), id]);
            }
        }
    }

    #[test]
    fn emails_are_spelt_as_people_type_them() {
        assert_eq!(
            capitalise_email("maria.garcia@acme.io"),
            "Maria.Garcia@Acme.Io"
        );
    }
}
