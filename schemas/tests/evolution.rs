//! Schema evolution guard: every schema is BACKWARD compatible with each of its released
//! versions in `history/<Name>/vN.avsc`, and the current file is one of those releases, so a
//! schema edit cannot land without a new snapshot that passes the check.

use std::path::PathBuf;

use apache_avro::Schema;
use hubsync_schemas::{Incompatible, SchemaKind, check_can_read};

/// The released versions of `kind`, oldest first, as (version, text).
fn history(kind: SchemaKind) -> Vec<(u32, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("history")
        .join(kind.name());
    let mut versions: Vec<(u32, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; every schema needs history/{kind}/v1.avsc",
                dir.display()
            )
        })
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let version = file
                .strip_prefix('v')
                .and_then(|rest| rest.strip_suffix(".avsc"))
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or_else(|| panic!("{}: history files are named vN.avsc", path.display()));
            let text = std::fs::read_to_string(&path).expect("readable snapshot");
            (version, text)
        })
        .collect();
    versions.sort_by_key(|(version, _)| *version);
    versions
}

fn parse(kind: SchemaKind, version: u32, text: &str) -> Schema {
    Schema::parse_str(text).unwrap_or_else(|e| panic!("history/{kind}/v{version}.avsc: {e}"))
}

#[test]
fn history_versions_are_numbered_from_one_without_gaps() {
    for kind in SchemaKind::ALL {
        let numbers: Vec<u32> = history(kind).into_iter().map(|(v, _)| v).collect();
        let expected: Vec<u32> = (1..=numbers.len() as u32).collect();
        assert_eq!(numbers, expected, "history/{kind}");
    }
}

/// (a) Data written with any released version reads with the current schema.
#[test]
fn current_schemas_read_every_released_version() {
    for kind in SchemaKind::ALL {
        let current = kind.parse().expect("current schema parses");
        for (version, text) in history(kind) {
            let writer = parse(kind, version, &text);
            if let Err(problem) = check_can_read(&writer, &current) {
                panic!("{kind}.avsc cannot read data written with history v{version}: {problem}");
            }
        }
    }
}

/// (b) The current file is the newest release: editing a schema means adding `vN+1.avsc`.
#[test]
fn current_schema_is_its_newest_snapshot() {
    for kind in SchemaKind::ALL {
        let (version, text) = history(kind).pop().expect("at least v1");
        let current = kind.parse().expect("current schema parses");
        let newest = parse(kind, version, &text);
        let hint = format!(
            "schemas/{kind}.avsc differs from history/{kind}/v{version}.avsc: copy it to \
             history/{kind}/v{}.avsc (and keep it compatible)",
            version + 1
        );
        assert_eq!(current.canonical_form(), newest.canonical_form(), "{hint}");
        // Docs and defaults are outside the canonical form but part of the contract.
        let as_json = |schema: &Schema| serde_json::to_value(schema).expect("schema serializes");
        assert_eq!(as_json(&current), as_json(&newest), "{hint}");
    }
}

fn with_fields(kind: SchemaKind, edit: impl FnOnce(&mut Vec<serde_json::Value>)) -> Schema {
    let mut json: serde_json::Value = serde_json::from_str(kind.source()).expect("valid json");
    edit(json["fields"].as_array_mut().expect("fields"));
    Schema::parse_str(&json.to_string()).expect("edited schema parses")
}

/// (c) The check does fail: a new field without a default cannot be filled from old data.
#[test]
fn a_required_field_without_default_is_incompatible() {
    let released = SchemaKind::ContactChanged.parse().expect("schema parses");
    let edited = with_fields(SchemaKind::ContactChanged, |fields| {
        fields
            .push(serde_json::json!({"name": "region", "type": "string", "doc": "Sales region."}));
    });
    assert!(matches!(
        check_can_read(&released, &edited),
        Err(Incompatible::Never(_))
    ));

    // The same field with a default is fine.
    let with_default = with_fields(SchemaKind::ContactChanged, |fields| {
        fields.push(serde_json::json!({
            "name": "region", "type": ["null", "string"], "default": null, "doc": "Sales region."
        }));
    });
    assert_eq!(check_can_read(&released, &with_default), Ok(()));
}

#[test]
fn a_changed_field_type_is_incompatible() {
    let released = SchemaKind::SyncOutcome.parse().expect("schema parses");
    let edited = with_fields(SchemaKind::SyncOutcome, |fields| {
        for field in fields.iter_mut() {
            if field["name"] == "source_offset" {
                field["type"] = "int".into();
            }
        }
    });
    assert!(check_can_read(&released, &edited).is_err());
}

#[test]
fn an_extra_union_branch_in_the_writer_is_only_partially_readable() {
    let released = SchemaKind::HubSpotChange.parse().expect("schema parses");
    let writer = with_fields(SchemaKind::HubSpotChange, |fields| {
        for field in fields.iter_mut() {
            if field["name"] == "property_value" {
                field["type"] = serde_json::json!(["null", "string", "long"]);
            }
        }
    });
    assert_eq!(
        check_can_read(&writer, &released),
        Err(Incompatible::Partially)
    );
}

#[test]
fn a_new_enum_symbol_is_compatible_thanks_to_the_default() {
    let released = SchemaKind::SyncOutcome.parse().expect("schema parses");
    let mut json: serde_json::Value =
        serde_json::from_str(SchemaKind::SyncOutcome.source()).expect("valid json");
    for field in json["fields"].as_array_mut().expect("fields") {
        if field["name"] == "status" {
            let symbols = field["type"]["symbols"].as_array_mut().expect("symbols");
            symbols.insert(0, "SUPERSEDED".into());
        }
    }
    let newer = Schema::parse_str(&json.to_string()).expect("newer parses");
    assert_eq!(check_can_read(&newer, &released), Ok(()));
}
