//! The dry run of a replay or a rules change: the current rules over a range of upstream events,
//! and what the sink would then do against HubSpot as it is now. This module is pure; [`read`]
//! reads the topic and HubSpot for it.
//!
//! Each event is decided as the process stage would (skip, dead letter, or a command); commands
//! are coalesced per record as the sink does (the newest value of each property by event time
//! wins, any command that may create the record lets it be created, the newest command speaks
//! for a record that may not), then each record is judged against what HubSpot holds:
//!
//! ```text
//! absent,  may be created             -> CREATED     every property: (none) -> value
//!          (a company its domain does not find is looked for by name first, when
//!           `match_on_name` is set, among companies without a domain)
//! absent,  upsert missing mandatory   -> PARKED      PARKED_MISSING_FIELDS, the fields named
//! absent,  update only                -> SKIPPED     NOT_CREATED
//! present, some value differs         -> UPDATED     jobtitle: Engineer -> CTO
//! present, every value already there  -> UNCHANGED   (the pipeline records UPDATED unless its
//!                                                     state remembers writing these values)
//! found by upstream id only (not looked up: the sink's identity map finds it)
//!          upsert missing mandatory   -> PARKED      PARKED_MISSING_FIELDS, the fields named
//!                                                    (contact_id:ct_1 without an email: [email])
//!          otherwise                  -> UNRESOLVED  updated when the map holds it, else
//!                                                    created or skipped NOT_CREATED
//! ```
//!
//! A record found by upstream id only is parked as when HubSpot lacks it: the sink's identity
//! map holds such a record only when hubsync created it by that id before, with every
//! mandatory field (then the sink updates it).
//!
//! Only `CREATED` and `UPDATED` records are written to HubSpot; [`Plan::records_summary`] says
//! so with the others beside them.
//!
//! Activities (and the deals they trigger) are created once, by hubsync's own property
//! (`hubsync_activity_id`, `hubsync_deal_key`), never updated, and linked to their contact:
//!
//! ```text
//! found by its own property           -> UNCHANGED          not created again
//! absent,  its contact in HubSpot     -> CREATED            every property: (none) -> value
//! absent,  its contact not in HubSpot -> WAITS_FOR_CONTACT  created once the contact is there,
//!                                                           else PARKED PARKED_CONTACT_MISSING
//! absent,  contact by upstream id     -> UNRESOLVED         the sink's identity map knows
//! ```
//!
//! Every event of a record gets the record's status, as the sink's outcomes do when the
//! record's commands are written together. A deal answers for no event of its own: deals are
//! counted apart, once each, however many activities trigger them.

pub mod read;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use hubsync_processors::catalog::PropertyCatalog;
use hubsync_processors::decision::{
    ACTIVITY_ID_PROPERTY, DEAL_KEY_PROPERTY, Problem, identity_label,
};
use hubsync_processors::rules::{OWNER_PROPERTY, Rules};
use hubsync_processors::{
    ActivityDecision, CommandDraft, Decision, Envelope, OwnerDirectory, decide_activity,
    decide_company, decide_contact, to_command,
};
use hubsync_schemas::{
    ActivityRecorded, Association, CompanyChanged, ContactChanged, HubSpotCommand,
    HubSpotObjectType, Identity, IdentityKind, ReasonCode, SourcePosition,
};
use serde::Serialize;

use super::lookup::Found;
use super::table::Table;
use crate::hubspot::{ObjectType, Record};
use crate::sink::coalesce::Merged;
use crate::sink::verdict::{self, Change, ContactNow, SinkVerdict, WAITS_FOR_CONTACT};

/// The status of records hubsync can only find through the sink's identity map.
pub const UNRESOLVED: &str = "UNRESOLVED";

/// The order statuses are shown in.
pub const STATUSES: [&str; 8] = [
    "CREATED",
    "UPDATED",
    "UNCHANGED",
    "SKIPPED",
    "PARKED",
    WAITS_FOR_CONTACT,
    "DEAD_LETTERED",
    UNRESOLVED,
];

/// The commands of one record, coalesced by the sink's own merge.
#[derive(Debug, Clone)]
pub struct PlannedRecord {
    pub object: HubSpotObjectType,
    pub identity: Identity,
    pub merged: Merged,
    /// The contact an activity or deal links to.
    pub contact: Option<Identity>,
    pub events: u64,
}

/// The command the process stage would make of a draft. Where the event was read does not
/// matter to the merge, so none is named.
pub fn command_of(draft: CommandDraft, event_time: i64) -> HubSpotCommand {
    let envelope = Envelope {
        event_id: String::new(),
        correlation_id: String::new(),
        team_id: String::new(),
        source: SourcePosition {
            topic: String::new(),
            partition: 0,
            offset: 0,
            key: None,
        },
        event_time,
        processed_time: event_time,
    };
    to_command(draft, envelope)
}

impl PlannedRecord {
    fn new(command: &HubSpotCommand) -> Self {
        PlannedRecord {
            object: command.object_type,
            identity: command.identity.clone(),
            merged: Merged::default(),
            contact: contact_of(&command.associations).cloned(),
            events: 0,
        }
    }

    /// The record one event's draft alone would write.
    pub fn of(draft: &CommandDraft, time: i64) -> Self {
        let command = command_of(draft.clone(), time);
        let mut record = Self::new(&command);
        record.absorb(&command);
        record
    }

    /// One more command, merged as the sink merges it.
    fn absorb(&mut self, command: &HubSpotCommand) {
        self.merged.absorb(command);
        self.events += 1;
    }

    /// `email:ada@acme.io`.
    pub fn label(&self) -> String {
        identity_label(&self.identity)
    }

    /// The name the sink searches a company by when its domain finds nothing.
    fn name_to_match(&self, match_on_name: bool) -> Option<&str> {
        if !match_on_name
            || self.object != HubSpotObjectType::Company
            || self.identity.kind != IdentityKind::Domain
        {
            return None;
        }
        self.merged
            .property("name")
            .flatten()
            .filter(|name| !name.is_empty())
    }

    /// An activity or deal: created once by hubsync's own property, never updated.
    pub fn created_once(&self) -> bool {
        self.identity.kind == IdentityKind::SourceId && owned(&self.identity.property)
    }

    /// How HubSpot is asked for this record: by which property, and whether by search.
    pub fn lookup(&self) -> Option<LookupKey> {
        let object = ObjectType::of_command(self.object)?;
        let how = match self.identity.kind {
            IdentityKind::Email | IdentityKind::UniqueProperty => How::Read,
            IdentityKind::Domain => How::Search,
            IdentityKind::HubspotId => How::Id,
            IdentityKind::SourceId if self.created_once() => How::Owned,
            IdentityKind::SourceId | IdentityKind::Unknown => return None,
        };
        let property = match how {
            How::Id => "hs_object_id".to_string(),
            _ => self.identity.property.clone(),
        };
        Some(LookupKey {
            object,
            how,
            property,
        })
    }

    /// The verdict against HubSpot's record (`None`: HubSpot has none), and the changes: the
    /// sink's own judgement.
    pub fn judge(&self, current: Option<&Record>) -> (SinkVerdict, Vec<Change>) {
        verdict::judge(&self.merged, current)
    }

    /// What the sink does with a record it finds through its identity map only (no lookup
    /// here: a contact or company known by upstream id), where that can be said without the
    /// map: parked, naming the missing mandatory fields, when it may not be created and its
    /// newest command is an upsert missing them (a contact without an email: `[email]`), as
    /// the sink parks a record it does not find ([`SinkVerdict::absent`]). The map holds such
    /// a record only when hubsync created it by that id before, with every mandatory field.
    /// `None` for a record HubSpot is asked for, and for one the sink would create (or update,
    /// when the map holds it).
    pub fn parked_unresolved(&self) -> Option<SinkVerdict> {
        if self.lookup().is_some() {
            return None;
        }
        match self.judge(None).0 {
            parked @ SinkVerdict::Parked { .. } => Some(parked),
            _ => None,
        }
    }
}

/// The contact link of an activity or a deal.
fn contact_of(associations: &[Association]) -> Option<&Identity> {
    associations
        .iter()
        .find(|a| a.to_object_type == HubSpotObjectType::Contact)
        .and_then(|a| a.to_identity.as_ref())
}

/// `hubsync_activity_id`, `hubsync_deal_key`: properties of hubsync's own.
fn owned(property: &str) -> bool {
    property == ACTIVITY_ID_PROPERTY || property == DEAL_KEY_PROPERTY
}

/// How a record is looked up in HubSpot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum How {
    /// Batch read by a unique property.
    Read,
    /// Search (companies by domain).
    Search,
    /// Batch read by HubSpot id.
    Id,
    /// Search of companies without a domain by name, for companies their domain did not find.
    Name,
    /// Search by a property of hubsync's own (activities, deals); none when the portal lacks it.
    Owned,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LookupKey {
    pub object: ObjectType,
    pub how: How,
    pub property: String,
}

/// The lookups a plan needs: per key, the values and the properties to read.
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    pub wanted: BTreeMap<LookupKey, (Vec<String>, Vec<String>)>,
}

/// What HubSpot answered, by lookup key.
#[derive(Debug, Clone, Default)]
pub struct Current {
    pub found: BTreeMap<LookupKey, Found>,
}

impl Current {
    /// What HubSpot holds of the contact an activity or deal links to: read by email, as the
    /// sink reads it; a contact named by its upstream id is only known to the sink.
    pub fn contact(&self, identity: Option<&Identity>) -> ContactNow<'_> {
        let Some(identity) = identity.filter(|i| i.kind == IdentityKind::Email) else {
            return ContactNow::Unknown;
        };
        let Some(found) = self.found.get(&contact_key()) else {
            return ContactNow::Unknown;
        };
        match found.get(&identity.value.trim().to_lowercase()) {
            Some(contact) => ContactNow::Present {
                owner: contact.property(OWNER_PROPERTY),
            },
            None => ContactNow::Absent,
        }
    }

    /// HubSpot's record: `Some(None)` when looked up and absent, `None` when not looked up.
    /// A company its domain does not find is found by name when `match_on_name` is set and
    /// the name was searched, as the sink does.
    fn record(&self, record: &PlannedRecord, match_on_name: bool) -> Option<Option<&Record>> {
        let key = record.lookup()?;
        let found = self.found.get(&key)?;
        if let Some(held) = found.get(&record.identity.value.to_lowercase()) {
            return Some(Some(held));
        }
        let by_name = record
            .name_to_match(match_on_name)
            .and_then(|name| self.found.get(&name_key())?.get(&name.to_lowercase()));
        Some(by_name)
    }
}

/// The lookup of activities' and deals' contacts, by email as the sink reads them.
fn contact_key() -> LookupKey {
    LookupKey {
        object: ObjectType::Contacts,
        how: How::Read,
        property: "email".to_string(),
    }
}

/// The lookup of companies by name.
fn name_key() -> LookupKey {
    LookupKey {
        object: ObjectType::Companies,
        how: How::Name,
        property: "name".to_string(),
    }
}

/// The plan for one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordPlan {
    pub record: String,
    pub object: &'static str,
    pub status: &'static str,
    pub reason_code: &'static str,
    pub hubspot_id: Option<String>,
    pub events: u64,
    pub missing_fields: Vec<String>,
    pub changes: Vec<Change>,
}

/// One kind of problem, counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProblemCount {
    pub code: String,
    pub field: String,
    pub property: Option<String>,
    pub events: u64,
}

/// What the current rules would do with the events read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub events: u64,
    pub records: u64,
    /// Events by the outcome status they would get.
    pub by_status: BTreeMap<String, u64>,
    /// Records (written ones) by status.
    pub records_by_status: BTreeMap<String, u64>,
    /// Skipped events by reason code: the rules' skips and the sink's `NOT_CREATED`.
    pub skipped: BTreeMap<String, u64>,
    /// Parked events by missing mandatory field.
    pub parked: BTreeMap<String, u64>,
    /// Dead-lettered events by reason code (a refused record's first problem, or why the
    /// message could not be decoded).
    pub dead_lettered: BTreeMap<String, u64>,
    /// Every problem of the refused records, by code, field and property.
    pub problems: Vec<ProblemCount>,
    /// Activity events the rules would write, by the HubSpot object they are stored as
    /// (`NOTE`), then by status.
    pub activities: BTreeMap<String, BTreeMap<String, u64>>,
    /// Deals the activities trigger, by status: one each, however many activities trigger it.
    pub deals: BTreeMap<String, u64>,
    /// Every written record, in the order first seen.
    pub plans: Vec<RecordPlan>,
    /// Every triggered deal, in the order first triggered; `events` counts its triggers.
    pub deal_plans: Vec<RecordPlan>,
}

impl Plan {
    /// Records that would be created or updated: the ones with changes to show.
    pub fn changed(&self) -> impl Iterator<Item = &RecordPlan> {
        self.plans
            .iter()
            .chain(&self.deal_plans)
            .filter(|p| WRITTEN.contains(&p.status))
    }

    /// Records (deals apart) that would really be written: created or updated in HubSpot.
    pub fn records_to_write(&self) -> u64 {
        WRITTEN
            .iter()
            .filter_map(|s| self.records_by_status.get(*s))
            .sum()
    }

    /// The records in one line, those written apart from the others, as the table counts them:
    /// `5 records: 3 would be written (2 created, 1 updated), 2 would not (2 parked)`, then the
    /// deals an activity topic triggers: `; 1 deal: 1 would be written (1 created)`.
    pub fn records_summary(&self) -> String {
        let mut line = written_or_not(self.records, &self.records_by_status, "record");
        if !self.deal_plans.is_empty() {
            line.push_str("; ");
            line.push_str(&written_or_not(
                self.deal_plans.len() as u64,
                &self.deals,
                "deal",
            ));
        }
        line
    }
}

/// The statuses of records written to HubSpot.
const WRITTEN: [&str; 2] = ["CREATED", "UPDATED"];

/// `5 records: 3 would be written (2 created, 1 updated), 2 would not (2 parked)`.
fn written_or_not(total: u64, by_status: &BTreeMap<String, u64>, noun: &str) -> String {
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let mut line = format!("{total} {noun}{}", plural(total));
    if total == 0 {
        return line;
    }
    let rows: Vec<(&str, u64)> = ordered(by_status)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    let (written, not): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|(status, _)| WRITTEN.contains(status));
    let listed = |rows: &[(&str, u64)]| {
        rows.iter()
            .map(|(status, n)| format!("{n} {}", status.to_lowercase().replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let count = |rows: &[(&str, u64)]| rows.iter().map(|(_, n)| n).sum::<u64>();
    let _ = write!(line, ": {} would be written", count(&written));
    if !written.is_empty() {
        let _ = write!(line, " ({})", listed(&written));
    }
    if !not.is_empty() {
        let _ = write!(line, ", {} would not ({})", count(&not), listed(&not));
    }
    line
}

/// Decides events one by one and gathers the commands per record.
pub struct Planner<'r> {
    rules: &'r Rules,
    catalog: &'r PropertyCatalog,
    events: u64,
    skipped: BTreeMap<String, u64>,
    dead_lettered: BTreeMap<String, u64>,
    problems: BTreeMap<(String, String, Option<String>), u64>,
    records: HashMap<(HubSpotObjectType, IdentityKind, String), PlannedRecord>,
    order: Vec<(HubSpotObjectType, IdentityKind, String)>,
    /// Deals triggered by activities, by key.
    deals: HashMap<String, PlannedRecord>,
    deal_order: Vec<String>,
    /// Companies their domain does not find are looked for by name.
    match_on_name: bool,
    /// HubSpot's owners by email, for activities' senders (`users.auto_map_by_email`).
    owners: OwnerDirectory,
    /// Only this team's events are planned (the topics carry every team's).
    team: Option<String>,
}

impl<'r> Planner<'r> {
    pub fn new(rules: &'r Rules, catalog: &'r PropertyCatalog) -> Self {
        Planner {
            rules,
            catalog,
            events: 0,
            skipped: BTreeMap::new(),
            dead_lettered: BTreeMap::new(),
            problems: BTreeMap::new(),
            records: HashMap::new(),
            order: Vec::new(),
            deals: HashMap::new(),
            deal_order: Vec::new(),
            match_on_name: rules.sync.companies.match_on_name,
            owners: OwnerDirectory::new(),
            team: None,
        }
    }

    /// Plans only `team`'s events; the others are not this plan's.
    pub fn for_team(mut self, team: &str) -> Self {
        self.team = Some(team.to_string());
        self
    }

    fn theirs(&self, team_id: &str) -> bool {
        self.team.as_deref().is_some_and(|team| team != team_id)
    }

    /// HubSpot's owners by email, which activities' senders are matched against.
    pub fn with_owners(mut self, owners: OwnerDirectory) -> Self {
        self.owners = owners;
        self
    }

    pub fn contact(&mut self, event: &ContactChanged) {
        if self.theirs(&event.team_id) {
            return;
        }
        let decision = decide_contact(event, self.rules, self.catalog);
        self.decided(decision, event.event_time);
    }

    pub fn company(&mut self, event: &CompanyChanged) {
        if self.theirs(&event.team_id) {
            return;
        }
        let decision = decide_company(event, self.rules, self.catalog);
        self.decided(decision, event.event_time);
    }

    /// An activity: skipped, refused, or an activity to create once (and a deal when it
    /// triggers one).
    pub fn activity(&mut self, event: &ActivityRecorded) {
        if self.theirs(&event.team_id) {
            return;
        }
        let decision = decide_activity(event, self.rules, self.catalog, &self.owners);
        self.events += 1;
        match decision {
            ActivityDecision::Skip { code, .. } => {
                *self.skipped.entry(code.as_str().to_string()).or_insert(0) += 1;
            }
            ActivityDecision::Invalid { problems } => self.refused(problems),
            ActivityDecision::Write { activity, deal } => {
                if let Some(deal) = deal {
                    let key = deal.identity.value.clone();
                    let command = command_of(*deal, event.event_time);
                    let record = self.deals.entry(key.clone()).or_insert_with(|| {
                        self.deal_order.push(key);
                        PlannedRecord::new(&command)
                    });
                    record.absorb(&command);
                }
                self.write(activity, event.event_time);
            }
        }
    }

    /// A message the process stage could not decode: it dead-letters it with this code.
    pub fn undecodable(&mut self, code: ReasonCode) {
        self.events += 1;
        *self.dead_lettered.entry(code.to_string()).or_insert(0) += 1;
    }

    fn decided(&mut self, decision: Decision, time: i64) {
        self.events += 1;
        match decision {
            Decision::Skip { code, .. } => {
                *self.skipped.entry(code.as_str().to_string()).or_insert(0) += 1;
            }
            Decision::Invalid { problems } => self.refused(problems),
            Decision::Write(draft) => self.write(draft, time),
        }
    }

    /// A refused event: dead-lettered by its first problem, every problem counted.
    fn refused(&mut self, problems: Vec<Problem>) {
        let code = problems
            .first()
            .map_or("INVALID_RECORD", |p| p.code.as_str());
        *self.dead_lettered.entry(code.to_string()).or_insert(0) += 1;
        for p in problems {
            *self
                .problems
                .entry((p.code.as_str().to_string(), p.field, p.property))
                .or_insert(0) += 1;
        }
    }

    /// A command, coalesced into its record.
    fn write(&mut self, draft: CommandDraft, time: i64) {
        let command = command_of(draft, time);
        let key = (
            command.object_type,
            command.identity.kind,
            command.identity.value.clone(),
        );
        let record = self.records.entry(key.clone()).or_insert_with(|| {
            self.order.push(key);
            PlannedRecord::new(&command)
        });
        record.absorb(&command);
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    /// The HubSpot reads the records need, with every property they would write, and the
    /// contacts activities and deals link to.
    pub fn lookups(&self, lookups: &mut Lookups) {
        for record in self.records.values().chain(self.deals.values()) {
            if record.created_once()
                && let Some(contact) = record
                    .contact
                    .as_ref()
                    .filter(|c| c.kind == IdentityKind::Email)
            {
                let (values, properties) = lookups.wanted.entry(contact_key()).or_default();
                values.push(contact.value.trim().to_lowercase());
                properties.push(OWNER_PROPERTY.to_string());
            }
            let Some(key) = record.lookup() else {
                continue;
            };
            let (values, properties) = lookups.wanted.entry(key).or_default();
            values.push(record.identity.value.clone());
            properties.extend(record.merged.property_names().map(str::to_string));
            properties.extend(
                record
                    .merged
                    .create_only()
                    .map(|(name, _)| name.to_string()),
            );
        }
        for (values, properties) in lookups.wanted.values_mut() {
            values.sort();
            values.dedup();
            properties.sort();
            properties.dedup();
        }
    }

    /// The second round of lookups: companies their domain did not find, by name.
    pub fn name_lookups(&self, current: &Current, lookups: &mut Lookups) {
        for record in self.records.values() {
            let Some(name) = record.name_to_match(self.match_on_name) else {
                continue;
            };
            if current.record(record, false) != Some(None) {
                continue;
            }
            let (values, properties) = lookups.wanted.entry(name_key()).or_default();
            values.push(name.to_string());
            properties.extend(record.merged.property_names().map(str::to_string));
        }
        for (values, properties) in lookups.wanted.values_mut() {
            values.sort();
            values.dedup();
            properties.sort();
            properties.dedup();
        }
    }

    /// The plan, given what HubSpot answered.
    pub fn finish(self, current: &Current) -> Plan {
        let mut plan = Plan {
            events: self.events,
            records: self.order.len() as u64,
            skipped: self.skipped,
            dead_lettered: self.dead_lettered,
            ..Plan::default()
        };
        for (status, count) in [
            ("SKIPPED", plan.skipped.values().sum::<u64>()),
            ("DEAD_LETTERED", plan.dead_lettered.values().sum()),
        ] {
            if count > 0 {
                plan.by_status.insert(status.to_string(), count);
            }
        }
        plan.problems = self
            .problems
            .into_iter()
            .map(|((code, field, property), events)| ProblemCount {
                code,
                field,
                property,
                events,
            })
            .collect();
        for key in &self.order {
            let Some(record) = self.records.get(key) else {
                continue;
            };
            let planned = if record.created_once() {
                judge_once(record, current)
            } else {
                judge(record, current, self.match_on_name)
            };
            *plan
                .by_status
                .entry(planned.status.to_string())
                .or_insert(0) += planned.events;
            *plan
                .records_by_status
                .entry(planned.status.to_string())
                .or_insert(0) += 1;
            match planned.status {
                "SKIPPED" => {
                    *plan
                        .skipped
                        .entry(planned.reason_code.to_string())
                        .or_insert(0) += planned.events;
                }
                "PARKED" => {
                    for field in &planned.missing_fields {
                        *plan.parked.entry(field.clone()).or_insert(0) += planned.events;
                    }
                }
                _ => {}
            }
            if ObjectType::of_command(record.object).is_some_and(ObjectType::is_activity) {
                *plan
                    .activities
                    .entry(planned.object.to_string())
                    .or_default()
                    .entry(planned.status.to_string())
                    .or_insert(0) += planned.events;
            }
            plan.plans.push(planned);
        }
        for key in &self.deal_order {
            let Some(deal) = self.deals.get(key) else {
                continue;
            };
            let planned = judge_once(deal, current);
            *plan.deals.entry(planned.status.to_string()).or_insert(0) += 1;
            plan.deal_plans.push(planned);
        }
        plan
    }
}

/// A contact's or company's plan against HubSpot's record, or, for one found by upstream id
/// only, parked as the sink parks it when it may not be created.
fn judge(record: &PlannedRecord, current: &Current, match_on_name: bool) -> RecordPlan {
    let (verdict, changes, found) = match current.record(record, match_on_name) {
        Some(found) => {
            let (verdict, changes) = record.judge(found);
            (verdict, changes, found)
        }
        None => match record.parked_unresolved() {
            Some(parked) => (parked, Vec::new(), None),
            None => return unresolved(record),
        },
    };
    let missing = match &verdict {
        SinkVerdict::Parked { missing } => missing.clone(),
        _ => Vec::new(),
    };
    RecordPlan {
        record: record.label(),
        object: record.object.as_str(),
        status: verdict.status(),
        reason_code: verdict.reason_code().as_str(),
        hubspot_id: found.map(|r| r.id.clone()),
        events: record.events,
        missing_fields: missing,
        changes,
    }
}

/// An activity's or deal's plan: there already, created (its contact is there), waiting for
/// its contact, or unresolved when the contact is known by upstream id only.
fn judge_once(record: &PlannedRecord, current: &Current) -> RecordPlan {
    let Some(found) = current.record(record, false) else {
        return unresolved(record);
    };
    let contact = current.contact(record.contact.as_ref());
    let label = record
        .contact
        .as_ref()
        .map_or_else(|| "-".to_string(), identity_label);
    let Some(verdict) = SinkVerdict::once(found.map(|r| r.id.as_str()), contact, &label) else {
        return unresolved(record);
    };
    let changes = match verdict {
        SinkVerdict::Created => {
            let mut changes = verdict::creation(&record.merged);
            // An inherited owner is the contact's when it has one, as the sink writes it.
            if let ContactNow::Present { owner: Some(owner) } = contact
                && record.merged.fills(OWNER_PROPERTY)
            {
                changes.retain(|c| c.property != OWNER_PROPERTY);
                changes.push(Change {
                    property: OWNER_PROPERTY.to_string(),
                    hubspot: None,
                    planned: Some(owner.to_string()),
                    create_only: false,
                });
                changes.sort_by(|a, b| a.property.cmp(&b.property));
            }
            changes
        }
        _ => Vec::new(),
    };
    RecordPlan {
        record: record.label(),
        object: record.object.as_str(),
        status: verdict.status(),
        reason_code: verdict.reason_code().as_str(),
        hubspot_id: found.map(|r| r.id.clone()),
        events: record.events,
        missing_fields: Vec::new(),
        changes,
    }
}

fn unresolved(record: &PlannedRecord) -> RecordPlan {
    RecordPlan {
        record: record.label(),
        object: record.object.as_str(),
        status: UNRESOLVED,
        reason_code: UNRESOLVED,
        hubspot_id: None,
        events: record.events,
        missing_fields: Vec::new(),
        changes: Vec::new(),
    }
}

/// Two counts side by side, for comparing rules: every key of either.
pub fn side_by_side(
    old: &BTreeMap<String, u64>,
    new: &BTreeMap<String, u64>,
) -> Vec<(String, u64, u64)> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .map(|k| {
            (
                k.clone(),
                old.get(k).copied().unwrap_or(0),
                new.get(k).copied().unwrap_or(0),
            )
        })
        .collect()
}

/// Statuses in the order people read them, then any other.
fn ordered(counts: &BTreeMap<String, u64>) -> Vec<(&str, u64)> {
    let mut rows: Vec<(&str, u64)> = STATUSES
        .iter()
        .filter_map(|s| counts.get(*s).map(|c| (*s, *c)))
        .collect();
    rows.extend(
        counts
            .iter()
            .filter(|(k, _)| !STATUSES.contains(&k.as_str()))
            .map(|(k, c)| (k.as_str(), *c)),
    );
    rows
}

/// The counts as people read them: by status, then per rule.
pub fn render_counts(plan: &Plan) -> String {
    let mut out = String::new();
    let mut table = Table::new(&["WOULD BE", "EVENTS", "RECORDS"]);
    for (status, events) in ordered(&plan.by_status) {
        let records = plan
            .records_by_status
            .get(status)
            .map_or_else(|| "-".to_string(), u64::to_string);
        table.row(vec![status.to_string(), events.to_string(), records]);
    }
    if table.is_empty() {
        out.push_str("no events in the range\n");
    } else {
        out.push_str(&table.render());
    }
    if !plan.activities.is_empty() {
        let mut table = Table::new(&["ACTIVITIES AS", "WOULD BE", "EVENTS"]);
        for (object, counts) in &plan.activities {
            for (status, events) in ordered(counts) {
                table.row(vec![
                    object.to_lowercase(),
                    status.to_string(),
                    events.to_string(),
                ]);
            }
        }
        out.push('\n');
        out.push_str(&table.render());
    }
    if !plan.deals.is_empty() {
        let mut table = Table::new(&["DEALS WOULD BE", "DEALS"]);
        for (status, deals) in ordered(&plan.deals) {
            table.row(vec![status.to_string(), deals.to_string()]);
        }
        out.push('\n');
        out.push_str(&table.render());
    }
    section(&mut out, &["SKIPPED BY", "EVENTS"], &plan.skipped);
    section(&mut out, &["PARKED, MISSING", "EVENTS"], &plan.parked);
    section(
        &mut out,
        &["DEAD-LETTERED BY", "EVENTS"],
        &plan.dead_lettered,
    );
    if !plan.problems.is_empty() {
        let mut table = Table::new(&["PROBLEM", "FIELD", "PROPERTY", "EVENTS"]);
        for p in &plan.problems {
            table.row(vec![
                p.code.clone(),
                p.field.clone(),
                p.property.clone().unwrap_or_else(|| "-".into()),
                p.events.to_string(),
            ]);
        }
        out.push('\n');
        out.push_str(&table.render());
    }
    out
}

fn section(out: &mut String, headers: &[&str], counts: &BTreeMap<String, u64>) {
    if counts.is_empty() {
        return;
    }
    let mut rows: Vec<(&String, &u64)> = counts.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut table = Table::new(headers);
    for (key, count) in rows {
        table.row(vec![key.clone(), count.to_string()]);
    }
    out.push('\n');
    out.push_str(&table.render());
}

/// Up to `limit` records with their changes: `property: HubSpot value -> planned value`.
pub fn render_diffs(plan: &Plan, limit: usize) -> String {
    let changed: Vec<&RecordPlan> = plan.changed().collect();
    let mut out = String::new();
    if changed.is_empty() || limit == 0 {
        return out;
    }
    let shown = changed.len().min(limit);
    let _ = writeln!(
        out,
        "changes ({shown} of {} records that would be created or updated):",
        changed.len()
    );
    for record in changed.iter().take(limit) {
        let what = match (record.status, &record.hubspot_id) {
            ("CREATED", _) if matches!(record.object, "CONTACT" | "COMPANY") => {
                "would create".to_string()
            }
            ("CREATED", _) => {
                let object = record.object.to_lowercase();
                let article = if object.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                format!("would create {article} {object}")
            }
            (_, Some(id)) => format!("would update HubSpot {} {id}", record.object.to_lowercase()),
            _ => "would update".to_string(),
        };
        let plural = if record.events == 1 { "" } else { "s" };
        let count = if record.object == "DEAL" {
            format!(
                "triggered by {} activit{}",
                record.events,
                if record.events == 1 { "y" } else { "ies" }
            )
        } else {
            format!("{} event{plural}", record.events)
        };
        let _ = writeln!(out, "{}  {what} ({count})", record.record);
        for change in &record.changes {
            let _ = writeln!(
                out,
                "    {}: {} -> {}{}",
                change.property,
                shown_value(change.hubspot.as_deref()),
                shown_value(change.planned.as_deref()),
                if change.create_only {
                    "  (create only)"
                } else {
                    ""
                }
            );
        }
    }
    out
}

fn shown_value(value: Option<&str>) -> String {
    value.map_or_else(|| "(none)".to_string(), |v| format!("{v:?}"))
}

/// Old and new rules' counts side by side.
pub fn render_comparison(old: &Plan, new: &Plan) -> String {
    let mut out = String::new();
    for (title, old_counts, new_counts) in [
        ("WOULD BE", &old.by_status, &new.by_status),
        ("SKIPPED BY", &old.skipped, &new.skipped),
        ("PARKED, MISSING", &old.parked, &new.parked),
        ("DEAD-LETTERED BY", &old.dead_lettered, &new.dead_lettered),
        ("DEALS WOULD BE", &old.deals, &new.deals),
    ] {
        let rows = side_by_side(old_counts, new_counts);
        if rows.is_empty() {
            continue;
        }
        let mut table = Table::new(&[title, "OLD RULES", "CURRENT RULES", "CHANGE"]);
        for (key, before, after) in rows {
            let change = i128::from(after) - i128::from(before);
            table.row(vec![
                key,
                before.to_string(),
                after.to_string(),
                if change > 0 {
                    format!("+{change}")
                } else {
                    change.to_string()
                },
            ]);
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&table.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_processors::catalog::{PropertyKind, PropertySpec};
    use hubsync_schemas::{ChangeKind, examples};

    fn rules() -> Rules {
        let rules: Rules = toml::from_str(
            r#"
            [sync.contacts]
            mandatory = ["email", "last_name"]
            defaults = { lifecyclestage = "lead" }
            [[sync.contacts.mapping]]
            source = "first_name"
            property = "firstname"
            [[sync.contacts.mapping]]
            source = "last_name"
            property = "lastname"
            [[sync.contacts.mapping]]
            source = "job_title"
            property = "jobtitle"
            [[sync.contacts.mapping]]
            source = "phone"
            property = "phone"
            fill_if_empty = true
            [[sync.contacts.mapping]]
            source = "stage"
            property = "hs_lead_status"
            [campaigns.cmp_off]
            push_to_crm = false
            "#,
        )
        .expect("rules parse");
        assert_eq!(rules.validate(), []);
        rules
    }

    fn catalog() -> PropertyCatalog {
        let string = || PropertySpec::new(PropertyKind::String);
        let c = HubSpotObjectType::Contact;
        PropertyCatalog::new()
            .with(c, "email", string())
            .with(c, "firstname", string())
            .with(c, "lastname", string())
            .with(c, "jobtitle", string())
            .with(c, "phone", string())
            .with(c, "hubspot_owner_id", string())
            .with(
                c,
                "hs_lead_status",
                PropertySpec::new(PropertyKind::enumeration(["NEW", "OPEN"])),
            )
            .with(
                c,
                "lifecyclestage",
                PropertySpec::new(PropertyKind::enumeration(["lead", "customer"])),
            )
    }

    fn contact(id: &str, email: Option<&str>, time: i64) -> ContactChanged {
        let mut event = examples::contact_changed();
        event.event_id = format!("{id}-{time}");
        event.event_time = time;
        event.contact_id = id.into();
        event.change = ChangeKind::Created;
        event.email = email.map(Into::into);
        event.first_name = None;
        event.last_name = Some("Last".into());
        event.job_title = None;
        event.phone = None;
        event.linkedin_url = None;
        event.company_domain = None;
        event.owner_user_id = None;
        event.campaign_id = None;
        event.fields.clear();
        event.changed_fields.clear();
        event
    }

    fn record(id: &str, properties: &[(&str, &str)]) -> Record {
        Record {
            id: id.into(),
            properties: properties
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
            ..Record::default()
        }
    }

    fn answered(planner: &Planner<'_>, found: &[(&str, Record)]) -> Current {
        let mut lookups = Lookups::default();
        planner.lookups(&mut lookups);
        let mut current = Current::default();
        for key in lookups.wanted.keys() {
            let records = found
                .iter()
                .map(|(value, r)| (value.to_string(), r.clone()))
                .collect();
            current.found.insert(key.clone(), records);
        }
        current
    }

    #[test]
    fn every_status_is_counted_per_event_and_per_rule() {
        let rules = rules();
        let catalog = catalog();
        let mut planner = Planner::new(&rules, &catalog);
        // Created: two events of one new contact, coalesced.
        let mut new = contact("ct_new", Some("new@acme.io"), 10);
        new.first_name = Some("Nia".into());
        planner.contact(&new);
        let mut later = contact("ct_new", Some("new@acme.io"), 20);
        later.change = ChangeKind::Updated;
        later.job_title = Some("CTO".into());
        later.changed_fields = vec!["job_title".into()];
        planner.contact(&later);
        // Updated: an existing contact's job title changes.
        let mut known = contact("ct_known", Some("known@acme.io"), 30);
        known.change = ChangeKind::Updated;
        known.job_title = Some("CTO".into());
        known.changed_fields = vec!["job_title".into()];
        planner.contact(&known);
        // Unchanged: HubSpot already holds the value.
        let mut same = contact("ct_same", Some("same@acme.io"), 31);
        same.change = ChangeKind::Updated;
        same.job_title = Some("CFO".into());
        same.changed_fields = vec!["job_title".into()];
        planner.contact(&same);
        // Parked: no last name, not in HubSpot.
        let mut parked = contact("ct_parked", Some("parked@acme.io"), 40);
        parked.last_name = None;
        planner.contact(&parked);
        // Skipped by rules.
        planner.contact(&contact("ct_none", None, 50));
        let mut campaign = contact("ct_cmp", Some("cmp@acme.io"), 60);
        campaign.campaign_id = Some("cmp_off".into());
        planner.contact(&campaign);
        // Dead-lettered: not an option.
        let mut invalid = contact("ct_bad", Some("bad@acme.io"), 70);
        invalid.fields.insert("stage".into(), Some("new".into()));
        planner.contact(&invalid);
        planner.undecodable(ReasonCode::UnknownSchemaId);
        assert_eq!(planner.events(), 9);

        let current = answered(
            &planner,
            &[
                ("known@acme.io", record("901", &[("jobtitle", "Engineer")])),
                ("same@acme.io", record("902", &[("jobtitle", "CFO")])),
            ],
        );
        let plan = planner.finish(&current);
        let count = |s: &str| plan.by_status.get(s).copied().unwrap_or(0);
        assert_eq!(count("CREATED"), 2, "{:?}", plan.by_status);
        assert_eq!(count("UPDATED"), 1);
        assert_eq!(count("UNCHANGED"), 1);
        assert_eq!(count("PARKED"), 1);
        assert_eq!(count("SKIPPED"), 2);
        assert_eq!(count("DEAD_LETTERED"), 2);
        assert_eq!(plan.records, 4);
        assert_eq!(plan.records_by_status["CREATED"], 1);
        assert_eq!(plan.records_to_write(), 2);
        assert_eq!(
            plan.records_summary(),
            "4 records: 2 would be written (1 created, 1 updated), 2 would not (1 unchanged, 1 parked)"
        );
        assert_eq!(plan.skipped["NO_IDENTIFIER"], 1);
        assert_eq!(plan.skipped["CAMPAIGN_PUSH_DISABLED"], 1);
        assert_eq!(plan.parked["last_name"], 1);
        assert_eq!(plan.dead_lettered["INVALID_OPTION"], 1);
        assert_eq!(plan.dead_lettered["UNKNOWN_SCHEMA_ID"], 1);
        assert_eq!(plan.problems[0].property.as_deref(), Some("hs_lead_status"));

        let created = &plan.plans[0];
        assert_eq!(created.record, "email:new@acme.io");
        let names: Vec<(&str, bool)> = created
            .changes
            .iter()
            .map(|c| (c.property.as_str(), c.create_only))
            .collect();
        assert!(names.contains(&("firstname", false)), "{names:?}");
        assert!(names.contains(&("jobtitle", false)), "{names:?}");
        assert!(names.contains(&("lifecyclestage", true)), "{names:?}");
        let updated = &plan.plans[1];
        assert_eq!(updated.hubspot_id.as_deref(), Some("901"));
        assert_eq!(
            updated.changes,
            [Change {
                property: "jobtitle".into(),
                hubspot: Some("Engineer".into()),
                planned: Some("CTO".into()),
                create_only: false,
            }]
        );
        let diffs = render_diffs(&plan, 20);
        assert!(
            diffs.contains("jobtitle: \"Engineer\" -> \"CTO\""),
            "{diffs}"
        );
        assert!(
            diffs.contains("email:new@acme.io  would create (2 events)"),
            "{diffs}"
        );
        let counts = render_counts(&plan);
        assert!(counts.contains("PARKED, MISSING"), "{counts}");
    }

    #[test]
    fn the_newest_value_wins_and_fill_if_empty_keeps_what_hubspot_has() {
        let rules = rules();
        let catalog = catalog();
        let mut planner = Planner::new(&rules, &catalog);
        let mut newer = contact("ct_1", Some("ada@acme.io"), 20);
        newer.job_title = Some("CTO".into());
        newer.phone = Some("+1 555 0100".into());
        let mut older = contact("ct_1", Some("ada@acme.io"), 10);
        older.job_title = Some("Engineer".into());
        planner.contact(&newer);
        planner.contact(&older);
        let current = answered(
            &planner,
            &[(
                "ada@acme.io",
                record("7", &[("phone", "+1 555 0199"), ("lastname", "Last")]),
            )],
        );
        let plan = planner.finish(&current);
        let record = &plan.plans[0];
        assert_eq!(record.status, "UPDATED");
        assert_eq!(record.events, 2);
        let jobtitle = record
            .changes
            .iter()
            .find(|c| c.property == "jobtitle")
            .expect("jobtitle changes");
        assert_eq!(
            jobtitle.planned.as_deref(),
            Some("CTO"),
            "newest by event time"
        );
        assert!(
            record.changes.iter().all(|c| c.property != "phone"),
            "a fill-if-empty value never overwrites: {:?}",
            record.changes
        );
    }

    #[test]
    fn a_company_its_domain_does_not_find_is_matched_by_name() {
        let rules: Rules = toml::from_str(
            r#"
            [[sync.companies.mapping]]
            source = "name"
            property = "name"
            [[sync.companies.mapping]]
            source = "domain"
            property = "domain"
            "#,
        )
        .expect("rules parse");
        assert!(rules.sync.companies.match_on_name);
        let catalog = PropertyCatalog::new()
            .with(
                HubSpotObjectType::Company,
                "name",
                PropertySpec::new(PropertyKind::String),
            )
            .with(
                HubSpotObjectType::Company,
                "domain",
                PropertySpec::new(PropertyKind::String),
            );
        let mut planner = Planner::new(&rules, &catalog);
        let mut event = examples::company_changed();
        event.change = ChangeKind::Created;
        event.domain = Some("globex.example".into());
        event.name = Some("Globex".into());
        event.changed_fields.clear();
        event.fields.clear();
        planner.company(&event);
        let mut first = Lookups::default();
        planner.lookups(&mut first);
        let mut current = Current::default();
        for key in first.wanted.keys() {
            assert_eq!(key.how, How::Search);
            current.found.insert(key.clone(), Found::new());
        }
        let mut second = Lookups::default();
        planner.name_lookups(&current, &mut second);
        let (names, _) = &second.wanted[&name_key()];
        assert_eq!(names, &["Globex".to_string()]);
        current.found.insert(
            name_key(),
            Found::from([("globex".into(), record("55", &[("name", "Globex")]))]),
        );
        let plan = planner.finish(&current);
        assert_eq!(plan.plans[0].status, "UPDATED", "{:?}", plan.plans[0]);
        assert_eq!(plan.plans[0].hubspot_id.as_deref(), Some("55"));
        assert_eq!(
            plan.plans[0].changes,
            [Change {
                property: "domain".into(),
                hubspot: None,
                planned: Some("globex.example".into()),
                create_only: false,
            }]
        );
    }

    #[test]
    fn a_contact_without_an_email_is_parked_for_it_as_the_sink_parks_it() {
        let rules = rules();
        let catalog = catalog();
        let mut planner = Planner::new(&rules, &catalog);
        let mut linkedin = contact("ct_li", None, 10);
        linkedin.linkedin_url = Some("https://linkedin.com/in/x".into());
        planner.contact(&linkedin);
        // Neither an email nor a last name: both named, in the rules' order.
        let mut bare = contact("ct_bare", None, 20);
        bare.linkedin_url = Some("https://linkedin.com/in/y".into());
        bare.last_name = None;
        planner.contact(&bare);
        let mut lookups = Lookups::default();
        planner.lookups(&mut lookups);
        assert!(lookups.wanted.is_empty(), "found by upstream id only");
        let plan = planner.finish(&Current::default());
        assert_eq!(
            plan.by_status.get("PARKED"),
            Some(&2),
            "{:?}",
            plan.by_status
        );
        assert_eq!(plan.by_status.get(UNRESOLVED), None);
        assert_eq!(
            plan.parked,
            BTreeMap::from([("email".to_string(), 2), ("last_name".to_string(), 1)])
        );
        let parked = &plan.plans[1];
        assert_eq!(parked.record, "contact_id:ct_bare");
        assert_eq!(parked.reason_code, "PARKED_MISSING_FIELDS");
        assert_eq!(parked.missing_fields, ["email", "last_name"]);
        // The fields the sink's PARKED outcome names for the same record.
        let command = command_of(
            match decide_contact(&bare, &rules, &catalog) {
                Decision::Write(draft) => draft,
                other => panic!("a write: {other:?}"),
            },
            20,
        );
        let mut merged = Merged::default();
        merged.absorb(&command);
        let outcome = SinkVerdict::absent(&merged)
            .not_created()
            .expect("not created");
        assert_eq!(parked.missing_fields, outcome.missing_fields);
        assert_eq!(parked.reason_code, outcome.reason_code);
    }

    #[test]
    fn records_known_only_by_upstream_id_that_may_be_created_are_unresolved() {
        // The sink creates the record, or updates it when its identity map holds it.
        let rules: Rules = toml::from_str(
            r#"
            [sync.contacts]
            mandatory = ["last_name"]
            [[sync.contacts.mapping]]
            source = "last_name"
            property = "lastname"
            "#,
        )
        .expect("rules parse");
        let catalog = catalog();
        let mut planner = Planner::new(&rules, &catalog);
        let mut linkedin = contact("ct_li", None, 10);
        linkedin.linkedin_url = Some("https://linkedin.com/in/x".into());
        planner.contact(&linkedin);
        let plan = planner.finish(&Current::default());
        assert_eq!(
            plan.by_status.get(UNRESOLVED),
            Some(&1),
            "{:?}",
            plan.by_status
        );
        assert_eq!(plan.plans[0].record, "contact_id:ct_li");
    }

    #[test]
    fn the_headline_counts_only_records_written_and_the_others_beside_them() {
        let counts = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        // Nothing to write: every record unchanged or parked, as the table says.
        let idle = Plan {
            events: 340,
            records: 322,
            records_by_status: counts(&[("UNCHANGED", 310), ("PARKED", 12)]),
            ..Plan::default()
        };
        assert_eq!(idle.records_to_write(), 0);
        assert_eq!(
            idle.records_summary(),
            "322 records: 0 would be written, 322 would not (310 unchanged, 12 parked)"
        );
        assert_eq!(Plan::default().records_summary(), "0 records");
        // Activities and the deals they trigger, each in the table's order.
        let deal = RecordPlan {
            record: "hubsync_deal_key:ct_1:cmp_q3".into(),
            object: "DEAL",
            status: "CREATED",
            reason_code: "CREATED",
            hubspot_id: None,
            events: 1,
            missing_fields: Vec::new(),
            changes: Vec::new(),
        };
        let activities = Plan {
            records: 4,
            records_by_status: counts(&[
                (UNRESOLVED, 1),
                ("CREATED", 1),
                (WAITS_FOR_CONTACT, 1),
                ("UNCHANGED", 1),
            ]),
            deals: counts(&[("CREATED", 1)]),
            deal_plans: vec![deal],
            ..Plan::default()
        };
        assert_eq!(activities.records_to_write(), 1);
        assert_eq!(
            activities.records_summary(),
            "4 records: 1 would be written (1 created), 3 would not (1 unchanged, \
             1 waits for contact, 1 unresolved); 1 deal: 1 would be written (1 created)"
        );
    }

    #[test]
    fn comparisons_list_every_key_of_either_side() {
        let old = BTreeMap::from([("CREATED".to_string(), 3), ("PARKED".to_string(), 2)]);
        let new = BTreeMap::from([("CREATED".to_string(), 5)]);
        assert_eq!(
            side_by_side(&old, &new),
            [("CREATED".to_string(), 3, 5), ("PARKED".to_string(), 2, 0)]
        );
    }

    fn activity_rules() -> Rules {
        let rules: Rules = toml::from_str(
            r#"
            [sync.deals]
            pipeline = "default"
            stage = "appointmentscheduled"
            [users]
            default_owner = "70000001"
            [activities]
            email_opened = { enabled = true, store_as = "note" }
            email_clicked = { enabled = false }
            [campaigns.cmp_q3]
            deal_triggers = ["email_replied"]
            "#,
        )
        .expect("rules parse");
        assert_eq!(rules.validate(), []);
        rules
    }

    fn deal_catalog() -> PropertyCatalog {
        let deal = HubSpotObjectType::Deal;
        PropertyCatalog::new()
            .with(deal, "dealname", PropertySpec::new(PropertyKind::String))
            .with(
                deal,
                "pipeline",
                PropertySpec::new(PropertyKind::enumeration(["default"])),
            )
            .with(
                deal,
                "dealstage",
                PropertySpec::new(PropertyKind::enumeration(["appointmentscheduled"])),
            )
    }

    fn activity(
        id: &str,
        kind: hubsync_schemas::ActivityType,
        email: Option<&str>,
    ) -> ActivityRecorded {
        let mut event = examples::activity_recorded();
        event.event_id = format!("event-{id}");
        event.activity_id = id.into();
        event.activity_type = kind;
        event.contact_id = format!("ct_{id}");
        event.contact_email = email.map(Into::into);
        event.sender = None;
        event.campaign = None;
        event
    }

    #[test]
    fn activities_are_counted_by_object_rule_and_deal_against_hubspot() {
        use hubsync_schemas::ActivityType::{EmailClicked, EmailOpened, EmailReplied};
        let rules = activity_rules();
        let catalog = deal_catalog();
        let mut planner = Planner::new(&rules, &catalog);
        // In HubSpot already: not created again.
        planner.activity(&activity("act_old", EmailOpened, Some("known@acme.io")));
        // New, twice (a repeated event): one note for both.
        planner.activity(&activity("act_new", EmailOpened, Some("Known@Acme.io")));
        let mut again = activity("act_new", EmailOpened, Some("known@acme.io"));
        again.event_id = "event-act_new-again".into();
        planner.activity(&again);
        // A reply in a deal campaign: an email and the contact's deal.
        let mut reply = activity("act_reply", EmailReplied, Some("known@acme.io"));
        reply.contact_id = "ct_known".into();
        reply.campaign = Some(hubsync_schemas::CampaignRef {
            campaign_id: "cmp_q3".into(),
            name: None,
            sequence_step: None,
        });
        planner.activity(&reply);
        // A contact HubSpot lacks, one known by upstream id only, a disabled type, a bad email.
        planner.activity(&activity("act_ghost", EmailOpened, Some("ghost@acme.io")));
        planner.activity(&activity("act_byid", EmailOpened, None));
        planner.activity(&activity("act_click", EmailClicked, Some("known@acme.io")));
        planner.activity(&activity("act_bad", EmailOpened, Some("not an email")));
        assert_eq!(planner.events(), 8);

        let mut lookups = Lookups::default();
        planner.lookups(&mut lookups);
        let owned = |object| LookupKey {
            object,
            how: How::Owned,
            property: ACTIVITY_ID_PROPERTY.to_string(),
        };
        assert_eq!(
            lookups.wanted[&owned(ObjectType::Notes)].0,
            ["act_byid", "act_ghost", "act_new", "act_old"]
        );
        assert_eq!(lookups.wanted[&owned(ObjectType::Emails)].0, ["act_reply"]);
        let deal_key = LookupKey {
            object: ObjectType::Deals,
            how: How::Owned,
            property: DEAL_KEY_PROPERTY.to_string(),
        };
        assert_eq!(lookups.wanted[&deal_key].0, ["ct_known:cmp_q3"]);
        assert_eq!(
            lookups.wanted[&contact_key()].0,
            ["ghost@acme.io", "known@acme.io"]
        );

        let mut current = Current::default();
        for key in lookups.wanted.keys() {
            current.found.insert(key.clone(), Found::new());
        }
        current.found.insert(
            owned(ObjectType::Notes),
            Found::from([("act_old".to_string(), record("55", &[]))]),
        );
        current.found.insert(
            contact_key(),
            Found::from([(
                "known@acme.io".to_string(),
                record("901", &[("hubspot_owner_id", "70000002")]),
            )]),
        );
        let plan = planner.finish(&current);
        let expected: BTreeMap<String, u64> = [
            ("CREATED", 3),
            ("UNCHANGED", 1),
            (WAITS_FOR_CONTACT, 1),
            (UNRESOLVED, 1),
            ("SKIPPED", 1),
            ("DEAD_LETTERED", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(plan.by_status, expected);
        assert_eq!(plan.skipped["ACTIVITY_TYPE_DISABLED"], 1);
        assert_eq!(plan.dead_lettered["INVALID_EMAIL"], 1);
        assert_eq!(plan.activities["NOTE"]["CREATED"], 2);
        assert_eq!(plan.activities["NOTE"]["UNCHANGED"], 1);
        assert_eq!(plan.activities["NOTE"][WAITS_FOR_CONTACT], 1);
        assert_eq!(plan.activities["EMAIL"]["CREATED"], 1);
        assert_eq!(
            plan.deals,
            BTreeMap::from([("CREATED".to_string(), 1)]),
            "deals answer for no event"
        );
        assert_eq!(
            plan.deal_plans[0].record,
            "hubsync_deal_key:ct_known:cmp_q3"
        );
        let old = plan
            .plans
            .iter()
            .find(|p| p.record == "hubsync_activity_id:act_old");
        assert_eq!(old.and_then(|p| p.hubspot_id.as_deref()), Some("55"));
        let new = plan
            .plans
            .iter()
            .find(|p| p.record == "hubsync_activity_id:act_new")
            .expect("the new note");
        assert_eq!(new.events, 2);
        let owner = new
            .changes
            .iter()
            .find(|c| c.property == "hubspot_owner_id")
            .expect("an owner");
        assert_eq!(
            owner.planned.as_deref(),
            Some("70000002"),
            "an inherited owner is the contact's"
        );
        let ghost = plan
            .plans
            .iter()
            .find(|p| p.record == "hubsync_activity_id:act_ghost")
            .expect("the waiting note");
        assert_eq!(ghost.reason_code, "PARKED_CONTACT_MISSING");

        let counts = render_counts(&plan);
        for wanted in ["ACTIVITIES AS", "DEALS WOULD BE"] {
            assert!(counts.contains(wanted), "{wanted:?} in:\n{counts}");
        }
        assert!(
            counts
                .lines()
                .any(|l| l.starts_with("note ") && l.contains(WAITS_FOR_CONTACT)),
            "{counts}"
        );
        let diffs = render_diffs(&plan, 20);
        assert!(
            diffs.contains("hubsync_activity_id:act_new  would create a note (2 events)"),
            "{diffs}"
        );
        assert!(
            diffs.contains("hubsync_activity_id:act_reply  would create an email (1 event)"),
            "{diffs}"
        );
        assert!(
            diffs.contains(
                "hubsync_deal_key:ct_known:cmp_q3  would create a deal (triggered by 1 activity)"
            ),
            "{diffs}"
        );
    }
}
