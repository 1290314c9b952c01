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
//!
//! # Faults
//!
//! - Opening refuses an existing file that is empty (zero bytes) or that redb cannot read, with
//!   one line naming the file and what to do: it never initialises a new store over it, since
//!   that would silently drop every acknowledged job. Only a missing file starts a new store.
//! - After an I/O error (a full disk, an unwritable file) redb refuses every later operation of
//!   that database. The store then closes it and reopens the file before the next write (and
//!   on the next readiness probe), rebuilding its in-memory index from the file: once the cause
//!   is gone, writes work again without a restart. Until then every write fails and
//!   [`ping`](super::JobStore::ping) fails, so `/readyz` is not ready. A write whose commit
//!   failed is [`StoreError::OutcomeUnknown`] (redb's last step, writing and syncing the commit
//!   slot, may have reached the disk: the API answers `store_outcome_unknown`); a write refused
//!   before its commit (the file closed, not reopened yet) is `Unavailable`, nothing stored.

mod index;
mod lease;
mod store;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{JobId, JobRecord, JobState, StoreError, StoreResult};
use index::Index;
use writer::{Applied, PendingWrite, write_loop};

/// The store's file inside the data directory.
pub const FILE_NAME: &str = "jobs.redb";

/// Whether `err` is the refusal to open a store file another process (or another store object in
/// this process) holds open (redb's [`redb::DatabaseError::DatabaseAlreadyOpen`]).
pub fn is_in_use(err: &StoreError) -> bool {
    matches!(err, StoreError::InUse(_))
}

/// Job id (as u128, which sorts like the UUID) -> JSON of [`Stored`].
const JOBS: TableDefinition<u128, &str> = TableDefinition::new("jobs");
/// Coalesce key -> JSON object of the values last delivered.
const DELIVERED: TableDefinition<&str, &str> = TableDefinition::new("delivered");
/// Coalesce key -> when its delivered map was last written (ms), for expiry.
const DELIVERED_AT: TableDefinition<&str, i64> = TableDefinition::new("delivered_at");
/// `"probe"` -> when a readiness probe last wrote (ms): a write that proves writes work again.
const PROBE: TableDefinition<&str, i64> = TableDefinition::new("probe");
/// Saved states (`JobStore::state`): key -> value.
const STATE: TableDefinition<&str, &str> = TableDefinition::new("state");

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
    /// `None` while closed after an I/O error; reopened before the next write or probe.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    index: Mutex<Index>,
    /// To the writer thread, which group-commits state changes (see [`EmbeddedStore::write`]).
    writes: std::sync::mpsc::Sender<PendingWrite>,
    /// Why the last write (or reopen) failed; `None` once one succeeds.
    failing: Mutex<Option<String>>,
}

impl Inner {
    /// Runs `f` with the open database; `Unavailable` while it is closed after an I/O error.
    fn with_db<T>(&self, f: impl FnOnce(&Database) -> StoreResult<T>) -> StoreResult<T> {
        let db = self.db.read();
        match db.as_ref() {
            Some(db) => f(db),
            None => Err(storage(self.failure().unwrap_or_else(|| {
                format!("{} is closed after an I/O error", self.path.display())
            }))),
        }
    }

    fn failure(&self) -> Option<String> {
        self.failing.lock().clone()
    }

    /// Records that a write failed: the database is closed (redb refuses every later operation
    /// after an I/O error) and reopened before the next write.
    fn failed(&self, why: String) {
        let first = self.failing.lock().replace(why.clone()).is_none();
        if first {
            tracing::error!(file = %self.path.display(), error = %why, "the embedded job store cannot write; writes are refused until it can");
        } else {
            tracing::debug!(file = %self.path.display(), error = %why, "the embedded job store still cannot write");
        }
        *self.db.write() = None;
    }

    /// Reopens a database closed after an I/O error and rebuilds `idx` from the file. The caller
    /// holds the index lock.
    fn reopen_if_closed(&self, idx: &mut Index) -> StoreResult<()> {
        if self.db.read().is_some() {
            return Ok(());
        }
        let mut slot = self.db.write();
        if slot.is_none() {
            let db = open_file(&self.path, false)?;
            *idx = quietly_catching_panics(|| Index::load(&db))
                .map_err(|e| damaged(&self.path, &e))??;
            *slot = Some(db);
            tracing::info!(file = %self.path.display(), "the embedded job store is open again");
        }
        Ok(())
    }
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

/// Creates the store's file (readable and writable by its owner only) when there is none.
/// Returns whether it was created: only then may an empty file be taken as a new store.
fn create_if_missing(path: &Path) -> StoreResult<bool> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(storage(format!("cannot create {}: {e}", path.display()))),
    }
}

/// Opens the store's file with redb. A file this call did not just create (`new`) must hold a
/// store: an empty one is refused, never initialised (that would drop every job it held).
fn open_file(path: &Path, new: bool) -> StoreResult<Database> {
    if !new {
        match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 => {
                return Err(StoreError::Corrupt(format!(
                    "the job store file {} is empty (0 bytes), so its jobs are gone; the gateway \
                     does not start a new store over it: restore the file from a backup, or \
                     delete it to start with an empty store",
                    path.display()
                )));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(storage(format!(
                    "the job store file {} cannot be read: {e}; restore it from a backup (a \
                     missing file is only created at start)",
                    path.display()
                )));
            }
        }
    }
    let opened = quietly_catching_panics(|| {
        Database::builder()
            .set_cache_size(PAGE_CACHE_BYTES)
            .create(path)
    })
    .map_err(|panic| damaged(path, &panic))?;
    opened.map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(format!(
            "the job store {} is already in use by another gateway process; stop that \
                 process or give this one its own data directory",
            path.display()
        )),
        redb::DatabaseError::Storage(redb::StorageError::Io(e))
            if e.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            storage(format!(
                "cannot open the job store file {}: {e}; give the gateway's user read and \
                     write access to it",
                path.display()
            ))
        }
        other => damaged(path, &other.to_string()),
    })
}

thread_local! {
    /// Set while this thread runs [`quietly_catching_panics`].
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into `Err(its message)` without printing it. redb asserts on some
/// damaged files (one cut short panics on its length check) instead of returning an error; an
/// operator must get one line naming the file, not a backtrace, and a store reopening itself
/// must not lose its writer thread. The process's panic hook is wrapped once, to stay silent
/// only on a thread inside this function.
fn quietly_catching_panics<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET_PANICS.with(|q| q.set(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(false));
    outcome.map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "redb panicked".to_string());
        format!("redb: {message}")
    })
}

/// The one-line refusal of a file redb (or the store) cannot read.
fn damaged(path: &Path, cause: &str) -> StoreError {
    let cause = cause.replace('\n', " ");
    StoreError::Corrupt(format!(
        "the job store file {} is damaged or not a job store ({cause}); the gateway does not \
         start over it: restore it from a backup, or move it away to start with an empty store \
         (its jobs are then lost)",
        path.display()
    ))
}

/// Makes sure the tables exist, dates delivered maps written before their write times were
/// kept, and loads the index.
fn prepare(db: &Database) -> StoreResult<Index> {
    let txn = db.begin_write().map_err(storage)?;
    txn.open_table(JOBS).map_err(storage)?;
    txn.open_table(PROBE).map_err(storage)?;
    txn.open_table(STATE).map_err(storage)?;
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
    Index::load(db)
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
    probe: redb::Table<'t, &'static str, i64>,
    state: redb::Table<'t, &'static str, &'static str>,
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
        let new = create_if_missing(&path)?;
        let db = open_file(&path, new)?;
        let index = quietly_catching_panics(|| prepare(&db))
            .and_then(|prepared| prepared.map_err(|e| e.to_string()))
            .map_err(|e| damaged(&path, &e))?;
        let (writes, changes) = std::sync::mpsc::channel();
        let inner = Arc::new(Inner {
            db: RwLock::new(Some(db)),
            path,
            index: Mutex::new(index),
            writes,
            failing: Mutex::new(None),
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
            inner.with_db(|db| {
                let txn = db.begin_read().map_err(storage)?;
                let jobs = txn.open_table(JOBS).map_err(storage)?;
                f(&jobs, db)
            })
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
