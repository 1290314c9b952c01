//! The quick start: the built binary, no configuration, no Redis, an empty directory.

use std::process::Command;
use std::time::Duration;

use crate::sandbox::{Sandbox, demo_token};

use puhuri_gateway::sim::demo;
use serde_json::{Value, json};

async fn job_state(client: &reqwest::Client, sandbox: &Sandbox, token: &str, id: &str) -> Value {
    crate::support::poll::job_view(client, &sandbox.address, token, id).await
}

async fn wait_for_state(
    client: &reqwest::Client,
    sandbox: &Sandbox,
    token: &str,
    id: &str,
    wanted: &[&str],
) -> Value {
    let within = Duration::from_secs(30);
    crate::support::poll::job_where(client, &sandbox.address, token, id, within, |s| {
        wanted.contains(&s)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_works_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let first = Sandbox::start(dir.path());

    // The token the sandbox wrote.
    let token = demo_token(dir.path());

    // Everything says sandbox.
    let whoami: Value = client
        .get(format!("{}/v1/whoami", first.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami["site"], "demo");
    assert_eq!(whoami["sandbox"], true);
    let ready: Value = client
        .get(format!("{}/readyz", first.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["mode"], "sandbox");
    let doc: Value = client
        .get(format!("{}/openapi.json", first.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["info"]["title"].as_str().unwrap().contains("SANDBOX"));
    let docs = client
        .get(format!("{}/docs/", first.address))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);

    // POST a usage report, see its job succeed and the value in the simulator.
    let job: Value = client
        .post(format!("{}/v1/usage", first.address))
        .bearer_auth(&token)
        .json(&json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 12.5}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let finished_id = job["job_id"].as_str().unwrap().to_string();
    wait_for_state(&client, &first, &token, &finished_id, &["succeeded"]).await;
    let usages: Value = client
        .get(format!(
            "{}state/usages/{}",
            first.simulator,
            demo::RESOURCE_OK_UUID
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        usages
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["type"] == "cpu_k_hours" && u["usage"] == "12.50"),
        "{usages}"
    );

    // A job that cannot be delivered yet: Puhuri (the simulator) throttles every usage call and
    // asks for 5 s. Once the job is `retrying`, no attempt runs for 5 s, so the kill below never
    // catches one in flight (that job would wait for its lease to expire, a minute, which is what
    // the resilience tests cover).
    let fault = client
        .post(format!("{}faults", first.simulator))
        .json(&json!({"kind": "throttle", "path_prefix": "/api/marketplace-component-usages/", "retry_after": 5}))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success());
    let job: Value = client
        .post(format!("{}/v1/usage", first.address))
        .bearer_auth(&token)
        .json(&json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"gpu_k_hours": 3}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pending_id = job["job_id"].as_str().unwrap().to_string();
    wait_for_state(&client, &first, &token, &pending_id, &["retrying"]).await;

    // Killed without warning; started again on the same directory.
    first.kill();
    let second = Sandbox::start(dir.path());
    // The earlier token still works (the sandbox key is kept), the finished job is still there,
    // and the pending one is delivered by the new process.
    let finished = job_state(&client, &second, &token, &finished_id).await;
    assert_eq!(finished["state"], "succeeded", "{finished}");
    wait_for_state(&client, &second, &token, &pending_id, &["succeeded"]).await;

    // A second gateway on the same data directory is refused, not allowed to corrupt it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"))
        .current_dir(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use"), "{stderr}");
    drop(second);
}
