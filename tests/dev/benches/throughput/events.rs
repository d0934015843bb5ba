//! Generated upstream contact events, and the rules and property catalog they are judged by.
//!
//! Everything is deterministic (a fixed seed), so two runs measure the same work. Contacts look
//! like what a sales-engagement platform sends: a person at one of a few thousand companies, with
//! a mapped owner most of the time, a phone on about half of them, two custom fields, and emails
//! in mixed case (the processors normalise them).

use hubsync::catalog;
use hubsync_dev::sandbox_config::render_sandbox_config;
use hubsync_hubspot::response::property_definitions;
use hubsync_processors::catalog::{PropertyCatalog, check_rules};
use hubsync_processors::rules::Rules;
use hubsync_sandbox::hubspot::model::{ObjectType, default_properties};
use hubsync_schemas::{Actor, ActorKind, ChangeKind, ContactChanged, HubSpotObjectType};
use std::collections::BTreeMap;

/// The team every generated event belongs to.
pub const TEAM: &str = hubsync_dev::sandbox_config::TEAM_ID;

/// Upstream users and the sandbox owners the bench's `[users]` section maps them to; the last
/// user has no mapping, as in a real team where someone joined after the config was written.
const USERS: [(&str, Option<&str>); 5] = [
    ("usr_ada", Some("70000001")),
    ("usr_grace", Some("70000002")),
    ("usr_alan", Some("70000003")),
    ("usr_katherine", Some("70000004")),
    ("usr_new_hire", None),
];

/// The one generated user without a mapping.
const UNMAPPED_USER: &str = "usr_new_hire";

const FIRST_NAMES: [&str; 16] = [
    "Ada",
    "Grace",
    "Alan",
    "Katherine",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Radia",
    "Ken",
    "Margaret",
    "Dennis",
    "Hedy",
    "Tim",
    "Sophie",
];

const LAST_NAMES: [&str; 16] = [
    "Lovelace", "Hopper", "Turing", "Johnson", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus",
    "Perlman", "Thompson", "Hamilton", "Ritchie", "Lamarr", "Lee", "Wilson",
];

const TITLES: [&str; 10] = [
    "VP Operations",
    "Head of Sales",
    "Account Executive",
    "CTO",
    "Procurement Lead",
    "Office Manager",
    "Founder",
    "Marketing Director",
    "Engineering Manager",
    "Analyst",
];

/// Distinct company domains contacts are spread over.
const COMPANIES: u64 = 2_000;

/// A small, fast, deterministic random source (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A version-4-shaped UUID, lowercase and hyphenated.
    pub fn uuid(&mut self) -> String {
        let bits = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        uuid::Builder::from_random_bytes(bits.to_be_bytes())
            .into_uuid()
            .hyphenated()
            .to_string()
    }
}

/// What a generated contact carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Share of contacts with a phone number (mapped with `fill_if_empty` in the sandbox config,
    /// which costs the sink a read before the write).
    pub phone_share: f64,
    /// Share of contacts whose owner is a mapped upstream user (the sandbox config's
    /// `owner_strategy = "if_empty"` then also costs the sink a read); the others are owned by a
    /// user the config does not map.
    pub mapped_owner_share: f64,
}

impl Shape {
    /// Contacts whose commands the sink can write with one upsert: no fill-if-empty values.
    pub const PLAIN: Shape = Shape {
        phone_share: 0.0,
        mapped_owner_share: 0.0,
    };
    /// Contacts as a team sends them: most owned by mapped users, half with a phone.
    pub const TYPICAL: Shape = Shape {
        phone_share: 0.5,
        mapped_owner_share: 0.8,
    };
}

/// One upstream contact, from which its events are made.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: String,
    pub email: String,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub company_domain: String,
    pub company_name: String,
    pub job_title: &'static str,
    pub phone: Option<String>,
    pub owner: &'static str,
}

impl Contact {
    /// Contact number `index`; the same index always gives the same contact.
    pub fn generate(index: u64, shape: Shape, rng: &mut Rng) -> Self {
        let first_name = *rng.pick(&FIRST_NAMES);
        let last_name = *rng.pick(&LAST_NAMES);
        let company = rng.below(COMPANIES);
        let company_domain = format!("company{company}.example");
        // Mixed case in about a third of the emails, as people type them.
        let email = if rng.chance(0.33) {
            format!("{first_name}.{last_name}.{index}@Company{company}.example")
        } else {
            format!("{first_name}.{last_name}.{index}@{company_domain}").to_ascii_lowercase()
        };
        Contact {
            id: format!("ct_{index}"),
            email,
            first_name,
            last_name,
            company_name: format!("Company {company}"),
            company_domain,
            job_title: TITLES[rng.below(TITLES.len() as u64) as usize],
            phone: rng
                .chance(shape.phone_share)
                .then(|| format!("+1 415 555 {:04}", index % 10_000)),
            owner: if rng.chance(shape.mapped_owner_share) {
                USERS[rng.below(USERS.len() as u64 - 1) as usize].0
            } else {
                UNMAPPED_USER
            },
        }
    }

    /// The event upstream sends when the contact is created.
    pub fn created(&self, event_time: i64, rng: &mut Rng) -> ContactChanged {
        ContactChanged {
            event_id: rng.uuid(),
            event_time,
            team_id: TEAM.to_owned(),
            contact_id: self.id.clone(),
            change: ChangeKind::Created,
            actor: Some(Actor {
                user_id: self.owner.to_owned(),
                email: None,
                kind: ActorKind::User,
            }),
            email: Some(self.email.clone()),
            linkedin_url: Some(format!(
                "https://www.linkedin.com/in/{}-{}-{}",
                self.first_name.to_ascii_lowercase(),
                self.last_name.to_ascii_lowercase(),
                &self.id[3..]
            )),
            first_name: Some(self.first_name.to_owned()),
            last_name: Some(self.last_name.to_owned()),
            company_name: Some(self.company_name.clone()),
            company_domain: Some(self.company_domain.clone()),
            job_title: Some(self.job_title.to_owned()),
            phone: self.phone.clone(),
            owner_user_id: Some(self.owner.to_owned()),
            campaign_id: None,
            fields: BTreeMap::from([
                ("lead_score".to_owned(), Some((rng.below(100)).to_string())),
                ("timezone".to_owned(), Some("Europe/Paris".to_owned())),
            ]),
            changed_fields: Vec::new(),
        }
    }

    /// An update that changes the job title (a mapped field): the contact's values now, with
    /// `changed_fields` naming what changed.
    pub fn retitled(&mut self, event_time: i64, rng: &mut Rng) -> ContactChanged {
        let mut title = *rng.pick(&TITLES);
        if title == self.job_title {
            title = TITLES[(TITLES.iter().position(|t| *t == title).unwrap_or(0) + 1) % 10];
        }
        self.job_title = title;
        let mut event = self.created(event_time, rng);
        event.change = ChangeKind::Updated;
        event.changed_fields = vec!["job_title".to_owned()];
        event
    }

    /// A varied update for the CPU figure: one to three of job title, last name, phone, owner
    /// and an unmapped custom field change.
    pub fn varied_update(&mut self, event_time: i64, rng: &mut Rng) -> ContactChanged {
        let mut event = self.retitled(event_time, rng);
        event.changed_fields.clear();
        let candidates = [
            "job_title",
            "last_name",
            "phone",
            "owner_user_id",
            "lead_score",
        ];
        let count = 1 + rng.below(3) as usize;
        for _ in 0..count {
            let field = *rng.pick(&candidates);
            if !event.changed_fields.iter().any(|f| f == field) {
                event.changed_fields.push(field.to_owned());
            }
        }
        event
    }
}

/// The sandbox config `hubsync-dev sandbox` prints, with placeholders for the endpoints, plus a
/// `[users]` section mapping the generated upstream users to the sandbox's owners.
pub fn sandbox_config_text(
    brokers: &str,
    registry_url: &str,
    hubspot_url: &str,
    portal_id: u64,
    token_env: &str,
) -> String {
    let mut text = render_sandbox_config(brokers, registry_url, hubspot_url, portal_id, token_env);
    text.push_str("\n[users]\n");
    for (user, owner) in USERS {
        if let Some(owner) = owner {
            text.push_str(&format!(
                "[[users.mapping]]\nuser = \"{user}\"\nowner = \"{owner}\"\n"
            ));
        }
    }
    text
}

/// Removes the contact defaults from a sandbox config text.
pub fn without_contact_defaults(text: &str) -> String {
    let line = "defaults = { lifecyclestage = \"lead\" }\n";
    assert!(
        text.contains(line),
        "the sandbox config no longer sets contact defaults as `{}`; update the bench",
        line.trim()
    );
    text.replacen(line, "", 1)
}

/// The property catalog of a new sandbox portal, read the way the process stage reads HubSpot's
/// answer, without HTTP.
pub fn sandbox_catalog() -> PropertyCatalog {
    let mut built = PropertyCatalog::new();
    for (object, path) in [
        (HubSpotObjectType::Contact, ObjectType::Contacts),
        (HubSpotObjectType::Company, ObjectType::Companies),
        (HubSpotObjectType::Deal, ObjectType::Deals),
    ] {
        let results: Vec<serde_json::Value> = default_properties(path)
            .iter()
            .map(|property| property.to_json())
            .collect();
        let definitions = property_definitions(&serde_json::json!({ "results": results }))
            .expect("the sandbox's property list parses");
        for definition in &definitions {
            catalog::add(&mut built, object, definition);
        }
    }
    built
}

/// Fails loudly when the rules do not fit the catalog: the figures would measure dead letters.
pub fn assert_rules_fit(rules: &Rules, catalog: &PropertyCatalog) {
    let problems = check_rules(rules, catalog);
    assert!(
        problems.is_empty(),
        "the sandbox rules do not fit the sandbox's properties: {problems:?}"
    );
}
