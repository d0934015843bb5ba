//! The dead-letter topic, worked: dead letters named by their place on it
//! (`hubsync.dlq/0/7`), filtered by reason, error class, source topic and record, their original
//! payload decoded through the registry, and redriven to their source topics.
//!
//! ```text
//! hubsync.dlq/0/7  DATA INVALID_OPTION  crm.contact.changes/0/41  email:ada@acme.io
//!   payload (schema 3): {"email": "ada@acme.io", "fields": {"stage": "new"}, ...}
//! ```

pub mod redrive;

use std::collections::BTreeMap;

use hubsync_schemas::{DeadLetter, ErrorClass, ErrorEnvelope};
use rdkafka::producer::FutureProducer;
use serde::Serialize;
use serde_json::Value;
use tracing::debug;

use super::logs::Newest;
use super::range::Window;
use super::range::{format_ms, format_short};
use super::record::{RecordLabel, RecordQuery};
use super::scan::{Flow, TopicReader, report_scan};
use super::table::{Table, fields};
use crate::codec::AvroCodec;
use crate::outcomes::Original;
use crate::position::Position;

/// A dead letter as typed on the command line, `topic/partition/offset` as `dlq list` prints it.
pub fn parse_id(input: &str) -> Result<Position, String> {
    Position::parse_as(
        input,
        "a dead letter id",
        "hubsync.dlq/0/7, as `hubsync dlq list` prints it",
    )
}

/// An error class as typed on the command line: `data`, `RETRIES_EXHAUSTED`, `retries-exhausted`.
pub fn parse_class(input: &str) -> Result<ErrorClass, String> {
    let symbol = input.trim().to_ascii_uppercase().replace('-', "_");
    match ErrorClass::from_symbol(&symbol) {
        ErrorClass::Unknown if symbol != "UNKNOWN" => Err(format!(
            "{input:?} is not an error class; use one of {}",
            ErrorClass::ALL
                .iter()
                .map(|c| c.as_str().to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        class => Ok(class),
    }
}

/// The original record's value, as far as it can be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Payload {
    /// Decoded with its writer schema from the registry.
    Decoded { schema_id: u32, value: Value },
    /// Not decodable: why, and the bytes.
    Undecodable {
        code: &'static str,
        reason: String,
        hex: String,
    },
    /// The original record had no value.
    Absent,
}

impl Payload {
    /// Decodes Confluent-framed Avro of any schema the registry knows.
    pub async fn decode(codec: &AvroCodec, bytes: Option<&[u8]>) -> Self {
        let Some(bytes) = bytes else {
            return Payload::Absent;
        };
        let undecodable = |code: &'static str, reason: String| Payload::Undecodable {
            code,
            reason,
            hex: hex(bytes),
        };
        match codec.decode_value(bytes).await {
            Ok((schema_id, value)) => match Value::try_from(value) {
                Ok(value) => Payload::Decoded { schema_id, value },
                Err(error) => undecodable("NOT_JSON", error.to_string()),
            },
            Err(error) => undecodable(error.code().as_str(), error.to_string()),
        }
    }

    pub fn value(&self) -> Option<&Value> {
        match self {
            Payload::Decoded { value, .. } => Some(value),
            _ => None,
        }
    }
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A dead letter as read from the dead-letter topic, with its payload decoded.
#[derive(Debug, Clone)]
pub struct Letter {
    pub id: Position,
    pub dead_letter: DeadLetter,
    /// The dead-letter record's own headers (`__connect.errors.*`).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub payload: Payload,
    pub record: Option<RecordLabel>,
}

impl Letter {
    pub async fn read(codec: &AvroCodec, message: Original, dead_letter: DeadLetter) -> Self {
        let payload = Payload::decode(codec, dead_letter.original_value.as_deref()).await;
        let record = payload.value().and_then(RecordLabel::of_payload);
        Letter {
            id: Position {
                topic: message.topic,
                partition: message.partition,
                offset: message.offset,
            },
            dead_letter,
            headers: message.headers,
            payload,
            record,
        }
    }

    /// The `__connect.errors.*` headers, by name.
    pub fn connect_headers(&self) -> BTreeMap<String, String> {
        self.headers
            .iter()
            .filter(|(key, _)| key.starts_with("__connect.errors."))
            .map(|(key, value)| (key.clone(), text(value.as_deref())))
            .collect()
    }

    fn source(&self) -> String {
        let d = &self.dead_letter;
        format!(
            "{}/{}/{}",
            d.original_topic, d.original_partition, d.original_offset
        )
    }
}

fn text(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(String::new, |b| String::from_utf8_lossy(b).into_owned())
}

/// Which dead letters to show or redrive; an empty list or `None` lets everything through.
#[derive(Debug, Clone, Default)]
pub struct LetterFilter {
    /// Error codes, compared without regard to case.
    pub reasons: Vec<String>,
    pub classes: Vec<ErrorClass>,
    /// The original record's topic.
    pub topic: Option<String>,
    pub record: Option<RecordQuery>,
    /// The team; dead letters that name no team (undecodable messages) are everyone's.
    pub team: Option<String>,
}

impl LetterFilter {
    pub fn is_empty(&self) -> bool {
        self.reasons.is_empty()
            && self.classes.is_empty()
            && self.topic.is_none()
            && self.record.is_none()
    }

    /// Whether `letter` is selected.
    pub fn matches(&self, letter: &Letter) -> bool {
        self.matches_letter(&letter.dead_letter)
            && self.record.as_ref().is_none_or(|query| {
                query.matches(
                    letter.record.as_ref(),
                    None,
                    letter.dead_letter.event_id.as_deref(),
                )
            })
    }

    /// [`LetterFilter::matches`] on what a dead letter says without its payload decoded: every
    /// filter but the record.
    pub fn matches_letter(&self, d: &DeadLetter) -> bool {
        self.team
            .as_ref()
            .is_none_or(|team| d.team_id.as_ref().is_none_or(|t| t == team || t.is_empty()))
            && (self.reasons.is_empty()
                || self
                    .reasons
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&d.error.code)))
            && (self.classes.is_empty() || self.classes.contains(&d.error.class))
            && self
                .topic
                .as_ref()
                .is_none_or(|topic| *topic == d.original_topic)
    }
}

/// One dead letter as `dlq list --json` prints it (`dlq show --json` adds headers and payload).
#[derive(Debug, Clone, Serialize)]
pub struct LetterView<'a> {
    pub id: String,
    pub failed_at: String,
    pub event_id: Option<&'a str>,
    pub team_id: Option<&'a str>,
    pub source: SourceView<'a>,
    pub error: &'a ErrorEnvelope,
    /// `email:ada@acme.io`, read from the decoded payload.
    pub record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail<'a>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceView<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    /// The key as UTF-8 (lossy).
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Detail<'a> {
    pub connect_headers: BTreeMap<String, String>,
    pub original_headers: Vec<HeaderView>,
    pub payload: &'a Payload,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderView {
    pub key: String,
    /// UTF-8 (lossy); `None` for a header without a value.
    pub value: Option<String>,
}

impl Letter {
    /// The summary view; `detailed` adds the headers and the decoded payload.
    pub fn view(&self, detailed: bool) -> LetterView<'_> {
        let d = &self.dead_letter;
        LetterView {
            id: self.id.to_string(),
            failed_at: format_ms(d.failed_at),
            event_id: d.event_id.as_deref(),
            team_id: d.team_id.as_deref(),
            source: SourceView {
                topic: &d.original_topic,
                partition: d.original_partition,
                offset: d.original_offset,
                timestamp: d.original_timestamp,
                key: d.original_key.as_deref().map(|k| text(Some(k))),
            },
            error: &d.error,
            record: self.record.as_ref().map(|r| r.to_string()),
            detail: detailed.then(|| Detail {
                connect_headers: self.connect_headers(),
                original_headers: d
                    .original_headers
                    .iter()
                    .map(|h| HeaderView {
                        key: h.key.clone(),
                        value: h.value.as_deref().map(|v| text(Some(v))),
                    })
                    .collect(),
                payload: &self.payload,
            }),
        }
    }
}

/// The table `dlq list` prints.
pub fn letter_table(letters: &[Letter]) -> Table {
    let mut table = Table::new(&[
        "ID",
        "TIME (UTC)",
        "SOURCE",
        "CLASS",
        "REASON CODE",
        "RECORD",
        "MESSAGE",
    ])
    .limit(5, 40)
    .limit(6, 70);
    for letter in letters {
        let d = &letter.dead_letter;
        table.row(vec![
            letter.id.to_string(),
            format_short(d.failed_at),
            letter.source(),
            d.error.class.as_str().to_string(),
            d.error.code.clone(),
            letter
                .record
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default(),
            d.error.message.clone(),
        ]);
    }
    table
}

/// Everything about one dead letter, for `dlq show`.
pub fn describe(letter: &Letter) -> String {
    let d = &letter.dead_letter;
    let e = &d.error;
    let or_none = |value: Option<&str>| value.unwrap_or("-").to_string();
    let mut out = format!("dead letter {}\n", letter.id);
    out.push_str(&fields(&[
        ("failed at", format_ms(d.failed_at)),
        ("event id", or_none(d.event_id.as_deref())),
        ("team", or_none(d.team_id.as_deref())),
        ("source", letter.source()),
        (
            "source time",
            d.original_timestamp.map_or_else(|| "-".into(), format_ms),
        ),
        (
            "source key",
            or_none(d.original_key.as_deref().map(|k| text(Some(k))).as_deref()),
        ),
        (
            "record",
            letter
                .record
                .as_ref()
                .map_or_else(|| "-".into(), |r| r.to_string()),
        ),
    ]));
    out.push_str("error\n");
    out.push_str(&fields(&[
        ("class", e.class.as_str().to_string()),
        ("code", e.code.clone()),
        ("stage", e.stage.clone()),
        ("attempts", e.attempts.to_string()),
        ("message", e.message.clone()),
        ("hubspot category", or_none(e.hubspot_category.as_deref())),
        (
            "hubspot correlation id",
            or_none(e.hubspot_correlation_id.as_deref()),
        ),
    ]));
    let connect: Vec<(String, String)> = letter.connect_headers().into_iter().collect();
    out.push_str("kafka connect headers\n");
    if connect.is_empty() {
        out.push_str("  (none)\n");
    }
    let pairs: Vec<(&str, String)> = connect
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    out.push_str(&fields(&pairs));
    out.push_str("original headers\n");
    if d.original_headers.is_empty() {
        out.push_str("  (none)\n");
    }
    let originals: Vec<(&str, String)> = d
        .original_headers
        .iter()
        .map(|h| (h.key.as_str(), text(h.value.as_deref())))
        .collect();
    out.push_str(&fields(&originals));
    match &letter.payload {
        Payload::Decoded { schema_id, value } => {
            out.push_str(&format!("payload (schema id {schema_id})\n"));
            let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
            for line in pretty.lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
        Payload::Undecodable { code, reason, hex } => {
            out.push_str(&format!("payload cannot be decoded ({code}): {reason}\n"));
            out.push_str(&format!("  {} bytes, hex:\n", hex.len() / 2));
            for chunk in hex.as_bytes().chunks(64) {
                out.push_str("  ");
                out.push_str(&String::from_utf8_lossy(chunk));
                out.push('\n');
            }
        }
        Payload::Absent => out.push_str("payload: none (the original record had no value)\n"),
    }
    out
}

/// What a redrive did, or with `dry_run` would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedriveReport {
    pub dry_run: bool,
    pub selected: usize,
    pub redriven: usize,
    /// Records published (or to be published) per source topic.
    pub topics: BTreeMap<String, usize>,
    pub failed: Vec<RedriveFailure>,
    /// The ids redriven (or to be), in order.
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedriveFailure {
    pub id: String,
    pub error: String,
}

impl RedriveReport {
    /// `redriven 2 of 3, to topics crm.contact.changes (2); 1 failed`
    pub fn summary(&self) -> String {
        let topics = if self.topics.is_empty() {
            "none".to_string()
        } else {
            self.topics
                .iter()
                .map(|(topic, count)| format!("{topic} ({count})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.dry_run {
            format!(
                "dry run: would redrive {} of {}, to topics {topics}; nothing was published",
                self.selected, self.selected
            )
        } else {
            let mut line = format!(
                "redriven {} of {}, to topics {topics}",
                self.redriven, self.selected
            );
            if !self.failed.is_empty() {
                line.push_str(&format!("; {} failed", self.failed.len()));
            }
            line
        }
    }
}

/// Publishes each letter's original record to its source topic (nothing with `dry_run`).
pub async fn redrive(
    producer: &FutureProducer,
    letters: &[Letter],
    dry_run: bool,
    now_ms: i64,
) -> RedriveReport {
    let mut report = RedriveReport {
        dry_run,
        selected: letters.len(),
        ..RedriveReport::default()
    };
    let mut published = Vec::new();
    for letter in letters {
        let topic = letter.dead_letter.original_topic.as_str();
        if dry_run {
            published.push(topic);
            report.ids.push(letter.id.to_string());
            continue;
        }
        match redrive::publish(producer, &letter.dead_letter, &letter.id, now_ms).await {
            Ok(()) => {
                published.push(topic);
                report.ids.push(letter.id.to_string());
                report.redriven += 1;
            }
            Err(error) => report.failed.push(RedriveFailure {
                id: letter.id.to_string(),
                error: error.to_string(),
            }),
        }
    }
    report.topics = redrive::by_topic(published);
    report
}

/// Dead letters on `topic` in `window` that `filter` selects, oldest first, at most `cap` (the
/// newest); also how many matched in all.
pub async fn select(
    reader: &TopicReader,
    topic: &str,
    window: Window,
    filter: &LetterFilter,
    cap: Option<usize>,
) -> anyhow::Result<(Vec<Letter>, usize)> {
    // What can be decided without the payload is decided while reading; the record filter
    // needs the payload decoded, so with one the cap applies only after it.
    let mut raw: Newest<(Original, DeadLetter)> =
        Newest::new(cap.filter(|_| filter.record.is_none()));
    let mut undecodable = 0u64;
    let stats = reader
        .scan::<DeadLetter>(topic, window, |scanned| {
            match scanned.record {
                Ok(dead_letter) => {
                    if filter.matches_letter(&dead_letter) {
                        raw.push(dead_letter.failed_at, (scanned.message, dead_letter));
                    }
                }
                Err(error) => {
                    debug!(%error, offset = scanned.message.offset, "undecodable dead letter");
                    undecodable += 1;
                }
            }
            Flow::Continue
        })
        .await?;
    report_scan(topic, &stats, undecodable);
    // Without a record filter everything read early matched; with one, only what passes it.
    let matched_early = raw.seen();
    let mut letters = Newest::new(cap);
    for (message, dead_letter) in raw.into_sorted() {
        let letter = Letter::read(reader.codec(), message, dead_letter).await;
        if filter.matches(&letter) {
            letters.push(letter.dead_letter.failed_at, letter);
        }
    }
    let matched = if filter.record.is_none() {
        matched_early
    } else {
        letters.seen()
    };
    let seen = usize::try_from(matched).unwrap_or(usize::MAX);
    Ok((letters.into_sorted(), seen))
}

/// One dead letter by id.
pub async fn read_letter(reader: &TopicReader, id: &Position) -> Result<Letter, String> {
    let message = reader
        .read_at(&id.topic, id.partition, id.offset)
        .await
        .map_err(|e| e.to_string())?;
    let dead_letter = reader
        .codec()
        .decode::<DeadLetter>(message.value.as_deref().unwrap_or_default())
        .await
        .map_err(|e| format!("{id} is not a dead letter hubsync can read: {e}"))?;
    Ok(Letter::read(reader.codec(), message, dead_letter).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_schemas::examples;

    fn letter(code: &str, class: ErrorClass, email: &str) -> Letter {
        let mut dead_letter = examples::dead_letter();
        dead_letter.error.code = code.to_string();
        dead_letter.error.class = class;
        Letter {
            id: Position::new("hubsync.dlq", 0, 4),
            dead_letter,
            headers: vec![
                ("__connect.errors.stage".into(), Some(b"process".to_vec())),
                ("other".into(), None),
            ],
            payload: Payload::Decoded {
                schema_id: 1,
                value: serde_json::json!({"email": email}),
            },
            record: RecordLabel::of_payload(&serde_json::json!({"email": email})),
        }
    }

    #[test]
    fn ids_parse_from_the_right_so_topics_may_hold_dots() {
        let id = parse_id("team.a.dlq/2/41").expect("valid");
        assert_eq!(id, Position::new("team.a.dlq", 2, 41));
        assert_eq!(id.to_string(), "team.a.dlq/2/41");
        for bad in [
            "hubsync.dlq/0",
            "hubsync.dlq/x/1",
            "/0/1",
            "hubsync.dlq/0/-1",
            "",
        ] {
            let error = parse_id(bad).unwrap_err();
            assert!(error.contains("topic/partition/offset"), "{bad}: {error}");
        }
    }

    #[test]
    fn classes_parse_like_statuses() {
        assert_eq!(parse_class("data"), Ok(ErrorClass::Data));
        assert_eq!(
            parse_class("retries-exhausted"),
            Ok(ErrorClass::RetriesExhausted)
        );
        assert!(parse_class("bad").unwrap_err().contains("data, config"));
    }

    #[test]
    fn filters_combine_reason_class_topic_and_record() {
        let invalid = letter("INVALID_OPTION", ErrorClass::Data, "ada@acme.io");
        let exhausted = letter("RETRIES_EXHAUSTED", ErrorClass::RetriesExhausted, "b@x.io");
        assert!(LetterFilter::default().is_empty());
        let by_class = LetterFilter {
            classes: vec![ErrorClass::Data],
            ..LetterFilter::default()
        };
        assert!(by_class.matches(&invalid) && !by_class.matches(&exhausted));
        let by_reason = LetterFilter {
            reasons: vec!["retries_exhausted".into()],
            ..LetterFilter::default()
        };
        assert!(!by_reason.matches(&invalid) && by_reason.matches(&exhausted));
        let by_record = LetterFilter {
            record: Some(RecordQuery::parse("email:ada@acme.io")),
            ..LetterFilter::default()
        };
        assert!(by_record.matches(&invalid) && !by_record.matches(&exhausted));
        let by_topic = LetterFilter {
            topic: Some("elsewhere".into()),
            ..LetterFilter::default()
        };
        assert!(!by_topic.matches(&invalid));
    }

    #[test]
    fn show_prints_the_error_the_connect_headers_and_the_payload() {
        let text = describe(&letter("INVALID_OPTION", ErrorClass::Data, "ada@acme.io"));
        assert!(text.starts_with("dead letter hubsync.dlq/0/4\n"), "{text}");
        assert!(text.contains("INVALID_OPTION"), "{text}");
        assert!(text.contains("__connect.errors.stage  process"), "{text}");
        assert!(!text.contains("other"), "only connect headers: {text}");
        assert!(text.contains("\"email\": \"ada@acme.io\""), "{text}");
    }

    #[test]
    fn undecodable_payloads_show_why_and_their_bytes() {
        let mut undecodable = letter("NOT_CONFLUENT_FRAMED", ErrorClass::Data, "x@y.z");
        undecodable.payload = Payload::Undecodable {
            code: "NOT_CONFLUENT_FRAMED",
            reason: "too short".into(),
            hex: hex(b"oops"),
        };
        let text = describe(&undecodable);
        assert!(
            text.contains("cannot be decoded (NOT_CONFLUENT_FRAMED): too short"),
            "{text}"
        );
        assert!(text.contains("6f6f7073"), "{text}");
    }

    #[test]
    fn summaries_name_counts_and_topics() {
        let report = RedriveReport {
            dry_run: false,
            selected: 3,
            redriven: 2,
            topics: BTreeMap::from([("crm.contact.changes".to_string(), 2)]),
            failed: vec![RedriveFailure {
                id: "hubsync.dlq/0/1".into(),
                error: "timed out".into(),
            }],
            ids: vec![],
        };
        assert_eq!(
            report.summary(),
            "redriven 2 of 3, to topics crm.contact.changes (2); 1 failed"
        );
        let dry = RedriveReport {
            dry_run: true,
            selected: 1,
            ..RedriveReport::default()
        };
        assert!(dry.summary().contains("nothing was published"));
    }
}
