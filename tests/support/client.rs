//! One way to send a request in every test binary: [`send`] answers with the status, headers and
//! body (as text and as JSON), and [`expect`] also checks the status is the one wanted, failing
//! with the request and what came back.

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

/// An answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as JSON; `Null` when it is not JSON.
    pub body: Value,
    /// The body as text.
    pub raw: String,
}

/// The status a test wants.
#[derive(Clone, Copy, Debug)]
pub enum Wanted {
    /// Exactly this code.
    Is(u16),
    /// Any 2xx.
    Success,
}

impl From<u16> for Wanted {
    fn from(code: u16) -> Wanted {
        Wanted::Is(code)
    }
}

impl Wanted {
    fn accepts(self, status: StatusCode) -> bool {
        match self {
            Wanted::Is(code) => status.as_u16() == code,
            Wanted::Success => status.is_success(),
        }
    }
}

/// Sends `request` and reads the whole answer.
pub async fn send(request: RequestBuilder) -> Answer {
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let raw = response.text().await.expect("body read");
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        raw,
    }
}

/// [`send`], asserting the answer's status is `wanted` (a code, or [`Wanted::Success`]); the
/// failure names the request and shows the body that came back.
pub async fn expect(request: RequestBuilder, wanted: impl Into<Wanted>) -> Answer {
    let wanted = wanted.into();
    let (client, request) = request.build_split();
    let request = request.expect("a request that builds");
    let what = format!("{} {}", request.method(), request.url());
    let answer = send(reqwest::RequestBuilder::from_parts(client, request)).await;
    assert!(
        wanted.accepts(answer.status),
        "{what}: wanted {wanted:?}, got {}: {}",
        answer.status,
        answer.raw
    );
    answer
}
