//! The `hubsync` subcommands, one module each.

pub mod config;
pub mod dev_broker;
pub mod sandbox;
