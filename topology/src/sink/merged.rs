//! The merge of one record's commands, kept compact: a replay holds a hundred thousand records
//! of ten commands each, so a record is one sorted vector of slots, one per property it names,
//! with the property's name shared between records (interned), not a handful of maps each
//! keeping its own copy of every name.
//!
//! ```text
//! {email=ada@acme.io t=1 create-only}, {jobtitle=CTO t=3}, {hubspot_owner_id=7 t=2 fill-if-empty}
//! -> [email: value ada@acme.io, time 1, unconditional, create-only ada@acme.io]
//!    [hubspot_owner_id: value 7, time 2, fill-if-empty]
//!    [jobtitle: value CTO, time 3, unconditional]
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use hubsync_schemas::{Association, CommandAction, HubSpotCommand};

/// The property is in the write, with `value` (`None` clears it).
const VALUE: u8 = 1;
/// `time` is the event time of the property's current value.
const TIMED: u8 = 2;
/// Some command sends the value whatever HubSpot holds (only with `TIMED`).
const UNCONDITIONAL: u8 = 4;
/// The value is written only where HubSpot holds none.
const FILL: u8 = 8;

/// One property a record's commands name.
#[derive(Debug, Clone, PartialEq)]
struct Slot {
    name: Arc<str>,
    /// Meaningful with `TIMED` only (0 without).
    time: i64,
    /// Meaningful with `VALUE` only (`None` without).
    value: Option<Box<str>>,
    /// The first create-only value any command gave it.
    create_only: Option<Box<str>>,
    flags: u8,
}

impl Slot {
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn is_empty(&self) -> bool {
        self.flags == 0 && self.create_only.is_none()
    }
}

/// Distinct property names a thread keeps shared; beyond it a name is kept by the record that
/// names it (still right, only larger). Names come from team rules, so a few thousand at most,
/// unless a bad producer writes commands of its own.
const SHARED_NAMES: usize = 10_000;

/// The one copy of `name` this thread shares between records.
fn intern(name: &str) -> Arc<str> {
    thread_local! {
        static NAMES: RefCell<HashSet<Arc<str>>> = RefCell::new(HashSet::new());
    }
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(known) = names.get(name) {
            return known.clone();
        }
        let name: Arc<str> = Arc::from(name);
        if names.len() < SHARED_NAMES {
            names.insert(name.clone());
        }
        name
    })
}

/// The merge of one record's commands: the newest value of each property by event time (arrival
/// order breaks ties), every create-only value, fill-if-empty while no command sends the value
/// outright, and whether any command may create the record. The only merge in hubsync: the sink
/// writes it, and `plan` and `trace` predict with it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged {
    /// By name.
    slots: Vec<Slot>,
    pub may_create: bool,
    /// The links of the newest command that has any (a contact's company, an activity's
    /// contact), and that command's event time.
    pub associations: Vec<Association>,
    associations_time: Option<i64>,
    /// The newest command's event time, action and missing mandatory fields: it speaks for the
    /// record when HubSpot lacks it.
    newest: Option<(i64, CommandAction, Vec<String>)>,
}

impl Merged {
    /// The record one command alone would write.
    pub fn of(command: &HubSpotCommand) -> Self {
        let mut merged = Merged::default();
        merged.absorb(command);
        merged
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.slots.binary_search_by(|slot| (*slot.name).cmp(name))
    }

    fn slot(&self, name: &str) -> Option<&Slot> {
        self.find(name).ok().map(|index| &self.slots[index])
    }

    /// The slot of `name`, made empty if there is none (an empty one is removed by `tidy`).
    fn slot_mut(&mut self, name: &str) -> &mut Slot {
        let index = match self.find(name) {
            Ok(index) => index,
            Err(index) => {
                self.slots.insert(
                    index,
                    Slot {
                        name: intern(name),
                        time: 0,
                        value: None,
                        create_only: None,
                        flags: 0,
                    },
                );
                index
            }
        };
        &mut self.slots[index]
    }

    /// Clears `flags` of `name`'s slot, and drops the slot once it holds nothing.
    fn clear(&mut self, name: &str, flags: u8) -> bool {
        let Ok(index) = self.find(name) else {
            return false;
        };
        let slot = &mut self.slots[index];
        let had = slot.flags & flags != 0;
        slot.flags &= !flags;
        if !slot.has(VALUE) {
            slot.value = None;
        }
        if !slot.has(TIMED) {
            slot.time = 0;
        }
        if slot.is_empty() {
            self.slots.remove(index);
        }
        had
    }

    /// A record keeps no more room than its slots need: there are many of them.
    fn fit(&mut self) {
        if self.slots.capacity() > self.slots.len() + 1 {
            self.slots.shrink_to_fit();
        }
    }

    fn is_unconditional(&self, name: &str) -> bool {
        self.slot(name).is_some_and(|slot| slot.has(UNCONDITIONAL))
    }

    fn set_time(&mut self, name: &str, time: i64) {
        let slot = self.slot_mut(name);
        slot.time = time;
        slot.flags |= TIMED;
    }

    /// Only for a property that has a time.
    fn mark_unconditional(&mut self, name: &str) {
        if let Ok(index) = self.find(name)
            && self.slots[index].has(TIMED)
        {
            self.slots[index].flags |= UNCONDITIONAL;
        }
    }

    /// The upstream event time of `name`'s current value.
    pub fn property_time(&self, name: &str) -> Option<i64> {
        self.slot(name)
            .filter(|slot| slot.has(TIMED))
            .map(|slot| slot.time)
    }

    /// The properties the write carries, by name: `None` clears one.
    pub fn properties(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.slots
            .iter()
            .filter(|slot| slot.has(VALUE))
            .map(|slot| (&*slot.name, slot.value.as_deref()))
    }

    /// The names of the properties the write carries.
    pub fn property_names(&self) -> impl Iterator<Item = &str> {
        self.properties().map(|(name, _)| name)
    }

    /// `Some(value)` when the write carries `name`.
    pub fn property(&self, name: &str) -> Option<Option<&str>> {
        self.slot(name)
            .filter(|slot| slot.has(VALUE))
            .map(|slot| slot.value.as_deref())
    }

    /// Sets the value the write carries for `name`, leaving its time as it is.
    pub fn set_property(&mut self, name: &str, value: Option<String>) {
        let slot = self.slot_mut(name);
        slot.value = value.map(String::into_boxed_str);
        slot.flags |= VALUE;
    }

    /// Leaves `name`'s value out of the write (its time is kept).
    pub fn remove_property(&mut self, name: &str) {
        self.clear(name, VALUE);
    }

    /// Leaves `name` out of the write (HubSpot holds a newer value).
    pub fn drop_property(&mut self, name: &str) {
        self.clear(name, VALUE | FILL | TIMED | UNCONDITIONAL);
    }

    /// The properties written only where HubSpot holds no value, by name.
    pub fn fill_if_empty(&self) -> impl Iterator<Item = &str> {
        self.slots
            .iter()
            .filter(|slot| slot.has(FILL))
            .map(|slot| &*slot.name)
    }

    pub fn fills(&self, name: &str) -> bool {
        self.slot(name).is_some_and(|slot| slot.has(FILL))
    }

    pub fn fills_any(&self) -> bool {
        self.slots.iter().any(|slot| slot.has(FILL))
    }

    /// `name` is no longer fill-if-empty; whether it was.
    pub fn unfill(&mut self, name: &str) -> bool {
        self.clear(name, FILL)
    }

    /// Leaves out fill-if-empty values of the properties `filled` names (HubSpot holds a value
    /// already): neither their value nor their fill-if-empty mark stays.
    pub fn drop_filled(&mut self, filled: impl Fn(&str) -> bool) {
        let names: Vec<Arc<str>> = self
            .slots
            .iter()
            .filter(|slot| slot.has(FILL) && filled(&slot.name))
            .map(|slot| slot.name.clone())
            .collect();
        for name in names {
            self.clear(&name, VALUE | FILL);
        }
    }

    /// Every create-only value, by name.
    pub fn create_only(&self) -> impl Iterator<Item = (&str, &str)> {
        self.slots
            .iter()
            .filter_map(|slot| Some((&*slot.name, slot.create_only.as_deref()?)))
    }

    /// Values as HubSpot takes them: a cleared value is `""`.
    pub fn sendable(&self) -> BTreeMap<String, String> {
        self.properties()
            .map(|(name, value)| (name.to_string(), value.unwrap_or_default().to_string()))
            .collect()
    }

    /// One more command for the record.
    pub fn absorb(&mut self, command: &HubSpotCommand) {
        self.absorb_owned(command.clone());
    }

    /// One more command for the record, its values taken rather than copied: what the sink does
    /// with every command it holds. The only merge of a command into a record.
    pub fn absorb_owned(&mut self, command: HubSpotCommand) {
        let time = command.event_time;
        let HubSpotCommand {
            properties,
            fill_if_empty,
            create_only_properties,
            may_create,
            associations,
            action,
            missing_for_create,
            ..
        } = command;
        // Before this command marks its own values unconditional.
        for name in &fill_if_empty {
            if !self.is_unconditional(name) {
                self.slot_mut(name).flags |= FILL;
            }
        }
        for (name, value) in properties {
            let unconditional = !fill_if_empty.contains(&name);
            let slot = self.slot_mut(&name);
            if !slot.has(TIMED) || time >= slot.time {
                slot.time = time;
                slot.flags |= TIMED | VALUE;
                if unconditional {
                    slot.flags = (slot.flags & !FILL) | UNCONDITIONAL;
                }
                slot.value = value.map(String::into_boxed_str);
            } else if unconditional {
                slot.flags |= UNCONDITIONAL;
            }
        }
        for (name, value) in create_only_properties {
            let slot = self.slot_mut(&name);
            if slot.create_only.is_none() {
                slot.create_only = Some(value.into_boxed_str());
            }
        }
        self.fit();
        self.may_create |= may_create;
        if !associations.is_empty() && self.associations_time.is_none_or(|t| time >= t) {
            self.associations = associations;
            self.associations_time = Some(time);
        }
        if self.newest.as_ref().is_none_or(|(t, _, _)| time >= *t) {
            self.newest = Some((time, action, missing_for_create));
        }
    }

    /// The merge of commands that came after the ones merged here, as if each had come alone.
    pub fn absorb_merged(&mut self, mut later: Merged) {
        for slot in later.slots.iter_mut().filter(|slot| slot.has(VALUE)) {
            let time = if slot.has(TIMED) { slot.time } else { i64::MIN };
            if self.property_time(&slot.name).is_none_or(|t| time >= t) {
                if !slot.has(FILL) {
                    self.clear(&slot.name, FILL);
                }
                self.set_time(&slot.name, time);
                self.set_property(&slot.name, slot.value.take().map(String::from));
            }
        }
        for slot in later.slots.iter().filter(|slot| slot.has(FILL)) {
            if !self.is_unconditional(&slot.name) {
                self.slot_mut(&slot.name).flags |= FILL;
            }
        }
        for slot in later.slots.iter().filter(|slot| slot.has(UNCONDITIONAL)) {
            self.mark_unconditional(&slot.name);
        }
        for slot in later.slots.iter_mut() {
            if let Some(value) = slot.create_only.take() {
                let mine = self.slot_mut(&slot.name);
                if mine.create_only.is_none() {
                    mine.create_only = Some(value);
                }
            }
        }
        self.fit();
        self.may_create |= later.may_create;
        if let Some(time) = later.associations_time
            && self.associations_time.is_none_or(|t| time >= t)
        {
            self.associations = later.associations;
            self.associations_time = Some(time);
        }
        if let Some(newest) = later.newest
            && self.newest.as_ref().is_none_or(|(t, _, _)| newest.0 >= *t)
        {
            self.newest = Some(newest);
        }
    }

    /// The newest command's action and missing mandatory fields.
    pub fn newest(&self) -> (CommandAction, &[String]) {
        match &self.newest {
            Some((_, action, missing)) => (*action, missing),
            None => (CommandAction::Unknown, &[]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_schemas::examples;

    fn command(time: i64, values: &[(&str, Option<&str>)], fill: &[&str]) -> HubSpotCommand {
        let mut command = examples::hubspot_command();
        command.event_time = time;
        command.properties = values
            .iter()
            .map(|(name, value)| (name.to_string(), value.map(str::to_string)))
            .collect();
        command.fill_if_empty = fill.iter().map(|name| name.to_string()).collect();
        command.create_only_properties.clear();
        command
    }

    #[test]
    fn names_are_shared_between_records() {
        let first = Merged::of(&command(1, &[("jobtitle", Some("CTO"))], &[]));
        let second = Merged::of(&command(2, &[("jobtitle", Some("CEO"))], &[]));
        assert!(Arc::ptr_eq(&first.slots[0].name, &second.slots[0].name));
    }

    #[test]
    fn a_slot_that_holds_nothing_is_gone() {
        let mut merged = Merged::of(&command(1, &[("phone", Some("1"))], &["phone"]));
        assert!(merged.fills("phone"));
        merged.drop_property("phone");
        assert_eq!(merged, Merged::of(&command(1, &[], &[])));
        assert_eq!(merged.property("phone"), None);
        assert_eq!(merged.property_time("phone"), None);
    }

    #[test]
    fn a_removed_value_keeps_its_time_so_older_values_stay_out() {
        let mut merged = Merged::of(&command(5, &[("city", Some("Paris"))], &[]));
        merged.remove_property("city");
        assert_eq!(merged.property("city"), None);
        assert_eq!(merged.property_time("city"), Some(5));
        merged.absorb(&command(4, &[("city", Some("Lyon"))], &[]));
        assert_eq!(
            merged.property("city"),
            None,
            "older than the removed value"
        );
        merged.absorb(&command(6, &[("city", None)], &[]));
        assert_eq!(merged.property("city"), Some(None), "a newer clear");
        assert_eq!(merged.sendable()["city"], "");
    }

    #[test]
    fn cleared_values_are_sent_as_empty_strings() {
        let merged = Merged::of(&command(
            1,
            &[("phone", None), ("city", Some("Paris"))],
            &[],
        ));
        let sent = merged.sendable();
        assert_eq!(sent["phone"], "");
        assert_eq!(sent["city"], "Paris");
    }

    #[test]
    fn filled_values_are_dropped_with_their_mark() {
        let mut merged = Merged::of(&command(
            1,
            &[("phone", Some("1")), ("city", Some("Paris"))],
            &["phone", "city"],
        ));
        merged.drop_filled(|name| name == "phone");
        assert_eq!(merged.fill_if_empty().collect::<Vec<_>>(), ["city"]);
        assert_eq!(merged.property_names().collect::<Vec<_>>(), ["city"]);
        assert!(merged.unfill("city"));
        assert!(!merged.unfill("city"));
        assert!(!merged.fills_any());
    }
}
