//! A record's place on a Kafka topic, `topic/partition/offset`: the one position type. Outcomes,
//! dead letters, replay marks, redrive marks, the log and the trace all name records by it, and
//! every one of them prints and parses it the same way.
//!
//! ```text
//! "crm.contact.changes/2/812" <-> Position { topic: "crm.contact.changes", partition: 2, offset: 812 }
//! "a/b/c/0/1"                  -> topic "a/b/c" (topic names may hold '/'; the last two parts are numbers)
//! ```

use std::fmt;
use std::str::FromStr;

use rdkafka::Message;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl Position {
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        Position {
            topic: topic.into(),
            partition,
            offset,
        }
    }

    /// Where a message was read.
    pub fn of<M: Message>(message: &M) -> Self {
        Position::new(message.topic(), message.partition(), message.offset())
    }

    /// Parses `topic/partition/offset`; on failure says what it expected, naming the thing
    /// (`a dead letter id`, `a record position`) and an example the user may copy.
    pub fn parse_as(input: &str, what: &str, example: &str) -> Result<Self, String> {
        input.parse().map_err(|_: ParseError| {
            format!("{input:?} is not {what}: write it topic/partition/offset (e.g. {example})")
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// Text that is not `topic/partition/offset` with a partition and an offset of at least 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a record position: it reads topic/partition/offset")]
pub struct ParseError(String);

impl FromStr for Position {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let mut parts = input.trim().rsplitn(3, '/');
        let offset = parts.next().and_then(|o| o.parse::<i64>().ok());
        let partition = parts.next().and_then(|p| p.parse::<i32>().ok());
        let topic = parts.next().filter(|t| !t.is_empty());
        match (topic, partition, offset) {
            (Some(topic), Some(partition), Some(offset)) if partition >= 0 && offset >= 0 => {
                Ok(Position::new(topic, partition, offset))
            }
            _ => Err(ParseError(input.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_back_as_written_and_refuse_what_is_not_one() {
        let position = Position::new("crm.contact.changes", 2, 812);
        let text = position.to_string();
        assert_eq!(text, "crm.contact.changes/2/812");
        assert_eq!(text.parse::<Position>(), Ok(position));
        assert_eq!(
            "a/b/c/0/1".parse::<Position>().map(|p| p.topic),
            Ok("a/b/c".to_string())
        );
        for bad in ["", "topic/1", "/0/1", "t/-1/3", "t/0/x", "t/0/-2"] {
            let error = bad.parse::<Position>().expect_err(bad);
            assert!(
                error.to_string().contains("topic/partition/offset"),
                "{error}"
            );
        }
        let named = Position::parse_as("x", "a dead letter id", "hubsync.dlq/0/7").unwrap_err();
        assert!(named.contains("a dead letter id") && named.contains("hubsync.dlq/0/7"));
    }
}
