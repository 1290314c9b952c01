//! Strict at the door: malformed values are refused with a problem document and store nothing;
//! accepted values are exactly what the client wrote.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::site_helpers::*;
use puhuri_gateway::sim::demo;

async fn post_raw(app: &TestApp, token: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/usage"))
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request sent")
}

async fn no_jobs(app: &TestApp, token: &str) {
    let jobs: Value = app.get_as("/v1/jobs", token).await.json().await.unwrap();
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0), "{jobs}");
}

/// JSON-number amounts are read from their digits, never through a float.
#[tokio::test]
async fn number_amounts_are_exact_for_any_number_of_digits() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let body = format!(
        r#"{{"resource_uuid": "{}", "usages": {{"cpu_k_hours": 99999999999999.99, "gpu_k_hours": 123456789012345678.125}}}}"#,
        demo::RESOURCE_OK_UUID
    );
    let job = accepted(post_raw(&app, &token, &body).await).await;
    let done = delivered(&app, &token, &job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        done["result"]["sent"],
        json!({"cpu_k_hours": "99999999999999.99", "gpu_k_hours": "123456789012345678.12"})
    );
}

/// Each value outside the documented grammar is a 422 naming its field, and nothing is stored.
#[tokio::test]
async fn amounts_and_months_accept_exactly_the_documented_grammar() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let amounts = [
        r#""1_000""#,
        r#""1,000""#,
        r#"" 12""#,
        r#""+12""#,
        r#"".5""#,
        r#""NaN""#,
        r#""0x10""#,
        "1e18",
        "1000000000000000000.5",
        "-0.01",
        "true",
        "null",
        "[1]",
        "{}",
    ];
    for amount in amounts {
        let body = format!(
            r#"{{"resource_uuid": "{}", "usages": {{"cpu_k_hours": {amount}}}}}"#,
            demo::RESOURCE_OK_UUID
        );
        let problem = assert_problem(
            post_raw(&app, &token, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(
            problem["errors"][0]["field"], "usages.cpu_k_hours",
            "{amount}: {problem}"
        );
    }
    for month in [
        "2026-+5",
        "+026-05",
        "2026-05 ",
        "2026-5",
        "2026-13",
        "2_26-05",
        "2026-05-01",
    ] {
        let body = json!({"resource_uuid": demo::RESOURCE_OK_UUID, "month": month, "usages": {"cpu_k_hours": 1}});
        let problem = assert_problem(
            app.post_usage(&token, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "month", "{month}: {problem}");
    }
    no_jobs(&app, &token).await;
    assert!(app.sim_calls("set_usage").await.is_empty());
}

/// The `Link` header's host is never taken from `X-Forwarded-Host` or `Forwarded`.
#[tokio::test]
async fn links_never_take_their_host_from_forwarding_headers() {
    let app = spawn_manual_app().await;
    let response = app
        .client
        .get(app.url("/v1/resources?page_size=1"))
        .bearer_auth(alpha_token())
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "host=evil.example;proto=https")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let link = response.headers()["link"].to_str().unwrap().to_string();
    assert!(!link.contains("evil"), "{link}");
    assert!(
        link.starts_with(&format!("<{}/v1/resources?", app.address)),
        "{link}"
    );
}

/// Approve and reject take no body, or a JSON object sent as `application/json`: nothing else.
#[tokio::test]
async fn approve_and_reject_take_no_body_or_a_json_object() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let approve = format!("/v1/orders/{}/approve", demo::ORDER_PENDING_UUID);
    let reject = format!("/v1/orders/{}/reject", demo::ORDER_PENDING_UUID);
    let send = |path: String, content_type: Option<&'static str>, body: &'static str| {
        let mut request = app.client.post(app.url(&path)).bearer_auth(&token);
        if let Some(t) = content_type {
            request = request.header("Content-Type", t);
        }
        request.body(body).send()
    };
    let cases: [(Option<&'static str>, &'static str, u16, &str); 6] = [
        (
            Some("text/plain"),
            r#"{"comment": "no"}"#,
            415,
            "unsupported_media_type",
        ),
        (None, r#"{"comment": "no"}"#, 415, "unsupported_media_type"),
        (
            Some("application/x-www-form-urlencoded"),
            "comment=no",
            415,
            "unsupported_media_type",
        ),
        (Some("application/json"), "[]", 400, "invalid_json"),
        (Some("application/json"), "null", 400, "invalid_json"),
        (
            Some("application/json"),
            r#"{"comment": "no", "extra": 1}"#,
            400,
            "invalid_json",
        ),
    ];
    for (content_type, body, status, code) in cases {
        for path in [&approve, &reject] {
            let response = send(path.clone(), content_type, body).await.unwrap();
            assert_problem(response, status, code).await;
        }
    }
    let jobs: Value = app.get_as("/v1/jobs", &token).await.json().await.unwrap();
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0), "{jobs}");
    // No body at all, as a generated client sends it.
    let response = send(approve.clone(), None, "").await.unwrap();
    assert_eq!(response.status(), 202);
}
