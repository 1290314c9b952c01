//! The people on the teams of a site's resources: users, their SSH keys, the projects and the
//! project roles, read from Puhuri and narrowed to the site.
//!
//! **Whose is it?** A project is the site's when it has a live (not terminated) resource in one of
//! the site's offerings; a user is the site's when they hold an active role in such a project. A
//! user who is also on another site's resources is visible to both sites (the user is shared;
//! their other projects are not listed).
//!
//! **What a page costs** (upstream calls; issue "Run it like a production service": a page's cost
//! follows the page, not the provider's size):
//! - a site bound to every offering of its provider (checked once per 10 minutes, cached) reads
//!   Puhuri's provider views (`marketplace-service-providers/{uuid}/{projects,users,keys,
//!   project_permissions}/`), which list exactly the site's people: a page of the gateway's list
//!   is the same page of Puhuri's, one call, with Waldur 8.0.5's filters (`username`; keys'
//!   `user_uuid`; roles' `scope_uuid` and `user`) and `field=` for only what the gateway shows;
//! - a site bound to some of its provider's offerings:
//!   - `/v1/projects` and `/v1/users` read the offering's own views (Waldur 8.0.5's
//!     `marketplace-provider-offerings/{uuid}/list_customer_projects/` and
//!     `list_customer_users/`: projects with a non-terminated resource of the offering, and the
//!     users with a role in them): bound to one offering, a page is one upstream page; bound to
//!     several, each offering's view is scanned once and merged (cached for a minute);
//!   - a filtered read costs a few calls whatever the provider's size: `/v1/users?username=` is
//!     the provider view's `username` filter and a membership check (3 calls),
//!     `/v1/ssh-keys?user_uuid=` a membership check and a page of the user's keys (3),
//!     `/v1/project-permissions?project_uuid=` a check of the project and a page of its roles
//!     (2), `?user_uuid=` alone the user's roles and a check of their projects (2);
//!   - unfiltered `/v1/ssh-keys` and `/v1/project-permissions` have no per-offering view in
//!     Waldur 8.0.5, so the site's members (or projects) and the provider view are scanned in
//!     pages of 300 and narrowed. The scans are fresh for a minute, served while one new scan
//!     runs until `reads.serve_stale_for` (stale-while-revalidate), and made once at start
//!     (`reads.warm_at_start`, [`warm`]): a read waits for a scan only when nothing has read the
//!     list for longer than `serve_stale_for` ([`crate::upstream::scans`]). A scan longer than
//!     100 pages (30,000 objects) is a 422 `list_too_large`, never a 503: a retry would meet the
//!     same bound.
//!
//! Waldur lets only an owner of the provider's organisation read the per-offering views
//! (`is_owner`). Where Puhuri answers 403 there (the token's user has a narrower role), the
//! gateway reads as if the views did not exist: a scan of the site's resources for its projects,
//! and of the provider view, narrowed.

mod sources;

use std::collections::BTreeSet;

use actix_web::{HttpRequest, HttpResponse, get, web};

use super::AppState;
use super::reads::{PageParams, QueryParams, list_response, read_failed};
use super::responses::PeopleReadErrors;
use super::views::{ProjectPermissionView, ProjectView, SshKeyView, UserView};
use crate::auth::scoped::{Authorized, Read};
use crate::error::ApiError;
use crate::upstream::{Project, ProjectRole, SshKey, User};
pub(crate) use sources::on_team_of;
pub use sources::warm;
use sources::*;

/// People on the teams of the site's resources.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(
        ("username" = Option<String>, Query, description = "Exactly this Puhuri username", min_length = 1, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"),
        PageParams,
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
    let username = params.one("username");
    let mut query = Vec::new();
    if let Some(u) = username {
        query.push(("username", u.to_string()));
    }
    let (items, total) = match people(&state, &identity).await? {
        People::Provider { sp } => {
            view_page::<User>(&state, &sp, "users", &query, USER_FIELDS, &paging).await?
        }
        People::Narrowed { sp, offerings } if username.is_some() => {
            let mut found = Vec::new();
            for user in view_all::<User>(&state, &sp, "users", &query, USER_FIELDS)
                .await?
                .iter()
            {
                if Some(user.username.as_str()) == username
                    && on_team_of(&state, &sp, &user.uuid, &offerings)
                        .await
                        .map_err(read_failed)?
                {
                    found.push(user.clone());
                }
            }
            paging.slice(found)?
        }
        People::Narrowed { sp, offerings } => {
            site_list_page(&state, &identity, &sp, &offerings, SiteList::Users, &paging).await?
        }
    };
    let page: Vec<UserView> = items.iter().map(UserView::from_waldur).collect();
    Ok(list_response(&state, &req, &paging, total, &page))
}

/// SSH keys of the people on the teams of the site's resources.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(
        ("user_uuid" = Option<String>, Query, description = "Only this user's keys", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        PageParams,
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
    let (items, total) = match people(&state, &identity).await? {
        People::Provider { sp } => {
            view_page::<SshKey>(&state, &sp, "keys", &query, KEY_FIELDS, &paging).await?
        }
        People::Narrowed { sp, offerings } => match &user {
            Some(u) => {
                if on_team_of(&state, &sp, u, &offerings)
                    .await
                    .map_err(read_failed)?
                {
                    view_page(&state, &sp, "keys", &query, KEY_FIELDS, &paging).await?
                } else {
                    paging.slice(Vec::new())?
                }
            }
            None => paging.slice(site_keys(&state, &identity, &sp, &offerings).await?)?,
        },
    };
    let page: Vec<SshKeyView> = items.iter().map(SshKeyView::from_waldur).collect();
    Ok(list_response(&state, &req, &paging, total, &page))
}

/// Projects with a live resource in the site's offerings.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(
        PageParams,
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
    let (items, total) = match people(&state, &identity).await? {
        People::Provider { sp } => {
            view_page::<Project>(&state, &sp, "projects", &[], PROJECT_FIELDS, &paging).await?
        }
        People::Narrowed { sp, offerings } => {
            site_list_page(
                &state,
                &identity,
                &sp,
                &offerings,
                SiteList::Projects,
                &paging,
            )
            .await?
        }
    };
    let page: Vec<ProjectView> = items.iter().map(ProjectView::from_waldur).collect();
    Ok(list_response(&state, &req, &paging, total, &page))
}

/// Active project roles in the site's projects.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(
        ("project_uuid" = Option<String>, Query, description = "Only this project", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        ("user_uuid" = Option<String>, Query, description = "Only this user", pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"),
        PageParams,
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
    let (items, total) = match people(&state, &identity).await? {
        People::Provider { sp } => {
            view_page::<ProjectRole>(
                &state,
                &sp,
                "project_permissions",
                &query,
                ROLE_FIELDS,
                &paging,
            )
            .await?
        }
        People::Narrowed { sp, offerings } => match (&project, &user) {
            (Some(p), _) => {
                let one = BTreeSet::from([p.clone()]);
                if projects_with_live_resources(&state, &one, &offerings)
                    .await
                    .map_err(read_failed)?
                    .is_empty()
                {
                    paging.slice(Vec::new())?
                } else {
                    view_page(
                        &state,
                        &sp,
                        "project_permissions",
                        &query,
                        ROLE_FIELDS,
                        &paging,
                    )
                    .await?
                }
            }
            (None, Some(u)) => {
                let roles = roles_of_user(&state, &sp, u).await.map_err(read_failed)?;
                let projects: BTreeSet<String> =
                    roles.iter().map(|r| r.project_uuid.clone()).collect();
                let mine = projects_with_live_resources(&state, &projects, &offerings)
                    .await
                    .map_err(read_failed)?;
                let roles = roles
                    .into_iter()
                    .filter(|r| mine.contains(&r.project_uuid))
                    .collect();
                paging.slice(roles)?
            }
            (None, None) => paging.slice(site_roles(&state, &identity, &sp, &offerings).await?)?,
        },
    };
    let page: Vec<ProjectPermissionView> = items
        .iter()
        .map(ProjectPermissionView::from_waldur)
        .collect();
    Ok(list_response(&state, &req, &paging, total, &page))
}
