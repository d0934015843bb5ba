//! Rule 9, activities: whether an activity is synced, and as which HubSpot activity.
//!
//! ```text
//! ActivityRecorded { activity_id: "act_1", activity_type: EMAIL_OPENED, .. }
//!   with [activities] email_opened = { enabled = true }
//!   -> Stored { activity: email_opened, store_as: note, object: NOTE }
//! ActivityRecorded { activity_type: LINKEDIN_PROFILE_VISITED, .. }   (off by default)
//!   -> Skip { code: ACTIVITY_TYPE_DISABLED, reason: "activity act_1 (linkedin_profile_visited) is not synced: ..." }
//! ActivityRecorded { activity_type: UNSUBSCRIBED, unsubscribe_self_initiated: false, .. }
//!   -> Skip { code: UNSUBSCRIBE_NOT_SELF_INITIATED, reason: "activity act_1: contact ct_1 was put on the block list by an operator ..." }
//! ```
//!
//! The policy of a type is `[activities]`'s setting over the type's default
//! ([`ActivityRules::policy`]); a type this build does not know (read as `UNKNOWN`) follows
//! `activities.unknown`. Opens, clicks and every other type that is not a message never become
//! HubSpot emails: the config refuses it, and should such a policy reach this point anyway the
//! activity is stored as a note. An unsubscribe is synced only when the lead unsubscribed
//! themself (`unsubscribe_self_initiated == true`); an operator's block list, or not knowing who
//! did it, is skipped.

use hubsync_schemas::{ActivityRecorded, HubSpotObjectType};

use crate::decision::{Skip, SkipCode};
use crate::rules::{ActivityRules, ActivityType, StoreAs, toml_key};

/// How an activity that is synced is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub activity: ActivityType,
    pub store_as: StoreAs,
    /// The HubSpot object type of `store_as`.
    pub object: HubSpotObjectType,
}

/// The rules' activity type of an upstream activity type.
pub fn activity_type(upstream: hubsync_schemas::ActivityType) -> ActivityType {
    use hubsync_schemas::ActivityType as Upstream;
    match upstream {
        Upstream::EmailSent => ActivityType::EmailSent,
        Upstream::EmailOpened => ActivityType::EmailOpened,
        Upstream::EmailClicked => ActivityType::EmailClicked,
        Upstream::EmailReplied => ActivityType::EmailReplied,
        Upstream::EmailBounced => ActivityType::EmailBounced,
        Upstream::LinkedinInviteSent => ActivityType::LinkedinInviteSent,
        Upstream::LinkedinInviteAccepted => ActivityType::LinkedinInviteAccepted,
        Upstream::LinkedinMessageSent => ActivityType::LinkedinMessageSent,
        Upstream::LinkedinReplied => ActivityType::LinkedinReplied,
        Upstream::LinkedinProfileVisited => ActivityType::LinkedinProfileVisited,
        Upstream::Call => ActivityType::Call,
        Upstream::Task => ActivityType::Task,
        Upstream::MeetingBooked => ActivityType::MeetingBooked,
        Upstream::Unsubscribed => ActivityType::Unsubscribed,
        Upstream::Unknown => ActivityType::Unknown,
    }
}

/// The HubSpot object type an activity stored as `store_as` is written as.
pub fn object_type(store_as: StoreAs) -> HubSpotObjectType {
    match store_as {
        StoreAs::Email => HubSpotObjectType::Email,
        StoreAs::Note => HubSpotObjectType::Note,
        StoreAs::Call => HubSpotObjectType::Call,
        StoreAs::Task => HubSpotObjectType::Task,
        StoreAs::Meeting => HubSpotObjectType::Meeting,
    }
}

/// How the activity is stored, or why it is not synced.
pub fn stored_as(event: &ActivityRecorded, rules: &ActivityRules) -> Result<Stored, Skip> {
    let activity = activity_type(event.activity_type);
    let policy = rules.policy(activity);
    if !policy.enabled {
        return Err(disabled(event, activity, rules));
    }
    if activity == ActivityType::Unsubscribed && event.unsubscribe_self_initiated != Some(true) {
        return Err(not_self_initiated(event));
    }
    let store_as = store_as(activity, rules);
    Ok(Stored {
        activity,
        store_as,
        object: object_type(store_as),
    })
}

/// The HubSpot object an activity of this event's type is stored as, whether or not its type
/// is synced (for the outcome of a skipped activity).
pub fn planned_object(event: &ActivityRecorded, rules: &ActivityRules) -> HubSpotObjectType {
    object_type(store_as(activity_type(event.activity_type), rules))
}

/// The configured store-as choice, a note for a type that cannot be an email.
fn store_as(activity: ActivityType, rules: &ActivityRules) -> StoreAs {
    match rules.policy(activity).store_as {
        StoreAs::Email if !activity.can_be_email() => StoreAs::Note,
        store_as => store_as,
    }
}

/// `activity act_1 (email_opened)`, with the producer's own name for a type hubsync does not
/// know: `activity act_1 (unknown type "email_forwarded")`.
pub fn describe(event: &ActivityRecorded) -> String {
    let activity = activity_type(event.activity_type);
    if activity == ActivityType::Unknown {
        format!(
            "activity {} (unknown type {:?})",
            event.activity_id, event.activity_type_name
        )
    } else {
        format!("activity {} ({activity})", event.activity_id)
    }
}

fn disabled(event: &ActivityRecorded, activity: ActivityType, rules: &ActivityRules) -> Skip {
    let key = toml_key(activity.as_str());
    let why = match rules.setting(activity).enabled {
        Some(_) => format!("activities.{key}.enabled = false"),
        None => format!("{activity} activities are off by default"),
    };
    let unknown = if activity == ActivityType::Unknown {
        "; types hubsync does not know follow activities.unknown"
    } else {
        ""
    };
    Skip {
        code: SkipCode::ActivityTypeDisabled,
        reason: format!(
            "{} is not synced: {why}{unknown}; set activities.{key} = {{ enabled = true }} to \
             sync it",
            describe(event)
        ),
    }
}

fn not_self_initiated(event: &ActivityRecorded) -> Skip {
    let who = match event.unsubscribe_self_initiated {
        Some(_) => "was put on the block list by an operator, not unsubscribed by themself",
        None => "unsubscribed, but the event does not say whether the lead did it themself",
    };
    Skip {
        code: SkipCode::UnsubscribeNotSelfInitiated,
        reason: format!(
            "{}: contact {} {who}; only unsubscribes the lead made themself \
             (unsubscribe_self_initiated = true) are synced",
            describe(event),
            event.contact_id
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use hubsync_schemas::{ActivityRecorded, examples};

    use super::*;
    use crate::rules::{ActivitySetting, Rules};

    /// An activity with only its ids, type and time set, to fill in per test.
    pub(crate) fn blank_activity(kind: hubsync_schemas::ActivityType) -> ActivityRecorded {
        ActivityRecorded {
            event_id: "3c1f0a9e-5b7d-4e2a-9c8b-7d6e5f4a3b21".to_owned(),
            event_time: examples::EXAMPLE_TIME,
            team_id: "team_1".to_owned(),
            activity_id: "act_1".to_owned(),
            contact_id: "ct_1".to_owned(),
            company_id: None,
            contact_email: None,
            activity_type: kind,
            activity_type_name: activity_type(kind).as_str().to_owned(),
            actor: None,
            sender: None,
            campaign: None,
            unsubscribe_self_initiated: None,
            subject: None,
            body: None,
            url: None,
            duration_ms: None,
            outcome: None,
            details: BTreeMap::new(),
        }
    }

    fn rules(text: &str) -> ActivityRules {
        let rules: Rules = toml::from_str(text).expect("rules parse");
        rules.activities
    }

    fn stored(kind: hubsync_schemas::ActivityType, rules: &ActivityRules) -> Result<Stored, Skip> {
        let mut event = blank_activity(kind);
        event.unsubscribe_self_initiated = Some(true);
        stored_as(&event, rules)
    }

    #[test]
    fn every_upstream_type_has_its_rules_type() {
        for upstream in hubsync_schemas::ActivityType::ALL {
            let activity = activity_type(*upstream);
            assert_eq!(
                activity.as_str().to_ascii_uppercase(),
                upstream.as_str(),
                "{upstream:?}"
            );
        }
    }

    #[test]
    fn every_type_follows_its_default_policy() {
        use hubsync_schemas::ActivityType as Up;
        let defaults = ActivityRules::default();
        let expected = [
            (Up::EmailSent, Some(HubSpotObjectType::Email)),
            (Up::EmailOpened, None),
            (Up::EmailClicked, Some(HubSpotObjectType::Note)),
            (Up::EmailReplied, Some(HubSpotObjectType::Email)),
            (Up::EmailBounced, Some(HubSpotObjectType::Email)),
            (Up::LinkedinInviteSent, Some(HubSpotObjectType::Note)),
            (Up::LinkedinInviteAccepted, Some(HubSpotObjectType::Note)),
            (Up::LinkedinMessageSent, Some(HubSpotObjectType::Note)),
            (Up::LinkedinReplied, Some(HubSpotObjectType::Note)),
            (Up::LinkedinProfileVisited, None),
            (Up::Call, Some(HubSpotObjectType::Call)),
            (Up::Task, Some(HubSpotObjectType::Task)),
            (Up::MeetingBooked, Some(HubSpotObjectType::Meeting)),
            (Up::Unsubscribed, Some(HubSpotObjectType::Note)),
            (Up::Unknown, None),
        ];
        assert_eq!(expected.len(), hubsync_schemas::ActivityType::ALL.len());
        for (kind, object) in expected {
            let decided = stored(kind, &defaults);
            assert_eq!(decided.as_ref().ok().map(|s| s.object), object, "{kind:?}");
            if let Err(skip) = decided {
                assert_eq!(skip.code, SkipCode::ActivityTypeDisabled);
                assert!(skip.reason.contains("off by default"), "{}", skip.reason);
            }
        }
    }

    #[test]
    fn every_store_as_choice_becomes_its_object() {
        use hubsync_schemas::ActivityType as Up;
        for (choice, object) in [
            ("email", HubSpotObjectType::Email),
            ("note", HubSpotObjectType::Note),
            ("call", HubSpotObjectType::Call),
            ("task", HubSpotObjectType::Task),
            ("meeting", HubSpotObjectType::Meeting),
        ] {
            let rules = rules(&format!(
                "[activities]\nemail_replied = {{ store_as = \"{choice}\" }}"
            ));
            let decided = stored(Up::EmailReplied, &rules).expect("replies are synced");
            assert_eq!(decided.object, object, "{choice}");
            assert_eq!(
                decided.store_as.object_type(),
                object_type(decided.store_as).as_str().to_ascii_lowercase() + "s"
            );
        }
    }

    #[test]
    fn a_type_switched_off_is_skipped_naming_the_setting() {
        let rules = rules("[activities]\ncall = { enabled = false }");
        let mut event = blank_activity(hubsync_schemas::ActivityType::Call);
        event.activity_id = "act_9".to_owned();
        let skip = stored_as(&event, &rules).expect_err("calls are off");
        assert_eq!(skip.code, SkipCode::ActivityTypeDisabled);
        assert!(
            skip.reason.starts_with(
                "activity act_9 (call) is not synced: activities.call.enabled = false"
            ),
            "{}",
            skip.reason
        );
        assert!(skip.reason.contains("activities.call = { enabled = true }"));
    }

    #[test]
    fn unknown_types_use_the_unknown_setting() {
        let mut event = blank_activity(hubsync_schemas::ActivityType::Unknown);
        event.activity_type_name = "email_forwarded".to_owned();
        let skip = stored_as(&event, &ActivityRules::default()).expect_err("off by default");
        assert!(
            skip.reason.contains("unknown type \"email_forwarded\""),
            "{}",
            skip.reason
        );
        assert!(
            skip.reason.contains("activities.unknown"),
            "{}",
            skip.reason
        );

        let on = rules("[activities]\nunknown = { enabled = true, store_as = \"task\" }");
        let decided = stored_as(&event, &on).expect("unknown types synced");
        assert_eq!(decided.object, HubSpotObjectType::Task);
        assert_eq!(decided.activity, ActivityType::Unknown);
        assert_eq!(planned_object(&event, &on), HubSpotObjectType::Task);
        assert_eq!(
            planned_object(&event, &ActivityRules::default()),
            HubSpotObjectType::Note,
            "a type that is off still has the object it would be stored as"
        );
    }

    #[test]
    fn opens_and_clicks_never_become_emails() {
        // The config refuses this; a policy built around the validation still falls back.
        let mut rules = ActivityRules::default();
        for activity in [
            ActivityType::EmailOpened,
            ActivityType::EmailClicked,
            ActivityType::Call,
        ] {
            let setting = ActivitySetting {
                enabled: Some(true),
                store_as: Some(StoreAs::Email),
            };
            match activity {
                ActivityType::EmailOpened => rules.email_opened = setting,
                ActivityType::EmailClicked => rules.email_clicked = setting,
                _ => rules.call = setting,
            }
        }
        use hubsync_schemas::ActivityType as Up;
        for kind in [Up::EmailOpened, Up::EmailClicked, Up::Call] {
            let decided = stored(kind, &rules).expect("enabled");
            assert_eq!(decided.store_as, StoreAs::Note, "{kind:?}");
            assert_eq!(decided.object, HubSpotObjectType::Note, "{kind:?}");
        }
    }

    #[test]
    fn only_unsubscribes_the_lead_made_are_synced() {
        let mut event = blank_activity(hubsync_schemas::ActivityType::Unsubscribed);
        event.unsubscribe_self_initiated = Some(true);
        let decided = stored_as(&event, &ActivityRules::default()).expect("self-initiated");
        assert_eq!(decided.object, HubSpotObjectType::Note);

        event.unsubscribe_self_initiated = Some(false);
        let skip = stored_as(&event, &ActivityRules::default()).expect_err("operator");
        assert_eq!(skip.code, SkipCode::UnsubscribeNotSelfInitiated);
        assert!(
            skip.reason.contains("block list by an operator"),
            "{}",
            skip.reason
        );

        event.unsubscribe_self_initiated = None;
        let skip = stored_as(&event, &ActivityRules::default()).expect_err("unknown");
        assert_eq!(skip.code, SkipCode::UnsubscribeNotSelfInitiated);
        assert!(skip.reason.contains("does not say"), "{}", skip.reason);

        let off = rules("[activities]\nunsubscribed = { enabled = false }");
        event.unsubscribe_self_initiated = Some(true);
        let skip = stored_as(&event, &off).expect_err("type off");
        assert_eq!(skip.code, SkipCode::ActivityTypeDisabled);
    }
}
