//! Events the sales-engagement platform publishes: `ContactChanged`, `CompanyChanged` and
//! `ActivityRecorded`. Field docs live in the `.avsc` files; the notes here only add what the
//! Rust side should know.
//!
//! Timestamps are `timestamp-millis`: milliseconds since the Unix epoch, UTC, as `i64`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::common::{Actor, ChangeKind};

/// `io.hubsync.ContactChanged`, the value of `crm.contact.changes`.
///
/// For an update, the typed fields carry the contact's current values and `changed_fields`
/// names what changed; a changed field that is `None` was cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactChanged {
    /// A UUID in its lowercase hyphenated form.
    pub event_id: String,
    pub event_time: i64,
    pub team_id: String,
    pub contact_id: String,
    pub change: ChangeKind,
    pub actor: Option<Actor>,
    pub email: Option<String>,
    pub linkedin_url: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company_name: Option<String>,
    pub company_domain: Option<String>,
    pub job_title: Option<String>,
    pub phone: Option<String>,
    pub owner_user_id: Option<String>,
    pub campaign_id: Option<String>,
    /// Custom and other fields by upstream name; `None` means cleared.
    #[serde(default)]
    pub fields: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub changed_fields: Vec<String>,
}

/// `io.hubsync.CompanyChanged`, the value of `crm.company.changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyChanged {
    /// A UUID in its lowercase hyphenated form.
    pub event_id: String,
    pub event_time: i64,
    pub team_id: String,
    pub company_id: String,
    pub change: ChangeKind,
    pub actor: Option<Actor>,
    pub name: Option<String>,
    pub domain: Option<String>,
    pub website: Option<String>,
    pub industry: Option<String>,
    pub owner_user_id: Option<String>,
    /// Custom and other fields by upstream name; `None` means cleared.
    #[serde(default)]
    pub fields: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub changed_fields: Vec<String>,
}

avro_enum! {
    /// `io.hubsync.ActivityType`: the kind of an upstream activity. A type this build does not
    /// know reads as `Unknown`; `ActivityRecorded::activity_type_name` still says what it was.
    pub enum ActivityType {
        EmailSent = "EMAIL_SENT",
        EmailOpened = "EMAIL_OPENED",
        EmailClicked = "EMAIL_CLICKED",
        EmailReplied = "EMAIL_REPLIED",
        EmailBounced = "EMAIL_BOUNCED",
        LinkedinInviteSent = "LINKEDIN_INVITE_SENT",
        LinkedinInviteAccepted = "LINKEDIN_INVITE_ACCEPTED",
        LinkedinMessageSent = "LINKEDIN_MESSAGE_SENT",
        LinkedinReplied = "LINKEDIN_REPLIED",
        LinkedinProfileVisited = "LINKEDIN_PROFILE_VISITED",
        Call = "CALL",
        Task = "TASK",
        MeetingBooked = "MEETING_BOOKED",
        Unsubscribed = "UNSUBSCRIBED",
    }
}

/// `io.hubsync.Sender`: the upstream user an activity was performed as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub user_id: String,
    pub email: Option<String>,
}

/// `io.hubsync.CampaignRef`: the campaign (sequence) an activity belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRef {
    pub campaign_id: String,
    pub name: Option<String>,
    /// 1-based step of the sequence.
    pub sequence_step: Option<i32>,
}

/// `io.hubsync.ActivityRecorded`, the value of `crm.activity.events` (keyed by contact id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRecorded {
    /// A UUID in its lowercase hyphenated form.
    pub event_id: String,
    pub event_time: i64,
    pub team_id: String,
    pub activity_id: String,
    pub contact_id: String,
    pub company_id: Option<String>,
    pub contact_email: Option<String>,
    pub activity_type: ActivityType,
    /// The producer's own name for the type, verbatim.
    pub activity_type_name: String,
    pub actor: Option<Actor>,
    pub sender: Option<Sender>,
    pub campaign: Option<CampaignRef>,
    /// For unsubscribes: `Some(true)` when the lead unsubscribed themself, `Some(false)` when an
    /// operator blocked them.
    pub unsubscribe_self_initiated: Option<bool>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub url: Option<String>,
    pub duration_ms: Option<i64>,
    pub outcome: Option<String>,
    #[serde(default)]
    pub details: BTreeMap<String, String>,
}
