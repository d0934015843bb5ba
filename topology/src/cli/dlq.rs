//! `hubsync dlq list|show|redrive --config FILE`: the dead-letter topic for on-call staff.
//!
//! - `list`: dead letters by time range, reason, error class, source topic and record.
//! - `show ID`: one dead letter whole: error, Kafka Connect headers, original headers, and the
//!   original payload decoded through the registry (or why it cannot be, with its bytes).
//! - `redrive [ID...] [filters] [--dry-run]`: publishes the originals again to their source
//!   topics, marked with `hubsync.redrive.of` and `hubsync.redrive.at`.
//!
//! Exit status: 0 ok (also when nothing matches), 1 when the brokers or registry cannot be used
//! or a record could not be redriven, 2 for a bad configuration or arguments.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use hubsync_schemas::ErrorClass;

use super::logs::{Output, time_arg, window};
use crate::ops::Ops;
use crate::ops::dlq::{
    Letter, LetterFilter, RedriveReport, describe, letter_table, parse_class, read_letter, redrive,
    select,
};
use crate::ops::range::Window;
use crate::ops::record::RecordQuery;
use crate::ops::scan::Flow;
use crate::outcomes::now_ms;
use crate::position::Position;

/// Rows `list` shows when `--limit` is not given.
const DEFAULT_ROWS: usize = 500;

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List dead letters (newest last). --json: JSON lines, one dead letter per line.
    List(ListArgs),
    /// Show one dead letter whole, its original payload decoded. --json: one JSON document.
    Show(ShowArgs),
    /// Publish dead letters' original records again to their source topics. --json: one JSON
    /// document (the report).
    Redrive(RedriveArgs),
}

/// Which dead letters, by their content.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// Only dead letters written at or after this time: RFC 3339 (2026-11-22T10:00:00Z), a date
    /// (2026-11-22), `now`, or a duration ago (90m, 2h, 3d).
    #[arg(long, value_parser = time_arg)]
    pub since: Option<i64>,
    /// Only dead letters written at or before this time (same forms as --since).
    #[arg(long, value_parser = time_arg)]
    pub until: Option<i64>,
    /// Only these error codes (repeat or separate with commas), e.g. INVALID_OPTION.
    #[arg(long, value_delimiter = ',')]
    pub reason: Vec<String>,
    /// Only these error classes (repeat or separate with commas): data, config, auth,
    /// retries-exhausted, internal.
    #[arg(long, value_delimiter = ',', value_parser = parse_class)]
    pub class: Vec<ErrorClass>,
    /// Only dead letters of records read from this topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Only dead letters about this record: a label (email:ada@acme.io, domain:acme.io, id:ct_1),
    /// a bare email, domain or upstream id, or an event id.
    #[arg(long)]
    pub record: Option<String>,
    /// Dead letters of every team on the topic, not only the configuration's team's.
    #[arg(long)]
    pub all_teams: bool,
}

impl Selection {
    fn filter(&self) -> LetterFilter {
        LetterFilter {
            reasons: self.reason.clone(),
            classes: self.class.clone(),
            topic: self.topic.clone(),
            record: self.record.as_deref().map(RecordQuery::parse),
            team: None,
        }
    }

    /// The filter, kept to `team` unless every team was asked for.
    fn filter_for(&self, team: &str) -> LetterFilter {
        LetterFilter {
            team: (!self.all_teams).then(|| team.to_string()),
            ..self.filter()
        }
    }

    fn is_empty(&self) -> bool {
        self.since.is_none() && self.until.is_none() && self.filter().is_empty()
    }
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The configuration file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// The team, for a service file of several (a one-file configuration names its own).
    #[arg(long)]
    pub team: Option<String>,
    #[command(flatten)]
    pub selection: Selection,
    /// Show at most N dead letters, the newest (a table shows at most 500 unless told).
    #[arg(long)]
    pub limit: Option<usize>,
    /// JSON lines, one dead letter per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The configuration file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// The team, for a service file of several (a one-file configuration names its own).
    #[arg(long)]
    pub team: Option<String>,
    /// The dead letter, as `dlq list` names it: topic/partition/offset.
    #[arg(value_parser = crate::ops::dlq::parse_id)]
    pub id: Position,
    /// One JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RedriveArgs {
    /// The configuration file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// The team, for a service file of several (a one-file configuration names its own).
    #[arg(long)]
    pub team: Option<String>,
    /// Dead letters to redrive, as `dlq list` names them; without ids, every dead letter the
    /// filters select.
    #[arg(value_parser = crate::ops::dlq::parse_id)]
    pub ids: Vec<Position>,
    #[command(flatten)]
    pub selection: Selection,
    /// Redrive every dead letter on the topic (required when no id and no filter is given).
    #[arg(long)]
    pub all: bool,
    /// List what would be redriven and publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON document: the report and the dead letters selected.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: DlqCommand) -> anyhow::Result<ExitCode> {
    match command {
        DlqCommand::List(args) => list(args).await,
        DlqCommand::Show(args) => show(args).await,
        DlqCommand::Redrive(args) => redrive_letters(args).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let window = match window(args.selection.since, args.selection.until) {
        Ok(window) => window,
        Err(problem) => return Ok(super::usage(&problem)),
    };
    let ops = match open(&args.config, args.team.as_deref())? {
        Ok(ops) => ops,
        Err(code) => return Ok(code),
    };
    let reader = ops.reader(!args.json && std::io::stderr().is_terminal())?;
    let topic = ops.config.topics.dlq.clone();
    let cap = args.limit.or((!args.json).then_some(DEFAULT_ROWS));
    let filter = args.selection.filter_for(&ops.config.team.id);
    let (letters, seen) = select(&reader, &topic, window, &filter, cap).await?;
    let mut output = Output::default();
    if args.json {
        for letter in &letters {
            if output.json_line(&letter.view(false)) == Flow::Stop {
                break;
            }
        }
    } else if letters.is_empty() {
        output.text(&format!("no dead letters match on {topic}\n"));
    } else {
        output.text(&letter_table(&letters).render());
        if seen > letters.len() {
            eprintln!(
                "showing the newest {} of {seen} matching dead letters; --limit N shows more",
                letters.len()
            );
        }
    }
    output.finish()
}

async fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let ops = match open(&args.config, args.team.as_deref())? {
        Ok(ops) => ops,
        Err(code) => return Ok(code),
    };
    let reader = ops.reader(false)?;
    let letter = match read_letter(&reader, &args.id).await {
        Ok(letter) => letter,
        Err(problem) => {
            eprintln!("error: {problem}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut output = Output::default();
    if args.json {
        let document = serde_json::to_string_pretty(&letter.view(true))?;
        output.text(&format!("{document}\n"));
    } else {
        output.text(&describe(&letter));
    }
    output.finish()
}

async fn redrive_letters(args: RedriveArgs) -> anyhow::Result<ExitCode> {
    let window = match window(args.selection.since, args.selection.until) {
        Ok(window) => window,
        Err(problem) => return Ok(super::usage(&problem)),
    };
    if args.ids.is_empty() && args.selection.is_empty() && !args.all {
        return Ok(super::usage(
            "name the dead letters to redrive (ids as `hubsync dlq list` prints them) or select them with filters (--reason, --class, --topic, --record, --since, --until); --all redrives every one",
        ));
    }
    let ops = match open(&args.config, args.team.as_deref())? {
        Ok(ops) => ops,
        Err(code) => return Ok(code),
    };
    let reader = ops.reader(!args.json && std::io::stderr().is_terminal())?;
    let filter = args.selection.filter_for(&ops.config.team.id);
    let letters = if args.ids.is_empty() {
        select(&reader, &ops.config.topics.dlq, window, &filter, None)
            .await?
            .0
    } else {
        let mut letters = Vec::new();
        for id in &args.ids {
            match read_letter(&reader, id).await {
                Ok(letter) => letters.push(letter),
                Err(problem) => {
                    eprintln!("error: {problem}; nothing was redriven");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        letters
            .into_iter()
            .filter(|l| filter.matches(l) && in_window(&window, l))
            .collect()
    };
    let producer = ops.producer()?;
    let report = redrive(&producer, &letters, args.dry_run, now_ms()).await;
    let mut output = Output::default();
    if args.json {
        let views: Vec<_> = letters.iter().map(|l| l.view(false)).collect();
        let document = serde_json::json!({
            "report": &report,
            "letters": views,
        });
        output.text(&format!("{}\n", serde_json::to_string_pretty(&document)?));
    } else {
        print_report(&mut output, &letters, &report);
    }
    let code = output.finish()?;
    Ok(if report.failed.is_empty() {
        code
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(output: &mut Output, letters: &[Letter], report: &RedriveReport) {
    if !letters.is_empty() {
        output.text(&letter_table(letters).render());
    }
    for failure in &report.failed {
        output.text(&format!("failed: {}: {}\n", failure.id, failure.error));
    }
    output.text(&format!("{}\n", report.summary()));
}

/// The configuration and an operator context, or the exit status of a configuration problem.
fn open(path: &std::path::Path, team: Option<&str>) -> anyhow::Result<Result<Ops, ExitCode>> {
    let (config, secrets) = match super::load_config(path, team) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(Err(code)),
    };
    Ok(Ok(Ops::new(config, secrets)?))
}

fn in_window(window: &Window, letter: &Letter) -> bool {
    window.contains(letter.dead_letter.failed_at)
}
