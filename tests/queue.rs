//! The job store conformance suite: every case is written once against `&dyn JobStore` and run
//! for each backend (Redis on a redis-server started by the test harness, and the embedded store
//! in a temporary directory), plus backend-specific durability and failure cases.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use puhuri_gateway::queue::embedded::EmbeddedStore;
use puhuri_gateway::queue::protocol::DEFAULT_JITTER_ALLOWANCE_US;
use puhuri_gateway::queue::redis::{RedisOptions, RedisStore};
use puhuri_gateway::queue::{
    Completion, DeliveryLimits, EnqueueOutcome, Idempotency, JobFilter, JobRecord, JobState,
    JobStore, Known, LeaseFence, LeaseResult, NewJob, StoreError,
};
use serde_json::json;
use support::redis::{RedisServer, shared, shared_cluster, unique_prefix, unique_tagged_prefix};

// ---------------------------------------------------------------------------------------------
// cases (the store of each backend: `support::stores`)

/// Following: a job whose order Puhuri is still working on goes back in line at its time, keeps
/// its progress as its result, and gets its attempt back (following never exhausts retries);
/// the next job of the object waits behind it.
async fn follow_keeps_progress_and_gives_the_attempt_back(store: &dyn JobStore) {
    let a = add(store, job("site-a", "allocation.create", "project:1")).await;
    let b = add(store, job("site-a", "allocation.create", "project:1")).await;
    for round in 0..3 {
        let l = lease(store, "w1").await;
        assert_eq!(l.id, a.id);
        assert_eq!(l.attempts, 1, "round {round}: following used no attempt");
        if round > 0 {
            assert_eq!(l.result.as_ref().unwrap()["order_uuid"], "o-1");
        }
        let at = Utc::now() + chrono::Duration::milliseconds(100);
        let outcome = Completion::Follow {
            at,
            progress: serde_json::json!({"order_uuid": "o-1", "order_state": "pending-provider"}),
        };
        assert!(store.complete(l.id, "w1", outcome).await.unwrap());
        let r = get(store, a.id).await;
        assert_eq!(r.state, JobState::Retrying);
        assert_eq!(r.attempts, 0);
        assert_eq!(r.last_error, None);
        assert_eq!(
            r.result.as_ref().unwrap()["order_state"],
            "pending-provider"
        );
        assert_eq!(
            r.next_attempt_at.map(|t| t.timestamp_millis()),
            Some(at.timestamp_millis())
        );
        assert!(
            assert_idle(store).await.is_some(),
            "not due yet, and b waits behind it"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let l = lease(store, "w1").await;
    assert_eq!(l.id, a.id);
    succeed(store, &l).await;
    assert_eq!(lease(store, "w1").await.id, b.id);
}

#[path = "queue_cases/coordination.rs"]
mod coordination_case;
use coordination_case::coordination;

#[path = "queue_cases/retry_rule.rs"]
mod retry_rule_cases;
use retry_rule_cases::{
    a_newer_job_that_ended_first_still_refuses_the_retry,
    a_retry_is_allowed_when_newer_jobs_carry_other_components,
    a_retry_is_refused_while_a_newer_job_of_its_key_carries_a_component,
};

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod redis_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let f = crate::support::stores::redis(stringify!($case)).await;
                    super::$case(&*f.store).await;
                }
            )*
        }
        mod embedded_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let f = crate::support::stores::embedded().await;
                    super::$case(&*f.store).await;
                }
            )*
        }
        mod redis_cluster_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let f = crate::support::stores::redis_cluster(stringify!($case)).await;
                    super::$case(&*f.store).await;
                }
            )*
        }
    };
}

conformance!(
    enqueue_and_get,
    lease_then_succeed,
    per_object_order,
    different_objects_lease_in_parallel,
    retry_with_due_time,
    lease_expiry_and_reclaim,
    heartbeat_extends_lease,
    lost_lease_changes_nothing,
    release_gives_the_attempt_back,
    dead_job,
    failed_keeps_status_and_error,
    operator_retry,
    cancel,
    idempotency,
    coalescing,
    coalescing_skips_running_job,
    coalescing_two_pending_jobs,
    coalescing_keeps_the_order_of_other_jobs,
    enqueue_answers_how_many_it_superseded,
    limit_in_flight,
    limit_per_second,
    limit_per_second_window,
    lease_brings_delivered_values,
    lease_forgets_what_the_attempt_may_change,
    list_paging_and_filters,
    purge_terminal,
    purge_spares_retried_and_takes_superseded,
    counts,
    concurrent_workers_keep_order_and_limits,
    fenced_leases,
    coordination,
    follow_keeps_progress_and_gives_the_attempt_back,
    a_retry_is_refused_while_a_newer_job_of_its_key_carries_a_component,
    a_retry_is_allowed_when_newer_jobs_carry_other_components,
    a_newer_job_that_ended_first_still_refuses_the_retry,
);

/// Why the prefix needs a hash tag on Redis Cluster: without one, a script's keys fall in
/// several slots on several masters and the scripts cannot run (nothing is stored); with one,
/// they all do (the whole conformance suite above, `redis_cluster_backend`).
#[tokio::test]
async fn on_a_cluster_a_prefix_without_a_hash_tag_cannot_run_the_scripts() {
    let cluster = tokio::task::spawn_blocking(shared_cluster).await.unwrap();
    let options = RedisOptions {
        cluster: true,
        ..RedisOptions::default()
    };
    let untagged = RedisStore::connect(&cluster.url(), &unique_prefix("untagged"), options)
        .await
        .unwrap();
    let refused = untagged.enqueue(job("alpha", "usage", "r1")).await;
    assert!(refused.is_err(), "{refused:?}");
    let tagged = RedisStore::connect(&cluster.url(), &unique_tagged_prefix("tagged"), options)
        .await
        .unwrap();
    let stored = add(&tagged, job("alpha", "usage", "r1")).await;
    assert_eq!(get(&tagged, stored.id).await.state, JobState::Queued);
}

// ---------------------------------------------------------------------------------------------
// helpers

const LEASE: Duration = Duration::from_secs(30);
const NO_LIMITS: DeliveryLimits = DeliveryLimits {
    max_in_flight: 10_000,
    max_per_second: 100_000,
    jitter_allowance_us: DEFAULT_JITTER_ALLOWANCE_US,
};

/// What the tests record as known to be in Puhuri: the values, known at one fixed time (whole
/// milliseconds, as the stores keep it).
fn known(values: &[(&str, &str)]) -> BTreeMap<String, Known> {
    let at = chrono::DateTime::from_timestamp_millis(1_780_000_000_123).unwrap();
    values
        .iter()
        .map(|(k, v)| {
            let value = Known {
                value: v.to_string(),
                at,
            };
            (k.to_string(), value)
        })
        .collect()
}

fn job(site: &str, operation: &str, object: &str) -> NewJob {
    NewJob {
        site: site.into(),
        operation: operation.into(),
        object_key: object.into(),
        coalesce_key: None,
        payload: json!({"object": object, "n": 1}),
        idempotency: None,
    }
}

fn usage_job(object: &str, coalesce_key: &str, usages: serde_json::Value) -> NewJob {
    NewJob {
        site: "site-a".into(),
        operation: "usage.report".into(),
        object_key: object.into(),
        coalesce_key: Some(coalesce_key.into()),
        payload: json!({"resource": object, "period": "2025-01", "usages": usages}),
        idempotency: None,
    }
}

/// A report on resource 1 for another month than the coalescing tests' key: same line, other key.
async fn other_month_report(store: &dyn JobStore) -> JobRecord {
    add(
        store,
        usage_job(
            "resource:1",
            "usage:resource:1:2025-02",
            json!({"cpu": "7"}),
        ),
    )
    .await
}

async fn add(store: &dyn JobStore, j: NewJob) -> JobRecord {
    match store.enqueue(j).await.expect("enqueue") {
        EnqueueOutcome::Created(r, _) => r,
        other => panic!("expected Created, got {other:?}"),
    }
}

async fn get(store: &dyn JobStore, id: uuid::Uuid) -> JobRecord {
    store.get(id).await.expect("get").expect("job exists")
}

async fn lease(store: &dyn JobStore, worker: &str) -> JobRecord {
    lease_for(store, worker, LEASE).await
}

async fn lease_for(store: &dyn JobStore, worker: &str, d: Duration) -> JobRecord {
    match store.lease(worker, d, NO_LIMITS).await.expect("lease") {
        LeaseResult::Leased(r) => r,
        other => panic!("expected a lease, got {other:?}"),
    }
}

async fn assert_idle(store: &dyn JobStore) -> Option<Duration> {
    match store.lease("probe", LEASE, NO_LIMITS).await.expect("lease") {
        LeaseResult::Idle { next_due_in } => next_due_in,
        other => panic!("expected Idle, got {other:?}"),
    }
}

fn succeeded() -> Completion {
    Completion::Succeeded {
        status: Some(200),
        result: json!({"ok": true}),
        delivered: BTreeMap::new(),
    }
}

async fn succeed(store: &dyn JobStore, r: &JobRecord) {
    let worker = r.worker.as_deref().expect("leased job has a worker");
    assert!(store.complete(r.id, worker, succeeded()).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// cases

async fn enqueue_and_get(store: &dyn JobStore) {
    let mut j = job("site-a", "order.approve", "order:1");
    j.payload = json!({"order": "1", "big": 12345678901234567_u64, "f": 0.1, "list": [], "usages": {"cpu": "1.5"}});
    let r = add(store, j.clone()).await;
    assert_eq!(r.state, JobState::Queued);
    assert_eq!(r.attempts, 0);
    assert_eq!(r.site, "site-a");
    assert_eq!(r.operation, "order.approve");
    assert_eq!(r.object_key, "order:1");
    assert_eq!(r.payload, j.payload);
    assert!(r.worker.is_none() && r.lease_until.is_none());
    assert_eq!(get(store, r.id).await, r);
    assert!(store.get(uuid::Uuid::now_v7()).await.unwrap().is_none());
    store.ping().await.unwrap();
}

async fn lease_then_succeed(store: &dyn JobStore) {
    let r = add(store, job("site-a", "order.approve", "order:1")).await;
    let l = lease(store, "w1").await;
    assert_eq!(l.id, r.id);
    assert_eq!(l.state, JobState::Running);
    assert_eq!(l.attempts, 1);
    assert_eq!(l.worker.as_deref(), Some("w1"));
    assert!(l.lease_until.unwrap() > Utc::now());
    assert_eq!(assert_idle(store).await, None);
    assert!(store.complete(r.id, "w1", succeeded()).await.unwrap());
    let done = get(store, r.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.last_status, Some(200));
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert!(done.lease_until.is_none());
    assert_eq!(assert_idle(store).await, None);
    // completing twice is refused
    assert!(!store.complete(r.id, "w1", succeeded()).await.unwrap());
}

async fn per_object_order(store: &dyn JobStore) {
    let a = add(
        store,
        job("site-a", "resource.set_backend_id", "resource:1"),
    )
    .await;
    let b = add(store, job("site-a", "resource.report", "resource:1")).await;
    let c = add(store, job("site-a", "resource.set_limits", "resource:1")).await;
    let l = lease(store, "w1").await;
    assert_eq!(l.id, a.id);
    // the second job of the object waits while the first is in flight
    assert_eq!(assert_idle(store).await, None);
    succeed(store, &l).await;
    let l = lease(store, "w1").await;
    assert_eq!(l.id, b.id);
    assert_eq!(assert_idle(store).await, None);
    succeed(store, &l).await;
    let l = lease(store, "w1").await;
    assert_eq!(l.id, c.id);
    succeed(store, &l).await;
    assert_eq!(assert_idle(store).await, None);
}

async fn different_objects_lease_in_parallel(store: &dyn JobStore) {
    let a = add(store, job("site-a", "order.approve", "order:1")).await;
    let b = add(store, job("site-a", "order.approve", "order:2")).await;
    let la = lease(store, "w1").await;
    let lb = lease(store, "w2").await;
    let mut got = [la.id, lb.id];
    got.sort();
    let mut want = [a.id, b.id];
    want.sort();
    assert_eq!(got, want);
}

async fn retry_with_due_time(store: &dyn JobStore) {
    let a = add(store, job("site-a", "order.approve", "order:1")).await;
    let b = add(store, job("site-a", "order.approve", "order:1")).await;
    let l = lease(store, "w1").await;
    let at = Utc::now() + chrono::Duration::milliseconds(300);
    let outcome = Completion::Retry {
        at,
        status: Some(503),
        error: "upstream unavailable".into(),
        code: Some("upstream_unavailable".into()),
    };
    assert!(store.complete(l.id, "w1", outcome).await.unwrap());
    let r = get(store, a.id).await;
    assert_eq!(r.state, JobState::Retrying);
    assert_eq!(r.last_status, Some(503));
    assert_eq!(r.last_error.as_deref(), Some("upstream unavailable"));
    assert_eq!(r.failure_code.as_deref(), Some("upstream_unavailable"));
    assert_eq!(
        r.next_attempt_at.map(|t| t.timestamp_millis()),
        Some(at.timestamp_millis())
    );
    // not before its time, and the object's next job waits behind it
    let due_in = assert_idle(store).await.expect("a delayed job is pending");
    assert!(due_in <= Duration::from_millis(300), "{due_in:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let l = lease(store, "w2").await;
    assert_eq!(l.id, a.id);
    assert_eq!(l.attempts, 2);
    succeed(store, &l).await;
    // success clears the code (with last_error)
    assert_eq!(get(store, a.id).await.failure_code, None);
    assert_eq!(lease(store, "w2").await.id, b.id);
}

async fn lease_expiry_and_reclaim(store: &dyn JobStore) {
    let a = add(store, job("site-a", "order.approve", "order:1")).await;
    lease_for(store, "w1", Duration::from_millis(200)).await;
    assert_eq!(store.reclaim_expired().await.unwrap(), 0);
    assert_eq!(assert_idle(store).await, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.reclaim_expired().await.unwrap(), 1);
    assert_eq!(store.reclaim_expired().await.unwrap(), 0);
    let r = get(store, a.id).await;
    assert!(matches!(r.state, JobState::Queued | JobState::Retrying));
    assert!(r.worker.is_none());
    assert_eq!(r.attempts, 1);
    assert_eq!(r.failure_code.as_deref(), Some("lease_expired"));
    let l = lease(store, "w2").await;
    assert_eq!(l.id, a.id);
    assert_eq!(l.attempts, 2);
}

async fn heartbeat_extends_lease(store: &dyn JobStore) {
    let a = add(store, job("site-a", "order.approve", "order:1")).await;
    lease_for(store, "w1", Duration::from_millis(300)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        store
            .heartbeat(a.id, "w1", Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(
        !store
            .heartbeat(a.id, "w2", Duration::from_secs(5))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.reclaim_expired().await.unwrap(), 0);
    let r = get(store, a.id).await;
    assert_eq!(r.state, JobState::Running);
    assert!(r.lease_until.unwrap() > Utc::now() + chrono::Duration::seconds(3));
    assert!(store.complete(a.id, "w1", succeeded()).await.unwrap());
}

async fn lost_lease_changes_nothing(store: &dyn JobStore) {
    let a = add(store, job("site-a", "order.approve", "order:1")).await;
    lease_for(store, "w1", Duration::from_millis(150)).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.reclaim_expired().await.unwrap(), 1);
    let l = lease(store, "w2").await;
    assert_eq!(l.id, a.id);
    let before = get(store, a.id).await;
    assert!(!store.complete(a.id, "w1", succeeded()).await.unwrap());
    let failed = Completion::Failed {
        status: Some(400),
        error: "x".into(),
        code: None,
    };
    assert!(!store.complete(a.id, "w1", failed).await.unwrap());
    assert!(!store.heartbeat(a.id, "w1", LEASE).await.unwrap());
    assert!(!store.release(a.id, "w1").await.unwrap());
    assert_eq!(get(store, a.id).await, before);
    assert!(store.complete(a.id, "w2", succeeded()).await.unwrap());
}

/// A worker's lease call whose answer it lost: a later call of the same worker gives the job it
/// leased back to its line (the attempt not counted) instead of leaving it blocked for a whole
/// lease, and a call older than the worker's latest changes nothing when it arrives late.
async fn fenced_leases(store: &dyn JobStore) {
    let a = add(store, job("site-a", "order.approve", "order:1")).await;
    // call 5 took effect, but its answer never reached the worker
    match store
        .lease_fenced("w1", LeaseFence::new(5), LEASE, NO_LIMITS)
        .await
        .unwrap()
    {
        LeaseResult::Leased(r) => assert_eq!(r.id, a.id),
        other => panic!("expected a lease, got {other:?}"),
    }
    let b = add(store, job("site-a", "order.approve", "order:2")).await;
    // call 4 arrives after call 5: fenced, it leases nothing although b is due
    let late = store
        .lease_fenced("w1", LeaseFence::new(4), LEASE, NO_LIMITS)
        .await
        .unwrap();
    assert!(!matches!(late, LeaseResult::Leased(_)), "{late:?}");
    assert_eq!(get(store, b.id).await.state, JobState::Queued);
    assert_eq!(get(store, a.id).await.state, JobState::Running);
    // the worker's next call: a goes back in line at once, the unheard-of attempt given back
    let next = store
        .lease_fenced(
            "w1",
            LeaseFence {
                number: 6,
                previous_lost: true,
            },
            LEASE,
            NO_LIMITS,
        )
        .await
        .unwrap();
    let leased = match next {
        LeaseResult::Leased(r) => r.id,
        other => panic!("expected a lease, got {other:?}"),
    };
    let a_now = get(store, a.id).await;
    if leased == a.id {
        assert_eq!(a_now.state, JobState::Running);
        assert_eq!(a_now.attempts, 1, "the lost attempt is not counted");
    } else {
        assert_eq!(leased, b.id);
        assert_eq!(a_now.state, JobState::Queued);
        assert_eq!(a_now.attempts, 0, "the lost attempt is not counted");
    }
    // another worker is not fenced by w1's numbers, and unfenced calls are not fenced at all
    let other = store
        .lease_fenced("w2", LeaseFence::new(1), LEASE, NO_LIMITS)
        .await
        .unwrap();
    assert!(matches!(other, LeaseResult::Leased(_)), "{other:?}");
    assert_eq!(
        store.counts().await.unwrap()[&JobState::Running],
        2,
        "w1's current lease and w2's"
    );
}

async fn release_gives_the_attempt_back(store: &dyn JobStore) {
    let a = add(store, job("site-a", "order.approve", "order:1")).await;
    lease(store, "w1").await;
    assert!(store.release(a.id, "w1").await.unwrap());
    let r = get(store, a.id).await;
    assert_eq!(r.state, JobState::Queued);
    assert_eq!(r.attempts, 0);
    assert!(r.worker.is_none());
    let l = lease(store, "w2").await;
    assert_eq!((l.id, l.attempts), (a.id, 1));
}

async fn dead_job(store: &dyn JobStore) {
    let a = add(store, job("site-a", "order.approve", "order:1")).await;
    let b = add(store, job("site-a", "order.approve", "order:1")).await;
    let l = lease(store, "w1").await;
    let dead = Completion::Dead {
        status: None,
        error: "connection refused; retries exhausted".into(),
        code: None,
    };
    assert!(store.complete(l.id, "w1", dead).await.unwrap());
    let r = get(store, a.id).await;
    assert_eq!(r.state, JobState::Dead);
    assert_eq!(r.last_status, None);
    assert_eq!(
        r.last_error.as_deref(),
        Some("connection refused; retries exhausted")
    );
    // a terminal job lets the next one of its object go
    assert_eq!(lease(store, "w1").await.id, b.id);
}

async fn failed_keeps_status_and_error(store: &dyn JobStore) {
    let a = add(store, job("site-a", "usage.report", "resource:1")).await;
    let l = lease(store, "w1").await;
    let failed = Completion::Failed {
        status: Some(400),
        error: "the billing period is closed".into(),
        code: Some("upstream_refused".into()),
    };
    assert!(store.complete(l.id, "w1", failed).await.unwrap());
    let r = get(store, a.id).await;
    assert_eq!(r.state, JobState::Failed);
    assert_eq!(r.last_status, Some(400));
    assert_eq!(
        r.last_error.as_deref(),
        Some("the billing period is closed")
    );
    assert_eq!(r.failure_code.as_deref(), Some("upstream_refused"));
    assert_eq!(r.attempts, 1);
    assert_eq!(assert_idle(store).await, None);
}

async fn operator_retry(store: &dyn JobStore) {
    let a = add(store, job("site-a", "order.approve", "order:1")).await;
    let b = add(store, job("site-a", "order.approve", "order:2")).await;
    let fail = Completion::Failed {
        status: Some(400),
        error: "bad".into(),
        code: None,
    };
    let dead = Completion::Dead {
        status: Some(503),
        error: "gone".into(),
        code: None,
    };
    let l1 = lease(store, "w1").await;
    let l2 = lease(store, "w1").await;
    let (la, lb) = if l1.id == a.id { (l1, l2) } else { (l2, l1) };
    assert!(store.complete(la.id, "w1", fail).await.unwrap());
    assert!(store.complete(lb.id, "w1", dead).await.unwrap());
    for id in [a.id, b.id] {
        let r = store.retry(id).await.unwrap();
        assert_eq!(r.state, JobState::Queued);
        assert_eq!(r.attempts, 0);
    }
    let mut leased = vec![lease(store, "w2").await.id, lease(store, "w2").await.id];
    leased.sort();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(leased, want);
    // only failed or dead jobs can be retried by an operator
    match store.retry(a.id).await {
        Err(StoreError::InvalidState { state }) => assert_eq!(state, JobState::Running),
        other => panic!("expected InvalidState, got {other:?}"),
    }
    assert!(matches!(
        store.retry(uuid::Uuid::now_v7()).await,
        Err(StoreError::NotFound)
    ));
}

async fn cancel(store: &dyn JobStore) {
    let a = add(store, job("site-a", "order.approve", "order:1")).await;
    let b = add(store, job("site-a", "order.approve", "order:1")).await;
    let c = add(store, job("site-a", "order.approve", "order:1")).await;
    // cancel a waiting job in the middle of the line, then the head
    assert_eq!(store.cancel(b.id).await.unwrap().state, JobState::Canceled);
    let l = lease(store, "w1").await;
    assert_eq!(l.id, a.id);
    match store.cancel(a.id).await {
        Err(StoreError::InvalidState { state }) => assert_eq!(state, JobState::Running),
        other => panic!("expected InvalidState, got {other:?}"),
    }
    succeed(store, &l).await;
    match store.cancel(a.id).await {
        Err(StoreError::InvalidState { state }) => assert_eq!(state, JobState::Succeeded),
        other => panic!("expected InvalidState, got {other:?}"),
    }
    let d = add(store, job("site-a", "order.approve", "order:1")).await;
    assert_eq!(store.cancel(c.id).await.unwrap().state, JobState::Canceled);
    assert_eq!(get(store, c.id).await.state, JobState::Canceled);
    assert_eq!(lease(store, "w1").await.id, d.id);
    assert!(matches!(
        store.cancel(uuid::Uuid::now_v7()).await,
        Err(StoreError::NotFound)
    ));
}

async fn idempotency(store: &dyn JobStore) {
    let with_key = |site: &str, fp: &str| {
        let mut j = job(site, "order.approve", "order:1");
        j.idempotency = Some(Idempotency {
            key: "key-1".into(),
            fingerprint: fp.into(),
        });
        j
    };
    let first = add(store, with_key("site-a", "fp-1")).await;
    assert_eq!(first.idempotency_key.as_deref(), Some("key-1"));
    match store.enqueue(with_key("site-a", "fp-1")).await.unwrap() {
        EnqueueOutcome::Existing(r) => assert_eq!(r, first),
        other => panic!("expected Existing, got {other:?}"),
    }
    match store.enqueue(with_key("site-a", "fp-2")).await {
        Err(StoreError::IdempotencyConflict { existing }) => assert_eq!(existing, first.id),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // another site's key space is independent
    let other = add(store, with_key("site-b", "fp-2")).await;
    assert_ne!(other.id, first.id);
    // a site name cannot be confused with a key
    let mut tricky = job("site-a:key", "order.approve", "order:9");
    tricky.idempotency = Some(Idempotency {
        key: "1".into(),
        fingerprint: "fp-x".into(),
    });
    add(store, tricky).await;
    let counts = store.counts().await.unwrap();
    assert_eq!(counts[&JobState::Queued], 3);
}

async fn coalescing(store: &dyn JobStore) {
    let ck = "usage:resource:1:2025-01";
    let a = add(
        store,
        usage_job("resource:1", ck, json!({"cpu": "1.5", "gpu": "2"})),
    )
    .await;
    // a different key on the same object is left alone
    let other = other_month_report(store).await;
    let b = add(store, usage_job("resource:1", ck, json!({"cpu": "3"}))).await;
    let old = get(store, a.id).await;
    assert_eq!(old.state, JobState::Superseded);
    assert_eq!(old.superseded_by, Some(b.id));
    assert_eq!(b.payload["usages"], json!({"cpu": "3", "gpu": "2"}));
    assert_eq!(b.payload["period"], json!("2025-01"));
    assert_eq!(get(store, other.id).await.state, JobState::Queued);
    // a retrying job is pending too and is absorbed
    let l = lease(store, "w1").await;
    assert_eq!(l.id, other.id);
    succeed(store, &l).await;
    let l = lease(store, "w1").await;
    assert_eq!(l.id, b.id);
    let retry = Completion::Retry {
        at: Utc::now() + chrono::Duration::seconds(60),
        status: Some(502),
        error: "bad gateway".into(),
        code: None,
    };
    assert!(store.complete(b.id, "w1", retry).await.unwrap());
    let c = add(store, usage_job("resource:1", ck, json!({"gpu": "4"}))).await;
    assert_eq!(get(store, b.id).await.state, JobState::Superseded);
    assert_eq!(c.payload["usages"], json!({"cpu": "3", "gpu": "4"}));
    // the newcomer is due now, not when the absorbed job was
    let l = lease(store, "w1").await;
    assert_eq!(l.id, c.id);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts[&JobState::Superseded], 2);
}

async fn coalescing_skips_running_job(store: &dyn JobStore) {
    let ck = "usage:resource:1:2025-01";
    let a = add(
        store,
        usage_job("resource:1", ck, json!({"cpu": "1", "gpu": "2"})),
    )
    .await;
    let l = lease(store, "w1").await;
    assert_eq!(l.id, a.id);
    let b = add(store, usage_job("resource:1", ck, json!({"cpu": "5"}))).await;
    // the running job is not superseded and nothing is merged into the new one
    assert_eq!(get(store, a.id).await.state, JobState::Running);
    assert_eq!(b.payload["usages"], json!({"cpu": "5"}));
    let delivered = known(&[("cpu", "1"), ("gpu", "2")]);
    let ok = Completion::Succeeded {
        status: Some(200),
        result: json!(null),
        delivered: delivered.clone(),
    };
    assert!(store.complete(a.id, "w1", ok).await.unwrap());
    assert_eq!(store.delivered(ck).await.unwrap(), delivered);
    assert!(store.delivered("usage:other").await.unwrap().is_empty());
    let l = lease(store, "w1").await;
    assert_eq!(l.id, b.id);
    let ok = Completion::Succeeded {
        status: Some(200),
        result: json!(null),
        delivered: known(&[("cpu", "5")]),
    };
    assert!(store.complete(b.id, "w1", ok).await.unwrap());
    let want = known(&[("cpu", "5"), ("gpu", "2")]);
    assert_eq!(store.delivered(ck).await.unwrap(), want);
}

/// Two pending jobs with one key (the first went back to the queue after the second arrived) are
/// both absorbed; the newer one's values win over the older one's, the newcomer's over both.
async fn coalescing_two_pending_jobs(store: &dyn JobStore) {
    let ck = "usage:resource:1:2025-01";
    let a = add(
        store,
        usage_job(
            "resource:1",
            ck,
            json!({"cpu": "1", "gpu": "1", "mem": "1"}),
        ),
    )
    .await;
    assert_eq!(lease(store, "w1").await.id, a.id);
    let b = add(
        store,
        usage_job("resource:1", ck, json!({"cpu": "2", "gpu": "2"})),
    )
    .await;
    assert!(store.release(a.id, "w1").await.unwrap());
    let c = add(store, usage_job("resource:1", ck, json!({"cpu": "3"}))).await;
    assert_eq!(
        c.payload["usages"],
        json!({"cpu": "3", "gpu": "2", "mem": "1"})
    );
    for old in [a.id, b.id] {
        let r = get(store, old).await;
        assert_eq!(r.state, JobState::Superseded);
        assert_eq!(r.superseded_by, Some(c.id));
    }
    // what enqueue answered is what is stored
    assert_eq!(get(store, c.id).await, c);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts[&JobState::Superseded], 2);
    assert_eq!(counts[&JobState::Queued], 1);
    assert_eq!(lease(store, "w1").await.id, c.id);
    assert_idle(store).await;
}

/// Enqueue answers how many pending jobs the new one superseded (the site API counts them in
/// `puhuri_gateway_jobs_superseded_total`): none for a first job, one for the next of its key,
/// none while the older one is running (it is not replaced) or for another key, one again once
/// a job of the key waits.
async fn enqueue_answers_how_many_it_superseded(store: &dyn JobStore) {
    let ck = "usage:resource:1:2025-01";
    let enqueue = |cpu: &str, key: &str| {
        let job = usage_job("resource:1", key, json!({ "cpu": cpu }));
        async {
            match store.enqueue(job).await.expect("enqueue") {
                EnqueueOutcome::Created(_, n) => n,
                other => panic!("expected Created, got {other:?}"),
            }
        }
    };
    assert_eq!(enqueue("1", ck).await, 0);
    assert_eq!(enqueue("2", ck).await, 1);
    let running = lease(store, "w1").await;
    assert_eq!(running.coalesce_key.as_deref(), Some(ck));
    assert_eq!(enqueue("3", ck).await, 0);
    assert_eq!(enqueue("1", "usage:resource:1:2025-02").await, 0);
    assert_eq!(enqueue("4", ck).await, 1);
}

/// Absorbing the head and the last job of a line whose middle job has another key: the middle
/// job becomes the head and goes first; the newcomer waits behind it.
async fn coalescing_keeps_the_order_of_other_jobs(store: &dyn JobStore) {
    let ck = "usage:resource:1:2025-01";
    let b = add(store, usage_job("resource:1", ck, json!({"cpu": "1"}))).await;
    assert_eq!(lease(store, "w1").await.id, b.id);
    let x = other_month_report(store).await;
    let c = add(store, usage_job("resource:1", ck, json!({"gpu": "2"}))).await;
    // b goes back to the queue: the line is b, x, c, and b and c are both pending
    assert!(store.release(b.id, "w1").await.unwrap());
    let new = add(store, usage_job("resource:1", ck, json!({"cpu": "3"}))).await;
    assert_eq!(new.payload["usages"], json!({"cpu": "3", "gpu": "2"}));
    for old in [b.id, c.id] {
        assert_eq!(get(store, old).await.state, JobState::Superseded);
    }
    let l = lease(store, "w1").await;
    assert_eq!(l.id, x.id, "the other month's report was first in line");
    assert_eq!(
        assert_idle(store).await,
        None,
        "the newcomer waits behind it"
    );
    succeed(store, &l).await;
    assert_eq!(lease(store, "w1").await.id, new.id);
}

async fn limit_in_flight(store: &dyn JobStore) {
    for i in 0..4 {
        add(store, job("site-a", "order.approve", &format!("order:{i}"))).await;
    }
    let limits = DeliveryLimits {
        max_in_flight: 2,
        max_per_second: 0,
        jitter_allowance_us: DEFAULT_JITTER_ALLOWANCE_US,
    };
    let mut held = Vec::new();
    for worker in ["w1", "w2"] {
        match store.lease(worker, LEASE, limits).await.unwrap() {
            LeaseResult::Leased(r) => held.push(r),
            other => panic!("expected a lease, got {other:?}"),
        }
    }
    for worker in ["w1", "w2"] {
        match store.lease(worker, LEASE, limits).await.unwrap() {
            LeaseResult::Throttled { retry_in } => assert!(retry_in <= Duration::from_secs(1)),
            other => panic!("expected Throttled, got {other:?}"),
        }
    }
    succeed(store, &held[0]).await;
    assert!(matches!(
        store.lease("w1", LEASE, limits).await.unwrap(),
        LeaseResult::Leased(_)
    ));
    assert!(matches!(
        store.lease("w2", LEASE, limits).await.unwrap(),
        LeaseResult::Throttled { .. }
    ));
}

async fn limit_per_second(store: &dyn JobStore) {
    for i in 0..10 {
        add(store, job("site-a", "order.approve", &format!("order:{i}"))).await;
    }
    let limits = DeliveryLimits {
        max_in_flight: 1000,
        max_per_second: 4,
        jitter_allowance_us: DEFAULT_JITTER_ALLOWANCE_US,
    };
    // Starts are spaced evenly, about 250 ms apart at 4 per second (2.5% more, for arrival jitter),
    // whichever worker asks.
    let first = Instant::now();
    assert!(matches!(
        store.lease("w1", LEASE, limits).await.unwrap(),
        LeaseResult::Leased(_)
    ));
    let retry_in = match store.lease("w2", LEASE, limits).await.unwrap() {
        LeaseResult::Throttled { retry_in } => retry_in,
        other => panic!("a second start at once must be throttled, got {other:?}"),
    };
    let waited = first.elapsed();
    assert!(
        retry_in <= Duration::from_millis(257) && retry_in + waited >= Duration::from_millis(256),
        "the next start is one spacing after the first: {retry_in:?} after {waited:?}"
    );
    tokio::time::sleep(retry_in + Duration::from_millis(5)).await;
    assert!(matches!(
        store.lease("w2", LEASE, limits).await.unwrap(),
        LeaseResult::Leased(_)
    ));
    assert!(first.elapsed() >= Duration::from_millis(256));
    assert!(matches!(
        store.lease("w1", LEASE, limits).await.unwrap(),
        LeaseResult::Throttled { .. }
    ));
    // Without a rate limit the rest start at once.
    let unlimited = DeliveryLimits {
        max_in_flight: 1000,
        max_per_second: 0,
        jitter_allowance_us: DEFAULT_JITTER_ALLOWANCE_US,
    };
    for _ in 0..8 {
        assert!(matches!(
            store.lease("w3", LEASE, unlimited).await.unwrap(),
            LeaseResult::Leased(_)
        ));
    }
}

async fn limit_per_second_window(store: &dyn JobStore) {
    for i in 0..40 {
        add(store, job("site-a", "order.approve", &format!("order:{i}"))).await;
    }
    let limits = DeliveryLimits {
        max_in_flight: 1000,
        max_per_second: 20,
        jitter_allowance_us: DEFAULT_JITTER_ALLOWANCE_US,
    };
    // Eager workers for a little over a second: the starts the store grants within the first
    // second (all granted at or after `start`) never exceed the rate, and late wake-ups do not
    // cost much of it.
    let start = Instant::now();
    let mut in_first_second = 0;
    while start.elapsed() < Duration::from_millis(1200) {
        match store.lease("w1", LEASE, limits).await.unwrap() {
            LeaseResult::Leased(_) => {
                if start.elapsed() < Duration::from_secs(1) {
                    in_first_second += 1;
                }
            }
            LeaseResult::Throttled { retry_in } => tokio::time::sleep(retry_in).await,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        (12..=20).contains(&in_first_second),
        "{in_first_second} starts in one second at 20 per second"
    );
}

async fn lease_brings_delivered_values(store: &dyn JobStore) {
    let ck = "usage:resource:7:2025-01";
    add(store, usage_job("resource:7", ck, json!({"cpu": "1"}))).await;
    let first = lease(store, "w1").await;
    assert_eq!(
        first.delivered,
        Some(BTreeMap::new()),
        "nothing delivered yet"
    );
    let sent = known(&[("cpu", "1")]);
    let ok = Completion::Succeeded {
        status: Some(201),
        result: json!(null),
        delivered: sent.clone(),
    };
    assert!(store.complete(first.id, "w1", ok).await.unwrap());
    let next = add(store, usage_job("resource:7", ck, json!({"cpu": "2"}))).await;
    assert_eq!(next.delivered, None, "only a lease brings them");
    let leased = lease(store, "w1").await;
    assert_eq!(leased.id, next.id);
    assert_eq!(leased.delivered, Some(sent));
    assert_eq!(get(store, next.id).await.delivered, None, "not stored");
    // a job without a coalesce key has none
    add(store, job("site-a", "order.approve", "order:7")).await;
    assert_eq!(lease(store, "w2").await.delivered, None);
}

async fn list_paging_and_filters(store: &dyn JobStore) {
    let mut site_a = Vec::new();
    for i in 0..5 {
        let op = if i % 2 == 0 {
            "order.approve"
        } else {
            "order.reject"
        };
        site_a.push(
            add(store, job("site-a", op, &format!("order:{i}")))
                .await
                .id,
        );
    }
    let mut every = site_a.clone();
    for i in 0..2 {
        let b = add(
            store,
            job("site-b", "order.approve", &format!("order:b{i}")),
        )
        .await;
        every.push(b.id);
    }
    // one more of site a after site b's, so an admin's list interleaves the sites
    let last = add(store, job("site-a", "order.approve", "order:5"))
        .await
        .id;
    site_a.push(last);
    every.push(last);
    site_a.reverse(); // newest first
    every.reverse();
    let mut filter = JobFilter {
        site: Some("site-a".into()),
        limit: 2,
        ..JobFilter::default()
    };
    let mut seen = Vec::new();
    for _ in 0..10 {
        let page = store.list(&filter).await.unwrap();
        assert!(page.jobs.len() <= 2);
        assert!(page.jobs.iter().all(|j| j.site == "site-a"));
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next_cursor {
            Some(c) => filter.before = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, site_a);

    let all = store
        .list(&JobFilter {
            limit: 100,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.jobs.len(), 8);
    assert_eq!(all.next_cursor, None);
    // an admin's pages, across sites, newest first
    let mut filter = JobFilter {
        limit: 3,
        ..JobFilter::default()
    };
    let mut seen = Vec::new();
    for _ in 0..10 {
        let page = store.list(&filter).await.unwrap();
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next_cursor {
            Some(c) => filter.before = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, every);

    let rejects = store
        .list(&JobFilter {
            site: Some("site-a".into()),
            operation: Some("order.reject".into()),
            limit: 100,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        rejects.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![site_a[2], site_a[4]]
    );

    let l = lease(store, "w1").await;
    let running = store
        .list(&JobFilter {
            state: Some(JobState::Running),
            limit: 100,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(running.jobs.len(), 1);
    assert_eq!(running.jobs[0].id, l.id);

    let none = store
        .list(&JobFilter {
            site: Some("site-c".into()),
            limit: 10,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert!(none.jobs.is_empty() && none.next_cursor.is_none());
}

async fn purge_terminal(store: &dyn JobStore) {
    let mut done = job("site-a", "order.approve", "order:1");
    done.idempotency = Some(Idempotency {
        key: "k".into(),
        fingerprint: "f".into(),
    });
    let a = add(store, done.clone()).await;
    let b = add(store, job("site-a", "order.approve", "order:2")).await;
    let l = lease(store, "w1").await;
    let l = if l.id == a.id {
        l
    } else {
        store.release(l.id, "w1").await.unwrap();
        panic!("expected the older job first")
    };
    succeed(store, &l).await;
    assert_eq!(
        store
            .purge_terminal(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.purge_terminal(Duration::ZERO).await.unwrap(), 1);
    assert!(store.get(a.id).await.unwrap().is_none());
    assert_eq!(get(store, b.id).await.state, JobState::Queued);
    let listed = store
        .list(&JobFilter {
            limit: 10,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![b.id]
    );
    let counts = store.counts().await.unwrap();
    assert_eq!(counts[&JobState::Succeeded], 0);
    assert_eq!(counts[&JobState::Queued], 1);
    // the purged job's idempotency key is free again
    let again = add(store, done).await;
    assert_ne!(again.id, a.id);
}

/// A job retried by an operator after it failed is no longer terminal: purging must leave it,
/// then take it once it finishes again. Superseded jobs are terminal from the start.
async fn purge_spares_retried_and_takes_superseded(store: &dyn JobStore) {
    let a = add(store, job("site-a", "order.approve", "order:1")).await;
    let l = lease(store, "w1").await;
    let failed = Completion::Failed {
        status: Some(400),
        error: "refused".into(),
        code: None,
    };
    assert!(store.complete(l.id, "w1", failed).await.unwrap());
    let ck = "usage:resource:1:2025-01";
    let old = add(store, usage_job("resource:1", ck, json!({"cpu": "1"}))).await;
    let new = add(store, usage_job("resource:1", ck, json!({"cpu": "2"}))).await;
    assert_eq!(store.retry(a.id).await.unwrap().state, JobState::Queued);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // the superseded report goes; the retried job and the newer report stay
    assert_eq!(store.purge_terminal(Duration::ZERO).await.unwrap(), 1);
    assert!(store.get(old.id).await.unwrap().is_none());
    assert_eq!(get(store, a.id).await.state, JobState::Queued);
    assert_eq!(get(store, new.id).await.state, JobState::Queued);
    // both finish (in either order: two objects), then both go
    let mut leased = Vec::new();
    for _ in 0..2 {
        let l = lease(store, "w1").await;
        succeed(store, &l).await;
        leased.push(l.id);
    }
    leased.sort();
    let mut want = vec![a.id, new.id];
    want.sort();
    assert_eq!(leased, want);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.purge_terminal(Duration::ZERO).await.unwrap(), 2);
    assert!(store.get(a.id).await.unwrap().is_none());
    assert_eq!(store.purge_terminal(Duration::ZERO).await.unwrap(), 0);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts[&JobState::Succeeded], 0);
    assert_eq!(counts[&JobState::Superseded], 0);
    assert_eq!(counts[&JobState::Queued], 0);
}

async fn counts(store: &dyn JobStore) {
    let zero = store.counts().await.unwrap();
    assert_eq!(zero.len(), JobState::ALL.len());
    assert!(zero.values().all(|&n| n == 0));
    for i in 0..3 {
        add(store, job("site-a", "order.approve", &format!("order:{i}"))).await;
    }
    let l = lease(store, "w1").await;
    let l2 = lease(store, "w1").await;
    succeed(store, &l).await;
    let c = store.counts().await.unwrap();
    assert_eq!(c[&JobState::Queued], 1);
    assert_eq!(c[&JobState::Running], 1);
    assert_eq!(c[&JobState::Succeeded], 1);
    assert_eq!(c.values().sum::<u64>(), 3);
    store.release(l2.id, "w1").await.unwrap();
    let c = store.counts().await.unwrap();
    assert_eq!(c[&JobState::Queued], 2);
    assert_eq!(c[&JobState::Running], 0);
}

async fn concurrent_workers_keep_order_and_limits(store: &dyn JobStore) {
    use std::cell::RefCell;
    use std::collections::{HashMap, HashSet};

    const JOBS: usize = 30;
    let mut expected: HashMap<String, Vec<uuid::Uuid>> = HashMap::new();
    for i in 0..JOBS {
        let object = format!("resource:{}", i % 5);
        let id = add(store, job("site-a", "resource.report", &object))
            .await
            .id;
        expected.entry(object).or_default().push(id);
    }
    let limits = DeliveryLimits {
        max_in_flight: 3,
        max_per_second: 100_000,
        jitter_allowance_us: DEFAULT_JITTER_ALLOWANCE_US,
    };
    let in_flight: RefCell<HashSet<String>> = RefCell::default();
    let max_seen = RefCell::new(0usize);
    let delivered: RefCell<HashMap<String, Vec<uuid::Uuid>>> = RefCell::default();
    let retried: RefCell<HashSet<uuid::Uuid>> = RefCell::default();
    let done = || delivered.borrow().values().map(Vec::len).sum::<usize>() == JOBS;
    let worker = |name: &'static str| {
        let (in_flight, max_seen, delivered, retried) =
            (&in_flight, &max_seen, &delivered, &retried);
        async move {
            for _ in 0..2000 {
                if done() {
                    return;
                }
                match store.lease(name, LEASE, limits).await.unwrap() {
                    LeaseResult::Leased(r) => {
                        assert!(
                            in_flight.borrow_mut().insert(r.object_key.clone()),
                            "two jobs of {} in flight",
                            r.object_key
                        );
                        let n = in_flight.borrow().len();
                        let m = (*max_seen.borrow()).max(n);
                        *max_seen.borrow_mut() = m;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        in_flight.borrow_mut().remove(&r.object_key);
                        // every third job fails once, transiently, and is due again at once
                        let first_try = !retried.borrow().contains(&r.id);
                        if r.id.as_u128() % 3 == 0 && first_try {
                            retried.borrow_mut().insert(r.id);
                            let outcome = Completion::Retry {
                                at: Utc::now(),
                                status: Some(503),
                                error: "busy".into(),
                                code: None,
                            };
                            assert!(store.complete(r.id, name, outcome).await.unwrap());
                        } else {
                            assert!(store.complete(r.id, name, succeeded()).await.unwrap());
                            delivered
                                .borrow_mut()
                                .entry(r.object_key.clone())
                                .or_default()
                                .push(r.id);
                        }
                    }
                    LeaseResult::Throttled { retry_in } => {
                        tokio::time::sleep(retry_in.min(Duration::from_millis(5))).await
                    }
                    LeaseResult::Idle { .. } => tokio::time::sleep(Duration::from_millis(2)).await,
                }
            }
        }
    };
    futures_util::future::join_all(["w1", "w2", "w3", "w4"].map(worker)).await;
    assert!(done(), "every job delivered");
    assert_eq!(
        *delivered.borrow(),
        expected,
        "each job once, in order per object"
    );
    assert!(*max_seen.borrow() <= 3, "in flight: {}", max_seen.borrow());
    let counts = store.counts().await.unwrap();
    assert_eq!(counts[&JobState::Succeeded], JOBS as u64);
}

// ---------------------------------------------------------------------------------------------
// Redis durability and failure

/// Sentinel: a master with two durable replicas (`appendfsync always`) and a sentinel. The store
/// connects through `redis+sentinel://` and has each write confirmed by a replica
/// (`wait_replicas = 1`). Writes keep coming while the master is killed: the sentinel promotes a
/// replica, the same store finds the new master by itself (no new store, no restart), and every
/// job it acknowledged, before and after the failover, is there.
#[tokio::test]
async fn sentinel_failover_loses_nothing_acknowledged_and_the_store_recovers() {
    let (mut master, _replicas, sentinel) =
        tokio::task::spawn_blocking(support::redis::replicated_with_sentinel)
            .await
            .unwrap();
    let options = RedisOptions {
        wait_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
        wait_replicas: 1,
        ..RedisOptions::default()
    };
    let url = format!("redis+sentinel://127.0.0.1:{}/gw", sentinel.port());
    let store = RedisStore::connect(&url, &unique_prefix("sentinel"), options)
        .await
        .unwrap();
    let mut acknowledged = Vec::new();
    let mut not_acknowledged = 0;
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut killed_at = None;
    while acknowledged.len() < 60 {
        assert!(
            Instant::now() < deadline,
            "only {} writes acknowledged ({not_acknowledged} not)",
            acknowledged.len()
        );
        if acknowledged.len() == 30 && killed_at.is_none() {
            master.stop();
            killed_at = Some(Instant::now());
        }
        n += 1;
        match store.enqueue(job("alpha", "usage", &format!("r{n}"))).await {
            Ok(EnqueueOutcome::Created(r, _)) => acknowledged.push(r.id),
            Ok(other) => panic!("{other:?}"),
            Err(_) => {
                not_acknowledged += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let named = sentinel.ask(&["sentinel", "get-master-addr-by-name", "gw"]);
    assert!(
        !named.lines().any(|l| l.trim() == master.port().to_string()),
        "the sentinel still names the killed master: {named}"
    );
    for id in &acknowledged {
        assert!(
            store.get(*id).await.unwrap().is_some(),
            "acknowledged job {id} was lost in the failover"
        );
    }
    eprintln!(
        "failover: 60 acknowledged, {not_acknowledged} not acknowledged while the master was \
         gone, the 60th {:?} after the kill",
        killed_at.unwrap().elapsed()
    );
}

#[tokio::test]
async fn redis_kill_during_enqueues_keeps_every_acknowledged_job() {
    let server = std::sync::Arc::new(std::sync::Mutex::new(RedisServer::start_durable()));
    let url = server.lock().unwrap().url();
    let options = RedisOptions {
        wait_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&url, &unique_prefix("kill"), options)
        .await
        .unwrap();
    let killer = {
        let server = server.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            server.lock().unwrap().stop(); // SIGKILL while enqueues are in flight
        })
    };
    let mut acknowledged = Vec::new();
    let mut failures = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0.. {
        if Instant::now() > deadline {
            break;
        }
        match store
            .enqueue(job("site-a", "order.approve", &format!("order:{}", i % 7)))
            .await
        {
            Ok(o) => acknowledged.push(o.job().id),
            // a write sent as the server died: its outcome is unknown, it is not acknowledged
            Err(StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_)) => {
                failures += 1;
                if failures >= 3 {
                    break;
                }
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    killer.join().unwrap();
    assert!(failures > 0, "the server was killed during the loop");
    assert!(!acknowledged.is_empty());
    server.lock().unwrap().restart();
    for id in &acknowledged {
        let r = store.get(*id).await.unwrap();
        assert!(r.is_some(), "acknowledged job {id} lost");
    }
    let queued = store.counts().await.unwrap()[&JobState::Queued];
    assert!(queued >= acknowledged.len() as u64);
}

#[tokio::test]
async fn redis_restart_with_appendonly_keeps_every_acknowledged_job() {
    let mut server = RedisServer::start_durable();
    let store = RedisStore::connect(
        &server.url(),
        &unique_prefix("restart"),
        RedisOptions::default(),
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            add(
                &store,
                job("site-a", "order.approve", &format!("order:{i}")),
            )
            .await
            .id,
        );
    }
    let leased = lease(&store, "w1").await;
    server.restart(); // SIGKILL, then start again on the same port and directory
    // the same store object works again without being rebuilt
    for id in &ids {
        let r = store
            .get(*id)
            .await
            .expect("get after restart")
            .expect("kept");
        let want = if *id == leased.id {
            JobState::Running
        } else {
            JobState::Queued
        };
        assert_eq!(r.state, want);
    }
    assert_eq!(store.counts().await.unwrap()[&JobState::Queued], 19);
    succeed(&store, &leased).await;
    assert_eq!(lease(&store, "w2").await.state, JobState::Running);
    let new = add(&store, job("site-a", "order.approve", "order:new")).await;
    assert_eq!(get(&store, new.id).await.state, JobState::Queued);
}

#[tokio::test]
async fn redis_down_is_unavailable_quickly() {
    let mut server = RedisServer::start();
    let options = RedisOptions {
        wait_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&server.url(), &unique_prefix("down"), options)
        .await
        .unwrap();
    let a = add(&store, job("site-a", "order.approve", "order:1")).await;
    server.stop();
    let started = Instant::now();
    for round in 0..3 {
        let t = Instant::now();
        match store
            .enqueue(job("site-a", "order.approve", "order:2"))
            .await
        {
            Err(StoreError::Unavailable(msg)) => assert!(!msg.is_empty()),
            // the first write after the kill went out on the old connection, which then
            // dropped: the store cannot know Redis did not take it
            Err(StoreError::OutcomeUnknown(msg)) if round == 0 => assert!(!msg.is_empty()),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(matches!(
            store.lease("w1", LEASE, NO_LIMITS).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.get(a.id).await,
            Err(StoreError::Unavailable(_))
        ));
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // when Redis returns (empty: it kept nothing), the same store recovers by itself
    server.restart();
    store.ping().await.expect("reconnects");
    add(&store, job("site-a", "order.approve", "order:3")).await;
}

/// A write sent to a Redis that then does not answer (paused with SIGSTOP) fails as
/// `OutcomeUnknown`, not `Unavailable`: once Redis runs again it has the job, and the retry with
/// the same idempotency key finds it instead of storing a second.
#[tokio::test]
async fn redis_paused_after_a_write_was_sent_is_outcome_unknown() {
    let server = RedisServer::start();
    let options = RedisOptions {
        wait_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(300),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&server.url(), &unique_prefix("paused"), options)
        .await
        .unwrap();
    // this thread's connection is open and Redis has the enqueue script (EVALSHA finds it)
    add(&store, job("site-a", "order.approve", "order:0")).await;
    let keyed = || NewJob {
        idempotency: Some(Idempotency {
            key: "nightly-1".into(),
            fingerprint: "fp-1".into(),
        }),
        ..job("site-a", "order.approve", "order:1")
    };
    server.pause();
    let sent = store.enqueue(keyed()).await;
    server.resume();
    match sent {
        Err(StoreError::OutcomeUnknown(msg)) => assert!(!msg.is_empty()),
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    }
    // Redis runs the script it was sent once it can: "nothing was stored" would have been false.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.counts().await.unwrap()[&JobState::Queued] < 2 {
        assert!(
            Instant::now() < deadline,
            "the sent write never took effect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match store.enqueue(keyed()).await.unwrap() {
        EnqueueOutcome::Existing(_) => {}
        other => panic!("the keyed retry stored a second job: {other:?}"),
    }
    assert_eq!(store.counts().await.unwrap()[&JobState::Queued], 2);
}

/// After a stall, a lease the worker gave up on (its call timed out) still lands in Redis; the
/// worker's next fenced call gives that job back at once, so the object is not blocked until
/// the lease expires (30 s here).
#[tokio::test]
async fn redis_a_lease_given_up_during_a_stall_does_not_block_its_object() {
    let server = RedisServer::start();
    let options = RedisOptions {
        wait_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(300),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&server.url(), &unique_prefix("fenced"), options)
        .await
        .unwrap();
    // the lease script is loaded and this thread's connection open
    assert!(matches!(
        store
            .lease_fenced("w1", LeaseFence::new(1), LEASE, NO_LIMITS)
            .await
            .unwrap(),
        LeaseResult::Idle { .. }
    ));
    let a = add(&store, job("site-a", "order.approve", "order:1")).await;
    server.pause();
    let lost = store
        .lease_fenced("w1", LeaseFence::new(2), LEASE, NO_LIMITS)
        .await;
    server.resume();
    assert!(
        matches!(lost, Err(StoreError::OutcomeUnknown(_))),
        "{lost:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(&store, a.id).await.state != JobState::Running {
        assert!(Instant::now() < deadline, "the lost lease never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    match store
        .lease_fenced(
            "w1",
            LeaseFence {
                number: 3,
                previous_lost: true,
            },
            LEASE,
            NO_LIMITS,
        )
        .await
        .unwrap()
    {
        LeaseResult::Leased(r) => {
            assert_eq!(r.id, a.id);
            assert_eq!(r.attempts, 1, "the lost attempt is not counted");
        }
        other => panic!("the object stayed blocked: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn redis_unreachable_at_start_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = RedisStore::connect(
        &format!("redis://127.0.0.1:{port}/"),
        "test:nobody:",
        RedisOptions::default(),
    )
    .await
    .unwrap();
    let t = Instant::now();
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(t.elapsed() < Duration::from_secs(3));
}

// ---------------------------------------------------------------------------------------------
// Embedded durability and exclusivity

#[tokio::test]
async fn embedded_reopen_keeps_jobs_and_leases_expire_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, delivered_key) = {
        let store = EmbeddedStore::open(dir.path()).await.unwrap();
        let a = add(&store, job("site-a", "order.approve", "order:1")).await;
        let b = add(&store, job("site-a", "order.approve", "order:1")).await;
        let mut u = usage_job("resource:1", "usage:r1", json!({"cpu": "1"}));
        u.idempotency = Some(Idempotency {
            key: "k1".into(),
            fingerprint: "f1".into(),
        });
        let u = add(&store, u).await;
        // a worker of this process takes a job, then the process "dies"
        let l = lease_for(&store, "w-dead", Duration::from_millis(200)).await;
        assert_eq!(l.id, a.id);
        let l2 = lease(&store, "w-ok").await;
        assert_eq!(l2.id, u.id);
        let ok = Completion::Succeeded {
            status: Some(200),
            result: json!(null),
            delivered: known(&[("cpu", "1")]),
        };
        assert!(store.complete(u.id, "w-ok", ok).await.unwrap());
        (a, b, "usage:r1")
    };
    let store = EmbeddedStore::open(dir.path()).await.unwrap();
    let r = get(&store, a.id).await;
    assert_eq!(r.state, JobState::Running);
    assert_eq!(get(&store, b.id).await.state, JobState::Queued);
    assert_eq!(
        store.delivered(delivered_key).await.unwrap()["cpu"].value,
        "1".to_string()
    );
    // the idempotency key survived
    let mut u = usage_job("resource:1", "usage:r1", json!({"cpu": "1"}));
    u.idempotency = Some(Idempotency {
        key: "k1".into(),
        fingerprint: "f2".into(),
    });
    assert!(matches!(
        store.enqueue(u).await,
        Err(StoreError::IdempotencyConflict { .. })
    ));
    // the object stays blocked until the dead process's lease expires and is reclaimed
    assert_eq!(assert_idle(&store).await, None);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.reclaim_expired().await.unwrap(), 1);
    let l = lease(&store, "w-new").await;
    assert_eq!((l.id, l.attempts), (a.id, 2));
    succeed(&store, &l).await;
    assert_eq!(lease(&store, "w-new").await.id, b.id);
    let c = store.counts().await.unwrap();
    assert_eq!(c[&JobState::Succeeded], 2);
    assert_eq!(c[&JobState::Running], 1);
}

#[tokio::test]
async fn embedded_second_open_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedStore::open(dir.path()).await.unwrap();
    let a = add(&first, job("site-a", "order.approve", "order:1")).await;
    match EmbeddedStore::open(dir.path()).await {
        Err(e @ StoreError::InUse(_)) => {
            assert!(puhuri_gateway::queue::embedded::is_in_use(&e));
            let msg = e.to_string();
            assert!(msg.contains("another gateway process"), "{msg}");
            let file = dir.path().join("jobs.redb");
            assert!(msg.contains(&file.display().to_string()), "{msg}");
        }
        Err(other) => panic!("expected InUse, got {other:?}"),
        Ok(_) => panic!("a second open of the same directory must be refused"),
    }
    // the first store is unharmed
    assert_eq!(get(&first, a.id).await.state, JobState::Queued);
    drop(first);
    let again = EmbeddedStore::open(dir.path()).await.unwrap();
    assert_eq!(get(&again, a.id).await.state, JobState::Queued);
}

/// An existing empty file is not a new store: refused, named, and left empty.
#[tokio::test]
async fn embedded_zero_length_file_is_refused_not_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.redb");
    std::fs::write(&file, b"").unwrap();
    match EmbeddedStore::open(dir.path()).await {
        Err(StoreError::Corrupt(msg)) => {
            assert!(msg.contains(&file.display().to_string()), "{msg}");
            assert!(msg.contains("empty") && !msg.contains('\n'), "{msg}");
        }
        Err(other) => panic!("expected the empty-file refusal, got {other:?}"),
        Ok(_) => panic!("an empty store file was opened as a new store"),
    }
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0);
    // a missing file is a new store
    std::fs::remove_file(&file).unwrap();
    let store = EmbeddedStore::open(dir.path()).await.unwrap();
    add(&store, job("site-a", "order.approve", "order:1")).await;
}

/// A store cut short (redb asserts on it) is refused with the file's name, and its writer
/// thread's absence does not matter: no panic reaches the caller.
#[tokio::test]
async fn embedded_truncated_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).await.unwrap();
    for n in 0..20 {
        add(
            &store,
            job("site-a", "order.approve", &format!("order:{n}")),
        )
        .await;
    }
    drop(store);
    let file = dir.path().join("jobs.redb");
    let whole = std::fs::read(&file).unwrap();
    std::fs::write(&file, &whole[..whole.len() / 3]).unwrap();
    match EmbeddedStore::open(dir.path()).await {
        Err(StoreError::Corrupt(msg)) => {
            assert!(msg.contains(&file.display().to_string()), "{msg}");
            assert!(msg.contains("damaged") && msg.contains("backup"), "{msg}");
        }
        Err(other) => panic!("expected the damaged-file refusal, got {other:?}"),
        Ok(_) => panic!("a truncated store file was opened"),
    }
    assert_eq!(std::fs::read(&file).unwrap().len(), whole.len() / 3);
}

/// The child half of `embedded_second_process_is_refused` (does nothing when run normally).
#[test]
fn embedded_child_process_open() {
    let Ok(dir) = std::env::var("QUEUE_TEST_CHILD_OPEN_DIR") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(EmbeddedStore::open(std::path::Path::new(&dir))) {
        Err(StoreError::InUse(msg)) if msg.contains("another gateway process") => {
            println!("REFUSED: {msg}")
        }
        Err(other) => panic!("expected the in-use refusal, got {other:?}"),
        Ok(_) => panic!("a second process opened a store that is in use"),
    }
}

#[tokio::test]
async fn embedded_second_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedStore::open(dir.path()).await.unwrap();
    let a = add(&first, job("site-a", "order.approve", "order:1")).await;
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "embedded_child_process_open", "--nocapture"])
        .args(["--test-threads", "1"])
        .env("QUEUE_TEST_CHILD_OPEN_DIR", dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .expect("the child process ends")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("REFUSED:"), "{stdout}");
    assert!(stdout.contains("jobs.redb"), "{stdout}");
    assert_eq!(get(&first, a.id).await.state, JobState::Queued);
}

// ---------------------------------------------------------------------------------------------
// delivered-map expiry (each backend built with a short time to live)

/// An attempt may change the components it carries without a definite answer: `lease` forgets
/// them (the others stay known), and only a recorded success puts knowledge back.
async fn lease_forgets_what_the_attempt_may_change(store: &dyn JobStore) {
    let ck = "usage:resource:8:2025-01";
    add(
        store,
        usage_job("resource:8", ck, json!({"cpu": "1", "gpu": "2"})),
    )
    .await;
    let first = lease(store, "w1").await;
    let ok = Completion::Succeeded {
        status: Some(200),
        result: json!(null),
        delivered: known(&[("cpu", "1"), ("gpu", "2")]),
    };
    assert!(store.complete(first.id, "w1", ok).await.unwrap());

    let next = add(store, usage_job("resource:8", ck, json!({"cpu": "3"}))).await;
    let leased = lease(store, "w1").await;
    assert_eq!(leased.id, next.id);
    assert_eq!(leased.delivered, Some(known(&[("cpu", "1"), ("gpu", "2")])));
    assert_eq!(store.delivered(ck).await.unwrap(), known(&[("gpu", "2")]));
    // no definite answer: still unknown, through a retry and a dead end
    let retry = Completion::Retry {
        at: Utc::now(),
        status: None,
        error: "timed out".into(),
        code: None,
    };
    assert!(store.complete(next.id, "w1", retry).await.unwrap());
    assert_eq!(store.delivered(ck).await.unwrap(), known(&[("gpu", "2")]));
    let again = lease(store, "w1").await;
    assert_eq!(again.delivered, Some(known(&[("gpu", "2")])));
    let dead = Completion::Dead {
        status: None,
        error: "timed out".into(),
        code: None,
    };
    assert!(store.complete(next.id, "w1", dead).await.unwrap());
    assert_eq!(store.delivered(ck).await.unwrap(), known(&[("gpu", "2")]));
    // an operator's retry that succeeds makes it known again
    store.retry(next.id).await.unwrap();
    let retried = lease(store, "w1").await;
    let ok = Completion::Succeeded {
        status: Some(200),
        result: json!(null),
        delivered: known(&[("cpu", "3")]),
    };
    assert!(store.complete(retried.id, "w1", ok).await.unwrap());
    assert_eq!(
        store.delivered(ck).await.unwrap(),
        known(&[("cpu", "3"), ("gpu", "2")])
    );
}

fn delivered_one(name: &str, value: &str) -> Completion {
    Completion::Succeeded {
        status: Some(200),
        result: json!(null),
        delivered: known(&[(name, value)]),
    }
}

/// Deliver `usages` for `ck` (one job, leased and completed); returns when the write started.
async fn deliver(store: &dyn JobStore, ck: &str, name: &str, value: &str) -> Instant {
    let object = format!("resource:{ck}");
    let r = add(store, usage_job(&object, ck, json!({ name: value }))).await;
    let l = lease(store, "w1").await;
    assert_eq!(l.id, r.id);
    let started = Instant::now();
    assert!(
        store
            .complete(r.id, "w1", delivered_one(name, value))
            .await
            .unwrap()
    );
    started
}

/// With a time to live of `TTL`: a map expires `TTL` after its last write, and every write
/// refreshes it; an expired map reads as empty and is gone after `purge_terminal`.
async fn delivered_maps_expire(store: &dyn JobStore) {
    const TTL: Duration = Duration::from_millis(1500);
    let (a, b) = ("usage:resource:a:2025-01", "usage:resource:b:2025-01");
    deliver(store, a, "cpu", "1").await;
    let b_done = {
        deliver(store, b, "cpu", "7").await;
        Instant::now()
    };
    tokio::time::sleep(TTL / 2).await;
    let a_refreshed = deliver(store, a, "gpu", "2").await;
    // past b's expiry, well before a's (refreshed) one
    tokio::time::sleep_until((b_done + TTL + Duration::from_millis(200)).into()).await;
    store
        .purge_terminal(Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(store.delivered(b).await.unwrap().is_empty(), "b expired");
    if a_refreshed.elapsed() < TTL - Duration::from_millis(100) {
        let want = known(&[("cpu", "1"), ("gpu", "2")]);
        assert_eq!(store.delivered(a).await.unwrap(), want, "a was refreshed");
    }
    tokio::time::sleep_until((a_refreshed + TTL + Duration::from_millis(300)).into()).await;
    assert!(store.delivered(a).await.unwrap().is_empty(), "a expired");
    store
        .purge_terminal(Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(store.delivered(a).await.unwrap().is_empty());
    // a new delivery after expiry starts a fresh map
    deliver(store, a, "ram", "3").await;
    assert_eq!(store.delivered(a).await.unwrap(), known(&[("ram", "3")]));
}

#[tokio::test]
async fn redis_delivered_maps_expire() {
    let server = shared();
    let store = RedisStore::connect(
        &server.url(),
        &unique_prefix("delivered_expiry"),
        RedisOptions::default(),
    )
    .await
    .unwrap()
    .with_delivered_ttl(Duration::from_millis(1500));
    delivered_maps_expire(&store).await;
}

#[tokio::test]
async fn embedded_delivered_maps_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path())
        .await
        .unwrap()
        .with_delivered_ttl(Duration::from_millis(1500));
    delivered_maps_expire(&store).await;
}

/// A store written with the earlier key layout (finished jobs in the zset `terminal`, every id
/// in the zset `all`, no `sites` set) is moved over by purge: its finished jobs are purged in
/// time and an admin's list sees every site's jobs again.
#[tokio::test]
async fn redis_purge_moves_the_earlier_key_layout_over() {
    let server = shared();
    let prefix = unique_prefix("earlier_layout");
    let store = RedisStore::connect(&server.url(), &prefix, RedisOptions::default())
        .await
        .unwrap();
    let a = add(&store, job("site-a", "order.approve", "order:1")).await;
    let b = add(&store, job("site-b", "order.approve", "order:2")).await;
    let l = lease(&store, "w1").await;
    assert_eq!(l.id, a.id);
    succeed(&store, &l).await;
    // Rewrite what the current layout holds into the earlier one.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let entry: String = redis::cmd("LPOP")
        .arg(format!("{prefix}finished"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let (at, id) = entry.split_once(':').unwrap();
    assert_eq!(id, a.id.to_string());
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg(format!("{prefix}terminal"))
        .arg(at)
        .arg(id)
        .cmd("ZADD")
        .arg(format!("{prefix}all"))
        .arg(0)
        .arg(a.id.to_string())
        .arg(0)
        .arg(b.id.to_string())
        .cmd("DEL")
        .arg(format!("{prefix}sites"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let admin = JobFilter {
        limit: 10,
        ..JobFilter::default()
    };
    assert!(store.list(&admin).await.unwrap().jobs.is_empty());

    // Within the retention nothing is purged, but the layout is moved over.
    assert_eq!(
        store
            .purge_terminal(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    let left: i64 = redis::cmd("EXISTS")
        .arg(format!("{prefix}terminal"))
        .arg(format!("{prefix}all"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let listed: Vec<_> = store
        .list(&admin)
        .await
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, vec![b.id, a.id]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.purge_terminal(Duration::ZERO).await.unwrap(), 1);
    assert!(store.get(a.id).await.unwrap().is_none());
    assert_eq!(get(&store, b.id).await.state, JobState::Queued);
}

#[tokio::test]
async fn redis_delivered_map_has_the_default_ttl() {
    let server = shared();
    let prefix = unique_prefix("delivered_default_ttl");
    let store = RedisStore::connect(&server.url(), &prefix, RedisOptions::default())
        .await
        .unwrap();
    let ck = "usage:resource:1:2025-01";
    deliver(&store, ck, "cpu", "1").await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}delivered:{ck}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let ttl = puhuri_gateway::queue::DELIVERED_TTL.as_millis() as i64;
    assert!(pttl > ttl - 60_000 && pttl <= ttl, "PTTL {pttl}");
}

#[tokio::test]
async fn embedded_delivered_maps_survive_reopen_until_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let ck = "usage:resource:1:2025-01";
    {
        let store = EmbeddedStore::open(dir.path()).await.unwrap();
        deliver(&store, ck, "cpu", "1").await;
    }
    // the default time to live keeps it across a restart and a purge
    let store = EmbeddedStore::open(dir.path()).await.unwrap();
    store.purge_terminal(Duration::ZERO).await.unwrap();
    assert_eq!(store.delivered(ck).await.unwrap(), known(&[("cpu", "1")]));
    drop(store);
    // a short one drops it
    let store = EmbeddedStore::open(dir.path())
        .await
        .unwrap()
        .with_delivered_ttl(Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .purge_terminal(Duration::from_secs(3600))
        .await
        .unwrap();
    drop(store);
    let store = EmbeddedStore::open(dir.path()).await.unwrap();
    assert!(store.delivered(ck).await.unwrap().is_empty());
}

/// Concurrent changes are group-committed: every one answered is in the file after a reopen,
/// and a refused one (an idempotency conflict) in the same group changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_group_commit_keeps_every_acknowledged_change() {
    use puhuri_gateway::queue::Idempotency;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(EmbeddedStore::open(dir.path()).await.unwrap());
    let mut tasks = Vec::new();
    for t in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..20 {
                let mut new = job("site-a", "usage.report", &format!("resource:{t}:{n}"));
                // Every task reuses one key with its own body: all but the first conflict.
                if n == 0 {
                    new.idempotency = Some(Idempotency {
                        key: "shared".into(),
                        fingerprint: format!("task-{t}"),
                    });
                }
                match store.enqueue(new).await {
                    Ok(outcome) => ids.push(outcome.job().id),
                    Err(StoreError::IdempotencyConflict { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            ids
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    // 64 x 19 plain jobs, plus the one task whose keyed job came first.
    assert_eq!(acknowledged.len(), 64 * 19 + 1);
    drop(store);
    let reopened = EmbeddedStore::open(dir.path()).await.unwrap();
    for id in &acknowledged {
        assert!(reopened.get(*id).await.unwrap().is_some(), "job {id} lost");
    }
    let counts = reopened.counts().await.unwrap();
    assert_eq!(
        counts.get(&JobState::Queued).copied(),
        Some(acknowledged.len() as u64)
    );
}

/// The keys the scripts write and the states they count are the ones `queue::protocol` defines:
/// every lifecycle step is run, then every key under the prefix must belong to the layout and
/// every field of the counts hash must be a state name.
#[tokio::test]
async fn redis_scripts_write_only_the_protocols_keys_and_states() {
    use puhuri_gateway::queue::protocol;
    let server = shared();
    let prefix = unique_prefix("protocol_keys");
    let store = RedisStore::connect(&server.url(), &prefix, RedisOptions::default())
        .await
        .unwrap();
    let mut idem = job("site-a", "order.approve", "order:1");
    idem.idempotency = Some(Idempotency {
        key: "k1".into(),
        fingerprint: "f1".into(),
    });
    let a = add(&store, idem).await;
    add(
        &store,
        usage_job("resource:r", "usage:r:2026-11", json!({"cpu": "1.00"})),
    )
    .await;
    add(
        &store,
        usage_job("resource:r", "usage:r:2026-11", json!({"cpu": "2.00"})),
    )
    .await;
    let limits = DeliveryLimits {
        max_in_flight: 10,
        max_per_second: 100,
        jitter_allowance_us: DEFAULT_JITTER_ALLOWANCE_US,
    };
    let mut seen = BTreeMap::new();
    for _ in 0..4 {
        if let LeaseResult::Leased(r) = store.lease("w1", LEASE, limits).await.unwrap() {
            seen.insert(r.id, r.clone());
            let outcome = if r.id == a.id {
                Completion::Failed {
                    status: Some(400),
                    error: "no".into(),
                    code: None,
                }
            } else {
                Completion::Succeeded {
                    status: Some(200),
                    result: json!({}),
                    delivered: known(&[("cpu", "2.00")]),
                }
            };
            assert!(store.complete(r.id, "w1", outcome).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(seen.contains_key(&a.id));
    store.retry(a.id).await.unwrap();
    let c = add(&store, job("site-b", "order.approve", "order:2")).await;
    store.cancel(c.id).await.unwrap();
    lease(&store, "w2").await;
    store.reclaim_expired().await.unwrap();
    store.purge_terminal(Duration::ZERO).await.unwrap();

    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.len() > 5, "{keys:?}");
    for key in &keys {
        let rest = key.strip_prefix(&prefix).unwrap();
        assert!(
            protocol::is_layout_key(rest),
            "{key} is not in the key layout"
        );
    }
    let counts: BTreeMap<String, i64> = redis::cmd("HGETALL")
        .arg(protocol::counts_key(&prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!counts.is_empty());
    for state in counts.keys() {
        assert!(JobState::parse(state).is_some(), "counted state {state}");
    }
}
