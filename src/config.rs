//! Configuration: one TOML file, every key overridable from the environment, secrets from files.
//!
//! Loading happens in two steps. [`RawConfig`] is what figment extracts from the layers (built-in
//! defaults < the TOML file < `PUHURI_GATEWAY_*` environment variables < command-line flags); every
//! struct denies unknown fields so a typo in the file or in a variable name stops the start instead
//! of being ignored. [`Config::from_raw`] then resolves secrets from their `*_file` keys and checks
//! values that serde cannot (site ids, key files, the lease/timeout relation), always naming the
//! key in the message. Nothing here ever formats a secret: they are held as [`SecretString`].
//!
//! Environment variables use `__` between levels: `PUHURI_GATEWAY_UPSTREAM__URL`,
//! `PUHURI_GATEWAY_REDIS__URL`, `PUHURI_GATEWAY_DELIVERY__WORKERS`. Sites are best kept in the file.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Scope;

/// The prefix of every environment variable the gateway reads.
pub const ENV_PREFIX: &str = "PUHURI_GATEWAY_";
/// Names the configuration file; not a configuration key itself.
pub const CONFIG_PATH_ENV: &str = "PUHURI_GATEWAY_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("configuration key `{key}`: {message}")]
    Key { key: String, message: String },
}

fn key_error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The raw layers, as serde reads them.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The gateway's own id: site tokens must carry it as `aud`.
    pub gateway_id: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The URL site systems reach the gateway at (used in `Link` headers and printed examples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    pub log: LogConfig,
    pub upstream: RawUpstream,
    pub redis: RawRedis,
    pub auth: AuthConfig,
    pub delivery: DeliveryConfig,
    pub limits: LimitsConfig,
    #[serde(default)]
    pub sites: Vec<RawSite>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,puhuri_gateway=debug`.
    pub level: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Puhuri Core's API root, e.g. `https://puhuri-core.example.org/api/`. Unset: sandbox mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing)]
    pub token: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The service provider's uuid (for the provider's users, keys, projects and usernames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_provider_uuid: Option<String>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// Unset: the embedded store in `data_dir`.
    #[serde(default, skip_serializing)]
    pub url: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    pub key_prefix: String,
    pub pool_size: usize,
    #[serde(with = "humantime_serde")]
    pub pool_wait_timeout: Duration,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The longest `exp - iat` a site token may have.
    #[serde(with = "humantime_serde")]
    pub max_token_lifetime: Duration,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Concurrent delivery tasks in this process.
    pub workers: usize,
    /// Calls in flight toward Puhuri, shared by all replicas on one store.
    pub max_in_flight: u32,
    /// Calls started per second toward Puhuri, shared by all replicas on one store.
    pub max_per_second: u32,
    /// How long a worker holds a job before another may take it over; must exceed upstream.timeout.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    pub max_attempts: u32,
    /// A job still failing this long after it was accepted is given up (`dead`).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_cap: Duration,
    /// How long finished jobs stay visible.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How long SIGTERM waits for in-flight deliveries before releasing them.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub max_batch: usize,
    /// The longest `Prefer: wait=N` honoured.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub id: String,
    /// Offering uuids this site may act on.
    pub offerings: Vec<String>,
    /// The most a token of this site may be granted; a token's scopes are intersected with these.
    #[serde(default = "Scope::all_vec")]
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub keys: Vec<RawKey>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum KeyAlgorithm {
    EdDSA,
    ES256,
    RS256,
    HS256,
}

impl KeyAlgorithm {
    pub fn is_symmetric(self) -> bool {
        self == KeyAlgorithm::HS256
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub kid: String,
    pub algorithm: KeyAlgorithm,
    /// PEM public key (EdDSA, ES256, RS256), inline or from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
    /// HS256 shared secret, inline or from a file.
    #[serde(default, skip_serializing)]
    pub secret: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// PEM private key, only needed for `puhuri-gateway token issue` with an asymmetric key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            gateway_id: "puhuri-gateway".into(),
            listen: "127.0.0.1:8080".parse().expect("a valid literal address"),
            data_dir: PathBuf::from("data"),
            public_url: None,
            log: LogConfig {
                format: LogFormat::Human,
                level: "info".into(),
            },
            upstream: RawUpstream {
                url: None,
                token: None,
                token_file: None,
                service_provider_uuid: None,
                timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(5),
            },
            redis: RawRedis {
                url: None,
                url_file: None,
                key_prefix: "puhuri-gateway".into(),
                pool_size: 32,
                pool_wait_timeout: Duration::from_secs(2),
            },
            auth: AuthConfig {
                max_token_lifetime: Duration::from_secs(30 * 24 * 3600),
                leeway: Duration::from_secs(30),
            },
            delivery: DeliveryConfig {
                workers: 16,
                max_in_flight: 16,
                max_per_second: 50,
                lease: Duration::from_secs(60),
                max_attempts: 25,
                max_age: Duration::from_secs(3 * 24 * 3600),
                backoff_base: Duration::from_secs(1),
                backoff_cap: Duration::from_secs(600),
                retention: Duration::from_secs(14 * 24 * 3600),
                shutdown_grace: Duration::from_secs(10),
            },
            limits: LimitsConfig {
                max_body_bytes: 1024 * 1024,
                max_batch: 1000,
                max_wait: Duration::from_secs(60),
            },
            sites: Vec::new(),
        }
    }
}

/// Values given on the command line; they win over the file and the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub redis_url: Option<String>,
    pub upstream_url: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The validated configuration the gateway runs with.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct Config {
    pub gateway_id: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    pub log: LogConfig,
    pub upstream: Upstream,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub delivery: DeliveryConfig,
    pub limits: LimitsConfig,
    pub sites: Vec<SiteConfig>,
}

#[derive(Debug)]
pub enum Upstream {
    /// No upstream configured: the built-in simulator stands in for Puhuri Core.
    Sandbox {
        timeout: Duration,
    },
    Puhuri(UpstreamConfig),
}

#[derive(Debug)]
pub struct UpstreamConfig {
    pub url: url::Url,
    pub token: SecretString,
    pub service_provider_uuid: Option<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

#[derive(Debug)]
pub enum StoreConfig {
    Embedded {
        dir: PathBuf,
    },
    Redis {
        url: SecretString,
        key_prefix: String,
        pool_size: usize,
        pool_wait_timeout: Duration,
    },
}

#[derive(Debug)]
pub struct SiteConfig {
    pub id: String,
    /// Offering uuids as 32 lowercase hex digits, Waldur's spelling.
    pub offerings: BTreeSet<String>,
    pub scopes: BTreeSet<Scope>,
    pub keys: Vec<KeyConfig>,
}

#[derive(Debug)]
pub struct KeyConfig {
    pub kid: String,
    pub algorithm: KeyAlgorithm,
    pub material: KeyMaterial,
    /// PEM private key for `token issue` (asymmetric keys only).
    pub signing_pem: Option<SecretString>,
    /// The configuration key naming this key, for messages (`sites[0].keys[1]`).
    pub config_key: String,
}

#[derive(Debug)]
pub enum KeyMaterial {
    PublicPem(String),
    Secret(SecretString),
}

impl Config {
    /// Loads from the file (if any), the environment and the overrides, and validates.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        Config::from_raw(RawConfig::extract(path, overrides)?)
    }

    pub fn is_sandbox(&self) -> bool {
        matches!(self.upstream, Upstream::Sandbox { .. })
    }

    pub fn upstream_timeout(&self) -> Duration {
        match &self.upstream {
            Upstream::Sandbox { timeout } => *timeout,
            Upstream::Puhuri(u) => u.timeout,
        }
    }

    pub fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        if raw.gateway_id.trim().is_empty() {
            return Err(key_error("gateway_id", "must not be empty"));
        }
        let upstream = resolve_upstream(raw.upstream)?;
        let store = resolve_store(raw.redis, &raw.data_dir)?;
        let sites = resolve_sites(raw.sites)?;
        check_durations(&raw.auth, &raw.delivery, &raw.limits, &upstream)?;
        if let Some(url) = &raw.public_url {
            url::Url::parse(url).map_err(|e| key_error("public_url", format!("not a URL: {e}")))?;
        }
        tracing_subscriber::EnvFilter::try_new(&raw.log.level)
            .map_err(|e| key_error("log.level", format!("not a valid filter: {e}")))?;
        Ok(Config {
            gateway_id: raw.gateway_id,
            listen: raw.listen,
            data_dir: raw.data_dir,
            public_url: raw.public_url.map(|u| u.trim_end_matches('/').to_string()),
            log: raw.log,
            upstream,
            store,
            auth: raw.auth,
            delivery: raw.delivery,
            limits: raw.limits,
            sites,
        })
    }

    pub fn site(&self, id: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.id == id)
    }
}

impl RawConfig {
    /// Layers defaults, the TOML file, the environment and the command-line overrides.
    pub fn extract(path: Option<&Path>, overrides: &Overrides) -> Result<RawConfig, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(path) = path {
            if !path.is_file() {
                return Err(ConfigError::Invalid(format!(
                    "the configuration file {} does not exist or is not a file",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .split("__")
                .ignore(&["config"])
                .map(|k| k.as_str().to_ascii_lowercase().into()),
        );
        if let Some(listen) = overrides.listen {
            figment = figment.merge(("listen", listen));
        }
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(("data_dir", dir));
        }
        if let Some(url) = &overrides.redis_url {
            figment = figment.merge(("redis.url", url));
        }
        if let Some(url) = &overrides.upstream_url {
            figment = figment.merge(("upstream.url", url));
        }
        figment.extract().map_err(describe_figment_error)
    }
}

/// Figment's messages are good but multi-line and sometimes echo values; keep one line per
/// problem, naming the key and where it came from, and never the value (it may be a secret).
fn describe_figment_error(error: figment::Error) -> ConfigError {
    let lines: Vec<String> = error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                None
            } else {
                Some(e.path.join("."))
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" (from {} {src})", m.name),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            let what = describe_kind(&e.kind);
            match key {
                Some(k) => format!("configuration key `{k}`: {what}{source}"),
                None => format!("configuration: {what}{source}"),
            }
        })
        .collect();
    ConfigError::Invalid(
        lines
            .join("; ")
            .trim_start_matches("configuration: ")
            .to_string(),
    )
}

fn describe_kind(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    match kind {
        Kind::UnknownField(field, expected) => {
            format!(
                "unknown key `{field}` (expected one of: {})",
                expected.join(", ")
            )
        }
        Kind::MissingField(field) => format!("missing key `{field}`"),
        Kind::InvalidType(actual, expected) => format!("expected {expected}, found {actual}"),
        Kind::InvalidValue(_, expected) => format!("invalid value, expected {expected}"),
        Kind::UnknownVariant(v, expected) => {
            format!(
                "unknown value `{v}` (expected one of: {})",
                expected.join(", ")
            )
        }
        Kind::Message(m) => m.clone(),
        other => other.to_string(),
    }
}

fn read_secret_file(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| key_error(key, format!("cannot read {}: {e}", path.display())))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(key_error(key, format!("{} is empty", path.display())));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

/// A secret given inline or as a file, never both.
fn inline_or_file(
    key: &str,
    inline: Option<SecretString>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(key_error(
            key,
            format!("give either `{key}` or `{key}_file`, not both"),
        )),
        (Some(s), None) if s.expose_secret().trim().is_empty() => {
            Err(key_error(key, "must not be empty"))
        }
        (Some(s), None) => Ok(Some(s)),
        (None, Some(path)) => read_secret_file(&format!("{key}_file"), path).map(Some),
        (None, None) => Ok(None),
    }
}

fn resolve_upstream(raw: RawUpstream) -> Result<Upstream, ConfigError> {
    let token = inline_or_file("upstream.token", raw.token, raw.token_file.as_deref())?;
    let Some(url) = raw.url.filter(|u| !u.trim().is_empty()) else {
        return Ok(Upstream::Sandbox {
            timeout: raw.timeout,
        });
    };
    let mut url = url::Url::parse(url.trim())
        .map_err(|e| key_error("upstream.url", format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(key_error("upstream.url", "must be an http or https URL"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    let token = token.ok_or_else(|| {
        key_error(
            "upstream.token_file",
            "the service provider's token is required when upstream.url is set \
             (give upstream.token_file, or upstream.token)",
        )
    })?;
    let service_provider_uuid = raw
        .service_provider_uuid
        .map(|u| parse_uuid("upstream.service_provider_uuid", &u))
        .transpose()?;
    Ok(Upstream::Puhuri(UpstreamConfig {
        url,
        token,
        service_provider_uuid,
        timeout: raw.timeout,
        connect_timeout: raw.connect_timeout,
    }))
}

fn resolve_store(raw: RawRedis, data_dir: &Path) -> Result<StoreConfig, ConfigError> {
    let url = inline_or_file("redis.url", raw.url, raw.url_file.as_deref())?;
    let Some(url) = url else {
        return Ok(StoreConfig::Embedded {
            dir: data_dir.to_path_buf(),
        });
    };
    let parsed = url::Url::parse(url.expose_secret())
        .map_err(|_| key_error("redis.url", "not a URL (expected redis://host:port/db)"))?;
    if !matches!(parsed.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
        return Err(key_error(
            "redis.url",
            "must start with redis://, rediss:// or unix://",
        ));
    }
    if raw.pool_size == 0 {
        return Err(key_error("redis.pool_size", "must be at least 1"));
    }
    Ok(StoreConfig::Redis {
        url,
        key_prefix: raw.key_prefix,
        pool_size: raw.pool_size,
        pool_wait_timeout: raw.pool_wait_timeout,
    })
}

/// Accepts Waldur's 32-hex spelling and the dashed one; returns Waldur's.
pub fn parse_uuid(key: &str, value: &str) -> Result<String, ConfigError> {
    Uuid::parse_str(value.trim())
        .map(|u| u.simple().to_string())
        .map_err(|_| key_error(key, format!("`{value}` is not a uuid")))
}

fn resolve_sites(raw: Vec<RawSite>) -> Result<Vec<SiteConfig>, ConfigError> {
    let mut ids = HashSet::new();
    let mut kids = HashSet::new();
    let mut sites = Vec::with_capacity(raw.len());
    for (i, site) in raw.into_iter().enumerate() {
        let at = format!("sites[{i}]");
        if !valid_site_id(&site.id) {
            return Err(key_error(
                format!("{at}.id"),
                "must be 1-64 characters of letters, digits, '-', '_' or '.'",
            ));
        }
        if !ids.insert(site.id.clone()) {
            return Err(key_error(
                format!("{at}.id"),
                format!("`{}` is used twice", site.id),
            ));
        }
        let offerings = site
            .offerings
            .iter()
            .enumerate()
            .map(|(j, o)| parse_uuid(&format!("{at}.offerings[{j}]"), o))
            .collect::<Result<BTreeSet<_>, _>>()?;
        if site.keys.is_empty() {
            return Err(key_error(
                format!("{at}.keys"),
                "a site needs at least one key to verify its tokens",
            ));
        }
        let mut keys = Vec::with_capacity(site.keys.len());
        for (j, key) in site.keys.into_iter().enumerate() {
            let key_at = format!("{at}.keys[{j}]");
            if key.kid.trim().is_empty() {
                return Err(key_error(format!("{key_at}.kid"), "must not be empty"));
            }
            if !kids.insert(key.kid.clone()) {
                return Err(key_error(
                    format!("{key_at}.kid"),
                    format!("`{}` is used twice; kids must be unique", key.kid),
                ));
            }
            keys.push(resolve_key(&key_at, key)?);
        }
        sites.push(SiteConfig {
            id: site.id,
            offerings,
            scopes: site.scopes.into_iter().collect(),
            keys,
        });
    }
    Ok(sites)
}

pub fn valid_site_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn resolve_key(at: &str, key: RawKey) -> Result<KeyConfig, ConfigError> {
    let material = if key.algorithm.is_symmetric() {
        if key.public_key.is_some() || key.public_key_file.is_some() {
            return Err(key_error(
                format!("{at}.public_key"),
                "an HS256 key takes `secret` or `secret_file`, not a public key",
            ));
        }
        let secret = inline_or_file(
            &format!("{at}.secret"),
            key.secret,
            key.secret_file.as_deref(),
        )?
        .ok_or_else(|| {
            key_error(
                format!("{at}.secret_file"),
                "an HS256 key needs `secret_file` (or `secret`)",
            )
        })?;
        if secret.expose_secret().len() < 32 {
            return Err(key_error(
                format!("{at}.secret"),
                "an HS256 secret must be at least 32 bytes; make one with `openssl rand -hex 32`",
            ));
        }
        KeyMaterial::Secret(secret)
    } else {
        if key.secret.is_some() || key.secret_file.is_some() {
            return Err(key_error(
                format!("{at}.secret"),
                "only HS256 keys take a secret; this key needs `public_key_file`",
            ));
        }
        let pem = match (key.public_key, key.public_key_file.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(key_error(
                    format!("{at}.public_key"),
                    "give either `public_key` or `public_key_file`, not both",
                ));
            }
            (Some(pem), None) => pem,
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                key_error(
                    format!("{at}.public_key_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?,
            (None, None) => {
                return Err(key_error(
                    format!("{at}.public_key_file"),
                    "this key needs `public_key_file` (or `public_key`) in PEM",
                ));
            }
        };
        let where_ = if key.public_key_file.is_some() {
            format!("{at}.public_key_file")
        } else {
            format!("{at}.public_key")
        };
        crate::auth::keys::check_public_pem(key.algorithm, &pem)
            .map_err(|m| key_error(where_, m))?;
        KeyMaterial::PublicPem(pem)
    };
    let signing_pem = match key.private_key_file.as_deref() {
        None => None,
        Some(_) if key.algorithm.is_symmetric() => {
            return Err(key_error(
                format!("{at}.private_key_file"),
                "HS256 keys sign with their secret; remove private_key_file",
            ));
        }
        Some(path) => {
            let pem = read_secret_file(&format!("{at}.private_key_file"), path)?;
            crate::auth::keys::check_private_pem(key.algorithm, pem.expose_secret())
                .map_err(|m| key_error(format!("{at}.private_key_file"), m))?;
            Some(pem)
        }
    };
    Ok(KeyConfig {
        kid: key.kid,
        algorithm: key.algorithm,
        material,
        signing_pem,
        config_key: at.to_string(),
    })
}

fn check_durations(
    auth: &AuthConfig,
    delivery: &DeliveryConfig,
    limits: &LimitsConfig,
    upstream: &Upstream,
) -> Result<(), ConfigError> {
    let timeout = match upstream {
        Upstream::Sandbox { timeout } => *timeout,
        Upstream::Puhuri(u) => u.timeout,
    };
    if timeout.is_zero() {
        return Err(key_error("upstream.timeout", "must be more than zero"));
    }
    // A lease shorter than a call could let a second worker deliver the same job while the
    // first is still waiting for Puhuri's answer.
    if delivery.lease <= timeout + Duration::from_secs(1) {
        return Err(key_error(
            "delivery.lease",
            format!(
                "must be longer than upstream.timeout ({}) by at least a second",
                humantime::format_duration(timeout)
            ),
        ));
    }
    if auth.max_token_lifetime.is_zero() {
        return Err(key_error(
            "auth.max_token_lifetime",
            "must be more than zero",
        ));
    }
    if delivery.workers == 0 {
        return Err(key_error("delivery.workers", "must be at least 1"));
    }
    if delivery.max_in_flight == 0 {
        return Err(key_error("delivery.max_in_flight", "must be at least 1"));
    }
    if delivery.max_per_second == 0 {
        return Err(key_error("delivery.max_per_second", "must be at least 1"));
    }
    if delivery.max_attempts == 0 {
        return Err(key_error("delivery.max_attempts", "must be at least 1"));
    }
    if delivery.backoff_base.is_zero() || delivery.backoff_cap < delivery.backoff_base {
        return Err(key_error(
            "delivery.backoff_cap",
            "backoff_base must be more than zero and backoff_cap at least backoff_base",
        ));
    }
    if limits.max_body_bytes < 1024 {
        return Err(key_error("limits.max_body_bytes", "must be at least 1024"));
    }
    if limits.max_batch == 0 {
        return Err(key_error("limits.max_batch", "must be at least 1"));
    }
    Ok(())
}
