//! Campaign exceptions: the only rules a campaign may change.
//!
//! ```toml
//! [campaigns."cmp_q3_outbound"]
//! deal_triggers = ["email_replied", "meeting_booked"]
//!
//! [campaigns."cmp_partners"]
//! push_to_crm = false
//! ```

use serde::{Deserialize, Serialize};

use super::{ActivityType, RuleError, check_unique};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignRules {
    /// When off, nothing from this campaign reaches HubSpot: no records, no activities, no deals.
    pub push_to_crm: bool,
    /// Activity types that create a deal (with the deal defaults of `[sync.deals]`), associated
    /// with the contact and its company.
    pub deal_triggers: Vec<ActivityType>,
}

impl CampaignRules {
    /// The rules of a campaign the config does not mention.
    pub const DEFAULT: Self = Self {
        push_to_crm: true,
        deal_triggers: Vec::new(),
    };

    /// Whether an activity of this type creates a deal in this campaign.
    pub fn triggers_deal(&self, activity: ActivityType) -> bool {
        self.push_to_crm && self.deal_triggers.contains(&activity)
    }

    pub(crate) fn validate(&self, id: &str, errors: &mut Vec<RuleError>) {
        let path = format!("campaigns.{}", super::toml_key(id));
        let path = path.as_str();
        if id.trim().is_empty() {
            errors.push(RuleError::new(
                path,
                "a campaign id must not be empty: use the upstream campaign id as the key",
            ));
        }
        if !self.push_to_crm && !self.deal_triggers.is_empty() {
            errors.push(RuleError::new(
                format!("{path}.deal_triggers"),
                "this campaign has push_to_crm = false, so its deal triggers would never fire: \
                 remove them or push the campaign to the CRM",
            ));
        }
        check_unique(
            &format!("{path}.deal_triggers"),
            &self.deal_triggers,
            errors,
        );
    }
}

impl Default for CampaignRules {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::super::Rules;
    use super::*;

    use crate::rules::tests::rules;

    #[test]
    fn a_campaign_defaults_to_pushing_without_deal_triggers() {
        let rules = rules("[campaigns.c1]\n");
        assert_eq!(rules.campaign("c1"), &CampaignRules::DEFAULT);
        assert!(
            !rules
                .campaign("c1")
                .triggers_deal(ActivityType::EmailReplied)
        );
    }

    #[test]
    fn deal_triggers_name_activity_types() {
        let rules = rules(
            r#"
            [sync.deals]
            pipeline = "default"
            stage = "appointmentscheduled"
            [campaigns.c1]
            deal_triggers = ["email_replied", "meeting_booked"]
            "#,
        );
        assert!(
            rules
                .campaign("c1")
                .triggers_deal(ActivityType::MeetingBooked)
        );
        assert!(!rules.campaign("c1").triggers_deal(ActivityType::EmailSent));
        assert!(rules.validate().is_empty());
    }

    #[test]
    fn an_unknown_deal_trigger_is_refused_with_the_allowed_types() {
        let error = toml::from_str::<Rules>("[campaigns.c1]\ndeal_triggers = [\"replied\"]")
            .expect_err("unknown type");
        assert!(
            error.message().contains("unknown variant `replied`"),
            "{error}"
        );
        assert!(error.message().contains("`email_replied`"), "{error}");
    }

    #[test]
    fn deal_triggers_on_a_campaign_that_does_not_push_are_refused() {
        let rules = rules(
            r#"
            [sync.deals]
            pipeline = "default"
            stage = "appointmentscheduled"
            [campaigns.quiet]
            push_to_crm = false
            deal_triggers = ["email_replied", "email_replied"]
            [campaigns.""]
            "#,
        );
        let errors = rules.validate();
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "campaigns.\"\"",
                "campaigns.quiet.deal_triggers",
                "campaigns.quiet.deal_triggers[1]"
            ]
        );
        assert!(errors[1].message.contains("push_to_crm = false"));
    }
}
