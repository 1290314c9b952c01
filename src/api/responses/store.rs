//! The error answers of the endpoints that read or change the gateway's own store: jobs and
//! events (re-exported by [`super`]).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use utoipa::IntoResponses;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

use super::{
    Status, bad_body, body_media_type, body_too_large, build, no_query_taken, unauthorized,
};
use crate::auth::Scope;
use crate::error::{ApiError, FieldError, PROBLEM_JSON};

/// 400 `invalid_query` for a job or event list's query (a filter or page size out of range).
fn store_list_query() -> Status {
    Status {
        description: "A query parameter is unknown or not valid",
        examples: vec![ApiError::InvalidQuery(
            "limit must be between 1 and 500".into(),
        )],
    }
}

/// 503 when the gateway's own store does not answer a read.
fn store_unavailable() -> Status {
    Status {
        description: "The job store cannot answer now; retry after `Retry-After`",
        examples: vec![ApiError::Unavailable {
            detail: "the job store is unavailable; nothing was stored, retry later".into(),
            retry_after: 5,
        }],
    }
}

/// The errors of the job endpoints that name one job (`GET /v1/jobs/{id}`), which read the
/// gateway's own store.
pub struct JobErrors;

impl IntoResponses for JobErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        build(vec![
            Status {
                description: "The query string has a parameter (the operation takes none)",
                examples: vec![no_query_taken()],
            },
            unauthorized(),
            Status {
                description: "No such job (or the id is not a uuid), or not the site's",
                examples: vec![ApiError::NotFound("no such job".into())],
            },
            store_unavailable(),
        ])
    }
}

/// The errors of the job list (`GET /v1/jobs`): those of [`JobErrors`] but 404, since the list
/// names no job (a `cursor` of no job is a page like any other).
pub struct JobListErrors;

impl IntoResponses for JobListErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        build(vec![
            store_list_query(),
            unauthorized(),
            store_unavailable(),
        ])
    }
}

/// A status answered with a problem document, without an example (the problem depends on the
/// object: a job's operation names the scope it lacks).
fn described(status: StatusCode, description: &str) -> (String, RefOr<Response>) {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    let response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content)
        .build();
    (status.as_str().to_string(), RefOr::T(response))
}

/// The errors of a job's retry or cancel: those of [`JobErrors`], 400 for a body too (these
/// actions take none), and 403 when the token lacks the scope that queues the job's operation.
/// That scope is the job's, so it is checked once the job is read, not in the handler's
/// signature.
pub struct JobChangeErrors;

impl IntoResponses for JobChangeErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = JobErrors::responses();
        responses.extend(build(vec![Status {
            description: "A body was sent (the action takes none), or the query string has a \
                          parameter (the action takes none)",
            examples: vec![
                ApiError::InvalidJson("this operation takes no body; send none".into()),
                no_query_taken(),
            ],
        }]));
        responses.extend([described(
            StatusCode::FORBIDDEN,
            "The token lacks the scope that queues the job's operation (`usage:write` for \
             `usage.report`...); or, with `jobs:admin`, the job is delivered with another Puhuri \
             identity than the site's",
        )]);
        responses
    }
}

fn events_scope() -> Status {
    Status {
        description: "The token lacks `events:read`",
        examples: vec![ApiError::MissingScope(Scope::EventsRead)],
    }
}

/// The errors of the event list (`GET /v1/events`), which reads the gateway's own store like
/// the job list: its query, the token, 403 without `events:read`, and the store.
pub struct EventErrors;

impl IntoResponses for EventErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        build(vec![
            store_list_query(),
            unauthorized(),
            events_scope(),
            store_unavailable(),
        ])
    }
}

/// The errors of a replay (`POST /v1/events/replay`): its body, the token, 403 without
/// `events:read`, 404 for an `event_id` the site's endpoints never carried, 422 for a body that
/// does not say where to start or names no endpoint of the site, and the store.
pub struct EventReplayErrors;

impl IntoResponses for EventReplayErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        build(vec![
            bad_body(),
            unauthorized(),
            events_scope(),
            Status {
                description: "`event_id` names no event the site's endpoints (or the one named \
                              in `endpoint`) carried: never emitted for the site, or past \
                              `events.retention`",
                examples: vec![ApiError::NotFound(
                    "no event of the site has this id".into(),
                )],
            },
            body_too_large(),
            body_media_type(),
            Status {
                description: "Neither or both of `since` and `event_id` (or an `event_id` \
                              longer than 128 characters), or `endpoint` names no endpoint of \
                              the site",
                examples: vec![ApiError::validation(vec![FieldError::new(
                    "since",
                    "give exactly one of `since` (a time) and `event_id` (1-128 characters)",
                )])],
            },
            Status {
                description: "`unavailable`: the job store cannot answer now. \
                              `store_outcome_unknown`: a delivery was sent to the store and no \
                              definite answer came back, so some of the replay may be stored; a \
                              retry stores those again (the same event ids: receivers \
                              de-duplicate by `webhook-id`). Either way retry after \
                              `Retry-After`",
                examples: vec![
                    ApiError::Unavailable {
                        detail: "the job store is unavailable; nothing was stored, retry later"
                            .into(),
                        retry_after: 5,
                    },
                    ApiError::OutcomeUnknown { retry_after: 1 },
                ],
            },
        ])
    }
}
