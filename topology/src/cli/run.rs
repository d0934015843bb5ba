//! `hubsync run --config FILE [--stage process|sink|inbound|all]`: the pipeline, until Ctrl-C or SIGTERM.
//! FILE is a one-file configuration (one team) or a service file whose `[teams] dir` holds a
//! file per team.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tracing::{error, info};

use crate::admin::{self, Health};
use crate::config::Service;
use crate::console::{self, Console};
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
    let service = match Service::load(&args.config) {
        Ok(service) => service,
        Err(problems) => {
            eprintln!("{}: {problems}", args.config.display());
            return Ok(ExitCode::from(INVALID_CONFIG));
        }
    };
    // A one-file configuration's secrets, or a service's own (each team's are its file's).
    let secrets = if service.is_single_team() {
        service.settings.resolve_secrets()
    } else {
        service.settings.resolve_deployment_secrets()
    };
    let secrets = match secrets {
        Ok(secrets) => secrets,
        Err(problems) => {
            eprintln!("{}: {problems}", args.config.display());
            return Ok(ExitCode::from(INVALID_CONFIG));
        }
    };
    let config = &service.settings;
    let health = Health::default();
    let metrics = admin::install_metrics();
    let listen = config
        .admin
        .listen_addr()
        .context("admin.listen is not an address")?;
    let mut app = admin::router(health.clone(), metrics);
    let (stop_indexer, indexer_stopping) = tokio::sync::watch::channel(false);
    let single_team = service.is_single_team().then(|| config.team.id.clone());
    let indexer = match Console::new(
        args.config.clone(),
        config.clone(),
        secrets.clone(),
        single_team,
        health.clone(),
    ) {
        Ok(console) => {
            app = app.merge(console::router(console.clone()));
            console::spawn_indexer(&console, indexer_stopping)
        }
        Err(error) => {
            eprintln!("{}: {error}", args.config.display());
            return Ok(ExitCode::from(INVALID_CONFIG));
        }
    };
    let admin = admin::serve_router(listen, app)
        .await
        .with_context(|| format!("binding the admin endpoint to {listen}"))?;
    info!(url = %admin.url(), "admin endpoint: /metrics, /healthz, the console at /");
    let mut pipeline = match Pipeline::start_service(&service, args.stage, health).await {
        Ok(pipeline) => pipeline,
        Err(error) => {
            error!(%error, "pipeline did not start");
            eprintln!("error: {error}");
            return Ok(ExitCode::from(INVALID_CONFIG));
        }
    };
    if let Some(addr) = pipeline.webhook_addr {
        info!(%addr, path = config.stages.inbound.webhook_path, "webhook receiver: HubSpot posts here");
    }
    // A team whose mandatory fields change has its parked events replayed with its new rules.
    let (stop_reruns, reruns_stopping) = tokio::sync::watch::channel(false);
    if let Some(changes) = pipeline.take_mandatory_changes() {
        tokio::spawn(crate::ops::replay::parked::rerun_on_change(
            config.clone(),
            secrets.clone(),
            changes,
            reruns_stopping,
        ));
    }
    let stopped_early = tokio::select! {
        signal = super::shutdown_signal() => {
            info!(signal = signal.unwrap_or("unknown"), "stopping");
            false
        }
        () = pipeline.stage_ended() => true,
    };
    let _ = stop_reruns.send(true);
    let result = pipeline.stop().await;
    let _ = stop_indexer.send(true);
    if let Some(indexer) = indexer {
        let _ = indexer.await;
    }
    let _ = admin.shutdown().await;
    match result {
        Ok(()) if !stopped_early => Ok(ExitCode::SUCCESS),
        Ok(()) => Err(anyhow::anyhow!("a stage stopped on its own")),
        Err(error) => Err(error),
    }
}
