//! Copying a run's records to the replay topic, chunk by chunk.
//!
//! A plain consumer (no group joined, nothing committed) reads each span from its `next`
//! offset; every selected record inside the window is published to the replay topic with its
//! key, value and headers and the run's two marks ([`crate::lineage::replay_copy_headers`]). After a chunk
//! (2,000 records or a second) the copier waits until the broker has every copy of it, then
//! moves the spans' `next` past it and saves the checkpoint. Stopped (Ctrl-C, `--max-records`)
//! it finishes the chunk first, so nothing is copied twice when the run is resumed; killed, at
//! most the chunk in flight is, and [`already_copied`] finds those copies on the replay topic so
//! the resumed run leaves them out.
//!
//! ```text
//! span crm.contact.changes/0 0..1204 next 812   read 812.. -> hubsync.replay (+ run, of)
//!   chunk of 2,000 delivered -> next 1204, checkpoint saved
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use tokio::sync::watch;
use tracing::debug;

use super::checkpoint::{self, Checkpoint};
use super::plan::{self, Span};
use super::{ReplayError, kafka};
use crate::config::{Config, Secrets};
use crate::kafka::{original, reader_config};
use crate::lineage::{Lineage, ReplayMark, replay_copy_headers};
use crate::ops::range::Window;
use crate::ops::scan::TopicReader;
use crate::outcomes::{Original, now_ms};
use crate::position::Position;

/// Records per chunk: the checkpoint moves at least this often.
const CHUNK_RECORDS: u64 = 2_000;
/// The longest a chunk stays open.
const CHUNK_TIME: Duration = Duration::from_secs(1);
/// How long one wait for a record lasts before positions are checked.
const POLL: Duration = Duration::from_millis(500);
/// How long reading may go without a record before it is given up as stalled.
const STALL_AFTER: Duration = Duration::from_secs(30);
/// Runs shorter than this many records get no progress bar.
const PROGRESS_FROM: u64 = 2_000;
/// How errors name what was being read when it spans several topics.
const SELECTED: &str = "the selected topics";

/// How one invocation copies.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Count what would be copied; publish nothing and save no checkpoint.
    pub dry_run: bool,
    /// Stop once this many records are copied in this invocation.
    pub max_records: Option<u64>,
    /// Show a progress bar with the time left on stderr.
    pub progress: bool,
}

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Records of the spans read.
    pub read: u64,
    /// Records copied (delivered to the replay topic; counted only, in a dry run).
    pub copied: u64,
    /// Distinct record keys among them.
    pub distinct_keys: u64,
    /// Records read whose timestamps are outside the selection's window.
    pub outside_window: u64,
    /// Records found already copied by a killed invocation, left out.
    pub already_copied: u64,
    /// Stopped by Ctrl-C or SIGTERM before the run was done.
    pub interrupted: bool,
    /// Stopped at `--max-records` before the run was done.
    pub limited: bool,
}

/// A consumer for reading spans: the configuration's Kafka settings, a throwaway group id, and
/// nothing ever committed.
pub fn consumer(config: &Config, secrets: &Secrets) -> Result<StreamConsumer, ReplayError> {
    let client = reader_config(config, secrets, "replay");
    client.create().map_err(ReplayError::Client)
}

/// Copies what is left of the checkpoint's spans, saving the checkpoint after each delivered
/// chunk (unless `save_to` is `None` or the run is a dry run). `already` holds positions a
/// killed invocation copied past the checkpoint; `stop` turning true ends the copy after the
/// chunk in hand.
pub async fn copy(
    consumer: &StreamConsumer,
    producer: &FutureProducer,
    checkpoint: &mut Checkpoint,
    save_to: Option<&Path>,
    already: &HashSet<Position>,
    options: &CopyOptions,
    mut stop: watch::Receiver<bool>,
) -> Result<Tally, ReplayError> {
    let window = checkpoint.selection.window();
    let mut copier = Copier {
        producer,
        checkpoint,
        save_to: if options.dry_run { None } else { save_to },
        options,
        window,
        already,
        chunk: Chunk::default(),
        keys: HashSet::new(),
        tally: Tally::default(),
    };
    copier.begin()?;
    let bar = progress_bar(options.progress, copier.checkpoint.remaining());
    let mut reader = SpanReader::start(consumer, &copier.checkpoint.spans)?;
    reader.until = window.until;
    loop {
        if copier.at_limit() {
            copier.tally.limited = true;
            break;
        }
        let next = tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    copier.tally.interrupted = true;
                    break;
                }
                continue;
            }
            next = reader.next() => next?,
        };
        let Some(read) = next else { break };
        let counted = copier.take(read).await?;
        if let Some(bar) = &bar
            && counted
        {
            bar.inc(1);
        }
        if copier.chunk.is_full() {
            for index in reader.finished() {
                copier.finish_span(index);
            }
            copier.commit().await?;
        }
    }
    for index in reader.finished() {
        copier.finish_span(index);
    }
    copier.commit().await?;
    copier.end()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    copier.tally.distinct_keys = copier.keys.len() as u64;
    Ok(copier.tally)
}

/// Positions of records run `run` copied to `replay_topic` at or after `since_ms`: what a
/// killed invocation delivered past its checkpoint.
pub async fn already_copied(
    consumer: &StreamConsumer,
    reader: &TopicReader,
    replay_topic: &str,
    run: &str,
    since_ms: i64,
) -> Result<HashSet<Position>, ReplayError> {
    let spans = plan::by_time(consumer, reader, replay_topic, since_ms).await?;
    let mut found = HashSet::new();
    let mut reader = SpanReader::start(consumer, &spans)?;
    while let Some(read) = reader.next().await? {
        if let Some(mark) = read.mark
            && mark.run == run
        {
            found.insert(mark.of);
        }
    }
    Ok(found)
}

/// One record read from a span.
struct Read {
    span: usize,
    message: Original,
    /// Present when the record itself is a marked copy (read from the replay topic).
    mark: Option<ReplayMark>,
}

/// The copies of the current chunk, not yet delivered.
#[derive(Default)]
struct Chunk {
    deliveries: Vec<(Position, DeliveryFuture)>,
    /// Each span's `next` once the chunk is delivered.
    next: BTreeMap<usize, i64>,
    records: u64,
    copied: u64,
    outside_window: u64,
    already_copied: u64,
    opened: Option<Instant>,
}

impl Chunk {
    fn is_full(&self) -> bool {
        self.records >= CHUNK_RECORDS || self.opened.is_some_and(|at| at.elapsed() >= CHUNK_TIME)
    }
}

struct Copier<'a> {
    producer: &'a FutureProducer,
    checkpoint: &'a mut Checkpoint,
    save_to: Option<&'a Path>,
    options: &'a CopyOptions,
    window: Window,
    already: &'a HashSet<Position>,
    chunk: Chunk,
    keys: HashSet<Vec<u8>>,
    tally: Tally,
}

impl Copier<'_> {
    /// Marks the run as copying, so a kill is recognised when it is resumed.
    fn begin(&mut self) -> Result<(), ReplayError> {
        self.checkpoint.running = true;
        self.save()
    }

    /// Records the invocation's clean end.
    fn end(&mut self) -> Result<(), ReplayError> {
        self.checkpoint.running = false;
        self.checkpoint.done = self.checkpoint.spans.iter().all(Span::is_done);
        self.save()
    }

    fn save(&mut self) -> Result<(), ReplayError> {
        self.checkpoint.updated_ms = now_ms();
        if let Some(path) = self.save_to {
            checkpoint::save(self.checkpoint, path)?;
        }
        Ok(())
    }

    fn at_limit(&self) -> bool {
        self.options
            .max_records
            .is_some_and(|max| self.tally.copied + self.chunk.copied >= max)
    }

    /// Handles one record; returns whether it counts towards the run's size.
    async fn take(&mut self, read: Read) -> Result<bool, ReplayError> {
        let Read { span, message, .. } = read;
        let (selected, of) = {
            let span = &self.checkpoint.spans[span];
            (
                span.selects(message.offset),
                Position::new(span.topic.clone(), span.partition, message.offset),
            )
        };
        self.chunk.opened.get_or_insert_with(Instant::now);
        self.chunk.records += 1;
        self.chunk.next.insert(span, message.offset + 1);
        if !selected {
            return Ok(false);
        }
        let inside = message
            .timestamp
            .map_or(self.window.since.is_none(), |at| self.window.contains(at));
        if !inside {
            self.chunk.outside_window += 1;
        } else if self.already.contains(&of) {
            self.chunk.already_copied += 1;
        } else {
            self.keys.insert(message.key.clone().unwrap_or_default());
            if !self.options.dry_run {
                let delivery = self.publish(&message, &of).await?;
                self.chunk.deliveries.push((of, delivery));
            }
            self.chunk.copied += 1;
        }
        Ok(true)
    }

    /// Enqueues the copy of one record; waits while the producer's queue is full.
    async fn publish(
        &self,
        message: &Original,
        of: &Position,
    ) -> Result<DeliveryFuture, ReplayError> {
        let topic = self.checkpoint.replay_topic.as_str();
        let headers = replay_copy_headers(
            message
                .headers
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_deref())),
            &self.checkpoint.run,
            of,
        );
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(key) = &message.key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = &message.value {
            record = record.payload(value.as_slice());
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    // The local queue drains as the broker takes records.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err((source, _)) => {
                    return Err(ReplayError::Publish {
                        of: of.to_string(),
                        topic: topic.to_string(),
                        source: Box::new(source),
                    });
                }
            }
        }
    }

    /// Waits for the chunk's copies, then moves the spans past it and saves the checkpoint.
    async fn commit(&mut self) -> Result<(), ReplayError> {
        let chunk = std::mem::take(&mut self.chunk);
        let topic = self.checkpoint.replay_topic.clone();
        for (of, delivery) in chunk.deliveries {
            let failed = match delivery.await {
                Ok(Ok(_)) => continue,
                Ok(Err((source, _))) => source,
                Err(_) => KafkaError::Canceled,
            };
            return Err(ReplayError::Publish {
                of: of.to_string(),
                topic,
                source: Box::new(failed),
            });
        }
        for (index, next) in chunk.next {
            let span = &mut self.checkpoint.spans[index];
            span.next = span.next.max(next);
        }
        self.tally.read += chunk.records;
        self.tally.copied += chunk.copied;
        self.tally.outside_window += chunk.outside_window;
        self.tally.already_copied += chunk.already_copied;
        self.checkpoint.copied += chunk.copied;
        self.checkpoint.outside_window += chunk.outside_window;
        self.checkpoint.already_copied += chunk.already_copied;
        if chunk.records > 0 {
            self.save()?;
        }
        Ok(())
    }

    /// A span read to its end, or past the window's end: nothing more of it is copied.
    fn finish_span(&mut self, index: usize) {
        let end = self.checkpoint.spans[index].end;
        self.chunk.next.insert(index, end);
    }
}

/// Reads spans from their `next` offsets, each up to its end.
struct SpanReader<'a> {
    consumer: &'a StreamConsumer,
    /// Open spans by topic and partition: their index and end.
    open: BTreeMap<(String, i32), (usize, i64)>,
    /// Spans found finished without their last record (compacted tails, the window's end).
    finished: Vec<usize>,
    until: Option<i64>,
    last_record: Instant,
}

impl<'a> SpanReader<'a> {
    fn start(consumer: &'a StreamConsumer, spans: &[Span]) -> Result<Self, ReplayError> {
        let mut open = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for (index, span) in spans.iter().enumerate().filter(|(_, s)| !s.is_done()) {
            assignment
                .add_partition_offset(&span.topic, span.partition, Offset::Offset(span.next))
                .map_err(|source| kafka("assignment", &span.topic, source))?;
            open.insert((span.topic.clone(), span.partition), (index, span.end));
        }
        consumer
            .assign(&assignment)
            .map_err(|source| kafka("partitions", SELECTED, source))?;
        Ok(SpanReader {
            consumer,
            open,
            finished: Vec::new(),
            until: None,
            last_record: Instant::now(),
        })
    }

    /// Spans closed before their last record was read.
    fn finished(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.finished)
    }

    /// The next record of an open span; `None` once every span is read.
    async fn next(&mut self) -> Result<Option<Read>, ReplayError> {
        while !self.open.is_empty() {
            let message = match tokio::time::timeout(POLL, self.consumer.recv()).await {
                Ok(Ok(message)) => message,
                Ok(Err(source)) => return Err(kafka("records", SELECTED, source)),
                Err(_) => {
                    self.close_finished();
                    self.check_stall()?;
                    continue;
                }
            };
            self.last_record = Instant::now();
            let key = (message.topic().to_string(), message.partition());
            let Some((index, end)) = self.open.get(&key).copied() else {
                continue;
            };
            let offset = message.offset();
            if offset >= end {
                self.close(&key, index, true);
                continue;
            }
            let stamped = message.timestamp().to_millis();
            if stamped
                .zip(self.until)
                .is_some_and(|(at, until)| at > until)
            {
                self.close(&key, index, true);
                continue;
            }
            let mark = Lineage::of_message(&message).replay;
            let read = Read {
                span: index,
                message: original(&message),
                mark,
            };
            if offset + 1 >= end {
                self.close(&key, index, false);
            }
            return Ok(Some(read));
        }
        Ok(None)
    }

    /// Stops reading a partition; `early` when records of its span were left unread.
    fn close(&mut self, key: &(String, i32), index: usize, early: bool) {
        self.open.remove(key);
        if early {
            self.finished.push(index);
        }
        let mut paused = TopicPartitionList::new();
        paused.add_partition(&key.0, key.1);
        if let Err(error) = self.consumer.pause(&paused) {
            debug!(%error, topic = key.0, partition = key.1, "could not pause a finished partition");
        }
    }

    /// Partitions whose position passed their end without a record to show it.
    fn close_finished(&mut self) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let mut done = Vec::new();
        for element in positions.elements() {
            let key = (element.topic().to_string(), element.partition());
            if let (Offset::Offset(position), Some((index, end))) =
                (element.offset(), self.open.get(&key).copied())
                && position >= end
            {
                done.push((key, index));
            }
        }
        for (key, index) in done {
            self.close(&key, index, true);
        }
    }

    fn check_stall(&self) -> Result<(), ReplayError> {
        if self.last_record.elapsed() <= STALL_AFTER || self.open.is_empty() {
            return Ok(());
        }
        let topics: Vec<&str> = self.open.keys().map(|(t, _)| t.as_str()).collect();
        Err(ReplayError::Stalled {
            topic: topics.join(", "),
            partitions: self.open.keys().map(|(_, p)| *p).collect(),
            seconds: STALL_AFTER.as_secs(),
        })
    }
}

fn progress_bar(wanted: bool, total: u64) -> Option<ProgressBar> {
    if !wanted || total < PROGRESS_FROM {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "copying [{bar:40}] {human_pos}/{human_len} records, {per_sec}, {eta} left",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}
