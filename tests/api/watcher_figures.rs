//! Figures for the watcher (ignored by default: they measure, they do not assert timings):
//!
//! ```sh
//! cargo test --test api watcher_figures -- --ignored --nocapture
//! ```
//!
//! - upstream calls of one poll with 1,000 resources and 200 open orders in the simulator;
//! - the time from a change in the simulator to the site's receiver getting the event, at the
//!   default interval (a change made outside the gateway) and after one of the gateway's own
//!   writes (which wakes the watcher).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::{Mode, Receiver, SECRET_A};
use crate::support::client::{Wanted, expect};
use puhuri_gateway::sim::demo;
use puhuri_gateway::startup::{Application, Workers};

fn site_toml(dir: &std::path::Path, receiver: &Receiver, watcher: &str) -> String {
    let secret = dir.join("hook.secret");
    std::fs::write(&secret, SECRET_A).unwrap();
    format!(
        r#"
[events]
allowed_origins = ["http://127.0.0.1:{port}"]
{watcher}

[[sites]]
id = "ops"
offerings = ["{ALPHA_OFFERING}", "{BETA_OFFERING}"]
scopes = ["orders:write", "read", "events:read"]

[[sites.keys]]
kid = "ops-hs"
algorithm = "HS256"
secret_file = "{hs}"

[[sites.callbacks]]
name = "ops"
url = "{url}"
secret_files = ["{secret}"]
"#,
        port = receiver.port,
        hs = fixture("hs256.secret").display(),
        url = receiver.url("/ops"),
        secret = secret.display(),
    )
}

async fn control(sim: &str, path: &str, body: Value) {
    let request = reqwest::Client::new()
        .post(format!("{sim}{path}"))
        .json(&body);
    expect(request, Wanted::Success).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints figures"]
async fn upstream_calls_per_poll_with_1000_resources_and_200_open_orders() {
    let receiver = Receiver::start(Mode::Up);
    let dir = tempfile::tempdir().unwrap();
    let toml = base_config_toml(dir.path()) + &site_toml(dir.path(), &receiver, "");
    let config = load_config(&toml, dir.path()).unwrap();
    let app = Application::build_with(
        config,
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Workers::Manual,
    )
    .await
    .unwrap();
    let sim = app.simulator_control_url().unwrap();
    let watcher = app
        .watcher()
        .expect("an endpoint wants the watcher's events");
    let existing = reqwest::get(format!("{sim}info")).await.unwrap().status();
    assert!(existing.is_success());
    // 200 Create orders (each with its resource) and 800 more resources: 1,000 new resources
    control(&sim, "orders", json!({"count": 200})).await;
    control(&sim, "resources", json!({"count": 800})).await;
    tokio::spawn(app.run_until_stopped());

    let started = Instant::now();
    let first = watcher.poll().await.unwrap();
    let first_took = started.elapsed();
    let started = Instant::now();
    let steady = watcher.poll().await.unwrap();
    let steady_took = started.elapsed();
    control(
        &sim,
        "roles",
        json!({"user_uuid": demo::USER_CAROL_UUID, "project_uuid": demo::PROJECT_A_UUID}),
    )
    .await;
    let team = watcher.poll().await.unwrap();
    println!(
        "FIGURE watcher poll, 1,000 resources + 200 open orders (2 offerings): \
         first poll {} calls, {} events stored, {first_took:?}; steady poll {} calls, {} events, \
         {steady_took:?}; after a team change {} calls, {} events",
        first.calls, first.events, steady.calls, steady.events, team.calls, team.events
    );
    assert!(first.events >= 200);
    assert_eq!(steady.events, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement at the default 60 s interval: takes a few minutes"]
async fn time_from_a_change_to_the_sites_receiver() {
    let receiver = Receiver::start(Mode::Up);
    let dir = tempfile::tempdir().unwrap();
    let toml = base_config_toml(dir.path()) + &site_toml(dir.path(), &receiver, "");
    let config = load_config(&toml, dir.path()).unwrap();
    let app = Application::build_with(
        config,
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Workers::Start,
    )
    .await
    .unwrap();
    let sim = app.simulator_control_url().unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    control(&sim, "settings", json!({"self_processing_delay_ms": null})).await;
    let wait_for = |uuid: String, event_type: &'static str| {
        let receiver = receiver.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                if receiver
                    .events()
                    .iter()
                    .any(|e| e["type"] == event_type && e["data"]["uuid"] == uuid.as_str())
                {
                    return;
                }
                assert!(Instant::now() < deadline, "no {event_type} for {uuid}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let mut outside = Vec::new();
    for n in 0..3 {
        // changes at different points of the 60 s cycle
        tokio::time::sleep(Duration::from_secs(7 + 17 * n)).await;
        let r = reqwest::Client::new()
            .post(format!("{sim}orders"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        let uuid = body[0]["uuid"].as_str().unwrap().to_owned();
        let started = Instant::now();
        wait_for(uuid.clone(), "order.created").await;
        outside.push(started.elapsed());
        // the gateway's own write: approving it wakes the watcher
        let mut c = claims("ops");
        c["scope"] = json!("orders:write read events:read");
        let token = sign(jsonwebtoken::Algorithm::HS256, "ops-hs", "hs256.secret", &c);
        let started = Instant::now();
        let approved = reqwest::Client::new()
            .post(format!("{address}/v1/orders/{uuid}/approve"))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(approved.status(), 202);
        wait_for(uuid, "order.state_changed").await;
        println!(
            "FIGURE change -> receiver: outside change {:?}; after the gateway's own approval {:?}",
            outside.last().unwrap(),
            started.elapsed()
        );
    }
    println!("FIGURE outside changes at the default 60 s interval: {outside:?}");
}
