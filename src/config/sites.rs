//! Sites: who may call the gateway, for which offerings, with which scopes and keys.
//!
//! Every site is bound to exactly one Puhuri identity (`identity`, default [`SP_IDENTITY`], the
//! service provider's token of `upstream.token_file`); its jobs are delivered with that
//! identity's token and no other. The identity decides the site's kind:
//! - a service provider's site (identity `sp`): `offerings` are the offerings it serves; it may
//!   hold the service-provider scopes ([`Scope::ALL`]);
//! - an allocator's site (any identity of `upstream.identities`): `customers` and/or `projects`
//!   are what it allocates for (at least one of them), `offerings` those it may order from; it
//!   may hold the allocator scopes ([`Scope::ALLOCATOR`]).
//!
//! Both kinds hold `events:read` (by default too: a site without `scopes` holds every scope of
//! its kind), and may have event endpoints (`[[sites.callbacks]]`, see [`super::callbacks`]).
//!
//! A scope of the other kind in `scopes` is refused at start, so neither kind can reach the
//! other's operations (403 `insufficient_scope`, which names only the scope).

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::callbacks::{
    CallbackConfig, EventsConfig, RawCallback, allowed_origins, resolve_callbacks,
};
use super::keys::{KeyConfig, RawKey, resolve_key};
use super::{ConfigError, key_error, parse_uuid};
use crate::domain::Scope;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub id: String,
    /// Offering uuids this site may act on.
    pub offerings: Vec<String>,
    /// The most a token of this site may be granted; a token's scopes are intersected with these.
    /// Default: every scope of the site's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Scope>>,
    #[serde(default)]
    pub keys: Vec<RawKey>,
    /// The Puhuri identity whose token delivers this site's jobs (default `sp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Allocator sites: the customers (organisations) whose projects it allocates for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customers: Vec<String>,
    /// Allocator sites: single projects it allocates for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    /// Where the site's events go (`[[sites.callbacks]]`); none: events are not sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callbacks: Vec<RawCallback>,
}

/// The service provider's identity: `upstream.token` / `upstream.token_file`.
pub const SP_IDENTITY: &str = "sp";

#[derive(Debug)]
pub struct SiteConfig {
    pub id: String,
    /// Offering uuids as 32 lowercase hex digits, Waldur's spelling.
    pub offerings: BTreeSet<String>,
    pub scopes: BTreeSet<Scope>,
    pub keys: Vec<KeyConfig>,
    /// The Puhuri identity the site's jobs are delivered with ([`SP_IDENTITY`] or a name of
    /// `upstream.identities`).
    pub identity: String,
    /// Allocator sites: customer uuids (32 lowercase hex digits) it allocates for.
    pub customers: BTreeSet<String>,
    /// Allocator sites: project uuids (32 lowercase hex digits) it allocates for.
    pub projects: BTreeSet<String>,
    /// The site's event endpoints, their URLs on the allow-list.
    pub callbacks: Vec<std::sync::Arc<CallbackConfig>>,
}

impl SiteConfig {
    /// Whether this is an allocator's site (bound to an identity other than the service
    /// provider's).
    pub fn is_allocator(&self) -> bool {
        self.identity != SP_IDENTITY
    }
}

pub(super) fn resolve_sites<T>(
    raw: Vec<RawSite>,
    identities: &std::collections::BTreeMap<String, T>,
    events: &EventsConfig,
) -> Result<Vec<SiteConfig>, ConfigError> {
    let allowed_origins = allowed_origins(events)?;
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
        let identity = site.identity.unwrap_or_else(|| SP_IDENTITY.to_string());
        if identity != SP_IDENTITY && !identities.contains_key(&identity) {
            return Err(key_error(
                format!("{at}.identity"),
                format!("`{identity}` is not `sp` nor a name of upstream.identities"),
            ));
        }
        let allocator = identity != SP_IDENTITY;
        let uuids = |list: &[String], name: &str| {
            list.iter()
                .enumerate()
                .map(|(j, u)| parse_uuid(&format!("{at}.{name}[{j}]"), u))
                .collect::<Result<BTreeSet<_>, _>>()
        };
        let customers = uuids(&site.customers, "customers")?;
        let projects = uuids(&site.projects, "projects")?;
        if allocator && customers.is_empty() && projects.is_empty() {
            return Err(key_error(
                format!("{at}.customers"),
                "an allocator's site needs the customers and/or projects it allocates for",
            ));
        }
        if !allocator && (!customers.is_empty() || !projects.is_empty()) {
            return Err(key_error(
                format!("{at}.identity"),
                "customers and projects bind an allocator's site: name its identity",
            ));
        }
        let allowed: Vec<Scope> = Scope::for_kind(allocator).to_vec();
        let scopes: BTreeSet<Scope> = match site.scopes {
            Some(list) => list.into_iter().collect(),
            None => Scope::for_kind(allocator).iter().copied().collect(),
        };
        if let Some(other) = scopes.iter().find(|s| !allowed.contains(s)) {
            return Err(key_error(
                format!("{at}.scopes"),
                format!(
                    "`{other}` is not for a {} site (those are: {})",
                    if allocator {
                        "an allocator's"
                    } else {
                        "service provider's"
                    },
                    allowed
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let callbacks = resolve_callbacks(&at, site.callbacks, &allowed_origins, events)?;
        sites.push(SiteConfig {
            id: site.id,
            offerings,
            scopes,
            keys,
            identity,
            customers,
            projects,
            callbacks: callbacks.into_iter().map(std::sync::Arc::new).collect(),
        });
    }
    Ok(sites)
}

/// A site id: 1-64 characters of letters, digits, `-`, `_` or `.`.
pub fn valid_site_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
