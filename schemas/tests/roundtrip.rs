//! Every schema parses, every record type round-trips through its schema, and a datum from a
//! newer producer resolves to this build's types.

use std::fmt::Debug;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::EnumSchema;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use hubsync_schemas::examples;
use hubsync_schemas::{
    ActivityRecorded, ActivityType, ActorKind, AvroRecord, ChangeKind, CommandAction, ErrorClass,
    HubSpotChangeKind, HubSpotObjectType, IdentityKind, OutcomeStatus, SchemaKind, decode_datum,
    encode_datum,
};

/// Encodes `value` both ways (serde straight to bytes, and through a generic `Value` as
/// `to_avro_datum` does) and decodes both ways (straight from bytes, and through a resolved
/// `Value`), checking every path gives back `value`.
fn round_trip<T: AvroRecord + PartialEq + Debug>(value: &T) {
    let schema = T::KIND.parse().expect("schema parses");

    let direct = encode_datum(&schema, value).expect("serde encoding");
    let generic = apache_avro::to_value(value)
        .and_then(|v| v.resolve(&schema))
        .and_then(|v| {
            GenericDatumWriter::builder(&schema)
                .build()?
                .write_value_to_vec(v)
        })
        .expect("generic value encoding");
    // Bytes may differ in map entry order (a generic `Value::Map` is a hash map), values may not.
    let from_generic: T = decode_datum(&schema, None, &generic).expect("decoding generic bytes");
    assert_eq!(&from_generic, value, "{}: generic encoding", T::KIND);
    assert_eq!(
        direct.len(),
        generic.len(),
        "{}: same size either way",
        T::KIND
    );

    let decoded: T = decode_datum(&schema, None, &direct).expect("direct decoding");
    assert_eq!(&decoded, value, "{}: direct decoding", T::KIND);
    let resolved: T = decode_datum(&schema, Some(&schema), &direct).expect("resolved decoding");
    assert_eq!(&resolved, value, "{}: resolved decoding", T::KIND);

    let value_read = GenericDatumReader::builder(&schema)
        .reader_schema(&schema)
        .build()
        .and_then(|reader| reader.read_value(&mut direct.as_slice()))
        .expect("generic decoding");
    let from_value: T = apache_avro::from_value(&value_read).expect("from_value");
    assert_eq!(&from_value, value, "{}: generic decoding", T::KIND);

    assert_eq!(value.to_avro().expect("to_avro"), direct);
    assert_eq!(&T::from_avro(&direct).expect("from_avro"), value);
}

#[test]
fn every_schema_parses() {
    for kind in SchemaKind::ALL {
        let schema = kind.parse().unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(matches!(schema, Schema::Record(_)), "{kind} is a record");
    }
}

#[test]
fn contact_changed_round_trips() {
    round_trip(&examples::contact_changed());
}

#[test]
fn company_changed_round_trips() {
    round_trip(&examples::company_changed());
}

#[test]
fn activity_recorded_round_trips() {
    round_trip(&examples::activity_recorded());
}

#[test]
fn hubspot_command_round_trips() {
    round_trip(&examples::hubspot_command());
}

#[test]
fn sync_outcome_round_trips() {
    round_trip(&examples::sync_outcome());
}

#[test]
fn dead_letter_round_trips() {
    round_trip(&examples::dead_letter());
}

#[test]
fn hubspot_change_round_trips() {
    round_trip(&examples::hubspot_change());
}

#[test]
fn sparse_values_round_trip() {
    let mut contact = examples::contact_changed();
    contact.actor = None;
    contact.email = None;
    contact.fields.clear();
    contact.changed_fields.clear();
    round_trip(&contact);

    let mut letter = examples::dead_letter();
    letter.event_id = None;
    letter.original_key = None;
    letter.original_value = Some(Vec::new());
    letter.original_headers.clear();
    letter.original_timestamp = None;
    round_trip(&letter);

    let mut activity = examples::activity_recorded();
    activity.activity_type = ActivityType::Unsubscribed;
    activity.unsubscribe_self_initiated = Some(false);
    activity.campaign = None;
    activity.sender = None;
    round_trip(&activity);
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut bytes = examples::company_changed().to_avro().expect("encodes");
    bytes.push(0);
    let error = hubsync_schemas::CompanyChanged::from_avro(&bytes).expect_err("trailing byte");
    assert!(error.to_string().contains("1 bytes left"), "{error}");
}

/// The enum symbols of the Avro enum named `name`, wherever it appears in `schema`.
fn enum_symbols(schema: &Schema, name: &str) -> Option<Vec<String>> {
    let json = serde_json::to_value(schema).expect("schema serializes");
    fn find(json: &serde_json::Value, name: &str) -> Option<Vec<String>> {
        match json {
            serde_json::Value::Object(map) => {
                if map.get("type").and_then(|t| t.as_str()) == Some("enum")
                    && map.get("name").and_then(|n| n.as_str()) == Some(name)
                {
                    let symbols = map.get("symbols")?.as_array()?;
                    return symbols
                        .iter()
                        .map(|s| s.as_str().map(str::to_owned))
                        .collect();
                }
                map.values().find_map(|v| find(v, name))
            }
            serde_json::Value::Array(items) => items.iter().find_map(|v| find(v, name)),
            _ => None,
        }
    }
    find(&json, name)
}

fn check_symbols(kinds: &[SchemaKind], name: &str, rust: Vec<&'static str>) {
    for kind in kinds {
        let schema = kind.parse().expect("schema parses");
        let symbols =
            enum_symbols(&schema, name).unwrap_or_else(|| panic!("{kind} defines enum {name}"));
        assert_eq!(symbols, rust, "{kind}: Rust enum {name} matches the schema");
    }
}

#[test]
fn rust_enums_match_schema_symbols_in_order() {
    use SchemaKind::*;
    let strs = |all: Vec<&'static str>| all;
    check_symbols(
        &[ContactChanged, CompanyChanged],
        "ChangeKind",
        strs(ChangeKind::ALL.iter().map(|v| v.as_str()).collect()),
    );
    check_symbols(
        &[ContactChanged, CompanyChanged, ActivityRecorded],
        "ActorKind",
        ActorKind::ALL.iter().map(|v| v.as_str()).collect(),
    );
    check_symbols(
        &[ActivityRecorded],
        "ActivityType",
        ActivityType::ALL.iter().map(|v| v.as_str()).collect(),
    );
    check_symbols(
        &[HubSpotCommand, SyncOutcome, HubSpotChange],
        "HubSpotObjectType",
        HubSpotObjectType::ALL.iter().map(|v| v.as_str()).collect(),
    );
    check_symbols(
        &[HubSpotCommand],
        "CommandAction",
        CommandAction::ALL.iter().map(|v| v.as_str()).collect(),
    );
    check_symbols(
        &[HubSpotCommand],
        "IdentityKind",
        IdentityKind::ALL.iter().map(|v| v.as_str()).collect(),
    );
    check_symbols(
        &[SyncOutcome],
        "OutcomeStatus",
        OutcomeStatus::ALL.iter().map(|v| v.as_str()).collect(),
    );
    check_symbols(
        &[DeadLetter],
        "ErrorClass",
        ErrorClass::ALL.iter().map(|v| v.as_str()).collect(),
    );
    check_symbols(
        &[HubSpotChange],
        "HubSpotChangeKind",
        HubSpotChangeKind::ALL.iter().map(|v| v.as_str()).collect(),
    );
}

/// Every enum in every schema has a default symbol, so adding a symbol never breaks an older
/// reader.
#[test]
fn every_enum_has_a_default_symbol() {
    fn walk(json: &serde_json::Value, kind: SchemaKind, found: &mut usize) {
        match json {
            serde_json::Value::Object(map) => {
                if map.get("type").and_then(|t| t.as_str()) == Some("enum") {
                    *found += 1;
                    let default = map.get("default").and_then(|d| d.as_str());
                    assert_eq!(
                        default,
                        Some("UNKNOWN"),
                        "{kind}: enum {:?}",
                        map.get("name")
                    );
                }
                map.values().for_each(|v| walk(v, kind, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, kind, found)),
            _ => {}
        }
    }
    for kind in SchemaKind::ALL {
        let json: serde_json::Value = serde_json::from_str(kind.source()).expect("valid json");
        let mut found = 0;
        walk(&json, kind, &mut found);
        assert!(found > 0, "{kind} has enums");
    }
}

#[test]
fn unknown_symbols_deserialize_to_unknown() {
    let parsed: ActivityType = serde_json::from_str("\"LINKEDIN_VOICE_NOTE_SENT\"").expect("other");
    assert_eq!(parsed, ActivityType::Unknown);
    assert_eq!(
        ActivityType::from_symbol("EMAIL_SENT"),
        ActivityType::EmailSent
    );
    assert_eq!(ActivityType::from_symbol("NOPE"), ActivityType::Unknown);
}

/// The ActivityRecorded schema of a newer producer that added the activity type
/// `LINKEDIN_VOICE_NOTE_SENT` (before UNKNOWN, as a producer would).
fn newer_activity_schema() -> Schema {
    let mut json: serde_json::Value =
        serde_json::from_str(SchemaKind::ActivityRecorded.source()).expect("valid json");
    let fields = json["fields"].as_array_mut().expect("fields");
    let activity_type = fields
        .iter_mut()
        .find(|f| f["name"] == "activity_type")
        .expect("activity_type field");
    let symbols = activity_type["type"]["symbols"]
        .as_array_mut()
        .expect("symbols");
    let unknown = symbols.len() - 1;
    symbols.insert(unknown, "LINKEDIN_VOICE_NOTE_SENT".into());
    Schema::parse_str(&json.to_string()).expect("newer schema parses")
}

#[test]
fn a_newer_activity_type_reads_as_unknown() {
    let writer = newer_activity_schema();
    let Schema::Record(record) = &writer else {
        panic!("record schema")
    };
    let field = &record.fields[record.lookup["activity_type"]];
    let Schema::Enum(EnumSchema { symbols, .. }) = &field.schema else {
        panic!("enum field")
    };
    let index = symbols
        .iter()
        .position(|s| s == "LINKEDIN_VOICE_NOTE_SENT")
        .expect("new symbol");

    // What the newer producer writes.
    let mut value = apache_avro::to_value(examples::activity_recorded())
        .and_then(|v| v.resolve(&writer))
        .expect("resolves to the newer schema");
    let Value::Record(fields) = &mut value else {
        panic!("record value")
    };
    for (name, field) in fields.iter_mut() {
        if name == "activity_type" {
            *field = Value::Enum(index as u32, "LINKEDIN_VOICE_NOTE_SENT".to_owned());
        }
        if name == "activity_type_name" {
            *field = Value::String("linkedin_voice_note".to_owned());
        }
    }
    let bytes = GenericDatumWriter::builder(&writer)
        .build()
        .and_then(|w| w.write_value_to_vec(value))
        .expect("newer producer encodes");

    // Read with this build's schema as reader schema.
    let reader_schema = SchemaKind::ActivityRecorded.parse().expect("schema parses");
    let resolved = GenericDatumReader::builder(&writer)
        .reader_schema(&reader_schema)
        .build()
        .and_then(|r| r.read_value(&mut bytes.as_slice()))
        .expect("resolves with our reader schema");
    let Value::Record(fields) = &resolved else {
        panic!("record value")
    };
    let activity_type = fields
        .iter()
        .find(|(name, _)| name == "activity_type")
        .map(|(_, v)| v);
    assert_eq!(
        activity_type,
        Some(&Value::Enum(14, "UNKNOWN".to_owned())),
        "the enum default applies"
    );

    let activity: ActivityRecorded =
        ActivityRecorded::from_avro_written_with(&writer, &bytes).expect("decodes");
    assert_eq!(activity.activity_type, ActivityType::Unknown);
    assert_eq!(activity.activity_type_name, "linkedin_voice_note");
    let mut expected = examples::activity_recorded();
    expected.activity_type = ActivityType::Unknown;
    expected.activity_type_name = "linkedin_voice_note".to_owned();
    assert_eq!(activity, expected);
}

/// An older producer's datum (a schema without `details` and `outcome`) reads with defaults.
#[test]
fn an_older_writer_without_optional_fields_reads_with_defaults() {
    let mut json: serde_json::Value =
        serde_json::from_str(SchemaKind::ActivityRecorded.source()).expect("valid json");
    json["fields"]
        .as_array_mut()
        .expect("fields")
        .retain(|f| f["name"] != "details" && f["name"] != "outcome");
    let older = Schema::parse_str(&json.to_string()).expect("older schema parses");

    let mut activity = examples::activity_recorded();
    activity.details.clear();
    activity.outcome = None;
    let value = apache_avro::to_value(&activity).expect("to value");
    let Value::Record(fields) = value else {
        panic!("record value")
    };
    let fields: Vec<(String, Value)> = fields
        .into_iter()
        .filter(|(name, _)| name != "details" && name != "outcome")
        .collect();
    let value = Value::Record(fields)
        .resolve(&older)
        .expect("resolves to older");
    let bytes = GenericDatumWriter::builder(&older)
        .build()
        .and_then(|w| w.write_value_to_vec(value))
        .expect("older producer encodes");

    let decoded = ActivityRecorded::from_avro_written_with(&older, &bytes).expect("decodes");
    assert_eq!(decoded, activity);
}
