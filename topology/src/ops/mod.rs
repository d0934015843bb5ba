//! Operator tooling over hubsync's own topics: the outcomes log queried by time, status, reason
//! and record (`hubsync logs`), and the dead-letter topic listed, inspected and redriven
//! (`hubsync dlq`).
//! `hubsync trace` (one record's story) and `hubsync plan` (a dry run of the current rules over a
//! range of events) also read the upstream topics, and HubSpot read-only.
//!
//! # Layout
//! - [`scan`]: reading a topic between two times, decoded, without joining a consumer group.
//! - [`range`]: `--since` / `--until` parsing (RFC 3339, dates, durations ago).
//! - [`logs`]: outcome filters, counts and rows.
//! - [`dlq`]: dead-letter ids, filters, decoded payloads, and redriving a selection.
//! - [`redrive`]: the redrive headers, and how the pipeline recognises a redriven record.
//! - [`replay`]: source records copied to the replay topic for the current rules, resumably;
//!   the replay headers, and how the pipeline recognises a replayed record.
//! - [`record`]: record labels (`email:ada@acme.io`) and what `--record` matches.
//! - [`table`]: plain-text tables.
//! - [`subject`]: what `hubsync trace` is asked about, and which records belong to it.
//! - [`decision`]: the current rules applied to one upstream event, in words.
//! - [`lookup`]: read-only HubSpot lookups (by unique property, by search, by id).
//! - [`trace`]: one record's story in time order (`hubsync trace`).
//! - [`plan`]: the current rules over a range of events against HubSpot now (`hubsync plan`).

pub mod decision;
pub mod dlq;
pub mod logs;
pub mod lookup;
pub mod plan;
pub mod range;
pub mod record;
pub mod redrive;
pub mod replay;
pub mod scan;
pub mod subject;
pub mod table;
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
