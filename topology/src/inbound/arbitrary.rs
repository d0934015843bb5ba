//! What HubSpot (or anyone who can reach the receiver) sends, fed arbitrary and damaged: the
//! webhook body, the signature and timestamp headers, and an event read by the translator end
//! in a value or a typed refusal, never a panic. `PROPTEST_CASES=100000 cargo test -p hubsync
//! --lib arbitrary_webhooks` runs longer.

use proptest::prelude::*;

use super::events;
use super::memory::Memory;
use super::signature::{self, Refused};
use super::translate::{HubSpotEvent, TeamView, Translator};

/// A real request body, to damage.
const BODY: &str = r#"[{"eventId":1,"subscriptionId":7,"portalId":62515,"appId":4242,"occurredAt":1765000000000,"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":51,"propertyName":"jobtitle","propertyValue":"CTO","changeSource":"CRM_UI","sourceId":"userId:1"},{"eventId":2,"portalId":62515,"occurredAt":1765000000001,"subscriptionType":"contact.merge","primaryObjectId":51,"mergedObjectIds":[52],"newObjectId":51},{"eventId":3,"portalId":62515,"occurredAt":1765000000002,"subscriptionType":"contact.associationChange","associationType":"CONTACT_TO_COMPANY","fromObjectId":51,"toObjectId":9,"associationRemoved":false,"isPrimaryAssociation":true}]"#;

fn damaged(text: &str, at: usize, len: usize, insert: &str) -> Vec<u8> {
    let start = at.min(text.len());
    let end = (start + len).min(text.len());
    let mut bytes = text.as_bytes()[..start].to_vec();
    bytes.extend_from_slice(insert.as_bytes());
    bytes.extend_from_slice(&text.as_bytes()[end..]);
    bytes
}

fn translate_all(body: &[u8]) {
    let Ok(values) = serde_json::from_slice::<Vec<serde_json::Value>>(body) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sled::open(dir.path()).expect("sled");
    let memory = Memory::open(&db).expect("memory");
    let view = TeamView {
        team: "acme".into(),
        portal: 62515,
        ..TeamView::default()
    };
    let mut translator = Translator::new(&memory, None);
    for value in values {
        if let Ok(event) = serde_json::from_value::<HubSpotEvent>(value) {
            translator
                .translate(&view, &event)
                .expect("only the state store can fail");
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_webhooks_bodies_parse_or_are_refused(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = events::parse(&body);
        translate_all(&body);
    }

    #[test]
    fn arbitrary_webhooks_damaged_bodies_parse_or_are_refused(
        at in 0usize..BODY.len(),
        len in 0usize..12,
        insert in "[\\[\\]{}:,\"0-9a-zA-Z.\\\\ -]{0,8}",
    ) {
        prop_assert!(events::parse(BODY.as_bytes()).is_ok(), "the undamaged body parses");
        let body = damaged(BODY, at, len, &insert);
        let _ = events::parse(&body);
        translate_all(&body);
    }

    #[test]
    fn arbitrary_webhooks_headers_are_refused_never_accepted(
        timestamp in proptest::option::of(".{0,24}"),
        given in proptest::option::of(".{0,60}"),
        uri in ".{0,80}",
        now in any::<i64>(),
    ) {
        let _ = signature::check_timestamp(timestamp.as_deref(), now);
        let _ = signature::signed_form(&uri);
        let verdict = signature::verify(
            b"secret",
            "POST",
            &uri,
            BODY.as_bytes(),
            timestamp.as_deref().unwrap_or_default(),
            given.as_deref(),
        );
        // A signature not made with the secret is never accepted.
        let signed = signature::sign(
            b"secret",
            "POST",
            &uri,
            BODY.as_bytes(),
            timestamp.as_deref().unwrap_or_default(),
        );
        if given.as_deref().map(str::trim) != Some(signed.as_str()) {
            prop_assert!(matches!(verdict, Err(Refused::MissingSignature | Refused::Mismatch)));
        }
    }
}
