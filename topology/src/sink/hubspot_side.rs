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
    /// Which commands partitions this instance holds, with the commands topic: a change of a
    /// portal whose partition it holds is also sent to the changelog (the owner sends it; every
    /// other instance keeps it locally, for when the partition comes to it).
    pub owned: Option<(crate::kafka::Assignment, String)>,
    /// The topic followed, under which the positions read are kept.
    pub topic: String,
}

impl HubSpotSide {
    /// Remembers one change.
    pub fn remember(&self, change: &HubSpotChange) -> Result<(), crate::state::StateError> {
        let portal = u64::try_from(change.portal_id).unwrap_or_default();
        let owner = match (self.state.changelog(), &self.owned) {
            (Some(changelog), Some((assignment, commands))) => {
                assignment.holds(commands, changelog.partition_of(portal))
            }
            _ => true,
        };
        let state = if owner {
            self.state.clone()
        } else {
            self.state.unlogged()
        };
        let state = state.scoped(&change.portal_id.to_string());
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

    async fn flush(&mut self, read: &std::collections::HashMap<i32, i64>) -> anyhow::Result<()> {
        self.state.flush().await?;
        // Kept once what was applied is on the changelog (the portal owner's facts), and written
        // after every fact it covers: the local copy, synced by sled on its own, recovers a
        // prefix of its writes after a crash, so a position kept never runs ahead of the facts
        // (an owner's or another's). Until it is kept, changes are read again, which applies
        // nothing twice.
        for (partition, offset) in read {
            self.state
                .set_followed(&self.topic, *partition, offset + 1)?;
        }
        Ok(())
    }

    fn kept(&self) -> anyhow::Result<std::collections::HashMap<i32, i64>> {
        Ok(self.state.followed(&self.topic)?)
    }
}
