//! The closed sets of names the API speaks, as OpenAPI string enums built from the very lists
//! the gateway checks with, so the document and the server cannot disagree.
//!
//! Waldur's sets are those of its 8.0.5 schema (`OrderState`, `RequestTypes`, `ResourceState`,
//! `OfferingState`, `OfferingUserState`). A response field typed with one of these holds what
//! Puhuri returned; these are every value Waldur 8.0.5 defines.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// A string schema allowing exactly `names`.
fn names(names: &[&str], description: &str) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names.iter().copied()))
            .description(Some(description))
            .build(),
    ))
}

macro_rules! name_set {
    ($(#[$doc:meta])* $type:ident, $schema_name:literal, $list:expr, $description:literal) => {
        $(#[$doc])*
        pub struct $type;

        impl utoipa::PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                names(&$list, $description)
            }
        }

        impl utoipa::ToSchema for $type {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($schema_name)
            }
        }
    };
}

/// Waldur's offering states (8.0.5 `OfferingState`).
pub const OFFERING_STATES: [&str; 5] = ["Draft", "Active", "Paused", "Archived", "Unavailable"];

/// Waldur's offering-user states (8.0.5 `OfferingUserState`).
pub const OFFERING_USER_STATES: [&str; 10] = [
    "Requested",
    "Creating",
    "Pending account linking",
    "Pending additional validation",
    "OK",
    "Requested deletion",
    "Deleting",
    "Deleted",
    "Error creating",
    "Error deleting",
];

/// The states `POST /v1/resources/{resource}/state` sets.
pub const SETTABLE_RESOURCE_STATES: &[&str] =
    <crate::domain::operations::SettableState as strum::VariantNames>::VARIANTS;

name_set!(
    /// An order's state in Puhuri.
    OrderState,
    "OrderState",
    super::orders::ORDER_STATES,
    "An order's state in Puhuri (Waldur's `OrderState`)"
);
/// What `GET /v1/orders?state=` takes: an order state, or `all`.
pub static ORDER_STATE_FILTERS: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| {
        std::iter::once("all")
            .chain(super::orders::ORDER_STATES)
            .collect()
    });

name_set!(
    /// What the order list's `state` filter takes.
    OrderStateFilter,
    "OrderStateFilter",
    ORDER_STATE_FILTERS.as_slice(),
    "An order state in Puhuri, or `all` for every state"
);
name_set!(
    /// An order's type.
    OrderType,
    "OrderType",
    super::orders::ORDER_TYPES,
    "An order's type (Waldur's `RequestTypes`)"
);
name_set!(
    /// A resource's state in Puhuri.
    ResourceState,
    "ResourceState",
    super::resources::RESOURCE_STATES,
    "A resource's state in Puhuri (Waldur's `ResourceState`)"
);
name_set!(
    /// An offering's state in Puhuri.
    OfferingState,
    "OfferingState",
    OFFERING_STATES,
    "An offering's state in Puhuri (Waldur's `OfferingState`)"
);
name_set!(
    /// An offering user's state in Puhuri.
    OfferingUserState,
    "OfferingUserState",
    OFFERING_USER_STATES,
    "An offering user's state in Puhuri (Waldur's `OfferingUserState`)"
);
name_set!(
    /// The state a site sets on a resource.
    SettableResourceState,
    "SettableResourceState",
    SETTABLE_RESOURCE_STATES,
    "`ok` (Waldur's `set_as_ok`; clears the error) or `erred` (`set_as_erred`)"
);
name_set!(
    /// A queued operation's name.
    OperationName,
    "OperationName",
    <crate::domain::operations::Operation as strum::VariantNames>::VARIANTS,
    "A queued operation's name"
);
