//! A webhook request's body, read just enough to route each event: its portal and the record it
//! is about. The events themselves travel on as HubSpot sent them.
//!
//! ```text
//! [{"portalId":62515,"objectId":123,"subscriptionType":"contact.propertyChange",...},
//!  {"portalId":99,"objectId":7,...}]
//!   -> team "acme" (portal 62515): one record, key "62515:123", value the first event verbatim
//!   -> portal 99 is no team's: refused and counted
//! ```

use serde::Deserialize;
use serde_json::value::RawValue;

/// One event of a request, with the fields routing needs.
#[derive(Debug)]
pub struct Event<'a> {
    pub portal_id: u64,
    /// `portalId:objectId`, so one record's changes land on one partition, in order. Events
    /// without an `objectId` take the record they name otherwise: an association's
    /// `fromObjectId`, a merge's `primaryObjectId`.
    pub key: String,
    /// The event exactly as HubSpot sent it.
    pub raw: &'a RawValue,
}

/// Why a body is not a v3 event array (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the body is not a JSON array of events: {0}")]
    NotAnArray(String),
    #[error("event {index} is not an object with a numeric portalId: {detail}")]
    Event { index: usize, detail: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Routing {
    portal_id: u64,
    object_id: Option<u64>,
    from_object_id: Option<u64>,
    primary_object_id: Option<u64>,
    event_id: Option<u64>,
}

/// The events of a request body.
pub fn parse(body: &[u8]) -> Result<Vec<Event<'_>>, Malformed> {
    let raws: Vec<&RawValue> =
        serde_json::from_slice(body).map_err(|e| Malformed::NotAnArray(e.to_string()))?;
    raws.into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let routing: Routing =
                serde_json::from_str(raw.get()).map_err(|e| Malformed::Event {
                    index,
                    detail: e.to_string(),
                })?;
            let record = routing
                .object_id
                .or(routing.from_object_id)
                .or(routing.primary_object_id)
                .map_or_else(
                    || format!("event-{}", routing.event_id.unwrap_or_default()),
                    |id| id.to_string(),
                );
            Ok(Event {
                portal_id: routing.portal_id,
                key: format!("{}:{record}", routing.portal_id),
                raw,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_kept_verbatim_and_keyed_by_portal_and_record() {
        let body = br#"[ {"eventId":1,"portalId":62515,"objectId":123,"propertyName":"firstname","propertyValue":"Ada" },
            {"eventId":2,"portalId":62515,"subscriptionType":"contact.associationChange","fromObjectId":123,"toObjectId":9},
            {"eventId":3,"portalId":7,"subscriptionType":"contact.merge","primaryObjectId":5,"mergedObjectIds":[6]},
            {"eventId":4,"portalId":7}]"#;
        let events = parse(body).unwrap();
        let keys: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["62515:123", "62515:123", "7:5", "7:event-4"]);
        assert_eq!(
            events[0].raw.get(),
            r#"{"eventId":1,"portalId":62515,"objectId":123,"propertyName":"firstname","propertyValue":"Ada" }"#
        );
        assert_eq!(events[2].portal_id, 7);
    }

    #[test]
    fn bodies_that_are_not_event_arrays_are_malformed() {
        assert!(matches!(parse(b"{}"), Err(Malformed::NotAnArray(_))));
        assert!(matches!(
            parse(b"[{\"portalId\":1}"),
            Err(Malformed::NotAnArray(_))
        ));
        assert!(matches!(parse(b""), Err(Malformed::NotAnArray(_))));
        assert_eq!(
            parse(br#"[{"portalId":1},{"objectId":2}]"#).unwrap_err(),
            Malformed::Event {
                index: 1,
                detail: "missing field `portalId` at line 1 column 14".into()
            }
        );
        assert!(matches!(
            parse(br#"[{"portalId":"62515"}]"#),
            Err(Malformed::Event { index: 0, .. })
        ));
        assert!(matches!(
            parse(b"[1]"),
            Err(Malformed::Event { index: 0, .. })
        ));
        assert!(parse(b"[]").unwrap().is_empty());
    }
}
