//! Whole lists read from Puhuri and kept for reads: the scans behind the people lists that
//! Waldur 8.0.5 cannot narrow to a site bound to some of its provider's offerings (SSH keys and
//! project roles have no per-offering view).
//!
//! The rules keep a scan's cost off the request path without adding scans nobody asked for:
//! - **fresh for a minute** ([`SCAN_TTL`]): a read of a list scanned less than a minute ago
//!   costs no upstream call;
//! - **stale while revalidating** (the rule of RFC 5861's `stale-while-revalidate`): a read of
//!   an older list that is younger than `serve_stale_for` (`reads.serve_stale_for`, default
//!   10 min) is answered at once from that copy, and one scan starts in the background, so the
//!   next read gets the new list. A list is scanned only because someone read it: at most once
//!   a minute while it is read, never when it is not;
//! - **one scan at a time per list**: requests that find a list missing, or older than
//!   `serve_stale_for`, wait for one scan and share its answer (a burst of cold reads is one
//!   scan, not one per request); a background scan is not started while one runs;
//! - **read at start** (`reads.warm_at_start`, in `api::people::warm`): the gateway reads each
//!   site's lists once when it starts, so the first reads after a start are answered from
//!   memory.
//!
//! A background scan that fails keeps the copy and is logged; the next read past the TTL tries
//! again. A copy older than `serve_stale_for` is never served: that read waits for a new scan.
//!
//! Each list is kept as the type its readers read its items as (the type is part of the list's
//! key), so a read costs no parsing.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::WaldurClient;
use super::directory::{MAX_SCAN_PAGES, SCAN_PAGE_SIZE, ScanError, TooLarge};
use super::flights::Flights;

/// How long a scan answers reads without a new one being started.
pub const SCAN_TTL: Duration = Duration::from_secs(60);
/// How old a copy may be served while a new scan runs (`reads.serve_stale_for`'s default).
pub const SERVE_STALE_FOR: Duration = Duration::from_secs(600);
/// The most lists kept at once: each may hold up to 30,000 objects.
const MAX_SCANS: u64 = 32;

/// A list's items: an `Arc<Vec<T>>` of the type named in the list's key.
type Items = Arc<dyn Any + Send + Sync>;

/// One list's last scan.
#[derive(Clone)]
struct Scanned {
    items: Items,
    at: Instant,
}

/// The scans kept in memory (bounded: [`MAX_SCANS`] lists, least useful evicted first). Shared
/// (`Arc`) so that a background scan can outlive the read that started it.
pub struct Scans {
    /// How long a scan answers reads without a new one ([`SCAN_TTL`]).
    ttl: Duration,
    /// How old a copy may be served while a new scan runs.
    serve_stale_for: Duration,
    scanned: moka::sync::Cache<String, Scanned>,
    /// One lock per list: held by the scan in flight, if any.
    flights: Flights,
}

impl Default for Scans {
    fn default() -> Self {
        Scans::with_ages(SCAN_TTL, SERVE_STALE_FOR)
    }
}

fn scan_key<T>(path: &str, query: &[(&str, String)]) -> String {
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}:{path}?{}", std::any::type_name::<T>(), query.join("&"))
}

fn owned(query: &[(&str, String)]) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn borrowed(query: &[(String, String)]) -> Vec<(&str, String)> {
    query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}

impl Scans {
    /// Scans fresh for `ttl`, served while a new scan runs until `serve_stale_for` (at least
    /// `ttl`; the gateway uses [`SCAN_TTL`] and `reads.serve_stale_for`, tests shorter ones).
    pub fn with_ages(ttl: Duration, serve_stale_for: Duration) -> Scans {
        Scans {
            ttl,
            serve_stale_for: serve_stale_for.max(ttl),
            scanned: moka::sync::Cache::new(MAX_SCANS),
            flights: Flights::new(MAX_SCANS),
        }
    }

    /// Every item of the list at `path` with `query` as Waldur sent it ([`Self::read_as`]
    /// with JSON values).
    pub async fn read(
        self: &Arc<Self>,
        client: &WaldurClient,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Arc<Vec<Value>>, ScanError> {
        self.read_as(client, path, query).await
    }

    /// Every item of the list at `path` with `query`, read as `T`: from a copy younger than the
    /// TTL; from an older copy younger than `serve_stale_for`, starting one scan in the
    /// background; or from a new scan, shared with the other requests waiting for it. A list
    /// past the scan bound (`MAX_SCAN_PAGES` pages of `SCAN_PAGE_SIZE`) is
    /// [`ScanError::TooLarge`]; an item that is not a `T` makes the scan
    /// [`super::UpstreamError::Malformed`].
    pub async fn read_as<T: DeserializeOwned + Send + Sync + 'static>(
        self: &Arc<Self>,
        client: &WaldurClient,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Arc<Vec<T>>, ScanError> {
        let key = scan_key::<T>(path, query);
        if let Some((items, age)) = self.copy::<T>(&key) {
            if age < self.ttl {
                return Ok(items);
            }
            if age < self.serve_stale_for {
                self.rescan_in_background::<T>(client, &key, path, query);
                return Ok(items);
            }
        }
        let flight = self.flights.of(&key);
        let _scanning = flight.lock().await;
        // Another request may have scanned while this one waited.
        if let Some((items, age)) = self.copy::<T>(&key)
            && age < self.ttl
        {
            return Ok(items);
        }
        self.scan(client, &key, path, query).await
    }

    /// Starts one scan of the list in the background, unless one is in flight.
    fn rescan_in_background<T: DeserializeOwned + Send + Sync + 'static>(
        self: &Arc<Self>,
        client: &WaldurClient,
        key: &str,
        path: &str,
        query: &[(&str, String)],
    ) {
        let Ok(scanning) = self.flights.of(key).try_lock_owned() else {
            return;
        };
        let (scans, client) = (self.clone(), client.clone());
        let (key, path, query) = (key.to_string(), path.to_string(), owned(query));
        tokio::spawn(async move {
            let _scanning = scanning;
            let result = scans
                .scan::<T>(&client, &key, &path, &borrowed(&query))
                .await;
            if let Err(e) = result {
                tracing::warn!(
                    list = %path,
                    error = %e,
                    "could not scan again a list kept for reads; its copy is served until a read \
                     finds it older than reads.serve_stale_for"
                );
            }
        });
    }

    /// The list's copy read as `T`, and its age.
    fn copy<T: Send + Sync + 'static>(&self, key: &str) -> Option<(Arc<Vec<T>>, Duration)> {
        let scanned = self.scanned.get(key)?;
        let items = scanned.items.downcast::<Vec<T>>().ok()?;
        Some((items, scanned.at.elapsed()))
    }

    /// Scans the list and keeps it (the caller holds the list's flight lock).
    async fn scan<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        client: &WaldurClient,
        key: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Arc<Vec<T>>, ScanError> {
        let items: Arc<Vec<T>> = Arc::new(
            client
                .get_bounded(path, query, SCAN_PAGE_SIZE, MAX_SCAN_PAGES)
                .await?
                .ok_or_else(|| ScanError::TooLarge(TooLarge { what: path.into() }))?,
        );
        self.scanned.insert(
            key.to_string(),
            Scanned {
                items: items.clone(),
                at: Instant::now(),
            },
        );
        Ok(items)
    }
}
