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
//! does not apply) in the gateway's own URLs: under `public_url` when it is configured, otherwise
//! under the `Host` the client connected to; `Forwarded` and `X-Forwarded-*` are never read. A page after the last is a 404.
//!
//! **Shapes.** Waldur's objects are mapped to smaller gateway objects ([`super::views`]).
//!
//! **Puhuri errors on reads.** Puhuri unreachable or failing → 503 `unavailable` (with
//! `Retry-After`), no answer in time → 504 `upstream_error`, a refusal → 502 `upstream_error`.
//! Puhuri's body is logged, never sent.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use super::AppState;
use super::submit::{ResourceRef, lookup_failed};
use crate::auth::SiteIdentity;
use crate::domain::{BackendId, WaldurUuid};
use crate::error::ApiError;
use crate::upstream::directory::{MAX_SCAN_PAGES, SCAN_PAGE_SIZE, ScanError};
use crate::upstream::{Order, UpstreamError};

use super::upstream_failure::{Purpose, upstream_failure};

pub const DEFAULT_PAGE_SIZE: u64 = 10;
pub const MAX_PAGE_SIZE: u64 = 100;
/// The most pages of 100 the gateway reads to build one filtered list.
pub const MAX_UPSTREAM_PAGES: usize = 50;
pub use crate::upstream::directory::LIVE_RESOURCE_STATES;

/// A resource named in a path: a uuid or `backend_id:<id>`.
pub fn resource_ref(segment: &str) -> Result<ResourceRef, ApiError> {
    if let Some(id) = segment.strip_prefix("backend_id:") {
        return BackendId::parse(id)
            .map(ResourceRef::BackendId)
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
) -> Result<Order, ApiError> {
    let order = match state.directory.client().order(uuid.as_str()).await {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Err(order_not_yours()),
        Err(e) if for_write => return Err(lookup_failed(e)),
        Err(e) => return Err(read_failed(e)),
    };
    if identity.owns_offering(&order.offering_uuid) {
        Ok(order)
    } else {
        Err(order_not_yours())
    }
}

/// The uuid of the service provider behind the site's offerings: configured, the simulator's in
/// sandbox mode, or else found through the offering's organisation (and cached).
pub async fn service_provider_uuid(
    state: &AppState,
    identity: &SiteIdentity,
    for_write: bool,
) -> Result<String, ApiError> {
    if let Some(sp) = &state.service_provider_uuid {
        return Ok(sp.clone());
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
    upstream_failure(e, Purpose::Read)
}

/// The query string as pairs, read by the list handlers.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// The query string's pairs. Which keys an operation takes, and that none is empty, given
    /// twice where it takes one value or holds a control character, is checked before any route
    /// runs, against the operation's documented parameters (`middleware::query_problem`).
    pub fn parse(req: &HttpRequest) -> QueryParams {
        QueryParams(
            url::form_urlencoded::parse(req.query_string().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// A repeatable filter: `?state=a&state=b` or `?state=a,b`; each item trimmed, empty items kept
    /// (so that [`QueryParams::names`] can refuse `state=OK,`).
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|v| v.trim().to_string())
            .collect()
    }

    /// A uuid filter, normalised to the 32 lower-case hex digits Waldur stores (dashed, braced
    /// and upper-case forms are read), so what is forwarded is always a uuid Waldur accepts.
    /// Anything else is a 400 `invalid_query` naming the key: Waldur would answer
    /// `{"<key>": ["Enter a valid UUID."]}`.
    pub fn uuid(&self, key: &str) -> Result<Option<WaldurUuid>, ApiError> {
        self.one(key)
            .map(|v| {
                WaldurUuid::parse(v)
                    .map_err(|m| ApiError::InvalidQuery(format!("`{key}` {m}, not `{v}`")))
            })
            .transpose()
    }

    /// A repeatable filter of Waldur names (`state`, `type`), each matched without regard to
    /// case and forwarded as Waldur's exact name, each once: Waldur's choice filters are
    /// case-sensitive and answer a wrong-case value with 400 ("Select a valid choice. ok is not
    /// one of the available choices."). An unknown value is a 400 `invalid_query` listing the
    /// names (`what` says what they are, e.g. "an order state").
    pub fn names(&self, key: &str, names: &[&str], what: &str) -> Result<Vec<String>, ApiError> {
        let mut out: Vec<String> = Vec::new();
        for v in self.all(key) {
            if v.is_empty() {
                return Err(ApiError::InvalidQuery(format!(
                    "`{key}` has an empty item; list names separated by single commas"
                )));
            }
            let Some(known) = names.iter().find(|n| n.eq_ignore_ascii_case(&v)) else {
                return Err(ApiError::InvalidQuery(format!(
                    "`{v}` is not {what} (use: {})",
                    names.join(", ")
                )));
            };
            if !out.iter().any(|o| o == known) {
                out.push(known.to_string());
            }
        }
        Ok(out)
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

/// The `page` and `page_size` parameters every page-numbered list takes, documented once
/// (`params(PageParams)` in a list's `#[utoipa::path]`); [`QueryParams::paging`] reads them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // only its documentation is used
pub struct PageParams {
    /// From 1
    #[param(minimum = 1, maximum = 4294967295.0)]
    page: Option<u64>,
    /// 1 to 100, default 10
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u64>,
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

/// `scheme://host` of the gateway as its clients reach it: `public_url` when configured.
/// Otherwise the `Host` the client connected to, when it is a plain host name or address with
/// an optional port (else the listener's own address), over `https` when the gateway serves
/// TLS itself (`[tls]`) and `http` otherwise. `Forwarded` and `X-Forwarded-*` are never read: behind a proxy, set
/// `public_url`.
fn origin(state: &AppState, req: &HttpRequest) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = req
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| super::middleware::is_plain_host(h))
        .map(str::to_string)
        .unwrap_or_else(|| req.app_config().local_addr().to_string());
    let scheme = if state.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// The uuids of projects with a live resource in the site's offerings (cached for a minute:
/// [`crate::upstream::directory::Directory::site_projects`]).
pub async fn site_projects(
    state: &AppState,
    identity: &SiteIdentity,
) -> Result<Arc<BTreeSet<String>>, ApiError> {
    let offerings: Vec<String> = identity.site.offerings.iter().cloned().collect();
    state
        .directory
        .site_projects(&offerings)
        .await
        .map_err(scan_failed)
}

/// A scan that failed: Puhuri's failure as [`read_failed`], a list past the scan bound as 422
/// `list_too_large` (a retry would meet the same bound, so it is never a 503).
pub fn scan_failed(e: ScanError) -> ApiError {
    match e {
        ScanError::Upstream(e) => read_failed(e),
        ScanError::TooLarge(t) => list_too_large(&t.what),
    }
}

/// 422 `list_too_large` for a list at `what` longer than the scan bound.
pub fn list_too_large(what: &str) -> ApiError {
    ApiError::ListTooLarge(format!(
        "answering this would read more than {} objects of Puhuri's {what}; narrow the query \
         (`user_uuid`, `project_uuid`) or bind the site to every offering of its service \
         provider, where a page costs one upstream page",
        SCAN_PAGE_SIZE as usize * MAX_SCAN_PAGES
    ))
}
