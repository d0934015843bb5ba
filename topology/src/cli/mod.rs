//! The `hubsync` subcommands, one module each: each parses its arguments, calls the command's
//! domain (`crate::ops`, or the pipeline for `run`) and prints; nothing else.

pub mod check;
pub mod config;
pub mod dlq;
pub mod logs;
pub mod owners;
pub mod plan;
pub mod replay;
pub mod run;
pub mod trace;

/// Waits for Ctrl-C or, on Unix, SIGTERM; returns which one came. Long-running subcommands stop
/// cleanly on either.
pub async fn shutdown_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map(|()| "SIGINT"),
            _ = terminate.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
    }
}

/// A problem with the arguments: said on stderr; exit status 2.
pub(crate) fn usage(problem: &str) -> std::process::ExitCode {
    eprintln!("error: {problem}");
    std::process::ExitCode::from(2)
}

/// The HubSpot client a configuration names, or exit status 2 naming the file and the field.
pub(crate) fn hubspot_client(
    path: &std::path::Path,
    config: &crate::config::Config,
    secrets: &crate::config::Secrets,
) -> Result<crate::hubspot::HubSpotClient, std::process::ExitCode> {
    crate::pipeline::hubspot_client(config, secrets).map_err(|error| {
        eprintln!("{}: hubspot.base_url: {error}", path.display());
        std::process::ExitCode::from(2)
    })
}

/// Loads one team's configuration and its secrets as `run` does: the team a one-file
/// configuration names, or `team`'s file in a service's directory. On a problem prints it,
/// naming the file, and hands back exit status 2.
pub fn load_config(
    path: &std::path::Path,
    team: Option<&str>,
) -> Result<(crate::config::Config, crate::config::Secrets), std::process::ExitCode> {
    let problem = |problems: &dyn std::fmt::Display| {
        eprintln!("{}: {problems}", path.display());
        std::process::ExitCode::from(2)
    };
    let config = crate::config::Service::team_config(path, team).map_err(|p| problem(&p))?;
    let secrets = config.resolve_secrets().map_err(|p| problem(&p))?;
    Ok((config, secrets))
}

/// Runs a subcommand's future on a multi-threaded runtime.
pub fn block_on<F: std::future::Future<Output = anyhow::Result<std::process::ExitCode>>>(
    future: F,
) -> anyhow::Result<std::process::ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// Logs go to stderr so stdout stays for results scripts read; `HUBSYNC_LOG` sets the filter
/// (default `info`) and `HUBSYNC_LOG_FORMAT=json` switches to one JSON object per line.
pub fn init_tracing() {
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
