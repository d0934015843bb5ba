//! Every topic of `[topics]`, the three hubsync reads and the four it writes, must exist on the
//! broker: hubsync never creates topics, and a broker that creates them on first use would give
//! them its default partitions and retention.
//!
//! The broker is asked for the metadata of all its topics at once, which never creates one
//! (asking for a topic by name may, on brokers that auto-create).

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::{Finding, Problem, ProblemKind, TOPICS};
use crate::config::{Config, Secrets, Topics};
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
            let problems = missing(&config.topics, &present);
            let total = config.topics.all().len();
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

/// One problem per configured topic the broker does not have.
pub fn missing(topics: &Topics, present: &HashSet<String>) -> Vec<Problem> {
    topics
        .all()
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
        let topics = Topics::default();
        let mut present: HashSet<String> = topics
            .all()
            .into_iter()
            .map(|(_, name)| name.to_owned())
            .collect();
        assert_eq!(missing(&topics, &present), []);
        present.remove(&topics.dlq);
        present.remove(&topics.contact_changes);
        let problems = missing(&topics, &present);
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["topics.contact_changes", "topics.dlq"]);
        assert!(
            problems[1].message.contains("\"hubsync.dlq\""),
            "{problems:?}"
        );
    }
}
