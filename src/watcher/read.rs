//! The watcher's reads of Puhuri: whole lists in pages of 100, each page one call that first takes
//! a slot of the shared rate limit ([`crate::queue::JobStore::take_rate_slot`]), so the watcher
//! never pushes Puhuri past `delivery.max_per_second` together with the deliveries. Calls are
//! counted for the poll's report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;

use crate::queue::{DeliveryLimits, JobStore, StoreError};
use crate::upstream::{UpstreamError, WaldurClient};

/// The most pages one list may have (100 items each): a bound, not an expectation.
pub const MAX_PAGES: usize = 2_000;

/// Why a poll could not read what it needed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the list at {0} is longer than the watcher reads")]
    TooLong(String),
}

/// Paged, rate-limited, counted reads with the service provider's token.
pub struct Reader {
    pub client: WaldurClient,
    pub store: Arc<dyn JobStore>,
    pub limits: DeliveryLimits,
    /// Calls made (pages and single objects) since the reader was made.
    pub calls: AtomicU64,
}

impl Reader {
    async fn slot(&self) -> Result<(), ReadError> {
        while let Some(wait) = self.store.take_rate_slot(self.limits).await? {
            tokio::time::sleep(wait).await;
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Every item of the list at `path` (following `rel="next"` as Waldur wrote it), each read
    /// as `T`.
    pub async fn all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>, ReadError> {
        let mut items = Vec::new();
        let mut next: Vec<(String, String)> = (query.iter())
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain([("page_size".to_string(), "100".to_string())])
            .collect();
        for _ in 0..MAX_PAGES {
            self.slot().await?;
            let q: Vec<(&str, String)> =
                next.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let page = self.client.get_page(path, &q).await?;
            items.extend(page.items);
            let Some(query) = page.next_query else {
                return Ok(items);
            };
            next = url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        }
        Err(ReadError::TooLong(path.to_owned()))
    }

    /// One object, read as `T`; `None` when Puhuri says it does not exist (404).
    pub async fn one<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<T>, ReadError> {
        self.slot().await?;
        match self.client.get(path, query).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}
