//! `hubsync owners automap`: upstream users matched to HubSpot owners on identical email
//! addresses (trimmed, case ignored), compared with the `[users]` mapping the configuration
//! has, and the `[[users.mapping]]` entries to add. An email that several owners share is
//! ambiguous and never proposed, so no user is proposed to two owners.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use hubsync_processors::rules::UserRules;
use serde::Serialize;

use crate::hubspot::Owner;

// ----- the users file -----

/// One upstream user from the users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUser {
    pub user_id: String,
    /// As written; compared trimmed and lower-cased.
    pub email: String,
    pub name: Option<String>,
    /// 1-based line in the file, for messages.
    pub line: usize,
}

pub fn read_users(path: &Path) -> Result<Vec<UpstreamUser>, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        vec![format!(
            "cannot read users file {}: {error}",
            path.display()
        )]
    })?;
    parse_users(&text).map_err(|problems| {
        problems
            .into_iter()
            .map(|problem| format!("{}: {problem}", path.display()))
            .collect()
    })
}

/// Reads `user_id,email[,name]` rows; a first row `user_id,email[,name]` is a header. Every
/// problem is reported with its line; a user listed twice with the same email counts once.
pub fn parse_users(text: &str) -> Result<Vec<UpstreamUser>, Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut users: Vec<UpstreamUser> = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut first_row = true;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let fields = match split_csv(raw) {
            Ok(fields) => fields,
            Err(problem) => {
                problems.push(format!("line {line}: {problem}"));
                continue;
            }
        };
        if std::mem::take(&mut first_row) && is_header(&fields) {
            continue;
        }
        match user_of(fields, line) {
            Ok(user) => match seen.get(&user.user_id) {
                Some(&at) if normal_email(&users[at].email) == normal_email(&user.email) => {}
                Some(&at) => problems.push(format!(
                    "line {line}: user {:?} is listed again with another email ({:?} at line {}): \
                     keep one row per user",
                    user.user_id, users[at].email, users[at].line
                )),
                None => {
                    seen.insert(user.user_id.clone(), users.len());
                    users.push(user);
                }
            },
            Err(problem) => problems.push(format!("line {line}: {problem}")),
        }
    }
    if problems.is_empty() {
        Ok(users)
    } else {
        Err(problems)
    }
}

fn is_header(fields: &[String]) -> bool {
    fields.len() >= 2
        && fields[0].trim().eq_ignore_ascii_case("user_id")
        && fields[1].trim().eq_ignore_ascii_case("email")
}

fn user_of(fields: Vec<String>, line: usize) -> Result<UpstreamUser, String> {
    if !(2..=3).contains(&fields.len()) {
        return Err(format!(
            "expected user_id,email[,name] but found {} fields",
            fields.len()
        ));
    }
    let mut fields = fields.into_iter().map(|f| f.trim().to_owned());
    let user_id = fields.next().unwrap_or_default();
    let email = fields.next().unwrap_or_default();
    let name = fields.next().filter(|name| !name.is_empty());
    if user_id.is_empty() {
        return Err("the user_id is empty".to_owned());
    }
    Ok(UpstreamUser {
        user_id,
        email,
        name,
        line,
    })
}

/// One CSV line: fields separated by commas, a field in double quotes may hold commas and `""`
/// for a quote.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, '"') => return Err("a quote inside an unquoted field".to_owned()),
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) if was_quoted => {
                if !c.is_whitespace() {
                    return Err("text after a closing quote".to_owned());
                }
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed on this line".to_owned());
    }
    fields.push(field);
    Ok(fields)
}

fn normal_email(email: &str) -> String {
    email.trim().to_lowercase()
}

// ----- the proposal -----

/// Everything `automap` found, printed as tables or as one JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proposal {
    pub owners_read: usize,
    pub users_read: usize,
    /// Users whose email exactly one owner has.
    pub matched: Vec<Matched>,
    /// Users no owner shares an email with (or without an email).
    pub unmatched_users: Vec<Unmatched>,
    /// Users whose email several owners have: never proposed.
    pub ambiguous: Vec<Ambiguous>,
    /// Owners whose email no upstream user has.
    pub owners_without_user: Vec<OwnerRow>,
    /// The config's `[[users.mapping]]` entries, against the proposal.
    pub configured: Vec<Configured>,
    /// `[[users.mapping]]` entries for the matched users the config does not map yet.
    pub snippet: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matched {
    pub user: String,
    pub email: String,
    pub owner: String,
    pub owner_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmatched {
    pub user: String,
    pub email: String,
    pub name: Option<String>,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ambiguous {
    pub user: String,
    pub email: String,
    pub owners: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerRow {
    pub owner: String,
    pub email: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Configured {
    pub user: String,
    /// The owner the config maps the user to.
    pub owner: String,
    /// Whether that owner is an active HubSpot owner.
    pub owner_active: bool,
    pub in_users_file: bool,
    /// The owner the email match proposes, when there is exactly one.
    pub proposed: Option<String>,
    /// Whether the config maps the user to the proposed owner; `None` without a proposal.
    pub agrees: Option<bool>,
}

/// Matches users to owners by email and compares with the configured mapping.
pub fn propose(users: &[UpstreamUser], owners: &[Owner], configured: &UserRules) -> Proposal {
    let mut by_email: HashMap<String, Vec<&Owner>> = HashMap::new();
    for owner in owners {
        if let Some(email) = owner.email.as_deref().map(normal_email)
            && !email.is_empty()
        {
            by_email.entry(email).or_default().push(owner);
        }
    }
    let mut matched = Vec::new();
    let mut unmatched_users = Vec::new();
    let mut ambiguous = Vec::new();
    let mut claimed: HashSet<&str> = HashSet::new();
    for user in users {
        let email = normal_email(&user.email);
        let found = by_email.get(&email).map(Vec::as_slice).unwrap_or_default();
        for owner in found {
            claimed.insert(&owner.id);
        }
        match found {
            _ if email.is_empty() => unmatched_users.push(unmatched(user, "no email")),
            [] => unmatched_users.push(unmatched(user, "no owner has this email")),
            [owner] => matched.push(Matched {
                user: user.user_id.clone(),
                email: user.email.clone(),
                owner: owner.id.clone(),
                owner_name: owner_name(owner),
            }),
            several => ambiguous.push(Ambiguous {
                user: user.user_id.clone(),
                email: user.email.clone(),
                owners: several.iter().map(|o| o.id.clone()).collect(),
            }),
        }
    }
    let owners_without_user = owners
        .iter()
        .filter(|owner| !claimed.contains(owner.id.as_str()))
        .map(|owner| OwnerRow {
            owner: owner.id.clone(),
            email: owner.email.clone(),
            name: owner_name(owner),
        })
        .collect();
    let configured = compare(users, owners, &matched, configured);
    let snippet = snippet(&matched, &configured);
    Proposal {
        owners_read: owners.len(),
        users_read: users.len(),
        matched,
        unmatched_users,
        ambiguous,
        owners_without_user,
        configured,
        snippet,
    }
}

fn unmatched(user: &UpstreamUser, reason: &'static str) -> Unmatched {
    Unmatched {
        user: user.user_id.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
        reason,
    }
}

fn owner_name(owner: &Owner) -> String {
    [owner.first_name.as_deref(), owner.last_name.as_deref()]
        .into_iter()
        .flatten()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each user the config maps (first entry per user; the config refuses a user with two owners).
fn compare(
    users: &[UpstreamUser],
    owners: &[Owner],
    matched: &[Matched],
    configured: &UserRules,
) -> Vec<Configured> {
    let active: HashSet<&str> = owners.iter().map(|o| o.id.as_str()).collect();
    let listed: HashSet<&str> = users.iter().map(|u| u.user_id.as_str()).collect();
    let proposed: HashMap<&str, &str> = matched
        .iter()
        .map(|m| (m.user.as_str(), m.owner.as_str()))
        .collect();
    let mut seen = HashSet::new();
    configured
        .mapping
        .iter()
        .filter(|entry| seen.insert(entry.user.as_str()))
        .map(|entry| {
            let proposal = proposed.get(entry.user.as_str()).copied();
            Configured {
                user: entry.user.clone(),
                owner: entry.owner.clone(),
                owner_active: active.contains(entry.owner.as_str()),
                in_users_file: listed.contains(entry.user.as_str()),
                proposed: proposal.map(str::to_owned),
                agrees: proposal.map(|owner| owner == entry.owner),
            }
        })
        .collect()
}

/// `[[users.mapping]]` entries for the matched users the config does not map yet, each under a
/// comment naming the email and owner.
fn snippet(matched: &[Matched], configured: &[Configured]) -> String {
    let mapped: HashSet<&str> = configured.iter().map(|c| c.user.as_str()).collect();
    let mut text = String::new();
    for entry in matched.iter().filter(|m| !mapped.contains(m.user.as_str())) {
        if !text.is_empty() {
            text.push('\n');
        }
        let label = if entry.owner_name.is_empty() {
            entry.email.clone()
        } else {
            format!("{} ({})", entry.email, entry.owner_name)
        };
        text.push_str(&format!(
            "# {}\n[[users.mapping]]\nuser = {}\nowner = {}\n",
            label.replace('\n', " "),
            quote(&entry.user),
            quote(&entry.owner)
        ));
    }
    text
}

/// A TOML basic string holding `value`.
fn quote(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

// ----- printing -----

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_processors::Rules;

    fn owner(id: &str, email: &str) -> Owner {
        Owner {
            id: id.to_owned(),
            email: Some(email.to_owned()),
            first_name: Some("Ada".to_owned()),
            last_name: Some("Lovelace".to_owned()),
            user_id: None,
            kind: "PERSON".to_owned(),
            teams: Vec::new(),
            archived: false,
        }
    }

    fn users(text: &str) -> Vec<UpstreamUser> {
        parse_users(text).expect("users parse")
    }

    #[test]
    fn csv_fields_may_be_quoted() {
        assert_eq!(
            split_csv(r#"u1, "ada@x.io" ,"Lovelace, ""Ada""""#).expect("parses"),
            ["u1", "ada@x.io", "Lovelace, \"Ada\""]
        );
        assert!(split_csv(r#"u1,"ada@x.io"#).is_err());
        assert!(split_csv(r#"u1,ada"@x.io"#).is_err());
        assert!(split_csv(r#"u1,"ada"x,n"#).is_err());
    }

    #[test]
    fn the_header_is_optional_and_problems_name_their_line() {
        let with = users("user_id,email,name\nu1,ada@x.io,Ada\n\nu2,grace@x.io\n");
        let without = users("\u{feff}u1,ada@x.io,Ada\nu2,grace@x.io\n");
        assert_eq!(with.len(), 2);
        assert_eq!(
            with.iter().map(|u| &u.user_id).collect::<Vec<_>>(),
            without.iter().map(|u| &u.user_id).collect::<Vec<_>>()
        );
        assert_eq!(with[0].name.as_deref(), Some("Ada"));
        assert_eq!(with[1].line, 4);
        let problems = parse_users("u1\n,a@x.io\nu2,b@x.io\nu2,c@x.io\nu3,B@x.io\nu3,b@x.io ")
            .expect_err("bad rows");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("line 1: expected"), "{problems:?}");
        assert!(
            problems[1].starts_with("line 2: the user_id"),
            "{problems:?}"
        );
        assert!(
            problems[2].starts_with("line 4: user \"u2\""),
            "{problems:?}"
        );
    }

    #[test]
    fn emails_match_trimmed_and_case_blind_and_shared_ones_are_ambiguous() {
        let owners = [
            owner("1", "ada@x.io"),
            owner("2", "shared@x.io"),
            owner("3", "Shared@X.io"),
            owner("4", "nobody@x.io"),
        ];
        let users = users("u1, ADA@x.io \nu2,shared@x.io\nu3,linus@x.io\nu4,\n");
        let proposal = propose(&users, &owners, &UserRules::default());
        assert_eq!(
            proposal
                .matched
                .iter()
                .map(|m| (m.user.as_str(), m.owner.as_str()))
                .collect::<Vec<_>>(),
            [("u1", "1")]
        );
        assert_eq!(proposal.ambiguous.len(), 1);
        assert_eq!(proposal.ambiguous[0].owners, ["2", "3"]);
        assert_eq!(
            proposal
                .unmatched_users
                .iter()
                .map(|u| (u.user.as_str(), u.reason))
                .collect::<Vec<_>>(),
            [("u3", "no owner has this email"), ("u4", "no email")]
        );
        assert_eq!(
            proposal
                .owners_without_user
                .iter()
                .map(|o| o.owner.as_str())
                .collect::<Vec<_>>(),
            ["4"]
        );
    }

    #[test]
    fn configured_users_are_compared_and_left_out_of_the_snippet() {
        let owners = [
            owner("1", "ada@x.io"),
            owner("2", "grace@x.io"),
            owner("5", "alan@x.io"),
        ];
        let users = users("u1,ada@x.io\nu2,grace@x.io\nu3,alan@x.io\n");
        let configured: UserRules = toml::from_str(
            "[[mapping]]\nuser = \"u1\"\nowner = \"1\"\n\
             [[mapping]]\nuser = \"u2\"\nowner = \"9\"\n\
             [[mapping]]\nuser = \"u9\"\nowner = \"5\"\n",
        )
        .expect("users parse");
        let proposal = propose(&users, &owners, &configured);
        let verdicts: Vec<(&str, Option<bool>, bool, bool)> = proposal
            .configured
            .iter()
            .map(|c| (c.user.as_str(), c.agrees, c.owner_active, c.in_users_file))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("u1", Some(true), true, true),
                ("u2", Some(false), false, true),
                ("u9", None, true, false)
            ]
        );
        let rules: Rules = toml::from_str(&proposal.snippet).expect("snippet is TOML");
        assert_eq!(rules.users.mapping.len(), 1, "{}", proposal.snippet);
        assert_eq!(rules.users.owner_for("u3"), Some("5"));
        assert!(rules.validate().is_empty());
    }
}
