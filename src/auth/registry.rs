//! Verifying site tokens against the configured keys.
//!
//! A site system sends the same token on every request until it renews it, and checking an
//! Ed25519 signature takes about 47 µs (RS256 about 170, ES256 about 240) where a map lookup takes
//! well under one. So tokens that passed every check are remembered until they expire, by the
//! SHA-256 of the token (the token itself is not kept), and a later request with the same token
//! is only checked for expiry. A token that fails is never remembered; a registry built from a
//! new configuration starts empty. The memory is bounded: when [`VERIFIED_CAPACITY`] tokens are
//! remembered, expired ones are dropped, and if none were, all are.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use parking_lot::Mutex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

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

/// Most tokens remembered as verified (see the module doc): 4,096 entries take about 1 MB.
pub const VERIFIED_CAPACITY: usize = 4096;

/// All sites and their keys, indexed by `kid` (unique across sites, checked at load).
pub struct SiteRegistry {
    keys: HashMap<String, VerificationKey>,
    sites: Vec<Arc<Site>>,
    max_lifetime: Duration,
    leeway: Duration,
    /// Tokens that passed every check, by SHA-256, until they expire (module doc).
    verified: Mutex<HashMap<[u8; 32], SiteIdentity>>,
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
            verified: Mutex::default(),
        })
    }

    pub fn site(&self, id: &str) -> Option<&Arc<Site>> {
        self.sites.iter().find(|s| s.id == id)
    }

    /// Verifies a compact JWT and returns who it speaks for. A token verified before is only
    /// checked for expiry (module doc).
    pub fn verify(&self, token: &str) -> Result<SiteIdentity, TokenRejection> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Expiry with the leeway, in whole seconds as the full check applies it; saturating,
        // since a token may carry any `exp` up to the year 262142.
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let now = Utc::now().timestamp();
        let unexpired =
            |identity: &SiteIdentity| now <= identity.expires_at.timestamp().saturating_add(leeway);
        {
            let mut verified = self.verified.lock();
            if let Some(identity) = verified.get(&digest) {
                if unexpired(identity) {
                    return Ok(identity.clone());
                }
                verified.remove(&digest);
            }
        }
        let identity = self.verify_uncached(token)?;
        let mut verified = self.verified.lock();
        if verified.len() >= VERIFIED_CAPACITY {
            verified.retain(|_, known| unexpired(known));
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(digest, identity.clone());
        Ok(identity)
    }

    /// Every check of a token, signature included, remembering nothing: what [`Self::verify`]
    /// does for a token it has not seen. Public for the verification benchmark.
    pub fn verify_uncached(&self, token: &str) -> Result<SiteIdentity, TokenRejection> {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    use super::*;
    use crate::config::Overrides;

    fn secret_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys/hs256.secret")
    }

    /// One site with an HS256 key and the given leeway ("0s": expiry is exact).
    fn registry_with_leeway(dir: &Path, leeway: &str) -> SiteRegistry {
        let path = dir.join("gateway.toml");
        let toml = format!(
            "gateway_id = \"gw\"\ndata_dir = \"{data}\"\n[auth]\nleeway = \"{leeway}\"\n\
             [[sites]]\nid = \"site\"\nofferings = [\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]\n\
             [[sites.keys]]\nkid = \"hs\"\nalgorithm = \"HS256\"\nsecret_file = \"{secret}\"\n",
            data = dir.display(),
            secret = secret_path().display(),
        );
        std::fs::write(&path, toml).unwrap();
        let config = Config::load(Some(&path), &Overrides::default()).unwrap();
        SiteRegistry::from_config(&config).unwrap()
    }

    fn registry(dir: &Path) -> SiteRegistry {
        registry_with_leeway(dir, "0s")
    }

    fn token(exp_in: i64) -> String {
        let secret = std::fs::read(secret_path()).unwrap();
        let now = Utc::now().timestamp();
        let claims = serde_json::json!({
            "iss": "site", "aud": "gw", "iat": now, "exp": now + exp_in, "scope": "usage:write",
        });
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("hs".into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap()
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        let token = token(1);
        let first = registry.verify(&token).unwrap();
        assert_eq!(registry.verified.lock().len(), 1);
        let again = registry.verify(&token).unwrap();
        assert_eq!(again.id(), first.id());
        assert_eq!(again.scopes, first.scopes);
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(registry.verify(&token).err(), Some(TokenRejection::Expired));
        assert!(registry.verified.lock().is_empty());
    }

    #[test]
    fn a_changed_token_is_checked_in_full() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        let token = token(600);
        registry.verify(&token).unwrap();
        // the same claims with a signature one character off (not the last character, whose
        // low bits base64 may not use)
        let mut forged = token.clone().into_bytes();
        let at = forged.len() - 5;
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(
            registry.verify(&forged).err(),
            Some(TokenRejection::BadSignature)
        );
        assert_eq!(registry.verified.lock().len(), 1);
    }

    /// The largest `exp` a token can carry: remembering it must not overflow the expiry check.
    #[test]
    fn a_token_expiring_in_the_far_future_is_remembered_safely() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry_with_leeway(dir.path(), "30s");
        let secret = std::fs::read(secret_path()).unwrap();
        let exp = DateTime::<Utc>::MAX_UTC.timestamp();
        let claims = serde_json::json!({
            "iss": "site", "aud": "gw", "iat": exp - 60, "exp": exp, "scope": "usage:write",
        });
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("hs".into());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        let first = registry.verify(&token).unwrap();
        let again = registry.verify(&token).unwrap();
        assert_eq!(again.expires_at, first.expires_at);
    }

    #[test]
    fn the_memory_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        for n in 0..VERIFIED_CAPACITY + 10 {
            // distinct tokens: the lifetime differs
            registry.verify(&token(600 + n as i64)).unwrap();
        }
        assert!(registry.verified.lock().len() <= VERIFIED_CAPACITY);
    }
}
