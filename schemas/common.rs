//! Named types that appear in more than one schema file, with the same Avro full name in each.

use serde::{Deserialize, Serialize};

avro_enum! {
    /// `io.hubsync.ChangeKind`: what happened to an upstream record.
    pub enum ChangeKind {
        Created = "CREATED",
        Updated = "UPDATED",
        Deleted = "DELETED",
    }
}

avro_enum! {
    /// `io.hubsync.ActorKind`: who made an upstream change.
    pub enum ActorKind {
        /// A person using the platform.
        User = "USER",
        /// An automation of the platform itself.
        System = "SYSTEM",
        /// An API client.
        Api = "API",
    }
}

avro_enum! {
    /// `io.hubsync.HubSpotObjectType`: a HubSpot CRM object type.
    pub enum HubSpotObjectType {
        Contact = "CONTACT",
        Company = "COMPANY",
        Deal = "DEAL",
        Note = "NOTE",
        Email = "EMAIL",
        Call = "CALL",
        Task = "TASK",
        Meeting = "MEETING",
    }
}

/// `io.hubsync.Actor`: the user, system or API client that made an upstream change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Upstream user id, or the name of the system or API client.
    pub user_id: String,
    /// The user's email address, when known.
    pub email: Option<String>,
    pub kind: ActorKind,
}
