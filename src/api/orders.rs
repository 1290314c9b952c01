//! Orders: the provider's side of an order's life (approve, reject, done, erred) and reads.
//!
//! A transition is queued as a job on the order (`order:<uuid>`, one at a time, in the order the
//! site sent them) and delivered as Waldur's provider action. Waldur answers a transition from
//! the wrong state with 409; the worker then re-reads the order: already where the transition
//! leads (approve: `executing`, `done` or `pending-start-date`; reject: `rejected`; done: `done`;
//! erred: `erred`) is success, anything else fails the job with Waldur's reason and the state.

use crate::api::body::{JsonBody, NoBody, Object, OptionalJsonBody, exact_object};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::AppState;
use super::reads::{
    PageParams, QueryParams, list_response, site_order, upstream_page_failed, uuid_in_path,
};
use super::responses::{
    BodilessWriteErrors, OneReadErrors, Queued, ReadErrors, WriteErrors, WriteHeaders,
};
use super::submit::submit;
use super::views::OrderView;
use crate::auth::SiteIdentity;
use crate::auth::scoped::{Authorized, OrdersWrite, Read};
use crate::domain::WaldurUuid;
use crate::domain::operations::{Operation, OrderApprove, OrderDone, OrderErred, OrderReject};
use crate::domain::text::{Comment, ErrorMessage, Traceback};
use crate::error::{ApiError, FieldError};
use crate::upstream::Order;

/// Waldur's order states.
pub const ORDER_STATES: [&str; 9] = [
    "pending-consumer",
    "pending-provider",
    "pending-project",
    "pending-start-date",
    "executing",
    "done",
    "erred",
    "canceled",
    "rejected",
];
pub const ORDER_TYPES: [&str; 4] = ["Create", "Update", "Terminate", "Restore"];

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// Merged into the order's attributes in Puhuri. Numbers go on exactly as written, so one a
    /// JSON value would change (`1e3`, `-0`, `1.50`, more digits than a double holds) is a 422
    /// naming it and the spelling it would become.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Object<Box<RawValue>>>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Shown to the customer as the provider's rejection comment (at most 2,000 characters).
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErredRequest {
    /// Why it failed (1–2,000 characters); reaches Puhuri unchanged as `error_message`.
    #[schema(min_length = 1, max_length = 2000)]
    pub message: String,
    /// Details (at most 64 KiB); sent as `error_traceback`, empty when absent.
    pub traceback: Option<String>,
}

/// Checks scope and ownership, then queues `op`. `sent` is the body as sent, in canonical form
/// (see [`submit`]).
async fn queue_transition(
    state: &AppState,
    identity: &SiteIdentity,
    req: &HttpRequest,
    uuid: &str,
    sent: Value,
    make: impl FnOnce(WaldurUuid) -> Operation,
) -> Result<HttpResponse, ApiError> {
    let uuid = uuid_in_path(uuid, "order")?;
    site_order(state, identity, &uuid, true).await?;
    submit(state, identity, req, make(uuid), sent).await
}

/// Approve an order waiting for the provider (`approve_by_provider`).
///
/// Answers 202 with the job. Approving an order that is already executing or done succeeds (the
/// job says `already`); approving a rejected or canceled order fails with Puhuri's reason.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The order's uuid", example = "0d000000000040008000000000000002"), WriteHeaders),
    request_body(content = ApproveRequest, description = "Optional: no body (or an empty one) approves as is", content_type = "application/json", example = json!({})),
    responses(
        Queued,
        WriteErrors<OrdersWrite>,
    )
)]
#[post("/orders/{uuid}/approve")]
pub async fn approve_order(
    identity: Authorized<OrdersWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: OptionalJsonBody<ApproveRequest>,
) -> Result<HttpResponse, ApiError> {
    let attributes = match body.0.attributes {
        None => None,
        Some(Object(raw)) => Some(exact_object("attributes", raw.get())?),
    };
    let sent = serde_json::json!({ "attributes": attributes });
    queue_transition(&state, &identity, &req, &path, sent, |order_uuid| {
        Operation::OrderApprove(OrderApprove {
            order_uuid,
            attributes,
        })
    })
    .await
}

/// Reject an order waiting for the provider (`reject_by_provider`).
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The order's uuid", example = "0d000000000040008000000000000002"), WriteHeaders),
    request_body(content = RejectRequest, description = "Optional: no body (or an empty one) rejects without a comment", content_type = "application/json", example = json!({})),
    responses(
        Queued,
        WriteErrors<OrdersWrite>,
    )
)]
#[post("/orders/{uuid}/reject")]
pub async fn reject_order(
    identity: Authorized<OrdersWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: OptionalJsonBody<RejectRequest>,
) -> Result<HttpResponse, ApiError> {
    let comment = body
        .0
        .comment
        .map(Comment::parse)
        .transpose()
        .map_err(|m| ApiError::field("comment", m))?;
    let sent = serde_json::json!({ "comment": comment });
    queue_transition(&state, &identity, &req, &path, sent, |order_uuid| {
        Operation::OrderReject(OrderReject {
            order_uuid,
            comment,
        })
    })
    .await
}

/// Mark an executing order done (`set_state_done`).
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The order's uuid", example = "0d000000000040008000000000000003"), WriteHeaders),
    responses(
        Queued,
        BodilessWriteErrors<OrdersWrite>,
    )
)]
#[post("/orders/{uuid}/done")]
pub async fn order_done(
    identity: Authorized<OrdersWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    _no_body: NoBody,
) -> Result<HttpResponse, ApiError> {
    queue_transition(&state, &identity, &req, &path, Value::Null, |order_uuid| {
        Operation::OrderDone(OrderDone { order_uuid })
    })
    .await
}

/// Mark an order erred (`set_state_erred`, with both `error_message` and `error_traceback`).
///
/// Waldur allows this only for `Marketplace.Slurm` offerings; for others the job fails with
/// Puhuri's 405 reason.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The order's uuid", example = "0d000000000040008000000000000005"), WriteHeaders),
    request_body(content = ErredRequest, content_type = "application/json", example = json!({"message": "No free project quota on the cluster", "traceback": "quota check failed for project_465000005"})),
    responses(
        Queued,
        WriteErrors<OrdersWrite>,
    )
)]
#[post("/orders/{uuid}/erred")]
pub async fn order_erred(
    identity: Authorized<OrdersWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<ErredRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let message = ErrorMessage::parse(request.message).map_err(|m| FieldError::new("message", m));
    let traceback = request
        .traceback
        .map(Traceback::parse)
        .transpose()
        .map_err(|m| FieldError::new("traceback", m));
    let (message, traceback) = match (message, traceback) {
        (Ok(message), Ok(traceback)) => (message, traceback),
        (message, traceback) => {
            let errors = [message.err(), traceback.err()];
            return Err(ApiError::validation(errors.into_iter().flatten().collect()));
        }
    };
    let sent = serde_json::json!({ "message": message, "traceback": traceback });
    queue_transition(&state, &identity, &req, &path, sent, |order_uuid| {
        Operation::OrderErred(OrderErred {
            order_uuid,
            message,
            traceback: traceback.unwrap_or_default(),
        })
    })
    .await
}

/// Orders of the site's offerings.
///
/// Filters: `state` (repeat or comma-separate; default `pending-provider,executing`; `all` for
/// every state), `type` (`Create`, `Update`, `Terminate`, `Restore`), `resource_uuid`. Names are
/// matched without regard to case and uuids in any form (dashed or not); what is forwarded to
/// Puhuri is Waldur's exact name and the 32-digit uuid, since Waldur refuses anything else with a
/// 400. An unknown name or a malformed uuid is a 400 `invalid_query`, and nothing is asked of
/// Puhuri. Paginated
/// with `page` and `page_size` (≤ 100, default 10); `Link` and `X-Result-Count` headers.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(
        ("state" = Option<Vec<super::names::OrderStateFilter>>, Query, description = "Order states, repeated (or comma-separated); `all` for every state. Default: pending-provider and executing"),
        ("type" = Option<Vec<super::names::OrderType>>, Query, description = "Order types, repeated (or comma-separated)"),
        ("resource_uuid" = Option<String>, Query, description = "Only orders of this resource", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        PageParams,
    ),
    responses(
        (status = 200, body = [OrderView], headers(("X-Result-Count" = u64, description = "Total across pages"), ("Link" = String, description = "first/prev/next/last pages"))),
        ReadErrors<Read>,
    )
)]
#[get("/orders")]
pub async fn list_orders(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req);
    let paging = params.paging()?;
    let mut query: Vec<(&str, String)> = identity
        .site
        .offerings
        .iter()
        .map(|o| ("offering_uuid", o.clone()))
        .collect();
    let states = params.names(
        "state",
        &super::names::ORDER_STATE_FILTERS,
        "an order state",
    )?;
    if states.is_empty() {
        query.push(("state", "pending-provider".into()));
        query.push(("state", "executing".into()));
    } else if !states.iter().any(|s| s == "all") {
        query.extend(states.into_iter().map(|s| ("state", s)));
    }
    for t in params.names("type", &ORDER_TYPES, "an order type")? {
        query.push(("type", t));
    }
    if let Some(r) = params.uuid("resource_uuid")? {
        query.push(("resource_uuid", r.to_string()));
    }
    query.push(("o", "-created".into()));
    query.extend(paging.upstream_query());
    let page = state
        .directory
        .client()
        .get_page::<Order>("marketplace-orders/", &query)
        .await
        .map_err(|e| upstream_page_failed(e, &paging))?;
    let items: Vec<OrderView> = page
        .items
        .iter()
        // Puhuri filtered by offering already; check again rather than trust a filter.
        .filter(|o| identity.owns_offering(&o.offering_uuid))
        .map(OrderView::from_waldur)
        .collect();
    let total = page.total.unwrap_or(items.len() as u64);
    Ok(list_response(&state, &req, &paging, total, &items))
}

/// One order of the site's offerings.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The order's uuid", example = "0d000000000040008000000000000002")),
    responses(
        (status = 200, body = OrderView),
        OneReadErrors<Read>,
    )
)]
#[get("/orders/{uuid}")]
pub async fn get_order(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let uuid = uuid_in_path(&path, "order")?;
    let order = site_order(&state, &identity, &uuid, false).await?;
    Ok(HttpResponse::Ok().json(OrderView::from_waldur(&order)))
}
