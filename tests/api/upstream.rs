//! The gateway against Puhuri's real answers: a token Puhuri refuses, Waldur's HTML error pages,
//! and requests the gateway can know are wrong before anything is queued.

use puhuri_gateway::sim::demo;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::site_helpers::*;

async fn usage(app: &TestApp, token: &str, amount: &str) -> reqwest::Response {
    app.post_usage(
        token,
        &json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": amount}}),
    )
    .await
}

/// Waits (workers running) until the job is no longer queued or running.
async fn settled(app: &TestApp, token: &str, job: &str) -> Value {
    for _ in 0..400 {
        let view = app.job(token, job).await;
        if view["state"] != "queued" && view["state"] != "running" {
            return view;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("job {job} did not settle");
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn check<'a>(readiness: &'a Value, name: &str) -> &'a Value {
    readiness["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {readiness}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {readiness}"))
}

#[tokio::test]
async fn puhuri_refusing_the_token_fails_jobs_at_once_and_shows_in_readiness_and_metrics() {
    // Workers running, so readiness is about the token alone.
    let app = spawn_app().await;
    let token = alpha_token();
    // A first report warms the gateway's resource and offering caches, and shows the token
    // accepted.
    let job = accepted(usage(&app, &token, "1").await).await;
    assert_eq!(settled(&app, &token, &job).await["state"], "succeeded");
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(check(&ready, "upstream_token")["ok"], true);

    // From now on Puhuri answers every call with Waldur's 403.
    let fault = app
        .sim_post("faults", &json!({"kind": "error", "status": 403}))
        .await;
    assert_eq!(fault.status(), 201);

    let job = accepted(usage(&app, &token, "2").await).await;
    let failed = settled(&app, &token, &job).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["last_status"], 403, "{failed}");
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.starts_with("upstream_forbidden: "), "{error}");
    assert!(
        error.contains("You do not have permission to perform this action."),
        "{error}"
    );
    // Nothing retried: one attempt, one call.
    assert_eq!(failed["attempts"], 1, "{failed}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.job(&token, &job).await["attempts"], 1);
    let set_usage_calls = app.sim_calls("set_usage").await;
    assert_eq!(
        set_usage_calls
            .iter()
            .filter(|c| c["status"] == 403)
            .count(),
        1,
        "{set_usage_calls:?}"
    );

    // Readiness names the problem.
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 503, "{ready}");
    let token_check = check(&ready, "upstream_token");
    assert_eq!(token_check["ok"], false, "{ready}");
    assert!(
        token_check["detail"].as_str().unwrap().contains("403"),
        "{ready}"
    );

    // The metric counts it.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("puhuri_gateway_upstream_token_refused_total{status=\"403\"}")),
        "{metrics}"
    );

    // A read says the gateway's token is the problem, not the site's request.
    let response = app.get_as("/v1/orders", &token).await;
    let problem = assert_problem(response, 502, "upstream_error").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("service-provider token"),
        "{problem}"
    );

    // Once Puhuri accepts the token again, so does readiness.
    app.client
        .delete(format!("{}faults", app.sim))
        .send()
        .await
        .unwrap();
    let job = accepted(usage(&app, &token, "3").await).await;
    assert_eq!(settled(&app, &token, &job).await["state"], "succeeded");
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 200, "{ready}");
}

#[tokio::test]
async fn an_html_error_page_is_transient_with_a_short_plain_excerpt() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let job = accepted(usage(&app, &token, "1").await).await;
    assert_eq!(delivered(&app, &token, &job).await["state"], "succeeded");
    // Django's HTML 500 page, once.
    app.sim_post(
        "faults",
        &json!({"kind": "error", "status": 500, "times": 1, "path_prefix": "marketplace-component-usages/"}),
    )
    .await;
    let job = accepted(usage(&app, &token, "2").await).await;
    let retrying = delivered(&app, &token, &job).await;
    assert_eq!(retrying["state"], "retrying", "{retrying}");
    assert_eq!(retrying["last_status"], 500, "{retrying}");
    assert_eq!(retrying["last_error"], "Server Error (500)", "{retrying}");
}

#[tokio::test]
async fn requests_waldur_would_refuse_are_refused_up_front() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let resource = format!("/v1/resources/{}", demo::RESOURCE_OK_UUID);
    // Waldur: 400 "Report object should contain at least one section.", old report kept.
    let response = put_json(
        &app,
        &format!("{resource}/report"),
        &token,
        &json!({"report": []}),
    )
    .await;
    assert_problem(response, 422, "validation_failed").await;
    // Waldur trims a backend id and refuses a blank one.
    for backend_id in ["   ", " padded"] {
        let response = app
            .post_json(
                &format!("{resource}/backend-id"),
                &token,
                &json!({"backend_id": backend_id}),
            )
            .await;
        assert_problem(response, 422, "validation_failed").await;
    }
    // (A missing traceback is sent as an empty one: `orders::erred_sends_message_and_traceback_unchanged`.)
    assert!(app.sim_calls("submit_report").await.is_empty());
    assert!(app.sim_calls("set_backend_id").await.is_empty());
}
