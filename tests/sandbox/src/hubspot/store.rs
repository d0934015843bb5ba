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
    ObjectType, Owner, PropertyDef, default_owners, default_properties, inverse_association_type,
    is_valid_association_type, primary_of,
};
use super::validate::validate_properties;
use crate::clock::rfc3339_ms;

const FIRST_ID: u64 = 10_001;
const CHANGE_LOG_CAP: usize = 100_000;

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
    /// What search sees: the newest snapshot older than the index lag.
    indexed: Option<Snapshot>,
    pending: VecDeque<Snapshot>,
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

/// Who made a change: the integration through the API, or a person in HubSpot's UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeSource {
    Integration,
    CrmUi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    Created,
    Updated,
    Archived,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub object_type: ObjectType,
    pub id: String,
    pub kind: ChangeKind,
    pub source: ChangeSource,
    pub at: String,
    pub properties: BTreeMap<String, String>,
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
    properties: BTreeMap<ObjectType, BTreeMap<String, PropertyDef>>,
    owners: Vec<Owner>,
    associations: BTreeSet<Association>,
    changes: VecDeque<Change>,
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
            properties: BTreeMap::new(),
            owners: default_owners(),
            associations: BTreeSet::new(),
            changes: VecDeque::new(),
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
                .filter(|id| self.get(object_type, *id).is_some())),
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

    /// Commits a prepared write; returns the record id.
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
            let mut properties = BTreeMap::new();
            properties.insert("hs_object_id".to_string(), id.to_string());
            properties.insert("createdate".to_string(), rfc3339_ms(now_ms));
            properties.insert("hs_createdate".to_string(), rfc3339_ms(now_ms));
            Record {
                id,
                properties,
                created_ms: now_ms,
                updated_ms: now_ms,
                archived: false,
                archived_ms: None,
                indexed: None,
                pending: VecDeque::new(),
            }
        });
        for (name, value) in &write.properties {
            if defs.get(name).is_some_and(|d| d.has_unique_value) {
                let index = table.unique.entry(name.clone()).or_default();
                if let Some(old) = record.properties.get(name) {
                    index.remove(&unique_key(name, old));
                }
                if !value.is_empty() {
                    index.insert(unique_key(name, value), id);
                }
            }
            if value.is_empty() {
                record.properties.remove(name);
            } else {
                record.properties.insert(name.clone(), value.clone());
            }
        }
        record.updated_ms = now_ms;
        let stamp = rfc3339_ms(now_ms);
        record
            .properties
            .insert("hs_lastmodifieddate".to_string(), stamp.clone());
        if object_type == ObjectType::Contacts {
            record
                .properties
                .insert("lastmodifieddate".to_string(), stamp.clone());
        }
        record.pending.push_back(Snapshot {
            at_ms: now_ms,
            properties: record.properties.clone(),
            archived: false,
        });
        self.log(Change {
            object_type,
            id: id.to_string(),
            kind,
            source,
            at: stamp,
            properties: write.properties,
        });
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
            if let Some(value) = record.properties.get(name) {
                index.remove(&unique_key(name, value));
            }
        }
        self.associations.retain(|a| {
            !((a.from_type == object_type && a.from_id == id)
                || (a.to_type == object_type && a.to_id == id))
        });
        self.log(Change {
            object_type,
            id: id.to_string(),
            kind: ChangeKind::Archived,
            source,
            at: rfc3339_ms(now_ms),
            properties: BTreeMap::new(),
        });
        true
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
            .filter(|id| self.get(to_type, *id).is_some())
            .ok_or_else(|| {
                InputError::Invalid(format!(
                    "No {} with id {to_id} exists to associate with",
                    to_type.upper_singular()
                ))
            })
    }

    /// Adds an association and its inverse; returns false when it already existed.
    /// Removes the primary label of `type_id` from `from_id`'s (or, seen from the company,
    /// `to_id`'s) other company, both ways.
    fn drop_other_primary(
        &mut self,
        from_type: ObjectType,
        from_id: u64,
        to_type: ObjectType,
        to_id: u64,
        type_id: u32,
    ) {
        let inverse = inverse_association_type(from_type, to_type, type_id).unwrap_or(type_id);
        // The side that has one primary company: the one that is not the company.
        let (owner_type, owner_id, company_id, owner_to_company, company_to_owner) =
            if to_type == ObjectType::Companies {
                (from_type, from_id, to_id, type_id, inverse)
            } else {
                (to_type, to_id, from_id, inverse, type_id)
            };
        self.associations.retain(|a| {
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
            !forward && !backward
        });
    }

    pub fn associate(
        &mut self,
        from_type: ObjectType,
        from_id: u64,
        to_type: ObjectType,
        to_id: u64,
        type_id: u32,
    ) -> bool {
        let inverse = inverse_association_type(from_type, to_type, type_id).unwrap_or(type_id);
        if let Some((unlabelled, _)) = primary_of(from_type, to_type, type_id) {
            // A record has one primary company: a new one takes the label from the old, which
            // stays linked unlabelled. A labelled link always comes with the unlabelled one.
            self.drop_other_primary(from_type, from_id, to_type, to_id, type_id);
            self.associate(from_type, from_id, to_type, to_id, unlabelled);
        }
        let added = self.associations.insert(Association {
            from_type,
            from_id,
            to_type,
            to_id,
            type_id,
        });
        self.associations.insert(Association {
            from_type: to_type,
            from_id: to_id,
            to_type: from_type,
            to_id: from_id,
            type_id: inverse,
        });
        added
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

    fn log(&mut self, change: Change) {
        if self.changes.len() == CHANGE_LOG_CAP {
            self.changes.pop_front();
        }
        self.changes.push_back(change);
    }

    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter()
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
        Ok(store.commit(object_type, write, now, ChangeSource::Integration))
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
        store.commit(
            ObjectType::Contacts,
            write,
            5_000,
            ChangeSource::Integration,
        );
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
            279
        ));
        assert!(!store.associate(
            ObjectType::Contacts,
            contact,
            ObjectType::Companies,
            company,
            279
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
    fn archiving_frees_unique_values_and_hides_the_record() {
        let mut store = Store::new();
        let id = create(
            &mut store,
            ObjectType::Contacts,
            json!({"email": "a@b.io"}),
            0,
        )
        .expect("created");
        assert!(store.archive(ObjectType::Contacts, id, 1, ChangeSource::Integration));
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
