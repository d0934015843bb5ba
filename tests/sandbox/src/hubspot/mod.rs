//! A stateful HubSpot CRM API emulator over HTTP, as strict as HubSpot in what it accepts and as
//! faithful as we can make it in what it answers: status codes, error bodies, batch limits, 207
//! partial failures, rate limits and their headers, search index lag.
//!
//! # Layout
//! - [`model`]: object types, property definitions, owners, association type ids.
//! - [`validate`]: property value validation.
//! - [`store`]: records, unique indexes, lagging search snapshots, associations, change log.
//! - [`search`]: the search endpoint's filters, sorts and paging.
//! - [`lists`]: lists v3, manual, dynamic (re-evaluated as records change) and snapshot.
//! - [`ratelimit`]: ten-second window, daily quota, search per-second limit.
//! - [`faults`]: injected latency, 5xx, hung requests, 429 storms.
//! - [`errors`]: HubSpot's error bodies.
//! - [`query`]: query strings, with repeated and comma-separated array parameters.
//! - [`webhooks`]: HubSpot's v3 webhook events of every change, signed, batched and retried.
//! - `api`: the public endpoints; `admin`: the admin API under `/__admin` (no auth, no limits).
//!
//! Every API request passes one gate, in this order: injected latency, authentication, 429 storm,
//! rate limit, injected 5xx or hang, then the endpoint. The gate counts every answer per endpoint
//! and status for the admin API.

mod admin;
mod api;
pub mod errors;
pub mod faults;
pub mod lists;
pub mod model;
mod portals;
pub mod query;
pub mod ratelimit;
pub mod search;
pub mod store;
pub mod validate;
pub mod webhooks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::server::RunningServer;
use errors::ApiError;
use faults::{Fault, Faults};
pub use portals::{OAuthApp, Portals};
use ratelimit::{Admission, Limits, RateLimiter, Tier};
use store::{ChangeSource, Store};
use webhooks::Webhooks;

/// The private-app token a sandbox accepts unless told otherwise.
pub const DEFAULT_TOKEN: &str = "pat-na1-5a4d8b0e-0000-4000-8000-hubsyncsandbox";
/// The portal (account) id a sandbox reports unless told otherwise.
pub const DEFAULT_PORTAL_ID: u64 = 48_151_623;
/// The id of the private app a portal's tokens belong to unless told otherwise: the `sourceId`
/// of the changes they make (`changeSource` `INTEGRATION`).
pub const DEFAULT_PRIVATE_APP_ID: u64 = 3_141_592;
/// The HubSpot user the admin API's changes are made as unless it names one (the first
/// default owner's user id): `sourceId` `userId:9000001`, `changeSource` `CRM_UI`.
pub const DEFAULT_USER_ID: u64 = 9_000_001;

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub portal_id: u64,
    pub tier: Tier,
    /// Overrides the tier's limits.
    pub limits: Option<Limits>,
    /// Tokens that authenticate; each may be revoked later through the admin API. They are
    /// private-app tokens of the app `private_app_id`.
    pub tokens: Vec<String>,
    /// The private app `tokens` belong to; its id is the `sourceId` of the changes they make.
    pub private_app_id: u64,
    /// Refresh tokens of the sandbox's public app installed in this portal: each is exchanged
    /// at `/oauth/v1/token` for access tokens of this portal (see [`Portals`]).
    pub refresh_tokens: Vec<String>,
    pub clock: Clock,
    /// How long a write takes to become visible to search (HubSpot: up to about 30 s).
    pub search_index_lag: Duration,
    pub faults: Faults,
    /// Seeds the random source behind injected faults.
    pub seed: u64,
    /// Whether a batch upsert with `objectWriteTraceId` on every input answers 207 for bad inputs
    /// (true) or fails as a whole (false). HubSpot's behaviour here is not documented.
    pub partial_upserts: bool,
    /// Whether 429 answers carry `Retry-After`. HubSpot does not promise it.
    pub send_retry_after: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            portal_id: DEFAULT_PORTAL_ID,
            tier: Tier::Professional,
            limits: None,
            tokens: vec![DEFAULT_TOKEN.to_string()],
            private_app_id: DEFAULT_PRIVATE_APP_ID,
            refresh_tokens: Vec::new(),
            clock: Clock::System,
            search_index_lag: Duration::from_secs(5),
            faults: Faults::default(),
            seed: 0x5eed,
            partial_upserts: false,
            send_retry_after: false,
        }
    }
}

/// What a token is good for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TokenState {
    #[default]
    Valid,
    /// Answers 401 `INVALID_AUTHENTICATION`, as a deleted private app or rotated token does.
    Revoked,
    /// Answers 401 `EXPIRED_AUTHENTICATION`, as an expired OAuth access token does.
    Expired,
    /// Answers 403 with `missingScopes`.
    MissingScopes { scopes: Vec<String> },
}

/// An app installed in a portal: it has tokens there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppInfo {
    pub app_id: u64,
    /// `private` (private-app tokens) or `public` (OAuth access tokens).
    pub kind: &'static str,
    pub tokens: Vec<String>,
}

/// Settings that can change at runtime through the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub search_index_lag_ms: i64,
    pub partial_upserts: bool,
    pub send_retry_after: bool,
    pub limits: Limits,
}

struct Inner {
    portal_id: u64,
    clock: Clock,
    state: Mutex<SandboxState>,
    webhooks: Arc<Webhooks>,
}

pub(crate) struct SandboxState {
    pub store: Store,
    pub lists: lists::Lists,
    /// The budget of private-app tokens: the account's tier.
    pub limiter: RateLimiter,
    /// The budget of the public app's OAuth access tokens in this account (110 per 10 s, no
    /// daily limit), apart from the private apps'.
    pub oauth_limiter: RateLimiter,
    pub faults: Faults,
    pub rng: StdRng,
    pub tokens: BTreeMap<String, TokenState>,
    /// The app each token belongs to; a token not named here is one of `private_app_id`'s.
    pub token_apps: BTreeMap<String, u64>,
    pub private_app_id: u64,
    /// When each OAuth access token stops working (clock milliseconds); private-app tokens
    /// do not expire.
    pub token_expiry: BTreeMap<String, i64>,
    /// The refresh tokens of the public app's installation in this portal; `false` once revoked
    /// (the app uninstalled).
    pub refresh_tokens: BTreeMap<String, bool>,
    pub requests: BTreeMap<(String, u16), u64>,
    pub search_lag_ms: i64,
    pub partial_upserts: bool,
    pub send_retry_after: bool,
}

impl SandboxState {
    fn app_of(&self, token: &str) -> u64 {
        self.token_apps
            .get(token)
            .copied()
            .unwrap_or(self.private_app_id)
    }

    /// Whether the app is installed here: the portal has a token of it that is not revoked.
    fn has_app(&self, app_id: u64) -> bool {
        self.tokens
            .iter()
            .any(|(token, state)| *state != TokenState::Revoked && self.app_of(token) == app_id)
    }
}

/// A running HubSpot sandbox's shared state; cheap to clone.
#[derive(Clone)]
pub struct HubSpotSandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HubSpotSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpotSandbox")
            .field("portal_id", &self.inner.portal_id)
            .finish_non_exhaustive()
    }
}

impl HubSpotSandbox {
    pub fn new(options: SandboxOptions) -> Self {
        Self::with_webhooks(options, Arc::new(Webhooks::new()))
    }

    /// A portal whose apps' webhooks are `webhooks`, shared with other portals.
    pub fn with_webhooks(options: SandboxOptions, webhooks: Arc<Webhooks>) -> Self {
        let limits = options
            .limits
            .unwrap_or_else(|| Limits::of_tier(options.tier));
        let state = SandboxState {
            store: Store::new(),
            lists: lists::Lists::default(),
            limiter: RateLimiter::new(limits),
            oauth_limiter: RateLimiter::new(Limits::of_oauth_app(limits)),
            faults: options.faults,
            rng: StdRng::seed_from_u64(options.seed),
            tokens: options
                .tokens
                .into_iter()
                .map(|t| (t, TokenState::Valid))
                .collect(),
            token_apps: BTreeMap::new(),
            private_app_id: options.private_app_id,
            token_expiry: BTreeMap::new(),
            refresh_tokens: options
                .refresh_tokens
                .into_iter()
                .map(|t| (t, true))
                .collect(),
            requests: BTreeMap::new(),
            search_lag_ms: i64::try_from(options.search_index_lag.as_millis()).unwrap_or(i64::MAX),
            partial_upserts: options.partial_upserts,
            send_retry_after: options.send_retry_after,
        };
        let inner = Arc::new(Inner {
            portal_id: options.portal_id,
            clock: options.clock,
            state: Mutex::new(state),
            webhooks: webhooks.clone(),
        });
        webhooks.register(Arc::downgrade(&inner));
        HubSpotSandbox { inner }
    }

    /// The webhooks of the apps installed in this portal (shared by the portals of one
    /// [`Portals`]).
    pub fn webhooks(&self) -> &Arc<Webhooks> {
        &self.inner.webhooks
    }

    pub fn portal_id(&self) -> u64 {
        self.inner.portal_id
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The state lock. A panic while holding it cannot leave a half-applied write behind (writes
    /// are validated before they are committed), so a poisoned lock is taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SandboxState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The whole API: HubSpot's endpoints behind the gate, and the admin API beside them.
    pub fn router(&self) -> axum::Router {
        let api = api::routes()
            .merge(lists::routes())
            .route_layer(axum::middleware::from_fn_with_state(self.clone(), gate))
            .with_state(self.clone());
        api.merge(admin::routes().with_state(self.clone()))
            .fallback(|| async {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "OBJECT_NOT_FOUND",
                    "Unable to find a route for this request.",
                )
            })
    }

    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<RunningServer> {
        RunningServer::spawn(self.router(), addr).await
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        self.lock().faults = faults;
        Ok(())
    }

    /// Whether `token` is one of this portal's (in any state).
    pub fn knows_token(&self, token: &str) -> bool {
        self.lock().tokens.contains_key(token)
    }

    /// Whether `token` is a refresh token of this portal, and still good.
    pub fn refresh_token_state(&self, token: &str) -> Option<bool> {
        self.lock().refresh_tokens.get(token).copied()
    }

    /// Issues an OAuth access token of this portal for the public app `app_id`, valid for
    /// `ttl_ms`.
    pub fn issue_access_token(&self, token: &str, ttl_ms: i64, app_id: u64) {
        let at = self.now_ms() + ttl_ms;
        let mut state = self.lock();
        state.tokens.insert(token.to_string(), TokenState::Valid);
        state.token_expiry.insert(token.to_string(), at);
        state.token_apps.insert(token.to_string(), app_id);
    }

    /// The app a token belongs to (a token is always some app's: a private app's or the public
    /// app's that an OAuth access token was issued for).
    pub fn app_of(&self, token: &str) -> u64 {
        self.lock().app_of(token)
    }

    /// Makes `token` one of app `app_id`'s.
    pub fn set_token_app(&self, token: &str, app_id: u64) {
        self.lock().token_apps.insert(token.to_string(), app_id);
    }

    /// The apps with tokens in this portal: id, kind (`private` or `public`) and tokens.
    pub fn apps(&self) -> Vec<AppInfo> {
        let state = self.lock();
        let mut apps: BTreeMap<u64, AppInfo> = BTreeMap::new();
        for token in state.tokens.keys() {
            let app_id = state.app_of(token);
            let app = apps.entry(app_id).or_insert_with(|| AppInfo {
                app_id,
                kind: "private",
                tokens: Vec::new(),
            });
            if state.token_expiry.contains_key(token) {
                app.kind = "public";
            }
            app.tokens.push(token.clone());
        }
        apps.into_values().collect()
    }

    /// An access token's time to live, in milliseconds (negative once expired).
    pub fn access_token_ttl(&self, token: &str) -> Option<i64> {
        let at = self.lock().token_expiry.get(token).copied()?;
        Some(at - self.now_ms())
    }

    /// The public app uninstalled from this portal: its refresh token answers `invalid_grant`
    /// and the access tokens it issued stop working.
    pub fn revoke_refresh_token(&self, token: &str) -> bool {
        let mut state = self.lock();
        let known = state.refresh_tokens.contains_key(token);
        if known {
            state.refresh_tokens.insert(token.to_string(), false);
            let issued: Vec<String> = state.token_expiry.keys().cloned().collect();
            for access in issued {
                state.tokens.insert(access, TokenState::Revoked);
            }
        }
        known
    }

    pub fn set_token(&self, token: &str, state: TokenState) {
        self.lock().tokens.insert(token.to_string(), state);
    }

    /// Requests answered so far, per `METHOD /path` (ids left as `{id}`) and status.
    pub fn request_counts(&self) -> BTreeMap<(String, u16), u64> {
        self.lock().requests.clone()
    }

    /// Every live record of a type with all its properties, as the admin state dump shows them.
    pub fn snapshot(&self, object_type: model::ObjectType) -> Vec<serde_json::Value> {
        self.lock()
            .store
            .records(object_type)
            .map(store::Record::to_full_json)
            .collect()
    }

    /// Associations of one record towards `to_type`: (to id, type ids).
    pub fn associations_of(
        &self,
        from_type: model::ObjectType,
        from_id: u64,
        to_type: model::ObjectType,
    ) -> Vec<(u64, Vec<u32>)> {
        self.lock()
            .store
            .associations_of(from_type, from_id, to_type)
    }

    /// Number of live records of a type.
    pub fn count(&self, object_type: model::ObjectType) -> usize {
        self.lock().store.count(object_type)
    }

    pub fn settings(&self) -> Settings {
        let state = self.lock();
        Settings {
            search_index_lag_ms: state.search_lag_ms,
            partial_upserts: state.partial_upserts,
            send_retry_after: state.send_retry_after,
            limits: state.limiter.limits(),
        }
    }

    pub fn apply_settings(&self, settings: Settings) {
        let mut state = self.lock();
        state.search_lag_ms = settings.search_index_lag_ms.max(0);
        state.partial_upserts = settings.partial_upserts;
        state.send_retry_after = settings.send_retry_after;
        state.limiter.set_limits(settings.limits);
        state
            .oauth_limiter
            .set_limits(Limits::of_oauth_app(settings.limits));
    }
}

/// The endpoint label for counting: the route template with object types and operations filled in
/// and record ids left as placeholders, e.g. `POST /crm/v3/objects/contacts/batch/upsert`.
fn endpoint_label(method: &Method, template: &str, path: &str) -> String {
    let filled: Vec<&str> = template
        .split('/')
        .zip(path.split('/'))
        .map(|(t, actual)| match t {
            "{id}" | "{name}" | "{owner_id}" | "{list_id}" | "{record_id}" => t,
            _ if t.starts_with('{') => actual,
            _ => t,
        })
        .collect();
    format!("{method} {}", filled.join("/"))
}

/// The largest request body the sandbox reads to look for a poison.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

fn bearer(request: &Request) -> Option<String> {
    let value = request.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

async fn gate(State(sandbox): State<HubSpotSandbox>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let endpoint = endpoint_label(request.method(), &template, &path);
    let search = path.ends_with("/search");

    let (latency_ms, fault) = {
        let mut state = sandbox.lock();
        let SandboxState { faults, rng, .. } = &mut *state;
        if faults.applies_to(&path) {
            let latency = faults.latency(rng);
            (latency, faults.decide(sandbox.now_ms(), rng))
        } else {
            (0, Fault::None)
        }
    };
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    // A poisoned body is refused whatever else holds: the body is read here, then handed on.
    let (poison, applies) = {
        let state = sandbox.lock();
        (
            state.faults.poison.is_some(),
            state.faults.applies_to(&path),
        )
    };
    let request = if poison && applies {
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => {
                sandbox.count_request(&endpoint, StatusCode::PAYLOAD_TOO_LARGE.as_u16());
                return StatusCode::PAYLOAD_TOO_LARGE.into_response();
            }
        };
        if sandbox.lock().faults.poisoned(&bytes) {
            sandbox.count_request(&endpoint, StatusCode::INTERNAL_SERVER_ERROR.as_u16());
            return ApiError::server_error(StatusCode::INTERNAL_SERVER_ERROR).into_response();
        }
        Request::from_parts(parts, axum::body::Body::from(bytes))
    } else {
        request
    };

    let mut request = request;
    let response = match admit(&sandbox, &request, search, fault) {
        Err(refusal) => refusal.into_response(),
        Ok((budget, fault)) => {
            // Every write through this request is the token's app's.
            let app_id = bearer(&request).map_or(0, |token| sandbox.app_of(&token));
            request
                .extensions_mut()
                .insert(ChangeSource::Integration { app_id });
            let mut response = match fault {
                Fault::Hang(ms) => {
                    // Counted now: the client usually gives up before this answer is written.
                    sandbox.count_request(&endpoint, StatusCode::GATEWAY_TIMEOUT.as_u16());
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    return ApiError::server_error(StatusCode::GATEWAY_TIMEOUT).into_response();
                }
                Fault::ServerError(status) => ApiError::server_error(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                )
                .into_response(),
                Fault::None | Fault::Storm429 => next.run(request).await,
            };
            if let Some(budget) = budget {
                insert_headers(&mut response, &budget.headers());
            }
            response
        }
    };
    sandbox.count_request(&endpoint, response.status().as_u16());
    response
}

/// A request turned away at the gate: the error and the headers to send with it.
struct Refusal {
    error: ApiError,
    headers: Vec<(&'static str, String)>,
}

impl Refusal {
    fn new(error: ApiError) -> Self {
        Refusal {
            error,
            headers: Vec::new(),
        }
    }

    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        insert_headers(&mut response, &self.headers);
        response
    }
}

/// Authentication and rate limiting.
fn admit(
    sandbox: &HubSpotSandbox,
    request: &Request,
    search: bool,
    fault: Fault,
) -> Result<(Option<ratelimit::Budget>, Fault), Refusal> {
    let mut guard = sandbox.lock();
    let state = &mut *guard;
    let token_state = bearer(request).and_then(|t| state.tokens.get(&t).cloned());
    match token_state {
        None | Some(TokenState::Revoked) => {
            return Err(Refusal::new(ApiError::unauthorized(false)));
        }
        Some(TokenState::Expired) => return Err(Refusal::new(ApiError::unauthorized(true))),
        Some(TokenState::MissingScopes { scopes }) => {
            return Err(Refusal::new(ApiError::missing_scopes(&scopes)));
        }
        Some(TokenState::Valid) => {
            let expired = bearer(request)
                .and_then(|t| state.token_expiry.get(&t).copied())
                .is_some_and(|at| sandbox.now_ms() >= at);
            if expired {
                return Err(Refusal::new(ApiError::unauthorized(true)));
            }
        }
    }
    let now = sandbox.now_ms();
    if fault == Fault::Storm429 {
        let mut refusal = Refusal::new(ApiError::rate_limited("TEN_SECONDLY_ROLLING"));
        if state.send_retry_after {
            refusal.headers.push(("retry-after", "1".to_string()));
        }
        return Err(refusal);
    }
    // An access token of the public app (it expires) spends the app's budget in this account.
    let oauth = bearer(request).is_some_and(|t| state.token_expiry.contains_key(&t));
    let limiter = if oauth {
        &mut state.oauth_limiter
    } else {
        &mut state.limiter
    };
    match limiter.admit(now, search) {
        Admission::Allowed(budget) => Ok((budget, fault)),
        Admission::Limited {
            policy,
            retry_after_ms,
            budget,
        } => {
            let mut refusal = Refusal::new(ApiError::rate_limited(policy.name()));
            if let Some(budget) = budget {
                refusal.headers.extend(budget.headers());
            }
            if state.send_retry_after {
                let seconds = (retry_after_ms + 999) / 1_000;
                refusal
                    .headers
                    .push(("retry-after", seconds.max(1).to_string()));
            }
            Err(refusal)
        }
    }
}

fn insert_headers(response: &mut Response, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
}

impl HubSpotSandbox {
    fn count_request(&self, endpoint: &str, status: u16) {
        *self
            .lock()
            .requests
            .entry((endpoint.to_string(), status))
            .or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_labels_keep_types_and_hide_ids() {
        assert_eq!(
            endpoint_label(
                &Method::POST,
                "/crm/v3/objects/{object_type}/batch/{op}",
                "/crm/v3/objects/contacts/batch/upsert"
            ),
            "POST /crm/v3/objects/contacts/batch/upsert"
        );
        assert_eq!(
            endpoint_label(
                &Method::GET,
                "/crm/v3/objects/{object_type}/{id}",
                "/crm/v3/objects/deals/123"
            ),
            "GET /crm/v3/objects/deals/{id}"
        );
    }
}
