//! Where the people come from: Puhuri's provider views, an offering's own views, and the
//! checks of whether a user or project is the site's (see [`super`] for what each costs).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::api::AppState;
use crate::api::reads::{
    LIVE_RESOURCE_STATES, MAX_UPSTREAM_PAGES, Paging, list_too_large, scan_failed,
    service_provider_uuid, site_projects, upstream_page_failed,
};
use crate::auth::SiteIdentity;
use crate::error::ApiError;
use crate::upstream::directory::ScanError;
use crate::upstream::{
    Project, ProjectRole, ResourceProjection, SshKey, UpstreamError, User, Uuid, WaldurClient,
};

/// The fields each list takes from Puhuri (`field=`, Waldur 8.0.5's
/// `MarketplaceServiceProviderUserFieldEnum` and `UserFieldEnum`, `SshKeyFieldEnum`,
/// `ProjectFieldEnum` and `ProjectPermissionLogFieldEnum`): what the gateway's shapes in
/// [`super::views`] read.
pub(super) const USER_FIELDS: &[&str] = &[
    "uuid",
    "username",
    "full_name",
    "first_name",
    "last_name",
    "email",
    "organization",
    "is_active",
];
pub(super) const KEY_FIELDS: &[&str] = &[
    "uuid",
    "user_uuid",
    "name",
    "public_key",
    "type",
    "is_shared",
];
pub(super) const PROJECT_FIELDS: &[&str] = &[
    "uuid",
    "name",
    "description",
    "customer_uuid",
    "customer_name",
    "start_date",
    "end_date",
    "created",
];
pub(super) const ROLE_FIELDS: &[&str] = &[
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

/// An item of a people list, as the upstream views read it ([`User`], [`Project`],
/// [`crate::upstream::SshKey`], [`ProjectRole`], [`Uuid`]), kept in the directory's scans.
pub(super) trait Item: DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Item for T {}

/// An item the site's lists narrow and merge by its uuid.
pub(super) trait Keyed: Item {
    fn uuid(&self) -> &str;
}

impl Keyed for User {
    fn uuid(&self) -> &str {
        &self.uuid
    }
}

impl Keyed for Project {
    fn uuid(&self) -> &str {
        &self.uuid
    }
}

impl Keyed for Uuid {
    fn uuid(&self) -> &str {
        &self.uuid
    }
}

/// How a list of people is narrowed to the site.
pub(super) enum People {
    /// The site is bound to every offering of its provider: Puhuri's provider views are exactly
    /// the site's, so a page is one upstream page (Waldur paginates and counts).
    Provider { sp: String },
    /// The site has some of the provider's offerings (as 32-digit uuids).
    Narrowed { sp: String, offerings: Vec<String> },
}

pub(super) async fn people(state: &AppState, identity: &SiteIdentity) -> Result<People, ApiError> {
    let sp = service_provider_uuid(state, identity, false).await?;
    let offerings: Vec<String> = identity.site.offerings.iter().cloned().collect();
    let covers = state
        .directory
        .offerings_cover_provider(&offerings)
        .await
        .map_err(scan_failed)?;
    Ok(if covers {
        People::Provider { sp }
    } else {
        People::Narrowed { sp, offerings }
    })
}

fn with_fields<'a>(query: &[(&'a str, String)], fields: &[&str]) -> Vec<(&'a str, String)> {
    let mut q = query.to_vec();
    q.extend(fields.iter().map(|f| ("field", f.to_string())));
    q
}

/// One page of the list at `path`, as Waldur paginates it: one upstream call.
async fn upstream_page<T: Item>(
    client: &WaldurClient,
    path: &str,
    query: &[(&str, String)],
    fields: &[&str],
    paging: &Paging,
) -> Result<(Vec<T>, u64), UpstreamError> {
    let mut q = with_fields(query, fields);
    q.extend(paging.upstream_query());
    let page = client.get_page(path, &q).await?;
    let total = page.total.unwrap_or(page.items.len() as u64);
    Ok((page.items, total))
}

/// A page past the last is a 404, as for every list of the gateway.
fn checked_page<T>(page: (Vec<T>, u64), paging: &Paging) -> Result<(Vec<T>, u64), ApiError> {
    if paging.page > 1 && page.0.is_empty() {
        return Err(ApiError::NotFound(format!(
            "page {} is after the last page",
            paging.page
        )));
    }
    Ok(page)
}

/// One page of a provider view (`users`, `keys`, `projects`, `project_permissions`).
pub(super) async fn view_page<T: Item>(
    state: &AppState,
    sp: &str,
    view: &str,
    query: &[(&str, String)],
    fields: &[&str],
    paging: &Paging,
) -> Result<(Vec<T>, u64), ApiError> {
    let path = format!("marketplace-service-providers/{sp}/{view}/");
    let page = upstream_page(state.directory.client(), &path, query, fields, paging)
        .await
        .map_err(|e| upstream_page_failed(e, paging))?;
    checked_page(page, paging)
}

/// Everything at a provider view, scanned within the bound (else 422 `list_too_large`) and
/// kept for a minute ([`crate::upstream::directory::Directory::scan`]).
pub(super) async fn view_all<T: Item>(
    state: &AppState,
    sp: &str,
    view: &str,
    query: &[(&str, String)],
    fields: &[&str],
) -> Result<Arc<Vec<T>>, ApiError> {
    scan(
        state,
        &format!("marketplace-service-providers/{sp}/{view}/"),
        &with_fields(query, fields),
    )
    .await
}

async fn scan<T: Item>(
    state: &AppState,
    path: &str,
    query: &[(&str, String)],
) -> Result<Arc<Vec<T>>, ApiError> {
    let what = path.rsplit('/').nth(1).unwrap_or(path);
    state
        .directory
        .scan(path, query)
        .await
        .map_err(|e| match e {
            ScanError::TooLarge(_) => list_too_large(&format!("{what}/")),
            other => scan_failed(other),
        })
}

/// One offering's view of its people (`list_customer_projects` or `list_customer_users`).
fn offering_view(offering: &str, view: &str) -> String {
    format!("marketplace-provider-offerings/{offering}/{view}/")
}

/// Whether Puhuri refused a per-offering view because the token's user does not own the
/// provider's organisation (Waldur's `is_owner`): the caller then reads another way.
fn not_owner(e: &UpstreamError) -> bool {
    matches!(e, UpstreamError::Forbidden { .. })
}

/// The site's page of an offering view: one upstream page when the site has one offering, else
/// every offering's view scanned and merged (each item once, by `uuid`, in the order the
/// offerings and their views give). `None`: Puhuri answered 403 (see [`not_owner`]).
async fn offering_views_page<T: Keyed>(
    state: &AppState,
    offerings: &[String],
    view: &str,
    fields: &[&str],
    paging: &Paging,
) -> Result<Option<(Vec<T>, u64)>, ApiError> {
    if let [offering] = offerings {
        return match upstream_page(
            state.directory.owner_views_client(),
            &offering_view(offering, view),
            &[],
            fields,
            paging,
        )
        .await
        {
            Ok(page) => checked_page(page, paging).map(Some),
            Err(e) if not_owner(&e) => Ok(None),
            Err(e) => Err(upstream_page_failed(e, paging)),
        };
    }
    let Some(all) = offering_views_all(state, offerings, view, fields).await? else {
        return Ok(None);
    };
    paging.slice(all).map(Some)
}

/// The two lists Waldur has per-offering views for.
#[derive(Clone, Copy)]
pub(super) enum SiteList {
    Projects,
    Users,
}

/// A page of the site's projects or users: a page of its offerings' views
/// ([`offering_views_page`]), or where Puhuri refuses those, the provider view narrowed to the
/// site's projects (from a scan of its resources) or to their members.
/// `T` is the list's item: [`Project`] for [`SiteList::Projects`], [`User`] for
/// [`SiteList::Users`].
pub(super) async fn site_list_page<T: Keyed>(
    state: &AppState,
    identity: &SiteIdentity,
    sp: &str,
    offerings: &[String],
    list: SiteList,
    paging: &Paging,
) -> Result<(Vec<T>, u64), ApiError> {
    let (offering_view, provider_view, fields) = match list {
        SiteList::Projects => ("list_customer_projects", "projects", PROJECT_FIELDS),
        SiteList::Users => ("list_customer_users", "users", USER_FIELDS),
    };
    if let Some(page) = offering_views_page(state, offerings, offering_view, fields, paging).await?
    {
        return Ok(page);
    }
    let wanted = match list {
        SiteList::Projects => site_projects(state, identity).await?,
        SiteList::Users => Arc::new(members_of(state, identity, sp, offerings).await?),
    };
    let items = view_all::<T>(state, sp, provider_view, &[], fields)
        .await?
        .iter()
        .filter(|x| wanted.contains(x.uuid()))
        .cloned()
        .collect();
    paging.slice(items)
}

/// Every item of the offerings' views, each once (by `uuid`). `None`: Puhuri answered 403.
async fn offering_views_all<T: Keyed>(
    state: &AppState,
    offerings: &[String],
    view: &str,
    fields: &[&str],
) -> Result<Option<Vec<T>>, ApiError> {
    let mut seen = BTreeSet::new();
    let mut all = Vec::new();
    for offering in offerings {
        let path = offering_view(offering, view);
        let items = match state
            .directory
            .scan_owner_view::<T>(&path, &with_fields(&[], fields))
            .await
        {
            Ok(items) => items,
            Err(ScanError::Upstream(e)) if not_owner(&e) => return Ok(None),
            Err(ScanError::TooLarge(_)) => return Err(list_too_large(&format!("{view}/"))),
            Err(other) => return Err(scan_failed(other)),
        };
        for item in items.iter() {
            if seen.insert(item.uuid().to_string()) {
                all.push(item.clone());
            }
        }
    }
    Ok(Some(all))
}

/// Of `projects`, those with a live resource in `offerings`: one call to the provider's
/// resources with Waldur's repeatable `project_uuid`, `offering_uuid` and `state` filters,
/// checked again here rather than trusting the filters.
pub(super) async fn projects_with_live_resources(
    state: &AppState,
    projects: &BTreeSet<String>,
    offerings: &[String],
) -> Result<BTreeSet<String>, UpstreamError> {
    if projects.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut query: Vec<(&str, String)> = projects
        .iter()
        .map(|p| ("project_uuid", p.clone()))
        .collect();
    query.extend(offerings.iter().map(|o| ("offering_uuid", o.clone())));
    query.extend(
        LIVE_RESOURCE_STATES
            .iter()
            .map(|s| ("state", s.to_string())),
    );
    query.push(("field", "offering_uuid".into()));
    query.push(("field", "project_uuid".into()));
    let resources: Vec<ResourceProjection> = state
        .directory
        .client()
        .get_all(
            "marketplace-provider-resources/",
            &query,
            MAX_UPSTREAM_PAGES,
        )
        .await?;
    Ok(resources
        .into_iter()
        .filter(|r| {
            r.offering_uuid
                .as_ref()
                .is_some_and(|o| offerings.contains(o))
        })
        .filter_map(|r| r.project_uuid)
        .filter(|p| projects.contains(p))
        .collect())
}

/// The active roles of one user in the provider's projects (the role view's `user` filter).
pub(super) async fn roles_of_user(
    state: &AppState,
    sp: &str,
    user: &str,
) -> Result<Vec<ProjectRole>, UpstreamError> {
    let roles: Vec<ProjectRole> = state
        .directory
        .client()
        .get_all(
            &format!("marketplace-service-providers/{sp}/project_permissions/"),
            // Waldur 8.0.5's role filter for the user's uuid is `user`.
            &with_fields(&[("user", user.to_string())], ROLE_FIELDS),
            MAX_UPSTREAM_PAGES,
        )
        .await?;
    Ok(roles.into_iter().filter(|r| r.user_uuid == user).collect())
}

/// Whether `user` holds an active role in a project with a live resource in `offerings`: two
/// calls (the user's roles, then their projects' resources in the offerings).
pub(crate) async fn on_team_of(
    state: &AppState,
    sp: &str,
    user: &str,
    offerings: &[String],
) -> Result<bool, UpstreamError> {
    let projects: BTreeSet<String> = roles_of_user(state, sp, user)
        .await?
        .into_iter()
        .map(|r| r.project_uuid)
        .collect();
    Ok(!projects_with_live_resources(state, &projects, offerings)
        .await?
        .is_empty())
}

/// Active roles in `projects` (Waldur's role filters `scope_uuid` and `user` in `query`).
pub(super) async fn roles_in(
    state: &AppState,
    sp: &str,
    projects: &BTreeSet<String>,
    query: &[(&str, String)],
) -> Result<Vec<ProjectRole>, ApiError> {
    Ok(
        view_all::<ProjectRole>(state, sp, "project_permissions", query, ROLE_FIELDS)
            .await?
            .iter()
            .filter(|r| projects.contains(&r.project_uuid))
            .cloned()
            .collect(),
    )
}

/// The uuids of the site's projects: the offerings' project views (a project is one object
/// there, where the site's resources are many), or where Puhuri refuses those, a scan of the
/// site's resources ([`site_projects`]).
pub(super) async fn project_set(
    state: &AppState,
    identity: &SiteIdentity,
    offerings: &[String],
) -> Result<Arc<BTreeSet<String>>, ApiError> {
    match offering_views_all::<Uuid>(state, offerings, "list_customer_projects", &["uuid"]).await? {
        Some(projects) => Ok(Arc::new(projects.into_iter().map(|p| p.uuid).collect())),
        None => site_projects(state, identity).await,
    }
}

/// The uuids of the people with a role in the site's projects: the offerings' user views, or
/// where Puhuri refuses those, the roles in the site's projects.
pub(super) async fn members_of(
    state: &AppState,
    identity: &SiteIdentity,
    sp: &str,
    offerings: &[String],
) -> Result<BTreeSet<String>, ApiError> {
    if let Some(users) =
        offering_views_all::<Uuid>(state, offerings, "list_customer_users", &["uuid"]).await?
    {
        return Ok(users.into_iter().map(|u| u.uuid).collect());
    }
    let projects = site_projects(state, identity).await?;
    Ok((roles_in(state, sp, &projects, &[]).await?.into_iter())
        .map(|r| r.user_uuid)
        .collect())
}

/// Every SSH key of the site's members, for a site bound to some of its provider's offerings:
/// the provider's key view narrowed to [`members_of`] (both scans, kept fresh while read).
pub(super) async fn site_keys(
    state: &AppState,
    identity: &SiteIdentity,
    sp: &str,
    offerings: &[String],
) -> Result<Vec<SshKey>, ApiError> {
    let members = members_of(state, identity, sp, offerings).await?;
    Ok(view_all::<SshKey>(state, sp, "keys", &[], KEY_FIELDS)
        .await?
        .iter()
        .filter(|k| members.contains(&k.user_uuid))
        .cloned()
        .collect())
}

/// Every active role in the site's projects, for a site bound to some of its provider's
/// offerings: the provider's role view narrowed to [`project_set`].
pub(super) async fn site_roles(
    state: &AppState,
    identity: &SiteIdentity,
    sp: &str,
    offerings: &[String],
) -> Result<Vec<ProjectRole>, ApiError> {
    let projects = project_set(state, identity, offerings).await?;
    roles_in(state, sp, &projects, &[]).await
}

/// Reads once the lists a site bound to some of its provider's offerings gets from whole
/// Puhuri lists (its SSH keys and roles), so that its first read does not wait for the scans
/// (`reads.warm_at_start`). `Ok(false)`: the site needs none (bound to every offering, or an
/// allocator's site).
pub async fn warm(state: &AppState, identity: &SiteIdentity) -> Result<bool, ApiError> {
    // An allocator's site reads no people lists (its offerings are the ones it allocates from).
    if identity.site.offerings.is_empty() || identity.site.identity != crate::config::SP_IDENTITY {
        return Ok(false);
    }
    let People::Narrowed { sp, offerings } = people(state, identity).await? else {
        return Ok(false);
    };
    site_keys(state, identity, &sp, &offerings).await?;
    site_roles(state, identity, &sp, &offerings).await?;
    Ok(true)
}
