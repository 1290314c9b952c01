//! Verifying site tokens against the configured keys.
//!
//! A site system sends the same token on every request until it renews it, and checking an
//! Ed25519 signature takes about 47 µs (RS256 about 170, ES256 about 240) where a map lookup takes
//! well under one. So tokens that passed every check are remembered until they expire, by the
//! SHA-256 of the token (the token itself is not kept), and a later request with the same token
//! is only checked for expiry. A token that fails is never remembered; a registry built from a
//! new configuration starts empty. The memory is bounded (a moka cache of [`VERIFIED_CAPACITY`]
//! tokens, evicting the least useful one at a time); an expired token found there is dropped.
//!
//! **Time claims** (RFC 7519 §4.1.4–4.1.6), checked by the gateway itself rather than the JWT
//! library so that every NumericDate is read the same way. A NumericDate is a JSON number of
//! seconds since the epoch and may have a fraction (`1796005440.5`); anything else (a string, a
//! value outside the years 1970–262142) is a malformed claim. With `leeway` = `auth.leeway`
//! (default 30 s) for clock skew between the site and the gateway:
//! - `exp` is required; the token is refused once `now >= exp + leeway`;
//! - `nbf`, when present: refused while `now < nbf - leeway`;
//! - `iat`, when present: refused while `iat > now + leeway` (a token cannot be issued in the
//!   future; without this a token dated ten years ahead would pass the lifetime check);
//! - the lifetime is counted from the later of `iat` and now: `exp - max(iat, now)` must be at
//!   most `auth.max_token_lifetime + leeway`, so a token without `iat`, or with an old one, cannot
//!   live longer than the maximum from the moment the gateway first sees it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::keys::{decoding_key, jwt_algorithm};
use super::{Scope, Site, SiteIdentity, TokenRejection};
use crate::config::{Config, KeyAlgorithm};

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
    verified: moka::sync::Cache<[u8; 32], SiteIdentity>,
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
    #[serde(default)]
    exp: Option<serde_json::Value>,
    #[serde(default)]
    nbf: Option<serde_json::Value>,
    #[serde(default)]
    iat: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<serde_json::Value>,
}

/// A NumericDate claim (RFC 7519 §2): a JSON number of seconds since the epoch, fraction
/// allowed, within the range of dates the gateway can represent.
fn numeric_date(
    value: Option<&serde_json::Value>,
) -> Result<Option<DateTime<Utc>>, TokenRejection> {
    let Some(value) = value else {
        return Ok(None);
    };
    let serde_json::Value::Number(n) = value else {
        return Err(TokenRejection::InvalidClaims);
    };
    let at = if let Some(whole) = n.as_i64() {
        DateTime::<Utc>::from_timestamp(whole, 0)
    } else {
        n.as_f64().filter(|s| s.is_finite()).and_then(|s| {
            let whole = s.floor();
            let nanos = ((s - whole) * 1e9).round().min(999_999_999.0) as u32;
            // `as` saturates; a value past i64's range is refused by from_timestamp.
            DateTime::<Utc>::from_timestamp(whole as i64, nanos)
        })
    };
    match at {
        Some(at) if at.timestamp() >= 0 => Ok(Some(at)),
        _ => Err(TokenRejection::InvalidClaims),
    }
}

/// The checks of the module doc on `exp`, `nbf` and `iat`; returns when the token expires.
fn check_time_claims(
    claims: &Claims,
    now: DateTime<Utc>,
    leeway: chrono::TimeDelta,
    max_lifetime: chrono::TimeDelta,
) -> Result<DateTime<Utc>, TokenRejection> {
    let exp = numeric_date(claims.exp.as_ref())?.ok_or(TokenRejection::MissingClaim)?;
    let nbf = numeric_date(claims.nbf.as_ref())?;
    let iat = numeric_date(claims.iat.as_ref())?;
    // Saturating arithmetic: a claim may be any date up to the year 262142.
    let plus = |at: DateTime<Utc>, d: chrono::TimeDelta| {
        at.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
    };
    let minus = |at: DateTime<Utc>, d: chrono::TimeDelta| {
        at.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    if now >= plus(exp, leeway) {
        return Err(TokenRejection::Expired);
    }
    if nbf.is_some_and(|nbf| now < minus(nbf, leeway)) {
        return Err(TokenRejection::NotYetValid);
    }
    if iat.is_some_and(|iat| iat > plus(now, leeway)) {
        return Err(TokenRejection::IssuedInFuture);
    }
    let from = iat.map_or(now, |iat| iat.max(now));
    let allowed = max_lifetime
        .checked_add(&leeway)
        .unwrap_or(chrono::TimeDelta::MAX);
    if exp.signed_duration_since(from) > allowed {
        return Err(TokenRejection::LifetimeTooLong);
    }
    Ok(exp)
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
                identity: site_cfg.identity.clone(),
                customers: site_cfg.customers.clone(),
                projects: site_cfg.projects.clone(),
            });
            for key_cfg in &site_cfg.keys {
                let key = decoding_key(key_cfg.algorithm, &key_cfg.material)
                    .map_err(|m| format!("configuration key `{}`: {m}", key_cfg.config_key))?;
                let mut validation = Validation::new(jwt_algorithm(key_cfg.algorithm));
                validation.set_audience(&[config.gateway_id.as_str()]);
                validation.set_issuer(&[site.id.as_str()]);
                // Time claims are checked by `check_time_claims` (module doc).
                validation.set_required_spec_claims(&["aud", "iss"]);
                validation.validate_exp = false;
                validation.validate_nbf = false;
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
            verified: moka::sync::Cache::new(VERIFIED_CAPACITY as u64),
        })
    }

    fn leeway_delta(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.leeway).unwrap_or(chrono::TimeDelta::MAX)
    }

    /// Every configured site, in the configuration's order.
    pub fn sites(&self) -> impl Iterator<Item = &Arc<Site>> {
        self.sites.iter()
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
        let leeway = self.leeway_delta();
        let now = Utc::now();
        let unexpired = |identity: &SiteIdentity| {
            identity
                .expires_at
                .checked_add_signed(leeway)
                .is_none_or(|end| now < end)
        };
        if let Some(identity) = self.verified.get(&digest) {
            if unexpired(&identity) {
                return Ok(identity);
            }
            self.verified.invalidate(&digest);
        }
        let identity = self.verify_uncached(token)?;
        self.verified.insert(digest, identity.clone());
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
        let max_lifetime =
            chrono::TimeDelta::from_std(self.max_lifetime).unwrap_or(chrono::TimeDelta::MAX);
        let expires_at = check_time_claims(&claims, Utc::now(), self.leeway_delta(), max_lifetime)?;
        let granted = parse_scopes(claims.scope.as_ref())?;
        let scopes: BTreeSet<Scope> = granted.intersection(&key.site.scopes).copied().collect();
        Ok(SiteIdentity {
            site: key.site.clone(),
            scopes,
            expires_at,
            kid: kid.to_string(),
        })
    }
}

/// `scope` is a string of scope tokens separated by spaces (RFC 8693 §4.2, RFC 6749 §3.3: one
/// space, U+0020, and each token printable ASCII other than `"` and `\\`) or an array of such
/// tokens; anything else in it (a tab, a newline, a no-break space...) refuses the token.
/// Unknown but well-formed scopes are ignored so a newer issuer does not lock out an older
/// gateway.
fn parse_scopes(value: Option<&serde_json::Value>) -> Result<BTreeSet<Scope>, TokenRejection> {
    let scope_token = |t: &str| {
        t.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
    };
    let names: Vec<&str> = match value {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => {
            let names: Vec<&str> = s.split(' ').filter(|t| !t.is_empty()).collect();
            if !names.iter().all(|t| scope_token(t)) {
                return Err(TokenRejection::InvalidClaims);
            }
            names
        }
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .filter(|t| !t.is_empty() && scope_token(t))
                    .ok_or(TokenRejection::InvalidClaims)
            })
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
        registry_with(dir, leeway, "30days")
    }

    fn registry_with(dir: &Path, leeway: &str, max_lifetime: &str) -> SiteRegistry {
        let path = dir.join("gateway.toml");
        let toml = format!(
            "gateway_id = \"gw\"\ndata_dir = \"{data}\"\n[auth]\nleeway = \"{leeway}\"\n\
             max_token_lifetime = \"{max_lifetime}\"\n\
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

    impl SiteRegistry {
        /// How many tokens are remembered, once moka has applied pending evictions.
        fn remembered(&self) -> usize {
            self.verified.run_pending_tasks();
            self.verified.entry_count() as usize
        }
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        let token = token(1);
        let first = registry.verify(&token).unwrap();
        assert_eq!(registry.remembered(), 1);
        let again = registry.verify(&token).unwrap();
        assert_eq!(again.id(), first.id());
        assert_eq!(again.scopes, first.scopes);
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(registry.verify(&token).err(), Some(TokenRejection::Expired));
        assert!((registry.remembered() == 0));
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
        assert_eq!(registry.remembered(), 1);
    }

    /// The largest `exp` a token can carry: remembering it must not overflow the expiry check.
    /// (`iat` cannot be in the future, so the maximum lifetime is set beyond that date.)
    #[test]
    fn a_token_expiring_in_the_far_future_is_remembered_safely() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry_with(dir.path(), "30s", "300000years");
        let secret = std::fs::read(secret_path()).unwrap();
        let exp = DateTime::<Utc>::MAX_UTC.timestamp();
        let claims = serde_json::json!({
            "iss": "site", "aud": "gw", "iat": Utc::now().timestamp(), "exp": exp, "scope": "usage:write",
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
        assert!(registry.remembered() <= VERIFIED_CAPACITY);
    }

    fn signed(claims: serde_json::Value) -> String {
        let secret = std::fs::read(secret_path()).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("hs".into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap()
    }

    /// The time claims of the module doc, each on both sides of its boundary (30 s leeway,
    /// 30 days maximum lifetime).
    #[test]
    fn time_claims_follow_rfc_7519_with_the_leeway() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry_with(dir.path(), "30s", "30days");
        let now = Utc::now().timestamp();
        let day = 86_400;
        let check = |claims: serde_json::Value| {
            let mut claims = claims;
            claims["iss"] = "site".into();
            claims["aud"] = "gw".into();
            registry.verify_uncached(&signed(claims)).err()
        };
        use TokenRejection::*;
        use serde_json::json;
        let cases: Vec<(serde_json::Value, Option<TokenRejection>)> = vec![
            (json!({"iat": now, "exp": now + 3600}), None),
            // non-integer NumericDates are allowed by RFC 7519 §2
            (
                json!({"iat": now as f64 + 0.25, "exp": now as f64 + 3600.5}),
                None,
            ),
            (
                json!({"exp": format!("{}", now + 3600)}),
                Some(InvalidClaims),
            ),
            (json!({"exp": -5}), Some(InvalidClaims)),
            (json!({"exp": 1e300}), Some(InvalidClaims)),
            (json!({"iat": now}), Some(MissingClaim)),
            // exp: refused once now >= exp + leeway
            (json!({"exp": now - 10}), None),
            (json!({"exp": now - 31}), Some(Expired)),
            // nbf: refused while now < nbf - leeway
            (json!({"nbf": now + 10, "exp": now + 3600}), None),
            (
                json!({"nbf": now + 120, "exp": now + 3600}),
                Some(NotYetValid),
            ),
            // iat: refused while iat > now + leeway
            (json!({"iat": now + 10, "exp": now + 3600}), None),
            (
                json!({"iat": now + 3600, "exp": now + 7200}),
                Some(IssuedInFuture),
            ),
            (
                json!({"iat": now + 10 * 365 * day, "exp": now + 10 * 365 * day + 3600}),
                Some(IssuedInFuture),
            ),
            // the lifetime counts from the later of iat and now
            (json!({"exp": now + 30 * day}), None),
            (json!({"exp": now + 31 * day}), Some(LifetimeTooLong)),
            (json!({"iat": now - 20 * day, "exp": now + 20 * day}), None),
            (
                json!({"iat": now - 40 * day, "exp": now + 31 * day}),
                Some(LifetimeTooLong),
            ),
        ];
        for (claims, expected) in cases {
            assert_eq!(check(claims.clone()), expected, "{claims}");
        }
    }

    /// A fractional `exp` is kept to the sub-second: the token expires at that instant.
    #[test]
    fn a_fractional_expiry_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry_with(dir.path(), "0s", "30days");
        let exp = Utc::now().timestamp() as f64 + 600.5;
        let token = signed(serde_json::json!({"iss": "site", "aud": "gw", "exp": exp}));
        let identity = registry.verify(&token).unwrap();
        assert_eq!(
            identity.expires_at.timestamp_millis(),
            (exp * 1000.0) as i64
        );
    }
}
