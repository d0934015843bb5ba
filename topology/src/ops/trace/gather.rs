//! Gathering one record's story: its events from the source topics (read again when the first
//! reading taught new identifiers), each decided with today's rules, the commands, outcomes and
//! dead letters of those events, and the record as HubSpot holds it (read-only calls).

use std::collections::{BTreeMap, BTreeSet};

use hubsync_processors::activity::planned_object;
use hubsync_processors::catalog::PropertyCatalog;
use hubsync_processors::command::DEAL_EVENT_SUFFIX;
use hubsync_processors::decision::{ACTIVITY_ID_PROPERTY, DEAL_KEY_PROPERTY, identity_label};
use hubsync_processors::normalize;
use hubsync_processors::rules::{OWNER_PROPERTY, Rules};
use hubsync_processors::{
    ActivityDecision, CommandDraft, Decision, OwnerDirectory, decide_activity, decide_company,
    decide_contact,
};
use hubsync_schemas::{
    ActivityRecorded, AvroRecord, CompanyChanged, ContactChanged, DeadLetter, HubSpotCommand,
    HubSpotObjectType, Identity, IdentityKind, SyncOutcome,
};

use crate::hubspot::{HubSpotClient, ObjectType};
use crate::ops::Ops;
use crate::ops::decision::{DecisionView, contact_link};
use crate::ops::dlq::Letter;
use crate::ops::lookup::{self, Found};
use crate::ops::plan::PlannedRecord;
use crate::ops::range::{Window, format_ms};
use crate::ops::scan::{Flow, Scanned};
use crate::ops::subject::{Asked, Identifiers, hubspot_label};
use crate::ops::trace::{
    HubSpotView, RULES_NOTE, RulesNow, Step, TopicSearch, TraceReport, activity_step, command_step,
    company_step, contact_step, dead_letter_step, outcome_step, undecodable_step,
};
use crate::outcomes::Original;
use crate::sink::verdict::{ContactNow, SinkVerdict};
use crate::{catalog, process};

/// HubSpot records read by email, domain or id at most; more identifiers than this are a sign
/// of a too-broad argument.
const MAX_READS: usize = 20;

/// Traces `asked` within `window`; `progress` shows a bar on stderr for long scans.
pub async fn trace(
    ops: &Ops,
    client: &HubSpotClient,
    asked: &Asked,
    window: Window,
    progress: bool,
) -> anyhow::Result<TraceReport> {
    let mut tracer = Tracer {
        ops,
        client,
        window,
        progress,
        ids: Identifiers::of(asked),
        searched: Vec::new(),
        hubspot: HubSpotNow::default(),
        owners: OwnerDirectory::new(),
        owners_error: None,
    };
    tracer.trace(asked).await
}

/// The record's source events, as read.
#[derive(Default)]
struct Sources {
    contacts: Vec<(Original, ContactChanged)>,
    companies: Vec<(Original, CompanyChanged)>,
    activities: Vec<(Original, ActivityRecorded)>,
    undecodable: Vec<(Original, String, String)>,
}

/// What HubSpot holds for the record, and what was asked.
#[derive(Default)]
struct HubSpotNow {
    catalog: Option<PropertyCatalog>,
    error: Option<String>,
    reads: Vec<String>,
    contacts_by_email: Found,
    companies_by_domain: Found,
    companies_by_name: Found,
    /// Emails of contacts looked up (found or not).
    emails_read: BTreeSet<String>,
    /// Contacts of the activities by email, beyond the record's own.
    activity_contacts: Found,
    /// Activities by object and lower-cased activity id, and the objects searched.
    activities: BTreeMap<(ObjectType, String), crate::hubspot::Record>,
    activity_objects: BTreeSet<ObjectType>,
    /// Deals by lower-cased key, when searched.
    deals: Option<Found>,
    records: Vec<HubSpotView>,
    /// Records already read by id.
    tried: BTreeSet<(ObjectType, String)>,
}

struct Tracer<'a> {
    ops: &'a Ops,
    client: &'a HubSpotClient,
    window: Window,
    progress: bool,
    ids: Identifiers,
    searched: Vec<TopicSearch>,
    hubspot: HubSpotNow,
    /// HubSpot's owners by email, for `users.auto_map_by_email`.
    owners: OwnerDirectory,
    owners_error: Option<String>,
}

impl Tracer<'_> {
    async fn trace(&mut self, asked: &Asked) -> anyhow::Result<TraceReport> {
        match catalog::load(self.client).await {
            Ok(catalog) => self.hubspot.catalog = Some(catalog),
            Err(error) => self.hubspot.error = Some(error.to_string()),
        }
        if let Asked::HubspotId(id) = asked
            && self.hubspot.error.is_none()
        {
            self.read_ids(&BTreeSet::from([id.clone()])).await;
        }
        let sources = self.read_sources().await?;
        let commands = self.read_commands().await?;
        let outcomes = self.read_outcomes().await?;
        let letters = self.read_dead_letters().await?;
        if self.hubspot.error.is_none() {
            self.read_hubspot(&company_names(&sources)).await;
        }
        if !sources.activities.is_empty() && self.hubspot.catalog.is_some() {
            match process::owner_directory(self.client, &self.ops.config.rules.users).await {
                Ok(owners) => self.owners = owners,
                Err(error) => self.owners_error = Some(error.to_string()),
            }
        }
        let decided: Vec<Option<ActivityDecision>> = sources
            .activities
            .iter()
            .map(|(_, event)| self.decide_activity(event))
            .collect();
        if self.hubspot.error.is_none() {
            self.read_activities(&sources.activities, &decided, &outcomes)
                .await;
        }

        let mut timeline = Vec::new();
        for (message, event) in &sources.contacts {
            let rules = self.rules_now(
                |rules, catalog| decide_contact(event, rules, catalog),
                event.event_time,
            );
            timeline.push(contact_step(message, event, rules));
        }
        for (message, event) in &sources.companies {
            let rules = self.rules_now(
                |rules, catalog| decide_company(event, rules, catalog),
                event.event_time,
            );
            timeline.push(company_step(message, event, rules));
        }
        for ((message, event), decided) in sources.activities.iter().zip(&decided) {
            let rules = self.activity_rules_now(event, decided.as_ref());
            timeline.push(activity_step(message, event, rules));
        }
        for (message, code, reason) in &sources.undecodable {
            timeline.push(undecodable_step(message, code, reason));
        }
        timeline.extend(commands);
        timeline.extend(outcomes);
        for letter in &letters {
            timeline.push(dead_letter_step(letter));
        }
        let hubspot = std::mem::take(&mut self.hubspot);
        let mut report = TraceReport {
            asked: asked.label(),
            found: !timeline.is_empty() || !hubspot.records.is_empty(),
            since: self.window.since.map(format_ms),
            until: self.window.until.map(format_ms),
            searched: std::mem::take(&mut self.searched),
            hubspot_reads: hubspot.reads,
            identifiers: self.ids.clone(),
            rules_note: RULES_NOTE,
            timeline,
            latest_outcome: None,
            hubspot: hubspot.records,
            hubspot_error: hubspot.error,
        };
        report.sort();
        Ok(report)
    }

    /// The current rules' decision for one event, and the sink's verdict against HubSpot now.
    fn rules_now(
        &self,
        decide: impl Fn(&Rules, &PropertyCatalog) -> Decision,
        time: i64,
    ) -> RulesNow {
        let Some(catalog) = &self.hubspot.catalog else {
            return RulesNow {
                note: Some(format!(
                    "not decided again: the portal's properties cannot be read ({})",
                    self.hubspot.error.as_deref().unwrap_or("unknown error")
                )),
                ..RulesNow::default()
            };
        };
        let decision = decide(&self.ops.config.rules, catalog);
        // Found by upstream id only: parked as the sink parks it when it may not be created.
        let mut by_identity_map = false;
        let sink = match &decision {
            Decision::Write(draft) => {
                let record = PlannedRecord::of(draft, time);
                match self.current(draft) {
                    Some(current) => Some(record.judge(current).0),
                    None => {
                        let parked = record.parked_unresolved();
                        by_identity_map = parked.is_some();
                        parked
                    }
                }
            }
            _ => None,
        };
        let note = match &decision {
            Decision::Write(draft) if by_identity_map => Some(format!(
                "the sink finds {} through its identity map only: it parks it as said unless \
                 hubsync created it by that id before, with every mandatory field (then it \
                 updates it)",
                identity_label(&draft.identity)
            )),
            Decision::Write(_) if sink.is_none() && self.hubspot.error.is_some() => Some(
                "what the sink would do is not known here: HubSpot could not be read".to_string(),
            ),
            Decision::Write(draft) if sink.is_none() => Some(format!(
                "what the sink would do is not known here: trace looks up contacts by email and \
                 companies by domain, and the sink finds {} by its own means (identity map, \
                 unique property)",
                identity_label(&draft.identity)
            )),
            _ => None,
        };
        RulesNow {
            decision: Some(DecisionView::of(&decision)),
            sink,
            note,
        }
    }

    /// An activity decided with the current rules; `None` without the portal's properties.
    fn decide_activity(&self, event: &ActivityRecorded) -> Option<ActivityDecision> {
        let catalog = self.hubspot.catalog.as_ref()?;
        Some(decide_activity(
            event,
            &self.ops.config.rules,
            catalog,
            &self.owners,
        ))
    }

    /// The current rules' decision for one activity: the object, owner, links and deal, and
    /// what the sink would do given HubSpot now (the activity there already, its contact
    /// there or not).
    fn activity_rules_now(
        &self,
        event: &ActivityRecorded,
        decided: Option<&ActivityDecision>,
    ) -> RulesNow {
        let Some(decision) = decided else {
            return RulesNow {
                note: Some(format!(
                    "not decided again: the portal's properties cannot be read ({})",
                    self.hubspot.error.as_deref().unwrap_or("unknown error")
                )),
                ..RulesNow::default()
            };
        };
        let users = &self.ops.config.rules.users;
        let ActivityDecision::Write { activity, deal } = decision else {
            return RulesNow {
                decision: Some(DecisionView::of_activity(
                    decision,
                    event,
                    users,
                    ContactNow::Unknown,
                )),
                ..RulesNow::default()
            };
        };
        let contact_identity = contact_link(activity);
        let contact = self.contact_now(contact_identity);
        let contact_label = contact_identity.map_or_else(|| "-".to_string(), identity_label);
        let mut view = DecisionView::of_activity(decision, event, users, contact);
        let sink = self.found_activity(activity).and_then(|found| {
            SinkVerdict::once(found.map(|r| r.id.as_str()), contact, &contact_label)
        });
        if let (Some(deal), Some(shown)) =
            (deal, view.activity.as_mut().and_then(|a| a.deal.as_mut()))
        {
            let deal_contact = self.contact_now(contact_link(deal));
            shown.sink = self.found_deal(deal).and_then(|found| {
                SinkVerdict::once(found.map(|r| r.id.as_str()), deal_contact, &contact_label)
            });
        }
        let mut notes = Vec::new();
        if sink.is_none() {
            notes.push(if let Some(error) = &self.hubspot.error {
                format!(
                    "what the sink would do is not known here: HubSpot could not be read ({error})"
                )
            } else {
                format!(
                    "what the sink would do is not known here: the sink finds the contact \
                     {contact_label} through its identity map only"
                )
            });
        }
        if let Some(error) = &self.owners_error {
            notes.push(format!(
                "HubSpot's owners could not be read ({error}): senders are matched by \
                 [[users.mapping]] only here"
            ));
        }
        RulesNow {
            decision: Some(view),
            sink,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        }
    }

    /// What HubSpot holds of the contact an activity or deal links to.
    fn contact_now(&self, identity: Option<&Identity>) -> ContactNow<'_> {
        let Some(identity) = identity.filter(|i| i.kind == IdentityKind::Email) else {
            return ContactNow::Unknown;
        };
        if self.hubspot.error.is_some() {
            return ContactNow::Unknown;
        }
        let email = identity.value.trim().to_lowercase();
        let found = self
            .hubspot
            .contacts_by_email
            .get(&email)
            .or_else(|| self.hubspot.activity_contacts.get(&email));
        match found {
            Some(contact) => ContactNow::Present {
                owner: contact.property(OWNER_PROPERTY),
            },
            None if self.hubspot.emails_read.contains(&email) => ContactNow::Absent,
            None => ContactNow::Unknown,
        }
    }

    /// HubSpot's record of an activity: `Some(None)` when searched and absent, `None` when its
    /// object was not searched.
    fn found_activity(&self, draft: &CommandDraft) -> Option<Option<&crate::hubspot::Record>> {
        let object = ObjectType::of_command(draft.object_type)?;
        if !self.hubspot.activity_objects.contains(&object) {
            return None;
        }
        Some(
            self.hubspot
                .activities
                .get(&(object, draft.identity.value.trim().to_lowercase())),
        )
    }

    /// HubSpot's record of a deal by its key, as [`Self::found_activity`].
    fn found_deal(&self, draft: &CommandDraft) -> Option<Option<&crate::hubspot::Record>> {
        let deals = self.hubspot.deals.as_ref()?;
        Some(deals.get(&draft.identity.value.trim().to_lowercase()))
    }

    /// The record's activities in HubSpot: each searched by `hubsync_activity_id` in the
    /// object the rules store it as now (and in any object an outcome names), the deals they
    /// trigger by `hubsync_deal_key`, what outcomes name by id and search does not show yet
    /// read by that id, and the contacts they link to by email.
    async fn read_activities(
        &mut self,
        activities: &[(Original, ActivityRecorded)],
        decided: &[Option<ActivityDecision>],
        outcomes: &[Step],
    ) {
        let wanted = self.activity_lookups(activities, decided, outcomes);
        if let Err(error) = self.read_owned(wanted).await {
            self.hubspot.error = Some(error.to_string());
            return;
        }
        let emails: BTreeSet<String> = decided
            .iter()
            .flatten()
            .filter_map(|decision| match decision {
                ActivityDecision::Write { activity, deal } => Some((activity, deal)),
                _ => None,
            })
            .flat_map(|(activity, deal)| {
                [
                    email_of(contact_link(activity)),
                    deal.as_deref().and_then(|d| email_of(contact_link(d))),
                ]
            })
            .flatten()
            .filter(|email| !self.hubspot.emails_read.contains(email))
            .collect();
        if emails.is_empty() {
            return;
        }
        let emails: Vec<String> = emails.into_iter().collect();
        self.hubspot.reads.push(format!(
            "the activities' contacts by email {}",
            emails.join(", ")
        ));
        match lookup::read_by_property(
            self.client,
            ObjectType::Contacts,
            "email",
            &emails,
            &[OWNER_PROPERTY.to_string()],
        )
        .await
        {
            Ok(found) => {
                self.hubspot.emails_read.extend(emails);
                self.hubspot.activity_contacts = found;
            }
            Err(error) => self.hubspot.error = Some(error.to_string()),
        }
    }

    /// What to look for by hubsync's own properties: per object, the values, the properties
    /// to read, and the ids outcomes name.
    fn activity_lookups(
        &self,
        activities: &[(Original, ActivityRecorded)],
        decided: &[Option<ActivityDecision>],
        outcomes: &[Step],
    ) -> BTreeMap<ObjectType, OwnedLookup> {
        let rules = &self.ops.config.rules;
        let mut wanted: BTreeMap<ObjectType, OwnedLookup> = BTreeMap::new();
        let mut event_ids = BTreeSet::new();
        for ((_, event), decision) in activities.iter().zip(decided) {
            event_ids.insert(event.event_id.as_str());
            let drafts: Vec<&CommandDraft> = match decision {
                Some(ActivityDecision::Write { activity, deal }) => {
                    std::iter::once(activity).chain(deal.as_deref()).collect()
                }
                _ => Vec::new(),
            };
            if drafts.is_empty() {
                // Skipped or refused now: it may have been written before, as it would be stored.
                let object = planned_object(event, &rules.activities);
                if let Some(object) = ObjectType::of_command(object)
                    && !event.activity_id.trim().is_empty()
                {
                    wanted
                        .entry(object)
                        .or_insert_with(|| OwnedLookup::new(object))
                        .values
                        .insert(event.activity_id.trim().to_string());
                }
            }
            for draft in drafts {
                let Some(object) = ObjectType::of_command(draft.object_type) else {
                    continue;
                };
                let lookup = wanted
                    .entry(object)
                    .or_insert_with(|| OwnedLookup::new(object));
                lookup
                    .values
                    .insert(draft.identity.value.trim().to_string());
                lookup.properties.extend(draft.properties.keys().cloned());
                lookup
                    .properties
                    .extend(draft.create_only_properties.keys().cloned());
            }
        }
        for outcome in outcomes.iter().filter_map(|s| s.outcome.as_ref()) {
            let event_id = outcome
                .event_id
                .strip_suffix(DEAL_EVENT_SUFFIX)
                .unwrap_or(&outcome.event_id);
            if !event_ids.contains(event_id) {
                continue;
            }
            let Some(object) = outcome.hubspot_object_type.and_then(ObjectType::of_command) else {
                continue;
            };
            if !(object.is_activity() || object == ObjectType::Deals) {
                continue;
            }
            let lookup = wanted
                .entry(object)
                .or_insert_with(|| OwnedLookup::new(object));
            if let Some(value) = outcome
                .record
                .as_deref()
                .and_then(|r| r.strip_prefix(lookup.property))
                .and_then(|r| r.strip_prefix(':'))
            {
                lookup.values.insert(value.to_string());
            }
            if let Some(id) = &outcome.hubspot_id {
                lookup.named.insert(id.clone());
            }
        }
        wanted
    }

    /// Searches each object by hubsync's own property, then reads by id what outcomes name and
    /// the search did not show (search lags writes by seconds).
    async fn read_owned(
        &mut self,
        wanted: BTreeMap<ObjectType, OwnedLookup>,
    ) -> Result<(), lookup::LookupError> {
        for (object, lookup) in wanted {
            let property = lookup.property;
            let values: Vec<String> = lookup.values.into_iter().collect();
            let properties: Vec<String> = lookup.properties.into_iter().collect();
            let mut found = Found::new();
            if !values.is_empty() {
                self.hubspot.reads.push(format!(
                    "{} by {property} {}",
                    object.path_name(),
                    values.join(", ")
                ));
                found = lookup::search_owned(self.client, object, property, &values, &properties)
                    .await?;
                for (value, record) in &found {
                    self.keep(object, format!("{property} {value}"), record);
                }
            }
            let unseen: Vec<String> = lookup
                .named
                .into_iter()
                .filter(|id| !self.hubspot.tried.contains(&(object, id.clone())))
                .take(MAX_READS)
                .collect();
            if !unseen.is_empty() {
                self.hubspot.reads.push(format!(
                    "{} by id {} (named by outcomes)",
                    object.path_name(),
                    unseen.join(", ")
                ));
                let read = lookup::read_by_id(self.client, object, &unseen, &properties).await?;
                for (id, record) in read {
                    self.keep(object, format!("id {id}"), &record);
                    if let Some(value) = record.property(property) {
                        found.entry(value.to_lowercase()).or_insert(record);
                    }
                }
            }
            if object == ObjectType::Deals {
                self.hubspot.deals = Some(found);
            } else {
                self.hubspot.activity_objects.insert(object);
                for (value, record) in found {
                    self.hubspot.activities.insert((object, value), record);
                }
            }
        }
        Ok(())
    }

    /// HubSpot's record for a command's identity: `Some(None)` when HubSpot has none, `None`
    /// when it was not looked up (found by upstream id, or HubSpot unreadable).
    fn current(&self, draft: &CommandDraft) -> Option<Option<&crate::hubspot::Record>> {
        if self.hubspot.error.is_some() {
            return None;
        }
        let value = draft.identity.value.to_lowercase();
        match (draft.object_type, draft.identity.kind) {
            (HubSpotObjectType::Contact, IdentityKind::Email) => {
                Some(self.hubspot.contacts_by_email.get(&value))
            }
            (HubSpotObjectType::Company, IdentityKind::Domain) => {
                let by_name = || {
                    let name = draft.properties.get("name")?.as_deref()?;
                    self.hubspot.companies_by_name.get(&name.to_lowercase())
                };
                Some(
                    self.hubspot
                        .companies_by_domain
                        .get(&value)
                        .or_else(by_name),
                )
            }
            _ => None,
        }
    }

    /// The source topics, twice when the first reading found new identifiers (earlier events
    /// carrying only those are read the second time).
    async fn read_sources(&mut self) -> anyhow::Result<Sources> {
        let mut sources = Sources::default();
        for pass in 0..2 {
            let before = self.ids.len();
            sources = Sources::default();
            let topics = self.ops.config.topics.clone();
            // The platform's topics carry every team's events: only the configuration's team's
            // are this record's story, however alike another team's record looks.
            let team = self.ops.config.team.id.clone();
            let mut searched = Vec::new();
            let (found, read) = self
                .scan::<ContactChanged>(&topics.contact_changes, |ids, event| {
                    event.team_id == team && ids.take_contact(event)
                })
                .await?;
            searched.push(search(&topics.contact_changes, read, &found));
            split(found, &mut sources.contacts, &mut sources.undecodable);
            let (found, read) = self
                .scan::<CompanyChanged>(&topics.company_changes, |ids, event| {
                    event.team_id == team && ids.take_company(event)
                })
                .await?;
            searched.push(search(&topics.company_changes, read, &found));
            split(found, &mut sources.companies, &mut sources.undecodable);
            let (found, read) = self
                .scan::<ActivityRecorded>(&topics.activity_events, |ids, event| {
                    event.team_id == team && ids.take_activity(event)
                })
                .await?;
            searched.push(search(&topics.activity_events, read, &found));
            split(found, &mut sources.activities, &mut sources.undecodable);
            if pass == 0 {
                self.searched = searched;
            } else {
                for (total, again) in self.searched.iter_mut().zip(searched) {
                    total.read += again.read;
                    total.matched = again.matched;
                }
            }
            if self.ids.len() == before {
                break;
            }
        }
        Ok(sources)
    }

    /// One source topic: the events `take` accepts, and undecodable messages keyed by the
    /// record's id. Returns them and how many records were read.
    async fn scan<T: AvroRecord>(
        &mut self,
        topic: &str,
        take: impl Fn(&mut Identifiers, &T) -> bool,
    ) -> anyhow::Result<(Vec<Matched<T>>, u64)> {
        let reader = self.ops.reader(self.progress)?;
        let ids = &mut self.ids;
        let mut found = Vec::new();
        let stats = reader
            .scan::<T>(topic, self.window, |scanned: Scanned<T>| {
                match scanned.record {
                    Ok(event) => {
                        if take(ids, &event) {
                            found.push(Matched::Event(scanned.message, event));
                        }
                    }
                    Err(error) => {
                        let keyed = scanned
                            .message
                            .key
                            .as_deref()
                            .and_then(|k| std::str::from_utf8(k).ok())
                            .is_some_and(|key| ids.matches_key(key));
                        let position = format!(
                            "{}/{}/{}",
                            scanned.message.topic,
                            scanned.message.partition,
                            scanned.message.offset
                        );
                        if keyed || ids.ids.contains(&position) {
                            found.push(Matched::Undecodable(
                                scanned.message,
                                error.code().to_string(),
                                error.to_string(),
                            ));
                        }
                    }
                }
                Flow::Continue
            })
            .await?;
        Ok((found, stats.read))
    }

    async fn read_commands(&mut self) -> anyhow::Result<Vec<Step>> {
        let topic = self.ops.config.topics.commands.clone();
        let reader = self.ops.reader(self.progress)?;
        let ids = &self.ids;
        let mut steps = Vec::new();
        let stats = reader
            .scan::<HubSpotCommand>(&topic, self.window, |scanned| {
                if let Ok(command) = scanned.record
                    && ids.matches_command(&command)
                {
                    steps.push(command_step(&scanned.message, command));
                }
                Flow::Continue
            })
            .await?;
        self.searched.push(TopicSearch {
            topic,
            read: stats.read,
            matched: steps.len() as u64,
        });
        Ok(steps)
    }

    async fn read_outcomes(&mut self) -> anyhow::Result<Vec<Step>> {
        let topic = self.ops.config.topics.outcomes.clone();
        let reader = self.ops.reader(self.progress)?;
        let ids = &mut self.ids;
        let mut steps = Vec::new();
        let stats = reader
            .scan::<SyncOutcome>(&topic, self.window, |scanned| {
                if let Ok(outcome) = scanned.record
                    && ids.matches_outcome(&outcome)
                {
                    ids.take_outcome(&outcome);
                    steps.push(outcome_step(&scanned.message, outcome));
                }
                Flow::Continue
            })
            .await?;
        self.searched.push(TopicSearch {
            topic,
            read: stats.read,
            matched: steps.len() as u64,
        });
        Ok(steps)
    }

    async fn read_dead_letters(&mut self) -> anyhow::Result<Vec<Letter>> {
        let topic = self.ops.config.topics.dlq.clone();
        let reader = self.ops.reader(self.progress)?;
        let ids = &self.ids;
        let mut raw = Vec::new();
        let stats = reader
            .scan::<DeadLetter>(&topic, self.window, |scanned| {
                if let Ok(letter) = scanned.record
                    && ids.matches_dead_letter(&letter)
                {
                    raw.push((scanned.message, letter));
                }
                Flow::Continue
            })
            .await?;
        self.searched.push(TopicSearch {
            topic,
            read: stats.read,
            matched: raw.len() as u64,
        });
        let mut letters = Vec::new();
        for (message, letter) in raw {
            letters.push(Letter::read(reader.codec(), message, letter).await);
        }
        Ok(letters)
    }

    /// The record in HubSpot now: contacts by email, companies by domain (then by name among
    /// companies without a domain, as the sink matches them), and what the outcomes named by
    /// HubSpot id. `names` are the company events' (domain, name).
    async fn read_hubspot(&mut self, names: &[(Option<String>, String)]) {
        let emails: Vec<String> = self.ids.emails.iter().take(MAX_READS).cloned().collect();
        if !emails.is_empty() {
            let properties = properties(&self.ops.config.rules, HubSpotObjectType::Contact);
            self.hubspot
                .reads
                .push(format!("contacts by email {}", emails.join(", ")));
            match lookup::read_by_property(
                self.client,
                ObjectType::Contacts,
                "email",
                &emails,
                &properties,
            )
            .await
            {
                Ok(found) => {
                    for (email, record) in &found {
                        self.keep(ObjectType::Contacts, format!("email {email}"), record);
                    }
                    self.hubspot.contacts_by_email = found;
                    self.hubspot.emails_read.extend(emails);
                }
                Err(error) => self.hubspot.error = Some(error.to_string()),
            }
        }
        let domains: Vec<String> = self.ids.domains.iter().take(MAX_READS).cloned().collect();
        if !domains.is_empty() {
            let properties = properties(&self.ops.config.rules, HubSpotObjectType::Company);
            self.hubspot
                .reads
                .push(format!("companies by domain {}", domains.join(", ")));
            match lookup::search_by(
                self.client,
                ObjectType::Companies,
                "domain",
                &domains,
                &properties,
            )
            .await
            {
                Ok(found) => {
                    for (domain, record) in &found {
                        self.keep(ObjectType::Companies, format!("domain {domain}"), record);
                    }
                    self.hubspot.companies_by_domain = found;
                }
                Err(error) => self.hubspot.error = Some(error.to_string()),
            }
        }
        let unfound: BTreeSet<String> = names
            .iter()
            .filter(|(domain, _)| {
                domain
                    .as_ref()
                    .is_some_and(|d| !self.hubspot.companies_by_domain.contains_key(d))
            })
            .map(|(_, name)| name.clone())
            .take(MAX_READS)
            .collect();
        if self.ops.config.rules.sync.companies.match_on_name && !unfound.is_empty() {
            let names: Vec<String> = unfound.into_iter().collect();
            let properties = properties(&self.ops.config.rules, HubSpotObjectType::Company);
            self.hubspot.reads.push(format!(
                "companies without a domain by name {}",
                names.join(", ")
            ));
            match lookup::search_by_name(self.client, &names, &properties).await {
                Ok(found) => {
                    for (name, record) in &found {
                        self.keep(ObjectType::Companies, format!("name {name}"), record);
                    }
                    self.hubspot.companies_by_name = found;
                }
                Err(error) => self.hubspot.error = Some(error.to_string()),
            }
        }
        let ids = self.ids.hubspot_ids.clone();
        self.read_ids(&ids).await;
    }

    /// Records by HubSpot id (`contact:901`, `company:77`, or a bare id: both), except those
    /// already read; each found one teaches its email or domain.
    async fn read_ids(&mut self, ids: &BTreeSet<String>) {
        for (object, kind) in [
            (ObjectType::Contacts, HubSpotObjectType::Contact),
            (ObjectType::Companies, HubSpotObjectType::Company),
        ] {
            let prefix = kind.as_str().to_ascii_lowercase();
            let wanted: Vec<String> = ids
                .iter()
                .filter_map(|label| match label.split_once(':') {
                    Some((of, id)) => (of == prefix).then(|| id.to_string()),
                    None => Some(label.clone()),
                })
                .filter(|id| !self.hubspot.tried.contains(&(object, id.clone())))
                .take(MAX_READS)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            self.hubspot
                .tried
                .extend(wanted.iter().map(|id| (object, id.clone())));
            let properties = properties(&self.ops.config.rules, kind);
            self.hubspot.reads.push(format!(
                "{} by id {}",
                object.path_name(),
                wanted.join(", ")
            ));
            match lookup::read_by_id(self.client, object, &wanted, &properties).await {
                Ok(found) => {
                    for (id, record) in &found {
                        self.ids.hubspot_ids.insert(hubspot_label(kind, id));
                        if let Some(email) = record.property("email") {
                            self.ids.emails.insert(email.to_lowercase());
                        }
                        if let Some(domain) = record.property("domain") {
                            self.ids.domains.insert(domain.to_lowercase());
                        }
                        self.keep(object, format!("id {id}"), record);
                    }
                }
                Err(error) => self.hubspot.error = Some(error.to_string()),
            }
        }
    }

    fn keep(&mut self, object: ObjectType, found_by: String, record: &crate::hubspot::Record) {
        self.hubspot.tried.insert((object, record.id.clone()));
        let known = self
            .hubspot
            .records
            .iter()
            .any(|r| r.object == object.path_name() && r.id == record.id);
        if !known {
            self.hubspot
                .records
                .push(HubSpotView::of(object.path_name(), found_by, record));
        }
    }
}

/// Each company event's domain (from its website when it has none) and name: what the sink
/// searches by.
fn company_names(sources: &Sources) -> Vec<(Option<String>, String)> {
    sources
        .companies
        .iter()
        .filter_map(|(_, event)| {
            let domain = match event.domain.as_deref() {
                Some(domain) => normalize::domain(domain),
                None => event
                    .website
                    .as_deref()
                    .and_then(normalize::domain_from_url),
            }
            .map(|d| d.into_owned());
            let name = event.name.clone().filter(|n| !n.trim().is_empty())?;
            Some((domain, name))
        })
        .collect()
}

/// Activities or deals of one object to find by hubsync's own property.
struct OwnedLookup {
    /// `hubsync_activity_id`, `hubsync_deal_key`.
    property: &'static str,
    values: BTreeSet<String>,
    /// The properties to read.
    properties: BTreeSet<String>,
    /// HubSpot ids outcomes name.
    named: BTreeSet<String>,
}

impl OwnedLookup {
    fn new(object: ObjectType) -> Self {
        let (property, shown): (&'static str, &[&str]) = if object == ObjectType::Deals {
            (DEAL_KEY_PROPERTY, &["dealname", "pipeline", "dealstage"])
        } else {
            (ACTIVITY_ID_PROPERTY, &["hs_timestamp"])
        };
        let properties = shown
            .iter()
            .chain(&[OWNER_PROPERTY, property])
            .map(|p| p.to_string())
            .collect();
        OwnedLookup {
            property,
            values: BTreeSet::new(),
            properties,
            named: BTreeSet::new(),
        }
    }
}

/// The email an activity's or deal's contact link names, normalised.
fn email_of(identity: Option<&Identity>) -> Option<String> {
    identity
        .filter(|i| i.kind == IdentityKind::Email)
        .map(|i| i.value.trim().to_lowercase())
}

/// One matching message of a source topic.
enum Matched<T> {
    Event(Original, T),
    Undecodable(Original, String, String),
}

fn search<T>(topic: &str, read: u64, found: &[Matched<T>]) -> TopicSearch {
    TopicSearch {
        topic: topic.to_string(),
        read,
        matched: found.len() as u64,
    }
}

fn split<T>(
    found: Vec<Matched<T>>,
    events: &mut Vec<(Original, T)>,
    undecodable: &mut Vec<(Original, String, String)>,
) {
    for matched in found {
        match matched {
            Matched::Event(message, event) => events.push((message, event)),
            Matched::Undecodable(message, code, reason) => {
                undecodable.push((message, code, reason));
            }
        }
    }
}

/// The properties worth reading for a record: every mapped and default property, the owner,
/// and the identity properties.
fn properties(rules: &Rules, object: HubSpotObjectType) -> Vec<String> {
    let (sync_mapping, defaults, identity): (_, _, &[&str]) = match object {
        HubSpotObjectType::Company => (
            &rules.sync.companies.mapping,
            &rules.sync.companies.defaults,
            &["domain", "name"],
        ),
        _ => (
            &rules.sync.contacts.mapping,
            &rules.sync.contacts.defaults,
            &["email", "firstname", "lastname"],
        ),
    };
    let mut names: BTreeSet<String> = sync_mapping.iter().map(|m| m.property.clone()).collect();
    names.extend(defaults.keys().cloned());
    names.insert(OWNER_PROPERTY.to_string());
    names.extend(identity.iter().map(|s| s.to_string()));
    if object == HubSpotObjectType::Contact {
        names.insert(rules.sync.contacts.id_property.clone());
    }
    names.into_iter().collect()
}
