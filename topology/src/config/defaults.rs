//! Every default of the config file, in one place; `deploy/examples/hubsync.toml` documents them.
//!
//! The team's rules (`[sync]`, `[users]`, `[activities]`, `[campaigns]`) take their defaults from
//! `hubsync_processors::rules`, where the processors that read them live.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::bytesize::ByteSize;
use super::secret::SecretSource;
use super::sections::{
    AdminConfig, Budget, HubSpotConfig, InboundStage, KafkaConfig, ProcessStage, RegistryConfig,
    SinkStage, StateConfig, Tier, Topics,
};

/// The environment variable the HubSpot token is read from unless `hubspot.token` says otherwise.
pub const HUBSPOT_TOKEN_ENV: &str = "HUBSYNC_HUBSPOT_TOKEN";

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "localhost:9092".to_owned(),
            group_id_prefix: "hubsync".to_owned(),
            client_id: "hubsync".to_owned(),
            instance_id: String::new(),
            properties: BTreeMap::new(),
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            url: "http://localhost:8081".to_owned(),
            username: None,
            password: None,
            request_timeout: Duration::from_secs(10),
            cache_capacity: 1_000,
            cache_ttl: Duration::from_secs(300),
        }
    }
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.hubapi.com".to_owned(),
            token: SecretSource::Env(HUBSPOT_TOKEN_ENV.to_owned()),
            refresh_token: None,
            client_id: None,
            client_secret: None,
            app_id: None,
            tier: DEFAULT_TIER,
            requests_per_10s: None,
            daily_limit: None,
            search_per_second: None,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 8,
            backfill_share: 0.3,
            timezone: "UTC".to_owned(),
        }
    }
}

/// The tier assumed when the file names none: the lowest paid one. A budget set too low is slow,
/// one set too high is a storm of 429s.
pub const DEFAULT_TIER: Tier = Tier::Starter;

pub use hubsync_hubspot::tier::SEARCH_PER_SECOND;

/// HubSpot's published limits for `tier`, as hubsync budgets them.
pub fn tier_budget(tier: Tier) -> Budget {
    let limits = tier.limits();
    Budget {
        requests_per_10s: limits.requests_per_10s,
        daily_limit: limits.daily,
        search_per_second: SEARCH_PER_SECOND,
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            contact_changes: "crm.contact.changes".to_owned(),
            company_changes: "crm.company.changes".to_owned(),
            activity_events: "crm.activity.events".to_owned(),
            commands: "hubsync.commands".to_owned(),
            outcomes: "hubsync.outcomes".to_owned(),
            dlq: "hubsync.dlq".to_owned(),
            hubspot_changes: "crm.hubspot.changes".to_owned(),
            replay: "hubsync.replay".to_owned(),
            replay_commands: "hubsync.replay.commands".to_owned(),
            hubspot_webhooks: "hubsync.hubspot.webhooks".to_owned(),
            state_changelog: "hubsync.sink.state".to_owned(),
        }
    }
}

impl Default for ProcessStage {
    fn default() -> Self {
        Self {
            channel_capacity: 1_024,
            max_attempts: 5,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }
}

impl Default for SinkStage {
    fn default() -> Self {
        Self {
            linger: Duration::from_secs(10),
            batch_size: 100,
            max_attempts: 8,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            channel_capacity: 1_024,
            contact_wait: Duration::from_secs(15 * 60),
            replay_max_pending: 1_000_000,
        }
    }
}

impl Default for InboundStage {
    fn default() -> Self {
        Self {
            poll: false,
            poll_interval: Duration::from_secs(30),
            page_size: 100,
            search_lag: Duration::from_secs(30),
            poll_from: None,
            refresh_interval: None,
            poll_archived_every: Duration::from_secs(60 * 60),
            poll_lists_every: Duration::from_secs(5 * 60),
            webhook_listen: None,
            webhook_path: "/hubspot/webhooks".to_owned(),
            webhook_public_url: None,
            webhook_max_body: ByteSize::mib(1),
            webhook_produce_timeout: Duration::from_secs(4),
            webhook_max_in_flight: 64,
        }
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/lib/hubsync"),
            cache_capacity: ByteSize::mib(64),
            max_processed_events: 2_000_000,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".to_owned(),
            token: None,
            outcomes_index_days: 30,
        }
    }
}
