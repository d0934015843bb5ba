//! What a replay selection covers, partition by partition: a [`Span`] of offsets per partition,
//! fixed when the run starts (the high watermark then is its end), so a run resumed later copies
//! the same records and none that arrived since.
//!
//! ```text
//! --since 2026-11-01 on crm.contact.changes (3 partitions):
//!   partition 0: offsets_for_times -> 812, high 1,204    span 812..1204
//!   partition 1: nothing stamped since then               no span
//! --from-offsets 0:100 --to-offsets 0:199                 span 100..200 of partition 0
//! --parked: crm.contact.changes/1/7 and /1/90             span 7..91 of partition 1, only [7, 90]
//! ```
//!
//! A broker that cannot look offsets up by time (the development broker answers "end" for any
//! time) is detected as [`crate::ops::scan`] does: when the partition's last record is inside
//! the window although the broker said nothing is, the partition is read from its start and the
//! copier filters by timestamp.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use serde::{Deserialize, Serialize};

use super::{ReplayError, kafka};
use crate::ops::range::{Window, format_ms};
use crate::ops::scan::TopicReader;
use crate::position::Position;

/// How long one metadata, watermark or offset lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// What a run replays, as its first invocation asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Records of `topic` stamped at or after `since` (and at or before `until`).
    Time {
        topic: String,
        since: i64,
        until: Option<i64>,
    },
    /// Offsets of `topic` per partition: from `from`, to `to` included (or the end).
    Offsets {
        topic: String,
        from: BTreeMap<i32, i64>,
        to: BTreeMap<i32, i64>,
    },
    /// Events whose latest outcome is `PARKED`, among outcomes recorded in the window; of
    /// `topic` only, when given.
    Parked {
        topic: Option<String>,
        since: Option<i64>,
        until: Option<i64>,
        /// Only this team's events (the team the configuration names): a service's outcomes
        /// topic carries every team's. Runs saved before teams existed have none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        team: Option<String>,
    },
}

impl Selection {
    /// The source topic named, if one is.
    pub fn topic(&self) -> Option<&str> {
        match self {
            Selection::Time { topic, .. } | Selection::Offsets { topic, .. } => Some(topic),
            Selection::Parked { topic, .. } => topic.as_deref(),
        }
    }

    /// The timestamps a copied record must carry (every one, but for a time selection).
    pub fn window(&self) -> Window {
        match self {
            Selection::Time { since, until, .. } => Window {
                since: Some(*since),
                until: *until,
            },
            _ => Window::default(),
        }
    }

    /// Whether `other` asks for the same kind of replay of the same topic: what a resumed run
    /// must match (times given as "2h ago" move between invocations, so they are not compared).
    pub fn resumes(&self, other: &Selection) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.topic() == other.topic()
    }

    /// For people: `crm.contact.changes since 2026-11-01T00:00:00.000Z`.
    pub fn describe(&self) -> String {
        match self {
            Selection::Time {
                topic,
                since,
                until,
            } => match until {
                Some(until) => format!(
                    "{topic} from {} to {}",
                    format_ms(*since),
                    format_ms(*until)
                ),
                None => format!("{topic} since {}", format_ms(*since)),
            },
            Selection::Offsets { topic, from, to } => {
                let ranges: Vec<String> = from
                    .iter()
                    .map(|(partition, start)| match to.get(partition) {
                        Some(end) => format!("{partition}:{start}..={end}"),
                        None => format!("{partition}:{start}.."),
                    })
                    .collect();
                format!("{topic} offsets {}", ranges.join(","))
            }
            Selection::Parked {
                topic,
                since,
                until,
                team,
            } => {
                let mut text = String::from("events whose latest outcome is PARKED");
                if let Some(team) = team {
                    text.push_str(&format!(", of team {team}"));
                }
                if let Some(topic) = topic {
                    text.push_str(&format!(" on {topic}"));
                }
                if let Some(since) = since {
                    text.push_str(&format!(", outcomes since {}", format_ms(*since)));
                }
                if let Some(until) = until {
                    text.push_str(&format!(", until {}", format_ms(*until)));
                }
                text
            }
        }
    }
}

/// `P:O,P:O` as given to `--from-offsets` and `--to-offsets`.
pub fn parse_offsets(input: &str) -> Result<BTreeMap<i32, i64>, String> {
    let mut offsets = BTreeMap::new();
    for pair in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair.split_once(':').and_then(|(partition, offset)| {
            Some((
                partition.trim().parse::<i32>().ok()?,
                offset.trim().parse::<i64>().ok()?,
            ))
        });
        match parsed {
            Some((partition, offset)) if partition >= 0 && offset >= 0 => {
                if offsets.insert(partition, offset).is_some() {
                    return Err(format!("partition {partition} is given twice in {input:?}"));
                }
            }
            _ => {
                return Err(format!(
                    "{pair:?} is not partition:offset (both whole numbers, e.g. 0:1200)"
                ));
            }
        }
    }
    if offsets.is_empty() {
        return Err(format!(
            "{input:?} names no partition: write partition:offset pairs separated by commas, e.g. 0:1200,1:980"
        ));
    }
    Ok(offsets)
}

/// One partition's share of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub topic: String,
    pub partition: i32,
    /// The first offset of the run.
    pub start: i64,
    /// One past the last offset of the run.
    pub end: i64,
    /// The first offset not yet copied (delivered): where a resumed run starts.
    pub next: i64,
    /// When not empty, only these offsets are copied (sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<i64>,
}

impl Span {
    fn new(topic: &str, partition: i32, start: i64, end: i64) -> Self {
        Span {
            topic: topic.to_string(),
            partition,
            start,
            end,
            next: start,
            only: Vec::new(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.end
    }

    /// Whether the record at `offset` is one the run copies.
    pub fn selects(&self, offset: i64) -> bool {
        self.only.is_empty() || self.only.binary_search(&offset).is_ok()
    }

    /// Records of the span not yet copied.
    pub fn remaining(&self) -> u64 {
        if self.only.is_empty() {
            u64::try_from(self.end - self.next).unwrap_or(0)
        } else {
            self.only.iter().filter(|o| **o >= self.next).count() as u64
        }
    }

    /// Records of the span in all.
    pub fn size(&self) -> u64 {
        if self.only.is_empty() {
            u64::try_from(self.end - self.start).unwrap_or(0)
        } else {
            self.only.len() as u64
        }
    }
}

/// The partitions of `topic`, in order.
pub fn partitions(consumer: &StreamConsumer, topic: &str) -> Result<Vec<i32>, ReplayError> {
    let partitions = crate::kafka::topic_partitions(consumer, topic, LOOKUP_TIMEOUT)
        .map_err(|source| kafka("metadata", topic, source))?;
    if partitions.is_empty() {
        return Err(ReplayError::NoSuchTopic {
            topic: topic.to_string(),
        });
    }
    Ok(partitions)
}

/// The low and high watermarks of a partition.
pub fn watermarks(
    consumer: &StreamConsumer,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), ReplayError> {
    consumer
        .fetch_watermarks(topic, partition, LOOKUP_TIMEOUT)
        .map_err(|source| kafka("watermarks", topic, source))
}

/// Every partition of `topic` with records, from the first record stamped at or after `since`
/// to the end as it is now.
pub async fn by_time(
    consumer: &StreamConsumer,
    reader: &TopicReader,
    topic: &str,
    since: i64,
) -> Result<Vec<Span>, ReplayError> {
    let mut spans = Vec::new();
    for partition in partitions(consumer, topic)? {
        let (low, high) = watermarks(consumer, topic, partition)?;
        if high > low {
            spans.push(Span::new(topic, partition, low, high));
        }
    }
    let bounds: Vec<(i32, i64, i64)> = spans
        .iter()
        .map(|span| (span.partition, span.start, span.end))
        .collect();
    let mut planned = Vec::new();
    for found in reader.starts_since(topic, &bounds, since).await? {
        if let Some(span) = spans.iter().find(|s| s.partition == found.partition) {
            planned.push(Span::new(topic, found.partition, found.start, span.end));
        }
    }
    Ok(planned)
}

/// The offset ranges asked for, within what each partition holds now.
pub fn by_offsets(
    consumer: &StreamConsumer,
    topic: &str,
    from: &BTreeMap<i32, i64>,
    to: &BTreeMap<i32, i64>,
) -> Result<Vec<Span>, ReplayError> {
    let existing = partitions(consumer, topic)?;
    let last = existing.last().copied().unwrap_or(0);
    let mut spans = Vec::new();
    for (partition, start) in from {
        if !existing.contains(partition) {
            return Err(ReplayError::NoSuchPartition {
                topic: topic.to_string(),
                partition: *partition,
                last,
            });
        }
        let (low, high) = watermarks(consumer, topic, *partition)?;
        let end = to.get(partition).map_or(high, |last| (last + 1).min(high));
        let start = (*start).max(low);
        if start < end {
            spans.push(Span::new(topic, *partition, start, end));
        }
    }
    Ok(spans)
}

/// Spans covering exactly `positions`; positions no longer on their topic (deleted by
/// retention, or past its end) are counted apart.
pub fn by_positions(
    consumer: &StreamConsumer,
    positions: &BTreeSet<Position>,
) -> Result<(Vec<Span>, u64), ReplayError> {
    let mut grouped: BTreeMap<(&str, i32), Vec<i64>> = BTreeMap::new();
    for position in positions {
        grouped
            .entry((position.topic.as_str(), position.partition))
            .or_default()
            .push(position.offset);
    }
    let mut spans = Vec::new();
    let mut gone = 0;
    for ((topic, partition), mut offsets) in grouped {
        let (low, high) = watermarks(consumer, topic, partition)?;
        offsets.sort_unstable();
        let before = offsets.len();
        offsets.retain(|o| (low..high).contains(o));
        gone += (before - offsets.len()) as u64;
        let (Some(first), Some(last)) = (offsets.first().copied(), offsets.last().copied()) else {
            continue;
        };
        let mut span = Span::new(topic, partition, first, last + 1);
        span.only = offsets;
        spans.push(span);
    }
    Ok((spans, gone))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_partition_colon_offset_pairs() {
        assert_eq!(
            parse_offsets("0:1200, 2:0"),
            Ok(BTreeMap::from([(0, 1200), (2, 0)]))
        );
        for bad in ["", "0", "0:x", "-1:3", "0:-3", "a:1"] {
            let error = parse_offsets(bad).expect_err(bad);
            assert!(error.contains("partition"), "{bad}: {error}");
        }
        assert!(
            parse_offsets("0:1,0:2")
                .expect_err("twice")
                .contains("twice")
        );
    }

    #[test]
    fn a_resumed_run_must_ask_for_the_same_kind_on_the_same_topic() {
        let time = Selection::Time {
            topic: "crm.contact.changes".into(),
            since: 1,
            until: None,
        };
        let later = Selection::Time {
            topic: "crm.contact.changes".into(),
            since: 5_000,
            until: Some(9_000),
        };
        let other_topic = Selection::Time {
            topic: "crm.company.changes".into(),
            since: 1,
            until: None,
        };
        let offsets = Selection::Offsets {
            topic: "crm.contact.changes".into(),
            from: BTreeMap::from([(0, 0)]),
            to: BTreeMap::new(),
        };
        assert!(time.resumes(&later));
        assert!(!time.resumes(&other_topic));
        assert!(!time.resumes(&offsets));
        assert_eq!(
            later.window(),
            Window {
                since: Some(5_000),
                until: Some(9_000)
            }
        );
        assert_eq!(offsets.window(), Window::default());
        assert_eq!(offsets.describe(), "crm.contact.changes offsets 0:0..");
    }

    #[test]
    fn spans_count_what_is_left_and_select_their_offsets() {
        let mut span = Span::new("t", 0, 10, 20);
        assert_eq!((span.size(), span.remaining()), (10, 10));
        span.next = 15;
        assert_eq!(span.remaining(), 5);
        assert!(span.selects(17));
        span.only = vec![11, 16, 19];
        assert_eq!((span.size(), span.remaining()), (3, 2));
        assert!(span.selects(16) && !span.selects(17));
        span.next = 20;
        assert!(span.is_done());
        // Selections round-trip through the checkpoint's JSON.
        let selection = Selection::Offsets {
            topic: "t".into(),
            from: BTreeMap::from([(0, 10)]),
            to: BTreeMap::from([(0, 19)]),
        };
        let json = serde_json::to_string(&selection).expect("serialises");
        assert_eq!(
            serde_json::from_str::<Selection>(&json).expect("parses"),
            selection
        );
    }
}
