//! What an operator may do to a job beyond what the store itself checks, one rule set for the
//! API (`POST /v1/jobs/{id}/retry`, `.../cancel`) and the offline command (`puhuri-gateway jobs
//! retry|discard`), so that neither path can put an older value back in Puhuri or leave an order
//! open behind a `canceled` job.
//!
//! - A retry of a job whose operation sets a value
//!   ([`Operation::sets_a_value`](crate::domain::operations::Operation::sets_a_value)) is refused
//!   when a newer job of the same operation on the same object exists, from any site (two sites
//!   bound to the same offering set the same resource's backend id), unless that newer job was
//!   canceled. Usage reports are checked per component by the stores ([`JobStore::retry`]).
//! - A cancel of an allocator's job that already placed its order in Puhuri (it follows it, the
//!   order's uuid in its result) is refused: `canceled` means nothing reached Puhuri.

use std::fmt;

use super::{JobFilter, JobId, JobRecord, JobState, JobStore, StoreResult};
use crate::domain::operations::Operation;

/// Why an operator's retry or cancel is refused (an HTTP 409; the command exits non-zero).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A newer job of the same operation on the same object: retried, this older one would
    /// replace its value in Puhuri.
    NewerValue { newer: JobId, operation: String },
    /// The job placed order `order` in Puhuri and follows it.
    OrderPlaced { job: JobId, order: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NewerValue { newer, operation } => write!(
                f,
                "job {newer} sent a newer {operation} for the same object; retrying this older \
                 one would replace it in Puhuri (retry job {newer}, or send the value again)"
            ),
            Refusal::OrderPlaced { job, order } => write!(
                f,
                "job {job} already placed order {order} in Puhuri and follows it; canceling the \
                 job would leave the order open. Cancel the order instead: POST \
                 /v1/allocations/orders/{order}/cancel (or reject it: .../reject); the job then \
                 ends with the order"
            ),
        }
    }
}

/// `Err` when `job` may not be retried (see the module doc). Reads the jobs of its operation
/// newer than it, newest first, page by page (jobs are kept until they expire, so this is
/// bounded by what was sent since); a newer job accepted while this is decided is not seen: the
/// window is one store round trip.
pub async fn check_retry(
    store: &dyn JobStore,
    job: &JobRecord,
) -> StoreResult<Result<(), Refusal>> {
    if !Operation::sets_a_value(&job.operation) {
        return Ok(Ok(()));
    }
    let mut before = None;
    loop {
        let page = store
            .list(&JobFilter {
                site: None,
                state: None,
                operation: Some(job.operation.clone()),
                before,
                limit: 500,
            })
            .await?;
        for newer in &page.jobs {
            if newer.id <= job.id {
                return Ok(Ok(()));
            }
            if newer.object_key == job.object_key && newer.state != JobState::Canceled {
                return Ok(Err(Refusal::NewerValue {
                    newer: newer.id,
                    operation: job.operation.clone(),
                }));
            }
        }
        match page.next_cursor {
            Some(cursor) => before = Some(cursor),
            None => return Ok(Ok(())),
        }
    }
}

/// `Err` when `job` may not be canceled (see the module doc).
pub fn check_cancel(job: &JobRecord) -> Result<(), Refusal> {
    match followed_order(job) {
        Some(order) => Err(Refusal::OrderPlaced { job: job.id, order }),
        None => Ok(()),
    }
}

/// The order a job follows (an allocator's job whose order Puhuri already has), from its result.
pub fn followed_order(job: &JobRecord) -> Option<String> {
    job.result
        .as_ref()
        .and_then(|r| r.get("order_uuid"))
        .and_then(serde_json::Value::as_str)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
}
