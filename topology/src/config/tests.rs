use std::collections::HashMap;
use std::time::Duration;

use hubsync_processors::rules::{ActivityType, CreateTrigger, OwnerStrategy, StoreAs};

use super::*;

const MINIMAL: &str = r#"
[team]
id = "acme-sales"
hubspot_portal_id = 4455667

[users]
default_owner = "90011"
"#;

fn with(extra: &str) -> String {
    format!("{MINIMAL}\n{extra}")
}

/// The problems of a config that parses, as `field: message` lines.
fn problems(text: &str) -> Vec<Problem> {
    match Config::from_toml_str(text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems }) => problems,
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn fields(text: &str) -> Vec<String> {
    problems(text).into_iter().map(|p| p.field).collect()
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn example_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/hubsync.toml")
}

#[test]
fn a_minimal_config_takes_every_default() {
    let config = Config::from_toml_str(MINIMAL).expect("minimal config");
    assert_eq!(config.team.id, "acme-sales");
    assert_eq!(config.kafka.brokers, "localhost:9092");
    assert_eq!(config.group_id("sink"), "hubsync.acme-sales.sink");
    assert_eq!(config.registry.url, "http://localhost:8081");
    assert_eq!(config.registry.cache_ttl, Duration::from_secs(300));
    assert_eq!(config.hubspot.base_url, "https://api.hubapi.com");
    assert_eq!(
        config.hubspot.token,
        SecretSource::Env(HUBSPOT_TOKEN_ENV.to_owned())
    );
    assert_eq!(config.hubspot.tier, Tier::Starter);
    assert_eq!(config.hubspot.request_timeout, Duration::from_secs(30));
    assert_eq!(config.hubspot.timezone, "UTC");
    assert_eq!(config.topics.contact_changes, "crm.contact.changes");
    assert_eq!(config.topics.company_changes, "crm.company.changes");
    assert_eq!(config.topics.activity_events, "crm.activity.events");
    assert_eq!(config.topics.commands, "hubsync.commands");
    assert_eq!(config.topics.outcomes, "hubsync.outcomes");
    assert_eq!(config.topics.dlq, "hubsync.dlq");
    assert_eq!(config.topics.hubspot_changes, "crm.hubspot.changes");
    assert_eq!(config.topics.replay, "hubsync.replay");
    assert_eq!(config.topics.replay_commands, "hubsync.replay.commands");
    assert_eq!(config.topics.hubspot_webhooks, "hubsync.hubspot.webhooks");
    assert_eq!(config.stages.inbound.webhook_listen, None);
    assert_eq!(config.stages.inbound.webhook_path, "/hubspot/webhooks");
    assert_eq!(config.stages.inbound.webhook_max_body, ByteSize::mib(1));
    assert_eq!(
        config.stages.inbound.webhook_produce_timeout,
        Duration::from_secs(4)
    );
    assert!(!config.stages.inbound.poll);
    assert_eq!(config.stages.inbound.poll_from, None);
    assert_eq!(config.stages.inbound.refresh_interval, None);
    assert_eq!(
        config.stages.inbound.poll_archived_every,
        Duration::from_secs(3600)
    );
    assert_eq!(
        config.stages.inbound.poll_lists_every,
        Duration::from_secs(300)
    );
    assert!(config.rules.lists.is_empty());
    assert_eq!(config.stages.sink.linger, Duration::from_secs(10));
    assert_eq!(config.stages.sink.batch_size, 100);
    assert_eq!(config.stages.sink.replay_max_pending, 1_000_000);
    assert_eq!(config.state.cache_capacity, ByteSize::mib(64));
    assert_eq!(
        config.state.stage_dir("sink"),
        Path::new("/var/lib/hubsync/sink")
    );
    assert_eq!(
        config.admin.listen_addr().unwrap(),
        "127.0.0.1:9464".parse().unwrap()
    );
    assert_eq!(config.rules.sync.contacts.id_property, "email");
    assert_eq!(
        config.rules.sync.contacts.create.trigger,
        CreateTrigger::OnCreateOrUpdate
    );
    assert_eq!(
        config.rules.sync.contacts.owner_strategy,
        OwnerStrategy::IfEmpty
    );
    assert!(config.env_overrides.is_empty());
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
}

#[test]
fn tiers_set_the_budget_and_overrides_win() {
    let budget = |extra: &str| {
        Config::from_toml_str(&with(extra))
            .expect("valid")
            .hubspot
            .budget()
    };
    assert_eq!(budget("").requests_per_10s, 100);
    assert_eq!(budget("").daily_limit, 250_000);
    let professional = budget("[hubspot]\ntier = \"professional\"");
    assert_eq!(
        (professional.requests_per_10s, professional.daily_limit),
        (190, 625_000)
    );
    let enterprise = budget("[hubspot]\ntier = \"enterprise\"");
    assert_eq!(
        (enterprise.requests_per_10s, enterprise.daily_limit),
        (190, 1_000_000)
    );
    assert_eq!(
        budget("[hubspot]\ntier = \"unlimited\"").requests_per_10s,
        250
    );
    assert_eq!(budget("[hubspot]\ntier = \"free\"").search_per_second, 4);
    let overridden = budget(
        "[hubspot]\ntier = \"enterprise\"\nrequests_per_10s = 150\ndaily_limit = 400000\nsearch_per_second = 2",
    );
    assert_eq!(
        overridden,
        Budget {
            requests_per_10s: 150,
            daily_limit: 400_000,
            search_per_second: 2
        }
    );
}

#[test]
fn an_unknown_tier_names_the_field_and_the_tiers() {
    let problems = problems(&with("[hubspot]\ntier = \"gold\""));
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "hubspot.tier");
    assert!(
        problems[0].message.contains("`enterprise`"),
        "{}",
        problems[0]
    );
    assert_eq!(problems[0].line, Some(10));
}

#[test]
fn unknown_keys_keep_their_path_line_and_column() {
    let problems = problems(&with("[stages.sink]\nlinger = \"1s\"\nbatch = 50"));
    assert_eq!(problems.len(), 1);
    let problem = &problems[0];
    assert_eq!(problem.field, "stages.sink.batch");
    assert!(
        problem.message.contains("unknown field `batch`"),
        "{problem}"
    );
    assert!(problem.message.contains("`batch_size`"), "{problem}");
    assert_eq!((problem.line, problem.column), (Some(11), Some(1)));
}

#[test]
fn type_errors_keep_their_path() {
    let problems = problems(&with("[[users.mapping]]\nuser = \"ada\"\nowner = 501"));
    assert_eq!(problems[0].field, "users.mapping[0].owner");
    assert!(
        problems[0].message.contains("expected a string"),
        "{}",
        problems[0]
    );
}

#[test]
fn syntax_errors_keep_line_and_column() {
    let problems = problems("[team]\nid = \"acme\nhubspot_portal_id = 1\n");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "");
    assert_eq!(problems[0].line, Some(2));
    assert!(
        problems[0].to_string().starts_with("line 2, column"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_missing_team_is_named() {
    let problems = problems("[kafka]\nbrokers = \"k:9092\"\n");
    assert_eq!(problems[0].field, "team");
    let problems = self::problems("[team]\nid = \"acme\"\n");
    assert_eq!(problems[0].field, "team.hubspot_portal_id");
}

#[test]
fn durations_are_written_in_human_form() {
    let config = Config::from_toml_str(&with(
        "[stages.sink]\nlinger = \"1s 500ms\"\nbackoff_max = \"2m\"",
    ))
    .unwrap();
    assert_eq!(config.stages.sink.linger, Duration::from_millis(1_500));
    assert_eq!(config.stages.sink.backoff_max, Duration::from_secs(120));
    let problems = problems(&with("[stages.sink]\nlinger = 250"));
    assert_eq!(problems[0].field, "stages.sink.linger");
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let text = with(
        r#"
[kafka]
brokers = "kafka-1:port"
group_id_prefix = ""

[registry]
url = "not a url"

[hubspot]
base_url = "ftp://api.hubapi.com"
backfill_share = 1.5
timezone = "Paris time"
max_in_flight = 0

[topics]
outcomes = "hubsync.dlq"
commands = "bad topic"

[stages.sink]
batch_size = 250
backoff_base = "10s"
backoff_max = "1s"

[stages.process]
max_attempts = 0

[stages.inbound]
page_size = 500

[state]
cache_capacity = "64KiB"

[admin]
listen = "localhost"

[[users.mapping]]
user = "ada"
owner = "501"

[[users.mapping]]
user = "ada"
owner = "502"

[activities]
email_opened = { store_as = "email" }
"#,
    );
    let fields = fields(&text);
    for expected in [
        "kafka.brokers",
        "kafka.group_id_prefix",
        "registry.url",
        "hubspot.base_url",
        "hubspot.max_in_flight",
        "hubspot.backfill_share",
        "hubspot.timezone",
        "topics.commands",
        "topics.dlq",
        "stages.process.max_attempts",
        "stages.sink.batch_size",
        "stages.sink.backoff_max",
        "stages.inbound.page_size",
        "state.cache_capacity",
        "admin.listen",
        "users.mapping[1].owner",
        "activities.email_opened.store_as",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} in {fields:?}"
        );
    }
    assert_eq!(fields.len(), 17, "{fields:?}");
    let error = Config::from_toml_str(&text).unwrap_err().to_string();
    assert!(error.starts_with(&format!(
        "invalid configuration, {} problems:",
        fields.len()
    )));
}

#[test]
fn the_webhook_receiver_needs_an_address_the_app_secret_and_a_usable_url() {
    let secret = "[hubspot]\nclient_secret = { env = \"APP_SECRET\" }\n";
    let good = with(&format!(
        "{secret}[stages.inbound]\nwebhook_listen = \"127.0.0.1:9465\"\n\
         webhook_public_url = \"https://hooks.example.com/hubspot/webhooks\"\n\
         webhook_max_body = \"256KiB\"\nwebhook_produce_timeout = \"2s\"\n"
    ));
    let config = Config::from_toml_str(&good).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.stages.inbound.webhook_listen.as_deref(),
        Some("127.0.0.1:9465")
    );
    assert_eq!(config.stages.inbound.webhook_max_body, ByteSize(256 * 1024));

    let bad_address = with(&format!(
        "{secret}[stages.inbound]\nwebhook_listen = \"localhost\"\n"
    ));
    let message = message_of(&bad_address, "stages.inbound.webhook_listen");
    assert!(
        message.contains("\"localhost\" is not an address"),
        "{message}"
    );

    let no_secret = with("[stages.inbound]\nwebhook_listen = \"127.0.0.1:9465\"\n");
    let message = message_of(&no_secret, "hubspot.client_secret");
    assert!(message.contains("webhook_listen"), "{message}");
    // Without a receiver the secret is not needed.
    assert!(problems(MINIMAL).is_empty());

    let rest = with(
        "[stages.inbound]\nwebhook_path = \"hubspot\"\n\
         webhook_public_url = \"hooks.example.com/x?y=1\"\nwebhook_max_body = 10\n\
         webhook_produce_timeout = \"0s\"\nwebhook_max_in_flight = 0\n",
    );
    assert_eq!(
        fields(&rest),
        [
            "stages.inbound.webhook_path",
            "stages.inbound.webhook_public_url",
            "stages.inbound.webhook_max_body",
            "stages.inbound.webhook_produce_timeout",
            "stages.inbound.webhook_max_in_flight",
        ]
    );
    let query = with("[stages.inbound]\nwebhook_public_url = \"https://h.example.com/x?y=1\"\n");
    assert_eq!(fields(&query), ["stages.inbound.webhook_public_url"]);
}

#[test]
fn polling_settings_are_checked_naming_the_field() {
    let good = with(
        "[stages.inbound]\npoll = true\npoll_from = \"2026-01-01T00:00:00Z\"\n\
         refresh_interval = \"7d\"\npoll_archived_every = \"15m\"\npoll_lists_every = \"1m\"\n",
    );
    let config = Config::from_toml_str(&good).unwrap_or_else(|e| panic!("{e}"));
    let inbound = &config.stages.inbound;
    assert!(inbound.poll);
    assert_eq!(inbound.poll_from_ms(), Some(1_767_225_600_000));
    assert_eq!(
        inbound.refresh_interval,
        Some(Duration::from_secs(7 * 86_400))
    );
    assert_eq!(inbound.poll_archived_every, Duration::from_secs(900));
    assert_eq!(inbound.poll_lists_every, Duration::from_secs(60));

    let bad = with(
        "[stages.inbound]\npoll_from = \"yesterday\"\nrefresh_interval = \"10m\"\n\
         poll_archived_every = \"0s\"\npoll_lists_every = \"0s\"\n",
    );
    assert_eq!(
        fields(&bad),
        [
            "stages.inbound.poll_from",
            "stages.inbound.refresh_interval",
            "stages.inbound.poll_archived_every",
            "stages.inbound.poll_lists_every",
        ]
    );
    let message = message_of(&bad, "stages.inbound.poll_from");
    assert!(message.contains("RFC 3339"), "{message}");
}

#[test]
fn followed_lists_are_team_rules_checked_naming_the_field() {
    let config = Config::from_toml_str(&with(
        "[[lists]]\nlist_id = \"42\"\n[[lists]]\nlist_id = \"43\"\non_leave = \"ignore\"\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = config
        .rules
        .lists
        .iter()
        .map(|l| l.list_id.as_str())
        .collect();
    assert_eq!(ids, ["42", "43"]);
    assert_eq!(
        fields(&with(
            "[[lists]]\nlist_id = \"42\"\n[[lists]]\nlist_id = \"my list\"\n"
        )),
        ["lists[1].list_id"]
    );
}

fn message_of(text: &str, field: &str) -> String {
    problems(text)
        .into_iter()
        .find(|p| p.field == field)
        .unwrap_or_else(|| panic!("no problem at {field}"))
        .message
}

#[test]
fn messages_say_what_is_allowed() {
    let batch = message_of(
        &with("[stages.sink]\nbatch_size = 0"),
        "stages.sink.batch_size",
    );
    assert!(batch.contains("outside 1..=100"), "{batch}");
    let replay = message_of(
        &with("[stages.sink]\nreplay_max_pending = 10"),
        "stages.sink.replay_max_pending",
    );
    assert!(replay.contains("10 is below 1000"), "{replay}");
    let share = message_of(
        &with("[hubspot]\nbackfill_share = -0.1"),
        "hubspot.backfill_share",
    );
    assert!(share.contains("outside 0.0..=1.0"), "{share}");
    let dlq = message_of(&with("[topics]\ndlq = \"hubsync.outcomes\""), "topics.dlq");
    assert!(dlq.contains("is also topics.outcomes"), "{dlq}");
    let listen = message_of(
        &with("[admin]\nlisten = \"localhost:9464\""),
        "admin.listen",
    );
    assert!(listen.contains("127.0.0.1:9464"), "{listen}");
    let url = message_of(&with("[registry]\nurl = \"registry:8081\""), "registry.url");
    assert!(url.contains("http or https URL"), "{url}");
    let id = message_of(
        &with("[sync.contacts]\nid_property = \"\""),
        "sync.contacts.id_property",
    );
    assert!(id.contains("unique values"), "{id}");
    let team = message_of(
        "[team]\nid = \"\"\nhubspot_portal_id = 0",
        "team.hubspot_portal_id",
    );
    assert!(team.contains("HubSpot account id"), "{team}");
}

#[test]
fn rules_problems_carry_their_paths() {
    let fields = fields(&with(
        r#"
[campaigns.cmp_1]
deal_triggers = ["email_replied"]

[[sync.contacts.mapping]]
source = "title"
property = "jobtitle"
[[sync.contacts.mapping]]
source = "role"
property = "jobtitle"
"#,
    ));
    assert_eq!(
        fields,
        [
            "sync.contacts.mapping[1].property",
            "sync.deals.pipeline",
            "sync.deals.stage"
        ]
    );
    let problems = problems(&with(
        "[sync.contacts.create]\ntrigger = { on_activity = \"email_answered\" }",
    ));
    assert_eq!(
        problems[0].field,
        "sync.contacts.create.trigger.on_activity"
    );
    assert!(
        problems[0].message.contains("`email_replied`"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_non_loopback_admin_address_is_allowed_with_a_warning() {
    let config = Config::from_toml_str(&with("[admin]\nlisten = \"0.0.0.0:9464\"")).unwrap();
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert_eq!(warnings[0].field, "admin.listen");
    assert_eq!(
        warnings[1].field, "admin.token",
        "the API answers nothing without one"
    );
    let with_token = Config::from_toml_str(&with(
        "[admin]\nlisten = \"0.0.0.0:9464\"\ntoken = { env = \"ADMIN_TOKEN\" }",
    ))
    .unwrap();
    assert_eq!(with_token.warnings().len(), 1);
    let v6 = Config::from_toml_str(&with("[admin]\nlisten = \"[::1]:9464\"")).unwrap();
    assert!(v6.warnings().is_empty());
}

#[test]
fn budget_overrides_above_the_tier_warn() {
    let config = Config::from_toml_str(&with("[hubspot]\nrequests_per_10s = 190")).unwrap();
    let warnings = config.warnings();
    assert_eq!(warnings[0].field, "hubspot.requests_per_10s");
    assert!(
        warnings[0].message.contains("starter tier's 100"),
        "{}",
        warnings[0]
    );
    assert_eq!(
        fields(&with("[hubspot]\nrequests_per_10s = 0")),
        ["hubspot.requests_per_10s"]
    );
}

#[test]
fn kafka_properties_take_plain_values_and_secrets() {
    let config = Config::from_toml_str(&with(
        r#"
[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "hubsync"
"sasl.password" = { env = "KAFKA_PASSWORD" }
"queued.max.messages.kbytes" = 65536
"enable.ssl.certificate.verification" = true
"#,
    ))
    .unwrap();
    let properties = &config.kafka.properties;
    assert_eq!(
        properties["queued.max.messages.kbytes"],
        KafkaProperty::Value("65536".into())
    );
    assert_eq!(
        properties["enable.ssl.certificate.verification"],
        KafkaProperty::Value("true".into())
    );
    assert_eq!(
        properties["sasl.password"],
        KafkaProperty::Secret(SecretSource::Env("KAFKA_PASSWORD".into()))
    );
    let secrets = config
        .resolve_secrets_with(&env(&[
            ("HUBSYNC_HUBSPOT_TOKEN", "pat-1"),
            ("KAFKA_PASSWORD", "hunter2"),
        ]))
        .unwrap();
    assert_eq!(secrets.kafka_properties.len(), 1);
    assert_eq!(secrets.kafka_properties[0].0, "sasl.password");
    assert_eq!(secrets.kafka_properties[0].1.expose(), "hunter2");
}

#[test]
fn the_consumer_group_protocol_leaves_sessions_and_assignment_to_the_brokers() {
    let problems = problems(&with(
        r#"
[kafka]
instance_id = "sink-0"
[kafka.properties]
"group.protocol" = "consumer"
"session.timeout.ms" = 6000
"fetch.wait.max.ms" = 100
"#,
    ));
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["kafka.properties.\"session.timeout.ms\""]);
    assert!(problems[0].message.contains("KIP-848"), "{}", problems[0]);
    let config = Config::from_toml_str(&with(
        "[kafka]\ninstance_id = \"sink-0\"\n[kafka.properties]\n\"group.protocol\" = \"consumer\"",
    ))
    .unwrap();
    let secrets = config
        .resolve_secrets_with(&env(&[("HUBSYNC_HUBSPOT_TOKEN", "pat-1")]))
        .unwrap();
    let client = crate::kafka::consumer_config(&config, &secrets, "sink");
    assert_eq!(client.get("group.protocol"), Some("consumer"));
    assert_eq!(client.get("group.instance.id"), Some("sink-0"));
    assert_eq!(client.get("session.timeout.ms"), None);
    assert_eq!(client.get("heartbeat.interval.ms"), None);
    assert_eq!(client.get("partition.assignment.strategy"), None);
    // The classic protocol: cooperative-sticky, hubsync's session timeout; readers by
    // assignment are nobody's static members.
    let classic = Config::from_toml_str(&with("[kafka]\ninstance_id = \"sink-0\"")).unwrap();
    let client = crate::kafka::consumer_config(&classic, &secrets, "sink");
    assert_eq!(
        client.get("partition.assignment.strategy"),
        Some("cooperative-sticky")
    );
    assert_eq!(client.get("session.timeout.ms"), Some("6000"));
    assert_eq!(client.get("heartbeat.interval.ms"), Some("2000"));
    let reader = crate::kafka::reader_config(&classic, &secrets, "restore");
    assert_eq!(reader.get("group.instance.id"), None);
    assert!(
        problems_of_text("[kafka]\ninstance_id = \"sink 0\"")
            .iter()
            .any(|p| p.field == "kafka.instance_id")
    );
}

fn problems_of_text(text: &str) -> Vec<Problem> {
    problems(&with(text))
}

#[test]
fn kafka_properties_hubsync_owns_or_plain_secrets_are_refused() {
    let problems = problems(&with(
        r#"
[kafka.properties]
"bootstrap.servers" = "elsewhere:9092"
"enable.auto.offset.store" = true
"sasl.password" = "hunter2"
"#,
    ));
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "kafka.properties.\"bootstrap.servers\"",
            "kafka.properties.\"enable.auto.offset.store\"",
            "kafka.properties.\"sasl.password\""
        ]
    );
    assert!(
        problems[0].message.contains("kafka.brokers"),
        "{}",
        problems[0]
    );
    assert!(
        problems[2].message.contains("{ env = \"VAR\" }"),
        "{}",
        problems[2]
    );
    assert!(!problems[2].message.contains("hunter2"));
}

#[test]
fn registry_basic_auth_needs_both_halves_and_no_url_credentials() {
    assert_eq!(
        fields(&with("[registry]\nusername = \"hubsync\"")),
        ["registry.password"]
    );
    assert_eq!(
        fields(&with(
            "[registry]\npassword = { env = \"REGISTRY_PASSWORD\" }"
        )),
        ["registry.username"]
    );
    let problems = problems(&with(
        "[registry]\nurl = \"https://hubsync:hunter2@registry.example.com\"",
    ));
    assert_eq!(problems[0].field, "registry.url");
    assert!(!problems[0].message.contains("hunter2"), "{}", problems[0]);
}

#[test]
fn an_inline_token_is_refused_without_echoing_it() {
    let text = with("[hubspot]\ntoken = \"pat-na1-secret\"");
    let error = Config::from_toml_str(&text).unwrap_err();
    let problems = error.problems();
    assert_eq!(problems[0].field, "hubspot.token");
    assert!(
        problems[0].message.contains("{ env = \"VAR\" }"),
        "{}",
        problems[0]
    );
    assert!(!error.to_string().contains("pat-na1"), "{error}");
}

#[test]
fn a_resolved_secret_never_shows_in_debug_output() {
    let mut config = Config::from_toml_str(MINIMAL).unwrap();
    config.hubspot.token = SecretSource::Value(Secret::new("pat-na1-very-secret"));
    config.registry.username = Some("hubsync".into());
    config.registry.password = Some(SecretSource::Value(Secret::new("registry-very-secret")));
    let secrets = config.resolve_secrets_with(&|_| None).unwrap();
    for text in [
        format!("{config:?}"),
        format!("{config:#?}"),
        format!("{secrets:?}"),
        format!("{}", secrets.hubspot_token),
    ] {
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }
    assert_eq!(secrets.hubspot_token.expose(), "pat-na1-very-secret");
}

#[test]
fn secrets_resolve_from_env_and_file_and_every_failure_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("registry-password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let text = with(&format!(
        r#"
[registry]
username = "hubsync"
password = {{ file = {} }}

[kafka.properties]
"sasl.password" = {{ env = "KAFKA_PASSWORD" }}
"#,
        toml::Value::String(password.display().to_string())
    ));
    let config = Config::from_toml_str(&text).unwrap();

    let secrets = config
        .resolve_secrets_with(&env(&[
            ("HUBSYNC_HUBSPOT_TOKEN", "pat-env"),
            ("KAFKA_PASSWORD", "k"),
        ]))
        .unwrap();
    assert_eq!(secrets.hubspot_token.expose(), "pat-env");
    assert_eq!(secrets.registry_password.unwrap().expose(), "s3cret");

    std::fs::remove_file(&password).unwrap();
    let Err(ConfigError::Secrets { problems }) = config.resolve_secrets_with(&|_| None) else {
        panic!("secrets should be missing");
    };
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "hubspot.token",
            "registry.password",
            "kafka.properties.\"sasl.password\""
        ]
    );
    assert!(
        problems[0]
            .message
            .contains("HUBSYNC_HUBSPOT_TOKEN is not set")
    );
    assert!(problems[1].message.contains("registry-password"));
    assert!(problems[2].message.contains("KAFKA_PASSWORD"));
}

#[test]
fn load_applies_the_environment_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hubsync.toml");
    std::fs::write(&path, with("[kafka]\nbrokers = \"from-file:9092\"")).unwrap();

    let plain = Config::load_with_env(&path, &|_| None).unwrap();
    assert_eq!(plain.kafka.brokers, "from-file:9092");
    assert!(plain.env_overrides.is_empty());

    let overridden = Config::load_with_env(
        &path,
        &env(&[
            ("HUBSYNC_KAFKA_BROKERS", "from-env:9092"),
            ("HUBSYNC_INSTANCE_ID", "hubsync-sink-2"),
            ("HUBSYNC_REGISTRY_URL", "http://registry.internal:8081"),
            ("HUBSYNC_HUBSPOT_URL", "http://127.0.0.1:38080"),
        ]),
    )
    .unwrap();
    assert_eq!(overridden.kafka.brokers, "from-env:9092");
    assert_eq!(overridden.kafka.instance_id, "hubsync-sink-2");
    assert_eq!(overridden.registry.url, "http://registry.internal:8081");
    assert_eq!(overridden.hubspot.base_url, "http://127.0.0.1:38080");
    assert_eq!(overridden.env_overrides, ENV_OVERRIDES);

    let empty = Config::load_with_env(&path, &env(&[("HUBSYNC_KAFKA_BROKERS", "")])).unwrap();
    assert_eq!(empty.kafka.brokers, "from-file:9092");
}

#[test]
fn an_invalid_override_is_blamed_on_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hubsync.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    let error =
        Config::load_with_env(&path, &env(&[("HUBSYNC_HUBSPOT_URL", "not a url")])).unwrap_err();
    let problems = error.problems();
    assert_eq!(problems[0].field, "hubspot.base_url");
    assert!(
        problems[0]
            .message
            .contains("environment variable HUBSYNC_HUBSPOT_URL"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_missing_file_is_a_read_error() {
    let error = Config::load_with_env("/nonexistent/hubsync.toml", &|_| None).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(
        error.to_string().contains("/nonexistent/hubsync.toml"),
        "{error}"
    );
}

#[test]
fn the_documented_example_is_valid() {
    let config =
        Config::load_with_env(example_path(), &|_| None).unwrap_or_else(|error| panic!("{error}"));
    assert!(config.rules.sync.contacts.mapping.len() >= 3);
    assert!(!config.rules.users.mapping.is_empty());
    assert!(!config.rules.campaigns.is_empty());
    assert_eq!(
        config
            .rules
            .activities
            .policy(ActivityType::EmailOpened)
            .store_as,
        StoreAs::Note
    );
}

/// Whatever a configuration or team file holds, reading it answers a configuration or the
/// problems found; it never panics.
mod arbitrary_input {
    use proptest::prelude::*;

    use super::*;

    /// A whole configuration in the sandbox's shape, to damage.
    fn full() -> String {
        with(
            "[hubspot]\ntier = \"professional\"\n\n[sync.contacts]\nmandatory = [\"email\"]\n\
             defaults = { lifecyclestage = \"lead\" }\nowner_strategy = \"if_empty\"\n\n\
             [[sync.contacts.mapping]]\nsource = \"phone\"\nproperty = \"phone\"\n\
             fill_if_empty = true\n\n[stages.sink]\nlinger = \"250ms\"\nbatch_size = 100\n",
        )
    }

    proptest! {
        #[test]
        fn arbitrary_text_is_read_or_refused(text in ".{0,300}") {
            let _ = Config::from_toml_str(&text);
        }

        #[test]
        fn a_damaged_configuration_is_read_or_refused(
            at in any::<prop::sample::Index>(),
            len in 0usize..20,
            insert in "[a-z0-9_=\\[\\]\"{}.,# \n-]{0,12}",
        ) {
            let text = full();
            prop_assert!(Config::from_toml_str(&text).is_ok(), "the undamaged file reads");
            let start = at.index(text.len());
            let end = (start + len).min(text.len());
            if text.is_char_boundary(start) && text.is_char_boundary(end) {
                let damaged = format!("{}{insert}{}", &text[..start], &text[end..]);
                let _ = Config::from_toml_str(&damaged);
            }
        }
    }
}

#[test]
fn fields_that_flow_from_hubspot_with_no_way_in_are_a_warning() {
    let both = "[[sync.contacts.mapping]]\nsource = \"job_title\"\nproperty = \"jobtitle\"\n\
                direction = \"both\"\n";
    let fields_warned = |text: &str| -> Vec<String> {
        Config::from_toml_str(text)
            .unwrap()
            .warnings()
            .into_iter()
            .map(|w| w.field)
            .collect()
    };
    assert_eq!(fields_warned(&with(both)), ["stages.inbound"]);
    let webhooks = format!(
        "{both}[hubspot]\nclient_secret = {{ env = \"S\" }}\n\
         [stages.inbound]\nwebhook_listen = \"127.0.0.1:9465\"\n"
    );
    assert!(fields_warned(&with(&webhooks)).is_empty());
    let polling = format!("{both}[stages.inbound]\npoll = true\n");
    assert_eq!(fields_warned(&with(&polling)), ["hubspot.app_id"]);
    let polling = format!("{both}[hubspot]\napp_id = 3141592\n[stages.inbound]\npoll = true\n");
    assert!(fields_warned(&with(&polling)).is_empty());
    let quick = format!(
        "{both}[hubspot]\napp_id = 3141592\n[stages.inbound]\npoll = true\nsearch_lag = \"5s\"\n"
    );
    assert_eq!(fields_warned(&with(&quick)), ["stages.inbound.search_lag"]);
    // Fields that only flow to HubSpot need no way in.
    assert!(fields_warned(&with("")).is_empty());
}
