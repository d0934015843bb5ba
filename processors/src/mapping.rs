//! Rule 5, field mapping: the upstream fields this event changed, written to the HubSpot
//! properties they are mapped to, normalised and checked against the portal's properties.
//!
//! ```text
//! ContactChanged { change: UPDATED, job_title: "VP Operations", fields: { lead_score: "1,082",
//!   previous_company: null }, changed_fields: [job_title, lead_score, previous_company] }
//!   with job_title -> jobtitle, lead_score -> hs_score (number), previous_company -> prev_co
//!   -> properties { jobtitle: "VP Operations", hs_score: "1082", prev_co: "" }
//! ```
//!
//! - Only `to_hubspot` and `both` mappings write HubSpot; `from_hubspot` ones are ignored here.
//! - Only the fields this event changes are written (see [`Fields::change_of`]): a value is
//!   written as the property's type needs it, a cleared field is written as `""`, which clears
//!   the property.
//! - A `fill_if_empty` mapping is listed in `fill_if_empty` (the sink writes it only when
//!   HubSpot's value is empty); a cleared field has nothing to fill with and is not written.
//! - Emails are trimmed and lower-cased and must look like one; domains (`domain` and
//!   `company_domain` fields, and anything mapped to a `domain` property) are reduced to the
//!   bare domain of a domain, URL or email address. Other values are trimmed.
//! - When the event may create the record, the current values of the mapped fields it does not
//!   change are returned too, for the record the sink would create.
//! - A property the portal lacks, a read-only one or a value its type refuses is a problem
//!   naming the field, the property and what is allowed; every problem is collected.

use std::borrow::Cow;
use std::collections::BTreeMap;

use hubsync_schemas::HubSpotObjectType;

use crate::catalog::PropertyCatalog;
use crate::coerce;
use crate::decision::{Problem, ProblemCode};
use crate::fields::{FieldChange, Fields};
use crate::normalize;
use crate::rules::FieldMapping;

/// What the mapping writes for one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapped {
    /// Values to write by HubSpot property; `Some("")` clears.
    pub properties: BTreeMap<String, Option<String>>,
    /// Keys of `properties` to write only when HubSpot's value is empty.
    pub fill_if_empty: Vec<String>,
    /// Current values of mapped fields the event leaves alone, for a record the sink creates;
    /// only filled when asked for.
    pub unchanged: BTreeMap<String, String>,
    pub problems: Vec<Problem>,
}

/// Maps one event's fields onto HubSpot properties of `object`. `for_create` also collects the
/// unchanged mapped values.
pub fn map_fields(
    fields: &Fields<'_>,
    object: HubSpotObjectType,
    mapping: &[FieldMapping],
    catalog: &PropertyCatalog,
    for_create: bool,
) -> Mapped {
    let mut mapped = Mapped::default();
    for entry in mapping.iter().filter(|e| e.direction.writes_hubspot()) {
        match fields.change_of(&entry.source) {
            Some(FieldChange::Set(raw)) => match value_for(object, entry, raw, catalog) {
                Ok(value) if value.is_empty() => clear(object, entry, catalog, &mut mapped),
                Ok(value) => {
                    if entry.fill_if_empty {
                        mapped.fill_if_empty.push(entry.property.clone());
                    }
                    mapped
                        .properties
                        .insert(entry.property.clone(), Some(value));
                }
                Err(problem) => mapped.problems.push(problem),
            },
            Some(FieldChange::Cleared) => clear(object, entry, catalog, &mut mapped),
            None if for_create => {
                if let Some(raw) = fields.value(&entry.source) {
                    match value_for(object, entry, raw, catalog) {
                        Ok(value) if value.is_empty() => {}
                        Ok(value) => {
                            mapped.unchanged.insert(entry.property.clone(), value);
                        }
                        Err(problem) => mapped.problems.push(problem),
                    }
                }
            }
            None => {}
        }
    }
    mapped
}

fn clear(
    object: HubSpotObjectType,
    entry: &FieldMapping,
    catalog: &PropertyCatalog,
    mapped: &mut Mapped,
) {
    if entry.fill_if_empty {
        return;
    }
    match coerce::writable(object, &entry.property, catalog) {
        Ok(_) => {
            mapped
                .properties
                .insert(entry.property.clone(), Some(String::new()));
        }
        Err(error) => mapped
            .problems
            .push(coerce::ValueError::Property(error).into_problem(
                object,
                &entry.source,
                &entry.property,
                "",
            )),
    }
}

/// How a mapped value is normalised before its type is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Normal {
    Email,
    Domain,
    Trimmed,
}

fn normal_for(entry: &FieldMapping) -> Normal {
    if entry.source == "email" || entry.property == "email" {
        Normal::Email
    } else if matches!(entry.source.as_str(), "domain" | "company_domain")
        || entry.property == "domain"
    {
        Normal::Domain
    } else {
        Normal::Trimmed
    }
}

/// One value as the property takes it ("" for a blank one), or the problem with it.
fn value_for(
    object: HubSpotObjectType,
    entry: &FieldMapping,
    raw: &str,
    catalog: &PropertyCatalog,
) -> Result<String, Problem> {
    let raw = normalize::trim(raw);
    let normal: Cow<'_, str> = match normal_for(entry) {
        _ if raw.is_empty() => Cow::Borrowed(""),
        Normal::Trimmed => Cow::Borrowed(raw),
        Normal::Email => normalize::email(raw).map_err(|_| {
            normal_problem(
                ProblemCode::InvalidEmail,
                entry,
                format!("{raw:?} is not an email address: write it as name@domain.tld"),
            )
        })?,
        Normal::Domain => normalize::domain(raw).ok_or_else(|| {
            normal_problem(
                ProblemCode::InvalidDomain,
                entry,
                format!(
                    "{raw:?} is not a web domain: write a domain such as acme.io (a URL or an \
                     email address also works)"
                ),
            )
        })?,
    };
    coerce::check_value(object, &entry.property, &normal, catalog)
        .map(Cow::into_owned)
        .map_err(|error| error.into_problem(object, &entry.source, &entry.property, raw))
}

fn normal_problem(code: ProblemCode, entry: &FieldMapping, message: String) -> Problem {
    Problem {
        code,
        field: entry.source.clone(),
        property: Some(entry.property.clone()),
        message: format!("{} -> {}: {message}", entry.source, entry.property),
    }
}

#[cfg(test)]
mod tests {
    use hubsync_schemas::{ChangeKind, ContactChanged};

    use super::*;
    use crate::catalog::{PropertyKind, PropertySpec};
    use crate::fields::tests::{blank_contact, some};
    use crate::rules::Direction;

    const CONTACT: HubSpotObjectType = HubSpotObjectType::Contact;

    fn catalog() -> PropertyCatalog {
        let string = || PropertySpec::new(PropertyKind::String);
        PropertyCatalog::new()
            .with(CONTACT, "email", PropertySpec::unique(PropertyKind::String))
            .with(CONTACT, "firstname", string())
            .with(CONTACT, "jobtitle", string())
            .with(CONTACT, "company_domain", string())
            .with(CONTACT, "hs_score", PropertySpec::new(PropertyKind::Number))
            .with(CONTACT, "opted_in", PropertySpec::new(PropertyKind::Bool))
            .with(CONTACT, "birthday", PropertySpec::new(PropertyKind::Date))
            .with(
                CONTACT,
                "last_touch",
                PropertySpec::new(PropertyKind::Datetime),
            )
            .with(
                CONTACT,
                "tier",
                PropertySpec::new(PropertyKind::enumeration(["gold", "silver"])),
            )
            .with(
                CONTACT,
                "interests",
                PropertySpec::new(PropertyKind::multiple_choice(["crm", "sales", "ops"])),
            )
            .with(
                CONTACT,
                "hs_object_id",
                PropertySpec::read_only(PropertyKind::Number),
            )
    }

    fn to(source: &str, property: &str) -> FieldMapping {
        FieldMapping {
            source: source.to_owned(),
            property: property.to_owned(),
            direction: Direction::ToHubspot,
            fill_if_empty: false,
        }
    }

    fn with(mut entry: FieldMapping, direction: Direction, fill_if_empty: bool) -> FieldMapping {
        entry.direction = direction;
        entry.fill_if_empty = fill_if_empty;
        entry
    }

    fn updated(values: &[(&str, Option<&str>)]) -> ContactChanged {
        let mut event = blank_contact(ChangeKind::Updated);
        for (name, value) in values {
            let value = value.map(str::to_owned);
            match *name {
                "email" => event.email = value,
                "first_name" => event.first_name = value,
                "job_title" => event.job_title = value,
                "company_domain" => event.company_domain = value,
                custom => {
                    event.fields.insert(custom.to_owned(), value);
                }
            }
            event.changed_fields.push((*name).to_owned());
        }
        event
    }

    fn map(event: &ContactChanged, mapping: &[FieldMapping]) -> Mapped {
        map_fields(&Fields::contact(event), CONTACT, mapping, &catalog(), false)
    }

    fn props(entries: &[(&str, &str)]) -> BTreeMap<String, Option<String>> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect()
    }

    fn codes(mapped: &Mapped) -> Vec<(ProblemCode, &str)> {
        mapped
            .problems
            .iter()
            .map(|p| (p.code, p.field.as_str()))
            .collect()
    }

    #[test]
    fn only_mappings_towards_hubspot_write() {
        let event = updated(&[("first_name", Some("Ada")), ("job_title", Some("CTO"))]);
        let mapping = [
            with(to("first_name", "firstname"), Direction::Both, false),
            with(to("job_title", "jobtitle"), Direction::FromHubspot, false),
        ];
        assert_eq!(
            map(&event, &mapping).properties,
            props(&[("firstname", "Ada")])
        );
    }

    #[test]
    fn only_changed_fields_are_written_and_cleared_ones_clear() {
        let mut event = updated(&[("job_title", Some(" CTO ")), ("tier", None)]);
        event.first_name = some("Ada");
        let mapping = [
            to("first_name", "firstname"),
            to("job_title", "jobtitle"),
            to("tier", "tier"),
        ];
        let mapped = map(&event, &mapping);
        assert_eq!(
            mapped.properties,
            props(&[("jobtitle", "CTO"), ("tier", "")]),
            "first_name is unchanged"
        );
        assert!(mapped.problems.is_empty());
        assert!(mapped.unchanged.is_empty(), "not asked for");
    }

    #[test]
    fn a_blank_value_clears() {
        let event = updated(&[("job_title", Some("   "))]);
        assert_eq!(
            map(&event, &[to("job_title", "jobtitle")]).properties,
            props(&[("jobtitle", "")])
        );
    }

    #[test]
    fn a_created_record_writes_every_mapped_value_it_has() {
        let mut event = blank_contact(ChangeKind::Created);
        event.first_name = some("Ada");
        event.job_title = None;
        event.fields.insert("tier".to_owned(), some("gold"));
        let mapping = [
            to("first_name", "firstname"),
            to("job_title", "jobtitle"),
            to("tier", "tier"),
        ];
        assert_eq!(
            map(&event, &mapping).properties,
            props(&[("firstname", "Ada"), ("tier", "gold")])
        );
    }

    #[test]
    fn fill_if_empty_mappings_are_marked_and_never_clear() {
        let event = updated(&[("first_name", Some("Ada")), ("job_title", None)]);
        let mapping = [
            with(to("first_name", "firstname"), Direction::ToHubspot, true),
            with(to("job_title", "jobtitle"), Direction::Both, true),
        ];
        let mapped = map(&event, &mapping);
        assert_eq!(mapped.properties, props(&[("firstname", "Ada")]));
        assert_eq!(mapped.fill_if_empty, ["firstname"]);
    }

    #[test]
    fn unchanged_values_are_kept_for_a_record_that_may_be_created() {
        let mut event = updated(&[("job_title", Some("CTO"))]);
        event.first_name = some(" Ada ");
        event.fields.insert("hs_score".to_owned(), some("1,000"));
        event.fields.insert("tier".to_owned(), some("   "));
        let mapping = [
            to("first_name", "firstname"),
            to("job_title", "jobtitle"),
            to("hs_score", "hs_score"),
            to("tier", "tier"),
            to("last_name", "lastname"),
        ];
        let mapped = map_fields(
            &Fields::contact(&event),
            CONTACT,
            &mapping,
            &catalog(),
            true,
        );
        assert_eq!(mapped.properties, props(&[("jobtitle", "CTO")]));
        assert_eq!(
            mapped.unchanged,
            BTreeMap::from([
                ("firstname".to_owned(), "Ada".to_owned()),
                ("hs_score".to_owned(), "1000".to_owned()),
            ])
        );
        assert!(mapped.problems.is_empty(), "{:?}", mapped.problems);
    }

    #[test]
    fn emails_and_domains_are_normalised() {
        let event = updated(&[
            ("email", Some(" Ada@Acme.IO ")),
            ("company_domain", Some("https://www.Acme.io/about")),
            ("work_email", Some("grace@navy.mil")),
        ]);
        let mapping = [
            to("email", "email"),
            to("company_domain", "company_domain"),
            to("work_email", "email"),
        ];
        let mapped = map(&event, &mapping[..2]);
        assert_eq!(
            mapped.properties,
            props(&[("email", "ada@acme.io"), ("company_domain", "acme.io")])
        );
        let mapped = map(&event, &mapping[2..]);
        assert_eq!(mapped.properties, props(&[("email", "grace@navy.mil")]));
    }

    #[test]
    fn bad_emails_and_domains_are_problems() {
        let event = updated(&[("email", Some("ada")), ("company_domain", Some("n/a"))]);
        let mapping = [to("email", "email"), to("company_domain", "company_domain")];
        let mapped = map(&event, &mapping);
        assert_eq!(
            codes(&mapped),
            [
                (ProblemCode::InvalidEmail, "email"),
                (ProblemCode::InvalidDomain, "company_domain")
            ]
        );
        assert!(mapped.properties.is_empty());
        assert!(
            mapped.problems[0]
                .message
                .starts_with("email -> email: \"ada\" is not an email address"),
            "{}",
            mapped.problems[0]
        );
    }

    #[test]
    fn values_are_coerced_by_property_type() {
        let event = updated(&[
            ("score", Some("1,234.5")),
            ("opted_in", Some("Yes")),
            ("birthday", Some("1815-12-10")),
            ("last_touch", Some("2025-03-04T10:30:00+01:00")),
            ("tier", Some("gold")),
            ("interests", Some("crm; ops")),
        ]);
        let mapping = [
            to("score", "hs_score"),
            to("opted_in", "opted_in"),
            to("birthday", "birthday"),
            to("last_touch", "last_touch"),
            to("tier", "tier"),
            to("interests", "interests"),
        ];
        let mapped = map(&event, &mapping);
        assert!(mapped.problems.is_empty(), "{:?}", mapped.problems);
        assert_eq!(
            mapped.properties,
            props(&[
                ("hs_score", "1234.5"),
                ("opted_in", "true"),
                ("birthday", "1815-12-10"),
                ("last_touch", "2025-03-04T09:30:00.000Z"),
                ("tier", "gold"),
                ("interests", "crm;ops"),
            ])
        );
    }

    #[test]
    fn every_coercion_failure_is_collected_with_field_and_property() {
        let event = updated(&[
            ("score", Some("lots")),
            ("opted_in", Some("perhaps")),
            ("birthday", Some("10/12/1815")),
            ("last_touch", Some("2025-03-04T10:30:00")),
            ("tier", Some("Gold")),
            ("interests", Some("crm;golf")),
            ("nickname", Some("Ada")),
            ("object_id", Some("42")),
            ("cleared_into_missing", None),
        ]);
        let mapping = [
            to("score", "hs_score"),
            to("opted_in", "opted_in"),
            to("birthday", "birthday"),
            to("last_touch", "last_touch"),
            to("tier", "tier"),
            to("interests", "interests"),
            to("nickname", "nick_name"),
            to("object_id", "hs_object_id"),
            to("cleared_into_missing", "gone"),
        ];
        let mapped = map(&event, &mapping);
        assert_eq!(
            codes(&mapped),
            [
                (ProblemCode::InvalidNumber, "score"),
                (ProblemCode::InvalidBool, "opted_in"),
                (ProblemCode::InvalidDate, "birthday"),
                (ProblemCode::InvalidDatetime, "last_touch"),
                (ProblemCode::InvalidOption, "tier"),
                (ProblemCode::InvalidOption, "interests"),
                (ProblemCode::PropertyMissing, "nickname"),
                (ProblemCode::ReadOnlyProperty, "object_id"),
                (ProblemCode::PropertyMissing, "cleared_into_missing"),
            ]
        );
        assert!(mapped.properties.is_empty());
        let tier = &mapped.problems[4];
        assert_eq!(tier.property.as_deref(), Some("tier"));
        assert!(
            tier.message
                .starts_with("tier -> tier: \"Gold\" is not an option"),
            "{tier}"
        );
        assert!(tier.message.contains("\"gold\", \"silver\""), "{tier}");
        assert!(mapped.problems[5].message.contains("\"golf\""));
    }
}
