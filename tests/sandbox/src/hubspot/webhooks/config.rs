//! What an app's webhook is: where HubSpot sends events, how it signs them, which changes it
//! sends, and how it misbehaves on purpose (duplicates, reordering). Set with
//! `PUT /__admin/webhooks`; every field but `app_id`, `target_url` and `client_secret` has a
//! default, all of them here.
//!
//! ```text
//! {"app_id": 3141592, "target_url": "http://127.0.0.1:9000/hooks", "client_secret": "s3cret"}
//!   -> every subscription type, 10 attempts, 50 ms backoff doubling up to 2 s, 5 s timeout,
//!      10 requests in flight per portal, no duplicates, no reordering, 4xx retried,
//!      changes gathered 20 ms before a request
//! ```

use serde::{Deserialize, Serialize};

/// Every subscription type HubSpot's v3 webhooks offer for the sandbox's object types.
pub const SUBSCRIPTION_TYPES: [&str; 19] = [
    "contact.creation",
    "contact.deletion",
    "contact.propertyChange",
    "contact.merge",
    "contact.restore",
    "contact.associationChange",
    "contact.privacyDeletion",
    "company.creation",
    "company.deletion",
    "company.propertyChange",
    "company.merge",
    "company.restore",
    "company.associationChange",
    "deal.creation",
    "deal.deletion",
    "deal.propertyChange",
    "deal.merge",
    "deal.restore",
    "deal.associationChange",
];

/// One app's webhook settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// The app whose installations (portals with a token of it) send events. Required.
    pub app_id: u64,
    /// Where events are POSTed. Required; `http://` or `https://`.
    pub target_url: String,
    /// The app's client secret, the key of `X-HubSpot-Signature-v3`. Required.
    pub client_secret: String,
    /// Subscription types to send (default: every one of [`SUBSCRIPTION_TYPES`]).
    pub subscriptions: Vec<String>,
    /// Attempts per request, the first included (HubSpot: 10).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff_ms: u64,
    /// The longest wait between two attempts (HubSpot spreads 10 attempts over 24 hours; the
    /// sandbox keeps them short for tests).
    pub retry_backoff_max_ms: u64,
    /// How long an attempt waits for an answer (HubSpot: 5 s).
    pub timeout_ms: u64,
    /// Requests in flight at once per portal (HubSpot: the app's `maxConcurrentRequests`, 10).
    pub max_concurrent: usize,
    /// Share of events (0..=1) sent a second time, in a later request, with the same eventId.
    pub duplicate_rate: f64,
    /// Shuffle the events gathered for a portal before they are cut into requests.
    pub reorder: bool,
    /// Whether a 4xx answer is retried like a 5xx (HubSpot's behaviour is not documented).
    pub retry_4xx: bool,
    /// How long changes gather before they are sent (a full request of 99 goes at once).
    pub batch_delay_ms: u64,
    /// Added to `X-HubSpot-Request-Timestamp` (wall-clock epoch ms): a negative value makes
    /// requests look old, to test a receiver's 300 s window.
    pub timestamp_skew_ms: i64,
    /// Seeds the random source behind duplicates and reordering.
    pub seed: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            app_id: 0,
            target_url: String::new(),
            client_secret: String::new(),
            subscriptions: SUBSCRIPTION_TYPES
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
            max_attempts: 10,
            retry_backoff_ms: 50,
            retry_backoff_max_ms: 2_000,
            timeout_ms: 5_000,
            max_concurrent: 10,
            duplicate_rate: 0.0,
            reorder: false,
            retry_4xx: true,
            batch_delay_ms: 20,
            timestamp_skew_ms: 0,
            seed: 0,
        }
    }
}

impl WebhookConfig {
    /// Refuses settings that cannot work, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.app_id == 0 {
            return Err("app_id is required: the id of the app whose webhook this is".into());
        }
        let scheme_ok =
            self.target_url.starts_with("http://") || self.target_url.starts_with("https://");
        if !scheme_ok || reqwest::Url::parse(&self.target_url).is_err() {
            return Err(format!(
                "target_url must be an http:// or https:// URL, got {:?}",
                self.target_url
            ));
        }
        if self.client_secret.is_empty() {
            return Err("client_secret is required: it is the key of the v3 signature".into());
        }
        if let Some(unknown) = self
            .subscriptions
            .iter()
            .find(|s| !SUBSCRIPTION_TYPES.contains(&s.as_str()))
        {
            return Err(format!(
                "subscription {unknown} is not one of {}",
                SUBSCRIPTION_TYPES.join(", ")
            ));
        }
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if self.max_concurrent == 0 {
            return Err("max_concurrent must be at least 1".into());
        }
        if self.timeout_ms == 0 {
            return Err("timeout_ms must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.duplicate_rate) {
            return Err(format!(
                "duplicate_rate must be between 0 and 1, got {}",
                self.duplicate_rate
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<WebhookConfig, String> {
        let config: WebhookConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        config.validate().map(|()| config)
    }

    #[test]
    fn three_fields_are_required_and_the_rest_default() {
        let config =
            parse(r#"{"app_id": 7, "target_url": "http://127.0.0.1:1/h", "client_secret": "s"}"#)
                .expect("valid");
        assert_eq!(config.subscriptions.len(), SUBSCRIPTION_TYPES.len());
        assert_eq!(config.max_attempts, 10);
        assert_eq!(config.timeout_ms, 5_000);
        assert_eq!(config.max_concurrent, 10);
        assert!(config.retry_4xx);
        assert!(parse(r#"{"target_url": "http://h/", "client_secret": "s"}"#).is_err());
        assert!(parse(r#"{"app_id": 7, "target_url": "ftp://h/", "client_secret": "s"}"#).is_err());
        assert!(parse(r#"{"app_id": 7, "target_url": "http://h/"}"#).is_err());
    }

    #[test]
    fn unknown_fields_subscriptions_and_rates_are_refused() {
        let base = r#""app_id": 7, "target_url": "http://h/", "client_secret": "s""#;
        assert!(parse(&format!("{{{base}, \"retries\": 3}}")).is_err());
        assert!(
            parse(&format!(
                "{{{base}, \"subscriptions\": [\"ticket.creation\"]}}"
            ))
            .is_err()
        );
        assert!(parse(&format!("{{{base}, \"duplicate_rate\": 1.5}}")).is_err());
        assert!(parse(&format!("{{{base}, \"max_concurrent\": 0}}")).is_err());
        assert!(parse(&format!("{{{base}, \"subscriptions\": [\"deal.merge\"]}}")).is_ok());
    }
}
