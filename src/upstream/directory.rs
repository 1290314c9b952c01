//! Cached answers to "which offering is this resource in?" and "what components does this
//! offering have?", asked before every write is queued.
//!
//! A resource never changes offering, so that answer is kept long; a site's backend id can be
//! changed, so backend-id lookups are kept briefly and forgotten when the gateway itself sets a
//! backend id. Offering components change rarely; when Puhuri cannot be reached a stale answer is
//! used rather than refusing the site's work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{OfferingInfo, ResourceInfo, UpstreamError, WaldurClient};

const RESOURCE_TTL: Duration = Duration::from_secs(24 * 3600);
const BACKEND_ID_TTL: Duration = Duration::from_secs(60);
const OFFERING_TTL: Duration = Duration::from_secs(600);
const MAX_ENTRIES: u64 = 100_000;

#[derive(Clone)]
struct Entry<T> {
    value: T,
    at: Instant,
}

/// A bounded map from key to the last answer and when it was fetched. Entries are not dropped
/// when their TTL passes: a stale answer is what the directory falls back on while Puhuri cannot
/// be reached. moka bounds the memory, evicting the least useful entries (TinyLFU) one at a time
/// instead of emptying the map when it is full.
struct Cache<T> {
    ttl: Duration,
    entries: moka::sync::Cache<String, Entry<T>>,
}

impl<T: Clone + Send + Sync + 'static> Cache<T> {
    fn new(ttl: Duration) -> Self {
        Cache {
            ttl,
            entries: moka::sync::Cache::new(MAX_ENTRIES),
        }
    }

    /// The cached value and whether it is still fresh.
    fn get(&self, key: &str) -> Option<(T, bool)> {
        self.entries
            .get(key)
            .map(|e| (e.value, e.at.elapsed() < self.ttl))
    }

    fn put(&self, key: String, value: T) {
        self.entries.insert(
            key,
            Entry {
                value,
                at: Instant::now(),
            },
        );
    }

    fn remove_where(&self, mut pred: impl FnMut(&str, &T) -> bool) {
        for (key, entry) in self.entries.iter() {
            if pred(&key, &entry.value) {
                self.entries.invalidate(key.as_str());
            }
        }
    }
}

pub struct Directory {
    client: WaldurClient,
    resources: Cache<ResourceInfo>,
    backend_ids: Cache<Vec<ResourceInfo>>,
    offerings: Cache<Arc<OfferingInfo>>,
    /// Organisation uuid -> its service provider's uuid (never changes).
    providers: Cache<String>,
}

impl Directory {
    pub fn new(client: WaldurClient) -> Directory {
        Directory {
            client,
            resources: Cache::new(RESOURCE_TTL),
            backend_ids: Cache::new(BACKEND_ID_TTL),
            offerings: Cache::new(OFFERING_TTL),
            providers: Cache::new(RESOURCE_TTL),
        }
    }

    pub fn client(&self) -> &WaldurClient {
        &self.client
    }

    /// The resource as the service provider sees it (404 when it is not the provider's).
    pub async fn resource(&self, uuid: &str) -> Result<ResourceInfo, UpstreamError> {
        if let Some((info, true)) = self.resources.get(uuid) {
            return Ok(info);
        }
        match self.client.resource_info(uuid).await {
            Ok(info) => {
                self.resources.put(uuid.to_string(), info.clone());
                Ok(info)
            }
            // Offering membership never changes: a stale entry is still right.
            Err(e @ UpstreamError::Transient { .. }) => {
                self.resources.get(uuid).map(|(info, _)| info).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Resources of `offerings` with this backend id.
    pub async fn resources_by_backend_id(
        &self,
        backend_id: &str,
        offerings: &[String],
    ) -> Result<Vec<ResourceInfo>, UpstreamError> {
        let key = format!("{}|{backend_id}", offerings.join(","));
        if let Some((found, true)) = self.backend_ids.get(&key) {
            return Ok(found);
        }
        match self
            .client
            .resources_by_backend_id(backend_id, offerings)
            .await
        {
            Ok(found) => {
                for info in &found {
                    self.resources.put(info.uuid.clone(), info.clone());
                }
                // An empty answer is not kept: a backend id being set must be found at once.
                if !found.is_empty() {
                    self.backend_ids.put(key, found.clone());
                }
                Ok(found)
            }
            Err(e @ UpstreamError::Transient { .. }) => {
                self.backend_ids.get(&key).map(|(f, _)| f).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Forget backend-id lookups that name `backend_id` or `resource_uuid` (after the gateway
    /// changed a backend id).
    pub fn forget_backend_id(&self, resource_uuid: &str, backend_id: Option<&str>) {
        self.backend_ids.remove_where(|k, found| {
            backend_id.is_some_and(|b| k.ends_with(&format!("|{b}")))
                || found.iter().any(|r| r.uuid == resource_uuid)
        });
    }

    /// The service provider (its uuid) of the organisation that owns `offering_uuid`.
    pub async fn service_provider_of_offering(
        &self,
        offering_uuid: &str,
    ) -> Result<Option<String>, UpstreamError> {
        let customer = self.offering(offering_uuid).await?.customer_uuid.clone();
        if let Some((sp, _)) = self.providers.get(&customer) {
            return Ok(Some(sp));
        }
        let sp = self.client.service_provider_of(&customer).await?;
        if let Some(sp) = &sp {
            self.providers.put(customer, sp.clone());
        }
        Ok(sp)
    }

    pub async fn offering(&self, uuid: &str) -> Result<Arc<OfferingInfo>, UpstreamError> {
        if let Some((info, true)) = self.offerings.get(uuid) {
            return Ok(info);
        }
        match self.client.offering_info(uuid).await {
            Ok(info) => {
                let info = Arc::new(info);
                self.offerings.put(uuid.to_string(), info.clone());
                Ok(info)
            }
            Err(e @ UpstreamError::Transient { .. }) => {
                self.offerings.get(uuid).map(|(i, _)| i).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }
}
