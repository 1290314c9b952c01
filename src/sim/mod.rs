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

mod control;
pub mod demo;
mod faults;
mod offerings;
mod orders;
mod render;
mod resources;
pub mod state;
mod usages;
mod users;

use actix_web::http::{Method, StatusCode};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use state::{Caller, World};
use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use subtle::ConstantTimeEq;

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
}

impl Shared {
    fn new(options: &SimOptions) -> Self {
        let caller = |sp: &str, customer: &str, user: &str| Caller {
            sp: sp.into(),
            customer: customer.into(),
            user: user.into(),
        };
        Self {
            world: Mutex::new(demo::world(Utc::now())),
            faults: Mutex::new(faults::Faults::default()),
            calls: Mutex::new(VecDeque::new()),
            tokens: vec![
                (
                    options.token.as_bytes().to_vec(),
                    caller(
                        demo::SERVICE_PROVIDER_UUID,
                        demo::SP_CUSTOMER_UUID,
                        demo::SP_OWNER_USER_UUID,
                    ),
                ),
                (
                    demo::OTHER_SP_TOKEN.as_bytes().to_vec(),
                    caller(
                        demo::OTHER_SP_UUID,
                        demo::OTHER_SP_CUSTOMER_UUID,
                        demo::OTHER_SP_OWNER_USER_UUID,
                    ),
                ),
            ],
        }
    }

    /// Back to the demo data; faults and recorded calls are cleared.
    pub fn reset(&self) {
        let mut world = self.world.lock();
        let delay = world.self_processing_delay;
        *world = demo::world(Utc::now());
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

/// An HTTP answer built by a handler (success or error alike).
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
    /// An HTML page instead of JSON (Django's error pages).
    pub html: Option<&'static str>,
}

pub(crate) type Res = Result<Reply, Reply>;

impl Reply {
    pub fn new(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            headers: vec![],
            html: None,
        }
    }
    pub fn ok(body: Value) -> Self {
        Self::new(StatusCode::OK, body)
    }
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: None,
            headers: vec![],
            html: None,
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, json!({"detail": "Not found."}))
    }
    pub fn bad(body: Value) -> Self {
        Self::new(StatusCode::BAD_REQUEST, body)
    }
    /// `{"field": ["msg"]}`
    pub fn field(field: &str, msg: impl Into<String>) -> Self {
        Self::bad(json!({ field: [msg.into()] }))
    }
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            json!({"detail": "You do not have permission to perform this action."}),
        )
    }
    /// Waldur's `StateValidator` (IncorrectStateException).
    pub fn conflict(valid: &[&str]) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            json!({ "detail": format!("Valid states for operation: {}.", valid.join(", ")) }),
        )
    }
    pub fn method_not_allowed(m: &Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({ "detail": format!("Method \"{m}\" not allowed.") }),
        )
    }

    /// Django's production 500 page: what Waldur answers when a view raises (for example
    /// `set_backend_id` without `backend_id`).
    pub fn server_error() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: None,
            headers: vec![],
            html: Some(SERVER_ERROR_PAGE),
        }
    }

    fn into_response(self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status);
        for (k, v) in &self.headers {
            b.insert_header((*k, v.as_str()));
        }
        if let Some(page) = self.html {
            return b.content_type("text/html; charset=utf-8").body(page);
        }
        match self.body {
            Some(v) => b.content_type("application/json").body(v.to_string()),
            None => b.finish(),
        }
    }
}

/// One API request, as the (synchronous) handlers see it.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub segs: Vec<&'a str>,
    pub query: Vec<(String, String)>,
    pub body: &'a [u8],
    /// `http://host:port/api/`
    pub base: String,
    /// `http://host:port/api/...path` (no query), for `Link`.
    pub url: String,
    pub caller: Caller,
    pub now: DateTime<Utc>,
    /// Write `Link` in the simpler page-number form (see [`World::page_number_links`]).
    pub page_number_links: bool,
}

impl Req<'_> {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// All values of a repeatable filter (`?state=OK&state=Erred`); empty values are ignored.
    pub fn q_all(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn is_get(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }
    /// Allow only these methods (HEAD counts as GET).
    pub fn allow(&self, methods: &[Method]) -> Result<(), Reply> {
        let m = if self.method == Method::HEAD {
            Method::GET
        } else {
            self.method.clone()
        };
        if methods.contains(&m) {
            Ok(())
        } else {
            Err(Reply::method_not_allowed(&self.method))
        }
    }
    /// The JSON body as an object; an empty body is `{}` (like DRF's empty `request.data`).
    pub fn json(&self) -> Result<Map<String, Value>, Reply> {
        if self.body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(self.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => {
                let kind = match other {
                    Value::Array(_) => "list",
                    Value::String(_) => "str",
                    Value::Number(_) => "int",
                    Value::Bool(_) => "bool",
                    _ => "NoneType",
                };
                Err(Reply::bad(json!({"non_field_errors": [
                    format!("Invalid data. Expected a dictionary, but got {kind}.")
                ]})))
            }
            Err(e) => Err(Reply::bad(
                json!({"detail": format!("JSON parse error - {e}")}),
            )),
        }
    }

    /// Apply `?field=a&field=b` to one object.
    pub fn select_fields(&self, v: Value) -> Value {
        let fields = self.q_all("field");
        if fields.is_empty() {
            return v;
        }
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(k, _)| fields.contains(&k.as_str()))
                    .collect(),
            ),
            other => other,
        }
    }

    /// A retrieve answer (200, `field` applied).
    pub fn one(&self, v: Value) -> Res {
        Ok(Reply::ok(self.select_fields(v)))
    }

    /// A paginated list answer: DRF page-number pagination with Waldur's `Link` header.
    pub fn list(&self, items: Vec<Value>) -> Res {
        self.list_with(items, |v| v)
    }

    /// [`Req::list`] of objects rendered only when they are on the page asked for, so a page of
    /// a list of tens of thousands costs what the page costs (as Waldur's database does).
    pub fn list_with<T>(&self, items: Vec<T>, render: impl Fn(T) -> Value) -> Res {
        let total = items.len();
        if self.method == Method::HEAD {
            return Ok(Reply::empty(StatusCode::OK).header("X-Result-Count", total.to_string()));
        }
        let page_size = self
            .q("page_size")
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .map(|n| n.min(MAX_PAGE_SIZE))
            .unwrap_or(DEFAULT_PAGE_SIZE);
        let pages = total.div_ceil(page_size).max(1);
        let page = match self.q("page") {
            None => 1,
            Some("last") => pages,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if n >= 1 && n <= pages => n,
                _ => {
                    return Err(Reply::new(
                        StatusCode::NOT_FOUND,
                        json!({"detail": "Invalid page."}),
                    ));
                }
            },
        };
        let body: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * page_size)
            .take(page_size)
            .map(|v| self.select_fields(render(v)))
            .collect();
        let mut reply = Reply::ok(Value::Array(body)).header("X-Result-Count", total.to_string());
        let links = if self.page_number_links {
            self.page_number_link_header(page, pages)
        } else {
            self.waldur_link_header(page, pages)
        };
        if !links.is_empty() {
            reply = reply.header("Link", links.join(", "));
        }
        Ok(reply)
    }

    /// Waldur's `LinkHeaderPagination` (DRF's page-number pagination helpers): `first` and `last`
    /// always, even on a single page, `prev` and `next` where they exist, in that order. `first`
    /// (and `prev` from page 2) is the URL without `page=` (DRF's `remove_query_param`); `next`
    /// and `last` set it (`replace_query_param`, so a single page's `last` says `page=1`). Both
    /// re-encode the query sorted by key.
    fn waldur_link_header(&self, page: usize, pages: usize) -> Vec<String> {
        let mut links = vec![format!("<{}>; rel=\"first\"", self.drf_page_url(None))];
        if page > 1 {
            let prev = (page > 2).then(|| page - 1);
            links.push(format!("<{}>; rel=\"prev\"", self.drf_page_url(prev)));
        }
        if page < pages {
            links.push(format!(
                "<{}>; rel=\"next\"",
                self.drf_page_url(Some(page + 1))
            ));
        }
        links.push(format!(
            "<{}>; rel=\"last\"",
            self.drf_page_url(Some(pages))
        ));
        links
    }

    /// This request's URL with `page` removed (`None`) or set.
    fn drf_page_url(&self, page: Option<usize>) -> String {
        let mut pairs: Vec<(&str, String)> = (self.query.iter())
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if let Some(page) = page {
            pairs.push(("page", page.to_string()));
        }
        // Python's `sorted(parse_qs(...).items())`: by key, a key's values in their order.
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        if pairs.is_empty() {
            return self.url.clone();
        }
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            ser.append_pair(k, &v);
        }
        format!("{}?{}", self.url, ser.finish())
    }

    /// The simpler form some page-number paginators write: only the links that lead elsewhere,
    /// each with an explicit `page=`, the query's order kept.
    fn page_number_link_header(&self, page: usize, pages: usize) -> Vec<String> {
        let mut links = vec![];
        if page > 1 {
            links.push(format!("<{}>; rel=\"first\"", self.page_url(1)));
            links.push(format!("<{}>; rel=\"prev\"", self.page_url(page - 1)));
        }
        if page < pages {
            links.push(format!("<{}>; rel=\"next\"", self.page_url(page + 1)));
            links.push(format!("<{}>; rel=\"last\"", self.page_url(pages)));
        }
        links
    }

    fn page_url(&self, page: usize) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        let mut replaced = false;
        for (k, v) in &self.query {
            if k == "page" {
                if !replaced {
                    ser.append_pair("page", &page.to_string());
                    replaced = true;
                }
            } else {
                ser.append_pair(k, v);
            }
        }
        if !replaced {
            ser.append_pair("page", &page.to_string());
        }
        format!("{}?{}", self.url, ser.finish())
    }
}

/// A uuid as Django's `UUIDField` reads it (Python's `uuid.UUID`): hex digits in any case, dashes
/// anywhere, optional braces or `urn:uuid:` prefix. Returns the 32 lower-case hex digits Waldur
/// stores, or `None` (Waldur: `["Enter a valid UUID."]`).
pub(crate) fn parse_uuid(raw: &str) -> Option<String> {
    let s = raw.trim();
    let s = s.strip_prefix("urn:uuid:").unwrap_or(s);
    let s = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(s);
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_lowercase())
}

/// List filters validated the way Waldur's django-filter filter sets validate them, collecting
/// every field's error into one DRF 400 body:
/// - a uuid filter (`UUIDFilter`) takes any form Python's `uuid.UUID` reads, dashed or not, and
///   matches on the normalised value; anything else is `{"<name>": ["Enter a valid UUID."]}`;
/// - a choice filter (`MultipleChoiceFilter`) takes exactly the choice names (case matters):
///   `{"state": ["Select a valid choice. ok is not one of the available choices."]}`.
///
/// Empty values are ignored (django-filter skips an empty filter).
pub(crate) struct Filters<'r, 'a> {
    r: &'r Req<'a>,
    errors: Map<String, Value>,
}

impl<'r, 'a> Filters<'r, 'a> {
    pub fn new(r: &'r Req<'a>) -> Self {
        Self {
            r,
            errors: Map::new(),
        }
    }

    /// Every value of a (repeatable) uuid filter, normalised to 32 lower-case hex digits.
    pub fn uuids(&mut self, name: &str) -> Vec<String> {
        let mut out = vec![];
        for raw in self.r.q_all(name) {
            match parse_uuid(raw) {
                Some(u) => out.push(u),
                None => {
                    self.errors
                        .insert(name.to_string(), json!(["Enter a valid UUID."]));
                }
            }
        }
        out
    }

    /// A single-valued uuid filter (the last value counts, as Django's `QueryDict.get`).
    pub fn uuid(&mut self, name: &str) -> Option<String> {
        self.uuids(name).pop()
    }

    /// Every value of a multiple-choice filter; each must be one of `choices` exactly.
    pub fn choices(&mut self, name: &str, choices: &[&str]) -> Vec<String> {
        let mut out = vec![];
        for raw in self.r.q_all(name) {
            if choices.contains(&raw) {
                out.push(raw.to_string());
            } else if !self.errors.contains_key(name) {
                self.errors.insert(
                    name.to_string(),
                    json!([format!(
                        "Select a valid choice. {raw} is not one of the available choices."
                    )]),
                );
            }
        }
        out
    }

    /// The 400 answer when any filter was invalid.
    pub fn check(self) -> Result<(), Reply> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Reply::bad(Value::Object(self.errors)))
        }
    }
}

/// Waldur's `o=` ordering of a list: oldest first (`o=created`, and the default: the models
/// are ordered by creation) unless `o=-created`. Other fields are not modelled and leave the
/// default.
pub(crate) fn newest_first(r: &Req) -> bool {
    r.q_all("o")
        .iter()
        .flat_map(|v| v.split(','))
        .next()
        .is_some_and(|o| o.trim() == "-created")
}

/// Orders a list by `key` (its creation time) as [`newest_first`] says.
pub(crate) fn order_by_created<T, K: Ord>(r: &Req, items: &mut [T], key: impl Fn(&T) -> K) {
    items.sort_by_key(|x| key(x));
    if newest_first(r) {
        items.reverse();
    }
}

pub(crate) const DEFAULT_PAGE_SIZE: usize = 10;
pub(crate) const MAX_PAGE_SIZE: usize = 300;

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

/// Django's production 500 page (`DEBUG = False`): HTML, not JSON.
const SERVER_ERROR_PAGE: &str = "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n\
     </head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n";

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
            .service(web::scope("/__sim").configure(control::configure))
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

/// Start on an already-bound listener (port 0 in tests), spawned on the current tokio runtime.
pub fn start(listener: TcpListener, options: SimOptions) -> std::io::Result<SimServer> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(&options));
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
