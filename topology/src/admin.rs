//! The admin endpoint of a running pipeline: `/metrics` in Prometheus' text format and
//! `/healthz`, which answers 200 while every stage does its work (running, or degraded: some
//! teams paused while the others are served, each named with why) and 503 when one is starting,
//! paused or stopped, with the reason in the body. A team's trouble (its token refused, its
//! portal unreachable) degrades the stage but does not fail the check: at thousands of teams
//! some team always has trouble, and restarting the process would mend none of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

/// How one stage is doing, as `/healthz` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum StageHealth {
    Starting,
    Running,
    /// Not consuming until the cause clears.
    Paused(String),
    /// Working, but some teams wait: why, per team (their token refused, HubSpot unreachable).
    Degraded(String),
    Stopped(String),
}

/// Shared by the stages (which report) and the admin endpoint (which answers).
#[derive(Debug, Clone, Default)]
pub struct Health {
    stages: Arc<Mutex<BTreeMap<String, StageHealth>>>,
    budget: Arc<Mutex<BudgetHistory>>,
    instance: Arc<Mutex<Instance>>,
}

/// What this instance holds of its groups' partitions, and restores.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Instance {
    /// Per stage, the `topic/partition`s its consumer is assigned.
    pub partitions: BTreeMap<String, Vec<String>>,
    /// Partitions whose state is being restored from the changelog now.
    pub restoring: Vec<i32>,
    /// The last restores: partition, records applied, milliseconds taken.
    pub restored: std::collections::VecDeque<RestoreReport>,
    /// The sink's state database on disk, in bytes, and the events it remembers.
    pub state_bytes: u64,
    pub processed_events: u64,
}

/// One restore of a partition's state, as `/healthz` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    pub partition: i32,
    pub records: u64,
    pub took_ms: u64,
}

/// Restores `/healthz` lists at most.
const RESTORES_SHOWN: usize = 16;

/// Minutes of HubSpot budget use kept per team, for the console's chart.
pub const BUDGET_MINUTES: usize = 360;

/// One minute of a team's HubSpot budget: the highest share of the ten-second window used in
/// it, and the lowest share of the daily quota left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BudgetMinute {
    /// The minute's start, in milliseconds.
    pub at: i64,
    pub window_used: f64,
    pub daily_left: f64,
}

/// The last [`BUDGET_MINUTES`] minutes of each team's budget, as the sink samples it.
#[derive(Debug, Default)]
pub struct BudgetHistory {
    teams: BTreeMap<String, std::collections::VecDeque<BudgetMinute>>,
}

impl BudgetHistory {
    fn record(&mut self, team: &str, at_ms: i64, window_used: f64, daily_left: f64) {
        let minute = at_ms.div_euclid(60_000) * 60_000;
        let series = self.teams.entry(team.to_string()).or_default();
        match series.back_mut() {
            Some(last) if last.at == minute => {
                last.window_used = last.window_used.max(window_used);
                last.daily_left = last.daily_left.min(daily_left);
            }
            _ => {
                series.push_back(BudgetMinute {
                    at: minute,
                    window_used,
                    daily_left,
                });
                while series.len() > BUDGET_MINUTES {
                    series.pop_front();
                }
            }
        }
    }
}

impl Health {
    /// Records a sample of a team's budget use (the sink, every few seconds).
    pub fn record_budget(&self, team: &str, at_ms: i64, window_used: f64, daily_left: f64) {
        self.budget
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .record(team, at_ms, window_used, daily_left);
    }

    /// A team's budget minutes, oldest first; every team's when `team` is `None`.
    pub fn budget_history(&self, team: Option<&str>) -> BTreeMap<String, Vec<BudgetMinute>> {
        let history = self
            .budget
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        history
            .teams
            .iter()
            .filter(|(name, _)| team.is_none_or(|t| t == name.as_str()))
            .map(|(name, series)| (name.clone(), series.iter().copied().collect()))
            .collect()
    }

    pub fn set(&self, stage: &str, health: StageHealth) {
        let up = match health {
            StageHealth::Running | StageHealth::Degraded(_) | StageHealth::Paused(_) => 1.0,
            StageHealth::Starting | StageHealth::Stopped(_) => 0.0,
        };
        metrics::gauge!("hubsync_stage_up", "stage" => stage.to_string()).set(up);
        self.stages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(stage.to_string(), health);
    }

    /// The partitions `stage`'s consumer holds now.
    pub fn set_partitions(&self, stage: &str, partitions: Vec<(String, i32)>) {
        let names = partitions
            .into_iter()
            .map(|(topic, partition)| format!("{topic}/{partition}"))
            .collect();
        self.instance().partitions.insert(stage.to_string(), names);
    }

    /// A restore of `partition`'s state began (`done` none) or ended.
    pub fn restoring(&self, partition: i32, done: Option<RestoreReport>) {
        let mut instance = self.instance();
        instance.restoring.retain(|p| *p != partition);
        match done {
            None => instance.restoring.push(partition),
            Some(report) => {
                instance.restored.push_back(report);
                while instance.restored.len() > RESTORES_SHOWN {
                    instance.restored.pop_front();
                }
            }
        }
    }

    /// The size of the sink's state, as its last report saw it.
    pub fn set_state_size(&self, bytes: u64, processed_events: u64) {
        let mut instance = self.instance();
        instance.state_bytes = bytes;
        instance.processed_events = processed_events;
    }

    pub fn instance_snapshot(&self) -> Instance {
        self.instance().clone()
    }

    fn instance(&self) -> std::sync::MutexGuard<'_, Instance> {
        self.instance
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn snapshot(&self) -> BTreeMap<String, StageHealth> {
        self.stages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Every stage runs, nothing degraded.
    pub fn healthy(&self) -> bool {
        let stages = self.snapshot();
        !stages.is_empty() && stages.values().all(|h| *h == StageHealth::Running)
    }

    /// Every stage does its work, some perhaps degraded: what `/healthz` answers 200 for.
    pub fn serving(&self) -> bool {
        let stages = self.snapshot();
        !stages.is_empty()
            && stages
                .values()
                .all(|h| matches!(h, StageHealth::Running | StageHealth::Degraded(_)))
    }
}

/// Installs the process-wide Prometheus recorder; the `metrics` macros report to it from then on.
/// Returns `None` when a recorder is already installed (several pipelines in one process).
pub fn install_metrics() -> Option<PrometheusHandle> {
    PrometheusBuilder::new().install_recorder().ok()
}

#[derive(Clone)]
struct AdminState {
    health: Health,
    metrics: Option<PrometheusHandle>,
}

pub fn router(health: Health, metrics: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .with_state(AdminState { health, metrics })
}

/// The admin listener, serving in the background until [`AdminServer::shutdown`].
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl AdminServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets requests in flight finish, and waits for the end.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .unwrap_or_else(|join| Err(std::io::Error::other(join)))
    }
}

/// Binds `addr` (port 0 picks a free port) and serves `/healthz` and `/metrics` on it.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    metrics: Option<PrometheusHandle>,
) -> std::io::Result<AdminServer> {
    serve_router(addr, router(health, metrics)).await
}

/// Binds `addr` and serves `app` on it (the admin routes and whatever was merged into them).
pub async fn serve_router(addr: SocketAddr, app: Router) -> std::io::Result<AdminServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(AdminServer { addr, stop, task })
}

async fn healthz(State(admin): State<AdminState>) -> impl IntoResponse {
    let stages = admin.health.snapshot();
    let status = if admin.health.serving() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let degraded = stages
        .values()
        .any(|h| matches!(h, StageHealth::Degraded(_)));
    (
        status,
        Json(serde_json::json!({
            "healthy": admin.health.healthy(),
            "degraded": degraded,
            "stages": stages,
            "instance": admin.health.instance_snapshot(),
        })),
    )
}

async fn render_metrics(State(admin): State<AdminState>) -> impl IntoResponse {
    match &admin.metrics {
        Some(handle) => (StatusCode::OK, handle.render()),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are recorded by another pipeline in this process\n".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_when_every_stage_runs() {
        let health = Health::default();
        assert!(!health.healthy(), "nothing reported yet");
        health.set("process", StageHealth::Running);
        health.set("sink", StageHealth::Running);
        assert!(health.healthy());
        health.set(
            "sink",
            StageHealth::Paused("hubspot refuses the token".into()),
        );
        assert!(!health.healthy());
    }

    #[tokio::test]
    async fn healthz_answers_200_degraded_naming_the_teams_that_wait() {
        let health = Health::default();
        health.set("process", StageHealth::Running);
        health.set(
            "sink",
            StageHealth::Degraded("team acme: hubspot unavailable".into()),
        );
        assert!(!health.healthy() && health.serving());
        let server = serve(SocketAddr::from(([127, 0, 0, 1], 0)), health.clone(), None)
            .await
            .expect("serve");
        let answer = reqwest::get(format!("{}/healthz", server.url()))
            .await
            .expect("get");
        assert_eq!(answer.status(), 200);
        let body: serde_json::Value = answer.json().await.expect("json");
        assert_eq!(body["degraded"], true);
        assert_eq!(body["healthy"], false);
        assert_eq!(body["stages"]["sink"]["state"], "degraded");
        assert_eq!(
            body["stages"]["sink"]["reason"],
            "team acme: hubspot unavailable"
        );
        let _ = server.shutdown().await;
    }

    #[tokio::test]
    async fn healthz_answers_503_with_the_reason_when_paused() {
        let health = Health::default();
        health.set("sink", StageHealth::Paused("token revoked".into()));
        let server = serve(SocketAddr::from(([127, 0, 0, 1], 0)), health.clone(), None)
            .await
            .expect("serve");
        let answer = reqwest::get(format!("{}/healthz", server.url()))
            .await
            .expect("get");
        assert_eq!(answer.status(), 503);
        let body: serde_json::Value = answer.json().await.expect("json");
        assert_eq!(body["stages"]["sink"]["state"], "paused");
        assert_eq!(body["stages"]["sink"]["reason"], "token revoked");
        health.set("sink", StageHealth::Running);
        let answer = reqwest::get(format!("{}/healthz", server.url()))
            .await
            .expect("get");
        assert_eq!(answer.status(), 200);
    }
}
