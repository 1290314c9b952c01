//! People: usernames (queued writes) and the service provider's views of users, SSH keys,
//! projects and project permissions, narrowed to the site.
//!
//! **Whose user is it?** A user is the site's when they hold an active role in a project that has
//! a live (not terminated) resource in one of the site's offerings, i.e. they are on the team of
//! one of its resources. The check is two calls: the user's project roles in the provider's view
//! (`…/project_permissions/?user_uuid=`) and a count of resources of those projects in the site's
//! offerings. For `POST /v1/offering-users` the resource must be in that very offering.
//!
//! **What the reads can and cannot filter.** Puhuri's provider views list everything of the
//! provider; the gateway narrows them: projects to those with a live resource in the site's
//! offerings; project permissions to those projects; users to people with a role in them; SSH
//! keys to those users' keys. To do that it reads the provider's lists in pages of 100 (at most
//! 50 pages each) and paginates the filtered result itself, so these reads cost more upstream
//! calls than the order and resource lists. A user who is also on another site's resources is
//! visible to both sites (the user is shared; their other projects are not listed).
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

use crate::api::body::JsonBody;
use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::jobs::JobView;
use super::reads::{
    LIVE_RESOURCE_STATES, MAX_UPSTREAM_PAGES, QueryParams, list_response, read_failed,
    service_provider_uuid, site_projects, uuid_in_path,
};
use super::responses::{ReadErrors, WriteErrors, WriteHeaders};
use super::submit::{lookup_failed, submit};
use super::views::{ProjectPermissionView, ProjectView, SshKeyView, UserView};
use crate::auth::SiteIdentity;
use crate::auth::scoped::{Authorized, Read, UsersWrite};
use crate::domain::operations::{OfferingUsername, Operation, UserUsername};
use crate::domain::{Username, WaldurUuid};
use crate::error::{ApiError, FieldError};

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
            &[("user_uuid", user.to_string())],
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
    #[schema(pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")]
    pub offering_uuid: String,
    /// A user on the team of a resource of that offering.
    #[schema(pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")]
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
            "this sets the username on every offering of the service provider, and {others} of              them are not this site's; set it per offering with POST /v1/offering-users"
        )))
    }
}

// --- reads -------------------------------------------------------------------------------------

/// Everything at a provider view path, read in pages of 100.
async fn provider_list(
    state: &AppState,
    identity: &SiteIdentity,
    view: &str,
    query: &[(&str, String)],
) -> Result<Vec<Value>, ApiError> {
    let sp = service_provider_uuid(state, identity, false).await?;
    state
        .directory
        .client()
        .get_all(
            &format!("marketplace-service-providers/{sp}/{view}/"),
            query,
            MAX_UPSTREAM_PAGES,
        )
        .await
        .map_err(read_failed)
}

/// Active roles in the site's projects.
async fn site_roles(
    state: &AppState,
    identity: &SiteIdentity,
    query: &[(&str, String)],
) -> Result<Vec<Value>, ApiError> {
    let projects = site_projects(state, identity).await?;
    let roles = provider_list(state, identity, "project_permissions", query).await?;
    Ok(roles
        .into_iter()
        .filter(|r| {
            r["project_uuid"]
                .as_str()
                .is_some_and(|p| projects.contains(p))
        })
        .collect())
}

/// The uuids of the people with a role in the site's projects.
async fn site_members(
    state: &AppState,
    identity: &SiteIdentity,
) -> Result<BTreeSet<String>, ApiError> {
    let roles = site_roles(state, identity, &[]).await?;
    Ok(roles
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
        ("username" = Option<String>, Query, description = "Exactly this Puhuri username", min_length = 1),
        ("page" = Option<u64>, Query, description = "From 1", minimum = 1, maximum = 4294967295.0),
        ("page_size" = Option<u64>, Query, description = "1 to 100, default 10", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, body = [UserView], headers(("X-Result-Count" = u64, description = "Total across pages"), ("Link" = String, description = "first/prev/next/last pages"))),
        ReadErrors,
    )
)]
#[get("/users")]
pub async fn list_users(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req, &["username"])?;
    let paging = params.paging()?;
    let members = site_members(&state, &identity).await?;
    let mut query = Vec::new();
    if let Some(u) = params.one("username") {
        query.push(("username", u.to_string()));
    }
    let users: Vec<UserView> = provider_list(&state, &identity, "users", &query)
        .await?
        .iter()
        .filter(|u| u["uuid"].as_str().is_some_and(|x| members.contains(x)))
        .filter(|u| params.one("username").is_none_or(|n| u["username"] == n))
        .map(UserView::from_waldur)
        .collect();
    let (page, total) = paging.slice(users)?;
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
        ReadErrors,
    )
)]
#[get("/ssh-keys")]
pub async fn list_ssh_keys(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req, &["user_uuid"])?;
    let paging = params.paging()?;
    let user = params.uuid("user_uuid")?.map(String::from);
    let members = site_members(&state, &identity).await?;
    let mut query = Vec::new();
    if let Some(u) = &user {
        query.push(("user_uuid", u.clone()));
    }
    let keys: Vec<SshKeyView> = provider_list(&state, &identity, "keys", &query)
        .await?
        .iter()
        .filter(|k| {
            k["user_uuid"]
                .as_str()
                .is_some_and(|u| members.contains(u) && user.as_deref().is_none_or(|x| x == u))
        })
        .map(SshKeyView::from_waldur)
        .collect();
    let (page, total) = paging.slice(keys)?;
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
        ReadErrors,
    )
)]
#[get("/projects")]
pub async fn list_projects(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req, &[])?;
    let paging = params.paging()?;
    let mine = site_projects(&state, &identity).await?;
    let projects: Vec<ProjectView> = provider_list(&state, &identity, "projects", &[])
        .await?
        .iter()
        .filter(|p| p["uuid"].as_str().is_some_and(|u| mine.contains(u)))
        .map(ProjectView::from_waldur)
        .collect();
    let (page, total) = paging.slice(projects)?;
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
        ReadErrors,
    )
)]
#[get("/project-permissions")]
pub async fn list_project_permissions(
    identity: Authorized<Read>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req, &["project_uuid", "user_uuid"])?;
    let paging = params.paging()?;
    let mut query = Vec::new();
    let project = params.uuid("project_uuid")?.map(String::from);
    let user = params.uuid("user_uuid")?.map(String::from);
    if let Some(p) = &project {
        query.push(("project_uuid", p.clone()));
    }
    if let Some(u) = &user {
        query.push(("user_uuid", u.clone()));
    }
    let roles: Vec<ProjectPermissionView> = site_roles(&state, &identity, &query)
        .await?
        .iter()
        .filter(|r| project.as_deref().is_none_or(|p| r["project_uuid"] == p))
        .filter(|r| user.as_deref().is_none_or(|u| r["user_uuid"] == u))
        .map(ProjectPermissionView::from_waldur)
        .collect();
    let (page, total) = paging.slice(roles)?;
    Ok(list_response(&state, &req, &paging, total, &page))
}
