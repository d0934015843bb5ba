//! End-to-end: the Avro codec against the sandbox schema registry over HTTP. Records of every
//! type round trip through a registered writer; records written with older and newer schema
//! versions decode as this build's types; bad records and registry outages fail with the error
//! that says what to do.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hubsync::codec::{AvroCodec, DecodeError, RegistryClient, RegistryError, WriterError};
use hubsync::config::{RegistryConfig, Secret};
use hubsync_sandbox::registry::{CompatibilityLevel, SchemaRegistry};
use hubsync_sandbox::server::{RunningServer, loopback};
use hubsync_schemas::{
    ActivityRecorded, ActivityType, AvroRecord, ContactChanged, SchemaKind, SyncOutcome,
    default_subject, examples,
};
use serde_json::{Value, json};

struct Sandbox {
    registry: SchemaRegistry,
    server: RunningServer,
}

impl Sandbox {
    async fn start() -> Self {
        let registry = SchemaRegistry::new();
        let server = registry.serve(loopback(0)).await.expect("registry starts");
        Self { registry, server }
    }

    /// A codec with an empty cache, as a freshly started process has.
    fn codec(&self) -> AvroCodec {
        codec_for(&self.server.url(), None)
    }
}

fn config(url: &str) -> RegistryConfig {
    RegistryConfig {
        url: url.to_owned(),
        request_timeout: Duration::from_secs(5),
        ..RegistryConfig::default()
    }
}

fn codec_for(url: &str, auth: Option<(&str, &str)>) -> AvroCodec {
    let mut config = config(url);
    config.username = auth.map(|(user, _)| user.to_owned());
    let password = auth.map(|(_, password)| Secret::new(password));
    let client = RegistryClient::new(&config, password).expect("client builds");
    AvroCodec::new(client, config.cache_capacity).expect("embedded schemas load")
}

fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0];
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(datum);
    bytes
}

fn subject(kind: SchemaKind) -> String {
    default_subject(kind.default_topic())
}

async fn round_trip<T: AvroRecord + PartialEq + std::fmt::Debug>(
    writer_codec: &AvroCodec,
    reader_codec: &AvroCodec,
    record: T,
) {
    let writer = writer_codec
        .writer(T::KIND, &subject(T::KIND))
        .await
        .expect("schema registers");
    let bytes = writer.encode(&record).expect("record encodes");
    assert_eq!(bytes[0], 0);
    assert_eq!(bytes[1..5], writer.schema_id().to_be_bytes());
    let decoded: T = reader_codec.decode(&bytes).await.expect("record decodes");
    assert_eq!(decoded, record, "{}", T::KIND);
    // The writing process reads its own records without asking the registry.
    let own: T = writer_codec
        .decode_cached(&bytes)
        .expect("cached after writer()");
    assert_eq!(own, record);
}

#[tokio::test]
async fn every_record_type_round_trips_through_the_registry() {
    let sandbox = Sandbox::start().await;
    let writer = sandbox.codec();
    let reader = sandbox.codec();
    round_trip(&writer, &reader, examples::contact_changed()).await;
    round_trip(&writer, &reader, examples::company_changed()).await;
    round_trip(&writer, &reader, examples::activity_recorded()).await;
    round_trip(&writer, &reader, examples::hubspot_command()).await;
    round_trip(&writer, &reader, examples::sync_outcome()).await;
    round_trip(&writer, &reader, examples::dead_letter()).await;
    round_trip(&writer, &reader, examples::hubspot_change()).await;
    for kind in SchemaKind::ALL {
        assert_eq!(
            sandbox
                .registry
                .latest(&subject(kind))
                .map(|v| v.schema)
                .as_deref(),
            Ok(kind.source()),
            "{kind}"
        );
    }

    // A second writer() for the same subject does not register again.
    let before = sandbox.registry.request_count();
    let again = writer
        .writer(
            SchemaKind::ContactChanged,
            &subject(SchemaKind::ContactChanged),
        )
        .await
        .unwrap();
    assert_eq!(sandbox.registry.request_count(), before);
    let bytes = again.encode(&examples::contact_changed()).unwrap();
    let decoded: ContactChanged = writer.decode_cached(&bytes).unwrap();
    assert_eq!(decoded, examples::contact_changed());
}

/// `kind`'s schema with its fields edited.
fn edited_schema(kind: SchemaKind, edit: impl FnOnce(&mut Vec<Value>)) -> String {
    let mut schema: Value = serde_json::from_str(kind.source()).expect("embedded JSON");
    edit(schema["fields"].as_array_mut().expect("fields"));
    schema.to_string()
}

#[tokio::test]
async fn a_contact_written_with_an_older_schema_decodes_with_defaults() {
    let sandbox = Sandbox::start().await;
    let older = edited_schema(SchemaKind::ContactChanged, |fields| {
        fields.retain(|f| {
            !matches!(
                f["name"].as_str(),
                Some("phone" | "fields" | "changed_fields")
            )
        });
    });
    let id = sandbox
        .registry
        .register("legacy.contacts-value", &older)
        .expect("older schema registers");

    // What the older producer wrote: every field it knew, in its order.
    let contact = examples::contact_changed();
    let older_schema = apache_avro::Schema::parse_str(&older).unwrap();
    let record = apache_avro::types::Value::Record(vec![
        ("event_id".into(), contact.event_id.clone().into()),
        (
            "event_time".into(),
            apache_avro::types::Value::TimestampMillis(contact.event_time),
        ),
        ("team_id".into(), contact.team_id.clone().into()),
        ("contact_id".into(), contact.contact_id.clone().into()),
        (
            "change".into(),
            apache_avro::types::Value::Enum(1, "UPDATED".into()),
        ),
        (
            "actor".into(),
            apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null)),
        ),
        ("email".into(), optional(&contact.email)),
        ("linkedin_url".into(), optional(&contact.linkedin_url)),
        ("first_name".into(), optional(&contact.first_name)),
        ("last_name".into(), optional(&contact.last_name)),
        ("company_name".into(), optional(&contact.company_name)),
        ("company_domain".into(), optional(&contact.company_domain)),
        ("job_title".into(), optional(&contact.job_title)),
        ("owner_user_id".into(), optional(&contact.owner_user_id)),
        ("campaign_id".into(), optional(&contact.campaign_id)),
    ]);
    let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&older_schema)
        .build()
        .and_then(|w| w.write_value_to_vec(record))
        .expect("older record encodes");

    let codec = sandbox.codec();
    let decoded: ContactChanged = codec.decode(&framed(id, &datum)).await.expect("decodes");
    assert_eq!(
        decoded,
        ContactChanged {
            actor: None,
            phone: None,
            fields: Default::default(),
            changed_fields: Vec::new(),
            ..contact
        }
    );
}

fn optional(value: &Option<String>) -> apache_avro::types::Value {
    use apache_avro::types::Value as Avro;
    match value {
        Some(text) => Avro::Union(1, Box::new(Avro::String(text.clone()))),
        None => Avro::Union(0, Box::new(Avro::Null)),
    }
}

#[tokio::test]
async fn an_activity_type_from_a_newer_producer_decodes_as_unknown() {
    let sandbox = Sandbox::start().await;
    let newer = edited_schema(SchemaKind::ActivityRecorded, |fields| {
        for field in fields.iter_mut() {
            if field["name"] == "activity_type" {
                let symbols = field["type"]["symbols"].as_array_mut().unwrap();
                let unknown = symbols.len() - 1;
                symbols.insert(unknown, "WHATSAPP_MESSAGE_SENT".into());
            }
        }
        // A newer producer also sends a field this build does not know.
        fields.push(json!({
            "name": "channel", "type": ["null", "string"], "default": null,
            "doc": "Messaging channel."
        }));
    });
    let id = sandbox
        .registry
        .register("activities.v2-value", &newer)
        .expect("newer schema registers");

    // The newer producer's record: our example with the new symbol and the extra field set.
    let newer_schema = apache_avro::Schema::parse_str(&newer).unwrap();
    let ours = SchemaKind::ActivityRecorded.schema().unwrap();
    let mut bytes = &examples::activity_recorded().to_avro().unwrap()[..];
    let value = apache_avro::reader::datum::GenericDatumReader::builder(ours)
        .build()
        .and_then(|r| r.read_value(&mut bytes))
        .unwrap();
    let apache_avro::types::Value::Record(mut fields) = value else {
        panic!("a record");
    };
    let symbol = "WHATSAPP_MESSAGE_SENT";
    let position = ActivityType::ALL.len() - 1;
    for (name, value) in fields.iter_mut() {
        match name.as_str() {
            "activity_type" => {
                *value = apache_avro::types::Value::Enum(position as u32, symbol.into());
            }
            "activity_type_name" => *value = "whatsapp_message_sent".into(),
            _ => {}
        }
    }
    fields.push((
        "channel".into(),
        apache_avro::types::Value::Union(1, Box::new("whatsapp".into())),
    ));
    let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&newer_schema)
        .build()
        .and_then(|w| w.write_value_to_vec(apache_avro::types::Value::Record(fields)))
        .expect("newer record encodes");

    let codec = sandbox.codec();
    let decoded: ActivityRecorded = codec.decode(&framed(id, &datum)).await.expect("decodes");
    assert_eq!(decoded.activity_type, ActivityType::Unknown);
    assert_eq!(decoded.activity_type_name, "whatsapp_message_sent");
    assert_eq!(
        decoded,
        ActivityRecorded {
            activity_type: ActivityType::Unknown,
            activity_type_name: "whatsapp_message_sent".into(),
            ..examples::activity_recorded()
        }
    );
}

#[tokio::test]
async fn bad_records_fail_with_a_data_error() {
    let sandbox = Sandbox::start().await;
    let codec = sandbox.codec();

    let unknown = codec
        .decode::<ContactChanged>(&framed(9999, &[0]))
        .await
        .unwrap_err();
    assert_eq!(unknown, DecodeError::UnknownSchemaId(9999));
    assert_eq!(unknown.code().as_str(), "UNKNOWN_SCHEMA_ID");
    assert!(!unknown.is_retryable());

    for bytes in [&[][..], &[0, 0, 1][..], &b"{\"email\":\"x\"}"[..]] {
        let error = codec.decode::<ContactChanged>(bytes).await.unwrap_err();
        assert!(
            matches!(error, DecodeError::NotConfluentFramed(_)),
            "{bytes:?}: {error:?}"
        );
        assert_eq!(error.code().as_str(), "NOT_CONFLUENT_FRAMED");
    }

    let id = sandbox
        .registry
        .register(
            &subject(SchemaKind::ContactChanged),
            SchemaKind::ContactChanged.source(),
        )
        .unwrap();
    for datum in [&[][..], &[0xff; 12][..], &[0x02, b'a'][..]] {
        let error = codec
            .decode::<ContactChanged>(&framed(id, datum))
            .await
            .unwrap_err();
        assert!(
            matches!(error, DecodeError::Malformed { id: got, .. } if got == id),
            "{datum:?}: {error:?}"
        );
        assert_eq!(error.code().as_str(), "MALFORMED_AVRO");
    }

    // A company record on the contacts topic.
    let company_id = sandbox
        .registry
        .register(
            &subject(SchemaKind::CompanyChanged),
            SchemaKind::CompanyChanged.source(),
        )
        .unwrap();
    let company = framed(company_id, &examples::company_changed().to_avro().unwrap());
    let error = codec.decode::<ContactChanged>(&company).await.unwrap_err();
    assert!(
        matches!(error, DecodeError::Incompatible { .. }),
        "{error:?}"
    );
    assert_eq!(error.code().as_str(), "INCOMPATIBLE_SCHEMA");
    let (shown_id, shown) = codec
        .decode_value(&company)
        .await
        .expect("any payload shows");
    assert_eq!(shown_id, company_id);
    assert!(matches!(shown, apache_avro::types::Value::Record(_)));
}

#[tokio::test]
async fn the_registry_is_asked_once_per_schema_id() {
    let sandbox = Sandbox::start().await;
    let current = sandbox
        .registry
        .register(
            &subject(SchemaKind::ContactChanged),
            SchemaKind::ContactChanged.source(),
        )
        .unwrap();
    let older = edited_schema(SchemaKind::ContactChanged, |fields| {
        fields.retain(|f| f["name"] != "changed_fields");
    });
    let older_id = sandbox
        .registry
        .register("legacy.contacts-value", &older)
        .unwrap();
    let mut older_example = examples::contact_changed();
    older_example.changed_fields.clear();
    let older_datum = {
        let full = older_example.to_avro().unwrap();
        // The empty array is the last byte of the current encoding.
        full[..full.len() - 1].to_vec()
    };

    let codec = sandbox.codec();
    let before = sandbox.registry.request_count();
    let current_bytes = framed(current, &examples::contact_changed().to_avro().unwrap());
    let older_bytes = framed(older_id, &older_datum);
    assert!(matches!(
        codec.decode_cached::<ContactChanged>(&current_bytes),
        Err(DecodeError::NotCached(id)) if id == current
    ));
    for _ in 0..200 {
        let decoded: ContactChanged = codec.decode(&current_bytes).await.unwrap();
        assert_eq!(decoded, examples::contact_changed());
        let decoded: ContactChanged = codec.decode(&older_bytes).await.unwrap();
        assert_eq!(decoded, older_example);
    }
    // Many tasks missing the same id at once share one request.
    let fresh = sandbox.codec();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let codec = fresh.clone();
            let bytes = current_bytes.clone();
            tokio::spawn(async move { codec.decode::<ContactChanged>(&bytes).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(sandbox.registry.request_count() - before, 3);
    for _ in 0..200 {
        codec
            .decode_cached::<ContactChanged>(&current_bytes)
            .unwrap();
        codec.decode_cached::<ContactChanged>(&older_bytes).unwrap();
    }
    assert_eq!(sandbox.registry.request_count() - before, 3);
}

#[tokio::test]
async fn an_unavailable_registry_is_a_retryable_error() {
    let sandbox = Sandbox::start().await;
    let id = sandbox
        .registry
        .register(
            &subject(SchemaKind::ContactChanged),
            SchemaKind::ContactChanged.source(),
        )
        .unwrap();
    let bytes = framed(id, &examples::contact_changed().to_avro().unwrap());

    // Answering 503.
    sandbox.registry.set_available(false);
    let codec = sandbox.codec();
    let error = codec.decode::<ContactChanged>(&bytes).await.unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::Registry(RegistryError::Unavailable { .. })
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(error.code().as_str(), "REGISTRY_UNAVAILABLE");
    // Back again: the same codec recovers.
    sandbox.registry.set_available(true);
    let decoded: ContactChanged = codec.decode(&bytes).await.expect("decodes once back");
    assert_eq!(decoded, examples::contact_changed());

    // Stopped: nothing listens any more.
    let url = sandbox.server.url();
    sandbox.server.shutdown().await.expect("registry stops");
    let codec = codec_for(&url, None);
    let error = codec.decode::<ContactChanged>(&bytes).await.unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::Registry(RegistryError::Unavailable { .. })
        ),
        "{error:?}"
    );
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.code().as_str(), "REGISTRY_UNAVAILABLE");
}

/// A registry stand-in for what the sandbox does not do: authentication, refusals, slowness.
async fn stand_in(router: Router) -> RunningServer {
    RunningServer::spawn(router, loopback(0))
        .await
        .expect("stand-in starts")
}

fn confluent(status: StatusCode, body: Value) -> axum::response::Response {
    (
        status,
        [("content-type", "application/vnd.schemaregistry.v1+json")],
        body.to_string(),
    )
        .into_response()
}

#[tokio::test]
async fn basic_auth_is_sent_and_a_refusal_is_an_auth_problem() {
    // "svc-hubsync:s3cret" in base64.
    const EXPECTED: &str = "Basic c3ZjLWh1YnN5bmM6czNjcmV0";
    let router = Router::new().route(
        "/schemas/ids/{id}",
        get(|headers: HeaderMap| async move {
            let authorized = headers
                .get("authorization")
                .is_some_and(|v| v.as_bytes() == EXPECTED.as_bytes());
            if authorized {
                confluent(
                    StatusCode::OK,
                    json!({"schema": SchemaKind::ContactChanged.source()}),
                )
            } else {
                confluent(
                    StatusCode::UNAUTHORIZED,
                    json!({"error_code": 401, "message": "Unauthorized"}),
                )
            }
        }),
    );
    let server = stand_in(router).await;
    let bytes = framed(1, &examples::contact_changed().to_avro().unwrap());

    let codec = codec_for(&server.url(), Some(("svc-hubsync", "s3cret")));
    let decoded: ContactChanged = codec.decode(&bytes).await.expect("authorized");
    assert_eq!(decoded, examples::contact_changed());

    let codec = codec_for(&server.url(), Some(("svc-hubsync", "wrong")));
    let error = codec.decode::<ContactChanged>(&bytes).await.unwrap_err();
    assert!(!error.is_retryable());
    assert_eq!(error.code().as_str(), "REGISTRY_REJECTED");
    assert_eq!(error.class(), hubsync_schemas::ErrorClass::Auth);
    assert!(!error.to_string().contains("wrong"), "{error}");
}

#[tokio::test]
async fn a_registry_that_does_not_answer_in_time_is_retryable() {
    let router = Router::new().route(
        "/schemas/ids/{id}",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK
        }),
    );
    let server = stand_in(router).await;
    let mut config = config(&server.url());
    config.request_timeout = Duration::from_millis(200);
    let client = RegistryClient::new(&config, None).unwrap();
    let codec = AvroCodec::new(client, 10).unwrap();
    let error = codec
        .decode::<ContactChanged>(&framed(1, &[0]))
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(
        error.to_string().contains("no answer within 200ms"),
        "{error}"
    );
}

#[tokio::test]
async fn a_refused_registration_falls_back_to_the_identical_version() {
    let router = Router::new()
        .route(
            "/subjects/{subject}/versions",
            post(|| async {
                confluent(
                    StatusCode::FORBIDDEN,
                    json!({"error_code": 40301, "message": "User is denied operation Write on Subject"}),
                )
            }),
        )
        .route(
            "/subjects/{subject}",
            post(|body: String| async move {
                let request: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(request["schema"], SchemaKind::SyncOutcome.source());
                confluent(
                    StatusCode::OK,
                    json!({"subject": "hubsync.outcomes-value", "id": 42, "version": 3,
                           "schema": SchemaKind::SyncOutcome.source()}),
                )
            }),
        );
    let server = stand_in(router).await;
    let codec = codec_for(&server.url(), None);
    let writer = codec
        .writer(SchemaKind::SyncOutcome, "hubsync.outcomes-value")
        .await
        .expect("falls back to lookup");
    assert_eq!(writer.schema_id(), 42);
    let bytes = writer.encode(&examples::sync_outcome()).unwrap();
    assert_eq!(bytes[1..5], 42u32.to_be_bytes());
    assert_eq!(
        codec.decode_cached::<SyncOutcome>(&bytes).unwrap(),
        examples::sync_outcome()
    );
}

#[tokio::test]
async fn an_incompatible_subject_is_reported_with_what_to_do() {
    let sandbox = Sandbox::start().await;
    let subject = "hubsync.commands-value";
    // Someone registered a breaking schema under our subject.
    let breaking = edited_schema(SchemaKind::HubSpotCommand, |fields| {
        fields.push(json!({"name": "tenant", "type": "long", "doc": "Required."}));
    });
    sandbox
        .registry
        .set_subject_level(subject, CompatibilityLevel::None);
    sandbox.registry.register(subject, &breaking).unwrap();
    sandbox
        .registry
        .set_subject_level(subject, CompatibilityLevel::Forward);

    let codec = sandbox.codec();
    let error = codec
        .writer(SchemaKind::HubSpotCommand, subject)
        .await
        .unwrap_err();
    assert!(matches!(error, WriterError::Refused { .. }), "{error:?}");
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(
        message.contains("register schemas/HubSpotCommand.avsc"),
        "{message}"
    );
    assert!(message.contains("409"), "{message}");
}
