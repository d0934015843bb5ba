//! End-to-end: `hubsync owners automap` against the HubSpot sandbox, with owners added through its
//! admin API (more than one page of them), a users file with matching, case-different,
//! ambiguous and unmatched emails, and a config that maps some users already.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use hubsync::config::Config;
use hubsync_processors::Rules;
use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, SandboxOptions};
use serde_json::{Value, json};

mod support;
use support::world::World;

/// Owners a new sandbox portal has (Ada, Grace, Alan, Katherine).
const DEFAULT_OWNERS: usize = 4;
/// Owners added beyond a page of 100, so the listing has to follow the paging.
const FILLERS: usize = 120;

const USERS: &str = "\
user_id,email,name
usr_ada,ada.lovelace@example.com,Ada Lovelace
usr_linus, Linus.Torvalds@EXAMPLE.com ,\"Torvalds, Linus\"
usr_shared,shared@example.com,Shared inbox
usr_nobody,nobody@elsewhere.example,Nobody
usr_grace,grace.hopper@example.com
";

async fn add_owner(world: &World, id: &str, email: &str, first: &str, last: &str) {
    let answer = reqwest::Client::new()
        .post(format!("{}/__admin/owners", world.hubspot_server.url()))
        .json(&json!({
            "id": id,
            "email": email,
            "firstName": first,
            "lastName": last,
            "userId": id.parse::<u64>().expect("numeric id") + 1_000,
        }))
        .send()
        .await
        .expect("add owner");
    assert!(answer.status().is_success(), "{:?}", answer.status());
}

/// The sandbox with Linus, two owners sharing one email, and the fillers.
async fn portal() -> World {
    let world = World::start(SandboxOptions::default(), 1, |text| text).await;
    add_owner(
        &world,
        "80000001",
        "linus.torvalds@example.com",
        "Linus",
        "Torvalds",
    )
    .await;
    add_owner(&world, "80000002", "shared@example.com", "Shared", "One").await;
    add_owner(&world, "80000003", "Shared@Example.com", "Shared", "Two").await;
    for index in 0..FILLERS {
        let id = (81_000_000 + index).to_string();
        add_owner(
            &world,
            &id,
            &format!("filler{index}@example.com"),
            "Filler",
            "Owner",
        )
        .await;
    }
    world
}

/// The world's config with usr_ada mapped as the email match says and usr_grace mapped to Alan.
fn config(world: &World) -> String {
    format!(
        "{}\n[users]\n[[users.mapping]]\nuser = \"usr_ada\"\nowner = \"70000001\"\n[[users.mapping]]\nuser = \"usr_grace\"\nowner = \"70000003\"\n",
        world.config_text()
    )
}

async fn automap(dir: &Path, config: &str, users: &str, json: bool) -> Output {
    let config_path = dir.join("hubsync.toml");
    let users_path = dir.join("users.csv");
    std::fs::write(&config_path, config).expect("write config");
    std::fs::write(&users_path, users).expect("write users");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubsync"));
    command
        .args(["owners", "automap", "--config"])
        .arg(&config_path)
        .arg("--users")
        .arg(&users_path)
        .env("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN)
        .env("HUBSYNC_LOG", "error")
        .env_remove("HUBSYNC_HUBSPOT_URL")
        .env_remove("HUBSYNC_HUBSPOT_TOKEN");
    if json {
        command.arg("--json");
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("automap ends")
        .expect("hubsync runs")
}

fn pairs(doc: &Value, list: &str, left: &str, right: &str) -> Vec<(String, String)> {
    doc[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} in {doc}"))
        .iter()
        .map(|row| {
            (
                row[left].as_str().expect("text").to_owned(),
                row[right].to_string().trim_matches('"').to_owned(),
            )
        })
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_matched_to_owners_by_email() {
    let world = portal().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config_text = config(&world);
    let output = automap(dir.path(), &config_text, USERS, true).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value = serde_json::from_str(&stdout).expect("one JSON document");

    assert_eq!(doc["owners_read"], DEFAULT_OWNERS + 3 + FILLERS);
    assert_eq!(doc["users_read"], 5);
    assert_eq!(
        pairs(&doc, "matched", "user", "owner"),
        owned(&[
            ("usr_ada", "70000001"),
            ("usr_linus", "80000001"),
            ("usr_grace", "70000002"),
        ])
    );
    assert_eq!(
        pairs(&doc, "unmatched_users", "user", "reason"),
        owned(&[("usr_nobody", "no owner has this email")])
    );
    assert_eq!(doc["unmatched_users"][0]["name"], "Nobody");
    assert_eq!(
        doc["ambiguous"],
        json!([{"user": "usr_shared", "email": "shared@example.com", "owners": ["80000002", "80000003"]}])
    );
    let without: Vec<&str> = doc["owners_without_user"]
        .as_array()
        .expect("owners_without_user")
        .iter()
        .map(|o| o["owner"].as_str().expect("owner id"))
        .collect();
    assert_eq!(without.len(), 2 + FILLERS, "{without:?}");
    assert!(without.contains(&"70000003") && without.contains(&"70000004"));
    assert!(!without.contains(&"80000002") && !without.contains(&"80000001"));
    assert_eq!(
        doc["configured"],
        json!([
            {"user": "usr_ada", "owner": "70000001", "owner_active": true, "in_users_file": true, "proposed": "70000001", "agrees": true},
            {"user": "usr_grace", "owner": "70000003", "owner_active": true, "in_users_file": true, "proposed": "70000002", "agrees": false},
        ])
    );

    // The snippet holds only the user the config does not map yet, and pastes into the config.
    let snippet = doc["snippet"].as_str().expect("snippet");
    let rules: Rules = toml::from_str(snippet).expect("the snippet is TOML rules");
    assert_eq!(rules.users.mapping.len(), 1, "{snippet}");
    assert_eq!(rules.users.owner_for("usr_linus"), Some("80000001"));
    let pasted = Config::from_toml_str(&format!("{config_text}\n{snippet}"))
        .unwrap_or_else(|e| panic!("{e}\n{snippet}"));
    assert_eq!(pasted.rules.users.owner_for("usr_linus"), Some("80000001"));
    assert_eq!(pasted.rules.users.owner_for("usr_grace"), Some("70000003"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_get_tables_and_a_bad_users_file_is_refused_by_line() {
    let world = portal().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let output = automap(dir.path(), &config(&world), USERS, false).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "{} HubSpot owners, 5 upstream users from ",
            DEFAULT_OWNERS + 3 + FILLERS
        )),
        "{stdout}"
    );
    for line in [
        "matched by email (3)",
        "upstream users without an owner (1)",
        "ambiguous: several owners have the email, none proposed (1)",
        "already mapped in the config (2)",
        "differs: the email match is owner 70000002",
        "add to the config:",
        "[[users.mapping]]\nuser = \"usr_linus\"\nowner = \"80000001\"\n",
    ] {
        assert!(stdout.contains(line), "{line:?} not in\n{stdout}");
    }

    let bad = "usr_ada,ada.lovelace@example.com\nusr_ada,grace.hopper@example.com\n";
    let output = automap(dir.path(), &config(&world), bad, true).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("users.csv: line 2: user \"usr_ada\" is listed again"),
        "{stderr}"
    );
}
