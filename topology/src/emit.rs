//! Writing hubsync's own records to Kafka: commands, outcomes, dead letters and HubSpot's changes, encoded in the
//! Confluent wire format with the schema ids registered at start.
//!
//! Records are enqueued in the order the stage calls, so two changes of one record keep their
//! order on its partition; the returned [`Delivery`] completes once the broker has the record.
//! A record the producer fails to deliver (the broker unreachable past `message.timeout.ms`) is
//! sent again, with backoff, until it is delivered: nothing a stage emits is dropped, and the
//! offsets behind it stay unstored meanwhile.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hubsync_schemas::{
    AvroRecord, DeadLetter, HubSpotChange, HubSpotCommand, SchemaKind, SyncOutcome, default_subject,
};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use tracing::warn;

use crate::codec::{AvroCodec, EncodeError, Writer, WriterError};
use crate::config::Topics;
use crate::kafka::ConnectErrorHeaders;
use crate::outcomes::{self, Failure, Original, now_ms};

/// Resolves when the record is on the broker.
pub type Delivery = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Clone)]
pub struct Emitter {
    producer: FutureProducer,
    topics: Topics,
    commands: Writer,
    outcomes: Writer,
    dead_letters: Writer,
    changes: Writer,
}

impl Emitter {
    /// Registers (or finds) the output schemas under their topics' value subjects.
    pub async fn new(
        producer: FutureProducer,
        codec: &AvroCodec,
        topics: Topics,
    ) -> Result<Self, WriterError> {
        let commands = codec
            .writer(
                SchemaKind::HubSpotCommand,
                &default_subject(&topics.commands),
            )
            .await?;
        let outcomes = codec
            .writer(SchemaKind::SyncOutcome, &default_subject(&topics.outcomes))
            .await?;
        let dead_letters = codec
            .writer(SchemaKind::DeadLetter, &default_subject(&topics.dlq))
            .await?;
        let changes = codec
            .writer(
                SchemaKind::HubSpotChange,
                &default_subject(&topics.hubspot_changes),
            )
            .await?;
        Ok(Emitter {
            producer,
            topics,
            commands,
            outcomes,
            dead_letters,
            changes,
        })
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// A command, keyed by its team's HubSpot portal: every command of a portal lands in one
    /// partition, so one sink owns a portal (and its budget) at a time, and one record's commands
    /// stay in order. `headers` carry a replay's or a redrive's marks.
    pub async fn command(
        &self,
        command: &HubSpotCommand,
        portal_id: u64,
        headers: Option<OwnedHeaders>,
    ) -> Result<Delivery, EncodeError> {
        let key = portal_id.to_string();
        self.send(
            &self.commands,
            &self.topics.commands,
            Some(key.into_bytes()),
            command,
            headers,
        )
        .await
    }

    /// A command made from a replayed record, to the replay commands topic (the sink's backfill
    /// lane), keyed and encoded like [`Emitter::command`].
    pub async fn replay_command(
        &self,
        command: &HubSpotCommand,
        portal_id: u64,
        headers: Option<OwnedHeaders>,
    ) -> Result<Delivery, EncodeError> {
        let key = portal_id.to_string();
        self.send(
            &self.commands,
            &self.topics.replay_commands,
            Some(key.into_bytes()),
            command,
            headers,
        )
        .await
    }

    /// An outcome, keyed by the source event's key.
    pub async fn outcome(&self, outcome: &SyncOutcome) -> Result<Delivery, EncodeError> {
        let key = outcome.source_key.clone().map(String::into_bytes);
        self.send(&self.outcomes, &self.topics.outcomes, key, outcome, None)
            .await
    }

    /// A change made in HubSpot, for upstream: keyed by the upstream record id (the HubSpot id
    /// when the record was never upstream).
    pub async fn hubspot_change(&self, change: &HubSpotChange) -> Result<Delivery, EncodeError> {
        let key = Some(change.key().as_bytes().to_vec());
        self.send(
            &self.changes,
            &self.topics.hubspot_changes,
            key,
            change,
            None,
        )
        .await
    }

    /// Dead-letters `original` for `failure`, keyed like the original and carrying Kafka Connect's
    /// headers.
    pub async fn dead_letter(
        &self,
        original: &Original,
        event_id: Option<String>,
        team_id: Option<String>,
        failure: &Failure,
        stage: &str,
    ) -> Result<Delivery, EncodeError> {
        let letter = outcomes::dead_letter(original, event_id, team_id, failure, stage, now_ms());
        let headers = ConnectErrorHeaders {
            topic: &original.topic,
            partition: original.partition,
            offset: original.offset,
            exception_class: failure.class.as_str(),
            message: &failure.message,
            stage,
        }
        .to_headers();
        metrics::counter!("hubsync_dead_letters_total", "stage" => stage.to_string(), "code" => failure.code.clone())
            .increment(1);
        self.send_dead_letter(&letter, headers).await
    }

    async fn send_dead_letter(
        &self,
        letter: &DeadLetter,
        headers: OwnedHeaders,
    ) -> Result<Delivery, EncodeError> {
        self.send(
            &self.dead_letters,
            &self.topics.dlq,
            letter.original_key.clone(),
            letter,
            Some(headers),
        )
        .await
    }

    async fn send<T: AvroRecord>(
        &self,
        writer: &Writer,
        topic: &str,
        key: Option<Vec<u8>>,
        record: &T,
        headers: Option<OwnedHeaders>,
    ) -> Result<Delivery, EncodeError> {
        let payload = writer.encode(record)?;
        let delivered = deliver(
            &self.producer,
            Outgoing::new(topic, key, Some(payload), headers),
        )
        .await;
        Ok(Box::pin(async move {
            delivered.await;
        }))
    }
}

/// One record to send: where, and what.
#[derive(Clone)]
pub struct Outgoing {
    pub topic: String,
    /// Set: this partition; unset: the producer's partitioner picks one by the key.
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    /// None: a tombstone.
    pub payload: Option<Vec<u8>>,
    pub headers: Option<OwnedHeaders>,
}

impl Outgoing {
    pub fn new(
        topic: &str,
        key: Option<Vec<u8>>,
        payload: Option<Vec<u8>>,
        headers: Option<OwnedHeaders>,
    ) -> Self {
        Outgoing {
            topic: topic.to_string(),
            partition: None,
            key,
            payload,
            headers,
        }
    }

    fn record(&self) -> FutureRecord<'_, Vec<u8>, Vec<u8>> {
        let mut message = FutureRecord::to(&self.topic);
        if let Some(partition) = self.partition {
            message = message.partition(partition);
        }
        if let Some(payload) = &self.payload {
            message = message.payload(payload);
        }
        if let Some(key) = &self.key {
            message = message.key(key);
        }
        if let Some(headers) = &self.headers {
            message = message.headers(headers.clone());
        }
        message
    }
}

/// Resolves with the record's partition and offset once the broker has it.
pub type Delivered = Pin<Box<dyn Future<Output = (i32, i64)> + Send>>;

/// Enqueues `outgoing` now (waiting while the producer's queue is full), so records keep the
/// order of the calls; the returned future sends it again, with backoff, until the broker has
/// it, and resolves with where it landed.
pub async fn deliver(producer: &FutureProducer, outgoing: Outgoing) -> Delivered {
    let mut backoff = Duration::from_millis(50);
    let first = loop {
        match producer.send_result(outgoing.record()) {
            Ok(delivery) => break delivery,
            Err((error, _)) => {
                // The local queue is full: wait for the broker to take some.
                warn!(%error, topic = outgoing.topic, "producer queue full; waiting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    let producer = producer.clone();
    Box::pin(async move {
        let topic = &outgoing.topic;
        match first.await {
            Ok(Ok(delivery)) => return (delivery.partition, delivery.offset),
            Ok(Err((error, _))) => warn!(%error, topic, "delivery failed; sending again"),
            Err(_) => warn!(topic, "delivery report lost; sending again"),
        }
        let mut backoff = Duration::from_millis(200);
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
            match producer.send(outgoing.record(), Timeout::Never).await {
                Ok(delivery) => return (delivery.partition, delivery.offset),
                Err((error, _)) => warn!(%error, topic, "delivery failed; sending again"),
            }
        }
    })
}
