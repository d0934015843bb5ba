//! The `hubsync-dev` subcommands, one module each.

pub mod demo;
pub mod dev_broker;
pub mod sandbox;
