//! The operator commands' domain: what each command reads, decides and writes, apart from its
//! arguments and its printing (those are `cli`'s). The running pipeline never imports this
//! module; it may import the pipeline's pure parts (the sink's verdict and merge, the codec).
//!
//! # Layout
//! One folder per command:
//! - [`logs`]: `hubsync logs`: outcome filters, counts and rows.
//! - [`dlq`]: `hubsync dlq`: dead-letter filters, decoded payloads; [`dlq::redrive`] publishes a
//!   selection back to its source topics.
//! - [`trace`]: `hubsync trace`: one record's story in time order, gathered from the topics and
//!   HubSpot ([`trace::gather`]).
//! - [`plan`]: `hubsync plan`: the current rules over a range of events against HubSpot now;
//!   [`plan::read`] reads the topic and HubSpot for it.
//! - [`replay`]: `hubsync replay`: source records copied to the replay topic for the current
//!   rules, resumably.
//! - [`check`]: `hubsync check`: the configuration against the portal, the broker and the
//!   registry before a deploy.
//! - [`owners`]: `hubsync owners automap`: upstream users matched to HubSpot owners.
//!
//! Shared by several commands:
//! - [`scan`]: reading a topic between two times, decoded, without joining a consumer group.
//! - [`range`]: `--since` / `--until` parsing (RFC 3339, dates, durations ago).
//! - [`record`]: record labels (`email:ada@acme.io`) and what `--record` matches.
//! - [`table`]: plain-text tables.
//! - [`subject`]: what `hubsync trace` is asked about, and which records belong to it.
//! - [`decision`]: the current rules applied to one upstream event, in words (trace and plan).
//! - [`lookup`]: read-only HubSpot lookups (by unique property, by search, by id).

pub mod check;
pub(crate) mod decision;
pub mod dlq;
pub mod logs;
pub(crate) mod lookup;
pub mod owners;
pub mod plan;
pub mod range;
pub(crate) mod record;
pub mod replay;
pub mod scan;
pub(crate) mod subject;
pub(crate) mod table;
pub mod trace;

use rdkafka::producer::FutureProducer;

use crate::codec::{AvroCodec, RegistryClient};
use crate::config::{Config, Secrets};
use crate::kafka::producer_config;

use self::scan::{ScanError, TopicReader};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("cannot set up the schema registry client: {0}; check [registry] in the configuration")]
    Registry(String),
    #[error("cannot create a Kafka producer: {0}; check [kafka] in the configuration")]
    Producer(#[source] rdkafka::error::KafkaError),
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// What every operator command works with: the configuration, its secrets and a codec.
pub struct Ops {
    pub config: Config,
    pub secrets: Secrets,
    pub codec: AvroCodec,
}

impl Ops {
    pub fn new(config: Config, secrets: Secrets) -> Result<Self, OpsError> {
        let registry = RegistryClient::new(&config.registry, secrets.registry_password.clone())
            .map_err(|e| OpsError::Registry(e.to_string()))?;
        let codec = AvroCodec::new(registry, config.registry.cache_capacity)
            .map_err(|e| OpsError::Registry(e.to_string()))?;
        Ok(Ops {
            config,
            secrets,
            codec,
        })
    }

    /// A topic reader; `progress` shows a bar on stderr for long scans.
    pub fn reader(&self, progress: bool) -> Result<TopicReader, OpsError> {
        Ok(TopicReader::new(
            &self.config,
            &self.secrets,
            self.codec.clone(),
            progress,
        )?)
    }

    /// A producer with the pipeline's settings (idempotent, all in-sync replicas).
    pub fn producer(&self) -> Result<FutureProducer, OpsError> {
        producer_config(&self.config, &self.secrets)
            .create()
            .map_err(OpsError::Producer)
    }
}
