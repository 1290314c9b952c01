//! Callback endpoints: where a site wants its events, signed with which secrets, and which types.
//!
//! An endpoint's URL comes from the configuration only, and must be on the operator's allow-list
//! (`events.allowed_origins`: scheme, host and port); the gateway never fetches a URL a request
//! names. Signing secrets are Standard Webhooks secrets (`whsec_` followed by the base64 of 24 to
//! 64 random bytes; Standard Webhooks specification, "Signature scheme"), each read from its own
//! file. During a rotation an endpoint lists several and every delivery is signed with each.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};

use super::resolve::read_secret_file;
use super::{ConfigError, key_error};
use crate::domain::event::EventType;

/// `[[sites.callbacks]]` as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCallback {
    /// Unique within the site: 1-32 of `a-z 0-9 - _`. Names the endpoint in `GET /v1/events`.
    pub name: String,
    /// `http://` or `https://`; its origin must be in `events.allowed_origins`.
    pub url: String,
    /// Files each holding one `whsec_...` secret; every delivery is signed with each.
    pub secret_files: Vec<PathBuf>,
    /// Event types wanted (wire names, e.g. `job.failed`); empty or absent: all of them.
    #[serde(default)]
    pub events: Vec<String>,
    /// Deliveries in flight to this endpoint at once (default `events.max_in_flight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Deliveries started per second to this endpoint (default `events.max_per_second`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_second: Option<u32>,
}

/// `[events]`: delivery of events to site endpoints, apart from deliveries to Puhuri.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Origins (`scheme://host[:port]`) an endpoint URL may have. Empty: no endpoint is allowed.
    pub allowed_origins: Vec<String>,
    /// Delivery loops per endpoint in this process.
    pub workers: usize,
    /// Default per-endpoint deliveries in flight, shared by all replicas.
    pub max_in_flight: u32,
    /// Default per-endpoint deliveries started per second, shared by all replicas.
    pub max_per_second: u32,
    /// How long a receiver has to answer a delivery.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub max_attempts: u32,
    /// An event still not delivered this long after it was emitted ends `dead`.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_cap: Duration,
    /// How long delivered (and dead) events stay listed.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            allowed_origins: Vec::new(),
            workers: 2,
            max_in_flight: 4,
            max_per_second: 20,
            timeout: Duration::from_secs(10),
            max_attempts: 15,
            max_age: Duration::from_secs(24 * 3600),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(600),
            retention: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

/// `[watcher]`: the leader's polls of Puhuri for order, team and offering-user events.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WatcherConfig {
    /// Off: no replica polls (events of jobs are still sent).
    pub enabled: bool,
    /// How often the leader polls.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// The least time between two polls (a poll after the gateway's own writes waits for it).
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// How long the leader's lease lasts unless renewed (each poll renews it): how soon another
    /// replica takes over from a leader that died.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig {
            enabled: true,
            interval: Duration::from_secs(60),
            min_interval: Duration::from_secs(2),
            lease: Duration::from_secs(30),
        }
    }
}

/// A Standard Webhooks signing key: the bytes after `whsec_`, base64-decoded. Never printed.
pub struct SigningSecret(SecretBox<Vec<u8>>);

impl SigningSecret {
    /// Reads `whsec_<base64>` (standard alphabet, padding optional). 24 to 64 bytes, as the
    /// Standard Webhooks specification recommends; shorter keys are refused.
    pub fn parse(text: &str) -> Result<SigningSecret, &'static str> {
        let body = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or("the secret must start with `whsec_` (the Standard Webhooks form)")?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(body.trim_end_matches('='))
            .map_err(|_| "the part after `whsec_` is not base64")?;
        if !(24..=64).contains(&bytes.len()) {
            return Err("the key must be 24 to 64 bytes (32 of `openssl rand -base64 32`)");
        }
        Ok(SigningSecret(SecretBox::new(Box::new(bytes))))
    }

    /// The key bytes, for the HMAC only.
    pub fn key(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// One validated endpoint of a site.
#[derive(Debug)]
pub struct CallbackConfig {
    pub name: String,
    pub url: url::Url,
    /// At least one; every delivery carries a signature with each.
    pub secrets: Vec<SigningSecret>,
    /// The types this endpoint gets.
    pub events: BTreeSet<EventType>,
    pub max_in_flight: u32,
    pub max_per_second: u32,
}

impl CallbackConfig {
    pub fn wants(&self, event_type: EventType) -> bool {
        self.events.contains(&event_type)
    }
}

/// `scheme://host:port` with the port always written (the scheme's default when absent).
fn origin(url: &url::Url) -> Option<String> {
    Some(format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?
    ))
}

/// The allow-list, normalised; a malformed entry stops the start.
pub(super) fn allowed_origins(events: &EventsConfig) -> Result<HashSet<String>, ConfigError> {
    events
        .allowed_origins
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let key = format!("events.allowed_origins[{i}]");
            let url = url::Url::parse(o).map_err(|e| key_error(&key, format!("not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https")
                || url.path() != "/"
                || url.query().is_some()
                || !url.username().is_empty()
            {
                return Err(key_error(
                    &key,
                    "must be an origin: http(s)://host[:port], nothing after it",
                ));
            }
            origin(&url).ok_or_else(|| key_error(&key, "has no host"))
        })
        .collect()
}

pub(super) fn resolve_callbacks(
    at: &str,
    raw: Vec<RawCallback>,
    allowed: &HashSet<String>,
    events: &EventsConfig,
) -> Result<Vec<CallbackConfig>, ConfigError> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, cb) in raw.into_iter().enumerate() {
        let at = format!("{at}.callbacks[{i}]");
        if !endpoint_name_ok(&cb.name) {
            return Err(key_error(
                format!("{at}.name"),
                "must be 1-32 of a-z, 0-9, '-' or '_'",
            ));
        }
        if !names.insert(cb.name.clone()) {
            return Err(key_error(
                format!("{at}.name"),
                format!("`{}` is used twice in this site", cb.name),
            ));
        }
        let url = check_url(&format!("{at}.url"), &cb.url, allowed)?;
        if cb.secret_files.is_empty() {
            return Err(key_error(
                format!("{at}.secret_files"),
                "an endpoint needs at least one signing secret",
            ));
        }
        let mut secrets = Vec::with_capacity(cb.secret_files.len());
        for (j, path) in cb.secret_files.iter().enumerate() {
            let key = format!("{at}.secret_files[{j}]");
            let text = read_secret_file(&key, path)?;
            secrets.push(
                SigningSecret::parse(text.expose_secret())
                    .map_err(|m| key_error(&key, format!("{}: {m}", path.display())))?,
            );
        }
        let types = if cb.events.is_empty() {
            EventType::ALL.iter().copied().collect()
        } else {
            cb.events
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    EventType::parse(t).ok_or_else(|| {
                        let all: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                        key_error(
                            format!("{at}.events[{j}]"),
                            format!("unknown event type; one of {}", all.join(", ")),
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        };
        out.push(CallbackConfig {
            name: cb.name,
            url,
            secrets,
            events: types,
            max_in_flight: cb.max_in_flight.unwrap_or(events.max_in_flight),
            max_per_second: cb.max_per_second.unwrap_or(events.max_per_second),
        });
    }
    Ok(out)
}

fn check_url(key: &str, text: &str, allowed: &HashSet<String>) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(text).map_err(|e| key_error(key, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(key_error(key, "must be an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(key_error(
            key,
            "must not carry credentials; the receiver checks the signature instead",
        ));
    }
    if url.fragment().is_some() {
        return Err(key_error(key, "must not have a #fragment"));
    }
    let Some(o) = origin(&url) else {
        return Err(key_error(key, "has no host"));
    };
    if !allowed.contains(&o) {
        return Err(key_error(
            key,
            format!("its origin {o} is not in events.allowed_origins"),
        ));
    }
    Ok(url)
}

/// Whether `name` can name an endpoint: 1-32 of `a-z`, `0-9`, `-` and `_`.
pub fn endpoint_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_take_the_standard_webhooks_form() {
        let s = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(s.key().len(), 24);
        assert!(SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(SigningSecret::parse("whsec_c2hvcnQ=").is_err());
        assert!(!format!("{s:?}").contains("MfKQ"));
    }

    #[test]
    fn urls_must_be_on_the_allow_list() {
        let allowed = allowed_origins(&EventsConfig {
            allowed_origins: vec![
                "https://hooks.example.org".into(),
                "http://127.0.0.1:9000".into(),
            ],
            ..EventsConfig::default()
        })
        .unwrap();
        for ok in [
            "https://hooks.example.org/puhuri",
            "https://HOOKS.example.org:443/x?y=1",
            "http://127.0.0.1:9000/hook",
        ] {
            assert!(check_url("k", ok, &allowed).is_ok(), "{ok}");
        }
        for bad in [
            "http://hooks.example.org/puhuri",
            "https://hooks.example.org:8443/",
            "http://127.0.0.1:9001/hook",
            "ftp://127.0.0.1:9000/",
            "https://user:pw@hooks.example.org/",
            "file:///etc/passwd",
        ] {
            assert!(check_url("k", bad, &allowed).is_err(), "{bad}");
        }
    }
}
