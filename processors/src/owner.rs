//! Rules 6 and 7, user mapping and owner strategy: the upstream owner mapped to a HubSpot owner
//! and written to `hubspot_owner_id` as the object's owner strategy says.
//!
//! ```text
//! ContactChanged { owner_user_id: "usr_ada", changed_fields: ["owner_user_id"] }
//!   with [[users.mapping]] user = "usr_ada", owner = "90012" and owner_strategy = "if_empty"
//!   -> OwnerWrite::FillIfEmpty("90012")   (hubspot_owner_id, written only when HubSpot has none)
//! ```
//!
//! | strategy        | owner set, mapped           | owner cleared | not mapped / unchanged |
//! |-----------------|-----------------------------|---------------|------------------------|
//! | `always`        | write                       | clear         | leave                  |
//! | `if_empty`      | write when HubSpot's empty  | leave         | leave                  |
//! | `never`         | leave                       | leave         | leave                  |
//! | `bidirectional` | write (newest change wins in the sink) | clear | leave             |
//!
//! Like mapped fields, the owner is written when this event changes `owner_user_id`; an
//! unchanged owner is still given to a record the sink creates (except with `never`). An
//! upstream user without a mapping leaves HubSpot's owner alone: clearing it would lose a real
//! owner because of a gap in the mapping. Auto-mapping by email is resolved where the owners
//! are listed, before the rules reach the processors, and arrives here as explicit entries.

use crate::fields::{FieldChange, Fields};
use crate::rules::{OwnerStrategy, UserRules};

/// The upstream field holding the record's owner.
pub const OWNER_FIELD: &str = "owner_user_id";

/// What this event writes to `hubspot_owner_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerWrite<'r> {
    /// Write this owner id.
    Set(&'r str),
    /// Write this owner id only when the HubSpot record has no owner.
    FillIfEmpty(&'r str),
    /// Remove the owner.
    Clear,
    /// Leave the owner as it is.
    Leave,
}

/// The owner decision for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'r> {
    pub write: OwnerWrite<'r>,
    /// The owner a record created by this event gets when `write` leaves it (the current owner,
    /// unchanged by this event).
    pub on_create: Option<&'r str>,
}

/// The owner to write for this event under `strategy`.
pub fn owner<'r>(fields: &Fields<'_>, strategy: OwnerStrategy, users: &'r UserRules) -> Owner<'r> {
    let leave = Owner {
        write: OwnerWrite::Leave,
        on_create: None,
    };
    if strategy == OwnerStrategy::Never {
        return leave;
    }
    let write = match fields.change_of(OWNER_FIELD) {
        Some(FieldChange::Set(user)) => match users.owner_for(user.trim()) {
            Some(owner) if strategy == OwnerStrategy::IfEmpty => OwnerWrite::FillIfEmpty(owner),
            Some(owner) => OwnerWrite::Set(owner),
            None => OwnerWrite::Leave,
        },
        Some(FieldChange::Cleared) if strategy != OwnerStrategy::IfEmpty => OwnerWrite::Clear,
        Some(FieldChange::Cleared) | None => OwnerWrite::Leave,
    };
    let on_create = match write {
        OwnerWrite::Leave => fields
            .value(OWNER_FIELD)
            .and_then(|user| users.owner_for(user)),
        _ => None,
    };
    Owner { write, on_create }
}

#[cfg(test)]
mod tests {
    use hubsync_schemas::{ChangeKind, ContactChanged};

    use super::*;
    use crate::fields::tests::{blank_contact, some};
    use crate::rules::UserMapping;

    const STRATEGIES: [OwnerStrategy; 4] = [
        OwnerStrategy::Always,
        OwnerStrategy::IfEmpty,
        OwnerStrategy::Never,
        OwnerStrategy::Bidirectional,
    ];

    fn users() -> UserRules {
        UserRules {
            mapping: vec![UserMapping {
                user: "usr_ada".to_owned(),
                owner: "90012".to_owned(),
            }],
            ..UserRules::default()
        }
    }

    fn event(owner: Option<&str>, changed: &[&str]) -> ContactChanged {
        let mut event = blank_contact(ChangeKind::Updated);
        event.email = some("lead@acme.io");
        event.owner_user_id = owner.map(str::to_owned);
        event.changed_fields = changed.iter().map(|s| (*s).to_owned()).collect();
        event
    }

    fn decide(event: &ContactChanged, strategy: OwnerStrategy) -> Owner<'static> {
        static USERS: std::sync::LazyLock<UserRules> = std::sync::LazyLock::new(users);
        owner(&Fields::contact(event), strategy, &USERS)
    }

    #[test]
    fn a_mapped_owner_is_written_per_strategy() {
        let changed = event(Some("usr_ada"), &["owner_user_id"]);
        let writes: Vec<_> = STRATEGIES.map(|s| decide(&changed, s).write).to_vec();
        assert_eq!(
            writes,
            [
                OwnerWrite::Set("90012"),
                OwnerWrite::FillIfEmpty("90012"),
                OwnerWrite::Leave,
                OwnerWrite::Set("90012"),
            ]
        );
    }

    #[test]
    fn an_unmapped_owner_is_never_written() {
        let changed = event(Some("usr_grace"), &["owner_user_id"]);
        for strategy in STRATEGIES {
            assert_eq!(
                decide(&changed, strategy),
                Owner {
                    write: OwnerWrite::Leave,
                    on_create: None
                },
                "{strategy:?}"
            );
        }
    }

    #[test]
    fn a_cleared_owner_clears_only_where_the_integration_decides() {
        let cleared = event(None, &["owner_user_id"]);
        let writes: Vec<_> = STRATEGIES.map(|s| decide(&cleared, s).write).to_vec();
        assert_eq!(
            writes,
            [
                OwnerWrite::Clear,
                OwnerWrite::Leave,
                OwnerWrite::Leave,
                OwnerWrite::Clear,
            ]
        );
    }

    #[test]
    fn an_unchanged_owner_is_only_given_to_a_new_record() {
        let unchanged = event(Some("usr_ada"), &["job_title"]);
        for strategy in STRATEGIES {
            let decision = decide(&unchanged, strategy);
            assert_eq!(decision.write, OwnerWrite::Leave, "{strategy:?}");
            let expected = (strategy != OwnerStrategy::Never).then_some("90012");
            assert_eq!(decision.on_create, expected, "{strategy:?}");
        }
    }

    #[test]
    fn a_created_record_sets_its_owner() {
        let mut created = event(Some(" usr_ada "), &[]);
        created.change = ChangeKind::Created;
        assert_eq!(
            decide(&created, OwnerStrategy::Always).write,
            OwnerWrite::Set("90012")
        );
        assert_eq!(
            decide(&created, OwnerStrategy::IfEmpty).write,
            OwnerWrite::FillIfEmpty("90012")
        );
    }
}
