//! What the process stage decides for one contact or company event: write a command, skip the
//! event with a reason, or refuse it as a bad record naming every problem.
//!
//! ```text
//! ContactChanged { change: DELETED, .. }
//!   -> Decision::Skip { code: DELETE_NOT_SYNCED, reason: "contact ct_1 was deleted upstream: ..." }
//! ContactChanged { fields: { lead_score: "high" }, .. } with lead_score -> hs_lead_score (number)
//!   -> Decision::Invalid { problems: [INVALID_NUMBER lead_score -> hs_lead_score: ...] }
//! ```
//!
//! Reason codes are stable, upper-case and go into `SyncOutcome.reason_code` and the dead
//! letter's error code; reasons and messages are for people and may change.

use std::collections::BTreeMap;
use std::fmt;

use hubsync_schemas::{
    Association, CommandAction, ErrorClass, HubSpotObjectType, Identity, IdentityKind,
};

/// The decision for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send this to the sink.
    Write(CommandDraft),
    /// A rule says not to sync the event; nothing is wrong with it.
    Skip { code: SkipCode, reason: String },
    /// The record cannot be written as it is: it becomes a dead letter naming every problem.
    Invalid { problems: Vec<Problem> },
}

impl Decision {
    /// The stable code of a skip or a refusal (the first problem's); `None` for a write.
    pub fn reason_code(&self) -> Option<&'static str> {
        match self {
            Self::Write(_) => None,
            Self::Skip { code, .. } => Some(code.as_str()),
            Self::Invalid { problems } => problems.first().map(|p| p.code.as_str()),
        }
    }
}

/// A rule's reason not to sync an event; becomes [`Decision::Skip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub code: SkipCode,
    /// What happened and what would make the event sync, for people.
    pub reason: String,
}

impl From<Skip> for Decision {
    fn from(skip: Skip) -> Self {
        Decision::Skip {
            code: skip.code,
            reason: skip.reason,
        }
    }
}

/// Why an event is not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipCode {
    /// The record was deleted upstream; hubsync never deletes in HubSpot.
    DeleteNotSynced,
    /// The contact's campaign has push-to-CRM switched off.
    CampaignPushDisabled,
    /// A contact with none of email, LinkedIn URL and company domain.
    NoIdentifier,
    /// The record may not be created by this event and none of its changes is mapped to HubSpot.
    NoMappedChange,
}

impl SkipCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeleteNotSynced => "DELETE_NOT_SYNCED",
            Self::CampaignPushDisabled => "CAMPAIGN_PUSH_DISABLED",
            Self::NoIdentifier => "NO_IDENTIFIER",
            Self::NoMappedChange => "NO_MAPPED_CHANGE",
        }
    }
}

impl fmt::Display for SkipCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with one value of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemCode {
    /// The rules name a HubSpot property the portal does not have.
    PropertyMissing,
    /// The rules write a property HubSpot computes itself.
    ReadOnlyProperty,
    /// Not one of the enumeration's option values.
    InvalidOption,
    InvalidNumber,
    InvalidBool,
    InvalidDate,
    InvalidDatetime,
    InvalidEmail,
    InvalidDomain,
}

impl ProblemCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PropertyMissing => "PROPERTY_MISSING",
            Self::ReadOnlyProperty => "READ_ONLY_PROPERTY",
            Self::InvalidOption => "INVALID_OPTION",
            Self::InvalidNumber => "INVALID_NUMBER",
            Self::InvalidBool => "INVALID_BOOL",
            Self::InvalidDate => "INVALID_DATE",
            Self::InvalidDatetime => "INVALID_DATETIME",
            Self::InvalidEmail => "INVALID_EMAIL",
            Self::InvalidDomain => "INVALID_DOMAIN",
        }
    }

    /// Whose fault it is: the rules (fix the config, then re-drive) or the record (fix it
    /// upstream, then re-drive).
    pub fn class(self) -> ErrorClass {
        match self {
            Self::PropertyMissing | Self::ReadOnlyProperty => ErrorClass::Config,
            _ => ErrorClass::Data,
        }
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem of a record, naming the field and the property it was meant for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: ProblemCode,
    /// The upstream field the value came from, or the rules setting for a default value
    /// (`sync.contacts.defaults.lifecyclestage`).
    pub field: String,
    /// The HubSpot property the value was meant for, when there is one.
    pub property: Option<String>,
    /// What is wrong and what is allowed, for people.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The class of a refused record: `Config` when any problem lies in the rules (the fix is
/// there), `Data` otherwise.
pub fn error_class(problems: &[Problem]) -> ErrorClass {
    if problems
        .iter()
        .any(|p| p.code.class() == ErrorClass::Config)
    {
        ErrorClass::Config
    } else {
        ErrorClass::Data
    }
}

/// Every problem in one line, for a dead letter's message.
pub fn summary(problems: &[Problem]) -> String {
    let mut text = String::new();
    for (index, problem) in problems.iter().enumerate() {
        if index > 0 {
            text.push_str("; ");
        }
        text.push_str(&problem.to_string());
    }
    text
}

/// Everything a `HubSpotCommand` needs that the rules decide; the envelope (ids, source
/// position, times) is added by [`crate::command::to_command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandDraft {
    pub object_type: HubSpotObjectType,
    /// `Upsert` when the create trigger allows this event to create the record, `UpdateOnly`
    /// when it does not (the sink then skips a record HubSpot lacks instead of parking it).
    pub action: CommandAction,
    pub identity: Identity,
    /// Values to write, by HubSpot property; `Some("")` (or `None`) clears the property.
    pub properties: BTreeMap<String, Option<String>>,
    /// Values written only when the sink creates the record: the default values, and the
    /// record's current values of mapped fields this event did not change.
    pub create_only_properties: BTreeMap<String, String>,
    /// Keys of `properties` written only when HubSpot's value is empty.
    pub fill_if_empty: Vec<String>,
    /// The mandatory fields are all filled: the sink may create the record.
    pub may_create: bool,
    /// Mandatory upstream fields that are empty, by field name; empty when `may_create` or when
    /// the action is `UpdateOnly`.
    pub missing_for_create: Vec<String>,
    /// Links to other records, by identity (a contact's company).
    pub associations: Vec<Association>,
    /// For a company without a domain, the name the sink may look for before creating one
    /// (when `match_on_name` is set).
    pub match_name: Option<String>,
}

impl CommandDraft {
    pub(crate) fn new(
        object_type: HubSpotObjectType,
        action: CommandAction,
        identity: Identity,
    ) -> Self {
        Self {
            object_type,
            action,
            identity,
            properties: BTreeMap::new(),
            create_only_properties: BTreeMap::new(),
            fill_if_empty: Vec::new(),
            may_create: false,
            missing_for_create: Vec::new(),
            associations: Vec::new(),
            match_name: None,
        }
    }

    /// The identity as one string, `kind:value`, for logs and the outcome's `record`.
    pub fn record(&self) -> String {
        identity_label(&self.identity)
    }
}

/// An identity as `email:ada@acme.io`, `domain:acme.io`, `contact_id:ct_1`...
pub fn identity_label(identity: &Identity) -> String {
    let prefix = match identity.kind {
        IdentityKind::Email => "email",
        IdentityKind::Domain => "domain",
        _ => identity.property.as_str(),
    };
    format!("{prefix}:{}", identity.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(code: ProblemCode) -> Problem {
        Problem {
            code,
            field: "f".to_owned(),
            property: Some("p".to_owned()),
            message: format!("{code} message"),
        }
    }

    #[test]
    fn codes_are_stable_upper_case_words() {
        assert_eq!(SkipCode::NoIdentifier.to_string(), "NO_IDENTIFIER");
        assert_eq!(
            SkipCode::CampaignPushDisabled.as_str(),
            "CAMPAIGN_PUSH_DISABLED"
        );
        assert_eq!(SkipCode::DeleteNotSynced.as_str(), "DELETE_NOT_SYNCED");
        assert_eq!(ProblemCode::PropertyMissing.as_str(), "PROPERTY_MISSING");
        assert_eq!(ProblemCode::InvalidOption.to_string(), "INVALID_OPTION");
    }

    #[test]
    fn config_problems_make_the_record_a_config_error() {
        let data = [problem(ProblemCode::InvalidNumber)];
        assert_eq!(error_class(&data), ErrorClass::Data);
        let mixed = [
            problem(ProblemCode::InvalidNumber),
            problem(ProblemCode::ReadOnlyProperty),
        ];
        assert_eq!(error_class(&mixed), ErrorClass::Config);
        assert_eq!(
            summary(&mixed),
            "INVALID_NUMBER: INVALID_NUMBER message; READ_ONLY_PROPERTY: READ_ONLY_PROPERTY message"
        );
        let invalid = Decision::Invalid {
            problems: mixed.to_vec(),
        };
        assert_eq!(invalid.reason_code(), Some("INVALID_NUMBER"));
    }

    #[test]
    fn identities_read_as_kind_and_value() {
        let identity = |kind, property: &str, value: &str| Identity {
            kind,
            property: property.to_owned(),
            value: value.to_owned(),
        };
        assert_eq!(
            identity_label(&identity(IdentityKind::Email, "email", "ada@acme.io")),
            "email:ada@acme.io"
        );
        assert_eq!(
            identity_label(&identity(IdentityKind::SourceId, "contact_id", "ct_1")),
            "contact_id:ct_1"
        );
    }
}
