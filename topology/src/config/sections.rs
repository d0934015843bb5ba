//! The sections of the config file other than the team's rules. Their defaults are in
//! `defaults.rs`, their checks in `validate.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{AddrParseError, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::bytesize::ByteSize;
use super::secret::SecretSource;

/// `[team]`: whose integration this is. Both keys are required.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// The upstream team id; also part of the Kafka consumer group ids.
    pub id: String,
    /// The HubSpot account (portal, "hub id") this team writes to. A token for any other portal is
    /// refused at start.
    pub hubspot_portal_id: u64,
    /// Whether the team's integration runs: `active` (the default), or `paused` / `disconnected`
    /// by the team, when its events end `SKIPPED` `TEAM_NOT_CONNECTED` and nothing is written.
    #[serde(default)]
    pub status: TeamStatus,
}

/// Whether a team's integration runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TeamStatus {
    #[default]
    Active,
    /// Stopped for a while by the team; its events are skipped, not queued.
    Paused,
    /// HubSpot disconnected by the team.
    Disconnected,
}

impl TeamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TeamStatus::Active => "active",
            TeamStatus::Paused => "paused",
            TeamStatus::Disconnected => "disconnected",
        }
    }
}

/// `[kafka]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`. `HUBSYNC_KAFKA_BROKERS` overrides it.
    pub brokers: String,
    /// Consumer groups are `<group_id_prefix>.<team id>.<stage>`.
    pub group_id_prefix: String,
    pub client_id: String,
    /// This instance's name in its consumer groups (Kafka's static membership,
    /// `group.instance.id`): an instance restarted under the same name within
    /// `session.timeout.ms` gets its partitions back without a rebalance. Unique per instance
    /// (a StatefulSet pod's name); empty for dynamic membership. `HUBSYNC_INSTANCE_ID`
    /// overrides it.
    pub instance_id: String,
    /// Extra librdkafka properties for every client (security, tuning). A value that is a secret
    /// (`sasl.password`, ...) is written as `{ env = "VAR" }` or `{ file = "/path" }`.
    pub properties: BTreeMap<String, KafkaProperty>,
}

/// The value of one librdkafka property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaProperty {
    /// A plain value; numbers and booleans in the file become their text.
    Value(String),
    /// A secret, resolved with the config's other secrets.
    Secret(SecretSource),
}

impl<'de> Deserialize<'de> for KafkaProperty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PropertyVisitor)
    }
}

struct PropertyVisitor;

impl<'de> Visitor<'de> for PropertyVisitor {
    type Value = KafkaProperty;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a string, number or boolean, or a secret written as { env = \"VAR\" } or \
             { file = \"/path\" }",
        )
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(KafkaProperty::Value(value.to_owned()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(KafkaProperty::Value(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(KafkaProperty::Value(value.to_string()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(KafkaProperty::Value(value.to_string()))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(KafkaProperty::Value(value.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        SecretSource::deserialize(de::value::MapAccessDeserializer::new(map))
            .map(KafkaProperty::Secret)
    }
}

/// `[registry]`: the Confluent-compatible schema registry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// `HUBSYNC_REGISTRY_URL` overrides it.
    pub url: String,
    /// Basic auth user; set together with `password`.
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How many schemas are kept in memory by id.
    pub cache_capacity: usize,
    /// How long a subject's latest schema is trusted before it is looked up again.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
}

/// `[hubspot]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubSpotConfig {
    /// `HUBSYNC_HUBSPOT_URL` overrides it (the sandbox).
    pub base_url: String,
    /// The private app's token (unused when `refresh_token` is set).
    pub token: SecretSource,
    /// The team's OAuth refresh token, for a connection through the platform's public app
    /// (`client_id`, `client_secret`): access tokens are refreshed from it.
    pub refresh_token: Option<SecretSource>,
    /// The platform's public app (in a service file).
    pub client_id: Option<String>,
    pub client_secret: Option<SecretSource>,
    /// The HubSpot app's id (its developer account's app, or the private app's). HubSpot names
    /// it as the `sourceId` of every change the app writes, which is how hubsync's own writes
    /// are told apart when changes flow back (no echoes). Unset: the app that delivers the
    /// webhooks is taken as hubsync's.
    pub app_id: Option<u64>,
    /// The account's subscription; sets the default request budget.
    pub tier: Tier,
    /// Overrides the tier's requests per rolling 10 seconds.
    pub requests_per_10s: Option<u32>,
    /// Overrides the tier's requests per day (lower it when other apps share the account).
    pub daily_limit: Option<u64>,
    /// Search requests per second; search has its own, lower limit.
    pub search_per_second: Option<u32>,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Share of the budget a replay or backfill may use while live changes wait, 0.0 to 1.0.
    pub backfill_share: f64,
    /// The account's time zone, in which the daily limit resets at midnight.
    pub timezone: String,
}

/// The HubSpot subscription, which sets the API limits; the table is the HubSpot client's.
pub use hubsync_hubspot::Tier;

/// Requests hubsync may make to HubSpot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub requests_per_10s: u32,
    pub daily_limit: u64,
    pub search_per_second: u32,
}

impl HubSpotConfig {
    /// How the HubSpot client is set up from this section.
    pub fn client_settings(&self) -> hubsync_hubspot::ClientSettings {
        hubsync_hubspot::ClientSettings {
            base_url: self.base_url.clone(),
            request_timeout: self.request_timeout,
            limits: self.budget_limits(),
            retry: hubsync_hubspot::RetryParams::default(),
        }
    }

    /// The limits the client's budget keeps to.
    pub fn budget_limits(&self) -> hubsync_hubspot::BudgetLimits {
        let budget = self.budget();
        hubsync_hubspot::BudgetLimits {
            requests_per_10s: budget.requests_per_10s.max(1),
            daily_limit: budget.daily_limit,
            search_per_second: budget.search_per_second.max(1),
            max_in_flight: self.max_in_flight.max(1),
            margin: hubsync_hubspot::BudgetLimits::DEFAULT_MARGIN,
            utc_offset_ms: hubsync_hubspot::budget::utc_offset_ms(&self.timezone).unwrap_or(0),
            backfill_share: self.backfill_share.clamp(0.0, 1.0),
        }
    }

    /// The tier's limits (a public app's, for an OAuth connection) with this config's overrides
    /// applied.
    pub fn budget(&self) -> Budget {
        let mut tier = super::defaults::tier_budget(self.tier);
        if self.refresh_token.is_some() {
            // A public app's calls count per installing account, not against the portal's
            // private-app tier, and have no daily limit.
            tier.requests_per_10s = hubsync_hubspot::tier::OAUTH_REQUESTS_PER_10S;
            tier.daily_limit = u64::MAX;
        }
        Budget {
            requests_per_10s: self.requests_per_10s.unwrap_or(tier.requests_per_10s),
            daily_limit: self.daily_limit.unwrap_or(tier.daily_limit),
            search_per_second: self.search_per_second.unwrap_or(tier.search_per_second),
        }
    }
}

/// `[topics]`: every topic hubsync reads or writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Topics {
    pub contact_changes: String,
    pub company_changes: String,
    pub activity_events: String,
    pub commands: String,
    pub outcomes: String,
    pub dlq: String,
    pub hubspot_changes: String,
    /// Source records copied by `hubsync replay`, each marked with its run and origin; read by
    /// the process stage like the source topics.
    pub replay: String,
    /// Commands made from replayed records: the sink's backfill lane, apart from live commands.
    pub replay_commands: String,
    /// HubSpot's webhook events as received (one record per event, keyed `portalId:objectId`),
    /// written by the inbound stage's receiver before it answers HubSpot.
    pub hubspot_webhooks: String,
    /// Every change to the sink's state, keyed by what changed and partitioned like the
    /// commands (by portal): compacted, so an instance that takes a partition over restores its
    /// state from it. Needs as many partitions as `commands`.
    pub state_changelog: String,
}

impl Topics {
    /// Each topic with its key in `[topics]`.
    pub fn all(&self) -> [(&'static str, &str); 11] {
        [
            ("contact_changes", &self.contact_changes),
            ("company_changes", &self.company_changes),
            ("activity_events", &self.activity_events),
            ("commands", &self.commands),
            ("outcomes", &self.outcomes),
            ("dlq", &self.dlq),
            ("hubspot_changes", &self.hubspot_changes),
            ("replay", &self.replay),
            ("replay_commands", &self.replay_commands),
            ("hubspot_webhooks", &self.hubspot_webhooks),
            ("state_changelog", &self.state_changelog),
        ]
    }
}

/// `[stages.*]`
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Stages {
    pub process: ProcessStage,
    pub sink: SinkStage,
    pub inbound: InboundStage,
}

/// `[stages.process]`: decode, apply the rules, emit commands.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessStage {
    /// Events being handled at once (their outputs not delivered yet); events read ahead and
    /// waiting for their team's turn are bounded apart (`process::READ_AHEAD`).
    pub channel_capacity: usize,
    /// Attempts at a transient failure (registry unreachable, producer queue full) before the
    /// record is dead-lettered.
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
}

/// `[stages.sink]`: coalesce commands per record, batch them, write to HubSpot.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkStage {
    /// The longest a record waits before it is written: its later changes inside this window,
    /// and other records, ride along in the same batch. Longer costs fewer HubSpot calls.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Inputs per batch request, 1 to 100 (HubSpot's maximum).
    pub batch_size: usize,
    /// Attempts at a retryable failure (429, 5xx, timeout) before dead-lettering.
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Bound of the queue between the consumer and the batcher.
    pub channel_capacity: usize,
    /// How long an activity or a deal waits for its contact to be in HubSpot before it is
    /// parked (`PARKED_CONTACT_MISSING`).
    #[serde(with = "humantime_serde")]
    pub contact_wait: Duration,
    /// Replayed commands held in memory at most (about 1.5 KiB each). A replay writes each
    /// record once when its whole history fits; beyond this the oldest records are written and
    /// their later events cost another write.
    pub replay_max_pending: usize,
}

/// `[stages.inbound]`: HubSpot changes back to upstream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboundStage {
    /// Whether the inbound stage polls HubSpot for changed records (the safety net behind the
    /// webhooks, and the only way in where no receiver is reachable). Off unless set: polling
    /// spends the portal's search budget (a few searches per interval per team that sends
    /// anything upstream), which the sink's lookups share, so a deployment turns it on.
    pub poll: bool,
    /// How often each team's changed records are looked for.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Records per search page, 1 to 200.
    pub page_size: usize,
    /// Only changes at least this old are read, so that search's indexing lag hides none.
    #[serde(with = "humantime_serde")]
    pub search_lag: Duration,
    /// Where the first poll of a team never polled before starts, as an RFC 3339 time
    /// (`"2026-01-01T00:00:00Z"`), for a backfill of changes made before hubsync ran. Unset: at
    /// the first poll's `now - search_lag`, so that nothing from before is sent upstream. A
    /// team polled before keeps its stored cursor.
    pub poll_from: Option<String>,
    /// How often the watched properties of every record are read again through the same path
    /// (a full walk from the epoch, at its own cursor, giving way to the live poll), so that
    /// upstream converges after changes both webhooks and polling missed. Unset: never. A walk
    /// costs about `records / page_size` searches and `records / 50` reads per object type.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Option<Duration>,
    /// How often deleted (archived) records are listed to report deletions; each listing reads
    /// every record deleted in the last 90 days, 100 a request.
    #[serde(with = "humantime_serde")]
    pub poll_archived_every: Duration,
    /// How often the members of each followed list (`[[lists]]` of a team) are read in full to
    /// find who joined and who left, 250 a request.
    #[serde(with = "humantime_serde")]
    pub poll_lists_every: Duration,
    /// `host:port` of the webhook receiver's own listener (not the admin one); no receiver when
    /// unset. It needs `hubspot.client_secret`, the app's secret HubSpot signs with.
    pub webhook_listen: Option<String>,
    /// The path HubSpot posts to.
    pub webhook_path: String,
    /// The target URL as registered in HubSpot (`https://hooks.example.com/hubspot/webhooks`):
    /// HubSpot signs the URL it called, which behind a proxy is not what hubsync sees. When
    /// unset, the URL is rebuilt as `http://` + the request's `Host` + its path and query.
    pub webhook_public_url: Option<String>,
    /// Largest request body accepted; larger ones are answered 413 without being read whole.
    pub webhook_max_body: ByteSize,
    /// How long the receiver waits for Kafka to confirm a request's events before answering
    /// 503 (HubSpot then retries); below HubSpot's own 5 s wait.
    #[serde(with = "humantime_serde")]
    pub webhook_produce_timeout: Duration,
    /// Requests handled at once; more are answered 503 at once (HubSpot retries them), so
    /// memory stays within this many bodies of `webhook_max_body`.
    pub webhook_max_in_flight: usize,
}

impl InboundStage {
    /// `poll_from` in epoch milliseconds; `None` when unset or not a time (validation refuses
    /// the latter).
    pub fn poll_from_ms(&self) -> Option<i64> {
        let raw = self.poll_from.as_deref()?.trim();
        chrono::DateTime::parse_from_rfc3339(raw)
            .ok()
            .map(|at| at.timestamp_millis())
    }
}

/// `[state]`: local state in sled.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// Each stage keeps its database in a subdirectory named after it.
    pub dir: PathBuf,
    /// sled's page cache, e.g. "64MiB".
    pub cache_capacity: ByteSize,
    /// How many processed event ids the sink remembers for dedupe; the oldest are forgotten
    /// first. A replay of events older than that writes again (idempotently) instead of
    /// re-emitting the remembered outcome.
    pub max_processed_events: u64,
}

impl StateConfig {
    /// The sled directory of one stage.
    pub fn stage_dir(&self, stage: &str) -> PathBuf {
        self.dir.join(stage)
    }
}

/// `[admin]`: the HTTP endpoint for `/metrics` and `/healthz`, the logs API and the console.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// `host:port`; validated when the config is loaded.
    pub listen: String,
    /// The token the logs API and the console ask for (`Authorization: Bearer ...`): always for
    /// a redrive, and for everything when `listen` is not a loopback address.
    pub token: Option<SecretSource>,
    /// Days of outcomes the service's outcomes index keeps; 0 keeps no index.
    pub outcomes_index_days: u32,
}

impl AdminConfig {
    /// The address to bind. Always `Ok` for a loaded config, which has been validated.
    pub fn listen_addr(&self) -> Result<SocketAddr, AddrParseError> {
        self.listen.parse()
    }
}
