//! hubsync: keeps a sales-engagement platform and HubSpot in step.
//!
//! # Layout
//! - [`config`]: the one TOML file (team rules, Kafka, registry, HubSpot, topics, stage tuning),
//!   validated at start; every error names its field.
//! - [`cli`]: the `hubsync` subcommands.

pub mod cli;
pub mod config;
