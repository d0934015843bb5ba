//! The `hubsync` subcommands, one module each.

pub mod check;
pub mod config;
pub mod demo;
pub mod dev_broker;
pub mod dlq;
pub mod logs;
pub mod owners;
pub mod plan;
pub mod replay;
pub mod run;
pub mod sandbox;
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

/// Loads a configuration and its secrets as `run` does; on a problem prints it, naming the file,
/// and hands back exit status 2.
pub fn load_config(
    path: &std::path::Path,
) -> Result<(crate::config::Config, crate::config::Secrets), std::process::ExitCode> {
    let problem = |problems: &dyn std::fmt::Display| {
        eprintln!("{}: {problems}", path.display());
        std::process::ExitCode::from(2)
    };
    let config = crate::config::Config::load(path).map_err(|p| problem(&p))?;
    let secrets = config.resolve_secrets().map_err(|p| problem(&p))?;
    Ok((config, secrets))
}
