//! What a demo run reports: what was published, what became of it, what it cost in HubSpot
//! calls, how long it took, and whether it matches what the generated team says must happen.
//!
//! Some lines are meant for scripts as well as people and keep their shape:
//! `hubspot contacts: N`, `expected contacts: N` (and the same for companies, notes, emails,
//! calls, tasks, meetings and deals), `hubspot changes: N`, `expected hubspot changes: N` and
//! `echoes sent up: N` (HubSpot -> upstream), one
//! `  <status>  <events>  <contact events>  <company events>  <activity events>` line per outcome
//! status, and `result: complete` (every event answered, every check passed), `result:
//! incomplete` (events without an outcome) or `result: mismatch` (everything answered, but the
//! run differs from the prediction).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_schemas::{ActivityType, OutcomeStatus};

use super::DemoOptions;
use super::activities::{self, ACTIVITY_OBJECTS, DealFate};
use super::collect::{Seen, Tally};
use super::generate::{Expected, Payload, Profile, Team, Upstream, deal_event_id};
use super::names;
use super::two_way::TwoWay;

/// Outcome statuses in the order the report lists them.
const STATUSES: [OutcomeStatus; 7] = [
    OutcomeStatus::Created,
    OutcomeStatus::Updated,
    OutcomeStatus::Unchanged,
    OutcomeStatus::Skipped,
    OutcomeStatus::Parked,
    OutcomeStatus::Failed,
    OutcomeStatus::DeadLettered,
];

/// The statuses of the activity table's columns.
const ACTIVITY_STATUSES: [OutcomeStatus; 5] = [
    OutcomeStatus::Created,
    OutcomeStatus::Unchanged,
    OutcomeStatus::Skipped,
    OutcomeStatus::Parked,
    OutcomeStatus::DeadLettered,
];

/// Events per kind of upstream record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByObject {
    pub contacts: usize,
    pub companies: usize,
    pub activities: usize,
}

impl ByObject {
    pub fn total(&self) -> usize {
        self.contacts + self.companies + self.activities
    }
}

/// What kind of upstream record an event is about.
#[derive(Debug, Clone, Copy)]
enum About<'t> {
    Contact,
    Company,
    Activity {
        kind: ActivityType,
        activity_id: &'t str,
    },
}

/// One wave of published messages.
#[derive(Debug, Clone)]
pub struct Wave {
    pub name: &'static str,
    pub messages: usize,
    pub publish: Duration,
    /// From its first message published to its last outcome.
    pub outcomes: Duration,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub tier: &'static str,
    pub requests_per_10s: u32,
    pub expected: Expected,
    pub messages: usize,
    /// Distinct events published (redeliveries not counted again).
    pub events: usize,
    /// Distinct events with at least one outcome.
    pub answered: usize,
    /// Per distinct event, its first outcome's status, by kind of record.
    pub statuses: BTreeMap<OutcomeStatus, ByObject>,
    /// Per distinct event, its first outcome's status and reason code.
    pub reasons: BTreeMap<(OutcomeStatus, String), usize>,
    /// HubSpot records that outcomes tie to more than one upstream record: (object, HubSpot id,
    /// upstream ids).
    pub shared_records: Vec<(&'static str, String, Vec<String>)>,
    /// Outcomes beyond one per delivered message.
    pub surplus_outcomes: Vec<(String, usize, usize)>,
    /// Dead letters per error code.
    pub dead_letters: BTreeMap<String, usize>,
    pub undecodable_dead_lettered: usize,
    pub unreadable: usize,
    /// Events the process stage alone decides, whose outcome differs from the generator's
    /// expectation: (event id, record key, expected, got).
    pub unexpected: Vec<(String, String, String, String)>,
    /// Events without an outcome (first few).
    pub missing: Vec<String>,
    pub missing_count: usize,
    /// Per endpoint: answered, 429s, other errors.
    pub hubspot_calls: BTreeMap<String, (u64, u64, u64)>,
    /// The sink's batches and their mean number of records.
    pub batches: Option<(u64, f64)>,
    /// Per activity type, its events' first outcomes by status.
    pub activity_types: BTreeMap<ActivityType, BTreeMap<OutcomeStatus, usize>>,
    /// Per activity event, its first outcome's status and reason code.
    pub activity_reasons: BTreeMap<(OutcomeStatus, String), usize>,
    /// Per deal command, its first outcome's status.
    pub deal_outcomes: BTreeMap<OutcomeStatus, usize>,
    /// Deal commands whose outcome differs from their fate: written ones not created or found,
    /// parked ones not parked.
    pub deal_surprises: Vec<(String, String, String)>,
    pub contacts_in_hubspot: usize,
    pub companies_in_hubspot: usize,
    /// Contacts linked to their company as its primary one, of those whose company HubSpot holds.
    pub contacts_linked: (usize, usize),
    /// Activities in HubSpot per object type (notes, emails, calls, tasks, meetings).
    pub activities_in_hubspot: BTreeMap<ObjectType, usize>,
    pub deals_in_hubspot: usize,
    pub startup: Duration,
    /// Each wave of messages: its publishing and how long until its outcomes were in.
    pub waves: Vec<Wave>,
    /// From the first message published to the last outcome (or the deadline).
    pub wall: Duration,
    pub timed_out: bool,
    /// HubSpot -> upstream: the users' edits and what went up; `None` when the run never got
    /// that far.
    pub two_way: Option<TwoWay>,
    pub problems: Vec<String>,
}

impl Report {
    pub fn new(options: &DemoOptions, team: &Team, tally: &Tally) -> Report {
        let mut deliveries: HashMap<&str, usize> = HashMap::new();
        let mut keys: HashMap<&str, &str> = HashMap::new();
        let mut decided: HashMap<&str, (&str, &str)> = HashMap::new();
        let mut about: HashMap<&str, About<'_>> = HashMap::new();
        for message in &team.messages {
            if let Some(id) = message.event_id() {
                *deliveries.entry(id).or_default() += 1;
                keys.insert(id, &message.key);
                let record = match &message.payload {
                    Payload::Company(_) => About::Company,
                    Payload::Activity(event) => About::Activity {
                        kind: event.activity_type,
                        activity_id: &event.activity_id,
                    },
                    _ => About::Contact,
                };
                about.insert(id, record);
                // An activity's whole fate is known; of other events, what the process stage
                // decides.
                let expected = message
                    .activity
                    .map(|fate| fate.outcome)
                    .or(message.decided);
                if let Some(expected) = expected {
                    decided.insert(id, expected);
                }
            }
        }
        let mut report = Report {
            seed: options.seed,
            tier: options.tier.as_str(),
            requests_per_10s: options.tier.limits().requests_per_10s,
            expected: team.expected.clone(),
            messages: team.messages.len(),
            events: deliveries.len(),
            answered: 0,
            statuses: BTreeMap::new(),
            reasons: BTreeMap::new(),
            shared_records: Vec::new(),
            surplus_outcomes: Vec::new(),
            dead_letters: BTreeMap::new(),
            undecodable_dead_lettered: tally.undecodable,
            unreadable: tally.unreadable,
            unexpected: Vec::new(),
            missing: Vec::new(),
            missing_count: 0,
            hubspot_calls: BTreeMap::new(),
            batches: None,
            activity_types: BTreeMap::new(),
            activity_reasons: BTreeMap::new(),
            deal_outcomes: BTreeMap::new(),
            deal_surprises: Vec::new(),
            contacts_in_hubspot: 0,
            companies_in_hubspot: 0,
            contacts_linked: (0, 0),
            activities_in_hubspot: BTreeMap::new(),
            deals_in_hubspot: 0,
            startup: Duration::ZERO,
            waves: Vec::new(),
            wall: Duration::ZERO,
            timed_out: false,
            two_way: None,
            problems: Vec::new(),
        };
        let mut ids: Vec<&str> = deliveries.keys().copied().collect();
        ids.sort_unstable();
        let mut written: BTreeMap<(&'static str, String), BTreeSet<String>> = BTreeMap::new();
        for id in ids {
            let Some(seen) = tally.outcomes.get(id).filter(|s| !s.is_empty()) else {
                report.missing_count += 1;
                if report.missing.len() < 5 {
                    report.missing.push(format!("{id} (key {})", keys[id]));
                }
                continue;
            };
            report.answered += 1;
            let first = &seen[0];
            let counts = report.statuses.entry(first.status).or_default();
            // The HubSpot record each outcome names, and the upstream record it stands for.
            let (object, upstream) = match about[id] {
                About::Company => {
                    counts.companies += 1;
                    ("company", keys[id])
                }
                About::Contact => {
                    counts.contacts += 1;
                    ("contact", keys[id])
                }
                About::Activity { kind, activity_id } => {
                    counts.activities += 1;
                    *report
                        .activity_types
                        .entry(kind)
                        .or_default()
                        .entry(first.status)
                        .or_default() += 1;
                    *report
                        .activity_reasons
                        .entry((first.status, first.reason_code.clone()))
                        .or_default() += 1;
                    let object = activities::stored_as(kind).map_or("activity", |o| o.path_name());
                    (object, activity_id)
                }
            };
            for outcome in seen {
                if let Some(hubspot_id) = &outcome.hubspot_id {
                    written
                        .entry((object, hubspot_id.clone()))
                        .or_default()
                        .insert(upstream.to_string());
                }
            }
            *report
                .reasons
                .entry((first.status, first.reason_code.clone()))
                .or_default() += 1;
            if seen.len() > deliveries[id] {
                report
                    .surplus_outcomes
                    .push((id.to_string(), deliveries[id], seen.len()));
            }
            if let Some(&(status, code)) = decided.get(id) {
                let got = (label(first.status), first.reason_code.as_str());
                if got != (status, code) {
                    report.unexpected.push((
                        id.to_string(),
                        keys[id].to_string(),
                        format!("{status} {code}"),
                        format!("{} {}", got.0, got.1),
                    ));
                }
            }
        }
        report.deal_commands(team, tally, &mut written);
        report.shared_records = written
            .into_iter()
            .filter(|(_, upstream)| upstream.len() > 1)
            .map(|((object, id), upstream)| (object, id, upstream.into_iter().collect()))
            .collect();
        // The team's own dead letters; those too broken to name an event go to the team that
        // sent undecodable messages (of several teams, only one does).
        let deals: HashSet<String> = team
            .messages
            .iter()
            .filter_map(Upstream::deal_event_id)
            .collect();
        for letter in &tally.dead_letters {
            let ours = match letter.event_id.as_deref() {
                None => team.expected.garbled_total() > 0,
                Some(id) => deliveries.contains_key(id) || deals.contains(id),
            };
            if ours {
                *report.dead_letters.entry(letter.code.clone()).or_default() += 1;
            }
        }
        report
    }

    /// The outcomes of the deal commands activities made, each against its fate; a deal's
    /// HubSpot id goes into `written` with the contact and campaign it stands for.
    fn deal_commands(
        &mut self,
        team: &Team,
        tally: &Tally,
        written: &mut BTreeMap<(&'static str, String), BTreeSet<String>>,
    ) {
        let mut seen_ids = BTreeSet::new();
        for message in &team.messages {
            let (Payload::Activity(event), Some(fate)) = (&message.payload, message.activity)
            else {
                continue;
            };
            let Some(deal) = fate.deal else { continue };
            let id = deal_event_id(&event.event_id);
            if !seen_ids.insert(id.clone()) {
                continue;
            }
            let Some(first) = tally.outcomes.get(&id).and_then(|seen| seen.first()) else {
                self.missing_count += 1;
                if self.missing.len() < 5 {
                    self.missing
                        .push(format!("{id} (deal command, key {})", message.key));
                }
                continue;
            };
            *self.deal_outcomes.entry(first.status).or_default() += 1;
            if !deal_as_foreseen(deal, first) {
                self.deal_surprises.push((
                    id.clone(),
                    format!("{deal:?}").to_lowercase(),
                    format!("{} {}", label(first.status), first.reason_code),
                ));
            }
            if let (Some(hubspot_id), Some(campaign)) = (&first.hubspot_id, &event.campaign) {
                written
                    .entry(("deal", hubspot_id.clone()))
                    .or_default()
                    .insert(format!("{}:{}", event.contact_id, campaign.campaign_id));
            }
        }
    }

    /// Whether every event and deal command has its outcome and every undecodable message its
    /// dead letter.
    pub fn answered_all(&self) -> bool {
        self.missing_count == 0 && self.undecodable_dead_lettered >= self.expected.garbled_total()
    }

    /// Whether everything is answered and the run matches the prediction in every check.
    pub fn complete(&self) -> bool {
        self.answered_all() && self.problems.is_empty()
    }

    /// Compares the run with what the generated team says must happen; differences become
    /// problems in the report.
    pub fn finish(&mut self) {
        let expected = &self.expected;
        let mut problems = Vec::new();
        if self.contacts_in_hubspot != expected.contacts_in_hubspot {
            problems.push(format!(
                "HubSpot holds {} contacts, the team has {} that belong there",
                self.contacts_in_hubspot, expected.contacts_in_hubspot
            ));
        }
        if self.companies_in_hubspot != expected.companies_in_hubspot {
            problems.push(format!(
                "HubSpot holds {} companies, the team has {}",
                self.companies_in_hubspot, expected.companies_in_hubspot
            ));
        }
        for object in ACTIVITY_OBJECTS {
            let got = self
                .activities_in_hubspot
                .get(&object)
                .copied()
                .unwrap_or(0);
            let want = expected
                .activities_in_hubspot
                .get(&object)
                .copied()
                .unwrap_or(0);
            if got != want {
                problems.push(format!(
                    "HubSpot holds {got} {}, the team's activities make {want}",
                    object.path_name()
                ));
            }
        }
        if self.deals_in_hubspot != expected.deals_in_hubspot {
            problems.push(format!(
                "HubSpot holds {} deals, the team's replies in {} make {}",
                self.deals_in_hubspot,
                names::DEAL_CAMPAIGN,
                expected.deals_in_hubspot
            ));
        }
        // Counts only compare once every event has its outcome; before, the missing say it all.
        let complete = self.answered_all();
        if complete {
            problems.extend(self.activity_count_problems());
        }
        for ((status, code), want) in expected.decided.iter().filter(|_| complete) {
            let got = self
                .reasons
                .get(&(
                    OutcomeStatus::from_symbol(&status.to_ascii_uppercase()),
                    code.to_string(),
                ))
                .copied()
                .unwrap_or(0);
            if got != *want {
                problems.push(format!(
                    "{want} events should be {status} {code}, {got} are"
                ));
            }
        }
        for (code, want) in expected.dead_letters.iter().filter(|_| complete) {
            let got = self.dead_letters.get(*code).copied().unwrap_or(0);
            if got != *want {
                problems.push(format!(
                    "{want} dead letters {code} expected, {got} written"
                ));
            }
        }
        if !self.unexpected.is_empty() {
            let examples: Vec<String> = self
                .unexpected
                .iter()
                .take(3)
                .map(|(id, key, want, got)| format!("{id} (key {key}): expected {want}, got {got}"))
                .collect();
            problems.push(format!(
                "{} events ended otherwise than their record says they must, e.g. {}",
                self.unexpected.len(),
                examples.join("; ")
            ));
        }
        if !self.deal_surprises.is_empty() {
            let examples: Vec<String> = self
                .deal_surprises
                .iter()
                .take(3)
                .map(|(id, want, got)| format!("{id}: expected {want}, got {got}"))
                .collect();
            problems.push(format!(
                "{} deal commands ended otherwise than foreseen, e.g. {}",
                self.deal_surprises.len(),
                examples.join("; ")
            ));
        }
        if !self.shared_records.is_empty() {
            let examples: Vec<String> = self
                .shared_records
                .iter()
                .take(3)
                .map(|(object, id, upstream)| format!("{object} {id} for {}", upstream.join(", ")))
                .collect();
            problems.push(format!(
                "{} HubSpot records stand for more than one upstream record, e.g. {}",
                self.shared_records.len(),
                examples.join("; ")
            ));
        }
        if !self.surplus_outcomes.is_empty() {
            let examples: Vec<String> = self
                .surplus_outcomes
                .iter()
                .take(3)
                .map(|(id, delivered, got)| format!("{id} delivered {delivered}x, {got} outcomes"))
                .collect();
            problems.push(format!(
                "{} events have more outcomes than deliveries, e.g. {}",
                self.surplus_outcomes.len(),
                examples.join("; ")
            ));
        }
        if self.unreadable > 0 {
            problems.push(format!(
                "{} outcome or dead-letter records could not be decoded",
                self.unreadable
            ));
        }
        if self.missing_count > 0 {
            problems.push(format!(
                "{} events have no outcome{}, e.g. {}",
                self.missing_count,
                if self.timed_out {
                    " when the deadline passed"
                } else {
                    ""
                },
                self.missing.join(", ")
            ));
        }
        let garbled = self.expected.garbled_total();
        if self.undecodable_dead_lettered < garbled {
            problems.push(format!(
                "{} of {garbled} undecodable messages were dead-lettered",
                self.undecodable_dead_lettered
            ));
        }
        if let Some(two_way) = &self.two_way {
            problems.extend(two_way.problems());
        }
        self.problems.extend(problems);
    }

    /// Activity events per outcome and deal commands per fate, against the prediction.
    fn activity_count_problems(&self) -> Vec<String> {
        let expected = &self.expected;
        let mut problems = Vec::new();
        let mut codes: BTreeSet<(&str, &str)> =
            expected.activity_outcomes.keys().copied().collect();
        for (status, code) in self.activity_reasons.keys() {
            codes.insert((label(*status), code.as_str()));
        }
        for (status, code) in codes {
            let want = expected
                .activity_outcomes
                .get(&(status, code))
                .copied()
                .unwrap_or(0);
            let got = self.activity_reason_count(status, code);
            if got != want {
                problems.push(format!(
                    "{want} activity events should be {status} {code}, {got} are"
                ));
            }
        }
        let (written, parked) = self.deal_commands_by_fate();
        for (fate, got) in [(DealFate::Written, written), (DealFate::Parked, parked)] {
            let want = expected.deal_commands.get(&fate).copied().unwrap_or(0);
            if got != want {
                problems.push(format!(
                    "{want} deal commands should be {}, {got} are",
                    format!("{fate:?}").to_lowercase()
                ));
            }
        }
        problems
    }

    fn activity_reason_count(&self, status: &str, code: &str) -> usize {
        self.activity_reasons
            .iter()
            .filter(|((s, c), _)| label(*s) == status && c == code)
            .map(|(_, n)| n)
            .sum()
    }

    /// Deal commands whose deal was created or found, and those parked.
    fn deal_commands_by_fate(&self) -> (usize, usize) {
        let count = |statuses: &[OutcomeStatus]| -> usize {
            statuses
                .iter()
                .map(|s| self.deal_outcomes.get(s).copied().unwrap_or(0))
                .sum()
        };
        (
            count(&[
                OutcomeStatus::Created,
                OutcomeStatus::Unchanged,
                OutcomeStatus::Updated,
            ]),
            count(&[OutcomeStatus::Parked]),
        )
    }

    /// The activities by type and status, and their outcomes by reason against the prediction.
    fn render_activities(&self, out: &mut String) {
        let e = &self.expected;
        let _ = writeln!(out);
        let _ = write!(
            out,
            "{:<28}{:<10}{:>8}",
            "activities by type", "as", "events"
        );
        for status in ACTIVITY_STATUSES {
            let _ = write!(out, "{:>14}", label(status));
        }
        let _ = writeln!(out);
        let mut totals: BTreeMap<OutcomeStatus, usize> = BTreeMap::new();
        for &kind in ActivityType::ALL {
            let Some(counts) = self.activity_types.get(&kind) else {
                continue;
            };
            let stored = activities::stored_as(kind).map_or("off", |o| o.path_name());
            let _ = write!(
                out,
                "  {:<26}{:<10}{:>8}",
                activities::type_name(kind),
                stored,
                counts.values().sum::<usize>()
            );
            for status in ACTIVITY_STATUSES {
                let n = counts.get(&status).copied().unwrap_or(0);
                *totals.entry(status).or_default() += n;
                let _ = write!(out, "{n:>14}");
            }
            let _ = writeln!(out);
        }
        let _ = write!(
            out,
            "  {:<36}{:>8}",
            "total",
            totals.values().sum::<usize>()
        );
        for status in ACTIVITY_STATUSES {
            let _ = write!(out, "{:>14}", totals.get(&status).copied().unwrap_or(0));
        }
        let _ = writeln!(out);
        let _ = write!(out, "  {:<36}{:>8}", "expected", e.activity_events);
        for status in ACTIVITY_STATUSES {
            let want: usize = e
                .activity_outcomes
                .iter()
                .filter(|((s, _), _)| *s == label(status))
                .map(|(_, n)| n)
                .sum();
            let _ = write!(out, "{want:>14}");
        }
        let _ = writeln!(out);

        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<16}{:<30}{:>14}{:>10}",
            "activities", "reason code", "events", "expected"
        );
        let mut codes: BTreeSet<(&str, &str)> = e.activity_outcomes.keys().copied().collect();
        for (status, code) in self.activity_reasons.keys() {
            codes.insert((label(*status), code.as_str()));
        }
        for (status, code) in codes {
            let want = e
                .activity_outcomes
                .get(&(status, code))
                .copied()
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "  {:<14}{:<30}{:>14}{:>10}",
                status,
                code,
                self.activity_reason_count(status, code),
                want
            );
        }
    }

    /// The deal commands replies made, against the prediction.
    fn render_deals(&self, out: &mut String) {
        let e = &self.expected;
        let (written, parked) = self.deal_commands_by_fate();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<60}{:>11}{:>10}",
            format!("deal commands (replies in {})", names::DEAL_CAMPAIGN),
            "commands",
            "expected"
        );
        let created = self
            .deal_outcomes
            .get(&OutcomeStatus::Created)
            .copied()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "  {:<58}{:>11}{:>10}",
            format!("deal written: created ({created}) or found again, one per contact"),
            written,
            e.deal_commands
                .get(&DealFate::Written)
                .copied()
                .unwrap_or(0)
        );
        let _ = writeln!(
            out,
            "  {:<58}{:>11}{:>10}",
            "parked: the contact never reached HubSpot",
            parked,
            e.deal_commands.get(&DealFate::Parked).copied().unwrap_or(0)
        );
    }

    pub fn hubspot_total(&self) -> (u64, u64, u64) {
        self.hubspot_calls
            .values()
            .fold((0, 0, 0), |(a, b, c), (x, y, z)| (a + x, b + y, c + z))
    }

    /// The report as printed.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let e = &self.expected;
        let _ = writeln!(
            out,
            "hubsync-dev demo: seed {}, {} contacts at {} companies, {} activity events, HubSpot tier {} ({} requests / 10 s)",
            self.seed, e.contacts, e.companies, e.activity_events, self.tier, self.requests_per_10s
        );

        section(&mut out, "generated team", "contacts");
        for profile in Profile::ALL {
            row(
                &mut out,
                profile.describe(),
                e.profiles.get(&profile).copied().unwrap_or(0),
            );
        }

        section(&mut out, "published", "messages");
        row(
            &mut out,
            &format!(
                "contact events ({} updates of a known contact)",
                e.contact_updates
            ),
            e.contact_events,
        );
        row(
            &mut out,
            &format!("company events ({} updates)", e.company_updates),
            e.company_events,
        );
        row(
            &mut out,
            &format!(
                "activity events ({} sent again under a new event id)",
                e.activity_retries
            ),
            e.activity_events,
        );
        row(
            &mut out,
            "second deliveries of an event (producer retries)",
            e.redeliveries,
        );
        row(&mut out, "undecodable messages", e.garbled_total());
        row(&mut out, "total", self.messages);
        row(
            &mut out,
            "of them live changes, published once the history was in",
            e.live_messages,
        );

        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<40}{:>11}{:>10}{:>10}{:>12}",
            "outcomes, one per event", "events", "contacts", "companies", "activities"
        );
        for status in STATUSES {
            let counts = self.statuses.get(&status).copied().unwrap_or_default();
            if counts.total() > 0 || status != OutcomeStatus::Failed {
                let _ = writeln!(
                    out,
                    "  {:<38}{:>11}{:>10}{:>10}{:>12}",
                    label(status),
                    counts.total(),
                    counts.contacts,
                    counts.companies,
                    counts.activities
                );
            }
        }
        let _ = writeln!(
            out,
            "  {:<60}{:>9}",
            "events with an outcome",
            format!("{} of {}", self.answered, self.events)
        );

        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<16}{:<30}{:>14}{:>10}",
            "by reason", "reason code", "events", "expected"
        );
        for ((status, code), count) in &self.reasons {
            let expected = e
                .decided
                .get(&(label(*status), code.as_str()))
                .map_or("-".to_string(), usize::to_string);
            let _ = writeln!(
                out,
                "  {:<14}{:<30}{:>14}{:>10}",
                label(*status),
                code,
                count,
                expected
            );
        }

        self.render_activities(&mut out);
        self.render_deals(&mut out);

        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<60}{:>11}{:>10}",
            "dead letters", "messages", "expected"
        );
        for (code, count) in &self.dead_letters {
            let expected = e
                .dead_letters
                .get(code.as_str())
                .map_or("-".to_string(), usize::to_string);
            let _ = writeln!(out, "  {:<58}{:>11}{:>10}", code, count, expected);
        }
        let _ = writeln!(
            out,
            "  {:<58}{:>11}{:>10}",
            "of them undecodable (no event id)",
            self.undecodable_dead_lettered,
            e.garbled_total()
        );

        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<52}{:>9}{:>9}{:>10}",
            "HubSpot calls", "calls", "429s", "errors"
        );
        for (endpoint, (calls, throttled, errors)) in &self.hubspot_calls {
            let _ = writeln!(out, "  {endpoint:<50}{calls:>9}{throttled:>9}{errors:>10}");
        }
        let (calls, throttled, errors) = self.hubspot_total();
        let _ = writeln!(out, "  {:<50}{calls:>9}{throttled:>9}{errors:>10}", "total");
        let wall = self.wall.as_secs_f64().max(0.001);
        let _ = writeln!(
            out,
            "  {:.0} calls per 10 s on average (limit {}); 429s {:.2}% of calls",
            calls as f64 / wall * 10.0,
            self.requests_per_10s,
            if calls == 0 {
                0.0
            } else {
                throttled as f64 * 100.0 / calls as f64
            }
        );
        if let Some((batches, mean)) = self.batches {
            let _ = writeln!(
                out,
                "  sink batches: {batches}, {mean:.1} records per batch on average"
            );
        }

        let _ = writeln!(out);
        let _ = writeln!(out, "records in HubSpot");
        let _ = writeln!(out, "hubspot contacts: {}", self.contacts_in_hubspot);
        let _ = writeln!(out, "expected contacts: {}", e.contacts_in_hubspot);
        let _ = writeln!(out, "hubspot companies: {}", self.companies_in_hubspot);
        let _ = writeln!(out, "expected companies: {}", e.companies_in_hubspot);
        let _ = writeln!(
            out,
            "contacts linked to their primary company: {} of {} whose company HubSpot holds",
            self.contacts_linked.0, self.contacts_linked.1
        );
        for object in ACTIVITY_OBJECTS {
            let name = object.path_name();
            let got = self
                .activities_in_hubspot
                .get(&object)
                .copied()
                .unwrap_or(0);
            let want = e.activities_in_hubspot.get(&object).copied().unwrap_or(0);
            let _ = writeln!(out, "hubspot {name}: {got}");
            let _ = writeln!(out, "expected {name}: {want}");
        }
        let _ = writeln!(out, "hubspot deals: {}", self.deals_in_hubspot);
        let _ = writeln!(out, "expected deals: {}", e.deals_in_hubspot);
        if let Some(two_way) = &self.two_way {
            two_way.render(&mut out);
        }

        let records = (self.contacts_in_hubspot
            + self.companies_in_hubspot
            + self.activities_in_hubspot.values().sum::<usize>()
            + self.deals_in_hubspot) as f64;
        let _ = writeln!(out);
        let _ = writeln!(out, "time");
        let _ = writeln!(
            out,
            "  sandbox and pipeline start           {:>8.1} s",
            self.startup.as_secs_f64()
        );
        for wave in &self.waves {
            let _ = writeln!(
                out,
                "  {:<36} {:>8.1} s   ({} messages, published in {:.1} s)",
                wave.name,
                wave.outcomes.as_secs_f64(),
                wave.messages,
                wave.publish.as_secs_f64()
            );
        }
        if let Some(two_way) = &self.two_way {
            let _ = writeln!(
                out,
                "  {:<36} {:>8.1} s   (webhooks in, users' edits, their changes upstream)",
                "HubSpot -> upstream",
                two_way.spent.as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "  wall time, first message to last outcome {:>4.1} s{}",
            self.wall.as_secs_f64(),
            if self.timed_out { " (deadline)" } else { "" }
        );
        let _ = writeln!(
            out,
            "  events/s                             {:>8.0}",
            self.answered as f64 / wall
        );
        let _ = writeln!(
            out,
            "  HubSpot records/s                    {:>8.0}   (records in HubSpot / wall time)",
            records / wall
        );

        let _ = writeln!(out);
        if self.problems.is_empty() {
            let _ = writeln!(
                out,
                "checks: every event has one outcome; HubSpot holds exactly the records the team should have there{}",
                if self.two_way.is_some() {
                    "; upstream got exactly the users' changes of fields mapped back, none of hubsync's own"
                } else {
                    ""
                }
            );
        } else {
            let _ = writeln!(out, "checks: {} problem(s)", self.problems.len());
            for problem in &self.problems {
                let _ = writeln!(out, "  - {problem}");
            }
        }
        let result = if !self.answered_all() {
            "incomplete"
        } else if self.complete() {
            "complete"
        } else {
            "mismatch"
        };
        let _ = writeln!(out, "result: {result}");

        let _ = writeln!(out);
        let _ = writeln!(out, "next commands to try");
        for (command, what) in NEXT_COMMANDS {
            let _ = writeln!(out, "  {command:<74}{what}");
        }
        out
    }
}

const NEXT_COMMANDS: [(&str, &str); 9] = [
    (
        "hubsync-dev demo --seed 7 --contacts 20000",
        "another team, a bigger one",
    ),
    (
        "hubsync-dev demo --hubspot-tier free",
        "the same team under 100 requests / 10 s",
    ),
    (
        "hubsync-dev sandbox --write-config /tmp/hubsync.toml > /tmp/sandbox.env &",
        "the sandbox on its own (Ctrl-C or kill stops it)",
    ),
    (
        "eval \"$(cat /tmp/sandbox.env)\"",
        "its endpoints and token as HUBSYNC_* variables",
    ),
    (
        "hubsync config check /tmp/hubsync.toml",
        "validate the configuration it wrote",
    ),
    (
        "hubsync run --config /tmp/hubsync.toml",
        "the pipeline against that sandbox",
    ),
    (
        "curl -s 127.0.0.1:9464/healthz",
        "the running pipeline's health; /metrics for its figures",
    ),
    (
        "curl -s $HUBSYNC_HUBSPOT_URL/__admin/requests",
        "HubSpot calls so far; /__admin/state for the records",
    ),
    ("make test", "every unit, integration and end-to-end test"),
];

/// Whether a deal command's outcome is what its fate says.
fn deal_as_foreseen(deal: DealFate, outcome: &Seen) -> bool {
    match deal {
        DealFate::Written => matches!(
            outcome.status,
            OutcomeStatus::Created | OutcomeStatus::Unchanged | OutcomeStatus::Updated
        ),
        DealFate::Parked => {
            outcome.status == OutcomeStatus::Parked
                && outcome.reason_code == "PARKED_CONTACT_MISSING"
        }
    }
}

/// A status as the report and the generator spell it: `dead_lettered`.
pub fn label(status: OutcomeStatus) -> &'static str {
    match status {
        OutcomeStatus::Created => "created",
        OutcomeStatus::Updated => "updated",
        OutcomeStatus::Unchanged => "unchanged",
        OutcomeStatus::Skipped => "skipped",
        OutcomeStatus::Parked => "parked",
        OutcomeStatus::Failed => "failed",
        OutcomeStatus::DeadLettered => "dead_lettered",
        OutcomeStatus::Unknown => "unknown",
    }
}

fn section(out: &mut String, title: &str, unit: &str) {
    let _ = writeln!(out);
    let _ = writeln!(out, "{title:<60}{unit:>11}");
}

fn row(out: &mut String, what: &str, count: usize) {
    let _ = writeln!(out, "  {what:<58}{count:>11}");
}

#[cfg(test)]
mod tests {
    use hubsync_sandbox::hubspot::ratelimit::Tier;

    use super::*;
    use crate::demo::collect::Letter;
    use crate::demo::generate::{TeamOptions, generate};

    fn team() -> Team {
        generate(&TeamOptions {
            contacts: 300,
            companies: 30,
            seed: 7,
            end_ms: 1_750_000_000_000,
        })
    }

    fn options() -> DemoOptions {
        DemoOptions {
            contacts: 300,
            companies: 30,
            seed: 7,
            tier: Tier::Professional,
            timeout: Duration::from_secs(60),
            teams: 1,
        }
    }

    fn seen(status: &str, code: &str, hubspot_id: Option<String>) -> Seen {
        Seen {
            status: OutcomeStatus::from_symbol(&status.to_ascii_uppercase()),
            reason_code: code.to_string(),
            hubspot_id,
        }
    }

    /// What a run that goes exactly as the team foresees reads back: every event and deal
    /// command answered as predicted (contacts and companies created), every dead letter.
    fn foreseen(team: &Team) -> Tally {
        let mut tally = Tally::default();
        for message in &team.messages {
            let Some(id) = message.event_id() else {
                if let Payload::Garbled { garble, .. } = &message.payload {
                    tally.undecodable += 1;
                    tally.dead_letters.push(Letter {
                        event_id: None,
                        code: garble.code().to_string(),
                        stage: "process".to_string(),
                    });
                }
                continue;
            };
            let (status, code) = message
                .activity
                .map(|fate| fate.outcome)
                .or(message.decided)
                .unwrap_or(("created", "CREATED"));
            let hubspot_id = match &message.payload {
                Payload::Activity(event) => format!("hs-{}", event.activity_id),
                _ => format!("hs-{}", message.key),
            };
            let written = matches!(status, "created" | "unchanged");
            if status == "dead_lettered" {
                tally.dead_letters.push(Letter {
                    event_id: Some(id.to_string()),
                    code: code.to_string(),
                    stage: "process".to_string(),
                });
            }
            tally.outcomes.entry(id.to_string()).or_default().push(seen(
                status,
                code,
                written.then_some(hubspot_id),
            ));
            if let (Some(deal), Some(deal_id), Payload::Activity(event)) = (
                message.activity.and_then(|fate| fate.deal),
                message.deal_event_id(),
                &message.payload,
            ) {
                let outcome = match deal {
                    DealFate::Written => seen(
                        "created",
                        "CREATED",
                        Some(format!("deal-{}", event.contact_id)),
                    ),
                    DealFate::Parked => seen("parked", "PARKED_CONTACT_MISSING", None),
                };
                tally.outcomes.entry(deal_id).or_default().push(outcome);
            }
        }
        tally
    }

    /// The report of `tally`, with HubSpot holding what the team predicts.
    fn report(team: &Team, tally: &Tally) -> Report {
        let mut report = Report::new(&options(), team, tally);
        let expected = &team.expected;
        report.contacts_in_hubspot = expected.contacts_in_hubspot;
        report.companies_in_hubspot = expected.companies_in_hubspot;
        report.activities_in_hubspot = expected.activities_in_hubspot.clone();
        report.deals_in_hubspot = expected.deals_in_hubspot;
        report.finish();
        report
    }

    #[test]
    fn a_run_as_foreseen_is_complete() {
        let team = team();
        let report = report(&team, &foreseen(&team));
        assert_eq!(report.problems, Vec::<String>::new());
        assert!(report.complete());
        let text = report.render();
        assert!(text.contains("result: complete"), "{text}");
        assert!(
            text.contains(&format!(
                "expected notes: {}",
                team.expected.activities_in_hubspot[&ObjectType::Notes]
            )),
            "{text}"
        );
    }

    #[test]
    fn an_activity_parked_instead_of_created_is_a_mismatch() {
        let team = team();
        let mut tally = foreseen(&team);
        let created = team
            .messages
            .iter()
            .find(|m| m.activity.is_some_and(|f| f.outcome.0 == "created"))
            .and_then(|m| m.event_id())
            .expect("an activity to be created");
        tally.outcomes.insert(
            created.to_string(),
            vec![seen("parked", "PARKED_CONTACT_MISSING", None)],
        );
        let mut report = report(&team, &tally);
        assert!(report.answered_all());
        assert!(!report.complete());
        let problems = report.problems.join("\n");
        assert!(
            problems.contains("activity events should be created CREATED"),
            "{problems}"
        );
        assert!(problems.contains(created), "{problems}");
        assert!(report.render().contains("result: mismatch"));

        // HubSpot short of one note fails the run as a missing contact does.
        report.problems.clear();
        report
            .activities_in_hubspot
            .entry(ObjectType::Notes)
            .and_modify(|n| *n -= 1);
        report.finish();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.starts_with("HubSpot holds") && p.contains("notes")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn a_deal_command_without_its_outcome_leaves_the_run_incomplete() {
        let team = team();
        let mut tally = foreseen(&team);
        let deal = team
            .messages
            .iter()
            .find_map(|m| m.deal_event_id())
            .expect("a reply that makes a deal");
        tally.outcomes.remove(&deal);
        let report = report(&team, &tally);
        assert!(!report.answered_all());
        assert_eq!(report.missing_count, 1);
        assert!(report.missing[0].starts_with(&deal), "{:?}", report.missing);
        assert!(report.render().contains("result: incomplete"));
    }
}
