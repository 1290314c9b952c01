//! The site API: routes, shared state, and request parsing rules.
//!
//! One module per resource holds its request/response types, validation and handlers; handlers
//! stay thin. Everything under `/v1` needs a site token ([`crate::auth::SiteIdentity`]), which
//! finds the [`crate::auth::SiteRegistry`] in the app data beside [`AppState`].

pub mod allocations;
pub mod body;
pub mod component_maps;
pub mod events;
pub mod fallback;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod middleware;
pub mod names;
pub mod openapi;
pub mod orders;
pub mod people;
pub mod reads;
pub mod resources;
pub mod responses;
pub mod submit;
pub mod upstream_failure;
pub mod usage;
pub mod users;
pub mod views;
pub mod whoami;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::web;
use tokio::sync::Notify;

use crate::config::Config;
use crate::error::ApiError;
use crate::queue::JobStore;
use crate::upstream::directory::Directory;

/// What every handler can reach.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn JobStore>,
    /// Cached lookups in Puhuri (which offering a resource is in, an offering's components).
    pub directory: Arc<Directory>,
    /// Wakes an idle delivery loop when work is stored.
    pub wake: Arc<Notify>,
    /// Set while the delivery workers run; `/readyz` reports it.
    pub workers_running: Arc<AtomicBool>,
    /// The sites' event lanes (`/v1/events`).
    pub events: Arc<crate::events::EventHub>,
    /// The built-in simulator stands in for Puhuri.
    pub sandbox: bool,
    /// The service provider behind the sites' offerings when it is known at start: configured
    /// (`upstream.service_provider_uuid`), or the simulator's in sandbox mode. `None`: looked up
    /// through an offering's organisation.
    pub service_provider_uuid: Option<String>,
    /// Each further Puhuri identity's client, by name: an allocator's site reads with its own
    /// identity's token, never the service provider's.
    pub identities: std::collections::BTreeMap<String, crate::upstream::WaldurClient>,
    /// What a username must look like (`limits.username_pattern`, or the default rule).
    pub username_rule: crate::domain::UsernameRule,
    /// "Now" for values the API derives at arrival (a report's default month): the system
    /// clock, or a test's.
    pub clock: crate::domain::Clock,
    /// Turns `true` when the gateway begins to shut down: a request waiting for its job's
    /// outcome (`Prefer: wait`) answers at once with the job as it stands.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    pub fn workers_running(&self) -> bool {
        self.workers_running.load(Ordering::Relaxed)
    }
}

/// Registers every route and the body/query/path parsing rules: the documented routes
/// ([`routes`]), Swagger UI at `/docs/` with the document at `/openapi.json`, `/docs` redirected
/// there, and the 404/405 answer for anything else ([`fallback::no_route`]).
pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize, sandbox: bool) {
    cfg.app_data(body::BodyLimit(max_body_bytes))
        .app_data(web::PayloadConfig::new(max_body_bytes))
        .app_data(web::QueryConfig::default().error_handler(|err, _| {
            ApiError::InvalidQuery(format!("the query string is not valid: {err}")).into()
        }))
        .app_data(web::PathConfig::default().error_handler(|err, _| {
            ApiError::NotFound(format!("the path is not valid: {err}")).into()
        }));
    // The paths it collects are dropped here: the document served is `openapi::document()`,
    // collected by the same function.
    routes(&mut utoipa_actix_web::service_config::ServiceConfig::new(
        cfg,
    ));
    cfg.service(openapi::swagger_ui(sandbox))
        // `/docs` without its slash is where a person types it: a GET (or HEAD) there is
        // redirected; another method is a 405 like on `/docs/` (the app's default service).
        .service(
            web::resource("/docs").route(web::get().to(|| async { web::Redirect::to("/docs/") })),
        )
        .default_service(web::to(fallback::no_route));
}

/// Every route of the OpenAPI document, each registered once: one `.service(handler)` both
/// routes the handler in actix and adds its `#[utoipa::path]` entry to the document
/// ([`openapi::document`] collects them from this same function), so a route cannot be served
/// undocumented or documented unserved. A handler's path is its actix attribute's, under the
/// scope it is registered in (`/v1` here, not repeated in the handler).
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    use utoipa_actix_web::scope;
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(metrics::prometheus)
        .service(
            scope("/v1")
                .service(whoami::whoami)
                .service(usage::report_usage)
                .service(usage::report_usage_batch)
                .service(jobs::list_jobs)
                .service(jobs::get_job)
                .service(jobs::retry_job)
                .service(jobs::cancel_job)
                .service(events::list_events)
                .service(events::replay_events)
                .service(orders::list_orders)
                .service(orders::get_order)
                .service(orders::approve_order)
                .service(orders::reject_order)
                .service(orders::order_done)
                .service(orders::order_erred)
                .service(resources::list_resources)
                .service(resources::get_resource)
                .service(resources::resource_team)
                .service(resources::resource_usage)
                .service(resources::set_backend_id)
                .service(resources::set_state)
                .service(resources::submit_report)
                .service(resources::set_limits)
                .service(resources::get_offering)
                .service(users::set_offering_username)
                .service(users::set_username)
                .service(people::list_users)
                .service(people::list_ssh_keys)
                .service(people::list_projects)
                .service(people::list_project_permissions)
                .service(allocations::reads::list_offerings)
                .service(allocations::reads::get_offering)
                .service(allocations::reads::list_projects)
                .service(allocations::reads::list_orders)
                .service(allocations::reads::list_resources)
                .service(allocations::writes::create_allocation)
                .service(allocations::writes::approve_order)
                .service(allocations::writes::reject_order)
                .service(allocations::writes::cancel_order)
                .service(allocations::writes::update_allocation)
                .service(allocations::writes::update_options)
                .service(allocations::writes::update_limits)
                .service(allocations::writes::terminate),
        );
}

/// serde's message names the field and position; that helps a script author and holds no secret.
pub fn describe_serde_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!("the body is not valid JSON: {e}"),
        Category::Data => format!("the body does not match this operation: {e}"),
        Category::Io => "the body could not be read".into(),
    }
}
