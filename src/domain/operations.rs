//! The operations a site can queue, as stored in a job.
//!
//! A job stores the operation's name and its payload as JSON. Each operation also says which
//! upstream object it touches (so jobs on one object are delivered one at a time, in order) and,
//! for usage, which values coalesce.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::{BackendId, WaldurUuid};
use super::text::{Comment, Description, ErrorMessage, Traceback};
use super::usage::{Amount, ComponentType, Month};
use super::username::Username;
use serde_json::Value;

pub use super::allocation_ops::{
    AllocationCreate, AllocationLimits, AllocationOptions, AllocationOrderAction,
    AllocationTerminate, AllocationUpdate, ConsumerAction, EndDate,
};
pub use super::report::{Report, ReportSection};

// Every field is a domain value, parsed once where the request arrived. Each serializes as the
// text (or number) a job stored before the field had its type, and reads back through the
// type's own parser: a job queued by an older version is delivered the same
// (`stored::old_payloads_read_back_and_store_the_same_json`).

/// A usage report as queued: the resource, the month and the month's totals per component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub resource_uuid: WaldurUuid,
    /// Stored as `YYYY-MM`.
    pub month: Month,
    /// Component type -> amount, stored as Waldur's decimal string (two places).
    pub usages: BTreeMap<ComponentType, Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
}

/// An order transition by the provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderApprove {
    pub order_uuid: WaldurUuid,
    /// Merged into the order's attributes by Waldur.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<serde_json::Map<String, Value>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReject {
    pub order_uuid: WaldurUuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Comment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDone {
    pub order_uuid: WaldurUuid,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderErred {
    pub order_uuid: WaldurUuid,
    pub message: ErrorMessage,
    /// Sent as `error_traceback`; `""` when the site gave none.
    #[serde(default)]
    pub traceback: Traceback,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceBackendId {
    pub resource_uuid: WaldurUuid,
    pub backend_id: BackendId,
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

impl SettableState {
    /// The state a site asks for (`ok` or `erred`, as Waldur's `set_state_ok` /
    /// `set_state_erred` name them); anything else is refused with the reason.
    pub fn parse(text: &str) -> Result<SettableState, &'static str> {
        text.parse().map_err(|_| "must be `ok` or `erred`")
    }
}

/// A resource set OK or erred (with the site's message for `erred`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceState {
    pub resource_uuid: WaldurUuid,
    pub state: SettableState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Comment>,
}

impl ResourceState {
    /// The rule for a state's `message`: taken only with `erred` (setting OK clears the
    /// error), a [`Comment`] (at most 2,000 characters). `state` is `None` when the request's
    /// state was not valid: then only the message's length is checked, so every problem of the
    /// request is reported at once.
    pub fn message(
        state: Option<SettableState>,
        message: Option<String>,
    ) -> Result<Option<Comment>, String> {
        match message {
            None => Ok(None),
            Some(_) if state == Some(SettableState::Ok) => {
                Err("is only taken with `erred` (setting OK clears the error)".into())
            }
            Some(m) => Comment::parse(m).map(Some),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceReport {
    pub resource_uuid: WaldurUuid,
    pub report: Report,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    pub resource_uuid: WaldurUuid,
    /// Component type -> limit.
    pub limits: BTreeMap<ComponentType, u64>,
}

/// Create-or-update one offering user's username.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferingUsername {
    pub offering_uuid: WaldurUuid,
    pub user_uuid: WaldurUuid,
    pub username: Username,
}

/// A user's username on every offering of the service provider (`set_offerings_username`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserUsername {
    pub service_provider_uuid: WaldurUuid,
    pub user_uuid: WaldurUuid,
    pub username: Username,
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
    /// operation replaces (a backend id, a state, a report, limits, a username; an allocation's
    /// name, description, end date, options and limits): for these an older job must never be
    /// delivered after a newer one. Usage reports are values too, per component, and the stores
    /// check them ([`Operation::coalesce_key`]); an order's transitions are not values.
    pub fn sets_a_value(name: &str) -> bool {
        matches!(
            name,
            "resource.backend_id"
                | "resource.state"
                | "resource.report"
                | "resource.limits"
                | "offering_user.username"
                | "user.username"
                | "allocation.update"
                | "allocation.options"
                | "allocation.limits"
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

    /// The operation's payload as a job stores it: the variant's value, what serde's `payload`
    /// content holds (serialized directly, without the tagged wrapper around it).
    pub fn payload(&self) -> Value {
        let value = match self {
            Operation::UsageReport(p) => serde_json::to_value(p),
            Operation::OrderApprove(p) => serde_json::to_value(p),
            Operation::OrderReject(p) => serde_json::to_value(p),
            Operation::OrderDone(p) => serde_json::to_value(p),
            Operation::OrderErred(p) => serde_json::to_value(p),
            Operation::ResourceBackendId(p) => serde_json::to_value(p),
            Operation::ResourceState(p) => serde_json::to_value(p),
            Operation::ResourceReport(p) => serde_json::to_value(p),
            Operation::ResourceLimits(p) => serde_json::to_value(p),
            Operation::OfferingUsername(p) => serde_json::to_value(p),
            Operation::UserUsername(p) => serde_json::to_value(p),
            Operation::AllocationCreate(p) => serde_json::to_value(p),
            Operation::AllocationOrder(p) => serde_json::to_value(p),
            Operation::AllocationUpdate(p) => serde_json::to_value(p),
            Operation::AllocationOptions(p) => serde_json::to_value(p),
            Operation::AllocationLimits(p) => serde_json::to_value(p),
            Operation::AllocationTerminate(p) => serde_json::to_value(p),
        };
        value.unwrap_or(Value::Null)
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

/// The coalesce key of a resource's usage reports for a month: `usage:<uuid>:<YYYY-MM>`.
pub fn usage_coalesce_key(resource_uuid: &WaldurUuid, month: Month) -> String {
    format!("usage:{resource_uuid}:{month}")
}

#[cfg(test)]
mod stored;

#[cfg(test)]
mod tests {
    use super::*;

    const R1: &str = "7e000000000040008000000000000001";
    const O1: &str = "0d000000000040008000000000000001";
    const F1: &str = "0f000000000040008000000000000001";
    const U1: &str = "a0000000000040008000000000000001";
    const S1: &str = "5e000000000040008000000000000001";

    #[test]
    fn a_settable_state_is_ok_or_erred_as_waldur_names_them() {
        assert_eq!(SettableState::parse("ok"), Ok(SettableState::Ok));
        assert_eq!(SettableState::parse("erred"), Ok(SettableState::Erred));
        for bad in ["OK", "Erred", "", "terminated"] {
            assert_eq!(
                SettableState::parse(bad),
                Err("must be `ok` or `erred`"),
                "{bad}"
            );
        }
    }

    fn uuid(s: &str) -> WaldurUuid {
        WaldurUuid::parse(s).unwrap()
    }

    #[test]
    fn a_usage_report_round_trips_through_a_job() {
        let op = Operation::UsageReport(UsageReport {
            resource_uuid: uuid(R1),
            month: Month::parse("2026-11").unwrap(),
            usages: BTreeMap::from([(
                ComponentType::parse("cpu_k_hours").unwrap(),
                Amount::parse_text("1.5").unwrap(),
            )]),
            description: None,
        });
        let payload = op.payload();
        assert_eq!(payload["usages"]["cpu_k_hours"], "1.50");
        assert_eq!(Operation::from_job(op.name(), &payload).unwrap(), op);
        assert_eq!(op.object_key(), format!("resource:{R1}"));
        assert_eq!(op.coalesce_key().unwrap(), format!("usage:{R1}:2026-11"));
    }

    #[test]
    fn the_name_is_the_stored_tag() {
        let op = Operation::UserUsername(UserUsername {
            service_provider_uuid: uuid(S1),
            user_uuid: uuid(U1),
            username: serde_json::from_value(serde_json::json!("x")).unwrap(),
        });
        let stored = serde_json::to_value(&op).unwrap();
        assert_eq!(stored["operation"], op.name());
        assert_eq!(op.name(), "user.username");
    }

    #[test]
    fn site_operations_round_trip_and_name_their_object() {
        let ops = [
            Operation::OrderApprove(OrderApprove {
                order_uuid: uuid(O1),
                attributes: None,
            }),
            Operation::OrderErred(OrderErred {
                order_uuid: uuid(O1),
                message: ErrorMessage::parse("boom".into()).unwrap(),
                traceback: Traceback::default(),
            }),
            Operation::ResourceLimits(ResourceLimits {
                resource_uuid: uuid(R1),
                limits: BTreeMap::from([(ComponentType::parse("cpu_k_hours").unwrap(), 10)]),
            }),
            Operation::OfferingUsername(OfferingUsername {
                offering_uuid: uuid(F1),
                user_uuid: uuid(U1),
                username: serde_json::from_value(serde_json::json!("x")).unwrap(),
            }),
        ];
        let keys = [
            format!("order:{O1}"),
            format!("order:{O1}"),
            format!("resource:{R1}"),
            format!("offering-user:{F1}:{U1}"),
        ];
        for (op, key) in ops.iter().zip(keys) {
            assert_eq!(&Operation::from_job(op.name(), &op.payload()).unwrap(), op);
            // what serde's tagged form holds as the payload
            assert_eq!(serde_json::to_value(op).unwrap()["payload"], op.payload());
            assert_eq!(op.object_key(), key);
            assert!(op.coalesce_key().is_none());
        }
    }

    #[test]
    fn only_erred_takes_a_message_of_at_most_2000_characters() {
        use SettableState::{Erred, Ok as SetOk};
        assert_eq!(ResourceState::message(Some(SetOk), None), Ok(None));
        assert_eq!(
            ResourceState::message(Some(SetOk), Some("x".into())).unwrap_err(),
            "is only taken with `erred` (setting OK clears the error)"
        );
        let why = ResourceState::message(Some(Erred), Some("disk".into())).unwrap();
        assert_eq!(why.unwrap().as_str(), "disk");
        // an invalid state: the message's length is still checked
        assert_eq!(
            ResourceState::message(None, Some("x".repeat(2001))).unwrap_err(),
            "must be at most 2000 characters"
        );
        assert!(ResourceState::message(None, Some("x".into())).is_ok());
    }
}
