//! Site authentication: every way a token can be wrong is a 401 problem document; a token that
//! lacks a scope is a 403.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::*;

async fn assert_refused(app: &TestApp, token: &str) -> Value {
    let response = app.get_as("/v1/whoami", token).await;
    let www = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        www.starts_with("Bearer") && www.contains("error=\"invalid_token\""),
        "WWW-Authenticate was {www:?}"
    );
    assert_problem(response, 401, "invalid_token").await
}

#[tokio::test]
async fn a_valid_token_of_each_algorithm_is_accepted() {
    let app = spawn_app().await;
    let cases = [
        (Algorithm::EdDSA, "alpha-ed", "ed25519.key"),
        (Algorithm::ES256, "alpha-es", "es256.key"),
        (Algorithm::RS256, "alpha-rs", "rs256.key"),
        (Algorithm::HS256, "alpha-hs", "hs256.secret"),
    ];
    for (alg, kid, key) in cases {
        let token = sign(alg, kid, key, &claims("alpha"));
        let response = app.get_as("/v1/whoami", &token).await;
        assert_eq!(response.status(), 200, "{alg:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["site"], "alpha");
        assert_eq!(body["key_id"], kid);
        assert_eq!(body["offerings"], json!([ALPHA_OFFERING]));
        assert_eq!(body["scopes"].as_array().unwrap().len(), 6);
    }
}

#[tokio::test]
async fn whoami_reports_the_granted_scopes_within_the_sites_own() {
    let app = spawn_app().await;
    // beta may not have `jobs:admin`; asking for it grants nothing more.
    let response = app.get_as("/v1/whoami", &beta_token()).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["site"], "beta");
    assert_eq!(
        body["scopes"],
        json!([
            "usage:write",
            "orders:write",
            "resources:write",
            "users:write",
            "read"
        ])
    );
    assert!(body["token_expires_at"].as_str().is_some());
}

#[tokio::test]
async fn alg_none_is_refused() {
    let app = spawn_app().await;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"alpha-ed"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims("alpha").to_string());
    assert_refused(&app, &format!("{header}.{payload}.")).await;
    assert_refused(&app, &format!("{header}.{payload}")).await;
}

#[tokio::test]
async fn hs256_signed_with_an_rs256_public_key_is_refused() {
    let app = spawn_app().await;
    // The classic algorithm confusion: the attacker knows the public PEM and uses it as an
    // HMAC secret, naming the RSA key's kid.
    let public_pem = read_fixture("rs256.pub");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("alpha-rs".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims("alpha"),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    let body = assert_refused(&app, &token).await;
    assert!(body["detail"].as_str().unwrap().contains("alg"));
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app().await;
    let mut c = claims("alpha");
    let now = Utc::now().timestamp();
    c["iat"] = json!(now - 3600);
    c["nbf"] = json!(now - 3600);
    c["exp"] = json!(now - 60);
    let body = assert_refused(&app, &sign(Algorithm::EdDSA, "alpha-ed", "ed25519.key", &c)).await;
    assert!(body["detail"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused() {
    let app = spawn_app().await;
    let mut c = claims("alpha");
    c["nbf"] = json!(Utc::now().timestamp() + 300);
    let body = assert_refused(&app, &sign(Algorithm::EdDSA, "alpha-ed", "ed25519.key", &c)).await;
    assert!(body["detail"].as_str().unwrap().contains("nbf"));
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let app = spawn_app().await;
    let mut c = claims("alpha");
    c["aud"] = json!("some-other-gateway");
    let body = assert_refused(&app, &sign(Algorithm::EdDSA, "alpha-ed", "ed25519.key", &c)).await;
    assert!(body["detail"].as_str().unwrap().contains("aud"));
    c.as_object_mut().unwrap().remove("aud");
    assert_refused(&app, &sign(Algorithm::EdDSA, "alpha-ed", "ed25519.key", &c)).await;
}

#[tokio::test]
async fn an_issuer_that_is_not_the_keys_site_is_refused() {
    let app = spawn_app().await;
    // Signed with alpha's key but claiming to be beta.
    let c = claims("beta");
    let body = assert_refused(&app, &sign(Algorithm::EdDSA, "alpha-ed", "ed25519.key", &c)).await;
    assert!(body["detail"].as_str().unwrap().contains("iss"));
}

#[tokio::test]
async fn an_unknown_kid_and_a_missing_kid_are_refused() {
    let app = spawn_app().await;
    let token = sign(Algorithm::EdDSA, "nobody", "ed25519.key", &claims("alpha"));
    let body = assert_refused(&app, &token).await;
    assert!(body["detail"].as_str().unwrap().contains("kid"));

    let pem = std::fs::read(fixture("ed25519.key")).unwrap();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims("alpha"),
        &EncodingKey::from_ed_pem(&pem).unwrap(),
    )
    .unwrap();
    assert_refused(&app, &token).await;
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let app = spawn_app().await;
    let token = beta_token();
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["exp"] = json!(Utc::now().timestamp() + 900);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    );
    let body = assert_refused(&app, &forged).await;
    assert!(body["detail"].as_str().unwrap().contains("signature"));
}

#[tokio::test]
async fn a_signature_from_another_sites_key_is_refused() {
    let app = spawn_app().await;
    // beta's private key, alpha's kid and claims.
    let token = sign(
        Algorithm::EdDSA,
        "alpha-ed",
        "other-ed25519.key",
        &claims("alpha"),
    );
    assert_refused(&app, &token).await;
}

#[tokio::test]
async fn a_lifetime_over_the_maximum_is_refused() {
    let app = spawn_app().await;
    let mut c = claims("alpha");
    // The test configuration allows 2 h.
    c["exp"] = json!(Utc::now().timestamp() + 3 * 3600);
    let body = assert_refused(&app, &sign(Algorithm::EdDSA, "alpha-ed", "ed25519.key", &c)).await;
    assert!(body["detail"].as_str().unwrap().contains("lifetime"));
    // Without iat the lifetime counts from now.
    c.as_object_mut().unwrap().remove("iat");
    assert_refused(&app, &sign(Algorithm::EdDSA, "alpha-ed", "ed25519.key", &c)).await;
}

/// A token dated in the future cannot stretch its lifetime: `iat` ten years ahead with `exp`
/// an hour after it is refused, as is one an hour ahead.
#[tokio::test]
async fn a_token_issued_in_the_future_is_refused() {
    let app = spawn_app().await;
    let now = Utc::now().timestamp();
    for ahead in [3600, 10 * 365 * 86_400] {
        let mut c = claims("alpha");
        c["iat"] = json!(now + ahead);
        c["nbf"] = json!(now);
        c["exp"] = json!(now + ahead + 3600);
        let body =
            assert_refused(&app, &sign(Algorithm::EdDSA, "alpha-ed", "ed25519.key", &c)).await;
        assert!(body["detail"].as_str().unwrap().contains("iat"), "{body}");
    }
}

/// RFC 7519 NumericDates may have a fraction; libraries emit `exp` as `1796005440.5` or `.0`.
#[tokio::test]
async fn non_integer_numeric_dates_are_accepted() {
    let app = spawn_app().await;
    let now = Utc::now().timestamp() as f64;
    for (iat, exp) in [(now + 0.5, now + 600.5), (now, now + 600.0)] {
        let mut c = claims("alpha");
        c["iat"] = json!(iat);
        c["nbf"] = json!(iat);
        c["exp"] = json!(exp);
        let token = sign(Algorithm::EdDSA, "alpha-ed", "ed25519.key", &c);
        let response = app.get_as("/v1/whoami", &token).await;
        assert_eq!(response.status(), 200, "exp {exp}");
    }
    let mut c = claims("alpha");
    c["exp"] = json!("soon");
    assert_refused(&app, &sign(Algorithm::EdDSA, "alpha-ed", "ed25519.key", &c)).await;
}

#[tokio::test]
async fn no_authorization_header_is_a_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let response = app.get_with_auth("/v1/whoami", None).await;
    let www = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(www.starts_with("Bearer realm="), "{www}");
    assert_problem(response, 401, "missing_token").await;
}

#[tokio::test]
async fn malformed_authorization_headers_are_refused() {
    let app = spawn_app().await;
    for value in [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "Bearer a b",
        "bearer-x",
    ] {
        let response = app.get_with_auth("/v1/whoami", Some(value)).await;
        assert_problem(response, 401, "invalid_token").await;
    }
    let body = assert_refused(&app, "not.a.jwt").await;
    assert!(body["detail"].as_str().unwrap().contains("well-formed"));
}

#[tokio::test]
async fn refusals_never_echo_the_token() {
    let app = spawn_app().await;
    let token = sign(
        Algorithm::EdDSA,
        "alpha-ed",
        "other-ed25519.key",
        &claims("alpha"),
    );
    let response = app.get_as("/v1/whoami", &token).await;
    let text = response.text().await.unwrap();
    let signature = token.rsplit('.').next().unwrap();
    assert!(!text.contains(signature));
    assert!(!text.contains(&token[..20]));
}
