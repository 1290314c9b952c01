//! Resources and what hangs off them: `marketplace-provider-resources/` and
//! `marketplace-resources/` (schema `Resource`), a resource's `team/` (`ProjectUser`) and
//! `plan_periods/` (`ResourcePlanPeriod`), and `marketplace-component-usages/`
//! (`ComponentUsage`).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::lenient;

/// What the gateway needs to know about a resource to scope and deliver work for it
/// (`GET marketplace-provider-resources/{uuid}/`, or the list with `field=uuid, offering_uuid,
/// state, backend_id`; schema `Resource`). `uuid` is required.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ResourceInfo {
    pub uuid: String,
    #[serde(default)]
    pub offering_uuid: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub backend_id: Option<String>,
}

/// A resource as the gateway's resource view and an allocator's changes read it
/// (`GET marketplace-provider-resources/{uuid}/`, `GET marketplace-resources/{uuid}/`, and
/// the items of `GET marketplace-provider-resources/`; schema `Resource`). `uuid` is required.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Resource {
    pub uuid: String,
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub name: String,
    /// `Creating`, `OK`, `Erred`, `Updating`, `Terminating` or `Terminated` (empty when absent).
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub state: String,
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub backend_id: String,
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub offering_uuid: String,
    #[serde(default, deserialize_with = "lenient::text")]
    pub offering_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub plan_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub plan_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub project_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub project_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub customer_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub customer_name: Option<String>,
    /// Limits per component type.
    #[serde(default, deserialize_with = "lenient::object")]
    pub limits: Map<String, Value>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub attributes: Map<String, Value>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub options: Map<String, Value>,
    /// This month's reported usage per component type.
    #[serde(default, deserialize_with = "lenient::object")]
    pub current_usages: Map<String, Value>,
    /// The report's sections; empty unless every section has a text `header` and `body`.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub report: Vec<ReportSection>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub error_message: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub end_date: Option<String>,
    /// The order being processed for it (Waldur's nested `order_in_progress`), by its uuid.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub order_in_progress: InProgress,
    #[serde(default, deserialize_with = "lenient::text")]
    pub created: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub modified: Option<String>,
}

/// One section of a resource's report (`Resource.report`, schema `ReportSection`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ReportSection {
    pub header: String,
    pub body: String,
}

/// The order a resource waits on (`Resource.order_in_progress`), as far as the gateway reads it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct InProgress {
    #[serde(default, deserialize_with = "lenient::text")]
    pub uuid: Option<String>,
}

/// A resource as the scans of a site's resources read it, asking only some fields (`GET
/// marketplace-provider-resources/` with `field=` of `uuid`, `offering_uuid`, `project_uuid`;
/// schema `Resource`). Each may be absent.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ResourceProjection {
    #[serde(default, deserialize_with = "lenient::text")]
    pub uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub offering_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub project_uuid: Option<String>,
}

/// A member of a resource's project (`GET marketplace-provider-resources/{uuid}/team/`, not
/// paginated; schema `ProjectUser`). `uuid` (the user's) is required.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct TeamMember {
    pub uuid: String,
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub username: String,
    #[serde(default, deserialize_with = "lenient::text")]
    pub full_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub email: Option<String>,
    /// The project role, e.g. `PROJECT.MANAGER`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub expiration_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub offering_user_username: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub offering_user_state: Option<String>,
}

/// A plan period of a resource (`GET marketplace-provider-resources/{uuid}/plan_periods/`, not
/// paginated; schema `ResourcePlanPeriod`). `uuid` is required.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct PlanPeriod {
    pub uuid: String,
    #[serde(default, deserialize_with = "lenient::text")]
    pub plan_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub plan_name: Option<String>,
    /// When the period started (a date-time; the first 10 characters are its day).
    #[serde(default, deserialize_with = "lenient::text")]
    pub start: Option<String>,
    /// `None` while the period is open.
    #[serde(default, deserialize_with = "lenient::text")]
    pub end: Option<String>,
}

/// One component's usage of a resource for a billing period (`GET
/// marketplace-component-usages/`; schema `ComponentUsage`). Each field may be absent.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ComponentUsage {
    #[serde(default, deserialize_with = "lenient::text")]
    pub resource_uuid: Option<String>,
    /// The component type, e.g. `cpu_k_hours`.
    #[serde(rename = "type", default, deserialize_with = "lenient::text")]
    pub type_: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub measured_unit: Option<String>,
    /// A decimal string, e.g. `"12.50"`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub usage: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub date: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub description: Option<String>,
}
