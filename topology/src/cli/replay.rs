//! `hubsync replay --config FILE`: source records processed again with the current rules, for a
//! backfill after a mapping change, or for parked events once the rules let them through.
//!
//! - `--topic T --since TIME [--until TIME]`: the records of T stamped in the window;
//! - `--topic T --from-offsets P:O,... [--to-offsets P:O,...]`: offset ranges (both ends
//!   included; the end of each partition when `--to-offsets` does not name it);
//! - `--parked [--topic T] [--since TIME] [--until TIME]`: the events whose latest outcome
//!   (among outcomes recorded in the window) is still `PARKED`.
//!
//! The records are copied to the replay topic for the running pipeline to process
//! ([`crate::ops::replay`]). A run is named (`--name`, or a name made from the time) and its
//! progress kept in `state.dir/replay/<run>.json`: the same command with the same `--name`
//! continues where an interrupted run stopped, with no record left out and none copied twice.
//!
//! Exit status: 0 when the run is done (or stopped at `--max-records`, or a dry run), 1 when it
//! was interrupted or Kafka or the registry failed (the run can be resumed), 2 for a bad
//! configuration or arguments.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::watch;

use super::logs::{Output, time_arg, window};
use crate::lineage::RunName;
use crate::ops::Ops;
use crate::ops::range::format_ms;
use crate::ops::replay::checkpoint::{self, Checkpoint};
use crate::ops::replay::copy::{self, CopyOptions, Tally};
use crate::ops::replay::plan::{Selection, Span, parse_offsets};
use crate::ops::replay::{self, parked};
use crate::ops::table::Table;
use crate::outcomes::now_ms;

/// How far before a killed invocation's last checkpoint its copies are looked for: the copies'
/// timestamps are the copying machine's clock, the checkpoint's too.
const KILLED_MARGIN_MS: i64 = 60_000;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  hubsync replay --config team.toml --topic crm.contact.changes --since 2026-11-01 --name mapping-v2
  hubsync replay --config team.toml --name mapping-v2            # resume mapping-v2 where it stopped
  hubsync replay --config team.toml --topic crm.company.changes --from-offsets 0:1200,1:980 --dry-run
  hubsync replay --config team.toml --parked --since 7d

The pipeline (`hubsync run`) processes the copies with the rules it runs now: outcomes of replayed
events say `sink replay:RUN` (or `process replay:RUN`) in their stage.

Output: a summary for people (a progress bar on a terminal); --json prints one JSON document at the
end: {run, selection, replay_topic, status (done | stopped_at_limit | interrupted | dry_run),
resumed, this_invocation {read, copied, distinct_keys, outside_window, already_copied,
interrupted, limited}, run_total {size,
copied, remaining, outside_window, already_copied, missing}, partitions [{topic, partition, start,
end, next}], seconds, checkpoint}.")]
pub struct ReplayArgs {
    /// The configuration file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// The team, for a service file of several (a one-file configuration names its own).
    #[arg(long)]
    pub team: Option<String>,
    /// The source topic to replay (one of [topics] contact_changes, company_changes,
    /// activity_events); with --parked, only parked events of this topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Records stamped at or after this time: RFC 3339 (2026-11-22T10:00:00Z), a date
    /// (2026-11-22; 1970-01-01 for everything), `now`, or a duration ago (90m, 2h, 3d). With
    /// --parked: outcomes recorded since then.
    #[arg(long, value_parser = time_arg)]
    pub since: Option<i64>,
    /// Records stamped at or before this time (same forms as --since).
    #[arg(long, value_parser = time_arg)]
    pub until: Option<i64>,
    /// The first offset per partition, `partition:offset,...` (only these partitions).
    #[arg(long, value_parser = parse_offsets)]
    pub from_offsets: Option<BTreeMap<i32, i64>>,
    /// The last offset per partition, included (`partition:offset,...`).
    #[arg(long, value_parser = parse_offsets)]
    pub to_offsets: Option<BTreeMap<i32, i64>>,
    /// Replay the events whose latest outcome is PARKED.
    #[arg(long)]
    pub parked: bool,
    /// The run's name (letters, digits, '.', '_', '-'): give it again to resume the run.
    #[arg(long, value_parser = RunName::parse)]
    pub name: Option<RunName>,
    /// Stop after copying this many records; the same command with --name continues.
    #[arg(long)]
    pub max_records: Option<u64>,
    /// Count what would be copied (records, distinct keys) and publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON document (see below).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let requested = match requested(&args) {
        Ok(requested) => requested,
        Err(problem) => return Ok(super::usage(&problem)),
    };
    let (config, secrets) = match super::load_config(&args.config, args.team.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    if let Some(topic) = requested.as_ref().and_then(Selection::topic)
        && !parked::source_topics(&config).contains(&topic)
    {
        return Ok(super::usage(&format!(
            "--topic {topic} is not a source topic of this configuration; replay one of {}",
            parked::source_topics(&config).join(", ")
        )));
    }
    // A service's outcomes topic carries every team's: only this team's parked events.
    let requested = requested.map(|selection| match selection {
        Selection::Parked {
            topic,
            since,
            until,
            ..
        } => Selection::Parked {
            topic,
            since,
            until,
            team: Some(config.team.id.clone()),
        },
        other => other,
    });
    let ops = Ops::new(config, secrets)?;
    let name = args.name.clone().unwrap_or_else(|| {
        RunName::generated(if args.parked { "parked" } else { "replay" }, now_ms())
    });
    let path = checkpoint::path(&ops.config.state.dir, name.as_str());
    let consumer = copy::consumer(&ops.config, &ops.secrets)?;
    let reader = ops.reader(false)?;
    let (mut checkpoint, resumed) = match checkpoint::load(&path)? {
        Some(found) => {
            if let Some(requested) = &requested
                && !found.selection.resumes(requested)
            {
                return Ok(super::usage(&format!(
                    "run {name} replays {}, not {}; give another --name for a new run",
                    found.selection.describe(),
                    requested.describe()
                )));
            }
            (found, true)
        }
        None => {
            let Some(selection) = requested else {
                return Ok(super::usage(&format!(
                    "there is no run {name} ({} does not exist): say what to replay with --topic \
                     and --since or --from-offsets, or --parked",
                    path.display()
                )));
            };
            let planned =
                replay::plan_run(&ops.config, &consumer, &reader, &name, selection).await?;
            if !args.dry_run {
                checkpoint::save(&planned, &path)?;
            }
            (planned, false)
        }
    };
    let killed = resumed && checkpoint.running;
    let already = if killed && !args.dry_run {
        if !args.json {
            eprintln!(
                "run {name} was stopped without saving its place: looking for its copies on {} \
                 made since {}",
                checkpoint.replay_topic,
                format_ms(checkpoint.updated_ms)
            );
        }
        copy::already_copied(
            &consumer,
            &reader,
            &checkpoint.replay_topic,
            name.as_str(),
            checkpoint.updated_ms - KILLED_MARGIN_MS,
        )
        .await?
    } else {
        HashSet::new()
    };
    if !args.json {
        announce(&checkpoint, &name, resumed, &args);
    }
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        if super::shutdown_signal().await.is_ok() {
            let _ = stop.send(true);
        }
    });
    let options = CopyOptions {
        dry_run: args.dry_run,
        max_records: args.max_records,
        progress: !args.json && std::io::stderr().is_terminal(),
    };
    let producer = ops.producer()?;
    let started = Instant::now();
    let tally = if checkpoint.done {
        Tally::default()
    } else {
        copy::copy(
            &consumer,
            &producer,
            &mut checkpoint,
            Some(&path),
            &already,
            &options,
            stopping,
        )
        .await
        .with_context(|| {
            format!("replay run {name} stopped; run the same command with --name {name} to resume")
        })?
    };
    let report = Report::new(&checkpoint, &tally, &args, resumed, started, &path);
    let mut output = Output::default();
    if args.json {
        output.text(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    } else {
        output.text(&report.render(&args.config));
    }
    let code = output.finish()?;
    Ok(if report.status == Status::Interrupted {
        ExitCode::FAILURE
    } else {
        code
    })
}

/// The selection the arguments ask for; `None` when they only name a run to resume.
fn requested(args: &ReplayArgs) -> Result<Option<Selection>, String> {
    if let Some(max) = args.max_records
        && max == 0
    {
        return Err("--max-records must be at least 1".into());
    }
    window(args.since, args.until)?;
    if args.parked {
        if args.from_offsets.is_some() || args.to_offsets.is_some() {
            return Err(
                "--parked takes the positions from the outcomes: leave out --from-offsets and --to-offsets"
                    .into(),
            );
        }
        return Ok(Some(Selection::Parked {
            topic: args.topic.clone(),
            since: args.since,
            until: args.until,
            // The configuration's team, once it is loaded.
            team: None,
        }));
    }
    let by_time = args.since.is_some() || args.until.is_some();
    let by_offsets = args.from_offsets.is_some() || args.to_offsets.is_some();
    let Some(topic) = args.topic.clone() else {
        if by_time || by_offsets {
            return Err("name the source topic to replay with --topic".into());
        }
        if args.name.is_some() {
            return Ok(None);
        }
        return Err(
            "say what to replay: --topic with --since or --from-offsets, or --parked (or --name \
             of a run to resume)"
                .into(),
        );
    };
    match (by_time, by_offsets) {
        (true, true) => Err("give --since/--until or --from-offsets/--to-offsets, not both".into()),
        (false, false) => Err(format!(
            "say which records of {topic} to replay: --since TIME or --from-offsets P:O,..."
        )),
        (true, false) => match args.since {
            Some(since) => Ok(Some(Selection::Time {
                topic,
                since,
                until: args.until,
            })),
            None => Err("--until needs --since (1970-01-01 for everything before it)".into()),
        },
        (false, true) => {
            let Some(from) = args.from_offsets.clone() else {
                return Err("--to-offsets needs --from-offsets".into());
            };
            let to = args.to_offsets.clone().unwrap_or_default();
            for (partition, last) in &to {
                match from.get(partition) {
                    None => {
                        return Err(format!(
                            "--to-offsets names partition {partition}, which --from-offsets does not"
                        ));
                    }
                    Some(first) if last < first => {
                        return Err(format!(
                            "partition {partition}: --to-offsets {last} is before --from-offsets {first}"
                        ));
                    }
                    Some(_) => {}
                }
            }
            Ok(Some(Selection::Offsets { topic, from, to }))
        }
    }
}

/// What is about to happen, for people, on stderr.
fn announce(checkpoint: &Checkpoint, name: &RunName, resumed: bool, args: &ReplayArgs) {
    let verb = if args.dry_run {
        "counting (dry run)"
    } else if resumed {
        "resuming"
    } else {
        "starting"
    };
    eprintln!(
        "{verb} replay run {name}: {}; {} of {} records left in {} partitions, copied to {}",
        checkpoint.selection.describe(),
        thousands(checkpoint.remaining()),
        thousands(checkpoint.size()),
        checkpoint.spans.iter().filter(|s| !s.is_done()).count(),
        checkpoint.replay_topic
    );
    if !args.dry_run && !checkpoint.done {
        eprintln!(
            "Ctrl-C stops it after the records in hand; the same command with --name {name} resumes it"
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Done,
    StoppedAtLimit,
    Interrupted,
    DryRun,
}

#[derive(Debug, Serialize)]
struct RunTotal {
    size: u64,
    copied: u64,
    remaining: u64,
    outside_window: u64,
    already_copied: u64,
    missing: u64,
}

/// The end of an invocation, for people and scripts.
#[derive(Debug, Serialize)]
struct Report<'a> {
    run: &'a str,
    selection: &'a Selection,
    replay_topic: &'a str,
    status: Status,
    resumed: bool,
    this_invocation: &'a Tally,
    run_total: RunTotal,
    partitions: &'a [Span],
    seconds: f64,
    checkpoint: Option<String>,
}

impl<'a> Report<'a> {
    fn new(
        checkpoint: &'a Checkpoint,
        tally: &'a Tally,
        args: &ReplayArgs,
        resumed: bool,
        started: Instant,
        path: &Path,
    ) -> Self {
        let status = if args.dry_run {
            Status::DryRun
        } else if checkpoint.done {
            Status::Done
        } else if tally.interrupted {
            Status::Interrupted
        } else {
            Status::StoppedAtLimit
        };
        Report {
            run: &checkpoint.run,
            selection: &checkpoint.selection,
            replay_topic: &checkpoint.replay_topic,
            status,
            resumed,
            this_invocation: tally,
            run_total: RunTotal {
                size: checkpoint.size(),
                copied: checkpoint.copied,
                remaining: checkpoint.remaining(),
                outside_window: checkpoint.outside_window,
                already_copied: checkpoint.already_copied,
                missing: checkpoint.missing,
            },
            partitions: &checkpoint.spans,
            seconds: started.elapsed().as_secs_f64(),
            checkpoint: (!args.dry_run).then(|| path.display().to_string()),
        }
    }

    fn render(&self, config: &Path) -> String {
        let mut text = String::new();
        let this = self.this_invocation;
        let rate = if self.seconds > 0.0 {
            this.copied as f64 / self.seconds
        } else {
            0.0
        };
        let verb = if self.status == Status::DryRun {
            "would copy"
        } else {
            "copied"
        };
        text.push_str(&format!(
            "run {}: {}\n{verb} {} records ({} distinct keys) to {} in {:.1} s ({} records/s)\n",
            self.run,
            self.selection.describe(),
            thousands(this.copied),
            thousands(this.distinct_keys),
            self.replay_topic,
            self.seconds,
            thousands(rate as u64),
        ));
        if this.outside_window > 0 {
            text.push_str(&format!(
                "{} records read were stamped outside the window and left out\n",
                thousands(this.outside_window)
            ));
        }
        if this.already_copied > 0 {
            text.push_str(&format!(
                "{} records were on {} already (copied before the run was stopped) and were not copied again\n",
                thousands(this.already_copied),
                self.replay_topic
            ));
        }
        if self.run_total.missing > 0 {
            text.push_str(&format!(
                "{} parked events' records are no longer on their topic (retention) and cannot be replayed\n",
                thousands(self.run_total.missing)
            ));
        }
        if self.partitions.len() > 1 || self.status != Status::Done {
            let mut table = Table::new(&["TOPIC", "PARTITION", "FROM", "TO", "NEXT", "LEFT"]);
            for span in self.partitions {
                table.row(vec![
                    span.topic.clone(),
                    span.partition.to_string(),
                    span.start.to_string(),
                    (span.end - 1).to_string(),
                    span.next.to_string(),
                    thousands(span.remaining()),
                ]);
            }
            if !table.is_empty() {
                text.push_str(&table.render());
            }
        }
        let resume = format!(
            "hubsync replay --config {} --name {}",
            config.display(),
            self.run
        );
        text.push_str(&match self.status {
            Status::Done => format!(
                "run {} is done: {} records copied in all; the pipeline applies the current rules to them (outcomes: stage \"sink replay:{}\")\n",
                self.run,
                thousands(self.run_total.copied),
                self.run
            ),
            Status::StoppedAtLimit => format!(
                "stopped at --max-records: {} records left; continue with: {resume}\n",
                thousands(self.run_total.remaining)
            ),
            Status::Interrupted => format!(
                "interrupted: {} records left; continue with: {resume}\n",
                thousands(self.run_total.remaining)
            ),
            Status::DryRun => "dry run: nothing was published\n".to_string(),
        });
        text
    }
}

/// `1234567` -> `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReplayArgs,
    }

    fn parse(line: &str) -> Result<Option<Selection>, String> {
        let words = std::iter::once("replay")
            .chain(["--config", "team.toml"])
            .chain(line.split_whitespace());
        let cli = Cli::try_parse_from(words).map_err(|e| e.to_string())?;
        requested(&cli.args)
    }

    #[test]
    fn a_selection_is_one_of_time_offsets_or_parked() {
        let time = parse("--topic t --since 2026-11-01 --until 2026-11-02").expect("valid");
        assert!(matches!(time, Some(Selection::Time { until: Some(_), .. })));
        let offsets = parse("--topic t --from-offsets 0:5,1:7 --to-offsets 0:9").expect("valid");
        assert_eq!(
            offsets,
            Some(Selection::Offsets {
                topic: "t".into(),
                from: BTreeMap::from([(0, 5), (1, 7)]),
                to: BTreeMap::from([(0, 9)]),
            })
        );
        assert!(matches!(
            parse("--parked --since 7d").expect("valid"),
            Some(Selection::Parked {
                topic: None,
                since: Some(_),
                ..
            })
        ));
        assert_eq!(parse("--name mapping-v2").expect("a resume"), None);
    }

    #[test]
    fn contradictions_are_refused_with_what_to_do() {
        for (line, says) in [
            ("", "say what to replay"),
            ("--topic t", "--since TIME or --from-offsets"),
            ("--since 2h", "--topic"),
            ("--topic t --since 2h --from-offsets 0:1", "not both"),
            ("--topic t --until 2h", "--until needs --since"),
            ("--topic t --to-offsets 0:5", "needs --from-offsets"),
            (
                "--topic t --from-offsets 0:5 --to-offsets 1:9",
                "partition 1",
            ),
            ("--topic t --from-offsets 0:5 --to-offsets 0:4", "before"),
            ("--parked --from-offsets 0:1", "--parked"),
            ("--topic t --since 1h --until 2h", "after --until"),
            ("--topic t --since 2h --max-records 0", "at least 1"),
        ] {
            let problem = parse(line).expect_err(line);
            assert!(problem.contains(says), "{line:?}: {problem}");
        }
        let bad_name = parse("--name a/b").expect_err("a bad name");
        assert!(bad_name.contains("run name"), "{bad_name}");
    }

    #[test]
    fn a_stopped_run_says_what_is_left_and_how_to_go_on() {
        let spans = vec![
            Span {
                topic: "crm.contact.changes".into(),
                partition: 0,
                start: 0,
                end: 3_000,
                next: 2_500,
                only: Vec::new(),
            },
            Span {
                topic: "crm.contact.changes".into(),
                partition: 1,
                start: 10,
                end: 20,
                next: 20,
                only: Vec::new(),
            },
        ];
        let mut checkpoint = Checkpoint::new(
            "mapping-v2",
            Selection::Time {
                topic: "crm.contact.changes".into(),
                since: 0,
                until: None,
            },
            "hubsync.replay",
            spans,
            0,
        );
        checkpoint.copied = 2_510;
        let tally = Tally {
            read: 2_510,
            copied: 2_510,
            distinct_keys: 1_204,
            limited: true,
            ..Tally::default()
        };
        let cli = Cli::try_parse_from(["replay", "--config", "team.toml", "--name", "mapping-v2"])
            .expect("arguments");
        let report = Report::new(
            &checkpoint,
            &tally,
            &cli.args,
            true,
            Instant::now(),
            Path::new("/state/replay/mapping-v2.json"),
        );
        assert_eq!(report.status, Status::StoppedAtLimit);
        let text = report.render(Path::new("team.toml"));
        assert!(
            text.starts_with(
                "run mapping-v2: crm.contact.changes since 1970-01-01T00:00:00.000Z\n\
                 copied 2,510 records (1,204 distinct keys) to hubsync.replay"
            ),
            "{text}"
        );
        assert!(
            text.contains("crm.contact.changes  0          0     2999  2500  500"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "stopped at --max-records: 500 records left; continue with: hubsync replay \
                 --config team.toml --name mapping-v2\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn counts_read_in_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
