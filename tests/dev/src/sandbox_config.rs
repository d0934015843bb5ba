//! The config `hubsync-dev sandbox` prints: everything pointed at the local sandbox, with a small set
//! of rules to start from.

/// The team the sandbox configuration serves: events of any other team are left alone, so
/// whatever publishes to the sandbox for this configuration names this team.
pub const TEAM_ID: &str = "sandbox";

/// A complete, valid config for the sandbox's broker, registry and HubSpot emulator. The token is
/// read from `token_env`; state goes to `./hubsync-state`.
pub fn render_sandbox_config(
    brokers: &str,
    registry_url: &str,
    hubspot_url: &str,
    portal_id: u64,
    token_env: &str,
) -> String {
    let brokers = quote(brokers);
    let registry_url = quote(registry_url);
    let hubspot_url = quote(hubspot_url);
    let token_env = quote(token_env);
    format!(
        r#"# hubsync config for the local sandbox. Save it as hubsync.toml and run
#   hubsync config check hubsync.toml
# deploy/examples/hubsync.toml documents every option.

[team]
id = "{TEAM_ID}"
hubspot_portal_id = {portal_id}

[kafka]
brokers = {brokers}
group_id_prefix = "hubsync-sandbox"

[registry]
url = {registry_url}

[hubspot]
base_url = {hubspot_url}
token = {{ env = {token_env} }}
tier = "professional"

[state]
dir = "hubsync-state"

{RULES}"#
    )
}

/// The rules the sandbox configuration starts from (the `[sync]` and `[activities]` sections).
pub const RULES: &str = r#"[sync.contacts]
create = { enabled = true, trigger = "on_create_or_update" }
mandatory = ["email"]
defaults = { lifecyclestage = "lead" }
owner_strategy = "if_empty"

[[sync.contacts.mapping]]
source = "email"
property = "email"

[[sync.contacts.mapping]]
source = "first_name"
property = "firstname"

[[sync.contacts.mapping]]
source = "last_name"
property = "lastname"

[[sync.contacts.mapping]]
source = "job_title"
property = "jobtitle"
direction = "both"

[[sync.contacts.mapping]]
source = "phone"
property = "phone"
fill_if_empty = true

[[sync.companies.mapping]]
source = "name"
property = "name"

[[sync.companies.mapping]]
source = "domain"
property = "domain"

[sync.deals]
pipeline = "default"
stage = "appointmentscheduled"

[activities]
associate_company = true
associate_open_deal = true
email_opened = { enabled = true, store_as = "note" }
"#;

/// A service file for the sandbox: the deployment's sections, and team files in `teams/` beside
/// it ([`render_sandbox_team`] writes one).
pub fn render_sandbox_service(brokers: &str, registry_url: &str, hubspot_url: &str) -> String {
    let brokers = quote(brokers);
    let registry_url = quote(registry_url);
    let hubspot_url = quote(hubspot_url);
    format!(
        r#"# hubsync service file for the local sandbox: one file per team in teams/ beside it.
#   hubsync config check hubsync.toml

[teams]
dir = "teams"

[kafka]
brokers = {brokers}
group_id_prefix = "hubsync-sandbox"

[registry]
url = {registry_url}

[hubspot]
base_url = {hubspot_url}
tier = "professional"

[state]
dir = "hubsync-state"
"#
    )
}

/// A team file for the sandbox service: the team, its portal, the variable its token is read
/// from, and the sandbox's rules.
pub fn render_sandbox_team(team_id: &str, portal_id: u64, token_env: &str) -> String {
    let team_id = quote(team_id);
    let token_env = quote(token_env);
    format!(
        r#"[team]
id = {team_id}
hubspot_portal_id = {portal_id}

[hubspot]
token = {{ env = {token_env} }}

{RULES}"#
    )
}

/// A TOML basic string holding `value`.
fn quote(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync::config::Config;

    #[test]
    fn the_sandbox_config_is_complete_and_valid() {
        let text = render_sandbox_config(
            "127.0.0.1:39092",
            "http://127.0.0.1:38081",
            "http://127.0.0.1:38080",
            4_455_667,
            "SANDBOX_TOKEN",
        );
        let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.team.hubspot_portal_id, 4_455_667);
        assert_eq!(config.kafka.brokers, "127.0.0.1:39092");
        assert_eq!(config.hubspot.base_url, "http://127.0.0.1:38080");
        let secrets = config
            .resolve_secrets_with(&|name| (name == "SANDBOX_TOKEN").then(|| "pat-sandbox".into()))
            .expect("token from the named variable");
        assert_eq!(secrets.hubspot_token.expose(), "pat-sandbox");
        assert_eq!(config.rules.sync.contacts.mapping.len(), 5);
    }

    #[test]
    fn the_sandbox_service_and_its_team_files_are_valid() {
        let dir = tempfile::tempdir().expect("dir");
        let service =
            render_sandbox_service("127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3");
        std::fs::write(dir.path().join("hubsync.toml"), service).expect("service");
        std::fs::create_dir(dir.path().join("teams")).expect("teams");
        for (team, portal) in [("acme", 11), ("globex", 12)] {
            std::fs::write(
                dir.path().join("teams").join(format!("{team}.toml")),
                render_sandbox_team(team, portal, "T"),
            )
            .expect("team");
        }
        let service = hubsync::config::Service::load(&dir.path().join("hubsync.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let (teams, refused) = service.read_teams();
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(teams.len(), 2);
        assert_eq!(teams[1].config.team.hubspot_portal_id, 12);
        assert_eq!(teams[1].config.rules.sync.contacts.mapping.len(), 5);
    }

    #[test]
    fn values_are_quoted_as_toml() {
        let text = render_sandbox_config("a\"b:1", "http://x", "http://y", 1, "T");
        let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.kafka.brokers, "a\"b:1");
    }
}
