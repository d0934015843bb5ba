//! The HubSpot API client hubsync's stages use: typed batch writes and reads, search,
//! properties, owners, account details and v4 associations, within HubSpot's rate limits.
//! A crate of its own so that what speaks HubSpot (and the tier table the development sandbox
//! enforces) is one small face, with no knowledge of Kafka, configuration files or rules.
//!
//! # Layout
//! - [`ObjectType`] (here): the object types, their API names and type ids, and how a command's
//!   object maps to one.
//! - [`tier`]: the subscription tiers and their published limits.
//! - `secret`: the redacting [`Secret`] the token travels in.
//! - [`request`]: pure: typed inputs to request paths and JSON bodies; refuses batches HubSpot
//!   would refuse (more than 100 inputs, an input twice) before anything is sent.
//! - [`response`]: pure: status, headers and body to a classified result; per-input outcomes of a
//!   batch matched back to their inputs by `objectWriteTraceId`, id or unique property.
//! - [`retry`]: pure retry decisions (capped exponential backoff with full jitter, server hints
//!   first) and the injectable [`retry::Sleeper`].
//! - [`budget`]: the client-side rate limiter: a local model of the rolling ten-second window, the
//!   search limit and the daily quota, corrected by HubSpot's rate-limit headers and 429s.
//! - [`client`]: the only module that does HTTP: one shared `reqwest::Client`, the retry loop.
//! - `events`: telemetry events, each logging and counting at once.
//!
//! Every failure carries an [`ErrorClass`] saying whose fault it is and what to do: retry,
//! wait for the rate limit, pause and alert (auth), dead-letter (data), or resolve a conflict.

pub mod budget;
pub mod client;
mod events;
pub mod oauth;
pub mod request;
pub mod response;
pub mod retry;
mod secret;
pub mod tier;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use budget::{
    BudgetLimits, BudgetStats, BudgetUsage, Clock, EndpointStats, ManualClock, RequestBudget,
    SystemClock,
};
pub use client::{BuildError, ClientSettings, HubSpotClient};
pub use oauth::OAuthSettings;
pub use request::{
    AssociationCategory, AssociationInput, AssociationType, CreateInput, Filter, FilterGroup,
    InlineAssociation, MAX_ARCHIVED_PAGE, MAX_BATCH_INPUTS, MAX_HISTORY_INPUTS, MAX_LIST_PAGE,
    Operator, RequestError, SearchRequest, Sort, SortDirection, UpdateInput, UpsertInput,
};
pub use retry::{RetryParams, Sleeper, TokioSleeper};
pub use secret::Secret;
pub use tier::{Tier, TierLimits};

/// The HubSpot object types hubsync reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    Contacts,
    Companies,
    Deals,
    Notes,
    Emails,
    Calls,
    Tasks,
    Meetings,
}

impl ObjectType {
    pub const ALL: [ObjectType; 8] = [
        ObjectType::Contacts,
        ObjectType::Companies,
        ObjectType::Deals,
        ObjectType::Notes,
        ObjectType::Emails,
        ObjectType::Calls,
        ObjectType::Tasks,
        ObjectType::Meetings,
    ];

    /// Accepts the plural path name, the singular, and the object type id (`0-1`...), as HubSpot
    /// does in paths and association requests.
    pub fn parse(raw: &str) -> Option<Self> {
        let lower = raw.to_ascii_lowercase();
        ObjectType::ALL.into_iter().find(|object| {
            lower == object.path_name() || lower == object.singular() || lower == object.type_id()
        })
    }

    /// The object type id HubSpot uses in association APIs (`0-1` for contacts).
    pub fn type_id(self) -> &'static str {
        match self {
            ObjectType::Contacts => "0-1",
            ObjectType::Companies => "0-2",
            ObjectType::Deals => "0-3",
            ObjectType::Notes => "0-46",
            ObjectType::Emails => "0-49",
            ObjectType::Calls => "0-48",
            ObjectType::Tasks => "0-27",
            ObjectType::Meetings => "0-47",
        }
    }

    /// The singular name (`contact`).
    pub fn singular(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contact",
            ObjectType::Companies => "company",
            ObjectType::Deals => "deal",
            ObjectType::Notes => "note",
            ObjectType::Emails => "email",
            ObjectType::Calls => "call",
            ObjectType::Tasks => "task",
            ObjectType::Meetings => "meeting",
        }
    }

    /// The HubSpot object a command's object names; `None` for an object hubsync does not write.
    pub fn of_command(object: hubsync_schemas::HubSpotObjectType) -> Option<Self> {
        use hubsync_schemas::HubSpotObjectType as Command;
        Some(match object {
            Command::Contact => ObjectType::Contacts,
            Command::Company => ObjectType::Companies,
            Command::Deal => ObjectType::Deals,
            Command::Note => ObjectType::Notes,
            Command::Email => ObjectType::Emails,
            Command::Call => ObjectType::Calls,
            Command::Task => ObjectType::Tasks,
            Command::Meeting => ObjectType::Meetings,
            Command::Unknown => return None,
        })
    }

    /// The name in API paths (`/crm/v3/objects/contacts`).
    pub fn path_name(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
            ObjectType::Deals => "deals",
            ObjectType::Notes => "notes",
            ObjectType::Emails => "emails",
            ObjectType::Calls => "calls",
            ObjectType::Tasks => "tasks",
            ObjectType::Meetings => "meetings",
        }
    }

    /// The five activity types (engagements).
    pub fn is_activity(self) -> bool {
        matches!(
            self,
            ObjectType::Notes
                | ObjectType::Emails
                | ObjectType::Calls
                | ObjectType::Tasks
                | ObjectType::Meetings
        )
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path_name())
    }
}

/// Property values as written: HubSpot takes every value as a string; `""` clears a value.
pub type Properties = BTreeMap<String, String>;

/// A CRM record as HubSpot returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// `hs_object_id`.
    pub id: String,
    /// The properties asked for or written; `None` where the record has no value.
    pub properties: BTreeMap<String, Option<String>>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub archived: bool,
    /// Upserts only: whether the record was created by this call.
    pub new: Option<bool>,
}

impl Record {
    /// A property's value, `None` when absent or empty.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)
            .and_then(|v| v.as_deref())
            .filter(|v| !v.is_empty())
    }
}

/// The outcome of one input of a batch, in input order. `key` is the input's trace id for
/// writes and the requested id for reads.
#[derive(Debug, Clone, PartialEq)]
pub struct InputResult {
    pub key: String,
    pub result: Result<Record, InputError>,
}

/// Why one input of a batch failed while others may have succeeded (a 207's `errors`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{category}: {message}")]
pub struct InputError {
    pub class: ErrorClass,
    /// HubSpot's category (`VALIDATION_ERROR`, `OBJECT_NOT_FOUND`, `CONFLICT`...).
    pub category: String,
    pub message: String,
    /// HubSpot's `context`, every value as a list (`objectWriteTraceId`, `ids`, `existingId`...).
    pub context: BTreeMap<String, Vec<String>>,
}

/// The rate-limit policy a 429 names in `policyName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RateLimitPolicy {
    /// The per-app rolling ten-second window.
    TenSecondlyRolling,
    /// The per-account daily quota; it resets at midnight in the account's time zone.
    Daily,
    /// Search's per-second limit.
    Secondly,
}

impl RateLimitPolicy {
    pub fn name(self) -> &'static str {
        match self {
            RateLimitPolicy::TenSecondlyRolling => "TEN_SECONDLY_ROLLING",
            RateLimitPolicy::Daily => "DAILY",
            RateLimitPolicy::Secondly => "SECONDLY",
        }
    }
}

/// One failed property of a write, from HubSpot's `Property values were not valid: [...]` list
/// or from an error's `errors` details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyError {
    pub name: String,
    /// `INVALID_OPTION`, `PROPERTY_DOESNT_EXIST`, `INVALID_EMAIL`, `READ_ONLY_VALUE`...
    pub code: String,
    pub message: String,
}

/// Whose fault a failure is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorClass {
    /// A timeout, a connection failure, 408, or a 5xx other than 501: try again later.
    Retryable { retry_after: Option<Duration> },
    /// A 429: wait for the named window. `retry_after` is the server's hint, when it sent one.
    RateLimited {
        policy: RateLimitPolicy,
        retry_after: Option<Duration>,
    },
    /// 401 or 403: the token is invalid, expired or lacks scopes. Pause and alert; never
    /// dead-letter records for it. The category says which (`INVALID_AUTHENTICATION`,
    /// `EXPIRED_AUTHENTICATION`, `MISSING_SCOPES`).
    Auth { missing_scopes: Vec<String> },
    /// The request or a record is wrong: retrying cannot help. For a whole batch, split it to
    /// find the bad input; for one input, dead-letter it with the category and message.
    /// `property_errors` lists the properties HubSpot named, when it named any.
    Data { property_errors: Vec<PropertyError> },
    /// A unique value (a contact's email) already belongs to the record `existing_id`.
    Conflict { existing_id: String },
    /// The record (or route) does not exist.
    NotFound,
}

impl ErrorClass {
    /// Whether waiting and sending the same request again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ErrorClass::Retryable { .. } | ErrorClass::RateLimited { .. }
        )
    }

    /// A low-cardinality name, for metrics and outcome reasons.
    pub fn label(&self) -> &'static str {
        match self {
            ErrorClass::Retryable { .. } => "retryable",
            ErrorClass::RateLimited { .. } => "rate_limited",
            ErrorClass::Auth { .. } => "auth",
            ErrorClass::Data { .. } => "data",
            ErrorClass::Conflict { .. } => "conflict",
            ErrorClass::NotFound => "not_found",
        }
    }
}

/// A call that failed as a whole, after the retries its class allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Failure {
    pub class: ErrorClass,
    /// The HTTP status, absent when no answer came (timeout, connection failure).
    pub status: Option<u16>,
    /// HubSpot's category (`VALIDATION_ERROR`, `INVALID_AUTHENTICATION`, `RATE_LIMIT`...), or
    /// ours when HubSpot gave none (`TIMEOUT`, `CONNECTION`, `HTTP_<status>`...).
    pub category: String,
    /// HubSpot's message, or what went wrong on the way.
    pub message: String,
    /// HubSpot's `correlationId`, for its support.
    pub correlation_id: Option<String>,
    /// Whether HubSpot may have applied the request although it failed (a timeout, a 5xx, an
    /// empty answer). A create that may have been applied must not be sent again blindly.
    pub may_have_applied: bool,
    /// Requests sent for this call, the last one included.
    pub attempts: u32,
}

impl Failure {
    pub(crate) fn new(
        class: ErrorClass,
        status: Option<u16>,
        category: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Failure {
            class,
            status,
            category: category.into(),
            message: message.into(),
            correlation_id: None,
            may_have_applied: false,
            attempts: 1,
        }
    }

    fn describe(&self) -> String {
        let status = self
            .status
            .map_or_else(|| "no answer".to_owned(), |s| format!("status {s}"));
        let attempts = if self.attempts > 1 {
            format!(" after {} attempts", self.attempts)
        } else {
            String::new()
        };
        let advice = match &self.class {
            ErrorClass::Retryable { .. } => "hubspot or the network failed; retry later",
            ErrorClass::RateLimited { policy, .. } => match policy {
                RateLimitPolicy::Daily => {
                    "the daily api quota is spent; writes resume after midnight in the account's \
                     time zone, or lower hubspot.daily_limit when other apps share the account"
                }
                _ => {
                    "hubspot's rate limit was hit; lower hubspot.requests_per_10s if other apps \
                     share the account"
                }
            },
            ErrorClass::Auth { .. } => {
                "hubspot refused the token; check hubspot.token and the private app's scopes"
            }
            ErrorClass::Data { .. } => "hubspot refused the data; fix the record or the mapping",
            ErrorClass::Conflict { .. } => {
                "the record already exists; update the existing record instead"
            }
            ErrorClass::NotFound => "the record does not exist in hubspot",
        };
        format!(
            "hubspot call failed ({status}{attempts}): {}: {}: {advice}",
            self.category, self.message
        )
    }
}

/// Why a call returned no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Refused before anything was sent: the caller built a request HubSpot would refuse.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Sent, and failed as a whole.
    #[error(transparent)]
    Failed(#[from] Failure),
}

impl Error {
    /// The failure's class; `None` for a request refused before sending.
    pub fn class(&self) -> Option<&ErrorClass> {
        match self {
            Error::Request(_) => None,
            Error::Failed(failure) => Some(&failure.class),
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::Request(_) => None,
            Error::Failed(failure) => Some(failure),
        }
    }
}

/// A property definition from `GET /crm/v3/properties/{objectType}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyDefinition {
    pub name: String,
    pub label: String,
    /// `bool`, `date`, `datetime`, `enumeration`, `number`, `phone_number`, `string`.
    pub kind: String,
    pub field_type: String,
    pub group_name: String,
    pub options: Vec<PropertyOption>,
    pub has_unique_value: bool,
    /// HubSpot computes the value; writes are refused.
    pub read_only: bool,
    pub calculated: bool,
    pub hidden: bool,
    pub archived: bool,
}

/// A text property hubsync creates for its own bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProperty {
    pub name: String,
    pub label: String,
    pub description: String,
    pub group_name: String,
    pub unique: bool,
}

/// An enumeration option; writes must use `value`, matched exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyOption {
    pub label: String,
    pub value: String,
    pub hidden: bool,
}

/// A HubSpot user or queue that can own records; `id` is the value for `hubspot_owner_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub user_id: Option<u64>,
    /// `PERSON` or `QUEUE`.
    pub kind: String,
    pub teams: Vec<Team>,
    pub archived: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: String,
    pub name: Option<String>,
    pub primary: bool,
}

/// The account a token belongs to, from `GET /account-info/v3/details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDetails {
    pub portal_id: u64,
    pub time_zone: Option<String>,
    /// The account time zone's current offset from UTC.
    pub utc_offset_ms: Option<i64>,
    pub account_type: Option<String>,
    pub company_currency: Option<String>,
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// Matches of the whole query, not of this page.
    pub total: u64,
    pub results: Vec<Record>,
    /// The cursor for the next page; `None` on the last.
    pub next_after: Option<String>,
}

/// One value a property had, from a read with `propertiesWithHistory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyVersion {
    /// The value as HubSpot stores it; `""` for a cleared value.
    pub value: String,
    /// When the value was set, epoch milliseconds.
    pub timestamp_ms: i64,
    /// What set it (`sourceType`): `CRM_UI`, `INTEGRATION`, `IMPORT`, `API`,
    /// `AUTOMATION_PLATFORM`...; HubSpot publishes no closed list.
    pub source_type: Option<String>,
    /// Who or which app set it (`sourceId`): `userId:<id>` for a user, the app id for an
    /// integration.
    pub source_id: Option<String>,
}

/// A record read with the history of some of its properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordHistory {
    /// The record as a plain read returns it (its `properties` hold the current values of the
    /// properties asked for).
    pub record: Record,
    /// `createdAt` (or `createdate`), epoch milliseconds.
    pub created_ms: Option<i64>,
    /// `updatedAt` (or `hs_lastmodifieddate` / `lastmodifieddate`), epoch milliseconds.
    pub updated_ms: Option<i64>,
    /// Per property asked for with history, its versions newest first; a property that never
    /// had a value has none.
    pub history: BTreeMap<String, Vec<PropertyVersion>>,
}

/// The outcome of one input of a read with history, in input order; `key` is the requested id.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryResult {
    pub key: String,
    pub result: Result<RecordHistory, InputError>,
}

/// A deleted (archived) record, from `GET /crm/v3/objects/{type}?archived=true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedRecord {
    pub id: String,
    /// `archivedAt`, epoch milliseconds; `None` when HubSpot did not say.
    pub archived_at_ms: Option<i64>,
    /// `updatedAt`, epoch milliseconds.
    pub updated_ms: Option<i64>,
}

/// One page of archived records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedPage {
    pub results: Vec<ArchivedRecord>,
    pub next_after: Option<String>,
}

/// A list's definition, from `GET /crm/v3/lists/{listId}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListInfo {
    pub list_id: String,
    pub name: Option<String>,
    /// The type of the list's records (`0-1` for contacts).
    pub object_type_id: Option<String>,
    /// `MANUAL`, `DYNAMIC` or `SNAPSHOT`.
    pub processing_type: Option<String>,
    /// `COMPLETE`, `PROCESSING`...
    pub processing_status: Option<String>,
    /// Members, as HubSpot counts them.
    pub size: Option<u64>,
}

/// One member of a list, from its join-order memberships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMembership {
    pub record_id: String,
    /// When the record joined the list, epoch milliseconds.
    pub joined_ms: Option<i64>,
}

/// One page of a list's members, in join order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipsPage {
    pub results: Vec<ListMembership>,
    pub next_after: Option<String>,
}

/// One page of owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnersPage {
    pub results: Vec<Owner>,
    pub next_after: Option<String>,
}

/// An association created by the v4 batch endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationLink {
    pub from_id: String,
    pub to_id: String,
    pub labels: Vec<String>,
}

/// The outcome of one association input, in input order; `key` is the input's trace id.
#[derive(Debug, Clone, PartialEq)]
pub struct AssociationResult {
    pub key: String,
    pub result: Result<AssociationLink, InputError>,
}

/// The calls the client makes, as metric labels and for the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    BatchCreate,
    BatchUpdate,
    BatchUpsert,
    BatchRead,
    Search,
    Properties,
    PropertyCreate,
    Owners,
    AccountDetails,
    AssociationsCreate,
    /// Listing records (the archived ones).
    ObjectsList,
    List,
    ListMemberships,
}

impl Endpoint {
    /// The route template: low-cardinality, the object type left as a placeholder.
    pub fn template(self) -> &'static str {
        match self {
            Endpoint::BatchCreate => "POST /crm/v3/objects/{objectType}/batch/create",
            Endpoint::BatchUpdate => "POST /crm/v3/objects/{objectType}/batch/update",
            Endpoint::BatchUpsert => "POST /crm/v3/objects/{objectType}/batch/upsert",
            Endpoint::BatchRead => "POST /crm/v3/objects/{objectType}/batch/read",
            Endpoint::Search => "POST /crm/v3/objects/{objectType}/search",
            Endpoint::Properties => "GET /crm/v3/properties/{objectType}",
            Endpoint::PropertyCreate => "POST /crm/v3/properties/{objectType}",
            Endpoint::Owners => "GET /crm/v3/owners",
            Endpoint::AccountDetails => "GET /account-info/v3/details",
            Endpoint::AssociationsCreate => "POST /crm/v4/associations/{from}/{to}/batch/create",
            Endpoint::ObjectsList => "GET /crm/v3/objects/{objectType}",
            Endpoint::List => "GET /crm/v3/lists/{listId}",
            Endpoint::ListMemberships => "GET /crm/v3/lists/{listId}/memberships/join-order",
        }
    }

    /// Search has its own per-second limit and answers without rate-limit headers.
    pub fn is_search(self) -> bool {
        self == Endpoint::Search
    }

    /// Whether sending the request twice has the same effect as once. A create is not: when
    /// it may have been applied, it is handed back to the caller instead of being sent again.
    pub fn is_idempotent(self) -> bool {
        self != Endpoint::BatchCreate
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.template())
    }
}
