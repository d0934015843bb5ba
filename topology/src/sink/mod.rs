//! The sink stage: commands -> dedupe -> coalesce per record -> batch -> HubSpot -> outcomes and
//! dead letters.
//!
//! # Layout
//! - [`coalesce`]: merging commands per record within the linger window, and batching (pure);
//!   [`merged`] is one record's merge, kept compact.
//! - [`verdict`]: the sink's decisions, pure: a record against what HubSpot holds, and the one
//!   failure table; `plan` and `trace` predict with it.
//! - [`writer`]: a batch of records to HubSpot calls and a resolution per record; [`companies`]
//!   links contacts to their company.
//! - [`hubspot_side`]: what happened in HubSpot (deletions, merges, newer values), read from
//!   `crm.hubspot.changes` into the sink's state.
//! - [`spill`]: a team's commands beyond its share of memory, waiting on disk in order.
//! - [`stage`]: the loop: read, dedupe, coalesce, dispatch batches, emit, store offsets.

pub mod changelog;
pub mod coalesce;
mod companies;
pub mod hubspot_side;
mod links;
pub mod merged;
pub mod owned;
pub mod receipt;
pub mod reread;
pub mod spill;
pub mod stage;
pub(crate) mod verdict;
pub(crate) mod writer;
