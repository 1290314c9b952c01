//! Order transitions and order reads through the gateway, against the simulator.

use puhuri_gateway::sim::demo;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::site_helpers::*;

fn path(order: &str, action: &str) -> String {
    format!("/v1/orders/{order}/{action}")
}

#[tokio::test]
async fn approving_a_pending_order_delivers_approve_by_provider() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let job = accepted(
        app.post_json(
            &path(demo::ORDER_PENDING_UUID, "approve"),
            &token,
            &json!({"attributes": {"note": "approved by LUMI"}}),
        )
        .await,
    )
    .await;
    let done = delivered(&app, &token, &job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["operation"], "order.approve");
    let calls = app.sim_calls("approve_by_provider").await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["body"]["attributes"]["note"], "approved by LUMI");
    let order = sim_order(&app, demo::ORDER_PENDING_UUID).await;
    assert_eq!(order["state"], "executing");
    assert_eq!(order["attributes"]["note"], "approved by LUMI");
}

#[tokio::test]
async fn approving_an_order_already_executing_succeeds_after_re_reading_it() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    // An empty body is fine.
    let job =
        accepted(post_empty(&app, &path(demo::ORDER_EXECUTING_UUID, "approve"), &token).await)
            .await;
    let done = delivered(&app, &token, &job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["already"], true);
    assert_eq!(done["result"]["order_state"], "executing");
    assert_eq!(done["last_status"], 409);
}

#[tokio::test]
async fn approving_a_rejected_order_fails_with_the_reason() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let reject = accepted(
        app.post_json(
            &path(demo::ORDER_PENDING_UUID, "reject"),
            &token,
            &json!({"comment": "No capacity left this quarter — sorry!"}),
        )
        .await,
    )
    .await;
    let approve =
        accepted(post_empty(&app, &path(demo::ORDER_PENDING_UUID, "approve"), &token).await).await;
    app.drain().await;
    let rejected = app.job(&token, &reject).await;
    assert_eq!(rejected["state"], "succeeded", "{rejected}");
    let order = sim_order(&app, demo::ORDER_PENDING_UUID).await;
    assert_eq!(order["state"], "rejected");
    assert_eq!(
        order["provider_rejection_comment"],
        "No capacity left this quarter — sorry!"
    );
    let approved = app.job(&token, &approve).await;
    assert_eq!(approved["state"], "failed", "{approved}");
    assert_eq!(approved["failure_code"], "upstream_conflict", "{approved}");
    let error = approved["last_error"].as_str().unwrap();
    assert!(error.contains("pending-provider"), "{error}");
    assert!(error.contains("rejected"), "{error}");
    // A second reject is a repeat: already rejected.
    let again =
        accepted(post_empty(&app, &path(demo::ORDER_PENDING_UUID, "reject"), &token).await).await;
    assert_eq!(delivered(&app, &token, &again).await["state"], "succeeded");
}

#[tokio::test]
async fn done_completes_an_executing_order_and_fails_on_a_pending_one() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let ok =
        accepted(post_empty(&app, &path(demo::ORDER_EXECUTING_UUID, "done"), &token).await).await;
    let bad =
        accepted(post_empty(&app, &path(demo::ORDER_PENDING_UUID, "done"), &token).await).await;
    app.drain().await;
    assert_eq!(app.job(&token, &ok).await["state"], "succeeded");
    assert_eq!(
        sim_order(&app, demo::ORDER_EXECUTING_UUID).await["state"],
        "done"
    );
    assert_eq!(
        sim_resource(&app, demo::RESOURCE_PROVISIONING_UUID).await["state"],
        "OK"
    );
    let failed = app.job(&token, &bad).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("pending-provider")
    );
    // Done twice: the second is "already done".
    let again =
        accepted(post_empty(&app, &path(demo::ORDER_EXECUTING_UUID, "done"), &token).await).await;
    assert_eq!(delivered(&app, &token, &again).await["state"], "succeeded");
}

#[tokio::test]
async fn erred_sends_message_and_traceback_unchanged() {
    let app = spawn_manual_app().await;
    // The Slurm offering is beta's; Waldur allows set_state_erred only there.
    let token = beta_token();
    let message = "Slurm account creation failed: «sacctmgr» exited 1\nsee log";
    let job = accepted(
        app.post_json(
            &path(demo::ORDER_SLURM_EXECUTING_UUID, "erred"),
            &token,
            &json!({"message": message}),
        )
        .await,
    )
    .await;
    let done = delivered(&app, &token, &job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let calls = app.sim_calls("set_state_erred").await;
    assert_eq!(
        calls[0]["body"],
        json!({"error_message": message, "error_traceback": ""})
    );
    let order = sim_order(&app, demo::ORDER_SLURM_EXECUTING_UUID).await;
    assert_eq!(order["state"], "erred");
    assert_eq!(order["error_message"], message);
}

#[tokio::test]
async fn erred_on_a_basic_offering_fails_with_puhuris_405() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let job = accepted(
        app.post_json(
            &path(demo::ORDER_EXECUTING_UUID, "erred"),
            &token,
            &json!({"message": "no", "traceback": "Traceback…"}),
        )
        .await,
    )
    .await;
    let failed = delivered(&app, &token, &job).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["last_status"], 405);
    assert_eq!(failed["failure_code"], "upstream_refused", "{failed}");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("does not support")
    );
}

#[tokio::test]
async fn erred_needs_a_message() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let response = app
        .post_json(
            &path(demo::ORDER_EXECUTING_UUID, "erred"),
            &token,
            &json!({"message": ""}),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "message");
    let response = app
        .post_json(
            &path(demo::ORDER_EXECUTING_UUID, "erred"),
            &token,
            &json!({}),
        )
        .await;
    assert_problem(response, 400, "invalid_json").await;
}

#[tokio::test]
async fn another_sites_orders_are_refused_for_writes_and_reads() {
    let app = spawn_manual_app().await;
    let beta = beta_token();
    for order in [
        demo::ORDER_PENDING_UUID,
        demo::OTHER_ORDER_UUID,
        "0d000000000040008000000000000fff",
    ] {
        for action in ["approve", "reject", "done"] {
            let response = post_empty(&app, &path(order, action), &beta).await;
            let body = assert_problem(response, 403, "forbidden").await;
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("or does not exist")
            );
        }
        let response = app.get_as(&format!("/v1/orders/{order}"), &beta).await;
        assert_problem(response, 403, "forbidden").await;
    }
    let list: Value = app
        .get_as("/v1/jobs", &alpha_token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0);
    assert!(app.sim_calls("approve_by_provider").await.is_empty());
    // Beta's own list holds only its offering's orders.
    let (status, _, orders) = get_json(&app, "/v1/orders?state=all", &beta).await;
    assert_eq!(status, 200);
    let orders = orders.as_array().unwrap();
    assert!(!orders.is_empty());
    assert!(orders.iter().all(|o| o["offering_uuid"] == BETA_OFFERING));
}

#[tokio::test]
async fn order_writes_and_reads_need_their_scopes() {
    let app = spawn_manual_app().await;
    let read_only = alpha_token_with("read");
    let response = post_empty(&app, &path(demo::ORDER_PENDING_UUID, "approve"), &read_only).await;
    let body = assert_problem(response, 403, "insufficient_scope").await;
    assert!(body["detail"].as_str().unwrap().contains("orders:write"));
    let writer = alpha_token_with("orders:write");
    let response = app.get_as("/v1/orders", &writer).await;
    assert_problem(response, 403, "insufficient_scope").await;
    let response = app
        .get_as(&format!("/v1/orders/{}", demo::ORDER_PENDING_UUID), &writer)
        .await;
    assert_problem(response, 403, "insufficient_scope").await;
}

#[tokio::test]
async fn orders_are_listed_paginated_and_filtered() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let (status, headers, body) = get_json(&app, "/v1/orders", &token).await;
    assert_eq!(status, 200);
    let orders = body.as_array().unwrap();
    let uuids: Vec<&str> = orders.iter().map(|o| o["uuid"].as_str().unwrap()).collect();
    assert_eq!(uuids.len(), 2, "{body}");
    assert!(uuids.contains(&demo::ORDER_PENDING_UUID));
    assert!(uuids.contains(&demo::ORDER_EXECUTING_UUID));
    assert_eq!(headers["x-result-count"], "2");
    // No Puhuri URLs in the gateway's shape.
    let text = body.to_string();
    assert!(!text.contains("/api/"), "{text}");
    assert_eq!(orders[0]["offering_uuid"], ALPHA_OFFERING);

    let (status, headers, body) =
        get_json(&app, "/v1/orders?state=all&page_size=2&page=2", &token).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 2);
    assert_eq!(headers["x-result-count"], "4");
    let link = headers["link"].to_str().unwrap();
    assert!(
        link.starts_with(&format!("<{}/v1/orders?", app.address)),
        "{link}"
    );
    assert!(link.contains("rel=\"first\""));
    assert!(link.contains("rel=\"prev\""));
    assert!(!link.contains("rel=\"next\""));
    assert!(!link.contains(":8") || !link.contains("/api/"));

    let (_, _, body) = get_json(
        &app,
        &format!(
            "/v1/orders?state=done,erred&resource_uuid={}",
            demo::RESOURCE_OK_UUID
        ),
        &token,
    )
    .await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["uuid"], demo::ORDER_OK_DONE_UUID);

    let (status, _, _) = get_json(&app, "/v1/orders?state=all&page=9", &token).await;
    assert_eq!(status, 404);
    let response = app.get_as("/v1/orders?state=nonsense", &token).await;
    assert_problem(response, 400, "invalid_query").await;
    let response = app.get_as("/v1/orders?offering=x", &token).await;
    assert_problem(response, 400, "invalid_query").await;

    let (status, _, order) = get_json(
        &app,
        &format!("/v1/orders/{}", demo::ORDER_PENDING_UUID),
        &token,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(order["state"], "pending-provider");
    assert_eq!(order["type"], "Create");
    assert_eq!(order["resource_uuid"], demo::RESOURCE_CREATING_UUID);
}

#[tokio::test]
async fn puhuri_down_on_a_read_is_a_problem_not_its_body() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    app.sim_post(
        "faults",
        &json!({"kind": "error", "path_prefix": "/api/marketplace-orders/", "status": 500}),
    )
    .await;
    let response = app.get_as("/v1/orders", &token).await;
    let body = assert_problem(response, 503, "unavailable").await;
    assert!(!body["detail"].as_str().unwrap().contains("Simulated"));
}
