//! hubsync: keeps a sales-engagement platform and HubSpot in step.
//!
//! # Layout
//! The running pipeline:
//! - [`config`]: a service file and its team files, or one file for one team; validated before
//!   use, every error naming its field.
//! - [`pipeline`]: a running pipeline assembled from a service: every team connected and checked,
//!   the stages started; `reload` (private) applies team files changed while it runs.
//! - [`teams`]: which teams the service serves, and what an event's team lets happen to it.
//! - [`process`]: the process stage, from upstream events to commands, outcomes and dead letters.
//! - [`sink`]: the sink stage, from commands to HubSpot writes and outcomes: the only merge
//!   (`coalesce`), the pure decisions (`verdict`), the HubSpot calls (`writer`), the loop.
//! - [`inbound`]: the inbound stage (HubSpot -> upstream); so far the webhook receiver, which puts
//!   HubSpot's signed events on Kafka before it answers.
//! - [`codec`]: Confluent-framed Avro in and out, with writer schemas from the schema registry.
//! - [`lineage`]: what travels in Kafka headers (replay and redrive marks), read once per
//!   message; processed-event keys and outcome stage labels that follow from it.
//! - [`position`]: a record's `topic/partition/offset`, the one position type.
//! - [`outcomes`]: the outcome and dead-letter records every event ends in.
//! - [`catalog`]: a portal's property definitions, for the process stage's rules.
//! - [`kafka`]: Kafka client settings and at-least-once offset bookkeeping; `emit` (private):
//!   writing commands, outcomes and dead letters; `state` (private): the sink's sled state, every
//!   key under its portal.
//! - [`admin`]: `/metrics` and `/healthz` of a running pipeline.
//! - `hubspot`: the HubSpot API client is the `hubsync-hubspot` crate (typed batch calls,
//!   classification, retries, budget, OAuth, the tier table), used here under that name.
//!
//! Around it, and never imported by it:
//! - [`ops`]: the operator commands' domain, a folder per command.
//! - [`cli`]: the `hubsync` subcommands: arguments and printing.

pub mod admin;
pub mod catalog;
pub mod cli;
pub mod codec;
pub mod config;
pub mod console;
mod emit;
pub mod inbound;
pub mod kafka;
pub mod lineage;
pub mod ops;
pub mod outcomes;
pub mod pipeline;
pub mod position;
pub mod process;
mod reload;
pub mod sink;
pub mod state;
pub mod teams;

use hubsync_hubspot as hubspot;

/// Locks `mutex`, also after a panic elsewhere poisoned it: every critical section in hubsync
/// is one operation on the data it guards, which a panic cannot leave half done.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
