//! An allocator's site end to end against the simulator: allocations created with LUMI's options
//! and limits and followed to OK, changed, renamed and terminated; a rejected order; the 422s of
//! the option and limit rules; and the isolation between an allocator's site and a service
//! provider's, down to which token reached Puhuri.

use std::time::Duration;

use puhuri_gateway::sim::demo;
use serde_json::{Value, json};

use crate::helpers::*;

fn read_token(app: &TestApp, file: &str) -> String {
    std::fs::read_to_string(app.data_dir().join(file))
        .unwrap()
        .trim()
        .to_string()
}

/// As the allocation offering's provider (the simulator's other demo provider), straight at
/// "Puhuri": the provider's review is not the allocator gateway's business.
async fn as_provider(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    app.puhuri(method, path, demo::OTHER_SP_TOKEN, body.as_ref())
        .await
}

/// Waits (polling) for the provider's view of a pending-provider order of `resource_or_project`.
async fn provider_pending_order(app: &TestApp, filter: &str) -> String {
    for _ in 0..400 {
        let list = as_provider(
            app,
            reqwest::Method::GET,
            &format!("marketplace-orders/?state=pending-provider&{filter}"),
            None,
        )
        .await;
        if let Some(o) = list.as_array().and_then(|a| a.first()) {
            return o["uuid"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no order waiting for the provider ({filter})");
}

async fn approve(app: &TestApp, filter: &str) -> String {
    let order = provider_pending_order(app, filter).await;
    as_provider(
        app,
        reqwest::Method::POST,
        &format!("marketplace-orders/{order}/approve_by_provider/"),
        Some(json!({})),
    )
    .await;
    order
}

/// The provider of the allocation offering reviews each order itself (the sandbox's provider
/// approves at once by default).
async fn provider_reviews(app: &TestApp) {
    let r = app
        .sim_post("settings", &json!({"auto_approve_offerings": []}))
        .await;
    assert_eq!(r.status(), 200);
}

/// Polls the job until it is terminal (at most 15 s).
async fn finished(app: &TestApp, token: &str, id: &str) -> Value {
    let within = Duration::from_secs(15);
    crate::support::poll::job_where(&app.client, &app.address, token, id, within, |state| {
        ["succeeded", "failed", "dead", "canceled"].contains(&state)
    })
    .await
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let answer = crate::support::client::send(req).await;
    (answer.status.as_u16(), answer.body)
}

fn create_body() -> Value {
    json!({
        "project_uuid": demo::ALLOCATOR_REVIEW_PROJECT_UUID,
        "offering_uuid": demo::ALLOCATION_OFFERING_UUID,
        "plan_uuid": demo::ALLOCATION_PLAN_UUID,
        "attributes": {"name": "Climate 2027", "description": "first", "is_industry": false,
                       "is_training": false, "is_commercial": false,
                       "used_ai_tech": ["Deep Learning", "Machine Learning"]},
        "limits": {"cpu_k_hours": 100, "gpu_k_hours": 5, "gb_k_hours": 10},
        "approve_as_consumer": true
    })
}

#[tokio::test]
async fn an_allocation_is_created_changed_renamed_and_terminated() {
    let app = spawn_app().await;
    provider_reviews(&app).await;
    let alloc = read_token(&app, "demo-allocator.token");
    let sp = read_token(&app, "demo.token");
    let project = format!("project_uuid={}", demo::ALLOCATOR_REVIEW_PROJECT_UUID);

    // Create: consumer review (approved by the job, as asked), provider review, processing.
    let (status, job) = send(
        &app,
        reqwest::Method::POST,
        "/v1/allocations",
        &alloc,
        Some("create-1"),
        Some(create_body()),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let order = approve(&app, &project).await;
    let job = finished(&app, &alloc, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["order_uuid"], order.as_str());
    let resource = job["result"]["resource_uuid"].as_str().unwrap().to_string();
    let r = as_provider(
        &app,
        reqwest::Method::GET,
        &format!("marketplace-provider-resources/{resource}/"),
        None,
    )
    .await;
    assert_eq!(r["state"], "OK");
    assert_eq!(r["limits"]["cpu_k_hours"], 100);
    assert_eq!(
        r["attributes"]["used_ai_tech"],
        json!(["Deep Learning", "Machine Learning"])
    );

    // Options, applied at once.
    let (status, job) = send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/allocations/resources/{resource}/options"),
        &alloc,
        None,
        Some(json!({"options": {"is_training": true, "used_ai_tech": ["Other"]}})),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let job = finished(&app, &alloc, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // Limits: an Update order, followed through the provider's review.
    let (status, job) = send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/allocations/resources/{resource}/limits"),
        &alloc,
        None,
        Some(json!({"limits": {"cpu_k_hours": 200, "gpu_k_hours": 5, "gb_k_hours": 10}})),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    approve(&app, &format!("resource_uuid={resource}&type=Update")).await;
    let job = finished(&app, &alloc, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(
        job["attempts"].as_u64().unwrap_or(0) <= 1,
        "following used no attempts: {job}"
    );

    // Rename, re-describe, end date.
    let (status, job) = send(&app, reqwest::Method::PATCH, &format!("/v1/allocations/resources/{resource}"), &alloc, None,
        Some(json!({"name": "Climate 2027 (extended)", "description": "second", "end_date": "2027-12-31"}))).await;
    assert_eq!(status, 202, "{job}");
    let job = finished(&app, &alloc, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // Terminate: a Terminate order, followed to Terminated.
    let (status, job) = send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/allocations/resources/{resource}/terminate"),
        &alloc,
        None,
        None,
    )
    .await;
    assert_eq!(status, 202, "{job}");
    approve(&app, &format!("resource_uuid={resource}&type=Terminate")).await;
    let job = finished(&app, &alloc, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // The final state, read back from "Puhuri".
    let r = as_provider(
        &app,
        reqwest::Method::GET,
        &format!("marketplace-provider-resources/{resource}/"),
        None,
    )
    .await;
    assert_eq!(r["state"], "Terminated", "{r}");
    assert_eq!(r["name"], "Climate 2027 (extended)");
    assert_eq!(r["description"], "second");
    assert_eq!(r["end_date"], "2027-12-31");
    assert_eq!(r["limits"]["cpu_k_hours"], 200);
    assert_eq!(r["options"]["is_training"], true);
    assert_eq!(r["options"]["used_ai_tech"], json!(["Other"]));

    // The service provider's site works beside it, with its own token.
    let (status, _) = send(&app, reqwest::Method::GET, "/v1/orders", &sp, None, None).await;
    assert_eq!(status, 200);

    // Tokens never crossed: every call about the allocator's objects carried the allocator's
    // token (or the test's provider token), and the service provider's token touched none.
    let calls = app.sim_calls("/api/").await;
    let allocator_calls: Vec<&Value> = calls.iter().filter(|c| c["token"] == "allocator").collect();
    assert!(allocator_calls.len() >= 10, "{allocator_calls:?}");
    for c in &calls {
        let text = format!("{}?{}", c["path"], c["query"]);
        let touches_allocation = text.contains(&resource)
            || text.contains(demo::ALLOCATOR_REVIEW_PROJECT_UUID)
            || text.contains("/api/projects/")
            || text.contains("/api/marketplace-resources/");
        match c["token"].as_str() {
            Some("sp") => assert!(
                !touches_allocation,
                "the service provider's token was used for {c}"
            ),
            Some("allocator") => assert!(
                !text.contains("marketplace-provider-") && !text.contains("component-usages"),
                "the allocator's token was used for {c}"
            ),
            Some("other-sp") => {}
            other => panic!("a call with token {other:?}: {c}"),
        }
    }
}

#[tokio::test]
async fn a_rejected_order_fails_the_job_with_the_reason() {
    let app = spawn_app().await;
    provider_reviews(&app).await;
    let alloc = read_token(&app, "demo-allocator.token");
    let project = format!("project_uuid={}", demo::ALLOCATOR_REVIEW_PROJECT_UUID);
    let (status, job) = send(
        &app,
        reqwest::Method::POST,
        "/v1/allocations",
        &alloc,
        Some("create-r"),
        Some(create_body()),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let order = provider_pending_order(&app, &project).await;
    as_provider(
        &app,
        reqwest::Method::POST,
        &format!("marketplace-orders/{order}/reject_by_provider/"),
        Some(json!({"provider_rejection_comment": "no capacity left this year"})),
    )
    .await;
    let job = finished(&app, &alloc, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["last_error"].as_str().unwrap_or("");
    assert!(error.contains("no capacity left this year"), "{job}");
    assert!(error.contains("rejected"), "{job}");
}

async fn refused(app: &TestApp, token: &str, body: Value, field: &str) {
    let (status, problem) = send(
        app,
        reqwest::Method::POST,
        "/v1/allocations",
        token,
        Some(&format!("k-{field}")),
        Some(body),
    )
    .await;
    assert_eq!(status, 422, "{field}: {problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, [field], "{problem}");
}

#[tokio::test]
async fn each_lumi_option_and_limit_rule_is_a_422_and_nothing_is_stored() {
    let app = spawn_manual_app().await;
    let alloc = read_token(&app, "demo-allocator.token");
    let with = |path: &str, value: Value| {
        let mut b = create_body();
        let (obj, key) = path.split_once('.').unwrap();
        b[obj][key] = value;
        b
    };
    let without_limits = |extra: Value| {
        let mut b = create_body();
        b["limits"] = extra;
        b
    };
    // Types of the boolean options.
    refused(
        &app,
        &alloc,
        with("attributes.is_industry", json!("yes")),
        "attributes.is_industry",
    )
    .await;
    refused(
        &app,
        &alloc,
        with("attributes.is_training", json!(1)),
        "attributes.is_training",
    )
    .await;
    refused(
        &app,
        &alloc,
        with("attributes.is_commercial", json!(null)),
        "attributes.is_commercial",
    )
    .await;
    // used_ai_tech: a list, of the exact choices.
    refused(
        &app,
        &alloc,
        with("attributes.used_ai_tech", json!("Deep Learning")),
        "attributes.used_ai_tech",
    )
    .await;
    refused(
        &app,
        &alloc,
        with(
            "attributes.used_ai_tech",
            json!(["Deep Learning", "deep learning"]),
        ),
        "attributes.used_ai_tech[1]",
    )
    .await;
    // Unknown option names.
    refused(
        &app,
        &alloc,
        with("attributes.is_academic", json!(true)),
        "attributes.is_academic",
    )
    .await;
    // Name and description: the rules of a rename, and a name is required.
    refused(
        &app,
        &alloc,
        with("attributes.name", json!("")),
        "attributes.name",
    )
    .await;
    refused(
        &app,
        &alloc,
        with("attributes.name", json!("n".repeat(151))),
        "attributes.name",
    )
    .await;
    let mut nameless = create_body();
    nameless["attributes"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    refused(&app, &alloc, nameless, "attributes.name").await;
    refused(
        &app,
        &alloc,
        with("attributes.description", json!("d".repeat(4097))),
        "attributes.description",
    )
    .await;
    // A limit larger than Puhuri keeps exactly.
    let mut huge = create_body();
    huge["limits"] =
        serde_json::from_str(r#"{"cpu_k_hours": 123456789012345678901234567890}"#).unwrap();
    refused(&app, &alloc, huge, "limits.cpu_k_hours").await;
    // Limits: only limit-type components, numbers, not negative.
    refused(
        &app,
        &alloc,
        without_limits(json!({"nodes": 1})),
        "limits.nodes",
    )
    .await;
    refused(
        &app,
        &alloc,
        without_limits(json!({"cpu_k_hours": -1})),
        "limits.cpu_k_hours",
    )
    .await;
    refused(
        &app,
        &alloc,
        without_limits(json!({"cpu_k_hours": "ten"})),
        "limits.cpu_k_hours",
    )
    .await;
    // On changes too: options and limits of an existing allocation.
    let resource = demo::ALLOCATOR_RESOURCE_UUID;
    for (body, field) in [
        (
            json!({"options": {"is_training": "no"}}),
            "options.is_training",
        ),
        (
            json!({"options": {"used_ai_tech": ["Quantum"]}}),
            "options.used_ai_tech[0]",
        ),
        (json!({"options": {"colour": "blue"}}), "options.colour"),
    ] {
        let (status, p) = send(
            &app,
            reqwest::Method::POST,
            &format!("/v1/allocations/resources/{resource}/options"),
            &alloc,
            None,
            Some(body),
        )
        .await;
        assert_eq!(status, 422, "{p}");
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    for (body, field) in [
        (json!({"limits": {"cpu_k_hours": -5}}), "limits.cpu_k_hours"),
        (json!({"limits": {"storage": 5}}), "limits.storage"),
    ] {
        let (status, p) = send(
            &app,
            reqwest::Method::POST,
            &format!("/v1/allocations/resources/{resource}/limits"),
            &alloc,
            None,
            Some(body),
        )
        .await;
        assert_eq!(status, 422, "{p}");
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    // Where the offering publishes its options, those are the rules (LUMI's table is the
    // built-in case for offerings that publish none).
    let published = app
        .sim_post(
            "settings",
            &json!({"offering_options": {demo::ALLOCATION_OFFERING_UUID: {"order": ["partition"], "options": {
                "partition": {"type": "select_string", "choices": ["standard", "gpu"], "required": true}}}}}),
        )
        .await;
    assert_eq!(published.status(), 200);
    let mut body = create_body();
    body["attributes"] = json!({"name": "x", "partition": "huge"});
    refused(&app, &alloc, body, "attributes.partition").await;
    let mut body = create_body();
    body["attributes"] = json!({"name": "x", "partition": "gpu", "is_industry": true});
    refused(&app, &alloc, body, "attributes.is_industry").await;
    // The Idempotency-Key is required to create.
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/v1/allocations",
        &alloc,
        None,
        Some(create_body()),
    )
    .await;
    assert_eq!(status, 422, "an Idempotency-Key is required to create");
    let page = app
        .store
        .list(&puhuri_gateway::queue::JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(page.jobs.is_empty(), "nothing stored: {:?}", page.jobs);
}

#[tokio::test]
async fn allocator_and_service_provider_sites_stay_apart() {
    let app = spawn_manual_app().await;
    let alloc = read_token(&app, "demo-allocator.token");
    let sp = read_token(&app, "demo.token");
    // The allocator's site cannot use the service provider's operations, and the other way round.
    let (status, p) = send(
        &app,
        reqwest::Method::POST,
        "/v1/usage",
        &alloc,
        None,
        Some(json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 1}})),
    )
    .await;
    assert_eq!(status, 403, "{p}");
    let (status, p) = send(&app, reqwest::Method::GET, "/v1/orders", &alloc, None, None).await;
    assert_eq!(status, 403, "{p}");
    let (status, p) = send(
        &app,
        reqwest::Method::POST,
        "/v1/allocations",
        &sp,
        Some("sp-1"),
        Some(create_body()),
    )
    .await;
    assert_eq!(status, 403, "{p}");
    // Outside the binding: a project of another organisation, the provider's resources, and a
    // uuid that names nothing all get the same 403.
    let mut body = create_body();
    body["project_uuid"] = json!(demo::PROJECT_A_UUID);
    let (status, foreign) = send(
        &app,
        reqwest::Method::POST,
        "/v1/allocations",
        &alloc,
        Some("out-2"),
        Some(body),
    )
    .await;
    assert_eq!(status, 403, "{foreign}");
    let mut body = create_body();
    body["project_uuid"] = json!("b00000000000400080000000000000ff");
    let (status, missing) = send(
        &app,
        reqwest::Method::POST,
        "/v1/allocations",
        &alloc,
        Some("out-3"),
        Some(body),
    )
    .await;
    assert_eq!(status, 403, "{missing}");
    assert_eq!(foreign["detail"], missing["detail"]);
    let (status, theirs) = send(
        &app,
        reqwest::Method::POST,
        &format!(
            "/v1/allocations/resources/{}/terminate",
            demo::RESOURCE_OK_UUID
        ),
        &alloc,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403, "{theirs}");
    let (status, none) = send(
        &app,
        reqwest::Method::POST,
        "/v1/allocations/resources/7e0000000000400080000000000000ff/terminate",
        &alloc,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403, "{none}");
    assert_eq!(theirs["detail"], none["detail"]);
    let page = app
        .store
        .list(&puhuri_gateway::queue::JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(page.jobs.is_empty(), "nothing stored: {:?}", page.jobs);
}

/// A gateway process configured with the simulator's allocator identity and an allocator site
/// `portal` (HS256 key `portal-hs`), against `sim`.
fn allocator_gateway_config(
    dir: &std::path::Path,
    sim: &puhuri_gateway::sim::SimServer,
) -> std::path::PathBuf {
    let base = crate::resilience::external_config(dir, sim, "");
    let token_file = dir.join("allocator-token");
    std::fs::write(&token_file, demo::ALLOCATOR_TOKEN).unwrap();
    let mut toml = std::fs::read_to_string(&base).unwrap();
    toml.push_str(&format!(
        "\n[upstream.identities.portal]\ntoken_file = \"{}\"\n\n[[sites]]\nid = \"portal\"\n\
         identity = \"portal\"\nofferings = [\"{}\"]\nprojects = [\"{}\"]\n\n[[sites.keys]]\n\
         kid = \"portal-hs\"\nalgorithm = \"HS256\"\nsecret_file = \"{}\"\n",
        token_file.display(),
        demo::ALLOCATION_OFFERING_UUID,
        demo::ALLOCATOR_REVIEW_PROJECT_UUID,
        fixture("hs256.secret").display(),
    ));
    std::fs::write(&base, toml).unwrap();
    base
}

fn portal_token() -> String {
    let mut c = claims("portal");
    c["scope"] = json!("allocations:read allocations:write");
    sign(
        jsonwebtoken::Algorithm::HS256,
        "portal-hs",
        "hs256.secret",
        &c,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_retried_after_its_answer_was_lost_makes_exactly_one_order() {
    use crate::resilience::GatewayProcess;
    let sim = puhuri_gateway::sim::start_with_allocator(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        puhuri_gateway::sim::SimOptions::default(),
    )
    .unwrap();
    let client = reqwest::Client::new();
    // Reads of orders are slow, so the gateway is still waiting for the read that follows its
    // create when it is killed: Puhuri has made the order, the job has not recorded it.
    let fault = client
        .post(format!("{}faults", sim.control_url()))
        .json(&json!({"kind": "latency", "path_prefix": "/api/marketplace-orders/", "method": "GET", "latency_ms": 800}))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success());
    let dir = tempfile::tempdir().unwrap();
    let config = allocator_gateway_config(dir.path(), &sim);
    let token = portal_token();

    let mut first = GatewayProcess::start(&config, &dir.path().join("first.log")).await;
    let r = client
        .post(format!("{}/v1/allocations", first.address))
        .bearer_auth(&token)
        .header("Idempotency-Key", "lost-answer-1")
        .json(&create_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let id = job["job_id"].as_str().unwrap().to_string();
    // Kill the gateway as soon as Puhuri has answered the create.
    let creates = |calls: &Value| {
        calls
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|c| {
                        c["method"] == "POST"
                            && c["path"] == "/api/marketplace-orders/"
                            && c["status"] == 201
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let calls_url = format!("{}calls", sim.control_url());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let calls: Value = client
            .get(&calls_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if creates(&calls) == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the create never reached Puhuri: {calls} {}",
            std::fs::read_to_string(dir.path().join("first.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill();
    client
        .delete(format!("{}faults", sim.control_url()))
        .send()
        .await
        .unwrap();

    // A new gateway on the same store delivers the job again: it finds the order.
    let second = GatewayProcess::start(&config, &dir.path().join("second.log")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        let job: Value = client
            .get(format!("{}/v1/jobs/{id}", second.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["state"] == "succeeded" || job["state"] == "failed" || job["state"] == "dead" {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "job stayed {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["state"], "succeeded", "{job}");
    let calls: Value = client
        .get(&calls_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(creates(&calls), 1, "exactly one order was made");
    let orders: Value = client
        .get(format!(
            "{}marketplace-orders/?project_uuid={}&type=Create&page_size=100",
            sim.api_url(),
            demo::ALLOCATOR_REVIEW_PROJECT_UUID
        ))
        .header("Authorization", format!("Token {}", demo::ALLOCATOR_TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let made: Vec<&Value> = orders
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["attributes"]["name"] == "Climate 2027")
        .collect();
    assert_eq!(made.len(), 1, "{orders}");
    assert_eq!(job["result"]["order_uuid"], made[0]["uuid"]);
    assert_eq!(made[0]["state"], "done");
}

async fn read(app: &TestApp, token: &str, path: &str) -> (u16, Value, Option<String>) {
    let r = app.get_as(path, token).await;
    let status = r.status().as_u16();
    let count = r
        .headers()
        .get("x-result-count")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.json().await.unwrap_or(Value::Null), count)
}

fn uuids(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x["uuid"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn an_allocators_reads_show_only_its_binding() {
    let app = spawn_manual_app().await;
    let alloc = read_token(&app, "demo-allocator.token");
    let sp = read_token(&app, "demo.token");
    // Offerings: only the ones it may order from, with the guide's filters.
    let (status, list, count) = read(&app, &alloc, "/v1/allocations/offerings?state=Active").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(uuids(&list), [demo::ALLOCATION_OFFERING_UUID]);
    assert_eq!(count.as_deref(), Some("1"));
    let (_, list, _) = read(&app, &alloc, "/v1/allocations/offerings?name_exact=LUMI").await;
    assert!(list.as_array().unwrap().is_empty(), "{list}");
    let (status, one, _) = read(
        &app,
        &alloc,
        &format!(
            "/v1/allocations/offerings/{}",
            demo::ALLOCATION_OFFERING_UUID
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["components"][0]["billing_type"], "limit");
    assert_eq!(one["plans"][0]["uuid"], demo::ALLOCATION_PLAN_UUID);
    let (status, _, _) = read(
        &app,
        &alloc,
        &format!("/v1/allocations/offerings/{}", demo::LUMI_OFFERING_UUID),
    )
    .await;
    assert_eq!(status, 403);
    // Projects: its customer's and its own project, nothing else.
    let (status, list, _) = read(&app, &alloc, "/v1/allocations/projects").await;
    assert_eq!(status, 200, "{list}");
    let mut got = uuids(&list);
    got.sort();
    assert_eq!(
        got,
        [
            demo::ALLOCATOR_PROJECT_UUID,
            demo::ALLOCATOR_REVIEW_PROJECT_UUID
        ]
    );
    // Orders and resources of a project it allocates for; another project is 403.
    let review = demo::ALLOCATOR_REVIEW_PROJECT_UUID;
    let (status, list, _) = read(
        &app,
        &alloc,
        &format!("/v1/allocations/orders?project_uuid={review}&state=pending-consumer"),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    let (status, list, _) = read(
        &app,
        &alloc,
        &format!("/v1/allocations/resources?project_uuid={review}&page_size=100"),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let ok = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["uuid"] == demo::ALLOCATOR_RESOURCE_UUID)
        .expect("the demo allocation");
    assert_eq!(ok["state"], "OK");
    assert_eq!(ok["limits"]["cpu_k_hours"], 100);
    assert!(ok.get("options").is_some());
    for path in [
        format!(
            "/v1/allocations/orders?project_uuid={}",
            demo::PROJECT_A_UUID
        ),
        format!(
            "/v1/allocations/resources?project_uuid={}",
            demo::PROJECT_A_UUID
        ),
        format!(
            "/v1/allocations/resources?customer_uuid={}",
            demo::CONSUMER_CUSTOMER_UUID
        ),
    ] {
        let (status, p, _) = read(&app, &alloc, &path).await;
        assert_eq!(status, 403, "{path}: {p}");
    }
    // The service provider's site cannot read them.
    let (status, _, _) = read(&app, &sp, "/v1/allocations/offerings").await;
    assert_eq!(status, 403);
}

/// The same following on the Redis store: the create waits through the consumer's review and
/// the provider's, then succeeds with the resource; no attempt is used while it waits.
#[tokio::test]
async fn an_allocation_is_followed_to_ok_on_redis_too() {
    let app = spawn_redis_app().await;
    provider_reviews(&app).await;
    let alloc = read_token(&app, "demo-allocator.token");
    let project = format!("project_uuid={}", demo::ALLOCATOR_REVIEW_PROJECT_UUID);
    let (status, job) = send(
        &app,
        reqwest::Method::POST,
        "/v1/allocations",
        &alloc,
        Some("redis-1"),
        Some(create_body()),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["job_id"].as_str().unwrap().to_string();
    let order = provider_pending_order(&app, &project).await;
    // While the provider has not reviewed it, the job is not finished and holds the order.
    let waiting = app.job(&alloc, &id).await;
    assert!(
        ["queued", "running", "retrying"].contains(&waiting["state"].as_str().unwrap()),
        "{waiting}"
    );
    as_provider(
        &app,
        reqwest::Method::POST,
        &format!("marketplace-orders/{order}/approve_by_provider/"),
        Some(json!({})),
    )
    .await;
    let job = finished(&app, &alloc, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["order_uuid"], order.as_str());
    assert!(job["attempts"].as_u64().unwrap() <= 1, "{job}");
}

#[tokio::test]
async fn a_create_waiting_for_review_holds_back_no_other_create_in_the_project() {
    let app = spawn_app().await;
    let alloc = read_token(&app, "demo-allocator.token");
    // The first waits for the consumer's review (not approved by the job).
    let mut waiting = create_body();
    waiting["approve_as_consumer"] = json!(false);
    waiting["attributes"]["name"] = json!("Waits for review");
    let (status, first) = send(
        &app,
        reqwest::Method::POST,
        "/v1/allocations",
        &alloc,
        Some("wait-1"),
        Some(waiting),
    )
    .await;
    assert_eq!(status, 202, "{first}");
    let first_id = first["job_id"].as_str().unwrap().to_string();
    for _ in 0..400 {
        let job = app.job(&alloc, &first_id).await;
        if job["result"]["order_state"] == "pending-consumer" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // A second create in the same project is delivered and finished meanwhile.
    let (status, second) = send(
        &app,
        reqwest::Method::POST,
        "/v1/allocations",
        &alloc,
        Some("wait-2"),
        Some(create_body()),
    )
    .await;
    assert_eq!(status, 202, "{second}");
    let second = finished(&app, &alloc, second["job_id"].as_str().unwrap()).await;
    assert_eq!(second["state"], "succeeded", "{second}");
    let first = app.job(&alloc, &first_id).await;
    assert_eq!(
        first["result"]["order_state"], "pending-consumer",
        "{first}"
    );
    assert!(
        ["queued", "retrying"].contains(&first["state"].as_str().unwrap()),
        "{first}"
    );
}

#[tokio::test]
async fn a_null_end_date_clears_it() {
    let app = spawn_app().await;
    let alloc = read_token(&app, "demo-allocator.token");
    let resource = demo::ALLOCATOR_RESOURCE_UUID;
    let path = format!("/v1/allocations/resources/{resource}");
    for (body, expected) in [
        (json!({"end_date": "2027-12-31"}), json!("2027-12-31")),
        (json!({"end_date": null}), Value::Null),
    ] {
        let (status, job) = send(
            &app,
            reqwest::Method::PATCH,
            &path,
            &alloc,
            None,
            Some(body),
        )
        .await;
        assert_eq!(status, 202, "{job}");
        let job = finished(&app, &alloc, job["job_id"].as_str().unwrap()).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        let r = as_provider(
            &app,
            reqwest::Method::GET,
            &format!("marketplace-provider-resources/{resource}/"),
            None,
        )
        .await;
        assert_eq!(r["end_date"], expected, "{r}");
    }
    let patches: Vec<Value> = app
        .sim_calls("/api/marketplace-resources/")
        .await
        .into_iter()
        .filter(|c| c["method"] == "PATCH")
        .collect();
    assert_eq!(
        patches.last().unwrap()["body"],
        json!({"end_date": null}),
        "{patches:?}"
    );
}

#[tokio::test]
async fn a_change_of_one_limit_keeps_the_others_and_an_empty_change_is_refused() {
    let app = spawn_app().await;
    let alloc = read_token(&app, "demo-allocator.token");
    let resource = demo::ALLOCATOR_RESOURCE_UUID;
    for (path, body, field) in [
        ("limits", json!({"limits": {}}), "limits"),
        ("options", json!({"options": {}}), "options"),
    ] {
        let (status, p) = send(
            &app,
            reqwest::Method::POST,
            &format!("/v1/allocations/resources/{resource}/{path}"),
            &alloc,
            None,
            Some(body),
        )
        .await;
        assert_eq!(status, 422, "{p}");
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    let (status, job) = send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/allocations/resources/{resource}/limits"),
        &alloc,
        None,
        Some(json!({"limits": {"cpu_k_hours": 200}})),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let job = finished(&app, &alloc, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let r = as_provider(
        &app,
        reqwest::Method::GET,
        &format!("marketplace-provider-resources/{resource}/"),
        None,
    )
    .await;
    assert_eq!(
        r["limits"],
        json!({"cpu_k_hours": 200, "gpu_k_hours": 5, "gb_k_hours": 10}),
        "{r}"
    );
}

#[tokio::test]
async fn the_spelling_of_a_number_does_not_make_another_request() {
    let app = spawn_manual_app().await;
    let alloc = read_token(&app, "demo-allocator.token");
    let mut ids = vec![];
    for spelling in ["100", "100.0", "1e2"] {
        let mut body = create_body();
        body["limits"]["cpu_k_hours"] = serde_json::from_str(spelling).unwrap();
        let (status, job) = send(
            &app,
            reqwest::Method::POST,
            "/v1/allocations",
            &alloc,
            Some("same-amounts"),
            Some(body),
        )
        .await;
        assert!(status == 202 || status == 200, "{spelling}: {status} {job}");
        ids.push(job["job_id"].as_str().unwrap().to_string());
    }
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
}

/// Waits until the job follows an order in `state`; the order's uuid.
async fn following(app: &TestApp, token: &str, id: &str, state: &str) -> String {
    for _ in 0..400 {
        let job = app.job(token, id).await;
        if job["result"]["order_state"] == state {
            return job["result"]["order_uuid"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} never followed an order in {state}");
}

#[tokio::test]
async fn a_job_whose_order_exists_is_not_canceled_and_ends_with_the_orders_state() {
    let app = spawn_app().await;
    let alloc = read_token(&app, "demo-allocator.token");
    let sp = read_token(&app, "demo.token");
    let mut body = create_body();
    body["approve_as_consumer"] = json!(false);
    let (status, job) = send(
        &app,
        reqwest::Method::POST,
        "/v1/allocations",
        &alloc,
        Some("c-1"),
        Some(body),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["job_id"].as_str().unwrap().to_string();
    let order = following(&app, &alloc, &id, "pending-consumer").await;
    // A service provider's site with jobs:admin reads it, but neither cancels nor retries it.
    let (status, _) = send(
        &app,
        reqwest::Method::GET,
        &format!("/v1/jobs/{id}"),
        &sp,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    for action in ["cancel", "retry"] {
        let (status, p) = send(
            &app,
            reqwest::Method::POST,
            &format!("/v1/jobs/{id}/{action}"),
            &sp,
            None,
            None,
        )
        .await;
        assert_eq!(status, 403, "{action}: {p}");
    }
    // Its own site is told to cancel the order instead.
    let (status, p) = send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/jobs/{id}/cancel"),
        &alloc,
        None,
        None,
    )
    .await;
    assert_eq!(status, 409, "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("/v1/allocations/orders/{order}/cancel")),
        "{p}"
    );
    let (status, j) = send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/allocations/orders/{order}/reject"),
        &alloc,
        None,
        Some(json!({"comment": "not now"})),
    )
    .await;
    assert_eq!(status, 202, "{j}");
    let job = finished(&app, &alloc, &id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["result"]["order_state"], "rejected", "{job}");
}

#[tokio::test]
async fn a_refused_allocator_token_is_named_as_that_identitys() {
    let app = spawn_app().await;
    let alloc = read_token(&app, "demo-allocator.token");
    let fault = app
        .sim_post("faults", &json!({"kind": "error", "status": 401}))
        .await;
    assert_eq!(fault.status(), 201);
    let (status, p) = send(
        &app,
        reqwest::Method::POST,
        "/v1/allocations",
        &alloc,
        Some("refused-1"),
        Some(create_body()),
    )
    .await;
    assert_eq!(status, 502, "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("`demo-allocator`"), "{p}");
    assert!(
        !detail.contains("service-provider") && !detail.contains("/readyz"),
        "{p}"
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("puhuri_gateway_upstream_token_refused_total{"))
        .collect();
    assert!(
        refused
            .iter()
            .any(|l| l.contains("identity=\"demo-allocator\"") && l.contains("status=\"401\"")),
        "{refused:?}"
    );
}

/// An allocator's write answers as the document's `Queued` says: 202 with `Location` naming the
/// job, and the same job again, 200 with the same `Location`, for the same `Idempotency-Key`
/// (with `Preference-Applied` when the request had `Prefer: wait`).
#[tokio::test]
async fn an_allocators_write_answers_202_then_200_with_the_jobs_location() {
    let app = spawn_manual_app().await;
    let alloc = read_token(&app, "demo-allocator.token");
    let create = |prefer: Option<&str>| {
        let mut req = app
            .client
            .post(app.url("/v1/allocations"))
            .bearer_auth(&alloc)
            .header("Idempotency-Key", "queued-answers")
            .json(&create_body());
        if let Some(p) = prefer {
            req = req.header("Prefer", p);
        }
        req.send()
    };
    let first = create(None).await.unwrap();
    assert_eq!(first.status(), 202);
    let location = first.headers()["location"].to_str().unwrap().to_string();
    let job: Value = first.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/jobs/{}", job["job_id"].as_str().unwrap())
    );
    let again = create(Some("wait=0")).await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["location"].to_str().unwrap(), location);
    assert_eq!(again.headers()["preference-applied"], "wait=0");
}
