//! Upstream calls and latency of the people lists on a large provider.
//!
//! `cargo bench --bench read_scale` (or, without building the release profile,
//! `cargo test --bench read_scale`). A gateway in sandbox mode (the simulator in-process, the
//! embedded store, no delivery) on 127.0.0.1; the simulator is seeded with 20,000 resources
//! (half in each of the demo provider's two offerings), 5,000 projects and 20,000 users (each
//! with one role and one SSH key) through `POST /__sim/bulk`. Two sites read page 1 and the
//! last page (100 per page) of `/v1/projects`, `/v1/users`, `/v1/ssh-keys` and
//! `/v1/project-permissions`:
//! - `provider`, bound to both offerings: each page is one page of Puhuri's provider view;
//! - `partial`, bound to one offering: projects and users are pages of the offering's own views
//!   (Waldur's `list_customer_projects` / `list_customer_users`); SSH keys and roles, for which
//!   Waldur has no per-offering view, are scans of the provider view narrowed by the gateway
//!   (cached for a minute).
//!
//! Then a second gateway against the same simulator, which reads ahead at start
//! (`reads.warm_at_start`, the default), serves the `partial` site's SSH keys and roles: the
//! table shows what its read ahead cost and what its first reads cost.
//!
//! Then both sites read the filtered lists (`users?username=`, `ssh-keys?user_uuid=`,
//! `project-permissions?project_uuid=` and `?user_uuid=`), which cost a few calls on either.
//!
//! Each page is read three times; the table shows the upstream calls (from the simulator's
//! record) and the latency of the first read and the faster of the other two. The site's caches
//! (its provider, whether it has every offering, its projects) are cold only for its first read,
//! page 1 of `/v1/projects`. Runs in well under a minute.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use puhuri_gateway::config::{Config, Overrides};
use puhuri_gateway::sim::demo;
use puhuri_gateway::startup::{Application, Workers};
use serde_json::{Value, json};

const PROJECTS: usize = 5_000;
const USERS: usize = 20_000;
const RESOURCES: usize = 20_000;
const PAGE_SIZE: u64 = 100;

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
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn token(site: &str) -> String {
    let pem = std::fs::read(fixture("ed25519.key")).unwrap();
    let now = Utc::now().timestamp();
    let claims = json!({
        "iss": site, "aud": "bench", "iat": now, "nbf": now, "exp": now + 3600, "scope": "read",
    });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(format!("{site}-ed"));
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_pem(&pem).unwrap()).unwrap()
}

async fn start() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
gateway_id = "bench"
data_dir = "{data}"
[log]
level = "error"
# Seeded after the start: this gateway does not read ahead (the second one below does).
[reads]
warm_at_start = false
[[sites]]
id = "provider"
offerings = ["{lumi}", "{second}"]
[[sites.keys]]
kid = "provider-ed"
algorithm = "EdDSA"
public_key_file = "{key}"
[[sites]]
id = "partial"
offerings = ["{lumi}"]
[[sites.keys]]
kid = "partial-ed"
algorithm = "EdDSA"
public_key_file = "{key}"
"#,
        data = dir.path().display(),
        lumi = demo::LUMI_OFFERING_UUID,
        second = demo::SECOND_OFFERING_UUID,
        key = fixture("ed25519.pub"),
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    let config = Config::load(Some(&path), &Overrides::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = Application::build_with(config, listener, Workers::Manual)
        .await
        .unwrap();
    let gateway = format!("http://127.0.0.1:{}", app.port());
    let sim = app.simulator_control_url().unwrap();
    tokio::spawn(app.run_until_stopped());
    // A fresh connection per read: a slow read must not meet a kept-alive connection the
    // gateway is closing.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let seeded = client
        .post(format!("{sim}bulk"))
        .json(&json!({"projects": PROJECTS, "users": USERS, "resources": RESOURCES}))
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.status(), 201);
    Target {
        gateway,
        sim,
        client,
        _dir: dir,
    }
}

/// A second gateway against the first one's simulator, bound as `partial`, that reads ahead at
/// start. Returns its address once its read ahead ended (the simulator stopped hearing from it),
/// with the calls and the time the read ahead took.
async fn start_reading_ahead(t: &Target) -> (String, usize, Duration, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("sp-token");
    std::fs::write(&token_file, demo::TOKEN).unwrap();
    let toml = format!(
        r#"
gateway_id = "bench"
data_dir = "{data}"
[log]
level = "error"
[upstream]
url = "{api}"
token_file = "{token}"
service_provider_uuid = "{sp}"
[reads]
warm_at_start = true
[[sites]]
id = "partial"
offerings = ["{lumi}"]
[[sites.keys]]
kid = "partial-ed"
algorithm = "EdDSA"
public_key_file = "{key}"
"#,
        data = dir.path().display(),
        api = t.sim.replace("/__sim/", "/api/"),
        token = token_file.display(),
        sp = demo::SERVICE_PROVIDER_UUID,
        lumi = demo::LUMI_OFFERING_UUID,
        key = fixture("ed25519.pub"),
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    let config = Config::load(Some(&path), &Overrides::default()).unwrap();
    t.forget_calls().await;
    let started = Instant::now();
    let app = Application::build_with(
        config,
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Workers::Manual,
    )
    .await
    .unwrap();
    let gateway = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let (mut seen, mut quiet_since) = (0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = t.calls().await;
        if now != seen {
            (seen, quiet_since) = (now, Instant::now());
        } else if now > 0 && quiet_since.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    (gateway, seen, quiet_since - started, dir)
}

impl Target {
    async fn calls(&self) -> usize {
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
        calls
            .iter()
            .filter(|c| c["path"].as_str().is_some_and(|p| p.starts_with("/api/")))
            .count()
    }

    async fn forget_calls(&self) {
        self.client
            .delete(format!("{}calls", self.sim))
            .send()
            .await
            .unwrap();
    }

    /// One read: status, `X-Result-Count`, upstream calls, latency.
    async fn read(&self, path: &str, token: &str) -> (u16, u64, usize, Duration) {
        self.forget_calls().await;
        let t = Instant::now();
        let response = self
            .client
            .get(format!("{}{path}", self.gateway))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let count = response
            .headers()
            .get("x-result-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        response.bytes().await.unwrap();
        let elapsed = t.elapsed();
        (status, count, self.calls().await, elapsed)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = start().await;
        println!(
            "people lists: {RESOURCES} resources, {PROJECTS} projects, {USERS} users; {PAGE_SIZE} per page"
        );
        println!(
            "{:<9}{:<26}{:>6}{:>8}{:>8}{:>11}{:>8}{:>11}",
            "site", "list", "page", "status", "calls", "cold ms", "calls", "warm ms"
        );
        for site in ["provider", "partial"] {
            let token = token(site);
            for list in ["projects", "users", "ssh-keys", "project-permissions"] {
                let first = format!("/v1/{list}?page_size={PAGE_SIZE}&page=1");
                let probe = t.read(&first, &token).await;
                let total = probe.1;
                let last = total.div_ceil(PAGE_SIZE).max(1);
                for page in [1, last] {
                    let path = format!("/v1/{list}?page_size={PAGE_SIZE}&page={page}");
                    let mut runs = Vec::new();
                    if page == 1 {
                        runs.push(probe);
                    }
                    while runs.len() < 3 {
                        runs.push(t.read(&path, &token).await);
                    }
                    let (status, _, cold_calls, cold) = runs[0];
                    let mut warm: Vec<(usize, Duration)> =
                        runs[1..].iter().map(|r| (r.2, r.3)).collect();
                    warm.sort_by_key(|w| w.1);
                    println!(
                        "{site:<9}{list:<26}{page:>6}{status:>8}{cold_calls:>8}{:>11}{:>8}{:>11}",
                        ms(cold),
                        warm[0].0,
                        ms(warm[0].1)
                    );
                }
                println!("{site:<9}{list:<26} X-Result-Count {total}");
            }
        }
        // A gateway that read ahead at start: the partial site's first reads of its scanned
        // lists.
        let (ahead, calls, took, _dir) = start_reading_ahead(&t).await;
        println!(
            "read ahead at start (second gateway, site partial): {calls} calls, {} ms",
            ms(took)
        );
        let partial = token("partial");
        let reading_ahead = Target {
            gateway: ahead,
            sim: t.sim.clone(),
            client: t.client.clone(),
            _dir: tempfile::tempdir().unwrap(),
        };
        for list in ["ssh-keys", "project-permissions"] {
            let probe = reading_ahead
                .read(&format!("/v1/{list}?page_size={PAGE_SIZE}&page=1"), &partial)
                .await;
            let last = probe.1.div_ceil(PAGE_SIZE).max(1);
            let end = reading_ahead
                .read(&format!("/v1/{list}?page_size={PAGE_SIZE}&page={last}"), &partial)
                .await;
            for (page, (status, _, calls, took)) in [(1, probe), (last, end)] {
                println!(
                    "{:<9}{list:<26}{page:>6}{status:>8}{calls:>8}{:>11}",
                    "partial*",
                    ms(took)
                );
            }
        }
        // Filtered reads cost a few calls whatever the provider's size, on either site.
        let (bob, project) = (demo::USER_BOB_UUID, demo::PROJECT_A_UUID);
        for site in ["provider", "partial"] {
            let token = token(site);
            for (list, query) in [
                ("users", "username=bob".to_string()),
                ("ssh-keys", format!("user_uuid={bob}")),
                ("project-permissions", format!("project_uuid={project}")),
                ("project-permissions", format!("user_uuid={bob}")),
            ] {
                let path = format!("/v1/{list}?{query}");
                let runs = [
                    t.read(&path, &token).await,
                    t.read(&path, &token).await,
                    t.read(&path, &token).await,
                ];
                let (status, count, cold_calls, cold) = runs[0];
                let warm = runs[1..].iter().min_by_key(|r| r.3).unwrap();
                let filter = query.split('=').next().unwrap_or("");
                println!(
                    "{site:<9}{:<26}{:>6}{status:>8}{cold_calls:>8}{:>11}{:>8}{:>11}   ({count} found)",
                    format!("{list}?{filter}="),
                    1,
                    ms(cold),
                    warm.2,
                    ms(warm.3)
                );
            }
        }
    });
}
