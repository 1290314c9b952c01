//! What the site API's reads and writes on orders, resources and users share: naming objects in
//! paths, scoping them to the site, pagination in the gateway's own URLs, Puhuri errors on reads,
//! and the gateway's simple shapes of Waldur's objects.
//!
//! **Naming a resource.** Wherever a path has a resource `{uuid}`, a site may write Puhuri's
//! uuid (32 hex digits, dashes allowed) or `backend_id:<its own id>` (percent-encode characters a
//! path cannot carry; a `/` cannot be used). A backend id names the one non-terminated resource
//! of the site's offerings with that id: none is a 404, several a 409.
//!
//! **Scoping.** An order or resource outside the site's offerings is a 403 whose text does not
//! say whether it exists. Lists always send `offering_uuid` = each of the site's offerings.
//!
//! **Pagination.** `page` (from 1) and `page_size` (1–100, default 10). Lists are bare JSON
//! arrays with `X-Result-Count` and `Link` (`first`, `prev`, `next`, `last`, each omitted where it
//! does not apply) in the gateway's own URLs. A page after the last is a 404.
//!
//! **Shapes.** Waldur's objects are mapped to smaller gateway objects: uuids instead of Puhuri
//! URLs (which a site cannot follow with its own token), the fields a site system needs, nothing
//! that only Puhuri's web UI uses.
//!
//! **Puhuri errors on reads.** Puhuri unreachable or failing → 503 `unavailable` (with
//! `Retry-After`), no answer in time → 504 `upstream_error`, a refusal → 502 `upstream_error`.
//! Puhuri's body is logged, never sent.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::submit::{ResourceRef, lookup_failed};
use crate::auth::SiteIdentity;
use crate::config::Upstream;
use crate::domain::{BackendId, WaldurUuid};
use crate::error::ApiError;
use crate::upstream::UpstreamError;

pub const DEFAULT_PAGE_SIZE: u64 = 10;
pub const MAX_PAGE_SIZE: u64 = 100;
/// The most pages of 100 the gateway reads to build one filtered list.
pub const MAX_UPSTREAM_PAGES: usize = 50;
/// Resource states that count as "the resource exists" for scoping people to a site.
pub const LIVE_RESOURCE_STATES: [&str; 5] = ["Creating", "OK", "Erred", "Updating", "Terminating"];

/// A resource named in a path: a uuid or `backend_id:<id>`.
pub fn resource_ref(segment: &str) -> Result<ResourceRef, ApiError> {
    if let Some(id) = segment.strip_prefix("backend_id:") {
        return BackendId::parse(id)
            .map(|b| ResourceRef::BackendId(b.as_str().to_string()))
            .map_err(|m| ApiError::NotFound(format!("the backend id in the path {m}")));
    }
    WaldurUuid::parse(segment)
        .map(ResourceRef::Uuid)
        .map_err(|_| {
            ApiError::NotFound(
                "name the resource by its uuid or as `backend_id:<id>` in the path".into(),
            )
        })
}

pub fn uuid_in_path(segment: &str, what: &str) -> Result<WaldurUuid, ApiError> {
    WaldurUuid::parse(segment)
        .map_err(|_| ApiError::NotFound(format!("the {what} in the path must be a uuid")))
}

fn order_not_yours() -> ApiError {
    ApiError::Forbidden(
        "the order is not in one of this site's offerings, or does not exist".into(),
    )
}

/// The order as Waldur shows it, if it is in one of the site's offerings. `for_write` selects
/// how an unreachable Puhuri is reported.
pub async fn site_order(
    state: &AppState,
    identity: &SiteIdentity,
    uuid: &WaldurUuid,
    for_write: bool,
) -> Result<Value, ApiError> {
    let order = match state.directory.client().order(uuid.as_str()).await {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Err(order_not_yours()),
        Err(e) if for_write => return Err(lookup_failed(e)),
        Err(e) => return Err(read_failed(e)),
    };
    match order["offering_uuid"].as_str() {
        Some(o) if identity.owns_offering(o) => Ok(order),
        _ => Err(order_not_yours()),
    }
}

/// The uuid of the service provider behind the site's offerings: configured, the simulator's in
/// sandbox mode, or else found through the offering's organisation (and cached).
pub async fn service_provider_uuid(
    state: &AppState,
    identity: &SiteIdentity,
    for_write: bool,
) -> Result<String, ApiError> {
    match &state.config.upstream {
        Upstream::Puhuri(u) => {
            if let Some(sp) = &u.service_provider_uuid {
                return Ok(sp.clone());
            }
        }
        Upstream::Sandbox { .. } => return Ok(crate::sim::demo::SERVICE_PROVIDER_UUID.into()),
    }
    let offering = identity
        .site
        .offerings
        .iter()
        .next()
        .ok_or_else(|| ApiError::Forbidden("the site has no offerings".into()))?;
    let found = state
        .directory
        .service_provider_of_offering(offering)
        .await
        .map_err(|e| {
            if for_write {
                lookup_failed(e)
            } else {
                read_failed(e)
            }
        })?;
    found.ok_or_else(|| {
        ApiError::internal("the site's offering has no service provider in Puhuri; set upstream.service_provider_uuid")
    })
}

/// Puhuri did not answer a read as it should.
pub fn read_failed(e: UpstreamError) -> ApiError {
    match e {
        UpstreamError::Transient {
            status, message, ..
        } => {
            tracing::warn!(?status, %message, "Puhuri could not answer a read");
            if message.contains("timed out") {
                ApiError::Upstream {
                    status: StatusCode::GATEWAY_TIMEOUT,
                    detail: "Puhuri did not answer in time; retry later".into(),
                }
            } else {
                ApiError::Unavailable {
                    detail: "Puhuri cannot be reached or is failing; retry later".into(),
                    retry_after: 5,
                }
            }
        }
        UpstreamError::Permanent { status, message } => {
            tracing::warn!(status, %message, "Puhuri refused a read");
            ApiError::Upstream {
                status: StatusCode::BAD_GATEWAY,
                detail: format!("Puhuri refused the read ({status})"),
            }
        }
    }
}

/// The query string as pairs; each handler names the keys it takes.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(req: &HttpRequest, allowed: &[&str]) -> Result<QueryParams, ApiError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(req.query_string().as_bytes())
                .into_owned()
                .collect();
        if let Some((k, _)) = pairs
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()) && k != "page" && k != "page_size")
        {
            return Err(ApiError::InvalidQuery(format!(
                "unknown query parameter `{k}`; this operation takes: {}",
                [allowed, &["page", "page_size"]].concat().join(", ")
            )));
        }
        Ok(QueryParams(pairs))
    }

    pub fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// A repeatable filter: `?state=a&state=b` or `?state=a,b`.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn paging(&self) -> Result<Paging, ApiError> {
        let number = |key: &str, default: u64, max: u64| -> Result<u64, ApiError> {
            match self.one(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        ApiError::InvalidQuery(format!("`{key}` must be a number from 1 to {max}"))
                    }),
            }
        };
        Ok(Paging {
            page: number("page", 1, u32::MAX as u64)?,
            page_size: number("page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?,
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Paging {
    pub page: u64,
    pub page_size: u64,
}

impl Paging {
    pub fn upstream_query(&self) -> [(&'static str, String); 2] {
        [
            ("page", self.page.to_string()),
            ("page_size", self.page_size.to_string()),
        ]
    }

    fn beyond(&self) -> ApiError {
        ApiError::NotFound(format!("page {} is after the last page", self.page))
    }

    /// One page of an already filtered list.
    pub fn slice<T>(&self, items: Vec<T>) -> Result<(Vec<T>, u64), ApiError> {
        let total = items.len() as u64;
        let skip = (self.page - 1) * self.page_size;
        if self.page > 1 && skip >= total {
            return Err(self.beyond());
        }
        let page = items
            .into_iter()
            .skip(skip as usize)
            .take(self.page_size as usize)
            .collect();
        Ok((page, total))
    }
}

/// A page Puhuri paginated: its out-of-range 404 becomes the gateway's.
pub fn upstream_page_failed(e: UpstreamError, paging: &Paging) -> ApiError {
    if e.is_not_found() {
        paging.beyond()
    } else {
        read_failed(e)
    }
}

/// The list answer: a bare array with `X-Result-Count` and `Link` in the gateway's URLs.
pub fn list_response<T: Serialize>(
    state: &AppState,
    req: &HttpRequest,
    paging: &Paging,
    total: u64,
    items: &[T],
) -> HttpResponse {
    let pages = total.div_ceil(paging.page_size).max(1);
    let page_url = |n: u64| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
            if k != "page" {
                query.append_pair(&k, &v);
            }
        }
        query.append_pair("page", &n.to_string());
        format!("{}{}?{}", origin(state, req), req.path(), query.finish())
    };
    let mut links = Vec::new();
    if paging.page > 1 {
        links.push(format!("<{}>; rel=\"first\"", page_url(1)));
        links.push(format!(
            "<{}>; rel=\"prev\"",
            page_url((paging.page - 1).min(pages))
        ));
    }
    if paging.page < pages {
        links.push(format!("<{}>; rel=\"next\"", page_url(paging.page + 1)));
        links.push(format!("<{}>; rel=\"last\"", page_url(pages)));
    }
    let mut response = HttpResponse::Ok();
    response.insert_header(("X-Result-Count", total.to_string()));
    if !links.is_empty() {
        response.insert_header(("Link", links.join(", ")));
    }
    response.json(items)
}

/// `scheme://host` of the gateway as its clients reach it (`public_url` when configured).
fn origin(state: &AppState, req: &HttpRequest) -> String {
    match &state.config.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

/// The uuids of projects with a live resource in the site's offerings.
pub async fn site_projects(
    state: &AppState,
    identity: &SiteIdentity,
) -> Result<BTreeSet<String>, ApiError> {
    let mut query: Vec<(&str, String)> = identity
        .site
        .offerings
        .iter()
        .map(|o| ("offering_uuid", o.clone()))
        .collect();
    query.extend(
        LIVE_RESOURCE_STATES
            .iter()
            .map(|s| ("state", s.to_string())),
    );
    query.push(("field", "project_uuid".into()));
    let resources = state
        .directory
        .client()
        .get_all(
            "marketplace-provider-resources/",
            &query,
            MAX_UPSTREAM_PAGES,
        )
        .await
        .map_err(read_failed)?;
    Ok(resources
        .iter()
        .filter_map(|r| r["project_uuid"].as_str())
        .map(str::to_string)
        .collect())
}

// --- shapes ------------------------------------------------------------------------------------

pub fn text(v: &Value, key: &str) -> Option<String> {
    match &v[key] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text_or_empty(v: &Value, key: &str) -> String {
    text(v, key).unwrap_or_default()
}

fn object(v: &Value, key: &str) -> Value {
    match &v[key] {
        Value::Object(m) => Value::Object(m.clone()),
        _ => Value::Object(Default::default()),
    }
}

/// An order, in the gateway's terms.
#[derive(Serialize, ToSchema)]
pub struct OrderView {
    pub uuid: String,
    /// `pending-provider`, `executing`, `done`, `erred`, `rejected`, … (Waldur's order states).
    pub state: String,
    /// `Create`, `Update`, `Terminate` or `Restore`.
    #[serde(rename = "type")]
    pub type_: String,
    pub resource_uuid: Option<String>,
    pub resource_name: Option<String>,
    pub offering_uuid: String,
    pub offering_name: Option<String>,
    pub plan_uuid: Option<String>,
    pub plan_name: Option<String>,
    pub project_uuid: Option<String>,
    pub project_name: Option<String>,
    pub customer_uuid: Option<String>,
    pub customer_name: Option<String>,
    /// What the customer asked for (LUMI options such as `is_industry`, `used_ai_tech`).
    #[schema(value_type = Object)]
    pub attributes: Value,
    /// Requested limits per component type.
    #[schema(value_type = Object)]
    pub limits: Value,
    pub request_comment: Option<String>,
    pub created_by_username: Option<String>,
    pub created_by_full_name: Option<String>,
    pub created_by_email: Option<String>,
    pub error_message: Option<String>,
    pub provider_rejection_comment: Option<String>,
    pub backend_id: Option<String>,
    pub created: Option<String>,
    pub modified: Option<String>,
    pub completed_at: Option<String>,
}

impl OrderView {
    pub fn from_waldur(v: &Value) -> OrderView {
        OrderView {
            uuid: text_or_empty(v, "uuid"),
            state: text_or_empty(v, "state"),
            type_: text_or_empty(v, "type"),
            resource_uuid: text(v, "marketplace_resource_uuid")
                .or_else(|| text(v, "resource_uuid")),
            resource_name: text(v, "resource_name"),
            offering_uuid: text_or_empty(v, "offering_uuid"),
            offering_name: text(v, "offering_name"),
            plan_uuid: text(v, "plan_uuid"),
            plan_name: text(v, "plan_name"),
            project_uuid: text(v, "project_uuid"),
            project_name: text(v, "project_name"),
            customer_uuid: text(v, "customer_uuid"),
            customer_name: text(v, "customer_name"),
            attributes: object(v, "attributes"),
            limits: object(v, "limits"),
            request_comment: text(v, "request_comment"),
            created_by_username: text(v, "created_by_username"),
            created_by_full_name: text(v, "created_by_full_name"),
            created_by_email: text(v, "created_by_email"),
            error_message: text(v, "error_message"),
            provider_rejection_comment: text(v, "provider_rejection_comment"),
            backend_id: text(v, "backend_id"),
            created: text(v, "created"),
            modified: text(v, "modified"),
            completed_at: text(v, "completed_at"),
        }
    }
}

/// One section of a resource's report.
#[derive(Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ReportSectionView {
    pub header: String,
    pub body: String,
}

/// A resource (an allocation), in the gateway's terms.
#[derive(Serialize, ToSchema)]
pub struct ResourceView {
    pub uuid: String,
    pub name: String,
    /// `Creating`, `OK`, `Erred`, `Updating`, `Terminating` or `Terminated`.
    pub state: String,
    /// The site's own id for it (empty until set).
    pub backend_id: String,
    pub offering_uuid: String,
    pub offering_name: Option<String>,
    pub plan_uuid: Option<String>,
    pub plan_name: Option<String>,
    pub project_uuid: Option<String>,
    pub project_name: Option<String>,
    pub customer_uuid: Option<String>,
    pub customer_name: Option<String>,
    /// Limits per component type.
    #[schema(value_type = Object)]
    pub limits: Value,
    /// The attributes it was ordered with.
    #[schema(value_type = Object)]
    pub attributes: Value,
    /// Options set after creation (`update_options`).
    #[schema(value_type = Object)]
    pub options: Value,
    /// This month's reported usage per component type.
    #[schema(value_type = Object)]
    pub current_usages: Value,
    pub report: Vec<ReportSectionView>,
    pub error_message: Option<String>,
    pub end_date: Option<String>,
    /// The order being processed for it, if any.
    pub order_in_progress_uuid: Option<String>,
    pub created: Option<String>,
    pub modified: Option<String>,
}

impl ResourceView {
    pub fn from_waldur(v: &Value) -> ResourceView {
        ResourceView {
            uuid: text_or_empty(v, "uuid"),
            name: text_or_empty(v, "name"),
            state: text_or_empty(v, "state"),
            backend_id: text_or_empty(v, "backend_id"),
            offering_uuid: text_or_empty(v, "offering_uuid"),
            offering_name: text(v, "offering_name"),
            plan_uuid: text(v, "plan_uuid"),
            plan_name: text(v, "plan_name"),
            project_uuid: text(v, "project_uuid"),
            project_name: text(v, "project_name"),
            customer_uuid: text(v, "customer_uuid"),
            customer_name: text(v, "customer_name"),
            limits: object(v, "limits"),
            attributes: object(v, "attributes"),
            options: object(v, "options"),
            current_usages: object(v, "current_usages"),
            report: serde_json::from_value(v["report"].clone()).unwrap_or_default(),
            error_message: text(v, "error_message").filter(|m| !m.is_empty()),
            end_date: text(v, "end_date"),
            order_in_progress_uuid: text(&v["order_in_progress"], "uuid"),
            created: text(v, "created"),
            modified: text(v, "modified"),
        }
    }
}

/// A member of a resource's project.
#[derive(Serialize, ToSchema)]
pub struct TeamMemberView {
    pub user_uuid: String,
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    /// The project role, e.g. `PROJECT.MANAGER`.
    pub role: Option<String>,
    pub expiration_time: Option<String>,
    /// The user's username on the resource's offering, once set.
    pub offering_user_username: Option<String>,
    pub offering_user_state: Option<String>,
}

impl TeamMemberView {
    pub fn from_waldur(v: &Value) -> TeamMemberView {
        TeamMemberView {
            user_uuid: text_or_empty(v, "uuid"),
            username: text_or_empty(v, "username"),
            full_name: text(v, "full_name"),
            email: text(v, "email"),
            role: text(v, "role"),
            expiration_time: text(v, "expiration_time"),
            offering_user_username: text(v, "offering_user_username"),
            offering_user_state: text(v, "offering_user_state"),
        }
    }
}

/// A user of the service provider (someone on a team of one of the site's resources).
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub uuid: String,
    pub username: String,
    pub full_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub organization: Option<String>,
    pub is_active: Option<bool>,
}

impl UserView {
    pub fn from_waldur(v: &Value) -> UserView {
        UserView {
            uuid: text_or_empty(v, "uuid"),
            username: text_or_empty(v, "username"),
            full_name: text(v, "full_name"),
            first_name: text(v, "first_name"),
            last_name: text(v, "last_name"),
            email: text(v, "email"),
            organization: text(v, "organization"),
            is_active: v["is_active"].as_bool(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SshKeyView {
    pub uuid: String,
    pub user_uuid: String,
    pub name: Option<String>,
    pub public_key: String,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub fingerprint_sha256: Option<String>,
    pub is_shared: Option<bool>,
}

impl SshKeyView {
    pub fn from_waldur(v: &Value) -> SshKeyView {
        SshKeyView {
            uuid: text_or_empty(v, "uuid"),
            user_uuid: text_or_empty(v, "user_uuid"),
            name: text(v, "name"),
            public_key: text_or_empty(v, "public_key"),
            type_: text(v, "type"),
            fingerprint_sha256: text(v, "fingerprint_sha256"),
            is_shared: v["is_shared"].as_bool(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProjectView {
    pub uuid: String,
    pub name: String,
    pub description: Option<String>,
    pub customer_uuid: Option<String>,
    pub customer_name: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub created: Option<String>,
}

impl ProjectView {
    pub fn from_waldur(v: &Value) -> ProjectView {
        ProjectView {
            uuid: text_or_empty(v, "uuid"),
            name: text_or_empty(v, "name"),
            description: text(v, "description"),
            customer_uuid: text(v, "customer_uuid"),
            customer_name: text(v, "customer_name"),
            start_date: text(v, "start_date"),
            end_date: text(v, "end_date"),
            created: text(v, "created"),
        }
    }
}

/// An active project role of a user.
#[derive(Serialize, ToSchema)]
pub struct ProjectPermissionView {
    pub user_uuid: String,
    pub user_username: Option<String>,
    pub user_full_name: Option<String>,
    pub user_email: Option<String>,
    pub project_uuid: String,
    pub project_name: Option<String>,
    pub customer_uuid: Option<String>,
    pub customer_name: Option<String>,
    /// The role, e.g. `PROJECT.ADMIN`.
    pub role: Option<String>,
    pub created: Option<String>,
    pub expiration_time: Option<String>,
}

impl ProjectPermissionView {
    pub fn from_waldur(v: &Value) -> ProjectPermissionView {
        ProjectPermissionView {
            user_uuid: text_or_empty(v, "user_uuid"),
            user_username: text(v, "user_username"),
            user_full_name: text(v, "user_full_name"),
            user_email: text(v, "user_email"),
            project_uuid: text_or_empty(v, "project_uuid"),
            project_name: text(v, "project_name"),
            customer_uuid: text(v, "customer_uuid"),
            customer_name: text(v, "customer_name"),
            role: text(v, "role_name").or_else(|| text(v, "role")),
            created: text(v, "created"),
            expiration_time: text(v, "expiration_time"),
        }
    }
}
