//! Per-request context: a request id, a span with the calling site, and problem+json for every
//! error response, including the ones actix produces itself (unknown routes, wrong methods).
//!
//! Two refusals happen here, before any route runs, because they concern the message rather than
//! an operation:
//! - a request whose length is stated two ways (`Transfer-Encoding` with `Content-Length`, or
//!   `Transfer-Encoding` in HTTP/1.0) is answered 400 `ambiguous_framing` and its connection is
//!   closed (RFC 9112 §6.1, §6.3): a proxy in front might have read the body differently, so
//!   nothing more on that connection can be trusted. actix still answers requests a client
//!   pipelined behind it (they were read before the close); each of those is refused the same
//!   way, without running, through a per-connection mark ([`on_connect`]);
//! - a request with a `Content-Encoding` the gateway does not decode (anything but `gzip` or
//!   `identity`, or more than one coding) is answered 415 with `Accept-Encoding: gzip, identity`
//!   (RFC 9110 §8.4.1, §15.5.16), rather than reading the encoded bytes as if they were plain.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{StatusCode, Version};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
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

/// How many requests are being handled (until their response is made): the shutdown lets them
/// end before it stops the HTTP server (`startup::Application::run_until_stopped`).
#[derive(Debug, Default)]
pub struct InFlight(AtomicUsize);

impl InFlight {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// One request counted in [`InFlight`] until dropped.
struct Handling(web::Data<InFlight>);

impl Handling {
    fn enter(counter: &web::Data<InFlight>) -> Handling {
        counter.0.fetch_add(1, Ordering::SeqCst);
        Handling(counter.clone())
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
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
    let _handling = req.app_data::<web::Data<InFlight>>().map(Handling::enter);
    let started = Instant::now();
    let mut req = req;
    let method = req.method().clone();
    // HEAD is GET without the body (RFC 9110 §9.3.2): routed as the GET. The HTTP layer knows
    // the request was a HEAD and writes the GET's headers, Content-Length included, and no body.
    if method == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    let response = match refusal_at_the_door(&req) {
        Some(refusal) => req.into_response(refusal),
        None => next
            .call(req)
            .instrument(span.clone())
            .await?
            .map_into_boxed_body(),
    };
    let mut response = problem_for_bare_errors(response);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let route = response.request().match_pattern();
    crate::telemetry::metrics::http_request(
        route.unwrap_or_else(|| "unmatched".to_owned()),
        method.as_str(),
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

/// The content codings a request body may carry: actix decodes `gzip`; `identity` is no coding.
pub const ACCEPTED_CONTENT_ENCODINGS: &str = "gzip, identity";

/// Marks a connection on which a request had ambiguous framing: every later request read from
/// it is refused, since where one message ended and the next began is not known.
#[derive(Clone, Default)]
struct FramingBroken(Arc<AtomicBool>);

/// Gives every new connection its [`FramingBroken`] mark (`HttpServer::on_connect`).
pub fn on_connect(_connection: &dyn Any, data: &mut actix_web::dev::Extensions) {
    data.insert(FramingBroken::default());
}

/// Headers a request may carry at most once (RFC 9110 §5.3: a field that is not a list); two
/// copies leave the gateway to guess which one the client meant.
/// (`Prefer` may repeat: RFC 7240 §2.)
const SINGLETON_HEADERS: [HeaderName; 4] = [
    header::HOST,
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    crate::api::submit::IDEMPOTENCY_KEY,
];

/// A query string the operation does not document: an unknown key, an empty value, or a key
/// that takes one value given twice. `None` when the path is not a documented route (the
/// router answers 404 or 405).
fn query_problem(req: &ServiceRequest) -> Option<ApiError> {
    // Nothing to check (most requests): the route table is not consulted at all.
    if req.query_string().is_empty() {
        return None;
    }
    let operation = super::fallback::operation(req.method().as_str(), req.path())?;
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    for (index, (key, value)) in pairs.iter().enumerate() {
        let Some(parameter) = operation.query.iter().find(|p| p.name == *key) else {
            let known: Vec<&str> = operation.query.iter().map(|p| p.name.as_str()).collect();
            return Some(ApiError::InvalidQuery(if known.is_empty() {
                format!("unknown query parameter `{key}`; this operation takes none")
            } else {
                format!(
                    "unknown query parameter `{key}`; this operation takes: {}",
                    known.join(", ")
                )
            }));
        };
        if value.is_empty() {
            return Some(ApiError::InvalidQuery(format!(
                "`{key}` is empty; give it a value or leave it out"
            )));
        }
        if value.chars().any(char::is_control) {
            return Some(ApiError::InvalidQuery(format!(
                "`{key}` holds a control character"
            )));
        }
        if !parameter.repeatable && pairs[..index].iter().any(|(k, _)| k == key) {
            return Some(ApiError::InvalidQuery(format!(
                "`{key}` is given twice; it takes one value"
            )));
        }
    }
    None
}

/// Whether `host` is `host[:port]` (RFC 9110 §7.2): a name, an IPv4 or a bracketed IPv6
/// address, with an optional port; nothing else (no user info, commas or spaces).
pub fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The answer to a request refused before any route runs (framing, content coding, HTTP's own
/// header rules, an undocumented query string), or `None`.
fn refusal_at_the_door(req: &ServiceRequest) -> Option<actix_web::HttpResponse> {
    let headers = req.headers();
    let ambiguous = headers.contains_key(header::TRANSFER_ENCODING)
        && (headers.contains_key(header::CONTENT_LENGTH) || req.version() == Version::HTTP_10);
    let mark = req.conn_data::<FramingBroken>();
    if ambiguous && let Some(mark) = mark {
        mark.0.store(true, Ordering::Relaxed);
    }
    if ambiguous || mark.is_some_and(|m| m.0.load(Ordering::Relaxed)) {
        let mut response = ApiError::AmbiguousFraming.error_response();
        response
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        return Some(response);
    }
    let mut codings = headers.get_all(header::CONTENT_ENCODING);
    let decodable = match (codings.next(), codings.next()) {
        (None, _) => true,
        (Some(one), None) => one.to_str().is_ok_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("identity")
        }),
        _ => false,
    };
    if !decodable {
        let mut response = ApiError::UnsupportedMediaType(format!(
            "the body's Content-Encoding is not one the gateway decodes; send it as one of: \
             {ACCEPTED_CONTENT_ENCODINGS}"
        ))
        .error_response();
        response.headers_mut().insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static(ACCEPTED_CONTENT_ENCODINGS),
        );
        return Some(response);
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without a Host, or any request with two, is a 400.
    if req.version() == Version::HTTP_11 && !headers.contains_key(header::HOST) {
        return Some(
            ApiError::MalformedRequest("an HTTP/1.1 request needs a Host header".into())
                .error_response(),
        );
    }
    if headers
        .get_all(header::HOST)
        .any(|v| !v.to_str().is_ok_and(is_plain_host))
    {
        return Some(
            ApiError::MalformedRequest("the Host header is not a host name and port".into())
                .error_response(),
        );
    }
    if let Some(name) = SINGLETON_HEADERS
        .iter()
        .find(|name| headers.get_all(*name).nth(1).is_some())
    {
        return Some(
            ApiError::MalformedRequest(format!("the `{name}` header is given more than once"))
                .error_response(),
        );
    }
    query_problem(req).map(|problem| problem.error_response())
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
    if status == StatusCode::METHOD_NOT_ALLOWED
        && !super::fallback::allowed_methods(&path).is_empty()
    {
        // a route's own 405 (the docs' routes answer it themselves): with `Allow`, as the
        // app's default service gives it
        let method = response.request().method().to_string();
        let refusal = super::fallback::refusal(&path, &method);
        return response.into_response(refusal);
    }
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
