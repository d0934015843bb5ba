//! Rule 11, first half: a campaign with push-to-CRM switched off sends nothing to HubSpot: no
//! contact changes, no activities, no deals.
//!
//! ```text
//! ContactChanged { contact_id: "ct_1", campaign_id: "cmp_partners", .. }
//!   with [campaigns.cmp_partners] push_to_crm = false
//!   -> Skip { code: CAMPAIGN_PUSH_DISABLED,
//!             reason: "contact ct_1 belongs to campaign cmp_partners, which has push_to_crm = false: ..." }
//! ```
//!
//! A contact or an activity without a campaign, or of a campaign the rules do not mention, is
//! pushed. An activity of a campaign with push-to-CRM off is skipped and creates no deal.

use hubsync_schemas::{ActivityRecorded, ContactChanged};

use crate::activity::describe;
use crate::decision::{Skip, SkipCode};
use crate::rules::{Rules, toml_key};

/// Skips a contact whose campaign does not push to the CRM.
pub fn check_campaign(event: &ContactChanged, rules: &Rules) -> Result<(), Skip> {
    let what = format!("contact {}", event.contact_id);
    check_push(&what, event.campaign_id.as_deref(), rules)
}

/// Skips an activity whose campaign does not push to the CRM.
pub fn check_activity_campaign(event: &ActivityRecorded, rules: &Rules) -> Result<(), Skip> {
    let campaign = event.campaign.as_ref().map(|c| c.campaign_id.as_str());
    check_push(&describe(event), campaign, rules)
}

fn check_push(what: &str, campaign: Option<&str>, rules: &Rules) -> Result<(), Skip> {
    let Some(campaign) = campaign.map(str::trim) else {
        return Ok(());
    };
    if campaign.is_empty() || rules.campaign(campaign).push_to_crm {
        return Ok(());
    }
    Err(Skip {
        code: SkipCode::CampaignPushDisabled,
        reason: format!(
            "{what} belongs to campaign {campaign}, which has push_to_crm = false: nothing \
             from this campaign is sent to HubSpot; set campaigns.{}.push_to_crm = true to sync it",
            toml_key(campaign)
        ),
    })
}

#[cfg(test)]
mod tests {
    use hubsync_schemas::ChangeKind;

    use super::*;
    use crate::fields::tests::{blank_contact, some};

    fn rules() -> Rules {
        toml::from_str(
            r#"
            [campaigns.cmp_partners]
            push_to_crm = false
            [campaigns."q3 outbound"]
            push_to_crm = false
            [campaigns.cmp_pushed]
            push_to_crm = true
            "#,
        )
        .expect("rules parse")
    }

    fn check(campaign: Option<&str>) -> Result<(), Skip> {
        let mut event = blank_contact(ChangeKind::Updated);
        event.campaign_id = campaign.map(str::to_owned);
        check_campaign(&event, &rules())
    }

    #[test]
    fn a_campaign_with_push_off_skips_naming_the_campaign() {
        let skip = check(Some("cmp_partners")).unwrap_err();
        assert_eq!(skip.code, SkipCode::CampaignPushDisabled);
        assert!(
            skip.reason.starts_with(
                "contact ct_1 belongs to campaign cmp_partners, which has push_to_crm = false"
            ),
            "{}",
            skip.reason
        );
        assert!(
            skip.reason
                .contains("campaigns.cmp_partners.push_to_crm = true")
        );
        let quoted = check(Some(" q3 outbound ")).unwrap_err();
        assert!(
            quoted
                .reason
                .contains("campaigns.\"q3 outbound\".push_to_crm"),
            "{}",
            quoted.reason
        );
    }

    #[test]
    fn an_activity_of_a_campaign_with_push_off_is_skipped_naming_the_campaign() {
        let mut event =
            crate::activity::tests::blank_activity(hubsync_schemas::ActivityType::EmailSent);
        event.campaign = Some(hubsync_schemas::CampaignRef {
            campaign_id: "cmp_partners".to_owned(),
            name: None,
            sequence_step: None,
        });
        let skip = check_activity_campaign(&event, &rules()).unwrap_err();
        assert_eq!(skip.code, SkipCode::CampaignPushDisabled);
        assert!(
            skip.reason.starts_with(
                "activity act_1 (email_sent) belongs to campaign cmp_partners, which has \
                 push_to_crm = false"
            ),
            "{}",
            skip.reason
        );
        event.campaign = None;
        assert_eq!(check_activity_campaign(&event, &rules()), Ok(()));
    }

    #[test]
    fn other_campaigns_and_contacts_without_one_are_pushed() {
        assert_eq!(check(Some("cmp_pushed")), Ok(()));
        assert_eq!(check(Some("cmp_never_configured")), Ok(()));
        assert_eq!(check(Some("  ")), Ok(()));
        assert_eq!(check(None), Ok(()));
        let mut event = blank_contact(ChangeKind::Updated);
        event.campaign_id = some("cmp_partners");
        assert!(
            check_campaign(&event, &Rules::default()).is_ok(),
            "no exceptions configured"
        );
    }
}
