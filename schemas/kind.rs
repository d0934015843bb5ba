//! The seven schemas, embedded at build time, and how they are named on the registry.

use std::sync::OnceLock;

use apache_avro::Schema;

/// One Avro schema of hubsync, named after its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SchemaKind {
    ContactChanged,
    CompanyChanged,
    ActivityRecorded,
    HubSpotCommand,
    SyncOutcome,
    DeadLetter,
    HubSpotChange,
}

/// Namespace of every hubsync record.
pub const NAMESPACE: &str = "io.hubsync";

/// A schema failed to parse, or a value did not fit its schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("embedded schema {kind:?} does not parse: {source}; fix schemas/{kind:?}.avsc")]
    Parse {
        kind: SchemaKind,
        #[source]
        source: apache_avro::Error,
    },
    #[error("cannot encode {record} as Avro: {source}")]
    Encode {
        record: &'static str,
        #[source]
        source: apache_avro::Error,
    },
    #[error("cannot decode Avro datum as {record}: {source}")]
    Decode {
        record: &'static str,
        #[source]
        source: apache_avro::Error,
    },
    #[error(
        "{remaining} bytes left after decoding a {record}: the writer schema does not match the bytes"
    )]
    TrailingBytes {
        record: &'static str,
        remaining: usize,
    },
}

impl SchemaKind {
    /// Every schema, in the order of the topic table.
    pub const ALL: [SchemaKind; 7] = [
        SchemaKind::ContactChanged,
        SchemaKind::CompanyChanged,
        SchemaKind::ActivityRecorded,
        SchemaKind::HubSpotCommand,
        SchemaKind::SyncOutcome,
        SchemaKind::DeadLetter,
        SchemaKind::HubSpotChange,
    ];

    /// The record name, which is also the `.avsc` file name without extension.
    pub fn name(self) -> &'static str {
        match self {
            SchemaKind::ContactChanged => "ContactChanged",
            SchemaKind::CompanyChanged => "CompanyChanged",
            SchemaKind::ActivityRecorded => "ActivityRecorded",
            SchemaKind::HubSpotCommand => "HubSpotCommand",
            SchemaKind::SyncOutcome => "SyncOutcome",
            SchemaKind::DeadLetter => "DeadLetter",
            SchemaKind::HubSpotChange => "HubSpotChange",
        }
    }

    /// The record's full name, e.g. `io.hubsync.ContactChanged` (what `RecordNameStrategy`
    /// subjects are made of).
    pub fn full_name(self) -> String {
        format!("{NAMESPACE}.{}", self.name())
    }

    /// The kind whose record name is `name` (with or without the namespace).
    pub fn from_name(name: &str) -> Option<SchemaKind> {
        let short = name
            .strip_prefix(NAMESPACE)
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(name);
        SchemaKind::ALL
            .into_iter()
            .find(|kind| kind.name() == short)
    }

    /// The schema's JSON text, exactly as in the `.avsc` file.
    pub fn source(self) -> &'static str {
        match self {
            SchemaKind::ContactChanged => include_str!("ContactChanged.avsc"),
            SchemaKind::CompanyChanged => include_str!("CompanyChanged.avsc"),
            SchemaKind::ActivityRecorded => include_str!("ActivityRecorded.avsc"),
            SchemaKind::HubSpotCommand => include_str!("HubSpotCommand.avsc"),
            SchemaKind::SyncOutcome => include_str!("SyncOutcome.avsc"),
            SchemaKind::DeadLetter => include_str!("DeadLetter.avsc"),
            SchemaKind::HubSpotChange => include_str!("HubSpotChange.avsc"),
        }
    }

    /// The topic this schema is the value schema of, by default (all topic names are configurable).
    pub fn default_topic(self) -> &'static str {
        match self {
            SchemaKind::ContactChanged => "crm.contact.changes",
            SchemaKind::CompanyChanged => "crm.company.changes",
            SchemaKind::ActivityRecorded => "crm.activity.events",
            SchemaKind::HubSpotCommand => "hubsync.commands",
            SchemaKind::SyncOutcome => "hubsync.outcomes",
            SchemaKind::DeadLetter => "hubsync.dlq",
            SchemaKind::HubSpotChange => "crm.hubspot.changes",
        }
    }

    /// Parses the embedded source into a fresh [`Schema`].
    pub fn parse(self) -> Result<Schema, SchemaError> {
        Schema::parse_str(self.source()).map_err(|source| SchemaError::Parse { kind: self, source })
    }

    /// The parsed schema, parsed once per process and shared.
    pub fn schema(self) -> Result<&'static Schema, SchemaError> {
        static PARSED: [OnceLock<Schema>; 7] = [const { OnceLock::new() }; 7];
        let cell = &PARSED[self as usize];
        if let Some(schema) = cell.get() {
            return Ok(schema);
        }
        let parsed = self.parse()?;
        Ok(cell.get_or_init(|| parsed))
    }
}

impl std::fmt::Display for SchemaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The registry subject of a topic's value schema under Confluent's default
/// `TopicNameStrategy`: `{topic}-value`.
pub fn default_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// The registry subject of a topic's key schema under `TopicNameStrategy`: `{topic}-key`.
pub fn key_subject(topic: &str) -> String {
    format!("{topic}-key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_parses_and_is_named_after_its_file() {
        for kind in SchemaKind::ALL {
            let schema = kind.parse().expect("schema parses");
            let name = schema.name().expect("a record schema has a name");
            assert_eq!(name.fullname(None), kind.full_name());
            assert!(kind.schema().is_ok());
            assert_eq!(SchemaKind::from_name(&kind.full_name()), Some(kind));
            assert_eq!(SchemaKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(SchemaKind::from_name("io.hubsync.Nope"), None);
    }

    #[test]
    fn subjects_follow_topic_name_strategy() {
        assert_eq!(
            default_subject("crm.contact.changes"),
            "crm.contact.changes-value"
        );
        assert_eq!(
            key_subject("crm.contact.changes"),
            "crm.contact.changes-key"
        );
    }

    #[test]
    fn index_of_every_kind_fits_the_cache() {
        for (i, kind) in SchemaKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i);
        }
    }
}
