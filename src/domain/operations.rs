//! The operations a site can queue, as stored in a job.
//!
//! A job stores the operation's name and its payload as JSON. Each operation also says which
//! upstream object it touches (so jobs on one object are delivered one at a time, in order) and,
//! for usage, which values coalesce.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::usage::Month;
use serde_json::Value;

pub use super::allocation_ops::{
    AllocationCreate, AllocationLimits, AllocationOptions, AllocationOrderAction,
    AllocationTerminate, AllocationUpdate,
};

/// A usage report as queued: the resource, the month and the month's totals per component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub resource_uuid: String,
    /// Stored as `YYYY-MM`.
    pub month: Month,
    /// Component type -> amount as Waldur's decimal string (two places).
    pub usages: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An order transition by the provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderApprove {
    pub order_uuid: String,
    /// Merged into the order's attributes by Waldur.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<serde_json::Map<String, Value>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReject {
    pub order_uuid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDone {
    pub order_uuid: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderErred {
    pub order_uuid: String,
    pub message: String,
    /// Sent as `error_traceback`; `""` when the site gave none.
    #[serde(default)]
    pub traceback: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceBackendId {
    pub resource_uuid: String,
    pub backend_id: String,
}

/// The state a site sets on a resource: `ok` is Waldur's `set_as_ok` (it clears the error),
/// `erred` its `set_as_erred`. Stored and shown by these names.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum SettableState {
    Ok,
    Erred,
}

/// A resource set OK or erred (with the site's message for `erred`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceState {
    pub resource_uuid: String,
    pub state: SettableState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSection {
    pub header: String,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceReport {
    pub resource_uuid: String,
    pub report: Vec<ReportSection>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    pub resource_uuid: String,
    /// Component type -> limit.
    pub limits: BTreeMap<String, u64>,
}

/// Create-or-update one offering user's username.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferingUsername {
    pub offering_uuid: String,
    pub user_uuid: String,
    pub username: String,
}

/// A user's username on every offering of the service provider (`set_offerings_username`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserUsername {
    pub service_provider_uuid: String,
    pub user_uuid: String,
    pub username: String,
}

// An operation's name is written once per variant: serde's tag for the stored job, and the
// same text for strum's name table ([`Operation::name`]); a unit test holds them equal.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
#[serde(tag = "operation", content = "payload")]
pub enum Operation {
    #[serde(rename = "usage.report")]
    #[strum(serialize = "usage.report")]
    UsageReport(UsageReport),
    #[serde(rename = "order.approve")]
    #[strum(serialize = "order.approve")]
    OrderApprove(OrderApprove),
    #[serde(rename = "order.reject")]
    #[strum(serialize = "order.reject")]
    OrderReject(OrderReject),
    #[serde(rename = "order.done")]
    #[strum(serialize = "order.done")]
    OrderDone(OrderDone),
    #[serde(rename = "order.erred")]
    #[strum(serialize = "order.erred")]
    OrderErred(OrderErred),
    #[serde(rename = "resource.backend_id")]
    #[strum(serialize = "resource.backend_id")]
    ResourceBackendId(ResourceBackendId),
    #[serde(rename = "resource.state")]
    #[strum(serialize = "resource.state")]
    ResourceState(ResourceState),
    #[serde(rename = "resource.report")]
    #[strum(serialize = "resource.report")]
    ResourceReport(ResourceReport),
    #[serde(rename = "resource.limits")]
    #[strum(serialize = "resource.limits")]
    ResourceLimits(ResourceLimits),
    #[serde(rename = "offering_user.username")]
    #[strum(serialize = "offering_user.username")]
    OfferingUsername(OfferingUsername),
    #[serde(rename = "user.username")]
    #[strum(serialize = "user.username")]
    UserUsername(UserUsername),
    #[serde(rename = "allocation.create")]
    #[strum(serialize = "allocation.create")]
    AllocationCreate(AllocationCreate),
    #[serde(rename = "allocation.order")]
    #[strum(serialize = "allocation.order")]
    AllocationOrder(AllocationOrderAction),
    #[serde(rename = "allocation.update")]
    #[strum(serialize = "allocation.update")]
    AllocationUpdate(AllocationUpdate),
    #[serde(rename = "allocation.options")]
    #[strum(serialize = "allocation.options")]
    AllocationOptions(AllocationOptions),
    #[serde(rename = "allocation.limits")]
    #[strum(serialize = "allocation.limits")]
    AllocationLimits(AllocationLimits),
    #[serde(rename = "allocation.terminate")]
    #[strum(serialize = "allocation.terminate")]
    AllocationTerminate(AllocationTerminate),
}

impl Operation {
    /// The stored name, e.g. `usage.report`.
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// Whether the operation named `name` sets a value on its object that a later job of the same
    /// operation replaces (a backend id, a state, a report, limits, a username): for these an
    /// older job must never be delivered after a newer one. Usage reports are values too, per
    /// component, and the stores check them ([`Operation::coalesce_key`]); an order's
    /// transitions are not values.
    pub fn sets_a_value(name: &str) -> bool {
        matches!(
            name,
            "resource.backend_id"
                | "resource.state"
                | "resource.report"
                | "resource.limits"
                | "offering_user.username"
                | "user.username"
        )
    }

    /// The scope a site needs to queue an operation named `name` (an [`Operation::name`]), and
    /// so to retry or cancel its job; `None` for a name that is not an operation.
    pub fn scope_of(name: &str) -> Option<super::Scope> {
        use super::Scope;
        let family = name.split('.').next()?;
        let scope = match family {
            "usage" => Scope::UsageWrite,
            "order" => Scope::OrdersWrite,
            "resource" => Scope::ResourcesWrite,
            "offering_user" | "user" => Scope::UsersWrite,
            "allocation" => Scope::AllocationsWrite,
            _ => return None,
        };
        <Operation as strum::VariantNames>::VARIANTS
            .contains(&name)
            .then_some(scope)
    }

    /// The upstream object this operation changes: its jobs are delivered one at a time.
    pub fn object_key(&self) -> String {
        match self {
            Operation::UsageReport(u) => format!("resource:{}", u.resource_uuid),
            Operation::OrderApprove(o) => format!("order:{}", o.order_uuid),
            Operation::OrderReject(o) => format!("order:{}", o.order_uuid),
            Operation::OrderDone(o) => format!("order:{}", o.order_uuid),
            Operation::OrderErred(o) => format!("order:{}", o.order_uuid),
            Operation::ResourceBackendId(r) => format!("resource:{}", r.resource_uuid),
            Operation::ResourceState(r) => format!("resource:{}", r.resource_uuid),
            Operation::ResourceReport(r) => format!("resource:{}", r.resource_uuid),
            Operation::ResourceLimits(r) => format!("resource:{}", r.resource_uuid),
            // One offering user is one upstream object; a user's username across offerings
            // touches every offering user of that user.
            Operation::OfferingUsername(u) => {
                format!("offering-user:{}:{}", u.offering_uuid, u.user_uuid)
            }
            Operation::UserUsername(u) => format!("user:{}", u.user_uuid),
            // A creation is its own object (the order it makes does not exist yet): creations
            // never queue behind each other, so one waiting days for a review holds back no
            // other, even in the same project. Each later change of a resource, or transition
            // of an order, waits for the one before it.
            Operation::AllocationCreate(a) => format!("allocation-create:{}", a.marker),
            Operation::AllocationOrder(a) => format!("order:{}", a.order_uuid),
            Operation::AllocationUpdate(a) => format!("resource:{}", a.resource_uuid),
            Operation::AllocationOptions(a) => format!("resource:{}", a.resource_uuid),
            Operation::AllocationLimits(a) => format!("resource:{}", a.resource_uuid),
            Operation::AllocationTerminate(a) => format!("resource:{}", a.resource_uuid),
        }
    }

    /// Jobs with the same key coalesce: the newest value of each component wins.
    pub fn coalesce_key(&self) -> Option<String> {
        match self {
            Operation::UsageReport(u) => Some(usage_coalesce_key(&u.resource_uuid, u.month)),
            _ => None,
        }
    }

    pub fn payload(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut map)) => map.remove("payload").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// The Puhuri identity an allocator operation is delivered with; `None` for the service
    /// provider's operations (delivered with the `sp` identity).
    pub fn identity(&self) -> Option<&str> {
        match self {
            Operation::AllocationCreate(a) => Some(&a.identity),
            Operation::AllocationOrder(a) => Some(&a.identity),
            Operation::AllocationUpdate(a) => Some(&a.identity),
            Operation::AllocationOptions(a) => Some(&a.identity),
            Operation::AllocationLimits(a) => Some(&a.identity),
            Operation::AllocationTerminate(a) => Some(&a.identity),
            _ => None,
        }
    }

    /// Reads a stored job back.
    pub fn from_job(operation: &str, payload: &Value) -> Result<Operation, String> {
        serde_json::from_value(serde_json::json!({"operation": operation, "payload": payload}))
            .map_err(|e| format!("job payload for `{operation}` is not readable: {e}"))
    }
}

pub fn usage_coalesce_key(resource_uuid: &str, month: Month) -> String {
    format!("usage:{resource_uuid}:{month}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_report_round_trips_through_a_job() {
        let op = Operation::UsageReport(UsageReport {
            resource_uuid: "r1".into(),
            month: Month::parse("2026-11").unwrap(),
            usages: BTreeMap::from([("cpu_k_hours".into(), "1.50".into())]),
            description: None,
        });
        let payload = op.payload();
        assert_eq!(payload["usages"]["cpu_k_hours"], "1.50");
        assert_eq!(Operation::from_job(op.name(), &payload).unwrap(), op);
        assert_eq!(op.object_key(), "resource:r1");
        assert_eq!(op.coalesce_key().unwrap(), "usage:r1:2026-11");
    }

    #[test]
    fn the_name_is_the_stored_tag() {
        let op = Operation::UserUsername(UserUsername {
            service_provider_uuid: "s1".into(),
            user_uuid: "u1".into(),
            username: "x".into(),
        });
        let stored = serde_json::to_value(&op).unwrap();
        assert_eq!(stored["operation"], op.name());
        assert_eq!(op.name(), "user.username");
    }

    #[test]
    fn site_operations_round_trip_and_name_their_object() {
        let ops = [
            Operation::OrderApprove(OrderApprove {
                order_uuid: "o1".into(),
                attributes: None,
            }),
            Operation::OrderErred(OrderErred {
                order_uuid: "o1".into(),
                message: "boom".into(),
                traceback: String::new(),
            }),
            Operation::ResourceLimits(ResourceLimits {
                resource_uuid: "r1".into(),
                limits: BTreeMap::from([("cpu_k_hours".into(), 10)]),
            }),
            Operation::OfferingUsername(OfferingUsername {
                offering_uuid: "f1".into(),
                user_uuid: "u1".into(),
                username: "x".into(),
            }),
        ];
        let keys = ["order:o1", "order:o1", "resource:r1", "offering-user:f1:u1"];
        for (op, key) in ops.iter().zip(keys) {
            assert_eq!(&Operation::from_job(op.name(), &op.payload()).unwrap(), op);
            assert_eq!(op.object_key(), key);
            assert!(op.coalesce_key().is_none());
        }
    }
}
