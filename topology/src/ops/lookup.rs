//! Read-only HubSpot lookups for `trace` and `plan`: records by a unique property (contacts by
//! email: batch read, 100 per call), by a searchable property (companies by domain: search, 100
//! values per call, every page; companies without a domain by name; activities and deals by
//! hubsync's own `hubsync_activity_id` and `hubsync_deal_key`), and by HubSpot id. Nothing here
//! writes.
//!
//! ```text
//! read_by_property(contacts, "email", [ada@acme.io, new@acme.io], [jobtitle])
//!   POST /crm/v3/objects/contacts/batch/read {idProperty: email, inputs: [..]}
//!   -> { "ada@acme.io": Record { id: 901, jobtitle: "Engineer" } }   (new@acme.io absent)
//! ```

use std::collections::BTreeMap;

use crate::hubspot::{Error, ErrorClass, HubSpotClient, InputError, ObjectType, Record};

/// HubSpot's most inputs per batch call, and the values one search filter takes here.
pub const CHUNK: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("cannot read {object} from HubSpot: {source}")]
    HubSpot {
        object: &'static str,
        #[source]
        source: Error,
    },
    #[error("HubSpot could not read {object} {value}: {error}")]
    Input {
        object: &'static str,
        value: String,
        error: InputError,
    },
}

/// Found records by the lower-cased value they were looked up by; absent values are missing.
pub type Found = BTreeMap<String, Record>;

/// Reads records by the value of a unique property (`email`), 100 per call.
pub async fn read_by_property(
    client: &HubSpotClient,
    object: ObjectType,
    property: &str,
    values: &[String],
    properties: &[String],
) -> Result<Found, LookupError> {
    read(client, object, Some(property), values, properties).await
}

/// Reads records by HubSpot id, 100 per call.
pub async fn read_by_id(
    client: &HubSpotClient,
    object: ObjectType,
    ids: &[String],
    properties: &[String],
) -> Result<Found, LookupError> {
    read(client, object, None, ids, properties).await
}

async fn read(
    client: &HubSpotClient,
    object: ObjectType,
    id_property: Option<&str>,
    values: &[String],
    properties: &[String],
) -> Result<Found, LookupError> {
    let mut found = Found::new();
    let mut wanted: Vec<String> = properties.to_vec();
    if let Some(property) = id_property
        && !wanted.iter().any(|p| p == property)
    {
        wanted.push(property.to_string());
    }
    for chunk in values.chunks(CHUNK) {
        let answers = match client.batch_read(object, chunk, id_property, &wanted).await {
            Ok(answers) => answers,
            // Nothing of the chunk exists.
            Err(error) if error.class() == Some(&ErrorClass::NotFound) => continue,
            Err(source) => {
                return Err(LookupError::HubSpot {
                    object: object.path_name(),
                    source,
                });
            }
        };
        for answer in answers {
            match answer.result {
                Ok(record) => {
                    found.insert(answer.key.to_lowercase(), record);
                }
                Err(error) if error.class == ErrorClass::NotFound => {}
                Err(error) => {
                    return Err(LookupError::Input {
                        object: object.path_name(),
                        value: answer.key,
                        error,
                    });
                }
            }
        }
    }
    Ok(found)
}

/// Finds records whose `property` is one of `values` (compared without regard to case) by
/// search; where HubSpot holds several, the oldest (lowest id) is kept, as the sink does.
/// Search lags writes by seconds: a record written a moment ago may not be found yet.
pub async fn search_by(
    client: &HubSpotClient,
    object: ObjectType,
    property: &str,
    values: &[String],
    properties: &[String],
) -> Result<Found, LookupError> {
    search(client, object, property, values, properties, None).await
}

/// Finds records by a property of hubsync's own (`hubsync_activity_id`, `hubsync_deal_key`), as
/// [`search_by`] does. The object's properties are read first (one call): a portal without the
/// property (hubsync has not written there yet) holds no record carrying it, and is not
/// searched.
pub async fn search_owned(
    client: &HubSpotClient,
    object: ObjectType,
    property: &str,
    values: &[String],
    properties: &[String],
) -> Result<Found, LookupError> {
    if values.is_empty() {
        return Ok(Found::new());
    }
    let defined = client
        .properties(object)
        .await
        .map_err(|source| LookupError::HubSpot {
            object: object.path_name(),
            source,
        })?;
    if !defined.iter().any(|p| p.name == property && !p.archived) {
        return Ok(Found::new());
    }
    search(client, object, property, values, properties, None).await
}

/// Companies by name, as the sink matches a company its domain does not find: only companies
/// without a domain count (one with another domain is another company, whatever its name).
pub async fn search_by_name(
    client: &HubSpotClient,
    names: &[String],
    properties: &[String],
) -> Result<Found, LookupError> {
    search(
        client,
        ObjectType::Companies,
        "name",
        names,
        properties,
        Some("domain"),
    )
    .await
}

async fn search(
    client: &HubSpotClient,
    object: ObjectType,
    property: &str,
    values: &[String],
    properties: &[String],
    unless_set: Option<&str>,
) -> Result<Found, LookupError> {
    let mut found = Found::new();
    let mut wanted: Vec<String> = properties.to_vec();
    for extra in [Some(property), Some("hs_object_id"), unless_set]
        .into_iter()
        .flatten()
    {
        if !wanted.iter().any(|p| p == extra) {
            wanted.push(extra.to_string());
        }
    }
    let failed = |source| LookupError::HubSpot {
        object: object.path_name(),
        source,
    };
    let records = client
        .search_in(object, property, values, &wanted)
        .await
        .map_err(failed)?;
    for record in records {
        if unless_set.is_some_and(|other| record.property(other).is_some()) {
            continue;
        }
        let Some(key) = record.property(property).map(str::to_lowercase) else {
            continue;
        };
        keep_oldest(&mut found, key, record);
    }
    Ok(found)
}

fn keep_oldest(found: &mut Found, key: String, record: Record) {
    let id = |r: &Record| r.id.parse::<u64>().unwrap_or(u64::MAX);
    match found.get(&key) {
        Some(current) if id(current) <= id(&record) => {}
        _ => {
            found.insert(key, record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Record {
        Record {
            id: id.into(),
            ..Record::default()
        }
    }

    #[test]
    fn duplicates_keep_the_oldest() {
        let mut found = Found::new();
        keep_oldest(&mut found, "acme.io".into(), record("120"));
        keep_oldest(&mut found, "acme.io".into(), record("99"));
        keep_oldest(&mut found, "acme.io".into(), record("130"));
        assert_eq!(found["acme.io"].id, "99");
    }
}
