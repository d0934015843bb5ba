//! The schema files follow the house rules that keep them evolvable: a `doc` on every record,
//! enum and field; optional fields are `["null", T]` with a null default; arrays and maps have
//! empty defaults; timestamps are `timestamp-millis` longs; everything lives in `io.hubsync`.

use hubsync_schemas::SchemaKind;
use serde_json::Value;

fn has_doc(json: &Value) -> bool {
    json.get("doc")
        .and_then(Value::as_str)
        .is_some_and(|doc| !doc.trim().is_empty())
}

fn check_named(kind: SchemaKind, json: &Value, problems: &mut Vec<String>) {
    let Some(map) = json.as_object() else { return };
    let name = map.get("name").and_then(Value::as_str).unwrap_or("?");
    let ty = map.get("type").and_then(Value::as_str);
    if matches!(ty, Some("record" | "enum")) && !has_doc(json) {
        problems.push(format!("{kind}: {} {name} has no doc", ty.unwrap_or("?")));
    }
    match ty {
        Some("record") => {
            let fields = map.get("fields").and_then(Value::as_array);
            for field in fields.into_iter().flatten() {
                check_field(kind, name, field, problems);
            }
        }
        Some("array") => check_type(kind, map.get("items").unwrap_or(&Value::Null), problems),
        Some("map") => check_type(kind, map.get("values").unwrap_or(&Value::Null), problems),
        _ => {}
    }
}

fn check_type(kind: SchemaKind, json: &Value, problems: &mut Vec<String>) {
    match json {
        Value::Array(branches) => branches.iter().for_each(|b| check_type(kind, b, problems)),
        Value::Object(_) => check_named(kind, json, problems),
        _ => {}
    }
}

fn check_field(kind: SchemaKind, record: &str, field: &Value, problems: &mut Vec<String>) {
    let name = field["name"].as_str().unwrap_or("?");
    let at = format!("{kind}: field {record}.{name}");
    if !has_doc(field) {
        problems.push(format!("{at} has no doc"));
    }
    let ty = &field["type"];
    match ty {
        Value::Array(branches) => {
            if branches.first() != Some(&Value::from("null")) || branches.len() != 2 {
                problems.push(format!("{at}: unions are [\"null\", T]"));
            }
            if field.get("default") != Some(&Value::Null) {
                problems.push(format!("{at}: optional fields default to null"));
            }
        }
        Value::Object(map) => match map.get("type").and_then(Value::as_str) {
            Some("array") if field.get("default") != Some(&serde_json::json!([])) => {
                problems.push(format!("{at}: arrays default to []"));
            }
            Some("map") if field.get("default") != Some(&serde_json::json!({})) => {
                problems.push(format!("{at}: maps default to {{}}"));
            }
            Some("long")
                if map.get("logicalType").and_then(Value::as_str) != Some("timestamp-millis") =>
            {
                problems.push(format!(
                    "{at}: only timestamp-millis carries a logical type"
                ));
            }
            _ => {}
        },
        _ => {}
    }
    if name.ends_with("_time") || name.ends_with("_at") || name.ends_with("_timestamp") {
        let logical =
            |v: &Value| v.get("logicalType").and_then(Value::as_str) == Some("timestamp-millis");
        let is_timestamp = match ty {
            Value::Array(branches) => branches.iter().any(logical),
            other => logical(other),
        };
        if !is_timestamp {
            problems.push(format!("{at}: timestamps are timestamp-millis longs"));
        }
    }
    check_type(kind, ty, problems);
}

#[test]
fn every_schema_follows_the_conventions() {
    let mut problems = Vec::new();
    for kind in SchemaKind::ALL {
        let json: Value = serde_json::from_str(kind.source()).expect("valid json");
        assert_eq!(json["namespace"], "io.hubsync", "{kind}");
        assert_eq!(json["name"], kind.name(), "{kind}");
        check_named(kind, &json, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
