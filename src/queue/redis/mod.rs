//! Redis backend: the production store, shared by every gateway replica.
//!
//! # Key layout
//! Every key starts with the configured prefix `P` (tests give each case its own prefix, so they can
//! share one redis-server; for Redis Cluster put a hash tag in the prefix, e.g. `{gw}:`, since the
//! scripts derive key names from it).
//!
//! | key                     | type   | holds                                                       |
//! |-------------------------|--------|-------------------------------------------------------------|
//! | `P job:<id>`            | hash   | the job record: the truth (payload as JSON, times in ms)    |
//! | `P obj:<object_key>`    | list   | ids of the object's unfinished jobs, in acceptance order    |
//! | `P ready`               | zset   | ids of pending line heads, score = due time (ms)            |
//! | `P leases`              | zset   | ids of running jobs, score = lease expiry (ms)              |
//! | `P finished`            | list   | `<finish ms>:<id>` of terminal jobs in finish order, purged |
//! |                         |        | from the head (entries of jobs retried since are stale)     |
//! | `P site:<s>`            | zset   | a site's job ids, score 0 so they sort by id (UUIDv7)       |
//! | `P sites`               | set    | every site that queued a job (an admin's list merges them)  |
//!
//! Stores written before `finished` and `sites` existed held the zsets `P terminal` and `P all`
//! instead; purge moves them over (in batches, on its first runs) and they are then gone.
//! | `P idem:<n>:<site>:<k>` | hash   | idempotency key -> job id and request fingerprint           |
//! | `P delivered:<ck>`      | hash   | values last delivered for a coalesce key                    |
//! | `P counts`              | hash   | jobs per state                                              |
//! | `P rate:next`           | string | earliest time (us) the next lease may start, for the rate   |
//!
//! # Why only line heads are in `ready`
//! Jobs of one upstream object must be delivered one at a time and in order. Keeping only the head
//! of each object's line in `ready` makes that a property of the data instead of a check: `lease`
//! takes the earliest due member of `ready` and can never pick a job whose predecessor is still
//! running or waiting. When the head reaches a terminal state it leaves the line and the next id
//! is promoted into `ready` in the same script. A running head is in `leases`, not in `ready`.
//!
//! # Atomicity and time
//! Every state change is one Lua script (the `.lua` files next to this one, each prefixed with
//! `common.lua`), so a crash or a lost connection between two steps cannot lose or duplicate a job.
//! Scripts read the clock with `TIME`, so replicas with skewed clocks still agree on due times and
//! lease expiry. Only reads (`get`, `list`, `delivered`, `counts`) are issued directly from Rust.
//!
//! The payload's `usages` object (see [`COALESCE_FIELD`]) is stored in its own field, so coalescing
//! can merge it with Lua's cjson without re-encoding (and possibly altering) the rest of the payload.
//!
//! # Semantics worth knowing
//! - Delivery limits: `0` means "no limit" for `max_in_flight` and `max_per_second`. In-flight is
//!   the size of `leases` (every replica's running jobs). The rate spaces starts evenly on the
//!   Redis clock with no burst, so that any one-second window, wherever it falls, holds at most
//!   `max_per_second` starts. Below 20 per second the starts are `1/rate` apart, counted from the
//!   previous start. From 20 on, starts follow a grid `1/(rate - 1)` apart that a late start does
//!   not shift: a worker waking a millisecond after its slot would otherwise cost that millisecond
//!   on every start (a quarter of the throughput at 300/s), and a start may fall anywhere in its
//!   slot, so the grid is one slot per second coarser than the rate. Both spacings are stretched
//!   by 1% (10 ms a second), so that jitter between a start and its call's arrival at Puhuri does
//!   not push a window over the limit there either. When the in-flight limit is
//!   reached `lease` suggests retrying in 100 ms; when the rate is, at the next slot.
//! - `lease` does not reclaim expired leases itself: workers call `reclaim_expired` periodically.
//!   Until then a lease past its expiry still belongs to its worker (heartbeat and complete work).
//! - A reclaimed job becomes `retrying` with a `last_error` naming the worker whose lease expired;
//!   `release` gives the attempt back (`queued` again if it was the first).
//! - An operator's `retry` puts the job at the back of its object's line.
//! - Durability is Redis's: an acknowledged job survives a Redis crash only with
//!   `appendonly yes` and `appendfsync always` (`everysec` may lose the last second).
//! - `delivered:<ck>` maps expire [`DELIVERED_TTL`](super::DELIVERED_TTL) after their last
//!   write (`PEXPIRE` in the completion script; see [`RedisStore::with_delivered_ttl`]): coalesce
//!   keys name a month (`usage:<resource>:<YYYY-MM>`) and a map is only useful while that month can
//!   still be reported. Maps written before this expiry existed keep no TTL until written again.
//! - Coalescing merges `usages` with cjson: keep amounts as strings (as the API does), since
//!   cjson re-encodes numbers with 14 significant digits.
//!
//! # Failure behaviour
//! The pool has a wait timeout and every connection a connect and a response timeout, and each call
//! is bounded by an overall deadline, so when Redis is gone every call fails fast with
//! [`StoreError::Unavailable`]. Broken connections fail their recycle check and are replaced, so the
//! same store object works again as soon as Redis is back.
//!
//! Calls made on one thread share one multiplexed connection taken out of the pool: redis-rs
//! pipelines concurrent requests on it, which is what a single-threaded Redis serves best. Getting
//! a pooled connection per call would add the pool's recycle check (an UNWATCH and a PING) to every
//! call, a third of the commands Redis saw under load. One connection per thread rather than per
//! process because each HTTP worker runs on its own thread: a connection made there has its
//! reader and writer task on that thread too, so a request's round trip to Redis never hands off to
//! another thread and back. A call that fails on the connection itself (I/O, timeout, dropped)
//! retires the connections of every thread, and the next call on each takes a fresh one from the
//! pool.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_redis::{Hook, Pool, Runtime};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use super::{
    COALESCE_FIELD, Completion, DeliveryLimits, EnqueueOutcome, JobFilter, JobId, JobPage,
    JobRecord, JobState, JobStore, LeaseResult, NewJob, StoreError, StoreResult,
};

const COMMON: &str = include_str!("common.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

static ENQUEUE: LazyLock<Script> = LazyLock::new(|| script(include_str!("enqueue.lua")));
static LEASE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lease.lua")));
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| script(include_str!("heartbeat.lua")));
static COMPLETE: LazyLock<Script> = LazyLock::new(|| script(include_str!("complete.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| script(include_str!("release.lua")));
static RECLAIM: LazyLock<Script> = LazyLock::new(|| script(include_str!("reclaim.lua")));
static RETRY: LazyLock<Script> = LazyLock::new(|| script(include_str!("retry.lua")));
static CANCEL: LazyLock<Script> = LazyLock::new(|| script(include_str!("cancel.lua")));
static PURGE: LazyLock<Script> = LazyLock::new(|| script(include_str!("purge.lua")));
static LIST: LazyLock<Script> = LazyLock::new(|| script(include_str!("list.lua")));

/// Jobs handled per script run by `reclaim_expired` and `purge_terminal` (keeps each script short).
const BATCH: usize = 500;
/// Upper bound on batches per call, so a call always ends.
const MAX_BATCHES: usize = 1000;
/// Index entries one `list` call inspects at most (a selective filter may return a short page
/// with a cursor to continue).
const LIST_SCAN_CAP: usize = 5000;
/// Page size when the filter asks for 0, and the largest page served.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

/// Connection settings for [`RedisStore::connect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long a call waits for a free connection before failing with `Unavailable`.
    pub wait_timeout: Duration,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// Timeout for one command or script reply (redis-rs defaults to 500 ms).
    pub response_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            pool_size: 16,
            wait_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
        }
    }
}

thread_local! {
    /// Each thread's connection per store (see "Failure behaviour"), by [`RedisStore::id`], with
    /// the store's connection generation it was made in. An entry lives until its generation is
    /// retired or its thread ends.
    static CONNECTIONS: RefCell<HashMap<u64, (u64, MultiplexedConnection)>> = RefCell::default();
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);

/// The Redis job store. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
    /// Names this store's connections in [`CONNECTIONS`]; clones share it.
    id: u64,
    /// Bumped when a call fails on its connection: every thread's older connection is retired.
    generation: Arc<AtomicU64>,
    prefix: String,
    /// How long a delivered map outlives its last write.
    delivered_ttl: Duration,
    /// Overall deadline of one call (waiting for a connection, connecting, replies).
    deadline: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("redis: {what}"))
}

impl RedisStore {
    /// Build the pool. Connections are made on first use, so this succeeds while Redis is down
    /// (calls then fail with `Unavailable` until it is up); it fails on an invalid URL.
    pub async fn connect(
        url: &str,
        key_prefix: &str,
        options: RedisOptions,
    ) -> StoreResult<RedisStore> {
        let response_timeout = options.response_timeout;
        let pool = deadpool_redis::Config::from_url(url)
            .builder()
            .map_err(|e| unavailable(format!("invalid configuration: {e}")))?
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.response_timeout))
            .runtime(Runtime::Tokio1)
            .post_create(Hook::sync_fn(move |conn, _| {
                conn.set_response_timeout(response_timeout);
                Ok(())
            }))
            .build()
            .map_err(|e| unavailable(format!("cannot build the connection pool: {e}")))?;
        Ok(RedisStore {
            pool,
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            generation: Arc::default(),
            prefix: key_prefix.to_owned(),
            delivered_ttl: super::DELIVERED_TTL,
            deadline: options.wait_timeout + options.connect_timeout + options.response_timeout,
        })
    }

    /// How long a coalesce key's delivered map is kept after its last write (default
    /// [`DELIVERED_TTL`](super::DELIVERED_TTL)).
    pub fn with_delivered_ttl(mut self, ttl: Duration) -> RedisStore {
        self.delivered_ttl = ttl;
        self
    }

    /// The key prefix this store uses.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{}", self.prefix, rest)
    }

    /// This thread's connection, taking one out of the pool when there is none.
    async fn connection(&self) -> StoreResult<MultiplexedConnection> {
        let generation = self.generation.load(Ordering::Acquire);
        let current = |m: &HashMap<u64, (u64, MultiplexedConnection)>| {
            m.get(&self.id)
                .filter(|(made_in, _)| *made_in == generation)
                .map(|(_, c)| c.clone())
        };
        if let Some(c) = CONNECTIONS.with_borrow(current) {
            return Ok(c);
        }
        let pooled = self.pool.get().await.map_err(unavailable)?;
        let conn = deadpool_redis::Connection::take(pooled);
        // Another call on this thread may have been quicker: use its connection, drop this one.
        Ok(CONNECTIONS.with_borrow_mut(|m| {
            current(m).unwrap_or_else(|| {
                m.insert(self.id, (generation, conn.clone()));
                conn
            })
        }))
    }

    /// Retires every thread's connection after a failure on a connection itself. Not only this
    /// thread's: a task may resume on another thread than the one whose connection failed, and
    /// such a failure (Redis restarted, failed over, unreachable) breaks them all anyway.
    fn forget_connection(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        CONNECTIONS.with_borrow_mut(|m| m.remove(&self.id));
    }

    /// Run `f` with this thread's connection under the call deadline. If the connection turns
    /// out to be dead (Redis restarted since it was last used), `f` runs once more on a fresh one:
    /// every script is safe to repeat in effect (a repeated enqueue adds a second job with the same
    /// effect; a repeated lease or completion is resolved by lease expiry and the lease check).
    async fn with_conn<T, F, Fut>(&self, f: F) -> StoreResult<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let work = async {
            let conn = self.connection().await?;
            match f(conn).await {
                Ok(v) => Ok(v),
                Err(e) if e.is_connection_dropped() => {
                    self.forget_connection();
                    let conn = self.connection().await?;
                    f(conn).await.map_err(|e| self.connection_failed(e))
                }
                Err(e) => Err(self.connection_failed(e)),
            }
        };
        match tokio::time::timeout(self.deadline, work).await {
            Ok(r) => r,
            Err(_) => {
                self.forget_connection();
                Err(unavailable(format!("no answer within {:?}", self.deadline)))
            }
        }
    }

    /// A whole hash (HGETALL), in whatever shape the caller reads it.
    async fn hash<T: redis::FromRedisValue>(&self, key: String) -> StoreResult<T> {
        self.with_conn(move |mut conn| {
            let key = key.clone();
            async move { conn.hgetall(key).await }
        })
        .await
    }

    /// Maps a failed call, retiring the connections when the failure was a connection's.
    fn connection_failed(&self, e: redis::RedisError) -> StoreError {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
            self.forget_connection();
        }
        unavailable(e)
    }

    async fn run<T: redis::FromRedisValue + Send + 'static>(
        &self,
        script: &'static Script,
        args: Vec<String>,
    ) -> StoreResult<T> {
        let prefix = self.prefix.clone();
        self.with_conn(move |mut conn| {
            let mut inv = script.prepare_invoke();
            inv.arg(&prefix);
            for a in &args {
                inv.arg(a);
            }
            async move { inv.invoke_async::<T>(&mut conn).await }
        })
        .await
    }

    async fn job_by_id(&self, id: JobId) -> StoreResult<Option<JobRecord>> {
        let key = self.key(&format!("job:{id}"));
        let fields: Vec<String> = self.hash(key).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        parse_job(&fields).map(Some)
    }

    /// A script reply `{status, field, value, ...}` with a job hash, or `{status, arg}`.
    fn split_status(reply: Vec<String>) -> StoreResult<(String, Vec<String>)> {
        let mut it = reply.into_iter();
        let status = it.next().ok_or_else(|| corrupt("empty script reply"))?;
        Ok((status, it.collect()))
    }

    fn state_reply(&self, reply: Vec<String>) -> StoreResult<JobRecord> {
        let (status, rest) = Self::split_status(reply)?;
        match status.as_str() {
            "ok" => parse_job(&rest),
            "notfound" => Err(StoreError::NotFound),
            "invalid" => {
                let state = rest
                    .first()
                    .and_then(|s| JobState::parse(s))
                    .ok_or_else(|| corrupt("bad state in reply"))?;
                Err(StoreError::InvalidState { state })
            }
            other => Err(corrupt(format!("unexpected script reply {other:?}"))),
        }
    }
}

fn ms_to_time(v: &str) -> StoreResult<DateTime<Utc>> {
    let ms: i64 = v.parse().map_err(|_| corrupt(format!("bad time {v:?}")))?;
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(format!("bad time {v:?}")))
}

fn parse_job(fields: &[String]) -> StoreResult<JobRecord> {
    if fields.len() % 2 != 0 {
        return Err(corrupt("odd number of hash fields"));
    }
    let m: HashMap<&str, &str> = fields
        .chunks(2)
        .map(|c| (c[0].as_str(), c[1].as_str()))
        .collect();
    let req = |name: &str| -> StoreResult<&str> {
        m.get(name)
            .copied()
            .ok_or_else(|| corrupt(format!("job without {name}")))
    };
    let opt_time = |name: &str| m.get(name).map(|v| ms_to_time(v)).transpose();
    let id = Uuid::parse_str(req("id")?).map_err(|e| corrupt(format!("bad job id: {e}")))?;
    let mut payload: serde_json::Value = serde_json::from_str(req("payload")?)
        .map_err(|e| corrupt(format!("job {id}: bad payload: {e}")))?;
    if let Some(u) = m.get("usages") {
        let usages: serde_json::Value =
            serde_json::from_str(u).map_err(|e| corrupt(format!("job {id}: bad usages: {e}")))?;
        if let Some(obj) = payload.as_object_mut() {
            obj.insert(COALESCE_FIELD.to_owned(), usages);
        }
    }
    let state = JobState::parse(req("state")?)
        .ok_or_else(|| corrupt(format!("job {id}: unknown state")))?;
    Ok(JobRecord {
        id,
        site: req("site")?.to_owned(),
        operation: req("operation")?.to_owned(),
        object_key: req("object_key")?.to_owned(),
        coalesce_key: m.get("coalesce_key").map(|s| s.to_string()),
        payload,
        state,
        attempts: req("attempts")?
            .parse()
            .map_err(|_| corrupt(format!("job {id}: bad attempts")))?,
        created_at: ms_to_time(req("created_at")?)?,
        updated_at: ms_to_time(req("updated_at")?)?,
        next_attempt_at: opt_time("next_attempt_at")?,
        last_status: m.get("last_status").and_then(|s| s.parse().ok()),
        last_error: m.get("last_error").map(|s| s.to_string()),
        result: m
            .get("result")
            .map(|s| serde_json::from_str(s))
            .transpose()
            .map_err(|e| corrupt(format!("job {id}: bad result: {e}")))?,
        superseded_by: m
            .get("superseded_by")
            .map(|s| Uuid::parse_str(s))
            .transpose()
            .map_err(|e| corrupt(format!("job {id}: bad superseded_by: {e}")))?,
        worker: m.get("worker").map(|s| s.to_string()),
        lease_until: opt_time("lease_until")?,
        idempotency_key: m.get("idempotency_key").map(|s| s.to_string()),
        // added by lease.lua to its reply, never stored in the hash
        delivered: m
            .get("__delivered")
            .map(|s| serde_json::from_str(s))
            .transpose()
            .map_err(|e| corrupt(format!("job {id}: bad delivered values: {e}")))?,
    })
}

/// The record of a job enqueue.lua just created, from what the caller sent and the script's short
/// reply `{id, created_at ms, merged usages|''}`: the same record a read of the hash would give,
/// without sending the whole hash back on every accepted request.
fn created_record(id: JobId, mut job: NewJob, reply: &[String]) -> StoreResult<JobRecord> {
    let [reply_id, created_at, merged] = reply else {
        return Err(corrupt("bad enqueue reply"));
    };
    if *reply_id != id.to_string() {
        return Err(corrupt("enqueue replied for another job"));
    }
    let created_at = ms_to_time(created_at)?;
    let mut payload = std::mem::take(&mut job.payload);
    if !merged.is_empty() {
        let usages: serde_json::Value = serde_json::from_str(merged)
            .map_err(|e| corrupt(format!("job {id}: bad usages: {e}")))?;
        if let Some(obj) = payload.as_object_mut() {
            obj.insert(COALESCE_FIELD.to_owned(), usages);
        }
    }
    Ok(JobRecord::queued(id, &job, payload, created_at))
}

/// Split the coalesced `usages` object off the payload (see the module doc).
pub(crate) fn split_usages(payload: &serde_json::Value) -> (serde_json::Value, Option<String>) {
    let mut rest = payload.clone();
    let usages = rest
        .as_object_mut()
        .filter(|o| o.get(COALESCE_FIELD).is_some_and(|u| u.is_object()))
        .and_then(|o| o.remove(COALESCE_FIELD));
    (rest, usages.map(|u| u.to_string()))
}

fn dur_ms(d: Duration) -> String {
    d.as_millis().to_string()
}

fn opt_str(s: Option<&str>) -> String {
    s.unwrap_or("").to_owned()
}

#[async_trait]
impl JobStore for RedisStore {
    async fn enqueue(&self, job: NewJob) -> StoreResult<EnqueueOutcome> {
        let id = Uuid::now_v7();
        let (payload, usages) = split_usages(&job.payload);
        let (ikey, ifp) = match &job.idempotency {
            Some(i) => (i.key.clone(), i.fingerprint.clone()),
            None => (String::new(), String::new()),
        };
        let args = vec![
            id.to_string(),
            job.site.clone(),
            job.operation.clone(),
            job.object_key.clone(),
            opt_str(job.coalesce_key.as_deref()),
            payload.to_string(),
            usages.unwrap_or_default(),
            ikey,
            ifp,
        ];
        let reply: Vec<String> = self.run(&ENQUEUE, args).await?;
        let (status, rest) = Self::split_status(reply)?;
        match status.as_str() {
            "created" => created_record(id, job, &rest).map(EnqueueOutcome::Created),
            "existing" => Ok(EnqueueOutcome::Existing(parse_job(&rest)?)),
            "conflict" => {
                let existing = rest
                    .first()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| corrupt("bad conflict reply"))?;
                Err(StoreError::IdempotencyConflict { existing })
            }
            other => Err(corrupt(format!("unexpected enqueue reply {other:?}"))),
        }
    }

    async fn get(&self, id: JobId) -> StoreResult<Option<JobRecord>> {
        self.job_by_id(id).await
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        let limit = match filter.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let args = vec![
            opt_str(filter.site.as_deref()),
            filter
                .state
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            opt_str(filter.operation.as_deref()),
            filter.before.map(|b| b.to_string()).unwrap_or_default(),
            limit.to_string(),
            LIST_SCAN_CAP.to_string(),
        ];
        let reply: Vec<String> = self.run(&LIST, args).await?;
        let (scan_cursor, mut ids) = Self::split_status(reply)?;
        let more = ids.len() > limit;
        ids.truncate(limit);
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.key(&format!("job:{id}")))
            .collect();
        let hashes: Vec<Vec<String>> = if keys.is_empty() {
            Vec::new()
        } else {
            self.with_conn(move |mut conn| {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.hgetall(k);
                }
                async move { pipe.query_async(&mut conn).await }
            })
            .await?
        };
        let mut jobs = Vec::with_capacity(hashes.len());
        for h in hashes.iter().filter(|h| !h.is_empty()) {
            // a job purged between the two reads is simply left out
            jobs.push(parse_job(h)?);
        }
        let next_cursor = if more {
            ids.last().and_then(|s| Uuid::parse_str(s).ok())
        } else if !scan_cursor.is_empty() {
            Uuid::parse_str(&scan_cursor).ok()
        } else {
            None
        };
        Ok(JobPage { jobs, next_cursor })
    }

    async fn lease(
        &self,
        worker: &str,
        lease_for: Duration,
        limits: DeliveryLimits,
    ) -> StoreResult<LeaseResult> {
        let args = vec![
            worker.to_owned(),
            dur_ms(lease_for),
            limits.max_in_flight.to_string(),
            limits.max_per_second.to_string(),
        ];
        let reply: Vec<String> = self.run(&LEASE, args).await?;
        let (status, rest) = Self::split_status(reply)?;
        let ms_arg = || -> StoreResult<i64> {
            rest.first()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| corrupt("bad lease reply"))
        };
        match status.as_str() {
            "leased" => Ok(LeaseResult::Leased(parse_job(&rest)?)),
            "idle" => {
                let ms = ms_arg()?;
                Ok(LeaseResult::Idle {
                    next_due_in: (ms >= 0).then(|| Duration::from_millis(ms as u64)),
                })
            }
            "throttled" => Ok(LeaseResult::Throttled {
                retry_in: Duration::from_millis(ms_arg()?.max(1) as u64),
            }),
            other => Err(corrupt(format!("unexpected lease reply {other:?}"))),
        }
    }

    async fn heartbeat(&self, id: JobId, worker: &str, lease_for: Duration) -> StoreResult<bool> {
        let args = vec![id.to_string(), worker.to_owned(), dur_ms(lease_for)];
        let n: i64 = self.run(&HEARTBEAT, args).await?;
        Ok(n == 1)
    }

    async fn complete(&self, id: JobId, worker: &str, outcome: Completion) -> StoreResult<bool> {
        let mut args = vec![id.to_string(), worker.to_owned()];
        let status_str = |s: Option<u16>| s.map(|s| s.to_string()).unwrap_or_default();
        match outcome {
            Completion::Succeeded {
                status,
                result,
                delivered,
            } => {
                args.extend([
                    "succeeded".to_owned(),
                    status_str(status),
                    String::new(),
                    result.to_string(),
                    "0".to_owned(),
                    dur_ms(self.delivered_ttl.max(Duration::from_millis(1))),
                ]);
                for (k, v) in delivered {
                    args.push(k);
                    args.push(v);
                }
            }
            Completion::Failed { status, error } => args.extend([
                "failed".to_owned(),
                status_str(status),
                error,
                "null".to_owned(),
                "0".to_owned(),
            ]),
            Completion::Dead { status, error } => args.extend([
                "dead".to_owned(),
                status_str(status),
                error,
                "null".to_owned(),
                "0".to_owned(),
            ]),
            Completion::Retry { at, status, error } => args.extend([
                "retry".to_owned(),
                status_str(status),
                error,
                "null".to_owned(),
                at.timestamp_millis().to_string(),
            ]),
        }
        let n: i64 = self.run(&COMPLETE, args).await?;
        Ok(n == 1)
    }

    async fn release(&self, id: JobId, worker: &str) -> StoreResult<bool> {
        let n: i64 = self
            .run(&RELEASE, vec![id.to_string(), worker.to_owned()])
            .await?;
        Ok(n == 1)
    }

    async fn reclaim_expired(&self) -> StoreResult<u32> {
        let mut total = 0u32;
        for _ in 0..MAX_BATCHES {
            let n: u32 = self.run(&RECLAIM, vec![BATCH.to_string()]).await?;
            total += n;
            if (n as usize) < BATCH {
                break;
            }
        }
        Ok(total)
    }

    async fn retry(&self, id: JobId) -> StoreResult<JobRecord> {
        let reply: Vec<String> = self.run(&RETRY, vec![id.to_string()]).await?;
        self.state_reply(reply)
    }

    async fn cancel(&self, id: JobId) -> StoreResult<JobRecord> {
        let reply: Vec<String> = self.run(&CANCEL, vec![id.to_string()]).await?;
        self.state_reply(reply)
    }

    async fn delivered(&self, coalesce_key: &str) -> StoreResult<BTreeMap<String, String>> {
        let key = self.key(&format!("delivered:{coalesce_key}"));
        self.hash(key).await
    }

    async fn purge_terminal(&self, retention: Duration) -> StoreResult<u32> {
        let mut total = 0u32;
        for _ in 0..MAX_BATCHES {
            let (removed, consumed): (u32, usize) = self
                .run(&PURGE, vec![dur_ms(retention), BATCH.to_string()])
                .await?;
            total += removed;
            if consumed < BATCH {
                break;
            }
        }
        Ok(total)
    }

    async fn counts(&self) -> StoreResult<BTreeMap<JobState, u64>> {
        let key = self.key("counts");
        let raw: HashMap<String, i64> = self.hash(key).await?;
        let mut out: BTreeMap<JobState, u64> = JobState::ALL.into_iter().map(|s| (s, 0)).collect();
        for (k, v) in raw {
            if let Some(s) = JobState::parse(&k) {
                out.insert(s, v.max(0) as u64);
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.with_conn(|mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .map(|_| ())
    }
}
