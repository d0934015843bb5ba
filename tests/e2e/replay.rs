//! End-to-end: `hubsync replay`, run as the binary against the development broker, with the
//! pipeline in process writing to the HubSpot sandbox: a mapping change reaching history, a run
//! stopped midway (at `--max-records`, and killed) and resumed with nothing left out and nothing
//! copied or written twice, and parked events written once the rules let them through.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::join_all;
use hubsync::admin::Health;
use hubsync::config::Config;
use hubsync::lineage::{REPLAY_OF, REPLAY_RUN, run_of_stage};
use hubsync::pipeline::{Pipeline, Stages};
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, SandboxOptions};
use hubsync_schemas::{ChangeKind, ContactChanged, OutcomeStatus, SchemaKind, SyncOutcome};
use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use serde_json::Value;

mod support;
use support::events;
use support::world::World;

const WAIT: Duration = Duration::from_secs(120);

/// The mapping the rules gain between the live run and the replay.
const CITY_MAPPING: &str = "[[sync.contacts.mapping]]\nsource = \"city\"\nproperty = \"city\"\n\n";

fn contact(id: &str, email: &str, change: ChangeKind) -> ContactChanged {
    let mut event = events::contact(id, Some(email), change);
    event.linkedin_url = None;
    event.phone = None;
    event
}

/// `events_each` events per contact, the first creating it; each sets the contact's city
/// (`fields.city`) and job title, the last one wins. Interleaved across contacts.
fn history(contacts: usize, events_each: usize) -> Vec<ContactChanged> {
    let mut events = Vec::new();
    for round in 0..events_each {
        for n in 0..contacts {
            let change = if round == 0 {
                ChangeKind::Created
            } else {
                ChangeKind::Updated
            };
            let mut event = contact(
                &format!("ct_{n}"),
                &format!("person{n}@example.org"),
                change,
            );
            event.event_time += round as i64;
            event.first_name = Some(format!("Person {n}"));
            event.job_title = Some(format!("Title {round}"));
            event
                .fields
                .insert("city".into(), Some(format!("City {n}-{round}")));
            events.push(event);
        }
    }
    events
}

async fn publish_all(world: &World, events: &[ContactChanged]) {
    let topic = world.config.topics.contact_changes.clone();
    for chunk in events.chunks(500) {
        join_all(
            chunk
                .iter()
                .map(|e| world.publish(SchemaKind::ContactChanged, &topic, &e.contact_id, e)),
        )
        .await;
    }
}

async fn start(config: &Config, world: &World) -> Pipeline {
    Pipeline::start(config, &world.secrets, Stages::All, Health::default())
        .await
        .expect("pipeline starts")
}

/// The world's configuration with `edit` applied, parsed and written to a file for the binary.
struct Edited {
    config: Config,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

fn edited(world: &World, edit: impl FnOnce(&str) -> String) -> Edited {
    let text = edit(world.config_text());
    let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hubsync.toml");
    std::fs::write(&path, &text).expect("config written");
    Edited {
        config,
        path,
        _dir: dir,
    }
}

fn with_city(text: &str) -> String {
    text.replacen(
        "[[sync.companies.mapping]]",
        &format!("{CITY_MAPPING}[[sync.companies.mapping]]"),
        1,
    )
}

/// What one run of the binary printed.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn document(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: stdout {:?}, stderr {:?}, exit {}",
                self.stdout, self.stderr, self.code
            )
        })
    }

    fn ok(self) -> Value {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self.document()
    }
}

fn replay_command(config: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubsync"));
    command
        .arg("replay")
        .args(["--config", &config.display().to_string()])
        .args(args)
        .env("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN)
        .env("HUBSYNC_LOG", "warn");
    command
}

async fn replay(config: &Path, args: &[&str]) -> Run {
    let output = replay_command(config, args)
        .output()
        .await
        .expect("hubsync runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

/// Every record of `topic`: read until there are `at_least`, then until none comes for three
/// seconds (so records beyond the expected, duplicates, are seen too).
async fn read_all(world: &World, topic: &str, at_least: usize) -> Vec<OwnedMessage> {
    let consumer = world.broker.reader(topic);
    let mut found = Vec::new();
    loop {
        let wait = if found.len() >= at_least {
            Duration::from_secs(3)
        } else {
            WAIT
        };
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(Ok(message)) => found.push(message.detach()),
            Ok(Err(error)) => panic!("consumer error: {error}"),
            Err(_) => break,
        }
    }
    found
}

/// Every outcome, once there are at least `at_least`.
async fn outcomes(world: &World, at_least: usize) -> Vec<SyncOutcome> {
    let mut outcomes = Vec::new();
    for message in read_all(world, &world.config.topics.outcomes, at_least).await {
        let bytes = message.payload().unwrap_or_default();
        outcomes.push(world.codec.decode(bytes).await.expect("an outcome decodes"));
    }
    outcomes
}

/// Outcomes of run `run`, by event id.
fn replayed_by_event(outcomes: &[SyncOutcome], run: &str) -> HashMap<String, Vec<SyncOutcome>> {
    let mut by_event: HashMap<String, Vec<SyncOutcome>> = HashMap::new();
    for outcome in outcomes {
        if run_of_stage(&outcome.stage) == Some(run) {
            by_event
                .entry(outcome.event_id.clone())
                .or_default()
                .push(outcome.clone());
        }
    }
    by_event
}

/// Every record on the replay topic: its `hubsync.replay.run` and `hubsync.replay.of`.
async fn copies(world: &World, at_least: usize) -> Vec<(String, String)> {
    read_all(world, &world.config.topics.replay, at_least)
        .await
        .iter()
        .map(|message| {
            let header = |name: &str| {
                message
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == name))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            (header(REPLAY_RUN), header(REPLAY_OF))
        })
        .collect()
}

/// The source positions of the live outcomes of `events`.
fn positions(outcomes: &[SyncOutcome], events: &[ContactChanged]) -> HashMap<String, String> {
    let wanted: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    outcomes
        .iter()
        .filter(|o| o.stage == "sink" && wanted.contains(o.event_id.as_str()))
        .map(|o| {
            (
                o.event_id.clone(),
                format!(
                    "{}/{}/{}",
                    o.source_topic, o.source_partition, o.source_offset
                ),
            )
        })
        .collect()
}

fn upserts(world: &World) -> u64 {
    world
        .hubspot
        .request_counts()
        .iter()
        .filter(|((endpoint, _), _)| endpoint.contains("/batch/upsert"))
        .map(|(_, count)| count)
        .sum()
}

fn contacts_by_email(world: &World) -> BTreeMap<String, Vec<Value>> {
    let mut by_email: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for record in world.records(ObjectType::Contacts) {
        let email = record["properties"]["email"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        by_email.entry(email).or_default().push(record);
    }
    by_email
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mapping_change_reaches_history_through_a_replay() {
    let world = World::start(SandboxOptions::default(), 2, |config| config).await;
    let events = history(8, 3);
    let live = start(&world.config, &world).await;
    publish_all(&world, &events).await;
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let first = world.outcomes_for(&ids, WAIT).await;
    assert!(ids.iter().all(|id| first[id].len() == 1));
    live.stop().await.expect("the live pipeline stops");
    let before = contacts_by_email(&world);
    assert_eq!(before.len(), 8);
    assert!(
        before.values().all(|records| records[0]["properties"]
            .get("city")
            .is_none_or(Value::is_null)),
        "city is not mapped yet: {before:#?}"
    );

    // The rules gain a mapping; the pipeline runs with them and the history is replayed.
    let city = edited(&world, with_city);
    let pipeline = start(&city.config, &world).await;
    let upserts_before = upserts(&world);
    let summary = replay(
        &city.path,
        &[
            "--topic",
            &world.config.topics.contact_changes,
            "--since",
            "1h",
            "--name",
            "mapping-v2",
            "--json",
        ],
    )
    .await
    .ok();
    assert_eq!(summary["status"], "done", "{summary:#}");
    assert_eq!(summary["this_invocation"]["copied"], 24);
    assert_eq!(summary["this_invocation"]["distinct_keys"], 8);
    assert_eq!(summary["run_total"]["remaining"], 0);
    assert_eq!(summary["partitions"].as_array().map(Vec::len), Some(2));

    let outcomes = outcomes(&world, 48).await;
    pipeline.stop().await.expect("the pipeline stops");
    let replayed = replayed_by_event(&outcomes, "mapping-v2");
    let origin = positions(&outcomes, &events);
    for id in &ids {
        let mine = replayed
            .get(id)
            .unwrap_or_else(|| panic!("no replay outcome for {id}"));
        assert_eq!(mine.len(), 1, "one replay outcome for {id}: {mine:?}");
        let outcome = &mine[0];
        assert_eq!(outcome.status, OutcomeStatus::Updated, "{outcome:?}");
        assert_eq!(outcome.stage, "sink replay:mapping-v2");
        // The replayed event names where it was first published, as its live outcome does.
        assert_eq!(
            format!(
                "{}/{}/{}",
                outcome.source_topic, outcome.source_partition, outcome.source_offset
            ),
            origin[id]
        );
        assert_eq!(outcome.hubspot_id, first[id][0].hubspot_id);
    }
    // Three events of each contact became one write: all eight contacts in one or two calls.
    let replay_upserts = upserts(&world) - upserts_before;
    assert!(
        (1..=2).contains(&replay_upserts),
        "{replay_upserts} upserts for the replay"
    );
    let after = contacts_by_email(&world);
    assert_eq!(after.len(), 8, "no contact was created twice");
    for n in 0..8 {
        let records = &after[&format!("person{n}@example.org")];
        assert_eq!(records.len(), 1);
        assert_eq!(records[0]["properties"]["city"], format!("City {n}-2"));
        assert_eq!(records[0]["properties"]["jobtitle"], "Title 2");
    }

    // The run is done: naming it again copies nothing.
    let again = replay(&city.path, &["--name", "mapping-v2", "--json"])
        .await
        .ok();
    assert_eq!(again["status"], "done");
    assert_eq!(again["this_invocation"]["copied"], 0);
    assert_eq!(again["run_total"]["copied"], 24);
    let table = replay(&city.path, &["--name", "mapping-v2"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table
            .stdout
            .contains("run mapping-v2 is done: 24 records copied in all"),
        "{}",
        table.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_stopped_midway_resumes_without_gaps_or_second_writes() {
    let world = World::start(SandboxOptions::default(), 2, |config| config).await;
    let events = history(60, 10);
    let pipeline = start(&world.config, &world).await;
    publish_all(&world, &events).await;
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let live = world.outcomes_for(&ids, WAIT).await;
    assert_eq!(live.len(), 600);
    let config = edited(&world, |text| text.to_string());
    let topic = world.config.topics.contact_changes.clone();
    let args = |max: Option<&'static str>| {
        let mut args = vec![
            "--topic".to_string(),
            topic.clone(),
            "--since".into(),
            "1h".into(),
            "--name".into(),
            "slices".into(),
            "--json".into(),
        ];
        if let Some(max) = max {
            args.extend(["--max-records".to_string(), max.to_string()]);
        }
        args
    };
    let run = |args: Vec<String>| {
        let path = config.path.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            replay(&path, &args).await.ok()
        }
    };
    let first = run(args(Some("250"))).await;
    assert_eq!(first["status"], "stopped_at_limit", "{first:#}");
    assert_eq!(first["this_invocation"]["copied"], 250);
    assert_eq!(first["run_total"]["remaining"], 350);
    let second = run(args(Some("250"))).await;
    assert_eq!(second["resumed"], true);
    assert_eq!(second["this_invocation"]["copied"], 250);
    let last = run(args(None)).await;
    assert_eq!(last["status"], "done", "{last:#}");
    assert_eq!(last["this_invocation"]["copied"], 100);
    assert_eq!(last["run_total"]["copied"], 600);

    let copied = copies(&world, 600).await;
    assert_eq!(copied.len(), 600, "every source event copied once");
    let distinct: HashSet<&String> = copied.iter().map(|(_, of)| of).collect();
    assert_eq!(distinct.len(), 600, "no source event copied twice");
    assert!(copied.iter().all(|(run, _)| run == "slices"));

    let outcomes = outcomes(&world, 1_200).await;
    pipeline.stop().await.expect("the pipeline stops");
    let replayed = replayed_by_event(&outcomes, "slices");
    for id in &ids {
        let mine = &replayed[id];
        assert_eq!(mine.len(), 1, "one replay outcome for {id}: {mine:?}");
        // Nothing changed since the live run: the replay finds HubSpot up to date.
        assert_eq!(mine[0].status, OutcomeStatus::Unchanged, "{:?}", mine[0]);
    }
    let contacts = contacts_by_email(&world);
    assert_eq!(contacts.len(), 60);
    assert!(contacts.values().all(|records| records.len() == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replay_resumes_and_copies_every_record_once() {
    let world = World::start(SandboxOptions::default(), 2, |config| config).await;
    let events = history(500, 20);
    publish_all(&world, &events).await;
    let config = edited(&world, |text| text.to_string());
    let checkpoint = config.config.state.dir.join("replay").join("killed.json");
    let topic = world.config.topics.contact_changes.clone();
    let args = [
        "--topic", &topic, "--since", "1h", "--name", "killed", "--json",
    ];
    // Kill it three times, each while it copies the chunk after one it saved: some of that
    // chunk's copies are on the replay topic, past the checkpoint.
    let read = || -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).ok()?).ok()
    };
    let mut kills = 0;
    let mut saved_before = 0;
    for delay in [25, 10, 40] {
        let mut child = replay_command(&config.path, &args)
            .kill_on_drop(true)
            .spawn()
            .expect("hubsync starts");
        let progressed = tokio::time::timeout(WAIT, async {
            loop {
                if let Some(saved) = read()
                    && (saved["done"] == true
                        || saved["copied"].as_u64().is_some_and(|n| n > saved_before))
                {
                    return saved;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("the run saves its place");
        if progressed["done"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.start_kill().expect("SIGKILL");
        let _ = child.wait().await;
        let saved = read().expect("the checkpoint is whole");
        if saved["done"] == true {
            break;
        }
        assert_eq!(saved["running"], true, "killed while copying: {saved:#}");
        saved_before = saved["copied"].as_u64().unwrap_or_default();
        kills += 1;
    }
    assert!(kills > 0, "the run was killed before its end at least once");

    let resumed = replay(&config.path, &args).await.ok();
    assert_eq!(resumed["status"], "done", "{resumed:#}");
    assert_eq!(resumed["resumed"], true);
    assert_eq!(resumed["run_total"]["remaining"], 0);
    let total = resumed["run_total"]["copied"].as_u64().expect("copied");
    let already = resumed["run_total"]["already_copied"]
        .as_u64()
        .expect("already copied");
    assert_eq!(total + already, 10_000, "{resumed:#}");

    let copied = copies(&world, 10_000).await;
    let distinct: HashSet<&String> = copied.iter().map(|(_, of)| of).collect();
    assert_eq!(distinct.len(), 10_000, "every source event copied");
    assert_eq!(copied.len(), 10_000, "none copied twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parked_events_are_written_once_the_rules_let_them_through() {
    let strict = |config: String| {
        config.replace(
            "mandatory = [\"email\"]",
            "mandatory = [\"email\", \"last_name\"]",
        )
    };
    let world = World::start(SandboxOptions::default(), 1, strict).await;
    let live = start(&world.config, &world).await;
    let mut parked = contact("ct_p", "pat@example.org", ChangeKind::Created);
    parked.first_name = Some("Pat".into());
    parked.last_name = None;
    let mut complete = contact("ct_c", "cy@example.org", ChangeKind::Created);
    complete.last_name = Some("Cy".into());
    publish_all(&world, &[parked.clone(), complete.clone()]).await;
    let first = world
        .outcomes_for(&[parked.event_id.clone(), complete.event_id.clone()], WAIT)
        .await;
    assert_eq!(first[&parked.event_id][0].status, OutcomeStatus::Parked);
    assert_eq!(first[&complete.event_id][0].status, OutcomeStatus::Created);
    live.stop().await.expect("the live pipeline stops");
    assert_eq!(contacts_by_email(&world).len(), 1);

    // The rules no longer ask for a last name.
    let relaxed = edited(&world, |text| {
        text.replace(
            "mandatory = [\"email\", \"last_name\"]",
            "mandatory = [\"email\"]",
        )
    });
    let pipeline = start(&relaxed.config, &world).await;
    let counted = replay(&relaxed.path, &["--parked", "--dry-run", "--json"])
        .await
        .ok();
    assert_eq!(counted["status"], "dry_run");
    assert_eq!(counted["this_invocation"]["copied"], 1, "{counted:#}");
    let summary = replay(&relaxed.path, &["--parked", "--name", "unparked", "--json"])
        .await
        .ok();
    assert_eq!(summary["status"], "done", "{summary:#}");
    assert_eq!(summary["this_invocation"]["copied"], 1);
    let outcomes = outcomes(&world, 3).await;
    pipeline.stop().await.expect("the pipeline stops");
    let replayed = replayed_by_event(&outcomes, "unparked");
    assert_eq!(replayed.len(), 1, "only the parked event is replayed");
    let outcome = &replayed[&parked.event_id][0];
    assert_eq!(outcome.status, OutcomeStatus::Created, "{outcome:?}");
    let contacts = contacts_by_email(&world);
    assert_eq!(contacts.len(), 2);
    assert_eq!(
        contacts["pat@example.org"][0]["properties"]["firstname"],
        "Pat"
    );

    // Its latest outcome is CREATED now: nothing is parked any more.
    let none = replay(&relaxed.path, &["--parked", "--dry-run", "--json"])
        .await
        .ok();
    assert_eq!(none["this_invocation"]["copied"], 0, "{none:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_and_unknown_runs_exit_2_naming_the_problem() {
    let world = World::start(SandboxOptions::default(), 1, |config| config).await;
    let config = edited(&world, |text| text.to_string());
    for (args, says) in [
        (
            vec!["--topic", "hubsync.outcomes", "--since", "1h"],
            "not a source topic",
        ),
        (
            vec!["--name", "never-started"],
            "there is no run never-started",
        ),
        (vec!["--topic", "crm.contact.changes"], "--since TIME"),
    ] {
        let run = replay(&config.path, &args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
}
