//! The portal's property definitions, read from HubSpot at start so the process stage can map and
//! coerce values by each property's type without a call per event.

use hubsync_processors::catalog::{PropertyCatalog, PropertyKind, PropertySpec};
use hubsync_schemas::HubSpotObjectType;
use tracing::warn;

use crate::hubspot::{Error, HubSpotClient, ObjectType, PropertyDefinition};

/// The object types whose properties the rules can write.
const OBJECTS: [(HubSpotObjectType, ObjectType); 3] = [
    (HubSpotObjectType::Contact, ObjectType::Contacts),
    (HubSpotObjectType::Company, ObjectType::Companies),
    (HubSpotObjectType::Deal, ObjectType::Deals),
];

/// Reads every property of contacts, companies and deals (three calls).
pub async fn load(client: &HubSpotClient) -> Result<PropertyCatalog, Error> {
    let mut catalog = PropertyCatalog::new();
    for (object, path) in OBJECTS {
        for definition in client.properties(path).await? {
            add(&mut catalog, object, &definition);
        }
    }
    Ok(catalog)
}

/// Adds one HubSpot property definition; a type hubsync does not know is left out with a warning
/// (a mapping to it is then reported as a missing property).
pub fn add(
    catalog: &mut PropertyCatalog,
    object: HubSpotObjectType,
    definition: &PropertyDefinition,
) {
    if definition.archived {
        return;
    }
    let options = definition.options.iter().map(|o| o.value.clone()).collect();
    let Some(kind) = PropertyKind::from_hubspot(&definition.kind, &definition.field_type, options)
    else {
        warn!(property = %definition.name, kind = %definition.kind, "property of an unknown type left out of the catalog");
        return;
    };
    let mut spec = PropertySpec::new(kind);
    spec.read_only = definition.read_only || definition.calculated;
    spec.unique = definition.has_unique_value;
    catalog.insert(object, definition.name.clone(), spec);
}
