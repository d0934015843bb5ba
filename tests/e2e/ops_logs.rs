//! End-to-end: `hubsync logs` and `hubsync dlq list|show|redrive`, run as the binary against the
//! outcomes and dead letters a real pipeline wrote (development broker, schema registry and
//! HubSpot sandbox), and redriven dead letters going through the pipeline again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use hubsync::admin::Health;
use hubsync::config::Config;
use hubsync::pipeline::{Pipeline, Stages};
use hubsync_sandbox::hubspot::faults::Faults;
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, SandboxOptions};
use hubsync_schemas::{ChangeKind, ContactChanged, OutcomeStatus, SchemaKind, SyncOutcome};
use serde_json::Value;

mod support;
use support::events;
use support::world::World;

const WAIT: Duration = Duration::from_secs(90);

/// The rule the first test's dead letter comes from: upstream `stage` values are not
/// `hs_lead_status` options.
const STAGE_MAPPING: &str =
    "[[sync.contacts.mapping]]\nsource = \"stage\"\nproperty = \"hs_lead_status\"\n\n";

fn contact(id: &str, email: Option<&str>) -> ContactChanged {
    let mut event = events::contact(id, email, ChangeKind::Created);
    event.linkedin_url = None;
    event.company_domain = None;
    event
}

/// The `hubsync` binary with the world's configuration in a file.
struct Cli {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

/// What one run printed.
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

    fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
            .collect()
    }

    fn document(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", self.stdout))
    }
}

impl Cli {
    fn new(world: &World) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("hubsync.toml");
        std::fs::write(&config, world.config_text()).expect("config written");
        Cli { _dir: dir, config }
    }

    async fn run(&self, args: &[&str]) -> Run {
        let config = self.config.display().to_string();
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
            .args(args)
            .args(["--config", &config])
            .env("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN)
            .env("HUBSYNC_LOG", "warn")
            .env("XDG_CACHE_HOME", self._dir.path())
            .output()
            .await
            .expect("hubsync runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
        }
    }

    /// Outcomes on the log, by `logs --counts --json`.
    async fn total(&self) -> u64 {
        let counts = self
            .run(&["logs", "--counts", "--json"])
            .await
            .ok()
            .document();
        counts["total"].as_u64().expect("total")
    }
}

async fn start(config: &Config, world: &World) -> Pipeline {
    Pipeline::start(config, &world.secrets, Stages::All, Health::default())
        .await
        .expect("pipeline starts")
}

/// Reads outcomes until `event_id` has one that `until` accepts.
async fn outcome_where(
    world: &World,
    event_id: &str,
    until: impl Fn(&SyncOutcome) -> bool,
) -> SyncOutcome {
    let read = world
        .read_until(
            &world.config.topics.outcomes,
            WAIT,
            |read: &[SyncOutcome]| read.iter().any(|o| o.event_id == event_id && until(o)),
        )
        .await;
    read.into_iter()
        .find(|o| o.event_id == event_id && until(o))
        .unwrap_or_else(|| panic!("no such outcome for {event_id}"))
}

fn statuses(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["status"].as_str().expect("status"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outcomes_and_dead_letters_are_queried_and_a_fixed_dead_letter_is_redriven() {
    let world = World::start(SandboxOptions::default(), 1, |config| {
        config
            .replace("[state]\n", "[stages.sink]\nlinger = \"100ms\"\n[state]\n")
            .replace(
                "mandatory = [\"email\"]",
                "mandatory = [\"email\", \"last_name\"]",
            )
            .replacen(
                "[[sync.companies.mapping]]",
                &format!("{STAGE_MAPPING}[[sync.companies.mapping]]"),
                1,
            )
    })
    .await;
    let pipeline = start(&world.config, &world).await;
    let topic = world.config.topics.contact_changes.clone();
    let cli = Cli::new(&world);

    let mut ada = contact("ct_ada", Some("ada@example.org"));
    ada.first_name = Some("Ada".into());
    ada.last_name = Some("Lovelace".into());
    let mut parked = contact("ct_pat", Some("parked@example.org"));
    parked.last_name = None;
    let skipped = contact("ct_nobody", None);
    let mut invalid = contact("ct_ivy", Some("ivy@example.org"));
    invalid.last_name = Some("Ivy".into());
    invalid.fields.insert("stage".into(), Some("new".into()));
    for (key, event) in [
        ("ct_ada", &ada),
        ("ct_pat", &parked),
        ("ct_nobody", &skipped),
        ("ct_ivy", &invalid),
    ] {
        world
            .publish(SchemaKind::ContactChanged, &topic, key, event)
            .await;
    }
    let first: Vec<String> = [&ada, &parked, &skipped, &invalid]
        .iter()
        .map(|e| e.event_id.clone())
        .collect();
    world.outcomes_for(&first, WAIT).await;
    let mut update = contact("ct_ada", Some("ada@example.org"));
    update.change = ChangeKind::Updated;
    update.last_name = Some("Lovelace".into());
    update.job_title = Some("Analyst".into());
    update.changed_fields = vec!["job_title".into()];
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_ada", &update)
        .await;
    world
        .outcomes_for(std::slice::from_ref(&update.event_id), WAIT)
        .await;

    // Status filter.
    let written = cli
        .run(&["logs", "--json", "--status", "created,updated"])
        .await
        .ok()
        .lines();
    assert_eq!(statuses(&written), ["CREATED", "UPDATED"], "{written:#?}");
    assert_eq!(written[0]["event_id"], ada.event_id.as_str());
    assert_eq!(written[1]["event_id"], update.event_id.as_str());
    assert_eq!(written[0]["record_label"], "email:ada@example.org");
    assert_eq!(written[0]["hubspot_id"], written[1]["hubspot_id"]);
    assert_eq!(
        written[0]["log"]["topic"],
        world.config.topics.outcomes.as_str()
    );

    // Record filters: a bare email, a label, a domain.
    let pat = cli
        .run(&["logs", "--json", "--record", "parked@example.org"])
        .await
        .ok()
        .lines();
    assert_eq!(statuses(&pat), ["PARKED"], "{pat:#?}");
    assert_eq!(pat[0]["event_id"], parked.event_id.as_str());
    assert_eq!(pat[0]["missing_fields"], serde_json::json!(["last_name"]));
    let by_label = cli
        .run(&["logs", "--json", "--record", "email:ada@example.org"])
        .await
        .ok()
        .lines();
    assert_eq!(statuses(&by_label), ["CREATED", "UPDATED"]);
    let by_domain = cli
        .run(&["logs", "--json", "--record", "example.org"])
        .await
        .ok()
        .lines();
    assert_eq!(
        by_domain.len(),
        4,
        "every outcome about an @example.org email: {by_domain:#?}"
    );

    // Time windows: nothing after a future instant; everything in the last ten minutes (the
    // development broker cannot look offsets up by time, so this reads from the start).
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    let none = cli
        .run(&["logs", "--json", "--since", &future.to_rfc3339()])
        .await
        .ok();
    assert_eq!(none.stdout, "", "{}", none.stderr);
    let recent = cli
        .run(&["logs", "--json", "--since", "10m"])
        .await
        .ok()
        .lines();
    assert_eq!(recent.len(), 5, "{recent:#?}");
    let old = cli
        .run(&["logs", "--json", "--until", "1h"])
        .await
        .ok()
        .lines();
    assert!(old.is_empty(), "{old:#?}");

    // Counts.
    let counts = cli
        .run(&["logs", "--counts", "--json"])
        .await
        .ok()
        .document();
    assert_eq!(counts["total"], 5, "{counts:#}");
    for (status, count) in [
        ("CREATED", 1),
        ("UPDATED", 1),
        ("PARKED", 1),
        ("SKIPPED", 1),
        ("DEAD_LETTERED", 1),
    ] {
        assert_eq!(counts["by_status"][status], count, "{status}: {counts:#}");
    }
    assert_eq!(counts["by_reason"]["NO_IDENTIFIER"], 1, "{counts:#}");
    assert_eq!(counts["by_reason"]["INVALID_OPTION"], 1, "{counts:#}");
    // Read from the topic instead of the index: the same counts.
    let from_topic = cli
        .run(&["logs", "--counts", "--json", "--no-index"])
        .await
        .ok()
        .document();
    assert_eq!(from_topic, counts);
    // A parked record's table row says which field is missing, first.
    let parked_rows = cli.run(&["logs", "--status", "parked"]).await.ok();
    assert!(
        parked_rows.stdout.contains("missing last_name: "),
        "{}",
        parked_rows.stdout
    );
    let table = cli.run(&["logs", "--status", "skipped"]).await.ok();
    assert!(
        table.stdout.starts_with("TIME (UTC)") && table.stdout.contains("NO_IDENTIFIER"),
        "{}",
        table.stdout
    );

    // The dead letter: listed, then shown with its payload decoded.
    let letters = cli.run(&["dlq", "list", "--json"]).await.ok().lines();
    assert_eq!(letters.len(), 1, "{letters:#?}");
    let letter = &letters[0];
    assert_eq!(letter["error"]["code"], "INVALID_OPTION");
    assert_eq!(letter["error"]["class"], "DATA");
    assert_eq!(letter["event_id"], invalid.event_id.as_str());
    assert_eq!(letter["record"], "email:ivy@example.org");
    assert_eq!(letter["source"]["topic"], topic.as_str());
    let id = letter["id"].as_str().expect("id").to_string();
    assert!(
        id.starts_with(&format!("{}/0/", world.config.topics.dlq)),
        "{id}"
    );
    let none = cli
        .run(&["dlq", "list", "--json", "--class", "retries-exhausted"])
        .await
        .ok();
    assert_eq!(none.stdout, "");

    let shown = cli
        .run(&["dlq", "show", &id, "--json"])
        .await
        .ok()
        .document();
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["detail"]["payload"]["state"], "decoded");
    assert_eq!(
        shown["detail"]["payload"]["value"]["email"],
        "ivy@example.org"
    );
    assert_eq!(
        shown["detail"]["payload"]["value"]["fields"]["stage"],
        "new"
    );
    assert_eq!(
        shown["detail"]["connect_headers"]["__connect.errors.topic"],
        topic.as_str()
    );
    let text = cli.run(&["dlq", "show", &id]).await.ok();
    assert!(
        text.stdout.contains("\"email\": \"ivy@example.org\"")
            && text.stdout.contains("hs_lead_status"),
        "{}",
        text.stdout
    );
    let missing = cli
        .run(&["dlq", "show", &format!("{}/0/999", world.config.topics.dlq)])
        .await;
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no record at"),
        "{}",
        missing.stderr
    );

    // A dry run publishes nothing.
    let before = cli.total().await;
    let dry = cli
        .run(&["dlq", "redrive", &id, "--dry-run", "--json"])
        .await
        .ok()
        .document();
    assert_eq!(dry["report"]["dry_run"], true);
    assert_eq!(dry["report"]["selected"], 1);
    assert_eq!(dry["report"]["redriven"], 0);
    assert_eq!(dry["report"]["topics"][topic.as_str()], 1);
    let unselected = cli.run(&["dlq", "redrive"]).await;
    assert_eq!(unselected.code, 2, "no selection is a usage error");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cli.total().await, before, "a dry run changes nothing");

    // The fix: the team drops the rule that maps `stage`; then the dead letter is redriven.
    pipeline.stop().await.expect("pipeline stops cleanly");
    let fixed_text = world.config_text().replace(STAGE_MAPPING, "");
    assert_ne!(fixed_text, world.config_text());
    let fixed = Config::from_toml_str(&fixed_text).expect("fixed config");
    let pipeline = start(&fixed, &world).await;
    let redriven = cli
        .run(&["dlq", "redrive", &id, "--json"])
        .await
        .ok()
        .document();
    assert_eq!(redriven["report"]["redriven"], 1, "{redriven:#}");
    assert_eq!(redriven["report"]["ids"], serde_json::json!([id]));
    let again = outcome_where(&world, &invalid.event_id, |o| o.redrive_of.is_some()).await;
    assert_eq!(again.status, OutcomeStatus::Created, "{again:?}");
    assert_eq!(again.redrive_of.as_deref(), Some(id.as_str()));
    // The index holds each event once, by its latest outcome; the topic holds its history.
    let latest = cli
        .run(&["logs", "--json", "--record", "ivy@example.org"])
        .await
        .ok()
        .lines();
    assert_eq!(statuses(&latest), ["CREATED"], "{latest:#?}");
    assert_eq!(latest[0]["redrive_of"], id.as_str());
    let history = cli
        .run(&[
            "logs",
            "--json",
            "--record",
            "ivy@example.org",
            "--no-index",
        ])
        .await
        .ok()
        .lines();
    assert_eq!(
        statuses(&history),
        ["DEAD_LETTERED", "CREATED"],
        "{history:#?}"
    );
    assert_eq!(history[1]["redrive_of"], id.as_str());
    pipeline.stop().await.expect("pipeline stops cleanly");
    let contacts = world.records(ObjectType::Contacts);
    let ivy: Vec<&Value> = contacts
        .iter()
        .filter(|r| r["properties"]["email"] == "ivy@example.org")
        .collect();
    assert_eq!(ivy.len(), 1, "{contacts:#?}");
    assert_eq!(
        ivy[0]["id"].as_str().map(str::to_string),
        again.hubspot_id,
        "{ivy:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redriven_event_the_sink_dead_lettered_is_written_again_while_dedupe_stays() {
    let world = World::start(SandboxOptions::default(), 1, |config| {
        config.replace(
            "[state]\n",
            "[stages.sink]\nlinger = \"100ms\"\nmax_attempts = 2\nbackoff_base = \"20ms\"\nbackoff_max = \"100ms\"\n[state]\n",
        )
    })
    .await;
    let pipeline = start(&world.config, &world).await;
    let topic = world.config.topics.contact_changes.clone();
    let cli = Cli::new(&world);
    world
        .hubspot
        .set_faults(Faults {
            error_rate: 1.0,
            path_prefix: Some("/crm/v3/objects/contacts".into()),
            ..Faults::default()
        })
        .expect("faults");
    let mut rex = contact("ct_rex", Some("rex@example.org"));
    rex.first_name = Some("Rex".into());
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_rex", &rex)
        .await;
    let failed = outcome_where(&world, &rex.event_id, |_| true).await;
    assert_eq!(failed.status, OutcomeStatus::DeadLettered, "{failed:?}");
    assert_eq!(failed.stage, "sink");

    // The same event delivered again is answered from memory: still dead-lettered, no call.
    world
        .hubspot
        .set_faults(Faults::default())
        .expect("faults cleared");
    let calls = || world.hubspot.request_counts().values().sum::<u64>();
    let calls_before = calls();
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_rex", &rex)
        .await;
    let repeated = world
        .read_until(
            &world.config.topics.outcomes,
            WAIT,
            |read: &[SyncOutcome]| read.iter().filter(|o| o.event_id == rex.event_id).count() >= 2,
        )
        .await;
    let rex_outcomes: Vec<&SyncOutcome> = repeated
        .iter()
        .filter(|o| o.event_id == rex.event_id)
        .collect();
    assert_eq!(rex_outcomes.len(), 2);
    assert_eq!(rex_outcomes[1].status, OutcomeStatus::DeadLettered);
    assert_eq!(rex_outcomes[1].redrive_of, None);
    assert_eq!(calls(), calls_before, "a redelivered event costs no call");
    assert!(world.records(ObjectType::Contacts).is_empty());

    // Redriven (selected by class): the sink writes it this time.
    let letters = cli
        .run(&["dlq", "list", "--json", "--class", "retries-exhausted"])
        .await
        .ok()
        .lines();
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert_eq!(
        letters[0]["source"]["topic"],
        world.config.topics.commands.as_str()
    );
    assert_eq!(letters[0]["record"], "email:rex@example.org");
    let id = letters[0]["id"].as_str().expect("id").to_string();
    let report = cli
        .run(&["dlq", "redrive", "--class", "retries-exhausted", "--json"])
        .await
        .ok()
        .document();
    assert_eq!(report["report"]["redriven"], 1, "{report:#}");
    assert_eq!(
        report["report"]["topics"][world.config.topics.commands.as_str()],
        1
    );
    let written = outcome_where(&world, &rex.event_id, |o| o.redrive_of.is_some()).await;
    assert_eq!(written.status, OutcomeStatus::Created, "{written:?}");
    assert_eq!(written.redrive_of.as_deref(), Some(id.as_str()));
    assert_eq!(world.records(ObjectType::Contacts).len(), 1);

    // Redriven once more: now remembered as created, it is answered, not written again.
    let calls_before = calls();
    let summary = cli.run(&["dlq", "redrive", &id]).await.ok();
    assert!(
        summary.stdout.contains(&format!(
            "redriven 1 of 1, to topics {} (1)",
            world.config.topics.commands
        )),
        "{}",
        summary.stdout
    );
    let outcomes = world
        .read_until(
            &world.config.topics.outcomes,
            WAIT,
            |read: &[SyncOutcome]| {
                read.iter()
                    .filter(|o| o.event_id == rex.event_id && o.redrive_of.is_some())
                    .count()
                    >= 2
            },
        )
        .await;
    let redriven: Vec<&SyncOutcome> = outcomes
        .iter()
        .filter(|o| o.event_id == rex.event_id && o.redrive_of.is_some())
        .collect();
    assert_eq!(redriven.len(), 2, "{outcomes:#?}");
    assert_eq!(redriven[1].status, OutcomeStatus::Created);
    assert_eq!(redriven[1].hubspot_id, written.hubspot_id);
    assert_eq!(calls(), calls_before, "a remembered outcome costs no call");
    pipeline.stop().await.expect("pipeline stops cleanly");
    let by_status: HashMap<OutcomeStatus, usize> = outcomes
        .iter()
        .filter(|o| o.event_id == rex.event_id)
        .fold(HashMap::new(), |mut counts, o| {
            *counts.entry(o.status).or_insert(0) += 1;
            counts
        });
    assert_eq!(
        by_status,
        HashMap::from([
            (OutcomeStatus::DeadLettered, 2),
            (OutcomeStatus::Created, 2)
        ])
    );
    assert_eq!(world.records(ObjectType::Contacts).len(), 1);
}
