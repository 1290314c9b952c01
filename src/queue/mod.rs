//! The durable job store and queue.
//!
//! A job record is the truth about a piece of accepted work; queue structures only hold job ids.
//! Every state change is one atomic step in the store (a Lua script on Redis, one write transaction
//! in the embedded store), so a crash between two steps can never lose or duplicate a job.
//!
//! Ordering and coalescing rules every backend implements:
//! - Jobs that share an `object_key` (one upstream object: a resource or an order) are delivered
//!   one at a time, in the order they were accepted. Only the oldest unfinished job of an object is
//!   ever leasable; the next one becomes leasable when it reaches a terminal state.
//! - A job with a `coalesce_key` absorbs a pending (queued or retrying, not running) job with the
//!   same key: the older job's `payload[COALESCE_FIELD]` object is merged under the new one's
//!   (the new values win), the older job becomes `superseded` with `superseded_by` pointing at the
//!   new job, and leaves the object's line.
//! - Each coalesce key has a map of what the gateway knows Puhuri holds, per component: a value
//!   and the time it was known ([`Known`]), read back with [`JobStore::delivered`]. `lease` hands
//!   a job the map and, in the same atomic step, removes from it the components the job carries;
//!   `complete(.., Succeeded { delivered, .. })` puts back what the attempt confirmed. A map
//!   expires [`DELIVERED_TTL`] after its last write.
//!
//! # The last total wins
//! The rule, for usage and every operation whose effect is a value: a delivery never leaves
//! Puhuri holding an older value than the newest one the site sent for its key (resource,
//! component, month). A value is skipped as unchanged only when it equals what the gateway knows
//! Puhuri holds, and that knowledge is a definite answer — Puhuri's `200` to our own call, or a
//! read of Puhuri — no older than `delivery.usage_known_for`.
//!
//! Proof sketch. (1) Jobs of one resource run one at a time in acceptance order, and a newer job
//! for a key absorbs every pending older one, so the jobs of a key that reach Puhuri do so in the
//! order the site sent their values, and the newest job of a key is never superseded. (2) Every
//! attempt starts with `lease`, which atomically forgets what is known about the job's components;
//! only a `Succeeded` completion under the still-held lease puts knowledge back. So an attempt
//! without a definite answer — a lost answer, a timeout, a worker that died or was reclaimed, a
//! graceful release, a job that ends `dead` or `failed`, an operator's retry — leaves those
//! components unknown, and an unknown component is sent. (3) Known values can only be stale by
//! another writer's change, and are trusted for at most `usage_known_for`. (4) Hence when the newest
//! job of a key completes, either it sent its value and Puhuri answered `200` (Puhuri holds it,
//! and nothing of ours older can land later: older attempts of the key had ended before this one was
//! leased, and an attempt of ours still in flight after it ended its lease is the one case left to
//! Puhuri's own ordering of requests), or Puhuri held that very value within the bound. (5) An
//! operator's retry puts a job at the back of its line, after newer jobs of its key: it is
//! refused ([`StoreError::Outdated`]) when a newer job of the key carries one of its components
//! (a newer job still in the object's line, or one that ended: the stores note, when a job
//! ends, the newest ended job per component of each key), so a retry never sends an older
//! total after a newer one.
//! - The shared delivery limits (in-flight leases and leases started per second) are enforced inside
//!   `lease`, across every process that shares the store.
//!
//! # Fenced leases
//! A lease call whose answer the worker never got (Redis stalled and the call timed out) may still
//! take effect: the job then runs under a lease nobody works on, and its object waits for the
//! lease to expire. Workers therefore lease with [`JobStore::lease_fenced`] and a number they
//! raise on every call (one worker id leases one job at a time). The store keeps, per worker, the
//! number of its latest call and the job that call leased, and checks it in the same atomic step
//! as the lease: a call whose number is not above the latest is one the worker gave up on, and
//! changes nothing. A worker whose previous call failed says so on the next ([`LeaseFence`]); a
//! job that call leased anyway and that is still `running` under the worker is one it never
//! heard of, and goes back in line first (its attempt given back, as on `release`). Only then:
//! after an answered call the worker may still be recording that job's outcome, concurrently
//! with its next lease. So a lost lease holds its object until the worker's
//! next call — a store-error backoff — not a whole lease, and cannot land after it. Redis keeps
//! the record in `worker:<id>` (kept four leases, at least ten minutes); the embedded store in
//! memory, since a worker id belongs to one process.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub mod embedded;
pub mod open;
pub mod operator;
pub mod protocol;
pub mod redis;

pub use open::{lane_store_config, open_store};

/// The payload field that coalescing merges (an object of component type -> value).
pub const COALESCE_FIELD: &str = "usages";

/// How long a coalesce key's delivered map is kept after its last write. Coalesce keys name a
/// month (`usage:<resource>:<YYYY-MM>`); 62 days covers that month and the next, while its usage
/// can still be reported or corrected.
pub const DELIVERED_TTL: Duration = Duration::from_secs(62 * 24 * 3600);

/// A value Puhuri held for one component of a coalesce key, and when that was known (Puhuri
/// answered a call that set it, or a read returned it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    /// Waldur's decimal string, e.g. `12.50`.
    pub value: String,
    pub at: DateTime<Utc>,
}

impl Known {
    /// A value known now.
    pub fn now(value: impl Into<String>) -> Known {
        Known {
            value: value.into(),
            at: Utc::now(),
        }
    }

    /// The stored form: `<ms since the epoch>:<value>`.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.at.timestamp_millis(), self.value)
    }

    /// Reads [`Known::encode`]'s form. A value stored before times were kept reads as known at the
    /// epoch, i.e. too old to skip anything on.
    pub fn decode(stored: &str) -> Known {
        let parsed = stored.split_once(':').and_then(|(ms, value)| {
            let at = DateTime::from_timestamp_millis(ms.parse().ok()?)?;
            Some(Known {
                value: value.to_owned(),
                at,
            })
        });
        parsed.unwrap_or_else(|| Known {
            value: stored.to_owned(),
            at: DateTime::UNIX_EPOCH,
        })
    }

    /// Whether this is no older than `max_age` at `now`.
    pub fn is_fresh(&self, max_age: Duration, now: DateTime<Utc>) -> bool {
        chrono::Duration::from_std(max_age).is_ok_and(|age| self.at >= now - age)
            && self.at <= now + chrono::Duration::seconds(5)
    }
}

/// Job ids are UUIDv7, so they sort by creation time and serve as paging cursors.
pub type JobId = Uuid;

// A state's name is written once: serde's and strum's `snake_case` of the variant (the Lua
// prelude of the Redis scripts is generated from the same names, `protocol.rs`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Dead,
    Superseded,
    Canceled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: &'static [JobState] = <JobState as strum::VariantArray>::VARIANTS;

    /// The stored name, e.g. `queued`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The state named `s` exactly (the stored names; no other spelling).
    pub fn parse(s: &str) -> Option<JobState> {
        s.parse().ok()
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded
                | JobState::Failed
                | JobState::Dead
                | JobState::Superseded
                | JobState::Canceled
        )
    }
}

/// An idempotency key as a site sent it, with a fingerprint of the request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

/// Work accepted from a site, ready to be stored.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub site: String,
    /// Stable operation name, e.g. `usage.report`, `order.approve`.
    pub operation: String,
    /// Per upstream object ordering key, e.g. `resource:<uuid>` or `order:<uuid>`.
    pub object_key: String,
    /// Jobs with the same key coalesce (see the module doc), e.g. `usage:<resource>:<YYYY-MM>`.
    pub coalesce_key: Option<String>,
    pub payload: serde_json::Value,
    pub idempotency: Option<Idempotency>,
}

/// The `failure_code` a store gives a job whose worker stopped renewing its lease (it died or
/// hung): the job is delivered again. (The codes of delivery outcomes are `worker::deliver`'s.)
pub const LEASE_EXPIRED: &str = "lease_expired";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    pub site: String,
    pub operation: String,
    pub object_key: String,
    pub coalesce_key: Option<String>,
    pub payload: serde_json::Value,
    pub state: JobState,
    /// Delivery attempts started so far (incremented by `lease`).
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// Why the last attempt failed, as a code (`upstream_forbidden`, `upstream_unavailable`, ...;
    /// the list is `worker::deliver::FAILURE_CODES`); cleared when the job succeeds. Records
    /// stored before the field existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    pub result: Option<serde_json::Value>,
    pub superseded_by: Option<JobId>,
    pub worker: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    /// Only in what `lease` returns, for a job with a coalesce key: what the gateway knew Puhuri
    /// held for that key when the lease began (what [`JobStore::delivered`] answered just
    /// before), read in the same step, so a worker needs no second round trip before deciding
    /// what to send. Not stored.
    #[serde(skip)]
    pub delivered: Option<BTreeMap<String, Known>>,
}

impl JobRecord {
    /// The record of a job just accepted: queued, no attempt yet. `payload` is the job's own
    /// after coalescing merged in what it absorbed.
    pub fn queued(
        id: JobId,
        job: &NewJob,
        payload: serde_json::Value,
        created_at: DateTime<Utc>,
    ) -> JobRecord {
        JobRecord {
            id,
            site: job.site.clone(),
            operation: job.operation.clone(),
            object_key: job.object_key.clone(),
            coalesce_key: job.coalesce_key.clone(),
            payload,
            state: JobState::Queued,
            attempts: 0,
            created_at,
            updated_at: created_at,
            next_attempt_at: None,
            last_status: None,
            last_error: None,
            failure_code: None,
            result: None,
            superseded_by: None,
            worker: None,
            lease_until: None,
            idempotency_key: job.idempotency.as_ref().map(|i| i.key.clone()),
            delivered: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum EnqueueOutcome {
    /// A new job was stored, and how many pending jobs of its coalescing key it superseded
    /// (0 when none).
    Created(JobRecord, u32),
    /// The same idempotency key and fingerprint were seen before: this is that job.
    Existing(JobRecord),
}

impl EnqueueOutcome {
    pub fn job(&self) -> &JobRecord {
        match self {
            EnqueueOutcome::Created(j, _) | EnqueueOutcome::Existing(j) => j,
        }
    }
}

/// What fences a lease call ("Fenced leases" in the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseFence {
    /// Raised by the worker on every call; `0`: not fenced.
    pub number: u64,
    /// The worker got no answer to its previous call (an error): a job that call leased anyway
    /// is given back.
    pub previous_lost: bool,
}

impl LeaseFence {
    /// Not fenced (operator tools, tests).
    pub const NONE: LeaseFence = LeaseFence {
        number: 0,
        previous_lost: false,
    };

    /// Call `number`, the previous call answered.
    pub fn new(number: u64) -> LeaseFence {
        LeaseFence {
            number,
            previous_lost: false,
        }
    }
}

/// Limits on delivery toward Puhuri shared by every worker of every replica on one store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryLimits {
    /// Leases held at once, every worker of every replica counted (0: no limit).
    pub max_in_flight: u32,
    /// Leases started per second (0: no limit); spaced by [`protocol::start_spacing_us`].
    pub max_per_second: u32,
    /// How much longer than a second the starts of `max_per_second` calls are spread over, in
    /// microseconds, so that jitter between a start and its call's arrival at Puhuri does not
    /// put more than `max_per_second` calls in one of Puhuri's seconds
    /// (`delivery.rate_jitter_allowance`; default [`protocol::DEFAULT_JITTER_ALLOWANCE_US`]).
    pub jitter_allowance_us: u32,
}

impl DeliveryLimits {
    /// The spacing of starts in microseconds and whether a late start keeps the grid, or `None`
    /// without a rate limit (see [`protocol::start_spacing_us`]).
    pub fn start_spacing_us(&self) -> Option<(i64, bool)> {
        (self.max_per_second > 0)
            .then(|| protocol::start_spacing_us(self.max_per_second, self.jitter_allowance_us))
    }
}

#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per lease call; boxing would only add an allocation
pub enum LeaseResult {
    /// A job, now `running` under the caller's lease.
    Leased(JobRecord),
    /// Nothing is due; `next_due_in` says when the earliest delayed job becomes due, if any.
    Idle { next_due_in: Option<Duration> },
    /// Work is due but a shared delivery limit is reached; try again after `retry_in`.
    Throttled { retry_in: Duration },
}

/// How a delivery attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    Succeeded {
        status: Option<u16>,
        result: serde_json::Value,
        /// Values now known to be upstream, and since when, merged into the coalesce key's map.
        delivered: BTreeMap<String, Known>,
    },
    /// The upstream refused permanently.
    Failed {
        status: Option<u16>,
        /// The job's `failure_code` (see `worker::deliver`).
        code: Option<String>,
        error: String,
    },
    /// A transient failure: try again at `at`.
    Retry {
        at: DateTime<Utc>,
        status: Option<u16>,
        code: Option<String>,
        error: String,
    },
    /// Retries exhausted.
    Dead {
        status: Option<u16>,
        code: Option<String>,
        error: String,
    },
    /// Puhuri is still working on what the job asked for (an order waiting for a review or being
    /// processed): look again at `at`. The job stays `retrying` but the attempt is given back
    /// (following is not a failure, so it never exhausts the retries), and `progress` (the
    /// order's uuid, ...) becomes the job's `result`, so a restarted gateway continues from it
    /// instead of starting over.
    Follow {
        at: DateTime<Utc>,
        progress: serde_json::Value,
    },
}

impl Completion {
    /// The state the job is in once this outcome is recorded.
    pub fn state(&self) -> JobState {
        match self {
            Completion::Succeeded { .. } => JobState::Succeeded,
            Completion::Failed { .. } => JobState::Failed,
            Completion::Retry { .. } | Completion::Follow { .. } => JobState::Retrying,
            Completion::Dead { .. } => JobState::Dead,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this site's jobs (None: all sites, for `jobs:admin`).
    pub site: Option<String>,
    pub state: Option<JobState>,
    pub operation: Option<String>,
    /// Return jobs strictly older than this id (ids sort by creation time; newest first).
    pub before: Option<JobId>,
    pub limit: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<JobRecord>,
    /// Pass as `before` to get the next page; None when this is the last page.
    pub next_cursor: Option<JobId>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the job store is unavailable: {0}")]
    Unavailable(String),
    /// The embedded store's file is locked by another process (or another store object).
    #[error("the job store is unavailable: {0}")]
    InUse(String),
    /// A write was sent to the store but no definite answer came back (a Redis timeout or a
    /// dropped connection after sending; an embedded commit that failed, which may still have
    /// reached the disk): it may or may not have taken effect.
    #[error("the job store did not answer a write it was sent: {0}")]
    OutcomeUnknown(String),
    #[error("the idempotency key was used with a different request")]
    IdempotencyConflict { existing: JobId },
    #[error("no such job")]
    NotFound,
    #[error("the job is {state:?}, which does not allow this")]
    InvalidState { state: JobState },
    /// An operator's retry of a usage job refused: a newer job of the same resource and month
    /// (`newer`) carries one of its components, and delivering the older total now would replace
    /// the newer one in Puhuri.
    #[error(
        "a newer report for the same resource and month was accepted since (job {newer}): retrying \
         this one would put an older total in Puhuri; send the current total instead"
    )]
    Outdated { newer: JobId },
    #[error("the job store holds data it cannot read: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait::async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Store a new job (see the module doc for ordering, coalescing and idempotency).
    async fn enqueue(&self, job: NewJob) -> StoreResult<EnqueueOutcome>;

    async fn get(&self, id: JobId) -> StoreResult<Option<JobRecord>>;

    /// Newest first.
    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage>;

    /// Take the next due job whose object has nothing else in flight, marking it `running`
    /// under `worker`'s lease until now + `lease_for`, and counting an attempt. Not fenced: see
    /// [`JobStore::lease_fenced`].
    async fn lease(
        &self,
        worker: &str,
        lease_for: Duration,
        limits: DeliveryLimits,
    ) -> StoreResult<LeaseResult> {
        self.lease_fenced(worker, LeaseFence::NONE, lease_for, limits)
            .await
    }

    /// [`JobStore::lease`], fenced ("Fenced leases" in the module doc): a call whose number is
    /// not above the worker's latest changes nothing, and when the worker lost the answer to its
    /// previous call, a job that call leased and that still runs under the worker goes back in
    /// line first.
    async fn lease_fenced(
        &self,
        worker: &str,
        fence: LeaseFence,
        lease_for: Duration,
        limits: DeliveryLimits,
    ) -> StoreResult<LeaseResult>;

    /// Extend a lease the worker still holds. `false`: the lease was lost (expired and reclaimed).
    async fn heartbeat(&self, id: JobId, worker: &str, lease_for: Duration) -> StoreResult<bool>;

    /// Record the outcome of an attempt. `false`: the worker no longer holds the lease and nothing
    /// was changed.
    async fn complete(&self, id: JobId, worker: &str, outcome: Completion) -> StoreResult<bool>;

    /// Give a leased job back without counting the attempt (graceful shutdown).
    async fn release(&self, id: JobId, worker: &str) -> StoreResult<bool>;

    /// Put jobs whose lease expired back in line (their worker died). Returns how many.
    async fn reclaim_expired(&self) -> StoreResult<u32>;

    /// An operator's retry: `failed` or `dead` -> `queued`, attempts reset. A usage job with a
    /// component a newer job of its coalesce key carries is [`StoreError::Outdated`].
    async fn retry(&self, id: JobId) -> StoreResult<JobRecord>;

    /// `queued` or `retrying` -> `canceled`.
    async fn cancel(&self, id: JobId) -> StoreResult<JobRecord>;

    /// What the gateway knows Puhuri holds for a coalesce key, per component (empty once the map
    /// expired, see [`DELIVERED_TTL`]); a component an attempt is under way for, or whose last
    /// attempt had no definite answer, is absent.
    async fn delivered(&self, coalesce_key: &str) -> StoreResult<BTreeMap<String, Known>>;

    /// Remove terminal jobs older than `retention`. Returns how many. Expired delivered maps are
    /// removed too (the embedded store; Redis expires them itself).
    async fn purge_terminal(&self, retention: Duration) -> StoreResult<u32>;

    /// Counts per state (for metrics and `/readyz`).
    async fn counts(&self) -> StoreResult<BTreeMap<JobState, u64>>;

    /// How long the earliest-due job that can be delivered now (the head of its object's line,
    /// queued or retrying) has been due: zero when nothing is due. The store's clock decides, as
    /// for leases. For the metric `puhuri_gateway_queue_oldest_ready_age_seconds`.
    async fn oldest_due_age(&self) -> StoreResult<Duration>;

    /// Cheap reachability check.
    async fn ping(&self) -> StoreResult<()>;

    // --- coordination: what a single-leader task (the watcher) needs from the shared store ---

    /// Holds the lease `name` for `holder` for `ttl` from now: taken when free or expired, renewed
    /// when `holder` has it. `false`: another holder has it. The embedded store belongs to one
    /// process, whose caller always leads.
    async fn lead(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool>;

    /// A small value kept under `key` (the watcher's last view of Puhuri), `None` if never saved.
    async fn state(&self, key: &str) -> StoreResult<Option<String>>;

    /// Saves `value` under `key` only while `holder` holds the lease `name` (checked in the same
    /// atomic step, so a leader that lost its lease cannot overwrite its successor's view).
    /// `false`: not saved, the lease is another's.
    async fn save_state(
        &self,
        name: &str,
        holder: &str,
        key: &str,
        value: &str,
    ) -> StoreResult<bool>;

    /// Takes one start of the shared rate limit (`limits.max_per_second`, the same slots the
    /// leases of jobs take) for a call toward Puhuri that is not a job's (the watcher's reads).
    /// `None`: taken, call now; `Some(wait)`: none free, ask again after `wait`. Not counted
    /// against `max_in_flight`, which is about leases.
    async fn take_rate_slot(&self, limits: DeliveryLimits) -> StoreResult<Option<Duration>>;
}

#[cfg(test)]
mod failure_code_tests {
    use super::JobRecord;

    /// A record stored before `failure_code` existed (the embedded store keeps JSON) still reads,
    /// without a code; one with a code keeps it through a round trip.
    #[test]
    fn records_without_a_failure_code_stay_readable() {
        let old = serde_json::json!({
            "id": "019a3c1e-7f0c-7cc1-9a35-2f1e7f6b0b1a", "site": "alpha",
            "operation": "usage.report", "object_key": "resource:1", "coalesce_key": null,
            "payload": {}, "state": "failed", "attempts": 1,
            "created_at": "2026-11-23T10:00:00Z", "updated_at": "2026-11-23T10:00:01Z",
            "next_attempt_at": null, "last_status": 403,
            "last_error": "upstream_forbidden: Puhuri denied the service provider's token this action",
            "result": null, "superseded_by": null, "worker": null, "lease_until": null,
            "idempotency_key": null
        });
        let mut record: JobRecord = serde_json::from_value(old).expect("an old record reads");
        assert_eq!(record.failure_code, None);
        record.failure_code = Some("upstream_forbidden".into());
        let again: JobRecord =
            serde_json::from_value(serde_json::to_value(&record).unwrap()).unwrap();
        assert_eq!(again.failure_code.as_deref(), Some("upstream_forbidden"));
    }
}
