//! What `hubsync trace` is asked about, and which records on each topic belong to it.
//!
//! The argument is an email, a company domain, a LinkedIn profile URL, a HubSpot id (digits) or
//! any other id (an event id, an upstream contact, company or activity id); `email:`, `domain:`,
//! `linkedin:`, `hubspot:` and `id:` say which when the shape is ambiguous. The identifiers grow
//! as records are found: an event found by its email (a contact event's or an activity's) adds
//! its contact id and event id, so the events that carry only the contact id (a contact parked
//! for want of an email), and the commands, outcomes and dead letters of those events, belong
//! to the story too.
//!
//! ```text
//! trace ada@acme.io
//!   ContactChanged { event_id: "e1", contact_id: "ct_1", email: "Ada@Acme.io" }  -> matches; adds ct_1, e1
//!   ContactChanged { event_id: "e2", contact_id: "ct_1", email: null }          -> matches by ct_1
//!   SyncOutcome { event_id: "e2", hubspot_id: "901" }                           -> matches; adds 901
//!   ActivityRecorded { event_id: "e3", activity_id: "act_7", contact_id: "ct_1" } -> matches; adds e3, act_7
//!   HubSpotCommand { event_id: "e3:deal", .. }                                  -> the deal e3 triggered
//!
//! trace kim@acme.io   (Kim was parked for want of an email; her activities carry it)
//!   ContactChanged { event_id: "e4", contact_id: "ct_2", email: null }          -> not yet
//!   ActivityRecorded { event_id: "e5", contact_id: "ct_2", contact_email: "kim@acme.io" } -> matches; adds ct_2
//!   ContactChanged { event_id: "e4", .. } read again                             -> matches by ct_2
//! ```

use std::collections::BTreeSet;

use hubsync_processors::command::DEAL_EVENT_SUFFIX;
use hubsync_processors::decision::{ACTIVITY_ID_PROPERTY, DEAL_KEY_PROPERTY};
use hubsync_processors::normalize;
use hubsync_schemas::{
    ActivityRecorded, CompanyChanged, ContactChanged, DeadLetter, HubSpotCommand,
    HubSpotObjectType, IdentityKind, SyncOutcome,
};
use serde::Serialize;

/// The argument of `hubsync trace`, by what it looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Asked {
    /// A contact's email, normalised.
    Email(String),
    /// A company's domain, normalised.
    Domain(String),
    /// A contact's LinkedIn profile, as [`linkedin_profile`] reads it: what a contact known by
    /// no email is known by.
    Linkedin(String),
    /// A HubSpot record id.
    HubspotId(String),
    /// An event id, or an upstream contact, company or activity id.
    Id(String),
}

impl Asked {
    /// Reads the argument: `kind:value` when given, otherwise by its shape. `None` for an empty
    /// argument or a value that is not what its kind says.
    pub fn parse(input: &str) -> Option<Self> {
        let input = input.trim();
        if input.is_empty() {
            return None;
        }
        if let Some(profile) = linkedin_profile(input) {
            return Some(Asked::Linkedin(profile));
        }
        if let Some((kind, value)) = input.split_once(':') {
            let value = value.trim();
            let asked = match kind.to_ascii_lowercase().as_str() {
                "email" => normalize::email(value)
                    .ok()
                    .map(|e| Asked::Email(e.into_owned())),
                "domain" => normalize::domain(value).map(|d| Asked::Domain(d.into_owned())),
                "linkedin" => linkedin_profile(value).map(Asked::Linkedin),
                "hubspot" | "hubspot_id" => (!value.is_empty()
                    && value.chars().all(|c| c.is_ascii_digit()))
                .then(|| Asked::HubspotId(value.to_string())),
                "id" | "event" => (!value.is_empty()).then(|| Asked::Id(value.to_string())),
                _ => None,
            };
            // `kind:value` with a kind of its own; anything else with a colon is an id.
            if asked.is_some()
                || [
                    "email",
                    "domain",
                    "linkedin",
                    "hubspot",
                    "hubspot_id",
                    "id",
                    "event",
                ]
                .contains(&kind.to_ascii_lowercase().as_str())
            {
                return asked;
            }
            return Some(Asked::Id(input.to_string()));
        }
        if input.contains('@') {
            return normalize::email(input)
                .ok()
                .map(|e| Asked::Email(e.into_owned()));
        }
        if input.chars().all(|c| c.is_ascii_digit()) {
            return Some(Asked::HubspotId(input.to_string()));
        }
        if looks_like_domain(input)
            && let Some(domain) = normalize::domain(input)
        {
            return Some(Asked::Domain(domain.into_owned()));
        }
        Some(Asked::Id(input.to_string()))
    }

    /// `email:ada@acme.io`, `domain:acme.io`, `linkedin:linkedin.com/in/ada`, `hubspot:901`,
    /// `id:ct_1`.
    pub fn label(&self) -> String {
        match self {
            Asked::Email(v) => format!("email:{v}"),
            Asked::Domain(v) => format!("domain:{v}"),
            Asked::Linkedin(v) => format!("linkedin:{v}"),
            Asked::HubspotId(v) => format!("hubspot:{v}"),
            Asked::Id(v) => format!("id:{v}"),
        }
    }
}

/// A LinkedIn profile URL as one key, however it is written: `https://www.LinkedIn.com/in/ada/`
/// and `linkedin.com/in/ada?trk=x` are both `linkedin.com/in/ada` (no scheme, `www.`, query,
/// fragment or trailing slash; lower case). `None` for anything but a page on linkedin.com.
pub fn linkedin_profile(raw: &str) -> Option<String> {
    let lower = raw.trim().to_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or(&lower);
    let rest = rest.strip_prefix("www.").unwrap_or(rest);
    let path = rest.strip_prefix("linkedin.com/")?;
    let path = path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    (!path.is_empty() && !path.contains(char::is_whitespace))
        .then(|| format!("linkedin.com/{path}"))
}

/// A dotted name whose last label is letters only (`acme.io`), not an id with dots in it.
fn looks_like_domain(input: &str) -> bool {
    !input.contains(char::is_whitespace)
        && input.rsplit_once('.').is_some_and(|(head, tld)| {
            !head.is_empty() && tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic())
        })
}

/// Everything known to identify the record being traced; grows as its records are found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identifiers {
    pub emails: BTreeSet<String>,
    pub domains: BTreeSet<String>,
    /// The LinkedIn profile asked for, as [`linkedin_profile`] reads it.
    pub linkedin: BTreeSet<String>,
    pub contact_ids: BTreeSet<String>,
    pub company_ids: BTreeSet<String>,
    pub event_ids: BTreeSet<String>,
    /// Upstream activity ids of the record's activities.
    pub activity_ids: BTreeSet<String>,
    /// HubSpot ids, with the object type when known (`contact:901`, `company:77`, `note:55`,
    /// or `901`).
    pub hubspot_ids: BTreeSet<String>,
    /// Ids of unknown kind as asked: an event id, or an upstream contact, company or activity
    /// id.
    pub ids: BTreeSet<String>,
}

impl Identifiers {
    pub fn of(asked: &Asked) -> Self {
        let mut ids = Identifiers::default();
        match asked {
            Asked::Email(v) => {
                ids.emails.insert(v.clone());
            }
            Asked::Domain(v) => {
                ids.domains.insert(v.clone());
            }
            Asked::Linkedin(v) => {
                ids.linkedin.insert(v.clone());
            }
            Asked::HubspotId(v) => {
                ids.hubspot_ids.insert(v.clone());
            }
            Asked::Id(v) => {
                ids.ids.insert(v.clone());
            }
        }
        ids
    }

    /// How many identifiers are known, to tell whether a pass found new ones.
    pub fn len(&self) -> usize {
        self.emails.len()
            + self.domains.len()
            + self.linkedin.len()
            + self.contact_ids.len()
            + self.company_ids.len()
            + self.event_ids.len()
            + self.activity_ids.len()
            + self.hubspot_ids.len()
            + self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One of the record's events, or the deal one of its activities triggered
    /// (`{event_id}:deal`).
    fn event(&self, event_id: &str) -> bool {
        let own = |id: &str| self.event_ids.contains(id) || self.ids.contains(id);
        own(event_id) || event_id.strip_suffix(DEAL_EVENT_SUFFIX).is_some_and(own)
    }

    fn activity_id(&self, id: &str) -> bool {
        self.activity_ids.contains(id) || self.ids.contains(id)
    }

    /// A deal key, `{contact_id}:{campaign_id}`, of one of the record's contacts.
    fn deal_key(&self, key: &str) -> bool {
        key.split_once(':')
            .is_some_and(|(contact, _)| self.contact_ids.contains(contact))
    }

    fn contact_id(&self, id: &str) -> bool {
        self.contact_ids.contains(id) || self.ids.contains(id)
    }

    fn company_id(&self, id: &str) -> bool {
        self.company_ids.contains(id) || self.ids.contains(id)
    }

    fn email(&self, raw: Option<&str>) -> bool {
        raw.and_then(|e| normalize::email(e).ok())
            .is_some_and(|e| self.emails.contains(e.as_ref()))
    }

    fn domain(&self, raw: Option<&str>) -> bool {
        raw.and_then(normalize::domain)
            .is_some_and(|d| self.domains.contains(d.as_ref()))
    }

    fn linkedin(&self, raw: Option<&str>) -> bool {
        raw.and_then(linkedin_profile)
            .is_some_and(|p| self.linkedin.contains(&p))
    }

    /// Whether a HubSpot id of `object` is one being traced.
    pub fn hubspot_id(&self, object: Option<HubSpotObjectType>, id: &str) -> bool {
        self.hubspot_ids.contains(id)
            || object.is_some_and(|o| self.hubspot_ids.contains(&hubspot_label(o, id)))
    }

    /// A contact event about the record (by event id, upstream id, email, or the LinkedIn
    /// profile asked for); a match adds its event id, contact id and email. Its profile is not
    /// added: another upstream contact with the same profile is another record.
    pub fn take_contact(&mut self, event: &ContactChanged) -> bool {
        let found = self.event(&event.event_id)
            || self.contact_id(&event.contact_id)
            || self.email(event.email.as_deref())
            || self.linkedin(event.linkedin_url.as_deref());
        if found {
            self.event_ids.insert(event.event_id.clone());
            self.contact_ids.insert(event.contact_id.clone());
            if let Some(Ok(email)) = event.email.as_deref().map(normalize::email) {
                self.emails.insert(email.into_owned());
            }
        }
        found
    }

    /// A company event about the record; a match adds its event id, company id and domain.
    pub fn take_company(&mut self, event: &CompanyChanged) -> bool {
        let found = self.event(&event.event_id)
            || self.company_id(&event.company_id)
            || self.domain(event.domain.as_deref())
            || (event.domain.is_none() && self.domain(event.website.as_deref()));
        if found {
            self.event_ids.insert(event.event_id.clone());
            self.company_ids.insert(event.company_id.clone());
            let domain = event
                .domain
                .as_deref()
                .and_then(normalize::domain)
                .or_else(|| {
                    event
                        .website
                        .as_deref()
                        .and_then(normalize::domain_from_url)
                });
            if let Some(domain) = domain {
                self.domains.insert(domain.into_owned());
            }
        }
        found
    }

    /// An activity of the record (its contact's, by upstream id or email, its company's, or
    /// asked for by its event id or activity id); a match adds its event id and activity id.
    /// An activity of the contact (or asked for) adds its contact's upstream id and email, so the
    /// contact's events that carry neither the email (a contact parked for want of one) nor the
    /// activity are found by the upstream id they share. An activity found by its company only
    /// adds nothing of its contact: a company's activities do not make its contacts part of the
    /// story.
    pub fn take_activity(&mut self, event: &ActivityRecorded) -> bool {
        let of_contact = self.event(&event.event_id)
            || self.activity_id(&event.activity_id)
            || self.contact_id(&event.contact_id)
            || self.email(event.contact_email.as_deref());
        let found = of_contact
            || event
                .company_id
                .as_deref()
                .is_some_and(|id| self.company_id(id));
        if found {
            self.event_ids.insert(event.event_id.clone());
            if !event.activity_id.trim().is_empty() {
                self.activity_ids
                    .insert(event.activity_id.trim().to_string());
            }
        }
        if of_contact {
            if !event.contact_id.trim().is_empty() {
                self.contact_ids.insert(event.contact_id.clone());
            }
            if let Some(Ok(email)) = event.contact_email.as_deref().map(normalize::email) {
                self.emails.insert(email.into_owned());
            }
        }
        found
    }

    /// A command for one of the record's events or for its identity.
    pub fn matches_command(&self, command: &HubSpotCommand) -> bool {
        if self.event(&command.event_id) {
            return true;
        }
        let value = command.identity.value.as_str();
        match command.identity.kind {
            IdentityKind::Email => self.email(Some(value)),
            IdentityKind::Domain => self.domain(Some(value)),
            IdentityKind::HubspotId => self.hubspot_id(Some(command.object_type), value),
            IdentityKind::SourceId if command.identity.property == ACTIVITY_ID_PROPERTY => {
                self.activity_id(value)
            }
            IdentityKind::SourceId if command.identity.property == DEAL_KEY_PROPERTY => {
                self.deal_key(value)
            }
            IdentityKind::SourceId => match command.object_type {
                HubSpotObjectType::Company => self.company_id(value),
                HubSpotObjectType::Contact => self.contact_id(value),
                _ => false,
            },
            IdentityKind::UniqueProperty | IdentityKind::Unknown => false,
        }
    }

    /// An outcome of one of the record's events, or naming its HubSpot id or its record.
    pub fn matches_outcome(&self, outcome: &SyncOutcome) -> bool {
        if self.event(&outcome.event_id) {
            return true;
        }
        if let Some(id) = outcome.hubspot_id.as_deref()
            && self.hubspot_id(outcome.hubspot_object_type, id)
        {
            return true;
        }
        let Some(record) = outcome.record.as_deref() else {
            return false;
        };
        match outcome.hubspot_object_type {
            Some(HubSpotObjectType::Company) => {
                self.company_id(record) || (record.contains('.') && self.domain(Some(record)))
            }
            Some(HubSpotObjectType::Contact) => {
                self.contact_id(record) || (record.contains('@') && self.email(Some(record)))
            }
            Some(HubSpotObjectType::Deal) => record
                .strip_prefix(DEAL_KEY_PROPERTY)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|key| self.deal_key(key)),
            _ => record
                .strip_prefix(ACTIVITY_ID_PROPERTY)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|id| self.activity_id(id)),
        }
    }

    /// Adds the HubSpot id of an outcome about the record: its contact or company, its
    /// activities and deals (`note:55`).
    pub fn take_outcome(&mut self, outcome: &SyncOutcome) {
        if let (Some(id), Some(object)) =
            (outcome.hubspot_id.as_deref(), outcome.hubspot_object_type)
            && object != HubSpotObjectType::Unknown
        {
            self.hubspot_ids.insert(hubspot_label(object, id));
        }
    }

    /// Whether a source message's key (the upstream id) is the record's: how an undecodable
    /// message is still placed in the story.
    pub fn matches_key(&self, key: &str) -> bool {
        self.contact_id(key) || self.company_id(key)
    }

    /// A dead letter of one of the record's events, or of a message keyed by its upstream id.
    /// Its payload is not decoded here; the key is the source key (the upstream id).
    pub fn matches_dead_letter(&self, letter: &DeadLetter) -> bool {
        if letter.event_id.as_deref().is_some_and(|id| self.event(id)) {
            return true;
        }
        letter
            .original_key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .is_some_and(|key| self.matches_key(key))
    }
}

/// `contact:901`: a HubSpot id with its object type.
pub fn hubspot_label(object: HubSpotObjectType, id: &str) -> String {
    format!("{}:{id}", object.as_str().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_schemas::{OutcomeStatus, examples};

    #[test]
    fn arguments_are_read_by_their_shape_or_their_kind() {
        assert_eq!(
            Asked::parse(" Ada@Acme.io "),
            Some(Asked::Email("ada@acme.io".into()))
        );
        assert_eq!(
            Asked::parse("www.Acme.io"),
            Some(Asked::Domain("acme.io".into()))
        );
        assert_eq!(Asked::parse("901"), Some(Asked::HubspotId("901".into())));
        assert_eq!(Asked::parse("ct_1"), Some(Asked::Id("ct_1".into())));
        assert_eq!(
            Asked::parse("6f1c2a4e-9b1d-4c52-8f0e-2a7d9c1e5b33"),
            Some(Asked::Id("6f1c2a4e-9b1d-4c52-8f0e-2a7d9c1e5b33".into()))
        );
        assert_eq!(Asked::parse("id:901"), Some(Asked::Id("901".into())));
        assert_eq!(
            Asked::parse("hubspot:901"),
            Some(Asked::HubspotId("901".into()))
        );
        assert_eq!(
            Asked::parse("domain:ACME.io"),
            Some(Asked::Domain("acme.io".into()))
        );
        assert_eq!(
            Asked::parse("crm.contact.changes/0/41"),
            Some(Asked::Id("crm.contact.changes/0/41".into())),
            "a position stands in for the event id of an undecodable message"
        );
        for profile in [
            "https://www.LinkedIn.com/in/Ada/",
            "linkedin.com/in/ada?trk=public",
            "linkedin:http://linkedin.com/in/ada#about",
        ] {
            assert_eq!(
                Asked::parse(profile),
                Some(Asked::Linkedin("linkedin.com/in/ada".into())),
                "{profile}"
            );
        }
        assert_eq!(Asked::parse("linkedin:acme.io"), None);
        assert_eq!(
            Asked::parse("https://acme.io/about"),
            Some(Asked::Id("https://acme.io/about".into())),
            "only LinkedIn's pages are profiles"
        );
        assert_eq!(Asked::parse("hubspot:abc"), None);
        assert_eq!(Asked::parse("email:nobody"), None);
        assert_eq!(Asked::parse("  "), None);
    }

    fn contact(event_id: &str, contact_id: &str, email: Option<&str>) -> ContactChanged {
        let mut event = examples::contact_changed();
        event.event_id = event_id.into();
        event.contact_id = contact_id.into();
        event.email = email.map(Into::into);
        event
    }

    #[test]
    fn a_contact_found_by_email_brings_its_events_without_email() {
        let mut ids = Identifiers::of(&Asked::Email("ada@acme.io".into()));
        assert!(ids.take_contact(&contact("e1", "ct_1", Some(" Ada@Acme.io"))));
        assert!(ids.take_contact(&contact("e2", "ct_1", None)));
        assert!(!ids.take_contact(&contact("e3", "ct_2", Some("bob@acme.io"))));
        assert_eq!(
            ids.event_ids,
            BTreeSet::from(["e1".to_string(), "e2".to_string()])
        );
        assert!(ids.contact_ids.contains("ct_1") && !ids.contact_ids.contains("ct_2"));
    }

    #[test]
    fn a_contact_known_by_its_linkedin_profile_only_is_found_by_it() {
        let asked = Asked::parse("linkedin.com/in/kim/").expect("a profile");
        let mut ids = Identifiers::of(&asked);
        let mut parked = contact("e1", "ct_kim", None);
        parked.linkedin_url = Some("https://www.linkedin.com/in/Kim".into());
        let mut later = contact("e2", "ct_kim", Some("kim@acme.io"));
        later.linkedin_url = None;
        assert!(ids.take_contact(&parked));
        assert!(
            ids.take_contact(&later),
            "by the upstream id the profile taught"
        );
        assert!(ids.emails.contains("kim@acme.io"));
        let mut other = contact("e3", "ct_other", None);
        other.linkedin_url = Some("https://www.linkedin.com/in/kimberly".into());
        assert!(!ids.take_contact(&other));
    }

    #[test]
    fn an_event_id_brings_the_whole_record() {
        let mut ids = Identifiers::of(&Asked::Id("e2".into()));
        assert!(!ids.take_contact(&contact("e1", "ct_1", Some("ada@acme.io"))));
        assert!(ids.take_contact(&contact("e2", "ct_1", Some("ada@acme.io"))));
        // A second pass finds the earlier event by the contact id the first one taught.
        assert!(ids.take_contact(&contact("e1", "ct_1", Some("ada@acme.io"))));
    }

    #[test]
    fn companies_match_by_domain_or_website() {
        let mut ids = Identifiers::of(&Asked::Domain("acme.io".into()));
        let mut event = examples::company_changed();
        event.domain = None;
        event.website = Some("https://www.acme.io/about".into());
        assert!(ids.take_company(&event));
        assert!(ids.company_ids.contains(&event.company_id));
        event.website = Some("https://globex.com".into());
        event.company_id = "co_other".into();
        event.event_id = "another event".into();
        assert!(!ids.take_company(&event));
    }

    #[test]
    fn commands_outcomes_and_dead_letters_match_by_event_identity_or_key() {
        let mut ids = Identifiers::of(&Asked::Email("ada@acme.io".into()));
        ids.take_contact(&contact("e1", "ct_1", Some("ada@acme.io")));

        let mut command = examples::hubspot_command();
        command.event_id = "other".into();
        command.identity.kind = IdentityKind::Email;
        command.identity.value = "ADA@acme.io".into();
        assert!(ids.matches_command(&command));
        command.identity.value = "bob@acme.io".into();
        assert!(!ids.matches_command(&command));
        command.event_id = "e1".into();
        assert!(ids.matches_command(&command));

        let mut outcome = examples::sync_outcome();
        outcome.event_id = "e9".into();
        outcome.status = OutcomeStatus::Created;
        outcome.hubspot_object_type = Some(HubSpotObjectType::Contact);
        outcome.record = Some("ada@acme.io".into());
        outcome.hubspot_id = Some("901".into());
        assert!(ids.matches_outcome(&outcome));
        ids.take_outcome(&outcome);
        assert!(ids.hubspot_id(Some(HubSpotObjectType::Contact), "901"));
        assert!(!ids.hubspot_id(Some(HubSpotObjectType::Company), "901"));
        outcome.record = Some("bob@acme.io".into());
        assert!(ids.matches_outcome(&outcome), "by its HubSpot id");
        outcome.hubspot_id = None;
        assert!(!ids.matches_outcome(&outcome));

        let mut letter = examples::dead_letter();
        letter.event_id = None;
        letter.original_key = Some(b"ct_1".to_vec());
        assert!(ids.matches_dead_letter(&letter));
        letter.original_key = Some(b"ct_2".to_vec());
        assert!(!ids.matches_dead_letter(&letter));
        letter.event_id = Some("e1".into());
        assert!(ids.matches_dead_letter(&letter));
    }

    #[test]
    fn an_email_found_on_an_activity_brings_its_contacts_events_without_email() {
        // Kim was parked for want of an email; only her activity carries her address.
        let mut ids = Identifiers::of(&Asked::Email("kim@acme.io".into()));
        let parked = contact("e1", "ct_kim", None);
        let mut activity = examples::activity_recorded();
        activity.event_id = "a1".into();
        activity.contact_id = "ct_kim".into();
        activity.contact_email = Some("Kim@Acme.io".into());
        activity.company_id = Some("co_1".into());
        // The first reading: the parked event is not known yet, the activity is.
        assert!(!ids.take_contact(&parked));
        assert!(ids.take_activity(&activity));
        assert!(ids.contact_ids.contains("ct_kim"), "{ids:?}");
        // The second reading finds the parked event by the upstream id they share.
        assert!(ids.take_contact(&parked));
        assert!(ids.event_ids.contains("e1"));
        // Its company is not the contact: the company's other contacts stay out.
        assert!(!ids.company_ids.contains("co_1"));
        let mut other = examples::activity_recorded();
        other.event_id = "a2".into();
        other.activity_id = "act_other".into();
        other.contact_id = "ct_other".into();
        other.contact_email = Some("other@acme.io".into());
        other.company_id = Some("co_1".into());
        assert!(!ids.take_activity(&other));
    }

    #[test]
    fn an_activity_asked_for_brings_its_contact_and_no_other() {
        let mut activity = examples::activity_recorded();
        activity.event_id = "a1".into();
        activity.contact_id = "ct_1".into();
        let mut by_company = Identifiers::default();
        by_company.company_ids.insert("co_1".into());
        activity.company_id = Some("co_1".into());
        assert!(by_company.take_activity(&activity));
        assert!(by_company.contact_ids.is_empty());
        let mut by_event = Identifiers::of(&Asked::Id("a1".into()));
        assert!(by_event.take_activity(&activity));
        assert!(by_event.contact_ids.contains("ct_1"));
    }

    #[test]
    fn an_activity_id_brings_its_activity_commands_outcomes_and_deal() {
        let mut activity = examples::activity_recorded();
        activity.event_id = "a1".into();
        activity.activity_id = "act_9".into();
        activity.contact_id = "ct_1".into();
        activity.contact_email = Some("Ada@Acme.io".into());
        let mut ids = Identifiers::of(&Asked::parse("act_9").expect("an id"));
        assert!(ids.take_activity(&activity));
        assert!(ids.contact_ids.contains("ct_1") && ids.emails.contains("ada@acme.io"));
        assert!(ids.activity_ids.contains("act_9"));

        let mut command = examples::hubspot_command();
        command.event_id = "other".into();
        command.object_type = HubSpotObjectType::Note;
        command.identity.kind = IdentityKind::SourceId;
        command.identity.property = ACTIVITY_ID_PROPERTY.into();
        command.identity.value = "act_9".into();
        assert!(ids.matches_command(&command));
        command.identity.value = "act_10".into();
        assert!(!ids.matches_command(&command));
        command.event_id = format!("a1{DEAL_EVENT_SUFFIX}");
        assert!(ids.matches_command(&command), "the deal a1 triggered");

        let mut outcome = examples::sync_outcome();
        outcome.event_id = "replayed".into();
        outcome.hubspot_id = None;
        outcome.hubspot_object_type = Some(HubSpotObjectType::Note);
        outcome.record = Some("hubsync_activity_id:act_9".into());
        assert!(ids.matches_outcome(&outcome));
        outcome.record = Some("hubsync_activity_id:act_10".into());
        assert!(!ids.matches_outcome(&outcome));
        outcome.hubspot_object_type = Some(HubSpotObjectType::Deal);
        outcome.record = Some("hubsync_deal_key:ct_1:cmp_q3".into());
        assert!(ids.matches_outcome(&outcome), "a deal of the contact");
        outcome.record = Some("hubsync_deal_key:ct_2:cmp_q3".into());
        assert!(!ids.matches_outcome(&outcome));

        outcome.hubspot_object_type = Some(HubSpotObjectType::Note);
        outcome.event_id = "a1".into();
        outcome.hubspot_id = Some("55".into());
        ids.take_outcome(&outcome);
        assert!(ids.hubspot_ids.contains("note:55"));
    }
}
