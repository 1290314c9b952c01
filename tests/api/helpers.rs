//! Test harness: a real gateway on 127.0.0.1:0, test sites with keys of every algorithm, and a
//! token builder that can produce every kind of bad token.

#![allow(dead_code)] // shared by all test modules; not every module uses every helper

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use puhuri_gateway::config::{Config, Overrides};
use puhuri_gateway::domain::Clock;
use puhuri_gateway::queue::JobStore;
use puhuri_gateway::sim::demo;
use puhuri_gateway::startup::{Application, Workers};
use puhuri_gateway::worker::Worker;
use serde_json::{Value, json};

use crate::support::redis::{RedisServer, shared, unique_prefix};
use crate::support::stores::redis_table;

pub const GATEWAY_ID: &str = "gw-test";
/// Site alpha is bound to the simulator's LUMI-like offering.
pub const ALPHA_OFFERING: &str = demo::LUMI_OFFERING_UUID;
/// Site beta is bound to the same provider's second offering.
pub const BETA_OFFERING: &str = demo::SECOND_OFFERING_UUID;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

pub fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("fixture readable")
}

/// The configuration every API test starts from: site `alpha` with one key per algorithm (all
/// scopes), site `beta` with one Ed25519 key and only `read`.
pub fn base_config_toml(data_dir: &Path) -> String {
    format!(
        r#"
gateway_id = "{GATEWAY_ID}"
data_dir = "{data}"

[log]
level = "warn"
format = "human"

[auth]
max_token_lifetime = "2h"
leeway = "5s"

[limits]
max_body_bytes = 262144

# Tests seed the simulator after the gateway starts: a read ahead at start would keep the
# lists as they were before the seeding (tests/api/people.rs tests the read ahead itself).
[reads]
warm_at_start = false

[[sites]]
id = "alpha"
offerings = ["{ALPHA_OFFERING}"]

[[sites.keys]]
kid = "alpha-ed"
algorithm = "EdDSA"
public_key_file = "{ed}"
private_key_file = "{ed_priv}"

[[sites.keys]]
kid = "alpha-es"
algorithm = "ES256"
public_key_file = "{es}"

[[sites.keys]]
kid = "alpha-rs"
algorithm = "RS256"
public_key_file = "{rs}"

[[sites.keys]]
kid = "alpha-hs"
algorithm = "HS256"
secret_file = "{hs}"

[[sites]]
id = "beta"
offerings = ["{BETA_OFFERING}"]
scopes = ["read", "usage:write", "orders:write", "resources:write", "users:write"]

[[sites.keys]]
kid = "beta-ed"
algorithm = "EdDSA"
public_key_file = "{other}"

# Bound to every offering of the demo provider (both alpha's and beta's).
[[sites]]
id = "provider"
offerings = ["{ALPHA_OFFERING}", "{BETA_OFFERING}"]
scopes = ["read", "users:write"]

[[sites.keys]]
kid = "provider-ed"
algorithm = "EdDSA"
public_key_file = "{other}"
"#,
        data = data_dir.display(),
        ed = fixture("ed25519.pub").display(),
        ed_priv = fixture("ed25519.key").display(),
        es = fixture("es256.pub").display(),
        rs = fixture("rs256.pub").display(),
        hs = fixture("hs256.secret").display(),
        other = fixture("other-ed25519.pub").display(),
    )
}

pub fn load_config(toml: &str, dir: &Path) -> Result<Config, String> {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    Config::load(Some(&path), &Overrides::default()).map_err(|e| e.to_string())
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The in-process simulator's control API (`.../__sim/`).
    pub sim: String,
    pub store: Arc<dyn JobStore>,
    /// One delivery step at a time (for apps spawned with `Workers::Manual`).
    pub worker: Worker,
    /// The sites' event lanes.
    pub events: Arc<puhuri_gateway::events::EventHub>,
    _redis: Option<Arc<RedisServer>>,
    _dir: tempfile::TempDir,
}

/// Which store the app uses, and whether its delivery loops run.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    pub redis: bool,
    pub workers: Workers,
}

/// Sandbox mode (the simulator in-process), the embedded store, workers running.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(
        Setup {
            redis: false,
            workers: Workers::Start,
        },
        "",
    )
    .await
}

/// Redis (a test redis-server, unique key prefix), workers driven by the test.
pub async fn spawn_manual_app() -> TestApp {
    spawn_app_with(
        Setup {
            redis: true,
            workers: Workers::Manual,
        },
        "",
    )
    .await
}

/// Redis, workers running.
pub async fn spawn_redis_app() -> TestApp {
    spawn_app_with(
        Setup {
            redis: true,
            workers: Workers::Start,
        },
        "",
    )
    .await
}

/// `extra_toml` is appended to the base configuration (e.g. a `[delivery]` table).
pub async fn spawn_app_with(setup: Setup, extra_toml: &str) -> TestApp {
    spawn_app_with_clock(setup, extra_toml, Clock::system()).await
}

/// [`spawn_app_with`], the API's "now" read from `clock` (a manual clock moves when the test
/// sets it).
pub async fn spawn_app_with_clock(setup: Setup, extra_toml: &str, clock: Clock) -> TestApp {
    spawn_app_in(setup, extra_toml, clock, tempfile::tempdir().unwrap()).await
}

/// [`spawn_app_with_clock`] with `dir` as the data directory (the embedded store's file is
/// `dir/jobs.redb`).
pub async fn spawn_app_in(
    setup: Setup,
    extra_toml: &str,
    clock: Clock,
    dir: tempfile::TempDir,
) -> TestApp {
    let mut toml = base_config_toml(dir.path());
    let redis = setup.redis.then(shared);
    if let Some(server) = &redis {
        toml.push_str(&redis_table(&server.url(), &unique_prefix("api")));
    }
    toml.push_str(extra_toml);
    let config = load_config(&toml, dir.path()).expect("test config");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = Application::build_with_clock(config, listener, setup.workers, clock)
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let sim = app
        .simulator_control_url()
        .expect("sandbox mode runs the simulator");
    let store = app.store();
    let worker = app.worker();
    let events = app.events();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        sim,
        store,
        worker,
        events,
        _redis: redis,
        _dir: dir,
    }
}

impl TestApp {
    /// The data directory (the embedded store's file is `jobs.redb` in it).
    pub fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get_with_auth(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.client.get(self.url(path));
        if let Some(value) = authorization {
            req = req.header("Authorization", value);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.get_with_auth(path, Some(&format!("Bearer {token}")))
            .await
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_usage(&self, token: &str, body: &Value) -> reqwest::Response {
        self.post_json("/v1/usage", token, body).await
    }

    pub async fn job(&self, token: &str, id: &str) -> Value {
        crate::support::poll::job_view(&self.client, &self.address, token, id).await
    }

    /// Runs delivery steps until nothing is due (bounded).
    pub async fn drain(&self) {
        use puhuri_gateway::worker::StepOutcome;
        for _ in 0..1000 {
            match self.worker.try_execute_one().await.expect("store answers") {
                StepOutcome::Idle { .. } => return,
                StepOutcome::Throttled { retry_in } => tokio::time::sleep(retry_in).await,
                _ => {}
            }
        }
        panic!("the queue did not drain in 1000 steps");
    }

    /// The simulator's Waldur API root, beside its control API (`.../api/`).
    pub fn puhuri_url(&self) -> String {
        self.sim.replace("/__sim/", "/api/")
    }

    /// A call straight at "Puhuri" (the simulator's Waldur API) with the Waldur `token`, as a
    /// provider or another client would make it; asserts a 2xx answer and returns its body
    /// (`Null` when there is none).
    pub async fn puhuri(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.puhuri_url()))
            .header("Authorization", format!("Token {token}"));
        if let Some(body) = body {
            request = request.json(body);
        }
        let wanted = crate::support::client::Wanted::Success;
        crate::support::client::expect(request, wanted).await.body
    }

    /// Someone other than the gateway sets the demo resource's usage of `component` for this
    /// month in "Puhuri" (`set_usage` with the service provider's token), asserting a 2xx.
    pub async fn set_usage_in_puhuri(&self, component: &str, amount: &str) {
        let month_start = Utc::now().format("%Y-%m-01").to_string();
        let usage = json!({"resource": demo::RESOURCE_OK_UUID, "date": month_start,
                           "usages": [{"type": component, "amount": amount}]});
        let set_usage = "marketplace-component-usages/set_usage/";
        self.puhuri(reqwest::Method::POST, set_usage, demo::TOKEN, Some(&usage))
            .await;
    }

    /// The simulator's control API.
    pub async fn sim_get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{}", self.sim, path.trim_start_matches('/')))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn sim_post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{}", self.sim, path.trim_start_matches('/')))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Calls the simulator received, optionally only those whose path contains `fragment`.
    pub async fn sim_calls(&self, fragment: &str) -> Vec<Value> {
        let calls = self.sim_get("calls").await;
        let list = calls
            .as_array()
            .cloned()
            .or_else(|| calls["calls"].as_array().cloned())
            .unwrap_or_default();
        list.into_iter()
            .filter(|c| c["path"].as_str().is_some_and(|p| p.contains(fragment)))
            .collect()
    }
}

/// Claims for a good token of `site`; tests change what they need.
pub fn claims(site: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "iss": site,
        "sub": site,
        "aud": GATEWAY_ID,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "scope": "usage:write orders:write resources:write users:write read jobs:admin",
    })
}

pub fn sign(alg: Algorithm, kid: &str, key_fixture: &str, claims: &Value) -> String {
    let pem = std::fs::read(fixture(key_fixture)).unwrap();
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        Algorithm::HS256 => EncodingKey::from_secret(&pem),
        other => panic!("no test key for {other:?}"),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A valid token for site alpha signed with its Ed25519 key.
pub fn alpha_token() -> String {
    sign(
        Algorithm::EdDSA,
        "alpha-ed",
        "ed25519.key",
        &claims("alpha"),
    )
}

/// A valid token for site beta (scope `read` only).
/// The site bound to every offering of the demo provider.
pub fn provider_token() -> String {
    sign(
        Algorithm::EdDSA,
        "provider-ed",
        "other-ed25519.key",
        &claims("provider"),
    )
}

pub fn beta_token() -> String {
    sign(
        Algorithm::EdDSA,
        "beta-ed",
        "other-ed25519.key",
        &claims("beta"),
    )
}

/// Asserts a problem+json answer with `status` and `code`, returning the body.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type was {content_type:?}"
    );
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["code"], code, "problem code in {body}");
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}
