//! `hubsync run --config FILE [--stage process|sink|all]`: the pipeline, until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tracing::{error, info};

use crate::admin::{self, Health};
use crate::config::Config;
use crate::pipeline::{Pipeline, Stages};

/// Exit status of a configuration that cannot be used (the same as `config check`).
const INVALID_CONFIG: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The configuration file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Which stages this process runs.
    #[arg(long, value_enum, default_value = "all")]
    pub stage: Stages,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("{}: {problems}", args.config.display());
            return Ok(ExitCode::from(INVALID_CONFIG));
        }
    };
    let secrets = match config.resolve_secrets() {
        Ok(secrets) => secrets,
        Err(problems) => {
            eprintln!("{}: {problems}", args.config.display());
            return Ok(ExitCode::from(INVALID_CONFIG));
        }
    };
    let health = Health::default();
    let metrics = admin::install_metrics();
    let listen = config
        .admin
        .listen_addr()
        .context("admin.listen is not an address")?;
    let admin = admin::serve(listen, health.clone(), metrics)
        .await
        .with_context(|| format!("binding the admin endpoint to {listen}"))?;
    info!(url = %admin.url(), "admin endpoint: /metrics, /healthz");
    let pipeline = match Pipeline::start(&config, &secrets, args.stage, health).await {
        Ok(pipeline) => pipeline,
        Err(error) => {
            error!(%error, "pipeline did not start");
            eprintln!("error: {error}");
            return Ok(ExitCode::from(INVALID_CONFIG));
        }
    };
    let stopped_early = tokio::select! {
        signal = super::shutdown_signal() => {
            info!(signal = signal.unwrap_or("unknown"), "stopping");
            false
        }
        () = pipeline.stage_ended() => true,
    };
    let result = pipeline.stop().await;
    let _ = admin.shutdown().await;
    match result {
        Ok(()) if !stopped_early => Ok(ExitCode::SUCCESS),
        Ok(()) => Err(anyhow::anyhow!("a stage stopped on its own")),
        Err(error) => Err(error),
    }
}
