//! Sites: who may call the gateway, for which offerings, with which scopes and keys.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

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
    #[serde(default = "Scope::all_vec")]
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub keys: Vec<RawKey>,
}

#[derive(Debug)]
pub struct SiteConfig {
    pub id: String,
    /// Offering uuids as 32 lowercase hex digits, Waldur's spelling.
    pub offerings: BTreeSet<String>,
    pub scopes: BTreeSet<Scope>,
    pub keys: Vec<KeyConfig>,
}

pub(super) fn resolve_sites(raw: Vec<RawSite>) -> Result<Vec<SiteConfig>, ConfigError> {
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

/// A site id: 1-64 characters of letters, digits, `-`, `_` or `.`.
pub fn valid_site_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
