//! Puhuri ends with the total the site sent last, whatever happened to the deliveries in
//! between: a lost answer (path 1) and another writer (path 2), on both stores.

use std::time::{Duration, Instant};

use puhuri_gateway::domain::Clock;
use puhuri_gateway::sim::demo;
use puhuri_gateway::startup::Workers;
use serde_json::{Value, json};

use crate::helpers::*;

/// A short upstream timeout and one attempt per job (a timeout ends the job `dead`).
const SETTINGS: &str = r#"
[upstream]
timeout = "1s"
connect_timeout = "1s"

[delivery]
lease = "3s"
max_attempts = 1
"#;

/// `known_for`: `delivery.usage_known_for` ("0s": knowledge is never trusted without a read).
async fn app(redis: bool, known_for: &str) -> TestApp {
    spawn_app_with(
        Setup {
            redis,
            workers: Workers::Manual,
        },
        &format!("{SETTINGS}usage_known_for = \"{known_for}\"\n"),
    )
    .await
}

/// Reports `cpu_k_hours = amount` for the demo resource, delivers the queue and returns the job.
async fn report_and_deliver(app: &TestApp, amount: u32) -> Value {
    let token = alpha_token();
    let response = app
        .post_usage(
            &token,
            &json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": amount}}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    app.drain().await;
    app.job(&token, accepted["job_id"].as_str().unwrap()).await
}

/// What the simulator holds for the demo resource's `cpu_k_hours` this month.
async fn held(app: &TestApp) -> Option<String> {
    held_in(app, &chrono::Utc::now().format("%Y-%m").to_string()).await
}

/// Waits until the simulator holds `want` (a call that timed out on the gateway's side may still
/// be handled by Puhuri).
async fn wait_until_held(app: &TestApp, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while held(app).await.as_deref() != Some(want) {
        assert!(Instant::now() < deadline, "Puhuri never held {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn path_1_lost_answer(redis: bool) {
    let app = app(redis, "0s").await;
    assert_eq!(report_and_deliver(&app, 10).await["state"], "succeeded");
    assert_eq!(held(&app).await.as_deref(), Some("10.00"));

    // Puhuri takes the total but answers after the gateway stopped waiting.
    let fault = app
        .sim_post(
            "faults",
            &json!({"kind": "latency", "path_prefix": "marketplace-component-usages/set_usage", "latency_ms": 1500}),
        )
        .await;
    assert!(fault.status().is_success());
    assert_eq!(report_and_deliver(&app, 20).await["state"], "dead");
    wait_until_held(&app, "20.00").await;
    app.client
        .delete(format!("{}faults", app.sim))
        .send()
        .await
        .unwrap();

    // The correction back to 10 must reach Puhuri.
    let job = report_and_deliver(&app, 10).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(held(&app).await.as_deref(), Some("10.00"), "{job}");
}

async fn path_2_another_writer(redis: bool) {
    let app = app(redis, "0s").await;
    assert_eq!(report_and_deliver(&app, 10).await["state"], "succeeded");

    // Someone else sets another value in Puhuri.
    // (asserts Puhuri took it: a 2xx)
    app.set_usage_in_puhuri("cpu_k_hours", "33.00").await;
    assert_eq!(held(&app).await.as_deref(), Some("33.00"));

    // The site's total, sent again, is what Puhuri ends with.
    let job = report_and_deliver(&app, 10).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(held(&app).await.as_deref(), Some("10.00"), "{job}");
}

#[tokio::test]
async fn path_1_a_lost_answer_does_not_hide_a_correction_embedded() {
    path_1_lost_answer(false).await;
}

#[tokio::test]
async fn path_1_a_lost_answer_does_not_hide_a_correction_redis() {
    path_1_lost_answer(true).await;
}

#[tokio::test]
async fn path_2_another_writers_value_is_corrected_embedded() {
    path_2_another_writer(false).await;
}

#[tokio::test]
async fn path_2_another_writers_value_is_corrected_redis() {
    path_2_another_writer(true).await;
}

/// Knowledge older than `usage_known_for` is checked with one read of Puhuri: the same total is
/// then not sent again; knowledge within it needs no read at all.
async fn old_knowledge_is_checked_with_a_read(redis: bool) {
    let app = app(redis, "0s").await;
    assert_eq!(report_and_deliver(&app, 10).await["state"], "succeeded");
    let job = report_and_deliver(&app, 10).await;
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["result"]["sent"], json!({}), "{job}");
    assert_eq!(app.sim_calls("set_usage").await.len(), 1);
    let reads = app
        .sim_calls("marketplace-component-usages/")
        .await
        .into_iter()
        .filter(|c| c["method"] == "GET")
        .count();
    assert_eq!(reads, 1, "one read for the second report");
}

async fn fresh_knowledge_needs_no_read(redis: bool) {
    let app = app(redis, "1h").await;
    assert_eq!(report_and_deliver(&app, 10).await["state"], "succeeded");
    let job = report_and_deliver(&app, 10).await;
    assert_eq!(job["result"]["sent"], json!({}), "{job}");
    let reads = app
        .sim_calls("marketplace-component-usages/")
        .await
        .into_iter()
        .filter(|c| c["method"] == "GET")
        .count();
    assert_eq!(reads, 0);
}

#[tokio::test]
async fn old_knowledge_is_checked_with_a_read_embedded() {
    old_knowledge_is_checked_with_a_read(false).await;
}

#[tokio::test]
async fn old_knowledge_is_checked_with_a_read_redis() {
    old_knowledge_is_checked_with_a_read(true).await;
}

#[tokio::test]
async fn fresh_knowledge_needs_no_read_embedded() {
    fresh_knowledge_needs_no_read(false).await;
}

/// Path 3: a report without `month`, sent with an `Idempotency-Key` in the last seconds of a
/// month and retried byte-for-byte after the month turned, is the same job (bound to the month
/// of its first arrival); Puhuri ends with that total in that month and nothing in the next.
async fn path_3_retry_across_the_month_boundary(redis: bool) {
    use chrono::{Datelike, TimeZone, Utc};
    let today = Utc::now();
    let this_month = Utc
        .with_ymd_and_hms(today.year(), today.month(), 1, 0, 0, 0)
        .unwrap();
    let last_seconds = this_month - chrono::Duration::seconds(5);
    let clock = Clock::manual(last_seconds);
    let app = spawn_app_with_clock(
        Setup {
            redis,
            workers: Workers::Manual,
        },
        SETTINGS,
        clock.clone(),
    )
    .await;
    let token = alpha_token();
    let previous = last_seconds.format("%Y-%m").to_string();
    let current = this_month.format("%Y-%m").to_string();
    let current_before = held_in(&app, &current).await;
    let body = format!(
        r#"{{"resource_uuid": "{}", "usages": {{"cpu_k_hours": 17}}}}"#,
        demo::RESOURCE_OK_UUID
    );
    let send = |body: String| {
        app.client
            .post(app.url("/v1/usage"))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", "acct-month-end-r1")
            .body(body)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();

    clock.set(this_month + chrono::Duration::seconds(1));
    let retry = send(body.clone()).await.unwrap();
    assert_eq!(retry.status(), 200, "the retry finds the job");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["job_id"], first["job_id"]);

    // The key still refuses another request after the boundary.
    let other = send(body.replace("17", "18")).await.unwrap();
    assert_eq!(other.status(), 422);

    app.drain().await;
    let job = app.job(&token, first["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(held_in(&app, &previous).await.as_deref(), Some("17.00"));
    assert_eq!(
        held_in(&app, &current).await,
        current_before,
        "nothing booked into the next month"
    );
    assert_eq!(app.sim_calls("set_usage").await.len(), 1);
}

/// What the simulator holds for the demo resource's `cpu_k_hours` in `month` (`YYYY-MM`).
async fn held_in(app: &TestApp, month: &str) -> Option<String> {
    let usages = app
        .sim_get(&format!("state/usages/{}", demo::RESOURCE_OK_UUID))
        .await;
    usages
        .as_array()
        .unwrap()
        .iter()
        .find(|u| {
            u["type"] == "cpu_k_hours" && u["billing_period"].as_str().unwrap().starts_with(month)
        })
        .map(|u| u["usage"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn path_3_a_retry_across_the_month_boundary_is_the_same_job_embedded() {
    path_3_retry_across_the_month_boundary(false).await;
}

#[tokio::test]
async fn path_3_a_retry_across_the_month_boundary_is_the_same_job_redis() {
    path_3_retry_across_the_month_boundary(true).await;
}

/// An operator's retry of an older report: 10 ends `dead` (its answer lost, Puhuri took it),
/// 20 is delivered, then the operator retries the dead 10. Delivered, it would leave Puhuri
/// holding the older total; the retry is refused (409, naming the newer job) and Puhuri keeps 20.
async fn operator_retry_of_an_older_report(redis: bool) {
    let app = app(redis, "0s").await;
    let fault = app
        .sim_post(
            "faults",
            &json!({"kind": "latency", "path_prefix": "marketplace-component-usages/set_usage", "latency_ms": 1500}),
        )
        .await;
    assert!(fault.status().is_success());
    let old = report_and_deliver(&app, 10).await;
    assert_eq!(old["state"], "dead");
    wait_until_held(&app, "10.00").await;
    app.client
        .delete(format!("{}faults", app.sim))
        .send()
        .await
        .unwrap();
    let newer = report_and_deliver(&app, 20).await;
    assert_eq!(newer["state"], "succeeded");
    assert_eq!(held(&app).await.as_deref(), Some("20.00"));

    let retry = app
        .client
        .post(app.url(&format!(
            "/v1/jobs/{}/retry",
            old["job_id"].as_str().unwrap()
        )))
        .bearer_auth(alpha_token())
        .send()
        .await
        .unwrap();
    let problem = assert_problem(retry, 409, "conflict").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(newer["job_id"].as_str().unwrap()),
        "{detail}"
    );
    app.drain().await;
    assert_eq!(held(&app).await.as_deref(), Some("20.00"));

    // the newest job of a key can still be retried
    let fault = app
        .sim_post(
            "faults",
            &json!({"kind": "error", "path_prefix": "marketplace-component-usages/set_usage", "status": 503}),
        )
        .await;
    assert!(fault.status().is_success(), "{}", fault.status());
    let newest = report_and_deliver(&app, 30).await;
    assert_eq!(newest["state"], "dead", "{newest}");
    app.client
        .delete(format!("{}faults", app.sim))
        .send()
        .await
        .unwrap();
    let retry = app
        .client
        .post(app.url(&format!(
            "/v1/jobs/{}/retry",
            newest["job_id"].as_str().unwrap()
        )))
        .bearer_auth(alpha_token())
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 202);
    app.drain().await;
    assert_eq!(held(&app).await.as_deref(), Some("30.00"));
}

#[tokio::test]
async fn an_operator_retry_of_an_older_report_is_refused_embedded() {
    operator_retry_of_an_older_report(false).await;
}

#[tokio::test]
async fn an_operator_retry_of_an_older_report_is_refused_redis() {
    operator_retry_of_an_older_report(true).await;
}
