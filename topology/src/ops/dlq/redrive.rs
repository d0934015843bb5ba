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
//! `redrive_of` (the headers are [`crate::lineage`]'s). The sink answers events it already
//! processed with their remembered outcome, except a redriven event remembered as dead-lettered:
//! that one is written again.

use std::collections::BTreeMap;
use std::time::Duration;

use hubsync_schemas::DeadLetter;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::lineage;
use crate::ops::range::format_ms;
use crate::position::Position;

/// How long one record may wait for the broker.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The headers of a redriven record: the original's, less any earlier redrive's, and this one's.
fn headers_for(letter: &DeadLetter, id: &Position, now_ms: i64) -> OwnedHeaders {
    let original = letter
        .original_headers
        .iter()
        .map(|h| (h.key.as_str(), h.value.as_deref()));
    lineage::redrive_headers(original, id, &format_ms(now_ms))
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
    id: &Position,
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
    use rdkafka::message::Headers;

    use crate::lineage::{REDRIVE_AT, REDRIVE_OF};

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
        let id = Position::new("hubsync.dlq", 0, 9);
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
}
