//! Properties hubsync keeps on HubSpot records for its own bookkeeping: the upstream activity id
//! on each activity, and the deal key (contact and campaign) on each deal it creates. They let a
//! create interrupted by a crash be found again instead of made twice. The sink creates them at
//! start where the portal lacks them (one read per object type, a create only when missing).

use tracing::info;

use crate::hubspot::{Error, HubSpotClient, NewProperty, ObjectType};

/// The upstream activity id, on notes, emails, calls, tasks and meetings.
pub const ACTIVITY_ID_PROPERTY: &str = "hubsync_activity_id";
/// `{contact id}:{campaign id}`, on deals created by a campaign's deal trigger.
pub const DEAL_KEY_PROPERTY: &str = "hubsync_deal_key";

const ACTIVITY_OBJECTS: [ObjectType; 5] = [
    ObjectType::Notes,
    ObjectType::Emails,
    ObjectType::Calls,
    ObjectType::Tasks,
    ObjectType::Meetings,
];

/// Every hubsync property, by object type.
pub fn wanted() -> Vec<(ObjectType, NewProperty)> {
    let mut wanted: Vec<(ObjectType, NewProperty)> = ACTIVITY_OBJECTS
        .iter()
        .map(|object| {
            (
                *object,
                NewProperty {
                    name: ACTIVITY_ID_PROPERTY.to_string(),
                    label: "hubsync activity id".to_string(),
                    description: "Upstream id of the activity this record was created for; \
                                  written by hubsync"
                        .to_string(),
                    group_name: String::new(),
                    unique: false,
                },
            )
        })
        .collect();
    wanted.push((
        ObjectType::Deals,
        NewProperty {
            name: DEAL_KEY_PROPERTY.to_string(),
            label: "hubsync deal key".to_string(),
            description: "Upstream contact and campaign this deal was created for; written by \
                          hubsync"
                .to_string(),
            group_name: String::new(),
            unique: true,
        },
    ));
    wanted
}

/// Creates the hubsync properties the portal lacks; returns the object types it created one on.
/// A new property goes into the group of the object's first property. One that exists by the
/// time it is created (HubSpot's 409: another instance made it meanwhile) is taken as it is.
pub async fn ensure(client: &HubSpotClient) -> Result<Vec<ObjectType>, Error> {
    let mut created = Vec::new();
    for (object, mut property) in wanted() {
        let existing = client.properties(object).await?;
        if existing.iter().any(|p| p.name == property.name) {
            continue;
        }
        property.group_name = existing
            .first()
            .map_or_else(|| "hubsync".to_string(), |p| p.group_name.clone());
        match client.create_property(object, &property).await {
            Ok(_) => {
                info!(object = object.path_name(), property = %property.name, "created hubsync's own property");
                created.push(object);
            }
            // Another instance, starting at the same moment, created it first.
            Err(Error::Failed(failure)) if failure.status == Some(409) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(created)
}
