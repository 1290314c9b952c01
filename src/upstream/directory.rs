//! Cached answers to "which offering is this resource in?" and "what components does this
//! offering have?", asked before every write is queued.
//!
//! A resource never changes offering, so that answer is kept long; a site's backend id can be
//! changed, so backend-id lookups are kept briefly and forgotten when the gateway itself sets a
//! backend id. Offering components change rarely; when Puhuri cannot be reached a stale answer is
//! used rather than refusing the site's work.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::flights::Flights;
use super::scans::Scans;
use super::{OfferingInfo, ResourceInfo, ResourceProjection, UpstreamError, Uuid, WaldurClient};

const RESOURCE_TTL: Duration = Duration::from_secs(24 * 3600);
const BACKEND_ID_TTL: Duration = Duration::from_secs(60);
const OFFERING_TTL: Duration = Duration::from_secs(600);
/// How long a site's set of projects is kept: a project gains or loses its last live resource
/// in the site's offerings rarely, and a list read within this time reuses the set.
const SITE_PROJECTS_TTL: Duration = Duration::from_secs(60);
/// Waldur's largest page (`LinkHeaderPagination.max_page_size`), used for scans.
pub const SCAN_PAGE_SIZE: u64 = 300;
/// The most pages of [`SCAN_PAGE_SIZE`] one scan reads (30,000 objects): past it a list is
/// answered as too large (422 `list_too_large`), never as Puhuri being unreachable.
pub const MAX_SCAN_PAGES: usize = 100;
/// Resource states that count as "the resource exists" for scoping projects to a site.
pub const LIVE_RESOURCE_STATES: [&str; 5] = ["Creating", "OK", "Erred", "Updating", "Terminating"];
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
struct Cache<T, E = UpstreamError> {
    ttl: Duration,
    entries: moka::sync::Cache<String, Entry<T>>,
    /// Concurrent lookups of one cold key make one call ([`Cache::fresh_or_fetch`]).
    flights: Flights,
    /// A key's last failed fetch and when it ended, for the callers that waited for it.
    failures: moka::sync::Cache<String, (E, Instant)>,
}

impl<T: Clone + Send + Sync + 'static, E: Clone + Send + Sync + 'static> Cache<T, E> {
    fn new(ttl: Duration) -> Self {
        Cache {
            ttl,
            entries: moka::sync::Cache::new(MAX_ENTRIES),
            flights: Flights::new(MAX_ENTRIES),
            failures: moka::sync::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// The cached value and whether it is still fresh.
    fn get(&self, key: &str) -> Option<(T, bool)> {
        self.entries
            .get(key)
            .map(|e| (e.value, e.at.elapsed() < self.ttl))
    }

    /// The fresh value of `key`, or else `fetch`'s answer, the value kept. Callers that find
    /// the key cold at once make one call: the others wait for it and take its value, or its
    /// error when it failed while they waited (rather than each waiting out its own call to an
    /// unreachable Puhuri, one after the other). A caller that did not wait always fetches.
    async fn fresh_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some((value, true)) = self.get(key) {
            return Ok(value);
        }
        let asked = Instant::now();
        let _fetching = self.flights.join(key).await;
        if let Some((value, true)) = self.get(key) {
            return Ok(value);
        }
        if let Some((error, at)) = self.failures.get(key)
            && at >= asked
        {
            return Err(error);
        }
        match fetch().await {
            Ok(value) => {
                self.put(key.to_string(), value.clone());
                Ok(value)
            }
            Err(error) => {
                self.failures
                    .insert(key.to_string(), (error.clone(), Instant::now()));
                Err(error)
            }
        }
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
    /// A site's offerings (sorted, joined) -> whether they are every offering of their provider.
    coverage: Cache<bool, ScanError>,
    /// A site's offerings (sorted, joined) -> the projects with a live resource in them.
    site_projects: Cache<Arc<BTreeSet<String>>, ScanError>,
    /// Whole lists kept for reads ([`Directory::scan`]).
    scans: Arc<Scans>,
    /// The client for an offering's own people views, where a 403 is an expected answer
    /// ([`WaldurClient::expecting_refusal`]).
    owner_views: WaldurClient,
}

/// A scan that would read more than [`MAX_SCAN_PAGES`] pages.
#[derive(Clone, Debug)]
pub struct TooLarge {
    /// What was being listed, e.g. `marketplace-provider-resources/`.
    pub what: String,
}

/// What a directory lookup that scans a list can answer besides its value.
#[derive(Clone, Debug)]
pub enum ScanError {
    Upstream(UpstreamError),
    TooLarge(TooLarge),
}

impl From<UpstreamError> for ScanError {
    fn from(e: UpstreamError) -> Self {
        ScanError::Upstream(e)
    }
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Upstream(e) => e.fmt(f),
            ScanError::TooLarge(t) => write!(
                f,
                "Puhuri's {} is longer than {} objects",
                t.what,
                MAX_SCAN_PAGES as u64 * SCAN_PAGE_SIZE
            ),
        }
    }
}

fn offerings_key(offerings: &[String]) -> String {
    let mut sorted: Vec<&str> = offerings.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.join(",")
}

impl Directory {
    /// Lookups through `client`; whole lists are kept for reads as [`Scans::default`] says.
    pub fn new(client: WaldurClient) -> Directory {
        Directory {
            owner_views: client.expecting_refusal(),
            client,
            resources: Cache::new(RESOURCE_TTL),
            backend_ids: Cache::new(BACKEND_ID_TTL),
            offerings: Cache::new(OFFERING_TTL),
            providers: Cache::new(RESOURCE_TTL),
            coverage: Cache::new(OFFERING_TTL),
            site_projects: Cache::new(SITE_PROJECTS_TTL),
            scans: Arc::new(Scans::default()),
        }
    }

    /// Whole lists served while a new scan runs until they are `serve_stale_for` old
    /// (`reads.serve_stale_for`; see [`Scans`]).
    pub fn serving_stale_for(mut self, serve_stale_for: Duration) -> Directory {
        self.scans = Arc::new(Scans::with_ages(super::scans::SCAN_TTL, serve_stale_for));
        self
    }

    /// The client for an offering's own people views (`marketplace-provider-offerings/{uuid}/
    /// list_customer_projects/`, `list_customer_users/`), which Waldur lets only an owner of the
    /// provider's organisation read: the gateway reads another way where they answer 403, so
    /// that 403 does not mark the token refused ([`WaldurClient::expecting_refusal`]).
    pub fn owner_views_client(&self) -> &WaldurClient {
        &self.owner_views
    }

    pub fn client(&self) -> &WaldurClient {
        &self.client
    }

    /// The resource as the service provider sees it (404 when it is not the provider's).
    pub async fn resource(&self, uuid: &str) -> Result<ResourceInfo, UpstreamError> {
        let found = self
            .resources
            .fresh_or_fetch(uuid, || self.client.resource_info(uuid))
            .await;
        match found {
            // Offering membership never changes: a stale entry is still right.
            Err(e @ UpstreamError::Transient { .. }) => {
                self.resources.get(uuid).map(|(info, _)| info).ok_or(e)
            }
            found => found,
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
        let found = self
            .offerings
            .fresh_or_fetch(uuid, || async {
                self.client.offering_info(uuid).await.map(Arc::new)
            })
            .await;
        match found {
            Err(e @ UpstreamError::Transient { .. }) => {
                self.offerings.get(uuid).map(|(i, _)| i).ok_or(e)
            }
            found => found,
        }
    }

    /// Whether `offerings` are every offering of the provider that owns the first of them (its
    /// provider view lists every state, archived included). When they are, the provider's views
    /// of projects, users, keys and roles are exactly the site's, and a page of them is one
    /// upstream page. Kept for the offering TTL (10 min): one call for the offering (cached)
    /// and one scan of the provider's offerings (one page for any real provider).
    pub async fn offerings_cover_provider(&self, offerings: &[String]) -> Result<bool, ScanError> {
        let Some(first) = offerings.first() else {
            return Ok(false);
        };
        let key = offerings_key(offerings);
        self.coverage
            .fresh_or_fetch(&key, || async {
                let customer = self.offering(first).await?.customer_uuid.clone();
                let all: Vec<Uuid> = self
                    .client
                    .get_bounded(
                        "marketplace-provider-offerings/",
                        &[("customer_uuid", customer), ("field", "uuid".into())],
                        SCAN_PAGE_SIZE,
                        MAX_SCAN_PAGES,
                    )
                    .await?
                    .ok_or_else(|| {
                        ScanError::TooLarge(TooLarge {
                            what: "marketplace-provider-offerings/".into(),
                        })
                    })?;
                Ok(all.iter().all(|o| offerings.contains(&o.uuid)))
            })
            .await
    }

    /// The uuids of projects with a live resource in `offerings`: one scan of the site's
    /// resources with Waldur's filters (`offering_uuid`, `state`) and only `project_uuid`
    /// fetched (`field=`), kept for [`SITE_PROJECTS_TTL`].
    pub async fn site_projects(
        &self,
        offerings: &[String],
    ) -> Result<Arc<BTreeSet<String>>, ScanError> {
        let key = offerings_key(offerings);
        self.site_projects
            .fresh_or_fetch(&key, || async {
                let mut query: Vec<(&str, String)> = offerings
                    .iter()
                    .map(|o| ("offering_uuid", o.clone()))
                    .collect();
                query.extend(
                    LIVE_RESOURCE_STATES
                        .iter()
                        .map(|s| ("state", s.to_string())),
                );
                query.push(("field", "project_uuid".into()));
                let path = "marketplace-provider-resources/";
                let resources: Vec<ResourceProjection> = self
                    .client
                    .get_bounded(path, &query, SCAN_PAGE_SIZE, MAX_SCAN_PAGES)
                    .await?
                    .ok_or_else(|| ScanError::TooLarge(TooLarge { what: path.into() }))?;
                Ok(Arc::new(
                    resources
                        .into_iter()
                        .filter_map(|r| r.project_uuid)
                        .collect(),
                ))
            })
            .await
    }

    /// Every item of the list at `path` with `query` (in pages of [`SCAN_PAGE_SIZE`], at most
    /// [`MAX_SCAN_PAGES`]), kept for reads ([`Scans`]: fresh for a minute, then served while a
    /// new scan runs): paging through a list the gateway narrows itself costs one scan a
    /// minute at most, not one per page. A list past the bound is [`ScanError::TooLarge`]. Each
    /// item is read as `T` (a malformed item makes the scan [`UpstreamError::Malformed`]).
    pub async fn scan<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Arc<Vec<T>>, ScanError> {
        self.scans.read_as(&self.client, path, query).await
    }

    /// [`Directory::scan`] of an offering's own people view, through
    /// [`Directory::owner_views_client`].
    pub async fn scan_owner_view<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Arc<Vec<T>>, ScanError> {
        self.scans.read_as(&self.owner_views, path, query).await
    }
}
