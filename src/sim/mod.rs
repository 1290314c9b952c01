//! The Waldur simulator: an in-process stand-in for Puhuri Core (Waldur MasterMind).
//!
//! Why it exists: every test of the gateway, the zero-configuration sandbox and sites trying their
//! integration need an upstream that behaves like Waldur — token auth, the order and resource
//! state machines with their 409s, DRF-shaped 400 bodies, 404 for objects the caller cannot see,
//! page-number pagination with `Link` and `X-Result-Count`, set_usage upsert semantics — and that
//! can also misbehave on demand (faults) and tell a test exactly what reached it (call recording).
//! The contract it reproduces is `upstream/CONTRACT.md`; the control API is described in
//! `src/sim/README.md`.
//!
//! How it is built: one actix-web app. `/__sim/...` is the control API (`control.rs`). Every other
//! path goes through [`api_entry`], which applies injected faults (`faults.rs`), records the call,
//! authenticates the token, locks the world (`state.rs`, never across an `.await`) and dispatches on
//! the path segments to the handler modules (`resources.rs`, `orders.rs`, `usages.rs`,
//! `users.rs`, `offerings.rs`). Handlers are synchronous functions returning a [`Reply`], so a
//! request is one atomic step on the world, like one database transaction upstream. Dispatch is by
//! hand (a `match` on the segments) rather than actix routes because it makes the Waldur rules easy
//! to apply uniformly: trailing slash required, DRF's 404/405 bodies, `HEAD` on lists.

mod allocator_demo;
mod consumer;
mod control;
mod control_watch;
pub mod demo;
mod demo_ids;
mod faults;
mod model;
mod offering_people;
mod offerings;
mod orders;
mod render;
mod render_people;
mod reply;
mod request;
mod resources;
pub mod state;
mod usages;
mod users;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{Value, json};
use state::{Caller, World};
use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use subtle::ConstantTimeEq;

pub(crate) use reply::{Reply, Res};
pub(crate) use request::{Filters, Req, order_by_created, parse_uuid};

/// Options of a simulator instance.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The demo service provider's token (what the gateway is configured with).
    pub token: String,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            token: demo::TOKEN.to_string(),
        }
    }
}

/// A running simulator.
pub struct SimServer {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl SimServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT/api/`
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }
    /// `http://127.0.0.1:PORT/__sim/`
    pub fn control_url(&self) -> String {
        format!("http://{}/__sim/", self.addr)
    }
    /// Stop at once (requests still running, e.g. injected hangs, are dropped).
    pub async fn stop(self) {
        self.handle.stop(false).await;
        let _ = self.task.await;
    }
}

/// Most calls kept by the recorder; older ones are dropped first.
const MAX_RECORDED_CALLS: usize = 50_000;

/// State shared by all workers.
pub(crate) struct Shared {
    pub world: Mutex<World>,
    pub faults: Mutex<faults::Faults>,
    pub calls: Mutex<VecDeque<Value>>,
    tokens: Vec<(Vec<u8>, Caller)>,
    /// Whether the demo resource allocator (its token, organisations, projects and offering) is
    /// part of the world ([`start_with_allocator`]).
    allocator: bool,
}

impl Shared {
    fn new(options: &SimOptions, allocator: bool) -> Self {
        let caller = |token: &'static str, sp: &str, customer: &str, user: &str| Caller {
            token,
            sp: sp.into(),
            customer: customer.into(),
            user: user.into(),
        };
        Self {
            world: Mutex::new(demo_world(Utc::now(), allocator)),
            faults: Mutex::new(faults::Faults::default()),
            calls: Mutex::new(VecDeque::new()),
            tokens: vec![
                (
                    options.token.as_bytes().to_vec(),
                    caller(
                        "sp",
                        demo::SERVICE_PROVIDER_UUID,
                        demo::SP_CUSTOMER_UUID,
                        demo::SP_OWNER_USER_UUID,
                    ),
                ),
                (
                    demo::OTHER_SP_TOKEN.as_bytes().to_vec(),
                    caller(
                        "other-sp",
                        demo::OTHER_SP_UUID,
                        demo::OTHER_SP_CUSTOMER_UUID,
                        demo::OTHER_SP_OWNER_USER_UUID,
                    ),
                ),
            ]
            .into_iter()
            .chain(allocator.then(|| {
                (
                    demo::ALLOCATOR_TOKEN.as_bytes().to_vec(),
                    caller(
                        "allocator",
                        "",
                        demo::ALLOCATOR_CUSTOMER_UUID,
                        demo::ALLOCATOR_USER_UUID,
                    ),
                )
            }))
            .collect(),
            allocator,
        }
    }

    /// Back to the demo data; faults and recorded calls are cleared.
    pub fn reset(&self) {
        let mut world = self.world.lock();
        let delay = world.self_processing_delay;
        *world = demo_world(Utc::now(), self.allocator);
        world.self_processing_delay = delay;
        drop(world);
        *self.faults.lock() = faults::Faults::default();
        self.calls.lock().clear();
    }

    fn record(&self, call: Value) {
        let mut calls = self.calls.lock();
        if calls.len() >= MAX_RECORDED_CALLS {
            calls.pop_front();
        }
        calls.push_back(call);
    }

    /// DRF `TokenAuthentication`: keyword `Token` (case-insensitive), constant-time comparison.
    fn authenticate(&self, req: &HttpRequest) -> Result<Caller, Reply> {
        let unauthorized = |detail: &str| {
            Reply::new(StatusCode::UNAUTHORIZED, json!({ "detail": detail }))
                .header("WWW-Authenticate", "Token")
        };
        let Some(header) = req.headers().get("authorization") else {
            return Err(unauthorized(
                "Authentication credentials were not provided.",
            ));
        };
        let Ok(header) = header.to_str() else {
            return Err(unauthorized(
                "Invalid token header. Token string should not contain invalid characters.",
            ));
        };
        let mut parts = header.split_whitespace();
        let keyword = parts.next().unwrap_or("");
        if !keyword.eq_ignore_ascii_case("token") {
            return Err(unauthorized(
                "Authentication credentials were not provided.",
            ));
        }
        let Some(token) = parts.next() else {
            return Err(unauthorized(
                "Invalid token header. No credentials provided.",
            ));
        };
        if parts.next().is_some() {
            return Err(unauthorized(
                "Invalid token header. Token string should not contain spaces.",
            ));
        }
        let mut found: Option<&Caller> = None;
        for (known, caller) in &self.tokens {
            // Compare against every token so timing does not depend on which one matched.
            if bool::from(known.as_slice().ct_eq(token.as_bytes())) && found.is_none() {
                found = Some(caller);
            }
        }
        found.cloned().ok_or_else(|| unauthorized("Invalid token."))
    }
}

/// Dispatch an authenticated API request on its path segments.
fn route(w: &mut World, r: &Req) -> Res {
    match r.segs.as_slice() {
        ["users"] => users::list_users(w, r),
        ["keys"] => users::list_keys(w, r),
        ["marketplace-provider-resources"] => resources::list(w, r),
        ["marketplace-provider-resources", id] => resources::retrieve(w, r, id),
        ["marketplace-provider-resources", id, action] => {
            resources::provider_action(w, r, id, action)
        }
        ["projects"] => consumer::projects(w, r, None),
        ["projects", id] => consumer::projects(w, r, Some(id)),
        ["marketplace-resources"] => consumer::resources(w, r),
        ["marketplace-resources", id] => resources::consumer_detail(w, r, id),
        ["marketplace-resources", id, action] => resources::consumer_action(w, r, id, action),
        ["marketplace-orders"] => orders::collection(w, r),
        ["marketplace-orders", id] => orders::retrieve(w, r, id),
        ["marketplace-orders", id, action] => orders::action(w, r, id, action),
        ["marketplace-component-usages"] => usages::list(w, r),
        ["marketplace-component-usages", "set_usage"] => usages::set_usage(w, r),
        ["marketplace-offering-users"] => users::offering_users(w, r),
        ["marketplace-offering-users", id] => users::offering_user_detail(w, r, id),
        ["marketplace-service-providers"] => users::service_providers(w, r),
        ["marketplace-service-providers", id] => users::service_provider_detail(w, r, id),
        ["marketplace-service-providers", id, action] => {
            users::service_provider_action(w, r, id, action)
        }
        ["marketplace-provider-offerings"] => offerings::list(w, r, false),
        ["marketplace-provider-offerings", id] => offerings::retrieve(w, r, id, false),
        ["marketplace-provider-offerings", id, action] => offering_people::action(w, r, id, action),
        ["marketplace-public-offerings"] => offerings::list(w, r, true),
        ["marketplace-public-offerings", id] => offerings::retrieve(w, r, id, true),
        ["marketplace-public-offerings", id, "plans"] => offerings::plans(w, r, id, None),
        ["marketplace-public-offerings", id, "plans", plan] => {
            offerings::plans(w, r, id, Some(plan))
        }
        _ => Err(Reply::not_found()),
    }
}

/// Sleeps until `deadline` within a fraction of a millisecond. tokio's timer fires up to a couple of
/// milliseconds late (1 ms ticks, then the wake-up), which would make a 20 ms latency fault 21-22 ms;
/// so the timer covers all but the last 3 ms, and a thread of the blocking pool sleeps the rest.
async fn sleep_precisely_until(deadline: tokio::time::Instant) {
    const TIMER_SLACK: std::time::Duration = std::time::Duration::from_millis(3);
    if let Some(coarse) = deadline.checked_sub(TIMER_SLACK) {
        tokio::time::sleep_until(coarse).await;
    }
    let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// Entry point of every non-control request.
async fn api_entry(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let path = req.path().to_string();
    let query_string = req.query_string().to_string();
    if !path.starts_with("/api/") {
        return Reply::not_found().into_response();
    }
    let received = Utc::now();
    // Added latency counts from arrival, so the simulator's own work does not lengthen it.
    let arrived = tokio::time::Instant::now();
    let method = req.method().clone();
    let body_json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice::<Value>(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let mut call = json!({
        "method": method.as_str(),
        "path": path,
        "query": query_string,
        "body": body_json,
        "status": null,
        "time": render::ts(received),
        "fault": null,
        // Which of the simulator's tokens the call carried (never the token itself).
        "token": match shared.authenticate(&req) {
            Ok(caller) => json!(caller.token),
            Err(_) if req.headers().contains_key("authorization") => json!("invalid"),
            Err(_) => Value::Null,
        },
    });

    // Injected faults first: they model the network and proxies in front of Waldur.
    let effect = shared.faults.lock().decide(method.as_str(), &path);
    if effect.latency_ms > 0 {
        sleep_precisely_until(arrived + std::time::Duration::from_millis(effect.latency_ms)).await;
    }
    match effect.action {
        faults::Action::None => {}
        faults::Action::Hang(ms) => {
            call["fault"] = json!("hang");
            shared.record(call);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            return HttpResponse::GatewayTimeout().finish();
        }
        faults::Action::Drop => {
            call["fault"] = json!("drop");
            shared.record(call);
            faults::abort_connection(&req);
            return HttpResponse::InternalServerError().finish();
        }
        faults::Action::Error(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            call["fault"] = json!("error");
            call["status"] = json!(status.as_u16());
            shared.record(call);
            return match status.as_u16() {
                // Waldur's own bodies for the statuses it produces itself.
                403 => Reply::forbidden().into_response(),
                500 => server_error_page(),
                _ => Reply::new(
                    status,
                    json!({"detail": format!("Simulated upstream error ({}).", status.as_u16())}),
                )
                .into_response(),
            };
        }
        faults::Action::Throttle(secs) => {
            call["fault"] = json!("throttle");
            call["status"] = json!(429);
            shared.record(call);
            return Reply::new(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"detail": format!("Request was throttled. Expected available in {secs} seconds.")}),
            )
            .header("Retry-After", secs.to_string())
            .into_response();
        }
    }

    let reply = handle_api(&req, &path, &query_string, &body, &shared, received);
    call["status"] = json!(reply.status.as_u16());
    shared.record(call);
    reply.into_response()
}

fn server_error_page() -> HttpResponse {
    Reply::server_error().into_response()
}

fn handle_api(
    req: &HttpRequest,
    path: &str,
    query_string: &str,
    body: &[u8],
    shared: &Shared,
    now: DateTime<Utc>,
) -> Reply {
    // Django's APPEND_SLASH would redirect; the simulator insists on the canonical form.
    if !path.ends_with('/') {
        return Reply::not_found();
    }
    let caller = match shared.authenticate(req) {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    let info = req.connection_info();
    let origin = format!("{}://{}", info.scheme(), info.host());
    let segs: Vec<&str> = path["/api/".len()..]
        .trim_end_matches('/')
        .split('/')
        .collect();
    let r = Req {
        method: req.method().clone(),
        segs,
        query: url::form_urlencoded::parse(query_string.as_bytes())
            .into_owned()
            .collect(),
        body,
        base: format!("{origin}/api/"),
        url: format!("{origin}{path}"),
        caller,
        now,
        page_number_links: false,
    };
    let mut world = shared.world.lock();
    world.advance(now);
    let r = Req {
        page_number_links: world.page_number_links,
        ..r
    };
    match route(&mut world, &r) {
        Ok(reply) | Err(reply) => reply,
    }
}

fn build_server(
    listener: TcpListener,
    shared: Arc<Shared>,
    workers: usize,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::from(shared);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .service(
                web::scope("/__sim")
                    .configure(control::configure)
                    .configure(control_watch::configure),
            )
            .default_service(web::to(api_entry))
    })
    .on_connect(faults::on_connect)
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}

/// The demo world, with the demo resource allocator's objects when `allocator`.
fn demo_world(now: DateTime<Utc>, allocator: bool) -> World {
    let mut w = demo::world(now);
    if allocator {
        allocator_demo::add(&mut w, now - chrono::Duration::days(365));
    }
    w
}

/// Start on an already-bound listener (port 0 in tests), spawned on the current tokio runtime.
pub fn start(listener: TcpListener, options: SimOptions) -> std::io::Result<SimServer> {
    start_world(listener, options, false)
}

/// [`start`] with the demo resource allocator too: its token [`demo::ALLOCATOR_TOKEN`], its
/// organisation and projects, and the offering it orders from (what the sandbox runs).
pub fn start_with_allocator(
    listener: TcpListener,
    options: SimOptions,
) -> std::io::Result<SimServer> {
    start_world(listener, options, true)
}

fn start_world(
    listener: TcpListener,
    options: SimOptions,
    allocator: bool,
) -> std::io::Result<SimServer> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(&options, allocator));
    let server = build_server(listener, shared, 2)?;
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(SimServer { addr, handle, task })
}

/// `puhuri-gateway sim`: run until Ctrl-C / SIGTERM.
pub async fn run_standalone(listen: SocketAddr, options: SimOptions) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)?;
    let sim = start(listener, options)?;
    tracing::info!(api = %sim.api_url(), control = %sim.control_url(), "Waldur simulator running");
    shutdown_signal().await;
    tracing::info!("stopping the Waldur simulator");
    sim.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
