//! The control API under `/__sim/` (no Waldur token): recorded calls, reset, faults, object state
//! and billing-period control. Tests use it to arrange misbehaviour and to assert exactly what
//! reached "Puhuri". Documented in `src/sim/README.md`.

use super::faults::FaultSpec;
use super::render;
use super::state::month_start;
use super::{Shared, demo};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/calls", web::get().to(get_calls))
        .route("/calls", web::delete().to(delete_calls))
        .route("/reset", web::post().to(reset))
        .route("/faults", web::get().to(list_faults))
        .route("/faults", web::post().to(add_fault))
        .route("/faults", web::delete().to(clear_faults))
        .route("/faults/{id}", web::delete().to(delete_fault))
        .route("/resources", web::post().to(seed_resources))
        .route("/bulk", web::post().to(seed_bulk))
        .route("/state/{kind}/{uuid}", web::get().to(get_state))
        .route("/periods", web::get().to(get_periods))
        .route("/periods/close", web::post().to(close_period))
        .route("/periods/open", web::post().to(open_period))
        .route("/info", web::get().to(info))
        .route("/settings", web::post().to(settings));
}

fn bad(msg: impl Into<String>) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"detail": msg.into()}))
}

#[derive(Deserialize)]
struct CallsQuery {
    path_prefix: Option<String>,
    method: Option<String>,
}

async fn get_calls(shared: web::Data<Shared>, q: web::Query<CallsQuery>) -> HttpResponse {
    let calls: Vec<Value> = shared
        .calls
        .lock()
        .iter()
        .filter(|c| {
            q.path_prefix
                .as_deref()
                .is_none_or(|p| c["path"].as_str().unwrap_or("").starts_with(p))
                && q.method
                    .as_deref()
                    .is_none_or(|m| c["method"].as_str().unwrap_or("").eq_ignore_ascii_case(m))
        })
        .cloned()
        .collect();
    HttpResponse::Ok().json(calls)
}

async fn delete_calls(shared: web::Data<Shared>) -> HttpResponse {
    shared.calls.lock().clear();
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Milliseconds after approval at which Waldur finishes a self-processed order; `null`: never.
    #[serde(default, with = "serde_with_null")]
    self_processing_delay_ms: Option<Option<u64>>,
    /// Offering uuid → offering type (`Marketplace.Basic`, `Marketplace.Slurm`, ...).
    #[serde(default)]
    offering_types: std::collections::BTreeMap<String, String>,
    /// Offerings where the token user may look but not act (replaces the set; `reset` empties it).
    #[serde(default)]
    read_only_offerings: Option<Vec<String>>,
    /// `Link` form: `waldur` (default) or `page_numbers`.
    #[serde(default)]
    link_form: Option<LinkForm>,
    /// Offering uuid → whether `update_options` creates an Update order
    /// (`plugin_options.create_orders_on_resource_option_change`).
    #[serde(default)]
    option_change_orders: std::collections::BTreeMap<String, bool>,
    /// Offering uuid → the order options it publishes (Waldur's `Offering.options`); `null`:
    /// none.
    #[serde(default)]
    offering_options: std::collections::BTreeMap<String, serde_json::Value>,
    /// Offerings whose provider approves every order at once (replaces the set).
    #[serde(default)]
    auto_approve_offerings: Option<Vec<String>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum LinkForm {
    Waldur,
    PageNumbers,
}

/// Tells a missing key (`None`) from an explicit `null` (`Some(None)`).
mod serde_with_null {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
        Option::<u64>::deserialize(d).map(Some)
    }
}

/// `POST /__sim/settings`: how Waldur processes orders (see `src/sim/README.md`).
async fn settings(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let settings: Settings = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return bad(format!("invalid settings: {e}")),
    };
    let mut w = shared.world.lock();
    if let Some(unknown) = settings
        .offering_types
        .keys()
        .find(|uuid| w.offering(uuid).is_none())
    {
        return bad(format!("no offering {unknown}"));
    }
    if let Some(unknown) =
        (settings.read_only_offerings.iter().flatten()).find(|uuid| w.offering(uuid).is_none())
    {
        return bad(format!("no offering {unknown}"));
    }
    if let Some(unknown) = (settings.option_change_orders.keys())
        .chain(settings.offering_options.keys())
        .find(|uuid| w.offering(uuid).is_none())
    {
        return bad(format!("no offering {unknown}"));
    }
    if let Some(unknown) =
        (settings.auto_approve_offerings.iter().flatten()).find(|uuid| w.offering(uuid).is_none())
    {
        return bad(format!("no offering {unknown}"));
    }
    if let Some(auto) = settings.auto_approve_offerings {
        w.auto_approve_offerings = auto.into_iter().collect();
    }
    for (uuid, on) in settings.option_change_orders {
        if let Some(o) = w.offerings.iter_mut().find(|o| o.uuid == uuid) {
            o.option_change_orders = on;
        }
    }
    for (uuid, options) in settings.offering_options {
        if let Some(o) = w.offerings.iter_mut().find(|o| o.uuid == uuid) {
            o.published_options = options;
        }
    }
    if let Some(read_only) = settings.read_only_offerings {
        w.read_only_offerings = read_only.into_iter().collect();
    }
    if let Some(form) = settings.link_form {
        w.page_number_links = form == LinkForm::PageNumbers;
    }
    if let Some(delay) = settings.self_processing_delay_ms {
        w.self_processing_delay = delay.map(|ms| chrono::Duration::milliseconds(ms as i64));
    }
    for (uuid, type_) in settings.offering_types {
        if let Some(o) = w.offerings.iter_mut().find(|o| o.uuid == uuid) {
            o.type_ = type_;
        }
    }
    HttpResponse::Ok().json(json!({
        "self_processing_delay_ms": w.self_processing_delay.map(|d| d.num_milliseconds()),
        "read_only_offerings": w.read_only_offerings,
        "link_form": if w.page_number_links { "page_numbers" } else { "waldur" },
    }))
}

async fn reset(shared: web::Data<Shared>) -> HttpResponse {
    shared.reset();
    HttpResponse::Ok().json(json!({"status": "reset"}))
}

async fn list_faults(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(&shared.faults.lock().list)
}

async fn add_fault(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return bad(format!("invalid fault: {e}")),
    };
    match spec.normalise() {
        Ok(spec) => HttpResponse::Created().json(shared.faults.lock().add(spec)),
        Err(e) => bad(e),
    }
}

async fn clear_faults(shared: web::Data<Shared>) -> HttpResponse {
    shared.faults.lock().list.clear();
    HttpResponse::NoContent().finish()
}

async fn delete_fault(shared: web::Data<Shared>, id: web::Path<u64>) -> HttpResponse {
    if shared.faults.lock().remove(id.into_inner()) {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::NotFound().json(json!({"detail": "Not found."}))
    }
}

/// The most resources one `POST /__sim/resources` adds.
const MAX_SEEDED: usize = 100_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedBody {
    count: usize,
    offering_uuid: Option<String>,
    project_uuid: Option<String>,
    state: Option<String>,
    backend_id_prefix: Option<String>,
}

/// `POST /__sim/resources`: adds `count` resources (default: OK, in the demo LUMI offering and
/// project A, on its first plan, backend ids `<prefix><n>`), for load tests that need many
/// distinct upstream objects. Answers 201 with `[{"uuid", "backend_id"}]` in creation order.
async fn seed_resources(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let b: SeedBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad(format!("invalid body: {e}")),
    };
    if b.count == 0 || b.count > MAX_SEEDED {
        return bad(format!("count must be between 1 and {MAX_SEEDED}"));
    }
    let offering = b
        .offering_uuid
        .unwrap_or_else(|| demo::LUMI_OFFERING_UUID.into());
    let project = b
        .project_uuid
        .unwrap_or_else(|| demo::PROJECT_A_UUID.into());
    let state = b.state.unwrap_or_else(|| "OK".into());
    let prefix = b.backend_id_prefix.unwrap_or_else(|| "seeded-".into());
    let mut w = shared.world.lock();
    let Some(plan) = w
        .offering(&offering)
        .map(|o| o.plans.first().map(|p| p.uuid.clone()))
    else {
        return bad(format!("no offering {offering}"));
    };
    if w.project(&project).is_none() {
        return bad(format!("no project {project}"));
    }
    let start = w.resources.len();
    let now = Utc::now();
    let seeded: Vec<Value> = (0..b.count)
        .map(|n| {
            let uuid = super::state::new_uuid();
            let name = format!("seeded-{}", start + n);
            let backend_id = format!("{prefix}{}", start + n);
            w.resources.push(super::state::Resource {
                uuid: uuid.clone(),
                name: name.clone(),
                slug: name.clone(),
                description: String::new(),
                offering: offering.clone(),
                project: project.clone(),
                plan: plan.clone(),
                state: state.clone(),
                backend_id: backend_id.clone(),
                limits: Default::default(),
                attributes: demo::obj(json!({"name": name})),
                options: Default::default(),
                report: vec![],
                current_usages: Default::default(),
                error_message: String::new(),
                error_traceback: String::new(),
                end_date: None,
                created: now,
                modified: now,
            });
            json!({"uuid": uuid, "backend_id": backend_id})
        })
        .collect();
    HttpResponse::Created().json(seeded)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    projects: usize,
    users: usize,
    resources: usize,
    /// The offerings the resources are spread over (default: both of the demo provider's).
    offering_uuids: Option<Vec<String>>,
}

/// `POST /__sim/bulk`: a provider the size of a large site, for read-scale benchmarks.
/// Adds `projects` projects (in the demo consumer organisation), `users` users (user `n` holds
/// a member role in project `n mod projects` and has one SSH key) and `resources` OK resources
/// (resource `n` in project `n mod projects` and offering `n mod len(offering_uuids)`). Each
/// count is at most 100,000 and `projects` is at least 1. Answers 201 with the counts.
async fn seed_bulk(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let b: BulkBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad(format!("invalid body: {e}")),
    };
    if b.projects == 0
        || [b.projects, b.users, b.resources]
            .iter()
            .any(|n| *n > MAX_SEEDED)
    {
        return bad(format!(
            "projects must be 1 to {MAX_SEEDED}; users and resources at most {MAX_SEEDED}"
        ));
    }
    let offerings = b.offering_uuids.unwrap_or_else(|| {
        vec![
            demo::LUMI_OFFERING_UUID.into(),
            demo::SECOND_OFFERING_UUID.into(),
        ]
    });
    let mut w = shared.world.lock();
    let mut plans = Vec::new();
    for o in &offerings {
        match w.offering(o) {
            Some(found) => plans.push(found.plans.first().map(|p| p.uuid.clone())),
            None => return bad(format!("no offering {o}")),
        }
    }
    if plans.is_empty() {
        return bad("offering_uuids must name at least one offering");
    }
    let now = Utc::now();
    use super::state::{Project, Resource, RoleGrant, SshKey, User, new_uuid};
    let first = w.projects.len();
    for n in 0..b.projects {
        let name = format!("bulk-project-{}", first + n);
        w.projects.push(Project {
            uuid: new_uuid(),
            name: name.clone(),
            slug: name,
            description: String::new(),
            customer: demo::CONSUMER_CUSTOMER_UUID.into(),
            created: now,
        });
    }
    let project = |n: usize| first + n % b.projects;
    let first_user = w.users.len();
    for n in 0..b.users {
        let uuid = new_uuid();
        let username = format!("bulk{}", first_user + n);
        let project_uuid = w.projects[project(n)].uuid.clone();
        w.roles.push(RoleGrant {
            user: uuid.clone(),
            project: project_uuid,
            role: "PROJECT.MEMBER".into(),
            created: now,
        });
        w.keys.push(SshKey {
            uuid: new_uuid(),
            name: format!("{username}-key"),
            public_key: format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBulk{n:012} {username}"),
            user: uuid.clone(),
            fingerprint_md5: format!("bu:lk:{n:012}"),
            fingerprint_sha256: format!("SHA256:bulk{n:012}"),
            fingerprint_sha512: format!("SHA512:bulk{n:012}"),
            is_shared: false,
            type_: "ssh-ed25519".into(),
        });
        w.users.push(User {
            uuid,
            username: username.clone(),
            first_name: "Bulk".into(),
            last_name: format!("User {n}"),
            email: format!("{username}@example.org"),
            organization: String::new(),
            is_active: true,
            date_joined: now,
        });
    }
    let first_resource = w.resources.len();
    for n in 0..b.resources {
        let k = n % offerings.len();
        let name = format!("bulk-resource-{}", first_resource + n);
        let project_uuid = w.projects[project(n)].uuid.clone();
        w.resources.push(Resource {
            uuid: new_uuid(),
            name: name.clone(),
            slug: name.clone(),
            description: String::new(),
            offering: offerings[k].clone(),
            project: project_uuid,
            plan: plans[k].clone(),
            state: "OK".into(),
            backend_id: name.clone(),
            limits: Default::default(),
            attributes: demo::obj(json!({"name": name})),
            options: Default::default(),
            report: vec![],
            current_usages: Default::default(),
            error_message: String::new(),
            error_traceback: String::new(),
            end_date: None,
            created: now,
            modified: now,
        });
    }
    HttpResponse::Created()
        .json(json!({"projects": b.projects, "users": b.users, "resources": b.resources}))
}

/// `GET /__sim/state/{kind}/{uuid}`: any object, regardless of which token could see it.
async fn get_state(
    req: HttpRequest,
    shared: web::Data<Shared>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (kind, uuid) = path.into_inner();
    let info = req.connection_info();
    let base = format!("{}://{}/api/", info.scheme(), info.host());
    let mut w = shared.world.lock();
    w.advance(chrono::Utc::now());
    let v = match kind.as_str() {
        "resource" => w.resource(&uuid).map(|r| render::resource(&w, &base, r)),
        "order" => w.order(&uuid).map(|o| render::order(&w, &base, o)),
        "offering-user" => w
            .offering_users
            .iter()
            .find(|o| o.uuid == uuid)
            .map(|o| render::offering_user(&w, &base, o)),
        "usages" => w.resource(&uuid).map(|_| {
            Value::Array(
                w.usages
                    .iter()
                    .filter(|u| u.resource == uuid)
                    .map(|u| render::usage(&w, u))
                    .collect(),
            )
        }),
        "plan-periods" => w.resource(&uuid).map(|_| {
            let month = month_start(Utc::now().date_naive());
            Value::Array(
                w.plan_periods
                    .iter()
                    .filter(|p| p.resource == uuid)
                    .map(|p| render::plan_period(&w, p, month))
                    .collect(),
            )
        }),
        "offering" => w
            .offering(&uuid)
            .map(|o| render::offering(&w, &base, o, false)),
        "user" => w.user(&uuid).map(|u| render::user(&w, &base, u)),
        _ => {
            return bad(
                "kind must be one of resource, order, offering-user, usages, plan-periods, offering, user",
            );
        }
    };
    match v {
        Some(v) => HttpResponse::Ok().json(v),
        None => HttpResponse::NotFound().json(json!({"detail": "Not found."})),
    }
}

#[derive(Deserialize)]
struct MonthBody {
    /// `YYYY-MM` or any date within the month (`YYYY-MM-DD`).
    month: String,
}

fn parse_month(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d"))
        .ok()
        .map(month_start)
}

fn periods_view(shared: &Shared) -> Value {
    let w = shared.world.lock();
    let today = Utc::now().date_naive();
    let current = month_start(today);
    let recent: Vec<Value> = (0..4)
        .map(|n| {
            let m = super::state::months_back(today, n);
            json!({"month": m.format("%Y-%m").to_string(), "closed": w.month_closed(m, today)})
        })
        .collect();
    json!({
        "current_month": current.format("%Y-%m").to_string(),
        "rule": "the current and the previous calendar month are open, older months are closed",
        "closed": w.closed_months.iter().map(|m| m.format("%Y-%m").to_string()).collect::<Vec<_>>(),
        "opened": w.opened_months.iter().map(|m| m.format("%Y-%m").to_string()).collect::<Vec<_>>(),
        "recent": recent,
    })
}

async fn get_periods(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(periods_view(&shared))
}

async fn close_period(shared: web::Data<Shared>, body: web::Json<MonthBody>) -> HttpResponse {
    let Some(m) = parse_month(&body.month) else {
        return bad("month must be YYYY-MM");
    };
    {
        let mut w = shared.world.lock();
        w.opened_months.remove(&m);
        w.closed_months.insert(m);
    }
    HttpResponse::Ok().json(periods_view(&shared))
}

async fn open_period(shared: web::Data<Shared>, body: web::Json<MonthBody>) -> HttpResponse {
    let Some(m) = parse_month(&body.month) else {
        return bad("month must be YYYY-MM");
    };
    {
        let mut w = shared.world.lock();
        w.closed_months.remove(&m);
        w.opened_months.insert(m);
    }
    HttpResponse::Ok().json(periods_view(&shared))
}

/// `GET /__sim/info`: the demo identifiers, for humans trying the sandbox.
async fn info() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "service_provider_uuid": demo::SERVICE_PROVIDER_UUID,
        "sp_customer_uuid": demo::SP_CUSTOMER_UUID,
        "lumi_offering_uuid": demo::LUMI_OFFERING_UUID,
        "second_offering_uuid": demo::SECOND_OFFERING_UUID,
        "other_sp_uuid": demo::OTHER_SP_UUID,
        "resources": {
            "ok": demo::RESOURCE_OK_UUID,
            "creating": demo::RESOURCE_CREATING_UUID,
            "provisioning": demo::RESOURCE_PROVISIONING_UUID,
            "erred": demo::RESOURCE_ERRED_UUID,
            "slurm": demo::RESOURCE_SLURM_UUID,
        },
        "orders": {
            "pending_provider": demo::ORDER_PENDING_UUID,
            "executing": demo::ORDER_EXECUTING_UUID,
            "slurm_executing": demo::ORDER_SLURM_EXECUTING_UUID,
        },
    }))
}
