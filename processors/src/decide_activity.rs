//! The whole process-stage decision for one activity event: the activity rules applied in order,
//! ending in an activity draft (and a deal draft when the activity triggers one), a skip or a
//! refusal.
//!
//! ```text
//! ActivityRecorded { activity_id: "act_778812", activity_type: EMAIL_CLICKED,
//!   contact_email: "jordan.lee@northwind.example", company_id: "co_2207",
//!   sender: { user_id: "usr_4821" }, campaign: { campaign_id: "cmp_q2_outbound", .. }, .. }
//!   with defaults and [[users.mapping]] usr_4821 -> 77120345
//!   -> Write { activity: CommandDraft { NOTE, CREATE_ACTIVITY, hubsync_activity_id:act_778812,
//!        properties { hs_timestamp, hs_note_body, hubspot_owner_id: "77120345" },
//!        associations [CONTACT email:jordan.lee@northwind.example (202), COMPANY company_id:co_2207 (190)] },
//!      deal: None }
//! ```
//!
//! The order, and why:
//! 1. campaign without push-to-CRM -> skip `CAMPAIGN_PUSH_DISABLED` ([`campaign`]): the team
//!    wants nothing of it in HubSpot, bad or not;
//! 2. type switched off -> skip `ACTIVITY_TYPE_DISABLED`; an unsubscribe the lead did not make
//!    -> skip `UNSUBSCRIBE_NOT_SELF_INITIATED` ([`activity`]);
//! 3. no contact id and no email -> skip `NO_CONTACT_IDENTITY`: it could be linked to nothing;
//! 4. the checks: a contact email that is not one, an empty activity id, a missing or impossible
//!    event time, and the deal's values when the activity triggers a deal ([`deal`]); every
//!    problem is collected and any refuses the event as `Invalid`;
//! 5. the activity draft: its properties ([`activity_body`]), owner ([`ownership`]) and
//!    associations ([`associations`]), and the deal draft.
//!
//! How the drafts are encoded (identities, owner, deal) is described in [`crate::decision`].

use hubsync_schemas::{ActivityRecorded, CommandAction, Identity, IdentityKind};

use crate::activity_body::{activity_properties, hubspot_datetime};
use crate::associations::{
    activity_associations, company_identity, contact_identity, deal_identity,
};
use crate::catalog::PropertyCatalog;
use crate::deal::{campaign_has_deals, campaign_of, deal_draft};
use crate::decision::{
    ACTIVITY_ID_PROPERTY, ActivityDecision, CommandDraft, Problem, ProblemCode, SkipCode,
};
use crate::normalize;
use crate::ownership::{OwnerDirectory, activity_owner};
use crate::rules::Rules;
use crate::{activity, campaign};

/// The decision for one activity event. `owners` serves `users.auto_map_by_email` (an empty
/// directory when it is off).
pub fn decide_activity(
    event: &ActivityRecorded,
    rules: &Rules,
    catalog: &PropertyCatalog,
    owners: &OwnerDirectory,
) -> ActivityDecision {
    if let Err(skip) = campaign::check_activity_campaign(event, rules) {
        return skip.into();
    }
    let stored = match activity::stored_as(event, &rules.activities) {
        Ok(stored) => stored,
        Err(skip) => return skip.into(),
    };
    let mut problems = Vec::new();
    let contact = match contact_identity(event) {
        Ok(Some(contact)) => Some(contact),
        Ok(None) => return no_contact(event),
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    let activity_id = normalize::trim(&event.activity_id);
    if activity_id.is_empty() {
        problems.push(Problem {
            code: ProblemCode::MissingValue,
            field: "activity_id".to_owned(),
            property: None,
            message: "activity_id is empty, and HubSpot gets one activity per activity id: send \
                      the upstream id of the activity"
                .to_owned(),
        });
    }
    let timestamp = match event_timestamp(event) {
        Ok(timestamp) => Some(timestamp),
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    let owner = activity_owner(event, &rules.users, owners);
    let mut deal = None;
    if let Some(contact) = &contact {
        match deal_draft(event, stored.activity, rules, catalog, contact, &owner) {
            Ok(drafted) => deal = drafted.map(Box::new),
            Err(found) => problems.extend(found),
        }
    }
    let (Some(contact), Some(timestamp), true) = (contact, timestamp, problems.is_empty()) else {
        return ActivityDecision::Invalid { problems };
    };

    let identity = Identity {
        kind: IdentityKind::SourceId,
        property: ACTIVITY_ID_PROPERTY.to_owned(),
        value: activity_id.to_owned(),
    };
    let mut draft = CommandDraft::new(stored.object, CommandAction::CreateActivity, identity);
    draft.properties = activity_properties(event, stored.activity, stored.store_as, &timestamp);
    owner.write_to(&mut draft.properties, &mut draft.fill_if_empty);
    draft.may_create = true;
    let open_deal = open_deal(event, rules);
    draft.associations = activity_associations(
        stored.object,
        &contact,
        company_identity(event).as_ref(),
        open_deal.as_ref(),
        &rules.activities,
    );
    ActivityDecision::Write {
        activity: draft,
        deal,
    }
}

/// The deal hubsync keeps for the contact in the activity's campaign, when contacts may have one
/// there; whether it exists yet is for the sink to find.
fn open_deal(event: &ActivityRecorded, rules: &Rules) -> Option<Identity> {
    let campaign = campaign_of(event)?;
    let contact_id = normalize::trim(&event.contact_id);
    if contact_id.is_empty() || !campaign_has_deals(&campaign.campaign_id, rules) {
        return None;
    }
    Some(deal_identity(contact_id, campaign.campaign_id.trim()))
}

/// `hs_timestamp`: the event time as HubSpot's datetime.
fn event_timestamp(event: &ActivityRecorded) -> Result<String, Problem> {
    let problem = |code, message: String| Problem {
        code,
        field: "event_time".to_owned(),
        property: Some("hs_timestamp".to_owned()),
        message,
    };
    if event.event_time <= 0 {
        return Err(problem(
            ProblemCode::MissingValue,
            format!(
                "event_time is {}, and every HubSpot activity needs the time it happened \
                 (hs_timestamp): send the activity's time in milliseconds since the epoch",
                event.event_time
            ),
        ));
    }
    hubspot_datetime(event.event_time).ok_or_else(|| {
        problem(
            ProblemCode::InvalidDatetime,
            format!(
                "event_time {} is not a time HubSpot can hold: send milliseconds since the epoch",
                event.event_time
            ),
        )
    })
}

fn no_contact(event: &ActivityRecorded) -> ActivityDecision {
    ActivityDecision::Skip {
        code: SkipCode::NoContactIdentity,
        reason: format!(
            "{} names no contact: contact_id and contact_email are both empty, so it cannot be \
             linked to a HubSpot contact; send at least one of them upstream",
            activity::describe(event)
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hubsync_schemas::{Association, CampaignRef, HubSpotObjectType, Sender, examples};

    use super::*;
    use crate::activity::tests::blank_activity;
    use crate::catalog::{PropertyKind, PropertySpec};
    use crate::decision::{ActivityOwner, DEAL_KEY_PROPERTY};
    use crate::rules::OWNER_PROPERTY;

    use crate::rules::tests::valid_rules as rules;

    /// A team with a deal-triggering campaign, a quiet campaign and mapped users.
    fn team() -> Rules {
        rules(
            r#"
            [sync.deals]
            pipeline = "default"
            stage = "appointmentscheduled"
            name_template = "{contact.email} – {campaign.name}"

            [users]
            default_owner = "90011"
            [[users.mapping]]
            user = "usr_4821"
            owner = "77120345"

            [activities]
            associate_company = true
            associate_open_deal = true

            [campaigns.cmp_q3]
            deal_triggers = ["email_replied", "meeting_booked"]
            [campaigns.cmp_partners]
            push_to_crm = false
            "#,
        )
    }

    fn portal() -> PropertyCatalog {
        use HubSpotObjectType::Deal;
        PropertyCatalog::new()
            .with(Deal, "dealname", PropertySpec::new(PropertyKind::String))
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
    }

    fn owners() -> OwnerDirectory {
        [("grace@acme-sales.io", "90013")].into_iter().collect()
    }

    fn decide(event: &ActivityRecorded, rules: &Rules) -> ActivityDecision {
        decide_activity(event, rules, &portal(), &owners())
    }

    fn write(decision: ActivityDecision) -> (CommandDraft, Option<CommandDraft>) {
        match decision {
            ActivityDecision::Write { activity, deal } => (activity, deal.map(|d| *d)),
            other => panic!("expected a write, got {other:?}"),
        }
    }

    fn in_campaign(kind: hubsync_schemas::ActivityType, campaign: &str) -> ActivityRecorded {
        let mut event = blank_activity(kind);
        event.contact_email = Some("ada@acme.io".to_owned());
        event.company_id = Some("co_1".to_owned());
        event.campaign = Some(CampaignRef {
            campaign_id: campaign.to_owned(),
            name: Some("Q3 outbound".to_owned()),
            sequence_step: Some(1),
        });
        event
    }

    fn links(associations: &[Association]) -> Vec<(HubSpotObjectType, String, i32)> {
        associations
            .iter()
            .map(|a| {
                let to = a.to_identity.as_ref().expect("by identity");
                (
                    a.to_object_type,
                    format!("{}:{}", to.property, to.value),
                    a.association_type_id,
                )
            })
            .collect()
    }

    fn owner(draft: &CommandDraft) -> Option<ActivityOwner> {
        ActivityOwner::of_properties(&draft.properties, &draft.fill_if_empty)
    }

    #[test]
    fn a_realistic_click_becomes_a_note_for_its_contact_and_company() {
        let event = examples::activity_recorded();
        let (note, deal) = write(decide(&event, &team()));
        assert_eq!(deal, None);
        assert_eq!(note.object_type, HubSpotObjectType::Note);
        assert_eq!(note.action, CommandAction::CreateActivity);
        assert_eq!(
            (
                note.identity.kind,
                note.identity.property.as_str(),
                note.identity.value.as_str()
            ),
            (IdentityKind::SourceId, "hubsync_activity_id", "act_778812")
        );
        assert!(note.may_create);
        assert!(note.create_only_properties.is_empty());
        assert_eq!(
            note.properties.get("hs_timestamp"),
            Some(&hubspot_datetime(examples::EXAMPLE_TIME + 90_000))
        );
        let body = note.properties["hs_note_body"]
            .as_deref()
            .unwrap_or_default();
        assert!(
            body.starts_with("Email link clicked<br>Campaign: Q2 outbound"),
            "{body}"
        );
        assert_eq!(
            owner(&note),
            Some(ActivityOwner::Sender("77120345".to_owned()))
        );
        assert!(note.fill_if_empty.is_empty());
        assert_eq!(
            links(&note.associations),
            [
                (
                    HubSpotObjectType::Contact,
                    "email:jordan.lee@northwind.example".to_owned(),
                    202
                ),
                (
                    HubSpotObjectType::Company,
                    "company_id:co_2207".to_owned(),
                    190
                ),
            ],
            "cmp_q2_outbound keeps no deals, so there is no deal to link"
        );
        assert_eq!(note.record(), "hubsync_activity_id:act_778812");
    }

    #[test]
    fn every_store_as_choice_writes_its_object_with_a_timestamp() {
        for (choice, object, property) in [
            ("email", HubSpotObjectType::Email, "hs_email_text"),
            ("note", HubSpotObjectType::Note, "hs_note_body"),
            ("call", HubSpotObjectType::Call, "hs_call_body"),
            ("task", HubSpotObjectType::Task, "hs_task_body"),
            ("meeting", HubSpotObjectType::Meeting, "hs_meeting_body"),
        ] {
            let rules = rules(&format!(
                "[activities]\nemail_replied = {{ store_as = \"{choice}\" }}"
            ));
            let mut event = blank_activity(hubsync_schemas::ActivityType::EmailReplied);
            event.body = Some("Sounds good".to_owned());
            let (draft, _) = write(decide(&event, &rules));
            assert_eq!(draft.object_type, object, "{choice}");
            assert!(draft.properties.contains_key("hs_timestamp"), "{choice}");
            let text = draft.properties[property].as_deref().unwrap_or_default();
            assert!(text.contains("Sounds good"), "{choice}: {text}");
            let contact_type =
                crate::associations::activity_type_ids(object).map(|ids| ids.contact);
            assert_eq!(
                Some(draft.associations[0].association_type_id),
                contact_type
            );
        }
    }

    #[test]
    fn skips_name_their_rule() {
        let team = team();
        let mut opened = blank_activity(hubsync_schemas::ActivityType::EmailOpened);
        opened.contact_email = Some("ada@acme.io".to_owned());
        assert_eq!(
            decide(&opened, &team).reason_code(),
            Some("ACTIVITY_TYPE_DISABLED")
        );

        let mut blocked = blank_activity(hubsync_schemas::ActivityType::Unsubscribed);
        blocked.unsubscribe_self_initiated = Some(false);
        assert_eq!(
            decide(&blocked, &team).reason_code(),
            Some("UNSUBSCRIBE_NOT_SELF_INITIATED")
        );
        blocked.unsubscribe_self_initiated = Some(true);
        let (note, _) = write(decide(&blocked, &team));
        assert_eq!(note.object_type, HubSpotObjectType::Note);

        let mut nobody = blank_activity(hubsync_schemas::ActivityType::Call);
        nobody.contact_id = String::new();
        match decide(&nobody, &team) {
            ActivityDecision::Skip { code, reason } => {
                assert_eq!(code, SkipCode::NoContactIdentity);
                assert!(
                    reason.starts_with("activity act_1 (call) names no contact"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn push_to_crm_off_skips_the_activity_and_its_deal_before_any_check() {
        let mut event = in_campaign(hubsync_schemas::ActivityType::EmailReplied, "cmp_partners");
        event.event_time = 0;
        event.contact_email = Some("not an email".to_owned());
        match decide(&event, &team()) {
            ActivityDecision::Skip { code, reason } => {
                assert_eq!(code, SkipCode::CampaignPushDisabled);
                assert!(reason.contains("campaign cmp_partners"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_activity_is_refused_naming_every_problem() {
        let mut event = blank_activity(hubsync_schemas::ActivityType::Call);
        event.event_time = 0;
        event.activity_id = " ".to_owned();
        event.contact_email = Some("ada at acme".to_owned());
        let problems = match decide(&event, &team()) {
            ActivityDecision::Invalid { problems } => problems,
            other => panic!("{other:?}"),
        };
        let found: Vec<_> = problems
            .iter()
            .map(|p| (p.code, p.field.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (ProblemCode::InvalidEmail, "contact_email"),
                (ProblemCode::MissingValue, "activity_id"),
                (ProblemCode::MissingValue, "event_time"),
            ]
        );
        event.activity_id = "act_1".to_owned();
        event.contact_email = None;
        event.event_time = i64::MAX;
        assert_eq!(
            decide(&event, &team()).reason_code(),
            Some("INVALID_DATETIME")
        );
    }

    #[test]
    fn ownership_falls_back_from_sender_to_contact_owner_to_default() {
        let mut team = team();
        let mut event = blank_activity(hubsync_schemas::ActivityType::Call);
        event.sender = Some(Sender {
            user_id: "usr_4821".to_owned(),
            email: None,
        });
        let (mapped, _) = write(decide(&event, &team));
        assert_eq!(
            mapped.properties[OWNER_PROPERTY].as_deref(),
            Some("77120345")
        );
        assert!(!mapped.fill_if_empty.contains(&OWNER_PROPERTY.to_owned()));

        event.sender = Some(Sender {
            user_id: "usr_grace".to_owned(),
            email: Some("Grace@acme-sales.io".to_owned()),
        });
        let (auto, _) = write(decide(&event, &team));
        assert_eq!(
            owner(&auto),
            Some(ActivityOwner::Sender("90013".to_owned()))
        );

        team.users.auto_map_by_email = false;
        let (contact_or_default, _) = write(decide(&event, &team));
        assert_eq!(
            contact_or_default.properties[OWNER_PROPERTY].as_deref(),
            Some("90011"),
            "the default owner, unless the contact has an owner"
        );
        assert_eq!(contact_or_default.fill_if_empty, [OWNER_PROPERTY]);

        team.users.default_owner = None;
        event.sender = None;
        let (contact_only, _) = write(decide(&event, &team));
        assert_eq!(contact_only.properties.get(OWNER_PROPERTY), Some(&None));
        assert_eq!(contact_only.fill_if_empty, [OWNER_PROPERTY]);
        assert_eq!(
            owner(&contact_only),
            Some(ActivityOwner::ContactOwner { fallback: None })
        );
    }

    #[test]
    fn a_deal_trigger_yields_a_deal_and_links_the_activity_to_it() {
        let mut event = in_campaign(hubsync_schemas::ActivityType::EmailReplied, "cmp_q3");
        event.sender = Some(Sender {
            user_id: "usr_4821".to_owned(),
            email: None,
        });
        let (email, deal) = write(decide(&event, &team()));
        let deal = deal.expect("a reply in cmp_q3 triggers a deal");
        assert_eq!(deal.object_type, HubSpotObjectType::Deal);
        assert_eq!(deal.identity.property, DEAL_KEY_PROPERTY);
        assert_eq!(deal.identity.value, "ct_1:cmp_q3");
        assert_eq!(
            deal.create_only_properties,
            BTreeMap::from([
                (
                    "dealname".to_owned(),
                    "ada@acme.io – Q3 outbound".to_owned()
                ),
                ("dealstage".to_owned(), "appointmentscheduled".to_owned()),
                (OWNER_PROPERTY.to_owned(), "77120345".to_owned()),
                ("pipeline".to_owned(), "default".to_owned()),
            ])
        );
        assert_eq!(email.object_type, HubSpotObjectType::Email);
        assert_eq!(
            links(&email.associations),
            [
                (
                    HubSpotObjectType::Contact,
                    "email:ada@acme.io".to_owned(),
                    198
                ),
                (
                    HubSpotObjectType::Company,
                    "company_id:co_1".to_owned(),
                    186
                ),
                (
                    HubSpotObjectType::Deal,
                    "hubsync_deal_key:ct_1:cmp_q3".to_owned(),
                    210
                ),
            ]
        );
        assert_eq!(
            deal.associations[0].to_identity,
            email.associations[0].to_identity
        );

        // Another type in the same campaign: no new deal, but the activity joins the open one.
        let sent = in_campaign(hubsync_schemas::ActivityType::EmailSent, "cmp_q3");
        let (email, deal) = write(decide(&sent, &team()));
        assert_eq!(deal, None);
        assert_eq!(email.associations.len(), 3);
    }

    #[test]
    fn associations_follow_the_activity_rules() {
        let mut rules = team();
        rules.activities.associate_company = false;
        rules.activities.associate_open_deal = false;
        let event = in_campaign(hubsync_schemas::ActivityType::EmailReplied, "cmp_q3");
        let (email, deal) = write(decide(&event, &rules));
        assert_eq!(
            links(&email.associations),
            [(
                HubSpotObjectType::Contact,
                "email:ada@acme.io".to_owned(),
                198
            )]
        );
        let deal = deal.expect("deal triggers do not depend on the association settings");
        assert_eq!(
            deal.associations.len(),
            2,
            "a deal always links contact and company"
        );
    }

    #[test]
    fn a_trigger_without_deal_values_the_portal_takes_refuses_the_event() {
        let mut rules = team();
        rules.sync.deals.stage = Some("won".to_owned());
        let event = in_campaign(hubsync_schemas::ActivityType::MeetingBooked, "cmp_q3");
        assert_eq!(decide(&event, &rules).reason_code(), Some("INVALID_OPTION"));
    }
}
