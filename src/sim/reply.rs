//! The simulator's answers: [`Reply`], one HTTP answer built by a handler, success or error
//! alike, with the bodies Waldur (DRF and Django) writes for its common errors.

use actix_web::HttpResponse;
use actix_web::http::{Method, StatusCode};
use serde_json::{Value, json};

/// An HTTP answer built by a handler (success or error alike).
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
    /// An HTML page instead of JSON (Django's error pages).
    pub html: Option<&'static str>,
}

pub(crate) type Res = Result<Reply, Reply>;

impl Reply {
    pub fn new(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            headers: vec![],
            html: None,
        }
    }
    pub fn ok(body: Value) -> Self {
        Self::new(StatusCode::OK, body)
    }
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: None,
            headers: vec![],
            html: None,
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, json!({"detail": "Not found."}))
    }
    pub fn bad(body: Value) -> Self {
        Self::new(StatusCode::BAD_REQUEST, body)
    }
    /// `{"field": ["msg"]}`
    pub fn field(field: &str, msg: impl Into<String>) -> Self {
        Self::bad(json!({ field: [msg.into()] }))
    }
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            json!({"detail": "You do not have permission to perform this action."}),
        )
    }
    /// Waldur's `StateValidator` (IncorrectStateException).
    pub fn conflict(valid: &[&str]) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            json!({ "detail": format!("Valid states for operation: {}.", valid.join(", ")) }),
        )
    }
    pub fn method_not_allowed(m: &Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({ "detail": format!("Method \"{m}\" not allowed.") }),
        )
    }

    /// Django's production 500 page: what Waldur answers when a view raises (for example
    /// `set_backend_id` without `backend_id`).
    pub fn server_error() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: None,
            headers: vec![],
            html: Some(SERVER_ERROR_PAGE),
        }
    }

    pub(super) fn into_response(self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status);
        for (k, v) in &self.headers {
            b.insert_header((*k, v.as_str()));
        }
        if let Some(page) = self.html {
            return b.content_type("text/html; charset=utf-8").body(page);
        }
        match self.body {
            Some(v) => b.content_type("application/json").body(v.to_string()),
            None => b.finish(),
        }
    }
}

/// Django's production 500 page (`DEBUG = False`): HTML, not JSON.
const SERVER_ERROR_PAGE: &str = "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n\
     </head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n";
