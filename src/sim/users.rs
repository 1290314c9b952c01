//! People: users, SSH keys, offering users (the per-offering accounts an SP creates and names) and
//! the service-provider views of users, keys, projects and project permissions.

use super::render;
use super::state::*;
use super::{Filters, Reply, Req, Res};
use actix_web::http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};

pub fn list_users(w: &World, r: &Req) -> Res {
    r.allow(&[Method::GET])?;
    let username = r.q("username");
    let email = r.q("email");
    let full_name = r.q("full_name").map(str::to_lowercase);
    let mut f = Filters::new(r);
    let uuid = f.uuid("uuid");
    let project = f.uuid("project_uuid");
    let customer = f.uuid("customer_uuid");
    f.check()?;
    let (uuid, project, customer) = (uuid.as_deref(), project.as_deref(), customer.as_deref());
    let query = r.q("query").map(str::to_lowercase);
    let is_active = r
        .q("is_active")
        .map(|v| v == "true" || v == "True" || v == "1");
    let users: Vec<Value> = w
        .users
        .iter()
        .filter(|u| u.is_active)
        .filter(|u| username.is_none_or(|x| u.username == x))
        .filter(|u| email.is_none_or(|x| u.email.eq_ignore_ascii_case(x)))
        .filter(|u| uuid.is_none_or(|x| u.uuid == x))
        .filter(|u| {
            full_name
                .as_deref()
                .is_none_or(|x| u.full_name().to_lowercase().contains(x))
        })
        .filter(|u| {
            query.as_deref().is_none_or(|q| {
                u.username.contains(q)
                    || u.email.to_lowercase().contains(q)
                    || u.full_name().to_lowercase().contains(q)
            })
        })
        .filter(|u| is_active.is_none_or(|a| u.is_active == a))
        .filter(|u| {
            project.is_none_or(|p| w.roles.iter().any(|g| g.user == u.uuid && g.project == p))
        })
        .filter(|u| {
            customer.is_none_or(|c| {
                w.roles.iter().any(|g| {
                    g.user == u.uuid && w.project(&g.project).is_some_and(|p| p.customer == c)
                })
            })
        })
        .map(|u| render::user(w, &r.base, u))
        .collect();
    r.list(users)
}

/// Non-staff callers see only their own keys and shared keys.
pub fn list_keys(w: &World, r: &Req) -> Res {
    r.allow(&[Method::GET])?;
    let mut f = Filters::new(r);
    let user = f.uuid("user_uuid");
    f.check()?;
    let user = user.as_deref();
    let name = r.q("name");
    let keys: Vec<Value> = w
        .keys
        .iter()
        .filter(|k| k.user == r.caller.user || k.is_shared)
        .filter(|k| user.is_none_or(|u| k.user == u))
        .filter(|k| name.is_none_or(|n| k.name == n))
        .map(|k| render::key(&r.base, k))
        .collect();
    r.list(keys)
}

/// Waldur's offering-user queryset: offering users of offerings whose `plugin_options` have
/// `service_provider_can_create_offering_user` set, seen by the offering's provider or by the
/// user itself. The others exist, but neither list nor retrieve shows them.
fn listed_offering_user(w: &World, r: &Req, ou: &OfferingUser) -> bool {
    w.offering(&ou.offering)
        .is_some_and(|o| o.sp_can_create_offering_user)
        && (w.is_provider_of_offering(&r.caller, &ou.offering) || ou.user == r.caller.user)
}

fn visible_offering_user<'w>(w: &'w World, r: &Req, id: &str) -> Result<&'w OfferingUser, Reply> {
    w.offering_users
        .iter()
        .find(|ou| ou.uuid == id)
        .filter(|ou| listed_offering_user(w, r, ou))
        .ok_or_else(Reply::not_found)
}

fn uuid_of(v: &Value) -> Option<String> {
    v.as_str().map(|s| {
        s.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
            .replace('-', "")
            .to_lowercase()
    })
}

fn username_field(body: &Map<String, Value>) -> Result<Option<Option<String>>, Reply> {
    match body.get("username") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.chars().count() > 100 => Err(Reply::field(
            "username",
            "Ensure this field has no more than 100 characters.",
        )),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(Reply::field("username", "Not a valid string.")),
    }
}

pub fn offering_users(w: &mut World, r: &Req) -> Res {
    r.allow(&[Method::GET, Method::POST])?;
    if r.is_get() {
        let mut f = Filters::new(r);
        let offerings = f.uuids("offering_uuid");
        let users = f.uuids("user_uuid");
        f.check()?;
        let username = r.q("user_username");
        let mut found: Vec<&OfferingUser> = w
            .offering_users
            .iter()
            .filter(|ou| listed_offering_user(w, r, ou))
            .filter(|ou| offerings.is_empty() || offerings.contains(&ou.offering))
            .filter(|ou| users.is_empty() || users.contains(&ou.user))
            .filter(|ou| username.is_none_or(|n| w.user(&ou.user).is_some_and(|u| u.username == n)))
            .collect();
        super::order_by_created(r, &mut found, |ou| ou.created);
        let found = (found.into_iter())
            .map(|ou| render::offering_user(w, &r.base, ou))
            .collect();
        return r.list(found);
    }
    let body = r.json()?;
    let mut errors = Map::new();
    let offering = body
        .get("offering")
        .or_else(|| body.get("offering_uuid"))
        .and_then(uuid_of);
    let user = body
        .get("user")
        .or_else(|| body.get("user_uuid"))
        .and_then(uuid_of);
    match &offering {
        None => {
            errors.insert("offering".into(), json!(["This field is required."]));
        }
        Some(o) if !w.is_provider_of_offering(&r.caller, o) => {
            errors.insert(
                "offering".into(),
                json!(["Invalid hyperlink - Object does not exist."]),
            );
        }
        _ => {}
    }
    match &user {
        None => {
            errors.insert("user".into(), json!(["This field is required."]));
        }
        Some(u) if w.user(u).is_none() => {
            errors.insert(
                "user".into(),
                json!(["Invalid hyperlink - Object does not exist."]),
            );
        }
        _ => {}
    }
    let username = match username_field(&body) {
        Ok(u) => u.flatten(),
        Err(e) => {
            if let Some(Value::Object(m)) = e.body {
                errors.extend(m);
            }
            None
        }
    };
    if !errors.is_empty() {
        return Err(Reply::bad(Value::Object(errors)));
    }
    let (offering, user) = (offering.expect("checked"), user.expect("checked"));
    // The serializer's unique-together check, then the permission (`OFFERING.CREATE_USER` on the
    // offering's organisation), then the offering's option, as Waldur's `create` does.
    if w.offering_user_for(&offering, &user).is_some() {
        return Err(Reply::bad(json!({"non_field_errors": [
            "The fields offering, user must make a unique set."
        ]})));
    }
    if !w.may_act_as_provider(&r.caller, &offering) {
        return Err(Reply::forbidden());
    }
    if !w
        .offering(&offering)
        .is_some_and(|o| o.sp_can_create_offering_user)
    {
        return Err(Reply::bad(json!([
            "It is not allowed to create users for current offering."
        ])));
    }
    let uuid = new_uuid();
    let state = if username.as_deref().is_some_and(|u| !u.is_empty()) {
        "OK"
    } else {
        "Requested"
    };
    w.offering_users.push(OfferingUser {
        uuid: uuid.clone(),
        offering,
        user,
        username,
        state: state.into(),
        created: r.now,
        modified: r.now,
    });
    let ou = w.offering_users.last().expect("just added");
    Ok(Reply::new(
        StatusCode::CREATED,
        render::offering_user(w, &r.base, ou),
    ))
}

pub fn offering_user_detail(w: &mut World, r: &Req, id: &str) -> Res {
    r.allow(&[Method::GET, Method::PUT, Method::PATCH])?;
    let ou = visible_offering_user(w, r, id)?.clone();
    if r.is_get() {
        return r.one(render::offering_user(w, &r.base, &ou));
    }
    if !w.may_act_as_provider(&r.caller, &ou.offering) {
        return Err(Reply::forbidden());
    }
    let body = r.json()?;
    let username = username_field(&body)?;
    let x = w
        .offering_users
        .iter_mut()
        .find(|x| x.uuid == id)
        .expect("checked");
    if let Some(u) = username {
        if x.state == "Requested" && u.as_deref().is_some_and(|s| !s.is_empty()) {
            x.state = "OK".into();
        }
        x.username = u;
    }
    x.modified = r.now;
    let x = x.clone();
    Ok(Reply::ok(render::offering_user(w, &r.base, &x)))
}

pub fn service_providers(w: &World, r: &Req) -> Res {
    r.allow(&[Method::GET])?;
    let mut f = Filters::new(r);
    let customer = f.uuid("customer_uuid");
    f.check()?;
    let customer = customer.as_deref();
    let found: Vec<Value> = w
        .service_providers
        .iter()
        .filter(|sp| customer.is_none_or(|c| sp.customer == c))
        .map(|sp| render::service_provider(w, &r.base, sp))
        .collect();
    r.list(found)
}

pub fn service_provider_detail(w: &World, r: &Req, id: &str) -> Res {
    r.allow(&[Method::GET])?;
    let sp = w.sp(id).ok_or_else(Reply::not_found)?;
    r.one(render::service_provider(w, &r.base, sp))
}

/// `marketplace-service-providers/{uuid}/<action>/`. The SP itself is public (so another SP's uuid
/// is a 403, as Waldur's permission check answers); an unknown uuid is a 404.
pub fn service_provider_action(w: &mut World, r: &Req, id: &str, action: &str) -> Res {
    if !matches!(
        action,
        "users" | "keys" | "projects" | "project_permissions" | "set_offerings_username"
    ) {
        return Err(Reply::not_found());
    }
    let sp = w.sp(id).ok_or_else(Reply::not_found)?.clone();
    if sp.uuid != r.caller.sp {
        return Err(Reply::forbidden());
    }
    let project_list = w.sp_projects(&sp.customer);
    let projects: HashSet<&str> = project_list.iter().map(String::as_str).collect();
    match action {
        // Waldur 8.0.5 `ServiceProviderViewSet.users` with its user filter: `username` (exact),
        // `email`, `project_uuid` (a role in that project).
        "users" => {
            r.allow(&[Method::GET])?;
            let mut f = Filters::new(r);
            let project = f.uuid("project_uuid");
            f.check()?;
            let username = r.q("username");
            let email = r.q("email");
            let mut counts: HashMap<&str, usize> = HashMap::new();
            let mut in_project: HashSet<&str> = HashSet::new();
            for g in w
                .roles
                .iter()
                .filter(|g| projects.contains(g.project.as_str()))
            {
                *counts.entry(g.user.as_str()).or_default() += 1;
                if project.as_deref() == Some(g.project.as_str()) {
                    in_project.insert(g.user.as_str());
                }
            }
            let list: Vec<&User> = w
                .sp_users(&projects)
                .iter()
                .filter_map(|u| w.user(u))
                .filter(|u| project.is_none() || in_project.contains(u.uuid.as_str()))
                .filter(|u| username.is_none_or(|x| u.username == x))
                .filter(|u| email.is_none_or(|x| u.email.eq_ignore_ascii_case(x)))
                .collect();
            r.list_with(list, |u| {
                render::sp_user(u, counts.get(u.uuid.as_str()).copied().unwrap_or(0))
            })
        }
        "keys" => {
            r.allow(&[Method::GET])?;
            let mut f = Filters::new(r);
            let user = f.uuid("user_uuid");
            f.check()?;
            let user = user.as_deref();
            let users = w.sp_users(&projects);
            let users: HashSet<&str> = users.iter().map(String::as_str).collect();
            let list: Vec<&SshKey> = w
                .keys
                .iter()
                .filter(|k| users.contains(k.user.as_str()))
                .filter(|k| user.is_none_or(|u| k.user == u))
                .collect();
            r.list_with(list, |k| render::key(&r.base, k))
        }
        "projects" => {
            r.allow(&[Method::GET])?;
            let list: Vec<&Project> = project_list.iter().filter_map(|p| w.project(p)).collect();
            r.list_with(list, |p| render::project(w, &r.base, p))
        }
        // Waldur 8.0.5's filter of user roles (`UserPermissionFilter`): `scope_uuid` (a
        // `UUIDFilter`; here the project) and `user` (a `RelatedUUIDFilter` on the user's uuid). Other keys (`project_uuid`, `user_uuid`) are not filters there and, as
        // django-filter does with unknown keys, are ignored.
        "project_permissions" => {
            r.allow(&[Method::GET])?;
            let mut f = Filters::new(r);
            let user = f.uuid("user");
            let project = f.uuid("scope_uuid");
            f.check()?;
            let (project, user) = (project.as_deref(), user.as_deref());
            let list: Vec<&RoleGrant> = w
                .roles
                .iter()
                .filter(|g| projects.contains(g.project.as_str()))
                .filter(|g| project.is_none_or(|p| g.project == p))
                .filter(|g| user.is_none_or(|u| g.user == u))
                .collect();
            r.list_with(list, |g| render::project_permission(w, &r.base, g))
        }
        "set_offerings_username" => {
            r.allow(&[Method::POST])?;
            let body = r.json()?;
            let mut errors = Map::new();
            for k in ["user_uuid", "username"] {
                match body.get(k) {
                    None => {
                        errors.insert(k.into(), json!(["This field is required."]));
                    }
                    Some(Value::String(_)) => {}
                    Some(_) => {
                        errors.insert(k.into(), json!(["Not a valid string."]));
                    }
                }
            }
            if !errors.is_empty() {
                return Err(Reply::bad(Value::Object(errors)));
            }
            let raw = body["user_uuid"].as_str().unwrap_or("");
            let user = raw.replace('-', "").to_lowercase();
            let username = body["username"].as_str().unwrap_or("").to_string();
            if w.user(&user).is_none() {
                return Err(Reply::bad(json!([format!(
                    "A user with the uuid [{raw}] is not found."
                )])));
            }
            // Every SP offering with a non-terminated resource in one of the user's projects.
            let user_projects: Vec<String> = w
                .roles
                .iter()
                .filter(|g| g.user == user)
                .map(|g| g.project.clone())
                .collect();
            let mut offerings: Vec<String> = vec![];
            for res in &w.resources {
                if res.state != "Terminated"
                    && user_projects.contains(&res.project)
                    && w.offering(&res.offering)
                        .is_some_and(|o| o.customer == sp.customer)
                    && !offerings.contains(&res.offering)
                {
                    offerings.push(res.offering.clone());
                }
            }
            for offering in offerings {
                let existing = w
                    .offering_users
                    .iter_mut()
                    .find(|ou| ou.offering == offering && ou.user == user);
                match existing {
                    Some(ou) => {
                        if !username.is_empty() {
                            ou.username = Some(username.clone());
                            if ou.state == "Requested" {
                                ou.state = "OK".into();
                            }
                            ou.modified = r.now;
                        }
                    }
                    None => w.offering_users.push(OfferingUser {
                        uuid: new_uuid(),
                        offering,
                        user: user.clone(),
                        username: (!username.is_empty()).then(|| username.clone()),
                        state: if username.is_empty() {
                            "Requested"
                        } else {
                            "OK"
                        }
                        .into(),
                        created: r.now,
                        modified: r.now,
                    }),
                }
            }
            Ok(Reply::new(
                StatusCode::CREATED,
                json!({"detail": "Offering users have been set."}),
            ))
        }
        _ => Err(Reply::not_found()),
    }
}
