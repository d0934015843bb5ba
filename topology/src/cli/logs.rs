//! `hubsync logs --config FILE [filters] [--counts] [--json]`: the outcomes log, queried by time
//! range, status, reason code, record and source topic.
//!
//! Reads the outcomes topic from `--since` (every partition positioned by time) up to what it held
//! when the command started, so it always ends. Exit status: 0 (also when nothing matches), 1 when
//! the brokers or the registry cannot be used, 2 for a bad configuration or arguments.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use hubsync_schemas::{OutcomeStatus, SyncOutcome};
use tracing::debug;

use crate::ops::Ops;
use crate::ops::logs::index::{OutcomeIndex, catch_up};
use crate::ops::logs::{Counts, LoggedOutcome, Newest, OutcomeFilter, outcome_table, parse_status};
use crate::ops::range::{Window, format_ms, parse_time};
use crate::ops::record::RecordQuery;
use crate::ops::scan::{Flow, report_scan};
use crate::outcomes::{Original, now_ms};

/// Rows a table shows when `--limit` is not given.
const DEFAULT_ROWS: usize = 500;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Output: a table for people; with --counts, events counted by their latest outcome's status and
reason code instead.
--json prints JSON lines, one outcome per line (its SyncOutcome fields plus record_label,
processed_at and log {topic, partition, offset, timestamp}); with --counts one JSON document
{\"total\", \"by_status\", \"by_reason\"}.

Order: oldest first. --limit N keeps the newest N. A table shows at most 500 rows unless --limit
says otherwise; --json without --limit prints every match.

The outcomes index: the outcomes topic is kept in a local index (--index-dir) that each run
first catches up with what the topic gained since the last one, then answers from: one entry
per event (its latest outcome), found by team, time, status, reason and record without reading
the topic again. The window is on the time each outcome was recorded. --no-index reads the topic
from the range's start instead, every record as it is.")]
pub struct LogsArgs {
    /// The configuration file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// The team, for a service file of several (a one-file configuration names its own).
    #[arg(long)]
    pub team: Option<String>,
    /// Outcomes of every team on the topic, not only the configuration's team's.
    #[arg(long)]
    pub all_teams: bool,
    /// Only outcomes recorded at or after this time: RFC 3339 (2026-11-22T10:00:00Z), a date
    /// (2026-11-22), `now`, or a duration ago (90m, 2h, 3d).
    #[arg(long, value_parser = time_arg)]
    pub since: Option<i64>,
    /// Only outcomes recorded at or before this time (same forms as --since).
    #[arg(long, value_parser = time_arg)]
    pub until: Option<i64>,
    /// Only these statuses (repeat or separate with commas): created, updated, unchanged, skipped,
    /// parked, failed, dead-lettered.
    #[arg(long, value_delimiter = ',', value_parser = parse_status)]
    pub status: Vec<OutcomeStatus>,
    /// Only these reason codes (repeat or separate with commas), e.g. INVALID_OPTION.
    #[arg(long, value_delimiter = ',')]
    pub reason: Vec<String>,
    /// Only outcomes about this record: a label (email:ada@acme.io, domain:acme.io, id:ct_1), a
    /// bare email, domain (also matching emails at it) or upstream id, a HubSpot id, or an event id.
    #[arg(long)]
    pub record: Option<String>,
    /// Only outcomes of events read from this source topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Show at most N outcomes, the newest.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print counts by status and by reason code instead of the outcomes.
    #[arg(long)]
    pub counts: bool,
    /// JSON for scripts (see below).
    #[arg(long)]
    pub json: bool,
    /// Read the outcomes topic from the range's start instead of the outcomes index, and show
    /// every outcome record as it is on the topic (an event delivered twice shows twice).
    #[arg(long)]
    pub no_index: bool,
    /// Where the outcomes index is kept (default: a directory per brokers and topic under
    /// $XDG_CACHE_HOME/hubsync or ~/.cache/hubsync).
    #[arg(long)]
    pub index_dir: Option<PathBuf>,
}

/// `--since` / `--until` relative to the moment the arguments are read.
pub fn time_arg(input: &str) -> Result<i64, String> {
    parse_time(input, now_ms()).map_err(|e| e.to_string())
}

/// A window whose start is after its end is a usage mistake.
pub fn window(since: Option<i64>, until: Option<i64>) -> Result<Window, String> {
    match (since, until) {
        (Some(since), Some(until)) if since > until => Err(format!(
            "--since ({}) is after --until ({})",
            format_ms(since),
            format_ms(until)
        )),
        _ => Ok(Window { since, until }),
    }
}

pub async fn run(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let window = match window(args.since, args.until) {
        Ok(window) => window,
        Err(problem) => return Ok(super::usage(&problem)),
    };
    let (config, secrets) = match super::load_config(&args.config, args.team.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let topic = config.topics.outcomes.clone();
    let ops = Ops::new(config, secrets)?;
    let reader = ops.reader(!args.json && std::io::stderr().is_terminal())?;
    let filter = OutcomeFilter {
        statuses: args.status.clone(),
        reasons: args.reason.clone(),
        record: args.record.as_deref().map(RecordQuery::parse),
        topic: args.topic.clone(),
        team: (!args.all_teams).then(|| ops.config.team.id.clone()),
    };
    let cap = args.limit.or((!args.json).then_some(DEFAULT_ROWS));
    if !args.no_index {
        let dir = args
            .index_dir
            .clone()
            .unwrap_or_else(|| default_index_dir(&ops.config.kafka.brokers, &topic));
        match OutcomeIndex::open(&dir) {
            Ok(index) => {
                let caught = catch_up(&index, &reader, &topic).await?;
                index.flush()?;
                debug!(read = caught.read, dir = %dir.display(), "outcomes index caught up");
                if caught.undecodable > 0 {
                    eprintln!(
                        "warning: {} records on {topic} could not be decoded and were left out",
                        caught.undecodable
                    );
                }
                return answer_from_index(&index, &args, &filter, window, cap, &topic);
            }
            Err(error) => {
                eprintln!("note: {error}; reading {topic} from the range's start instead");
            }
        }
    }
    let stream = args.json && !args.counts && args.limit.is_none();
    let mut counts = EventCounts::default();
    let mut kept = Newest::new(cap);
    let mut undecodable = 0u64;
    let mut output = Output::default();
    let stats = reader
        .scan::<SyncOutcome>(&topic, window, |scanned| {
            let outcome = match scanned.record {
                Ok(outcome) => outcome,
                Err(error) => {
                    debug!(%error, offset = scanned.message.offset, "undecodable outcome record");
                    undecodable += 1;
                    return Flow::Continue;
                }
            };
            if !filter.matches(&outcome) {
                return Flow::Continue;
            }
            if args.counts {
                counts.add(&outcome, &scanned.message);
                return Flow::Continue;
            }
            let logged = LoggedOutcome::new(outcome, &scanned.message);
            if stream {
                return output.json_line(&logged);
            }
            kept.push(logged.time(), logged);
            Flow::Continue
        })
        .await?;
    if args.counts {
        print_counts(&counts.counts(), args.json, &mut output);
    } else if !stream {
        let seen = kept.seen();
        let shown = kept.into_sorted();
        if args.json {
            for logged in &shown {
                if output.json_line(logged) == Flow::Stop {
                    break;
                }
            }
        } else if shown.is_empty() {
            output.text(&format!("no outcomes match on {topic}\n"));
        } else {
            output.text(&outcome_table(&shown).render());
            if seen > shown.len() as u64 {
                eprintln!(
                    "showing the newest {} of {seen} matching outcomes; --limit N shows more",
                    shown.len()
                );
            }
        }
    }
    report_scan(&topic, &stats, undecodable);
    output.finish()
}

/// Answers from the outcomes index, caught up.
fn answer_from_index(
    index: &OutcomeIndex,
    args: &LogsArgs,
    filter: &OutcomeFilter,
    window: Window,
    cap: Option<usize>,
    topic: &str,
) -> anyhow::Result<ExitCode> {
    let mut output = Output::default();
    if args.counts {
        print_counts(&index.counts(filter, window)?, args.json, &mut output);
        return output.finish();
    }
    let page = index.query(filter, window, cap)?;
    if args.json {
        for logged in &page.outcomes {
            if output.json_line(logged) == Flow::Stop {
                break;
            }
        }
    } else if page.outcomes.is_empty() {
        output.text(&format!("no outcomes match on {topic}\n"));
    } else {
        output.text(&outcome_table(&page.outcomes).render());
        if page.matched > page.outcomes.len() as u64 {
            eprintln!(
                "showing the newest {} of {} matching events; --limit N shows more",
                page.outcomes.len(),
                page.matched
            );
        }
    }
    output.finish()
}

/// The index's directory for a cluster and topic: one per pair, under the user's cache.
pub fn default_index_dir(brokers: &str, topic: &str) -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    // FNV-1a: stable across builds, unlike the standard library's hasher.
    let hash = format!("{brokers}\n{topic}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    cache
        .join("hubsync")
        .join(format!("outcomes-{topic}-{hash:016x}"))
}

/// Events counted by their latest outcome, read from the topic: an event delivered or redriven
/// again counts once.
#[derive(Default)]
struct EventCounts {
    /// (team, event id) -> the latest outcome and its order (time, partition, offset).
    latest: HashMap<(String, String), Latest>,
}

type Latest = ((i64, i32, i64), SyncOutcome);

impl EventCounts {
    fn add(&mut self, outcome: &SyncOutcome, message: &Original) {
        let order = (outcome.processed_time, message.partition, message.offset);
        let key = (outcome.team_id.clone(), outcome.event_id.clone());
        match self.latest.get(&key) {
            Some((held, _)) if *held > order => {}
            _ => {
                self.latest.insert(key, (order, outcome.clone()));
            }
        }
    }

    fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for (_, outcome) in self.latest.values() {
            counts.add(outcome);
        }
        counts
    }
}

fn print_counts(counts: &Counts, json: bool, output: &mut Output) {
    if json {
        match serde_json::to_string(counts) {
            Ok(line) => output.text(&format!("{line}\n")),
            Err(error) => output.failed = Some(error.into()),
        }
        return;
    }
    let (by_status, by_reason) = counts.tables();
    output.text(&format!(
        "{} outcomes\n\n{}\n{}",
        counts.total,
        by_status.render(),
        by_reason.render()
    ));
}

/// Stdout for results: a closed pipe (`| head`) ends the output quietly, other write errors
/// are reported.
#[derive(Debug, Default)]
pub struct Output {
    closed: bool,
    failed: Option<anyhow::Error>,
}

impl Output {
    pub fn text(&mut self, text: &str) {
        if self.closed {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        if let Err(error) = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            self.closed = true;
            if error.kind() != std::io::ErrorKind::BrokenPipe {
                self.failed = Some(anyhow::Error::new(error).context("writing to stdout"));
            }
        }
    }

    /// One JSON line; [`Flow::Stop`] once stdout is closed.
    pub fn json_line<T: serde::Serialize>(&mut self, value: &T) -> Flow {
        match serde_json::to_string(value) {
            Ok(line) => self.text(&format!("{line}\n")),
            Err(error) => {
                self.failed = Some(error.into());
                self.closed = true;
            }
        }
        if self.closed {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    pub fn finish(self) -> anyhow::Result<ExitCode> {
        match self.failed {
            Some(error) => Err(error),
            None => Ok(ExitCode::SUCCESS),
        }
    }
}
