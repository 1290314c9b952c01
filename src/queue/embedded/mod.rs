//! Embedded backend: the default when no Redis is configured, so one command starts a working
//! gateway on a fresh machine.
//!
//! The job records live in a [redb] file, `jobs.redb` in the data directory; they are the only
//! truth. Every state change is one redb write transaction committed durably (fsync) before the
//! call returns, so an acknowledged job survives a crash.
//!
//! The queue structures (each object's line, the ready set of line heads, leases, idempotency keys,
//! the terminal set for purging and the per-state counts) are kept in memory and rebuilt from the
//! records when the store is opened: every record carries what is needed (state, due time, lease
//! expiry, a line sequence number). A lease held by a process that died is therefore still there
//! after a restart and expires and is reclaimed like any other. The in-memory structures are
//! changed under the same lock as the write transaction; if a commit fails they are rebuilt from
//! the file, so they never disagree with it.
//!
//! The semantics mirror the Redis backend (see `super::redis`): only the head of an object's line
//! is ever leasable, coalescing absorbs pending (not running) jobs, and the delivery limits are
//! enforced inside `lease` — here in-process, since only one process can open the file. redb
//! locks the file, and a second process opening the same directory is refused with
//! [`StoreError::Unavailable`] naming the file, instead of corrupting it.
//!
//! Delivery limits, reclaim, release and operator retry behave as documented for the Redis
//! backend (`0` means no limit; the clock is this process's).
//!
//! A coalesce key's delivered map expires [`DELIVERED_TTL`](super::DELIVERED_TTL) after its last
//! write (see [`EmbeddedStore::with_delivered_ttl`]): `delivered` no longer returns it and
//! `purge_terminal` deletes it. Maps in a file written before their write times were recorded count
//! as written when the store is opened.
//!
//! Blocking redb work runs on tokio's blocking pool.

mod index;
mod lease;
mod store;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{JobId, JobRecord, JobState, StoreError, StoreResult};
use index::Index;
use writer::{Applied, PendingWrite, write_loop};

/// The store's file inside the data directory.
pub const FILE_NAME: &str = "jobs.redb";

/// Part of the [`StoreError::Unavailable`] message when the file is locked by another process.
const IN_USE: &str = "is already in use by another gateway process";

/// Whether `err` is the refusal to open a store file another process (or another store object in
/// this process) holds open.
pub fn is_in_use(err: &StoreError) -> bool {
    matches!(err, StoreError::Unavailable(msg) if msg.contains(IN_USE))
}

/// Job id (as u128, which sorts like the UUID) -> JSON of [`Stored`].
const JOBS: TableDefinition<u128, &str> = TableDefinition::new("jobs");
/// Coalesce key -> JSON object of the values last delivered.
const DELIVERED: TableDefinition<&str, &str> = TableDefinition::new("delivered");
/// Coalesce key -> when its delivered map was last written (ms), for expiry.
const DELIVERED_AT: TableDefinition<&str, i64> = TableDefinition::new("delivered_at");

const LIST_SCAN_CAP: usize = 5000;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;
/// Suggested wait when the in-flight limit is reached.
const IN_FLIGHT_RETRY_MS: i64 = 100;

/// redb's page cache. Its default (1 GiB) lets a busy store grow the process by hundreds of
/// megabytes; the hot pages of a job queue (recent jobs, the index tables) fit in far less, and
/// the operating system's file cache still holds the rest.
const PAGE_CACHE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    record: JobRecord,
    /// Request fingerprint for the idempotency key.
    fingerprint: Option<String>,
    /// Position in the object's line (increasing over the store's life).
    seq: u64,
    /// When the job became terminal (ms), for purging.
    finished_at: Option<i64>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    index: Mutex<Index>,
    /// To the writer thread, which group-commits state changes (see [`EmbeddedStore::write`]).
    writes: std::sync::mpsc::Sender<PendingWrite>,
}

/// The embedded job store. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    /// How long a delivered map outlives its last write.
    delivered_ttl: Duration,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {e}"))
}

fn decode(v: &str) -> StoreResult<Stored> {
    serde_json::from_str(v).map_err(|e| StoreError::Corrupt(format!("embedded store: {e}")))
}

fn encode(s: &Stored) -> String {
    serde_json::to_string(s).expect("a job record serializes")
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// What a write step wants done with its transaction.
enum Done<T> {
    /// Something changed: commit durably.
    Commit(T),
    /// Nothing changed: abort (no fsync).
    Skip(T),
}

/// The tables of one write transaction.
struct Tx<'t> {
    jobs: redb::Table<'t, u128, &'static str>,
    delivered: redb::Table<'t, &'static str, &'static str>,
    delivered_at: redb::Table<'t, &'static str, i64>,
}

impl Tx<'_> {
    fn get(&self, id: JobId) -> StoreResult<Option<Stored>> {
        match self.jobs.get(id.as_u128()).map_err(storage)? {
            Some(v) => decode(v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn must(&self, id: JobId) -> StoreResult<Stored> {
        self.get(id)?
            .ok_or_else(|| StoreError::Corrupt(format!("job {id} is indexed but missing")))
    }

    fn put(&mut self, s: &Stored) -> StoreResult<()> {
        self.jobs
            .insert(s.record.id.as_u128(), encode(s).as_str())
            .map_err(storage)?;
        Ok(())
    }

    fn delete(&mut self, id: JobId) -> StoreResult<()> {
        self.jobs.remove(id.as_u128()).map_err(storage)?;
        Ok(())
    }

    /// A coalesce key's delivered map as stored (component -> [`Known::encode`]); empty once it
    /// expired (last written `ttl_ms` or longer before `now`).
    fn known(&self, ck: &str, now: i64, ttl_ms: i64) -> StoreResult<BTreeMap<String, String>> {
        let expired = self
            .delivered_at
            .get(ck)
            .map_err(storage)?
            .is_some_and(|at| at.value() <= now.saturating_sub(ttl_ms));
        match self.delivered.get(ck).map_err(storage)? {
            Some(_) if expired => Ok(BTreeMap::new()),
            Some(v) => serde_json::from_str(v.value())
                .map_err(|e| StoreError::Corrupt(format!("embedded store: {e}"))),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Stores a coalesce key's delivered map; `written` restarts its time to live.
    fn put_known(
        &mut self,
        ck: &str,
        map: &BTreeMap<String, String>,
        written: Option<i64>,
    ) -> StoreResult<()> {
        let json = serde_json::to_string(map).expect("a map serializes");
        self.delivered.insert(ck, json.as_str()).map_err(storage)?;
        if let Some(at) = written {
            self.delivered_at.insert(ck, at).map_err(storage)?;
        }
        Ok(())
    }
}

impl EmbeddedStore {
    /// Open (or create) the store in `dir`. Refused with [`StoreError::Unavailable`] when another
    /// process (or another store object in this process) has the same directory open.
    pub async fn open(dir: &Path) -> StoreResult<EmbeddedStore> {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&dir))
            .await
            .map_err(|e| storage(format!("open task failed: {e}")))?
    }

    fn open_blocking(dir: &Path) -> StoreResult<EmbeddedStore> {
        std::fs::create_dir_all(dir).map_err(|e| {
            storage(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::builder()
            .set_cache_size(PAGE_CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
                    "the job store {} {IN_USE}; stop that process or give this one its own data \
                 directory",
                    path.display()
                )),
                other => storage(format!("cannot open {}: {other}", path.display())),
            })?;
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(JOBS).map_err(storage)?;
        {
            // maps written before write times were kept: count them as written now
            let delivered = txn.open_table(DELIVERED).map_err(storage)?;
            let mut delivered_at = txn.open_table(DELIVERED_AT).map_err(storage)?;
            let mut missing = Vec::new();
            for entry in delivered.iter().map_err(storage)? {
                let (k, _) = entry.map_err(storage)?;
                let key = k.value().to_owned();
                if delivered_at.get(key.as_str()).map_err(storage)?.is_none() {
                    missing.push(key);
                }
            }
            let now = now_ms();
            for key in missing {
                delivered_at.insert(key.as_str(), now).map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)?;
        let index = Index::load(&db)?;
        let (writes, changes) = std::sync::mpsc::channel();
        let inner = Arc::new(Inner {
            db,
            path,
            index: Mutex::new(index),
            writes,
        });
        let writer = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || write_loop(writer, changes))
            .map_err(|e| storage(format!("cannot start the writer thread: {e}")))?;
        Ok(EmbeddedStore {
            inner,
            delivered_ttl: super::DELIVERED_TTL,
        })
    }

    /// How long a coalesce key's delivered map is kept after its last write (default
    /// [`DELIVERED_TTL`](super::DELIVERED_TTL)); applies to this handle and its clones.
    pub fn with_delivered_ttl(mut self, ttl: Duration) -> EmbeddedStore {
        self.delivered_ttl = ttl;
        self
    }

    /// Path of the store's file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Run one state change: `f` checks first and returns errors before touching the index, then
    /// changes the index and the records; the change is committed durably before this returns.
    ///
    /// Group commit: a durable commit costs an fsync, so one transaction per change would bound
    /// the store at the disk's fsync rate. Instead changes go to one writer thread, which runs
    /// every change waiting for it in one transaction and commits once; changes that arrive while
    /// an fsync is in progress ride on the next one. A caller is answered only after the commit
    /// that holds its change.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Index, &mut Tx<'_>, i64) -> StoreResult<Done<T>> + Send + 'static,
    {
        let (answer, outcome) = tokio::sync::oneshot::channel::<StoreResult<T>>();
        let change: PendingWrite = Box::new(move |idx, tx, now| match f(idx, tx, now) {
            Ok(Done::Commit(v)) => Applied::Wrote(Box::new(move |committed| {
                let _ = answer.send(committed.map(|()| v));
            })),
            Ok(Done::Skip(v)) => Applied::Untouched(Box::new(move || {
                let _ = answer.send(Ok(v));
            })),
            Err(e @ (StoreError::Unavailable(_) | StoreError::Corrupt(_))) => {
                Applied::Broken(Box::new(move || {
                    let _ = answer.send(Err(e));
                }))
            }
            Err(e) => Applied::Untouched(Box::new(move || {
                let _ = answer.send(Err(e));
            })),
        });
        self.inner
            .writes
            .send(change)
            .map_err(|_| storage("the writer thread has stopped"))?;
        outcome
            .await
            .map_err(|_| storage("the store dropped a change without answering"))?
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadOnlyTable<u128, &'static str>, &Database) -> StoreResult<T>
            + Send
            + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let txn = inner.db.begin_read().map_err(storage)?;
            let jobs = txn.open_table(JOBS).map_err(storage)?;
            f(&jobs, &inner.db)
        })
        .await
        .map_err(|e| storage(format!("store task failed: {e}")))?
    }

    /// Operator transitions (`retry`, `cancel`) share their checks.
    async fn transition(
        &self,
        id: JobId,
        allowed: fn(JobState) -> bool,
        apply: fn(&mut Index, &mut Tx<'_>, &mut Stored, i64) -> StoreResult<()>,
    ) -> StoreResult<JobRecord> {
        self.write(move |idx, tx, now| {
            let mut s = tx.get(id)?.ok_or(StoreError::NotFound)?;
            if !allowed(s.record.state) {
                return Err(StoreError::InvalidState {
                    state: s.record.state,
                });
            }
            apply(idx, tx, &mut s, now)?;
            tx.put(&s)?;
            Ok(Done::Commit(s.record))
        })
        .await
    }
}
