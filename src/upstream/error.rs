//! How a call to Puhuri failed, and whether trying again can help.

use std::time::Duration;

/// 5xx, 429, timeouts and connection failures are transient: the same call may succeed later.
/// Any other 4xx is permanent: Puhuri refused the request and will refuse it again, so the job
/// stops at once with Puhuri's own message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("Puhuri is unavailable ({message})")]
    Transient {
        status: Option<u16>,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("Puhuri refused the request ({status}): {message}")]
    Permanent { status: u16, message: String },
}

impl UpstreamError {
    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Transient { status, .. } => *status,
            UpstreamError::Permanent { status, .. } => Some(*status),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            UpstreamError::Transient { message, .. } | UpstreamError::Permanent { message, .. } => {
                message
            }
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// Classifies a transport error. reqwest's messages name the URL, never the token.
    pub fn from_transport(e: &reqwest::Error) -> UpstreamError {
        let what = if e.is_timeout() {
            "the call timed out"
        } else if e.is_connect() {
            "could not connect"
        } else if e.is_body() || e.is_decode() {
            "the answer could not be read"
        } else {
            "the connection failed"
        };
        UpstreamError::Transient {
            status: None,
            message: what.to_string(),
            retry_after: None,
        }
    }

    /// Classifies an HTTP error status with Puhuri's body.
    pub fn from_status(status: u16, retry_after: Option<Duration>, body: &[u8]) -> UpstreamError {
        let message = drf_message(body).unwrap_or_else(|| format!("HTTP {status}"));
        if status == 429 || status >= 500 || status == 408 {
            UpstreamError::Transient {
                status: Some(status),
                message,
                retry_after,
            }
        } else {
            UpstreamError::Permanent { status, message }
        }
    }
}

const MAX_MESSAGE: usize = 1000;

/// Flattens Django REST framework error bodies into one line:
/// `{"detail": "x"}` → `x`; `{"field": ["x"]}` → `field: x`; `["x"]` → `x`;
/// `{"usages": [{"amount": ["x"]}]}` → `usages[0].amount: x`.
pub fn drf_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut parts = Vec::new();
    flatten(&value, "", &mut parts);
    if parts.is_empty() {
        return None;
    }
    let mut message = parts.join("; ");
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    Some(message)
}

fn flatten(value: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if path.is_empty() || path == "detail" || path == "non_field_errors" {
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
                let child = if path.is_empty() {
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
        assert!(drf_message(b"<html>").is_none());
    }

    #[test]
    fn statuses_are_classified() {
        assert!(matches!(
            UpstreamError::from_status(503, None, b""),
            UpstreamError::Transient { .. }
        ));
        assert!(matches!(
            UpstreamError::from_status(429, Some(Duration::from_secs(3)), b""),
            UpstreamError::Transient {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            UpstreamError::from_status(400, None, b"{}"),
            UpstreamError::Permanent { status: 400, .. }
        ));
        assert!(matches!(
            UpstreamError::from_status(404, None, b""),
            UpstreamError::Permanent { status: 404, .. }
        ));
    }
}
