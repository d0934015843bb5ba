//! Assembling a running pipeline from a configuration: the HubSpot client (refusing a token of
//! another portal), the schema registry codec, the producer, and the process and sink stages,
//! each on its own task; [`Pipeline::stop`] drains and stops them.

use std::collections::HashMap;

use hubsync_processors::catalog::check_rules;
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureProducer;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::admin::{Health, StageHealth};
use crate::codec::{AvroCodec, RegistryClient};
use crate::config::{Config, Secrets, TeamStatus};
use crate::emit::Emitter;
use crate::hubspot::{HubSpotClient, RetryParams};
use crate::inbound::{self, InboundStage, Portals};
use crate::kafka::{consumer_config, producer_config};
use crate::process::{self, ProcessStage, ProcessTeam};
use crate::reload::{Applied, Reloader};
use crate::sink::reread::Rereader;
use crate::sink::spill::Spill;
use crate::sink::stage::{self as sink, SinkSettings, SinkStage, SinkTeam};
use crate::sink::writer::{Writer, WriterSettings};
use crate::state::State;
use crate::teams::{Shared, Teams};
use crate::{catalog, config};

/// The consumer groups' stage names besides the stages' own (`{group_id_prefix}.{name}`): the
/// process and sink stages' replay lanes, and the inbound stage's reader of the identity map.
pub const PROCESS_REPLAY_GROUP: &str = "process-replay";
pub const SINK_REPLAY_GROUP: &str = "sink-replay";
pub const INBOUND_IDENTITY_GROUP: &str = "inbound-identity";

/// What the sink's reader of HubSpot's side is named for (it reads every partition by
/// assignment, and keeps its positions in the sink's state: no group of its own).
pub const SINK_HUBSPOT_CHANGES: &str = "sink-hubspot-changes";

/// How long a stopping stage may take before [`Pipeline::join`] names it in a warning.
pub const STOP_REPORT: std::time::Duration = std::time::Duration::from_secs(15);

/// Every consumer group a service with all stages joins, each stage's before its lanes'.
pub const CONSUMER_GROUPS: [&str; 6] = [
    process::STAGE,
    PROCESS_REPLAY_GROUP,
    sink::STAGE,
    SINK_REPLAY_GROUP,
    inbound::STAGE,
    INBOUND_IDENTITY_GROUP,
];

/// Which stages this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stages {
    Process,
    Sink,
    /// HubSpot -> upstream; so far the webhook receiver (`[stages.inbound] webhook_listen`).
    Inbound,
    All,
}

impl Stages {
    pub(crate) fn process(self) -> bool {
        matches!(self, Stages::Process | Stages::All)
    }

    fn sink(self) -> bool {
        matches!(self, Stages::Sink | Stages::All)
    }

    fn inbound(self) -> bool {
        matches!(self, Stages::Inbound | Stages::All)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "hubspot.token belongs to portal {actual}, but team.hubspot_portal_id is {expected}: one portal per team; use a token of portal {expected} or correct team.hubspot_portal_id"
    )]
    WrongPortal { expected: u64, actual: u64 },
    #[error("cannot reach HubSpot to check the token's portal: {0}")]
    HubSpot(#[from] crate::hubspot::Error),
    #[error(
        "cannot create hubsync's own properties in HubSpot (the token needs the schema write scopes): {0}"
    )]
    OwnedProperties(crate::hubspot::Error),
    #[error("hubspot.base_url: {0}")]
    Client(#[from] crate::hubspot::BuildError),
    #[error("registry: {0}")]
    Registry(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("the rules do not fit the portal's properties:\n{}", .0.join("\n"))]
    Rules(Vec<String>),
    #[error("state: {0}")]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Spill(#[from] crate::sink::spill::SpillError),
    #[error("{0}")]
    Secrets(String),
    #[error(
        "portal {portal} is named by two teams, {} and {}: one team per portal; correct hubspot_portal_id in one of them",
        teams[0], teams[1]
    )]
    SharedPortal { portal: u64, teams: [String; 2] },
    #[error(transparent)]
    Inbound(#[from] crate::inbound::InboundError),
    #[error(transparent)]
    Changelog(#[from] crate::sink::changelog::ChangelogError),
}

pub struct Pipeline {
    shutdown: watch::Sender<bool>,
    tasks: Vec<Task>,
    pub health: Health,
    pub client: HubSpotClient,
    /// Teams whose mandatory fields a changed team file changed, for whoever re-evaluates
    /// their parked records (see [`Pipeline::take_mandatory_changes`]).
    mandatory_changes: Option<mpsc::UnboundedReceiver<String>>,
    /// Where the webhook receiver listens, when this pipeline runs one.
    pub webhook_addr: Option<std::net::SocketAddr>,
}

/// One team of a service: the service's sections with the team's own, and its secrets.
pub type TeamSetup = (Config, Secrets);

/// What each stage keeps of one team, once its connection and rules were checked.
pub(crate) struct Connected {
    pub(crate) client: HubSpotClient,
    process: Option<ProcessTeam>,
    sink: Option<SinkTeam>,
}

impl Connected {
    pub(crate) fn into_parts(self) -> (Option<ProcessTeam>, Option<SinkTeam>) {
        (self.process, self.sink)
    }
}

/// What a running pipeline's team registries are, for changes while it runs.
struct Registries {
    process: Shared<ProcessTeam>,
    sink: Shared<SinkTeam>,
    state: Option<State>,
    /// The webhook receiver's portal -> team routing.
    portals: Portals,
    /// The teams connected at start.
    connected: std::collections::HashSet<String>,
}

impl Pipeline {
    /// A pipeline for the one team a configuration names. Any problem with the team (a token of
    /// another portal, rules that do not fit the portal) refuses the start.
    pub async fn start(
        config: &Config,
        secrets: &Secrets,
        stages: Stages,
        health: Health,
    ) -> Result<Self, StartError> {
        let team = [(config.clone(), secrets.clone())];
        Self::start_teams(config, secrets, &team, stages, health, Refusal::Stop).await
    }

    /// A pipeline for every team of `teams` in one service: `service` gives the deployment's
    /// sections (Kafka, registry, topics, stages, state, admin). Each team is connected with its
    /// own token, checked to belong to its own portal (fail closed) and its rules against that
    /// portal's properties; with [`Refusal::Team`] a team that fails is served as not connected
    /// (its events end `SKIPPED` `TEAM_NOT_CONNECTED`, saying why) and the others start.
    pub async fn start_teams(
        service: &Config,
        service_secrets: &Secrets,
        teams: &[TeamSetup],
        stages: Stages,
        health: Health,
        refusal: Refusal,
    ) -> Result<Self, StartError> {
        Self::start_inner(
            service,
            service_secrets,
            teams,
            &[],
            stages,
            health,
            refusal,
        )
        .await
        .map(|(pipeline, _)| pipeline)
    }

    /// The pipeline `hubsync run` starts: a one-file configuration's one team (any problem with
    /// it refuses the start), or every team file of a service (a team whose file, secrets,
    /// token or rules cannot be used is served as not connected, saying why, and the others
    /// start).
    pub async fn start_service(
        service: &crate::config::Service,
        stages: Stages,
        health: Health,
    ) -> Result<Self, StartError> {
        let settings_secrets = service
            .settings
            .resolve_deployment_secrets()
            .map_err(|e| StartError::Secrets(e.to_string()))?;
        if service.is_single_team() {
            let secrets = service
                .settings
                .resolve_secrets()
                .map_err(|e| StartError::Secrets(e.to_string()))?;
            return Self::start(&service.settings, &secrets, stages, health).await;
        }
        let (teams, refused) = service.read_teams();
        let mut applied = HashMap::new();
        let mut refused_texts = HashMap::new();
        for team in &teams {
            if let Some(path) = &team.path {
                applied.insert(
                    path.clone(),
                    Applied {
                        team_id: team.config.team.id.clone(),
                        text: team.text.clone(),
                        config: team.config.clone(),
                    },
                );
            }
        }
        for refused in &refused {
            let text = std::fs::read_to_string(&refused.path).unwrap_or_default();
            refused_texts.insert(refused.path.clone(), text);
        }
        let mut setups = Vec::with_capacity(teams.len());
        let mut not_connected: Vec<(String, String)> = Vec::new();
        for team in teams {
            let file = team
                .path
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            match team.config.resolve_secrets() {
                Ok(secrets) => setups.push((team.config, secrets)),
                Err(error) => {
                    error!(file, team = team.config.team.id, %error, "team refused: its secrets cannot be read");
                    not_connected.push((
                        team.config.team.id.clone(),
                        format!("hubsync refused the team's file {file}: {error}"),
                    ));
                }
            }
        }
        for refused in refused {
            let file = refused.path.display().to_string();
            error!(file, error = %refused.error, "team file refused");
            metrics::counter!("hubsync_teams_refused_total").increment(1);
            if let Some(team) = refused.team_id {
                not_connected.push((
                    team,
                    format!("hubsync refused the team's file {file}: {}", refused.error),
                ));
            }
        }
        let (mut pipeline, registries) = Self::start_inner(
            &service.settings,
            &settings_secrets,
            &setups,
            &not_connected,
            stages,
            health,
            Refusal::Team,
        )
        .await?;
        // A team that could not be connected at start (HubSpot unreachable, say) is tried again
        // at every reading of the directory, quietly, until it connects or its file changes.
        for path in applied
            .iter()
            .filter(|(_, a)| {
                a.config.team.status == TeamStatus::Active
                    && !registries.connected.contains(&a.team_id)
            })
            .map(|(path, _)| path.clone())
            .collect::<Vec<_>>()
        {
            if let Some(retry) = applied.remove(&path) {
                refused_texts.insert(path, retry.text);
            }
        }
        let interval = service
            .teams_section
            .as_ref()
            .map_or(crate::config::DEFAULT_RELOAD_INTERVAL, |t| {
                t.reload_interval
            });
        let (mandatory_changed, changes) = mpsc::unbounded_channel();
        pipeline.mandatory_changes = Some(changes);
        let reloader = Reloader {
            service: service.clone(),
            mandatory_changed,
            stages,
            state: registries.state,
            portals: registries.portals,
            process: registries.process,
            sink: registries.sink,
            applied,
            refused: refused_texts,
        };
        let stopping = pipeline.shutdown.subscribe();
        pipeline.tasks.push(Task::new(
            "teams",
            "team files",
            tokio::spawn(async move {
                reloader.run(interval, stopping).await;
                Ok(())
            }),
        ));
        Ok(pipeline)
    }

    /// The ids of teams whose mandatory fields changed while the service ran (a team file read
    /// again), once each change is in effect: the caller re-evaluates their parked records
    /// (`hubsync run` replays them, as `hubsync replay --parked --team` would). Taken once; a
    /// pipeline started without team files has none.
    pub fn take_mandatory_changes(&mut self) -> Option<mpsc::UnboundedReceiver<String>> {
        self.mandatory_changes.take()
    }

    async fn start_inner(
        service: &Config,
        service_secrets: &Secrets,
        teams: &[TeamSetup],
        not_connected: &[(String, String)],
        stages: Stages,
        health: Health,
        refusal: Refusal,
    ) -> Result<(Self, Registries), StartError> {
        let config = service;
        let secrets = service_secrets;
        // The inbound stage runs when HubSpot's changes can come in: by webhook, by polling.
        let inbound_on = stages.inbound()
            && (config.stages.inbound.webhook_listen.is_some() || config.stages.inbound.poll);
        if stages == Stages::Inbound && !inbound_on {
            return Err(crate::inbound::InboundError::NothingToDo.into());
        }
        let registry = RegistryClient::new(&config.registry, secrets.registry_password.clone())
            .map_err(|e| StartError::Registry(e.to_string()))?;
        let codec = AvroCodec::new(registry, config.registry.cache_capacity)
            .map_err(|e| StartError::Registry(e.to_string()))?;
        let producer: FutureProducer = producer_config(config, secrets).create()?;
        let emitter = Emitter::new(producer, &codec, config.topics.clone())
            .await
            .map_err(|e| StartError::Registry(e.to_string()))?;
        let (state, changelog) = if stages.sink() {
            let state = State::open(
                &config.state.stage_dir(sink::STAGE),
                config.state.cache_capacity.bytes(),
                config.state.max_processed_events,
            )?;
            let changelog = std::sync::Arc::new(
                crate::sink::changelog::Changelog::for_topics(emitter.producer(), &config.topics)
                    .await?,
            );
            (
                Some(state.with_changelog(changelog.clone())),
                Some(changelog),
            )
        } else {
            (None, None)
        };
        let mut portals: HashMap<u64, String> = HashMap::new();
        let webhook_portals = Portals::default();
        let mut process_teams = Teams::default();
        let mut sink_teams = Teams::default();
        let mut clients = Vec::new();
        let mut connected_ids = std::collections::HashSet::new();
        for (team, why) in not_connected {
            process_teams.add_not_connected(team, why);
            sink_teams.add_not_connected(team, why);
        }
        for (team, team_secrets) in teams {
            let id = team.team.id.as_str();
            if let Some(other) = portals.insert(team.team.hubspot_portal_id, id.to_string()) {
                let problem = StartError::SharedPortal {
                    portal: team.team.hubspot_portal_id,
                    teams: [other, id.to_string()],
                };
                refuse(refusal, id, problem, &mut process_teams, &mut sink_teams)?;
                continue;
            }
            if team.team.status != TeamStatus::Active {
                let why = format!(
                    "the team's HubSpot integration is {}",
                    team.team.status.as_str()
                );
                process_teams.add_not_connected(id, &why);
                sink_teams.add_not_connected(id, &why);
                continue;
            }
            match connect(team, team_secrets, stages, state.as_ref()).await {
                Ok(connected) => {
                    connected_ids.insert(id.to_string());
                    // HubSpot's events are taken for a portal only once its team's token was
                    // found to be that portal's (fail closed); a team refused now is tried
                    // again at every reading of the team files, and routed once it connects.
                    webhook_portals.set(
                        inbound::translate::TeamView::from_config(team),
                        &connected.client,
                    );
                    clients.push(connected.client);
                    if let Some(kept) = connected.process {
                        process_teams.add(id, kept);
                    }
                    if let Some(kept) = connected.sink {
                        sink_teams.add(id, kept);
                    }
                }
                Err(problem) => refuse(refusal, id, problem, &mut process_teams, &mut sink_teams)?,
            }
        }
        let client = clients
            .first()
            .cloned()
            .map_or_else(|| hubspot_client(config, secrets), Ok)?;
        let process_shared = Shared::new(process_teams);
        let sink_shared = Shared::new(sink_teams);
        let (shutdown, stopping) = watch::channel(false);
        let mut tasks: Vec<Task> = Vec::new();

        if stages.process() {
            health.set(process::STAGE, StageHealth::Starting);
            let stage = ProcessStage {
                consumer: consumer_config(config, secrets, process::STAGE).create_with_context(
                    crate::kafka::Assignment::new(process::STAGE, health.clone())
                        .tracking_revoked(),
                )?,
                replay_consumer: consumer_config(config, secrets, PROCESS_REPLAY_GROUP)
                    .create_with_context(crate::kafka::Assignment::new(
                        PROCESS_REPLAY_GROUP,
                        health.clone(),
                    ))?,
                codec: codec.clone(),
                emitter: emitter.clone(),
                topics: config.topics.clone(),
                team_id: match teams {
                    [(only, _)] => only.team.id.clone(),
                    _ => String::new(),
                },
                teams: process_shared.clone(),
                health: health.clone(),
                max_in_flight: config.stages.process.channel_capacity.max(1),
            };
            let stopping = stopping.clone();
            tasks.push(Task::new(
                process::STAGE,
                "events",
                tokio::spawn(async move { Ok(stage.run(stopping).await?) }),
            ));
        }

        if stages.sink() {
            health.set(sink::STAGE, StageHealth::Starting);
            let max_in_flight = config.hubspot.max_in_flight.max(1);
            let assignment =
                crate::kafka::Assignment::new(sink::STAGE, health.clone()).tracking_revoked();
            let restorer = match (&state, &changelog) {
                (Some(state), Some(changelog)) => Some(crate::sink::changelog::Restorer::new(
                    changelog.clone(),
                    state.clone(),
                    crate::kafka::reader_config(config, secrets, "sink-restore"),
                )),
                _ => None,
            };
            let stage = SinkStage {
                consumer: consumer_config(config, secrets, sink::STAGE)
                    .create_with_context(assignment.clone())?,
                restorer,
                assignment,
                replay_consumer: consumer_config(config, secrets, SINK_REPLAY_GROUP)
                    .create_with_context(
                        crate::kafka::Assignment::new(SINK_REPLAY_GROUP, health.clone())
                            .tracking_revoked(),
                    )?,
                codec: codec.clone(),
                emitter: emitter.clone(),
                teams: sink_shared.clone(),
                health: health.clone(),
                settings: sink_settings(config, max_in_flight),
                spill: Some(Spill::open(&config.state.stage_dir(sink::SPILL_DIR))?),
                reread: std::sync::Arc::new(Rereader::new(config, secrets)),
            };
            if let Some(state) = &state {
                // Every sink instance reads every HubSpot change: whichever instance owns a
                // portal's commands later must know them (a consumer group would hand each
                // change to one instance, seldom the owner).
                let topic = config.topics.hubspot_changes.clone();
                let side = crate::sink::hubspot_side::HubSpotSide {
                    codec: codec.clone(),
                    state: state.clone(),
                    owned: Some((stage.assignment.clone(), config.topics.commands.clone())),
                    topic: topic.clone(),
                };
                let consumer = crate::kafka::reader_config(config, secrets, SINK_HUBSPOT_CHANGES)
                    .create::<StreamConsumer>()?;
                let stopping = stopping.clone();
                tasks.push(Task::new(
                    sink::STAGE,
                    "hubspot changes",
                    tokio::spawn(async move {
                        crate::kafka::follow(
                            SINK_HUBSPOT_CHANGES,
                            consumer,
                            &topic,
                            500,
                            crate::kafka::Resume::Kept,
                            stopping,
                            side,
                        )
                        .await
                    }),
                ));
            }
            let topic = config.topics.commands.clone();
            let replay_topic = config.topics.replay_commands.clone();
            let stopping = stopping.clone();
            tasks.push(Task::new(
                sink::STAGE,
                "commands",
                tokio::spawn(async move { Ok(stage.run(&topic, &replay_topic, stopping).await?) }),
            ));
        }
        let mut webhook_addr = None;
        if inbound_on {
            let db = inbound::memory::open_db(
                &config.state.stage_dir(inbound::STAGE),
                config.state.cache_capacity.bytes(),
            )?;
            let memory = inbound::memory::Memory::open(&db)?;
            // Running once it forwards; the receiver, when there is one, says so too once it
            // listens.
            health.set(inbound::STAGE, StageHealth::Starting);
            if config.stages.inbound.poll {
                let store = inbound::poll::PollStore::new(&db)
                    .map_err(|e| StartError::Inbound(inbound::InboundError::Poll(e.to_string())))?;
                let poller = inbound::poll::Poller::new(
                    inbound::poll::PollSettings::from_config(&config.stages.inbound),
                    store,
                    producer_config(config, secrets).create()?,
                    config.topics.hubspot_webhooks.clone(),
                    webhook_portals.poll_targets(),
                );
                let stopping = stopping.clone();
                tasks.push(Task::new(
                    inbound::STAGE,
                    "poll",
                    tokio::spawn(async move {
                        poller.run(stopping).await;
                        Ok(())
                    }),
                ));
            }
            let forwarder = inbound::upstream::Forwarder {
                consumer: consumer_config(config, secrets, inbound::STAGE)
                    .create::<StreamConsumer>()?,
                emitter: emitter.clone(),
                topic: config.topics.hubspot_webhooks.clone(),
                portals: webhook_portals.clone(),
                memory: memory.clone(),
                sink_state: state.clone(),
                stage: inbound::STAGE,
                health: health.clone(),
            };
            let stopping_forward = stopping.clone();
            tasks.push(Task::new(
                inbound::STAGE,
                "forward upstream",
                tokio::spawn(async move { forwarder.run(stopping_forward).await }),
            ));
            let record_topics: std::sync::Arc<[(String, hubsync_schemas::HubSpotObjectType)]> =
                std::sync::Arc::new([
                    (
                        config.topics.contact_changes.clone(),
                        hubsync_schemas::HubSpotObjectType::Contact,
                    ),
                    (
                        config.topics.company_changes.clone(),
                        hubsync_schemas::HubSpotObjectType::Company,
                    ),
                ]);
            let learn = inbound::upstream::learn_identities(
                consumer_config(config, secrets, INBOUND_IDENTITY_GROUP)
                    .create::<StreamConsumer>()?,
                codec.clone(),
                config.topics.outcomes.clone(),
                record_topics,
                memory,
                stopping.clone(),
            );
            tasks.push(Task::new(inbound::STAGE, "outcomes", tokio::spawn(learn)));
        }
        if inbound_on && config.stages.inbound.webhook_listen.is_some() {
            let producer: FutureProducer = producer_config(config, secrets).create()?;
            let bound =
                InboundStage::bind(config, producer, webhook_portals.clone(), health.clone());
            if let Some(stage) = bound.await? {
                health.set(inbound::STAGE, StageHealth::Starting);
                webhook_addr = stage.local_addr().ok();
                let stopping = stopping.clone();
                tasks.push(Task::new(
                    inbound::STAGE,
                    "webhooks",
                    tokio::spawn(async move { stage.run(stopping).await }),
                ));
            }
        }
        info!(
            teams = teams.len(),
            connected = clients.len(),
            ?stages,
            "pipeline started"
        );
        let pipeline = Pipeline {
            shutdown,
            tasks,
            health,
            client,
            mandatory_changes: None,
            webhook_addr,
        };
        let registries = Registries {
            process: process_shared,
            sink: sink_shared,
            state,
            portals: webhook_portals,
            connected: connected_ids,
        };
        Ok((pipeline, registries))
    }

    /// Asks every stage to stop: each writes what it holds, stores its offsets and ends.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.join().await
    }

    /// Waits for the stages to end on their own (they end only on error or on [`Pipeline::stop`]).
    /// Once told to stop, a stage that takes longer than [`STOP_REPORT`] is named in a warning,
    /// again at every such interval: a stop that hangs says where.
    pub async fn join(self) -> anyhow::Result<()> {
        let mut first_error = None;
        let began = tokio::time::Instant::now();
        for Task {
            stage: name,
            name: task_name,
            handle: mut task,
        } in self.tasks
        {
            let joined = loop {
                match tokio::time::timeout(STOP_REPORT, &mut task).await {
                    Ok(joined) => break joined,
                    Err(_) if *self.shutdown.borrow() => tracing::warn!(
                        stage = name,
                        task = task_name,
                        waited_s = began.elapsed().as_secs(),
                        "still stopping: waiting for a task of this stage to end"
                    ),
                    Err(_) => {}
                }
            };
            let result = match joined {
                Ok(result) => result,
                Err(join) => Err(anyhow::anyhow!("stage task failed: {join}")),
            };
            if let Err(error) = result {
                self.health
                    .set(name, StageHealth::Stopped(error.to_string()));
                first_error.get_or_insert(error.context(format!("{name} stage")));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Resolves when any stage ends on its own (they run until stopped, so that is an error).
    pub async fn stage_ended(&self) {
        while self.tasks.iter().all(|task| !task.handle.is_finished()) {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

/// A task of a stage: what it does, named in the warnings of a slow stop.
struct Task {
    stage: &'static str,
    name: &'static str,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Task {
    fn new(
        stage: &'static str,
        name: &'static str,
        handle: JoinHandle<anyhow::Result<()>>,
    ) -> Self {
        Task {
            stage,
            name,
            handle,
        }
    }
}

/// What to do with a team that cannot be connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Refuse the whole start (a service of one team: the operator is right there).
    Stop,
    /// Serve the team as not connected, saying why, and start the others.
    Team,
}

fn refuse(
    refusal: Refusal,
    team: &str,
    problem: StartError,
    process_teams: &mut Teams<ProcessTeam>,
    sink_teams: &mut Teams<SinkTeam>,
) -> Result<(), StartError> {
    if refusal == Refusal::Stop {
        return Err(problem);
    }
    error!(team, %problem, "team refused: its events are skipped TEAM_NOT_CONNECTED until it is fixed");
    metrics::counter!("hubsync_teams_refused_total").increment(1);
    let why = format!("hubsync refused the team's connection: {problem}");
    process_teams.add_not_connected(team, &why);
    sink_teams.add_not_connected(team, &why);
    Ok(())
}

/// Connects one team: its token must belong to its portal; the process stage needs its rules to
/// fit the portal's properties (and reads the portal's owners), the sink its own properties in
/// the portal and the portal's state.
pub(crate) async fn connect(
    team: &Config,
    secrets: &Secrets,
    stages: Stages,
    state: Option<&State>,
) -> Result<Connected, StartError> {
    let client = hubspot_client(team, secrets)?;
    let account = client.account_details().await?;
    if account.portal_id != team.team.hubspot_portal_id {
        return Err(StartError::WrongPortal {
            expected: team.team.hubspot_portal_id,
            actual: account.portal_id,
        });
    }
    let process = if stages.process() {
        let catalog = catalog::load(&client).await?;
        let problems: Vec<String> = check_rules(&team.rules, &catalog)
            .into_iter()
            .map(|e| format!("  {}: {}", e.path, e.message))
            .collect();
        if !problems.is_empty() {
            return Err(StartError::Rules(problems));
        }
        let owners = process::owner_directory(&client, &team.rules.users).await?;
        Some(ProcessTeam {
            portal_id: account.portal_id,
            rules: team.rules.clone(),
            catalog,
            owners,
        })
    } else {
        None
    };
    let sink = match state {
        Some(state) => {
            let created = crate::sink::owned::ensure(&client)
                .await
                .map_err(StartError::OwnedProperties)?;
            let state = state.scoped(&account.portal_id.to_string());
            for object in created {
                state.mark_owned_new(object.path_name())?;
            }
            let writer = Writer::new(
                client.clone(),
                state,
                WriterSettings {
                    contact_id_property: team.rules.sync.contacts.id_property.clone(),
                    match_companies_on_name: team.rules.sync.companies.match_on_name,
                    search_lag: team.stages.inbound.search_lag,
                    contact_wait: team.stages.sink.contact_wait,
                },
            );
            Some(SinkTeam {
                writer,
                client: client.clone(),
            })
        }
        None => None,
    };
    Ok(Connected {
        client,
        process,
        sink,
    })
}

/// The HubSpot client for a configuration; retries follow `[stages.sink]`.
pub fn hubspot_client(
    config: &Config,
    secrets: &Secrets,
) -> Result<HubSpotClient, crate::hubspot::BuildError> {
    let mut settings = config.hubspot.client_settings();
    let sink: &config::SinkStage = &config.stages.sink;
    settings.retry = RetryParams {
        base: sink.backoff_base,
        max: sink.backoff_max,
        max_attempts: sink.max_attempts.max(1),
    };
    match (&secrets.oauth, &config.hubspot.client_id) {
        (Some(oauth), Some(client_id)) => HubSpotClient::with_oauth(
            settings,
            crate::hubspot::OAuthSettings {
                client_id: client_id.clone(),
                client_secret: oauth.client_secret.clone(),
                refresh_token: oauth.refresh_token.clone(),
                portal_id: config.team.hubspot_portal_id,
            },
        ),
        _ => HubSpotClient::new(settings, secrets.hubspot_token.clone()),
    }
}

/// Most commands the sink holds in memory, whatever the budget (about 1.5 KiB each).
const MAX_PENDING_COMMANDS: usize = 100_000;

/// The sink's batching: records wait up to `linger`, and as many are held as the tier's budget
/// could write in one linger; past that, full batches go at once.
pub fn sink_settings(config: &Config, max_in_flight: usize) -> SinkSettings {
    let sink = &config.stages.sink;
    let calls_per_second = f64::from(config.hubspot.budget().requests_per_10s) / 10.0;
    let writable = calls_per_second * sink.linger.as_secs_f64() * sink.batch_size as f64;
    let hold = (writable as usize).clamp(sink.batch_size, MAX_PENDING_COMMANDS / 2);
    let max_pending = sink
        .channel_capacity
        .max(sink.batch_size * max_in_flight * 2)
        .max(hold * 2)
        .min(MAX_PENDING_COMMANDS);
    SinkSettings {
        linger: sink.linger,
        batch_size: sink.batch_size,
        hold,
        max_in_flight,
        replay_max_pending: sink.replay_max_pending,
        max_pending,
        // A quarter stays for the other teams' live records, whatever one team holds.
        team_max_pending: (max_pending / 4 * 3).max(sink.batch_size),
    }
}
