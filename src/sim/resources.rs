//! Resources: the provider view (`marketplace-provider-resources/`) with its SP actions, and the
//! consumer view (`marketplace-resources/{uuid}/`) used for updates, options and termination.
//!
//! Visibility: the provider view shows resources of offerings the caller's organisation owns; the
//! consumer view additionally shows resources in the caller's own projects. Anything else is a 404,
//! as Waldur's filtered querysets make it. The simulator has no role→permission model: whatever a
//! token can see, it may act on (Waldur's SP owner holds all SP permissions).

use super::render;
use super::state::*;
use super::{Filters, Reply, Req, Res};
use actix_web::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

/// Waldur's resource states (the names its `state` filter accepts, case-sensitive).
pub const RESOURCE_STATES: &[&str] = &[
    "Creating",
    "OK",
    "Erred",
    "Updating",
    "Terminating",
    "Terminated",
];

const SET_OK_SOURCES: &[&str] = &["Creating", "Updating", "Terminating", "Erred"];

pub fn list(w: &World, r: &Req) -> Res {
    r.allow(&[Method::GET])?;
    let mut f = Filters::new(r);
    let offerings = f.uuids("offering_uuid");
    let states = f.choices("state", RESOURCE_STATES);
    let projects = f.uuids("project_uuid");
    let customers = f.uuids("customer_uuid");
    f.check()?;
    let backend_id = r.q("backend_id");
    let name = r.q("name").map(str::to_lowercase);
    let name_exact = r.q("name_exact");
    let mut found: Vec<&Resource> = w
        .resources
        .iter()
        .filter(|x| w.provider_sees_resource(&r.caller, x))
        .filter(|x| offerings.is_empty() || offerings.contains(&x.offering))
        .filter(|x| states.is_empty() || states.contains(&x.state))
        .filter(|x| projects.is_empty() || projects.contains(&x.project))
        .filter(|x| {
            customers.is_empty()
                || w.project(&x.project)
                    .is_some_and(|p| customers.contains(&p.customer))
        })
        .filter(|x| backend_id.is_none_or(|b| x.backend_id == b))
        .filter(|x| {
            name.as_deref()
                .is_none_or(|n| x.name.to_lowercase().contains(n))
        })
        .filter(|x| name_exact.is_none_or(|n| x.name == n))
        .collect();
    super::order_by_created(r, &mut found, |x| x.created);
    r.list_with(found, |x| render::resource(w, &r.base, x))
}

fn provider_resource<'w>(w: &'w World, r: &Req, id: &str) -> Result<&'w Resource, Reply> {
    w.resource(id)
        .filter(|x| w.provider_sees_resource(&r.caller, x))
        .ok_or_else(Reply::not_found)
}

pub fn retrieve(w: &World, r: &Req, id: &str) -> Res {
    r.allow(&[Method::GET])?;
    let res = provider_resource(w, r, id)?;
    r.one(render::resource(w, &r.base, res))
}

pub fn provider_action(w: &mut World, r: &Req, id: &str, action: &str) -> Res {
    // Unknown actions are 404 before anything else, like an unrouted URL.
    const ACTIONS: &[&str] = &[
        "team",
        "plan_periods",
        "set_backend_id",
        "submit_report",
        "set_as_ok",
        "set_state_ok",
        "set_as_erred",
        "set_limits",
        "terminate",
    ];
    if !ACTIONS.contains(&action) {
        return Err(Reply::not_found());
    }
    let res = provider_resource(w, r, id)?.clone();
    // Reads are open to whoever sees the resource; changes need the provider's permission.
    if !matches!(action, "team" | "plan_periods")
        && !w.may_act_as_provider(&r.caller, &res.offering)
    {
        return Err(Reply::forbidden());
    }
    match action {
        "team" => {
            r.allow(&[Method::GET])?;
            let team: Vec<Value> = w
                .roles
                .iter()
                .filter(|g| g.project == res.project)
                .map(|g| render::team_member(w, &r.base, &res, g))
                .collect();
            Ok(Reply::ok(Value::Array(team)))
        }
        "plan_periods" => {
            r.allow(&[Method::GET])?;
            let month = month_start(r.now.date_naive());
            let month_start_dt = month.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            let periods: Vec<Value> = w
                .plan_periods
                .iter()
                .filter(|p| p.resource == res.uuid && p.end.is_none_or(|e| e >= month_start_dt))
                .map(|p| render::plan_period(w, p, month))
                .collect();
            Ok(Reply::ok(Value::Array(periods)))
        }
        "set_backend_id" => {
            r.allow(&[Method::POST])?;
            let body = r.json()?;
            let backend_id = match body.get("backend_id") {
                // Waldur's view reads `request.data["backend_id"]` unchecked: a KeyError, so 500.
                None => return Err(Reply::server_error()),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) => {
                    return Err(Reply::field("backend_id", "This field may not be null."));
                }
                Some(other) if other.is_number() || other.is_boolean() => other.to_string(),
                Some(_) => return Err(Reply::field("backend_id", "Not a valid string.")),
            };
            if backend_id.chars().count() > 255 {
                return Err(Reply::field(
                    "backend_id",
                    "Ensure this field has no more than 255 characters.",
                ));
            }
            let x = w.resource_mut(id).expect("checked");
            let status = if x.backend_id == backend_id {
                "Resource backend_id is not changed."
            } else {
                x.backend_id = backend_id;
                x.modified = r.now;
                "Resource backend_id has been changed."
            };
            Ok(Reply::ok(json!({ "status": status })))
        }
        "submit_report" => {
            r.allow(&[Method::POST])?;
            let body = r.json()?;
            let report = parse_report(&body)?;
            let x = w.resource_mut(id).expect("checked");
            x.report = report;
            x.modified = r.now;
            Ok(Reply::ok(json!({"status": "Report is submitted"})))
        }
        "set_as_ok" => {
            r.allow(&[Method::POST])?;
            if res.state == "Terminated" {
                return Err(Reply::conflict(SET_OK_SOURCES));
            }
            let x = w.resource_mut(id).expect("checked");
            if x.state != "OK" {
                x.state = "OK".into();
                x.error_message.clear();
                x.error_traceback.clear();
                x.modified = r.now;
            }
            Ok(Reply::empty(StatusCode::OK))
        }
        "set_state_ok" => {
            r.allow(&[Method::POST])?;
            if !SET_OK_SOURCES.contains(&res.state.as_str()) {
                return Err(Reply::conflict(SET_OK_SOURCES));
            }
            let x = w.resource_mut(id).expect("checked");
            x.state = "OK".into();
            x.error_message.clear();
            x.error_traceback.clear();
            x.modified = r.now;
            Ok(Reply::ok(
                json!({"status": "Resource state has been set to OK."}),
            ))
        }
        "set_as_erred" => {
            r.allow(&[Method::POST])?;
            let body = r.json()?;
            let text = |k: &str| -> Result<String, Reply> {
                match body.get(k) {
                    None | Some(Value::Null) => Ok(String::new()),
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(Reply::field(k, "Not a valid string.")),
                }
            };
            let (msg, tb) = (text("error_message")?, text("error_traceback")?);
            let x = w.resource_mut(id).expect("checked");
            x.state = "Erred".into();
            x.error_message = msg;
            x.error_traceback = tb;
            x.modified = r.now;
            Ok(Reply::empty(StatusCode::OK))
        }
        "set_limits" => {
            r.allow(&[Method::POST])?;
            let body = r.json()?;
            let limits = parse_limits(w, &res, body.get("limits"), true)?;
            let x = w.resource_mut(id).expect("checked");
            x.limits = limits;
            x.modified = r.now;
            Ok(Reply::ok(
                json!({"status": "The resource limits are updated"}),
            ))
        }
        "terminate" => {
            r.allow(&[Method::POST])?;
            terminate(w, r, &res)
        }
        _ => Err(Reply::not_found()),
    }
}

fn parse_report(body: &Map<String, Value>) -> Result<Vec<(String, String)>, Reply> {
    let items = match body.get("report") {
        None => return Err(Reply::field("report", "This field is required.")),
        Some(Value::Array(items)) if items.is_empty() => {
            // The old report is kept.
            return Err(Reply::bad(json!([
                "Report object should contain at least one section."
            ])));
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(Reply::bad(json!({"report": {"non_field_errors": [
                "Expected a list of items but got type \"dict\"."
            ]}})));
        }
    };
    let mut errors = vec![];
    let mut out = vec![];
    for item in items {
        let mut err = Map::new();
        let mut get = |k: &str| match item.get(k) {
            None => {
                err.insert(k.into(), json!(["This field is required."]));
                String::new()
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                err.insert(k.into(), json!(["This field may not be blank."]));
                String::new()
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                err.insert(k.into(), json!(["Not a valid string."]));
                String::new()
            }
        };
        let header = get("header");
        let body = get("body");
        out.push((header, body));
        errors.push(Value::Object(err));
    }
    if errors
        .iter()
        .any(|e| e.as_object().is_some_and(|m| !m.is_empty()))
    {
        return Err(Reply::bad(json!({ "report": errors })));
    }
    Ok(out)
}

/// `{"limits": {"<component type>": number}}`; `required` makes a missing key an error.
pub fn parse_limits(
    w: &World,
    res: &Resource,
    v: Option<&Value>,
    required: bool,
) -> Result<Map<String, Value>, Reply> {
    let m = match v {
        None if required => return Err(Reply::field("limits", "This field is required.")),
        None => return Ok(Map::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(Reply::field(
                "limits",
                "Expected a dictionary of items but got type \"list\".",
            ));
        }
    };
    let components: Vec<&str> = w
        .offering(&res.offering)
        .map(|o| o.components.iter().map(|c| c.type_.as_str()).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    for (k, v) in m {
        if !components.contains(&k.as_str()) {
            return Err(Reply::field(
                "limits",
                format!("These components are invalid: {k}."),
            ));
        }
        let n = match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => v.clone(),
            Value::Number(n) => json!(n.as_f64().unwrap_or(0.0).round() as i64),
            Value::String(s) => match s.trim().parse::<i64>() {
                Ok(i) => json!(i),
                Err(_) => {
                    return Err(Reply::bad(
                        json!({"limits": {k.clone(): ["A valid integer is required."]}}),
                    ));
                }
            },
            _ => {
                return Err(Reply::bad(
                    json!({"limits": {k.clone(): ["A valid integer is required."]}}),
                ));
            }
        };
        if n.as_i64().is_some_and(|i| i < 0) {
            return Err(Reply::bad(
                json!({"limits": {k.clone(): ["Ensure this value is greater than or equal to 0."]}}),
            ));
        }
        out.insert(k.clone(), n);
    }
    Ok(out)
}

/// Terminate (provider or consumer path): a Terminate order waiting for the provider.
fn terminate(w: &mut World, r: &Req, res: &Resource) -> Res {
    if w.offering(&res.offering)
        .is_some_and(|o| o.state == "Unavailable")
    {
        return Err(Reply::bad(json!(["Offering is unavailable."])));
    }
    if !matches!(res.state.as_str(), "OK" | "Erred") {
        return Err(Reply::conflict(&["OK", "Erred"]));
    }
    if w.has_pending_order(&res.uuid) {
        return Err(Reply::bad(json!([
            "Pending order for resource already exists."
        ])));
    }
    let body = r.json()?;
    let attributes = match body.get("attributes") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(Reply::field("attributes", "Value must be valid JSON.")),
    };
    let uuid = new_uuid();
    w.orders.push(Order {
        uuid: uuid.clone(),
        offering: res.offering.clone(),
        project: res.project.clone(),
        resource: res.uuid.clone(),
        // Waldur's Terminate orders carry no plan (and so no cost).
        plan: None,
        type_: "Terminate".into(),
        state: "pending-provider".into(),
        attributes,
        limits: Map::new(),
        created_by: r.caller.user.clone(),
        error_message: String::new(),
        error_traceback: String::new(),
        provider_rejection_comment: String::new(),
        consumer_rejection_comment: String::new(),
        request_comment: None,
        backend_id: String::new(),
        completed_at: None,
        created: r.now,
        modified: r.now,
        provider_reviewed_by: None,
        provider_reviewed_at: None,
        completes_at: None,
    });
    Ok(Reply::ok(json!({ "order_uuid": uuid })))
}

fn consumer_resource<'w>(w: &'w World, r: &Req, id: &str) -> Result<&'w Resource, Reply> {
    w.resource(id)
        .filter(|x| w.sees_resource(&r.caller, x))
        .ok_or_else(Reply::not_found)
}

/// `GET/PUT/PATCH /marketplace-resources/{uuid}/`.
pub fn consumer_detail(w: &mut World, r: &Req, id: &str) -> Res {
    r.allow(&[Method::GET, Method::PUT, Method::PATCH])?;
    let res = consumer_resource(w, r, id)?.clone();
    if r.is_get() {
        return r.one(render::resource(w, &r.base, &res));
    }
    let body = r.json()?;
    let partial = r.method == Method::PATCH;
    let mut errors = Map::new();
    let mut name = None;
    match body.get("name") {
        None if !partial => {
            errors.insert("name".into(), json!(["This field is required."]));
        }
        None => {}
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.insert("name".into(), json!(["This field may not be blank."]));
        }
        Some(Value::String(s)) if s.chars().count() > 150 => {
            errors.insert(
                "name".into(),
                json!(["Ensure this field has no more than 150 characters."]),
            );
        }
        Some(Value::String(s)) => name = Some(s.clone()),
        Some(_) => {
            errors.insert("name".into(), json!(["Not a valid string."]));
        }
    }
    let mut description = None;
    match body.get("description") {
        None => {}
        Some(Value::String(s)) if s.chars().count() > 4096 => {
            errors.insert(
                "description".into(),
                json!(["Ensure this field has no more than 4096 characters."]),
            );
        }
        Some(Value::String(s)) => description = Some(s.clone()),
        Some(_) => {
            errors.insert("description".into(), json!(["Not a valid string."]));
        }
    }
    let mut end_date = None;
    match body.get("end_date") {
        None => {}
        Some(Value::Null) => end_date = Some(None),
        Some(Value::String(s)) => match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => end_date = Some(Some(d)),
            Err(_) => {
                errors.insert(
                    "end_date".into(),
                    json!(["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]),
                );
            }
        },
        Some(_) => {
            errors.insert(
                "end_date".into(),
                json!(["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]),
            );
        }
    }
    if !errors.is_empty() {
        return Err(Reply::bad(Value::Object(errors)));
    }
    let x = w.resource_mut(id).expect("checked");
    if let Some(n) = name {
        x.name = n;
    }
    if let Some(d) = description {
        x.description = d;
    }
    if let Some(e) = end_date {
        x.end_date = e;
    }
    x.modified = r.now;
    Ok(Reply::ok(render::resource_update(x)))
}

pub fn consumer_action(w: &mut World, r: &Req, id: &str, action: &str) -> Res {
    if !matches!(
        action,
        "update_options" | "update_limits" | "terminate" | "team"
    ) {
        return Err(Reply::not_found());
    }
    let res = consumer_resource(w, r, id)?.clone();
    match action {
        "team" => {
            r.allow(&[Method::GET])?;
            let team: Vec<Value> = w
                .roles
                .iter()
                .filter(|g| g.project == res.project)
                .map(|g| render::team_member(w, &r.base, &res, g))
                .collect();
            Ok(Reply::ok(Value::Array(team)))
        }
        "update_options" => {
            r.allow(&[Method::POST])?;
            super::consumer::update_options(w, r, &res)
        }
        "update_limits" => {
            r.allow(&[Method::POST])?;
            super::consumer::update_limits(w, r, &res)
        }
        "terminate" => {
            r.allow(&[Method::POST])?;
            terminate(w, r, &res)
        }
        _ => Err(Reply::not_found()),
    }
}
