//! The error answers of the forwarded reads (re-exported by [`super`]): lists, one object by
//! path, a resource by uuid or backend id, and the lists with a scan bound.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use utoipa::IntoResponses;
use utoipa::openapi::{RefOr, Response};

use super::{Status, ambiguous_backend_id, build, forbidden, no_query_taken, unauthorized};
use crate::auth::Scope;
use crate::error::ApiError;

fn upstream_read() -> Vec<Status> {
    vec![
        Status {
            description: "Puhuri refused the read",
            examples: vec![ApiError::Upstream {
                status: StatusCode::BAD_GATEWAY,
                detail: "Puhuri refused the read (500)".into(),
            }],
        },
        Status {
            description: "Puhuri cannot be reached or is failing; retry after `Retry-After`",
            examples: vec![ApiError::Unavailable {
                detail: "Puhuri cannot be reached or is failing; retry later".into(),
                retry_after: 5,
            }],
        },
        Status {
            description: "Puhuri did not answer in time",
            examples: vec![ApiError::Upstream {
                status: StatusCode::GATEWAY_TIMEOUT,
                detail: "Puhuri did not answer in time; retry later".into(),
            }],
        },
    ]
}

/// The errors of a people list (`/v1/users`, `/v1/ssh-keys`, `/v1/projects`,
/// `/v1/project-permissions`): those of any read, and 422 `list_too_large` when a site with only
/// some of its provider's offerings would need more of Puhuri's list than the scan bound.
pub struct PeopleReadErrors;

impl IntoResponses for PeopleReadErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = ReadErrors::<crate::auth::scoped::Read>::responses();
        responses.extend(build(vec![Status {
            description: "The list is longer than the gateway narrows for a site bound to only \
                          some of its provider's offerings; a retry meets the same bound",
            examples: vec![crate::api::reads::list_too_large(
                "marketplace-provider-resources/",
            )],
        }]));
        responses
    }
}

/// The errors of an allocator's project list (`/v1/allocations/projects`): those of
/// [`ReadErrors`] with `allocations:read`, and 422 `list_too_large` when Puhuri shows the
/// allocator more projects than the gateway reads to pick the site's (20 pages of 100).
pub struct AllocatorProjectsErrors;

impl IntoResponses for AllocatorProjectsErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = ReadErrors::<crate::auth::scoped::AllocationsRead>::responses();
        responses.extend(build(vec![Status {
            description: "Puhuri shows the allocator's identity more projects than the gateway \
                          reads to pick the site's; a retry meets the same bound",
            examples: vec![crate::api::reads::list_too_large("projects")],
        }]));
        responses
    }
}

/// The errors of a forwarded read that needs the scope `S` (`read`, or an allocator's
/// `allocations:read`): token, scope (the 403 names `S`), query, the object, and Puhuri.
pub struct ReadErrors<S: crate::auth::scoped::RequiredScope>(std::marker::PhantomData<S>);

impl<S: crate::auth::scoped::RequiredScope> IntoResponses for ReadErrors<S> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut statuses = vec![
            Status {
                description: "A query parameter is unknown or not valid",
                examples: vec![ApiError::InvalidQuery(
                    "`page_size` must be a number from 1 to 100".into(),
                )],
            },
            unauthorized(),
            forbidden(Some(S::SCOPE)),
            Status {
                description: "The object is not named correctly in the path, or a page after \
                              the last",
                examples: vec![ApiError::NotFound("page 7 is after the last page".into())],
            },
        ];
        statuses.extend(upstream_read());
        build(statuses)
    }
}

/// The errors of a read of one object named in the path, which takes no query (`GET
/// /v1/orders/{uuid}`, `/v1/offerings/{uuid}`...): the token, the scope `S`, the path, Puhuri.
pub struct OneReadErrors<S: crate::auth::scoped::RequiredScope>(std::marker::PhantomData<S>);

impl<S: crate::auth::scoped::RequiredScope> IntoResponses for OneReadErrors<S> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut statuses = vec![
            Status {
                description: "The query string has a parameter (the operation takes none)",
                examples: vec![no_query_taken()],
            },
            unauthorized(),
            forbidden(Some(S::SCOPE)),
            Status {
                description: "The object is not named correctly in the path",
                examples: vec![ApiError::NotFound(format!(
                    "the {} in the path must be a uuid",
                    // the allocator's one such read is an offering's; the site's, an order's
                    // or an offering's
                    if S::SCOPE == Scope::AllocationsRead {
                        "offering"
                    } else {
                        "order"
                    }
                ))],
            },
        ];
        statuses.extend(upstream_read());
        build(statuses)
    }
}

/// The errors of a read of one resource named in the path by uuid or `backend_id:<id>`: those
/// of [`OneReadErrors`] with `read`, and 409 when that backend id is several resources'.
pub struct ResourceReadErrors;

impl IntoResponses for ResourceReadErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = OneReadErrors::<crate::auth::scoped::Read>::responses();
        responses.extend(build(vec![
            Status {
                description: "The resource is not named correctly in the path, or no resource \
                              of the site's offerings has that backend id",
                examples: vec![ApiError::NotFound(
                    "no resource of this site's offerings has backend_id `project_465000999`"
                        .into(),
                )],
            },
            ambiguous_backend_id(),
        ]));
        responses
    }
}

/// The errors of a resource's usage (`GET /v1/resources/{resource}/usage`): those of
/// [`ResourceReadErrors`], with the 400 of its one query parameter, `month`.
pub struct ResourceUsageErrors;

impl IntoResponses for ResourceUsageErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = ResourceReadErrors::responses();
        responses.extend(build(vec![Status {
            description: "A query parameter is unknown or not valid",
            examples: vec![ApiError::InvalidQuery(
                "`month` must be a month as YYYY-MM".into(),
            )],
        }]));
        responses
    }
}
