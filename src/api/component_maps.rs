//! The OpenAPI shapes of the per-component maps a site sends: usage amounts and limits. Keys are
//! component types (`cpu_k_hours`: the rule of [`crate::domain::ComponentType::parse`]); which
//! types exist is a property of the offering (`GET /v1/offerings/{uuid}` lists them), so the
//! document gives their grammar and LUMI's as examples, not a closed list.

use std::borrow::Cow;

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{RefOr, schema::AdditionalProperties};

/// A component type: 1–100 of `A-Z a-z 0-9 _ - .` ([`crate::domain::ComponentType::parse`]).
const COMPONENT_TYPE_PATTERN: &str = "^[A-Za-z0-9_.-]{1,100}$";

/// A decimal amount as text, exactly the grammar [`crate::domain::Amount::parse_text`] reads:
/// JSON's number grammar without its restriction on leading zeros. Negative values other than
/// zero and more than 18 digits before the point are refused with 422.
const AMOUNT_TEXT_PATTERN: &str = "^-?[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?$";

fn component_map(value: Schema, description: &str, example: serde_json::Value) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(COMPONENT_TYPE_PATTERN)),
            ))
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(value))))
            .min_properties(Some(1))
            .max_properties(Some(super::usage::MAX_COMPONENTS))
            .description(Some(description))
            .examples([example])
            .build(),
    ))
}

/// `usages` of a usage report: component type → the month's total.
pub struct UsageAmounts;

impl utoipa::PartialSchema for UsageAmounts {
    fn schema() -> RefOr<Schema> {
        let amount = OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(Some(0.0))
                    .exclusive_maximum(Some(1e18)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(AMOUNT_TEXT_PATTERN)),
            )
            .description(Some(
                "A JSON number or a decimal string (`12.5`, `1520.25`, `1e3`), not negative (`-0` \
                 is zero), at most 18 digits before the point; more than two decimals are \
                 rounded half-to-even",
            ))
            .build();
        component_map(
            Schema::OneOf(amount),
            "The month's total per component type (1 to 100 types, each a component of the \
             resource's offering)",
            serde_json::json!({"cpu_k_hours": "1520.25", "gpu_k_hours": 12.5}),
        )
    }
}

impl utoipa::ToSchema for UsageAmounts {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("UsageAmounts")
    }
}

/// `limits` of a resource: component type → a whole number.
pub struct ComponentLimits;

impl utoipa::PartialSchema for ComponentLimits {
    fn schema() -> RefOr<Schema> {
        component_map(
            Schema::Object(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0.0))
                    .build(),
            ),
            "A whole number, not negative, per component type (1 to 100 types, each a component \
             of the resource's offering)",
            serde_json::json!({"cpu_k_hours": 2000, "gpu_k_hours": 100}),
        )
    }
}

impl utoipa::ToSchema for ComponentLimits {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ComponentLimits")
    }
}
