//! Every owner id `[users]` names (`default_owner` and each `[[users.mapping]]` entry) must be an
//! active HubSpot owner; HubSpot refuses a `hubspot_owner_id` it does not know.
//!
//! ```text
//! [users] default_owner = "70000001", mapping usr_ada -> "99999999"
//!   with owners 70000001, 70000002  -> users.mapping[0].owner  owner_missing
//! ```

use std::collections::HashSet;

use hubsync_processors::rules::UserRules;

use super::{OWNERS, Problem, ProblemKind};
use crate::hubspot::Owner;

/// One problem per configured owner id that no active owner has.
pub fn check(users: &UserRules, owners: &[Owner]) -> Vec<Problem> {
    let known: HashSet<&str> = owners.iter().map(|o| o.id.as_str()).collect();
    let configured = users
        .default_owner
        .iter()
        .map(|owner| ("users.default_owner".to_owned(), owner))
        .chain(
            users
                .mapping
                .iter()
                .enumerate()
                .map(|(index, entry)| (format!("users.mapping[{index}].owner"), &entry.owner)),
        );
    configured
        .filter(|(_, owner)| !known.contains(owner.as_str()))
        .map(|(field, owner)| {
            Problem::new(
                OWNERS,
                ProblemKind::OwnerMissing,
                field,
                format!(
                    "HubSpot has no active owner with id {owner:?}: use an id listed by GET \
                     /crm/v3/owners (`hubsync owners automap` proposes them by email), or \
                     reactivate the user in HubSpot"
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(id: &str) -> Owner {
        Owner {
            id: id.to_owned(),
            email: None,
            first_name: None,
            last_name: None,
            user_id: None,
            kind: "PERSON".to_owned(),
            teams: Vec::new(),
            archived: false,
        }
    }

    #[test]
    fn unknown_owner_ids_are_named_by_field() {
        let users: UserRules = toml::from_str(
            r#"
            default_owner = "3"
            [[mapping]]
            user = "ada"
            owner = "1"
            [[mapping]]
            user = "grace"
            owner = "2"
            "#,
        )
        .expect("users parse");
        let problems = check(&users, &[owner("1"), owner("4")]);
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["users.default_owner", "users.mapping[1].owner"]);
        assert!(problems.iter().all(|p| p.kind == ProblemKind::OwnerMissing));
        assert!(problems[1].message.contains("\"2\""), "{problems:?}");
        assert_eq!(check(&users, &[owner("1"), owner("2"), owner("3")]), []);
    }
}
