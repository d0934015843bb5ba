//! Typed inputs to request paths and JSON bodies. Pure: no I/O, no clock.
//!
//! ```text
//! upsert_body("email", [UpsertInput { trace_id: "evt-7", id: "ada@example.com",
//!                                     properties: {"firstname": "Ada"} }])
//! -> {"inputs":[{"id":"ada@example.com","idProperty":"email",
//!                "properties":{"firstname":"Ada"},"objectWriteTraceId":"evt-7"}]}
//! ```
//!
//! Every write input carries `objectWriteTraceId` so that HubSpot names it in a 207's errors.
//! A batch HubSpot would refuse as a whole (more than 100 inputs, the same record or trace id
//! twice) is refused here, before anything is sent: it is the caller's bug, not a data error.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Value, json};

use super::{ObjectType, Properties};

/// HubSpot's limit on inputs per batch request.
pub const MAX_BATCH_INPUTS: usize = 100;
/// HubSpot's limit on inputs per batch read that asks for `propertiesWithHistory`.
pub const MAX_HISTORY_INPUTS: usize = 50;
/// HubSpot's limit on `limit` when listing records (the archived ones).
pub const MAX_ARCHIVED_PAGE: u32 = 100;
/// HubSpot's limit on `limit` when reading a list's memberships.
pub const MAX_LIST_PAGE: u32 = 250;
/// HubSpot's limit on `limit` for search.
pub const MAX_SEARCH_LIMIT: u32 = 200;
/// HubSpot's limits on search filters.
pub const MAX_FILTER_GROUPS: usize = 5;
pub const MAX_FILTERS_PER_GROUP: usize = 10;
pub const MAX_FILTERS: usize = 25;
/// Owners per page asked for.
pub const OWNERS_PAGE_LIMIT: u32 = 100;

/// A request HubSpot would refuse as a whole, caught before sending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(
        "{count} inputs in one batch, hubspot takes at most {max}: split the batch before sending"
    )]
    TooManyInputs { count: usize, max: usize },
    #[error("{field} {value} appears twice in one batch: merge duplicates before sending")]
    Duplicate { field: &'static str, value: String },
    #[error("{field} is empty: every input needs one")]
    Empty { field: &'static str },
    #[error("invalid search: {0}")]
    Search(String),
    #[error("{field} {value:?} is not a hubspot id: ids are digits, e.g. \"123\"")]
    NotAnId { field: &'static str, value: String },
    #[error("limit {limit} is outside 1..={max}: ask for at most {max} a page")]
    Limit { limit: u32, max: u32 },
}

/// A create, with optional associations made in the same call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateInput {
    /// Names the input in the answer; unique within the batch (an event id serves).
    pub trace_id: String,
    pub properties: Properties,
    pub associations: Vec<InlineAssociation>,
}

/// An association made inline by a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineAssociation {
    pub to_id: String,
    pub types: Vec<AssociationType>,
}

/// An update of a record known by its HubSpot id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateInput {
    pub trace_id: String,
    /// `hs_object_id`.
    pub id: String,
    pub properties: Properties,
}

/// An upsert: `id` is the value of the batch's unique id property (a contact's email).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpsertInput {
    pub trace_id: String,
    pub id: String,
    pub properties: Properties,
}

/// One association for the v4 batch endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationInput {
    /// Names the input in the answer; unique within the batch.
    pub trace_id: String,
    pub from_id: String,
    pub to_id: String,
    pub types: Vec<AssociationType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssociationCategory {
    HubspotDefined,
    UserDefined,
    IntegratorDefined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationType {
    pub association_category: AssociationCategory,
    pub association_type_id: u32,
}

impl AssociationType {
    /// A HubSpot-defined type, e.g. 202 for note to contact.
    pub fn hubspot_defined(type_id: u32) -> Self {
        AssociationType {
            association_category: AssociationCategory::HubspotDefined,
            association_type_id: type_id,
        }
    }
}

/// HubSpot's default (unlabelled) association type id from one object type to another, as
/// documented: contact to company 279, note to contact 202, and so on.
pub fn default_association_type(from: ObjectType, to: ObjectType) -> Option<u32> {
    use ObjectType::*;
    let id = match (from, to) {
        (Contacts, Companies) => 279,
        (Companies, Contacts) => 280,
        (Deals, Contacts) => 3,
        (Contacts, Deals) => 4,
        (Deals, Companies) => 341,
        (Companies, Deals) => 342,
        (Notes, Contacts) => 202,
        (Notes, Companies) => 190,
        (Notes, Deals) => 214,
        (Emails, Contacts) => 198,
        (Emails, Companies) => 186,
        (Emails, Deals) => 210,
        (Calls, Contacts) => 194,
        (Calls, Companies) => 182,
        (Calls, Deals) => 206,
        (Tasks, Contacts) => 204,
        (Tasks, Companies) => 192,
        (Tasks, Deals) => 216,
        (Meetings, Contacts) => 200,
        (Meetings, Companies) => 188,
        (Meetings, Deals) => 212,
        _ => return None,
    };
    Some(id)
}

// ----- paths -----

pub fn batch_path(object: ObjectType, operation: &str) -> String {
    format!("/crm/v3/objects/{}/batch/{operation}", object.path_name())
}

pub fn search_path(object: ObjectType) -> String {
    format!("/crm/v3/objects/{}/search", object.path_name())
}

pub fn properties_path(object: ObjectType) -> String {
    format!("/crm/v3/properties/{}", object.path_name())
}

pub fn associations_create_path(from: ObjectType, to: ObjectType) -> String {
    format!(
        "/crm/v4/associations/{}/{}/batch/create",
        from.path_name(),
        to.path_name()
    )
}

/// `GET /crm/v3/objects/{type}`: records listed by id (the archived ones with `archived=true`).
pub fn objects_path(object: ObjectType) -> String {
    format!("/crm/v3/objects/{}", object.path_name())
}

/// `GET /crm/v3/lists/{listId}`; the id must be digits, as it is placed in the path.
pub fn list_path(list_id: &str) -> Result<String, RequestError> {
    Ok(format!("/crm/v3/lists/{}", check_id("listId", list_id)?))
}

/// `GET /crm/v3/lists/{listId}/memberships/join-order`.
pub fn list_memberships_path(list_id: &str) -> Result<String, RequestError> {
    Ok(format!(
        "/crm/v3/lists/{}/memberships/join-order",
        check_id("listId", list_id)?
    ))
}

fn check_id<'a>(field: &'static str, id: &'a str) -> Result<&'a str, RequestError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RequestError::NotAnId {
            field,
            value: id.to_owned(),
        });
    }
    Ok(id)
}

fn check_limit(limit: u32, max: u32) -> Result<(), RequestError> {
    if !(1..=max).contains(&limit) {
        return Err(RequestError::Limit { limit, max });
    }
    Ok(())
}

/// The query of one page of archived records: `archived=true`, the page size, the cursor and
/// the properties asked for, each as a key of its own (`properties=a&properties=b`).
pub fn archived_query(
    limit: u32,
    after: Option<&str>,
    properties: &[String],
) -> Result<Vec<(&'static str, String)>, RequestError> {
    check_limit(limit, MAX_ARCHIVED_PAGE)?;
    let mut query = vec![
        ("archived", "true".to_owned()),
        ("limit", limit.to_string()),
    ];
    if let Some(after) = after {
        query.push(("after", after.to_owned()));
    }
    query.extend(properties.iter().map(|p| ("properties", p.clone())));
    Ok(query)
}

/// The query of one page of a list's memberships in join order.
pub fn memberships_query(
    limit: u32,
    after: Option<&str>,
) -> Result<Vec<(&'static str, String)>, RequestError> {
    check_limit(limit, MAX_LIST_PAGE)?;
    let mut query = vec![("limit", limit.to_string())];
    if let Some(after) = after {
        query.push(("after", after.to_owned()));
    }
    Ok(query)
}

pub const ACCOUNT_DETAILS_PATH: &str = "/account-info/v3/details";
pub const OWNERS_PATH: &str = "/crm/v3/owners";

/// The query of one owners page.
pub fn owners_query(email: Option<&str>, after: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("limit", OWNERS_PAGE_LIMIT.to_string()),
        ("archived", "false".to_owned()),
    ];
    if let Some(email) = email {
        query.push(("email", email.to_owned()));
    }
    if let Some(after) = after {
        query.push(("after", after.to_owned()));
    }
    query
}

// ----- batch bodies -----

fn check_count(count: usize) -> Result<(), RequestError> {
    if count > MAX_BATCH_INPUTS {
        return Err(RequestError::TooManyInputs {
            count,
            max: MAX_BATCH_INPUTS,
        });
    }
    Ok(())
}

/// Refuses an empty or repeated value; `fold` makes `Ada@x.io` and `ada@x.io` the same.
fn check_unique<'a>(
    field: &'static str,
    values: impl Iterator<Item = &'a str>,
    fold: bool,
) -> Result<(), RequestError> {
    let mut seen = HashSet::new();
    for value in values {
        if value.is_empty() {
            return Err(RequestError::Empty { field });
        }
        let key = if fold {
            value.to_lowercase()
        } else {
            value.to_owned()
        };
        if !seen.insert(key) {
            return Err(RequestError::Duplicate {
                field,
                value: value.to_owned(),
            });
        }
    }
    Ok(())
}

/// Whether values of `id_property` compare case-insensitively (HubSpot folds emails).
pub fn folds_case(id_property: &str) -> bool {
    id_property == "email"
}

/// `POST .../batch/create`.
pub fn create_body(inputs: &[CreateInput]) -> Result<Value, RequestError> {
    check_count(inputs.len())?;
    check_unique(
        "objectWriteTraceId",
        inputs.iter().map(|i| i.trace_id.as_str()),
        false,
    )?;
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|input| {
            let mut value = json!({
                "properties": input.properties,
                "objectWriteTraceId": input.trace_id,
            });
            if !input.associations.is_empty() {
                value["associations"] = input
                    .associations
                    .iter()
                    .map(|a| json!({"to": {"id": a.to_id}, "types": a.types}))
                    .collect();
            }
            value
        })
        .collect();
    Ok(json!({ "inputs": inputs }))
}

/// `POST .../batch/update`: records by HubSpot id.
pub fn update_body(inputs: &[UpdateInput]) -> Result<Value, RequestError> {
    check_count(inputs.len())?;
    check_unique(
        "objectWriteTraceId",
        inputs.iter().map(|i| i.trace_id.as_str()),
        false,
    )?;
    check_unique("id", inputs.iter().map(|i| i.id.as_str()), false)?;
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|input| {
            json!({
                "id": input.id,
                "properties": input.properties,
                "objectWriteTraceId": input.trace_id,
            })
        })
        .collect();
    Ok(json!({ "inputs": inputs }))
}

/// `POST .../batch/upsert`: records by the value of the unique property `id_property`.
pub fn upsert_body(id_property: &str, inputs: &[UpsertInput]) -> Result<Value, RequestError> {
    check_count(inputs.len())?;
    if id_property.is_empty() {
        return Err(RequestError::Empty {
            field: "idProperty",
        });
    }
    check_unique(
        "objectWriteTraceId",
        inputs.iter().map(|i| i.trace_id.as_str()),
        false,
    )?;
    check_unique(
        "id",
        inputs.iter().map(|i| i.id.as_str()),
        folds_case(id_property),
    )?;
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|input| {
            json!({
                "id": input.id,
                "idProperty": id_property,
                "properties": input.properties,
                "objectWriteTraceId": input.trace_id,
            })
        })
        .collect();
    Ok(json!({ "inputs": inputs }))
}

/// `POST .../batch/read`. Reading by a unique property asks for that property too, so that
/// each result can be matched to the id it answers.
pub fn read_body(
    ids: &[String],
    id_property: Option<&str>,
    properties: &[String],
) -> Result<Value, RequestError> {
    check_count(ids.len())?;
    check_unique(
        "id",
        ids.iter().map(String::as_str),
        id_property.is_some_and(folds_case),
    )?;
    let mut names: Vec<&str> = properties.iter().map(String::as_str).collect();
    if let Some(property) = id_property
        && !names.contains(&property)
    {
        names.push(property);
    }
    let mut body = json!({
        "inputs": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        "properties": names,
    });
    if let Some(property) = id_property {
        body["idProperty"] = json!(property);
    }
    Ok(body)
}

/// `POST .../batch/read` with `propertiesWithHistory`: at most 50 inputs, by record id.
/// `properties` are read as current values, `with_history` with every version.
pub fn read_history_body(
    ids: &[String],
    properties: &[String],
    with_history: &[String],
) -> Result<Value, RequestError> {
    if ids.len() > MAX_HISTORY_INPUTS {
        return Err(RequestError::TooManyInputs {
            count: ids.len(),
            max: MAX_HISTORY_INPUTS,
        });
    }
    check_unique("id", ids.iter().map(String::as_str), false)?;
    Ok(json!({
        "inputs": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        "properties": properties,
        "propertiesWithHistory": with_history,
        "archived": false,
    }))
}

/// `POST /crm/v4/associations/{from}/{to}/batch/create`.
pub fn associations_body(inputs: &[AssociationInput]) -> Result<Value, RequestError> {
    check_count(inputs.len())?;
    check_unique(
        "trace id",
        inputs.iter().map(|i| i.trace_id.as_str()),
        false,
    )?;
    let mut pairs = HashSet::new();
    for input in inputs {
        if input.types.is_empty() {
            return Err(RequestError::Empty {
                field: "association types",
            });
        }
        if !pairs.insert((input.from_id.as_str(), input.to_id.as_str())) {
            return Err(RequestError::Duplicate {
                field: "association",
                value: format!("{} -> {}", input.from_id, input.to_id),
            });
        }
    }
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|input| {
            json!({
                "from": {"id": input.from_id},
                "to": {"id": input.to_id},
                "types": input.types,
            })
        })
        .collect();
    Ok(json!({ "inputs": inputs }))
}

// ----- search -----

/// Search operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operator {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    HasProperty,
    NotHasProperty,
    ContainsToken,
    NotContainsToken,
}

/// One search filter; build it with the constructors so that the operator and its values agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub property_name: String,
    pub operator: Operator,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

impl Filter {
    /// `EQ`, `NEQ`, `LT`, `LTE`, `GT`, `GTE`, `CONTAINS_TOKEN`, `NOT_CONTAINS_TOKEN` with one value.
    pub fn compare(
        property: impl Into<String>,
        operator: Operator,
        value: impl Into<String>,
    ) -> Self {
        Filter {
            property_name: property.into(),
            operator,
            value: Some(value.into()),
            high_value: None,
            values: None,
        }
    }

    pub fn eq(property: impl Into<String>, value: impl Into<String>) -> Self {
        Self::compare(property, Operator::Eq, value)
    }

    pub fn gte(property: impl Into<String>, value: impl Into<String>) -> Self {
        Self::compare(property, Operator::Gte, value)
    }

    pub fn between(
        property: impl Into<String>,
        low: impl Into<String>,
        high: impl Into<String>,
    ) -> Self {
        Filter {
            property_name: property.into(),
            operator: Operator::Between,
            value: Some(low.into()),
            high_value: Some(high.into()),
            values: None,
        }
    }

    /// `IN` (or `NOT_IN` with `negate`).
    pub fn in_values(property: impl Into<String>, values: Vec<String>, negate: bool) -> Self {
        Filter {
            property_name: property.into(),
            operator: if negate {
                Operator::NotIn
            } else {
                Operator::In
            },
            value: None,
            high_value: None,
            values: Some(values),
        }
    }

    /// `HAS_PROPERTY` (or `NOT_HAS_PROPERTY` with `negate`).
    pub fn has_property(property: impl Into<String>, negate: bool) -> Self {
        Filter {
            property_name: property.into(),
            operator: if negate {
                Operator::NotHasProperty
            } else {
                Operator::HasProperty
            },
            value: None,
            high_value: None,
            values: None,
        }
    }
}

/// Filters that must all match; groups are alternatives.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct FilterGroup {
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SortDirection {
    Ascending,
    Descending,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sort {
    pub property_name: String,
    pub direction: SortDirection,
}

/// One search page to ask for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchRequest {
    pub filter_groups: Vec<FilterGroup>,
    pub sorts: Vec<Sort>,
    /// Free-text query over the type's default searchable properties.
    pub query: Option<String>,
    /// Properties to return; empty: the type's defaults.
    pub properties: Vec<String>,
    /// Results per page, 1 to 200; `None`: HubSpot's default (10).
    pub limit: Option<u32>,
    /// The cursor from the previous page.
    pub after: Option<String>,
}

/// `POST .../search`, checked against HubSpot's limits on groups, filters and page size.
pub fn search_body(search: &SearchRequest) -> Result<Value, RequestError> {
    if search.filter_groups.len() > MAX_FILTER_GROUPS {
        return Err(RequestError::Search(format!(
            "{} filter groups, hubspot takes at most {MAX_FILTER_GROUPS}",
            search.filter_groups.len()
        )));
    }
    if let Some(group) = search
        .filter_groups
        .iter()
        .find(|g| g.filters.len() > MAX_FILTERS_PER_GROUP)
    {
        return Err(RequestError::Search(format!(
            "{} filters in one group, hubspot takes at most {MAX_FILTERS_PER_GROUP}",
            group.filters.len()
        )));
    }
    let total: usize = search.filter_groups.iter().map(|g| g.filters.len()).sum();
    if total > MAX_FILTERS {
        return Err(RequestError::Search(format!(
            "{total} filters in all, hubspot takes at most {MAX_FILTERS}"
        )));
    }
    if let Some(limit) = search.limit
        && !(1..=MAX_SEARCH_LIMIT).contains(&limit)
    {
        return Err(RequestError::Search(format!(
            "limit {limit} is outside 1..={MAX_SEARCH_LIMIT}"
        )));
    }
    let mut body = json!({
        "filterGroups": search.filter_groups,
        "sorts": search.sorts,
        "properties": search.properties,
    });
    if let Some(limit) = search.limit {
        body["limit"] = json!(limit);
    }
    if let Some(after) = &search.after {
        body["after"] = json!(after);
    }
    if let Some(query) = &search.query {
        body["query"] = json!(query);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn upsert_names_the_id_property_and_traces_every_input() {
        let body = upsert_body(
            "email",
            &[UpsertInput {
                trace_id: "evt-7".into(),
                id: "ada@example.com".into(),
                properties: props(&[("firstname", "Ada")]),
            }],
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"inputs": [{
                "id": "ada@example.com",
                "idProperty": "email",
                "properties": {"firstname": "Ada"},
                "objectWriteTraceId": "evt-7",
            }]})
        );
    }

    #[test]
    fn update_uses_record_ids_and_keeps_empty_strings_to_clear() {
        let body = update_body(&[UpdateInput {
            trace_id: "t1".into(),
            id: "101".into(),
            properties: props(&[("jobtitle", "")]),
        }])
        .unwrap();
        assert_eq!(
            body,
            json!({"inputs": [{"id": "101", "properties": {"jobtitle": ""}, "objectWriteTraceId": "t1"}]})
        );
    }

    #[test]
    fn create_carries_inline_associations_only_when_given() {
        let body = create_body(&[
            CreateInput {
                trace_id: "a".into(),
                properties: props(&[("hs_timestamp", "1700000000000"), ("hs_note_body", "hi")]),
                associations: vec![InlineAssociation {
                    to_id: "42".into(),
                    types: vec![AssociationType::hubspot_defined(202)],
                }],
            },
            CreateInput {
                trace_id: "b".into(),
                properties: props(&[("email", "b@example.org")]),
                associations: vec![],
            },
        ])
        .unwrap();
        assert_eq!(
            body["inputs"][0]["associations"],
            json!([{"to": {"id": "42"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}])
        );
        assert_eq!(body["inputs"][0]["objectWriteTraceId"], "a");
        assert!(body["inputs"][1].get("associations").is_none());
    }

    #[test]
    fn read_by_unique_property_asks_for_that_property() {
        let body = read_body(
            &["a@example.org".into(), "b@example.org".into()],
            Some("email"),
            &["firstname".into()],
        )
        .unwrap();
        assert_eq!(
            body,
            json!({
                "inputs": [{"id": "a@example.org"}, {"id": "b@example.org"}],
                "idProperty": "email",
                "properties": ["firstname", "email"],
            })
        );
        let by_id = read_body(&["1".into()], None, &[]).unwrap();
        assert!(by_id.get("idProperty").is_none());
    }

    #[test]
    fn more_than_100_inputs_are_refused_before_sending() {
        let inputs: Vec<UpdateInput> = (0..101)
            .map(|i| UpdateInput {
                trace_id: format!("t{i}"),
                id: i.to_string(),
                properties: Properties::new(),
            })
            .collect();
        assert_eq!(
            update_body(&inputs),
            Err(RequestError::TooManyInputs {
                count: 101,
                max: 100
            })
        );
        assert!(update_body(&inputs[..100]).is_ok());
    }

    #[test]
    fn repeated_records_and_trace_ids_are_refused() {
        let twice = |trace: &str, id: &str| UpsertInput {
            trace_id: trace.into(),
            id: id.into(),
            properties: Properties::new(),
        };
        let error = upsert_body(
            "email",
            &[twice("1", "x@example.org"), twice("2", "X@example.org")],
        )
        .unwrap_err();
        assert_eq!(
            error,
            RequestError::Duplicate {
                field: "id",
                value: "X@example.org".into()
            }
        );
        // A custom unique property is compared exactly.
        assert!(upsert_body("external_id", &[twice("1", "A"), twice("2", "a")]).is_ok());
        assert!(matches!(
            upsert_body("email", &[twice("1", "a@x.io"), twice("1", "b@x.io")]),
            Err(RequestError::Duplicate {
                field: "objectWriteTraceId",
                ..
            })
        ));
        assert_eq!(
            upsert_body("email", &[twice("", "a@x.io")]),
            Err(RequestError::Empty {
                field: "objectWriteTraceId"
            })
        );
    }

    #[test]
    fn association_inputs_name_both_ends_and_their_types() {
        let body = associations_body(&[AssociationInput {
            trace_id: "l1".into(),
            from_id: "1".into(),
            to_id: "2".into(),
            types: vec![AssociationType::hubspot_defined(1)],
        }])
        .unwrap();
        assert_eq!(
            body,
            json!({"inputs": [{"from": {"id": "1"}, "to": {"id": "2"},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]}]})
        );
        assert_eq!(
            default_association_type(ObjectType::Notes, ObjectType::Contacts),
            Some(202)
        );
        assert_eq!(
            default_association_type(ObjectType::Contacts, ObjectType::Companies),
            Some(279)
        );
        assert_eq!(
            default_association_type(ObjectType::Notes, ObjectType::Calls),
            None
        );
    }

    #[test]
    fn search_body_serializes_operators_and_values() {
        let search = SearchRequest {
            filter_groups: vec![
                FilterGroup {
                    filters: vec![
                        Filter::gte("hs_lastmodifieddate", "1700000000000"),
                        Filter::has_property("email", false),
                    ],
                },
                FilterGroup {
                    filters: vec![
                        Filter::in_values("domain", vec!["a.io".into(), "b.io".into()], false),
                        Filter::between("numberofemployees", "10", "20"),
                    ],
                },
            ],
            sorts: vec![Sort {
                property_name: "hs_lastmodifieddate".into(),
                direction: SortDirection::Ascending,
            }],
            query: None,
            properties: vec!["email".into()],
            limit: Some(200),
            after: Some("200".into()),
        };
        assert_eq!(
            search_body(&search).unwrap(),
            json!({
                "filterGroups": [
                    {"filters": [
                        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "1700000000000"},
                        {"propertyName": "email", "operator": "HAS_PROPERTY"},
                    ]},
                    {"filters": [
                        {"propertyName": "domain", "operator": "IN", "values": ["a.io", "b.io"]},
                        {"propertyName": "numberofemployees", "operator": "BETWEEN", "value": "10", "highValue": "20"},
                    ]},
                ],
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                "properties": ["email"],
                "limit": 200,
                "after": "200",
            })
        );
    }

    #[test]
    fn search_limits_are_checked_before_sending() {
        let too_big = SearchRequest {
            limit: Some(201),
            ..SearchRequest::default()
        };
        assert!(matches!(
            search_body(&too_big),
            Err(RequestError::Search(_))
        ));
        let group = FilterGroup {
            filters: (0..6).map(|i| Filter::eq(format!("p{i}"), "x")).collect(),
        };
        let too_many = SearchRequest {
            filter_groups: vec![group.clone(); 5],
            ..SearchRequest::default()
        };
        let message = search_body(&too_many).unwrap_err().to_string();
        assert!(message.contains("30 filters in all"), "{message}");
    }

    #[test]
    fn history_reads_take_at_most_50_distinct_ids() {
        let ids: Vec<String> = (1..=50).map(|i| i.to_string()).collect();
        let body = read_history_body(
            &ids[..2],
            &["createdate".into()],
            &["firstname".into(), "email".into()],
        )
        .unwrap();
        assert_eq!(
            body,
            json!({
                "inputs": [{"id": "1"}, {"id": "2"}],
                "properties": ["createdate"],
                "propertiesWithHistory": ["firstname", "email"],
                "archived": false,
            })
        );
        assert!(read_history_body(&ids, &[], &["firstname".into()]).is_ok());
        let mut too_many = ids.clone();
        too_many.push("51".into());
        assert_eq!(
            read_history_body(&too_many, &[], &[]),
            Err(RequestError::TooManyInputs { count: 51, max: 50 })
        );
        assert!(matches!(
            read_history_body(&["7".into(), "7".into()], &[], &[]),
            Err(RequestError::Duplicate { field: "id", .. })
        ));
    }

    #[test]
    fn archived_and_list_reads_name_their_pages() {
        assert_eq!(objects_path(ObjectType::Deals), "/crm/v3/objects/deals");
        assert_eq!(
            archived_query(100, Some("abc"), &["email".into(), "firstname".into()]).unwrap(),
            [
                ("archived", "true".to_owned()),
                ("limit", "100".to_owned()),
                ("after", "abc".to_owned()),
                ("properties", "email".to_owned()),
                ("properties", "firstname".to_owned()),
            ]
        );
        assert_eq!(
            archived_query(101, None, &[]),
            Err(RequestError::Limit {
                limit: 101,
                max: 100
            })
        );
        assert_eq!(list_path("42").unwrap(), "/crm/v3/lists/42");
        assert_eq!(
            list_memberships_path("42").unwrap(),
            "/crm/v3/lists/42/memberships/join-order"
        );
        assert_eq!(
            memberships_query(250, Some("x")).unwrap(),
            [("limit", "250".to_owned()), ("after", "x".to_owned())]
        );
        assert!(memberships_query(0, None).is_err());
        assert!(memberships_query(251, None).is_err());
        for bad in ["", "../owners", "12 3", "a1"] {
            assert!(
                matches!(list_path(bad), Err(RequestError::NotAnId { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn paths_and_owner_queries() {
        assert_eq!(
            batch_path(ObjectType::Contacts, "upsert"),
            "/crm/v3/objects/contacts/batch/upsert"
        );
        assert_eq!(
            search_path(ObjectType::Companies),
            "/crm/v3/objects/companies/search"
        );
        assert_eq!(
            associations_create_path(ObjectType::Notes, ObjectType::Contacts),
            "/crm/v4/associations/notes/contacts/batch/create"
        );
        let query = owners_query(Some("a@b.io"), Some("100"));
        assert!(query.contains(&("email", "a@b.io".to_owned())));
        assert!(query.contains(&("after", "100".to_owned())));
        assert!(query.contains(&("limit", "100".to_owned())));
    }
}
