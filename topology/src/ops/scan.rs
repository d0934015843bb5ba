//! Reading a topic between two times, decoded, for the operator commands (`logs`, `dlq`).
//!
//! The reader is a plain consumer that assigns every partition itself: no consumer group is
//! joined and nothing is committed (a throwaway `group.id`, `enable.auto.commit=false`), so it can
//! run beside the pipeline without disturbing it. Each partition starts at the first offset at or
//! after `since` (`offsets_for_times`) and is read up to the high watermark seen at the start, or
//! until a record is stamped past `until`; records arriving meanwhile are not waited for.
//!
//! A broker that cannot look offsets up by time (the development broker answers "end" for any
//! time) is detected by reading the partition's last record: when that one is inside the window
//! although the broker said nothing is, the partition is read from its start and filtered here.
//!
//! ```text
//! partition 0:  low=0 ... [since -> offset 812] ... 1,204 = high   read 812..1203
//! partition 1:  low=0 ... high=90, last record before since         nothing to read
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hubsync_schemas::AvroRecord;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::debug;

use super::range::Window;
use crate::codec::{AvroCodec, DecodeError};
use crate::config::{Config, Secrets};
use crate::kafka::{original, reader_config};
use crate::outcomes::Original;

/// How long one metadata, watermark or offset lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long reading may go without a record before it is given up as stalled.
const STALL_AFTER: Duration = Duration::from_secs(30);
/// How long one wait for a record lasts before positions are checked.
const POLL: Duration = Duration::from_millis(500);
/// Scans shorter than this many records get no progress bar.
const PROGRESS_FROM: u64 = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot create a Kafka consumer: {0}; check [kafka] in the configuration")]
    Client(#[source] KafkaError),
    #[error(
        "topic {topic} does not exist on the brokers; check [topics] in the configuration and kafka.brokers"
    )]
    NoSuchTopic { topic: String },
    #[error("cannot read the {what} of {topic}: {source}; are the brokers reachable?")]
    Kafka {
        what: &'static str,
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error(
        "there is no record at {topic}/{partition}/{offset}: that partition holds offsets {low} to {last}"
    )]
    NoSuchOffset {
        topic: String,
        partition: i32,
        offset: i64,
        low: i64,
        last: i64,
    },
    #[error(
        "reading {topic} stalled: no record for {}s while partitions {partitions:?} were unfinished; are the brokers reachable?",
        STALL_AFTER.as_secs()
    )]
    Stalled { topic: String, partitions: Vec<i32> },
}

/// One record read: the message as it was on the topic, and its value decoded.
#[derive(Debug)]
pub struct Scanned<T> {
    pub message: Original,
    pub record: Result<T, DecodeError>,
}

/// Whether to go on reading after a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// What a scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Partitions that had records to read in the window.
    pub partitions: usize,
    /// Records read, inside the window or not.
    pub read: u64,
    /// Partitions read from their start because the broker could not look offsets up by time.
    pub read_from_start: Vec<i32>,
}

/// Where reading one partition starts and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: i64,
    /// The high watermark at the start: one past the last offset read.
    end: i64,
}

/// Where reading a partition from a time starts ([`TopicReader::starts_since`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeStart {
    pub partition: i32,
    pub start: i64,
    /// The broker found no offset that recent, but the partition's last record is: the
    /// partition is read from its first offset.
    pub last_record_only: bool,
}

/// A consumer that reads topics by time, for one operator command.
pub struct TopicReader {
    consumer: StreamConsumer,
    /// The consumer's settings, for a throwaway consumer of one lookup.
    client: rdkafka::ClientConfig,
    codec: AvroCodec,
    /// Show a progress bar on stderr for long scans.
    progress: bool,
}

impl TopicReader {
    /// A reader with the configuration's Kafka settings and a throwaway group id that never
    /// commits.
    pub fn new(
        config: &Config,
        secrets: &Secrets,
        codec: AvroCodec,
        progress: bool,
    ) -> Result<Self, ScanError> {
        let client = reader_config(config, secrets, "ops");
        let consumer = client.create().map_err(ScanError::Client)?;
        Ok(TopicReader {
            consumer,
            client,
            codec,
            progress,
        })
    }

    pub fn codec(&self) -> &AvroCodec {
        &self.codec
    }

    /// Reads `topic`'s records stamped inside `window`, decoding each as `T`, and hands them to
    /// `visit` in each partition's order until every partition is read or `visit` says stop.
    pub async fn scan<T: AvroRecord>(
        &self,
        topic: &str,
        window: Window,
        visit: impl FnMut(Scanned<T>) -> Flow,
    ) -> Result<ScanStats, ScanError> {
        let mut stats = ScanStats::default();
        let spans = self.plan(topic, window, &mut stats).await?;
        self.read_spans(topic, window, spans, stats, visit).await
    }

    /// Reads `topic` from the positions in `next` (partition -> first offset not read yet; a
    /// partition not named is read from its start) up to each partition's end now: what an
    /// index that remembers where it stopped needs. Hands each record, decoded, to `visit`.
    pub async fn scan_from<T: AvroRecord>(
        &self,
        topic: &str,
        next: &BTreeMap<i32, i64>,
        visit: impl FnMut(Scanned<T>) -> Flow,
    ) -> Result<ScanStats, ScanError> {
        let mut spans = BTreeMap::new();
        for partition in self.partitions(topic)? {
            let (low, high) = self.watermarks(topic, partition)?;
            let start = next.get(&partition).copied().unwrap_or(low).max(low);
            if high > start {
                spans.insert(partition, Span { start, end: high });
            }
        }
        self.read_spans(topic, Window::default(), spans, ScanStats::default(), visit)
            .await
    }

    async fn read_spans<T: AvroRecord>(
        &self,
        topic: &str,
        window: Window,
        spans: BTreeMap<i32, Span>,
        mut stats: ScanStats,
        mut visit: impl FnMut(Scanned<T>) -> Flow,
    ) -> Result<ScanStats, ScanError> {
        stats.partitions = spans.len();
        if spans.is_empty() {
            return Ok(stats);
        }
        let mut assignment = TopicPartitionList::new();
        for (partition, span) in &spans {
            assignment
                .add_partition_offset(topic, *partition, Offset::Offset(span.start))
                .map_err(|source| kafka("assignment", topic, source))?;
        }
        // Whatever an earlier lookup (`read_at`) or scan left assigned and paused goes first.
        self.consumer
            .unassign()
            .map_err(|source| kafka("partitions", topic, source))?;
        self.consumer
            .assign(&assignment)
            .map_err(|source| kafka("partitions", topic, source))?;
        self.consumer
            .resume(&assignment)
            .map_err(|source| kafka("partitions", topic, source))?;
        let total: u64 = spans
            .values()
            .map(|s| u64::try_from(s.end - s.start).unwrap_or(0))
            .sum();
        let bar = self.progress_bar(topic, total);
        let mut open = spans;
        let mut last_record = Instant::now();
        while !open.is_empty() {
            let message = match tokio::time::timeout(POLL, self.consumer.recv()).await {
                Ok(Ok(message)) => message,
                Ok(Err(source)) => return Err(kafka("records", topic, source)),
                Err(_) => {
                    self.close_finished(topic, &mut open);
                    if last_record.elapsed() > STALL_AFTER && !open.is_empty() {
                        return Err(ScanError::Stalled {
                            topic: topic.to_string(),
                            partitions: open.keys().copied().collect(),
                        });
                    }
                    continue;
                }
            };
            last_record = Instant::now();
            let partition = message.partition();
            let Some(span) = open.get(&partition).copied() else {
                continue;
            };
            let offset = message.offset();
            let stamped = message.timestamp().to_millis();
            if offset >= span.end || stamped.is_some_and(|at| window.is_past(at)) {
                self.close(topic, partition, &mut open);
                continue;
            }
            stats.read += 1;
            if let Some(bar) = &bar {
                bar.inc(1);
            }
            let inside = stamped.map_or(window.since.is_none(), |at| window.contains(at));
            let original = original(&message);
            drop(message);
            if inside {
                let record = self
                    .codec
                    .decode::<T>(original.value.as_deref().unwrap_or_default())
                    .await;
                if visit(Scanned {
                    message: original,
                    record,
                }) == Flow::Stop
                {
                    break;
                }
            }
            if offset + 1 >= span.end {
                self.close(topic, partition, &mut open);
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(stats)
    }

    /// Reads the one record at `topic`/`partition`/`offset`.
    pub async fn read_at(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Original, ScanError> {
        let (low, high) = self.watermarks(topic, partition)?;
        let missing = || ScanError::NoSuchOffset {
            topic: topic.to_string(),
            partition,
            offset,
            low,
            last: high - 1,
        };
        if offset < low || offset >= high {
            return Err(missing());
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(offset))
            .map_err(|source| kafka("assignment", topic, source))?;
        self.consumer
            .assign(&assignment)
            .map_err(|source| kafka("partition", topic, source))?;
        let deadline = Instant::now() + STALL_AFTER;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(wait, self.consumer.recv()).await {
                Ok(Ok(message)) if message.partition() == partition => {
                    return match message.offset() {
                        o if o == offset => Ok(original(&message)),
                        // Compacted away: the next record came instead.
                        o if o > offset => Err(missing()),
                        _ => continue,
                    };
                }
                Ok(Ok(_)) => continue,
                Ok(Err(source)) => return Err(kafka("record", topic, source)),
                Err(_) => {
                    return Err(ScanError::Stalled {
                        topic: topic.to_string(),
                        partitions: vec![partition],
                    });
                }
            }
        }
    }

    /// Where each partition with records in the window starts and ends.
    async fn plan(
        &self,
        topic: &str,
        window: Window,
        stats: &mut ScanStats,
    ) -> Result<BTreeMap<i32, Span>, ScanError> {
        let partitions = self.partitions(topic)?;
        let mut spans = BTreeMap::new();
        for partition in &partitions {
            let (low, high) = self.watermarks(topic, *partition)?;
            if high > low {
                spans.insert(
                    *partition,
                    Span {
                        start: low,
                        end: high,
                    },
                );
            }
        }
        let Some(since) = window.since else {
            return Ok(spans);
        };
        let bounds: Vec<(i32, i64, i64)> = spans
            .iter()
            .map(|(partition, span)| (*partition, span.start, span.end))
            .collect();
        let mut planned = BTreeMap::new();
        for found in self.starts_since(topic, &bounds, since).await? {
            if found.last_record_only {
                stats.read_from_start.push(found.partition);
            }
            if let Some(span) = spans.get(&found.partition) {
                planned.insert(
                    found.partition,
                    Span {
                        start: found.start,
                        ..*span
                    },
                );
            }
        }
        Ok(planned)
    }

    /// Where reading each partition from `since` starts, for partitions given as `(partition,
    /// first offset, high watermark)`: the first offset stamped at or after `since`, looked up
    /// by time on the broker. A partition the broker finds nothing that recent in is read whole
    /// if its last record is that recent after all (`last_record_only`), else left out; one the
    /// broker cannot look up is read from its first offset.
    pub(crate) async fn starts_since(
        &self,
        topic: &str,
        partitions: &[(i32, i64, i64)],
        since: i64,
    ) -> Result<Vec<TimeStart>, ScanError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = TopicPartitionList::new();
        for (partition, _, _) in partitions {
            query
                .add_partition_offset(topic, *partition, Offset::Offset(since))
                .map_err(|source| kafka("offsets by time", topic, source))?;
        }
        let found = self
            .consumer
            .offsets_for_times(query, LOOKUP_TIMEOUT)
            .map_err(|source| kafka("offsets by time", topic, source))?;
        let mut answers = BTreeMap::new();
        for element in found.elements() {
            let answer = match (element.error(), element.offset()) {
                (Ok(()), Offset::Offset(offset)) => Some(offset),
                (Ok(()), Offset::End) => None,
                (result, offset) => {
                    debug!(
                        topic,
                        partition = element.partition(),
                        ?result,
                        ?offset,
                        "no offset for the time; reading the partition from its start"
                    );
                    Some(i64::MIN)
                }
            };
            answers.insert(element.partition(), answer);
        }
        let mut starts = Vec::new();
        for &(partition, first, end) in partitions {
            match answers.get(&partition).copied().flatten() {
                Some(offset) => {
                    let start = offset.clamp(first, end);
                    if start < end {
                        starts.push(TimeStart {
                            partition,
                            start,
                            last_record_only: false,
                        });
                    }
                }
                // "Nothing at or after since": true only if the last record is older. Read
                // by a consumer of its own: assigning one partition after another to the
                // reader's consumer left the development broker's first partition silent in
                // the scan that followed.
                None => {
                    let lookup = TopicReader {
                        consumer: self.client.create().map_err(ScanError::Client)?,
                        client: self.client.clone(),
                        codec: self.codec.clone(),
                        progress: false,
                    };
                    let last = lookup.read_at(topic, partition, end - 1).await?;
                    if last.timestamp.is_some_and(|at| at >= since) {
                        starts.push(TimeStart {
                            partition,
                            start: first,
                            last_record_only: true,
                        });
                    }
                }
            }
        }
        Ok(starts)
    }

    /// Each partition's first offset and high watermark.
    pub fn bounds(&self, topic: &str) -> Result<BTreeMap<i32, (i64, i64)>, ScanError> {
        let mut bounds = BTreeMap::new();
        for partition in self.partitions(topic)? {
            bounds.insert(partition, self.watermarks(topic, partition)?);
        }
        Ok(bounds)
    }

    /// The topic's partitions; a topic without any does not exist.
    fn partitions(&self, topic: &str) -> Result<Vec<i32>, ScanError> {
        let partitions = crate::kafka::topic_partitions(&self.consumer, topic, LOOKUP_TIMEOUT)
            .map_err(|source| kafka("metadata", topic, source))?;
        if partitions.is_empty() {
            return Err(ScanError::NoSuchTopic {
                topic: topic.to_string(),
            });
        }
        Ok(partitions)
    }

    fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), ScanError> {
        self.consumer
            .fetch_watermarks(topic, partition, LOOKUP_TIMEOUT)
            .map_err(|source| kafka("watermarks", topic, source))
    }

    /// Partitions whose position passed their end without a record to show it (transaction
    /// markers, compacted tails) are finished.
    fn close_finished(&self, topic: &str, open: &mut BTreeMap<i32, Span>) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        for element in positions.elements_for_topic(topic) {
            if let (Offset::Offset(position), Some(span)) =
                (element.offset(), open.get(&element.partition()))
                && position >= span.end
            {
                let partition = element.partition();
                self.close(topic, partition, open);
            }
        }
    }

    /// Stops reading a partition.
    fn close(&self, topic: &str, partition: i32, open: &mut BTreeMap<i32, Span>) {
        open.remove(&partition);
        let mut paused = TopicPartitionList::new();
        paused.add_partition(topic, partition);
        if let Err(error) = self.consumer.pause(&paused) {
            debug!(%error, topic, partition, "could not pause a finished partition");
        }
    }

    fn progress_bar(&self, topic: &str, total: u64) -> Option<ProgressBar> {
        if !self.progress || total < PROGRESS_FROM {
            return None;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg} [{bar:40}] {human_pos}/{human_len} records ({eta} left)",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(format!("reading {topic}"));
        Some(bar)
    }
}

fn kafka(what: &'static str, topic: &str, source: KafkaError) -> ScanError {
    ScanError::Kafka {
        what,
        topic: topic.to_string(),
        source,
    }
}

/// Notes for people about how the topic was read, on stderr (beside the progress bar).
pub fn report_scan(topic: &str, stats: &ScanStats, undecodable: u64) {
    if !stats.read_from_start.is_empty() {
        eprintln!(
            "note: the brokers cannot look {topic} up by time; partitions {:?} were read from their start",
            stats.read_from_start
        );
    }
    if undecodable > 0 {
        eprintln!(
            "warning: {undecodable} records on {topic} could not be decoded and were left out"
        );
    }
}
