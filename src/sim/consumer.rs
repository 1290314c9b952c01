//! Consumer-side resource actions that create orders (Waldur 8.0.5 `ResourceViewSet`):
//! `update_limits` always, `update_options` when the offering's plugin options say
//! `create_orders_on_resource_option_change` (otherwise the options apply at once).
//!
//! An order a consumer creates starts in `pending-consumer` unless its creator may approve it
//! (here: the token user owns the project's organisation), in which case Waldur records the
//! consumer review at once and the order waits for the provider (`pending-provider`), as every
//! `Marketplace.Basic` / `Marketplace.Slurm` order does.

use super::state::*;
use super::{Reply, Req, Res};
use actix_web::http::StatusCode;
use serde_json::{Map, Value, json};

/// Where a consumer's new order starts (module doc).
pub fn initial_state(w: &World, caller: &Caller, project: &str) -> &'static str {
    if w.project(project)
        .is_some_and(|p| p.customer == caller.customer)
    {
        "pending-provider"
    } else {
        "pending-consumer"
    }
}

/// Appends an Update order for `res` and returns its uuid.
fn push_update_order(
    w: &mut World,
    r: &Req,
    res: &Resource,
    attributes: Map<String, Value>,
    limits: Map<String, Value>,
    request_comment: Option<String>,
) -> String {
    let uuid = new_uuid();
    let state = initial_state(w, &r.caller, &res.project);
    w.orders.push(Order {
        uuid: uuid.clone(),
        offering: res.offering.clone(),
        project: res.project.clone(),
        resource: res.uuid.clone(),
        plan: res.plan.clone(),
        type_: "Update".into(),
        state: state.into(),
        attributes,
        limits,
        created_by: r.caller.user.clone(),
        error_message: String::new(),
        error_traceback: String::new(),
        provider_rejection_comment: String::new(),
        consumer_rejection_comment: String::new(),
        request_comment,
        backend_id: String::new(),
        completed_at: None,
        created: r.now,
        modified: r.now,
        provider_reviewed_by: None,
        provider_reviewed_at: None,
        completes_at: None,
    });
    uuid
}

fn pending_order(w: &World, res: &Resource) -> Result<(), Reply> {
    if w.has_pending_order(&res.uuid) {
        return Err(Reply::bad(json!([
            "Pending order for resource already exists."
        ])));
    }
    Ok(())
}

/// `POST /marketplace-resources/{uuid}/update_limits/` `{"limits": {...}, "request_comment"?}`:
/// 200 `{"order_uuid"}`; the resource must be OK (409); unchanged limits are a 400.
pub fn update_limits(w: &mut World, r: &Req, res: &Resource) -> Res {
    let body = r.json()?;
    let limits = super::resources::parse_limits(w, res, body.get("limits"), true)?;
    if res.state != "OK" {
        return Err(Reply::conflict(&["OK"]));
    }
    if limits == res.limits {
        return Err(Reply::bad(json!(["Limits are not changed."])));
    }
    pending_order(w, res)?;
    let request_comment = body
        .get("request_comment")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut attributes = Map::new();
    attributes.insert("old_limits".into(), Value::Object(res.limits.clone()));
    let uuid = push_update_order(w, r, res, attributes, limits, request_comment);
    Ok(Reply::ok(json!({ "order_uuid": uuid })))
}

/// `POST /marketplace-resources/{uuid}/update_options/` `{"options": {...}}`: applied at once
/// (200 `{"status": "Resource options are submitted"}`), or, where the offering creates orders
/// on option changes, an Update order (201 `{"order_uuid"}`) whose completion applies them.
pub fn update_options(w: &mut World, r: &Req, res: &Resource) -> Res {
    let body = r.json()?;
    let options = match body.get("options") {
        None => return Err(Reply::field("options", "This field is required.")),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(Reply::field("options", "Value must be valid JSON.")),
    };
    if res.state != "OK" {
        return Err(Reply::conflict(&["OK"]));
    }
    let by_order = w
        .offering(&res.offering)
        .is_some_and(|o| o.option_change_orders);
    if by_order {
        pending_order(w, res)?;
        let mut attributes = Map::new();
        attributes.insert("old_options".into(), Value::Object(res.options.clone()));
        attributes.insert("new_options".into(), Value::Object(options));
        let uuid = push_update_order(w, r, res, attributes, Map::new(), None);
        return Ok(Reply::new(
            StatusCode::CREATED,
            json!({ "order_uuid": uuid }),
        ));
    }
    let x = w.resource_mut(&res.uuid).expect("checked");
    for (k, v) in options {
        x.options.insert(k, v);
    }
    x.modified = r.now;
    Ok(Reply::ok(
        json!({"status": "Resource options are submitted"}),
    ))
}

/// `GET projects/` (filter `customer_uuid`) and `GET projects/{uuid}/`: the projects the token's
/// user sees as a consumer (its organisation's, and those where it holds a role).
pub fn projects(w: &World, r: &Req, id: Option<&str>) -> Res {
    r.allow(&[actix_web::http::Method::GET])?;
    if let Some(id) = id {
        let p = super::parse_uuid(id)
            .and_then(|id| w.project(&id))
            .filter(|p| w.consumer_sees_project(&r.caller, &p.uuid))
            .ok_or_else(Reply::not_found)?;
        return r.one(super::render::project(w, &r.base, p));
    }
    let mut f = super::Filters::new(r);
    let customers = f.uuids("customer_uuid");
    f.check()?;
    let found: Vec<Value> = w
        .projects
        .iter()
        .filter(|p| w.consumer_sees_project(&r.caller, &p.uuid))
        .filter(|p| customers.is_empty() || customers.contains(&p.customer))
        .map(|p| super::render::project(w, &r.base, p))
        .collect();
    r.list(found)
}

/// `GET marketplace-resources/`: the resources the token's user sees (as a consumer, or as the
/// provider), filters `project_uuid`, `customer_uuid`, `offering_uuid`, `state`; oldest first.
pub fn resources(w: &World, r: &Req) -> Res {
    r.allow(&[actix_web::http::Method::GET])?;
    let mut f = super::Filters::new(r);
    let projects = f.uuids("project_uuid");
    let customers = f.uuids("customer_uuid");
    let offerings = f.uuids("offering_uuid");
    let states = f.choices(
        "state",
        &[
            "Creating",
            "OK",
            "Erred",
            "Updating",
            "Terminating",
            "Terminated",
        ],
    );
    f.check()?;
    let mut found: Vec<&Resource> = w
        .resources
        .iter()
        .filter(|x| w.sees_resource(&r.caller, x))
        .filter(|x| projects.is_empty() || projects.contains(&x.project))
        .filter(|x| {
            customers.is_empty()
                || w.project(&x.project)
                    .is_some_and(|p| customers.contains(&p.customer))
        })
        .filter(|x| offerings.is_empty() || offerings.contains(&x.offering))
        .filter(|x| states.is_empty() || states.contains(&x.state))
        .collect();
    super::order_by_created(r, &mut found, |x| x.created);
    r.list_with(found, |x| super::render::resource(w, &r.base, x))
}
