//! The current rules applied to one upstream event, in words: what the process stage would decide
//! now, which rule decided it, and what the sink would then do given whether HubSpot holds the
//! record. `trace` shows it per event; `plan` counts it.
//!
//! ```text
//! ContactChanged { email: "pat@globex.com", last_name: null } with mandatory = ["email", "last_name"]
//!   -> DecisionView { verdict: write, rule: "gating", code: PARKED_MISSING_FIELDS when absent,
//!        reason: "would write UPSERT email:pat@globex.com (firstname); may not create it: last_name is empty" }
//! ```

use std::collections::BTreeMap;

use hubsync_processors::decision::identity_label;
use hubsync_processors::{CommandDraft, Decision, Problem, SkipCode};
use hubsync_schemas::CommandAction;
use serde::Serialize;

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
    /// The rule that decided: `trigger`, `campaign`, `identifiers`, `mapping`, `defaults` or
    /// `gating` (a write that may not create the record).
    pub rule: &'static str,
    /// The skip or problem code (the first problem's); `None` for a write.
    pub code: Option<&'static str>,
    /// One sentence for people.
    pub reason: String,
    pub problems: Vec<ProblemView>,
    pub write: Option<WriteView>,
}

impl DecisionView {
    pub fn of(decision: &Decision) -> Self {
        match decision {
            Decision::Skip { code, reason } => DecisionView {
                verdict: Verdict::Skip,
                rule: skip_rule(*code),
                code: Some(code.as_str()),
                reason: format!("skipped {}: {reason}", code.as_str()),
                problems: Vec::new(),
                write: None,
            },
            Decision::Invalid { problems } => {
                let views: Vec<ProblemView> = problems.iter().map(ProblemView::of).collect();
                let first = problems.first();
                let rule = first.map_or("mapping", problem_rule);
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
                    rule,
                    code: first.map(|p| p.code.as_str()),
                    reason: format!("would be dead-lettered: {listed}"),
                    problems: views,
                    write: None,
                }
            }
            Decision::Write(draft) => write_view(draft),
        }
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
    }
}

/// `last_name is` / `first_name, last_name are`.
fn listing(fields: &[String]) -> String {
    match fields {
        [one] => format!("{one} is"),
        many => format!("{} are", many.join(", ")),
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

/// What the sink does with a record, given the rules' decision and whether HubSpot holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SinkVerdict {
    /// Absent and may be created.
    Created,
    /// Present, and the values differ.
    Updated,
    /// Present with every value already there.
    Unchanged,
    /// Absent, and the command may not create it: `PARKED_MISSING_FIELDS`.
    Parked { missing: Vec<String> },
    /// Absent, and the create trigger does not create it from this change: `NOT_CREATED`.
    Skipped,
}

impl SinkVerdict {
    /// The outcome status the pipeline records for it.
    pub fn status(&self) -> &'static str {
        match self {
            SinkVerdict::Created => "CREATED",
            SinkVerdict::Updated => "UPDATED",
            SinkVerdict::Unchanged => "UNCHANGED",
            SinkVerdict::Parked { .. } => "PARKED",
            SinkVerdict::Skipped => "SKIPPED",
        }
    }

    /// The outcome's reason code.
    pub fn reason_code(&self) -> &'static str {
        match self {
            SinkVerdict::Parked { .. } => "PARKED_MISSING_FIELDS",
            SinkVerdict::Skipped => "NOT_CREATED",
            other => other.status(),
        }
    }

    /// For an absent record, as the sink decides it: any command that may create it creates it;
    /// otherwise the newest command says whether it is parked (an upsert missing mandatory
    /// fields) or skipped.
    pub fn absent(
        may_create: bool,
        newest_action: CommandAction,
        newest_missing: &[String],
    ) -> Self {
        if may_create {
            SinkVerdict::Created
        } else if newest_action == CommandAction::Upsert && !newest_missing.is_empty() {
            SinkVerdict::Parked {
                missing: newest_missing.to_vec(),
            }
        } else {
            SinkVerdict::Skipped
        }
    }

    /// In words: `would be created`, `would be parked: last_name is empty`.
    pub fn describe(&self) -> String {
        match self {
            SinkVerdict::Created => "would be created (not in HubSpot)".to_string(),
            SinkVerdict::Updated => "would be updated (in HubSpot, values differ)".to_string(),
            SinkVerdict::Unchanged => {
                "would change nothing (HubSpot already holds these values)".to_string()
            }
            SinkVerdict::Parked { missing } => format!(
                "would be parked PARKED_MISSING_FIELDS: not in HubSpot and {} empty",
                listing(missing)
            ),
            SinkVerdict::Skipped => {
                "would be skipped NOT_CREATED: not in HubSpot, and this change may not create it"
                    .to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_processors::decision::ProblemCode;
    use hubsync_schemas::{HubSpotObjectType, Identity, IdentityKind};

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

    #[test]
    fn an_absent_record_is_created_parked_or_skipped_as_the_sink_decides() {
        assert_eq!(
            SinkVerdict::absent(true, CommandAction::Upsert, &[]),
            SinkVerdict::Created
        );
        let parked = SinkVerdict::absent(false, CommandAction::Upsert, &["last_name".into()]);
        assert_eq!(parked.status(), "PARKED");
        assert_eq!(parked.reason_code(), "PARKED_MISSING_FIELDS");
        assert_eq!(
            SinkVerdict::absent(false, CommandAction::UpdateOnly, &[]).reason_code(),
            "NOT_CREATED"
        );
    }
}
