//! `hubsync-dev demo`: the whole pipeline on the sandbox with a generated team (or several, each
//! on its own portal, with `--teams`), and what happened.
//!
//! The broker, schema registry and HubSpot sandbox start in this process (as `hubsync-dev sandbox`
//! starts them), the pipeline runs on a configuration rendered for them, and a generated team
//! ([`generate`]) is published as fast as the broker takes it, in two waves: the team's history
//! (a backfill), then, once every event of it has its outcome, the live changes that follow
//! (so that these meet records HubSpot already holds, as live changes do). Each wave publishes
//! its contact and company changes first and its activities ([`activities`]) once those have
//! their outcomes, as an activity follows its contact in the team's time; an activity whose
//! contact never reaches HubSpot waits the configuration's short `contact_wait` and is parked.
//! The run lasts until every event has its outcome, and every deal command an activity made has
//! its own (undecodable messages have none: they are counted through their dead letters), or the
//! deadline passes. Throughout, HubSpot's webhooks bring every write hubsync makes back to the
//! pipeline's receiver, and at the end HubSpot users edit some of the contacts hubsync wrote
//! ([`two_way`]): exactly the changes of the fields mapped back must go upstream, and none of
//! hubsync's own. Then the [`Report`] says what became of everything, what it cost in HubSpot
//! calls, and how long it took, and compares HubSpot's records of every type and the changes
//! sent upstream with the prediction.

pub mod activities;
pub mod collect;
pub mod generate;
pub mod names;
pub mod summary;
pub mod two_way;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hubsync_sandbox::hubspot::DEFAULT_TOKEN;
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_sandbox::hubspot::ratelimit::Tier;
use hubsync_sandbox::server::loopback;
use hubsync_schemas::{SchemaKind, default_subject};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::info;

use crate::cli::sandbox::{Sandbox, SandboxArgs};
use collect::Collector;
use generate::{Garble, Payload, Team, TeamOptions, Upstream};
use hubsync::admin::{self, Health, StageHealth};
use hubsync::codec::{AvroCodec, RegistryClient, Writer};
use hubsync::config::{Config, Secret, SecretSource, Secrets, Topics};
use hubsync::kafka::producer_config;
use hubsync::pipeline::{Pipeline, Refusal, Stages};
pub use summary::Report;

/// A schema id the sandbox's registry never issues.
const UNKNOWN_SCHEMA_ID: u32 = 999_999;

/// How long an activity waits for its contact in the demo: short, so the activities of contacts
/// that never reach HubSpot are parked within the run.
const CONTACT_WAIT: &str = "5s";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub contacts: usize,
    pub companies: usize,
    pub seed: u64,
    pub tier: Tier,
    /// How long to wait for every outcome, from the first message published.
    pub timeout: Duration,
    /// Teams served at once, each generated from its own seed (`seed`, `seed + 1`, ...) and
    /// written to its own portal of the sandbox.
    pub teams: usize,
}

/// What a run of several teams found: a report per team, each against its own portal.
pub struct Reports {
    /// Each team's id, portal and report, in portal order.
    pub teams: Vec<(String, u64, Report)>,
}

impl Reports {
    /// Whether every team's run matched its prediction, each portal holding only its own.
    pub fn complete(&self) -> bool {
        self.teams.iter().all(|(_, _, report)| report.complete())
    }

    pub fn render(&self) -> String {
        if let [(_, _, only)] = self.teams.as_slice() {
            return only.render();
        }
        let mut out = String::new();
        for (team, portal, report) in &self.teams {
            out.push_str(&format!("=== team {team}, portal {portal} ===\n"));
            out.push_str(&report.render());
            out.push('\n');
        }
        out.push_str(&format!(
            "{} teams: {} matched their prediction, their portal holding exactly their own records\n",
            self.teams.len(),
            self.teams.iter().filter(|(_, _, r)| r.complete()).count()
        ));
        out
    }
}

/// Runs the demo; progress goes to standard error, the reports are returned.
pub async fn run(options: &DemoOptions) -> anyhow::Result<Reports> {
    let begun = Instant::now();
    let end_ms = hubsync::outcomes::now_ms();
    let teams = options.teams.max(1);
    let portals = u16::try_from(teams)
        .ok()
        .filter(|n| *n <= 1_000)
        .ok_or_else(|| anyhow::anyhow!("--teams is at most 1000"))?;

    let sandbox = Sandbox::start(&SandboxArgs {
        hubspot_tier: options.tier,
        hubspot_port: 0,
        registry_port: 0,
        broker_control_port: 0,
        brokers: 1,
        partitions: 3,
        portal_id: hubsync_sandbox::hubspot::DEFAULT_PORTAL_ID,
        token: DEFAULT_TOKEN.to_string(),
        search_lag: Duration::from_secs(5),
        write_config: None,
        portals,
    })
    .await?;
    let generated: Vec<Team> = sandbox
        .teams
        .iter()
        .enumerate()
        .map(|(n, (_, _, team_id, _))| {
            let team = generate::generate(&TeamOptions {
                contacts: options.contacts,
                companies: options.companies,
                seed: options.seed + n as u64,
                end_ms,
            });
            generate::for_team(team, team_id, n == 0)
        })
        .collect();
    eprintln!(
        "hubsync-dev demo: {} messages generated for {} team(s) of {} contacts at {} companies (seed {}{})",
        generated.iter().map(|t| t.messages.len()).sum::<usize>(),
        teams,
        options.contacts,
        options.companies,
        options.seed,
        if teams > 1 { " and up" } else { "" }
    );
    let state_dir = StateDir::create()?;
    let result = run_on(options, &sandbox, &state_dir, generated, begun).await;
    sandbox.shutdown().await;
    drop(state_dir);
    result
}

async fn run_on(
    options: &DemoOptions,
    sandbox: &Sandbox,
    state_dir: &StateDir,
    generated: Vec<Team>,
    begun: Instant,
) -> anyhow::Result<Reports> {
    // Each team on its own portal, with its own token: the demo's configuration for each.
    let mut setups = Vec::with_capacity(sandbox.teams.len());
    for (portal_id, token, team_id, variable) in &sandbox.teams {
        let text = demo_config(
            &sandbox.config_of(*portal_id, variable),
            &state_dir.0,
            options.tier,
        )?;
        let mut config = Config::from_toml_str(&text)
            .map_err(|problems| anyhow::anyhow!("the demo configuration is invalid: {problems}"))?;
        config.team.id = team_id.clone();
        // The receiver reads the secret itself; the demo hands it over rather than through the
        // environment.
        config.hubspot.client_secret = Some(SecretSource::Value(Secret::new(two_way::APP_SECRET)));
        let secrets = config
            .resolve_secrets_with(&|name| (name == variable.as_str()).then(|| token.clone()))
            .map_err(|problems| anyhow::anyhow!("the demo configuration's secrets: {problems}"))?;
        setups.push((config, secrets));
    }
    let Some((config, secrets)) = setups.first().cloned() else {
        anyhow::bail!("the sandbox has no portal");
    };
    // Every team's messages, published together.
    let team = Team {
        messages: generated
            .iter()
            .flat_map(|t| t.messages.iter().cloned())
            .collect(),
        expected: generated[0].expected.clone(),
    };

    let health = Health::default();
    let metrics = admin::install_metrics();
    let admin_server = admin::serve(loopback(0), health.clone(), metrics.clone())
        .await
        .context("starting the admin endpoint")?;
    eprintln!(
        "  sandbox: kafka {}, schema registry {}, HubSpot {} (admin API {}/__admin/requests)",
        sandbox.broker.bootstrap_servers(),
        sandbox.registry.url(),
        sandbox.hubspot_server.url(),
        sandbox.hubspot_server.url()
    );
    eprintln!(
        "  pipeline admin endpoint: {}/healthz and {}/metrics",
        admin_server.url(),
        admin_server.url()
    );
    let pipeline = Pipeline::start_teams(
        &config,
        &secrets,
        &setups,
        Stages::All,
        health.clone(),
        Refusal::Stop,
    )
    .await
    .context("starting the pipeline")?;
    // HubSpot's webhooks for the app hubsync writes with go to the pipeline's receiver before
    // hubsync writes anything, so every write comes back, as in real HubSpot.
    let listening = pipeline
        .webhook_addr
        .context("the pipeline runs no webhook receiver")
        .and_then(|receiver| {
            let path = &config.stages.inbound.webhook_path;
            two_way::listen(sandbox, receiver, path, options.seed)
        });
    let driven = match listening {
        Ok(()) => drive(options, &config, &secrets, sandbox, &health, &team, begun).await,
        Err(error) => Err(error),
    };
    let render_metrics = || metrics.as_ref().map(|handle| handle.render());
    // Once every event has its outcome, HubSpot's users edit what hubsync wrote.
    let two_way = match &driven {
        Ok(driven) if driven.finished_at.is_some() => {
            let written: Vec<(u64, BTreeMap<String, String>)> = {
                let tally = driven.collector.tally();
                generated
                    .iter()
                    .zip(&sandbox.teams)
                    .map(|(own, (portal_id, ..))| (*portal_id, written_contacts(own, &tally)))
                    .collect()
            };
            Some(
                two_way::run(
                    sandbox,
                    &driven.collector,
                    &written,
                    &render_metrics,
                    options.seed,
                )
                .await
                .map_err(|e| format!("{e:#}")),
            )
        }
        _ => None,
    };
    sandbox.hubspot.webhooks().remove(None);
    let deliveries = sandbox.hubspot.webhooks().deliveries(None);
    info!("stopping the pipeline");
    let stop_error = pipeline.stop().await.err().map(|e| format!("{e:#}"));
    let _ = admin_server.shutdown().await;
    let driven = driven?;
    let tally = driven.collector.finish().await?;
    let batches = metrics
        .as_ref()
        .and_then(|handle| batch_stats(&handle.render()));

    let mut reports = Vec::with_capacity(generated.len());
    for (own, ((portal_id, _, team_id, _), portal)) in generated
        .iter()
        .zip(sandbox.teams.iter().zip(sandbox.portals.all()))
    {
        let mut report = summary::Report::new(options, own, &tally);
        report.startup = driven.startup;
        report.waves = driven.waves.clone();
        report.wall = driven.wall;
        report.timed_out = driven.finished_at.is_none() && driven.stopped_stage.is_none();
        report.problems.extend(driven.stopped_stage.clone());
        report.problems.extend(
            stop_error
                .as_ref()
                .map(|e| format!("the pipeline did not stop cleanly: {e}")),
        );
        report.batches = batches;
        report.hubspot_calls = calls_by_endpoint(&portal.request_counts());
        report.contacts_in_hubspot = portal.count(ObjectType::Contacts);
        report.companies_in_hubspot = portal.count(ObjectType::Companies);
        for object in activities::ACTIVITY_OBJECTS {
            report
                .activities_in_hubspot
                .insert(object, portal.count(object));
        }
        report.deals_in_hubspot = portal.count(ObjectType::Deals);
        report.problems.extend(foreign_contacts(own, portal));
        let links = company_links(own, portal);
        report.contacts_linked = (links.linked, links.linked + links.unlinked.len());
        report.problems.extend(links.problem());
        match &two_way {
            Some(Ok(run)) => {
                report.two_way = Some(two_way::TwoWay::new(
                    team_id,
                    *portal_id,
                    run,
                    &tally.changes,
                    &deliveries,
                ));
            }
            Some(Err(error)) => report
                .problems
                .push(format!("the HubSpot -> upstream part failed: {error}")),
            None => {}
        }
        report.finish();
        reports.push((team_id.clone(), *portal_id, report));
    }
    Ok(Reports { teams: reports })
}

/// The contacts the outcomes of `team`'s events say hubsync wrote: upstream id -> HubSpot id.
fn written_contacts(team: &Team, tally: &collect::Tally) -> BTreeMap<String, String> {
    let mut written = BTreeMap::new();
    for message in &team.messages {
        let Payload::Contact(event) = &message.payload else {
            continue;
        };
        let hubspot_id = tally
            .outcomes
            .get(&event.event_id)
            .into_iter()
            .flatten()
            .find_map(|seen| seen.hubspot_id.clone());
        if let Some(hubspot_id) = hubspot_id {
            written.insert(message.key.clone(), hubspot_id);
        }
    }
    written
}

/// Contacts the portal holds whose email none of `team`'s events carried: another team's, or
/// made up. Each is a problem.
fn foreign_contacts(team: &Team, portal: &hubsync_sandbox::hubspot::HubSpotSandbox) -> Vec<String> {
    let ours: HashSet<String> = team
        .messages
        .iter()
        .filter_map(|message| match &message.payload {
            Payload::Contact(event) => event.email.as_deref(),
            _ => None,
        })
        .map(|email| email.trim().to_ascii_lowercase())
        .collect();
    let foreign: Vec<String> = portal
        .snapshot(ObjectType::Contacts)
        .iter()
        .filter_map(|contact| contact["properties"]["email"].as_str())
        .filter(|email| !ours.contains(&email.to_ascii_lowercase()))
        .map(str::to_string)
        .collect();
    if foreign.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "portal {} holds {} contacts its team never sent, e.g. {}",
        portal.portal_id(),
        foreign.len(),
        foreign
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    )]
}

/// Contacts in HubSpot whose company (the domain their last event named, else their email's
/// business domain) is in HubSpot too, and whether it is their primary company there.
struct CompanyLinks {
    linked: usize,
    /// Emails of contacts not linked to their company as its primary one.
    unlinked: Vec<String>,
}

impl CompanyLinks {
    fn problem(&self) -> Option<String> {
        (!self.unlinked.is_empty()).then(|| {
            format!(
                "{} contacts are not linked to their company as their primary one, e.g. {}",
                self.unlinked.len(),
                self.unlinked
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }
}

fn company_links(team: &Team, portal: &hubsync_sandbox::hubspot::HubSpotSandbox) -> CompanyLinks {
    use hubsync_processors::normalize;
    let mut domains: HashMap<String, String> = HashMap::new();
    for message in &team.messages {
        let Payload::Contact(event) = &message.payload else {
            continue;
        };
        let Some(email) = event.email.as_deref() else {
            continue;
        };
        let domain = match event.company_domain.as_deref() {
            Some(domain) => normalize::domain(domain).map(|d| d.into_owned()),
            None => normalize::domain_from_email(email)
                .filter(|d| !normalize::is_free_mail(d))
                .map(|d| d.into_owned()),
        };
        if let Some(domain) = domain {
            domains.insert(email.trim().to_ascii_lowercase(), domain);
        }
    }
    let companies: HashMap<String, u64> = portal
        .snapshot(ObjectType::Companies)
        .iter()
        .filter_map(|company| {
            let domain = company["properties"]["domain"].as_str()?;
            let id = company["id"].as_str()?.parse().ok()?;
            Some((domain.to_ascii_lowercase(), id))
        })
        .collect();
    let mut links = CompanyLinks {
        linked: 0,
        unlinked: Vec::new(),
    };
    for contact in portal.snapshot(ObjectType::Contacts) {
        let (Some(email), Some(id)) = (
            contact["properties"]["email"].as_str(),
            contact["id"].as_str().and_then(|id| id.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let email = email.to_ascii_lowercase();
        let Some(company) = domains.get(&email).and_then(|d| companies.get(d)) else {
            continue;
        };
        let primary = portal
            .associations_of(ObjectType::Contacts, id, ObjectType::Companies)
            .iter()
            .any(|(to, types)| to == company && types.contains(&1));
        if primary {
            links.linked += 1;
        } else {
            links.unlinked.push(email);
        }
    }
    links
}

/// What publishing and waiting left behind.
struct Driven {
    collector: Collector,
    startup: Duration,
    waves: Vec<summary::Wave>,
    /// When the last outcome arrived; `None` when the deadline passed or a stage stopped.
    finished_at: Option<Instant>,
    stopped_stage: Option<String>,
    /// From the first message published to the last outcome (or to giving up).
    wall: Duration,
}

/// Publishes the team, history first and then the live changes, contacts and companies before
/// activities, each part once the outcomes of what came before are in, and waits for the
/// outcomes.
async fn drive(
    options: &DemoOptions,
    config: &Config,
    secrets: &Secrets,
    sandbox: &Sandbox,
    health: &Health,
    team: &Team,
    begun: Instant,
) -> anyhow::Result<Driven> {
    let codec = AvroCodec::new(
        RegistryClient::new(&config.registry, None).context("the registry client")?,
        100,
    )
    .context("the Avro codec")?;
    let wanted: HashSet<String> = team.messages.iter().flat_map(Upstream::awaited).collect();
    let collector = Collector::start(&config.kafka.brokers, codec.clone(), &config.topics, wanted)?;
    // The upstream producer: hubsync's producer settings, without the consumer-only properties
    // the demo adds for the pipeline's consumers.
    let producer: FutureProducer = producer_config(config, secrets)
        .remove("session.timeout.ms")
        .remove("heartbeat.interval.ms")
        .create()
        .context("creating the producer")?;

    let started = Instant::now();
    let startup = begun.elapsed();
    let deadline = started + options.timeout;
    // The team's history first (a backfill), then the live changes once the history is in
    // HubSpot: those mostly update records that exist. In each, the contacts and companies go
    // first and the activities once those have their outcomes: in the team's time an activity
    // comes minutes or days after its contact, and the compressed run keeps that order (an
    // activity published with its contact would wait for it behind the whole backlog).
    let part = |live: bool, activities: bool| -> Vec<&Upstream> {
        team.messages
            .iter()
            .filter(|m| m.live == live && matches!(m.payload, Payload::Activity(_)) == activities)
            .collect()
    };
    let parts = [
        ("history: contacts and companies", part(false, false)),
        ("history: activities", part(false, true)),
        ("live: contact and company changes", part(true, false)),
        ("live: activities", part(true, true)),
    ];
    let mut waves = Vec::new();
    let mut garbled = 0;
    let mut finished_at = None;
    let mut stopped_stage = None;
    for (name, messages) in parts {
        let wave_started = Instant::now();
        let published = publish(&producer, &codec, &config.topics, &messages).await?;
        let publish_time = wave_started.elapsed();
        eprintln!(
            "  {name}: published {published} messages in {:.1} s; waiting for their outcomes",
            publish_time.as_secs_f64(),
        );
        let ids: Vec<String> = messages.iter().flat_map(|m| m.awaited()).collect();
        garbled += messages
            .iter()
            .filter(|m| matches!(m.payload, Payload::Garbled { .. }))
            .count();
        let waited = wait_for_outcomes(
            &collector, &ids, garbled, deadline, health, sandbox, started,
        )
        .await;
        waves.push(summary::Wave {
            name,
            messages: messages.len(),
            publish: publish_time,
            outcomes: wave_started.elapsed(),
        });
        match waited {
            Waited::Done(at) => finished_at = Some(at),
            Waited::Deadline => {
                finished_at = None;
                break;
            }
            Waited::Stopped(reason) => {
                finished_at = None;
                stopped_stage = Some(reason);
                break;
            }
        }
    }
    let wall = finished_at.unwrap_or_else(Instant::now) - started;
    Ok(Driven {
        collector,
        startup,
        waves,
        finished_at,
        stopped_stage,
        wall,
    })
}

enum Waited {
    /// Every event has its outcome, since this moment.
    Done(Instant),
    Deadline,
    /// A stage stopped on its own, for this reason.
    Stopped(String),
}

/// Waits until each of `ids` has an outcome and `garbled` undecodable messages have their dead
/// letters, reporting progress every few seconds.
async fn wait_for_outcomes(
    collector: &Collector,
    ids: &[String],
    garbled: usize,
    deadline: Instant,
    health: &Health,
    sandbox: &Sandbox,
    started: Instant,
) -> Waited {
    let mut next_progress = Instant::now() + Duration::from_secs(5);
    loop {
        let (missing, answered_total, undecodable) = {
            let tally = collector.tally();
            let missing = ids.iter().filter(|id| tally.missing.contains(*id)).count();
            (missing, tally.outcomes.len(), tally.undecodable)
        };
        let now = Instant::now();
        if missing == 0 && undecodable >= garbled {
            return Waited::Done(now);
        }
        if now >= deadline {
            return Waited::Deadline;
        }
        let stopped = health
            .snapshot()
            .into_iter()
            .find_map(|(stage, h)| match h {
                StageHealth::Stopped(reason) => {
                    Some(format!("the {stage} stage stopped: {reason}"))
                }
                _ => None,
            });
        if let Some(reason) = stopped {
            return Waited::Stopped(reason);
        }
        if now >= next_progress {
            let calls: u64 = sandbox.hubspot.request_counts().values().sum();
            eprintln!(
                "  {:>5.1} s: {} of these {} events and deal commands have an outcome ({} answered in all), {} undecodable messages dead-lettered, {} HubSpot calls",
                started.elapsed().as_secs_f64(),
                ids.len() - missing,
                ids.len(),
                answered_total,
                undecodable,
                calls
            );
            next_progress = now + Duration::from_secs(5);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sandbox's configuration with the demo's rules: state in `state_dir`, a short session
/// timeout (the development broker holds a departed member's partitions for that long), the last
/// name mandatory too, lead status mapped to HubSpot's enumeration, the lifecycle stage mapped
/// back upstream (`from_hubspot`), every activity type with its default policy (opens and
/// profile visits off), a short wait for an activity's contact, the sales reps mapped to the
/// sandbox's owners (the SDRs are not), one campaign kept out of HubSpot and one whose replies
/// open deals; the webhook receiver on a free loopback port, with the app's client secret.
pub fn demo_config(sandbox_config: &str, state_dir: &Path, tier: Tier) -> anyhow::Result<String> {
    let mut text = sandbox_config.to_string();
    let mut replace = |from: &str, to: String| -> anyhow::Result<()> {
        anyhow::ensure!(
            text.matches(from).count() == 1,
            "the sandbox configuration no longer holds `{}` exactly once; the demo's edits need updating",
            from.trim()
        );
        text = text.replacen(from, &to, 1);
        Ok(())
    };
    replace(
        "dir = \"hubsync-state\"",
        format!("dir = {}", toml_string(&state_dir.display().to_string())),
    )?;
    replace(
        "group_id_prefix = \"hubsync-sandbox\"\n",
        "group_id_prefix = \"hubsync-demo\"\n\n[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n".to_string(),
    )?;
    replace(
        "tier = \"professional\"",
        format!(
            "tier = {}\nclient_secret = {{ env = {} }}",
            toml_string(tier.as_str()),
            toml_string(two_way::CLIENT_SECRET_ENV)
        ),
    )?;
    replace(
        "mandatory = [\"email\"]",
        "mandatory = [\"email\", \"last_name\"]".to_string(),
    )?;
    replace(
        "[[sync.companies.mapping]]\nsource = \"name\"",
        "[[sync.contacts.mapping]]\nsource = \"lead_status\"\nproperty = \"hs_lead_status\"\n\n\
         [[sync.contacts.mapping]]\nsource = \"stage\"\nproperty = \"lifecyclestage\"\ndirection = \"from_hubspot\"\n\n\
         [[sync.companies.mapping]]\nsource = \"name\"".to_string(),
    )?;
    replace(
        "email_opened = { enabled = true, store_as = \"note\" }\n",
        String::new(),
    )?;
    replace(
        "\n[state]\n",
        format!(
            "\n[stages.sink]\nlinger = \"250ms\"\ncontact_wait = \"{CONTACT_WAIT}\"\n\n\
             [stages.inbound]\nwebhook_listen = \"127.0.0.1:0\"\n\n[state]\n"
        ),
    )?;
    text.push_str("\n[users]\n");
    for (user, owner) in names::SALES_REPS {
        text.push_str(&format!(
            "\n[[users.mapping]]\nuser = {}\nowner = {}\n",
            toml_string(user),
            toml_string(owner)
        ));
    }
    text.push_str(&format!(
        "\n[campaigns.{}]\npush_to_crm = false\n",
        toml_string(names::PRIVATE_CAMPAIGN)
    ));
    text.push_str(&format!(
        "\n[campaigns.{}]\ndeal_triggers = [\"email_replied\"]\n",
        toml_string(names::DEAL_CAMPAIGN)
    ));
    Ok(text)
}

fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

/// Publishes every message in order, as fast as the producer's queue takes them; returns how
/// many were delivered.
async fn publish(
    producer: &FutureProducer,
    codec: &AvroCodec,
    topics: &Topics,
    messages: &[&Upstream],
) -> anyhow::Result<usize> {
    let contacts = codec
        .writer(
            SchemaKind::ContactChanged,
            &default_subject(&topics.contact_changes),
        )
        .await
        .context("the ContactChanged writer schema")?;
    let companies = codec
        .writer(
            SchemaKind::CompanyChanged,
            &default_subject(&topics.company_changes),
        )
        .await
        .context("the CompanyChanged writer schema")?;
    let activities = codec
        .writer(
            SchemaKind::ActivityRecorded,
            &default_subject(&topics.activity_events),
        )
        .await
        .context("the ActivityRecorded writer schema")?;
    let mut deliveries = FuturesUnordered::new();
    for message in messages {
        let (topic, payload) = match &message.payload {
            Payload::Contact(event) => (&topics.contact_changes, Some(contacts.encode(event)?)),
            Payload::Company(event) => (&topics.company_changes, Some(companies.encode(event)?)),
            Payload::Activity(event) => (&topics.activity_events, Some(activities.encode(event)?)),
            Payload::Garbled { garble, contact } => (
                &topics.contact_changes,
                garbled(*garble, contact, &contacts)?,
            ),
        };
        let mut record: FutureRecord<'_, String, Vec<u8>> =
            FutureRecord::to(topic).key(&message.key);
        if let Some(payload) = &payload {
            record = record.payload(payload);
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((error, _)) => return Err(error).context("publishing an upstream event"),
            }
        }
    }
    let mut delivered = 0;
    while let Some(result) = deliveries.next().await {
        match result {
            Ok(Ok(_)) => delivered += 1,
            Ok(Err((error, _))) => anyhow::bail!("the broker refused an upstream event: {error}"),
            Err(_) => anyhow::bail!("the producer went away before an event was delivered"),
        }
    }
    Ok(delivered)
}

/// The bytes of a message that cannot be decoded, made from `contact`.
fn garbled(
    garble: Garble,
    contact: &hubsync_schemas::ContactChanged,
    writer: &Writer,
) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(match garble {
        Garble::Json => Some(
            serde_json::to_vec(&serde_json::json!({
                "event_id": contact.event_id,
                "contact_id": contact.contact_id,
                "email": contact.email,
                "change": "UPDATED",
            }))
            .context("encoding JSON")?,
        ),
        Garble::Empty => None,
        Garble::UnknownSchemaId => {
            let mut bytes = writer.encode(contact)?;
            bytes[1..5].copy_from_slice(&UNKNOWN_SCHEMA_ID.to_be_bytes());
            Some(bytes)
        }
        Garble::Truncated => {
            let mut bytes = writer.encode(contact)?;
            bytes.truncate(5 + (bytes.len() - 5) / 3);
            Some(bytes)
        }
    })
}

/// HubSpot calls per endpoint: (answered, of which 429, of which other errors).
fn calls_by_endpoint(counts: &BTreeMap<(String, u16), u64>) -> BTreeMap<String, (u64, u64, u64)> {
    let mut calls: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for ((endpoint, status), count) in counts {
        let entry = calls.entry(endpoint.clone()).or_default();
        entry.0 += count;
        if *status == 429 {
            entry.1 += count;
        } else if *status >= 400 {
            entry.2 += count;
        }
    }
    calls
}

/// The sink's batches and their mean size, from the Prometheus text of the metrics.
fn batch_stats(rendered: &str) -> Option<(u64, f64)> {
    let value = |name: &str| {
        rendered.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = rest.strip_prefix(' ').or_else(|| {
                // A labelled series: `name{...} value`.
                rest.starts_with('{')
                    .then(|| rest.split_once("} ").map(|(_, v)| v))
                    .flatten()
            })?;
            rest.trim().parse::<f64>().ok()
        })
    };
    let count = value("hubsync_sink_batch_records_count")?;
    let sum = value("hubsync_sink_batch_records_sum")?;
    (count > 0.0).then(|| (count as u64, sum / count))
}

/// A state directory of its own, removed at the end.
struct StateDir(PathBuf);

impl StateDir {
    fn create() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "hubsync-demo-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("creating the state directory {}", path.display()))?;
        Ok(StateDir(path))
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox_config::render_sandbox_config;

    /// The environment variable the sandbox's configuration names for the HubSpot token.
    const TOKEN_ENV: &str = "HUBSYNC_HUBSPOT_TOKEN";

    #[test]
    fn the_demo_configuration_is_valid_and_has_the_demo_rules() {
        let sandbox = render_sandbox_config(
            "127.0.0.1:39092",
            "http://127.0.0.1:38081",
            "http://127.0.0.1:38080",
            48_151_623,
            TOKEN_ENV,
        );
        let text =
            demo_config(&sandbox, Path::new("/tmp/demo state"), Tier::Free).expect("edits apply");
        let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.state.dir, Path::new("/tmp/demo state"));
        assert_eq!(config.hubspot.tier, Tier::Free);
        assert_eq!(config.stages.sink.linger, Duration::from_millis(250));
        assert_eq!(
            config.rules.sync.contacts.mandatory,
            ["email".to_string(), "last_name".to_string()]
        );
        assert!(
            config
                .rules
                .sync
                .contacts
                .mapping
                .iter()
                .any(|m| m.property == "hs_lead_status")
        );
        assert!(!config.rules.campaign(names::PRIVATE_CAMPAIGN).push_to_crm);
        assert_eq!(config.rules.users.owner_for("usr_grace"), Some("70000002"));
        for (sdr, _) in names::SDRS {
            assert_eq!(config.rules.users.owner_for(sdr), None, "{sdr}");
        }
        assert_eq!(config.stages.sink.contact_wait, Duration::from_secs(5));
        assert_eq!(
            config.stages.inbound.webhook_listen.as_deref(),
            Some("127.0.0.1:0")
        );
        assert!(config.hubspot.client_secret.is_some());
        // The properties HubSpot's users edit flow as the prediction says.
        for edited in &two_way::EDITED {
            let entry = config
                .rules
                .sync
                .contacts
                .mapping
                .iter()
                .find(|m| m.property == edited.property)
                .unwrap_or_else(|| panic!("{} is mapped", edited.property));
            let goes_up = entry
                .direction
                .writes_upstream()
                .then_some(entry.source.as_str());
            assert_eq!(goes_up, edited.field, "{}", edited.property);
            let direction = toml::Value::try_from(entry.direction).expect("a direction");
            assert_eq!(direction.as_str(), Some(edited.direction));
        }
        let deals = config.rules.campaign(names::DEAL_CAMPAIGN);
        assert!(deals.push_to_crm);
        assert_eq!(
            deals.deal_triggers,
            [hubsync_processors::rules::ActivityType::EmailReplied]
        );
        // Every type keeps its default policy, which is what the generator predicts with.
        assert_eq!(
            config.rules.activities,
            hubsync_processors::rules::ActivityRules {
                associate_open_deal: true,
                ..Default::default()
            }
        );
    }

    #[test]
    fn batch_statistics_come_from_the_rendered_metrics() {
        let text = "# TYPE hubsync_sink_batch_records summary\nhubsync_sink_batch_records{quantile=\"0.5\"} 100\nhubsync_sink_batch_records_sum 950\nhubsync_sink_batch_records_count 10\n";
        assert_eq!(batch_stats(text), Some((10, 95.0)));
        assert_eq!(batch_stats("nothing here\n"), None);
    }
}
