//! The API's errors: RFC 9457 `application/problem+json` with a stable machine `code`.
//!
//! Every code the gateway can answer with is in [`ApiError::code`]; clients may match on it and it
//! never changes meaning. `detail` is written for a person. Internal causes are logged with the
//! request's span and replaced by a generic detail: nothing from a store, the upstream or a panic
//! reaches a client verbatim.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Scope;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Why a site token was refused (the authentication layer decides; the words are part of the
/// API's error vocabulary, so they live here). Every variant is a 401; the text is safe to send (it names the rule
/// that failed, never key material or token contents).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("the Authorization header must be `Bearer <token>`")]
    MalformedHeader,
    #[error("the token is not a well-formed signed JWT")]
    Malformed,
    #[error("the token header has no `kid`")]
    MissingKid,
    #[error("the token's `kid` names no key known to this gateway")]
    UnknownKey,
    #[error("the token's `alg` is not the algorithm its key is pinned to")]
    AlgorithmMismatch,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (`nbf` is in the future)")]
    NotYetValid,
    #[error("the token was issued in the future (`iat` is later than now)")]
    IssuedInFuture,
    #[error("the token's `aud` is not this gateway's id")]
    WrongAudience,
    #[error("the token's `iss` is not the site its key belongs to")]
    WrongIssuer,
    #[error("the token lacks a required claim (`exp`, `aud` and `iss` are required)")]
    MissingClaim,
    #[error("the token's claims are malformed")]
    InvalidClaims,
    #[error("the token's lifetime is longer than this gateway allows")]
    LifetimeTooLong,
}

/// One field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// A JSON path into the request, e.g. `usages.cpu_k_hours`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The problem document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:puhuri-gateway:problem:validation_failed",
    "title": "The request is not valid",
    "status": 422,
    "code": "validation_failed",
    "detail": "1 field is not valid",
    "errors": [{"field": "usages.cpu_k_hours", "message": "must not be negative"}]
}))]
pub struct Problem {
    /// `urn:puhuri-gateway:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: &'static str,
    pub status: u16,
    /// Stable machine-readable code.
    pub code: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no bearer token")]
    MissingToken,
    #[error("{0}")]
    InvalidToken(TokenRejection),
    #[error("missing scope {0}")]
    MissingScope(Scope),
    /// The object is outside the site's offerings, or does not exist: the two are not told apart.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request's length is stated two ways (`Transfer-Encoding` with `Content-Length`, or
    /// `Transfer-Encoding` in HTTP/1.0): RFC 9112 §6.1 and §6.3 call its framing faulty; the
    /// answer closes the connection.
    #[error(
        "the request states its length twice (Transfer-Encoding with Content-Length, or \
         Transfer-Encoding in HTTP/1.0); send exactly one"
    )]
    AmbiguousFraming,
    /// The request breaks HTTP's own rules in a way that is not about framing: no `Host` (or
    /// two), a header that may appear once given twice (RFC 9110 §5.3), a query parameter given
    /// twice where it takes one value.
    #[error("{0}")]
    MalformedRequest(String),
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("the Idempotency-Key was used before with a different request")]
    IdempotencyConflict,
    #[error("{0}")]
    Conflict(String),
    /// A dependency (the job store) cannot take work now; the client should retry.
    #[error("{detail}")]
    Unavailable { detail: String, retry_after: u32 },
    /// The job store was sent the write but did not answer (a Redis timeout after sending): the
    /// job may or may not be stored. A retry with the same `Idempotency-Key` finds it if it was,
    /// and stores it once if it was not.
    #[error(
        "the job store was sent the write but gave no definite answer (no answer in time, or a \
         commit that failed), so whether the job was stored is unknown; retry with the same \
         Idempotency-Key: the retry finds the job if it was stored and stores it once if it was \
         not"
    )]
    OutcomeUnknown { retry_after: u32 },
    /// A list the gateway would have to read too much of Puhuri to answer (more than its scan
    /// bound): not a failure of Puhuri, and a retry does not help; a narrower query may.
    #[error("{0}")]
    ListTooLarge(String),
    /// Puhuri answered a read with an error or could not be reached.
    #[error("{detail}")]
    Upstream { status: StatusCode, detail: String },
    /// Anything unexpected. The cause is logged, the client gets a generic detail.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }

    pub fn validation(errors: Vec<FieldError>) -> ApiError {
        let detail = match errors.as_slice() {
            [one] => format!("`{}` {}", one.field, one.message),
            many => format!("{} fields are not valid", many.len()),
        };
        ApiError::Validation { detail, errors }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::validation(vec![FieldError::new(field, message)])
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingToken => "missing_token",
            ApiError::InvalidToken(_) => "invalid_token",
            ApiError::MissingScope(_) => "insufficient_scope",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::AmbiguousFraming => "ambiguous_framing",
            ApiError::MalformedRequest(_) => "malformed_request",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::IdempotencyConflict => "idempotency_key_reused",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::OutcomeUnknown { .. } => "store_outcome_unknown",
            ApiError::ListTooLarge(_) => "list_too_large",
            ApiError::Upstream { .. } => "upstream_error",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::MissingToken => "Authentication is required",
            ApiError::InvalidToken(_) => "The token was refused",
            ApiError::MissingScope(_) => "The token lacks a scope",
            ApiError::Forbidden(_) => "Not allowed",
            ApiError::NotFound(_) => "Not found",
            ApiError::MethodNotAllowed(_) => "Method not allowed",
            ApiError::InvalidJson(_) => "The body is not valid JSON for this operation",
            ApiError::InvalidQuery(_) => "The query string is not valid",
            ApiError::UnsupportedMediaType(_) => "Unsupported media type",
            ApiError::AmbiguousFraming => "The request's framing is ambiguous",
            ApiError::MalformedRequest(_) => "The request is not well-formed HTTP",
            ApiError::PayloadTooLarge { .. } => "The body is too large",
            ApiError::Validation { .. } => "The request is not valid",
            ApiError::IdempotencyConflict => "Idempotency key reused",
            ApiError::Conflict(_) => "Conflict",
            ApiError::Unavailable { .. } => "Temporarily unavailable",
            ApiError::OutcomeUnknown { .. } => "Whether the job was stored is unknown",
            ApiError::ListTooLarge(_) => "The list is too large for the gateway to narrow",
            ApiError::Upstream { .. } => "Puhuri Core did not answer as expected",
            ApiError::Internal(_) => "Internal error",
        }
    }

    /// What the client is told. Internal causes stay in the log.
    fn detail(&self) -> String {
        match self {
            ApiError::MissingToken => {
                "send `Authorization: Bearer <token>`; `puhuri-gateway token issue` makes one"
                    .into()
            }
            ApiError::MissingScope(scope) => {
                format!("this operation needs the scope `{scope}`, which the token does not grant")
            }
            ApiError::Internal(_) => {
                "the gateway could not complete the request; the cause is in its log".into()
            }
            other => other.to_string(),
        }
    }

    pub fn problem(&self) -> Problem {
        let (errors, detail) = match self {
            ApiError::Validation { errors, detail } => (errors.clone(), detail.clone()),
            other => (Vec::new(), other.detail()),
        };
        Problem {
            type_: format!("urn:puhuri-gateway:problem:{}", self.code()),
            title: self.title(),
            status: self.status_code().as_u16(),
            code: self.code(),
            detail,
            errors,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MissingToken | ApiError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::MissingScope(_) | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::InvalidJson(_)
            | ApiError::InvalidQuery(_)
            | ApiError::AmbiguousFraming
            | ApiError::MalformedRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation { .. }
            | ApiError::IdempotencyConflict
            | ApiError::ListTooLarge(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable { .. } | ApiError::OutcomeUnknown { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Upstream { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(cause = %cause, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        match self {
            ApiError::MissingToken => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"puhuri-gateway\""),
                ));
            }
            ApiError::InvalidToken(_) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"puhuri-gateway\", error=\"invalid_token\"",
                    ),
                ));
            }
            ApiError::MissingScope(scope) => {
                let value = format!(
                    "Bearer realm=\"puhuri-gateway\", error=\"insufficient_scope\", scope=\"{scope}\""
                );
                if let Ok(v) = HeaderValue::from_str(&value) {
                    response.insert_header((header::WWW_AUTHENTICATE, v));
                }
            }
            ApiError::Unavailable { retry_after, .. }
            | ApiError::OutcomeUnknown { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            _ => {}
        }
        response.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

impl From<TokenRejection> for ApiError {
    fn from(r: TokenRejection) -> Self {
        ApiError::InvalidToken(r)
    }
}
