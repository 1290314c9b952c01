//! The gateway's shapes of Waldur's objects, shared by the reads of orders, resources and users.
//!
//! Waldur's objects are mapped to smaller gateway objects: uuids instead of Puhuri URLs (which a
//! site cannot follow with its own token), the fields a site system needs, nothing that only
//! Puhuri's web UI uses. A field Waldur leaves out or sends with another type is `null` (or empty
//! for the identifying fields), never an error: a read shows what Puhuri holds. That leniency is
//! the upstream views' ([`crate::upstream::lenient`]); the fields a decision rests on (an
//! object's `uuid`) are required there, and their absence is a malformed answer.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::upstream::{Order, Project, ProjectRole, Resource, SshKey, TeamMember, User};

fn object(map: &Map<String, Value>) -> Value {
    Value::Object(map.clone())
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
    pub fn from_waldur(o: &Order) -> OrderView {
        OrderView {
            uuid: o.uuid.clone(),
            state: o.state.clone(),
            type_: o.type_.clone(),
            resource_uuid: o.marketplace_resource_uuid.clone(),
            resource_name: o.resource_name.clone(),
            offering_uuid: o.offering_uuid.clone(),
            offering_name: o.offering_name.clone(),
            plan_uuid: o.plan_uuid.clone(),
            plan_name: o.plan_name.clone(),
            project_uuid: o.project_uuid.clone(),
            project_name: o.project_name.clone(),
            customer_uuid: o.customer_uuid.clone(),
            customer_name: o.customer_name.clone(),
            attributes: object(&o.attributes),
            limits: object(&o.limits),
            request_comment: o.request_comment.clone(),
            created_by_username: o.created_by_username.clone(),
            created_by_full_name: o.created_by_full_name.clone(),
            created_by_email: o.created_by_email.clone(),
            error_message: o.error_message.clone(),
            provider_rejection_comment: o.provider_rejection_comment.clone(),
            provider_reviewed_by_username: o.provider_reviewed_by_username.clone(),
            provider_reviewed_at: o.provider_reviewed_at.clone(),
            backend_id: o.backend_id.clone(),
            created: o.created.clone(),
            modified: o.modified.clone(),
            completed_at: o.completed_at.clone(),
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
    pub fn from_waldur(r: &Resource) -> ResourceView {
        ResourceView {
            uuid: r.uuid.clone(),
            name: r.name.clone(),
            state: r.state.clone(),
            backend_id: r.backend_id.clone(),
            offering_uuid: r.offering_uuid.clone(),
            offering_name: r.offering_name.clone(),
            plan_uuid: r.plan_uuid.clone(),
            plan_name: r.plan_name.clone(),
            project_uuid: r.project_uuid.clone(),
            project_name: r.project_name.clone(),
            customer_uuid: r.customer_uuid.clone(),
            customer_name: r.customer_name.clone(),
            limits: object(&r.limits),
            attributes: object(&r.attributes),
            options: object(&r.options),
            current_usages: object(&r.current_usages),
            report: (r.report.iter())
                .map(|s| ReportSectionView {
                    header: s.header.clone(),
                    body: s.body.clone(),
                })
                .collect(),
            error_message: r.error_message.clone().filter(|m| !m.is_empty()),
            end_date: r.end_date.clone(),
            order_in_progress_uuid: r.order_in_progress.uuid.clone(),
            created: r.created.clone(),
            modified: r.modified.clone(),
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
    pub fn from_waldur(m: &TeamMember) -> TeamMemberView {
        TeamMemberView {
            user_uuid: m.uuid.clone(),
            username: m.username.clone(),
            full_name: m.full_name.clone(),
            email: m.email.clone(),
            role: m.role.clone(),
            expiration_time: m.expiration_time.clone(),
            offering_user_username: m.offering_user_username.clone(),
            offering_user_state: m.offering_user_state.clone(),
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
    pub fn from_waldur(u: &User) -> UserView {
        UserView {
            uuid: u.uuid.clone(),
            username: u.username.clone(),
            full_name: u.full_name.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            email: u.email.clone(),
            organization: u.organization.clone(),
            is_active: u.is_active,
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
    pub fn from_waldur(k: &SshKey) -> SshKeyView {
        SshKeyView {
            uuid: k.uuid.clone(),
            user_uuid: k.user_uuid.clone(),
            name: k.name.clone(),
            public_key: k.public_key.clone(),
            type_: k.type_.clone(),
            fingerprint_sha256: k.fingerprint_sha256.clone(),
            is_shared: k.is_shared,
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
    pub fn from_waldur(p: &Project) -> ProjectView {
        ProjectView {
            uuid: p.uuid.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            customer_uuid: p.customer_uuid.clone(),
            customer_name: p.customer_name.clone(),
            start_date: p.start_date.clone(),
            end_date: p.end_date.clone(),
            created: p.created.clone(),
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
    pub fn from_waldur(r: &ProjectRole) -> ProjectPermissionView {
        ProjectPermissionView {
            user_uuid: r.user_uuid.clone(),
            user_username: r.user_username.clone(),
            user_full_name: r.user_full_name.clone(),
            user_email: r.user_email.clone(),
            project_uuid: r.project_uuid.clone(),
            project_name: r.project_name.clone(),
            customer_uuid: r.customer_uuid.clone(),
            customer_name: r.customer_name.clone(),
            role: r.role_name.clone().or_else(|| r.role.clone()),
            created: r.created.clone(),
            expiration_time: r.expiration_time.clone(),
        }
    }
}
