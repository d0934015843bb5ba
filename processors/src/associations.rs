//! Rule 10, associations: an activity is associated with its contact, and optionally with the
//! contact's company and the deal hubsync keeps for the contact in the activity's campaign.
//!
//! ```text
//! ActivityRecorded { contact_email: " Jordan.Lee@Northwind.example", company_id: "co_2207", .. }
//!   stored as NOTE, with associate_company = true
//!   -> [ CONTACT email:jordan.lee@northwind.example (type 202),
//!        COMPANY company_id:co_2207 (type 190) ]
//! ```
//!
//! Every link is by identity, resolved by the sink: the contact by its email (normalised) when
//! the event carries one, else by its upstream id; the company by its upstream id; the deal by
//! its key `{contact_id}:{campaign_id}`. The contact is always the first association. Type ids
//! are HubSpot's default (unlabelled) association types, `HUBSPOT_DEFINED`.

use hubsync_schemas::{
    ActivityRecorded, Association, HubSpotObjectType, Identity, IdentityKind,
    pipeline::HUBSPOT_DEFINED,
};

use crate::decision::{DEAL_KEY_PROPERTY, Problem, ProblemCode};
use crate::normalize::{self, EmailError};
use crate::rules::ActivityRules;

/// HubSpot's default association type from a deal to a contact.
pub const DEAL_TO_CONTACT: i32 = 3;
/// HubSpot's default (unlabelled) association type from a deal to a company.
pub const DEAL_TO_COMPANY: i32 = 341;

/// HubSpot's default association types from one activity object to a contact, a company and a
/// deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityTypeIds {
    pub contact: i32,
    pub company: i32,
    pub deal: i32,
}

/// The association type ids of an activity object; `None` for an object that is not an
/// activity.
pub fn activity_type_ids(object: HubSpotObjectType) -> Option<ActivityTypeIds> {
    let (contact, company, deal) = match object {
        HubSpotObjectType::Note => (202, 190, 214),
        HubSpotObjectType::Email => (198, 186, 210),
        HubSpotObjectType::Call => (194, 182, 206),
        HubSpotObjectType::Task => (204, 192, 216),
        HubSpotObjectType::Meeting => (200, 188, 212),
        _ => return None,
    };
    Some(ActivityTypeIds {
        contact,
        company,
        deal,
    })
}

/// How the activity's contact is found: its email, else its upstream id; `Ok(None)` when the
/// event names neither, and a problem when the email is not an email address.
pub fn contact_identity(event: &ActivityRecorded) -> Result<Option<Identity>, Problem> {
    if let Some(raw) = event.contact_email.as_deref() {
        match normalize::email(raw) {
            Ok(email) => return Ok(Some(identity(IdentityKind::Email, "email", &email))),
            Err(EmailError::Empty) => {}
            Err(EmailError::Shape) => {
                return Err(Problem {
                    code: ProblemCode::InvalidEmail,
                    field: "contact_email".to_owned(),
                    property: Some("email".to_owned()),
                    message: format!(
                        "contact_email: {raw:?} is not an email address, and the activity's \
                         contact is found by it: send a valid address or none (the contact is \
                         then found by contact_id)"
                    ),
                });
            }
        }
    }
    let id = normalize::trim(&event.contact_id);
    Ok((!id.is_empty()).then(|| identity(IdentityKind::SourceId, "contact_id", id)))
}

/// The activity's company, by upstream id, when the event names one.
pub fn company_identity(event: &ActivityRecorded) -> Option<Identity> {
    let id = normalize::trim(event.company_id.as_deref()?);
    (!id.is_empty()).then(|| identity(IdentityKind::SourceId, "company_id", id))
}

/// The deal hubsync keeps for one contact in one campaign.
pub fn deal_identity(contact_id: &str, campaign_id: &str) -> Identity {
    identity(
        IdentityKind::SourceId,
        DEAL_KEY_PROPERTY,
        &format!("{contact_id}:{campaign_id}"),
    )
}

/// The associations of an activity stored as `object`: the contact, then the company (with
/// `associate_company`) and the open deal (with `associate_open_deal`) when known.
pub fn activity_associations(
    object: HubSpotObjectType,
    contact: &Identity,
    company: Option<&Identity>,
    deal: Option<&Identity>,
    rules: &ActivityRules,
) -> Vec<Association> {
    let Some(ids) = activity_type_ids(object) else {
        return Vec::new();
    };
    let mut links = vec![link(HubSpotObjectType::Contact, contact, ids.contact)];
    if rules.associate_company
        && let Some(company) = company
    {
        links.push(link(HubSpotObjectType::Company, company, ids.company));
    }
    if rules.associate_open_deal
        && let Some(deal) = deal
    {
        links.push(link(HubSpotObjectType::Deal, deal, ids.deal));
    }
    links
}

/// A deal's associations: its contact, and its company when known.
pub fn deal_associations(contact: &Identity, company: Option<&Identity>) -> Vec<Association> {
    let mut links = vec![link(HubSpotObjectType::Contact, contact, DEAL_TO_CONTACT)];
    if let Some(company) = company {
        links.push(link(HubSpotObjectType::Company, company, DEAL_TO_COMPANY));
    }
    links
}

fn link(to: HubSpotObjectType, identity: &Identity, type_id: i32) -> Association {
    Association {
        to_object_type: to,
        to_hubspot_id: None,
        to_identity: Some(identity.clone()),
        association_category: HUBSPOT_DEFINED.to_owned(),
        association_type_id: type_id,
    }
}

fn identity(kind: IdentityKind, property: &str, value: &str) -> Identity {
    Identity {
        kind,
        property: property.to_owned(),
        value: value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::tests::blank_activity;

    fn targets(links: &[Association]) -> Vec<(HubSpotObjectType, String, i32)> {
        links
            .iter()
            .map(|a| {
                let identity = a.to_identity.as_ref().expect("by identity");
                (
                    a.to_object_type,
                    format!("{}:{}", identity.property, identity.value),
                    a.association_type_id,
                )
            })
            .collect()
    }

    fn rules(company: bool, deal: bool) -> ActivityRules {
        ActivityRules {
            associate_company: company,
            associate_open_deal: deal,
            ..ActivityRules::default()
        }
    }

    #[test]
    fn the_contact_is_found_by_email_else_by_its_id() {
        let mut event = blank_activity(hubsync_schemas::ActivityType::Call);
        event.contact_email = Some(" Jordan.Lee@Northwind.example ".to_owned());
        let by_email = contact_identity(&event).expect("valid").expect("known");
        assert_eq!(
            (
                by_email.kind,
                by_email.property.as_str(),
                by_email.value.as_str()
            ),
            (IdentityKind::Email, "email", "jordan.lee@northwind.example")
        );
        event.contact_email = Some("  ".to_owned());
        let by_id = contact_identity(&event).expect("valid").expect("known");
        assert_eq!(
            (by_id.kind, by_id.property.as_str(), by_id.value.as_str()),
            (IdentityKind::SourceId, "contact_id", "ct_1")
        );
        event.contact_id = " ".to_owned();
        assert_eq!(contact_identity(&event), Ok(None));
        event.contact_email = Some("jordan at northwind".to_owned());
        let problem = contact_identity(&event).expect_err("not an email");
        assert_eq!(problem.code, ProblemCode::InvalidEmail);
        assert_eq!(problem.field, "contact_email");
    }

    #[test]
    fn every_activity_object_has_hubspots_type_ids() {
        let expected = [
            (HubSpotObjectType::Note, (202, 190, 214)),
            (HubSpotObjectType::Email, (198, 186, 210)),
            (HubSpotObjectType::Call, (194, 182, 206)),
            (HubSpotObjectType::Task, (204, 192, 216)),
            (HubSpotObjectType::Meeting, (200, 188, 212)),
        ];
        for (object, (contact, company, deal)) in expected {
            assert_eq!(
                activity_type_ids(object),
                Some(ActivityTypeIds {
                    contact,
                    company,
                    deal
                })
            );
        }
        assert_eq!(activity_type_ids(HubSpotObjectType::Contact), None);
    }

    #[test]
    fn an_activity_links_its_contact_and_what_the_rules_ask_for() {
        let mut event = blank_activity(hubsync_schemas::ActivityType::Call);
        event.company_id = Some("co_7".to_owned());
        let contact = contact_identity(&event).expect("valid").expect("known");
        let company = company_identity(&event);
        let deal = deal_identity("ct_1", "cmp_q3");

        let all = activity_associations(
            HubSpotObjectType::Call,
            &contact,
            company.as_ref(),
            Some(&deal),
            &rules(true, true),
        );
        assert_eq!(
            targets(&all),
            [
                (
                    HubSpotObjectType::Contact,
                    "contact_id:ct_1".to_owned(),
                    194
                ),
                (
                    HubSpotObjectType::Company,
                    "company_id:co_7".to_owned(),
                    182
                ),
                (
                    HubSpotObjectType::Deal,
                    "hubsync_deal_key:ct_1:cmp_q3".to_owned(),
                    206
                ),
            ]
        );
        assert!(
            all.iter()
                .all(|a| a.association_category == "HUBSPOT_DEFINED")
        );

        let contact_only = activity_associations(
            HubSpotObjectType::Note,
            &contact,
            company.as_ref(),
            Some(&deal),
            &rules(false, false),
        );
        assert_eq!(
            targets(&contact_only),
            [(
                HubSpotObjectType::Contact,
                "contact_id:ct_1".to_owned(),
                202
            )]
        );

        let unknown_company_and_deal = activity_associations(
            HubSpotObjectType::Meeting,
            &contact,
            None,
            None,
            &rules(true, true),
        );
        assert_eq!(unknown_company_and_deal.len(), 1);
    }

    #[test]
    fn a_deal_links_its_contact_and_company() {
        let contact = Identity {
            kind: IdentityKind::Email,
            property: "email".to_owned(),
            value: "ada@acme.io".to_owned(),
        };
        let company = Identity {
            kind: IdentityKind::SourceId,
            property: "company_id".to_owned(),
            value: "co_1".to_owned(),
        };
        assert_eq!(
            targets(&deal_associations(&contact, Some(&company))),
            [
                (
                    HubSpotObjectType::Contact,
                    "email:ada@acme.io".to_owned(),
                    3
                ),
                (
                    HubSpotObjectType::Company,
                    "company_id:co_1".to_owned(),
                    341
                ),
            ]
        );
        assert_eq!(deal_associations(&contact, None).len(), 1);
    }
}
