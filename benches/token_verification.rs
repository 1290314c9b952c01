//! Site token verification per algorithm: the work every `/v1` request does before anything else.
//!
//! `cargo bench --bench token_verification`. Target: under 50 µs per request for Ed25519 and HS256,
//! for a token the gateway has not seen before; a token seen before is only checked for expiry.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use puhuri_gateway::auth::SiteRegistry;
use puhuri_gateway::config::{Config, Overrides};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
        .display()
        .to_string()
}

fn registry() -> SiteRegistry {
    let dir = std::env::temp_dir().join(format!("pg-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    let toml = format!(
        r#"
gateway_id = "bench"
[[sites]]
id = "site"
offerings = ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]
[[sites.keys]]
kid = "ed"
algorithm = "EdDSA"
public_key_file = "{}"
[[sites.keys]]
kid = "es"
algorithm = "ES256"
public_key_file = "{}"
[[sites.keys]]
kid = "rs"
algorithm = "RS256"
public_key_file = "{}"
[[sites.keys]]
kid = "hs"
algorithm = "HS256"
secret_file = "{}"
"#,
        fixture("ed25519.pub"),
        fixture("es256.pub"),
        fixture("rs256.pub"),
        fixture("hs256.secret"),
    );
    std::fs::write(&path, toml).unwrap();
    let config = Config::load(Some(&path), &Overrides::default()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    SiteRegistry::from_config(&config).unwrap()
}

fn token(alg: Algorithm, kid: &str, key: &str) -> String {
    let pem = std::fs::read(fixture(key)).unwrap();
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        _ => EncodingKey::from_secret(&pem),
    };
    let now = Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": "site", "aud": "bench", "iat": now, "nbf": now, "exp": now + 3600,
        "scope": "usage:write read",
    });
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn verification(c: &mut Criterion) {
    let registry = registry();
    let mut group = c.benchmark_group("verify");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for (name, alg, kid, key) in [
        ("EdDSA", Algorithm::EdDSA, "ed", "ed25519.key"),
        ("HS256", Algorithm::HS256, "hs", "hs256.secret"),
        ("ES256", Algorithm::ES256, "es", "es256.key"),
        ("RS256", Algorithm::RS256, "rs", "rs256.key"),
    ] {
        let token = token(alg, kid, key);
        registry
            .verify(&token)
            .expect("the benchmark token verifies");
        // A token seen for the first time: every check, signature included.
        group.bench_function(name, |b| {
            b.iter(|| registry.verify_uncached(&token).unwrap())
        });
    }
    // The same token again, as a site system sends it until it renews it: only expiry is
    // checked (the same for every algorithm).
    let token = token(Algorithm::EdDSA, "ed", "ed25519.key");
    group.bench_function("EdDSA, token seen before", |b| {
        b.iter(|| registry.verify(&token).unwrap())
    });
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
