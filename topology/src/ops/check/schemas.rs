//! Each topic's value subject (`<topic>-value`) against hubsync's own schema for it: the
//! registry's compatibility check with the latest registered version, in the direction the
//! subject's compatibility level asks. For an input topic that means hubsync can read what
//! producers registered; for an output topic, that hubsync's writer schema will be accepted.
//!
//! A subject with no version yet is fine as long as the registry would accept our schema as its
//! first one (hubsync registers its output schemas at start; producers register the inputs').
//! Nothing is registered here.

use hubsync_schemas::{SchemaKind, default_subject};

use super::{Finding, Problem, ProblemKind, REGISTRY, Status};
use crate::codec::RegistryClient;
use crate::codec::registry::{Compatibility, RegistryError, SUBJECT_NOT_FOUND, VERSION_NOT_FOUND};
use crate::config::{Config, Secrets, Topics};

/// The value schema of each topic, by its key in `[topics]`.
fn subjects(topics: &Topics) -> [(&'static str, &str, SchemaKind); 7] {
    [
        (
            "contact_changes",
            &topics.contact_changes,
            SchemaKind::ContactChanged,
        ),
        (
            "company_changes",
            &topics.company_changes,
            SchemaKind::CompanyChanged,
        ),
        (
            "activity_events",
            &topics.activity_events,
            SchemaKind::ActivityRecorded,
        ),
        ("commands", &topics.commands, SchemaKind::HubSpotCommand),
        ("outcomes", &topics.outcomes, SchemaKind::SyncOutcome),
        ("dlq", &topics.dlq, SchemaKind::DeadLetter),
        (
            "hubspot_changes",
            &topics.hubspot_changes,
            SchemaKind::HubSpotChange,
        ),
    ]
}

/// What the registry says of one subject.
#[derive(Debug)]
enum Verdict {
    /// Compatible with the latest version.
    Compatible,
    /// No version yet, and ours would be accepted as the first.
    NotRegistered,
    Incompatible(Vec<String>),
}

/// Asks the registry about every topic's value subject.
pub async fn check(config: &Config, secrets: &Secrets) -> Finding {
    let registry = match RegistryClient::new(&config.registry, secrets.registry_password.clone()) {
        Ok(registry) => registry,
        Err(error) => {
            return Finding::problem(
                "no registry client",
                Problem::new(
                    REGISTRY,
                    ProblemKind::RegistryRefused,
                    "registry.url",
                    error.to_string(),
                ),
            );
        }
    };
    let mut problems = Vec::new();
    let (mut compatible, mut unregistered) = (0, 0);
    for (key, topic, kind) in subjects(&config.topics) {
        let subject = default_subject(topic);
        match verdict(&registry, &subject, kind).await {
            Ok(Verdict::Compatible) => compatible += 1,
            Ok(Verdict::NotRegistered) => unregistered += 1,
            Ok(Verdict::Incompatible(messages)) => {
                problems.push(incompatible(key, &subject, kind, &messages));
            }
            Err(error) if error.is_retryable() => {
                return Finding {
                    status: Status::Unreachable,
                    detail: format!("{}: {error}", registry.url()),
                    problems,
                };
            }
            Err(error) => problems.push(refused(key, &error)),
        }
    }
    Finding::from_problems(
        format!(
            "{compatible} subjects compatible with their latest version, {unregistered} not \
             registered yet, {} with problems",
            problems.len()
        ),
        problems,
    )
}

/// Compatibility with the latest version; for a subject without one, with what its level
/// compares a first version against.
async fn verdict(
    registry: &RegistryClient,
    subject: &str,
    kind: SchemaKind,
) -> Result<Verdict, RegistryError> {
    let schema = kind.source();
    match registry
        .compatibility(subject, Some("latest"), schema)
        .await
    {
        Ok(answer) => Ok(judge(answer, Verdict::Compatible)),
        Err(error) if not_registered(&error) => {
            match registry.compatibility(subject, None, schema).await {
                Ok(answer) => Ok(judge(answer, Verdict::NotRegistered)),
                // Older registries answer 404 for a subject without versions.
                Err(error) if not_registered(&error) => Ok(Verdict::NotRegistered),
                Err(error) => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

fn judge(answer: Compatibility, fine: Verdict) -> Verdict {
    if answer.is_compatible {
        fine
    } else {
        Verdict::Incompatible(answer.messages)
    }
}

fn not_registered(error: &RegistryError) -> bool {
    matches!(
        error,
        RegistryError::NotFound {
            code: SUBJECT_NOT_FOUND | VERSION_NOT_FOUND,
            ..
        }
    )
}

fn incompatible(key: &str, subject: &str, kind: SchemaKind, messages: &[String]) -> Problem {
    let why = if messages.is_empty() {
        String::new()
    } else {
        format!(" ({})", messages.join("; "))
    };
    Problem::new(
        REGISTRY,
        ProblemKind::SchemaIncompatible,
        format!("topics.{key}"),
        format!(
            "hubsync's {kind} schema is not compatible with the latest version registered under \
             subject {subject:?}{why}: point topics.{key} at a topic carrying {kind} records, or \
             evolve the registered schema compatibly"
        ),
    )
}

fn refused(key: &str, error: &RegistryError) -> Problem {
    let (kind, field) = match error {
        RegistryError::Rejected {
            status: 401 | 403, ..
        } => (ProblemKind::RegistryAuth, "registry.username"),
        _ => (ProblemKind::RegistryRefused, "registry.url"),
    };
    Problem::new(
        REGISTRY,
        kind,
        field,
        format!("checking the value subject of topics.{key}: {error}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_its_own_schema() {
        let topics = Topics::default();
        let subjects = subjects(&topics);
        for ((key, name), (subject_key, topic, kind)) in topics.all().into_iter().zip(subjects) {
            assert_eq!(key, subject_key);
            assert_eq!(name, topic);
            assert_eq!(kind.default_topic(), topic, "{kind}");
        }
    }

    #[test]
    fn only_unknown_subjects_and_versions_mean_not_registered() {
        let not_found = |code| RegistryError::NotFound {
            request: "POST /compatibility/subjects/s/versions/latest".to_owned(),
            code,
            message: String::new(),
        };
        assert!(not_registered(&not_found(SUBJECT_NOT_FOUND)));
        assert!(not_registered(&not_found(VERSION_NOT_FOUND)));
        assert!(!not_registered(&not_found(40403)));
        let auth = RegistryError::Rejected {
            request: "r".to_owned(),
            status: 401,
            code: None,
            message: "Unauthorized".to_owned(),
        };
        assert!(!not_registered(&auth));
        assert_eq!(refused("dlq", &auth).kind, ProblemKind::RegistryAuth);
    }
}
