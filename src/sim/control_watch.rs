//! Control API for driving a watcher of Puhuri (`/__sim/orders`, `/__sim/roles`): what a
//! consumer or a project manager does in Waldur's UI, done at once without their tokens, so a
//! test can make "Puhuri" change and see what the gateway tells the sites.
//!
//! - `POST /__sim/orders` `{"offering_uuid"?, "project_uuid"?, "type"?, "resource_uuid"?,
//!   "state"?, "count"?}`: adds `count` (default 1, at most 10,000) orders. A `Create` (the
//!   default) also adds its resource in `Creating`, as Waldur's order serializer does (8.0.5
//!   `marketplace.serializers.OrderCreateSerializer`); `Update` and `Terminate` need the
//!   `resource_uuid` of an existing resource, whose offering and project they take. `state`
//!   defaults to `pending-provider` (a consumer whose organisation owns the project skips the
//!   consumer review). 201 with `[{"uuid", "resource_uuid"}]`.
//! - `POST /__sim/roles` `{"user_uuid", "project_uuid", "role"?}` grants a project role
//!   (default `PROJECT.MEMBER`): the user joins the team of every resource of that project.
//!   201; 200 when the user already held that role there.
//! - `DELETE /__sim/roles` with the same body revokes it (204; 404 when not held).

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::orders::{ORDER_STATES, ORDER_TYPES};
use super::state::{Order, Resource, RoleGrant, new_uuid};
use super::{Shared, demo};

/// The most orders one call adds.
const MAX_ORDERS: usize = 10_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/orders", web::post().to(add_orders))
        .route("/roles", web::post().to(grant_role))
        .route("/roles", web::delete().to(revoke_role));
}

fn bad(msg: impl Into<String>) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"detail": msg.into()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrdersBody {
    offering_uuid: Option<String>,
    project_uuid: Option<String>,
    #[serde(rename = "type")]
    type_: Option<String>,
    resource_uuid: Option<String>,
    state: Option<String>,
    count: Option<usize>,
}

async fn add_orders(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let b: OrdersBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad(format!("invalid body: {e}")),
    };
    let count = b.count.unwrap_or(1);
    if count == 0 || count > MAX_ORDERS {
        return bad(format!("count must be between 1 and {MAX_ORDERS}"));
    }
    let type_ = b.type_.unwrap_or_else(|| "Create".into());
    if !ORDER_TYPES.contains(&type_.as_str()) {
        return bad(format!("type must be one of {ORDER_TYPES:?}"));
    }
    let state = b.state.unwrap_or_else(|| "pending-provider".into());
    if !ORDER_STATES.contains(&state.as_str()) {
        return bad(format!("state must be one of {ORDER_STATES:?}"));
    }
    let mut w = shared.world.lock();
    let now = Utc::now();
    let (offering, project, existing) = if type_ == "Create" {
        let offering = b
            .offering_uuid
            .unwrap_or_else(|| demo::LUMI_OFFERING_UUID.into());
        let project = b
            .project_uuid
            .unwrap_or_else(|| demo::PROJECT_A_UUID.into());
        if w.offering(&offering).is_none() {
            return bad(format!("no offering {offering}"));
        }
        if w.project(&project).is_none() {
            return bad(format!("no project {project}"));
        }
        (offering, project, None)
    } else {
        let Some(r) = b.resource_uuid.as_deref().and_then(|u| w.resource(u)) else {
            return bad(format!(
                "a {type_} order needs the resource_uuid of a resource"
            ));
        };
        (r.offering.clone(), r.project.clone(), Some(r.uuid.clone()))
    };
    let plan = w
        .offering(&offering)
        .and_then(|o| o.plans.first().map(|p| p.uuid.clone()));
    let mut added = Vec::with_capacity(count);
    for _ in 0..count {
        let resource = match &existing {
            Some(r) => r.clone(),
            None => {
                let uuid = new_uuid();
                let name = format!("ordered-{}", &uuid[..8]);
                w.resources.push(Resource {
                    uuid: uuid.clone(),
                    name: name.clone(),
                    slug: name.clone(),
                    description: String::new(),
                    offering: offering.clone(),
                    project: project.clone(),
                    plan: plan.clone(),
                    state: "Creating".into(),
                    backend_id: String::new(),
                    limits: Default::default(),
                    attributes: demo::obj(json!({ "name": name })),
                    options: Default::default(),
                    report: vec![],
                    current_usages: Default::default(),
                    error_message: String::new(),
                    error_traceback: String::new(),
                    end_date: None,
                    created: now,
                    modified: now,
                });
                uuid
            }
        };
        let uuid = new_uuid();
        w.orders.push(Order {
            uuid: uuid.clone(),
            offering: offering.clone(),
            project: project.clone(),
            resource: resource.clone(),
            plan: if type_ == "Terminate" {
                None
            } else {
                plan.clone()
            },
            type_: type_.clone(),
            state: state.clone(),
            attributes: Default::default(),
            limits: Default::default(),
            created_by: demo::SP_OWNER_USER_UUID.into(),
            error_message: String::new(),
            error_traceback: String::new(),
            provider_rejection_comment: String::new(),
            consumer_rejection_comment: String::new(),
            request_comment: None,
            backend_id: String::new(),
            completed_at: None,
            created: now,
            modified: now,
            provider_reviewed_by: None,
            provider_reviewed_at: None,
            completes_at: None,
        });
        added.push(json!({ "uuid": uuid, "resource_uuid": resource }));
    }
    HttpResponse::Created().json(Value::Array(added))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    user_uuid: String,
    project_uuid: String,
    role: Option<String>,
}

fn role_body(body: &[u8]) -> Result<(String, String, String), HttpResponse> {
    let b: RoleBody =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid body: {e}")))?;
    let role = b.role.unwrap_or_else(|| "PROJECT.MEMBER".into());
    Ok((b.user_uuid, b.project_uuid, role))
}

async fn grant_role(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let (user, project, role) = match role_body(&body) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let mut w = shared.world.lock();
    if w.user(&user).is_none() {
        return bad(format!("no user {user}"));
    }
    if w.project(&project).is_none() {
        return bad(format!("no project {project}"));
    }
    let held = |g: &RoleGrant| g.user == user && g.project == project && g.role == role;
    if w.roles.iter().any(held) {
        return HttpResponse::Ok().json(json!({"granted": false}));
    }
    w.roles.push(RoleGrant {
        user,
        project,
        role,
        created: Utc::now(),
    });
    HttpResponse::Created().json(json!({"granted": true}))
}

async fn revoke_role(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let (user, project, role) = match role_body(&body) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let mut w = shared.world.lock();
    let before = w.roles.len();
    w.roles
        .retain(|g| !(g.user == user && g.project == project && g.role == role));
    if w.roles.len() == before {
        return HttpResponse::NotFound().json(json!({"detail": "Not found."}));
    }
    HttpResponse::NoContent().finish()
}
