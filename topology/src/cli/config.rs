//! `hubsync config check FILE`: loads a config as the pipeline would (environment overrides
//! included), validates it offline and reports.
//!
//! Exit status: 0 when the config is usable (warnings may still be printed), 2 when it has
//! problems, each printed on its own line with its field first, 1 for anything unexpected.
//! Secrets that cannot be read here are warnings, not errors: a config is often checked on a
//! machine that does not hold them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hubsync_processors::rules::ActivityType;
use serde::Serialize;

use crate::config::{Budget, Config, ConfigError, EnvOverride, Problem, Service, Topics};

/// Exit status of a config that cannot be used.
const INVALID: u8 = 2;

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file offline and report every problem, naming its field.
    Check {
        /// The configuration file (TOML).
        file: PathBuf,
        /// Print the report as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Check { file, json } => check(&file, json),
    }
}

fn check(file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let report = match Service::load(file) {
        Ok(service) if !service.is_single_team() => Report::of_service(file, &service),
        _ => Report::build(file, Config::load(file)),
    };
    if json {
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        report.print()?;
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INVALID)
    })
}

/// What `config check` found; printed as text or as JSON.
#[derive(Debug, Serialize)]
struct Report {
    file: String,
    valid: bool,
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
    summary: Option<Summary>,
    /// A service file's team files, each checked on its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    teams: Vec<Report>,
}

#[derive(Debug, Serialize)]
struct Summary {
    team: String,
    hubspot_portal_id: u64,
    kafka_brokers: String,
    consumer_groups: Vec<String>,
    registry_url: String,
    hubspot_url: String,
    tier: &'static str,
    budget: BudgetSummary,
    topics: Topics,
    mappings: Mappings,
    users_mapped: usize,
    default_owner: Option<String>,
    activities_enabled: Vec<&'static str>,
    campaigns_with_exceptions: usize,
    creates_deals: bool,
    env_overrides: Vec<EnvOverride>,
}

#[derive(Debug, Serialize)]
struct BudgetSummary {
    requests_per_10s: u32,
    daily_limit: u64,
    search_per_second: u32,
}

impl From<Budget> for BudgetSummary {
    fn from(budget: Budget) -> Self {
        Self {
            requests_per_10s: budget.requests_per_10s,
            daily_limit: budget.daily_limit,
            search_per_second: budget.search_per_second,
        }
    }
}

#[derive(Debug, Serialize)]
struct Mappings {
    contacts: usize,
    companies: usize,
}

impl Report {
    /// A service file, and every team file of its directory.
    fn of_service(file: &Path, service: &Service) -> Self {
        let (teams, refused) = service.read_teams();
        let mut reports: Vec<Report> = teams
            .into_iter()
            .map(|team| {
                let path = team.path.unwrap_or_default();
                Report::build(&path, Ok(team.config))
            })
            .chain(
                refused
                    .into_iter()
                    .map(|refused| Report::build(&refused.path, Err(refused.error))),
            )
            .collect();
        reports.sort_by(|a, b| a.file.cmp(&b.file));
        // The service's consumer groups are the whole service's, not a team's.
        let groups: Vec<String> = crate::pipeline::CONSUMER_GROUPS
            .into_iter()
            .map(|stage| service.settings.group_id(stage))
            .collect();
        for summary in reports.iter_mut().filter_map(|r| r.summary.as_mut()) {
            summary.consumer_groups = groups.clone();
        }
        let mut warnings = Vec::new();
        if reports.is_empty() {
            let dir = service
                .teams_dir
                .as_deref()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            warnings.push(Problem::new(
                "teams.dir",
                format!("{dir} holds no team file yet: the service serves no team"),
            ));
        }
        Self {
            file: file.display().to_string(),
            valid: reports.iter().all(|r| r.valid),
            errors: Vec::new(),
            warnings,
            summary: None,
            teams: reports,
        }
    }

    fn build(file: &Path, loaded: Result<Config, ConfigError>) -> Self {
        let file = file.display().to_string();
        match loaded {
            Ok(config) => {
                let mut warnings = config.warnings();
                if let Err(error) = config.resolve_secrets() {
                    warnings.extend(error.problems().into_iter().map(|mut problem| {
                        problem
                            .message
                            .push_str(" (hubsync will not start until it can be read)");
                        problem
                    }));
                }
                Self {
                    file,
                    valid: true,
                    errors: Vec::new(),
                    warnings,
                    summary: Some(Summary::of(&config)),
                    teams: Vec::new(),
                }
            }
            Err(error) => Self {
                file,
                valid: false,
                errors: error.problems(),
                warnings: Vec::new(),
                summary: None,
                teams: Vec::new(),
            },
        }
    }

    fn print(&self) -> std::io::Result<()> {
        if !self.teams.is_empty() || self.summary.is_none() && self.valid {
            let valid = self.teams.iter().filter(|t| t.valid).count();
            println!(
                "service: {} ({} team files, {valid} valid)",
                self.file,
                self.teams.len()
            );
            for warning in &self.warnings {
                println!("warning: {warning}");
            }
            for team in &self.teams {
                team.print()?;
            }
            return Ok(());
        }
        if !self.valid {
            let mut stderr = std::io::stderr().lock();
            let count = self.errors.len();
            let noun = if count == 1 { "problem" } else { "problems" };
            writeln!(stderr, "invalid: {}: {count} {noun}", self.file)?;
            for problem in &self.errors {
                writeln!(stderr, "{problem}")?;
            }
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "ok: {}", self.file)?;
        if let Some(summary) = &self.summary {
            summary.print(&mut out)?;
        }
        for warning in &self.warnings {
            writeln!(out, "warning: {warning}")?;
        }
        Ok(())
    }
}

impl Summary {
    fn of(config: &Config) -> Self {
        let rules = &config.rules;
        Self {
            team: config.team.id.clone(),
            hubspot_portal_id: config.team.hubspot_portal_id,
            kafka_brokers: config.kafka.brokers.clone(),
            consumer_groups: crate::pipeline::CONSUMER_GROUPS
                .into_iter()
                .map(|stage| config.group_id(stage))
                .collect(),
            registry_url: config.registry.url.clone(),
            hubspot_url: config.hubspot.base_url.clone(),
            tier: config.hubspot.tier.as_str(),
            budget: config.hubspot.budget().into(),
            topics: config.topics.clone(),
            mappings: Mappings {
                contacts: rules.sync.contacts.mapping.len(),
                companies: rules.sync.companies.mapping.len(),
            },
            users_mapped: rules.users.mapping.len(),
            default_owner: rules.users.default_owner.clone(),
            activities_enabled: rules
                .activities
                .enabled()
                .map(ActivityType::as_str)
                .collect(),
            campaigns_with_exceptions: rules.campaigns.len(),
            creates_deals: !rules.deal_trigger_sources().is_empty(),
            env_overrides: config.env_overrides.clone(),
        }
    }

    fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        let budget = &self.budget;
        writeln!(
            out,
            "  team        {} (HubSpot portal {})",
            self.team, self.hubspot_portal_id
        )?;
        writeln!(out, "  kafka       {}", self.kafka_brokers)?;
        writeln!(out, "  registry    {}", self.registry_url)?;
        writeln!(
            out,
            "  hubspot     {}, tier {}: {} requests/10s, {}/day, {} searches/s",
            self.hubspot_url,
            self.tier,
            budget.requests_per_10s,
            budget.daily_limit,
            budget.search_per_second
        )?;
        let names = |keys: &[&str]| {
            self.topics
                .all()
                .into_iter()
                .filter(|(key, _)| keys.contains(key))
                .map(|(_, name)| name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            out,
            "  topics      in {}",
            names(&["contact_changes", "company_changes", "activity_events"])
        )?;
        writeln!(
            out,
            "              out {}",
            names(&["commands", "outcomes", "dlq", "hubspot_changes"])
        )?;
        writeln!(
            out,
            "  mappings    {} contact, {} company",
            self.mappings.contacts, self.mappings.companies
        )?;
        writeln!(
            out,
            "  users       {} mapped, default owner {}",
            self.users_mapped,
            self.default_owner.as_deref().unwrap_or("none")
        )?;
        writeln!(
            out,
            "  activities  {} of {} types enabled",
            self.activities_enabled.len(),
            ActivityType::ALL.len()
        )?;
        writeln!(
            out,
            "  campaigns   {} with exceptions, deals {}",
            self.campaigns_with_exceptions,
            if self.creates_deals {
                "created on triggers"
            } else {
                "not created"
            }
        )?;
        for applied in &self.env_overrides {
            writeln!(
                out,
                "  override    {} from {}",
                applied.field, applied.variable
            )?;
        }
        Ok(())
    }
}
