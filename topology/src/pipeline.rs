//! Assembling a running pipeline from a configuration: the HubSpot client (refusing a token of
//! another portal), the schema registry codec, the producer, and the process and sink stages,
//! each on its own task; [`Pipeline::stop`] drains and stops them.

use std::sync::Arc;

use hubsync_processors::catalog::check_rules;
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureProducer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::admin::{Health, StageHealth};
use crate::codec::{AvroCodec, RegistryClient};
use crate::config::{Config, Secrets};
use crate::emit::Emitter;
use crate::hubspot::{HubSpotClient, RetryParams};
use crate::kafka::{consumer_config, producer_config};
use crate::process::{self, ProcessStage};
use crate::sink::stage::{self as sink, SinkSettings, SinkStage};
use crate::sink::writer::{Writer, WriterSettings};
use crate::state::State;
use crate::teams::Teams;
use crate::{catalog, config};

/// Which stages this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stages {
    Process,
    Sink,
    All,
}

impl Stages {
    fn process(self) -> bool {
        matches!(self, Stages::Process | Stages::All)
    }

    fn sink(self) -> bool {
        matches!(self, Stages::Sink | Stages::All)
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
}

pub struct Pipeline {
    shutdown: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
    pub health: Health,
    pub client: HubSpotClient,
}

impl Pipeline {
    pub async fn start(
        config: &Config,
        secrets: &Secrets,
        stages: Stages,
        health: Health,
    ) -> Result<Self, StartError> {
        let client = hubspot_client(config, secrets)?;
        let account = client.account_details().await?;
        if account.portal_id != config.team.hubspot_portal_id {
            return Err(StartError::WrongPortal {
                expected: config.team.hubspot_portal_id,
                actual: account.portal_id,
            });
        }
        let registry = RegistryClient::new(&config.registry, secrets.registry_password.clone())
            .map_err(|e| StartError::Registry(e.to_string()))?;
        let codec = AvroCodec::new(registry, config.registry.cache_capacity)
            .map_err(|e| StartError::Registry(e.to_string()))?;
        let producer: FutureProducer = producer_config(config, secrets).create()?;
        let emitter = Emitter::new(producer, &codec, config.topics.clone())
            .await
            .map_err(|e| StartError::Registry(e.to_string()))?;
        let (shutdown, stopping) = watch::channel(false);
        let mut tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)> = Vec::new();

        if stages.process() {
            health.set(process::STAGE, StageHealth::Starting);
            let catalog = catalog::load(&client).await?;
            let problems: Vec<String> = check_rules(&config.rules, &catalog)
                .into_iter()
                .map(|e| format!("  {}: {}", e.path, e.message))
                .collect();
            if !problems.is_empty() {
                return Err(StartError::Rules(problems));
            }
            let owners = process::owner_directory(&client, &config.rules.users).await?;
            let stage = ProcessStage {
                consumer: consumer_config(config, secrets, process::STAGE)
                    .create::<StreamConsumer>()?,
                replay_consumer: consumer_config(config, secrets, "process-replay").create()?,
                codec: codec.clone(),
                emitter: emitter.clone(),
                rules: Arc::new(config.rules.clone()),
                catalog: Arc::new(catalog),
                owners: Arc::new(owners),
                topics: config.topics.clone(),
                team_id: config.team.id.clone(),
                teams: Arc::new(Teams::of_config(config)),
                health: health.clone(),
                max_in_flight: config.stages.process.channel_capacity.max(1),
            };
            let stopping = stopping.clone();
            tasks.push((
                process::STAGE,
                tokio::spawn(async move { Ok(stage.run(stopping).await?) }),
            ));
        }

        if stages.sink() {
            health.set(sink::STAGE, StageHealth::Starting);
            crate::sink::owned::ensure(&client)
                .await
                .map_err(StartError::OwnedProperties)?;
            let state = State::open(
                &config.state.stage_dir(sink::STAGE),
                config.state.cache_capacity.bytes(),
                config.state.max_processed_events,
            )?;
            let writer = Writer::new(
                client.clone(),
                state,
                WriterSettings {
                    contact_id_property: config.rules.sync.contacts.id_property.clone(),
                    match_companies_on_name: config.rules.sync.companies.match_on_name,
                    search_lag: config.stages.inbound.search_lag,
                    contact_wait: config.stages.sink.contact_wait,
                },
            );
            let max_in_flight = config.hubspot.max_in_flight.max(1);
            let stage = SinkStage {
                consumer: consumer_config(config, secrets, sink::STAGE)
                    .create::<StreamConsumer>()?,
                replay_consumer: consumer_config(config, secrets, "sink-replay").create()?,
                codec: codec.clone(),
                writer,
                emitter: emitter.clone(),
                client: client.clone(),
                teams: Arc::new(Teams::of_config(config)),
                health: health.clone(),
                settings: sink_settings(config, max_in_flight),
            };
            let topic = config.topics.commands.clone();
            let replay_topic = config.topics.replay_commands.clone();
            let stopping = stopping.clone();
            tasks.push((
                sink::STAGE,
                tokio::spawn(async move { Ok(stage.run(&topic, &replay_topic, stopping).await?) }),
            ));
        }
        info!(portal = account.portal_id, ?stages, "pipeline started");
        Ok(Pipeline {
            shutdown,
            tasks,
            health,
            client,
        })
    }

    /// Asks every stage to stop: each writes what it holds, stores its offsets and ends.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.join().await
    }

    /// Waits for the stages to end on their own (they end only on error or on [`Pipeline::stop`]).
    pub async fn join(self) -> anyhow::Result<()> {
        let mut first_error = None;
        for (name, task) in self.tasks {
            let result = match task.await {
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
        while self.tasks.iter().all(|(_, task)| !task.is_finished()) {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
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
    HubSpotClient::new(settings, secrets.hubspot_token.clone())
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
    SinkSettings {
        linger: sink.linger,
        batch_size: sink.batch_size,
        hold,
        max_in_flight,
        replay_max_pending: sink.replay_max_pending,
        max_pending: sink
            .channel_capacity
            .max(sink.batch_size * max_in_flight * 2)
            .max(hold * 2)
            .min(MAX_PENDING_COMMANDS),
    }
}
