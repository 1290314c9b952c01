//! Reads of the site's resources: list, one, its team, its usage for a month, and an offering's
//! components and plans.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{RESOURCE_STATES, site_resource};
use crate::api::AppState;
use crate::api::reads::{
    PageParams, QueryParams, list_response, read_failed, upstream_page_failed, uuid_in_path,
};
use crate::api::responses::{OneReadErrors, ReadErrors, ResourceReadErrors, ResourceUsageErrors};
use crate::api::views::{ResourceView, TeamMemberView};
use crate::auth::scoped::{Authorized, Read};
use crate::domain::Month;
use crate::error::ApiError;
use crate::upstream::Resource;

/// Resources of the site's offerings.
///
/// Filters: `state` (repeat or comma-separate; default every state; names in any case, sent to
/// Puhuri as Waldur's exact names), `backend_id`, `offering_uuid` (one of the site's, in any uuid
/// form; another is a 403). Paginated like every list. A bad filter is a 400 `invalid_query`.
#[utoipa::path(
    tag = "resources",
    security(("bearer" = [])),
    params(
        ("state" = Option<Vec<crate::api::names::ResourceState>>, Query, description = "Resource states, repeated (or comma-separated)"),
        ("backend_id" = Option<String>, Query, description = "Exactly this backend id", min_length = 1, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"),
        ("offering_uuid" = Option<String>, Query, description = "Only this offering (one of the site's)", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        PageParams,
    ),
    responses(
        (status = 200, body = [ResourceView], headers(("X-Result-Count" = u64, description = "Total across pages"), ("Link" = String, description = "first/prev/next/last pages"))),
        ReadErrors<Read>,
    )
)]
#[get("/resources")]
pub async fn list_resources(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req);
    let paging = params.paging()?;
    let mut query: Vec<(&str, String)> = Vec::new();
    match params.uuid("offering_uuid")? {
        Some(o) => {
            if !identity.owns_offering(o.as_str()) {
                return Err(ApiError::Forbidden(
                    "the offering is not one of this site's".into(),
                ));
            }
            query.push(("offering_uuid", o.to_string()));
        }
        None => query.extend(
            identity
                .site
                .offerings
                .iter()
                .map(|o| ("offering_uuid", o.clone())),
        ),
    }
    for s in params.names("state", &RESOURCE_STATES, "a resource state")? {
        query.push(("state", s));
    }
    if let Some(b) = params.one("backend_id") {
        query.push(("backend_id", b.to_string()));
    }
    query.push(("o", "-created".into()));
    query.extend(paging.upstream_query());
    let page = state
        .directory
        .client()
        .get_page::<Resource>("marketplace-provider-resources/", &query)
        .await
        .map_err(|e| upstream_page_failed(e, &paging))?;
    let items: Vec<ResourceView> = page
        .items
        .iter()
        .filter(|r| identity.owns_offering(&r.offering_uuid))
        .map(ResourceView::from_waldur)
        .collect();
    let total = page.total.unwrap_or(items.len() as u64);
    Ok(list_response(&state, &req, &paging, total, &items))
}

/// One resource of the site's offerings.
#[utoipa::path(
    tag = "resources",
    security(("bearer" = [])),
    params(("resource" = String, Path, description = "The resource's uuid, or `backend_id:<id>`", example = "7e000000000040008000000000000001")),
    responses(
        (status = 200, body = ResourceView),
        ResourceReadErrors,
    )
)]
#[get("/resources/{resource}")]
pub async fn get_resource(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let resource = site_resource(&state, &identity, &path).await?;
    let full = state
        .directory
        .client()
        .provider_resource(&resource.uuid)
        .await
        .map_err(read_failed)?;
    Ok(HttpResponse::Ok().json(ResourceView::from_waldur(&full)))
}

/// The resource's team: the members of its project, with their usernames on its offering.
///
/// Not paginated (Waldur does not paginate it either).
#[utoipa::path(
    tag = "resources",
    security(("bearer" = [])),
    params(("resource" = String, Path, description = "The resource's uuid, or `backend_id:<id>`", example = "7e000000000040008000000000000001")),
    responses(
        (status = 200, body = [TeamMemberView]),
        ResourceReadErrors,
    )
)]
#[get("/resources/{resource}/team")]
pub async fn resource_team(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let resource = site_resource(&state, &identity, &path).await?;
    let team = state
        .directory
        .client()
        .resource_team(&resource.uuid)
        .await
        .map_err(read_failed)?;
    let team: Vec<TeamMemberView> = team.iter().map(TeamMemberView::from_waldur).collect();
    Ok(HttpResponse::Ok().json(team))
}

/// A plan period of a resource.
#[derive(Serialize, ToSchema)]
pub struct PlanPeriodView {
    pub uuid: String,
    pub plan_uuid: Option<String>,
    pub plan_name: Option<String>,
    pub start: Option<String>,
    /// `null` while the period is open.
    pub end: Option<String>,
}

/// One component's usage for the month, as Puhuri stores it.
#[derive(Serialize, ToSchema)]
pub struct ComponentUsageView {
    /// The component type, e.g. `cpu_k_hours`.
    #[serde(rename = "type")]
    pub type_: String,
    pub name: Option<String>,
    pub measured_unit: Option<String>,
    /// A decimal string, e.g. `"12.50"`.
    pub usage: String,
    pub date: Option<String>,
    pub description: Option<String>,
}

/// A resource's usage for one month.
#[derive(Serialize, ToSchema)]
pub struct ResourceUsageView {
    pub resource_uuid: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The plan periods that overlap the month (Puhuri lists only periods still open at the start
    /// of the current month, so a closed period of an older month may be missing).
    pub plan_periods: Vec<PlanPeriodView>,
    pub usages: Vec<ComponentUsageView>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// `YYYY-MM` (2000-01 to 2999-12); default the current month (UTC).
    #[param(pattern = "^2[0-9]{3}-(0[1-9]|1[0-2])$")]
    pub month: Option<String>,
}

/// The resource's plan periods and component usages for a month.
#[utoipa::path(
    tag = "resources",
    security(("bearer" = [])),
    params(
        ("resource" = String, Path, description = "The resource's uuid, or `backend_id:<id>`", example = "7e000000000040008000000000000001"),
        UsageQuery,
    ),
    responses(
        (status = 200, body = ResourceUsageView),
        ResourceUsageErrors,
    )
)]
#[get("/resources/{resource}/usage")]
pub async fn resource_usage(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let month = match &query.month {
        None => Month::of(state.clock.now()),
        Some(m) => Month::parse(m).map_err(|e| ApiError::InvalidQuery(format!("`month` {e}")))?,
    };
    let resource = site_resource(&state, &identity, &path).await?;
    let client = state.directory.client();
    let start = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .map_err(ApiError::internal)?;
    let next = if start.month() == 12 {
        NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)
    }
    .ok_or_else(|| ApiError::internal("month out of range"))?;
    let billing_period = start.to_string();
    let (periods, usages) = tokio::try_join!(
        client.plan_periods(&resource.uuid),
        client.component_usages(&resource.uuid, &billing_period),
    )
    .map_err(read_failed)?;
    let day = |v: Option<String>| {
        v.and_then(|s| NaiveDate::parse_from_str(s.get(..10).unwrap_or(""), "%Y-%m-%d").ok())
    };
    let plan_periods = periods
        .into_iter()
        .filter(|p| {
            day(p.start.clone()).is_none_or(|s| s < next)
                && day(p.end.clone()).is_none_or(|e| e >= start)
        })
        .map(|p| PlanPeriodView {
            uuid: p.uuid,
            plan_uuid: p.plan_uuid,
            plan_name: p.plan_name,
            start: p.start,
            end: p.end,
        })
        .collect();
    let usages = usages
        .into_iter()
        .map(|u| ComponentUsageView {
            type_: u.type_.unwrap_or_default(),
            name: u.name,
            measured_unit: u.measured_unit,
            usage: u.usage.unwrap_or_default(),
            date: u.date,
            description: u.description.filter(|d| !d.is_empty()),
        })
        .collect();
    Ok(HttpResponse::Ok().json(ResourceUsageView {
        resource_uuid: resource.uuid,
        month: month.to_string(),
        plan_periods,
        usages,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct OfferingComponentView {
    /// The key used in usage reports and limits, e.g. `cpu_k_hours`.
    #[serde(rename = "type")]
    pub type_: String,
    pub name: Option<String>,
    pub measured_unit: Option<String>,
    /// `usage`, `limit`, `fixed`, `one` or `few`.
    pub billing_type: Option<String>,
    pub limit_period: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub limit_amount: Value,
}

#[derive(Serialize, ToSchema)]
pub struct PlanView {
    pub uuid: String,
    pub name: String,
    pub unit: Option<String>,
    /// Component type → price per unit (decimal string).
    pub prices: BTreeMap<String, String>,
}

#[derive(Serialize, ToSchema)]
pub struct OfferingView {
    pub uuid: String,
    pub name: String,
    /// E.g. `Marketplace.Basic` or `Marketplace.Slurm`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    #[schema(value_type = Option<crate::api::names::OfferingState>)]
    pub state: Option<String>,
    pub components: Vec<OfferingComponentView>,
    pub plans: Vec<PlanView>,
}

/// One of the site's offerings: its components and plans.
#[utoipa::path(
    tag = "resources",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The offering's uuid", example = "0f000000000040008000000000000001")),
    responses(
        (status = 200, body = OfferingView),
        OneReadErrors<Read>,
    )
)]
#[get("/offerings/{uuid}")]
pub async fn get_offering(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let uuid = uuid_in_path(&path, "offering")?;
    if !identity.owns_offering(uuid.as_str()) {
        return Err(ApiError::Forbidden(
            "the offering is not one of this site's".into(),
        ));
    }
    let o = state
        .directory
        .client()
        .provider_offering(uuid.as_str())
        .await
        .map_err(read_failed)?;
    let components = o
        .components
        .into_iter()
        .map(|c| OfferingComponentView {
            type_: c.type_,
            name: c.name,
            measured_unit: c.measured_unit,
            billing_type: c.billing_type,
            limit_period: c.limit_period,
            limit_amount: c.limit_amount,
        })
        .collect();
    let plans = o
        .plans
        .into_iter()
        .map(|p| PlanView {
            uuid: p.uuid,
            name: p.name,
            unit: p.unit,
            prices: (p.components.into_iter())
                .filter_map(|c| Some((c.type_?, c.price?)))
                .collect(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(OfferingView {
        uuid: o.uuid,
        name: o.name,
        type_: o.type_,
        state: o.state,
        components,
        plans,
    }))
}
