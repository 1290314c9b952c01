//! People of one offering: `marketplace-provider-offerings/{uuid}/list_customer_projects/` and
//! `…/list_customer_users/`, as Waldur 8.0.5's `ProviderOfferingViewSet` answers them:
//! - the projects with a resource of the offering that is not `Terminated`;
//! - the users holding a role in those projects;
//! - no filters (`filters=False`), only `field=`, `page` and `page_size`;
//! - permission `is_owner`: the token's user must own the offering's organisation. The simulator
//!   counts the provider's token user as an owner except on `read_only_offerings`
//!   (`POST /__sim/settings`), where that user may only look: 403 there, as Waldur answers a
//!   user without the owner role;
//! - an offering the caller does not provide is a 404 (the provider view's queryset holds only
//!   the caller's offerings).
//!
//! Order: the projects in the order their first live resource of the offering appears, the
//! users in the order of their first role; Waldur orders by the models' defaults, which the
//! simulator does not model.

use std::collections::HashSet;

use actix_web::http::Method;

use super::state::*;
use super::{Reply, Req, Res};
use super::{render, render_people};

/// `marketplace-provider-offerings/{id}/{action}/` for the two people views; any other action
/// is a 404.
pub fn action(w: &World, r: &Req, id: &str, action: &str) -> Res {
    if !matches!(action, "list_customer_projects" | "list_customer_users") {
        return Err(Reply::not_found());
    }
    r.allow(&[Method::GET])?;
    let offering = w
        .offering(id)
        .filter(|o| o.customer == r.caller.customer)
        .ok_or_else(Reply::not_found)?;
    if !w.may_act_as_provider(&r.caller, &offering.uuid) {
        return Err(Reply::forbidden());
    }
    let projects = offering_projects(w, &offering.uuid);
    if action == "list_customer_projects" {
        let list: Vec<&Project> = projects.iter().filter_map(|p| w.project(p)).collect();
        return r.list_with(list, |p| render_people::project(w, &r.base, p));
    }
    let in_projects: HashSet<&str> = projects.iter().map(String::as_str).collect();
    let list: Vec<&User> = w
        .sp_users(&in_projects)
        .iter()
        .filter_map(|u| w.user(u))
        .collect();
    r.list_with(list, |u| render::user(w, &r.base, u))
}

/// Projects with a resource of `offering` that is not `Terminated`, each once.
fn offering_projects(w: &World, offering: &str) -> Vec<String> {
    let mut seen: HashSet<&str> = HashSet::new();
    w.resources
        .iter()
        .filter(|r| r.offering == offering && r.state != "Terminated")
        .filter(|r| seen.insert(r.project.as_str()))
        .map(|r| r.project.clone())
        .collect()
}
