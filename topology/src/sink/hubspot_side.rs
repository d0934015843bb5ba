//! What happened in HubSpot, as the sink must know it: reads `crm.hubspot.changes` (what the
//! inbound stage sent upstream) into the sink's state, per portal.
//!
//! | change | the sink remembers | so that |
//! |---|---|---|
//! | `PROPERTY_CHANGED` | HubSpot's time of each field's change | an upstream event older than it leaves HubSpot's value (newest wins) |
//! | `DELETED` | the record is deleted, its last-written values forgotten | later upstream events are skipped `DELETED_IN_HUBSPOT`, never re-create it |
//! | `PRIVACY_DELETED` | the same, for good | not even a restore brings it back |
//! | `RESTORED` | the deletion is lifted | the record is written again |
//! | `MERGED` | each merged id resolves to the survivor | upstream events of a merged record update the survivor |
//!
//! hubsync's own writes never appear on the topic (no echoes), so its own changes never hold
//! back a later upstream event.

use hubsync_schemas::{HubSpotChange, HubSpotChangeKind};
use tracing::debug;

use crate::codec::AvroCodec;
use crate::inbound::translate::object_path;
use crate::kafka::Follower;
use crate::state::{State, hubspot_key};

pub struct HubSpotSide {
    pub codec: AvroCodec,
    /// The sink's state, unscoped: each change is kept under its portal.
    pub state: State,
}

impl HubSpotSide {
    /// Remembers one change.
    pub fn remember(&self, change: &HubSpotChange) -> Result<(), crate::state::StateError> {
        let state = self.state.scoped(&change.portal_id.to_string());
        let object = object_path(change.object_type);
        let key = hubspot_key(object, &change.object_id);
        match change.change {
            HubSpotChangeKind::PropertyChanged => {
                for field in &change.fields {
                    state.hubspot_changed(&key, &field.property, field.changed_at)?;
                }
            }
            HubSpotChangeKind::Deleted => state.hubspot_deleted(&key, false)?,
            HubSpotChangeKind::PrivacyDeleted => state.hubspot_deleted(&key, true)?,
            HubSpotChangeKind::Restored => state.hubspot_restored(&key)?,
            HubSpotChangeKind::Merged => {
                for merged in &change.merged_object_ids {
                    state.hubspot_merged(object, merged, &change.object_id)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Follower for HubSpotSide {
    async fn apply(&mut self, payload: Vec<u8>) -> anyhow::Result<()> {
        match self.codec.decode::<HubSpotChange>(&payload).await {
            Ok(change) => {
                self.remember(&change)?;
                metrics::counter!("hubsync_sink_hubspot_changes_total", "change" => change.change.as_str())
                    .increment(1);
            }
            Err(error) => debug!(%error, "a HubSpot change hubsync cannot read; skipped"),
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        Ok(self.state.flush().await?)
    }
}
