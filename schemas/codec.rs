//! Avro datum encoding and decoding of the record types: the bare Avro binary body, without the
//! Confluent wire prefix (magic byte and schema id), which the Kafka code adds and strips.
//!
//! Writing always uses the schema the bytes will be announced with. Reading takes the writer's
//! schema (from the registry, by the id in the prefix) and, when it differs from ours, our schema
//! as the reader schema, so Avro schema resolution fills defaults for fields the writer did not
//! have and maps enum symbols we do not know to `UNKNOWN`.

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::kind::{SchemaError, SchemaKind};
use crate::{
    ActivityRecorded, CompanyChanged, ContactChanged, DeadLetter, HubSpotChange, HubSpotCommand,
    SyncOutcome,
};

/// A Rust record type mirroring one hubsync schema.
pub trait AvroRecord: Serialize + DeserializeOwned {
    /// The schema this type mirrors.
    const KIND: SchemaKind;

    /// Encodes `self` with this build's schema as writer schema.
    fn to_avro(&self) -> Result<Vec<u8>, SchemaError> {
        encode_datum(Self::KIND.schema()?, self)
    }

    /// Decodes a datum written with this build's schema.
    fn from_avro(bytes: &[u8]) -> Result<Self, SchemaError> {
        decode_datum(Self::KIND.schema()?, None, bytes)
    }

    /// Decodes a datum written with `writer`, another version of this type's schema, resolving it
    /// to this build's schema.
    fn from_avro_written_with(writer: &Schema, bytes: &[u8]) -> Result<Self, SchemaError> {
        decode_datum(writer, Some(Self::KIND.schema()?), bytes)
    }
}

impl AvroRecord for ContactChanged {
    const KIND: SchemaKind = SchemaKind::ContactChanged;
}
impl AvroRecord for CompanyChanged {
    const KIND: SchemaKind = SchemaKind::CompanyChanged;
}
impl AvroRecord for ActivityRecorded {
    const KIND: SchemaKind = SchemaKind::ActivityRecorded;
}
impl AvroRecord for HubSpotCommand {
    const KIND: SchemaKind = SchemaKind::HubSpotCommand;
}
impl AvroRecord for SyncOutcome {
    const KIND: SchemaKind = SchemaKind::SyncOutcome;
}
impl AvroRecord for DeadLetter {
    const KIND: SchemaKind = SchemaKind::DeadLetter;
}
impl AvroRecord for HubSpotChange {
    const KIND: SchemaKind = SchemaKind::HubSpotChange;
}

/// Encodes `value` as an Avro datum of `schema`.
pub fn encode_datum<T: AvroRecord>(schema: &Schema, value: &T) -> Result<Vec<u8>, SchemaError> {
    GenericDatumWriter::builder(schema)
        .build()
        .and_then(|writer| writer.write_ser_to_vec(value))
        .map_err(|source| SchemaError::Encode {
            record: T::KIND.name(),
            source,
        })
}

/// Decodes an Avro datum written with `writer`. With a `reader` schema the datum is first
/// resolved to it (defaults for missing fields, unknown enum symbols to the enum's default);
/// without one it is read as `writer` directly. Bytes left over after the datum mean the writer
/// schema was not the one the bytes were written with, and are an error.
pub fn decode_datum<T: AvroRecord>(
    writer: &Schema,
    reader: Option<&Schema>,
    bytes: &[u8],
) -> Result<T, SchemaError> {
    let record = T::KIND.name();
    let decode = |source| SchemaError::Decode { record, source };
    let datum_reader = GenericDatumReader::builder(writer)
        .maybe_reader_schema(reader)
        .build()
        .map_err(decode)?;
    let mut rest = bytes;
    let value = match reader {
        Some(_) => {
            let value = datum_reader.read_value(&mut rest).map_err(decode)?;
            apache_avro::from_value::<T>(&value).map_err(decode)?
        }
        None => datum_reader.read_deser::<T>(&mut rest).map_err(decode)?,
    };
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(SchemaError::TrailingBytes {
            record,
            remaining: rest.len(),
        })
    }
}
