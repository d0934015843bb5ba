//! `hubsync check`: what a deploy verifies before the pipeline starts, against the real services
//! the configuration names.
//!
//! Each check is a function returning a [`Finding`]: its status, a line for people, and the
//! problems it found, each naming the config field to change. [`run`] loads the configuration
//! and runs them all (HubSpot, Kafka and the schema registry side by side) into a [`Report`]:
//!
//! | check | holds when |
//! |---|---|
//! | `config` | the file loads and its secrets can be read |
//! | `hubspot_token` | HubSpot accepts `hubspot.token` |
//! | `hubspot_portal` | the token's portal is `team.hubspot_portal_id` |
//! | `properties` | the rules fit the portal's properties ([`properties::check`]) |
//! | `owners` | every owner id in `[users]` is an active HubSpot owner ([`owners::check`]) |
//! | `topics` | every topic of `[topics]` exists on the broker ([`topics::check`]) |
//! | `registry` | each topic's value subject holds a schema ours is compatible with, or none yet ([`schemas::check`]) |
//!
//! A service that does not answer makes its checks `unreachable`; checks that need an earlier
//! one to pass (the portal's properties need a working token) are `skipped`, saying why.

pub(crate) mod hubspot;
mod owners;
mod properties;
mod schemas;
mod topics;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, ConfigError, Secrets};

/// Names of the checks, in the order they are reported.
pub const CONFIG: &str = "config";
pub const HUBSPOT_TOKEN: &str = "hubspot_token";
pub const HUBSPOT_PORTAL: &str = "hubspot_portal";
pub const PROPERTIES: &str = "properties";
pub const OWNERS: &str = "owners";
pub const TOPICS: &str = "topics";
pub const REGISTRY: &str = "registry";

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Everything it looks at holds.
    Ok,
    /// It found problems in the configuration or in the services' setup.
    Problem,
    /// The service did not answer (or not usefully): nothing could be concluded.
    Unreachable,
    /// Not run, because a check it depends on did not pass.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Problem => "problem",
            Status::Unreachable => "unreachable",
            Status::Skipped => "skipped",
        }
    }
}

/// What kind of problem, for scripts; the message says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The file does not load (syntax, unknown keys, invalid values).
    ConfigInvalid,
    /// A secret the file names cannot be read here.
    SecretMissing,
    /// HubSpot refuses the token (401) or it lacks scopes (403).
    TokenRejected,
    /// HubSpot answered, but not as the API promises (a wrong `hubspot.base_url`, say).
    HubSpotRefused,
    /// The token belongs to another portal than `team.hubspot_portal_id`.
    WrongPortal,
    /// A property the rules name does not exist on its object.
    PropertyMissing,
    /// A property the rules write is read-only.
    PropertyReadOnly,
    /// A mapped property's type cannot hold the source field's values.
    PropertyType,
    /// A configured value is not an option of its enumeration property (matched exactly).
    InvalidOption,
    /// A configured value does not fit its property's type (a number, a date...).
    InvalidValue,
    /// The identity property does not have unique values.
    IdPropertyNotUnique,
    /// The owner strategy writes `hubspot_owner_id`, which is read-only in this portal.
    OwnerPropertyReadOnly,
    /// Any other way the rules do not fit the portal.
    RuleMisfit,
    /// An owner id in `[users]` is not an active HubSpot owner.
    OwnerMissing,
    /// The Kafka client cannot be set up with `[kafka]`.
    KafkaConfig,
    /// A configured topic does not exist on the broker.
    TopicMissing,
    /// The schema registry refuses the credentials.
    RegistryAuth,
    /// The schema registry refused a request or answered something unreadable.
    RegistryRefused,
    /// Our schema is not compatible with the latest one registered under the subject.
    SchemaIncompatible,
}

/// One problem: which check found it, its kind, the config field to change, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub check: &'static str,
    pub kind: ProblemKind,
    /// Dotted path of the config field, e.g. `users.mapping[2].owner`.
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(
        check: &'static str,
        kind: ProblemKind,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            check,
            kind,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub status: Status,
    /// One line for people: what was checked, or why it could not be.
    pub detail: String,
    pub problems: Vec<Problem>,
}

impl Finding {
    /// `Ok` without problems, `Problem` with some.
    pub fn from_problems(detail: impl Into<String>, problems: Vec<Problem>) -> Self {
        let status = if problems.is_empty() {
            Status::Ok
        } else {
            Status::Problem
        };
        Finding {
            status,
            detail: detail.into(),
            problems,
        }
    }

    pub fn ok(detail: impl Into<String>) -> Self {
        Self::from_problems(detail, Vec::new())
    }

    pub fn problem(detail: impl Into<String>, problem: Problem) -> Self {
        Self::from_problems(detail, vec![problem])
    }

    pub fn unreachable(detail: impl Into<String>) -> Self {
        Finding {
            status: Status::Unreachable,
            detail: detail.into(),
            problems: Vec::new(),
        }
    }

    pub fn skipped(detail: impl Into<String>) -> Self {
        Finding {
            status: Status::Skipped,
            detail: detail.into(),
            problems: Vec::new(),
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRow {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
}

/// Every check's row and every problem; `ok` when all checks passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<CheckRow>,
    pub problems: Vec<Problem>,
}

/// Exit status when every check passed.
pub const EXIT_OK: u8 = 0;
/// Exit status when a service could not be reached at all.
pub const EXIT_UNREACHABLE: u8 = 1;
/// Exit status when problems were found.
pub const EXIT_PROBLEMS: u8 = 2;

impl Report {
    fn new() -> Self {
        Report {
            ok: true,
            checks: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn add(&mut self, check: &'static str, finding: Finding) {
        if finding.status != Status::Ok {
            self.ok = false;
        }
        self.checks.push(CheckRow {
            check,
            status: finding.status,
            detail: finding.detail,
        });
        self.problems.extend(finding.problems);
    }

    /// Whether any service could not be reached.
    pub fn unreachable(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Unreachable)
    }

    /// 1 when a service could not be reached, 2 when problems were found, 0 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.unreachable() {
            EXIT_UNREACHABLE
        } else if self.ok {
            EXIT_OK
        } else {
            EXIT_PROBLEMS
        }
    }
}

/// How long to wait for services that have no timeout of their own in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// For the broker's metadata.
    pub kafka_timeout: Duration,
    /// The team of a service file to check (a one-file configuration names its own).
    pub team: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            kafka_timeout: Duration::from_secs(10),
            team: None,
        }
    }
}

/// Loads the configuration at `file` (environment overrides included) and runs every check.
pub async fn run(file: &Path, settings: Settings) -> Report {
    let mut report = Report::new();
    let (config, secrets) = match load(file, settings.team.as_deref()) {
        Ok(loaded) => loaded,
        Err(finding) => {
            report.add(CONFIG, finding);
            for check in [
                HUBSPOT_TOKEN,
                HUBSPOT_PORTAL,
                PROPERTIES,
                OWNERS,
                TOPICS,
                REGISTRY,
            ] {
                report.add(check, Finding::skipped("the configuration must load first"));
            }
            return report;
        }
    };
    report.add(
        CONFIG,
        Finding::ok(format!(
            "{} loads (team {}, HubSpot portal {})",
            file.display(),
            config.team.id,
            config.team.hubspot_portal_id
        )),
    );
    check_services(&config, &secrets, settings, &mut report).await;
    report
}

/// The service checks of a loaded configuration, HubSpot, Kafka and the registry side by side.
async fn check_services(
    config: &Config,
    secrets: &Secrets,
    settings: Settings,
    report: &mut Report,
) {
    let (hubspot, topics, schemas) = tokio::join!(
        hubspot::check(config, secrets),
        topics::check(config, secrets, settings.kafka_timeout),
        schemas::check(config, secrets),
    );
    for (check, finding) in hubspot {
        report.add(check, finding);
    }
    report.add(TOPICS, topics);
    report.add(REGISTRY, schemas);
}

/// The configuration and its secrets, or the `config` finding saying why not.
fn load(file: &Path, team: Option<&str>) -> Result<(Config, Secrets), Finding> {
    let config = crate::config::Service::team_config(file, team).map_err(|error| {
        config_finding(file, &error, ProblemKind::ConfigInvalid, "does not load")
    })?;
    let secrets = config.resolve_secrets().map_err(|error| {
        config_finding(
            file,
            &error,
            ProblemKind::SecretMissing,
            "loads, but its secrets cannot be read",
        )
    })?;
    Ok((config, secrets))
}

fn config_finding(file: &Path, error: &ConfigError, kind: ProblemKind, what: &str) -> Finding {
    let problems: Vec<Problem> = error
        .problems()
        .into_iter()
        .map(|problem| {
            let message = problem.to_string();
            let message = message
                .strip_prefix(&format!("{}: ", problem.field))
                .unwrap_or(&message)
                .to_owned();
            Problem::new(CONFIG, kind, problem.field, message)
        })
        .collect();
    let count = problems.len();
    Finding::from_problems(
        format!(
            "{} {what}: {count} {}",
            file.display(),
            if count == 1 { "problem" } else { "problems" }
        ),
        problems,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(statuses: &[Status]) -> Report {
        let mut report = Report::new();
        for status in statuses {
            let finding = Finding {
                status: *status,
                detail: String::new(),
                problems: Vec::new(),
            };
            report.add(CONFIG, finding);
        }
        report
    }

    #[test]
    fn unreachable_wins_over_problems_which_win_over_ok() {
        assert_eq!(report(&[Status::Ok, Status::Ok]).exit_code(), EXIT_OK);
        assert!(report(&[Status::Ok]).ok);
        assert_eq!(
            report(&[Status::Ok, Status::Problem, Status::Skipped]).exit_code(),
            EXIT_PROBLEMS
        );
        assert_eq!(
            report(&[Status::Problem, Status::Unreachable]).exit_code(),
            EXIT_UNREACHABLE
        );
        assert!(!report(&[Status::Skipped]).ok);
    }

    #[tokio::test]
    async fn a_file_that_does_not_load_skips_every_service() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hubsync.toml");
        std::fs::write(&path, "[team]\nid = \"acme\"\nhubspot_portal_id = \"x\"\n").expect("write");
        let report = run(&path, Settings::default()).await;
        assert_eq!(report.exit_code(), EXIT_PROBLEMS);
        assert_eq!(report.checks[0].status, Status::Problem);
        assert!(
            report.checks[1..]
                .iter()
                .all(|row| row.status == Status::Skipped)
        );
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].kind, ProblemKind::ConfigInvalid);
        assert_eq!(report.problems[0].field, "team.hubspot_portal_id");
    }
}
