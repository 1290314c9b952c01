//! Opening the configured job store: one place that turns [`StoreConfig`] into a running backend,
//! used by `serve` and by the operator commands (`puhuri-gateway jobs ...`).

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::embedded::EmbeddedStore;
use super::redis::{RedisOptions, RedisStore};
use super::{JobStore, StoreError, StoreResult};
use crate::config::StoreConfig;

/// Open the store `store` describes.
///
/// - Embedded: the directory is created if missing; the store file in it is locked for as long as
///   the returned store lives, so a second process is refused (see
///   [`embedded::is_in_use`](super::embedded::is_in_use)).
/// - Redis: the configured `key_prefix` gets a `:` separator appended unless it already ends with
///   `:` or `}` (a Redis Cluster hash tag); `pool_size_override` replaces the configured pool size
///   (a one-shot command needs one or two connections, not the server's pool). Connections are
///   made on first use, so this succeeds while Redis is down.
///
/// Error messages never contain the Redis URL, which may carry a password.
pub async fn open_store(
    store: &StoreConfig,
    pool_size_override: Option<usize>,
) -> StoreResult<Arc<dyn JobStore>> {
    match store {
        StoreConfig::Embedded { dir } => {
            let d = dir.clone();
            tokio::task::spawn_blocking(move || std::fs::create_dir_all(&d))
                .await
                .map_err(|e| StoreError::Unavailable(format!("embedded store: {e}")))?
                .map_err(|e| {
                    StoreError::Unavailable(format!(
                        "cannot create the data directory {} for the embedded job store: {e}",
                        dir.display()
                    ))
                })?;
            let file = dir.join(super::embedded::FILE_NAME);
            tokio::task::spawn_blocking(move || owner_only(&file))
                .await
                .map_err(|e| StoreError::Unavailable(format!("embedded store: {e}")))??;
            Ok(Arc::new(EmbeddedStore::open(dir).await?))
        }
        StoreConfig::Redis {
            url,
            key_prefix,
            pool_size,
            pool_wait_timeout,
            cluster,
            wait_replicas,
        } => {
            let options = RedisOptions {
                pool_size: pool_size_override.unwrap_or(*pool_size).max(1),
                wait_timeout: *pool_wait_timeout,
                cluster: *cluster,
                wait_replicas: *wait_replicas,
                ..RedisOptions::default()
            };
            let prefix = redis_prefix(key_prefix);
            let url = url.expose_secret();
            match RedisStore::connect(url, &prefix, options).await {
                Ok(s) => Ok(Arc::new(s)),
                Err(e) => Err(redact(e, url)),
            }
        }
    }
}

/// The store of a separate delivery lane named `lane` (e.g. `events/alpha/hooks`) on the same
/// backend as `store`: its own queue, leases, rate limit and records, so its work never waits
/// behind the main lane's or counts against its limits, with the same machinery.
///
/// - Embedded: the directory `<dir>/lanes/<lane>` (a file of its own; `lane`'s `/` are
///   directories).
/// - Redis: the key prefix `<prefix>lane:<lane>:` (inside a cluster hash tag when the prefix is
///   one), a pool of at most `pool_size` connections.
pub fn lane_store_config(store: &StoreConfig, lane: &str, pool_size: usize) -> StoreConfig {
    match store {
        StoreConfig::Embedded { dir } => StoreConfig::Embedded {
            dir: lane
                .split('/')
                .fold(dir.join("lanes"), |path, part| path.join(part)),
        },
        StoreConfig::Redis {
            url,
            key_prefix,
            pool_size: main_pool,
            pool_wait_timeout,
            cluster,
            wait_replicas,
        } => StoreConfig::Redis {
            url: url.clone(),
            key_prefix: format!(
                "{}lane:{}:",
                redis_prefix(key_prefix),
                lane.replace('/', ":")
            ),
            pool_size: pool_size.min(*main_pool).max(1),
            pool_wait_timeout: *pool_wait_timeout,
            cluster: *cluster,
            wait_replicas: *wait_replicas,
        },
    }
}

/// The embedded store's file holds every job's payload: take group and other access away from a
/// file an earlier version created with the umask's mode (the store creates a missing file
/// readable and writable by its owner only, 0600).
fn owner_only(path: &std::path::Path) -> StoreResult<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let fail = |what: &str, e: std::io::Error| {
            StoreError::Unavailable(format!("cannot {what} {}: {e}", path.display()))
        };
        let mode = match std::fs::metadata(path) {
            Ok(m) => m.permissions().mode(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(fail("read", e)),
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| fail("restrict the mode of", e))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The key prefix as stored: the configured one with a `:` separator (kept as is when it already
/// ends with `:` or with a `}` hash tag).
pub fn redis_prefix(configured: &str) -> String {
    if configured.is_empty() || configured.ends_with(':') || configured.ends_with('}') {
        configured.to_owned()
    } else {
        format!("{configured}:")
    }
}

/// Remove the URL and its password from an error message, should a library have quoted them.
fn redact(e: StoreError, url: &str) -> StoreError {
    let secrets: Vec<String> = match super::redis::SentinelUrl::parse(url) {
        Some(parsed) => parsed
            .map(|p| p.secrets().map(str::to_owned).collect())
            .unwrap_or_default(),
        None => url::Url::parse(url)
            .ok()
            .and_then(|u| u.password().map(str::to_owned))
            .filter(|p| !p.is_empty())
            .into_iter()
            .collect(),
    };
    let clean = |msg: String| {
        let mut msg = msg.replace(url, "<redis.url>");
        for secret in &secrets {
            msg = msg.replace(secret.as_str(), "<redacted>");
        }
        msg
    };
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(clean(m)),
        StoreError::Corrupt(m) => StoreError::Corrupt(clean(m)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_gets_a_separator() {
        assert_eq!(redis_prefix("puhuri-gateway"), "puhuri-gateway:");
        assert_eq!(redis_prefix("gw:"), "gw:");
        assert_eq!(redis_prefix("{gw}"), "{gw}");
        assert_eq!(redis_prefix(""), "");
    }

    #[test]
    fn redaction_removes_url_and_password() {
        let url = "redis://user:s3cret-pw@host:6379/0";
        let e = redact(
            StoreError::Unavailable(format!("redis: cannot reach {url} (auth s3cret-pw)")),
            url,
        );
        let msg = e.to_string();
        assert!(!msg.contains("s3cret-pw"), "{msg}");
        assert!(msg.contains("<redis.url>"), "{msg}");
    }
}
