//! What polling found, shaped as HubSpot's v3 webhook events, so that one translator reads both
//! paths alike and a change seen both ways dedupes on (subscriptionType, objectId, occurredAt,
//! propertyName, propertyValue). Pure.
//!
//! ```text
//! contact 101 of portal 62515, firstname history [Ada @1767225600000 CRM_UI userId:7, Ad @...]
//! since 1767225500000
//! -> {"eventId":<hash>,"portalId":62515,"objectId":101,"occurredAt":1767225600000,
//!     "subscriptionType":"contact.propertyChange","propertyName":"firstname",
//!     "propertyValue":"Ada","changeSource":"CRM_UI","sourceId":"userId:7","attemptNumber":0,
//!     "hubsync_via":"poll"}
//! ```
//!
//! `eventId` is a hash of what identifies the change (HubSpot's own ids are not unique either),
//! kept below 2^53 so that every JSON reader holds it exactly. `hubsync_via: "poll"` tells the
//! paths apart in logs; HubSpot's events do not carry it.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::hubspot::{ObjectType, PropertyVersion, RecordHistory};

/// Marks a synthetic event in logs: `"hubsync_via": "poll"`.
pub const VIA_FIELD: &str = "hubsync_via";
pub const VIA_POLL: &str = "poll";

/// What to make of a record's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Every version set after `since_ms` and at or before `upper_ms`, and the record's
    /// creation when it falls in that window (the live poll).
    Changes { since_ms: i64, upper_ms: i64 },
    /// The newest version at or before `upper_ms` of each watched property that has one (the
    /// refresh: upstream converges on HubSpot's current values).
    Current { upper_ms: i64 },
}

/// A synthetic event and what the poller needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    pub object_id: u64,
    pub occurred_at: i64,
    pub kind: Kind,
    pub value: Value,
}

/// The kinds of synthetic events, as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    PropertyChange,
    Creation,
    Deletion,
    MembershipAdded,
    MembershipRemoved,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::PropertyChange => "property_change",
            Kind::Creation => "creation",
            Kind::Deletion => "deletion",
            Kind::MembershipAdded => "membership_added",
            Kind::MembershipRemoved => "membership_removed",
        }
    }
}

/// The events a record read with history gives, oldest first. `watched` are the properties
/// the team maps from HubSpot. The creation takes its source from the history of
/// `createdate`, when it was read.
pub fn record_events(
    portal: u64,
    object: ObjectType,
    object_id: u64,
    read: &RecordHistory,
    watched: &[String],
    emit: Emit,
) -> Vec<Synthetic> {
    let mut events = Vec::new();
    let upper_ms = match emit {
        Emit::Changes { upper_ms, .. } | Emit::Current { upper_ms } => upper_ms,
    };
    if let Emit::Changes { since_ms, .. } = emit
        && let Some(created) = read.created_ms
        && created > since_ms
        && created <= upper_ms
    {
        let source = read
            .history
            .get("createdate")
            .and_then(|versions| versions.last());
        events.push(creation(portal, object, object_id, created, source));
    }
    for property in watched {
        let Some(versions) = read.history.get(property) else {
            continue;
        };
        let in_window = versions.iter().filter(|v| v.timestamp_ms <= upper_ms);
        match emit {
            Emit::Changes { since_ms, .. } => events.extend(
                in_window
                    .filter(|v| v.timestamp_ms > since_ms)
                    .map(|v| property_change(portal, object, object_id, property, v)),
            ),
            Emit::Current { .. } => events.extend(
                in_window
                    .max_by_key(|v| v.timestamp_ms)
                    .map(|v| property_change(portal, object, object_id, property, v)),
            ),
        }
    }
    // Oldest first, so that the topic holds one record's changes in the order they were made;
    // a creation before its first values.
    events.sort_by_key(|e| (e.occurred_at, e.kind != Kind::Creation));
    events
}

/// `<object>.propertyChange` for one version of one property.
pub fn property_change(
    portal: u64,
    object: ObjectType,
    object_id: u64,
    property: &str,
    version: &PropertyVersion,
) -> Synthetic {
    let subscription = format!("{}.propertyChange", object.singular());
    let mut value = json!({
        "eventId": event_id(&[
            &subscription,
            &portal.to_string(),
            &object_id.to_string(),
            &version.timestamp_ms.to_string(),
            property,
            &version.value,
        ]),
        "portalId": portal,
        "objectId": object_id,
        "occurredAt": version.timestamp_ms,
        "subscriptionType": subscription,
        "propertyName": property,
        "propertyValue": version.value,
        "attemptNumber": 0,
        VIA_FIELD: VIA_POLL,
    });
    add_source(&mut value, version);
    Synthetic {
        object_id,
        occurred_at: version.timestamp_ms,
        kind: Kind::PropertyChange,
        value,
    }
}

/// `<object>.creation`, with `changeFlag: "CREATED"`; its source is that of `createdate`.
pub fn creation(
    portal: u64,
    object: ObjectType,
    object_id: u64,
    created_ms: i64,
    source: Option<&PropertyVersion>,
) -> Synthetic {
    let subscription = format!("{}.creation", object.singular());
    let mut value = json!({
        "eventId": event_id(&[
            &subscription,
            &portal.to_string(),
            &object_id.to_string(),
            &created_ms.to_string(),
        ]),
        "portalId": portal,
        "objectId": object_id,
        "occurredAt": created_ms,
        "subscriptionType": subscription,
        "changeFlag": "CREATED",
        "attemptNumber": 0,
        VIA_FIELD: VIA_POLL,
    });
    if let Some(source) = source {
        add_source(&mut value, source);
    }
    Synthetic {
        object_id,
        occurred_at: created_ms,
        kind: Kind::Creation,
        value,
    }
}

/// `<object>.deletion` of a record found archived at `archived_ms`.
pub fn deletion(portal: u64, object: ObjectType, object_id: u64, archived_ms: i64) -> Synthetic {
    let subscription = format!("{}.deletion", object.singular());
    let value = json!({
        "eventId": event_id(&[
            &subscription,
            &portal.to_string(),
            &object_id.to_string(),
            &archived_ms.to_string(),
        ]),
        "portalId": portal,
        "objectId": object_id,
        "occurredAt": archived_ms,
        "subscriptionType": subscription,
        "changeFlag": "DELETED",
        "attemptNumber": 0,
        VIA_FIELD: VIA_POLL,
    });
    Synthetic {
        object_id,
        occurred_at: archived_ms,
        kind: Kind::Deletion,
        value,
    }
}

/// `list.membershipAdded` / `list.membershipRemoved` of record `object_id` in list `list_id`
/// (HubSpot has no webhook for these in v3: the names follow its journal's actions).
/// `object_type_id` is the list's record type (`0-1` for contacts), when known.
pub fn membership(
    portal: u64,
    list_id: &str,
    object_type_id: Option<&str>,
    object_id: u64,
    added: bool,
    occurred_ms: i64,
) -> Synthetic {
    let (subscription, kind) = if added {
        ("list.membershipAdded", Kind::MembershipAdded)
    } else {
        ("list.membershipRemoved", Kind::MembershipRemoved)
    };
    let mut value = json!({
        "eventId": event_id(&[
            subscription,
            &portal.to_string(),
            list_id,
            &object_id.to_string(),
            &occurred_ms.to_string(),
        ]),
        "portalId": portal,
        "listId": list_id,
        "objectId": object_id,
        "occurredAt": occurred_ms,
        "subscriptionType": subscription,
        "attemptNumber": 0,
        VIA_FIELD: VIA_POLL,
    });
    if let Some(type_id) = object_type_id {
        value["objectTypeId"] = json!(type_id);
    }
    Synthetic {
        object_id,
        occurred_at: occurred_ms,
        kind,
        value,
    }
}

fn add_source(value: &mut Value, version: &PropertyVersion) {
    if let Some(source) = &version.source_type {
        value["changeSource"] = json!(source);
    }
    if let Some(id) = &version.source_id {
        value["sourceId"] = json!(id);
    }
}

/// A stable id for a synthetic event: the first bytes of a SHA-256 of its identifying parts,
/// below 2^53.
pub fn event_id(parts: &[&str]) -> u64 {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) & ((1 << 53) - 1)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::hubspot::Record;

    const T: i64 = 1_767_225_600_000;

    fn version(value: &str, at: i64, source: &str, id: Option<&str>) -> PropertyVersion {
        PropertyVersion {
            value: value.into(),
            timestamp_ms: at,
            source_type: Some(source.into()),
            source_id: id.map(str::to_owned),
        }
    }

    fn read() -> RecordHistory {
        RecordHistory {
            record: Record {
                id: "101".into(),
                ..Record::default()
            },
            created_ms: Some(T - 60_000),
            updated_ms: Some(T + 1_000),
            history: BTreeMap::from([
                (
                    "firstname".to_owned(),
                    vec![
                        version("Ada", T + 1_000, "CRM_UI", Some("userId:7")),
                        version("Ad", T, "INTEGRATION", Some("4242")),
                        version("A", T - 60_000, "API", None),
                    ],
                ),
                (
                    "createdate".to_owned(),
                    vec![version("x", T - 60_000, "IMPORT", Some("import:9"))],
                ),
                ("jobtitle".to_owned(), vec![]),
                (
                    "phone".to_owned(),
                    vec![version("", T + 500, "CRM_UI", Some("userId:7"))],
                ),
            ]),
        }
    }

    fn watched() -> Vec<String> {
        vec!["firstname".into(), "jobtitle".into(), "phone".into()]
    }

    #[test]
    fn a_version_is_shaped_exactly_as_a_webhook_event() {
        let events = record_events(
            62515,
            ObjectType::Contacts,
            101,
            &read(),
            &watched(),
            Emit::Changes {
                since_ms: T,
                upper_ms: T + 10_000,
            },
        );
        let values: Vec<&Value> = events.iter().map(|e| &e.value).collect();
        let id = values[1]["eventId"].as_u64().unwrap();
        assert_eq!(
            values,
            [
                &json!({"eventId": values[0]["eventId"], "portalId": 62515, "objectId": 101,
                    "occurredAt": T + 500, "subscriptionType": "contact.propertyChange",
                    "propertyName": "phone", "propertyValue": "", "changeSource": "CRM_UI",
                    "sourceId": "userId:7", "attemptNumber": 0, "hubsync_via": "poll"}),
                &json!({"eventId": id, "portalId": 62515, "objectId": 101,
                    "occurredAt": T + 1_000, "subscriptionType": "contact.propertyChange",
                    "propertyName": "firstname", "propertyValue": "Ada", "changeSource": "CRM_UI",
                    "sourceId": "userId:7", "attemptNumber": 0, "hubsync_via": "poll"}),
            ]
        );
        assert!(id < 1 << 53);
        // The same change gives the same id; another value another.
        let again = property_change(
            62515,
            ObjectType::Contacts,
            101,
            "firstname",
            &version("Ada", T + 1_000, "CRM_UI", Some("userId:7")),
        );
        assert_eq!(again.value["eventId"].as_u64(), Some(id));
        let other = property_change(
            62515,
            ObjectType::Contacts,
            101,
            "firstname",
            &version("Eve", T + 1_000, "CRM_UI", Some("userId:7")),
        );
        assert_ne!(other.value["eventId"].as_u64(), Some(id));
    }

    #[test]
    fn a_record_created_in_the_window_announces_its_creation_first() {
        let events = record_events(
            7,
            ObjectType::Companies,
            101,
            &read(),
            &["firstname".into()],
            Emit::Changes {
                since_ms: T - 120_000,
                upper_ms: T + 10_000,
            },
        );
        let kinds: Vec<(Kind, i64)> = events.iter().map(|e| (e.kind, e.occurred_at)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::Creation, T - 60_000),
                (Kind::PropertyChange, T - 60_000),
                (Kind::PropertyChange, T),
                (Kind::PropertyChange, T + 1_000),
            ]
        );
        let created = &events[0].value;
        assert_eq!(created["subscriptionType"], "company.creation");
        assert_eq!(created["changeFlag"], "CREATED");
        assert_eq!(created["changeSource"], "IMPORT");
        assert_eq!(created["sourceId"], "import:9");
        // A version without a source id says nothing of one.
        assert_eq!(events[1].value["changeSource"], "API");
        assert!(events[1].value.get("sourceId").is_none());
    }

    #[test]
    fn versions_after_upper_wait_for_a_later_run() {
        let events = record_events(
            7,
            ObjectType::Deals,
            101,
            &read(),
            &watched(),
            Emit::Changes {
                since_ms: T - 1,
                upper_ms: T + 600,
            },
        );
        let at: Vec<i64> = events.iter().map(|e| e.occurred_at).collect();
        assert_eq!(at, [T, T + 500]);
        assert_eq!(events[0].value["subscriptionType"], "deal.propertyChange");
    }

    #[test]
    fn a_refresh_gives_the_current_value_of_each_watched_property() {
        let events = record_events(
            7,
            ObjectType::Contacts,
            101,
            &read(),
            &watched(),
            Emit::Current { upper_ms: T + 700 },
        );
        let values: Vec<(&str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e.value["propertyName"].as_str().unwrap(),
                    e.value["propertyValue"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(values, [("firstname", "Ad"), ("phone", "")]);
        assert!(events.iter().all(|e| e.kind == Kind::PropertyChange));
    }

    #[test]
    fn deletions_and_list_memberships() {
        let deleted = deletion(7, ObjectType::Contacts, 55, T);
        assert_eq!(
            deleted.value,
            json!({"eventId": deleted.value["eventId"], "portalId": 7, "objectId": 55,
                "occurredAt": T, "subscriptionType": "contact.deletion", "changeFlag": "DELETED",
                "attemptNumber": 0, "hubsync_via": "poll"})
        );
        let joined = membership(7, "42", Some("0-1"), 55, true, T);
        assert_eq!(
            joined.value,
            json!({"eventId": joined.value["eventId"], "portalId": 7, "listId": "42",
                "objectId": 55, "objectTypeId": "0-1", "occurredAt": T,
                "subscriptionType": "list.membershipAdded", "attemptNumber": 0,
                "hubsync_via": "poll"})
        );
        let left = membership(7, "42", None, 55, false, T + 1);
        assert_eq!(left.kind, Kind::MembershipRemoved);
        assert_eq!(left.value["subscriptionType"], "list.membershipRemoved");
        assert!(left.value.get("objectTypeId").is_none());
    }
}
