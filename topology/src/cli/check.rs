//! `hubsync check --config FILE [--json]`: the preflight a deploy pipeline runs before starting
//! hubsync; see [`crate::ops::check`] for what is checked.
//!
//! Exit status: 0 when every check passed, 2 when problems were found (each naming its config
//! field), 1 when a service could not be reached at all (what could be checked is still listed).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::ops::check::{self as preflight, Report, Settings};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 every check passed, 2 problems found, 1 a service could not be reached.\n\
                  With --json, stdout is one JSON document: {\"ok\": bool, \"checks\": [{\"check\", \"status\", \"detail\"}], \
                  \"problems\": [{\"check\", \"kind\", \"field\", \"message\"}]}; status is ok, problem, unreachable or skipped."
)]
pub struct CheckArgs {
    /// The configuration file (TOML); environment overrides apply as for `run`.
    #[arg(long)]
    pub config: PathBuf,
    /// The team, for a service file of several (a one-file configuration names its own).
    #[arg(long)]
    pub team: Option<String>,
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the Kafka broker's metadata (HubSpot and the registry use their
    /// configured request timeouts).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings {
        kafka_timeout: args.timeout,
        team: args.team.clone(),
    };
    let report = preflight::run(&args.config, settings).await;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print(&mut out, &report)?;
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// The table of checks, then every problem with its field.
fn print(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    let name_width = report
        .checks
        .iter()
        .map(|row| row.check.len())
        .chain(["check".len()])
        .max()
        .unwrap_or(0);
    let status_width = "unreachable".len();
    writeln!(
        out,
        "{:name_width$}  {:status_width$}  detail",
        "check", "status"
    )?;
    for row in &report.checks {
        writeln!(
            out,
            "{:name_width$}  {:status_width$}  {}",
            row.check,
            row.status.as_str(),
            row.detail
        )?;
    }
    if report.problems.is_empty() {
        return Ok(());
    }
    let count = report.problems.len();
    writeln!(
        out,
        "\n{count} {}:",
        if count == 1 { "problem" } else { "problems" }
    )?;
    for problem in &report.problems {
        let field = if problem.field.is_empty() {
            "(file)"
        } else {
            &problem.field
        };
        writeln!(out, "  {field} [{}]", kind_name(problem))?;
        writeln!(out, "      {}", problem.message)?;
    }
    Ok(())
}

/// The kind as it appears in the JSON document.
fn kind_name(problem: &preflight::Problem) -> String {
    serde_json::to_value(problem.kind)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::{CheckRow, Problem, ProblemKind, Status};

    #[test]
    fn the_table_lines_up_and_lists_problems_with_fields() {
        let report = Report {
            ok: false,
            checks: vec![
                CheckRow {
                    check: "config",
                    status: Status::Ok,
                    detail: "loads".to_owned(),
                },
                CheckRow {
                    check: "hubspot_token",
                    status: Status::Problem,
                    detail: "HTTP 401".to_owned(),
                },
            ],
            problems: vec![Problem::new(
                "hubspot_token",
                ProblemKind::TokenRejected,
                "hubspot.token",
                "HubSpot refused the token",
            )],
        };
        let mut out = Vec::new();
        print(&mut out, &report).expect("print");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "check          status       detail\n\
             config         ok           loads\n\
             hubspot_token  problem      HTTP 401\n\
             \n\
             1 problem:\n  \
             hubspot.token [token_rejected]\n      \
             HubSpot refused the token\n"
        );
    }
}
