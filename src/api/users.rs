//! People: usernames (queued writes) and the service provider's views of users, SSH keys,
//! projects and project permissions, narrowed to the site.
//!
//! **Whose user is it?** A user is the site's when they hold an active role in a project that has
//! a live (not terminated) resource in one of the site's offerings, i.e. they are on the team of
//! one of its resources. The check is two calls: the user's project roles in the provider's view
//! (`…/project_permissions/?user_uuid=`) and a count of resources of those projects in the site's
//! offerings. For `POST /v1/offering-users` the resource must be in that very offering.
//!
//! **What a page of the people reads costs.** Puhuri's provider views
//! (`marketplace-service-providers/{uuid}/{projects,users,keys,project_permissions}/`) list the
//! projects with a non-terminated resource of *any* of the provider's offerings, their members,
//! their keys and their roles. So:
//! - a site bound to every offering of its provider (checked once per 10 minutes, cached) gets
//!   exactly those views: a page of the gateway's list is the same page of Puhuri's, one upstream
//!   call, with Waldur 8.0.5's filters (`username`; keys' `user_uuid`; roles' `scope_uuid` and
//!   `user`) and `field=` for only what the gateway shows;
//! - a site bound to some of its provider's offerings is narrowed by the gateway: its projects
//!   are found by one scan of its resources (`offering_uuid`, live `state`s,
//!   `field=project_uuid`, cached for a minute), then the view is scanned in pages of 300 and
//!   filtered, and the gateway paginates. A scan longer than 100 pages (30,000 objects) is a 422
//!   `list_too_large`, never a 503: a retry would meet the same bound.
//!
//! A user who is also on another site's resources is visible to both sites (the user is shared;
//! their other projects are not listed).
//!
//! **`PUT /v1/users/{uuid}/username`** is Waldur's `set_offerings_username`: it sets the username
//! on *every* offering of the service provider where the user has a resource. So it is allowed
//! only to a site bound to every one of the provider's offerings; a site bound to fewer gets 403
//! (it would rename the user on other sites' offerings) and uses `POST /v1/offering-users`, which
//! touches one offering of the site only.
//!
//! **Usernames** follow [`crate::domain::username`]: by default the POSIX portable rule,
//! otherwise `limits.username_pattern`.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::api::body::JsonBody;
use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::jobs::JobView;
use super::reads::{
    LIVE_RESOURCE_STATES, MAX_UPSTREAM_PAGES, Paging, QueryParams, list_response, list_too_large,
    scan_failed, service_provider_uuid, site_projects, upstream_page_failed, uuid_in_path,
};
use super::responses::{PeopleReadErrors, WriteErrors, WriteHeaders};
use super::submit::{lookup_failed, submit};
use super::views::{ProjectPermissionView, ProjectView, SshKeyView, UserView};
use crate::auth::SiteIdentity;
use crate::auth::scoped::{Authorized, Read, UsersWrite};
use crate::domain::operations::{OfferingUsername, Operation, UserUsername};
use crate::domain::{Username, WaldurUuid};
use crate::error::{ApiError, FieldError};
use crate::upstream::directory::ScanError;

fn username(state: &AppState, name: &str) -> Result<Username, FieldError> {
    Username::parse(name, &state.username_rule).map_err(|m| FieldError::new("username", m))
}

fn not_yours() -> ApiError {
    ApiError::Forbidden(
        "the user is not on the team of a resource of this site's offerings, or does not exist"
            .into(),
    )
}

/// 403 unless the user holds a role in a project with a live resource in `offerings`.
async fn check_user(
    state: &AppState,
    identity: &SiteIdentity,
    user: &WaldurUuid,
    offerings: &[String],
) -> Result<(), ApiError> {
    let sp = service_provider_uuid(state, identity, true).await?;
    let client = state.directory.client();
    let roles = client
        .get_all(
            &format!("marketplace-service-providers/{sp}/project_permissions/"),
            // Waldur 8.0.5's role filter for the user's uuid is `user`.
            &[("user", user.to_string())],
            MAX_UPSTREAM_PAGES,
        )
        .await
        .map_err(lookup_failed)?;
    let projects: BTreeSet<&str> = roles
        .iter()
        .filter(|r| r["user_uuid"].as_str() == Some(user.as_str()))
        .filter_map(|r| r["project_uuid"].as_str())
        .collect();
    if projects.is_empty() {
        return Err(not_yours());
    }
    let mut query: Vec<(&str, String)> = projects
        .iter()
        .map(|p| ("project_uuid", p.to_string()))
        .collect();
    query.extend(offerings.iter().map(|o| ("offering_uuid", o.clone())));
    query.extend(
        LIVE_RESOURCE_STATES
            .iter()
            .map(|s| ("state", s.to_string())),
    );
    query.push(("field", "offering_uuid".into()));
    query.push(("field", "project_uuid".into()));
    query.push(("page_size", "100".into()));
    let page = client
        .get_page("marketplace-provider-resources/", &query)
        .await
        .map_err(lookup_failed)?;
    // Check again rather than trust the filters.
    let found = page.items.iter().any(|r| {
        r["offering_uuid"]
            .as_str()
            .is_some_and(|o| offerings.iter().any(|x| x == o))
            && r["project_uuid"]
                .as_str()
                .is_some_and(|p| projects.contains(p))
    });
    if found { Ok(()) } else { Err(not_yours()) }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"offering_uuid": "0f000000000040008000000000000001", "user_uuid": "a0000000000040008000000000000012", "username": "bob_lumi"}))]
pub struct OfferingUserRequest {
    /// One of the site's offerings.
    #[schema(
        pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    pub offering_uuid: String,
    /// A user on the team of a resource of that offering.
    #[schema(
        pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    pub user_uuid: String,
    /// By default 1-32 of `A-Z a-z 0-9 . _ -`, not starting with `-` or `.`; the operator may
    /// set another rule (`limits.username_pattern`).
    #[schema(example = "bob_lumi")]
    pub username: String,
}

/// Create or update a user's account name on one of the site's offerings.
///
/// Delivered idempotently: the offering user is looked up first and its username changed only if
/// it differs; it is created when absent (a create that meets an existing one is an update).
#[utoipa::path(
    context_path = "/v1",
    tag = "users",
    security(("bearer" = [])),
    params(WriteHeaders),
    request_body = OfferingUserRequest,
    responses(
        (status = 202, body = JobView, description = "Stored; delivery follows", headers(("Location" = String, description = "The job"))),
        (status = 200, body = JobView, description = "An earlier job with the same Idempotency-Key, or a finished job after `Prefer: wait`"),
        WriteErrors<UsersWrite>,
    )
)]
#[post("/offering-users")]
pub async fn set_offering_username(
    identity: Authorized<UsersWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<OfferingUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = Vec::new();
    let offering = WaldurUuid::parse(&body.offering_uuid)
        .map_err(|m| errors.push(FieldError::new("offering_uuid", m)))
        .ok();
    let user = WaldurUuid::parse(&body.user_uuid)
        .map_err(|m| errors.push(FieldError::new("user_uuid", m)))
        .ok();
    let username = username(&state, &body.username)
        .map_err(|e| errors.push(e))
        .ok();
    let (Some(offering), Some(user), Some(username), true) =
        (offering, user, username, errors.is_empty())
    else {
        return Err(ApiError::validation(errors));
    };
    if !identity.owns_offering(offering.as_str()) {
        return Err(ApiError::Forbidden(
            "the offering is not one of this site's".into(),
        ));
    }
    check_user(&state, &identity, &user, &[offering.to_string()]).await?;
    let op = Operation::OfferingUsername(OfferingUsername {
        offering_uuid: offering.to_string(),
        user_uuid: user.to_string(),
        username: username.to_string(),
    });
    let sent = serde_json::json!({
        "offering_uuid": offering.as_str(), "user_uuid": user.as_str(), "username": username.to_string()
    });
    submit(&state, &identity, &req, op, sent).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "bob_lumi"}))]
pub struct UsernameRequest {
    /// By default 1-32 of `A-Z a-z 0-9 . _ -`, not starting with `-` or `.`; the operator may
    /// set another rule (`limits.username_pattern`).
    #[schema(example = "bob_lumi")]
    pub username: String,
}

/// Set a user's username on every offering of the service provider where they have a resource
/// (`set_offerings_username`).
///
/// Only for a site bound to every offering of its service provider (Waldur applies the name to
/// all of them); any other site gets 403 and sets usernames per offering with
/// `POST /v1/offering-users`. The user must be on the team of a resource of one of the site's
/// offerings.
#[utoipa::path(
    context_path = "/v1",
    tag = "users",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The user's uuid", example = "a0000000000040008000000000000012"), WriteHeaders),
    request_body = UsernameRequest,
    responses(
        (status = 202, body = JobView, description = "Stored; delivery follows", headers(("Location" = String, description = "The job"))),
        (status = 200, body = JobView, description = "An earlier job with the same Idempotency-Key, or a finished job after `Prefer: wait`"),
        WriteErrors<UsersWrite>,
    )
)]
#[put("/users/{uuid}/username")]
pub async fn set_username(
    identity: Authorized<UsersWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<UsernameRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = uuid_in_path(&path, "user")?;
    let username = username(&state, &body.username).map_err(|e| ApiError::validation(vec![e]))?;
    check_bound_to_every_offering(&state, &identity).await?;
    let offerings: Vec<String> = identity.site.offerings.iter().cloned().collect();
    check_user(&state, &identity, &user, &offerings).await?;
    let sp = service_provider_uuid(&state, &identity, true).await?;
    // The service provider is found at arrival: not part of the request as sent.
    let sent = serde_json::json!({ "username": username.to_string() });
    let op = Operation::UserUsername(UserUsername {
        service_provider_uuid: sp,
        user_uuid: user.to_string(),
        username: username.to_string(),
    });
    submit(&state, &identity, &req, op, sent).await
}

/// 403 unless the site is bound to every offering of its service provider: Waldur's
/// `set_offerings_username` renames the user on all of them, so a site bound to fewer would
/// reach offerings of other sites. The provider's offerings are those of the customer that owns
/// the site's offerings, as Puhuri's provider view lists them (every state, archived included).
async fn check_bound_to_every_offering(
    state: &AppState,
    identity: &SiteIdentity,
) -> Result<(), ApiError> {
    let Some(first) = identity.site.offerings.iter().next() else {
        return Err(ApiError::Forbidden("the site has no offerings".into()));
    };
    let customer = state
        .directory
        .offering(first)
        .await
        .map_err(lookup_failed)?
        .customer_uuid
        .clone();
    let offerings = state
        .directory
        .client()
        .get_all(
            "marketplace-provider-offerings/",
            &[("customer_uuid", customer), ("field", "uuid".into())],
            MAX_UPSTREAM_PAGES,
        )
        .await
        .map_err(lookup_failed)?;
    let others = offerings
        .iter()
        .filter_map(|o| o["uuid"].as_str())
        .filter(|o| !identity.owns_offering(o))
        .count();
    if others == 0 {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this sets the username on every offering of the service provider, and {others} of \
             them are not this site's; set it per offering with POST /v1/offering-users"
        )))
    }
}

// --- reads -------------------------------------------------------------------------------------

/// The fields each list takes from Puhuri's provider views (`field=`, Waldur 8.0.5's
/// `MarketplaceServiceProviderUserFieldEnum`, `SshKeyFieldEnum`, `ProjectFieldEnum` and
/// `ProjectPermissionLogFieldEnum`): what the gateway's shapes in [`super::views`] read.
const USER_FIELDS: &[&str] = &[
    "uuid",
    "username",
    "full_name",
    "first_name",
    "last_name",
    "email",
    "organization",
    "is_active",
];
const KEY_FIELDS: &[&str] = &[
    "uuid",
    "user_uuid",
    "name",
    "public_key",
    "type",
    "is_shared",
];
const PROJECT_FIELDS: &[&str] = &[
    "uuid",
    "name",
    "description",
    "customer_uuid",
    "customer_name",
    "start_date",
    "end_date",
    "created",
];
const ROLE_FIELDS: &[&str] = &[
    "user_uuid",
    "user_username",
    "user_full_name",
    "user_email",
    "project_uuid",
    "project_name",
    "customer_uuid",
    "customer_name",
    "role_name",
    "role",
    "created",
    "expiration_time",
];

/// How a list of people is narrowed to the site.
enum People {
    /// The site is bound to every offering of its provider: Puhuri's provider views are exactly
    /// the site's, so a page is one upstream page (Waldur paginates and counts).
    Provider { sp: String },
    /// The site has some of the provider's offerings: the provider's views are scanned (in
    /// pages of 300, at most [`crate::upstream::directory::MAX_SCAN_PAGES`]) and narrowed to
    /// these projects, and the gateway paginates.
    Narrowed {
        sp: String,
        projects: Arc<BTreeSet<String>>,
    },
}

async fn people(state: &AppState, identity: &SiteIdentity) -> Result<People, ApiError> {
    let sp = service_provider_uuid(state, identity, false).await?;
    let offerings: Vec<String> = identity.site.offerings.iter().cloned().collect();
    let covers = state
        .directory
        .offerings_cover_provider(&offerings)
        .await
        .map_err(scan_failed)?;
    if covers {
        Ok(People::Provider { sp })
    } else {
        Ok(People::Narrowed {
            sp,
            projects: site_projects(state, identity).await?,
        })
    }
}

fn with_fields<'a>(query: &[(&'a str, String)], fields: &[&str]) -> Vec<(&'a str, String)> {
    let mut q = query.to_vec();
    q.extend(fields.iter().map(|f| ("field", f.to_string())));
    q
}

/// One page of a provider view, as Waldur paginates it: one upstream call.
async fn view_page(
    state: &AppState,
    sp: &str,
    view: &str,
    query: &[(&str, String)],
    fields: &[&str],
    paging: &Paging,
) -> Result<(Vec<Value>, u64), ApiError> {
    let mut q = with_fields(query, fields);
    q.extend(paging.upstream_query());
    let page = state
        .directory
        .client()
        .get_page(&format!("marketplace-service-providers/{sp}/{view}/"), &q)
        .await
        .map_err(|e| upstream_page_failed(e, paging))?;
    let total = page.total.unwrap_or(page.items.len() as u64);
    if paging.page > 1 && page.items.is_empty() {
        return Err(ApiError::NotFound(format!(
            "page {} is after the last page",
            paging.page
        )));
    }
    Ok((page.items, total))
}

/// Everything at a provider view, scanned within the bound (else 422 `list_too_large`) and
/// kept for a minute ([`crate::upstream::directory::Directory::scan`]).
async fn view_all(
    state: &AppState,
    sp: &str,
    view: &str,
    query: &[(&str, String)],
    fields: &[&str],
) -> Result<Arc<Vec<Value>>, ApiError> {
    let path = format!("marketplace-service-providers/{sp}/{view}/");
    state
        .directory
        .scan(&path, &with_fields(query, fields))
        .await
        .map_err(|e| match e {
            ScanError::TooLarge(_) => list_too_large(&format!("{view}/")),
            other => scan_failed(other),
        })
}

/// Active roles in `projects` (Waldur's role filters `scope_uuid` and `user` in `query`).
async fn roles_in(
    state: &AppState,
    sp: &str,
    projects: &BTreeSet<String>,
    query: &[(&str, String)],
) -> Result<Vec<Value>, ApiError> {
    Ok(
        view_all(state, sp, "project_permissions", query, ROLE_FIELDS)
            .await?
            .iter()
            .filter(|r| {
                r["project_uuid"]
                    .as_str()
                    .is_some_and(|p| projects.contains(p))
            })
            .cloned()
            .collect(),
    )
}

/// The uuids of the people with a role in `projects`.
async fn members_of(
    state: &AppState,
    sp: &str,
    projects: &BTreeSet<String>,
) -> Result<BTreeSet<String>, ApiError> {
    Ok(roles_in(state, sp, projects, &[])
        .await?
        .iter()
        .filter_map(|r| r["user_uuid"].as_str().map(str::to_string))
        .collect())
}

/// People on the teams of the site's resources.
#[utoipa::path(
    context_path = "/v1",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("username" = Option<String>, Query, description = "Exactly this Puhuri username", min_length = 1, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"),
        ("page" = Option<u64>, Query, description = "From 1", minimum = 1, maximum = 4294967295.0),
        ("page_size" = Option<u64>, Query, description = "1 to 100, default 10", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, body = [UserView], headers(("X-Result-Count" = u64, description = "Total across pages"), ("Link" = String, description = "first/prev/next/last pages"))),
        PeopleReadErrors,
    )
)]
#[get("/users")]
pub async fn list_users(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req);
    let paging = params.paging()?;
    let mut query = Vec::new();
    if let Some(u) = params.one("username") {
        query.push(("username", u.to_string()));
    }
    let (page, total) = match people(&state, &identity).await? {
        People::Provider { sp } => {
            let (items, total) =
                view_page(&state, &sp, "users", &query, USER_FIELDS, &paging).await?;
            (items.iter().map(UserView::from_waldur).collect(), total)
        }
        People::Narrowed { sp, projects } => {
            let members = members_of(&state, &sp, &projects).await?;
            let users: Vec<UserView> = view_all(&state, &sp, "users", &query, USER_FIELDS)
                .await?
                .iter()
                .filter(|u| u["uuid"].as_str().is_some_and(|x| members.contains(x)))
                .filter(|u| params.one("username").is_none_or(|n| u["username"] == n))
                .map(UserView::from_waldur)
                .collect();
            paging.slice(users)?
        }
    };
    Ok(list_response(&state, &req, &paging, total, &page))
}

/// SSH keys of the people on the teams of the site's resources.
#[utoipa::path(
    context_path = "/v1",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("user_uuid" = Option<String>, Query, description = "Only this user's keys", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        ("page" = Option<u64>, Query, description = "From 1", minimum = 1, maximum = 4294967295.0),
        ("page_size" = Option<u64>, Query, description = "1 to 100, default 10", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, body = [SshKeyView], headers(("X-Result-Count" = u64, description = "Total across pages"), ("Link" = String, description = "first/prev/next/last pages"))),
        PeopleReadErrors,
    )
)]
#[get("/ssh-keys")]
pub async fn list_ssh_keys(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req);
    let paging = params.paging()?;
    let user = params.uuid("user_uuid")?.map(String::from);
    let mut query = Vec::new();
    if let Some(u) = &user {
        query.push(("user_uuid", u.clone()));
    }
    let (page, total) = match people(&state, &identity).await? {
        People::Provider { sp } => {
            let (items, total) =
                view_page(&state, &sp, "keys", &query, KEY_FIELDS, &paging).await?;
            (items.iter().map(SshKeyView::from_waldur).collect(), total)
        }
        People::Narrowed { sp, projects } => {
            let members = members_of(&state, &sp, &projects).await?;
            let keys: Vec<SshKeyView> = view_all(&state, &sp, "keys", &query, KEY_FIELDS)
                .await?
                .iter()
                .filter(|k| {
                    k["user_uuid"].as_str().is_some_and(|u| {
                        members.contains(u) && user.as_deref().is_none_or(|x| x == u)
                    })
                })
                .map(SshKeyView::from_waldur)
                .collect();
            paging.slice(keys)?
        }
    };
    Ok(list_response(&state, &req, &paging, total, &page))
}

/// Projects with a live resource in the site's offerings.
#[utoipa::path(
    context_path = "/v1",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("page" = Option<u64>, Query, description = "From 1", minimum = 1, maximum = 4294967295.0),
        ("page_size" = Option<u64>, Query, description = "1 to 100, default 10", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, body = [ProjectView], headers(("X-Result-Count" = u64, description = "Total across pages"), ("Link" = String, description = "first/prev/next/last pages"))),
        PeopleReadErrors,
    )
)]
#[get("/projects")]
pub async fn list_projects(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req);
    let paging = params.paging()?;
    let (page, total) = match people(&state, &identity).await? {
        People::Provider { sp } => {
            let (items, total) =
                view_page(&state, &sp, "projects", &[], PROJECT_FIELDS, &paging).await?;
            (items.iter().map(ProjectView::from_waldur).collect(), total)
        }
        People::Narrowed { sp, projects } => {
            let found: Vec<ProjectView> = view_all(&state, &sp, "projects", &[], PROJECT_FIELDS)
                .await?
                .iter()
                .filter(|p| p["uuid"].as_str().is_some_and(|u| projects.contains(u)))
                .map(ProjectView::from_waldur)
                .collect();
            paging.slice(found)?
        }
    };
    Ok(list_response(&state, &req, &paging, total, &page))
}

/// Active project roles in the site's projects.
#[utoipa::path(
    context_path = "/v1",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("project_uuid" = Option<String>, Query, description = "Only this project", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        ("user_uuid" = Option<String>, Query, description = "Only this user", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        ("page" = Option<u64>, Query, description = "From 1", minimum = 1, maximum = 4294967295.0),
        ("page_size" = Option<u64>, Query, description = "1 to 100, default 10", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, body = [ProjectPermissionView], headers(("X-Result-Count" = u64, description = "Total across pages"), ("Link" = String, description = "first/prev/next/last pages"))),
        PeopleReadErrors,
    )
)]
#[get("/project-permissions")]
pub async fn list_project_permissions(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req);
    let paging = params.paging()?;
    let project = params.uuid("project_uuid")?.map(String::from);
    let user = params.uuid("user_uuid")?.map(String::from);
    // Waldur 8.0.5's role filters: `scope_uuid` (the project) and `user` (the user's uuid).
    let mut query = Vec::new();
    if let Some(p) = &project {
        query.push(("scope_uuid", p.clone()));
    }
    if let Some(u) = &user {
        query.push(("user", u.clone()));
    }
    let (page, total) = match people(&state, &identity).await? {
        People::Provider { sp } => {
            let (items, total) = view_page(
                &state,
                &sp,
                "project_permissions",
                &query,
                ROLE_FIELDS,
                &paging,
            )
            .await?;
            (
                items
                    .iter()
                    .map(ProjectPermissionView::from_waldur)
                    .collect(),
                total,
            )
        }
        People::Narrowed { sp, projects } => {
            let roles: Vec<ProjectPermissionView> = roles_in(&state, &sp, &projects, &query)
                .await?
                .iter()
                .filter(|r| project.as_deref().is_none_or(|p| r["project_uuid"] == p))
                .filter(|r| user.as_deref().is_none_or(|u| r["user_uuid"] == u))
                .map(ProjectPermissionView::from_waldur)
                .collect();
            paging.slice(roles)?
        }
    };
    Ok(list_response(&state, &req, &paging, total, &page))
}
