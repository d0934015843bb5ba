//! Pure integration rules: each processor takes an event plus the team's [`Rules`] and returns a
//! decision. Nothing here does I/O or awaits; the topology crate feeds events in and carries the
//! decisions out.
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

pub mod rules;

pub use rules::{RuleError, Rules};
