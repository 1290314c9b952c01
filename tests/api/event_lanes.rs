//! Event lanes beside the basics of `events.rs`: an endpoint that hangs holds back nobody
//! else; a job event left out by a crash is stored at the next start, once; an allocator's site
//! hears its orders' outcomes.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::events::{SITE, hooked_site, hooked_token, set_backend_id, spawn_hooked_with};
use crate::helpers::*;
use crate::receiver::{Mode, Receiver, SECRET_A, verifies};
use puhuri_gateway::sim::demo;
use puhuri_gateway::startup::Workers;

/// An allocator's site with an endpoint hears its orders' outcomes: the job that followed its
/// allocation's order to the end is `job.succeeded`, with the order in its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocator_site_hears_its_orders_outcome() {
    let receiver = Receiver::start(Mode::Up);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hook.secret");
    std::fs::write(&secret, SECRET_A).unwrap();
    let extra = format!(
        r#"
[upstream.identities.portal]
token = "{token}"

[events]
allowed_origins = ["http://127.0.0.1:{port}"]

[[sites]]
id = "portal"
identity = "portal"
offerings = ["{offering}"]
customers = ["{customer}"]
projects = ["{project}"]
scopes = ["allocations:read", "allocations:write", "events:read"]

[[sites.keys]]
kid = "portal-hs"
algorithm = "HS256"
secret_file = "{hs}"

[[sites.callbacks]]
name = "main"
url = "{url}"
secret_files = ["{secret}"]
events = ["job.succeeded", "job.failed", "job.dead"]
"#,
        token = demo::ALLOCATOR_TOKEN,
        port = receiver.port,
        offering = demo::ALLOCATION_OFFERING_UUID,
        customer = demo::ALLOCATOR_CUSTOMER_UUID,
        project = demo::ALLOCATOR_REVIEW_PROJECT_UUID,
        hs = fixture("hs256.secret").display(),
        url = receiver.url("/portal"),
        secret = secret.display(),
    );
    let app = spawn_app_in(
        Setup {
            redis: false,
            workers: Workers::Start,
        },
        &extra,
        puhuri_gateway::domain::Clock::system(),
        dir,
    )
    .await;
    let mut c = claims("portal");
    c["scope"] = json!("allocations:read allocations:write events:read");
    let token = sign(Algorithm::HS256, "portal-hs", "hs256.secret", &c);
    let response = app
        .client
        .post(app.url("/v1/allocations"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "hooked-create-1")
        .json(&json!({
            "project_uuid": demo::ALLOCATOR_REVIEW_PROJECT_UUID,
            "offering_uuid": demo::ALLOCATION_OFFERING_UUID,
            "plan_uuid": demo::ALLOCATION_PLAN_UUID,
            "attributes": {"name": "Hooked 2027", "description": "events", "is_industry": false,
                           "is_training": false, "is_commercial": false,
                           "used_ai_tech": ["Deep Learning"]},
            "limits": {"cpu_k_hours": 10, "gpu_k_hours": 1, "gb_k_hours": 1},
            "approve_as_consumer": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let job: Value = response.json().await.unwrap();
    let got = receiver
        .wait_for(Duration::from_secs(30), |r| !r.is_empty())
        .await;
    let event = got[0].json();
    assert_eq!(event["type"], "job.succeeded", "{event:#}");
    assert_eq!(event["data"]["job_id"], job["job_id"]);
    assert_eq!(event["data"]["operation"], "allocation.create");
    assert!(
        event["data"]["result"]["order_uuid"].is_string(),
        "{event:#}"
    );
    assert!(verifies(&got[0], SECRET_A));
}

/// A process that dies between storing a job's outcome and storing its event leaves the event
/// out; the next start's catch-up stores it, once, and it is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_event_left_out_by_a_crash_is_stored_at_the_next_start_once() {
    use puhuri_gateway::events::JobOutcomes;
    use puhuri_gateway::queue::{Completion, DeliveryLimits, JobState, LeaseResult};
    use puhuri_gateway::worker::StepOutcome;

    let receiver = Receiver::start(Mode::Up);
    let dir = tempfile::tempdir().unwrap();
    let extra = hooked_site(dir.path(), &receiver, "");
    let app = spawn_app_in(
        Setup {
            redis: false,
            workers: Workers::Manual,
        },
        &extra,
        puhuri_gateway::domain::Clock::system(),
        dir,
    )
    .await;
    let job = set_backend_id(&app, &hooked_token(), "project_crash").await;
    // the outcome stored as a worker does, and no event: the process died right after
    let no_limits = DeliveryLimits {
        max_in_flight: 0,
        max_per_second: 0,
        jitter_allowance_us: 0,
    };
    let LeaseResult::Leased(leased) = app
        .store
        .lease("dying", Duration::from_secs(30), no_limits)
        .await
        .unwrap()
    else {
        panic!("the job is due")
    };
    assert_eq!(leased.id.to_string(), job);
    let succeeded = Completion::Succeeded {
        status: Some(200),
        result: json!({}),
        delivered: Default::default(),
    };
    assert!(
        app.store
            .complete(leased.id, "dying", succeeded)
            .await
            .unwrap()
    );

    let outcomes = JobOutcomes {
        hub: app.events.clone(),
        store: app.store.clone(),
        view: |j| serde_json::to_value(puhuri_gateway::api::jobs::JobView::from(j)).unwrap(),
        poke: None,
    };
    let window = puhuri_gateway::startup::JOB_EVENTS_CATCH_UP;
    assert_eq!(outcomes.catch_up(window).await.unwrap(), 1);
    assert_eq!(outcomes.catch_up(window).await.unwrap(), 0, "stored once");
    let lane = app.events.lanes_of(SITE).next().unwrap().worker();
    assert!(matches!(
        lane.try_execute_one().await.unwrap(),
        StepOutcome::Finished {
            state: JobState::Succeeded,
            ..
        }
    ));
    assert!(matches!(
        lane.try_execute_one().await.unwrap(),
        StepOutcome::Idle { .. }
    ));
    let got = receiver.accepted();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].json()["data"]["job_id"], job.as_str());
    assert_eq!(got[0].json()["type"], "job.succeeded");
}

/// An endpoint that hangs holds back only its own events: the jobs reach Puhuri at once, and
/// another site's endpoint gets its events meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_delays_neither_puhuri_nor_another_site() {
    let hanging = Receiver::start(Mode::Hang);
    let healthy = Receiver::start(Mode::Up);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("other.secret");
    std::fs::write(&secret, SECRET_A).unwrap();
    let extra = hooked_site(dir.path(), &hanging, "timeout = \"500ms\"").replace(
        &format!("allowed_origins = [\"http://127.0.0.1:{}\"]", hanging.port),
        &format!(
            "allowed_origins = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{}\"]",
            hanging.port, healthy.port
        ),
    ) + &format!(
        r#"
[[sites]]
id = "other"
offerings = ["{ALPHA_OFFERING}"]
scopes = ["resources:write", "read", "events:read"]

[[sites.keys]]
kid = "other-hs"
algorithm = "HS256"
secret_file = "{hs}"

[[sites.callbacks]]
name = "main"
url = "{url}"
secret_files = ["{secret}"]
events = ["job.succeeded"]
"#,
        hs = fixture("hs256.secret").display(),
        url = healthy.url("/other"),
        secret = secret.display(),
    );
    let app = spawn_hooked_with(&extra, false).await;
    let mut mine = Vec::new();
    for n in 0..3 {
        mine.push(set_backend_id(&app, &hooked_token(), &format!("project_hang_{n}")).await);
    }
    let mut c = claims("other");
    c["scope"] = json!("resources:write read events:read");
    let other_token = sign(Algorithm::HS256, "other-hs", "hs256.secret", &c);
    let theirs = set_backend_id(&app, &other_token, "project_other_1").await;
    // Puhuri got every job while the hanging endpoint holds its first event
    for id in mine.iter().chain([&theirs]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let job = app.job(&hooked_or(&other_token, id, &theirs), id).await;
            if job["state"] == "succeeded" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{job:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let got = healthy
        .wait_for(Duration::from_secs(5), |r| {
            r.iter().any(|x| x.answered < 300)
        })
        .await;
    assert_eq!(
        got[0].json()["data"]["job_id"],
        theirs.as_str(),
        "{:#}",
        got[0].json()
    );
    assert!(
        hanging.accepted().is_empty(),
        "the hanging endpoint took nothing: {:#?}",
        hanging.all()
    );
}

fn hooked_or(other_token: &str, id: &str, theirs: &str) -> String {
    if id == theirs {
        other_token.to_owned()
    } else {
        hooked_token()
    }
}
