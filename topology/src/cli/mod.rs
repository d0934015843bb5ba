//! The `hubsync` subcommands, one module each.

pub mod check;
pub mod config;
pub mod demo;
pub mod dev_broker;
pub mod owners;
pub mod run;
pub mod sandbox;

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
