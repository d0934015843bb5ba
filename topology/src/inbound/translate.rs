//! One HubSpot event (as a webhook delivered it, or as polling read it) -> what goes upstream.
//!
//! ```text
//! {"subscriptionType":"contact.propertyChange","portalId":62515,"objectId":51,
//!  "propertyName":"jobtitle","propertyValue":"CTO","occurredAt":1765000000000,
//!  "changeSource":"CRM_UI","sourceId":"userId:8812"}
//!   + team acme maps job_title <-> jobtitle (both), contact 51 is upstream c_000451
//!   -> HubSpotChange { record_id: c_000451, change: PROPERTY_CHANGED,
//!                      fields: [job_title = "CTO" at 1765000000000], ... }
//! ```
//!
//! What is not sent up, and why ([`Dropped`]):
//!
//! | case | rule |
//! |---|---|
//! | duplicate | the change's id (from subscription type, portal, record, time, property and value) was sent already |
//! | echo | `changeSource` `INTEGRATION` with `sourceId` = hubsync's app id, or the value is the one the sink last wrote there (when the sink runs in this process) |
//! | stale | HubSpot already reported a newer change to this property of this record |
//! | unmapped | a property no `from_hubspot`/`both` mapping names (nor the owner under `bidirectional`) |
//! | unsupported | an object or subscription type hubsync does not follow |
//!
//! An echo still moves the property's clock: a user's change older than hubsync's own write,
//! delivered late, is stale, not sent up.

use std::collections::{BTreeMap, HashMap, HashSet};

use hubsync_schemas::{
    AssociationChange, FieldChange, HubSpotChange, HubSpotChangeKind, HubSpotObjectType,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::state::{State, StateError, hubspot_key};
use hubsync_processors::rules::{LeaveAction, OWNER_PROPERTY, OwnerStrategy, Rules};

use super::memory::Memory;

/// The field name upstream gets for the record owner.
pub const OWNER_FIELD: &str = "owner";

/// One HubSpot v3 event, every field a kind of change may carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubSpotEvent {
    pub portal_id: u64,
    #[serde(default)]
    pub app_id: Option<u64>,
    pub occurred_at: i64,
    pub subscription_type: String,
    #[serde(default)]
    pub object_id: Option<u64>,
    #[serde(default)]
    pub property_name: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub property_value: Option<String>,
    #[serde(default)]
    pub change_source: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub source_id: Option<String>,
    #[serde(default)]
    pub primary_object_id: Option<u64>,
    #[serde(default)]
    pub merged_object_ids: Vec<u64>,
    #[serde(default)]
    pub new_object_id: Option<u64>,
    #[serde(default)]
    pub association_type: Option<String>,
    #[serde(default)]
    pub from_object_id: Option<u64>,
    #[serde(default)]
    pub to_object_id: Option<u64>,
    #[serde(default)]
    pub association_removed: bool,
    #[serde(default)]
    pub is_primary_association: bool,
    #[serde(default, deserialize_with = "scalar")]
    pub list_id: Option<String>,
    /// A list's object type (`0-1` contacts, `0-2` companies, `0-3` deals).
    #[serde(default)]
    pub object_type_id: Option<String>,
    /// `poll` for events polling made; webhooks have none.
    #[serde(default, rename = "hubsync_via")]
    pub via: Option<String>,
}

/// HubSpot sends values as strings; a number or a boolean is taken as its text.
fn scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// What a team sends upstream, from its rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamView {
    pub team: String,
    pub portal: u64,
    /// hubsync's HubSpot app id (`[hubspot] app_id`); when unset, the app that delivered the
    /// webhook (`appId`) is taken as hubsync's.
    pub app_id: Option<u64>,
    /// Per object: HubSpot property -> the upstream fields it sets.
    pub fields: HashMap<HubSpotObjectType, BTreeMap<String, Vec<String>>>,
    /// Objects whose owner flows back (`owner_strategy = "bidirectional"`).
    pub owner_back: HashSet<HubSpotObjectType>,
    /// HubSpot owner id -> the upstream user sent up: the first `[[users.mapping]]` entry with
    /// that owner, in file order.
    pub owner_users: BTreeMap<String, String>,
    /// The lists the team follows (`[[lists]]`), and whether leaving one is sent up.
    pub lists: BTreeMap<String, bool>,
}

impl TeamView {
    pub fn from_config(config: &Config) -> Self {
        Self::new(
            &config.team.id,
            config.team.hubspot_portal_id,
            config.hubspot.app_id,
            &config.rules,
        )
    }

    pub fn new(team: &str, portal: u64, app_id: Option<u64>, rules: &Rules) -> Self {
        let mut fields: HashMap<HubSpotObjectType, BTreeMap<String, Vec<String>>> = HashMap::new();
        let objects = [
            (HubSpotObjectType::Contact, &rules.sync.contacts.mapping),
            (HubSpotObjectType::Company, &rules.sync.companies.mapping),
        ];
        for (object, mapping) in objects {
            for entry in mapping.iter().filter(|m| m.direction.writes_upstream()) {
                fields
                    .entry(object)
                    .or_default()
                    .entry(entry.property.clone())
                    .or_default()
                    .push(entry.source.clone());
            }
        }
        let owner_back = [
            (
                HubSpotObjectType::Contact,
                rules.sync.contacts.owner_strategy,
            ),
            (
                HubSpotObjectType::Company,
                rules.sync.companies.owner_strategy,
            ),
            (HubSpotObjectType::Deal, rules.sync.deals.owner_strategy),
        ]
        .into_iter()
        .filter(|(_, strategy)| *strategy == OwnerStrategy::Bidirectional)
        .map(|(object, _)| object)
        .collect();
        let mut owner_users = BTreeMap::new();
        for entry in &rules.users.mapping {
            owner_users
                .entry(entry.owner.clone())
                .or_insert_with(|| entry.user.clone());
        }
        let lists = rules
            .lists
            .iter()
            .map(|list| (list.list_id.clone(), list.on_leave == LeaveAction::Pause))
            .collect();
        TeamView {
            team: team.to_string(),
            portal,
            app_id,
            fields,
            owner_back,
            owner_users,
            lists,
        }
    }

    /// The HubSpot properties of `object` whose changes go up (polling reads these).
    pub fn watched(&self, object: HubSpotObjectType) -> Vec<String> {
        let mut watched: Vec<String> = self
            .fields
            .get(&object)
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default();
        if self.owner_back.contains(&object) && !watched.iter().any(|p| p == OWNER_PROPERTY) {
            watched.push(OWNER_PROPERTY.to_string());
        }
        watched
    }

    /// Whether any change of `object` goes up.
    pub fn follows(&self, object: HubSpotObjectType) -> bool {
        !self.watched(object).is_empty()
    }

    /// Whether anything of this team goes up at all (else it is not polled).
    pub fn sends_anything(&self) -> bool {
        !self.lists.is_empty()
            || [
                HubSpotObjectType::Contact,
                HubSpotObjectType::Company,
                HubSpotObjectType::Deal,
            ]
            .into_iter()
            .any(|object| self.follows(object))
    }
}

/// Why an event sends nothing upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Duplicate,
    Echo,
    Stale,
    Unmapped,
    Unsupported,
}

impl Dropped {
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::Duplicate => "duplicate",
            Dropped::Echo => "echo",
            Dropped::Stale => "stale",
            Dropped::Unmapped => "unmapped",
            Dropped::Unsupported => "unsupported",
        }
    }
}

/// What remembering an event takes, once what it sends is on Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Seen([u8; 16]),
    Clock(String, i64),
    Upstream {
        object: &'static str,
        hubspot_id: String,
        upstream_id: String,
    },
}

/// The translation of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub sent: Result<Box<HubSpotChange>, Dropped>,
    pub effects: Vec<Effect>,
}

/// Translates a batch of events in order: what one event of the batch will remember counts for
/// the next ones (two copies in one batch, or an older change after a newer one).
pub struct Translator<'a> {
    memory: &'a Memory,
    /// The sink's state of this process (the sink's last-written values), when it runs here.
    sink_state: Option<&'a State>,
    seen: HashSet<[u8; 16]>,
    clocks: HashMap<String, i64>,
    upstream: HashMap<String, String>,
}

impl<'a> Translator<'a> {
    pub fn new(memory: &'a Memory, sink_state: Option<&'a State>) -> Self {
        Translator {
            memory,
            sink_state,
            seen: HashSet::new(),
            clocks: HashMap::new(),
            upstream: HashMap::new(),
        }
    }

    pub fn translate(
        &mut self,
        view: &TeamView,
        event: &HubSpotEvent,
    ) -> Result<Translated, StateError> {
        let id = change_id(event);
        if self.seen.contains(&id) || self.memory.seen(&id)? {
            return Ok(dropped(Dropped::Duplicate, Vec::new()));
        }
        let Some((object, kind)) = kind_of(event) else {
            return Ok(dropped(Dropped::Unsupported, vec![Effect::Seen(id)]));
        };
        let echo = self.is_echo(view, event, object)?;
        let mut effects = vec![Effect::Seen(id)];
        let mut change = HubSpotChange {
            event_id: uuid_of(&id),
            portal_id: i64::try_from(event.portal_id).unwrap_or(i64::MAX),
            team_id: Some(view.team.clone()),
            object_type: object,
            object_id: String::new(),
            change: kind,
            property_name: None,
            property_value: None,
            occurred_at: event.occurred_at,
            change_source: event.change_source.clone(),
            source_id: event.source_id.clone(),
            properties: BTreeMap::new(),
            record_id: None,
            fields: Vec::new(),
            merged_object_ids: Vec::new(),
            merged_record_ids: Vec::new(),
            association: None,
            list_id: None,
            via: Some(event.via.clone().unwrap_or_else(|| "webhook".to_string())),
        };
        let record = match kind {
            HubSpotChangeKind::Merged => event
                .new_object_id
                .or(event.primary_object_id)
                .or(event.object_id),
            HubSpotChangeKind::AssociationChanged => event.from_object_id.or(event.object_id),
            _ => event.object_id,
        };
        let Some(record) = record else {
            return Ok(dropped(Dropped::Unsupported, effects));
        };
        change.object_id = record.to_string();
        let path = object_path(object);
        change.record_id = self.upstream_id(view, path, &change.object_id)?;
        match kind {
            HubSpotChangeKind::PropertyChanged => {
                let Some(property) = event.property_name.clone() else {
                    return Ok(dropped(Dropped::Unsupported, effects));
                };
                let clock_key = format!("{}:{path}:{record}:{property}", event.portal_id);
                let newest = match self.clocks.get(&clock_key) {
                    Some(at) => Some(*at),
                    None => self.memory.clock(&clock_key)?,
                };
                let fields = fields_for(view, object, &property, event);
                if fields.is_empty() {
                    return Ok(dropped(Dropped::Unmapped, effects));
                }
                if newest.is_some_and(|at| at > event.occurred_at) {
                    return Ok(dropped(Dropped::Stale, effects));
                }
                self.clocks.insert(clock_key.clone(), event.occurred_at);
                effects.push(Effect::Clock(clock_key, event.occurred_at));
                if echo {
                    return Ok(dropped(Dropped::Echo, effects));
                }
                change
                    .properties
                    .insert(property.clone(), event.property_value.clone());
                change.property_name = Some(property);
                change.property_value = event.property_value.clone();
                change.fields = fields;
            }
            HubSpotChangeKind::Merged => {
                let mut merged: Vec<u64> = event.merged_object_ids.clone();
                if let Some(primary) = event.primary_object_id
                    && primary != record
                    && !merged.contains(&primary)
                {
                    merged.push(primary);
                }
                change.merged_object_ids = merged.iter().map(u64::to_string).collect();
                for id in &change.merged_object_ids {
                    if let Some(upstream) = self.upstream_id(view, path, id)? {
                        change.merged_record_ids.push(upstream);
                    }
                }
                // The survivor keeps its own upstream id; one that had none takes the first
                // merged record's, so upstream events of that record find it again.
                if change.record_id.is_none()
                    && let Some(first) = change.merged_record_ids.first().cloned()
                {
                    change.record_id = Some(first.clone());
                    self.upstream.insert(
                        upstream_key(&view.team, path, &change.object_id),
                        first.clone(),
                    );
                    effects.push(Effect::Upstream {
                        object: path,
                        hubspot_id: change.object_id.clone(),
                        upstream_id: first,
                    });
                }
                if echo {
                    return Ok(dropped(Dropped::Echo, effects));
                }
            }
            HubSpotChangeKind::AssociationChanged => {
                let (Some(to), Some(kind)) = (event.to_object_id, event.association_type.clone())
                else {
                    return Ok(dropped(Dropped::Unsupported, effects));
                };
                let to_object = association_target(&kind);
                let to_id = to.to_string();
                let to_record_id = match to_object {
                    Some(to_object) => self.upstream_id(view, object_path(to_object), &to_id)?,
                    None => None,
                };
                change.association = Some(AssociationChange {
                    association_type: kind,
                    to_object_type: to_object.unwrap_or(HubSpotObjectType::Unknown),
                    to_object_id: to_id,
                    to_record_id,
                    removed: event.association_removed,
                    primary: event.is_primary_association,
                });
                if echo {
                    return Ok(dropped(Dropped::Echo, effects));
                }
            }
            HubSpotChangeKind::ListJoined | HubSpotChangeKind::ListLeft => {
                let followed = event
                    .list_id
                    .as_ref()
                    .and_then(|list| view.lists.get(list).copied());
                match (followed, kind) {
                    (None, _) | (Some(false), HubSpotChangeKind::ListLeft) => {
                        return Ok(dropped(Dropped::Unmapped, effects));
                    }
                    _ => {}
                }
                change.list_id = event.list_id.clone();
            }
            _ => {
                if echo {
                    return Ok(dropped(Dropped::Echo, effects));
                }
            }
        }
        Ok(Translated {
            sent: Ok(Box::new(change)),
            effects,
        })
        .inspect(|_| {
            self.seen.insert(id);
        })
    }

    /// Remembers, for the rest of the batch, that an event was translated (its copies are
    /// duplicates even before the batch is on Kafka).
    fn upstream_id(
        &self,
        view: &TeamView,
        object: &'static str,
        hubspot_id: &str,
    ) -> Result<Option<String>, StateError> {
        if let Some(id) = self
            .upstream
            .get(&upstream_key(&view.team, object, hubspot_id))
        {
            return Ok(Some(id.clone()));
        }
        self.memory.upstream_id(&view.team, object, hubspot_id)
    }

    fn is_echo(
        &self,
        view: &TeamView,
        event: &HubSpotEvent,
        object: HubSpotObjectType,
    ) -> Result<bool, StateError> {
        let ours = view.app_id.or(event.app_id);
        if event.change_source.as_deref() == Some("INTEGRATION")
            && let (Some(ours), Some(source)) = (ours, event.source_id.as_deref())
            && source.trim() == ours.to_string()
        {
            return Ok(true);
        }
        // What a user does in HubSpot's UI is never an echo, even when the value is the one
        // hubsync wrote (a user putting a value back).
        if event.change_source.as_deref() == Some("CRM_UI") {
            return Ok(false);
        }
        let (Some(state), Some(property), Some(id)) = (
            self.sink_state,
            event.property_name.as_deref(),
            event.object_id,
        ) else {
            return Ok(false);
        };
        let written = state
            .scoped(&view.portal.to_string())
            .last_written(&hubspot_key(object_path(object), &id.to_string()))?;
        Ok(
            written.contains_key(property)
                && written.get(property) == event.property_value.as_ref(),
        )
    }
}

fn dropped(why: Dropped, effects: Vec<Effect>) -> Translated {
    Translated {
        sent: Err(why),
        effects,
    }
}

/// The upstream fields a property change sets.
fn fields_for(
    view: &TeamView,
    object: HubSpotObjectType,
    property: &str,
    event: &HubSpotEvent,
) -> Vec<FieldChange> {
    let mut fields: Vec<FieldChange> = view
        .fields
        .get(&object)
        .and_then(|f| f.get(property))
        .into_iter()
        .flatten()
        .map(|field| FieldChange {
            field: field.clone(),
            property: property.to_string(),
            value: event.property_value.clone(),
            hubspot_value: None,
            changed_at: event.occurred_at,
        })
        .collect();
    if property == OWNER_PROPERTY && view.owner_back.contains(&object) {
        let owner = event.property_value.clone().filter(|v| !v.is_empty());
        fields.push(FieldChange {
            field: OWNER_FIELD.to_string(),
            property: property.to_string(),
            value: owner
                .as_ref()
                .and_then(|owner| view.owner_users.get(owner).cloned()),
            hubspot_value: owner,
            changed_at: event.occurred_at,
        });
    }
    fields
}

/// The object and the kind of change a subscription type names.
fn kind_of(event: &HubSpotEvent) -> Option<(HubSpotObjectType, HubSpotChangeKind)> {
    let (object, action) = event.subscription_type.split_once('.')?;
    let kind = match action {
        "creation" => HubSpotChangeKind::Created,
        "propertyChange" => HubSpotChangeKind::PropertyChanged,
        "deletion" => HubSpotChangeKind::Deleted,
        "privacyDeletion" => HubSpotChangeKind::PrivacyDeleted,
        "merge" => HubSpotChangeKind::Merged,
        "restore" => HubSpotChangeKind::Restored,
        "associationChange" => HubSpotChangeKind::AssociationChanged,
        "membershipAdded" => HubSpotChangeKind::ListJoined,
        "membershipRemoved" => HubSpotChangeKind::ListLeft,
        _ => return None,
    };
    let object = match object {
        "contact" => HubSpotObjectType::Contact,
        "company" => HubSpotObjectType::Company,
        "deal" => HubSpotObjectType::Deal,
        "list" => match event.object_type_id.as_deref() {
            None | Some("0-1") => HubSpotObjectType::Contact,
            Some("0-2") => HubSpotObjectType::Company,
            Some("0-3") => HubSpotObjectType::Deal,
            Some(_) => return None,
        },
        _ => return None,
    };
    Some((object, kind))
}

/// The other side of an association type such as `CONTACT_TO_COMPANY`.
fn association_target(kind: &str) -> Option<HubSpotObjectType> {
    match kind.rsplit_once("_TO_")?.1 {
        "CONTACT" => Some(HubSpotObjectType::Contact),
        "COMPANY" => Some(HubSpotObjectType::Company),
        "DEAL" => Some(HubSpotObjectType::Deal),
        _ => None,
    }
}

/// The object's name in HubSpot's paths and in hubsync's keys.
pub fn object_path(object: HubSpotObjectType) -> &'static str {
    match object {
        HubSpotObjectType::Contact => "contacts",
        HubSpotObjectType::Company => "companies",
        HubSpotObjectType::Deal => "deals",
        _ => "other",
    }
}

fn upstream_key(team: &str, object: &str, hubspot_id: &str) -> String {
    format!("{team}:{object}:{hubspot_id}")
}

/// A change's id: the same change, however often and by whichever path it arrives, has one id.
/// HubSpot's `eventId` is not unique, so the id is made from what the change is.
pub fn change_id(event: &HubSpotEvent) -> [u8; 16] {
    let mut hash = Sha256::new();
    let mut part = |value: &str| {
        hash.update((value.len() as u64).to_be_bytes());
        hash.update(value.as_bytes());
    };
    part(&event.subscription_type);
    part(&event.portal_id.to_string());
    part(&event.object_id.map(|v| v.to_string()).unwrap_or_default());
    part(&event.occurred_at.to_string());
    part(event.property_name.as_deref().unwrap_or(""));
    part(event.property_value.as_deref().unwrap_or("\u{0}null"));
    let ids = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    part(&ids(&event.merged_object_ids));
    part(&ids(&[
        event.primary_object_id,
        event.new_object_id,
        event.from_object_id,
        event.to_object_id,
    ]
    .map(|id| id.unwrap_or(0))));
    part(if event.association_removed { "1" } else { "0" });
    part(event.list_id.as_deref().unwrap_or(""));
    let digest = hash.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// The id as a UUID (version 8, the layout RFC 9562 leaves to the application).
pub fn uuid_of(id: &[u8; 16]) -> String {
    let mut bytes = *id;
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_processors::rules::{Direction, FieldMapping, UserMapping};

    fn view() -> TeamView {
        let mut rules = Rules::default();
        let map = |source: &str, property: &str, direction| FieldMapping {
            source: source.into(),
            property: property.into(),
            direction,
            fill_if_empty: false,
        };
        rules.sync.contacts.mapping = vec![
            map("job_title", "jobtitle", Direction::Both),
            map("stage", "lifecyclestage", Direction::FromHubspot),
            map("phone_number", "phone", Direction::ToHubspot),
        ];
        rules.sync.contacts.owner_strategy = OwnerStrategy::Bidirectional;
        rules.users.mapping = vec![
            UserMapping {
                user: "u_ada".into(),
                owner: "77".into(),
            },
            UserMapping {
                user: "u_grace".into(),
                owner: "77".into(),
            },
        ];
        TeamView::new("acme", 62515, Some(4242), &rules)
    }

    fn event(json: serde_json::Value) -> HubSpotEvent {
        let mut base = serde_json::json!({
            "portalId": 62515, "appId": 4242, "occurredAt": 1_000,
            "subscriptionType": "contact.propertyChange", "objectId": 51,
            "changeSource": "CRM_UI", "sourceId": "userId:8812"
        });
        for (k, v) in json.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn memory() -> (tempfile::TempDir, Memory) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        (dir, Memory::open(&db).unwrap())
    }

    fn apply(memory: &Memory, translated: &Translated) {
        for effect in &translated.effects {
            match effect {
                Effect::Seen(id) => memory.mark_seen(id, 0).unwrap(),
                Effect::Clock(key, at) => memory.advance_clock(key, *at).unwrap(),
                Effect::Upstream {
                    object,
                    hubspot_id,
                    upstream_id,
                } => memory
                    .set_upstream_id("acme", object, hubspot_id, upstream_id)
                    .unwrap(),
            }
        }
    }

    #[test]
    fn a_user_edit_of_a_mapped_field_goes_up_by_its_upstream_name_and_id() {
        let (_dir, memory) = memory();
        memory
            .set_upstream_id("acme", "contacts", "51", "c_451")
            .unwrap();
        let mut translator = Translator::new(&memory, None);
        let edit = event(serde_json::json!({"propertyName":"jobtitle","propertyValue":"CTO"}));
        let out = translator.translate(&view(), &edit).unwrap();
        let change = out.sent.unwrap();
        assert_eq!(change.key(), "c_451");
        assert_eq!(change.change, HubSpotChangeKind::PropertyChanged);
        assert_eq!(change.team_id.as_deref(), Some("acme"));
        assert_eq!(
            change.fields,
            vec![FieldChange {
                field: "job_title".into(),
                property: "jobtitle".into(),
                value: Some("CTO".into()),
                hubspot_value: None,
                changed_at: 1_000,
            }]
        );
        assert_eq!(change.via.as_deref(), Some("webhook"));
        assert_eq!(change.event_id.len(), 36);
    }

    #[test]
    fn a_change_has_one_id_however_often_it_arrives() {
        let (_dir, memory) = memory();
        let edit = event(serde_json::json!({"propertyName":"jobtitle","propertyValue":"CTO"}));
        let mut again = edit.clone();
        again.via = Some("poll".into());
        assert_eq!(change_id(&edit), change_id(&again));
        let mut translator = Translator::new(&memory, None);
        let first = translator.translate(&view(), &edit).unwrap();
        assert!(first.sent.is_ok());
        // In the same batch, and after the batch is remembered.
        assert_eq!(
            translator.translate(&view(), &again).unwrap().sent,
            Err(Dropped::Duplicate)
        );
        apply(&memory, &first);
        let mut next = Translator::new(&memory, None);
        assert_eq!(
            next.translate(&view(), &again).unwrap().sent,
            Err(Dropped::Duplicate)
        );
        let other = event(serde_json::json!({"propertyName":"jobtitle","propertyValue":"CEO"}));
        assert_ne!(change_id(&edit), change_id(&other));
    }

    #[test]
    fn hubsyncs_own_writes_do_not_come_back_but_move_the_clock() {
        let (_dir, memory) = memory();
        let mut translator = Translator::new(&memory, None);
        let ours = event(serde_json::json!({
            "propertyName":"jobtitle","propertyValue":"CTO","occurredAt":2_000,
            "changeSource":"INTEGRATION","sourceId":"4242"}));
        let out = translator.translate(&view(), &ours).unwrap();
        assert_eq!(out.sent, Err(Dropped::Echo));
        apply(&memory, &out);
        // A user's edit made before hubsync's write, delivered after it: older, not sent up.
        let late = event(
            serde_json::json!({"propertyName":"jobtitle","propertyValue":"VP","occurredAt":1_500}),
        );
        assert_eq!(
            Translator::new(&memory, None)
                .translate(&view(), &late)
                .unwrap()
                .sent,
            Err(Dropped::Stale)
        );
        // Another app's integration write is a change like a user's.
        let theirs = event(serde_json::json!({
            "propertyName":"jobtitle","propertyValue":"CEO","occurredAt":3_000,
            "changeSource":"INTEGRATION","sourceId":"999"}));
        assert!(
            Translator::new(&memory, None)
                .translate(&view(), &theirs)
                .unwrap()
                .sent
                .is_ok()
        );
    }

    #[test]
    fn without_a_configured_app_id_the_delivering_app_is_hubsyncs() {
        let (_dir, memory) = memory();
        let mut view = view();
        view.app_id = None;
        let ours = event(serde_json::json!({
            "propertyName":"jobtitle","propertyValue":"CTO",
            "changeSource":"INTEGRATION","sourceId":"4242"}));
        assert_eq!(
            Translator::new(&memory, None)
                .translate(&view, &ours)
                .unwrap()
                .sent,
            Err(Dropped::Echo)
        );
    }

    #[test]
    fn only_from_hubspot_and_both_fields_go_up() {
        let (_dir, memory) = memory();
        let mut translator = Translator::new(&memory, None);
        let phone = event(serde_json::json!({"propertyName":"phone","propertyValue":"+1"}));
        assert_eq!(
            translator.translate(&view(), &phone).unwrap().sent,
            Err(Dropped::Unmapped)
        );
        let stage =
            event(serde_json::json!({"propertyName":"lifecyclestage","propertyValue":"lead"}));
        let change = translator.translate(&view(), &stage).unwrap().sent.unwrap();
        assert_eq!(change.fields[0].field, "stage");
        assert_eq!(
            change.key(),
            "51",
            "never upstream: keyed by the HubSpot id"
        );
        assert_eq!(
            view().watched(HubSpotObjectType::Contact),
            ["jobtitle", "lifecyclestage", "hubspot_owner_id"]
        );
        assert!(!view().follows(HubSpotObjectType::Company));
    }

    #[test]
    fn the_owner_goes_up_as_the_first_upstream_user_mapped_to_it() {
        let (_dir, memory) = memory();
        let mut translator = Translator::new(&memory, None);
        let owner =
            event(serde_json::json!({"propertyName":"hubspot_owner_id","propertyValue":"77"}));
        let change = translator.translate(&view(), &owner).unwrap().sent.unwrap();
        assert_eq!(change.fields.len(), 1);
        assert_eq!(change.fields[0].field, OWNER_FIELD);
        assert_eq!(change.fields[0].value.as_deref(), Some("u_ada"));
        assert_eq!(change.fields[0].hubspot_value.as_deref(), Some("77"));
        let unknown = event(
            serde_json::json!({"propertyName":"hubspot_owner_id","propertyValue":"99","occurredAt":2_000}),
        );
        let change = translator
            .translate(&view(), &unknown)
            .unwrap()
            .sent
            .unwrap();
        assert_eq!(change.fields[0].value, None);
        assert_eq!(change.fields[0].hubspot_value.as_deref(), Some("99"));
        let mut rules = Rules::default();
        rules.sync.contacts.owner_strategy = OwnerStrategy::IfEmpty;
        let one_way = TeamView::new("acme", 62515, None, &rules);
        let third = event(
            serde_json::json!({"propertyName":"hubspot_owner_id","propertyValue":"77","occurredAt":3_000}),
        );
        assert_eq!(
            translator.translate(&one_way, &third).unwrap().sent,
            Err(Dropped::Unmapped)
        );
    }

    #[test]
    fn merges_name_the_merged_records_and_keep_an_upstream_id() {
        let (_dir, memory) = memory();
        memory
            .set_upstream_id("acme", "contacts", "52", "c_452")
            .unwrap();
        let mut translator = Translator::new(&memory, None);
        let merge = event(serde_json::json!({
            "subscriptionType":"contact.merge","objectId":51,"primaryObjectId":51,
            "mergedObjectIds":[52],"newObjectId":51}));
        let out = translator.translate(&view(), &merge).unwrap();
        apply(&memory, &out);
        let change = out.sent.unwrap();
        assert_eq!(change.change, HubSpotChangeKind::Merged);
        assert_eq!(change.object_id, "51");
        assert_eq!(change.merged_object_ids, ["52"]);
        assert_eq!(change.merged_record_ids, ["c_452"]);
        assert_eq!(change.key(), "c_452");
        assert_eq!(
            memory
                .upstream_id("acme", "contacts", "51")
                .unwrap()
                .as_deref(),
            Some("c_452")
        );
    }

    #[test]
    fn deletions_restores_associations_and_lists() {
        let (_dir, memory) = memory();
        let mut view = view();
        view.lists.insert("12".into(), true);
        memory
            .set_upstream_id("acme", "companies", "9", "co_9")
            .unwrap();
        let mut translator = Translator::new(&memory, None);
        let mut kinds = Vec::new();
        for json in [
            serde_json::json!({"subscriptionType":"contact.deletion"}),
            serde_json::json!({"subscriptionType":"contact.privacyDeletion"}),
            serde_json::json!({"subscriptionType":"contact.restore","occurredAt":5}),
            serde_json::json!({"subscriptionType":"contact.creation","changeFlag":"CREATED"}),
            serde_json::json!({"subscriptionType":"list.membershipAdded","listId":12}),
            serde_json::json!({"subscriptionType":"list.membershipRemoved","listId":"12"}),
        ] {
            let change = translator
                .translate(&view, &event(json))
                .unwrap()
                .sent
                .unwrap();
            kinds.push((change.change, change.list_id));
        }
        use HubSpotChangeKind as K;
        assert_eq!(
            kinds,
            [
                (K::Deleted, None),
                (K::PrivacyDeleted, None),
                (K::Restored, None),
                (K::Created, None),
                (K::ListJoined, Some("12".to_string())),
                (K::ListLeft, Some("12".to_string())),
            ]
        );
        let link = event(serde_json::json!({
            "subscriptionType":"contact.associationChange","objectId":null,
            "associationType":"CONTACT_TO_COMPANY","fromObjectId":51,"toObjectId":9,
            "associationRemoved":true,"isPrimaryAssociation":true}));
        let change = translator.translate(&view, &link).unwrap().sent.unwrap();
        assert_eq!(change.object_id, "51");
        let association = change.association.unwrap();
        assert_eq!(association.to_object_type, HubSpotObjectType::Company);
        assert_eq!(association.to_record_id.as_deref(), Some("co_9"));
        assert!(association.removed && association.primary);
        // A list the team does not follow, and leaving one whose leavers are ignored.
        let other = event(
            serde_json::json!({"subscriptionType":"list.membershipAdded","listId":"99","occurredAt":7}),
        );
        assert_eq!(
            translator.translate(&view, &other).unwrap().sent,
            Err(Dropped::Unmapped)
        );
        view.lists.insert("13".into(), false);
        let left = event(
            serde_json::json!({"subscriptionType":"list.membershipRemoved","listId":"13","occurredAt":8}),
        );
        assert_eq!(
            translator.translate(&view, &left).unwrap().sent,
            Err(Dropped::Unmapped)
        );
        let unknown = event(serde_json::json!({"subscriptionType":"ticket.creation"}));
        assert_eq!(
            translator.translate(&view, &unknown).unwrap().sent,
            Err(Dropped::Unsupported)
        );
    }

    #[test]
    fn the_sinks_last_written_value_is_an_echo_unless_a_user_set_it() {
        let (_dir, memory) = memory();
        let sink_dir = tempfile::tempdir().unwrap();
        let state = State::open(sink_dir.path(), 1 << 20, 1000).unwrap();
        state
            .scoped("62515")
            .merge_last_written(
                &hubspot_key("contacts", "51"),
                &BTreeMap::from([("jobtitle".to_string(), "CTO".to_string())]),
            )
            .unwrap();
        let mut translator = Translator::new(&memory, Some(&state));
        let api = event(serde_json::json!({
            "propertyName":"jobtitle","propertyValue":"CTO","changeSource":"API","sourceId":null}));
        assert_eq!(
            translator.translate(&view(), &api).unwrap().sent,
            Err(Dropped::Echo)
        );
        let user = event(
            serde_json::json!({"propertyName":"jobtitle","propertyValue":"CTO","occurredAt":2_000}),
        );
        assert!(translator.translate(&view(), &user).unwrap().sent.is_ok());
    }
}
