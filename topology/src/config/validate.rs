//! What the types alone cannot check. Each check pushes a [`Problem`] naming the field and what is
//! allowed; nothing stops at the first.

use std::net::SocketAddr;
use std::time::Duration;

use hubsync_processors::rules::toml_key;

use super::sections::{
    AdminConfig, HubSpotConfig, InboundStage, KafkaConfig, KafkaProperty, ProcessStage,
    RegistryConfig, SinkStage, StateConfig, TeamConfig, Topics,
};
use super::{Config, Problem};

/// HubSpot accepts at most this many inputs per batch request.
pub const MAX_BATCH_SIZE: usize = 100;
/// HubSpot's search returns at most this many records per page.
pub const MAX_SEARCH_PAGE: usize = 200;
/// Longer than this and a batch waits more than it saves.
pub const MAX_LINGER: Duration = Duration::from_secs(30);
/// The shortest `stages.inbound.refresh_interval`: a refresh walks every record of a portal.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// librdkafka properties hubsync sets itself, with the setting to use instead.
const RESERVED_KAFKA_PROPERTIES: [(&str, &str); 8] = [
    ("bootstrap.servers", "set kafka.brokers instead"),
    ("metadata.broker.list", "set kafka.brokers instead"),
    (
        "group.id",
        "hubsync names its groups <kafka.group_id_prefix>.<team.id>.<stage>; set group_id_prefix",
    ),
    ("client.id", "set kafka.client_id instead"),
    (
        "enable.auto.offset.store",
        "hubsync stores an offset only after everything its record produced is delivered",
    ),
    (
        "enable.auto.commit",
        "hubsync commits stored offsets on an interval; tune auto.commit.interval.ms instead",
    ),
    (
        "group.instance.id",
        "set kafka.instance_id (or HUBSYNC_INSTANCE_ID) instead: each group of the instance gets it",
    ),
    (
        "partitioner",
        "hubsync partitions by Kafka's murmur2 of the portal id, and the sink's state changelog \
         follows those partitions",
    ),
];

/// Consumer settings the brokers hold under Kafka's consumer group protocol (KIP-848).
const BROKER_SIDE_UNDER_KIP_848: [&str; 3] = [
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
];

pub(crate) fn problems(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    let p = &mut problems;
    team(&config.team, p);
    kafka(&config.kafka, p);
    registry(&config.registry, p);
    hubspot(&config.hubspot, p);
    topics(&config.topics, p);
    process(&config.stages.process, p);
    sink(&config.stages.sink, p);
    inbound(&config.stages.inbound, &config.hubspot, p);
    state(&config.state, p);
    admin(&config.admin, p);
    problems.extend(config.rules.validate().into_iter().map(Problem::from));
    problems
}

/// Settings that work but are likely not what was meant.
pub(crate) fn warnings(config: &Config) -> Vec<Problem> {
    let mut warnings = Vec::new();
    if let Ok(addr) = config.admin.listen_addr()
        && !addr.ip().is_loopback()
    {
        warnings.push(Problem::new(
            "admin.listen",
            format!(
                "{addr} is reachable from other hosts: /metrics and /healthz are served without \
                 authentication"
            ),
        ));
        if config.admin.token.is_none() {
            warnings.push(Problem::new(
                "admin.token",
                "not set while admin.listen is reachable from other hosts: the logs API and the \
                 console refuse every request until a token is set",
            ));
        }
    }
    let inbound = &config.stages.inbound;
    let upstream_fields: Vec<&str> = config
        .rules
        .sync
        .contacts
        .mapping
        .iter()
        .chain(&config.rules.sync.companies.mapping)
        .filter(|m| m.direction.writes_upstream())
        .map(|m| m.source.as_str())
        .collect();
    if inbound.webhook_listen.is_none()
        && !inbound.poll
        && (!upstream_fields.is_empty() || !config.rules.lists.is_empty())
    {
        warnings.push(Problem::new(
            "stages.inbound",
            format!(
                "neither webhook_listen nor poll is set, so nothing HubSpot users change reaches \
                 upstream, although {} flow from HubSpot; set webhook_listen (HubSpot's webhooks) \
                 or poll = true",
                if upstream_fields.is_empty() {
                    "followed lists".to_string()
                } else {
                    format!("fields {}", upstream_fields.join(", "))
                }
            ),
        ));
    }
    if inbound.poll && config.hubspot.app_id.is_none() && !config.team.id.is_empty() {
        warnings.push(Problem::new(
            "hubspot.app_id",
            "not set while stages.inbound.poll is on: polling reads who made each change from \
             HubSpot's history, and without hubsync's app id its own writes cannot be told from \
             other apps', so the team is not polled (webhooks still come in); set it to the app \
             the team's token belongs to",
        ));
    }
    if inbound.poll && inbound.search_lag < std::time::Duration::from_secs(30) {
        warnings.push(Problem::new(
            "stages.inbound.search_lag",
            format!(
                "{} is shorter than HubSpot's search index delay (up to about 30 s): a change \
                 indexed later than that is passed over by polling (webhooks still bring it)",
                humantime::format_duration(inbound.search_lag)
            ),
        ));
    }
    let hubspot = &config.hubspot;
    let tier = super::defaults::tier_budget(hubspot.tier);
    if let Some(requests) = hubspot.requests_per_10s
        && requests > tier.requests_per_10s
    {
        warnings.push(Problem::new(
            "hubspot.requests_per_10s",
            format!(
                "{requests} is above the {} tier's {} per 10 s: expect 429 responses unless the \
                 account has a higher limit",
                hubspot.tier.as_str(),
                tier.requests_per_10s
            ),
        ));
    }
    if let Some(daily) = hubspot.daily_limit
        && daily > tier.daily_limit
    {
        warnings.push(Problem::new(
            "hubspot.daily_limit",
            format!(
                "{daily} is above the {} tier's {} per day: expect the daily limit to run out \
                 before hubsync expects it",
                hubspot.tier.as_str(),
                tier.daily_limit
            ),
        ));
    }
    if config.registry.password.is_some() && config.registry.url.starts_with("http://") {
        warnings.push(Problem::new(
            "registry.url",
            "basic auth over plain http sends the password unencrypted: use https",
        ));
    }
    if config.rules.users.default_owner.is_none() {
        warnings.push(Problem::new(
            "users.default_owner",
            "not set: activities whose sender and contact owner are not mapped are written \
             without an owner",
        ));
    }
    warnings
}

fn team(team: &TeamConfig, p: &mut Vec<Problem>) {
    check_identifier(
        "team.id",
        &team.id,
        "the upstream team id, e.g. \"acme-sales\"",
        p,
    );
    if team.hubspot_portal_id == 0 {
        p.push(Problem::new(
            "team.hubspot_portal_id",
            "must be the HubSpot account id (the portal or hub id, a positive number)",
        ));
    }
}

fn kafka(kafka: &KafkaConfig, p: &mut Vec<Problem>) {
    if let Err(message) = check_brokers(&kafka.brokers) {
        p.push(Problem::new("kafka.brokers", message));
    }
    check_identifier(
        "kafka.group_id_prefix",
        &kafka.group_id_prefix,
        "the start of hubsync's consumer group ids, e.g. \"hubsync\"",
        p,
    );
    check_identifier(
        "kafka.client_id",
        &kafka.client_id,
        "the client id hubsync gives brokers, e.g. \"hubsync\"",
        p,
    );
    if !kafka.instance_id.is_empty() {
        check_identifier(
            "kafka.instance_id",
            &kafka.instance_id,
            "this instance's own name in its consumer groups, e.g. \"hubsync-sink-0\"",
            p,
        );
    }
    let consumer_protocol = matches!(
        kafka.properties.get("group.protocol"),
        Some(KafkaProperty::Value(protocol)) if protocol == "consumer"
    );
    for (key, value) in &kafka.properties {
        let field = format!("kafka.properties.{}", toml_key(key));
        if consumer_protocol && BROKER_SIDE_UNDER_KIP_848.contains(&key.as_str()) {
            p.push(Problem::new(
                field,
                "is set by the brokers under group.protocol = \"consumer\" (KIP-848): remove it, \
                 or the consumers refuse to start",
            ));
            continue;
        }
        if key.trim().is_empty() {
            p.push(Problem::new(field, "must name a librdkafka property"));
            continue;
        }
        if let Some((_, instead)) = RESERVED_KAFKA_PROPERTIES
            .iter()
            .find(|(name, _)| name == key)
        {
            p.push(Problem::new(
                field,
                format!("{key} is set by hubsync: {instead}"),
            ));
            continue;
        }
        if looks_secret(key) && matches!(value, KafkaProperty::Value(_)) {
            p.push(Problem::new(
                field,
                format!(
                    "{key} is a secret: write it as {{ env = \"VAR\" }} or {{ file = \"/path\" }}, \
                     not in the config file"
                ),
            ));
        }
    }
}

fn looks_secret(key: &str) -> bool {
    key.contains("password") || key.contains("secret") || key == "ssl.key.pem"
}

/// Checks a librdkafka broker list: `[proto://]host[:port]`, comma-separated.
fn check_brokers(list: &str) -> Result<(), String> {
    const ALLOWED: &str =
        "write brokers as host:port, comma-separated, e.g. \"kafka-1:9092,kafka-2:9092\"";
    if list.trim().is_empty() {
        return Err(format!("must not be empty: {ALLOWED}"));
    }
    for broker in list.split(',').map(str::trim) {
        let address = broker.split_once("://").map_or(broker, |(_, rest)| rest);
        let (host, port) = match address.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((host, rest)) => (host, rest.strip_prefix(':')),
                None => ("", None),
            },
            None => match address.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (address, None),
            },
        };
        let host_ok =
            !host.is_empty() && !host.contains(char::is_whitespace) && !host.contains('/');
        let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port > 0));
        if !host_ok || !port_ok {
            return Err(format!("{broker:?} is not a broker address: {ALLOWED}"));
        }
    }
    Ok(())
}

fn registry(registry: &RegistryConfig, p: &mut Vec<Problem>) {
    check_http_url("registry.url", &registry.url, "http://localhost:8081", p);
    match (&registry.username, &registry.password) {
        (Some(username), _) if username.trim().is_empty() => p.push(Problem::new(
            "registry.username",
            "must not be empty: remove it for a registry without authentication",
        )),
        (Some(_), None) => p.push(Problem::new(
            "registry.password",
            "registry.username is set, so set the password too, as { env = \"VAR\" } or \
             { file = \"/path\" }",
        )),
        (None, Some(_)) => p.push(Problem::new(
            "registry.username",
            "registry.password is set, so set the user name too (basic auth needs both)",
        )),
        _ => {}
    }
    positive("registry.request_timeout", registry.request_timeout, p);
    at_least_one("registry.cache_capacity", registry.cache_capacity, p);
}

fn hubspot(hubspot: &HubSpotConfig, p: &mut Vec<Problem>) {
    check_http_url(
        "hubspot.base_url",
        &hubspot.base_url,
        "https://api.hubapi.com",
        p,
    );
    if hubspot.requests_per_10s == Some(0) {
        p.push(Problem::new(
            "hubspot.requests_per_10s",
            "must be at least 1; remove it to use the tier's limit",
        ));
    }
    if hubspot.daily_limit == Some(0) {
        p.push(Problem::new(
            "hubspot.daily_limit",
            "must be at least 1; remove it to use the tier's limit",
        ));
    }
    if hubspot.search_per_second == Some(0) {
        p.push(Problem::new(
            "hubspot.search_per_second",
            "must be at least 1; remove it to use the default of 4",
        ));
    }
    positive("hubspot.request_timeout", hubspot.request_timeout, p);
    at_least_one("hubspot.max_in_flight", hubspot.max_in_flight, p);
    if !(0.0..=1.0).contains(&hubspot.backfill_share) {
        p.push(Problem::new(
            "hubspot.backfill_share",
            format!(
                "{:?} is outside 0.0..=1.0: it is the share of the request budget a replay may \
                 use while live changes wait (0.0 pauses replays, 1.0 lets them take it all)",
                hubspot.backfill_share
            ),
        ));
    }
    if let Err(message) = check_timezone(&hubspot.timezone) {
        p.push(Problem::new("hubspot.timezone", message));
    }
    if hubspot.refresh_token.is_some() {
        if hubspot
            .client_id
            .as_deref()
            .is_none_or(|id| id.trim().is_empty())
        {
            p.push(Problem::new(
                "hubspot.client_id",
                "an OAuth refresh_token needs the platform's public app: set client_id (and \
                 client_secret) in the service file's [hubspot]",
            ));
        }
        if hubspot.client_secret.is_none() {
            p.push(Problem::new(
                "hubspot.client_secret",
                "an OAuth refresh_token needs the public app's client_secret, e.g. \
                 { env = \"HUBSYNC_HUBSPOT_CLIENT_SECRET\" }",
            ));
        }
    }
}

/// An IANA zone name (`Europe/Paris`, `UTC`) or a fixed offset (`+02:00`).
fn check_timezone(zone: &str) -> Result<(), String> {
    const ALLOWED: &str = "use the account's IANA time zone, e.g. \"America/New_York\" or \"UTC\", \
                           or a fixed offset such as \"+02:00\"";
    let valid = if let Some(offset) = zone.strip_prefix(['+', '-']) {
        offset.split_once(':').is_some_and(|(hours, minutes)| {
            hours.len() == 2
                && minutes.len() == 2
                && hours.parse::<u8>().is_ok_and(|h| h <= 14)
                && minutes.parse::<u8>().is_ok_and(|m| m < 60)
        })
    } else {
        !zone.is_empty()
            && zone.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && zone.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
            })
    };
    if valid {
        Ok(())
    } else {
        Err(format!("{zone:?} is not a time zone: {ALLOWED}"))
    }
}

fn topics(topics: &Topics, p: &mut Vec<Problem>) {
    let all = topics.all();
    for (index, (key, name)) in all.iter().enumerate() {
        let field = format!("topics.{key}");
        let valid = !name.is_empty()
            && name.len() <= 249
            && *name != "."
            && *name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            p.push(Problem::new(
                field,
                format!(
                    "{name:?} is not a Kafka topic name: use 1 to 249 letters, digits, '.', '_' \
                     and '-'"
                ),
            ));
            continue;
        }
        if let Some((other, _)) = all[..index].iter().find(|(_, earlier)| earlier == name) {
            p.push(Problem::new(
                field,
                format!(
                    "{name:?} is also topics.{other}: every topic has one role, give each its own"
                ),
            ));
        }
    }
}

fn process(stage: &ProcessStage, p: &mut Vec<Problem>) {
    at_least_one("stages.process.channel_capacity", stage.channel_capacity, p);
    attempts("stages.process", stage.max_attempts, p);
    backoff("stages.process", stage.backoff_base, stage.backoff_max, p);
}

/// The fewest replayed commands the sink may be told to hold.
const MIN_REPLAY_PENDING: usize = 1_000;

fn sink(stage: &SinkStage, p: &mut Vec<Problem>) {
    if !(1..=MAX_BATCH_SIZE).contains(&stage.batch_size) {
        p.push(Problem::new(
            "stages.sink.batch_size",
            format!(
                "{} is outside 1..={MAX_BATCH_SIZE}: HubSpot takes at most {MAX_BATCH_SIZE} \
                 inputs per batch request",
                stage.batch_size
            ),
        ));
    }
    if stage.linger > MAX_LINGER {
        p.push(Problem::new(
            "stages.sink.linger",
            format!(
                "{} is longer than {}: a batch waits at most that long to fill",
                humantime::format_duration(stage.linger),
                humantime::format_duration(MAX_LINGER)
            ),
        ));
    }
    attempts("stages.sink", stage.max_attempts, p);
    backoff("stages.sink", stage.backoff_base, stage.backoff_max, p);
    at_least_one("stages.sink.channel_capacity", stage.channel_capacity, p);
    if stage.replay_max_pending < MIN_REPLAY_PENDING {
        p.push(Problem::new(
            "stages.sink.replay_max_pending",
            format!(
                "{} is below {MIN_REPLAY_PENDING}: a replay needs room for full batches of \
                 several records' histories",
                stage.replay_max_pending
            ),
        ));
    }
}

fn inbound(stage: &InboundStage, hubspot: &HubSpotConfig, p: &mut Vec<Problem>) {
    positive("stages.inbound.poll_interval", stage.poll_interval, p);
    if let Some(from) = &stage.poll_from
        && stage.poll_from_ms().is_none()
    {
        p.push(Problem::new(
            "stages.inbound.poll_from",
            format!(
                "{from:?} is not a time: write it in RFC 3339, e.g. \"2026-01-01T00:00:00Z\", or \
                 leave it unset to start at the first poll"
            ),
        ));
    }
    if stage
        .refresh_interval
        .is_some_and(|every| every < MIN_REFRESH_INTERVAL)
    {
        p.push(Problem::new(
            "stages.inbound.refresh_interval",
            format!(
                "{} is shorter than {}: a refresh walks every record of the portal; set e.g. \
                 \"7d\", or leave it unset for no refresh",
                humantime::format_duration(stage.refresh_interval.unwrap_or_default()),
                humantime::format_duration(MIN_REFRESH_INTERVAL)
            ),
        ));
    }
    positive(
        "stages.inbound.poll_archived_every",
        stage.poll_archived_every,
        p,
    );
    positive("stages.inbound.poll_lists_every", stage.poll_lists_every, p);
    if let Some(listen) = &stage.webhook_listen {
        if listen.parse::<SocketAddr>().is_err() {
            p.push(Problem::new(
                "stages.inbound.webhook_listen",
                format!(
                    "{listen:?} is not an address to listen on: write ip:port, e.g. \
                     \"127.0.0.1:9465\" or \"0.0.0.0:9465\""
                ),
            ));
        }
        if hubspot.client_secret.is_none() {
            p.push(Problem::new(
                "hubspot.client_secret",
                "the webhook receiver (stages.inbound.webhook_listen) checks HubSpot's \
                 signatures with the app's client secret: set it, e.g. \
                 { env = \"HUBSYNC_HUBSPOT_CLIENT_SECRET\" }, or unset webhook_listen",
            ));
        }
    }
    if !stage.webhook_path.starts_with('/') || stage.webhook_path.contains(['?', '#', ' ']) {
        p.push(Problem::new(
            "stages.inbound.webhook_path",
            format!(
                "{:?} is not a path: write one that starts with /, e.g. \"/hubspot/webhooks\"",
                stage.webhook_path
            ),
        ));
    }
    if let Some(url) = &stage.webhook_public_url {
        let parsed = reqwest::Url::parse(url);
        let usable = parsed.as_ref().is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.query().is_none()
                && u.fragment().is_none()
        });
        if !usable {
            p.push(Problem::new(
                "stages.inbound.webhook_public_url",
                format!(
                    "{url:?} is not the URL HubSpot calls: write the target URL registered in the \
                     app, scheme, host and path, without a query, e.g. \
                     \"https://hooks.example.com/hubspot/webhooks\""
                ),
            ));
        }
    }
    if stage.webhook_max_body.bytes() < 1024 {
        p.push(Problem::new(
            "stages.inbound.webhook_max_body",
            format!(
                "{} is below 1KiB: HubSpot sends up to 100 events per request; keep \"1MiB\"",
                stage.webhook_max_body
            ),
        ));
    }
    positive(
        "stages.inbound.webhook_produce_timeout",
        stage.webhook_produce_timeout,
        p,
    );
    at_least_one(
        "stages.inbound.webhook_max_in_flight",
        stage.webhook_max_in_flight,
        p,
    );
    if !(1..=MAX_SEARCH_PAGE).contains(&stage.page_size) {
        p.push(Problem::new(
            "stages.inbound.page_size",
            format!(
                "{} is outside 1..={MAX_SEARCH_PAGE}: HubSpot's search returns at most \
                 {MAX_SEARCH_PAGE} records per page",
                stage.page_size
            ),
        ));
    }
}

fn state(state: &StateConfig, p: &mut Vec<Problem>) {
    if state.dir.as_os_str().is_empty() {
        p.push(Problem::new(
            "state.dir",
            "must not be empty: name the directory hubsync keeps its local state in, \
             e.g. \"/var/lib/hubsync\"",
        ));
    }
    if state.cache_capacity.bytes() < 1 << 20 {
        p.push(Problem::new(
            "state.cache_capacity",
            format!(
                "{} is below 1MiB: give sled's cache at least \"1MiB\"",
                state.cache_capacity
            ),
        ));
    }
    if state.max_processed_events < 1_000 {
        p.push(Problem::new(
            "state.max_processed_events",
            format!(
                "{} is too few to recognise redelivered events: keep at least 1000",
                state.max_processed_events
            ),
        ));
    }
}

fn admin(admin: &AdminConfig, p: &mut Vec<Problem>) {
    if admin.listen.parse::<SocketAddr>().is_err() {
        p.push(Problem::new(
            "admin.listen",
            format!(
                "{:?} is not an address to listen on: write ip:port, e.g. \"127.0.0.1:9464\" or \
                 \"0.0.0.0:9464\"",
                admin.listen
            ),
        ));
    }
}

fn check_identifier(field: &str, value: &str, what: &str, p: &mut Vec<Problem>) {
    if value.trim().is_empty() {
        p.push(Problem::new(
            field,
            format!("must not be empty: set {what}"),
        ));
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        p.push(Problem::new(
            field,
            format!("{value:?} may only hold letters, digits, '.', '_' and '-'"),
        ));
    }
}

fn check_http_url(field: &str, value: &str, example: &str, p: &mut Vec<Problem>) {
    let allowed = format!("write an http or https URL, e.g. \"{example}\"");
    let url = match reqwest::Url::parse(value) {
        Ok(url) => url,
        Err(error) => {
            p.push(Problem::new(
                field,
                format!("{value:?} is not a URL ({error}): {allowed}"),
            ));
            return;
        }
    };
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        p.push(Problem::new(
            field,
            format!("{value:?} is not an http(s) URL with a host: {allowed}"),
        ));
    } else if !url.username().is_empty() || url.password().is_some() {
        // The message must not repeat the value: it holds a credential.
        p.push(Problem::new(
            field,
            "must not hold credentials: use the section's username and password \
             (secret) settings instead",
        ));
    } else if url.query().is_some() || url.fragment().is_some() {
        p.push(Problem::new(
            field,
            format!("{value:?} has a query or fragment: {allowed}"),
        ));
    }
}

fn positive(field: &str, value: Duration, p: &mut Vec<Problem>) {
    if value.is_zero() {
        p.push(Problem::new(
            field,
            "must be longer than 0s: write a duration such as \"250ms\", \"30s\" or \"5m\"",
        ));
    }
}

fn at_least_one(field: &str, value: usize, p: &mut Vec<Problem>) {
    if value == 0 {
        p.push(Problem::new(field, "must be at least 1"));
    }
}

fn attempts(stage: &str, max_attempts: u32, p: &mut Vec<Problem>) {
    if max_attempts == 0 {
        p.push(Problem::new(
            format!("{stage}.max_attempts"),
            "must be at least 1 (1 means no retry)",
        ));
    }
}

fn backoff(stage: &str, base: Duration, max: Duration, p: &mut Vec<Problem>) {
    positive(&format!("{stage}.backoff_base"), base, p);
    if base > max {
        p.push(Problem::new(
            format!("{stage}.backoff_max"),
            format!(
                "{} is shorter than backoff_base ({}): the longest wait must be at least the \
                 first",
                humantime::format_duration(max),
                humantime::format_duration(base)
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_lists() {
        for ok in [
            "localhost:9092",
            "kafka-1:9092, kafka-2:9093",
            "SASL_SSL://broker.example.com:9093",
            "[::1]:9092",
            "broker",
        ] {
            assert_eq!(check_brokers(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "kafka-1:port",
            "kafka-1:9092,,kafka-2:9092",
            "a b:9092",
            ":9092",
            "k:0",
        ] {
            assert!(check_brokers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones() {
        for ok in [
            "UTC",
            "Europe/Paris",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
            "+02:00",
            "-05:30",
        ] {
            assert_eq!(check_timezone(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Paris time", "+2", "+25:00", "/UTC", "Europe//Paris"] {
            assert!(check_timezone(bad).is_err(), "{bad}");
        }
    }
}
