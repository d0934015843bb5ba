//! The whole process-stage decision for one contact or company event: the rules applied in
//! order, ending in a command draft, a skip or a refusal.
//!
//! ```text
//! ContactChanged { change: UPDATED, email: "Jordan.Lee@Northwind.example", job_title: "VP Operations",
//!   owner_user_id: "usr_4821", changed_fields: [job_title], .. }
//!   with job_title -> jobtitle, create on_create_or_update, defaults { lifecyclestage: "lead" }
//!   -> Write(CommandDraft { CONTACT, UPSERT, email:jordan.lee@northwind.example,
//!        properties { jobtitle: "VP Operations" },
//!        create_only_properties { lifecyclestage: "lead", hubspot_owner_id: "77120345", .. },
//!        may_create: true, associations [company domain:northwind.example] })
//! ```
//!
//! The order, and why:
//! 1. deletion -> skip `DELETE_NOT_SYNCED` ([`crate::trigger`]): nothing else matters;
//! 2. (contacts) campaign without push-to-CRM -> skip `CAMPAIGN_PUSH_DISABLED`
//!    ([`campaign`]): the team wants nothing of it in HubSpot, bad or not;
//! 3. (contacts) no identifier -> skip `NO_IDENTIFIER` ([`identifiers`]);
//! 4. the create trigger decides the action, `UPSERT` or `UPDATE_ONLY`;
//! 5. identity, field mapping, owner, and — when the event may create — the mandatory-field
//!    gate and the default values; every problem of these steps is collected, and any problem
//!    refuses the record as `Invalid` (a dead letter naming them all);
//! 6. an `UPDATE_ONLY` command that would write nothing -> skip `NO_MAPPED_CHANGE`.
//!
//! Skips come before checks so a record the rules do not sync is never dead-lettered. The gate
//! does not refuse anything: the draft says `may_create = false` and names the missing fields,
//! and the sink parks the event only if the record would have to be created.
//!
//! On create the sink writes `create_only_properties` with the non-empty `properties` over them:
//! create-only values are the default values, then the current values of mapped fields the
//! event did not change, then the owner when the event did not change it.

use std::collections::BTreeMap;

use hubsync_schemas::{
    Association, CommandAction, CompanyChanged, ContactChanged, HubSpotObjectType, Identity,
    IdentityKind, pipeline::HUBSPOT_DEFINED,
};

use crate::catalog::PropertyCatalog;
use crate::decision::{CommandDraft, Decision, Problem, SkipCode};
use crate::fields::Fields;
use crate::owner::{OwnerWrite, owner};
use crate::rules::{FieldMapping, OWNER_PROPERTY, OwnerStrategy, Rules, UserRules};
use crate::trigger::{Creation, UpdateOnlyReason, creation};
use crate::{campaign, defaults, gating, identifiers, mapping};

/// HubSpot's association type making a company the contact's primary one (HubSpot keeps the
/// unlabelled link, 279, with it, and moves the label when another company becomes primary).
pub const CONTACT_TO_COMPANY: i32 = 1;

/// The decision for one contact event.
pub fn decide_contact(
    event: &ContactChanged,
    rules: &Rules,
    catalog: &PropertyCatalog,
) -> Decision {
    let fields = Fields::contact(event);
    let sync = &rules.sync.contacts;
    let creation = match creation(&fields, "contact", &sync.create) {
        Ok(creation) => creation,
        Err(skip) => return skip.into(),
    };
    if let Err(skip) = campaign::check_campaign(event, rules) {
        return skip.into();
    }
    if let Err(skip) = identifiers::require_contact_identifier(&fields) {
        return skip.into();
    }
    let object = ObjectRules {
        object: HubSpotObjectType::Contact,
        label: "contact",
        at: "sync.contacts",
        mapping: &sync.mapping,
        mandatory: &sync.mandatory,
        defaults: &sync.defaults,
        owner_strategy: sync.owner_strategy,
    };
    let identity = identifiers::contact_identity(&fields, sync);
    let mut draft = match compose(&fields, creation, identity, &object, &rules.users, catalog) {
        Ok(draft) => draft,
        Err(problems) => return Decision::Invalid { problems },
    };
    let company_may_change = creation == Creation::Allowed
        || fields.is_changed("company_domain")
        || fields.is_changed("email");
    if company_may_change && let Some(domain) = identifiers::contact_company_domain(&fields) {
        draft.associations.push(Association {
            to_object_type: HubSpotObjectType::Company,
            to_hubspot_id: None,
            to_identity: Some(Identity {
                kind: IdentityKind::Domain,
                property: "domain".to_owned(),
                value: domain.into_owned(),
            }),
            association_category: HUBSPOT_DEFINED.to_owned(),
            association_type_id: CONTACT_TO_COMPANY,
        });
    }
    finish(draft, &fields, &object, creation)
}

/// The decision for one company event.
pub fn decide_company(
    event: &CompanyChanged,
    rules: &Rules,
    catalog: &PropertyCatalog,
) -> Decision {
    let fields = Fields::company(event);
    let sync = &rules.sync.companies;
    let creation = match creation(&fields, "company", &sync.create) {
        Ok(creation) => creation,
        Err(skip) => return skip.into(),
    };
    let object = ObjectRules {
        object: HubSpotObjectType::Company,
        label: "company",
        at: "sync.companies",
        mapping: &sync.mapping,
        mandatory: &sync.mandatory,
        defaults: &sync.defaults,
        owner_strategy: sync.owner_strategy,
    };
    let (identity, match_name) = match identifiers::company_identity(&fields, sync) {
        Ok((identity, name)) => (Ok(identity), name),
        Err(problem) => (Err(problem), None),
    };
    let mut draft = match compose(&fields, creation, identity, &object, &rules.users, catalog) {
        Ok(draft) => draft,
        Err(problems) => return Decision::Invalid { problems },
    };
    draft.match_name = match_name;
    finish(draft, &fields, &object, creation)
}

/// The rules of one object, as the shared steps need them.
struct ObjectRules<'r> {
    object: HubSpotObjectType,
    label: &'static str,
    at: &'static str,
    mapping: &'r [FieldMapping],
    mandatory: &'r [String],
    defaults: &'r BTreeMap<String, String>,
    owner_strategy: OwnerStrategy,
}

/// Identity, mapping, owner, gate and defaults: the draft, or every problem found.
fn compose(
    fields: &Fields<'_>,
    creation: Creation,
    identity: Result<Identity, Problem>,
    rules: &ObjectRules<'_>,
    users: &UserRules,
    catalog: &PropertyCatalog,
) -> Result<CommandDraft, Vec<Problem>> {
    let creates = creation == Creation::Allowed;
    let mut problems = Vec::new();
    let identity = identity.map_err(|problem| problems.push(problem)).ok();
    let mapped = mapping::map_fields(fields, rules.object, rules.mapping, catalog, creates);
    for problem in mapped.problems {
        // The identity and a mapping of the same field may both find it bad: say it once.
        if !problems
            .iter()
            .any(|p: &Problem| p.code == problem.code && p.field == problem.field)
        {
            problems.push(problem);
        }
    }
    let mut create_only = BTreeMap::new();
    let mut missing = Vec::new();
    if creates {
        missing = gating::missing_for_create(fields, rules.mandatory);
        match defaults::create_only_defaults(rules.object, rules.at, rules.defaults, catalog) {
            Ok(values) => create_only = values,
            Err(found) => problems.extend(found),
        }
    }
    let (Some(identity), true) = (identity, problems.is_empty()) else {
        return Err(problems);
    };

    let mut draft = CommandDraft::new(rules.object, creation.action(), identity);
    draft.properties = mapped.properties;
    draft.fill_if_empty = mapped.fill_if_empty;
    let owner = owner(fields, rules.owner_strategy, users);
    match owner.write {
        OwnerWrite::Set(id) => {
            draft
                .properties
                .insert(OWNER_PROPERTY.to_owned(), Some(id.to_owned()));
        }
        OwnerWrite::FillIfEmpty(id) => {
            draft
                .properties
                .insert(OWNER_PROPERTY.to_owned(), Some(id.to_owned()));
            draft.fill_if_empty.push(OWNER_PROPERTY.to_owned());
        }
        OwnerWrite::Clear => {
            draft
                .properties
                .insert(OWNER_PROPERTY.to_owned(), Some(String::new()));
        }
        OwnerWrite::Leave => {}
    }
    if creates {
        create_only.extend(mapped.unchanged);
        if let Some(id) = owner.on_create {
            create_only.insert(OWNER_PROPERTY.to_owned(), id.to_owned());
        }
        // A value the command writes anyway needs no create-only copy.
        let written = |property: &String| match draft.properties.get(property) {
            Some(Some(value)) => !value.is_empty(),
            Some(None) | None => false,
        };
        create_only.retain(|property, _| !written(property));
        draft.create_only_properties = create_only;
        draft.may_create = missing.is_empty();
        draft.missing_for_create = missing.into_iter().map(str::to_owned).collect();
    }
    Ok(draft)
}

/// A command that can neither create nor change anything is skipped.
fn finish(
    draft: CommandDraft,
    fields: &Fields<'_>,
    rules: &ObjectRules<'_>,
    creation: Creation,
) -> Decision {
    let Creation::UpdateOnly(why) = creation else {
        return Decision::Write(draft);
    };
    if !draft.properties.is_empty() || !draft.associations.is_empty() {
        return Decision::Write(draft);
    }
    debug_assert_eq!(draft.action, CommandAction::UpdateOnly);
    let label = rules.label;
    let plural = if label == "company" {
        "companies"
    } else {
        "contacts"
    };
    let changed = match fields.changed_fields() {
        [] => "none of its fields".to_owned(),
        names => format!("none of the fields it changes ({})", names.join(", ")),
    };
    let why = match why {
        UpdateOnlyReason::Disabled => format!(
            "creating {plural} is switched off ({}.create.enabled = false)",
            rules.at
        ),
        UpdateOnlyReason::NotACreation => {
            format!("{plural} are only created when they are created upstream (trigger on_create)")
        }
        UpdateOnlyReason::WaitsForActivity(activity) => {
            format!("{plural} are created on their first {activity} activity")
        }
    };
    Decision::Skip {
        code: SkipCode::NoMappedChange,
        reason: format!(
            "{label} {}: {changed} is mapped to HubSpot, and this event may not create the \
             {label}: {why}",
            fields.source_id()
        ),
    }
}

#[cfg(test)]
mod tests {
    use hubsync_schemas::{ChangeKind, examples};

    use super::*;
    use crate::catalog::{PropertyKind, PropertySpec};
    use crate::decision::ProblemCode;
    use crate::fields::tests::{blank_company, blank_contact, some};

    use crate::rules::tests::valid_rules as rules;

    /// The team of the schema examples: contacts and companies mapped, owners mapped.
    fn team() -> Rules {
        rules(
            r#"
            [sync.contacts]
            mandatory = ["email", "last_name"]
            defaults = { lifecyclestage = "lead", hs_lead_status = "NEW" }
            owner_strategy = "if_empty"
            [[sync.contacts.mapping]]
            source = "first_name"
            property = "firstname"
            fill_if_empty = true
            [[sync.contacts.mapping]]
            source = "last_name"
            property = "lastname"
            [[sync.contacts.mapping]]
            source = "job_title"
            property = "jobtitle"
            direction = "both"
            [[sync.contacts.mapping]]
            source = "phone"
            property = "phone"
            [[sync.contacts.mapping]]
            source = "lead_score"
            property = "lead_score"
            [[sync.contacts.mapping]]
            source = "previous_company"
            property = "previous_company"
            [[sync.contacts.mapping]]
            source = "timezone"
            property = "hs_timezone"
            direction = "from_hubspot"

            [sync.companies]
            mandatory = ["name"]
            owner_strategy = "always"
            defaults = { lifecyclestage = "lead" }
            [[sync.companies.mapping]]
            source = "name"
            property = "name"
            [[sync.companies.mapping]]
            source = "domain"
            property = "domain"
            [[sync.companies.mapping]]
            source = "industry"
            property = "industry"
            [[sync.companies.mapping]]
            source = "employees"
            property = "employee_range"

            [[users.mapping]]
            user = "usr_4821"
            owner = "77120345"

            [campaigns.cmp_partners]
            push_to_crm = false
            "#,
        )
    }

    fn portal() -> PropertyCatalog {
        use HubSpotObjectType::{Company, Contact};
        let string = || PropertySpec::new(PropertyKind::String);
        let stages = || PropertySpec::new(PropertyKind::enumeration(["lead", "customer"]));
        PropertyCatalog::new()
            .with(Contact, "email", string())
            .with(Contact, "firstname", string())
            .with(Contact, "lastname", string())
            .with(Contact, "jobtitle", string())
            .with(
                Contact,
                "phone",
                PropertySpec::new(PropertyKind::PhoneNumber),
            )
            .with(
                Contact,
                "lead_score",
                PropertySpec::new(PropertyKind::Number),
            )
            .with(Contact, "previous_company", string())
            .with(Contact, "hs_timezone", string())
            .with(Contact, "lifecyclestage", stages())
            .with(Contact, "hs_lead_status", string())
            .with(Contact, OWNER_PROPERTY, string())
            .with(Company, "name", string())
            .with(Company, "domain", string())
            .with(
                Company,
                "industry",
                PropertySpec::new(PropertyKind::enumeration(["WHOLESALE", "RETAIL"])),
            )
            .with(
                Company,
                "employee_range",
                PropertySpec::new(PropertyKind::enumeration([
                    "1-49", "50-249", "250-500", "500+",
                ])),
            )
            .with(Company, "lifecyclestage", stages())
            .with(Company, OWNER_PROPERTY, string())
    }

    fn write(decision: Decision) -> CommandDraft {
        match decision {
            Decision::Write(draft) => draft,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    fn strings<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect()
    }

    #[test]
    fn a_realistic_contact_update_becomes_an_upsert() {
        let event = examples::contact_changed();
        let draft = write(decide_contact(&event, &team(), &portal()));
        assert_eq!(draft.object_type, HubSpotObjectType::Contact);
        assert_eq!(draft.action, CommandAction::Upsert);
        assert_eq!(
            draft.identity,
            Identity {
                kind: IdentityKind::Email,
                property: "email".to_owned(),
                value: "jordan.lee@northwind.example".to_owned(),
            }
        );
        assert_eq!(
            draft.properties,
            props(&[
                ("jobtitle", "VP Operations"),
                ("lead_score", "82"),
                ("previous_company", ""),
            ])
        );
        assert_eq!(
            draft.create_only_properties,
            strings(&[
                ("firstname", "Jordan"),
                ("hs_lead_status", "NEW"),
                ("hubspot_owner_id", "77120345"),
                ("lastname", "Lee"),
                ("lifecyclestage", "lead"),
                ("phone", "+1 415 555 0134"),
            ])
        );
        assert!(draft.fill_if_empty.is_empty(), "first_name did not change");
        assert!(draft.may_create);
        assert!(draft.missing_for_create.is_empty());
        assert_eq!(draft.associations.len(), 1);
        let company = &draft.associations[0];
        assert_eq!(company.to_object_type, HubSpotObjectType::Company);
        assert_eq!(company.association_type_id, CONTACT_TO_COMPANY);
        assert_eq!(
            company.to_identity.as_ref().map(|i| i.value.as_str()),
            Some("northwind.example")
        );
        assert_eq!(draft.record(), "email:jordan.lee@northwind.example");
    }

    #[test]
    fn a_realistic_company_creation_becomes_an_upsert() {
        let event = examples::company_changed();
        let mut catalog = portal();
        catalog.insert(
            HubSpotObjectType::Company,
            "industry",
            PropertySpec::new(PropertyKind::enumeration(["Wholesale", "Retail"])),
        );
        let draft = write(decide_company(&event, &team(), &catalog));
        assert_eq!(draft.action, CommandAction::Upsert);
        assert_eq!(
            (draft.identity.kind, draft.identity.value.as_str()),
            (IdentityKind::Domain, "northwind.example")
        );
        assert_eq!(
            draft.properties,
            props(&[
                ("domain", "northwind.example"),
                ("employee_range", "250-500"),
                ("hubspot_owner_id", "77120345"),
                ("industry", "Wholesale"),
                ("name", "Northwind Traders"),
            ])
        );
        assert_eq!(
            draft.create_only_properties,
            strings(&[("lifecyclestage", "lead")])
        );
        assert!(draft.may_create);
        assert_eq!(draft.match_name, None);
    }

    #[test]
    fn a_company_with_a_bad_value_is_refused_naming_every_problem() {
        let mut event = examples::company_changed();
        event
            .fields
            .insert("employees".to_owned(), some("250 to 500"));
        let problems = match decide_company(&event, &team(), &portal()) {
            Decision::Invalid { problems } => problems,
            other => panic!("{other:?}"),
        };
        let found: Vec<_> = problems
            .iter()
            .map(|p| (p.code, p.field.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (ProblemCode::InvalidOption, "industry"),
                (ProblemCode::InvalidOption, "employees"),
            ]
        );
        assert!(problems[0].message.contains("did you mean \"WHOLESALE\""));
    }

    #[test]
    fn deletions_are_skipped_first() {
        let mut event = examples::contact_changed();
        event.change = ChangeKind::Deleted;
        event.campaign_id = some("cmp_partners");
        let decision = decide_contact(&event, &team(), &portal());
        assert_eq!(decision.reason_code(), Some("DELETE_NOT_SYNCED"));
        let mut company = examples::company_changed();
        company.change = ChangeKind::Deleted;
        let decision = decide_company(&company, &team(), &portal());
        assert_eq!(decision.reason_code(), Some("DELETE_NOT_SYNCED"));
    }

    #[test]
    fn a_campaign_without_push_skips_even_a_bad_record() {
        let mut event = examples::contact_changed();
        event.campaign_id = some("cmp_partners");
        event.fields.insert("lead_score".to_owned(), some("high"));
        let decision = decide_contact(&event, &team(), &portal());
        assert!(
            matches!(&decision, Decision::Skip { code: SkipCode::CampaignPushDisabled, reason }
                if reason.contains("cmp_partners")),
            "{decision:?}"
        );
    }

    #[test]
    fn a_contact_without_identifiers_is_skipped() {
        let mut event = blank_contact(ChangeKind::Created);
        event.first_name = some("Ada");
        let decision = decide_contact(&event, &team(), &portal());
        assert_eq!(decision.reason_code(), Some("NO_IDENTIFIER"));
    }

    #[test]
    fn a_contact_missing_mandatory_fields_may_not_be_created_but_still_updates() {
        let mut event = blank_contact(ChangeKind::Updated);
        event.linkedin_url = some("https://www.linkedin.com/in/ada");
        event.job_title = some("CTO");
        event.changed_fields = vec!["job_title".to_owned()];
        let draft = write(decide_contact(&event, &team(), &portal()));
        assert_eq!(draft.action, CommandAction::Upsert);
        assert!(!draft.may_create);
        assert_eq!(draft.missing_for_create, ["email", "last_name"]);
        assert_eq!(draft.properties, props(&[("jobtitle", "CTO")]));
        assert_eq!(draft.identity.kind, IdentityKind::SourceId);
        assert!(draft.associations.is_empty(), "no company domain known");
    }

    #[test]
    fn defaults_are_only_for_events_that_may_create() {
        let mut rules = team();
        rules.sync.contacts.create.trigger = crate::rules::CreateTrigger::OnCreate;
        let event = examples::contact_changed();
        let draft = write(decide_contact(&event, &rules, &portal()));
        assert_eq!(draft.action, CommandAction::UpdateOnly);
        assert!(draft.create_only_properties.is_empty());
        assert!(!draft.may_create);
        assert!(
            draft.missing_for_create.is_empty(),
            "the gate only concerns creation"
        );

        let mut created = event.clone();
        created.change = ChangeKind::Created;
        let draft = write(decide_contact(&created, &rules, &portal()));
        assert_eq!(draft.action, CommandAction::Upsert);
        assert_eq!(
            draft
                .create_only_properties
                .get("lifecyclestage")
                .map(String::as_str),
            Some("lead")
        );
    }

    #[test]
    fn a_bad_default_refuses_only_events_that_may_create() {
        let mut rules = team();
        rules
            .sync
            .contacts
            .defaults
            .insert("lifecyclestage".to_owned(), "Lead".to_owned());
        let event = examples::contact_changed();
        let decision = decide_contact(&event, &rules, &portal());
        assert_eq!(decision.reason_code(), Some("INVALID_OPTION"));

        rules.sync.contacts.create = crate::rules::CreateRule::DISABLED;
        assert!(matches!(
            decide_contact(&event, &rules, &portal()),
            Decision::Write(_)
        ));
    }

    #[test]
    fn an_update_only_event_without_mapped_changes_is_skipped() {
        let mut rules = team();
        rules.sync.contacts.create = crate::rules::CreateRule::DISABLED;
        let mut event = blank_contact(ChangeKind::Updated);
        event.email = some("ada@gmail.com");
        event
            .fields
            .insert("favourite_colour".to_owned(), some("teal"));
        event.changed_fields = vec!["favourite_colour".to_owned()];
        let decision = decide_contact(&event, &rules, &portal());
        match decision {
            Decision::Skip { code, reason } => {
                assert_eq!(code, SkipCode::NoMappedChange);
                assert!(
                    reason.contains("none of the fields it changes (favourite_colour)"),
                    "{reason}"
                );
                assert!(
                    reason.contains("sync.contacts.create.enabled = false"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_invalid_email_is_reported_once() {
        let mut rules = team();
        rules.sync.contacts.mapping.push(FieldMapping {
            source: "email".to_owned(),
            property: "email".to_owned(),
            direction: crate::rules::Direction::ToHubspot,
            fill_if_empty: false,
        });
        let mut event = examples::contact_changed();
        event.email = some("jordan.lee at northwind");
        event.changed_fields.push("email".to_owned());
        let problems = match decide_contact(&event, &rules, &portal()) {
            Decision::Invalid { problems } => problems,
            other => panic!("{other:?}"),
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].code, ProblemCode::InvalidEmail);
    }

    #[test]
    fn the_owner_follows_the_strategy() {
        let mut event = examples::contact_changed();
        event.changed_fields.push("owner_user_id".to_owned());
        let mut rules = team();
        for (strategy, value, fill) in [
            (OwnerStrategy::Always, Some("77120345"), false),
            (OwnerStrategy::IfEmpty, Some("77120345"), true),
            (OwnerStrategy::Never, None, false),
            (OwnerStrategy::Bidirectional, Some("77120345"), false),
        ] {
            rules.sync.contacts.owner_strategy = strategy;
            let draft = write(decide_contact(&event, &rules, &portal()));
            assert_eq!(
                draft
                    .properties
                    .get(OWNER_PROPERTY)
                    .cloned()
                    .flatten()
                    .as_deref(),
                value,
                "{strategy:?}"
            );
            assert_eq!(
                draft.fill_if_empty.iter().any(|p| p == OWNER_PROPERTY),
                fill,
                "{strategy:?}"
            );
            assert!(!draft.create_only_properties.contains_key(OWNER_PROPERTY));
        }
        rules.users.mapping.clear();
        rules.sync.contacts.owner_strategy = OwnerStrategy::Always;
        let draft = write(decide_contact(&event, &rules, &portal()));
        assert!(
            !draft.properties.contains_key(OWNER_PROPERTY),
            "unmapped owner"
        );
    }

    #[test]
    fn a_company_without_domain_carries_its_name_for_matching() {
        let mut event = blank_company(ChangeKind::Created);
        event.name = some("Initech");
        let draft = write(decide_company(&event, &team(), &portal()));
        assert_eq!(
            (draft.identity.kind, draft.identity.value.as_str()),
            (IdentityKind::SourceId, "co_1")
        );
        assert_eq!(draft.match_name.as_deref(), Some("Initech"));
        assert_eq!(draft.properties, props(&[("name", "Initech")]));
    }

    #[test]
    fn a_property_the_portal_lacks_is_a_config_problem() {
        let mut catalog = portal();
        catalog = {
            let mut fresh = PropertyCatalog::new();
            for (name, spec) in catalog.properties(HubSpotObjectType::Contact) {
                if name != "lead_score" {
                    fresh.insert(HubSpotObjectType::Contact, name, spec.clone());
                }
            }
            fresh
        };
        let event = examples::contact_changed();
        let problems = match decide_contact(&event, &team(), &catalog) {
            Decision::Invalid { problems } => problems,
            other => panic!("{other:?}"),
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].code, ProblemCode::PropertyMissing);
        assert_eq!(
            crate::decision::error_class(&problems),
            hubsync_schemas::ErrorClass::Config
        );
    }
}
