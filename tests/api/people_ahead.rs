//! The lists a site bound to some of its provider's offerings gets from whole Puhuri lists (its
//! SSH keys and roles: Waldur 8.0.5 has no per-offering view of them) are read ahead at start
//! (`reads.warm_at_start`) and served while a new scan runs (`reads.serve_stale_for`), so a
//! reader does not wait for the scans; concurrent cold reads share one scan.

use std::sync::Arc;
use std::time::{Duration, Instant};

use puhuri_gateway::config::{Config, Overrides};
use puhuri_gateway::sim::{self, SimOptions, demo};
use puhuri_gateway::startup::{Application, Workers};
use puhuri_gateway::upstream::scans::Scans;
use puhuri_gateway::upstream::{TokenState, UpstreamError, WaldurClient};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::resilience::external_config;

async fn seeded_sim() -> sim::SimServer {
    let sim = sim::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        SimOptions {
            token: demo::TOKEN.to_string(),
        },
    )
    .unwrap();
    let seed = reqwest::Client::new()
        .post(format!("{}bulk", sim.control_url()))
        .json(&json!({"projects": 40, "users": 400, "resources": 120}));
    crate::support::client::expect(seed, 201).await;
    sim
}

/// The simulator's record of calls to Puhuri's API (`/api/...`).
async fn api_calls(client: &reqwest::Client, sim: &sim::SimServer) -> Vec<Value> {
    let calls: Value = client
        .get(format!("{}calls", sim.control_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    calls
        .as_array()
        .cloned()
        .or_else(|| calls["calls"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["path"].as_str().is_some_and(|p| p.starts_with("/api/")))
        .collect()
}

async fn forget_calls(client: &reqwest::Client, sim: &sim::SimServer) {
    client
        .delete(format!("{}calls", sim.control_url()))
        .send()
        .await
        .unwrap();
}

/// A gateway in this process against `sim`, `warm` saying whether it reads ahead at start.
async fn gateway(sim: &sim::SimServer, dir: &std::path::Path, warm: bool) -> String {
    let path = external_config(dir, sim, "");
    let toml = std::fs::read_to_string(&path)
        .unwrap()
        .replace("warm_at_start = false", &format!("warm_at_start = {warm}"));
    std::fs::write(&path, toml).unwrap();
    let config = Config::load(Some(&path), &Overrides::default()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = Application::build_with(config, listener, Workers::Manual)
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    address
}

/// Every item's `key` of a gateway list, page by page (100 a page), sorted.
async fn list(client: &reqwest::Client, address: &str, path: &str, key: &str) -> Vec<String> {
    let mut items = Vec::new();
    for page in 1.. {
        let response = client
            .get(format!("{address}{path}?page={page}&page_size=100"))
            .bearer_auth(alpha_token())
            .send()
            .await
            .unwrap();
        if response.status() == 404 && page > 1 {
            break;
        }
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        let got = body.as_array().unwrap();
        items.extend(got.iter().map(|x| x[key].as_str().unwrap().to_string()));
        if got.len() < 100 {
            break;
        }
    }
    items.sort();
    items
}

/// Site alpha (one of the provider's two offerings): with `warm_at_start` its SSH keys and roles
/// are read at start, and its first read of each costs no upstream call and answers what a
/// gateway that did not read ahead answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sites_scanned_lists_are_read_at_start_and_its_first_read_costs_no_call() {
    let sim = seeded_sim().await;
    let client = reqwest::Client::new();
    let warm_dir = tempfile::tempdir().unwrap();
    let warm = gateway(&sim, warm_dir.path(), true).await;
    // The read ahead ends when the simulator stops hearing from the gateway.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = api_calls(&client, &sim).await.len();
        if now > 0 && now == seen {
            break;
        }
        seen = now;
        assert!(Instant::now() < deadline, "the read ahead did not end");
    }
    assert!(
        api_calls(&client, &sim)
            .await
            .iter()
            .any(|c| c["path"].as_str().unwrap().ends_with("/keys/")),
        "the read ahead scanned the provider's keys"
    );
    forget_calls(&client, &sim).await;
    let keys = list(&client, &warm, "/v1/ssh-keys", "uuid").await;
    let roles = list(&client, &warm, "/v1/project-permissions", "project_uuid").await;
    let calls = api_calls(&client, &sim).await;
    assert!(
        calls.is_empty(),
        "first reads after the read ahead: {calls:?}"
    );
    assert!(!keys.is_empty() && !roles.is_empty());

    let cold_dir = tempfile::tempdir().unwrap();
    let cold = gateway(&sim, cold_dir.path(), false).await;
    forget_calls(&client, &sim).await;
    assert_eq!(list(&client, &cold, "/v1/ssh-keys", "uuid").await, keys);
    assert_eq!(
        list(&client, &cold, "/v1/project-permissions", "project_uuid").await,
        roles
    );
    assert!(
        !api_calls(&client, &sim).await.is_empty(),
        "a gateway that did not read ahead scans on the first read"
    );
}

fn sim_client(sim: &sim::SimServer) -> WaldurClient {
    WaldurClient::new(
        sim.api_url().parse().unwrap(),
        &demo::TOKEN.to_string().into(),
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn keys_path() -> String {
    format!(
        "marketplace-service-providers/{}/keys/",
        demo::SERVICE_PROVIDER_UUID
    )
}

/// Eight requests that find the list cold wait for one scan and share it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_reads_of_a_list_share_one_scan() {
    let sim = seeded_sim().await;
    let client = reqwest::Client::new();
    let upstream = Arc::new(sim_client(&sim));
    let scans = Arc::new(Scans::default());
    forget_calls(&client, &sim).await;
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (upstream, scans) = (upstream.clone(), scans.clone());
        readers.push(tokio::spawn(async move {
            scans
                .read(&upstream, &keys_path(), &[])
                .await
                .unwrap()
                .len()
        }));
    }
    let mut lengths = Vec::new();
    for r in readers {
        lengths.push(r.await.unwrap());
    }
    assert!(lengths.iter().all(|&n| n == lengths[0] && n >= 400));
    let calls = api_calls(&client, &sim).await;
    // 400 keys in pages of 300: one scan is two calls.
    assert_eq!(calls.len(), 2, "{calls:?}");
}

/// The simulator's keys: one more user (with a key, in a project with a resource).
async fn add_user_with_key(client: &reqwest::Client, sim: &sim::SimServer) {
    let added = client
        .post(format!("{}bulk", sim.control_url()))
        .json(&json!({"projects": 1, "users": 1, "resources": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
}

/// A copy past the TTL but within `serve_stale_for` is answered at once, and one scan starts in
/// the background: the read after it sees the new list, at no call. Past `serve_stale_for` a
/// read waits for a new scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_copy_is_served_at_once_while_one_scan_runs_in_the_background() {
    let sim = seeded_sim().await;
    let client = reqwest::Client::new();
    let upstream = sim_client(&sim);
    let scans = Arc::new(Scans::with_ages(
        Duration::from_millis(300),
        Duration::from_secs(30),
    ));
    let before = scans.read(&upstream, &keys_path(), &[]).await.unwrap();
    add_user_with_key(&client, &sim).await;
    forget_calls(&client, &sim).await;
    // Fresh: the copy, no call.
    assert_eq!(
        scans
            .read(&upstream, &keys_path(), &[])
            .await
            .unwrap()
            .len(),
        before.len()
    );
    assert!(api_calls(&client, &sim).await.is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Stale: the copy at once (three reads, one background scan of two pages).
    for _ in 0..3 {
        let stale = scans.read(&upstream, &keys_path(), &[]).await.unwrap();
        assert_eq!(stale.len(), before.len());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while api_calls(&client, &sim).await.len() < 2 {
        assert!(Instant::now() < deadline, "no scan in the background");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(api_calls(&client, &sim).await.len(), 2);
    forget_calls(&client, &sim).await;
    let after = scans.read(&upstream, &keys_path(), &[]).await.unwrap();
    assert!(api_calls(&client, &sim).await.is_empty());
    assert_eq!(after.len(), before.len() + 1);

    // No copy is served once it is older than serve_stale_for.
    let strict = Arc::new(Scans::with_ages(
        Duration::from_millis(100),
        Duration::from_millis(200),
    ));
    let first = strict.read(&upstream, &keys_path(), &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    add_user_with_key(&client, &sim).await;
    forget_calls(&client, &sim).await;
    let waited = strict.read(&upstream, &keys_path(), &[]).await.unwrap();
    assert_eq!(waited.len(), first.len() + 1);
    assert_eq!(api_calls(&client, &sim).await.len(), 2);
}

/// Puhuri's 403 on an offering's people views (Waldur's `is_owner`: the token's user is not an
/// owner of the provider's organisation) is an answer the gateway reads around: through the
/// client that expects it, it neither counts as the token refused nor marks it refused; the same
/// answer to any other call does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_403_does_not_mark_the_token_refused() {
    let sim = seeded_sim().await;
    let set = reqwest::Client::new()
        .post(format!("{}settings", sim.control_url()))
        .json(&json!({"read_only_offerings": [demo::LUMI_OFFERING_UUID]}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let view = format!(
        "marketplace-provider-offerings/{}/list_customer_users/",
        demo::LUMI_OFFERING_UUID
    );
    let upstream = sim_client(&sim);
    let expecting = upstream.expecting_refusal();
    let refused = expecting.get::<Value>(&view, &[]).await.unwrap_err();
    assert!(
        matches!(refused, UpstreamError::Forbidden { .. }),
        "{refused:?}"
    );
    assert_eq!(upstream.token_status().refusals(), 0);
    assert_eq!(upstream.token_status().current(), TokenState::Accepted);
    // The same 403 to a caller that does not expect it is a refusal of the token.
    upstream.get::<Value>(&view, &[]).await.unwrap_err();
    assert_eq!(upstream.token_status().refusals(), 1);
    assert_eq!(
        upstream.token_status().current(),
        TokenState::Refused { status: 403 }
    );
}

/// Eight lookups of one offering the directory has not seen make one call to Puhuri; when that
/// call fails, the lookups that waited for it take its error instead of each calling again, and
/// the next lookup (one that did not wait) calls again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_lookups_of_an_offering_share_one_call() {
    use puhuri_gateway::upstream::directory::Directory;
    let sim = seeded_sim().await;
    let client = reqwest::Client::new();
    let offering_calls = |calls: Vec<Value>| {
        calls
            .into_iter()
            .filter(|c| {
                c["path"]
                    .as_str()
                    .is_some_and(|p| p.contains(demo::LUMI_OFFERING_UUID))
            })
            .count()
    };
    let fault = |body: Value| {
        client
            .post(format!("{}faults", sim.control_url()))
            .json(&body)
            .send()
    };
    let lookups = |directory: Arc<Directory>| async move {
        let mut each = Vec::new();
        for _ in 0..8 {
            let directory = directory.clone();
            each.push(tokio::spawn(async move {
                directory
                    .offering(demo::LUMI_OFFERING_UUID)
                    .await
                    .map(|_| ())
            }));
        }
        let mut answers = Vec::new();
        for one in each {
            answers.push(one.await.unwrap());
        }
        answers
    };
    let path_prefix = format!(
        "marketplace-provider-offerings/{}",
        demo::LUMI_OFFERING_UUID
    );
    let slow = json!({"kind": "latency", "path_prefix": path_prefix, "latency_ms": 300});
    assert!(fault(slow).await.unwrap().status().is_success());

    let directory = Arc::new(Directory::new(sim_client(&sim)));
    forget_calls(&client, &sim).await;
    let answers = lookups(directory.clone()).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(offering_calls(api_calls(&client, &sim).await), 1);

    let failing = json!({"kind": "error", "path_prefix": path_prefix, "status": 503});
    assert!(fault(failing).await.unwrap().status().is_success());
    let cold = Arc::new(Directory::new(sim_client(&sim)));
    forget_calls(&client, &sim).await;
    let answers = lookups(cold.clone()).await;
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Err(UpstreamError::Transient { .. }))),
        "{answers:?}"
    );
    assert_eq!(offering_calls(api_calls(&client, &sim).await), 1);

    client
        .delete(format!("{}faults", sim.control_url()))
        .send()
        .await
        .unwrap();
    assert!(cold.offering(demo::LUMI_OFFERING_UUID).await.is_ok());
    assert_eq!(offering_calls(api_calls(&client, &sim).await), 2);
}
