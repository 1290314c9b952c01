//! Per-request context: a request id, a span with the calling site, and problem+json for every
//! error response, including the ones actix produces itself (unknown routes, wrong methods).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError};
use tracing::Instrument;

use crate::error::{ApiError, PROBLEM_JSON};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller-supplied request id is kept if it is short and plain; otherwise one is generated.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id(&req);
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.path(),
        request_id = %id,
        site = tracing::field::Empty,
    );
    req.extensions_mut().insert(span.clone());
    let started = Instant::now();
    let response = next.call(req).instrument(span.clone()).await?;
    let mut response = problem_for_bare_errors(response.map_into_boxed_body());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let route = response.request().match_pattern();
    crate::telemetry::metrics::http_request(
        route.as_deref().unwrap_or("unmatched"),
        response.request().method().as_str(),
        status,
        elapsed,
    );
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, latency_ms, "request finished");
        } else {
            tracing::info!(status, latency_ms, "request finished");
        }
    });
    Ok(response)
}

/// Error responses that are not problem documents or JSON yet (actix's own 404/405, a panic's
/// 500) are replaced by one, keeping the status.
fn problem_for_bare_errors(
    response: ServiceResponse<actix_web::body::BoxBody>,
) -> ServiceResponse<actix_web::body::BoxBody> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        // A handler's own JSON answer (the readiness document's 503) is kept as it is.
        .is_some_and(|v| v.starts_with(PROBLEM_JSON) || v.starts_with("application/json"));
    if is_problem {
        return response;
    }
    let path = response.request().path().to_string();
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound(format!("no route matches {path}")),
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::MethodNotAllowed(format!("{path} does not accept this method"))
        }
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: 0 },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("send the body as application/json".into())
        }
        s if s.is_client_error() => ApiError::InvalidJson("the request is not valid".into()),
        _ => ApiError::Internal(format!("unhandled {status} for {path}")),
    };
    let mut replacement = error.error_response();
    *replacement.status_mut() = status;
    response.into_response(replacement)
}
