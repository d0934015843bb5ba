//! The console: the sync logs as a JSON API and a web page, on the admin listener beside
//! `/metrics` and `/healthz`. It answers what `hubsync logs`, `trace` and `dlq` answer, from the
//! same code (`crate::ops`), and redrives dead letters.
//!
//! ```text
//! GET  /                                   the page (HTML, script and style embedded)
//! GET  /api/openapi.json                   the API, described
//! GET  /api/v1/teams                       the teams that have outcomes or are served
//! GET  /api/v1/outcomes[/counts|/series]   the outcomes index, filtered
//! GET  /api/v1/budget                      each team's HubSpot budget use, per minute
//! GET  /api/v1/trace?record=..             one record's story
//! GET  /api/v1/dead-letters, /dead-letter  dead letters, one whole
//! POST /api/v1/dead-letters/redrive        publishes dead letters again (token always)
//! ```
//!
//! Access: with the listener on a loopback address, reading needs no token; bound elsewhere,
//! every API call needs `Authorization: Bearer <admin.token>` (and none is answered while no
//! token is set). A redrive always needs the token. The page itself holds no data.
//!
//! Outcomes come from the service's outcomes index ([`crate::ops::logs::index`]), which
//! [`spawn_indexer`] keeps caught up with the outcomes topic.

mod api;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use tracing::{info, warn};

use crate::admin::Health;
use crate::config::{Config, Secret, Secrets};
use crate::ops::Ops;
use crate::ops::logs::index::{OutcomeIndex, catch_up};

/// How often the indexer looks for new outcomes.
const INDEX_EVERY: Duration = Duration::from_secs(1);
/// How often entries past their days are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    /// The configuration file, read again for a team's rules and connection (trace).
    config_path: PathBuf,
    /// The deployment's settings (topics, Kafka, registry) and their secrets.
    ops: Ops,
    single_team: Option<String>,
    index: Option<OutcomeIndex>,
    /// Why there is no index, when there is none.
    no_index: Option<String>,
    /// When the index last caught up with the topic, in milliseconds (0: not yet).
    indexed_at: Arc<AtomicI64>,
    token: Option<Secret>,
    loopback: bool,
    health: Health,
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Redrive,
}

impl Console {
    /// The console of a service: `settings` and `secrets` are the deployment's; `single_team`
    /// names the team of a one-file configuration.
    pub fn new(
        config_path: PathBuf,
        settings: Config,
        secrets: Secrets,
        single_team: Option<String>,
        health: Health,
    ) -> anyhow::Result<Self> {
        let token = match &settings.admin.token {
            Some(source) => Some(
                source
                    .resolve("admin.token")
                    .map_err(|p| anyhow::anyhow!("{p}"))?,
            ),
            None => None,
        };
        let loopback = settings
            .admin
            .listen_addr()
            .map(|addr| addr.ip().is_loopback())
            .unwrap_or(false);
        let (index, no_index) = if settings.admin.outcomes_index_days == 0 {
            (None, Some("admin.outcomes_index_days is 0".to_string()))
        } else {
            let dir = settings.state.dir.join("outcomes-index");
            match OutcomeIndex::open(&dir) {
                Ok(index) => (Some(index), None),
                Err(error) => {
                    warn!(%error, "the console answers without an outcomes index");
                    (None, Some(error.to_string()))
                }
            }
        };
        let ops = Ops::new(settings, secrets)?;
        Ok(Console {
            inner: Arc::new(Inner {
                config_path,
                ops,
                single_team,
                index,
                no_index,
                indexed_at: Arc::new(AtomicI64::new(0)),
                token,
                loopback,
                health,
            }),
        })
    }

    /// Whether the request may do `access`; the refusal's status and words otherwise.
    pub(crate) fn authorize(
        &self,
        headers: &HeaderMap,
        access: Access,
    ) -> Result<(), (axum::http::StatusCode, String)> {
        use axum::http::StatusCode;
        let inner = &self.inner;
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (&inner.token, access) {
            (None, Access::Redrive) => Err((
                StatusCode::FORBIDDEN,
                "a redrive needs admin.token, and none is set in the service file".into(),
            )),
            (None, Access::Read) if !inner.loopback => Err((
                StatusCode::FORBIDDEN,
                "admin.listen is reachable from other hosts and admin.token is not set: the API \
                 answers nothing until it is"
                    .into(),
            )),
            (None, Access::Read) => Ok(()),
            (Some(_), Access::Read) if inner.loopback => Ok(()),
            (Some(token), _) => match presented {
                Some(given) if same(given.as_bytes(), token.expose().as_bytes()) => Ok(()),
                Some(_) => Err((StatusCode::UNAUTHORIZED, "the token is not right".into())),
                None => Err((
                    StatusCode::UNAUTHORIZED,
                    "send the admin token: Authorization: Bearer <admin.token>".into(),
                )),
            },
        }
    }
}

/// Compares two secrets in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The console's routes, to merge into the admin router.
pub fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(api::page))
        .route("/api/openapi.json", get(api::openapi))
        .route("/api/v1/teams", get(api::teams))
        .route("/api/v1/outcomes", get(api::outcomes))
        .route("/api/v1/outcomes/counts", get(api::counts))
        .route("/api/v1/outcomes/series", get(api::series))
        .route("/api/v1/budget", get(api::budget))
        .route("/api/v1/trace", get(api::trace))
        .route("/api/v1/dead-letters", get(api::dead_letters))
        .route("/api/v1/dead-letter", get(api::dead_letter))
        .route("/api/v1/dead-letters/redrive", post(api::redrive))
        .with_state(console)
}

/// Keeps the console's outcomes index caught up with the outcomes topic until `stop` turns
/// true, pruning what is older than `admin.outcomes_index_days`.
pub fn spawn_indexer(
    console: &Console,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let inner = console.inner.clone();
    let index = inner.index.clone()?;
    // The reads of the topic's bounds and records are librdkafka's blocking calls (up to 15 s
    // each while the brokers are away): on a thread of its own they hold up no other task, such
    // as the webhook receiver, which must answer HubSpot within 5 s.
    let runtime = tokio::runtime::Handle::current();
    Some(tokio::task::spawn_blocking(move || {
        runtime.block_on(async move {
            let topic = inner.ops.config.topics.outcomes.clone();
            let days = i64::from(inner.ops.config.admin.outcomes_index_days);
            let reader = match inner.ops.reader(false) {
                Ok(reader) => reader,
                Err(error) => {
                    warn!(%error, "the outcomes index cannot read the topic");
                    return;
                }
            };
            let mut pruned: Option<Instant> = None;
            loop {
                match catch_up(&index, &reader, &topic).await {
                    Ok(caught) => {
                        if caught.read > 0 {
                            tracing::debug!(read = caught.read, "outcomes indexed");
                        }
                        inner
                            .indexed_at
                            .store(crate::outcomes::now_ms(), Ordering::Relaxed);
                    }
                    Err(error) => warn!(%error, "the outcomes index could not catch up"),
                }
                if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                    let before = crate::outcomes::now_ms() - days * 86_400_000;
                    match index.prune(before) {
                        Ok(0) => {}
                        Ok(removed) => info!(removed, days, "outcomes older than the index keeps"),
                        Err(error) => warn!(%error, "the outcomes index could not be pruned"),
                    }
                    pruned = Some(Instant::now());
                }
                if let Err(error) = index.flush() {
                    warn!(%error, "the outcomes index could not be flushed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(INDEX_EVERY) => {}
                    _ = stop.changed() => break,
                }
                if *stop.borrow() {
                    break;
                }
            }
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cret", b"s3cret!"));
        assert!(!same(b"", b"x"));
    }
}
