//! Redrive: a dead letter's original record published again to its source topic, unchanged but
//! for two headers, and how the pipeline recognises it.
//!
//! ```text
//! hubsync.dlq/0/7  {original_topic: crm.contact.changes, key, value, headers}
//!   -> crm.contact.changes  key, value, headers + hubsync.redrive.of=hubsync.dlq/0/7
//!                                               + hubsync.redrive.at=2026-11-22T10:00:00.000Z
//! ```
//!
//! The pipeline carries `hubsync.redrive.of` from the redriven record onto the command the process
//! stage emits for it, and every outcome recorded for a redriven record names the dead letter in
//! `redrive_of`. The sink answers events it already processed with their remembered outcome,
//! except a redriven event remembered as dead-lettered: that one is written again.

use std::collections::BTreeMap;
use std::time::Duration;

use hubsync_schemas::{DeadLetter, SyncOutcome};
use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::dlq::DeadLetterId;
use super::range::format_ms;
use crate::outcomes::Original;

/// The dead letter a redriven record came from (`topic/partition/offset` on the dead-letter topic).
pub const REDRIVE_OF: &str = "hubsync.redrive.of";
/// When it was redriven (RFC 3339, UTC).
pub const REDRIVE_AT: &str = "hubsync.redrive.at";

/// How long one record may wait for the broker.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The dead letter a Kafka message was redriven from, if it was.
pub fn redrive_of<M: Message>(message: &M) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .filter(|h| h.key == REDRIVE_OF)
        .filter_map(|h| h.value)
        .last()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// [`redrive_of`] for a message kept whole (a command held by the sink).
pub fn redrive_of_original(original: &Original) -> Option<String> {
    original
        .headers
        .iter()
        .rev()
        .find(|(key, _)| key == REDRIVE_OF)
        .and_then(|(_, value)| value.as_deref())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// An outcome that names the dead letter its event was redriven from, when it was.
pub fn with_redrive(mut outcome: SyncOutcome, redrive_of: Option<String>) -> SyncOutcome {
    if redrive_of.is_some() {
        outcome.redrive_of = redrive_of;
    }
    outcome
}

/// The headers a record derived from a redriven one carries along (the process stage's command).
pub fn carried(redrive_of: Option<&str>) -> Option<OwnedHeaders> {
    redrive_of.map(|id| {
        OwnedHeaders::new().insert(Header {
            key: REDRIVE_OF,
            value: Some(id),
        })
    })
}

/// The headers of a redriven record: the original's, less any earlier redrive's, and this one's.
pub fn headers_for(letter: &DeadLetter, id: &DeadLetterId, now_ms: i64) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(letter.original_headers.len() + 2);
    for header in &letter.original_headers {
        if header.key == REDRIVE_OF || header.key == REDRIVE_AT {
            continue;
        }
        headers = headers.insert(Header {
            key: header.key.as_str(),
            value: header.value.as_deref(),
        });
    }
    let id = id.to_string();
    let at = format_ms(now_ms);
    headers
        .insert(Header {
            key: REDRIVE_OF,
            value: Some(id.as_str()),
        })
        .insert(Header {
            key: REDRIVE_AT,
            value: Some(at.as_str()),
        })
}

#[derive(Debug, thiserror::Error)]
#[error("cannot publish {id} to {topic}: {source}")]
pub struct PublishError {
    pub id: String,
    pub topic: String,
    #[source]
    pub source: rdkafka::error::KafkaError,
}

/// Publishes one dead letter's original record to its source topic, keyed as it was (so it lands
/// on its key's partition), and waits until the broker has it.
pub async fn publish(
    producer: &FutureProducer,
    letter: &DeadLetter,
    id: &DeadLetterId,
    now_ms: i64,
) -> Result<(), PublishError> {
    let topic = letter.original_topic.as_str();
    let mut record: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to(topic).headers(headers_for(letter, id, now_ms));
    if let Some(key) = &letter.original_key {
        record = record.key(key.as_slice());
    }
    if let Some(value) = &letter.original_value {
        record = record.payload(value.as_slice());
    }
    producer
        .send(record, DELIVERY_TIMEOUT)
        .await
        .map(|_| ())
        .map_err(|(source, _)| PublishError {
            id: id.to_string(),
            topic: topic.to_string(),
            source,
        })
}

/// How many records went to each topic.
pub fn by_topic<'a>(topics: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for topic in topics {
        *counts.entry(topic.to_string()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_schemas::{KafkaHeader, examples};

    fn header_pairs(headers: &OwnedHeaders) -> Vec<(String, String)> {
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

    #[test]
    fn a_redriven_record_keeps_its_headers_and_names_its_dead_letter_once() {
        let mut letter = examples::dead_letter();
        letter.original_headers = vec![
            KafkaHeader {
                key: "trace".into(),
                value: Some(b"abc".to_vec()),
            },
            KafkaHeader {
                key: REDRIVE_OF.into(),
                value: Some(b"hubsync.dlq/0/1".to_vec()),
            },
        ];
        let id = DeadLetterId {
            topic: "hubsync.dlq".into(),
            partition: 0,
            offset: 9,
        };
        let headers = headers_for(&letter, &id, 1_795_348_800_000);
        assert_eq!(
            header_pairs(&headers),
            vec![
                ("trace".to_string(), "abc".to_string()),
                (REDRIVE_OF.to_string(), "hubsync.dlq/0/9".to_string()),
                (
                    REDRIVE_AT.to_string(),
                    "2026-11-22T12:00:00.000Z".to_string()
                ),
            ]
        );
    }

    #[test]
    fn the_redrive_reference_is_read_from_a_kept_message_and_marks_outcomes() {
        let original = Original {
            headers: vec![
                ("trace".into(), Some(b"abc".to_vec())),
                (REDRIVE_OF.into(), Some(b"hubsync.dlq/2/40".to_vec())),
            ],
            ..Original::default()
        };
        let id = redrive_of_original(&original);
        assert_eq!(id.as_deref(), Some("hubsync.dlq/2/40"));
        assert_eq!(redrive_of_original(&Original::default()), None);
        let outcome = with_redrive(examples::sync_outcome(), id);
        assert_eq!(outcome.redrive_of.as_deref(), Some("hubsync.dlq/2/40"));
        let plain = with_redrive(examples::sync_outcome(), None);
        assert_eq!(plain.redrive_of, examples::sync_outcome().redrive_of);
    }

    #[test]
    fn only_the_reference_is_carried_onto_derived_records() {
        assert!(carried(None).is_none());
        let headers = carried(Some("hubsync.dlq/0/3")).expect("headers");
        assert_eq!(
            header_pairs(&headers),
            vec![(REDRIVE_OF.to_string(), "hubsync.dlq/0/3".to_string())]
        );
    }
}
