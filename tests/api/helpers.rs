//! Test harness: a real gateway on 127.0.0.1:0, test sites with keys of every algorithm, and a
//! token builder that can produce every kind of bad token.

#![allow(dead_code)] // shared by all test modules; not every module uses every helper

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use puhuri_gateway::config::{Config, Overrides};
use puhuri_gateway::startup::Application;
use serde_json::{Value, json};

pub const GATEWAY_ID: &str = "gw-test";
pub const ALPHA_OFFERING: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const BETA_OFFERING: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

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
scopes = ["read"]

[[sites.keys]]
kid = "beta-ed"
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
    _dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = load_config(&base_config_toml(dir.path()), dir.path()).expect("test config");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = Application::build(config, listener)
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl TestApp {
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
