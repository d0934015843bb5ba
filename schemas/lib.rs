//! Avro schemas of every hubsync topic, embedded, with the Rust record types that mirror them.
//!
//! The `.avsc` files next to this crate are the source of truth: upstream producers, the
//! schema registry and every hubsync stage use exactly these texts. Each file is standalone
//! (small named types such as `Actor` are repeated in every file that needs them).
//!
//! # Layout
//! - [`kind`]: [`SchemaKind`], one variant per schema file, with its embedded source, its parsed
//!   [`apache_avro::Schema`], its default topic and the registry subject for that topic.
//! - [`common`]: named types shared by several schemas (actor, change kind, HubSpot object type).
//! - [`upstream`]: events from the sales-engagement platform (`ContactChanged`,
//!   `CompanyChanged`, `ActivityRecorded`).
//! - [`pipeline`]: records hubsync writes itself (`HubSpotCommand`, `SyncOutcome`, `DeadLetter`).
//! - [`inbound`]: changes made in HubSpot, for upstream (`HubSpotChange`).
//! - [`reason`]: [`ReasonCode`], every reason code hubsync writes in outcomes and dead letters.
//! - [`evolution`]: the strict "can this reader read that writer" check the evolution tests use.
//! - [`codec`]: plain Avro datum encoding and decoding of these types, with schema resolution
//!   from an older or newer writer schema. Confluent wire framing lives with the Kafka code.
//! - [`examples`]: one realistic value of every record type, for tests, docs and the demo.
//!
//! Evolution rules and how to release a schema change are in `schemas/README.md`; frozen
//! released versions live in `schemas/history/<Name>/vN.avsc` and the crate's tests hold every
//! current schema backward compatible with them.

/// Declares a Rust enum mirroring an Avro enum: one unit variant per symbol, in the schema's
/// order, each serialized as its symbol. `Unknown` must be the schema's default symbol; it is
/// also what a symbol this build does not know deserializes to.
macro_rules! avro_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $symbol:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $symbol)] $variant, )+
            /// A symbol added by a newer producer, or none given: the schema's default symbol.
            #[default]
            #[serde(rename = "UNKNOWN", other)]
            Unknown,
        }

        impl $name {
            /// Every variant, in the order of the schema's symbols.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+ $name::Unknown];

            /// The Avro symbol of this variant.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $symbol, )+
                    $name::Unknown => "UNKNOWN",
                }
            }

            /// The variant for an Avro symbol; unknown symbols map to `Unknown`.
            pub fn from_symbol(symbol: &str) -> Self {
                match symbol {
                    $( $symbol => $name::$variant, )+
                    _ => $name::Unknown,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod codec;
pub mod common;
pub mod evolution;
pub mod examples;
pub mod inbound;
pub mod kind;
pub mod pipeline;
pub mod reason;
pub mod upstream;

pub use codec::{AvroRecord, decode_datum, encode_datum};
pub use common::{Actor, ActorKind, ChangeKind, HubSpotObjectType};
pub use evolution::{Incompatible, check_can_read};
pub use inbound::{AssociationChange, FieldChange, HubSpotChange, HubSpotChangeKind};
pub use kind::{NAMESPACE, SchemaError, SchemaKind, default_subject, key_subject};
pub use pipeline::{
    Association, CommandAction, DeadLetter, ErrorClass, ErrorEnvelope, HubSpotCommand, Identity,
    IdentityKind, KafkaHeader, OutcomeStatus, SourcePosition, SyncOutcome,
};
pub use reason::ReasonCode;
pub use upstream::{
    ActivityRecorded, ActivityType, CampaignRef, CompanyChanged, ContactChanged, Sender,
};
