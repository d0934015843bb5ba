//! The rules against the portal's properties: what [`check_rules`] holds the pipeline to at start
//! (properties exist, are writable, identity properties are unique, defaults are valid values
//! and options), each problem given its kind, plus what only a deploy check looks at:
//!
//! - a standard upstream field is free text, so it cannot be mapped to a number, bool, date or
//!   datetime property (a custom field's values are checked per record instead);
//! - the company identity property is `domain` or has unique values;
//! - the deal pipeline and stage are options of the deal's `pipeline` and `dealstage`.
//!
//! ```text
//! [sync.contacts] defaults = { lifecyclestage = "Lead" }, mapping job_title -> hs_seats (number)
//!   -> sync.contacts.defaults.lifecyclestage  invalid_option
//!      sync.contacts.mapping[0].property       property_type
//! ```

use std::collections::HashMap;

use hubsync_processors::catalog::{PropertyCatalog, PropertyKind, check_rules};
use hubsync_processors::coerce::{self, PropertyError};
use hubsync_processors::fields::{COMPANY_FIELDS, CONTACT_FIELDS};
use hubsync_processors::rules::{FieldMapping, Rules, toml_key};
use hubsync_schemas::HubSpotObjectType;

use super::{PROPERTIES, Problem, ProblemKind};

/// Every way the rules do not fit the portal, each naming its field.
pub fn check(rules: &Rules, catalog: &PropertyCatalog) -> Vec<Problem> {
    let kinds = kinds_by_path(rules, catalog);
    let mut problems: Vec<Problem> = check_rules(rules, catalog)
        .into_iter()
        .map(|error| {
            let kind = kinds
                .get(&error.path)
                .copied()
                .unwrap_or(ProblemKind::RuleMisfit);
            Problem::new(PROPERTIES, kind, error.path, error.message)
        })
        .collect();
    problems.extend(source_types(rules, catalog));
    problems.extend(company_identity(rules, catalog));
    problems.extend(deal_constants(rules, catalog));
    problems
}

/// One object's rules: where they sit in the file, the object, mapping and defaults.
struct ObjectRules<'r> {
    at: &'static str,
    object: HubSpotObjectType,
    mapping: &'r [FieldMapping],
    defaults: &'r std::collections::BTreeMap<String, String>,
    /// The upstream fields the event type carries as typed fields.
    standard_fields: &'static [&'static str],
}

fn objects(rules: &Rules) -> [ObjectRules<'_>; 3] {
    let sync = &rules.sync;
    [
        ObjectRules {
            at: "sync.contacts",
            object: HubSpotObjectType::Contact,
            mapping: &sync.contacts.mapping,
            defaults: &sync.contacts.defaults,
            standard_fields: &CONTACT_FIELDS,
        },
        ObjectRules {
            at: "sync.companies",
            object: HubSpotObjectType::Company,
            mapping: &sync.companies.mapping,
            defaults: &sync.companies.defaults,
            standard_fields: &COMPANY_FIELDS,
        },
        ObjectRules {
            at: "sync.deals",
            object: HubSpotObjectType::Deal,
            mapping: &[],
            defaults: &sync.deals.defaults,
            standard_fields: &[],
        },
    ]
}

/// The kind of problem [`check_rules`] would report at each path it can report, given the
/// catalog: a path names the setting, the catalog says what is wrong with its property.
fn kinds_by_path(rules: &Rules, catalog: &PropertyCatalog) -> HashMap<String, ProblemKind> {
    let mut kinds = HashMap::new();
    let sync = &rules.sync;
    let identities = [
        (
            "sync.contacts",
            HubSpotObjectType::Contact,
            &sync.contacts.id_property,
        ),
        (
            "sync.companies",
            HubSpotObjectType::Company,
            &sync.companies.id_property,
        ),
    ];
    for (at, object, property) in identities {
        let kind = match catalog.get(object, property) {
            None => ProblemKind::PropertyMissing,
            Some(_) => ProblemKind::IdPropertyNotUnique,
        };
        kinds.insert(format!("{at}.id_property"), kind);
    }
    for rules in objects(rules) {
        for (index, entry) in rules.mapping.iter().enumerate() {
            let kind = match catalog.get(rules.object, &entry.property) {
                None => ProblemKind::PropertyMissing,
                Some(_) => ProblemKind::PropertyReadOnly,
            };
            kinds.insert(format!("{}.mapping[{index}].property", rules.at), kind);
        }
        for property in rules.defaults.keys() {
            let kind = match coerce::writable(rules.object, property, catalog) {
                Err(PropertyError::Missing) => ProblemKind::PropertyMissing,
                Err(PropertyError::ReadOnly) => ProblemKind::PropertyReadOnly,
                Ok(spec) if matches!(spec.kind, PropertyKind::Enumeration { .. }) => {
                    ProblemKind::InvalidOption
                }
                Ok(_) => ProblemKind::InvalidValue,
            };
            kinds.insert(
                format!("{}.defaults.{}", rules.at, toml_key(property)),
                kind,
            );
        }
        kinds.insert(
            format!("{}.owner_strategy", rules.at),
            ProblemKind::OwnerPropertyReadOnly,
        );
    }
    kinds
}

/// Standard fields mapped (to HubSpot) onto properties whose type free text cannot fill.
fn source_types(rules: &Rules, catalog: &PropertyCatalog) -> Vec<Problem> {
    let mut problems = Vec::new();
    for rules in objects(rules) {
        for (index, entry) in rules.mapping.iter().enumerate() {
            if !entry.direction.writes_hubspot()
                || !rules.standard_fields.contains(&entry.source.as_str())
            {
                continue;
            }
            let Ok(spec) = coerce::writable(rules.object, &entry.property, catalog) else {
                continue;
            };
            if !holds_free_text(&spec.kind) {
                problems.push(Problem::new(
                    PROPERTIES,
                    ProblemKind::PropertyType,
                    format!("{}.mapping[{index}].property", rules.at),
                    format!(
                        "{:?} is free text upstream, but {} property {:?} is a {} property, \
                         which most of its values would not fit: map it to a string property, \
                         or map a custom field that carries {} values",
                        entry.source,
                        object_label(rules.object),
                        entry.property,
                        spec.kind.name(),
                        spec.kind.name()
                    ),
                ));
            }
        }
    }
    problems
}

/// Whether a property of this kind can take an upstream free-text value: strings and phone
/// numbers take anything, enumerations whatever matches an option (checked per record).
fn holds_free_text(kind: &PropertyKind) -> bool {
    match kind {
        PropertyKind::String | PropertyKind::PhoneNumber | PropertyKind::Enumeration { .. } => true,
        PropertyKind::Number | PropertyKind::Bool | PropertyKind::Date | PropertyKind::Datetime => {
            false
        }
    }
}

/// Companies are found by `domain`, which HubSpot does not flag as unique; any other identity
/// property must have unique values. (A missing one is reported by [`check_rules`].)
fn company_identity(rules: &Rules, catalog: &PropertyCatalog) -> Option<Problem> {
    let property = &rules.sync.companies.id_property;
    let spec = catalog.get(HubSpotObjectType::Company, property)?;
    if property == "domain" || spec.unique {
        return None;
    }
    Some(Problem::new(
        PROPERTIES,
        ProblemKind::IdPropertyNotUnique,
        "sync.companies.id_property",
        format!(
            "company property {property:?} does not have unique values, so it cannot identify a \
             company: use \"domain\" (the default) or a property created with \
             hasUniqueValue = true"
        ),
    ))
}

/// The deal pipeline and stage, when set, must be options of the portal's `pipeline` and
/// `dealstage` properties (when the portal lists them).
fn deal_constants(rules: &Rules, catalog: &PropertyCatalog) -> Vec<Problem> {
    let deals = &rules.sync.deals;
    let settings = [
        ("sync.deals.pipeline", "pipeline", &deals.pipeline),
        ("sync.deals.stage", "dealstage", &deals.stage),
    ];
    let mut problems = Vec::new();
    for (field, property, value) in settings {
        let Some(value) = value else { continue };
        let Some(spec) = catalog.get(HubSpotObjectType::Deal, property) else {
            continue;
        };
        if !matches!(spec.kind, PropertyKind::Enumeration { .. }) {
            continue;
        }
        if let Err(error) = coerce::coerce(value, spec) {
            problems.push(Problem::new(
                PROPERTIES,
                ProblemKind::InvalidOption,
                field,
                error.message(property, value),
            ));
        }
    }
    problems
}

fn object_label(object: HubSpotObjectType) -> &'static str {
    match object {
        HubSpotObjectType::Contact => "contact",
        HubSpotObjectType::Company => "company",
        HubSpotObjectType::Deal => "deal",
        _ => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_processors::catalog::PropertySpec;

    fn rules(text: &str) -> Rules {
        toml::from_str(text).expect("rules parse")
    }

    fn portal() -> PropertyCatalog {
        use HubSpotObjectType::{Company, Contact, Deal};
        PropertyCatalog::new()
            .with(Contact, "email", PropertySpec::unique(PropertyKind::String))
            .with(Contact, "jobtitle", PropertySpec::new(PropertyKind::String))
            .with(Contact, "hs_seats", PropertySpec::new(PropertyKind::Number))
            .with(Contact, "birthday", PropertySpec::new(PropertyKind::Date))
            .with(
                Contact,
                "phone",
                PropertySpec::new(PropertyKind::PhoneNumber),
            )
            .with(
                Contact,
                "lifecyclestage",
                PropertySpec::new(PropertyKind::enumeration(["lead", "customer"])),
            )
            .with(
                Contact,
                "hs_object_id",
                PropertySpec::read_only(PropertyKind::Number),
            )
            .with(Company, "domain", PropertySpec::new(PropertyKind::String))
            .with(Company, "name", PropertySpec::new(PropertyKind::String))
            .with(
                Company,
                "vat_number",
                PropertySpec::unique(PropertyKind::String),
            )
            .with(
                Deal,
                "pipeline",
                PropertySpec::new(PropertyKind::enumeration(["default"])),
            )
            .with(
                Deal,
                "dealstage",
                PropertySpec::new(PropertyKind::enumeration(["appointmentscheduled"])),
            )
            .with(Deal, "amount", PropertySpec::new(PropertyKind::Number))
    }

    fn found(problems: &[Problem]) -> Vec<(&str, ProblemKind)> {
        problems
            .iter()
            .map(|p| (p.field.as_str(), p.kind))
            .collect()
    }

    #[test]
    fn rules_that_fit_pass() {
        let rules = rules(
            r#"
            [sync.contacts]
            defaults = { lifecyclestage = "lead" }
            [[sync.contacts.mapping]]
            source = "job_title"
            property = "jobtitle"
            [[sync.contacts.mapping]]
            source = "phone"
            property = "phone"
            [[sync.contacts.mapping]]
            source = "seats"
            property = "hs_seats"
            [[sync.contacts.mapping]]
            source = "hubspot_id"
            property = "hs_object_id"
            direction = "from_hubspot"
            [sync.companies]
            id_property = "vat_number"
            [sync.deals]
            pipeline = "default"
            stage = "appointmentscheduled"
            defaults = { amount = "1,500" }
            "#,
        );
        assert_eq!(check(&rules, &portal()), []);
    }

    #[test]
    fn each_misfit_has_its_kind_and_field() {
        let rules = rules(
            r#"
            [sync.contacts]
            id_property = "jobtitle"
            defaults = { lifecyclestage = "Lead", hs_object_id = "1" }
            [[sync.contacts.mapping]]
            source = "job_title"
            property = "job_title"
            [[sync.contacts.mapping]]
            source = "job_title"
            property = "hs_seats"
            direction = "both"
            [[sync.contacts.mapping]]
            source = "first_name"
            property = "birthday"
            direction = "from_hubspot"
            [[sync.contacts.mapping]]
            source = "linkedin_url"
            property = "hs_object_id"
            [sync.companies]
            id_property = "name"
            [sync.deals]
            pipeline = "Default"
            stage = "closedwon"
            defaults = { amount = "lots" }
            "#,
        );
        let problems = check(&rules, &portal());
        assert_eq!(
            found(&problems),
            [
                (
                    "sync.contacts.id_property",
                    ProblemKind::IdPropertyNotUnique
                ),
                (
                    "sync.contacts.mapping[0].property",
                    ProblemKind::PropertyMissing
                ),
                (
                    "sync.contacts.mapping[3].property",
                    ProblemKind::PropertyReadOnly
                ),
                (
                    "sync.contacts.defaults.hs_object_id",
                    ProblemKind::PropertyReadOnly
                ),
                (
                    "sync.contacts.defaults.lifecyclestage",
                    ProblemKind::InvalidOption
                ),
                ("sync.deals.defaults.amount", ProblemKind::InvalidValue),
                (
                    "sync.contacts.mapping[1].property",
                    ProblemKind::PropertyType
                ),
                (
                    "sync.companies.id_property",
                    ProblemKind::IdPropertyNotUnique
                ),
                ("sync.deals.pipeline", ProblemKind::InvalidOption),
                ("sync.deals.stage", ProblemKind::InvalidOption),
            ]
        );
        assert!(problems[4].message.contains("\"lead\""), "{problems:?}");
        assert!(problems[6].message.contains("number"), "{problems:?}");
        assert!(problems[8].message.contains("\"default\""), "{problems:?}");
    }

    #[test]
    fn custom_fields_may_fill_any_type() {
        let rules = rules(
            r#"
            [[sync.contacts.mapping]]
            source = "date_of_birth"
            property = "birthday"
            "#,
        );
        assert_eq!(check(&rules, &portal()), []);
    }

    #[test]
    fn a_missing_company_identity_is_reported_once() {
        let rules = rules("[sync.companies]\nid_property = \"website\"\n");
        assert_eq!(
            found(&check(&rules, &portal())),
            [("sync.companies.id_property", ProblemKind::PropertyMissing)]
        );
    }
}
