//! The HubSpot sandbox over HTTP: one test per behaviour in the HubSpot API facts the sandbox
//! follows, request in, exact status and body shape out. Rate-limit windows run on a manual clock.

use std::time::Duration;

use hubsync_hubspot::Tier;
use hubsync_sandbox::clock::Clock;
use hubsync_sandbox::hubspot::faults::Faults;
use hubsync_sandbox::hubspot::ratelimit::Limits;
use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, HubSpotSandbox, SandboxOptions, TokenState};
use hubsync_sandbox::server::{RunningServer, loopback};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

struct Api {
    sandbox: HubSpotSandbox,
    server: RunningServer,
    http: reqwest::Client,
    token: String,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn start_with(options: SandboxOptions) -> Api {
    let sandbox = HubSpotSandbox::new(options);
    let server = sandbox.serve(loopback(0)).await.expect("serve");
    Api {
        sandbox,
        server,
        http: reqwest::Client::new(),
        token: DEFAULT_TOKEN.to_string(),
    }
}

async fn start() -> Api {
    start_with(SandboxOptions {
        clock: Clock::manual(T0),
        search_index_lag: Duration::from_secs(5),
        ..SandboxOptions::default()
    })
    .await
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(Some(&self.token), method, path, body).await
    }

    async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.server.url(), path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn create_contact(&self, email: &str) -> String {
        let answer = self
            .post(
                "/crm/v3/objects/contacts",
                json!({"properties": {"email": email}}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["id"].as_str().expect("id").to_string()
    }

    async fn create_company(&self, domain: &str) -> String {
        let answer = self
            .post(
                "/crm/v3/objects/companies",
                json!({"properties": {"domain": domain, "name": domain}}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["id"].as_str().expect("id").to_string()
    }

    fn advance(&self, ms: u64) {
        assert!(self.sandbox.clock().advance(Duration::from_millis(ms)));
    }

    fn set_limits(&self, limits: Limits) {
        let mut settings = self.sandbox.settings();
        settings.limits = limits;
        self.sandbox.apply_settings(settings);
    }
}

fn assert_error_shape(answer: &Answer, status: StatusCode, category: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["status"], "error", "{}", answer.body);
    assert_eq!(answer.body["category"], category, "{}", answer.body);
    let correlation = answer.body["correlationId"]
        .as_str()
        .expect("correlationId");
    assert!(uuid::Uuid::parse_str(correlation).is_ok(), "{correlation}");
    assert_eq!(answer.header("x-hubspot-correlation-id"), Some(correlation));
    assert!(answer.body["message"].is_string());
}

fn many_contacts(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| json!({"properties": {"email": format!("c{i}@example.org")}}))
        .collect()
}

// ----- auth -----

#[tokio::test]
async fn missing_or_unknown_token_gets_401_invalid_authentication() {
    let api = start().await;
    for token in [None, Some("pat-na1-wrong")] {
        let answer = api
            .call_as(token, Method::GET, "/crm/v3/objects/contacts", None)
            .await;
        assert_error_shape(&answer, StatusCode::UNAUTHORIZED, "INVALID_AUTHENTICATION");
        assert!(
            answer.body["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("Authentication credentials not found")
        );
    }
}

#[tokio::test]
async fn revoked_then_restored_token() {
    let api = start().await;
    api.sandbox.set_token(DEFAULT_TOKEN, TokenState::Revoked);
    let answer = api.get("/crm/v3/objects/contacts").await;
    assert_error_shape(&answer, StatusCode::UNAUTHORIZED, "INVALID_AUTHENTICATION");
    // Through the admin API, as a test of a running pipeline would.
    let restore = api
        .call_as(
            None,
            Method::PUT,
            &format!("/__admin/tokens/{DEFAULT_TOKEN}"),
            Some(json!({"state": "valid"})),
        )
        .await;
    assert_eq!(restore.status, StatusCode::OK);
    assert_eq!(
        api.get("/crm/v3/objects/contacts").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_token_and_missing_scopes() {
    let api = start().await;
    api.sandbox.set_token(DEFAULT_TOKEN, TokenState::Expired);
    let answer = api.get("/crm/v3/objects/contacts").await;
    assert_error_shape(&answer, StatusCode::UNAUTHORIZED, "EXPIRED_AUTHENTICATION");
    api.sandbox.set_token(
        DEFAULT_TOKEN,
        TokenState::MissingScopes {
            scopes: vec!["crm.objects.contacts.write".into()],
        },
    );
    let answer = api.get("/crm/v3/objects/contacts").await;
    assert_error_shape(&answer, StatusCode::FORBIDDEN, "MISSING_SCOPES");
    assert_eq!(
        answer.body["context"]["missingScopes"][0],
        "crm.objects.contacts.write"
    );
}

// ----- single objects -----

#[tokio::test]
async fn single_object_create_read_update_archive() {
    let api = start().await;
    let created = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "Ada@Example.com", "firstname": "Ada", "lifecyclestage": "lead"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert_eq!(created.body["properties"]["email"], "ada@example.com");
    assert_eq!(created.body["properties"]["hs_object_id"], id.as_str());
    assert_eq!(created.body["archived"], false);
    assert!(
        created.body["createdAt"]
            .as_str()
            .expect("createdAt")
            .ends_with('Z')
    );
    assert!(created.header("x-hubspot-ratelimit-remaining").is_some());

    let by_email = api.get("/crm/v3/objects/contacts/ada@example.com?idProperty=email&properties=firstname,jobtitle").await;
    assert_eq!(by_email.status, StatusCode::OK);
    assert_eq!(by_email.body["id"], id.as_str());
    assert_eq!(
        by_email.body["properties"],
        json!({"firstname": "Ada", "jobtitle": null})
    );

    api.advance(60_000);
    let patched = api
        .call(
            Method::PATCH,
            &format!("/crm/v3/objects/contacts/{id}"),
            Some(json!({"properties": {"firstname": ""}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    // An empty string clears the value; the modification stamp moves.
    assert_eq!(patched.body["properties"]["firstname"], Value::Null);
    assert_ne!(patched.body["createdAt"], patched.body["updatedAt"]);
    assert_eq!(
        patched.body["properties"]["lastmodifieddate"],
        patched.body["updatedAt"]
    );

    let archived = api
        .call(
            Method::DELETE,
            &format!("/crm/v3/objects/contacts/{id}"),
            None,
        )
        .await;
    assert_eq!(archived.status, StatusCode::NO_CONTENT);
    let gone = api.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_error_shape(&gone, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND");
}

#[tokio::test]
async fn list_pages_with_after() {
    let api = start().await;
    for i in 0..5 {
        api.create_contact(&format!("p{i}@example.org")).await;
    }
    let first = api.get("/crm/v3/objects/contacts?limit=3").await;
    assert_eq!(first.body["results"].as_array().map(Vec::len), Some(3));
    let after = first.body["paging"]["next"]["after"]
        .as_str()
        .expect("after")
        .to_string();
    let second = api
        .get(&format!("/crm/v3/objects/contacts?limit=3&after={after}"))
        .await;
    assert_eq!(second.body["results"].as_array().map(Vec::len), Some(2));
    assert!(second.body.get("paging").is_none());
}

#[tokio::test]
async fn duplicate_email_create_is_a_409_conflict_naming_the_existing_id() {
    let api = start().await;
    let id = api.create_contact("dup@example.org").await;
    let answer = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "DUP@example.org"}}),
        )
        .await;
    assert_error_shape(&answer, StatusCode::CONFLICT, "CONFLICT");
    assert_eq!(
        answer.body["message"],
        format!("Contact already exists. Existing ID: {id}")
    );
}

#[tokio::test]
async fn invalid_option_unknown_property_invalid_email_and_read_only_are_validation_errors() {
    let api = start().await;
    let cases = [
        (
            json!({"email": "x@example.org", "lifecyclestage": "Lead"}),
            "INVALID_OPTION",
            "lifecyclestage",
        ),
        (
            json!({"email": "x@example.org", "favourite_colour": "blue"}),
            "PROPERTY_DOESNT_EXIST",
            "favourite_colour",
        ),
        (json!({"email": "not an email"}), "INVALID_EMAIL", "email"),
        (
            json!({"email": "x@example.org", "hs_object_id": "1"}),
            "READ_ONLY_VALUE",
            "hs_object_id",
        ),
    ];
    for (properties, code, name) in cases {
        let answer = api
            .post(
                "/crm/v3/objects/contacts",
                json!({"properties": properties}),
            )
            .await;
        assert_error_shape(&answer, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        let message = answer.body["message"].as_str().expect("message");
        let list = message
            .strip_prefix("Property values were not valid: ")
            .unwrap_or_else(|| panic!("unexpected message {message}"));
        let parsed: Value = serde_json::from_str(list).expect("json list in message");
        assert_eq!(parsed[0]["isValid"], false);
        assert_eq!(parsed[0]["error"], code);
        assert_eq!(parsed[0]["name"], name);
    }
    let answer = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "x@example.org", "lifecyclestage": "Lead"}}),
        )
        .await;
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("Lead was not one of the allowed options: [subscriber, lead,")
    );
    assert_eq!(
        api.sandbox
            .count(hubsync_sandbox::hubspot::model::ObjectType::Contacts),
        0
    );
}

#[tokio::test]
async fn unknown_object_type_and_invalid_json() {
    let api = start().await;
    let answer = api.get("/crm/v3/objects/tickets_x").await;
    assert_error_shape(&answer, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(
        answer.body["message"],
        "Unable to infer object type from: tickets_x"
    );
    let response = api
        .http
        .post(format!("{}/crm/v3/objects/contacts", api.server.url()))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{\"properties\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Invalid input JSON")
    );
}

// ----- batch -----

#[tokio::test]
async fn batch_create_succeeds_with_201_and_echoes_trace_ids() {
    let api = start().await;
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"properties": {"email": "a@example.org"}, "objectWriteTraceId": "evt-1"},
                {"properties": {"email": "b@example.org"}, "objectWriteTraceId": "evt-2"}
            ]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.body["status"], "COMPLETE");
    for key in ["requestedAt", "startedAt", "completedAt"] {
        assert!(answer.body[key].is_string(), "{key}");
    }
    let traces: Vec<&str> = answer.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["objectWriteTraceId"].as_str())
        .collect();
    assert_eq!(traces, ["evt-1", "evt-2"]);
    assert!(answer.body.get("errors").is_none());
}

#[tokio::test]
async fn batch_with_a_bad_input_is_207_when_every_input_is_traced() {
    let api = start().await;
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"properties": {"email": "good@example.org"}, "objectWriteTraceId": "evt-1"},
                {"properties": {"email": "bad@example.org", "lifecyclestage": "LEAD"}, "objectWriteTraceId": "evt-2"}
            ]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::MULTI_STATUS);
    assert_eq!(answer.body["numErrors"], 1);
    assert_eq!(answer.body["results"].as_array().map(Vec::len), Some(1));
    let error = &answer.body["errors"][0];
    assert_eq!(error["status"], "error");
    assert_eq!(error["category"], "VALIDATION_ERROR");
    assert_eq!(error["context"]["objectWriteTraceId"], json!(["evt-2"]));
    assert_eq!(error["errors"][0]["code"], "INVALID_OPTION");
}

#[tokio::test]
async fn batch_with_a_bad_input_fails_as_a_whole_without_trace_ids() {
    let api = start().await;
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"properties": {"email": "good@example.org"}},
                {"properties": {"email": "bad@example.org", "lifecyclestage": "LEAD"}}
            ]}),
        )
        .await;
    assert_error_shape(&answer, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(
        api.sandbox
            .count(hubsync_sandbox::hubspot::model::ObjectType::Contacts),
        0
    );
}

#[tokio::test]
async fn batch_create_conflict_fails_as_a_whole_naming_only_the_first() {
    let api = start().await;
    let first = api.create_contact("one@example.org").await;
    api.create_contact("two@example.org").await;
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"properties": {"email": "new@example.org"}, "objectWriteTraceId": "a"},
                {"properties": {"email": "one@example.org"}, "objectWriteTraceId": "b"},
                {"properties": {"email": "two@example.org"}, "objectWriteTraceId": "c"}
            ]}),
        )
        .await;
    assert_error_shape(&answer, StatusCode::CONFLICT, "CONFLICT");
    assert_eq!(
        answer.body["message"],
        format!("Contact already exists. Existing ID: {first}")
    );
    assert_eq!(
        api.sandbox
            .count(hubsync_sandbox::hubspot::model::ObjectType::Contacts),
        2
    );
}

#[tokio::test]
async fn more_than_100_inputs_is_refused() {
    let api = start().await;
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": many_contacts(101)}),
        )
        .await;
    assert_error_shape(&answer, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": many_contacts(100)}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
}

#[tokio::test]
async fn duplicate_ids_in_one_batch_are_refused() {
    let api = start().await;
    let id = api.create_contact("d@example.org").await;
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [
                {"id": id, "properties": {"firstname": "A"}},
                {"id": id, "properties": {"firstname": "B"}}
            ]}),
        )
        .await;
    assert_error_shape(&answer, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("Duplicate IDs found in batch input")
    );
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": [
                {"id": "x@example.org", "idProperty": "email", "properties": {}},
                {"id": "X@example.org", "idProperty": "email", "properties": {}}
            ]}),
        )
        .await;
    assert_error_shape(&answer, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

#[tokio::test]
async fn batch_update_reports_missing_ids() {
    let api = start().await;
    let id = api.create_contact("u@example.org").await;
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [
                {"id": id, "properties": {"jobtitle": "CTO"}, "objectWriteTraceId": "t1"},
                {"id": "999999", "properties": {"jobtitle": "CEO"}, "objectWriteTraceId": "t2"}
            ]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::MULTI_STATUS);
    assert_eq!(answer.body["results"][0]["properties"]["jobtitle"], "CTO");
    assert_eq!(answer.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(
        answer.body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["t2"])
    );
}

#[tokio::test]
async fn batch_upsert_by_email_reports_new_and_existing() {
    let api = start().await;
    let existing = api.create_contact("old@example.org").await;
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": [
                {"id": "OLD@example.org", "idProperty": "email", "properties": {"firstname": "Old"}, "objectWriteTraceId": "1"},
                {"id": "fresh@example.org", "idProperty": "email", "properties": {"firstname": "Fresh"}, "objectWriteTraceId": "2"}
            ]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let results = answer.body["results"].as_array().expect("results");
    assert_eq!(results[0]["id"], existing.as_str());
    assert_eq!(results[0]["new"], false);
    assert_eq!(results[1]["new"], true);
    assert_eq!(results[1]["properties"]["email"], "fresh@example.org");
}

#[tokio::test]
async fn batch_upsert_with_a_bad_input_fails_whole_unless_partial_upserts_are_on() {
    let body = json!({"inputs": [
        {"id": "ok@example.org", "idProperty": "email", "properties": {}, "objectWriteTraceId": "1"},
        {"id": "broken", "idProperty": "email", "properties": {}, "objectWriteTraceId": "2"}
    ]});
    let strict = start().await;
    let answer = strict
        .post("/crm/v3/objects/contacts/batch/upsert", body.clone())
        .await;
    assert_error_shape(&answer, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("INVALID_EMAIL")
    );

    let lenient = start_with(SandboxOptions {
        clock: Clock::manual(T0),
        partial_upserts: true,
        ..SandboxOptions::default()
    })
    .await;
    let answer = lenient
        .post("/crm/v3/objects/contacts/batch/upsert", body)
        .await;
    assert_eq!(answer.status, StatusCode::MULTI_STATUS);
    assert_eq!(
        answer.body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["2"])
    );
}

#[tokio::test]
async fn batch_read_with_missing_ids_is_207_with_results_and_errors() {
    let api = start().await;
    let id = api.create_contact("r@example.org").await;
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": id}, {"id": "123456789"}], "properties": ["email", "hubspot_owner_id"]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::MULTI_STATUS);
    assert_eq!(
        answer.body["results"][0]["properties"],
        json!({"email": "r@example.org", "hubspot_owner_id": null})
    );
    assert_eq!(answer.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(
        answer.body["errors"][0]["context"]["ids"],
        json!(["123456789"])
    );
    assert_eq!(
        answer.body["errors"][0]["message"],
        "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."
    );
    // By email, and the lower limit for propertiesWithHistory.
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": "R@example.org"}], "idProperty": "email", "properties": ["email"]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["results"][0]["id"], id.as_str());
    let inputs: Vec<Value> = (0..51).map(|i| json!({"id": i.to_string()})).collect();
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": inputs, "propertiesWithHistory": ["email"]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn batch_archive_is_204() {
    let api = start().await;
    let id = api.create_contact("gone@example.org").await;
    let answer = api
        .post(
            "/crm/v3/objects/contacts/batch/archive",
            json!({"inputs": [{"id": id}]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&format!("/crm/v3/objects/contacts/{id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

// ----- properties and owners -----

#[tokio::test]
async fn properties_list_get_and_create_with_validation() {
    let api = start().await;
    let list = api.get("/crm/v3/properties/contacts").await;
    let email = list.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|p| p["name"] == "email")
        .cloned()
        .expect("email property");
    assert_eq!(email["hasUniqueValue"], true);
    assert_eq!(email["type"], "string");
    let stage = api.get("/crm/v3/properties/contacts/lifecyclestage").await;
    assert_eq!(stage.body["type"], "enumeration");
    assert!(
        stage.body["options"]
            .as_array()
            .expect("options")
            .iter()
            .any(|o| o["value"] == "lead")
    );

    let new_property = json!({
        "name": "sales_region", "label": "Sales region", "type": "enumeration", "fieldType": "select",
        "groupName": "contactinformation",
        "options": [{"label": "EMEA", "value": "emea"}, {"label": "Americas", "value": "amer"}]
    });
    let created = api
        .post("/crm/v3/properties/contacts", new_property.clone())
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["name"], "sales_region");
    let again = api.post("/crm/v3/properties/contacts", new_property).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let missing = api
        .post("/crm/v3/properties/contacts", json!({"name": "x"}))
        .await;
    assert_error_shape(&missing, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let wrong_field = api
        .post(
            "/crm/v3/properties/contacts",
            json!({"name": "score", "label": "Score", "type": "number", "fieldType": "select", "groupName": "g"}),
        )
        .await;
    assert_eq!(wrong_field.status, StatusCode::BAD_REQUEST);

    // The new property validates its options exactly.
    let bad = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "r@example.org", "sales_region": "EMEA"}}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let good = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "r@example.org", "sales_region": "emea"}}),
        )
        .await;
    assert_eq!(good.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_unique_custom_property_can_be_the_upsert_id() {
    let api = start().await;
    let created = api
        .post(
            "/crm/v3/properties/companies",
            json!({"name": "external_id", "label": "External id", "type": "string", "fieldType": "text",
                   "groupName": "companyinformation", "hasUniqueValue": true}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let body = json!({"inputs": [{"id": "ext-1", "idProperty": "external_id", "properties": {"name": "Acme"}}]});
    let first = api
        .post("/crm/v3/objects/companies/batch/upsert", body.clone())
        .await;
    assert_eq!(first.body["results"][0]["new"], true, "{}", first.body);
    let second = api
        .post("/crm/v3/objects/companies/batch/upsert", body)
        .await;
    assert_eq!(second.body["results"][0]["new"], false);
    assert_eq!(
        first.body["results"][0]["id"],
        second.body["results"][0]["id"]
    );
    // A non-unique property cannot be an upsert id.
    let answer = api
        .post(
            "/crm/v3/objects/companies/batch/upsert",
            json!({"inputs": [{"id": "acme.io", "idProperty": "domain", "properties": {}}]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn owners_filter_by_email_and_page() {
    let api = start().await;
    let answer = api
        .get("/crm/v3/owners?email=grace.hopper@example.com")
        .await;
    let results = answer.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 1);
    for key in [
        "id",
        "email",
        "firstName",
        "lastName",
        "userId",
        "type",
        "teams",
        "archived",
    ] {
        assert!(results[0].get(key).is_some(), "owner lacks {key}");
    }
    let first = api.get("/crm/v3/owners?limit=3").await;
    assert_eq!(first.body["results"].as_array().map(Vec::len), Some(3));
    let after = first.body["paging"]["next"]["after"]
        .as_str()
        .expect("after")
        .to_string();
    let second = api
        .get(&format!("/crm/v3/owners?limit=3&after={after}"))
        .await;
    assert_eq!(second.body["results"].as_array().map(Vec::len), Some(1));
    assert!(second.body.get("paging").is_none());
    // Owner ids are the values hubspot_owner_id accepts.
    let owner_id = results[0]["id"].as_str().expect("id");
    let answer = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "o@example.org", "hubspot_owner_id": owner_id}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let answer = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "p@example.org", "hubspot_owner_id": "12"}}),
        )
        .await;
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("INVALID_OWNER_ID")
    );
}

// ----- associations and activities -----

#[tokio::test]
async fn associations_v4_batch_create_default_and_read() {
    let api = start().await;
    let contact = api.create_contact("assoc@example.org").await;
    let company = api.create_company("assoc.io").await;
    let answer = api
        .post(
            "/crm/v4/associations/contacts/companies/batch/create",
            json!({"inputs": [{"from": {"id": contact}, "to": {"id": company},
                   "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]}]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["results"][0]["labels"], json!(["Primary"]));
    assert_eq!(answer.body["results"][0]["fromObjectTypeId"], "0-1");

    let wrong = api
        .post(
            "/crm/v4/associations/contacts/companies/batch/create",
            json!({"inputs": [{"from": {"id": contact}, "to": {"id": company},
                   "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}]}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::MULTI_STATUS);
    assert_eq!(wrong.body["numErrors"], 1);

    let deal = api
        .post("/crm/v3/objects/deals", json!({"properties": {"dealname": "Big", "pipeline": "default", "dealstage": "qualifiedtobuy"}}))
        .await;
    let deal = deal.body["id"].as_str().expect("deal id").to_string();
    let default = api
        .post(
            "/crm/v4/associations/deals/contacts/batch/associate/default",
            json!({"inputs": [{"from": {"id": deal}, "to": {"id": contact}}]}),
        )
        .await;
    assert_eq!(default.status, StatusCode::OK, "{}", default.body);
    assert_eq!(
        default.body["results"][0]["associationSpec"]["associationTypeId"],
        3
    );

    // Seen from the company, the primary association carries the inverse type id.
    let from_company = api
        .get(&format!(
            "/crm/v4/objects/companies/{company}/associations/contacts"
        ))
        .await;
    assert_eq!(
        from_company.body["results"][0]["toObjectId"]
            .as_u64()
            .map(|v| v.to_string()),
        Some(contact.clone())
    );
    assert_eq!(
        from_company.body["results"][0]["associationTypes"][0]["typeId"],
        2
    );
    let read = api
        .post(
            "/crm/v4/associations/contacts/deals/batch/read",
            json!({"inputs": [{"id": contact}, {"id": "777"}]}),
        )
        .await;
    assert_eq!(read.status, StatusCode::MULTI_STATUS);
    assert_eq!(
        read.body["results"][0]["to"][0]["associationTypes"][0]["typeId"],
        4
    );
}

#[tokio::test]
async fn activities_need_hs_timestamp_and_link_inline_on_create() {
    let api = start().await;
    let contact = api.create_contact("act@example.org").await;
    let company = api.create_company("act.io").await;
    let missing = api
        .post(
            "/crm/v3/objects/notes",
            json!({"properties": {"hs_note_body": "hi"}}),
        )
        .await;
    assert_error_shape(&missing, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert!(
        missing.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("hs_timestamp")
    );

    let inputs: Vec<Value> = (0..100)
        .map(|i| {
            json!({
                "properties": {"hs_timestamp": (T0 + i).to_string(), "hs_note_body": format!("note {i}")},
                "associations": [
                    {"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]},
                    {"to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 190}]}
                ],
                "objectWriteTraceId": format!("evt-{i}")
            })
        })
        .collect();
    let created = api
        .post(
            "/crm/v3/objects/notes/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let note = created.body["results"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let links = api
        .get(&format!(
            "/crm/v3/objects/notes/{note}?associations=contacts,companies"
        ))
        .await;
    assert_eq!(
        links.body["associations"]["contacts"]["results"][0]["id"],
        contact.as_str()
    );
    assert_eq!(
        links.body["associations"]["companies"]["results"][0]["id"],
        company.as_str()
    );
    let from_contact = api
        .get(&format!(
            "/crm/v4/objects/contacts/{contact}/associations/notes"
        ))
        .await;
    assert_eq!(
        from_contact.body["results"].as_array().map(Vec::len),
        Some(100)
    );
    assert_eq!(
        from_contact.body["results"][0]["associationTypes"][0]["typeId"],
        201
    );

    // An inline association to a record that does not exist fails that input.
    let answer = api
        .post(
            "/crm/v3/objects/calls",
            json!({"properties": {"hs_timestamp": "2026-01-01T00:00:00Z", "hs_call_direction": "OUTBOUND"},
                   "associations": [{"to": {"id": "4242"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}]}]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

// ----- search -----

#[tokio::test]
async fn search_lags_writes_by_the_index_lag() {
    let api = start().await;
    api.create_company("lagging.io").await;
    let body = json!({"filterGroups": [{"filters": [{"propertyName": "domain", "operator": "EQ", "value": "lagging.io"}]}]});
    let early = api
        .post("/crm/v3/objects/companies/search", body.clone())
        .await;
    assert_eq!(early.status, StatusCode::OK);
    assert_eq!(early.body["total"], 0);
    assert!(
        early.header("x-hubspot-ratelimit-remaining").is_none(),
        "search answers carry no budget headers"
    );
    api.advance(5_000);
    let later = api.post("/crm/v3/objects/companies/search", body).await;
    assert_eq!(later.body["total"], 1);
    assert_eq!(
        later.body["results"][0]["properties"]["domain"],
        "lagging.io"
    );
}

#[tokio::test]
async fn search_filters_sorts_pages_and_caps() {
    let api = start_with(SandboxOptions {
        clock: Clock::manual(T0),
        search_index_lag: Duration::ZERO,
        limits: Some(Limits {
            per_window: 1_000,
            daily: 1_000_000,
            search_per_second: 1_000,
            utc_offset_minutes: 0,
        }),
        ..SandboxOptions::default()
    })
    .await;
    let inputs: Vec<Value> = (0..30)
        .map(|i| json!({"properties": {"domain": format!("d{i}.io"), "numberofemployees": i.to_string()}}))
        .collect();
    assert_eq!(
        api.post(
            "/crm/v3/objects/companies/batch/create",
            json!({"inputs": inputs})
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let body = json!({
        "filterGroups": [
            {"filters": [{"propertyName": "numberofemployees", "operator": "GTE", "value": "25"}]},
            {"filters": [{"propertyName": "domain", "operator": "IN", "values": ["d1.io", "d2.io"]}]}
        ],
        "sorts": [{"propertyName": "numberofemployees", "direction": "DESCENDING"}],
        "properties": ["domain"],
        "limit": 4
    });
    let page = api
        .post("/crm/v3/objects/companies/search", body.clone())
        .await;
    assert_eq!(page.body["total"], 7);
    let domains: Vec<&str> = page.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["properties"]["domain"].as_str())
        .collect();
    assert_eq!(domains, ["d29.io", "d28.io", "d27.io", "d26.io"]);
    let after = page.body["paging"]["next"]["after"]
        .as_str()
        .expect("after")
        .to_string();
    let mut next = body.clone();
    next["after"] = json!(after);
    let rest = api.post("/crm/v3/objects/companies/search", next).await;
    let domains: Vec<&str> = rest.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["properties"]["domain"].as_str())
        .collect();
    assert_eq!(domains, ["d25.io", "d2.io", "d1.io"]);
    assert!(rest.body.get("paging").is_none());

    let over_limit = api
        .post("/crm/v3/objects/companies/search", json!({"limit": 201}))
        .await;
    assert_error_shape(&over_limit, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let past_cap = api
        .post(
            "/crm/v3/objects/companies/search",
            json!({"after": "10000"}),
        )
        .await;
    assert_error_shape(&past_cap, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let presence = api
        .post(
            "/crm/v3/objects/companies/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "website", "operator": "NOT_HAS_PROPERTY"}]}], "limit": 1}),
        )
        .await;
    assert_eq!(presence.body["total"], 30);
}

#[tokio::test]
async fn search_has_its_own_low_per_second_limit() {
    let api = start().await;
    for _ in 0..5 {
        assert_eq!(
            api.post("/crm/v3/objects/contacts/search", json!({}))
                .await
                .status,
            StatusCode::OK
        );
    }
    let limited = api.post("/crm/v3/objects/contacts/search", json!({})).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        limited.body["message"],
        "You have reached your secondly limit."
    );
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    // Standard endpoints are not affected by the search limit.
    assert_eq!(
        api.get("/crm/v3/objects/contacts").await.status,
        StatusCode::OK
    );
    api.advance(1_000);
    assert_eq!(
        api.post("/crm/v3/objects/contacts/search", json!({}))
            .await
            .status,
        StatusCode::OK
    );
}

// ----- rate limits -----

#[tokio::test]
async fn every_answer_carries_the_budget_headers() {
    let api = start().await;
    let answer = api.get("/crm/v3/objects/contacts").await;
    assert_eq!(answer.header("x-hubspot-ratelimit-max"), Some("190"));
    assert_eq!(answer.header("x-hubspot-ratelimit-remaining"), Some("189"));
    assert_eq!(
        answer.header("x-hubspot-ratelimit-interval-milliseconds"),
        Some("10000")
    );
    assert_eq!(answer.header("x-hubspot-ratelimit-daily"), Some("625000"));
    assert_eq!(
        answer.header("x-hubspot-ratelimit-daily-remaining"),
        Some("624999")
    );
}

#[tokio::test]
async fn the_ten_second_window_refuses_the_191st_request_until_it_rolls() {
    let api = start().await;
    for i in 0..190 {
        let answer = api.get("/crm/v3/objects/contacts?limit=1").await;
        assert_eq!(answer.status, StatusCode::OK, "request {i}");
        if i % 50 == 0 {
            api.advance(100);
        }
    }
    let refused = api.get("/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.body,
        json!({
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": refused.body["correlationId"],
            "policyName": "TEN_SECONDLY_ROLLING",
            "groupName": refused.body["groupName"],
        })
    );
    assert_eq!(refused.header("x-hubspot-ratelimit-remaining"), Some("0"));
    assert!(
        refused.header("retry-after").is_none(),
        "Retry-After is off unless asked for"
    );
    api.advance(10_000);
    assert_eq!(
        api.get("/crm/v3/objects/contacts?limit=1").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn tiers_set_the_window_and_retry_after_can_be_turned_on() {
    let api = start_with(SandboxOptions {
        clock: Clock::manual(T0),
        tier: Tier::Free,
        send_retry_after: true,
        ..SandboxOptions::default()
    })
    .await;
    let first = api.get("/crm/v3/objects/contacts").await;
    assert_eq!(first.header("x-hubspot-ratelimit-max"), Some("100"));
    assert_eq!(first.header("x-hubspot-ratelimit-daily"), Some("250000"));
    for _ in 0..99 {
        api.get("/crm/v3/objects/contacts").await;
    }
    let refused = api.get("/crm/v3/objects/contacts").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("retry-after"), Some("10"));
}

#[tokio::test]
async fn the_daily_limit_refuses_with_its_own_body_until_midnight() {
    let api = start().await;
    api.set_limits(Limits {
        per_window: 190,
        daily: 3,
        search_per_second: 5,
        utc_offset_minutes: 0,
    });
    for _ in 0..3 {
        assert_eq!(
            api.get("/crm/v3/objects/contacts").await.status,
            StatusCode::OK
        );
    }
    let refused = api.get("/crm/v3/objects/contacts").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.body["message"],
        "You have reached your daily limit."
    );
    assert_eq!(refused.body["policyName"], "DAILY");
    assert!(refused.body.get("groupName").is_none());
    assert_eq!(
        refused.header("x-hubspot-ratelimit-daily-remaining"),
        Some("0")
    );
    api.advance(86_400_000);
    assert_eq!(
        api.get("/crm/v3/objects/contacts").await.status,
        StatusCode::OK
    );
    let usage = api
        .get("/account-info/v3/api-usage/daily/private-apps")
        .await;
    assert_eq!(usage.body["results"][0]["usageLimit"], 3);
}

// ----- faults and admin -----

#[tokio::test]
async fn injected_server_errors_and_429_storms() {
    let api = start().await;
    api.sandbox
        .set_faults(Faults {
            error_rate: 1.0,
            error_status: Some(503),
            ..Faults::default()
        })
        .expect("faults");
    let answer = api.get("/crm/v3/objects/contacts").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["status"], "error");

    let storm = api
        .call_as(
            None,
            Method::PUT,
            "/__admin/faults",
            Some(json!({"storm_429_requests": 2})),
        )
        .await;
    assert_eq!(storm.status, StatusCode::OK);
    for _ in 0..2 {
        let answer = api.get("/crm/v3/objects/contacts").await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.body["policyName"], "TEN_SECONDLY_ROLLING");
    }
    assert_eq!(
        api.get("/crm/v3/objects/contacts").await.status,
        StatusCode::OK
    );

    let bad = api
        .call_as(
            None,
            Method::PUT,
            "/__admin/faults",
            Some(json!({"error_rate": 2.0})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unknown = api
        .call_as(
            None,
            Method::PUT,
            "/__admin/faults",
            Some(json!({"eror_rate": 0.5})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn hung_requests_outlast_the_client_and_latency_delays_answers() {
    let api = start().await;
    api.sandbox
        .set_faults(Faults {
            hang_rate: 1.0,
            hang_ms: Some(30_000),
            ..Faults::default()
        })
        .expect("faults");
    let result = api
        .http
        .get(format!("{}/crm/v3/objects/contacts", api.server.url()))
        .bearer_auth(&api.token)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(result.expect_err("should time out").is_timeout());

    api.sandbox
        .set_faults(Faults {
            latency_ms: 200,
            ..Faults::default()
        })
        .expect("faults");
    let started = std::time::Instant::now();
    assert_eq!(
        api.get("/crm/v3/objects/contacts").await.status,
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn admin_counts_requests_per_endpoint_and_status_and_resets() {
    let api = start().await;
    api.create_contact("count@example.org").await;
    api.post(
        "/crm/v3/objects/contacts",
        json!({"properties": {"email": "count@example.org"}}),
    )
    .await;
    api.call_as(None, Method::GET, "/crm/v3/objects/contacts/1", None)
        .await;
    let counts = api
        .call_as(None, Method::GET, "/__admin/requests", None)
        .await;
    assert_eq!(counts.body["total"], 3);
    let entries = counts.body["by_endpoint"].as_array().expect("entries");
    let count_of = |endpoint: &str, status: u16| {
        entries
            .iter()
            .find(|e| e["endpoint"] == endpoint && e["status"] == status)
            .and_then(|e| e["count"].as_u64())
    };
    assert_eq!(count_of("POST /crm/v3/objects/contacts", 201), Some(1));
    assert_eq!(count_of("POST /crm/v3/objects/contacts", 409), Some(1));
    assert_eq!(count_of("GET /crm/v3/objects/contacts/{id}", 401), Some(1));

    let state = api
        .call_as(
            None,
            Method::GET,
            "/__admin/state?object_type=contacts",
            None,
        )
        .await;
    assert_eq!(
        state.body["objects"]["contacts"].as_array().map(Vec::len),
        Some(1)
    );
    let reset = api
        .call_as(None, Method::POST, "/__admin/reset", None)
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    let state = api.call_as(None, Method::GET, "/__admin/state", None).await;
    assert_eq!(state.body["objects"]["contacts"], json!([]));
}

#[tokio::test]
async fn a_change_made_as_a_hubspot_user_is_logged_with_its_source() {
    let api = start().await;
    let id = api.create_contact("ui@example.org").await;
    api.advance(1_000);
    let changed = api
        .call_as(
            None,
            Method::PATCH,
            &format!("/__admin/objects/contacts/{id}"),
            Some(json!({"properties": {"jobtitle": "VP"}})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.body["properties"]["jobtitle"], "VP");
    let log = api
        .call_as(None, Method::GET, "/__admin/changes", None)
        .await;
    let changes = log.body["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["source"], "INTEGRATION");
    assert_eq!(changes[1]["source"], "CRM_UI");
    assert_eq!(changes[1]["kind"], "UPDATED");
    assert_eq!(changes[1]["properties"]["jobtitle"], "VP");
    // The user's edit is validated like any other write.
    let bad = api
        .call_as(
            None,
            Method::PATCH,
            &format!("/__admin/objects/contacts/{id}"),
            Some(json!({"properties": {"lifecyclestage": "nope"}})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_manual_clock_moves_through_the_admin_api() {
    let api = start().await;
    let moved = api
        .call_as(
            None,
            Method::POST,
            "/__admin/clock/advance",
            Some(json!({"ms": 1_500})),
        )
        .await;
    assert_eq!(moved.body["now_ms"], T0 + 1_500);
    let system = start_with(SandboxOptions::default()).await;
    let refused = system
        .call_as(
            None,
            Method::POST,
            "/__admin/clock/advance",
            Some(json!({"ms": 1})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn account_details_name_the_portal() {
    let api = start().await;
    let answer = api.get("/account-info/v3/details").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["portalId"], api.sandbox.portal_id());
    assert_eq!(answer.body["utcOffset"], "+00:00");
}

/// A public app's OAuth calls have a budget of their own in each installing account: 110 per
/// rolling 10 s, whatever the account's tier, no daily limit (so no daily headers); the
/// account's private apps keep theirs.
#[tokio::test]
async fn oauth_calls_have_their_own_110_per_10_seconds() {
    let api = start().await;
    const ACCESS: &str = "oauth-access-1";
    api.sandbox
        .issue_access_token(ACCESS, 30 * 60 * 1_000, 4_242_424);
    assert_eq!(
        api.sandbox.app_of(ACCESS),
        4_242_424,
        "an access token is its app's"
    );
    for n in 0..110 {
        let answer = api
            .call_as(Some(ACCESS), Method::GET, "/crm/v3/objects/contacts", None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "call {n}: {}", answer.body);
        assert_eq!(answer.header("x-hubspot-ratelimit-max"), Some("110"));
        assert_eq!(answer.header("x-hubspot-ratelimit-daily"), None);
    }
    let limited = api
        .call_as(Some(ACCESS), Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["policyName"], "TEN_SECONDLY_ROLLING");
    let private = api.get("/crm/v3/objects/contacts").await;
    assert_eq!(private.status, StatusCode::OK, "a private app's own budget");
    assert_eq!(private.header("x-hubspot-ratelimit-max"), Some("190"));
    assert!(private.header("x-hubspot-ratelimit-daily").is_some());
    api.advance(10_000);
    let again = api
        .call_as(Some(ACCESS), Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(again.status, StatusCode::OK, "the window rolled on");
}

// ----- request forms -----

#[tokio::test]
async fn the_owners_list_answers_with_a_trailing_slash_as_the_sdk_sends_it() {
    let api = start().await;
    let plain = api.get("/crm/v3/owners?limit=2").await;
    let slashed = api.get("/crm/v3/owners/?limit=2").await;
    assert_eq!(slashed.status, StatusCode::OK, "{}", slashed.body);
    assert_eq!(slashed.body, plain.body);
    let by_email = api
        .get("/crm/v3/owners/?email=alan.turing@example.com")
        .await;
    assert_eq!(by_email.body["results"][0]["firstName"], "Alan");
}

#[tokio::test]
async fn array_query_parameters_repeat_their_key_or_separate_with_commas() {
    let api = start().await;
    let id = api.create_contact("arrays@example.org").await;
    api.post(
        "/crm/v3/objects/contacts",
        json!({"properties": {"email": "other@example.org"}}),
    )
    .await;
    let expected = json!({"email": "arrays@example.org", "firstname": null, "lastname": null});
    for query in [
        "properties=email&properties=firstname&properties=lastname",
        "properties=email,firstname,lastname",
        "properties=email&properties=firstname,lastname",
    ] {
        let one = api
            .get(&format!("/crm/v3/objects/contacts/{id}?{query}"))
            .await;
        assert_eq!(one.status, StatusCode::OK, "{query}: {}", one.body);
        assert_eq!(one.body["properties"], expected, "{query}");
        let list = api
            .get(&format!("/crm/v3/objects/contacts?limit=1&{query}"))
            .await;
        assert_eq!(list.status, StatusCode::OK, "{query}: {}", list.body);
        assert_eq!(list.body["results"][0]["properties"], expected, "{query}");
    }
    let company = api.create_company("arrays.io").await;
    api.post(
        "/crm/v4/associations/contacts/companies/batch/associate/default",
        json!({"inputs": [{"from": {"id": id}, "to": {"id": company}}]}),
    )
    .await;
    let linked = api
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?associations=companies&associations=deals&properties=email"
        ))
        .await;
    assert_eq!(linked.status, StatusCode::OK, "{}", linked.body);
    assert_eq!(
        linked.body["associations"]["companies"]["results"][0]["id"],
        company.as_str()
    );
}

#[tokio::test]
async fn malformed_query_parameters_get_hubspots_json_error() {
    let api = start().await;
    let id = api.create_contact("malformed@example.org").await;
    for path in [
        "/crm/v3/objects/contacts?limit=ten".to_string(),
        "/crm/v3/objects/contacts?limit=-1".to_string(),
        "/crm/v3/objects/contacts?limit=0".to_string(),
        "/crm/v3/objects/contacts?after=abc".to_string(),
        "/crm/v3/owners?limit=1x".to_string(),
        "/crm/v3/owners/?archived=maybe".to_string(),
        format!("/crm/v4/objects/contacts/{id}/associations/companies?limit=many"),
        format!("/crm/v3/objects/contacts/{id}?idProperty=firstname"),
    ] {
        let answer = api.get(&path).await;
        assert_error_shape(&answer, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert!(answer.body["message"].as_str().is_some(), "{path}");
    }
}

// ----- change sources and history -----

#[tokio::test]
async fn every_change_names_its_source_and_each_property_keeps_its_history() {
    let api = start().await;
    let id = api.create_contact("history@example.org").await;
    api.advance(1_000);
    let patched = api
        .call(
            Method::PATCH,
            &format!("/crm/v3/objects/contacts/{id}"),
            Some(json!({"properties": {"firstname": "Ada"}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    api.advance(1_000);
    let by_user = api
        .call_as(
            None,
            Method::PATCH,
            &format!("/__admin/objects/contacts/{id}"),
            Some(json!({"properties": {"firstname": "Grace"}, "user_id": 9_000_002})),
        )
        .await;
    assert_eq!(by_user.status, StatusCode::OK, "{}", by_user.body);
    api.advance(1_000);
    // A user's change without a user id is the default user's.
    api.call_as(
        None,
        Method::PATCH,
        &format!("/__admin/objects/contacts/{id}"),
        Some(json!({"properties": {"jobtitle": "CTO"}})),
    )
    .await;

    let log = api
        .call_as(None, Method::GET, "/__admin/changes", None)
        .await;
    let changes = log.body["changes"].as_array().expect("changes");
    let sources: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| {
            (
                c["source"].as_str().unwrap_or(""),
                c["source_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("INTEGRATION", "3141592"),
            ("INTEGRATION", "3141592"),
            ("CRM_UI", "userId:9000002"),
            ("CRM_UI", "userId:9000001"),
        ]
    );

    let read = api
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?properties=firstname&propertiesWithHistory=firstname&propertiesWithHistory=email,lastname"
        ))
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["properties"], json!({"firstname": "Grace"}));
    let history = &read.body["propertiesWithHistory"];
    assert_eq!(
        history["firstname"],
        json!([
            {"value": "Grace", "timestamp": "2026-01-01T00:00:02.000Z", "sourceType": "CRM_UI",
             "sourceId": "userId:9000002", "updatedByUserId": 9_000_002},
            {"value": "Ada", "timestamp": "2026-01-01T00:00:01.000Z", "sourceType": "INTEGRATION",
             "sourceId": "3141592"},
        ])
    );
    assert_eq!(history["email"][0]["value"], "history@example.org");
    assert_eq!(history["email"][0]["timestamp"], "2026-01-01T00:00:00.000Z");
    assert_eq!(history["lastname"], json!([]));

    // The modification dates moved with every change, to the millisecond.
    let dates = api
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?properties=lastmodifieddate,hs_lastmodifieddate&propertiesWithHistory=lastmodifieddate"
        ))
        .await;
    assert_eq!(
        dates.body["properties"]["lastmodifieddate"],
        "2026-01-01T00:00:03.000Z"
    );
    assert_eq!(
        dates.body["properties"]["hs_lastmodifieddate"],
        "2026-01-01T00:00:03.000Z"
    );
    assert_eq!(
        dates.body["propertiesWithHistory"]["lastmodifieddate"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
}

#[tokio::test]
async fn a_write_that_changes_nothing_leaves_history_and_dates_alone() {
    let api = start().await;
    let id = api.create_contact("noop@example.org").await;
    api.advance(5_000);
    let same = api
        .call(
            Method::PATCH,
            &format!("/crm/v3/objects/contacts/{id}"),
            Some(json!({"properties": {"email": "NOOP@example.org"}})),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.body["updatedAt"], "2026-01-01T00:00:00.000Z");
    let log = api
        .call_as(None, Method::GET, "/__admin/changes", None)
        .await;
    assert_eq!(log.body["changes"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_token_writes_as_its_app_and_apps_are_listed() {
    let api = start().await;
    let other = "pat-na1-other-app";
    let put = api
        .call_as(
            None,
            Method::PUT,
            &format!("/__admin/tokens/{other}"),
            Some(json!({"state": "valid", "app_id": 777})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["app_id"], 777);
    let created = api
        .call_as(
            Some(other),
            Method::POST,
            "/crm/v3/objects/companies",
            Some(json!({"properties": {"name": "Other"}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().expect("id");
    let read = api
        .get(&format!(
            "/crm/v3/objects/companies/{id}?propertiesWithHistory=name"
        ))
        .await;
    assert_eq!(
        read.body["propertiesWithHistory"]["name"][0]["sourceId"],
        "777"
    );
    let apps = api.call_as(None, Method::GET, "/__admin/apps", None).await;
    assert_eq!(
        apps.body["apps"],
        json!([
            {"app_id": 777, "kind": "private", "tokens": [other]},
            {"app_id": 3_141_592, "kind": "private", "tokens": [DEFAULT_TOKEN]},
        ])
    );
}

#[tokio::test]
async fn batch_and_list_reads_carry_history_and_list_reads_associations() {
    let api = start().await;
    let contact = api.create_contact("lists@example.org").await;
    let company = api.create_company("lists.io").await;
    api.post(
        "/crm/v4/associations/contacts/companies/batch/associate/default",
        json!({"inputs": [{"from": {"id": contact}, "to": {"id": company}}]}),
    )
    .await;
    let list = api
        .get("/crm/v3/objects/contacts?associations=companies&propertiesWithHistory=email")
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let first = &list.body["results"][0];
    assert_eq!(
        first["associations"]["companies"]["results"][0]["id"],
        company.as_str()
    );
    assert_eq!(
        first["propertiesWithHistory"]["email"][0]["sourceType"],
        "INTEGRATION"
    );
    let unknown = api
        .get("/crm/v3/objects/contacts?associations=tickets")
        .await;
    assert_error_shape(&unknown, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");

    let read = api
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": contact}], "properties": ["email"], "propertiesWithHistory": ["email"]}),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(
        read.body["results"][0]["propertiesWithHistory"]["email"][0]["value"],
        "lists@example.org"
    );
    let inputs: Vec<Value> = (0..51)
        .map(|i| json!({"id": (10_001 + i).to_string()}))
        .collect();
    let too_many = api
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": inputs, "propertiesWithHistory": ["email"]}),
        )
        .await;
    assert_error_shape(&too_many, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

#[tokio::test]
async fn search_polls_changes_by_the_modification_date() {
    let api = start().await;
    let a = api.create_contact("poll-a@example.org").await;
    api.advance(10);
    let b = api.create_contact("poll-b@example.org").await;
    api.advance(10);
    api.call(
        Method::PATCH,
        &format!("/crm/v3/objects/contacts/{a}"),
        Some(json!({"properties": {"firstname": "Later"}})),
    )
    .await;
    api.advance(10_000);
    let cursor = T0 + 5;
    for property in ["lastmodifieddate", "hs_lastmodifieddate"] {
        let found = api
            .post(
                "/crm/v3/objects/contacts/search",
                json!({
                    "filterGroups": [{"filters": [{"propertyName": property, "operator": "GTE", "value": cursor.to_string()}]}],
                    "sorts": [{"propertyName": property, "direction": "ASCENDING"}],
                    "properties": [property],
                }),
            )
            .await;
        assert_eq!(found.status, StatusCode::OK, "{}", found.body);
        let ids: Vec<&str> = found.body["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter_map(|r| r["id"].as_str())
            .collect();
        assert_eq!(ids, [b.as_str(), a.as_str()], "{property}");
        assert_eq!(
            found.body["results"][1]["properties"][property],
            "2026-01-01T00:00:00.020Z"
        );
    }
}

// ----- archived records, merges, GDPR deletes -----

#[tokio::test]
async fn archived_records_are_read_with_archived_true_for_90_days() {
    let api = start().await;
    let id = api.create_contact("gone@example.org").await;
    let live = api.create_contact("live@example.org").await;
    api.advance(1_000);
    let deleted = api
        .call(
            Method::DELETE,
            &format!("/crm/v3/objects/contacts/{id}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    let plain = api.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_error_shape(&plain, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND");
    let archived = api
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?archived=true&properties=email"
        ))
        .await;
    assert_eq!(archived.status, StatusCode::OK, "{}", archived.body);
    assert_eq!(archived.body["archived"], true);
    assert_eq!(archived.body["archivedAt"], "2026-01-01T00:00:01.000Z");
    assert_eq!(archived.body["properties"]["email"], "gone@example.org");
    let by_email = api
        .get("/crm/v3/objects/contacts/gone@example.org?idProperty=email&archived=true")
        .await;
    assert_eq!(by_email.body["id"], id.as_str());
    // archived=true reads only archived records.
    let not_archived = api
        .get(&format!("/crm/v3/objects/contacts/{live}?archived=true"))
        .await;
    assert_error_shape(&not_archived, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND");

    let list = api.get("/crm/v3/objects/contacts?archived=true").await;
    let results = list.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["id"], id.as_str());
    assert_eq!(results[0]["archived"], true);
    let batch = api
        .post(
            "/crm/v3/objects/contacts/batch/read?archived=true",
            json!({"inputs": [{"id": id}, {"id": live}]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::MULTI_STATUS, "{}", batch.body);
    assert_eq!(batch.body["results"][0]["id"], id.as_str());

    api.advance(90 * 86_400_000);
    let expired = api
        .get(&format!("/crm/v3/objects/contacts/{id}?archived=true"))
        .await;
    assert_error_shape(&expired, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND");
}

#[tokio::test]
async fn a_merged_record_resolves_to_the_one_it_was_merged_into() {
    let api = start().await;
    let primary = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "keep@example.org", "firstname": "Kept"}}),
        )
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let merged = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "fold@example.org", "firstname": "Folded", "lastname": "Only"}}),
        )
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let company = api.create_company("merged.io").await;
    api.post(
        "/crm/v4/associations/contacts/companies/batch/associate/default",
        json!({"inputs": [{"from": {"id": merged}, "to": {"id": company}}]}),
    )
    .await;

    let answer = api
        .post(
            "/crm/v3/objects/contacts/merge",
            json!({"primaryObjectId": primary, "objectIdToMerge": merged}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["id"], primary.as_str());

    let via_old_id = api
        .get(&format!(
            "/crm/v3/objects/contacts/{merged}?properties=firstname,lastname,email,hs_merged_object_ids,hs_additional_emails&associations=companies"
        ))
        .await;
    assert_eq!(via_old_id.status, StatusCode::OK, "{}", via_old_id.body);
    assert_eq!(via_old_id.body["id"], primary.as_str());
    assert_eq!(
        via_old_id.body["properties"],
        json!({"firstname": "Kept", "lastname": "Only", "email": "keep@example.org",
               "hs_merged_object_ids": merged, "hs_additional_emails": "fold@example.org"})
    );
    assert_eq!(
        via_old_id.body["associations"]["companies"]["results"][0]["id"],
        company.as_str()
    );
    let by_old_email = api
        .get("/crm/v3/objects/contacts/fold@example.org?idProperty=email")
        .await;
    assert_eq!(by_old_email.body["id"], primary.as_str());
    let taken = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "fold@example.org"}}),
        )
        .await;
    assert_error_shape(&taken, StatusCode::CONFLICT, "CONFLICT");
    assert_eq!(
        api.get("/crm/v3/objects/contacts").await.body["results"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let itself = api
        .post(
            "/crm/v3/objects/contacts/merge",
            json!({"primaryObjectId": primary, "objectIdToMerge": primary}),
        )
        .await;
    assert_error_shape(&itself, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let missing = api
        .post(
            "/crm/v3/objects/contacts/merge",
            json!({"primaryObjectId": primary, "objectIdToMerge": "999999"}),
        )
        .await;
    assert_error_shape(&missing, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND");
    let no_field = api
        .post(
            "/crm/v3/objects/contacts/merge",
            json!({"primaryObjectId": primary}),
        )
        .await;
    assert_error_shape(&no_field, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let notes = api
        .post(
            "/crm/v3/objects/notes/merge",
            json!({"primaryObjectId": "1", "objectIdToMerge": "2"}),
        )
        .await;
    assert_error_shape(&notes, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

#[tokio::test]
async fn a_gdpr_delete_is_for_good_and_an_unknown_email_is_blocked() {
    let api = start().await;
    let id = api.create_contact("forget@example.org").await;
    let deleted = api
        .post(
            "/crm/v3/objects/contacts/gdpr-delete",
            json!({"objectId": id}),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    for path in [
        format!("/crm/v3/objects/contacts/{id}"),
        format!("/crm/v3/objects/contacts/{id}?archived=true"),
    ] {
        let gone = api.get(&path).await;
        assert_error_shape(&gone, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND");
    }
    api.create_contact("forget@example.org").await;

    let by_email = api
        .post(
            "/crm/v3/objects/contacts/gdpr-delete",
            json!({"objectId": "forget@example.org", "idProperty": "email"}),
        )
        .await;
    assert_eq!(by_email.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.sandbox
            .count(hubsync_sandbox::hubspot::model::ObjectType::Contacts),
        0
    );

    let unknown = api
        .post(
            "/crm/v3/objects/contacts/gdpr-delete",
            json!({"objectId": "never@example.org", "idProperty": "email"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NO_CONTENT);
    let blocked = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "never@example.org"}}),
        )
        .await;
    assert_error_shape(&blocked, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");

    let no_such_id = api
        .post(
            "/crm/v3/objects/contacts/gdpr-delete",
            json!({"objectId": "424242"}),
        )
        .await;
    assert_error_shape(&no_such_id, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND");
    let companies = api
        .post(
            "/crm/v3/objects/companies/gdpr-delete",
            json!({"objectId": "1"}),
        )
        .await;
    assert_eq!(companies.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn v4_batch_archive_removes_associations_both_ways() {
    let api = start().await;
    let contact = api.create_contact("unlink@example.org").await;
    let company = api.create_company("unlink.io").await;
    api.post(
        "/crm/v4/associations/contacts/companies/batch/create",
        json!({"inputs": [{"from": {"id": contact}, "to": {"id": company},
                           "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]}]}),
    )
    .await;
    let removed = api
        .post(
            "/crm/v4/associations/contacts/companies/batch/archive",
            json!({"inputs": [{"from": {"id": contact}, "to": [{"id": company}, {"id": "999999"}]}]}),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    for (path, id) in [
        (
            "/crm/v4/associations/contacts/companies/batch/read",
            &contact,
        ),
        (
            "/crm/v4/associations/companies/contacts/batch/read",
            &company,
        ),
    ] {
        let read = api.post(path, json!({"inputs": [{"id": id}]})).await;
        assert_eq!(read.body["results"][0]["to"], json!([]), "{path}");
    }
    let bad = api
        .post(
            "/crm/v4/associations/contacts/companies/batch/archive",
            json!({"inputs": [{"from": {"id": contact}}]}),
        )
        .await;
    assert_error_shape(&bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

#[tokio::test]
async fn a_user_restores_merges_and_links_through_the_admin_api() {
    let api = start().await;
    let id = api.create_contact("restore@example.org").await;
    let company = api.create_company("restore.io").await;
    let (status, _) = {
        let answer = api
            .call_as(
                None,
                Method::PUT,
                &format!("/__admin/associations/contacts/{id}/companies/{company}"),
                Some(json!({"type_id": 1, "user_id": 9_000_003})),
            )
            .await;
        (answer.status, answer.body)
    };
    assert_eq!(status, StatusCode::CREATED);
    api.call(
        Method::DELETE,
        &format!("/crm/v3/objects/contacts/{id}"),
        None,
    )
    .await;
    assert!(
        api.sandbox
            .associations_of(
                hubsync_sandbox::hubspot::model::ObjectType::Companies,
                company.parse().expect("id"),
                hubsync_sandbox::hubspot::model::ObjectType::Contacts
            )
            .is_empty()
    );
    let restored = api
        .call_as(
            None,
            Method::POST,
            &format!("/__admin/objects/contacts/{id}/restore"),
            None,
        )
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.body);
    let read = api
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?associations=companies"
        ))
        .await;
    assert_eq!(read.body["archived"], false);
    assert!(read.body.get("archivedAt").is_none());
    assert_eq!(
        read.body["associations"]["companies"]["results"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "primary and unlabelled links are back"
    );

    // Archived again, and its email taken meanwhile: the restore conflicts.
    api.call(
        Method::DELETE,
        &format!("/crm/v3/objects/contacts/{id}"),
        None,
    )
    .await;
    let taker = api.create_contact("restore@example.org").await;
    let refused = api
        .call_as(
            None,
            Method::POST,
            &format!("/__admin/objects/contacts/{id}/restore"),
            None,
        )
        .await;
    assert_error_shape(&refused, StatusCode::CONFLICT, "CONFLICT");

    let other = api.create_contact("other@example.org").await;
    let merged = api
        .call_as(
            None,
            Method::POST,
            "/__admin/objects/contacts/merge",
            Some(json!({"primaryObjectId": taker, "objectIdToMerge": other, "user_id": 9_000_004})),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);
    let log = api
        .call_as(None, Method::GET, "/__admin/changes", None)
        .await;
    let last = log.body["changes"]
        .as_array()
        .and_then(|c| c.last())
        .cloned()
        .expect("a change");
    assert_eq!(last["kind"], "MERGED");
    assert_eq!(last["source"], "CRM_UI");
    assert_eq!(last["source_id"], "userId:9000004");
    assert_eq!(
        last["merge"]["merged"],
        json!([other.parse::<u64>().expect("id")])
    );

    let unlinked = api
        .call_as(
            None,
            Method::DELETE,
            &format!("/__admin/associations/contacts/{taker}/companies/{company}"),
            None,
        )
        .await;
    assert_error_shape(&unlinked, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND");
}

// ----- lists -----

fn customers_branch() -> Value {
    json!({"filterBranchType": "OR", "filters": [], "filterBranches": [{
        "filterBranchType": "AND", "filterBranches": [],
        "filters": [{"filterType": "PROPERTY", "property": "lifecyclestage",
                     "operation": {"operationType": "ENUMERATION", "operator": "IS_ANY_OF", "values": ["customer"]}}]
    }]})
}

#[tokio::test]
async fn a_manual_list_pages_its_members_in_join_order() {
    let api = start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(api.create_contact(&format!("m{i}@example.org")).await);
    }
    let created = api
        .post(
            "/crm/v3/lists",
            json!({"name": "Manual", "objectTypeId": "0-1", "processingType": "MANUAL"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let list_id = created.body["list"]["listId"]
        .as_str()
        .expect("listId")
        .to_string();
    assert_eq!(created.body["list"]["processingType"], "MANUAL");
    assert_eq!(created.body["list"]["size"], 0);

    // Joined in the order 3, 1, 4, 0, 2, a second apart.
    for index in [3, 1, 4, 0, 2] {
        api.advance(1_000);
        let changed = api
            .call(
                Method::PUT,
                &format!("/crm/v3/lists/{list_id}/memberships/add-and-remove"),
                Some(json!({"recordIdsToAdd": [ids[index]], "recordIdsToRemove": []})),
            )
            .await;
        assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
        assert_eq!(changed.body["recordIdsAdded"], json!([ids[index]]));
    }
    let missing = api
        .call(
            Method::PUT,
            &format!("/crm/v3/lists/{list_id}/memberships/add-and-remove"),
            Some(json!({"recordIdsToAdd": ["999999", ids[0]], "recordIdsToRemove": [ids[2]]})),
        )
        .await;
    assert_eq!(missing.body["recordIdsMissing"], json!(["999999"]));
    assert_eq!(
        missing.body["recordIdsAdded"],
        json!([]),
        "already a member"
    );
    assert_eq!(missing.body["recordIdsRemoved"], json!([ids[2]]));

    let list = api.get(&format!("/crm/v3/lists/{list_id}")).await;
    assert_eq!(list.body["list"]["size"], 4);
    assert_eq!(list.body["list"]["processingStatus"], "COMPLETE");

    let first = api
        .get(&format!(
            "/crm/v3/lists/{list_id}/memberships/join-order?limit=2"
        ))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(
        first.body["results"],
        json!([
            {"recordId": ids[3], "membershipTimestamp": "2026-01-01T00:00:01.000Z"},
            {"recordId": ids[1], "membershipTimestamp": "2026-01-01T00:00:02.000Z"},
        ])
    );
    let after = first.body["paging"]["next"]["after"]
        .as_str()
        .expect("after");
    let second = api
        .get(&format!(
            "/crm/v3/lists/{list_id}/memberships/join-order?limit=2&after={after}"
        ))
        .await;
    let order: Vec<&str> = second.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["recordId"].as_str())
        .collect();
    assert_eq!(order, [ids[4].as_str(), ids[0].as_str()]);
    assert!(second.body["paging"].get("next").is_none());
    let before = second.body["paging"]["prev"]["before"]
        .as_str()
        .expect("before");
    let back = api
        .get(&format!(
            "/crm/v3/lists/{list_id}/memberships/join-order?limit=2&before={before}"
        ))
        .await;
    assert_eq!(back.body["results"], first.body["results"]);

    let memberships = api
        .get(&format!("/crm/v3/lists/records/0-1/{}/memberships", ids[3]))
        .await;
    assert_eq!(memberships.status, StatusCode::OK, "{}", memberships.body);
    assert_eq!(
        memberships.body["results"],
        json!([{"listId": list_id, "listVersion": 1,
                "firstAddedTimestamp": "2026-01-01T00:00:01.000Z",
                "lastAddedTimestamp": "2026-01-01T00:00:01.000Z"}])
    );

    for path in [
        format!("/crm/v3/lists/{list_id}/memberships/join-order?limit=251"),
        format!("/crm/v3/lists/{list_id}/memberships/join-order?after=x"),
        "/crm/v3/lists/abc".to_string(),
    ] {
        let bad = api.get(&path).await;
        assert_error_shape(&bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    }
    let unknown = api.get("/crm/v3/lists/4242").await;
    assert_error_shape(&unknown, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND");
}

#[tokio::test]
async fn a_dynamic_list_follows_its_filters_and_refuses_manual_changes() {
    let api = start().await;
    let customer = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "c@example.org", "lifecyclestage": "customer"}}),
        )
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let lead = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "l@example.org", "lifecyclestage": "lead"}}),
        )
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let created = api
        .post(
            "/crm/v3/lists",
            json!({"name": "Customers", "objectTypeId": "0-1", "processingType": "DYNAMIC",
                   "filterBranch": customers_branch()}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let list_id = created.body["list"]["listId"]
        .as_str()
        .expect("listId")
        .to_string();
    assert_eq!(created.body["list"]["size"], 1);

    api.advance(5_000);
    api.call_as(
        None,
        Method::PATCH,
        &format!("/__admin/objects/contacts/{lead}"),
        Some(json!({"properties": {"lifecyclestage": "customer"}})),
    )
    .await;
    api.call(
        Method::PATCH,
        &format!("/crm/v3/objects/contacts/{customer}"),
        Some(json!({"properties": {"lifecyclestage": "evangelist"}})),
    )
    .await;
    let members = api
        .get(&format!("/crm/v3/lists/{list_id}/memberships/join-order"))
        .await;
    assert_eq!(
        members.body["results"],
        json!([{"recordId": lead, "membershipTimestamp": "2026-01-01T00:00:05.000Z"}])
    );
    let with_filters = api
        .get(&format!("/crm/v3/lists/{list_id}?includeFilters=true"))
        .await;
    assert_eq!(
        with_filters.body["list"]["filterBranch"],
        customers_branch()
    );
    assert_eq!(with_filters.body["list"]["size"], 1);

    let refused = api
        .call(
            Method::PUT,
            &format!("/crm/v3/lists/{list_id}/memberships/add-and-remove"),
            Some(json!({"recordIdsToAdd": [customer]})),
        )
        .await;
    assert_error_shape(&refused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");

    // A snapshot is evaluated once, then changed by hand.
    let snapshot = api
        .post(
            "/crm/v3/lists",
            json!({"name": "Snapshot", "objectTypeId": "0-1", "processingType": "SNAPSHOT",
                   "filterBranch": customers_branch()}),
        )
        .await;
    let snapshot_id = snapshot.body["list"]["listId"]
        .as_str()
        .expect("listId")
        .to_string();
    assert_eq!(snapshot.body["list"]["size"], 1);
    let added = api
        .call(
            Method::PUT,
            &format!("/crm/v3/lists/{snapshot_id}/memberships/add-and-remove"),
            Some(json!({"recordIdsToAdd": [customer]})),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(added.body["recordIdsAdded"], json!([customer]));

    for bad in [
        json!({"objectTypeId": "0-1", "processingType": "MANUAL"}),
        json!({"name": "x", "objectTypeId": "0-1", "processingType": "SOMETIMES"}),
        json!({"name": "x", "objectTypeId": "0-1", "processingType": "DYNAMIC"}),
        json!({"name": "x", "objectTypeId": "0-46", "processingType": "MANUAL"}),
        json!({"name": "Customers", "objectTypeId": "0-1", "processingType": "MANUAL"}),
        json!({"name": "y", "objectTypeId": "0-1", "processingType": "DYNAMIC",
               "filterBranch": {"filterBranchType": "AND", "filters": []}}),
        json!({"name": "z", "objectTypeId": "0-1", "processingType": "DYNAMIC",
               "filterBranch": {"filterBranchType": "OR", "filterBranches": [{"filterBranchType": "AND",
                 "filters": [{"filterType": "PROPERTY", "property": "nope",
                              "operation": {"operationType": "STRING", "operator": "IS_EQUAL_TO", "value": "x"}}]}]}}),
    ] {
        let answer = api.post("/crm/v3/lists", bad.clone()).await;
        assert_error_shape(&answer, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    }
}
