//! End-to-end: `hubsync-dev demo` runs the whole pipeline on the in-process sandbox with a small
//! generated team, gives every event its outcome, produces each kind of outcome for contacts and
//! for activities, leaves in HubSpot exactly the contacts, companies, notes, emails, calls,
//! tasks, meetings and deals the team should have there, and sends upstream exactly the HubSpot
//! users' changes of fields mapped back, none of hubsync's own writes.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The demo's own deadline for outcomes, and a margin for start and stop on a loaded machine.
const DEMO_TIMEOUT: &str = "150s";
const KILL_AFTER: Duration = Duration::from_secs(240);

struct Run {
    code: Option<i32>,
    stdout: String,
}

fn demo(args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hubsync-dev"))
        .arg("demo")
        .args(args)
        .args(["--timeout", DEMO_TIMEOUT])
        .env("HUBSYNC_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("hubsync binary starts");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + KILL_AFTER;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for hubsync") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = reader.join().expect("stdout reader");
    assert!(
        status.is_some(),
        "hubsync-dev demo still ran after {KILL_AFTER:?}:\n{stdout}"
    );
    Run {
        code: status.and_then(|s| s.code()),
        stdout,
    }
}

/// The count on a `name: N` line.
fn labelled(stdout: &str, name: &str) -> usize {
    let prefix = format!("{name}: ");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{name}: N` line in:\n{stdout}"))
}

/// The events with `status` (all of them, and the activity events), from the outcome table's
/// `  status  total  contacts  companies  activities`.
fn status_count(stdout: &str, status: &str) -> (usize, usize) {
    stdout
        .lines()
        .find_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [name, total, _, _, activities] if *name == status => {
                    Some((total.parse().ok()?, activities.parse().ok()?))
                }
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("no outcome line for {status} in:\n{stdout}"))
}

/// The events and expected events of one activity reason, from the table of activity
/// outcomes: `  status  CODE  events  expected`.
fn activity_reason(stdout: &str, status: &str, code: &str) -> (usize, usize) {
    let table = stdout
        .split_once("\nactivities      reason code")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no table of activity outcomes in:\n{stdout}"));
    table
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .find_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [s, c, got, want] if *s == status && *c == code => {
                    Some((got.parse().ok()?, want.parse().ok()?))
                }
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("no activity outcome {status} {code} in:\n{stdout}"))
}

#[test]
fn the_demo_gives_every_event_its_outcome_and_hubspot_the_right_records() {
    let run = demo(&["--contacts", "300", "--companies", "30", "--seed", "7"]);
    let out = &run.stdout;
    assert_eq!(run.code, Some(0), "hubsync-dev demo failed:\n{out}");
    assert!(out.contains("result: complete"), "{out}");

    for status in ["created", "updated", "skipped", "parked", "dead_lettered"] {
        assert!(
            status_count(out, status).0 > 0,
            "no {status} outcome in:\n{out}"
        );
    }
    // Activities of every fate: written once, found again when the producer retries, skipped
    // by each rule, parked for want of their contact, refused for a malformed contact email.
    for (status, code) in [
        ("created", "CREATED"),
        ("unchanged", "UNCHANGED"),
        ("skipped", "ACTIVITY_TYPE_DISABLED"),
        ("skipped", "CAMPAIGN_PUSH_DISABLED"),
        ("skipped", "UNSUBSCRIBE_NOT_SELF_INITIATED"),
        ("parked", "PARKED_CONTACT_MISSING"),
        ("dead_lettered", "INVALID_EMAIL"),
    ] {
        let (got, want) = activity_reason(out, status, code);
        assert!(want > 0, "the team has no activity {status} {code}:\n{out}");
        assert_eq!(got, want, "activities {status} {code}:\n{out}");
    }
    assert_eq!(
        status_count(out, "updated").1,
        0,
        "an activity is never updated:\n{out}"
    );
    for object in ["notes", "emails", "calls", "tasks", "meetings", "deals"] {
        let expected = labelled(out, &format!("expected {object}"));
        assert!(expected > 0, "the team makes no {object}:\n{out}");
        assert_eq!(
            labelled(out, &format!("hubspot {object}")),
            expected,
            "{object}:\n{out}"
        );
    }
    assert_eq!(
        labelled(out, "hubspot contacts"),
        labelled(out, "expected contacts"),
        "{out}"
    );
    assert_eq!(labelled(out, "expected companies"), 30, "{out}");
    assert_eq!(
        labelled(out, "hubspot companies"),
        labelled(out, "expected companies"),
        "{out}"
    );
    let (linked, of) = out
        .lines()
        .find_map(|line| line.strip_prefix("contacts linked to their primary company: "))
        .and_then(|rest| {
            let mut words = rest.split_whitespace();
            let linked: usize = words.next()?.parse().ok()?;
            let of: usize = words.nth(1)?.parse().ok()?;
            Some((linked, of))
        })
        .unwrap_or_else(|| panic!("no company link line in:\n{out}"));
    assert!(of > 0, "no contact whose company is in HubSpot:\n{out}");
    assert_eq!(linked, of, "contacts linked to their company:\n{out}");
    // HubSpot -> upstream: HubSpot's webhooks brought hubsync's own writes back and none went
    // up; of the users' edits, exactly the changes of the fields mapped back went up, each once.
    let expected_changes = labelled(out, "expected hubspot changes");
    assert!(expected_changes > 0, "no user's edit to send up:\n{out}");
    assert_eq!(
        labelled(out, "hubspot changes"),
        expected_changes,
        "HubSpot changes upstream:\n{out}"
    );
    assert_eq!(labelled(out, "echoes sent up"), 0, "{out}");
    assert!(
        labelled(out, "echoes dropped") > 0,
        "no webhook brought hubsync's writes back:\n{out}"
    );
    assert!(
        out.contains("upstream got exactly the users' changes of fields mapped back"),
        "the changes upstream differ from the prediction:\n{out}"
    );
    assert!(
        out.contains("checks: every event has one outcome"),
        "the run differs from what the generated team says must happen:\n{out}"
    );
    assert!(out.contains("next commands to try"), "{out}");
}

/// Three teams in one pipeline, each generated from its own seed (sharing upstream contact and
/// company ids) and written to its own portal: each portal holds exactly its own team's records.
#[test]
fn several_teams_each_end_in_their_own_portal() {
    let run = demo(&[
        "--teams",
        "3",
        "--contacts",
        "120",
        "--companies",
        "12",
        "--seed",
        "11",
    ]);
    let out = &run.stdout;
    assert_eq!(
        run.code,
        Some(0),
        "hubsync-dev demo --teams 3 failed:\n{out}"
    );
    let sections: Vec<&str> = out.split("=== team ").skip(1).collect();
    assert_eq!(sections.len(), 3, "a report per team:\n{out}");
    for section in sections {
        assert!(section.contains("result: complete"), "{section}");
        assert_eq!(
            labelled(section, "hubspot contacts"),
            labelled(section, "expected contacts"),
            "{section}"
        );
        assert_eq!(labelled(section, "hubspot companies"), 12, "{section}");
        // Each portal's users' changes go up as its own team's.
        let expected_changes = labelled(section, "expected hubspot changes");
        assert!(expected_changes > 0, "{section}");
        assert_eq!(
            labelled(section, "hubspot changes"),
            expected_changes,
            "{section}"
        );
        assert_eq!(labelled(section, "echoes sent up"), 0, "{section}");
    }
    assert!(out.contains("3 teams: 3 matched their prediction"), "{out}");
}

#[test]
fn a_team_without_companies_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_hubsync-dev"))
        .args(["demo", "--companies", "0"])
        .output()
        .expect("hubsync binary runs");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--companies"), "{stderr}");
}
