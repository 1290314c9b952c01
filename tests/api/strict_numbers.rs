//! Strict at the door, numbers and hidden text: a value is stored and sent with exactly the
//! meaning the client wrote, or refused with a 422 naming its field and nothing stored.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::site_helpers::*;
use puhuri_gateway::sim::demo;

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

fn file_token(app: &TestApp, file: &str) -> String {
    std::fs::read_to_string(app.data_dir().join(file))
        .unwrap()
        .trim()
        .to_string()
}

fn allocation_body(limit: &str) -> String {
    format!(
        r#"{{"project_uuid": "{}", "offering_uuid": "{}", "plan_uuid": "{}",
            "attributes": {{"name": "Climate 2027", "is_industry": false, "is_training": false,
                            "is_commercial": false, "used_ai_tech": ["Other"]}},
            "limits": {{"cpu_k_hours": {limit}, "gpu_k_hours": 5}}}}"#,
        demo::ALLOCATOR_REVIEW_PROJECT_UUID,
        demo::ALLOCATION_OFFERING_UUID,
        demo::ALLOCATION_PLAN_UUID,
    )
}

async fn create_allocation(app: &TestApp, token: &str, key: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/allocations"))
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", key)
        .body(body.to_string())
        .send()
        .await
        .expect("request sent")
}

/// A limit is a whole number read from its text: a fraction however small is a 422, never
/// rounded away, on a resource's limits and on an allocation's alike.
#[tokio::test]
async fn a_limit_with_any_fraction_is_refused_not_rounded() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let alloc = file_token(&app, "demo-allocator.token");
    let path = format!("/v1/resources/{}/limits", demo::RESOURCE_OK_UUID);
    for limit in [
        "1.0000000000000000001",
        "0.99999999999999999999",
        "1e-400",
        "2000.5",
    ] {
        let body = format!(r#"{{"limits": {{"cpu_k_hours": {limit}}}}}"#);
        let problem = assert_problem(
            send_raw(&app, reqwest::Method::PUT, &path, &token, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(
            problem["errors"][0]["field"], "limits.cpu_k_hours",
            "{limit}: {problem}"
        );
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("must be a whole number"),
            "{problem}"
        );
        let problem = assert_problem(
            create_allocation(&app, &alloc, &format!("k-{limit}"), &allocation_body(limit)).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(
            problem["errors"],
            json!([{"field": "limits.cpu_k_hours", "message": "must be a whole number"}]),
            "{limit}"
        );
    }
    no_jobs(&app, &token).await;
    no_jobs(&app, &alloc).await;
}

/// Waldur reads limits as integers: `1e3` and `-0` reach it as 1000 and 0, never `1000.0` or
/// `-0.0`.
#[tokio::test]
async fn whole_limits_reach_puhuri_as_integers() {
    let app = spawn_manual_app().await;
    let alloc = file_token(&app, "demo-allocator.token");
    for (i, (limit, sent)) in [("1e3", 1000u64), ("-0", 0), ("2000.0", 2000)]
        .into_iter()
        .enumerate()
    {
        let response =
            create_allocation(&app, &alloc, &format!("int-{i}"), &allocation_body(limit)).await;
        let job = accepted(response).await;
        app.drain().await;
        let orders: Vec<Value> = app
            .sim_calls("/api/marketplace-orders/")
            .await
            .into_iter()
            .filter(|c| c["method"] == "POST" && c["body"]["limits"].is_object())
            .collect();
        let body = &orders.last().unwrap_or_else(|| panic!("{job}: no order"))["body"];
        let value = &body["limits"]["cpu_k_hours"];
        assert!(value.is_u64(), "{limit}: {body}");
        assert_eq!(value.as_u64(), Some(sent), "{limit}: {body}");
        assert_eq!(body["limits"]["gpu_k_hours"], 5, "{body}");
    }
}

/// An approval's attributes reach Puhuri with their numbers as written: one a JSON value would
/// change (`1e3` -> `1000.0`, `-0` -> `-0.0`, a 30-digit integer -> a double) is a 422 naming it.
#[tokio::test]
async fn approval_attributes_keep_their_numbers_as_written_or_are_refused() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let approve = format!("/v1/orders/{}/approve", demo::ORDER_PENDING_UUID);
    for (attributes, field, kept) in [
        (
            r#"{"big": 123456789012345678901234567890}"#,
            "attributes.big",
            "1.2345678901234568e+29",
        ),
        (r#"{"x": 1e3}"#, "attributes.x", "1000.0"),
        (r#"{"neg0": -0}"#, "attributes.neg0", "-0.0"),
        (
            r#"{"ok": 1, "deep": {"list": [2, 1.50]}}"#,
            "attributes.deep.list[1]",
            "1.5",
        ),
    ] {
        let body = format!(r#"{{"attributes": {attributes}}}"#);
        let problem = assert_problem(
            send_raw(&app, reqwest::Method::POST, &approve, &token, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(kept), "{problem}");
    }
    no_jobs(&app, &token).await;
    let body = r#"{"attributes": {"n": 5, "f": 1.5, "neg": -3, "big": "123456789012345678901234567890", "x": "1e3"}}"#;
    let job = accepted(send_raw(&app, reqwest::Method::POST, &approve, &token, body).await).await;
    let done = delivered(&app, &token, &job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let calls = app.sim_calls("approve_by_provider").await;
    assert_eq!(
        calls[0]["body"]["attributes"],
        json!({"n": 5, "f": 1.5, "neg": -3, "big": "123456789012345678901234567890", "x": "1e3"})
    );
    assert_eq!(
        calls[0]["body"]["attributes"].to_string(),
        r#"{"big":"123456789012345678901234567890","f":1.5,"n":5,"neg":-3,"x":"1e3"}"#
    );
}

/// An allocation's attributes and a resource's new options reach Puhuri with their numbers as
/// written, as an approval's do: one a JSON value would change is a 422 naming it (checked before
/// the offering's option rules, which would otherwise name the option), and nothing is stored.
#[tokio::test]
async fn allocation_attributes_and_options_keep_their_numbers_as_written_or_are_refused() {
    let app = spawn_manual_app().await;
    let alloc = file_token(&app, "demo-allocator.token");
    let body = allocation_body("100").replace(
        r#""used_ai_tech": ["Other"]"#,
        r#""used_ai_tech": ["Other"], "nodes": 1e3"#,
    );
    let problem = assert_problem(
        create_allocation(&app, &alloc, "exact-1", &body).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        problem["errors"][0]["field"], "attributes.nodes",
        "{problem}"
    );
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("1000.0"), "{problem}");

    let path = format!(
        "/v1/allocations/resources/{}/options",
        demo::ALLOCATOR_RESOURCE_UUID
    );
    let body = r#"{"options": {"is_training": true, "share": 1.50}}"#;
    let problem = assert_problem(
        send_raw(&app, reqwest::Method::POST, &path, &alloc, body).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "options.share", "{problem}");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("1.5"), "{problem}");
    no_jobs(&app, &alloc).await;
}
