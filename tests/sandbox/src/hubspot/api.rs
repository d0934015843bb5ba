//! HubSpot's public endpoints: objects (single and batch), search, properties, owners,
//! associations v4 and account details.

use super::model::Emulated;
use std::collections::{BTreeSet, HashSet};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::HubSpotSandbox;
use super::errors::{ApiError, InputError};
use super::model::{
    FIELD_TYPES, ObjectType, PropertyDef, PropertyOption, PropertyType, association_label,
    association_target, default_association_type, object_type_id,
};
use super::query::Params;
use super::search::SearchRequest;
use super::store::{ChangeSource, PreparedWrite, Record, Store};
use crate::clock::rfc3339_ms;

pub const MAX_BATCH: usize = 100;
const MAX_BATCH_WITH_HISTORY: usize = 50;

type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<HubSpotSandbox> {
    Router::new()
        .route(
            "/crm/v3/objects/{object_type}",
            get(list_objects).post(create_object),
        )
        .route("/crm/v3/objects/{object_type}/search", post(search))
        .route("/crm/v3/objects/{object_type}/merge", post(merge))
        .route(
            "/crm/v3/objects/{object_type}/gdpr-delete",
            post(gdpr_delete),
        )
        .route("/crm/v3/objects/{object_type}/batch/{op}", post(batch))
        .route(
            "/crm/v3/objects/{object_type}/{id}",
            get(get_object).patch(update_object).delete(archive_object),
        )
        .route(
            "/crm/v3/properties/{object_type}",
            get(list_properties).post(create_property),
        )
        .route("/crm/v3/properties/{object_type}/{name}", get(get_property))
        .route("/crm/v3/owners", get(list_owners))
        // HubSpot's SDKs call the owners list with a trailing slash.
        .route("/crm/v3/owners/", get(list_owners))
        .route("/crm/v3/owners/{owner_id}", get(get_owner))
        .route(
            "/crm/v4/associations/{from}/{to}/batch/create",
            post(associations_create),
        )
        .route(
            "/crm/v4/associations/{from}/{to}/batch/associate/default",
            post(associations_default),
        )
        .route(
            "/crm/v4/associations/{from}/{to}/batch/read",
            post(associations_read),
        )
        .route(
            "/crm/v4/associations/{from}/{to}/batch/archive",
            post(associations_archive),
        )
        .route(
            "/crm/v4/objects/{from}/{id}/associations/{to}",
            get(associations_of),
        )
        .route("/account-info/v3/details", get(account_details))
        .route(
            "/account-info/v3/api-usage/daily/private-apps",
            get(api_usage),
        )
}

// ----- shared helpers -----

pub(super) fn object_type(raw: &str) -> Result<ObjectType, ApiError> {
    ObjectType::parse(raw).ok_or_else(|| ApiError::unknown_object_type(raw))
}

pub(super) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid_json(&e))
}

fn id_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn check_batch_size(count: usize, max: usize) -> Result<(), ApiError> {
    if count > max {
        return Err(ApiError::validation(format!(
            "Batch input size {count} exceeds the limit of {max} inputs per request."
        )));
    }
    Ok(())
}

/// `limit` within `1..=max` (absent: `default`).
fn page_limit(limit: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {max}, got {limit}"
        )));
    }
    Ok(limit)
}

/// A paging cursor this sandbox handed out earlier (absent: the first page).
fn page_after<T: std::str::FromStr + Default>(after: Option<&str>) -> Result<T, ApiError> {
    match after {
        None | Some("") => Ok(T::default()),
        Some(raw) => raw.parse().map_err(|_| {
            ApiError::validation(format!(
                "after must be a paging cursor from a previous response, got {raw}"
            ))
        }),
    }
}

/// `{"status":"COMPLETE","results",...}`, with `numErrors`/`errors` when any; 207 when errors exist.
fn batch_response(
    ok_status: StatusCode,
    results: Vec<Value>,
    errors: Vec<Value>,
    started_ms: i64,
    now_ms: i64,
) -> Response {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "requestedAt": rfc3339_ms(started_ms),
        "startedAt": rfc3339_ms(started_ms),
        "completedAt": rfc3339_ms(now_ms),
    });
    let status = if errors.is_empty() {
        ok_status
    } else {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
        StatusCode::MULTI_STATUS
    };
    (status, Json(body)).into_response()
}

/// The properties a write answers with: the type's defaults plus every property written.
fn written_names(object_type: ObjectType, input: &Map<String, Value>) -> Vec<String> {
    let mut names: BTreeSet<String> = object_type
        .default_read_properties()
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    names.extend(input.keys().cloned());
    names.into_iter().collect()
}

fn record_json(
    store: &Store,
    object_type: ObjectType,
    id: u64,
    names: &[String],
    trace: Option<&str>,
) -> Value {
    let mut value = store
        .get(object_type, id)
        .map(|r| r.to_json(object_type, Some(names)))
        .unwrap_or(Value::Null);
    if let Some(trace) = trace {
        value["objectWriteTraceId"] = json!(trace);
    }
    value
}

// ----- single objects -----

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreateInput {
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    associations: Vec<InlineAssociation>,
    #[serde(default)]
    object_write_trace_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct InlineAssociation {
    to: IdRef,
    #[serde(default)]
    types: Vec<AssociationTypeRef>,
}

#[derive(Debug, Deserialize)]
struct IdRef {
    id: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociationTypeRef {
    #[serde(default = "hubspot_defined")]
    association_category: String,
    association_type_id: u32,
}

fn hubspot_defined() -> String {
    "HUBSPOT_DEFINED".to_string()
}

type Link = (ObjectType, u64, u32);

/// Validates a create and its inline associations without committing anything.
fn prepare_create(
    store: &Store,
    object_type: ObjectType,
    input: &CreateInput,
    batch_unique: &mut HashSet<(String, String)>,
) -> Result<(PreparedWrite, Vec<Link>), InputError> {
    let write = store.prepare(object_type, None, &input.properties, batch_unique)?;
    let mut links = Vec::new();
    for association in &input.associations {
        if association.types.is_empty() {
            return Err(InputError::Invalid(
                "an association needs at least one type".into(),
            ));
        }
        for kind in &association.types {
            let to_type =
                association_target(object_type, kind.association_type_id).ok_or_else(|| {
                    InputError::Invalid(format!(
                        "{} is not a valid association type id from {}",
                        kind.association_type_id,
                        object_type.upper_singular()
                    ))
                })?;
            let to_id = store.check_association(
                object_type,
                to_type,
                &id_text(&association.to.id),
                kind.association_type_id,
                &kind.association_category,
            )?;
            links.push((to_type, to_id, kind.association_type_id));
        }
    }
    Ok((write, links))
}

fn commit_create(
    store: &mut Store,
    object_type: ObjectType,
    write: PreparedWrite,
    links: Vec<Link>,
    now: i64,
    source: ChangeSource,
) -> u64 {
    let id = store.commit(object_type, write, now, source);
    for (to_type, to_id, type_id) in links {
        store.associate(object_type, id, to_type, to_id, type_id, now, source);
    }
    id
}

async fn create_object(
    State(sandbox): State<HubSpotSandbox>,
    Extension(source): Extension<ChangeSource>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let object_type = object_type(&raw_type)?;
    let input: CreateInput = parse_body(&body)?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    let (write, links) = prepare_create(&state.store, object_type, &input, &mut HashSet::new())
        .map_err(InputError::into_api_error)?;
    let id = commit_create(&mut state.store, object_type, write, links, now, source);
    let names = written_names(object_type, &input.properties);
    Ok((
        StatusCode::CREATED,
        Json(record_json(&state.store, object_type, id, &names, None)),
    )
        .into_response())
}

/// The query parameters of object reads and updates.
#[derive(Debug, Default)]
struct ReadQuery {
    properties: Option<Vec<String>>,
    properties_with_history: Option<Vec<String>>,
    associations: Option<Vec<String>>,
    id_property: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
    /// `archived=true`: only archived records (HubSpot keeps them 90 days).
    archived: bool,
}

impl ReadQuery {
    fn of(params: &Params) -> Result<Self, ApiError> {
        Ok(ReadQuery {
            properties: params.list("properties"),
            properties_with_history: params
                .list("propertiesWithHistory")
                .filter(|names| !names.is_empty()),
            associations: params.list("associations"),
            id_property: params.first("idProperty").map(str::to_string),
            limit: params.number("limit")?,
            after: params.first("after").map(str::to_string),
            archived: params.flag("archived")?.unwrap_or(false),
        })
    }

    /// The object types `associations` names; an unknown one is a 400.
    fn association_types(&self) -> Result<Vec<ObjectType>, ApiError> {
        self.associations
            .iter()
            .flatten()
            .map(|raw| object_type(raw))
            .collect()
    }
}

fn resolve_or_404(
    store: &Store,
    object_type: ObjectType,
    id: &str,
    id_property: Option<&str>,
) -> Result<u64, ApiError> {
    store
        .resolve(object_type, id, id_property)
        .map_err(InputError::into_api_error)?
        .ok_or_else(|| ApiError::not_found("resource not found"))
}

async fn get_object(
    State(sandbox): State<HubSpotSandbox>,
    Path((raw_type, id)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    let object_type = object_type(&raw_type)?;
    let query = ReadQuery::of(&params)?;
    let to_types = query.association_types()?;
    let now = sandbox.now_ms();
    let state = sandbox.lock();
    let record = if query.archived {
        state
            .store
            .resolve_archived(object_type, &id, query.id_property.as_deref(), now)
            .and_then(|id| state.store.get_archived(object_type, id, now))
    } else {
        let id = resolve_or_404(&state.store, object_type, &id, query.id_property.as_deref())?;
        state.store.get(object_type, id)
    };
    let Some(record) = record else {
        return Err(ApiError::not_found("resource not found"));
    };
    Ok(Json(read_json(
        &state.store,
        object_type,
        record,
        &query,
        &to_types,
    ))
    .into_response())
}

/// One record as a read answers it: the properties asked (or the defaults),
/// `propertiesWithHistory` when asked, and its associations towards the types asked (the key
/// is left out when it has none).
fn read_json(
    store: &Store,
    object_type: ObjectType,
    record: &Record,
    query: &ReadQuery,
    to_types: &[ObjectType],
) -> Value {
    let mut value = record.to_json(object_type, query.properties.as_deref());
    if let Some(names) = &query.properties_with_history {
        value["propertiesWithHistory"] = record.history_json(names);
    }
    let mut associations = Map::new();
    for &to_type in to_types {
        let kind = format!(
            "{}_to_{}",
            object_type.upper_singular().to_ascii_lowercase(),
            to_type.upper_singular().to_ascii_lowercase()
        );
        let results: Vec<Value> = store
            .associations_of(object_type, record.id, to_type)
            .into_iter()
            .flat_map(|(to_id, types)| {
                let kind = kind.clone();
                types.into_iter().map(move |type_id| {
                    json!({"id": to_id.to_string(), "type": kind, "typeId": type_id})
                })
            })
            .collect();
        if !results.is_empty() {
            associations.insert(to_type.path_name().to_string(), json!({"results": results}));
        }
    }
    if !associations.is_empty() {
        value["associations"] = Value::Object(associations);
    }
    value
}

#[derive(Debug, Deserialize)]
struct PropertiesBody {
    #[serde(default)]
    properties: Map<String, Value>,
}

async fn update_object(
    State(sandbox): State<HubSpotSandbox>,
    Extension(source): Extension<ChangeSource>,
    Path((raw_type, id)): Path<(String, String)>,
    params: Params,
    body: Bytes,
) -> ApiResult {
    let object_type = object_type(&raw_type)?;
    let query = ReadQuery::of(&params)?;
    let input: PropertiesBody = parse_body(&body)?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    let id = resolve_or_404(&state.store, object_type, &id, query.id_property.as_deref())?;
    state
        .store
        .write_one(object_type, Some(id), &input.properties, now, source)
        .map_err(InputError::into_api_error)?;
    let names = written_names(object_type, &input.properties);
    Ok(Json(record_json(&state.store, object_type, id, &names, None)).into_response())
}

async fn archive_object(
    State(sandbox): State<HubSpotSandbox>,
    Extension(source): Extension<ChangeSource>,
    Path((raw_type, id)): Path<(String, String)>,
) -> ApiResult {
    let object_type = object_type(&raw_type)?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    // HubSpot answers 204 whether or not the record existed.
    if let Ok(Some(id)) = state.store.resolve(object_type, &id, None) {
        state.store.archive(object_type, id, now, source);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_objects(
    State(sandbox): State<HubSpotSandbox>,
    Path(raw_type): Path<String>,
    params: Params,
) -> ApiResult {
    let object_type = object_type(&raw_type)?;
    let query = ReadQuery::of(&params)?;
    let to_types = query.association_types()?;
    let limit = page_limit(query.limit, 10, MAX_BATCH)?;
    let after: u64 = page_after(query.after.as_deref())?;
    let now = sandbox.now_ms();
    let state = sandbox.lock();
    let records: Box<dyn Iterator<Item = &Record>> = if query.archived {
        Box::new(state.store.archived_records(object_type, now))
    } else {
        Box::new(state.store.records(object_type))
    };
    let mut page: Vec<_> = records.filter(|r| r.id >= after).take(limit + 1).collect();
    let next = (page.len() > limit)
        .then(|| page.pop().map(|r| r.id))
        .flatten();
    let results: Vec<Value> = page
        .iter()
        .map(|r| read_json(&state.store, object_type, r, &query, &to_types))
        .collect();
    let mut body = json!({"results": results});
    if let Some(next) = next {
        body["paging"] = json!({"next": {"after": next.to_string()}});
    }
    Ok(Json(body).into_response())
}

// ----- merges and GDPR deletes -----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MergeBody {
    primary_object_id: Option<Value>,
    object_id_to_merge: Option<Value>,
}

/// The records of a merge, checked: its type can merge, both ids are given.
pub(super) fn merge_ids(object_type: ObjectType, body: &Bytes) -> Result<(u64, u64), ApiError> {
    if !matches!(
        object_type,
        ObjectType::Contacts | ObjectType::Companies | ObjectType::Deals
    ) {
        return Err(ApiError::validation(format!(
            "Merging is not supported for {} objects",
            object_type.upper_singular()
        )));
    }
    let input: MergeBody = parse_body(body)?;
    let id = |value: Option<&Value>, field: &str| {
        let raw = value
            .map(id_text)
            .ok_or_else(|| ApiError::validation(format!("{field} is required")))?;
        raw.trim()
            .parse::<u64>()
            .map_err(|_| ApiError::validation(format!("{field} must be a record id, got {raw}")))
    };
    Ok((
        id(input.primary_object_id.as_ref(), "primaryObjectId")?,
        id(input.object_id_to_merge.as_ref(), "objectIdToMerge")?,
    ))
}

/// Merges and answers the record that survived, as HubSpot's merge endpoint does.
pub(super) fn merge_as(
    sandbox: &HubSpotSandbox,
    object_type: ObjectType,
    (primary, merged): (u64, u64),
    source: ChangeSource,
) -> ApiResult {
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    let primary = state.store.live_id(object_type, primary).unwrap_or(primary);
    let merged = state.store.live_id(object_type, merged).unwrap_or(merged);
    state
        .store
        .merge(object_type, primary, merged, now, source)
        .map_err(InputError::into_api_error)?;
    let names: Vec<String> = object_type
        .default_read_properties()
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    Ok(Json(record_json(
        &state.store,
        object_type,
        primary,
        &names,
        None,
    ))
    .into_response())
}

async fn merge(
    State(sandbox): State<HubSpotSandbox>,
    Extension(source): Extension<ChangeSource>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let object_type = object_type(&raw_type)?;
    let ids = merge_ids(object_type, &body)?;
    merge_as(&sandbox, object_type, ids, source)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GdprBody {
    object_id: Option<Value>,
    #[serde(default)]
    id_property: Option<String>,
}

/// What a GDPR delete names: an id (or, with `idProperty` `email`, an email).
pub(super) type GdprTarget = (String, Option<String>);

/// `{objectId, idProperty?}` of a GDPR delete, checked: contacts only.
pub(super) fn gdpr_request(object_type: ObjectType, body: &Bytes) -> Result<GdprTarget, ApiError> {
    if object_type != ObjectType::Contacts {
        return Err(ApiError::not_found(
            "Unable to find a route for this request.",
        ));
    }
    let input: GdprBody = parse_body(body)?;
    let id = input
        .object_id
        .as_ref()
        .map(id_text)
        .ok_or_else(|| ApiError::validation("objectId is required"))?;
    match input.id_property.as_deref() {
        None | Some("hs_object_id") | Some("email") => Ok((id, input.id_property)),
        Some(other) => Err(ApiError::validation(format!(
            "idProperty {other} is not supported for a GDPR delete; use email or hs_object_id"
        ))),
    }
}

/// Deletes a contact for good (204); by an email no contact has, blocks the email (204);
/// by an id no contact has, 404.
pub(super) fn gdpr_delete_as(
    sandbox: &HubSpotSandbox,
    (id, id_property): GdprTarget,
    source: ChangeSource,
) -> ApiResult {
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    let store = &mut state.store;
    let by_email = id_property.as_deref() == Some("email");
    let found = store
        .resolve(ObjectType::Contacts, &id, id_property.as_deref())
        .map_err(InputError::into_api_error)?
        .or_else(|| store.resolve_archived(ObjectType::Contacts, &id, id_property.as_deref(), now));
    match found {
        Some(contact) => {
            store.gdpr_delete(contact, now, source);
        }
        None if by_email => store.gdpr_block(&id),
        None => return Err(InputError::NotFound { id }.into_api_error()),
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn gdpr_delete(
    State(sandbox): State<HubSpotSandbox>,
    Extension(source): Extension<ChangeSource>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let object_type = object_type(&raw_type)?;
    let request = gdpr_request(object_type, &body)?;
    gdpr_delete_as(&sandbox, request, source)
}

// ----- batch -----

#[derive(Debug, Deserialize)]
struct Inputs<T> {
    inputs: Vec<T>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateInput {
    id: Value,
    #[serde(default)]
    id_property: Option<String>,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    object_write_trace_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadBody {
    inputs: Vec<IdRef>,
    #[serde(default)]
    id_property: Option<String>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    properties_with_history: Vec<String>,
}

async fn batch(
    State(sandbox): State<HubSpotSandbox>,
    Extension(source): Extension<ChangeSource>,
    Path((raw_type, op)): Path<(String, String)>,
    params: Params,
    body: Bytes,
) -> ApiResult {
    let object_type = object_type(&raw_type)?;
    let archived = params.flag("archived")?.unwrap_or(false);
    match op.as_str() {
        "create" => batch_create(&sandbox, object_type, parse_body(&body)?, source),
        "update" => batch_update(&sandbox, object_type, parse_body(&body)?, false, source),
        "upsert" => batch_update(&sandbox, object_type, parse_body(&body)?, true, source),
        "read" => batch_read(&sandbox, object_type, parse_body(&body)?, archived),
        "archive" => batch_archive(&sandbox, object_type, parse_body(&body)?, source),
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unknown batch operation {other}: use create, read, update, upsert or archive"),
        )),
    }
}

/// Multi-status answers are on only when every input names itself with `objectWriteTraceId`;
/// otherwise one bad input fails the whole request, as HubSpot does.
fn all_traced<'a>(mut traces: impl Iterator<Item = Option<&'a String>>) -> bool {
    traces.all(|t| t.is_some_and(|t| !t.is_empty()))
}

fn batch_create(
    sandbox: &HubSpotSandbox,
    object_type: ObjectType,
    body: Inputs<CreateInput>,
    source: ChangeSource,
) -> ApiResult {
    check_batch_size(body.inputs.len(), MAX_BATCH)?;
    let multi_status = all_traced(body.inputs.iter().map(|i| i.object_write_trace_id.as_ref()));
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    let mut batch_unique = HashSet::new();
    let prepared: Vec<_> = body
        .inputs
        .iter()
        .map(|input| prepare_create(&state.store, object_type, input, &mut batch_unique))
        .collect();
    // A conflict fails a batch create as a whole and names only the first one.
    if let Some(conflict) = prepared.iter().find_map(|p| match p {
        Err(e @ InputError::Conflict { .. }) => Some(e.clone()),
        _ => None,
    }) {
        return Err(conflict.into_api_error());
    }
    if !multi_status && let Some(Err(first)) = prepared.iter().find(|p| p.is_err()) {
        return Err(first.clone().into_api_error());
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (input, outcome) in body.inputs.iter().zip(prepared) {
        let trace = input.object_write_trace_id.as_deref();
        match outcome {
            Ok((write, links)) => {
                let id = commit_create(&mut state.store, object_type, write, links, now, source);
                let names = written_names(object_type, &input.properties);
                results.push(record_json(&state.store, object_type, id, &names, trace));
            }
            Err(error) => errors.push(error.batch_entry(trace)),
        }
    }
    Ok(batch_response(
        StatusCode::CREATED,
        results,
        errors,
        now,
        now,
    ))
}

fn batch_update(
    sandbox: &HubSpotSandbox,
    object_type: ObjectType,
    body: Inputs<UpdateInput>,
    upsert: bool,
    source: ChangeSource,
) -> ApiResult {
    check_batch_size(body.inputs.len(), MAX_BATCH)?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    let traced = all_traced(body.inputs.iter().map(|i| i.object_write_trace_id.as_ref()));
    let multi_status = traced && (!upsert || state.partial_upserts);

    let mut seen = HashSet::new();
    let mut duplicates = Vec::new();
    for input in &body.inputs {
        let id = id_text(&input.id);
        let key = match input.id_property.as_deref() {
            Some("email") => id.to_ascii_lowercase(),
            _ => id.clone(),
        };
        if !seen.insert(key) {
            duplicates.push(id);
        }
    }
    if !duplicates.is_empty() {
        return Err(ApiError::validation(format!(
            "Duplicate IDs found in batch input: [{}]. IDs must be unique",
            duplicates.join(", ")
        )));
    }

    let mut batch_unique = HashSet::new();
    let prepared: Vec<Result<(PreparedWrite, bool), InputError>> = body
        .inputs
        .iter()
        .map(|input| {
            let id = id_text(&input.id);
            if upsert {
                let property = input.id_property.as_deref().ok_or_else(|| {
                    InputError::Invalid("idProperty is required for upsert: name a property with unique values, such as email".into())
                })?;
                let existing = state.store.resolve(object_type, &id, Some(property))?;
                let mut properties = input.properties.clone();
                if existing.is_none() {
                    properties
                        .entry(property.to_string())
                        .or_insert_with(|| Value::String(id.clone()));
                }
                let write = state.store.prepare(object_type, existing, &properties, &mut batch_unique)?;
                Ok((write, existing.is_none()))
            } else {
                let existing = state
                    .store
                    .resolve(object_type, &id, input.id_property.as_deref())?
                    .ok_or(InputError::NotFound { id: id.clone() })?;
                let write = state.store.prepare(object_type, Some(existing), &input.properties, &mut batch_unique)?;
                Ok((write, false))
            }
        })
        .collect();
    if !multi_status && let Some(Err(first)) = prepared.iter().find(|p| p.is_err()) {
        return Err(first.clone().into_api_error());
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (input, outcome) in body.inputs.iter().zip(prepared) {
        let trace = input.object_write_trace_id.as_deref();
        match outcome {
            Ok((write, created)) => {
                let id = state.store.commit(object_type, write, now, source);
                let names = written_names(object_type, &input.properties);
                let mut value = record_json(&state.store, object_type, id, &names, trace);
                if upsert {
                    value["new"] = json!(created);
                }
                results.push(value);
            }
            Err(error) => errors.push(error.batch_entry(trace)),
        }
    }
    Ok(batch_response(StatusCode::OK, results, errors, now, now))
}

fn batch_read(
    sandbox: &HubSpotSandbox,
    object_type: ObjectType,
    body: ReadBody,
    archived: bool,
) -> ApiResult {
    let max = if body.properties_with_history.is_empty() {
        MAX_BATCH
    } else {
        MAX_BATCH_WITH_HISTORY
    };
    check_batch_size(body.inputs.len(), max)?;
    let now = sandbox.now_ms();
    let state = sandbox.lock();
    let mut results = Vec::new();
    let mut missing = Vec::new();
    let mut returned = HashSet::new();
    for input in &body.inputs {
        let raw = id_text(&input.id);
        let found = if archived {
            state
                .store
                .resolve_archived(object_type, &raw, body.id_property.as_deref(), now)
        } else {
            state
                .store
                .resolve(object_type, &raw, body.id_property.as_deref())
                .map_err(InputError::into_api_error)?
        };
        match found {
            Some(id) => {
                if !returned.insert(id) {
                    continue;
                }
                let record = if archived {
                    state.store.get_archived(object_type, id, now)
                } else {
                    state.store.get(object_type, id)
                };
                if let Some(record) = record {
                    let mut value = record.to_json(object_type, Some(&body.properties));
                    if !body.properties_with_history.is_empty() {
                        value["propertiesWithHistory"] =
                            record.history_json(&body.properties_with_history);
                    }
                    results.push(value);
                }
            }
            None => missing.push(raw),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!(
                "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                object_type.upper_singular()
            ),
            "context": {"ids": missing},
        })]
    };
    Ok(batch_response(StatusCode::OK, results, errors, now, now))
}

fn batch_archive(
    sandbox: &HubSpotSandbox,
    object_type: ObjectType,
    body: Inputs<IdRef>,
    source: ChangeSource,
) -> ApiResult {
    check_batch_size(body.inputs.len(), MAX_BATCH)?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    for input in &body.inputs {
        if let Ok(Some(id)) = state.store.resolve(object_type, &id_text(&input.id), None) {
            state.store.archive(object_type, id, now, source);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- search -----

async fn search(
    State(sandbox): State<HubSpotSandbox>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let object_type = object_type(&raw_type)?;
    let request: SearchRequest = parse_body(&body)?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    let lag = state.search_lag_ms;
    let indexed = state.store.searchable(object_type, now, lag);
    let defs = state.store.property_defs(object_type);
    let page = request.run(defs, &indexed, object_type.query_properties())?;
    let names: Vec<String> = if request.properties.is_empty() {
        object_type
            .default_read_properties()
            .iter()
            .map(|s| (*s).to_string())
            .collect()
    } else {
        request.properties.clone()
    };
    // Results show what the index holds, which may lag the record's latest write.
    let results: Vec<Value> = page
        .ids
        .iter()
        .filter_map(|id| indexed.iter().find(|(candidate, _)| candidate == id))
        .map(|(id, props)| {
            let properties: Map<String, Value> = names
                .iter()
                .map(|n| {
                    (
                        n.clone(),
                        props
                            .get(n)
                            .filter(|v| !v.is_empty())
                            .map_or(Value::Null, |v| json!(v)),
                    )
                })
                .collect();
            json!({
                "id": id.to_string(),
                "properties": properties,
                "createdAt": props.get("createdate"),
                "updatedAt": props.get("hs_lastmodifieddate"),
                "archived": false,
            })
        })
        .collect();
    let mut body = json!({"total": page.total, "results": results});
    if let Some(next) = page.next_after {
        body["paging"] = json!({"next": {"after": next.to_string()}});
    }
    Ok(Json(body).into_response())
}

// ----- properties -----

async fn list_properties(
    State(sandbox): State<HubSpotSandbox>,
    Path(raw_type): Path<String>,
) -> ApiResult {
    let object_type = object_type(&raw_type)?;
    let state = sandbox.lock();
    let results: Vec<Value> = state
        .store
        .property_defs(object_type)
        .values()
        .map(PropertyDef::to_json)
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

async fn get_property(
    State(sandbox): State<HubSpotSandbox>,
    Path((raw_type, name)): Path<(String, String)>,
) -> ApiResult {
    let object_type = object_type(&raw_type)?;
    let state = sandbox.lock();
    state
        .store
        .property_defs(object_type)
        .get(&name)
        .map(|d| Json(d.to_json()).into_response())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Unable to find property {name} for object type {}",
                object_type_id(object_type)
            ))
        })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewProperty {
    name: Option<String>,
    label: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    field_type: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    options: Vec<PropertyOption>,
    #[serde(default)]
    has_unique_value: bool,
}

async fn create_property(
    State(sandbox): State<HubSpotSandbox>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let object_type = object_type(&raw_type)?;
    let input: NewProperty = parse_body(&body)?;
    let missing: Vec<&str> = [
        ("name", input.name.is_none()),
        ("label", input.label.is_none()),
        ("type", input.kind.is_none()),
        ("fieldType", input.field_type.is_none()),
        ("groupName", input.group_name.is_none()),
    ]
    .iter()
    .filter(|(_, absent)| *absent)
    .map(|(name, _)| *name)
    .collect();
    if !missing.is_empty() {
        return Err(ApiError::validation(format!(
            "Missing required fields: {}",
            missing.join(", ")
        )));
    }
    let name = input.name.unwrap_or_default();
    let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_name {
        return Err(ApiError::validation(format!(
            "Property name {name} is invalid: use lowercase letters, digits and underscores, starting with a letter"
        )));
    }
    let raw_kind = input.kind.unwrap_or_default();
    let kind = PropertyType::parse(&raw_kind).ok_or_else(|| {
        ApiError::validation(format!(
            "type {raw_kind} is not one of bool, date, datetime, enumeration, number, phone_number, string"
        ))
    })?;
    let field_type = input.field_type.unwrap_or_default();
    if !FIELD_TYPES.contains(&field_type.as_str()) {
        return Err(ApiError::validation(format!(
            "fieldType {field_type} is not one of {}",
            FIELD_TYPES.join(", ")
        )));
    }
    if !kind.allowed_field_types().contains(&field_type.as_str()) {
        return Err(ApiError::validation(format!(
            "fieldType {field_type} cannot be used with type {raw_kind}; use one of {}",
            kind.allowed_field_types().join(", ")
        )));
    }
    let mut values = HashSet::new();
    for option in &input.options {
        if option.value.is_empty() || option.label.is_empty() {
            return Err(ApiError::validation(
                "every option needs a label and a value",
            ));
        }
        if !values.insert(option.value.clone()) {
            return Err(ApiError::validation(format!(
                "option value {} appears twice",
                option.value
            )));
        }
    }
    let def = PropertyDef {
        name,
        label: input.label.unwrap_or_default(),
        kind,
        field_type,
        group_name: input.group_name.unwrap_or_default(),
        description: input.description,
        options: input.options,
        has_unique_value: input.has_unique_value,
        read_only: false,
        owner_reference: false,
        created_ms: sandbox.now_ms(),
    };
    let json = def.to_json();
    sandbox
        .lock()
        .store
        .add_property(object_type, def)
        .map_err(|message| ApiError::new(StatusCode::CONFLICT, "OBJECT_ALREADY_EXISTS", message))?;
    Ok((StatusCode::CREATED, Json(json)).into_response())
}

// ----- owners -----

async fn list_owners(State(sandbox): State<HubSpotSandbox>, params: Params) -> ApiResult {
    let limit = page_limit(params.number("limit")?, 100, 500)?;
    let offset: usize = page_after(params.first("after"))?;
    let archived = params.flag("archived")?.unwrap_or(false);
    let email = params.first("email");
    let now = sandbox.now_ms();
    let state = sandbox.lock();
    let matching: Vec<_> = state
        .store
        .owners()
        .iter()
        .filter(|o| o.archived == archived)
        .filter(|o| email.is_none_or(|e| o.email.eq_ignore_ascii_case(e)))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|o| o.to_json(now))
        .collect();
    let mut body = json!({"results": page});
    if offset + limit < matching.len() {
        body["paging"] = json!({"next": {"after": (offset + limit).to_string()}});
    }
    Ok(Json(body).into_response())
}

async fn get_owner(
    State(sandbox): State<HubSpotSandbox>,
    Path(owner_id): Path<String>,
    params: Params,
) -> ApiResult {
    let now = sandbox.now_ms();
    let by_user = match params.first("idProperty") {
        None | Some("id") => false,
        Some("userId") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "idProperty {other} is not one of id, userId"
            )));
        }
    };
    let state = sandbox.lock();
    state
        .store
        .owners()
        .iter()
        .find(|o| {
            if by_user {
                o.user_id.to_string() == owner_id
            } else {
                o.id == owner_id
            }
        })
        .map(|o| Json(o.to_json(now)).into_response())
        .ok_or_else(|| ApiError::not_found(format!("No owner with id {owner_id}")))
}

// ----- associations v4 -----

#[derive(Debug, Deserialize)]
struct AssociationInput {
    from: IdRef,
    to: IdRef,
    #[serde(default)]
    types: Vec<AssociationTypeRef>,
}

fn association_pair(from: &str, to: &str) -> Result<(ObjectType, ObjectType), ApiError> {
    Ok((object_type(from)?, object_type(to)?))
}

fn resolve_from(store: &Store, object_type: ObjectType, id: &Value) -> Result<u64, InputError> {
    let raw = id_text(id);
    store
        .resolve(object_type, &raw, None)?
        .ok_or(InputError::NotFound { id: raw })
}

async fn associations_create(
    State(sandbox): State<HubSpotSandbox>,
    Extension(source): Extension<ChangeSource>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let (from_type, to_type) = association_pair(&from, &to)?;
    let body: Inputs<AssociationInput> = parse_body(&body)?;
    check_batch_size(body.inputs.len(), MAX_BATCH)?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &body.inputs {
        let checked = (|| {
            let from_id = resolve_from(&state.store, from_type, &input.from.id)?;
            if input.types.is_empty() {
                return Err(InputError::Invalid(
                    "an association needs at least one type".into(),
                ));
            }
            let mut links = Vec::new();
            for kind in &input.types {
                let to_id = state.store.check_association(
                    from_type,
                    to_type,
                    &id_text(&input.to.id),
                    kind.association_type_id,
                    &kind.association_category,
                )?;
                links.push((to_id, kind.association_type_id));
            }
            Ok((from_id, links))
        })();
        match checked {
            Ok((from_id, links)) => {
                let mut labels = Vec::new();
                let mut to_id = 0;
                for (target, type_id) in links {
                    state
                        .store
                        .associate(from_type, from_id, to_type, target, type_id, now, source);
                    to_id = target;
                    if let Some(label) = association_label(type_id) {
                        labels.push(label);
                    }
                }
                results.push(json!({
                    "fromObjectTypeId": object_type_id(from_type),
                    "fromObjectId": from_id,
                    "toObjectTypeId": object_type_id(to_type),
                    "toObjectId": to_id,
                    "labels": labels,
                }));
            }
            Err(error) => errors.push(error.batch_entry(None)),
        }
    }
    Ok(batch_response(
        StatusCode::CREATED,
        results,
        errors,
        now,
        now,
    ))
}

async fn associations_default(
    State(sandbox): State<HubSpotSandbox>,
    Extension(source): Extension<ChangeSource>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let (from_type, to_type) = association_pair(&from, &to)?;
    let body: Inputs<AssociationInput> = parse_body(&body)?;
    check_batch_size(body.inputs.len(), MAX_BATCH)?;
    let type_id = default_association_type(from_type, to_type).ok_or_else(|| {
        ApiError::validation(format!(
            "No default association type from {} to {}",
            from_type.upper_singular(),
            to_type.upper_singular()
        ))
    })?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &body.inputs {
        let checked = resolve_from(&state.store, from_type, &input.from.id).and_then(|from_id| {
            let to_id = state.store.check_association(
                from_type,
                to_type,
                &id_text(&input.to.id),
                type_id,
                "HUBSPOT_DEFINED",
            )?;
            Ok((from_id, to_id))
        });
        match checked {
            Ok((from_id, to_id)) => {
                state
                    .store
                    .associate(from_type, from_id, to_type, to_id, type_id, now, source);
                results.push(json!({
                    "from": {"id": from_id.to_string()},
                    "to": {"id": to_id.to_string()},
                    "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id},
                }));
            }
            Err(error) => errors.push(error.batch_entry(None)),
        }
    }
    Ok(batch_response(StatusCode::OK, results, errors, now, now))
}

#[derive(Debug, Deserialize)]
struct ArchiveInput {
    from: IdRef,
    to: Vec<IdRef>,
}

/// Removes every association between each `from` and its `to`s (both ways); 204 whether or
/// not they were linked, as HubSpot answers.
async fn associations_archive(
    State(sandbox): State<HubSpotSandbox>,
    Extension(source): Extension<ChangeSource>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let (from_type, to_type) = association_pair(&from, &to)?;
    let body: Inputs<ArchiveInput> = parse_body(&body)?;
    check_batch_size(body.inputs.len(), MAX_BATCH)?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    for input in &body.inputs {
        let Ok(Some(from_id)) = state
            .store
            .resolve(from_type, &id_text(&input.from.id), None)
        else {
            continue;
        };
        for target in &input.to {
            if let Ok(Some(to_id)) = state.store.resolve(to_type, &id_text(&target.id), None) {
                state
                    .store
                    .dissociate(from_type, from_id, to_type, to_id, now, source);
            }
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn association_targets(
    store: &Store,
    from_type: ObjectType,
    from_id: u64,
    to_type: ObjectType,
) -> Vec<Value> {
    store
        .associations_of(from_type, from_id, to_type)
        .into_iter()
        .map(|(to_id, types)| {
            let types: Vec<Value> = types
                .into_iter()
                .map(|type_id| json!({"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": association_label(type_id)}))
                .collect();
            json!({"toObjectId": to_id, "associationTypes": types})
        })
        .collect()
}

async fn associations_read(
    State(sandbox): State<HubSpotSandbox>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let (from_type, to_type) = association_pair(&from, &to)?;
    let body: Inputs<IdRef> = parse_body(&body)?;
    check_batch_size(body.inputs.len(), 1_000)?;
    let now = sandbox.now_ms();
    let state = sandbox.lock();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &body.inputs {
        match resolve_from(&state.store, from_type, &input.id) {
            Ok(from_id) => results.push(json!({
                "from": {"id": from_id.to_string()},
                "to": association_targets(&state.store, from_type, from_id, to_type),
            })),
            Err(error) => errors.push(error.batch_entry(None)),
        }
    }
    Ok(batch_response(StatusCode::OK, results, errors, now, now))
}

async fn associations_of(
    State(sandbox): State<HubSpotSandbox>,
    Path((from, id, to)): Path<(String, String, String)>,
    params: Params,
) -> ApiResult {
    let (from_type, to_type) = association_pair(&from, &to)?;
    let limit = page_limit(params.number("limit")?, 500, 500)?;
    let offset: usize = page_after(params.first("after"))?;
    let state = sandbox.lock();
    let from_id = resolve_or_404(&state.store, from_type, &id, None)?;
    let all = association_targets(&state.store, from_type, from_id, to_type);
    let more = all.len() > offset + limit;
    let page: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    let mut body = json!({"results": page});
    if more {
        body["paging"] = json!({"next": {"after": (offset + limit).to_string()}});
    }
    Ok(Json(body).into_response())
}

// ----- account -----

async fn account_details(State(sandbox): State<HubSpotSandbox>) -> ApiResult {
    let offset_minutes = sandbox.lock().limiter.limits().utc_offset_minutes;
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let abs = offset_minutes.abs();
    Ok(Json(json!({
        "portalId": sandbox.portal_id(),
        "accountType": "STANDARD",
        "timeZone": "Etc/UTC",
        "companyCurrency": "USD",
        "additionalCurrencies": [],
        "utcOffset": format!("{sign}{:02}:{:02}", abs / 60, abs % 60),
        "utcOffsetMilliseconds": i64::from(offset_minutes) * 60_000,
        "uiDomain": "app.hubspot.com",
        "dataHostingLocation": "na1",
    }))
    .into_response())
}

async fn api_usage(State(sandbox): State<HubSpotSandbox>) -> ApiResult {
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    let limits = state.limiter.limits();
    let used = state.limiter.daily_used(now);
    let resets = state.limiter.next_reset_ms(now);
    Ok(Json(json!({"results": [{
        "name": "private-apps-api-calls-daily",
        "usageLimit": limits.daily,
        "currentUsage": used,
        "collectedAt": rfc3339_ms(now),
        "fetchStatus": "SUCCESS",
        "resetsAt": rfc3339_ms(resets),
    }]}))
    .into_response())
}
