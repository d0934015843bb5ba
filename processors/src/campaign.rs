//! Rule 11, first half: a campaign with push-to-CRM switched off sends nothing to HubSpot.
//!
//! ```text
//! ContactChanged { contact_id: "ct_1", campaign_id: "cmp_partners", .. }
//!   with [campaigns.cmp_partners] push_to_crm = false
//!   -> Skip { code: CAMPAIGN_PUSH_DISABLED,
//!             reason: "contact ct_1 belongs to campaign cmp_partners, which has push_to_crm = false: ..." }
//! ```
//!
//! A contact without a campaign, or of a campaign the rules do not mention, is pushed.

use hubsync_schemas::ContactChanged;

use crate::decision::{Skip, SkipCode};
use crate::rules::{Rules, toml_key};

/// Skips a contact whose campaign does not push to the CRM.
pub fn check_campaign(event: &ContactChanged, rules: &Rules) -> Result<(), Skip> {
    let Some(campaign) = event.campaign_id.as_deref().map(str::trim) else {
        return Ok(());
    };
    if campaign.is_empty() || rules.campaign(campaign).push_to_crm {
        return Ok(());
    }
    Err(Skip {
        code: SkipCode::CampaignPushDisabled,
        reason: format!(
            "contact {} belongs to campaign {campaign}, which has push_to_crm = false: nothing \
             from this campaign is sent to HubSpot; set campaigns.{}.push_to_crm = true to sync it",
            event.contact_id,
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
