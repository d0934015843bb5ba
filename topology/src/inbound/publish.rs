//! Putting events on `[topics] hubspot_webhooks`, for both ways in: the webhook receiver and
//! the poller write through here, so the records on the topic look alike whichever path found
//! the change, and one translator reads both.
//!
//! Each record: the event's JSON as the value, the key `portalId:objectId` (one record's
//! changes stay on one partition, in order), and headers naming the team ([`TEAM_HEADER`]), the
//! portal ([`PORTAL_HEADER`]) and when hubsync received or read the event ([`RECEIVED_AT_HEADER`],
//! epoch milliseconds).

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Header naming the team an event was routed to.
pub const TEAM_HEADER: &str = "hubsync.team";
/// Header naming the event's HubSpot portal.
pub const PORTAL_HEADER: &str = "hubsync.portal";
/// Header with the time the event was received (a signed webhook request) or read (a poll),
/// in epoch milliseconds.
pub const RECEIVED_AT_HEADER: &str = "hubsync.received_at";

/// The headers of an event of `team`'s `portal`, received or read at `received_at_ms`.
pub(super) fn headers(team: &str, portal: u64, received_at_ms: i64) -> OwnedHeaders {
    let portal = portal.to_string();
    let received_at = received_at_ms.to_string();
    OwnedHeaders::new()
        .insert(Header {
            key: TEAM_HEADER,
            value: Some(team.as_bytes()),
        })
        .insert(Header {
            key: PORTAL_HEADER,
            value: Some(portal.as_bytes()),
        })
        .insert(Header {
            key: RECEIVED_AT_HEADER,
            value: Some(received_at.as_bytes()),
        })
}

/// One record to put on the topic.
pub(super) struct Outgoing<'a> {
    pub key: &'a str,
    pub payload: &'a [u8],
    pub headers: OwnedHeaders,
}

/// Sends every record and waits until Kafka confirmed each, within `confirm_within`; a record
/// finding the producer's queue full waits at most `queue_timeout` for room. Any refusal or a
/// confirmation that did not come in time fails the whole: the caller sends everything again
/// (duplicates on the topic are expected and deduped by the translator).
pub(super) async fn produce_confirmed<'a>(
    producer: &FutureProducer,
    topic: &str,
    records: impl IntoIterator<Item = Outgoing<'a>>,
    queue_timeout: Duration,
    confirm_within: Duration,
) -> Result<(), String> {
    let sends = records.into_iter().map(|record| {
        let record = FutureRecord::to(topic)
            .key(record.key)
            .payload(record.payload)
            .headers(record.headers);
        producer.send(record, queue_timeout)
    });
    let delivered = tokio::time::timeout(confirm_within, futures::future::join_all(sends))
        .await
        .map_err(|_| {
            format!(
                "kafka did not confirm the events within {}",
                humantime::format_duration(confirm_within)
            )
        })?;
    match delivered.into_iter().find_map(Result::err) {
        Some((error, _)) => Err(format!("kafka refused an event: {error}")),
        None => Ok(()),
    }
}
