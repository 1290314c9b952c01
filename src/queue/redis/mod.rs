//! Redis backend: the production store, shared by every gateway replica.
//!
//! # Key layout
//! Every key starts with the configured prefix `P` (tests give each case its own prefix, so they can
//! share one redis-server). On Redis Cluster ([`RedisOptions::cluster`]) the prefix holds a hash
//! tag, e.g. `{gw}:`: the scripts derive key names from it, so every key they touch is in the
//! tag's one slot, and each script declares one key of that slot so the cluster connection sends
//! it to the slot's master.
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
//! | `P idem:<n>:<site>:<k>` | hash   | idempotency key -> job id and request fingerprint           |
//! | `P delivered:<ck>`      | hash   | values last delivered for a coalesce key                    |
//! | `P counts`              | hash   | jobs per state                                              |
//! | `P worker:<w>`          | string | `<n>:<job id>` of worker w's latest fenced lease call       |
//! | `P newest:<ck>`         | hash   | component -> newest ended job of the key carrying it        |
//! | `P rate:next`           | string | earliest time (us) the next lease may start, for the rate   |
//!
//! The layout is defined once, in [`protocol`](super::protocol): the scripts take every key name
//! and state name from the prelude generated there (`protocol.lua`), and Rust builds the keys it
//! reads with the same functions.
//!
//! Stores written before `finished` and `sites` existed held the zsets `P terminal` and `P all`
//! instead; purge moves them over (in batches, on its first runs) and they are then gone.
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
//! `protocol.lua` and `common.lua`), so a crash or a lost connection between two steps cannot lose or duplicate a job.
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
//!   by a jitter allowance (`delivery.rate_jitter_allowance`, default 25 ms a second; see
//!   [`DeliveryLimits`](super::DeliveryLimits)), so that jitter between a start and its call's arrival
//!   at Puhuri does not push a window over the limit there either. The rule is
//!   [`protocol::start_spacing_us`](super::protocol::start_spacing_us), computed in Rust and
//!   passed to `lease.lua`. When the in-flight limit is
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

mod connection;
mod records;
mod scripts;
mod store;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::{AsyncCommands, Script};

use super::protocol;
use super::{JobId, JobRecord, JobState, StoreError, StoreResult};
pub use crate::config::SentinelUrl;
pub use connection::RedisOptions;
use connection::{Backend, Conn};
use records::parse_job;

thread_local! {
    /// Each thread's connection per store (see "Failure behaviour"), by [`RedisStore::id`], with
    /// the store's connection generation it was made in. An entry lives until its generation is
    /// retired or its thread ends.
    static CONNECTIONS: RefCell<HashMap<u64, (u64, Conn)>> = RefCell::default();
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);

/// The Redis job store. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct RedisStore {
    backend: Backend,
    /// Names this store's connections in [`CONNECTIONS`]; clones share it.
    id: u64,
    /// Bumped when a call fails on its connection: every thread's older connection is retired.
    generation: Arc<AtomicU64>,
    prefix: String,
    /// How long a delivered map outlives its last write.
    delivered_ttl: Duration,
    /// Overall deadline of one call (waiting for a connection, connecting, replies).
    deadline: Duration,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// Replicas that must confirm each write ([`RedisOptions::wait_replicas`]).
    wait_replicas: u32,
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

/// Whether a call can change the store: a write that was sent and not answered has an unknown
/// outcome, a read that was not answered changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Read,
    Write,
}

/// A write's failure after it may have reached Redis: [`StoreError::OutcomeUnknown`].
fn unknown_if_write(call: Call, e: StoreError) -> StoreError {
    match (call, e) {
        (Call::Write, StoreError::Unavailable(why)) => StoreError::OutcomeUnknown(why),
        (_, e) => e,
    }
}

impl RedisStore {
    /// Build the pool. Connections are made on first use, so this succeeds while Redis is down
    /// (calls then fail with `Unavailable` until it is up); it fails on an invalid URL.
    pub async fn connect(
        url: &str,
        key_prefix: &str,
        options: RedisOptions,
    ) -> StoreResult<RedisStore> {
        let backend = Backend::for_url(url, &options)?;
        Ok(RedisStore {
            backend,
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            generation: Arc::default(),
            prefix: key_prefix.to_owned(),
            delivered_ttl: super::DELIVERED_TTL,
            deadline: options.wait_timeout
                + options.connect_timeout
                + options.response_timeout * (1 + u32::from(options.wait_replicas > 0)),
            connect_timeout: options.connect_timeout,
            response_timeout: options.response_timeout,
            wait_replicas: options.wait_replicas,
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

    fn job_key(&self, id: impl std::fmt::Display) -> String {
        protocol::job_key(&self.prefix, &id.to_string())
    }

    /// Run `f` with this thread's connection under the call deadline. If the connection turns
    /// out to be dead (Redis restarted since it was last used), `f` runs once more on a fresh one:
    /// every script is safe to repeat in effect (a repeated enqueue adds a second job with the same
    /// effect, or finds the first by its idempotency key; a repeated lease or completion is
    /// resolved by lease expiry and the lease check).
    ///
    /// A failure before anything was sent (no connection, connection refused, an error reply) is
    /// [`StoreError::Unavailable`]: nothing changed. A [`Call::Write`] that was sent and got no
    /// answer (a timeout, a connection dropped or failing after sending) is
    /// [`StoreError::OutcomeUnknown`]: Redis may have run it.
    async fn with_conn<T, F, Fut>(&self, call: Call, f: F) -> StoreResult<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let sent = std::sync::atomic::AtomicBool::new(false);
        let work = async {
            let conn = self.connection().await?;
            sent.store(true, Ordering::Relaxed);
            match f(conn).await {
                Ok(v) => Ok(v),
                Err(e) if e.is_connection_dropped() => {
                    self.forget_connection();
                    let conn = self
                        .connection()
                        .await
                        .map_err(|e| unknown_if_write(call, e))?;
                    f(conn).await.map_err(|e| self.call_failed(call, e))
                }
                Err(e) => Err(self.call_failed(call, e)),
            }
        };
        match tokio::time::timeout(self.deadline, work).await {
            Ok(r) => r,
            Err(_) => {
                self.forget_connection();
                let why = format!("no answer within {:?}", self.deadline);
                Err(if sent.load(Ordering::Relaxed) {
                    unknown_if_write(call, unavailable(why))
                } else {
                    unavailable(why)
                })
            }
        }
    }

    /// Maps a failed call (see [`RedisStore::with_conn`]).
    fn call_failed(&self, call: Call, e: redis::RedisError) -> StoreError {
        let unanswered = (e.is_timeout() || e.is_io_error() || e.is_connection_dropped())
            && !e.is_connection_refusal();
        let mapped = self.connection_failed(e);
        if unanswered {
            unknown_if_write(call, mapped)
        } else {
            mapped
        }
    }

    /// A whole hash (HGETALL), in whatever shape the caller reads it.
    async fn hash<T: redis::FromRedisValue>(&self, key: String) -> StoreResult<T> {
        self.with_conn(Call::Read, move |mut conn| {
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
            // A master demoted by a failover answers writes with READONLY: ask for the new one.
            || e.code() == Some("READONLY")
        {
            self.forget_connection();
        }
        unavailable(e)
    }

    async fn run<T: redis::FromRedisValue + Send + 'static>(
        &self,
        call: Call,
        script: &'static Script,
        args: Vec<String>,
    ) -> StoreResult<T> {
        let prefix = self.prefix.clone();
        let wait = if call == Call::Write {
            self.wait_replicas
        } else {
            0
        };
        let wait_ms = self.response_timeout.as_millis() as u64;
        let (reply, acked) = self
            .with_conn(call, move |mut conn| {
                let mut inv = script.prepare_invoke();
                // The scripts build their key names from the prefix (ARGV[1]); this one declared
                // key, in the prefix's hash slot, is what routes the script to that slot's master
                // on Redis Cluster. The scripts do not read KEYS.
                inv.key(format!("{prefix}{}", protocol::FIXED_KEYS[0].segment));
                inv.arg(&prefix);
                for a in &args {
                    inv.arg(a);
                }
                async move {
                    let reply = inv.invoke_async::<T>(&mut conn).await?;
                    // WAIT on the same connection counts the replicas that have every write sent
                    // on it so far, this script's included.
                    let acked: u32 = if wait > 0 {
                        redis::cmd("WAIT")
                            .arg(wait)
                            .arg(wait_ms)
                            .query_async(&mut conn)
                            .await?
                    } else {
                        0
                    };
                    Ok((reply, acked))
                }
            })
            .await?;
        if acked < wait {
            return Err(StoreError::OutcomeUnknown(format!(
                "redis: the write reached the master but {acked} of {wait} replicas confirmed it \
                 within {wait_ms} ms"
            )));
        }
        Ok(reply)
    }

    async fn job_by_id(&self, id: JobId) -> StoreResult<Option<JobRecord>> {
        let key = self.job_key(id);
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
            "outdated" => {
                let newer = rest
                    .first()
                    .and_then(|s| uuid::Uuid::parse_str(s).ok())
                    .ok_or_else(|| corrupt("bad outdated reply"))?;
                Err(StoreError::Outdated { newer })
            }
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
