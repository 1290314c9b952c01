//! Turning raw values into checked ones: secrets read from their files, the upstream (or the
//! sandbox when none is set), the job store, and the rules between durations.

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::raw::{AuthConfig, DeliveryConfig, LimitsConfig, RawRedis, RawUpstream};
use super::{ConfigError, StoreConfig, Upstream, UpstreamConfig, key_error};

pub(super) fn read_secret_file(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| key_error(key, format!("cannot read {}: {e}", path.display())))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(key_error(key, format!("{} is empty", path.display())));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

/// A secret given inline or as a file, never both.
pub(super) fn inline_or_file(
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

/// The further Puhuri identities of `upstream.identities`, each with its token. Names follow the
/// site-id rule; `sp` is the service provider's identity (`upstream.token`) and cannot be reused.
pub(super) fn resolve_identities(
    raw: std::collections::BTreeMap<String, super::raw::RawIdentity>,
) -> Result<std::collections::BTreeMap<String, SecretString>, ConfigError> {
    let mut out = std::collections::BTreeMap::new();
    for (name, identity) in raw {
        let at = format!("upstream.identities.{name}");
        if !super::valid_site_id(&name) {
            return Err(key_error(
                at,
                "an identity's name must be 1-64 characters of letters, digits, '-', '_' or '.'",
            ));
        }
        if name == super::SP_IDENTITY {
            return Err(key_error(
                at,
                "`sp` is the service provider's identity: give its token as upstream.token_file",
            ));
        }
        let token = inline_or_file(
            &format!("{at}.token"),
            identity.token,
            identity.token_file.as_deref(),
        )?
        .ok_or_else(|| {
            key_error(
                format!("{at}.token_file"),
                "the identity's token is required",
            )
        })?;
        out.insert(name, token);
    }
    Ok(out)
}

pub(super) fn resolve_upstream(raw: RawUpstream) -> Result<Upstream, ConfigError> {
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

pub(super) fn resolve_store(raw: RawRedis, data_dir: &Path) -> Result<StoreConfig, ConfigError> {
    let url = inline_or_file("redis.url", raw.url, raw.url_file.as_deref())?;
    let Some(url) = url else {
        return Ok(StoreConfig::Embedded {
            dir: data_dir.to_path_buf(),
        });
    };
    match super::SentinelUrl::parse(url.expose_secret()) {
        Some(Err(m)) => return Err(key_error("redis.url", m)),
        Some(Ok(_)) if raw.cluster => {
            return Err(key_error(
                "redis.cluster",
                "cannot be combined with a sentinel URL (redis+sentinel://, rediss+sentinel://)",
            ));
        }
        Some(Ok(_)) => {}
        None => {
            let parsed = url::Url::parse(url.expose_secret())
                .map_err(|_| key_error("redis.url", "not a URL (expected redis://host:port/db)"))?;
            if !matches!(parsed.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
                return Err(key_error(
                    "redis.url",
                    "must start with redis://, rediss://, redis+sentinel://, rediss+sentinel:// or unix://",
                ));
            }
        }
    }
    if raw.pool_size == 0 {
        return Err(key_error("redis.pool_size", "must be at least 1"));
    }
    if raw.cluster && hash_tag(&raw.key_prefix).is_none() {
        return Err(key_error(
            "redis.key_prefix",
            "must hold a hash tag with redis.cluster, e.g. \"{puhuri-gateway}:\": every key of a \
             deployment must be in one hash slot for its scripts to run on Redis Cluster",
        ));
    }
    Ok(StoreConfig::Redis {
        url,
        key_prefix: raw.key_prefix,
        pool_size: raw.pool_size,
        pool_wait_timeout: raw.pool_wait_timeout,
        cluster: raw.cluster,
        wait_replicas: raw.wait_replicas,
    })
}

/// The hash tag of a key starting with `prefix`, by Redis Cluster's rule (the keys' hash slot
/// is that of the text between the first `{` and the next `}`, when it is not empty): `None`
/// when keys with this prefix would not share one slot.
pub fn hash_tag(prefix: &str) -> Option<&str> {
    let open = prefix.find('{')?;
    let close = open + 1 + prefix[open + 1..].find('}')?;
    let tag = &prefix[open + 1..close];
    (!tag.is_empty()).then_some(tag)
}

/// Accepts Waldur's 32-hex spelling and the dashed one; returns Waldur's.
pub fn parse_uuid(key: &str, value: &str) -> Result<String, ConfigError> {
    Uuid::parse_str(value.trim())
        .map(|u| u.simple().to_string())
        .map_err(|_| key_error(key, format!("`{value}` is not a uuid")))
}

pub(super) fn check_durations(
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
    if delivery.rate_jitter_allowance > Duration::from_millis(500) {
        return Err(key_error(
            "delivery.rate_jitter_allowance",
            "must be at most 500ms",
        ));
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
    if let Err(m) = crate::domain::UsernameRule::new(limits.username_pattern.as_deref()) {
        return Err(key_error("limits.username_pattern", m));
    }
    Ok(())
}
