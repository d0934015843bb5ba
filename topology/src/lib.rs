//! hubsync: keeps a sales-engagement platform and HubSpot in step.
//!
//! # Layout
//! - [`config`]: the one TOML file (team rules, Kafka, registry, HubSpot, topics, stage tuning),
//!   validated at start; every error names its field.
//! - [`admin`]: `/metrics` and `/healthz` of a running pipeline.
//! - [`cli`]: the `hubsync` subcommands.
//! - [`codec`]: Confluent-framed Avro in and out, with writer schemas from the schema registry.
//! - `hubspot`: the HubSpot API client is the `hubsync-hubspot` crate (typed batch calls,
//!   classification, retries, budget, the tier table), used here under that name.
//! - [`kafka`]: Kafka client settings and at-least-once offset bookkeeping.
//! - [`lineage`]: what travels in Kafka headers (replay and redrive marks), read once per
//!   message; processed-event keys and outcome stage labels that follow from it.
//! - [`position`]: a record's `topic/partition/offset`, the one position type.
//! - [`pipeline`]: a running pipeline assembled from a configuration.
//! - [`process`]: the process stage, from upstream events to commands, outcomes and dead letters.
//! - [`emit`]: writing commands, outcomes and dead letters to Kafka.
//! - [`catalog`]: the portal's property definitions, for the process stage's rules.
//! - [`outcomes`]: the outcome and dead-letter records every event ends in.
//! - [`sink`]: the sink stage, from commands to HubSpot writes and outcomes.
//! - [`teams`]: which teams this service serves, and what an event's team lets happen to it.
//! - [`state`]: the sink's local state in sled (identity map, processed events, last written values).
//! - [`ops`]: operator tooling: the outcomes log queried, dead letters listed, shown and redriven.

pub mod admin;
pub mod catalog;
pub mod cli;
pub mod codec;
pub mod config;
mod emit;
pub mod kafka;
pub mod lineage;
pub mod ops;
pub mod outcomes;
pub mod pipeline;
pub mod position;
pub mod process;
mod reload;
pub mod sink;
mod state;
pub mod teams;

use hubsync_hubspot as hubspot;
