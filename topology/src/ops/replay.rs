//! Replay: source records re-processed with the current rules, which is how a mapping change
//! reaches history, and how parked events are tried again once the rules let them through.
//!
//! `hubsync replay` copies the selected records of a source topic (by time, by offsets, or the
//! positions of events whose latest outcome is `PARKED`) onto the replay topic
//! (`topics.replay`), each unchanged but for two headers:
//!
//! ```text
//! crm.contact.changes/2/812  {key, value, headers}
//!   -> hubsync.replay  key, value, headers + hubsync.replay.run=mapping-v2
//!                                          + hubsync.replay.of=crm.contact.changes/2/812
//! ```
//!
//! The process stage reads the replay topic beside the source topics, decodes each record as its
//! origin's topic says, and sends the command it makes to the replay commands topic
//! (`topics.replay_commands`) carrying the run. The sink treats those commands as a backfill
//! lane: their own coalescers, a share of HubSpot's budget that gives way to live work, and
//! processed-event keys `{run}:{event_id}`, so a replayed event is written again although its
//! event id was processed live, while a run resumed after an interruption writes nothing twice.
//!
//! Outcomes of replayed events name the origin's topic, partition and offset (as live outcomes
//! do) and say the run in `stage`: `sink replay:mapping-v2`, `process replay:mapping-v2`
//! ([`stage_label`], [`run_of_stage`]).
//!
//! # Layout
//! - this module: the headers, how a stage recognises a replayed record, run names, the keys
//!   and stage labels of replayed events (pure);
//! - [`plan`]: what a selection covers, partition by partition (Kafka lookups);
//! - [`checkpoint`]: a run's progress in `state.dir/replay/<run>.json`;
//! - [`copy`]: reading the planned records and publishing them to the replay topic, chunk by
//!   chunk, each chunk delivered before the checkpoint moves past it;
//! - [`parked`]: the source positions of events whose latest outcome is still `PARKED`.

pub mod checkpoint;
pub mod copy;
pub mod parked;
pub mod plan;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rdkafka::Message;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use serde::{Deserialize, Serialize};

use super::redrive::{REDRIVE_AT, REDRIVE_OF};
use crate::outcomes::Original;

/// The replay run a record was copied by.
pub const REPLAY_RUN: &str = "hubsync.replay.run";
/// Where the copied record came from: `topic/partition/offset`.
pub const REPLAY_OF: &str = "hubsync.replay.of";

/// What `stage` says after the stage's name for a replayed event's outcome.
const STAGE_MARK: &str = " replay:";

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot create a Kafka client: {0}; check [kafka] in the configuration")]
    Client(#[source] KafkaError),
    #[error(
        "topic {topic} does not exist on the brokers; check --topic, [topics] in the configuration and kafka.brokers"
    )]
    NoSuchTopic { topic: String },
    #[error(
        "topic {topic} has no partition {partition} (its partitions are 0 to {last}); check --from-offsets and --to-offsets"
    )]
    NoSuchPartition {
        topic: String,
        partition: i32,
        last: i32,
    },
    #[error("cannot read the {what} of {topic}: {source}; are the brokers reachable?")]
    Kafka {
        what: &'static str,
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error(
        "reading {topic} stalled: no record for {seconds}s while partitions {partitions:?} were unfinished; are the brokers reachable?"
    )]
    Stalled {
        topic: String,
        partitions: Vec<i32>,
        seconds: u64,
    },
    #[error(
        "cannot publish the copy of {of} to {topic}: {source}; the run stopped before its checkpoint moved past it, so running it again copies it again"
    )]
    Publish {
        of: String,
        topic: String,
        #[source]
        source: Box<KafkaError>,
    },
    #[error(transparent)]
    Scan(#[from] super::scan::ScanError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
}

/// A Kafka lookup that failed, naming what and where.
pub(crate) fn kafka(what: &'static str, topic: &str, source: KafkaError) -> ReplayError {
    ReplayError::Kafka {
        what,
        topic: topic.to_string(),
        source,
    }
}

/// A record's place on a topic: `topic/partition/offset`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceRef {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

impl FromStr for SourceRef {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let mut parts = input.trim().rsplitn(3, '/');
        let offset = parts.next().and_then(|o| o.parse::<i64>().ok());
        let partition = parts.next().and_then(|p| p.parse::<i32>().ok());
        let topic = parts.next().filter(|t| !t.is_empty());
        match (topic, partition, offset) {
            (Some(topic), Some(partition), Some(offset)) if partition >= 0 && offset >= 0 => {
                Ok(SourceRef {
                    topic: topic.to_string(),
                    partition,
                    offset,
                })
            }
            _ => Err(format!(
                "{input:?} is not a record position: it reads topic/partition/offset"
            )),
        }
    }
}

/// What marks a record on the replay topic: its run and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub run: String,
    pub of: SourceRef,
}

/// The mark of a record read from the replay topic; `None` when either header is missing or
/// unreadable.
pub fn mark_of<M: Message>(message: &M) -> Option<Mark> {
    let headers = message.headers()?;
    let value = |name: &str| {
        headers
            .iter()
            .filter(|h| h.key == name)
            .filter_map(|h| h.value)
            .last()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let run = value(REPLAY_RUN).filter(|run| RunName::parse(run).is_ok())?;
    let of = value(REPLAY_OF)?.parse().ok()?;
    Some(Mark { run, of })
}

/// The run a command held by the sink was replayed by, if it was.
pub fn run_of_original(original: &Original) -> Option<String> {
    original
        .headers
        .iter()
        .rev()
        .find(|(key, _)| key == REPLAY_RUN)
        .and_then(|(_, value)| value.as_deref())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The headers the command of a replayed record carries: the run, the origin, and a redrive's
/// reference when the replayed record was itself redriven.
pub fn carried(redrive_of: Option<&str>, mark: &Mark) -> OwnedHeaders {
    let of = mark.of.to_string();
    let mut headers = OwnedHeaders::new_with_capacity(3)
        .insert(Header {
            key: REPLAY_RUN,
            value: Some(mark.run.as_str()),
        })
        .insert(Header {
            key: REPLAY_OF,
            value: Some(of.as_str()),
        });
    if let Some(id) = redrive_of {
        headers = headers.insert(Header {
            key: REDRIVE_OF,
            value: Some(id),
        });
    }
    headers
}

/// The headers of a copy on the replay topic: the original's, less any earlier replay's or
/// redrive's marks, and this run's.
pub fn copy_headers(original: &Original, run: &str, of: &SourceRef) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(original.headers.len() + 2);
    for (key, value) in &original.headers {
        if [REPLAY_RUN, REPLAY_OF, REDRIVE_OF, REDRIVE_AT].contains(&key.as_str()) {
            continue;
        }
        headers = headers.insert(Header {
            key: key.as_str(),
            value: value.as_deref(),
        });
    }
    let of = of.to_string();
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

/// The key an event's outcome is remembered under by the sink: the event id for live events,
/// `{run}:{event_id}` for replayed ones, so each run writes a replayed event once.
pub fn processed_key<'a>(run: Option<&str>, event_id: &'a str) -> Cow<'a, str> {
    match run {
        Some(run) => Cow::Owned(format!("{run}:{event_id}")),
        None => Cow::Borrowed(event_id),
    }
}

/// The `stage` of an outcome: the stage's name, and for a replayed event ` replay:{run}`.
pub fn stage_label(stage: &str, run: Option<&str>) -> String {
    match run {
        Some(run) => format!("{stage}{STAGE_MARK}{run}"),
        None => stage.to_string(),
    }
}

/// The run an outcome's `stage` names, if the event was replayed.
pub fn run_of_stage(stage: &str) -> Option<&str> {
    stage
        .split_once(STAGE_MARK)
        .map(|(_, run)| run)
        .filter(|run| !run.is_empty())
}

/// A replay run's name: 1 to 100 letters, digits, `.`, `_` and `-` (it names the run's
/// checkpoint file and goes into every processed-event key of the run).
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

    /// A name for a run started at `now_ms` without one: `replay-20261122T100003Z`.
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

    fn position() -> SourceRef {
        SourceRef {
            topic: "crm.contact.changes".into(),
            partition: 2,
            offset: 812,
        }
    }

    #[test]
    fn positions_read_back_as_written_and_name_what_is_wrong() {
        let text = position().to_string();
        assert_eq!(text, "crm.contact.changes/2/812");
        assert_eq!(text.parse::<SourceRef>(), Ok(position()));
        assert_eq!(
            "a/b/c/0/1".parse::<SourceRef>().map(|p| p.topic),
            Ok("a/b/c".to_string())
        );
        for bad in ["", "topic/1", "/0/1", "t/-1/3", "t/0/x"] {
            let error = bad.parse::<SourceRef>().expect_err(bad);
            assert!(error.contains("topic/partition/offset"), "{error}");
        }
    }

    #[test]
    fn a_copy_keeps_the_original_headers_and_carries_only_this_runs_marks() {
        let original = Original {
            headers: vec![
                ("trace".into(), Some(b"abc".to_vec())),
                (REPLAY_RUN.into(), Some(b"older-run".to_vec())),
                (REDRIVE_OF.into(), Some(b"hubsync.dlq/0/3".to_vec())),
                ("empty".into(), None),
            ],
            ..Original::default()
        };
        let headers = copy_headers(&original, "mapping-v2", &position());
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
    fn commands_carry_the_run_and_the_sink_reads_it_back() {
        let mark = Mark {
            run: "mapping-v2".into(),
            of: position(),
        };
        let headers = carried(Some("hubsync.dlq/0/3"), &mark);
        assert_eq!(
            pairs(&headers),
            vec![
                (REPLAY_RUN.to_string(), "mapping-v2".to_string()),
                (
                    REPLAY_OF.to_string(),
                    "crm.contact.changes/2/812".to_string()
                ),
                (REDRIVE_OF.to_string(), "hubsync.dlq/0/3".to_string()),
            ]
        );
        let held = Original {
            headers: pairs(&headers)
                .into_iter()
                .map(|(k, v)| (k, Some(v.into_bytes())))
                .collect(),
            ..Original::default()
        };
        assert_eq!(run_of_original(&held).as_deref(), Some("mapping-v2"));
        assert_eq!(run_of_original(&Original::default()), None);
    }

    #[test]
    fn replayed_events_are_remembered_per_run_and_labelled_in_stage() {
        assert_eq!(processed_key(None, "e-1"), "e-1");
        assert_eq!(processed_key(Some("mapping-v2"), "e-1"), "mapping-v2:e-1");
        let label = stage_label("sink", Some("mapping-v2"));
        assert_eq!(label, "sink replay:mapping-v2");
        assert_eq!(run_of_stage(&label), Some("mapping-v2"));
        assert_eq!(stage_label("sink", None), "sink");
        assert_eq!(run_of_stage("sink"), None);
        assert_eq!(run_of_stage("process replay:"), None);
    }

    #[test]
    fn run_names_fit_a_file_name_and_a_key() {
        assert!(RunName::parse("mapping-v2_2026.11").is_ok());
        for bad in ["", ".hidden", "a/b", "with space", "x:y", &"n".repeat(101)] {
            let error = RunName::parse(bad).expect_err(bad);
            assert!(error.contains("run name"), "{error}");
        }
        assert_eq!(
            RunName::generated("replay", 1_795_348_800_000).as_str(),
            "replay-20261122T120000Z"
        );
    }
}
