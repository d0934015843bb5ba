//! Rule 11, second half: deal triggers. An activity of a trigger type creates the contact's deal
//! in the activity's campaign, with the deal defaults, associated with the contact and company.
//!
//! ```text
//! ActivityRecorded { contact_id: "ct_1", contact_email: "ada@acme.io", company_id: "co_1",
//!   activity_type: EMAIL_REPLIED, campaign: { campaign_id: "cmp_q3", name: "Q3 outbound" } }
//!   with [campaigns.cmp_q3] deal_triggers = ["email_replied"]
//!        [sync.deals] pipeline = "default", stage = "appointmentscheduled",
//!        name_template = "{contact.email} – {campaign.name}", defaults = { dealtype = "newbusiness" }
//!   -> CommandDraft { DEAL, UPSERT, hubsync_deal_key:ct_1:cmp_q3, may_create,
//!        create_only_properties { dealname: "ada@acme.io – Q3 outbound", dealstage: "appointmentscheduled",
//!          dealtype: "newbusiness", pipeline: "default", hubspot_owner_id: .. },
//!        associations [CONTACT email:ada@acme.io (3), COMPANY company_id:co_1 (341)] }
//! ```
//!
//! A deal is drafted when the activity belongs to a campaign and its type is among the
//! campaign's `deal_triggers`, or `sync.deals.create` is enabled with `on_activity` naming the
//! type (the trigger for every campaign). There is one deal per contact and campaign, keyed
//! `{contact_id}:{campaign_id}`, so later triggers find the same deal: everything a deal starts
//! with is create-only and an existing deal keeps its values. An activity without a campaign
//! creates no deal. `pipeline` and `stage` are always set when anything creates deals
//! ([`crate::Rules::validate`] requires them).
//!
//! The deal's owner is the activity's sender's owner, else the default owner (rule 8 without the
//! contact's owner, which only the sink knows); none with `sync.deals.owner_strategy = "never"`.
//!
//! The name template's placeholders take what the event carries: `{contact.id}`,
//! `{contact.email}`, `{company.id}`, `{campaign.id}`, `{campaign.name}`, `{campaign.step}`;
//! any other `{ns.field}` is looked up in the event's `details` as `ns.field`, then `ns_field`
//! (`details { company_name: "Northwind" }` fills `{company.name}`). A placeholder without a
//! value is left empty, the separators it leaves at either end are dropped, and a name left
//! empty becomes `<contact email or id> – <campaign name or id>`.

use std::collections::BTreeMap;

use hubsync_schemas::{ActivityRecorded, CampaignRef, CommandAction, HubSpotObjectType, Identity};

use crate::associations::{company_identity, deal_associations, deal_identity};
use crate::catalog::PropertyCatalog;
use crate::coerce;
use crate::decision::{ActivityOwner, CommandDraft, Problem, ProblemCode};
use crate::defaults::create_only_defaults;
use crate::normalize;
use crate::rules::{ActivityType, CreateTrigger, DealSync, OWNER_PROPERTY, OwnerStrategy, Rules};

/// HubSpot's limit on a deal name, as on any string property.
const MAX_NAME: usize = 65_536;

/// The campaign of an activity, when it names one.
pub fn campaign_of(event: &ActivityRecorded) -> Option<&CampaignRef> {
    event
        .campaign
        .as_ref()
        .filter(|campaign| !campaign.campaign_id.trim().is_empty())
}

/// Whether an activity of this type in this campaign creates a deal.
pub fn triggers_deal(activity: ActivityType, campaign_id: &str, rules: &Rules) -> bool {
    let campaign = rules.campaign(campaign_id.trim());
    campaign.triggers_deal(activity)
        || (campaign.push_to_crm && triggers_everywhere(activity, &rules.sync.deals))
}

/// Whether contacts may have a deal in this campaign: some activity type creates one there.
pub fn campaign_has_deals(campaign_id: &str, rules: &Rules) -> bool {
    let campaign = rules.campaign(campaign_id.trim());
    let create = &rules.sync.deals.create;
    let everywhere = create.enabled && matches!(create.trigger, CreateTrigger::OnActivity(_));
    campaign.push_to_crm && (!campaign.deal_triggers.is_empty() || everywhere)
}

fn triggers_everywhere(activity: ActivityType, deals: &DealSync) -> bool {
    deals.create.enabled && deals.create.trigger == CreateTrigger::OnActivity(activity)
}

/// The deal this activity creates, if it triggers one; every problem with its values otherwise.
/// `contact` is how the activity's contact is found.
pub fn deal_draft(
    event: &ActivityRecorded,
    activity: ActivityType,
    rules: &Rules,
    catalog: &PropertyCatalog,
    contact: &Identity,
    owner: &ActivityOwner,
) -> Result<Option<CommandDraft>, Vec<Problem>> {
    let Some(campaign) = campaign_of(event) else {
        return Ok(None);
    };
    if !triggers_deal(activity, &campaign.campaign_id, rules) {
        return Ok(None);
    }
    let contact_id = normalize::trim(&event.contact_id);
    if contact_id.is_empty() {
        return Err(vec![Problem {
            code: ProblemCode::MissingValue,
            field: "contact_id".to_owned(),
            property: None,
            message: format!(
                "contact_id is empty, and this {activity} activity creates the contact's deal \
                 in campaign {}, which is kept per contact id and campaign: send the contact id",
                campaign.campaign_id.trim()
            ),
        }]);
    }
    let deals = &rules.sync.deals;
    let mut problems = Vec::new();
    let mut values = match create_only_defaults(
        HubSpotObjectType::Deal,
        "sync.deals",
        &deals.defaults,
        catalog,
    ) {
        Ok(values) => values,
        Err(found) => {
            problems.extend(found);
            BTreeMap::new()
        }
    };
    for (setting, property, value) in [
        ("sync.deals.pipeline", "pipeline", deals.pipeline.as_deref()),
        ("sync.deals.stage", "dealstage", deals.stage.as_deref()),
    ] {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        match coerce::check_value(HubSpotObjectType::Deal, property, value, catalog) {
            Ok(value) => {
                values.insert(property.to_owned(), value.into_owned());
            }
            Err(error) => {
                problems.push(error.into_problem(HubSpotObjectType::Deal, setting, property, value))
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let name = render_name(&deals.name_template, |namespace, field| {
        placeholder(event, namespace, field)
    });
    let name = if name.is_empty() {
        fallback_name(event, campaign)
    } else {
        name
    };
    values.insert("dealname".to_owned(), name);
    if deals.owner_strategy != OwnerStrategy::Never {
        let id = match owner {
            ActivityOwner::Sender(id) => Some(id),
            ActivityOwner::ContactOwner { fallback } => fallback.as_ref(),
        };
        if let Some(id) = id {
            values.insert(OWNER_PROPERTY.to_owned(), id.clone());
        }
    }

    let identity = deal_identity(contact_id, campaign.campaign_id.trim());
    let mut draft = CommandDraft::new(HubSpotObjectType::Deal, CommandAction::Upsert, identity);
    draft.create_only_properties = values;
    draft.may_create = true;
    draft.associations = deal_associations(contact, company_identity(event).as_ref());
    Ok(Some(draft))
}

/// A name template with each `{namespace.field}` replaced by `value(namespace, field)` (empty
/// when `None`) and `{{`, `}}` by literal braces; whitespace runs become one space and
/// separators left dangling at either end are dropped. May be empty.
pub fn render_name(template: &str, value: impl Fn(&str, &str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        let Some(close) = tail.find('}').filter(|_| tail.starts_with('{')) else {
            // A stray brace (the config check refuses these): keep it as written.
            out.push_str(&tail[..1]);
            rest = &tail[1..];
            continue;
        };
        let placeholder = &tail[1..close];
        if let Some((namespace, field)) = placeholder.split_once('.')
            && let Some(text) = value(namespace.trim(), field.trim())
        {
            out.push_str(&text);
        }
        rest = &tail[close + 1..];
    }
    out.push_str(rest);
    tidy(&out)
}

/// One placeholder's value from the event.
fn placeholder(event: &ActivityRecorded, namespace: &str, field: &str) -> Option<String> {
    let present = |value: Option<&str>| {
        value
            .map(normalize::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let campaign = campaign_of(event);
    let known = match (namespace, field) {
        ("contact", "id" | "contact_id") => present(Some(&event.contact_id)),
        ("contact", "email") => {
            event
                .contact_email
                .as_deref()
                .and_then(|raw| match normalize::email(raw) {
                    Ok(email) => Some(email.into_owned()),
                    Err(_) => present(Some(raw)),
                })
        }
        ("company", "id" | "company_id") => present(event.company_id.as_deref()),
        ("campaign", "id" | "campaign_id") => campaign.and_then(|c| present(Some(&c.campaign_id))),
        ("campaign", "name") => campaign.and_then(|c| present(c.name.as_deref())),
        ("campaign", "step" | "sequence_step") => campaign
            .and_then(|c| c.sequence_step)
            .map(|step| step.to_string()),
        _ => None,
    };
    known
        .or_else(|| {
            present(
                event
                    .details
                    .get(&format!("{namespace}.{field}"))
                    .map(String::as_str),
            )
        })
        .or_else(|| {
            present(
                event
                    .details
                    .get(&format!("{namespace}_{field}"))
                    .map(String::as_str),
            )
        })
}

/// `<contact email or id> – <campaign name or id>`.
fn fallback_name(event: &ActivityRecorded, campaign: &CampaignRef) -> String {
    let contact = placeholder(event, "contact", "email")
        .or_else(|| placeholder(event, "contact", "id"))
        .unwrap_or_else(|| "contact".to_owned());
    let campaign = campaign
        .name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or(campaign.campaign_id.trim());
    tidy(&format!("{contact} – {campaign}"))
}

/// Whitespace runs as one space, without separators dangling at either end, within HubSpot's
/// length limit.
fn tidy(name: &str) -> String {
    let spaced = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let separator =
        |c: char| c.is_whitespace() || matches!(c, '-' | '–' | '—' | ':' | '|' | ',' | '/' | '·');
    let trimmed = spaced.trim_matches(separator);
    match trimmed.char_indices().nth(MAX_NAME) {
        Some((end, _)) => trimmed[..end].to_owned(),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use hubsync_schemas::{IdentityKind, Sender};

    use super::*;
    use crate::activity::tests::blank_activity;
    use crate::catalog::{PropertyKind, PropertySpec};

    use crate::rules::tests::valid_rules as rules;

    fn team() -> Rules {
        rules(
            r#"
            [sync.deals]
            pipeline = "default"
            stage = "appointmentscheduled"
            defaults = { dealtype = "newbusiness" }
            [campaigns.cmp_q3]
            deal_triggers = ["email_replied", "meeting_booked"]
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
                PropertySpec::new(PropertyKind::enumeration([
                    "appointmentscheduled",
                    "closedwon",
                ])),
            )
            .with(
                Deal,
                "dealtype",
                PropertySpec::new(PropertyKind::enumeration([
                    "newbusiness",
                    "existingbusiness",
                ])),
            )
            .with(
                Deal,
                OWNER_PROPERTY,
                PropertySpec::new(PropertyKind::String),
            )
    }

    fn reply(campaign: Option<&str>) -> ActivityRecorded {
        let mut event = blank_activity(hubsync_schemas::ActivityType::EmailReplied);
        event.contact_email = Some("Ada@Acme.io".to_owned());
        event.company_id = Some("co_1".to_owned());
        event.campaign = campaign.map(|id| CampaignRef {
            campaign_id: id.to_owned(),
            name: Some("Q3 outbound".to_owned()),
            sequence_step: Some(2),
        });
        event
    }

    fn contact() -> Identity {
        Identity {
            kind: IdentityKind::Email,
            property: "email".to_owned(),
            value: "ada@acme.io".to_owned(),
        }
    }

    fn decide(
        event: &ActivityRecorded,
        rules: &Rules,
    ) -> Result<Option<CommandDraft>, Vec<Problem>> {
        let activity = crate::activity::activity_type(event.activity_type);
        let owner = ActivityOwner::Sender("90012".to_owned());
        deal_draft(event, activity, rules, &portal(), &contact(), &owner)
    }

    fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_trigger_type_creates_the_contacts_deal_in_the_campaign() {
        let draft = decide(&reply(Some("cmp_q3")), &team())
            .expect("valid")
            .expect("a reply triggers a deal");
        assert_eq!(draft.object_type, HubSpotObjectType::Deal);
        assert_eq!(draft.action, CommandAction::Upsert);
        assert_eq!(
            (
                draft.identity.kind,
                draft.identity.property.as_str(),
                draft.identity.value.as_str()
            ),
            (IdentityKind::SourceId, "hubsync_deal_key", "ct_1:cmp_q3")
        );
        assert!(draft.properties.is_empty(), "{:?}", draft.properties);
        assert!(draft.may_create);
        assert_eq!(
            draft.create_only_properties,
            strings(&[
                ("dealname", "ada@acme.io – Q3 outbound"),
                ("dealstage", "appointmentscheduled"),
                ("dealtype", "newbusiness"),
                ("hubspot_owner_id", "90012"),
                ("pipeline", "default"),
            ])
        );
        let links: Vec<_> = draft
            .associations
            .iter()
            .map(|a| (a.to_object_type, a.association_type_id))
            .collect();
        assert_eq!(
            links,
            [
                (HubSpotObjectType::Contact, 3),
                (HubSpotObjectType::Company, 341)
            ]
        );
    }

    #[test]
    fn only_trigger_types_of_the_campaign_create_deals() {
        let team = team();
        let mut sent = reply(Some("cmp_q3"));
        sent.activity_type = hubsync_schemas::ActivityType::EmailSent;
        assert_eq!(decide(&sent, &team), Ok(None), "not a trigger type");
        assert_eq!(
            decide(&reply(Some("cmp_other")), &team),
            Ok(None),
            "another campaign"
        );
        assert_eq!(decide(&reply(None), &team), Ok(None), "no campaign");
        assert_eq!(
            decide(&reply(Some("  ")), &team),
            Ok(None),
            "a blank campaign"
        );
    }

    #[test]
    fn the_trigger_for_every_campaign_needs_deal_creation_enabled() {
        let everywhere = rules(
            r#"
            [sync.deals]
            pipeline = "default"
            stage = "appointmentscheduled"
            create = { enabled = true, trigger = { on_activity = "email_replied" } }
            "#,
        );
        assert!(
            decide(&reply(Some("cmp_any")), &everywhere)
                .expect("valid")
                .is_some()
        );
        assert_eq!(
            decide(&reply(None), &everywhere),
            Ok(None),
            "no campaign, no deal"
        );
        assert!(campaign_has_deals("cmp_any", &everywhere));

        let mut disabled = everywhere.clone();
        disabled.sync.deals.create.enabled = false;
        assert_eq!(decide(&reply(Some("cmp_any")), &disabled), Ok(None));
        assert!(!campaign_has_deals("cmp_any", &disabled));

        let mut quiet = everywhere;
        quiet.campaigns.insert(
            "cmp_quiet".to_owned(),
            crate::rules::CampaignRules {
                push_to_crm: false,
                deal_triggers: Vec::new(),
            },
        );
        assert_eq!(
            decide(&reply(Some("cmp_quiet")), &quiet),
            Ok(None),
            "push off"
        );
        assert!(!campaign_has_deals("cmp_quiet", &quiet));
    }

    #[test]
    fn the_deal_owner_follows_the_ownership_rule_and_strategy() {
        let event = reply(Some("cmp_q3"));
        let owner_of = |rules: &Rules, owner: ActivityOwner| {
            deal_draft(
                &event,
                ActivityType::EmailReplied,
                rules,
                &portal(),
                &contact(),
                &owner,
            )
            .expect("valid")
            .expect("a deal")
            .create_only_properties
            .get(OWNER_PROPERTY)
            .cloned()
        };
        let mut team = team();
        assert_eq!(
            owner_of(
                &team,
                ActivityOwner::ContactOwner {
                    fallback: Some("90011".into())
                }
            ),
            Some("90011".to_owned())
        );
        assert_eq!(
            owner_of(&team, ActivityOwner::ContactOwner { fallback: None }),
            None
        );
        team.sync.deals.owner_strategy = OwnerStrategy::Never;
        assert_eq!(owner_of(&team, ActivityOwner::Sender("90012".into())), None);
    }

    #[test]
    fn a_deal_needs_the_contact_id_it_is_kept_by() {
        let mut event = reply(Some("cmp_q3"));
        event.contact_id = " ".to_owned();
        let problems = decide(&event, &team()).expect_err("no contact id");
        assert_eq!(problems[0].code, ProblemCode::MissingValue);
        assert_eq!(problems[0].field, "contact_id");
    }

    #[test]
    fn deal_values_the_portal_refuses_are_problems() {
        let mut team = team();
        team.sync.deals.stage = Some("Appointment scheduled".to_owned());
        team.sync
            .deals
            .defaults
            .insert("dealtype".to_owned(), "new".to_owned());
        let problems = decide(&reply(Some("cmp_q3")), &team).expect_err("bad values");
        let found: Vec<_> = problems
            .iter()
            .map(|p| (p.code, p.field.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (ProblemCode::InvalidOption, "sync.deals.defaults.dealtype"),
                (ProblemCode::InvalidOption, "sync.deals.stage"),
            ]
        );
    }

    #[test]
    fn name_templates_take_what_the_event_carries() {
        let mut event = reply(Some("cmp_q3"));
        event.sender = Some(Sender {
            user_id: "usr_ada".to_owned(),
            email: None,
        });
        event
            .details
            .insert("company_name".to_owned(), "Northwind".to_owned());
        event
            .details
            .insert("contact.first_name".to_owned(), "Ada".to_owned());
        let render = |template: &str| render_name(template, |ns, f| placeholder(&event, ns, f));
        assert_eq!(
            render("{company.name} – {campaign.name}"),
            "Northwind – Q3 outbound"
        );
        assert_eq!(
            render("{contact.first_name} ({contact.id}) step {campaign.step} of {campaign.id}"),
            "Ada (ct_1) step 2 of cmp_q3"
        );
        assert_eq!(
            render("{{{company.id}}} {contact.email}"),
            "{co_1} ada@acme.io"
        );
        assert_eq!(
            render("{company.industry} – {campaign.name}"),
            "Q3 outbound"
        );
        assert_eq!(render("  {company.industry}  |  "), "");
    }

    #[test]
    fn a_name_left_empty_falls_back_to_contact_and_campaign() {
        let mut rules = team();
        rules.sync.deals.name_template = "{company.industry}".to_owned();
        let mut event = reply(Some("cmp_q3"));
        let name = |event: &ActivityRecorded| {
            decide(event, &rules)
                .expect("valid")
                .expect("a deal")
                .create_only_properties
                .get("dealname")
                .cloned()
        };
        assert_eq!(name(&event).as_deref(), Some("ada@acme.io – Q3 outbound"));
        event.contact_email = None;
        if let Some(campaign) = event.campaign.as_mut() {
            campaign.name = None;
        }
        assert_eq!(name(&event).as_deref(), Some("ct_1 – cmp_q3"));
    }
}
