//! Activity policy: per activity type, whether it is synced and which HubSpot activity it becomes,
//! and which records activities are associated with besides the contact.
//!
//! ```toml
//! [activities]
//! associate_open_deal = true
//! email_opened = { enabled = true }          # stored as a note, its default
//! linkedin_replied = { store_as = "task" }   # still enabled, its default
//! ```
//!
//! A type not mentioned keeps its default (see [`ActivityType::default_policy`]). Opens and clicks
//! are never HubSpot emails: HubSpot does not take them as email engagements.

use serde::{Deserialize, Serialize};

use super::RuleError;

/// The activity types upstream reports. `unknown` stands for any type hubsync does not know yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityType {
    EmailSent,
    EmailOpened,
    EmailClicked,
    EmailReplied,
    EmailBounced,
    LinkedinInviteSent,
    LinkedinInviteAccepted,
    LinkedinMessageSent,
    LinkedinReplied,
    LinkedinProfileVisited,
    Call,
    Task,
    MeetingBooked,
    /// Synced only when the lead unsubscribed themself, never for an operator's block list.
    Unsubscribed,
    Unknown,
}

impl ActivityType {
    pub const ALL: [ActivityType; 15] = [
        Self::EmailSent,
        Self::EmailOpened,
        Self::EmailClicked,
        Self::EmailReplied,
        Self::EmailBounced,
        Self::LinkedinInviteSent,
        Self::LinkedinInviteAccepted,
        Self::LinkedinMessageSent,
        Self::LinkedinReplied,
        Self::LinkedinProfileVisited,
        Self::Call,
        Self::Task,
        Self::MeetingBooked,
        Self::Unsubscribed,
        Self::Unknown,
    ];

    /// The name used in the config file and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmailSent => "email_sent",
            Self::EmailOpened => "email_opened",
            Self::EmailClicked => "email_clicked",
            Self::EmailReplied => "email_replied",
            Self::EmailBounced => "email_bounced",
            Self::LinkedinInviteSent => "linkedin_invite_sent",
            Self::LinkedinInviteAccepted => "linkedin_invite_accepted",
            Self::LinkedinMessageSent => "linkedin_message_sent",
            Self::LinkedinReplied => "linkedin_replied",
            Self::LinkedinProfileVisited => "linkedin_profile_visited",
            Self::Call => "call",
            Self::Task => "task",
            Self::MeetingBooked => "meeting_booked",
            Self::Unsubscribed => "unsubscribed",
            Self::Unknown => "unknown",
        }
    }

    /// The type named `name`, if hubsync knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// What a type does when the config says nothing about it: the one place these defaults live.
    ///
    /// Opens and profile visits are off because they are frequent and say little (opens are
    /// inflated by mail scanners); unknown types are off until someone decides what they mean.
    pub fn default_policy(self) -> ActivityPolicy {
        let (enabled, store_as) = match self {
            Self::EmailSent | Self::EmailReplied | Self::EmailBounced => (true, StoreAs::Email),
            Self::EmailOpened => (false, StoreAs::Note),
            Self::EmailClicked => (true, StoreAs::Note),
            Self::LinkedinInviteSent
            | Self::LinkedinInviteAccepted
            | Self::LinkedinMessageSent
            | Self::LinkedinReplied => (true, StoreAs::Note),
            Self::LinkedinProfileVisited => (false, StoreAs::Note),
            Self::Call => (true, StoreAs::Call),
            Self::Task => (true, StoreAs::Task),
            Self::MeetingBooked => (true, StoreAs::Meeting),
            Self::Unsubscribed => (true, StoreAs::Note),
            Self::Unknown => (false, StoreAs::Note),
        };
        ActivityPolicy { enabled, store_as }
    }

    /// The types that may be stored as a HubSpot email: messages that were actually sent or
    /// received. Opens and clicks are not emails, nor are LinkedIn steps, calls and the rest.
    pub fn can_be_email(self) -> bool {
        matches!(
            self,
            Self::EmailSent | Self::EmailReplied | Self::EmailBounced
        )
    }
}

impl std::fmt::Display for ActivityType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HubSpot activity object an activity is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreAs {
    Email,
    Note,
    Call,
    Task,
    Meeting,
}

impl StoreAs {
    /// The object type in HubSpot's CRM API paths (`/crm/v3/objects/{type}`).
    pub fn object_type(self) -> &'static str {
        match self {
            Self::Email => "emails",
            Self::Note => "notes",
            Self::Call => "calls",
            Self::Task => "tasks",
            Self::Meeting => "meetings",
        }
    }
}

/// The effective policy of one activity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityPolicy {
    pub enabled: bool,
    pub store_as: StoreAs,
}

/// What the config file says about one activity type; what it leaves out keeps the type's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitySetting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_as: Option<StoreAs>,
}

/// `[activities]`: associations for all types, then one optional entry per type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivityRules {
    /// Also associate each activity with the contact's company (the contact is always associated).
    pub associate_company: bool,
    /// Also associate each activity with the contact's open deal, when there is one.
    pub associate_open_deal: bool,
    pub email_sent: ActivitySetting,
    pub email_opened: ActivitySetting,
    pub email_clicked: ActivitySetting,
    pub email_replied: ActivitySetting,
    pub email_bounced: ActivitySetting,
    pub linkedin_invite_sent: ActivitySetting,
    pub linkedin_invite_accepted: ActivitySetting,
    pub linkedin_message_sent: ActivitySetting,
    pub linkedin_replied: ActivitySetting,
    pub linkedin_profile_visited: ActivitySetting,
    pub call: ActivitySetting,
    pub task: ActivitySetting,
    pub meeting_booked: ActivitySetting,
    pub unsubscribed: ActivitySetting,
    pub unknown: ActivitySetting,
}

impl Default for ActivityRules {
    fn default() -> Self {
        Self {
            associate_company: true,
            associate_open_deal: false,
            email_sent: ActivitySetting::default(),
            email_opened: ActivitySetting::default(),
            email_clicked: ActivitySetting::default(),
            email_replied: ActivitySetting::default(),
            email_bounced: ActivitySetting::default(),
            linkedin_invite_sent: ActivitySetting::default(),
            linkedin_invite_accepted: ActivitySetting::default(),
            linkedin_message_sent: ActivitySetting::default(),
            linkedin_replied: ActivitySetting::default(),
            linkedin_profile_visited: ActivitySetting::default(),
            call: ActivitySetting::default(),
            task: ActivitySetting::default(),
            meeting_booked: ActivitySetting::default(),
            unsubscribed: ActivitySetting::default(),
            unknown: ActivitySetting::default(),
        }
    }
}

impl ActivityRules {
    /// What the file says about one type.
    pub fn setting(&self, activity: ActivityType) -> &ActivitySetting {
        match activity {
            ActivityType::EmailSent => &self.email_sent,
            ActivityType::EmailOpened => &self.email_opened,
            ActivityType::EmailClicked => &self.email_clicked,
            ActivityType::EmailReplied => &self.email_replied,
            ActivityType::EmailBounced => &self.email_bounced,
            ActivityType::LinkedinInviteSent => &self.linkedin_invite_sent,
            ActivityType::LinkedinInviteAccepted => &self.linkedin_invite_accepted,
            ActivityType::LinkedinMessageSent => &self.linkedin_message_sent,
            ActivityType::LinkedinReplied => &self.linkedin_replied,
            ActivityType::LinkedinProfileVisited => &self.linkedin_profile_visited,
            ActivityType::Call => &self.call,
            ActivityType::Task => &self.task,
            ActivityType::MeetingBooked => &self.meeting_booked,
            ActivityType::Unsubscribed => &self.unsubscribed,
            ActivityType::Unknown => &self.unknown,
        }
    }

    /// The effective policy of one type: the file's setting over the type's default.
    pub fn policy(&self, activity: ActivityType) -> ActivityPolicy {
        let default = activity.default_policy();
        let setting = self.setting(activity);
        ActivityPolicy {
            enabled: setting.enabled.unwrap_or(default.enabled),
            store_as: setting.store_as.unwrap_or(default.store_as),
        }
    }

    /// The types that are synced.
    pub fn enabled(&self) -> impl Iterator<Item = ActivityType> + '_ {
        ActivityType::ALL
            .into_iter()
            .filter(|t| self.policy(*t).enabled)
    }

    pub(crate) fn validate(&self, errors: &mut Vec<RuleError>) {
        for activity in ActivityType::ALL {
            let Some(store_as) = self.setting(activity).store_as else {
                continue;
            };
            if store_as != StoreAs::Email || activity.can_be_email() {
                continue;
            }
            let path = format!("activities.{activity}.store_as");
            let message = match activity {
                ActivityType::EmailOpened | ActivityType::EmailClicked => format!(
                    "{activity} cannot be stored as email: HubSpot does not accept opens and \
                     clicks as email engagements; use store_as = \"note\""
                ),
                _ => format!(
                    "{activity} cannot be stored as email: only email_sent, email_replied and \
                     email_bounced are emails; use note, call, task or meeting"
                ),
            };
            errors.push(RuleError::new(path, message));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Rules;
    use super::*;

    fn activities(text: &str) -> ActivityRules {
        toml::from_str::<Rules>(text)
            .expect("rules parse")
            .activities
    }

    #[test]
    fn every_type_has_a_name_and_a_default() {
        for activity in ActivityType::ALL {
            assert_eq!(ActivityType::from_name(activity.as_str()), Some(activity));
            let parsed: ActivitySettingFor =
                toml::from_str(&format!("t = \"{activity}\"")).expect("type name parses");
            assert_eq!(parsed.t, activity);
            let default = activity.default_policy();
            assert!(default.store_as != StoreAs::Email || activity.can_be_email());
        }
        assert_eq!(ActivityType::from_name("email_forwarded"), None);
    }

    #[derive(Deserialize)]
    struct ActivitySettingFor {
        t: ActivityType,
    }

    #[test]
    fn defaults_sync_the_useful_types() {
        let rules = ActivityRules::default();
        assert_eq!(
            rules.policy(ActivityType::EmailSent),
            ActivityPolicy {
                enabled: true,
                store_as: StoreAs::Email
            }
        );
        assert!(!rules.policy(ActivityType::EmailOpened).enabled);
        assert_eq!(
            rules.policy(ActivityType::EmailClicked).store_as,
            StoreAs::Note
        );
        assert_eq!(rules.policy(ActivityType::Call).store_as, StoreAs::Call);
        assert_eq!(
            rules.policy(ActivityType::MeetingBooked).store_as,
            StoreAs::Meeting
        );
        assert!(!rules.policy(ActivityType::Unknown).enabled);
        assert_eq!(rules.enabled().count(), 12);
        assert!(rules.associate_company);
        assert!(!rules.associate_open_deal);
    }

    #[test]
    fn a_partial_setting_keeps_the_rest_of_the_default() {
        let rules = activities(
            r#"
            [activities]
            email_opened = { enabled = true }
            linkedin_replied = { store_as = "task" }
            [activities.call]
            enabled = false
            "#,
        );
        assert_eq!(
            rules.policy(ActivityType::EmailOpened),
            ActivityPolicy {
                enabled: true,
                store_as: StoreAs::Note
            }
        );
        assert_eq!(
            rules.policy(ActivityType::LinkedinReplied),
            ActivityPolicy {
                enabled: true,
                store_as: StoreAs::Task
            }
        );
        assert!(!rules.policy(ActivityType::Call).enabled);
    }

    #[test]
    fn opens_and_clicks_stored_as_email_are_refused_with_the_fallback() {
        let rules: Rules = toml::from_str(
            r#"
            [activities]
            email_opened = { store_as = "email" }
            email_clicked = { enabled = true, store_as = "email" }
            email_replied = { store_as = "email" }
            "#,
        )
        .unwrap();
        let errors = rules.validate();
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "activities.email_opened.store_as",
                "activities.email_clicked.store_as"
            ]
        );
        assert!(
            errors[0]
                .message
                .contains("HubSpot does not accept opens and clicks")
        );
        assert!(errors[0].message.contains("store_as = \"note\""));
    }

    #[test]
    fn other_non_email_types_stored_as_email_are_refused() {
        let rules: Rules =
            toml::from_str("[activities.linkedin_message_sent]\nstore_as = \"email\"").unwrap();
        let errors = rules.validate();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "activities.linkedin_message_sent.store_as");
        assert!(
            errors[0]
                .message
                .contains("use note, call, task or meeting")
        );
    }

    #[test]
    fn an_unknown_store_as_lists_the_choices() {
        let error = toml::from_str::<Rules>("[activities.call]\nstore_as = \"fax\"")
            .expect_err("unknown store_as");
        assert!(error.message().contains("`note`"), "{}", error.message());
    }
}
