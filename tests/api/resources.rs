//! Resource writes (backend id, state, report, limits) and resource/offering reads.

use puhuri_gateway::sim::demo;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::site_helpers::*;

fn path(resource: &str, action: &str) -> String {
    format!("/v1/resources/{resource}/{action}")
}

#[tokio::test]
async fn a_backend_id_is_set_and_then_names_the_resource() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    // Asked before it exists: not found (and not remembered as absent).
    let response = app
        .get_as("/v1/resources/backend_id:project_465000777", &token)
        .await;
    assert_problem(response, 404, "not_found").await;
    let job = accepted(
        app.post_json(
            &path(demo::RESOURCE_CREATING_UUID, "backend-id"),
            &token,
            &json!({"backend_id": "project_465000777"}),
        )
        .await,
    )
    .await;
    let done = delivered(&app, &token, &job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        done["result"]["status"],
        "Resource backend_id has been changed."
    );
    assert_eq!(
        sim_resource(&app, demo::RESOURCE_CREATING_UUID).await["backend_id"],
        "project_465000777"
    );
    let (status, _, resource) =
        get_json(&app, "/v1/resources/backend_id:project_465000777", &token).await;
    assert_eq!(status, 200, "{resource}");
    assert_eq!(resource["uuid"], demo::RESOURCE_CREATING_UUID);
    // Writes take the backend id too.
    let job = accepted(
        app.post_json(
            &path("backend_id:project_465000777", "state"),
            &token,
            &json!({"state": "ok"}),
        )
        .await,
    )
    .await;
    assert_eq!(delivered(&app, &token, &job).await["state"], "succeeded");
    assert_eq!(
        sim_resource(&app, demo::RESOURCE_CREATING_UUID).await["state"],
        "OK"
    );
}

#[tokio::test]
async fn state_erred_then_ok() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let erred = accepted(
        app.post_json(
            &path(demo::RESOURCE_OK_UUID, "state"),
            &token,
            &json!({"state": "erred", "message": "Lustre quota sync failed"}),
        )
        .await,
    )
    .await;
    assert_eq!(delivered(&app, &token, &erred).await["state"], "succeeded");
    let r = sim_resource(&app, demo::RESOURCE_OK_UUID).await;
    assert_eq!(r["state"], "Erred");
    assert_eq!(r["error_message"], "Lustre quota sync failed");
    let calls = app.sim_calls("set_as_erred").await;
    assert_eq!(
        calls[0]["body"]["error_message"],
        "Lustre quota sync failed"
    );
    let ok = accepted(
        app.post_json(
            &path(demo::RESOURCE_OK_UUID, "state"),
            &token,
            &json!({"state": "ok"}),
        )
        .await,
    )
    .await;
    assert_eq!(delivered(&app, &token, &ok).await["state"], "succeeded");
    let r = sim_resource(&app, demo::RESOURCE_OK_UUID).await;
    assert_eq!(r["state"], "OK");
    assert_eq!(r["error_message"], "");
}

#[tokio::test]
async fn invalid_state_requests_are_422() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    for body in [
        json!({"state": "terminated"}),
        json!({"state": "OK"}),
        json!({"state": "ok", "message": "x"}),
    ] {
        let response = app
            .post_json(&path(demo::RESOURCE_OK_UUID, "state"), &token, &body)
            .await;
        assert_problem(response, 422, "validation_failed").await;
    }
    let response = app
        .post_json(
            &path(demo::RESOURCE_OK_UUID, "backend-id"),
            &token,
            &json!({"backend_id": ""}),
        )
        .await;
    assert_problem(response, 422, "validation_failed").await;
}

#[tokio::test]
async fn a_report_replaces_the_resources_report() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let report = json!([
        {"header": "Access", "body": "ssh lumi.example.org"},
        {"header": "Project", "body": "project_465000001 — 1000 CPU kH"},
    ]);
    let job = accepted(
        put_json(
            &app,
            &path(demo::RESOURCE_OK_UUID, "report"),
            &token,
            &json!({"report": report}),
        )
        .await,
    )
    .await;
    assert_eq!(delivered(&app, &token, &job).await["state"], "succeeded");
    assert_eq!(
        sim_resource(&app, demo::RESOURCE_OK_UUID).await["report"],
        report
    );
    let (_, _, resource) = get_json(
        &app,
        &format!("/v1/resources/{}", demo::RESOURCE_OK_UUID),
        &token,
    )
    .await;
    assert_eq!(resource["report"], report);
}

#[tokio::test]
async fn report_sections_are_validated() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let response = put_json(
        &app,
        &path(demo::RESOURCE_OK_UUID, "report"),
        &token,
        &json!({"report": [{"header": "", "body": "x"}, {"header": "h", "body": "  "}]}),
    )
    .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["report[0].header", "report[1].body"]);
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"header": format!("h{i}"), "body": "b"}))
        .collect();
    let response = put_json(
        &app,
        &path(demo::RESOURCE_OK_UUID, "report"),
        &token,
        &json!({"report": many}),
    )
    .await;
    assert_problem(response, 422, "validation_failed").await;
    assert!(app.sim_calls("submit_report").await.is_empty());
}

#[tokio::test]
async fn limits_are_set_and_unknown_components_named() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let response = put_json(
        &app,
        &path(demo::RESOURCE_OK_UUID, "limits"),
        &token,
        &json!({"limits": {"cpu_k_hours": 2000, "tpu_hours": 5, "qpu": 1}}),
    )
    .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["limits.qpu", "limits.tpu_hours"]);
    let response = put_json(
        &app,
        &path(demo::RESOURCE_OK_UUID, "limits"),
        &token,
        &json!({"limits": {"cpu_k_hours": -1}}),
    )
    .await;
    assert_problem(response, 422, "validation_failed").await;
    let job = accepted(
        put_json(
            &app,
            &path(demo::RESOURCE_OK_UUID, "limits"),
            &token,
            &json!({"limits": {"cpu_k_hours": 2000, "gpu_k_hours": 150}}),
        )
        .await,
    )
    .await;
    assert_eq!(delivered(&app, &token, &job).await["state"], "succeeded");
    let limits = &sim_resource(&app, demo::RESOURCE_OK_UUID).await["limits"];
    assert_eq!(limits["cpu_k_hours"], 2000);
    assert_eq!(limits["gpu_k_hours"], 150);
}

#[tokio::test]
async fn another_sites_resources_are_refused_for_writes_and_reads() {
    let app = spawn_manual_app().await;
    let beta = beta_token();
    for resource in [
        demo::RESOURCE_OK_UUID,
        demo::OTHER_RESOURCE_UUID,
        "7e000000000040008000000000000fff",
    ] {
        let writes = [
            app.post_json(
                &path(resource, "backend-id"),
                &beta,
                &json!({"backend_id": "x"}),
            )
            .await,
            app.post_json(&path(resource, "state"), &beta, &json!({"state": "ok"}))
                .await,
            put_json(
                &app,
                &path(resource, "report"),
                &beta,
                &json!({"report": [{"header": "Access", "body": "ssh"}]}),
            )
            .await,
            put_json(
                &app,
                &path(resource, "limits"),
                &beta,
                &json!({"limits": {"cpu_k_hours": 1}}),
            )
            .await,
        ];
        for response in writes {
            let body = assert_problem(response, 403, "forbidden").await;
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("or does not exist")
            );
        }
        for read in ["", "/team", "/usage"] {
            let response = app
                .get_as(&format!("/v1/resources/{resource}{read}"), &beta)
                .await;
            assert_problem(response, 403, "forbidden").await;
        }
    }
    // Alpha's backend id means nothing to beta.
    let response = app
        .get_as("/v1/resources/backend_id:project_465000001", &beta)
        .await;
    assert_problem(response, 404, "not_found").await;
    let response = app
        .get_as(
            &format!("/v1/resources?offering_uuid={ALPHA_OFFERING}"),
            &beta,
        )
        .await;
    assert_problem(response, 403, "forbidden").await;
    let response = app
        .get_as(&format!("/v1/offerings/{ALPHA_OFFERING}"), &beta)
        .await;
    assert_problem(response, 403, "forbidden").await;
    let (_, _, list) = get_json(&app, "/v1/resources", &beta).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["uuid"], demo::RESOURCE_SLURM_UUID);
    let jobs: Value = app
        .get_as("/v1/jobs", &alpha_token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn resource_writes_need_their_scope() {
    let app = spawn_manual_app().await;
    let token = alpha_token_with("read orders:write");
    let response = app
        .post_json(
            &path(demo::RESOURCE_OK_UUID, "state"),
            &token,
            &json!({"state": "ok"}),
        )
        .await;
    let body = assert_problem(response, 403, "insufficient_scope").await;
    assert!(body["detail"].as_str().unwrap().contains("resources:write"));
    let response = put_json(
        &app,
        &path(demo::RESOURCE_OK_UUID, "limits"),
        &token,
        &json!({"limits": {"cpu_k_hours": 1}}),
    )
    .await;
    assert_problem(response, 403, "insufficient_scope").await;
    let response = app
        .get_as("/v1/resources", &alpha_token_with("resources:write"))
        .await;
    assert_problem(response, 403, "insufficient_scope").await;
}

#[tokio::test]
async fn resources_are_listed_filtered_and_read() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let (status, headers, body) = get_json(&app, "/v1/resources?page_size=2", &token).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-result-count"], "4");
    assert_eq!(body.as_array().unwrap().len(), 2);
    let link = headers["link"].to_str().unwrap();
    assert!(
        link.contains(&format!(
            "<{}/v1/resources?page_size=2&page=2>; rel=\"next\"",
            app.address
        )),
        "{link}"
    );
    assert!(!body.to_string().contains("/api/"));

    let (_, _, body) = get_json(&app, "/v1/resources?state=erred,OK", &token).await;
    assert_eq!(body.as_array().unwrap().len(), 2);
    let (_, _, body) = get_json(&app, "/v1/resources?backend_id=project_465000001", &token).await;
    assert_eq!(body[0]["uuid"], demo::RESOURCE_OK_UUID);
    let response = app.get_as("/v1/resources?page_size=101", &token).await;
    assert_problem(response, 400, "invalid_query").await;

    let (status, _, team) = get_json(
        &app,
        "/v1/resources/backend_id:project_465000001/team",
        &token,
    )
    .await;
    assert_eq!(status, 200);
    let alice = team
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_uuid"] == demo::USER_ALICE_UUID)
        .expect("alice is on the team");
    assert_eq!(alice["offering_user_username"], "alice_lumi");

    let (status, _, offering) =
        get_json(&app, &format!("/v1/offerings/{ALPHA_OFFERING}"), &token).await;
    assert_eq!(status, 200);
    let types: Vec<&str> = offering["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["cpu_k_hours", "gpu_k_hours", "gb_k_hours"]);
    assert_eq!(offering["plans"][0]["prices"]["gpu_k_hours"], "20.00");
}

#[tokio::test]
async fn a_months_usage_is_read_back() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let (status, _, usage) = get_json(
        &app,
        &format!(
            "/v1/resources/{}/usage?month={month}",
            demo::RESOURCE_OK_UUID
        ),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["month"], month);
    assert_eq!(usage["plan_periods"][0]["uuid"], demo::PLAN_PERIOD_OK_UUID);
    assert_eq!(usage["usages"][0]["type"], "cpu_k_hours");
    assert_eq!(usage["usages"][0]["usage"], "42.50");
    let response = app
        .get_as(
            &format!(
                "/v1/resources/{}/usage?month=2026-13",
                demo::RESOURCE_OK_UUID
            ),
            &token,
        )
        .await;
    assert_problem(response, 400, "invalid_query").await;
}
