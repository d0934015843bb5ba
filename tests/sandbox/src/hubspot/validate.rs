//! Property value validation as strict as HubSpot's: unknown and read-only properties, exact
//! enumeration options, emails, numbers, booleans, dates at midnight UTC, datetimes, owner ids.
//! Accepted values are returned in the form HubSpot stores and echoes back.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Timelike};
use serde_json::Value;

use super::errors::PropertyError;
use super::model::{PropertyDef, PropertyType};

/// Validates every property of one write; all failures are reported together, as HubSpot does.
pub fn validate_properties(
    defs: &BTreeMap<String, PropertyDef>,
    owner_ids: &[String],
    input: &serde_json::Map<String, Value>,
) -> Result<BTreeMap<String, String>, Vec<PropertyError>> {
    let mut accepted = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, raw) in input {
        let Some(def) = defs.get(name) else {
            errors.push(PropertyError::new(
                name,
                "PROPERTY_DOESNT_EXIST",
                format!("Property \"{name}\" does not exist"),
            ));
            continue;
        };
        if def.read_only {
            errors.push(PropertyError::new(
                name,
                "READ_ONLY_VALUE",
                format!("{name} is a read only property; its value cannot be set."),
            ));
            continue;
        }
        let text = match raw {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Array(_) | Value::Object(_) => {
                errors.push(PropertyError::new(
                    name,
                    "INVALID_PROPERTY_VALUE",
                    format!("{raw} is not a valid value for {name}: values must be strings"),
                ));
                continue;
            }
        };
        match validate_value(def, owner_ids, &text) {
            Ok(value) => {
                accepted.insert(name.clone(), value);
            }
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(accepted)
    } else {
        Err(errors)
    }
}

/// One value; an empty string always clears the property and is always accepted.
pub fn validate_value(
    def: &PropertyDef,
    owner_ids: &[String],
    value: &str,
) -> Result<String, PropertyError> {
    if value.is_empty() {
        return Ok(String::new());
    }
    let name = def.name.as_str();
    if def.owner_reference {
        return if owner_ids.iter().any(|id| id == value) {
            Ok(value.to_string())
        } else {
            Err(PropertyError::new(
                name,
                "INVALID_OWNER_ID",
                format!("{value} is not a valid owner id"),
            ))
        };
    }
    if name == "email" {
        return normalize_email(value).ok_or_else(|| {
            PropertyError::new(
                name,
                "INVALID_EMAIL",
                format!("Email address {value} is invalid"),
            )
        });
    }
    match def.kind {
        PropertyType::String | PropertyType::PhoneNumber => {
            if value.chars().count() > 65_536 {
                Err(PropertyError::new(
                    name,
                    "INVALID_PROPERTY_VALUE",
                    format!("{name} is longer than 65536 characters"),
                ))
            } else {
                Ok(value.to_string())
            }
        }
        PropertyType::Number => value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|_| value.trim().to_string())
            .ok_or_else(|| {
                PropertyError::new(
                    name,
                    "INVALID_DECIMAL",
                    format!("{value} was not a valid number"),
                )
            }),
        PropertyType::Bool => match value.to_ascii_lowercase().as_str() {
            "true" => Ok("true".to_string()),
            "false" => Ok("false".to_string()),
            _ => Err(PropertyError::new(
                name,
                "INVALID_BOOLEAN",
                format!("{value} was not a valid boolean: use true or false"),
            )),
        },
        PropertyType::Date => parse_date(name, value),
        PropertyType::Datetime => parse_datetime_ms(value)
            .map(crate::clock::rfc3339_ms)
            .ok_or_else(|| {
                PropertyError::new(
                    name,
                    "INVALID_DATETIME",
                    format!("{value} was not a valid long or ISO 8601 datetime"),
                )
            }),
        PropertyType::Enumeration => {
            let allowed: Vec<&str> = def.options.iter().map(|o| o.value.as_str()).collect();
            let multiple = def.field_type == "checkbox";
            let parts: Vec<&str> = if multiple {
                value.split(';').collect()
            } else {
                vec![value]
            };
            match parts.iter().find(|part| !allowed.contains(part)) {
                None => Ok(value.to_string()),
                Some(bad) => Err(PropertyError::new(
                    name,
                    "INVALID_OPTION",
                    format!(
                        "{bad} was not one of the allowed options: [{}]",
                        allowed.join(", ")
                    ),
                )),
            }
        }
    }
}

/// Lower-cased address if it looks like one (`local@domain.tld`, no spaces), as HubSpot stores it.
pub fn normalize_email(value: &str) -> Option<String> {
    let (local, domain) = value.split_once('@')?;
    let valid = !local.is_empty()
        && !domain.is_empty()
        && !value.chars().any(char::is_whitespace)
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    valid.then(|| value.to_ascii_lowercase())
}

/// Epoch ms from a HubSpot datetime value: epoch milliseconds or ISO 8601 / RFC 3339.
pub fn parse_datetime_ms(value: &str) -> Option<i64> {
    if let Ok(ms) = value.trim().parse::<i64>() {
        return Some(ms);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(value.trim()) {
        return Some(dt.timestamp_millis());
    }
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

/// Date properties take `YYYY-MM-DD` or epoch ms at midnight UTC and are stored as `YYYY-MM-DD`.
fn parse_date(name: &str, value: &str) -> Result<String, PropertyError> {
    if let Ok(date) = NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d") {
        return Ok(date.format("%Y-%m-%d").to_string());
    }
    let Ok(ms) = value.trim().parse::<i64>() else {
        return Err(PropertyError::new(
            name,
            "INVALID_DATE",
            format!("{value} was not a valid long or a YYYY-MM-DD date"),
        ));
    };
    let Some(dt) = DateTime::from_timestamp_millis(ms) else {
        return Err(PropertyError::new(
            name,
            "INVALID_DATE",
            format!("{value} is out of range"),
        ));
    };
    if ms % 86_400_000 != 0 {
        return Err(PropertyError::new(
            name,
            "INVALID_DATE",
            format!(
                "{value} is at {}:{}:{}.{} UTC, not midnight!",
                dt.hour(),
                dt.minute(),
                dt.second(),
                ms.rem_euclid(1_000)
            ),
        ));
    }
    Ok(dt.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::super::model::{ObjectType, default_properties};
    use super::*;
    use serde_json::json;

    fn defs(object_type: ObjectType) -> BTreeMap<String, PropertyDef> {
        default_properties(object_type)
            .into_iter()
            .map(|d| (d.name.clone(), d))
            .collect()
    }

    fn check(
        object_type: ObjectType,
        props: Value,
    ) -> Result<BTreeMap<String, String>, Vec<PropertyError>> {
        let owners = vec!["70000001".to_string()];
        validate_properties(
            &defs(object_type),
            &owners,
            props.as_object().expect("object"),
        )
    }

    fn codes(result: Result<BTreeMap<String, String>, Vec<PropertyError>>) -> Vec<String> {
        result
            .expect_err("should fail")
            .into_iter()
            .map(|e| e.error)
            .collect()
    }

    #[test]
    fn accepts_and_normalizes_valid_values() {
        let ok = check(
            ObjectType::Contacts,
            json!({"email": "Ada@Example.COM", "lifecyclestage": "lead", "hubspot_owner_id": "70000001", "firstname": null}),
        )
        .expect("valid");
        assert_eq!(ok["email"], "ada@example.com");
        assert_eq!(ok["firstname"], "");
    }

    #[test]
    fn enumeration_options_match_exactly() {
        assert_eq!(
            codes(check(
                ObjectType::Contacts,
                json!({"lifecyclestage": "Lead"})
            )),
            ["INVALID_OPTION"]
        );
    }

    #[test]
    fn unknown_read_only_and_bad_values_are_all_reported() {
        let errors: std::collections::BTreeSet<String> = codes(check(
            ObjectType::Companies,
            json!({"nope": "x", "hs_object_id": "5", "numberofemployees": "ten", "is_public": "yes"}),
        ))
        .into_iter()
        .collect();
        let expected: std::collections::BTreeSet<String> = [
            "INVALID_BOOLEAN",
            "INVALID_DECIMAL",
            "PROPERTY_DOESNT_EXIST",
            "READ_ONLY_VALUE",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(errors, expected);
    }

    #[test]
    fn invalid_email_and_owner_are_refused() {
        assert_eq!(
            codes(check(
                ObjectType::Contacts,
                json!({"email": "not-an-email"})
            )),
            ["INVALID_EMAIL"]
        );
        assert_eq!(
            codes(check(
                ObjectType::Contacts,
                json!({"hubspot_owner_id": "999"})
            )),
            ["INVALID_OWNER_ID"]
        );
    }

    #[test]
    fn dates_must_be_midnight_utc_and_datetimes_are_iso() {
        let mut def = defs(ObjectType::Deals)["closedate"].clone();
        assert_eq!(
            validate_value(&def, &[], "1572480000000").expect("ok"),
            "2019-10-31T00:00:00.000Z"
        );
        def.kind = PropertyType::Date;
        assert_eq!(
            validate_value(&def, &[], "1572480000000").expect("ok"),
            "2019-10-31"
        );
        let error = validate_value(&def, &[], "1572480000001").expect_err("not midnight");
        assert!(error.message.contains("not midnight"));
        assert_eq!(
            validate_value(&def, &[], "2020-02-29").expect("ok"),
            "2020-02-29"
        );
    }

    #[test]
    fn checkbox_enumerations_take_semicolon_separated_options() {
        let mut def = defs(ObjectType::Contacts)["hs_lead_status"].clone();
        def.field_type = "checkbox".into();
        assert!(validate_value(&def, &[], "NEW;OPEN").is_ok());
        assert!(validate_value(&def, &[], "NEW;open").is_err());
    }
}
