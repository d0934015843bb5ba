//! `hubsync plan --config FILE --topic T [--since ..] [--until ..] [--diff N] [--config-from OLD]
//! [--json]`: the dry run of a replay or a rules change.
//!
//! Reads the topic's events in the range, decides each with the current rules, coalesces the
//! commands per record as the sink does, reads those records from HubSpot (contacts by email in
//! batch reads, companies by domain in searches, activities by `hubsync_activity_id` and deals by
//! `hubsync_deal_key` in searches, at most 100 per call) and prints what would be created,
//! updated, skipped, parked, left waiting for a contact or dead-lettered, per rule, with
//! per-record property diffs. Nothing is written: not to Kafka, not to HubSpot, not to local
//! state.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use super::logs::{Output, time_arg, window};
use crate::ops::Ops;
use crate::ops::plan::read::{self, Source};
use crate::ops::plan::{Plan, render_comparison, render_counts, render_diffs};
use crate::ops::range::{Window, format_ms};
use crate::ops::scan::ScanStats;
use crate::sink::verdict::WAITS_FOR_CONTACT;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
What it does: decides every event of the topic in the range with the current rules, coalesces
the commands per record as the sink does (newest value per property by event time), reads the
records from HubSpot (contacts: batch read by email; companies: search by domain, then by name
among companies without a domain when match_on_name is set; activities: search by
hubsync_activity_id, their contacts by email; deals: search by hubsync_deal_key; 100 per call)
and compares. Only read calls reach HubSpot; nothing is published or written.

Statuses, per event (as the outcomes would record them) and per record:
  CREATED, UPDATED (HubSpot's values differ), UNCHANGED (HubSpot already holds every value, or
  the activity already; for contacts and companies the pipeline records UPDATED unless its local
  state remembers writing them), SKIPPED (by a rule, or NOT_CREATED), PARKED (mandatory fields
  missing), WAITS_FOR_CONTACT (an activity whose contact HubSpot lacks: created once the contact
  is there, else PARKED PARKED_CONTACT_MISSING after stages.sink.contact_wait), DEAD_LETTERED
  (refused values, undecodable messages), UNRESOLVED (records known only by upstream id: the
  sink's identity map finds them, and one it does not find is created or NOT_CREATED). A record
  known only by upstream id whose change lacks mandatory fields (a contact without an email) is
  PARKED with them, as the sink parks it unless its identity map holds it (hubsync created it
  by that id before).
  The headline counts the records that would really be written (CREATED, UPDATED) and the
  others beside them: \"5 records: 3 would be written (2 created, 1 updated), 2 would not (2
  parked)\".
  Activities are also counted by the HubSpot object they become (note, email, call, task,
  meeting), and the deals they trigger once each (deals answer for no event of their own).

Output: tables for people, then up to --diff records with `property: HubSpot value -> planned
value`. --json prints one JSON document {topic, since, until, read, events, records,
records_to_write (created or updated), by_status, records_by_status, skipped, parked,
dead_lettered, problems, diffs {total, shown, records}, compare (with --config-from)}; for the
activity topic also activities {object: {status: events}} and deals {by_status, records}.

Exit status: 0 the plan was made; 1 the brokers, the registry or HubSpot could not be used; 2 a
bad configuration, topic or arguments.")]
pub struct PlanArgs {
    /// The configuration file (TOML); its rules are the ones planned.
    #[arg(long)]
    pub config: PathBuf,
    /// The team, for a service file of several (a one-file configuration names its own).
    #[arg(long)]
    pub team: Option<String>,
    /// The source topic to plan: the contact changes, company changes or activity events topic
    /// of the configuration.
    #[arg(long)]
    pub topic: String,
    /// Only events at or after this time: RFC 3339 (2026-11-22T10:00:00Z), a date (2026-11-22),
    /// `now`, or a duration ago (90m, 2h, 3d). Default: the topic's start.
    #[arg(long, value_parser = time_arg)]
    pub since: Option<i64>,
    /// Only events at or before this time (same forms as --since).
    #[arg(long, value_parser = time_arg)]
    pub until: Option<i64>,
    /// Show the property changes of at most N records (0: none).
    #[arg(long, default_value_t = 20)]
    pub diff: usize,
    /// Also plan with the rules of this older configuration and show both counts side by side.
    #[arg(long)]
    pub config_from: Option<PathBuf>,
    /// One JSON document (see below).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let window = match window(args.since, args.until) {
        Ok(window) => window,
        Err(problem) => return Ok(super::usage(&problem)),
    };
    let (config, secrets) = match super::load_config(&args.config, args.team.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let old_rules = match &args.config_from {
        Some(path) => match super::load_config(path, args.team.as_deref()) {
            Ok((old, _)) => Some(old.rules),
            Err(code) => return Ok(code),
        },
        None => None,
    };
    let source = if args.topic == config.topics.contact_changes {
        Source::Contacts
    } else if args.topic == config.topics.company_changes {
        Source::Companies
    } else if args.topic == config.topics.activity_events {
        Source::Activities
    } else {
        return Ok(super::usage(&format!(
            "--topic {}: plan decides upstream events; give {}, {} or {}",
            args.topic,
            config.topics.contact_changes,
            config.topics.company_changes,
            config.topics.activity_events
        )));
    };
    let client = match super::hubspot_client(&args.config, &config, &secrets) {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let ops = Ops::new(config, secrets)?;
    let progress = !args.json && std::io::stderr().is_terminal();
    let made = read::plan(
        &ops,
        &client,
        &args.topic,
        source,
        window,
        old_rules.as_ref(),
        progress,
    )
    .await?;
    let (plan, old_plan, stats) = (made.plan, made.old, made.stats);

    let mut output = Output::default();
    if args.json {
        let mut document = document(&args, window, &stats, &plan, old_plan.as_ref());
        if source == Source::Activities {
            document["activities"] = json!(plan.activities);
            document["deals"] = json!({
                "by_status": plan.deals,
                "records": plan.deal_plans,
            });
        }
        output.text(&format!("{}\n", serde_json::to_string_pretty(&document)?));
    } else {
        let mut text = render(&args, window, &stats, &plan, old_plan.as_ref());
        if plan.by_status.contains_key(WAITS_FOR_CONTACT) {
            text.push_str(&format!(
                "\n{WAITS_FOR_CONTACT}: activities whose contact HubSpot lacks now; the sink creates \
                 each once its contact is there, or parks it PARKED_CONTACT_MISSING after \
                 stages.sink.contact_wait ({})\n",
                humantime::format_duration(ops.config.stages.sink.contact_wait)
            ));
        }
        output.text(&text);
    }
    output.finish()
}

fn window_text(window: Window) -> String {
    match (window.since, window.until) {
        (None, None) => "the whole topic".to_string(),
        (Some(since), None) => format!("{} to now", format_ms(since)),
        (None, Some(until)) => format!("the start to {}", format_ms(until)),
        (Some(since), Some(until)) => format!("{} to {}", format_ms(since), format_ms(until)),
    }
}

fn render(
    args: &PlanArgs,
    window: Window,
    stats: &ScanStats,
    plan: &Plan,
    old: Option<&Plan>,
) -> String {
    let mut out = format!(
        "plan for {}, {}: {} events, {}\n",
        args.topic,
        window_text(window),
        plan.events,
        plan.records_summary()
    );
    out.push_str(&format!(
        "the rules of {} against HubSpot as it is now ({} records read); nothing was written\n\n",
        args.config.display(),
        stats.read
    ));
    out.push_str(&render_counts(plan));
    if let (Some(old), Some(path)) = (old, &args.config_from) {
        out.push_str(&format!(
            "\nthe rules of {} (old) and {} (current):\n",
            path.display(),
            args.config.display()
        ));
        out.push_str(&render_comparison(old, plan));
    }
    let diffs = render_diffs(plan, args.diff);
    if !diffs.is_empty() {
        out.push('\n');
        out.push_str(&diffs);
    }
    out
}

fn document(
    args: &PlanArgs,
    window: Window,
    stats: &ScanStats,
    plan: &Plan,
    old: Option<&Plan>,
) -> serde_json::Value {
    let changed: Vec<_> = plan.changed().collect();
    let shown: Vec<_> = changed.iter().take(args.diff).collect();
    let mut document = json!({
        "topic": args.topic,
        "since": window.since.map(format_ms),
        "until": window.until.map(format_ms),
        "read": stats.read,
        "events": plan.events,
        "records": plan.records,
        "records_to_write": plan.records_to_write(),
        "by_status": plan.by_status,
        "records_by_status": plan.records_by_status,
        "skipped": plan.skipped,
        "parked": plan.parked,
        "dead_lettered": plan.dead_lettered,
        "problems": plan.problems,
        "diffs": {
            "total": changed.len(),
            "shown": shown.len(),
            "records": shown,
        },
    });
    if let (Some(old), Some(path)) = (old, &args.config_from) {
        document["compare"] = json!({
            "config_from": path.display().to_string(),
            "old": counts(old),
            "current": counts(plan),
        });
    }
    document
}

fn counts(plan: &Plan) -> serde_json::Value {
    json!({
        "events": plan.events,
        "by_status": plan.by_status,
        "skipped": plan.skipped,
        "parked": plan.parked,
        "dead_lettered": plan.dead_lettered,
    })
}
