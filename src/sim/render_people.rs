//! JSON shapes of offering users, service providers, their users, projects, project
//! permissions and resource teams, as Waldur's serializers print them (see [`super::render`]).

use super::render::*;
use super::state::*;
use serde_json::{Value, json};

pub fn offering_user(w: &World, base: &str, ou: &OfferingUser) -> Value {
    let o = w.offering(&ou.offering);
    let u = w.user(&ou.user);
    let c = o.and_then(|o| w.customer(&o.customer));
    json!({
        "url": format!("{base}marketplace-offering-users/{}/", ou.uuid),
        "uuid": ou.uuid,
        "user": format!("{base}users/{}/", ou.user),
        "offering": format!("{base}marketplace-provider-offerings/{}/", ou.offering),
        "username": ou.username,
        "offering_uuid": ou.offering,
        "offering_name": o.map(|o| o.name.clone()).unwrap_or_default(),
        "user_uuid": ou.user,
        "user_username": u.map(|u| u.username.clone()).unwrap_or_default(),
        "user_full_name": u.map(|u| u.full_name()).unwrap_or_default(),
        "user_first_name": u.map(|u| u.first_name.clone()).unwrap_or_default(),
        "user_last_name": u.map(|u| u.last_name.clone()).unwrap_or_default(),
        "user_email": u.map(|u| u.email.clone()).unwrap_or_default(),
        "user_organization": u.map(|u| u.organization.clone()).unwrap_or_default(),
        "created": ts(ou.created),
        "modified": ts(ou.modified),
        "customer_uuid": c.map(|c| c.uuid.clone()).unwrap_or_default(),
        "customer_name": c.map(|c| c.name.clone()).unwrap_or_default(),
        "is_restricted": false,
        "state": ou.state,
        "service_provider_comment": "",
        "has_consent": true,
        "requires_reconsent": false,
        "has_compliance_checklist": false,
        "consent_data": null,
        "is_profile_complete": true,
        "missing_profile_attributes": [],
    })
}

pub fn service_provider(w: &World, base: &str, sp: &ServiceProvider) -> Value {
    let c = w.customer(&sp.customer);
    let offering_count = w
        .offerings
        .iter()
        .filter(|o| o.customer == sp.customer)
        .count();
    json!({
        "url": format!("{base}marketplace-service-providers/{}/", sp.uuid),
        "uuid": sp.uuid,
        "created": ts(sp.created),
        "description": sp.description,
        "enable_notifications": true,
        "customer": format!("{base}customers/{}/", sp.customer),
        "customer_name": c.map(|c| c.name.clone()).unwrap_or_default(),
        "customer_uuid": sp.customer,
        "customer_abbreviation": c.map(|c| c.abbreviation.clone()).unwrap_or_default(),
        "customer_slug": c.map(|c| c.slug.clone()).unwrap_or_default(),
        "customer_native_name": "",
        "customer_country": "",
        "image": null,
        "organization_groups": [],
        "offering_count": offering_count,
    })
}

pub fn sp_user(u: &User, projects_count: usize) -> Value {
    json!({
        "uuid": u.uuid,
        "username": u.username,
        "full_name": u.full_name(),
        "first_name": u.first_name,
        "last_name": u.last_name,
        "organization": u.organization,
        "email": u.email,
        "phone_number": "",
        "projects_count": projects_count,
        "registration_method": "default",
        "affiliations": [],
        "is_active": u.is_active,
        "job_title": "",
    })
}

pub fn project(w: &World, base: &str, p: &Project) -> Value {
    let c = w.customer(&p.customer);
    let resources_count = w
        .resources
        .iter()
        .filter(|r| r.project == p.uuid && r.state != "Terminated")
        .count();
    json!({
        "url": format!("{base}projects/{}/", p.uuid),
        "uuid": p.uuid,
        "name": p.name,
        "slug": p.slug,
        "customer": format!("{base}customers/{}/", p.customer),
        "customer_uuid": p.customer,
        "customer_name": c.map(|c| c.name.clone()).unwrap_or_default(),
        "customer_slug": c.map(|c| c.slug.clone()).unwrap_or_default(),
        "customer_native_name": "",
        "customer_abbreviation": c.map(|c| c.abbreviation.clone()).unwrap_or_default(),
        "description": p.description,
        "created": ts(p.created),
        "type": null,
        "type_name": null,
        "type_uuid": null,
        "backend_id": "",
        "start_date": null,
        "end_date": null,
        "oecd_fos_2007_code": null,
        "is_industry": false,
        "image": null,
        "resources_count": resources_count,
        "kind": "default",
        "is_removed": false,
        "marketplace_resource_count": {},
    })
}

pub fn project_permission(w: &World, base: &str, g: &RoleGrant) -> Value {
    let p = w.project(&g.project);
    let u = w.user(&g.user);
    let customer = p.map(|p| p.customer.clone()).unwrap_or_default();
    json!({
        "created": ts(g.created),
        "expiration_time": null,
        "created_by": null,
        "created_by_full_name": null,
        "created_by_username": null,
        "project": format!("{base}projects/{}/", g.project),
        "project_uuid": g.project,
        "project_name": p.map(|p| p.name.clone()).unwrap_or_default(),
        "project_created": p.map(|p| ts(p.created)).unwrap_or_default(),
        "customer_uuid": customer,
        "customer_name": w.customer(&customer).map(|c| c.name.clone()).unwrap_or_default(),
        "role": g.role,
        "role_name": g.role,
        "user": format!("{base}users/{}/", g.user),
        "user_full_name": u.map(|u| u.full_name()).unwrap_or_default(),
        "user_native_name": "",
        "user_username": u.map(|u| u.username.clone()).unwrap_or_default(),
        "user_uuid": g.user,
        "user_email": u.map(|u| u.email.clone()).unwrap_or_default(),
    })
}

/// One member of a resource's team (`ProjectUser`).
pub fn team_member(w: &World, base: &str, r: &Resource, g: &RoleGrant) -> Value {
    let u = w.user(&g.user);
    let ou = w.offering_user_for(&r.offering, &g.user);
    json!({
        "url": format!("{base}users/{}/", g.user),
        "uuid": g.user,
        "username": u.map(|u| u.username.clone()).unwrap_or_default(),
        "full_name": u.map(|u| u.full_name()).unwrap_or_default(),
        "email": u.map(|u| u.email.clone()).unwrap_or_default(),
        "role": g.role,
        "expiration_time": null,
        "offering_user_username": ou.and_then(|ou| ou.username.clone()),
        "offering_user_state": ou.map(|ou| ou.state.clone()),
    })
}
