//! Whole lists read from Puhuri and kept for a minute: the scans behind the people lists that
//! Waldur 8.0.5 cannot narrow to a site bound to some of its provider's offerings (SSH keys and
//! project roles have no per-offering view).
//!
//! Three rules keep a scan's cost off the request path:
//! - **one scan at a time per list**: requests that find a list missing or older than
//!   [`SCAN_TTL`] wait for one scan and share its answer (a burst of cold reads is one scan, not
//!   one per request);
//! - **kept fresh while read**: [`Scans::refresh`] (run every few seconds by the gateway) scans
//!   again each list read within the last `keep_warm_for` (`reads.keep_warm_for`, default
//!   15 min) once it is older than [`REFRESH_AFTER`], so a site that reads the list at least once
//!   every `keep_warm_for` never waits for a scan after its first read; a list nobody reads
//!   costs nothing;
//! - **warmed at start** (`reads.warm_at_start`): the gateway reads each such list of every
//!   site once when it starts, so even the first read after a start is answered from memory.
//!
//! A scan that fails keeps the last answer (a refresh that meets an unreachable Puhuri is tried
//! again at the next round); a read of a list older than [`SCAN_TTL`] never gets the old answer:
//! it waits for a new scan, as before these rules.
//!
//! Each list is kept as the type its readers read its items as ([`Scans::read_as`]: the type
//! is part of the list's key), so a read costs no parsing; a refresh reads the items as that
//! same type.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::directory::{MAX_SCAN_PAGES, SCAN_PAGE_SIZE, ScanError, TooLarge};
use super::{UpstreamError, WaldurClient};

/// How long a scan answers reads: a list older than this is scanned again before it is read.
pub const SCAN_TTL: Duration = Duration::from_secs(60);
/// How old a scan that is still being read gets before [`Scans::refresh`] replaces it: early
/// enough that a scan of 100 pages (a few seconds against a real Puhuri) ends before
/// [`SCAN_TTL`].
pub const REFRESH_AFTER: Duration = Duration::from_secs(40);
/// The most lists kept at once: each may hold up to 30,000 objects.
const MAX_SCANS: u64 = 32;

/// A list's items: an `Arc<Vec<T>>` of the type named in the list's key.
type Items = Arc<dyn Any + Send + Sync>;

/// Reads a list's items (Waldur's JSON) as the type its readers read them as.
type Parse = fn(Vec<Value>) -> Result<Items, UpstreamError>;

fn parse_as<T: DeserializeOwned + Send + Sync + 'static>(
    items: Vec<Value>,
) -> Result<Items, UpstreamError> {
    let items: Vec<T> = super::parse(200, Value::Array(items))?;
    Ok(Arc::new(items))
}

/// One list's last scan.
#[derive(Clone)]
struct Scanned {
    items: Items,
    at: Instant,
}

/// What [`Scans::refresh`] needs to scan a list again, and when it was last read.
#[derive(Clone)]
struct Reader {
    path: String,
    query: Vec<(String, String)>,
    parse: Parse,
    last_read: Instant,
}

/// The scans kept in memory (bounded: [`MAX_SCANS`] lists, least useful evicted first).
pub struct Scans {
    /// How long a scan answers reads ([`SCAN_TTL`]).
    ttl: Duration,
    /// How old a scan still being read gets before it is replaced ([`REFRESH_AFTER`]).
    refresh_after: Duration,
    scanned: moka::sync::Cache<String, Scanned>,
    readers: moka::sync::Cache<String, Reader>,
    /// One lock per list: the scan in flight, if any.
    flights: moka::sync::Cache<String, Arc<tokio::sync::Mutex<()>>>,
}

impl Default for Scans {
    fn default() -> Self {
        Scans::with_ages(SCAN_TTL, REFRESH_AFTER)
    }
}

impl Scans {
    /// Scans that answer reads for `ttl` and are replaced after `refresh_after` while read
    /// (the gateway uses [`SCAN_TTL`] and [`REFRESH_AFTER`]; tests shorter ones).
    pub fn with_ages(ttl: Duration, refresh_after: Duration) -> Scans {
        Scans {
            ttl,
            refresh_after,
            scanned: moka::sync::Cache::new(MAX_SCANS),
            readers: moka::sync::Cache::new(MAX_SCANS),
            flights: moka::sync::Cache::new(MAX_SCANS),
        }
    }
}

fn scan_key<T>(path: &str, query: &[(&str, String)]) -> String {
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}:{path}?{}", std::any::type_name::<T>(), query.join("&"))
}

/// The items of a scan, if they are of type `T` (always, for the scan under a key of `T`).
fn typed<T: Send + Sync + 'static>(items: Items) -> Option<Arc<Vec<T>>> {
    items.downcast::<Vec<T>>().ok()
}

impl Scans {
    /// Every item of the list at `path` with `query` as Waldur sent it ([`Self::read_as`]
    /// with JSON values).
    pub async fn read(
        &self,
        client: &WaldurClient,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Arc<Vec<Value>>, ScanError> {
        self.read_as(client, path, query).await
    }

    /// Every item of the list at `path` with `query`, read as `T`, from a scan younger than the
    /// TTL or a new one (shared with the other requests waiting for it). A list past the scan
    /// bound (`MAX_SCAN_PAGES` pages of `SCAN_PAGE_SIZE`) is [`ScanError::TooLarge`]; an item
    /// that is not a `T` makes the scan [`UpstreamError::Malformed`].
    pub async fn read_as<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        client: &WaldurClient,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Arc<Vec<T>>, ScanError> {
        let key = scan_key::<T>(path, query);
        self.readers.insert(
            key.clone(),
            Reader {
                path: path.to_string(),
                query: query
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                parse: parse_as::<T>,
                last_read: Instant::now(),
            },
        );
        if let Some(items) = self.fresh(&key, self.ttl).and_then(typed) {
            return Ok(items);
        }
        let flight = self.flight(&key);
        let _scanning = flight.lock().await;
        // Another request may have scanned while this one waited.
        if let Some(items) = self.fresh(&key, self.ttl).and_then(typed) {
            return Ok(items);
        }
        let items: Arc<Vec<T>> = Arc::new(
            client
                .get_bounded(path, query, SCAN_PAGE_SIZE, MAX_SCAN_PAGES)
                .await?
                .ok_or_else(|| ScanError::TooLarge(TooLarge { what: path.into() }))?,
        );
        self.keep(&key, items.clone());
        Ok(items)
    }

    /// Scans again each list read within `keep_warm_for` whose scan is older than the refresh
    /// age (one at a time). Returns how many were scanned; a failed scan keeps the
    /// previous answer and is logged.
    pub async fn refresh(&self, client: &WaldurClient, keep_warm_for: Duration) -> usize {
        let due: Vec<(String, Reader)> = self
            .readers
            .iter()
            .filter(|(_, r)| r.last_read.elapsed() < keep_warm_for)
            .map(|(k, r)| ((*k).clone(), r))
            .filter(|(k, _)| self.fresh(k, self.refresh_after).is_none())
            .collect();
        let mut scanned = 0;
        for (key, reader) in due {
            let flight = self.flight(&key);
            let _scanning = flight.lock().await;
            if self.fresh(&key, self.refresh_after).is_some() {
                continue;
            }
            let query: Vec<(&str, String)> = reader
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            match self
                .scan(client, &key, &reader.path, &query, reader.parse)
                .await
            {
                Ok(_) => scanned += 1,
                Err(e) => {
                    tracing::warn!(list = %reader.path, error = ?e, "could not refresh a list kept for reads")
                }
            }
        }
        scanned
    }

    fn fresh(&self, key: &str, max_age: Duration) -> Option<Items> {
        self.scanned
            .get(key)
            .filter(|s| s.at.elapsed() < max_age)
            .map(|s| s.items)
    }

    fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.flights
            .get_with(key.to_string(), || Arc::new(tokio::sync::Mutex::new(())))
    }

    /// Scans the list again for a refresh, its items read by `parse`.
    async fn scan(
        &self,
        client: &WaldurClient,
        key: &str,
        path: &str,
        query: &[(&str, String)],
        parse: Parse,
    ) -> Result<(), ScanError> {
        let items: Vec<Value> = client
            .get_bounded(path, query, SCAN_PAGE_SIZE, MAX_SCAN_PAGES)
            .await?
            .ok_or_else(|| ScanError::TooLarge(TooLarge { what: path.into() }))?;
        self.keep(key, parse(items)?);
        Ok(())
    }

    fn keep(&self, key: &str, items: Items) {
        self.scanned.insert(
            key.to_string(),
            Scanned {
                items,
                at: Instant::now(),
            },
        );
    }
}
