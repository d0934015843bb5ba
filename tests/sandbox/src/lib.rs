//! Stand-ins for the three services hubsync talks to, for tests and the demo.
//!
//! # Layout
//! - [`hubspot`]: a stateful HubSpot CRM API emulator over HTTP, strict in validation, batch limits,
//!   error bodies and rate limits, with fault injection and an admin API.
//! - [`registry`]: a Confluent-compatible schema registry (the REST subset clients use).
//! - [`broker`]: a development Kafka broker hosting librdkafka's mock cluster.
//! - [`clock`]: the time source the HubSpot sandbox's rate limits and search index lag run on; tests
//!   drive a manual clock instead of sleeping.

pub mod broker;
pub mod clock;
pub mod hubspot;
pub mod registry;
pub mod server;
