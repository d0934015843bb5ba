//! A service of many teams: one service file with the deployment's sections and a directory of
//! team files, one per team, each with `[team]`, the team's HubSpot connection and its rules.
//! Today's one-file configuration is a service of one team.
//!
//! ```text
//! hubsync.toml          [kafka] [registry] [hubspot] (base URL, timeouts, tier default)
//!                       [topics] [stages] [state] [admin] [teams] dir = "teams"
//! teams/acme.toml       [team] id = "acme", hubspot_portal_id = 4455667
//!                       [hubspot] token = { env = "ACME_HUBSPOT_TOKEN" }, tier = "professional"
//!                       [sync.contacts] ... [users] ... [activities] ... [campaigns.*] ...
//! ```
//!
//! Every team file is checked on its own: a bad file is refused with its problems (each naming
//! its field) and the other teams are served. Two files naming one team, or one portal, refuse
//! the second (in file name order). Files whose names start with `.` or do not end in `.toml`
//! are not read.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hubsync_processors::Rules;
use hubsync_processors::rules::{ActivityRules, CampaignRules, ListRule, SyncRules, UserRules};
use serde::Deserialize;

use super::sections::{
    AdminConfig, HubSpotConfig, KafkaConfig, RegistryConfig, Stages, StateConfig, TeamConfig, Tier,
    Topics,
};
use super::{Config, ConfigError, Problem, SecretSource, TeamStatus};

/// How often the team directory is read again when the service file does not say.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// `[teams]` of a service file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsSection {
    /// The directory of team files; relative to the service file's directory.
    pub dir: PathBuf,
    /// How often the directory is read again for added, changed and removed team files.
    #[serde(default = "default_reload_interval", with = "humantime_serde")]
    pub reload_interval: Duration,
}

fn default_reload_interval() -> Duration {
    DEFAULT_RELOAD_INTERVAL
}

/// The service file as written: the deployment's sections and where the teams are.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    teams: TeamsSection,
    #[serde(default)]
    kafka: KafkaConfig,
    #[serde(default)]
    registry: RegistryConfig,
    #[serde(default)]
    hubspot: HubSpotConfig,
    #[serde(default)]
    topics: Topics,
    #[serde(default)]
    stages: Stages,
    #[serde(default)]
    state: StateConfig,
    #[serde(default)]
    admin: AdminConfig,
}

/// `[hubspot]` of a team file: the team's own connection to its portal and its portal's limits;
/// what is not set comes from the service file's `[hubspot]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamHubSpot {
    /// The team's private-app token.
    token: Option<SecretSource>,
    /// The team's OAuth refresh token, for a connection through the service's public app.
    refresh_token: Option<SecretSource>,
    /// The team's private app's id, when it connects with a private-app token.
    app_id: Option<u64>,
    tier: Option<Tier>,
    requests_per_10s: Option<u32>,
    daily_limit: Option<u64>,
    search_per_second: Option<u32>,
    timezone: Option<String>,
}

/// A team file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamFile {
    team: TeamConfig,
    #[serde(default)]
    hubspot: TeamHubSpot,
    #[serde(default)]
    sync: SyncRules,
    #[serde(default)]
    users: UserRules,
    #[serde(default)]
    activities: ActivityRules,
    #[serde(default)]
    campaigns: BTreeMap<String, CampaignRules>,
    #[serde(default)]
    lists: Vec<ListRule>,
}

/// One team served, from its file (or from the one-file configuration).
#[derive(Debug, Clone)]
pub struct ServiceTeam {
    /// The team file; `None` for the team of a one-file configuration.
    pub path: Option<PathBuf>,
    /// The service's sections with the team's own.
    pub config: Config,
    /// The file's text, to tell a changed file from an unchanged one.
    pub text: String,
}

/// A team file that cannot be used, and why; its team keeps its previous settings, if it had any.
#[derive(Debug)]
pub struct RefusedTeam {
    pub path: PathBuf,
    /// The team the file names, when it could be read that far.
    pub team_id: Option<String>,
    pub error: ConfigError,
}

/// What `hubsync run` serves.
#[derive(Debug, Clone)]
pub struct Service {
    /// The deployment's sections (Kafka, registry, HubSpot's base URL, topics, stages, state,
    /// admin). In a service file its team is empty and it has no rules; in a one-file
    /// configuration it is that file's whole configuration.
    pub settings: Config,
    /// `[teams]`, for a service file.
    pub teams_section: Option<TeamsSection>,
    /// The team directory, resolved against the service file's directory.
    pub teams_dir: Option<PathBuf>,
}

impl Service {
    /// Reads a service file or a one-file configuration (a file with `[team]`), applies the
    /// environment overrides and checks the deployment's sections. Team files are read by
    /// [`Service::read_teams`].
    pub fn load(path: &Path) -> Result<Service, ConfigError> {
        Self::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// [`Service::load`] with environment variables looked up through `env`.
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Service, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let table: toml::Table = text.parse().unwrap_or_default();
        if !table.contains_key("teams") {
            let settings = Config::load_with_env(path, env)?;
            return Ok(Service {
                settings,
                teams_section: None,
                teams_dir: None,
            });
        }
        let file: ServiceFile = parse(&text)?;
        let dir = match path.parent() {
            Some(parent) if file.teams.dir.is_relative() => parent.join(&file.teams.dir),
            _ => file.teams.dir.clone(),
        };
        let mut settings = Config {
            team: TeamConfig {
                id: String::new(),
                hubspot_portal_id: 0,
                status: TeamStatus::Active,
            },
            kafka: file.kafka,
            registry: file.registry,
            hubspot: file.hubspot,
            topics: file.topics,
            stages: file.stages,
            state: file.state,
            admin: file.admin,
            rules: Rules::default(),
            env_overrides: Vec::new(),
        };
        settings.apply_env_overrides(env);
        let mut problems: Vec<Problem> = super::validate::problems(&settings)
            .into_iter()
            .filter(|p| !p.field.starts_with("team."))
            .collect();
        if file.teams.reload_interval.is_zero() {
            problems.push(Problem::new(
                "teams.reload_interval",
                "must be longer than zero, e.g. \"5s\"",
            ));
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { problems });
        }
        Ok(Service {
            settings,
            teams_section: Some(file.teams),
            teams_dir: Some(dir),
        })
    }

    /// One team's whole configuration, for the operator commands: the team a one-file
    /// configuration names (`team`, when given, must be it), or the team file of `team` in a
    /// service's directory (`team` is then required).
    pub fn team_config(path: &Path, team: Option<&str>) -> Result<Config, ConfigError> {
        let service = Service::load(path)?;
        let wrong = |message: String| ConfigError::Invalid {
            problems: vec![Problem::new("--team", message)],
        };
        if service.is_single_team() {
            return match team {
                Some(team) if team != service.settings.team.id => Err(wrong(format!(
                    "this file serves team {}, not {team}",
                    service.settings.team.id
                ))),
                _ => Ok(service.settings),
            };
        }
        let (teams, refused) = service.read_teams();
        let ids = || {
            let mut ids: Vec<&str> = teams.iter().map(|t| t.config.team.id.as_str()).collect();
            ids.sort_unstable();
            ids.join(", ")
        };
        let Some(team) = team else {
            return Err(wrong(format!(
                "a service file serves several teams: say which with --team ({})",
                ids()
            )));
        };
        if let Some(found) = teams.iter().find(|t| t.config.team.id == team) {
            return Ok(found.config.clone());
        }
        match refused
            .into_iter()
            .find(|r| r.team_id.as_deref() == Some(team))
        {
            Some(refused) => Err(refused.error),
            None => Err(wrong(format!(
                "no team file of the service names team {team} (its teams: {})",
                ids()
            ))),
        }
    }

    /// Whether this is a one-file configuration (a service of the one team it names).
    pub fn is_single_team(&self) -> bool {
        self.teams_dir.is_none()
    }

    /// The teams served, and the team files refused. A one-file configuration has its one team.
    /// A missing team directory is an empty one (teams may be added later).
    pub fn read_teams(&self) -> (Vec<ServiceTeam>, Vec<RefusedTeam>) {
        self.read_teams_ranked(|_, _| 0)
    }

    /// [`Service::read_teams`], where two files claim one team or one portal: the file of the
    /// lowest `rank` is taken (a team already served keeps its file against a newcomer), then
    /// file-name order decides.
    pub fn read_teams_ranked(
        &self,
        rank: impl Fn(&Path, &Config) -> u8,
    ) -> (Vec<ServiceTeam>, Vec<RefusedTeam>) {
        let Some(dir) = &self.teams_dir else {
            return (
                vec![ServiceTeam {
                    path: None,
                    config: self.settings.clone(),
                    text: String::new(),
                }],
                Vec::new(),
            );
        };
        let mut teams: Vec<ServiceTeam> = Vec::new();
        let mut refused = Vec::new();
        let mut ids: HashMap<String, PathBuf> = HashMap::new();
        let mut portals: HashMap<u64, (String, PathBuf)> = HashMap::new();
        let mut read = Vec::new();
        for path in team_files(dir) {
            let team = std::fs::read_to_string(&path)
                .map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })
                .and_then(|text| self.team_from_str(&text).map(|config| (config, text)));
            let (config, text) = match team {
                Ok(team) => team,
                Err(error) => {
                    let team_id = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|text| team_id_of(&text));
                    refused.push(RefusedTeam {
                        path,
                        team_id,
                        error,
                    });
                    continue;
                }
            };
            read.push((path, config, text));
        }
        // A stable sort: file-name order within a rank.
        read.sort_by_key(|(path, config, _)| rank(path, config));
        for (path, config, text) in read {
            let id = config.team.id.clone();
            let portal = config.team.hubspot_portal_id;
            let clash = if let Some(first) = ids.get(&id) {
                Some(Problem::new(
                    "team.id",
                    format!(
                        "{id} is the team of {} already: one file per team",
                        first.display()
                    ),
                ))
            } else {
                portals.get(&portal).map(|(other, first)| {
                    Problem::new(
                        "team.hubspot_portal_id",
                        format!(
                            "portal {portal} is team {other}'s already ({}): one team per portal",
                            first.display()
                        ),
                    )
                })
            };
            if let Some(problem) = clash {
                refused.push(RefusedTeam {
                    path,
                    team_id: Some(id),
                    error: ConfigError::Invalid {
                        problems: vec![problem],
                    },
                });
                continue;
            }
            ids.insert(id.clone(), path.clone());
            portals.insert(portal, (id, path.clone()));
            teams.push(ServiceTeam {
                path: Some(path),
                config,
                text,
            });
        }
        (teams, refused)
    }

    /// A team file's text with the service's sections: parsed and checked, every problem named.
    pub fn team_from_str(&self, text: &str) -> Result<Config, ConfigError> {
        let file: TeamFile = parse(text)?;
        let mut config = self.settings.clone();
        config.team = file.team;
        let hubspot = &mut config.hubspot;
        if let Some(token) = file.hubspot.token {
            hubspot.token = token;
        }
        if let Some(refresh) = file.hubspot.refresh_token {
            hubspot.refresh_token = Some(refresh);
        }
        if let Some(tier) = file.hubspot.tier {
            hubspot.tier = tier;
        }
        if let Some(zone) = file.hubspot.timezone {
            hubspot.timezone = zone;
        }
        hubspot.app_id = file.hubspot.app_id.or(hubspot.app_id);
        hubspot.requests_per_10s = file.hubspot.requests_per_10s.or(hubspot.requests_per_10s);
        hubspot.daily_limit = file.hubspot.daily_limit.or(hubspot.daily_limit);
        hubspot.search_per_second = file.hubspot.search_per_second.or(hubspot.search_per_second);
        config.rules = Rules {
            sync: file.sync,
            users: file.users,
            activities: file.activities,
            campaigns: file.campaigns,
            lists: file.lists,
        };
        config.validate()?;
        Ok(config)
    }
}

/// The team files of a directory, in name order.
pub fn team_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && path.extension().is_some_and(|e| e == "toml")
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// `[team] id` of a file that may not be valid otherwise.
fn team_id_of(text: &str) -> Option<String> {
    let table: toml::Table = text.parse().ok()?;
    Some(table.get("team")?.get("id")?.as_str()?.to_string())
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|error| ConfigError::from_toml("", &error, text))?;
    serde_path_to_error::deserialize(deserializer)
        .map_err(|error| ConfigError::from_toml(&error.path().to_string(), error.inner(), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "[teams]\ndir = \"teams\"\n\n[kafka]\nbrokers = \"127.0.0.1:9092\"\n";

    fn team(id: &str, portal: u64) -> String {
        format!(
            "[team]\nid = \"{id}\"\nhubspot_portal_id = {portal}\n\n[hubspot]\ntoken = {{ env = \"{}_TOKEN\" }}\ntier = \"professional\"\n\n[users]\ndefault_owner = \"1\"\n",
            id.to_uppercase()
        )
    }

    fn service(files: &[(&str, &str)]) -> (tempfile::TempDir, Service) {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("hubsync.toml"), SERVICE).expect("service file");
        std::fs::create_dir(dir.path().join("teams")).expect("teams dir");
        for (name, text) in files {
            std::fs::write(dir.path().join("teams").join(name), text).expect("team file");
        }
        let service =
            Service::load_with_env(&dir.path().join("hubsync.toml"), &|_| None).expect("loads");
        (dir, service)
    }

    #[test]
    fn every_team_file_is_a_team_with_the_service_s_sections() {
        let (_dir, service) = service(&[
            ("acme.toml", &team("acme", 11)),
            ("globex.toml", &team("globex", 12)),
            (".hidden.toml", &team("hidden", 13)),
            ("notes.txt", "not a team"),
        ]);
        assert!(!service.is_single_team());
        let (teams, refused) = service.read_teams();
        assert!(refused.is_empty(), "{refused:?}");
        let ids: Vec<&str> = teams.iter().map(|t| t.config.team.id.as_str()).collect();
        assert_eq!(ids, ["acme", "globex"]);
        let acme = &teams[0].config;
        assert_eq!(acme.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(acme.hubspot.tier, Tier::Professional);
        assert_eq!(
            acme.hubspot.token,
            SecretSource::Env("ACME_TOKEN".to_string())
        );
        assert_eq!(acme.rules.users.default_owner.as_deref(), Some("1"));
    }

    #[test]
    fn where_two_files_claim_one_team_the_better_ranked_one_is_taken() {
        let (_dir, service) = service(&[
            ("0-newcomer.toml", &team("acme", 12)),
            ("acme.toml", &team("acme", 11)),
            ("globex.toml", &team("globex", 13)),
        ]);
        // By file name, the newcomer comes first.
        let (teams, _) = service.read_teams();
        assert_eq!(teams[0].config.team.hubspot_portal_id, 12);
        // Ranked first, acme's own file is taken and the newcomer refused, naming the field.
        let (teams, refused) =
            service.read_teams_ranked(|path, _| u8::from(!path.ends_with("acme.toml")));
        let taken: Vec<(&str, u64)> = teams
            .iter()
            .map(|t| (t.config.team.id.as_str(), t.config.team.hubspot_portal_id))
            .collect();
        assert_eq!(taken, [("acme", 11), ("globex", 13)]);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].path.ends_with("0-newcomer.toml"));
        assert!(
            refused[0].error.to_string().contains("team.id"),
            "{}",
            refused[0].error
        );
    }

    #[test]
    fn a_bad_team_file_is_refused_naming_the_field_and_the_others_are_served() {
        let bad = team("initech", 13).replace("tier = \"professional\"", "tier = \"gold\"");
        let (_dir, service) = service(&[
            ("acme.toml", &team("acme", 11)),
            ("initech.toml", &bad),
            ("twice.toml", &team("acme", 14)),
            ("shared.toml", &team("umbrella", 11)),
        ]);
        let (teams, refused) = service.read_teams();
        let ids: Vec<&str> = teams.iter().map(|t| t.config.team.id.as_str()).collect();
        assert_eq!(ids, ["acme"]);
        let field = |name: &str| -> (Option<String>, String) {
            let refused = refused
                .iter()
                .find(|r| r.path.ends_with(name))
                .unwrap_or_else(|| panic!("{name} refused: {refused:?}"));
            (
                refused.team_id.clone(),
                refused.error.problems()[0].field.clone(),
            )
        };
        assert_eq!(
            field("initech.toml"),
            (Some("initech".into()), "hubspot.tier".into())
        );
        assert_eq!(field("twice.toml"), (Some("acme".into()), "team.id".into()));
        assert_eq!(
            field("shared.toml"),
            (Some("umbrella".into()), "team.hubspot_portal_id".into())
        );
    }

    #[test]
    fn a_team_file_names_the_lists_its_team_follows() {
        let (_dir, service) = service(&[]);
        let config = service
            .team_from_str(&format!(
                "{}\n[[lists]]\nlist_id = \"42\"\non_leave = \"ignore\"\n",
                team("acme", 1)
            ))
            .expect("a team following a list");
        assert_eq!(config.rules.lists.len(), 1);
        assert_eq!(config.rules.lists[0].list_id, "42");
        let error = service
            .team_from_str(&format!(
                "{}\n[[lists]]\nlist_id = \"42\"\n[[lists]]\nlist_id = \" 42\"\n",
                team("acme", 1)
            ))
            .expect_err("one list twice");
        assert_eq!(error.problems()[0].field, "lists[1].list_id");
    }

    #[test]
    fn a_team_file_holds_only_what_is_a_team_s() {
        let (_dir, service) = service(&[]);
        let error = service
            .team_from_str(&format!(
                "{}\n[kafka]\nbrokers = \"x:1\"\n",
                team("acme", 1)
            ))
            .expect_err("kafka is the service's");
        assert!(error.to_string().contains("kafka"), "{error}");
        let error = service
            .team_from_str("[hubspot]\ntoken = { env = \"T\" }\n")
            .expect_err("no [team]");
        assert_eq!(error.problems()[0].field, "team");
    }

    #[test]
    fn an_operator_command_takes_one_team_of_a_service() {
        let (dir, _) = service(&[
            ("acme.toml", &team("acme", 11)),
            ("globex.toml", &team("globex", 12)),
        ]);
        let path = dir.path().join("hubsync.toml");
        let acme = Service::team_config(&path, Some("acme")).expect("acme");
        assert_eq!(acme.team.hubspot_portal_id, 11);
        let which = Service::team_config(&path, None).expect_err("which team?");
        assert_eq!(which.problems()[0].field, "--team");
        assert!(which.to_string().contains("acme, globex"), "{which}");
        let none = Service::team_config(&path, Some("initech")).expect_err("no such team");
        assert!(none.to_string().contains("initech"), "{none}");
        let single = dir.path().join("one.toml");
        std::fs::write(&single, team("acme", 11)).expect("file");
        assert!(Service::team_config(&single, None).is_ok());
        assert!(Service::team_config(&single, Some("acme")).is_ok());
        assert!(Service::team_config(&single, Some("globex")).is_err());
    }

    #[test]
    fn a_one_file_configuration_is_a_service_of_its_team() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("hubsync.toml");
        std::fs::write(&path, team("acme", 1)).expect("file");
        let service = Service::load_with_env(&path, &|_| None).expect("loads");
        assert!(service.is_single_team());
        let (teams, refused) = service.read_teams();
        assert!(refused.is_empty());
        assert_eq!(teams[0].config.team.id, "acme");
    }

    #[test]
    fn a_service_file_with_rules_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("hubsync.toml");
        std::fs::write(
            &path,
            format!("{SERVICE}\n[users]\ndefault_owner = \"1\"\n"),
        )
        .expect("file");
        let error = Service::load_with_env(&path, &|_| None).expect_err("rules are teams'");
        assert!(error.to_string().contains("users"), "{error}");
    }
}
