//! Pure integration rules: each processor takes an event plus the team's [`Rules`] and returns a
//! decision. Nothing here does I/O or awaits; the topology crate feeds events in and carries the
//! decisions out.
//!
//! The process stage calls [`decide_contact`] or [`decide_company`] per event and, for a
//! [`Decision::Write`], [`to_command`] to get the `HubSpotCommand` to publish; for an activity,
//! [`decide_activity`], whose [`ActivityDecision::Write`] holds the activity's draft and maybe a
//! deal's.
//!
//! # Layout
//! - [`rules`]: the team's integration rules as configured (`[sync]`, `[users]`, `[activities]`,
//!   `[campaigns]` of the config file), their defaults and [`Rules::validate`], which reports every
//!   problem with the path of its field.
//!   - [`rules::objects`]: per object (contacts, companies, deals) create trigger, identity property,
//!     mandatory fields, default values, owner strategy and field mapping.
//!   - [`rules::users`]: upstream user -> HubSpot owner, and the default owner.
//!   - [`rules::activities`]: per activity type, whether it is synced and as which HubSpot activity,
//!     and which records activities are associated with.
//!   - [`rules::campaigns`]: the two campaign-level exceptions (push to CRM, deal triggers).
//! - [`catalog`]: the portal's HubSpot properties (type, options, read-only, unique) per object,
//!   and [`catalog::check_rules`], which holds the rules against them before the start.
//! - [`fields`]: a contact's or company's fields by name, standard and custom, and what one
//!   event changes.
//! - [`normalize`]: emails and company domains in normal form.
//! - [`coerce`]: a value as its HubSpot property type takes it (number, bool, date, datetime,
//!   enumeration), or the reason it cannot be.
//!
//! Processors, one per rule:
//! - [`trigger`] (rule 1): may this event create the record; deletions are skipped.
//! - [`identifiers`] (rule 2): a contact needs an identifier; the identity each record is found by.
//! - [`gating`] (rule 3): the mandatory fields still empty before the record may be created.
//! - [`defaults`] (rule 4): default values, for records hubsync creates.
//! - [`mapping`] (rule 5): changed fields -> HubSpot properties, normalised and type-checked.
//! - [`owner`] (rules 6 and 7): the mapped owner, written per owner strategy.
//! - [`ownership`] (rule 8): who owns an activity: the sender's owner, else the contact's,
//!   else the default owner.
//! - [`activity`] (rule 9): whether an activity type is synced and as which HubSpot activity;
//!   unsubscribes only when the lead made them.
//! - [`activity_body`] (rule 9): an activity's time and readable text in its object's properties.
//! - [`associations`] (rule 10): an activity's contact, company and open deal; a deal's contact
//!   and company.
//! - [`campaign`] (rule 11): campaigns with push-to-CRM off are skipped.
//! - [`deal`] (rule 11): deal triggers, the deal kept per contact and campaign, its name.
//!
//! Composition and output:
//! - [`decide`]: the processors in order for one contact or company event -> [`Decision`].
//! - [`decide_activity`]: the processors in order for one activity event -> [`ActivityDecision`].
//! - [`decision`]: [`Decision`], [`ActivityDecision`], [`CommandDraft`], skip and problem codes,
//!   and how activity and deal commands are encoded.
//! - [`command`]: a draft plus its envelope -> the Avro `HubSpotCommand`, and its Kafka key.

pub mod activity;
pub mod activity_body;
pub mod associations;
pub mod campaign;
pub mod catalog;
pub mod coerce;
pub mod command;
pub mod deal;
pub mod decide;
pub mod decide_activity;
pub mod decision;
pub mod defaults;
pub mod fields;
pub mod gating;
pub mod identifiers;
pub mod mapping;
pub mod normalize;
pub mod owner;
pub mod ownership;
pub mod rules;
pub mod trigger;

pub use catalog::{PropertyCatalog, PropertyKind, PropertySpec};
pub use command::{Envelope, to_command};
pub use decide::{decide_company, decide_contact};
pub use decide_activity::decide_activity;
pub use decision::{
    ActivityDecision, ActivityOwner, CommandDraft, Decision, Problem, ProblemCode, SkipCode,
};
pub use ownership::OwnerDirectory;
pub use rules::{RuleError, Rules};
