//! The sink's decisions, pure: given a coalesced record and what HubSpot holds of it, or how
//! HubSpot refused a call for it, what becomes of the record's events. The writer acts on these
//! decisions; `plan` and `trace` predict with the same functions, so a prediction cannot drift
//! from what the pipeline does.
//!
//! ```text
//! record {may_create: false, newest: UPSERT missing [last_name]}, HubSpot: absent
//!   -> SinkVerdict::Parked { missing: [last_name] }          (PARKED PARKED_MISSING_FIELDS)
//! record {fill_if_empty: [phone]}, HubSpot: phone = "+33 1"   -> phone is not sent
//! a 207 input error VALIDATION_ERROR/INVALID_OPTION on lifecyclestage
//!   -> Resolution::DeadLetter(DATA, INVALID_OPTION)
//! a call answered 429 (retry after 3 s)                        -> Resolution::Later(3 s)
//! ```
//!
//! # The failure table
//! One table for a failed input of a batch and for a call that failed as a whole ([`refused`]):
//!
//! | HubSpot said | resolution |
//! |---|---|
//! | 401/403 (auth) | pause the lane, keep the record, retry once the token works |
//! | 429 | wait (the server's hint, else 10 s); never dead-lettered |
//! | 5xx, timeout, connection (after the client's attempts) | unavailable: HubSpot is asked at once whether it answers; if not, the team's lane pauses until it does (an outage: never dead-lettered); if it does, the record is tried alone, and dead-lettered `RETRIES_EXHAUSTED` only when it fails alone while HubSpot answers (a poison input) |
//! | 400 with property errors | dead letter (data) under HubSpot's code for the first property |
//! | 409 (unique value taken) | dead letter (data) `CONFLICT`, naming the record holding it |
//! | 404 `OBJECT_NOT_FOUND` | dead letter (data) `OBJECT_NOT_FOUND` |
//! | 404 otherwise | dead letter (config) `HUBSPOT_ROUTE_NOT_FOUND` |

use std::collections::BTreeMap;
use std::time::Duration;

use hubsync_schemas::{CommandAction, ErrorClass as FailureClass, ReasonCode};
use serde::Serialize;

use super::coalesce::Merged;
use crate::hubspot::{ErrorClass, Failure as CallFailure, InputError, Record};
use crate::outcomes::{Failure, Verdict};

/// What becomes of one record's events.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Every member gets this verdict.
    Done(Verdict),
    /// Every member is dead-lettered for this failure.
    DeadLetter(Failure),
    /// Try again at the earliest after this long (search has not caught up yet, the budget).
    Later(Duration),
    /// HubSpot refuses the token: keep the record, pause, retry when the token works again.
    Paused(String),
    /// HubSpot did not answer, after the client's attempts (5xx, timeouts, connection errors):
    /// an outage, or an input HubSpot cannot take. Settled by [`unavailable`].
    Unavailable(String),
}

/// What an unavailable record becomes, once HubSpot was asked whether it answers at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Unavailable {
    /// HubSpot does not answer: pause the team's lane, keep the record, try it again later.
    Outage(String),
    /// HubSpot answers, so something in this batch upsets it: try the record alone.
    TryAlone,
    /// HubSpot answers, and the record failed alone: a poison input, dead-lettered.
    Poison(Failure),
}

/// The rest of the table's unavailable row: `answers` is whether HubSpot answered a request of
/// its own just after the failure, `alone` whether the record was written by itself.
pub fn unavailable(reason: &str, answers: bool, alone: bool) -> Unavailable {
    match (answers, alone) {
        (false, _) => Unavailable::Outage(format!("hubspot unavailable: {reason}")),
        (true, false) => Unavailable::TryAlone,
        (true, true) => Unavailable::Poison(Failure::new(
            FailureClass::RetriesExhausted,
            ReasonCode::RetriesExhausted,
            format!(
                "HubSpot answers other requests but failed this record, written alone, every \
                 time: {reason}"
            ),
        )),
    }
}

/// How long a 429 without a hint waits: the rolling window's length.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(10);

/// What HubSpot said went wrong, for one input of a batch or for a call as a whole.
#[derive(Debug, Clone)]
pub struct Refusal<'a> {
    pub class: &'a ErrorClass,
    /// HubSpot's category (`VALIDATION_ERROR`...), or the client's own (`TIMEOUT`).
    pub category: &'a str,
    /// What to tell people: HubSpot's message, and for a whole call what to do next.
    pub message: String,
    pub correlation_id: Option<&'a str>,
    /// Requests sent for it.
    pub attempts: u32,
}

impl<'a> Refusal<'a> {
    /// One input of a batch (a 207's error).
    pub fn of_input(error: &'a InputError) -> Self {
        Refusal {
            class: &error.class,
            category: &error.category,
            message: error.message.clone(),
            correlation_id: None,
            attempts: 1,
        }
    }

    /// A call that failed as a whole, after the client's retries.
    pub fn of_call(failure: &'a CallFailure) -> Self {
        Refusal {
            class: &failure.class,
            category: &failure.category,
            message: failure.to_string(),
            correlation_id: failure.correlation_id.as_deref(),
            attempts: failure.attempts,
        }
    }
}

/// The failure table (see the module's header): what a refusal means for its records.
pub fn refused(refusal: Refusal<'_>) -> Resolution {
    let dead = |class: FailureClass, code: &str, message: String| {
        let mut failure = Failure::hubspot(class, code, message);
        failure.hubspot_category = Some(refusal.category.to_string());
        failure.hubspot_correlation_id = refusal.correlation_id.map(str::to_string);
        failure.attempts = i32::try_from(refusal.attempts).unwrap_or(i32::MAX);
        Resolution::DeadLetter(failure)
    };
    match refusal.class {
        ErrorClass::Auth { .. } => {
            Resolution::Paused(format!("hubspot refuses the token ({})", refusal.category))
        }
        // The budget is spent, not broken: wait for it, however long, and never dead-letter.
        ErrorClass::RateLimited { retry_after, .. } => {
            Resolution::Later(retry_after.unwrap_or(RATE_LIMIT_WAIT))
        }
        ErrorClass::Retryable { .. } => Resolution::Unavailable(refusal.message.clone()),
        ErrorClass::Data { property_errors } => {
            let code = property_errors
                .first()
                .map_or(refusal.category, |p| p.code.as_str());
            dead(FailureClass::Data, code, refusal.message.clone())
        }
        ErrorClass::Conflict { existing_id } => dead(
            FailureClass::Data,
            ReasonCode::Conflict.as_str(),
            format!(
                "{}; the unique value belongs to HubSpot record {existing_id}",
                refusal.message
            ),
        ),
        ErrorClass::NotFound if refusal.category == ReasonCode::ObjectNotFound.as_str() => dead(
            FailureClass::Data,
            ReasonCode::ObjectNotFound.as_str(),
            refusal.message.clone(),
        ),
        ErrorClass::NotFound => dead(
            FailureClass::Config,
            ReasonCode::HubSpotRouteNotFound.as_str(),
            refusal.message.clone(),
        ),
    }
}

/// HubSpot answered a batch without a result or an error for this input.
pub fn no_answer() -> Failure {
    Failure::new(
        FailureClass::Internal,
        ReasonCode::NoAnswerForInput,
        "hubspot answered the batch without a result or error for this input",
    )
}

/// The status of an activity or deal that waits for its contact (plan's and trace's word; the
/// pipeline records `PARKED` `PARKED_CONTACT_MISSING` once it has waited
/// `stages.sink.contact_wait`).
pub const WAITS_FOR_CONTACT: &str = "WAITS_FOR_CONTACT";

/// What the sink does with a record, given whether HubSpot holds it.
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
    /// An activity or deal HubSpot holds already (found by hubsync's own property): not created
    /// again.
    #[serde(rename = "UNCHANGED")]
    Exists { id: String },
    /// An activity or deal whose contact HubSpot lacks: created once the contact is there,
    /// `PARKED` `PARKED_CONTACT_MISSING` after `stages.sink.contact_wait`.
    WaitsForContact { contact: String },
}

/// What HubSpot holds of the contact an activity or deal links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactNow<'a> {
    /// In HubSpot, with its owner if it has one.
    Present {
        owner: Option<&'a str>,
    },
    Absent,
    /// Not looked up (known by upstream id only, or not read).
    Unknown,
}

impl SinkVerdict {
    /// For a record HubSpot lacks, as the sink decides it: any command that may create it
    /// creates it; otherwise the newest command says whether it is parked (an upsert missing
    /// mandatory fields) or skipped.
    pub fn absent(record: &Merged) -> Self {
        let (action, missing) = record.newest();
        if record.may_create {
            SinkVerdict::Created
        } else if action == CommandAction::Upsert && !missing.is_empty() {
            SinkVerdict::Parked {
                missing: missing.to_vec(),
            }
        } else {
            SinkVerdict::Skipped
        }
    }

    /// For a record created once by hubsync's own property (an activity, a deal): `found` is
    /// HubSpot's id of it; otherwise it is created when its contact is in HubSpot and waits for
    /// it when not. `None` when the contact's presence is not known here.
    pub fn once(found: Option<&str>, contact: ContactNow<'_>, contact_label: &str) -> Option<Self> {
        if let Some(id) = found {
            return Some(SinkVerdict::Exists { id: id.to_string() });
        }
        match contact {
            ContactNow::Present { .. } => Some(SinkVerdict::Created),
            ContactNow::Absent => Some(SinkVerdict::WaitsForContact {
                contact: contact_label.to_string(),
            }),
            ContactNow::Unknown => None,
        }
    }

    /// The outcome status the pipeline records for it.
    pub fn status(&self) -> &'static str {
        match self {
            SinkVerdict::Created => "CREATED",
            SinkVerdict::Updated => "UPDATED",
            SinkVerdict::Unchanged | SinkVerdict::Exists { .. } => "UNCHANGED",
            SinkVerdict::Parked { .. } => "PARKED",
            SinkVerdict::Skipped => "SKIPPED",
            SinkVerdict::WaitsForContact { .. } => WAITS_FOR_CONTACT,
        }
    }

    /// The outcome's reason code.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            SinkVerdict::Created => ReasonCode::Created,
            SinkVerdict::Updated => ReasonCode::Updated,
            SinkVerdict::Unchanged | SinkVerdict::Exists { .. } => ReasonCode::Unchanged,
            SinkVerdict::Parked { .. } => ReasonCode::ParkedMissingFields,
            SinkVerdict::Skipped => ReasonCode::NotCreated,
            SinkVerdict::WaitsForContact { .. } => ReasonCode::ParkedContactMissing,
        }
    }

    /// The verdict of a record HubSpot lacks and the sink does not create.
    pub fn not_created(self) -> Option<Verdict> {
        match self {
            SinkVerdict::Parked { missing } => Some(Verdict::parked(missing)),
            SinkVerdict::Skipped => Some(Verdict::skipped(
                ReasonCode::NotCreated,
                "not in HubSpot, and the create trigger does not create it from this change",
            )),
            _ => None,
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
            SinkVerdict::Exists { id } => format!(
                "would not be created again: HubSpot holds it already (id {id}, found by hubsync's own property)"
            ),
            SinkVerdict::WaitsForContact { contact } => format!(
                "would wait for its contact {contact}, which HubSpot lacks: created once the contact is there, else parked PARKED_CONTACT_MISSING after stages.sink.contact_wait"
            ),
        }
    }
}

/// `last_name is` / `first_name, last_name are`.
pub fn listing(fields: &[String]) -> String {
    match fields {
        [one] => format!("{one} is"),
        many => format!("{} are", many.join(", ")),
    }
}

/// Fill-if-empty values of properties HubSpot already holds are not sent.
pub fn drop_filled(record: &mut Merged, held: &Record) {
    record.drop_filled(|name| held.property(name).is_some());
}

/// One property a write would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub property: String,
    /// HubSpot's value now.
    pub hubspot: Option<String>,
    /// The value the write carries; `None` clears it.
    pub planned: Option<String>,
    /// A default value, written only because the record is created.
    pub create_only: bool,
}

/// The verdict against HubSpot's record (`None`: HubSpot has none), and what would change.
pub fn judge(record: &Merged, held: Option<&Record>) -> (SinkVerdict, Vec<Change>) {
    let Some(held) = held else {
        let verdict = SinkVerdict::absent(record);
        let changes = if verdict == SinkVerdict::Created {
            creation(record)
        } else {
            Vec::new()
        };
        return (verdict, changes);
    };
    let mut changes = Vec::new();
    for (name, planned) in record.properties() {
        let current = held.property(name).map(str::trim);
        if record.fills(name) && current.is_some() {
            continue;
        }
        let planned = planned.map(str::trim).filter(|v| !v.is_empty());
        if current != planned {
            changes.push(Change {
                property: name.to_string(),
                hubspot: current.map(str::to_string),
                planned: planned.map(str::to_string),
                create_only: false,
            });
        }
    }
    let verdict = if changes.is_empty() {
        SinkVerdict::Unchanged
    } else {
        SinkVerdict::Updated
    };
    (verdict, changes)
}

/// Everything a create writes: the values, and the create-only values under them.
pub fn creation(record: &Merged) -> Vec<Change> {
    let mut changes: Vec<Change> = record
        .properties()
        .filter_map(|(name, value)| {
            let value = value.filter(|v| !v.is_empty())?;
            Some(Change {
                property: name.to_string(),
                hubspot: None,
                planned: Some(value.to_string()),
                create_only: false,
            })
        })
        .collect();
    for (name, value) in defaults_to_send(record) {
        if !value.is_empty() {
            changes.push(Change {
                property: name,
                hubspot: None,
                planned: Some(value),
                create_only: true,
            });
        }
    }
    changes.sort_by(|a, b| a.property.cmp(&b.property));
    changes
}

/// Defaults not overridden by a value the write carries.
pub fn defaults_to_send(record: &Merged) -> BTreeMap<String, String> {
    record
        .create_only()
        .filter(|(name, _)| record.property(name).is_none())
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// What a create of the record sends: its defaults and every value it carries.
pub fn create_values(record: &Merged) -> BTreeMap<String, String> {
    let mut values = defaults_to_send(record);
    values.extend(record.sendable());
    values
}

#[cfg(test)]
mod tests {
    use crate::hubspot::PropertyError;

    use super::*;

    fn input(class: ErrorClass, category: &str) -> InputError {
        InputError {
            class,
            category: category.to_string(),
            message: "refused".to_string(),
            context: BTreeMap::new(),
        }
    }

    fn call(class: ErrorClass, category: &str) -> CallFailure {
        CallFailure {
            class,
            status: Some(400),
            category: category.to_string(),
            message: "refused".to_string(),
            correlation_id: Some("c-1".to_string()),
            may_have_applied: false,
            attempts: 4,
        }
    }

    fn dead(resolution: Resolution) -> Failure {
        match resolution {
            Resolution::DeadLetter(failure) => failure,
            other => panic!("expected a dead letter, got {other:?}"),
        }
    }

    /// Per input and per call, every class ends the same way: the code and the class of the
    /// dead letter, the pause, the wait.
    #[test]
    fn an_input_and_a_call_refused_alike_resolve_alike() {
        let classes = [
            (
                ErrorClass::Auth {
                    missing_scopes: vec![],
                },
                "INVALID_AUTHENTICATION",
            ),
            (
                ErrorClass::RateLimited {
                    policy: crate::hubspot::RateLimitPolicy::TenSecondlyRolling,
                    retry_after: Some(Duration::from_secs(3)),
                },
                "RATE_LIMIT",
            ),
            (ErrorClass::Retryable { retry_after: None }, "HTTP_503"),
            (
                ErrorClass::Data {
                    property_errors: vec![PropertyError {
                        name: "lifecyclestage".into(),
                        code: "INVALID_OPTION".into(),
                        message: "no such option".into(),
                    }],
                },
                "VALIDATION_ERROR",
            ),
            (
                ErrorClass::Data {
                    property_errors: vec![],
                },
                "VALIDATION_ERROR",
            ),
            (
                ErrorClass::Conflict {
                    existing_id: "901".into(),
                },
                "CONFLICT",
            ),
            (ErrorClass::NotFound, "OBJECT_NOT_FOUND"),
            (ErrorClass::NotFound, "HTTP_404"),
        ];
        for (class, category) in classes {
            let one = input(class.clone(), category);
            let whole = call(class.clone(), category);
            let (a, b) = (
                refused(Refusal::of_input(&one)),
                refused(Refusal::of_call(&whole)),
            );
            match (a, b) {
                (Resolution::DeadLetter(a), Resolution::DeadLetter(b)) => {
                    assert_eq!((a.class, &a.code), (b.class, &b.code), "{class:?}");
                    assert_eq!(a.hubspot_category, b.hubspot_category);
                }
                // The reasons quote the input's and the call's own words.
                (Resolution::Unavailable(_), Resolution::Unavailable(_)) => {}
                (a, b) => assert_eq!(a, b, "{class:?}"),
            }
        }
    }

    #[test]
    fn hubspot_not_answering_pauses_and_a_poison_input_alone_is_dead_lettered() {
        let resolution = refused(Refusal::of_call(&call(
            ErrorClass::Retryable { retry_after: None },
            "HTTP_503",
        )));
        let Resolution::Unavailable(reason) = resolution else {
            panic!(
                "a 503 after the client's attempts is never dead-lettered at once: {resolution:?}"
            );
        };
        assert!(matches!(
            unavailable(&reason, false, false),
            Unavailable::Outage(why) if why.starts_with("hubspot unavailable")
        ));
        assert!(
            matches!(unavailable(&reason, false, true), Unavailable::Outage(_)),
            "alone but HubSpot silent: an outage still"
        );
        assert_eq!(unavailable(&reason, true, false), Unavailable::TryAlone);
        let Unavailable::Poison(poison) = unavailable(&reason, true, true) else {
            panic!("failed alone while HubSpot answers");
        };
        assert_eq!(poison.code, "RETRIES_EXHAUSTED");
        assert_eq!(poison.class, FailureClass::RetriesExhausted);
    }

    #[test]
    fn the_table_names_the_right_codes() {
        let gone = dead(refused(Refusal::of_input(&input(
            ErrorClass::NotFound,
            "OBJECT_NOT_FOUND",
        ))));
        assert_eq!(
            (gone.class, gone.code.as_str()),
            (FailureClass::Data, "OBJECT_NOT_FOUND")
        );
        let route = dead(refused(Refusal::of_call(&call(
            ErrorClass::NotFound,
            "HTTP_404",
        ))));
        assert_eq!(
            (route.class, route.code.as_str()),
            (FailureClass::Config, "HUBSPOT_ROUTE_NOT_FOUND")
        );
        let conflict = dead(refused(Refusal::of_input(&input(
            ErrorClass::Conflict {
                existing_id: "901".into(),
            },
            "CONFLICT",
        ))));
        assert!(conflict.message.contains("901"), "{}", conflict.message);
        assert_eq!(
            refused(Refusal::of_input(&input(
                ErrorClass::RateLimited {
                    policy: crate::hubspot::RateLimitPolicy::Daily,
                    retry_after: None,
                },
                "RATE_LIMIT",
            ))),
            Resolution::Later(RATE_LIMIT_WAIT)
        );
    }

    fn merged(may_create: bool, action: CommandAction, missing: &[&str]) -> Merged {
        let mut command = hubsync_schemas::examples::hubspot_command();
        command.may_create = may_create;
        command.action = action;
        command.missing_for_create = missing.iter().map(|m| m.to_string()).collect();
        Merged::of(&command)
    }

    #[test]
    fn an_absent_record_is_created_parked_or_skipped() {
        let created = merged(true, CommandAction::Upsert, &[]);
        assert_eq!(SinkVerdict::absent(&created), SinkVerdict::Created);
        let parked = SinkVerdict::absent(&merged(false, CommandAction::Upsert, &["last_name"]));
        assert_eq!(parked.status(), "PARKED");
        assert_eq!(parked.reason_code(), ReasonCode::ParkedMissingFields);
        assert_eq!(
            parked.not_created().map(|v| v.missing_fields),
            Some(vec!["last_name".to_string()])
        );
        let skipped = SinkVerdict::absent(&merged(false, CommandAction::UpdateOnly, &[]));
        assert_eq!(skipped.reason_code(), ReasonCode::NotCreated);
        assert_eq!(
            skipped.not_created().map(|v| v.reason_code),
            Some("NOT_CREATED".to_string())
        );
    }

    #[test]
    fn fill_if_empty_values_hubspot_holds_are_not_sent() {
        let mut command = hubsync_schemas::examples::hubspot_command();
        command.properties = BTreeMap::from([
            ("phone".to_string(), Some("+1".to_string())),
            ("city".to_string(), Some("Paris".to_string())),
        ]);
        command.fill_if_empty = vec!["phone".into(), "city".into()];
        let mut record = Merged::of(&command);
        let held = Record {
            id: "7".into(),
            properties: BTreeMap::from([
                ("phone".to_string(), Some("+33".to_string())),
                ("city".to_string(), Some(String::new())),
            ]),
            ..Record::default()
        };
        drop_filled(&mut record, &held);
        assert_eq!(record.property("phone"), None);
        assert_eq!(record.property("city"), Some(Some("Paris")));
    }

    #[test]
    fn listings_read_as_sentences() {
        assert_eq!(listing(&["a".into()]), "a is");
        assert_eq!(listing(&["a".into(), "b".into()]), "a, b are");
    }

    #[test]
    fn an_activity_is_created_once_and_waits_for_its_contact() {
        let contact = "email:ada@acme.io";
        let present = ContactNow::Present { owner: None };
        let there = SinkVerdict::once(Some("55"), ContactNow::Absent, contact).expect("known");
        assert_eq!(
            (there.status(), there.reason_code().as_str()),
            ("UNCHANGED", "UNCHANGED")
        );
        assert_eq!(
            serde_json::to_value(&there).expect("json"),
            serde_json::json!({"status": "UNCHANGED", "id": "55"})
        );
        assert_eq!(
            SinkVerdict::once(None, present, contact),
            Some(SinkVerdict::Created)
        );
        let waits = SinkVerdict::once(None, ContactNow::Absent, contact).expect("known");
        assert_eq!(
            (waits.status(), waits.reason_code().as_str()),
            (WAITS_FOR_CONTACT, "PARKED_CONTACT_MISSING")
        );
        assert!(
            waits.describe().contains("email:ada@acme.io"),
            "{}",
            waits.describe()
        );
        assert_eq!(SinkVerdict::once(None, ContactNow::Unknown, contact), None);
    }
}
