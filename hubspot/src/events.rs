//! What the client reports: each event logs and counts at once. Labels stay low-cardinality:
//! the endpoint template, the object type, a status class, an error class.

use std::time::Duration;

use metrics::{counter, histogram};
use tracing::{debug, info, warn};

use super::{Endpoint, Failure};

/// A waited for more than this is worth a line at info level (the daily quota, a long 429).
const LONG_WAIT: Duration = Duration::from_secs(30);

/// `2xx`, `4xx`, `429`, `5xx`, or `none` when no answer came.
pub(super) fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(429) => "429",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None => "none",
    }
}

/// One HTTP request answered (or not).
pub(super) struct RequestCompleted {
    pub endpoint: Endpoint,
    pub object: &'static str,
    pub status: Option<u16>,
    pub elapsed: Duration,
    pub attempt: u32,
}

impl RequestCompleted {
    pub fn emit(&self) {
        let endpoint = self.endpoint.template();
        let status = status_class(self.status);
        debug!(
            endpoint,
            object = self.object,
            status = self.status,
            attempt = self.attempt,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "hubspot request completed"
        );
        counter!(
            "hubsync_hubspot_requests_total",
            "endpoint" => endpoint,
            "object" => self.object,
            "status" => status
        )
        .increment(1);
        histogram!(
            "hubsync_hubspot_request_duration_seconds",
            "endpoint" => endpoint
        )
        .record(self.elapsed.as_secs_f64());
    }
}

/// A request that waited for a slot in the budget.
pub(super) struct BudgetWaited {
    pub endpoint: Endpoint,
    pub waited: Duration,
}

impl BudgetWaited {
    pub fn emit(&self) {
        let endpoint = self.endpoint.template();
        let waited_ms = self.waited.as_millis() as u64;
        if self.waited >= LONG_WAIT {
            info!(endpoint, waited_ms, "waited for the hubspot request budget");
        } else {
            debug!(endpoint, waited_ms, "waited for the hubspot request budget");
        }
        histogram!(
            "hubsync_hubspot_budget_wait_seconds",
            "endpoint" => endpoint
        )
        .record(self.waited.as_secs_f64());
    }
}

/// A failed request that will be sent again.
pub(super) struct RetryScheduled<'a> {
    pub endpoint: Endpoint,
    pub failure: &'a Failure,
    pub delay: Duration,
}

impl RetryScheduled<'_> {
    pub fn emit(&self) {
        let endpoint = self.endpoint.template();
        let reason = self.failure.class.label();
        warn!(
            endpoint,
            reason,
            status = self.failure.status,
            attempt = self.failure.attempts,
            delay_ms = self.delay.as_millis() as u64,
            error = %self.failure.message,
            "hubspot request failed, retrying"
        );
        counter!(
            "hubsync_hubspot_retries_total",
            "endpoint" => endpoint,
            "reason" => reason
        )
        .increment(1);
    }
}

/// A call handed back failed.
pub(super) struct CallFailed<'a> {
    pub endpoint: Endpoint,
    pub failure: &'a Failure,
}

impl CallFailed<'_> {
    pub fn emit(&self) {
        let endpoint = self.endpoint.template();
        let class = self.failure.class.label();
        warn!(
            endpoint,
            class,
            status = self.failure.status,
            attempts = self.failure.attempts,
            correlation_id = self.failure.correlation_id.as_deref(),
            error = %self.failure.message,
            "hubspot call failed"
        );
        counter!(
            "hubsync_hubspot_failures_total",
            "endpoint" => endpoint,
            "class" => class
        )
        .increment(1);
    }
}
