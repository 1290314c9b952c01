//! Resources (allocations) of the site's offerings: backend id, state, report and limits (queued
//! writes on `resource:<uuid>`, in [`writes`]), and reads: list, one, its team, its usage for a
//! month, and the offering's components and plans (in [`reads`]).
//!
//! Every `{resource}` in a path is a uuid or `backend_id:<id>` (see [`crate::api::reads`]).

mod reads;
mod writes;

pub use reads::*;
pub use writes::*;

use super::AppState;
use super::reads::resource_ref;
use super::submit::resolve_resource;
use crate::auth::SiteIdentity;
use crate::error::ApiError;
use crate::upstream::ResourceInfo;

/// Resource states as Waldur names them.
pub const RESOURCE_STATES: [&str; 6] = [
    "Creating",
    "OK",
    "Erred",
    "Updating",
    "Terminating",
    "Terminated",
];

/// Resolves `{resource}` and checks it is the site's (403 otherwise, before anything is queued).
async fn site_resource(
    state: &AppState,
    identity: &SiteIdentity,
    segment: &str,
) -> Result<ResourceInfo, ApiError> {
    let reference = resource_ref(segment)?;
    resolve_resource(state, identity, &reference).await
}
