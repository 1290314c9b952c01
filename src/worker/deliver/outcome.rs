//! What a delivery that did not succeed means for its job: the errors a delivery meets, the
//! job outcome each becomes ([`outcome`], the one mapping from upstream errors to job outcomes)
//! and the failure codes a job can carry.

use std::time::Duration;

use serde_json::Value;

use crate::upstream::UpstreamError;

/// Why a delivery did not succeed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The job's stored payload is not a valid operation (a record written by an incompatible
    /// version, or edited by hand): no call was made, and none ever can be.
    #[error("the job's stored payload could not be read: {0}")]
    UnreadablePayload(String),
    /// Not a failure: Puhuri is still working on what the job asked for (an order waiting for a
    /// review or being processed). The job is looked at again after `after`, `progress` kept
    /// as its result (see `allocations`).
    #[error("Puhuri is still working on it")]
    Following { progress: Value, after: Duration },
    /// A site's event endpoint did not take the event: no answer, or an answer other than 2xx.
    /// Always retried (the Standard Webhooks way: a receiver answers 2xx once it has the event).
    #[error("{message}")]
    Endpoint {
        status: Option<u16>,
        message: String,
        retry_after: Option<Duration>,
    },
}

/// What a failed delivery means for its job: the one mapping from upstream errors to job outcomes.
/// `code` is the job's `failure_code` (one of the constants below), `error` its `last_error`.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Try again later, no sooner than `retry_after` when Puhuri sent one.
    Retry {
        status: Option<u16>,
        code: &'static str,
        error: String,
        retry_after: Option<std::time::Duration>,
    },
    /// Stop now: trying again cannot help.
    Fail {
        status: Option<u16>,
        code: &'static str,
        error: String,
    },
    /// Not finished yet: look again after `after`, keeping `progress` (no attempt is used).
    Follow { progress: Value, after: Duration },
}

/// Failure code: Puhuri did not accept the token of the job's Puhuri identity (401).
/// `last_error` starts with it too, and names the identity.
pub const UPSTREAM_UNAUTHORIZED: &str = "upstream_unauthorized";
/// Failure code: Puhuri denied the token of the job's Puhuri identity this action (403).
/// `last_error` starts with it too, and names the identity.
pub const UPSTREAM_FORBIDDEN: &str = "upstream_forbidden";
/// Failure code: Puhuri could not be reached, did not answer in time, or answered 5xx or 408
/// (transient: retried).
pub const UPSTREAM_UNAVAILABLE: &str = "upstream_unavailable";
/// Failure code: Puhuri answered 429 (transient: retried after its `Retry-After`).
pub const UPSTREAM_THROTTLED: &str = "upstream_throttled";
/// Failure code: a 2xx answer the gateway could not read (retried: every operation is
/// idempotent).
pub const UPSTREAM_UNREADABLE: &str = "upstream_unreadable";
/// Failure code: Puhuri has no such object (404).
pub const UPSTREAM_NOT_FOUND: &str = "upstream_not_found";
/// Failure code: the object is not in a state that allows the action (409), and is not already
/// where the action leads.
pub const UPSTREAM_CONFLICT: &str = "upstream_conflict";
/// Failure code: Puhuri refused the request with another 4xx (400, 405, ...): Waldur's message is
/// in `last_error`.
pub const UPSTREAM_REFUSED: &str = "upstream_refused";
/// Failure code: the job's stored payload could not be read; no call was made.
pub const PAYLOAD_UNREADABLE: &str = "payload_unreadable";
/// Failure code: a site's event endpoint could not be reached, did not answer in time, or answered
/// other than 2xx (retried).
pub const ENDPOINT_UNAVAILABLE: &str = "endpoint_unavailable";
/// Failure code: the worker delivering the job stopped renewing its lease (it died or hung); the
/// job is delivered again. Set by the store, not by [`outcome`].
pub use crate::queue::LEASE_EXPIRED;

/// Every failure code a job can carry, for documentation and tests.
pub const FAILURE_CODES: [&str; 11] = [
    UPSTREAM_UNAUTHORIZED,
    UPSTREAM_FORBIDDEN,
    UPSTREAM_UNAVAILABLE,
    UPSTREAM_THROTTLED,
    UPSTREAM_UNREADABLE,
    UPSTREAM_NOT_FOUND,
    UPSTREAM_CONFLICT,
    UPSTREAM_REFUSED,
    PAYLOAD_UNREADABLE,
    ENDPOINT_UNAVAILABLE,
    LEASE_EXPIRED,
];

/// The job outcome of a failed delivery, decided on the error's kind.
pub fn outcome(error: DeliveryError) -> Outcome {
    use crate::upstream::UpstreamError as U;
    let status = match &error {
        DeliveryError::Upstream(e) => e.status(),
        DeliveryError::UnreadablePayload(_) => None,
        DeliveryError::Endpoint { status, .. } => *status,
        DeliveryError::Following { .. } => None,
    };
    match error {
        DeliveryError::Following { progress, after } => Outcome::Follow { progress, after },
        DeliveryError::Upstream(U::Transient {
            cause,
            message,
            retry_after,
        }) => Outcome::Retry {
            status,
            code: if cause == crate::upstream::TransientCause::Status(429) {
                UPSTREAM_THROTTLED
            } else {
                UPSTREAM_UNAVAILABLE
            },
            error: message,
            retry_after,
        },
        // A 2xx the gateway cannot read: the call may or may not have taken effect, and every
        // operation is idempotent, so it is delivered again.
        DeliveryError::Upstream(U::Malformed { message, .. }) => Outcome::Retry {
            status,
            code: UPSTREAM_UNREADABLE,
            error: format!("Puhuri's answer could not be read: {message}"),
            retry_after: None,
        },
        DeliveryError::Upstream(U::Unauthorized { message, identity }) => {
            let token = crate::upstream::error::token_of(&identity);
            tracing::error!(
                identity,
                "a job failed: Puhuri did not accept {token} (401)"
            );
            Outcome::Fail {
                status,
                code: UPSTREAM_UNAUTHORIZED,
                error: format!(
                    "{UPSTREAM_UNAUTHORIZED}: Puhuri did not accept {token} (a configuration \
                     problem of the gateway, not of the request): {message}"
                ),
            }
        }
        DeliveryError::Upstream(U::Forbidden { message, identity }) => {
            let token = crate::upstream::error::token_of(&identity);
            tracing::error!(
                identity,
                "a job failed: Puhuri denied {token} this action (403)"
            );
            Outcome::Fail {
                status,
                code: UPSTREAM_FORBIDDEN,
                error: format!(
                    "{UPSTREAM_FORBIDDEN}: Puhuri denied {token} this action (a configuration \
                     problem of the gateway, not of the request): {message}"
                ),
            }
        }
        DeliveryError::Upstream(U::NotFound { message }) => Outcome::Fail {
            status,
            code: UPSTREAM_NOT_FOUND,
            error: message,
        },
        DeliveryError::Upstream(U::Conflict { message }) => Outcome::Fail {
            status,
            code: UPSTREAM_CONFLICT,
            error: message,
        },
        DeliveryError::Upstream(U::Refused { message, .. }) => Outcome::Fail {
            status,
            code: UPSTREAM_REFUSED,
            error: message,
        },
        DeliveryError::Endpoint {
            message,
            retry_after,
            ..
        } => Outcome::Retry {
            status,
            code: ENDPOINT_UNAVAILABLE,
            error: message,
            retry_after,
        },
        DeliveryError::UnreadablePayload(message) => Outcome::Fail {
            status: None,
            code: PAYLOAD_UNREADABLE,
            error: format!("the job's stored payload could not be read: {message}"),
        },
    }
}
