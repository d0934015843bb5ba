//! hubsync's throughput figures, measured against the in-process sandbox, printed as one table.
//!
//! ```text
//! make bench                     # = cargo bench --locked -p hubsync-dev --bench throughput
//! make bench BENCH_ARGS=--quick  # reduced sizes, a smoke run of about a minute
//! cargo bench -p hubsync-dev --bench throughput -- --only sink      # processors | sink | repeats | activities | replay | memory | codec | teams | logs | inbound | scale
//! cargo bench -p hubsync-dev --bench throughput -- --sink-records 100000
//! cargo bench -p hubsync-dev --bench throughput -- --only replay --replay-events 1000000
//! cargo bench -p hubsync-dev --bench throughput -- --kafka fetch.wait.max.ms=100   # what-if tuning
//! ```
//!
//! 1. **Processors**: decode + map + gate of ContactChanged per core (single thread); then the
//!    process stage with Kafka on a backlog (1c), for comparison.
//! 2. **Sink at the ceiling**: written records/s against HubSpot's Professional limit of 190
//!    requests per 10 s, batch fill and the share of 429s: plain upserts (the headline), the
//!    sandbox config as printed with typical contacts (2b), and the limits lifted (2c), which
//!    shows how fast the sink itself goes.
//! 3. **Repeats**: HubSpot calls per 1,000 contact events when 30% repeat an earlier key, with
//!    the contact defaults off (the headline) and on, the sandbox config as printed, and a
//!    250 ms linger instead of the default 10 s.
//! 4. **Activities**: HubSpot calls per 1,000 activity events of a sales team's mix, created with
//!    their contact links inline.
//! 5. **Replay beside live traffic**: a history of 100,000 contact events over 10,000 contacts
//!    (10,000 over 1,000 with `--quick`) replayed while 200 new contacts a second arrive live:
//!    the replay's write calls, records and wall time, each lane's share of the budget, and the
//!    live events' latency with and without the replay.
//! 6. **Codec**: two design questions, side by side on one thread: hubsync's own Confluent
//!    decoder and registry client against `schema_registry_converter` (decode to the typed
//!    ContactChanged), and its compiled schema resolution against apache-avro's, for data written
//!    with an older schema; events/s of each and their ratio (informational).
//! 7. **Teams**: 200 teams on 200 portals (5 with `--quick`) in one service; the other teams'
//!    live latency alone and beside team 0's backlog of 100,000 new contacts (5,000), the
//!    backlog's rate against its portal's limit, 429s over every portal, and CPU per event
//!    against the same events all of one team (hubsync's threads apart from the sandbox's and
//!    the broker's); three runs of each (one with `--quick`), taking turns, judged by the median.
//! 8. **Logs**: 1,000,000 outcomes of 100 teams over a week (100,000 with `--quick`,
//!    `--logs-outcomes N`); one team's week asked by reading the topic from the week's start,
//!    from the outcomes index, and over the console's API.
//! 9. **Inbound**: 10,000 users' edits in HubSpot (1,000 with `--quick`) of a `both` field of
//!    contacts hubsync wrote, to `crm.hubspot.changes`, by webhook and by polling, side by side:
//!    changes/s, occurred-to-Kafka latency, delivered, missing, echoes and copies, and polling's
//!    HubSpot calls per 1,000 changes.
//! 12. **Scale-out**: the sink's state of one portal restored from the changelog into an empty
//!     state directory, per 100,000 entries; a restarted pipeline's first write (target:
//!     within 5 s); 1, 2 and 3 sink instances draining one backlog (records/s, ratio to one);
//!     HubSpot's 429s while sinks join and leave (target 0).
//!
//! # Layout
//! - `events`: generated contacts and their events; the sandbox config's rules and catalog.
//! - `world`: broker, schema registry and HubSpot sandbox in this process, recording every
//!   HubSpot request; reading outcomes back.
//! - `processors`, `sink`, `repeats`, `activities`, `replay`, `codec`, `teams`, `logs`, `inbound`,
//!   `scale`:
//!   one figure each;
//!   `process_stage`: the process stage with Kafka, for comparison with the sink.
//! - `cpu`: CPU time and load from `/proc`, and timed passes on one thread.
//! - `report`: medians and the table.

mod activities;
mod codec;
mod cpu;
mod events;
mod held;
mod inbound;
mod logs;
mod process_stage;
mod processors;
mod repeats;
mod replay;
mod report;
mod scale;
mod sink;
mod teams;
mod world;

use std::time::{Duration, Instant};

use report::{Row, Verdict, thousands};

/// Counts what the replay memory figure's thread allocates; passes everything else through.
#[global_allocator]
static ALLOCATOR: held::Counting = held::Counting;

/// What to run, from the command line.
#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    /// Commands pre-filled for the headline sink run.
    sink_records: Option<usize>,
    /// Events in the replay figure's history, from `--replay-events N`.
    replay_events: Option<usize>,
    /// Outcomes on the topic for the logs figure, from `--logs-outcomes N`.
    logs_outcomes: Option<usize>,
    /// Extra `[kafka.properties]` for the pipelines, from `--kafka name=value`.
    kafka: Vec<(String, String)>,
    processors: bool,
    sink: bool,
    repeats: bool,
    activities: bool,
    replay: bool,
    /// The replay memory figure alone (`--only memory`); part of `replay` too.
    memory: bool,
    codec: bool,
    teams: bool,
    logs: bool,
    inbound: bool,
    scale: bool,
}

impl Options {
    fn parse() -> Options {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let only = args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1))
            .map(String::as_str);
        if let Some(only) = only
            && ![
                "processors",
                "sink",
                "repeats",
                "activities",
                "replay",
                "memory",
                "codec",
                "teams",
                "logs",
                "inbound",
                "scale",
            ]
            .contains(&only)
        {
            eprintln!(
                "--only takes processors, sink, repeats, activities, replay, memory, codec, teams, logs, \
                 inbound or scale, not {only:?}"
            );
            std::process::exit(2);
        }
        let wanted = |name: &str| only.is_none_or(|o| o == name);
        let values = |flag: &str| -> Vec<String> {
            args.windows(2)
                .filter(|pair| pair[0] == flag)
                .map(|pair| pair[1].clone())
                .collect()
        };
        let kafka = values("--kafka")
            .into_iter()
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => {
                    eprintln!("--kafka takes name=value, not {pair:?}");
                    std::process::exit(2);
                }
            })
            .collect();
        let sink_records = values("--sink-records").first().map(|n| {
            n.parse().unwrap_or_else(|_| {
                eprintln!("--sink-records takes a number, not {n:?}");
                std::process::exit(2);
            })
        });
        let replay_events = values("--replay-events").first().map(|n| {
            n.parse().unwrap_or_else(|_| {
                eprintln!("--replay-events takes a number, not {n:?}");
                std::process::exit(2);
            })
        });
        let logs_outcomes = values("--logs-outcomes").first().map(|n| {
            n.parse().unwrap_or_else(|_| {
                eprintln!("--logs-outcomes takes a number, not {n:?}");
                std::process::exit(2);
            })
        });
        Options {
            sink_records,
            replay_events,
            logs_outcomes,
            kafka,
            // `cargo bench` passes `--bench`; anything else unknown is ignored too.
            quick: args.iter().any(|a| a == "--quick"),
            processors: wanted("processors"),
            sink: wanted("sink"),
            repeats: wanted("repeats"),
            activities: wanted("activities"),
            replay: wanted("replay"),
            memory: wanted("replay") || wanted("memory"),
            codec: wanted("codec"),
            teams: wanted("teams"),
            logs: wanted("logs"),
            inbound: wanted("inbound"),
            scale: wanted("scale"),
        }
    }
}

fn main() {
    let options = Options::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUBSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let began = Instant::now();
    let mut rows = Vec::new();

    if options.processors {
        let params = processors::Params {
            events: if options.quick { 20_000 } else { 200_000 },
            runs: if options.quick { 3 } else { 5 },
        };
        eprintln!(
            "[1] processors: {} events, {} runs each ...",
            params.events, params.runs
        );
        let figures = runtime.block_on(processors::measure(params));
        print_processors(&figures);
        rows.extend(processor_rows(&figures));

        let params = process_stage::Params {
            events: if options.quick { 6_000 } else { 60_000 },
            kafka: options.kafka.clone(),
        };
        eprintln!(
            "[1] process stage with Kafka: {} events pre-filled ...",
            params.events
        );
        let figures = runtime.block_on(process_stage::measure(params));
        print_process_stage(&figures);
        rows.push(Row::info(
            "1c  process stage with Kafka (backlog -> commands), events/s",
            format!(
                "{} ({:.0} us CPU per event, whole process)",
                thousands(figures.per_second()),
                figures.usage.micros_per(figures.commands)
            ),
        ));
    }

    if options.sink {
        let scale = if options.quick { 10 } else { 1 };
        let runs = [
            (
                "plain upserts, defaults off",
                sink::Params {
                    records: options.sink_records.unwrap_or(60_000 / scale),
                    shape: events::Shape::PLAIN,
                    contact_defaults: false,
                    kafka: options.kafka.clone(),
                    unlimited: false,
                },
            ),
            (
                "sandbox config as printed, typical contacts",
                sink::Params {
                    records: 24_000 / scale,
                    shape: events::Shape::TYPICAL,
                    contact_defaults: true,
                    kafka: options.kafka.clone(),
                    unlimited: false,
                },
            ),
            (
                "plain upserts, HubSpot limits lifted",
                sink::Params {
                    records: 30_000 / scale,
                    shape: events::Shape::PLAIN,
                    contact_defaults: false,
                    kafka: options.kafka.clone(),
                    unlimited: true,
                },
            ),
        ];
        for (index, (label, params)) in runs.into_iter().enumerate() {
            eprintln!("[2] sink ({label}): {} commands ...", params.records);
            let figures = runtime.block_on(sink::measure(params));
            print_sink(label, &figures);
            rows.extend(sink_rows(label, index, &figures));
        }
    }

    if options.repeats {
        let events = if options.quick { 2_000 } else { 10_000 };
        let span = Duration::from_millis(if options.quick { 2_000 } else { 8_000 });
        let short = Some(Duration::from_millis(250));
        let runs = [
            (
                "defaults off, plain contacts",
                events::Shape::PLAIN,
                false,
                None,
            ),
            (
                "defaults on, plain contacts",
                events::Shape::PLAIN,
                true,
                None,
            ),
            (
                "sandbox config as printed, typical contacts",
                events::Shape::TYPICAL,
                true,
                None,
            ),
            (
                "defaults off, plain contacts, linger 250 ms",
                events::Shape::PLAIN,
                false,
                short,
            ),
        ];
        for (index, (label, shape, contact_defaults, linger)) in runs.into_iter().enumerate() {
            eprintln!("[3] repeats ({label}): {events} events ...");
            let params = repeats::Params {
                events,
                repeat_share: 0.3,
                span,
                shape,
                contact_defaults,
                kafka: options.kafka.clone(),
                linger,
            };
            let figures = runtime.block_on(repeats::measure(params));
            print_repeats(label, &figures);
            rows.extend(repeat_rows(label, index == 0, &figures));
        }
    }

    if options.activities {
        let params = activities::Params {
            contacts: if options.quick { 300 } else { 2_000 },
            activities: if options.quick { 1_000 } else { 10_000 },
            span: Duration::from_secs(if options.quick { 2 } else { 10 }),
            kafka: options.kafka.clone(),
        };
        eprintln!(
            "[4] activities: {} contacts, then {} activities ...",
            params.contacts, params.activities
        );
        let figures = runtime.block_on(activities::measure(params));
        print_activities(&figures);
        rows.push(Row::new(
            "4 HubSpot calls per 1,000 activities (inline associations)",
            format!(
                "{:.2} ({} calls)",
                figures.calls_per_1000(),
                figures.calls.len()
            ),
            "<= 11",
            Verdict::at_most(figures.calls_per_1000(), 11.0),
        ));
    }

    if options.replay {
        let params = replay::Params {
            events: options
                .replay_events
                .unwrap_or(if options.quick { 10_000 } else { 100_000 }),
            live_rate: 200,
            live_alone: Duration::from_secs(if options.quick { 10 } else { 20 }),
            live_with_replay: Duration::from_secs(if options.quick { 30 } else { 45 }),
            linger: Duration::from_secs(1),
            kafka: options.kafka.clone(),
        };
        eprintln!(
            "[5] replay of {} events beside {} live events/s ...",
            params.events, params.live_rate
        );
        let figures = runtime.block_on(replay::measure(params));
        print_replay(&figures);
        if let Some(peak) = peak_resident() {
            println!(
                "peak resident memory of the bench process so far (broker, sandbox and pipeline \
                 together): {:.2} GB",
                peak as f64 / 1e9
            );
            println!();
        }
        rows.extend(replay_rows(&figures));
    }

    if options.memory {
        let memory = held::Params {
            events: options
                .replay_events
                .unwrap_or(if options.quick { 10_000 } else { 100_000 }),
        };
        eprintln!(
            "[5] memory per held replayed command, {} events ...",
            memory.events
        );
        let held = held::measure(memory);
        print_held(&held);
        rows.push(held_row(&held));
    }

    if options.codec {
        let params = codec::Params {
            events: if options.quick { 20_000 } else { 200_000 },
            runs: 5,
        };
        eprintln!(
            "[6] codec: {} events, {} runs of each side ...",
            params.events, params.runs
        );
        let figures = runtime.block_on(codec::measure(params));
        print_codec(&figures);
        rows.extend(codec_rows(&figures));
    }

    if options.teams {
        let params = teams::Params {
            teams: if options.quick { 5 } else { 200 },
            backlog: if options.quick { 5_000 } else { 100_000 },
            live_rate: 100,
            live_alone: Duration::from_secs(if options.quick { 10 } else { 20 }),
            live_beside: Duration::from_secs(if options.quick { 10 } else { 60 }),
            linger: Duration::from_secs(1),
            kafka: world::with_fetch_wait(options.kafka.clone(), teams::FETCH_WAIT_MS),
        };
        eprintln!(
            "[7] {} teams, team 0's backlog of {} beside {} live events/s ...",
            params.teams, params.backlog, params.live_rate
        );
        let one = teams::Params {
            teams: 1,
            ..params.clone()
        };
        // A run's CPU time moves by a third from one run to the next on this machine: the two
        // halves take turns, and the verdicts go by the median pair.
        let runs = if options.quick { 1 } else { TEAMS_RUNS };
        let mut pairs = Vec::with_capacity(runs);
        for run in 1..=runs {
            eprintln!("[7] run {run} of {runs}: {} teams ...", params.teams);
            let many = runtime.block_on(teams::measure(params.clone()));
            eprintln!("[7] run {run} of {runs}: the same events all of one team ...");
            let alone = runtime.block_on(teams::measure(one.clone()));
            pairs.push((many, alone));
        }
        print_teams(&pairs);
        rows.extend(teams_rows(&pairs));
    }

    if options.logs {
        let params = logs::Params {
            outcomes: options.logs_outcomes.unwrap_or(if options.quick {
                100_000
            } else {
                1_000_000
            }),
            teams: 100,
            runs: 3,
        };
        eprintln!(
            "[8] logs: {} outcomes of {} teams over a week, one team's asked ...",
            params.outcomes, params.teams
        );
        let figures = runtime.block_on(logs::measure(params));
        print_logs(&figures);
        rows.extend(logs_rows(&figures));
    }

    if options.inbound {
        let scale = if options.quick { 10 } else { 1 };
        let mut figures = Vec::new();
        for way in [inbound::Way::Webhook, inbound::Way::Poll] {
            let params = inbound::Params {
                way,
                // Fewer contacts with --quick, but not 10x fewer: a contact edited again every
                // few milliseconds is a burst no user makes (see the README on ordering).
                contacts: if options.quick { 500 } else { 1_000 },
                edits: 10_000 / scale,
                poll_interval: Duration::from_secs(1),
                // The sandbox's search index lags 5 s behind writes.
                search_lag: Duration::from_millis(5_500),
                timeout: Duration::from_secs(120),
                kafka: options.kafka.clone(),
            };
            eprintln!(
                "[9] inbound by {}: {} contacts written, then {} users' edits ...",
                way.label(),
                params.contacts,
                params.edits
            );
            figures.push(runtime.block_on(inbound::measure(params)));
        }
        print_inbound(&figures);
        rows.extend(inbound_rows(&figures));
    }

    if options.scale {
        eprintln!("[12] scale-out: restoring a portal's state; restarts' first writes ...");
        let figures = runtime.block_on(scale::measure(options.quick));
        rows.extend(scale_rows(&figures));
    }

    println!();
    println!(
        "## hubsync throughput ({}; {} s in all, after the build)",
        if options.quick {
            "quick run: reduced sizes"
        } else {
            "full run"
        },
        began.elapsed().as_secs()
    );
    println!();
    print!("{}", report::table(&rows));
    println!();
    println!("command: make bench   (= cargo bench --locked -p hubsync-dev --bench throughput)");
    let failed = rows.iter().any(|r| r.verdict == Verdict::Fail);
    if failed {
        println!("some figures miss their target: see the details above the table");
    }
}

fn print_inbound(all: &[inbound::Figures]) {
    println!("### 9. inbound: users' edits in HubSpot to crm.hubspot.changes");
    for f in all {
        let p = &f.params;
        let how = match p.way {
            inbound::Way::Webhook => format!(
                "the sandbox's signed webhooks, every subscription type, {:.0}% of events sent \
                 twice; polling off",
                100.0 * 0.05
            ),
            inbound::Way::Poll => format!(
                "polling every {} ms, search_lag {} ms (the sandbox's index lags 5,000 ms), \
                 page_size 100; no webhooks",
                p.poll_interval.as_millis(),
                p.search_lag.as_millis()
            ),
        };
        println!("{}: {how}", p.way.label());
        println!(
            "  hubsync wrote {} contacts; {} of HubSpot's events about its writes came in \
             ({} before the edits); users then made {} job title edits (`both`) in {:.1} s ({} \
             edits/s offered)",
            thousands(p.contacts as f64),
            thousands(f.own_kinds.values().sum::<usize>() as f64),
            thousands(f.own_events as f64),
            thousands(p.edits as f64),
            f.edits_took.as_secs_f64(),
            thousands(p.edits as f64 / f.edits_took.as_secs_f64().max(0.001))
        );
        println!(
            "  every event on hubsync.hubspot.webhooks that is no user's edit (hubsync's writes, \
             copies included): {:?}",
            f.own_kinds
        );
        println!(
            "  delivered {} of {} edits ({} missing: {} of them reached hubsync after a newer \
             edit of the same contact, dropped as stale; {} superseded by a later edit of the \
             contact that went up; {} edits in all reached hubsync out of order; {} went up \
             under two event ids); {} changes carry the upstream id; the newest edit of {} of \
             {} contacts went up",
            thousands(f.delivered as f64),
            thousands(f.expected() as f64),
            f.missing(),
            f.missing_out_of_order,
            f.missing_superseded,
            f.out_of_order,
            f.twice,
            thousands(f.keyed as f64),
            thousands(f.converged as f64),
            thousands(p.contacts as f64)
        );
        println!(
            "  {:.1} s from the first edit to the last change on Kafka: {} changes/s; occurred_at \
             to Kafka timestamp p50 {} ms, p99 {} ms, max {} ms",
            f.wall.as_secs_f64(),
            thousands(f.per_second()),
            f.latency.p50,
            f.latency.p99,
            f.latency.max
        );
        println!(
            "  records on crm.hubspot.changes {} ({} distinct event ids, {} copies); echoes and \
             other changes no user made: {} {:?}",
            thousands(f.records as f64),
            thousands(f.distinct as f64),
            f.duplicates(),
            f.echo_count(),
            f.echoes
        );
        println!(
            "  HubSpot calls from the first edit to the last change: {:?}",
            f.calls
        );
        if p.way == inbound::Way::Poll {
            println!(
                "  per 1,000 changes: {:.2} searches ({}), {:.2} batch reads ({})",
                f.searches_per_1000(),
                f.searches(),
                f.reads_per_1000(),
                f.reads()
            );
        } else {
            println!(
                "  webhook requests over the run: {} attempts, {} not answered 2xx",
                f.webhook_attempts, f.webhook_retried
            );
        }
    }
    println!();
}

fn inbound_rows(all: &[inbound::Figures]) -> Vec<Row> {
    let mut rows = Vec::new();
    let both = |value: &dyn Fn(&inbound::Figures) -> String| {
        all.iter().map(value).collect::<Vec<_>>().join(" / ")
    };
    let ways = all
        .iter()
        .map(|f| f.params.way.label())
        .collect::<Vec<_>>()
        .join(" / ");
    rows.push(Row::info(
        format!(
            "9 inbound, {} users' edits -> crm.hubspot.changes, changes/s ({ways})",
            thousands(all.first().map_or(0, |f| f.params.edits) as f64)
        ),
        both(&|f| thousands(f.per_second())),
    ));
    rows.push(Row::info(
        format!("9   occurred_at -> Kafka timestamp p50 / p99, ms ({ways})"),
        both(&|f| format!("{} / {}", f.latency.p50, f.latency.p99)),
    ));
    for f in all {
        let way = f.params.way.label();
        rows.push(Row::new(
            format!("9   changes delivered / expected after dedupe, missing ({way})"),
            format!(
                "{} / {}, {} missing ({} reached hubsync after a newer edit of the contact: \
                 stale); newest value up for {} / {} contacts",
                thousands(f.delivered as f64),
                thousands(f.expected() as f64),
                thousands(f.missing() as f64),
                thousands(f.missing_out_of_order as f64),
                thousands(f.converged as f64),
                thousands(f.params.contacts as f64)
            ),
            "all, missing 0",
            if f.missing() == 0 && f.twice == 0 {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
        ));
        rows.push(Row::new(
            format!("9   echoes on crm.hubspot.changes ({way})"),
            format!(
                "{} (of {} events about hubsync's writes){}",
                thousands(f.echo_count() as f64),
                thousands(f.own_kinds.values().sum::<usize>() as f64),
                if f.echoes.is_empty() {
                    String::new()
                } else {
                    format!(": {:?}", f.echoes)
                }
            ),
            "0",
            if f.echo_count() == 0 {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
        ));
    }
    rows.push(Row::info(
        format!("9   copies on the topic, same event id ({ways})"),
        both(&|f| f.duplicates().to_string()),
    ));
    if let Some(f) = all.iter().find(|f| f.params.way == inbound::Way::Poll) {
        rows.push(Row::info(
            "9   polling: searches / batch reads per 1,000 changes",
            format!(
                "{:.2} / {:.2} ({} / {} calls)",
                f.searches_per_1000(),
                f.reads_per_1000(),
                f.searches(),
                f.reads()
            ),
        ));
    }
    rows
}

fn print_logs(f: &logs::Figures) {
    println!(
        "logs: {} outcomes of {} teams over a week on the outcomes topic (32 partitions); one \
         team's week ({} events in {} records) asked for its newest 500 rows and its counts, {} runs each",
        thousands(f.outcomes as f64),
        f.teams,
        thousands(f.team_events as f64),
        thousands(f.team_records as f64),
        f.topic.runs()
    );
    println!(
        "  topic read from the week's start (hubsync logs --no-index): median {:.3} s (min {:.3}, max {:.3})",
        f.topic.median(),
        f.topic.min(),
        f.topic.max()
    );
    println!(
        "  outcomes index, caught up then asked (hubsync logs):        median {:.3} s (min {:.3}, max {:.3})",
        f.index.median(),
        f.index.min(),
        f.index.max()
    );
    println!(
        "  console API over HTTP (GET /api/v1/outcomes):               median {:.3} s (min {:.3}, max {:.3})",
        f.api.median(),
        f.api.min(),
        f.api.max()
    );
    println!(
        "  building the index from nothing: {:.1} s; its size on disk: {:.0} MB",
        f.build,
        f.index_bytes as f64 / 1e6
    );
    println!();
}

fn logs_rows(f: &logs::Figures) -> Vec<Row> {
    let ratio = f.topic.median() / f.index.median().max(1e-9);
    vec![
        Row::new(
            "8a  a team's week of logs over the outcomes index, s (hubsync logs)",
            format!(
                "{:.3} (topic read: {:.2}, {:.0}x slower)",
                f.index.median(),
                f.topic.median(),
                ratio
            ),
            "< 1",
            Verdict::at_most(f.index.median(), 1.0),
        ),
        Row::new(
            "8b  the same over the console API, s",
            format!("{:.3}", f.api.median()),
            "< 1",
            Verdict::at_most(f.api.median(), 1.0),
        ),
        Row::info(
            "8c  outcomes index built from nothing, s / size",
            format!(
                "{:.1} s for {} outcomes / {:.0} MB",
                f.build,
                thousands(f.outcomes as f64),
                f.index_bytes as f64 / 1e6
            ),
        ),
    ]
}

fn print_processors(f: &processors::Figures) {
    println!("### 1. processors: decode + map + gate, one thread");
    println!(
        "{} distinct ContactChanged events (40% creations, 60% updates of 1-3 fields; half with a \
         phone, 80% with a mapped owner), {} bytes framed on average",
        thousands(f.events as f64),
        f.mean_frame_bytes
    );
    println!(
        "rules: the sandbox config (`render_sandbox_config`) plus a [users] mapping of four \
         upstream users; catalog: the sandbox portal's default properties"
    );
    println!(
        "decisions: {} write, {} skip, {} invalid; load average {:.2} -> {:.2} (2 cores)",
        f.writes, f.skips, f.invalid, f.load.0, f.load.1
    );
    println!(
        "events per second of the thread's CPU time (per core), and of wall-clock time; median \
         (min .. max) of {} runs each:",
        f.runs
    );
    for (label, rates) in [
        ("decode_cached + decide_contact + to_command", &f.chain),
        ("decode_cached alone", &f.decode),
        ("decide_contact + to_command alone", &f.rules),
        ("chain + encoding the command", &f.chain_and_encode),
    ] {
        println!("  {label}:");
        println!("    per CPU second: {}", rates.cpu.describe());
        println!("    per wall second: {}", rates.wall.describe());
    }
    let micros = |rates: &processors::Rates| 1e6 / rates.cpu.median();
    println!(
        "  per event (CPU): decode {:.2} us + rules {:.2} us = {:.2} us (chain measured {:.2} us; \
         encoding the command adds {:.2} us)",
        micros(&f.decode),
        micros(&f.rules),
        micros(&f.decode) + micros(&f.rules),
        micros(&f.chain),
        micros(&f.chain_and_encode) - micros(&f.chain)
    );
    println!();
}

fn processor_rows(f: &processors::Figures) -> Vec<Row> {
    let chain = &f.chain.cpu;
    vec![
        Row::new(
            format!(
                "1 decode+map+gate, ContactChanged events/s/core (CPU time, median of {})",
                f.runs
            ),
            format!(
                "{} (min {}, max {})",
                thousands(chain.median()),
                thousands(chain.min()),
                thousands(chain.max())
            ),
            ">= 200,000",
            Verdict::at_least(chain.median(), 200_000.0),
        ),
        Row::info(
            "1   the same by wall-clock time",
            format!(
                "{} (min {}, max {})",
                thousands(f.chain.wall.median()),
                thousands(f.chain.wall.min()),
                thousands(f.chain.wall.max())
            ),
        ),
        Row::info(
            "1a  decode alone, events/s/core",
            thousands(f.decode.cpu.median()),
        ),
        Row::info(
            "1b  rules alone (decide_contact + to_command), events/s/core",
            thousands(f.rules.cpu.median()),
        ),
        Row::info(
            "1   chain + command encode, events/s/core",
            thousands(f.chain_and_encode.cpu.median()),
        ),
    ]
}

fn print_process_stage(f: &process_stage::Figures) {
    println!("### 1c. process stage with Kafka");
    println!(
        "{} contact events pre-filled on crm.contact.changes (3 partitions); only the process \
         stage runs; {} commands produced to hubsync.commands in {:.1} s (first to last record \
         timestamp) = {} events/s",
        thousands(f.events as f64),
        thousands(f.commands as f64),
        f.window.as_secs_f64(),
        thousands(f.per_second())
    );
    println!(
        "from the stage's start to the last command: {}",
        f.usage.describe(f.commands, "event")
    );
    println!();
}

fn print_sink(label: &str, f: &sink::Figures) {
    let limit = if f.params.unlimited {
        "no limit (sandbox and hubsync's budget lifted)"
    } else {
        "190 requests/10 s (Professional tier), system clock"
    };
    println!("### 2. sink: {label}");
    println!(
        "{} commands (one per new contact) pre-filled on hubsync.commands (3 partitions); only \
         the sink stage runs; contact defaults {}; HubSpot sandbox: {limit}",
        thousands(f.params.records as f64),
        if f.params.contact_defaults {
            "on"
        } else {
            "off"
        }
    );
    println!(
        "pre-filled: {} bytes of keys and values (lz4 on the broker; none dropped)",
        thousands(f.prefilled_bytes as f64)
    );
    if f.outcomes.count < f.params.records {
        println!(
            "INCOMPLETE: only {} of {} outcomes arrived before the time limit",
            f.outcomes.count, f.params.records
        );
    }
    println!(
        "first write -> last outcome: {:.1} s; written (created + updated): {}; outcomes: {:?}",
        f.window.as_secs_f64(),
        thousands(f.outcomes.written() as f64),
        f.outcomes.by_status
    );
    if !f.outcomes.other_reasons.is_empty() {
        println!("  other outcomes: {:?}", f.outcomes.other_reasons);
    }
    println!(
        "records/s: {} = {:.3} of 1,900; write calls: {} carrying {} inputs ({:.1} per call)",
        thousands(f.written_per_second),
        f.ceiling_share(),
        f.write_calls,
        f.write_inputs,
        f.fill()
    );
    let seconds = f.window.as_secs_f64().max(1e-3);
    println!(
        "HubSpot calls: {} recorded ({} counted by the sandbox), {} answered 429 ({:.2}%); {:.1} \
         calls per 10 s over the window; calls per 10 s from the first write: {:?}",
        f.calls.len(),
        f.sandbox_calls,
        f.rate_limited,
        100.0 * f.rate_limited_share(),
        f.calls.len() as f64 * 10.0 / seconds,
        f.calls_per_10s
    );
    println!(
        "client budget: {} sent, {} rate-limited, {} sends waited for a slot ({:.1} s in all); \
         longest gap between two writes: {} ms",
        f.client.sent,
        f.client.rate_limited,
        f.client.waits,
        f.client.waited.as_secs_f64(),
        f.longest_write_gap.as_millis()
    );
    match f.steady_share {
        Some(share) => println!(
            "sustained: records sent in the {} whole 10 s windows from the first write = {:.3} \
             of 1,900/s",
            f.whole_windows, share
        ),
        None => println!("sustained: the run is shorter than one 10 s window"),
    }
    println!(
        "from the sink's start to the last outcome: {}",
        f.usage.describe(f.outcomes.count, "record")
    );
    println!(
        "records sent per second from the first write: {:?}",
        f.records_per_second
    );
    let service: Vec<String> = f
        .write_service_ms
        .iter()
        .map(|ms| format!("{ms:.0}"))
        .collect();
    println!(
        "sandbox time to answer a write, mean ms per tenth of the run: [{}]",
        service.join(", ")
    );
    println!(
        "contacts in the sandbox afterwards: {}",
        thousands(f.contacts_in_hubspot as f64)
    );
    for line in sink::endpoint_lines(&f.calls) {
        println!("  {line}");
    }
    println!();
}

fn sink_rows(label: &str, index: usize, f: &sink::Figures) -> Vec<Row> {
    if f.params.unlimited {
        return vec![Row::info(
            format!("2c  sink, {label}: written records/s"),
            format!(
                "{} ({:.1} x the ceiling; {:.0} us CPU per record, whole process)",
                thousands(f.written_per_second),
                f.ceiling_share(),
                f.usage.micros_per(f.outcomes.count)
            ),
        )];
    }
    let tag = if index == 0 { "2" } else { "2b" };
    // Plain upserts: one call per 100 records, the ceiling itself. New contacts with defaults
    // and fill-if-empty values: a read and a create per 100, half the ceiling at best.
    let (target, floor) = if f.params.contact_defaults {
        (0.48, "; floor 2 calls per 100")
    } else {
        (0.95, "")
    };
    vec![
        Row::new(
            format!("{tag} sink written records/s / 1,900 ({label})"),
            format!(
                "{:.3} ({} rec/s over {:.1} s{floor})",
                f.ceiling_share(),
                thousands(f.written_per_second),
                f.window.as_secs_f64()
            ),
            format!(">= {target:.2}"),
            Verdict::at_least(f.ceiling_share(), target),
        ),
        Row::info(
            format!("{tag}   sustained, whole 10 s windows / 1,900 ({label})"),
            f.steady_share.map_or("n/a".to_owned(), |share| {
                format!("{share:.3} ({} windows)", f.whole_windows)
            }),
        ),
        Row::new(
            format!("{tag} average batch fill, inputs per write call ({label})"),
            format!("{:.1} ({} calls)", f.fill(), f.write_calls),
            ">= 95",
            Verdict::at_least(f.fill(), 95.0),
        ),
        Row::new(
            format!("{tag} 429s / all HubSpot calls ({label})"),
            format!(
                "{:.2}% ({} of {})",
                100.0 * f.rate_limited_share(),
                f.rate_limited,
                f.calls.len()
            ),
            "<= 1%",
            Verdict::at_most(f.rate_limited_share(), 0.01),
        ),
    ]
}

fn print_activities(f: &activities::Figures) {
    println!("### 4. calls per 1,000 activities");
    println!(
        "{} activities over {} contacts already in HubSpot, published over {:.1} s, answered in \
         {:.1} s; outcomes: {:?}",
        thousands(f.params.activities as f64),
        thousands(f.params.contacts as f64),
        f.params.span.as_secs_f64(),
        f.took.as_secs_f64(),
        f.outcomes.by_status
    );
    if !f.outcomes.other_reasons.is_empty() {
        println!("  other outcomes: {:?}", f.outcomes.other_reasons);
    }
    println!(
        "HubSpot calls: {} = {:.2} per 1,000 activities",
        f.calls.len(),
        f.calls_per_1000()
    );
    for line in sink::endpoint_lines(&f.calls) {
        println!("  {line}");
    }
    println!();
}

fn print_repeats(label: &str, f: &repeats::Figures) {
    println!("### 3. calls per 1,000 events, 30% repeats: {label}");
    println!(
        "{} events: {} contacts created, {} repeats ({} within 10-250 ms of the creation, {} \
         1-6 s after), published over {:.1} s; both stages run; sink linger {}; contact \
         defaults {}",
        thousands(f.params.events as f64),
        f.contacts,
        f.near_repeats + f.far_repeats,
        f.near_repeats,
        f.far_repeats,
        f.took.as_secs_f64(),
        humantime::format_duration(f.linger),
        if f.params.contact_defaults {
            "on"
        } else {
            "off"
        }
    );
    println!(
        "outcomes: {:?}; records sent in upserts/creates: {} (so {} events shared a write with \
         another); repeats written together with their contact's creation: {} of {}",
        f.outcomes.by_status,
        f.records_written(),
        f.params.events.saturating_sub(f.records_written()),
        f.repeats_in_creation(),
        f.near_repeats + f.far_repeats
    );
    let latency = f.latency_ms(&[0.5, 0.99, 1.0]);
    println!(
        "event to outcome: median {} ms, p99 {} ms, max {} ms",
        latency[0], latency[1], latency[2]
    );
    let apart = f.separate_repeats();
    if !apart.is_empty() {
        let mut gaps: Vec<i64> = apart.iter().map(|(gap, _)| *gap).collect();
        gaps.sort_unstable();
        let mut created_after: Vec<i64> = apart.iter().map(|(_, w)| *w).collect();
        created_after.sort_unstable();
        println!(
            "repeats written apart: {} (their gap after the creation event: min {} ms, median {} \
             ms, max {} ms; their contact was written {} to {} ms after its creation event)",
            apart.len(),
            gaps[0],
            gaps[gaps.len() / 2],
            gaps[gaps.len() - 1],
            created_after[0],
            created_after[created_after.len() - 1],
        );
    }
    if !f.outcomes.other_reasons.is_empty() {
        println!("  other outcomes: {:?}", f.outcomes.other_reasons);
    }
    println!(
        "HubSpot calls: {} = {:.2} per 1,000 events; floor for this schedule (every repeat \
         inside the linger coalesced, every write full): {:.2} per 1,000",
        f.calls.len(),
        f.calls_per_1000(),
        f.floor_per_1000()
    );
    for line in sink::endpoint_lines(&f.calls) {
        println!("  {line}");
    }
    println!();
}

/// The first run is the figure with a target (default linger, plain upserts); the others show
/// what contact defaults, the printed sandbox config and a short linger cost.
fn repeat_rows(label: &str, headline: bool, f: &repeats::Figures) -> Vec<Row> {
    let name = format!(
        "{} HubSpot calls per 1,000 events, 30% repeats ({label})",
        if headline { "3" } else { "3b" }
    );
    let value = format!(
        "{:.2} ({} calls; floor {:.2})",
        f.calls_per_1000(),
        f.calls.len(),
        f.floor_per_1000()
    );
    if headline {
        vec![Row::new(
            name,
            value,
            "<= 7",
            Verdict::at_most(f.calls_per_1000(), 7.0),
        )]
    } else if f.params.contact_defaults && f.params.shape == events::Shape::TYPICAL {
        // The configuration the sandbox prints: a read and a create per 100 new contacts.
        vec![Row::new(
            name,
            value,
            "<= 14",
            Verdict::at_most(f.calls_per_1000(), 14.0),
        )]
    } else {
        vec![Row::info(name, value)]
    }
}

/// The process's peak resident memory in bytes (`VmHWM`), on Linux.
fn peak_resident() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn print_replay(f: &replay::Figures) {
    println!("### 5. replay beside live traffic");
    println!(
        "history: {} contact events over {} contacts in random order on crm.contact.changes ({} \
         partitions), never seen live; live: {} new contacts/s; both stages run; HubSpot \
         Professional (190 requests/10 s); sink linger {} ms (replayed records wait at least \
         {} s, and until no replayed command came for {} s); backfill_share 0.3",
        thousands(f.params.events as f64),
        thousands(f.contacts as f64),
        replay::partitions(f.params.events),
        f.params.live_rate,
        f.params.linger.as_millis(),
        hubsync::sink::stage::REPLAY_MIN_LINGER.as_secs(),
        hubsync::sink::stage::REPLAY_QUIET.as_secs()
    );
    println!(
        "copy to hubsync.replay: {} records ({} distinct keys) in {:.1} s",
        thousands(f.copy.copied as f64),
        thousands(f.copy.distinct_keys as f64),
        f.copy_took.as_secs_f64()
    );
    println!(
        "replay: wall time {:.1} s from its start to its last outcome; outcomes: {}; contacts \
         of the history in HubSpot: {}",
        f.replay_wall.as_secs_f64(),
        replay::statuses(&f.replay_outcomes),
        thousands(f.replay_records as f64)
    );
    println!(
        "HubSpot calls while it ran: replay lane {} ({:.1} per 1,000 replayed events; floor {}), \
         live lane {}; write calls {} carrying {} inputs ({:.1} per call); 429s {}",
        f.replay_calls,
        f.replay_calls_per_1000(),
        f.floor_calls(),
        f.live_calls,
        f.write_calls,
        f.write_inputs,
        f.write_inputs as f64 / f.write_calls.max(1) as f64,
        f.rate_limited
    );
    println!(
        "share of the 10 s budget over {:.1} s: replay {:.3}, live {:.3}; waited for the budget: \
         replay {:.1} s, live {:.1} s in all",
        f.budget_window.as_secs_f64(),
        f.share(f.replay_calls),
        f.share(f.live_calls),
        f.replay_waited.as_secs_f64(),
        f.live_waited.as_secs_f64()
    );
    for (label, latency) in [
        ("live alone", &f.alone),
        ("live beside the replay", &f.beside_replay),
    ] {
        println!(
            "{label}: {} events, event to outcome p50 {} ms, p99 {} ms, max {} ms",
            latency.events, latency.p50, latency.p99, latency.max
        );
    }
    println!(
        "live p99 latency per 5 s, ms: alone {:?}; from the replay's start {:?}",
        f.alone_by_5s, f.beside_by_5s
    );
    println!(
        "write calls per 5 s from the replay's start, and the longest answer in ms: {:?}",
        f.writes_by_5s
    );
    println!();
}

fn print_held(f: &held::Figures) {
    println!("### 5. memory per held replayed command");
    println!(
        "{} commands from {} events over {} records held in one replay coalescer, counted by the \
         allocator on the measuring thread: {:.0} bytes each as malloc spends them ({:.0} \
         requested); the same commands kept whole with their messages: {:.0} ({:.0} requested); \
         {:.1} s",
        thousands(f.commands as f64),
        thousands(f.params.events as f64),
        thousands(f.records as f64),
        f.receipt.0,
        f.receipt.1,
        f.whole.0,
        f.whole.1,
        f.took.as_secs_f64()
    );
    println!();
}

fn held_row(f: &held::Figures) -> Row {
    Row::new(
        "5 sink memory per held replayed command, bytes (allocator count)",
        format!(
            "{:.0} ({:.0} requested; whole command and message {:.0}, {:.1}x less)",
            f.receipt.0,
            f.receipt.1,
            f.whole.0,
            f.whole.0 / f.receipt.0.max(1.0)
        ),
        "<= 300",
        Verdict::at_most(f.receipt.0, 300.0),
    )
}

fn replay_rows(f: &replay::Figures) -> Vec<Row> {
    vec![
        Row::new(
            "5 replay HubSpot calls per 1,000 events, 10 events per contact",
            format!(
                "{:.2} ({} calls for {} events over {} contacts; floor {})",
                f.replay_calls_per_1000(),
                f.replay_calls,
                thousands(f.params.events as f64),
                thousands(f.contacts as f64),
                f.floor_calls()
            ),
            "<= 2 (floor 1)",
            Verdict::at_most(f.replay_calls_per_1000(), 2.0),
        ),
        Row::new(
            "5 replayed events written / all replayed",
            format!(
                "{} / {} ({} contacts in HubSpot)",
                thousands(
                    f.replay_outcomes
                        .iter()
                        .filter(|(s, _)| ["CREATED", "UPDATED"].contains(s))
                        .map(|(_, n)| *n as f64)
                        .sum()
                ),
                thousands(f.params.events as f64),
                thousands(f.replay_records as f64)
            ),
            "all",
            if replay::all_written(f) && f.replay_records == f.contacts {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
        ),
        Row::info(
            "5   replay wall time, share of the budget replay / live",
            format!(
                "{:.1} s, {:.3} / {:.3}",
                f.replay_wall.as_secs_f64(),
                f.share(f.replay_calls),
                f.share(f.live_calls)
            ),
        ),
        Row::new(
            "5 replay wall time / what its calls need at the share left by live",
            format!(
                "{:.2} x ({:.1} s / {:.1} s)",
                f.replay_wall.as_secs_f64() / f.calls_need().as_secs_f64().max(0.001),
                f.replay_wall.as_secs_f64(),
                f.calls_need().as_secs_f64()
            ),
            "<= 2 x",
            Verdict::at_most(
                f.replay_wall.as_secs_f64(),
                2.0 * f.calls_need().as_secs_f64(),
            ),
        ),
        Row::new(
            "5 live p99 latency beside the replay / alone",
            format!(
                "{} / {} ms (p50 {} / {} ms)",
                f.beside_replay.p99, f.alone.p99, f.beside_replay.p50, f.alone.p50
            ),
            "<= 1.5 x",
            Verdict::at_most(f.beside_replay.p99 as f64, 1.5 * f.alone.p99.max(1) as f64),
        ),
    ]
}

/// Microseconds, with their fraction.
fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Figure 7's runs, each a pair: many teams, then the same events all of one team.
type TeamsPair = (teams::Figures, teams::Figures);

/// Pairs of figure 7 runs in a full bench.
const TEAMS_RUNS: usize = 3;

/// The other teams' live p99 beside the backlog over the same without it.
fn latency_ratio((f, _): &TeamsPair) -> f64 {
    f.beside.p99 as f64 / f.alone.p99.max(1) as f64
}

/// hubsync's CPU per event with many teams over the same with one.
fn cpu_ratio((f, one): &TeamsPair) -> f64 {
    us(f.cpu.pipeline()) / us(one.cpu.pipeline()).max(0.001)
}

/// The pair whose `ratio` is the median of every pair's (of an even count, the lower middle).
fn median_pair(pairs: &[TeamsPair], ratio: fn(&TeamsPair) -> f64) -> &TeamsPair {
    let mut order: Vec<&TeamsPair> = pairs.iter().collect();
    order.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
    order[(order.len() - 1) / 2]
}

/// Every pair's `ratio`, in the order run.
fn ratios(pairs: &[TeamsPair], ratio: fn(&TeamsPair) -> f64) -> String {
    pairs
        .iter()
        .map(|pair| format!("{:.2}", ratio(pair)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_teams(pairs: &[TeamsPair]) {
    let (f, one) = median_pair(pairs, latency_ratio);
    println!("### 7. many teams: one team's backlog beside the others' live events");
    println!(
        "{} teams in one service, each on its own portal (Professional, 190 requests/10 s each) \
         with its own token; all connected and checked in {} ms; {} live events/s spread over \
         teams 1..{}; team 0's backlog of {} new contacts published at once (in batches \
         gathered for {} ms); sink linger {} ms; 16 partitions on {} development brokers; \
         fetch.wait.max.ms {}",
        f.params.teams,
        f.connected_in.as_millis(),
        f.params.live_rate,
        f.params.teams - 1,
        thousands(f.params.backlog as f64),
        teams::IMPORT_LINGER.as_millis(),
        f.params.linger.as_millis(),
        teams::BROKERS,
        teams::fetch_wait(&f.params.kafka)
    );
    for (label, latency) in [
        ("live alone", &f.alone),
        ("live beside the backlog", &f.beside),
    ] {
        println!(
            "{label}: {} events, event to outcome p50 {} ms, p99 {} ms, max {} ms",
            latency.events, latency.p50, latency.p99, latency.max
        );
    }
    println!(
        "live beside the backlog, p99 per second from its publication (ms): {:?}; the backlog \
         was on the broker {} ms after its first record was sent",
        f.beside_by_second,
        f.backlog_published.as_millis()
    );
    println!(
        "live beside the backlog, split where its command was made: event to command p50 {} ms, \
         p99 {} ms (p99 per second: {:?}); command to outcome p50 {} ms, p99 {} ms ({} of {} \
         commands found)",
        f.beside_before_sink.p50,
        f.beside_before_sink.p99,
        f.beside_before_sink_by_second,
        f.beside_in_sink.p50,
        f.beside_in_sink.p99,
        f.beside_before_sink.events,
        f.beside.events
    );
    println!(
        "backlog: {} created in {:.1} s ({:.0} records/s; its portal allows 190 calls of 100 at \
         once, then 1,900 a second); live \
         events not written: {}; 429s over every portal: {}",
        thousands(f.backlog_created as f64),
        f.backlog_wall.as_secs_f64(),
        f.backlog_rate(),
        f.live_not_written,
        f.rate_limited
    );
    println!(
        "CPU per event from the backlog's publication to its last outcome, {} teams / the same \
         events all of one team (backlog {} in {:.1} s): whole process {:.0} / {:.0} us, of which \
         the HubSpot sandbox {:.0} / {:.0} us, the development broker {:.0} / {:.0} us, and \
         hubsync with the bench's own clients {:.0} / {:.0} us",
        f.params.teams,
        thousands(one.backlog_created as f64),
        one.backlog_wall.as_secs_f64(),
        us(f.cpu.process),
        us(one.cpu.process),
        us(f.cpu.sandbox),
        us(one.cpu.sandbox),
        us(f.cpu.broker),
        us(one.cpu.broker),
        us(f.cpu.pipeline()),
        us(one.cpu.pipeline()),
    );
    println!(
        "(the run above is the median of {} by its live p99 ratio; the runs of {} teams and of \
         one team took turns)",
        pairs.len(),
        f.params.teams
    );
    for (run, pair) in pairs.iter().enumerate() {
        let (f, one) = pair;
        println!(
            "run {}: live p99 beside / alone {} / {} ms = {:.2} x; hubsync CPU per event {} \
             teams / one team {:.0} / {:.0} us = {:.2} x (whole process {:.0} / {:.0} us); per \
             live event while the live events alone were sent {:.0} / {:.0} us (whole process \
             {:.0} / {:.0} us)",
            run + 1,
            f.beside.p99,
            f.alone.p99,
            latency_ratio(pair),
            f.params.teams,
            us(f.cpu.pipeline()),
            us(one.cpu.pipeline()),
            cpu_ratio(pair),
            us(f.cpu.process),
            us(one.cpu.process),
            us(f.cpu_alone.pipeline()),
            us(one.cpu_alone.pipeline()),
            us(f.cpu_alone.process),
            us(one.cpu_alone.process),
        );
    }
    println!();
}

fn teams_rows(pairs: &[TeamsPair]) -> Vec<Row> {
    let latency_median = median_pair(pairs, latency_ratio);
    let (f, _) = latency_median;
    let cpu_median = median_pair(pairs, cpu_ratio);
    let (c, one) = cpu_median;
    // What must hold in every run, not in the median one only.
    let complete = |f: &teams::Figures| {
        f.backlog_created == f.params.backlog && f.live_not_written == 0 && f.rate_limited == 0
    };
    let incomplete: Vec<String> = pairs
        .iter()
        .enumerate()
        .filter(|(_, (f, _))| !complete(f))
        .map(|(run, (f, _))| {
            format!(
                "run {}: {} / {} written, {} live not written, {} 429s",
                run + 1,
                thousands(f.backlog_created as f64),
                thousands(f.params.backlog as f64),
                f.live_not_written,
                f.rate_limited
            )
        })
        .collect();
    vec![
        Row::new(
            "7 other teams' live p99 beside one team's backlog / alone",
            format!(
                "{} / {} ms = {:.2} x, the median of {} runs ({}) (p50 {} / {} ms; {} teams, \
                 backlog {}; {} brokers, fetch.wait.max.ms {})",
                f.beside.p99,
                f.alone.p99,
                latency_ratio(latency_median),
                pairs.len(),
                ratios(pairs, latency_ratio),
                f.beside.p50,
                f.alone.p50,
                f.params.teams,
                thousands(f.params.backlog as f64),
                teams::BROKERS,
                teams::fetch_wait(&f.params.kafka)
            ),
            "<= 1.5 x",
            Verdict::at_most(f.beside.p99 as f64, 1.5 * f.alone.p99.max(1) as f64),
        ),
        Row::new(
            "7   of the live p99 beside it: event to command / command to outcome",
            format!(
                "{} / {} ms (p50 {} / {} ms)",
                f.beside_before_sink.p99,
                f.beside_in_sink.p99,
                f.beside_before_sink.p50,
                f.beside_in_sink.p50
            ),
            "",
            Verdict::Info,
        ),
        Row::new(
            "7   backlog written, live written, 429s (every run)",
            if incomplete.is_empty() {
                format!(
                    "{} / {} at {:.0} rec/s; 0 live not written; 0 429s",
                    thousands(f.backlog_created as f64),
                    thousands(f.params.backlog as f64),
                    f.backlog_rate(),
                )
            } else {
                incomplete.join("; ")
            },
            "all, all, 0",
            if incomplete.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
        ),
        Row::new(
            "7   CPU per event, many teams / one team (hubsync)",
            format!(
                "{:.0} / {:.0} us = {:.2} x, the median of {} runs ({}) ({} teams / 1; the \
                 pipeline and the bench's clients, without the sandbox's and the broker's \
                 threads)",
                us(c.cpu.pipeline()),
                us(one.cpu.pipeline()),
                cpu_ratio(cpu_median),
                pairs.len(),
                ratios(pairs, cpu_ratio),
                c.params.teams
            ),
            "<= 1.10 x",
            Verdict::at_most(cpu_ratio(cpu_median), 1.10),
        ),
        Row::new(
            "7   CPU per event, many teams / one team (whole process)",
            format!(
                "{:.0} / {:.0} us = {:.2} x (sandbox {:.0} / {:.0} us, broker {:.0} / {:.0} us)",
                us(c.cpu.process),
                us(one.cpu.process),
                us(c.cpu.process) / us(one.cpu.process).max(0.001),
                us(c.cpu.sandbox),
                us(one.cpu.sandbox),
                us(c.cpu.broker),
                us(one.cpu.broker),
            ),
            "",
            Verdict::Info,
        ),
        Row::new(
            "7   CPU per live event, live alone: many teams / one team (hubsync)",
            format!(
                "{:.0} / {:.0} us (a write each / batches of the team's; idle work included)",
                us(c.cpu_alone.pipeline()),
                us(one.cpu_alone.pipeline()),
            ),
            "",
            Verdict::Info,
        ),
    ]
}

fn print_codec(f: &codec::Figures) {
    println!("### 6. codec: own decoder and resolution against the libraries, one thread");
    println!(
        "{} distinct ContactChanged events (the example contact, ids, email and name varied; a \
         third without an actor, a quarter without a phone), Confluent-framed: {} bytes on \
         average with the current schema (id {}), {} with the older one (id {}); both versions \
         under {} in the in-process sandbox registry",
        thousands(f.events as f64),
        f.mean_frame_bytes.0,
        f.ids.1,
        f.mean_frame_bytes.1,
        f.ids.0,
        hubsync_schemas::default_subject("crm.contact.changes")
    );
    println!("older schema: {}", f.evolution);
    println!(
        "every side warmed with one decode and checked against the events; load average {:.2} \
         -> {:.2} (2 cores)",
        f.load.0, f.load.1
    );
    println!(
        "events per second of the thread's CPU time, and of wall-clock time; median (min .. max) \
         of {} runs each, the sides alternating:",
        f.runs
    );
    for (label, rates) in [
        (
            "a. own: AvroCodec::decode_waiting::<ContactChanged>",
            &f.own_decode,
        ),
        (
            "a. schema_registry_converter: AvroDecoder::decode + apache_avro::from_value",
            &f.converter,
        ),
        (
            "a. schema_registry_converter: AvroDecoder::decode alone (to a Value)",
            &f.converter_value,
        ),
        (
            "b. own: decode_cached of older-schema frames (compiled resolution)",
            &f.own_resolve,
        ),
        (
            "b. apache-avro: GenericDatumReader(writer, reader) built once, read_value + from_value",
            &f.avro_resolve,
        ),
        (
            "b. apache-avro: from_avro_datum(writer, bytes, Some(reader)) + from_value",
            &f.avro_from_datum,
        ),
    ] {
        println!("  {label}:");
        println!("    per CPU second: {}", rates.cpu.describe());
        println!("    per wall second: {}", rates.wall.describe());
    }
    let micros = |rates: &processors::Rates| 1e6 / rates.cpu.median();
    println!(
        "  per event (CPU): own decode {:.2} us, schema_registry_converter {:.2} us ({:.2} us of \
         it to the Value); own resolution {:.2} us, apache-avro {:.2} us (from_avro_datum {:.2} \
         us)",
        micros(&f.own_decode),
        micros(&f.converter),
        micros(&f.converter_value),
        micros(&f.own_resolve),
        micros(&f.avro_resolve),
        micros(&f.avro_from_datum)
    );
    println!();
}

fn codec_rows(f: &codec::Figures) -> Vec<Row> {
    vec![
        Row::info(
            format!(
                "6a  own decoder vs schema_registry_converter, events/s (CPU, median of {})",
                f.runs
            ),
            format!(
                "{} vs {} = {:.2} x",
                thousands(f.own_decode.cpu.median()),
                thousands(f.converter.cpu.median()),
                f.decoder_ratio()
            ),
        ),
        Row::info(
            format!(
                "6b  own resolution vs apache-avro resolution, events/s (CPU, median of {})",
                f.runs
            ),
            format!(
                "{} vs {} = {:.2} x (from_avro_datum per datum: {})",
                thousands(f.own_resolve.cpu.median()),
                thousands(f.avro_resolve.cpu.median()),
                f.resolution_ratio(),
                thousands(f.avro_from_datum.cpu.median())
            ),
        ),
    ]
}

fn scale_rows(figures: &scale::Figures) -> Vec<Row> {
    let restore = report::Spread::of(figures.restore_per_100k());
    let mut rows = vec![Row::info(
        "12  restore of a portal's state from the changelog, s per 100,000 entries",
        format!(
            "{:.2} (median of {}; {} entries each)",
            restore.median(),
            restore.runs(),
            thousands(figures.entries as f64)
        ),
    )];
    for (label, runs) in &figures.first_write {
        let took = report::Spread::of(runs.iter().map(Duration::as_secs_f64).collect());
        rows.push(Row::new(
            format!("12b first write after a restart, {label}, s"),
            format!(
                "{:.1} (median of {}; min {:.1} .. max {:.1})",
                took.median(),
                took.runs(),
                took.min(),
                took.max()
            ),
            "<= 5",
            Verdict::at_most(took.median(), 5.0),
        ));
    }
    let one = figures
        .instances
        .first()
        .map(|(_, runs)| report::Spread::of(runs.clone()).median())
        .unwrap_or(0.0);
    for (count, runs) in &figures.instances {
        let rate = report::Spread::of(runs.clone());
        rows.push(Row::info(
            format!(
                "12c {count} sink instance(s) draining {} commands, records/s (ratio to one)",
                thousands(figures.backlog as f64)
            ),
            format!(
                "{} (median of {}; {:.2}x)",
                thousands(rate.median()),
                rate.runs(),
                rate.median() / one.max(f64::MIN_POSITIVE)
            ),
        ));
    }
    rows.push(Row::new(
        "12d HubSpot 429s while sinks join and leave (2 -> 3 -> 2 instances)",
        format!(
            "{} of {} calls; {} of {} contacts written",
            figures.rebalance_429s,
            thousands(figures.rebalance_calls as f64),
            thousands(figures.rebalance_written as f64),
            thousands(figures.rebalance_events as f64)
        ),
        "0",
        Verdict::at_most(figures.rebalance_429s as f64, 0.0),
    ));
    rows
}
