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
        let mut backoff = Duration::from_millis(50);
        // Enqueue now, in call order; only waiting for the broker happens later.
        let first = loop {
            match self
                .producer
                .send_result(message(topic, &key, &payload, &headers))
            {
                Ok(delivery) => break delivery,
                Err((error, _)) => {
                    // The local queue is full: wait for the broker to take some.
                    warn!(%error, topic, "producer queue full; waiting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        let producer = self.producer.clone();
        let topic = topic.to_string();
        Ok(Box::pin(async move {
            match first.await {
                Ok(Ok(_)) => return,
                Ok(Err((error, _))) => warn!(%error, topic, "delivery failed; sending again"),
                Err(_) => warn!(topic, "delivery report lost; sending again"),
            }
            let mut backoff = Duration::from_millis(200);
            loop {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                match producer
                    .send(message(&topic, &key, &payload, &headers), Timeout::Never)
                    .await
                {
                    Ok(_) => return,
                    Err((error, _)) => warn!(%error, topic, "delivery failed; sending again"),
                }
            }
        }))
    }
}

fn message<'a>(
    topic: &'a str,
    key: &'a Option<Vec<u8>>,
    payload: &'a Vec<u8>,
    headers: &Option<OwnedHeaders>,
) -> FutureRecord<'a, Vec<u8>, Vec<u8>> {
    let mut message = FutureRecord::to(topic).payload(payload);
    if let Some(key) = key {
        message = message.key(key);
    }
    if let Some(headers) = headers {
        message = message.headers(headers.clone());
    }
    message
}
