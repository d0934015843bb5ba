//! A small client for the part of Confluent's Schema Registry REST API a codec needs: a schema by
//! id, register, look up, and a subject's latest version; and the compatibility check
//! `hubsync check` asks before a deploy.
//!
//! Building requests and classifying answers are plain functions ([`classify`]); only
//! [`RegistryClient::call`] does HTTP. Failures say whose fault they are:
//!
//! | answer | variant | class |
//! |---|---|---|
//! | 404 with `error_code` 40401 (subject), 40402 (version), 40403 (schema) | [`RegistryError::NotFound`] | data: an id nobody registered |
//! | no connection, timeout, 408, 429, 5xx | [`RegistryError::Unavailable`] | retry |
//! | 401, 403 | [`RegistryError::Rejected`] | auth |
//! | any other 4xx | [`RegistryError::Rejected`] | config |
//! | 2xx whose body is not what the API promises | [`RegistryError::InvalidResponse`] | config |

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use hubsync_schemas::ErrorClass;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::config::{RegistryConfig, Secret};

/// The media type of the registry's API, for request bodies.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// What a Confluent client accepts, most specific first.
const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, \
                      application/vnd.schemaregistry+json; qs=0.9, application/json; qs=0.5";

/// Confluent's `error_code` for an unknown subject.
pub const SUBJECT_NOT_FOUND: u32 = 40401;
/// Confluent's `error_code` for an unknown version of a known subject.
pub const VERSION_NOT_FOUND: u32 = 40402;
/// Confluent's `error_code` for an unknown schema (by id, or under a subject).
pub const SCHEMA_NOT_FOUND: u32 = 40403;

/// A registry request that did not give an answer hubsync can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry does not hold what was asked for.
    #[error("schema registry found nothing for {request}: {message} (error code {code})")]
    NotFound {
        request: String,
        code: u32,
        message: String,
    },
    /// The registry could not be reached or is failing; worth retrying.
    #[error(
        "schema registry is unavailable for {request}: {reason}; hubsync retries, check the \
         registry if this persists"
    )]
    Unavailable { request: String, reason: String },
    /// The registry refused the request; retrying will not help.
    #[error("schema registry refused {request} with HTTP {status}{}: {message}; {}", code_suffix(*.code), rejection_hint(*.status))]
    Rejected {
        request: String,
        status: u16,
        code: Option<u32>,
        message: String,
    },
    /// A success status with a body that is not what the API promises.
    #[error(
        "schema registry answered {request} with a body hubsync cannot read: {reason}; check \
         that registry.url points at a Confluent-compatible schema registry"
    )]
    InvalidResponse { request: String, reason: String },
    /// The client cannot be built from the configuration.
    #[error("cannot set up the schema registry client: {0}")]
    Setup(String),
}

fn code_suffix(code: Option<u32>) -> String {
    code.map(|code| format!(" (error code {code})"))
        .unwrap_or_default()
}

fn rejection_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => "check registry.username and registry.password, and the user's permissions",
        409 => "the subject's compatibility level refuses this schema",
        422 => "the registry considers the schema or request invalid",
        404 => "check registry.url: the path is not a schema registry endpoint",
        _ => "check registry.url and the registry's configuration",
    }
}

impl RegistryError {
    /// Timeouts, refused connections and server-side failures: the same request may work later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }

    /// Whose fault the failure is, for a dead letter or an alert.
    pub fn class(&self) -> ErrorClass {
        match self {
            RegistryError::NotFound { .. } => ErrorClass::Data,
            RegistryError::Unavailable { .. } => ErrorClass::RetriesExhausted,
            RegistryError::Rejected {
                status: 401 | 403, ..
            } => ErrorClass::Auth,
            RegistryError::Rejected { .. }
            | RegistryError::InvalidResponse { .. }
            | RegistryError::Setup(_) => ErrorClass::Config,
        }
    }

    /// Confluent's `error_code`, when the registry sent one.
    pub fn error_code(&self) -> Option<u32> {
        match self {
            RegistryError::NotFound { code, .. } => Some(*code),
            RegistryError::Rejected { code, .. } => *code,
            _ => None,
        }
    }
}

/// Confluent's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error_code: Option<u32>,
    message: Option<String>,
}

/// Turns a non-success answer to `request` into the error it means.
pub fn classify(request: String, status: StatusCode, body: &[u8]) -> RegistryError {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let code = parsed.as_ref().and_then(|b| b.error_code);
    let message = parsed
        .and_then(|b| b.message)
        .unwrap_or_else(|| short_text(body, status));
    let retryable = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    match code {
        _ if retryable => RegistryError::Unavailable {
            request,
            reason: format!("HTTP {}: {message}", status.as_u16()),
        },
        Some(code @ (SUBJECT_NOT_FOUND | VERSION_NOT_FOUND | SCHEMA_NOT_FOUND))
            if status == StatusCode::NOT_FOUND =>
        {
            RegistryError::NotFound {
                request,
                code,
                message,
            }
        }
        _ => RegistryError::Rejected {
            request,
            status: status.as_u16(),
            code,
            message,
        },
    }
}

/// The start of a body that is not Confluent's error JSON (a proxy's page, say).
fn short_text(body: &[u8], status: StatusCode) -> String {
    const LIMIT: usize = 200;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no message").to_owned();
    }
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A transport failure with its causes, without the URL (it is in the request already).
fn transport_reason(error: reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {}", humantime::format_duration(timeout));
    }
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let _ = write!(reason, ": {cause}");
        source = cause.source();
    }
    reason
}

/// A schema registered under a subject.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegisteredSchema {
    pub subject: String,
    pub id: u32,
    pub version: u32,
    pub schema: String,
}

/// The registry's answer to a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Compatibility {
    pub is_compatible: bool,
    /// Why not, when the registry says (asked for with `verbose=true`).
    #[serde(default)]
    pub messages: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct SchemaText {
    schema: String,
}

#[derive(Debug, Deserialize)]
struct SchemaId {
    id: u32,
}

/// The registry's REST API. Clones share one connection pool.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    http: reqwest::Client,
    base: Url,
    auth: Option<(String, Secret)>,
    timeout: Duration,
}

impl RegistryClient {
    /// A client with its own connection pool. `password` is the resolved `registry.password`.
    pub fn new(config: &RegistryConfig, password: Option<Secret>) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| RegistryError::Setup(e.to_string()))?;
        Self::with_http(http, config, password)
    }

    /// A client on a connection pool the process already has. Every request still gets
    /// `registry.request_timeout`.
    pub fn with_http(
        http: reqwest::Client,
        config: &RegistryConfig,
        password: Option<Secret>,
    ) -> Result<Self, RegistryError> {
        let base = Url::parse(&config.url).map_err(|e| {
            RegistryError::Setup(format!("registry.url {:?} is not a URL: {e}", config.url))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(RegistryError::Setup(format!(
                "registry.url {:?} must be an http:// or https:// URL",
                config.url
            )));
        }
        let auth = match (&config.username, password) {
            (Some(user), Some(password)) => Some((user.clone(), password)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(RegistryError::Setup(
                    "registry.username is set but no password was given: set registry.password"
                        .to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(RegistryError::Setup(
                    "a registry password was given without registry.username".to_owned(),
                ));
            }
        };
        Ok(Self {
            inner: Arc::new(ClientInner {
                http,
                base,
                auth,
                timeout: config.request_timeout,
            }),
        })
    }

    /// The registry's base URL.
    pub fn url(&self) -> &Url {
        &self.inner.base
    }

    /// `GET /schemas/ids/{id}`: the schema text registered with `id`. Asks for soft-deleted
    /// schemas too, so records written before a subject was deleted stay readable.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let id = id.to_string();
        let found: SchemaText = self
            .call(
                Method::GET,
                &["schemas", "ids", &id],
                &[("deleted", "true")],
                None,
            )
            .await?;
        Ok(found.schema)
    }

    /// `POST /subjects/{subject}/versions`: registers an Avro schema (or finds it already
    /// registered there) and returns its id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let body = json!({ "schema": schema, "schemaType": "AVRO" });
        let registered: SchemaId = self
            .call(
                Method::POST,
                &["subjects", subject, "versions"],
                &[],
                Some(body),
            )
            .await?;
        Ok(registered.id)
    }

    /// `POST /subjects/{subject}`: the version of `subject` holding exactly this schema.
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<RegisteredSchema, RegistryError> {
        let body = json!({ "schema": schema, "schemaType": "AVRO" });
        self.call(Method::POST, &["subjects", subject], &[], Some(body))
            .await
    }

    /// `GET /subjects/{subject}/versions/latest`.
    pub async fn latest(&self, subject: &str) -> Result<RegisteredSchema, RegistryError> {
        self.call(
            Method::GET,
            &["subjects", subject, "versions", "latest"],
            &[],
            None,
        )
        .await
    }

    /// `POST /compatibility/subjects/{subject}/versions[/{version}]?verbose=true`: whether the
    /// registry would accept this Avro schema after `version` of `subject` (`"latest"` for the
    /// newest), or, without a version, after every version the subject's compatibility level
    /// compares it with. Nothing is registered.
    pub async fn compatibility(
        &self,
        subject: &str,
        version: Option<&str>,
        schema: &str,
    ) -> Result<Compatibility, RegistryError> {
        let body = json!({ "schema": schema, "schemaType": "AVRO" });
        let mut segments = vec!["compatibility", "subjects", subject, "versions"];
        segments.extend(version);
        self.call(Method::POST, &segments, &[("verbose", "true")], Some(body))
            .await
    }

    /// The URL of `segments` below the base URL, each segment percent-encoded.
    fn url_of(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends one request and reads its JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<T, RegistryError> {
        let url = self.url_of(segments, query);
        let request_name = format!("{method} {}", url.path());
        let mut request = self
            .inner
            .http
            .request(method, url)
            .timeout(self.inner.timeout)
            .header(reqwest::header::ACCEPT, ACCEPT);
        if let Some((user, password)) = &self.inner.auth {
            request = request.basic_auth(user, Some(password.expose()));
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                .body(body.to_string());
        }
        let unavailable = |request: &str, error| RegistryError::Unavailable {
            request: request.to_owned(),
            reason: transport_reason(error, self.inner.timeout),
        };
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(&request_name, e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| unavailable(&request_name, e))?;
        if !status.is_success() {
            return Err(classify(request_name, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| RegistryError::InvalidResponse {
            request: request_name,
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> RegistryError {
        classify(
            "GET /schemas/ids/7".to_owned(),
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
        )
    }

    #[test]
    fn unknown_ids_and_subjects_are_not_found() {
        let error = answer(
            404,
            r#"{"error_code":40403,"message":"Schema 7 not found"}"#,
        );
        assert_eq!(
            error,
            RegistryError::NotFound {
                request: "GET /schemas/ids/7".to_owned(),
                code: 40403,
                message: "Schema 7 not found".to_owned(),
            }
        );
        assert_eq!(error.class(), ErrorClass::Data);
        assert!(!error.is_retryable());
        let subject = answer(
            404,
            r#"{"error_code":40401,"message":"Subject 's' not found."}"#,
        );
        assert!(matches!(
            subject,
            RegistryError::NotFound { code: 40401, .. }
        ));
    }

    #[test]
    fn a_404_without_confluent_code_is_a_wrong_url() {
        let error = answer(404, "<html>Not Found</html>");
        assert!(
            matches!(
                error,
                RegistryError::Rejected {
                    status: 404,
                    code: None,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(error.class(), ErrorClass::Config);
        assert!(error.to_string().contains("check registry.url"), "{error}");
    }

    #[test]
    fn server_errors_timeouts_and_throttling_are_retryable() {
        for status in [500, 502, 503, 504, 408, 429] {
            let error = answer(
                status,
                r#"{"error_code":50003,"message":"Schema registry unavailable"}"#,
            );
            assert!(error.is_retryable(), "{status}: {error:?}");
            assert_eq!(error.class(), ErrorClass::RetriesExhausted);
        }
        // A 5xx with a Confluent "not found" code is still the server failing.
        assert!(answer(500, r#"{"error_code":40403,"message":"x"}"#).is_retryable());
    }

    #[test]
    fn other_client_errors_are_config_or_auth() {
        let auth = answer(401, r#"{"error_code":401,"message":"Unauthorized"}"#);
        assert_eq!(auth.class(), ErrorClass::Auth);
        assert!(!auth.is_retryable());
        assert!(auth.to_string().contains("registry.password"), "{auth}");
        let forbidden = answer(403, "");
        assert_eq!(forbidden.class(), ErrorClass::Auth);
        assert!(forbidden.to_string().contains("Forbidden"), "{forbidden}");

        let incompatible = answer(
            409,
            r#"{"error_code":409,"message":"Schema being registered is incompatible"}"#,
        );
        assert_eq!(incompatible.class(), ErrorClass::Config);
        assert_eq!(incompatible.error_code(), Some(409));
        assert_eq!(
            incompatible.to_string(),
            "schema registry refused GET /schemas/ids/7 with HTTP 409 (error code 409): Schema \
             being registered is incompatible; the subject's compatibility level refuses this \
             schema"
        );
        assert_eq!(answer(422, "{}").class(), ErrorClass::Config);
    }

    #[test]
    fn long_foreign_bodies_are_cut() {
        let body = "x".repeat(1000);
        let RegistryError::Rejected { message, .. } = answer(400, &body) else {
            panic!("a 400 is a rejection");
        };
        assert_eq!(message.len(), 203);
        assert!(message.ends_with("..."));
    }

    fn config(url: &str) -> RegistryConfig {
        RegistryConfig {
            url: url.to_owned(),
            ..RegistryConfig::default()
        }
    }

    #[test]
    fn urls_keep_the_base_path_and_encode_segments() {
        let client = RegistryClient::new(&config("https://registry.example/sr/"), None).unwrap();
        let url = client.url_of(&["subjects", "a/b c-value", "versions"], &[]);
        assert_eq!(
            url.as_str(),
            "https://registry.example/sr/subjects/a%2Fb%20c-value/versions"
        );
        let client = RegistryClient::new(&config("http://localhost:8081"), None).unwrap();
        let url = client.url_of(&["schemas", "ids", "7"], &[("deleted", "true")]);
        assert_eq!(
            url.as_str(),
            "http://localhost:8081/schemas/ids/7?deleted=true"
        );
    }

    #[test]
    fn setup_refuses_bad_urls_and_half_credentials() {
        for url in ["localhost:8081", "ftp://registry", "not a url"] {
            assert!(
                matches!(
                    RegistryClient::new(&config(url), None),
                    Err(RegistryError::Setup(_))
                ),
                "{url}"
            );
        }
        let mut with_user = config("https://registry.example");
        with_user.username = Some("svc-hubsync".to_owned());
        let missing = RegistryClient::new(&with_user, None).unwrap_err();
        assert!(
            missing.to_string().contains("registry.password"),
            "{missing}"
        );
        let client = RegistryClient::new(&with_user, Some(Secret::new("hunter2"))).unwrap();
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
