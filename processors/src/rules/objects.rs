//! Per-object rules: when a record may be created in HubSpot, how an existing one is found, which
//! fields must be filled first, what a new record starts with, who owns it, and which fields flow
//! in which direction.
//!
//! ```toml
//! [sync.contacts]
//! create = { enabled = true, trigger = "on_create_or_update" }
//! mandatory = ["email"]
//! defaults = { lifecyclestage = "lead" }
//! owner_strategy = "if_empty"
//!
//! [[sync.contacts.mapping]]
//! source = "job_title"
//! property = "jobtitle"
//! direction = "both"
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ActivityType, OWNER_PROPERTY, RuleError, check_name, check_unique};

/// The rules of every object hubsync writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncRules {
    pub contacts: ContactSync,
    pub companies: CompanySync,
    pub deals: DealSync,
}

impl SyncRules {
    pub(crate) fn validate(&self, errors: &mut Vec<RuleError>) {
        self.contacts.validate(errors);
        self.companies.validate(errors);
        self.deals.validate(errors);
    }
}

/// Whether hubsync may create a record that HubSpot does not have yet, and on what.
///
/// Before creating, the sink always looks for an existing record (its own identity map first,
/// then HubSpot's search), so enabling creation never creates duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateRule {
    pub enabled: bool,
    pub trigger: CreateTrigger,
}

impl Default for CreateRule {
    fn default() -> Self {
        Self {
            enabled: true,
            trigger: CreateTrigger::OnCreateOrUpdate,
        }
    }
}

impl CreateRule {
    /// Creation switched off; the record is only updated when HubSpot already has it.
    pub const DISABLED: Self = Self {
        enabled: false,
        trigger: CreateTrigger::OnCreateOrUpdate,
    };
}

/// What makes hubsync create a missing record.
///
/// Written as `"on_create"`, `"on_create_or_update"` or `{ on_activity = "email_replied" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateTrigger {
    /// Only when the record is created upstream.
    OnCreate,
    /// When the record is created or changed upstream.
    OnCreateOrUpdate,
    /// When the contact has an activity of this type (for example a reply).
    OnActivity(ActivityType),
}

/// Which way one mapped field flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Upstream writes the HubSpot property.
    #[default]
    ToHubspot,
    /// HubSpot writes the upstream field.
    FromHubspot,
    /// Both ways; the newest change by event time wins.
    Both,
}

impl Direction {
    pub fn writes_hubspot(self) -> bool {
        matches!(self, Self::ToHubspot | Self::Both)
    }

    pub fn writes_upstream(self) -> bool {
        matches!(self, Self::FromHubspot | Self::Both)
    }
}

/// Who decides a record's owner (`hubspot_owner_id`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerStrategy {
    /// The integration is the source of truth: its owner overwrites HubSpot's.
    Always,
    /// Set the owner only when the HubSpot record has none.
    #[default]
    IfEmpty,
    /// Never write the owner.
    Never,
    /// Owner changes flow both ways; the newest change wins.
    Bidirectional,
}

/// One mapped field: an upstream field and the HubSpot property it corresponds to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// The upstream field, standard or custom.
    pub source: String,
    /// The HubSpot property's internal name; it must exist in the portal.
    pub property: String,
    #[serde(default)]
    pub direction: Direction,
    /// Write only when the receiving side's value is empty, never overwrite one.
    #[serde(default)]
    pub fill_if_empty: bool,
}

/// Contacts: created and matched by `id_property` (email unless the portal has another property
/// with unique values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContactSync {
    pub create: CreateRule,
    /// A HubSpot contact property with unique values, used to find and upsert contacts.
    pub id_property: String,
    /// Upstream fields that must all be non-empty before a contact is created (updates of existing
    /// contacts still flow). A contact held back is parked with the missing fields named.
    pub mandatory: Vec<String>,
    /// Property values set only when hubsync creates the contact.
    pub defaults: BTreeMap<String, String>,
    pub owner_strategy: OwnerStrategy,
    pub mapping: Vec<FieldMapping>,
}

impl Default for ContactSync {
    fn default() -> Self {
        Self {
            create: CreateRule::default(),
            id_property: "email".to_owned(),
            mandatory: Vec::new(),
            defaults: BTreeMap::new(),
            owner_strategy: OwnerStrategy::default(),
            mapping: Vec::new(),
        }
    }
}

impl ContactSync {
    fn validate(&self, errors: &mut Vec<RuleError>) {
        let at = "sync.contacts";
        validate_create(at, &self.create, false, errors);
        if self.id_property.trim().is_empty() {
            errors.push(RuleError::new(
                format!("{at}.id_property"),
                "must not be empty: name a contact property with unique values, \
                 such as \"email\" (the default)",
            ));
        } else {
            check_name(
                &format!("{at}.id_property"),
                &self.id_property,
                "a contact property with unique values",
                errors,
            );
        }
        validate_mandatory(at, &self.mandatory, errors);
        validate_defaults(at, &self.defaults, errors);
        validate_mapping(at, &self.mapping, errors);
    }
}

/// Companies: matched by `id_property` (the domain), then by name when `match_on_name` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompanySync {
    pub create: CreateRule,
    /// The HubSpot company property existing companies are found by.
    pub id_property: String,
    /// When no company has the domain, look for one with the same name before creating.
    pub match_on_name: bool,
    pub mandatory: Vec<String>,
    pub defaults: BTreeMap<String, String>,
    pub owner_strategy: OwnerStrategy,
    pub mapping: Vec<FieldMapping>,
}

impl Default for CompanySync {
    fn default() -> Self {
        Self {
            create: CreateRule::default(),
            id_property: "domain".to_owned(),
            match_on_name: true,
            mandatory: Vec::new(),
            defaults: BTreeMap::new(),
            owner_strategy: OwnerStrategy::default(),
            mapping: Vec::new(),
        }
    }
}

impl CompanySync {
    fn validate(&self, errors: &mut Vec<RuleError>) {
        let at = "sync.companies";
        validate_create(at, &self.create, false, errors);
        if self.id_property.trim().is_empty() {
            errors.push(RuleError::new(
                format!("{at}.id_property"),
                "must not be empty: name the company property companies are found by, \
                 such as \"domain\" (the default)",
            ));
        } else {
            check_name(
                &format!("{at}.id_property"),
                &self.id_property,
                "a company property",
                errors,
            );
        }
        validate_mandatory(at, &self.mandatory, errors);
        validate_defaults(at, &self.defaults, errors);
        validate_mapping(at, &self.mapping, errors);
    }
}

/// Deals: never created from upstream records, only on an activity, either for every campaign
/// (`create`) or per campaign (`campaigns.<id>.deal_triggers`). Both use these deal defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DealSync {
    /// The trigger for every campaign; off by default. Must be `{ on_activity = "<type>" }`.
    pub create: CreateRule,
    /// Internal id of the pipeline new deals are created in.
    pub pipeline: Option<String>,
    /// Internal id of the stage new deals start in.
    pub stage: Option<String>,
    /// The new deal's name; `{contact.<field>}`, `{company.<field>}` and `{campaign.<field>}`
    /// are replaced by the fields of the records involved.
    pub name_template: String,
    pub defaults: BTreeMap<String, String>,
    pub owner_strategy: OwnerStrategy,
}

impl Default for DealSync {
    fn default() -> Self {
        Self {
            create: CreateRule::DISABLED,
            pipeline: None,
            stage: None,
            name_template: "{contact.email} – {campaign.name}".to_owned(),
            defaults: BTreeMap::new(),
            owner_strategy: OwnerStrategy::default(),
        }
    }
}

impl DealSync {
    fn validate(&self, errors: &mut Vec<RuleError>) {
        let at = "sync.deals";
        validate_create(at, &self.create, true, errors);
        for (field, value) in [("pipeline", &self.pipeline), ("stage", &self.stage)] {
            if let Some(value) = value {
                check_name(
                    &format!("{at}.{field}"),
                    value,
                    &format!("the deal {field} by its internal id"),
                    errors,
                );
            }
        }
        validate_name_template(&format!("{at}.name_template"), &self.name_template, errors);
        validate_defaults(at, &self.defaults, errors);
    }
}

/// The namespaces a deal name template may draw from.
pub const TEMPLATE_NAMESPACES: [&str; 3] = ["contact", "company", "campaign"];

fn validate_create(at: &str, create: &CreateRule, deals: bool, errors: &mut Vec<RuleError>) {
    if deals && create.enabled && !matches!(create.trigger, CreateTrigger::OnActivity(_)) {
        errors.push(RuleError::new(
            format!("{at}.create.trigger"),
            "deals are created on an activity: use trigger = { on_activity = \"<type>\" }, \
             or deal_triggers in a [campaigns.\"<id>\"] section",
        ));
    }
}

fn validate_mandatory(at: &str, mandatory: &[String], errors: &mut Vec<RuleError>) {
    let path = format!("{at}.mandatory");
    for (index, field) in mandatory.iter().enumerate() {
        check_name(
            &format!("{path}[{index}]"),
            field,
            "an upstream field",
            errors,
        );
    }
    check_unique(&path, mandatory, errors);
}

fn validate_defaults(at: &str, defaults: &BTreeMap<String, String>, errors: &mut Vec<RuleError>) {
    for (property, value) in defaults {
        let path = format!("{at}.defaults.{}", super::toml_key(property));
        check_name(&path, property, "a HubSpot property", errors);
        if property == OWNER_PROPERTY {
            errors.push(RuleError::new(
                path,
                format!(
                    "{OWNER_PROPERTY} is set by the owner strategy: set users.default_owner \
                     instead of a default value"
                ),
            ));
        } else if value.is_empty() {
            errors.push(RuleError::new(
                path,
                "a default value must not be empty: remove the entry to leave the property unset",
            ));
        }
    }
}

fn validate_mapping(at: &str, mapping: &[FieldMapping], errors: &mut Vec<RuleError>) {
    for (index, entry) in mapping.iter().enumerate() {
        let path = format!("{at}.mapping[{index}]");
        check_name(
            &format!("{path}.source"),
            &entry.source,
            "an upstream field",
            errors,
        );
        check_name(
            &format!("{path}.property"),
            &entry.property,
            "a HubSpot property",
            errors,
        );
        if entry.property == OWNER_PROPERTY {
            errors.push(RuleError::new(
                format!("{path}.property"),
                format!(
                    "{OWNER_PROPERTY} is written by owner_strategy and [users]: remove this \
                     mapping and choose an owner_strategy instead"
                ),
            ));
        }
        let earlier = &mapping[..index];
        if entry.direction.writes_hubspot()
            && let Some(first) = earlier
                .iter()
                .position(|e| e.direction.writes_hubspot() && e.property == entry.property)
        {
            errors.push(RuleError::new(
                format!("{path}.property"),
                format!(
                    "HubSpot property {:?} is already written by {at}.mapping[{first}]: \
                     one property takes its value from one upstream field (to_hubspot or both); \
                     make one of them from_hubspot or remove it",
                    entry.property
                ),
            ));
        }
        if entry.direction.writes_upstream()
            && let Some(first) = earlier
                .iter()
                .position(|e| e.direction.writes_upstream() && e.source == entry.source)
        {
            errors.push(RuleError::new(
                format!("{path}.source"),
                format!(
                    "upstream field {:?} is already written by {at}.mapping[{first}]: \
                     one field takes its value from one HubSpot property (from_hubspot or both); \
                     make one of them to_hubspot or remove it",
                    entry.source
                ),
            ));
        }
    }
}

/// Checks `{namespace.field}` placeholders; `{{` and `}}` stand for literal braces.
fn validate_name_template(path: &str, template: &str, errors: &mut Vec<RuleError>) {
    if template.trim().is_empty() {
        errors.push(RuleError::new(
            path,
            "must not be empty: deals need a name, e.g. \"{contact.email} – {campaign.name}\"",
        ));
        return;
    }
    let allowed = TEMPLATE_NAMESPACES
        .iter()
        .map(|n| format!("{{{n}.<field>}}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        let after = &rest[open + 1..];
        if rest[open..].starts_with("{{") || rest[open..].starts_with("}}") {
            rest = &after[1..];
            continue;
        }
        if rest[open..].starts_with('}') {
            errors.push(RuleError::new(
                path,
                "has a '}' without a matching '{': write \"}}\" for a literal brace",
            ));
            return;
        }
        let Some(close) = after.find('}') else {
            errors.push(RuleError::new(
                path,
                format!("has a '{{' that is never closed: placeholders are {allowed}"),
            ));
            return;
        };
        let placeholder = &after[..close];
        let valid = placeholder
            .split_once('.')
            .is_some_and(|(namespace, field)| {
                TEMPLATE_NAMESPACES.contains(&namespace)
                    && !field.is_empty()
                    && !field.contains(char::is_whitespace)
            });
        if !valid {
            errors.push(RuleError::new(
                path,
                format!("unknown placeholder {{{placeholder}}}: placeholders are {allowed}"),
            ));
        }
        rest = &after[close + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::super::Rules;
    use super::*;

    use crate::rules::tests::rules;

    fn errors(text: &str) -> Vec<RuleError> {
        rules(text).validate()
    }

    #[test]
    fn triggers_are_written_as_words_or_an_activity() {
        let rules = rules(
            r#"
            [sync.contacts.create]
            trigger = "on_create"
            [sync.companies]
            create = { enabled = false, trigger = { on_activity = "email_replied" } }
            "#,
        );
        assert_eq!(rules.sync.contacts.create.trigger, CreateTrigger::OnCreate);
        assert!(rules.sync.contacts.create.enabled);
        assert_eq!(
            rules.sync.companies.create,
            CreateRule {
                enabled: false,
                trigger: CreateTrigger::OnActivity(ActivityType::EmailReplied)
            }
        );
    }

    #[test]
    fn an_unknown_activity_in_a_trigger_is_refused_with_the_allowed_types() {
        let error = toml::from_str::<Rules>(
            "[sync.contacts.create]\ntrigger = { on_activity = \"email_answered\" }",
        )
        .expect_err("unknown activity type");
        let message = error.message();
        assert!(message.contains("email_answered"), "{message}");
        assert!(message.contains("email_replied"), "{message}");
    }

    #[test]
    fn mapping_defaults_to_hubspot_without_fill_if_empty() {
        let rules = rules(
            r#"
            [[sync.contacts.mapping]]
            source = "first_name"
            property = "firstname"
            "#,
        );
        let entry = &rules.sync.contacts.mapping[0];
        assert_eq!(entry.direction, Direction::ToHubspot);
        assert!(!entry.fill_if_empty);
    }

    #[test]
    fn a_property_written_by_two_mappings_is_refused_naming_both() {
        let errors = errors(
            r#"
            [[sync.contacts.mapping]]
            source = "title"
            property = "jobtitle"
            [[sync.contacts.mapping]]
            source = "role"
            property = "jobtitle"
            direction = "from_hubspot"
            [[sync.contacts.mapping]]
            source = "position"
            property = "jobtitle"
            direction = "both"
            "#,
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "sync.contacts.mapping[2].property");
        assert!(
            errors[0].message.contains("sync.contacts.mapping[0]"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn the_same_property_on_two_objects_is_fine() {
        let errors = errors(
            r#"
            [[sync.contacts.mapping]]
            source = "name"
            property = "name"
            [[sync.companies.mapping]]
            source = "name"
            property = "name"
            "#,
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn an_upstream_field_written_by_two_hubspot_properties_is_refused() {
        let errors = errors(
            r#"
            [[sync.companies.mapping]]
            source = "industry"
            property = "industry"
            direction = "both"
            [[sync.companies.mapping]]
            source = "industry"
            property = "hs_industry_group"
            direction = "from_hubspot"
            "#,
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "sync.companies.mapping[1].source");
    }

    #[test]
    fn empty_names_are_refused() {
        let errors = errors(
            r#"
            [sync.contacts]
            id_property = ""
            mandatory = ["email", " "]
            defaults = { "" = "x", lifecyclestage = "" }
            [[sync.contacts.mapping]]
            source = ""
            property = "first name"
            "#,
        );
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "sync.contacts.id_property",
                "sync.contacts.mandatory[1]",
                "sync.contacts.defaults.\"\"",
                "sync.contacts.defaults.lifecyclestage",
                "sync.contacts.mapping[0].source",
                "sync.contacts.mapping[0].property",
            ]
        );
        assert!(errors[0].message.contains("\"email\""), "{}", errors[0]);
        assert!(errors[5].message.contains("whitespace"), "{}", errors[5]);
    }

    #[test]
    fn the_owner_property_is_not_mapped_nor_defaulted() {
        let errors = errors(
            r#"
            [sync.companies]
            defaults = { hubspot_owner_id = "42" }
            [[sync.contacts.mapping]]
            source = "owner"
            property = "hubspot_owner_id"
            "#,
        );
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "sync.contacts.mapping[0].property",
                "sync.companies.defaults.hubspot_owner_id"
            ]
        );
    }

    #[test]
    fn duplicate_mandatory_fields_are_refused() {
        let errors = errors("[sync.companies]\nmandatory = [\"domain\", \"name\", \"domain\"]");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "sync.companies.mandatory[2]");
    }

    #[test]
    fn deals_are_only_created_on_an_activity() {
        let errors = errors(
            r#"
            [sync.deals]
            pipeline = "default"
            stage = "appointmentscheduled"
            create = { enabled = true, trigger = "on_create" }
            "#,
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "sync.deals.create.trigger");
        assert!(errors[0].message.contains("on_activity"));
    }

    #[test]
    fn name_templates_are_checked() {
        let check = |template: &str| {
            let mut errors = Vec::new();
            validate_name_template("t", template, &mut errors);
            errors
        };
        assert!(check("{contact.email} – {campaign.name}").is_empty());
        assert!(check("{{literal}} {company.domain}").is_empty());
        assert!(check("no placeholders").is_empty());
        assert!(check("")[0].message.contains("must not be empty"));
        assert!(check("{contact.email")[0].message.contains("never closed"));
        assert!(check("a } b")[0].message.contains("without a matching"));
        let unknown = check("{lead.email}");
        assert!(
            unknown[0]
                .message
                .contains("unknown placeholder {lead.email}")
        );
        assert!(unknown[0].message.contains("{campaign.<field>}"));
        assert!(!check("{contact}").is_empty());
    }
}
