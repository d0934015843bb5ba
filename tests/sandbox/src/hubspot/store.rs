//! The portal's data: records per object type, unique-value indexes, what the search index has
//! caught up with, associations, and a log of changes with who made them.
//!
//! Writes are validated before anything is committed, so a batch that fails as a whole leaves the
//! store untouched.

use super::model::Emulated;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::errors::InputError;
use super::model::{
    ObjectType, Owner, PropertyDef, association_label, default_owners, default_properties,
    inverse_association_type, is_valid_association_type, primary_of,
};
use super::validate::validate_properties;
use crate::clock::rfc3339_ms;

const FIRST_ID: u64 = 10_001;
const CHANGE_LOG_CAP: usize = 100_000;
/// Values kept per property for `propertiesWithHistory`; older ones are dropped.
pub const HISTORY_CAP: usize = 50;
/// How long an archived record stays readable (`archived=true`) and restorable: 90 days.
pub const ARCHIVE_RETENTION_MS: i64 = 90 * 86_400_000;
/// The longest chain of merges an id is followed through.
const MAX_MERGE_HOPS: usize = 64;

#[derive(Debug, Clone, Serialize)]
struct Snapshot {
    at_ms: i64,
    properties: BTreeMap<String, String>,
    archived: bool,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub id: u64,
    pub properties: BTreeMap<String, String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub archived: bool,
    pub archived_ms: Option<i64>,
    /// Every value each property has had, oldest first, at most [`HISTORY_CAP`] per property.
    history: BTreeMap<String, Vec<Version>>,
    /// The associations an archived record had, given back when it is restored.
    archived_links: Vec<Association>,
    /// What search sees: the newest snapshot older than the index lag.
    indexed: Option<Snapshot>,
    pending: VecDeque<Snapshot>,
}

/// One value a property had: what `propertiesWithHistory` lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub value: String,
    pub at_ms: i64,
    pub source: ChangeSource,
}

impl Version {
    pub fn to_json(&self) -> Value {
        let mut version = json!({
            "value": self.value,
            "timestamp": rfc3339_ms(self.at_ms),
            "sourceType": self.source.source_type(),
            "sourceId": self.source.source_id(),
        });
        if let ChangeSource::CrmUi { user_id } = self.source {
            version["updatedByUserId"] = json!(user_id);
        }
        version
    }
}

impl Record {
    /// The v3 object shape, with `properties` restricted to `names` (None: the type's defaults).
    /// Requested properties without a value come back as `null`, as HubSpot answers.
    pub fn to_json(&self, object_type: ObjectType, names: Option<&[String]>) -> Value {
        let mut properties = Map::new();
        match names {
            Some(names) if !names.is_empty() => {
                for name in names {
                    properties.insert(name.clone(), value_or_null(self.properties.get(name)));
                }
            }
            _ => {
                for name in object_type.default_read_properties() {
                    properties.insert(
                        (*name).to_string(),
                        value_or_null(self.properties.get(*name)),
                    );
                }
            }
        }
        let mut object = json!({
            "id": self.id.to_string(),
            "properties": properties,
            "createdAt": rfc3339_ms(self.created_ms),
            "updatedAt": rfc3339_ms(self.updated_ms),
            "archived": self.archived,
        });
        if let Some(at) = self.archived_ms {
            object["archivedAt"] = json!(rfc3339_ms(at));
        }
        object
    }

    /// `propertiesWithHistory` of a read: each named property's values, newest first.
    pub fn history_json(&self, names: &[String]) -> Value {
        let history: Map<String, Value> = names
            .iter()
            .map(|name| {
                let versions: Vec<Value> = self
                    .history
                    .get(name)
                    .into_iter()
                    .flat_map(|versions| versions.iter().rev())
                    .map(Version::to_json)
                    .collect();
                (name.clone(), Value::Array(versions))
            })
            .collect();
        Value::Object(history)
    }

    /// Sets a property's value and remembers it in its history; an empty value clears it.
    fn set(&mut self, name: &str, value: &str, at_ms: i64, source: ChangeSource) {
        if value.is_empty() {
            self.properties.remove(name);
        } else {
            self.properties.insert(name.to_string(), value.to_string());
        }
        let versions = self.history.entry(name.to_string()).or_default();
        if versions.len() == HISTORY_CAP {
            versions.remove(0);
        }
        versions.push(Version {
            value: value.to_string(),
            at_ms,
            source,
        });
    }

    /// A change without new values of its own (a merge, a restore) still moves the
    /// modification dates and reaches the search index.
    fn touch(&mut self, object_type: ObjectType, now_ms: i64, source: ChangeSource) {
        self.updated_ms = now_ms;
        let stamp = rfc3339_ms(now_ms);
        self.set("hs_lastmodifieddate", &stamp, now_ms, source);
        if object_type == ObjectType::Contacts {
            self.set("lastmodifieddate", &stamp, now_ms, source);
        }
        self.pending.push_back(Snapshot {
            at_ms: now_ms,
            properties: self.properties.clone(),
            archived: self.archived,
        });
    }

    /// Whether an archived record can still be read and restored at `now_ms`.
    pub fn retained(&self, now_ms: i64) -> bool {
        self.archived_ms
            .is_some_and(|at| now_ms < at.saturating_add(ARCHIVE_RETENTION_MS))
    }

    /// Every property with a value, for state dumps.
    pub fn to_full_json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "properties": self.properties,
            "createdAt": rfc3339_ms(self.created_ms),
            "updatedAt": rfc3339_ms(self.updated_ms),
            "archived": self.archived,
        })
    }
}

fn value_or_null(value: Option<&String>) -> Value {
    match value {
        Some(v) if !v.is_empty() => json!(v),
        _ => Value::Null,
    }
}

/// Who made a change: an app through the API with one of its tokens (`INTEGRATION`, the
/// source id is the app's id), or a person in HubSpot's UI (`CRM_UI`, `userId:<id>`), as
/// HubSpot reports it in `propertiesWithHistory` and webhook events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSource {
    Integration { app_id: u64 },
    CrmUi { user_id: u64 },
}

impl ChangeSource {
    pub fn source_type(self) -> &'static str {
        match self {
            ChangeSource::Integration { .. } => "INTEGRATION",
            ChangeSource::CrmUi { .. } => "CRM_UI",
        }
    }

    pub fn source_id(self) -> String {
        match self {
            ChangeSource::Integration { app_id } => app_id.to_string(),
            ChangeSource::CrmUi { user_id } => format!("userId:{user_id}"),
        }
    }
}

impl Serialize for ChangeSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.source_type())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    Created,
    Updated,
    Archived,
    Restored,
    Merged,
    /// A GDPR delete: gone for good, not even readable archived.
    PrivacyDeleted,
    Associated,
    Dissociated,
}

/// What a merge did: `primary` survived (its id is `new_id`), `merged` were folded into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Merge {
    pub primary: u64,
    pub merged: Vec<u64>,
    pub new_id: u64,
}

/// One association row added or removed (seen from `id`'s side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AssociationChange {
    pub to_type: ObjectType,
    pub to_id: u64,
    pub type_id: u32,
    pub primary: bool,
}

/// One entry of the change log: what happened to a record, when, and who did it.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Position in the log, from 1; never reused.
    pub seq: u64,
    pub object_type: ObjectType,
    pub id: String,
    pub kind: ChangeKind,
    pub source: ChangeSource,
    pub source_id: String,
    pub at: String,
    pub at_ms: i64,
    /// The properties the change gave a new value (a creation: every value it set).
    pub properties: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge: Option<Merge>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub association: Option<AssociationChange>,
}

impl Change {
    fn new(
        object_type: ObjectType,
        id: u64,
        kind: ChangeKind,
        source: ChangeSource,
        at_ms: i64,
    ) -> Self {
        Change {
            seq: 0,
            object_type,
            id: id.to_string(),
            kind,
            source,
            source_id: source.source_id(),
            at: rfc3339_ms(at_ms),
            at_ms,
            properties: BTreeMap::new(),
            merge: None,
            association: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Association {
    pub from_type: ObjectType,
    pub from_id: u64,
    pub to_type: ObjectType,
    pub to_id: u64,
    pub type_id: u32,
}

#[derive(Debug, Default)]
struct Table {
    records: BTreeMap<u64, Record>,
    /// property -> normalized value -> record id, for `hasUniqueValue` properties.
    unique: BTreeMap<String, HashMap<String, u64>>,
}

/// A validated write, ready to commit.
#[derive(Debug, Clone)]
pub struct PreparedWrite {
    pub existing: Option<u64>,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct Store {
    tables: BTreeMap<ObjectType, Table>,
    /// A merged record's id -> the record it was merged into.
    merged_into: BTreeMap<(ObjectType, u64), u64>,
    /// Emails a GDPR delete found no contact for: blocked from use, as HubSpot blocks them.
    gdpr_blocked: HashSet<String>,
    properties: BTreeMap<ObjectType, BTreeMap<String, PropertyDef>>,
    owners: Vec<Owner>,
    associations: BTreeSet<Association>,
    changes: VecDeque<Change>,
    next_seq: u64,
    next_id: u64,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let mut store = Store {
            tables: BTreeMap::new(),
            merged_into: BTreeMap::new(),
            gdpr_blocked: HashSet::new(),
            properties: BTreeMap::new(),
            owners: default_owners(),
            associations: BTreeSet::new(),
            changes: VecDeque::new(),
            next_seq: 1,
            next_id: FIRST_ID,
        };
        for object_type in ObjectType::ALL {
            store.tables.insert(object_type, Table::default());
            store.properties.insert(
                object_type,
                default_properties(object_type)
                    .into_iter()
                    .map(|d| (d.name.clone(), d))
                    .collect(),
            );
        }
        store
    }

    // ----- properties and owners -----

    pub fn property_defs(&self, object_type: ObjectType) -> &BTreeMap<String, PropertyDef> {
        // Every object type is inserted at construction.
        &self.properties[&object_type]
    }

    pub fn add_property(
        &mut self,
        object_type: ObjectType,
        def: PropertyDef,
    ) -> Result<(), String> {
        let defs = self.properties.entry(object_type).or_default();
        if defs.contains_key(&def.name) {
            return Err(format!("Property named '{}' already exists.", def.name));
        }
        defs.insert(def.name.clone(), def);
        Ok(())
    }

    pub fn owners(&self) -> &[Owner] {
        &self.owners
    }

    pub fn add_owner(&mut self, owner: Owner) {
        self.owners.retain(|o| o.id != owner.id);
        self.owners.push(owner);
    }

    fn owner_ids(&self) -> Vec<String> {
        self.owners
            .iter()
            .filter(|o| !o.archived)
            .map(|o| o.id.clone())
            .collect()
    }

    // ----- reads -----

    pub fn get(&self, object_type: ObjectType, id: u64) -> Option<&Record> {
        self.tables
            .get(&object_type)
            .and_then(|t| t.records.get(&id))
            .filter(|r| !r.archived)
    }

    pub fn records(&self, object_type: ObjectType) -> impl Iterator<Item = &Record> {
        self.tables
            .get(&object_type)
            .into_iter()
            .flat_map(|t| t.records.values())
            .filter(|r| !r.archived)
    }

    /// The live record an id names: itself, or the record it was merged into.
    pub fn live_id(&self, object_type: ObjectType, id: u64) -> Option<u64> {
        let mut id = id;
        for _ in 0..MAX_MERGE_HOPS {
            if self.get(object_type, id).is_some() {
                return Some(id);
            }
            id = *self.merged_into.get(&(object_type, id))?;
        }
        None
    }

    /// An archived record still retained at `now_ms`.
    pub fn get_archived(&self, object_type: ObjectType, id: u64, now_ms: i64) -> Option<&Record> {
        self.tables
            .get(&object_type)
            .and_then(|t| t.records.get(&id))
            .filter(|r| r.archived && r.retained(now_ms))
    }

    /// The archived records still retained at `now_ms`, by id.
    pub fn archived_records(
        &self,
        object_type: ObjectType,
        now_ms: i64,
    ) -> impl Iterator<Item = &Record> {
        self.tables
            .get(&object_type)
            .into_iter()
            .flat_map(|t| t.records.values())
            .filter(move |r| r.archived && r.retained(now_ms))
    }

    /// An archived record by id, or by a value of a unique property it had.
    pub fn resolve_archived(
        &self,
        object_type: ObjectType,
        id: &str,
        id_property: Option<&str>,
        now_ms: i64,
    ) -> Option<u64> {
        match id_property {
            None | Some("hs_object_id") => id
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|id| self.get_archived(object_type, *id, now_ms).is_some()),
            Some(property) => {
                let key = unique_key(property, id);
                self.archived_records(object_type, now_ms)
                    .find(|r| {
                        r.properties
                            .get(property)
                            .is_some_and(|v| unique_key(property, v) == key)
                    })
                    .map(|r| r.id)
            }
        }
    }

    /// The id a client refers to: a record id, or a value of a unique property named by `id_property`.
    pub fn resolve(
        &self,
        object_type: ObjectType,
        id: &str,
        id_property: Option<&str>,
    ) -> Result<Option<u64>, InputError> {
        match id_property {
            None | Some("hs_object_id") => Ok(id
                .trim()
                .parse::<u64>()
                .ok()
                .and_then(|id| self.live_id(object_type, id))),
            Some(property) => {
                let def = self
                    .property_defs(object_type)
                    .get(property)
                    .ok_or_else(|| {
                        InputError::Invalid(format!("Property \"{property}\" does not exist"))
                    })?;
                if !def.has_unique_value {
                    return Err(InputError::Invalid(format!(
                        "{property} is not a unique identifier property; use hs_object_id or a property with unique values"
                    )));
                }
                let key = unique_key(property, id);
                Ok(self
                    .tables
                    .get(&object_type)
                    .and_then(|t| t.unique.get(property))
                    .and_then(|index| index.get(&key))
                    .copied())
            }
        }
    }

    /// The records search can see now: the index lags writes by `lag_ms`.
    pub fn searchable(
        &mut self,
        object_type: ObjectType,
        now_ms: i64,
        lag_ms: i64,
    ) -> Vec<(u64, BTreeMap<String, String>)> {
        let Some(table) = self.tables.get_mut(&object_type) else {
            return Vec::new();
        };
        let horizon = now_ms - lag_ms;
        let mut visible = Vec::new();
        for record in table.records.values_mut() {
            while record.pending.front().is_some_and(|s| s.at_ms <= horizon) {
                record.indexed = record.pending.pop_front();
            }
            if let Some(snapshot) = &record.indexed
                && !snapshot.archived
            {
                visible.push((record.id, snapshot.properties.clone()));
            }
        }
        visible
    }

    // ----- writes -----

    /// Validates one create or update without committing it. `batch_unique` collects the unique
    /// values claimed by earlier inputs of the same request.
    pub fn prepare(
        &self,
        object_type: ObjectType,
        existing: Option<u64>,
        input: &Map<String, Value>,
        batch_unique: &mut HashSet<(String, String)>,
    ) -> Result<PreparedWrite, InputError> {
        let defs = self.property_defs(object_type);
        let properties =
            validate_properties(defs, &self.owner_ids(), input).map_err(InputError::Properties)?;
        if existing.is_none() && object_type.is_activity() {
            let has_timestamp = properties
                .get("hs_timestamp")
                .is_some_and(|v| !v.is_empty());
            if !has_timestamp {
                return Err(InputError::Properties(vec![
                    super::errors::PropertyError::new(
                        "hs_timestamp",
                        "REQUIRED_PROPERTY",
                        "hs_timestamp is required",
                    ),
                ]));
            }
        }
        if object_type == ObjectType::Contacts
            && let Some(email) = properties.get("email")
            && self.gdpr_blocked.contains(&unique_key("email", email))
        {
            return Err(InputError::Invalid(format!(
                "Email address {email} was blocked by a GDPR delete and cannot be used again"
            )));
        }
        for (name, value) in &properties {
            let unique = defs.get(name).is_some_and(|d| d.has_unique_value);
            if !unique || value.is_empty() {
                continue;
            }
            let key = unique_key(name, value);
            let owner = self
                .tables
                .get(&object_type)
                .and_then(|t| t.unique.get(name))
                .and_then(|index| index.get(&key))
                .copied();
            if let Some(owner) = owner
                && Some(owner) != existing
            {
                return Err(conflict(object_type, name, value, owner));
            }
            if !batch_unique.insert((name.clone(), key)) {
                return Err(InputError::Invalid(format!(
                    "Duplicate value {value} for unique property {name} in one batch"
                )));
            }
        }
        Ok(PreparedWrite {
            existing,
            properties,
        })
    }

    /// Commits a prepared write; returns the record id. An update that gives no property a new
    /// value changes nothing: no history, no new modification date, no change logged.
    pub fn commit(
        &mut self,
        object_type: ObjectType,
        write: PreparedWrite,
        now_ms: i64,
        source: ChangeSource,
    ) -> u64 {
        let defs = self
            .properties
            .get(&object_type)
            .cloned()
            .unwrap_or_default();
        let (id, kind) = match write.existing {
            Some(id) => (id, ChangeKind::Updated),
            None => {
                let id = self.next_id;
                self.next_id += 1;
                (id, ChangeKind::Created)
            }
        };
        let Some(table) = self.tables.get_mut(&object_type) else {
            return id;
        };
        let record = table.records.entry(id).or_insert_with(|| {
            let mut record = Record {
                id,
                properties: BTreeMap::new(),
                created_ms: now_ms,
                updated_ms: now_ms,
                archived: false,
                archived_ms: None,
                history: BTreeMap::new(),
                archived_links: Vec::new(),
                indexed: None,
                pending: VecDeque::new(),
            };
            let stamp = rfc3339_ms(now_ms);
            record.set("hs_object_id", &id.to_string(), now_ms, source);
            record.set("createdate", &stamp, now_ms, source);
            record.set("hs_createdate", &stamp, now_ms, source);
            record
        });
        let changed: BTreeMap<String, String> = write
            .properties
            .into_iter()
            .filter(|(name, value)| {
                let old = record.properties.get(name).map_or("", String::as_str);
                old != value.as_str()
            })
            .collect();
        if kind == ChangeKind::Updated && changed.is_empty() {
            return id;
        }
        for (name, value) in &changed {
            if defs.get(name).is_some_and(|d| d.has_unique_value) {
                let index = table.unique.entry(name.clone()).or_default();
                if let Some(old) = record.properties.get(name) {
                    index.remove(&unique_key(name, old));
                }
                if !value.is_empty() {
                    index.insert(unique_key(name, value), id);
                }
            }
            record.set(name, value, now_ms, source);
        }
        record.updated_ms = now_ms;
        let stamp = rfc3339_ms(now_ms);
        record.set("hs_lastmodifieddate", &stamp, now_ms, source);
        if object_type == ObjectType::Contacts {
            record.set("lastmodifieddate", &stamp, now_ms, source);
        }
        record.pending.push_back(Snapshot {
            at_ms: now_ms,
            properties: record.properties.clone(),
            archived: false,
        });
        let mut change = Change::new(object_type, id, kind, source, now_ms);
        change.properties = changed;
        self.log(change);
        id
    }

    /// Validates and commits one write on its own (no batch around it).
    pub fn write_one(
        &mut self,
        object_type: ObjectType,
        existing: Option<u64>,
        input: &Map<String, Value>,
        now_ms: i64,
        source: ChangeSource,
    ) -> Result<u64, InputError> {
        let write = self.prepare(object_type, existing, input, &mut HashSet::new())?;
        Ok(self.commit(object_type, write, now_ms, source))
    }

    pub fn archive(
        &mut self,
        object_type: ObjectType,
        id: u64,
        now_ms: i64,
        source: ChangeSource,
    ) -> bool {
        let Some(table) = self.tables.get_mut(&object_type) else {
            return false;
        };
        let Some(record) = table.records.get_mut(&id).filter(|r| !r.archived) else {
            return false;
        };
        record.archived = true;
        record.archived_ms = Some(now_ms);
        record.pending.push_back(Snapshot {
            at_ms: now_ms,
            properties: record.properties.clone(),
            archived: true,
        });
        for (name, index) in table.unique.iter_mut() {
            let values: Vec<&String> = record.properties.get(name).into_iter().collect();
            // A merged contact's email finds the contact it was merged into until that goes.
            if name == "email"
                && let Some(additional) = record.properties.get("hs_additional_emails")
            {
                for email in additional.split(';') {
                    let key = unique_key(name, email);
                    if index.get(&key) == Some(&id) {
                        index.remove(&key);
                    }
                }
            }
            for value in values {
                let key = unique_key(name, value);
                if index.get(&key) == Some(&id) {
                    index.remove(&key);
                }
            }
        }
        // An archived record's associations go with it, and come back if it is restored.
        let links: Vec<Association> = self
            .associations
            .iter()
            .filter(|a| {
                (a.from_type == object_type && a.from_id == id)
                    || (a.to_type == object_type && a.to_id == id)
            })
            .copied()
            .collect();
        for link in &links {
            self.associations.remove(link);
        }
        record.archived_links = links;
        self.log(Change::new(
            object_type,
            id,
            ChangeKind::Archived,
            source,
            now_ms,
        ));
        true
    }

    /// Brings back an archived record (HubSpot's recycle bin, within 90 days): its unique
    /// values, unless a live record took them since (409), and its associations with records
    /// still live.
    pub fn restore(
        &mut self,
        object_type: ObjectType,
        id: u64,
        now_ms: i64,
        source: ChangeSource,
    ) -> Result<(), InputError> {
        let unique_names: Vec<String> = self
            .property_defs(object_type)
            .values()
            .filter(|d| d.has_unique_value)
            .map(|d| d.name.clone())
            .collect();
        let record = self
            .get_archived(object_type, id, now_ms)
            .ok_or(InputError::NotFound { id: id.to_string() })?;
        let mut claims = Vec::new();
        for name in &unique_names {
            if let Some(value) = record.properties.get(name) {
                let key = unique_key(name, value);
                let owner = self
                    .tables
                    .get(&object_type)
                    .and_then(|t| t.unique.get(name))
                    .and_then(|index| index.get(&key))
                    .copied();
                if let Some(owner) = owner
                    && owner != id
                {
                    return Err(conflict(object_type, name, value, owner));
                }
                claims.push((name.clone(), key));
            }
        }
        let Some(table) = self.tables.get_mut(&object_type) else {
            return Err(InputError::NotFound { id: id.to_string() });
        };
        for (name, key) in claims {
            table.unique.entry(name).or_default().insert(key, id);
        }
        let Some(record) = table.records.get_mut(&id) else {
            return Err(InputError::NotFound { id: id.to_string() });
        };
        record.archived = false;
        record.archived_ms = None;
        let links = std::mem::take(&mut record.archived_links);
        record.touch(object_type, now_ms, source);
        for link in links {
            let (other_type, other_id) = if link.from_type == object_type && link.from_id == id {
                (link.to_type, link.to_id)
            } else {
                (link.from_type, link.from_id)
            };
            if self.get(other_type, other_id).is_some() {
                self.associations.insert(link);
            }
        }
        self.log(Change::new(
            object_type,
            id,
            ChangeKind::Restored,
            source,
            now_ms,
        ));
        Ok(())
    }

    /// Merges `merged` into `primary`: the primary keeps its values and takes the merged
    /// record's where it has none, lists the merged id in `hs_merged_object_ids`, takes its
    /// associations (a primary company only if it has none) and, for contacts, its email as an
    /// additional one that still finds it. The merged id then resolves to the primary.
    pub fn merge(
        &mut self,
        object_type: ObjectType,
        primary: u64,
        merged: u64,
        now_ms: i64,
        source: ChangeSource,
    ) -> Result<(), InputError> {
        if primary == merged {
            return Err(InputError::Invalid(format!(
                "Cannot merge {} {primary} into itself",
                object_type.upper_singular()
            )));
        }
        for id in [primary, merged] {
            if self.get(object_type, id).is_none() {
                return Err(InputError::NotFound { id: id.to_string() });
            }
        }
        let defs = self.property_defs(object_type).clone();
        let Some(table) = self.tables.get_mut(&object_type) else {
            return Err(InputError::NotFound {
                id: merged.to_string(),
            });
        };
        let Some(gone) = table.records.remove(&merged) else {
            return Err(InputError::NotFound {
                id: merged.to_string(),
            });
        };
        let Some(record) = table.records.get_mut(&primary) else {
            return Err(InputError::NotFound {
                id: primary.to_string(),
            });
        };
        // The merged record's unique values now find the primary.
        for (name, index) in table.unique.iter_mut() {
            if let Some(value) = gone.properties.get(name) {
                index.insert(unique_key(name, value), primary);
            }
        }
        let mut filled = BTreeMap::new();
        for (name, value) in &gone.properties {
            let writable = defs
                .get(name)
                .is_some_and(|d| !d.read_only && !d.has_unique_value);
            if writable && !record.properties.contains_key(name) {
                record.set(name, value, now_ms, source);
                filled.insert(name.clone(), value.clone());
            }
        }
        let mut merged_ids: Vec<String> = record
            .properties
            .get("hs_merged_object_ids")
            .map(|v| v.split(';').map(str::to_string).collect())
            .unwrap_or_default();
        merged_ids.push(merged.to_string());
        if let Some(earlier) = gone.properties.get("hs_merged_object_ids") {
            merged_ids.extend(earlier.split(';').map(str::to_string));
        }
        record.set(
            "hs_merged_object_ids",
            &merged_ids.join(";"),
            now_ms,
            source,
        );
        if object_type == ObjectType::Contacts
            && let Some(email) = gone.properties.get("email")
        {
            let mut additional: Vec<String> = record
                .properties
                .get("hs_additional_emails")
                .map(|v| v.split(';').map(str::to_string).collect())
                .unwrap_or_default();
            additional.push(email.clone());
            record.set(
                "hs_additional_emails",
                &additional.join(";"),
                now_ms,
                source,
            );
        }
        record.touch(object_type, now_ms, source);
        self.merged_into.insert((object_type, merged), primary);
        if !filled.is_empty() {
            let mut change = Change::new(object_type, primary, ChangeKind::Updated, source, now_ms);
            change.properties = filled;
            self.log(change);
        }
        // The merged record's associations move to the primary.
        let links: Vec<Association> = self
            .associations
            .iter()
            .filter(|a| a.from_type == object_type && a.from_id == merged)
            .copied()
            .collect();
        for link in &links {
            self.associations.remove(link);
            self.associations.remove(&Association {
                from_type: link.to_type,
                from_id: link.to_id,
                to_type: link.from_type,
                to_id: link.from_id,
                type_id: inverse_association_type(link.from_type, link.to_type, link.type_id)
                    .unwrap_or(link.type_id),
            });
        }
        for link in links {
            let primary_label = primary_of(object_type, link.to_type, link.type_id).is_some();
            let has_primary = self.associations.iter().any(|a| {
                a.from_type == object_type
                    && a.from_id == primary
                    && a.to_type == link.to_type
                    && a.type_id == link.type_id
            });
            if primary_label && has_primary {
                continue;
            }
            self.associate(
                object_type,
                primary,
                link.to_type,
                link.to_id,
                link.type_id,
                now_ms,
                source,
            );
        }
        let mut change = Change::new(object_type, primary, ChangeKind::Merged, source, now_ms);
        change.merge = Some(Merge {
            primary,
            merged: vec![merged],
            new_id: primary,
        });
        self.log(change);
        Ok(())
    }

    /// A GDPR delete: the contact is gone for good, not even readable archived; its id no
    /// longer resolves. By email with no such contact, the email is blocked from use instead
    /// (as HubSpot's API describes it); returns whether a contact was deleted.
    pub fn gdpr_delete(&mut self, id: u64, now_ms: i64, source: ChangeSource) -> bool {
        let object_type = ObjectType::Contacts;
        let Some(table) = self.tables.get_mut(&object_type) else {
            return false;
        };
        if table.records.remove(&id).is_none() {
            return false;
        }
        for index in table.unique.values_mut() {
            index.retain(|_, owner| *owner != id);
        }
        self.associations.retain(|a| {
            !((a.from_type == object_type && a.from_id == id)
                || (a.to_type == object_type && a.to_id == id))
        });
        self.merged_into
            .retain(|(ty, _), into| !(*ty == object_type && *into == id));
        self.log(Change::new(
            object_type,
            id,
            ChangeKind::PrivacyDeleted,
            source,
            now_ms,
        ));
        true
    }

    /// Blocks an email from use, as a GDPR delete by an email no contact has does.
    pub fn gdpr_block(&mut self, email: &str) {
        self.gdpr_blocked.insert(unique_key("email", email));
    }

    // ----- associations -----

    /// Checks an association before any write of the request is committed.
    pub fn check_association(
        &self,
        from_type: ObjectType,
        to_type: ObjectType,
        to_id: &str,
        type_id: u32,
        category: &str,
    ) -> Result<u64, InputError> {
        if category != "HUBSPOT_DEFINED" {
            return Err(InputError::Invalid(format!(
                "associationCategory {category} is not supported here; use HUBSPOT_DEFINED"
            )));
        }
        if !is_valid_association_type(from_type, to_type, type_id) {
            return Err(InputError::Invalid(format!(
                "{type_id} is not a valid association type id from {} to {}",
                from_type.upper_singular(),
                to_type.upper_singular()
            )));
        }
        to_id
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|id| self.live_id(to_type, id))
            .ok_or_else(|| {
                InputError::Invalid(format!(
                    "No {} with id {to_id} exists to associate with",
                    to_type.upper_singular()
                ))
            })
    }

    /// Removes the primary label of `type_id` from `from_id`'s (or, seen from the company,
    /// `to_id`'s) other company, both ways.
    #[allow(clippy::too_many_arguments)]
    fn drop_other_primary(
        &mut self,
        from_type: ObjectType,
        from_id: u64,
        to_type: ObjectType,
        to_id: u64,
        type_id: u32,
        now_ms: i64,
        source: ChangeSource,
    ) {
        let inverse = inverse_association_type(from_type, to_type, type_id).unwrap_or(type_id);
        // The side that has one primary company: the one that is not the company.
        let (owner_type, owner_id, company_id, owner_to_company, company_to_owner) =
            if to_type == ObjectType::Companies {
                (from_type, from_id, to_id, type_id, inverse)
            } else {
                (to_type, to_id, from_id, inverse, type_id)
            };
        let dropped: Vec<Association> = self
            .associations
            .iter()
            .filter(|a| {
                let forward = a.from_type == owner_type
                    && a.from_id == owner_id
                    && a.to_type == ObjectType::Companies
                    && a.type_id == owner_to_company
                    && a.to_id != company_id;
                let backward = a.to_type == owner_type
                    && a.to_id == owner_id
                    && a.from_type == ObjectType::Companies
                    && a.type_id == company_to_owner
                    && a.from_id != company_id;
                forward || backward
            })
            .copied()
            .collect();
        for row in dropped {
            self.remove_row(row, now_ms, source);
        }
    }

    /// Adds an association and its inverse; returns false when it already existed. Each row
    /// added is logged (`ASSOCIATED`, from its own side).
    #[allow(clippy::too_many_arguments)]
    pub fn associate(
        &mut self,
        from_type: ObjectType,
        from_id: u64,
        to_type: ObjectType,
        to_id: u64,
        type_id: u32,
        now_ms: i64,
        source: ChangeSource,
    ) -> bool {
        let inverse = inverse_association_type(from_type, to_type, type_id).unwrap_or(type_id);
        if let Some((unlabelled, _)) = primary_of(from_type, to_type, type_id) {
            // A record has one primary company: a new one takes the label from the old, which
            // stays linked unlabelled. A labelled link always comes with the unlabelled one.
            self.drop_other_primary(from_type, from_id, to_type, to_id, type_id, now_ms, source);
            self.associate(
                from_type, from_id, to_type, to_id, unlabelled, now_ms, source,
            );
        }
        let added = self.insert_row(
            Association {
                from_type,
                from_id,
                to_type,
                to_id,
                type_id,
            },
            now_ms,
            source,
        );
        self.insert_row(
            Association {
                from_type: to_type,
                from_id: to_id,
                to_type: from_type,
                to_id: from_id,
                type_id: inverse,
            },
            now_ms,
            source,
        );
        added
    }

    /// Removes every association between two records, both ways; returns false when there
    /// was none. Each row removed is logged (`DISSOCIATED`, from its own side).
    pub fn dissociate(
        &mut self,
        from_type: ObjectType,
        from_id: u64,
        to_type: ObjectType,
        to_id: u64,
        now_ms: i64,
        source: ChangeSource,
    ) -> bool {
        let rows: Vec<Association> = self
            .associations
            .iter()
            .filter(|a| {
                (a.from_type == from_type
                    && a.from_id == from_id
                    && a.to_type == to_type
                    && a.to_id == to_id)
                    || (a.from_type == to_type
                        && a.from_id == to_id
                        && a.to_type == from_type
                        && a.to_id == from_id)
            })
            .copied()
            .collect();
        for row in &rows {
            self.remove_row(*row, now_ms, source);
        }
        !rows.is_empty()
    }

    fn insert_row(&mut self, row: Association, now_ms: i64, source: ChangeSource) -> bool {
        let added = self.associations.insert(row);
        if added {
            self.log_association(row, ChangeKind::Associated, now_ms, source);
        }
        added
    }

    fn remove_row(&mut self, row: Association, now_ms: i64, source: ChangeSource) {
        if self.associations.remove(&row) {
            self.log_association(row, ChangeKind::Dissociated, now_ms, source);
        }
    }

    fn log_association(
        &mut self,
        row: Association,
        kind: ChangeKind,
        now_ms: i64,
        source: ChangeSource,
    ) {
        let mut change = Change::new(row.from_type, row.from_id, kind, source, now_ms);
        change.association = Some(AssociationChange {
            to_type: row.to_type,
            to_id: row.to_id,
            type_id: row.type_id,
            primary: association_label(row.type_id).is_some(),
        });
        self.log(change);
    }

    /// Associations of one record towards `to_type`: (to id, type ids).
    pub fn associations_of(
        &self,
        from_type: ObjectType,
        from_id: u64,
        to_type: ObjectType,
    ) -> Vec<(u64, Vec<u32>)> {
        let mut grouped: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for a in self
            .associations
            .iter()
            .filter(|a| a.from_type == from_type && a.from_id == from_id && a.to_type == to_type)
        {
            grouped.entry(a.to_id).or_default().push(a.type_id);
        }
        grouped.into_iter().collect()
    }

    pub fn all_associations(&self) -> impl Iterator<Item = &Association> {
        self.associations.iter()
    }

    // ----- change log -----

    fn log(&mut self, mut change: Change) {
        if self.changes.len() == CHANGE_LOG_CAP {
            self.changes.pop_front();
        }
        change.seq = self.next_seq;
        self.next_seq += 1;
        self.changes.push_back(change);
    }

    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter()
    }

    /// The changes logged after `seq`, oldest first (those the log has dropped are gone).
    pub fn changes_after(&self, seq: u64) -> impl Iterator<Item = &Change> {
        let first = self.changes.front().map_or(self.next_seq, |c| c.seq);
        let skip = seq.saturating_add(1).saturating_sub(first);
        self.changes
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
    }

    /// Numbers the next change after `seq`: a reset portal's log goes on where the old one
    /// stopped, so a reader's position stays meaningful.
    pub fn continue_from(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq + 1);
    }

    /// The sequence number of the newest change logged (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn count(&self, object_type: ObjectType) -> usize {
        self.records(object_type).count()
    }
}

/// Index key of a unique value: emails compare case-insensitively, other values exactly.
fn unique_key(property: &str, value: &str) -> String {
    if property == "email" {
        value.trim().to_ascii_lowercase()
    } else {
        value.to_string()
    }
}

fn conflict(object_type: ObjectType, property: &str, value: &str, existing_id: u64) -> InputError {
    let message = if object_type == ObjectType::Contacts && property == "email" {
        format!("Contact already exists. Existing ID: {existing_id}")
    } else {
        format!(
            "A {} with {property} {value} already exists. Existing ID: {existing_id}",
            object_type.upper_singular().to_ascii_lowercase()
        )
    };
    InputError::Conflict {
        message,
        existing_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_APP: ChangeSource = ChangeSource::Integration { app_id: 7 };

    fn props(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("object")
    }

    fn create(
        store: &mut Store,
        object_type: ObjectType,
        value: Value,
        now: i64,
    ) -> Result<u64, InputError> {
        let write = store.prepare(object_type, None, &props(value), &mut HashSet::new())?;
        Ok(store.commit(object_type, write, now, TEST_APP))
    }

    #[test]
    fn system_properties_are_maintained() {
        let mut store = Store::new();
        let id = create(
            &mut store,
            ObjectType::Contacts,
            json!({"email": "a@b.io"}),
            1_000,
        )
        .expect("created");
        let write = store
            .prepare(
                ObjectType::Contacts,
                Some(id),
                &props(json!({"firstname": "Ada"})),
                &mut HashSet::new(),
            )
            .expect("valid");
        store.commit(ObjectType::Contacts, write, 5_000, TEST_APP);
        let record = store.get(ObjectType::Contacts, id).expect("exists");
        assert_eq!(record.properties["hs_object_id"], id.to_string());
        assert_eq!(record.properties["createdate"], rfc3339_ms(1_000));
        assert_eq!(record.properties["hs_lastmodifieddate"], rfc3339_ms(5_000));
        assert_eq!(record.properties["lastmodifieddate"], rfc3339_ms(5_000));
    }

    #[test]
    fn duplicate_email_conflicts_case_insensitively() {
        let mut store = Store::new();
        let id = create(
            &mut store,
            ObjectType::Contacts,
            json!({"email": "a@b.io"}),
            0,
        )
        .expect("created");
        let error = create(
            &mut store,
            ObjectType::Contacts,
            json!({"email": "A@B.io"}),
            0,
        )
        .expect_err("conflict");
        assert_eq!(
            error,
            InputError::Conflict {
                message: format!("Contact already exists. Existing ID: {id}"),
                existing_id: id
            }
        );
        assert_eq!(
            store
                .resolve(ObjectType::Contacts, "A@b.IO", Some("email"))
                .expect("ok"),
            Some(id)
        );
    }

    #[test]
    fn search_sees_writes_only_after_the_index_lag() {
        let mut store = Store::new();
        create(
            &mut store,
            ObjectType::Companies,
            json!({"domain": "acme.io"}),
            1_000,
        )
        .expect("created");
        assert!(
            store
                .searchable(ObjectType::Companies, 1_500, 2_000)
                .is_empty()
        );
        assert_eq!(
            store.searchable(ObjectType::Companies, 3_000, 2_000).len(),
            1
        );
    }

    #[test]
    fn activities_need_a_timestamp() {
        let mut store = Store::new();
        let error = create(
            &mut store,
            ObjectType::Notes,
            json!({"hs_note_body": "hi"}),
            0,
        )
        .expect_err("needs timestamp");
        assert!(error.message().contains("REQUIRED_PROPERTY"));
    }

    #[test]
    fn associations_are_stored_in_both_directions_with_inverse_ids() {
        let mut store = Store::new();
        let contact = create(
            &mut store,
            ObjectType::Contacts,
            json!({"email": "a@b.io"}),
            0,
        )
        .expect("created");
        let company = create(
            &mut store,
            ObjectType::Companies,
            json!({"name": "Acme"}),
            0,
        )
        .expect("created");
        assert!(store.associate(
            ObjectType::Contacts,
            contact,
            ObjectType::Companies,
            company,
            279,
            0,
            TEST_APP
        ));
        assert!(!store.associate(
            ObjectType::Contacts,
            contact,
            ObjectType::Companies,
            company,
            279,
            0,
            TEST_APP
        ));
        assert_eq!(
            store.associations_of(ObjectType::Companies, company, ObjectType::Contacts),
            vec![(contact, vec![280])]
        );
        assert!(
            store
                .check_association(
                    ObjectType::Notes,
                    ObjectType::Contacts,
                    &contact.to_string(),
                    279,
                    "HUBSPOT_DEFINED"
                )
                .is_err()
        );
    }

    #[test]
    fn a_contact_has_one_primary_company_and_keeps_the_old_one_unlabelled() {
        let mut store = Store::new();
        let contact = create(
            &mut store,
            ObjectType::Contacts,
            json!({"email": "ada@acme.io"}),
            0,
        )
        .expect("created");
        let first =
            create(&mut store, ObjectType::Companies, json!({"name": "A"}), 0).expect("created");
        let second =
            create(&mut store, ObjectType::Companies, json!({"name": "B"}), 0).expect("created");
        store.associate(
            ObjectType::Contacts,
            contact,
            ObjectType::Companies,
            first,
            1,
            0,
            TEST_APP,
        );
        assert_eq!(
            store.associations_of(ObjectType::Contacts, contact, ObjectType::Companies),
            vec![(first, vec![1, 279])],
            "a primary link comes with the unlabelled one"
        );
        store.associate(
            ObjectType::Contacts,
            contact,
            ObjectType::Companies,
            second,
            1,
            0,
            TEST_APP,
        );
        assert_eq!(
            store.associations_of(ObjectType::Contacts, contact, ObjectType::Companies),
            vec![(first, vec![279]), (second, vec![1, 279])]
        );
        assert_eq!(
            store.associations_of(ObjectType::Companies, first, ObjectType::Contacts),
            vec![(contact, vec![280])],
            "the old company lost the label both ways"
        );
    }

    #[test]
    fn the_change_log_reads_from_a_sequence_number() {
        let mut store = Store::new();
        assert_eq!(store.last_seq(), 0);
        for i in 0..3 {
            create(
                &mut store,
                ObjectType::Companies,
                json!({"name": format!("c{i}")}),
                i,
            )
            .expect("created");
        }
        assert_eq!(store.last_seq(), 3);
        let after: Vec<u64> = store.changes_after(1).map(|c| c.seq).collect();
        assert_eq!(after, [2, 3]);
        assert_eq!(store.changes_after(0).count(), 3);
        assert_eq!(store.changes_after(3).count(), 0);
    }

    #[test]
    fn archiving_frees_unique_values_and_hides_the_record() {
        let mut store = Store::new();
        let id = create(
            &mut store,
            ObjectType::Contacts,
            json!({"email": "a@b.io"}),
            0,
        )
        .expect("created");
        assert!(store.archive(ObjectType::Contacts, id, 1, TEST_APP));
        assert!(store.get(ObjectType::Contacts, id).is_none());
        create(
            &mut store,
            ObjectType::Contacts,
            json!({"email": "a@b.io"}),
            2,
        )
        .expect("email free again");
    }
}
