//! `hubsync-dev dev-broker`: a development Kafka broker (librdkafka's mock cluster) in its own process.
//!
//! Stdout carries exactly two lines, in a form `eval $(hubsync-dev dev-broker)` accepts and scripts
//! can parse:
//!
//! ```text
//! HUBSYNC_KAFKA_BROKERS=127.0.0.1:40123
//! HUBSYNC_BROKER_CONTROL_URL=http://127.0.0.1:40124
//! ```
//!
//! Everything else goes to stderr through tracing. The broker runs until Ctrl-C or SIGTERM and
//! then stops cleanly; topics and messages live in memory only.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use hubsync_sandbox::broker::{BrokerConfig, DEFAULT_PARTITIONS, DevBroker, TopicSpec};
use hubsync_sandbox::server::{RunningServer, loopback};
use tracing::info;

#[derive(Debug, clap::Args)]
pub struct DevBrokerArgs {
    /// Number of brokers in the cluster (ids 1 to N).
    #[arg(long, default_value_t = 1)]
    pub brokers: i32,
    /// Partitions of each topic created at start.
    #[arg(long, default_value_t = DEFAULT_PARTITIONS)]
    pub partitions: i32,
    /// A topic to create at start; repeat for several. Without any, hubsync's default topics
    /// (crm.contact.changes, crm.company.changes, crm.activity.events, hubsync.commands,
    /// hubsync.outcomes, hubsync.dlq, crm.hubspot.changes).
    #[arg(long = "topic", value_name = "NAME")]
    pub topics: Vec<String>,
    /// Port of the HTTP control API on 127.0.0.1; 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    pub control_port: u16,
}

impl DevBrokerArgs {
    fn config(&self) -> BrokerConfig {
        let config = BrokerConfig::new(self.brokers);
        if self.topics.is_empty() {
            config.with_default_topics(self.partitions)
        } else {
            self.topics.iter().fold(config, |config, name| {
                config.with_topic(TopicSpec::new(name.as_str(), self.partitions))
            })
        }
    }
}

pub async fn run(args: DevBrokerArgs) -> anyhow::Result<ExitCode> {
    let broker = DevBroker::start(args.config())
        .await
        .context("could not start the development broker")?;
    let control = RunningServer::spawn(broker.control_router(), loopback(args.control_port))
        .await
        .with_context(|| {
            format!(
                "could not bind the control API to 127.0.0.1:{}; pick another --control-port",
                args.control_port
            )
        })?;

    announce(broker.bootstrap_servers(), &control.url())
        .context("could not write the endpoints to stdout")?;
    info!(
        bootstrap_servers = broker.bootstrap_servers(),
        control_url = %control.url(),
        brokers = broker.broker_count(),
        "development broker ready; Ctrl-C to stop"
    );

    let stopped_by = hubsync::cli::shutdown_signal()
        .await
        .context("could not listen for signals")?;
    info!(signal = stopped_by, "stopping development broker");
    control
        .shutdown()
        .await
        .context("control API did not stop cleanly")?;
    broker.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The two lines scripts read; flushed at once, since stdout is a pipe when a script reads it.
fn announce(bootstrap: &str, control_url: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "HUBSYNC_KAFKA_BROKERS={bootstrap}")?;
    writeln!(stdout, "HUBSYNC_BROKER_CONTROL_URL={control_url}")?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: DevBrokerArgs,
    }

    fn parse(argv: &[&str]) -> DevBrokerArgs {
        Cli::try_parse_from(std::iter::once("dev-broker").chain(argv.iter().copied()))
            .expect("arguments parse")
            .args
    }

    #[test]
    fn defaults_create_hubsync_topics_on_one_broker() {
        let config = parse(&[]).config();
        assert_eq!(config, BrokerConfig::default());
    }

    #[test]
    fn named_topics_replace_the_defaults() {
        let config = parse(&[
            "--brokers",
            "3",
            "--partitions",
            "6",
            "--topic",
            "a",
            "--topic",
            "b",
        ])
        .config();
        assert_eq!(
            config,
            BrokerConfig::new(3)
                .with_topic(TopicSpec::new("a", 6))
                .with_topic(TopicSpec::new("b", 6))
        );
    }
}
