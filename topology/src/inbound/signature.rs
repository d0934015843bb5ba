//! HubSpot's webhook signature, version 3, as pure functions: no clock, no I/O.
//!
//! ```text
//! X-HubSpot-Request-Timestamp: 1765000000000          (epoch milliseconds)
//! X-HubSpot-Signature-v3:      base64(HMAC-SHA256(key = the app's client secret,
//!                                 message = "POST" + "https://hooks.example.com/hubspot/webhooks"
//!                                           + raw body + "1765000000000"))
//! ```
//!
//! The URL is the one HubSpot called (scheme, host, path, query), with a few escapes decoded as
//! HubSpot does before signing ([`signed_form`]).
//!
//! A request is accepted when its timestamp is within [`MAX_SKEW`] of now, either way, and its
//! signature equals the one computed here, compared in constant time so an attacker learns
//! nothing from how long a refusal takes.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-hubspot-signature-v3";
/// The header carrying the time HubSpot signed the request, in epoch milliseconds.
pub const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
/// How far a request's timestamp may be from now: HubSpot's 300 s, in the past or the future.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// Why a request's signature or timestamp was refused (answered 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the X-HubSpot-Signature-v3 header is missing: HubSpot signs every v3 request")]
    MissingSignature,
    #[error(
        "the X-HubSpot-Request-Timestamp header is missing or not epoch milliseconds: HubSpot \
         sends it with every v3 request"
    )]
    BadTimestamp,
    #[error(
        "the request was signed {skew_s} s from now, more than the 300 s allowed: a replayed or \
         delayed request"
    )]
    Stale { skew_s: i64 },
    #[error(
        "the signature does not match: the client secret differs from the app's, or the URL \
         HubSpot called is not the one checked (set stages.inbound.webhook_public_url)"
    )]
    Mismatch,
}

/// The v3 signature of a request, as HubSpot computes it.
pub fn sign(secret: &[u8], method: &str, uri: &str, body: &[u8], timestamp: &str) -> String {
    STANDARD.encode(mac(secret, method, uri, body, timestamp))
}

fn mac(secret: &[u8], method: &str, uri: &str, body: &[u8], timestamp: &str) -> Vec<u8> {
    // HMAC accepts keys of any length; the error arm cannot happen but costs nothing to keep.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return Vec::new();
    };
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The characters HubSpot decodes in the request URI before it signs it (its v3 validation
/// guide); every other escape stays as it is.
const DECODED: [(&str, char); 12] = [
    ("3A", ':'),
    ("2F", '/'),
    ("3F", '?'),
    ("40", '@'),
    ("21", '!'),
    ("24", '$'),
    ("27", '\''),
    ("28", '('),
    ("29", ')'),
    ("2A", '*'),
    ("2C", ','),
    ("3B", ';'),
];

/// The URI as HubSpot signs it: `uri` with the escapes of [`DECODED`] decoded.
pub fn signed_form(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at + 1..at + 3);
        let decoded = escape.and_then(|hex| {
            DECODED
                .iter()
                .find(|(code, _)| code.eq_ignore_ascii_case(hex))
                .map(|(_, c)| *c)
        });
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The request's timestamp, if it is within [`MAX_SKEW`] of `now_ms`.
pub fn check_timestamp(timestamp: Option<&str>, now_ms: i64) -> Result<i64, Refused> {
    let at: i64 = timestamp
        .map(str::trim)
        .and_then(|t| t.parse().ok())
        .ok_or(Refused::BadTimestamp)?;
    let skew_ms = now_ms.saturating_sub(at);
    let max_ms = MAX_SKEW.as_millis() as i64;
    if skew_ms.unsigned_abs() > max_ms.unsigned_abs() {
        return Err(Refused::Stale {
            skew_s: skew_ms / 1_000,
        });
    }
    Ok(at)
}

/// Checks a request's v3 signature (the header's value, `signature`) over its method, the URL
/// HubSpot called, its raw body and its timestamp header.
pub fn verify(
    secret: &[u8],
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
    signature: Option<&str>,
) -> Result<(), Refused> {
    let signature = signature.ok_or(Refused::MissingSignature)?;
    // A value that is not base64 cannot match; it takes the same path as a wrong one.
    let given = STANDARD.decode(signature.trim()).unwrap_or_default();
    let expected = mac(secret, method, uri, body, timestamp);
    if constant_time_eq(&given, &expected) {
        Ok(())
    } else {
        Err(Refused::Mismatch)
    }
}

/// Whether `a` equals `b`, in a time that depends on their lengths only, not on where they
/// differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    !a.is_empty() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"app-client-secret-0123";
    const URI: &str = "https://hooks.example.com/hubspot/webhooks";
    const BODY: &[u8] = br#"[{"eventId":1,"portalId":62515,"objectId":123,"subscriptionType":"contact.propertyChange","propertyName":"firstname","propertyValue":"Ada","occurredAt":1765000000000}]"#;
    const AT: &str = "1765000000000";

    /// The signature worked out independently of [`sign`]: the message concatenated by hand,
    /// HMAC-SHA256 from the crates, base64 by hand.
    fn independent(secret: &[u8], message: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
        mac.update(message);
        STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signs_method_uri_body_and_timestamp_in_that_order() {
        let mut message = b"POST".to_vec();
        message.extend_from_slice(URI.as_bytes());
        message.extend_from_slice(BODY);
        message.extend_from_slice(AT.as_bytes());
        let expected = independent(SECRET, &message);
        assert_eq!(sign(SECRET, "POST", URI, BODY, AT), expected);
        assert_eq!(expected.len(), 44, "base64 of 32 bytes");
        assert_eq!(
            verify(SECRET, "POST", URI, BODY, AT, Some(&expected)),
            Ok(())
        );
    }

    #[test]
    fn a_known_vector_of_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let signed = sign(b"Jefe", "what do ", "ya want ", b"for nothing", "?");
        let hex: String = STANDARD
            .decode(signed)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// What is signed: secret, method, URI, body, timestamp.
    type Signed<'a> = (&'a [u8], &'a str, &'a str, &'a [u8], &'a str);

    #[test]
    fn any_change_to_what_is_signed_is_refused() {
        let good = sign(SECRET, "POST", URI, BODY, AT);
        let cases: [Signed<'_>; 5] = [
            (b"another-secret", "POST", URI, BODY, AT),
            (SECRET, "GET", URI, BODY, AT),
            (
                SECRET,
                "POST",
                "http://hooks.example.com/hubspot/webhooks",
                BODY,
                AT,
            ),
            (SECRET, "POST", URI, b"[]", AT),
            (SECRET, "POST", URI, BODY, "1765000000001"),
        ];
        for (secret, method, uri, body, at) in cases {
            assert_eq!(
                verify(secret, method, uri, body, at, Some(&good)),
                Err(Refused::Mismatch),
                "{method} {uri} {at}"
            );
        }
        assert_eq!(
            verify(SECRET, "POST", URI, BODY, AT, None),
            Err(Refused::MissingSignature)
        );
        for forged in ["", "not base64!", "AAAA", &good[..good.len() - 4]] {
            assert_eq!(
                verify(SECRET, "POST", URI, BODY, AT, Some(forged)),
                Err(Refused::Mismatch),
                "{forged:?}"
            );
        }
    }

    #[test]
    fn timestamps_older_or_newer_than_300_s_are_refused() {
        let now = 1_765_000_000_000;
        assert_eq!(check_timestamp(Some("1765000000000"), now), Ok(now));
        assert_eq!(
            check_timestamp(Some(&(now - 300_000).to_string()), now),
            Ok(now - 300_000)
        );
        assert_eq!(
            check_timestamp(Some(&(now + 300_000).to_string()), now),
            Ok(now + 300_000)
        );
        assert_eq!(
            check_timestamp(Some(&(now - 300_001).to_string()), now),
            Err(Refused::Stale { skew_s: 300 })
        );
        assert_eq!(
            check_timestamp(Some(&(now + 301_000).to_string()), now),
            Err(Refused::Stale { skew_s: -301 })
        );
        for bad in [None, Some(""), Some("yesterday"), Some("1.7e12")] {
            assert_eq!(
                check_timestamp(bad, now),
                Err(Refused::BadTimestamp),
                "{bad:?}"
            );
        }
        // Seconds instead of milliseconds read as 1970: far too old.
        assert!(matches!(
            check_timestamp(Some("1765000000"), now),
            Err(Refused::Stale { .. })
        ));
    }

    #[test]
    fn the_uri_is_signed_with_hubspots_escapes_decoded() {
        assert_eq!(signed_form(URI), URI);
        assert_eq!(
            signed_form("https://h.example.com/hooks?next=%2Fa%3Ab%40c%2a%3b&q=%20%25x%"),
            "https://h.example.com/hooks?next=/a:b@c*;&q=%20%25x%"
        );
        assert_eq!(signed_form("%28%29%21%24%27%2C%3F"), "()!$',?");
        assert_eq!(signed_form("%3"), "%3");
    }

    #[test]
    fn constant_time_compare_is_equality() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abcdef", b"bbcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcde"));
        assert!(!constant_time_eq(b"abcde", b"abcdef"));
        assert!(
            !constant_time_eq(b"", b""),
            "an empty signature never matches"
        );
    }
}
