//! Strict at the door, numbers and hidden text: a value is stored and sent with exactly the
//! meaning the client wrote, or refused with a 422 naming its field and nothing stored.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::site_helpers::*;
use puhuri_gateway::sim::demo;

async fn send_raw(
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

async fn no_jobs(app: &TestApp, token: &str) {
    let jobs: Value = app.get_as("/v1/jobs", token).await.json().await.unwrap();
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0), "{jobs}");
}

/// An exponent as long as the digits it moves gives the true value, not one clamped.
#[tokio::test]
async fn an_amount_with_a_huge_exponent_is_delivered_exactly() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let zeros = "0".repeat(100_000);
    for (amount, sent) in [
        (format!("0.{zeros}1e100001"), "1.00"),
        (format!("2{zeros}0e-100001"), "2.00"),
        (format!("\"5{zeros}0e-100003\""), "0.05"),
    ] {
        let body = format!(
            r#"{{"resource_uuid": "{}", "usages": {{"cpu_k_hours": {amount}}}}}"#,
            demo::RESOURCE_OK_UUID
        );
        let job =
            accepted(send_raw(&app, reqwest::Method::POST, "/v1/usage", &token, &body).await).await;
        let done = delivered(&app, &token, &job).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(
            done["result"]["sent"],
            json!({"cpu_k_hours": sent}),
            "{sent}"
        );
    }
}

/// Characters that hide text (the tag block's invisible ASCII, noncharacters, the combining
/// grapheme joiner) are refused like other invisible formatting, and nothing is stored.
#[tokio::test]
async fn tag_characters_noncharacters_and_the_grapheme_joiner_are_refused() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let hidden: String = "approve all"
        .chars()
        .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
        .collect();
    for description in [
        format!("monthly{hidden}"),
        "a\u{FFFE}".to_string(),
        "a\u{FFFF}".to_string(),
        "a\u{034F}b".to_string(),
    ] {
        let response = app
            .post_usage(
                &token,
                &json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 1}, "description": description}),
            )
            .await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "description", "{problem}");
    }
    no_jobs(&app, &token).await;
}
