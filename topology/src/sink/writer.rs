//! How a batch of coalesced records becomes HubSpot calls, and what each record's events are told.
//!
//! Two ways to find a record:
//! - **by a unique property HubSpot enforces** (contacts by email): one batch upsert writes every
//!   record that may be created; records that may not be created are read by that property and
//!   updated only when found. HubSpot itself guarantees no duplicate. Records with defaults that
//!   hubsync has never seen in HubSpot are read too, and those found absent are created with
//!   their defaults in one batch create (a 409, someone having created one meanwhile, sends
//!   them to the upsert instead).
//! - **by lookup** (companies by domain, records known only by their upstream id): the identity
//!   map first, then one search for every domain it does not know (and, when configured, one by
//!   name for those still unfound, matching only companies that have no domain), then a batch update of what
//!   was found and a batch create of what may be created. Search lags writes, so a create is
//!   preceded by a durable intent; an intent found without an identity (a crash between the create
//!   and the identity map write) makes the record wait until search has caught up, and only then
//!   is it searched again and created if still absent. A record HubSpot cannot search for at all
//!   is dead-lettered in that case rather than risk a duplicate.
//!
//! Defaults (`create_only`) go with creates; after an upsert that created a record, they follow
//! in one batch update (only for records the read did not find absent: they were created with
//! them). A record whose values all equal what hubsync last wrote there is not
//! written at all.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use hubsync_schemas::{ErrorClass as FailureClass, HubSpotObjectType, IdentityKind, ReasonCode};
use tracing::{debug, info, warn};

use super::coalesce::PendingRecord;
use super::companies::{self, Wanted};
use super::links::{self, LinkError, Resolved};
pub use super::verdict::Resolution;
use super::verdict::{self, Refusal, SinkVerdict};
use crate::hubspot::{
    CreateInput, ErrorClass, HubSpotClient, InlineAssociation, InputResult, ObjectType,
    UpdateInput, UpsertInput,
};
use crate::hubspot::{Error as ClientError, Failure as ClientFailure};
use crate::outcomes::{Failure, Verdict};
use crate::state::{CreateIntent, State, StateError, hubspot_key};

#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// The unique contact property records are upserted by (`email`).
    pub contact_id_property: String,
    /// Look for a company by name when its domain finds nothing.
    pub match_companies_on_name: bool,
    /// How long HubSpot's search may take to show a write.
    pub search_lag: Duration,
    /// How long an activity or deal waits for its contact to be in HubSpot before it is parked.
    pub contact_wait: Duration,
}

/// How far the clocks of upstream and of this sink may disagree: events up to this much younger
/// than the state are treated as older than it. An event that young can only have been created
/// by a lost state that was still writing in the last seconds before this one began.
const CLOCK_SKEW_MS: i64 = 10_000;

/// How often a record waiting for its contact looks again.
const CONTACT_RETRY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Writer {
    client: HubSpotClient,
    state: State,
    settings: WriterSettings,
}

type Results = Vec<(PendingRecord, Resolution)>;

impl Writer {
    pub fn new(client: HubSpotClient, state: State, settings: WriterSettings) -> Self {
        Writer {
            client,
            state,
            settings,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Writes one batch of records of one object type; every record comes back with its
    /// resolution. State (identity map, last written values) is updated but not flushed.
    pub async fn write(
        &self,
        object: HubSpotObjectType,
        records: Vec<PendingRecord>,
        now_ms: i64,
    ) -> Result<Results, StateError> {
        let Some(target) = ObjectType::of_command(object) else {
            let failure = Failure::new(
                FailureClass::Internal,
                ReasonCode::UnsupportedObjectType,
                format!("the sink does not write {} records", object.as_str()),
            );
            return Ok(records
                .into_iter()
                .map(|r| (r, Resolution::DeadLetter(failure.clone())))
                .collect());
        };
        if target.is_activity() {
            return self.write_activities(target, records, now_ms).await;
        }
        let companies = if target == ObjectType::Contacts {
            companies::find(&self.state, &records)?
        } else {
            HashMap::new()
        };
        let (by_property, by_lookup): (Vec<_>, Vec<_>) = records.into_iter().partition(|r| {
            target == ObjectType::Contacts && identity_kind(r) == Some(IdentityKind::Email)
        });
        let mut results = Vec::new();
        let (by_property, unchanged) = self.split_unchanged(target, by_property)?;
        results.extend(unchanged);
        let (by_lookup, unchanged) = self.split_unchanged(target, by_lookup)?;
        results.extend(unchanged);
        if !by_property.is_empty() {
            results.extend(
                self.write_by_property(target, by_property, &companies)
                    .await?,
            );
        }
        if !by_lookup.is_empty() {
            results.extend(self.write_by_lookup(target, by_lookup, now_ms).await?);
        }
        match target {
            ObjectType::Contacts if !companies.is_empty() => {
                companies::link_written(&self.client, &self.state, &mut results, &companies)
                    .await?;
            }
            ObjectType::Companies => {
                companies::link_waiting(&self.client, &self.state, &results).await?;
            }
            _ => {}
        }
        Ok(results)
    }

    /// What happened in HubSpot since (learned from `crm.hubspot.changes`) to the record hubsync
    /// knows as `id`: deleted there, it is not written again, and the verdict says why; a
    /// property HubSpot changed after the upstream event that sets it keeps HubSpot's newer value
    /// (newest wins, per property).
    fn respect_hubspot_side(
        &self,
        target: ObjectType,
        id: &str,
        record: &mut PendingRecord,
    ) -> Result<Option<Verdict>, StateError> {
        let key = hubspot_key(target.path_name(), id);
        if let Some(how) = self.state.deleted_in_hubspot(&key)? {
            let reason = if how == "PRIVACY_DELETED" {
                format!(
                    "{} {id} was deleted in HubSpot at the person's request (GDPR); hubsync \
                     never writes it again",
                    target.path_name()
                )
            } else {
                format!(
                    "{} {id} was deleted in HubSpot; hubsync does not re-create it (restore it \
                     in HubSpot to sync it again)",
                    target.path_name()
                )
            };
            return Ok(Some(
                Verdict::skipped(ReasonCode::DeletedInHubspot, reason).with_id(id),
            ));
        }
        let mut older = Vec::new();
        for name in record.merged.property_names() {
            if let (Some(hubspot), Some(upstream)) = (
                self.state.hubspot_changed_at(&key, name)?,
                record.merged.property_time(name),
            ) && hubspot > upstream
            {
                older.push(name.to_string());
            }
        }
        for name in older {
            metrics::counter!("hubsync_sink_older_than_hubspot_total").increment(1);
            record.merged.drop_property(&name);
        }
        Ok(None)
    }

    /// Records already known: deleted in HubSpot, or whose every value (after HubSpot's newer
    /// ones are left out) equals what hubsync last wrote: nothing to send.
    fn split_unchanged(
        &self,
        target: ObjectType,
        records: Vec<PendingRecord>,
    ) -> Result<(Vec<PendingRecord>, Results), StateError> {
        let mut changed = Vec::new();
        let mut unchanged = Vec::new();
        for mut record in records {
            let Some(id) = self.state.identity(&record.key)? else {
                changed.push(record);
                continue;
            };
            if let Some(verdict) = self.respect_hubspot_side(target, &id, &mut record)? {
                unchanged.push((record, Resolution::Done(verdict)));
                continue;
            }
            let last = self
                .state
                .last_written(&hubspot_key(target.path_name(), &id))?;
            // A fill-if-empty value hubsync wrote before has filled the property already.
            record
                .merged
                .drop_filled(|name| last.get(name).is_some_and(|v| !v.is_empty()));
            let same = !record.merged.fills_any()
                && record.merged.properties().all(|(name, value)| {
                    last.get(name).map(String::as_str) == Some(value.unwrap_or(""))
                });
            if same {
                unchanged.push((record, Resolution::Done(Verdict::unchanged(&id))));
            } else {
                changed.push(record);
            }
        }
        Ok((changed, unchanged))
    }

    // ----- by a unique property -----

    async fn write_by_property(
        &self,
        target: ObjectType,
        records: Vec<PendingRecord>,
        companies: &HashMap<String, Wanted>,
    ) -> Result<Results, StateError> {
        let id_property = self.settings.contact_id_property.clone();
        let mut records = records;
        let mut results = Vec::new();
        // One read serves three needs: the current values of fill-if-empty properties, whether
        // records that may not be created exist, and whether records with defaults hubsync has
        // never seen in HubSpot are new (then created with their defaults in one call).
        let wanted: BTreeSet<String> = records
            .iter()
            .flat_map(|r| r.merged.fill_if_empty().map(str::to_string))
            .collect();
        let mut read = HashSet::new();
        for record in &records {
            let new_with_defaults = || -> Result<bool, StateError> {
                Ok(!verdict::defaults_to_send(&record.merged).is_empty()
                    && self.state.identity(&record.key)?.is_none())
            };
            if record.merged.fills_any() || !record.merged.may_create || new_with_defaults()? {
                read.insert(record.key.clone());
            }
        }
        let ids: Vec<String> = records
            .iter()
            .filter(|r| read.contains(&r.key))
            .map(identity_value)
            .collect();
        let mut read_failure = None;
        let current = if ids.is_empty() {
            HashMap::new()
        } else {
            let properties: Vec<String> = wanted.into_iter().collect();
            match self
                .client
                .batch_read(target, &ids, Some(&id_property), &properties)
                .await
            {
                Ok(answers) => by_key(answers),
                Err(error) => {
                    if let Err(paused) = keep_or_pause(&error) {
                        return Ok(pause_all(records, &paused));
                    }
                    read_failure = Some(error);
                    HashMap::new()
                }
            }
        };
        for record in records.iter_mut() {
            if let Some(Ok(existing)) = current.get(&identity_value(record)) {
                verdict::drop_filled(&mut record.merged, existing);
            }
        }
        let (creatable, update_only): (Vec<_>, Vec<_>) =
            records.into_iter().partition(|r| r.merged.may_create);
        // A record the read found absent, with defaults to set, is created with them in one
        // call; HubSpot's 409 guards against one created meanwhile by someone else.
        let read_ok = read_failure.is_none();
        let (fresh, creatable): (Vec<_>, Vec<_>) = creatable.into_iter().partition(|r| {
            read_ok
                && read.contains(&r.key)
                && !matches!(current.get(&identity_value(r)), Some(Ok(_)))
                && !verdict::defaults_to_send(&r.merged).is_empty()
        });

        // Records that may not be created: update them where HubSpot has them.
        if let Some(error) = read_failure {
            results.extend(fail_all(update_only, &error));
        } else {
            let mut updates = Vec::new();
            for record in update_only {
                match current
                    .get(&identity_value(&record))
                    .and_then(|r| r.as_ref().ok())
                {
                    Some(existing) => {
                        self.state.set_identity(&record.key, &existing.id)?;
                        updates.push((existing.id.clone(), record));
                    }
                    None => results.push(not_created(record)),
                }
            }
            results.extend(self.update_known(target, updates).await?);
        }

        let mut queue = vec![creatable];
        let (created_fresh, upsert_instead) = self
            .create_absent(target, &id_property, fresh, companies)
            .await?;
        results.extend(created_fresh);
        queue.push(upsert_instead);

        // Records that may be created: one upsert, split when HubSpot refuses it as a whole.
        let mut created = Vec::new();
        while let Some(chunk) = queue.pop() {
            if chunk.is_empty() {
                continue;
            }
            let inputs: Vec<UpsertInput> = chunk
                .iter()
                .map(|r| UpsertInput {
                    trace_id: trace_id(r),
                    id: identity_value(r),
                    properties: r.merged.sendable(),
                })
                .collect();
            let earlier = self.note_upserts(&chunk).await?;
            match self
                .client
                .batch_upsert(target, &id_property, &inputs)
                .await
            {
                Ok(answers) => {
                    let answers = by_key(answers);
                    for record in chunk {
                        let answer = answers.get(&trace_id(&record));
                        if answer.is_some() {
                            self.state.clear_intent(&record.key)?;
                        }
                        match answer {
                            Some(Ok(written)) => {
                                self.remember_write(target, &record, &written.id, None)?;
                                if written.new == Some(true)
                                    || created_by_earlier_attempt(&earlier, &record, written)
                                {
                                    created.push((written.id.clone(), record));
                                } else {
                                    results.push((
                                        record,
                                        Resolution::Done(Verdict::updated(&written.id)),
                                    ));
                                }
                            }
                            Some(Err(error)) => {
                                let resolution = verdict::refused(Refusal::of_input(error));
                                results.push((record, resolution));
                            }
                            None => {
                                results.push((record, Resolution::DeadLetter(verdict::no_answer())))
                            }
                        }
                    }
                }
                Err(ClientError::Failed(failure))
                    if matches!(failure.class, ErrorClass::Data { .. }) && chunk.len() > 1 =>
                {
                    // One bad input fails the whole upsert: halve until it stands alone.
                    let mut chunk = chunk;
                    let second = chunk.split_off(chunk.len() / 2);
                    queue.push(second);
                    queue.push(chunk);
                }
                Err(error) => results.extend(fail_all(chunk, &error)),
            }
        }

        // Defaults belong to creation: send them to the records the upsert just created.
        results.extend(self.apply_defaults(target, created).await?);
        Ok(results)
    }

    /// Creates records a read just found absent, with their defaults and every value (their
    /// fill-if-empty ones too: nothing is there to keep). Returns their results, and the records
    /// to upsert instead: all of them when the create failed as a whole for a reason the upsert
    /// settles (a 409 when one was created meanwhile, a refused input, a call that may have been
    /// applied), so that defaults never land on a record someone else created.
    async fn create_absent(
        &self,
        target: ObjectType,
        id_property: &str,
        fresh: Vec<PendingRecord>,
        companies: &HashMap<String, Wanted>,
    ) -> Result<(Results, Vec<PendingRecord>), StateError> {
        let mut results = Vec::new();
        if fresh.is_empty() {
            return Ok((results, Vec::new()));
        }
        let inputs: Vec<CreateInput> = fresh
            .iter()
            .map(|r| {
                let mut properties = verdict::create_values(&r.merged);
                properties.insert(id_property.to_string(), identity_value(r));
                CreateInput {
                    trace_id: trace_id(r),
                    properties,
                    // Linked to its company by the create itself, where hubsync knows it.
                    associations: companies
                        .get(&r.key)
                        .and_then(Wanted::inline)
                        .into_iter()
                        .collect(),
                }
            })
            .collect();
        match self.client.batch_create(target, &inputs).await {
            Ok(answers) => {
                let answers = by_key(answers);
                for record in fresh {
                    match answers.get(&trace_id(&record)) {
                        Some(Ok(written)) => {
                            self.remember_write(
                                target,
                                &record,
                                &written.id,
                                Some(verdict::defaults_to_send(&record.merged)),
                            )?;
                            if let Some(link) = companies.get(&record.key) {
                                companies::remember_inline(&self.state, &written.id, link)?;
                            }
                            results.push((record, Resolution::Done(Verdict::created(&written.id))));
                        }
                        Some(Err(error)) => {
                            results.push((record, verdict::refused(Refusal::of_input(error))));
                        }
                        None => {
                            results.push((record, Resolution::DeadLetter(verdict::no_answer())))
                        }
                    }
                }
                Ok((results, Vec::new()))
            }
            Err(ClientError::Failed(failure))
                if failure.may_have_applied
                    || matches!(
                        failure.class,
                        ErrorClass::Conflict { .. } | ErrorClass::Data { .. }
                    ) =>
            {
                debug!(records = fresh.len(), %failure, "create of absent records refused as a whole; upserting them instead");
                Ok((results, fresh))
            }
            Err(error) => {
                results.extend(fail_all(fresh, &error));
                Ok((results, Vec::new()))
            }
        }
    }

    async fn apply_defaults(
        &self,
        target: ObjectType,
        created: Vec<(String, PendingRecord)>,
    ) -> Result<Results, StateError> {
        let (with_defaults, plain): (Vec<_>, Vec<_>) = created
            .into_iter()
            .partition(|(_, r)| !verdict::defaults_to_send(&r.merged).is_empty());
        let mut results: Results = plain
            .into_iter()
            .map(|(id, r)| (r, Resolution::Done(Verdict::created(&id))))
            .collect();
        if with_defaults.is_empty() {
            return Ok(results);
        }
        let inputs: Vec<UpdateInput> = with_defaults
            .iter()
            .map(|(id, r)| UpdateInput {
                trace_id: trace_id(r),
                id: id.clone(),
                properties: verdict::defaults_to_send(&r.merged),
            })
            .collect();
        let answers = match self.client.batch_update(target, &inputs).await {
            Ok(answers) => by_key(answers),
            Err(error) => {
                warn!(%error, records = inputs.len(), "defaults of newly created records were not written");
                HashMap::new()
            }
        };
        for (id, record) in with_defaults {
            let mut verdict = Verdict::created(&id);
            match answers.get(&trace_id(&record)) {
                Some(Ok(_)) => {
                    self.state.merge_last_written(
                        &hubspot_key(target.path_name(), &id),
                        &verdict::defaults_to_send(&record.merged),
                    )?;
                }
                Some(Err(error)) => {
                    verdict.reason =
                        format!("created in HubSpot; its default values were refused: {error}");
                }
                None => {
                    verdict.reason =
                        "created in HubSpot; its default values could not be written".to_string();
                }
            }
            results.push((record, Resolution::Done(verdict)));
        }
        Ok(results)
    }

    // ----- by lookup -----

    async fn write_by_lookup(
        &self,
        target: ObjectType,
        records: Vec<PendingRecord>,
        now_ms: i64,
    ) -> Result<Results, StateError> {
        let mut results = Vec::new();
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for record in records {
            match self.state.identity(&record.key)? {
                Some(id) => known.push((id, record)),
                None => unknown.push(record),
            }
        }

        // A create may have happened without its identity being recorded: wait for search.
        let mut searchable = Vec::new();
        let mut uncertain_keys = HashSet::new();
        for record in unknown {
            let intent = self.intent_of(target, &record)?;
            if intent.is_some() {
                uncertain_keys.insert(record.key.clone());
            }
            let kind = identity_kind(&record);
            match (intent, kind) {
                (Some(_), Some(IdentityKind::SourceId)) if !searchable_property(&record) => {
                    results.push((record, Resolution::DeadLetter(Failure::new(
                        FailureClass::Data,
                        ReasonCode::UncertainCreate,
                        "a create of this record was interrupted and HubSpot offers no way to look it up by its upstream id; check HubSpot for it, then re-drive",
                    ))));
                }
                (Some(intent), _) => match self.search_wait(&intent, now_ms) {
                    Some(wait) => results.push((record, Resolution::Later(wait))),
                    None => searchable.push(record),
                },
                (None, _) => searchable.push(record),
            }
        }

        // One search for every domain the identity map does not know, and one by the identity
        // property for records an interrupted create may have written.
        let (to_search, not_searchable): (Vec<_>, Vec<_>) = searchable
            .into_iter()
            .partition(|r| identity_kind(r) == Some(IdentityKind::Domain));
        let (uncertain, mut absent): (Vec<_>, Vec<_>) = not_searchable
            .into_iter()
            .partition(|r| uncertain_keys.contains(&r.key));
        let (found, rest) = self.find_by_identity_property(target, uncertain).await?;
        for (_, record) in &found.known {
            self.state.clear_intent(&record.key)?;
        }
        known.extend(found.known);
        results.extend(found.results);
        absent.extend(rest);
        if !to_search.is_empty() {
            match self.search_existing(target, &to_search).await {
                Ok(found) => {
                    for record in to_search {
                        match found.get(&identity_value(&record).to_ascii_lowercase()) {
                            Some(id) => {
                                self.state.set_identity(&record.key, id)?;
                                self.state.clear_intent(&record.key)?;
                                known.push((id.clone(), record));
                            }
                            None => absent.push(record),
                        }
                    }
                }
                Err(error) => results.extend(fail_all(to_search, &error)),
            }
        }

        results.extend(self.update_known(target, known).await?);

        // Create what may be created; the rest waits for its mandatory fields or a trigger.
        let (creatable, blocked): (Vec<_>, Vec<_>) =
            absent.into_iter().partition(|r| r.merged.may_create);
        results.extend(blocked.into_iter().map(not_created));
        results.extend(self.create_linked(target, creatable, now_ms).await?);
        Ok(results)
    }

    // ----- activities -----

    /// Activities are created once per upstream activity: the identity map remembers each one
    /// created, and a create interrupted before it was remembered is looked up by the activity
    /// id property (once search has caught up) before it is made again.
    async fn write_activities(
        &self,
        target: ObjectType,
        records: Vec<PendingRecord>,
        now_ms: i64,
    ) -> Result<Results, StateError> {
        let mut results = Vec::new();
        let mut fresh = Vec::new();
        let mut uncertain = Vec::new();
        for record in records {
            if let Some(id) = self.state.identity(&record.key)? {
                results.push((record, Resolution::Done(Verdict::unchanged(&id))));
                continue;
            }
            match self.intent_of(target, &record)? {
                Some(intent) => match self.search_wait(&intent, now_ms) {
                    Some(wait) => results.push((record, Resolution::Later(wait))),
                    None => uncertain.push(record),
                },
                None => fresh.push(record),
            }
        }
        let (found, absent) = self.find_by_identity_property(target, uncertain).await?;
        results.extend(found.results);
        for (id, record) in found.known {
            let verdict = if self.state.intent(&record.key)?.is_some() {
                // Created before the interruption: that create answers for these events.
                Verdict::created(&id)
            } else {
                Verdict::found_existing(&id)
            };
            self.state.clear_intent(&record.key)?;
            results.push((record, Resolution::Done(verdict)));
        }
        fresh.extend(absent);
        results.extend(self.create_linked(target, fresh, now_ms).await?);
        Ok(results)
    }

    /// Looks records up by their identity property (`hubsync_activity_id`, `hubsync_deal_key`)
    /// in one search; found ones enter the identity map and lose their intent.
    async fn find_by_identity_property(
        &self,
        target: ObjectType,
        records: Vec<PendingRecord>,
    ) -> Result<(Found, Vec<PendingRecord>), StateError> {
        let mut found = Found::default();
        let mut absent = Vec::new();
        let mut by_property: BTreeMap<String, Vec<PendingRecord>> = BTreeMap::new();
        for record in records {
            match identity_property(&record) {
                Some(property) if searchable_property(&record) => {
                    by_property.entry(property).or_default().push(record);
                }
                _ => absent.push(record),
            }
        }
        for (property, records) in by_property {
            let values: Vec<String> = records.iter().map(identity_value).collect();
            match self.search_in(target, &property, &values).await {
                Ok(hits) => {
                    let mut ids: HashMap<String, String> = HashMap::new();
                    for hit in hits {
                        if let Some(value) = hit.property(&property) {
                            keep_oldest(&mut ids, value.to_string(), hit.id.clone());
                        }
                    }
                    for record in records {
                        match ids.get(&identity_value(&record)) {
                            Some(id) => {
                                // The caller clears the intent, once it has read it.
                                self.state.set_identity(&record.key, id)?;
                                found.known.push((id.clone(), record));
                            }
                            None => absent.push(record),
                        }
                    }
                }
                Err(error) => found.results.extend(fail_all(records, &error)),
            }
        }
        Ok((found, absent))
    }

    /// Resolves the links of records about to be created, then creates those whose contact is
    /// in HubSpot; the others wait for it, and are parked once they have waited long enough.
    async fn create_linked(
        &self,
        target: ObjectType,
        records: Vec<PendingRecord>,
        now_ms: i64,
    ) -> Result<Results, StateError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let inherits_owner = |r: &PendingRecord| r.merged.fills(links::OWNER_PROPERTY);
        let mut resolved =
            match links::resolve(&self.client, &self.state, &records, inherits_owner).await {
                Ok(resolved) => resolved,
                Err(LinkError::State(error)) => return Err(error),
                Err(LinkError::Client(error)) => {
                    if let Err(paused) = keep_or_pause(&error) {
                        return Ok(pause_all(records, &paused));
                    }
                    return Ok(fail_all(records, &error));
                }
            };
        let mut results = Vec::new();
        let mut ready = Vec::new();
        for mut record in records {
            match resolved.remove(&record.key) {
                Some(Resolved::Ready(found)) => {
                    // The contact's owner, else the one the command carries (the default
                    // owner), else none at all rather than an empty value.
                    if record.merged.unfill(links::OWNER_PROPERTY) {
                        match found.contact_owner {
                            Some(owner) => {
                                record
                                    .merged
                                    .set_property(links::OWNER_PROPERTY, Some(owner));
                            }
                            None => {
                                if record
                                    .merged
                                    .property(links::OWNER_PROPERTY)
                                    .is_some_and(|v| v.unwrap_or("").is_empty())
                                {
                                    record.merged.remove_property(links::OWNER_PROPERTY);
                                }
                            }
                        }
                    }
                    ready.push((record, found.inline));
                }
                Some(Resolved::ContactMissing(contact)) => {
                    let waited = record.first_seen.elapsed();
                    let resolution = if waited >= self.settings.contact_wait {
                        Resolution::Done(Verdict::contact_missing(&contact, waited))
                    } else {
                        Resolution::Later(CONTACT_RETRY)
                    };
                    results.push((record, resolution));
                }
                None => ready.push((record, Vec::new())),
            }
        }
        results.extend(self.create(target, ready, now_ms).await?);
        Ok(results)
    }

    /// Finds existing records by domain (and name when configured), oldest first when HubSpot
    /// holds duplicates. Returns lower-cased identity value -> HubSpot id.
    async fn search_existing(
        &self,
        target: ObjectType,
        records: &[PendingRecord],
    ) -> Result<HashMap<String, String>, ClientError> {
        let mut found: HashMap<String, String> = HashMap::new();
        let domains: Vec<String> = records
            .iter()
            .map(|r| identity_value(r).to_ascii_lowercase())
            .collect();
        for record in self.search_in(target, "domain", &domains).await? {
            if let Some(domain) = record.property("domain") {
                keep_oldest(&mut found, domain.to_ascii_lowercase(), record.id.clone());
            }
        }
        if self.settings.match_companies_on_name {
            let by_name: Vec<(&PendingRecord, String)> = records
                .iter()
                .filter(|r| !found.contains_key(&identity_value(r).to_ascii_lowercase()))
                .filter_map(|r| {
                    r.merged
                        .property("name")
                        .flatten()
                        .map(|name| (r, name.to_string()))
                })
                .filter(|(_, name)| !name.is_empty())
                .collect();
            if !by_name.is_empty() {
                let names: Vec<String> = by_name.iter().map(|(_, n)| n.clone()).collect();
                let mut ids_by_name: HashMap<String, String> = HashMap::new();
                for record in self.search_in(target, "name", &names).await? {
                    // A company with another domain is another company, whatever its name.
                    if record.property("domain").is_some() {
                        continue;
                    }
                    if let Some(name) = record.property("name") {
                        keep_oldest(&mut ids_by_name, name.to_lowercase(), record.id.clone());
                    }
                }
                for (record, name) in by_name {
                    if let Some(id) = ids_by_name.get(&name.to_lowercase()) {
                        found.insert(identity_value(record).to_ascii_lowercase(), id.clone());
                    }
                }
            }
        }
        Ok(found)
    }

    async fn search_in(
        &self,
        target: ObjectType,
        property: &str,
        values: &[String],
    ) -> Result<Vec<crate::hubspot::Record>, ClientError> {
        let wanted = ["domain", "name", "hs_object_id", property].map(str::to_string);
        self.client
            .search_in(target, property, values, &wanted)
            .await
    }

    async fn update_known(
        &self,
        target: ObjectType,
        known: Vec<(String, PendingRecord)>,
    ) -> Result<Results, StateError> {
        let mut known = known;
        let mut results = Vec::new();
        if known.is_empty() {
            return Ok(results);
        }
        if let Err(paused) = self.drop_filled_known(target, &mut known).await {
            return Ok(pause_all(
                known.into_iter().map(|(_, r)| r).collect(),
                &paused,
            ));
        }
        let inputs: Vec<UpdateInput> = known
            .iter()
            .map(|(id, r)| UpdateInput {
                trace_id: trace_id(r),
                id: id.clone(),
                properties: r.merged.sendable(),
            })
            .collect();
        match self.client.batch_update(target, &inputs).await {
            Ok(answers) => {
                let answers = by_key(answers);
                for (id, record) in known {
                    match answers.get(&trace_id(&record)) {
                        Some(Ok(_)) => {
                            self.remember_write(target, &record, &id, None)?;
                            results.push((record, Resolution::Done(Verdict::updated(&id))));
                        }
                        Some(Err(error)) if error.class == ErrorClass::NotFound => {
                            // Deleted or merged away in HubSpot: forget it and find it again.
                            self.state.clear_identity(&record.key)?;
                            results.push((record, Resolution::Later(Duration::ZERO)));
                        }
                        Some(Err(error)) => {
                            results.push((record, verdict::refused(Refusal::of_input(error))))
                        }
                        None => {
                            results.push((record, Resolution::DeadLetter(verdict::no_answer())))
                        }
                    }
                }
            }
            Err(error) => results.extend(fail_all(
                known.into_iter().map(|(_, r)| r).collect(),
                &error,
            )),
        }
        Ok(results)
    }

    async fn create(
        &self,
        target: ObjectType,
        linked: Vec<(PendingRecord, Vec<InlineAssociation>)>,
        now_ms: i64,
    ) -> Result<Results, StateError> {
        let mut results = Vec::new();
        if linked.is_empty() {
            return Ok(results);
        }
        let (records, links): (Vec<PendingRecord>, Vec<Vec<InlineAssociation>>) =
            linked.into_iter().unzip();
        for record in &records {
            self.state.set_intent(
                &record.key,
                &CreateIntent {
                    trace_id: trace_id(record),
                    at_ms: now_ms,
                },
            )?;
        }
        // The intents must be durable before HubSpot may hold records the identity map lacks.
        self.state.flush().await?;
        let inputs: Vec<CreateInput> = records
            .iter()
            .zip(links)
            .map(|(r, associations)| {
                let mut properties = verdict::create_values(&r.merged);
                // The upstream id travels on the record, so it can be found by it again.
                if let Some(property) = identity_property(r).filter(|_| searchable_property(r)) {
                    properties.insert(property, identity_value(r));
                }
                CreateInput {
                    trace_id: trace_id(r),
                    properties,
                    associations,
                }
            })
            .collect();
        match self.client.batch_create(target, &inputs).await {
            Ok(answers) => {
                let answers = by_key(answers);
                for record in records {
                    match answers.get(&trace_id(&record)) {
                        Some(Ok(written)) => {
                            if target.is_activity() {
                                // Activities are never updated: their id is all there is to keep.
                                self.state.set_identity(&record.key, &written.id)?;
                            } else {
                                self.remember_write(
                                    target,
                                    &record,
                                    &written.id,
                                    Some(verdict::defaults_to_send(&record.merged)),
                                )?;
                            }
                            self.state.clear_intent(&record.key)?;
                            results.push((record, Resolution::Done(Verdict::created(&written.id))));
                        }
                        Some(Err(error)) => {
                            self.state.clear_intent(&record.key)?;
                            results.push((record, verdict::refused(Refusal::of_input(error))));
                        }
                        None => {
                            results.push((record, Resolution::DeadLetter(verdict::no_answer())))
                        }
                    }
                }
            }
            Err(ClientError::Failed(failure)) if failure.may_have_applied => {
                // The records may exist now: keep the intents and look again once search shows them.
                info!(records = records.len(), %failure, "create may have been applied; checking again after the search lag");
                results.extend(
                    records
                        .into_iter()
                        .map(|r| (r, Resolution::Later(self.settings.search_lag))),
                );
            }
            Err(error) => {
                for record in &records {
                    self.state.clear_intent(&record.key)?;
                }
                results.extend(fail_all(records, &error));
            }
        }
        Ok(results)
    }

    // ----- fill if empty -----

    async fn drop_filled_known(
        &self,
        target: ObjectType,
        known: &mut [(String, PendingRecord)],
    ) -> Result<(), String> {
        let wanted: BTreeSet<String> = known
            .iter()
            .flat_map(|(_, r)| r.merged.fill_if_empty().map(str::to_string))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = known
            .iter()
            .filter(|(_, r)| r.merged.fills_any())
            .map(|(id, _)| id.clone())
            .collect();
        let properties: Vec<String> = wanted.into_iter().collect();
        let current = match self
            .client
            .batch_read(target, &ids, None, &properties)
            .await
        {
            Ok(answers) => by_key(answers),
            Err(error) => return keep_or_pause(&error),
        };
        for (id, record) in known.iter_mut() {
            if let Some(Ok(existing)) = current.get(id.as_str()) {
                verdict::drop_filled(&mut record.merged, existing);
            }
        }
        Ok(())
    }

    /// Before an upsert that may create records the identity map does not know: an intent for
    /// each, on the changelog before HubSpot is called, so that if the instance dies before the
    /// outcome is recorded, the event read again is answered `CREATED` (the upsert then finds
    /// the record that attempt made). Returns the intents earlier attempts left, by record key.
    async fn note_upserts(
        &self,
        chunk: &[PendingRecord],
    ) -> Result<HashMap<String, CreateIntent>, StateError> {
        let now = crate::outcomes::now_ms();
        let mut earlier = HashMap::new();
        let mut noted = false;
        for record in chunk {
            if let Some(intent) = self.state.intent(&record.key)? {
                earlier.insert(record.key.clone(), intent);
            } else if self.state.identity(&record.key)?.is_none() {
                self.state.set_intent(
                    &record.key,
                    &CreateIntent {
                        trace_id: trace_id(record),
                        at_ms: now,
                    },
                )?;
                noted = true;
            }
        }
        if noted {
            self.state.flush().await?;
        }
        Ok(earlier)
    }

    /// The intent standing for a possible earlier create of `record`: its own, or, for a record
    /// that carries hubsync's own id property (activities, deals) and whose events are older than this
    /// state, one as old as the state. A state lost and begun again (a new volume, a deleted
    /// directory) thus never creates a second activity or deal: it looks first, once search
    /// shows what was created before it began. Unless the store holds every create of the type
    /// (hubsync made its id property in this portal itself, [`State::mark_owned_new`]): a new
    /// portal's history is created without a search per batch.
    fn intent_of(
        &self,
        target: ObjectType,
        record: &PendingRecord,
    ) -> Result<Option<CreateIntent>, StateError> {
        if let Some(intent) = self.state.intent(&record.key)? {
            return Ok(Some(intent));
        }
        let began = self.state.began_at_ms();
        let before_state = record
            .oldest_event_time()
            .is_some_and(|t| t < began.saturating_add(CLOCK_SKEW_MS));
        let owned = identity_property(record).is_some_and(|p| {
            p == super::owned::ACTIVITY_ID_PROPERTY || p == super::owned::DEAL_KEY_PROPERTY
        });
        let unknown_before = before_state
            && owned
            && identity_kind(record) == Some(IdentityKind::SourceId)
            && !self.state.owned_new(target.path_name())?;
        Ok(unknown_before.then(|| CreateIntent {
            trace_id: String::new(),
            at_ms: began,
        }))
    }

    /// How long a record whose create was interrupted still waits before search can be trusted
    /// to show that create; `None` once it can.
    fn search_wait(&self, intent: &CreateIntent, now_ms: i64) -> Option<Duration> {
        let age = Duration::from_millis(u64::try_from(now_ms - intent.at_ms).unwrap_or(0));
        self.settings
            .search_lag
            .checked_sub(age)
            .filter(|w| !w.is_zero())
    }

    fn remember_write(
        &self,
        target: ObjectType,
        record: &PendingRecord,
        id: &str,
        extra: Option<BTreeMap<String, String>>,
    ) -> Result<(), StateError> {
        self.state.set_identity(&record.key, id)?;
        let mut written = record.merged.sendable();
        if let Some(extra) = extra {
            written.extend(extra);
        }
        self.state
            .merge_last_written(&hubspot_key(target.path_name(), id), &written)
    }
}

/// A failed read of current values: without them, fill-if-empty values are not sent. Auth
/// failures pause the batch instead.
fn keep_or_pause(error: &ClientError) -> Result<(), String> {
    match error.failure() {
        Some(
            failure @ ClientFailure {
                class: ErrorClass::Auth { .. },
                ..
            },
        ) => Err(format!("hubspot refuses the token ({})", failure.category)),
        _ => {
            warn!(%error, "could not read current values; fill-if-empty values are written as if empty");
            Ok(())
        }
    }
}

/// A record HubSpot lacks and that may not be created: parked when mandatory fields are missing,
/// skipped when the rules do not create it.
/// Whether an upsert that found `written` existing found the record an earlier, interrupted
/// attempt of hubsync's created: that attempt left an intent, and HubSpot created the record
/// after it (within the clock skew allowed).
fn created_by_earlier_attempt(
    earlier: &HashMap<String, CreateIntent>,
    record: &PendingRecord,
    written: &crate::hubspot::Record,
) -> bool {
    let Some(intent) = earlier.get(&record.key) else {
        return false;
    };
    written
        .created_at
        .as_deref()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .is_some_and(|at| at.timestamp_millis() >= intent.at_ms - CLOCK_SKEW_MS)
}

fn not_created(record: PendingRecord) -> (PendingRecord, Resolution) {
    let verdict = SinkVerdict::absent(&record.merged)
        .not_created()
        .unwrap_or_else(|| {
            Verdict::skipped(
                ReasonCode::NotCreated,
                "not in HubSpot, and the create trigger does not create it from this change",
            )
        });
    (record, Resolution::Done(verdict))
}

fn keep_oldest(found: &mut HashMap<String, String>, key: String, id: String) {
    let older = |a: &str, b: &str| {
        a.parse::<u64>()
            .ok()
            .zip(b.parse::<u64>().ok())
            .map(|(a, b)| a < b)
    };
    match found.get(&key) {
        Some(current) if older(current, &id) != Some(false) => {}
        _ => {
            found.insert(key, id);
        }
    }
}

fn identity_kind(record: &PendingRecord) -> Option<IdentityKind> {
    Some(record.identity.kind)
}

/// The HubSpot property a record's identity value is matched on.
fn identity_property(record: &PendingRecord) -> Option<String> {
    Some(record.identity.property.clone()).filter(|p| !p.is_empty())
}

/// An upstream id held in a property of hubsync's own (not `hs_object_id`), which search finds.
fn searchable_property(record: &PendingRecord) -> bool {
    identity_kind(record) == Some(IdentityKind::SourceId)
        && identity_property(record).is_some_and(|p| p != "hs_object_id")
}

/// Records found in HubSpot by a lookup, and the results of lookups that failed.
#[derive(Default)]
struct Found {
    known: Vec<(String, PendingRecord)>,
    results: Results,
}

fn identity_value(record: &PendingRecord) -> String {
    record.identity.value.clone()
}

/// Names a record's input in a batch: its oldest event id, unique within the batch.
fn trace_id(record: &PendingRecord) -> String {
    record
        .members
        .first()
        .map(|m| m.receipt.event_id())
        .unwrap_or_else(|| record.key.clone())
}

fn by_key(
    results: Vec<InputResult>,
) -> HashMap<String, Result<crate::hubspot::Record, crate::hubspot::InputError>> {
    results.into_iter().map(|r| (r.key, r.result)).collect()
}

/// What a call's failure as a whole means for each of its records.
fn fail_all(records: Vec<PendingRecord>, error: &ClientError) -> Results {
    let resolution = match error {
        ClientError::Request(request) => Resolution::DeadLetter(Failure::new(
            FailureClass::Internal,
            ReasonCode::InvalidRequest,
            format!("hubsync built a request HubSpot would refuse: {request}"),
        )),
        ClientError::Failed(failure) => verdict::refused(Refusal::of_call(failure)),
    };
    records
        .into_iter()
        .map(|r| (r, resolution.clone()))
        .collect()
}

fn pause_all(records: Vec<PendingRecord>, reason: &str) -> Results {
    records
        .into_iter()
        .map(|r| (r, Resolution::Paused(reason.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::sink::coalesce::Coalescer;

    fn record(properties: &[(&str, &str)], create_only: &[(&str, &str)]) -> PendingRecord {
        let mut command = hubsync_schemas::examples::hubspot_command();
        command.properties = properties
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect();
        command.create_only_properties = create_only
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        command.fill_if_empty.clear();
        let mut coalescer = Coalescer::new(Duration::ZERO, 10, 100);
        coalescer.add(
            "k".into(),
            crate::sink::coalesce::tests::arriving(command),
            Instant::now(),
        );
        coalescer
            .take_batch(Instant::now(), true)
            .and_then(|mut batch| batch.pop())
            .expect("one record")
    }

    #[test]
    fn defaults_never_override_values_the_write_carries() {
        let both = record(
            &[("jobtitle", "CTO")],
            &[("jobtitle", "old"), ("lifecyclestage", "lead")],
        );
        assert_eq!(
            verdict::defaults_to_send(&both.merged),
            BTreeMap::from([("lifecyclestage".to_string(), "lead".to_string())])
        );
        // A record whose create-only values all travelled with the write needs no follow-up.
        let covered = record(&[("jobtitle", "CTO")], &[("jobtitle", "old")]);
        assert!(verdict::defaults_to_send(&covered.merged).is_empty());
    }
}
