//! Rule 3, mandatory properties: the upstream fields that must all be filled before hubsync may
//! create the record in HubSpot.
//!
//! ```text
//! ContactChanged { email: "ada@acme.io", phone: null, .. } with mandatory = ["email", "phone"]
//!   -> missing ["phone"]   (the command carries may_create = false and the missing fields)
//! ```
//!
//! The gate never holds back an update: the command still goes to the sink, which updates the
//! record when HubSpot has it and parks the event, naming the missing fields, when the record
//! would have to be created. A field counts as filled when it has a non-blank value, whether or
//! not this event changed it; a custom field the event does not carry counts as empty.

use crate::fields::Fields;

/// The mandatory fields that are empty, by upstream field name, in the order of the rules.
pub fn missing_for_create<'r>(fields: &Fields<'_>, mandatory: &'r [String]) -> Vec<&'r str> {
    mandatory
        .iter()
        .filter(|name| fields.value(name).is_none())
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use hubsync_schemas::ChangeKind;

    use super::*;
    use crate::fields::tests::{blank_company, blank_contact, some};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn nothing_is_missing_without_mandatory_fields() {
        let event = blank_contact(ChangeKind::Created);
        assert!(missing_for_create(&Fields::contact(&event), &[]).is_empty());
    }

    #[test]
    fn exactly_the_empty_mandatory_fields_are_listed_in_rule_order() {
        let mut event = blank_contact(ChangeKind::Updated);
        event.email = some("ada@acme.io");
        event.first_name = some("   ");
        event.fields.insert("tier".to_owned(), some("gold"));
        event.fields.insert("region".to_owned(), None);
        event.changed_fields = names(&["job_title"]);
        let mandatory = names(&[
            "phone",
            "email",
            "first_name",
            "tier",
            "region",
            "linkedin_url",
            "segment",
        ]);
        assert_eq!(
            missing_for_create(&Fields::contact(&event), &mandatory),
            ["phone", "first_name", "region", "linkedin_url", "segment"]
        );
    }

    #[test]
    fn a_complete_record_passes() {
        let mut event = blank_company(ChangeKind::Created);
        event.name = some("Acme");
        event.domain = some("acme.io");
        let mandatory = names(&["name", "domain"]);
        assert!(missing_for_create(&Fields::company(&event), &mandatory).is_empty());
    }
}
