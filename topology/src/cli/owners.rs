//! `hubsync owners automap --config FILE --users FILE [--json]`: proposes the `[users]` mapping
//! by matching upstream users to HubSpot owners on identical email addresses (trimmed, case
//! ignored), and prints a `[[users.mapping]]` snippet ready to paste into the config.
//!
//! ```text
//! users.csv: usr_ada,Ada.Lovelace@Example.com   HubSpot owner 70000001 ada.lovelace@example.com
//!   -> matched usr_ada -> 70000001
//!      [[users.mapping]]
//!      user = "usr_ada"
//!      owner = "70000001"
//! ```
//!
//! An email that several owners share is reported as ambiguous and never proposed, so no user is
//! proposed to two owners. Users the config maps already are compared with the proposal and left
//! out of the snippet. Exit status: 0 when the proposal is printed, 2 for an unusable config or
//! users file (each problem named), 1 when HubSpot cannot be read.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Service;
use crate::ops::check as preflight;
use crate::ops::owners::{Configured, Proposal, propose, read_users};

/// Exit status of an unusable config or users file.
const INVALID: u8 = 2;

#[derive(Debug, clap::Subcommand)]
pub enum OwnersCommand {
    /// Propose the [users] mapping by matching upstream users to HubSpot owners by email.
    #[command(
        after_help = "The users file is CSV: user_id,email[,name], one user a line, with or without a \
                      user_id,email[,name] header; fields may be quoted.\n\
                      With --json, stdout is one JSON document with matched, unmatched_users, ambiguous, \
                      owners_without_user, configured and snippet.\n\
                      Exit status: 0 proposal printed, 2 unusable config or users file, 1 HubSpot unreachable."
    )]
    Automap(AutomapArgs),
}

#[derive(Debug, clap::Args)]
pub struct AutomapArgs {
    /// The configuration file (TOML): HubSpot access and the current [users] mapping.
    #[arg(long)]
    pub config: PathBuf,
    /// The team, for a service file of several (a one-file configuration names its own).
    #[arg(long)]
    pub team: Option<String>,
    /// The upstream users, as CSV: user_id,email[,name].
    #[arg(long)]
    pub users: PathBuf,
    /// Print one JSON document on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: OwnersCommand) -> anyhow::Result<ExitCode> {
    match command {
        OwnersCommand::Automap(args) => automap(args).await,
    }
}

async fn automap(args: AutomapArgs) -> anyhow::Result<ExitCode> {
    let loaded = Service::team_config(&args.config, args.team.as_deref()).and_then(|config| {
        let secrets = config.resolve_secrets()?;
        Ok((config, secrets))
    });
    let (config, secrets) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{}: {error}", args.config.display());
            return Ok(ExitCode::from(INVALID));
        }
    };
    let users = match read_users(&args.users) {
        Ok(users) => users,
        Err(problems) => {
            for problem in problems {
                eprintln!("{problem}");
            }
            return Ok(ExitCode::from(INVALID));
        }
    };
    let client =
        preflight::hubspot::client(&config, &secrets).context("setting up the HubSpot client")?;
    let owners = client
        .owners(None)
        .await
        .context("reading HubSpot's owners")?;
    let proposal = propose(&users, &owners, &config.rules.users);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &proposal)?;
        writeln!(out)?;
    } else {
        print(&mut out, &proposal, &args.users)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print(out: &mut impl Write, proposal: &Proposal, users_file: &Path) -> std::io::Result<()> {
    writeln!(
        out,
        "{} HubSpot owners, {} upstream users from {}",
        proposal.owners_read,
        proposal.users_read,
        users_file.display()
    )?;
    section(
        out,
        "matched by email",
        &["user", "email", "owner", "owner name"],
        proposal.matched.iter().map(|m| {
            vec![
                m.user.clone(),
                m.email.clone(),
                m.owner.clone(),
                m.owner_name.clone(),
            ]
        }),
    )?;
    section(
        out,
        "upstream users without an owner",
        &["user", "email", "name", "reason"],
        proposal.unmatched_users.iter().map(|u| {
            vec![
                u.user.clone(),
                u.email.clone(),
                u.name.clone().unwrap_or_default(),
                u.reason.to_owned(),
            ]
        }),
    )?;
    section(
        out,
        "ambiguous: several owners have the email, none proposed",
        &["user", "email", "owners"],
        proposal
            .ambiguous
            .iter()
            .map(|a| vec![a.user.clone(), a.email.clone(), a.owners.join(", ")]),
    )?;
    section(
        out,
        "HubSpot owners without an upstream user",
        &["owner", "email", "name"],
        proposal.owners_without_user.iter().map(|o| {
            vec![
                o.owner.clone(),
                o.email.clone().unwrap_or_default(),
                o.name.clone(),
            ]
        }),
    )?;
    section(
        out,
        "already mapped in the config",
        &["user", "owner", "verdict"],
        proposal
            .configured
            .iter()
            .map(|c| vec![c.user.clone(), c.owner.clone(), verdict(c)]),
    )?;
    writeln!(out)?;
    if proposal.snippet.is_empty() {
        writeln!(out, "nothing to add to [users]")?;
    } else {
        writeln!(out, "add to the config:")?;
        write!(out, "{}", proposal.snippet)?;
    }
    Ok(())
}

fn verdict(entry: &Configured) -> String {
    let mut verdict = match (entry.agrees, &entry.proposed) {
        (Some(true), _) => "agrees with the email match".to_owned(),
        (_, Some(proposed)) => format!("differs: the email match is owner {proposed}"),
        _ if !entry.in_users_file => "not in the users file".to_owned(),
        _ => "no email match to compare".to_owned(),
    };
    if !entry.owner_active {
        verdict.push_str("; the owner is not an active HubSpot owner");
    }
    verdict
}

/// A titled table; `(none)` when it has no rows.
fn section(
    out: &mut impl Write,
    title: &str,
    headers: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = rows.collect();
    writeln!(out, "\n{title} ({})", rows.len())?;
    if rows.is_empty() {
        return writeln!(out, "  (none)");
    }
    let mut widths: BTreeMap<usize, usize> = BTreeMap::new();
    for row in std::iter::once(headers.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())
        .chain(rows.iter().cloned())
    {
        for (column, cell) in row.iter().enumerate() {
            let width = widths.entry(column).or_default();
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::from(" ");
        for (column, cell) in cells.iter().enumerate() {
            text.push(' ');
            if column == last {
                text.push_str(cell);
            } else {
                let width = widths.get(&column).copied().unwrap_or(0);
                text.push_str(&format!("{cell:width$} "));
            }
        }
        text
    };
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    writeln!(out, "{}", line(&header))?;
    for row in &rows {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}
