//! What can go wrong decoding and encoding, each failure saying whose fault it is: the record's
//! (dead-letter it), the registry's (retry), the configuration's (stop and alert) or hubsync's.

use hubsync_schemas::{ErrorClass, ReasonCode, SchemaError, SchemaKind};

use super::framing::FrameError;
use super::registry::RegistryError;

/// A record value that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not Confluent's wire format: a producer writing JSON or plain Avro to the topic.
    #[error(
        "not a Confluent-framed Avro record: {0}; the producer must use a schema registry serializer"
    )]
    NotConfluentFramed(FrameError),
    /// The registry has never seen the schema id in the record's header.
    #[error(
        "schema id {0} is unknown to the schema registry: the record was written against another \
         registry, or its header is corrupt"
    )]
    UnknownSchemaId(u32),
    /// The writer's schema cannot be read as the record type expected on this topic.
    #[error(
        "the record's writer schema (id {id}) does not resolve to the expected record: {reason}"
    )]
    Incompatible { id: u32, reason: String },
    /// The bytes are not a valid datum of the schema the header names.
    #[error("the record's bytes are not valid Avro of schema id {id}: {reason}")]
    Malformed { id: u32, reason: String },
    /// The registry could not be asked for the writer's schema.
    #[error("cannot fetch the record's writer schema: {0}")]
    Registry(#[from] RegistryError),
    /// [`super::AvroCodec::decode_cached`] only: the schema is not in the cache yet; decode with
    /// [`super::AvroCodec::decode`], which fetches it.
    #[error("schema id {0} is not cached yet: decode the record with the fetching decoder")]
    NotCached(u32),
}

impl DecodeError {
    /// Worth trying again later: the registry was unreachable or failing. (`NotCached` is not:
    /// it asks for the fetching decoder, not for a later try.)
    pub fn is_retryable(&self) -> bool {
        match self {
            DecodeError::Registry(error) => error.is_retryable(),
            _ => false,
        }
    }

    /// A short stable code, used as the dead-letter reason.
    pub fn code(&self) -> ReasonCode {
        match self {
            DecodeError::NotConfluentFramed(_) => ReasonCode::NotConfluentFramed,
            DecodeError::UnknownSchemaId(_) => ReasonCode::UnknownSchemaId,
            DecodeError::Incompatible { .. } => ReasonCode::IncompatibleSchema,
            DecodeError::Malformed { .. } => ReasonCode::MalformedAvro,
            DecodeError::Registry(error) if error.is_retryable() => ReasonCode::RegistryUnavailable,
            DecodeError::Registry(_) => ReasonCode::RegistryRejected,
            DecodeError::NotCached(_) => ReasonCode::SchemaNotCached,
        }
    }

    /// Whose fault the failure is. Record problems are [`ErrorClass::Data`]; a registry that
    /// stayed unreachable is [`ErrorClass::RetriesExhausted`].
    pub fn class(&self) -> ErrorClass {
        match self {
            DecodeError::NotConfluentFramed(_)
            | DecodeError::UnknownSchemaId(_)
            | DecodeError::Incompatible { .. }
            | DecodeError::Malformed { .. } => ErrorClass::Data,
            DecodeError::Registry(error) => error.class(),
            DecodeError::NotCached(_) => ErrorClass::Internal,
        }
    }

    /// The schema id in the record's header, when it had one.
    pub fn schema_id(&self) -> Option<u32> {
        match self {
            DecodeError::UnknownSchemaId(id)
            | DecodeError::NotCached(id)
            | DecodeError::Incompatible { id, .. }
            | DecodeError::Malformed { id, .. } => Some(*id),
            DecodeError::NotConfluentFramed(_) | DecodeError::Registry(_) => None,
        }
    }
}

/// A record hubsync made that does not fit its own schema: a hubsync bug.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("a writer for {writer} was given a {record}: use the writer of the record's schema")]
    WrongKind {
        writer: SchemaKind,
        record: SchemaKind,
    },
    #[error(transparent)]
    Avro(#[from] SchemaError),
}

impl EncodeError {
    /// Always [`ErrorClass::Internal`]: the record was built by hubsync.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Internal
    }
}

/// The schema of an output topic could not be registered nor found under its subject.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The registry could not be asked; retry.
    #[error("cannot register {kind} under subject {subject}: {source}")]
    Registry {
        kind: SchemaKind,
        subject: String,
        #[source]
        source: RegistryError,
    },
    /// Registering was refused and the subject does not hold this exact schema either.
    #[error(
        "the registry refused {kind} under subject {subject} ({refused}) and the subject does \
         not hold this schema ({lookup}): register schemas/{kind}.avsc under {subject} by hand, \
         or set the subject's compatibility so it is accepted"
    )]
    Refused {
        kind: SchemaKind,
        subject: String,
        refused: RegistryError,
        lookup: RegistryError,
    },
    /// This build's embedded schema does not parse: a hubsync bug.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

impl WriterError {
    pub fn is_retryable(&self) -> bool {
        match self {
            WriterError::Registry { source, .. } => source.is_retryable(),
            WriterError::Refused { lookup, .. } => lookup.is_retryable(),
            WriterError::Schema(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> RegistryError {
        RegistryError::Unavailable {
            request: "GET /schemas/ids/3".to_owned(),
            reason: "connection refused".to_owned(),
        }
    }

    #[test]
    fn codes_and_classes() {
        let cases = [
            (
                DecodeError::NotConfluentFramed(FrameError::Empty),
                "NOT_CONFLUENT_FRAMED",
                ErrorClass::Data,
                false,
            ),
            (
                DecodeError::UnknownSchemaId(9),
                "UNKNOWN_SCHEMA_ID",
                ErrorClass::Data,
                false,
            ),
            (
                DecodeError::Incompatible {
                    id: 9,
                    reason: "x".into(),
                },
                "INCOMPATIBLE_SCHEMA",
                ErrorClass::Data,
                false,
            ),
            (
                DecodeError::Malformed {
                    id: 9,
                    reason: "x".into(),
                },
                "MALFORMED_AVRO",
                ErrorClass::Data,
                false,
            ),
            (
                DecodeError::Registry(unavailable()),
                "REGISTRY_UNAVAILABLE",
                ErrorClass::RetriesExhausted,
                true,
            ),
            (
                DecodeError::Registry(RegistryError::Rejected {
                    request: "GET /schemas/ids/3".into(),
                    status: 401,
                    code: None,
                    message: "Unauthorized".into(),
                }),
                "REGISTRY_REJECTED",
                ErrorClass::Auth,
                false,
            ),
            (
                DecodeError::NotCached(9),
                "SCHEMA_NOT_CACHED",
                ErrorClass::Internal,
                false,
            ),
        ];
        for (error, code, class, retryable) in cases {
            assert_eq!(error.code().as_str(), code, "{error}");
            assert_eq!(error.class(), class, "{error}");
            assert_eq!(error.is_retryable(), retryable, "{error}");
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let framed = DecodeError::NotConfluentFramed(FrameError::BadMagic(b'{'));
        assert_eq!(
            framed.to_string(),
            "not a Confluent-framed Avro record: the first byte is 0x7b, not the magic byte \
             0x00; the producer must use a schema registry serializer"
        );
        let registry = DecodeError::Registry(unavailable());
        assert!(
            registry.to_string().contains("hubsync retries"),
            "{registry}"
        );
    }
}
