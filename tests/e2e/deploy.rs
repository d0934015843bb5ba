//! The files under `deploy/`, checked by the tools their users run: the Prometheus alerts by
//! `promtool` (rules and their unit tests), the systemd unit by `systemd-analyze verify`, the
//! Grafana dashboard's shape, and every hubsync metric the alerts and the dashboard query by
//! scraping a running `hubsync run`. `make setup`
//! installs promtool (Debian's `prometheus`) when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, SandboxOptions};
use hubsync_schemas::{ChangeKind, SchemaKind};

mod support;
use support::world::World;
use support::{Child, events};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// Runs a tool; its status and what it printed.
fn tool(program: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("{program} cannot run ({error}); `make setup` installs it"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_alerts_are_valid_rules_and_fire_as_their_tests_say() {
    let dir = deploy("prometheus");
    let (ok, out) = tool("promtool", &["check", "rules", "alerts.yml"], &dir);
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = tool("promtool", &["test", "rules", "alerts_test.yml"], &dir);
    assert!(ok, "promtool test rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let unit = std::fs::read_to_string(deploy("systemd/hubsync.service")).expect("the unit");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/hubsync run "),
        "{unit}"
    );
    // Verified as installed, with the binary where this build put it.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hubsync.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/hubsync", env!("CARGO_BIN_EXE_hubsync")),
    )
    .expect("unit written");
    let (ok, out) = tool(
        "systemd-analyze",
        &["verify", path.to_str().expect("utf-8 path")],
        dir.path(),
    );
    assert!(ok, "systemd-analyze verify:\n{out}");
    assert!(
        !out.contains("hubsync.service"),
        "systemd-analyze has something to say about the unit:\n{out}"
    );
}

/// The `hubsync_*` metric names in PromQL expressions.
fn metric_names<'a>(exprs: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = exprs
        .flat_map(|expr| {
            expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("hubsync_"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The `hubsync_*` metrics the alerts' expressions query.
fn alert_metrics() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("prometheus/alerts.yml")).expect("alerts");
    metric_names(
        text.lines()
            .filter_map(|line| line.trim().strip_prefix("expr:")),
    )
}

/// The dashboard's queries, checked for the shape Grafana imports: panels with unique ids, each
/// with queries on the dashboard's Prometheus data source variable.
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("grafana/hubsync.json")).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "hubsync");
    assert!(
        dashboard["templating"]["list"]
            .as_array()
            .is_some_and(|vars| vars
                .iter()
                .any(|v| v["name"] == "datasource" && v["type"] == "datasource")),
        "a data source variable"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = std::collections::HashSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_i64().expect("a panel id")),
            "{panel}"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "a panel without a query: {panel}");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{target}");
            exprs.push(target["expr"].as_str().expect("a query").to_string());
        }
    }
    assert!(panels.len() >= 8, "{} panels", panels.len());
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_the_dashboard_query_is_exported() {
    let mut wanted = alert_metrics();
    assert!(wanted.len() >= 6, "{wanted:?}");
    let exprs = dashboard_exprs();
    wanted.extend(metric_names(exprs.iter().map(String::as_str)));
    wanted.sort();
    wanted.dedup();
    let port = support::free_port();
    let world = World::start(SandboxOptions::default(), 1, |c| {
        c.replace(
            "[state]\n",
            &format!("[admin]\nlisten = \"127.0.0.1:{port}\"\n[state]\n"),
        )
    })
    .await;
    let config = world.state_dir.path().join("hubsync.toml");
    std::fs::write(&config, world.config_text()).expect("config written");
    let mut child = Child::spawn_with_env(
        &["run", "--config", config.to_str().expect("utf-8 path")],
        &[("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN)],
    );
    // A contact written and a message that cannot be decoded, so the counters have series.
    let topic = world.config.topics.contact_changes.clone();
    let event = events::contact("ct_1", Some("ada@acme.io"), ChangeKind::Created);
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_1", &event)
        .await;
    world.publish_raw(&topic, "ct_2", b"not avro").await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let missing = loop {
        let scraped = match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            Ok(answer) => answer.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|name| {
                !scraped
                    .lines()
                    .any(|line| !line.starts_with('#') && line.starts_with(name.as_str()))
            })
            .collect();
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    child.kill();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?} (of {wanted:?})"
    );
}
