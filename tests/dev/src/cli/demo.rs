//! `hubsync-dev demo`: the whole pipeline on the in-process sandbox with a generated team; prints
//! what became of every event, the HubSpot calls it took and how long, then exits 0 when every
//! event got its outcome and HubSpot and the outcomes match the generated team's prediction in
//! every check, and 1 otherwise (the report lists each difference). Progress goes to standard
//! error, the report to standard output.

use std::process::ExitCode;
use std::time::Duration;

use hubsync_hubspot::Tier;

use crate::demo::{self, DemoOptions};

fn parse_tier(raw: &str) -> Result<Tier, String> {
    Tier::parse(raw).ok_or_else(|| {
        format!("unknown tier {raw}: use free, starter, professional, enterprise or unlimited")
    })
}

fn at_least_one(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(error) => Err(error.to_string()),
    }
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Contacts in the generated team.
    #[arg(long, default_value_t = 5_000, value_parser = at_least_one)]
    pub contacts: usize,
    /// Companies in the generated team.
    #[arg(long, default_value_t = 300, value_parser = at_least_one)]
    pub companies: usize,
    /// Seed of the generated team: the same seed gives the same team.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// HubSpot subscription tier whose rate limits the HubSpot sandbox applies and hubsync
    /// budgets for: free, starter, professional, enterprise or unlimited.
    #[arg(long, default_value = "professional", value_parser = parse_tier)]
    pub hubspot_tier: Tier,
    /// How long to wait for every event's outcome after publishing starts (e.g. "5m", "90s").
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Teams served by one pipeline at once, each generated from its own seed and written to
    /// its own portal of the sandbox; each portal must hold exactly its own team's records.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub teams: usize,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let options = DemoOptions {
        contacts: args.contacts,
        companies: args.companies,
        seed: args.seed,
        tier: args.hubspot_tier,
        timeout: args.timeout,
        teams: args.teams,
    };
    let report = demo::run(&options).await?;
    print!("{}", report.render());
    Ok(if report.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
