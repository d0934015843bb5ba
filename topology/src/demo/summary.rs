//! What a demo run reports: what was published, what became of it, what it cost in HubSpot
//! calls, how long it took, and whether it matches what the generated team says must happen.
//!
//! Some lines are meant for scripts as well as people and keep their shape:
//! `hubspot contacts: N`, `expected contacts: N` (and the same for companies), one
//! `  <status>  <events>  <contact events>  <company events>` line per outcome status, and
//! `result: complete` or `result: incomplete`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use hubsync_schemas::OutcomeStatus;

use super::DemoOptions;
use super::collect::Tally;
use super::generate::{Expected, Payload, Profile, Team};

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
    /// Per distinct event, its first outcome's status: (contact events, company events).
    pub statuses: BTreeMap<OutcomeStatus, (usize, usize)>,
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
    pub contacts_in_hubspot: usize,
    pub companies_in_hubspot: usize,
    pub startup: Duration,
    /// Each wave of messages: its publishing and how long until its outcomes were in.
    pub waves: Vec<Wave>,
    /// From the first message published to the last outcome (or the deadline).
    pub wall: Duration,
    pub timed_out: bool,
    pub problems: Vec<String>,
}

impl Report {
    pub fn new(options: &DemoOptions, team: &Team, tally: &Tally) -> Report {
        let mut deliveries: HashMap<&str, usize> = HashMap::new();
        let mut keys: HashMap<&str, &str> = HashMap::new();
        let mut decided: HashMap<&str, (&str, &str)> = HashMap::new();
        let mut companies: HashSet<&str> = HashSet::new();
        for message in &team.messages {
            if let Some(id) = message.event_id() {
                *deliveries.entry(id).or_default() += 1;
                keys.insert(id, &message.key);
                if matches!(message.payload, Payload::Company(_)) {
                    companies.insert(id);
                }
                if let Some(expected) = message.decided {
                    decided.insert(id, expected);
                }
            }
        }
        let mut report = Report {
            seed: options.seed,
            tier: options.tier.as_str(),
            requests_per_10s: options.tier.limits().per_window,
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
            contacts_in_hubspot: 0,
            companies_in_hubspot: 0,
            startup: Duration::ZERO,
            waves: Vec::new(),
            wall: Duration::ZERO,
            timed_out: false,
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
            let object = if companies.contains(id) {
                "company"
            } else {
                "contact"
            };
            let counts = report.statuses.entry(first.status).or_default();
            if object == "company" {
                counts.1 += 1;
            } else {
                counts.0 += 1;
            }
            for outcome in seen {
                if let Some(hubspot_id) = &outcome.hubspot_id {
                    written
                        .entry((object, hubspot_id.clone()))
                        .or_default()
                        .insert(keys[id].to_string());
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
        report.shared_records = written
            .into_iter()
            .filter(|(_, upstream)| upstream.len() > 1)
            .map(|((object, id), upstream)| (object, id, upstream.into_iter().collect()))
            .collect();
        for letter in &tally.dead_letters {
            *report.dead_letters.entry(letter.code.clone()).or_default() += 1;
        }
        report
    }

    /// Whether every event has its outcome and every undecodable message its dead letter.
    pub fn complete(&self) -> bool {
        self.missing_count == 0 && self.undecodable_dead_lettered >= self.expected.garbled_total()
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
        // Counts only compare once every event has its outcome; before, the missing say it all.
        let complete = self.complete();
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
        self.problems.extend(problems);
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
            "hubsync demo: seed {}, {} contacts at {} companies, HubSpot tier {} ({} requests / 10 s)",
            self.seed, e.contacts, e.companies, self.tier, self.requests_per_10s
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
            "{:<40}{:>11}{:>10}{:>10}",
            "outcomes, one per event", "events", "contacts", "companies"
        );
        for status in STATUSES {
            let (contacts, companies) = self.statuses.get(&status).copied().unwrap_or((0, 0));
            if contacts + companies > 0 || status != OutcomeStatus::Failed {
                let _ = writeln!(
                    out,
                    "  {:<38}{:>11}{:>10}{:>10}",
                    label(status),
                    contacts + companies,
                    contacts,
                    companies
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

        let records = (self.contacts_in_hubspot + self.companies_in_hubspot) as f64;
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
                "checks: every event has one outcome; HubSpot holds exactly the records the team should have there"
            );
        } else {
            let _ = writeln!(out, "checks: {} problem(s)", self.problems.len());
            for problem in &self.problems {
                let _ = writeln!(out, "  - {problem}");
            }
        }
        let _ = writeln!(
            out,
            "result: {}",
            if self.complete() {
                "complete"
            } else {
                "incomplete"
            }
        );

        let _ = writeln!(out);
        let _ = writeln!(out, "next commands to try");
        for (command, what) in NEXT_COMMANDS {
            let _ = writeln!(out, "  {command:<72}{what}");
        }
        out
    }
}

const NEXT_COMMANDS: [(&str, &str); 9] = [
    (
        "hubsync demo --seed 7 --contacts 20000",
        "another team, a bigger one",
    ),
    (
        "hubsync demo --hubspot-tier free",
        "the same team under 100 requests / 10 s",
    ),
    (
        "hubsync sandbox --write-config /tmp/hubsync.toml > /tmp/sandbox.env &",
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
