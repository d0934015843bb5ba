//! The webhook receiver: `POST <webhook_path>` with HubSpot's v3 event array.
//!
//! ```text
//! more than webhook_max_in_flight requests at once               -> 503 at once
//! timestamp older or newer than 300 s, bad or missing signature  -> 401
//! Content-Length or body over webhook_max_body                    -> 413 (not read further)
//! not a JSON array of events with numeric portalId                -> 400
//! every event of portals no active team names                     -> 403 (counted, nothing written)
//! Kafka refuses or does not confirm within webhook_produce_timeout -> 503 (HubSpot retries)
//! otherwise: each event of a served portal on [topics] hubspot_webhooks, confirmed, then 200
//! ```
//!
//! Each accepted event becomes one Kafka record (see `publish`): the event verbatim as the value,
//! the key `portalId:objectId` (one record's changes stay on one partition, in order), and
//! headers naming the team, the portal and when the signed request was received. A request
//! mixing portals is split by team; events of portals no team serves are dropped from it and
//! counted.
//!
//! Duplicates on the topic are expected and harmless: HubSpot retries a request it got no 2xx
//! for (a 503 here, a timeout, a crash after the write and before the answer) and sometimes
//! sends an event twice anyway, and `eventId` is not unique. Whoever reads the topic dedupes on
//! (subscriptionType, objectId, occurredAt, propertyName, propertyValue), as HubSpot advises.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rdkafka::producer::FutureProducer;
use serde_json::json;
use tracing::{debug, warn};

use super::events::{self, Event};
use super::publish::{self, Outgoing};
use super::{Portals, signature};
use crate::config::Secret;

pub(super) struct Receiver {
    pub secret: Secret,
    pub path: String,
    pub public_url: Option<String>,
    pub max_body: usize,
    pub produce_timeout: Duration,
    /// One permit per request being handled (`webhook_max_in_flight`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    pub producer: FutureProducer,
    pub topic: String,
    pub portals: Portals,
}

impl Receiver {
    pub(super) fn router(self) -> Router {
        let path = self.path.clone();
        Router::new()
            .route(&path, post(receive))
            .with_state(Arc::new(self))
    }

    /// The URL HubSpot signed: the configured public one, or the one this request names, in
    /// the form HubSpot signs it.
    fn signed_uri(&self, uri: &Uri, headers: &HeaderMap) -> String {
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let called = match &self.public_url {
            Some(public) => format!("{public}{query}"),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .or_else(|| uri.authority().map(|a| a.as_str()))
                    .unwrap_or_default();
                let path = uri.path_and_query().map_or("/", |p| p.as_str());
                format!("http://{host}{path}")
            }
        };
        signature::signed_form(&called)
    }

    /// Puts every event on the topic and waits for Kafka to confirm each, within the timeout.
    async fn produce(
        &self,
        accepted: &[(String, &Event<'_>)],
        received_at: i64,
    ) -> Result<(), String> {
        let records = accepted.iter().map(|(team, event)| Outgoing {
            key: event.key.as_str(),
            payload: event.raw.get().as_bytes(),
            headers: publish::headers(team, event.portal_id, received_at),
        });
        // A full producer queue is not waited on: HubSpot retries sooner than it drains.
        publish::produce_confirmed(
            &self.producer,
            &self.topic,
            records,
            Duration::ZERO,
            self.produce_timeout,
        )
        .await
    }
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    metrics::counter!("hubsync_webhook_requests_total", "status" => status.as_u16().to_string())
        .increment(1);
    (status, Json(body)).into_response()
}

fn refuse(status: StatusCode, message: impl std::fmt::Display) -> Response {
    let message = message.to_string();
    debug!(status = status.as_u16(), message, "webhook request refused");
    answer(status, json!({ "status": "error", "message": message }))
}

fn count_events(result: &'static str, n: usize) {
    metrics::counter!("hubsync_webhook_events_total", "result" => result).increment(n as u64);
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(_permit) = receiver.in_flight.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests in flight (stages.inbound.webhook_max_in_flight); HubSpot retries",
        );
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp = header(signature::TIMESTAMP_HEADER);
    if let Err(refused) = signature::check_timestamp(timestamp, now_ms()) {
        return refuse(StatusCode::UNAUTHORIZED, refused);
    }
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than stages.inbound.webhook_max_body ({} bytes)",
                receiver.max_body
            ),
        )
    };
    let declared = header(header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > receiver.max_body as u64) {
        return too_large();
    }
    let body = match axum::body::to_bytes(body, receiver.max_body).await {
        Ok(body) => body,
        Err(error) => {
            let inner = error.into_inner();
            if inner
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large();
            }
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {inner}"),
            );
        }
    };
    let signed_uri = receiver.signed_uri(&uri, &headers);
    if let Err(refused) = signature::verify(
        receiver.secret.expose().as_bytes(),
        method.as_str(),
        &signed_uri,
        &body,
        timestamp.unwrap_or_default(),
        header(signature::SIGNATURE_HEADER),
    ) {
        warn!(uri = signed_uri, %refused, "webhook request refused");
        return refuse(StatusCode::UNAUTHORIZED, refused);
    }
    let received_at = now_ms();
    let events = match events::parse(&body) {
        Ok(events) => events,
        Err(malformed) => return refuse(StatusCode::BAD_REQUEST, malformed),
    };
    let mut accepted = Vec::with_capacity(events.len());
    let mut refused_portals = BTreeSet::new();
    for event in &events {
        match receiver.portals.team(event.portal_id) {
            Some(team) => accepted.push((team, event)),
            None => {
                refused_portals.insert(event.portal_id);
            }
        }
    }
    let refused = events.len() - accepted.len();
    if refused > 0 {
        count_events("unknown_portal", refused);
        warn!(
            events = refused,
            portals = ?refused_portals,
            "webhook events of portals no active team names: refused"
        );
    }
    if accepted.is_empty() && refused > 0 {
        return answer(
            StatusCode::FORBIDDEN,
            json!({
                "status": "error",
                "message": "no event is of a portal this service serves",
                "refused_portals": refused_portals,
            }),
        );
    }
    if let Err(why) = receiver.produce(&accepted, received_at).await {
        count_events("unavailable", accepted.len());
        warn!(events = accepted.len(), %why, "webhook events not confirmed by kafka: answered 503, HubSpot retries");
        return refuse(StatusCode::SERVICE_UNAVAILABLE, why);
    }
    count_events("accepted", accepted.len());
    answer(
        StatusCode::OK,
        json!({ "accepted": accepted.len(), "refused": refused, "refused_portals": refused_portals }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(public_url: Option<&str>) -> Receiver {
        Receiver {
            secret: Secret::new("s"),
            path: "/hubspot/webhooks".into(),
            public_url: public_url.map(str::to_string),
            max_body: 1024,
            produce_timeout: Duration::from_secs(1),
            in_flight: Arc::new(tokio::sync::Semaphore::new(1)),
            producer: rdkafka::ClientConfig::new()
                .set("bootstrap.servers", "127.0.0.1:1")
                .create()
                .unwrap(),
            topic: "t".into(),
            portals: Portals::default(),
        }
    }

    #[test]
    fn the_signed_url_is_the_public_one_when_configured() {
        let uri: Uri = "/hubspot/webhooks?app=1&to=%2Fa%20b".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "10.0.0.5:9465".parse().unwrap());
        assert_eq!(
            receiver(None).signed_uri(&uri, &headers),
            "http://10.0.0.5:9465/hubspot/webhooks?app=1&to=/a%20b"
        );
        assert_eq!(
            receiver(Some("https://hooks.example.com/hubspot/webhooks")).signed_uri(&uri, &headers),
            "https://hooks.example.com/hubspot/webhooks?app=1&to=/a%20b"
        );
    }
}
