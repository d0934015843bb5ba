//! Rule 1, create if missing: whether this event may create the record in HubSpot, or only
//! update one HubSpot already has. A deletion is never synced.
//!
//! ```text
//! ContactChanged { change: UPDATED, .. } with create = { enabled = true, trigger = "on_create" }
//!   -> Creation::UpdateOnly(UpdateOnlyReason::NotACreation)   (action UPDATE_ONLY)
//! ContactChanged { change: DELETED, .. }
//!   -> Skip { code: DELETE_NOT_SYNCED, reason: "contact ct_1 was deleted upstream: ..." }
//! ```
//!
//! | create rule                  | CREATED   | UPDATED   | DELETED |
//! |------------------------------|-----------|-----------|---------|
//! | disabled                     | update    | update    | skip    |
//! | `on_create`                  | may create| update    | skip    |
//! | `on_create_or_update`        | may create| may create| skip    |
//! | `{ on_activity = "..." }`    | update    | update    | skip    |
//!
//! With `on_activity` the record is created later, when its activity arrives. A change kind
//! this build does not know (added by a newer producer) is treated as an update: it carries the
//! record's current values, so writing them is safe.

use hubsync_schemas::{ChangeKind, CommandAction};

use crate::decision::{Skip, SkipCode};
use crate::fields::Fields;
use crate::rules::{ActivityType, CreateRule, CreateTrigger};

/// Whether an event may create its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    /// The sink may create the record when HubSpot has none (subject to the mandatory fields).
    Allowed,
    /// The sink only updates a record HubSpot already has.
    UpdateOnly(UpdateOnlyReason),
}

/// Why an event may not create its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOnlyReason {
    /// Creation is switched off for the object.
    Disabled,
    /// The trigger is `on_create` and this event is not a creation.
    NotACreation,
    /// Records are created when they have an activity of this type.
    WaitsForActivity(ActivityType),
}

impl Creation {
    /// The command action: `Upsert` when the record may be created, `UpdateOnly` otherwise.
    pub fn action(self) -> CommandAction {
        match self {
            Creation::Allowed => CommandAction::Upsert,
            Creation::UpdateOnly(_) => CommandAction::UpdateOnly,
        }
    }
}

/// What the create rule allows this event to do; a deletion is skipped.
pub fn creation(fields: &Fields<'_>, object: &str, create: &CreateRule) -> Result<Creation, Skip> {
    let change = fields.change();
    if change == ChangeKind::Deleted {
        return Err(Skip {
            code: SkipCode::DeleteNotSynced,
            reason: format!(
                "{object} {} was deleted upstream: hubsync never deletes HubSpot records; \
                 delete or archive it in HubSpot if it should go",
                fields.source_id()
            ),
        });
    }
    if !create.enabled {
        return Ok(Creation::UpdateOnly(UpdateOnlyReason::Disabled));
    }
    Ok(match create.trigger {
        CreateTrigger::OnCreateOrUpdate => Creation::Allowed,
        CreateTrigger::OnCreate if change == ChangeKind::Created => Creation::Allowed,
        CreateTrigger::OnCreate => Creation::UpdateOnly(UpdateOnlyReason::NotACreation),
        CreateTrigger::OnActivity(activity) => {
            Creation::UpdateOnly(UpdateOnlyReason::WaitsForActivity(activity))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::tests::blank_contact;

    const CHANGES: [ChangeKind; 4] = [
        ChangeKind::Created,
        ChangeKind::Updated,
        ChangeKind::Deleted,
        ChangeKind::Unknown,
    ];

    fn decide(change: ChangeKind, create: CreateRule) -> Result<Creation, Skip> {
        let event = blank_contact(change);
        creation(&Fields::contact(&event), "contact", &create)
    }

    fn rule(trigger: CreateTrigger) -> CreateRule {
        CreateRule {
            enabled: true,
            trigger,
        }
    }

    #[test]
    fn a_deletion_is_skipped_whatever_the_rule() {
        for create in [
            CreateRule::DISABLED,
            rule(CreateTrigger::OnCreate),
            rule(CreateTrigger::OnCreateOrUpdate),
            rule(CreateTrigger::OnActivity(ActivityType::EmailReplied)),
        ] {
            let skip = decide(ChangeKind::Deleted, create).unwrap_err();
            assert_eq!(skip.code, SkipCode::DeleteNotSynced);
            assert!(
                skip.reason.starts_with("contact ct_1 was deleted upstream"),
                "{}",
                skip.reason
            );
        }
    }

    #[test]
    fn disabled_creation_only_updates() {
        for change in [
            ChangeKind::Created,
            ChangeKind::Updated,
            ChangeKind::Unknown,
        ] {
            assert_eq!(
                decide(change, CreateRule::DISABLED),
                Ok(Creation::UpdateOnly(UpdateOnlyReason::Disabled)),
                "{change}"
            );
        }
    }

    #[test]
    fn on_create_creates_only_from_a_creation() {
        let on_create = rule(CreateTrigger::OnCreate);
        assert_eq!(
            decide(ChangeKind::Created, on_create.clone()),
            Ok(Creation::Allowed)
        );
        for change in [ChangeKind::Updated, ChangeKind::Unknown] {
            assert_eq!(
                decide(change, on_create.clone()),
                Ok(Creation::UpdateOnly(UpdateOnlyReason::NotACreation)),
                "{change}"
            );
        }
    }

    #[test]
    fn on_create_or_update_creates_from_any_change_it_knows() {
        let any = rule(CreateTrigger::OnCreateOrUpdate);
        assert_eq!(
            decide(ChangeKind::Created, any.clone()),
            Ok(Creation::Allowed)
        );
        assert_eq!(
            decide(ChangeKind::Updated, any.clone()),
            Ok(Creation::Allowed)
        );
        assert_eq!(decide(ChangeKind::Unknown, any), Ok(Creation::Allowed));
    }

    #[test]
    fn on_activity_leaves_creation_to_the_activity() {
        let on_reply = rule(CreateTrigger::OnActivity(ActivityType::EmailReplied));
        for change in [
            ChangeKind::Created,
            ChangeKind::Updated,
            ChangeKind::Unknown,
        ] {
            assert_eq!(
                decide(change, on_reply.clone()),
                Ok(Creation::UpdateOnly(UpdateOnlyReason::WaitsForActivity(
                    ActivityType::EmailReplied
                ))),
                "{change}"
            );
        }
    }

    #[test]
    fn the_action_follows_the_creation() {
        assert_eq!(Creation::Allowed.action(), CommandAction::Upsert);
        assert_eq!(
            Creation::UpdateOnly(UpdateOnlyReason::Disabled).action(),
            CommandAction::UpdateOnly
        );
        assert_eq!(
            CHANGES.len(),
            ChangeKind::ALL.len(),
            "every change kind is covered"
        );
    }
}
