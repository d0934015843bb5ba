//! The sandbox schema registry over HTTP: every endpoint's status and body shape, and a round
//! trip through a real Confluent serializer (schema_registry_converter).

use hubsync_sandbox::registry::{CONTENT_TYPE, SchemaRegistry};
use hubsync_sandbox::server::{RunningServer, loopback};
use hubsync_schemas::{AvroRecord, ContactChanged, SchemaKind, default_subject, examples};
use reqwest::{Method, StatusCode};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde_json::{Value, json};

const V1: &str = r#"{"type":"record","name":"Order","namespace":"test","doc":"An order.","fields":[{"name":"id","type":"string"}]}"#;
/// V1 plus an optional field: backward and forward compatible with V1.
const V2: &str = r#"{"type":"record","name":"Order","namespace":"test","doc":"An order.","fields":[{"name":"id","type":"string"},{"name":"note","type":["null","string"],"default":null}]}"#;
/// V1 plus a required field: cannot read V1 data.
const V1_PLUS_REQUIRED: &str = r#"{"type":"record","name":"Order","namespace":"test","doc":"An order.","fields":[{"name":"id","type":"string"},{"name":"total","type":"long"}]}"#;
/// Unrelated to V1.
const OTHER: &str = r#"{"type":"record","name":"Refund","namespace":"test","fields":[{"name":"amount","type":"long"}]}"#;

struct Api {
    registry: SchemaRegistry,
    server: RunningServer,
    client: reqwest::Client,
}

impl Api {
    async fn start() -> Self {
        let registry = SchemaRegistry::new();
        let server = registry.serve(loopback(0)).await.expect("registry starts");
        Self {
            registry,
            server,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// Sends a request and returns the status and JSON body, checking the content type.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request
                .header("content-type", CONTENT_TYPE)
                .body(body.to_string());
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE), "{path}");
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        (status, json)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    async fn register(&self, subject: &str, schema: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/subjects/{subject}/versions"),
            json!({"schema": schema}),
        )
        .await
    }

    async fn register_ok(&self, subject: &str, schema: &str) -> u64 {
        let (status, body) = self.register(subject, schema).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["id"].as_u64().expect("id")
    }
}

fn error(code: u64, message: &str) -> Value {
    json!({"error_code": code, "message": message})
}

#[tokio::test]
async fn register_returns_an_id_and_is_idempotent() {
    let api = Api::start().await;
    let (status, body) = api.register("orders-value", V1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": 1}));

    // The same schema, formatted differently, is the same schema.
    let reformatted =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(V1).unwrap()).expect("pretty");
    assert_eq!(
        api.register("orders-value", &reformatted).await.1,
        json!({"id": 1})
    );
    assert_eq!(
        api.get("/subjects/orders-value/versions").await.1,
        json!([1])
    );

    assert_eq!(api.register("orders-value", V2).await.1, json!({"id": 2}));
    assert_eq!(
        api.get("/subjects/orders-value/versions").await.1,
        json!([1, 2])
    );
    // Registering an older version again returns its id without a new version.
    assert_eq!(api.register("orders-value", V1).await.1, json!({"id": 1}));
    assert_eq!(
        api.get("/subjects/orders-value/versions").await.1,
        json!([1, 2])
    );
}

#[tokio::test]
async fn ids_are_global_and_shared_across_subjects() {
    let api = Api::start().await;
    let first = api.register_ok("a-value", V1).await;
    let other = api.register_ok("b-value", OTHER).await;
    let same = api.register_ok("c-value", V1).await;
    assert_eq!(first, same, "the same schema has one id everywhere");
    assert_ne!(first, other);
    assert_eq!(
        api.get(&format!("/schemas/ids/{first}/versions")).await.1,
        json!([{"subject": "a-value", "version": 1}, {"subject": "c-value", "version": 1}])
    );
    assert_eq!(
        api.get(&format!("/schemas/ids/{first}/subjects")).await.1,
        json!(["a-value", "c-value"])
    );
}

#[tokio::test]
async fn request_bodies_are_json_whatever_the_content_type() {
    let api = Api::start().await;
    let body = json!({"schema": V1}).to_string();
    for (i, content_type) in [
        Some(CONTENT_TYPE),
        Some("application/vnd.schemaregistry+json"),
        Some("application/json"),
        Some("application/octet-stream"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let mut request = api
            .client
            .post(api.url(&format!("/subjects/s{i}/versions")))
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::OK, "{content_type:?}");
        let json: Value = response.json().await.expect("json");
        assert_eq!(json, json!({"id": 1}), "{content_type:?}");
    }

    let response = api
        .client
        .post(api.url("/subjects/s/versions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let json: Value = response.json().await.expect("json");
    assert_eq!(json["error_code"], 400);
}

#[tokio::test]
async fn an_incompatible_schema_is_409() {
    let api = Api::start().await;
    api.register_ok("orders-value", V1).await;
    let (status, body) = api.register("orders-value", V1_PLUS_REQUIRED).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error_code"], 409);
    let message = body["message"].as_str().expect("message");
    assert!(
        message.starts_with(
            "Schema being registered is incompatible with an earlier schema for subject \"orders-value\""
        ),
        "{message}"
    );
    assert!(message.contains("total"), "names the field: {message}");
    assert_eq!(
        api.get("/subjects/orders-value/versions").await.1,
        json!([1])
    );
}

#[tokio::test]
async fn an_unparsable_schema_is_422() {
    let api = Api::start().await;
    let (status, body) = api
        .register(
            "s",
            r#"{"type":"record","name":"X","fields":[{"name":"a","type":"strin"}]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error_code"], 42201);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid schema")
    );

    let (status, body) = api.register("s", "not json at all").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error_code"], 42201);

    let (status, body) = api.post("/subjects/s/versions", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error_code"], 42201);
    assert_eq!(api.get("/subjects").await.1, json!([]));
}

#[tokio::test]
async fn only_avro_is_accepted() {
    let api = Api::start().await;
    let (status, body) = api
        .post(
            "/subjects/s/versions",
            json!({"schema": "syntax = \"proto3\"; message M {}", "schemaType": "PROTOBUF"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error_code"], 42201);

    let (status, _) = api
        .post(
            "/subjects/s/versions",
            json!({"schema": V1, "schemaType": "AVRO", "references": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = api
        .post(
            "/subjects/t/versions",
            json!({"schema": V1, "references": [{"name": "x", "subject": "s", "version": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error_code"], 42201);

    assert_eq!(
        api.get("/schemas/types").await,
        (StatusCode::OK, json!(["AVRO"]))
    );
}

#[tokio::test]
async fn lookup_finds_a_schema_under_a_subject() {
    let api = Api::start().await;
    api.register_ok("orders-value", V1).await;
    api.register_ok("orders-value", V2).await;

    let (status, body) = api
        .post("/subjects/orders-value", json!({"schema": V2}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"subject": "orders-value", "id": 2, "version": 2, "schema": V2})
    );

    let (status, body) = api.post("/subjects/nope", json!({"schema": V1})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, error(40401, "Subject 'nope' not found."));

    let (status, body) = api
        .post("/subjects/orders-value", json!({"schema": OTHER}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, error(40403, "Schema not found"));
}

#[tokio::test]
async fn schemas_by_id() {
    let api = Api::start().await;
    let id = api.register_ok("orders-value", V1).await;

    assert_eq!(
        api.get(&format!("/schemas/ids/{id}")).await,
        (StatusCode::OK, json!({"schema": V1}))
    );
    assert_eq!(
        api.get(&format!("/schemas/ids/{id}?deleted=true")).await,
        (StatusCode::OK, json!({"schema": V1}))
    );
    assert_eq!(
        api.get(&format!("/schemas/ids/{id}/versions")).await,
        (
            StatusCode::OK,
            json!([{"subject": "orders-value", "version": 1}])
        )
    );
    assert_eq!(
        api.get("/schemas/ids/99").await,
        (StatusCode::NOT_FOUND, error(40403, "Schema 99 not found"))
    );
    assert_eq!(
        api.get("/schemas/ids/99/versions").await,
        (StatusCode::NOT_FOUND, error(40403, "Schema 99 not found"))
    );
}

#[tokio::test]
async fn subjects_and_versions() {
    let api = Api::start().await;
    assert_eq!(api.get("/subjects").await, (StatusCode::OK, json!([])));
    api.register_ok("orders-value", V1).await;
    api.register_ok("orders-value", V2).await;
    api.register_ok("refunds-value", OTHER).await;

    assert_eq!(
        api.get("/subjects").await,
        (StatusCode::OK, json!(["orders-value", "refunds-value"]))
    );
    assert_eq!(
        api.get("/subjects/orders-value/versions").await,
        (StatusCode::OK, json!([1, 2]))
    );
    assert_eq!(
        api.get("/subjects/nope/versions").await,
        (
            StatusCode::NOT_FOUND,
            error(40401, "Subject 'nope' not found.")
        )
    );

    let v1 = json!({"subject": "orders-value", "id": 1, "version": 1, "schema": V1});
    let v2 = json!({"subject": "orders-value", "id": 2, "version": 2, "schema": V2});
    assert_eq!(
        api.get("/subjects/orders-value/versions/1").await,
        (StatusCode::OK, v1)
    );
    assert_eq!(
        api.get("/subjects/orders-value/versions/latest").await,
        (StatusCode::OK, v2.clone())
    );
    assert_eq!(
        api.get("/subjects/orders-value/versions/-1").await,
        (StatusCode::OK, v2)
    );

    assert_eq!(
        api.get("/subjects/nope/versions/1").await,
        (
            StatusCode::NOT_FOUND,
            error(40401, "Subject 'nope' not found.")
        )
    );
    assert_eq!(
        api.get("/subjects/orders-value/versions/7").await,
        (StatusCode::NOT_FOUND, error(40402, "Version 7 not found."))
    );
    // Subjects with a slash travel percent-encoded, as serializers send them.
    assert_eq!(api.register_ok("team%2Forders-value", OTHER).await, 3);
    assert_eq!(
        api.get("/subjects/team%2Forders-value/versions/1").await.1["subject"],
        "team/orders-value"
    );

    for bad in ["one", "0", "-5"] {
        let (status, body) = api
            .get(&format!("/subjects/orders-value/versions/{bad}"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(body["error_code"], 42202, "{bad}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "The specified version '{bad}' is not a valid version id."
            )),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_version_schema_alone() {
    let api = Api::start().await;
    api.register_ok("orders-value", V1).await;
    let response = api
        .client
        .get(api.url("/subjects/orders-value/versions/latest/schema"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("text"), V1);

    assert_eq!(
        api.get("/subjects/orders-value/versions/2/schema").await,
        (StatusCode::NOT_FOUND, error(40402, "Version 2 not found."))
    );
}

#[tokio::test]
async fn subjects_are_soft_deleted_then_permanently() {
    let api = Api::start().await;
    let id = api.register_ok("orders-value", V1).await;
    api.register_ok("orders-value", V2).await;
    api.register_ok("refunds-value", OTHER).await;

    assert_eq!(
        api.delete("/subjects/orders-value?permanent=true").await,
        (
            StatusCode::NOT_FOUND,
            error(
                40405,
                "Subject 'orders-value' was not deleted first before being permanently deleted"
            )
        )
    );
    assert_eq!(
        api.delete("/subjects/orders-value").await,
        (StatusCode::OK, json!([1, 2]))
    );
    assert_eq!(api.get("/subjects").await.1, json!(["refunds-value"]));
    assert_eq!(
        api.get("/subjects?deleted=true").await.1,
        json!(["orders-value", "refunds-value"])
    );
    assert_eq!(
        api.get("/subjects/orders-value/versions/latest").await,
        (
            StatusCode::NOT_FOUND,
            error(40401, "Subject 'orders-value' not found.")
        )
    );
    // Old records stay decodable: decoders ask for deleted schemas too.
    assert_eq!(
        api.get(&format!("/schemas/ids/{id}?deleted=true")).await,
        (StatusCode::OK, json!({"schema": V1}))
    );
    assert_eq!(
        api.get(&format!("/schemas/ids/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.delete("/subjects/orders-value").await.1["error_code"],
        40404
    );
    assert_eq!(
        api.delete("/subjects/orders-value?permanent=true").await,
        (StatusCode::OK, json!([1, 2]))
    );
    assert_eq!(
        api.delete("/subjects/orders-value").await,
        (
            StatusCode::NOT_FOUND,
            error(40401, "Subject 'orders-value' not found.")
        )
    );
    // Registering again starts a new history, and the schema keeps its id.
    assert_eq!(api.register_ok("orders-value", V1).await, id);
    assert_eq!(
        api.get("/subjects/orders-value/versions").await.1,
        json!([1])
    );
}

#[tokio::test]
async fn compatibility_checks() {
    let api = Api::start().await;
    api.register_ok("orders-value", V1).await;

    let check = |version: &'static str, schema: &'static str, verbose: bool| {
        let api = &api;
        async move {
            let query = if verbose { "?verbose=true" } else { "" };
            api.post(
                &format!("/compatibility/subjects/orders-value/versions/{version}{query}"),
                json!({"schema": schema}),
            )
            .await
        }
    };

    assert_eq!(
        check("latest", V2, false).await,
        (StatusCode::OK, json!({"is_compatible": true}))
    );
    assert_eq!(
        check("1", V1_PLUS_REQUIRED, false).await,
        (StatusCode::OK, json!({"is_compatible": false}))
    );
    let (status, body) = check("latest", V1_PLUS_REQUIRED, true).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["is_compatible"], false);
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].as_str().unwrap().contains("total"),
        "{messages:?}"
    );
    assert_eq!(
        check("latest", V2, true).await.1,
        json!({"is_compatible": true, "messages": []})
    );

    let (status, body) = check("9", V2, false).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, error(40402, "Version 9 not found."))
    );
    assert_eq!(check("x", V2, false).await.1["error_code"], 42202);
    let (status, body) = api
        .post(
            "/compatibility/subjects/nope/versions/latest",
            json!({"schema": V1}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            error(40401, "Subject 'nope' not found.")
        )
    );
    assert_eq!(check("latest", "{", false).await.1["error_code"], 42201);

    // Against the subject's level, without naming a version.
    let (status, body) = api
        .post(
            "/compatibility/subjects/orders-value/versions",
            json!({"schema": V1_PLUS_REQUIRED}),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"is_compatible": false}))
    );
}

#[tokio::test]
async fn every_compatibility_level_is_enforced() {
    // (level, schema after V1, accepted?)
    let cases = [
        ("NONE", V1_PLUS_REQUIRED, true),
        ("NONE", OTHER, true),
        ("BACKWARD", V2, true),
        ("BACKWARD", V1_PLUS_REQUIRED, false),
        ("BACKWARD_TRANSITIVE", V1_PLUS_REQUIRED, false),
        // Old readers ignore the new required field, so it is forward compatible.
        ("FORWARD", V1_PLUS_REQUIRED, true),
        ("FORWARD_TRANSITIVE", V2, true),
        ("FULL", V2, true),
        ("FULL", V1_PLUS_REQUIRED, false),
        ("FULL_TRANSITIVE", V2, true),
        ("FULL_TRANSITIVE", OTHER, false),
    ];
    for (level, schema, accepted) in cases {
        let api = Api::start().await;
        api.register_ok("s", V1).await;
        let (status, _) = api.put("/config/s", json!({"compatibility": level})).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = api.register("s", schema).await;
        assert_eq!(status == StatusCode::OK, accepted, "{level}: {body}");
    }

    // Transitive levels look past the latest version.
    let api = Api::start().await;
    api.put("/config", json!({"compatibility": "NONE"})).await;
    api.register_ok("s", V1).await;
    api.register_ok("s", OTHER).await;
    api.put("/config/s", json!({"compatibility": "BACKWARD"}))
        .await;
    let refund_v2 = r#"{"type":"record","name":"Refund","namespace":"test","fields":[{"name":"amount","type":"long"},{"name":"why","type":["null","string"],"default":null}]}"#;
    let (status, _) = api
        .post(
            "/compatibility/subjects/s/versions",
            json!({"schema": refund_v2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    api.put("/config/s", json!({"compatibility": "BACKWARD_TRANSITIVE"}))
        .await;
    let (_, body) = api
        .post(
            "/compatibility/subjects/s/versions",
            json!({"schema": refund_v2}),
        )
        .await;
    assert_eq!(body, json!({"is_compatible": false}));
    assert_eq!(api.register("s", refund_v2).await.0, StatusCode::CONFLICT);
}

#[tokio::test]
async fn global_and_subject_config() {
    let api = Api::start().await;
    assert_eq!(
        api.get("/config").await,
        (StatusCode::OK, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(
        api.put("/config", json!({"compatibility": "FULL"})).await,
        (StatusCode::OK, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        api.get("/config").await.1,
        json!({"compatibilityLevel": "FULL"})
    );

    assert_eq!(
        api.get("/config/orders-value").await,
        (
            StatusCode::NOT_FOUND,
            error(
                40408,
                "Subject 'orders-value' does not have subject-level compatibility configured"
            )
        )
    );
    assert_eq!(
        api.get("/config/orders-value?defaultToGlobal=true").await,
        (StatusCode::OK, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(
        api.put("/config/orders-value", json!({"compatibility": "none"}))
            .await,
        (StatusCode::OK, json!({"compatibility": "NONE"}))
    );
    assert_eq!(
        api.get("/config/orders-value").await,
        (StatusCode::OK, json!({"compatibilityLevel": "NONE"}))
    );
    assert_eq!(
        api.delete("/config/orders-value").await,
        (StatusCode::OK, json!({"compatibilityLevel": "NONE"}))
    );
    assert_eq!(api.get("/config/orders-value").await.1["error_code"], 40408);

    for path in ["/config", "/config/orders-value"] {
        let (status, body) = api.put(path, json!({"compatibility": "SIDEWAYS"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(body["error_code"], 42203, "{path}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid compatibility level"),
            "{path}"
        );
    }
    assert_eq!(
        api.get("/config").await.1,
        json!({"compatibilityLevel": "FULL"})
    );
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let api = Api::start().await;
    assert_eq!(
        api.get("/nope").await,
        (StatusCode::NOT_FOUND, error(404, "HTTP 404 Not Found"))
    );
    assert_eq!(
        api.get("/schemas/ids/abc").await,
        (StatusCode::NOT_FOUND, error(404, "HTTP 404 Not Found"))
    );
    assert_eq!(
        api.delete("/schemas/types").await,
        (
            StatusCode::METHOD_NOT_ALLOWED,
            error(405, "HTTP 405 Method Not Allowed")
        )
    );
    assert_eq!(api.get("/").await, (StatusCode::OK, json!({})));
}

#[tokio::test]
async fn an_outage_answers_503_until_it_ends() {
    let api = Api::start().await;
    api.register_ok("s", V1).await;
    api.registry.set_available(false);
    let (status, body) = api.get("/schemas/ids/1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error_code"], 50003);
    api.registry.set_available(true);
    assert_eq!(api.get("/schemas/ids/1").await.0, StatusCode::OK);
    assert_eq!(api.registry.request_count(), 3);
}

#[tokio::test]
async fn registers_every_hubsync_schema() {
    let api = Api::start().await;
    let mut ids = Vec::new();
    for kind in SchemaKind::ALL {
        let subject = default_subject(kind.default_topic());
        let id = api.register_ok(&subject, kind.source()).await;
        ids.push(id);
        assert_eq!(
            api.get(&format!("/schemas/ids/{id}")).await.1,
            json!({"schema": kind.source()}),
            "{kind}"
        );
        assert_eq!(
            api.get(&format!("/subjects/{subject}/versions/latest"))
                .await
                .1,
            json!({"subject": subject, "id": id, "version": 1, "schema": kind.source()})
        );
    }
    assert_eq!(ids, (1..=7).collect::<Vec<u64>>());
    // A second deployment registering the same schemas changes nothing.
    for (kind, id) in SchemaKind::ALL.into_iter().zip(&ids) {
        let subject = default_subject(kind.default_topic());
        assert_eq!(
            api.register_ok(&subject, kind.source()).await,
            *id,
            "{kind}"
        );
    }
    assert_eq!(
        api.get("/subjects").await.1.as_array().map(Vec::len),
        Some(7)
    );
    // The in-process API agrees with HTTP.
    assert_eq!(
        api.registry.register(
            "crm.contact.changes-value",
            SchemaKind::ContactChanged.source()
        ),
        Ok(1)
    );
}

#[tokio::test]
async fn confluent_serializer_round_trip() {
    let api = Api::start().await;
    let topic = "crm.contact.changes";
    let subject = default_subject(topic);
    assert_eq!(subject, "crm.contact.changes-value");
    api.register_ok("unrelated-value", OTHER).await;
    let id = api
        .registry
        .register(&subject, SchemaKind::ContactChanged.source())
        .expect("registers");
    assert_eq!(id, 2);

    let settings = SrSettings::new(api.server.url());
    let encoder = AvroEncoder::new(settings.clone());
    let contact = examples::contact_changed();
    let strategy = SubjectNameStrategy::TopicNameStrategy(topic.to_owned(), false);
    let bytes = encoder
        .encode_struct(&contact, &strategy)
        .await
        .expect("encodes");

    // Confluent wire format: magic byte 0, big-endian schema id, then the Avro datum.
    assert_eq!(bytes[0], 0);
    assert_eq!(
        u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]),
        id
    );
    assert_eq!(&bytes[5..], contact.to_avro().expect("encodes").as_slice());

    let decoder = AvroDecoder::new(settings.clone());
    let decoded = decoder.decode(Some(&bytes)).await.expect("decodes");
    assert_eq!(
        decoded.name.map(|n| n.fullname(None)),
        Some("io.hubsync.ContactChanged".to_owned())
    );
    let back: ContactChanged = apache_avro::from_value(&decoded.value).expect("from value");
    assert_eq!(back, contact);

    // A producer that brings its own schema registers it and gets the same id.
    let supplied = SuppliedSchema::new(
        Some(SchemaKind::ContactChanged.full_name()),
        SchemaType::Avro,
        SchemaKind::ContactChanged.source().to_owned(),
    );
    let strategy =
        SubjectNameStrategy::TopicNameStrategyWithSchema(topic.to_owned(), false, supplied);
    let fresh = AvroEncoder::new(settings);
    let again = fresh
        .encode_struct(&contact, &strategy)
        .await
        .expect("encodes with a supplied schema");
    assert_eq!(again, bytes);
    assert_eq!(
        api.get(&format!("/subjects/{subject}/versions")).await.1,
        json!([1])
    );
}
