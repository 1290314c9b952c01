//! Jobs: every accepted write is one, and a site can always see where it stands.

use actix_web::http::header;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::body::NoBody;
use super::responses::{JobChangeErrors, JobErrors, JobListErrors};
use crate::auth::{Scope, SiteIdentity};
use crate::error::{ApiError, Problem};
use crate::queue::{JobFilter, JobRecord, JobState, StoreError, operator};

/// A job as a site sees it.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "job_id": "019a3c1e-7f0c-7cc1-9a35-2f1e7f6b0b1a",
    "state": "succeeded",
    "operation": "usage.report",
    "site": "lumi-accounting",
    "attempts": 1,
    "created_at": "2026-11-23T10:00:00Z",
    "updated_at": "2026-11-23T10:00:01Z",
    "payload": {"resource_uuid": "5f0c6b7e0b3b4a43b0f8d9a1c2e3f4a5", "month": "2026-11", "usages": {"cpu_k_hours": "12.50"}},
    "result": {"sent": {"cpu_k_hours": "12.50"}, "unchanged": []}
}))]
pub struct JobView {
    pub job_id: Uuid,
    pub state: JobState,
    #[schema(value_type = super::names::OperationName)]
    pub operation: String,
    pub site: String,
    /// Delivery attempts started.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of Puhuri's last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Why the last attempt failed, in Puhuri's words where it gave any (text for people).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Why the last attempt failed, as a code to act on (absent once the job succeeds, and for
    /// jobs stored before the field existed):
    /// `upstream_unauthorized` (401: Puhuri does not accept the gateway's service-provider
    /// token), `upstream_forbidden` (403: the token may not do this), `upstream_not_found`
    /// (404), `upstream_conflict` (409: the object is not in a state that allows it),
    /// `upstream_refused` (another 4xx; Waldur's message is in `last_error`),
    /// `upstream_unavailable` (no answer, a timeout, 5xx or 408: retried), `upstream_throttled`
    /// (429: retried after Puhuri's `Retry-After`), `upstream_unreadable` (a success the
    /// gateway could not read: retried), `payload_unreadable` (the stored job cannot be read),
    /// `lease_expired` (the worker delivering it stopped; delivered again). The first two are a
    /// configuration problem of the gateway, not of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "upstream_forbidden")]
    pub failure_code: Option<String>,
    /// What the delivery did (for usage: which values were sent and which were unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// For `superseded` jobs: the newer job that carries this one's values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<Uuid>,
    /// The operation as it was queued (resource names resolved to uuids).
    pub payload: Value,
}

impl From<JobRecord> for JobView {
    fn from(j: JobRecord) -> JobView {
        JobView {
            job_id: j.id,
            state: j.state,
            operation: j.operation,
            site: j.site,
            attempts: j.attempts,
            created_at: j.created_at,
            updated_at: j.updated_at,
            next_attempt_at: j.next_attempt_at,
            last_status: j.last_status,
            last_error: j.last_error,
            failure_code: j.failure_code,
            result: j.result,
            superseded_by: j.superseded_by,
            payload: j.payload,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        if matches!(
            e,
            StoreError::Unavailable(_)
                | StoreError::InUse(_)
                | StoreError::OutcomeUnknown(_)
                | StoreError::Corrupt(_)
        ) {
            crate::telemetry::metrics::store_error("api");
        }
        match e {
            StoreError::Unavailable(cause) | StoreError::InUse(cause) => {
                tracing::warn!(%cause, "the job store is unavailable");
                ApiError::Unavailable {
                    detail: "the job store is unavailable; nothing was stored, retry later".into(),
                    retry_after: 5,
                }
            }
            StoreError::OutcomeUnknown(cause) => {
                tracing::warn!(%cause, "the job store did not answer a write");
                ApiError::OutcomeUnknown { retry_after: 1 }
            }
            StoreError::IdempotencyConflict { .. } => ApiError::IdempotencyConflict,
            StoreError::NotFound => ApiError::NotFound("no such job".into()),
            StoreError::InvalidState { state } => ApiError::Conflict(format!(
                "the job is {}, which does not allow this",
                state.as_str()
            )),
            StoreError::Corrupt(cause) => ApiError::Internal(cause),
            e @ StoreError::Outdated { .. } => ApiError::Conflict(e.to_string()),
        }
    }
}

pub fn job_location(id: Uuid) -> String {
    format!("/v1/jobs/{id}")
}

/// A job the caller may see: its own site's, or any with `jobs:admin`. Others are 404, so job
/// ids of other sites cannot be probed.
async fn visible_job(
    state: &AppState,
    identity: &SiteIdentity,
    id: Uuid,
) -> Result<JobRecord, ApiError> {
    let job = state
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such job".into()))?;
    if job.site != identity.id() && !identity.has(Scope::JobsAdmin) {
        return Err(ApiError::NotFound("no such job".into()));
    }
    Ok(job)
}

/// The job, if the site may change it: its own (or any, with `jobs:admin`), and the token grants
/// the scope that queues its operation (`usage:write` for `usage.report`...): a `read`-only
/// token may look at jobs, not cancel or retry them.
async fn changeable_job(
    state: &AppState,
    identity: &SiteIdentity,
    id: Uuid,
) -> Result<JobRecord, ApiError> {
    let job = visible_job(state, identity, id).await?;
    if job.site != identity.id() {
        // `jobs:admin` acts only on jobs delivered with the site's own Puhuri identity: a
        // service provider's site never makes an allocator's job deliver (with the
        // allocator's token), nor the other way round. Reading stays open to it.
        let job_identity =
            crate::domain::operations::Operation::from_job(&job.operation, &job.payload)
                .ok()
                .and_then(|op| op.identity().map(str::to_string))
                .unwrap_or_else(|| crate::config::SP_IDENTITY.to_string());
        if job_identity != identity.site.identity {
            return Err(ApiError::Forbidden(format!(
                "job {} is delivered with the Puhuri identity `{job_identity}`, not this site's \
                 (`{}`): jobs:admin retries and cancels only jobs of its own identity",
                job.id, identity.site.identity
            )));
        }
    }
    match crate::domain::operations::Operation::scope_of(&job.operation) {
        Some(scope) if identity.has(scope) || identity.has(Scope::JobsAdmin) => Ok(job),
        Some(scope) => Err(ApiError::MissingScope(scope)),
        None => Err(ApiError::internal(format!(
            "job {} has an unknown operation `{}`",
            job.id, job.operation
        ))),
    }
}

/// One job.
#[utoipa::path(
    tag = "jobs",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job id, from the answer to a write (no example: a fresh gateway has no jobs)")),
    responses(
        (status = 200, body = JobView),
        JobErrors,
    )
)]
#[get("/jobs/{id}")]
pub async fn get_job(
    identity: SiteIdentity,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = visible_job(&state, &identity, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(JobView::from(job)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListJobsQuery {
    /// Only jobs in this state.
    #[param(value_type = Option<JobState>)]
    pub state: Option<String>,
    /// Only jobs of this operation, e.g. `usage.report`.
    #[param(value_type = Option<super::names::OperationName>)]
    pub operation: Option<String>,
    /// Only this site's jobs (`jobs:admin` only; others always see just their own).
    #[param(min_length = 1, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$")]
    pub site: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// Jobs, newest first: the site's own, or every site's with `jobs:admin`.
#[utoipa::path(
    tag = "jobs",
    security(("bearer" = [])),
    params(ListJobsQuery),
    responses(
        (status = 200, body = JobList),
        JobListErrors,
    )
)]
#[get("/jobs")]
pub async fn list_jobs(
    identity: SiteIdentity,
    state: web::Data<AppState>,
    query: web::Query<ListJobsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let job_state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::InvalidQuery(format!(
                "state must be one of: {}",
                JobState::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?),
    };
    let operations = <crate::domain::operations::Operation as strum::VariantNames>::VARIANTS;
    if let Some(op) = q.operation.as_deref()
        && !operations.contains(&op)
    {
        return Err(ApiError::InvalidQuery(format!(
            "operation must be one of: {}",
            operations.join(", ")
        )));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::InvalidQuery(
            "limit must be between 1 and 500".into(),
        ));
    }
    let site = if identity.has(Scope::JobsAdmin) {
        q.site
    } else {
        Some(identity.id().to_string())
    };
    let page = state
        .store
        .list(&JobFilter {
            site,
            state: job_state,
            operation: q.operation,
            before: q.cursor,
            limit,
        })
        .await?;
    Ok(HttpResponse::Ok().json(JobList {
        jobs: page.jobs.into_iter().map(JobView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Try a `failed` or `dead` job again (attempts start over).
///
/// A usage report is refused (409, naming the newer job) when a newer report of the same
/// resource and month carries one of its components: delivered now, its older total would
/// replace the newer one in Puhuri. Send the current total instead. The same holds for every
/// operation that sets a value (backend id, state, report, limits, usernames; an allocation's
/// name, description, end date, options and limits): a newer job of the same operation on the
/// same object, from any site, refuses the retry of an older one (`queue::operator`).
#[utoipa::path(
    tag = "jobs",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job id, from the answer to a write (no example: a fresh gateway has no jobs)")),
    responses(
        (status = 202, body = JobView, description = "Queued again", headers(("Location" = String, description = "The job"))),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Not failed or dead; or a newer job sent the same value (a usage report of the same resource, month and component; the same operation on the same object, from any site, for backend ids, states, reports, limits and usernames and an allocation's name, description, end date, options and limits)"),
        JobChangeErrors,
    )
)]
#[post("/jobs/{id}/retry")]
pub async fn retry_job(
    identity: SiteIdentity,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    _no_body: NoBody,
) -> Result<HttpResponse, ApiError> {
    let job = changeable_job(&state, &identity, id.into_inner()).await?;
    operator::check_retry(&*state.store, &job)
        .await?
        .map_err(|refusal| ApiError::Conflict(refusal.to_string()))?;
    let job = state.store.retry(job.id).await?;
    state.wake.notify_one();
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, job_location(job.id)))
        .json(JobView::from(job)))
}

/// Cancel a job that has not been delivered yet (`queued` or `retrying`).
///
/// An allocator's job that already placed its order in Puhuri and follows it is not canceled
/// (409, naming the order): `canceled` means nothing reached Puhuri, and the order would stay
/// open. Cancel (or reject) the order itself with `POST /v1/allocations/orders/{uuid}/cancel`;
/// the job then fails with the order's end.
///
/// A `POST` to the job's `cancel` action rather than a `DELETE` of the job: the job is not
/// removed, it stays visible as `canceled` (every job is kept until it expires).
#[utoipa::path(
    tag = "jobs",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job id, from the answer to a write (no example: a fresh gateway has no jobs)")),
    responses(
        (status = 200, body = JobView, description = "Canceled"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Running or finished; or an allocator's job whose order Puhuri already has (cancel the order: `POST /v1/allocations/orders/{uuid}/cancel`)"),
        JobChangeErrors,
    )
)]
#[post("/jobs/{id}/cancel")]
pub async fn cancel_job(
    identity: SiteIdentity,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    _no_body: NoBody,
) -> Result<HttpResponse, ApiError> {
    let job = changeable_job(&state, &identity, id.into_inner()).await?;
    operator::check_cancel(&job).map_err(|refusal| ApiError::Conflict(refusal.to_string()))?;
    let job = state.store.cancel(job.id).await?;
    Ok(HttpResponse::Ok().json(JobView::from(job)))
}
