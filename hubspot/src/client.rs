//! The only module that does HTTP. One [`HubSpotClient`] holds one `reqwest::Client` (its
//! connection pool), one [`RequestBudget`] and the retry policy; clones share them, so every
//! stage of a process spends the same budget.
//!
//! Each call: build the body (pure), then per attempt take a budget slot, send, classify the
//! answer (pure), hand the slot back with what the answer said, and either return or decide
//! (pure) whether to wait and send again.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Url};
use serde_json::Value;

use super::budget::{BudgetLimits, BudgetStats, Observation, RequestBudget};
use super::events::{BudgetWaited, CallFailed, RequestCompleted, RetryScheduled};
use super::request::{
    self, AssociationInput, CreateInput, Filter, FilterGroup, SearchRequest, UpdateInput,
    UpsertInput,
};
use super::response::{self, Expected, IdMatch, RateLimitHeaders, Transport};
use super::retry::{self, Decision, RetryParams, Sleeper, TokioSleeper};
use super::{
    AccountDetails, ArchivedPage, AssociationResult, Endpoint, Error, ErrorClass, Failure,
    HistoryResult, InputResult, ListInfo, MembershipsPage, NewProperty, ObjectType, Owner,
    OwnersPage, PropertyDefinition, Record, SearchPage,
};
use crate::Secret;
use crate::oauth::{OAuthSettings, TokenSource};

/// How requests are authenticated.
enum Auth {
    /// A private app's token.
    Token(Secret),
    /// One team's OAuth connection.
    OAuth(Box<TokenSource>),
}

/// Values one `IN` filter carries in a request; more are searched in several requests.
pub const MAX_IN_VALUES: usize = 100;

/// Records a search page holds at most (HubSpot's `limit` ceiling).
const SEARCH_PAGE: u32 = 200;

/// The owners listing stops after this many pages, far beyond any real portal, so that a
/// server that always answers with a next page cannot keep the client paging forever.
const MAX_OWNER_PAGES: usize = 1_000;

/// How the client is set up (the product builds it from its `[hubspot]` section).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    pub base_url: String,
    pub request_timeout: Duration,
    pub limits: BudgetLimits,
    pub retry: RetryParams,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("hubspot.base_url {url:?} is not a URL ({reason}): use e.g. https://api.hubapi.com")]
    BaseUrl { url: String, reason: String },
    #[error("cannot set up the http client: {0}")]
    Http(String),
}

/// The HubSpot API client. Cheap to clone; clones share the connection pool and the budget.
#[derive(Clone)]
pub struct HubSpotClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    auth: Auth,
    budget: Arc<RequestBudget>,
    retry: RetryParams,
    sleeper: Arc<dyn Sleeper>,
}

impl fmt::Debug for HubSpotClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotClient")
            .field("base_url", &self.inner.base_url.as_str())
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// An answer: status, headers, body.
type Answer = (u16, HeaderMap, Vec<u8>);

impl HubSpotClient {
    /// A client on the system clock, waiting with tokio.
    pub fn new(settings: ClientSettings, token: Secret) -> Result<Self, BuildError> {
        let budget = Arc::new(RequestBudget::new(settings.limits));
        Self::with_parts(settings, token, budget, Arc::new(TokioSleeper))
    }

    /// A client with its budget and the sleeper between retries given, for tests and for
    /// sharing one budget between clients.
    pub fn with_parts(
        settings: ClientSettings,
        token: Secret,
        budget: Arc<RequestBudget>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Result<Self, BuildError> {
        Self::build(settings, Auth::Token(token), budget, sleeper)
    }

    /// A client of one team's OAuth connection through the platform's public app: access tokens
    /// are refreshed from the team's refresh token before they expire, and must belong to the
    /// team's portal.
    pub fn with_oauth(settings: ClientSettings, oauth: OAuthSettings) -> Result<Self, BuildError> {
        let budget = Arc::new(RequestBudget::new(settings.limits));
        Self::build(
            settings,
            Auth::OAuth(Box::new(TokenSource::new(oauth))),
            budget,
            Arc::new(TokioSleeper),
        )
    }

    /// OAuth token refreshes made so far (0 for a private-app token).
    pub fn token_refreshes(&self) -> u64 {
        match &self.inner.auth {
            Auth::Token(_) => 0,
            Auth::OAuth(source) => source.refreshes(),
        }
    }

    fn build(
        settings: ClientSettings,
        auth: Auth,
        budget: Arc<RequestBudget>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Result<Self, BuildError> {
        let trimmed = settings.base_url.trim_end_matches('/');
        let base_url = Url::parse(trimmed).map_err(|error| BuildError::BaseUrl {
            url: settings.base_url.clone(),
            reason: error.to_string(),
        })?;
        if base_url.cannot_be_a_base() {
            return Err(BuildError::BaseUrl {
                url: settings.base_url.clone(),
                reason: "it cannot hold paths".to_owned(),
            });
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("hubsync/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .pool_max_idle_per_host(settings.limits.max_in_flight)
            .build()
            .map_err(|error| BuildError::Http(error.to_string()))?;
        Ok(HubSpotClient {
            inner: Arc::new(Inner {
                http,
                base_url,
                auth,
                budget,
                retry: settings.retry,
                sleeper,
            }),
        })
    }

    pub fn budget(&self) -> &RequestBudget {
        &self.inner.budget
    }

    /// Requests sent and 429s received so far, per endpoint.
    pub fn stats(&self) -> BudgetStats {
        self.inner.budget.stats()
    }

    // ----- objects -----

    /// Creates or updates records by a unique property (`email` for contacts). Results come
    /// back per input, matched by trace id; a batch HubSpot refuses as a whole (a validation
    /// error when partial upserts are off) is an [`Error::Failed`] to split and retry.
    pub async fn batch_upsert(
        &self,
        object: ObjectType,
        id_property: &str,
        inputs: &[UpsertInput],
    ) -> Result<Vec<InputResult>, Error> {
        let body = request::upsert_body(id_property, inputs)?;
        let expected = inputs.iter().map(|i| Expected {
            trace_id: Some(&i.trace_id),
            id: Some(&i.id),
        });
        self.batch_write(
            object,
            Endpoint::BatchUpsert,
            "upsert",
            body,
            expected,
            IdMatch::Property(id_property),
        )
        .await
    }

    /// Updates records by HubSpot id.
    pub async fn batch_update(
        &self,
        object: ObjectType,
        inputs: &[UpdateInput],
    ) -> Result<Vec<InputResult>, Error> {
        let body = request::update_body(inputs)?;
        let expected = inputs.iter().map(|i| Expected {
            trace_id: Some(&i.trace_id),
            id: Some(&i.id),
        });
        self.batch_write(
            object,
            Endpoint::BatchUpdate,
            "update",
            body,
            expected,
            IdMatch::RecordId,
        )
        .await
    }

    /// Creates records, each with optional associations. Not idempotent: a failure after which
    /// the records may exist (a timeout, a 5xx) is returned, never sent again, with
    /// [`Failure::may_have_applied`] set.
    pub async fn batch_create(
        &self,
        object: ObjectType,
        inputs: &[CreateInput],
    ) -> Result<Vec<InputResult>, Error> {
        let body = request::create_body(inputs)?;
        let expected = inputs.iter().map(|i| Expected {
            trace_id: Some(&i.trace_id),
            id: None,
        });
        self.batch_write(
            object,
            Endpoint::BatchCreate,
            "create",
            body,
            expected,
            IdMatch::None,
        )
        .await
    }

    /// One batch write: posts `body`, then matches the answer to the inputs `expected` names
    /// and keys each result by its input's trace id.
    async fn batch_write<'a>(
        &self,
        object: ObjectType,
        endpoint: Endpoint,
        operation: &str,
        body: Value,
        expected: impl Iterator<Item = Expected<'a>>,
        by: IdMatch<'_>,
    ) -> Result<Vec<InputResult>, Error> {
        let expected: Vec<Expected<'a>> = expected.collect();
        if expected.is_empty() {
            return Ok(Vec::new());
        }
        let outcomes = self
            .call(
                Call::post(
                    endpoint,
                    object.path_name(),
                    request::batch_path(object, operation),
                    body,
                ),
                |status, headers, bytes, now| {
                    response::batch_outcomes(status, headers, bytes, now, &expected, by)
                },
            )
            .await?;
        // Every write input carries a trace id; keys stay aligned with the inputs regardless.
        let keys = expected.iter().map(|e| e.trace_id.unwrap_or_default());
        Ok(keyed(keys, outcomes))
    }

    /// Reads records by id, or by the value of a unique property. A missing record is an
    /// input error of class [`ErrorClass::NotFound`]; results are keyed by the requested id.
    pub async fn batch_read(
        &self,
        object: ObjectType,
        ids: &[String],
        id_property: Option<&str>,
        properties: &[String],
    ) -> Result<Vec<InputResult>, Error> {
        let body = request::read_body(ids, id_property, properties)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let expected: Vec<Expected<'_>> = ids
            .iter()
            .map(|id| Expected {
                trace_id: None,
                id: Some(id),
            })
            .collect();
        let by = id_property.map_or(IdMatch::RecordId, IdMatch::Property);
        let outcomes = self
            .call(
                Call::post(
                    Endpoint::BatchRead,
                    object.path_name(),
                    request::batch_path(object, "read"),
                    body,
                ),
                |status, headers, bytes, now| {
                    response::batch_outcomes(status, headers, bytes, now, &expected, by)
                },
            )
            .await?;
        Ok(keyed(ids.iter().map(String::as_str), outcomes))
    }

    /// Reads records by id with every version of the `with_history` properties (newest first)
    /// and the current values of `properties`, in requests of at most 50 ids (HubSpot's limit
    /// for history reads). Results are keyed by the requested id, in input order; a missing
    /// record is an input error of class [`ErrorClass::NotFound`]. A request that fails fails
    /// the call: nothing of a partial read is returned.
    pub async fn batch_read_history(
        &self,
        object: ObjectType,
        ids: &[String],
        properties: &[String],
        with_history: &[String],
    ) -> Result<Vec<HistoryResult>, Error> {
        let mut results = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(request::MAX_HISTORY_INPUTS) {
            let body = request::read_history_body(chunk, properties, with_history)?;
            let expected: Vec<Expected<'_>> = chunk
                .iter()
                .map(|id| Expected {
                    trace_id: None,
                    id: Some(id),
                })
                .collect();
            let outcomes = self
                .call(
                    Call::post(
                        Endpoint::BatchRead,
                        object.path_name(),
                        request::batch_path(object, "read"),
                        body,
                    ),
                    |status, headers, bytes, now| {
                        response::history_outcomes(status, headers, bytes, now, &expected)
                    },
                )
                .await?;
            results.extend(
                chunk
                    .iter()
                    .zip(outcomes)
                    .map(|(key, result)| HistoryResult {
                        key: key.clone(),
                        result,
                    }),
            );
        }
        Ok(results)
    }

    /// One page of deleted (archived) records of a type, with `archivedAt`; `limit` up to 100.
    /// HubSpot keeps deleted records for 90 days.
    pub async fn archived_page(
        &self,
        object: ObjectType,
        after: Option<&str>,
        limit: u32,
        properties: &[String],
    ) -> Result<ArchivedPage, Error> {
        let query = request::archived_query(limit, after, properties)?;
        let page = self
            .call(
                Call::get(
                    Endpoint::ObjectsList,
                    object.path_name(),
                    request::objects_path(object),
                )
                .with_query(query),
                |status, headers, bytes, now| {
                    response::archived_page(&response::success_json(status, headers, bytes, now)?)
                },
            )
            .await?;
        Ok(page)
    }

    // ----- lists -----

    /// A list's definition (v3). An unknown list is a failure of class [`ErrorClass::NotFound`].
    pub async fn list(&self, list_id: &str) -> Result<ListInfo, Error> {
        let path = request::list_path(list_id)?;
        let info = self
            .call(
                Call::get(Endpoint::List, "lists", path),
                |status, headers, bytes, now| {
                    response::list_info(&response::success_json(status, headers, bytes, now)?)
                },
            )
            .await?;
        Ok(info)
    }

    /// One page of a list's members in join order (oldest first), `limit` up to 250; the next
    /// page starts at the answer's `next_after`.
    pub async fn list_memberships_page(
        &self,
        list_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<MembershipsPage, Error> {
        let path = request::list_memberships_path(list_id)?;
        let query = request::memberships_query(limit, after)?;
        let page = self
            .call(
                Call::get(Endpoint::ListMemberships, "lists", path).with_query(query),
                |status, headers, bytes, now| {
                    response::memberships_page(&response::success_json(
                        status, headers, bytes, now,
                    )?)
                },
            )
            .await?;
        Ok(page)
    }

    /// One page of search results. Search is eventually consistent: a miss does not prove a
    /// record absent.
    pub async fn search(
        &self,
        object: ObjectType,
        search: &SearchRequest,
    ) -> Result<SearchPage, Error> {
        let body = request::search_body(search)?;
        let page = self
            .call(
                Call::post(
                    Endpoint::Search,
                    object.path_name(),
                    request::search_path(object),
                    body,
                ),
                |status, headers, bytes, now| {
                    response::search_page(&response::success_json(status, headers, bytes, now)?)
                },
            )
            .await?;
        Ok(page)
    }

    /// Every record whose `property` is one of `values` (an `IN` filter of at most 100 values a
    /// request, every page of 200), with `properties` read. Eventually consistent, as
    /// [`HubSpotClient::search`] is.
    pub async fn search_in(
        &self,
        object: ObjectType,
        property: &str,
        values: &[String],
        properties: &[String],
    ) -> Result<Vec<Record>, Error> {
        let mut records = Vec::new();
        for chunk in values.chunks(MAX_IN_VALUES) {
            let mut after = None;
            loop {
                let search = SearchRequest {
                    filter_groups: vec![FilterGroup {
                        filters: vec![Filter::in_values(property, chunk.to_vec(), false)],
                    }],
                    sorts: Vec::new(),
                    query: None,
                    properties: properties.to_vec(),
                    limit: Some(SEARCH_PAGE),
                    after: after.take(),
                };
                let page = self.search(object, &search).await?;
                records.extend(page.results);
                match page.next_after {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        Ok(records)
    }

    // ----- schema and account -----

    /// Creates a text property (`string`, `text`) on an object type. HubSpot answers 409 when a
    /// property of that name exists: the caller reads the properties first.
    pub async fn create_property(
        &self,
        object: ObjectType,
        property: &NewProperty,
    ) -> Result<PropertyDefinition, Error> {
        let body = serde_json::json!({
            "name": property.name,
            "label": property.label,
            "description": property.description,
            "type": "string",
            "fieldType": "text",
            "groupName": property.group_name,
            "hasUniqueValue": property.unique,
        });
        let name = property.name.clone();
        let created = self
            .call(
                Call::post(
                    Endpoint::PropertyCreate,
                    object.path_name(),
                    request::properties_path(object),
                    body,
                ),
                move |status, headers, bytes, now| {
                    let json = response::success_json(status, headers, bytes, now)?;
                    let wrapped = serde_json::json!({ "results": [json] });
                    response::property_definitions(&wrapped)?
                        .into_iter()
                        .next()
                        .ok_or_else(|| {
                            response::malformed(
                                status,
                                &format!("a created property {name} without its definition"),
                            )
                        })
                },
            )
            .await?;
        Ok(created)
    }

    /// Every property definition of an object type.
    pub async fn properties(&self, object: ObjectType) -> Result<Vec<PropertyDefinition>, Error> {
        let definitions = self
            .call(
                Call::get(
                    Endpoint::Properties,
                    object.path_name(),
                    request::properties_path(object),
                ),
                |status, headers, bytes, now| {
                    response::property_definitions(&response::success_json(
                        status, headers, bytes, now,
                    )?)
                },
            )
            .await?;
        Ok(definitions)
    }

    /// One page of active owners, optionally only the one with `email`.
    pub async fn owners_page(
        &self,
        email: Option<&str>,
        after: Option<&str>,
    ) -> Result<OwnersPage, Error> {
        let query = request::owners_query(email, after);
        let page = self
            .call(
                Call::get(Endpoint::Owners, "owners", request::OWNERS_PATH.to_owned())
                    .with_query(query),
                |status, headers, bytes, now| {
                    response::owners_page(&response::success_json(status, headers, bytes, now)?)
                },
            )
            .await?;
        Ok(page)
    }

    /// Every active owner (all pages), optionally only the one with `email`.
    pub async fn owners(&self, email: Option<&str>) -> Result<Vec<Owner>, Error> {
        let mut owners = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_OWNER_PAGES {
            let page = self.owners_page(email, after.as_deref()).await?;
            owners.extend(page.results);
            match page.next_after {
                Some(next) if Some(&next) != after.as_ref() => after = Some(next),
                _ => return Ok(owners),
            }
        }
        Ok(owners)
    }

    /// The account the token belongs to. Its time zone's offset also sets when the budget
    /// expects the daily quota to reset.
    pub async fn account_details(&self) -> Result<AccountDetails, Error> {
        let details = self
            .call(
                Call::get(
                    Endpoint::AccountDetails,
                    "account",
                    request::ACCOUNT_DETAILS_PATH.to_owned(),
                ),
                |status, headers, bytes, now| {
                    response::account_details(&response::success_json(status, headers, bytes, now)?)
                },
            )
            .await?;
        if let Some(offset) = details.utc_offset_ms {
            self.inner.budget.set_utc_offset(offset);
        }
        Ok(details)
    }

    /// Whether HubSpot answers this token now: one request for the account's details, never
    /// retried, so an outage shows at once instead of after the retry policy's attempts.
    pub async fn probe(&self) -> Result<(), Error> {
        let call = Call::get(
            Endpoint::AccountDetails,
            "account",
            request::ACCOUNT_DETAILS_PATH.to_owned(),
        );
        self.call_limited(call, Some(1), |status, headers, bytes, now| {
            response::account_details(&response::success_json(status, headers, bytes, now)?)
        })
        .await?;
        Ok(())
    }

    // ----- associations -----

    /// Creates labelled or default-typed associations (v4), up to 100 per call. Creating an
    /// association that exists changes nothing, so failures are retried like reads.
    pub async fn create_associations(
        &self,
        from: ObjectType,
        to: ObjectType,
        inputs: &[AssociationInput],
    ) -> Result<Vec<AssociationResult>, Error> {
        let body = request::associations_body(inputs)?;
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let outcomes = self
            .call(
                Call::post(
                    Endpoint::AssociationsCreate,
                    from.path_name(),
                    request::associations_create_path(from, to),
                    body,
                ),
                |status, headers, bytes, now| {
                    response::association_outcomes(status, headers, bytes, now, inputs)
                },
            )
            .await?;
        Ok(inputs
            .iter()
            .zip(outcomes)
            .map(|(input, result)| AssociationResult {
                key: input.trace_id.clone(),
                result,
            })
            .collect())
    }

    // ----- the request loop -----

    /// Sends one request until it succeeds, fails in a way retrying cannot mend, or runs out
    /// of attempts. `parse` turns an answer into the result or a classified failure.
    async fn call<T>(
        &self,
        call: Call,
        parse: impl Fn(u16, &HeaderMap, &[u8], i64) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        self.call_limited(call, None, parse).await
    }

    /// [`Self::call`], with at most `max_attempts` requests when given.
    async fn call_limited<T>(
        &self,
        call: Call,
        max_attempts: Option<u32>,
        parse: impl Fn(u16, &HeaderMap, &[u8], i64) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let retry = RetryParams {
            max_attempts: max_attempts.map_or(self.inner.retry.max_attempts, |most| {
                most.clamp(1, self.inner.retry.max_attempts.max(1))
            }),
            ..self.inner.retry
        };
        let Call {
            endpoint,
            object,
            method,
            path,
            query,
            body,
        } = call;
        let url = self.url(&path, &query);
        let body = body.map(|b| serde_json::to_vec(&b).expect("a JSON value always serializes"));
        let mut attempts = 0;
        loop {
            attempts += 1;
            let slot = self.inner.budget.acquire(endpoint).await;
            if !slot.waited().is_zero() {
                BudgetWaited {
                    endpoint,
                    waited: slot.waited(),
                }
                .emit();
            }
            let started = Instant::now();
            let answer = match self.bearer().await {
                Ok(bearer) => {
                    self.send(method.clone(), url.clone(), body.clone(), &bearer)
                        .await
                }
                Err(failure) => Err(failure),
            };
            let now = self.inner.budget.now_ms();
            let (observation, result) = match answer {
                Ok((status, headers, bytes)) => {
                    let result = parse(status, &headers, &bytes, now);
                    let rate_limited = match &result {
                        Err(Failure {
                            class:
                                ErrorClass::RateLimited {
                                    policy,
                                    retry_after,
                                },
                            ..
                        }) => Some((*policy, *retry_after)),
                        _ => None,
                    };
                    let observation = Observation {
                        status: Some(status),
                        headers: RateLimitHeaders::parse(&headers),
                        rate_limited,
                    };
                    (observation, result)
                }
                Err(failure) => (Observation::default(), Err(failure)),
            };
            RequestCompleted {
                endpoint,
                object,
                status: observation.status,
                elapsed: started.elapsed(),
                attempt: attempts,
            }
            .emit();
            self.inner.budget.complete(slot, &observation);
            let mut failure = match result {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            failure.attempts = attempts;
            let decision = retry::decide(
                &retry,
                attempts,
                &failure,
                endpoint.is_idempotent(),
                self.inner.budget.until_daily_reset(),
                rand::random::<f64>(),
            );
            match decision {
                Decision::Retry(delay) => {
                    RetryScheduled {
                        endpoint,
                        failure: &failure,
                        delay,
                    }
                    .emit();
                    self.inner.sleeper.sleep(delay).await;
                }
                Decision::GiveUp => {
                    CallFailed {
                        endpoint,
                        failure: &failure,
                    }
                    .emit();
                    return Err(failure);
                }
            }
        }
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self.inner.base_url.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}{path}"));
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        url
    }

    /// The token to send: the private app's, or a current OAuth access token.
    async fn bearer(&self) -> Result<Secret, Failure> {
        match &self.inner.auth {
            Auth::Token(token) => Ok(token.clone()),
            Auth::OAuth(source) => source.bearer(&self.inner.http, &self.inner.base_url).await,
        }
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        bearer: &Secret,
    ) -> Result<Answer, Failure> {
        let mut request = self
            .inner
            .http
            .request(method, url)
            .bearer_auth(bearer.expose())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(transport)?;
        Ok((status, headers, bytes.to_vec()))
    }
}

/// One request to make, before the budget and retries.
struct Call {
    endpoint: Endpoint,
    /// The `object` metric label: an object type's path name, or what the call is about.
    object: &'static str,
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Call {
    fn post(endpoint: Endpoint, object: &'static str, path: String, body: Value) -> Self {
        Call {
            endpoint,
            object,
            method: Method::POST,
            path,
            query: Vec::new(),
            body: Some(body),
        }
    }

    fn get(endpoint: Endpoint, object: &'static str, path: String) -> Self {
        Call {
            endpoint,
            object,
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    fn with_query(self, query: Vec<(&'static str, String)>) -> Self {
        Call { query, ..self }
    }
}

fn transport(error: reqwest::Error) -> Failure {
    let kind = if error.is_connect() {
        Transport::Connect
    } else if error.is_timeout() {
        Transport::Timeout
    } else {
        Transport::Other
    };
    // The error's source chain says why (refused, reset, timed out); its URL is ours.
    let error = error.without_url();
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    response::transport_failure(kind, &detail)
}

/// Pairs outcomes (in input order) with their keys.
fn keyed<'a>(
    keys: impl Iterator<Item = &'a str>,
    outcomes: Vec<Result<super::Record, super::InputError>>,
) -> Vec<InputResult> {
    keys.zip(outcomes)
        .map(|(key, result)| InputResult {
            key: key.to_owned(),
            result,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(base_url: &str) -> ClientSettings {
        ClientSettings {
            base_url: base_url.to_owned(),
            request_timeout: Duration::from_secs(30),
            limits: BudgetLimits::for_tier(crate::Tier::Starter),
            retry: RetryParams::default(),
        }
    }

    #[test]
    fn urls_join_the_base_path_and_query() {
        let client = HubSpotClient::new(settings("http://127.0.0.1:9/"), Secret::new("t")).unwrap();
        assert_eq!(
            client
                .url("/crm/v3/owners", &[("email", "a+b@x.io".to_owned())])
                .as_str(),
            "http://127.0.0.1:9/crm/v3/owners?email=a%2Bb%40x.io"
        );
        let proxied =
            HubSpotClient::new(settings("https://proxy.example/hubspot"), Secret::new("t"))
                .unwrap();
        assert_eq!(
            proxied.url("/account-info/v3/details", &[]).as_str(),
            "https://proxy.example/hubspot/account-info/v3/details"
        );
    }

    #[test]
    fn a_bad_base_url_is_refused_naming_the_setting() {
        let error = HubSpotClient::new(settings("api.hubapi.com"), Secret::new("t")).unwrap_err();
        assert!(error.to_string().contains("hubspot.base_url"), "{error}");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let client =
            HubSpotClient::new(settings("http://127.0.0.1:9"), Secret::new("pat-secret")).unwrap();
        assert!(!format!("{client:?}").contains("pat-secret"));
    }

    #[tokio::test]
    async fn oversized_batches_are_refused_without_sending() {
        let client = HubSpotClient::new(settings("http://127.0.0.1:9"), Secret::new("t")).unwrap();
        let inputs: Vec<UpsertInput> = (0..101)
            .map(|i| UpsertInput {
                trace_id: i.to_string(),
                id: format!("c{i}@example.org"),
                properties: Default::default(),
            })
            .collect();
        let error = client
            .batch_upsert(ObjectType::Contacts, "email", &inputs)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Request(_)), "{error}");
        assert_eq!(client.stats().sent, 0);
        assert!(
            client
                .batch_upsert(ObjectType::Contacts, "email", &[])
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// A one-route HTTP server for shape tests: answers every request with `answer(request
    /// line, body)` and keeps what it was sent.
    async fn serve(
        answer: impl Fn(&str, &Value) -> Value + Send + Sync + 'static,
    ) -> (String, Arc<std::sync::Mutex<Vec<(String, Value)>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = seen.clone();
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = kept.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                            let n = stream.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            buffer.extend_from_slice(&chunk[..n]);
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        while buffer.len() < end + 4 + length {
                            let n = stream.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            buffer.extend_from_slice(&chunk[..n]);
                        }
                        let body: Value =
                            serde_json::from_slice(&buffer[end + 4..end + 4 + length])
                                .unwrap_or(Value::Null);
                        buffer.drain(..end + 4 + length);
                        let line = head.lines().next().unwrap_or_default().to_owned();
                        let reply = answer(&line, &body).to_string();
                        seen.lock().unwrap().push((line, body));
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\n\r\n{reply}",
                            reply.len()
                        );
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn history_reads_are_sent_50_ids_at_a_time() {
        let (url, seen) = serve(|_, body| {
            let results: Vec<Value> = body["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|input| {
                    serde_json::json!({"id": input["id"], "properties": {},
                        "propertiesWithHistory": {"firstname": [
                            {"value": "x", "timestamp": "2026-01-01T00:00:00.000Z", "sourceType": "CRM_UI"}
                        ]}})
                })
                .collect();
            serde_json::json!({"status": "COMPLETE", "results": results})
        })
        .await;
        let client = HubSpotClient::new(settings(&url), Secret::new("t")).unwrap();
        let ids: Vec<String> = (1..=120).map(|i| i.to_string()).collect();
        let read = client
            .batch_read_history(
                ObjectType::Contacts,
                &ids,
                &["createdate".into()],
                &["firstname".into()],
            )
            .await
            .unwrap();
        assert_eq!(read.len(), 120);
        assert!(read.iter().zip(&ids).all(|(r, id)| &r.key == id));
        let first = read[0].result.as_ref().unwrap();
        assert_eq!(
            first.history["firstname"][0].timestamp_ms,
            1_767_225_600_000
        );
        let sent = seen.lock().unwrap().clone();
        let sizes: Vec<usize> = sent
            .iter()
            .map(|(_, body)| body["inputs"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [50, 50, 20]);
        assert!(
            sent[0]
                .0
                .starts_with("POST /crm/v3/objects/contacts/batch/read ")
        );
        assert_eq!(
            sent[0].1["propertiesWithHistory"],
            serde_json::json!(["firstname"])
        );
    }

    #[tokio::test]
    async fn archived_and_list_pages_ask_with_their_queries() {
        let (url, seen) = serve(|line, _| {
            if line.contains("join-order") {
                serde_json::json!({"results": [{"recordId": "9", "membershipTimestamp": "2026-01-01T00:00:00.000Z"}]})
            } else if line.contains("/lists/") {
                serde_json::json!({"list": {"listId": "42", "objectTypeId": "0-1", "size": 1}})
            } else {
                serde_json::json!({"results": [{"id": "7", "archived": true, "archivedAt": "2026-01-01T00:00:00.000Z"}],
                    "paging": {"next": {"after": "7"}}})
            }
        })
        .await;
        let client = HubSpotClient::new(settings(&url), Secret::new("t")).unwrap();
        let page = client
            .archived_page(ObjectType::Companies, Some("3"), 100, &["name".into()])
            .await
            .unwrap();
        assert_eq!(page.results[0].archived_at_ms, Some(1_767_225_600_000));
        assert_eq!(page.next_after.as_deref(), Some("7"));
        let list = client.list("42").await.unwrap();
        assert_eq!(list.object_type_id.as_deref(), Some("0-1"));
        let members = client.list_memberships_page("42", None, 250).await.unwrap();
        assert_eq!(members.results[0].record_id, "9");
        let lines: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(l, _)| l.clone())
            .collect();
        assert_eq!(
            lines,
            [
                "GET /crm/v3/objects/companies?archived=true&limit=100&after=3&properties=name HTTP/1.1",
                "GET /crm/v3/lists/42 HTTP/1.1",
                "GET /crm/v3/lists/42/memberships/join-order?limit=250 HTTP/1.1",
            ]
        );
        // A list id that is not digits is refused before anything is sent.
        assert!(matches!(
            client.list("../owners").await,
            Err(Error::Request(_))
        ));
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_refused_connection_is_retryable_and_retried() {
        // A port that was free a moment ago: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let sleeper = Arc::new(super::super::retry::InstantSleeper::new());
        let mut settings = settings(&format!("http://127.0.0.1:{port}"));
        settings.retry = RetryParams {
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
            max_attempts: 3,
        };
        let budget = Arc::new(RequestBudget::new(settings.limits));
        let client =
            HubSpotClient::with_parts(settings, Secret::new("t"), budget, sleeper.clone()).unwrap();
        let error = client.account_details().await.unwrap_err();
        let failure = error.failure().expect("sent");
        assert_eq!(failure.class, ErrorClass::Retryable { retry_after: None });
        assert!(!failure.may_have_applied);
        assert_eq!(failure.attempts, 3);
        assert_eq!(sleeper.slept().len(), 2);
        assert_eq!(client.stats().failed, 3);
    }
}
