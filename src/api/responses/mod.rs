//! The error answers of the OpenAPI document, as shared sets rather than a list per route.
//!
//! Each set is a type a handler's `responses(...)` names: the writes' ([`WriteErrors`],
//! [`PathlessWriteErrors`], [`BodilessWriteErrors`], [`BatchErrors`]), the reads' in [`reads`]
//! ([`ReadErrors`], [`OneReadErrors`], [`ResourceReadErrors`], [`ResourceUsageErrors`],
//! [`PeopleReadErrors`], [`AllocatorProjectsErrors`]), the jobs' and events' in [`store`]
//! ([`JobErrors`], [`JobListErrors`], [`JobChangeErrors`], [`EventErrors`],
//! [`EventReplayErrors`]), and [`TokenErrors`]; [`Queued`] is the same for the answers of a
//! queued write that succeed. A set that needs a scope takes it as a type
//! (`WriteErrors<UsageWrite>`, `ReadErrors<AllocationsRead>`), so its 403 example names that
//! scope. Every error status a route of that kind can answer is in its set, and every example is
//! the problem document the gateway really sends for that case: it is built from the
//! same [`ApiError`] the handlers return, so an example cannot drift from the server.

use std::collections::BTreeMap;

use actix_web::ResponseError;
use actix_web::http::StatusCode;
use utoipa::IntoResponses;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

use crate::auth::{Scope, TokenRejection};
use crate::error::{ApiError, FieldError, PROBLEM_JSON};

mod reads;
mod store;
pub use reads::{
    AllocatorProjectsErrors, OneReadErrors, PeopleReadErrors, ReadErrors, ResourceReadErrors,
    ResourceUsageErrors,
};
pub use store::{EventErrors, EventReplayErrors, JobChangeErrors, JobErrors, JobListErrors};

/// One status: what it means, and the problems the gateway answers with it (each an example).
struct Status {
    description: &'static str,
    examples: Vec<ApiError>,
}

fn build(statuses: Vec<Status>) -> BTreeMap<String, RefOr<Response>> {
    statuses
        .into_iter()
        .map(|s| {
            let status = s
                .examples
                .first()
                .map(|e| e.status_code())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem")));
            content = if let [one] = s.examples.as_slice() {
                content.example(serde_json::to_value(one.problem()).ok())
            } else {
                content.examples_from_iter(s.examples.iter().map(|e| {
                    (
                        e.code(),
                        ExampleBuilder::new()
                            .value(serde_json::to_value(e.problem()).ok())
                            .build(),
                    )
                }))
            };
            let response = ResponseBuilder::new()
                .description(s.description)
                .content(PROBLEM_JSON, content.build())
                .build();
            (status.as_str().to_string(), RefOr::T(response))
        })
        .collect()
}

fn unauthorized() -> Status {
    Status {
        description: "No token, or the token was refused (`detail` names the rule)",
        examples: vec![
            ApiError::MissingToken,
            ApiError::InvalidToken(TokenRejection::Expired),
        ],
    }
}

fn forbidden(scope: Option<Scope>) -> Status {
    let mut examples = Vec::new();
    if let Some(scope) = scope {
        examples.push(ApiError::MissingScope(scope));
    }
    examples.push(match scope {
        // An allocator's objects are checked against its binding, not offerings.
        Some(Scope::AllocationsRead | Scope::AllocationsWrite) => {
            crate::api::allocations::not_bound("project")
        }
        // The objects each kind of write checks (`reads::site_order`, `users::not_yours`).
        Some(Scope::OrdersWrite) => ApiError::Forbidden(
            "the order is not in one of this site's offerings, or does not exist".into(),
        ),
        Some(Scope::UsersWrite) => ApiError::Forbidden(
            "the user is not on the team of a resource of this site's offerings, or does not \
             exist"
                .into(),
        ),
        _ => ApiError::Forbidden(
            "the resource is not in one of this site's offerings, or does not exist".into(),
        ),
    });
    Status {
        description: "The token lacks the operation's scope, or the object is not the site's \
                      (not in its offerings; for an allocator, not in a project or customer it \
                      allocates for): the same answer whether or not it exists",
        examples,
    }
}

/// 400 `invalid_query` for a query string sent to an operation that takes none (the query is
/// checked against the documented parameters before any route runs: `middleware`).
fn no_query_taken() -> ApiError {
    ApiError::InvalidQuery("unknown query parameter `dry_run`; this operation takes none".into())
}

/// A resource named by a backend id that several of the site's resources carry.
fn ambiguous_backend_id() -> Status {
    Status {
        description: "The resource is named by a backend id that several of the site's \
                      resources have (Waldur does not keep backend ids unique); name it by uuid",
        examples: vec![ApiError::Conflict(
            "several resources have backend_id `project_465000001`; name the resource by uuid"
                .into(),
        )],
    }
}

/// The errors of a queued write (a body-taking `POST`/`PUT`): token, scope, body, fields, and a
/// store or Puhuri lookup that cannot answer. Nothing is stored when any of these is answered.
pub struct WriteErrors<S: crate::auth::scoped::RequiredScope>(std::marker::PhantomData<S>);

impl<S: crate::auth::scoped::RequiredScope> IntoResponses for WriteErrors<S> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        // Only usage reports and resource writes name a resource by backend id (in the body
        // or as `backend_id:<id>` in the path); the other writes take uuids.
        let by_backend_id = matches!(S::SCOPE, Scope::UsageWrite | Scope::ResourcesWrite);
        let mut statuses = vec![
            bad_body(),
            unauthorized(),
            forbidden(Some(S::SCOPE)),
            if by_backend_id {
                Status {
                    description: "The object is not named correctly in the path, or no resource \
                                  of the site's offerings has that backend id",
                    examples: vec![ApiError::NotFound(
                        "no resource of this site's offerings has backend_id `project_465000999`"
                            .into(),
                    )],
                }
            } else {
                Status {
                    description: "The object is not named correctly in the path",
                    examples: vec![ApiError::NotFound(format!(
                        "the {} in the path must be a uuid",
                        match S::SCOPE {
                            Scope::OrdersWrite => "order",
                            Scope::UsersWrite => "user",
                            _ => "resource",
                        }
                    ))],
                }
            },
            body_too_large(),
            body_media_type(),
            Status {
                description: "Fields are not valid (each named in `errors`), or the \
                              `Idempotency-Key` was used before with another request",
                examples: vec![
                    ApiError::validation(vec![FieldError::new(
                        "usages.cpu_k_hours",
                        "must not be negative",
                    )]),
                    ApiError::IdempotencyConflict,
                ],
            },
            Status {
                description: "Puhuri refused a lookup the request needs before it is stored",
                examples: vec![ApiError::Upstream {
                    status: StatusCode::BAD_GATEWAY,
                    detail: "Puhuri refused the lookup (500)".into(),
                }],
            },
            Status {
                description: "`unavailable`: nothing was stored, the job store or Puhuri (for a \
                              check) cannot answer now. `store_outcome_unknown`: the write was \
                              sent to the job store and no definite answer came back (a Redis \
                              timeout, a failed embedded commit), so the job may be stored; a retry with the same `Idempotency-Key` \
                              finds it if it was and stores it once if it was not. Either way \
                              retry after `Retry-After`, with the same `Idempotency-Key`",
                examples: vec![
                    ApiError::Unavailable {
                        detail: "Puhuri cannot be reached to check this request, and the \
                                 gateway has no cached answer; nothing was stored, retry later"
                            .into(),
                        retry_after: 10,
                    },
                    ApiError::OutcomeUnknown { retry_after: 1 },
                ],
            },
        ];
        if by_backend_id {
            statuses.push(ambiguous_backend_id());
        }
        build(statuses)
    }
}

/// The errors of a queued write whose path names no object (`POST /v1/allocations`,
/// `POST /v1/offering-users`): those of [`WriteErrors`] but 404, which only a path (or a backend
/// id, which these take none of) can answer.
pub struct PathlessWriteErrors<S: crate::auth::scoped::RequiredScope>(std::marker::PhantomData<S>);

impl<S: crate::auth::scoped::RequiredScope> IntoResponses for PathlessWriteErrors<S> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = WriteErrors::<S>::responses();
        responses.remove(StatusCode::NOT_FOUND.as_str());
        responses
    }
}

/// The errors of a queued write that takes no body (`POST .../done`, an allocator's approve,
/// cancel and terminate): those of [`WriteErrors`], but a body of any type is a 400
/// (`api::body::NoBody`), and its `Content-Type` is never looked at, so the 415 is only the
/// content coding's.
pub struct BodilessWriteErrors<S: crate::auth::scoped::RequiredScope>(std::marker::PhantomData<S>);

impl<S: crate::auth::scoped::RequiredScope> IntoResponses for BodilessWriteErrors<S> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = WriteErrors::<S>::responses();
        responses.extend(build(vec![
            Status {
                description: "A body was sent (the operation takes none; an empty one or only \
                              whitespace is none), the query string has a parameter (it takes \
                              none), or the request states its length twice (the connection is \
                              then closed)",
                examples: vec![
                    ApiError::InvalidJson("this operation takes no body; send none".into()),
                    no_query_taken(),
                    ApiError::AmbiguousFraming,
                ],
            },
            Status {
                description: "The request's `Content-Encoding` is not `gzip` or `identity` (the \
                              answer's `Accept-Encoding` lists those)",
                examples: vec![ApiError::UnsupportedMediaType(format!(
                    "the body's Content-Encoding is not one the gateway decodes; send it as one \
                     of: {}",
                    crate::api::middleware::ACCEPTED_CONTENT_ENCODINGS
                ))],
            },
        ]));
        responses
    }
}

/// The errors of a usage batch (`POST /v1/usage/batch`) as a whole: its body, the token, the
/// scope, and 422 for a report outside the grammar (or too many). What a single report would
/// have answered otherwise (a resource that is not the site's, a backend id not found, Puhuri or
/// the store failing) is that report's `status` and `error` in the 200.
pub struct BatchErrors;

impl IntoResponses for BatchErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        build(vec![
            bad_body(),
            unauthorized(),
            Status {
                description: "The token lacks `usage:write`",
                examples: vec![ApiError::MissingScope(Scope::UsageWrite)],
            },
            body_too_large(),
            body_media_type(),
            Status {
                description: "A report breaks the documented grammar (each such field named, \
                              as `reports[3].month`), `reports` holds none or more than \
                              `limits.max_batch`, or the `Idempotency-Key` is not 1-255 \
                              visible ASCII characters; nothing is stored",
                examples: vec![ApiError::validation(vec![FieldError::new(
                    "reports",
                    "must hold 1 to 1000 reports",
                )])],
            },
        ])
    }
}

/// The errors of a route that needs only a valid token and takes no query (`/v1/whoami`).
pub struct TokenErrors;

impl IntoResponses for TokenErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = QueryErrors::responses();
        responses.extend(build(vec![unauthorized()]));
        responses
    }
}

/// The one error of a route that needs no token and takes no query (`/healthz`, `/readyz`,
/// `/metrics`): a query string, refused before any route runs (`middleware`).
pub struct QueryErrors;

impl IntoResponses for QueryErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        build(vec![Status {
            description: "The query string has a parameter (the operation takes none)",
            examples: vec![no_query_taken()],
        }])
    }
}

/// 400 for a request body that cannot be read as the operation's (or a query string, which no
/// body-taking operation takes, or ambiguous framing).
fn bad_body() -> Status {
    Status {
        description: "The body is not JSON, not the documented shape (an object where an object \
                      is documented, at the top or inside), or has a field the operation does \
                      not take (named); the query string has a parameter (the operation takes \
                      none); or the request states its length twice (the connection is then \
                      closed)",
        examples: vec![
            ApiError::InvalidJson(
                "the body does not match this operation: unknown field `usage`, expected one of \
                 `resource_uuid`, `resource_backend_id`, `month`, `usages`, `description` at \
                 line 1 column 8"
                    .into(),
            ),
            no_query_taken(),
            ApiError::AmbiguousFraming,
        ],
    }
}

fn body_too_large() -> Status {
    Status {
        description: "The body is larger than `limits.max_body_bytes`",
        examples: vec![ApiError::PayloadTooLarge { limit: 1_048_576 }],
    }
}

fn body_media_type() -> Status {
    Status {
        description: "The body is not `application/json` (UTF-8), or its `Content-Encoding` is \
                      not `gzip` or `identity` (the answer's `Accept-Encoding` lists those)",
        examples: vec![ApiError::UnsupportedMediaType(
            "send the body with `Content-Type: application/json`".into(),
        )],
    }
}

/// The answers of a queued write that succeed: 202 with the job just stored, or 200 with the
/// job of an earlier call with the same `Idempotency-Key`, or one that finished within
/// `Prefer: wait`. Both bodies are a [`crate::api::jobs::JobView`]; both carry `Location` (the
/// job) and, after `Prefer: wait`, `Preference-Applied` (`api::submit::submit`).
pub struct Queued;

impl IntoResponses for Queued {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        use utoipa::openapi::header::{Header, HeaderBuilder};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let job = || {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("JobView")))
                .build()
        };
        let header = |description: &str| -> Header {
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some(description))
                .build()
        };
        let answer = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .header("Location", header("The job"))
                    .header(
                        "Preference-Applied",
                        header("`wait=N`, the wait used, when the request had `Prefer: wait`"),
                    )
                    .content("application/json", job())
                    .build(),
            )
        };
        BTreeMap::from([
            (
                StatusCode::ACCEPTED.as_str().to_string(),
                answer("Stored; delivery follows (or it had not finished within `Prefer: wait`)"),
            ),
            (
                StatusCode::OK.as_str().to_string(),
                answer(
                    "The job of an earlier call with the same `Idempotency-Key`, or one that \
                     finished within `Prefer: wait`",
                ),
            ),
        ])
    }
}

/// The request headers every queued write honours: `Idempotency-Key` and `Prefer`.
pub struct WriteHeaders;

/// [`WriteHeaders`] for a write that requires its `Idempotency-Key` (creating an allocation).
pub struct KeyedWriteHeaders;

impl utoipa::IntoParams for KeyedWriteHeaders {
    fn into_params(
        in_: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        let mut params = WriteHeaders::into_params(in_);
        if let Some(key) = params.first_mut() {
            key.required = utoipa::openapi::Required::True;
            key.description = Some(
                "Required: a retry with the same key and request from the same site is the same \
                 job (200), so a create is never made twice; the same key with another request \
                 is a 422. 1-255 visible ASCII characters."
                    .into(),
            );
            *key = utoipa::openapi::path::ParameterBuilder::from(key.clone())
                .example(Some(serde_json::json!("climate-2027-allocation")))
                .build();
        }
        params
    }
}

impl utoipa::IntoParams for WriteHeaders {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{Required, Schema};
        let header = |name: &str, description: &str, schema: ObjectBuilder| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(Schema::Object(schema.build())))
                .build()
        };
        vec![
            header(
                "Idempotency-Key",
                "Makes a retry of this call safe: the same key and request from the same site \
                 return the same job (200); the same key with another request is a 422. 1-255 \
                 visible ASCII characters.",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(255))
                    .pattern(Some("^[!-~]+$")),
            ),
            header(
                "Prefer",
                "`wait=N`: wait up to N seconds (at most `limits.max_wait`) for the job to \
                 finish; the answer is then 200 with its final state, or 202 if it has not \
                 finished (RFC 7240; `Preference-Applied` says the wait used).",
                ObjectBuilder::new().schema_type(Type::String),
            ),
        ]
    }
}
