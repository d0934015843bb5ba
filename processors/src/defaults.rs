//! Rule 4, default values: property values a record gets only when hubsync creates it, checked
//! against the portal's properties like mapped values.
//!
//! ```text
//! [sync.contacts] defaults = { lifecyclestage = "lead", hs_lead_status = "NEW" }
//!   -> create_only_properties { hs_lead_status: "NEW", lifecyclestage: "lead" }
//! [sync.contacts] defaults = { lifecyclestage = "Lead" }  (options: lead, customer)
//!   -> problem INVALID_OPTION sync.contacts.defaults.lifecyclestage -> lifecyclestage
//! ```
//!
//! Defaults go to `create_only_properties`, never to `properties`, so an existing record keeps
//! its values. A default is only checked and sent when the event may create the record.

use std::collections::BTreeMap;

use hubsync_schemas::HubSpotObjectType;

use crate::catalog::PropertyCatalog;
use crate::coerce;
use crate::decision::Problem;
use crate::rules::toml_key;

/// The default values of one object, as HubSpot accepts them, or every problem with them. `at`
/// is the rules section (`sync.contacts`), which problems name.
pub fn create_only_defaults(
    object: HubSpotObjectType,
    at: &str,
    defaults: &BTreeMap<String, String>,
    catalog: &PropertyCatalog,
) -> Result<BTreeMap<String, String>, Vec<Problem>> {
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    for (property, value) in defaults {
        match coerce::check_value(object, property, value, catalog) {
            Ok(value) => {
                values.insert(property.clone(), value.into_owned());
            }
            Err(error) => {
                let setting = format!("{at}.defaults.{}", toml_key(property));
                problems.push(error.into_problem(object, &setting, property, value));
            }
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{PropertyKind, PropertySpec};
    use crate::decision::ProblemCode;

    fn catalog() -> PropertyCatalog {
        use HubSpotObjectType::{Contact, Deal};
        PropertyCatalog::new()
            .with(
                Contact,
                "lifecyclestage",
                PropertySpec::new(PropertyKind::enumeration(["lead", "customer"])),
            )
            .with(
                Contact,
                "hs_lead_status",
                PropertySpec::new(PropertyKind::String),
            )
            .with(
                Contact,
                "hs_object_id",
                PropertySpec::read_only(PropertyKind::Number),
            )
            .with(Deal, "amount", PropertySpec::new(PropertyKind::Number))
    }

    fn defaults(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn valid_defaults_are_written_as_hubspot_accepts_them() {
        let values = create_only_defaults(
            HubSpotObjectType::Contact,
            "sync.contacts",
            &defaults(&[("lifecyclestage", "lead"), ("hs_lead_status", " NEW ")]),
            &catalog(),
        );
        assert_eq!(
            values,
            Ok(defaults(&[
                ("hs_lead_status", "NEW"),
                ("lifecyclestage", "lead")
            ]))
        );
        let deal = create_only_defaults(
            HubSpotObjectType::Deal,
            "sync.deals",
            &defaults(&[("amount", "1,500")]),
            &catalog(),
        );
        assert_eq!(deal, Ok(defaults(&[("amount", "1500")])));
    }

    #[test]
    fn no_defaults_is_nothing_to_write() {
        let values = create_only_defaults(
            HubSpotObjectType::Company,
            "sync.companies",
            &BTreeMap::new(),
            &catalog(),
        );
        assert_eq!(values, Ok(BTreeMap::new()));
    }

    #[test]
    fn every_bad_default_is_reported_with_its_setting() {
        let problems = create_only_defaults(
            HubSpotObjectType::Contact,
            "sync.contacts",
            &defaults(&[
                ("lifecyclestage", "Lead"),
                ("hs_object_id", "1"),
                ("lead source", "web"),
                ("hs_lead_status", "NEW"),
            ]),
            &catalog(),
        )
        .unwrap_err();
        let found: Vec<_> = problems
            .iter()
            .map(|p| (p.code, p.field.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    ProblemCode::ReadOnlyProperty,
                    "sync.contacts.defaults.hs_object_id"
                ),
                (
                    ProblemCode::PropertyMissing,
                    "sync.contacts.defaults.\"lead source\""
                ),
                (
                    ProblemCode::InvalidOption,
                    "sync.contacts.defaults.lifecyclestage"
                ),
            ]
        );
        assert!(
            problems[2].message.contains("did you mean \"lead\""),
            "{}",
            problems[2]
        );
    }
}
