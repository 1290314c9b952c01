//! An allocator's reads, forwarded with the site's own identity and narrowed to its binding:
//! the public offerings it may order from (with the resource-allocation guide's filters), one
//! offering with its components and plans, its projects, and the orders and resources of a
//! project or customer it allocates for. Answers are Waldur's objects as Puhuri gives them,
//! paginated like the other reads (`page`, `page_size` ≤ 100, `X-Result-Count`, `Link`).

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::Value;

use super::{bound, bound_offering, client, not_bound};
use crate::api::AppState;
use crate::api::reads::{
    PageParams, QueryParams, list_response, read_failed, upstream_page_failed, uuid_in_path,
};
use crate::api::responses::{AllocatorProjectsErrors, OneReadErrors, ReadErrors};
use crate::auth::SiteIdentity;
use crate::auth::scoped::{AllocationsRead, Authorized};
use crate::error::ApiError;
use crate::upstream::{Forwarded, Project};

/// A page of `path` read with the site's identity. The items are Waldur's objects, passed on to
/// the allocator unchanged (a raw `Value` each, deliberately: the gateway reads nothing of them).
async fn forward(
    state: &AppState,
    identity: &SiteIdentity,
    req: &HttpRequest,
    path: &str,
    mut query: Vec<(&str, String)>,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(req);
    let paging = params.paging()?;
    query.extend(paging.upstream_query());
    let page = client(state, identity)?
        .get_page::<Value>(path, &query)
        .await
        .map_err(|e| upstream_page_failed(e, &paging))?;
    let total = page.total.unwrap_or(page.items.len() as u64);
    Ok(list_response(state, req, &paging, total, &page.items))
}

/// Public offerings the site may order from.
///
/// The guide's filters, forwarded to Waldur: `name` (part of the name), `name_exact`,
/// `customer_uuid`, `allowed_customer_uuid`, `state` (`Active`, `Paused`, ...), `category_uuid`,
/// `billable`, `shared` (`true`/`false`), `type` (e.g. `Marketplace.Basic`), `attributes` (a
/// JSON object of offering attributes). Only the site's offerings are ever listed.
#[utoipa::path(
    tag = "allocations",
    security(("bearer" = [])),
    params(
        ("name" = Option<String>, Query, description = "Part of the offering's name"),
        ("name_exact" = Option<String>, Query, description = "The offering's exact name"),
        ("customer_uuid" = Option<String>, Query, description = "The provider's organisation", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        ("allowed_customer_uuid" = Option<String>, Query, description = "Offerings this organisation may order", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        ("state" = Option<String>, Query, description = "Offering state: Active, Paused, Draft or Archived"),
        ("category_uuid" = Option<String>, Query, description = "The marketplace category", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        ("billable" = Option<bool>, Query, description = "Billable offerings only (true) or not billable (false)"),
        ("shared" = Option<bool>, Query, description = "Shared offerings only (true) or private (false)"),
        ("type" = Option<String>, Query, description = "Offering type, e.g. Marketplace.Basic"),
        ("attributes" = Option<String>, Query, description = "A JSON object of offering attributes to match"),
        PageParams,
    ),
    responses(
        (status = 200, body = [Object], description = "Waldur's public offerings, with components and plans", headers(("X-Result-Count" = u64, description = "Total across pages"), ("Link" = String, description = "first/prev/next/last pages"))),
        ReadErrors<AllocationsRead>,
    )
)]
#[get("/allocations/offerings")]
pub async fn list_offerings(
    identity: Authorized<AllocationsRead>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req);
    let mut query: Vec<(&str, String)> = vec![];
    for key in ["name", "name_exact", "type", "attributes"] {
        if let Some(v) = params.one(key) {
            query.push((key, v.to_string()));
        }
    }
    for key in ["customer_uuid", "allowed_customer_uuid", "category_uuid"] {
        if let Some(u) = params.uuid(key)? {
            query.push((key, u.to_string()));
        }
    }
    if let Some(s) = params.one("state") {
        let states = ["Active", "Paused", "Draft", "Archived"];
        let found = states
            .iter()
            .find(|x| x.eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                ApiError::InvalidQuery(format!("`state` must be one of {}", states.join(", ")))
            })?;
        query.push(("state", found.to_string()));
    }
    for key in ["billable", "shared"] {
        if let Some(v) = params.one(key) {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" => "true",
                "false" => "false",
                _ => {
                    return Err(ApiError::InvalidQuery(format!(
                        "`{key}` must be true or false"
                    )));
                }
            };
            query.push((key, b.to_string()));
        }
    }
    let allowed: Vec<String> = identity.site.offerings.iter().cloned().collect();
    query.push(("uuid_list", allowed.join(",")));
    forward(
        &state,
        &identity,
        &req,
        "marketplace-public-offerings/",
        query,
    )
    .await
}

/// One offering the site may order from, with its components, plans and options.
#[utoipa::path(
    tag = "allocations",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The offering's uuid", example = "0f000000000040008000000000000004")),
    responses((status = 200, body = Object, description = "Waldur's public offering"), OneReadErrors<AllocationsRead>)
)]
#[get("/allocations/offerings/{uuid}")]
pub async fn get_offering(
    identity: Authorized<AllocationsRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let uuid = uuid_in_path(&path, "offering")?;
    let offering = bound_offering(&state, &identity, &uuid).await?;
    Ok(HttpResponse::Ok().json(offering))
}

/// The scope of a list of orders or resources: `project_uuid` or `customer_uuid` (one the site
/// allocates for); with neither, the site's only project or customer.
fn scope(
    identity: &SiteIdentity,
    params: &QueryParams,
) -> Result<(&'static str, String), ApiError> {
    if let Some(p) = params.uuid("project_uuid")? {
        // A project of a bound customer is checked by Puhuri's answer: see `project_in_scope`.
        return Ok(("project_uuid", p.to_string()));
    }
    if let Some(c) = params.uuid("customer_uuid")? {
        if !identity.site.customers.contains(c.as_str()) {
            return Err(not_bound("customer"));
        }
        return Ok(("customer_uuid", c.to_string()));
    }
    let site = &identity.site;
    match (site.customers.len(), site.projects.len()) {
        (1, 0) => Ok((
            "customer_uuid",
            site.customers.iter().next().cloned().unwrap_or_default(),
        )),
        (0, 1) => Ok((
            "project_uuid",
            site.projects.iter().next().cloned().unwrap_or_default(),
        )),
        _ => Err(ApiError::InvalidQuery(
            "name one of the site's projects or customers with `project_uuid` or `customer_uuid`"
                .into(),
        )),
    }
}

/// A `project_uuid` scope must be a bound project, or a project of a bound customer.
async fn project_in_scope(
    state: &AppState,
    identity: &SiteIdentity,
    scope: &(&str, String),
) -> Result<(), ApiError> {
    if scope.0 != "project_uuid" || identity.site.projects.contains(&scope.1) {
        return Ok(());
    }
    let project: Project = match client(state, identity)?
        .get(&format!("projects/{}/", scope.1), &[])
        .await
    {
        Ok(p) => p,
        Err(e) if e.is_not_found() => return Err(not_bound("project")),
        Err(e) => return Err(read_failed(e)),
    };
    let customer = project.customer_uuid.as_deref().unwrap_or("");
    if bound(identity, &scope.1, customer) {
        Ok(())
    } else {
        Err(not_bound("project"))
    }
}

/// The projects the site allocates for: its projects and those of its customers.
#[utoipa::path(
    tag = "allocations",
    security(("bearer" = [])),
    params(
        PageParams,
    ),
    responses(
        (status = 200, body = [Object], description = "Waldur's projects", headers(("X-Result-Count" = u64, description = "Total across pages"), ("Link" = String, description = "first/prev/next/last pages"))),
        AllocatorProjectsErrors,
    )
)]
#[get("/allocations/projects")]
pub async fn list_projects(
    identity: Authorized<AllocationsRead>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let paging = QueryParams::parse(&req).paging()?;
    let all: Vec<Forwarded<Project>> = client(&state, &identity)?
        .get_bounded("projects/", &[], 100, 20)
        .await
        .map_err(read_failed)?
        .ok_or_else(|| crate::api::reads::list_too_large("projects"))?;
    // Shown as Waldur sent them; only their uuids are read.
    let mine: Vec<Forwarded<Project>> = all
        .into_iter()
        .filter(|p| {
            bound(
                &identity,
                &p.fields.uuid,
                p.fields.customer_uuid.as_deref().unwrap_or(""),
            )
        })
        .collect();
    let (page, total) = paging.slice(mine)?;
    Ok(list_response(&state, &req, &paging, total, &page))
}

/// Orders of a project or customer the site allocates for, newest first.
#[utoipa::path(
    tag = "allocations",
    security(("bearer" = [])),
    params(
        ("project_uuid" = Option<String>, Query, description = "One of the site's projects (or of its customers'); default: the site's only project or customer", example = "b0000000000040008000000000000012", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        ("customer_uuid" = Option<String>, Query, description = "One of the site's customers", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        ("state" = Option<Vec<crate::api::names::OrderStateFilter>>, Query, description = "Order states, repeated"),
        ("resource_uuid" = Option<String>, Query, description = "Only orders of this resource", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        PageParams,
    ),
    responses(
        (status = 200, body = [Object], description = "Waldur's orders", headers(("X-Result-Count" = u64, description = "Total across pages"), ("Link" = String, description = "first/prev/next/last pages"))),
        ReadErrors<AllocationsRead>,
    )
)]
#[get("/allocations/orders")]
pub async fn list_orders(
    identity: Authorized<AllocationsRead>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req);
    let scope = scope(&identity, &params)?;
    project_in_scope(&state, &identity, &scope).await?;
    let mut query: Vec<(&str, String)> = vec![(scope.0, scope.1.clone())];
    let states = params.names(
        "state",
        &crate::api::names::ORDER_STATE_FILTERS,
        "an order state",
    )?;
    if !states.iter().any(|s| s == "all") {
        query.extend(states.into_iter().map(|s| ("state", s)));
    }
    if let Some(r) = params.uuid("resource_uuid")? {
        query.push(("resource_uuid", r.to_string()));
    }
    query.push(("o", "-created".into()));
    forward(&state, &identity, &req, "marketplace-orders/", query).await
}

/// Resources (allocations) of a project or customer the site allocates for, with their limits,
/// options and state.
#[utoipa::path(
    tag = "allocations",
    security(("bearer" = [])),
    params(
        ("project_uuid" = Option<String>, Query, description = "One of the site's projects (or of its customers'); default: the site's only project or customer", example = "b0000000000040008000000000000012", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        ("customer_uuid" = Option<String>, Query, description = "One of the site's customers", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        PageParams,
    ),
    responses(
        (status = 200, body = [Object], description = "Waldur's resources", headers(("X-Result-Count" = u64, description = "Total across pages"), ("Link" = String, description = "first/prev/next/last pages"))),
        ReadErrors<AllocationsRead>,
    )
)]
#[get("/allocations/resources")]
pub async fn list_resources(
    identity: Authorized<AllocationsRead>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req);
    let scope = scope(&identity, &params)?;
    project_in_scope(&state, &identity, &scope).await?;
    let query: Vec<(&str, String)> = vec![(scope.0, scope.1.clone()), ("o", "-created".into())];
    forward(&state, &identity, &req, "marketplace-resources/", query).await
}
