//! The raw layers, as serde reads them: built-in defaults, the TOML file, the environment and
//! the command line, merged by figment. Nothing here is checked beyond its type; messages name
//! the key and the layer it came from, never the value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::sites::RawSite;
use super::{ConfigError, ENV_PREFIX};

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
    /// HTTPS on `listen` (absent: plain HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    pub log: LogConfig,
    pub upstream: RawUpstream,
    pub redis: RawRedis,
    pub auth: AuthConfig,
    pub delivery: DeliveryConfig,
    pub limits: LimitsConfig,
    /// Delivery of events to the sites' endpoints.
    #[serde(default)]
    pub events: super::callbacks::EventsConfig,
    /// The leader's polls of Puhuri for the sites' events.
    #[serde(default)]
    pub watcher: super::callbacks::WatcherConfig,
    /// How the lists the gateway assembles from whole Puhuri lists are kept ready.
    #[serde(default)]
    pub reads: ReadsConfig,
    #[serde(default)]
    pub sites: Vec<RawSite>,
}

/// `[tls]`: the gateway serves HTTPS on `listen` itself (rustls; TLS 1.2 and 1.3, HTTP/1.1).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: the server certificate first, then its intermediates.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key_file: PathBuf,
    /// How often the two files are checked for a change (default 10 s); `SIGHUP` reloads at once.
    #[serde(default = "default_tls_reload", with = "humantime_serde")]
    pub reload_interval: Duration,
}

fn default_tls_reload() -> Duration {
    Duration::from_secs(10)
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
    /// Further Puhuri identities (an allocator's token, ...), by name; `token` / `token_file`
    /// above stay the service provider's identity, named `sp`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub identities: std::collections::BTreeMap<String, RawIdentity>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

/// One named Puhuri identity: its API token, inline or (better) from a file.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    #[serde(default, skip_serializing)]
    pub token: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
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
    /// `url` is one node of a Redis Cluster (the others are found from it). `key_prefix` must
    /// then hold a hash tag (`{...}`), so every key of the deployment is in one hash slot.
    #[serde(default)]
    pub cluster: bool,
    /// After each write, wait until this many replicas confirm it (Redis `WAIT`, at most 2 s);
    /// fewer is answered 503 `store_outcome_unknown`, not acknowledged. Set it with Sentinel (or
    /// any replicated Redis) so an acknowledged job survives a failover.
    #[serde(default)]
    pub wait_replicas: u32,
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
    /// How much longer than a second `max_per_second` starts are spread over, so that jitter
    /// between a call's start and its arrival at Puhuri (a loaded host, a slow network) does not
    /// put more than `max_per_second` calls in one of Puhuri's seconds. Costs this share of the
    /// throughput at the limit. At most 500 ms.
    #[serde(with = "humantime_serde")]
    pub rate_jitter_allowance: Duration,
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
    /// The whole shutdown after SIGTERM: no delivery starts after the signal; HTTP requests and
    /// in-flight deliveries drain within this, counted from the signal.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long a usage value known to be in Puhuri is trusted to be unchanged there without
    /// reading it again (another writer may change it); `0s` reads before every skip.
    #[serde(with = "humantime_serde")]
    pub usage_known_for: Duration,
}

/// `[reads]`: the people lists Waldur 8.0.5 cannot narrow to a site bound to some of its
/// provider's offerings (`/v1/ssh-keys` and `/v1/project-permissions` without a filter) are
/// assembled from whole Puhuri lists, each fresh for a minute (the `upstream::scans` module).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReadsConfig {
    /// A list older than a minute but younger than this is answered at once from its copy
    /// while one new scan runs in the background (RFC 5861's stale-while-revalidate); an older
    /// one makes its reader wait for a new scan. Default 10 min; `1m` turns serving stale
    /// copies off.
    #[serde(with = "humantime_serde")]
    pub serve_stale_for: Duration,
    /// Read those lists of every service provider's site once when the gateway starts
    /// (default on), so the first reads after a start do not wait for a scan.
    pub warm_at_start: bool,
}

impl Default for ReadsConfig {
    fn default() -> Self {
        ReadsConfig {
            serve_stale_for: Duration::from_secs(10 * 60),
            warm_at_start: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub max_batch: usize,
    /// The longest `Prefer: wait=N` honoured.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// A regular expression every username a site sets must match (whole); unset: the POSIX
    /// portable rule of [`crate::domain::username`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_pattern: Option<String>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            gateway_id: "puhuri-gateway".into(),
            listen: "127.0.0.1:8080".parse().expect("a valid literal address"),
            data_dir: PathBuf::from("data"),
            tls: None,
            public_url: None,
            log: LogConfig {
                format: LogFormat::Human,
                level: "info".into(),
            },
            upstream: RawUpstream {
                url: None,
                token: None,
                token_file: None,
                identities: Default::default(),
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
                cluster: false,
                wait_replicas: 0,
            },
            auth: AuthConfig {
                max_token_lifetime: Duration::from_secs(30 * 24 * 3600),
                leeway: Duration::from_secs(30),
            },
            delivery: DeliveryConfig {
                workers: 16,
                max_in_flight: 16,
                max_per_second: 50,
                rate_jitter_allowance: Duration::from_millis(25),
                lease: Duration::from_secs(60),
                max_attempts: 25,
                max_age: Duration::from_secs(3 * 24 * 3600),
                backoff_base: Duration::from_secs(1),
                backoff_cap: Duration::from_secs(600),
                retention: Duration::from_secs(14 * 24 * 3600),
                shutdown_grace: Duration::from_secs(10),
                usage_known_for: Duration::from_secs(600),
            },
            limits: LimitsConfig {
                max_body_bytes: 1024 * 1024,
                max_batch: 1000,
                max_wait: Duration::from_secs(60),
                username_pattern: None,
            },
            events: super::callbacks::EventsConfig::default(),
            watcher: super::callbacks::WatcherConfig::default(),
            reads: ReadsConfig::default(),
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
