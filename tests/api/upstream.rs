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
    let base = app.url("");
    let within = std::time::Duration::from_secs(10);
    crate::support::poll::job_where(&app.client, &base, token, job, within, |state| {
        !matches!(state, "queued" | "running")
    })
    .await
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
    assert_eq!(failed["failure_code"], "upstream_forbidden", "{failed}");
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
        metrics.lines().any(
            |l| l.starts_with("puhuri_gateway_upstream_token_refused_total{")
                && l.contains("identity=\"sp\"")
                && l.contains("status=\"403\"")
        ),
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
    let succeeded = settled(&app, &token, &job).await;
    assert_eq!(succeeded["state"], "succeeded");
    assert!(succeeded.get("failure_code").is_none(), "{succeeded}");
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 200, "{ready}");
}

#[tokio::test]
async fn fact_6_an_html_error_page_is_transient_with_a_short_plain_excerpt() {
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
    assert_eq!(
        retrying["failure_code"], "upstream_unavailable",
        "{retrying}"
    );
}

#[tokio::test]
async fn fact_6_and_8_requests_waldur_would_refuse_or_fail_on_are_refused_up_front() {
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

/// Fact 2: Waldur answers `set_usage` for a resource the token may not report on with 403 (not a
/// 400). The job fails at once with the forbidden code; the call is made once, never retried.
#[tokio::test]
async fn fact_2_set_usage_without_permission_fails_the_job_as_forbidden() {
    let app = spawn_app().await;
    let token = alpha_token();
    let settings = app
        .sim_post(
            "settings",
            &json!({"read_only_offerings": [demo::LUMI_OFFERING_UUID]}),
        )
        .await;
    assert_eq!(settings.status(), 200);
    let job = accepted(usage(&app, &token, "4").await).await;
    let failed = settled(&app, &token, &job).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["last_status"], 403, "{failed}");
    assert_eq!(failed["failure_code"], "upstream_forbidden", "{failed}");
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.starts_with("upstream_forbidden: "), "{error}");
    assert_eq!(failed["attempts"], 1, "{failed}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.job(&token, &job).await["attempts"], 1);
    let calls = app.sim_calls("set_usage").await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["status"], 403, "{calls:?}");
    assert_eq!(
        calls[0]["fault"],
        Value::Null,
        "Waldur's own answer, not a fault"
    );
}

/// The query string of the last call the simulator received at `path` (exactly), as pairs.
async fn last_query(app: &TestApp, path: &str) -> Vec<(String, String)> {
    let calls = app.sim_calls(path).await;
    let call = calls
        .iter()
        .rev()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no call to {path}: {calls:?}"));
    url::form_urlencoded::parse(call["query"].as_str().unwrap().as_bytes())
        .into_owned()
        .collect()
}

fn values<'a>(query: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    query
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn dashed(u: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &u[..8],
        &u[8..12],
        &u[12..16],
        &u[16..20],
        &u[20..]
    )
}

/// Fact 5: Waldur refuses a state in the wrong case and a malformed uuid filter with 400, and
/// matches a dashed uuid like the undashed one. The gateway validates its read filters itself,
/// forwards Waldur's exact names and the 32-digit uuid, and answers a bad filter with a
/// problem+json 400 without asking Puhuri.
#[tokio::test]
async fn fact_5_read_filters_are_validated_and_normalised_before_forwarding() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    // Orders: states in any case, a dashed upper-case resource uuid.
    let response = app
        .get_as(
            &format!(
                "/v1/orders?state=EXECUTING,Pending-Provider&state=executing&type=create&resource_uuid={}",
                dashed(&demo::RESOURCE_CREATING_UUID.to_uppercase())
            ),
            &token,
        )
        .await;
    assert_eq!(response.status(), 200);
    let query = last_query(&app, "/api/marketplace-orders/").await;
    assert_eq!(values(&query, "state"), ["executing", "pending-provider"]);
    assert_eq!(values(&query, "type"), ["Create"]);
    assert_eq!(
        values(&query, "resource_uuid"),
        [demo::RESOURCE_CREATING_UUID]
    );
    // Resources: `ok` is sent as `OK`, a dashed offering uuid undashed; the answer matches the
    // exact form's.
    let response = app
        .get_as(
            &format!(
                "/v1/resources?state=ok&offering_uuid={}",
                dashed(ALPHA_OFFERING)
            ),
            &token,
        )
        .await;
    assert_eq!(response.status(), 200);
    let loose: Value = response.json().await.unwrap();
    let query = last_query(&app, "/api/marketplace-provider-resources/").await;
    assert_eq!(values(&query, "state"), ["OK"]);
    assert_eq!(values(&query, "offering_uuid"), [ALPHA_OFFERING]);
    let exact: Value = app
        .get_as(
            &format!("/v1/resources?state=OK&offering_uuid={ALPHA_OFFERING}"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(loose, exact);
    assert!(!exact.as_array().unwrap().is_empty());
    // People: dashed uuids.
    let response = app
        .get_as(
            &format!(
                "/v1/project-permissions?user_uuid={}",
                dashed(demo::USER_ALICE_UUID)
            ),
            &token,
        )
        .await;
    assert_eq!(response.status(), 200);
    // Bad filters: a problem+json 400 naming the value, and nothing asked of Puhuri.
    app.client
        .delete(format!("{}calls", app.sim))
        .send()
        .await
        .unwrap();
    for (path, needle) in [
        ("/v1/orders?state=bogus", "bogus"),
        ("/v1/orders?type=delete", "delete"),
        ("/v1/orders?resource_uuid=7e00", "resource_uuid"),
        ("/v1/resources?state=fine", "fine"),
        ("/v1/resources?offering_uuid=nope", "offering_uuid"),
        ("/v1/ssh-keys?user_uuid=123", "user_uuid"),
        ("/v1/project-permissions?project_uuid=x", "project_uuid"),
    ] {
        let response = app.get_as(path, &token).await;
        let problem = assert_problem(response, 400, "invalid_query").await;
        assert!(
            problem["detail"].as_str().unwrap().contains(needle),
            "{path}: {problem}"
        );
    }
    let calls = app.sim_calls("/api/").await;
    assert!(calls.is_empty(), "{calls:?}");
}

/// Fact 9: Waldur's `Link` always carries `first` and `last`, page 1's URL has no `page=`, and
/// the query is re-encoded sorted by key. The gateway follows `rel="next"` as Waldur wrote it,
/// and does the same with the simpler page-number form: a project whose only resource is on the
/// third page of 300 (the scan's page size, Waldur's largest) is found either way. A fresh
/// gateway per form: the site's projects are cached for a minute.
#[tokio::test]
async fn fact_9_paging_follows_waldurs_link_in_either_form() {
    let token = alpha_token();
    for form in ["waldur", "page_numbers"] {
        let app = spawn_manual_app().await;
        let seeded = app
        .sim_post(
            "resources",
            &json!({"count": 650, "offering_uuid": ALPHA_OFFERING, "project_uuid": demo::PROJECT_A_UUID}),
        )
        .await;
        assert_eq!(seeded.status(), 201);
        // Created last, so listed last (oldest first): on page 3.
        let seeded = app
        .sim_post(
            "resources",
            &json!({"count": 1, "offering_uuid": ALPHA_OFFERING, "project_uuid": demo::PROJECT_SP_UUID, "backend_id_prefix": "late"}),
        )
        .await;
        assert_eq!(seeded.status(), 201, "{}", seeded.text().await.unwrap());
        // The token's user may only look at the offering (not own the provider's organisation),
        // so Puhuri refuses the offering's project view and the gateway scans the site's
        // resources for its projects: the read that pages through Waldur's lists.
        let settings = app
            .sim_post(
                "settings",
                &json!({"link_form": form, "read_only_offerings": [ALPHA_OFFERING]}),
            )
            .await;
        assert_eq!(settings.status(), 200);
        app.client
            .delete(format!("{}calls", app.sim))
            .send()
            .await
            .unwrap();
        let response = app.get_as("/v1/projects?page_size=100", &token).await;
        assert_eq!(response.status(), 200, "{form}");
        let projects: Value = response.json().await.unwrap();
        let uuids: Vec<&str> = projects
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["uuid"].as_str())
            .collect();
        assert!(uuids.contains(&demo::PROJECT_SP_UUID), "{form}: {projects}");
        let pages: Vec<String> = app
            .sim_calls("/api/marketplace-provider-resources/")
            .await
            .iter()
            .filter(|c| c["path"] == "/api/marketplace-provider-resources/")
            .map(|c| c["query"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(pages.len(), 3, "{form}: {pages:?}");
        assert!(!pages[0].contains("page="), "{form}: {pages:?}");
        assert!(pages[1].contains("page=2"), "{form}: {pages:?}");
        assert!(pages[2].contains("page=3"), "{form}: {pages:?}");
    }
}

/// Calls the simulator's API as the demo service provider (what Puhuri itself would be asked).
async fn puhuri_post(app: &TestApp, path: &str, body: &Value) -> Value {
    app.puhuri(reqwest::Method::POST, path, demo::TOKEN, Some(body))
        .await
}

/// Fact 3: a Basic offering's order has `resource_uuid: null`; the marketplace resource is only
/// in `marketplace_resource_uuid`. The gateway's order names the marketplace resource, and
/// writes on it reach that resource.
#[tokio::test]
async fn fact_3_an_orders_resource_is_its_marketplace_resource() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let waldur = app
        .sim_get(&format!("state/order/{}", demo::ORDER_PENDING_UUID))
        .await;
    assert_eq!(waldur["resource_uuid"], Value::Null, "{waldur}");
    assert_eq!(
        waldur["marketplace_resource_uuid"],
        demo::RESOURCE_CREATING_UUID
    );
    let response = app
        .get_as(&format!("/v1/orders/{}", demo::ORDER_PENDING_UUID), &token)
        .await;
    assert_eq!(response.status(), 200);
    let order: Value = response.json().await.unwrap();
    assert_eq!(
        order["resource_uuid"],
        demo::RESOURCE_CREATING_UUID,
        "{order}"
    );
    let listed: Value = app
        .get_as("/v1/orders?state=pending-provider", &token)
        .await
        .json()
        .await
        .unwrap();
    let listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["uuid"] == demo::ORDER_PENDING_UUID)
        .cloned()
        .unwrap();
    assert_eq!(listed["resource_uuid"], demo::RESOURCE_CREATING_UUID);
}

/// Fact 4: Waldur accepts and stores a negative usage amount (201): only the gateway can refuse
/// it, and does, before anything is queued or sent.
#[tokio::test]
async fn fact_4_a_negative_usage_is_refused_by_the_gateway() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    for amount in [json!(-1), json!("-0.01"), json!("-5")] {
        let response = app
            .post_usage(
                &token,
                &json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": amount}}),
            )
            .await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert!(problem.to_string().contains("cpu_k_hours"), "{problem}");
    }
    app.drain().await;
    assert!(app.sim_calls("set_usage").await.is_empty());
}

/// Fact 10: Terminate orders carry `plan: null`, `cost: null` and no `plan_uuid` / `plan_name`.
/// The gateway reads and lists them without a plan, and approves them.
#[tokio::test]
async fn fact_10_a_terminate_order_without_a_plan_is_read_listed_and_approved() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let answer = puhuri_post(
        &app,
        &format!(
            "marketplace-resources/{}/terminate/",
            demo::RESOURCE_OK_UUID
        ),
        &json!({}),
    )
    .await;
    let uuid = answer["order_uuid"].as_str().unwrap().to_string();
    let waldur = app.sim_get(&format!("state/order/{uuid}")).await;
    assert_eq!(waldur["plan"], Value::Null);
    assert!(waldur.get("plan_uuid").is_none(), "{waldur}");
    let response = app.get_as(&format!("/v1/orders/{uuid}"), &token).await;
    assert_eq!(response.status(), 200);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["type"], "Terminate", "{order}");
    assert_eq!(order["plan_uuid"], Value::Null, "{order}");
    assert_eq!(order["plan_name"], Value::Null, "{order}");
    assert_eq!(order["resource_uuid"], demo::RESOURCE_OK_UUID, "{order}");
    let listed: Value = app
        .get_as("/v1/orders?type=Terminate&state=all", &token)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        listed.as_array().unwrap().iter().any(|o| o["uuid"] == uuid),
        "{listed}"
    );
    assert_eq!(order["state"], "pending-provider", "{order}");
    let job = accepted(
        app.post_json(&format!("/v1/orders/{uuid}/approve"), &token, &json!({}))
            .await,
    )
    .await;
    let job = delivered(&app, &token, &job).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        app.sim_calls(&format!("{uuid}/approve_by_provider"))
            .await
            .len(),
        1
    );
}

/// Fact 11: `set_state_erred` puts the message on the order only, not on the resource. What the
/// site reads back through the gateway says the same.
#[tokio::test]
async fn fact_11_erred_shows_on_the_order_not_the_resource() {
    let app = spawn_manual_app().await;
    // The Slurm offering is beta's; Waldur allows set_state_erred only there.
    let token = beta_token();
    let order_path = format!("/v1/orders/{}", demo::ORDER_SLURM_EXECUTING_UUID);
    let job = accepted(
        app.post_json(
            &format!("{order_path}/erred"),
            &token,
            &json!({"message": "sacctmgr failed"}),
        )
        .await,
    )
    .await;
    assert_eq!(delivered(&app, &token, &job).await["state"], "succeeded");
    let order: Value = app.get_as(&order_path, &token).await.json().await.unwrap();
    assert_eq!(order["state"], "erred", "{order}");
    assert_eq!(order["error_message"], "sacctmgr failed", "{order}");
    let resource: Value = app
        .get_as(
            &format!("/v1/resources/{}", demo::RESOURCE_SLURM_UUID),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(resource["error_message"], "sacctmgr failed", "{resource}");
}

/// Fact 12: after approve or reject, Waldur fills `provider_reviewed_by` and
/// `provider_reviewed_at`; the gateway's order shows who reviewed it and when.
#[tokio::test]
async fn fact_12_the_providers_review_shows_on_the_order() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let order_path = format!("/v1/orders/{}", demo::ORDER_PENDING_UUID);
    let before: Value = app.get_as(&order_path, &token).await.json().await.unwrap();
    assert_eq!(before["provider_reviewed_at"], Value::Null, "{before}");
    let job = accepted(
        app.post_json(&format!("{order_path}/approve"), &token, &json!({}))
            .await,
    )
    .await;
    assert_eq!(delivered(&app, &token, &job).await["state"], "succeeded");
    let after: Value = app.get_as(&order_path, &token).await.json().await.unwrap();
    assert_eq!(
        after["provider_reviewed_by_username"], "lumi-sp-bot",
        "{after}"
    );
    assert!(after["provider_reviewed_at"].is_string(), "{after}");
}

/// A 401 from Puhuri (the token itself is not accepted) fails the job at once with its own code.
#[tokio::test]
async fn a_token_puhuri_does_not_accept_fails_the_job_as_unauthorized() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let fault = app
        .sim_post(
            "faults",
            &json!({"kind": "error", "status": 401, "path_prefix": "marketplace-component-usages/"}),
        )
        .await;
    assert_eq!(fault.status(), 201);
    let job = accepted(usage(&app, &token, "5").await).await;
    let failed = delivered(&app, &token, &job).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["last_status"], 401, "{failed}");
    assert_eq!(failed["failure_code"], "upstream_unauthorized", "{failed}");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .starts_with("upstream_unauthorized: "),
        "{failed}"
    );
}
