//! HubSpot -> upstream in the demo. The sandbox sends HubSpot's signed webhooks for the app
//! hubsync writes with to the pipeline's receiver, so every write hubsync makes comes back as
//! events, as in real HubSpot, and must go no further (an echo). Once every upstream event has
//! its outcome and every webhook is in, HubSpot users edit a sample of the contacts hubsync
//! wrote, through the sandbox's admin API, and what must reach `crm.hubspot.changes` is exact:
//!
//! ```text
//! user 9100001 edits contact 151 (upstream c_000042, written by hubsync):
//!   jobtitle "Data Engineer" -> "Senior Data Engineer"  both         -> c_000042 job_title = "Senior Data Engineer"
//!   lifecyclestage "lead" -> "marketingqualifiedlead"  from_hubspot -> c_000042 stage = "marketingqualifiedlead"
//!   lastname "Hopper" -> "Hopper-Lovelace"              to_hubspot   -> nothing
//! hubsync's own writes (INTEGRATION, its app id)                    -> nothing
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_sandbox::hubspot::webhooks::WebhookConfig;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

use super::collect::{Change, Collector};
use super::names;
use crate::cli::sandbox::Sandbox;

/// The client secret of the app hubsync writes with: the sandbox signs its webhooks with it
/// and the receiver checks them with it.
pub const APP_SECRET: &str = "hubsync-demo-app-secret";

/// The variable the demo's configuration names for the client secret; the demo sets the
/// secret itself ([`APP_SECRET`]).
pub const CLIENT_SECRET_ENV: &str = "HUBSYNC_HUBSPOT_CLIENT_SECRET";

/// Contacts hubsync wrote that each team's HubSpot users edit.
pub const EDITED_CONTACTS: usize = 12;

/// The HubSpot users who edit them, in turn.
const USERS: [u64; 3] = [9_100_001, 9_100_002, 9_100_003];

/// Share of webhook events the sandbox sends twice, as HubSpot sometimes does.
const DUPLICATE_RATE: f64 = 0.01;

/// Mixed into the seed of the sample of edited contacts.
const SAMPLE_SEED: u64 = 0x0002_3a7e_d175;

/// How long the two-way part may take, from the last outcome.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Each HubSpot property the users edit, and the upstream field its change must reach: the
/// mapping the demo's configuration gives it (`None`: it flows to HubSpot only, so nothing
/// goes up).
pub struct Edited {
    pub property: &'static str,
    pub label: &'static str,
    pub direction: &'static str,
    pub field: Option<&'static str>,
}

pub const EDITED: [Edited; 3] = [
    Edited {
        property: "jobtitle",
        label: "job title",
        direction: "both",
        field: Some("job_title"),
    },
    Edited {
        property: "lifecyclestage",
        label: "lifecycle stage",
        direction: "from_hubspot",
        field: Some("stage"),
    },
    Edited {
        property: "lastname",
        label: "last name",
        direction: "to_hubspot",
        field: None,
    },
];

/// HubSpot's lifecycle stages in order; a user moves a contact one stage on.
const STAGES: [&str; 7] = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
];

/// One HubSpot user's edit of one contact hubsync wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub portal: u64,
    pub hubspot_id: String,
    pub upstream_id: String,
    pub user_id: u64,
    /// The new value of each of [`EDITED`], in order.
    pub values: Vec<String>,
}

/// One change upstream must receive: the upstream record, the field, the value.
pub type Foreseen = (String, String, String);

impl Edit {
    /// What the edit must send upstream: a change per edited property mapped back.
    pub fn foreseen(&self) -> Vec<Foreseen> {
        EDITED
            .iter()
            .zip(&self.values)
            .filter_map(|(edited, value)| {
                Some((
                    self.upstream_id.clone(),
                    edited.field?.to_string(),
                    value.clone(),
                ))
            })
            .collect()
    }
}

/// The edits of one portal's users: a seeded sample of the contacts hubsync wrote (`written`:
/// upstream id -> HubSpot id, from the outcomes) that HubSpot holds (`records`, the portal's
/// contacts), each promoted, moved one lifecycle stage on and renamed.
pub fn plan(
    portal: u64,
    written: &BTreeMap<String, String>,
    records: &[Value],
    seed: u64,
) -> Vec<Edit> {
    let held: HashMap<&str, &Value> = records
        .iter()
        .filter_map(|record| Some((record["id"].as_str()?, &record["properties"])))
        .collect();
    // A HubSpot record that stands for two upstream records has no one upstream id to go to.
    let mut upstream_ids: HashMap<&str, usize> = HashMap::new();
    for hubspot_id in written.values() {
        *upstream_ids.entry(hubspot_id.as_str()).or_default() += 1;
    }
    let candidates: Vec<(&String, &String)> = written
        .iter()
        .filter(|(_, id)| held.contains_key(id.as_str()) && upstream_ids[id.as_str()] == 1)
        .collect();
    let mut rng = StdRng::seed_from_u64(seed ^ SAMPLE_SEED);
    let mut chosen: Vec<(&String, &String)> = candidates
        .choose_multiple(&mut rng, EDITED_CONTACTS)
        .copied()
        .collect();
    chosen.sort_unstable();
    chosen
        .into_iter()
        .enumerate()
        .map(|(n, (upstream_id, hubspot_id))| {
            let properties = held[hubspot_id.as_str()];
            let now = |property: &str| properties[property].as_str().unwrap_or_default();
            Edit {
                portal,
                hubspot_id: hubspot_id.clone(),
                upstream_id: upstream_id.clone(),
                user_id: USERS[n % USERS.len()],
                values: vec![
                    promoted(now("jobtitle")),
                    next_stage(now("lifecyclestage")).to_string(),
                    renamed(now("lastname"), n),
                ],
            }
        })
        .collect()
}

/// A title one step up from `title`; never `title` itself.
fn promoted(title: &str) -> String {
    if let Some((_, next)) = names::PROMOTIONS.iter().find(|(from, _)| *from == title) {
        return (*next).to_string();
    }
    match title {
        "" => "Partnerships Manager".to_string(),
        _ if title.starts_with("Senior ") => format!("Lead {}", &title["Senior ".len()..]),
        _ => format!("Senior {title}"),
    }
}

/// The lifecycle stage after `stage`; never `stage` itself.
fn next_stage(stage: &str) -> &'static str {
    match STAGES.iter().position(|s| *s == stage) {
        Some(at) if at + 1 < STAGES.len() => STAGES[at + 1],
        Some(_) => STAGES[0],
        None => "opportunity",
    }
}

/// A double-barrelled `last`: a marriage, say.
fn renamed(last: &str, n: usize) -> String {
    let other = names::LAST_NAMES[n % names::LAST_NAMES.len()];
    if last.is_empty() {
        other.to_string()
    } else {
        format!("{last}-{other}")
    }
}

/// Points the webhook of each app the teams' tokens belong to at the receiver, so that every
/// change in their portals, hubsync's writes included, comes back as events.
pub fn listen(
    sandbox: &Sandbox,
    receiver: SocketAddr,
    path: &str,
    seed: u64,
) -> anyhow::Result<()> {
    let apps: BTreeSet<u64> = sandbox
        .teams
        .iter()
        .filter_map(|(portal, token, _, _)| Some(sandbox.portals.portal(*portal)?.app_of(token)))
        .collect();
    for app_id in apps {
        sandbox
            .hubspot
            .webhooks()
            .configure(WebhookConfig {
                app_id,
                target_url: format!("http://{receiver}{path}"),
                client_secret: APP_SECRET.to_string(),
                duplicate_rate: DUPLICATE_RATE,
                seed,
                ..WebhookConfig::default()
            })
            .map_err(|problem| anyhow::anyhow!("the sandbox's webhook: {problem}"))?;
    }
    Ok(())
}

/// The inbound stage's counts, from the pipeline's metrics: every portal's, since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Events the receiver put on Kafka.
    pub received: f64,
    /// Changes the forwarder sent upstream.
    pub sent: f64,
    pub echoes: f64,
    pub duplicates: f64,
    pub unmapped: f64,
    /// Events dropped for any other reason (stale, unsupported, of no served portal).
    pub other: f64,
    /// Outcomes the inbound stage learned an upstream id from.
    pub identities: f64,
}

impl Counts {
    pub fn from_metrics(rendered: &str) -> Counts {
        let dropped = |result: &str| {
            metric(
                rendered,
                "hubsync_inbound_events_total",
                Some(("result", result)),
            )
        };
        Counts {
            received: metric(
                rendered,
                "hubsync_webhook_events_total",
                Some(("result", "accepted")),
            ),
            sent: metric(rendered, "hubsync_inbound_changes_total", None),
            echoes: dropped("echo"),
            duplicates: dropped("duplicate"),
            unmapped: dropped("unmapped"),
            other: metric(rendered, "hubsync_inbound_events_total", None)
                - dropped("echo")
                - dropped("duplicate")
                - dropped("unmapped"),
            identities: metric(rendered, "hubsync_inbound_identities_learned_total", None),
        }
    }

    /// Whether the forwarder has read every event the receiver took.
    fn caught_up(&self) -> bool {
        self.sent + self.echoes + self.duplicates + self.unmapped + self.other >= self.received
    }
}

/// The sum of the series of `name` (with `label` = value, when given) in Prometheus text.
fn metric(rendered: &str, name: &str, label: Option<(&str, &str)>) -> f64 {
    rendered
        .lines()
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let labels = match series.strip_prefix(name)? {
                "" => "",
                rest => rest.strip_prefix('{')?.strip_suffix('}')?,
            };
            let wanted = label.is_none_or(|(key, value)| {
                labels
                    .split(',')
                    .any(|pair| pair == format!("{key}=\"{value}\""))
            });
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The webhook requests the sandbox sent for one portal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// Requests answered 2xx.
    pub delivered: usize,
    /// Attempts that failed and were tried again.
    pub retried: usize,
    /// Events in the delivered requests.
    pub events: usize,
    /// Of them, second copies of an event delivered already (same event id).
    pub copies: usize,
}

impl Deliveries {
    /// From the sandbox's log of attempts (`GET /__admin/webhooks/deliveries`).
    pub fn of_portal(log: &Value, portal: u64) -> Deliveries {
        let mut deliveries = Deliveries::default();
        let mut ids = BTreeSet::new();
        for attempt in log["deliveries"].as_array().into_iter().flatten() {
            if attempt["portal_id"].as_u64() != Some(portal) {
                continue;
            }
            match attempt["result"].as_str() {
                Some("delivered") => {
                    deliveries.delivered += 1;
                    for id in attempt["event_ids"].as_array().into_iter().flatten() {
                        deliveries.events += 1;
                        if !ids.insert(id.as_u64()) {
                            deliveries.copies += 1;
                        }
                    }
                }
                Some("retrying") => deliveries.retried += 1,
                _ => {}
            }
        }
        deliveries
    }
}

/// What the two-way part did, for every team.
pub struct Run {
    pub edits: Vec<Edit>,
    /// From the first edit until every foreseen change was read upstream (`None`: not all were).
    pub took: Option<Duration>,
    /// Whether every webhook was delivered and read by the end.
    pub settled: bool,
    pub counts: Counts,
    /// The whole part: waiting for the webhooks, the edits, their changes upstream.
    pub spent: Duration,
}

/// Waits until HubSpot has sent every webhook and the pipeline has read them and learned every
/// identity, has each team's users edit the contacts [`plan`] picks (`teams`: each portal and
/// what hubsync wrote there, upstream id -> HubSpot id), and waits until their changes are
/// upstream and every webhook of them has been read.
pub async fn run(
    sandbox: &Sandbox,
    collector: &Collector,
    teams: &[(u64, BTreeMap<String, String>)],
    metrics: &dyn Fn() -> Option<String>,
    seed: u64,
) -> anyhow::Result<Run> {
    let begun = Instant::now();
    let deadline = begun + TIMEOUT;
    let identities = collector.tally().identities;
    let mut settled = settle(sandbox, metrics, identities, deadline).await;
    let mut edits = Vec::new();
    for (portal_id, written) in teams {
        let portal = sandbox
            .portals
            .portal(*portal_id)
            .with_context(|| format!("the sandbox has no portal {portal_id}"))?;
        edits.extend(plan(
            *portal_id,
            written,
            &portal.snapshot(ObjectType::Contacts),
            seed,
        ));
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("the HTTP client")?;
    let edited = Instant::now();
    for edit in &edits {
        edit_as_user(&http, &sandbox.hubspot_server.url(), edit).await?;
    }
    let mut foreseen: Vec<Foreseen> = edits.iter().flat_map(Edit::foreseen).collect();
    foreseen.sort_unstable();
    let mut took = None;
    while Instant::now() < deadline {
        let seen = collector.tally().changes.iter().flat_map(values).count();
        if seen >= foreseen.len() {
            took = Some(edited.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Whatever else the edits send (a field that must stay in HubSpot) is in before the end.
    settled &= settle(sandbox, metrics, identities, deadline).await;
    let counts = metrics()
        .map(|text| Counts::from_metrics(&text))
        .unwrap_or_default();
    Ok(Run {
        edits,
        took,
        settled,
        counts,
        spent: begun.elapsed(),
    })
}

/// `PATCH /__admin/portals/{portal}/objects/contacts/{id}`: the edit, as a HubSpot user.
async fn edit_as_user(http: &reqwest::Client, hubspot: &str, edit: &Edit) -> anyhow::Result<()> {
    let properties: serde_json::Map<String, Value> = EDITED
        .iter()
        .zip(&edit.values)
        .map(|(edited, value)| (edited.property.to_string(), json!(value)))
        .collect();
    let url = format!(
        "{hubspot}/__admin/portals/{}/objects/contacts/{}",
        edit.portal, edit.hubspot_id
    );
    let answer = http
        .patch(&url)
        .json(&json!({ "properties": properties, "user_id": edit.user_id }))
        .send()
        .await
        .with_context(|| format!("PATCH {url}"))?;
    let status = answer.status();
    anyhow::ensure!(
        status.is_success(),
        "the sandbox refused user {}'s edit of contact {}: {status} {}",
        edit.user_id,
        edit.hubspot_id,
        answer.text().await.unwrap_or_default()
    );
    Ok(())
}

/// Waits until the sandbox has no webhook event left to send, the forwarder has read every
/// event the receiver took and the inbound stage has learned `identities` upstream ids, for a
/// few polls in a row; whether it came to that before `deadline`. Without metrics, it waits
/// for the sandbox alone.
async fn settle(
    sandbox: &Sandbox,
    metrics: &dyn Fn() -> Option<String>,
    identities: usize,
    deadline: Instant,
) -> bool {
    let mut quiet_polls = 0;
    while Instant::now() < deadline {
        let sent_all = sandbox.hubspot.webhooks().list().iter().all(|hook| {
            hook["pending_events"].as_u64() == Some(0)
                && hook["unfinished_requests"].as_u64() == Some(0)
        });
        let read_all = metrics().is_none_or(|text| {
            let counts = Counts::from_metrics(&text);
            counts.caught_up() && counts.identities >= identities as f64
        });
        quiet_polls = if sent_all && read_all {
            quiet_polls + 1
        } else {
            0
        };
        if quiet_polls >= 3 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The (upstream record, field, value) a change sets: one per field.
fn values(change: &Change) -> impl Iterator<Item = Foreseen> + '_ {
    change.fields.iter().map(|(field, value)| {
        (
            change.record_id.clone().unwrap_or_else(|| "?".to_string()),
            field.clone(),
            value.clone().unwrap_or_default(),
        )
    })
}

/// Whether a change is an echo: one of hubsync's own writes sent back up.
fn is_echo(change: &Change) -> bool {
    change.change_source.as_deref() == Some("INTEGRATION")
}

/// One team's part of the two-way run, as its report shows it.
#[derive(Debug, Clone, Default)]
pub struct TwoWay {
    pub edits: Vec<Edit>,
    /// The team's changes read from `crm.hubspot.changes`.
    pub changes: Vec<Change>,
    pub deliveries: Deliveries,
    pub counts: Counts,
    pub took: Option<Duration>,
    pub settled: bool,
    pub spent: Duration,
}

impl TwoWay {
    pub fn new(team: &str, portal: u64, run: &Run, changes: &[Change], log: &Value) -> TwoWay {
        TwoWay {
            edits: run
                .edits
                .iter()
                .filter(|e| e.portal == portal)
                .cloned()
                .collect(),
            changes: changes
                .iter()
                .filter(|c| c.team.as_deref() == Some(team))
                .cloned()
                .collect(),
            deliveries: Deliveries::of_portal(log, portal),
            counts: run.counts,
            took: run.took,
            settled: run.settled,
            spent: run.spent,
        }
    }

    fn foreseen(&self) -> Vec<Foreseen> {
        let mut foreseen: Vec<Foreseen> = self.edits.iter().flat_map(Edit::foreseen).collect();
        foreseen.sort_unstable();
        foreseen
    }

    /// Every field value sent upstream, sorted.
    fn seen(&self) -> Vec<Foreseen> {
        let mut seen: Vec<Foreseen> = self.changes.iter().flat_map(values).collect();
        seen.sort_unstable();
        seen
    }

    pub fn echoes(&self) -> usize {
        self.changes.iter().filter(|c| is_echo(c)).count()
    }

    /// How the run differs from the prediction.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let (missing, extra) = difference(&self.foreseen(), &self.seen());
        let show = |values: &[Foreseen]| {
            values
                .iter()
                .take(3)
                .map(|(record, field, value)| format!("{record} {field} = {value:?}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !missing.is_empty() {
            problems.push(format!(
                "{} of the HubSpot users' changes never reached upstream, e.g. {}",
                missing.len(),
                show(&missing)
            ));
        }
        if !extra.is_empty() {
            problems.push(format!(
                "{} field values went upstream that no user's edit of a field mapped back made (or went twice), e.g. {}",
                extra.len(),
                show(&extra)
            ));
        }
        let others: Vec<&Change> = self
            .changes
            .iter()
            .filter(|c| c.fields.is_empty())
            .collect();
        if !others.is_empty() {
            problems.push(format!(
                "{} HubSpot changes went upstream that no user made, e.g. {:?}",
                others.len(),
                others[0]
            ));
        }
        let echoes = self.echoes();
        if echoes > 0 {
            problems.push(format!(
                "{echoes} of hubsync's own writes went back upstream (echoes)"
            ));
        }
        if self.counts.echoes == 0.0 {
            problems.push(
                "no webhook brought hubsync's own writes back: HubSpot's webhooks never reached the receiver"
                    .to_string(),
            );
        }
        if !self.settled {
            problems.push(
                "HubSpot's webhooks were not all delivered and read when the run ended".to_string(),
            );
        }
        problems
    }

    pub fn render(&self, out: &mut String) {
        let foreseen = self.foreseen();
        let seen = self.seen();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<60}{:>11}{:>10}",
            format!(
                "HubSpot -> upstream (users edit {} contacts)",
                self.edits.len()
            ),
            "changes",
            "expected"
        );
        for edited in &EDITED {
            let (what, got, want) = match edited.field {
                Some(field) => (
                    format!("{} ({}) -> {field}", edited.label, edited.direction),
                    seen.iter().filter(|(_, f, _)| f == field).count(),
                    foreseen.iter().filter(|(_, f, _)| f == field).count(),
                ),
                None => (
                    format!("{} ({}): stays in HubSpot", edited.label, edited.direction),
                    self.changes
                        .iter()
                        .filter(|c| c.property.as_deref() == Some(edited.property))
                        .count(),
                    0,
                ),
            };
            let _ = writeln!(out, "  {what:<58}{got:>11}{want:>10}");
        }
        let _ = writeln!(
            out,
            "  {:<58}{:>11}{:>10}",
            "hubsync's own writes (echoes)",
            self.echoes(),
            0
        );
        let _ = writeln!(out, "hubspot changes: {}", seen.len());
        let _ = writeln!(out, "expected hubspot changes: {}", foreseen.len());
        let _ = writeln!(out, "echoes sent up: {}", self.echoes());
        let c = &self.counts;
        let _ = writeln!(out, "echoes dropped: {:.0}", c.echoes);
        let d = &self.deliveries;
        let _ = writeln!(
            out,
            "  HubSpot's webhooks to this portal's app: {} requests delivered ({} attempts retried), {} events, {} of them copies",
            d.delivered, d.retried, d.events, d.copies
        );
        let _ = writeln!(
            out,
            "  the inbound stage (every portal) received {:.0} events and dropped {:.0} echoes of hubsync's writes, {:.0} of properties not mapped back, {:.0} duplicates and {:.0} for other reasons",
            c.received, c.echoes, c.unmapped, c.duplicates, c.other
        );
        if let Some(took) = self.took {
            let _ = writeln!(
                out,
                "  the users' changes were upstream {:.1} s after their edits",
                took.as_secs_f64()
            );
        }
    }
}

/// What `want` has that `got` lacks, and what `got` has beyond `want` (both sorted, as
/// multisets).
fn difference(want: &[Foreseen], got: &[Foreseen]) -> (Vec<Foreseen>, Vec<Foreseen>) {
    let mut count: BTreeMap<&Foreseen, i64> = BTreeMap::new();
    for value in want {
        *count.entry(value).or_default() += 1;
    }
    for value in got {
        *count.entry(value).or_default() -= 1;
    }
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for (value, n) in count {
        for _ in 0..n.max(0) {
            missing.push(value.clone());
        }
        for _ in 0..(-n).max(0) {
            extra.push(value.clone());
        }
    }
    (missing, extra)
}

#[cfg(test)]
mod tests {
    use hubsync_schemas::HubSpotChangeKind;

    use super::*;

    fn contact(id: &str, title: &str, stage: &str, last: &str) -> Value {
        json!({"id": id, "properties": {"jobtitle": title, "lifecyclestage": stage, "lastname": last}})
    }

    #[test]
    fn a_sample_of_written_contacts_is_edited_and_each_mapped_field_goes_up() {
        let written: BTreeMap<String, String> = (0..40)
            .map(|n| (format!("c_{n:03}"), format!("{}", 100 + n)))
            .collect();
        let records: Vec<Value> = (0..40)
            .map(|n| contact(&format!("{}", 100 + n), "Data Engineer", "lead", "Hopper"))
            .collect();
        let edits = plan(7, &written, &records, 42);
        assert_eq!(edits, plan(7, &written, &records, 42), "seeded");
        assert_eq!(edits.len(), EDITED_CONTACTS);
        for edit in &edits {
            assert_eq!(written[&edit.upstream_id], edit.hubspot_id);
            assert_eq!(edit.values[0], "Senior Data Engineer");
            assert_eq!(edit.values[1], "marketingqualifiedlead");
            assert!(edit.values[2].starts_with("Hopper-"), "{edit:?}");
            assert_eq!(
                edit.foreseen(),
                [
                    (
                        edit.upstream_id.clone(),
                        "job_title".to_string(),
                        "Senior Data Engineer".to_string()
                    ),
                    (
                        edit.upstream_id.clone(),
                        "stage".to_string(),
                        "marketingqualifiedlead".to_string()
                    ),
                ]
            );
        }
    }

    #[test]
    fn a_record_hubspot_lacks_or_shared_by_two_upstream_records_is_not_edited() {
        let written: BTreeMap<String, String> = [("c_a", "1"), ("c_b", "2"), ("c_c", "2")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let records = vec![contact("2", "", "", "")];
        assert!(plan(1, &written, &records, 1).is_empty());
        let records = vec![contact("1", "", "", "")];
        let edits = plan(1, &written, &records, 1);
        assert_eq!(edits.len(), 1);
        assert_eq!(edits[0].upstream_id, "c_a");
    }

    #[test]
    fn every_new_value_differs_from_the_old_one() {
        for title in names::JOB_TITLES
            .iter()
            .chain([&"", &"Senior Account Executive"])
        {
            assert_ne!(promoted(title), *title);
        }
        for stage in STAGES.iter().chain([&"", &"other"]) {
            assert_ne!(next_stage(stage), *stage);
        }
        for (n, last) in names::LAST_NAMES.iter().enumerate() {
            assert_ne!(renamed(last, n), *last);
            assert_ne!(renamed("", n), "");
        }
    }

    #[test]
    fn counts_come_from_the_rendered_metrics() {
        let text = "\
hubsync_webhook_events_total{result=\"accepted\"} 120
hubsync_webhook_events_total{result=\"unknown_portal\"} 3
hubsync_inbound_events_total{result=\"echo\"} 80
hubsync_inbound_events_total{result=\"duplicate\"} 2
hubsync_inbound_events_total{result=\"unmapped\"} 30
hubsync_inbound_events_total{result=\"stale\"} 1
hubsync_inbound_changes_total{team=\"a\",change=\"PROPERTY_CHANGED\",via=\"webhook\"} 5
hubsync_inbound_changes_total{team=\"b\",change=\"PROPERTY_CHANGED\",via=\"webhook\"} 2
hubsync_inbound_identities_learned_total 40
";
        let counts = Counts::from_metrics(text);
        assert_eq!(
            counts,
            Counts {
                received: 120.0,
                sent: 7.0,
                echoes: 80.0,
                duplicates: 2.0,
                unmapped: 30.0,
                other: 1.0,
                identities: 40.0,
            }
        );
        assert!(counts.caught_up(), "120 received, 120 read");
        assert!(
            !Counts {
                received: 121.0,
                ..counts
            }
            .caught_up()
        );
        assert_eq!(Counts::from_metrics(""), Counts::default());
    }

    fn change(record: &str, field: &str, value: &str, source: &str) -> Change {
        Change {
            team: Some("t".to_string()),
            kind: HubSpotChangeKind::PropertyChanged,
            object_id: "1".to_string(),
            record_id: Some(record.to_string()),
            property: Some("jobtitle".to_string()),
            fields: vec![(field.to_string(), Some(value.to_string()))],
            change_source: Some(source.to_string()),
        }
    }

    #[test]
    fn a_missing_change_an_extra_one_and_an_echo_are_problems() {
        let edit = Edit {
            portal: 1,
            hubspot_id: "1".to_string(),
            upstream_id: "c_a".to_string(),
            user_id: 9,
            values: vec!["CTO".into(), "customer".into(), "Lovelace".into()],
        };
        let mut two_way = TwoWay {
            edits: vec![edit],
            changes: vec![
                change("c_a", "job_title", "CTO", "CRM_UI"),
                change("c_a", "stage", "customer", "CRM_UI"),
            ],
            counts: Counts {
                echoes: 10.0,
                ..Counts::default()
            },
            settled: true,
            ..TwoWay::default()
        };
        assert_eq!(two_way.problems(), Vec::<String>::new());
        let mut text = String::new();
        two_way.render(&mut text);
        assert!(text.contains("hubspot changes: 2\n"), "{text}");
        assert!(text.contains("expected hubspot changes: 2\n"), "{text}");
        assert!(text.contains("echoes sent up: 0\n"), "{text}");

        two_way.changes.remove(1);
        two_way
            .changes
            .push(change("c_a", "job_title", "CTO", "CRM_UI"));
        two_way
            .changes
            .push(change("c_a", "job_title", "VP", "INTEGRATION"));
        let problems = two_way.problems().join("\n");
        assert!(problems.contains("1 of the HubSpot users' changes never reached upstream, e.g. c_a stage = \"customer\""), "{problems}");
        assert!(
            problems.contains("2 field values went upstream"),
            "{problems}"
        );
        assert!(
            problems.contains("1 of hubsync's own writes went back upstream"),
            "{problems}"
        );
    }
}
