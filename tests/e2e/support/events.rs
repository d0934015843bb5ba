//! Upstream events for the end-to-end tests: the schemas' examples with a fresh event id, the
//! time now, the sandbox configuration's team, and the optional parts a test does not ask for
//! left out.

pub use hubsync_dev::sandbox_config::TEAM_ID;
use hubsync_schemas::{
    ActivityRecorded, ActivityType, CampaignRef, ChangeKind, CompanyChanged, ContactChanged,
    examples,
};

fn fresh_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A contact event with no owner, campaign or custom fields; the example's name, phone and
/// other standard fields stay unless the test clears them.
pub fn contact(id: &str, email: Option<&str>, change: ChangeKind) -> ContactChanged {
    let mut event = examples::contact_changed();
    event.team_id = TEAM_ID.to_string();
    event.event_id = fresh_id();
    event.event_time = now_ms();
    event.contact_id = id.to_string();
    event.change = change;
    event.email = email.map(str::to_string);
    event.owner_user_id = None;
    event.campaign_id = None;
    event.fields.clear();
    event.changed_fields.clear();
    event
}

/// A company event with no owner or custom fields.
pub fn company(id: &str, domain: &str, name: &str) -> CompanyChanged {
    let mut event = examples::company_changed();
    event.team_id = TEAM_ID.to_string();
    event.event_id = fresh_id();
    event.event_time = now_ms();
    event.company_id = id.to_string();
    event.domain = Some(domain.to_string());
    event.name = Some(name.to_string());
    event.owner_user_id = None;
    event.fields.clear();
    event.changed_fields.clear();
    event
}

/// An activity of its own upstream id on company `co_1`, with no sender, campaign or URL.
pub fn activity(kind: ActivityType, contact_id: &str, email: Option<&str>) -> ActivityRecorded {
    let mut event = examples::activity_recorded();
    event.team_id = TEAM_ID.to_string();
    event.event_id = fresh_id();
    event.event_time = now_ms();
    event.activity_id = format!("act_{}", uuid::Uuid::new_v4().simple());
    event.activity_type = kind;
    event.activity_type_name = kind.as_str().to_ascii_lowercase();
    event.contact_id = contact_id.to_string();
    event.contact_email = email.map(str::to_string);
    event.company_id = Some("co_1".to_string());
    event.sender = None;
    event.campaign = None;
    event.url = None;
    event
}

/// The activity as step 2 of `campaign`'s sequence.
pub fn in_campaign(mut event: ActivityRecorded, campaign: &str) -> ActivityRecorded {
    event.campaign = Some(CampaignRef {
        campaign_id: campaign.to_string(),
        name: Some("Q3 outbound".to_string()),
        sequence_step: Some(2),
    });
    event
}
