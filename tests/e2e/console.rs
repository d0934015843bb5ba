//! End-to-end: the console of a running `hubsync run` (development broker, registry and HubSpot
//! sandbox). Its API answers what its OpenAPI document says, refuses what it must, and its page,
//! driven in Debian's headless Chromium through ChromeDriver (WebDriver over HTTP), loads the
//! log, filters it, shows a parked record's missing field and story, and redrives a dead letter.
//! `make setup` installs chromium and chromium-driver. Screenshots land in
//! `$HUBSYNC_SCREENSHOTS` when set (the README's come from there), else in the test's temp dir.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, SandboxOptions};
use hubsync_schemas::{ChangeKind, ContactChanged, OutcomeStatus, SchemaKind, SyncOutcome};
use serde_json::{Value, json};

mod support;
use support::world::World;
use support::{Child, events, free_port};

const WAIT: Duration = Duration::from_secs(90);
const TOKEN: &str = "console-test-token";

fn contact(id: &str, email: Option<&str>) -> ContactChanged {
    let mut event = events::contact(id, email, ChangeKind::Created);
    event.linkedin_url = None;
    event.company_domain = None;
    event
}

/// The OpenAPI document, and a check of answers against its schemas.
struct OpenApi {
    doc: Value,
}

impl OpenApi {
    fn load() -> Self {
        let text = include_str!("../../topology/src/console/openapi.json");
        OpenApi {
            doc: serde_json::from_str(text).expect("the OpenAPI document is JSON"),
        }
    }

    /// The schema of `path`'s answer with `status`.
    fn schema(&self, method: &str, path: &str, status: u16) -> Value {
        let operation = &self.doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not described");
        let schema =
            operation["responses"][status.to_string()]["content"]["application/json"]["schema"]
                .clone();
        assert!(
            schema.is_object(),
            "{method} {path} has no {status} answer described"
        );
        schema
    }

    fn check(&self, method: &str, path: &str, status: u16, body: &Value) {
        let mut schema = self.schema(method, path, status);
        // References resolve against the document's components.
        schema["components"] = self.doc["components"].clone();
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("the schema of {method} {path} {status}: {e}"));
        let problems: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            problems.is_empty(),
            "{method} {path} {status} does not answer as described: {problems:#?}\n{body:#}"
        );
    }
}

/// An API client of the console that checks every answer against the document.
struct Api {
    base: String,
    http: reqwest::Client,
    spec: OpenApi,
}

impl Api {
    async fn get(&self, path: &str, query: &[(&str, &str)], status: u16) -> Value {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base)).expect("a URL");
        url.query_pairs_mut().extend_pairs(query);
        let answer = self
            .http
            .get(url)
            .send()
            .await
            .expect("the console answers");
        assert_eq!(answer.status().as_u16(), status, "GET {path} {query:?}");
        let body: Value = answer.json().await.expect("JSON");
        self.spec.check("get", path, status, &body);
        body
    }

    async fn redrive(&self, token: Option<&str>, body: &Value, status: u16) -> Value {
        let mut request = self
            .http
            .post(format!("{}/api/v1/dead-letters/redrive", self.base))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.expect("the console answers");
        assert_eq!(answer.status().as_u16(), status, "POST redrive {body}");
        let body: Value = answer.json().await.expect("JSON");
        self.spec
            .check("post", "/api/v1/dead-letters/redrive", status, &body);
        body
    }

    /// Waits until the index holds `events` events of the team.
    async fn wait_for_events(&self, events: u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let counts = self.get("/api/v1/outcomes/counts", &[], 200).await;
            if counts["total"].as_u64() == Some(events) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the index never held {events} events: {counts:#}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_answers_as_described_and_its_page_filters_traces_and_redrives() {
    let port = free_port();
    let world = World::start(SandboxOptions::default(), 1, |config| {
        config
            .replace(
                "[state]\n",
                &format!(
                    "[stages.sink]\nlinger = \"100ms\"\n[admin]\nlisten = \"127.0.0.1:{port}\"\n\
                     token = {{ env = \"TEST_ADMIN_TOKEN\" }}\n[state]\n"
                ),
            )
            .replace(
                "mandatory = [\"email\"]",
                "mandatory = [\"email\", \"last_name\"]",
            )
            .replacen(
                "[[sync.companies.mapping]]",
                "[[sync.contacts.mapping]]\nsource = \"stage\"\nproperty = \"hs_lead_status\"\n\n\
                 [[sync.companies.mapping]]",
                1,
            )
    })
    .await;
    let config = world.state_dir.path().join("hubsync.toml");
    std::fs::write(&config, world.config_text()).expect("config written");
    let mut child = Child::spawn_with_env(
        &["run", "--config", config.to_str().expect("utf-8 path")],
        &[
            ("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN),
            ("TEST_ADMIN_TOKEN", TOKEN),
        ],
    );
    let topic = world.config.topics.contact_changes.clone();
    let mut ada = contact("ct_ada", Some("ada@example.org"));
    ada.last_name = Some("Lovelace".into());
    let mut pat = contact("ct_pat", Some("pat@example.org"));
    pat.last_name = None;
    let mut ivy = contact("ct_ivy", Some("ivy@example.org"));
    ivy.last_name = Some("Ivy".into());
    ivy.fields.insert("stage".into(), Some("new".into()));
    for (key, event) in [("ct_ada", &ada), ("ct_pat", &pat), ("ct_ivy", &ivy)] {
        world
            .publish(SchemaKind::ContactChanged, &topic, key, event)
            .await;
    }

    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        spec: OpenApi::load(),
    };
    // The console comes up with the pipeline.
    let deadline = tokio::time::Instant::now() + WAIT;
    while api.http.get(&api.base).send().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no console");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api.wait_for_events(3).await;

    // The API, each answer checked against the document.
    let teams = api.get("/api/v1/teams", &[], 200).await;
    assert_eq!(teams["single_team"], world.config.team.id.as_str());
    let all = api.get("/api/v1/outcomes", &[], 200).await;
    assert_eq!(all["matched"], 3, "{all:#}");
    let parked = api
        .get("/api/v1/outcomes", &[("status", "parked")], 200)
        .await;
    assert_eq!(parked["outcomes"][0]["event_id"], pat.event_id.as_str());
    assert_eq!(
        parked["outcomes"][0]["missing_fields"],
        json!(["last_name"])
    );
    let by_record = api
        .get(
            "/api/v1/outcomes",
            &[("record", "example.org"), ("limit", "2")],
            200,
        )
        .await;
    assert_eq!(by_record["matched"], 3);
    assert_eq!(by_record["outcomes"].as_array().map(Vec::len), Some(2));
    let counts = api.get("/api/v1/outcomes/counts", &[], 200).await;
    assert_eq!(counts["by_status"]["DEAD_LETTERED"], 1, "{counts:#}");
    let series = api
        .get(
            "/api/v1/outcomes/series",
            &[("since", "1h"), ("step", "10")],
            200,
        )
        .await;
    let charted: u64 = series["by_status"]
        .as_object()
        .expect("by status")
        .values()
        .flat_map(|row| row.as_array().expect("a row").iter())
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(charted, 3, "{series:#}");
    api.get("/api/v1/budget", &[], 200).await;
    let bad = api
        .get("/api/v1/outcomes", &[("status", "done")], 400)
        .await;
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("status:")),
        "{bad}"
    );
    api.get("/api/v1/outcomes", &[("since", "yesterday")], 400)
        .await;
    let unparsed = api.get("/api/v1/outcomes", &[("limit", "ten")], 400).await;
    assert!(
        unparsed["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("query:")),
        "{unparsed}"
    );
    let trace = api
        .get("/api/v1/trace", &[("record", "pat@example.org")], 200)
        .await;
    assert_eq!(trace["found"], true);
    assert_eq!(trace["latest_outcome"]["status"], "PARKED");
    let letters = api.get("/api/v1/dead-letters", &[], 200).await;
    assert_eq!(letters["matched"], 1, "{letters:#}");
    let id = letters["dead_letters"][0]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let letter = api.get("/api/v1/dead-letter", &[("id", &id)], 200).await;
    assert_eq!(letter["error"]["code"], "INVALID_OPTION");
    assert_eq!(letter["detail"]["payload"]["state"], "decoded");
    api.get("/api/v1/dead-letter", &[("id", "nonsense")], 400)
        .await;
    // A redrive needs the token, even on loopback.
    let refused = api.redrive(None, &json!({ "ids": [id] }), 401).await;
    assert!(refused["error"].is_string());
    api.redrive(Some("wrong"), &json!({ "ids": [id] }), 401)
        .await;
    let dry = api
        .redrive(Some(TOKEN), &json!({ "ids": [id], "dry_run": true }), 200)
        .await;
    assert_eq!(dry["redriven"], 0);
    assert_eq!(dry["ids"], json!([id]));

    // The page, in a real browser.
    let shots = screenshot_dir();
    let driver = WebDriver::start().await;
    driver.open(&format!("{}/", api.base)).await;
    driver
        .wait_for(
            "the log's rows",
            "document.querySelectorAll('#outcomes tbody tr').length === 3",
        )
        .await;
    driver
        .wait_for(
            "the charts",
            "document.querySelectorAll('#chart-outcomes rect').length > 0",
        )
        .await;
    driver.screenshot(&shots.join("console-log.png")).await;
    // Filter to parked records: one row, saying which field is missing.
    driver
        .click("//select[@id='status']/option[.='parked']")
        .await;
    driver.click("//button[@id='refresh']").await;
    driver
        .wait_for("one parked row", "document.querySelectorAll('#outcomes tbody tr').length === 1 && document.querySelector('#outcomes tbody tr').dataset.status === 'PARKED'")
        .await;
    let missing = driver
        .eval("return document.querySelector('#outcomes tbody tr .missing').textContent")
        .await;
    assert_eq!(missing, json!("missing last_name "));
    // Its story.
    driver
        .click("//table[@id='outcomes']//a[contains(@class,'record')]")
        .await;
    driver
        .wait_for(
            "the record's story",
            "document.querySelectorAll('#trace li').length > 0",
        )
        .await;
    let story = driver
        .eval("return document.getElementById('trace').textContent")
        .await;
    let story = story.as_str().unwrap_or_default();
    assert!(story.contains("missing last_name"), "{story}");
    driver
        .screenshot(&shots.join("console-parked-story.png"))
        .await;
    // Redrive the dead letter: refused without the token, done with it.
    driver
        .click("//table[@id='letters']//button[contains(@class,'redrive')]")
        .await;
    driver
        .wait_for(
            "a refusal",
            "document.getElementById('redrive-result').textContent.startsWith('redrive refused')",
        )
        .await;
    driver.type_into("//input[@id='token']", TOKEN).await;
    driver
        .click("//table[@id='letters']//button[contains(@class,'redrive')]")
        .await;
    driver
        .wait_for(
            "the redrive",
            "document.getElementById('redrive-result').textContent.startsWith('redriven 1 of 1')",
        )
        .await;
    driver.screenshot(&shots.join("console-redriven.png")).await;
    driver.quit().await;

    // The redriven event went through the pipeline again.
    let again = world
        .read_until(
            &world.config.topics.outcomes,
            WAIT,
            |read: &[SyncOutcome]| {
                read.iter()
                    .any(|o| o.event_id == ivy.event_id && o.redrive_of.as_deref() == Some(&id))
            },
        )
        .await;
    let again = again
        .iter()
        .find(|o| o.event_id == ivy.event_id && o.redrive_of.is_some())
        .expect("the redriven outcome");
    assert_eq!(
        again.status,
        OutcomeStatus::DeadLettered,
        "the cause is not fixed"
    );
    child.kill();
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("HUBSYNC_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"));
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// Just enough of a WebDriver client: ChromeDriver started on a free port, one session of
/// headless Chromium.
struct WebDriver {
    driver: std::process::Child,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl WebDriver {
    async fn start() -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver cannot run ({e}); `make setup` installs it"));
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("chromium is installed (`make setup`)");
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": binary,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                },
            }}}))
            .send()
            .await
            .expect("a session")
            .json()
            .await
            .expect("JSON");
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer:#}"))
            .to_string();
        WebDriver {
            driver,
            http,
            session: format!("{base}/session/{session}"),
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
            .json()
            .await
            .expect("JSON");
        assert!(
            answer["value"].get("error").is_none(),
            "{method} {path} {body}: {answer:#}"
        );
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn find(&self, xpath: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({ "using": "xpath", "value": xpath }),
            )
            .await;
        found[ELEMENT].as_str().expect("an element").to_string()
    }

    async fn click(&self, xpath: &str) {
        let element = self.find(xpath).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await;
    }

    async fn type_into(&self, xpath: &str, text: &str) {
        let element = self.find(xpath).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn eval(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Waits until a JavaScript condition holds on the page.
    async fn wait_for(&self, what: &str, condition: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if self.eval(&format!("return !!({condition})")).await == json!(true) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let page = self.eval("return document.body.innerText").await;
                panic!(
                    "the page never showed {what}; it shows:\n{}",
                    page.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&self, path: &std::path::Path) {
        let data = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64"))
            .expect("a PNG");
        std::fs::write(path, png).expect("screenshot written");
    }

    async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
