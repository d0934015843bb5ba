//! What travels with a record in Kafka headers, read once per message: whether it is a replayed
//! copy (the run, and the position it was copied from) and whether it was redriven from a dead
//! letter. The stages read a message's [`Lineage`] when they take it and carry it along; the
//! operator commands that write these headers (`replay`, `dlq redrive`) build them here too, so
//! the header protocol has one home and the running pipeline depends on no operator tool.
//!
//! ```text
//! crm.contact.changes/2/812 --hubsync replay--> hubsync.replay  + hubsync.replay.run=mapping-v2
//!                                                               + hubsync.replay.of=crm.contact.changes/2/812
//! hubsync.dlq/0/7 --hubsync dlq redrive--> crm.contact.changes  + hubsync.redrive.of=hubsync.dlq/0/7
//!                                                               + hubsync.redrive.at=2026-11-22T10:00:00.000Z
//! ```
//!
//! A replayed event's command carries the run and origin on to the sink, which keeps it in the
//! backfill lane, remembers it as processed under `{run}:{event_id}` ([`Lineage::processed_key`])
//! and labels its outcome's `stage` `sink replay:{run}` ([`Lineage::stage_label`],
//! [`run_of_stage`]). A redriven event's command carries the dead letter's id, and every outcome
//! of it names that dead letter in `redrive_of` ([`Lineage::stamp`]).

use std::borrow::Cow;
use std::fmt;

use hubsync_schemas::SyncOutcome;
use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use serde::{Deserialize, Serialize};

use crate::position::Position;

/// The replay run a record was copied by.
pub const REPLAY_RUN: &str = "hubsync.replay.run";
/// Where the copied record came from: `topic/partition/offset`.
pub const REPLAY_OF: &str = "hubsync.replay.of";
/// The dead letter a redriven record came from (`topic/partition/offset` on the dead-letter topic).
pub const REDRIVE_OF: &str = "hubsync.redrive.of";
/// When it was redriven (RFC 3339, UTC).
pub const REDRIVE_AT: &str = "hubsync.redrive.at";

/// Every header this module owns; a replayed copy drops earlier ones before adding its own.
const OWN_HEADERS: [&str; 4] = [REPLAY_RUN, REPLAY_OF, REDRIVE_OF, REDRIVE_AT];

/// What `stage` says after the stage's name for a replayed event's outcome.
const STAGE_MARK: &str = " replay:";

/// A replayed record's run and the position it was copied from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayMark {
    pub run: String,
    pub of: Position,
}

/// What a record's headers say of where it came from. Headers repeated take their last value;
/// a replay mark counts only whole (a valid run name and a position).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    pub replay: Option<ReplayMark>,
    /// The dead letter the record was redriven from.
    pub redrive_of: Option<String>,
}

/// [`Lineage::processed_key`] for the replay run `run`.
pub fn processed_key_of<'a>(run: Option<&str>, event_id: &'a str) -> Cow<'a, str> {
    match run {
        Some(run) => Cow::Owned(format!("{run}:{event_id}")),
        None => Cow::Borrowed(event_id),
    }
}

/// [`Lineage::stage_label`] for the replay run `run`.
pub fn stage_label_of(run: Option<&str>, stage: &str) -> String {
    match run {
        Some(run) => format!("{stage}{STAGE_MARK}{run}"),
        None => stage.to_string(),
    }
}

impl Lineage {
    /// Reads the headers of a message as it was consumed.
    pub fn of_message<M: Message>(message: &M) -> Self {
        match message.headers() {
            Some(headers) => Self::of_headers(headers.iter().map(|h| (h.key, h.value))),
            None => Lineage::default(),
        }
    }

    /// Reads headers as `(key, value)` pairs, in order.
    pub fn of_headers<'a>(headers: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>) -> Self {
        let (mut run, mut of, mut redrive_of) = (None, None, None);
        for (key, value) in headers {
            let Some(value) = value else { continue };
            let slot = match key {
                REPLAY_RUN => &mut run,
                REPLAY_OF => &mut of,
                REDRIVE_OF => &mut redrive_of,
                _ => continue,
            };
            *slot = Some(String::from_utf8_lossy(value).into_owned());
        }
        let run = run.filter(|run| RunName::parse(run).is_ok());
        let of = of.and_then(|of| of.parse::<Position>().ok());
        Lineage {
            replay: run.zip(of).map(|(run, of)| ReplayMark { run, of }),
            redrive_of,
        }
    }

    /// The replay run, for a replayed record.
    pub fn run(&self) -> Option<&str> {
        self.replay.as_ref().map(|mark| mark.run.as_str())
    }

    /// The key the sink remembers a processed event by: its id, or `{run}:{id}` when replayed, so
    /// a replay writes an event again that was processed live, once per run.
    pub fn processed_key<'a>(&self, event_id: &'a str) -> Cow<'a, str> {
        processed_key_of(self.run(), event_id)
    }

    /// The `stage` of an outcome: `sink`, or `sink replay:{run}`.
    pub fn stage_label(&self, stage: &str) -> String {
        stage_label_of(self.run(), stage)
    }

    /// The outcome, naming the dead letter its event was redriven from when it was.
    pub fn stamp(&self, mut outcome: SyncOutcome) -> SyncOutcome {
        if self.redrive_of.is_some() {
            outcome.redrive_of = self.redrive_of.clone();
        }
        outcome
    }

    /// The headers a record derived from this one carries along (the process stage's command):
    /// the replay mark and the redrive mark; `None` when there is neither.
    pub fn carried(&self) -> Option<OwnedHeaders> {
        if self.replay.is_none() && self.redrive_of.is_none() {
            return None;
        }
        let mut headers = OwnedHeaders::new_with_capacity(3);
        if let Some(mark) = &self.replay {
            let of = mark.of.to_string();
            headers = headers
                .insert(Header {
                    key: REPLAY_RUN,
                    value: Some(mark.run.as_str()),
                })
                .insert(Header {
                    key: REPLAY_OF,
                    value: Some(of.as_str()),
                });
        }
        if let Some(id) = &self.redrive_of {
            headers = headers.insert(Header {
                key: REDRIVE_OF,
                value: Some(id.as_str()),
            });
        }
        Some(headers)
    }
}

/// The headers of a replayed copy: the original's, less any earlier replay or redrive marks,
/// and this run's mark.
pub fn replay_copy_headers<'a>(
    original: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>,
    run: &str,
    of: &Position,
) -> OwnedHeaders {
    let of = of.to_string();
    let mut headers = OwnedHeaders::new();
    for (key, value) in original {
        if !OWN_HEADERS.contains(&key) {
            headers = headers.insert(Header { key, value });
        }
    }
    headers
        .insert(Header {
            key: REPLAY_RUN,
            value: Some(run),
        })
        .insert(Header {
            key: REPLAY_OF,
            value: Some(of.as_str()),
        })
}

/// The headers of a redriven record: the original's, less any earlier redrive's marks (a
/// replayed record keeps its replay mark, so it goes back to its run), and this redrive's (`at`
/// in RFC 3339).
pub fn redrive_headers<'a>(
    original: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>,
    dead_letter: &Position,
    at: &str,
) -> OwnedHeaders {
    let id = dead_letter.to_string();
    let mut headers = OwnedHeaders::new();
    for (key, value) in original {
        if key != REDRIVE_OF && key != REDRIVE_AT {
            headers = headers.insert(Header { key, value });
        }
    }
    headers
        .insert(Header {
            key: REDRIVE_OF,
            value: Some(id.as_str()),
        })
        .insert(Header {
            key: REDRIVE_AT,
            value: Some(at),
        })
}

/// The replay run an outcome's `stage` names (`sink replay:mapping-v2` -> `mapping-v2`).
pub fn run_of_stage(stage: &str) -> Option<&str> {
    stage
        .split_once(STAGE_MARK)
        .map(|(_, run)| run)
        .filter(|run| !run.is_empty())
}

/// A replay run's name: 1 to 100 letters, digits, `.`, `_` and `-`, not starting with `.` (it
/// names a checkpoint file and travels in headers and outcome stages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunName(String);

impl RunName {
    pub fn parse(input: &str) -> Result<Self, String> {
        let valid = (1..=100).contains(&input.len())
            && input
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && !input.starts_with('.');
        if valid {
            Ok(RunName(input.to_string()))
        } else {
            Err(format!(
                "{input:?} is not a run name: use 1 to 100 letters, digits, '.', '_' and '-', \
                 not starting with '.'"
            ))
        }
    }

    /// `{prefix}-{UTC time}`, for a run the user did not name.
    pub fn generated(prefix: &str, now_ms: i64) -> Self {
        let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now_ms)
            .map(|at| at.format("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_else(|| now_ms.to_string());
        RunName(format!("{prefix}-{at}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(headers: &OwnedHeaders) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect()
    }

    fn read(headers: &[(&str, &str)]) -> Lineage {
        Lineage::of_headers(headers.iter().map(|(k, v)| (*k, Some(v.as_bytes()))))
    }

    fn origin() -> Position {
        Position::new("crm.contact.changes", 2, 812)
    }

    #[test]
    fn a_replay_mark_counts_only_whole_and_the_last_header_wins() {
        let marked = read(&[
            (REPLAY_RUN, "old"),
            (REPLAY_RUN, "mapping-v2"),
            (REPLAY_OF, "crm.contact.changes/2/812"),
        ]);
        assert_eq!(
            marked.replay,
            Some(ReplayMark {
                run: "mapping-v2".into(),
                of: origin()
            })
        );
        assert_eq!(read(&[(REPLAY_RUN, "mapping-v2")]).replay, None);
        assert_eq!(
            read(&[(REPLAY_RUN, ".bad"), (REPLAY_OF, "t/0/1")]).replay,
            None
        );
        assert_eq!(
            read(&[(REPLAY_RUN, "r"), (REPLAY_OF, "t/x/1")]).replay,
            None
        );
    }

    #[test]
    fn keys_labels_and_outcomes_follow_the_lineage() {
        let live = Lineage::default();
        assert_eq!(live.processed_key("e1"), "e1");
        assert_eq!(live.stage_label("sink"), "sink");
        assert!(live.carried().is_none());
        let replayed = read(&[
            (REPLAY_RUN, "mapping-v2"),
            (REPLAY_OF, "crm.contact.changes/2/812"),
            (REDRIVE_OF, "hubsync.dlq/0/3"),
        ]);
        assert_eq!(replayed.processed_key("e1"), "mapping-v2:e1");
        assert_eq!(replayed.stage_label("sink"), "sink replay:mapping-v2");
        assert_eq!(run_of_stage("sink replay:mapping-v2"), Some("mapping-v2"));
        assert_eq!(run_of_stage("sink"), None);
        let outcome = replayed.stamp(hubsync_schemas::examples::sync_outcome());
        assert_eq!(outcome.redrive_of.as_deref(), Some("hubsync.dlq/0/3"));
        let carried = replayed.carried().expect("marks to carry");
        assert_eq!(
            Lineage::of_headers(carried.iter().map(|h| (h.key, h.value))),
            replayed
        );
    }

    #[test]
    fn a_copy_keeps_the_original_headers_and_carries_only_this_runs_marks() {
        let original: Vec<(&str, Option<&[u8]>)> = vec![
            ("trace", Some(b"abc")),
            (REPLAY_RUN, Some(b"older-run")),
            (REDRIVE_OF, Some(b"hubsync.dlq/0/3")),
            ("empty", None),
        ];
        let headers = replay_copy_headers(original.into_iter(), "mapping-v2", &origin());
        assert_eq!(
            pairs(&headers),
            vec![
                ("trace".to_string(), "abc".to_string()),
                ("empty".to_string(), String::new()),
                (REPLAY_RUN.to_string(), "mapping-v2".to_string()),
                (
                    REPLAY_OF.to_string(),
                    "crm.contact.changes/2/812".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_redrive_replaces_an_earlier_redrive_mark_and_keeps_a_replay_mark() {
        let original: Vec<(&str, Option<&[u8]>)> = vec![
            ("trace", Some(b"abc")),
            (REPLAY_RUN, Some(b"mapping-v2")),
            (REDRIVE_OF, Some(b"hubsync.dlq/0/1")),
            (REDRIVE_AT, Some(b"2026-01-01T00:00:00.000Z")),
        ];
        let letter = Position::new("hubsync.dlq", 0, 7);
        let headers = redrive_headers(original.into_iter(), &letter, "2026-11-22T10:00:00.000Z");
        assert_eq!(
            pairs(&headers),
            vec![
                ("trace".to_string(), "abc".to_string()),
                (REPLAY_RUN.to_string(), "mapping-v2".to_string()),
                (REDRIVE_OF.to_string(), "hubsync.dlq/0/7".to_string()),
                (
                    REDRIVE_AT.to_string(),
                    "2026-11-22T10:00:00.000Z".to_string()
                ),
            ]
        );
    }

    #[test]
    fn run_names_are_checked() {
        assert!(RunName::parse("mapping-v2.1_a").is_ok());
        for bad in ["", ".hidden", "a b", "a/b", &"x".repeat(101)] {
            assert!(RunName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            RunName::generated("replay", 1_767_225_600_000).as_str(),
            "replay-20260101T000000Z"
        );
    }
}
