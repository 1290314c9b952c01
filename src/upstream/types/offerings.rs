//! Offerings: the service provider's view (`marketplace-provider-offerings/`, schema
//! `ProviderOfferingDetails`) and its components and plans.

use serde::Deserialize;
use serde_json::Value;

use super::lenient;

/// An offering component as usage reporting needs it (`ProviderOfferingDetails.components`,
/// schema `OfferingComponent`). `type` is required.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Component {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub billing_type: String,
}

/// What the gateway's decisions need of an offering, kept by the directory
/// (`GET marketplace-provider-offerings/{uuid}/`; schema `ProviderOfferingDetails`). `uuid` and
/// each component's `type` are required.
#[derive(Clone, Debug, Deserialize)]
pub struct OfferingInfo {
    pub uuid: String,
    /// The provider's organisation.
    #[serde(default)]
    pub customer_uuid: String,
    #[serde(default)]
    pub components: Vec<Component>,
}

/// An offering as the site's offering read shows it and as an offering user's delivery checks it
/// (`GET marketplace-provider-offerings/{uuid}/`; schema `ProviderOfferingDetails`). `uuid` is
/// required; components and plans are read leniently.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Offering {
    pub uuid: String,
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub name: String,
    /// E.g. `Marketplace.Basic` or `Marketplace.Slurm`.
    #[serde(rename = "type", default, deserialize_with = "lenient::text")]
    pub type_: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub state: Option<String>,
    #[serde(default, deserialize_with = "lenient::items")]
    pub components: Vec<OfferingComponent>,
    #[serde(default, deserialize_with = "lenient::items")]
    pub plans: Vec<Plan>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub plugin_options: PluginOptions,
}

/// A component of an offering (schema `OfferingComponent`), read leniently.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct OfferingComponent {
    /// The key used in usage reports and limits, e.g. `cpu_k_hours` (empty when absent).
    #[serde(rename = "type", default, deserialize_with = "lenient::text_or_empty")]
    pub type_: String,
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub measured_unit: Option<String>,
    /// `usage`, `limit`, `fixed`, `one` or `few`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub billing_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub limit_period: Option<String>,
    /// As Waldur sends it (a number, or `null`): shown unchanged.
    #[serde(default)]
    pub limit_amount: Value,
}

/// A plan of an offering (`ProviderOfferingDetails.plans`, schema `BaseProviderPlan`), read
/// leniently.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Plan {
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub uuid: String,
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::text")]
    pub unit: Option<String>,
    /// The plan's price per component (Waldur's `components` of a plan).
    #[serde(default, deserialize_with = "lenient::items")]
    pub components: Vec<PlanPrice>,
}

/// A component's price in a plan (schema `NestedPlanComponent`), read leniently.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct PlanPrice {
    #[serde(rename = "type", default, deserialize_with = "lenient::text")]
    pub type_: Option<String>,
    /// A decimal string.
    #[serde(default, deserialize_with = "lenient::text")]
    pub price: Option<String>,
}

/// The offering's plugin options the gateway reads (`ProviderOfferingDetails.plugin_options`,
/// schema `MergedPluginOptions`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct PluginOptions {
    /// Whether the service provider may create (and see) offering users; Waldur's default is yes.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub service_provider_can_create_offering_user: Option<bool>,
}

/// An offering as an allocator orders from it (`GET marketplace-public-offerings/{uuid}/`;
/// schema `PublicOfferingDetails`), read with the allocator's identity: what the checks of a
/// new allocation and of its changes read. `uuid` is required. The gateway shows the offering
/// to the allocator as Waldur sent it ([`super::Forwarded`]).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct PublicOffering {
    pub uuid: String,
    /// The offering's published option schema (Waldur's `options`: `{"options": {...},
    /// "order": [...]}`), read by the allocation rules ([`crate::domain::allocation`]), which
    /// fall back on LUMI's options when it is not one.
    #[serde(default)]
    pub options: Value,
    #[serde(default, deserialize_with = "lenient::items")]
    pub components: Vec<OfferingComponent>,
    #[serde(default, deserialize_with = "lenient::items")]
    pub plans: Vec<Plan>,
}
