//! Helpers for the site API tests (orders, resources, users, reads).

#![allow(dead_code)]

use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::helpers::*;

/// A token of site alpha granting only `scope` (space-separated scopes).
pub fn alpha_token_with(scope: &str) -> String {
    let mut c = claims("alpha");
    c["scope"] = Value::String(scope.into());
    sign(Algorithm::EdDSA, "alpha-ed", "ed25519.key", &c)
}

/// A request with `body` sent as it is, as `application/json` (for bodies a JSON value could not
/// hold, such as numbers longer than a float).
pub async fn send_raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: &str,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request sent")
}

/// The site of `token` has no job: what was refused stored nothing.
pub async fn no_jobs(app: &TestApp, token: &str) {
    let jobs: Value = app.get_as("/v1/jobs", token).await.json().await.unwrap();
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0), "{jobs}");
}

pub async fn post_empty(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent")
}

pub async fn put_json(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

/// Asserts 202 and returns the job id.
pub async fn accepted(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "queued", "{body}");
    body["job_id"].as_str().unwrap().to_string()
}

/// Drains the queue and returns the job as the site sees it.
pub async fn delivered(app: &TestApp, token: &str, job: &str) -> Value {
    app.drain().await;
    app.job(token, job).await
}

/// The order's state as the simulator holds it.
pub async fn sim_order(app: &TestApp, uuid: &str) -> Value {
    app.sim_get(&format!("state/order/{uuid}")).await
}

pub async fn sim_resource(app: &TestApp, uuid: &str) -> Value {
    app.sim_get(&format!("state/resource/{uuid}")).await
}

/// GET returning status and JSON body.
pub async fn get_json(
    app: &TestApp,
    path: &str,
    token: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let answer =
        crate::support::client::send(app.client.get(app.url(path)).bearer_auth(token)).await;
    (answer.status.as_u16(), answer.headers, answer.body)
}
