//! Every rewrite is checked against apache-avro's own resolution (decode with the writer schema,
//! resolve the value to the reader schema): both must read as the same value.

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use hubsync_schemas::{
    ActivityRecorded, ActivityType, AvroRecord, ContactChanged, SchemaKind, examples,
};
use serde_json::{Value as Json, json};

use super::*;

fn parse(json: &Json) -> Schema {
    Schema::parse_str(&json.to_string()).expect("test schema parses")
}

fn schema_json(kind: SchemaKind) -> Json {
    serde_json::from_str(kind.source()).expect("embedded schema is JSON")
}

fn fields_of(json: &mut Json) -> &mut Vec<Json> {
    json["fields"].as_array_mut().expect("a record schema")
}

fn encode(schema: &Schema, value: Value) -> Vec<u8> {
    GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(value))
        .expect("value fits its schema")
}

fn read(schema: &Schema, mut bytes: &[u8]) -> Value {
    let value = GenericDatumReader::builder(schema)
        .build()
        .and_then(|r| r.read_value(&mut bytes))
        .expect("datum reads");
    assert!(bytes.is_empty(), "{} bytes left", bytes.len());
    value
}

fn rewrite(writer: &Schema, reader: &Schema, datum: &[u8]) -> Result<Vec<u8>, RewriteError> {
    let resolution = Resolution::compile(writer, reader).expect("schemas resolve");
    let mut out = Vec::new();
    resolution.rewrite(datum, &mut out).map(|()| out)
}

/// The rewritten datum reads, with the reader schema, as apache-avro's resolution of it.
fn check(writer: &Schema, reader: &Schema, datum: &[u8]) -> Vec<u8> {
    let rewritten = rewrite(writer, reader, datum).expect("datum rewrites");
    let mut rest = datum;
    let expected = GenericDatumReader::builder(writer)
        .reader_schema(reader)
        .build()
        .and_then(|r| r.read_value(&mut rest))
        .expect("apache-avro resolves the datum");
    assert_eq!(read(reader, &rewritten), expected);
    rewritten
}

/// A record value with some fields dropped, others added, in the writer's field order.
fn reshape(value: &Value, writer: &Json, extra: &[(&str, Value)]) -> Value {
    let Value::Record(fields) = value else {
        panic!("a record value");
    };
    let names: Vec<&str> = writer["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["name"].as_str().expect("field name"))
        .collect();
    let fields = names
        .iter()
        .map(|name| {
            let found = fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| {
                    extra
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                })
                .unwrap_or_else(|| panic!("no value for {name}"));
            ((*name).to_owned(), found)
        })
        .collect();
    Value::Record(fields)
}

fn contact_value() -> Value {
    let reader = SchemaKind::ContactChanged.schema().unwrap();
    read(reader, &examples::contact_changed().to_avro().unwrap())
}

fn decode_as<T: AvroRecord>(bytes: &[u8]) -> T {
    T::from_avro(bytes).expect("rewritten datum reads as the record type")
}

#[test]
fn the_same_schema_is_an_identity() {
    let schema = SchemaKind::ContactChanged.schema().unwrap();
    assert!(Resolution::compile(schema, schema).unwrap().is_identity());
    // Docs and defaults do not change the encoding.
    let mut json = schema_json(SchemaKind::ContactChanged);
    json["doc"] = "Changed doc.".into();
    fields_of(&mut json)[0]["doc"] = "Changed too.".into();
    let redocumented = parse(&json);
    assert!(
        Resolution::compile(&redocumented, schema)
            .unwrap()
            .is_identity()
    );
}

#[test]
fn an_older_writer_gets_the_readers_defaults() {
    let reader = SchemaKind::ContactChanged.schema().unwrap();
    let mut json = schema_json(SchemaKind::ContactChanged);
    fields_of(&mut json).retain(|f| {
        !matches!(
            f["name"].as_str(),
            Some("phone" | "fields" | "changed_fields")
        )
    });
    let writer = parse(&json);
    let datum = encode(&writer, reshape(&contact_value(), &json, &[]));

    let resolution = Resolution::compile(&writer, reader).unwrap();
    assert!(!resolution.is_identity());
    let rewritten = check(&writer, reader, &datum);
    let expected = ContactChanged {
        phone: None,
        fields: Default::default(),
        changed_fields: Vec::new(),
        ..examples::contact_changed()
    };
    assert_eq!(decode_as::<ContactChanged>(&rewritten), expected);
}

#[test]
fn a_newer_writers_extra_fields_are_skipped() {
    let reader = SchemaKind::ContactChanged.schema().unwrap();
    let mut json = schema_json(SchemaKind::ContactChanged);
    let fields = fields_of(&mut json);
    fields.insert(
        0,
        json!({"name": "score", "type": {"type": "record", "name": "Score", "fields": [
            {"name": "value", "type": "long"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "flag", "type": ["null", "boolean", "double"]}
        ]}}),
    );
    fields.insert(6, json!({"name": "region", "type": "string"}));
    fields.push(json!({"name": "history", "type": {"type": "map", "values": {"type": "array", "items": "int"}}}));
    fields.push(json!({"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}}));
    let writer = parse(&json);
    let score = Value::Record(vec![
        ("value".into(), Value::Long(-42)),
        (
            "tags".into(),
            Value::Array(vec![Value::String("a".into()), Value::String("bc".into())]),
        ),
        ("flag".into(), Value::Union(2, Box::new(Value::Double(0.5)))),
    ]);
    let history = Value::Map(
        [(
            "k".to_owned(),
            Value::Array(vec![Value::Int(1), Value::Int(-300)]),
        )]
        .into(),
    );
    let value = reshape(
        &contact_value(),
        &json,
        &[
            ("score", score),
            ("region", Value::String("EMEA".into())),
            ("history", history),
            ("hash", Value::Fixed(4, vec![1, 2, 3, 4])),
        ],
    );
    let datum = encode(&writer, value);
    let rewritten = check(&writer, reader, &datum);
    assert_eq!(
        decode_as::<ContactChanged>(&rewritten),
        examples::contact_changed()
    );
}

#[test]
fn fields_in_another_order_are_put_in_the_readers_order() {
    let reader = SchemaKind::ContactChanged.schema().unwrap();
    let mut json = schema_json(SchemaKind::ContactChanged);
    fields_of(&mut json).reverse();
    // And one the reader has a default for is missing.
    fields_of(&mut json).retain(|f| f["name"] != "job_title");
    let writer = parse(&json);
    let datum = encode(&writer, reshape(&contact_value(), &json, &[]));
    let rewritten = check(&writer, reader, &datum);
    let expected = ContactChanged {
        job_title: None,
        ..examples::contact_changed()
    };
    assert_eq!(decode_as::<ContactChanged>(&rewritten), expected);
}

/// ActivityRecorded's schema with `symbol` added to ActivityType at `at`.
fn activity_with_symbol(symbol: &str, at: usize) -> (Json, Schema) {
    let mut json = schema_json(SchemaKind::ActivityRecorded);
    for field in fields_of(&mut json) {
        if field["name"] == "activity_type" {
            let symbols = field["type"]["symbols"].as_array_mut().unwrap();
            symbols.insert(at, symbol.into());
        }
    }
    let schema = parse(&json);
    (json, schema)
}

fn activity_value() -> Value {
    let reader = SchemaKind::ActivityRecorded.schema().unwrap();
    read(reader, &examples::activity_recorded().to_avro().unwrap())
}

fn with_field(value: &Value, name: &str, new: Value) -> Value {
    let Value::Record(fields) = value else {
        panic!("a record value");
    };
    let fields = fields
        .iter()
        .map(|(n, v)| (n.clone(), if n == name { new.clone() } else { v.clone() }))
        .collect();
    Value::Record(fields)
}

#[test]
fn new_enum_symbols_read_as_the_default_and_known_ones_are_renumbered() {
    let reader = SchemaKind::ActivityRecorded.schema().unwrap();
    let (_, writer) = activity_with_symbol("WHATSAPP_SENT", 0);

    let new_symbol = with_field(
        &activity_value(),
        "activity_type",
        Value::Enum(0, "WHATSAPP_SENT".into()),
    );
    let rewritten = check(&writer, reader, &encode(&writer, new_symbol));
    let decoded = decode_as::<ActivityRecorded>(&rewritten);
    assert_eq!(decoded.activity_type, ActivityType::Unknown);

    let known = with_field(
        &activity_value(),
        "activity_type",
        Value::Enum(2, "EMAIL_OPENED".into()),
    );
    let rewritten = check(&writer, reader, &encode(&writer, known));
    assert_eq!(
        decode_as::<ActivityRecorded>(&rewritten).activity_type,
        ActivityType::EmailOpened
    );
}

#[test]
fn an_enum_without_default_fails_only_for_the_unknown_symbol() {
    let writer = parse(&json!({"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}));
    let reader = parse(&json!({"type": "enum", "name": "E", "symbols": ["C", "A"]}));
    assert_eq!(
        rewrite(&writer, &reader, &[0]).unwrap(),
        [2],
        "A is index 1 for the reader"
    );
    let error = rewrite(&writer, &reader, &[2]).unwrap_err();
    assert!(
        matches!(&error, RewriteError::Unreadable(why) if why.contains("symbol B")),
        "{error:?}"
    );
    assert!(matches!(
        rewrite(&writer, &reader, &[6]),
        Err(RewriteError::Malformed(_))
    ));
}

#[test]
fn numbers_are_promoted() {
    let writer = parse(&json!({"type": "record", "name": "N", "fields": [
        {"name": "a", "type": "int"},
        {"name": "b", "type": "int"},
        {"name": "c", "type": "long"},
        {"name": "d", "type": "long"},
        {"name": "e", "type": "float"},
        {"name": "f", "type": "int"},
        {"name": "g", "type": "string"},
        {"name": "h", "type": "bytes"},
        {"name": "i", "type": ["null", "int"]},
    ]}));
    let reader = parse(&json!({"type": "record", "name": "N", "fields": [
        {"name": "a", "type": "long"},
        {"name": "b", "type": "float"},
        {"name": "c", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "e", "type": "double"},
        {"name": "f", "type": "double"},
        {"name": "g", "type": "bytes"},
        {"name": "h", "type": "string"},
        {"name": "i", "type": ["null", "string", "long"]},
    ]}));
    let value = Value::Record(vec![
        ("a".into(), Value::Int(-70_000)),
        ("b".into(), Value::Int(16_777_217)),
        ("c".into(), Value::Long(1 << 40)),
        ("d".into(), Value::Long(-(1 << 53) - 1)),
        ("e".into(), Value::Float(0.1)),
        ("f".into(), Value::Int(i32::MIN)),
        ("g".into(), Value::String("text".into())),
        ("h".into(), Value::Bytes(b"bytes".to_vec())),
        ("i".into(), Value::Union(1, Box::new(Value::Int(7)))),
    ]);
    let datum = encode(&writer, value);
    let rewritten = check(&writer, &reader, &datum);
    let Value::Record(fields) = read(&reader, &rewritten) else {
        panic!("a record");
    };
    assert_eq!(fields[1].1, Value::Float(16_777_217_i32 as f32));
    assert_eq!(fields[8].1, Value::Union(2, Box::new(Value::Long(7))));
}

#[test]
fn union_branches_are_renumbered_and_plain_values_enter_unions() {
    let reader = SchemaKind::ContactChanged.schema().unwrap();
    let mut json = schema_json(SchemaKind::ContactChanged);
    for field in fields_of(&mut json) {
        match field["name"].as_str() {
            // Always set by this producer.
            Some("email") => {
                field["type"] = "string".into();
                field.as_object_mut().unwrap().remove("default");
            }
            // Branches in the other order.
            Some("first_name") => {
                field["type"] = json!(["string", "null"]);
                field["default"] = "".into();
            }
            _ => {}
        }
    }
    let writer = parse(&json);
    let value = reshape(&contact_value(), &json, &[]);
    let value = with_field(
        &value,
        "email",
        Value::String("jordan.lee@northwind.example".into()),
    );
    let value = with_field(
        &value,
        "first_name",
        Value::Union(0, Box::new(Value::String("Jordan".into()))),
    );
    let rewritten = check(&writer, reader, &encode(&writer, value.clone()));
    assert_eq!(
        decode_as::<ContactChanged>(&rewritten),
        examples::contact_changed()
    );
    let cleared = with_field(&value, "first_name", Value::Union(1, Box::new(Value::Null)));
    let rewritten = check(&writer, reader, &encode(&writer, cleared));
    assert_eq!(decode_as::<ContactChanged>(&rewritten).first_name, None);
}

#[test]
fn a_writer_union_branch_the_reader_lacks_fails_only_when_used() {
    let writer = parse(&json!(["null", "string", "boolean"]));
    let reader = parse(&json!(["null", "string"]));
    assert_eq!(
        rewrite(&writer, &reader, &[2, 2, b'a']).unwrap(),
        [2, 2, b'a']
    );
    let error = rewrite(&writer, &reader, &[4, 1]).unwrap_err();
    assert!(
        matches!(&error, RewriteError::Unreadable(why) if why.contains("boolean")),
        "{error:?}"
    );

    // A union read as a plain value: only the branch of that type reads.
    let reader = parse(&json!("string"));
    assert_eq!(rewrite(&writer, &reader, &[2, 2, b'a']).unwrap(), [2, b'a']);
    assert!(matches!(
        rewrite(&writer, &reader, &[0]),
        Err(RewriteError::Unreadable(_))
    ));
}

#[test]
fn reader_field_aliases_take_a_renamed_writer_field() {
    let writer = parse(&json!({"type": "record", "name": "Old", "fields": [
        {"name": "mail", "type": "string"},
    ]}));
    let reader = parse(
        &json!({"type": "record", "name": "New", "aliases": ["Old"], "fields": [
            {"name": "email", "aliases": ["mail"], "type": "string"},
        ]}),
    );
    let datum = encode(
        &writer,
        Value::Record(vec![("mail".into(), Value::String("a@b".into()))]),
    );
    let resolution = Resolution::compile(&writer, &reader).unwrap();
    assert!(resolution.is_identity());
    let rewritten = rewrite(&writer, &reader, &datum).unwrap();
    assert_eq!(
        read(&reader, &rewritten),
        Value::Record(vec![("email".into(), Value::String("a@b".into()))])
    );
}

#[test]
fn defaults_of_every_type_are_encoded() {
    let writer = parse(&json!({"type": "record", "name": "R", "fields": [
        {"name": "kept", "type": "string"},
    ]}));
    let reader = parse(&json!({"type": "record", "name": "R", "fields": [
        {"name": "b", "type": "boolean", "default": true},
        {"name": "kept", "type": "string"},
        {"name": "i", "type": "int", "default": -5},
        {"name": "l", "type": "long", "default": 1_234_567_890_123_i64},
        {"name": "f", "type": "float", "default": 1.5},
        {"name": "d", "type": "double", "default": -2.25},
        {"name": "s", "type": "string", "default": "dflt"},
        {"name": "by", "type": "bytes", "default": "\u{0000}x"},
        {"name": "fx", "type": {"type": "fixed", "name": "F2", "size": 2}, "default": "ab"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}, "default": "Y"},
        {"name": "a", "type": {"type": "array", "items": "long"}, "default": [1, 2, 3]},
        {"name": "m", "type": {"type": "map", "values": "string"}, "default": {"k": "v"}},
        {"name": "r", "type": {"type": "record", "name": "Inner", "fields": [
            {"name": "x", "type": "int"},
            {"name": "y", "type": "string", "default": "why"},
        ]}, "default": {"x": 9}},
        {"name": "u", "type": ["long", "null"], "default": 4},
        {"name": "n", "type": ["null", "string"], "default": null},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}, "default": 0},
        {"name": "again", "type": "Inner", "default": {"x": 1, "y": "z"}},
    ]}));
    let datum = encode(
        &writer,
        Value::Record(vec![("kept".into(), Value::String("here".into()))]),
    );
    check(&writer, &reader, &datum);

    // Bytes defaults map code points 0-255 to bytes, as the specification says (apache-avro
    // takes the UTF-8 encoding instead, so this one is checked on its own).
    let reader = parse(&json!({"type": "record", "name": "R", "fields": [
        {"name": "kept", "type": "string"},
        {"name": "by", "type": "bytes", "default": "\u{00ff}\u{0001}"},
    ]}));
    let rewritten = rewrite(&writer, &reader, &datum).unwrap();
    assert_eq!(rewritten[rewritten.len() - 3..], [4, 0xff, 0x01]);
}

#[test]
fn recursive_schemas_resolve() {
    let writer = parse(&json!({"type": "record", "name": "Node", "fields": [
        {"name": "label", "type": "string"},
        {"name": "weight", "type": "int"},
        {"name": "next", "type": ["null", "Node"]},
    ]}));
    let reader = parse(&json!({"type": "record", "name": "Node", "fields": [
        {"name": "label", "type": "string"},
        {"name": "next", "type": ["null", "Node"], "default": null},
        {"name": "weight", "type": "long"},
        {"name": "color", "type": "string", "default": "red"},
    ]}));
    let node = |label: &str, next: Option<Value>| {
        Value::Record(vec![
            ("label".into(), Value::String(label.into())),
            ("weight".into(), Value::Int(label.len() as i32)),
            (
                "next".into(),
                match next {
                    None => Value::Union(0, Box::new(Value::Null)),
                    Some(next) => Value::Union(1, Box::new(next)),
                },
            ),
        ])
    };
    let list = node("a", Some(node("bb", Some(node("ccc", None)))));
    check(&writer, &reader, &encode(&writer, list));

    // A writer-only recursive field is skipped.
    let reader = parse(&json!({"type": "record", "name": "Node", "fields": [
        {"name": "label", "type": "string"},
    ]}));
    let list = node("a", Some(node("bb", None)));
    check(&writer, &reader, &encode(&writer, list));
}

/// Found by the differential property test: a record pair refused inside a writer union branch
/// (where it only makes that branch unreadable) was left half compiled, so a later use of the
/// same pair outside a union compiled, and then refused every datum as malformed.
#[test]
fn a_record_refused_in_a_union_branch_is_refused_where_it_is_used_again() {
    let schema = |x: &str, later: Json| {
        parse(&json!({"type": "record", "name": "Top", "fields": [
            {"name": "first", "type": ["null", {"type": "record", "name": "Inner", "fields": [
                {"name": "x", "type": x},
            ]}]},
            {"name": "again", "type": later},
        ]}))
    };
    let writer = schema("int", json!("Inner"));
    let reader = schema("string", json!("Inner"));
    let error = Resolution::compile(&writer, &reader).unwrap_err();
    assert!(error.contains("field x"), "{error}");

    // Used again inside a union, it only makes that branch unreadable there too.
    let writer = schema("int", json!(["null", "Inner"]));
    let reader = schema("string", json!(["null", "Inner"]));
    assert_eq!(rewrite(&writer, &reader, &[0, 0]).unwrap(), [0, 0]);
    assert!(matches!(
        rewrite(&writer, &reader, &[0, 2, 4]),
        Err(RewriteError::Unreadable(_))
    ));
}

/// The same, through a record compiled while the refused one was being compiled: `Middle`
/// refers back to `Inner` inside a union, so it compiled taking `Inner` for readable. Used
/// again on its own, its branch holding `Inner` is unreadable, not half compiled.
#[test]
fn records_compiled_inside_a_refused_record_are_compiled_again() {
    let schema = |x: &str| {
        parse(&json!({"type": "record", "name": "Top", "fields": [
            {"name": "first", "type": ["null", {"type": "record", "name": "Inner", "fields": [
                {"name": "x", "type": x},
                {"name": "middle", "type": {"type": "record", "name": "Middle", "fields": [
                    {"name": "back", "type": ["null", "Inner"]},
                ]}},
            ]}]},
            {"name": "again", "type": "Middle"},
        ]}))
    };
    let (writer, reader) = (schema("int"), schema("string"));
    let resolution = Resolution::compile(&writer, &reader).unwrap();
    let mut out = Vec::new();
    // first: null; again.back: null.
    resolution.rewrite(&[0, 0], &mut out).unwrap();
    assert_eq!(out, [0, 0]);
    // first: null; again.back: an Inner {x: 1, middle: {back: null}}.
    let error = resolution.rewrite(&[0, 2, 2, 0], &mut out).unwrap_err();
    assert!(
        matches!(&error, RewriteError::Unreadable(why) if why.contains("field x")),
        "{error:?}"
    );
}

#[test]
fn blocks_with_negative_counts_are_read() {
    let writer = parse(&json!({"type": "array", "items": "int"}));
    let reader = parse(&json!({"type": "array", "items": "long"}));
    let promoted = parse(&json!({"type": "array", "items": "double"}));
    // Two blocks: -2 items in 2 bytes (1, 2), then 1 item (3), then the end.
    let datum = [3, 4, 2, 4, 2, 6, 0];
    assert_eq!(rewrite(&writer, &reader, &datum).unwrap(), datum);
    let rewritten = rewrite(&writer, &promoted, &datum).unwrap();
    assert_eq!(
        read(&promoted, &rewritten),
        Value::Array(vec![
            Value::Double(1.0),
            Value::Double(2.0),
            Value::Double(3.0)
        ])
    );
    let map_writer = parse(&json!({"type": "map", "values": "int"}));
    let map_reader = parse(&json!({"type": "map", "values": "float"}));
    let datum = [1, 6, 2, b'k', 4, 0];
    let rewritten = rewrite(&map_writer, &map_reader, &datum).unwrap();
    assert_eq!(
        read(&map_reader, &rewritten),
        Value::Map([("k".to_owned(), Value::Float(2.0))].into())
    );
}

/// Found by the differential property test: decimals were resolved as their underlying bytes
/// whatever their precision and scale, so a datum written as decimal(4, 2) was read as
/// decimal(4, 3), one tenth of its value. The specification lets two decimals match only with
/// the same precision and scale.
#[test]
fn decimals_match_only_with_the_same_precision_and_scale() {
    let decimal = |precision: u32, scale: u32| {
        let mut schema = json!({"type": "bytes", "logicalType": "decimal"});
        schema["precision"] = precision.into();
        schema["scale"] = scale.into();
        schema
    };
    let record = |field: Json| {
        parse(&json!({"type": "record", "name": "R", "fields": [{"name": "d", "type": field}]}))
    };
    let writer = record(decimal(4, 2));
    for reader in [decimal(4, 3), decimal(6, 2)] {
        let error = Resolution::compile(&writer, &record(reader)).unwrap_err();
        assert!(error.contains("decimal(4, 2)"), "{error}");
    }
    // The same decimal, or its bytes (which apache-avro's resolution refuses), still read.
    for reader in [decimal(4, 2), json!(["null", decimal(4, 2)])] {
        check(&writer, &record(reader), &[4, 0x04, 0xd2]);
    }
    let bytes = record(json!("bytes"));
    assert_eq!(
        read(&bytes, &rewrite(&writer, &bytes, &[4, 0x04, 0xd2]).unwrap()),
        Value::Record(vec![("d".into(), Value::Bytes(vec![0x04, 0xd2]))])
    );
    // In a union, only the branch holding the other decimal is refused.
    let writer = record(json!(["null", decimal(4, 2)]));
    let reader = record(json!(["null", decimal(4, 3)]));
    assert_eq!(rewrite(&writer, &reader, &[0]).unwrap(), [0]);
    assert!(matches!(
        rewrite(&writer, &reader, &[2, 2, 0x01]),
        Err(RewriteError::Unreadable(_))
    ));
}

#[test]
fn what_cannot_be_resolved_says_why() {
    let contact = SchemaKind::ContactChanged.schema().unwrap();
    let company = SchemaKind::CompanyChanged.schema().unwrap();
    let error = Resolution::compile(company, contact).unwrap_err();
    assert!(error.contains("CompanyChanged"), "{error}");

    let writer = parse(&json!({"type": "record", "name": "R", "fields": []}));
    let reader = parse(&json!({"type": "record", "name": "R", "fields": [
        {"name": "needed", "type": "string"}
    ]}));
    let error = Resolution::compile(&writer, &reader).unwrap_err();
    assert!(
        error.contains("needed") && error.contains("no default"),
        "{error}"
    );

    let writer = parse(&json!({"type": "record", "name": "R", "fields": [
        {"name": "n", "type": "string"}
    ]}));
    let reader = parse(&json!({"type": "record", "name": "R", "fields": [
        {"name": "n", "type": "int"}
    ]}));
    let error = Resolution::compile(&writer, &reader).unwrap_err();
    assert!(
        error.contains("field n") && error.contains("string"),
        "{error}"
    );

    let error = Resolution::compile(
        &parse(&json!({"type": "fixed", "name": "F", "size": 4})),
        &parse(&json!({"type": "fixed", "name": "F", "size": 8})),
    )
    .unwrap_err();
    assert!(error.contains("4 bytes"), "{error}");

    let error = Resolution::compile(
        &parse(&json!(["boolean", "double"])),
        &parse(&json!("string")),
    )
    .unwrap_err();
    assert!(error.contains("no branch"), "{error}");
}

#[test]
fn malformed_bytes_are_refused() {
    let reader = SchemaKind::ContactChanged.schema().unwrap();
    let mut json = schema_json(SchemaKind::ContactChanged);
    fields_of(&mut json).retain(|f| f["name"] != "changed_fields");
    let writer = parse(&json);
    let datum = encode(&writer, reshape(&contact_value(), &json, &[]));
    let resolution = Resolution::compile(&writer, reader).unwrap();
    let mut out = Vec::new();

    for cut in [0, 1, 10, datum.len() / 2, datum.len() - 1] {
        out.clear();
        assert!(
            matches!(
                resolution.rewrite(&datum[..cut], &mut out),
                Err(RewriteError::Malformed(_))
            ),
            "cut at {cut}"
        );
    }
    let mut longer = datum.clone();
    longer.push(0);
    let error = resolution.rewrite(&longer, &mut out).unwrap_err();
    assert!(error.to_string().contains("1 bytes left"), "{error}");

    // A length far beyond the input.
    let strings = parse(&json!("string"));
    let resolution = Resolution::compile(&strings, &parse(&json!("bytes"))).unwrap();
    let error = resolution.rewrite(&[0xfe, 0xff, 0xff, 0xff, 0x0f], &mut out);
    assert!(
        matches!(error, Err(RewriteError::Malformed(_))),
        "{error:?}"
    );
    // A number longer than ten bytes.
    let longs = Resolution::compile(&parse(&json!("long")), &parse(&json!("double"))).unwrap();
    let error = longs.rewrite(&[0xff; 11], &mut out);
    assert!(
        matches!(error, Err(RewriteError::Malformed(_))),
        "{error:?}"
    );
    // Billions of empty items in a few bytes.
    let nulls = Resolution::compile(
        &parse(&json!({"type": "array", "items": "null"})),
        &parse(&json!({"type": "array", "items": ["null", "string"]})),
    )
    .unwrap();
    let error = nulls.rewrite(&[0xfe, 0xff, 0xff, 0xff, 0x0f, 0], &mut out);
    assert!(
        matches!(error, Err(RewriteError::Malformed(_))),
        "{error:?}"
    );
}

#[test]
fn varints_round_trip() {
    for value in [
        0,
        1,
        -1,
        63,
        -64,
        64,
        i64::from(i32::MAX),
        i64::MIN,
        i64::MAX,
    ] {
        let mut out = Vec::new();
        write_long(&mut out, value);
        let mut cursor = Cursor {
            bytes: &out,
            pos: 0,
            items_left: 0,
        };
        assert_eq!(cursor.long().unwrap(), value);
        assert_eq!(cursor.pos, out.len());
    }
}
