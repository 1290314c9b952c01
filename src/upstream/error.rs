//! How a call to Puhuri failed, as data.
//!
//! Every decision about an upstream failure — retry or stop, which API error a read answers with,
//! whether the service provider's token is being accepted — is made on the error's *kind*, never
//! on its text. The message is only for people: the job's `last_error` and the log.
//!
//! The kinds follow what Waldur MasterMind answers (`../shared/upstream/CONTRACT.md`, corrected
//! in `src/sim/README.md`):
//! - [`UpstreamError::Transient`]: 5xx (Waldur's 500 is Django's HTML page, not JSON), 429 and 408
//!   with their `Retry-After`, timeouts and connection failures. The same call may succeed later.
//! - [`UpstreamError::Unauthorized`] (401) and [`UpstreamError::Forbidden`] (403): the service
//!   provider's token is not accepted, or its user lacks the permission. A configuration problem
//!   for the operator, never bad data and never worth a retry loop.
//! - [`UpstreamError::NotFound`] (404) and [`UpstreamError::Conflict`] (409): the object is not
//!   there, or not in a state that allows the action (DRF's `{"detail": ...}`).
//! - [`UpstreamError::Refused`]: any other 4xx, with its status and Waldur's body.
//! - [`UpstreamError::Malformed`]: a 2xx answer the gateway cannot read as the call's shape.

use std::time::Duration;

use serde_json::Value;

/// Why a transient failure happened.
/// The service provider's identity (`upstream.token_file`), the one a client speaks for unless
/// it is given another name.
pub const SP_IDENTITY: &str = "sp";

/// How a refused token is named in messages: the service provider's, or an allocator identity's.
pub fn token_of(identity: &str) -> String {
    if identity == SP_IDENTITY {
        "the service provider's token (identity `sp`)".to_string()
    } else {
        format!("the token of the Puhuri identity `{identity}`")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransientCause {
    /// No answer within `upstream.timeout`.
    Timeout,
    /// No connection could be opened.
    Connect,
    /// The connection broke, or the answer's body could not be read.
    Connection,
    /// Puhuri (or a proxy in front of it) answered with this status: 5xx, 429 or 408.
    Status(u16),
}

/// A failed call to Puhuri. The variant is the decision; `message` is a short one-line text for
/// people (Waldur's DRF message flattened, or a plain excerpt of a non-JSON page).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    #[error("Puhuri is unavailable: {message}")]
    Transient {
        cause: TransientCause,
        message: String,
        /// Puhuri's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// 401: the token of the Puhuri identity `identity` (`sp`: the service provider's) is not
    /// accepted.
    #[error("Puhuri did not accept {} (401): {message}", token_of(identity))]
    Unauthorized { message: String, identity: String },
    /// 403: the identity's token user may not do this.
    #[error("Puhuri denied {} this action (403): {message}", token_of(identity))]
    Forbidden { message: String, identity: String },
    /// 404.
    #[error("Puhuri has no such object (404): {message}")]
    NotFound { message: String },
    /// 409: the object is not in a state that allows the action.
    #[error("Puhuri's object is not in a state that allows this (409): {message}")]
    Conflict { message: String },
    /// Any other 4xx: Puhuri refused the request and will refuse it again.
    #[error("Puhuri refused the request ({status}): {message}")]
    Refused {
        status: u16,
        message: String,
        /// Waldur's JSON body (`Value::Null` when it was not JSON).
        body: Value,
    },
    /// A 2xx answer that is not the shape the call returns.
    #[error("Puhuri's answer was not what the gateway expects: {message}")]
    Malformed { status: u16, message: String },
}

impl UpstreamError {
    /// The HTTP status Puhuri answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Transient { cause, .. } => match cause {
                TransientCause::Status(s) => Some(*s),
                _ => None,
            },
            UpstreamError::Unauthorized { .. } => Some(401),
            UpstreamError::Forbidden { .. } => Some(403),
            UpstreamError::NotFound { .. } => Some(404),
            UpstreamError::Conflict { .. } => Some(409),
            UpstreamError::Refused { status, .. } | UpstreamError::Malformed { status, .. } => {
                Some(*status)
            }
        }
    }

    /// The one-line text for people (never used for a decision).
    pub fn message(&self) -> &str {
        match self {
            UpstreamError::Transient { message, .. }
            | UpstreamError::Unauthorized { message, .. }
            | UpstreamError::Forbidden { message, .. }
            | UpstreamError::NotFound { message }
            | UpstreamError::Conflict { message }
            | UpstreamError::Refused { message, .. }
            | UpstreamError::Malformed { message, .. } => message,
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, UpstreamError::Transient { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, UpstreamError::NotFound { .. })
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, UpstreamError::Conflict { .. })
    }

    /// The Puhuri identity whose token was refused (401 or 403), if this is such a refusal.
    pub fn refused_identity(&self) -> Option<&str> {
        match self {
            UpstreamError::Unauthorized { identity, .. }
            | UpstreamError::Forbidden { identity, .. } => Some(identity),
            _ => None,
        }
    }

    /// The same error, a refusal (401/403) naming `identity` as the refused token's.
    pub fn of_identity(mut self, name: &str) -> UpstreamError {
        if let UpstreamError::Unauthorized { identity, .. }
        | UpstreamError::Forbidden { identity, .. } = &mut self
        {
            *identity = name.to_string();
        }
        self
    }

    /// 401 or 403: the identity's token is not accepted for this call.
    pub fn is_token_refused(&self) -> bool {
        matches!(
            self,
            UpstreamError::Unauthorized { .. } | UpstreamError::Forbidden { .. }
        )
    }

    /// A transient failure the gateway itself diagnosed (no HTTP status).
    pub(crate) fn transient(cause: TransientCause, message: impl Into<String>) -> UpstreamError {
        UpstreamError::Transient {
            cause,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 2xx answer of the wrong shape.
    pub(crate) fn malformed(status: u16, message: impl Into<String>) -> UpstreamError {
        UpstreamError::Malformed {
            status,
            message: message.into(),
        }
    }

    /// Classifies a transport error. reqwest's messages name the URL, never the token.
    pub fn from_transport(e: &reqwest::Error) -> UpstreamError {
        let (cause, what) = if e.is_timeout() {
            (TransientCause::Timeout, "the call timed out")
        } else if e.is_connect() {
            (TransientCause::Connect, "could not connect")
        } else if e.is_body() || e.is_decode() {
            (TransientCause::Connection, "the answer could not be read")
        } else {
            (TransientCause::Connection, "the connection failed")
        };
        UpstreamError::transient(cause, what)
    }

    /// Classifies an HTTP error status with Puhuri's body (JSON from DRF, or any page a server or
    /// proxy sends: Django's HTML 500, an nginx 502).
    pub fn from_status(status: u16, retry_after: Option<Duration>, body: &[u8]) -> UpstreamError {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let message = json
            .as_ref()
            .and_then(drf_message_of)
            .or_else(|| plain_excerpt(body))
            .unwrap_or_else(|| format!("HTTP {status}"));
        match status {
            401 => UpstreamError::Unauthorized {
                message,
                identity: SP_IDENTITY.into(),
            },
            403 => UpstreamError::Forbidden {
                message,
                identity: SP_IDENTITY.into(),
            },
            404 => UpstreamError::NotFound { message },
            409 => UpstreamError::Conflict { message },
            408 | 429 | 500.. => UpstreamError::Transient {
                cause: TransientCause::Status(status),
                message,
                retry_after,
            },
            _ => UpstreamError::Refused {
                status,
                message,
                body: json.unwrap_or(Value::Null),
            },
        }
    }
}

const MAX_MESSAGE: usize = 1000;
/// A non-JSON page is cut shorter: its first words are all a person needs.
const MAX_EXCERPT: usize = 200;

/// Flattens Django REST framework error bodies into one line:
/// `{"detail": "x"}` → `x`; `{"field": ["x"]}` → `field: x`; `["x"]` → `x`;
/// `{"usages": [{"amount": ["x"]}]}` → `usages[0].amount: x`.
pub fn drf_message(body: &[u8]) -> Option<String> {
    drf_message_of(&serde_json::from_slice(body).ok()?)
}

fn drf_message_of(value: &Value) -> Option<String> {
    let mut parts = Vec::new();
    flatten(value, "", &mut parts);
    if parts.is_empty() {
        return None;
    }
    Some(truncate(parts.join("; "), MAX_MESSAGE))
}

/// A short plain-text excerpt of a page that is not JSON: an HTML page's `<title>` (Django's is
/// "Server Error (500)"), or its text without tags; whitespace collapsed, at most 200 characters.
pub fn plain_excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    let title = lower.find("<title").and_then(|start| {
        let open_end = start + lower[start..].find('>')? + 1;
        let close = open_end + lower[open_end..].find("</title")?;
        Some(&text[open_end..close])
    });
    let source = match title {
        Some(t) if !t.trim().is_empty() => t.to_string(),
        _ => strip_tags(&text),
    };
    let collapsed = source
        .split_whitespace()
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let printable: String = collapsed.chars().filter(|c| !c.is_control()).collect();
    if printable.is_empty() {
        None
    } else {
        Some(truncate(printable, MAX_EXCERPT))
    }
}

fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn truncate(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut end = max;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

fn flatten(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            if path.is_empty() || path == "detail" {
                out.push(s.clone());
            } else {
                out.push(format!("{path}: {s}"));
            }
        }
        Value::Array(items) => {
            let all_strings = items.iter().all(Value::is_string);
            for (i, item) in items.iter().enumerate() {
                let child = if all_strings {
                    path.to_string()
                } else {
                    format!("{path}[{i}]")
                };
                flatten(item, &child, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                // DRF's errors of a whole (nested) object belong to the object's path.
                let child = if k == "non_field_errors" {
                    path.to_string()
                } else if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(v, &child, out);
            }
        }
        Value::Null => {}
        other => out.push(format!("{path}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drf_bodies_become_one_line() {
        assert_eq!(
            drf_message(br#"{"detail":"Valid states for operation: pending-provider."}"#).unwrap(),
            "Valid states for operation: pending-provider."
        );
        assert_eq!(
            drf_message(br#"{"plan_period":["Billing period is closed."]}"#).unwrap(),
            "plan_period: Billing period is closed."
        );
        assert_eq!(
            drf_message(br#"["Pending order for resource already exists."]"#).unwrap(),
            "Pending order for resource already exists."
        );
        assert_eq!(
            drf_message(br#"{"usages":[{"amount":["Ensure that there are no more than 2 decimal places."]}]}"#)
                .unwrap(),
            "usages[0].amount: Ensure that there are no more than 2 decimal places."
        );
        assert_eq!(
            drf_message(br#"{"non_field_errors":["These components are invalid: x."]}"#).unwrap(),
            "These components are invalid: x."
        );
        assert_eq!(
            drf_message(br#"{"report":{"non_field_errors":["Expected a list."]}}"#).unwrap(),
            "report: Expected a list."
        );
        assert!(drf_message(b"<html>").is_none());
    }

    #[test]
    fn statuses_are_classified_by_kind() {
        assert!(matches!(
            UpstreamError::from_status(503, None, b""),
            UpstreamError::Transient {
                cause: TransientCause::Status(503),
                ..
            }
        ));
        assert!(matches!(
            UpstreamError::from_status(429, Some(Duration::from_secs(3)), b""),
            UpstreamError::Transient {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            UpstreamError::from_status(400, None, br#"{"x":["y"]}"#),
            UpstreamError::Refused { status: 400, ref body, .. } if body["x"][0] == "y"
        ));
        assert!(UpstreamError::from_status(404, None, b"").is_not_found());
        assert!(UpstreamError::from_status(409, None, b"{}").is_conflict());
        let forbidden = UpstreamError::from_status(
            403,
            None,
            br#"{"detail":"You do not have permission to perform this action."}"#,
        );
        assert_eq!(
            forbidden,
            UpstreamError::Forbidden {
                message: "You do not have permission to perform this action.".into(),
                identity: "sp".into(),
            }
        );
        assert!(forbidden.is_token_refused());
        assert!(UpstreamError::from_status(401, None, b"").is_token_refused());
        assert!(!UpstreamError::from_status(400, None, b"").is_token_refused());
    }

    #[test]
    fn html_error_pages_are_transient_with_a_plain_excerpt() {
        let django = b"<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n";
        let e = UpstreamError::from_status(500, None, django);
        assert!(e.is_transient());
        assert_eq!(e.message(), "Server Error (500)");

        let nginx = b"<html><body><h1>502   Bad\n Gateway</h1>\n<hr>nginx</body></html>";
        let e = UpstreamError::from_status(502, None, nginx);
        assert_eq!(e.message(), "502 Bad Gateway nginx");

        let long = "x ".repeat(1000);
        let e = UpstreamError::from_status(500, None, long.as_bytes());
        assert!(e.message().len() <= MAX_EXCERPT + '…'.len_utf8());

        let e = UpstreamError::from_status(500, None, b"");
        assert_eq!(e.message(), "HTTP 500");
    }
}
