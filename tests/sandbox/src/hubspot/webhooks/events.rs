//! HubSpot's v3 webhook events, made from the sandbox's change log: pure, no I/O.
//!
//! ```text
//! Change {CREATED contacts 10001, properties {email: a@b.io}, INTEGRATION 3141592, at 1767225600000}
//!   -> {"eventId":1,"subscriptionType":"contact.creation","objectId":10001,"changeFlag":"CREATED",
//!       "changeSource":"INTEGRATION","sourceId":"3141592","occurredAt":1767225600000,...}
//!      {"eventId":2,"subscriptionType":"contact.propertyChange","objectId":10001,
//!       "propertyName":"email","propertyValue":"a@b.io",...}
//! ```
//!
//! Only contacts, companies and deals have webhook events; an association change is sent only
//! between two of those (one event per association row: a primary link is two, one of them
//! `isPrimaryAssociation`). A property change is sent for each property the change gave a new
//! value, on creation too; properties HubSpot maintains itself (`hs_lastmodifieddate`...) are not.

use std::collections::BTreeMap;

use serde::Serialize;

use super::super::model::ObjectType;
use super::super::store::{Change, ChangeKind};

/// One event as HubSpot sends it; absent fields are left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_id: u64,
    pub subscription_id: u64,
    pub portal_id: u64,
    pub app_id: u64,
    pub occurred_at: i64,
    pub subscription_type: String,
    pub attempt_number: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_flag: Option<&'static str>,
    pub change_source: &'static str,
    pub source_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_object_ids: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub association_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub association_removed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_primary_association: Option<bool>,
}

/// The webhook name of an object type (`contact`), for those that have webhooks.
fn webhook_name(object_type: ObjectType) -> Option<&'static str> {
    match object_type {
        ObjectType::Contacts => Some("contact"),
        ObjectType::Companies => Some("company"),
        ObjectType::Deals => Some("deal"),
        _ => None,
    }
}

/// Who the events are for: the portal, the app, and the app's subscriptions by type.
pub struct Audience<'a> {
    pub portal_id: u64,
    pub app_id: u64,
    /// Subscription type -> subscription id; types not here are not sent.
    pub subscriptions: &'a BTreeMap<String, u64>,
}

/// The events one change makes for `audience`, in order; `next_id` hands out event ids (only
/// to events of subscribed types).
pub fn events_of(
    change: &Change,
    audience: &Audience<'_>,
    next_id: &mut impl FnMut() -> u64,
) -> Vec<Event> {
    let Some(name) = webhook_name(change.object_type) else {
        return Vec::new();
    };
    let object_id = change.id.parse::<u64>().ok();
    let base = Event {
        event_id: 0,
        subscription_id: 0,
        portal_id: audience.portal_id,
        app_id: audience.app_id,
        occurred_at: change.at_ms,
        subscription_type: String::new(),
        attempt_number: 0,
        object_id,
        property_name: None,
        property_value: None,
        change_flag: None,
        change_source: change.source.source_type(),
        source_id: change.source.source_id(),
        primary_object_id: None,
        merged_object_ids: None,
        new_object_id: None,
        association_type: None,
        from_object_id: None,
        to_object_id: None,
        association_removed: None,
        is_primary_association: None,
    };
    let property_changes = change.properties.iter().map(|(property, value)| {
        let event = Event {
            property_name: Some(property.clone()),
            property_value: Some(value.clone()),
            ..base.clone()
        };
        ("propertyChange", event)
    });
    let deletion = Event {
        change_flag: Some("DELETED"),
        ..base.clone()
    };
    // (subscription type's event name, the event but for its ids)
    let drafts: Vec<(&str, Event)> = match change.kind {
        ChangeKind::Created => {
            let creation = Event {
                change_flag: Some("CREATED"),
                ..base.clone()
            };
            std::iter::once(("creation", creation))
                .chain(property_changes)
                .collect()
        }
        ChangeKind::Updated => property_changes.collect(),
        ChangeKind::Archived => vec![("deletion", deletion)],
        ChangeKind::Restored => vec![("restore", base.clone())],
        ChangeKind::PrivacyDeleted => {
            vec![("privacyDeletion", base.clone()), ("deletion", deletion)]
        }
        ChangeKind::Merged => change
            .merge
            .iter()
            .map(|merge| {
                let event = Event {
                    object_id: Some(merge.new_id),
                    primary_object_id: Some(merge.primary),
                    merged_object_ids: Some(merge.merged.clone()),
                    new_object_id: Some(merge.new_id),
                    ..base.clone()
                };
                ("merge", event)
            })
            .collect(),
        ChangeKind::Associated | ChangeKind::Dissociated => change
            .association
            .iter()
            .filter_map(|association| {
                let to_name = webhook_name(association.to_type)?;
                let event = Event {
                    object_id: None,
                    association_type: Some(format!(
                        "{}_TO_{}",
                        name.to_ascii_uppercase(),
                        to_name.to_ascii_uppercase()
                    )),
                    from_object_id: object_id,
                    to_object_id: Some(association.to_id),
                    association_removed: Some(change.kind == ChangeKind::Dissociated),
                    is_primary_association: Some(association.primary),
                    ..base.clone()
                };
                Some(("associationChange", event))
            })
            .collect(),
    };
    drafts
        .into_iter()
        .filter_map(|(kind, mut event)| {
            let subscription_type = format!("{name}.{kind}");
            event.subscription_id = *audience.subscriptions.get(&subscription_type)?;
            event.subscription_type = subscription_type;
            event.event_id = next_id();
            Some(event)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::super::store::{AssociationChange, ChangeSource, Merge};
    use super::*;
    use serde_json::json;

    fn change(kind: ChangeKind, object_type: ObjectType) -> Change {
        Change {
            seq: 1,
            object_type,
            id: "10001".into(),
            kind,
            source: ChangeSource::Integration { app_id: 42 },
            source_id: "42".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            at_ms: 1_767_225_600_000,
            properties: BTreeMap::new(),
            merge: None,
            association: None,
        }
    }

    fn all() -> BTreeMap<String, u64> {
        super::super::config::SUBSCRIPTION_TYPES
            .iter()
            .enumerate()
            .map(|(i, s)| ((*s).to_string(), 100 + i as u64))
            .collect()
    }

    fn run(change: &Change, subscriptions: &BTreeMap<String, u64>) -> Vec<serde_json::Value> {
        let audience = Audience {
            portal_id: 9,
            app_id: 42,
            subscriptions,
        };
        let mut id = 0;
        events_of(change, &audience, &mut || {
            id += 1;
            id
        })
        .iter()
        .map(|e| serde_json::to_value(e).expect("json"))
        .collect()
    }

    #[test]
    fn a_creation_is_one_creation_and_one_property_change_per_value() {
        let mut created = change(ChangeKind::Created, ObjectType::Contacts);
        created.properties.insert("email".into(), "a@b.io".into());
        created.properties.insert("firstname".into(), "Ada".into());
        let events = run(&created, &all());
        assert_eq!(
            events[0],
            json!({"eventId": 1, "subscriptionId": 100, "portalId": 9, "appId": 42,
                   "occurredAt": 1_767_225_600_000_i64, "subscriptionType": "contact.creation",
                   "attemptNumber": 0, "objectId": 10001, "changeFlag": "CREATED",
                   "changeSource": "INTEGRATION", "sourceId": "42"})
        );
        assert_eq!(events.len(), 3);
        assert_eq!(events[1]["subscriptionType"], "contact.propertyChange");
        assert_eq!(events[1]["propertyName"], "email");
        assert_eq!(events[2]["propertyValue"], "Ada");
        assert_eq!(events[2]["eventId"], 3);
    }

    #[test]
    fn only_subscribed_types_and_crm_objects_are_sent() {
        let mut updated = change(ChangeKind::Updated, ObjectType::Companies);
        updated.properties.insert("name".into(), "Acme".into());
        let only_creations: BTreeMap<String, u64> =
            [("company.creation".to_string(), 1)].into_iter().collect();
        assert!(run(&updated, &only_creations).is_empty());
        assert_eq!(run(&updated, &all()).len(), 1);
        let mut note = change(ChangeKind::Created, ObjectType::Notes);
        note.properties.insert("hs_note_body".into(), "hi".into());
        assert!(run(&note, &all()).is_empty());
    }

    #[test]
    fn privacy_deletion_also_fires_a_deletion() {
        let events = run(
            &change(ChangeKind::PrivacyDeleted, ObjectType::Contacts),
            &all(),
        );
        let types: Vec<&str> = events
            .iter()
            .filter_map(|e| e["subscriptionType"].as_str())
            .collect();
        assert_eq!(types, ["contact.privacyDeletion", "contact.deletion"]);
    }

    #[test]
    fn merges_and_association_changes_carry_their_fields() {
        let mut merged = change(ChangeKind::Merged, ObjectType::Deals);
        merged.merge = Some(Merge {
            primary: 10001,
            merged: vec![10002],
            new_id: 10001,
        });
        let events = run(&merged, &all());
        assert_eq!(events[0]["subscriptionType"], "deal.merge");
        assert_eq!(events[0]["primaryObjectId"], 10001);
        assert_eq!(events[0]["mergedObjectIds"], json!([10002]));
        assert_eq!(events[0]["newObjectId"], 10001);

        let mut linked = change(ChangeKind::Dissociated, ObjectType::Contacts);
        linked.association = Some(AssociationChange {
            to_type: ObjectType::Companies,
            to_id: 20002,
            type_id: 1,
            primary: true,
        });
        let events = run(&linked, &all());
        assert_eq!(events[0]["associationType"], "CONTACT_TO_COMPANY");
        assert_eq!(events[0]["fromObjectId"], 10001);
        assert_eq!(events[0]["toObjectId"], 20002);
        assert_eq!(events[0]["associationRemoved"], true);
        assert_eq!(events[0]["isPrimaryAssociation"], true);
        assert!(events[0].get("objectId").is_none());
        linked.association = Some(AssociationChange {
            to_type: ObjectType::Notes,
            to_id: 3,
            type_id: 201,
            primary: false,
        });
        assert!(run(&linked, &all()).is_empty());
    }
}
