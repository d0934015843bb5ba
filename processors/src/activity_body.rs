//! What an activity says in HubSpot: its time and a readable text built from the event, in the
//! properties of the object it is stored as.
//!
//! ```text
//! ActivityRecorded { activity_type: EMAIL_CLICKED, event_time: 2025-03-05T14:01:30Z,
//!   subject: "Cutting pick-and-pack errors", url: "https://acme-sales.io/case",
//!   campaign: { name: "Q2 outbound", sequence_step: 2 } }   stored as a note
//!   -> { hs_timestamp: "2025-03-05T14:01:30.000Z",
//!        hs_note_body: "Email link clicked<br>Campaign: Q2 outbound, step 2<br>
//!                       Subject: Cutting pick-and-pack errors<br>Link: https://acme-sales.io/case" }
//! ```
//!
//! | object  | properties                                                                    |
//! |---------|-------------------------------------------------------------------------------|
//! | note    | `hs_note_body` (HTML: the text escaped, lines joined by `<br>`)               |
//! | email   | `hs_email_subject`, `hs_email_text`, `hs_email_direction` (`INCOMING_EMAIL` for replies, else `EMAIL`), `hs_email_status` (`BOUNCED` for bounces, else `SENT`) |
//! | call    | `hs_call_title`, `hs_call_body`, `hs_call_direction` (`OUTBOUND` unless `details.direction` says inbound), `hs_call_status` (from the outcome: `NO_ANSWER`, `BUSY`, `FAILED`, `CANCELED`, else `COMPLETED`), `hs_call_duration` (ms) |
//! | task    | `hs_task_subject`, `hs_task_body`, `hs_task_status` (`NOT_STARTED` for an upstream task, else `COMPLETED`: the step happened), `hs_task_type` (`EMAIL`, `CALL`, `LINKED_IN` or `TODO`) |
//! | meeting | `hs_meeting_title`, `hs_meeting_body`, `hs_meeting_start_time` (the event time), `hs_meeting_end_time` (plus the duration), `hs_meeting_outcome` (`SCHEDULED` when booked, else `COMPLETED`) |
//!
//! Every object gets `hs_timestamp`, the event time as HubSpot's datetime (ISO 8601 in UTC with
//! milliseconds, as [`crate::coerce`] writes datetimes). Titles are the event's subject, else
//! the activity's headline. Enumeration values are among the options HubSpot defines for these
//! properties; texts are cut to HubSpot's 65,536 characters.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use hubsync_schemas::ActivityRecorded;

use crate::rules::{ActivityType, StoreAs};

/// HubSpot's limit on the length of a string property, in characters.
pub const MAX_TEXT: usize = 65_536;

/// An instant in milliseconds since the epoch as HubSpot's datetime; `None` outside chrono's
/// range.
pub fn hubspot_datetime(epoch_ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(epoch_ms)
        .map(|instant| instant.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The properties of an activity stored as `store_as`, with `hs_timestamp` = `timestamp`.
pub fn activity_properties(
    event: &ActivityRecorded,
    activity: ActivityType,
    store_as: StoreAs,
    timestamp: &str,
) -> BTreeMap<String, Option<String>> {
    let text = ActivityText::of(event, activity);
    let mut properties = Properties::default();
    properties.set("hs_timestamp", timestamp.to_owned());
    match store_as {
        StoreAs::Note => properties.set("hs_note_body", html(&text.lines(true))),
        StoreAs::Email => {
            properties.set("hs_email_subject", limit(text.title()));
            properties.set("hs_email_text", limit(&text.email_text()));
            let direction = match activity {
                ActivityType::EmailReplied => "INCOMING_EMAIL",
                _ => "EMAIL",
            };
            properties.set("hs_email_direction", direction.to_owned());
            let status = match activity {
                ActivityType::EmailBounced => "BOUNCED",
                _ => "SENT",
            };
            properties.set("hs_email_status", status.to_owned());
        }
        StoreAs::Call => {
            properties.set("hs_call_title", limit(text.title()));
            properties.set("hs_call_body", limit(&text.lines(true).join("\n")));
            properties.set("hs_call_direction", call_direction(event).to_owned());
            properties.set("hs_call_status", call_status(event).to_owned());
            if let Some(duration) = event.duration_ms.filter(|ms| *ms >= 0) {
                properties.set("hs_call_duration", duration.to_string());
            }
        }
        StoreAs::Task => {
            properties.set("hs_task_subject", limit(text.title()));
            properties.set("hs_task_body", limit(&text.lines(true).join("\n")));
            let status = match activity {
                ActivityType::Task => "NOT_STARTED",
                _ => "COMPLETED",
            };
            properties.set("hs_task_status", status.to_owned());
            properties.set("hs_task_type", task_type(activity).to_owned());
        }
        StoreAs::Meeting => {
            properties.set("hs_meeting_title", limit(text.title()));
            properties.set("hs_meeting_body", limit(&text.lines(true).join("\n")));
            properties.set("hs_meeting_start_time", timestamp.to_owned());
            let end = event
                .duration_ms
                .filter(|ms| *ms > 0)
                .and_then(|ms| event.event_time.checked_add(ms))
                .and_then(hubspot_datetime)
                .unwrap_or_else(|| timestamp.to_owned());
            properties.set("hs_meeting_end_time", end);
            let outcome = match activity {
                ActivityType::MeetingBooked => "SCHEDULED",
                _ => "COMPLETED",
            };
            properties.set("hs_meeting_outcome", outcome.to_owned());
        }
    }
    properties.0
}

/// The headline people read for an activity type: `Email link clicked`, `LinkedIn reply`...
/// An unknown type reads as the producer's own name for it.
pub fn headline(event: &ActivityRecorded, activity: ActivityType) -> String {
    let label = match activity {
        ActivityType::EmailSent => "Email sent",
        ActivityType::EmailOpened => "Email opened",
        ActivityType::EmailClicked => "Email link clicked",
        ActivityType::EmailReplied => "Email reply",
        ActivityType::EmailBounced => "Email bounced",
        ActivityType::LinkedinInviteSent => "LinkedIn invitation sent",
        ActivityType::LinkedinInviteAccepted => "LinkedIn invitation accepted",
        ActivityType::LinkedinMessageSent => "LinkedIn message sent",
        ActivityType::LinkedinReplied => "LinkedIn reply",
        ActivityType::LinkedinProfileVisited => "LinkedIn profile visited",
        ActivityType::Call => "Call",
        ActivityType::Task => "Task",
        ActivityType::MeetingBooked => "Meeting booked",
        ActivityType::Unsubscribed => "Unsubscribed",
        ActivityType::Unknown => {
            let name = event.activity_type_name.trim();
            return if name.is_empty() {
                "Activity".to_owned()
            } else {
                format!("Activity: {name}")
            };
        }
    };
    label.to_owned()
}

#[derive(Default)]
struct Properties(BTreeMap<String, Option<String>>);

impl Properties {
    fn set(&mut self, name: &str, value: String) {
        self.0.insert(name.to_owned(), Some(value));
    }
}

/// The readable parts of an activity.
struct ActivityText<'e> {
    headline: String,
    subject: Option<&'e str>,
    /// Campaign, link, call outcome and duration lines.
    context: Vec<String>,
    body: Option<&'e str>,
}

impl<'e> ActivityText<'e> {
    fn of(event: &'e ActivityRecorded, activity: ActivityType) -> Self {
        let present = |value: &'e Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|text| !text.is_empty())
        };
        let mut context = Vec::new();
        if let Some(campaign) = &event.campaign {
            let name = present(&campaign.name).unwrap_or(campaign.campaign_id.trim());
            let mut line = format!("Campaign: {name}");
            if let Some(step) = campaign.sequence_step {
                line.push_str(&format!(", step {step}"));
            }
            context.push(line);
        }
        if let Some(url) = present(&event.url) {
            context.push(format!("Link: {url}"));
        }
        if let Some(outcome) = present(&event.outcome) {
            context.push(format!("Outcome: {outcome}"));
        }
        if let Some(duration) = event.duration_ms.filter(|ms| *ms > 0) {
            context.push(format!("Duration: {}", duration_text(duration)));
        }
        ActivityText {
            headline: headline(event, activity),
            subject: present(&event.subject),
            context,
            body: event.body.as_deref().filter(|text| !text.trim().is_empty()),
        }
    }

    fn title(&self) -> &str {
        self.subject.unwrap_or(&self.headline)
    }

    /// Headline, context, subject, then the body after an empty line.
    fn lines(&self, with_subject: bool) -> Vec<String> {
        let mut lines = vec![self.headline.clone()];
        lines.extend(self.context.iter().cloned());
        if with_subject && let Some(subject) = self.subject {
            lines.push(format!("Subject: {subject}"));
        }
        if let Some(body) = self.body {
            lines.push(String::new());
            lines.extend(body.lines().map(str::to_owned));
        }
        lines
    }

    /// An email's text: the message itself, then what hubsync knows around it.
    fn email_text(&self) -> String {
        let mut text = String::new();
        if let Some(body) = self.body {
            text.push_str(body);
            text.push_str("\n\n");
        }
        text.push_str(&self.headline);
        for line in &self.context {
            text.push('\n');
            text.push_str(line);
        }
        text
    }
}

/// `3 min 20 s`, `45 s`, `1 h 2 min`.
fn duration_text(ms: i64) -> String {
    let seconds = ms / 1000;
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (hours, minutes, seconds) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

fn call_direction(event: &ActivityRecorded) -> &'static str {
    match event
        .details
        .get("direction")
        .map(|d| d.trim().to_ascii_lowercase())
    {
        Some(direction) if direction == "inbound" || direction == "incoming" => "INBOUND",
        _ => "OUTBOUND",
    }
}

/// The call status an upstream outcome stands for; an outcome HubSpot has no status for (a
/// conversation, a voicemail) is a completed call, and its words stay in the body.
fn call_status(event: &ActivityRecorded) -> &'static str {
    let Some(outcome) = event.outcome.as_deref() else {
        return "COMPLETED";
    };
    let words: String = outcome
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    match words.as_str() {
        "noanswer" | "noreply" | "unanswered" => "NO_ANSWER",
        "busy" => "BUSY",
        "failed" => "FAILED",
        "canceled" | "cancelled" => "CANCELED",
        _ => "COMPLETED",
    }
}

fn task_type(activity: ActivityType) -> &'static str {
    match activity {
        ActivityType::EmailSent
        | ActivityType::EmailOpened
        | ActivityType::EmailClicked
        | ActivityType::EmailReplied
        | ActivityType::EmailBounced => "EMAIL",
        ActivityType::Call => "CALL",
        ActivityType::LinkedinInviteSent
        | ActivityType::LinkedinInviteAccepted
        | ActivityType::LinkedinMessageSent
        | ActivityType::LinkedinReplied
        | ActivityType::LinkedinProfileVisited => "LINKED_IN",
        ActivityType::Task
        | ActivityType::MeetingBooked
        | ActivityType::Unsubscribed
        | ActivityType::Unknown => "TODO",
    }
}

/// `text` cut to [`MAX_TEXT`] characters, ending in `…` when cut.
fn limit(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT - 1) {
        None => text.to_owned(),
        Some((end, _)) => {
            let mut cut = text[..end].to_owned();
            cut.push('…');
            cut
        }
    }
}

/// Lines as HTML: each escaped, joined by `<br>`, within [`MAX_TEXT`] characters. An entity
/// or a line break is never cut in half.
fn html(lines: &[String]) -> String {
    let mut units: Vec<Cow<'_, str>> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if index > 0 {
            units.push(Cow::Borrowed("<br>"));
        }
        units.extend(line.chars().map(|c| match c {
            '&' => Cow::Borrowed("&amp;"),
            '<' => Cow::Borrowed("&lt;"),
            '>' => Cow::Borrowed("&gt;"),
            '"' => Cow::Borrowed("&quot;"),
            _ => Cow::Owned(c.to_string()),
        }));
    }
    let total: usize = units.iter().map(|unit| unit.chars().count()).sum();
    if total <= MAX_TEXT {
        return units.concat();
    }
    let mut out = String::new();
    let mut count = 0;
    for unit in units {
        let length = unit.chars().count();
        // Keep room for the ellipsis that marks the cut.
        if count + length >= MAX_TEXT {
            break;
        }
        count += length;
        out.push_str(&unit);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use hubsync_schemas::{CampaignRef, examples};

    use super::*;
    use crate::activity::tests::blank_activity;

    const AT: &str = "2025-03-05T14:00:00.000Z";

    fn properties(event: &ActivityRecorded, store_as: StoreAs) -> BTreeMap<String, Option<String>> {
        let activity = crate::activity::activity_type(event.activity_type);
        activity_properties(event, activity, store_as, AT)
    }

    fn get<'p>(properties: &'p BTreeMap<String, Option<String>>, name: &str) -> &'p str {
        properties
            .get(name)
            .and_then(|v| v.as_deref())
            .unwrap_or_else(|| panic!("{name} is set: {properties:?}"))
    }

    #[test]
    fn event_times_become_hubspot_datetimes() {
        assert_eq!(
            hubspot_datetime(1_741_183_290_000).as_deref(),
            Some("2025-03-05T14:01:30.000Z")
        );
        assert_eq!(hubspot_datetime(i64::MAX), None);
    }

    #[test]
    fn a_click_stored_as_a_note_reads_as_one_text() {
        let event = examples::activity_recorded();
        let note = properties(&event, StoreAs::Note);
        assert_eq!(
            note.keys().map(String::as_str).collect::<Vec<_>>(),
            ["hs_note_body", "hs_timestamp"]
        );
        assert_eq!(get(&note, "hs_timestamp"), AT);
        assert_eq!(
            get(&note, "hs_note_body"),
            "Email link clicked<br>Campaign: Q2 outbound - operations leaders, step 2<br>\
             Link: https://acme-sales.io/case-studies/warehouse<br>\
             Subject: Cutting pick-and-pack errors at Northwind"
        );
    }

    #[test]
    fn a_note_body_is_escaped_html() {
        let mut event = blank_activity(hubsync_schemas::ActivityType::LinkedinReplied);
        event.body = Some("Sure <b>Tuesday</b> & \"Wednesday\"\nwork".to_owned());
        let note = properties(&event, StoreAs::Note);
        assert_eq!(
            get(&note, "hs_note_body"),
            "LinkedIn reply<br><br>Sure &lt;b&gt;Tuesday&lt;/b&gt; &amp; &quot;Wednesday&quot;<br>work"
        );
    }

    #[test]
    fn emails_carry_subject_text_direction_and_status() {
        let mut reply = blank_activity(hubsync_schemas::ActivityType::EmailReplied);
        reply.subject = Some("Re: pick-and-pack".to_owned());
        reply.body = Some("Happy to talk next week.".to_owned());
        reply.campaign = Some(CampaignRef {
            campaign_id: "cmp_q3".to_owned(),
            name: None,
            sequence_step: Some(3),
        });
        let email = properties(&reply, StoreAs::Email);
        assert_eq!(get(&email, "hs_email_subject"), "Re: pick-and-pack");
        assert_eq!(
            get(&email, "hs_email_text"),
            "Happy to talk next week.\n\nEmail reply\nCampaign: cmp_q3, step 3"
        );
        assert_eq!(get(&email, "hs_email_direction"), "INCOMING_EMAIL");
        assert_eq!(get(&email, "hs_email_status"), "SENT");

        let bounce = blank_activity(hubsync_schemas::ActivityType::EmailBounced);
        let email = properties(&bounce, StoreAs::Email);
        assert_eq!(get(&email, "hs_email_subject"), "Email bounced");
        assert_eq!(get(&email, "hs_email_direction"), "EMAIL");
        assert_eq!(get(&email, "hs_email_status"), "BOUNCED");
        let sent = properties(
            &blank_activity(hubsync_schemas::ActivityType::EmailSent),
            StoreAs::Email,
        );
        assert_eq!(get(&sent, "hs_email_status"), "SENT");
    }

    #[test]
    fn calls_carry_outcome_duration_and_direction() {
        let mut call = blank_activity(hubsync_schemas::ActivityType::Call);
        call.outcome = Some("No answer".to_owned());
        call.duration_ms = Some(200_000);
        let props = properties(&call, StoreAs::Call);
        assert_eq!(get(&props, "hs_call_title"), "Call");
        assert_eq!(
            get(&props, "hs_call_body"),
            "Call\nOutcome: No answer\nDuration: 3 min 20 s"
        );
        assert_eq!(get(&props, "hs_call_duration"), "200000");
        assert_eq!(get(&props, "hs_call_direction"), "OUTBOUND");
        assert_eq!(get(&props, "hs_call_status"), "NO_ANSWER");

        for (outcome, status) in [
            ("connected", "COMPLETED"),
            ("busy", "BUSY"),
            ("Cancelled", "CANCELED"),
            ("no_answer", "NO_ANSWER"),
            ("left voicemail", "COMPLETED"),
        ] {
            call.outcome = Some(outcome.to_owned());
            assert_eq!(
                get(&properties(&call, StoreAs::Call), "hs_call_status"),
                status,
                "{outcome}"
            );
        }
        call.details
            .insert("direction".to_owned(), "Inbound".to_owned());
        assert_eq!(
            get(&properties(&call, StoreAs::Call), "hs_call_direction"),
            "INBOUND"
        );
    }

    #[test]
    fn tasks_carry_status_and_type() {
        let mut task = blank_activity(hubsync_schemas::ActivityType::Task);
        task.subject = Some("Send the case study".to_owned());
        let props = properties(&task, StoreAs::Task);
        assert_eq!(get(&props, "hs_task_subject"), "Send the case study");
        assert_eq!(
            get(&props, "hs_task_body"),
            "Task\nSubject: Send the case study"
        );
        assert_eq!(get(&props, "hs_task_status"), "NOT_STARTED");
        assert_eq!(get(&props, "hs_task_type"), "TODO");

        let step = blank_activity(hubsync_schemas::ActivityType::LinkedinReplied);
        let props = properties(&step, StoreAs::Task);
        assert_eq!(get(&props, "hs_task_subject"), "LinkedIn reply");
        assert_eq!(get(&props, "hs_task_status"), "COMPLETED");
        assert_eq!(get(&props, "hs_task_type"), "LINKED_IN");
    }

    #[test]
    fn meetings_span_their_duration() {
        let mut meeting = blank_activity(hubsync_schemas::ActivityType::MeetingBooked);
        meeting.subject = Some("Intro call".to_owned());
        meeting.event_time = 1_741_183_200_000;
        meeting.duration_ms = Some(1_800_000);
        let timestamp = hubspot_datetime(meeting.event_time).expect("in range");
        let props = activity_properties(
            &meeting,
            ActivityType::MeetingBooked,
            StoreAs::Meeting,
            &timestamp,
        );
        assert_eq!(get(&props, "hs_meeting_title"), "Intro call");
        assert_eq!(
            get(&props, "hs_meeting_start_time"),
            "2025-03-05T14:00:00.000Z"
        );
        assert_eq!(
            get(&props, "hs_meeting_end_time"),
            "2025-03-05T14:30:00.000Z"
        );
        assert_eq!(get(&props, "hs_meeting_outcome"), "SCHEDULED");
        assert_eq!(
            get(&props, "hs_meeting_body"),
            "Meeting booked\nDuration: 30 min\nSubject: Intro call"
        );
    }

    #[test]
    fn unknown_types_read_as_the_producers_name() {
        let mut event = blank_activity(hubsync_schemas::ActivityType::Unknown);
        event.activity_type_name = "email_forwarded".to_owned();
        assert_eq!(
            headline(&event, ActivityType::Unknown),
            "Activity: email_forwarded"
        );
        event.activity_type_name = " ".to_owned();
        assert_eq!(headline(&event, ActivityType::Unknown), "Activity");
    }

    #[test]
    fn long_texts_are_cut_to_hubspots_limit() {
        let mut event = blank_activity(hubsync_schemas::ActivityType::LinkedinMessageSent);
        event.body = Some("<".repeat(MAX_TEXT));
        let note = properties(&event, StoreAs::Note);
        let body = get(&note, "hs_note_body");
        assert!(body.chars().count() <= MAX_TEXT, "{}", body.chars().count());
        assert!(
            body.ends_with("&lt;…"),
            "no entity is split: {}",
            &body[body.len() - 12..]
        );

        let call = properties(&event, StoreAs::Call);
        let body = get(&call, "hs_call_body");
        assert_eq!(body.chars().count(), MAX_TEXT);
        assert!(body.ends_with('…'));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_text(45_000), "45 s");
        assert_eq!(duration_text(120_000), "2 min");
        assert_eq!(duration_text(3_720_000), "1 h 2 min");
        assert_eq!(duration_text(7_200_000), "2 h");
    }
}
