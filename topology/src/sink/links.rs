//! The links of records about to be created (activities, deals), resolved to HubSpot ids so the
//! create makes them inline: one call creates up to 100 records and links them.
//!
//! A command names each link by the other record's identity (`email:ada@acme.io`,
//! `source_id:deal-key`). The identity map answers for records hubsync wrote; contacts it does
//! not know are read by email, all in one batch read, which also brings their owner. A link to
//! a company or a deal the map does not know is left out: HubSpot cannot look those up by their
//! upstream id. Without its contact a record is not created at all: it waits for the contact.
//!
//! The contact's owner is needed for activities that inherit it: it comes from that read, or
//! from what hubsync last wrote to the contact, and only when neither has it from one more read
//! by id.

use std::collections::{BTreeSet, HashMap};

use hubsync_schemas::{Association, HubSpotObjectType, Identity, IdentityKind};

use super::coalesce::PendingRecord;
use crate::hubspot::{
    AssociationCategory, AssociationType, Error as ClientError, HubSpotClient, InlineAssociation,
    ObjectType,
};
use crate::state::{State, StateError, hubspot_key, record_key};

/// The HubSpot property holding a contact's owner.
pub const OWNER_PROPERTY: &str = "hubspot_owner_id";

/// One record's links, ready for its create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    pub inline: Vec<InlineAssociation>,
    /// The linked contact's HubSpot id.
    pub contact_id: Option<String>,
    /// The linked contact's owner, when it was asked for and the contact has one.
    pub contact_owner: Option<String>,
}

/// What became of one record's links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Ready(Links),
    /// The contact it belongs to is not in HubSpot (yet): `email:ada@acme.io`.
    ContactMissing(String),
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The contact link of a record, if it has one.
pub fn contact_link(record: &PendingRecord) -> Option<&Association> {
    associations(record)
        .iter()
        .find(|a| a.to_object_type == HubSpotObjectType::Contact)
}

pub(super) fn associations(record: &PendingRecord) -> &[Association] {
    &record.merged.associations
}

/// The identity-map key of the record an association points at.
pub(super) fn link_key(to: HubSpotObjectType, identity: &Identity) -> Option<String> {
    let object = ObjectType::of_command(to)?;
    let value = match identity.kind {
        IdentityKind::Email | IdentityKind::Domain => identity.value.trim().to_ascii_lowercase(),
        _ => identity.value.clone(),
    };
    Some(record_key(
        object.path_name(),
        identity.kind.as_str(),
        &value,
    ))
}

fn label(identity: &Identity) -> String {
    hubsync_processors::decision::identity_label(identity)
}

/// Resolves the links of `records`, keyed by record key. `wants_owner` says which records need
/// their contact's owner.
pub async fn resolve(
    client: &HubSpotClient,
    state: &State,
    records: &[PendingRecord],
    wants_owner: impl Fn(&PendingRecord) -> bool,
) -> Result<HashMap<String, Resolved>, LinkError> {
    // Contacts the identity map does not know, by email: one read for all of them.
    let mut unknown_emails = BTreeSet::new();
    for record in records {
        if let Some(link) = contact_link(record)
            && link.to_hubspot_id.is_none()
            && let Some(identity) = &link.to_identity
            && identity.kind == IdentityKind::Email
            && let Some(key) = link_key(HubSpotObjectType::Contact, identity)
            && state.identity(&key)?.is_none()
        {
            unknown_emails.insert(identity.value.trim().to_ascii_lowercase());
        }
    }
    let mut owners: HashMap<String, Option<String>> = HashMap::new();
    if !unknown_emails.is_empty() {
        let emails: Vec<String> = unknown_emails.into_iter().collect();
        let answers = client
            .batch_read(
                ObjectType::Contacts,
                &emails,
                Some("email"),
                &[OWNER_PROPERTY.to_string()],
            )
            .await?;
        for answer in answers {
            if let Ok(found) = answer.result {
                let key = record_key(
                    ObjectType::Contacts.path_name(),
                    IdentityKind::Email.as_str(),
                    &answer.key.to_ascii_lowercase(),
                );
                state.set_identity(&key, &found.id)?;
                owners.insert(
                    found.id.clone(),
                    found.property(OWNER_PROPERTY).map(str::to_string),
                );
            }
        }
    }

    let mut resolved = HashMap::new();
    let mut owner_unknown: Vec<String> = Vec::new();
    for record in records {
        let mut links = Links::default();
        let mut missing = None;
        for association in associations(record) {
            let id = match (&association.to_hubspot_id, &association.to_identity) {
                (Some(id), _) => Some(id.clone()),
                (None, Some(identity)) => match link_key(association.to_object_type, identity) {
                    Some(key) => state.identity(&key)?,
                    None => None,
                },
                (None, None) => None,
            };
            let is_contact = association.to_object_type == HubSpotObjectType::Contact;
            let Some(id) = id else {
                if is_contact {
                    missing = Some(
                        association
                            .to_identity
                            .as_ref()
                            .map_or_else(|| "contact without an identity".to_string(), label),
                    );
                }
                continue;
            };
            if is_contact && links.contact_id.is_none() {
                links.contact_id = Some(id.clone());
            }
            links.inline.push(InlineAssociation {
                to_id: id,
                types: vec![association_type(association)],
            });
        }
        if let Some(contact) = missing {
            resolved.insert(record.key.clone(), Resolved::ContactMissing(contact));
            continue;
        }
        if wants_owner(record)
            && let Some(contact) = links.contact_id.clone()
        {
            match owners.get(&contact) {
                Some(owner) => links.contact_owner = owner.clone().filter(|o| !o.is_empty()),
                None => {
                    let last = state
                        .last_written(&hubspot_key(ObjectType::Contacts.path_name(), &contact))?;
                    match last.get(OWNER_PROPERTY) {
                        Some(owner) => {
                            links.contact_owner = Some(owner.clone()).filter(|o| !o.is_empty());
                        }
                        None => owner_unknown.push(contact),
                    }
                }
            }
        }
        resolved.insert(record.key.clone(), Resolved::Ready(links));
    }

    // Owners neither the read nor hubsync's own writes told: one read by id.
    if !owner_unknown.is_empty() {
        owner_unknown.sort();
        owner_unknown.dedup();
        let answers = client
            .batch_read(
                ObjectType::Contacts,
                &owner_unknown,
                None,
                &[OWNER_PROPERTY.to_string()],
            )
            .await?;
        let found: HashMap<String, Option<String>> = answers
            .into_iter()
            .filter_map(|a| {
                let record = a.result.ok()?;
                let owner = record
                    .property(OWNER_PROPERTY)
                    .filter(|o| !o.is_empty())
                    .map(str::to_string);
                Some((a.key, owner))
            })
            .collect();
        for resolution in resolved.values_mut() {
            if let Resolved::Ready(links) = resolution
                && links.contact_owner.is_none()
                && let Some(contact) = &links.contact_id
                && let Some(owner) = found.get(contact)
            {
                links.contact_owner = owner.clone();
            }
        }
    }
    Ok(resolved)
}

pub(super) fn association_type(association: &Association) -> AssociationType {
    let category = match association.association_category.as_str() {
        "USER_DEFINED" => AssociationCategory::UserDefined,
        "INTEGRATOR_DEFINED" => AssociationCategory::IntegratorDefined,
        _ => AssociationCategory::HubspotDefined,
    };
    AssociationType {
        association_category: category,
        association_type_id: u32::try_from(association.association_type_id).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_keys_fold_emails_like_the_records_they_point_at() {
        let identity = Identity {
            kind: IdentityKind::Email,
            property: "email".into(),
            value: " Ada@Acme.IO ".into(),
        };
        assert_eq!(
            link_key(HubSpotObjectType::Contact, &identity).as_deref(),
            Some("contacts:EMAIL:ada@acme.io")
        );
        let deal = Identity {
            kind: IdentityKind::SourceId,
            property: "hubsync_deal_key".into(),
            value: "ct_1:Camp".into(),
        };
        assert_eq!(
            link_key(HubSpotObjectType::Deal, &deal).as_deref(),
            Some("deals:SOURCE_ID:ct_1:Camp")
        );
    }

    #[test]
    fn association_categories_map_to_hubspot_names() {
        let mut association = Association {
            to_object_type: HubSpotObjectType::Contact,
            to_hubspot_id: None,
            to_identity: None,
            association_category: "USER_DEFINED".into(),
            association_type_id: 202,
        };
        assert_eq!(
            association_type(&association).association_category,
            AssociationCategory::UserDefined
        );
        association.association_category = "HUBSPOT_DEFINED".into();
        let kind = association_type(&association);
        assert_eq!(
            kind.association_category,
            AssociationCategory::HubspotDefined
        );
        assert_eq!(kind.association_type_id, 202);
    }
}
