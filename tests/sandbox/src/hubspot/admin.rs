//! The admin API under `/__admin`: no authentication, no rate limits, not counted. Tests and
//! operators use it to inspect and reset state, count requests, inject faults, move a manual
//! clock, revoke tokens, and change records "as a HubSpot user would" (the change is logged with
//! source `CRM_UI`, as HubSpot would report it to webhooks).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api::{gdpr_delete_as, gdpr_request, merge_as, merge_ids, object_type, parse_body};
use super::errors::{ApiError, InputError};
use super::faults::Faults;
use super::model::{Emulated, ObjectType, Owner, default_association_type};
use super::query::Params;
use super::store::{ChangeSource, Store};
use super::webhooks::WebhookConfig;
use super::{DEFAULT_USER_ID, HubSpotSandbox, Settings, TokenState};

type AdminResult = Result<Response, ApiError>;

pub fn routes() -> Router<HubSpotSandbox> {
    Router::new()
        .route("/__admin/state", get(state))
        .route("/__admin/reset", post(reset))
        .route("/__admin/requests", get(requests).delete(clear_requests))
        .route("/__admin/faults", get(get_faults).put(put_faults))
        .route("/__admin/clock", get(clock))
        .route("/__admin/clock/advance", post(advance_clock))
        .route("/__admin/tokens", get(tokens))
        .route("/__admin/tokens/{token}", put(put_token))
        .route("/__admin/apps", get(apps))
        .route(
            "/__admin/webhooks",
            get(list_webhooks).put(put_webhook).delete(delete_webhooks),
        )
        .route(
            "/__admin/webhooks/deliveries",
            get(deliveries).delete(clear_deliveries),
        )
        .route("/__admin/settings", get(get_settings).put(put_settings))
        .route("/__admin/changes", get(changes))
        .route("/__admin/owners", post(add_owner))
        .route("/__admin/objects/{object_type}", post(user_create))
        .route("/__admin/objects/{object_type}/merge", post(user_merge))
        .route(
            "/__admin/objects/{object_type}/gdpr-delete",
            post(user_gdpr_delete),
        )
        .route(
            "/__admin/objects/{object_type}/{id}/restore",
            post(user_restore),
        )
        .route(
            "/__admin/associations/{from}/{from_id}/{to}/{to_id}",
            put(user_associate).delete(user_dissociate),
        )
        .route(
            "/__admin/objects/{object_type}/{id}",
            get(user_read).patch(user_update).delete(user_archive),
        )
}

async fn state(State(sandbox): State<HubSpotSandbox>, params: Params) -> AdminResult {
    let only = params.first("object_type").map(object_type).transpose()?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    let daily_used = state.limiter.daily_used(now);
    let mut objects = Map::new();
    for ty in ObjectType::ALL
        .into_iter()
        .filter(|t| only.is_none_or(|o| o == *t))
    {
        let records: Vec<Value> = state.store.records(ty).map(|r| r.to_full_json()).collect();
        objects.insert(ty.path_name().to_string(), Value::Array(records));
    }
    let associations: Vec<Value> = state
        .store
        .all_associations()
        .map(|a| {
            json!({
                "from_type": a.from_type, "from_id": a.from_id.to_string(),
                "to_type": a.to_type, "to_id": a.to_id.to_string(), "type_id": a.type_id,
            })
        })
        .collect();
    let owners: Vec<Value> = state
        .store
        .owners()
        .iter()
        .map(|o| o.to_json(now))
        .collect();
    Ok(Json(json!({
        "portal_id": sandbox.portal_id(),
        "clock_ms": now,
        "daily_used": daily_used,
        "objects": objects,
        "associations": associations,
        "owners": owners,
    }))
    .into_response())
}

/// Back to a new portal: no records, default properties and owners, no faults, fresh budget.
/// Tokens, settings and webhooks are kept.
async fn reset(State(sandbox): State<HubSpotSandbox>) -> AdminResult {
    let mut state = sandbox.lock();
    let seq = state.store.last_seq();
    state.store = Store::new();
    state.store.continue_from(seq);
    state.lists = super::lists::Lists::default();
    state.limiter.reset();
    state.oauth_limiter.reset();
    state.faults = Faults::default();
    state.requests.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn requests(State(sandbox): State<HubSpotSandbox>) -> AdminResult {
    let counts = sandbox.request_counts();
    let total: u64 = counts.values().sum();
    let by_endpoint: Vec<Value> = counts
        .iter()
        .map(|((endpoint, status), count)| json!({"endpoint": endpoint, "status": status, "count": count}))
        .collect();
    Ok(Json(json!({"total": total, "by_endpoint": by_endpoint})).into_response())
}

async fn clear_requests(State(sandbox): State<HubSpotSandbox>) -> AdminResult {
    sandbox.lock().requests.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_faults(State(sandbox): State<HubSpotSandbox>) -> AdminResult {
    let faults = sandbox.lock().faults.clone();
    Ok(Json(faults).into_response())
}

async fn put_faults(State(sandbox): State<HubSpotSandbox>, body: Bytes) -> AdminResult {
    let faults: Faults = parse_body(&body)?;
    sandbox
        .set_faults(faults.clone())
        .map_err(ApiError::validation)?;
    Ok(Json(faults).into_response())
}

async fn clock(State(sandbox): State<HubSpotSandbox>) -> AdminResult {
    Ok(
        Json(json!({"now_ms": sandbox.now_ms(), "manual": sandbox.clock().is_manual()}))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
struct Advance {
    ms: u64,
}

async fn advance_clock(State(sandbox): State<HubSpotSandbox>, body: Bytes) -> AdminResult {
    let advance: Advance = parse_body(&body)?;
    if !sandbox.clock().advance(Duration::from_millis(advance.ms)) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            "the sandbox runs on the system clock; start it with a manual clock to move time",
        ));
    }
    Ok(Json(json!({"now_ms": sandbox.now_ms()})).into_response())
}

async fn tokens(State(sandbox): State<HubSpotSandbox>) -> AdminResult {
    let tokens = sandbox.lock().tokens.clone();
    Ok(Json(tokens).into_response())
}

/// `{"state": "valid"|"revoked"|"expired"|"missing_scopes", "scopes"?, "app_id"?}`: the
/// token's state and, with `app_id`, the app it belongs to (a new token without one is the
/// portal's private app's).
#[derive(Debug, Deserialize)]
struct TokenBody {
    #[serde(flatten)]
    state: TokenState,
    #[serde(default)]
    app_id: Option<u64>,
}

async fn put_token(
    State(sandbox): State<HubSpotSandbox>,
    Path(token): Path<String>,
    body: Bytes,
) -> AdminResult {
    let body: TokenBody = parse_body(&body)?;
    sandbox.set_token(&token, body.state.clone());
    if let Some(app_id) = body.app_id {
        sandbox.set_token_app(&token, app_id);
    }
    let mut answer = serde_json::to_value(&body.state).unwrap_or(Value::Null);
    answer["app_id"] = json!(sandbox.app_of(&token));
    Ok(Json(answer).into_response())
}

/// The apps with tokens in this portal, which is what "installed" means here: a webhook
/// configured for an app is sent the changes of the portals it has tokens in.
async fn apps(State(sandbox): State<HubSpotSandbox>) -> AdminResult {
    Ok(Json(json!({"apps": sandbox.apps()})).into_response())
}

async fn get_settings(State(sandbox): State<HubSpotSandbox>) -> AdminResult {
    Ok(Json(sandbox.settings()).into_response())
}

async fn put_settings(State(sandbox): State<HubSpotSandbox>, body: Bytes) -> AdminResult {
    let settings: Settings = parse_body(&body)?;
    sandbox.apply_settings(settings);
    Ok(Json(sandbox.settings()).into_response())
}

/// `?from=N` skips the first N entries of the log.
async fn changes(State(sandbox): State<HubSpotSandbox>, params: Params) -> AdminResult {
    let from: usize = params.number("from")?.unwrap_or(0);
    let state = sandbox.lock();
    let changes: Vec<_> = state.store.changes().skip(from).cloned().collect();
    Ok(Json(json!({"changes": changes})).into_response())
}

async fn add_owner(State(sandbox): State<HubSpotSandbox>, body: Bytes) -> AdminResult {
    let owner: Owner = parse_body(&body)?;
    let now = sandbox.now_ms();
    let json = owner.to_json(now);
    sandbox.lock().store.add_owner(owner);
    Ok((StatusCode::CREATED, Json(json)).into_response())
}

/// A change made as a HubSpot user: `user_id` names the user (default [`DEFAULT_USER_ID`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PropertiesBody {
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    user_id: Option<u64>,
}

/// The HubSpot user a change is made as: `CRM_UI`, `userId:<id>`.
fn as_user(user_id: Option<u64>) -> ChangeSource {
    ChangeSource::CrmUi {
        user_id: user_id.unwrap_or(DEFAULT_USER_ID),
    }
}

async fn user_create(
    State(sandbox): State<HubSpotSandbox>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> AdminResult {
    let object_type = object_type(&raw_type)?;
    let input: PropertiesBody = parse_body(&body)?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    let id = state
        .store
        .write_one(
            object_type,
            None,
            &input.properties,
            now,
            as_user(input.user_id),
        )
        .map_err(InputError::into_api_error)?;
    let record = state.store.get(object_type, id).map(|r| r.to_full_json());
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

fn record_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::validation(format!("record id {raw} is not a number")))
}

async fn user_read(
    State(sandbox): State<HubSpotSandbox>,
    Path((raw_type, id)): Path<(String, String)>,
) -> AdminResult {
    let object_type = object_type(&raw_type)?;
    let id = record_id(&id)?;
    let state = sandbox.lock();
    state
        .store
        .get(object_type, id)
        .map(|r| Json(r.to_full_json()).into_response())
        .ok_or_else(|| ApiError::not_found("resource not found"))
}

async fn user_update(
    State(sandbox): State<HubSpotSandbox>,
    Path((raw_type, id)): Path<(String, String)>,
    body: Bytes,
) -> AdminResult {
    let object_type = object_type(&raw_type)?;
    let id = record_id(&id)?;
    let input: PropertiesBody = parse_body(&body)?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    if state.store.get(object_type, id).is_none() {
        return Err(ApiError::not_found("resource not found"));
    }
    state
        .store
        .write_one(
            object_type,
            Some(id),
            &input.properties,
            now,
            as_user(input.user_id),
        )
        .map_err(InputError::into_api_error)?;
    let record = state.store.get(object_type, id).map(|r| r.to_full_json());
    Ok(Json(record).into_response())
}

/// `?user_id=` names the user (default [`DEFAULT_USER_ID`]).
async fn user_archive(
    State(sandbox): State<HubSpotSandbox>,
    Path((raw_type, id)): Path<(String, String)>,
    params: Params,
) -> AdminResult {
    let object_type = object_type(&raw_type)?;
    let id = record_id(&id)?;
    let source = as_user(params.number("user_id")?);
    let now = sandbox.now_ms();
    if sandbox.lock().store.archive(object_type, id, now, source) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("resource not found"))
    }
}

/// `PUT /__admin/webhooks`: sets an app's webhook (see [`WebhookConfig`] for the fields and
/// their defaults) and answers it with the defaults filled in and its subscription ids.
async fn put_webhook(State(sandbox): State<HubSpotSandbox>, body: Bytes) -> AdminResult {
    let config: WebhookConfig = parse_body(&body)?;
    let view = sandbox
        .webhooks()
        .configure(config)
        .map_err(ApiError::validation)?;
    Ok(Json(view).into_response())
}

async fn list_webhooks(State(sandbox): State<HubSpotSandbox>) -> AdminResult {
    Ok(Json(json!({"webhooks": sandbox.webhooks().list()})).into_response())
}

/// `DELETE /__admin/webhooks[?app_id=N]`: stops sending (one app's or every) webhook's events.
async fn delete_webhooks(State(sandbox): State<HubSpotSandbox>, params: Params) -> AdminResult {
    sandbox.webhooks().remove(params.number("app_id")?);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /__admin/webhooks/deliveries[?app_id=N]`: every attempt, oldest first, and what is
/// still to be sent (`pending_events`, `unfinished_requests`).
async fn deliveries(State(sandbox): State<HubSpotSandbox>, params: Params) -> AdminResult {
    let app_id = params.number("app_id")?;
    Ok(Json(sandbox.webhooks().deliveries(app_id)).into_response())
}

async fn clear_deliveries(State(sandbox): State<HubSpotSandbox>) -> AdminResult {
    sandbox.webhooks().clear_deliveries();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The user a change is made as, from a body that may name it (`user_id`) among other fields.
#[derive(Debug, Deserialize, Default)]
struct UserOnly {
    #[serde(default)]
    user_id: Option<u64>,
}

fn user_of(body: &Bytes) -> Result<ChangeSource, ApiError> {
    let named: UserOnly = if body.is_empty() {
        UserOnly::default()
    } else {
        parse_body(body)?
    };
    Ok(as_user(named.user_id))
}

/// `POST /__admin/objects/{type}/merge` `{primaryObjectId, objectIdToMerge, user_id?}`: a user
/// merges two records (the API's merge, source `CRM_UI`).
async fn user_merge(
    State(sandbox): State<HubSpotSandbox>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> AdminResult {
    let object_type = object_type(&raw_type)?;
    let ids = merge_ids(object_type, &body)?;
    merge_as(&sandbox, object_type, ids, user_of(&body)?)
}

/// `POST /__admin/objects/contacts/gdpr-delete` `{objectId, idProperty?, user_id?}`.
async fn user_gdpr_delete(
    State(sandbox): State<HubSpotSandbox>,
    Path(raw_type): Path<String>,
    body: Bytes,
) -> AdminResult {
    let object_type = object_type(&raw_type)?;
    let request = gdpr_request(object_type, &body)?;
    gdpr_delete_as(&sandbox, request, user_of(&body)?)
}

/// `POST /__admin/objects/{type}/{id}/restore` `{user_id?}`: a user restores an archived
/// record from the recycle bin (within 90 days); 409 when a live record took its email since.
async fn user_restore(
    State(sandbox): State<HubSpotSandbox>,
    Path((raw_type, id)): Path<(String, String)>,
    body: Bytes,
) -> AdminResult {
    let object_type = object_type(&raw_type)?;
    let id = record_id(&id)?;
    let source = user_of(&body)?;
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    state
        .store
        .restore(object_type, id, now, source)
        .map_err(InputError::into_api_error)?;
    let record = state.store.get(object_type, id).map(|r| r.to_full_json());
    Ok(Json(record).into_response())
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AssociateBody {
    /// A HubSpot-defined association type id (default: the pair's unlabelled one).
    #[serde(default)]
    type_id: Option<u32>,
    #[serde(default)]
    user_id: Option<u64>,
}

/// `PUT /__admin/associations/{from}/{from_id}/{to}/{to_id}` `{type_id?, user_id?}`: a user
/// links two records.
async fn user_associate(
    State(sandbox): State<HubSpotSandbox>,
    Path((from, from_id, to, to_id)): Path<(String, String, String, String)>,
    body: Bytes,
) -> AdminResult {
    let (from_type, to_type) = (object_type(&from)?, object_type(&to)?);
    let from_id = record_id(&from_id)?;
    let input: AssociateBody = if body.is_empty() {
        AssociateBody::default()
    } else {
        parse_body(&body)?
    };
    let type_id = match input.type_id {
        Some(type_id) => type_id,
        None => default_association_type(from_type, to_type).ok_or_else(|| {
            ApiError::validation(format!(
                "No default association type from {} to {}",
                from_type.upper_singular(),
                to_type.upper_singular()
            ))
        })?,
    };
    let now = sandbox.now_ms();
    let mut state = sandbox.lock();
    if state.store.get(from_type, from_id).is_none() {
        return Err(ApiError::not_found("resource not found"));
    }
    let to_id = state
        .store
        .check_association(from_type, to_type, &to_id, type_id, "HUBSPOT_DEFINED")
        .map_err(InputError::into_api_error)?;
    let added = state.store.associate(
        from_type,
        from_id,
        to_type,
        to_id,
        type_id,
        now,
        as_user(input.user_id),
    );
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(
            json!({"from_id": from_id.to_string(), "to_id": to_id.to_string(), "type_id": type_id}),
        ),
    )
        .into_response())
}

/// `DELETE /__admin/associations/{from}/{from_id}/{to}/{to_id}[?user_id=N]`: a user removes
/// every association between two records; 404 when there was none.
async fn user_dissociate(
    State(sandbox): State<HubSpotSandbox>,
    Path((from, from_id, to, to_id)): Path<(String, String, String, String)>,
    params: Params,
) -> AdminResult {
    let (from_type, to_type) = (object_type(&from)?, object_type(&to)?);
    let (from_id, to_id) = (record_id(&from_id)?, record_id(&to_id)?);
    let source = as_user(params.number("user_id")?);
    let now = sandbox.now_ms();
    if sandbox
        .lock()
        .store
        .dissociate(from_type, from_id, to_type, to_id, now, source)
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("these records are not associated"))
    }
}
