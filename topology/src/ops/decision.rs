//! The current rules applied to one upstream event, in words: what the process stage would decide
//! now, which rule decided it, and what the sink would then do given whether HubSpot holds the
//! record. `trace` shows it per event; `plan` counts it.
//!
//! ```text
//! ContactChanged { email: "pat@globex.com", last_name: null } with mandatory = ["email", "last_name"]
//!   -> DecisionView { verdict: write, rule: "gating", code: PARKED_MISSING_FIELDS when absent,
//!        reason: "would write UPSERT email:pat@globex.com (firstname); may not create it: last_name is empty" }
//! ActivityRecorded { activity_id: "act_1", activity_type: EMAIL_OPENED, sender: usr_ada, .. }
//!   with email_opened = { enabled = true, store_as = "note" } and usr_ada -> 70000003
//!   -> DecisionView { verdict: write, rule: "activities", activity: ActivityView { object: "note",
//!        owner: { source: "sender", owner: "70000003" },
//!        links: [contact email:ada@acme.io (202), company company_id:co_1 (190)], deal: None } }
//! ```
//!
//! Activities and deals are created once, by hubsync's own property: the sink leaves one HubSpot
//! holds already, creates one whose contact HubSpot holds, and makes one wait for its contact
//! otherwise ([`SinkVerdict::once`]).

use std::collections::BTreeMap;

use hubsync_processors::decision::identity_label;
use hubsync_processors::rules::UserRules;
use hubsync_processors::{
    ActivityDecision, ActivityOwner, CommandDraft, Decision, Problem, SkipCode,
};
use hubsync_schemas::{ActivityRecorded, Association, CommandAction, HubSpotObjectType};
use serde::Serialize;

use crate::sink::verdict::{ContactNow, SinkVerdict, listing};

/// What the rules decide for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A command for the sink.
    Write,
    /// Not synced, by a rule.
    Skip,
    /// Refused: a dead letter naming every problem.
    DeadLetter,
}

/// One problem of a refused record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProblemView {
    pub code: &'static str,
    /// The upstream field (or the rules setting of a default value).
    pub field: String,
    pub property: Option<String>,
    pub message: String,
}

impl ProblemView {
    fn of(problem: &Problem) -> Self {
        ProblemView {
            code: problem.code.as_str(),
            field: problem.field.clone(),
            property: problem.property.clone(),
            message: problem.message.clone(),
        }
    }
}

/// What a command would carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteView {
    pub action: &'static str,
    /// `email:ada@acme.io`, `domain:acme.io`, `contact_id:ct_1`.
    pub identity: String,
    pub properties: BTreeMap<String, Option<String>>,
    pub create_only_properties: BTreeMap<String, String>,
    pub fill_if_empty: Vec<String>,
    pub may_create: bool,
    pub missing_for_create: Vec<String>,
}

/// The decision for one event, as people and scripts read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionView {
    pub verdict: Verdict,
    /// The rule that decided: `trigger`, `campaign`, `identifiers`, `mapping`, `defaults`,
    /// `gating` (a write that may not create the record), `activities` or `deals`.
    pub rule: &'static str,
    /// The skip or problem code (the first problem's); `None` for a write.
    pub code: Option<&'static str>,
    /// One sentence for people.
    pub reason: String,
    pub problems: Vec<ProblemView>,
    pub write: Option<WriteView>,
    /// For an activity that would be written: its object, owner, links and deal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<ActivityView>,
}

impl DecisionView {
    pub fn of(decision: &Decision) -> Self {
        match decision {
            Decision::Skip { code, reason } => skip_view(*code, reason),
            Decision::Invalid { problems } => invalid_view(problems, problem_rule),
            Decision::Write(draft) => write_view(draft),
        }
    }

    /// An activity's decision; `contact` is what HubSpot holds of its contact, for the owner.
    pub fn of_activity(
        decision: &ActivityDecision,
        event: &ActivityRecorded,
        users: &UserRules,
        contact: ContactNow<'_>,
    ) -> Self {
        match decision {
            ActivityDecision::Skip { code, reason } => skip_view(*code, reason),
            ActivityDecision::Invalid { problems } => invalid_view(problems, activity_problem_rule),
            ActivityDecision::Write { activity, deal } => {
                let view = ActivityView::of(activity, deal.as_deref(), event, users, contact);
                let mut reason = format!(
                    "would create {} {} ({}), linked to {}",
                    activity.object_type.as_str(),
                    identity_label(&activity.identity),
                    activity
                        .properties
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    links_text(&view.links)
                );
                if let Some(deal) = deal {
                    reason.push_str(&format!(
                        "; it triggers the deal {}",
                        identity_label(&deal.identity)
                    ));
                }
                let mut decided = write_view(activity);
                decided.rule = "activities";
                decided.reason = reason;
                decided.activity = Some(view);
                decided
            }
        }
    }
}

fn skip_view(code: SkipCode, reason: &str) -> DecisionView {
    DecisionView {
        verdict: Verdict::Skip,
        rule: skip_rule(code),
        code: Some(code.as_str()),
        reason: format!("skipped {}: {reason}", code.as_str()),
        problems: Vec::new(),
        write: None,
        activity: None,
    }
}

fn invalid_view(problems: &[Problem], rule_of: fn(&Problem) -> &'static str) -> DecisionView {
    let views: Vec<ProblemView> = problems.iter().map(ProblemView::of).collect();
    let first = problems.first();
    let listed = problems
        .iter()
        .map(|p| {
            let property = p
                .property
                .as_deref()
                .map_or_else(String::new, |prop| format!(" -> {prop}"));
            format!("{} on {}{property}: {}", p.code, p.field, p.message)
        })
        .collect::<Vec<_>>()
        .join("; ");
    DecisionView {
        verdict: Verdict::DeadLetter,
        rule: first.map_or("mapping", rule_of),
        code: first.map(|p| p.code.as_str()),
        reason: format!("would be dead-lettered: {listed}"),
        problems: views,
        write: None,
        activity: None,
    }
}

fn write_view(draft: &CommandDraft) -> DecisionView {
    let gated = draft.action == CommandAction::Upsert && !draft.may_create;
    let names: Vec<&str> = draft.properties.keys().map(String::as_str).collect();
    let mut reason = format!(
        "would write {} {} ({})",
        draft.action.as_str(),
        identity_label(&draft.identity),
        if names.is_empty() {
            "no properties".to_string()
        } else {
            names.join(", ")
        }
    );
    if gated {
        reason.push_str(&format!(
            "; may not create it while {} empty (mandatory fields)",
            listing(&draft.missing_for_create)
        ));
    } else if draft.action == CommandAction::UpdateOnly {
        reason.push_str("; updates it only if HubSpot has it (the create trigger does not create it from this change)");
    }
    DecisionView {
        verdict: Verdict::Write,
        rule: if gated { "gating" } else { "mapping" },
        code: None,
        reason,
        problems: Vec::new(),
        write: Some(WriteView {
            action: draft.action.as_str(),
            identity: identity_label(&draft.identity),
            properties: draft.properties.clone(),
            create_only_properties: draft.create_only_properties.clone(),
            fill_if_empty: draft.fill_if_empty.clone(),
            may_create: draft.may_create,
            missing_for_create: draft.missing_for_create.clone(),
        }),
        activity: None,
    }
}

/// Which rule a skip comes from.
pub fn skip_rule(code: SkipCode) -> &'static str {
    match code {
        SkipCode::DeleteNotSynced | SkipCode::NoMappedChange => "trigger",
        SkipCode::CampaignPushDisabled => "campaign",
        SkipCode::NoIdentifier | SkipCode::NoContactIdentity => "identifiers",
        SkipCode::ActivityTypeDisabled | SkipCode::UnsubscribeNotSelfInitiated => "activities",
    }
}

/// Which rule a problem comes from: default values are named by their rules setting
/// (`sync.contacts.defaults.x`), identities by `email` or `domain`, the rest by the mapping.
fn problem_rule(problem: &Problem) -> &'static str {
    if problem.field.starts_with("sync.") {
        "defaults"
    } else {
        "mapping"
    }
}

/// Which rule an activity's problem comes from: the deal's settings (`sync.deals.pipeline`,
/// `sync.deals.defaults.x`) or the activity's own values.
fn activity_problem_rule(problem: &Problem) -> &'static str {
    if problem.field.starts_with("sync.") {
        "deals"
    } else {
        "activities"
    }
}

/// One link of an activity or a deal, by the identity the sink resolves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkView {
    /// `contact`, `company`, `deal`.
    pub object: String,
    /// `email:ada@acme.io`, `company_id:co_1`, `hubsync_deal_key:ct_1:cmp_q3`.
    pub identity: String,
    /// HubSpot's association type id.
    pub type_id: i32,
}

impl LinkView {
    fn of(association: &Association) -> Self {
        LinkView {
            object: association.to_object_type.as_str().to_ascii_lowercase(),
            identity: association.to_identity.as_ref().map_or_else(
                || {
                    association
                        .to_hubspot_id
                        .as_deref()
                        .map_or_else(|| "-".to_string(), |id| format!("hs_object_id:{id}"))
                },
                identity_label,
            ),
            type_id: association.association_type_id,
        }
    }

    /// `contact email:ada@acme.io (202)`.
    pub fn describe(&self) -> String {
        format!("{} {} ({})", self.object, self.identity, self.type_id)
    }
}

fn links_text(links: &[LinkView]) -> String {
    if links.is_empty() {
        return "nothing".to_string();
    }
    links
        .iter()
        .map(LinkView::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Who would own an activity (rule 8), as far as is known here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerView {
    /// `sender` (the sender's mapped owner), `contact` (the contact's owner in HubSpot now),
    /// `default` (the default owner: the contact has none), `none`, or `contact_or_default`
    /// (the contact's owner is not known here: the sink reads it).
    pub source: &'static str,
    /// The owner id, when known.
    pub owner: Option<String>,
    pub reason: String,
}

impl OwnerView {
    pub fn of(
        owner: &ActivityOwner,
        event: &ActivityRecorded,
        users: &UserRules,
        contact: ContactNow<'_>,
    ) -> Self {
        let fallback = match owner {
            ActivityOwner::Sender(id) => return sender_owner_view(id, event, users),
            ActivityOwner::ContactOwner { fallback } => fallback.clone(),
        };
        let unmapped = match &event.sender {
            Some(sender) => format!("sender {} is mapped to no owner", sender.user_id.trim()),
            None => "the activity has no sender".to_string(),
        };
        let otherwise = fallback.as_deref().map_or_else(
            || "no owner ([users] has no default_owner)".to_string(),
            |id| format!("the default owner {id}"),
        );
        match contact {
            ContactNow::Present { owner: Some(id) } => OwnerView {
                source: "contact",
                owner: Some(id.to_string()),
                reason: format!("the contact's owner {id} (HubSpot now): {unmapped}"),
            },
            ContactNow::Present { owner: None } => OwnerView {
                source: if fallback.is_some() {
                    "default"
                } else {
                    "none"
                },
                reason: format!("{otherwise}: {unmapped} and the contact has no owner in HubSpot"),
                owner: fallback,
            },
            ContactNow::Absent | ContactNow::Unknown => OwnerView {
                source: "contact_or_default",
                reason: format!(
                    "the contact's owner when the sink links it, else {otherwise}: {unmapped}"
                ),
                owner: fallback,
            },
        }
    }
}

fn sender_owner_view(id: &str, event: &ActivityRecorded, users: &UserRules) -> OwnerView {
    let Some(sender) = &event.sender else {
        return OwnerView {
            source: "sender",
            owner: Some(id.to_string()),
            reason: format!("the sender's owner {id}"),
        };
    };
    let user = sender.user_id.trim();
    let reason = if users.owner_for(user) == Some(id) {
        format!("sender {user} is mapped to owner {id} ([[users.mapping]])")
    } else {
        format!(
            "sender {user} ({}) has the email of owner {id} (users.auto_map_by_email)",
            sender.email.as_deref().unwrap_or("-")
        )
    };
    OwnerView {
        source: "sender",
        owner: Some(id.to_string()),
        reason,
    }
}

/// The deal an activity triggers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DealView {
    /// `hubsync_deal_key:ct_1:cmp_q3`: one deal per contact and campaign.
    pub key: String,
    /// What a created deal starts with (an existing deal keeps its values).
    pub properties: BTreeMap<String, String>,
    pub links: Vec<LinkView>,
    /// What the sink would do with it given HubSpot now, when known.
    pub sink: Option<SinkVerdict>,
}

/// What the current rules make of an activity that would be written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivityView {
    /// The HubSpot object it is stored as: `note`, `email`, `call`, `task`, `meeting`.
    pub object: String,
    pub activity_id: String,
    pub owner: Option<OwnerView>,
    pub links: Vec<LinkView>,
    pub deal: Option<DealView>,
}

impl ActivityView {
    fn of(
        draft: &CommandDraft,
        deal: Option<&CommandDraft>,
        event: &ActivityRecorded,
        users: &UserRules,
        contact: ContactNow<'_>,
    ) -> Self {
        let owner = ActivityOwner::of_properties(&draft.properties, &draft.fill_if_empty)
            .map(|owner| OwnerView::of(&owner, event, users, contact));
        ActivityView {
            object: draft.object_type.as_str().to_ascii_lowercase(),
            activity_id: draft.identity.value.clone(),
            owner,
            links: draft.associations.iter().map(LinkView::of).collect(),
            deal: deal.map(|deal| DealView {
                key: identity_label(&deal.identity),
                properties: deal.create_only_properties.clone(),
                links: deal.associations.iter().map(LinkView::of).collect(),
                sink: None,
            }),
        }
    }

    /// Lines for people: the object and owner, the links, the deal.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "as {}, activity id {}",
            self.object, self.activity_id
        )];
        if let Some(owner) = &self.owner {
            lines.push(format!("owner ({}): {}", owner.source, owner.reason));
        }
        lines.push(format!("links: {}", links_text(&self.links)));
        if let Some(deal) = &self.deal {
            let values = deal
                .properties
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            lines.push(format!(
                "deal {} (created with {values}; links: {})",
                deal.key,
                links_text(&deal.links)
            ));
            if let Some(sink) = &deal.sink {
                lines.push(format!("deal then: {}", sink.describe()));
            }
        }
        lines
    }
}

/// The contact link of an activity or a deal.
pub fn contact_link(draft: &CommandDraft) -> Option<&hubsync_schemas::Identity> {
    draft
        .associations
        .iter()
        .find(|a| a.to_object_type == HubSpotObjectType::Contact)
        .and_then(|a| a.to_identity.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_processors::OwnerDirectory;
    use hubsync_processors::catalog::{PropertyCatalog, PropertyKind, PropertySpec};
    use hubsync_processors::decide_activity;
    use hubsync_processors::decision::ProblemCode;
    use hubsync_processors::rules::Rules;
    use hubsync_schemas::{ActivityType, CampaignRef, Identity, IdentityKind, Sender, examples};

    fn draft(action: CommandAction, missing: &[&str]) -> CommandDraft {
        CommandDraft {
            object_type: HubSpotObjectType::Contact,
            action,
            identity: Identity {
                kind: IdentityKind::Email,
                property: "email".into(),
                value: "pat@globex.com".into(),
            },
            properties: BTreeMap::from([("firstname".to_string(), Some("Pat".to_string()))]),
            create_only_properties: BTreeMap::from([("lifecyclestage".into(), "lead".into())]),
            fill_if_empty: Vec::new(),
            may_create: missing.is_empty() && action == CommandAction::Upsert,
            missing_for_create: missing.iter().map(|m| m.to_string()).collect(),
            associations: Vec::new(),
            match_name: None,
        }
    }

    #[test]
    fn a_gated_write_names_the_missing_fields() {
        let view = DecisionView::of(&Decision::Write(draft(
            CommandAction::Upsert,
            &["last_name"],
        )));
        assert_eq!(view.verdict, Verdict::Write);
        assert_eq!(view.rule, "gating");
        assert!(
            view.reason.contains("last_name is empty"),
            "{}",
            view.reason
        );
        assert!(
            view.reason
                .contains("UPSERT email:pat@globex.com (firstname)"),
            "{}",
            view.reason
        );
        let write = view.write.expect("write");
        assert_eq!(write.missing_for_create, ["last_name"]);
        assert!(!write.may_create);
    }

    #[test]
    fn skips_and_refusals_name_their_rule_and_code() {
        let skip = DecisionView::of(&Decision::Skip {
            code: SkipCode::CampaignPushDisabled,
            reason: "campaign cmp_1 has push to CRM off".into(),
        });
        assert_eq!(
            (skip.verdict, skip.rule, skip.code),
            (Verdict::Skip, "campaign", Some("CAMPAIGN_PUSH_DISABLED"))
        );
        let invalid = DecisionView::of(&Decision::Invalid {
            problems: vec![Problem {
                code: ProblemCode::InvalidOption,
                field: "stage".into(),
                property: Some("hs_lead_status".into()),
                message: "\"new\" is not an option".into(),
            }],
        });
        assert_eq!(invalid.verdict, Verdict::DeadLetter);
        assert_eq!(invalid.code, Some("INVALID_OPTION"));
        assert!(
            invalid
                .reason
                .contains("INVALID_OPTION on stage -> hs_lead_status"),
            "{}",
            invalid.reason
        );
        assert_eq!(
            invalid.problems[0].property.as_deref(),
            Some("hs_lead_status")
        );
    }

    /// A team with a deal-triggering campaign, a mapped user and a default owner.
    fn team() -> Rules {
        let rules: Rules = toml::from_str(
            r#"
            [sync.deals]
            pipeline = "default"
            stage = "appointmentscheduled"
            [users]
            default_owner = "70000001"
            auto_map_by_email = false
            [[users.mapping]]
            user = "usr_ada"
            owner = "70000003"
            [activities]
            associate_company = true
            associate_open_deal = true
            [campaigns.cmp_q3]
            deal_triggers = ["email_replied"]
            "#,
        )
        .expect("rules parse");
        assert_eq!(rules.validate(), []);
        rules
    }

    fn portal() -> PropertyCatalog {
        let deal = HubSpotObjectType::Deal;
        PropertyCatalog::new()
            .with(deal, "dealname", PropertySpec::new(PropertyKind::String))
            .with(
                deal,
                "pipeline",
                PropertySpec::new(PropertyKind::enumeration(["default"])),
            )
            .with(
                deal,
                "dealstage",
                PropertySpec::new(PropertyKind::enumeration(["appointmentscheduled"])),
            )
    }

    fn activity(kind: ActivityType) -> ActivityRecorded {
        let mut event = examples::activity_recorded();
        event.activity_id = "act_1".into();
        event.activity_type = kind;
        event.contact_id = "ct_1".into();
        event.contact_email = Some("Ada@Acme.io".into());
        event.company_id = Some("co_1".into());
        event.sender = None;
        event.campaign = None;
        event
    }

    fn view(event: &ActivityRecorded, contact: ContactNow<'_>) -> DecisionView {
        let rules = team();
        let decision = decide_activity(event, &rules, &portal(), &OwnerDirectory::new());
        DecisionView::of_activity(&decision, event, &rules.users, contact)
    }

    #[test]
    fn an_activity_names_its_object_owner_links_and_deal() {
        let mut event = activity(ActivityType::EmailReplied);
        event.sender = Some(Sender {
            user_id: "usr_ada".into(),
            email: None,
        });
        event.campaign = Some(CampaignRef {
            campaign_id: "cmp_q3".into(),
            name: Some("Q3".into()),
            sequence_step: Some(1),
        });
        let decided = view(&event, ContactNow::Unknown);
        assert_eq!(
            (decided.verdict, decided.rule),
            (Verdict::Write, "activities")
        );
        let activity = decided.activity.as_ref().expect("an activity view");
        assert_eq!(activity.object, "email");
        assert_eq!(activity.activity_id, "act_1");
        let owner = activity.owner.as_ref().expect("an owner");
        assert_eq!(
            (owner.source, owner.owner.as_deref()),
            ("sender", Some("70000003"))
        );
        assert!(
            owner.reason.contains("[[users.mapping]]"),
            "{}",
            owner.reason
        );
        let links: Vec<String> = activity.links.iter().map(LinkView::describe).collect();
        assert_eq!(
            links,
            [
                "contact email:ada@acme.io (198)",
                "company company_id:co_1 (186)",
                "deal hubsync_deal_key:ct_1:cmp_q3 (210)",
            ]
        );
        let deal = activity.deal.as_ref().expect("the trigger fires");
        assert_eq!(deal.key, "hubsync_deal_key:ct_1:cmp_q3");
        assert_eq!(deal.properties["pipeline"], "default");
        assert_eq!(deal.properties["dealstage"], "appointmentscheduled");
        assert!(
            decided
                .reason
                .starts_with("would create EMAIL hubsync_activity_id:act_1 ("),
            "{}",
            decided.reason
        );
        assert!(
            decided
                .reason
                .ends_with("it triggers the deal hubsync_deal_key:ct_1:cmp_q3"),
            "{}",
            decided.reason
        );
        let lines = activity.lines().join("\n");
        assert!(lines.contains("as email, activity id act_1"), "{lines}");
        assert!(
            lines.contains("deal hubsync_deal_key:ct_1:cmp_q3 (created with"),
            "{lines}"
        );
        let json = serde_json::to_value(&decided).expect("json");
        assert_eq!(json["activity"]["owner"]["source"], "sender");
        assert_eq!(json["activity"]["links"][0]["type_id"], 198);
    }

    #[test]
    fn an_inherited_owner_is_the_contacts_else_the_default() {
        let event = activity(ActivityType::EmailClicked);
        let owner = |contact| {
            let decided = view(&event, contact);
            let activity = decided.activity.expect("an activity view");
            assert_eq!(activity.object, "note", "clicks are notes");
            activity.owner.expect("an owner")
        };
        let theirs = owner(ContactNow::Present {
            owner: Some("70000002"),
        });
        assert_eq!(
            (theirs.source, theirs.owner.as_deref()),
            ("contact", Some("70000002"))
        );
        assert!(theirs.reason.contains("has no sender"), "{}", theirs.reason);
        let default = owner(ContactNow::Present { owner: None });
        assert_eq!(
            (default.source, default.owner.as_deref()),
            ("default", Some("70000001"))
        );
        assert!(
            default
                .reason
                .contains("the contact has no owner in HubSpot"),
            "{}",
            default.reason
        );
        let unknown = owner(ContactNow::Unknown);
        assert_eq!(unknown.source, "contact_or_default");
        assert_eq!(unknown.owner.as_deref(), Some("70000001"));
    }

    #[test]
    fn activity_skips_and_refusals_name_the_activity_rules() {
        let opened = view(&activity(ActivityType::EmailOpened), ContactNow::Unknown);
        assert_eq!(
            (opened.verdict, opened.rule, opened.code),
            (Verdict::Skip, "activities", Some("ACTIVITY_TYPE_DISABLED"))
        );
        assert!(opened.activity.is_none());
        let mut bad = activity(ActivityType::Call);
        bad.contact_email = Some("not an email".into());
        let refused = view(&bad, ContactNow::Unknown);
        assert_eq!(
            (refused.verdict, refused.rule, refused.code),
            (Verdict::DeadLetter, "activities", Some("INVALID_EMAIL"))
        );
        assert_eq!(refused.problems[0].field, "contact_email");
    }
}
