//! The console's handlers: query parameters parsed as the CLI's flags are, answers in the JSON
//! the CLI's `--json` prints, errors as `{"error": "..."}` naming the parameter.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Access, Console};
use crate::config::Service;
use crate::ops::Ops;
use crate::ops::dlq::{
    LetterFilter, parse_class, parse_id, read_letter, redrive as redrive_letters,
};
use crate::ops::logs::index::OutcomeIndex;
use crate::ops::logs::{OutcomeFilter, parse_status};
use crate::ops::range::{Window, parse_time};
use crate::ops::record::RecordQuery;
use crate::ops::subject::Asked;
use crate::ops::trace::gather;
use crate::outcomes::now_ms;

const PAGE: &str = include_str!("page.html");
const OPENAPI: &str = include_str!("openapi.json");
/// Rows an outcomes or dead-letter list answers when `limit` is not given, and at most.
const DEFAULT_ROWS: usize = 500;
const MAX_ROWS: usize = 10_000;

/// An answer that is not the one asked for.
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<(StatusCode, String)> for ApiError {
    fn from((status, message): (StatusCode, String)) -> Self {
        ApiError(status, message)
    }
}

fn bad(parameter: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, format!("{parameter}: {problem}"))
}

/// A query string that does not parse (`limit=ten`): the same JSON error as any bad parameter.
fn rejected(rejection: QueryRejection) -> ApiError {
    bad("query", rejection.body_text())
}

fn failed(problem: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_GATEWAY, problem.to_string())
}

type Answer = Result<Response, ApiError>;

pub(crate) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The filters the outcome and dead-letter lists share, as query parameters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    team: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Comma-separated statuses.
    status: Option<String>,
    /// Comma-separated reason codes.
    reason: Option<String>,
    /// Comma-separated error classes (dead letters).
    class: Option<String>,
    record: Option<String>,
    topic: Option<String>,
    limit: Option<usize>,
    /// Minutes per step of a series.
    step: Option<i64>,
}

fn list(value: &Option<String>) -> Vec<String> {
    value
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

impl Params {
    fn window(&self) -> Result<Window, ApiError> {
        let now = now_ms();
        let at = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| parse_time(v, now).map_err(|e| bad(name, e)))
                .transpose()
        };
        let window = Window {
            since: at("since", &self.since)?,
            until: at("until", &self.until)?,
        };
        if let (Some(since), Some(until)) = (window.since, window.until)
            && since > until
        {
            return Err(bad("since", "is after until"));
        }
        Ok(window)
    }

    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_ROWS),
            Some(0) => Err(bad("limit", "must be at least 1")),
            Some(n) if n > MAX_ROWS => Err(bad("limit", format!("at most {MAX_ROWS}"))),
            Some(n) => Ok(n),
        }
    }

    fn team(&self, console: &Console) -> Option<String> {
        self.team
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| console.inner.single_team.clone())
    }

    fn outcome_filter(&self, console: &Console) -> Result<OutcomeFilter, ApiError> {
        let statuses = list(&self.status)
            .iter()
            .map(|s| parse_status(s).map_err(|e| bad("status", e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OutcomeFilter {
            statuses,
            reasons: list(&self.reason),
            record: self
                .record
                .as_deref()
                .filter(|r| !r.trim().is_empty())
                .map(RecordQuery::parse),
            topic: self.topic.clone().filter(|t| !t.is_empty()),
            team: self.team(console),
        })
    }

    fn letter_filter(&self, console: &Console) -> Result<LetterFilter, ApiError> {
        let classes = list(&self.class)
            .iter()
            .map(|c| parse_class(c).map_err(|e| bad("class", e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LetterFilter {
            reasons: list(&self.reason),
            classes,
            topic: self.topic.clone().filter(|t| !t.is_empty()),
            record: self
                .record
                .as_deref()
                .filter(|r| !r.trim().is_empty())
                .map(RecordQuery::parse),
            team: self.team(console),
        })
    }
}

fn index(console: &Console) -> Result<&OutcomeIndex, ApiError> {
    console.inner.index.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "this service keeps no outcomes index ({}); use `hubsync logs`",
                console.inner.no_index.as_deref().unwrap_or("none")
            ),
        )
    })
}

/// When the index last caught up, for answers that come from it.
fn indexed_at(console: &Console) -> Option<String> {
    let at = console.inner.indexed_at.load(Ordering::Relaxed);
    (at > 0).then(|| crate::ops::range::format_ms(at))
}

/// Runs Kafka work on a thread of its own: the reader's metadata, watermark and offset lookups
/// are librdkafka's blocking calls (up to 15 s each while the brokers are away), and on the
/// runtime's threads they would hold up other tasks, such as the webhook receiver.
async fn off_runtime<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(work))
        .await
        .map_err(failed)?
}

fn ok<T: Serialize>(value: &T) -> Answer {
    Ok(Json(value).into_response())
}

pub(crate) async fn teams(State(console): State<Console>, headers: HeaderMap) -> Answer {
    console.authorize(&headers, Access::Read)?;
    let mut teams: std::collections::BTreeSet<String> =
        console.inner.single_team.iter().cloned().collect();
    if let Some(index) = &console.inner.index {
        teams.extend(
            index
                .teams()
                .map_err(failed)?
                .into_iter()
                .filter(|t| !t.is_empty()),
        );
    }
    teams.extend(console.inner.health.budget_history(None).into_keys());
    ok(&json!({ "teams": teams, "single_team": console.inner.single_team }))
}

pub(crate) async fn outcomes(
    State(console): State<Console>,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Answer {
    console.authorize(&headers, Access::Read)?;
    let Query(params) = query.map_err(rejected)?;
    let filter = params.outcome_filter(&console)?;
    let page = index(&console)?
        .query(&filter, params.window()?, Some(params.limit()?))
        .map_err(failed)?;
    ok(&json!({
        "outcomes": page.outcomes,
        "matched": page.matched,
        "indexed_at": indexed_at(&console),
    }))
}

pub(crate) async fn counts(
    State(console): State<Console>,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Answer {
    console.authorize(&headers, Access::Read)?;
    let Query(params) = query.map_err(rejected)?;
    let filter = params.outcome_filter(&console)?;
    let counts = index(&console)?
        .counts(&filter, params.window()?)
        .map_err(failed)?;
    ok(&counts)
}

pub(crate) async fn series(
    State(console): State<Console>,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Answer {
    console.authorize(&headers, Access::Read)?;
    let Query(params) = query.map_err(rejected)?;
    let filter = params.outcome_filter(&console)?;
    let window = params.window()?;
    let until = window.until.unwrap_or_else(now_ms);
    let since = window.since.unwrap_or(until - 86_400_000);
    let step_minutes = params.step.unwrap_or(0);
    let step_ms = if step_minutes > 0 {
        step_minutes * 60_000
    } else {
        // About sixty bars, whole minutes.
        ((until - since) / 60).max(60_000)
    };
    if (until - since) / step_ms > 2_000 {
        return Err(bad("step", "more than 2,000 steps: choose a longer step"));
    }
    let series = index(&console)?
        .series(&filter, since, until, step_ms)
        .map_err(failed)?;
    ok(&series)
}

pub(crate) async fn budget(
    State(console): State<Console>,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Answer {
    console.authorize(&headers, Access::Read)?;
    let Query(params) = query.map_err(rejected)?;
    let team = params.team(&console);
    ok(&json!({
        "teams": console.inner.health.budget_history(team.as_deref()),
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct TraceParams {
    record: Option<String>,
    team: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

pub(crate) async fn trace(
    State(console): State<Console>,
    headers: HeaderMap,
    query: Result<Query<TraceParams>, QueryRejection>,
) -> Answer {
    console.authorize(&headers, Access::Read)?;
    let Query(params) = query.map_err(rejected)?;
    let record = params.record.as_deref().unwrap_or_default();
    let Some(asked) = Asked::parse(record) else {
        return Err(bad(
            "record",
            "give an email, a domain, an event id, an upstream id or a HubSpot id",
        ));
    };
    let window = Params {
        since: params.since.clone(),
        until: params.until.clone(),
        ..Params::default()
    }
    .window()?;
    let team = params
        .team
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| console.inner.single_team.clone());
    let path = console.inner.config_path.clone();
    let config = Service::team_config(&path, team.as_deref()).map_err(|e| bad("team", e))?;
    let secrets = config.resolve_secrets().map_err(failed)?;
    let client = crate::pipeline::hubspot_client(&config, &secrets).map_err(failed)?;
    let ops = Ops::new(config, secrets).map_err(failed)?;
    let report = off_runtime(async move {
        gather::trace(&ops, &client, &asked, window, false)
            .await
            .map_err(failed)
    })
    .await?;
    ok(&report)
}

pub(crate) async fn dead_letters(
    State(console): State<Console>,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Answer {
    console.authorize(&headers, Access::Read)?;
    let Query(params) = query.map_err(rejected)?;
    let filter = params.letter_filter(&console)?;
    let (window, limit) = (params.window()?, params.limit()?);
    let reader = console.inner.ops.reader(false).map_err(failed)?;
    let topic = console.inner.ops.config.topics.dlq.clone();
    let (letters, matched) = off_runtime(async move {
        crate::ops::dlq::select(&reader, &topic, window, &filter, Some(limit))
            .await
            .map_err(failed)
    })
    .await?;
    let views: Vec<_> = letters.iter().map(|l| l.view(false)).collect();
    ok(&json!({ "dead_letters": views, "matched": matched }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LetterParams {
    id: Option<String>,
    team: Option<String>,
}

pub(crate) async fn dead_letter(
    State(console): State<Console>,
    headers: HeaderMap,
    query: Result<Query<LetterParams>, QueryRejection>,
) -> Answer {
    console.authorize(&headers, Access::Read)?;
    let Query(params) = query.map_err(rejected)?;
    let id = parse_id(params.id.as_deref().unwrap_or_default()).map_err(|e| bad("id", e))?;
    let reader = console.inner.ops.reader(false).map_err(failed)?;
    let wanted = id.clone();
    let letter = off_runtime(async move {
        read_letter(&reader, &wanted)
            .await
            .map_err(|e| ApiError(StatusCode::NOT_FOUND, e))
    })
    .await?;
    let team = params
        .team
        .filter(|t| !t.is_empty())
        .or_else(|| console.inner.single_team.clone());
    if let (Some(team), Some(theirs)) = (&team, letter.dead_letter.team_id.as_deref())
        && !theirs.is_empty()
        && theirs != team
    {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{id} is not a dead letter of team {team}"),
        ));
    }
    ok(&letter.view(true))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedriveBody {
    ids: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

pub(crate) async fn redrive(
    State(console): State<Console>,
    headers: HeaderMap,
    body: Result<Json<RedriveBody>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    console.authorize(&headers, Access::Redrive)?;
    let Json(body) = body.map_err(|e| bad("body", e.body_text()))?;
    if body.ids.is_empty() {
        return Err(bad("ids", "name at least one dead letter"));
    }
    let ids = body
        .ids
        .iter()
        .map(|id| parse_id(id).map_err(|e| bad("ids", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let ops = &console.inner.ops;
    let reader = ops.reader(false).map_err(failed)?;
    let producer = ops.producer().map_err(failed)?;
    let dry_run = body.dry_run;
    let report = off_runtime(async move {
        let mut letters = Vec::new();
        for id in &ids {
            letters.push(
                read_letter(&reader, id)
                    .await
                    .map_err(|e| ApiError(StatusCode::NOT_FOUND, e))?,
            );
        }
        Ok(redrive_letters(&producer, &letters, dry_run, now_ms()).await)
    })
    .await?;
    tracing::info!(summary = %report.summary(), "dead letters redriven from the console");
    ok(&report)
}
