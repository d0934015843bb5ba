//! Changes made in HubSpot, published for upstream services: `HubSpotChange`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::common::HubSpotObjectType;

avro_enum! {
    /// `io.hubsync.HubSpotChangeKind`: what happened in HubSpot.
    pub enum HubSpotChangeKind {
        Created = "CREATED",
        PropertyChanged = "PROPERTY_CHANGED",
        Deleted = "DELETED",
        Merged = "MERGED",
        AssociationChanged = "ASSOCIATION_CHANGED",
        Restored = "RESTORED",
        PrivacyDeleted = "PRIVACY_DELETED",
        ListJoined = "LIST_JOINED",
        ListLeft = "LIST_LEFT",
    }
}

/// `io.hubsync.FieldChange`: one changed field, named as upstream knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The upstream field; `owner` for the record owner.
    pub field: String,
    /// The HubSpot property it comes from.
    pub property: String,
    /// The value for upstream; `None` when cleared (or no upstream user has the owner).
    pub value: Option<String>,
    /// HubSpot's own value when it differs from `value` (the owner id).
    pub hubspot_value: Option<String>,
    /// When HubSpot's value changed (epoch ms).
    pub changed_at: i64,
}

/// `io.hubsync.AssociationChange`: an association added or removed in HubSpot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationChange {
    pub association_type: String,
    pub to_object_type: HubSpotObjectType,
    pub to_object_id: String,
    pub to_record_id: Option<String>,
    pub removed: bool,
    pub primary: bool,
}

/// `io.hubsync.HubSpotChange`, the value of `crm.hubspot.changes` (keyed by the upstream record
/// id, or the HubSpot id for a record never upstream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubSpotChange {
    /// A UUID in its lowercase hyphenated form.
    pub event_id: String,
    pub portal_id: i64,
    pub team_id: Option<String>,
    pub object_type: HubSpotObjectType,
    pub object_id: String,
    pub change: HubSpotChangeKind,
    pub property_name: Option<String>,
    /// The new value; `None` when the property was cleared.
    pub property_value: Option<String>,
    pub occurred_at: i64,
    /// HubSpot's `changeSource`, e.g. `CRM_UI`.
    pub change_source: Option<String>,
    /// HubSpot's `sourceId`: the user or app that made the change.
    pub source_id: Option<String>,
    /// Current values of the mapped properties; `None` means empty in HubSpot.
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
    /// The upstream id of the record, when hubsync knows it.
    #[serde(default)]
    pub record_id: Option<String>,
    /// The mapped fields this change sets upstream.
    #[serde(default)]
    pub fields: Vec<FieldChange>,
    /// For `MERGED`: the HubSpot ids merged into `object_id`.
    #[serde(default)]
    pub merged_object_ids: Vec<String>,
    /// For `MERGED`: the upstream ids of the merged records, where known.
    #[serde(default)]
    pub merged_record_ids: Vec<String>,
    /// For `ASSOCIATION_CHANGED`.
    #[serde(default)]
    pub association: Option<AssociationChange>,
    /// For `LIST_JOINED` / `LIST_LEFT`.
    #[serde(default)]
    pub list_id: Option<String>,
    /// `webhook` or `poll`.
    #[serde(default)]
    pub via: Option<String>,
}

impl HubSpotChange {
    /// The Kafka key: the upstream id when known, else the HubSpot id.
    pub fn key(&self) -> &str {
        self.record_id.as_deref().unwrap_or(&self.object_id)
    }
}
