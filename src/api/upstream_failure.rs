//! The one mapping from a failed call to Puhuri to the API error a site receives, for reads and
//! for the checks made before a write is queued. Decided on the error's kind
//! ([`crate::upstream::UpstreamError`]), never on its text; Puhuri's own message goes to the log
//! only (it may name objects the site cannot see).
//!
//! | upstream | read | check before queueing |
//! | --- | --- | --- |
//! | timeout | 504 `upstream_error` | 503 `unavailable` |
//! | 5xx, 429, connection | 503 `unavailable` with `Retry-After` | 503 `unavailable` |
//! | 401, 403 (a refused token: the error names its identity) | 502 `upstream_error`, saying so | the same |
//! | 404, 409, other 4xx | 502 `upstream_error` | the same |
//! | an unreadable 2xx answer | 502 `upstream_error` | the same |
//!
//! Handlers that expect a 404 (an object the site named that does not exist) check
//! [`UpstreamError::is_not_found`] before calling these.

use actix_web::http::StatusCode;

use crate::error::ApiError;
use crate::upstream::{TransientCause, UpstreamError};

/// What the failed call was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Forwarding a read.
    Read,
    /// A check before a write is queued (nothing is stored when it fails).
    Check,
}

/// The API error for a failed call to Puhuri.
pub fn upstream_failure(e: UpstreamError, purpose: Purpose) -> ApiError {
    let status = e.status();
    let message = e.message().to_string();
    match e {
        UpstreamError::Transient {
            cause, retry_after, ..
        } => {
            tracing::warn!(?status, %message, ?purpose, "Puhuri could not answer");
            if cause == TransientCause::Timeout && purpose == Purpose::Read {
                return ApiError::Upstream {
                    status: StatusCode::GATEWAY_TIMEOUT,
                    detail: "Puhuri did not answer in time; retry later".into(),
                };
            }
            let floor = match purpose {
                Purpose::Read => 5,
                Purpose::Check => 10,
            };
            let retry_after = retry_after
                .map(|d| d.as_secs().clamp(floor, 3600) as u32)
                .unwrap_or(floor as u32);
            ApiError::Unavailable {
                detail: match purpose {
                    Purpose::Read => "Puhuri cannot be reached or is failing; retry later".into(),
                    Purpose::Check => "Puhuri cannot be reached to check this request, and the \
                                       gateway has no cached answer; nothing was stored, retry \
                                       later"
                        .into(),
                },
                retry_after,
            }
        }
        UpstreamError::Unauthorized { identity, .. }
        | UpstreamError::Forbidden { identity, .. } => {
            // Logged at error level by the client already; this is the site's answer. /readyz
            // shows the service provider's token only.
            let status = status.unwrap_or_default();
            let detail = if identity == crate::upstream::error::SP_IDENTITY {
                format!(
                    "Puhuri did not accept the gateway's service-provider token ({status}); this \
                     is a configuration problem of the gateway, see /readyz"
                )
            } else {
                format!(
                    "Puhuri did not accept the gateway's token of the Puhuri identity \
                     `{identity}` ({status}); this is a configuration problem of the gateway \
                     (its operator sees it in the log and in \
                     puhuri_gateway_upstream_token_refused_total{{identity=\"{identity}\"}})"
                )
            };
            ApiError::Upstream {
                status: StatusCode::BAD_GATEWAY,
                detail,
            }
        }
        UpstreamError::Malformed { .. } => {
            tracing::warn!(?status, %message, "Puhuri's answer could not be read");
            ApiError::Upstream {
                status: StatusCode::BAD_GATEWAY,
                detail: "Puhuri's answer could not be read".into(),
            }
        }
        UpstreamError::NotFound { .. }
        | UpstreamError::Conflict { .. }
        | UpstreamError::Refused { .. } => {
            tracing::warn!(?status, %message, ?purpose, "Puhuri refused a call");
            let what = match purpose {
                Purpose::Read => "read",
                Purpose::Check => "lookup",
            };
            ApiError::Upstream {
                status: StatusCode::BAD_GATEWAY,
                detail: format!("Puhuri refused the {what} ({})", status.unwrap_or_default()),
            }
        }
    }
}
