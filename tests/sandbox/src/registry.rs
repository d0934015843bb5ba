//! A Confluent-compatible schema registry, in memory: the REST subset Kafka clients and
//! serializers use, with Confluent's status codes, error codes and messages.
//!
//! | request | answer |
//! |---|---|
//! | `POST /subjects/{s}/versions` `{"schema", "schemaType"?}` | `{"id"}`: registers, or finds the identical schema |
//! | `POST /subjects/{s}` `{"schema"}` | `{"subject","id","version","schema"}` of that schema under `s` |
//! | `GET /schemas/ids/{id}` | `{"schema"}` |
//! | `GET /schemas/ids/{id}/versions` | `[{"subject","version"}]` |
//! | `GET /schemas/ids/{id}/subjects` | `["subject"]` |
//! | `GET /schemas/types` | `["AVRO"]` |
//! | `GET /subjects` | `["subject"]` |
//! | `GET /subjects/{s}/versions` | `[1, 2]` |
//! | `GET /subjects/{s}/versions/{n, latest, -1}` | `{"subject","id","version","schema"}` |
//! | `GET /subjects/{s}/versions/{v}/schema` | the schema text alone |
//! | `DELETE /subjects/{s}` (`?permanent=true`) | `[1, 2]`: the versions deleted |
//! | `POST /compatibility/subjects/{s}/versions[/{v}]` (`?verbose=true`) | `{"is_compatible"}` (+ `"messages"`) |
//! | `GET`/`PUT /config` | `{"compatibilityLevel"}` / `{"compatibility"}` |
//! | `GET`/`PUT`/`DELETE /config/{s}` (`?defaultToGlobal=true`) | the same, per subject |
//!
//! Only Avro is stored; schema references are refused. Two schemas are the same schema when
//! their parsed forms are equal, written out in full (docs and defaults included, whitespace
//! and key order not): the same schema gets one id everywhere, and registering it again under a
//! subject that has it returns the existing id. Compatibility is Avro schema resolution, strict:
//! a reader that can resolve only some of a writer's data is incompatible.
//!
//! Request bodies are read as JSON whatever their content type says; every answer is
//! `application/vnd.schemaregistry.v1+json`. [`SchemaRegistry::set_available`] makes every
//! request fail with `503`, for tests of a registry outage.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::RunningServer;

/// The media type of every answer.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// How a subject's new schema must relate to its earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompatibilityLevel {
    /// No check.
    None,
    /// The new schema reads data written with the latest one.
    #[default]
    Backward,
    /// The new schema reads data written with every earlier one.
    BackwardTransitive,
    /// The latest schema reads data written with the new one.
    Forward,
    /// Every earlier schema reads data written with the new one.
    ForwardTransitive,
    /// Backward and forward, against the latest schema.
    Full,
    /// Backward and forward, against every earlier schema.
    FullTransitive,
}

impl CompatibilityLevel {
    pub const ALL: [CompatibilityLevel; 7] = [
        CompatibilityLevel::None,
        CompatibilityLevel::Backward,
        CompatibilityLevel::BackwardTransitive,
        CompatibilityLevel::Forward,
        CompatibilityLevel::ForwardTransitive,
        CompatibilityLevel::Full,
        CompatibilityLevel::FullTransitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn backward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Backward
                | CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Forward
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatibilityLevel {
    type Err = RegistryError;

    /// Case-insensitive, as Confluent accepts it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CompatibilityLevel::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or(RegistryError::InvalidCompatibilityLevel)
    }
}

/// A refused request, with Confluent's HTTP status, `error_code` and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema not found")]
    SchemaNotFound,
    #[error("Schema {0} not found")]
    SchemaIdNotFound(u32),
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectLevelNotConfigured(String),
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
        .messages.join(", ")
    )]
    Incompatible {
        subject: String,
        messages: Vec<String>,
    },
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    #[error(
        "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
    )]
    InvalidCompatibilityLevel,
    #[error("Unrecognized request body: {0}")]
    BadRequest(String),
    #[error("Schema registry unavailable")]
    Unavailable,
    #[error("HTTP 404 Not Found")]
    NoRoute,
    #[error("HTTP 405 Method Not Allowed")]
    NoMethod,
}

impl RegistryError {
    pub fn status(&self) -> StatusCode {
        match self {
            RegistryError::SubjectNotFound(_)
            | RegistryError::VersionNotFound(_)
            | RegistryError::SchemaNotFound
            | RegistryError::SchemaIdNotFound(_)
            | RegistryError::SubjectSoftDeleted(_)
            | RegistryError::SubjectNotSoftDeleted(_)
            | RegistryError::SubjectLevelNotConfigured(_)
            | RegistryError::NoRoute => StatusCode::NOT_FOUND,
            RegistryError::NoMethod => StatusCode::METHOD_NOT_ALLOWED,
            RegistryError::Incompatible { .. } => StatusCode::CONFLICT,
            RegistryError::InvalidSchema(_)
            | RegistryError::InvalidVersion(_)
            | RegistryError::InvalidCompatibilityLevel => StatusCode::UNPROCESSABLE_ENTITY,
            RegistryError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RegistryError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Confluent's `error_code`.
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound(_) => 40402,
            RegistryError::SchemaNotFound | RegistryError::SchemaIdNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::SubjectLevelNotConfigured(_) => 40408,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibilityLevel => 42203,
            RegistryError::BadRequest(_) => 400,
            RegistryError::Unavailable => 50003,
            RegistryError::NoRoute => 404,
            RegistryError::NoMethod => 405,
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.error_code(), "message": self.to_string()});
        reply(self.status(), &body)
    }
}

/// A registered subject version, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
}

/// The in-memory registry; clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct SchemaRegistry {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<Store>,
    unavailable: AtomicBool,
    requests: AtomicU64,
}

/// Everything the registry stores; one lock, never held across an await.
#[derive(Debug, Default)]
struct Store {
    /// Schemas by id - 1.
    schemas: Vec<StoredSchema>,
    /// Id of each schema by its normalized form.
    ids: HashMap<String, u32>,
    subjects: BTreeMap<String, Subject>,
    global_level: CompatibilityLevel,
}

#[derive(Debug)]
struct StoredSchema {
    /// The text as first registered.
    text: String,
    parsed: Schema,
}

#[derive(Debug, Default)]
struct Subject {
    /// Every version ever registered, oldest first, soft-deleted ones included.
    versions: Vec<SubjectVersion>,
    level: Option<CompatibilityLevel>,
}

#[derive(Debug, Clone, Copy)]
struct SubjectVersion {
    version: u32,
    id: u32,
    deleted: bool,
}

impl Subject {
    fn live(&self) -> impl Iterator<Item = &SubjectVersion> {
        self.versions.iter().filter(|v| !v.deleted)
    }

    fn visible(&self, deleted: bool) -> impl Iterator<Item = &SubjectVersion> {
        self.versions.iter().filter(move |v| deleted || !v.deleted)
    }
}

/// A schema parsed from a request, with the form it is compared by.
struct Candidate {
    text: String,
    parsed: Schema,
    normalized: String,
}

fn parse_candidate(text: &str) -> Result<Candidate, RegistryError> {
    if text.trim().is_empty() {
        return Err(RegistryError::InvalidSchema("empty schema".to_owned()));
    }
    let parsed =
        Schema::parse_str(text).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    let normalized = normalize(&parsed)?;
    Ok(Candidate {
        text: text.to_owned(),
        parsed,
        normalized,
    })
}

/// The full JSON form of a parsed schema: equal for schemas that differ only in whitespace,
/// key order or how names are qualified, different when a doc or default differs.
fn normalize(schema: &Schema) -> Result<String, RegistryError> {
    serde_json::to_string(schema).map_err(|e| RegistryError::InvalidSchema(e.to_string()))
}

/// Which version(s) of a subject a request names.
#[derive(Debug, Clone, Copy)]
enum VersionRef {
    Latest,
    Number(u32),
}

impl VersionRef {
    fn parse(raw: &str) -> Result<Self, RegistryError> {
        match raw {
            "latest" | "-1" => Ok(VersionRef::Latest),
            _ => match raw.parse::<i64>() {
                Ok(n) if (1..=i64::from(i32::MAX)).contains(&n) => Ok(VersionRef::Number(n as u32)),
                _ => Err(RegistryError::InvalidVersion(raw.to_owned())),
            },
        }
    }
}

impl Store {
    fn subject(&self, name: &str) -> Result<&Subject, RegistryError> {
        self.subjects
            .get(name)
            .filter(|s| s.live().next().is_some())
            .ok_or_else(|| RegistryError::SubjectNotFound(name.to_owned()))
    }

    fn level_of(&self, subject: &str) -> CompatibilityLevel {
        self.subjects
            .get(subject)
            .and_then(|s| s.level)
            .unwrap_or(self.global_level)
    }

    fn stored(&self, id: u32) -> Option<&StoredSchema> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.schemas.get(index)
    }

    fn shown(&self, subject: &str, v: SubjectVersion) -> Result<RegisteredVersion, RegistryError> {
        let stored = self
            .stored(v.id)
            .ok_or(RegistryError::SchemaIdNotFound(v.id))?;
        Ok(RegisteredVersion {
            subject: subject.to_owned(),
            version: v.version,
            id: v.id,
            schema: stored.text.clone(),
        })
    }

    fn version(&self, subject: &str, which: VersionRef) -> Result<SubjectVersion, RegistryError> {
        let entry = self.subject(subject)?;
        let found = match which {
            VersionRef::Latest => entry.live().last(),
            VersionRef::Number(n) => entry.live().find(|v| v.version == n),
        };
        found.copied().ok_or_else(|| {
            RegistryError::VersionNotFound(match which {
                VersionRef::Latest => "latest".to_owned(),
                VersionRef::Number(n) => n.to_string(),
            })
        })
    }

    /// Messages saying why `candidate` may not follow `existing` (newest last) under `level`;
    /// empty when it may.
    fn incompatibilities(
        &self,
        candidate: &Schema,
        existing: &[SubjectVersion],
        level: CompatibilityLevel,
    ) -> Vec<String> {
        if level == CompatibilityLevel::None {
            return Vec::new();
        }
        let against: &[SubjectVersion] = if level.transitive() {
            existing
        } else {
            existing.last().map(std::slice::from_ref).unwrap_or(&[])
        };
        let mut messages = Vec::new();
        for v in against.iter().rev() {
            let Some(old) = self.stored(v.id) else {
                continue;
            };
            if level.backward()
                && let Err(why) = can_read(&old.parsed, candidate)
            {
                messages.push(format!(
                    "Incompatibility{{type:BACKWARD, version:{}, description:'the new schema cannot read data written with version {}: {why}'}}",
                    v.version, v.version
                ));
            }
            if level.forward()
                && let Err(why) = can_read(candidate, &old.parsed)
            {
                messages.push(format!(
                    "Incompatibility{{type:FORWARD, version:{}, description:'version {} cannot read data written with the new schema: {why}'}}",
                    v.version, v.version
                ));
            }
        }
        messages
    }

    fn register(&mut self, subject: &str, candidate: Candidate) -> Result<u32, RegistryError> {
        if let Some(entry) = self.subjects.get(subject) {
            for v in entry.live() {
                if self.schemas_equal(v.id, &candidate.normalized) {
                    return Ok(v.id);
                }
            }
        }
        let live: Vec<SubjectVersion> = self
            .subjects
            .get(subject)
            .map(|s| s.live().copied().collect())
            .unwrap_or_default();
        let messages = self.incompatibilities(&candidate.parsed, &live, self.level_of(subject));
        if !messages.is_empty() {
            return Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                messages,
            });
        }
        let id = match self.ids.get(&candidate.normalized) {
            Some(id) => *id,
            None => {
                let id = u32::try_from(self.schemas.len() + 1)
                    .map_err(|_| RegistryError::InvalidSchema("registry is full".to_owned()))?;
                self.ids.insert(candidate.normalized, id);
                self.schemas.push(StoredSchema {
                    text: candidate.text,
                    parsed: candidate.parsed,
                });
                id
            }
        };
        let entry = self.subjects.entry(subject.to_owned()).or_default();
        let version = entry.versions.last().map_or(1, |v| v.version + 1);
        entry.versions.push(SubjectVersion {
            version,
            id,
            deleted: false,
        });
        Ok(id)
    }

    fn schemas_equal(&self, id: u32, normalized: &str) -> bool {
        self.ids.get(normalized) == Some(&id)
    }
}

/// Strict Avro resolution: `Ok` only when every datum of `writer` resolves to `reader`.
fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err("only some of its data resolves".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

impl SchemaRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves consistent data (every change is one push).
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers `schema` (Avro JSON) under `subject`, as `POST /subjects/{subject}/versions`.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let candidate = parse_candidate(schema)?;
        self.state().register(subject, candidate)
    }

    /// The schema text with id `id`.
    pub fn schema_by_id(&self, id: u32) -> Option<String> {
        self.state().stored(id).map(|s| s.text.clone())
    }

    /// The latest live version of `subject`.
    pub fn latest(&self, subject: &str) -> Result<RegisteredVersion, RegistryError> {
        let state = self.state();
        let v = state.version(subject, VersionRef::Latest)?;
        state.shown(subject, v)
    }

    /// Subjects with at least one live version, sorted.
    pub fn subjects(&self) -> Vec<String> {
        let state = self.state();
        state
            .subjects
            .iter()
            .filter(|(_, s)| s.live().next().is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn global_level(&self) -> CompatibilityLevel {
        self.state().global_level
    }

    pub fn set_global_level(&self, level: CompatibilityLevel) {
        self.state().global_level = level;
    }

    pub fn set_subject_level(&self, subject: &str, level: CompatibilityLevel) {
        self.state()
            .subjects
            .entry(subject.to_owned())
            .or_default()
            .level = Some(level);
    }

    /// While unavailable, every request is answered `503` (error code 50003).
    pub fn set_available(&self, available: bool) {
        self.shared.unavailable.store(!available, Ordering::SeqCst);
    }

    /// HTTP requests received so far, refused ones included.
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The REST API.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(root))
            .route("/schemas/types", get(schema_types))
            .route("/schemas/ids/{id}", get(schema_by_id))
            .route("/schemas/ids/{id}/versions", get(versions_of_id))
            .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
            .route("/subjects", get(list_subjects))
            .route("/subjects/{subject}", post(lookup).delete(delete_subject))
            .route(
                "/subjects/{subject}/versions",
                get(list_versions).post(register),
            )
            .route("/subjects/{subject}/versions/{version}", get(get_version))
            .route(
                "/subjects/{subject}/versions/{version}/schema",
                get(get_version_schema),
            )
            .route(
                "/compatibility/subjects/{subject}/versions",
                post(check_against_level),
            )
            .route(
                "/compatibility/subjects/{subject}/versions/{version}",
                post(check_against_version),
            )
            .route("/config", get(get_global_config).put(put_global_config))
            .route(
                "/config/{subject}",
                get(get_subject_config)
                    .put(put_subject_config)
                    .delete(delete_subject_config),
            )
            .fallback(no_route)
            .method_not_allowed_fallback(no_method)
            .layer(middleware::from_fn_with_state(self.clone(), gate))
            .with_state(self.clone())
    }

    /// Serves the API on `addr` (port 0 picks a free port).
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<RunningServer> {
        RunningServer::spawn(self.router(), addr).await
    }
}

fn reply(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn ok(body: Value) -> Response {
    reply(StatusCode::OK, &body)
}

/// Counts every request and refuses all of them while the registry is unavailable.
async fn gate(State(registry): State<SchemaRegistry>, request: Request, next: Next) -> Response {
    registry.shared.requests.fetch_add(1, Ordering::SeqCst);
    if registry.shared.unavailable.load(Ordering::SeqCst) {
        return RegistryError::Unavailable.into_response();
    }
    next.run(request).await
}

async fn no_route() -> RegistryError {
    RegistryError::NoRoute
}

async fn no_method() -> RegistryError {
    RegistryError::NoMethod
}

type Flags = Query<HashMap<String, String>>;

fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A schema as sent to register, look up or check.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: Option<String>,
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

/// Parses a schema request whatever its content type, and the schema in it.
fn candidate_from(body: &Bytes) -> Result<Candidate, RegistryError> {
    let request: SchemaBody =
        serde_json::from_slice(body).map_err(|e| RegistryError::BadRequest(e.to_string()))?;
    if let Some(kind) = request.schema_type.as_deref()
        && !kind.eq_ignore_ascii_case("AVRO")
    {
        return Err(RegistryError::InvalidSchema(format!(
            "schema type {kind} is not supported; this registry stores AVRO schemas only"
        )));
    }
    if !request.references.is_empty() {
        return Err(RegistryError::InvalidSchema(
            "schema references are not supported; send a self-contained schema".to_owned(),
        ));
    }
    let text = request
        .schema
        .ok_or_else(|| RegistryError::InvalidSchema("empty schema".to_owned()))?;
    parse_candidate(&text)
}

/// An id that is not a number matches no route, as in Confluent.
fn parse_id(raw: &str) -> Result<u32, RegistryError> {
    raw.parse::<u32>().map_err(|_| RegistryError::NoRoute)
}

fn version_json(v: &RegisteredVersion) -> Value {
    json!({"subject": v.subject, "version": v.version, "id": v.id, "schema": v.schema})
}

async fn root() -> Response {
    ok(json!({}))
}

async fn schema_types() -> Response {
    ok(json!(["AVRO"]))
}

async fn register(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let candidate = candidate_from(&body)?;
    let id = registry.state().register(&subject, candidate)?;
    Ok(ok(json!({"id": id})))
}

async fn lookup(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
    Query(query): Flags,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let candidate = candidate_from(&body)?;
    let deleted = flag(&query, "deleted");
    let state = registry.state();
    let entry = state
        .subjects
        .get(&subject)
        .filter(|s| s.visible(deleted).next().is_some())
        .ok_or_else(|| RegistryError::SubjectNotFound(subject.clone()))?;
    let found = entry
        .visible(deleted)
        .find(|v| state.schemas_equal(v.id, &candidate.normalized))
        .copied()
        .ok_or(RegistryError::SchemaNotFound)?;
    Ok(ok(version_json(&state.shown(&subject, found)?)))
}

/// Subject versions using schema `id`, deleted ones only when asked for.
fn uses_of(state: &Store, id: u32, deleted: bool) -> Vec<(String, u32)> {
    state
        .subjects
        .iter()
        .flat_map(|(name, s)| {
            s.visible(deleted)
                .filter(|v| v.id == id)
                .map(|v| (name.clone(), v.version))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn schema_by_id(
    State(registry): State<SchemaRegistry>,
    Path(id): Path<String>,
    Query(query): Flags,
) -> Result<Response, RegistryError> {
    let id = parse_id(&id)?;
    let state = registry.state();
    let stored = state
        .stored(id)
        .ok_or(RegistryError::SchemaIdNotFound(id))?;
    // Like Confluent, a schema whose every subject version was deleted is hidden unless
    // `deleted=true` (decoders ask for that, so old records stay readable).
    if !flag(&query, "deleted") && uses_of(&state, id, false).is_empty() {
        return Err(RegistryError::SchemaIdNotFound(id));
    }
    Ok(ok(json!({"schema": stored.text})))
}

async fn versions_of_id(
    State(registry): State<SchemaRegistry>,
    Path(id): Path<String>,
    Query(query): Flags,
) -> Result<Response, RegistryError> {
    let id = parse_id(&id)?;
    let state = registry.state();
    if state.stored(id).is_none() {
        return Err(RegistryError::SchemaIdNotFound(id));
    }
    let uses: Vec<Value> = uses_of(&state, id, flag(&query, "deleted"))
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(ok(Value::Array(uses)))
}

async fn subjects_of_id(
    State(registry): State<SchemaRegistry>,
    Path(id): Path<String>,
    Query(query): Flags,
) -> Result<Response, RegistryError> {
    let id = parse_id(&id)?;
    let state = registry.state();
    if state.stored(id).is_none() {
        return Err(RegistryError::SchemaIdNotFound(id));
    }
    let mut subjects: Vec<String> = uses_of(&state, id, flag(&query, "deleted"))
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    subjects.dedup();
    Ok(ok(json!(subjects)))
}

async fn list_subjects(State(registry): State<SchemaRegistry>, Query(query): Flags) -> Response {
    let deleted = flag(&query, "deleted");
    let state = registry.state();
    let subjects: Vec<&String> = state
        .subjects
        .iter()
        .filter(|(_, s)| s.visible(deleted).next().is_some())
        .map(|(name, _)| name)
        .collect();
    ok(json!(subjects))
}

async fn list_versions(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
    Query(query): Flags,
) -> Result<Response, RegistryError> {
    let deleted = flag(&query, "deleted");
    let state = registry.state();
    let versions: Vec<u32> = state
        .subjects
        .get(&subject)
        .map(|s| s.visible(deleted).map(|v| v.version).collect())
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(RegistryError::SubjectNotFound(subject));
    }
    Ok(ok(json!(versions)))
}

fn find_version(
    registry: &SchemaRegistry,
    subject: &str,
    version: &str,
) -> Result<RegisteredVersion, RegistryError> {
    let which = VersionRef::parse(version)?;
    let state = registry.state();
    let v = state.version(subject, which)?;
    state.shown(subject, v)
}

async fn get_version(
    State(registry): State<SchemaRegistry>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    Ok(ok(version_json(&find_version(
        &registry, &subject, &version,
    )?)))
}

async fn get_version_schema(
    State(registry): State<SchemaRegistry>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    let found = find_version(&registry, &subject, &version)?;
    let mut response = found.schema.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

async fn delete_subject(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
    Query(query): Flags,
) -> Result<Response, RegistryError> {
    let mut state = registry.state();
    let entry = state
        .subjects
        .get_mut(&subject)
        .filter(|s| !s.versions.is_empty())
        .ok_or_else(|| RegistryError::SubjectNotFound(subject.clone()))?;
    let live: Vec<u32> = entry.live().map(|v| v.version).collect();
    if flag(&query, "permanent") {
        if !live.is_empty() {
            return Err(RegistryError::SubjectNotSoftDeleted(subject));
        }
        let versions: Vec<u32> = entry.versions.iter().map(|v| v.version).collect();
        state.subjects.remove(&subject);
        return Ok(ok(json!(versions)));
    }
    if live.is_empty() {
        return Err(RegistryError::SubjectSoftDeleted(subject));
    }
    for v in &mut entry.versions {
        v.deleted = true;
    }
    Ok(ok(json!(live)))
}

fn compatibility_answer(messages: Vec<String>, verbose: bool) -> Response {
    let mut body = json!({"is_compatible": messages.is_empty()});
    if verbose {
        body["messages"] = json!(messages);
    }
    ok(body)
}

/// Would `POST /subjects/{subject}/versions` accept the schema, as far as compatibility goes.
async fn check_against_level(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
    Query(query): Flags,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let candidate = candidate_from(&body)?;
    let state = registry.state();
    let live: Vec<SubjectVersion> = state
        .subjects
        .get(&subject)
        .map(|s| s.live().copied().collect())
        .unwrap_or_default();
    let messages = state.incompatibilities(&candidate.parsed, &live, state.level_of(&subject));
    Ok(compatibility_answer(messages, flag(&query, "verbose")))
}

/// Is the schema compatible with one version, in the direction(s) of the subject's level.
async fn check_against_version(
    State(registry): State<SchemaRegistry>,
    Path((subject, version)): Path<(String, String)>,
    Query(query): Flags,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let which = VersionRef::parse(&version)?;
    let candidate = candidate_from(&body)?;
    let state = registry.state();
    let v = state.version(&subject, which)?;
    let level = match state.level_of(&subject) {
        CompatibilityLevel::BackwardTransitive => CompatibilityLevel::Backward,
        CompatibilityLevel::ForwardTransitive => CompatibilityLevel::Forward,
        CompatibilityLevel::FullTransitive => CompatibilityLevel::Full,
        other => other,
    };
    let messages = state.incompatibilities(&candidate.parsed, &[v], level);
    Ok(compatibility_answer(messages, flag(&query, "verbose")))
}

/// `{"compatibility": "FULL"}`; Confluent also accepts `compatibilityLevel`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigBody {
    compatibility: Option<String>,
    compatibility_level: Option<String>,
}

fn level_from(body: &Bytes) -> Result<CompatibilityLevel, RegistryError> {
    let config: ConfigBody =
        serde_json::from_slice(body).map_err(|e| RegistryError::BadRequest(e.to_string()))?;
    config
        .compatibility
        .or(config.compatibility_level)
        .ok_or(RegistryError::InvalidCompatibilityLevel)?
        .parse()
}

async fn get_global_config(State(registry): State<SchemaRegistry>) -> Response {
    ok(json!({"compatibilityLevel": registry.global_level().as_str()}))
}

async fn put_global_config(
    State(registry): State<SchemaRegistry>,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let level = level_from(&body)?;
    registry.set_global_level(level);
    Ok(ok(json!({"compatibility": level.as_str()})))
}

async fn get_subject_config(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
    Query(query): Flags,
) -> Result<Response, RegistryError> {
    let state = registry.state();
    let level = match state.subjects.get(&subject).and_then(|s| s.level) {
        Some(level) => level,
        None if flag(&query, "defaultToGlobal") => state.global_level,
        None => return Err(RegistryError::SubjectLevelNotConfigured(subject)),
    };
    Ok(ok(json!({"compatibilityLevel": level.as_str()})))
}

async fn put_subject_config(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let level = level_from(&body)?;
    registry.set_subject_level(&subject, level);
    Ok(ok(json!({"compatibility": level.as_str()})))
}

async fn delete_subject_config(
    State(registry): State<SchemaRegistry>,
    Path(subject): Path<String>,
) -> Result<Response, RegistryError> {
    let mut state = registry.state();
    let level = state
        .subjects
        .get_mut(&subject)
        .and_then(|s| s.level.take())
        .ok_or_else(|| RegistryError::SubjectLevelNotConfigured(subject.clone()))?;
    Ok(ok(json!({"compatibilityLevel": level.as_str()})))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str =
        r#"{"type":"record","name":"T","namespace":"t","fields":[{"name":"a","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"T","namespace":"t","fields":[{"name":"a","type":"string"},{"name":"b","type":["null","long"],"default":null}]}"#;
    const BREAKING: &str = r#"{"type":"record","name":"T","namespace":"t","fields":[{"name":"a","type":"string"},{"name":"c","type":"long"}]}"#;

    #[test]
    fn versions_parse_like_confluent() {
        assert!(matches!(
            VersionRef::parse("latest"),
            Ok(VersionRef::Latest)
        ));
        assert!(matches!(VersionRef::parse("-1"), Ok(VersionRef::Latest)));
        assert!(matches!(VersionRef::parse("3"), Ok(VersionRef::Number(3))));
        for bad in ["0", "-2", "x", "2147483648", ""] {
            assert_eq!(
                VersionRef::parse(bad).err().map(|e| e.error_code()),
                Some(42202),
                "{bad}"
            );
        }
    }

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!(
            "full_transitive".parse(),
            Ok(CompatibilityLevel::FullTransitive)
        );
        assert_eq!(" NONE ".parse(), Ok(CompatibilityLevel::None));
        assert_eq!(
            "SIDEWAYS".parse::<CompatibilityLevel>(),
            Err(RegistryError::InvalidCompatibilityLevel)
        );
    }

    #[test]
    fn whitespace_does_not_make_a_new_schema_but_a_doc_does() {
        let registry = SchemaRegistry::new();
        let id = registry.register("s", V1).expect("registers");
        let spaced = V1.replace(',', " ,\n ");
        assert_eq!(registry.register("s", &spaced), Ok(id));
        let documented = V1.replace(r#""type":"string""#, r#""type":"string","doc":"the a""#);
        let new_id = registry.register("s", &documented).expect("registers");
        assert_ne!(new_id, id);
        assert_eq!(registry.latest("s").map(|v| v.version), Ok(2));
    }

    #[test]
    fn levels_decide_what_may_follow() {
        let registry = SchemaRegistry::new();
        registry.register("s", V1).expect("v1");
        // BREAKING adds a field without a default: it cannot read V1 data.
        assert!(matches!(
            registry.register("s", BREAKING),
            Err(RegistryError::Incompatible { .. })
        ));
        registry.set_subject_level("s", CompatibilityLevel::None);
        assert!(registry.register("s", BREAKING).is_ok());
        // V2 reads BREAKING data, but BREAKING cannot read V2 data (no "c"): not FULL.
        registry.set_subject_level("s", CompatibilityLevel::Full);
        assert!(matches!(
            registry.register("s", V2),
            Err(RegistryError::Incompatible { .. })
        ));
        registry.set_subject_level("s", CompatibilityLevel::Backward);
        assert!(registry.register("s", V2).is_ok());
    }
}
