//! One delivery attempt of an event to a site's endpoint: a signed `POST` of the event's JSON.
//!
//! The URL is the configured one (on the allow-list; checked at start); redirects are not
//! followed, so an endpoint cannot send the gateway elsewhere. Any 2xx answer is a delivery; any
//! other answer, a timeout or a connection error is retried with the lane's backoff (a
//! `Retry-After` in seconds on a 429 or 503 is honoured), until the event ends `dead`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::CallbackConfig;
use crate::queue::JobRecord;
use crate::worker::{Carrier, Delivered, DeliveryError};

use super::signing;

/// Delivers the events of one endpoint.
pub struct EndpointCarrier {
    endpoint: Arc<CallbackConfig>,
    client: reqwest::Client,
}

impl EndpointCarrier {
    /// `timeout` bounds the whole attempt (connect, send, answer).
    pub fn new(
        endpoint: Arc<CallbackConfig>,
        timeout: Duration,
    ) -> Result<EndpointCarrier, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!(
                "puhuri-gateway/",
                env!("CARGO_PKG_VERSION"),
                " (events)"
            ))
            .build()
            .map_err(|e| format!("cannot build the events HTTP client: {e}"))?;
        Ok(EndpointCarrier { endpoint, client })
    }
}

/// What the receiver answered, kept short for the delivery's `last_error`.
fn answer_error(status: u16, reason: Option<&str>) -> String {
    format!(
        "the endpoint answered {status}{}{}",
        if reason.is_some() { " " } else { "" },
        reason.unwrap_or("")
    )
}

#[async_trait::async_trait]
impl Carrier for EndpointCarrier {
    async fn carry(&self, job: &JobRecord) -> Result<Delivered, DeliveryError> {
        let id = job
            .payload
            .get("id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| DeliveryError::UnreadablePayload("the event has no id".into()))?;
        let body = serde_json::to_vec(&job.payload)
            .map_err(|e| DeliveryError::UnreadablePayload(e.to_string()))?;
        let headers = signing::sign(
            id,
            chrono::Utc::now().timestamp(),
            &body,
            &self.endpoint.secrets,
        );
        let sent = self
            .client
            .post(self.endpoint.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &headers.id)
            .header("webhook-timestamp", &headers.timestamp)
            .header("webhook-signature", &headers.signature)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "the endpoint did not answer in time"
                } else if e.is_connect() {
                    "the endpoint could not be reached"
                } else {
                    "the delivery did not complete"
                };
                return Err(DeliveryError::Endpoint {
                    status: None,
                    message: what.to_owned(),
                    retry_after: None,
                });
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(Delivered {
                status: Some(status.as_u16()),
                result: serde_json::json!({ "endpoint": self.endpoint.name, "status": status.as_u16() }),
                delivered: BTreeMap::new(),
            });
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(3600)));
        Err(DeliveryError::Endpoint {
            status: Some(status.as_u16()),
            message: answer_error(status.as_u16(), status.canonical_reason()),
            retry_after,
        })
    }
}
