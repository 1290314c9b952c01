//! The answer when no route matches a request: `405 Method Not Allowed` with an `Allow` header
//! when the path is one the API serves under other methods (RFC 9110 §15.5.6, §10.2.1), and
//! `404 Not Found` otherwise, both as problem documents. The same table of documented routes tells
//! the request middleware which query parameters an operation takes.
//!
//! Which methods a path takes is read from the OpenAPI document (the one list of routes a client
//! sees), plus the two documentation routes the document does not describe: `/openapi.json` and
//! Swagger UI under `/docs/`. A `HEAD` is not served (the API's reads are JSON documents a
//! client fetches with `GET`) and is answered like any other method a path does not take.

use std::sync::LazyLock;

use actix_web::dev::ResourceDef;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::error::ApiError;

/// The HTTP methods an OpenAPI path item can hold (OpenAPI 3.1 §4.8.9), in `Allow`'s order.
const METHODS: [&str; 8] = [
    "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
];

/// A query parameter an operation documents: its name, and whether it may repeat (an array).
#[derive(Clone, Debug)]
pub struct QueryParameter {
    pub name: String,
    pub repeatable: bool,
}

/// One documented operation: its method and its query parameters.
#[derive(Clone, Debug)]
pub struct Operation {
    pub method: &'static str,
    pub query: Vec<QueryParameter>,
}

/// A served path pattern with its operations, e.g. `/v1/jobs/{id}` → `GET`.
struct Route {
    def: ResourceDef,
    /// The pattern's text before its first variable part (all of a fixed path): a path the
    /// pattern matches starts with it, so most patterns are ruled out without running `def`'s
    /// matcher (a regular expression for every pattern with a variable part).
    literal: String,
    operations: Vec<Operation>,
}

impl Route {
    fn new(path: &str, operations: Vec<Operation>) -> Route {
        Route {
            def: ResourceDef::new(path),
            literal: path.split('{').next().unwrap_or_default().to_string(),
            operations,
        }
    }
}

/// Every served path pattern with its operations.
static ROUTES: LazyLock<Vec<Route>> = LazyLock::new(|| {
    let document =
        serde_json::to_value(super::openapi::document()).expect("the OpenAPI document serializes");
    let mut routes: Vec<Route> = document["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(path, item)| {
            let operations = METHODS
                .into_iter()
                .filter_map(|method| {
                    let operation = item.get(method.to_ascii_lowercase())?;
                    let query = operation["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|p| p["in"] == "query")
                        .map(|p| QueryParameter {
                            name: p["name"].as_str().unwrap_or_default().to_string(),
                            repeatable: p["schema"]["type"] == "array",
                        })
                        .collect();
                    Some(Operation { method, query })
                })
                .collect();
            Route::new(path, operations)
        })
        .collect();
    let get = || {
        vec![Operation {
            method: "GET",
            query: Vec::new(),
        }]
    };
    routes.push(Route::new("/openapi.json", get()));
    routes.push(Route::new("/docs", get()));
    routes.push(Route::new("/docs/{_:.*}", get()));
    routes
});

/// The operations of every route whose pattern matches `path`.
fn operations_of(path: &str) -> impl Iterator<Item = &'static Operation> {
    ROUTES
        .iter()
        .filter(move |r| path.starts_with(&r.literal) && r.def.is_match(path))
        .flat_map(|r| r.operations.iter())
}

/// The documented operation `method` on `path`, if there is one.
pub fn operation(method: &str, path: &str) -> Option<&'static Operation> {
    operations_of(path).find(|o| o.method == method)
}

/// The methods `path` is served with, empty when no route has that path.
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let mut allowed: Vec<&'static str> = operations_of(path).map(|o| o.method).collect();
    // A path served with GET is also served with HEAD (RFC 9110 §9.3.2; the middleware answers
    // it as the GET without the body).
    if allowed.contains(&"GET") {
        allowed.push("HEAD");
    }
    allowed.sort_by_key(|m| METHODS.iter().position(|x| x == m));
    allowed.dedup();
    allowed
}

/// The app's default service: 405 with `Allow`, or 404.
pub async fn no_route(req: HttpRequest) -> HttpResponse {
    refusal(req.path(), req.method().as_str())
}

/// The answer to `method` on `path` when nothing serves that method there: 405 with `Allow`
/// (RFC 9110 §15.5.6) when the path is served with other methods, else 404.
pub fn refusal(path: &str, method: &str) -> HttpResponse {
    let allowed = allowed_methods(path);
    if allowed.is_empty() {
        return ApiError::NotFound(format!("no route matches {path}")).error_response();
    }
    let allow = allowed.join(", ");
    let mut response =
        ApiError::MethodNotAllowed(format!("{path} does not take {method}; it takes {allow}"))
            .error_response();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::allowed_methods;

    #[test]
    fn a_documented_path_lists_its_methods_and_an_unknown_one_none() {
        assert_eq!(allowed_methods("/v1/usage"), ["POST"]);
        assert_eq!(allowed_methods("/v1/jobs/abc"), ["GET", "HEAD"]);
        assert_eq!(allowed_methods("/v1/resources/abc/backend-id"), ["POST"]);
        assert_eq!(allowed_methods("/docs/index.html"), ["GET", "HEAD"]);
        assert_eq!(allowed_methods("/docs"), ["GET", "HEAD"]);
        assert!(allowed_methods("/v1/nothing-here").is_empty());
        assert!(allowed_methods("/v1/usage/extra/segments").is_empty());
    }
}
