//! One view of an upstream record's fields by name, standard and custom alike, so mapping, gating
//! and identity work on the names written in the rules. It borrows the event and copies nothing.
//!
//! ```
//! # use hubsync_processors::fields::{Field, Fields};
//! # let event = hubsync_schemas::examples::contact_changed();
//! // ContactChanged { change: UPDATED, job_title: "VP Operations", phone: "+1 415 555 0134",
//! //   fields: { lead_score: "82", previous_company: null, .. },
//! //   changed_fields: [job_title, lead_score, previous_company] }
//! let fields = Fields::contact(&event);
//! assert_eq!(fields.get("job_title"), Field::Value("VP Operations"));
//! assert_eq!(fields.get("lead_score"), Field::Value("82"));
//! assert_eq!(fields.get("previous_company"), Field::Null);
//! assert_eq!(fields.get("favourite_colour"), Field::Missing);
//! // -> this event sends job_title and lead_score, clears previous_company, leaves phone alone
//! assert!(fields.is_changed("previous_company") && !fields.is_changed("phone"));
//! ```
//!
//! Standard fields are the typed fields of the Avro record; a custom field of the same name as a
//! standard one is shadowed by it.

use std::collections::BTreeMap;

use hubsync_schemas::{ChangeKind, CompanyChanged, ContactChanged};

/// The standard fields of a contact, by the names the rules use.
pub const CONTACT_FIELDS: [&str; 10] = [
    "email",
    "linkedin_url",
    "first_name",
    "last_name",
    "company_name",
    "company_domain",
    "job_title",
    "phone",
    "owner_user_id",
    "campaign_id",
];

/// The standard fields of a company, by the names the rules use.
pub const COMPANY_FIELDS: [&str; 5] = ["name", "domain", "website", "industry", "owner_user_id"];

/// One field of an event, as carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// The event does not carry the field: not a standard field and not in the custom `fields`.
    Missing,
    /// Carried without a value: a standard field that is null, or a custom field set to null.
    Null,
    /// Carried with this value, exactly as the producer wrote it (not trimmed).
    Value(&'a str),
}

impl<'a> Field<'a> {
    /// The value with surrounding whitespace removed, when something remains.
    pub fn non_empty(self) -> Option<&'a str> {
        match self {
            Field::Value(value) => Some(crate::normalize::trim(value)).filter(|v| !v.is_empty()),
            Field::Missing | Field::Null => None,
        }
    }
}

/// What one event says about one field, for writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldChange<'a> {
    /// The field now holds this value (untrimmed).
    Set(&'a str),
    /// The field was emptied upstream.
    Cleared,
}

#[derive(Debug, Clone, Copy)]
enum Record<'a> {
    Contact(&'a ContactChanged),
    Company(&'a CompanyChanged),
}

/// The fields of one contact or company event, by name.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    record: Record<'a>,
    custom: &'a BTreeMap<String, Option<String>>,
    changed_fields: &'a [String],
    change: ChangeKind,
}

impl<'a> Fields<'a> {
    pub fn contact(event: &'a ContactChanged) -> Self {
        Self {
            record: Record::Contact(event),
            custom: &event.fields,
            changed_fields: &event.changed_fields,
            change: event.change,
        }
    }

    pub fn company(event: &'a CompanyChanged) -> Self {
        Self {
            record: Record::Company(event),
            custom: &event.fields,
            changed_fields: &event.changed_fields,
            change: event.change,
        }
    }

    /// What happened to the record.
    pub fn change(&self) -> ChangeKind {
        self.change
    }

    /// The fields the event names as changed; empty when it does not say.
    pub fn changed_fields(&self) -> &'a [String] {
        self.changed_fields
    }

    /// The upstream id of the record (`contact_id` or `company_id`).
    pub fn source_id(&self) -> &'a str {
        match self.record {
            Record::Contact(event) => &event.contact_id,
            Record::Company(event) => &event.company_id,
        }
    }

    /// The name of the upstream id field, for identities and messages.
    pub fn source_id_field(&self) -> &'static str {
        match self.record {
            Record::Contact(_) => "contact_id",
            Record::Company(_) => "company_id",
        }
    }

    /// One field by name: standard fields first, then the custom `fields`.
    pub fn get(&self, name: &str) -> Field<'a> {
        match self.standard(name) {
            Some(value) => value.as_deref().map_or(Field::Null, Field::Value),
            None => match self.custom.get(name) {
                Some(value) => value.as_deref().map_or(Field::Null, Field::Value),
                None => Field::Missing,
            },
        }
    }

    /// A field's trimmed value when it has a non-blank one.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).non_empty()
    }

    /// Whether this event changed the field. A created record changes every field, and an
    /// event without `changed_fields` is taken to change every field it carries.
    pub fn is_changed(&self, name: &str) -> bool {
        self.change == ChangeKind::Created
            || self.changed_fields.is_empty()
            || self.changed_fields.iter().any(|changed| changed == name)
    }

    /// What this event writes to a field, or `None` when it leaves the field alone:
    /// - a created record sets the fields that have a value and clears nothing (a new upstream
    ///   record has nothing to clear, and an existing HubSpot record keeps what it has);
    /// - an event naming its `changed_fields` sets each named field that has a value and clears
    ///   each named field that is null or no longer carried;
    /// - an event without `changed_fields` sets every field that has a value and clears only
    ///   custom fields explicitly set to null (a null standard field may just not be known).
    pub fn change_of(&self, name: &str) -> Option<FieldChange<'a>> {
        let field = self.get(name);
        if let Field::Value(value) = field
            && self.is_changed(name)
        {
            return Some(FieldChange::Set(value));
        }
        let cleared = match self.change {
            ChangeKind::Created => false,
            _ if self.changed_fields.is_empty() => {
                field == Field::Null && self.standard(name).is_none()
            }
            // A field with a value that is named as changed was set above.
            _ => self.is_changed(name),
        };
        cleared.then_some(FieldChange::Cleared)
    }

    fn standard(&self, name: &str) -> Option<&'a Option<String>> {
        Some(match self.record {
            Record::Contact(event) => match name {
                "email" => &event.email,
                "linkedin_url" => &event.linkedin_url,
                "first_name" => &event.first_name,
                "last_name" => &event.last_name,
                "company_name" => &event.company_name,
                "company_domain" => &event.company_domain,
                "job_title" => &event.job_title,
                "phone" => &event.phone,
                "owner_user_id" => &event.owner_user_id,
                "campaign_id" => &event.campaign_id,
                _ => return None,
            },
            Record::Company(event) => match name {
                "name" => &event.name,
                "domain" => &event.domain,
                "website" => &event.website,
                "industry" => &event.industry,
                "owner_user_id" => &event.owner_user_id,
                _ => return None,
            },
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hubsync_schemas::examples;

    /// A contact with nothing set, to fill in per test.
    pub(crate) fn blank_contact(change: ChangeKind) -> ContactChanged {
        ContactChanged {
            event_id: "6d0c5b1e-2f4a-4c3b-8e9d-1a2b3c4d5e6f".to_owned(),
            event_time: examples::EXAMPLE_TIME,
            team_id: "team_1".to_owned(),
            contact_id: "ct_1".to_owned(),
            change,
            actor: None,
            email: None,
            linkedin_url: None,
            first_name: None,
            last_name: None,
            company_name: None,
            company_domain: None,
            job_title: None,
            phone: None,
            owner_user_id: None,
            campaign_id: None,
            fields: BTreeMap::new(),
            changed_fields: Vec::new(),
        }
    }

    /// A company with nothing set, to fill in per test.
    pub(crate) fn blank_company(change: ChangeKind) -> CompanyChanged {
        CompanyChanged {
            event_id: "7e1d6c2f-3a5b-4d4c-9f0e-2b3c4d5e6f70".to_owned(),
            event_time: examples::EXAMPLE_TIME,
            team_id: "team_1".to_owned(),
            company_id: "co_1".to_owned(),
            change,
            actor: None,
            name: None,
            domain: None,
            website: None,
            industry: None,
            owner_user_id: None,
            fields: BTreeMap::new(),
            changed_fields: Vec::new(),
        }
    }

    pub(crate) fn some(value: &str) -> Option<String> {
        Some(value.to_owned())
    }

    #[test]
    fn every_standard_contact_field_is_readable_by_name() {
        let mut event = blank_contact(ChangeKind::Created);
        let values: Vec<String> = CONTACT_FIELDS.iter().map(|n| format!("{n}!")).collect();
        for (name, value) in CONTACT_FIELDS.iter().zip(&values) {
            let slot = match *name {
                "email" => &mut event.email,
                "linkedin_url" => &mut event.linkedin_url,
                "first_name" => &mut event.first_name,
                "last_name" => &mut event.last_name,
                "company_name" => &mut event.company_name,
                "company_domain" => &mut event.company_domain,
                "job_title" => &mut event.job_title,
                "phone" => &mut event.phone,
                "owner_user_id" => &mut event.owner_user_id,
                "campaign_id" => &mut event.campaign_id,
                other => unreachable!("{other}"),
            };
            *slot = Some(value.clone());
        }
        let fields = Fields::contact(&event);
        for (name, value) in CONTACT_FIELDS.iter().zip(&values) {
            assert_eq!(fields.get(name), Field::Value(value), "{name}");
        }
    }

    #[test]
    fn every_standard_company_field_is_readable_by_name() {
        let mut event = blank_company(ChangeKind::Created);
        event.name = some("name!");
        event.domain = some("domain!");
        event.website = some("website!");
        event.industry = some("industry!");
        event.owner_user_id = some("owner_user_id!");
        let fields = Fields::company(&event);
        for name in COMPANY_FIELDS {
            assert_eq!(
                fields.get(name),
                Field::Value(&format!("{name}!")),
                "{name}"
            );
        }
        assert_eq!(fields.get("email"), Field::Missing);
        assert_eq!(fields.source_id(), "co_1");
        assert_eq!(fields.source_id_field(), "company_id");
    }

    #[test]
    fn standard_fields_shadow_custom_ones() {
        let mut event = blank_contact(ChangeKind::Updated);
        event
            .fields
            .insert("email".to_owned(), some("custom@example.com"));
        event.fields.insert("tier".to_owned(), some("gold"));
        event.fields.insert("region".to_owned(), None);
        let fields = Fields::contact(&event);
        assert_eq!(fields.get("email"), Field::Null);
        assert_eq!(fields.get("tier"), Field::Value("gold"));
        assert_eq!(fields.get("region"), Field::Null);
        assert_eq!(fields.get("nickname"), Field::Missing);
    }

    #[test]
    fn blank_values_are_not_values() {
        let mut event = blank_contact(ChangeKind::Updated);
        event.first_name = some("  Ada ");
        event.last_name = some("   ");
        let fields = Fields::contact(&event);
        assert_eq!(fields.value("first_name"), Some("Ada"));
        assert_eq!(fields.value("last_name"), None);
        assert_eq!(fields.value("job_title"), None);
        assert_eq!(fields.value("nickname"), None);
    }

    #[test]
    fn a_created_record_sets_what_it_has_and_clears_nothing() {
        let mut event = blank_contact(ChangeKind::Created);
        event.first_name = some("Ada");
        event.fields.insert("region".to_owned(), None);
        event.changed_fields = vec!["last_name".to_owned()];
        let fields = Fields::contact(&event);
        assert_eq!(
            fields.change_of("first_name"),
            Some(FieldChange::Set("Ada"))
        );
        assert_eq!(fields.change_of("last_name"), None);
        assert_eq!(fields.change_of("region"), None);
        assert_eq!(fields.change_of("nickname"), None);
    }

    #[test]
    fn an_update_writes_only_its_changed_fields() {
        let mut event = blank_contact(ChangeKind::Updated);
        event.first_name = some("Ada");
        event.job_title = some("CTO");
        event.fields.insert("tier".to_owned(), some("gold"));
        event.fields.insert("region".to_owned(), None);
        event.changed_fields = ["job_title", "phone", "region", "nickname", "tier"]
            .map(str::to_owned)
            .to_vec();
        let fields = Fields::contact(&event);
        assert_eq!(fields.change_of("first_name"), None, "unchanged");
        assert_eq!(fields.change_of("job_title"), Some(FieldChange::Set("CTO")));
        assert_eq!(fields.change_of("tier"), Some(FieldChange::Set("gold")));
        assert_eq!(fields.change_of("phone"), Some(FieldChange::Cleared));
        assert_eq!(fields.change_of("region"), Some(FieldChange::Cleared));
        assert_eq!(
            fields.change_of("nickname"),
            Some(FieldChange::Cleared),
            "named as changed but no longer carried"
        );
    }

    #[test]
    fn an_update_without_changed_fields_writes_what_it_carries() {
        let mut event = blank_contact(ChangeKind::Updated);
        event.first_name = some("Ada");
        event.fields.insert("tier".to_owned(), some("gold"));
        event.fields.insert("region".to_owned(), None);
        let fields = Fields::contact(&event);
        assert_eq!(
            fields.change_of("first_name"),
            Some(FieldChange::Set("Ada"))
        );
        assert_eq!(fields.change_of("tier"), Some(FieldChange::Set("gold")));
        assert_eq!(fields.change_of("region"), Some(FieldChange::Cleared));
        assert_eq!(
            fields.change_of("phone"),
            None,
            "a null standard field is unknown"
        );
        assert_eq!(fields.change_of("nickname"), None);
    }

    #[test]
    fn the_example_event_reads_as_documented() {
        let event = examples::contact_changed();
        let fields = Fields::contact(&event);
        assert_eq!(fields.change(), ChangeKind::Updated);
        assert_eq!(fields.source_id(), "ct_90311");
        assert_eq!(
            fields.change_of("job_title"),
            Some(FieldChange::Set("VP Operations"))
        );
        assert_eq!(fields.change_of("lead_score"), Some(FieldChange::Set("82")));
        assert_eq!(
            fields.change_of("previous_company"),
            Some(FieldChange::Cleared)
        );
        assert_eq!(fields.change_of("phone"), None);
    }
}
