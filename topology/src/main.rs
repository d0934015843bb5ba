use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hubsync::cli::{self, block_on, init_tracing};

/// hubsync keeps a sales-engagement platform and HubSpot in step.
#[derive(Debug, Parser)]
#[command(name = "hubsync", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with configuration files.
    #[command(subcommand)]
    Config(cli::config::ConfigCommand),
    /// Run the pipeline (process, sink and inbound stages) until Ctrl-C or SIGTERM.
    Run(cli::run::RunArgs),
    /// Check the configuration against HubSpot, Kafka and the schema registry before a deploy.
    Check(cli::check::CheckArgs),
    /// Work with HubSpot owners and the [users] mapping.
    #[command(subcommand)]
    Owners(cli::owners::OwnersCommand),
    /// Query the outcomes log by time range, status, reason code and record.
    Logs(cli::logs::LogsArgs),
    /// List, inspect and redrive dead letters.
    #[command(subcommand)]
    Dlq(cli::dlq::DlqCommand),
    /// Tell one record's story: its events, today's rules' decisions, commands, outcomes, dead
    /// letters and HubSpot's record now.
    Trace(cli::trace::TraceArgs),
    /// Dry-run the current rules over a range of events against HubSpot, writing nothing.
    Plan(cli::plan::PlanArgs),
    /// Process source records again with the current rules (a backfill), or the parked events.
    Replay(cli::replay::ReplayArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Config(command) => cli::config::run(command),
        Command::Run(args) => block_on(cli::run::run(args)),
        Command::Check(args) => block_on(cli::check::run(args)),
        Command::Owners(command) => block_on(cli::owners::run(command)),
        Command::Logs(args) => block_on(cli::logs::run(args)),
        Command::Dlq(command) => block_on(cli::dlq::run(command)),
        Command::Trace(args) => block_on(cli::trace::run(args)),
        Command::Plan(args) => block_on(cli::plan::run(args)),
        Command::Replay(args) => block_on(cli::replay::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
