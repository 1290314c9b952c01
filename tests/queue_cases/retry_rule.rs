//! Conformance of the operator-retry rule ("The last total wins", point 5, in `queue/mod.rs`):
//! a `failed` or `dead` usage job is retried only when no newer job of its coalesce key carries
//! one of its components, wherever that newer job is: still in the object's line (waiting or
//! running), or ended (succeeded, failed, dead, canceled), including one that ended before the
//! older job did.

use std::collections::BTreeMap;
use std::time::Duration;

use puhuri_gateway::queue::protocol::DEFAULT_JITTER_ALLOWANCE_US;
use puhuri_gateway::queue::{
    Completion, DeliveryLimits, EnqueueOutcome, JobId, JobRecord, JobState, JobStore, LeaseResult,
    NewJob, StoreError,
};
use serde_json::json;

const KEY: &str = "usage:resource:9:2025-01";

fn report(usages: serde_json::Value) -> NewJob {
    NewJob {
        site: "site-a".into(),
        operation: "usage.report".into(),
        object_key: "resource:9".into(),
        coalesce_key: Some(KEY.into()),
        payload: json!({"resource": "resource:9", "period": "2025-01", "usages": usages}),
        idempotency: None,
    }
}

async fn accept(store: &dyn JobStore, usages: serde_json::Value) -> JobRecord {
    match store.enqueue(report(usages)).await.expect("enqueue") {
        EnqueueOutcome::Created(r, _) => r,
        other => panic!("expected Created, got {other:?}"),
    }
}

async fn lease_next(store: &dyn JobStore) -> JobRecord {
    let limits = DeliveryLimits {
        max_in_flight: 0,
        max_per_second: 0,
        jitter_allowance_us: DEFAULT_JITTER_ALLOWANCE_US,
    };
    match store
        .lease("w1", Duration::from_secs(30), limits)
        .await
        .expect("lease")
    {
        LeaseResult::Leased(r) => r,
        other => panic!("expected a lease, got {other:?}"),
    }
}

fn dead() -> Completion {
    Completion::Dead {
        status: Some(503),
        error: "retries exhausted".into(),
        code: None,
    }
}

fn succeeded() -> Completion {
    Completion::Succeeded {
        status: Some(200),
        result: json!({"ok": true}),
        delivered: BTreeMap::new(),
    }
}

/// Leases the next job, which must be `want`, and ends it with `outcome`.
async fn end_next(store: &dyn JobStore, want: JobId, outcome: Completion) {
    let l = lease_next(store).await;
    assert_eq!(l.id, want, "jobs of one object run in acceptance order");
    assert!(store.complete(l.id, "w1", outcome).await.unwrap());
}

fn assert_outdated(answer: Result<JobRecord, StoreError>, newer: JobId) {
    match answer {
        Err(StoreError::Outdated { newer: n }) => assert_eq!(n, newer),
        other => panic!("expected Outdated naming {newer}, got {other:?}"),
    }
}

pub async fn a_retry_is_refused_while_a_newer_job_of_its_key_carries_a_component(
    store: &dyn JobStore,
) {
    // a dies; b (same component) waits behind it: refused, naming b
    let a = accept(store, json!({"cpu": "1"})).await;
    end_next(store, a.id, dead()).await;
    let b = accept(store, json!({"cpu": "2"})).await;
    assert_outdated(store.retry(a.id).await, b.id);
    // b running: still refused
    let lb = lease_next(store).await;
    assert_eq!(lb.id, b.id);
    assert_outdated(store.retry(a.id).await, b.id);
    // b ended: refused by what the store noted when it ended
    assert!(store.complete(b.id, "w1", succeeded()).await.unwrap());
    assert_outdated(store.retry(a.id).await, b.id);
    // the newest job of the key is retried
    let c = accept(store, json!({"cpu": "3"})).await;
    end_next(store, c.id, dead()).await;
    assert_eq!(store.retry(c.id).await.unwrap().state, JobState::Queued);
    end_next(store, c.id, succeeded()).await;
    assert_outdated(store.retry(a.id).await, c.id);
}

pub async fn a_retry_is_allowed_when_newer_jobs_carry_other_components(store: &dyn JobStore) {
    let a = accept(store, json!({"gpu": "1"})).await;
    end_next(store, a.id, dead()).await;
    // a newer job of the key, another component, still waiting: no conflict
    let b = accept(store, json!({"cpu": "2"})).await;
    assert_eq!(store.retry(a.id).await.unwrap().state, JobState::Queued);
    end_next(store, b.id, succeeded()).await;
    end_next(store, a.id, dead()).await;
    // ended too: still no conflict
    assert_eq!(store.retry(a.id).await.unwrap().state, JobState::Queued);
    end_next(store, a.id, succeeded()).await;
}

pub async fn a_newer_job_that_ended_first_still_refuses_the_retry(store: &dyn JobStore) {
    // a is running when the newer b, waiting behind it, is canceled: b ends first
    let a = accept(store, json!({"cpu": "1", "ram": "1"})).await;
    let la = lease_next(store).await;
    assert_eq!(la.id, a.id);
    let b = accept(store, json!({"ram": "2"})).await;
    assert_eq!(store.cancel(b.id).await.unwrap().state, JobState::Canceled);
    assert!(store.complete(a.id, "w1", dead()).await.unwrap());
    // a canceled report is still one the site sent after a
    assert_outdated(store.retry(a.id).await, b.id);

    // a retried job that dies again after a newer job was accepted behind it
    let c = accept(store, json!({"gpu": "1"})).await;
    end_next(store, c.id, dead()).await;
    let d = accept(store, json!({"disk": "1"})).await;
    end_next(store, d.id, succeeded()).await;
    // d carries another component
    assert_eq!(store.retry(c.id).await.unwrap().state, JobState::Queued);
    let lc = lease_next(store).await;
    assert_eq!(lc.id, c.id);
    // c is running, so e does not absorb it
    let e = accept(store, json!({"gpu": "2", "disk": "2"})).await;
    assert!(store.complete(c.id, "w1", dead()).await.unwrap());
    assert_outdated(store.retry(c.id).await, e.id);
    end_next(store, e.id, succeeded()).await;
    assert_outdated(store.retry(c.id).await, e.id);
}
