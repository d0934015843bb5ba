//! A contact's link to its company: HubSpot's primary contact -> company association.
//!
//! A contact command names its company by domain. A company hubsync has written (or found by
//! domain when writing it) is in the identity map: it is linked by the contact's create itself
//! where the contact is created, and by one batch association call after the write otherwise. A
//! company hubsync has not written yet leaves the link waiting (`pending_links` in the state)
//! until hubsync writes that company under the company rules (looking it up by domain, creating
//! it where they allow): that write makes every waiting link in one call. No search is spent on
//! a contact's company: the company's own events find it.
//!
//! What a contact is linked to is remembered with what hubsync last wrote to it ([`LINKED`],
//! [`WANTED`]), so an unchanged link costs no call, and a link still waiting for a company the
//! contact has left since is never made.
//!
//! ```text
//! contact ada@acme.io, company domain:acme.io   (identity map: companies:DOMAIN:acme.io -> 77)
//!   -> created with {"to": 77, "types": [HUBSPOT_DEFINED 1]} inline, or after an upsert
//!      POST /crm/v4/associations/contacts/companies/batch/create, once
//! contact bob@new.io, company domain:new.io     (not written by hubsync yet)
//!   -> written now; the link waits for companies:DOMAIN:new.io and is made when hubsync writes it
//! ```

use std::collections::{BTreeMap, HashMap};

use hubsync_schemas::{Association, HubSpotObjectType, IdentityKind};
use tracing::warn;

use super::coalesce::PendingRecord;
use super::links;
use super::verdict::Resolution;
use crate::hubspot::{AssociationInput, HubSpotClient, InlineAssociation, ObjectType};
use crate::state::{State, StateError, WaitingLink, hubspot_key};

/// The HubSpot id of the company a contact was linked to, kept with its last written values.
pub const LINKED: &str = "@company";
/// The company (its record key) a contact last asked to be linked to.
pub const WANTED: &str = "@company_wanted";

/// Where a contact's company stands before the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Company {
    /// In HubSpot, with this id.
    Known(String),
    /// Not written by hubsync yet.
    Absent,
}

/// The company link one contact asks for.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The company's record key (`companies:DOMAIN:acme.io`).
    pub key: String,
    pub domain: String,
    pub company: Company,
    pub association: Association,
}

impl Wanted {
    /// The link for the contact's create, when the company is known.
    pub fn inline(&self) -> Option<InlineAssociation> {
        match &self.company {
            Company::Known(id) => Some(InlineAssociation {
                to_id: id.clone(),
                types: vec![links::association_type(&self.association)],
            }),
            Company::Absent => None,
        }
    }
}

/// The company link of a contact record, if its newest command names one by domain.
fn company_link(record: &PendingRecord) -> Option<(&Association, String, String)> {
    let association = links::associations(record).iter().find(|a| {
        a.to_object_type == HubSpotObjectType::Company
            && a.to_identity
                .as_ref()
                .is_some_and(|i| i.kind == IdentityKind::Domain)
    })?;
    let identity = association.to_identity.as_ref()?;
    let key = links::link_key(HubSpotObjectType::Company, identity)?;
    Some((association, key, identity.value.trim().to_ascii_lowercase()))
}

/// The companies `records` (contacts) ask to be linked to, keyed by contact record key.
pub fn find(
    state: &State,
    records: &[PendingRecord],
) -> Result<HashMap<String, Wanted>, StateError> {
    let mut wanted = HashMap::new();
    for record in records {
        let Some((association, key, domain)) = company_link(record) else {
            continue;
        };
        let company = match state.identity(&key)? {
            Some(id) => Company::Known(id),
            None => Company::Absent,
        };
        wanted.insert(
            record.key.clone(),
            Wanted {
                key,
                domain,
                company,
                association: association.clone(),
            },
        );
    }
    Ok(wanted)
}

/// Remembers that a contact was created linked to its company.
pub fn remember_inline(state: &State, contact_id: &str, wanted: &Wanted) -> Result<(), StateError> {
    if let Company::Known(company) = &wanted.company {
        remember(state, contact_id, &wanted.key, company)?;
    }
    Ok(())
}

fn remember(
    state: &State,
    contact_id: &str,
    company_key: &str,
    company_id: &str,
) -> Result<(), StateError> {
    state.merge_last_written(
        &hubspot_key(ObjectType::Contacts.path_name(), contact_id),
        &BTreeMap::from([
            (LINKED.to_string(), company_id.to_string()),
            (WANTED.to_string(), company_key.to_string()),
        ]),
    )
}

/// After contacts were written: links each to its company where it is not linked to it yet,
/// in one call, and leaves the links to companies HubSpot lacks waiting for them. A link that
/// fails is said in the contact's outcome and tried again at its next event.
pub async fn link_written(
    client: &HubSpotClient,
    state: &State,
    results: &mut [(PendingRecord, Resolution)],
    wanted: &HashMap<String, Wanted>,
) -> Result<(), StateError> {
    let mut inputs = Vec::new();
    let mut asked: Vec<(usize, String, &Wanted, String)> = Vec::new();
    for (index, (record, resolution)) in results.iter_mut().enumerate() {
        let (Some(link), Resolution::Done(verdict)) = (wanted.get(&record.key), resolution) else {
            continue;
        };
        let Some(contact_id) = verdict.hubspot_id.clone() else {
            continue;
        };
        let last =
            state.last_written(&hubspot_key(ObjectType::Contacts.path_name(), &contact_id))?;
        match &link.company {
            Company::Known(company_id) => {
                if last.get(LINKED) == Some(company_id) {
                    continue;
                }
                inputs.push(AssociationInput {
                    trace_id: format!("{index}"),
                    from_id: contact_id.clone(),
                    to_id: company_id.clone(),
                    types: vec![links::association_type(&link.association)],
                });
                asked.push((index, contact_id, link, company_id.clone()));
            }
            Company::Absent => {
                // Says which company it wants, waits, then looks again: a company written
                // meanwhile has either seen this waiting link (and the wish) or is in the
                // identity map by now.
                if last.get(WANTED) != Some(&link.key) {
                    state.merge_last_written(
                        &hubspot_key(ObjectType::Contacts.path_name(), &contact_id),
                        &BTreeMap::from([(WANTED.to_string(), link.key.clone())]),
                    )?;
                }
                let kind = links::association_type(&link.association);
                state.add_waiting_link(
                    &link.key,
                    &WaitingLink {
                        contact_id: contact_id.clone(),
                        category: link.association.association_category.clone(),
                        type_id: i32::try_from(kind.association_type_id).unwrap_or_default(),
                    },
                )?;
                if let Some(company_id) = state.identity(&link.key)? {
                    if last.get(LINKED) != Some(&company_id) {
                        inputs.push(AssociationInput {
                            trace_id: format!("{index}"),
                            from_id: contact_id.clone(),
                            to_id: company_id.clone(),
                            types: vec![kind],
                        });
                        asked.push((index, contact_id, link, company_id));
                    } else {
                        state.remove_waiting_link(&link.key, &contact_id)?;
                    }
                    continue;
                }
                verdict.reason = format!(
                    "{}; its company {} is linked when hubsync writes that company",
                    verdict.reason, link.domain
                );
            }
        }
    }
    if inputs.is_empty() {
        return Ok(());
    }
    let answers = associate(client, &inputs).await;
    for (index, contact_id, link, company_id) in asked {
        let problem = match answers.get(&format!("{index}")) {
            Some(Ok(())) => {
                remember(state, &contact_id, &link.key, &company_id)?;
                state.remove_waiting_link(&link.key, &contact_id)?;
                continue;
            }
            Some(Err(problem)) => problem.clone(),
            None => "HubSpot gave no answer for it".to_string(),
        };
        if let Some((_, Resolution::Done(verdict))) = results.get_mut(index) {
            verdict.reason = format!(
                "{}; its link to company {} ({}) was not made: {problem}; the next event of this contact tries again",
                verdict.reason, link.domain, company_id
            );
        }
    }
    Ok(())
}

/// After companies were written: makes the links of the contacts waiting for them, in one call.
/// Links that fail keep waiting for the company's next write.
pub async fn link_waiting(
    client: &HubSpotClient,
    state: &State,
    results: &[(PendingRecord, Resolution)],
) -> Result<(), StateError> {
    let mut inputs = Vec::new();
    let mut asked: Vec<(String, String, String)> = Vec::new();
    for (record, resolution) in results {
        let Resolution::Done(verdict) = resolution else {
            continue;
        };
        let Some(company_id) = &verdict.hubspot_id else {
            continue;
        };
        for contact in state.waiting_links(&record.key)? {
            // A contact that asked for another company since keeps that one.
            let last = state.last_written(&hubspot_key(
                ObjectType::Contacts.path_name(),
                &contact.contact_id,
            ))?;
            if last.get(WANTED) != Some(&record.key) {
                state.remove_waiting_link(&record.key, &contact.contact_id)?;
                continue;
            }
            let trace_id = format!("{}", inputs.len());
            inputs.push(AssociationInput {
                trace_id,
                from_id: contact.contact_id.clone(),
                to_id: company_id.clone(),
                types: vec![links::association_type(&Association {
                    to_object_type: HubSpotObjectType::Company,
                    to_hubspot_id: None,
                    to_identity: None,
                    association_category: contact.category.clone(),
                    association_type_id: contact.type_id,
                })],
            });
            asked.push((record.key.clone(), company_id.clone(), contact.contact_id));
        }
    }
    if inputs.is_empty() {
        return Ok(());
    }
    let answers = associate(client, &inputs).await;
    for (index, (company_key, company_id, contact_id)) in asked.into_iter().enumerate() {
        match answers.get(&format!("{index}")) {
            Some(Ok(())) => {
                remember(state, &contact_id, &company_key, &company_id)?;
                state.remove_waiting_link(&company_key, &contact_id)?;
            }
            Some(Err(problem)) => {
                warn!(company = %company_id, contact = %contact_id, %problem, "a waiting company link was not made; it waits for the company's next write");
            }
            None => {
                warn!(company = %company_id, contact = %contact_id, "HubSpot gave no answer for a waiting company link; it waits for the company's next write");
            }
        }
    }
    Ok(())
}

/// Creates contact -> company links, 100 per call; every input's answer by its trace id.
async fn associate(
    client: &HubSpotClient,
    inputs: &[AssociationInput],
) -> HashMap<String, Result<(), String>> {
    let mut answers = HashMap::new();
    for chunk in inputs.chunks(100) {
        match client
            .create_associations(ObjectType::Contacts, ObjectType::Companies, chunk)
            .await
        {
            Ok(results) => {
                for result in results {
                    answers.insert(
                        result.key,
                        result.result.map(|_| ()).map_err(|e| e.to_string()),
                    );
                }
            }
            Err(error) => {
                for input in chunk {
                    answers.insert(input.trace_id.clone(), Err(error.to_string()));
                }
            }
        }
    }
    answers
}
