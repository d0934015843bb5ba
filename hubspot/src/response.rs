//! Status, headers and body to a classified result. Pure: the time, where a `Retry-After` date
//! needs it, comes in as an argument.
//!
//! ```text
//! 429 {"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT",
//!      "policyName":"DAILY"}
//! -> Failure { class: RateLimited { policy: Daily, retry_after: None }, .. }
//! 207 {"results":[{"id":"1","objectWriteTraceId":"evt-1",..}],
//!      "errors":[{"category":"VALIDATION_ERROR","context":{"objectWriteTraceId":["evt-2"]},..}]}
//! -> [Ok(record 1), Err(InputError { class: Data { .. }, .. })]   (in input order)
//! ```
//!
//! A success answer is read defensively: a 2xx with no results and no errors for a non-empty
//! batch has been seen in the wild and fails the whole batch; an input HubSpot does not name
//! gets an error of its own rather than being taken as written.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

use super::request::{AssociationInput, folds_case};
use super::{
    AccountDetails, ArchivedPage, ArchivedRecord, AssociationLink, ErrorClass, Failure, InputError,
    ListInfo, ListMembership, MembershipsPage, Owner, OwnersPage, PropertyDefinition,
    PropertyError, PropertyOption, PropertyVersion, RateLimitPolicy, Record, RecordHistory,
    SearchPage, Team,
};

const VALIDATION_PREFIX: &str = "Property values were not valid: ";
const EXISTING_ID_MARKER: &str = "Existing ID: ";
/// How much of a body that is not HubSpot's JSON a message keeps.
const MAX_RAW_MESSAGE: usize = 300;

// ----- headers -----

/// HubSpot's `X-HubSpot-RateLimit-*` headers; any may be absent (search answers carry none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitHeaders {
    pub max: Option<u32>,
    pub remaining: Option<u32>,
    pub interval_ms: Option<u64>,
    pub daily: Option<u64>,
    pub daily_remaining: Option<u64>,
}

impl RateLimitHeaders {
    pub fn parse(headers: &HeaderMap) -> Self {
        fn number<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
            headers.get(name)?.to_str().ok()?.trim().parse().ok()
        }
        RateLimitHeaders {
            max: number(headers, "x-hubspot-ratelimit-max"),
            remaining: number(headers, "x-hubspot-ratelimit-remaining"),
            interval_ms: number(headers, "x-hubspot-ratelimit-interval-milliseconds"),
            daily: number(headers, "x-hubspot-ratelimit-daily"),
            daily_remaining: number(headers, "x-hubspot-ratelimit-daily-remaining"),
        }
    }
}

/// `Retry-After` as delay-seconds or as an HTTP date (relative to `now_ms`).
pub fn retry_after(headers: &HeaderMap, now_ms: i64) -> Option<Duration> {
    let raw = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let wait_ms = at.timestamp_millis().saturating_sub(now_ms).max(0);
    Some(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)))
}

// ----- failures -----

/// How a request failed without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// No answer within the request timeout; the request may have been applied.
    Timeout,
    /// The connection could not be made; nothing was sent.
    Connect,
    /// The connection broke while sending or reading; the request may have been applied.
    Other,
}

pub fn transport_failure(kind: Transport, detail: &str) -> Failure {
    let (category, message, may_have_applied) = match kind {
        Transport::Timeout => ("TIMEOUT", format!("no answer in time: {detail}"), true),
        Transport::Connect => ("CONNECT", format!("cannot connect: {detail}"), false),
        Transport::Other => ("CONNECTION", format!("connection failed: {detail}"), true),
    };
    Failure {
        may_have_applied,
        ..Failure::new(
            ErrorClass::Retryable { retry_after: None },
            None,
            category,
            message,
        )
    }
}

/// A non-2xx answer, classified. 429 is rate limited; 408 and 5xx other than 501 are
/// retryable; 401/403 are auth; a 409 naming the existing record is a conflict; 404 is not
/// found; every other status is a data error, never retried.
pub fn classify_failure(status: u16, headers: &HeaderMap, body: &[u8], now_ms: i64) -> Failure {
    let json: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    // An empty field says nothing: the fallback names the failure instead (an empty category
    // would otherwise become an empty reason code).
    let field = |name: &str| {
        json.as_ref()
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .filter(|text| !text.trim().is_empty())
            .map(str::to_owned)
    };
    let message = field("message").unwrap_or_else(|| raw_message(status, body));
    let category = field("category")
        .or_else(|| field("errorType"))
        .unwrap_or_else(|| format!("HTTP_{status}"));
    let correlation_id = field("correlationId").or_else(|| {
        headers
            .get("x-hubspot-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let hint = retry_after(headers, now_ms);
    let class = match status {
        401 | 403 => ErrorClass::Auth {
            missing_scopes: json
                .as_ref()
                .and_then(|b| b.get("context"))
                .map(|c| strings(c.get("missingScopes")))
                .unwrap_or_default(),
        },
        429 => ErrorClass::RateLimited {
            policy: policy(field("policyName").as_deref(), &message),
            retry_after: hint,
        },
        408 => ErrorClass::Retryable { retry_after: hint },
        500..=599 if status != 501 => ErrorClass::Retryable { retry_after: hint },
        404 => ErrorClass::NotFound,
        409 => match existing_id(&message) {
            Some(existing_id) => ErrorClass::Conflict { existing_id },
            None => data(&message, json.as_ref().and_then(|b| b.get("errors"))),
        },
        _ => data(&message, json.as_ref().and_then(|b| b.get("errors"))),
    };
    let may_have_applied = status == 408 || ((500..=599).contains(&status) && status != 501);
    Failure {
        correlation_id,
        may_have_applied,
        ..Failure::new(class, Some(status), category, message)
    }
}

fn raw_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("status {status} with an empty body");
    }
    let mut end = text.len().min(MAX_RAW_MESSAGE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn policy(name: Option<&str>, message: &str) -> RateLimitPolicy {
    match name {
        Some("DAILY") => return RateLimitPolicy::Daily,
        Some("SECONDLY") => return RateLimitPolicy::Secondly,
        Some("TEN_SECONDLY_ROLLING") => return RateLimitPolicy::TenSecondlyRolling,
        _ => {}
    }
    let message = message.to_ascii_lowercase();
    if message.contains("daily") {
        RateLimitPolicy::Daily
    } else if message.contains("secondly") && !message.contains("ten_secondly") {
        RateLimitPolicy::Secondly
    } else {
        RateLimitPolicy::TenSecondlyRolling
    }
}

fn data(message: &str, details: Option<&Value>) -> ErrorClass {
    let mut property_errors = property_errors(message);
    if property_errors.is_empty() {
        property_errors = detail_property_errors(details);
    }
    ErrorClass::Data { property_errors }
}

/// The id in HubSpot's `... already exists. Existing ID: 123`.
pub fn existing_id(message: &str) -> Option<String> {
    let (_, rest) = message.split_once(EXISTING_ID_MARKER)?;
    let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!id.is_empty()).then_some(id)
}

/// The properties listed in HubSpot's `Property values were not valid: [{...}]`, in order.
/// Anything else gives an empty list.
pub fn property_errors(message: &str) -> Vec<PropertyError> {
    let Some(start) = message.find(VALIDATION_PREFIX) else {
        return Vec::new();
    };
    let list = message[start + VALIDATION_PREFIX.len()..].trim();
    let mut stream = serde_json::Deserializer::from_str(list).into_iter::<Vec<Value>>();
    let Some(Ok(entries)) = stream.next() else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|e| e.get("isValid").and_then(Value::as_bool) != Some(true))
        .filter_map(|e| {
            Some(PropertyError {
                name: e.get("name")?.as_str()?.to_owned(),
                code: text(e.get("error")).unwrap_or_default(),
                message: text(e.get("message")).unwrap_or_default(),
            })
        })
        .collect()
}

/// The per-property `errors` details: `{"message","code","context":{"propertyName":[..]}}`.
fn detail_property_errors(details: Option<&Value>) -> Vec<PropertyError> {
    details
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|d| {
                    let name = strings(d.get("context")?.get("propertyName"))
                        .into_iter()
                        .next()?;
                    Some(PropertyError {
                        name,
                        code: text(d.get("code")).unwrap_or_default(),
                        message: text(d.get("message")).unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

// ----- successes -----

/// The JSON of a 2xx answer, or the classified failure of any other.
pub fn success_json(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
) -> Result<Value, Failure> {
    if !(200..300).contains(&status) {
        return Err(classify_failure(status, headers, body, now_ms));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|error| malformed(status, &format!("not json: {error}")))
}

/// A 2xx answer that cannot be trusted; HubSpot may have applied the request.
pub(crate) fn malformed(status: u16, what: &str) -> Failure {
    Failure {
        may_have_applied: true,
        ..Failure::new(
            ErrorClass::Retryable { retry_after: None },
            Some(status),
            "UNUSABLE_ANSWER",
            format!("hubspot answered {status} with an unusable body: {what}"),
        )
    }
}

/// A value as text: strings as they are, numbers and booleans printed, null and absent `None`.
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A value that is a list of scalars, or one scalar, as strings.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(|v| text(Some(v))).collect(),
        Some(other) => text(Some(other)).into_iter().collect(),
        None => Vec::new(),
    }
}

/// A v3 object: `{"id","properties":{..},"createdAt","updatedAt","archived","new"?}`.
pub fn parse_record(value: &Value) -> Option<Record> {
    let id = text(value.get("id"))?;
    let properties = value
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(k, v)| (k.clone(), text(Some(v))))
                .collect()
        })
        .unwrap_or_default();
    Some(Record {
        id,
        properties,
        created_at: text(value.get("createdAt")),
        updated_at: text(value.get("updatedAt")),
        archived: value
            .get("archived")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        new: value.get("new").and_then(Value::as_bool),
    })
}

/// A time as HubSpot writes it, in epoch milliseconds: an ISO-8601 string
/// (`2026-01-01T00:00:00.000Z`, the form of `createdAt` and history timestamps), or epoch
/// milliseconds as a number or a string of digits (the form of date properties' values).
pub fn timestamp_ms(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                return s.parse().ok();
            }
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|at| at.timestamp_millis())
        }
        _ => None,
    }
}

/// A v3 object read with `propertiesWithHistory`: the plain record, its creation and last
/// modification times, and per property its versions, newest first (sorted here: HubSpot
/// documents that order but the poller must not depend on it). A version without a readable
/// timestamp is left out: it could not be placed in time.
pub fn parse_record_history(value: &Value) -> Option<RecordHistory> {
    let record = parse_record(value)?;
    let property_ms = |name: &str| {
        value
            .get("properties")
            .and_then(|p| p.get(name))
            .and_then(timestamp_ms)
    };
    let created_ms = value
        .get("createdAt")
        .and_then(timestamp_ms)
        .or_else(|| property_ms("createdate"));
    let updated_ms = value
        .get("updatedAt")
        .and_then(timestamp_ms)
        .or_else(|| property_ms("hs_lastmodifieddate"))
        .or_else(|| property_ms("lastmodifieddate"));
    let history = value
        .get("propertiesWithHistory")
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .iter()
                .map(|(name, versions)| {
                    let mut versions: Vec<PropertyVersion> = versions
                        .as_array()
                        .map(|list| list.iter().filter_map(parse_version).collect())
                        .unwrap_or_default();
                    versions.sort_by_key(|v| std::cmp::Reverse(v.timestamp_ms));
                    (name.clone(), versions)
                })
                .collect()
        })
        .unwrap_or_default();
    Some(RecordHistory {
        record,
        created_ms,
        updated_ms,
        history,
    })
}

fn parse_version(value: &Value) -> Option<PropertyVersion> {
    Some(PropertyVersion {
        value: text(value.get("value")).unwrap_or_default(),
        timestamp_ms: value.get("timestamp").and_then(timestamp_ms)?,
        source_type: text(value.get("sourceType")).filter(|s| !s.is_empty()),
        source_id: text(value.get("sourceId")).filter(|s| !s.is_empty()),
    })
}

/// One entry of a batch answer's `errors`, classified like a whole failure.
pub fn input_error(entry: &Value) -> InputError {
    let category = text(entry.get("category")).unwrap_or_else(|| "UNKNOWN".to_owned());
    let message = text(entry.get("message")).unwrap_or_default();
    let context: BTreeMap<String, Vec<String>> = entry
        .get("context")
        .and_then(Value::as_object)
        .map(|c| {
            c.iter()
                .map(|(k, v)| (k.clone(), strings(Some(v))))
                .collect()
        })
        .unwrap_or_default();
    let class = match category.as_str() {
        "CONFLICT" | "OBJECT_ALREADY_EXISTS" => context
            .get("existingId")
            .and_then(|ids| ids.first().cloned())
            .or_else(|| existing_id(&message))
            .map(|existing_id| ErrorClass::Conflict { existing_id })
            .unwrap_or_else(|| data(&message, entry.get("errors"))),
        "OBJECT_NOT_FOUND" => ErrorClass::NotFound,
        "RATE_LIMITS" => ErrorClass::RateLimited {
            policy: policy(None, &message),
            retry_after: None,
        },
        _ => data(&message, entry.get("errors")),
    };
    InputError {
        class,
        category,
        message,
        context,
    }
}

/// What HubSpot is expected to answer for one input of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected<'a> {
    /// The `objectWriteTraceId` sent (writes).
    pub trace_id: Option<&'a str>,
    /// The record id, or the value of the unique id property, sent (updates, upserts, reads).
    pub id: Option<&'a str>,
}

/// How a result names the input it answers when it carries no trace id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdMatch<'a> {
    /// By the record id (updates, reads by id).
    RecordId,
    /// By the value of a unique property in the result's properties (upserts, reads by email).
    Property(&'a str),
    /// Results cannot be matched by id (creates).
    None,
}

impl IdMatch<'_> {
    fn same(self, a: &str, b: &str) -> bool {
        match self {
            IdMatch::Property(name) if folds_case(name) => a.eq_ignore_ascii_case(b),
            _ => a == b,
        }
    }
}

/// A batch answer for `expected` inputs: per input, in input order, its record or its error.
/// Results are matched by `objectWriteTraceId`, then by id; errors by their context's
/// `objectWriteTraceId`, then `ids`. What is left is matched in order when the counts agree,
/// and otherwise gets an error saying HubSpot did not name it.
pub fn batch_outcomes(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
    expected: &[Expected<'_>],
    by: IdMatch<'_>,
) -> Result<Vec<Result<Record, InputError>>, Failure> {
    batch_outcomes_of(
        status,
        headers,
        body,
        now_ms,
        expected,
        by,
        parse_record,
        |record| record,
    )
}

/// A batch read with `propertiesWithHistory` for `expected` ids, matched as
/// [`batch_outcomes`] matches a plain read's.
pub fn history_outcomes(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
    expected: &[Expected<'_>],
) -> Result<Vec<Result<RecordHistory, InputError>>, Failure> {
    batch_outcomes_of(
        status,
        headers,
        body,
        now_ms,
        expected,
        IdMatch::RecordId,
        parse_record_history,
        |read| &read.record,
    )
}

/// [`batch_outcomes`] for any result type: `parse` reads one result, `record` gives its record
/// for matching.
#[allow(clippy::too_many_arguments)]
fn batch_outcomes_of<T>(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
    expected: &[Expected<'_>],
    by: IdMatch<'_>,
    parse: impl Fn(&Value) -> Option<T>,
    record_of: impl Fn(&T) -> &Record,
) -> Result<Vec<Result<T, InputError>>, Failure> {
    let json = success_json(status, headers, body, now_ms)?;
    let (results, errors) = results_and_errors(status, &json, expected.len())?;
    let mut matched = Vec::with_capacity(results.len());
    for value in results {
        let Some(parsed) = parse(value) else {
            return Err(malformed(status, "a result without an id"));
        };
        let record = record_of(&parsed);
        let candidates: Vec<usize> = match text(value.get("objectWriteTraceId")) {
            Some(trace) => positions(expected, |e| e.trace_id == Some(trace.as_str())),
            None => match by {
                IdMatch::RecordId => positions(expected, |e| e.id == Some(record.id.as_str())),
                IdMatch::Property(name) => match record.property(name) {
                    Some(value) => {
                        positions(expected, |e| e.id.is_some_and(|id| by.same(id, value)))
                    }
                    None => Vec::new(),
                },
                IdMatch::None => Vec::new(),
            },
        };
        matched.push((candidates, parsed));
    }
    let errors = errors
        .iter()
        .map(|entry| {
            let error = input_error(entry);
            let mut named: Vec<usize> = error
                .context
                .get("objectWriteTraceId")
                .into_iter()
                .flatten()
                .flat_map(|trace| positions(expected, |e| e.trace_id == Some(trace.as_str())))
                .collect();
            if named.is_empty() {
                named = error
                    .context
                    .get("ids")
                    .into_iter()
                    .flatten()
                    .flat_map(|id| positions(expected, |e| e.id.is_some_and(|x| by.same(x, id))))
                    .collect();
            }
            (named, error)
        })
        .collect();
    Ok(settle(expected.len(), matched, errors))
}

fn results_and_errors(
    status: u16,
    json: &Value,
    expected: usize,
) -> Result<(&[Value], &[Value]), Failure> {
    let list = |name: &str| json.get(name).and_then(Value::as_array).map(Vec::as_slice);
    let results = list("results").unwrap_or_default();
    let errors = list("errors").unwrap_or_default();
    if expected > 0 && results.is_empty() && errors.is_empty() {
        return Err(Failure {
            may_have_applied: true,
            ..Failure::new(
                ErrorClass::Retryable { retry_after: None },
                Some(status),
                "EMPTY_ANSWER",
                format!(
                    "hubspot answered {status} with neither results nor errors for {expected} \
                     inputs; the batch is taken as failed"
                ),
            )
        });
    }
    Ok((results, errors))
}

fn positions(expected: &[Expected<'_>], matches: impl Fn(&Expected<'_>) -> bool) -> Vec<usize> {
    expected
        .iter()
        .enumerate()
        .filter(|(_, e)| matches(e))
        .map(|(i, _)| i)
        .collect()
}

/// Gives every input one outcome: results to the inputs they name, then errors, then what is
/// left in order when the counts agree. A result or error names an input only while that input
/// has no outcome yet.
fn settle<T>(
    count: usize,
    results: Vec<(Vec<usize>, T)>,
    errors: Vec<(Vec<usize>, InputError)>,
) -> Vec<Result<T, InputError>> {
    let mut outcomes: Vec<Option<Result<T, InputError>>> = (0..count).map(|_| None).collect();
    let mut loose_results = Vec::new();
    for (candidates, result) in results {
        match candidates.into_iter().find(|&i| outcomes[i].is_none()) {
            Some(i) => outcomes[i] = Some(Ok(result)),
            None => loose_results.push(result),
        }
    }
    let mut loose_errors = Vec::new();
    for (named, error) in errors {
        let free: Vec<usize> = named
            .into_iter()
            .filter(|&i| outcomes[i].is_none())
            .collect();
        if free.is_empty() {
            loose_errors.push(error);
            continue;
        }
        for i in free {
            outcomes[i] = Some(Err(error.clone()));
        }
    }
    let open: Vec<usize> = (0..count).filter(|&i| outcomes[i].is_none()).collect();
    if !open.is_empty() {
        if loose_errors.is_empty() && loose_results.len() == open.len() {
            for (i, result) in open.iter().zip(loose_results) {
                outcomes[*i] = Some(Ok(result));
            }
        } else if loose_results.is_empty() && loose_errors.len() == open.len() {
            for (i, error) in open.iter().zip(loose_errors) {
                outcomes[*i] = Some(Err(error));
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(unnamed_input())))
        .collect()
}

/// The outcome of an input HubSpot's answer does not name: unknown, so it is retried (an
/// upsert or update is safe to send again; the sink checks what it created before a create).
fn unnamed_input() -> InputError {
    InputError {
        class: ErrorClass::Retryable { retry_after: None },
        category: "MISSING_RESULT".to_owned(),
        message: "hubspot's answer named neither a result nor an error for this input".to_owned(),
        context: BTreeMap::new(),
    }
}

/// A v4 association batch answer for `inputs`, in input order. Results are matched by their
/// `fromObjectId`/`toObjectId`; errors by the ids in their context.
pub fn association_outcomes(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
    inputs: &[AssociationInput],
) -> Result<Vec<Result<AssociationLink, InputError>>, Failure> {
    let json = success_json(status, headers, body, now_ms)?;
    let (results, errors) = results_and_errors(status, &json, inputs.len())?;
    let results = results
        .iter()
        .map(|value| {
            let from_id = text(value.get("fromObjectId")).unwrap_or_default();
            let to_id = text(value.get("toObjectId")).unwrap_or_default();
            let candidates = inputs
                .iter()
                .enumerate()
                .filter(|(_, i)| i.from_id == from_id && i.to_id == to_id)
                .map(|(i, _)| i)
                .collect();
            let link = AssociationLink {
                from_id,
                to_id,
                labels: strings(value.get("labels")),
            };
            (candidates, link)
        })
        .collect();
    let errors = errors
        .iter()
        .map(|entry| {
            let error = input_error(entry);
            let ids = error.context.get("ids").cloned().unwrap_or_default();
            let named = inputs
                .iter()
                .enumerate()
                .filter(|(_, i)| ids.contains(&i.from_id) || ids.contains(&i.to_id))
                .map(|(i, _)| i)
                .collect();
            (named, error)
        })
        .collect();
    Ok(settle(inputs.len(), results, errors))
}

/// A search answer: `{"total","results","paging":{"next":{"after"}}}`.
pub fn search_page(json: &Value) -> Result<SearchPage, Failure> {
    let results: Vec<Record> = json
        .get("results")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(parse_record).collect())
        .ok_or_else(|| malformed(200, "a search answer without results"))?;
    Ok(SearchPage {
        total: json
            .get("total")
            .and_then(Value::as_u64)
            .unwrap_or(results.len() as u64),
        results,
        next_after: next_after(json),
    })
}

fn next_after(json: &Value) -> Option<String> {
    text(json.get("paging")?.get("next")?.get("after"))
}

/// `GET /crm/v3/properties/{objectType}`: `{"results":[..]}`.
pub fn property_definitions(json: &Value) -> Result<Vec<PropertyDefinition>, Failure> {
    let list = json
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(200, "a property list without results"))?;
    Ok(list
        .iter()
        .filter_map(|p| {
            let flag = |name: &str| p.get(name).and_then(Value::as_bool).unwrap_or(false);
            let metadata = p.get("modificationMetadata");
            let read_only = metadata
                .and_then(|m| m.get("readOnlyValue"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Some(PropertyDefinition {
                name: text(p.get("name"))?,
                label: text(p.get("label")).unwrap_or_default(),
                kind: text(p.get("type")).unwrap_or_default(),
                field_type: text(p.get("fieldType")).unwrap_or_default(),
                group_name: text(p.get("groupName")).unwrap_or_default(),
                options: p
                    .get("options")
                    .and_then(Value::as_array)
                    .map(|options| {
                        options
                            .iter()
                            .filter_map(|o| {
                                Some(PropertyOption {
                                    label: text(o.get("label")).unwrap_or_default(),
                                    value: text(o.get("value"))?,
                                    hidden: o
                                        .get("hidden")
                                        .and_then(Value::as_bool)
                                        .unwrap_or(false),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                has_unique_value: flag("hasUniqueValue"),
                read_only,
                calculated: flag("calculated"),
                hidden: flag("hidden"),
                archived: flag("archived"),
            })
        })
        .collect())
}

/// `GET /crm/v3/owners`: `{"results":[..],"paging":{"next":{"after"}}}`.
pub fn owners_page(json: &Value) -> Result<OwnersPage, Failure> {
    let list = json
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(200, "an owner list without results"))?;
    let results = list
        .iter()
        .filter_map(|o| {
            Some(Owner {
                id: text(o.get("id"))?,
                email: text(o.get("email")),
                first_name: text(o.get("firstName")),
                last_name: text(o.get("lastName")),
                user_id: o.get("userId").and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                }),
                kind: text(o.get("type")).unwrap_or_else(|| "PERSON".to_owned()),
                teams: o
                    .get("teams")
                    .and_then(Value::as_array)
                    .map(|teams| {
                        teams
                            .iter()
                            .filter_map(|t| {
                                Some(Team {
                                    id: text(t.get("id"))?,
                                    name: text(t.get("name")),
                                    primary: t
                                        .get("primary")
                                        .and_then(Value::as_bool)
                                        .unwrap_or(false),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                archived: o.get("archived").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect();
    Ok(OwnersPage {
        results,
        next_after: next_after(json),
    })
}

/// `GET /crm/v3/objects/{type}?archived=true`: `{"results":[{"id","archivedAt",..}],"paging"}`.
pub fn archived_page(json: &Value) -> Result<ArchivedPage, Failure> {
    let list = json
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(200, "a record list without results"))?;
    let results = list
        .iter()
        .filter_map(|r| {
            Some(ArchivedRecord {
                id: text(r.get("id"))?,
                archived_at_ms: r.get("archivedAt").and_then(timestamp_ms),
                updated_ms: r.get("updatedAt").and_then(timestamp_ms),
            })
        })
        .collect();
    Ok(ArchivedPage {
        results,
        next_after: next_after(json),
    })
}

/// `GET /crm/v3/lists/{listId}`: `{"list":{"listId","name","objectTypeId","processingType",
/// "processingStatus","size",..}}` (the definition is also read when not wrapped in `list`).
pub fn list_info(json: &Value) -> Result<ListInfo, Failure> {
    let list = json.get("list").unwrap_or(json);
    let list_id = text(list.get("listId"))
        .or_else(|| text(list.get("id")))
        .ok_or_else(|| malformed(200, "a list without listId"))?;
    Ok(ListInfo {
        list_id,
        name: text(list.get("name")),
        object_type_id: text(list.get("objectTypeId")),
        processing_type: text(list.get("processingType")),
        processing_status: text(list.get("processingStatus")),
        size: list.get("size").and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        }),
    })
}

/// `GET /crm/v3/lists/{listId}/memberships/join-order`:
/// `{"results":[{"recordId","membershipTimestamp"}],"paging":{"next":{"after"}}}`.
pub fn memberships_page(json: &Value) -> Result<MembershipsPage, Failure> {
    let list = json
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(200, "a membership list without results"))?;
    let results = list
        .iter()
        .filter_map(|m| {
            Some(ListMembership {
                record_id: text(m.get("recordId"))?,
                joined_ms: m.get("membershipTimestamp").and_then(timestamp_ms),
            })
        })
        .collect();
    Ok(MembershipsPage {
        results,
        next_after: next_after(json),
    })
}

/// `GET /account-info/v3/details`.
pub fn account_details(json: &Value) -> Result<AccountDetails, Failure> {
    let portal_id = json
        .get("portalId")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .ok_or_else(|| malformed(200, "account details without portalId"))?;
    Ok(AccountDetails {
        portal_id,
        time_zone: text(json.get("timeZone")),
        utc_offset_ms: json.get("utcOffsetMilliseconds").and_then(Value::as_i64),
        account_type: text(json.get("accountType")),
        company_currency: text(json.get("companyCurrency")),
    })
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn body(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    fn classify(status: u16, value: Value) -> Failure {
        classify_failure(status, &HeaderMap::new(), &body(value), NOW)
    }

    // ----- whole failures -----

    #[test]
    fn invalid_and_expired_tokens_are_auth() {
        let failure = classify(
            401,
            json!({"status":"error","message":"Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview","correlationId":"4f1c6a2e-0d55-4c38-9d0b-3c3b1e0e9a11","category":"INVALID_AUTHENTICATION"}),
        );
        assert_eq!(
            failure.class,
            ErrorClass::Auth {
                missing_scopes: vec![]
            }
        );
        assert_eq!(failure.category, "INVALID_AUTHENTICATION");
        assert_eq!(
            failure.correlation_id.as_deref(),
            Some("4f1c6a2e-0d55-4c38-9d0b-3c3b1e0e9a11")
        );
        assert!(!failure.may_have_applied);
        let expired = classify(
            401,
            json!({"status":"error","message":"The OAuth token used to make this call expired 1 minute(s) ago.","correlationId":"c","category":"EXPIRED_AUTHENTICATION"}),
        );
        assert!(
            matches!(expired.class, ErrorClass::Auth { .. })
                && expired.category == "EXPIRED_AUTHENTICATION"
        );
        assert!(failure.to_string().contains("check hubspot.token"));
    }

    #[test]
    fn missing_scopes_are_auth_with_the_scopes() {
        let failure = classify(
            403,
            json!({"status":"error","message":"This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.","correlationId":"c","category":"MISSING_SCOPES","errors":[{"message":"One or more of the following scopes are required: [\"crm.objects.contacts.write\"]","context":{"requiredGranularScopes":["crm.objects.contacts.write"]}}],"context":{"missingScopes":["crm.objects.contacts.write"]}}),
        );
        assert_eq!(
            failure.class,
            ErrorClass::Auth {
                missing_scopes: vec!["crm.objects.contacts.write".into()]
            }
        );
    }

    #[test]
    fn rate_limits_name_their_policy() {
        let ten = classify(
            429,
            json!({"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","correlationId":"c","policyName":"TEN_SECONDLY_ROLLING","groupName":"hubsync-sandbox:api"}),
        );
        assert_eq!(
            ten.class,
            ErrorClass::RateLimited {
                policy: RateLimitPolicy::TenSecondlyRolling,
                retry_after: None
            }
        );
        assert!(!ten.may_have_applied);
        let daily = classify(
            429,
            json!({"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"c","policyName":"DAILY"}),
        );
        assert!(matches!(
            daily.class,
            ErrorClass::RateLimited {
                policy: RateLimitPolicy::Daily,
                ..
            }
        ));
        // Search's 429 names no policy in some answers: the message tells.
        let secondly = classify(
            429,
            json!({"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT","correlationId":"c"}),
        );
        assert!(matches!(
            secondly.class,
            ErrorClass::RateLimited {
                policy: RateLimitPolicy::Secondly,
                ..
            }
        ));
    }

    #[test]
    fn retry_after_is_honoured_when_present() {
        let with_hint = classify_failure(
            429,
            &headers(&[("retry-after", "3")]),
            &body(
                json!({"status":"error","message":"You have reached your ten_secondly_rolling limit.","policyName":"TEN_SECONDLY_ROLLING"}),
            ),
            NOW,
        );
        assert_eq!(
            with_hint.class,
            ErrorClass::RateLimited {
                policy: RateLimitPolicy::TenSecondlyRolling,
                retry_after: Some(Duration::from_secs(3))
            }
        );
        let date = headers(&[("retry-after", "Thu, 01 Jan 2026 00:00:05 GMT")]);
        assert_eq!(retry_after(&date, NOW), Some(Duration::from_secs(5)));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), NOW), None);
        let unavailable = classify_failure(
            503,
            &headers(&[("retry-after", "7")]),
            b"Service Unavailable",
            NOW,
        );
        assert_eq!(
            unavailable.class,
            ErrorClass::Retryable {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(unavailable.message, "Service Unavailable");
    }

    #[test]
    fn server_errors_and_408_are_retryable_but_501_is_not() {
        for status in [408, 500, 502, 503, 504] {
            let failure = classify(
                status,
                json!({"status":"error","message":"An internal error occurred while processing the request.","correlationId":"c","category":"INTERNAL_ERROR"}),
            );
            assert_eq!(
                failure.class,
                ErrorClass::Retryable { retry_after: None },
                "{status}"
            );
            assert!(failure.may_have_applied, "{status}");
        }
        let not_implemented = classify(
            501,
            json!({"status":"error","message":"Not implemented","category":"NOT_IMPLEMENTED"}),
        );
        assert!(matches!(not_implemented.class, ErrorClass::Data { .. }));
        // An HTML page from a proxy in front of HubSpot.
        let gateway = classify_failure(502, &HeaderMap::new(), b"<html>Bad Gateway</html>", NOW);
        assert!(gateway.class.is_transient());
        assert_eq!(gateway.message, "<html>Bad Gateway</html>");
    }

    #[test]
    fn conflict_carries_the_existing_id() {
        let failure = classify(
            409,
            json!({"status":"error","message":"Contact already exists. Existing ID: 1051","correlationId":"c","category":"CONFLICT"}),
        );
        assert_eq!(
            failure.class,
            ErrorClass::Conflict {
                existing_id: "1051".into()
            }
        );
        let other = classify(
            409,
            json!({"status":"error","message":"Property named 'x' already exists.","category":"OBJECT_ALREADY_EXISTS"}),
        );
        assert!(matches!(other.class, ErrorClass::Data { .. }));
    }

    #[test]
    fn validation_errors_list_each_failing_property() {
        let failure = classify(
            400,
            json!({"status":"error","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"Lead was not one of the allowed options: [subscriber, lead, marketingqualifiedlead, salesqualifiedlead, opportunity, customer, evangelist, other]\",\"error\":\"INVALID_OPTION\",\"name\":\"lifecyclestage\"},{\"isValid\":false,\"message\":\"Property \\\"favourite_colour\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"favourite_colour\"}]","correlationId":"c","category":"VALIDATION_ERROR","errors":[{"message":"Lead was not one of the allowed options","code":"INVALID_OPTION","context":{"propertyName":["lifecyclestage"]}}]}),
        );
        let ErrorClass::Data { property_errors } = &failure.class else {
            panic!("expected a data error, got {:?}", failure.class);
        };
        assert_eq!(failure.category, "VALIDATION_ERROR");
        assert_eq!(
            property_errors,
            &vec![
                PropertyError {
                    name: "lifecyclestage".into(),
                    code: "INVALID_OPTION".into(),
                    message: "Lead was not one of the allowed options: [subscriber, lead, marketingqualifiedlead, salesqualifiedlead, opportunity, customer, evangelist, other]".into(),
                },
                PropertyError {
                    name: "favourite_colour".into(),
                    code: "PROPERTY_DOESNT_EXIST".into(),
                    message: "Property \"favourite_colour\" does not exist".into(),
                },
            ]
        );
        assert!(!failure.class.is_transient());
    }

    #[test]
    fn property_errors_fall_back_to_the_details_and_other_4xx_are_data() {
        let failure = classify(
            400,
            json!({"status":"error","message":"Invalid email","category":"VALIDATION_ERROR","errors":[{"message":"not an email","code":"INVALID_EMAIL","context":{"propertyName":["email"]}}]}),
        );
        assert!(matches!(
            &failure.class,
            ErrorClass::Data { property_errors, .. }
                if property_errors == &vec![PropertyError { name: "email".into(), code: "INVALID_EMAIL".into(), message: "not an email".into() }]
        ));
        assert!(property_errors("Duplicate IDs found in batch input: [1]").is_empty());
        assert!(property_errors("Property values were not valid: [not json").is_empty());
        let gone = classify(
            404,
            json!({"status":"error","message":"resource not found","category":"OBJECT_NOT_FOUND"}),
        );
        assert_eq!(gone.class, ErrorClass::NotFound);
        let teapot = classify_failure(418, &HeaderMap::new(), b"", NOW);
        assert!(matches!(teapot.class, ErrorClass::Data { .. }));
        assert_eq!(teapot.category, "HTTP_418");
        assert_eq!(teapot.message, "status 418 with an empty body");
    }

    #[test]
    fn transport_failures_are_retryable_and_say_whether_anything_was_sent() {
        let timeout = transport_failure(Transport::Timeout, "operation timed out");
        assert!(timeout.class.is_transient());
        assert!(timeout.may_have_applied);
        assert_eq!(timeout.status, None);
        let refused = transport_failure(Transport::Connect, "connection refused");
        assert!(refused.class.is_transient());
        assert!(!refused.may_have_applied);
    }

    #[test]
    fn rate_limit_headers_are_read_when_present() {
        let parsed = RateLimitHeaders::parse(&headers(&[
            ("x-hubspot-ratelimit-max", "190"),
            ("x-hubspot-ratelimit-remaining", "189"),
            ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
            ("x-hubspot-ratelimit-daily", "625000"),
            ("x-hubspot-ratelimit-daily-remaining", "624999"),
        ]));
        assert_eq!(
            parsed,
            RateLimitHeaders {
                max: Some(190),
                remaining: Some(189),
                interval_ms: Some(10_000),
                daily: Some(625_000),
                daily_remaining: Some(624_999),
            }
        );
        assert_eq!(
            RateLimitHeaders::parse(&HeaderMap::new()),
            RateLimitHeaders::default()
        );
    }

    // ----- batches -----

    fn traced<'a>(traces: &[&'a str]) -> Vec<Expected<'a>> {
        traces
            .iter()
            .map(|t| Expected {
                trace_id: Some(t),
                id: None,
            })
            .collect()
    }

    fn outcomes(
        status: u16,
        value: Value,
        expected: &[Expected<'_>],
        by: IdMatch<'_>,
    ) -> Result<Vec<Result<Record, InputError>>, Failure> {
        batch_outcomes(status, &HeaderMap::new(), &body(value), NOW, expected, by)
    }

    #[test]
    fn a_complete_batch_maps_results_by_trace_id() {
        let answer = json!({"status":"COMPLETE","results":[
            {"id":"2","properties":{"email":"b@example.org","firstname":null},"createdAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:00.000Z","archived":false,"objectWriteTraceId":"evt-2"},
            {"id":"1","properties":{"email":"a@example.org"},"archived":false,"objectWriteTraceId":"evt-1"}
        ],"requestedAt":"x","startedAt":"x","completedAt":"x"});
        let out = outcomes(201, answer, &traced(&["evt-1", "evt-2"]), IdMatch::None).unwrap();
        assert_eq!(out[0].as_ref().unwrap().id, "1");
        let second = out[1].as_ref().unwrap();
        assert_eq!(second.id, "2");
        assert_eq!(second.property("email"), Some("b@example.org"));
        assert_eq!(second.properties.get("firstname"), Some(&None));
        assert_eq!(
            second.created_at.as_deref(),
            Some("2026-01-01T00:00:00.000Z")
        );
    }

    #[test]
    fn a_207_maps_errors_to_their_inputs_by_trace_id() {
        let answer = json!({"status":"COMPLETE","results":[
            {"id":"11","properties":{"email":"good@example.org"},"objectWriteTraceId":"evt-1"}
        ],"numErrors":1,"errors":[
            {"status":"error","category":"VALIDATION_ERROR","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"LEAD was not one of the allowed options: [subscriber, lead]\",\"error\":\"INVALID_OPTION\",\"name\":\"lifecyclestage\"}]","context":{"objectWriteTraceId":["evt-2"]},"errors":[{"message":"LEAD was not one of the allowed options: [subscriber, lead]","code":"INVALID_OPTION","context":{"propertyName":["lifecyclestage"]}}]}
        ],"requestedAt":"x","startedAt":"x","completedAt":"x"});
        let out = outcomes(207, answer, &traced(&["evt-2", "evt-1"]), IdMatch::None).unwrap();
        let error = out[0].as_ref().unwrap_err();
        assert_eq!(error.category, "VALIDATION_ERROR");
        assert_eq!(
            error.context.get("objectWriteTraceId"),
            Some(&vec!["evt-2".to_owned()])
        );
        assert!(matches!(
            &error.class,
            ErrorClass::Data { property_errors, .. }
                if property_errors.len() == 1 && property_errors[0].code == "INVALID_OPTION"
        ));
        assert_eq!(out[1].as_ref().unwrap().id, "11");
    }

    #[test]
    fn a_207_conflict_and_missing_record_are_classified_per_input() {
        let answer = json!({"status":"COMPLETE","results":[],"numErrors":2,"errors":[
            {"status":"error","category":"CONFLICT","message":"Contact already exists. Existing ID: 77","context":{"objectWriteTraceId":["a"],"existingId":["77"]}},
            {"status":"error","category":"OBJECT_NOT_FOUND","message":"Object not found.  objectId are usually numeric. id: 999999","context":{"objectWriteTraceId":["b"],"ids":["999999"]}}
        ]});
        let out = outcomes(207, answer, &traced(&["a", "b"]), IdMatch::None).unwrap();
        assert_eq!(
            out[0].as_ref().unwrap_err().class,
            ErrorClass::Conflict {
                existing_id: "77".into()
            }
        );
        assert_eq!(out[1].as_ref().unwrap_err().class, ErrorClass::NotFound);
    }

    #[test]
    fn a_read_with_missing_ids_maps_errors_by_id() {
        let expected = [
            Expected {
                trace_id: None,
                id: Some("5"),
            },
            Expected {
                trace_id: None,
                id: Some("123456789"),
            },
            Expected {
                trace_id: None,
                id: Some("123456790"),
            },
        ];
        let answer = json!({"status":"COMPLETE","results":[
            {"id":"5","properties":{"email":"r@example.org","hubspot_owner_id":null}}
        ],"numErrors":1,"errors":[
            {"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.","context":{"ids":["123456789","123456790"]}}
        ]});
        let out = outcomes(207, answer, &expected, IdMatch::RecordId).unwrap();
        assert_eq!(out[0].as_ref().unwrap().id, "5");
        assert_eq!(out[1].as_ref().unwrap_err().class, ErrorClass::NotFound);
        assert_eq!(out[2].as_ref().unwrap_err().class, ErrorClass::NotFound);
    }

    #[test]
    fn results_without_trace_ids_match_by_unique_property_ignoring_email_case() {
        let expected = [
            Expected {
                trace_id: Some("1"),
                id: Some("OLD@example.org"),
            },
            Expected {
                trace_id: Some("2"),
                id: Some("fresh@example.org"),
            },
        ];
        let answer = json!({"results":[
            {"id":"9","properties":{"email":"fresh@example.org"},"new":true},
            {"id":"3","properties":{"email":"old@example.org"},"new":false}
        ]});
        let out = outcomes(200, answer, &expected, IdMatch::Property("email")).unwrap();
        let old = out[0].as_ref().unwrap();
        assert_eq!((old.id.as_str(), old.new), ("3", Some(false)));
        let fresh = out[1].as_ref().unwrap();
        assert_eq!((fresh.id.as_str(), fresh.new), ("9", Some(true)));
    }

    #[test]
    fn results_that_name_nothing_are_matched_in_order_only_when_counts_agree() {
        let answer = json!({"results":[{"id":"1","properties":{}},{"id":"2","properties":{}}]});
        let out = outcomes(201, answer.clone(), &traced(&["a", "b"]), IdMatch::None).unwrap();
        assert_eq!(out[0].as_ref().unwrap().id, "1");
        assert_eq!(out[1].as_ref().unwrap().id, "2");
        let out = outcomes(201, answer, &traced(&["a", "b", "c"]), IdMatch::None).unwrap();
        for outcome in &out {
            let error = outcome.as_ref().unwrap_err();
            assert_eq!(error.category, "MISSING_RESULT");
            assert!(error.class.is_transient());
        }
    }

    #[test]
    fn an_input_the_answer_leaves_out_gets_an_error_of_its_own() {
        let answer = json!({"results":[{"id":"1","properties":{},"objectWriteTraceId":"a"}]});
        let out = outcomes(200, answer, &traced(&["a", "b"]), IdMatch::None).unwrap();
        assert!(out[0].is_ok());
        assert_eq!(out[1].as_ref().unwrap_err().category, "MISSING_RESULT");
    }

    #[test]
    fn a_2xx_without_results_or_errors_fails_the_whole_batch() {
        let failure = outcomes(
            200,
            json!({"status":"COMPLETE","results":[],"requestedAt":"x","startedAt":"x","completedAt":"x"}),
            &traced(&["a"]),
            IdMatch::None,
        )
        .unwrap_err();
        assert_eq!(failure.class, ErrorClass::Retryable { retry_after: None });
        assert!(failure.may_have_applied);
        assert!(failure.message.contains("neither results nor errors"));
        // Nothing asked, nothing answered: fine.
        assert_eq!(
            outcomes(200, json!({"results": []}), &[], IdMatch::None).unwrap(),
            vec![]
        );
    }

    #[test]
    fn a_2xx_that_is_not_json_is_untrusted() {
        let failure = batch_outcomes(
            200,
            &HeaderMap::new(),
            b"<html>",
            NOW,
            &traced(&["a"]),
            IdMatch::None,
        )
        .unwrap_err();
        assert!(failure.class.is_transient());
        assert!(failure.may_have_applied);
    }

    #[test]
    fn a_whole_batch_failure_is_returned_as_such() {
        let failure = outcomes(
            409,
            json!({"status":"error","message":"Contact already exists. Existing ID: 5","correlationId":"c","category":"CONFLICT"}),
            &traced(&["a", "b"]),
            IdMatch::None,
        )
        .unwrap_err();
        assert_eq!(
            failure.class,
            ErrorClass::Conflict {
                existing_id: "5".into()
            }
        );
    }

    #[test]
    fn association_answers_map_by_ends() {
        let inputs = vec![
            AssociationInput {
                trace_id: "l1".into(),
                from_id: "1".into(),
                to_id: "2".into(),
                types: vec![],
            },
            AssociationInput {
                trace_id: "l2".into(),
                from_id: "1".into(),
                to_id: "4242".into(),
                types: vec![],
            },
        ];
        let answer = json!({"status":"COMPLETE","results":[
            {"fromObjectTypeId":"0-1","fromObjectId":1,"toObjectTypeId":"0-2","toObjectId":2,"labels":["Primary"]}
        ],"numErrors":1,"errors":[
            {"status":"error","category":"OBJECT_NOT_FOUND","message":"Object not found.  objectId are usually numeric. id: 4242","context":{"ids":["4242"]}}
        ]});
        let out =
            association_outcomes(207, &HeaderMap::new(), &body(answer), NOW, &inputs).unwrap();
        assert_eq!(
            out[0].as_ref().unwrap(),
            &AssociationLink {
                from_id: "1".into(),
                to_id: "2".into(),
                labels: vec!["Primary".into()]
            }
        );
        assert_eq!(out[1].as_ref().unwrap_err().class, ErrorClass::NotFound);
    }

    // ----- other answers -----

    #[test]
    fn search_pages_carry_total_and_cursor() {
        let page = search_page(&json!({"total": 7, "results": [
            {"id":"29","properties":{"domain":"d29.io"},"createdAt":"x","updatedAt":"y","archived":false}
        ], "paging": {"next": {"after": "4"}}}))
        .unwrap();
        assert_eq!(page.total, 7);
        assert_eq!(page.results[0].property("domain"), Some("d29.io"));
        assert_eq!(page.next_after.as_deref(), Some("4"));
        let last = search_page(&json!({"total": 0, "results": []})).unwrap();
        assert_eq!(last.next_after, None);
    }

    #[test]
    fn properties_owners_and_account_details() {
        let defs = property_definitions(&json!({"results": [
            {"name":"lifecyclestage","label":"Lifecycle stage","type":"enumeration","fieldType":"select","groupName":"contactinformation",
             "options":[{"label":"Lead","value":"lead","hidden":false}],"hasUniqueValue":false,"calculated":false,"hidden":false,
             "modificationMetadata":{"archivable":true,"readOnlyDefinition":true,"readOnlyValue":false},"archived":false},
            {"name":"hs_object_id","label":"Record ID","type":"number","fieldType":"number","groupName":"contactinformation","options":[],
             "modificationMetadata":{"readOnlyValue":true}}
        ]}))
        .unwrap();
        assert_eq!(defs[0].kind, "enumeration");
        assert_eq!(defs[0].options[0].value, "lead");
        assert!(!defs[0].read_only);
        assert!(defs[1].read_only);

        let owners = owners_page(&json!({"results": [
            {"id":"70000002","email":"grace.hopper@example.com","type":"PERSON","firstName":"Grace","lastName":"Hopper","userId":9000002,
             "createdAt":"x","updatedAt":"x","archived":false,"teams":[{"id":"1","name":"Sales","primary":true}]}
        ], "paging": {"next": {"after": "3"}}}))
        .unwrap();
        assert_eq!(owners.results[0].id, "70000002");
        assert_eq!(owners.results[0].user_id, Some(9_000_002));
        assert!(owners.results[0].teams[0].primary);
        assert_eq!(owners.next_after.as_deref(), Some("3"));

        let account = account_details(&json!({"portalId": 48151623, "timeZone": "Etc/UTC", "utcOffsetMilliseconds": 0, "accountType": "STANDARD"})).unwrap();
        assert_eq!(account.portal_id, 48_151_623);
        assert_eq!(account.utc_offset_ms, Some(0));
        assert!(account_details(&json!({"timeZone": "UTC"})).is_err());
    }

    #[test]
    fn timestamps_are_read_in_every_form_hubspot_writes() {
        assert_eq!(timestamp_ms(&json!("2026-01-01T00:00:00.000Z")), Some(NOW));
        assert_eq!(
            timestamp_ms(&json!("2026-01-01T01:00:00.250+01:00")),
            Some(NOW + 250)
        );
        assert_eq!(timestamp_ms(&json!("1767225600000")), Some(NOW));
        assert_eq!(timestamp_ms(&json!(1_767_225_600_000_i64)), Some(NOW));
        assert_eq!(timestamp_ms(&json!("yesterday")), None);
        assert_eq!(timestamp_ms(&json!("")), None);
        assert_eq!(timestamp_ms(&json!(null)), None);
    }

    #[test]
    fn a_history_read_gives_versions_newest_first_per_property() {
        let expected = [
            Expected {
                trace_id: None,
                id: Some("101"),
            },
            Expected {
                trace_id: None,
                id: Some("999"),
            },
        ];
        let answer = json!({"status":"COMPLETE","results":[{
            "id":"101",
            "properties":{"createdate":"2025-12-31T00:00:00.000Z","firstname":"Ada","hs_object_id":"101"},
            "propertiesWithHistory":{
                "firstname":[
                    {"value":"Ada","timestamp":"2026-01-01T00:00:00.000Z","sourceType":"CRM_UI","sourceId":"userId:7","sourceLabel":"Grace","updatedByUserId":7},
                    {"value":"Ad","timestamp":"2025-12-31T00:00:00.000Z","sourceType":"INTEGRATION","sourceId":"4242"},
                    {"value":"broken","timestamp":"not a time","sourceType":"API"}
                ],
                "jobtitle":[]
            },
            "createdAt":"2025-12-31T00:00:00.000Z","updatedAt":"2026-01-01T00:00:00.000Z","archived":false
        }],"numErrors":1,"errors":[{"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects","context":{"ids":["999"]}}]});
        let out = history_outcomes(207, &HeaderMap::new(), &body(answer), NOW, &expected).unwrap();
        let read = out[0].as_ref().unwrap();
        assert_eq!(read.record.id, "101");
        assert_eq!(read.record.property("firstname"), Some("Ada"));
        assert_eq!(read.created_ms, Some(NOW - 86_400_000));
        assert_eq!(read.updated_ms, Some(NOW));
        assert_eq!(
            read.history["firstname"],
            [
                PropertyVersion {
                    value: "Ada".into(),
                    timestamp_ms: NOW,
                    source_type: Some("CRM_UI".into()),
                    source_id: Some("userId:7".into()),
                },
                PropertyVersion {
                    value: "Ad".into(),
                    timestamp_ms: NOW - 86_400_000,
                    source_type: Some("INTEGRATION".into()),
                    source_id: Some("4242".into()),
                },
            ]
        );
        assert!(read.history["jobtitle"].is_empty());
        assert_eq!(out[1].as_ref().unwrap_err().class, ErrorClass::NotFound);

        // Versions out of order are put newest first; a cleared value is "".
        let unordered = parse_record_history(&json!({"id":"5","propertiesWithHistory":{"phone":[
            {"value":"","timestamp":"1767225600000","sourceType":"CRM_UI"},
            {"value":"+1","timestamp":"1767225700000","sourceType":"IMPORT"}
        ]}}))
        .unwrap();
        let phone: Vec<&str> = unordered.history["phone"]
            .iter()
            .map(|v| v.value.as_str())
            .collect();
        assert_eq!(phone, ["+1", ""]);
        assert_eq!(unordered.created_ms, None);
    }

    #[test]
    fn archived_records_lists_and_memberships() {
        let page = archived_page(&json!({"results":[
            {"id":"7","properties":{},"createdAt":"x","updatedAt":"2026-01-01T00:00:00.000Z","archived":true,"archivedAt":"2026-01-01T00:00:01.000Z"},
            {"id":"8","archived":true}
        ],"paging":{"next":{"after":"8"}}}))
        .unwrap();
        assert_eq!(
            page.results[0],
            ArchivedRecord {
                id: "7".into(),
                archived_at_ms: Some(NOW + 1_000),
                updated_ms: Some(NOW),
            }
        );
        assert_eq!(page.results[1].archived_at_ms, None);
        assert_eq!(page.next_after.as_deref(), Some("8"));
        assert!(archived_page(&json!({"status":"x"})).is_err());

        let info = list_info(
            &json!({"list":{"listId":"42","name":"Webinar","objectTypeId":"0-1",
            "processingType":"MANUAL","processingStatus":"COMPLETE","size":3}}),
        )
        .unwrap();
        assert_eq!(info.list_id, "42");
        assert_eq!(info.object_type_id.as_deref(), Some("0-1"));
        assert_eq!(info.size, Some(3));
        assert_eq!(list_info(&json!({"listId": 43})).unwrap().list_id, "43");
        assert!(list_info(&json!({"list": {}})).is_err());

        let members = memberships_page(&json!({"results":[
            {"recordId":"101","membershipTimestamp":"2026-01-01T00:00:00.000Z"},
            {"recordId":102,"membershipTimestamp":"2026-01-01T00:00:00.500Z"},
            {"membershipTimestamp":"2026-01-01T00:00:00.500Z"}
        ],"paging":{"next":{"after":"AoJ"}}}))
        .unwrap();
        assert_eq!(
            members.results,
            [
                ListMembership {
                    record_id: "101".into(),
                    joined_ms: Some(NOW),
                },
                ListMembership {
                    record_id: "102".into(),
                    joined_ms: Some(NOW + 500),
                },
            ]
        );
        assert_eq!(members.next_after.as_deref(), Some("AoJ"));
    }

    /// Found by the property below: an empty category fell through as the failure's category,
    /// and so as an empty reason code.
    #[test]
    fn empty_fields_of_an_error_body_fall_back_to_the_status() {
        let body = json!({"status": "", "category": "", "message": " ", "correlationId": ""});
        let failure = classify_failure(400, &HeaderMap::new(), body.to_string().as_bytes(), NOW);
        assert_eq!(failure.category, "HTTP_400");
        assert!(!failure.message.trim().is_empty(), "{failure:?}");
        assert_eq!(failure.correlation_id, None);
    }

    /// Whatever HubSpot (or something in its place) answers, the answer is classified or
    /// refused as malformed; reading it never panics.
    mod arbitrary_answers {
        use proptest::prelude::*;

        use super::*;

        /// Bodies shaped like HubSpot's, with arbitrary values where HubSpot puts its own.
        fn body() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                (".{0,40}", ".{0,40}", ".{0,80}").prop_map(|(status, category, message)| {
                    json!({"status": status, "category": category, "message": message,
                           "correlationId": "c-1", "errors": [{"message": message,
                           "context": {"propertyName": [category]}}]})
                    .to_string()
                    .into_bytes()
                }),
                (".{0,20}", any::<i64>(), any::<bool>()).prop_map(|(id, n, new)| {
                    json!({"status": "COMPLETE", "results": [{"id": id, "new": new,
                           "properties": {"email": id, "n": n}, "objectWriteTraceId": id}],
                           "errors": [{"status": "error", "category": id, "message": id,
                           "context": {"objectWriteTraceId": [id], "ids": [id]}}]})
                    .to_string()
                    .into_bytes()
                }),
            ]
        }

        proptest! {
            #[test]
            fn every_answer_is_classified_or_refused(
                status in 100u16..600,
                retry_after in ".{0,12}",
                body in body(),
            ) {
                let mut map = HeaderMap::new();
                if let Ok(value) = HeaderValue::from_str(&retry_after) {
                    map.insert("retry-after", value);
                }
                let failure = classify_failure(status, &map, &body, NOW);
                prop_assert!(!failure.category.is_empty(), "a failure names its category");
                let _ = success_json(status, &map, &body, NOW);
                let expected = [
                    Expected { trace_id: Some("t-1"), id: Some("1") },
                    Expected { trace_id: None, id: Some("a@b.io") },
                ];
                for by in [IdMatch::RecordId, IdMatch::Property("email"), IdMatch::None] {
                    let _ = batch_outcomes(status, &map, &body, NOW, &expected, by);
                }
                let _ = history_outcomes(status, &map, &body, NOW, &expected);
                if let Ok(value) = serde_json::from_slice::<Value>(&body) {
                    let _ = parse_record(&value);
                    let _ = parse_record_history(&value);
                    let _ = archived_page(&value);
                    let _ = list_info(&value);
                    let _ = memberships_page(&value);
                    let _ = input_error(&value);
                    let _ = account_details(&value);
                }
            }
        }
    }
}
