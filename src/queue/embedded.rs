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

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    COALESCE_FIELD, Completion, DeliveryLimits, EnqueueOutcome, JobFilter, JobId, JobPage,
    JobRecord, JobState, JobStore, LeaseResult, NewJob, StoreError, StoreResult,
};

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

/// The in-memory queue structures, derived from the records.
#[derive(Default)]
struct Index {
    lines: HashMap<String, VecDeque<JobId>>,
    ready: BTreeSet<(i64, JobId)>,
    ready_at: HashMap<JobId, i64>,
    leases: BTreeSet<(i64, JobId)>,
    lease_at: HashMap<JobId, i64>,
    idem: HashMap<(String, String), JobId>,
    terminal: BTreeSet<(i64, JobId)>,
    counts: BTreeMap<JobState, u64>,
    /// The earliest time (microseconds) the next lease may start, for `max_per_second`: starts
    /// are spaced evenly with no burst, as in the Redis backend.
    next_start_us: i64,
    seq: u64,
}

impl Index {
    fn add_ready(&mut self, id: JobId, due: i64) {
        self.remove_ready(id);
        self.ready.insert((due, id));
        self.ready_at.insert(id, due);
    }

    fn remove_ready(&mut self, id: JobId) {
        if let Some(due) = self.ready_at.remove(&id) {
            self.ready.remove(&(due, id));
        }
    }

    fn add_lease(&mut self, id: JobId, until: i64) {
        self.remove_lease(id);
        self.leases.insert((until, id));
        self.lease_at.insert(id, until);
    }

    fn remove_lease(&mut self, id: JobId) {
        if let Some(until) = self.lease_at.remove(&id) {
            self.leases.remove(&(until, id));
        }
    }

    fn count(&mut self, state: JobState, delta: i64) {
        let n = self.counts.entry(state).or_insert(0);
        *n = n.saturating_add_signed(delta);
    }

    fn load(db: &Database) -> StoreResult<Index> {
        let mut idx = Index::default();
        let txn = db.begin_read().map_err(storage)?;
        let jobs = txn.open_table(JOBS).map_err(storage)?;
        let mut pending: Vec<(u64, Stored)> = Vec::new();
        for entry in jobs.iter().map_err(storage)? {
            let (_, v) = entry.map_err(storage)?;
            let s = decode(v.value())?;
            let r = &s.record;
            idx.seq = idx.seq.max(s.seq);
            idx.count(r.state, 1);
            if let Some(key) = &r.idempotency_key {
                idx.idem.insert((r.site.clone(), key.clone()), r.id);
            }
            if r.state.is_terminal() {
                let at = s
                    .finished_at
                    .unwrap_or_else(|| r.updated_at.timestamp_millis());
                idx.terminal.insert((at, r.id));
            } else {
                if r.state == JobState::Running {
                    let until = r.lease_until.map(|t| t.timestamp_millis()).unwrap_or(0);
                    idx.add_lease(r.id, until);
                }
                pending.push((s.seq, s));
            }
        }
        pending.sort_by_key(|(seq, _)| *seq);
        for (_, s) in &pending {
            idx.lines
                .entry(s.record.object_key.clone())
                .or_default()
                .push_back(s.record.id);
        }
        let by_id: HashMap<JobId, &Stored> =
            pending.iter().map(|(_, s)| (s.record.id, s)).collect();
        let heads: Vec<JobId> = idx
            .lines
            .values()
            .filter_map(|l| l.front().copied())
            .collect();
        for head in heads {
            let r = &by_id[&head].record;
            if matches!(r.state, JobState::Queued | JobState::Retrying) {
                let due = r.next_attempt_at.map(|t| t.timestamp_millis()).unwrap_or(0);
                idx.add_ready(head, due);
            }
        }
        Ok(idx)
    }
}

struct Inner {
    db: Database,
    path: PathBuf,
    index: Mutex<Index>,
    /// To the writer thread, which group-commits state changes (see [`EmbeddedStore::write`]).
    writes: std::sync::mpsc::Sender<PendingWrite>,
}

/// The most changes one group transaction takes.
const MAX_GROUP: usize = 1024;

/// One state change, type-erased: it runs against the index and the open transaction and says
/// how to answer its caller once the transaction's fate is known.
type PendingWrite = Box<dyn FnOnce(&mut Index, &mut Tx<'_>, i64) -> Applied + Send>;

/// What a state change did inside a group transaction.
enum Applied {
    /// It wrote: answer after the commit, with the commit's outcome.
    Wrote(Box<dyn FnOnce(StoreResult<()>) + Send>),
    /// It wrote nothing (a refusal or a no-op): answer whatever happens to the transaction.
    Untouched(Box<dyn FnOnce() + Send>),
    /// It failed part way (storage error): the transaction and the index can no longer be trusted.
    Broken(Box<dyn FnOnce() + Send>),
}

impl Inner {
    /// Runs a group of changes in one write transaction and commits once. Returns the answers
    /// to give, which the writer gives only after letting go of the store (see [`write_loop`]).
    fn commit(&self, batch: Vec<PendingWrite>) -> Vec<Answer> {
        let mut idx = self.index.lock();
        let txn = match self.db.begin_write() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "the embedded store cannot begin a transaction");
                // Dropping an unrun change drops its answer channel: its caller gets an
                // `Unavailable` error and nothing was changed.
                drop(batch);
                return Vec::new();
            }
        };
        let mut wrote = Vec::new();
        let mut answers: Vec<Answer> = Vec::new();
        let mut broken = false;
        let opened = (|| -> StoreResult<()> {
            let mut tx = Tx {
                jobs: txn.open_table(JOBS).map_err(storage)?,
                delivered: txn.open_table(DELIVERED).map_err(storage)?,
                delivered_at: txn.open_table(DELIVERED_AT).map_err(storage)?,
            };
            for change in batch {
                match change(&mut idx, &mut tx, now_ms()) {
                    Applied::Wrote(answer) => wrote.push(answer),
                    Applied::Untouched(answer) => answers.push(answer),
                    Applied::Broken(answer) => {
                        broken = true;
                        answers.push(answer);
                    }
                }
            }
            Ok(())
        })();
        let committed = match opened {
            Err(e) => Err(e.to_string()),
            Ok(()) if broken => Err("a change failed part way".to_string()),
            Ok(()) if wrote.is_empty() => txn.abort().map_err(|e| e.to_string()),
            Ok(()) => txn.commit().map_err(|e| format!("commit failed: {e}")),
        };
        if committed.is_err() {
            // The index may hold changes the file does not: rebuild it from the file.
            if let Ok(fresh) = Index::load(&self.db) {
                *idx = fresh;
            }
        }
        for answer in wrote {
            let outcome = committed.clone().map_err(storage);
            answers.push(Box::new(move || answer(outcome)));
        }
        answers
    }
}

/// A caller's answer, ready to be sent.
type Answer = Box<dyn FnOnce() + Send>;

/// The writer thread: takes the first waiting change, everything else already waiting (up to
/// [`MAX_GROUP`]), and commits them together. It ends when the store is dropped (the channel
/// closes), holding the store only while it commits so the file is released on drop.
fn write_loop(store: std::sync::Weak<Inner>, changes: std::sync::mpsc::Receiver<PendingWrite>) {
    while let Ok(first) = changes.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match changes.try_recv() {
                Ok(change) => batch.push(change),
                Err(_) => break,
            }
        }
        let Some(inner) = store.upgrade() else {
            return;
        };
        let answers = inner.commit(batch);
        // Let go of the store before answering: a caller that drops the store after its answer
        // must find the file released.
        drop(inner);
        for answer in answers {
            answer();
        }
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

/// The spacing of delivery starts for `max_per_second`, and whether a late start keeps the grid.
/// Mirrors `lease.lua`: below 20 per second, starts are 1/rate apart and the grid restarts at each
/// start; from 20 on, a late start keeps the grid and the spacing is 1/(rate - 1), so that any
/// one-second window still holds at most `rate` starts. Both leave 10 ms a second for the calls'
/// arrival at Puhuri to jitter.
fn start_spacing_us(rate: u32) -> (i64, bool) {
    let keep_grid = rate >= 20;
    let per_second = if keep_grid { rate - 1 } else { rate };
    (i64::from(1_010_000_u32.div_ceil(per_second)), keep_grid)
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
}

fn set_state(idx: &mut Index, s: &mut Stored, state: JobState, now: i64) {
    if s.record.state != state {
        idx.count(s.record.state, -1);
        idx.count(state, 1);
    }
    s.record.state = state;
    s.record.updated_at = time(now);
}

/// Put the head of an object's line in the ready set if it is pending.
fn promote_head(idx: &mut Index, tx: &Tx<'_>, object_key: &str, now: i64) -> StoreResult<()> {
    let Some(head) = idx.lines.get(object_key).and_then(|l| l.front().copied()) else {
        return Ok(());
    };
    if idx.ready_at.contains_key(&head) {
        return Ok(());
    }
    let s = tx.must(head)?;
    if matches!(s.record.state, JobState::Queued | JobState::Retrying) {
        let due = s
            .record
            .next_attempt_at
            .map(|t| t.timestamp_millis())
            .unwrap_or(now);
        idx.add_ready(head, due);
    }
    Ok(())
}

fn leave_line(
    idx: &mut Index,
    tx: &Tx<'_>,
    id: JobId,
    object_key: &str,
    now: i64,
) -> StoreResult<()> {
    if let Some(line) = idx.lines.get_mut(object_key) {
        line.retain(|x| *x != id);
        if line.is_empty() {
            idx.lines.remove(object_key);
        }
    }
    idx.remove_ready(id);
    idx.remove_lease(id);
    promote_head(idx, tx, object_key, now)
}

/// Terminal bookkeeping (the caller has set the terminal state and stores the record).
fn finish(idx: &mut Index, s: &mut Stored, now: i64) {
    s.finished_at = Some(now);
    s.record.worker = None;
    s.record.lease_until = None;
    s.record.next_attempt_at = None;
    idx.terminal.insert((now, s.record.id));
}

fn is_pending(state: JobState) -> bool {
    matches!(state, JobState::Queued | JobState::Retrying)
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

/// Collects an absorbed job's usages, in line order: a later job's values replace an earlier's.
fn absorb_usages(
    absorbed: &mut Option<serde_json::Map<String, serde_json::Value>>,
    older: &serde_json::Value,
) {
    if let Some(old) = older.get(COALESCE_FIELD).and_then(|u| u.as_object()) {
        absorbed
            .get_or_insert_with(serde_json::Map::new)
            .extend(old.clone());
    }
}

/// The new job's usages over the absorbed ones: values the new job does not carry are kept.
fn merge_usages(
    absorbed: Option<serde_json::Map<String, serde_json::Value>>,
    newer: &mut serde_json::Value,
) {
    let (Some(mut merged), Some(payload)) = (absorbed, newer.as_object_mut()) else {
        return;
    };
    if let Some(new) = payload.get(COALESCE_FIELD).and_then(|u| u.as_object()) {
        merged.extend(new.clone());
    }
    payload.insert(COALESCE_FIELD.to_owned(), serde_json::Value::Object(merged));
}

impl EmbeddedStore {
    /// Leases the earliest due line head: `lease` without the delivered values.
    async fn lease_job(
        &self,
        worker: &str,
        lease_for: Duration,
        limits: DeliveryLimits,
    ) -> StoreResult<LeaseResult> {
        let worker = worker.to_owned();
        let lease_ms = dur_ms(lease_for);
        self.write(move |idx, tx, now| {
            let mut found = None;
            while let Some(&(due, id)) = idx.ready.first() {
                if due > now {
                    break;
                }
                let s = tx.must(id)?;
                if is_pending(s.record.state) {
                    found = Some(s);
                    break;
                }
                idx.remove_ready(id); // stale; should not happen
            }
            let Some(mut s) = found else {
                let next_due_in = idx
                    .ready
                    .first()
                    .map(|&(due, _)| Duration::from_millis((due - now).max(0) as u64));
                return Ok(Done::Skip(LeaseResult::Idle { next_due_in }));
            };
            if limits.max_in_flight > 0 && idx.leases.len() >= limits.max_in_flight as usize {
                return Ok(Done::Skip(LeaseResult::Throttled {
                    retry_in: Duration::from_millis(IN_FLIGHT_RETRY_MS as u64),
                }));
            }
            if limits.max_per_second > 0 {
                let now_us = Utc::now().timestamp_micros();
                if idx.next_start_us > now_us {
                    let wait_ms = (idx.next_start_us - now_us + 999) / 1000;
                    return Ok(Done::Skip(LeaseResult::Throttled {
                        retry_in: Duration::from_millis(wait_ms.max(1) as u64),
                    }));
                }
                let (spacing_us, keep_grid) = start_spacing_us(limits.max_per_second);
                let late = now_us - idx.next_start_us;
                let slot = if keep_grid && late < spacing_us {
                    idx.next_start_us
                } else {
                    now_us
                };
                idx.next_start_us = slot + spacing_us;
            }
            let id = s.record.id;
            let until = now.saturating_add(lease_ms);
            idx.remove_ready(id);
            idx.add_lease(id, until);
            s.record.worker = Some(worker);
            s.record.lease_until = Some(time(until));
            s.record.attempts += 1;
            s.record.next_attempt_at = None;
            set_state(idx, &mut s, JobState::Running, now);
            tx.put(&s)?;
            Ok(Done::Commit(LeaseResult::Leased(s.record)))
        })
        .await
    }
}

#[async_trait]
impl JobStore for EmbeddedStore {
    async fn enqueue(&self, mut job: NewJob) -> StoreResult<EnqueueOutcome> {
        let id = Uuid::now_v7();
        self.write(move |idx, tx, now| {
            if let Some(i) = &job.idempotency {
                let key = (job.site.clone(), i.key.clone());
                let known = match idx.idem.get(&key).copied() {
                    Some(existing) => tx.get(existing)?.map(|s| (existing, s)),
                    None => None,
                };
                if let Some((existing, s)) = known {
                    if s.fingerprint.as_deref() == Some(i.fingerprint.as_str()) {
                        return Ok(Done::Skip(EnqueueOutcome::Existing(s.record)));
                    }
                    return Err(StoreError::IdempotencyConflict { existing });
                }
            }
            let mut payload = std::mem::take(&mut job.payload);
            let mut absorbed = None;
            // coalescing: absorb pending jobs of this object with the same key
            if let Some(ck) = &job.coalesce_key {
                let line: Vec<JobId> = idx
                    .lines
                    .get(&job.object_key)
                    .map(|l| l.iter().copied().collect())
                    .unwrap_or_default();
                for old in line {
                    let mut s = tx.must(old)?;
                    if s.record.coalesce_key.as_ref() != Some(ck) || !is_pending(s.record.state) {
                        continue;
                    }
                    absorb_usages(&mut absorbed, &s.record.payload);
                    if let Some(l) = idx.lines.get_mut(&job.object_key) {
                        l.retain(|x| *x != old);
                    }
                    idx.remove_ready(old);
                    s.record.superseded_by = Some(id);
                    set_state(idx, &mut s, JobState::Superseded, now);
                    finish(idx, &mut s, now);
                    tx.put(&s)?;
                }
            }
            merge_usages(absorbed, &mut payload);
            idx.seq += 1;
            let s = Stored {
                record: JobRecord::queued(id, &job, payload, time(now)),
                fingerprint: job.idempotency.as_ref().map(|i| i.fingerprint.clone()),
                seq: idx.seq,
                finished_at: None,
            };
            tx.put(&s)?;
            if let Some(i) = job.idempotency {
                idx.idem.insert((job.site, i.key), id);
            }
            idx.count(JobState::Queued, 1);
            idx.lines
                .entry(job.object_key.clone())
                .or_default()
                .push_back(id);
            promote_head(idx, tx, &job.object_key, now)?;
            Ok(Done::Commit(EnqueueOutcome::Created(s.record)))
        })
        .await
    }

    async fn get(&self, id: JobId) -> StoreResult<Option<JobRecord>> {
        self.read(
            move |jobs, _| match jobs.get(id.as_u128()).map_err(storage)? {
                Some(v) => Ok(Some(decode(v.value())?.record)),
                None => Ok(None),
            },
        )
        .await
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        let filter = filter.clone();
        let limit = match filter.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        self.read(move |jobs, _| {
            let range = match filter.before {
                Some(b) => jobs.range(..b.as_u128()),
                None => jobs.range::<u128>(..),
            }
            .map_err(storage)?;
            let mut out = Vec::new();
            let mut last = None;
            for (scanned, entry) in range.rev().enumerate() {
                if scanned >= LIST_SCAN_CAP {
                    // the page may be short; continue after the last id scanned
                    return Ok(JobPage {
                        jobs: out,
                        next_cursor: last,
                    });
                }
                let (k, v) = entry.map_err(storage)?;
                last = Some(Uuid::from_u128(k.value()));
                let r = decode(v.value())?.record;
                if filter.site.as_ref().is_some_and(|s| *s != r.site)
                    || filter.state.is_some_and(|s| s != r.state)
                    || filter.operation.as_ref().is_some_and(|o| *o != r.operation)
                {
                    continue;
                }
                if out.len() == limit {
                    let next_cursor = out.last().map(|j: &JobRecord| j.id);
                    return Ok(JobPage {
                        jobs: out,
                        next_cursor,
                    });
                }
                out.push(r);
            }
            Ok(JobPage {
                jobs: out,
                next_cursor: None,
            })
        })
        .await
    }

    async fn lease(
        &self,
        worker: &str,
        lease_for: Duration,
        limits: DeliveryLimits,
    ) -> StoreResult<LeaseResult> {
        let leased = self.lease_job(worker, lease_for, limits).await?;
        // What the Redis backend reads in its lease script; here a second read of this process's
        // own file, after the lease committed (only this lease-holder delivers for the key now).
        if let LeaseResult::Leased(mut job) = leased {
            if let Some(ck) = job.coalesce_key.clone() {
                job.delivered = Some(self.delivered(&ck).await?);
            }
            return Ok(LeaseResult::Leased(job));
        }
        Ok(leased)
    }

    async fn heartbeat(&self, id: JobId, worker: &str, lease_for: Duration) -> StoreResult<bool> {
        let worker = worker.to_owned();
        let lease_ms = dur_ms(lease_for);
        self.write(move |idx, tx, now| {
            let Some(mut s) = tx.get(id)? else {
                return Ok(Done::Skip(false));
            };
            if s.record.state != JobState::Running || s.record.worker.as_ref() != Some(&worker) {
                return Ok(Done::Skip(false));
            }
            let until = now.saturating_add(lease_ms);
            idx.add_lease(id, until);
            s.record.lease_until = Some(time(until));
            s.record.updated_at = time(now);
            tx.put(&s)?;
            Ok(Done::Commit(true))
        })
        .await
    }

    async fn complete(&self, id: JobId, worker: &str, outcome: Completion) -> StoreResult<bool> {
        let worker = worker.to_owned();
        let ttl_ms = dur_ms(self.delivered_ttl);
        self.write(move |idx, tx, now| {
            let Some(mut s) = tx.get(id)? else {
                return Ok(Done::Skip(false));
            };
            if s.record.state != JobState::Running || s.record.worker.as_ref() != Some(&worker) {
                return Ok(Done::Skip(false));
            }
            idx.remove_lease(id);
            let state = match outcome {
                Completion::Retry { at, status, error } => {
                    let at_ms = at.timestamp_millis();
                    s.record.last_status = status;
                    s.record.last_error = Some(error);
                    s.record.next_attempt_at = Some(time(at_ms));
                    s.record.worker = None;
                    s.record.lease_until = None;
                    set_state(idx, &mut s, JobState::Retrying, now);
                    // still the head of its line: back in the ready set, due at `at`
                    idx.add_ready(id, at_ms);
                    tx.put(&s)?;
                    return Ok(Done::Commit(true));
                }
                Completion::Succeeded {
                    status,
                    result,
                    delivered,
                } => {
                    s.record.last_status = status;
                    s.record.last_error = None;
                    s.record.result = Some(result);
                    if let Some(ck) = s
                        .record
                        .coalesce_key
                        .as_ref()
                        .filter(|_| !delivered.is_empty())
                    {
                        let expired = tx
                            .delivered_at
                            .get(ck.as_str())
                            .map_err(storage)?
                            .is_some_and(|at| at.value() <= now.saturating_sub(ttl_ms));
                        let mut map: BTreeMap<String, String> =
                            match tx.delivered.get(ck.as_str()).map_err(storage)? {
                                Some(_) if expired => BTreeMap::new(),
                                Some(v) => serde_json::from_str(v.value()).map_err(|e| {
                                    StoreError::Corrupt(format!("embedded store: {e}"))
                                })?,
                                None => BTreeMap::new(),
                            };
                        map.extend(delivered);
                        let json = serde_json::to_string(&map).expect("a map serializes");
                        tx.delivered
                            .insert(ck.as_str(), json.as_str())
                            .map_err(storage)?;
                        tx.delivered_at.insert(ck.as_str(), now).map_err(storage)?;
                    }
                    JobState::Succeeded
                }
                Completion::Failed { status, error } => {
                    s.record.last_status = status;
                    s.record.last_error = Some(error);
                    JobState::Failed
                }
                Completion::Dead { status, error } => {
                    s.record.last_status = status;
                    s.record.last_error = Some(error);
                    JobState::Dead
                }
            };
            set_state(idx, &mut s, state, now);
            finish(idx, &mut s, now);
            tx.put(&s)?;
            leave_line(idx, tx, id, &s.record.object_key, now)?;
            Ok(Done::Commit(true))
        })
        .await
    }

    async fn release(&self, id: JobId, worker: &str) -> StoreResult<bool> {
        let worker = worker.to_owned();
        self.write(move |idx, tx, now| {
            let Some(mut s) = tx.get(id)? else {
                return Ok(Done::Skip(false));
            };
            if s.record.state != JobState::Running || s.record.worker.as_ref() != Some(&worker) {
                return Ok(Done::Skip(false));
            }
            idx.remove_lease(id);
            s.record.attempts = s.record.attempts.saturating_sub(1);
            s.record.worker = None;
            s.record.lease_until = None;
            s.record.next_attempt_at = None;
            let state = if s.record.attempts > 0 {
                JobState::Retrying
            } else {
                JobState::Queued
            };
            set_state(idx, &mut s, state, now);
            idx.add_ready(id, now);
            tx.put(&s)?;
            Ok(Done::Commit(true))
        })
        .await
    }

    async fn reclaim_expired(&self) -> StoreResult<u32> {
        self.write(move |idx, tx, now| {
            let expired: Vec<JobId> = idx
                .leases
                .iter()
                .take_while(|(until, _)| *until <= now)
                .map(|(_, id)| *id)
                .collect();
            let mut n = 0;
            for id in expired {
                idx.remove_lease(id);
                let Some(mut s) = tx.get(id)? else { continue };
                if s.record.state != JobState::Running {
                    continue;
                }
                s.record.last_error = Some(format!(
                    "the lease of worker {} expired",
                    s.record.worker.as_deref().unwrap_or("?")
                ));
                s.record.worker = None;
                s.record.lease_until = None;
                s.record.next_attempt_at = None;
                set_state(idx, &mut s, JobState::Retrying, now);
                idx.add_ready(id, now);
                tx.put(&s)?;
                n += 1;
            }
            Ok(if n > 0 {
                Done::Commit(n)
            } else {
                Done::Skip(0)
            })
        })
        .await
    }

    async fn retry(&self, id: JobId) -> StoreResult<JobRecord> {
        self.transition(
            id,
            |st| matches!(st, JobState::Failed | JobState::Dead),
            |idx, tx, s, now| {
                let id = s.record.id;
                if let Some(at) = s.finished_at.take() {
                    idx.terminal.remove(&(at, id));
                }
                s.record.attempts = 0;
                s.record.worker = None;
                s.record.lease_until = None;
                s.record.next_attempt_at = None;
                set_state(idx, s, JobState::Queued, now);
                idx.seq += 1;
                s.seq = idx.seq;
                // at the back of its object's line
                tx.put(s)?;
                idx.lines
                    .entry(s.record.object_key.clone())
                    .or_default()
                    .push_back(id);
                promote_head(idx, tx, &s.record.object_key, now)
            },
        )
        .await
    }

    async fn cancel(&self, id: JobId) -> StoreResult<JobRecord> {
        self.transition(id, is_pending, |idx, tx, s, now| {
            set_state(idx, s, JobState::Canceled, now);
            finish(idx, s, now);
            tx.put(s)?;
            leave_line(idx, tx, s.record.id, &s.record.object_key, now)
        })
        .await
    }

    async fn delivered(&self, coalesce_key: &str) -> StoreResult<BTreeMap<String, String>> {
        let ck = coalesce_key.to_owned();
        let ttl_ms = dur_ms(self.delivered_ttl);
        self.read(move |_, db| {
            let txn = db.begin_read().map_err(storage)?;
            let at = txn.open_table(DELIVERED_AT).map_err(storage)?;
            let cutoff = now_ms().saturating_sub(ttl_ms);
            if at
                .get(ck.as_str())
                .map_err(storage)?
                .is_some_and(|at| at.value() <= cutoff)
            {
                // expired, not yet purged
                return Ok(BTreeMap::new());
            }
            let t = txn.open_table(DELIVERED).map_err(storage)?;
            match t.get(ck.as_str()).map_err(storage)? {
                Some(v) => serde_json::from_str(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("embedded store: {e}"))),
                None => Ok(BTreeMap::new()),
            }
        })
        .await
    }

    async fn purge_terminal(&self, retention: Duration) -> StoreResult<u32> {
        let retention_ms = dur_ms(retention);
        let ttl_ms = dur_ms(self.delivered_ttl);
        self.write(move |idx, tx, now| {
            // delivered maps whose last write is older than their time to live
            let delivered_cutoff = now.saturating_sub(ttl_ms);
            let mut expired = Vec::new();
            for entry in tx.delivered_at.iter().map_err(storage)? {
                let (k, at) = entry.map_err(storage)?;
                if at.value() <= delivered_cutoff {
                    expired.push(k.value().to_owned());
                }
            }
            for ck in &expired {
                tx.delivered.remove(ck.as_str()).map_err(storage)?;
                tx.delivered_at.remove(ck.as_str()).map_err(storage)?;
            }
            let cutoff = now.saturating_sub(retention_ms);
            let old: Vec<(i64, JobId)> = idx
                .terminal
                .iter()
                .take_while(|(at, _)| *at <= cutoff)
                .copied()
                .collect();
            for &(at, id) in &old {
                idx.terminal.remove(&(at, id));
                let Some(s) = tx.get(id)? else { continue };
                idx.count(s.record.state, -1);
                if let Some(key) = s.record.idempotency_key {
                    let k = (s.record.site, key);
                    if idx.idem.get(&k) == Some(&id) {
                        idx.idem.remove(&k);
                    }
                }
                tx.delete(id)?;
            }
            let n = old.len() as u32;
            Ok(if n > 0 || !expired.is_empty() {
                Done::Commit(n)
            } else {
                Done::Skip(0)
            })
        })
        .await
    }

    async fn counts(&self) -> StoreResult<BTreeMap<JobState, u64>> {
        // the index lock is held across commits (fsync): take it off the async threads
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let idx = inner.index.lock();
            JobState::ALL
                .into_iter()
                .map(|s| (s, idx.counts.get(&s).copied().unwrap_or(0)))
                .collect()
        })
        .await
        .map_err(|e| storage(format!("store task failed: {e}")))
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|_, _| Ok(())).await
    }
}
