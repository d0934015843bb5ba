//! The HubSpot checks: the token works, it belongs to the configured portal, the rules fit the
//! portal's properties and every configured owner exists. Each later check needs the earlier
//! ones to pass; one that cannot run is skipped, saying why.

use std::time::Duration;

use crate::catalog;
use crate::config::{Config, Secrets};
use crate::hubspot::{Error, ErrorClass, HubSpotClient, RetryParams};

use super::{
    Finding, HUBSPOT_PORTAL, HUBSPOT_TOKEN, OWNERS, PROPERTIES, Problem, ProblemKind, Status,
    owners, properties,
};

/// A check waits through a few retries only: a deploy wants an answer, not the sink's patience.
const RETRY: RetryParams = RetryParams {
    base: Duration::from_millis(250),
    max: Duration::from_secs(2),
    max_attempts: 3,
};

/// A client for short-lived commands: the configured base URL, timeout and budget, few retries.
pub fn client(
    config: &Config,
    secrets: &Secrets,
) -> Result<HubSpotClient, crate::hubspot::BuildError> {
    let mut settings = config.hubspot.client_settings();
    settings.retry = RETRY;
    HubSpotClient::new(settings, secrets.hubspot_token.clone())
}

/// The four HubSpot checks, in order: token, portal, properties, owners.
pub async fn check(config: &Config, secrets: &Secrets) -> Vec<(&'static str, Finding)> {
    let client = match client(config, secrets) {
        Ok(client) => client,
        Err(error) => {
            let problem = Problem::new(
                HUBSPOT_TOKEN,
                ProblemKind::ConfigInvalid,
                "hubspot.base_url",
                error.to_string(),
            );
            return with_rest_skipped(
                Finding::problem("no HubSpot client", problem),
                "needs a HubSpot client",
            );
        }
    };
    let account = match client.account_details().await {
        Ok(account) => account,
        Err(error) => {
            let finding = failed(HUBSPOT_TOKEN, "reading the account details", &error);
            let why = if finding.status == Status::Unreachable {
                "HubSpot did not answer"
            } else {
                "needs a token HubSpot accepts"
            };
            return with_rest_skipped(finding, why);
        }
    };
    let token = Finding::ok(format!(
        "accepted by {} (portal {})",
        config.hubspot.base_url, account.portal_id
    ));
    let expected = config.team.hubspot_portal_id;
    if account.portal_id != expected {
        let problem = Problem::new(
            HUBSPOT_PORTAL,
            ProblemKind::WrongPortal,
            "team.hubspot_portal_id",
            format!(
                "hubspot.token belongs to portal {}, but team.hubspot_portal_id is {expected}: \
                 one portal per team; use a token of portal {expected} or correct \
                 team.hubspot_portal_id",
                account.portal_id
            ),
        );
        let skipped = "the token belongs to another portal";
        return vec![
            (HUBSPOT_TOKEN, token),
            (
                HUBSPOT_PORTAL,
                Finding::problem(format!("token of portal {}", account.portal_id), problem),
            ),
            (PROPERTIES, Finding::skipped(skipped)),
            (OWNERS, Finding::skipped(skipped)),
        ];
    }
    let (properties, owners) = tokio::join!(
        check_properties(config, &client),
        check_owners(config, &client)
    );
    vec![
        (HUBSPOT_TOKEN, token),
        (HUBSPOT_PORTAL, Finding::ok(format!("portal {expected}"))),
        (PROPERTIES, properties),
        (OWNERS, owners),
    ]
}

/// The properties of contacts, companies and deals against the rules.
async fn check_properties(config: &Config, client: &HubSpotClient) -> Finding {
    let catalog = match catalog::load(client).await {
        Ok(catalog) => catalog,
        Err(error) => return failed(PROPERTIES, "reading the property definitions", &error),
    };
    let problems = properties::check(&config.rules, &catalog);
    let sync = &config.rules.sync;
    Finding::from_problems(
        format!(
            "{} contact and {} company mappings, {} default values, identity by {} and {}",
            sync.contacts.mapping.len(),
            sync.companies.mapping.len(),
            sync.contacts.defaults.len()
                + sync.companies.defaults.len()
                + sync.deals.defaults.len(),
            sync.contacts.id_property,
            sync.companies.id_property,
        ),
        problems,
    )
}

/// Every owner id of `[users]` against HubSpot's active owners (all pages).
async fn check_owners(config: &Config, client: &HubSpotClient) -> Finding {
    let listed = match client.owners(None).await {
        Ok(listed) => listed,
        Err(error) => return failed(OWNERS, "listing the owners", &error),
    };
    let users = &config.rules.users;
    let problems = owners::check(users, &listed);
    let configured = users.mapping.len() + usize::from(users.default_owner.is_some());
    Finding::from_problems(
        format!(
            "{configured} configured owner ids against {} active HubSpot owners",
            listed.len()
        ),
        problems,
    )
}

/// `first` followed by the checks after the token, each skipped for `why`.
fn with_rest_skipped(first: Finding, why: &str) -> Vec<(&'static str, Finding)> {
    vec![
        (HUBSPOT_TOKEN, first),
        (HUBSPOT_PORTAL, Finding::skipped(why)),
        (PROPERTIES, Finding::skipped(why)),
        (OWNERS, Finding::skipped(why)),
    ]
}

/// A failed HubSpot call as a finding: no answer (or only 5xx and 429s) is `unreachable`, a
/// refused token a `token_rejected` problem, anything else a `hubspot_refused` problem.
fn failed(check: &'static str, doing: &str, error: &Error) -> Finding {
    let Some(failure) = error.failure() else {
        let problem = Problem::new(
            check,
            ProblemKind::HubSpotRefused,
            "hubspot.base_url",
            format!("{doing}: {error}"),
        );
        return Finding::problem(format!("{doing} was refused"), problem);
    };
    match &failure.class {
        ErrorClass::Retryable { .. } | ErrorClass::RateLimited { .. } => {
            Finding::unreachable(format!("{doing}: {failure}"))
        }
        ErrorClass::Auth { missing_scopes } => {
            let mut message = format!("HubSpot refused the token {doing}: {}", failure.message);
            if !missing_scopes.is_empty() {
                message.push_str(&format!(
                    "; the private app lacks the scopes {}",
                    missing_scopes.join(", ")
                ));
            }
            message.push_str(
                "; check that hubspot.token names the current token of the team's private app",
            );
            let status = failure
                .status
                .map_or_else(|| "refused".to_owned(), |s| format!("HTTP {s}"));
            Finding::problem(
                format!("{status} {}", failure.category),
                Problem::new(check, ProblemKind::TokenRejected, "hubspot.token", message),
            )
        }
        ErrorClass::Data { .. } | ErrorClass::Conflict { .. } | ErrorClass::NotFound => {
            let problem = Problem::new(
                check,
                ProblemKind::HubSpotRefused,
                "hubspot.base_url",
                format!(
                    "{doing}: {failure}; check that hubspot.base_url points at HubSpot's API \
                     (https://api.hubapi.com)"
                ),
            );
            Finding::problem(format!("{doing} was refused"), problem)
        }
    }
}
