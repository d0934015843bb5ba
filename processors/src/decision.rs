//! What the process stage decides for one event: write a command (for an activity, possibly two),
//! skip the event with a reason, or refuse it as a bad record naming every problem.
//!
//! ```text
//! ContactChanged { change: DELETED, .. }
//!   -> Decision::Skip { code: DELETE_NOT_SYNCED, reason: "contact ct_1 was deleted upstream: ..." }
//! ContactChanged { fields: { lead_score: "high" }, .. } with lead_score -> hs_lead_score (number)
//!   -> Decision::Invalid { problems: [INVALID_NUMBER lead_score -> hs_lead_score: ...] }
//! ActivityRecorded { activity_type: EMAIL_REPLIED, campaign: cmp_q3 (deal_triggers: email_replied) }
//!   -> ActivityDecision::Write { activity: EMAIL draft, deal: Some(DEAL draft) }
//! ```
//!
//! Reason codes are stable, upper-case and go into `SyncOutcome.reason_code` and the dead
//! letter's error code; reasons and messages are for people and may change.
//!
//! # Activity commands
//!
//! An activity draft has the action `CREATE_ACTIVITY`, the object type it is stored as (`NOTE`,
//! `EMAIL`, `CALL`, `TASK`, `MEETING`) and the identity `SOURCE_ID` /
//! [`ACTIVITY_ID_PROPERTY`] / the upstream `activity_id`: HubSpot gets at most one activity per
//! upstream activity id. Every value is in `properties` (an activity is only ever created);
//! `create_only_properties` is empty and `may_create` is true. Its associations name the contact
//! (always, by `EMAIL` or by `SOURCE_ID` `contact_id`), the company (`SOURCE_ID` `company_id`) and
//! the deal hubsync keeps for the contact in the activity's campaign (`SOURCE_ID`
//! [`DEAL_KEY_PROPERTY`]), each with HubSpot's default association type for that pair.
//!
//! Its owner ([`ActivityOwner`]) is encoded in `hubspot_owner_id` and `fill_if_empty`:
//!
//! | owner                               | `properties["hubspot_owner_id"]` | in `fill_if_empty` |
//! |-------------------------------------|----------------------------------|--------------------|
//! | the sender's owner                  | `Some(id)`                       | no                 |
//! | the contact's owner, else a default | `Some(default id)`               | yes                |
//! | the contact's owner, else nobody    | `None`                           | yes                |
//!
//! For an activity, "written only if empty" therefore reads: *the owner of the associated contact
//! in HubSpot when it has one, otherwise this value* (`None`: no owner). The process stage cannot
//! know the contact's HubSpot owner; the sink can. [`ActivityOwner::of_properties`] reads the
//! encoding back; a sink should treat a listed key missing from `properties` like `None`.
//!
//! A deal draft (rule 11) has the action `UPSERT` with `may_create`, the identity `SOURCE_ID` /
//! [`DEAL_KEY_PROPERTY`] / `{contact_id}:{campaign_id}` (one deal per contact and campaign), no
//! `properties` and everything it starts with in `create_only_properties`; it answers for no
//! event of its own (see [`crate::command::Envelope::for_deal`]).

use std::collections::BTreeMap;
use std::fmt;

use hubsync_schemas::{
    Association, CommandAction, ErrorClass, HubSpotObjectType, Identity, IdentityKind, ReasonCode,
};

use crate::rules::OWNER_PROPERTY;

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

/// The decision for one activity event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityDecision {
    /// Create the activity; with `deal`, also create (or find) the contact's deal in the
    /// activity's campaign. The activity's command is the one that answers for the event.
    Write {
        activity: CommandDraft,
        /// Boxed: most activities trigger no deal.
        deal: Option<Box<CommandDraft>>,
    },
    /// A rule says not to sync the activity; nothing is wrong with it.
    Skip { code: SkipCode, reason: String },
    /// The activity cannot be written as it is: it becomes a dead letter naming every problem.
    Invalid { problems: Vec<Problem> },
}

impl ActivityDecision {
    /// The stable code of a skip or a refusal (the first problem's); `None` for a write.
    pub fn reason_code(&self) -> Option<&'static str> {
        match self {
            Self::Write { .. } => None,
            Self::Skip { code, .. } => Some(code.as_str()),
            Self::Invalid { problems } => problems.first().map(|p| p.code.as_str()),
        }
    }
}

impl From<Skip> for ActivityDecision {
    fn from(skip: Skip) -> Self {
        ActivityDecision::Skip {
            code: skip.code,
            reason: skip.reason,
        }
    }
}

/// The identity property of activities: the upstream `activity_id`. hubsync's own name, kept by
/// the sink to create each activity once; not a property HubSpot needs to have.
pub const ACTIVITY_ID_PROPERTY: &str = "hubsync_activity_id";

/// The identity property of deals hubsync creates: `{contact_id}:{campaign_id}`.
pub const DEAL_KEY_PROPERTY: &str = "hubsync_deal_key";

/// Who owns an activity (rule 8), as far as the process stage can tell; see the module docs for
/// how it travels in a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityOwner {
    /// The HubSpot owner of the activity's sender (mapped explicitly or by identical email).
    Sender(String),
    /// The contact's HubSpot owner when it has one, else `fallback` (the default owner), else
    /// nobody.
    ContactOwner { fallback: Option<String> },
}

impl ActivityOwner {
    /// Writes this owner into a draft's `properties` and `fill_if_empty`.
    pub fn write_to(
        &self,
        properties: &mut BTreeMap<String, Option<String>>,
        fill_if_empty: &mut Vec<String>,
    ) {
        fill_if_empty.retain(|name| name != OWNER_PROPERTY);
        match self {
            Self::Sender(id) => {
                properties.insert(OWNER_PROPERTY.to_owned(), Some(id.clone()));
            }
            Self::ContactOwner { fallback } => {
                properties.insert(OWNER_PROPERTY.to_owned(), fallback.clone());
                fill_if_empty.push(OWNER_PROPERTY.to_owned());
            }
        }
    }

    /// The owner an activity command carries; `None` when it says nothing about its owner.
    pub fn of_properties(
        properties: &BTreeMap<String, Option<String>>,
        fill_if_empty: &[String],
    ) -> Option<Self> {
        let value = properties
            .get(OWNER_PROPERTY)
            .cloned()
            .flatten()
            .filter(|id| !id.is_empty());
        if fill_if_empty.iter().any(|name| name == OWNER_PROPERTY) {
            return Some(Self::ContactOwner { fallback: value });
        }
        value.map(Self::Sender)
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
    /// The activity's type is switched off in `[activities]`.
    ActivityTypeDisabled,
    /// An unsubscribe the lead did not make themself (an operator's block list, or unknown).
    UnsubscribeNotSelfInitiated,
    /// An activity naming no contact: neither a contact id nor an email address.
    NoContactIdentity,
}

impl SkipCode {
    /// The reason code an outcome carries for it.
    pub fn reason(self) -> ReasonCode {
        match self {
            Self::DeleteNotSynced => ReasonCode::DeleteNotSynced,
            Self::CampaignPushDisabled => ReasonCode::CampaignPushDisabled,
            Self::NoIdentifier => ReasonCode::NoIdentifier,
            Self::NoMappedChange => ReasonCode::NoMappedChange,
            Self::ActivityTypeDisabled => ReasonCode::ActivityTypeDisabled,
            Self::UnsubscribeNotSelfInitiated => ReasonCode::UnsubscribeNotSelfInitiated,
            Self::NoContactIdentity => ReasonCode::NoContactIdentity,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.reason().as_str()
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
    /// A value the record must carry is empty (an activity's id or event time).
    MissingValue,
}

impl ProblemCode {
    /// The reason code a dead letter carries for it.
    pub fn reason(self) -> ReasonCode {
        match self {
            Self::PropertyMissing => ReasonCode::PropertyMissing,
            Self::ReadOnlyProperty => ReasonCode::ReadOnlyProperty,
            Self::InvalidOption => ReasonCode::InvalidOption,
            Self::InvalidNumber => ReasonCode::InvalidNumber,
            Self::InvalidBool => ReasonCode::InvalidBool,
            Self::InvalidDate => ReasonCode::InvalidDate,
            Self::InvalidDatetime => ReasonCode::InvalidDatetime,
            Self::InvalidEmail => ReasonCode::InvalidEmail,
            Self::InvalidDomain => ReasonCode::InvalidDomain,
            Self::MissingValue => ReasonCode::MissingValue,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.reason().as_str()
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
    fn activity_codes_are_stable() {
        assert_eq!(
            SkipCode::ActivityTypeDisabled.as_str(),
            "ACTIVITY_TYPE_DISABLED"
        );
        assert_eq!(
            SkipCode::UnsubscribeNotSelfInitiated.as_str(),
            "UNSUBSCRIBE_NOT_SELF_INITIATED"
        );
        assert_eq!(SkipCode::NoContactIdentity.as_str(), "NO_CONTACT_IDENTITY");
        assert_eq!(ProblemCode::MissingValue.as_str(), "MISSING_VALUE");
        assert_eq!(ProblemCode::MissingValue.class(), ErrorClass::Data);
        let skip = ActivityDecision::from(Skip {
            code: SkipCode::NoContactIdentity,
            reason: "r".to_owned(),
        });
        assert_eq!(skip.reason_code(), Some("NO_CONTACT_IDENTITY"));
    }

    #[test]
    fn an_activity_owner_reads_back_as_written() {
        let owners = [
            ActivityOwner::Sender("90012".to_owned()),
            ActivityOwner::ContactOwner {
                fallback: Some("90011".to_owned()),
            },
            ActivityOwner::ContactOwner { fallback: None },
        ];
        for owner in owners {
            let mut properties = BTreeMap::new();
            let mut fill = vec!["hubspot_owner_id".to_owned()];
            owner.write_to(&mut properties, &mut fill);
            let listed = fill.iter().filter(|p| *p == OWNER_PROPERTY).count();
            let expected = usize::from(matches!(owner, ActivityOwner::ContactOwner { .. }));
            assert_eq!(listed, expected, "{owner:?}");
            assert!(properties.contains_key(OWNER_PROPERTY), "{owner:?}");
            assert_eq!(
                ActivityOwner::of_properties(&properties, &fill),
                Some(owner)
            );
        }
        let listed_only = ActivityOwner::of_properties(&BTreeMap::new(), &[OWNER_PROPERTY.into()]);
        assert_eq!(
            listed_only,
            Some(ActivityOwner::ContactOwner { fallback: None })
        );
        assert_eq!(ActivityOwner::of_properties(&BTreeMap::new(), &[]), None);
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
