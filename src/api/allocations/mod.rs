//! An allocator's site: allocations (marketplace resources it orders) in the offerings it may
//! order from, for the customers and projects it is bound to (see `config::sites`).
//!
//! Every call to Puhuri made for an allocator's site — the checks here and the deliveries of its
//! jobs — carries its own identity's token, never the service provider's. Before anything is
//! queued, the object is checked against the site's binding: a project of one of its customers,
//! or one of its projects, and (for a new allocation) one of its offerings. Anything else, and
//! anything Puhuri does not show the allocator, is the same 403, which says nothing of whether
//! the object exists.

pub mod reads;
pub mod writes;

use serde::de::DeserializeOwned;

use super::AppState;
use super::submit::lookup_failed;
use crate::auth::SiteIdentity;
use crate::domain::WaldurUuid;
use crate::error::ApiError;
use crate::upstream::{Forwarded, Order, Project, PublicOffering, Resource, WaldurClient};

/// The same answer for every object outside the binding, whether it exists or not.
pub fn not_bound(what: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "the {what} is not one this site allocates for, or does not exist"
    ))
}

/// The client of the site's own identity.
pub fn client<'s>(
    state: &'s AppState,
    identity: &SiteIdentity,
) -> Result<&'s WaldurClient, ApiError> {
    state
        .identities
        .get(&identity.site.identity)
        .ok_or_else(|| ApiError::internal("an allocator site's identity has no client"))
}

/// Whether a project of `customer` with uuid `project` is in the site's binding.
pub fn bound(identity: &SiteIdentity, project: &str, customer: &str) -> bool {
    identity.site.projects.contains(project) || identity.site.customers.contains(customer)
}

/// Reads `path` with the site's identity as `T`; a 404 (not visible to the allocator) is
/// [`not_bound`].
async fn read_bound<T: DeserializeOwned>(
    state: &AppState,
    identity: &SiteIdentity,
    path: &str,
    what: &str,
) -> Result<T, ApiError> {
    match client(state, identity)?.get(path, &[]).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_not_found() => Err(not_bound(what)),
        Err(e) => Err(lookup_failed(e)),
    }
}

/// The project, if the site allocates for it.
pub async fn bound_project(
    state: &AppState,
    identity: &SiteIdentity,
    project: &WaldurUuid,
) -> Result<Project, ApiError> {
    let p: Project =
        read_bound(state, identity, &format!("projects/{project}/"), "project").await?;
    if bound(
        identity,
        project.as_str(),
        p.customer_uuid.as_deref().unwrap_or(""),
    ) {
        Ok(p)
    } else {
        Err(not_bound("project"))
    }
}

/// The resource (consumer view), if it is in a project the site allocates for.
pub async fn bound_resource(
    state: &AppState,
    identity: &SiteIdentity,
    resource: &WaldurUuid,
) -> Result<Resource, ApiError> {
    let r: Resource = read_bound(
        state,
        identity,
        &format!("marketplace-resources/{resource}/"),
        "resource",
    )
    .await?;
    if bound(
        identity,
        r.project_uuid.as_deref().unwrap_or(""),
        r.customer_uuid.as_deref().unwrap_or(""),
    ) {
        Ok(r)
    } else {
        Err(not_bound("resource"))
    }
}

/// The order, if it is in a project the site allocates for.
pub async fn bound_order(
    state: &AppState,
    identity: &SiteIdentity,
    order: &WaldurUuid,
) -> Result<Order, ApiError> {
    let o: Order = read_bound(
        state,
        identity,
        &format!("marketplace-orders/{order}/"),
        "order",
    )
    .await?;
    if bound(
        identity,
        o.project_uuid.as_deref().unwrap_or(""),
        o.customer_uuid.as_deref().unwrap_or(""),
    ) {
        Ok(o)
    } else {
        Err(not_bound("order"))
    }
}

/// The public offering (components, plans, options), if the site may order from it: as Waldur
/// sent it, for the allocator's offering read, and typed, for the checks of its orders.
pub async fn bound_offering(
    state: &AppState,
    identity: &SiteIdentity,
    offering: &WaldurUuid,
) -> Result<Forwarded<PublicOffering>, ApiError> {
    if !identity.site.offerings.contains(offering.as_str()) {
        return Err(not_bound("offering"));
    }
    read_bound(
        state,
        identity,
        &format!("marketplace-public-offerings/{offering}/"),
        "offering",
    )
    .await
}
