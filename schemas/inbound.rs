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
    }
}

/// `io.hubsync.HubSpotChange`, the value of `crm.hubspot.changes` (keyed by object id).
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
}
