//! The team's integration rules, as written in the `[sync]`, `[users]`, `[activities]`,
//! `[campaigns]` and `[[lists]]` sections of the config file.
//!
//! They are configured once per team and apply to every campaign; a campaign may only switch off
//! push-to-CRM and add deal triggers. Every type here is plain data with serde derives and
//! `deny_unknown_fields`, so a typo in the file is an error, never a silently ignored key. Each
//! type's defaults live in its own `Default` impl (activity types in
//! [`ActivityType::default_policy`]) and nowhere else.
//!
//! [`Rules::validate`] checks what the types alone cannot (conflicting mappings, a user mapped to
//! two owners, opens stored as emails, deal triggers without a pipeline, ...) and reports every
//! problem at once, each with the path of its field.

pub mod activities;
pub mod campaigns;
pub mod lists;
pub mod objects;
pub mod users;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use activities::{ActivityPolicy, ActivityRules, ActivitySetting, ActivityType, StoreAs};
pub use campaigns::CampaignRules;
pub use lists::{LeaveAction, ListAction, ListRule};
pub use objects::{
    CompanySync, ContactSync, CreateRule, CreateTrigger, DealSync, Direction, FieldMapping,
    OwnerStrategy, SyncRules,
};
pub use users::{UserMapping, UserRules};

/// The HubSpot property that holds a record's owner. It is written only through the owner
/// strategy and the user mapping, never through field mapping or default values.
pub const OWNER_PROPERTY: &str = "hubspot_owner_id";

/// All of a team's integration rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// What is created and which fields flow in which direction, per object.
    pub sync: SyncRules,
    /// Upstream users -> HubSpot owners.
    pub users: UserRules,
    /// Which activities are synced, and how.
    pub activities: ActivityRules,
    /// Campaign-level exceptions, by upstream campaign id. Campaigns not listed use the defaults.
    pub campaigns: BTreeMap<String, CampaignRules>,
    /// HubSpot lists the team follows (`[[lists]]`): joining imports, leaving pauses.
    pub lists: Vec<ListRule>,
}

impl Rules {
    /// Every problem in these rules, each naming its field; empty when the rules are usable.
    pub fn validate(&self) -> Vec<RuleError> {
        let mut errors = Vec::new();
        self.sync.validate(&mut errors);
        self.users.validate(&mut errors);
        self.activities.validate(&mut errors);
        for (id, campaign) in &self.campaigns {
            campaign.validate(id, &mut errors);
        }
        lists::validate(&self.lists, &mut errors);
        self.validate_deal_defaults(&mut errors);
        errors
    }

    /// The exceptions for one campaign; a campaign that is not configured pushes to the CRM and
    /// has no deal triggers.
    pub fn campaign(&self, campaign_id: &str) -> &CampaignRules {
        static NOT_CONFIGURED: CampaignRules = CampaignRules::DEFAULT;
        self.campaigns.get(campaign_id).unwrap_or(&NOT_CONFIGURED)
    }

    /// Where deals can be created from: the global deal trigger and every campaign's deal
    /// triggers, each with the path of the setting.
    pub fn deal_trigger_sources(&self) -> Vec<String> {
        let mut sources = Vec::new();
        if self.sync.deals.create.enabled {
            sources.push("sync.deals.create".to_owned());
        }
        for (id, campaign) in &self.campaigns {
            if !campaign.deal_triggers.is_empty() {
                sources.push(format!("{}.deal_triggers", campaign_path(id)));
            }
        }
        sources
    }

    /// A deal is created with the deal defaults, so any way of creating one needs a pipeline and a
    /// stage.
    fn validate_deal_defaults(&self, errors: &mut Vec<RuleError>) {
        let sources = self.deal_trigger_sources();
        let Some(first) = sources.first() else {
            return;
        };
        let deals = &self.sync.deals;
        let missing = |value: &Option<String>| value.as_deref().is_none_or(|v| v.trim().is_empty());
        if missing(&deals.pipeline) {
            errors.push(RuleError::new(
                "sync.deals.pipeline",
                format!(
                    "{first} creates deals, so set the id of the pipeline they are created in \
                     (HubSpot's built-in pipeline is \"default\")"
                ),
            ));
        }
        if missing(&deals.stage) {
            errors.push(RuleError::new(
                "sync.deals.stage",
                format!(
                    "{first} creates deals, so set the id of the stage they start in \
                     (for example \"appointmentscheduled\" in the \"default\" pipeline)"
                ),
            ));
        }
    }
}

/// One problem in the rules: the path of the field and what is allowed there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RuleError {
    /// Dotted path of the field in the config file, e.g. `users.mapping[3].owner`.
    pub path: String,
    /// What is wrong and what is allowed instead.
    pub message: String,
}

impl RuleError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A key as it would be written in a TOML dotted path: bare when it can be, quoted otherwise.
pub fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

fn campaign_path(id: &str) -> String {
    format!("campaigns.{}", toml_key(id))
}

/// Shared checks for names written in the rules (fields, properties, ids).
pub(crate) fn check_name(path: &str, value: &str, what: &str, errors: &mut Vec<RuleError>) {
    if value.trim().is_empty() {
        errors.push(RuleError::new(
            path,
            format!("must not be empty: name {what}"),
        ));
    } else if value.chars().any(char::is_whitespace) {
        errors.push(RuleError::new(
            path,
            format!("{value:?} contains whitespace: name {what} by its internal name"),
        ));
    }
}

/// Reports entries of a list that appear more than once.
pub(crate) fn check_unique<T: PartialEq + fmt::Debug>(
    path: &str,
    items: &[T],
    errors: &mut Vec<RuleError>,
) {
    for (index, item) in items.iter().enumerate() {
        if let Some(first) = items[..index].iter().position(|earlier| earlier == item) {
            errors.push(RuleError::new(
                format!("{path}[{index}]"),
                format!("{item:?} is already listed at {path}[{first}]: list each entry once"),
            ));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Rules from TOML, as written.
    pub(crate) fn rules(text: &str) -> Rules {
        toml::from_str(text).expect("rules parse")
    }

    /// Rules from TOML that must also pass validation.
    pub(crate) fn valid_rules(text: &str) -> Rules {
        let rules = rules(text);
        assert_eq!(rules.validate(), [], "test rules are valid");
        rules
    }

    fn paths(rules: &Rules) -> Vec<String> {
        rules.validate().into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn empty_rules_are_valid_and_use_the_defaults() {
        let rules = rules("");
        assert_eq!(rules, Rules::default());
        assert!(rules.validate().is_empty(), "{:?}", rules.validate());
        assert!(rules.sync.contacts.create.enabled);
        assert_eq!(rules.sync.contacts.id_property, "email");
        assert!(!rules.sync.deals.create.enabled);
        assert!(rules.campaign("never-configured").push_to_crm);
    }

    #[test]
    fn unknown_keys_are_refused_everywhere() {
        for text in [
            "colour = 1",
            "[sync]\ntickets = {}",
            "[sync.contacts]\nid_propery = \"email\"",
            "[users]\ndefault_user = \"1\"",
            "[activities.email_sent]\nstore = \"note\"",
            "[activities.email_forwarded]\nenabled = true",
            "[campaigns.c1]\npush = false",
        ] {
            let error = toml::from_str::<Rules>(text).expect_err(text);
            assert!(error.message().contains("unknown field"), "{text}: {error}");
        }
    }

    #[test]
    fn a_campaign_deal_trigger_needs_pipeline_and_stage() {
        let rules = rules(
            r#"
            [campaigns."q3 outbound"]
            deal_triggers = ["email_replied"]
            "#,
        );
        let errors = rules.validate();
        assert_eq!(paths(&rules), ["sync.deals.pipeline", "sync.deals.stage"]);
        assert!(
            errors[0]
                .message
                .contains("campaigns.\"q3 outbound\".deal_triggers creates deals"),
            "{}",
            errors[0]
        );

        let complete = self::rules(
            r#"
            [sync.deals]
            pipeline = "default"
            stage = "appointmentscheduled"
            [campaigns."q3 outbound"]
            deal_triggers = ["email_replied"]
            "#,
        );
        assert!(complete.validate().is_empty(), "{:?}", complete.validate());
    }

    #[test]
    fn the_global_deal_trigger_needs_pipeline_and_stage_too() {
        let rules = rules(
            r#"
            [sync.deals.create]
            enabled = true
            trigger = { on_activity = "meeting_booked" }
            [sync.deals]
            stage = "appointmentscheduled"
            "#,
        );
        assert_eq!(paths(&rules), ["sync.deals.pipeline"]);
    }

    #[test]
    fn errors_display_field_first() {
        let error = RuleError::new("users.mapping[3].owner", "must be digits");
        assert_eq!(error.to_string(), "users.mapping[3].owner: must be digits");
    }

    #[test]
    fn keys_are_quoted_only_when_toml_needs_it() {
        assert_eq!(toml_key("cmp_42"), "cmp_42");
        assert_eq!(toml_key("cmp 42"), "\"cmp 42\"");
        assert_eq!(toml_key(""), "\"\"");
    }
}
