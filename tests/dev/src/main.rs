use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hubsync::cli::{block_on, init_tracing};
use hubsync_dev::cli;

/// hubsync's development tools: the sandbox, the development broker and the demo.
#[derive(Debug, Parser)]
#[command(name = "hubsync-dev", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a development Kafka broker (librdkafka's mock cluster) until Ctrl-C.
    DevBroker(cli::dev_broker::DevBrokerArgs),
    /// Run the broker, schema registry and HubSpot sandbox together until Ctrl-C.
    Sandbox(cli::sandbox::SandboxArgs),
    /// Run the whole pipeline on the sandbox with a generated team and report what happened.
    Demo(cli::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::DevBroker(args) => block_on(cli::dev_broker::run(args)),
        Command::Sandbox(args) => block_on(cli::sandbox::run(args)),
        Command::Demo(args) => block_on(cli::demo::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
