//! Orders: list/retrieve/create and the provider and consumer transitions of CONTRACT.md §2, with
//! Waldur's validators in Waldur's order: the offering-type check (405) before the state check
//! (409). Each transition applies its side effect on the resource (`World::apply_order_outcome`).

use super::render;
use super::state::*;
use super::{Filters, Reply, Req, Res};

/// Waldur's order states (the names its `state` filter accepts, case-sensitive).
pub const ORDER_STATES: &[&str] = &[
    "pending-consumer",
    "pending-provider",
    "pending-project",
    "pending-start-date",
    "executing",
    "done",
    "erred",
    "canceled",
    "rejected",
];

/// Waldur's order types (the names its `type` filter accepts, case-sensitive).
pub const ORDER_TYPES: &[&str] = &["Create", "Update", "Terminate", "Restore"];
use actix_web::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

pub fn collection(w: &mut World, r: &Req) -> Res {
    r.allow(&[Method::GET, Method::POST])?;
    if r.method == Method::POST {
        return create(w, r);
    }
    let mut f = Filters::new(r);
    let states = f.choices("state", ORDER_STATES);
    let types = f.choices("type", ORDER_TYPES);
    let resources = f.uuids("resource_uuid");
    let offerings = f.uuids("offering_uuid");
    let projects = f.uuids("project_uuid");
    let customers = f.uuids("customer_uuid");
    let providers = f.uuids("provider_uuid");
    f.check()?;
    let mut found: Vec<&Order> = w
        .orders
        .iter()
        .filter(|o| w.sees_order(&r.caller, o))
        .filter(|o| states.is_empty() || states.contains(&o.state))
        .filter(|o| types.is_empty() || types.contains(&o.type_))
        .filter(|o| resources.is_empty() || resources.contains(&o.resource))
        .filter(|o| offerings.is_empty() || offerings.contains(&o.offering))
        .filter(|o| projects.is_empty() || projects.contains(&o.project))
        .filter(|o| {
            customers.is_empty()
                || w.project(&o.project)
                    .is_some_and(|p| customers.contains(&p.customer))
        })
        .filter(|o| {
            providers.is_empty()
                || w.offering(&o.offering)
                    .is_some_and(|x| providers.contains(&x.customer))
        })
        .collect();
    super::order_by_created(r, &mut found, |x| x.created);
    r.list(
        found
            .into_iter()
            .map(|o| render::order(w, &r.base, o))
            .collect(),
    )
}

fn visible<'w>(w: &'w World, r: &Req, id: &str) -> Result<&'w Order, Reply> {
    w.order(id)
        .filter(|o| w.sees_order(&r.caller, o))
        .ok_or_else(Reply::not_found)
}

pub fn retrieve(w: &World, r: &Req, id: &str) -> Res {
    r.allow(&[Method::GET])?;
    let o = visible(w, r, id)?;
    r.one(render::order(w, &r.base, o))
}

/// The uuid at the end of a relation URL (`…/projects/<uuid>/`), or a bare uuid.
fn uuid_from_url(s: &str) -> String {
    s.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .replace('-', "")
        .to_lowercase()
}

fn hyperlink(
    body: &Map<String, Value>,
    field: &str,
    required: bool,
) -> Result<Option<String>, Reply> {
    match body.get(field) {
        None | Some(Value::Null) if required => Err(Reply::field(field, "This field is required.")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(uuid_from_url(s))),
        Some(_) => Err(Reply::field(
            field,
            "Incorrect type. Expected URL string, received dict.",
        )),
    }
}

const MISSING: &str = "Invalid hyperlink - Object does not exist.";

fn create(w: &mut World, r: &Req) -> Res {
    let body = r.json()?;
    let mut errors = Map::new();
    let project = hyperlink(&body, "project", true);
    let offering = hyperlink(&body, "offering", true);
    for res in [&project, &offering] {
        if let Err(e) = res
            && let Some(Value::Object(m)) = &e.body
        {
            errors.extend(m.clone());
        }
    }
    let project = project.ok().flatten();
    let offering = offering.ok().flatten();
    if let Some(p) = &project
        && !w.consumer_sees_project(&r.caller, p)
    {
        errors.insert("project".into(), json!([MISSING]));
    }
    if let Some(o) = &offering
        && !w
            .offering(o)
            .is_some_and(|o| o.state == "Active" || o.state == "Paused")
    {
        errors.insert("offering".into(), json!([MISSING]));
    }
    if !errors.is_empty() {
        return Err(Reply::bad(Value::Object(errors)));
    }
    let (project, offering) = (project.expect("checked"), offering.expect("checked"));
    let plan = hyperlink(&body, "plan", false)?;
    let o = w.offering(&offering).expect("checked").clone();
    let plan = match plan {
        Some(p) if o.plans.iter().any(|x| x.uuid == p) => Some(p),
        Some(_) => return Err(Reply::field("plan", MISSING)),
        None => o.plans.first().map(|p| p.uuid.clone()),
    };
    match body.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t == "Create" => {}
        Some(Value::String(t)) => {
            return Err(Reply::field(
                "type",
                format!("\"{t}\" is not a valid choice. Only Create is accepted here."),
            ));
        }
        Some(_) => return Err(Reply::field("type", "Not a valid choice.")),
    }
    let attributes = match body.get("attributes") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(Reply::field("attributes", "Value must be valid JSON.")),
    };
    let name = match attributes.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.clone(),
        _ => format!("{}-{}", o.slug, &new_uuid()[..6]),
    };
    let probe = Resource {
        uuid: String::new(),
        name: name.clone(),
        slug: name.to_lowercase().replace(' ', "-"),
        description: String::new(),
        offering: offering.clone(),
        project: project.clone(),
        plan: plan.clone(),
        state: "Creating".into(),
        backend_id: String::new(),
        limits: Map::new(),
        attributes: attributes.clone(),
        options: Map::new(),
        report: vec![],
        current_usages: Map::new(),
        error_message: String::new(),
        error_traceback: String::new(),
        end_date: None,
        created: r.now,
        modified: r.now,
    };
    let limits = super::resources::parse_limits(w, &probe, body.get("limits"), false)?;
    let request_comment = body
        .get("request_comment")
        .and_then(Value::as_str)
        .map(str::to_string);
    let resource_uuid = new_uuid();
    w.resources.push(Resource {
        uuid: resource_uuid.clone(),
        limits: limits.clone(),
        ..probe
    });
    // The creator is an owner of the project's organisation, so consumer review is skipped; a
    // Marketplace.Basic/Slurm offering always needs the provider's review.
    let state = if w
        .project(&project)
        .is_some_and(|p| p.customer == r.caller.customer)
    {
        "pending-provider"
    } else {
        "pending-consumer"
    };
    let uuid = new_uuid();
    w.orders.push(Order {
        uuid: uuid.clone(),
        offering,
        project,
        resource: resource_uuid,
        plan,
        type_: "Create".into(),
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
    let o = w.order(&uuid).expect("just added");
    Ok(Reply::new(
        StatusCode::CREATED,
        render::order(w, &r.base, o),
    ))
}

fn type_not_supported(offering_type: &str) -> Reply {
    Reply::new(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"detail": format!("The order's offering with {offering_type} type does not support this action")}),
    )
}

fn require_types(w: &World, o: &Order, allowed: &[&str]) -> Result<(), Reply> {
    let t = w
        .offering(&o.offering)
        .map(|x| x.type_.clone())
        .unwrap_or_default();
    if allowed.contains(&t.as_str()) {
        Ok(())
    } else {
        Err(type_not_supported(&t))
    }
}

fn require_state(o: &Order, valid: &[&str]) -> Result<(), Reply> {
    if valid.contains(&o.state.as_str()) {
        Ok(())
    } else {
        Err(Reply::conflict(valid))
    }
}

fn text_field(body: &Map<String, Value>, k: &str) -> Result<Option<String>, Reply> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Reply::field(k, "Not a valid string.")),
    }
}

fn set_state(w: &mut World, id: &str, state: &str, now: chrono::DateTime<chrono::Utc>) {
    let o = w.order_mut(id).expect("checked");
    o.state = state.into();
    o.modified = now;
    if matches!(state, "done" | "erred" | "canceled" | "rejected") {
        o.completed_at = Some(now);
    }
}

pub fn action(w: &mut World, r: &Req, id: &str, action: &str) -> Res {
    const ACTIONS: &[&str] = &[
        "approve_by_provider",
        "reject_by_provider",
        "approve_by_consumer",
        "reject_by_consumer",
        "cancel",
        "set_state_done",
        "set_state_erred",
        "set_backend_id",
    ];
    if !ACTIONS.contains(&action) {
        return Err(Reply::not_found());
    }
    r.allow(&[Method::POST])?;
    let order = visible(w, r, id)?.clone();
    let provider = w.may_act_as_provider(&r.caller, &order.offering);
    let consumer = w.consumer_sees_project(&r.caller, &order.project);
    match action {
        "approve_by_provider" => {
            if !provider {
                return Err(Reply::forbidden());
            }
            require_state(&order, &["pending-provider"])?;
            let body = r.json()?;
            let attrs = match body.get("attributes") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return Err(Reply::field("attributes", "Value must be valid JSON.")),
            };
            set_state(w, id, "executing", r.now);
            let completes_at = w
                .processes_orders_itself(&order.offering)
                .then_some(w.self_processing_delay)
                .flatten()
                .map(|delay| r.now + delay);
            let o = w.order_mut(id).expect("checked");
            o.attributes.extend(attrs);
            o.provider_reviewed_by = Some(r.caller.user.clone());
            o.provider_reviewed_at = Some(r.now);
            o.completes_at = completes_at;
            w.apply_order_outcome(id, OrderOutcome::Executing, r.now);
            Ok(Reply::ok(
                json!({"detail": "Order has been approved and is being processed."}),
            ))
        }
        "reject_by_provider" => {
            if !provider {
                return Err(Reply::forbidden());
            }
            require_state(&order, &["pending-provider"])?;
            let body = r.json()?;
            let comment = text_field(&body, "provider_rejection_comment")?;
            set_state(w, id, "rejected", r.now);
            let o = w.order_mut(id).expect("checked");
            o.provider_reviewed_by = Some(r.caller.user.clone());
            o.provider_reviewed_at = Some(r.now);
            if let Some(c) = comment {
                o.provider_rejection_comment = c;
            }
            w.apply_order_outcome(id, OrderOutcome::Dropped, r.now);
            Ok(Reply::empty(StatusCode::OK))
        }
        "approve_by_consumer" => {
            if !consumer {
                return Err(Reply::forbidden());
            }
            require_state(&order, &["pending-consumer"])?;
            // Marketplace.Basic / Slurm always need the provider's review next.
            set_state(w, id, "pending-provider", r.now);
            Ok(Reply::ok(json!({"detail": "Order has been approved."})))
        }
        "reject_by_consumer" => {
            if !consumer {
                return Err(Reply::forbidden());
            }
            require_state(&order, &["pending-consumer"])?;
            let body = r.json()?;
            let comment = text_field(&body, "consumer_rejection_comment")?;
            set_state(w, id, "rejected", r.now);
            if let Some(c) = comment {
                w.order_mut(id).expect("checked").consumer_rejection_comment = c;
            }
            w.apply_order_outcome(id, OrderOutcome::Dropped, r.now);
            Ok(Reply::empty(StatusCode::OK))
        }
        "cancel" => {
            if !consumer {
                return Err(Reply::forbidden());
            }
            require_types(w, &order, &["Marketplace.Basic", "Marketplace.Support"])?;
            require_state(
                &order,
                &[
                    "pending-consumer",
                    "pending-provider",
                    "pending-start-date",
                    "executing",
                ],
            )?;
            set_state(w, id, "canceled", r.now);
            w.apply_order_outcome(id, OrderOutcome::Dropped, r.now);
            Ok(Reply::empty(StatusCode::ACCEPTED))
        }
        "set_state_done" => {
            if !provider {
                return Err(Reply::forbidden());
            }
            require_types(
                w,
                &order,
                &[
                    "Marketplace.Slurm",
                    "Marketplace.Basic",
                    "Marketplace.Support",
                ],
            )?;
            require_state(&order, &["executing"])?;
            set_state(w, id, "done", r.now);
            w.apply_order_outcome(id, OrderOutcome::Done, r.now);
            if order.type_ == "Create" {
                w.current_plan_period(&order.resource, r.now);
            }
            Ok(Reply::empty(StatusCode::OK))
        }
        "set_state_erred" => {
            if !provider {
                return Err(Reply::forbidden());
            }
            require_types(w, &order, &["Marketplace.Slurm"])?;
            let body = r.json()?;
            let msg = text_field(&body, "error_message")?.unwrap_or_default();
            let tb = text_field(&body, "error_traceback")?.unwrap_or_default();
            set_state(w, id, "erred", r.now);
            let o = w.order_mut(id).expect("checked");
            o.error_message = msg;
            o.error_traceback = tb;
            w.apply_order_outcome(id, OrderOutcome::Erred, r.now);
            Ok(Reply::empty(StatusCode::OK))
        }
        "set_backend_id" => {
            if !provider {
                return Err(Reply::forbidden());
            }
            let body = r.json()?;
            let Some(b) = text_field(&body, "backend_id")? else {
                return Err(Reply::field("backend_id", "This field is required."));
            };
            let o = w.order_mut(id).expect("checked");
            let status = if o.backend_id == b {
                "Order backend_id is not changed."
            } else {
                o.backend_id = b;
                o.modified = r.now;
                "Order backend_id has been changed."
            };
            Ok(Reply::ok(json!({ "status": status })))
        }
        _ => Err(Reply::not_found()),
    }
}
