//! The simulator's world: plain data structures and the state machines that mutate them.
//!
//! Everything here is synchronous and lives behind one `parking_lot::Mutex` (see `mod.rs`), so a
//! request sees and changes a consistent world, exactly like one database transaction in Waldur.
//! Collections are `Vec`s, so listings keep insertion order and stay deterministic. The lookups a
//! delivery makes on every call (a resource by uuid, a resource's open plan period, a usage record by
//! (resource, component, month)) go through small hash indexes, so a world seeded with thousands of
//! resources for a load test (`POST /__sim/resources`) does not turn each call into a linear scan.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};

/// A new 32-hex (dash-less) UUID, as Waldur prints them.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// First day of the month of `d`.
pub fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("day 1 exists")
}

pub fn months_back(d: NaiveDate, n: u32) -> NaiveDate {
    month_start(d) - Months::new(n)
}

pub use super::model::*;

#[derive(Clone, Debug, Default)]
pub struct World {
    pub customers: Vec<Customer>,
    pub service_providers: Vec<ServiceProvider>,
    pub offerings: Vec<Offering>,
    pub projects: Vec<Project>,
    pub users: Vec<User>,
    pub keys: Vec<SshKey>,
    pub roles: Vec<RoleGrant>,
    pub resources: Vec<Resource>,
    pub orders: Vec<Order>,
    pub plan_periods: Vec<PlanPeriod>,
    pub usages: Vec<Usage>,
    pub offering_users: Vec<OfferingUser>,
    /// Months (first day) closed explicitly through the control API.
    pub closed_months: BTreeSet<NaiveDate>,
    /// Months (first day) reopened explicitly through the control API (overrides the default rule).
    pub opened_months: BTreeSet<NaiveDate>,
    /// How long after approval Waldur's order processor finishes an order of an offering it
    /// processes itself (`Marketplace.Basic`); `None`: never (the order waits in `executing`).
    pub self_processing_delay: Option<chrono::Duration>,
    /// Offerings on which the token user of their provider holds a role that may look but not
    /// act (`POST /__sim/settings` `read_only_offerings`): every provider action there is
    /// Waldur's 403 `{"detail": "You do not have permission to perform this action."}`.
    pub read_only_offerings: BTreeSet<String>,
    /// Write `Link` the way simpler page-number paginators do (only the links that lead
    /// elsewhere, each with `page=`) instead of Waldur's form (`POST /__sim/settings`
    /// `link_form`), so a client can be tried against both.
    pub page_number_links: bool,
    /// Offerings whose provider approves every order at once (`POST /__sim/settings`
    /// `auto_approve_offerings`; the demo allocator's offering starts in it).
    pub auto_approve_offerings: BTreeSet<String>,
    index: Index,
}

/// Positions in the `World`'s vectors. Resource and plan-period entries are hints, checked on
/// use and refreshed after a scan; the usage index is authoritative whenever it has as many
/// entries as `usages` (each (resource, component, month) has one record) and rebuilt otherwise,
/// so code that assigns the vectors directly (the demo data) needs no care.
#[derive(Clone, Debug, Default)]
struct Index {
    resources: RefCell<HashMap<String, usize>>,
    projects: RefCell<HashMap<String, usize>>,
    users: RefCell<HashMap<String, usize>>,
    open_periods: HashMap<String, usize>,
    usages: HashMap<(String, String, NaiveDate), usize>,
}

/// Order states in which an order still blocks a new one on the same resource.
pub const PENDING_ORDER_STATES: &[&str] = &[
    "pending-consumer",
    "pending-provider",
    "pending-project",
    "pending-start-date",
    "executing",
];

/// How an order transition ends, for the resource side effects of CONTRACT.md §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderOutcome {
    Executing,
    Done,
    Erred,
    /// Rejected or canceled.
    Dropped,
}

/// Offering types whose orders Waldur's own order processor finishes after approval: no provider
/// call is needed, and `set_state_done` afterwards is a 409. Every other type (`Marketplace.Slurm`,
/// the site agent's kind) waits in `executing` for the provider.
pub const SELF_PROCESSING_TYPES: &[&str] = &["Marketplace.Basic"];

impl World {
    /// Whether Waldur finishes this offering's orders by itself.
    pub fn processes_orders_itself(&self, offering: &str) -> bool {
        self.offering(offering)
            .is_some_and(|o| SELF_PROCESSING_TYPES.contains(&o.type_.as_str()))
    }

    /// Runs Waldur's background order processing up to `now`: every approved order of a
    /// self-processing offering whose time has come is `done`, with its resource's side effects
    /// (a Create's resource `OK` with a plan period, a Terminate's resource `Terminated`). Called
    /// before every request, so the world is always as it would be at `now`.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        self.auto_approve(now);
        let due: Vec<(String, String, String, DateTime<Utc>)> = self
            .orders
            .iter()
            .filter(|o| o.state == "executing")
            .filter_map(|o| {
                o.completes_at
                    .filter(|at| *at <= now)
                    .map(|at| (o.uuid.clone(), o.type_.clone(), o.resource.clone(), at))
            })
            .collect();
        for (uuid, type_, resource, at) in due {
            if let Some(o) = self.order_mut(&uuid) {
                o.state = "done".into();
                o.modified = at;
                o.completed_at = Some(at);
                o.completes_at = None;
            }
            self.apply_order_outcome(&uuid, OrderOutcome::Done, at);
            if type_ == "Create" {
                self.current_plan_period(&resource, at);
            }
        }
    }

    /// The provider's review of offerings in `auto_approve_offerings`: every order waiting for it
    /// is approved at once (as a provider that approves every order would), then processed as
    /// any approved order.
    fn auto_approve(&mut self, now: DateTime<Utc>) {
        let waiting: Vec<(String, String)> = self
            .orders
            .iter()
            .filter(|o| o.state == "pending-provider")
            .filter(|o| self.auto_approve_offerings.contains(&o.offering))
            .map(|o| (o.uuid.clone(), o.offering.clone()))
            .collect();
        for (uuid, offering) in waiting {
            let completes_at = self
                .processes_orders_itself(&offering)
                .then_some(self.self_processing_delay)
                .flatten()
                .map(|delay| now + delay);
            if let Some(o) = self.order_mut(&uuid) {
                o.state = "executing".into();
                o.modified = now;
                o.provider_reviewed_at = Some(now);
                o.completes_at = completes_at;
            }
            self.apply_order_outcome(&uuid, OrderOutcome::Executing, now);
        }
    }

    pub fn customer(&self, uuid: &str) -> Option<&Customer> {
        self.customers.iter().find(|c| c.uuid == uuid)
    }
    pub fn offering(&self, uuid: &str) -> Option<&Offering> {
        self.offerings.iter().find(|o| o.uuid == uuid)
    }
    pub fn project(&self, uuid: &str) -> Option<&Project> {
        let i = indexed(&self.index.projects, &self.projects, uuid, |p| &p.uuid)?;
        Some(&self.projects[i])
    }
    pub fn user(&self, uuid: &str) -> Option<&User> {
        let i = indexed(&self.index.users, &self.users, uuid, |u| &u.uuid)?;
        Some(&self.users[i])
    }
    pub fn resource(&self, uuid: &str) -> Option<&Resource> {
        self.resource_position(uuid).map(|i| &self.resources[i])
    }
    pub fn resource_mut(&mut self, uuid: &str) -> Option<&mut Resource> {
        self.resource_position(uuid).map(|i| &mut self.resources[i])
    }
    fn resource_position(&self, uuid: &str) -> Option<usize> {
        let hint = self.index.resources.borrow().get(uuid).copied();
        if let Some(i) = hint.filter(|&i| self.resources.get(i).is_some_and(|r| r.uuid == uuid)) {
            return Some(i);
        }
        let i = self.resources.iter().position(|r| r.uuid == uuid)?;
        self.index
            .resources
            .borrow_mut()
            .insert(uuid.to_string(), i);
        Some(i)
    }
    /// The usage record of (resource, component, month), if one was reported.
    pub fn usage_record_mut(
        &mut self,
        resource: &str,
        type_: &str,
        month: NaiveDate,
    ) -> Option<&mut Usage> {
        if self.index.usages.len() != self.usages.len() {
            self.index.usages = (self.usages.iter().enumerate())
                .map(|(i, u)| ((u.resource.clone(), u.type_.clone(), u.billing_period), i))
                .collect();
        }
        let key = (resource.to_string(), type_.to_string(), month);
        let i = *self.index.usages.get(&key)?;
        Some(&mut self.usages[i])
    }
    /// Adds a usage record for a (resource, component, month) that has none yet.
    pub fn push_usage(&mut self, u: Usage) {
        let key = (u.resource.clone(), u.type_.clone(), u.billing_period);
        if self.index.usages.len() == self.usages.len() {
            self.index.usages.insert(key, self.usages.len());
        }
        self.usages.push(u);
    }
    pub fn order(&self, uuid: &str) -> Option<&Order> {
        self.orders.iter().find(|o| o.uuid == uuid)
    }
    pub fn order_mut(&mut self, uuid: &str) -> Option<&mut Order> {
        self.orders.iter_mut().find(|o| o.uuid == uuid)
    }
    pub fn sp(&self, uuid: &str) -> Option<&ServiceProvider> {
        self.service_providers.iter().find(|s| s.uuid == uuid)
    }
    pub fn sp_of_customer(&self, customer: &str) -> Option<&ServiceProvider> {
        self.service_providers
            .iter()
            .find(|s| s.customer == customer)
    }
    pub fn plan(&self, offering: &str, plan: &str) -> Option<&Plan> {
        self.offering(offering)?
            .plans
            .iter()
            .find(|p| p.uuid == plan)
    }

    /// Offerings the caller manages as a service provider.
    pub fn is_provider_of_offering(&self, caller: &Caller, offering: &str) -> bool {
        self.offering(offering)
            .is_some_and(|o| o.customer == caller.customer)
    }

    /// Whether the caller may act on the offering as its provider (report usage, change its
    /// resources and orders, manage offering users): Waldur checks the token user's permission
    /// on the offering's organisation and answers 403 when it is missing, even where the user
    /// may see the objects.
    pub fn may_act_as_provider(&self, caller: &Caller, offering: &str) -> bool {
        self.is_provider_of_offering(caller, offering)
            && !self.read_only_offerings.contains(offering)
    }

    /// A resource is visible to the provider that owns its offering.
    pub fn provider_sees_resource(&self, caller: &Caller, r: &Resource) -> bool {
        self.is_provider_of_offering(caller, &r.offering)
    }

    /// Consumer side: projects of the caller's own organisation and projects where the caller's
    /// user holds a role.
    pub fn consumer_sees_project(&self, caller: &Caller, project: &str) -> bool {
        self.project(project)
            .is_some_and(|p| p.customer == caller.customer)
            || self
                .roles
                .iter()
                .any(|g| g.user == caller.user && g.project == project)
    }

    pub fn sees_resource(&self, caller: &Caller, r: &Resource) -> bool {
        self.provider_sees_resource(caller, r) || self.consumer_sees_project(caller, &r.project)
    }

    pub fn sees_order(&self, caller: &Caller, o: &Order) -> bool {
        self.is_provider_of_offering(caller, &o.offering)
            || self.consumer_sees_project(caller, &o.project)
    }

    /// Projects in which the caller's offerings have a resource that is not terminated
    /// (what `marketplace-service-providers/{uuid}/projects/` lists).
    pub fn sp_projects(&self, sp_customer: &str) -> Vec<String> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut out: Vec<String> = Vec::new();
        for r in &self.resources {
            if r.state == "Terminated" || seen.contains(r.project.as_str()) {
                continue;
            }
            let Some(o) = self.offering(&r.offering) else {
                continue;
            };
            if o.customer == sp_customer {
                seen.insert(&r.project);
                out.push(r.project.clone());
            }
        }
        out
    }

    /// Users holding a role in one of `projects` (the SP's, from [`World::sp_projects`]).
    pub fn sp_users(&self, projects: &HashSet<&str>) -> Vec<String> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut out: Vec<String> = Vec::new();
        for g in &self.roles {
            if projects.contains(g.project.as_str()) && seen.insert(&g.user) {
                out.push(g.user.clone());
            }
        }
        out
    }

    pub fn offering_user_for(&self, offering: &str, user: &str) -> Option<&OfferingUser> {
        self.offering_users
            .iter()
            .find(|ou| ou.offering == offering && ou.user == user)
    }

    pub fn has_pending_order(&self, resource: &str) -> bool {
        self.orders
            .iter()
            .any(|o| o.resource == resource && PENDING_ORDER_STATES.contains(&o.state.as_str()))
    }

    /// The order currently in progress for a resource, if any.
    pub fn order_in_progress(&self, resource: &str) -> Option<&Order> {
        self.orders
            .iter()
            .find(|o| o.resource == resource && PENDING_ORDER_STATES.contains(&o.state.as_str()))
    }

    pub fn creation_order(&self, resource: &str) -> Option<&Order> {
        self.orders
            .iter()
            .find(|o| o.resource == resource && o.type_ == "Create")
    }

    /// Resource side effects of an order transition (CONTRACT.md §2).
    pub fn apply_order_outcome(
        &mut self,
        order_uuid: &str,
        outcome: OrderOutcome,
        now: DateTime<Utc>,
    ) {
        let Some(order) = self.order(order_uuid).cloned() else {
            return;
        };
        let Some(res) = self.resource_mut(&order.resource) else {
            return;
        };
        let new_state = match (order.type_.as_str(), outcome) {
            ("Create", OrderOutcome::Executing) => None,
            ("Create", OrderOutcome::Done) => Some("OK"),
            ("Create", OrderOutcome::Erred) => Some("Erred"),
            ("Create", OrderOutcome::Dropped) => Some("Terminated"),
            ("Update", OrderOutcome::Executing) => Some("Updating"),
            ("Update", OrderOutcome::Done) => Some("OK"),
            ("Update", OrderOutcome::Erred) => Some("Erred"),
            ("Update", OrderOutcome::Dropped) => Some("OK"),
            ("Terminate", OrderOutcome::Executing) => Some("Terminating"),
            ("Terminate", OrderOutcome::Done) => Some("Terminated"),
            ("Terminate", OrderOutcome::Erred | OrderOutcome::Dropped) => Some("OK"),
            _ => None,
        };
        if order.type_ == "Update" && outcome == OrderOutcome::Done && !order.limits.is_empty() {
            res.limits = order.limits.clone();
        }
        // An option change made through an order (`create_orders_on_resource_option_change`).
        if order.type_ == "Update"
            && outcome == OrderOutcome::Done
            && let Some(Value::Object(options)) = order.attributes.get("new_options")
        {
            for (k, v) in options {
                res.options.insert(k.clone(), v.clone());
            }
        }
        // `set_state_erred` puts its message on the order only: the resource keeps its own.
        if let Some(s) = new_state {
            res.state = s.to_string();
            res.modified = now;
        }
        if res.state == "Terminated" {
            let uuid = res.uuid.clone();
            for p in self.plan_periods.iter_mut().filter(|p| p.resource == uuid) {
                if p.end.is_none() {
                    p.end = Some(now);
                }
            }
        }
    }

    /// Is a billing month (first day) closed for usage reporting at `today`?
    ///
    /// Rule (documented in README.md): the current and the previous calendar month are open;
    /// anything older is closed; future months are not accepted at all (handled by the caller).
    /// The control API can close or reopen any month explicitly.
    pub fn month_closed(&self, month: NaiveDate, today: NaiveDate) -> bool {
        let month = month_start(month);
        if self.closed_months.contains(&month) {
            return true;
        }
        if self.opened_months.contains(&month) {
            return false;
        }
        month < months_back(today, 1)
    }

    /// The open plan period of a resource (creating one if the resource has a plan but none yet).
    pub fn current_plan_period(&mut self, resource: &str, now: DateTime<Utc>) -> Option<String> {
        let is_open = |p: &PlanPeriod| p.resource == resource && p.end.is_none();
        let hint = self.index.open_periods.get(resource).copied();
        if let Some(i) = hint.filter(|&i| self.plan_periods.get(i).is_some_and(is_open)) {
            return Some(self.plan_periods[i].uuid.clone());
        }
        if let Some(i) = self.plan_periods.iter().position(is_open) {
            self.index.open_periods.insert(resource.to_string(), i);
            return Some(self.plan_periods[i].uuid.clone());
        }
        let plan = self.resource(resource)?.plan.clone()?;
        let uuid = new_uuid();
        (self.index.open_periods).insert(resource.to_string(), self.plan_periods.len());
        self.plan_periods.push(PlanPeriod {
            uuid: uuid.clone(),
            resource: resource.to_string(),
            plan,
            start: now,
            end: None,
        });
        Some(uuid)
    }
}

/// The position of the object with this uuid in `items`, through `index`: a hit is checked
/// against the vector (objects are only ever appended or cleared), and the index is rebuilt
/// whenever it does not hold every object, so a lookup costs O(1) even among tens of thousands.
fn indexed<T>(
    index: &RefCell<HashMap<String, usize>>,
    items: &[T],
    uuid: &str,
    key: impl Fn(&T) -> &String,
) -> Option<usize> {
    let hit = index.borrow().get(uuid).copied();
    if let Some(i) = hit.filter(|&i| items.get(i).is_some_and(|x| key(x) == uuid)) {
        return Some(i);
    }
    let stale = {
        let map = index.borrow();
        map.len() != items.len() || hit.is_some()
    };
    if stale {
        let mut map = index.borrow_mut();
        *map = (items.iter().enumerate())
            .map(|(i, x)| (key(x).clone(), i))
            .collect();
        return map.get(uuid).copied();
    }
    None
}
