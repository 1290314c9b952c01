//! Nothing accepted is lost: the gateway killed with SIGKILL mid-delivery, Redis restarted
//! mid-run, and Puhuri misbehaving in every way the simulator can.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use puhuri_gateway::sim::{self, SimOptions, SimServer, demo};
use puhuri_gateway::startup::Workers;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::support::redis::{RedisServer, shared, unique_prefix};
use crate::support::stores::redis_table;

/// Settings that make retries and lease expiry quick enough for a test.
const FAST_DELIVERY: &str = r#"
[upstream]
timeout = "1s"
connect_timeout = "1s"

[delivery]
workers = 4
lease = "3s"
backoff_base = "20ms"
backoff_cap = "300ms"
max_attempts = 1000
"#;

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway process (the real binary), talking to a simulator in this test process.
pub(crate) struct GatewayProcess {
    pub(crate) child: Child,
    pub(crate) address: String,
}

impl GatewayProcess {
    pub(crate) async fn start(config: &Path, log: &Path) -> GatewayProcess {
        let port = free_port();
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the gateway binary starts");
        let address = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(format!("{address}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "the gateway did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        GatewayProcess { child, address }
    }

    pub(crate) fn kill(&mut self) {
        // Child::kill is SIGKILL on Unix: no shutdown code runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway configuration against an external simulator.
pub(crate) fn external_config(dir: &Path, sim: &SimServer, store_toml: &str) -> std::path::PathBuf {
    let token_file = dir.join("sp-token");
    std::fs::write(&token_file, demo::TOKEN).unwrap();
    let toml = format!(
        "{base}\n{store_toml}\n[upstream]\nurl = \"{url}\"\ntoken_file = \"{token}\"\n\
         service_provider_uuid = \"{sp}\"\ntimeout = \"1s\"\nconnect_timeout = \"1s\"\n\
         [delivery]\nworkers = 4\nlease = \"3s\"\nbackoff_base = \"20ms\"\nbackoff_cap = \"300ms\"\n\
         max_attempts = 1000\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
        base = base_config_toml(dir).replace("[log]\nlevel = \"warn\"\nformat = \"human\"\n", ""),
        url = sim.api_url(),
        token = token_file.display(),
        sp = demo::SERVICE_PROVIDER_UUID,
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// Sends `count` usage reports, cycling through the LUMI components with growing values.
/// Returns the last value sent per component.
async fn send_reports(
    client: &reqwest::Client,
    address: &str,
    count: usize,
    start: usize,
) -> (BTreeMap<String, String>, Vec<String>) {
    let token = alpha_token();
    let mut last = BTreeMap::new();
    let mut ids = Vec::new();
    for i in start..start + count {
        let component = demo::COMPONENTS[i % 3];
        let value = format!("{}.{:02}", i + 1, i % 100);
        let response = client
            .post(format!("{address}/v1/usage"))
            .bearer_auth(&token)
            .json(&json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {component: value}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "report {i}");
        let job: Value = response.json().await.unwrap();
        ids.push(job["job_id"].as_str().unwrap().to_string());
        last.insert(component.to_string(), value);
    }
    (last, ids)
}

/// Waits until no job is queued, running or retrying; returns every job.
async fn wait_until_settled(
    client: &reqwest::Client,
    address: &str,
    limit: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let list: Value = client
            .get(format!("{address}/v1/jobs?limit=500"))
            .bearer_auth(alpha_token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jobs = list["jobs"].as_array().unwrap().clone();
        let pending = jobs
            .iter()
            .filter(|j| matches!(j["state"].as_str(), Some("queued" | "running" | "retrying")))
            .count();
        if pending == 0 {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} jobs still pending: {:?}",
            jobs.iter()
                .map(|j| (j["state"].clone(), j["last_error"].clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many jobs the gateway lists (any state).
async fn job_count(client: &reqwest::Client, address: &str) -> usize {
    let list: Value = client
        .get(format!("{address}/v1/jobs?limit=500"))
        .bearer_auth(alpha_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["jobs"].as_array().map_or(0, Vec::len)
}

/// The simulator's current-month usage per component of the demo resource.
async fn sim_usage(client: &reqwest::Client, control_url: &str) -> BTreeMap<String, String> {
    let usages: Value = client
        .get(format!(
            "{control_url}state/usages/{}",
            demo::RESOURCE_OK_UUID
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let this_month = chrono::Utc::now().format("%Y-%m-01").to_string();
    usages
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| {
            u["billing_period"]
                .as_str()
                .unwrap()
                .starts_with(&this_month)
        })
        .map(|u| {
            (
                u["type"].as_str().unwrap().to_string(),
                u["usage"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_all_delivered(jobs: &[Value], ids: &[String]) {
    for id in ids {
        let job = jobs
            .iter()
            .find(|j| j["job_id"] == id.as_str())
            .unwrap_or_else(|| panic!("accepted job {id} was lost"));
        let state = job["state"].as_str().unwrap();
        assert!(
            state == "succeeded" || state == "superseded",
            "job {id} ended {state}: {job}"
        );
    }
}

async fn crash_during_delivery(store_toml: &str) {
    let sim = sim::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SimOptions {
            token: demo::TOKEN.to_string(),
        },
    )
    .unwrap();
    let client = reqwest::Client::new();
    // Slow deliveries, so the kill lands while some are in flight.
    client
        .post(format!("{}faults", sim.control_url()))
        .json(&json!({"kind": "latency", "path_prefix": "/api/marketplace-component-usages/", "latency_ms": 150}))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = external_config(dir.path(), &sim, store_toml);

    let mut first = GatewayProcess::start(&config, &dir.path().join("first.log")).await;
    let (mut last, mut ids) = send_reports(&client, &first.address, 30, 0).await;
    // Wait until deliveries are under way, then kill without warning.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim_calls(&client, &sim).await < 2 {
        assert!(Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();

    let second = GatewayProcess::start(&config, &dir.path().join("second.log")).await;
    let (more, more_ids) = send_reports(&client, &second.address, 15, 30).await;
    last.extend(more);
    ids.extend(more_ids);
    let jobs = wait_until_settled(&client, &second.address, Duration::from_secs(60)).await;
    assert_all_delivered(&jobs, &ids);
    assert_eq!(
        sim_usage(&client, &sim.control_url()).await,
        last,
        "Puhuri holds the last value sent"
    );
}

async fn sim_calls(client: &reqwest::Client, sim: &SimServer) -> usize {
    let calls: Value = client
        .get(format!(
            "{}calls?path_prefix=/api/marketplace-component-usages/set_usage/",
            sim.control_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    calls.as_array().map_or(0, |c| c.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_during_delivery_loses_nothing_with_redis() {
    let redis = shared();
    let store = redis_table(&redis.url(), &unique_prefix("crash"));
    crash_during_delivery(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_during_delivery_loses_nothing_with_the_embedded_store() {
    crash_during_delivery("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing_acknowledged_and_the_gateway_recovers_by_itself() {
    let mut redis = RedisServer::start_durable();
    let extra = format!(
        "{FAST_DELIVERY}{}pool_wait_timeout = \"500ms\"\n",
        redis_table(&redis.url(), &unique_prefix("restart"))
    );
    let app = spawn_app_with(
        Setup {
            redis: false,
            workers: Workers::Start,
        },
        &extra,
    )
    .await;
    app.sim_post(
        "faults",
        &json!({"kind": "latency", "path_prefix": "/api/marketplace-component-usages/", "latency_ms": 100}),
    )
    .await;
    let (mut last, mut ids) = send_reports(&app.client, &app.address, 20, 0).await;

    redis.stop();
    // While Redis is down: not ready, and writes are refused with 503 + Retry-After, never 202.
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let refused = app
        .post_usage(
            &alpha_token(),
            &json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 999}}),
        )
        .await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_problem(refused, 503, "unavailable").await;

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "the gateway did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (more, more_ids) = send_reports(&app.client, &app.address, 10, 20).await;
    last.extend(more);
    ids.extend(more_ids);
    let jobs = wait_until_settled(&app.client, &app.address, Duration::from_secs(60)).await;
    assert_all_delivered(&jobs, &ids);
    assert_eq!(
        sim_usage(&app.client, &app.sim).await,
        last,
        "Puhuri holds the last value sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_lands_despite_errors_timeouts_throttling_and_dropped_connections() {
    let app = spawn_app_with(
        Setup {
            redis: true,
            workers: Workers::Start,
        },
        FAST_DELIVERY,
    )
    .await;
    let path = "/api/marketplace-component-usages/set_usage/";
    for fault in [
        json!({"kind": "error", "path_prefix": path, "status": 503, "rate": 0.25}),
        json!({"kind": "error", "path_prefix": path, "status": 502, "rate": 0.1}),
        json!({"kind": "throttle", "path_prefix": path, "retry_after": 1, "rate": 0.1}),
        json!({"kind": "drop", "path_prefix": path, "rate": 0.1}),
        json!({"kind": "hang", "path_prefix": path, "hang_ms": 3000, "rate": 0.05}),
        json!({"kind": "latency", "path_prefix": path, "latency_ms": 30, "rate": 0.3}),
        // Lookups misbehave too: the directory's cache and the site's retries absorb them.
        json!({"kind": "latency", "path_prefix": "/api/marketplace-provider-resources/", "latency_ms": 20, "rate": 0.5}),
    ] {
        let response = app.sim_post("faults", &fault).await;
        assert!(response.status().is_success(), "{fault}");
    }
    // In rounds, so that reports are delivered one by one rather than coalesced.
    let mut last = BTreeMap::new();
    let mut ids = Vec::new();
    for round in 0..12 {
        let (sent, round_ids) = send_reports(&app.client, &app.address, 3, round * 3).await;
        last.extend(sent);
        ids.extend(round_ids);
        wait_until_settled(&app.client, &app.address, Duration::from_secs(30)).await;
    }
    let jobs = wait_until_settled(&app.client, &app.address, Duration::from_secs(30)).await;
    assert_all_delivered(&jobs, &ids);
    let retried = jobs
        .iter()
        .filter(|j| j["attempts"].as_u64().unwrap_or(0) > 1)
        .count();
    assert!(retried > 0, "the faults caused retries");
    assert_eq!(
        sim_usage(&app.client, &app.sim).await,
        last,
        "Puhuri holds the last value sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_an_unfinished_delivery_back_within_the_grace_period() {
    use puhuri_gateway::queue::JobStore;
    use puhuri_gateway::queue::redis::{RedisOptions, RedisStore};

    let sim = sim::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SimOptions {
            token: demo::TOKEN.to_string(),
        },
    )
    .unwrap();
    let client = reqwest::Client::new();
    // A Puhuri that takes far longer than the grace period to answer.
    client
        .post(format!("{}faults", sim.control_url()))
        .json(&json!({"kind": "latency", "path_prefix": "/api/marketplace-component-usages/", "latency_ms": 8000}))
        .send()
        .await
        .unwrap();
    let redis = shared();
    let prefix = unique_prefix("sigterm");
    let dir = tempfile::tempdir().unwrap();
    let config = external_config(dir.path(), &sim, &redis_table(&redis.url(), &prefix));
    // Longer timeout and lease than the default test settings, a short grace.
    let toml = std::fs::read_to_string(&config)
        .unwrap()
        .replace("timeout = \"1s\"\nconnect", "timeout = \"20s\"\nconnect")
        .replace("lease = \"3s\"", "lease = \"30s\"\nshutdown_grace = \"1s\"");
    std::fs::write(&config, toml).unwrap();

    let gateway = GatewayProcess::start(&config, &dir.path().join("gateway.log")).await;
    let (_, ids) = send_reports(&client, &gateway.address, 1, 0).await;
    let id = &ids[0];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job: Value = client
            .get(format!("{}/v1/jobs/{id}", gateway.address))
            .bearer_auth(alpha_token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["state"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "the job never started: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stopping = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &gateway.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut gateway = gateway;
    let exit = loop {
        if let Some(exit) = gateway.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(6),
            "the gateway did not stop within the grace period"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "a clean exit: {exit:?}");

    // The job was handed back: queued again, the interrupted attempt not counted.
    let store = RedisStore::connect(&redis.url(), &prefix, RedisOptions::default())
        .await
        .unwrap();
    let job = store
        .get(id.parse().unwrap())
        .await
        .unwrap()
        .expect("the job is still stored");
    assert_eq!(
        job.state,
        puhuri_gateway::queue::JobState::Queued,
        "{job:?}"
    );
    assert_eq!(job.attempts, 0);
}

/// SIGTERM while deliveries run and a client waits with `Prefer: wait`: no delivery starts after
/// the signal, the waiting client gets an answer, and the process exits within
/// `delivery.shutdown_grace` plus a small margin; nothing accepted is lost (the jobs not
/// delivered are still queued for the next start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_deliveries_first_answers_the_waiting_client_and_exits_within_the_grace() {
    const GRACE: Duration = Duration::from_secs(4);
    // Room for a loaded machine (2 cores shared with the rest of the suite) to end the process
    // after the grace (that no delivery starts after the signal is checked on the simulator's
    // calls below).
    const MARGIN: Duration = Duration::from_millis(2500);
    let sim = sim::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SimOptions {
            token: demo::TOKEN.to_string(),
        },
    )
    .unwrap();
    let client = reqwest::Client::new();
    // Each delivery takes 0.7 s, so deliveries would keep starting all through a drain.
    client
        .post(format!("{}faults", sim.control_url()))
        .json(&json!({"kind": "latency", "path_prefix": "/api/marketplace-component-usages/set_usage/", "latency_ms": 700}))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = external_config(dir.path(), &sim, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[delivery]\n", "[delivery]\nshutdown_grace = \"4s\"\n");
    std::fs::write(&config, text).unwrap();
    let mut gateway = GatewayProcess::start(&config, &dir.path().join("gateway.log")).await;
    let token = alpha_token();
    // One resource, ten months: ten deliveries one after another (one object's line).
    let mut ids = Vec::new();
    for month in 1..=10 {
        let response = client
            .post(format!("{}/v1/usage", gateway.address))
            .bearer_auth(&token)
            .json(&json!({"resource_uuid": demo::RESOURCE_OK_UUID, "month": format!("2026-{month:02}"),
                          "usages": {"cpu_k_hours": month}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let job: Value = response.json().await.unwrap();
        ids.push(job["job_id"].as_str().unwrap().to_string());
    }
    // A client that waits for a job far back in the line.
    let waiting = tokio::spawn({
        let client = client.clone();
        let url = format!("{}/v1/usage", gateway.address);
        let token = token.clone();
        async move {
            client
                .post(url)
                .bearer_auth(&token)
                .header("Prefer", "wait=30")
                .json(
                    &json!({"resource_uuid": demo::RESOURCE_OK_UUID, "month": "2026-11",
                              "usages": {"cpu_k_hours": 11}}),
                )
                .send()
                .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim_calls(&client, &sim).await < 2 {
        assert!(Instant::now() < deadline, "deliveries did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The signal must find the client waiting: until the gateway has read its request (its job
    // is listed) a signal would find no request to answer, only a connection to close. On a
    // loaded machine the spawned request can take a while to get there.
    let deadline = Instant::now() + Duration::from_secs(20);
    while job_count(&client, &gateway.address).await < ids.len() + 1 {
        assert!(
            Instant::now() < deadline,
            "the waiting client's request did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let signalled_at = chrono::Utc::now();
    let signalled = Instant::now();
    let pid = gateway.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let answer = tokio::time::timeout(GRACE + MARGIN, waiting)
        .await
        .expect("the waiting client is answered within the grace")
        .unwrap()
        .unwrap_or_else(|e| {
            std::thread::sleep(GRACE + MARGIN);
            panic!(
                "the waiting client gets an answer, not a dropped connection: {e:?}\n{}",
                std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default()
            )
        });
    assert!(
        answer.status().is_success(),
        "the waiting client: {}",
        answer.status()
    );
    let waited: Value = answer.json().await.unwrap();
    ids.push(waited["job_id"].as_str().unwrap().to_string());
    let status = loop {
        if let Some(status) = gateway.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < GRACE + MARGIN,
            "the gateway did not exit within shutdown_grace ({GRACE:?}) + {MARGIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}");

    // No delivery started after the signal (a call sent just before it may arrive a moment later).
    let calls: Value = client
        .get(format!(
            "{}calls?path_prefix=/api/marketplace-component-usages/set_usage/",
            sim.control_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let late: Vec<&Value> = calls
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            let at = chrono::DateTime::parse_from_rfc3339(c["time"].as_str().unwrap()).unwrap();
            at > signalled_at + chrono::Duration::milliseconds(100)
        })
        .collect();
    assert!(
        late.is_empty(),
        "deliveries started after SIGTERM: {late:?}"
    );

    // Nothing accepted is lost: a new process takes up the rest, and every job ends (older
    // months may be closed in the simulator: `failed` with Waldur's reason is a true end).
    let second = GatewayProcess::start(&config, &dir.path().join("second.log")).await;
    let jobs = wait_until_settled(&client, &second.address, Duration::from_secs(60)).await;
    for id in &ids {
        let job = jobs
            .iter()
            .find(|j| j["job_id"] == id.as_str())
            .unwrap_or_else(|| panic!("accepted job {id} was lost"));
        assert!(
            matches!(
                job["state"].as_str(),
                Some("succeeded" | "superseded" | "failed")
            ),
            "{job}"
        );
    }
    eprintln!("shutdown took {took:?} (grace {GRACE:?})");
}
