//! The outcomes log, queried: which outcomes match a filter (status, reason code, record, source
//! topic), counts by status and reason, and the rows `hubsync logs` prints. Pure; reading is
//! [`super::scan`]'s.
//!
//! ```text
//! --status dead-lettered --reason INVALID_OPTION
//!   SyncOutcome { status: DEAD_LETTERED, reason_code: "INVALID_OPTION", .. }  -> shown
//!   SyncOutcome { status: CREATED, .. }                                       -> not shown
//! ```

pub mod index;

use std::collections::BTreeMap;

use hubsync_schemas::{OutcomeStatus, SyncOutcome};
use serde::{Deserialize, Serialize};

use super::range::{format_ms, format_short};
use super::record::{RecordLabel, RecordQuery};
use super::table::Table;
use crate::outcomes::Original;

/// Which outcomes to show; an empty list or `None` lets everything through.
#[derive(Debug, Clone, Default)]
pub struct OutcomeFilter {
    pub statuses: Vec<OutcomeStatus>,
    /// Reason codes, compared without regard to case.
    pub reasons: Vec<String>,
    pub record: Option<RecordQuery>,
    /// The source topic of the event.
    pub topic: Option<String>,
    /// The team: one team's outcomes are never mixed with another's unless asked. Outcomes of
    /// messages too broken to name their team (an empty team) are everyone's.
    pub team: Option<String>,
}

impl OutcomeFilter {
    pub fn matches(&self, outcome: &SyncOutcome) -> bool {
        self.team
            .as_ref()
            .is_none_or(|team| outcome.team_id == *team || outcome.team_id.is_empty())
            && (self.statuses.is_empty() || self.statuses.contains(&outcome.status))
            && (self.reasons.is_empty()
                || self
                    .reasons
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&outcome.reason_code)))
            && self
                .topic
                .as_ref()
                .is_none_or(|topic| *topic == outcome.source_topic)
            && self.record.as_ref().is_none_or(|query| {
                query.matches(
                    RecordLabel::of_outcome(outcome).as_ref(),
                    outcome.hubspot_id.as_deref(),
                    Some(&outcome.event_id),
                )
            })
    }
}

/// A status as typed on the command line: `created`, `DEAD_LETTERED`, `dead-lettered`.
pub fn parse_status(input: &str) -> Result<OutcomeStatus, String> {
    let symbol = input.trim().to_ascii_uppercase().replace('-', "_");
    match OutcomeStatus::from_symbol(&symbol) {
        OutcomeStatus::Unknown if symbol != "UNKNOWN" => Err(format!(
            "{input:?} is not an outcome status; use one of {}",
            OutcomeStatus::ALL
                .iter()
                .map(|s| s.as_str().to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        status => Ok(status),
    }
}

/// Where a record was on its topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The Kafka timestamp, in milliseconds.
    pub timestamp: Option<i64>,
}

impl LogPosition {
    pub fn of(message: &Original) -> Self {
        LogPosition {
            topic: message.topic.clone(),
            partition: message.partition,
            offset: message.offset,
            timestamp: message.timestamp,
        }
    }
}

/// One outcome as `hubsync logs --json` prints it: the record's own fields, its record label,
/// and where it is on the outcomes topic.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedOutcome {
    #[serde(flatten)]
    pub outcome: SyncOutcome,
    /// `email:ada@acme.io`, `domain:acme.io`, `id:ct_1`.
    pub record_label: Option<String>,
    /// `processed_time` as RFC 3339.
    pub processed_at: String,
    pub log: LogPosition,
}

impl LoggedOutcome {
    pub fn new(outcome: SyncOutcome, message: &Original) -> Self {
        Self::at(outcome, LogPosition::of(message))
    }

    pub fn at(outcome: SyncOutcome, log: LogPosition) -> Self {
        LoggedOutcome {
            record_label: RecordLabel::of_outcome(&outcome).map(|l| l.to_string()),
            processed_at: format_ms(outcome.processed_time),
            outcome,
            log,
        }
    }

    /// The time outcomes are ordered and shown by.
    pub fn time(&self) -> i64 {
        self.outcome.processed_time
    }
}

/// The table of outcomes `hubsync logs` prints.
pub fn outcome_table(outcomes: &[LoggedOutcome]) -> Table {
    let mut table = Table::new(&[
        "TIME (UTC)",
        "STATUS",
        "REASON CODE",
        "RECORD",
        "HUBSPOT ID",
        "SOURCE",
        "REASON",
    ])
    .limit(3, 40)
    .limit(6, 70);
    for logged in outcomes {
        let o = &logged.outcome;
        table.row(vec![
            format_short(o.processed_time),
            o.status.as_str().to_string(),
            o.reason_code.clone(),
            logged.record_label.clone().unwrap_or_default(),
            o.hubspot_id.clone().unwrap_or_default(),
            format!(
                "{}/{}/{}",
                o.source_topic, o.source_partition, o.source_offset
            ),
            reason_cell(o),
        ]);
    }
    table
}

/// The reason as a table shows it: the missing fields of a parked record first (the column is
/// cut to its width), and what a redrive re-drove.
fn reason_cell(o: &SyncOutcome) -> String {
    let mut cell = String::new();
    if !o.missing_fields.is_empty() {
        cell.push_str(&format!("missing {}: ", o.missing_fields.join(", ")));
    }
    if let Some(id) = &o.redrive_of {
        cell.push_str(&format!("(redrive of {id}) "));
    }
    cell.push_str(&o.reason);
    cell
}

/// Outcomes counted by status and by reason code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_reason: BTreeMap<String, u64>,
}

impl Counts {
    pub fn add(&mut self, outcome: &SyncOutcome) {
        self.total += 1;
        *self
            .by_status
            .entry(outcome.status.as_str().to_string())
            .or_insert(0) += 1;
        *self
            .by_reason
            .entry(outcome.reason_code.clone())
            .or_insert(0) += 1;
    }

    /// Two tables: by status, then by reason code, most frequent first.
    pub fn tables(&self) -> (Table, Table) {
        (
            count_table("STATUS", &self.by_status),
            count_table("REASON CODE", &self.by_reason),
        )
    }
}

fn count_table(name: &str, counts: &BTreeMap<String, u64>) -> Table {
    let mut rows: Vec<(&String, &u64)> = counts.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut table = Table::new(&[name, "COUNT"]);
    for (key, count) in rows {
        table.row(vec![key.clone(), count.to_string()]);
    }
    table
}

/// Keeps the newest `cap` items by a time (all of them without a cap), memory bounded by twice
/// the cap.
#[derive(Debug, Clone)]
pub struct Newest<T> {
    cap: Option<usize>,
    items: Vec<(i64, u64, T)>,
    seen: u64,
}

impl<T> Newest<T> {
    pub fn new(cap: Option<usize>) -> Self {
        Newest {
            cap,
            items: Vec::new(),
            seen: 0,
        }
    }

    pub fn push(&mut self, time: i64, item: T) {
        self.items.push((time, self.seen, item));
        self.seen += 1;
        if let Some(cap) = self.cap
            && self.items.len() >= cap.max(1) * 2
        {
            self.trim(cap);
        }
    }

    /// How many were pushed.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The kept items, oldest first.
    pub fn into_sorted(mut self) -> Vec<T> {
        if let Some(cap) = self.cap {
            self.trim(cap);
        }
        self.items.sort_by_key(|(time, seq, _)| (*time, *seq));
        self.items.into_iter().map(|(_, _, item)| item).collect()
    }

    fn trim(&mut self, cap: usize) {
        self.items
            .sort_by_key(|(time, seq, _)| std::cmp::Reverse((*time, *seq)));
        self.items.truncate(cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_schemas::examples;

    fn outcome(status: OutcomeStatus, code: &str, record: &str) -> SyncOutcome {
        let mut outcome = examples::sync_outcome();
        outcome.status = status;
        outcome.reason_code = code.to_string();
        outcome.record = Some(record.to_string());
        outcome
    }

    #[test]
    fn statuses_parse_in_any_case_and_with_dashes() {
        assert_eq!(parse_status("created"), Ok(OutcomeStatus::Created));
        assert_eq!(
            parse_status("dead-lettered"),
            Ok(OutcomeStatus::DeadLettered)
        );
        assert_eq!(
            parse_status("DEAD_LETTERED"),
            Ok(OutcomeStatus::DeadLettered)
        );
        let error = parse_status("done").unwrap_err();
        assert!(error.contains("created, updated"), "{error}");
    }

    #[test]
    fn filters_combine_status_reason_topic_and_record() {
        let created = outcome(OutcomeStatus::Created, "CREATED", "ada@acme.io");
        let parked = outcome(
            OutcomeStatus::Parked,
            "PARKED_MISSING_FIELDS",
            "pat@globex.com",
        );
        assert!(OutcomeFilter::default().matches(&created));
        let by_status = OutcomeFilter {
            statuses: vec![OutcomeStatus::Parked, OutcomeStatus::Skipped],
            ..OutcomeFilter::default()
        };
        assert!(!by_status.matches(&created));
        assert!(by_status.matches(&parked));
        let by_reason = OutcomeFilter {
            reasons: vec!["parked_missing_fields".into()],
            ..OutcomeFilter::default()
        };
        assert!(by_reason.matches(&parked) && !by_reason.matches(&created));
        let by_record = OutcomeFilter {
            record: Some(RecordQuery::parse("acme.io")),
            ..OutcomeFilter::default()
        };
        assert!(by_record.matches(&created) && !by_record.matches(&parked));
        let by_topic = OutcomeFilter {
            topic: Some("crm.company.changes".into()),
            ..OutcomeFilter::default()
        };
        assert_ne!(created.source_topic, "crm.company.changes");
        assert!(!by_topic.matches(&created));
        let by_team = OutcomeFilter {
            team: Some("acme".into()),
            ..OutcomeFilter::default()
        };
        let mut theirs = created.clone();
        theirs.team_id = "globex".into();
        let mut ours = created.clone();
        ours.team_id = "acme".into();
        let mut nobodys = created.clone();
        nobodys.team_id = String::new();
        assert!(by_team.matches(&ours) && by_team.matches(&nobodys));
        assert!(
            !by_team.matches(&theirs),
            "another team's outcome is not shown"
        );
    }

    #[test]
    fn counts_go_by_status_and_reason() {
        let mut counts = Counts::default();
        counts.add(&outcome(OutcomeStatus::Created, "CREATED", "a@x.io"));
        counts.add(&outcome(OutcomeStatus::Created, "CREATED", "b@x.io"));
        counts.add(&outcome(OutcomeStatus::Skipped, "NO_IDENTIFIER", "c"));
        assert_eq!(counts.total, 3);
        assert_eq!(counts.by_status["CREATED"], 2);
        assert_eq!(counts.by_reason["NO_IDENTIFIER"], 1);
        let (by_status, _) = counts.tables();
        assert_eq!(
            by_status.render(),
            "STATUS   COUNT\nCREATED  2\nSKIPPED  1\n"
        );
    }

    #[test]
    fn newest_keeps_the_latest_in_time_order() {
        let mut newest = Newest::new(Some(2));
        for (time, name) in [(5, "e"), (1, "a"), (9, "i"), (3, "c"), (7, "g")] {
            newest.push(time, name);
        }
        assert_eq!(newest.seen(), 5);
        assert_eq!(newest.into_sorted(), vec!["g", "i"]);
        let mut all = Newest::new(None);
        all.push(2, "b");
        all.push(1, "a");
        assert_eq!(all.into_sorted(), vec!["a", "b"]);
    }
}
