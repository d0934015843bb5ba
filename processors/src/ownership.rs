//! Rule 8, activity ownership: the sender's HubSpot owner, else the contact's owner, else the
//! default owner.
//!
//! ```text
//! ActivityRecorded { sender: { user_id: "usr_ada", .. }, .. }
//!   with [[users.mapping]] user = "usr_ada", owner = "90012"
//!   -> ActivityOwner::Sender("90012")
//! ActivityRecorded { sender: { user_id: "usr_new", email: "Grace@Acme.io" }, .. }
//!   with auto_map_by_email and an owner directory { grace@acme.io -> 90013 }
//!   -> ActivityOwner::Sender("90013")
//! ActivityRecorded { sender: None, .. } with [users] default_owner = "90011"
//!   -> ActivityOwner::ContactOwner { fallback: Some("90011") }
//! ```
//!
//! An explicit `[[users.mapping]]` entry wins over the email match; the email match needs
//! `users.auto_map_by_email` and an [`OwnerDirectory`], which the caller builds from HubSpot's
//! owners (`GET /crm/v3/owners`) once at start. A sender with neither is treated like no sender.
//! The contact's HubSpot owner is known only to the sink, so "the contact's owner, else the
//! default owner" travels in the command as described in [`crate::decision`].

use std::collections::HashMap;

use hubsync_schemas::{ActivityRecorded, Sender};

use crate::decision::ActivityOwner;
use crate::normalize;
use crate::rules::UserRules;

/// HubSpot owners by email address (normalised), for `users.auto_map_by_email`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerDirectory {
    by_email: HashMap<String, String>,
}

impl OwnerDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an owner; an address that is not an email is left out, and the first owner listed
    /// for an address keeps it.
    pub fn insert(&mut self, email: &str, owner_id: &str) {
        if let Ok(email) = normalize::email(email) {
            self.by_email
                .entry(email.into_owned())
                .or_insert_with(|| owner_id.to_owned());
        }
    }

    /// The owner with this email address.
    pub fn owner_for_email(&self, email: &str) -> Option<&str> {
        let email = normalize::email(email).ok()?;
        self.by_email.get(email.as_ref()).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_email.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_email.is_empty()
    }
}

impl<E: AsRef<str>, O: AsRef<str>> FromIterator<(E, O)> for OwnerDirectory {
    fn from_iter<I: IntoIterator<Item = (E, O)>>(owners: I) -> Self {
        let mut directory = Self::new();
        for (email, owner) in owners {
            directory.insert(email.as_ref(), owner.as_ref());
        }
        directory
    }
}

/// The HubSpot owner of an activity's sender: the explicit mapping, else (with
/// `auto_map_by_email`) the owner with the sender's email address.
pub fn sender_owner<'a>(
    sender: Option<&Sender>,
    users: &'a UserRules,
    owners: &'a OwnerDirectory,
) -> Option<&'a str> {
    let sender = sender?;
    if let Some(owner) = users.owner_for(sender.user_id.trim()) {
        return Some(owner);
    }
    if !users.auto_map_by_email {
        return None;
    }
    owners.owner_for_email(sender.email.as_deref()?)
}

/// Who owns this activity.
pub fn activity_owner(
    event: &ActivityRecorded,
    users: &UserRules,
    owners: &OwnerDirectory,
) -> ActivityOwner {
    match sender_owner(event.sender.as_ref(), users, owners) {
        Some(owner) => ActivityOwner::Sender(owner.to_owned()),
        None => ActivityOwner::ContactOwner {
            fallback: users.default_owner.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::tests::blank_activity;
    use crate::rules::UserMapping;

    fn users(default_owner: Option<&str>, auto_map_by_email: bool) -> UserRules {
        UserRules {
            default_owner: default_owner.map(str::to_owned),
            auto_map_by_email,
            mapping: vec![UserMapping {
                user: "usr_ada".to_owned(),
                owner: "90012".to_owned(),
            }],
        }
    }

    fn directory() -> OwnerDirectory {
        [
            ("ada@acme.io", "90099"),
            ("Grace@Acme.io", "90013"),
            ("not an email", "1"),
        ]
        .into_iter()
        .collect()
    }

    fn sent_by(user: &str, email: Option<&str>) -> ActivityRecorded {
        let mut event = blank_activity(hubsync_schemas::ActivityType::EmailSent);
        event.sender = Some(Sender {
            user_id: user.to_owned(),
            email: email.map(str::to_owned),
        });
        event
    }

    #[test]
    fn the_senders_mapped_owner_owns_the_activity() {
        let event = sent_by(" usr_ada ", Some("ada@acme.io"));
        assert_eq!(
            activity_owner(&event, &users(Some("90011"), true), &directory()),
            ActivityOwner::Sender("90012".to_owned()),
            "the explicit entry wins over the email match"
        );
    }

    #[test]
    fn a_sender_without_entry_is_matched_by_email_when_auto_map_is_on() {
        let event = sent_by("usr_grace", Some(" grace@ACME.io"));
        assert_eq!(
            activity_owner(&event, &users(None, true), &directory()),
            ActivityOwner::Sender("90013".to_owned())
        );
        assert_eq!(
            activity_owner(&event, &users(None, false), &directory()),
            ActivityOwner::ContactOwner { fallback: None },
            "auto-map off"
        );
        let unknown = sent_by("usr_linus", Some("linus@acme.io"));
        assert_eq!(
            activity_owner(&unknown, &users(None, true), &directory()),
            ActivityOwner::ContactOwner { fallback: None }
        );
    }

    #[test]
    fn without_a_mapped_sender_the_contact_owner_then_the_default_owner_decides() {
        let mut event = blank_activity(hubsync_schemas::ActivityType::Call);
        assert_eq!(
            activity_owner(&event, &users(Some("90011"), true), &directory()),
            ActivityOwner::ContactOwner {
                fallback: Some("90011".to_owned())
            }
        );
        event.sender = Some(Sender {
            user_id: "usr_unmapped".to_owned(),
            email: None,
        });
        assert_eq!(
            activity_owner(&event, &users(Some("90011"), true), &directory()),
            ActivityOwner::ContactOwner {
                fallback: Some("90011".to_owned())
            }
        );
    }

    #[test]
    fn without_anything_the_activity_has_the_contacts_owner_or_none() {
        let event = blank_activity(hubsync_schemas::ActivityType::Call);
        assert_eq!(
            activity_owner(&event, &users(None, true), &OwnerDirectory::new()),
            ActivityOwner::ContactOwner { fallback: None }
        );
    }

    #[test]
    fn the_directory_keeps_normalised_emails_and_the_first_owner() {
        let mut owners = directory();
        owners.insert("ada@acme.io", "1");
        assert_eq!(owners.len(), 2, "the invalid address is left out");
        assert_eq!(owners.owner_for_email("ADA@acme.io "), Some("90099"));
        assert_eq!(owners.owner_for_email("not an email"), None);
        assert!(OwnerDirectory::new().is_empty());
    }
}
