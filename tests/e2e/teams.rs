//! End-to-end: `hubsync run` with a service file and a directory of team files, as the binary,
//! against two HubSpot portals behind one sandbox URL. Each team writes only to its own portal;
//! a team file that cannot be used is refused naming its field (`config check`), and its team's
//! events end SKIPPED TEAM_NOT_CONNECTED while the others are written; an event of a team with no
//! file is left alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hubsync_dev::sandbox_config::render_sandbox_team;
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, HubSpotSandbox, SandboxOptions};
use hubsync_schemas::{ChangeKind, ContactChanged, OutcomeStatus, SchemaKind, SyncOutcome};
use serde_json::Value;

mod support;
use support::world::World;
use support::{Child, events};

const WAIT: Duration = Duration::from_secs(90);
const ACME_PORTAL: u64 = 7_700_001;
const ACME_TOKEN: &str = "pat-na1-acme-0000";

/// The service file and `teams/` in the world's state directory.
fn write_service(world: &World, teams: &[(&str, String)]) -> PathBuf {
    let dir = world.state_dir.path();
    let group = format!("t{}", uuid::Uuid::new_v4().simple());
    let service = world.service_text(dir, &group);
    let path = dir.join("hubsync.toml");
    std::fs::write(&path, service).expect("service file");
    let teams_dir = dir.join("teams");
    std::fs::create_dir_all(&teams_dir).expect("teams dir");
    for (name, text) in teams {
        std::fs::write(teams_dir.join(name), text).expect("team file");
    }
    path
}

fn contact_of(team: &str, email: &str, first_name: &str) -> ContactChanged {
    let mut event = events::contact("ct_1", Some(email), ChangeKind::Created);
    event.team_id = team.to_string();
    event.first_name = Some(first_name.to_string());
    event
}

fn first_names(portal: &HubSpotSandbox) -> Vec<Value> {
    portal
        .snapshot(ObjectType::Contacts)
        .iter()
        .map(|c| c["properties"]["firstname"].clone())
        .collect()
}

async fn check(path: &Path) -> (Option<i32>, Value) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .args(["config", "check", "--json"])
        .arg(path)
        .output()
        .await
        .expect("config check runs");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "json: {e}\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_serves_each_team_from_its_file_into_its_own_portal() {
    let acme_portal = SandboxOptions {
        portal_id: ACME_PORTAL,
        tokens: vec![ACME_TOKEN.to_string()],
        ..SandboxOptions::default()
    };
    let world = World::start_portals(vec![SandboxOptions::default(), acme_portal], 1, |c| c).await;
    let sandbox_portal = world.hubspot.portal_id();
    let broken = render_sandbox_team("initech", 7_700_002, "INITECH_TOKEN")
        .replace("[hubspot]\n", "[hubspot]\ntier = \"gold\"\n");
    let path = write_service(
        &world,
        &[
            (
                "sandbox.toml",
                render_sandbox_team(events::TEAM_ID, sandbox_portal, "TEST_HUBSPOT_TOKEN"),
            ),
            (
                "acme.toml",
                render_sandbox_team("acme", ACME_PORTAL, "ACME_TOKEN"),
            ),
            ("initech.toml", broken),
        ],
    );

    // The check names the bad team file's field and says the others are fine.
    let (code, report) = check(&path).await;
    assert_eq!(code, Some(2), "{report:#}");
    let teams = report["teams"].as_array().expect("team reports");
    assert_eq!(teams.len(), 3, "{report:#}");
    let initech = teams
        .iter()
        .find(|t| {
            t["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("initech.toml"))
        })
        .expect("initech's report");
    assert_eq!(initech["valid"], false);
    assert_eq!(initech["errors"][0]["field"], "hubspot.tier");
    assert_eq!(
        teams.iter().filter(|t| t["valid"] == true).count(),
        2,
        "{report:#}"
    );

    let args = ["run", "--config", path.to_str().expect("utf-8 path")];
    let env = [
        ("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN),
        ("ACME_TOKEN", ACME_TOKEN),
    ];
    let mut child = Child::spawn_with_env(&args, &env);
    let topic = world.config.topics.contact_changes.clone();
    let ours = contact_of(events::TEAM_ID, "ada@example.org", "Sandbox's Ada");
    let acmes = contact_of("acme", "ada@example.org", "Acme's Ada");
    let initechs = contact_of("initech", "ada@example.org", "Initech's Ada");
    let globexs = contact_of("globex", "ada@example.org", "Globex's Ada");
    for event in [&globexs, &initechs, &acmes, &ours] {
        world
            .publish(SchemaKind::ContactChanged, &topic, "ct_1", event)
            .await;
    }
    let outcomes = world
        .outcomes_for(
            &[
                ours.event_id.clone(),
                acmes.event_id.clone(),
                initechs.event_id.clone(),
            ],
            WAIT,
        )
        .await;
    let status = child.terminate(Duration::from_secs(60)).await;
    assert!(status.success(), "hubsync stops cleanly: {status}");

    let last = |id: &str| {
        outcomes
            .get(id)
            .and_then(|o| o.last())
            .cloned()
            .unwrap_or_else(|| panic!("no outcome for {id}: {outcomes:?}"))
    };
    assert_eq!(last(&ours.event_id).status, OutcomeStatus::Created);
    assert_eq!(last(&acmes.event_id).status, OutcomeStatus::Created);
    let refused = last(&initechs.event_id);
    assert_eq!(refused.status, OutcomeStatus::Skipped);
    assert_eq!(refused.reason_code, "TEAM_NOT_CONNECTED");
    assert!(
        refused.reason.contains("initech.toml"),
        "{}",
        refused.reason
    );
    assert!(!outcomes.contains_key(&globexs.event_id), "{outcomes:?}");
    let acme = world.portals.portal(ACME_PORTAL).expect("acme's portal");
    assert_eq!(
        first_names(&world.hubspot),
        vec![Value::from("Sandbox's Ada")]
    );
    assert_eq!(first_names(acme), vec![Value::from("Acme's Ada")]);
}

/// `hubsync_teams_refused_total` on the admin endpoint (0 before the first refusal).
async fn refusals(admin: &str) -> u64 {
    let Ok(answer) = reqwest::get(format!("{admin}/metrics")).await else {
        return 0;
    };
    let text = answer.text().await.unwrap_or_default();
    text.lines()
        .find(|line| line.starts_with("hubsync_teams_refused_total"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// Team files changed while the service runs: a relaxed rule takes effect without a restart and
/// the contact it parked before is written by a replay of the team's parked events, a bad file is
/// refused (counted) and the team keeps its settings, a new team file starts writing to its own
/// portal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn team_files_change_while_the_service_runs() {
    let acme_portal = SandboxOptions {
        portal_id: ACME_PORTAL,
        tokens: vec![ACME_TOKEN.to_string()],
        ..SandboxOptions::default()
    };
    let world = World::start_portals(vec![SandboxOptions::default(), acme_portal], 1, |c| c).await;
    let strict = render_sandbox_team(
        events::TEAM_ID,
        world.hubspot.portal_id(),
        "TEST_HUBSPOT_TOKEN",
    )
    .replace(
        "mandatory = [\"email\"]",
        "mandatory = [\"email\", \"last_name\"]",
    );
    assert!(
        strict.contains("\"last_name\"]"),
        "the rules name mandatory fields"
    );
    let path = write_service(&world, &[("sandbox.toml", strict.clone())]);
    let port = support::free_port();
    let service = std::fs::read_to_string(&path).expect("service file");
    std::fs::write(
        &path,
        service
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{port}\""),
            )
            .replace(
                "dir = \"teams\"\n",
                "dir = \"teams\"\nreload_interval = \"300ms\"\n",
            ),
    )
    .expect("service file");
    let admin = format!("http://127.0.0.1:{port}");
    let teams_dir = path.parent().expect("dir").join("teams");
    let args = ["run", "--config", path.to_str().expect("utf-8 path")];
    let env = [
        ("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN),
        ("ACME_TOKEN", ACME_TOKEN),
    ];
    let mut child = Child::spawn_with_env(&args, &env);
    let topic = world.config.topics.contact_changes.clone();
    let mut n = 0;
    let mut publish_nameless = |team: &str| {
        n += 1;
        let mut event = contact_of(team, &format!("p{n}@example.org"), "Pat");
        event.contact_id = format!("ct_{n}");
        event.last_name = None;
        event
    };
    let outcome_of = |event: ContactChanged| {
        let world = &world;
        let topic = topic.clone();
        async move {
            world
                .publish(
                    SchemaKind::ContactChanged,
                    &topic,
                    &event.contact_id,
                    &event,
                )
                .await;
            let outcomes = world
                .outcomes_for(std::slice::from_ref(&event.event_id), WAIT)
                .await;
            outcomes[&event.event_id]
                .last()
                .cloned()
                .expect("an outcome")
        }
    };

    // The strict rules park a contact without a last name.
    let parked = outcome_of(publish_nameless(events::TEAM_ID)).await;
    assert_eq!(parked.status, OutcomeStatus::Parked, "{parked:?}");

    // Relaxed: once the file is read again, such a contact is created.
    std::fs::write(
        teams_dir.join("sandbox.toml"),
        strict.replace("\"email\", \"last_name\"", "\"email\""),
    )
    .expect("relaxed");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let outcome = outcome_of(publish_nameless(events::TEAM_ID)).await;
        if outcome.status == OutcomeStatus::Created {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the relaxed rule never took effect: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The contact parked under the strict rules is re-evaluated with the relaxed ones: the
    // service replays the team's parked events, and the replay writes it.
    let read = world
        .read_until(
            &world.config.topics.outcomes,
            WAIT,
            |read: &[SyncOutcome]| {
                read.iter()
                    .any(|o| o.event_id == parked.event_id && o.status == OutcomeStatus::Created)
            },
        )
        .await;
    let replayed = read
        .iter()
        .find(|o| o.event_id == parked.event_id && o.status == OutcomeStatus::Created)
        .unwrap_or_else(|| panic!("the parked contact was never re-evaluated: {parked:?}"));
    assert!(
        replayed.stage.starts_with("sink replay:parked-sandbox-"),
        "written by the team's parked run: {replayed:?}"
    );
    assert_eq!(replayed.team_id, events::TEAM_ID);

    // A bad file (strict again, but with an unknown tier) is refused: the relaxed rules stay.
    let before = refusals(&admin).await;
    std::fs::write(
        teams_dir.join("sandbox.toml"),
        strict.replace("[hubspot]\n", "[hubspot]\ntier = \"gold\"\n"),
    )
    .expect("bad file");
    let deadline = std::time::Instant::now() + WAIT;
    while refusals(&admin).await <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the bad file was never refused"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kept = outcome_of(publish_nameless(events::TEAM_ID)).await;
    assert_eq!(
        kept.status,
        OutcomeStatus::Created,
        "the previous rules are kept: {kept:?}"
    );

    // A new team file: that team's events are written to its own portal.
    std::fs::write(
        teams_dir.join("acme.toml"),
        render_sandbox_team("acme", ACME_PORTAL, "ACME_TOKEN"),
    )
    .expect("acme's file");
    // Until the file is read, acme is no team of this service and its events are left alone.
    let deadline = std::time::Instant::now() + WAIT;
    let acme = world.portals.portal(ACME_PORTAL).expect("acme's portal");
    while first_names(acme).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "acme's file never took effect"
        );
        let mut event = contact_of("acme", "ada@acme.example", "Acme's Ada");
        event.last_name = Some("Lovelace".into());
        world
            .publish(SchemaKind::ContactChanged, &topic, "ct_1", &event)
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(first_names(acme), vec![Value::from("Acme's Ada")]);

    // acme's file renamed, and a file sorting before it claiming team acme on the first portal:
    // the newcomer is refused (acme is served from a file already), the rename keeps acme served.
    let before = refusals(&admin).await;
    std::fs::rename(
        teams_dir.join("acme.toml"),
        teams_dir.join("acme-sales.toml"),
    )
    .expect("renamed");
    std::fs::write(
        teams_dir.join("0-acme.toml"),
        render_sandbox_team("acme", world.hubspot.portal_id(), "TEST_HUBSPOT_TOKEN"),
    )
    .expect("a second file for acme");
    let deadline = std::time::Instant::now() + WAIT;
    while refusals(&admin).await <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the second file for acme was never refused"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut renamed = contact_of("acme", "ada@acme.example", "Ada of Acme Sales");
    renamed.last_name = Some("Lovelace".into());
    let written = outcome_of(renamed).await;
    assert!(
        matches!(
            written.status,
            OutcomeStatus::Created | OutcomeStatus::Updated
        ),
        "acme is still served after its file was renamed: {written:?}"
    );
    assert_eq!(first_names(acme), vec![Value::from("Ada of Acme Sales")]);
    assert!(
        !first_names(&world.hubspot).contains(&Value::from("Ada of Acme Sales")),
        "nothing of acme's reached the other portal"
    );
    let status = child.terminate(Duration::from_secs(60)).await;
    assert!(status.success(), "hubsync stops cleanly: {status}");
}
