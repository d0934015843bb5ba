//! One record's story, in time order: the upstream events seen for it with what the current
//! rules decide for each, the commands the process stage sent, the outcomes and dead letters,
//! and the record as HubSpot holds it now. This module is the report (pure); [`gather`] reads
//! the topics and HubSpot for it.
//!
//! ```text
//! 2026-11-22 10:00:00.120  EVENT        crm.contact.changes/0/41  contact ct_1 CREATED, email pat@globex.com
//!     rules now (gating): would write UPSERT email:pat@globex.com (firstname); may not create it while last_name is empty
//!     then: would be parked PARKED_MISSING_FIELDS: not in HubSpot and last_name is empty
//! 2026-11-22 10:00:00.300  COMMAND      hubsync.commands/0/12     UPSERT email:pat@globex.com
//! 2026-11-22 10:00:01.000  OUTCOME      hubsync.outcomes/0/3      PARKED PARKED_MISSING_FIELDS: ...
//! 2026-11-22 10:05:00.000  EVENT        crm.activity.events/0/7   activity email_opened act_9 of contact ct_1 (pat@globex.com)
//!     rules now (activities): would create NOTE hubsync_activity_id:act_9 (...), linked to contact email:pat@globex.com (202)
//!       owner (contact_or_default): the contact's owner when the sink links it, else the default owner 70000001: ...
//!     then: would wait for its contact email:pat@globex.com, which HubSpot lacks: ...
//! ```

pub mod gather;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hubsync_processors::decision::identity_label;
use hubsync_schemas::{
    ActivityRecorded, CompanyChanged, ContactChanged, HubSpotCommand, SyncOutcome,
};
use serde::Serialize;
use serde_json::Value;

use super::decision::DecisionView;
use super::dlq::Letter;
use super::range::format_ms;
use super::subject::Identifiers;
use super::table::fields;
use crate::hubspot::Record;
use crate::outcomes::Original;
use crate::sink::verdict::SinkVerdict;

/// What the decisions shown are, said once in every trace.
pub const RULES_NOTE: &str = "rules now: each event decided again with the current configuration's rules and the portal's properties as they are now; the pipeline decided with the rules of its time";

/// What kind of record a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// An upstream event.
    Event,
    /// A message on a source topic that could not be decoded, keyed by the record's id.
    Undecodable,
    Command,
    Outcome,
    DeadLetter,
}

impl StepKind {
    fn label(self) -> &'static str {
        match self {
            StepKind::Event => "EVENT",
            StepKind::Undecodable => "UNDECODABLE",
            StepKind::Command => "COMMAND",
            StepKind::Outcome => "OUTCOME",
            StepKind::DeadLetter => "DEAD LETTER",
        }
    }
}

/// What the current rules say about one event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RulesNow {
    pub decision: Option<DecisionView>,
    /// For a write: what the sink would do given HubSpot's record now.
    pub sink: Option<SinkVerdict>,
    /// Why there is no decision (the portal's properties unreadable), or what is not known.
    pub note: Option<String>,
}

/// One thing that happened to the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Milliseconds: the event's time, the command's or outcome's processing time, the dead
    /// letter's failure time.
    pub time: i64,
    pub at: String,
    pub kind: StepKind,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub event_id: Option<String>,
    /// One line for people.
    pub summary: String,
    /// Further lines for people.
    #[serde(skip)]
    pub details: Vec<String>,
    /// The upstream event as decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_now: Option<RulesNow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<HubSpotCommand>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<SyncOutcome>,
    /// As `dlq show --json` prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<Value>,
}

impl Step {
    fn new(kind: StepKind, time: i64, message: &Original, summary: String) -> Self {
        Step {
            time,
            at: format_ms(time),
            kind,
            topic: message.topic.clone(),
            partition: message.partition,
            offset: message.offset,
            event_id: None,
            summary,
            details: Vec::new(),
            event: None,
            rules_now: None,
            command: None,
            outcome: None,
            dead_letter: None,
        }
    }

    pub fn position(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }

    fn with_rules(mut self, rules: RulesNow) -> Self {
        if let Some(decision) = &rules.decision {
            self.details.push(format!(
                "rules now ({}): {}",
                decision.rule, decision.reason
            ));
            if let Some(activity) = &decision.activity {
                self.details
                    .extend(activity.lines().into_iter().map(|line| format!("  {line}")));
            }
        }
        if let Some(sink) = &rules.sink {
            self.details.push(format!("then: {}", sink.describe()));
        }
        if let Some(note) = &rules.note {
            self.details.push(format!("rules now: {note}"));
        }
        self.rules_now = Some(rules);
        self
    }
}

/// An upstream contact event.
pub fn contact_step(message: &Original, event: &ContactChanged, rules: RulesNow) -> Step {
    let email = event
        .email
        .as_deref()
        .map_or_else(|| "no email".to_string(), |e| format!("email {e}"));
    let mut step = Step::new(
        StepKind::Event,
        event.event_time,
        message,
        format!(
            "contact {} {}, {email}",
            event.contact_id,
            event.change.as_str()
        ),
    );
    step.event_id = Some(event.event_id.clone());
    step.event = serde_json::to_value(event).ok();
    step.details
        .extend(values_line(step.event.as_ref(), &event.changed_fields));
    step.with_rules(rules)
}

/// An upstream company event.
pub fn company_step(message: &Original, event: &CompanyChanged, rules: RulesNow) -> Step {
    let domain = event
        .domain
        .as_deref()
        .or(event.website.as_deref())
        .map_or_else(|| "no domain".to_string(), |d| format!("domain {d}"));
    let mut step = Step::new(
        StepKind::Event,
        event.event_time,
        message,
        format!(
            "company {} {}, {domain}",
            event.company_id,
            event.change.as_str()
        ),
    );
    step.event_id = Some(event.event_id.clone());
    step.event = serde_json::to_value(event).ok();
    step.details
        .extend(values_line(step.event.as_ref(), &event.changed_fields));
    step.with_rules(rules)
}

/// An upstream activity.
pub fn activity_step(message: &Original, event: &ActivityRecorded, rules: RulesNow) -> Step {
    let mut step = Step::new(
        StepKind::Event,
        event.event_time,
        message,
        format!(
            "activity {} {} of contact {}{}",
            event.activity_type.as_str().to_ascii_lowercase(),
            event.activity_id,
            event.contact_id,
            event
                .contact_email
                .as_deref()
                .map_or_else(String::new, |email| format!(" ({email})"))
        ),
    );
    step.event_id = Some(event.event_id.clone());
    step.event = serde_json::to_value(event).ok();
    step.with_rules(rules)
}

/// A message on a source topic keyed by the record's id that could not be decoded.
pub fn undecodable_step(message: &Original, code: &str, reason: &str) -> Step {
    let time = message.timestamp.unwrap_or_default();
    let mut step = Step::new(
        StepKind::Undecodable,
        time,
        message,
        format!("cannot be decoded ({code})"),
    );
    // The process stage names such a message by its position.
    step.event_id = Some(format!(
        "{}/{}/{}",
        message.topic, message.partition, message.offset
    ));
    step.details.push(reason.to_string());
    step
}

pub fn command_step(message: &Original, command: HubSpotCommand) -> Step {
    let mut step = Step::new(
        StepKind::Command,
        command.processed_time,
        message,
        format!(
            "{} {} ({})",
            command.action.as_str(),
            identity_label(&command.identity),
            command.object_type.as_str().to_ascii_lowercase()
        ),
    );
    step.event_id = Some(command.event_id.clone());
    if !command.properties.is_empty() {
        step.details.push(format!(
            "properties: {}",
            optional_pairs(&command.properties)
        ));
    }
    if !command.create_only_properties.is_empty() {
        step.details.push(format!(
            "create only: {}",
            pairs(&command.create_only_properties)
        ));
    }
    if !command.fill_if_empty.is_empty() {
        step.details.push(format!(
            "fill if empty: {}",
            command.fill_if_empty.join(", ")
        ));
    }
    if !command.may_create && !command.missing_for_create.is_empty() {
        step.details.push(format!(
            "may not create it: missing {}",
            command.missing_for_create.join(", ")
        ));
    }
    step.command = Some(command);
    step
}

pub fn outcome_step(message: &Original, outcome: SyncOutcome) -> Step {
    let id = outcome
        .hubspot_id
        .as_deref()
        .map_or_else(String::new, |id| format!(", HubSpot id {id}"));
    let mut step = Step::new(
        StepKind::Outcome,
        outcome.processed_time,
        message,
        format!("{} {}{id}", outcome.status.as_str(), outcome.reason_code),
    );
    step.event_id = Some(outcome.event_id.clone());
    step.details.push(outcome.reason.clone());
    let mut facts = vec![
        format!("stage {}", outcome.stage),
        format!("attempts {}", outcome.attempts),
        format!("correlation id {}", outcome.correlation_id),
    ];
    if !outcome.missing_fields.is_empty() {
        facts.push(format!("missing {}", outcome.missing_fields.join(", ")));
    }
    if let Some(of) = &outcome.redrive_of {
        facts.push(format!("redrive of {of}"));
    }
    step.details.push(facts.join("; "));
    step.outcome = Some(outcome);
    step
}

pub fn dead_letter_step(letter: &Letter) -> Step {
    let d = &letter.dead_letter;
    let e = &d.error;
    let original = Original {
        topic: letter.id.topic.clone(),
        partition: letter.id.partition,
        offset: letter.id.offset,
        timestamp: None,
        key: None,
        value: None,
        headers: Vec::new(),
    };
    let mut step = Step::new(
        StepKind::DeadLetter,
        d.failed_at,
        &original,
        format!("{} {}", e.class.as_str(), e.code),
    );
    step.event_id = d.event_id.clone();
    step.details.push(e.message.clone());
    let mut facts = vec![
        format!("stage {}", e.stage),
        format!("attempts {}", e.attempts),
        format!(
            "of {}/{}/{}",
            d.original_topic, d.original_partition, d.original_offset
        ),
    ];
    if let Some(category) = &e.hubspot_category {
        facts.push(format!("HubSpot category {category}"));
    }
    if let Some(id) = &e.hubspot_correlation_id {
        facts.push(format!("HubSpot correlation id {id}"));
    }
    step.details.push(facts.join("; "));
    step.dead_letter = serde_json::to_value(letter.view(true)).ok();
    step
}

/// The values an event carries, changed ones when it names them: `first_name="Ada", ...`.
fn values_line(event: Option<&Value>, changed: &[String]) -> Option<String> {
    const ENVELOPE: [&str; 8] = [
        "event_id",
        "event_time",
        "team_id",
        "change",
        "actor",
        "fields",
        "changed_fields",
        "contact_id",
    ];
    let object = event?.as_object()?;
    let mut values: Vec<(String, &Value)> = object
        .iter()
        .filter(|(k, v)| {
            !ENVELOPE.contains(&k.as_str()) && k.as_str() != "company_id" && !v.is_null()
        })
        .map(|(k, v)| (k.clone(), v))
        .collect();
    if let Some(custom) = object.get("fields").and_then(Value::as_object) {
        values.extend(
            custom
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v)),
        );
    }
    if !changed.is_empty() {
        values.retain(|(k, _)| changed.contains(k));
    }
    if values.is_empty() && changed.is_empty() {
        return None;
    }
    let mut line = if changed.is_empty() {
        "values: ".to_string()
    } else {
        format!("changed {}: ", changed.join(", "))
    };
    line.push_str(
        &values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    Some(line)
}

fn pairs(values: &BTreeMap<String, String>) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn optional_pairs(values: &BTreeMap<String, Option<String>>) -> String {
    values
        .iter()
        .map(|(k, v)| match v.as_deref() {
            Some(v) if !v.is_empty() => format!("{k}={v:?}"),
            _ => format!("{k} cleared"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A record as HubSpot holds it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HubSpotView {
    /// `contacts`, `companies`, `deals`, `notes`, `emails`, `calls`, `tasks`, `meetings`.
    pub object: &'static str,
    pub id: String,
    /// How it was found: `email ada@acme.io`, `domain acme.io`, `id 901`,
    /// `hubsync_activity_id act_9`.
    pub found_by: String,
    pub properties: BTreeMap<String, Option<String>>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

impl HubSpotView {
    pub fn of(object: &'static str, found_by: String, record: &Record) -> Self {
        HubSpotView {
            object,
            id: record.id.clone(),
            found_by,
            properties: record.properties.clone(),
            created_at: record.created_at.clone(),
            updated_at: record.updated_at.clone(),
        }
    }
}

/// One topic searched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicSearch {
    pub topic: String,
    /// Records read (both passes of a source topic counted).
    pub read: u64,
    pub matched: u64,
}

/// Everything `trace` found, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct TraceReport {
    /// What was asked, as a label (`email:ada@acme.io`).
    pub asked: String,
    /// Whether anything about the record was found on a topic or in HubSpot.
    pub found: bool,
    pub since: Option<String>,
    pub until: Option<String>,
    pub searched: Vec<TopicSearch>,
    /// HubSpot reads made: `contacts by email ada@acme.io`.
    pub hubspot_reads: Vec<String>,
    pub identifiers: Identifiers,
    pub rules_note: &'static str,
    pub timeline: Vec<Step>,
    /// The newest outcome, by processing time.
    pub latest_outcome: Option<SyncOutcome>,
    pub hubspot: Vec<HubSpotView>,
    /// Why HubSpot could not be read, when it could not.
    pub hubspot_error: Option<String>,
}

impl TraceReport {
    /// Sorts the timeline by time, events before what they caused at the same millisecond.
    pub fn sort(&mut self) {
        self.timeline.sort_by(|a, b| {
            (a.time, a.kind, &a.topic, a.partition, a.offset).cmp(&(
                b.time,
                b.kind,
                &b.topic,
                b.partition,
                b.offset,
            ))
        });
        self.latest_outcome = self
            .timeline
            .iter()
            .filter_map(|s| s.outcome.as_ref())
            .max_by_key(|o| o.processed_time)
            .cloned();
    }

    /// The report for people.
    pub fn render(&self) -> String {
        let mut out = format!("trace of {}\n", self.asked);
        let window = match (&self.since, &self.until) {
            (None, None) => "whole topics".to_string(),
            (Some(since), None) => format!("since {since}"),
            (None, Some(until)) => format!("until {until}"),
            (Some(since), Some(until)) => format!("{since} to {until}"),
        };
        let searched = self
            .searched
            .iter()
            .map(|t| format!("{} ({} read, {} matched)", t.topic, t.read, t.matched))
            .collect::<Vec<_>>()
            .join(", ");
        let mut facts = vec![
            ("identifiers", describe_identifiers(&self.identifiers)),
            ("searched", format!("{searched}; {window}")),
        ];
        if !self.hubspot_reads.is_empty() {
            facts.push(("HubSpot reads", self.hubspot_reads.join(", ")));
        }
        if let Some(o) = &self.latest_outcome {
            facts.push((
                "latest outcome",
                format!(
                    "{} {} at {}: {}",
                    o.status.as_str(),
                    o.reason_code,
                    format_ms(o.processed_time),
                    o.reason
                ),
            ));
        }
        out.push_str(&fields(&facts));
        if !self.found {
            out.push_str("\nnothing found about this record on the topics or in HubSpot\n");
            return out;
        }
        out.push('\n');
        if self.timeline.is_empty() {
            out.push_str("no events, commands, outcomes or dead letters in the range\n");
        } else {
            let _ = writeln!(out, "({RULES_NOTE})");
        }
        let width = self
            .timeline
            .iter()
            .map(|s| s.position().chars().count())
            .max()
            .unwrap_or(0);
        for step in &self.timeline {
            let _ = writeln!(
                out,
                "{}  {:<11}  {:<width$}  {}",
                super::range::format_short(step.time),
                step.kind.label(),
                step.position(),
                step.summary,
            );
            if let Some(id) = &step.event_id {
                let _ = writeln!(out, "    event {id}");
            }
            for line in &step.details {
                let _ = writeln!(out, "    {line}");
            }
        }
        out.push_str("\nHubSpot now\n");
        if let Some(error) = &self.hubspot_error {
            let _ = writeln!(out, "  cannot read HubSpot: {error}");
        }
        if self.hubspot.is_empty() && self.hubspot_error.is_none() {
            let asked = if self.hubspot_reads.is_empty() {
                "nothing to look up by".to_string()
            } else {
                format!("looked up {}", self.hubspot_reads.join(", "))
            };
            let _ = writeln!(out, "  no record ({asked})");
        }
        for record in &self.hubspot {
            let _ = writeln!(
                out,
                "  {} {} (by {}), created {}, updated {}",
                record.object,
                record.id,
                record.found_by,
                record.created_at.as_deref().unwrap_or("-"),
                record.updated_at.as_deref().unwrap_or("-")
            );
            let values: Vec<(&str, String)> = record
                .properties
                .iter()
                .filter_map(|(k, v)| {
                    v.as_deref()
                        .filter(|v| !v.is_empty())
                        .map(|v| (k.as_str(), v.replace('\n', "\\n")))
                })
                .collect();
            for line in fields(&values).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }
}

fn describe_identifiers(ids: &Identifiers) -> String {
    let mut parts = Vec::new();
    let mut add = |name: &str, set: &std::collections::BTreeSet<String>| {
        if !set.is_empty() {
            parts.push(format!(
                "{name} {}",
                set.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    };
    add("email", &ids.emails);
    add("domain", &ids.domains);
    add("LinkedIn", &ids.linkedin);
    add("contact", &ids.contact_ids);
    add("company", &ids.company_ids);
    add("activity", &ids.activity_ids);
    add("HubSpot", &ids.hubspot_ids);
    add("id", &ids.ids);
    match ids.event_ids.len() {
        0 => {}
        1 => parts.push("1 event id".to_string()),
        n => parts.push(format!("{n} event ids")),
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_schemas::{OutcomeStatus, examples};

    fn message(topic: &str, offset: i64) -> Original {
        Original {
            topic: topic.into(),
            partition: 0,
            offset,
            timestamp: Some(1_000),
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn the_timeline_is_in_time_order_and_names_the_latest_outcome() {
        let mut event = examples::contact_changed();
        event.event_time = 1_000;
        event.changed_fields = vec!["job_title".into()];
        event.job_title = Some("CTO".into());
        let mut first = examples::sync_outcome();
        first.processed_time = 2_000;
        first.status = OutcomeStatus::Parked;
        let mut second = examples::sync_outcome();
        second.processed_time = 3_000;
        second.status = OutcomeStatus::Created;
        second.hubspot_id = Some("901".into());
        let mut report = TraceReport {
            asked: "email:ada@acme.io".into(),
            found: true,
            since: None,
            until: None,
            searched: vec![TopicSearch {
                topic: "crm.contact.changes".into(),
                read: 3,
                matched: 1,
            }],
            hubspot_reads: vec!["contacts by email ada@acme.io".into()],
            identifiers: Identifiers::default(),
            rules_note: RULES_NOTE,
            timeline: vec![
                outcome_step(&message("hubsync.outcomes", 2), second),
                contact_step(
                    &message("crm.contact.changes", 7),
                    &event,
                    RulesNow {
                        note: Some("test".into()),
                        ..RulesNow::default()
                    },
                ),
                outcome_step(&message("hubsync.outcomes", 1), first),
            ],
            latest_outcome: None,
            hubspot: Vec::new(),
            hubspot_error: None,
        };
        report.sort();
        let kinds: Vec<StepKind> = report.timeline.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [StepKind::Event, StepKind::Outcome, StepKind::Outcome]
        );
        assert_eq!(
            report.latest_outcome.as_ref().map(|o| o.status),
            Some(OutcomeStatus::Created)
        );
        let text = report.render();
        assert!(
            text.contains("changed job_title: job_title=\"CTO\""),
            "{text}"
        );
        assert!(text.contains("CREATED"), "{text}");
        assert!(
            text.contains("crm.contact.changes (3 read, 1 matched)"),
            "{text}"
        );
        assert!(
            text.contains("no record (looked up contacts by email ada@acme.io)"),
            "{text}"
        );
    }

    #[test]
    fn commands_show_what_they_write() {
        let mut command = examples::hubspot_command();
        command.properties = BTreeMap::from([
            ("jobtitle".to_string(), Some("CTO".to_string())),
            ("phone".to_string(), None),
        ]);
        command.may_create = false;
        command.missing_for_create = vec!["last_name".into()];
        let step = command_step(&message("hubsync.commands", 3), command);
        let details = step.details.join("\n");
        assert!(
            details.contains("jobtitle=\"CTO\", phone cleared"),
            "{details}"
        );
        assert!(details.contains("missing last_name"), "{details}");
    }

    #[test]
    fn an_activity_shows_its_object_owner_links_and_what_the_sink_would_do() {
        use crate::sink::verdict::ContactNow;
        use hubsync_processors::rules::Rules;
        use hubsync_processors::{OwnerDirectory, PropertyCatalog, decide_activity};

        let rules: Rules = toml::from_str(
            "[users]\ndefault_owner = \"70000001\"\n[activities]\nassociate_company = true\n",
        )
        .expect("rules parse");
        let mut event = examples::activity_recorded();
        event.sender = None;
        event.campaign = None;
        let decision = decide_activity(
            &event,
            &rules,
            &PropertyCatalog::new(),
            &OwnerDirectory::new(),
        );
        let rules_now = RulesNow {
            decision: Some(DecisionView::of_activity(
                &decision,
                &event,
                &rules.users,
                ContactNow::Absent,
            )),
            sink: Some(SinkVerdict::WaitsForContact {
                contact: "email:jordan.lee@northwind.example".into(),
            }),
            note: None,
        };
        let step = activity_step(&message("crm.activity.events", 4), &event, rules_now);
        assert_eq!(
            step.summary,
            "activity email_clicked act_778812 of contact ct_90311 (jordan.lee@northwind.example)"
        );
        let details = step.details.join("\n");
        for wanted in [
            "rules now (activities): would create NOTE hubsync_activity_id:act_778812",
            "  as note, activity id act_778812",
            "  owner (contact_or_default): the contact's owner when the sink links it, else the default owner 70000001",
            "  links: contact email:jordan.lee@northwind.example (202), company company_id:co_2207 (190)",
            "then: would wait for its contact email:jordan.lee@northwind.example",
        ] {
            assert!(details.contains(wanted), "{wanted:?} in:\n{details}");
        }
    }
}
