//! The codec without a registry: schemas come from a counting fake fetch.

use std::sync::atomic::{AtomicUsize, Ordering};

use hubsync_schemas::{CompanyChanged, ContactChanged, examples};
use serde_json::Value as Json;

use super::*;
use crate::config::RegistryConfig;

fn codec(capacity: usize) -> AvroCodec {
    // Nothing listens there; these tests never reach the client.
    let config = RegistryConfig {
        url: "http://127.0.0.1:9".to_owned(),
        ..RegistryConfig::default()
    };
    let registry = RegistryClient::new(&config, None).expect("client builds");
    AvroCodec::new(registry, capacity).expect("embedded schemas load")
}

/// A registry stand-in answering from a table, counting what it is asked.
#[derive(Default)]
struct FakeRegistry {
    schemas: HashMap<u32, String>,
    fetches: AtomicUsize,
}

impl FakeRegistry {
    fn with(schemas: &[(u32, String)]) -> Self {
        Self {
            schemas: schemas.iter().cloned().collect(),
            fetches: AtomicUsize::new(0),
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    async fn decode<T: AvroRecord>(
        &self,
        codec: &AvroCodec,
        bytes: &[u8],
    ) -> Result<T, DecodeError> {
        let (id, datum) = framing::split(bytes).map_err(DecodeError::NotConfluentFramed)?;
        let writer = codec.fetch_schema(id, |id| self.fetch(id)).await?;
        codec.read(&writer, datum)
    }

    async fn fetch(&self, id: u32) -> Result<String, RegistryError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        // Let other tasks run into the same miss meanwhile.
        tokio::task::yield_now().await;
        self.schemas
            .get(&id)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound {
                request: format!("GET /schemas/ids/{id}"),
                code: registry::SCHEMA_NOT_FOUND,
                message: format!("Schema {id} not found"),
            })
    }
}

fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut bytes = framing::header(id).to_vec();
    bytes.extend_from_slice(datum);
    bytes
}

fn source(kind: SchemaKind) -> String {
    kind.source().to_owned()
}

/// ContactChanged as first released, before `phone`, `fields` and `changed_fields`.
fn older_contact_schema() -> String {
    let mut json: Json = serde_json::from_str(SchemaKind::ContactChanged.source()).unwrap();
    json["fields"].as_array_mut().unwrap().retain(|f| {
        !matches!(
            f["name"].as_str(),
            Some("phone" | "fields" | "changed_fields")
        )
    });
    json.to_string()
}

/// The example contact written with [`older_contact_schema`].
fn older_contact_datum() -> Vec<u8> {
    let reader = SchemaKind::ContactChanged.schema().unwrap();
    let older = Schema::parse_str(&older_contact_schema()).unwrap();
    let mut bytes = &examples::contact_changed().to_avro().unwrap()[..];
    let Value::Record(fields) = GenericDatumReader::builder(reader)
        .build()
        .unwrap()
        .read_value(&mut bytes)
        .unwrap()
    else {
        panic!("a record");
    };
    let kept: Vec<(String, Value)> = fields
        .into_iter()
        .filter(|(name, _)| !matches!(name.as_str(), "phone" | "fields" | "changed_fields"))
        .collect();
    GenericDatumWriter::builder(&older)
        .build()
        .unwrap()
        .write_value_to_vec(Value::Record(kept))
        .unwrap()
}

#[test]
fn bad_frames_are_refused_before_any_lookup() {
    let codec = codec(10);
    for (bytes, expected) in [
        (&[][..], FrameError::Empty),
        (&[0, 0, 0][..], FrameError::TooShort(3)),
        (&b"{\"a\":1}"[..], FrameError::BadMagic(b'{')),
    ] {
        assert_eq!(
            codec.decode_cached::<ContactChanged>(bytes),
            Err(DecodeError::NotConfluentFramed(expected))
        );
    }
}

#[test]
fn the_hot_path_never_fetches() {
    let codec = codec(10);
    let bytes = framed(5, &examples::contact_changed().to_avro().unwrap());
    let error = codec.decode_cached::<ContactChanged>(&bytes).unwrap_err();
    assert_eq!(error, DecodeError::NotCached(5));
    assert_eq!(error.code().as_str(), "SCHEMA_NOT_CACHED");
    assert!(!codec.is_cached(5));
}

#[tokio::test]
async fn a_schema_is_fetched_once_then_decoded_from_the_cache() {
    let codec = codec(10);
    let registry = FakeRegistry::with(&[(5, source(SchemaKind::ContactChanged))]);
    let bytes = framed(5, &examples::contact_changed().to_avro().unwrap());
    for _ in 0..3 {
        let decoded: ContactChanged = registry.decode(&codec, &bytes).await.unwrap();
        assert_eq!(decoded, examples::contact_changed());
    }
    assert_eq!(registry.fetches(), 1);
    assert!(codec.is_cached(5));
    let decoded: ContactChanged = codec.decode_cached(&bytes).unwrap();
    assert_eq!(decoded, examples::contact_changed());
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let codec = codec(10);
    let registry = FakeRegistry::with(&[(8, source(SchemaKind::ContactChanged))]);
    let bytes = framed(8, &examples::contact_changed().to_avro().unwrap());
    let decodes = (0..16).map(|_| registry.decode::<ContactChanged>(&codec, &bytes));
    let results = futures_join_all(decodes).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(registry.fetches(), 1);
    assert!(lock(&codec.inner.fetching).is_empty());
}

/// Polls every future on the current task until all are done.
async fn futures_join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[tokio::test]
async fn unknown_ids_are_data_errors_and_not_cached() {
    let codec = codec(10);
    let registry = FakeRegistry::default();
    let bytes = framed(404, &[0]);
    for attempt in 1..=2 {
        let error = registry
            .decode::<ContactChanged>(&codec, &bytes)
            .await
            .unwrap_err();
        assert_eq!(error, DecodeError::UnknownSchemaId(404));
        assert_eq!(error.code().as_str(), "UNKNOWN_SCHEMA_ID");
        assert!(!error.is_retryable());
        assert_eq!(registry.fetches(), attempt);
    }
    assert!(!codec.is_cached(404));
}

#[tokio::test]
async fn an_unreachable_registry_is_retryable_and_a_later_fetch_works() {
    let codec = codec(10);
    let bytes = framed(3, &examples::contact_changed().to_avro().unwrap());
    let down = |_id: u32| async {
        Err::<String, _>(RegistryError::Unavailable {
            request: "GET /schemas/ids/3".to_owned(),
            reason: "connection refused".to_owned(),
        })
    };
    let error = codec.fetch_schema(3, down).await.map(drop).unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(error.code().as_str(), "REGISTRY_UNAVAILABLE");
    assert!(!codec.is_cached(3));

    let registry = FakeRegistry::with(&[(3, source(SchemaKind::ContactChanged))]);
    let decoded: ContactChanged = registry.decode(&codec, &bytes).await.unwrap();
    assert_eq!(decoded, examples::contact_changed());
}

#[tokio::test]
async fn an_older_writer_schema_decodes_with_defaults() {
    let codec = codec(10);
    let registry = FakeRegistry::with(&[(11, older_contact_schema())]);
    let bytes = framed(11, &older_contact_datum());
    let decoded: ContactChanged = registry.decode(&codec, &bytes).await.unwrap();
    let expected = ContactChanged {
        phone: None,
        fields: Default::default(),
        changed_fields: Vec::new(),
        ..examples::contact_changed()
    };
    assert_eq!(decoded, expected);
    // The compiled resolution is reused by the hot path.
    assert_eq!(
        codec.decode_cached::<ContactChanged>(&bytes).unwrap(),
        expected
    );
    let mut longer = bytes.clone();
    longer.push(0);
    let error = codec.decode_cached::<ContactChanged>(&longer).unwrap_err();
    assert!(
        matches!(&error, DecodeError::Malformed { id: 11, reason } if reason.contains("left")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_schema_of_another_record_is_incompatible() {
    let codec = codec(10);
    let registry = FakeRegistry::with(&[(2, source(SchemaKind::CompanyChanged))]);
    let bytes = framed(2, &examples::company_changed().to_avro().unwrap());
    let error = registry
        .decode::<ContactChanged>(&codec, &bytes)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DecodeError::Incompatible { id: 2, reason } if reason.contains("CompanyChanged")),
        "{error:?}"
    );
    assert_eq!(error.code().as_str(), "INCOMPATIBLE_SCHEMA");
    // The same id still reads as what it is.
    let company: CompanyChanged = codec.decode_cached(&bytes).unwrap();
    assert_eq!(company, examples::company_changed());
}

#[tokio::test]
async fn a_registry_schema_that_does_not_parse_is_incompatible_and_cached() {
    let codec = codec(10);
    let registry = FakeRegistry::with(&[(6, "{\"type\": \"record\"}".to_owned())]);
    for _ in 0..2 {
        let error = registry
            .decode::<ContactChanged>(&codec, &framed(6, &[0]))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, DecodeError::Incompatible { id: 6, reason } if reason.contains("does not parse")),
            "{error:?}"
        );
    }
    assert_eq!(registry.fetches(), 1);
}

#[tokio::test]
async fn garbage_after_a_good_header_is_malformed() {
    let codec = codec(10);
    let registry = FakeRegistry::with(&[
        (1, source(SchemaKind::ContactChanged)),
        (11, older_contact_schema()),
    ]);
    for id in [1, 11] {
        for datum in [&[0xff, 0xff, 0xff][..], &[][..], &[0x02, b'x'][..]] {
            let error = registry
                .decode::<ContactChanged>(&codec, &framed(id, datum))
                .await
                .unwrap_err();
            assert!(
                matches!(error, DecodeError::Malformed { id: got, .. } if got == id),
                "{id} {datum:?}: {error:?}"
            );
            assert_eq!(error.code().as_str(), "MALFORMED_AVRO");
        }
    }
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let codec = codec(2);
    let text = source(SchemaKind::ContactChanged);
    let registry = FakeRegistry::with(&[(1, text.clone()), (2, text.clone()), (3, text)]);
    let datum = examples::contact_changed().to_avro().unwrap();
    for id in [1, 2, 3] {
        registry
            .decode::<ContactChanged>(&codec, &framed(id, &datum))
            .await
            .unwrap();
    }
    assert!(!codec.is_cached(1));
    assert!(codec.is_cached(2) && codec.is_cached(3));
    registry
        .decode::<ContactChanged>(&codec, &framed(1, &datum))
        .await
        .unwrap();
    assert_eq!(registry.fetches(), 4);
}

#[tokio::test]
async fn decode_value_shows_a_payload_as_written() {
    let codec = codec(10);
    let registry = FakeRegistry::with(&[(11, older_contact_schema())]);
    let bytes = framed(11, &older_contact_datum());
    codec
        .fetch_schema(11, |id| registry.fetch(id))
        .await
        .unwrap();
    let (id, value) = codec.decode_value(&bytes).await.unwrap();
    assert_eq!(id, 11);
    let Value::Record(fields) = value else {
        panic!("a record");
    };
    assert_eq!(fields.len(), 15);
    assert_eq!(
        fields[3],
        (
            "contact_id".to_owned(),
            Value::String("ct_90311".to_owned())
        )
    );
}

/// A writer for `kind` under `id`, without registering anything.
fn writer_for(codec: &AvroCodec, kind: SchemaKind, id: u32) -> Writer {
    codec.insert(WriterSchema::new(id, Ok(kind.schema().unwrap().clone())));
    Writer {
        inner: Arc::clone(&codec.inner),
        kind,
        id,
    }
}

fn round_trip<T: AvroRecord + PartialEq + fmt::Debug>(codec: &AvroCodec, id: u32, record: T) {
    let writer = writer_for(codec, T::KIND, id);
    let bytes = writer.encode(&record).unwrap();
    assert_eq!(bytes[..5], framing::header(id));
    assert_eq!(bytes[5..], record.to_avro().unwrap());
    assert_eq!(codec.decode_cached::<T>(&bytes).unwrap(), record);
}

#[test]
fn every_record_type_round_trips() {
    let codec = codec(10);
    round_trip(&codec, 1, examples::contact_changed());
    round_trip(&codec, 2, examples::company_changed());
    round_trip(&codec, 3, examples::activity_recorded());
    round_trip(&codec, 4, examples::hubspot_command());
    round_trip(&codec, 5, examples::sync_outcome());
    round_trip(&codec, 6, examples::dead_letter());
    round_trip(&codec, 7, examples::hubspot_change());
}

#[test]
fn a_writer_refuses_records_of_another_type() {
    let codec = codec(10);
    let writer = writer_for(&codec, SchemaKind::ContactChanged, 1);
    let mut out = b"kept".to_vec();
    let error = writer
        .encode_into(&examples::company_changed(), &mut out)
        .unwrap_err();
    assert!(
        matches!(
            error,
            EncodeError::WrongKind {
                writer: SchemaKind::ContactChanged,
                record: SchemaKind::CompanyChanged
            }
        ),
        "{error:?}"
    );
    assert_eq!(out, b"kept");
}

#[test]
fn codec_and_writer_are_shared_across_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<AvroCodec>();
    shareable::<Writer>();
}

/// Whatever bytes come off a topic, the decoder answers a record or a typed error; it never
/// panics. Schema 1 is the current contact schema (read directly), schema 11 an older one (read
/// through the compiled resolution).
mod arbitrary_input {
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    fn shared() -> &'static AvroCodec {
        static CODEC: OnceLock<AvroCodec> = OnceLock::new();
        CODEC.get_or_init(|| {
            let codec = codec(10);
            writer_for(&codec, SchemaKind::ContactChanged, 1);
            let registry = FakeRegistry::with(&[(11, older_contact_schema())]);
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
                .block_on(codec.fetch_schema(11, |id| registry.fetch(id)))
                .expect("the older schema resolves");
            codec
        })
    }

    fn decode(bytes: &[u8]) -> Result<ContactChanged, DecodeError> {
        shared().decode_cached::<ContactChanged>(bytes)
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&bytes);
            for id in [1, 11, 999] {
                let _ = decode(&framed(id, &bytes));
            }
        }

        #[test]
        fn a_damaged_record_decodes_or_is_refused(
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            for (id, datum) in [
                (1, examples::contact_changed().to_avro().expect("encodes")),
                (11, older_contact_datum()),
            ] {
                prop_assert!(decode(&framed(id, &datum)).is_ok(), "the undamaged datum decodes");
                let mut damaged = datum.clone();
                let index = at.index(damaged.len());
                damaged[index] = byte;
                let _ = decode(&framed(id, &damaged));
                let _ = decode(&framed(id, &datum[..cut.index(datum.len())]));
            }
        }
    }
}
