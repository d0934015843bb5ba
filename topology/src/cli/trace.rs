//! `hubsync trace RECORD --config FILE [--since ..] [--until ..] [--json]`: "why didn't this
//! record sync?" in one command.
//!
//! Reads the source topics for the record's events (a second time when the first reading taught
//! new identifiers, such as the contact id of an email), decides each again with the current
//! rules, reads the commands, outcomes and dead letters of those events, and reads the record
//! from HubSpot (read-only calls only: the portal's properties and owners, batch reads and
//! searches). Its activities are looked up by `hubsync_activity_id` and the deals they trigger
//! by `hubsync_deal_key`, as the sink finds them, and an activity an outcome names by HubSpot id
//! is read by that id (search lags writes by seconds).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use super::logs::{Output, time_arg, window};
use crate::ops::Ops;
use crate::ops::subject::Asked;
use crate::ops::trace::gather;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
What it reads: the contact, company and activity topics for the record's events (by email,
domain, LinkedIn profile, contact, company or activity id, event id), a second time when the
first reading found new identifiers (a contact parked for want of an email is found by the
email its other events or its activities carry, through the contact id they share); the
commands, outcomes and dead letters of those events; the portal's properties and owners, the
record itself, its activities (by hubsync_activity_id) and the deals they trigger (by
hubsync_deal_key) from HubSpot (read-only calls). Nothing is written anywhere.

Each event is decided again with the current configuration's rules (\"rules now\"), and, for a
write, what the sink would do given the record HubSpot holds now (a record known only by
upstream id, such as a contact without an email, is not looked up: when its change lacks
mandatory fields it is parked with them, as the sink parks it unless its identity map holds
it). An activity shows the HubSpot object it becomes (note, email, call, task, meeting) or the
rule that skips it, its owner (the sender's mapped owner, the contact's owner, the default
owner), its links and the deal it triggers; the sink creates it once, and makes it wait while
HubSpot lacks its contact (WAITS_FOR_CONTACT, then PARKED_CONTACT_MISSING after
stages.sink.contact_wait).

Output: a timeline for people; --json prints one JSON document {asked, found, since, until,
searched, hubspot_reads, identifiers, rules_note, timeline, latest_outcome, hubspot,
hubspot_error}, each timeline step carrying its event, rules_now, command, outcome or
dead_letter.

Exit status: 0 something about the record was found; 1 nothing was found (what was searched is
printed; with --json the document says \"found\": false) or the brokers or the registry could not
be used (nothing on stdout then); 2 a bad configuration or arguments.")]
pub struct TraceArgs {
    /// The record: an email, a company domain, a contact's LinkedIn profile URL, an event id,
    /// an upstream contact, company or activity id (act_...), or a HubSpot id (digits). Prefix
    /// email:, domain:, linkedin:, id: or hubspot: to say which.
    pub record: String,
    /// The configuration file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// The team, for a service file of several (a one-file configuration names its own).
    #[arg(long)]
    pub team: Option<String>,
    /// Only records at or after this time: RFC 3339 (2026-11-22T10:00:00Z), a date (2026-11-22),
    /// `now`, or a duration ago (90m, 2h, 3d). Default: the topics' start.
    #[arg(long, value_parser = time_arg)]
    pub since: Option<i64>,
    /// Only records at or before this time (same forms as --since).
    #[arg(long, value_parser = time_arg)]
    pub until: Option<i64>,
    /// One JSON document (see below).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let Some(asked) = Asked::parse(&args.record) else {
        eprintln!(
            "error: {:?} is not a record to trace: give an email, a domain, a LinkedIn profile URL, an event id, an upstream id or a HubSpot id (digits), optionally as email:, domain:, linkedin:, id: or hubspot:",
            args.record
        );
        return Ok(ExitCode::from(2));
    };
    let window = match window(args.since, args.until) {
        Ok(window) => window,
        Err(problem) => return Ok(super::usage(&problem)),
    };
    let (config, secrets) = match super::load_config(&args.config, args.team.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let client = match super::hubspot_client(&args.config, &config, &secrets) {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let ops = Ops::new(config, secrets)?;
    let progress = !args.json && std::io::stderr().is_terminal();
    let report = gather::trace(&ops, &client, &asked, window, progress).await?;
    let mut output = Output::default();
    if args.json {
        output.text(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    } else {
        output.text(&report.render());
    }
    let code = output.finish()?;
    Ok(if report.found {
        code
    } else {
        ExitCode::FAILURE
    })
}
