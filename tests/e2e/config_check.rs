//! End-to-end: `hubsync config check` on the documented example and on broken files.
//!
//! Each case runs the real binary with a clean environment (no `HUBSYNC_*` variables unless the
//! case sets them) and checks the exit status, that every problem names its field first, and
//! that the message says what is allowed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VARIABLES: [&str; 5] = [
    "HUBSYNC_HUBSPOT_TOKEN",
    "HUBSYNC_KAFKA_BROKERS",
    "HUBSYNC_REGISTRY_URL",
    "HUBSYNC_HUBSPOT_URL",
    "HUBSYNC_KAFKA_PASSWORD",
];

const TEAM: &str = "[team]\nid = \"acme-sales\"\nhubspot_portal_id = 4455667\n\n[users]\ndefault_owner = \"90011\"\n";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/hubsync.toml")
}

fn hubsync(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hubsync"));
    command.args(args);
    for name in VARIABLES {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("run hubsync")
}

fn check(path: &Path, env: &[(&str, &str)]) -> Output {
    hubsync(
        &["config", "check", path.to_str().expect("utf-8 path")],
        env,
    )
}

/// Writes `text` to a fresh file and runs `config check` on it.
fn check_text(text: &str) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hubsync.toml");
    std::fs::write(&path, text).expect("write config");
    (check(&path, &[]), dir)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_example_is_valid_and_summarised() {
    let output = check(&example(), &[]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(out.starts_with("ok: "), "{out}");
    assert!(out.contains("acme-sales (HubSpot portal 4455667)"), "{out}");
    assert!(out.contains("tier professional: 190 requests/10s"), "{out}");
    assert!(
        out.contains("in crm.contact.changes, crm.company.changes, crm.activity.events"),
        "{out}"
    );
    assert!(out.contains("6 contact, 3 company"), "{out}");
    assert!(out.contains("3 mapped, default owner 90011"), "{out}");
    // The token is not set here: a warning, not an error.
    assert!(
        out.contains(
            "warning: hubspot.token: environment variable HUBSYNC_HUBSPOT_TOKEN is not set"
        ),
        "{out}"
    );
}

#[test]
fn no_secret_warning_once_the_secrets_are_there() {
    let output = check(
        &example(),
        &[
            ("HUBSYNC_HUBSPOT_TOKEN", "pat-na1-e2e-token"),
            ("HUBSYNC_KAFKA_PASSWORD", "e2e-password"),
        ],
    );
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(!out.contains("warning:"), "{out}");
    assert!(
        !out.contains("pat-na1-e2e-token") && !out.contains("e2e-password"),
        "{out}"
    );
}

/// One broken setting per case: the field the report must name and words of what is allowed.
const BROKEN: &[(&str, &str, &str)] = &[
    (
        "[[users.mapping]]\nuser = \"ada\"\nowner = \"501\"\n[[users.mapping]]\nuser = \"ada\"\nowner = \"502\"\n",
        "users.mapping[1].owner",
        "maps to exactly one HubSpot owner",
    ),
    (
        "[activities]\nemail_clicked = { store_as = \"email\" }\n",
        "activities.email_clicked.store_as",
        "use store_as = \"note\"",
    ),
    (
        "[[sync.contacts.mapping]]\nsource = \"title\"\nproperty = \"jobtitle\"\n[[sync.contacts.mapping]]\nsource = \"role\"\nproperty = \"jobtitle\"\ndirection = \"both\"\n",
        "sync.contacts.mapping[1].property",
        "already written by sync.contacts.mapping[0]",
    ),
    (
        "[[sync.companies.mapping]]\nsource = \"\"\nproperty = \"name\"\n",
        "sync.companies.mapping[0].source",
        "must not be empty",
    ),
    (
        "[stages.sink]\nbatch_size = 101\n",
        "stages.sink.batch_size",
        "1..=100",
    ),
    (
        "[hubspot]\nbackfill_share = 1.5\n",
        "hubspot.backfill_share",
        "0.0..=1.0",
    ),
    (
        "[hubspot]\ntier = \"platinum\"\n",
        "hubspot.tier",
        "`enterprise`",
    ),
    (
        "[sync.contacts]\ncreate = { trigger = { on_activity = \"email_answered\" } }\n",
        "sync.contacts.create.trigger.on_activity",
        "`email_replied`",
    ),
    (
        "[campaigns.cmp_1]\ndeal_triggers = [\"replied\"]\n",
        "campaigns.cmp_1.deal_triggers[0]",
        "`meeting_booked`",
    ),
    (
        "[campaigns.cmp_1]\ndeal_triggers = [\"email_replied\"]\n",
        "sync.deals.pipeline",
        "campaigns.cmp_1.deal_triggers creates deals",
    ),
    (
        "[sync.contacts]\nid_property = \"\"\n",
        "sync.contacts.id_property",
        "\"email\"",
    ),
    (
        "[registry]\nurl = \"registry:8081\"\n",
        "registry.url",
        "http or https URL",
    ),
    (
        "[admin]\nlisten = \"metrics.local\"\n",
        "admin.listen",
        "ip:port",
    ),
    (
        "[topics]\ndlq = \"hubsync.outcomes\"\n",
        "topics.dlq",
        "is also topics.outcomes",
    ),
    (
        "[kafka]\nbrokerz = \"k:9092\"\n",
        "kafka.brokerz",
        "`brokers`",
    ),
    (
        "[hubspot]\ntoken = \"pat-na1-pasted\"\n",
        "hubspot.token",
        "{ env = \"VAR\" }",
    ),
];

#[test]
fn each_kind_of_error_names_its_field_and_what_is_allowed() {
    for (extra, field, allowed) in BROKEN {
        let (output, _dir) = check_text(&format!("{TEAM}\n{extra}"));
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{extra}\n{err}");
        assert!(stdout(&output).is_empty(), "{extra}");
        let line = err
            .lines()
            .find(|line| line.starts_with(&format!("{field}: ")))
            .unwrap_or_else(|| panic!("no line starting with {field}:\n{err}"));
        assert!(line.contains(allowed), "{line}");
        assert!(!err.contains("pat-na1-pasted"), "{err}");
    }
}

#[test]
fn every_problem_is_listed_one_per_line() {
    let text = format!("{TEAM}\n{}\n{}\n{}", BROKEN[0].0, BROKEN[1].0, BROKEN[4].0);
    let (output, _dir) = check_text(&text);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    let lines: Vec<_> = err.lines().collect();
    assert!(
        lines[0].starts_with("invalid: ") && lines[0].ends_with(": 3 problems"),
        "{err}"
    );
    assert!(lines[1].starts_with("stages.sink.batch_size: "), "{err}");
    assert!(lines[2].starts_with("users.mapping[1].owner: "), "{err}");
    assert!(
        lines[3].starts_with("activities.email_clicked.store_as: "),
        "{err}"
    );
}

#[test]
fn syntax_errors_give_line_and_column() {
    let (output, _dir) = check_text("[team]\nid = \"acme\nhubspot_portal_id = 1\n");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("line 2, column ")),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_a_config_error() {
    let output = check(Path::new("/nonexistent/hubsync.toml"), &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot read config file /nonexistent/hubsync.toml"));
}

#[test]
fn environment_overrides_are_applied_and_reported() {
    let output = check(
        &example(),
        &[("HUBSYNC_KAFKA_BROKERS", "override-1:9092,override-2:9092")],
    );
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(
        out.contains("kafka       override-1:9092,override-2:9092"),
        "{out}"
    );
    assert!(
        out.contains("override    kafka.brokers from HUBSYNC_KAFKA_BROKERS"),
        "{out}"
    );

    let output = check(&example(), &[("HUBSYNC_HUBSPOT_URL", "not a url")]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("hubspot.base_url: "), "{err}");
    assert!(
        err.contains("environment variable HUBSYNC_HUBSPOT_URL"),
        "{err}"
    );
}

#[test]
fn json_reports_are_machine_readable() {
    let path = example();
    let output = hubsync(&["config", "check", "--json", path.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json report");
    assert_eq!(report["valid"], true);
    assert_eq!(report["errors"].as_array().map(Vec::len), Some(0));
    let summary = &report["summary"];
    assert_eq!(summary["team"], "acme-sales");
    assert_eq!(summary["hubspot_portal_id"], 4455667);
    assert_eq!(summary["budget"]["requests_per_10s"], 190);
    assert_eq!(summary["topics"]["dlq"], "hubsync.dlq");
    assert_eq!(summary["mappings"]["contacts"], 6);
    assert_eq!(summary["users_mapped"], 3);
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["field"] == "hubspot.token")
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, format!("{TEAM}\n[kafka]\nbrokerz = 1\n")).unwrap();
    let output = hubsync(
        &["config", "check", "--json", broken.to_str().unwrap()],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json report");
    assert_eq!(report["valid"], false);
    assert!(report["summary"].is_null());
    let error = &report["errors"][0];
    assert_eq!(error["field"], "kafka.brokerz");
    assert_eq!(error["line"], 9);
    assert_eq!(error["column"], 1);
    assert!(error["message"].as_str().unwrap().contains("unknown field"));
}

/// The example service file and its team file are valid, and each team file is reported.
#[test]
fn the_example_service_and_its_team_file_are_valid() {
    let service =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/service/hubsync.toml");
    let output = hubsync(
        &[
            "config",
            "check",
            "--json",
            service.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&output), stderr(&output)));
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    let teams = report["teams"].as_array().expect("team reports");
    assert_eq!(teams.len(), 1, "{report:#}");
    assert_eq!(teams[0]["valid"], true);
    assert_eq!(teams[0]["summary"]["team"], "acme-sales");
    assert_eq!(teams[0]["summary"]["hubspot_portal_id"], 4455667);
    assert_eq!(teams[0]["summary"]["consumer_groups"][0], "hubsync.process");
}
