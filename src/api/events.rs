//! Events: what the gateway sent (or is sending) to the site's endpoints, with each delivery's
//! attempts; and a replay that sends them again. Both need the scope `events:read` (a replay
//! only sends the site's own events again, to its own configured endpoints).

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::body::JsonBody;
use super::responses::{EventErrors, EventReplayErrors};
use crate::auth::scoped::{Authorized, EventsRead};
use crate::domain::event::{Event, EventType};
use crate::error::{ApiError, FieldError};
use crate::events::ReplayFrom;
use crate::queue::{JobFilter, JobState};

/// One delivery of an event to one endpoint of the site.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "delivery_id": "019a3c1e-7f0c-7cc1-9a35-2f1e7f6b0b1a",
    "endpoint": "accounting",
    "state": "succeeded",
    "attempts": 2,
    "created_at": "2026-11-23T10:00:00Z",
    "updated_at": "2026-11-23T10:00:03Z",
    "last_status": 200,
    "event": {"id": "evt_job_019a3c1e7f0c7cc19a352f1e7f6b0b1a_succeeded_1_1795428001000", "type": "job.succeeded",
              "version": 1, "time": "2026-11-23T10:00:01.000Z", "data": {"job_id": "019a3c1e-7f0c-7cc1-9a35-2f1e7f6b0b1a", "state": "succeeded"}}
}))]
pub struct DeliveryView {
    /// The delivery's id (also the listing's cursor).
    pub delivery_id: Uuid,
    /// The endpoint's `name` in the configuration.
    pub endpoint: String,
    /// `queued`, `running`, `retrying` (see `next_attempt_at`), `succeeded` (the endpoint
    /// answered 2xx) or `dead` (attempts or age exhausted: replay it).
    pub state: JobState,
    /// Attempts started.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the endpoint's last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Why the last attempt failed (`endpoint_unavailable`: no answer, a timeout or not 2xx).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The event as the endpoint receives it.
    pub event: Event,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEventsQuery {
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<EventType>)]
    pub event_type: Option<String>,
    /// Only deliveries in this state (e.g. `dead`).
    #[param(value_type = Option<JobState>)]
    pub state: Option<String>,
    /// Only deliveries to this endpoint (its configured `name`).
    #[param(min_length = 1, max_length = 32, pattern = "^[a-z0-9_-]+$")]
    pub endpoint: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    /// Newest first.
    pub deliveries: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// The site's events and their deliveries, newest first, to catch up after an outage.
///
/// Events are kept for `events.retention` (14 days by default) and only for sites with an
/// endpoint (`[[sites.callbacks]]`) that wants their type.
#[utoipa::path(
    tag = "events",
    security(("bearer" = [])),
    params(ListEventsQuery),
    responses(
        (status = 200, body = EventList),
        EventErrors,
    )
)]
#[get("/events")]
pub async fn list_events(
    identity: Authorized<EventsRead>,
    state: web::Data<AppState>,
    query: web::Query<ListEventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let event_type = match q.event_type.as_deref() {
        None => None,
        Some(t) => Some(EventType::parse(t).ok_or_else(|| {
            ApiError::InvalidQuery(format!("type must be one of: {}", type_names()))
        })?),
    };
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
    if let Some(name) = q.endpoint.as_deref()
        && !crate::config::callbacks::endpoint_name_ok(name)
    {
        return Err(ApiError::InvalidQuery(
            "endpoint must be 1-32 of a-z, 0-9, '-' and '_'".into(),
        ));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::InvalidQuery(
            "limit must be between 1 and 500".into(),
        ));
    }
    let found = state
        .events
        .list(
            identity.id(),
            q.endpoint.as_deref(),
            &JobFilter {
                site: None,
                state: job_state,
                operation: event_type.map(|t| t.as_str().to_owned()),
                before: q.cursor,
                limit: limit + 1,
            },
        )
        .await?;
    let more = found.len() > limit;
    let deliveries: Vec<DeliveryView> = found
        .into_iter()
        .take(limit)
        .filter_map(|(endpoint, job)| {
            Some(DeliveryView {
                delivery_id: job.id,
                endpoint: endpoint.name.clone(),
                state: job.state,
                attempts: job.attempts,
                created_at: job.created_at,
                updated_at: job.updated_at,
                next_attempt_at: job.next_attempt_at,
                last_status: job.last_status,
                last_error: job.last_error,
                event: serde_json::from_value(job.payload).ok()?,
            })
        })
        .collect();
    let next_cursor = more
        .then(|| deliveries.last().map(|d| d.delivery_id))
        .flatten();
    Ok(HttpResponse::Ok().json(EventList {
        deliveries,
        next_cursor,
    }))
}

fn type_names() -> String {
    EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a replay starts: exactly one of `since` and `event_id`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"since": "2026-11-23T00:00:00Z"}))]
pub struct ReplayRequest {
    /// Every event emitted at or after this time (RFC 3339).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// This event (`evt_...`) and every one emitted after it.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub event_id: Option<String>,
    /// Only to this endpoint (its configured `name`); absent: each endpoint gets its own events
    /// again.
    #[serde(default)]
    pub endpoint: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"replayed": 0, "delivery_ids": []}))]
pub struct ReplayResult {
    /// How many deliveries were stored.
    pub replayed: usize,
    /// The new deliveries, oldest event first (see `GET /v1/events`).
    pub delivery_ids: Vec<Uuid>,
}

/// Send the site's past events again (the same event ids: receivers de-duplicate by
/// `webhook-id`), oldest first, to the endpoints that first got them. A `dead` delivery stays
/// listed as it ended; its replay is a new delivery. At most 10,000 per endpoint per call.
#[utoipa::path(
    tag = "events",
    security(("bearer" = [])),
    request_body = ReplayRequest,
    responses(
        (status = 200, body = ReplayResult, description = "The deliveries are stored and will be sent"),
        EventReplayErrors,
    )
)]
#[post("/events/replay")]
pub async fn replay_events(
    identity: Authorized<EventsRead>,
    state: web::Data<AppState>,
    body: JsonBody<ReplayRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let from = match (request.since, request.event_id) {
        (Some(t), None) => ReplayFrom::Time(t),
        (None, Some(id)) if !id.is_empty() && id.len() <= 128 => ReplayFrom::Event(id),
        _ => {
            return Err(ApiError::validation(vec![FieldError {
                field: "since".into(),
                message: "give exactly one of `since` (a time) and `event_id` (1-128 characters)"
                    .into(),
            }]));
        }
    };
    if let Some(name) = &request.endpoint
        && !state
            .events
            .lanes_of(identity.id())
            .any(|l| &l.endpoint.name == name)
    {
        return Err(ApiError::validation(vec![FieldError {
            field: "endpoint".into(),
            message: "names no endpoint of the site".into(),
        }]));
    }
    let created = state
        .events
        .replay(identity.id(), request.endpoint.as_deref(), &from)
        .await?
        .ok_or_else(|| ApiError::NotFound("no event of the site has this id".into()))?;
    Ok(HttpResponse::Ok().json(ReplayResult {
        replayed: created.len(),
        delivery_ids: created,
    }))
}
