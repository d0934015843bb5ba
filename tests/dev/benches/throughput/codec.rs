//! Figure 6: hubsync's own Avro codec against the off-the-shelf alternatives, on one thread.
//!
//! Two design questions, each measured side by side in the same run on the same bytes:
//!
//! - **Own decoder vs `schema_registry_converter`**: N distinct Confluent-framed ContactChanged
//!   records, written with the current schema, decoded to the typed record by
//!   [`AvroCodec::decode_waiting`] (what the process stage calls) and by the crate's
//!   `AvroDecoder::decode` followed by `apache_avro::from_value` (the crate only gives a `Value`;
//!   the product needs the record). Both fetch the writer schema from the same sandbox registry,
//!   and both are warmed with one decode before anything is timed.
//! - **Own resolution vs apache-avro's**: the same events written with an OLDER ContactChanged
//!   schema (see [`older_contact_schema`]), registered as version 1 of the topic's subject, the
//!   current schema being version 2. hubsync reads them through its compiled rewrite
//!   (`topology/src/codec/resolve.rs`) with [`AvroCodec::decode_cached`]; apache-avro decodes
//!   each datum to a `Value` of the writer schema, resolves it to the reader schema and converts
//!   it with `from_value`, once with a reader built for the pair up front and once through the
//!   one-call `from_avro_datum` (which builds it per datum).
//!
//! Every side's output is checked against the events first; the timed passes alternate between
//! the sides so that a change in the machine's load falls on all of them alike.

use std::hint::black_box;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use hubsync::codec::{AvroCodec, RegistryClient};
use hubsync::config::RegistryConfig;
use hubsync_sandbox::registry::SchemaRegistry;
use hubsync_sandbox::server::loopback;
use hubsync_schemas::{ContactChanged, SchemaKind, default_subject, examples};
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use serde_json::Value as Json;

use crate::cpu::{self, Lap};
use crate::processors::Rates;

const TOPIC: &str = "crm.contact.changes";

/// The field the older schema did not have yet.
const ADDED_FIELD: &str = "campaign_id";

/// Bytes of the Confluent header: magic byte and schema id.
const HEADER: usize = 5;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub events: usize,
    pub runs: usize,
}

#[derive(Debug)]
pub struct Figures {
    pub events: usize,
    pub runs: usize,
    /// Mean framed size, current and older schema.
    pub mean_frame_bytes: (usize, usize),
    /// Registry ids of the older (version 1) and the current (version 2) schema.
    pub ids: (u32, u32),
    /// What the older schema differs in, for the printout.
    pub evolution: String,
    pub load: (f64, f64),
    /// Question 1: `decode_waiting::<ContactChanged>`.
    pub own_decode: Rates,
    /// Question 1: `AvroDecoder::decode` + `from_value`.
    pub converter: Rates,
    /// Question 1, for where the time goes: `AvroDecoder::decode` alone, to a `Value`.
    pub converter_value: Rates,
    /// Question 2: `decode_cached::<ContactChanged>` of older-schema frames.
    pub own_resolve: Rates,
    /// Question 2: a `GenericDatumReader` (writer, reader) built once; `read_value` +
    /// `from_value` per datum.
    pub avro_resolve: Rates,
    /// Question 2: `from_avro_datum(writer, bytes, Some(reader))` + `from_value` per datum.
    pub avro_from_datum: Rates,
}

impl Figures {
    /// Own decoder / schema_registry_converter, by CPU time.
    pub fn decoder_ratio(&self) -> f64 {
        self.own_decode.cpu.median() / self.converter.cpu.median()
    }

    /// Own resolution / apache-avro's (reader built once), by CPU time.
    pub fn resolution_ratio(&self) -> f64 {
        self.own_resolve.cpu.median() / self.avro_resolve.cpu.median()
    }
}

pub async fn measure(params: Params) -> Figures {
    let registry = SchemaRegistry::new()
        .serve(loopback(0))
        .await
        .expect("schema registry starts");
    let client = || {
        let config = RegistryConfig {
            url: registry.url(),
            ..RegistryConfig::default()
        };
        let client = RegistryClient::new(&config, None).expect("registry client");
        AvroCodec::new(client, 100).expect("the embedded schemas parse")
    };
    let reader_schema = SchemaKind::ContactChanged
        .schema()
        .expect("the contact schema parses");
    let (older_text, evolution) = older_contact_schema();
    let older = Schema::parse_str(&older_text).expect("the older schema parses");

    // The producers' side: the older schema is version 1 of the topic's subject, the current
    // one version 2 (the sandbox registry checks that the current one can read the older).
    let producer = client();
    let subject = default_subject(TOPIC);
    let older_id = producer
        .registry()
        .register(&subject, &older_text)
        .await
        .expect("the older schema registers");
    let writer = producer
        .writer(SchemaKind::ContactChanged, &subject)
        .await
        .expect("the current schema registers as the next version");
    let events = generate(params.events);
    let frames: Vec<Vec<u8>> = events
        .iter()
        .map(|event| writer.encode(event).expect("an event encodes"))
        .collect();
    let older_writer = GenericDatumWriter::builder(&older)
        .build()
        .expect("a writer of the older schema");
    let older_frames: Vec<Vec<u8>> = events
        .iter()
        .map(|event| {
            let value = apache_avro::to_value(event)
                .expect("an event becomes a value")
                .resolve(&older)
                .expect("an event fits the older schema");
            let mut frame = Vec::with_capacity(256);
            frame.push(0);
            frame.extend_from_slice(&older_id.to_be_bytes());
            older_writer
                .write_value(&mut frame, value)
                .expect("an event encodes with the older schema");
            frame
        })
        .collect();
    let mean = |frames: &[Vec<u8>]| frames.iter().map(Vec::len).sum::<usize>() / frames.len();

    // The consumers' side: each decoder of its own, warmed with one decode through the registry.
    let own = client();
    let _: ContactChanged = own.decode(&frames[0]).await.expect("own decoder warms");
    let _: ContactChanged = own
        .decode(&older_frames[0])
        .await
        .expect("own decoder warms with the older id");
    let converter = AvroDecoder::new(SrSettings::new(registry.url()));
    converter
        .decode(Some(&frames[0]))
        .await
        .expect("schema_registry_converter warms");
    let avro_reader = GenericDatumReader::builder(&older)
        .reader_schema(reader_schema)
        .build()
        .expect("apache-avro's resolving reader");

    // Every side reads every event back as it was written (the older schema had no campaign).
    for ((event, frame), older_frame) in events.iter().zip(&frames).zip(&older_frames) {
        let mut without = event.clone();
        without.campaign_id = None;
        let own_new: ContactChanged = own.decode_waiting(frame).await.expect("own decodes");
        let theirs = converter.decode(Some(frame)).await.expect("theirs decodes");
        let theirs: ContactChanged = apache_avro::from_value(&theirs.value).expect("from_value");
        let own_old: ContactChanged = own.decode_cached(older_frame).expect("own resolves");
        let avro_old = avro_resolved(&avro_reader, older_frame);
        let one_call = avro_from_datum(&older, reader_schema, older_frame);
        assert_eq!(&own_new, event, "own decoder");
        assert_eq!(&theirs, event, "schema_registry_converter");
        assert_eq!(own_old, without, "own resolution");
        assert_eq!(avro_old, without, "apache-avro resolution");
        assert_eq!(one_call, without, "from_avro_datum");
    }

    let load_before = cpu::load_average();
    let mut runs: [Vec<(f64, f64)>; 6] = Default::default();
    for _ in 0..params.runs {
        let lap = Lap::start();
        for frame in &frames {
            let event: ContactChanged = own.decode_waiting(frame).await.expect("decodes");
            black_box(event);
        }
        runs[0].push(lap.rates(frames.len()));

        let lap = Lap::start();
        for frame in &frames {
            let decoded = converter.decode(Some(frame)).await.expect("decodes");
            let event: ContactChanged = apache_avro::from_value(&decoded.value).expect("typed");
            black_box(event);
        }
        runs[1].push(lap.rates(frames.len()));

        let lap = Lap::start();
        for frame in &frames {
            black_box(converter.decode(Some(frame)).await.expect("decodes"));
        }
        runs[2].push(lap.rates(frames.len()));

        let lap = Lap::start();
        for frame in &older_frames {
            let event: ContactChanged = own.decode_cached(frame).expect("resolves");
            black_box(event);
        }
        runs[3].push(lap.rates(older_frames.len()));

        let lap = Lap::start();
        for frame in &older_frames {
            black_box(avro_resolved(&avro_reader, frame));
        }
        runs[4].push(lap.rates(older_frames.len()));

        let lap = Lap::start();
        for frame in &older_frames {
            black_box(avro_from_datum(&older, reader_schema, frame));
        }
        runs[5].push(lap.rates(older_frames.len()));
    }
    let load = (load_before, cpu::load_average());
    let _ = registry.shutdown().await;
    let [
        own_decode,
        converter,
        converter_value,
        own_resolve,
        avro_resolve,
        avro_from_datum,
    ] = runs.map(Rates::of);
    Figures {
        events: frames.len(),
        runs: params.runs,
        mean_frame_bytes: (mean(&frames), mean(&older_frames)),
        ids: (older_id, writer.schema_id()),
        evolution,
        load,
        own_decode,
        converter,
        converter_value,
        own_resolve,
        avro_resolve,
        avro_from_datum,
    }
}

/// apache-avro's resolution with a reader built once: the datum (after the Confluent header) to
/// a `Value` of the writer schema, resolved to the reader's, then to the record.
fn avro_resolved(reader: &GenericDatumReader<'_>, frame: &[u8]) -> ContactChanged {
    let mut datum = &frame[HEADER..];
    let value = reader.read_value(&mut datum).expect("apache-avro resolves");
    apache_avro::from_value(&value).expect("the resolved value is a ContactChanged")
}

/// The same through the one-call function, which builds the reader for every datum.
#[expect(
    deprecated,
    reason = "the one-call form is what the comparison is about"
)]
fn avro_from_datum(writer: &Schema, reader: &Schema, frame: &[u8]) -> ContactChanged {
    let mut datum = &frame[HEADER..];
    let value = apache_avro::from_avro_datum(writer, &mut datum, Some(reader))
        .expect("apache-avro resolves");
    apache_avro::from_value(&value).expect("the resolved value is a ContactChanged")
}

/// An older release of ContactChanged, derived from the current one as such an evolution goes:
/// without [`ADDED_FIELD`] (optional, default null, added later), and with its fields in an
/// earlier order (`contact_id` before `team_id`, `phone` right after `email`). Returns the
/// schema's text and what differs. The frozen history holds only the current version, so the
/// older one is made here.
pub fn older_contact_schema() -> (String, String) {
    let mut schema: Json =
        serde_json::from_str(SchemaKind::ContactChanged.source()).expect("the schema is JSON");
    let fields = schema["fields"]
        .as_array_mut()
        .expect("a record schema has fields");
    let position = |fields: &[Json], name: &str| {
        fields
            .iter()
            .position(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("ContactChanged has no field {name}"))
    };
    let added = position(fields, ADDED_FIELD);
    assert_eq!(
        fields[added]["default"],
        Json::Null,
        "{ADDED_FIELD} is optional"
    );
    fields.remove(added);
    let (team, contact) = (position(fields, "team_id"), position(fields, "contact_id"));
    fields.swap(team, contact);
    let phone = fields.remove(position(fields, "phone"));
    fields.insert(position(fields, "email") + 1, phone);
    let order: Vec<&str> = fields.iter().filter_map(|f| f["name"].as_str()).collect();
    let evolution = format!(
        "without {ADDED_FIELD} (optional, default null) and its fields in the order {}",
        order.join(", ")
    );
    (schema.to_string(), evolution)
}

/// `count` distinct ContactChanged events: the example contact with its ids, email, name and
/// time varied, and every third without an actor and every fourth without a phone, so the
/// records differ in size as real ones do.
fn generate(count: usize) -> Vec<ContactChanged> {
    let example = examples::contact_changed();
    (0..count)
        .map(|index| {
            let mut event = example.clone();
            event.event_id = format!("0b9e6f0e-7d3c-4c55-9a51-{index:012x}");
            event.event_time = example.event_time + index as i64;
            event.contact_id = format!("ct_{}", 100_000 + index);
            event.email = Some(format!("contact.{index}@northwind.example"));
            event.first_name = Some(format!("Jordan{}", index % 997));
            if index % 3 == 0 {
                event.actor = None;
            }
            if index % 4 == 0 {
                event.phone = None;
            }
            event
        })
        .collect()
}
