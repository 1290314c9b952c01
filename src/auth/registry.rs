//! Verifying site tokens against the configured keys.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;

use super::keys::{decoding_key, jwt_algorithm};
use super::{Scope, Site, SiteIdentity};
use crate::config::{Config, KeyAlgorithm};

/// Why a token was refused. Every variant is a 401; the text is safe to send (it names the rule
/// that failed, never key material or token contents).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("the Authorization header must be `Bearer <token>`")]
    MalformedHeader,
    #[error("the token is not a well-formed signed JWT")]
    Malformed,
    #[error("the token header has no `kid`")]
    MissingKid,
    #[error("the token's `kid` names no key known to this gateway")]
    UnknownKey,
    #[error("the token's `alg` is not the algorithm its key is pinned to")]
    AlgorithmMismatch,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (`nbf` is in the future)")]
    NotYetValid,
    #[error("the token's `aud` is not this gateway's id")]
    WrongAudience,
    #[error("the token's `iss` is not the site its key belongs to")]
    WrongIssuer,
    #[error("the token lacks a required claim (`exp`, `aud` and `iss` are required)")]
    MissingClaim,
    #[error("the token's claims are malformed")]
    InvalidClaims,
    #[error("the token's lifetime is longer than this gateway allows")]
    LifetimeTooLong,
}

struct VerificationKey {
    site: Arc<Site>,
    algorithm: KeyAlgorithm,
    key: DecodingKey,
    validation: Validation,
}

/// All sites and their keys, indexed by `kid` (unique across sites, checked at load).
pub struct SiteRegistry {
    keys: HashMap<String, VerificationKey>,
    sites: Vec<Arc<Site>>,
    max_lifetime: Duration,
    leeway: Duration,
}

impl std::fmt::Debug for SiteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteRegistry")
            .field(
                "sites",
                &self.sites.iter().map(|s| &s.id).collect::<Vec<_>>(),
            )
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    scope: Option<serde_json::Value>,
}

impl SiteRegistry {
    pub fn from_config(config: &Config) -> Result<SiteRegistry, String> {
        let mut keys = HashMap::new();
        let mut sites = Vec::new();
        for site_cfg in &config.sites {
            let site = Arc::new(Site {
                id: site_cfg.id.clone(),
                offerings: site_cfg.offerings.clone(),
                scopes: site_cfg.scopes.clone(),
            });
            for key_cfg in &site_cfg.keys {
                let key = decoding_key(key_cfg.algorithm, &key_cfg.material)
                    .map_err(|m| format!("configuration key `{}`: {m}", key_cfg.config_key))?;
                let mut validation = Validation::new(jwt_algorithm(key_cfg.algorithm));
                validation.set_audience(&[config.gateway_id.as_str()]);
                validation.set_issuer(&[site.id.as_str()]);
                validation.set_required_spec_claims(&["exp", "aud", "iss"]);
                validation.validate_exp = true;
                validation.validate_nbf = true;
                validation.leeway = config.auth.leeway.as_secs();
                keys.insert(
                    key_cfg.kid.clone(),
                    VerificationKey {
                        site: site.clone(),
                        algorithm: key_cfg.algorithm,
                        key,
                        validation,
                    },
                );
            }
            sites.push(site);
        }
        Ok(SiteRegistry {
            keys,
            sites,
            max_lifetime: config.auth.max_token_lifetime,
            leeway: config.auth.leeway,
        })
    }

    pub fn site(&self, id: &str) -> Option<&Arc<Site>> {
        self.sites.iter().find(|s| s.id == id)
    }

    /// Verifies a compact JWT and returns who it speaks for.
    pub fn verify(&self, token: &str) -> Result<SiteIdentity, TokenRejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Malformed)?;
        let kid = header.kid.as_deref().ok_or(TokenRejection::MissingKid)?;
        let key = self.keys.get(kid).ok_or(TokenRejection::UnknownKey)?;
        if header.alg != jwt_algorithm(key.algorithm) {
            return Err(TokenRejection::AlgorithmMismatch);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation)
            .map_err(|e| classify(e.kind()))?;
        let claims = data.claims;
        let now = Utc::now().timestamp();
        let issued = claims.iat.unwrap_or(now);
        let lifetime = claims.exp.saturating_sub(issued);
        if lifetime > (self.max_lifetime + self.leeway).as_secs() as i64 {
            return Err(TokenRejection::LifetimeTooLong);
        }
        let granted = parse_scopes(claims.scope.as_ref())?;
        let scopes: BTreeSet<Scope> = granted.intersection(&key.site.scopes).copied().collect();
        let expires_at =
            DateTime::<Utc>::from_timestamp(claims.exp, 0).ok_or(TokenRejection::InvalidClaims)?;
        Ok(SiteIdentity {
            site: key.site.clone(),
            scopes,
            expires_at,
            kid: kid.to_string(),
        })
    }
}

/// `scope` is a space-separated string (RFC 8693) or an array of strings; unknown scopes are
/// ignored so a newer issuer does not lock out an older gateway.
fn parse_scopes(value: Option<&serde_json::Value>) -> Result<BTreeSet<Scope>, TokenRejection> {
    let names: Vec<&str> = match value {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => s.split_whitespace().collect(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or(TokenRejection::InvalidClaims))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(TokenRejection::InvalidClaims),
    };
    Ok(names.into_iter().filter_map(Scope::parse).collect())
}

fn classify(kind: &ErrorKind) -> TokenRejection {
    match kind {
        ErrorKind::InvalidSignature => TokenRejection::BadSignature,
        ErrorKind::ExpiredSignature => TokenRejection::Expired,
        ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
        ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
        ErrorKind::InvalidIssuer => TokenRejection::WrongIssuer,
        ErrorKind::MissingRequiredClaim(_) => TokenRejection::MissingClaim,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            TokenRejection::AlgorithmMismatch
        }
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => TokenRejection::InvalidClaims,
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenRejection::BadSignature,
        _ => TokenRejection::Malformed,
    }
}
