//! Liveness, readiness, request ids and problem documents for routes that do not exist.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn healthz_answers_without_a_token() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_reports_its_checks() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert!(
        body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
}

#[tokio::test]
async fn a_request_id_is_echoed_or_generated() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"].len(), 32);
    // An id that could smuggle text into logs is replaced.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "a b\"c")
        .send()
        .await
        .unwrap();
    assert_ne!(response.headers()["x-request-id"], "a b\"c");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problem_documents() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not_found").await;
    let response = app.client.post(app.url("/healthz")).send().await.unwrap();
    let status = response.status().as_u16();
    assert!(status == 404 || status == 405, "{status}");
    assert_problem(
        response,
        status,
        if status == 404 {
            "not_found"
        } else {
            "method_not_allowed"
        },
    )
    .await;
}

#[tokio::test]
async fn swagger_ui_and_the_openapi_document_are_served() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("swagger"));
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["paths"]["/v1/whoami"].is_object());
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_format() {
    let app = spawn_app().await;
    let _ = app
        .post_usage(
            &alpha_token(),
            &serde_json::json!({"resource_uuid": puhuri_gateway::sim::demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 1}}),
        )
        .await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("puhuri_gateway_jobs{"), "{text}");
    assert!(text.contains("puhuri_gateway_store_up 1"), "{text}");
    assert!(
        text.contains("puhuri_gateway_jobs_accepted_total"),
        "{text}"
    );
}
