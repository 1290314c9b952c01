//! Usage reports through the gateway to the simulator: validation, scoping, coalescing,
//! idempotency and delivery outcomes.

use puhuri_gateway::sim::demo;
use serde_json::{Value, json};

use crate::helpers::*;

fn report(resource: &str, usages: Value) -> Value {
    json!({"resource_uuid": resource, "usages": usages})
}

#[tokio::test]
async fn a_report_is_accepted_then_delivered_as_set_usage() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let response = app
        .post_usage(
            &token,
            &report(
                demo::RESOURCE_OK_UUID,
                json!({"cpu_k_hours": "12.345", "gpu_k_hours": 3}),
            ),
        )
        .await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["state"], "queued");
    assert_eq!(
        location,
        format!("/v1/jobs/{}", job["job_id"].as_str().unwrap())
    );
    // Rounded half-to-even to two places before queueing.
    assert_eq!(job["payload"]["usages"]["cpu_k_hours"], "12.34");

    app.drain().await;
    let done = app.job(&token, job["job_id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1);

    let calls = app.sim_calls("set_usage").await;
    assert_eq!(calls.len(), 1);
    let body = &calls[0]["body"];
    assert_eq!(body["resource"], demo::RESOURCE_OK_UUID);
    assert!(body["date"].as_str().unwrap().ends_with("-15T12:00:00Z"));
    let usages = app
        .sim_get(&format!("state/usages/{}", demo::RESOURCE_OK_UUID))
        .await;
    let this_month = chrono::Utc::now().format("%Y-%m-01").to_string();
    let cpu = usages
        .as_array()
        .unwrap()
        .iter()
        .find(|u| {
            u["type"] == "cpu_k_hours"
                && u["billing_period"]
                    .as_str()
                    .unwrap()
                    .starts_with(&this_month)
        })
        .expect("cpu usage stored");
    assert_eq!(cpu["usage"], "12.34");
}

#[tokio::test]
async fn a_resource_can_be_named_by_its_backend_id() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let resource = app
        .sim_get(&format!("state/resource/{}", demo::RESOURCE_OK_UUID))
        .await;
    let backend_id = resource["backend_id"]
        .as_str()
        .expect("the demo resource has a backend_id");
    let response = app
        .post_usage(
            &token,
            &json!({"resource_backend_id": backend_id, "usages": {"cpu_k_hours": 1}}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["payload"]["resource_uuid"], demo::RESOURCE_OK_UUID);
    let response = app
        .post_usage(
            &token,
            &json!({"resource_backend_id": "no-such-backend-id", "usages": {"cpu_k_hours": 1}}),
        )
        .await;
    assert_problem(response, 404, "not_found").await;
}

#[tokio::test]
async fn invalid_fields_are_all_reported_and_nothing_is_stored() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let response = app
        .post_usage(
            &token,
            &json!({"resource_uuid": "nope", "month": "2026-13", "usages": {"cpu_k_hours": -1, "bad type": 1, "gpu_k_hours": "x"}}),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for expected in [
        "resource_uuid",
        "month",
        "usages.cpu_k_hours",
        "usages.bad type",
        "usages.gpu_k_hours",
    ] {
        assert!(fields.contains(&expected), "{expected} in {fields:?}");
    }
    let response = app
        .post_usage(
            &token,
            &json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {}}),
        )
        .await;
    assert_problem(response, 422, "validation_failed").await;
    let list: Value = app.get_as("/v1/jobs", &token).await.json().await.unwrap();
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn unknown_components_are_named() {
    let app = spawn_manual_app().await;
    let response = app
        .post_usage(
            &alpha_token(),
            &report(
                demo::RESOURCE_OK_UUID,
                json!({"cpu_k_hours": 1, "tpu_hours": 2}),
            ),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "usages.tpu_hours");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cpu_k_hours")
    );
}

#[tokio::test]
async fn body_problems_are_problem_documents() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let send = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/v1/usage"))
            .bearer_auth(&token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    assert_problem(
        send("{not json", "application/json").await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert_problem(
        send("{}", "text/plain").await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    assert_problem(
        send(r#"{"usages": {}, "surprise": 1}"#, "application/json")
            .await
            .unwrap(),
        400,
        "invalid_json",
    )
    .await;
    let big = format!(r#"{{"description": "{}"}}"#, "x".repeat(300 * 1024));
    let response = app
        .client
        .post(app.url("/v1/usage"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn another_sites_resource_and_another_providers_resource_are_403() {
    let app = spawn_manual_app().await;
    // beta is bound to the second offering: the LUMI resource is not its.
    let response = app
        .post_usage(
            &beta_token(),
            &report(demo::RESOURCE_OK_UUID, json!({"cpu_k_hours": 1})),
        )
        .await;
    let beta_refusal = assert_problem(response, 403, "forbidden").await;
    // A uuid that exists nowhere gets the same answer: existence is not revealed.
    let response = app
        .post_usage(
            &alpha_token(),
            &report(
                "ffffffffffff4fff8fffffffffffffff",
                json!({"cpu_k_hours": 1}),
            ),
        )
        .await;
    let missing = assert_problem(response, 403, "forbidden").await;
    assert_eq!(beta_refusal["detail"], missing["detail"]);
    assert!(app.sim_calls("set_usage").await.is_empty());
}

#[tokio::test]
async fn a_missing_scope_is_403() {
    let app = spawn_manual_app().await;
    let mut c = claims("alpha");
    c["scope"] = json!("read");
    let token = sign(
        jsonwebtoken::Algorithm::EdDSA,
        "alpha-ed",
        "ed25519.key",
        &c,
    );
    let response = app
        .post_usage(
            &token,
            &report(demo::RESOURCE_OK_UUID, json!({"cpu_k_hours": 1})),
        )
        .await;
    let www = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(www.contains("insufficient_scope"), "{www}");
    assert_problem(response, 403, "insufficient_scope").await;
}

#[tokio::test]
async fn a_newer_value_supersedes_a_queued_one_and_an_unchanged_value_is_not_resent() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let first: Value = app
        .post_usage(
            &token,
            &report(
                demo::RESOURCE_OK_UUID,
                json!({"cpu_k_hours": 10, "gpu_k_hours": 1}),
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .post_usage(
            &token,
            &report(demo::RESOURCE_OK_UUID, json!({"cpu_k_hours": 20})),
        )
        .await
        .json()
        .await
        .unwrap();
    let first = app.job(&token, first["job_id"].as_str().unwrap()).await;
    assert_eq!(first["state"], "superseded");
    assert_eq!(first["superseded_by"], second["job_id"]);
    app.drain().await;
    let second = app.job(&token, second["job_id"].as_str().unwrap()).await;
    assert_eq!(second["state"], "succeeded");
    // The newer job carried the older one's gpu value too.
    assert_eq!(
        second["result"]["sent"],
        json!({"cpu_k_hours": "20.00", "gpu_k_hours": "1.00"})
    );
    assert_eq!(app.sim_calls("set_usage").await.len(), 1);

    // The same totals again: succeeded without a call.
    let again: Value = app
        .post_usage(
            &token,
            &report(
                demo::RESOURCE_OK_UUID,
                json!({"cpu_k_hours": 20, "gpu_k_hours": 1}),
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    app.drain().await;
    let again = app.job(&token, again["job_id"].as_str().unwrap()).await;
    assert_eq!(again["state"], "succeeded");
    assert_eq!(again["result"]["sent"], json!({}));
    assert_eq!(app.sim_calls("set_usage").await.len(), 1);
}

#[tokio::test]
async fn idempotency_keys_return_the_same_job_or_refuse_another_body() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let send = |body: Value| {
        app.client
            .post(app.url("/v1/usage"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "nightly-2026-11-23")
            .json(&body)
            .send()
    };
    let body = report(demo::RESOURCE_OK_UUID, json!({"cpu_k_hours": 5}));
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let repeat = send(body).await.unwrap();
    assert_eq!(repeat.status(), 200);
    let repeat: Value = repeat.json().await.unwrap();
    assert_eq!(first["job_id"], repeat["job_id"]);
    let other = send(report(demo::RESOURCE_OK_UUID, json!({"cpu_k_hours": 6})))
        .await
        .unwrap();
    assert_problem(other, 422, "idempotency_key_reused").await;
}

#[tokio::test]
async fn a_closed_period_fails_at_once_with_the_reason() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let month = "2026-01";
    let response = app
        .sim_post("periods/close", &json!({"month": month}))
        .await;
    assert!(
        response.status().is_success(),
        "closing a period: {}",
        response.status()
    );
    let job: Value = app
        .post_usage(&token, &json!({"resource_uuid": demo::RESOURCE_OK_UUID, "month": month, "usages": {"cpu_k_hours": 1}}))
        .await
        .json()
        .await
        .unwrap();
    app.drain().await;
    let job = app.job(&token, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["last_status"], 400);
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("closed"),
        "{job}"
    );
}

#[tokio::test]
async fn transient_upstream_errors_are_retried_and_permanent_ones_are_not() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let fault = app
        .sim_post("faults", &json!({"kind": "error", "path_prefix": "/api/marketplace-component-usages/set_usage/", "status": 503, "rate": 1.0}))
        .await;
    assert!(
        fault.status().is_success(),
        "{}",
        fault.text().await.unwrap()
    );
    let job: Value = app
        .post_usage(
            &token,
            &report(demo::RESOURCE_OK_UUID, json!({"cpu_k_hours": 7})),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = job["job_id"].as_str().unwrap();
    app.worker.try_execute_one().await.unwrap();
    let job = app.job(&token, id).await;
    assert_eq!(job["state"], "retrying", "{job}");
    assert_eq!(job["last_status"], 503);
    assert!(job["next_attempt_at"].is_string());
}

#[tokio::test]
async fn prefer_wait_answers_with_the_outcome() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/v1/usage"))
        .bearer_auth(alpha_token())
        .header("Prefer", "wait=5")
        .json(&report(
            demo::RESOURCE_OK_UUID,
            json!({"gb_k_hours": "2.5"}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["preference-applied"], "wait=5");
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["state"], "succeeded");
}

#[tokio::test]
async fn a_batch_gives_a_result_per_report() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let response = app
        .post_json(
            "/v1/usage/batch",
            &token,
            &json!({"reports": [
                report(demo::RESOURCE_OK_UUID, json!({"cpu_k_hours": 1})),
                report(demo::RESOURCE_OK_UUID, json!({"nope": 1})),
                report("ffffffffffff4fff8fffffffffffffff", json!({"cpu_k_hours": 1})),
            ]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["rejected"], 2);
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![202, 422, 403]);
    assert_eq!(body["results"][1]["error"]["code"], "validation_failed");
    assert_eq!(
        body["results"][1]["error"]["errors"][0]["field"],
        "reports[1].usages.nope"
    );

    // A report outside the grammar refuses the whole batch, naming it; nothing is stored.
    let jobs_before: Value = app.get_as("/v1/jobs", &token).await.json().await.unwrap();
    let response = app
        .post_json(
            "/v1/usage/batch",
            &token,
            &json!({"reports": [
                report(demo::RESOURCE_OK_UUID, json!({"cpu_k_hours": 2})),
                {"resource_uuid": demo::RESOURCE_OK_UUID, "month": "2000-11*", "usages": {"cpu_k_hours": 2}},
            ]}),
        )
        .await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(
        problem["errors"][0]["field"], "reports[1].month",
        "{problem}"
    );
    let jobs_after: Value = app.get_as("/v1/jobs", &token).await.json().await.unwrap();
    assert_eq!(jobs_before["jobs"], jobs_after["jobs"]);

    let too_many: Vec<Value> = (0..1001)
        .map(|_| report(demo::RESOURCE_OK_UUID, json!({"cpu_k_hours": 1})))
        .collect();
    let response = app
        .post_json("/v1/usage/batch", &token, &json!({"reports": too_many}))
        .await;
    assert_problem(response, 422, "validation_failed").await;
}

#[tokio::test]
async fn jobs_are_visible_to_their_site_only_unless_admin() {
    let app = spawn_manual_app().await;
    let job: Value = app
        .post_usage(
            &alpha_token(),
            &report(demo::RESOURCE_OK_UUID, json!({"cpu_k_hours": 1})),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = job["job_id"].as_str().unwrap();
    let response = app.get_as(&format!("/v1/jobs/{id}"), &beta_token()).await;
    assert_problem(response, 404, "not_found").await;
    let list: Value = app
        .get_as("/v1/jobs", &beta_token())
        .await
        .json()
        .await
        .unwrap();
    assert!(list["jobs"].as_array().unwrap().is_empty());
    let list: Value = app
        .get_as("/v1/jobs?state=queued", &alpha_token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    let response = app.get_as("/v1/jobs?state=bogus", &alpha_token()).await;
    assert_problem(response, 400, "invalid_query").await;

    // Cancel a queued job; a second cancel is a conflict.
    let response = app
        .client
        .post(app.url(&format!("/v1/jobs/{id}/cancel")))
        .bearer_auth(alpha_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .post(app.url(&format!("/v1/jobs/{id}/cancel")))
        .bearer_auth(alpha_token())
        .send()
        .await
        .unwrap();
    assert_problem(response, 409, "conflict").await;
}

/// The delivery loops under a rate limit: eight loops share one turn while throttled, every
/// report still lands, and no one-second window of the simulator's arrivals holds more calls
/// than the limit (20 a second). 30 reports, so that windows of 21 calls exist to be checked:
/// arrival `i + 20` must come at least a second after arrival `i`. The jitter allowance is set
/// to 100 ms: starts are then 1.1 s / 19 apart and starts 20 apart 1.16 s, so a call may reach
/// the simulator up to 160 ms later than the call 20 after it on a busy machine without breaking
/// the bound (the check that two arrivals are 25 ms apart, which this replaces, failed on 30 ms
/// of jitter). Starts at 23 a second or more, or no limit, fail it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_pool_delivers_every_report_at_the_configured_pace() {
    use std::time::{Duration, Instant};

    use puhuri_gateway::startup::Workers;

    const RATE: usize = 20;
    const REPORTS: usize = 30;
    let app = spawn_app_with(
        Setup {
            redis: true,
            workers: Workers::Start,
        },
        "\n[delivery]\nworkers = 8\nmax_per_second = 20\nrate_jitter_allowance = \"100ms\"\n",
    )
    .await;
    let token = alpha_token();
    let seeded = app.sim_post("resources", &json!({"count": REPORTS})).await;
    assert_eq!(seeded.status(), 201);
    let resources: Vec<Value> = seeded.json().await.unwrap();
    let mut jobs = Vec::new();
    for r in &resources {
        let body = json!({"resource_uuid": r["uuid"], "usages": {"cpu_k_hours": "1.5"}});
        let response = app.post_usage(&token, &body).await;
        assert_eq!(response.status(), 202);
        let job: Value = response.json().await.unwrap();
        jobs.push(job["job_id"].as_str().unwrap().to_string());
    }
    // 30 starts at 20 a second take about a second and a half
    let deadline = Instant::now() + Duration::from_secs(20);
    for job in &jobs {
        loop {
            let j = app.job(&token, job).await;
            if j["state"] == "succeeded" {
                break;
            }
            assert!(Instant::now() < deadline, "not delivered in time: {j}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut arrivals: Vec<chrono::DateTime<chrono::Utc>> = app
        .sim_calls("set_usage")
        .await
        .iter()
        .map(|c| c["time"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(arrivals.len(), REPORTS);
    arrivals.sort();
    for (i, pair) in arrivals.windows(RATE + 1).enumerate() {
        let span = pair[RATE] - pair[0];
        assert!(
            span >= chrono::Duration::seconds(1),
            "{} calls within {span} (from arrival {i})",
            RATE + 1
        );
    }
}

/// The gateway on a three-master Redis Cluster (`redis.cluster`, a hash-tagged prefix): a report
/// is stored, leased, delivered and its job read back, every script on the slot's master.
#[tokio::test]
async fn a_report_is_delivered_through_a_redis_cluster() {
    let cluster = tokio::task::spawn_blocking(crate::support::redis::shared_cluster)
        .await
        .unwrap();
    let extra = format!(
        "{}cluster = true\n",
        crate::support::stores::redis_table(
            &cluster.url(),
            &crate::support::redis::unique_tagged_prefix("api")
        )
    );
    let setup = Setup {
        redis: false,
        workers: puhuri_gateway::startup::Workers::Start,
    };
    let app = spawn_app_with(setup, &extra).await;
    let response = app
        .client
        .post(app.url("/v1/usage"))
        .bearer_auth(alpha_token())
        .header("Prefer", "wait=10")
        .json(&report(
            demo::RESOURCE_OK_UUID,
            json!({"gb_k_hours": "3.5"}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["state"], "succeeded", "{job}");
    let again = app
        .job(&alpha_token(), job["job_id"].as_str().unwrap())
        .await;
    assert_eq!(again["state"], "succeeded");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

/// The gateway on Redis Sentinel (`redis+sentinel://`, `wait_replicas = 1`): reports keep coming
/// while the master is killed and a replica promoted. The gateway answers 503 while there is no
/// master, then accepts again without a restart, and every report it accepted (202) is delivered.
#[tokio::test]
async fn reports_accepted_across_a_sentinel_failover_are_all_delivered() {
    let (mut master, _replicas, sentinel) =
        tokio::task::spawn_blocking(crate::support::redis::replicated_with_sentinel)
            .await
            .unwrap();
    let extra = format!(
        "\n[redis]\nurl = \"redis+sentinel://127.0.0.1:{}/gw\"\nwait_replicas = 1\nkey_prefix = \"{}\"\npool_wait_timeout = \"500ms\"\n",
        sentinel.port(),
        crate::support::redis::unique_prefix("api-sentinel")
    );
    let setup = Setup {
        redis: false,
        workers: puhuri_gateway::startup::Workers::Start,
    };
    let app = spawn_app_with(setup, &extra).await;
    let token = alpha_token();
    let mut accepted = Vec::new();
    let mut refused = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    let mut amount = 0;
    let mut killed = false;
    while accepted.len() < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} accepted, {refused} refused",
            accepted.len()
        );
        if accepted.len() == 20 && !killed {
            master.stop();
            killed = true;
        }
        amount += 1;
        let response = app
            .post_usage(
                &token,
                &report(
                    demo::RESOURCE_OK_UUID,
                    json!({"gb_k_hours": format!("{amount}")}),
                ),
            )
            .await;
        match response.status().as_u16() {
            200 | 202 => {
                let job: Value = response.json().await.unwrap();
                accepted.push(job["job_id"].as_str().unwrap().to_string());
            }
            503 => {
                refused += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
    assert!(refused > 0, "the master's loss was never noticed");
    // Every accepted report ends delivered or superseded by a later one (same month, same
    // resource: a pending report is replaced by the next), none lost.
    let wait_until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for id in &accepted {
        loop {
            // The store may still be settling after the failover: 503 "retry later" is the
            // documented answer then, and the job is read again.
            let response = app.get_as(&format!("/v1/jobs/{id}"), &token).await;
            let status = response.status().as_u16();
            assert!(status == 200 || status == 503, "GET job {id}: {status}");
            let job: Value = response.json().await.unwrap();
            let state = if status == 200 {
                job["state"].as_str().unwrap_or("").to_string()
            } else {
                String::new()
            };
            if state == "succeeded" || state == "superseded" {
                break;
            }
            assert!(
                std::time::Instant::now() < wait_until,
                "job {id} is {state}: {job}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
