//! Logging: `tracing` to stdout, human-readable or JSON lines, filtered by `log.level`.
//!
//! Spans carry the request id and the calling site; secrets never reach a log line because they
//! are held in types that cannot be formatted.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. A second call (tests) is a no-op.
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match log.format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Human => builder.with_target(false).try_init(),
    };
}

/// The Prometheus metric families the gateway records, and one function per event so every call
/// site uses the same names, labels and units.
///
/// Labels take values from bounded sets only: route patterns (never raw paths), HTTP methods,
/// status classes, operation names, job states, token-rejection reasons. No token, secret, site
/// id, resource or job id is ever a label. Durations are seconds. `/metrics` renders them (see
/// `api::metrics`); the gauges read from the job store at scrape time are set there.
pub mod metrics {
    use std::time::Duration;

    use crate::error::{ApiError, TokenRejection};
    use crate::queue::JobState;

    /// Counter: site API requests, by `route` (the matched pattern, `unmatched` for none),
    /// `method` and `status_class` (`2xx`...`5xx`).
    pub const HTTP_REQUESTS: &str = "puhuri_gateway_http_requests_total";
    /// Histogram (seconds): site API request duration, by `route` and `method`.
    pub const HTTP_DURATION: &str = "puhuri_gateway_http_request_duration_seconds";
    /// Counter: jobs stored, by `operation` (an idempotent replay is not counted again).
    pub const JOBS_ACCEPTED: &str = "puhuri_gateway_jobs_accepted_total";
    /// Counter: pending jobs a newer job of the same coalescing key replaced before delivery
    /// (a usage report's totals superseded by the next report of the month), by `operation`.
    pub const JOBS_SUPERSEDED: &str = "puhuri_gateway_jobs_superseded_total";
    /// Counter: jobs that reached a final state through delivery, by `operation` and `outcome`
    /// (`succeeded`, `failed`, `dead`).
    pub const JOBS_FINISHED: &str = "puhuri_gateway_jobs_finished_total";
    /// Gauge: jobs in the store per `state` (the same on every replica sharing a store).
    pub const JOBS: &str = "puhuri_gateway_jobs";
    /// Gauge (seconds): how long the earliest-due deliverable job has been due.
    pub const QUEUE_OLDEST_READY_AGE: &str = "puhuri_gateway_queue_oldest_ready_age_seconds";
    /// Counter: delivery attempts, by `operation`, `outcome` (the state the attempt left the job
    /// in: `succeeded`, `failed`, `retrying`, `dead`) and `status_class` of Puhuri's answer:
    /// `2xx`, `3xx`, `401`, `403`, `4xx` (other), `5xx`, or `none` (timeout, connection error).
    pub const DELIVERY_ATTEMPTS: &str = "puhuri_gateway_delivery_attempts_total";
    /// Histogram (seconds): time one delivery attempt spent calling Puhuri, by `operation`.
    pub const UPSTREAM_DURATION: &str = "puhuri_gateway_upstream_request_duration_seconds";
    /// Histogram (seconds): from a job's acceptance to its successful delivery, by `operation`.
    pub const DELIVERY_LATENCY: &str = "puhuri_gateway_job_delivery_latency_seconds";
    /// Counter: jobs put back in line because their worker stopped renewing its lease.
    pub const LEASE_RECLAIMS: &str = "puhuri_gateway_lease_reclaims_total";
    /// Counter: site requests refused at authentication, by `reason` (`missing_token`, or the
    /// token rule that failed, e.g. `expired`, `bad_signature`).
    pub const AUTH_FAILURES: &str = "puhuri_gateway_auth_failures_total";
    /// Counter: job store calls that failed (unreachable or unreadable), by `source` (`api`,
    /// `worker`).
    pub const STORE_ERRORS: &str = "puhuri_gateway_store_errors_total";
    /// Gauge: 1 when this process's job store answered at the last scrape, else 0.
    pub const STORE_UP: &str = "puhuri_gateway_store_up";
    /// Gauge: 1 while this process's delivery workers run.
    pub const WORKERS_RUNNING: &str = "puhuri_gateway_workers_running";
    /// Counter: delivery attempts of events to the sites' endpoints, by `type` (the event type)
    /// and `outcome` (the state the attempt left the delivery in: `succeeded`, `retrying`,
    /// `dead`).
    pub const EVENT_ATTEMPTS: &str = "puhuri_gateway_event_delivery_attempts_total";
    /// Counter: the watcher's polls of Puhuri by this process, by `outcome` (`ok`, `failed`).
    pub const WATCHER_POLLS: &str = "puhuri_gateway_watcher_polls_total";
    /// Counter: the watcher's calls to Puhuri (pages and single orders).
    pub const WATCHER_CALLS: &str = "puhuri_gateway_watcher_upstream_calls_total";

    /// Histogram buckets (seconds) for request, call and delivery durations: 1 ms to 1 day, so
    /// the same families cover an API call and a job that waited out a Puhuri outage.
    pub const DURATION_BUCKETS: &[f64] = &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        300.0, 900.0, 3600.0, 21600.0, 86400.0,
    ];

    /// `2xx`...`5xx` for an HTTP status.
    pub fn status_class(status: u16) -> &'static str {
        match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        }
    }

    /// Puhuri's answer to an attempt as a label: 401 and 403 are kept apart (the service
    /// provider's token is refused), other statuses by class, `none` without an answer.
    pub fn upstream_status_class(status: Option<u16>) -> &'static str {
        match status {
            None => "none",
            Some(401) => "401",
            Some(403) => "403",
            Some(s) => status_class(s),
        }
    }

    /// One site API request answered: `route` is the matched pattern (`/v1/usage`) or
    /// `unmatched`, `method` the request line's method.
    pub fn http_request(route: String, method: &str, status: u16, elapsed: Duration) {
        // The method is the client's text: any token is a valid HTTP method, so only the
        // standard ones (RFC 9110 §9) become label values, keeping the series bounded.
        let method: &'static str = match method {
            "GET" => "GET",
            "HEAD" => "HEAD",
            "POST" => "POST",
            "PUT" => "PUT",
            "DELETE" => "DELETE",
            "CONNECT" => "CONNECT",
            "OPTIONS" => "OPTIONS",
            "TRACE" => "TRACE",
            "PATCH" => "PATCH",
            _ => "other",
        };
        metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status_class" => status_class(status))
            .increment(1);
        metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method)
            .record(elapsed.as_secs_f64());
    }

    /// One delivery attempt of an event (`event_type`, a bounded set) was stored, leaving its
    /// delivery in `state`.
    /// A job stored by the site API, and the pending jobs it superseded.
    pub fn job_accepted(operation: &'static str, superseded: u32) {
        metrics::counter!(JOBS_ACCEPTED, "operation" => operation).increment(1);
        if superseded > 0 {
            metrics::counter!(JOBS_SUPERSEDED, "operation" => operation)
                .increment(u64::from(superseded));
        }
    }

    pub fn event_attempt(event_type: &str, state: JobState) {
        metrics::counter!(EVENT_ATTEMPTS, "type" => event_type.to_owned(), "outcome" => state.as_str())
            .increment(1);
    }

    /// One poll of the watcher ended (`ok`), or failed; `calls` to Puhuri were made.
    pub fn watcher_poll(ok: bool, calls: u64) {
        metrics::counter!(WATCHER_POLLS, "outcome" => if ok { "ok" } else { "failed" })
            .increment(1);
        metrics::counter!(WATCHER_CALLS).increment(calls);
    }

    /// One delivery attempt spent `elapsed` calling Puhuri.
    pub fn upstream_call(operation: &str, elapsed: Duration) {
        metrics::histogram!(UPSTREAM_DURATION, "operation" => operation.to_owned())
            .record(elapsed.as_secs_f64());
    }

    /// One delivery attempt's outcome was stored, leaving the job in `state`.
    pub fn delivery_attempt(operation: &str, state: JobState, status: Option<u16>) {
        let op = operation.to_owned();
        metrics::counter!(DELIVERY_ATTEMPTS, "operation" => op.clone(), "outcome" => state.as_str(), "status_class" => upstream_status_class(status))
            .increment(1);
        if state.is_terminal() {
            metrics::counter!(JOBS_FINISHED, "operation" => op, "outcome" => state.as_str())
                .increment(1);
        }
    }

    /// A job was delivered `since_accepted` after it was stored.
    pub fn delivered(operation: &str, since_accepted: Duration) {
        metrics::histogram!(DELIVERY_LATENCY, "operation" => operation.to_owned())
            .record(since_accepted.as_secs_f64());
    }

    /// `n` jobs put back in line after their lease expired.
    pub fn lease_reclaims(n: u32) {
        metrics::counter!(LEASE_RECLAIMS).increment(u64::from(n));
    }

    /// A site request refused at authentication: counted by the rule that failed (a fixed set,
    /// never anything from the token). Other errors are not authentication failures.
    pub fn auth_failure(error: &ApiError) {
        let reason = match error {
            ApiError::MissingToken => "missing_token",
            ApiError::InvalidToken(rejection) => match rejection {
                TokenRejection::MalformedHeader => "malformed_header",
                TokenRejection::Malformed => "malformed",
                TokenRejection::MissingKid => "missing_kid",
                TokenRejection::UnknownKey => "unknown_key",
                TokenRejection::AlgorithmMismatch => "algorithm_mismatch",
                TokenRejection::BadSignature => "bad_signature",
                TokenRejection::Expired => "expired",
                TokenRejection::NotYetValid => "not_yet_valid",
                TokenRejection::IssuedInFuture => "issued_in_future",
                TokenRejection::WrongAudience => "wrong_audience",
                TokenRejection::WrongIssuer => "wrong_issuer",
                TokenRejection::MissingClaim => "missing_claim",
                TokenRejection::InvalidClaims => "invalid_claims",
                TokenRejection::LifetimeTooLong => "lifetime_too_long",
            },
            _ => return,
        };
        metrics::counter!(AUTH_FAILURES, "reason" => reason).increment(1);
    }

    /// A job store call failed (`source`: `api` or `worker`).
    pub fn store_error(source: &'static str) {
        metrics::counter!(STORE_ERRORS, "source" => source).increment(1);
    }
}
