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
//!
//! The files follow those steps: `raw` (the layers as serde reads them, and figment's errors made
//! readable), `resolve` (secrets from files, the upstream, the store, the duration rules),
//! `sites` and `keys` (each site, its offerings and scopes, and its verification keys, whose PEM
//! is parsed here, once, so a bad key stops the start). The validated [`Config`] is here.

pub mod callbacks;
pub mod keys;
mod raw;
mod resolve;
mod sentinel;
mod sites;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

pub use callbacks::{CallbackConfig, EventsConfig, RawCallback, SigningSecret, WatcherConfig};
pub use keys::{KeyAlgorithm, KeyConfig, KeyMaterial, RawKey};
pub use raw::{
    AuthConfig, DeliveryConfig, LimitsConfig, LogConfig, LogFormat, Overrides, RawConfig, RawRedis,
    RawUpstream, ReadsConfig, TlsConfig,
};
pub use resolve::{hash_tag, parse_uuid};
pub use sentinel::SentinelUrl;
pub use sites::{RawSite, SP_IDENTITY, SiteConfig, valid_site_id};

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

#[derive(Debug)]
pub struct Config {
    pub gateway_id: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    /// HTTPS on `listen`, when set.
    pub tls: Option<TlsConfig>,
    pub log: LogConfig,
    pub upstream: Upstream,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub delivery: DeliveryConfig,
    pub limits: LimitsConfig,
    pub events: EventsConfig,
    pub watcher: WatcherConfig,
    pub reads: ReadsConfig,
    pub sites: Vec<SiteConfig>,
    /// Further Puhuri identities by name (`upstream.identities`), each with its token. The
    /// service provider's identity, [`SP_IDENTITY`], is `upstream`'s own token and is not here.
    pub identities: std::collections::BTreeMap<String, secrecy::SecretString>,
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
        /// `url` is a node of a Redis Cluster; `key_prefix` holds a hash tag.
        cluster: bool,
        /// Replicas that must confirm each write (`WAIT`).
        wait_replicas: u32,
    },
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

    pub fn from_raw(mut raw: RawConfig) -> Result<Config, ConfigError> {
        if raw.gateway_id.trim().is_empty() {
            return Err(key_error("gateway_id", "must not be empty"));
        }
        let identities = resolve::resolve_identities(std::mem::take(&mut raw.upstream.identities))?;
        let upstream = resolve::resolve_upstream(raw.upstream)?;
        let store = resolve::resolve_store(raw.redis, &raw.data_dir)?;
        let sites = sites::resolve_sites(raw.sites, &identities, &raw.events)?;
        check_events(&raw.events, &raw.watcher)?;
        resolve::check_durations(&raw.auth, &raw.delivery, &raw.limits, &upstream)?;
        if let Some(url) = &raw.public_url {
            url::Url::parse(url).map_err(|e| key_error("public_url", format!("not a URL: {e}")))?;
        }
        if let Some(tls) = &raw.tls {
            crate::tls::Certificates::load(&tls.cert_file, &tls.key_file)
                .map_err(|m| key_error("tls", m))?;
            if tls.reload_interval < std::time::Duration::from_millis(100) {
                return Err(key_error("tls.reload_interval", "must be at least 100ms"));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&raw.log.level)
            .map_err(|e| key_error("log.level", format!("not a valid filter: {e}")))?;
        Ok(Config {
            gateway_id: raw.gateway_id,
            listen: raw.listen,
            data_dir: raw.data_dir,
            public_url: raw.public_url.map(|u| u.trim_end_matches('/').to_string()),
            tls: raw.tls,
            log: raw.log,
            upstream,
            store,
            auth: raw.auth,
            delivery: raw.delivery,
            limits: raw.limits,
            events: raw.events,
            watcher: raw.watcher,
            reads: raw.reads,
            sites,
            identities,
        })
    }

    /// Every site's endpoints, with the site's id.
    pub fn callbacks(&self) -> impl Iterator<Item = (&str, &CallbackConfig)> {
        self.sites
            .iter()
            .flat_map(|s| s.callbacks.iter().map(move |c| (s.id.as_str(), &**c)))
    }

    pub fn site(&self, id: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.id == id)
    }
}

/// The `[events]` values serde cannot check.
fn check_events(events: &EventsConfig, watcher: &WatcherConfig) -> Result<(), ConfigError> {
    if events.workers == 0 {
        return Err(key_error("events.workers", "must be at least 1"));
    }
    if events.max_attempts == 0 {
        return Err(key_error("events.max_attempts", "must be at least 1"));
    }
    if events.timeout < Duration::from_millis(100) {
        return Err(key_error("events.timeout", "must be at least 100ms"));
    }
    if watcher.interval < Duration::from_millis(100) || watcher.min_interval > watcher.interval {
        return Err(key_error(
            "watcher.interval",
            "must be at least 100ms and at least watcher.min_interval",
        ));
    }
    if watcher.lease < Duration::from_secs(1) {
        return Err(key_error("watcher.lease", "must be at least 1s"));
    }
    if events.backoff_base.is_zero() || events.backoff_cap < events.backoff_base {
        return Err(key_error(
            "events.backoff_cap",
            "must be at least events.backoff_base, which must not be zero",
        ));
    }
    Ok(())
}
