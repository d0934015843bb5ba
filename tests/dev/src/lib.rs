//! hubsync's development tools: what a developer, the tests and the benches run beside the
//! product, and what a production build never carries.
//!
//! # Layout
//! - [`cli`]: the `hubsync-dev` subcommands: `sandbox` (broker, schema registry and HubSpot
//!   sandbox in one process), `dev-broker` (the broker alone), `demo`.
//! - [`demo`]: `hubsync-dev demo`: a generated team published through the pipeline on the
//!   sandbox, the prediction of every outcome, and the report that compares them.
//! - [`sandbox_config`]: the configuration `hubsync-dev sandbox` prints, pointed at the sandbox.
//!
//! The stand-ins themselves (HubSpot emulator, schema registry, development broker) are the
//! `hubsync-sandbox` crate; the throughput benches are this crate's `benches/throughput`.

pub mod cli;
pub mod demo;
pub mod sandbox_config;
