//! The gateway's shapes of Waldur's objects, shared by the reads of orders, resources and users.
//!
//! Waldur's objects are mapped to smaller gateway objects: uuids instead of Puhuri URLs (which a
//! site cannot follow with its own token), the fields a site system needs, nothing that only
//! Puhuri's web UI uses. A field Waldur leaves out or sends with another type is `null` (or empty
//! for the identifying fields), never an error: a read shows what Puhuri holds.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub fn text(v: &Value, key: &str) -> Option<String> {
    match &v[key] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text_or_empty(v: &Value, key: &str) -> String {
    text(v, key).unwrap_or_default()
}

fn object(v: &Value, key: &str) -> Value {
    match &v[key] {
        Value::Object(m) => Value::Object(m.clone()),
        _ => Value::Object(Default::default()),
    }
}

/// An order, in the gateway's terms.
#[derive(Serialize, ToSchema)]
pub struct OrderView {
    pub uuid: String,
    /// Waldur's order state, e.g. `pending-provider` or `executing`.
    #[schema(value_type = super::names::OrderState)]
    pub state: String,
    /// `Create`, `Update`, `Terminate` or `Restore`.
    #[serde(rename = "type")]
    #[schema(value_type = super::names::OrderType)]
    pub type_: String,
    /// The marketplace resource: Waldur's `marketplace_resource_uuid`. (Waldur's own
    /// `resource_uuid` is the plugin object's uuid, `null` for `Marketplace.Basic` offerings, and
    /// is never used.)
    pub resource_uuid: Option<String>,
    pub resource_name: Option<String>,
    pub offering_uuid: String,
    pub offering_name: Option<String>,
    pub plan_uuid: Option<String>,
    pub plan_name: Option<String>,
    pub project_uuid: Option<String>,
    pub project_name: Option<String>,
    pub customer_uuid: Option<String>,
    pub customer_name: Option<String>,
    /// What the customer asked for (LUMI options such as `is_industry`, `used_ai_tech`).
    #[schema(value_type = Object)]
    pub attributes: Value,
    /// Requested limits per component type.
    #[schema(value_type = Object)]
    pub limits: Value,
    pub request_comment: Option<String>,
    pub created_by_username: Option<String>,
    pub created_by_full_name: Option<String>,
    pub created_by_email: Option<String>,
    pub error_message: Option<String>,
    pub provider_rejection_comment: Option<String>,
    /// Who approved or rejected the order as the provider (Waldur fills it on approve and
    /// reject), and when.
    pub provider_reviewed_by_username: Option<String>,
    pub provider_reviewed_at: Option<String>,
    pub backend_id: Option<String>,
    pub created: Option<String>,
    pub modified: Option<String>,
    pub completed_at: Option<String>,
}

impl OrderView {
    pub fn from_waldur(v: &Value) -> OrderView {
        OrderView {
            uuid: text_or_empty(v, "uuid"),
            state: text_or_empty(v, "state"),
            type_: text_or_empty(v, "type"),
            resource_uuid: text(v, "marketplace_resource_uuid"),
            resource_name: text(v, "resource_name"),
            offering_uuid: text_or_empty(v, "offering_uuid"),
            offering_name: text(v, "offering_name"),
            plan_uuid: text(v, "plan_uuid"),
            plan_name: text(v, "plan_name"),
            project_uuid: text(v, "project_uuid"),
            project_name: text(v, "project_name"),
            customer_uuid: text(v, "customer_uuid"),
            customer_name: text(v, "customer_name"),
            attributes: object(v, "attributes"),
            limits: object(v, "limits"),
            request_comment: text(v, "request_comment"),
            created_by_username: text(v, "created_by_username"),
            created_by_full_name: text(v, "created_by_full_name"),
            created_by_email: text(v, "created_by_email"),
            error_message: text(v, "error_message"),
            provider_rejection_comment: text(v, "provider_rejection_comment"),
            provider_reviewed_by_username: text(v, "provider_reviewed_by_username"),
            provider_reviewed_at: text(v, "provider_reviewed_at"),
            backend_id: text(v, "backend_id"),
            created: text(v, "created"),
            modified: text(v, "modified"),
            completed_at: text(v, "completed_at"),
        }
    }
}

/// One section of a resource's report.
#[derive(Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ReportSectionView {
    pub header: String,
    pub body: String,
}

/// A resource (an allocation), in the gateway's terms.
#[derive(Serialize, ToSchema)]
pub struct ResourceView {
    pub uuid: String,
    pub name: String,
    /// `Creating`, `OK`, `Erred`, `Updating`, `Terminating` or `Terminated`.
    #[schema(value_type = super::names::ResourceState)]
    pub state: String,
    /// The site's own id for it (empty until set).
    pub backend_id: String,
    pub offering_uuid: String,
    pub offering_name: Option<String>,
    pub plan_uuid: Option<String>,
    pub plan_name: Option<String>,
    pub project_uuid: Option<String>,
    pub project_name: Option<String>,
    pub customer_uuid: Option<String>,
    pub customer_name: Option<String>,
    /// Limits per component type.
    #[schema(value_type = Object)]
    pub limits: Value,
    /// The attributes it was ordered with.
    #[schema(value_type = Object)]
    pub attributes: Value,
    /// Options set after creation (`update_options`).
    #[schema(value_type = Object)]
    pub options: Value,
    /// This month's reported usage per component type.
    #[schema(value_type = Object)]
    pub current_usages: Value,
    pub report: Vec<ReportSectionView>,
    pub error_message: Option<String>,
    pub end_date: Option<String>,
    /// The order being processed for it, if any.
    pub order_in_progress_uuid: Option<String>,
    pub created: Option<String>,
    pub modified: Option<String>,
}

impl ResourceView {
    pub fn from_waldur(v: &Value) -> ResourceView {
        ResourceView {
            uuid: text_or_empty(v, "uuid"),
            name: text_or_empty(v, "name"),
            state: text_or_empty(v, "state"),
            backend_id: text_or_empty(v, "backend_id"),
            offering_uuid: text_or_empty(v, "offering_uuid"),
            offering_name: text(v, "offering_name"),
            plan_uuid: text(v, "plan_uuid"),
            plan_name: text(v, "plan_name"),
            project_uuid: text(v, "project_uuid"),
            project_name: text(v, "project_name"),
            customer_uuid: text(v, "customer_uuid"),
            customer_name: text(v, "customer_name"),
            limits: object(v, "limits"),
            attributes: object(v, "attributes"),
            options: object(v, "options"),
            current_usages: object(v, "current_usages"),
            report: serde_json::from_value(v["report"].clone()).unwrap_or_default(),
            error_message: text(v, "error_message").filter(|m| !m.is_empty()),
            end_date: text(v, "end_date"),
            order_in_progress_uuid: text(&v["order_in_progress"], "uuid"),
            created: text(v, "created"),
            modified: text(v, "modified"),
        }
    }
}

/// A member of a resource's project.
#[derive(Serialize, ToSchema)]
pub struct TeamMemberView {
    pub user_uuid: String,
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    /// The project role, e.g. `PROJECT.MANAGER`.
    pub role: Option<String>,
    pub expiration_time: Option<String>,
    /// The user's username on the resource's offering, once set.
    pub offering_user_username: Option<String>,
    /// The offering user's state in Puhuri, once one exists.
    #[schema(value_type = Option<super::names::OfferingUserState>)]
    pub offering_user_state: Option<String>,
}

impl TeamMemberView {
    pub fn from_waldur(v: &Value) -> TeamMemberView {
        TeamMemberView {
            user_uuid: text_or_empty(v, "uuid"),
            username: text_or_empty(v, "username"),
            full_name: text(v, "full_name"),
            email: text(v, "email"),
            role: text(v, "role"),
            expiration_time: text(v, "expiration_time"),
            offering_user_username: text(v, "offering_user_username"),
            offering_user_state: text(v, "offering_user_state"),
        }
    }
}

/// A user of the service provider (someone on a team of one of the site's resources).
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub uuid: String,
    pub username: String,
    pub full_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub organization: Option<String>,
    pub is_active: Option<bool>,
}

impl UserView {
    pub fn from_waldur(v: &Value) -> UserView {
        UserView {
            uuid: text_or_empty(v, "uuid"),
            username: text_or_empty(v, "username"),
            full_name: text(v, "full_name"),
            first_name: text(v, "first_name"),
            last_name: text(v, "last_name"),
            email: text(v, "email"),
            organization: text(v, "organization"),
            is_active: v["is_active"].as_bool(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SshKeyView {
    pub uuid: String,
    pub user_uuid: String,
    pub name: Option<String>,
    pub public_key: String,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub fingerprint_sha256: Option<String>,
    pub is_shared: Option<bool>,
}

impl SshKeyView {
    pub fn from_waldur(v: &Value) -> SshKeyView {
        SshKeyView {
            uuid: text_or_empty(v, "uuid"),
            user_uuid: text_or_empty(v, "user_uuid"),
            name: text(v, "name"),
            public_key: text_or_empty(v, "public_key"),
            type_: text(v, "type"),
            fingerprint_sha256: text(v, "fingerprint_sha256"),
            is_shared: v["is_shared"].as_bool(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProjectView {
    pub uuid: String,
    pub name: String,
    pub description: Option<String>,
    pub customer_uuid: Option<String>,
    pub customer_name: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub created: Option<String>,
}

impl ProjectView {
    pub fn from_waldur(v: &Value) -> ProjectView {
        ProjectView {
            uuid: text_or_empty(v, "uuid"),
            name: text_or_empty(v, "name"),
            description: text(v, "description"),
            customer_uuid: text(v, "customer_uuid"),
            customer_name: text(v, "customer_name"),
            start_date: text(v, "start_date"),
            end_date: text(v, "end_date"),
            created: text(v, "created"),
        }
    }
}

/// An active project role of a user.
#[derive(Serialize, ToSchema)]
pub struct ProjectPermissionView {
    pub user_uuid: String,
    pub user_username: Option<String>,
    pub user_full_name: Option<String>,
    pub user_email: Option<String>,
    pub project_uuid: String,
    pub project_name: Option<String>,
    pub customer_uuid: Option<String>,
    pub customer_name: Option<String>,
    /// The role, e.g. `PROJECT.ADMIN`.
    pub role: Option<String>,
    pub created: Option<String>,
    pub expiration_time: Option<String>,
}

impl ProjectPermissionView {
    pub fn from_waldur(v: &Value) -> ProjectPermissionView {
        ProjectPermissionView {
            user_uuid: text_or_empty(v, "user_uuid"),
            user_username: text(v, "user_username"),
            user_full_name: text(v, "user_full_name"),
            user_email: text(v, "user_email"),
            project_uuid: text_or_empty(v, "project_uuid"),
            project_name: text(v, "project_name"),
            customer_uuid: text(v, "customer_uuid"),
            customer_name: text(v, "customer_name"),
            role: text(v, "role_name").or_else(|| text(v, "role")),
            created: text(v, "created"),
            expiration_time: text(v, "expiration_time"),
        }
    }
}
