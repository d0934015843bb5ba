//! The one configuration file: the team's integration rules plus Kafka, schema registry, HubSpot,
//! topics and stage tuning.
//!
//! - [`Config::from_toml_str`] parses and validates text: no environment, no secrets.
//! - [`Config::load`] reads a file, applies the environment overrides (`HUBSYNC_KAFKA_BROKERS`,
//!   `HUBSYNC_REGISTRY_URL`, `HUBSYNC_HUBSPOT_URL`) and validates.
//! - [`Config::resolve_secrets`] reads the secrets, a separate step so a config can be checked
//!   where its secrets are not available.
//!
//! Every section refuses unknown keys, durations are written as `"250ms"` or `"30s"`, defaults
//! live in `defaults.rs` (the rules' in `hubsync_processors::rules`), and a [`ConfigError`] lists
//! every problem, each naming its field. `deploy/examples/hubsync.toml` documents every option.

mod bytesize;
mod defaults;
mod error;
mod secret;
mod sections;
mod service;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use hubsync_processors::Rules;
use hubsync_processors::rules::{ActivityRules, CampaignRules, ListRule, SyncRules, UserRules};
use serde::{Deserialize, Serialize};

pub use bytesize::ByteSize;
pub use defaults::HUBSPOT_TOKEN_ENV;
pub use error::{ConfigError, Problem};
pub use secret::{OAuthSecrets, Secret, SecretSource, Secrets};
pub use sections::{
    AdminConfig, Budget, HubSpotConfig, InboundStage, KafkaConfig, KafkaProperty, ProcessStage,
    RegistryConfig, SinkStage, Stages, StateConfig, TeamConfig, TeamStatus, Tier, Topics,
};
pub use service::{
    DEFAULT_RELOAD_INTERVAL, RefusedTeam, Service, ServiceTeam, TeamsSection, team_files,
};
pub use validate::{MAX_BATCH_SIZE, MAX_LINGER, MAX_SEARCH_PAGE};

/// Environment variables that replace a setting of the file, so one file serves several
/// environments.
pub const ENV_OVERRIDES: [EnvOverride; 4] = [
    EnvOverride {
        field: "kafka.brokers",
        variable: "HUBSYNC_KAFKA_BROKERS",
    },
    EnvOverride {
        field: "kafka.instance_id",
        variable: "HUBSYNC_INSTANCE_ID",
    },
    EnvOverride {
        field: "registry.url",
        variable: "HUBSYNC_REGISTRY_URL",
    },
    EnvOverride {
        field: "hubspot.base_url",
        variable: "HUBSYNC_HUBSPOT_URL",
    },
];

/// A setting replaced by an environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EnvOverride {
    pub field: &'static str,
    pub variable: &'static str,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub team: TeamConfig,
    pub kafka: KafkaConfig,
    pub registry: RegistryConfig,
    pub hubspot: HubSpotConfig,
    pub topics: Topics,
    pub stages: Stages,
    pub state: StateConfig,
    pub admin: AdminConfig,
    /// The `[sync]`, `[users]`, `[activities]`, `[campaigns]` and `[[lists]]` sections, as the
    /// processors take them.
    pub rules: Rules,
    /// The environment overrides [`Config::load`] applied.
    pub env_overrides: Vec<EnvOverride>,
}

/// The file as written; the rules' sections sit at the top level next to the others.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    team: TeamConfig,
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

impl From<ConfigFile> for Config {
    fn from(file: ConfigFile) -> Self {
        Self {
            team: file.team,
            kafka: file.kafka,
            registry: file.registry,
            hubspot: file.hubspot,
            topics: file.topics,
            stages: file.stages,
            state: file.state,
            admin: file.admin,
            rules: Rules {
                sync: file.sync,
                users: file.users,
                activities: file.activities,
                campaigns: file.campaigns,
                lists: file.lists,
            },
            env_overrides: Vec::new(),
        }
    }
}

impl Config {
    /// Parses and validates a config; the environment is not consulted and secrets are not read.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config = Self::parse(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a config file, applies the environment overrides and validates.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// [`Config::load`] with environment variables looked up through `env`.
    pub fn load_with_env(
        path: impl AsRef<Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text)?;
        config.apply_env_overrides(env);
        config.validate()?;
        Ok(config)
    }

    /// Every problem of this config, or `Ok`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = validate::problems(self);
        if problems.is_empty() {
            return Ok(());
        }
        for problem in &mut problems {
            if let Some(applied) = self.env_overrides.iter().find(|o| o.field == problem.field) {
                problem.message.push_str(&format!(
                    " (the value comes from environment variable {})",
                    applied.variable
                ));
            }
        }
        Err(ConfigError::Invalid { problems })
    }

    /// Settings that are valid but probably not what was meant.
    pub fn warnings(&self) -> Vec<Problem> {
        validate::warnings(self)
    }

    /// Reads every secret from the environment and the file system.
    pub fn resolve_secrets(&self) -> Result<Secrets, ConfigError> {
        self.resolve_secrets_with(&|name| std::env::var(name).ok())
    }

    /// The secrets of the deployment's sections only (registry, Kafka), for a service of many
    /// teams: each team's token is its own file's. The token in the result is empty.
    pub fn resolve_deployment_secrets(&self) -> Result<Secrets, ConfigError> {
        self.resolve(&|name| std::env::var(name).ok(), false)
    }

    /// [`Config::resolve_secrets`] with environment variables looked up through `env`. Every
    /// secret that cannot be read is reported, naming its field and the variable or file.
    pub fn resolve_secrets_with(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secrets, ConfigError> {
        self.resolve(env, true)
    }

    fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        with_token: bool,
    ) -> Result<Secrets, ConfigError> {
        let mut problems = Vec::new();
        let oauth = match (&self.hubspot.refresh_token, &self.hubspot.client_secret) {
            (Some(refresh), Some(secret)) if with_token => {
                let refresh_token = refresh
                    .resolve_with("hubspot.refresh_token", env)
                    .map_err(|p| problems.push(p))
                    .ok();
                let client_secret = secret
                    .resolve_with("hubspot.client_secret", env)
                    .map_err(|p| problems.push(p))
                    .ok();
                refresh_token
                    .zip(client_secret)
                    .map(|(refresh_token, client_secret)| OAuthSecrets {
                        client_secret,
                        refresh_token,
                    })
            }
            _ => None,
        };
        let hubspot_token = if with_token && self.hubspot.refresh_token.is_none() {
            self.hubspot
                .token
                .resolve_with("hubspot.token", env)
                .map_err(|p| problems.push(p))
                .ok()
        } else {
            Some(Secret::new(""))
        };
        let registry_password = self.registry.password.as_ref().and_then(|source| {
            source
                .resolve_with("registry.password", env)
                .map_err(|p| problems.push(p))
                .ok()
        });
        let mut kafka_properties = Vec::new();
        for (key, value) in &self.kafka.properties {
            if let KafkaProperty::Secret(source) = value {
                let field = format!(
                    "kafka.properties.{}",
                    hubsync_processors::rules::toml_key(key)
                );
                match source.resolve_with(&field, env) {
                    Ok(secret) => kafka_properties.push((key.clone(), secret)),
                    Err(problem) => problems.push(problem),
                }
            }
        }
        match hubspot_token {
            Some(hubspot_token) if problems.is_empty() => Ok(Secrets {
                hubspot_token,
                oauth,
                registry_password,
                kafka_properties,
            }),
            _ => Err(ConfigError::Secrets { problems }),
        }
    }

    /// The consumer group of one stage: `<group_id_prefix>.<team id>.<stage>` for a one-file
    /// configuration, `<group_id_prefix>.<stage>` for a service of many teams (its settings
    /// name no team).
    pub fn group_id(&self, stage: &str) -> String {
        if self.team.id.is_empty() {
            format!("{}.{}", self.kafka.group_id_prefix, stage)
        } else {
            format!("{}.{}.{}", self.kafka.group_id_prefix, self.team.id, stage)
        }
    }

    fn parse(text: &str) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|error| ConfigError::from_toml("", &error, text))?;
        let file: ConfigFile = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            ConfigError::from_toml(&error.path().to_string(), error.inner(), text)
        })?;
        Ok(file.into())
    }

    fn apply_env_overrides(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let [brokers, instance, registry, hubspot] = ENV_OVERRIDES;
        let targets = [
            (brokers, &mut self.kafka.brokers),
            (instance, &mut self.kafka.instance_id),
            (registry, &mut self.registry.url),
            (hubspot, &mut self.hubspot.base_url),
        ];
        for (entry, target) in targets {
            if let Some(value) = env(entry.variable).filter(|v| !v.trim().is_empty()) {
                *target = value;
                self.env_overrides.push(entry);
            }
        }
    }
}

#[cfg(test)]
mod tests;
