//! One upstream fetch per key at a time ("single flight"): callers that find the same key cold
//! at once wait for the first one's fetch and then read what it kept, instead of each making the
//! same call to Puhuri. Bounded like the caches it serves (moka evicts the least useful lock; a
//! lock evicted while held stays valid for its holders and is recreated for later callers).

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

pub(crate) struct Flights {
    locks: moka::sync::Cache<String, Arc<Mutex<()>>>,
}

impl Flights {
    /// At most `capacity` keys' locks are kept.
    pub(crate) fn new(capacity: u64) -> Flights {
        Flights {
            locks: moka::sync::Cache::new(capacity),
        }
    }

    /// The lock of `key`'s fetch.
    pub(crate) fn of(&self, key: &str) -> Arc<Mutex<()>> {
        self.locks
            .get_with(key.to_string(), || Arc::new(Mutex::new(())))
    }

    /// Waits until no other caller is fetching `key`, and holds that place until the guard is
    /// dropped.
    pub(crate) async fn join(&self, key: &str) -> OwnedMutexGuard<()> {
        self.of(key).lock_owned().await
    }
}
