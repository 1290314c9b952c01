//! The objects of the simulator's world (customers, offerings, projects, users, resources,
//! orders, usage, offering users), as plain data; [`super::state::World`] holds them and runs
//! their state machines.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

#[derive(Clone, Debug)]
pub struct Customer {
    pub uuid: String,
    pub name: String,
    pub abbreviation: String,
    pub slug: String,
}

#[derive(Clone, Debug)]
pub struct ServiceProvider {
    pub uuid: String,
    pub customer: String,
    pub description: String,
    pub created: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Component {
    pub uuid: String,
    pub type_: String,
    pub name: String,
    pub measured_unit: String,
    pub billing_type: String,
    pub description: String,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub uuid: String,
    pub name: String,
    pub description: String,
    /// Component type → unit price.
    pub prices: Vec<(String, Decimal)>,
}

#[derive(Clone, Debug)]
pub struct Offering {
    pub uuid: String,
    pub name: String,
    pub slug: String,
    pub description: String,
    /// The service provider's customer (organisation) uuid.
    pub customer: String,
    pub type_: String,
    pub state: String,
    pub components: Vec<Component>,
    pub plans: Vec<Plan>,
    pub sp_can_create_offering_user: bool,
    /// The order options the offering publishes (Waldur's `Offering.options`,
    /// `{"order": [...], "options": {...}}`); `Null`: none (`{"order": [], "options": {}}`).
    pub published_options: Value,
    /// `plugin_options.create_orders_on_resource_option_change`: `update_options` creates an
    /// Update order instead of applying the options at once.
    pub option_change_orders: bool,
    pub created: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Project {
    pub uuid: String,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub customer: String,
    pub created: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct User {
    pub uuid: String,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub organization: String,
    pub is_active: bool,
    pub date_joined: DateTime<Utc>,
}

impl User {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

#[derive(Clone, Debug)]
pub struct SshKey {
    pub uuid: String,
    pub name: String,
    pub public_key: String,
    pub user: String,
    pub fingerprint_md5: String,
    pub fingerprint_sha256: String,
    pub fingerprint_sha512: String,
    pub is_shared: bool,
    pub type_: String,
}

/// A project role grant (what `team/` and `project_permissions/` show).
#[derive(Clone, Debug)]
pub struct RoleGrant {
    pub user: String,
    pub project: String,
    pub role: String,
    pub created: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Resource {
    pub uuid: String,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub offering: String,
    pub project: String,
    pub plan: Option<String>,
    pub state: String,
    pub backend_id: String,
    pub limits: Map<String, Value>,
    pub attributes: Map<String, Value>,
    pub options: Map<String, Value>,
    pub report: Vec<(String, String)>,
    pub current_usages: Map<String, Value>,
    pub error_message: String,
    pub error_traceback: String,
    pub end_date: Option<NaiveDate>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Order {
    pub uuid: String,
    pub offering: String,
    pub project: String,
    pub resource: String,
    pub plan: Option<String>,
    pub type_: String,
    pub state: String,
    pub attributes: Map<String, Value>,
    pub limits: Map<String, Value>,
    pub created_by: String,
    pub error_message: String,
    pub error_traceback: String,
    pub provider_rejection_comment: String,
    pub consumer_rejection_comment: String,
    pub request_comment: Option<String>,
    pub backend_id: String,
    pub completed_at: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    /// Who approved or rejected it as the provider, and when.
    pub provider_reviewed_by: Option<String>,
    pub provider_reviewed_at: Option<DateTime<Utc>>,
    /// For offerings Waldur processes itself (`Marketplace.Basic`): when Waldur's order processor
    /// finishes the approved order (see [`World::advance`]).
    pub completes_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct PlanPeriod {
    pub uuid: String,
    pub resource: String,
    pub plan: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct Usage {
    pub uuid: String,
    pub resource: String,
    pub plan_period: String,
    pub type_: String,
    pub billing_period: NaiveDate,
    pub usage: Decimal,
    pub date: DateTime<Utc>,
    pub description: String,
    pub recurring: bool,
    pub created: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct OfferingUser {
    pub uuid: String,
    pub offering: String,
    pub user: String,
    pub username: Option<String>,
    pub state: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
}

/// Who is calling: the service provider a token belongs to (empty for a consumer's token), its
/// organisation and its token user.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Which of the simulator's tokens it is (`sp`, `other-sp`, `allocator`): what the call
    /// record says instead of the token itself.
    pub token: &'static str,
    pub sp: String,
    pub customer: String,
    pub user: String,
}
