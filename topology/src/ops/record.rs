//! Which record an outcome or a dead letter is about, as a label people search by
//! (`email:ada@acme.io`, `domain:acme.io`, `id:ct_1`), and what `--record X` matches.
//!
//! ```text
//! outcome { hubspot_object_type: CONTACT, record: "ada@acme.io" }  ->  email:ada@acme.io
//! --record ada@acme.io | email:ADA@acme.io | acme.io                ->  matches it
//! ```

use hubsync_schemas::{HubSpotObjectType, SyncOutcome};
use serde_json::Value;

/// A record label: what kind of identifier, and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLabel {
    /// `email`, `domain` or `id`.
    pub kind: &'static str,
    pub value: String,
}

impl std::fmt::Display for RecordLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

impl RecordLabel {
    fn new(kind: &'static str, value: &str) -> Self {
        RecordLabel {
            kind,
            value: value.to_string(),
        }
    }

    /// The label of an outcome's `record`, by the object it is about: a contact's value with an
    /// `@` is an email, a company's with a dot a domain, anything else an upstream id.
    pub fn of_outcome(outcome: &SyncOutcome) -> Option<Self> {
        let value = outcome.record.as_deref().filter(|v| !v.is_empty())?;
        Some(guess(outcome.hubspot_object_type, value))
    }

    /// The label of a decoded upstream event or command (as JSON): its email, domain, identity,
    /// or upstream contact or company id, in that order.
    pub fn of_payload(payload: &Value) -> Option<Self> {
        let text = |name: &str| payload.get(name).and_then(Value::as_str);
        if let Some(email) = text("email") {
            return Some(Self::new("email", email));
        }
        if let Some(domain) = text("domain") {
            return Some(Self::new("domain", domain));
        }
        if let Some(identity) = payload.get("identity") {
            let value = identity.get("value").and_then(Value::as_str)?;
            let kind = match identity.get("kind").and_then(Value::as_str) {
                Some("EMAIL") => "email",
                Some("DOMAIN") => "domain",
                _ => "id",
            };
            return Some(Self::new(kind, value));
        }
        ["contact_id", "company_id"]
            .into_iter()
            .find_map(text)
            .map(|id| Self::new("id", id))
    }
}

fn guess(object: Option<HubSpotObjectType>, value: &str) -> RecordLabel {
    let looks_like_domain = value.contains('.') && !value.contains(char::is_whitespace);
    match object {
        Some(HubSpotObjectType::Company) if looks_like_domain => RecordLabel::new("domain", value),
        _ if value.contains('@') => RecordLabel::new("email", value),
        _ => RecordLabel::new("id", value),
    }
}

/// What `--record X` asks for. `kind:value` matches that label exactly; a bare value matches a
/// label's value, a HubSpot id or an event id; a bare domain also matches every email at it.
/// Letters' case never matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordQuery {
    kind: Option<String>,
    value: String,
    /// The value as given, its case kept.
    given: String,
}

impl RecordQuery {
    pub fn parse(input: &str) -> Self {
        let input = input.trim();
        match input.split_once(':') {
            Some((kind, value)) if ["email", "domain", "id"].contains(&kind) => RecordQuery {
                kind: Some(kind.to_string()),
                value: value.trim().to_ascii_lowercase(),
                given: value.trim().to_string(),
            },
            _ => RecordQuery {
                kind: None,
                value: input.to_ascii_lowercase(),
                given: input.to_string(),
            },
        }
    }

    /// The value asked for, lower case.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The value asked for, as given.
    pub fn given(&self) -> &str {
        &self.given
    }

    /// Whether a record with this label, HubSpot id and event id is the one asked for.
    pub fn matches(
        &self,
        label: Option<&RecordLabel>,
        hubspot_id: Option<&str>,
        event_id: Option<&str>,
    ) -> bool {
        let label_value = label.map(|l| l.value.to_ascii_lowercase());
        if let Some(kind) = &self.kind {
            return label.is_some_and(|l| l.kind == kind)
                && label_value.as_deref() == Some(self.value.as_str());
        }
        let same = |candidate: Option<&str>| {
            candidate.is_some_and(|c| c.eq_ignore_ascii_case(&self.value))
        };
        if same(label_value.as_deref()) || same(hubspot_id) || same(event_id) {
            return true;
        }
        // A bare domain: the emails at it too.
        !self.value.contains('@')
            && label.is_some_and(|l| l.kind == "email")
            && label_value
                .as_deref()
                .and_then(|email| email.rsplit_once('@'))
                .is_some_and(|(_, domain)| domain == self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_schemas::examples;
    use serde_json::json;

    fn outcome(object: HubSpotObjectType, record: &str) -> SyncOutcome {
        let mut outcome = examples::sync_outcome();
        outcome.hubspot_object_type = Some(object);
        outcome.record = Some(record.to_string());
        outcome
    }

    #[test]
    fn outcomes_are_labelled_by_what_their_record_looks_like() {
        let label = |object, record| {
            RecordLabel::of_outcome(&outcome(object, record))
                .expect("labelled")
                .to_string()
        };
        assert_eq!(
            label(HubSpotObjectType::Contact, "ada@acme.io"),
            "email:ada@acme.io"
        );
        assert_eq!(label(HubSpotObjectType::Contact, "ct_1"), "id:ct_1");
        assert_eq!(
            label(HubSpotObjectType::Company, "acme.io"),
            "domain:acme.io"
        );
        assert_eq!(label(HubSpotObjectType::Company, "co_1"), "id:co_1");
        let mut none = examples::sync_outcome();
        none.record = None;
        assert_eq!(RecordLabel::of_outcome(&none), None);
    }

    #[test]
    fn payloads_are_labelled_by_email_domain_identity_or_id() {
        let label = |payload: Value| RecordLabel::of_payload(&payload).map(|l| l.to_string());
        assert_eq!(
            label(json!({"email": "ada@acme.io", "contact_id": "ct_1"})),
            Some("email:ada@acme.io".into())
        );
        assert_eq!(
            label(json!({"email": null, "contact_id": "ct_1"})),
            Some("id:ct_1".into())
        );
        assert_eq!(
            label(json!({"domain": "acme.io"})),
            Some("domain:acme.io".into())
        );
        assert_eq!(
            label(json!({"identity": {"kind": "EMAIL", "value": "ada@acme.io"}})),
            Some("email:ada@acme.io".into())
        );
        assert_eq!(
            label(json!({"identity": {"kind": "SOURCE_ID", "value": "ct_1"}})),
            Some("id:ct_1".into())
        );
        assert_eq!(label(json!({"other": 1})), None);
    }

    #[test]
    fn queries_match_labels_ids_and_domains_without_regard_to_case() {
        let ada = RecordLabel::new("email", "Ada@Acme.io");
        let matches =
            |query: &str| RecordQuery::parse(query).matches(Some(&ada), Some("901"), Some("evt-1"));
        assert!(matches("email:ada@acme.io"));
        assert!(matches("ADA@acme.io"));
        assert!(matches("acme.io"));
        assert!(matches("901"));
        assert!(matches("evt-1"));
        assert!(!matches("domain:acme.io"), "a label asked for by kind");
        assert!(!matches("grace@acme.io"));
        assert!(!matches("cme.io"));
        assert!(!RecordQuery::parse("ada@acme.io").matches(None, None, None));
    }
}
