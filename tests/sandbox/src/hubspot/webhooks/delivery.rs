//! Sending one request of events, and deciding what to do when it fails. Deciding is pure
//! ([`Outcome::retryable`], [`backoff`]); [`attempt`] is the only code here that does I/O.
//!
//! ```text
//! 2xx                                   -> delivered
//! connection refused / reset, timeout   -> retried
//! 3xx, 5xx, 429                         -> retried
//! other 4xx                             -> retried when retry_4xx (the default), else given up
//! attempt max_attempts failed           -> given up
//! ```

use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::WebhookConfig;
use super::signature::sign;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Any answer, with its status.
    Answered(u16),
    /// No answer within `timeout_ms`.
    TimedOut,
    /// No connection, or it broke before an answer.
    Failed(String),
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        matches!(self, Outcome::Answered(status) if (200..300).contains(status))
    }

    /// Whether HubSpot tries the request again after this outcome.
    pub fn retryable(&self, retry_4xx: bool) -> bool {
        match self {
            Outcome::Answered(status) if (200..300).contains(status) => false,
            Outcome::Answered(429) => true,
            Outcome::Answered(status) if (400..500).contains(status) => retry_4xx,
            Outcome::Answered(_) | Outcome::TimedOut | Outcome::Failed(_) => true,
        }
    }
}

/// The wait after failed attempt `attempt` (0 for the first): `retry_backoff_ms` doubled per
/// attempt, at most `retry_backoff_max_ms`.
pub fn backoff(config: &WebhookConfig, attempt: u32) -> Duration {
    let factor = 1_u64.checked_shl(attempt.min(40)).unwrap_or(u64::MAX);
    let ms = config
        .retry_backoff_ms
        .saturating_mul(factor)
        .min(config.retry_backoff_max_ms);
    Duration::from_millis(ms)
}

/// One attempt as the admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub app_id: u64,
    pub portal_id: u64,
    /// Which request this is an attempt of (its attempts share it).
    pub request_id: u64,
    /// 0 for the first attempt, as the events' `attemptNumber`.
    pub attempt_number: u32,
    /// When it was sent (RFC 3339, ms).
    pub at: String,
    /// The `X-HubSpot-Request-Timestamp` sent (epoch ms).
    pub timestamp_ms: i64,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub events: usize,
    pub event_ids: Vec<u64>,
    /// `delivered`, `retrying` or `gave_up`.
    pub result: &'static str,
}

/// POSTs `body` once, signed, and says how it went.
pub async fn attempt(
    client: &reqwest::Client,
    config: &WebhookConfig,
    body: Vec<u8>,
    timestamp_ms: i64,
) -> (Outcome, Duration) {
    let signature = sign(
        &config.client_secret,
        &config.target_url,
        &body,
        timestamp_ms,
    );
    let started = Instant::now();
    let request = client
        .post(&config.target_url)
        .header("content-type", "application/json")
        .header("x-hubspot-request-timestamp", timestamp_ms.to_string())
        .header("x-hubspot-signature-v3", signature)
        .body(body);
    let exchange = async {
        let response = request.send().await?;
        let status = response.status().as_u16();
        // Read the answer to its end so the connection can be reused.
        response.bytes().await?;
        Ok::<u16, reqwest::Error>(status)
    };
    let outcome =
        match tokio::time::timeout(Duration::from_millis(config.timeout_ms), exchange).await {
            Err(_) => Outcome::TimedOut,
            Ok(Ok(status)) => Outcome::Answered(status),
            Ok(Err(error)) if error.is_timeout() => Outcome::TimedOut,
            Ok(Err(error)) => Outcome::Failed(error_chain(&error)),
        };
    (outcome, started.elapsed())
}

/// An error with its causes, `outer: inner: ...`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_retried() {
        assert!(!Outcome::Answered(200).retryable(true));
        assert!(!Outcome::Answered(204).retryable(false));
        assert!(Outcome::Answered(500).retryable(false));
        assert!(Outcome::Answered(503).retryable(false));
        assert!(Outcome::Answered(302).retryable(false));
        assert!(Outcome::Answered(429).retryable(false));
        assert!(Outcome::Answered(400).retryable(true));
        assert!(!Outcome::Answered(401).retryable(false));
        assert!(Outcome::TimedOut.retryable(false));
        assert!(Outcome::Failed("refused".into()).retryable(false));
        assert!(Outcome::Answered(200).delivered());
        assert!(!Outcome::Answered(404).delivered());
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let config = WebhookConfig {
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 1_000,
            ..WebhookConfig::default()
        };
        let waits: Vec<u64> = (0..6)
            .map(|a| backoff(&config, a).as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(backoff(&config, u32::MAX).as_millis(), 1_000);
    }
}
