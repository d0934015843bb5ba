//! Rule 2, identifiers: a contact needs at least one of email, LinkedIn URL and company domain,
//! or it is skipped. And the identity each record is found by in HubSpot.
//!
//! ```text
//! ContactChanged { contact_id: "ct_1", email: " Ada@Acme.io ", .. }
//!   -> Identity { kind: EMAIL, property: "email", value: "ada@acme.io" }
//! ContactChanged { contact_id: "ct_2", linkedin_url: "https://linkedin.com/in/ada", email: null }
//!   -> Identity { kind: SOURCE_ID, property: "contact_id", value: "ct_2" }
//! ContactChanged { contact_id: "ct_3", email/linkedin_url/company_domain all empty }
//!   -> Skip { code: NO_IDENTIFIER, reason: "contact ct_3 has no email, LinkedIn URL or ..." }
//! CompanyChanged { company_id: "co_1", domain: null, website: "https://www.Acme.io/about" }
//!   -> Identity { kind: DOMAIN, property: "domain", value: "acme.io" }
//! ```
//!
//! Contacts are found by the configured `id_property`: `email` (the default), normalised; any
//! other unique property takes the value of the field mapped to it, falling back to the email.
//! Companies are found by their domain: the `domain` field, else the domain of the `website`;
//! any other `id_property` takes the value of the field mapped to it first. A record with none
//! of these is found by its upstream id, through the sink's own identity map; a company then
//! also carries its name for the sink to search by when `match_on_name` is set.

use std::borrow::Cow;

use hubsync_schemas::{Identity, IdentityKind};

use crate::decision::{Problem, ProblemCode, Skip, SkipCode};
use crate::fields::Fields;
use crate::normalize::{self, EmailError};
use crate::rules::{CompanySync, ContactSync, FieldMapping};

/// The contact fields any one of which identifies a contact.
pub const CONTACT_IDENTIFIERS: [&str; 3] = ["email", "linkedin_url", "company_domain"];

/// Skips a contact that has none of [`CONTACT_IDENTIFIERS`].
pub fn require_contact_identifier(fields: &Fields<'_>) -> Result<(), Skip> {
    if CONTACT_IDENTIFIERS
        .iter()
        .any(|name| fields.value(name).is_some())
    {
        return Ok(());
    }
    Err(Skip {
        code: SkipCode::NoIdentifier,
        reason: format!(
            "contact {} has no email, LinkedIn URL or company domain, so it cannot be matched \
             in HubSpot: fill in at least one of them upstream",
            fields.source_id()
        ),
    })
}

/// How a contact is found in HubSpot.
pub fn contact_identity(fields: &Fields<'_>, rules: &ContactSync) -> Result<Identity, Problem> {
    if rules.id_property != "email"
        && let Some(value) = mapped_value(fields, &rules.mapping, &rules.id_property)
    {
        return Ok(identity(
            IdentityKind::UniqueProperty,
            &rules.id_property,
            value,
        ));
    }
    match fields.value("email").map(normalize::email) {
        Some(Ok(email)) => Ok(identity(IdentityKind::Email, "email", &email)),
        // Another id property is the identity; a bad email is reported by its mapping, if any.
        Some(Err(_)) if rules.id_property != "email" => Ok(source_identity(fields)),
        Some(Err(error)) => Err(invalid_email(fields, error)),
        None => Ok(source_identity(fields)),
    }
}

/// How a company is found in HubSpot, and the name to search by when it has no domain and
/// `match_on_name` is set.
pub fn company_identity(
    fields: &Fields<'_>,
    rules: &CompanySync,
) -> Result<(Identity, Option<String>), Problem> {
    if rules.id_property != "domain"
        && let Some(value) = mapped_value(fields, &rules.mapping, &rules.id_property)
    {
        let identity = identity(IdentityKind::UniqueProperty, &rules.id_property, value);
        return Ok((identity, None));
    }
    if let Some(domain) = fields.value("domain") {
        return match normalize::domain(domain) {
            Some(domain) => Ok((identity(IdentityKind::Domain, "domain", &domain), None)),
            None => Err(Problem {
                code: ProblemCode::InvalidDomain,
                field: "domain".to_owned(),
                property: Some("domain".to_owned()),
                message: format!(
                    "domain: {domain:?} is not a web domain, and companies are matched on their \
                     domain: write a domain such as acme.io (a URL or an email address also \
                     works) or leave it empty"
                ),
            }),
        };
    }
    // A website that names no domain ("n/a") is not worth refusing the company for.
    if let Some(domain) = fields.value("website").and_then(normalize::domain_from_url) {
        return Ok((identity(IdentityKind::Domain, "domain", &domain), None));
    }
    let name = rules
        .match_on_name
        .then(|| fields.value("name"))
        .flatten()
        .map(str::to_owned);
    Ok((source_identity(fields), name))
}

/// The domain of a contact's company: the `company_domain` field (a domain, URL or email), else
/// the domain of the contact's email unless it is a free mail provider's.
pub fn contact_company_domain<'a>(fields: &Fields<'a>) -> Option<Cow<'a, str>> {
    if let Some(domain) = fields.value("company_domain") {
        return normalize::domain(domain);
    }
    let email = fields.value("email")?;
    normalize::domain_from_email(email).filter(|domain| !normalize::is_free_mail(domain))
}

/// The current value of the field mapped (to HubSpot) onto `property`.
fn mapped_value<'a>(
    fields: &Fields<'a>,
    mapping: &[FieldMapping],
    property: &str,
) -> Option<&'a str> {
    mapping
        .iter()
        .find(|entry| entry.property == property && entry.direction.writes_hubspot())
        .and_then(|entry| fields.value(&entry.source))
}

fn identity(kind: IdentityKind, property: &str, value: &str) -> Identity {
    Identity {
        kind,
        property: property.to_owned(),
        value: value.to_owned(),
    }
}

fn source_identity(fields: &Fields<'_>) -> Identity {
    identity(
        IdentityKind::SourceId,
        fields.source_id_field(),
        fields.source_id(),
    )
}

fn invalid_email(fields: &Fields<'_>, error: EmailError) -> Problem {
    let value = fields.value("email").unwrap_or_default();
    let what = match error {
        EmailError::Empty => "is empty".to_owned(),
        EmailError::Shape => format!("{value:?} is not an email address"),
    };
    Problem {
        code: ProblemCode::InvalidEmail,
        field: "email".to_owned(),
        property: Some("email".to_owned()),
        message: format!(
            "email -> email: {what}, and contacts are matched on their email: write it as \
             name@domain.tld or leave it empty"
        ),
    }
}

#[cfg(test)]
mod tests {
    use hubsync_schemas::ChangeKind;

    use super::*;
    use crate::fields::tests::{blank_company, blank_contact, some};
    use crate::rules::Direction;

    fn mapping(source: &str, property: &str, direction: Direction) -> FieldMapping {
        FieldMapping {
            source: source.to_owned(),
            property: property.to_owned(),
            direction,
            fill_if_empty: false,
        }
    }

    #[test]
    fn any_one_identifier_is_enough() {
        for name in CONTACT_IDENTIFIERS {
            let mut event = blank_contact(ChangeKind::Updated);
            let value = some("x");
            match name {
                "email" => event.email = value,
                "linkedin_url" => event.linkedin_url = value,
                "company_domain" => event.company_domain = value,
                other => unreachable!("{other}"),
            }
            assert_eq!(
                require_contact_identifier(&Fields::contact(&event)),
                Ok(()),
                "{name}"
            );
        }
    }

    #[test]
    fn a_contact_without_identifiers_is_skipped_with_a_reason() {
        let mut event = blank_contact(ChangeKind::Created);
        event.email = some("  ");
        event.first_name = some("Ada");
        event
            .fields
            .insert("linkedin_url".to_owned(), some("shadowed"));
        let skip = require_contact_identifier(&Fields::contact(&event)).unwrap_err();
        assert_eq!(skip.code, SkipCode::NoIdentifier);
        assert!(
            skip.reason.starts_with("contact ct_1 has no email"),
            "{}",
            skip.reason
        );
        assert!(
            skip.reason.contains("fill in at least one"),
            "{}",
            skip.reason
        );
    }

    #[test]
    fn contacts_are_found_by_normalised_email() {
        let mut event = blank_contact(ChangeKind::Updated);
        event.email = some(" Ada@Acme.IO ");
        let identity = contact_identity(&Fields::contact(&event), &ContactSync::default());
        assert_eq!(
            identity,
            Ok(Identity {
                kind: IdentityKind::Email,
                property: "email".to_owned(),
                value: "ada@acme.io".to_owned(),
            })
        );
    }

    #[test]
    fn contacts_without_email_are_found_by_source_id() {
        let mut event = blank_contact(ChangeKind::Updated);
        event.linkedin_url = some("https://www.linkedin.com/in/ada");
        let identity = contact_identity(&Fields::contact(&event), &ContactSync::default()).unwrap();
        assert_eq!(identity.kind, IdentityKind::SourceId);
        assert_eq!(identity.property, "contact_id");
        assert_eq!(identity.value, "ct_1");
    }

    #[test]
    fn a_malformed_email_is_a_problem_when_it_is_the_identity() {
        let mut event = blank_contact(ChangeKind::Updated);
        event.email = some("ada at acme");
        let problem =
            contact_identity(&Fields::contact(&event), &ContactSync::default()).unwrap_err();
        assert_eq!(problem.code, ProblemCode::InvalidEmail);
        assert_eq!(problem.field, "email");
        assert!(
            problem
                .message
                .contains("\"ada at acme\" is not an email address")
        );
    }

    #[test]
    fn another_unique_property_takes_the_mapped_field_then_falls_back() {
        let rules = ContactSync {
            id_property: "crm_key".to_owned(),
            mapping: vec![
                mapping("key", "crm_key", Direction::FromHubspot),
                mapping("external_key", "crm_key", Direction::ToHubspot),
            ],
            ..ContactSync::default()
        };
        let mut event = blank_contact(ChangeKind::Updated);
        event.email = some("ada@acme.io");
        event.fields.insert("key".to_owned(), some("K-0"));
        event
            .fields
            .insert("external_key".to_owned(), some(" K-1 "));
        let identity = contact_identity(&Fields::contact(&event), &rules).unwrap();
        assert_eq!(
            (
                identity.kind,
                identity.property.as_str(),
                identity.value.as_str()
            ),
            (IdentityKind::UniqueProperty, "crm_key", "K-1")
        );

        event.fields.remove("external_key");
        let identity = contact_identity(&Fields::contact(&event), &rules).unwrap();
        assert_eq!(identity.kind, IdentityKind::Email);

        event.email = some("not an email");
        let identity = contact_identity(&Fields::contact(&event), &rules).unwrap();
        assert_eq!(identity.kind, IdentityKind::SourceId);
    }

    #[test]
    fn companies_are_found_by_domain_then_website_then_source_id() {
        let rules = CompanySync::default();
        let mut event = blank_company(ChangeKind::Updated);
        event.name = some("Acme");
        event.domain = some("WWW.Acme.io");
        event.website = some("https://acme-shop.io");
        let (identity, name) = company_identity(&Fields::company(&event), &rules).unwrap();
        assert_eq!(
            (identity.kind, identity.value.as_str(), name),
            (IdentityKind::Domain, "acme.io", None)
        );

        event.domain = None;
        event.website = some("https://www.Acme.io/about");
        let (identity, _) = company_identity(&Fields::company(&event), &rules).unwrap();
        assert_eq!(identity.value, "acme.io");

        event.website = some("n/a");
        let (identity, name) = company_identity(&Fields::company(&event), &rules).unwrap();
        assert_eq!(
            (
                identity.kind,
                identity.property.as_str(),
                identity.value.as_str()
            ),
            (IdentityKind::SourceId, "company_id", "co_1")
        );
        assert_eq!(
            name.as_deref(),
            Some("Acme"),
            "match_on_name is on by default"
        );

        let by_domain_only = CompanySync {
            match_on_name: false,
            ..CompanySync::default()
        };
        let (_, name) = company_identity(&Fields::company(&event), &by_domain_only).unwrap();
        assert_eq!(name, None);
    }

    #[test]
    fn a_company_domain_that_is_no_domain_is_a_problem() {
        let mut event = blank_company(ChangeKind::Updated);
        event.domain = some("acme");
        event.website = some("https://acme.io");
        let problem =
            company_identity(&Fields::company(&event), &CompanySync::default()).unwrap_err();
        assert_eq!(problem.code, ProblemCode::InvalidDomain);
        assert!(problem.message.contains("\"acme\" is not a web domain"));
    }

    #[test]
    fn a_company_may_be_found_by_another_unique_property() {
        let rules = CompanySync {
            id_property: "erp_id".to_owned(),
            mapping: vec![mapping("erp", "erp_id", Direction::Both)],
            ..CompanySync::default()
        };
        let mut event = blank_company(ChangeKind::Updated);
        event.domain = some("acme.io");
        event.fields.insert("erp".to_owned(), some("E-7"));
        let (identity, _) = company_identity(&Fields::company(&event), &rules).unwrap();
        assert_eq!(identity.kind, IdentityKind::UniqueProperty);
        assert_eq!(identity.value, "E-7");
        event.fields.clear();
        let (identity, _) = company_identity(&Fields::company(&event), &rules).unwrap();
        assert_eq!(identity.kind, IdentityKind::Domain);
    }

    #[test]
    fn a_contacts_company_domain_comes_from_the_field_or_a_work_email() {
        let mut event = blank_contact(ChangeKind::Updated);
        event.email = some("ada@Acme.io");
        assert_eq!(
            contact_company_domain(&Fields::contact(&event)).as_deref(),
            Some("acme.io")
        );
        event.company_domain = some("https://www.northwind.example/");
        assert_eq!(
            contact_company_domain(&Fields::contact(&event)).as_deref(),
            Some("northwind.example")
        );
        event.company_domain = None;
        event.email = some("ada@gmail.com");
        assert_eq!(contact_company_domain(&Fields::contact(&event)), None);
    }
}
