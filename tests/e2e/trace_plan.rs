//! End-to-end: `hubsync trace` and `hubsync plan`, run as the binary against what a real pipeline
//! wrote (development broker, schema registry and HubSpot sandbox). Trace tells a created, a
//! parked and a dead-lettered contact's story and finds a record by event id and HubSpot id; plan
//! predicts what the pipeline then does, shows a changed property, and makes no write call.
//! With activities: trace decides a contact's activities again (a created note, a skipped
//! disabled type, an email whose reply triggers a deal) and finds them in HubSpot, also when
//! asked by activity id; plan over the activity topic counts what the pipeline then does, per
//! object, skip code, problem and deal, again without a write call.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hubsync::admin::Health;
use hubsync::config::Config;
use hubsync::pipeline::{Pipeline, Stages};
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, SandboxOptions};
use hubsync_schemas::{
    ActivityRecorded, ActivityType, ChangeKind, CompanyChanged, ContactChanged, OutcomeStatus,
    SchemaKind, Sender, SyncOutcome,
};
use serde_json::{Value, json};

mod support;
use support::events::{self, in_campaign};
use support::world::World;

const WAIT: Duration = Duration::from_secs(90);

/// Upstream `stage` values are not `hs_lead_status` options: the dead letters come from this.
const STAGE_MAPPING: &str =
    "[[sync.contacts.mapping]]\nsource = \"stage\"\nproperty = \"hs_lead_status\"\n\n";

/// Mandatory last names, the stage mapping, and a campaign that does not push to the CRM.
fn team(config: String) -> String {
    let config = config
        .replace(
            "mandatory = [\"email\"]",
            "mandatory = [\"email\", \"last_name\"]",
        )
        .replacen(
            "[[sync.companies.mapping]]",
            &format!("{STAGE_MAPPING}[[sync.companies.mapping]]"),
            1,
        );
    format!("{config}\n[campaigns.\"cmp_off\"]\npush_to_crm = false\n")
}

fn contact(id: &str, email: Option<&str>, last_name: Option<&str>) -> ContactChanged {
    let mut event = events::contact(id, email, ChangeKind::Created);
    event.first_name = Some(format!("First {id}"));
    event.last_name = last_name.map(str::to_string);
    event.job_title = None;
    event.phone = None;
    event.linkedin_url = None;
    event.company_domain = None;
    event
}

fn job_change(id: &str, email: &str, last_name: &str, title: &str) -> ContactChanged {
    let mut event = contact(id, Some(email), Some(last_name));
    event.change = ChangeKind::Updated;
    event.job_title = Some(title.to_string());
    event.changed_fields = vec!["job_title".into()];
    event
}

/// The `hubsync` binary with the world's configuration in a file.
struct Cli {
    dir: tempfile::TempDir,
    config: PathBuf,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    fn document(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {:?}\nstderr: {}", self.stdout, self.stderr))
    }
}

impl Cli {
    fn new(world: &World) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("hubsync.toml");
        std::fs::write(&config, world.config_text()).expect("config written");
        Cli { dir, config }
    }

    /// Another configuration file beside the first, for `--config-from`.
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("config written");
        path.display().to_string()
    }

    async fn run(&self, args: &[&str]) -> Run {
        let config = self.config.display().to_string();
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
            .args(args)
            .args(["--config", &config])
            .env("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN)
            .env("HUBSYNC_LOG", "warn")
            .output()
            .await
            .expect("hubsync runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
        }
    }
}

async fn start(config: &Config, world: &World) -> Pipeline {
    Pipeline::start(config, &world.secrets, Stages::All, Health::default())
        .await
        .expect("pipeline starts")
}

async fn publish(world: &World, events: &[&ContactChanged]) -> Vec<String> {
    let topic = world.config.topics.contact_changes.clone();
    for event in events {
        world
            .publish(
                SchemaKind::ContactChanged,
                &topic,
                &event.contact_id,
                *event,
            )
            .await;
    }
    events.iter().map(|e| e.event_id.clone()).collect()
}

/// The timeline steps of one kind.
fn steps<'a>(trace: &'a Value, kind: &str) -> Vec<&'a Value> {
    trace["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|s| s["kind"] == kind)
        .collect()
}

/// The sandbox's contact with this email.
fn hubspot_contact(world: &World, email: &str) -> Option<Value> {
    world
        .records(ObjectType::Contacts)
        .into_iter()
        .find(|r| r["properties"]["email"] == email)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trace_tells_a_created_a_parked_and_a_dead_lettered_contacts_story() {
    let world = World::start(SandboxOptions::default(), 1, team).await;
    let pipeline = start(&world.config, &world).await;
    let cli = Cli::new(&world);

    let ada = contact("ct_ada", Some("ada@example.org"), Some("Lovelace"));
    let pat = contact("ct_pat", Some("pat@example.org"), None);
    let mut ivy = contact("ct_ivy", Some("ivy@example.org"), Some("Ivy"));
    ivy.fields.insert("stage".into(), Some("new".into()));
    let first = publish(&world, &[&ada, &pat, &ivy]).await;
    world.outcomes_for(&first, WAIT).await;
    let update = job_change("ct_ada", "ada@example.org", "Lovelace", "Analyst");
    let second = publish(&world, &[&update]).await;
    world.outcomes_for(&second, WAIT).await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    let ada_id = hubspot_contact(&world, "ada@example.org").expect("ada in HubSpot")["id"]
        .as_str()
        .expect("id")
        .to_string();

    // A created contact: both events, both commands, CREATED then UPDATED, and the record.
    let trace = cli
        .run(&["trace", "ada@example.org", "--json"])
        .await
        .ok()
        .document();
    assert_eq!(trace["found"], true);
    assert_eq!(trace["asked"], "email:ada@example.org");
    let events = steps(&trace, "event");
    let event_ids: Vec<&str> = events
        .iter()
        .map(|s| s["event_id"].as_str().expect("event id"))
        .collect();
    assert_eq!(event_ids, [ada.event_id.as_str(), update.event_id.as_str()]);
    for event in &events {
        let now = &event["rules_now"];
        assert_eq!(now["decision"]["verdict"], "write", "{now:#}");
        assert_eq!(
            now["decision"]["write"]["identity"], "email:ada@example.org",
            "{now:#}"
        );
        assert_eq!(
            now["sink"]["status"], "UNCHANGED",
            "HubSpot holds these values now: {now:#}"
        );
    }
    assert_eq!(
        events[1]["rules_now"]["decision"]["write"]["properties"]["jobtitle"],
        "Analyst"
    );
    let commands = steps(&trace, "command");
    assert_eq!(commands.len(), 2, "{trace:#}");
    assert_eq!(commands[0]["command"]["action"], "UPSERT");
    assert_eq!(
        commands[0]["command"]["properties"]["lastname"], "Lovelace",
        "{:#}",
        commands[0]
    );
    let outcomes = steps(&trace, "outcome");
    let statuses: Vec<&Value> = outcomes.iter().map(|s| &s["outcome"]["status"]).collect();
    assert_eq!(
        statuses,
        [&json!("CREATED"), &json!("UPDATED")],
        "{trace:#}"
    );
    assert_eq!(outcomes[0]["outcome"]["hubspot_id"], ada_id.as_str());
    assert!(
        outcomes[0]["outcome"]["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(outcomes[0]["outcome"]["attempts"], 1);
    assert!(steps(&trace, "dead_letter").is_empty());
    assert_eq!(trace["latest_outcome"]["status"], "UPDATED");
    let held = &trace["hubspot"][0];
    assert_eq!(held["object"], "contacts");
    assert_eq!(held["id"], ada_id.as_str());
    assert_eq!(held["properties"]["jobtitle"], "Analyst");
    assert_eq!(held["properties"]["lastname"], "Lovelace");
    let text = cli.run(&["trace", "ada@example.org"]).await.ok().stdout;
    for expected in [
        "EVENT",
        "COMMAND",
        "OUTCOME",
        "CREATED CREATED",
        "HubSpot now",
        "rules now (mapping)",
        &ada_id,
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }

    // A parked contact: the rule that held it and the missing field, and nothing in HubSpot.
    let trace = cli
        .run(&["trace", "email:PAT@example.org", "--json"])
        .await
        .ok()
        .document();
    let events = steps(&trace, "event");
    assert_eq!(events.len(), 1, "{trace:#}");
    let now = &events[0]["rules_now"];
    assert_eq!(now["decision"]["rule"], "gating", "{now:#}");
    assert_eq!(
        now["decision"]["write"]["missing_for_create"],
        json!(["last_name"])
    );
    assert_eq!(now["sink"]["status"], "PARKED");
    assert_eq!(now["sink"]["missing"], json!(["last_name"]));
    let outcomes = steps(&trace, "outcome");
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0]["outcome"]["status"], "PARKED");
    assert_eq!(
        outcomes[0]["outcome"]["missing_fields"],
        json!(["last_name"])
    );
    assert_eq!(trace["hubspot"], json!([]));
    let text = cli.run(&["trace", "pat@example.org"]).await.ok().stdout;
    assert!(
        text.contains("while last_name is empty") && text.contains("no record (looked up"),
        "{text}"
    );

    // A dead-lettered contact: the property and the value refused, no command.
    let trace = cli
        .run(&["trace", "ivy@example.org", "--json"])
        .await
        .ok()
        .document();
    let events = steps(&trace, "event");
    assert_eq!(events.len(), 1, "{trace:#}");
    let decision = &events[0]["rules_now"]["decision"];
    assert_eq!(decision["verdict"], "dead_letter", "{decision:#}");
    assert_eq!(decision["code"], "INVALID_OPTION");
    assert_eq!(decision["problems"][0]["field"], "stage");
    assert_eq!(decision["problems"][0]["property"], "hs_lead_status");
    assert!(steps(&trace, "command").is_empty(), "{trace:#}");
    let letters = steps(&trace, "dead_letter");
    assert_eq!(letters.len(), 1, "{trace:#}");
    let error = &letters[0]["dead_letter"]["error"];
    assert_eq!(error["class"], "DATA");
    assert_eq!(error["code"], "INVALID_OPTION");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains("hs_lead_status") && message.contains("\"new\""),
        "{message}"
    );
    assert_eq!(letters[0]["event_id"], ivy.event_id.as_str());
    assert_eq!(
        steps(&trace, "outcome")[0]["outcome"]["status"],
        "DEAD_LETTERED"
    );

    // An event id: the whole story of its record.
    let trace = cli
        .run(&["trace", &update.event_id, "--json"])
        .await
        .ok()
        .document();
    assert_eq!(trace["asked"], format!("id:{}", update.event_id));
    assert_eq!(steps(&trace, "event").len(), 2, "{trace:#}");
    assert_eq!(steps(&trace, "outcome").len(), 2, "{trace:#}");
    assert!(
        trace["identifiers"]["emails"]
            .as_array()
            .expect("emails")
            .contains(&json!("ada@example.org")),
        "{trace:#}"
    );

    // A HubSpot id: the record read first, then its events by its email.
    let trace = cli.run(&["trace", &ada_id, "--json"]).await.ok().document();
    assert_eq!(steps(&trace, "event").len(), 2, "{trace:#}");
    assert_eq!(trace["hubspot"][0]["id"], ada_id.as_str());

    // An unknown record: what was searched, exit 1.
    let unknown = cli.run(&["trace", "nobody@example.org"]).await;
    assert_eq!(unknown.code, 1, "{}\n{}", unknown.stdout, unknown.stderr);
    assert!(
        unknown.stdout.contains("nothing found")
            && unknown
                .stdout
                .contains(&world.config.topics.contact_changes)
            && unknown
                .stdout
                .contains("contacts by email nobody@example.org"),
        "{}",
        unknown.stdout
    );
    let unknown = cli.run(&["trace", "nobody@example.org", "--json"]).await;
    assert_eq!(unknown.code, 1);
    assert_eq!(unknown.document()["found"], false);
    let before = cli
        .run(&["trace", "ada@example.org", "--until", "1h", "--json"])
        .await;
    assert_eq!(before.code, 0, "HubSpot holds it: {}", before.stderr);
    let before = before.document();
    assert!(
        before["timeline"].as_array().expect("timeline").is_empty(),
        "{before:#}"
    );
    assert_eq!(before["hubspot"][0]["id"], ada_id.as_str());
    let bad = cli.run(&["trace", "email:not-an-email"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

fn company(id: &str, domain: &str, name: &str) -> CompanyChanged {
    let mut event = events::company(id, domain, name);
    event.website = None;
    event.industry = None;
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plan_predicts_what_the_pipeline_then_does_and_writes_nothing() {
    // HubSpot's search shows records at once, so the seeded companies are found by search.
    let options = SandboxOptions {
        search_index_lag: Duration::ZERO,
        ..SandboxOptions::default()
    };
    let world = World::start(options, 1, team).await;
    let cli = Cli::new(&world);
    let known_id = world
        .http_admin_create(
            "contacts",
            json!({"email": "known@example.org", "lastname": "Known", "jobtitle": "Engineer"}),
        )
        .await;
    let acme_id = world
        .http_admin_create(
            "companies",
            json!({"domain": "acme.example", "name": "Acme"}),
        )
        .await;
    let initech_id = world
        .http_admin_create("companies", json!({"name": "Initech"}))
        .await;

    let new_one = contact("ct_new1", Some("new1@example.org"), Some("One"));
    let new_two = contact("ct_new2", Some("new2@example.org"), Some("Two"));
    let new_two_later = job_change("ct_new2", "new2@example.org", "Two", "CFO");
    let known = job_change("ct_known", "known@example.org", "Known", "CTO");
    let parked = contact("ct_parked", Some("parked@example.org"), None);
    let nobody = contact("ct_nobody", None, Some("Nobody"));
    // Known by a LinkedIn profile only: found by its upstream id, parked for its email.
    let mut linkedin = contact("ct_linkedin", None, Some("Linked"));
    linkedin.linkedin_url = Some("https://www.linkedin.com/in/linked".into());
    let mut muted = contact("ct_muted", Some("muted@example.org"), Some("Muted"));
    muted.campaign_id = Some("cmp_off".into());
    let mut invalid = contact("ct_ivy", Some("ivy@example.org"), Some("Ivy"));
    invalid.fields.insert("stage".into(), Some("new".into()));
    let events = publish(
        &world,
        &[
            &new_one,
            &new_two,
            &new_two_later,
            &known,
            &parked,
            &nobody,
            &linkedin,
            &muted,
            &invalid,
        ],
    )
    .await;

    let companies = [
        company("co_acme", "acme.example", "Acme Corp"),
        company("co_globex", "globex.example", "Globex"),
        company("co_initech", "initech.example", "Initech"),
    ];
    let company_topic = world.config.topics.company_changes.clone();
    for event in &companies {
        world
            .publish(
                SchemaKind::CompanyChanged,
                &company_topic,
                &event.company_id,
                event,
            )
            .await;
    }

    // The plan, with the sandbox's request log cleared first.
    reqwest::Client::new()
        .delete(format!("{}/__admin/requests", world.hubspot_server.url()))
        .send()
        .await
        .expect("requests cleared")
        .error_for_status()
        .expect("requests cleared");
    let topic = world.config.topics.contact_changes.clone();
    let old_rules = cli.write("old.toml", &world.config_text().replace(STAGE_MAPPING, ""));
    let plan = cli
        .run(&[
            "plan",
            "--topic",
            &topic,
            "--json",
            "--config-from",
            &old_rules,
        ])
        .await
        .ok()
        .document();
    let company_plan = cli
        .run(&["plan", "--topic", &company_topic, "--json"])
        .await
        .ok()
        .document();
    let calls = world.hubspot.request_counts();
    assert!(!calls.is_empty(), "the plan read HubSpot");
    for (endpoint, status) in calls.keys() {
        assert!(
            endpoint.starts_with("GET ")
                || endpoint.ends_with("/batch/read")
                || endpoint.ends_with("/search"),
            "the plan made a write call: {endpoint} ({status}); all calls: {calls:?}"
        );
    }
    assert!(
        calls
            .keys()
            .any(|(e, _)| e == "POST /crm/v3/objects/contacts/batch/read"),
        "contacts are read by email: {calls:?}"
    );
    assert!(
        calls
            .keys()
            .any(|(e, _)| e == "POST /crm/v3/objects/companies/search"),
        "companies are searched by domain: {calls:?}"
    );
    assert_eq!(
        world.records(ObjectType::Contacts).len(),
        1,
        "nothing was created"
    );
    assert_eq!(world.records(ObjectType::Companies).len(), 2);

    // Companies: one renamed, one new, one found by its name (it has no domain yet).
    assert_eq!(
        company_plan["by_status"],
        json!({"CREATED": 1, "UPDATED": 2}),
        "{company_plan:#}"
    );
    let company_diffs = company_plan["diffs"]["records"].as_array().expect("diffs");
    let diff_of = |record: &str| {
        company_diffs
            .iter()
            .find(|r| r["record"] == record)
            .unwrap_or_else(|| panic!("no diff of {record}: {company_plan:#}"))
    };
    assert_eq!(
        diff_of("domain:acme.example")["hubspot_id"],
        acme_id.as_str()
    );
    assert_eq!(
        diff_of("domain:acme.example")["changes"],
        json!([{"property": "name", "hubspot": "Acme", "planned": "Acme Corp", "create_only": false}])
    );
    assert_eq!(
        diff_of("domain:initech.example")["hubspot_id"],
        initech_id.as_str()
    );
    assert_eq!(
        diff_of("domain:initech.example")["changes"],
        json!([{"property": "domain", "hubspot": null, "planned": "initech.example", "create_only": false}])
    );
    assert_eq!(diff_of("domain:globex.example")["status"], "CREATED");

    assert_eq!(plan["events"], 9, "{plan:#}");
    let expected = json!({
        "CREATED": 3, "UPDATED": 1, "SKIPPED": 2, "PARKED": 2, "DEAD_LETTERED": 1
    });
    assert_eq!(plan["by_status"], expected, "{plan:#}");
    assert_eq!(
        plan["skipped"],
        json!({"NO_IDENTIFIER": 1, "CAMPAIGN_PUSH_DISABLED": 1})
    );
    // The contact without an email is parked for it, as the sink parks it.
    assert_eq!(
        plan["parked"],
        json!({"last_name": 1, "email": 1}),
        "{plan:#}"
    );
    assert_eq!(plan["records"], 5, "{plan:#}");
    assert_eq!(plan["records_to_write"], 3, "created or updated: {plan:#}");
    assert_eq!(plan["dead_lettered"], json!({"INVALID_OPTION": 1}));
    assert_eq!(plan["problems"][0]["property"], "hs_lead_status");
    assert_eq!(plan["records_by_status"]["CREATED"], 2);
    let diffs = plan["diffs"]["records"].as_array().expect("diffs");
    let known_plan = diffs
        .iter()
        .find(|r| r["record"] == "email:known@example.org")
        .expect("the known contact's diff");
    assert_eq!(known_plan["status"], "UPDATED");
    assert_eq!(known_plan["hubspot_id"], known_id.as_str());
    assert_eq!(
        known_plan["changes"],
        json!([{"property": "jobtitle", "hubspot": "Engineer", "planned": "CTO", "create_only": false}])
    );
    let two = diffs
        .iter()
        .find(|r| r["record"] == "email:new2@example.org")
        .expect("new2's diff");
    assert_eq!(two["status"], "CREATED");
    assert_eq!(two["events"], 2, "both events coalesce into one record");
    let changed: BTreeMap<&str, (&Value, &Value)> = two["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["property"].as_str().expect("property"),
                (&c["planned"], &c["create_only"]),
            )
        })
        .collect();
    assert_eq!(changed["jobtitle"], (&json!("CFO"), &json!(false)));
    assert_eq!(changed["lifecyclestage"], (&json!("lead"), &json!(true)));
    // Without the stage mapping the refused contact would have been created.
    assert_eq!(
        plan["compare"]["old"]["by_status"]["CREATED"], 4,
        "{plan:#}"
    );
    assert_eq!(plan["compare"]["old"]["dead_lettered"], json!({}));
    assert_eq!(plan["compare"]["current"]["by_status"], expected);

    let text = cli.run(&["plan", "--topic", &topic]).await.ok().stdout;
    for wanted in [
        "9 events, 5 records: 3 would be written (2 created, 1 updated), 2 would not (2 parked)",
        "WOULD BE",
        "NO_IDENTIFIER",
        "PARKED, MISSING",
        "email:known@example.org  would update HubSpot contact",
        "jobtitle: \"Engineer\" -> \"CTO\"",
        "nothing was written",
    ] {
        assert!(text.contains(wanted), "{wanted:?} in:\n{text}");
    }
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let empty = cli
        .run(&["plan", "--topic", &topic, "--since", &future, "--json"])
        .await
        .ok()
        .document();
    assert_eq!(empty["events"], 0, "{empty:#}");
    assert_eq!(empty["by_status"], json!({}));
    let outcomes_topic = cli
        .run(&["plan", "--topic", &world.config.topics.outcomes])
        .await;
    assert_eq!(outcomes_topic.code, 2, "{}", outcomes_topic.stderr);

    // The pipeline then does what the plan said.
    let company_events: Vec<String> = companies.iter().map(|e| e.event_id.clone()).collect();
    let everything: Vec<String> = events.iter().chain(&company_events).cloned().collect();
    let pipeline = start(&world.config, &world).await;
    let outcomes = world.outcomes_for(&everything, WAIT).await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    let done = |ids: &[String]| {
        let mut done: BTreeMap<String, u64> = BTreeMap::new();
        for id in ids {
            let outcome = outcomes
                .get(id)
                .and_then(|o| o.last())
                .unwrap_or_else(|| panic!("no outcome for {id}: {outcomes:#?}"));
            *done.entry(outcome.status.as_str().to_string()).or_insert(0) += 1;
        }
        done
    };
    let planned = |plan: &Value| -> BTreeMap<String, u64> {
        serde_json::from_value(plan["by_status"].clone()).expect("counts")
    };
    assert_eq!(
        done(&events),
        planned(&plan),
        "contacts: the pipeline did what the plan said"
    );
    assert_eq!(
        done(&company_events),
        planned(&company_plan),
        "companies: the pipeline did what the plan said"
    );
    let updated = &outcomes[&known.event_id];
    assert_eq!(
        updated.last().map(|o| o.status),
        Some(OutcomeStatus::Updated)
    );
    assert_eq!(
        updated.last().and_then(|o| o.hubspot_id.as_deref()),
        Some(known_id.as_str())
    );
    let known_now = hubspot_contact(&world, "known@example.org").expect("known contact");
    assert_eq!(known_now["properties"]["jobtitle"], "CTO");
    // Planned again, nothing is left to write: the headline says so, beside the table.
    let again = cli.run(&["plan", "--topic", &topic]).await.ok().stdout;
    assert!(
        again.contains(
            "9 events, 5 records: 0 would be written, 5 would not (3 unchanged, 2 parked)"
        ),
        "{again}"
    );
    let initech = &outcomes[&companies[2].event_id];
    assert_eq!(
        initech.last().and_then(|o| o.hubspot_id.as_deref()),
        Some(initech_id.as_str()),
        "the sink too found Initech by name"
    );
}

/// Activity rules: opens are notes, clicks are off, one mapped user and a default owner, a
/// campaign whose replies create deals and one that does not push to the CRM; activities wait
/// two seconds for a missing contact.
fn activity_team(config: String) -> String {
    support::activity_rules(config)
        + r#"
[stages.sink]
linger = "250ms"
contact_wait = "2s"
"#
}

fn activity(kind: ActivityType, contact_id: &str, email: &str) -> ActivityRecorded {
    events::activity(kind, contact_id, Some(email))
}

async fn publish_activities(world: &World, events: &[&ActivityRecorded]) -> Vec<String> {
    let topic = world.config.topics.activity_events.clone();
    for event in events {
        world
            .publish(
                SchemaKind::ActivityRecorded,
                &topic,
                &event.contact_id,
                *event,
            )
            .await;
    }
    events.iter().map(|e| e.event_id.clone()).collect()
}

/// The one outcome of an event.
fn outcome_of<'a>(
    outcomes: &'a std::collections::HashMap<String, Vec<SyncOutcome>>,
    event_id: &str,
) -> &'a SyncOutcome {
    outcomes
        .get(event_id)
        .and_then(|o| o.last())
        .unwrap_or_else(|| panic!("no outcome for {event_id}: {outcomes:#?}"))
}

/// The timeline's event step of one event.
fn event_step<'a>(trace: &'a Value, event_id: &str) -> &'a Value {
    steps(trace, "event")
        .into_iter()
        .find(|s| s["event_id"] == event_id)
        .unwrap_or_else(|| panic!("no event {event_id} in {trace:#}"))
}

/// The HubSpot record of `object` the trace shows with this id.
fn shown<'a>(trace: &'a Value, object: &str, id: &str) -> &'a Value {
    trace["hubspot"]
        .as_array()
        .expect("hubspot")
        .iter()
        .find(|r| r["object"] == object && r["id"] == id)
        .unwrap_or_else(|| panic!("no {object} {id} in {:#}", trace["hubspot"]))
}

/// Clears the sandbox's request log.
async fn clear_requests(world: &World) {
    reqwest::Client::new()
        .delete(format!("{}/__admin/requests", world.hubspot_server.url()))
        .send()
        .await
        .expect("requests cleared")
        .error_for_status()
        .expect("requests cleared");
}

/// Every call HubSpot answered since the log was cleared was a read.
fn only_reads(world: &World) -> BTreeMap<(String, u16), u64> {
    let calls = world.hubspot.request_counts();
    for (endpoint, status) in calls.keys() {
        assert!(
            endpoint.starts_with("GET ")
                || endpoint.ends_with("/batch/read")
                || endpoint.ends_with("/search"),
            "a write call: {endpoint} ({status}); all calls: {calls:?}"
        );
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trace_decides_a_contacts_activities_and_finds_them_in_hubspot() {
    // Search lags writes as HubSpot's does: what outcomes name is also read by id.
    let world = World::start(SandboxOptions::default(), 1, activity_team).await;
    let pipeline = start(&world.config, &world).await;
    let cli = Cli::new(&world);

    let ada = contact("ct_ada", Some("ada@example.org"), Some("Lovelace"));
    let created = publish(&world, &[&ada]).await;
    world.outcomes_for(&created, WAIT).await;
    let mut opened = activity(ActivityType::EmailOpened, "ct_ada", "ada@example.org");
    opened.sender = Some(Sender {
        user_id: "usr_ada".into(),
        email: None,
    });
    let clicked = activity(ActivityType::EmailClicked, "ct_ada", "ada@example.org");
    let replied = in_campaign(
        activity(ActivityType::EmailReplied, "ct_ada", "Ada@Example.org"),
        "cmp_q3",
    );
    let mut events = publish_activities(&world, &[&opened, &clicked, &replied]).await;
    let deal_event = format!("{}:deal", replied.event_id);
    events.push(deal_event.clone());
    let outcomes = world.outcomes_for(&events, WAIT).await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    let note = outcome_of(&outcomes, &opened.event_id);
    assert_eq!(note.status, OutcomeStatus::Created, "{note:?}");
    let note_id = note.hubspot_id.clone().expect("the note's id");
    assert_eq!(
        outcome_of(&outcomes, &clicked.event_id).reason_code,
        "ACTIVITY_TYPE_DISABLED"
    );
    let email_id = outcome_of(&outcomes, &replied.event_id)
        .hubspot_id
        .clone()
        .expect("the email's id");
    let deal_id = outcome_of(&outcomes, &deal_event)
        .hubspot_id
        .clone()
        .expect("the deal's id");
    let note_now = world
        .records(ObjectType::Notes)
        .into_iter()
        .find(|n| n["id"] == note_id.as_str())
        .expect("the note in HubSpot");
    assert_eq!(note_now["properties"]["hubspot_owner_id"], "70000003");

    let trace = cli
        .run(&["trace", "ada@example.org", "--json"])
        .await
        .ok()
        .document();
    assert_eq!(steps(&trace, "event").len(), 4, "{trace:#}");

    // The note: its object, the mapped sender's owner, its links, and HubSpot has it.
    let now = &event_step(&trace, &opened.event_id)["rules_now"];
    let decision = &now["decision"];
    assert_eq!(decision["verdict"], "write", "{now:#}");
    assert_eq!(decision["rule"], "activities");
    assert_eq!(
        decision["write"]["identity"],
        format!("hubsync_activity_id:{}", opened.activity_id)
    );
    let activity = &decision["activity"];
    assert_eq!(activity["object"], "note");
    assert_eq!(activity["owner"]["source"], "sender");
    assert_eq!(activity["owner"]["owner"], "70000003");
    assert_eq!(
        activity["links"],
        json!([
            {"object": "contact", "identity": "email:ada@example.org", "type_id": 202},
            {"object": "company", "identity": "company_id:co_1", "type_id": 190},
        ])
    );
    assert_eq!(activity["deal"], Value::Null);
    assert_eq!(
        now["sink"],
        json!({"status": "UNCHANGED", "id": note_id}),
        "HubSpot holds the note: {now:#}"
    );

    // The click: skipped by the activity rules, as the pipeline did.
    let decision = &event_step(&trace, &clicked.event_id)["rules_now"]["decision"];
    assert_eq!(decision["verdict"], "skip", "{decision:#}");
    assert_eq!(decision["rule"], "activities");
    assert_eq!(decision["code"], "ACTIVITY_TYPE_DISABLED");

    // The reply: an email owned by the default owner (Ada has no owner), and its deal.
    let now = &event_step(&trace, &replied.event_id)["rules_now"];
    let activity = &now["decision"]["activity"];
    assert_eq!(activity["object"], "email", "{now:#}");
    assert_eq!(activity["owner"]["source"], "default");
    assert_eq!(activity["owner"]["owner"], "70000001");
    assert_eq!(activity["deal"]["key"], "hubsync_deal_key:ct_ada:cmp_q3");
    assert_eq!(activity["deal"]["properties"]["pipeline"], "default");
    assert_eq!(
        activity["deal"]["sink"],
        json!({"status": "UNCHANGED", "id": deal_id})
    );
    assert_eq!(now["sink"], json!({"status": "UNCHANGED", "id": email_id}));

    // Commands and outcomes of the activities and the deal.
    let commands: Vec<(&Value, &Value)> = steps(&trace, "command")
        .into_iter()
        .map(|s| (&s["event_id"], &s["command"]["object_type"]))
        .collect();
    for (event, object) in [
        (&ada.event_id, "CONTACT"),
        (&opened.event_id, "NOTE"),
        (&deal_event, "DEAL"),
        (&replied.event_id, "EMAIL"),
    ] {
        assert!(
            commands.contains(&(&json!(event), &json!(object))),
            "{object} command of {event}: {commands:?}"
        );
    }
    assert_eq!(commands.len(), 4, "{commands:?}");
    let statuses = outcome_statuses(&trace);
    assert_eq!(statuses.len(), 5, "{statuses:?}");
    assert_eq!(statuses[&clicked.event_id], "SKIPPED");
    assert_eq!(statuses[&deal_event], "CREATED");

    // HubSpot now: the contact, the note, the email and the deal, as the sandbox holds them.
    assert_eq!(
        shown(&trace, "notes", &note_id)["properties"]["hubsync_activity_id"],
        opened.activity_id.as_str()
    );
    assert_eq!(
        shown(&trace, "notes", &note_id)["properties"]["hubspot_owner_id"],
        "70000003"
    );
    assert_eq!(
        shown(&trace, "emails", &email_id)["properties"]["hubspot_owner_id"],
        "70000001"
    );
    assert_eq!(
        shown(&trace, "deals", &deal_id)["properties"]["hubsync_deal_key"],
        "ct_ada:cmp_q3"
    );
    assert!(
        trace["hubspot"]
            .as_array()
            .expect("hubspot")
            .iter()
            .any(|r| r["object"] == "contacts"),
        "{trace:#}"
    );

    let text = cli.run(&["trace", "ada@example.org"]).await.ok().stdout;
    for expected in [
        "rules now (activities): would create NOTE",
        "as note, activity id",
        "owner (sender): sender usr_ada is mapped to owner 70000003",
        "skipped ACTIVITY_TYPE_DISABLED",
        "deal hubsync_deal_key:ct_ada:cmp_q3",
        "would not be created again",
        "notes by hubsync_activity_id",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }

    // By activity id: the activity, its contact's story, and the note in HubSpot.
    let by_id = cli
        .run(&["trace", &opened.activity_id, "--json"])
        .await
        .ok()
        .document();
    assert_eq!(by_id["asked"], format!("id:{}", opened.activity_id));
    assert_eq!(
        event_step(&by_id, &opened.event_id)["rules_now"]["decision"]["activity"]["object"],
        "note"
    );
    event_step(&by_id, &ada.event_id);
    assert!(
        by_id["identifiers"]["activity_ids"]
            .as_array()
            .expect("activity ids")
            .contains(&json!(opened.activity_id)),
        "{by_id:#}"
    );
    shown(&by_id, "notes", &note_id);
}

/// The outcome statuses of a trace, by event id.
fn outcome_statuses(trace: &Value) -> BTreeMap<String, String> {
    steps(trace, "outcome")
        .into_iter()
        .map(|s| {
            (
                s["event_id"].as_str().expect("event id").to_string(),
                s["outcome"]["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

/// Contacts parked for want of an email have no email to be found by: trace finds them by their
/// upstream id, by their LinkedIn profile, and by an email the contact's other events carry, a
/// contact event's or an activity's, through the upstream id those events share.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trace_finds_a_contact_parked_without_an_email() {
    let world = World::start(SandboxOptions::default(), 1, activity_team).await;
    let pipeline = start(&world.config, &world).await;
    let cli = Cli::new(&world);

    // Lee: parked without an email, then given one (and created under it).
    let mut lee_parked = contact("ct_lee", None, Some("Lee"));
    lee_parked.linkedin_url = Some("https://www.linkedin.com/in/lee".into());
    // Kim: parked without an email for good; her activity carries her address.
    let mut kim_parked = contact("ct_kim", None, Some("Kim"));
    kim_parked.linkedin_url = Some("https://www.linkedin.com/in/kim".into());
    let parked = publish(&world, &[&lee_parked, &kim_parked]).await;
    let outcomes = world.outcomes_for(&parked, WAIT).await;
    for id in &parked {
        let outcome = outcome_of(&outcomes, id);
        assert_eq!(outcome.status, OutcomeStatus::Parked, "{outcome:?}");
        assert_eq!(outcome.missing_fields, ["email"], "{outcome:?}");
    }
    let mut lee_later = contact("ct_lee", Some("lee@example.org"), Some("Lee"));
    lee_later.linkedin_url = lee_parked.linkedin_url.clone();
    let mut later = publish(&world, &[&lee_later]).await;
    let kim_opened = activity(ActivityType::EmailOpened, "ct_kim", "kim@example.org");
    later.extend(publish_activities(&world, &[&kim_opened]).await);
    let outcomes = world.outcomes_for(&later, WAIT).await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    assert_eq!(
        outcome_of(&outcomes, &lee_later.event_id).status,
        OutcomeStatus::Created
    );

    for asked in ["ct_lee", "lee@example.org"] {
        let trace = cli.run(&["trace", asked, "--json"]).await.ok().document();
        event_step(&trace, &lee_later.event_id);
        // The parked event, decided again: parked for its email, as the sink parked it.
        let now = &event_step(&trace, &lee_parked.event_id)["rules_now"];
        assert_eq!(
            now["decision"]["write"]["identity"], "contact_id:ct_lee",
            "{asked}: {now:#}"
        );
        assert_eq!(
            now["decision"]["write"]["missing_for_create"],
            json!(["email"])
        );
        assert_eq!(now["sink"]["status"], "PARKED", "{asked}: {now:#}");
        assert_eq!(now["sink"]["missing"], json!(["email"]), "{asked}: {now:#}");
        let statuses = outcome_statuses(&trace);
        assert_eq!(
            statuses.get(&lee_parked.event_id).map(String::as_str),
            Some("PARKED"),
            "{asked}: {statuses:?}"
        );
        assert_eq!(
            statuses.get(&lee_later.event_id).map(String::as_str),
            Some("CREATED"),
            "{asked}: {statuses:?}"
        );
        let commands: Vec<&Value> = steps(&trace, "command")
            .into_iter()
            .map(|s| &s["event_id"])
            .collect();
        assert!(
            commands.contains(&&json!(lee_parked.event_id)),
            "{asked}: {commands:?}"
        );
    }

    for asked in [
        "ct_kim",
        "kim@example.org",
        "https://www.linkedin.com/in/kim/",
    ] {
        let trace = cli.run(&["trace", asked, "--json"]).await.ok().document();
        event_step(&trace, &kim_opened.event_id);
        let now = &event_step(&trace, &kim_parked.event_id)["rules_now"];
        assert_eq!(now["sink"]["status"], "PARKED", "{asked}: {now:#}");
        assert_eq!(
            outcome_statuses(&trace)
                .get(&kim_parked.event_id)
                .map(String::as_str),
            Some("PARKED"),
            "{asked}: {trace:#}"
        );
    }
    let text = cli.run(&["trace", "kim@example.org"]).await.ok().stdout;
    for expected in [
        "contact ct_kim CREATED, no email",
        "may not create it while email is empty",
        "then: would be parked PARKED_MISSING_FIELDS: not in HubSpot and email is empty",
        "missing email",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plan_over_activities_predicts_what_the_pipeline_then_does_and_writes_nothing() {
    let options = SandboxOptions {
        search_index_lag: Duration::ZERO,
        ..SandboxOptions::default()
    };
    let world = World::start(options, 1, activity_team).await;
    let cli = Cli::new(&world);
    world
        .http_admin_create(
            "contacts",
            json!({"email": "known@example.org", "lastname": "Known", "hubspot_owner_id": "70000002"}),
        )
        .await;

    // An earlier run created one note.
    let old = activity(ActivityType::EmailOpened, "ct_known", "known@example.org");
    let pipeline = start(&world.config, &world).await;
    let first = publish_activities(&world, &[&old]).await;
    let earlier = world.outcomes_for(&first, WAIT).await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    assert_eq!(
        outcome_of(&earlier, &old.event_id).status,
        OutcomeStatus::Created
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;

    let mut old_again = old.clone();
    old_again.event_id = uuid::Uuid::new_v4().to_string();
    let opened = activity(ActivityType::EmailOpened, "ct_known", "known@example.org");
    let replied = in_campaign(
        activity(ActivityType::EmailReplied, "ct_known", "known@example.org"),
        "cmp_q3",
    );
    let called = activity(ActivityType::Call, "ct_known", "known@example.org");
    let ghost = activity(ActivityType::EmailOpened, "ct_ghost", "ghost@example.org");
    let clicked = activity(ActivityType::EmailClicked, "ct_known", "known@example.org");
    let mut blocked = activity(ActivityType::Unsubscribed, "ct_known", "known@example.org");
    blocked.unsubscribe_self_initiated = Some(false);
    let quiet = in_campaign(
        activity(ActivityType::EmailSent, "ct_known", "known@example.org"),
        "cmp_quiet",
    );
    let bad = activity(ActivityType::Call, "ct_bad", "not-an-email");
    let events = publish_activities(
        &world,
        &[
            &old_again, &opened, &replied, &called, &ghost, &clicked, &blocked, &quiet, &bad,
        ],
    )
    .await;

    clear_requests(&world).await;
    let topic = world.config.topics.activity_events.clone();
    let plan = cli
        .run(&["plan", "--topic", &topic, "--since", &since, "--json"])
        .await
        .ok()
        .document();
    let text = cli
        .run(&["plan", "--topic", &topic, "--since", &since])
        .await
        .ok()
        .stdout;
    let calls = only_reads(&world);
    for read in [
        "POST /crm/v3/objects/notes/search",
        "POST /crm/v3/objects/deals/search",
        "POST /crm/v3/objects/contacts/batch/read",
    ] {
        assert!(calls.keys().any(|(e, _)| e == read), "{read}: {calls:?}");
    }
    assert_eq!(
        world.records(ObjectType::Notes).len(),
        1,
        "nothing was created"
    );
    assert!(world.records(ObjectType::Deals).is_empty());

    assert_eq!(plan["events"], 9, "{plan:#}");
    assert_eq!(
        plan["by_status"],
        json!({
            "CREATED": 3, "UNCHANGED": 1, "WAITS_FOR_CONTACT": 1, "SKIPPED": 3, "DEAD_LETTERED": 1
        }),
        "{plan:#}"
    );
    assert_eq!(
        plan["activities"],
        json!({
            "NOTE": {"CREATED": 1, "UNCHANGED": 1, "WAITS_FOR_CONTACT": 1},
            "EMAIL": {"CREATED": 1},
            "CALL": {"CREATED": 1},
        })
    );
    assert_eq!(
        plan["skipped"],
        json!({
            "ACTIVITY_TYPE_DISABLED": 1,
            "UNSUBSCRIBE_NOT_SELF_INITIATED": 1,
            "CAMPAIGN_PUSH_DISABLED": 1
        })
    );
    assert_eq!(plan["dead_lettered"], json!({"INVALID_EMAIL": 1}));
    assert_eq!(plan["problems"][0]["field"], "contact_email");
    assert_eq!(plan["deals"]["by_status"], json!({"CREATED": 1}));
    assert_eq!(plan["records_to_write"], 3, "{plan:#}");
    assert_eq!(
        plan["deals"]["records"][0]["record"],
        "hubsync_deal_key:ct_known:cmp_q3"
    );
    let diffs = plan["diffs"]["records"].as_array().expect("diffs");
    let opened_plan = diffs
        .iter()
        .find(|r| r["record"] == format!("hubsync_activity_id:{}", opened.activity_id))
        .expect("the new note's diff");
    let owner = opened_plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["property"] == "hubspot_owner_id")
        .expect("an owner");
    assert_eq!(
        owner["planned"], "70000002",
        "the contact's owner: {opened_plan:#}"
    );
    for wanted in [
        "9 events, 5 records: 3 would be written (3 created), 2 would not (1 unchanged, 1 waits \
         for contact); 1 deal: 1 would be written (1 created)",
        "ACTIVITIES AS",
        "WAITS_FOR_CONTACT",
        "DEALS WOULD BE",
        "ACTIVITY_TYPE_DISABLED",
        "after stages.sink.contact_wait (2s)",
        "would create a deal (triggered by 1 activity)",
        "nothing was written",
    ] {
        assert!(text.contains(wanted), "{wanted:?} in:\n{text}");
    }

    // The pipeline then does what the plan said; the waiting note is parked after 2 s.
    let deal_event = format!("{}:deal", replied.event_id);
    let everything: Vec<String> = events.iter().cloned().chain([deal_event.clone()]).collect();
    let pipeline = start(&world.config, &world).await;
    let outcomes = world.outcomes_for(&everything, WAIT).await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    let mut done: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_object: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    for id in &events {
        let outcome = outcome_of(&outcomes, id);
        let status = outcome.status.as_str().to_string();
        *done.entry(status.clone()).or_insert(0) += 1;
        match outcome.status {
            OutcomeStatus::Skipped => *skipped.entry(outcome.reason_code.clone()).or_insert(0) += 1,
            OutcomeStatus::DeadLettered => {}
            _ => {
                let object = outcome
                    .hubspot_object_type
                    .map(|o| o.as_str().to_string())
                    .expect("an object");
                *by_object
                    .entry(object)
                    .or_default()
                    .entry(status)
                    .or_insert(0) += 1;
            }
        }
    }
    // What waited for its contact the pipeline parked once it had waited contact_wait.
    let as_done = |counts: &Value| -> BTreeMap<String, u64> {
        let counts: BTreeMap<String, u64> = serde_json::from_value(counts.clone()).expect("counts");
        let mut done = BTreeMap::new();
        for (status, n) in counts {
            let status = if status == "WAITS_FOR_CONTACT" {
                "PARKED".to_string()
            } else {
                status
            };
            *done.entry(status).or_insert(0) += n;
        }
        done
    };
    assert_eq!(done, as_done(&plan["by_status"]), "{outcomes:#?}");
    let planned_objects: BTreeMap<String, BTreeMap<String, u64>> = plan["activities"]
        .as_object()
        .expect("activities")
        .iter()
        .map(|(object, counts)| (object.clone(), as_done(counts)))
        .collect();
    assert_eq!(by_object, planned_objects);
    assert_eq!(
        skipped,
        serde_json::from_value::<BTreeMap<String, u64>>(plan["skipped"].clone()).expect("counts")
    );
    assert_eq!(
        outcome_of(&outcomes, &ghost.event_id).reason_code,
        "PARKED_CONTACT_MISSING"
    );
    assert_eq!(
        outcome_of(&outcomes, &old_again.event_id).hubspot_id,
        outcome_of(&earlier, &old.event_id).hubspot_id,
        "the note already there"
    );
    assert_eq!(
        outcome_of(&outcomes, &deal_event).status,
        OutcomeStatus::Created
    );
    let deals = world.records(ObjectType::Deals);
    assert_eq!(deals.len(), 1);
    assert_eq!(
        deals[0]["properties"]["hubsync_deal_key"],
        "ct_known:cmp_q3"
    );
    let note = world
        .records(ObjectType::Notes)
        .into_iter()
        .find(|n| n["properties"]["hubsync_activity_id"] == opened.activity_id.as_str())
        .expect("the new note");
    assert_eq!(
        note["properties"]["hubspot_owner_id"], "70000002",
        "the owner the plan showed"
    );
}
