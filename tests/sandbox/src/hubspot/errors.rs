//! HubSpot's error bodies, built in one place so every endpoint answers with the same shapes.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// One failed property of a write, as HubSpot lists them inside a `VALIDATION_ERROR` message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PropertyError {
    #[serde(rename = "isValid")]
    pub is_valid: bool,
    pub message: String,
    pub error: String,
    pub name: String,
}

impl PropertyError {
    pub fn new(name: &str, error: &str, message: impl Into<String>) -> Self {
        PropertyError {
            is_valid: false,
            message: message.into(),
            error: error.to_string(),
            name: name.to_string(),
        }
    }
}

/// Why one input of a write failed; turned into either a whole-request error or one entry of a
/// 207's `errors`, depending on the endpoint and on whether inputs carry `objectWriteTraceId`.
#[derive(Debug, Clone, PartialEq)]
pub enum InputError {
    Properties(Vec<PropertyError>),
    /// A unique value (a contact's email, a `hasUniqueValue` property) already belongs to a record.
    Conflict {
        message: String,
        existing_id: u64,
    },
    NotFound {
        id: String,
    },
    Invalid(String),
}

impl InputError {
    pub fn status(&self) -> StatusCode {
        match self {
            InputError::Conflict { .. } => StatusCode::CONFLICT,
            InputError::NotFound { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn category(&self) -> &'static str {
        match self {
            InputError::Conflict { .. } => "CONFLICT",
            InputError::NotFound { .. } => "OBJECT_NOT_FOUND",
            _ => "VALIDATION_ERROR",
        }
    }

    pub fn message(&self) -> String {
        match self {
            InputError::Properties(errors) => property_errors_message(errors),
            InputError::Conflict { message, .. } => message.clone(),
            InputError::NotFound { id } => {
                format!("Object not found.  objectId are usually numeric. id: {id}")
            }
            InputError::Invalid(message) => message.clone(),
        }
    }

    /// HubSpot's per-error `errors` list for property validation failures.
    fn details(&self) -> Option<Vec<Value>> {
        match self {
            InputError::Properties(errors) => Some(
                errors
                    .iter()
                    .map(|e| {
                        json!({
                            "message": e.message,
                            "code": e.error,
                            "context": {"propertyName": [e.name]},
                        })
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// As the whole response of a single-object call or of a batch that fails as a whole.
    pub fn into_api_error(self) -> ApiError {
        let mut error = ApiError::new(self.status(), self.category(), self.message());
        error.details.errors = self.details();
        if let InputError::NotFound { id } = &self {
            error.details.context = Some(json!({"id": [id]}));
        }
        error
    }

    /// As one entry of a 207's `errors`, naming the input by its trace id.
    pub fn batch_entry(&self, trace_id: Option<&str>) -> Value {
        let mut entry = Map::new();
        entry.insert("status".into(), json!("error"));
        entry.insert("category".into(), json!(self.category()));
        entry.insert("message".into(), json!(self.message()));
        let mut context = Map::new();
        if let Some(trace) = trace_id {
            context.insert("objectWriteTraceId".into(), json!([trace]));
        }
        match self {
            InputError::NotFound { id } => {
                context.insert("ids".into(), json!([id]));
            }
            InputError::Conflict { existing_id, .. } => {
                context.insert("existingId".into(), json!([existing_id.to_string()]));
            }
            _ => {}
        }
        entry.insert("context".into(), Value::Object(context));
        if let Some(details) = self.details() {
            entry.insert("errors".into(), Value::Array(details));
        }
        Value::Object(entry)
    }
}

pub fn property_errors_message(errors: &[PropertyError]) -> String {
    let list = serde_json::to_string(errors).unwrap_or_else(|_| "[]".to_string());
    format!("Property values were not valid: {list}")
}

/// An error response: `{"status":"error","message","correlationId","category",...}` plus the
/// `X-HubSpot-Correlation-Id` header.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub category: String,
    pub message: String,
    /// The optional parts, boxed so that `Result<_, ApiError>` stays small.
    pub details: Box<ErrorDetails>,
}

#[derive(Debug, Clone, Default)]
pub struct ErrorDetails {
    pub sub_category: Option<String>,
    pub context: Option<Value>,
    pub errors: Option<Vec<Value>>,
    /// Extra top-level fields (the rate-limit bodies use `errorType`, `policyName`).
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, category: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            category: category.to_string(),
            message: message.into(),
            details: Box::default(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", message)
    }

    pub fn unknown_object_type(raw: &str) -> Self {
        Self::validation(format!("Unable to infer object type from: {raw}"))
    }

    pub fn invalid_json(error: &serde_json::Error) -> Self {
        Self::validation(format!(
            "Invalid input JSON on line {}, column {}: {}",
            error.line(),
            error.column(),
            error
        ))
    }

    pub fn unauthorized(expired: bool) -> Self {
        if expired {
            Self::new(
                StatusCode::UNAUTHORIZED,
                "EXPIRED_AUTHENTICATION",
                "The OAuth token used to make this call expired 1 minute(s) ago.",
            )
        } else {
            Self::new(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        }
    }

    pub fn missing_scopes(scopes: &[String]) -> Self {
        let mut error = Self::new(
            StatusCode::FORBIDDEN,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
        );
        error.details.errors = Some(vec![json!({
            "message": format!("One or more of the following scopes are required: {scopes:?}"),
            "context": {"requiredGranularScopes": scopes},
        })]);
        error.details.context = Some(json!({"missingScopes": scopes}));
        error
    }

    /// A 429 in HubSpot's rate-limit shape; `policy` is `TEN_SECONDLY_ROLLING`, `DAILY` or `SECONDLY`.
    pub fn rate_limited(policy: &str) -> Self {
        let message = match policy {
            "DAILY" => "You have reached your daily limit.",
            "SECONDLY" => "You have reached your secondly limit.",
            _ => "You have reached your ten_secondly_rolling limit.",
        };
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITS", message);
        error
            .details
            .extra
            .insert("errorType".into(), json!("RATE_LIMIT"));
        error
            .details
            .extra
            .insert("policyName".into(), json!(policy));
        if policy != "DAILY" {
            error
                .details
                .extra
                .insert("groupName".into(), json!("hubsync-sandbox:api"));
        }
        error
    }

    pub fn server_error(status: StatusCode) -> Self {
        Self::new(
            status,
            "INTERNAL_ERROR",
            "An internal error occurred while processing the request.",
        )
    }

    pub fn body(&self, correlation_id: &str) -> Value {
        let mut body = Map::new();
        body.insert("status".into(), json!("error"));
        body.insert("message".into(), json!(self.message));
        body.insert("correlationId".into(), json!(correlation_id));
        // Rate-limit bodies carry `errorType` instead of `category`.
        if !self.details.extra.contains_key("errorType") {
            body.insert("category".into(), json!(self.category));
        }
        if let Some(sub) = &self.details.sub_category {
            body.insert("subCategory".into(), json!(sub));
        }
        if let Some(context) = &self.details.context {
            body.insert("context".into(), context.clone());
        }
        if let Some(errors) = &self.details.errors {
            body.insert("errors".into(), Value::Array(errors.clone()));
        }
        for (key, value) in &self.details.extra {
            body.insert(key.clone(), value.clone());
        }
        Value::Object(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let mut response = (self.status, axum::Json(self.body(&correlation_id))).into_response();
        if let Ok(value) = HeaderValue::from_str(&correlation_id) {
            response
                .headers_mut()
                .insert("x-hubspot-correlation-id", value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_message_lists_each_property_as_json() {
        let error = InputError::Properties(vec![PropertyError::new(
            "lifecyclestage",
            "INVALID_OPTION",
            "Lead was not one of the allowed options: [lead, customer]",
        )]);
        let message = error.message();
        assert!(message.starts_with("Property values were not valid: [{\"isValid\":false,"));
        assert!(message.contains("\"error\":\"INVALID_OPTION\",\"name\":\"lifecyclestage\""));
    }

    #[test]
    fn rate_limit_body_has_error_type_and_policy_but_no_category() {
        let body = ApiError::rate_limited("DAILY").body("c-1");
        assert_eq!(body["errorType"], "RATE_LIMIT");
        assert_eq!(body["policyName"], "DAILY");
        assert_eq!(body["message"], "You have reached your daily limit.");
        assert!(body.get("category").is_none());
    }

    #[test]
    fn batch_entry_echoes_the_trace_id() {
        let entry = InputError::Invalid("bad".into()).batch_entry(Some("evt-7"));
        assert_eq!(entry["context"]["objectWriteTraceId"][0], "evt-7");
        assert_eq!(entry["category"], "VALIDATION_ERROR");
    }
}
