//! Calls toward Puhuri for one reporting cycle of usage: 800 resources x 3 components.
//!
//! `cargo bench --bench usage_calls`. A gateway in sandbox mode (the simulator in-process, the
//! embedded store, delivery loops running) on 127.0.0.1, with 800 seeded resources of the LUMI
//! offering. Each cycle posts one report per resource (three components each), waits until the
//! queue is empty and counts the simulator's calls by kind: `set_usage`, component-usage list
//! pages (the reads that check values the gateway knows but no longer trusts), and resource reads
//! (the API's directory, first sight only). Cycles: all values new; none changed; a quarter
//! changed — once within `delivery.usage_known_for` of the previous delivery, and once after it
//! (set to 45 s here, and waited out).

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use puhuri_gateway::config::{Config, Overrides};
use puhuri_gateway::sim::demo;
use puhuri_gateway::startup::{Application, Workers};
use serde_json::{Value, json};

const RESOURCES: usize = 800;
const KNOWN_FOR: Duration = Duration::from_secs(45);

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
        .display()
        .to_string()
}

struct Target {
    gateway: String,
    sim: String,
    token: String,
    client: reqwest::Client,
    resources: Vec<String>,
    _dir: tempfile::TempDir,
}

async fn start() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
gateway_id = "bench"
data_dir = "{data}"
[log]
level = "error"
[delivery]
max_per_second = 2000
max_in_flight = 32
workers = 32
usage_known_for = "{known_for}s"
[limits]
max_batch = 1000
[[sites]]
id = "site"
offerings = ["{offering}"]
[[sites.keys]]
kid = "ed"
algorithm = "EdDSA"
public_key_file = "{key}"
"#,
        data = dir.path().display(),
        offering = demo::LUMI_OFFERING_UUID,
        key = fixture("ed25519.pub"),
        known_for = KNOWN_FOR.as_secs(),
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    let config = Config::load(Some(&path), &Overrides::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = Application::build_with(config, listener, Workers::Start)
        .await
        .unwrap();
    let gateway = format!("http://127.0.0.1:{}", app.port());
    let sim = app.simulator_control_url().unwrap();
    tokio::spawn(app.run_until_stopped());
    let pem = std::fs::read(fixture("ed25519.key")).unwrap();
    let now = Utc::now().timestamp();
    let claims = json!({
        "iss": "site", "aud": "bench", "iat": now, "nbf": now, "exp": now + 3600,
        "scope": "usage:write read",
    });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("ed".into());
    let token =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_pem(&pem).unwrap()).unwrap();
    let client = reqwest::Client::new();
    let seeded: Value = client
        .post(format!("{sim}resources"))
        .json(&json!({"count": RESOURCES}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resources = seeded
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uuid"].as_str().unwrap().to_owned())
        .collect();
    Target {
        gateway,
        sim,
        token,
        client,
        resources,
        _dir: dir,
    }
}

impl Target {
    /// Posts one report per resource (batches of 200); `amount(i)` gives resource i's cpu total.
    async fn cycle(&self, amount: impl Fn(usize) -> u64) {
        for chunk in self
            .resources
            .iter()
            .enumerate()
            .collect::<Vec<_>>()
            .chunks(200)
        {
            let reports: Vec<Value> = chunk
                .iter()
                .map(|(i, r)| {
                    json!({"resource_uuid": r, "usages": {
                        "cpu_k_hours": amount(*i), "gpu_k_hours": 2, "gb_k_hours": 3}})
                })
                .collect();
            let response = self
                .client
                .post(format!("{}/v1/usage/batch", self.gateway))
                .bearer_auth(&self.token)
                .json(&json!({ "reports": reports }))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
        }
        self.wait_until_delivered().await;
    }

    async fn wait_until_delivered(&self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let metrics = self
                .client
                .get(format!("{}/metrics", self.gateway))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let pending: f64 = metrics
                .lines()
                .filter(|l| {
                    l.starts_with("puhuri_gateway_jobs{")
                        && ["queued", "running", "retrying"]
                            .iter()
                            .any(|s| l.contains(&format!("state=\"{s}\"")))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if pending == 0.0 {
                return;
            }
            assert!(Instant::now() < deadline, "the queue did not drain");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// (set_usage calls, usage list pages, resource reads) since the last count.
    async fn count(&self) -> (usize, usize, usize) {
        let calls: Value = self
            .client
            .get(format!("{}calls", self.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let calls = calls
            .as_array()
            .cloned()
            .or_else(|| calls["calls"].as_array().cloned())
            .unwrap_or_default();
        let path = |c: &Value| c["path"].as_str().unwrap_or("").to_owned();
        let set = calls
            .iter()
            .filter(|c| path(c).ends_with("set_usage/"))
            .count();
        let list = calls
            .iter()
            .filter(|c| c["method"] == "GET" && path(c).ends_with("marketplace-component-usages/"))
            .count();
        let resources = calls
            .iter()
            .filter(|c| c["method"] == "GET" && path(c).contains("marketplace-provider-resources"))
            .count();
        self.client
            .delete(format!("{}calls", self.sim))
            .send()
            .await
            .unwrap();
        (set, list, resources)
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = start().await;
        t.count().await;
        println!(
            "usage calls, {RESOURCES} reports x 3 components per cycle (usage_known_for = {}s)",
            KNOWN_FOR.as_secs()
        );
        println!("cycle                                   set_usage  list pages  resource reads");
        let row = |name: &str, (s, l, r): (usize, usize, usize)| {
            println!("{name:<40}{s:>9}{l:>12}{r:>16}");
        };
        t.cycle(|_| 10).await;
        row("all new", t.count().await);
        t.cycle(|_| 10).await;
        row("none changed, within usage_known_for", t.count().await);
        t.cycle(|i| if i % 4 == 0 { 11 } else { 10 }).await;
        row("a quarter changed, within", t.count().await);
        tokio::time::sleep(KNOWN_FOR + Duration::from_millis(500)).await;
        t.cycle(|i| if i % 4 == 0 { 11 } else { 10 }).await;
        row("none changed, after usage_known_for", t.count().await);
        tokio::time::sleep(KNOWN_FOR + Duration::from_millis(500)).await;
        t.cycle(|i| if i % 4 == 0 { 12 } else { 10 }).await;
        row("a quarter changed, after", t.count().await);
        t.cycle(|_| 20).await;
        row("all changed, within", t.count().await);
    });
}
