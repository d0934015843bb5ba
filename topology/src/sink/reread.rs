//! Reads one command's message again by its position: a replayed command is held without its
//! message ([`super::receipt`]), and its dead letter, the only thing that needs the message,
//! fetches it here. The consumer is made at the first need, joins no group and commits nothing.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::Mutex;

use crate::config::{Config, Secrets};
use crate::kafka::{original, reader_config};
use crate::outcomes::Original;
use crate::position::Position;

/// How long one read may wait for its message.
const READ_WAIT: Duration = Duration::from_secs(30);

pub struct Rereader {
    client: ClientConfig,
    consumer: Mutex<Option<StreamConsumer>>,
}

impl Rereader {
    pub fn new(config: &Config, secrets: &Secrets) -> Self {
        let client = reader_config(config, secrets, "sink-reread");
        Rereader {
            client,
            consumer: Mutex::new(None),
        }
    }

    /// The message at `position`, or why it cannot be had.
    pub async fn read(&self, position: &Position) -> Result<Original, String> {
        let mut slot = self.consumer.lock().await;
        if slot.is_none() {
            let consumer: StreamConsumer = self
                .client
                .create()
                .map_err(|e| format!("cannot make a consumer to read it again: {e}"))?;
            *slot = Some(consumer);
        }
        let Some(consumer) = slot.as_ref() else {
            return Err("no consumer to read it again".to_string());
        };
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(
                &position.topic,
                position.partition,
                Offset::Offset(position.offset),
            )
            .map_err(|e| e.to_string())?;
        consumer.assign(&assignment).map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + READ_WAIT;
        loop {
            let message = tokio::time::timeout_at(deadline, consumer.recv())
                .await
                .map_err(|_| format!("{position} was not read again within {READ_WAIT:?}"))?
                .map_err(|e| e.to_string())?;
            if message.topic() != position.topic || message.partition() != position.partition {
                continue;
            }
            match message.offset() {
                offset if offset == position.offset => return Ok(original(&message)),
                offset if offset > position.offset => {
                    return Err(format!(
                        "{position} is gone from Kafka (retention or compaction)"
                    ));
                }
                _ => continue,
            }
        }
    }
}
