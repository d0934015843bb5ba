//! Every topic of `[topics]` hubsync uses must exist on the broker (the webhook receiver's only
//! when `stages.inbound.webhook_listen` is set): hubsync never creates topics, and a broker that creates them on first use would give
//! them its default partitions and retention.
//!
//! The broker is asked for the metadata of all its topics at once, which never creates one
//! (asking for a topic by name may, on brokers that auto-create).

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::{Finding, Problem, ProblemKind, TOPICS};
use crate::config::{Config, Secrets};
use crate::kafka::consumer_config;

/// The client id suffix and consumer group stage name of the check's metadata client.
const STAGE: &str = "check";

/// Looks up the configured topics in the broker's metadata.
pub async fn check(config: &Config, secrets: &Secrets, timeout: Duration) -> Finding {
    let client = consumer_config(config, secrets, STAGE);
    let listed = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client.create().map_err(Failure::Setup)?;
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .map_err(Failure::Metadata)?;
        Ok::<_, Failure>(
            metadata
                .topics()
                .iter()
                .filter(|topic| topic.error().is_none())
                .map(|topic| topic.name().to_owned())
                .collect::<HashSet<String>>(),
        )
    })
    .await;
    let brokers = &config.kafka.brokers;
    match listed {
        Ok(Ok(present)) => {
            let problems = missing(config, &present);
            let total = in_use(config).len();
            Finding::from_problems(
                format!("{} of {total} topics on {brokers}", total - problems.len()),
                problems,
            )
        }
        Ok(Err(Failure::Setup(error))) => Finding::problem(
            "no Kafka client",
            Problem::new(
                TOPICS,
                ProblemKind::KafkaConfig,
                "kafka.properties",
                format!("the Kafka client cannot be set up: {error}; check [kafka.properties]"),
            ),
        ),
        Ok(Err(Failure::Metadata(error))) => Finding::unreachable(format!(
            "no metadata from {brokers} within {}: {error}",
            humantime::format_duration(timeout)
        )),
        Err(join) => Finding::unreachable(format!("the metadata request failed: {join}")),
    }
}

enum Failure {
    Setup(rdkafka::error::KafkaError),
    Metadata(rdkafka::error::KafkaError),
}

/// The topics this configuration uses: the webhook receiver's only when one is configured, so a
/// deployment without webhooks needs no topic for them.
fn in_use(config: &Config) -> Vec<(&'static str, &str)> {
    let receiver = config.stages.inbound.webhook_listen.is_some();
    config
        .topics
        .all()
        .into_iter()
        .filter(|(key, _)| receiver || *key != "hubspot_webhooks")
        .collect()
}

/// One problem per configured topic the broker does not have.
pub fn missing(config: &Config, present: &HashSet<String>) -> Vec<Problem> {
    in_use(config)
        .into_iter()
        .filter(|(_, name)| !present.contains(*name))
        .map(|(key, name)| {
            Problem::new(
                TOPICS,
                ProblemKind::TopicMissing,
                format!("topics.{key}"),
                format!(
                    "topic {name:?} does not exist on the broker: create it (with the \
                     partitions and retention the team needs) or correct topics.{key}"
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_topics_are_named_by_their_key() {
        let mut config = Config::from_toml_str(
            "[team]\nid = \"acme\"\nhubspot_portal_id = 1\n[users]\ndefault_owner = \"1\"\n",
        )
        .expect("a minimal config");
        let topics = config.topics.clone();
        let mut present: HashSet<String> = topics
            .all()
            .into_iter()
            .map(|(_, name)| name.to_owned())
            .collect();
        assert_eq!(missing(&config, &present), []);
        present.remove(&topics.dlq);
        present.remove(&topics.contact_changes);
        present.remove(&topics.hubspot_webhooks);
        let problems = missing(&config, &present);
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["topics.contact_changes", "topics.dlq"]);
        // The webhook receiver's topic is needed once there is a receiver.
        config.stages.inbound.webhook_listen = Some("127.0.0.1:9465".to_owned());
        let fields: Vec<String> = missing(&config, &present)
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            [
                "topics.contact_changes",
                "topics.dlq",
                "topics.hubspot_webhooks"
            ]
        );
        assert!(
            problems[1].message.contains("\"hubsync.dlq\""),
            "{problems:?}"
        );
    }
}
