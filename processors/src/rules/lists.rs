//! HubSpot lists a team follows: joining a list imports the record upstream, leaving it means
//! what `on_leave` says.
//!
//! ```toml
//! [[lists]]
//! list_id = "42"          # HubSpot's list id (ILS list id, v3)
//! action = "import"       # what joining means; the default and, for now, the only choice
//! on_leave = "pause"      # "pause" (the default): pause the record upstream; "ignore": nothing
//! ```
//!
//! The inbound stage reads each followed list's members and reports who joined and who left;
//! these rules say what upstream does with it. HubSpot has no "paused" list state of its own.

use serde::{Deserialize, Serialize};

use super::RuleError;

/// One followed list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRule {
    /// HubSpot's id of the list (digits, as in the list's URL and the v3 lists API).
    pub list_id: String,
    /// What joining the list means.
    #[serde(default)]
    pub action: ListAction,
    /// What leaving the list means.
    #[serde(default)]
    pub on_leave: LeaveAction,
}

/// What a record joining a followed list means upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListAction {
    /// The record is imported upstream (once: a member already imported stays imported).
    #[default]
    Import,
}

/// What a record leaving a followed list means upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveAction {
    /// The record is paused upstream.
    #[default]
    Pause,
    /// Nothing: leaving the list is not reported upstream.
    Ignore,
}

/// Checks every followed list: an id of digits, each list once.
pub(crate) fn validate(lists: &[ListRule], errors: &mut Vec<RuleError>) {
    for (index, list) in lists.iter().enumerate() {
        let path = format!("lists[{index}].list_id");
        let id = list.list_id.as_str();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(RuleError::new(
                path,
                format!(
                    "{:?} is not a HubSpot list id: write the list's id, digits only, as in \
                     its URL (e.g. \"42\")",
                    list.list_id
                ),
            ));
        } else if let Some(first) = lists[..index]
            .iter()
            .position(|earlier| earlier.list_id == id)
        {
            errors.push(RuleError::new(
                path,
                format!("list {id} is already followed at lists[{first}]: follow each list once"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::rules;
    use super::*;

    #[test]
    fn a_list_imports_on_join_and_pauses_on_leave_unless_told() {
        let rules = rules(
            r#"
            [[lists]]
            list_id = "42"

            [[lists]]
            list_id = "43"
            action = "import"
            on_leave = "ignore"
            "#,
        );
        assert_eq!(
            rules.lists,
            [
                ListRule {
                    list_id: "42".into(),
                    action: ListAction::Import,
                    on_leave: LeaveAction::Pause,
                },
                ListRule {
                    list_id: "43".into(),
                    action: ListAction::Import,
                    on_leave: LeaveAction::Ignore,
                },
            ]
        );
        assert!(rules.validate().is_empty(), "{:?}", rules.validate());
    }

    #[test]
    fn ids_must_be_digits_and_lists_followed_once() {
        let rules = rules(
            r#"
            [[lists]]
            list_id = "42"
            [[lists]]
            list_id = "webinar"
            [[lists]]
            list_id = "42"
            [[lists]]
            list_id = ""
            "#,
        );
        let errors = rules.validate();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["lists[1].list_id", "lists[2].list_id", "lists[3].list_id"]
        );
        assert!(errors[1].message.contains("lists[0]"), "{}", errors[1]);
    }

    #[test]
    fn unknown_keys_and_values_are_refused() {
        for text in [
            "[[lists]]\nlist_id = \"1\"\nwhen_leaving = \"pause\"",
            "[[lists]]\nlist_id = \"1\"\naction = \"export\"",
            "[[lists]]\nlist_id = \"1\"\non_leave = \"delete\"",
            "[[lists]]\naction = \"import\"",
        ] {
            assert!(
                toml::from_str::<super::super::Rules>(text).is_err(),
                "{text}"
            );
        }
    }
}
