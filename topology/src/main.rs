use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hubsync::cli;

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
    /// Run a development Kafka broker (librdkafka's mock cluster) until Ctrl-C.
    DevBroker(cli::dev_broker::DevBrokerArgs),
    /// Run the broker, schema registry and HubSpot sandbox together until Ctrl-C.
    Sandbox(cli::sandbox::SandboxArgs),
    /// Run the pipeline (process and sink stages) until Ctrl-C or SIGTERM.
    Run(cli::run::RunArgs),
    /// Run the whole pipeline on the sandbox with a generated team and report what happened.
    Demo(cli::demo::DemoArgs),
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
        Command::DevBroker(args) => block_on(cli::dev_broker::run(args)),
        Command::Sandbox(args) => block_on(cli::sandbox::run(args)),
        Command::Run(args) => block_on(cli::run::run(args)),
        Command::Demo(args) => block_on(cli::demo::run(args)),
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

fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    future: F,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// Logs go to stderr so stdout stays for results scripts read; `HUBSYNC_LOG` sets the filter
/// (default `info`) and `HUBSYNC_LOG_FORMAT=json` switches to one JSON object per line.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUBSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("HUBSYNC_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
