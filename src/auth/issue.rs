//! `puhuri-gateway token issue`: minting a site token from the configured keys, so onboarding a
//! site system is one command.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{EncodingKey, Header};
use secrecy::ExposeSecret;
use serde::Serialize;

use super::Scope;
use super::keys::{encoding_key_from_pem, jwt_algorithm};
use crate::config::{Config, KeyMaterial};

#[derive(Serialize)]
struct IssuedClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    scope: String,
}

/// Signs a token for `site_id` with its key `kid` (or the first key that can sign).
/// Scopes default to everything the site is allowed.
pub fn issue_token(
    config: &Config,
    site_id: &str,
    kid: Option<&str>,
    scopes: &[Scope],
    ttl: Duration,
) -> Result<String, String> {
    let site = config
        .site(site_id)
        .ok_or_else(|| format!("no site `{site_id}` is configured"))?;
    if ttl > config.auth.max_token_lifetime {
        return Err(format!(
            "--ttl {} is longer than auth.max_token_lifetime ({})",
            humantime::format_duration(ttl),
            humantime::format_duration(config.auth.max_token_lifetime)
        ));
    }
    for scope in scopes {
        if !site.scopes.contains(scope) {
            return Err(format!(
                "site `{site_id}` is not allowed the scope `{scope}`"
            ));
        }
    }
    let can_sign = |k: &&crate::config::KeyConfig| {
        matches!(k.material, KeyMaterial::Secret(_)) || k.signing_pem.is_some()
    };
    let key = match kid {
        Some(kid) => site
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| format!("site `{site_id}` has no key `{kid}`"))?,
        None => site.keys.iter().find(can_sign).ok_or_else(|| {
            format!(
                "site `{site_id}` has no key this gateway can sign with: give an HS256 secret \
                 or a private_key_file"
            )
        })?,
    };
    let encoding = match &key.material {
        KeyMaterial::Secret(secret) => EncodingKey::from_secret(secret.expose_secret().as_bytes()),
        KeyMaterial::PublicPem(_) => {
            let pem = key.signing_pem.as_ref().ok_or_else(|| {
                format!(
                    "key `{}` has no private_key_file; the site signs its own tokens",
                    key.kid
                )
            })?;
            encoding_key_from_pem(key.algorithm, pem.expose_secret())
                .map_err(|_| format!("key `{}`: the private key cannot sign", key.kid))?
        }
    };
    let granted: Vec<&str> = if scopes.is_empty() {
        site.scopes.iter().map(|s| s.as_str()).collect()
    } else {
        scopes.iter().map(|s| s.as_str()).collect()
    };
    let now = Utc::now().timestamp();
    let claims = IssuedClaims {
        iss: &site.id,
        sub: &site.id,
        aud: &config.gateway_id,
        iat: now,
        nbf: now,
        exp: now + ttl.as_secs() as i64,
        jti: uuid::Uuid::new_v4().simple().to_string(),
        scope: granted.join(" "),
    };
    let mut header = Header::new(jwt_algorithm(key.algorithm));
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &encoding).map_err(|_| "signing failed".to_string())
}
