//! User mapping: which HubSpot owner stands for each upstream user.
//!
//! ```toml
//! [users]
//! default_owner = "90011"
//! [[users.mapping]]
//! user = "usr_ada"
//! owner = "90012"
//! ```
//!
//! Several upstream users may share one owner (an assistant sending for a rep); one user mapped to
//! two owners is refused, because activity ownership would depend on which entry came first.

use serde::{Deserialize, Serialize};

use super::{RuleError, check_name};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserRules {
    /// The HubSpot owner id used when an activity has neither a mapped sender nor a mapped contact
    /// owner. Without one such activities are written without an owner.
    pub default_owner: Option<String>,
    /// Map upstream users to the HubSpot owner with the same email address when they have no
    /// explicit entry below.
    pub auto_map_by_email: bool,
    /// Explicit entries; they win over the email match.
    pub mapping: Vec<UserMapping>,
}

impl Default for UserRules {
    fn default() -> Self {
        Self {
            default_owner: None,
            auto_map_by_email: true,
            mapping: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserMapping {
    /// The upstream user id.
    pub user: String,
    /// The HubSpot owner id (digits, as listed by `GET /crm/v3/owners`).
    pub owner: String,
}

impl UserRules {
    /// The owner explicitly mapped to an upstream user.
    pub fn owner_for(&self, user: &str) -> Option<&str> {
        self.mapping
            .iter()
            .find(|entry| entry.user == user)
            .map(|entry| entry.owner.as_str())
    }

    pub(crate) fn validate(&self, errors: &mut Vec<RuleError>) {
        if let Some(owner) = &self.default_owner {
            check_owner_id("users.default_owner", owner, errors);
        }
        for (index, entry) in self.mapping.iter().enumerate() {
            let path = format!("users.mapping[{index}]");
            check_name(
                &format!("{path}.user"),
                &entry.user,
                "an upstream user id",
                errors,
            );
            check_owner_id(&format!("{path}.owner"), &entry.owner, errors);
            let conflict = self.mapping[..index]
                .iter()
                .enumerate()
                .find(|(_, earlier)| earlier.user == entry.user && earlier.owner != entry.owner);
            if let Some((first, earlier)) = conflict {
                errors.push(RuleError::new(
                    format!("{path}.owner"),
                    format!(
                        "user {:?} is mapped to owner {:?} here and to owner {:?} at \
                         users.mapping[{first}]: an upstream user maps to exactly one HubSpot \
                         owner (several users may share an owner); keep one of the two entries",
                        entry.user, entry.owner, earlier.owner
                    ),
                ));
            }
        }
    }
}

fn check_owner_id(path: &str, owner: &str, errors: &mut Vec<RuleError>) {
    if owner.is_empty() || !owner.bytes().all(|b| b.is_ascii_digit()) {
        errors.push(RuleError::new(
            path,
            format!(
                "{owner:?} is not a HubSpot owner id: owner ids are digits, such as \"90012\" \
                 (see GET /crm/v3/owners)"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Rules;
    use super::*;

    fn errors(text: &str) -> Vec<RuleError> {
        toml::from_str::<Rules>(text)
            .expect("rules parse")
            .validate()
    }

    #[test]
    fn many_users_may_share_an_owner() {
        let rules: Rules = toml::from_str(
            r#"
            [[users.mapping]]
            user = "ada"
            owner = "501"
            [[users.mapping]]
            user = "grace"
            owner = "501"
            [[users.mapping]]
            user = "ada"
            owner = "501"
            "#,
        )
        .unwrap();
        assert!(rules.validate().is_empty(), "{:?}", rules.validate());
        assert_eq!(rules.users.owner_for("grace"), Some("501"));
        assert_eq!(rules.users.owner_for("linus"), None);
        assert!(rules.users.auto_map_by_email);
    }

    #[test]
    fn one_user_mapped_to_two_owners_is_refused_naming_both_entries() {
        let errors = errors(
            r#"
            [[users.mapping]]
            user = "ada"
            owner = "501"
            [[users.mapping]]
            user = "grace"
            owner = "502"
            [[users.mapping]]
            user = "ada"
            owner = "503"
            "#,
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "users.mapping[2].owner");
        let message = &errors[0].message;
        assert!(
            message.contains("\"503\"") && message.contains("\"501\""),
            "{message}"
        );
        assert!(message.contains("users.mapping[0]"), "{message}");
        assert!(message.contains("exactly one HubSpot owner"), "{message}");
    }

    #[test]
    fn owner_ids_are_digits() {
        let errors = errors(
            r#"
            [users]
            default_owner = "ada@example.com"
            [[users.mapping]]
            user = ""
            owner = ""
            "#,
        );
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "users.default_owner",
                "users.mapping[0].user",
                "users.mapping[0].owner"
            ]
        );
        assert!(errors[0].message.contains("owner ids are digits"));
    }
}
