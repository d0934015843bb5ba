//! HubSpot's webhook signature, version 3: pure, no clock.
//!
//! ```text
//! X-HubSpot-Request-Timestamp: 1767225600123
//! X-HubSpot-Signature-v3: base64(HMAC-SHA256(key = client secret,
//!     message = "POST" + signed URL + raw body + "1767225600123"))
//! ```
//!
//! The signed URL is the configured `target_url` with the escapes of [`DECODED`] decoded, as
//! HubSpot's validation guide tells receivers to decode them before checking: for a URL
//! without any of them (the usual case), exactly the URL as configured.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The escapes HubSpot decodes in the URL it signs; every other escape stays as it is.
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

/// The URL as it is signed: `url` with the escapes of [`DECODED`] decoded.
pub fn signed_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let decoded = rest.get(at + 1..at + 3).and_then(|hex| {
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

/// `X-HubSpot-Signature-v3` of a POST of `body` to `url` at `timestamp_ms`.
pub fn sign(client_secret: &str, url: &str, body: &[u8], timestamp_ms: i64) -> String {
    // HMAC takes keys of any length: the error arm cannot happen.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(client_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(b"POST");
    mac.update(signed_url(url).as_bytes());
    mac.update(body);
    mac.update(timestamp_ms.to_string().as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "sandbox-webhook-secret";
    const BODY: &[u8] = br#"[{"eventId":1001,"subscriptionId":2001,"portalId":48151623,"appId":3141592,"occurredAt":1767225600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":10001,"changeFlag":"CREATED","changeSource":"INTEGRATION","sourceId":"3141592"}]"#;
    const AT: i64 = 1_767_225_600_123;

    /// Computed apart from this code, with Python's standard library:
    /// `base64.b64encode(hmac.new(secret, b"POST" + url + body + ts, hashlib.sha256).digest())`.
    #[test]
    fn signs_as_an_independent_hmac_computes_it() {
        assert_eq!(
            sign(
                SECRET,
                "https://hooks.example.com/hubspot/webhooks?team=acme",
                BODY,
                AT
            ),
            "66DjATRQJKIGyeHt6pFljmQHGgVy5F2rsW9Gim2iO3g="
        );
        // The same with `/` and `:` escaped in the configured URL: signed decoded.
        assert_eq!(
            sign(
                SECRET,
                "https://hooks.example.com/hubspot/webhooks?next=%2Fa%3ab",
                BODY,
                AT
            ),
            "gTUUdjUXdtmLB2IiqtzrRIjQplAZKI2lSpqPKc6OtZo="
        );
    }

    #[test]
    fn only_hubspots_escapes_are_decoded() {
        assert_eq!(
            signed_url("http://h/a?b=%20%25%2C%2a"),
            "http://h/a?b=%20%25,*"
        );
        assert_eq!(signed_url("http://h/%"), "http://h/%");
        assert_eq!(signed_url("http://h/%3"), "http://h/%3");
    }
}
