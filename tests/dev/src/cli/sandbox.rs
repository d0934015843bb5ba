//! `hubsync-dev sandbox`: the development broker, the schema registry and the HubSpot sandbox in one
//! process, with hubsync's topics created and its schemas registered, until Ctrl-C or SIGTERM.
//!
//! Standard output carries only `NAME=value` lines, so `eval "$(hubsync-dev sandbox ...)"` works
//! from a script that runs it in the background; everything meant for a person goes to standard
//! error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use hubsync_hubspot::Tier;
use hubsync_sandbox::broker::{BrokerConfig, DevBroker, TopicSpec};
use hubsync_sandbox::hubspot::{
    DEFAULT_PORTAL_ID, DEFAULT_TOKEN, HubSpotSandbox, Portals, SandboxOptions,
};
use hubsync_sandbox::registry::SchemaRegistry;
use hubsync_sandbox::server::{RunningServer, loopback};
use hubsync_schemas::SchemaKind;
use tracing::info;

use crate::sandbox_config::{
    TEAM_ID, render_sandbox_config, render_sandbox_service, render_sandbox_team,
};

fn parse_tier(raw: &str) -> Result<Tier, String> {
    Tier::parse(raw).ok_or_else(|| {
        format!("unknown tier {raw}: use free, starter, professional, enterprise or unlimited")
    })
}

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// HubSpot subscription tier whose rate limits the HubSpot sandbox applies: free, starter,
    /// professional, enterprise or unlimited.
    #[arg(long, default_value = "professional", value_parser = parse_tier)]
    pub hubspot_tier: Tier,
    /// Port of the HubSpot sandbox on 127.0.0.1 (0 picks a free port).
    #[arg(long, default_value_t = 0)]
    pub hubspot_port: u16,
    /// Port of the schema registry on 127.0.0.1 (0 picks a free port).
    #[arg(long, default_value_t = 0)]
    pub registry_port: u16,
    /// Port of the broker's control API on 127.0.0.1 (0 picks a free port). The Kafka listeners
    /// themselves always take free ports: librdkafka's mock cluster does not let them be chosen.
    #[arg(long, default_value_t = 0)]
    pub broker_control_port: u16,
    /// Number of mock Kafka brokers.
    #[arg(long, default_value_t = 1)]
    pub brokers: i32,
    /// Partitions of each hubsync topic.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// The portal (account) id the HubSpot sandbox reports.
    #[arg(long, default_value_t = DEFAULT_PORTAL_ID)]
    pub portal_id: u64,
    /// The private-app token the HubSpot sandbox accepts.
    #[arg(long, default_value = DEFAULT_TOKEN)]
    pub token: String,
    /// How long a HubSpot write takes to become visible to search (e.g. "5s", "0s").
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub search_lag: Duration,
    /// Also write the ready-to-use configuration to this file (with --portals above 1: the
    /// service file, and a team file per portal in teams/ beside it).
    #[arg(long)]
    pub write_config: Option<PathBuf>,
    /// HubSpot portals behind the one sandbox URL, each with a team of its own: portal ids
    /// count up from --portal-id, tokens are --token for the first and --token-N for the Nth.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub portals: u16,
}

/// Portal `n` (1-based) of a sandbox of several: its id, token, team and token variable.
fn portal(args: &SandboxArgs, n: u16) -> (u64, String, String, String) {
    if n == 1 {
        return (
            args.portal_id,
            args.token.clone(),
            TEAM_ID.to_string(),
            "HUBSYNC_HUBSPOT_TOKEN".to_string(),
        );
    }
    (
        args.portal_id + u64::from(n) - 1,
        format!("{}-{n}", args.token),
        format!("{TEAM_ID}-{n}"),
        format!("HUBSYNC_HUBSPOT_TOKEN_{n}"),
    )
}

/// The topic each schema is the value of, by hubsync's default topic names.
pub const TOPIC_SCHEMAS: [(&str, SchemaKind); 7] = [
    ("crm.contact.changes", SchemaKind::ContactChanged),
    ("crm.company.changes", SchemaKind::CompanyChanged),
    ("crm.activity.events", SchemaKind::ActivityRecorded),
    ("hubsync.commands", SchemaKind::HubSpotCommand),
    ("hubsync.outcomes", SchemaKind::SyncOutcome),
    ("hubsync.dlq", SchemaKind::DeadLetter),
    ("crm.hubspot.changes", SchemaKind::HubSpotChange),
];

/// Everything the sandbox runs; [`Sandbox::shutdown`] stops it in reverse order.
pub struct Sandbox {
    pub broker: DevBroker,
    pub broker_control: RunningServer,
    pub registry: RunningServer,
    /// The first portal.
    pub hubspot: HubSpotSandbox,
    /// Every portal, behind `hubspot_server`.
    pub portals: Portals,
    pub hubspot_server: RunningServer,
    pub token: String,
    /// Each portal's (id, token, team, token variable).
    pub teams: Vec<(u64, String, String, String)>,
}

impl Sandbox {
    /// Starts the three stand-ins, creates the topics and registers every schema under its
    /// topic's value subject.
    pub async fn start(args: &SandboxArgs) -> anyhow::Result<Self> {
        let mut broker_config = BrokerConfig::new(args.brokers);
        // Every topic; the replay topics carry no schema of their own.
        for topic in hubsync_sandbox::broker::DEFAULT_TOPICS {
            broker_config = broker_config.with_topic(TopicSpec::new(topic, args.partitions));
        }
        let broker = DevBroker::start(broker_config)
            .await
            .context("starting the development broker")?;
        let broker_control =
            RunningServer::spawn(broker.control_router(), loopback(args.broker_control_port))
                .await
                .with_context(|| {
                    format!(
                        "binding the broker control API to 127.0.0.1:{}",
                        args.broker_control_port
                    )
                })?;

        let registry = SchemaRegistry::new();
        for (topic, kind) in TOPIC_SCHEMAS {
            let subject = hubsync_schemas::default_subject(topic);
            registry
                .register(&subject, kind.source())
                .with_context(|| format!("registering {} under {subject}", kind.name()))?;
        }
        let registry_server = registry
            .serve(loopback(args.registry_port))
            .await
            .with_context(|| {
                format!(
                    "binding the schema registry to 127.0.0.1:{}",
                    args.registry_port
                )
            })?;

        let teams: Vec<_> = (1..=args.portals).map(|n| portal(args, n)).collect();
        let portals = Portals::new(
            teams
                .iter()
                .map(|(portal_id, token, _, _)| SandboxOptions {
                    portal_id: *portal_id,
                    tier: args.hubspot_tier,
                    tokens: vec![token.clone()],
                    search_index_lag: args.search_lag,
                    ..SandboxOptions::default()
                })
                .collect(),
        );
        let hubspot = portals.all()[0].clone();
        let hubspot_server = portals
            .serve(loopback(args.hubspot_port))
            .await
            .with_context(|| {
                format!(
                    "binding the HubSpot sandbox to 127.0.0.1:{}",
                    args.hubspot_port
                )
            })?;
        Ok(Sandbox {
            broker,
            broker_control,
            registry: registry_server,
            hubspot,
            portals,
            hubspot_server,
            token: args.token.clone(),
            teams,
        })
    }

    /// `NAME=value` lines for scripts.
    pub fn env_lines(&self) -> Vec<String> {
        vec![
            format!("HUBSYNC_KAFKA_BROKERS={}", self.broker.bootstrap_servers()),
            format!("HUBSYNC_REGISTRY_URL={}", self.registry.url()),
            format!("HUBSYNC_HUBSPOT_URL={}", self.hubspot_server.url()),
            format!("HUBSYNC_HUBSPOT_TOKEN={}", self.token),
            format!("HUBSYNC_HUBSPOT_PORTAL_ID={}", self.hubspot.portal_id()),
            format!("HUBSYNC_BROKER_CONTROL_URL={}", self.broker_control.url()),
        ]
        .into_iter()
        .chain(
            self.teams
                .iter()
                .skip(1)
                .map(|(_, token, _, variable)| format!("{variable}={token}")),
        )
        .collect()
    }

    /// With several portals: the service file, and each team's file name and text.
    pub fn service(&self) -> (String, Vec<(String, String)>) {
        let service = render_sandbox_service(
            self.broker.bootstrap_servers(),
            &self.registry.url(),
            &self.hubspot_server.url(),
        );
        let teams = self
            .teams
            .iter()
            .map(|(portal_id, _, team, variable)| {
                (
                    format!("{team}.toml"),
                    render_sandbox_team(team, *portal_id, variable),
                )
            })
            .collect();
        (service, teams)
    }

    /// A complete configuration pointing at this sandbox; the token comes from the environment.
    pub fn config(&self) -> String {
        self.config_of(self.hubspot.portal_id(), "HUBSYNC_HUBSPOT_TOKEN")
    }

    /// A complete one-file configuration for one portal of this sandbox, its token read from
    /// the environment variable `token_variable`.
    pub fn config_of(&self, portal_id: u64, token_variable: &str) -> String {
        render_sandbox_config(
            self.broker.bootstrap_servers(),
            &self.registry.url(),
            &self.hubspot_server.url(),
            portal_id,
            token_variable,
        )
    }

    pub async fn shutdown(self) {
        for (name, server) in [
            ("HubSpot sandbox", self.hubspot_server),
            ("schema registry", self.registry),
            ("broker control API", self.broker_control),
        ] {
            if let Err(error) = server.shutdown().await {
                tracing::warn!(%error, server = name, "server did not stop cleanly");
            }
        }
        self.broker.shutdown().await;
    }
}

pub async fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let sandbox = Sandbox::start(&args).await?;
    let (config, team_files) = if args.portals > 1 {
        sandbox.service()
    } else {
        (sandbox.config(), Vec::new())
    };
    if let Some(path) = &args.write_config {
        std::fs::write(path, &config)
            .with_context(|| format!("writing the configuration to {}", path.display()))?;
        if !team_files.is_empty() {
            let dir = path
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("teams");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, text) in &team_files {
                std::fs::write(dir.join(name), text)
                    .with_context(|| format!("writing {}", dir.join(name).display()))?;
            }
        }
    }

    let mut stdout = std::io::stdout().lock();
    for line in sandbox.env_lines() {
        writeln!(stdout, "{line}")?;
    }
    stdout.flush()?;
    drop(stdout);

    let mut guide = String::new();
    guide.push_str("hubsync-dev sandbox is running (Ctrl-C stops it)\n");
    guide.push_str(&format!(
        "  kafka bootstrap      {}\n",
        sandbox.broker.bootstrap_servers()
    ));
    guide.push_str(&format!(
        "  broker control API   {}\n",
        sandbox.broker_control.url()
    ));
    guide.push_str(&format!(
        "  schema registry      {}\n",
        sandbox.registry.url()
    ));
    guide.push_str(&format!(
        "  hubspot API          {}  (portal {}, tier {}, admin API at {}/__admin/state)\n",
        sandbox.hubspot_server.url(),
        sandbox.hubspot.portal_id(),
        args.hubspot_tier.as_str(),
        sandbox.hubspot_server.url()
    ));
    guide.push_str(&format!("  hubspot token        {}\n", sandbox.token));
    if args.portals > 1 {
        guide.push_str(&format!(
            "  portals              {} ({} to {}), a team each (team files in teams/ beside the service file)\n",
            args.portals,
            sandbox.hubspot.portal_id(),
            sandbox.hubspot.portal_id() + u64::from(args.portals) - 1
        ));
    }
    guide.push_str("topics: ");
    guide.push_str(&hubsync_sandbox::broker::DEFAULT_TOPICS.join(", "));
    guide.push('\n');
    match &args.write_config {
        Some(path) => guide.push_str(&format!("configuration written to {}\n", path.display())),
        None => {
            guide.push_str("a ready-to-use configuration (save it with --write-config FILE):\n\n");
            guide.push_str(&config);
        }
    }
    eprintln!("{guide}");
    info!("sandbox ready");

    let stopped_by = hubsync::cli::shutdown_signal()
        .await
        .context("could not listen for signals")?;
    info!(signal = stopped_by, "stopping the sandbox");
    sandbox.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
