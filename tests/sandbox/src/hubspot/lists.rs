//! Lists v3: MANUAL lists changed only through the API, DYNAMIC lists whose members are the
//! records matching their filters (re-evaluated as records change), SNAPSHOT lists evaluated
//! once at creation and manual after.
//!
//! ```text
//! POST /crm/v3/lists {"name":"VIPs","objectTypeId":"0-1","processingType":"DYNAMIC",
//!   "filterBranch":{"filterBranchType":"OR","filterBranches":[{"filterBranchType":"AND","filters":[
//!     {"filterType":"PROPERTY","property":"lifecyclestage",
//!      "operation":{"operationType":"ENUMERATION","operator":"IS_ANY_OF","values":["customer"]}}]}]}}
//!   -> {"list":{"listId":"1","processingType":"DYNAMIC","processingStatus":"COMPLETE","size":3,...}}
//! GET /crm/v3/lists/1/memberships/join-order?limit=2
//!   -> {"results":[{"recordId":"10001","membershipTimestamp":"2026-01-01T00:00:00.000Z"},..],
//!       "paging":{"next":{"after":"2"}}}
//! PUT /crm/v3/lists/1/memberships/add-and-remove -> 400: a DYNAMIC list's members follow its filters
//! ```
//!
//! Filters: a root `OR` branch of `AND` branches of `PROPERTY` filters (HubSpot's required
//! shape), with the operators `IS_EQUAL_TO`, `IS_NOT_EQUAL_TO`, `IS_ANY_OF`, `IS_NONE_OF`,
//! `CONTAINS`, `DOES_NOT_CONTAIN`, `STARTS_WITH`, `ENDS_WITH`, `IS_KNOWN`, `IS_UNKNOWN`,
//! `IS_GREATER_THAN`, `IS_LESS_THAN`; text compares case-insensitively. Any other filter is
//! refused with a 400 naming it, rather than evaluated wrongly.
//!
//! Dynamic lists catch up with the change log whenever the lists API is called: a record whose
//! last change since then makes it match joins at that change's time, one that no longer
//! matches leaves. Archived and deleted records are not members of any list while they are.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::HubSpotSandbox;
use super::api::{object_type, parse_body};
use super::errors::ApiError;
use super::model::{ObjectType, object_type_id};
use super::query::Params;
use super::store::{ChangeKind, Record, Store};
use crate::clock::rfc3339_ms;

type ApiResult = Result<Response, ApiError>;

/// The most a join-order page holds.
const MAX_PAGE: usize = 250;
const DEFAULT_PAGE: usize = 100;
const FIRST_LIST_ID: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingType {
    Manual,
    Dynamic,
    Snapshot,
}

impl ProcessingType {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "MANUAL" => Some(ProcessingType::Manual),
            "DYNAMIC" => Some(ProcessingType::Dynamic),
            "SNAPSHOT" => Some(ProcessingType::Snapshot),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ProcessingType::Manual => "MANUAL",
            ProcessingType::Dynamic => "DYNAMIC",
            ProcessingType::Snapshot => "SNAPSHOT",
        }
    }
}

/// One property filter, checked.
#[derive(Debug, Clone, PartialEq)]
struct Filter {
    property: String,
    operator: String,
    values: Vec<String>,
}

impl Filter {
    fn matches(&self, record: &Record) -> bool {
        let actual = record
            .properties
            .get(&self.property)
            .filter(|v| !v.is_empty());
        let text = actual.map(|v| v.to_lowercase());
        let wanted: Vec<String> = self.values.iter().map(|v| v.to_lowercase()).collect();
        let first = wanted.first().map(String::as_str).unwrap_or("");
        let number = |v: &str| v.trim().parse::<f64>().ok();
        match self.operator.as_str() {
            "IS_KNOWN" => actual.is_some(),
            "IS_UNKNOWN" => actual.is_none(),
            "IS_EQUAL_TO" => text.as_deref() == Some(first),
            "IS_NOT_EQUAL_TO" => text.as_deref() != Some(first),
            "IS_ANY_OF" => text.is_some_and(|t| wanted.contains(&t)),
            "IS_NONE_OF" => !text.is_some_and(|t| wanted.contains(&t)),
            "CONTAINS" => text.is_some_and(|t| t.contains(first)),
            "DOES_NOT_CONTAIN" => !text.is_some_and(|t| t.contains(first)),
            "STARTS_WITH" => text.is_some_and(|t| t.starts_with(first)),
            "ENDS_WITH" => text.is_some_and(|t| t.ends_with(first)),
            "IS_GREATER_THAN" => actual
                .and_then(|a| number(a))
                .zip(number(first))
                .is_some_and(|(a, b)| a > b),
            "IS_LESS_THAN" => actual
                .and_then(|a| number(a))
                .zip(number(first))
                .is_some_and(|(a, b)| a < b),
            _ => false,
        }
    }
}

const OPERATORS: [&str; 12] = [
    "IS_EQUAL_TO",
    "IS_NOT_EQUAL_TO",
    "IS_ANY_OF",
    "IS_NONE_OF",
    "CONTAINS",
    "DOES_NOT_CONTAIN",
    "STARTS_WITH",
    "ENDS_WITH",
    "IS_KNOWN",
    "IS_UNKNOWN",
    "IS_GREATER_THAN",
    "IS_LESS_THAN",
];

/// A record's time in a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Membership {
    first_added_ms: i64,
    last_added_ms: i64,
    /// Orders the join-order listing; a new one for every (re)join.
    position: u64,
    member: bool,
}

#[derive(Debug, Clone)]
pub struct List {
    id: u64,
    name: String,
    object_type: ObjectType,
    processing: ProcessingType,
    /// The filter branch as given, echoed back.
    filter_branch: Option<Value>,
    /// ORed groups of ANDed filters.
    filters: Vec<Vec<Filter>>,
    version: u64,
    created_ms: i64,
    updated_ms: i64,
    memberships: BTreeMap<u64, Membership>,
}

impl List {
    fn matches(&self, record: &Record) -> bool {
        self.filters
            .iter()
            .any(|group| group.iter().all(|f| f.matches(record)))
    }

    /// Current members that are live records, in join order.
    fn members<'a>(&'a self, store: &'a Store) -> Vec<(u64, &'a Membership)> {
        let mut members: Vec<(u64, &Membership)> = self
            .memberships
            .iter()
            .filter(|(id, m)| m.member && store.get(self.object_type, **id).is_some())
            .map(|(id, m)| (*id, m))
            .collect();
        members.sort_by_key(|(_, m)| m.position);
        members
    }

    fn to_json(&self, store: &Store) -> Value {
        let size = self.members(store).len();
        let mut list = json!({
            "listId": self.id.to_string(),
            "listVersion": self.version,
            "name": self.name,
            "objectTypeId": object_type_id(self.object_type),
            "processingType": self.processing.name(),
            "processingStatus": "COMPLETE",
            "createdAt": rfc3339_ms(self.created_ms),
            "updatedAt": rfc3339_ms(self.updated_ms),
            "filtersUpdatedAt": rfc3339_ms(self.created_ms),
            "size": size,
            "additionalProperties": {"hs_list_size": size.to_string()},
        });
        if let Some(branch) = &self.filter_branch {
            list["filterBranch"] = branch.clone();
        }
        list
    }
}

/// A portal's lists.
#[derive(Debug)]
pub struct Lists {
    lists: BTreeMap<u64, List>,
    next_id: u64,
    next_position: u64,
    /// The last change of the store's log the dynamic lists have caught up with.
    synced_seq: u64,
}

impl Default for Lists {
    fn default() -> Self {
        Lists {
            lists: BTreeMap::new(),
            next_id: FIRST_LIST_ID,
            next_position: 1,
            synced_seq: 0,
        }
    }
}

impl Lists {
    fn join(&mut self, list_id: u64, record_id: u64, at_ms: i64) -> bool {
        let position = self.next_position;
        let Some(list) = self.lists.get_mut(&list_id) else {
            return false;
        };
        let membership = list.memberships.entry(record_id).or_insert(Membership {
            first_added_ms: at_ms,
            last_added_ms: at_ms,
            position,
            member: false,
        });
        if membership.member {
            return false;
        }
        membership.member = true;
        membership.last_added_ms = at_ms;
        membership.position = position;
        self.next_position += 1;
        true
    }

    fn leave(&mut self, list_id: u64, record_id: u64) -> bool {
        self.lists
            .get_mut(&list_id)
            .and_then(|l| l.memberships.get_mut(&record_id))
            .is_some_and(|m| std::mem::replace(&mut m.member, false))
    }

    /// Brings the dynamic lists up to the store's latest change.
    pub fn sync(&mut self, store: &Store) {
        let last = store.last_seq();
        if last <= self.synced_seq {
            return;
        }
        let first_kept = store.changes().next().map_or(last, |c| c.seq);
        let dynamic: Vec<u64> = self
            .lists
            .values()
            .filter(|l| l.processing == ProcessingType::Dynamic)
            .map(|l| l.id)
            .collect();
        // Each record's last change since the last sync: when it joined, if it now matches.
        let mut touched: BTreeMap<(ObjectType, u64), i64> = BTreeMap::new();
        if first_kept > self.synced_seq + 1 {
            // The log moved past what was seen: evaluate every record again.
            for list_id in &dynamic {
                if let Some(list) = self.lists.get(list_id) {
                    for record in store.records(list.object_type) {
                        touched.insert((list.object_type, record.id), record.updated_ms);
                    }
                    for id in list.memberships.keys() {
                        touched.entry((list.object_type, *id)).or_insert(0);
                    }
                }
            }
        } else {
            for change in store.changes_after(self.synced_seq) {
                if matches!(
                    change.kind,
                    ChangeKind::Associated | ChangeKind::Dissociated
                ) {
                    continue;
                }
                if let Ok(id) = change.id.parse::<u64>() {
                    touched.insert((change.object_type, id), change.at_ms);
                }
            }
        }
        for list_id in dynamic {
            for (&(object_type, record_id), &at_ms) in &touched {
                let Some(list) = self.lists.get(&list_id) else {
                    continue;
                };
                if list.object_type != object_type {
                    continue;
                }
                let matches = store
                    .get(object_type, record_id)
                    .is_some_and(|r| list.matches(r));
                if matches {
                    self.join(list_id, record_id, at_ms);
                } else {
                    self.leave(list_id, record_id);
                }
            }
        }
        self.synced_seq = last;
    }
}

pub fn routes() -> Router<HubSpotSandbox> {
    Router::new()
        .route("/crm/v3/lists", post(create_list))
        .route("/crm/v3/lists/", post(create_list))
        .route("/crm/v3/lists/{list_id}", get(get_list))
        .route(
            "/crm/v3/lists/{list_id}/memberships/join-order",
            get(join_order),
        )
        .route(
            "/crm/v3/lists/{list_id}/memberships/add-and-remove",
            put(add_and_remove),
        )
        .route(
            "/crm/v3/lists/records/{object_type_id}/{record_id}/memberships",
            get(record_memberships),
        )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewList {
    name: Option<String>,
    object_type_id: Option<String>,
    processing_type: Option<String>,
    #[serde(default)]
    filter_branch: Option<Value>,
}

/// The object types lists are offered for here.
fn list_object_type(raw: &str) -> Result<ObjectType, ApiError> {
    let object_type = object_type(raw)?;
    match object_type {
        ObjectType::Contacts | ObjectType::Companies | ObjectType::Deals => Ok(object_type),
        other => Err(ApiError::validation(format!(
            "Lists of {} objects are not supported",
            object_type_id(other)
        ))),
    }
}

/// A filter branch in HubSpot's required shape: a root `OR` branch of `AND` branches of
/// property filters on properties of the type.
fn parse_filters(
    branch: &Value,
    store: &Store,
    object_type: ObjectType,
) -> Result<Vec<Vec<Filter>>, ApiError> {
    let kind = |b: &Value| {
        b.get("filterBranchType")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if kind(branch).as_deref() != Some("OR") {
        return Err(ApiError::validation(
            "filterBranch must be an OR branch whose filterBranches are AND branches",
        ));
    }
    if branch
        .get("filters")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
    {
        return Err(ApiError::validation(
            "the root OR branch cannot hold filters itself: put them in an AND branch",
        ));
    }
    let defs = store.property_defs(object_type);
    let mut groups = Vec::new();
    for and in branch
        .get("filterBranches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if kind(and).as_deref() != Some("AND") {
            return Err(ApiError::validation(
                "every branch under the root OR branch must be an AND branch",
            ));
        }
        if and
            .get("filterBranches")
            .and_then(Value::as_array)
            .is_some_and(|b| !b.is_empty())
        {
            return Err(ApiError::validation(
                "nested branches under an AND branch are not supported by the sandbox",
            ));
        }
        let mut group = Vec::new();
        for filter in and
            .get("filters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let filter_type = filter.get("filterType").and_then(Value::as_str);
            if filter_type != Some("PROPERTY") {
                return Err(ApiError::validation(format!(
                    "filterType {} is not supported by the sandbox; use PROPERTY",
                    filter_type.unwrap_or("(missing)")
                )));
            }
            let property = filter
                .get("property")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::validation("a PROPERTY filter needs a property"))?;
            if !defs.contains_key(property) {
                return Err(ApiError::validation(format!(
                    "Property \"{property}\" does not exist"
                )));
            }
            let operation = filter
                .get("operation")
                .ok_or_else(|| ApiError::validation("a PROPERTY filter needs an operation"))?;
            let operator = operation
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !OPERATORS.contains(&operator) {
                return Err(ApiError::validation(format!(
                    "operator {operator:?} is not supported by the sandbox; use one of {}",
                    OPERATORS.join(", ")
                )));
            }
            let text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut values: Vec<String> = operation
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().map(text).collect())
                .unwrap_or_default();
            if let Some(value) = operation.get("value") {
                values.insert(0, text(value));
            }
            let needs_value = !matches!(operator, "IS_KNOWN" | "IS_UNKNOWN");
            if needs_value && values.is_empty() {
                return Err(ApiError::validation(format!(
                    "operator {operator} on {property} needs a value or values"
                )));
            }
            group.push(Filter {
                property: property.to_string(),
                operator: operator.to_string(),
                values,
            });
        }
        groups.push(group);
    }
    Ok(groups)
}

async fn create_list(State(sandbox): State<HubSpotSandbox>, body: Bytes) -> ApiResult {
    let input: NewList = parse_body(&body)?;
    let name = input
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::validation("name is required"))?;
    let object_type = list_object_type(
        input
            .object_type_id
            .as_deref()
            .ok_or_else(|| ApiError::validation("objectTypeId is required"))?,
    )?;
    let raw_processing = input
        .processing_type
        .ok_or_else(|| ApiError::validation("processingType is required"))?;
    let processing = ProcessingType::parse(&raw_processing).ok_or_else(|| {
        ApiError::validation(format!(
            "processingType {raw_processing} is not one of MANUAL, DYNAMIC, SNAPSHOT"
        ))
    })?;
    let now = sandbox.now_ms();
    let mut guard = sandbox.lock();
    let state = &mut *guard;
    let filters = match (&input.filter_branch, processing) {
        (Some(branch), ProcessingType::Dynamic | ProcessingType::Snapshot) => {
            parse_filters(branch, &state.store, object_type)?
        }
        (None, ProcessingType::Dynamic | ProcessingType::Snapshot) => {
            return Err(ApiError::validation(format!(
                "a {} list needs a filterBranch",
                processing.name()
            )));
        }
        (Some(_), ProcessingType::Manual) => {
            return Err(ApiError::validation(
                "a MANUAL list has no filterBranch: its members are added and removed through the API",
            ));
        }
        (None, ProcessingType::Manual) => Vec::new(),
    };
    if state.lists.lists.values().any(|l| l.name == name) {
        return Err(ApiError::validation(format!(
            "A list named {name} already exists"
        )));
    }
    state.lists.sync(&state.store);
    let id = state.lists.next_id;
    state.lists.next_id += 1;
    let list = List {
        id,
        name,
        object_type,
        processing,
        filter_branch: input.filter_branch,
        filters,
        version: 1,
        created_ms: now,
        updated_ms: now,
        memberships: BTreeMap::new(),
    };
    let matching: Vec<u64> = if processing == ProcessingType::Manual {
        Vec::new()
    } else {
        state
            .store
            .records(object_type)
            .filter(|r| list.matches(r))
            .map(|r| r.id)
            .collect()
    };
    state.lists.lists.insert(id, list);
    for record_id in matching {
        state.lists.join(id, record_id, now);
    }
    let json = state
        .lists
        .lists
        .get(&id)
        .map(|l| l.to_json(&state.store))
        .unwrap_or(Value::Null);
    Ok(Json(json!({"list": json})).into_response())
}

fn list_id(raw: &str) -> Result<u64, ApiError> {
    raw.trim()
        .parse()
        .map_err(|_| ApiError::validation(format!("listId must be a number, got {raw}")))
}

fn no_list(id: u64) -> ApiError {
    ApiError::not_found(format!("List {id} does not exist"))
}

async fn get_list(
    State(sandbox): State<HubSpotSandbox>,
    Path(raw_id): Path<String>,
    params: Params,
) -> ApiResult {
    let id = list_id(&raw_id)?;
    let include_filters = params.flag("includeFilters")?.unwrap_or(false);
    let mut guard = sandbox.lock();
    let state = &mut *guard;
    state.lists.sync(&state.store);
    let list = state.lists.lists.get(&id).ok_or_else(|| no_list(id))?;
    let mut json = list.to_json(&state.store);
    if !include_filters && let Some(object) = json.as_object_mut() {
        object.remove("filterBranch");
    }
    Ok(Json(json!({"list": json})).into_response())
}

async fn join_order(
    State(sandbox): State<HubSpotSandbox>,
    Path(raw_id): Path<String>,
    params: Params,
) -> ApiResult {
    let id = list_id(&raw_id)?;
    let limit: usize = params.number("limit")?.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {MAX_PAGE}, got {limit}"
        )));
    }
    let after: Option<u64> = params.number("after")?;
    let before: Option<u64> = params.number("before")?;
    if after.is_some() && before.is_some() {
        return Err(ApiError::validation("give after or before, not both"));
    }
    let mut guard = sandbox.lock();
    let state = &mut *guard;
    state.lists.sync(&state.store);
    let list = state.lists.lists.get(&id).ok_or_else(|| no_list(id))?;
    let members = list.members(&state.store);
    let (page, more_after, more_before) = match before {
        Some(before) => {
            let earlier: Vec<_> = members
                .iter()
                .filter(|(_, m)| m.position < before)
                .collect();
            let skip = earlier.len().saturating_sub(limit);
            let page: Vec<_> = earlier[skip..].to_vec();
            let later = members.iter().any(|(_, m)| m.position >= before);
            (page, later, skip > 0)
        }
        None => {
            let from = after.unwrap_or(0);
            let later: Vec<_> = members.iter().filter(|(_, m)| m.position > from).collect();
            let page: Vec<_> = later.iter().take(limit).copied().collect();
            let earlier = members.iter().any(|(_, m)| m.position <= from);
            (page, later.len() > limit, earlier)
        }
    };
    let results: Vec<Value> = page
        .iter()
        .map(|(record_id, m)| {
            json!({
                "recordId": record_id.to_string(),
                "membershipTimestamp": rfc3339_ms(m.last_added_ms),
            })
        })
        .collect();
    let mut paging = serde_json::Map::new();
    if let (true, Some((_, last))) = (more_after, page.last()) {
        paging.insert("next".into(), json!({"after": last.position.to_string()}));
    }
    if let (true, Some((_, first))) = (more_before, page.first()) {
        paging.insert("prev".into(), json!({"before": first.position.to_string()}));
    }
    let mut body = json!({"results": results});
    if !paging.is_empty() {
        body["paging"] = Value::Object(paging);
    }
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AddAndRemove {
    #[serde(default)]
    record_ids_to_add: Vec<Value>,
    #[serde(default)]
    record_ids_to_remove: Vec<Value>,
}

async fn add_and_remove(
    State(sandbox): State<HubSpotSandbox>,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let id = list_id(&raw_id)?;
    let input: AddAndRemove = parse_body(&body)?;
    let now = sandbox.now_ms();
    let mut guard = sandbox.lock();
    let state = &mut *guard;
    state.lists.sync(&state.store);
    let list = state.lists.lists.get(&id).ok_or_else(|| no_list(id))?;
    if list.processing == ProcessingType::Dynamic {
        return Err(ApiError::validation(format!(
            "List {id} is a DYNAMIC list: its members follow its filters and cannot be added or removed; only MANUAL and SNAPSHOT lists can"
        )));
    }
    let object_type = list.object_type;
    let text = |v: &Value| match v {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    };
    let (mut added, mut removed, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for raw in input.record_ids_to_add.iter().map(text) {
        let live = raw
            .parse::<u64>()
            .ok()
            .filter(|r| state.store.get(object_type, *r).is_some());
        match live {
            Some(record_id) => {
                if state.lists.join(id, record_id, now) {
                    added.push(raw);
                }
            }
            None => missing.push(raw),
        }
    }
    for raw in input.record_ids_to_remove.iter().map(text) {
        match raw.parse::<u64>() {
            Ok(record_id) if state.lists.leave(id, record_id) => removed.push(raw),
            Ok(record_id) if state.store.get(object_type, record_id).is_some() => {}
            _ => missing.push(raw),
        }
    }
    if let Some(list) = state.lists.lists.get_mut(&id)
        && (!added.is_empty() || !removed.is_empty())
    {
        list.updated_ms = now;
    }
    Ok(Json(json!({
        "recordIdsAdded": added,
        "recordIdsRemoved": removed,
        "recordIdsMissing": missing,
    }))
    .into_response())
}

async fn record_memberships(
    State(sandbox): State<HubSpotSandbox>,
    Path((raw_type, raw_record)): Path<(String, String)>,
) -> ApiResult {
    let object_type = list_object_type(&raw_type)?;
    let record_id: u64 = raw_record.trim().parse().map_err(|_| {
        ApiError::validation(format!("recordId must be a number, got {raw_record}"))
    })?;
    let mut guard = sandbox.lock();
    let state = &mut *guard;
    state.lists.sync(&state.store);
    let live = state.store.get(object_type, record_id).is_some();
    let results: Vec<Value> = state
        .lists
        .lists
        .values()
        .filter(|l| l.object_type == object_type && live)
        .filter_map(|l| {
            let m = l.memberships.get(&record_id).filter(|m| m.member)?;
            Some(json!({
                "listId": l.id.to_string(),
                "listVersion": l.version,
                "firstAddedTimestamp": rfc3339_ms(m.first_added_ms),
                "lastAddedTimestamp": rfc3339_ms(m.last_added_ms),
            }))
        })
        .collect();
    Ok(Json(json!({"results": results, "total": results.len()})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

    use super::super::store::ChangeSource;

    const APP: ChangeSource = ChangeSource::Integration { app_id: 1 };

    fn filter(operator: &str, values: &[&str]) -> Filter {
        Filter {
            property: "lifecyclestage".into(),
            operator: operator.into(),
            values: values.iter().map(|v| (*v).to_string()).collect(),
        }
    }

    fn contact(store: &mut Store, properties: Value, at: i64) -> u64 {
        store
            .write_one(
                ObjectType::Contacts,
                None,
                properties.as_object().expect("object"),
                at,
                APP,
            )
            .expect("created")
    }

    #[test]
    fn operators_compare_text_case_insensitively_and_numbers_as_numbers() {
        let mut store = Store::new();
        let id = contact(&mut store, json!({"lifecyclestage": "customer"}), 0);
        let record = store.get(ObjectType::Contacts, id).expect("live");
        assert!(filter("IS_EQUAL_TO", &["CUSTOMER"]).matches(record));
        assert!(filter("IS_ANY_OF", &["lead", "customer"]).matches(record));
        assert!(!filter("IS_NONE_OF", &["customer"]).matches(record));
        assert!(filter("IS_KNOWN", &[]).matches(record));
        assert!(filter("STARTS_WITH", &["cust"]).matches(record));
        let mut number = filter("IS_GREATER_THAN", &["5"]);
        number.property = "hs_object_id".into();
        assert!(number.matches(record));
        let mut unknown = filter("IS_UNKNOWN", &[]);
        unknown.property = "jobtitle".into();
        assert!(unknown.matches(record));
    }

    #[test]
    fn dynamic_lists_follow_each_records_last_change() {
        let mut store = Store::new();
        let mut lists = Lists::default();
        let id = contact(&mut store, json!({"lifecyclestage": "lead"}), 1_000);
        lists.lists.insert(
            1,
            List {
                id: 1,
                name: "customers".into(),
                object_type: ObjectType::Contacts,
                processing: ProcessingType::Dynamic,
                filter_branch: None,
                filters: vec![vec![filter("IS_EQUAL_TO", &["customer"])]],
                version: 1,
                created_ms: 0,
                updated_ms: 0,
                memberships: BTreeMap::new(),
            },
        );
        lists.sync(&store);
        assert!(lists.lists[&1].members(&store).is_empty());
        let write = store
            .prepare(
                ObjectType::Contacts,
                Some(id),
                json!({"lifecyclestage": "customer"})
                    .as_object()
                    .expect("object"),
                &mut HashSet::new(),
            )
            .expect("valid");
        store.commit(ObjectType::Contacts, write, 2_000, APP);
        lists.sync(&store);
        let members = lists.lists[&1].members(&store);
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].1.last_added_ms, 2_000);
        store.archive(ObjectType::Contacts, id, 3_000, APP);
        lists.sync(&store);
        assert!(lists.lists[&1].members(&store).is_empty());
    }
}
