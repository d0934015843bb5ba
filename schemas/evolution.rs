//! Whether data written with one schema can be read with another, strictly: Avro's "partial"
//! compatibility (resolution that works for some values only, such as a writer's union branch
//! the reader lacks) counts as incompatible, as it does for Confluent's registry.

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

/// Why data written with one schema cannot be read with another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Incompatible {
    #[error("the reader schema cannot read data of the writer schema: {0}")]
    Never(String),
    #[error("the reader schema can read only some data of the writer schema")]
    Partially,
}

/// `Ok` when every datum written with `writer` can be read with `reader`.
pub fn check_can_read(writer: &Schema, reader: &Schema) -> Result<(), Incompatible> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(Incompatible::Partially),
        Err(error) => Err(Incompatible::Never(error.to_string())),
    }
}
